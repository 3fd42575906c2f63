// Tensor-core batched products over channels: C[b] = A[b] · B[b] on tensor cores.  A and B are
// float32 in memory (WMMA m16n16k8, precision::tf32) or 16-bit (WMMA m16n16k16, __half or
// __nv_bfloat16), with float32 accumulation and C; or float64 (DMMA: WMMA m8n8k4 double), with
// float64 accumulation and C.
//
// In a layer: M[b] (K x P) = U[b] (K x C) · V[b] (C x P), so m = K, n = P, k = C.  All matrices
// are row-major and contiguous per batch entry (A: batch x m x k, B: batch x k x n, C: batch x
// m x n).  MAGMA's four layers:
//
//   gemm_tc_device<P, Cfg, VEC>   one thread block computes a kM x kN tile of C[b] over a range
//                                 of k slices (all of them, or one split-K partition)
//   gemm_tc_kernel<P, Cfg, VEC>   __global__: picks b = blockIdx.z (+ chunk offset), the column
//                                 block and the split-K partition from blockIdx.x
//   gemm_tc_launch<P, Cfg, VEC>   host: grid (ceil(n/kN) * splits, ceil(m/kM), batch), chunked
//   gemm_tc_plan<P>               host: the configuration and split-K factor for (m, n, k, batch)
//   gemm_tc_batched<P>            host: runs the plan: configuration, copy width, split-K
//
// Split-K (deterministic): with S > 1 partitions of the k slices, partition s writes its partial
// C tile (accumulator type: float, double for fp64) to workspace[s][b] (S x batch x m x n, given
// by the caller), and gemm_tc_splitk_reduce_kernel then sums the S partials in the fixed order
// s = 0, 1, .., S - 1 into C: no atomics, the result does not depend on block scheduling.
//
// The element type of A and B follows the precision (TcOperand<P>): float for tf32 / tf32x3,
// __half for fp16, __nv_bfloat16 for bf16, double for fp64; the mainloop, staging and epilogue
// are the same code for all five, only the fragment conversion (mac_stage), the accumulator type
// and the configuration differ.
//
// Precisions (TcPrecision):
//   kTf32    one TF32 product: every operand rounded to TF32 (__float_to_tf32, round to nearest)
//            after its fragment is loaded; relative error ~ 2^-11 per operand.
//   kTf32x3  3xTF32 (CUTLASS's mma_tensor_op_fast_f32): a = a_hi + a_lo with a_hi = tf32(a),
//            a_lo = tf32(a - a_hi) (a - a_hi is exact in float); acc += a_hi·b_lo + a_lo·b_hi
//            + a_hi·b_hi, the small terms first; a_lo·b_lo (~2^-22 relative) is dropped:
//            float32-level accuracy.
//   kBf16,   A and B already 16-bit (rounded by whoever wrote them: the transforms' _ex entries);
//   kFp16    products of 16-bit values are exact on the tensor core, sums in float32.
//   kFp64    DMMA: float64 fused multiply-adds on the tensor core (sm_80+), as exact as DFMA.
//
// Mainloop (kStages stages: 2 for float operands, 3 for 16-bit): the k slices of A (kM x kK)
// and B (kK x kN) are staged in shared memory by __pipeline_memcpy_async (cp.async), one commit
// per stage even when the stage issues no copy (so that wait_prior(kStages - 1) counts right),
// wait_prior + __syncthreads before a stage is read, __syncthreads before it is refilled, a
// drain (wait_prior(0) + __syncthreads) before the shared memory is reused by the epilogue.
// Edges: elements outside the matrix are zero-filled by the copy itself (the zero-fill form,
// src-size 0: nothing is read, the source pointer is clamped to the matrix base; the plain
// 16-bit loads store a zero without reading), so the MMA loop has no bounds checks; the
// epilogue stores the accumulators to shared memory (store_matrix_sync) and writes C with
// guarded, coalesced global stores — never out of bounds.
// 16-byte copies only when every row is 16-byte aligned (k and n multiples of 16 bytes of
// elements: 4 floats or 8 16-bit values, 16-byte aligned bases); otherwise 4-byte cp.async for
// float and, for 16-bit operands (cp.async has no 2-byte size, and an odd k or n leaves pairs
// 2-byte aligned), plain 2-byte loads and shared stores -- the same pipeline, the stage being
// filled is not read before the barriers that already order the asynchronous copies.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_pipeline.h>
#include <mma.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "launch.cuh"

