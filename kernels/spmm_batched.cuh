// Sparse batched products: C[b] = A_csr[b] · B[b] for every Winograd position b, one launch.
//
// In a layer: M[b] (K x P) = U[b] (K x C, pruned, batched CSR) · V[b] (C x P, dense).
// The batched CSR format (docs/sparse.md, magma_wino/sparse.py):
//
//   row_ptr  int32, batch x (rows + 1): matrix b's row i holds entries
//            row_ptr[b*(rows+1) + i] .. row_ptr[b*(rows+1) + i + 1] - 1 of the shared arrays
//   col_idx  int32, nnz   column of every entry (need not be sorted; repeats add up)
//   values   T,     nnz
//
// B is batch x cols x n and C batch x rows x n, row-major, contiguous per batch entry.
// C is fully written (empty rows give zeros).
//
// MAGMA's four layers:
//   spmm_batched_device<T, DIM_X, DIM_Y, BLK_M, BLK_N, NNZ_CHUNK, VEC, OFF32, FULL>
//       __device__ body: one block computes a BLK_M x BLK_N tile of C[b], rows in order;
//   spmm_batched_ordered_device<...>  the same tile, rows permuted by row_order
//   spmm_batched_kernel<..., VEC, OFF32, ORDERED>  __global__: b = blockIdx.z (+ chunk
//       offset), dynamic smem; picks the full-tile or the edge body (block-uniform)
//   spmm_batched_launch<T>     host: picks the named config, the vector width, the offset
//       width, the order, and the grid (ceil(n / BLK_N), ceil(rows / BLK_M), batch), chunking
//       y and z at 65535
//   mw_spmm_batched(_ex)       extern "C" in magma_wino.cu: argument checks, dtype dispatch
//
// Design.
// * Thread (tx, ty) owns rows row0 + ty + DIM_Y*i (i < THR_M) of the tile and THR_N columns,
//   in registers.  DIM_X = 32: a warp is one ty, so its 32 threads work on the same row, hence
//   the same nonzero at the same time (no divergence from unbalanced rows inside a warp), and
//   read consecutive columns of the same row of B: coalesced along n = P, the contiguous axis
//   of V.  VEC = 1: columns col0 + tx + DIM_X*j.  VEC = 16 / sizeof(T) (the wide tiles, where
//   n % VEC == 0 and B, C are 16-byte aligned): columns col0 + VEC*(tx + DIM_X*g) + q, one
//   float4 / double2 load (LDG.128) per nonzero and vector, C stored the same way.
// * The rows of a block are consecutive CSR rows, so their nonzeros are one contiguous range
//   [row_ptr[row0], row_ptr[row0 + BLK_M]).  It is staged in shared memory in chunks of
//   NNZ_CHUNK (values and column offsets, one coalesced load per chunk by all threads) and
//   every thread walks the part of its rows that falls in the chunk.  The (offset, value) reads
//   from shared memory are broadcasts (one address per warp).  Very long rows simply take
//   more chunks; empty rows take none and write zeros.
// * Branch-free nonzero loop: the checks are made once per staged entry (column index clamped,
//   value of a bad entry zeroed, both branch-free) or once per thread (the edge tile's column
//   predicates; full tiles, col0 + BLK_N <= n, have none), never per nonzero and thread.
// * OFF32 (every offset into B and C fits int32: always through the C ABI): offsets in 32
//   bits, staged column indices pre-scaled by n (Sputnik), one 32-bit add per nonzero to reach
//   its row of B.  Otherwise 64-bit offsets, column * n formed in 64 bits per nonzero.
// * Row order (Sputnik's row swizzle, for load balance): with row_order, slot s computes row
//   row_order[s] (BatchedCSR.row_order: rows sorted by nnz, descending, dealt so that a block's
//   warps get equal work).  The block's nonzeros are then not contiguous: each warp stages its
//   own row in rounds of DIM_X entries into its own DIM_X shared-memory slots, synchronised by
//   __syncwarp only.  Both paths sum a row in CSR order from 0: C is bitwise the same.
// * Why not a dense tile of A in shared memory: pruned U has 10-30% density, a dense tile
//   would waste the sparsity; a row-per-warp CSR walk keeps the work proportional to nnz.
// * Defensive: Python validates the CSR, the C layer checks sizes; the kernel additionally
//   clamps every row range into [0, nnz] (and, without an order, into the block's range), row-order
//   entries into [0, rows - 1], column indices into [0, cols - 1] with the value of an
//   out-of-range entry replaced by 0, so a corrupt CSR gives wrong numbers, never an
//   out-of-bounds access.  (That is why the launcher takes nnz: the length of col_idx and
//   values.)
//
// Density heuristic (the lead picks sparse vs dense per layer by density).  First principles,
// per SM of an A100/H100-class GPU, for the products only (the transforms cost the same):
//   dense (gemm_batched.cuh): 2*K*C*P flops, register-blocked 4x4, ~0.5 shared-memory loads
//     per FMA: compute-bound, time ~ K*C*P / FMA_rate.
//   sparse (this kernel): 2*nnz*P flops, but every FMA needs its own element of B, a load of
//     sizeof(T) bytes served by L1/L2 (the same B row is re-read by the BLK_M rows of a block
//     and by the ceil(rows/BLK_M) row blocks): bound by the L1 load bandwidth, time ~
//     nnz*P*sizeof(T) / L1_bandwidth.
//   Crossover density d* = (K*C*P / FMA_rate) / (K*C*P*sizeof(T) / L1_bw)
//                        = L1_bw / (sizeof(T) * FMA_rate)
//     fp32: 128 B/clk / (4 B * 128 FMA/clk) = 0.25;  fp64 (H100: 64 FMA/clk): 128 / (8*64) = 0.25.
//   Index overhead (4 more bytes per nonzero, amortised over BLK_N columns), load imbalance
//   between warps and the dense kernel's own distance from peak move it; expect sparse to win
//   below a density of roughly 0.2-0.3 against the FMA-based dense kernel (far lower, ~0.05,
//   against a tensor-core GEMM).  This is an estimate only: the crossover is to be measured
//   by the benchmark (`magma-wino bench`, density sweep) and the threshold set from that.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "launch.cuh"

