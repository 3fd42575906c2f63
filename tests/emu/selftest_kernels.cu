// Self-test kernels of the CUDA emulator (not product kernels).
//
// The same source is compiled by g++ against kernels/emu (through selftest_kernels_emu.cpp)
// and, when nvcc is available, by nvcc for sm_80 / sm_90 to prove it is valid CUDA. Lines
// marked "MARK:" are located by the Python tests to check that diagnostics name them.
#include "launch.cuh"
#include "selftest_kernels.h"

namespace {

constexpr unsigned kFullMask = 0xffffffffu;

unsigned ceil_div(int a, int b) { return static_cast<unsigned>((a + b - 1) / b); }

// ---------------------------------------------------------------------------------------------
// Correct kernels.

template <int kTile>
__global__ void __launch_bounds__(kTile* kTile)
    sgemm_tiled_kernel(const float* __restrict__ a, const float* __restrict__ b,
                       float* __restrict__ c, int m, int n, int k) {
  __shared__ float a_tile[kTile][kTile + 1];
  __shared__ float b_tile[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * kTile + ty;
  const int col = blockIdx.x * kTile + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < k; k0 += kTile) {
    a_tile[ty][tx] = (row < m && k0 + tx < k) ? __ldg(&a[row * k + k0 + tx]) : 0.0f;
    b_tile[ty][tx] = (k0 + ty < k && col < n) ? __ldg(&b[(k0 + ty) * n + col]) : 0.0f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) acc = fmaf(a_tile[ty][kk], b_tile[kk][tx], acc);
    __syncthreads();
  }
  if (row < m && col < n) c[row * n + col] = acc;
}

__device__ __forceinline__ float warp_reduce_sum(float value) {
  for (int offset = warpSize / 2; offset > 0; offset /= 2) {
    value += __shfl_down_sync(kFullMask, value, offset);
  }
  return value;
}

__global__ void block_reduce_kernel(const float* __restrict__ x, float* __restrict__ sums, int n) {
  __shared__ float warp_sums[32];
  const int tid = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + tid;
  float value = i < n ? x[i] : 0.0f;
  value = warp_reduce_sum(value);
  if (tid % warpSize == 0) warp_sums[tid / warpSize] = value;
  __syncthreads();
  if (tid < warpSize) {
    const int warps = blockDim.x / warpSize;
    value = tid < warps ? warp_sums[tid] : 0.0f;
    // A butterfly this time: every lane of warp 0 ends with the total.
    for (int mask = warpSize / 2; mask > 0; mask /= 2)
      value += __shfl_xor_sync(kFullMask, value, mask);
    if (tid == 0) sums[blockIdx.x] = value;
  }
}

__global__ void histogram_kernel(const int* __restrict__ values, int n, int* __restrict__ bins,
                                 int num_bins) {
  MW_DYNAMIC_SHARED(int, local_bins);
  for (int b = threadIdx.x; b < num_bins; b += blockDim.x) local_bins[b] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    atomicAdd(&local_bins[values[i]], 1);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < num_bins; b += blockDim.x) {
    if (local_bins[b] != 0) atomicAdd(&bins[b], local_bins[b]);
  }
}

__global__ void weighted_histogram_kernel(const int* __restrict__ values,
                                          const float* __restrict__ weights, int n,
                                          float* float_bins, double* double_bins) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  atomicAdd(&float_bins[values[i]], weights[i]);
  atomicAdd(&double_bins[values[i]], static_cast<double>(weights[i]));
}

__global__ void batched_axpy_kernel(const float* __restrict__ x, const float* __restrict__ y,
                                    float* __restrict__ out, int rows, int cols, float alpha) {
  const int row = blockIdx.y * blockDim.y + threadIdx.y;
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= rows || col >= cols) return;
  const size_t index = (static_cast<size_t>(blockIdx.z) * rows + row) * cols + col;
  out[index] = fmaf(alpha, x[index], y[index]);
}

__global__ void atomics_kernel(const int* __restrict__ x, int n, int* max_int, float* max_float,
                               double* max_double, int* cas_count, int* slot, int* exchanged) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  atomicMax(max_int, x[i]);
  // CUDA has no float/double atomicMax: the usual compare-and-swap loops on the bit patterns.
  const float value_f = static_cast<float>(x[i]);
  int old_f = __float_as_int(*max_float);
  while (__int_as_float(old_f) < value_f) {
    const int seen = atomicCAS(reinterpret_cast<int*>(max_float), old_f, __float_as_int(value_f));
    if (seen == old_f) break;
    old_f = seen;
  }
  const double value_d = static_cast<double>(x[i]);
  unsigned long long old_d = static_cast<unsigned long long>(__double_as_longlong(*max_double));
  while (__longlong_as_double(static_cast<long long>(old_d)) < value_d) {
    const unsigned long long seen =
        atomicCAS(reinterpret_cast<unsigned long long*>(max_double), old_d,
                  static_cast<unsigned long long>(__double_as_longlong(value_d)));
    if (seen == old_d) break;
    old_d = seen;
  }
  // An increment written as the usual compare-and-swap loop.
  int old = *cas_count, assumed;
  do {
    assumed = old;
    old = atomicCAS(cas_count, assumed, assumed + 1);
  } while (old != assumed);
  exchanged[i] = atomicExch(slot, i);
}