namespace mw {

// The numeric values are fixed: tools/kernel_report.py names (TcPrecision)N by them.
enum class TcPrecision { kTf32 = 0, kTf32x3 = 1, kBf16 = 2, kFp16 = 3, kFp64 = 4 };

template <int M_, int N_, int K_>
struct GemmShape {
  static constexpr int kM = M_, kN = N_, kK = K_;
};

namespace tc_detail {
namespace wmma = ::nvcuda::wmma;
}  // namespace tc_detail

// What a precision stores and feeds the tensor core: the element type of A and B in memory and
// in shared memory, the WMMA fragment element type, the instruction shape, the accumulator (and
// C) type.
template <TcPrecision P>
struct TcOperand;
template <>
struct TcOperand<TcPrecision::kTf32> {
  using Element = float;
  using Fragment = tc_detail::wmma::precision::tf32;
  using InstructionShape = GemmShape<16, 16, 8>;
  using Accumulator = float;
};
template <>
struct TcOperand<TcPrecision::kTf32x3> : TcOperand<TcPrecision::kTf32> {};
template <>
struct TcOperand<TcPrecision::kFp16> {
  using Element = __half;
  using Fragment = __half;
  using InstructionShape = GemmShape<16, 16, 16>;
  using Accumulator = float;
};
template <>
struct TcOperand<TcPrecision::kBf16> {
  using Element = __nv_bfloat16;
  using Fragment = __nv_bfloat16;
  using InstructionShape = GemmShape<16, 16, 16>;
  using Accumulator = float;
};
// DMMA (sm_80+): WMMA m8n8k4 double, double accumulation and C.
template <>
struct TcOperand<TcPrecision::kFp64> {
  using Element = double;
  using Fragment = double;
  using InstructionShape = GemmShape<8, 8, 4>;
  using Accumulator = double;
};
template <TcPrecision P>
using TcElement = typename TcOperand<P>::Element;
template <TcPrecision P>
using TcAccumulator = typename TcOperand<P>::Accumulator;

// A tensor-core tile configuration (CUTLASS habit: shapes are types), for operands of
// kElementBytes bytes.  Sizes in elements of the operand type except the epilogue's
// (accumulators: float, double for 8-byte operands).
//   ThreadblockShape  the C tile of one block and the k slice staged per pipeline stage
//   WarpShape         the C tile of one warp (WarpShape / InstructionShape fragments)
//   kStages           shared-memory stages of the cp.async pipeline
//   kPadA, kPadB      row padding of the staged A and B slices (bank conflicts; see the configs)
// The epilogue tile sC [kM][kN + 4] accumulators reuses the stages.
template <int ElementBytes_, typename ThreadblockShape_, typename WarpShape_,
          typename InstructionShape_, int Stages_, int PadA_, int PadB_>
struct GemmTcLayout {
  using ThreadblockShape = ThreadblockShape_;
  using WarpShape = WarpShape_;
  using InstructionShape = InstructionShape_;
  static constexpr int kElementBytes = ElementBytes_;
  static constexpr int kAccumulatorBytes = kElementBytes == 8 ? 8 : 4;  // double / float
  static constexpr int kStages = Stages_;
  static constexpr int kM = ThreadblockShape::kM, kN = ThreadblockShape::kN;
  static constexpr int kK = ThreadblockShape::kK;
  static constexpr int kWarpsM = kM / WarpShape::kM, kWarpsN = kN / WarpShape::kN;
  static constexpr int kWarps = kWarpsM * kWarpsN;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kFragsM = WarpShape::kM / InstructionShape::kM;
  static constexpr int kFragsN = WarpShape::kN / InstructionShape::kN;
  static constexpr int kPadA = PadA_, kPadB = PadB_, kPadC = 4;
  static constexpr int kLdA = kK + kPadA;  // sA: [kM][kLdA] per stage
  static constexpr int kLdB = kN + kPadB;  // sB: [kK][kLdB] per stage
  static constexpr int kLdC = kN + kPadC;  // sC: [kM][kLdC] accumulators (epilogue)
  static constexpr int kStageA = kM * kLdA, kStageB = kK * kLdB;
  static constexpr int kStageElements = kStageA + kStageB;
  static constexpr int kVec16 = 16 / kElementBytes;  // elements per 16-byte copy
  static constexpr size_t kStagesBytes = size_t(kElementBytes) * kStages * kStageElements;
  static constexpr size_t kEpilogueBytes = size_t(kAccumulatorBytes) * kM * kLdC;