namespace mw {

// Named tile configurations (a config is a type, not a numbered macro).
template <int DIM_X_, int DIM_Y_, int BLK_M_, int BLK_N_, int NNZ_CHUNK_>
struct SpmmConfig {
  static constexpr int DIM_X = DIM_X_, DIM_Y = DIM_Y_;
  static constexpr int BLK_M = BLK_M_, BLK_N = BLK_N_, NNZ_CHUNK = NNZ_CHUNK_;
  static constexpr int THREADS = DIM_X * DIM_Y;
  static constexpr int THR_M = BLK_M / DIM_Y, THR_N = BLK_N / DIM_X;
  static_assert(DIM_X == 32, "a warp must be one row of threads (coalesced B, no divergence)");
  static_assert(BLK_M % DIM_Y == 0 && BLK_N % DIM_X == 0, "register block must tile the block");
  static_assert(NNZ_CHUNK % THREADS == 0, "a chunk must load in whole rounds");
  // values (T) first, then the int32 column indices: T's alignment >= int32's.
  template <typename T>
  static constexpr size_t shared_bytes() {
    return static_cast<size_t>(NNZ_CHUNK) * (sizeof(T) + sizeof(int32_t));
  }
};

// 32 rows x 128 columns, 4 x 4 outputs per thread, 256 threads: the fp32 workhorse (P >= 128).
using SpmmTileWide = SpmmConfig<32, 8, 32, 128, 512>;
// 32 rows x 64 columns, 4 x 2 per thread: the fp64 workhorse (8 double accumulators, ~70
// registers, where 4 x 4 doubles need ~96; fp64 FMA throughput is the limit, not B loads).
using SpmmTileWide64 = SpmmConfig<32, 8, 32, 64, 256>;
// 16 rows x 32 columns, 4 x 1 per thread, 128 threads: few tiles (small P), small layers.
using SpmmTileNarrow = SpmmConfig<32, 4, 16, 32, 256>;

// The configuration per element type: Wide when P fills it, else Narrow.
template <typename T>
struct SpmmTiles {
  using Wide = SpmmTileWide;
  using Narrow = SpmmTileNarrow;
};
template <>
struct SpmmTiles<double> {
  using Wide = SpmmTileWide64;
  using Narrow = SpmmTileNarrow;
};

template <typename T>
__device__ __forceinline__ T spmm_fma(T a, T b, T c) {
  return fma(a, b, c);
}

// VEC consecutive elements, aligned for one 16-byte access (float4 / double2) when VEC > 1.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) SpmmVec {
  T x[VEC];
};

