// Block-sparse (BSR) x dense batched products on tensor cores: C[b] = A_bsr[b] · B[b], A[b] a
// rows x cols matrix (K x C of a layer: the pruned U of Winograd position b) stored as dense
// bm x 8 blocks, bm = 16 or 32, B[b] cols x n (V[b], row-major), C[b] rows x n (M[b], row-major).
//
// The format (BatchedBSR in magma_wino/sparse.py): R = ceil(rows / bm) block rows per position,
// block column j covers A's columns [8j, 8j + 8);
//   row_ptr  int32 batch x (R + 1): global offsets into the block arrays, chained as the CSR's
//            (row_ptr[b, 0] = row_ptr[b - 1, R], the last = nblocks)
//   col_idx  int32 nblocks: the block column of each stored block
//   values   nblocks x bm x 8 row-major blocks of the operand type (TcOperand<P>::Element);
//            entries outside the matrix are zero
// Every element of C is written (block rows without blocks give zeros), nothing outside it.
//
// MAGMA's four layers:
//   bsr_tc_batched_device<P, Cfg, VEC>  one thread block: the bm x kN tile of C[b] of one block
//                                       row and kN columns of n, over that row's block list
//   bsr_tc_batched_kernel<P, Cfg, VEC>  __global__: b = blockIdx.z, block row = blockIdx.y,
//                                       column tile = blockIdx.x (+ chunk offsets)
//   bsr_tc_batched_launch<P, Cfg, VEC>  host: grid (ceil(n / kN), R, batch), chunked at 65535
//   bsr_tc_batched<P>                   host: configuration of the precision and block height,
//                                       copy width
//
// The tile is gemm_tc.cuh's: the stage layout (GemmTcLayout), the MMA step of each precision
// (tc_detail::mac_stage: tf32 rounding, the 3xTF32 split, 16-bit, DMMA), the zero-filling copies
// (stage_tile, copy_vector) and the epilogue (store_tile) are reused unchanged.  What differs is
// what a stage holds: the k slice of a dense product is replaced by kSlots = kK / 8 consecutive
// blocks t, t + 1, .. of the row's block list, gathered side by side:
//   sA [bm][kLdA]: columns [8s, 8s + 8) hold block t + s (its bm x 8 values, contiguous in
//                  memory: whole 16-byte vectors)
//   sB [kK][kLdB]: rows [8s, 8s + 8) hold rows [8j, 8j + 8) x [col0, col0 + kN) of B[b], j the
//                  block column of block t + s (the rows of V that block multiplies)
// so a stage is a dense bm x kK by kK x kN product and mac_stage multiplies it as it is.  For
// the 16-bit m16n16k16 step this is the pairing of two blocks per k step (A columns 0-7 from
// block t, 8-15 from block t + 1, B rows from their rows of V); for tf32 (m16n16k8) each block is
// one k step; for fp64 (m8n8k4) a block is 2 x 2 fragments (two 8-row halves, two k steps).
// A slot past the end of the row (an odd count for 16-bit, the last stage generally) is
// zero-filled in both sA and sB (nothing read): zeros times zeros, no NaN from stale data.
//
// k order: per element of C, the blocks in the row's list order, each block's 8 columns in order
// within its MMA step(s).  With col_idx ascending in every row this is the order of the dense
// gemm_tc product of the zero-filled A (its k steps over the dropped blocks add exact zeros) for
// tf32, tf32x3 and fp64, whose k step is within one block: C is then bitwise the dense one.  For
// 16-bit the dense k step of 16 pairs block columns (2i, 2i + 1), this kernel pairs consecutive
// list entries: bitwise the dense product only where the kept blocks come in such aligned pairs.
//
// Structure checks: the C entry checks sizes and pointers; the structure itself (monotone
// row_ptr, col_idx in range, the chain) is validated by BatchedBSR.  A corrupt one gives wrong
// numbers, never an out-of-bounds access: each row's range is clamped into [0, nblocks] (once
// per block row), a block column outside [0, ceil(cols / 8)) makes its slot a zero-filled one
// (once per block per stage, where the stage is issued, not in the MMA loop).
//
// Block height (why 32 as well as 16).  Every element of V staged for a block feeds bm rows of
// it, and a block's fixed costs (its column index, slot check, addresses, its share of the stage's
// barriers and pipeline bookkeeping) are paid per block: with 16-row blocks a warp issues about
// twice the dense kernel's instructions per MMA (the sm_90 SASS: 16.5 against 8.4 for tf32), so
// a density d costs ~2d of the dense time.  32-row blocks give each warp a 32 x 32 tile, the
// dense kernel's warp tile (fp64: four warps of 16 x 32, the 16-row kernel's warp tile, as its
// registers would not hold 32 x 32 of doubles): each B fragment feeds two A fragments and the
// per-block costs are spread over twice the MMAs.  The price is coarser pruning (docs/sparse.md).
//
// Row order: every thread block does one block row, and blocks are scheduled dynamically by the
// hardware, so a long row never holds up the warps of shorter ones in the same block (the
// imbalance Sputnik's row swizzle is for in the CSR kernel); only the tail of the grid would gain
// from long rows first.  Not done.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "gemm_tc.cuh"
#include "launch.cuh"

