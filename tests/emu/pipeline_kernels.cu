// Asynchronous-copy test kernels of the CUDA emulator (not product kernels).
//
// Compiled by g++ against kernels/emu and kernels/emu/include (pipeline_kernels_emu.cpp) and,
// when nvcc is available, by nvcc for sm_80 / sm_90 against the toolkit's <cuda_pipeline.h>.
// Lines marked "MARK:" are located by tests/emu/test_emu_pipeline.py.
#include <cuda_pipeline.h>

#include "launch.cuh"
#include "pipeline_kernels.h"

namespace {

// The one wrapper every copy of the GEMM goes through (STYLE.md): `valid` of the W floats at
// src are copied, the rest zero-filled; src must stay a valid, aligned address even when
// valid == 0.
template <int W>
__device__ __forceinline__ void cp_async_zfill(float* dst, const float* src, int valid) {
  __pipeline_memcpy_async(dst, src, sizeof(float) * W, sizeof(float) * (W - valid));
}

struct PipeGemmShape {
  static constexpr int kM = 32, kN = 32, kK = 16;  // block tile of c and the k slice
  static constexpr int kThreadsX = 16, kThreadsY = 16, kThreads = kThreadsX * kThreadsY;
  static constexpr int kStages = 2;
  static constexpr int kStageFloats = kM * kK + kK * kN;  // A slice (kM x kK), B slice (kK x kN)
};

// Issues the copies of one k slice (A: kM x kK at rows bm.., columns k0..; B: kK x kN at rows
// k0.., columns bn..) into stage `stage` of shared memory.
template <int W>
__device__ void load_slice(float* stage, const float* a, const float* b, int m, int n, int k,
                           int bm, int bn, int k0) {
  using S = PipeGemmShape;
  float* as = stage;                  // (kM, kK)
  float* bs = stage + S::kM * S::kK;  // (kK, kN)
  const int tid = threadIdx.y * S::kThreadsX + threadIdx.x;
  for (int v = tid; v < S::kM * S::kK / W; v += S::kThreads) {
    const int r = v / (S::kK / W), c = (v % (S::kK / W)) * W;
    const int row = bm + r, col = k0 + c;
    const int valid = row < m ? max(0, min(W, k - col)) : 0;
    cp_async_zfill<W>(as + r * S::kK + c, valid > 0 ? a + static_cast<size_t>(row) * k + col : a,
                      valid);
  }
  for (int v = tid; v < S::kK * S::kN / W; v += S::kThreads) {
    const int r = v / (S::kN / W), c = (v % (S::kN / W)) * W;
    const int row = k0 + r, col = bn + c;
    const int valid = row < k ? max(0, min(W, n - col)) : 0;
    cp_async_zfill<W>(bs + r * S::kN + c, valid > 0 ? b + static_cast<size_t>(row) * n + col : b,
                      valid);
  }
}

// Double-buffered tiled GEMM: the copies of slice t + 1 are in flight while slice t is
// multiplied. Each thread computes 2 x 2 entries of c (rows ty, ty + 16; columns tx, tx + 16).
template <int W>
__global__ void __launch_bounds__(PipeGemmShape::kThreads)
    pipe_gemm_kernel(const float* __restrict__ a, const float* __restrict__ b,
                     float* __restrict__ c, int m, int n, int k, int variant) {
  using S = PipeGemmShape;
  MW_DYNAMIC_SHARED(float, smem);  // (kStages, kStageFloats)
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int bm = blockIdx.y * S::kM, bn = blockIdx.x * S::kN;
  const int slices = (k + S::kK - 1) / S::kK;
  float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};