// VEC consecutive elements of B at p: one LDG.128 for VEC > 1 (p 16-byte aligned; the
// emulator checks it), a read-only-cache element load for VEC == 1.
template <typename T, int VEC>
__device__ __forceinline__ SpmmVec<T, VEC> spmm_load(const T* __restrict__ p) {
  if constexpr (VEC == 1) {
    SpmmVec<T, 1> v;
    v.x[0] = __ldg(p);
    return v;
  } else {
    using V = SpmmVec<T, VEC>;
    return MW_LOAD_VECTOR(V, p);
  }
}

// Path overrides of the launcher (the C ABI's MW_SPMM_* flags have the same values).  The
// launcher picks the fastest path the geometry allows; these force the general one, so that
// tests can check that every path computes bitwise the same C.
enum SpmmFlags : unsigned {
  kSpmmDefault = 0,
  kSpmmForceOffsets64 = 1u,  // 64-bit offsets into B and C even where 32 bits suffice
  kSpmmForceScalar = 2u,     // element loads of B even where 16-byte vectors would do
};

// FULL: the tile's BLK_N columns all lie inside n (no column predicate at all); otherwise the
// edge tile's per-thread column predicates are formed once, before the nonzero loop.
// VEC: consecutive columns per load (1, or 16 bytes of T where n % VEC == 0 and B, C are 16-byte
// aligned): thread tx owns columns col0 + VEC * (tx + DIM_X * g) + q (g < THR_N / VEC, q < VEC),
// so a warp still reads DIM_X * VEC consecutive elements of a row of B per load.
// OFF32: every offset into this b's B and C fits int32 (the launcher checked batch*cols*n and
// batch*rows*n); the staged column indices are then pre-scaled by n (Sputnik's trick), so a
// nonzero's row of B is one 32-bit offset away, no 64-bit multiply per nonzero.
template <typename T, int DIM_X, int DIM_Y, int BLK_M, int BLK_N, int NNZ_CHUNK, int VEC,
          bool OFF32, bool FULL>
__device__ __forceinline__ void spmm_batched_device(int rows, int cols, int n, int nnz,
                                                    int row_block,
                                                    const int32_t* __restrict__ row_ptr,  // this b
                                                    const int32_t* __restrict__ col_idx,  // shared
                                                    const T* __restrict__ values,         // shared
                                                    const T* __restrict__ B,              // this b
                                                    T* __restrict__ C,                    // this b
                                                    unsigned char* __restrict__ smem) {
  constexpr int THR_M = BLK_M / DIM_Y, THR_N = BLK_N / DIM_X, THREADS = DIM_X * DIM_Y;
  constexpr int GROUPS = THR_N / VEC;  // vector loads per thread and nonzero
  static_assert(THR_N % VEC == 0, "a thread's columns must be whole vectors");
  using Index = std::conditional_t<OFF32, int, long long>;
  T* __restrict__ s_val = reinterpret_cast<T*>(smem);  // [NNZ_CHUNK]
  // OFF32: column * n (the entry's row offset in B); else the column.
  int32_t* __restrict__ s_col =
      reinterpret_cast<int32_t*>(smem + sizeof(T) * NNZ_CHUNK);  // [NNZ_CHUNK]

  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * DIM_X + tx;
  const int row0 = row_block * BLK_M;
  const int col0 = blockIdx.x * BLK_N;
  const int row_end = min(row0 + BLK_M, rows);

  // The block's nonzero range, clamped to [0, nnz] (uniform across the block, so the chunk
  // loop below has block-uniform trip counts and its barriers are safe).  cols == 0 (only
  // reachable through the C++ launcher): no entry can be valid, so the range is empty.
  const int blk_lo = min(max(__ldg(row_ptr + row0), 0), nnz);
  const int blk_hi = cols > 0 ? min(max(__ldg(row_ptr + row_end), blk_lo), nnz) : blk_lo;

  // This thread's rows, each range clamped into the block's range.
  int lo[THR_M], hi[THR_M];
#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
    const int r = row0 + ty + DIM_Y * i;
    if (r < rows) {
      lo[i] = min(max(__ldg(row_ptr + r), blk_lo), blk_hi);
      hi[i] = min(max(__ldg(row_ptr + r + 1), lo[i]), blk_hi);
    } else {
      lo[i] = hi[i] = blk_lo;  // no work
    }
  }

  // Column predicates of an edge tile, once per thread and vector (a full tile has none).  A
  // vector lies wholly inside or outside n: VEC > 1 only where n % VEC == 0.
  bool col_ok[GROUPS];