namespace mw {

// A BSR tile configuration over a gemm_tc layout (Layout_: GemmTcConfig / GemmTcConfig16 /
// GemmTcConfig64): kM = the block height (one block row: 16 or 32 rows), kN columns of n,
// kK = 8 * kSlots (the blocks gathered per pipeline stage), kWarpsM x kWarpsN warps over the
// kM x kN tile.
template <typename Layout_>
struct BsrTcConfig : Layout_ {
  using Layout = Layout_;
  static constexpr int kBlockRows = Layout::kM, kBlockCols = 8;
  static constexpr int kBlockElements = kBlockRows * kBlockCols;
  static constexpr int kSlots = Layout::kK / kBlockCols;  // blocks per stage
  // Threads per SM promised to ptxas: 512 -- 128 registers per thread, which the 16 x 32 warp
  // tiles and the 16-bit and float64 32-row ones fit in -- or 384 for the float 32 x 32 warp
  // tiles (170 registers: tf32x3's hi / lo fragments with element copies spill at 128 on sm_80).
  // Neither limits residency below what shared memory allows anyway.
  static constexpr int kMinBlocks =
      (kBlockRows == 32 && Layout::kElementBytes == 4 ? 384 : 512) / Layout::kThreads;
  static_assert(kBlockRows == 16 || kBlockRows == 32,
                "a thread block computes one block row of 16 or 32 rows");
  static_assert(Layout::kK % kBlockCols == 0 && kSlots >= 1, "a stage holds whole blocks");
  static_assert(kBlockCols * Layout::kElementBytes % 16 == 0,
                "a block row is whole 16-byte vectors");
};

// The configurations (names as gemm_tc's: element, C tile x kK, warp tile, stages).  All three:
// 2 warps of 16 x 32 over a 16 x 64 tile (64 threads): a layer's block row of U meets n = P tile
// columns, and 64 columns waste little at the edge of a small P while every warp still does two
// MMAs (tf32, 16-bit) or eight (fp64) per A fragment it loads; small blocks also leave the
// scheduler many of them to balance rows of different lengths.  Two blocks per stage (kK = 16):
// one m16n16k16 step, two m16n16k8 steps, four m8n8k4 steps -- few enough that a row of a few
// kept blocks does not multiply mostly zero-filled slots.  Padding as the family's (bank
// conflicts; gemm_tc.cuh): float kLdA = 20, kLdB = 72; 16-bit kLdA = 24 halves (3 16-byte units,
// odd: conflict-free ldmatrix phases), kLdB = 72 (9 units); float64 kLdA = 20, kLdB = 68.
// Stages: a stage is little MMA work (8 HMMA for tf32 per warp), so more of them are in flight
// than in the dense tiles: 3 for float (3 x 5.75 KiB), 4 for 16-bit (4 x 3 KiB), 2 for float64
// (2 x 11 KiB; a DMMA stage is already 16 MMAs per warp, and shared memory is what bounds
// float64 residency).
using BsrTc_16x64x16_16x32_s3 =
    BsrTcConfig<GemmTcConfig<GemmShape<16, 64, 16>, GemmShape<16, 32, 16>, 3>>;
using BsrTc16_16x64x16_16x32_s4 =
    BsrTcConfig<GemmTcConfig16<GemmShape<16, 64, 16>, GemmShape<16, 32, 16>, 4>>;
using BsrTc64_16x64x16_16x32_s2 =
    BsrTcConfig<GemmTcConfig64<GemmShape<16, 64, 16>, GemmShape<16, 32, 16>, 2>>;

// 32-row blocks: a 32 x 64 tile, two warps of 32 x 32 (float, 16-bit: the dense kernel's warp
// tile) or four of 16 x 32 (float64), stages as above (float 3 x 7 KiB, 16-bit 4 x 3.75 KiB,
// float64 2 x 13.5 KiB; the epilogue's 32 x 68 accumulators fit in them).
using BsrTc_32x64x16_32x32_s3 =
    BsrTcConfig<GemmTcConfig<GemmShape<32, 64, 16>, GemmShape<32, 32, 16>, 3>>;
using BsrTc16_32x64x16_32x32_s4 =
    BsrTcConfig<GemmTcConfig16<GemmShape<32, 64, 16>, GemmShape<32, 32, 16>, 4>>;
using BsrTc64_32x64x16_16x32_s2 =
    BsrTcConfig<GemmTcConfig64<GemmShape<32, 64, 16>, GemmShape<16, 32, 16>, 2>>;

// The configuration of a precision (its element size) and block height.
template <TcPrecision P, int BlockRows>
using BsrTcDefaultConfig = std::conditional_t<
    BlockRows == 16,
    std::conditional_t<sizeof(TcElement<P>) == 4, BsrTc_16x64x16_16x32_s3,
                       std::conditional_t<sizeof(TcElement<P>) == 2, BsrTc16_16x64x16_16x32_s4,
                                          BsrTc64_16x64x16_16x32_s2>>,
    std::conditional_t<sizeof(TcElement<P>) == 4, BsrTc_32x64x16_32x32_s3,
                       std::conditional_t<sizeof(TcElement<P>) == 2, BsrTc16_32x64x16_32x32_s4,
                                          BsrTc64_32x64x16_16x32_s2>>>;

namespace tc_detail {

// Issues the copies of the stage of blocks [t, t + kSlots) (slot s valid when ok[s]; blk[s] its
// block index, jrow[s] = 8 x its block column): the blocks' values side by side into sA, the rows
// of B they multiply one under the other into sB.  Invalid slots are zero-filled in both (their
// source pointers clamped to the array bases: nothing read).  Consecutive threads take
// consecutive vectors (a block's values and a row of B are contiguous: coalesced).
template <typename Cfg, int VEC, typename E>
__device__ __forceinline__ void bsr_load_stage(E* stage, const E* __restrict__ values,
                                               const E* __restrict__ B, int cols, int n, int col0,
                                               const long long (&blk)[Cfg::kSlots],
                                               const int (&jrow)[Cfg::kSlots],
                                               const bool (&ok)[Cfg::kSlots]) {
  constexpr int kBytes = VEC * static_cast<int>(sizeof(E));
  constexpr int kRowVecs = Cfg::kBlockCols / VEC;         // vectors per block row
  constexpr int kBlockVecs = Cfg::kBlockRows * kRowVecs;  // vectors per block
  constexpr int kVecs = Cfg::kSlots * kBlockVecs;         // vectors of sA
  constexpr int kRounds = (kVecs + Cfg::kThreads - 1) / Cfg::kThreads;
#pragma unroll
  for (int it = 0; it < kRounds; ++it) {
    const int e = static_cast<int>(threadIdx.x) + it * Cfg::kThreads;
    if (kVecs % Cfg::kThreads != 0 && e >= kVecs) break;
    const int s = e / kBlockVecs, r = (e / kRowVecs) % Cfg::kBlockRows, c = (e % kRowVecs) * VEC;
    // the slot's block by selects (s is per thread; the arrays stay in registers)
    long long src = blk[0];
    bool valid = ok[0];
#pragma unroll
    for (int q = 1; q < Cfg::kSlots; ++q) {
      if (s == q) src = blk[q], valid = ok[q];
    }
    const long long off = valid ? src * Cfg::kBlockElements + r * Cfg::kBlockCols + c : 0;
    copy_vector<kBytes>(stage, r * Cfg::kLdA + s * Cfg::kBlockCols + c, values, off, valid);
  }
  E* sB = stage + Cfg::kStageA;
#pragma unroll
  for (int s = 0; s < Cfg::kSlots; ++s) {
    // rows of B past `cols` (a block column at the matrix edge) and columns past n are
    // zero-filled by stage_tile; an invalid slot passes 0 rows: all of it zero-filled
    stage_tile<Cfg::kBlockCols, Cfg::kN, Cfg::kLdB, VEC, Cfg::kThreads>(
        sB + s * Cfg::kBlockCols * Cfg::kLdB, B, ok[s] ? cols : 0, n, jrow[s], col0);
  }
}

}  // namespace tc_detail

// The bm x kN tile of C[b] at (bm * block_row, col0), bm = kBlockRows: C rows [row0, row0 + bm) =
// the blocks [begin, end) of the list (already clamped into [0, nblocks]) times the rows of B
// they select.
template <TcPrecision P, typename Cfg, int VEC>
__device__ __forceinline__ void bsr_tc_batched_device(int rows, int cols, int n, int col_blocks,
                                                      const int32_t* __restrict__ col_idx,
                                                      const TcElement<P>* __restrict__ values,
                                                      const TcElement<P>* __restrict__ B,
                                                      TcAccumulator<P>* __restrict__ C,
                                                      void* __restrict__ smem, int row0, int col0,
                                                      int begin, int end) {
  using namespace tc_detail;
  using E = TcElement<P>;
  using Acc = TcAccumulator<P>;
  static_assert(Cfg::kElementBytes == sizeof(E) && Cfg::kAccumulatorBytes == sizeof(Acc),
                "the configuration is for these element and accumulator sizes");
  static_assert(std::is_same_v<typename Cfg::InstructionShape, Inst<P>>,
                "the configuration is for this instruction shape");
  constexpr int kSlots = Cfg::kSlots;
  E* stages = static_cast<E*>(smem);
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int tiles_k = (end - begin + kSlots - 1) / kSlots;

  FragC<P> acc[Cfg::kFragsM][Cfg::kFragsN];
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; ++j) wmma::fill_fragment(acc[i][j], Acc(0));
  }

  // Stage t of the row: blocks begin + t * kSlots + s.  The block columns are read here, once
  // per block per thread (a broadcast load: every thread of the block reads the same word), and
  // checked: outside [0, col_blocks) the slot is zero-filled.
  auto issue = [&](int t, E* stage) {
    long long blk[kSlots];
    int jrow[kSlots];
    bool ok[kSlots];
#pragma unroll
    for (int s = 0; s < kSlots; ++s) {
      const int idx = begin + t * kSlots + s;
      const bool in_row = idx < end;
      const int j = in_row ? col_idx[idx] : 0;
      ok[s] = in_row && static_cast<unsigned>(j) < static_cast<unsigned>(col_blocks);
      blk[s] = ok[s] ? idx : 0;
      jrow[s] = ok[s] ? j * Cfg::kBlockCols : 0;
    }
    bsr_load_stage<Cfg, VEC>(stage, values, B, cols, n, col0, blk, jrow, ok);
  };

  // The pipeline of gemm_tc_device: a prologue of kStages - 1 stages, one commit per stage even
  // when it issues nothing (wait_prior counts groups), wait_prior + __syncthreads before a stage
  // is read, __syncthreads before it is refilled, a drain before the epilogue reuses the memory.
