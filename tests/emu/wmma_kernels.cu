// WMMA test kernels of the CUDA emulator (not product kernels).
//
// The same source is compiled by g++ against kernels/emu and kernels/emu/include (through
// wmma_kernels_emu.cpp, so <mma.h> is the emulator's) and, when nvcc is available, by nvcc for
// sm_80 / sm_90 against CUDA's <mma.h>, which proves it is valid CUDA. Lines marked "MARK:" are
// located by tests/emu/test_emu_wmma.py to check that diagnostics name them.
#include <mma.h>

#include <type_traits>

#include "launch.cuh"
#include "wmma_kernels.h"

namespace {

namespace wmma = nvcuda::wmma;

constexpr int kWarpsPerBlock = 4;

// Tile shapes and types of each precision (Operand: the fragment element type).
template <int M_, int N_, int K_, typename In_, typename Operand_, typename Out_>
struct WmmaConfig {
  static constexpr int M = M_, N = N_, K = K_;
  using In = In_;
  using Operand = Operand_;
  using Out = Out_;
};
using Tf32Config = WmmaConfig<16, 16, 8, float, wmma::precision::tf32, float>;
using Bf16Config = WmmaConfig<16, 16, 16, __nv_bfloat16, __nv_bfloat16, float>;
using Fp16Config = WmmaConfig<16, 16, 16, __half, __half, float>;
using Fp16Acc16Config = WmmaConfig<16, 16, 16, __half, __half, __half>;
using Fp64Config = WmmaConfig<8, 8, 4, double, double, double>;

// TF32: split 0 converts the operands with __float_to_tf32, 1 leaves them unconverted (the
// tensor core truncates), 2 is 3xTF32: x = hi + lo, acc += a_lo b_hi + a_hi b_lo + a_hi b_hi.
template <typename A, typename B, typename Acc>
__device__ void multiply(Acc& acc, A& fa, B& fb, int split, std::true_type /*tf32*/) {
  if (split == 1) {
    wmma::mma_sync(acc, fa, fb, acc);
    return;
  }
  if (split == 0) {
#pragma unroll
    for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
#pragma unroll
    for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
    wmma::mma_sync(acc, fa, fb, acc);
    return;
  }
  A a_lo;
  B b_lo;
#pragma unroll
  for (int i = 0; i < fa.num_elements; ++i) {
    const float hi = wmma::__float_to_tf32(fa.x[i]);
    a_lo.x[i] = wmma::__float_to_tf32(fa.x[i] - hi);
    fa.x[i] = hi;
  }
#pragma unroll
  for (int i = 0; i < fb.num_elements; ++i) {
    const float hi = wmma::__float_to_tf32(fb.x[i]);
    b_lo.x[i] = wmma::__float_to_tf32(fb.x[i] - hi);
    fb.x[i] = hi;
  }
  wmma::mma_sync(acc, a_lo, fb, acc);
  wmma::mma_sync(acc, fa, b_lo, acc);
  wmma::mma_sync(acc, fa, fb, acc);
}

template <typename A, typename B, typename Acc>
__device__ void multiply(Acc& acc, A& fa, B& fb, int /*split*/, std::false_type /*tf32*/) {
  wmma::mma_sync(acc, fa, fb, acc);
}

// d = a b + c, one warp per M x N tile of d, kWarpsPerBlock warps per block.
template <typename Cfg, typename LA, typename LB>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    wmma_gemm_kernel(const typename Cfg::In* a, const typename Cfg::In* b,
                     const typename Cfg::Out* c, bool c_col, typename Cfg::Out* d, bool d_col,
                     int m, int n, int k, int split) {
  constexpr int M = Cfg::M, N = Cfg::N, K = Cfg::K;
  constexpr bool kARow = std::is_same<LA, wmma::row_major>::value;
  constexpr bool kBRow = std::is_same<LB, wmma::row_major>::value;
  const int tiles_n = n / N;
  const int tile = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (tile >= (m / M) * tiles_n) return;  // whole warps leave together
  const int row0 = tile / tiles_n * M, col0 = tile % tiles_n * N;

  wmma::fragment<wmma::accumulator, M, N, K, typename Cfg::Out> acc;
  if (c != nullptr) {
    const wmma::layout_t layout = c_col ? wmma::mem_col_major : wmma::mem_row_major;
    const size_t offset = c_col ? size_t(col0) * m + row0 : size_t(row0) * n + col0;
    wmma::load_matrix_sync(acc, c + offset, c_col ? m : n, layout);
  } else {
    wmma::fill_fragment(acc, static_cast<typename Cfg::Out>(0.0f));
  }
  for (int k0 = 0; k0 < k; k0 += K) {
    wmma::fragment<wmma::matrix_a, M, N, K, typename Cfg::Operand, LA> fa;
    wmma::fragment<wmma::matrix_b, M, N, K, typename Cfg::Operand, LB> fb;
    wmma::load_matrix_sync(fa, a + (kARow ? size_t(row0) * k + k0 : size_t(k0) * m + row0),
                           kARow ? k : m);
    wmma::load_matrix_sync(fb, b + (kBRow ? size_t(k0) * n + col0 : size_t(col0) * k + k0),
                           kBRow ? n : k);
    multiply(acc, fa, fb, split,
             std::integral_constant<
                 bool, std::is_same<typename Cfg::Operand, wmma::precision::tf32>::value>());
  }
  const wmma::layout_t layout = d_col ? wmma::mem_col_major : wmma::mem_row_major;
  const size_t offset = d_col ? size_t(col0) * m + row0 : size_t(row0) * n + col0;
  wmma::store_matrix_sync(d + offset, acc, d_col ? m : n, layout);
}

// Writes the accumulator as if lane l held elements 8l .. 8l+7 of the row-major tile: a
// mapping CUDA does not promise.
__global__ void wmma_assume_mapping_kernel(const float* a, const float* b, float* d) {
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a, 8);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(acc, fa, fb, acc);
  const int lane = threadIdx.x % 32;
  for (int i = 0; i < acc.num_elements; ++i) {
    d[lane * acc.num_elements + i] = acc.x[i];  // MARK: wmma-assumes-mapping
  }
}

