// Tensor-core batched products over channels: C[b] = A[b] · B[b], float32 in memory, products
// on tensor cores (WMMA m16n16k8, precision::tf32), float32 accumulation.
//
// In a layer: M[b] (K x P) = U[b] (K x C) · V[b] (C x P), so m = K, n = P, k = C.  All matrices
// are row-major and contiguous per batch entry (A: batch x m x k, B: batch x k x n, C: batch x
// m x n).  MAGMA's four layers:
//
//   gemm_tc_device<P, Cfg, VEC>   one thread block computes a kM x kN tile of C[b]
//   gemm_tc_kernel<P, Cfg, VEC>   __global__: picks b = blockIdx.z (+ chunk offset)
//   gemm_tc_launch<P, Cfg, VEC>   host: grid (ceil(n/kN), ceil(m/kM), batch), chunked
//   gemm_tc_batched<P>            host: picks the configuration and the copy width
//
// Precisions (TcPrecision):
//   kTf32    one TF32 product: every operand rounded to TF32 (__float_to_tf32, round to nearest)
//            after its fragment is loaded; relative error ~ 2^-11 per operand.
//   kTf32x3  3xTF32 (CUTLASS's mma_tensor_op_fast_f32): a = a_hi + a_lo with a_hi = tf32(a),
//            a_lo = tf32(a - a_hi) (a - a_hi is exact in float); acc += a_hi·b_lo + a_lo·b_hi
//            + a_hi·b_hi, the small terms first; a_lo·b_lo (~2^-22 relative) is dropped:
//            float32-level accuracy.
//
// Mainloop (kStages = 2, double buffering): the k slices of A (kM x kK) and B (kK x kN) are
// staged in shared memory by __pipeline_memcpy_async (cp.async), one commit per stage even when
// the stage issues no copy (so that wait_prior(kStages - 1) counts right), wait_prior +
// __syncthreads before a stage is read, __syncthreads before it is refilled, a drain
// (wait_prior(0) + __syncthreads) before the shared memory is reused by the epilogue.
// Edges: elements outside the matrix are zero-filled by the copy itself (the zero-fill form,
// src-size 0: nothing is read, the source pointer is clamped to the matrix base), so the MMA
// loop has no bounds checks; the epilogue stores the accumulators to shared memory
// (store_matrix_sync) and writes C with guarded, coalesced global stores — never out of bounds.
// 16-byte copies only when every row is 16-byte aligned (k % 4 == 0, n % 4 == 0, 16-byte
// aligned bases), 4-byte copies otherwise.
#pragma once

#include <cuda_pipeline.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>

#include "launch.cuh"

namespace mw {

enum class TcPrecision { kTf32, kTf32x3 };

template <int M_, int N_, int K_>
struct GemmShape {
  static constexpr int kM = M_, kN = N_, kK = K_;
};

// A tensor-core tile configuration (CUTLASS habit: shapes are types).
//   ThreadblockShape  the C tile of one block and the k slice staged per pipeline stage
//   WarpShape         the C tile of one warp (WarpShape / InstructionShape fragments)
//   kStages           shared-memory stages of the cp.async pipeline
// Shared-memory rows are padded (kPadA, kPadB, kPadC floats): WMMA's load/store_matrix_sync
// need ldm % 4 == 0 (16 bytes) and 32-byte aligned pointers, which both paddings keep (every
// fragment pointer sits at a row index that is a multiple of 8 and a column offset that is a
// multiple of 8).  The amounts differ by operand, for bank conflicts (our inference from
// mma.sync's m16n8k8 TF32 operand mapping, which the fragment loads follow): an A fragment is
// read as 8 rows x 4 consecutive k per access, so the row stride must spread 8 rows over the
// 8 four-bank groups: kK + 4 = 20 floats (20 r mod 32 = 0, 20, 8, 28, 16, 4, 24, 12) is
// conflict-free, kK + 8 = 24 is not (r = 0 and r = 4 collide); a B fragment is read as 4 k rows
// x 8 consecutive columns, so the stride must be 8 mod 32: kN + 8 = 72 is conflict-free,
// kN + 4 = 68 is 2-way.  The epilogue tile (accumulators) uses kN + 4.
template <typename ThreadblockShape_, typename WarpShape_, int Stages_>
struct GemmTcConfig {
  using ThreadblockShape = ThreadblockShape_;
  using WarpShape = WarpShape_;
  using InstructionShape = GemmShape<16, 16, 8>;  // WMMA m16n16k8, precision::tf32
  static constexpr int kStages = Stages_;
  static constexpr int kM = ThreadblockShape::kM, kN = ThreadblockShape::kN;
  static constexpr int kK = ThreadblockShape::kK;
  static constexpr int kWarpsM = kM / WarpShape::kM, kWarpsN = kN / WarpShape::kN;
  static constexpr int kWarps = kWarpsM * kWarpsN;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kFragsM = WarpShape::kM / InstructionShape::kM;
  static constexpr int kFragsN = WarpShape::kN / InstructionShape::kN;
  static constexpr int kPadA = 4, kPadB = 8, kPadC = 4;
  static constexpr int kLdA = kK + kPadA;  // sA: [kM][kLdA] per stage
  static constexpr int kLdB = kN + kPadB;  // sB: [kK][kLdB] per stage
  static constexpr int kLdC = kN + kPadC;  // sC: [kM][kLdC] (epilogue, reuses the stages)
  static constexpr int kStageA = kM * kLdA, kStageB = kK * kLdB;
  static constexpr int kStageFloats = kStageA + kStageB;
  static constexpr int kSmemFloats =
      kStages * kStageFloats > kM* kLdC ? kStages * kStageFloats : kM * kLdC;