__global__ void shuffle_semantics_kernel(int width, int* out) {
  const int lane = threadIdx.x;
  const int value = 100 + lane;
  out[0 * 32 + lane] = __shfl_sync(kFullMask, value, lane * 3 + 1, width);
  out[1 * 32 + lane] = __shfl_up_sync(kFullMask, value, 3, width);
  out[2 * 32 + lane] = __shfl_down_sync(kFullMask, value, 5, width);
  out[3 * 32 + lane] = __shfl_xor_sync(kFullMask, value, 6, width);
  out[4 * 32 + lane] = static_cast<int>(__ballot_sync(kFullMask, lane % 3 == 0));
  out[5 * 32 + lane] = __any_sync(kFullMask, lane == 17);
  out[6 * 32 + lane] = __all_sync(kFullMask, lane < 31);
  __syncwarp();
}

__global__ void neighbor_sum_kernel(const float* __restrict__ x, float* __restrict__ out, int n,
                                    int with_barrier) {
  MW_DYNAMIC_SHARED(float, values);
  const int t = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + t;
  values[t] = i < n ? x[i] : 0.0f;
  if (with_barrier) __syncthreads();
  if (i < n) out[i] = values[t] + (t > 0 ? values[t - 1] : 0.0f);
}

// Direct 3x3 convolution, zero padding 1: one 16x16 output tile of one (image, output channel)
// per block, the 18x18 input halo tile and the 3x3 filter of each input channel in shared memory.
constexpr int kConvTile = 16;
__global__ void __launch_bounds__(kConvTile* kConvTile)
    conv3x3_kernel(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
                   int channels, int height, int width) {
  __shared__ float input_tile[kConvTile + 2][kConvTile + 2];
  __shared__ float filter[9];
  const int tiles_x = (width + kConvTile - 1) / kConvTile;
  const int tile_row0 = static_cast<int>(blockIdx.x) / tiles_x * kConvTile;
  const int tile_col0 = static_cast<int>(blockIdx.x) % tiles_x * kConvTile;
  const int k = blockIdx.y, image = blockIdx.z, out_channels = gridDim.y;
  const int tid = threadIdx.y * kConvTile + threadIdx.x;
  float acc = 0.0f;
  for (int c = 0; c < channels; ++c) {
    const float* plane = x + (static_cast<size_t>(image) * channels + c) * height * width;
    for (int e = tid; e < (kConvTile + 2) * (kConvTile + 2); e += kConvTile * kConvTile) {
      const int r = tile_row0 - 1 + e / (kConvTile + 2);
      const int q = tile_col0 - 1 + e % (kConvTile + 2);
      const bool inside = r >= 0 && r < height && q >= 0 && q < width;
      input_tile[e / (kConvTile + 2)][e % (kConvTile + 2)] = inside ? plane[r * width + q] : 0.0f;
    }
    if (tid < 9) filter[tid] = w[(static_cast<size_t>(k) * channels + c) * 9 + tid];
    __syncthreads();
#pragma unroll
    for (int dr = 0; dr < 3; ++dr)
#pragma unroll
      for (int dq = 0; dq < 3; ++dq)
        acc = fmaf(filter[dr * 3 + dq], input_tile[threadIdx.y + dr][threadIdx.x + dq], acc);
    __syncthreads();
  }
  const int row = tile_row0 + threadIdx.y, col = tile_col0 + threadIdx.x;
  if (row < height && col < width) {
    y[((static_cast<size_t>(image) * out_channels + k) * height + row) * width + col] = acc;
  }
}

// ---------------------------------------------------------------------------------------------
// Deliberately wrong kernels.

__global__ void early_return_kernel(float* out) {
  __shared__ float buffer[64];
  const int t = threadIdx.x;
  if (t == 5) return;  // leaves the others waiting below
  buffer[t] = static_cast<float>(t);
  __syncthreads();  // MARK: early-return-barrier
  out[t] = buffer[63 - t];
}