__global__ void wmma_bad_kernel(int which, float* buffer) {
  const int lane = threadIdx.x % 32;
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::fill_fragment(fa, 1.0f);
  wmma::fill_fragment(fb, 1.0f);
  wmma::fill_fragment(acc, 0.0f);
  switch (which) {
    case 0:
      wmma::load_matrix_sync(fa, buffer + 4, 8);  // MARK: wmma-misaligned
      break;
    case 1:
      wmma::load_matrix_sync(fa, buffer, 10);  // MARK: wmma-bad-ldm
      break;
    case 2: {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> ha;
      const __half* half_buffer = reinterpret_cast<const __half*>(buffer);
      wmma::load_matrix_sync(ha, half_buffer, 20);  // MARK: wmma-half-ldm
      break;
    }
    case 3:
      if (lane < 16) wmma::load_matrix_sync(fa, buffer, 8);  // MARK: wmma-divergent
      break;
    case 4:
      wmma::load_matrix_sync(fa, buffer, lane < 16 ? 8 : 16);  // MARK: wmma-ldm-disagree
      break;
    case 5:
      wmma::load_matrix_sync(fa, buffer + (lane & 1) * 256, 8);  // MARK: wmma-pointer-disagree
      break;
    case 6:
      if (lane < 16) {
        wmma::load_matrix_sync(fa, buffer, 8);  // MARK: wmma-site-a
      } else {
        wmma::load_matrix_sync(fa, buffer, 8);  // MARK: wmma-site-b
      }
      break;
    case 7:
      // MARK: wmma-store-misaligned (next line)
      wmma::store_matrix_sync(buffer + 4, acc, 16, wmma::mem_row_major);
      break;
    case 8:
      wmma::mma_sync(acc, fa, fb, acc);  // MARK: wmma-partial-warp
      break;
    case 9:
      if (lane < 16) {
        __syncthreads();  // MARK: wmma-deadlock-barrier
      } else {
        wmma::mma_sync(acc, fa, fb, acc);  // MARK: wmma-deadlock-mma
      }
      break;
    default:
      break;
  }
}