  static_assert(kM % WarpShape::kM == 0 && kN % WarpShape::kN == 0, "warps must tile the block");
  static_assert(WarpShape::kM % InstructionShape::kM == 0 &&
                    WarpShape::kN % InstructionShape::kN == 0,
                "MMA tiles must tile the warp");
  static_assert(kK % InstructionShape::kK == 0, "the k slice is whole MMA steps");
  static_assert(kK % kVec16 == 0 && kN % kVec16 == 0, "16-byte copies must tile the slices");
  // WMMA: ldm a multiple of 16 bytes, fragment pointers 32-byte aligned.  Fragment rows start at
  // multiples of InstructionShape::kM rows, fragment columns at multiples of kN elements, k steps
  // at multiples of kK columns of A / rows of B.
  static_assert(kLdA * kElementBytes % 16 == 0 && kLdB * kElementBytes % 16 == 0 &&
                    kLdC * kAccumulatorBytes % 16 == 0,
                "WMMA ldm: 16 bytes");
  static_assert(InstructionShape::kK * kElementBytes % 32 == 0 &&
                    InstructionShape::kK * kLdB * kElementBytes % 32 == 0 &&
                    InstructionShape::kM * kLdA * kElementBytes % 32 == 0 &&
                    InstructionShape::kN * kElementBytes % 32 == 0 &&
                    InstructionShape::kM * kLdC * kAccumulatorBytes % 32 == 0 &&
                    InstructionShape::kN * kAccumulatorBytes % 32 == 0,
                "fragment pointers stay 32-byte aligned");
  static_assert(kStageA * kElementBytes % 32 == 0 && kStageElements * kElementBytes % 32 == 0,
                "stages 32-byte aligned");
  static_assert(kStages >= 2, "a pipeline has at least two stages");
  static_assert(kThreads <= 1024, "block size");
  // 32 bytes of slack: the kernel rounds the dynamic shared memory base up to 32 bytes.
  static constexpr size_t shared_bytes() {
    return (kStagesBytes > kEpilogueBytes ? kStagesBytes : kEpilogueBytes) + 32;
  }
};

// float operands (tf32, tf32x3), WMMA m16n16k8.  Padding (kPadA = 4, kPadB = 8 floats), for bank
// conflicts (our inference from mma.sync's m16n8k8 TF32 operand mapping, which the fragment loads
// follow): an A fragment is read as 8 rows x 4 consecutive k per access, so the row stride must
// spread 8 rows over the 8 four-bank groups: kK + 4 = 20 floats (20 r mod 32 = 0, 20, 8, 28, 16,
// 4, 24, 12) is conflict-free, kK + 8 = 24 is not (r = 0 and r = 4 collide); a B fragment is read
// as 4 k rows x 8 consecutive columns, so the stride must be 8 mod 32: kN + 8 = 72 is
// conflict-free, kN + 4 = 68 is 2-way.
template <typename ThreadblockShape_, typename WarpShape_, int Stages_>
struct GemmTcConfig
    : GemmTcLayout<4, ThreadblockShape_, WarpShape_, GemmShape<16, 16, 8>, Stages_, 4, 8> {};

// 16-bit operands (fp16, bf16), WMMA m16n16k16.  Padding 8 elements (16 bytes) on both operands:
// a 16-bit fragment is loaded as ldmatrix-style 8 x 8 blocks (for A 8 rows of 8 consecutive k,
// for row-major B 8 k rows of 8 consecutive columns, transposed), each phase reading 8 rows of
// 16 bytes; those are conflict-free when the row stride, in 16-byte units, is odd (8 rows hit
// the 8 distinct four-bank groups of a 128-byte wavefront).  kK + 8 = 40 halves = 5 units and
// kN + 8 = 72 halves = 9 units are; unpadded 32 (4 units: 4-way) and 64 (8 units: 8-way) are
// not.  16 bytes is also the least padding that keeps ldm a multiple of 16 bytes.
template <typename ThreadblockShape_, typename WarpShape_, int Stages_>
struct GemmTcConfig16
    : GemmTcLayout<2, ThreadblockShape_, WarpShape_, GemmShape<16, 16, 16>, Stages_, 8, 8> {};

// float64 operands (fp64 on DMMA), WMMA m8n8k4 double.  Padding 4 doubles (32 bytes) on both
// operands, for bank conflicts (our inference from mma.sync m8n8k4's f64 operand mapping: lane l
// holds A[l / 4][l % 4] and B[l % 4][l / 4]; a warp's 8-byte loads are served in two half-warp
// phases).  A: a half-warp reads 4 rows x 4 consecutive k (32 bytes per row); with the row stride
// kK + 4 = 20 doubles = 160 bytes the rows start at banks 0, 8, 16, 24: conflict-free (kK = 16,
// 128 bytes: every row at bank 0, 4-way).  B: a half-warp reads 4 k rows x 4 columns; with
// kN + 4 = 68 doubles (544 bytes = 8 mod 32 banks) the 16 doubles fall on 16 distinct bank pairs
// (kN = 64: 4-way).  The epilogue tile sC [kM][kN + 4] doubles keeps ldm % 16 bytes.
template <typename ThreadblockShape_, typename WarpShape_, int Stages_>
struct GemmTcConfig64
    : GemmTcLayout<8, ThreadblockShape_, WarpShape_, GemmShape<8, 8, 4>, Stages_, 4, 4> {};

// 64 x 64 C tile, 16-deep k slices, 4 warps of 32 x 32 (2 x 2 fragments), double buffered.
using GemmTc64x64x16_32x32_s2 = GemmTcConfig<GemmShape<64, 64, 16>, GemmShape<32, 32, 16>, 2>;

// 16-bit: the same 64 x 64 tile and warps, 32-deep k slices (two m16n16k16 steps: a slice holds
// the same 4 KiB of A as the float one's 16-deep slice), three stages.  One slice is 8 MMAs per
// warp, too little work to cover a global load's latency with a single slice in flight; with
// three stages two slices are in flight while one is multiplied (CUTLASS's sm_80 16-bit
// configurations use >= 3).  Shared memory 3 x 9.5 KiB = 28.5 KiB: still 5 blocks per SM on
// sm_80 by shared memory, more than the 2 the launch bounds promise.
using GemmTc16_64x64x32_32x32_s3 = GemmTcConfig16<GemmShape<64, 64, 32>, GemmShape<32, 32, 32>, 3>;

// float64: the 64 x 64 tile, 16-deep k slices (4 m8n8k4 steps), 4 warps of 32 x 32 (4 x 4
// fragments of 8 x 8: 32 double accumulators per thread), double buffered: 2 x 18.5 KiB; a
// DMMA does 8x8x4 (a quarter of an m16n16k8's work) so one slice is already 64 MMAs per warp.
using GemmTc64_64x64x16_32x32_s2 = GemmTcConfig64<GemmShape<64, 64, 16>, GemmShape<32, 32, 16>, 2>;

// Small-problem configurations: half the rows (32 x 64 C tile), the same k slice, stages and
// padding as the family's 64 x 64 one, 4 warps of 16 x 32 (float, 16-bit: 1 x 2 fragments;
// float64: 2 x 4 of 8 x 8).  Per element of C the MMAs and their k order are those of the 64 x 64
// configuration (same instruction shape and kK), so the two give bitwise identical C; what changes
// is the grid: twice the blocks for the same m x n (gemm_tc_plan's rule), and at most 31 empty
// rows in an edge tile instead of 63.  Shared memory: float 2 x 7 KiB, 16-bit 3 x 7 KiB, float64
// 2 x 13.5 KiB.
using GemmTc32x64x16_16x32_s2 = GemmTcConfig<GemmShape<32, 64, 16>, GemmShape<16, 32, 16>, 2>;
using GemmTc16_32x64x32_16x32_s3 = GemmTcConfig16<GemmShape<32, 64, 32>, GemmShape<16, 32, 32>, 3>;
using GemmTc64_32x64x16_16x32_s2 = GemmTcConfig64<GemmShape<32, 64, 16>, GemmShape<16, 32, 16>, 2>;

// Names of the configurations (the plan reports them; tools/kernel_report.py reads the shapes from
// the kernels' template arguments).
template <typename Cfg>
struct GemmTcName;
template <>
struct GemmTcName<GemmTc64x64x16_32x32_s2> {
  static constexpr const char* value = "GemmTc64x64x16_32x32_s2";
};
template <>
struct GemmTcName<GemmTc16_64x64x32_32x32_s3> {
  static constexpr const char* value = "GemmTc16_64x64x32_32x32_s3";
};
template <>
struct GemmTcName<GemmTc64_64x64x16_32x32_s2> {
  static constexpr const char* value = "GemmTc64_64x64x16_32x32_s2";
};
template <>
struct GemmTcName<GemmTc32x64x16_16x32_s2> {
  static constexpr const char* value = "GemmTc32x64x16_16x32_s2";
};
template <>
struct GemmTcName<GemmTc16_32x64x32_16x32_s3> {
  static constexpr const char* value = "GemmTc16_32x64x32_16x32_s3";
};
template <>
struct GemmTcName<GemmTc64_32x64x16_16x32_s2> {
  static constexpr const char* value = "GemmTc64_32x64x16_16x32_s2";
};

namespace tc_detail {

template <TcPrecision P>
using Inst = typename TcOperand<P>::InstructionShape;
template <TcPrecision P>
using FragA = wmma::fragment<wmma::matrix_a, Inst<P>::kM, Inst<P>::kN, Inst<P>::kK,
                             typename TcOperand<P>::Fragment, wmma::row_major>;
template <TcPrecision P>
using FragB = wmma::fragment<wmma::matrix_b, Inst<P>::kM, Inst<P>::kN, Inst<P>::kK,
                             typename TcOperand<P>::Fragment, wmma::row_major>;
template <TcPrecision P>
using FragC =
    wmma::fragment<wmma::accumulator, Inst<P>::kM, Inst<P>::kN, Inst<P>::kK, TcAccumulator<P>>;

// The one wrapper of every asynchronous copy of this file: `bytes` (4, 8 or 16) from src to the
// shared dst, or zeros (nothing read) when !valid.
__device__ __forceinline__ void cp_async_zfill(void* dst, const void* src, int bytes, bool valid) {
  __pipeline_memcpy_async(dst, src, bytes, valid ? 0 : bytes);
}

// One vector of kBytes bytes from src[src_off] to the shared dst[dst_index], or zeros (src not
// read) when !valid: cp.async for 4, 8 and 16 bytes, a plain load and shared store of the bits
// for 2 (cp.async has no 2-byte size).  Base pointers and indices, not element pointers: with the
// 2-byte path indexing its unsigned short views, ptxas keeps the address arithmetic of the
// element-copy loop as before the helper existed (pointer arguments cost the fp16 / bf16
// element path ~230 instructions per k slice in the sm_90 SASS).
template <int kBytes, typename E>
__device__ __forceinline__ void copy_vector(E* dst, int dst_index, const E* __restrict__ src,
                                            long long src_off, bool valid) {
  if constexpr (kBytes == 2) {
    const unsigned short* s = reinterpret_cast<const unsigned short*>(src);
    reinterpret_cast<unsigned short*>(dst)[dst_index] = valid ? s[src_off] : 0;
  } else {
    cp_async_zfill(dst + dst_index, src + src_off, kBytes, valid);
  }
}

// Issues the copies of the kRows x kCols tile at (row0, col0) of the row-major rows x cols
// matrix src into dst (row stride kLd), VEC elements per copy; vectors outside the matrix are
// zero-filled.  Consecutive threads take consecutive vectors of a row (coalesced).  A vector of
// fewer than 4 bytes (one 16-bit element) is a plain load and shared store of its bits.
template <int kRows, int kCols, int kLd, int VEC, int kThreads, typename E>
__device__ __forceinline__ void stage_tile(E* dst, const E* __restrict__ src, int rows, int cols,
                                           int row0, int col0) {
  constexpr int kVecs = kRows * (kCols / VEC);
  constexpr int kBytes = VEC * static_cast<int>(sizeof(E));
  static_assert(kVecs % kThreads == 0, "a tile loads in whole rounds");
  static_assert(kBytes == 2 || kBytes == 4 || kBytes == 8 || kBytes == 16,
                "copy widths: 2 (plain), 4, 8, 16");
#pragma unroll
  for (int it = 0; it < kVecs / kThreads; ++it) {
    const int e = static_cast<int>(threadIdx.x) + it * kThreads;
    const int r = e / (kCols / VEC), c = (e % (kCols / VEC)) * VEC;
    const int gr = row0 + r, gc = col0 + c;
    const bool valid = gr < rows && gc < cols;
    const long long off = valid ? static_cast<long long>(gr) * cols + gc : 0;
    copy_vector<kBytes>(dst, r * kLd + c, src, off, valid);
  }
}

// Issues the copies of k slice `kt` into `stage`: A rows [row0, row0 + kM) x k [kk, kk + kK),
// B k [kk, kk + kK) x columns [col0, col0 + kN).  Out-of-matrix vectors are zero-filled (with
// 16-byte copies the launcher guarantees a vector is wholly inside or wholly outside).
template <typename Cfg, int VEC, typename E>
__device__ __forceinline__ void load_stage(E* stage, const E* __restrict__ A,
                                           const E* __restrict__ B, int m, int n, int k, int row0,
                                           int col0, int kt) {
  const int kk = kt * Cfg::kK;
  stage_tile<Cfg::kM, Cfg::kK, Cfg::kLdA, VEC, Cfg::kThreads>(stage, A, m, k, row0, kk);
  stage_tile<Cfg::kK, Cfg::kN, Cfg::kLdB, VEC, Cfg::kThreads>(stage + Cfg::kStageA, B, k, n, kk,
                                                              col0);
}

// Element-wise on the fragment (legal under any element-to-lane mapping): round to TF32.
template <typename Frag>
__device__ __forceinline__ void to_tf32(Frag& f) {
#pragma unroll
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = wmma::__float_to_tf32(f.x[i]);
}

// hi = tf32(f), lo = tf32(f - hi); f - hi is exact in float.
template <typename Frag>
__device__ __forceinline__ void split_tf32(const Frag& f, Frag& hi, Frag& lo) {
#pragma unroll
  for (int i = 0; i < f.num_elements; ++i) {
    const float h = wmma::__float_to_tf32(f.x[i]);
    hi.x[i] = h;
    lo.x[i] = wmma::__float_to_tf32(f.x[i] - h);
  }
}

// acc (the warp's kFragsM x kFragsN fragments) += the stage's A slice · B slice.  tf32 rounds
// each loaded fragment, tf32x3 splits it, the 16-bit and float64 precisions use it as loaded.
template <TcPrecision P, typename Cfg, typename E>
__device__ __forceinline__ void mac_stage(const E* stage, int warp_m, int warp_n,
                                          FragC<P> (&acc)[Cfg::kFragsM][Cfg::kFragsN]) {
  constexpr int kIM = Cfg::InstructionShape::kM, kIN = Cfg::InstructionShape::kN;
  const E* sA = stage + warp_m * Cfg::WarpShape::kM * Cfg::kLdA;
  const E* sB = stage + Cfg::kStageA + warp_n * Cfg::WarpShape::kN;
#pragma unroll
  for (int kk = 0; kk < Cfg::kK; kk += Cfg::InstructionShape::kK) {
    if constexpr (P != TcPrecision::kTf32x3) {
      FragA<P> fa[Cfg::kFragsM];
      FragB<P> fb[Cfg::kFragsN];
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; ++i) {
        wmma::load_matrix_sync(fa[i], sA + i * kIM * Cfg::kLdA + kk, Cfg::kLdA);
        if constexpr (P == TcPrecision::kTf32) to_tf32(fa[i]);
      }
#pragma unroll
      for (int j = 0; j < Cfg::kFragsN; ++j) {
        wmma::load_matrix_sync(fb[j], sB + kk * Cfg::kLdB + j * kIN, Cfg::kLdB);
        if constexpr (P == TcPrecision::kTf32) to_tf32(fb[j]);
      }
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
        for (int j = 0; j < Cfg::kFragsN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      }
    } else {
      FragA<P> a_hi[Cfg::kFragsM], a_lo[Cfg::kFragsM];
      FragB<P> b_hi[Cfg::kFragsN], b_lo[Cfg::kFragsN];
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; ++i) {
        FragA<P> fa;
        wmma::load_matrix_sync(fa, sA + i * kIM * Cfg::kLdA + kk, Cfg::kLdA);
        split_tf32(fa, a_hi[i], a_lo[i]);
      }
#pragma unroll
      for (int j = 0; j < Cfg::kFragsN; ++j) {
        FragB<P> fb;
        wmma::load_matrix_sync(fb, sB + kk * Cfg::kLdB + j * kIN, Cfg::kLdB);
        split_tf32(fb, b_hi[j], b_lo[j]);
      }
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
        for (int j = 0; j < Cfg::kFragsN; ++j) {
          wmma::mma_sync(acc[i][j], a_hi[i], b_lo[j], acc[i][j]);  // small terms first
          wmma::mma_sync(acc[i][j], a_lo[i], b_hi[j], acc[i][j]);
          wmma::mma_sync(acc[i][j], a_hi[i], b_hi[j], acc[i][j]);
        }
      }
    }
  }
}