#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (s < tiles_k) issue(s, stages + s * Cfg::kStageElements);
    __pipeline_commit();
  }
  for (int t = 0; t < tiles_k; ++t) {
    const int next = t + Cfg::kStages - 1;
    if (next < tiles_k) issue(next, stages + (next % Cfg::kStages) * Cfg::kStageElements);
    __pipeline_commit();
    __pipeline_wait_prior(Cfg::kStages - 1);
    __syncthreads();
    mac_stage<P, Cfg>(stages + (t % Cfg::kStages) * Cfg::kStageElements, warp_m, warp_n, acc);
    __syncthreads();
  }
  __pipeline_wait_prior(0);
  __syncthreads();

  store_tile<P, Cfg>(acc, smem, C, rows, n, row0, col0, warp_m, warp_n);
}

// One thread block: position b = blockIdx.z + batch_offset, block row blockIdx.y + row_offset,
// columns [kN * blockIdx.x, + kN).  The row's block range is clamped into [0, nblocks] here, once.
template <TcPrecision P, typename Cfg, int VEC>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    bsr_tc_batched_kernel(int rows, int cols, int n, int row_blocks, int col_blocks,
                          const int32_t* __restrict__ row_ptr, const int32_t* __restrict__ col_idx,
                          const TcElement<P>* __restrict__ values, int nblocks,
                          const TcElement<P>* __restrict__ B, TcAccumulator<P>* __restrict__ C,
                          int row_offset, int batch_offset) {
  MW_DYNAMIC_SHARED(unsigned char, smem_raw);
  // 32-byte alignment for WMMA by pointer arithmetic on the shared pointer (gemm_tc_kernel's
  // reason: the compiler keeps LDS / STS).
  void* smem = smem_raw + ((32 - reinterpret_cast<uintptr_t>(smem_raw) % 32) % 32);
  const long long b = static_cast<long long>(blockIdx.z) + batch_offset;
  const int br = static_cast<int>(blockIdx.y) + row_offset;
  const int32_t* rp = row_ptr + b * (row_blocks + 1) + br;
  const int p0 = rp[0], p1 = rp[1];
  // std::min / max are host-only in nvcc
  const int begin = p0 < 0 ? 0 : p0 > nblocks ? nblocks : p0;
  const int end = p1 < begin ? begin : p1 > nblocks ? nblocks : p1;
  bsr_tc_batched_device<P, Cfg, VEC>(
      rows, cols, n, col_blocks, col_idx, values, B + b * cols * static_cast<long long>(n),
      C + b * rows * static_cast<long long>(n), smem, br * Cfg::kBlockRows,
      static_cast<int>(blockIdx.x) * Cfg::kN, begin, end);
}