unsigned ceil_div(int a, int b) { return static_cast<unsigned>((a + b - 1) / b); }

template <typename Cfg, typename LA, typename LB>
int launch_gemm(const void* a, const void* b, const void* c, int c_col, void* d, int d_col, int m,
                int n, int k, int split) {
  using In = typename Cfg::In;
  using Out = typename Cfg::Out;
  const int tiles = (m / Cfg::M) * (n / Cfg::N);
  return mw::launch(wmma_gemm_kernel<Cfg, LA, LB>, dim3(ceil_div(tiles, kWarpsPerBlock)),
                    dim3(kWarpsPerBlock * 32), 0, nullptr, static_cast<const In*>(a),
                    static_cast<const In*>(b), static_cast<const Out*>(c), c_col != 0,
                    static_cast<Out*>(d), d_col != 0, m, n, k, split);
}

template <typename Cfg>
int dispatch_gemm(const void* a, int a_col, const void* b, int b_col, const void* c, int c_col,
                  void* d, int d_col, int m, int n, int k, int split) {
  if (m <= 0 || n <= 0 || k <= 0 || m % Cfg::M != 0 || n % Cfg::N != 0 || k % Cfg::K != 0) {
    return cudaErrorInvalidValue;
  }
  using Row = wmma::row_major;
  using Col = wmma::col_major;
  if (!a_col && !b_col) return launch_gemm<Cfg, Row, Row>(a, b, c, c_col, d, d_col, m, n, k, split);
  if (!a_col && b_col) return launch_gemm<Cfg, Row, Col>(a, b, c, c_col, d, d_col, m, n, k, split);
  if (a_col && !b_col) return launch_gemm<Cfg, Col, Row>(a, b, c, c_col, d, d_col, m, n, k, split);
  return launch_gemm<Cfg, Col, Col>(a, b, c, c_col, d, d_col, m, n, k, split);
}

}  // namespace

extern "C" {

int mw_selftest_wmma_gemm(int precision, const void* a, int a_col, const void* b, int b_col,
                          const void* c, int c_col, void* d, int d_col, int m, int n, int k) {
  switch (precision) {
    case MW_WMMA_TF32:
    case MW_WMMA_TF32_RAW:
    case MW_WMMA_TF32X3:
      return dispatch_gemm<Tf32Config>(a, a_col, b, b_col, c, c_col, d, d_col, m, n, k,
                                       precision - MW_WMMA_TF32);
    case MW_WMMA_BF16:
      return dispatch_gemm<Bf16Config>(a, a_col, b, b_col, c, c_col, d, d_col, m, n, k, 0);
    case MW_WMMA_FP16:
      return dispatch_gemm<Fp16Config>(a, a_col, b, b_col, c, c_col, d, d_col, m, n, k, 0);
    case MW_WMMA_FP16_ACC16:
      return dispatch_gemm<Fp16Acc16Config>(a, a_col, b, b_col, c, c_col, d, d_col, m, n, k, 0);
    case MW_WMMA_FP64:
      return dispatch_gemm<Fp64Config>(a, a_col, b, b_col, c, c_col, d, d_col, m, n, k, 0);
    default:
      return cudaErrorInvalidValue;
  }
}

int mw_selftest_wmma_assume_mapping(const float* a, const float* b, float* d) {
  return mw::launch(wmma_assume_mapping_kernel, dim3(1), dim3(32), 0, nullptr, a, b, d);
}

int mw_selftest_wmma_bad(int which, float* buffer) {
  return mw::launch(wmma_bad_kernel, dim3(1), dim3(which == 8 ? 16 : 32), 0, nullptr, which,
                    buffer);
}

}  // extern "C"