// Epilogue: the block's accumulators -> padded shared tile sC [kM][kLdC] (reusing the stages:
// the caller has drained the pipeline) -> guarded, coalesced stores of the kM x kN tile of the
// row-major m x n matrix C at (row0, col0); nothing outside C is written.
template <TcPrecision P, typename Cfg>
__device__ __forceinline__ void store_tile(const FragC<P> (&acc)[Cfg::kFragsM][Cfg::kFragsN],
                                           void* __restrict__ smem,
                                           TcAccumulator<P>* __restrict__ C, int m, int n, int row0,
                                           int col0, int warp_m, int warp_n) {
  using Acc = TcAccumulator<P>;
  Acc* sC = static_cast<Acc*>(smem);  // [kM][kLdC]
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; ++j) {
      wmma::store_matrix_sync(sC + (warp_m * Cfg::WarpShape::kM + i * Inst<P>::kM) * Cfg::kLdC +
                                  warp_n * Cfg::WarpShape::kN + j * Inst<P>::kN,
                              acc[i][j], Cfg::kLdC, wmma::mem_row_major);
    }
  }
  __syncthreads();
  const int rows = m - row0 < Cfg::kM ? m - row0 : Cfg::kM;  // std::min is host-only in nvcc
  const int cols = n - col0 < Cfg::kN ? n - col0 : Cfg::kN;