__global__ void barrier_mismatch_kernel(float* out) {
  const int t = threadIdx.x;
  if (t % 2 == 0) {
    __syncthreads();  // MARK: mismatch-even-barrier
  } else {
    __syncthreads();  // MARK: mismatch-odd-barrier
  }
  out[t] = 1.0f;
}

__global__ void read_unwritten_shared_kernel(float* out) {
  MW_DYNAMIC_SHARED(float, scratch);
  const int t = threadIdx.x;
  if (t % 2 == 0) scratch[t] = static_cast<float>(t);
  __syncthreads();
  out[t] = scratch[t];
}

__global__ void shared_overflow_kernel(int threads) {
  MW_DYNAMIC_SHARED(float, scratch);
  const int t = threadIdx.x;
  scratch[t] = 1.0f;
  if (t == 0) scratch[threads + 3] = 2.0f;  // one float past the end, plus three
}

__global__ void bad_shuffle_kernel(int which, int* out) {
  const int lane = threadIdx.x % 32;
  int value = lane;
  switch (which) {
    case 0:  // lanes 16..31 call with a mask that leaves them out
      value = __shfl_sync(0x0000ffffu, value, 0);  // MARK: shuffle-not-in-mask
      break;
    case 1:  // lane 0 names the whole warp, the others leave lane 0 out
      value = __shfl_sync(lane == 0 ? kFullMask : 0xfffffffeu, value, 1);
      break;
    case 2:  // launched with 16 threads: lanes 16..31 do not exist
      value = __shfl_xor_sync(kFullMask, value, 1);
      break;
    case 3:  // lane 3 is gone before the others shuffle
      if (lane == 3) return;
      value = __shfl_down_sync(kFullMask, value, 1);
      break;
    case 4:  // half the warp at a barrier, the other half at a shuffle: nobody can proceed
      if (lane < 16) {
        __syncthreads();
      } else {
        value = __shfl_sync(kFullMask, value, 0);  // MARK: shuffle-deadlock
      }
      break;
    case 5:
      value = __shfl_sync(kFullMask, value, 0, 3);
      break;
  }
  out[threadIdx.x] = value;
}

__global__ void noop_kernel(int* flag) {
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0 && blockIdx.x == 0 &&
      blockIdx.y == 0 && blockIdx.z == 0) {
    flag[0] = 1;
  }
}

__global__ void global_out_of_bounds_kernel(float* buffer, int n) {
  if (threadIdx.x == 0) buffer[n] = 1.0f;  // one past the end
}

// W floats moved by one vector instruction (8 or 16 bytes, aligned to their size).
template <int W>
struct alignas(4 * W) Floats {
  float v[W];
};