#pragma unroll
  for (int g = 0; g < GROUPS; ++g) col_ok[g] = FULL || col0 + VEC * (tx + DIM_X * g) < n;

  T acc[THR_M][THR_N];
#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
#pragma unroll
    for (int j = 0; j < THR_N; ++j) acc[i][j] = T(0);
  }

  // This thread's first column of B in every row; vector g starts + VEC * DIM_X * g further.
  const T* __restrict__ B_col = B + col0 + VEC * tx;
  const unsigned last_col = static_cast<unsigned>(cols - 1);  // cols >= 1 (checked by the C ABI)

  // The chunk start advances in 64 bits: blk_hi can lie within NNZ_CHUNK of INT_MAX.
  for (long long cs_wide = blk_lo; cs_wide < blk_hi; cs_wide += NNZ_CHUNK) {
    const int cs = static_cast<int>(cs_wide);
    const int len = min(NNZ_CHUNK, blk_hi - cs);
    // Stage the chunk: consecutive threads read consecutive entries (coalesced).  The defence
    // against a corrupt column index happens here, once per entry and block, branch-free: the
    // index is clamped into [0, cols - 1] (an unsigned min also maps c < 0 there) and the value
    // of an out-of-range entry becomes 0 (a select), so such an entry adds nothing and the
    // nonzero loop below needs no test at all.
    for (int t = tid; t < len; t += THREADS) {
      const int c = __ldg(col_idx + cs + t);
      const T v = __ldg(values + cs + t);
      const bool in_range = static_cast<unsigned>(c) <= last_col;
      const unsigned cc = min(static_cast<unsigned>(c), last_col);
      // (cols - 1) * n < batch * cols * n <= INT_MAX under OFF32: the product fits.
      s_col[t] = static_cast<int>(OFF32 ? cc * static_cast<unsigned>(n) : cc);
      s_val[t] = in_range ? v : T(0);
    }
    __syncthreads();

#pragma unroll
    for (int i = 0; i < THR_M; ++i) {
      const int e_lo = max(lo[i], cs) - cs;
      const int e_hi = min(hi[i], cs + len) - cs;
      // Branch-free body: every staged entry is a valid column (see the staging above).
      for (int e = e_lo; e < e_hi; ++e) {
        const int c = s_col[e];  // broadcast: the whole warp reads the same entry
        const T v = s_val[e];
        const T* __restrict__ b_row = OFF32 ? B_col + c : B_col + static_cast<long long>(c) * n;
#pragma unroll
        for (int g = 0; g < GROUPS; ++g) {
          if (col_ok[g]) {
            const SpmmVec<T, VEC> bv = spmm_load<T, VEC>(b_row + VEC * DIM_X * g);
#pragma unroll
            for (int q = 0; q < VEC; ++q)
              acc[i][g * VEC + q] = spmm_fma(v, bv.x[q], acc[i][g * VEC + q]);
          }
        }
      }
    }
    // The next chunk overwrites s_val/s_col: wait until every thread is done with them.
    __syncthreads();
  }

  // Write the tile; rows without nonzeros write their zeros.  Stores are coalesced along n.
#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
    const int r = row0 + ty + DIM_Y * i;
    if (r >= rows) continue;
    T* __restrict__ c_row = C + static_cast<Index>(r) * n;