#pragma unroll 4
  for (int e = threadIdx.x; e < Cfg::kM * Cfg::kN; e += Cfg::kThreads) {
    const int r = e / Cfg::kN, c = e % Cfg::kN;
    if (r < rows && c < cols)
      C[static_cast<long long>(row0 + r) * n + col0 + c] = sC[r * Cfg::kLdC + c];
  }
}

}  // namespace tc_detail

// The kM x kN tile of C at (row0, col0) over the k slices [kt_begin, kt_end) (slice t covers
// k [t * kK, (t + 1) * kK), clipped to k by the zero-filling copies).
template <TcPrecision P, typename Cfg, int VEC>
__device__ __forceinline__ void gemm_tc_device(int m, int n, int k,
                                               const TcElement<P>* __restrict__ A,
                                               const TcElement<P>* __restrict__ B,
                                               TcAccumulator<P>* __restrict__ C,
                                               void* __restrict__ smem, int row0, int col0,
                                               int kt_begin, int kt_end) {
  using namespace tc_detail;
  using E = TcElement<P>;
  using Acc = TcAccumulator<P>;
  static_assert(Cfg::kElementBytes == sizeof(E) && Cfg::kAccumulatorBytes == sizeof(Acc),
                "the configuration is for these element and accumulator sizes");
  static_assert(std::is_same_v<typename Cfg::InstructionShape, Inst<P>>,
                "the configuration is for this instruction shape");
  E* stages = static_cast<E*>(smem);
  const int warp = threadIdx.x / 32;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int tiles_k = kt_end - kt_begin;

  FragC<P> acc[Cfg::kFragsM][Cfg::kFragsN];
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; ++j) wmma::fill_fragment(acc[i][j], Acc(0));
  }

  // Prologue: slices 0 .. kStages - 2, one group each (committed even when empty).