  static_assert(kM % WarpShape::kM == 0 && kN % WarpShape::kN == 0, "warps must tile the block");
  static_assert(WarpShape::kM % InstructionShape::kM == 0 &&
                    WarpShape::kN % InstructionShape::kN == 0,
                "MMA tiles must tile the warp");
  static_assert(kK % InstructionShape::kK == 0, "the k slice is whole MMA steps");
  static_assert(kK % 4 == 0 && kN % 4 == 0, "16-byte copies must tile the slices");
  static_assert(kLdA % 4 == 0 && kLdB % 4 == 0 && kLdC % 4 == 0, "WMMA ldm: 16 bytes");
  static_assert(kStageA % 8 == 0 && kStageFloats % 8 == 0, "stages 32-byte aligned");
  static_assert(kStages >= 2, "a pipeline has at least two stages");
  static_assert(kThreads <= 1024, "block size");
  // 32 bytes of slack: the kernel rounds the dynamic shared memory base up to 32 bytes.
  static constexpr size_t shared_bytes() { return sizeof(float) * kSmemFloats + 32; }
};

// 64 x 64 C tile, 16-deep k slices, 4 warps of 32 x 32 (2 x 2 fragments), double buffered.
using GemmTc64x64x16_32x32_s2 = GemmTcConfig<GemmShape<64, 64, 16>, GemmShape<32, 32, 16>, 2>;

namespace tc_detail {

namespace wmma = ::nvcuda::wmma;

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

// The one wrapper of every asynchronous copy of this file: `bytes` (4 or 16) from src to the
// shared dst, or zeros (nothing read) when !valid.
__device__ __forceinline__ void cp_async_zfill(float* dst, const float* src, int bytes,
                                               bool valid) {
  __pipeline_memcpy_async(dst, src, bytes, valid ? 0 : bytes);
}

// Issues the copies of the kRows x kCols tile at (row0, col0) of the row-major rows x cols
// matrix src into dst (row stride kLd), VEC floats per copy; vectors outside the matrix are
// zero-filled.  Consecutive threads take consecutive vectors of a row (coalesced).
template <int kRows, int kCols, int kLd, int VEC, int kThreads>
__device__ __forceinline__ void stage_tile(float* dst, const float* __restrict__ src, int rows,
                                           int cols, int row0, int col0) {
  constexpr int kVecs = kRows * (kCols / VEC);
  static_assert(kVecs % kThreads == 0, "a tile loads in whole rounds");
#pragma unroll
  for (int it = 0; it < kVecs / kThreads; ++it) {
    const int e = static_cast<int>(threadIdx.x) + it * kThreads;
    const int r = e / (kCols / VEC), c = (e % (kCols / VEC)) * VEC;
    const int gr = row0 + r, gc = col0 + c;
    const bool valid = gr < rows && gc < cols;
    cp_async_zfill(dst + r * kLd + c, valid ? src + static_cast<long long>(gr) * cols + gc : src,
                   4 * VEC, valid);
  }
}

// Issues the copies of k slice `kt` into `stage`: A rows [row0, row0 + kM) x k [kk, kk + kK),
// B k [kk, kk + kK) x columns [col0, col0 + kN).  Out-of-matrix vectors are zero-filled (with
// VEC = 4 the launcher guarantees a vector is wholly inside or wholly outside).
template <typename Cfg, int VEC>
__device__ __forceinline__ void load_stage(float* stage, const float* __restrict__ A,
                                           const float* __restrict__ B, int m, int n, int k,
                                           int row0, int col0, int kt) {
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

// acc (the warp's kFragsM x kFragsN fragments) += the stage's A slice · B slice.
template <TcPrecision P, typename Cfg>
__device__ __forceinline__ void mac_stage(const float* stage, int warp_m, int warp_n,
                                          FragC (&acc)[Cfg::kFragsM][Cfg::kFragsN]) {
  const float* sA = stage + warp_m * Cfg::WarpShape::kM * Cfg::kLdA;
  const float* sB = stage + Cfg::kStageA + warp_n * Cfg::WarpShape::kN;
#pragma unroll
  for (int kk = 0; kk < Cfg::kK; kk += Cfg::InstructionShape::kK) {
    if constexpr (P == TcPrecision::kTf32) {
      FragA fa[Cfg::kFragsM];
      FragB fb[Cfg::kFragsN];
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; ++i) {
        wmma::load_matrix_sync(fa[i], sA + i * 16 * Cfg::kLdA + kk, Cfg::kLdA);
        to_tf32(fa[i]);
      }
#pragma unroll
      for (int j = 0; j < Cfg::kFragsN; ++j) {
        wmma::load_matrix_sync(fb[j], sB + kk * Cfg::kLdB + j * 16, Cfg::kLdB);
        to_tf32(fb[j]);
      }
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
        for (int j = 0; j < Cfg::kFragsN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      }
    } else {
      FragA a_hi[Cfg::kFragsM], a_lo[Cfg::kFragsM];
      FragB b_hi[Cfg::kFragsN], b_lo[Cfg::kFragsN];
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; ++i) {
        FragA fa;
        wmma::load_matrix_sync(fa, sA + i * 16 * Cfg::kLdA + kk, Cfg::kLdA);
        split_tf32(fa, a_hi[i], a_lo[i]);
      }
#pragma unroll
      for (int j = 0; j < Cfg::kFragsN; ++j) {
        FragB fb;
        wmma::load_matrix_sync(fb, sB + kk * Cfg::kLdB + j * 16, Cfg::kLdB);
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

}  // namespace tc_detail

template <TcPrecision P, typename Cfg, int VEC>
__device__ __forceinline__ void gemm_tc_device(int m, int n, int k, const float* __restrict__ A,
                                               const float* __restrict__ B, float* __restrict__ C,
                                               float* __restrict__ smem) {
  using namespace tc_detail;
  const int warp = threadIdx.x / 32;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int row0 = blockIdx.y * Cfg::kM;
  const int col0 = blockIdx.x * Cfg::kN;
  const int tiles_k = (k + Cfg::kK - 1) / Cfg::kK;

  FragC acc[Cfg::kFragsM][Cfg::kFragsN];
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
  }

  // Prologue: slices 0 .. kStages - 2, one group each (committed even when empty).
#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (s < tiles_k)
      load_stage<Cfg, VEC>(smem + s * Cfg::kStageFloats, A, B, m, n, k, row0, col0, s);
    __pipeline_commit();
  }
  // Mainloop: issue slice t + kStages - 1 into the stage read in iteration t - 1, then wait
  // for slice t and multiply it.
  for (int t = 0; t < tiles_k; ++t) {
    const int next = t + Cfg::kStages - 1;
    if (next < tiles_k)
      load_stage<Cfg, VEC>(smem + (next % Cfg::kStages) * Cfg::kStageFloats, A, B, m, n, k, row0,
                           col0, next);
    __pipeline_commit();                      // every iteration, even with nothing issued
    __pipeline_wait_prior(Cfg::kStages - 1);  // this thread's copies of slice t have landed
    __syncthreads();                          // ... and every other thread's
    mac_stage<P, Cfg>(smem + (t % Cfg::kStages) * Cfg::kStageFloats, warp_m, warp_n, acc);
    __syncthreads();  // the stage may be refilled next iteration
  }
  // Drain: no copy may land in the shared memory the epilogue reuses.
  __pipeline_wait_prior(0);
  __syncthreads();

  // Epilogue: accumulators -> padded shared tile -> guarded, coalesced stores of C.
  float* sC = smem;  // [kM][kLdC]
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; ++j) {
      wmma::store_matrix_sync(sC + (warp_m * Cfg::WarpShape::kM + i * 16) * Cfg::kLdC +
                                  warp_n * Cfg::WarpShape::kN + j * 16,
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

// Resident blocks per SM promised to ptxas (as kGemmMinBlocks in gemm_batched.cuh): two blocks
// of 128 threads leave ptxas up to 255 registers per thread, so neither precision spills.
constexpr int kGemmTcMinBlocks = 2;

template <TcPrecision P, typename Cfg, int VEC>
__global__ void __launch_bounds__(Cfg::kThreads, kGemmTcMinBlocks)
    gemm_tc_kernel(int m, int n, int k, const float* __restrict__ A, long long stride_a,
                   const float* __restrict__ B, long long stride_b, float* __restrict__ C,
                   long long stride_c, int batch_offset) {
  MW_DYNAMIC_SHARED(unsigned char, smem_raw);
  // WMMA pointers must be 32-byte aligned; the dynamic base is only promised 16.
  float* smem = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(smem_raw) + 31) &
                                         ~static_cast<uintptr_t>(31));
  const long long b = static_cast<long long>(blockIdx.z) + batch_offset;
  gemm_tc_device<P, Cfg, VEC>(m, n, k, A + b * stride_a, B + b * stride_b, C + b * stride_c, smem);
}

// Grid limits of CUDA: y and z at most 65535 (as gemm_batched.cuh's kMaxGridYZ).
constexpr int kGemmTcMaxGridYZ = 65535;

template <TcPrecision P, typename Cfg, int VEC>
cudaError_t gemm_tc_launch(int batch, int m, int n, int k, const float* A, const float* B, float* C,
                           cudaStream_t stream) {
  const int blocks_m = (m + Cfg::kM - 1) / Cfg::kM;
  const int blocks_n = (n + Cfg::kN - 1) / Cfg::kN;
  const dim3 block(Cfg::kThreads);
  // Rows of blocks beyond grid.y's limit: launch again on a row-offset view of every A[b], C[b]
  // (batch strides stay m*k, m*n); batches beyond grid.z's: again with a batch offset.
  for (int rb = 0; rb < blocks_m; rb += kGemmTcMaxGridYZ) {
    const int rows_here = std::min(m - rb * Cfg::kM, kGemmTcMaxGridYZ * Cfg::kM);
    const int grid_y = (rows_here + Cfg::kM - 1) / Cfg::kM;
    const long long row_off = static_cast<long long>(rb) * Cfg::kM;
    for (int b0 = 0; b0 < batch; b0 += kGemmTcMaxGridYZ) {
      const dim3 grid(blocks_n, grid_y, std::min(batch - b0, kGemmTcMaxGridYZ));
      const cudaError_t err =
          launch(gemm_tc_kernel<P, Cfg, VEC>, grid, block, Cfg::shared_bytes(), stream, rows_here,
                 n, k, A + row_off * k, static_cast<long long>(m) * k, B,
                 static_cast<long long>(k) * n, C + row_off * n, static_cast<long long>(m) * n, b0);
      if (err != cudaSuccess) return err;
    }
  }
  return cudaSuccess;
}

// Picks the configuration (one so far) and the copy width: 16-byte cp.async needs every row of
// A and B 16-byte aligned (k % 4 == 0, n % 4 == 0 and 16-byte aligned bases), else 4 bytes.
template <TcPrecision P>
cudaError_t gemm_tc_batched(int batch, int m, int n, int k, const float* A, const float* B,
                            float* C, cudaStream_t stream) {
  using Cfg = GemmTc64x64x16_32x32_s2;
  const bool aligned = k % 4 == 0 && n % 4 == 0 && reinterpret_cast<uintptr_t>(A) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(B) % 16 == 0;
  if (aligned) return gemm_tc_launch<P, Cfg, 4>(batch, m, n, k, A, B, C, stream);
  return gemm_tc_launch<P, Cfg, 1>(batch, m, n, k, A, B, C, stream);
}

}  // namespace mw