#pragma unroll
    for (int g = 0; g < GROUPS; ++g) {
      if (!col_ok[g]) continue;
      T* __restrict__ c_at = c_row + col0 + VEC * (tx + DIM_X * g);
      if constexpr (VEC == 1) {
        *c_at = acc[i][g];
      } else {
        SpmmVec<T, VEC> cv;
#pragma unroll
        for (int q = 0; q < VEC; ++q) cv.x[q] = acc[i][g * VEC + q];
        MW_STORE_VECTOR(c_at, cv);
      }
    }
  }
}

// The same tile with its rows permuted: slot row0 + ty + DIM_Y * i of the block computes row
// row_order[slot] (row_order: this b's rows entries; Sputnik's row swizzle, see BatchedCSR.
// row_order: rows sorted by nnz and dealt so that a block's warps get similar work).  The
// block's rows are no longer one contiguous nonzero range, so every warp stages its own rows in
// rounds of DIM_X entries into its own DIM_X slots of shared memory (one coalesced load per
// round, __syncwarp instead of block barriers: a warp never waits for the others).  The sum
// per row is taken in the same order as in spmm_batched_device (CSR order, from 0), so the
// result is bitwise the same.  Defensive as there: an entry of row_order is clamped into
// [0, rows - 1] (a corrupt order may compute a row twice and leave another unwritten, never
// access out of bounds), each row range into [0, nnz], columns as in the staging there.
template <typename T, int DIM_X, int DIM_Y, int BLK_M, int BLK_N, int NNZ_CHUNK, int VEC,
          bool OFF32, bool FULL>
__device__ __forceinline__ void spmm_batched_ordered_device(
    int rows, int cols, int n, int nnz, int row_block,
    const int32_t* __restrict__ row_ptr,    // this b
    const int32_t* __restrict__ row_order,  // this b
    const int32_t* __restrict__ col_idx,    // shared
    const T* __restrict__ values,           // shared
    const T* __restrict__ B,                // this b
    T* __restrict__ C,                      // this b
    unsigned char* __restrict__ smem) {
  constexpr int THR_M = BLK_M / DIM_Y, THR_N = BLK_N / DIM_X;
  constexpr int GROUPS = THR_N / VEC;
  static_assert(THR_N % VEC == 0, "a thread's columns must be whole vectors");
  static_assert(NNZ_CHUNK >= DIM_X * DIM_Y, "every warp needs DIM_X staging slots");
  using Index = std::conditional_t<OFF32, int, long long>;
  const int tx = threadIdx.x, ty = threadIdx.y;
  // This warp's DIM_X slots of the block's staging arrays.
  T* __restrict__ s_val = reinterpret_cast<T*>(smem) + DIM_X * ty;
  int32_t* __restrict__ s_col =
      reinterpret_cast<int32_t*>(smem + sizeof(T) * NNZ_CHUNK) + DIM_X * ty;
  const int row0 = row_block * BLK_M;
  const int col0 = blockIdx.x * BLK_N;

  int row_of[THR_M], lo[THR_M], hi[THR_M];
#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
    const int slot = row0 + ty + DIM_Y * i;
    if (slot < rows && cols > 0) {
      const int r = static_cast<int>(
          min(static_cast<unsigned>(__ldg(row_order + slot)), static_cast<unsigned>(rows - 1)));
      row_of[i] = r;
      lo[i] = min(max(__ldg(row_ptr + r), 0), nnz);
      hi[i] = min(max(__ldg(row_ptr + r + 1), lo[i]), nnz);
    } else {
      row_of[i] = slot < rows ? static_cast<int>(min(static_cast<unsigned>(__ldg(row_order + slot)),
                                                     static_cast<unsigned>(rows - 1)))
                              : -1;
      lo[i] = hi[i] = 0;  // no work
    }
  }

  bool col_ok[GROUPS];
#pragma unroll
  for (int g = 0; g < GROUPS; ++g) col_ok[g] = FULL || col0 + VEC * (tx + DIM_X * g) < n;

  T acc[THR_M][THR_N];