#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (s < tiles_k)
      load_stage<Cfg, VEC>(stages + s * Cfg::kStageElements, A, B, m, n, k, row0, col0,
                           kt_begin + s);
    __pipeline_commit();
  }
  // Mainloop: issue slice t + kStages - 1 into the stage read in iteration t - 1, then wait
  // for slice t and multiply it.
  for (int t = 0; t < tiles_k; ++t) {
    const int next = t + Cfg::kStages - 1;
    if (next < tiles_k)
      load_stage<Cfg, VEC>(stages + (next % Cfg::kStages) * Cfg::kStageElements, A, B, m, n, k,
                           row0, col0, kt_begin + next);
    __pipeline_commit();                      // every iteration, even with nothing issued
    __pipeline_wait_prior(Cfg::kStages - 1);  // this thread's copies of slice t have landed
    __syncthreads();                          // ... and every other thread's
    mac_stage<P, Cfg>(stages + (t % Cfg::kStages) * Cfg::kStageElements, warp_m, warp_n, acc);
    __syncthreads();  // the stage may be refilled next iteration
  }
  // Drain: no copy may land in the shared memory the epilogue reuses.
  __pipeline_wait_prior(0);
  __syncthreads();

  // Epilogue: accumulators -> padded shared tile -> guarded, coalesced stores of C.
  store_tile<P, Cfg>(acc, smem, C, m, n, row0, col0, warp_m, warp_n);
}

// Resident blocks per SM promised to ptxas (as kGemmMinBlocks in gemm_batched.cuh): two blocks
// of 128 threads leave ptxas up to 255 registers per thread, so neither precision spills.
constexpr int kGemmTcMinBlocks = 2;

// blockIdx.x = split * blocks_n + column block: partition `split` takes the k slices
// [split * slices_per_split, (split + 1) * slices_per_split) (the last one fewer) and writes its
// tile to C + split * stride_split (without split-K: blocks_n = gridDim.x, slices_per_split >= all
// slices, stride_split = 0).
template <TcPrecision P, typename Cfg, int VEC>
__global__ void __launch_bounds__(Cfg::kThreads, kGemmTcMinBlocks)
    gemm_tc_kernel(int m, int n, int k, const typename TcOperand<P>::Element* __restrict__ A,
                   long long stride_a, const typename TcOperand<P>::Element* __restrict__ B,
                   long long stride_b, TcAccumulator<P>* __restrict__ C, long long stride_c,
                   int batch_offset, int blocks_n, int slices_per_split, long long stride_split) {
  MW_DYNAMIC_SHARED(unsigned char, smem_raw);
  // WMMA pointers must be 32-byte aligned; the dynamic base is only promised 16.  Rounded up by
  // pointer arithmetic on smem_raw itself (not through an integer): the compiler then still knows
  // the pointer is shared memory and emits LDS / LDSM / STS, not generic LD / ST.
  void* smem = smem_raw + ((32 - reinterpret_cast<uintptr_t>(smem_raw) % 32) % 32);
  const long long b = static_cast<long long>(blockIdx.z) + batch_offset;
  const int split = static_cast<int>(blockIdx.x) / blocks_n;
  const int block_n = static_cast<int>(blockIdx.x) - split * blocks_n;
  const int tiles_k = (k + Cfg::kK - 1) / Cfg::kK;
  const int kt_begin = split * slices_per_split;
  const int kt_end = tiles_k - kt_begin < slices_per_split ? tiles_k : kt_begin + slices_per_split;
  gemm_tc_device<P, Cfg, VEC>(
      m, n, k, A + b * stride_a, B + b * stride_b, C + split * stride_split + b * stride_c, smem,
      static_cast<int>(blockIdx.y) * Cfg::kM, block_n * Cfg::kN, kt_begin, kt_end);
}

// Grid limits of CUDA: y and z at most 65535 (as gemm_batched.cuh's kMaxGridYZ).
constexpr int kGemmTcMaxGridYZ = 65535;