// Grid (ceil(n / kN), block rows, batch); block rows and positions beyond grid.y / grid.z's 65535
// in further launches with row / batch offsets (gemm_tc_launch's chunking).
template <TcPrecision P, typename Cfg, int VEC>
cudaError_t bsr_tc_batched_launch(int batch, int rows, int cols, int n, const int32_t* row_ptr,
                                  const int32_t* col_idx, const TcElement<P>* values, int nblocks,
                                  const TcElement<P>* B, TcAccumulator<P>* C, cudaStream_t stream) {
  const int row_blocks = (rows + Cfg::kBlockRows - 1) / Cfg::kBlockRows;
  const int col_blocks = (cols + Cfg::kBlockCols - 1) / Cfg::kBlockCols;
  const int blocks_n = (n + Cfg::kN - 1) / Cfg::kN;
  const dim3 block(Cfg::kThreads);
  for (int r0 = 0; r0 < row_blocks; r0 += kGemmTcMaxGridYZ) {
    const int grid_y = std::min(row_blocks - r0, kGemmTcMaxGridYZ);
    for (int b0 = 0; b0 < batch; b0 += kGemmTcMaxGridYZ) {
      const dim3 grid(blocks_n, grid_y, std::min(batch - b0, kGemmTcMaxGridYZ));
      const cudaError_t err =
          launch(bsr_tc_batched_kernel<P, Cfg, VEC>, grid, block, Cfg::shared_bytes(), stream, rows,
                 cols, n, row_blocks, col_blocks, row_ptr, col_idx, values, nblocks, B, C, r0, b0);
      if (err != cudaSuccess) return err;
    }
  }
  return cudaSuccess;
}