#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
#pragma unroll
    for (int j = 0; j < THR_N; ++j) acc[i][j] = T(0);
  }

  const T* __restrict__ B_col = B + col0 + VEC * tx;
  const unsigned last_col = static_cast<unsigned>(cols - 1);

#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
    // Warp-uniform trip count (the whole warp works on row_of[i]); 64-bit start as in the
    // chunk loop of spmm_batched_device (hi can lie within DIM_X of INT_MAX).
    for (long long base_wide = lo[i]; base_wide < hi[i]; base_wide += DIM_X) {
      const int base = static_cast<int>(base_wide);
      const int len = min(DIM_X, hi[i] - base);
      if (tx < len) {  // staging, not the nonzero loop: clamp and select as there
        const int c = __ldg(col_idx + base + tx);
        const T v = __ldg(values + base + tx);
        const bool in_range = static_cast<unsigned>(c) <= last_col;
        const unsigned cc = min(static_cast<unsigned>(c), last_col);
        s_col[tx] = static_cast<int>(OFF32 ? cc * static_cast<unsigned>(n) : cc);
        s_val[tx] = in_range ? v : T(0);
      }
      __syncwarp();
      for (int e = 0; e < len; ++e) {
        const int c = s_col[e];
        const T v = s_val[e];
        const T* __restrict__ b_row = OFF32 ? B_col + c : B_col + static_cast<long long>(c) * n;
#pragma unroll
        for (int g = 0; g < GROUPS; ++g) {
          if (col_ok[g]) {
            const SpmmVec<T, VEC> bv = spmm_load<T, VEC>(b_row + VEC * DIM_X * g);
#pragma unroll
            for (int q = 0; q < VEC; ++q)
              acc[i][g * VEC + q] = spmm_fma(v, bv.x[q], acc[i][g * VEC + q]);
          }
        }
      }
      // The next round overwrites this warp's slots.
      __syncwarp();
    }
  }

#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
    if (row_of[i] < 0) continue;
    T* __restrict__ c_row = C + static_cast<Index>(row_of[i]) * n;
#pragma unroll
    for (int g = 0; g < GROUPS; ++g) {
      if (!col_ok[g]) continue;
      T* __restrict__ c_at = c_row + col0 + VEC * (tx + DIM_X * g);
      if constexpr (VEC == 1) {
        *c_at = acc[i][g];
      } else {
        SpmmVec<T, VEC> cv;
#pragma unroll
        for (int q = 0; q < VEC; ++q) cv.x[q] = acc[i][g * VEC + q];
        MW_STORE_VECTOR(c_at, cv);
      }
    }
  }
}

template <typename T, int DIM_X, int DIM_Y, int BLK_M, int BLK_N, int NNZ_CHUNK, int VEC,
          bool OFF32, bool ORDERED>
// Minimum 2 blocks per SM: gives ptxas an explicit register budget (65536 / (2 * threads) =
// 128 for 256 threads).  Without it, CUDA 13's ptxas picked 48-80 registers for the 256-thread
// fp64 tiles and spilled; with it every configuration compiles with zero spills (sm_80, sm_90).
__global__ void __launch_bounds__(DIM_X* DIM_Y, 2)
    spmm_batched_kernel(int rows, int cols, int n, int nnz, const int32_t* __restrict__ row_ptr,
                        const int32_t* __restrict__ col_idx, const T* __restrict__ values,
                        const int32_t* __restrict__ row_order, const T* __restrict__ B,
                        T* __restrict__ C, int row_block_offset, int batch_offset) {
  using Index = std::conditional_t<OFF32, int, long long>;
  MW_DYNAMIC_SHARED(unsigned char, smem);
  const Index b = static_cast<Index>(blockIdx.z) + batch_offset;
  const int row_block = static_cast<int>(blockIdx.y) + row_block_offset;
  // row_ptr: batch * (rows + 1) entries, not covered by the OFF32 check; once per block.
  const int32_t* rp = row_ptr + static_cast<long long>(b) * (rows + 1);
  const T* Bb = B + b * cols * static_cast<Index>(n);
  T* Cb = C + b * rows * static_cast<Index>(n);
  // Block-uniform choice: the full tiles (all but the last column of blocks) run without any
  // column predicate; only the edge tile pays for them.
  const bool full = static_cast<int>(blockIdx.x) * BLK_N + BLK_N <= n;
  if constexpr (ORDERED) {
    const int32_t* ro = row_order + static_cast<long long>(b) * rows;
    if (full)
      spmm_batched_ordered_device<T, DIM_X, DIM_Y, BLK_M, BLK_N, NNZ_CHUNK, VEC, OFF32, true>(
          rows, cols, n, nnz, row_block, rp, ro, col_idx, values, Bb, Cb, smem);
    else
      spmm_batched_ordered_device<T, DIM_X, DIM_Y, BLK_M, BLK_N, NNZ_CHUNK, VEC, OFF32, false>(
          rows, cols, n, nnz, row_block, rp, ro, col_idx, values, Bb, Cb, smem);
  } else {
    (void)row_order;
    if (full)
      spmm_batched_device<T, DIM_X, DIM_Y, BLK_M, BLK_N, NNZ_CHUNK, VEC, OFF32, true>(
          rows, cols, n, nnz, row_block, rp, col_idx, values, Bb, Cb, smem);
    else
      spmm_batched_device<T, DIM_X, DIM_Y, BLK_M, BLK_N, NNZ_CHUNK, VEC, OFF32, false>(
          rows, cols, n, nnz, row_block, rp, col_idx, values, Bb, Cb, smem);
  }
}

