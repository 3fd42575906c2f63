// An outside project's kernel: a 64x64x64 TF32 tensor-core GEMM (WMMA m16n16k8, float
// accumulation) whose k slices are staged in shared memory by double-buffered
// __pipeline_memcpy_async (16-byte copies), launched with mw::launch. The same file compiles with
// nvcc (sm_80, sm_90; the toolkit's <mma.h> and <cuda_pipeline.h>) and with g++ against
// magma_wino::emu (the emulator's headers in kernels/emu/include).
#include <cuda_pipeline.h>
#include <mma.h>

#include "launch.cuh"

namespace outside {

namespace wmma = nvcuda::wmma;

struct Shape {
  static constexpr int kM = 64, kN = 64, kK = 64;  // the whole problem: one block
  static constexpr int kSliceK = 16, kStages = 2;
  static constexpr int kWarps = 8, kThreads = 32 * kWarps;    // warp w: rows 16 (w / 2), 2 tiles
  static constexpr int kTileM = 16, kTileN = 16, kTileK = 8;  // m16n16k8 (TF32)
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

using FragA = wmma::fragment<wmma::matrix_a, Shape::kTileM, Shape::kTileN, Shape::kTileK,
                             wmma::precision::tf32, wmma::row_major>;
using FragB = wmma::fragment<wmma::matrix_b, Shape::kTileM, Shape::kTileN, Shape::kTileK,
                             wmma::precision::tf32, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, Shape::kTileM, Shape::kTileN, Shape::kTileK, float>;

// acc[j] (the warp's tiles: rows 16 (warp / 2), columns 16 (2 (warp % 2) + j)) += A . B slice.
__device__ void mac_slice(const float* stage, FragC (&acc)[2]) {
  const int warp = threadIdx.x / 32;
  const int tile_row = warp / 2, tile_col = 2 * (warp % 2);
  const float* as = stage;
  const float* bs = stage + Shape::kM * Shape::kSliceK;
#pragma unroll
  for (int kk = 0; kk < Shape::kSliceK; kk += Shape::kTileK) {
    FragA fa;
    wmma::load_matrix_sync(fa, as + tile_row * Shape::kTileM * Shape::kSliceK + kk, Shape::kSliceK);
#pragma unroll
    for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      FragB fb;
      wmma::load_matrix_sync(fb, bs + kk * Shape::kN + (tile_col + j) * Shape::kTileN, Shape::kN);
#pragma unroll
      for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
      wmma::mma_sync(acc[j], fa, fb, acc[j]);
    }
  }
}

__global__ void __launch_bounds__(Shape::kThreads)
    gemm64_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c) {
  // WMMA pointers must be 256-bit aligned.
  __shared__ __align__(32) float smem[Shape::kStages * Shape::kSliceFloats];
  constexpr int kSlices = Shape::kK / Shape::kSliceK;
  FragC acc[2];
  wmma::fill_fragment(acc[0], 0.0f);
  wmma::fill_fragment(acc[1], 0.0f);
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
  const int warp = threadIdx.x / 32;
  const int tile_row = warp / 2, tile_col = 2 * (warp % 2);
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    wmma::store_matrix_sync(
        c + tile_row * Shape::kTileM * Shape::kN + (tile_col + j) * Shape::kTileN, acc[j],
        Shape::kN, wmma::mem_row_major);
  }
}

}  // namespace outside

// c = a . b with TF32 operands (rounded by __float_to_tf32) and float accumulation, all 64 x 64
// row-major float32, 32-byte aligned (device pointers under nvcc).
extern "C" int outside_gemm64(const float* a, const float* b, float* c) {
  using outside::Shape;
  return mw::launch(outside::gemm64_kernel, dim3(1), dim3(Shape::kThreads), 0, nullptr, a, b, c);
}

extern "C" const char* outside_last_error() { return mw::last_launch_error_message(); }