// C[b] = A_bsr[b] · B[b] for every b in precision P, blocks of BlockRows x 8.  The copy width:
// 16-byte cp.async when the values and B are 16-byte aligned and n is a multiple of 16 bytes of
// elements (every row of B then starts 16-byte aligned; a block's rows are 16-byte multiples
// anyway), else one element per copy (4- / 8-byte cp.async, plain loads for 16-bit), as
// gemm_tc_batched chooses.
template <TcPrecision P, int BlockRows>
cudaError_t bsr_tc_batched_rows(int batch, int rows, int cols, int n, const int32_t* row_ptr,
                                const int32_t* col_idx, const TcElement<P>* values, int nblocks,
                                const TcElement<P>* B, TcAccumulator<P>* C, cudaStream_t stream) {
  using Cfg = BsrTcDefaultConfig<P, BlockRows>;
  constexpr int kVec = Cfg::kVec16;
  const bool aligned = n % kVec == 0 && reinterpret_cast<uintptr_t>(B) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(values) % 16 == 0;
  if (aligned)
    return bsr_tc_batched_launch<P, Cfg, kVec>(batch, rows, cols, n, row_ptr, col_idx, values,
                                               nblocks, B, C, stream);
  return bsr_tc_batched_launch<P, Cfg, 1>(batch, rows, cols, n, row_ptr, col_idx, values, nblocks,
                                          B, C, stream);
}

// The dispatcher: block_rows 16 or 32 (the caller has checked it).
template <TcPrecision P>
cudaError_t bsr_tc_batched(int batch, int rows, int cols, int n, int block_rows,
                           const int32_t* row_ptr, const int32_t* col_idx,
                           const TcElement<P>* values, int nblocks, const TcElement<P>* B,
                           TcAccumulator<P>* C, cudaStream_t stream) {
  if (block_rows == 32)
    return bsr_tc_batched_rows<P, 32>(batch, rows, cols, n, row_ptr, col_idx, values, nblocks, B, C,
                                      stream);
  return bsr_tc_batched_rows<P, 16>(batch, rows, cols, n, row_ptr, col_idx, values, nblocks, B, C,
                                    stream);
}

}  // namespace mw