  load_slice<W>(smem, a, b, m, n, k, bm, bn, 0);  // prologue: stage 0
  __pipeline_commit();
  for (int t = 0; t < slices; ++t) {
    const bool more = t + 1 < slices;
    if (more) {
      load_slice<W>(smem + ((t + 1) % S::kStages) * S::kStageFloats, a, b, m, n, k, bm, bn,
                    (t + 1) * S::kK);
    }
    // Every iteration commits a group, empty or not, so that wait_prior counts stages.
    if (more || variant != MW_PIPE_GEMM_SKIP_EMPTY_COMMIT) __pipeline_commit();
    if (variant == MW_PIPE_GEMM_WAIT_TOO_SHORT) {
      __pipeline_wait_prior(2);  // MARK: wait-too-short
    } else if (variant != MW_PIPE_GEMM_NO_WAIT) {
      __pipeline_wait_prior(S::kStages - 1);
    }
    __syncthreads();
    const float* as = smem + (t % S::kStages) * S::kStageFloats;
    const float* bs = as + S::kM * S::kK;
#pragma unroll
    for (int kk = 0; kk < S::kK; ++kk) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          acc[i][j] = fmaf(as[(ty + 16 * i) * S::kK + kk], bs[kk * S::kN + tx + 16 * j], acc[i][j]);
        }
      }
    }
    if (variant != MW_PIPE_GEMM_NO_REFILL_BARRIER) {
      __syncthreads();  // the stage is refilled by the next iteration's copies
    }
  }
  __pipeline_wait_prior(0);  // drain
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int row = bm + ty + 16 * i, col = bn + tx + 16 * j;
      if (row < m && col < n) c[static_cast<size_t>(row) * n + col] = acc[i][j];
    }
  }
}

__global__ void pipe_zfill_kernel(const float* src, float* out, int size, int zfill) {
  __shared__ __align__(16) float slot[4];
  if (threadIdx.x != 0) return;
  for (int i = 0; i < 4; ++i) slot[i] = __int_as_float(-1);  // the poison pattern, on both
  __pipeline_memcpy_async(slot, src, size, zfill);
  __pipeline_commit();
  __pipeline_wait_prior(0);
  for (int i = 0; i < 4; ++i) out[i] = slot[i];
}

__global__ void pipe_bad_copy_kernel(const float* src, int which) {
  MW_DYNAMIC_SHARED(float, smem);
  if (threadIdx.x != 0) return;
  const size_t size = which == 0 ? 12 : 16;
  const size_t zfill = which == 3 ? 20 : 0;
  const float* from = which == 1 ? src + 1 : src;
  float* to = which == 2 ? smem + 1 : smem;
  __pipeline_memcpy_async(to, from, size, zfill);  // MARK: bad-copy
  __pipeline_commit();
  __pipeline_wait_prior(0);
}

__global__ void pipe_copy_from_kernel(const float* src, int offset, float* out) {
  MW_DYNAMIC_SHARED(float, smem);
  if (threadIdx.x != 0) return;
  __pipeline_memcpy_async(smem, src + offset, 16);
  __pipeline_commit();
  __pipeline_wait_prior(0);
  for (int i = 0; i < 4; ++i) out[i] = smem[i];
}

unsigned pipe_ceil_div(int a, int b) { return static_cast<unsigned>((a + b - 1) / b); }

}  // namespace

extern "C" {

int mw_pipe_gemm(const float* a, const float* b, float* c, int m, int n, int k, int width,
                 int variant) {
  using S = PipeGemmShape;
  const dim3 grid(pipe_ceil_div(n, S::kN), pipe_ceil_div(m, S::kM));
  const dim3 block(S::kThreadsX, S::kThreadsY);
  const size_t shared = sizeof(float) * S::kStages * S::kStageFloats;
  switch (width) {
    case 1:
      return mw::launch(pipe_gemm_kernel<1>, grid, block, shared, nullptr, a, b, c, m, n, k,
                        variant);
    case 2:
      return mw::launch(pipe_gemm_kernel<2>, grid, block, shared, nullptr, a, b, c, m, n, k,
                        variant);
    case 4:
      return mw::launch(pipe_gemm_kernel<4>, grid, block, shared, nullptr, a, b, c, m, n, k,
                        variant);
    default:
      return cudaErrorInvalidValue;
  }
}

int mw_pipe_zfill(const float* src, float* out, int size, int zfill) {
  return mw::launch(pipe_zfill_kernel, dim3(1), dim3(32), 0, nullptr, src, out, size, zfill);
}

int mw_pipe_bad_copy(const float* src, int which) {
  return mw::launch(pipe_bad_copy_kernel, dim3(1), dim3(32), 64, nullptr, src, which);
}

int mw_pipe_copy_from(const float* src, int offset, float* out) {
  return mw::launch(pipe_copy_from_kernel, dim3(1), dim3(32), 64, nullptr, src, offset, out);
}

}  // extern "C"
