// Dense batched products over channels: C[b] = A[b] · B[b] for every Winograd position b.
//
// In a layer: M[b] (K x P) = U[b] (K x C) · V[b] (C x P), batch = alpha^nd.  All matrices
// are row-major and contiguous per batch entry.  MAGMA's batched GEMM structure, four layers:
//
//   gemm_batched_device<T, Config>  one thread block computes a BLK_M x BLK_N tile of C[b]
//   gemm_batched_kernel<T, Config>  __global__: picks b = blockIdx.z (+ chunk offset)
//   gemm_batched_launch<T, Config>  host: grid (ceil(n/BLK_N), ceil(m/BLK_M), batch), chunked
//   gemm_batched<T>                 host: picks the named tile configuration by problem size
//
// Per block: DIM_X x DIM_Y threads; each thread owns a THR_M x THR_N register block of C at
// rows ty + DIM_Y*i and columns tx + DIM_X*j (strided, so that a warp's 32 threads touch 32
// consecutive columns: conflict-free shared-memory reads and coalesced stores of C, which is
// contiguous along n = P).  K is walked in BLK_K slices staged in shared memory: A's slice
// is stored transposed (sA[k][m]) so the inner loop reads a column of A as a broadcast.
#pragma once

#include <algorithm>
#include <cstdint>

#include "launch.cuh"

namespace mw {

// Named tile configurations (CUTLASS habit: a config is a type, not a numbered macro).
template <int DIM_X_, int DIM_Y_, int BLK_M_, int BLK_N_, int BLK_K_>
struct GemmConfig {
  static constexpr int DIM_X = DIM_X_, DIM_Y = DIM_Y_;
  static constexpr int BLK_M = BLK_M_, BLK_N = BLK_N_, BLK_K = BLK_K_;
  static constexpr int THREADS = DIM_X * DIM_Y;
  static constexpr int THR_M = BLK_M / DIM_Y, THR_N = BLK_N / DIM_X;
  static_assert(BLK_M % DIM_Y == 0 && BLK_N % DIM_X == 0, "register block must tile the block");
  static_assert((BLK_M * BLK_K) % THREADS == 0 && (BLK_K * BLK_N) % THREADS == 0,
                "shared-memory tiles must load in whole rounds");
  static_assert(BLK_K % 4 == 0 && BLK_N % 4 == 0, "16-byte vector loads must tile the block");
  template <typename T>
  static constexpr size_t shared_bytes() {
    return sizeof(T) * static_cast<size_t>(BLK_K) * (BLK_M + BLK_N);
  }
};

// 64 x 64 tile, 4 x 4 outputs per thread: the workhorse for K (output channels) >= 64.
using GemmTile64x64 = GemmConfig<16, 16, 64, 64, 16>;
// 32 x 64 tile, 2 x 4 per thread: few output channels (K < 64) or a small batch of tiles.
using GemmTile32x64 = GemmConfig<16, 16, 32, 64, 16>;
// 16 x 32 tile, 2 x 2 per thread (128 threads): tiny layers, avoids mostly-idle blocks.
using GemmTile16x32 = GemmConfig<16, 8, 16, 32, 8>;

// VEC consecutive elements, aligned for one vector load (float4 / double2 when VEC
// elements make 16 bytes).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T x[VEC];
  static __device__ __forceinline__ Vec zeros() {
    Vec v;
#pragma unroll
    for (int i = 0; i < VEC; ++i) v.x[i] = T(0);
    return v;
  }
};

template <typename T, int VEC>
__device__ __forceinline__ Vec<T, VEC> load_vec(const T* __restrict__ p) {
  if constexpr (VEC == 1) {
    Vec<T, 1> v;
    v.x[0] = __ldg(p);
    return v;
  } else {
    // One 16-byte load (LDG.128); p must be 16-byte aligned (the emulator checks it).
    using V = Vec<T, VEC>;
    return MW_LOAD_VECTOR(V, p);
  }
}

// Elements per vector load when the data allow it: 16 bytes.
template <typename T>
constexpr int kVecWidth = 16 / sizeof(T);