// splits == 1: C[b] = A[b] · B[b] (per_split >= the k slices).  splits > 1: C is the split-K
// workspace (splits x batch x m x n accumulators) and partition s, the k slices
// [s * per_split, (s + 1) * per_split), writes its partial product to C[s][b]; every element of
// the workspace is written.
template <TcPrecision P, typename Cfg, int VEC>
cudaError_t gemm_tc_launch(int batch, int m, int n, int k, const typename TcOperand<P>::Element* A,
                           const typename TcOperand<P>::Element* B, TcAccumulator<P>* C, int splits,
                           int per_split, cudaStream_t stream) {
  const int blocks_m = (m + Cfg::kM - 1) / Cfg::kM;
  const int blocks_n = (n + Cfg::kN - 1) / Cfg::kN;
  const long long stride_split = splits > 1 ? static_cast<long long>(batch) * m * n : 0;
  const dim3 block(Cfg::kThreads);
  // Rows of blocks beyond grid.y's limit: launch again on a row-offset view of every A[b], C[b]
  // (batch strides stay m*k, m*n); batches beyond grid.z's: again with a batch offset.
  for (int rb = 0; rb < blocks_m; rb += kGemmTcMaxGridYZ) {
    const int rows_here = std::min(m - rb * Cfg::kM, kGemmTcMaxGridYZ * Cfg::kM);
    const int grid_y = (rows_here + Cfg::kM - 1) / Cfg::kM;
    const long long row_off = static_cast<long long>(rb) * Cfg::kM;
    for (int b0 = 0; b0 < batch; b0 += kGemmTcMaxGridYZ) {
      const dim3 grid(blocks_n * splits, grid_y, std::min(batch - b0, kGemmTcMaxGridYZ));
      const cudaError_t err = launch(
          gemm_tc_kernel<P, Cfg, VEC>, grid, block, Cfg::shared_bytes(), stream, rows_here, n, k,
          A + row_off * k, static_cast<long long>(m) * k, B, static_cast<long long>(k) * n,
          C + row_off * n, static_cast<long long>(m) * n, b0, blocks_n, per_split, stride_split);
      if (err != cudaSuccess) return err;
    }
  }
  return cudaSuccess;
}

// ---------------------------------------------------------------------------------------------
// Split-K reduction: C[i] = W[0][i] + W[1][i] + ... + W[S-1][i], left to right (the fixed order
// that makes split-K deterministic), for i < count = batch * m * n.  A grid-stride loop over
// coalesced elements; one 8- or 4-byte load per partial, no shared memory.
constexpr int kSplitKReduceThreads = 128;
constexpr int kSplitKReduceMaxBlocks = 4096;

template <typename Acc>
__device__ __forceinline__ void gemm_tc_splitk_reduce_device(long long count, int splits,
                                                             const Acc* __restrict__ W,
                                                             Acc* __restrict__ C) {
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += step) {
    Acc sum = W[i];
    for (int s = 1; s < splits; ++s) sum += W[s * count + i];
    C[i] = sum;
  }
}

template <typename Acc>
__global__ void __launch_bounds__(kSplitKReduceThreads)
    gemm_tc_splitk_reduce_kernel(long long count, int splits, const Acc* __restrict__ W,
                                 Acc* __restrict__ C) {
  gemm_tc_splitk_reduce_device<Acc>(count, splits, W, C);
}

template <typename Acc>
cudaError_t gemm_tc_splitk_reduce_launch(long long count, int splits, const Acc* W, Acc* C,
                                         cudaStream_t stream) {
  const long long blocks = (count + kSplitKReduceThreads - 1) / kSplitKReduceThreads;
  const dim3 grid(static_cast<unsigned>(std::min<long long>(blocks, kSplitKReduceMaxBlocks)));
  return launch(gemm_tc_splitk_reduce_kernel<Acc>, grid, dim3(kSplitKReduceThreads), 0, stream,
                count, splits, W, C);
}

// The configuration of each operand width.
template <TcPrecision P>
using GemmTcDefaultConfig =
    std::conditional_t<sizeof(TcElement<P>) == 4, GemmTc64x64x16_32x32_s2,
                       std::conditional_t<sizeof(TcElement<P>) == 2, GemmTc16_64x64x32_32x32_s3,
                                          GemmTc64_64x64x16_32x32_s2>>;

// The small-problem configuration of each operand width.
template <TcPrecision P>
using GemmTcSmallConfig =
    std::conditional_t<sizeof(TcElement<P>) == 4, GemmTc32x64x16_16x32_s2,
                       std::conditional_t<sizeof(TcElement<P>) == 2, GemmTc16_32x64x32_16x32_s3,
                                          GemmTc64_32x64x16_16x32_s2>>;

// Split-K limits: at most kGemmTcMaxSplits partitions (each adds a batch x m x n partial to write
// and read back), each of at least kGemmTcMinSlicesPerSplit k slices (a partition of fewer is all
// prologue and drain: the pipeline never reaches its steady state) -- perfmodel.py's
// SPLIT_K_MIN_SLICES.
constexpr int kGemmTcMaxSplits = 8;
constexpr int kGemmTcMinSlicesPerSplit = 4;

// What gemm_tc_batched runs for a (batch, m, n, k) product on a device of `sm_count` SMs.
struct GemmTcPlan {
  const char* config = nullptr;  // GemmTcName of the configuration
  bool small = false;            // GemmTcSmallConfig<P>, else GemmTcDefaultConfig<P>
  int block_m = 0, block_n = 0, block_k = 0, threads = 0;
  long long blocks = 0;        // blocks of the product kernel without split-K
  int splits = 1;              // split-K partitions when the caller gives the workspace
  int slices_per_split = 0;    // k slices (of block_k) per partition, the last one fewer
  size_t workspace_bytes = 0;  // splits x batch x m x n accumulators; 0 when splits == 1
};

template <typename Cfg>
long long gemm_tc_blocks(long long batch, long long m, long long n) {
  return batch * ((m + Cfg::kM - 1) / Cfg::kM) * ((n + Cfg::kN - 1) / Cfg::kN);
}