// Grid dimension limit of CUDA for y and z.
constexpr int kSpmmMaxGridYZ = 65535;

template <typename T, typename Cfg, int VEC, bool OFF32, bool ORDERED>
cudaError_t spmm_batched_launch_grid(int batch, int rows, int cols, int n, const int32_t* row_ptr,
                                     const int32_t* col_idx, const T* values, int nnz,
                                     const int32_t* row_order, const T* B, T* C,
                                     cudaStream_t stream) {
  const int blocks_m = (rows + Cfg::BLK_M - 1) / Cfg::BLK_M;
  const int blocks_n = (n + Cfg::BLK_N - 1) / Cfg::BLK_N;
  const dim3 block(Cfg::DIM_X, Cfg::DIM_Y);
  auto kernel = spmm_batched_kernel<T, Cfg::DIM_X, Cfg::DIM_Y, Cfg::BLK_M, Cfg::BLK_N,
                                    Cfg::NNZ_CHUNK, VEC, OFF32, ORDERED>;
  // Row blocks and batch entries beyond the y / z limits: further launches with offsets.
  for (int rb = 0; rb < blocks_m; rb += kSpmmMaxGridYZ) {
    for (int b0 = 0; b0 < batch; b0 += kSpmmMaxGridYZ) {
      const dim3 grid(blocks_n, std::min(blocks_m - rb, kSpmmMaxGridYZ),
                      std::min(batch - b0, kSpmmMaxGridYZ));
      const cudaError_t err =
          launch(kernel, grid, block, Cfg::template shared_bytes<T>(), stream, rows, cols, n, nnz,
                 row_ptr, col_idx, values, row_order, B, C, rb, b0);
      if (err != cudaSuccess) return err;
    }
  }
  return cudaSuccess;
}

// The row order: the permuted path only when one is given.
template <typename T, typename Cfg, int VEC, bool OFF32>
cudaError_t spmm_batched_launch_config(int batch, int rows, int cols, int n, const int32_t* row_ptr,
                                       const int32_t* col_idx, const T* values, int nnz,
                                       const int32_t* row_order, const T* B, T* C,
                                       cudaStream_t stream) {
  if (row_order != nullptr)
    return spmm_batched_launch_grid<T, Cfg, VEC, OFF32, true>(
        batch, rows, cols, n, row_ptr, col_idx, values, nnz, row_order, B, C, stream);
  return spmm_batched_launch_grid<T, Cfg, VEC, OFF32, false>(batch, rows, cols, n, row_ptr, col_idx,
                                                             values, nnz, row_order, B, C, stream);
}