// out = 2 * x, one vector per thread: read from x + offset as one vector (store == 0) or written
// to out + offset as one vector (store == 1); the other side is scalar.  Correct when offset is
// a multiple of W; otherwise the vector access is misaligned (a GPU faults).
template <int W>
__global__ void vector_access_kernel(const float* __restrict__ x, float* __restrict__ out,
                                     int vectors, int offset, int store) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= vectors) return;
  if (store == 0) {
    const Floats<W> v = MW_LOAD_VECTOR(Floats<W>, x + offset + W * t);  // MARK: vector-load
#pragma unroll
    for (int i = 0; i < W; ++i) out[W * t + i] = 2.0f * v.v[i];
  } else {
    Floats<W> v;
#pragma unroll
    for (int i = 0; i < W; ++i) v.v[i] = 2.0f * x[W * t + i];
    MW_STORE_VECTOR(out + offset + W * t, v);  // MARK: vector-store
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Host entry points.
extern "C" {

const char* mw_selftest_last_error_message(void) { return mw::last_launch_error_message(); }

const char* mw_selftest_error_string(int status) {
  return cudaGetErrorString(static_cast<cudaError_t>(status));
}

int mw_selftest_sgemm(const float* a, const float* b, float* c, int m, int n, int k) {
  constexpr int kTile = 16;
  return mw::launch(sgemm_tiled_kernel<kTile>, dim3(ceil_div(n, kTile), ceil_div(m, kTile)),
                    dim3(kTile, kTile), 0, nullptr, a, b, c, m, n, k);
}

int mw_selftest_block_reduce(const float* x, float* sums, int n, int threads) {
  return mw::launch(block_reduce_kernel, dim3(ceil_div(n, threads)), dim3(threads), 0, nullptr, x,
                    sums, n);
}

int mw_selftest_histogram(const int* values, int n, int* bins, int num_bins) {
  return mw::launch(histogram_kernel, dim3(4), dim3(128), num_bins * sizeof(int), nullptr, values,
                    n, bins, num_bins);
}

int mw_selftest_weighted_histogram(const int* values, const float* weights, int n,
                                   float* float_bins, double* double_bins, int num_bins) {
  (void)num_bins;
  return mw::launch(weighted_histogram_kernel, dim3(ceil_div(n, 64)), dim3(64), 0, nullptr, values,
                    weights, n, float_bins, double_bins);
}

int mw_selftest_batched_axpy(const float* x, const float* y, float* out, int batch, int rows,
                             int cols, float alpha) {
  return mw::launch(batched_axpy_kernel, dim3(ceil_div(cols, 16), ceil_div(rows, 8), batch),
                    dim3(16, 8), 0, nullptr, x, y, out, rows, cols, alpha);
}

int mw_selftest_atomics(const int* x, int n, double* results, int* exchanged) {
  // Scalars in one buffer; under nvcc the caller passes device memory for all pointers.
  struct Scalars {
    int max_int;
    float max_float;
    double max_double;
    int cas_count;
    int slot;
  };
  Scalars* scalars = reinterpret_cast<Scalars*>(results);  // results has room for 5 doubles
  scalars->max_int = -2147483647 - 1;
  scalars->max_float = -3.0e38f;
  scalars->max_double = -1.0e300;
  scalars->cas_count = 0;
  scalars->slot = -1;
  const int status = mw::launch(atomics_kernel, dim3(ceil_div(n, 96)), dim3(96), 0, nullptr, x, n,
                                &scalars->max_int, &scalars->max_float, &scalars->max_double,
                                &scalars->cas_count, &scalars->slot, exchanged);
  const Scalars copy = *scalars;
  results[0] = copy.max_int;
  results[1] = copy.max_float;
  results[2] = copy.max_double;
  results[3] = copy.cas_count;
  results[4] = copy.slot;
  return status;
}

int mw_selftest_shuffle_semantics(int width, int* out) {
  return mw::launch(shuffle_semantics_kernel, dim3(1), dim3(32), 0, nullptr, width, out);
}

int mw_selftest_neighbor_sum(const float* x, float* out, int n, int threads, int with_barrier) {
  return mw::launch(neighbor_sum_kernel, dim3(ceil_div(n, threads)), dim3(threads),
                    threads * sizeof(float), nullptr, x, out, n, with_barrier);
}

int mw_selftest_conv3x3(const float* x, const float* w, float* y, int n, int c, int k, int h,
                        int width) {
  const unsigned tiles = ceil_div(h, kConvTile) * ceil_div(width, kConvTile);
  return mw::launch(conv3x3_kernel, dim3(tiles, k, n), dim3(kConvTile, kConvTile), 0, nullptr, x, w,
                    y, c, h, width);
}

int mw_selftest_early_return_divergence(float* out) {
  return mw::launch(early_return_kernel, dim3(2), dim3(64), 0, nullptr, out);
}

int mw_selftest_barrier_mismatch(float* out) {
  return mw::launch(barrier_mismatch_kernel, dim3(1), dim3(64), 0, nullptr, out);
}

int mw_selftest_read_unwritten_shared(float* out, int threads) {
  return mw::launch(read_unwritten_shared_kernel, dim3(1), dim3(threads), threads * sizeof(float),
                    nullptr, out);
}

int mw_selftest_shared_overflow(int threads) {
  return mw::launch(shared_overflow_kernel, dim3(1), dim3(threads), threads * sizeof(float),
                    nullptr, threads);
}

int mw_selftest_bad_shuffle(int which, int* out) {
  return mw::launch(bad_shuffle_kernel, dim3(1), dim3(which == 2 ? 16 : 32), 0, nullptr, which,
                    out);
}

int mw_selftest_launch_config(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                              unsigned bz, size_t shared_bytes, int opt_in, int* flag) {
  // More than 48 KiB needs the kernel's opt-in (as on a GPU); opt_in = 0 tests the refusal.
  if (opt_in && shared_bytes > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(
        noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes));
    if (err != cudaSuccess) return err;
  }
  return mw::launch(noop_kernel, dim3(gx, gy, gz), dim3(bx, by, bz), shared_bytes, nullptr, flag);
}

int mw_selftest_global_out_of_bounds(float* buffer, int n) {
  return mw::launch(global_out_of_bounds_kernel, dim3(1), dim3(32), 0, nullptr, buffer, n);
}

int mw_selftest_vector_access(const float* x, float* out, int vectors, int width, int offset,
                              int store) {
  const dim3 grid(ceil_div(vectors, 64)), block(64);
  if (width == 2)
    return mw::launch(vector_access_kernel<2>, grid, block, 0, nullptr, x, out, vectors, offset,
                      store);
  if (width == 4)
    return mw::launch(vector_access_kernel<4>, grid, block, 0, nullptr, x, out, vectors, offset,
                      store);
  return cudaErrorInvalidValue;
}

}  // extern "C"