// The selection rule, on (m, n, k) = (K, P, C) of a layer and the batch (alpha^2 positions).  One
// wave is wave = sm_count x kGemmTcMinBlocks blocks (the residency the launch bounds promise; an
// SM may hold more, so this is the conservative count of blocks that keeps every SM busy).
//  1. Configuration: the 32 x 64 tile when m <= 32 (a 64-row tile would multiply at least half
//     rows of zero-filled A: the edge tile's waste, m = K small), or when the 64 x 64 grid is
//     less than one wave (blocks64 < wave: SMs idle for the whole product; half-height tiles
//     double the blocks at the same k loop).  Else the 64 x 64 tile (twice the MMA work per
//     staged byte of B).
//  2. Split-K, only when the chosen grid is still below one wave: S = min(kGemmTcMaxSplits,
//     ceil(wave / blocks), slices / kGemmTcMinSlicesPerSplit) partitions of the slices =
//     ceil(k / kK) k slices (C = 512 channels are 32 slices of 16, 16 of 32); S < 2: no split.
//     Each partition takes ceil(slices / S) slices and S is then recomputed as
//     ceil(slices / per-partition) so that no partition is empty.  The workspace is S x batch x
//     m x n accumulators (float; double for fp64).
template <TcPrecision P>
GemmTcPlan gemm_tc_plan(long long batch, long long m, long long n, long long k, int sm_count) {
  using Large = GemmTcDefaultConfig<P>;
  using Small = GemmTcSmallConfig<P>;
  const long long wave = static_cast<long long>(std::max(sm_count, 1)) * kGemmTcMinBlocks;
  GemmTcPlan plan;
  plan.small = m <= Small::kM || gemm_tc_blocks<Large>(batch, m, n) < wave;
  auto fill = [&](auto cfg) {
    using Cfg = decltype(cfg);
    plan.config = GemmTcName<Cfg>::value;
    plan.block_m = Cfg::kM, plan.block_n = Cfg::kN, plan.block_k = Cfg::kK;
    plan.threads = Cfg::kThreads;
    plan.blocks = gemm_tc_blocks<Cfg>(batch, m, n);
  };
  if (plan.small)
    fill(Small{});
  else
    fill(Large{});
  const long long slices = (k + plan.block_k - 1) / plan.block_k;
  plan.slices_per_split = static_cast<int>(slices);
  if (plan.blocks >= wave) return plan;
  const long long want =
      std::min<long long>({kGemmTcMaxSplits, (wave + plan.blocks - 1) / plan.blocks,
                           slices / kGemmTcMinSlicesPerSplit});
  if (want < 2) return plan;
  const long long per = (slices + want - 1) / want;
  plan.splits = static_cast<int>((slices + per - 1) / per);
  plan.slices_per_split = static_cast<int>(per);
  if (plan.splits < 2) {  // cannot happen (want >= 2, per <= slices / 2 rounded up); kept safe
    plan.splits = 1, plan.slices_per_split = static_cast<int>(slices);
    return plan;
  }
  plan.workspace_bytes =
      static_cast<size_t>(plan.splits) * batch * m * n * sizeof(TcAccumulator<P>);
  return plan;
}

// Runs gemm_tc_plan's choice.  The copy width: 16-byte cp.async needs every row of A and B 16-byte
// aligned (k and n multiples of 16 / sizeof(element): 4 floats, 8 16-bit values, 2 doubles;
// 16-byte aligned bases); else one element per copy (4- / 8-byte cp.async for float / double,
// plain loads for 16-bit).  Split-K only when `workspace` holds at least the plan's
// workspace_bytes (NULL or fewer bytes: the unsplit product, the same configuration; nothing is
// written past workspace_bytes = the plan's size).  The caller checks that the workspace is
// aligned to the accumulator type.
template <TcPrecision P>
cudaError_t gemm_tc_batched(int batch, int m, int n, int k, const typename TcOperand<P>::Element* A,
                            const typename TcOperand<P>::Element* B, TcAccumulator<P>* C,
                            void* workspace, size_t workspace_bytes, int sm_count,
                            cudaStream_t stream) {
  using Acc = TcAccumulator<P>;
  const GemmTcPlan plan = gemm_tc_plan<P>(batch, m, n, k, sm_count);
  const bool split =
      plan.splits > 1 && workspace != nullptr && workspace_bytes >= plan.workspace_bytes;
  const int splits = split ? plan.splits : 1;
  Acc* out = split ? static_cast<Acc*>(workspace) : C;
  const int per_split = split ? plan.slices_per_split : INT_MAX;
  auto run = [&](auto cfg) {
    using Cfg = decltype(cfg);
    constexpr int kVec = Cfg::kVec16;
    const bool aligned = k % kVec == 0 && n % kVec == 0 &&
                         reinterpret_cast<uintptr_t>(A) % 16 == 0 &&
                         reinterpret_cast<uintptr_t>(B) % 16 == 0;
    if (aligned)
      return gemm_tc_launch<P, Cfg, kVec>(batch, m, n, k, A, B, out, splits, per_split, stream);
    return gemm_tc_launch<P, Cfg, 1>(batch, m, n, k, A, B, out, splits, per_split, stream);
  };
  const cudaError_t err = plan.small ? run(GemmTcSmallConfig<P>{}) : run(GemmTcDefaultConfig<P>{});
  if (err != cudaSuccess || !split) return err;
  return gemm_tc_splitk_reduce_launch<Acc>(static_cast<long long>(batch) * m * n, splits, out, C,
                                           stream);
}

}  // namespace mw