template <typename T, typename Cfg, int VEC>
__device__ __forceinline__ void gemm_batched_device(int m, int n, int k, const T* __restrict__ A,
                                                    const T* __restrict__ B, T* __restrict__ C,
                                                    T* __restrict__ smem) {
  constexpr int DIM_X = Cfg::DIM_X, DIM_Y = Cfg::DIM_Y;
  constexpr int BLK_M = Cfg::BLK_M, BLK_N = Cfg::BLK_N, BLK_K = Cfg::BLK_K;
  constexpr int THR_M = Cfg::THR_M, THR_N = Cfg::THR_N, THREADS = Cfg::THREADS;
  T* __restrict__ sA = smem;                  // [BLK_K][BLK_M], A's slice transposed
  T* __restrict__ sB = smem + BLK_K * BLK_M;  // [BLK_K][BLK_N]

  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * DIM_X + tx;
  const int row0 = blockIdx.y * BLK_M;
  const int col0 = blockIdx.x * BLK_N;

  T acc[THR_M][THR_N];
#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
#pragma unroll
    for (int j = 0; j < THR_N; ++j) acc[i][j] = T(0);
  }

  for (int kk = 0; kk < k; kk += BLK_K) {
    // Stage A[row0 : row0+BLK_M, kk : kk+BLK_K] -> sA (transposed), VEC elements per load:
    // consecutive threads read consecutive k of one row.  Out-of-range elements are staged
    // as zeros, so the inner loop needs no bounds checks.  With VEC > 1 the launcher has
    // checked k % VEC == 0 and 16-byte alignment, so a vector is either wholly inside or
    // wholly outside the matrix.
    constexpr int A_VECS = BLK_M * (BLK_K / VEC);  // vectors per A slice
#pragma unroll
    for (int it = 0; it < (A_VECS + THREADS - 1) / THREADS; ++it) {  // compile-time trip count
      const int e = tid + it * THREADS;
      if (A_VECS % THREADS != 0 && e >= A_VECS) break;
      const int r = e / (BLK_K / VEC), c = (e % (BLK_K / VEC)) * VEC;
      const int gr = row0 + r, gc = kk + c;
      Vec<T, VEC> v;
      if (gr < m && gc < k)
        v = load_vec<T, VEC>(A + static_cast<long long>(gr) * k + gc);
      else
        v = Vec<T, VEC>::zeros();
#pragma unroll
      for (int i = 0; i < VEC; ++i) sA[(c + i) * BLK_M + r] = v.x[i];
    }
    // Stage B[kk : kk+BLK_K, col0 : col0+BLK_N] -> sB.  Consecutive threads read
    // consecutive columns: coalesced along P.
    constexpr int B_VECS = BLK_K * (BLK_N / VEC);  // vectors per B slice
#pragma unroll
    for (int it = 0; it < (B_VECS + THREADS - 1) / THREADS; ++it) {
      const int e = tid + it * THREADS;
      if (B_VECS % THREADS != 0 && e >= B_VECS) break;
      const int r = e / (BLK_N / VEC), c = (e % (BLK_N / VEC)) * VEC;
      const int gr = kk + r, gc = col0 + c;
      Vec<T, VEC> v;
      if (gr < k && gc < n)
        v = load_vec<T, VEC>(B + static_cast<long long>(gr) * n + gc);
      else
        v = Vec<T, VEC>::zeros();
#pragma unroll
      for (int i = 0; i < VEC; ++i) sB[r * BLK_N + c + i] = v.x[i];
    }
    __syncthreads();

#pragma unroll
    for (int l = 0; l < BLK_K; ++l) {
      T a[THR_M], b[THR_N];
#pragma unroll
      for (int i = 0; i < THR_M; ++i) a[i] = sA[l * BLK_M + ty + DIM_Y * i];
#pragma unroll
      for (int j = 0; j < THR_N; ++j) b[j] = sB[l * BLK_N + tx + DIM_X * j];
#pragma unroll
      for (int i = 0; i < THR_M; ++i) {
#pragma unroll
        for (int j = 0; j < THR_N; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
      }
    }
    // The next iteration overwrites sA/sB: wait until every thread has read them.
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
    const int gr = row0 + ty + DIM_Y * i;
    if (gr >= m) continue;
#pragma unroll
    for (int j = 0; j < THR_N; ++j) {
      const int gc = col0 + tx + DIM_X * j;
      if (gc < n) C[static_cast<long long>(gr) * n + gc] = acc[i][j];
    }
  }
}