// The offset width for one configuration and vector width (see spmm_batched_launch).
template <typename T, typename Cfg, int VEC>
cudaError_t spmm_batched_launch_vec(int batch, int rows, int cols, int n, const int32_t* row_ptr,
                                    const int32_t* col_idx, const T* values, int nnz,
                                    const int32_t* row_order, const T* B, T* C, cudaStream_t stream,
                                    unsigned flags) {
  // 32-bit offsets when every offset into B and C fits (always so through the C ABI, which
  // refuses arrays of 2^31 elements; the C++ launcher itself takes any int sizes).
  const bool off32 = (flags & kSpmmForceOffsets64) == 0 &&
                     static_cast<long long>(batch) * cols * n <= INT_MAX &&
                     static_cast<long long>(batch) * rows * n <= INT_MAX;
  if (off32)
    return spmm_batched_launch_config<T, Cfg, VEC, true>(batch, rows, cols, n, row_ptr, col_idx,
                                                         values, nnz, row_order, B, C, stream);
  return spmm_batched_launch_config<T, Cfg, VEC, false>(batch, rows, cols, n, row_ptr, col_idx,
                                                        values, nnz, row_order, B, C, stream);
}

// The vector width for one configuration: 16-byte loads of B (and stores of C) when a thread's
// columns hold whole vectors, n % VEC == 0 (every row of B and C starts 16-byte aligned) and
// both base pointers are 16-byte aligned; element loads otherwise.
template <typename T, typename Cfg>
cudaError_t spmm_batched_launch_tile(int batch, int rows, int cols, int n, const int32_t* row_ptr,
                                     const int32_t* col_idx, const T* values, int nnz,
                                     const int32_t* row_order, const T* B, T* C,
                                     cudaStream_t stream, unsigned flags) {
  constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));
  constexpr int VEC = Cfg::THR_N % kVec16 == 0 ? kVec16 : 1;
  if constexpr (VEC > 1) {
    const bool vec = (flags & kSpmmForceScalar) == 0 && n % VEC == 0 &&
                     reinterpret_cast<uintptr_t>(B) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(C) % 16 == 0;
    if (vec)
      return spmm_batched_launch_vec<T, Cfg, VEC>(batch, rows, cols, n, row_ptr, col_idx, values,
                                                  nnz, row_order, B, C, stream, flags);
  }
  return spmm_batched_launch_vec<T, Cfg, 1>(batch, rows, cols, n, row_ptr, col_idx, values, nnz,
                                            row_order, B, C, stream, flags);
}

// C[b] = A_csr[b] · B[b], b < batch.  nnz is the length of col_idx and values (every row range
// is clamped to it).  Sizes must make every index fit (checked by mw_spmm_batched); nothing is
// launched, and cudaSuccess returned, when there is nothing to compute (batch, rows or n == 0).
// With cols == 0 every product is empty and C is written with zeros.  flags: SpmmFlags.
template <typename T>
cudaError_t spmm_batched_launch(int batch, int rows, int cols, int n, const int32_t* row_ptr,
                                const int32_t* col_idx, const T* values, int nnz, const T* B, T* C,
                                cudaStream_t stream, unsigned flags = kSpmmDefault,
                                const int32_t* row_order = nullptr) {
  if (batch < 0 || rows < 0 || cols < 0 || n < 0 || nnz < 0) return cudaErrorInvalidValue;
  if (batch == 0 || rows == 0 || n == 0) return cudaSuccess;
  using Wide = typename SpmmTiles<T>::Wide;
  using Narrow = typename SpmmTiles<T>::Narrow;
  if (n >= Wide::BLK_N)
    return spmm_batched_launch_tile<T, Wide>(batch, rows, cols, n, row_ptr, col_idx, values, nnz,
                                             row_order, B, C, stream, flags);
  return spmm_batched_launch_tile<T, Narrow>(batch, rows, cols, n, row_ptr, col_idx, values, nnz,
                                             row_order, B, C, stream, flags);
}

// The signature without nnz cannot bound the row ranges of a corrupt CSR: deliberately
// unavailable.  Pass nnz (the length of col_idx / values) after values.
template <typename T>
cudaError_t spmm_batched_launch(int batch, int rows, int cols, int n, const int32_t* row_ptr,
                                const int32_t* col_idx, const T* values, const T* B, T* C,
                                cudaStream_t stream) = delete;

}  // namespace mw
