// An outside project's kernel: a 64x64x64 float32 GEMM whose k slices are staged in shared
// memory by double-buffered __pipeline_memcpy_async (16-byte copies), launched with mw::launch.
// The same file compiles with nvcc (sm_80, sm_90; the toolkit's <cuda_pipeline.h>) and with g++
// against magma_wino::emu (the emulator's <cuda_pipeline.h>, kernels/emu/include).
//
// The multiply of one staged slice is SIMT (mac_slice); it is the one piece to replace by a
// WMMA (TF32) warp tile once the emulator's <mma.h> is part of the repository.
#include <cuda_pipeline.h>

#include "launch.cuh"

namespace outside {

struct Shape {
  static constexpr int kM = 64, kN = 64, kK = 64;  // the whole problem: one block
  static constexpr int kSliceK = 16, kStages = 2;
  static constexpr int kThreads = 256;  // 16 x 16, each thread 4 x 4 entries of c
  static constexpr int kSliceFloats = kM * kSliceK + kSliceK * kN;
};

// The one wrapper of every asynchronous copy: 16 bytes, global to shared.
__device__ __forceinline__ void cp_async16(float* dst, const float* src) {
  __pipeline_memcpy_async(dst, src, 16);
}

// Issues the copies of k slice `s` into `stage`: A (kM x kSliceK), then B (kSliceK x kN).
__device__ void load_slice(float* stage, const float* a, const float* b, int s) {
  const int tid = threadIdx.x;
  for (int v = tid; v < Shape::kM * Shape::kSliceK / 4; v += Shape::kThreads) {
    const int r = v / (Shape::kSliceK / 4), c = 4 * (v % (Shape::kSliceK / 4));
    cp_async16(stage + r * Shape::kSliceK + c, a + r * Shape::kK + s * Shape::kSliceK + c);
  }
  float* bs = stage + Shape::kM * Shape::kSliceK;
  for (int v = tid; v < Shape::kSliceK * Shape::kN / 4; v += Shape::kThreads) {
    const int r = v / (Shape::kN / 4), c = 4 * (v % (Shape::kN / 4));
    cp_async16(bs + r * Shape::kN + c, b + (s * Shape::kSliceK + r) * Shape::kN + c);
  }
}

// acc (4 x 4 entries: rows ty + 16 i, columns tx + 16 j) += A slice . B slice.
__device__ void mac_slice(const float* stage, float (&acc)[4][4]) {
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float* as = stage;
  const float* bs = stage + Shape::kM * Shape::kSliceK;
#pragma unroll
  for (int kk = 0; kk < Shape::kSliceK; ++kk) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        acc[i][j] = fmaf(as[(ty + 16 * i) * Shape::kSliceK + kk], bs[kk * Shape::kN + tx + 16 * j],
                         acc[i][j]);
      }
    }
  }
}

__global__ void __launch_bounds__(Shape::kThreads)
    gemm64_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c) {
  MW_DYNAMIC_SHARED(float, smem);  // (kStages, kSliceFloats)
  constexpr int kSlices = Shape::kK / Shape::kSliceK;
  float acc[4][4] = {};
  load_slice(smem, a, b, 0);
  __pipeline_commit();
  for (int s = 0; s < kSlices; ++s) {
    if (s + 1 < kSlices) load_slice(smem + ((s + 1) % 2) * Shape::kSliceFloats, a, b, s + 1);
    __pipeline_commit();                        // every iteration, even with nothing issued
    __pipeline_wait_prior(Shape::kStages - 1);  // slice s has landed (this thread's copies)
    __syncthreads();                            // ... and every other thread's
    mac_slice(smem + (s % 2) * Shape::kSliceFloats, acc);
    __syncthreads();  // the stage is refilled next iteration
  }
  __pipeline_wait_prior(0);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) c[(ty + 16 * i) * Shape::kN + tx + 16 * j] = acc[i][j];
  }
}

}  // namespace outside

// c = a . b, all 64 x 64 row-major float32, 16-byte aligned (device pointers under nvcc).
extern "C" int outside_gemm64(const float* a, const float* b, float* c) {
  using outside::Shape;
  return mw::launch(outside::gemm64_kernel, dim3(1), dim3(Shape::kThreads),
                    sizeof(float) * Shape::kStages * Shape::kSliceFloats, nullptr, a, b, c);
}

extern "C" const char* outside_last_error() { return mw::last_launch_error_message(); }