// Resident blocks per SM promised to ptxas.  Without it, CUDA 13's ptxas sometimes caps
// these kernels at 48-64 registers and spills; two blocks of 256 threads allow up to 128
// registers per thread, more than any configuration needs.
constexpr int kGemmMinBlocks = 2;

template <typename T, typename Cfg, int VEC>
__global__ void __launch_bounds__(Cfg::THREADS, kGemmMinBlocks)
    gemm_batched_kernel(int m, int n, int k, const T* __restrict__ A, long long stride_a,
                        const T* __restrict__ B, long long stride_b, T* __restrict__ C,
                        long long stride_c, int batch_offset) {
  MW_DYNAMIC_SHARED(T, smem);
  const long long b = static_cast<long long>(blockIdx.z) + batch_offset;
  gemm_batched_device<T, Cfg, VEC>(m, n, k, A + b * stride_a, B + b * stride_b, C + b * stride_c,
                                   smem);
}

// Grid dimension limits of CUDA: y and z at most 65535.
constexpr int kMaxGridYZ = 65535;

template <typename T, typename Cfg, int VEC>
cudaError_t gemm_batched_launch(int batch, int m, int n, int k, const T* A, const T* B, T* C,
                                cudaStream_t stream) {
  const int blocks_m = (m + Cfg::BLK_M - 1) / Cfg::BLK_M;
  const int blocks_n = (n + Cfg::BLK_N - 1) / Cfg::BLK_N;
  const dim3 block(Cfg::DIM_X, Cfg::DIM_Y);
  // Rows of blocks beyond grid.y's limit: launch again on a row-offset view of A and C.
  for (int rb = 0; rb < blocks_m; rb += kMaxGridYZ) {
    const int rows_here = std::min(m - rb * Cfg::BLK_M, kMaxGridYZ * Cfg::BLK_M);
    const int grid_y = (rows_here + Cfg::BLK_M - 1) / Cfg::BLK_M;
    // The chunk is a row-offset view of every A[b] and C[b]: the batch strides stay m*k and
    // m*n, only the base and the row count change.
    for (int b0 = 0; b0 < batch; b0 += kMaxGridYZ) {
      const dim3 grid(blocks_n, grid_y, std::min(batch - b0, kMaxGridYZ));
      const long long row_off = static_cast<long long>(rb) * Cfg::BLK_M;
      const cudaError_t err =
          launch(gemm_batched_kernel<T, Cfg, VEC>, grid, block, Cfg::template shared_bytes<T>(),
                 stream, rows_here, n, k, A + row_off * k, static_cast<long long>(m) * k, B,
                 static_cast<long long>(k) * n, C + row_off * n, static_cast<long long>(m) * n, b0);
      if (err != cudaSuccess) return err;
    }
  }
  return cudaSuccess;
}

// 16-byte vector loads need 16-byte aligned rows: aligned base pointers and row lengths
// (k for A, n for B) that are multiples of the vector width.
template <typename T, typename Cfg>
cudaError_t gemm_batched_vectorized_if_aligned(int batch, int m, int n, int k, const T* A,
                                               const T* B, T* C, cudaStream_t stream) {
  constexpr int V = kVecWidth<T>;
  const bool aligned = k % V == 0 && n % V == 0 && reinterpret_cast<uintptr_t>(A) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(B) % 16 == 0;
  if (aligned) return gemm_batched_launch<T, Cfg, V>(batch, m, n, k, A, B, C, stream);
  return gemm_batched_launch<T, Cfg, 1>(batch, m, n, k, A, B, C, stream);
}

// Pick the tile configuration by problem size (m = output channels, n = tiles P).
template <typename T>
cudaError_t gemm_batched(int batch, int m, int n, int k, const T* A, const T* B, T* C,
                         cudaStream_t stream) {
  if (m >= 64 && n >= 64)
    return gemm_batched_vectorized_if_aligned<T, GemmTile64x64>(batch, m, n, k, A, B, C, stream);
  if (m >= 32 && n >= 64)
    return gemm_batched_vectorized_if_aligned<T, GemmTile32x64>(batch, m, n, k, A, B, C, stream);
  return gemm_batched_vectorized_if_aligned<T, GemmTile16x32>(batch, m, n, k, A, B, C, stream);
}

}  // namespace mw
