// mma.sp test kernels of the CUDA emulator (not product kernels): kernels/mma_sp.cuh.
//
// The same source is compiled by g++ (through mma_sp_kernels_emu.cpp: the emulator's warp
// collective) and, when nvcc is available, by nvcc for sm_80 / sm_90 (the inline PTX), which
// proves it is valid CUDA.  Lines marked "MARK:" are located by tests/emu/test_emu_mma_sp.py to
// check that diagnostics name them.
#include <cstdint>

#include "launch.cuh"
#include "mma_sp.cuh"
#include "mma_sp_kernels.h"

namespace {

// 32 bits of two 16-bit values, lo first (the register order of a .f16x2 / .bf16x2 operand).
__device__ __forceinline__ uint32_t pack16(const uint16_t* p, int i0, int i1) {
  return uint32_t(p[i0]) | uint32_t(p[i1]) << 16;
}

__device__ __forceinline__ uint32_t float_bits(float x) { return __float_as_uint(x); }

template <int kKind, int kSelector>
__device__ void mma_sp_one(const void* a_values, const void* b, const float* c,
                           const uint32_t* meta, float* d) {
  const int lane = static_cast<int>(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
  uint32_t a[2], bb[2];
  float acc[4];
  acc[0] = c ? c[g * 8 + 2 * t] : 0.f;
  acc[1] = c ? c[g * 8 + 2 * t + 1] : 0.f;
  acc[2] = c ? c[(g + 8) * 8 + 2 * t] : 0.f;
  acc[3] = c ? c[(g + 8) * 8 + 2 * t + 1] : 0.f;
  if constexpr (kKind != MW_MMA_SP_TF32) {
    const uint16_t* av = static_cast<const uint16_t*>(a_values);  // 16 x 8
    const uint16_t* bv = static_cast<const uint16_t*>(b);         // 16 x 8
    a[0] = pack16(av, g * 8 + 2 * t, g * 8 + 2 * t + 1);
    a[1] = pack16(av, (g + 8) * 8 + 2 * t, (g + 8) * 8 + 2 * t + 1);
    bb[0] = pack16(bv, (2 * t) * 8 + g, (2 * t + 1) * 8 + g);
    bb[1] = pack16(bv, (2 * t + 8) * 8 + g, (2 * t + 9) * 8 + g);
    if constexpr (kKind == MW_MMA_SP_F16) {
      mw::mma_sp_m16n8k16_f16<kSelector>(acc, a, bb, acc, meta[lane]);  // MARK: mma-sp-f16
    } else {
      mw::mma_sp_m16n8k16_bf16<kSelector>(acc, a, bb, acc, meta[lane]);  // MARK: mma-sp-bf16
    }
  } else {
    const float* av = static_cast<const float*>(a_values);  // 16 x 4
    const float* bv = static_cast<const float*>(b);         // 8 x 8
    a[0] = float_bits(av[g * 4 + t]);
    a[1] = float_bits(av[(g + 8) * 4 + t]);
    bb[0] = float_bits(bv[t * 8 + g]);
    bb[1] = float_bits(bv[(t + 4) * 8 + g]);
    mw::mma_sp_m16n8k8_tf32<kSelector>(acc, a, bb, acc, meta[lane]);  // MARK: mma-sp-tf32
  }
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

template <int kKind>
__global__ void __launch_bounds__(32)
    mma_sp_kernel(int selector, const void* a_values, const void* b, const float* c,
                  const uint32_t* meta, float* d) {
  switch (selector) {
    case 0:
      mma_sp_one<kKind, 0>(a_values, b, c, meta, d);
      break;
    case 1:
      mma_sp_one<kKind, 1>(a_values, b, c, meta, d);
      break;
    case 2:
      mma_sp_one<kKind, 2>(a_values, b, c, meta, d);
      break;
    default:
      mma_sp_one<kKind, 3>(a_values, b, c, meta, d);
      break;
  }
}

__global__ void mma_sp_bad_kernel(int which) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const uint32_t a[2] = {0x3C003C00u, 0x3C003C00u}, b[2] = {0x3C003C00u, 0x3C003C00u};
  const uint32_t meta = 0x44444444u;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  switch (which) {
    case 0:
      if (lane < 16) mw::mma_sp_m16n8k16_f16<0>(acc, a, b, acc, meta);  // MARK: sp-divergent
      break;
    case 1:
      if (lane & 1) {
        mw::mma_sp_m16n8k16_f16<0>(acc, a, b, acc, meta);  // MARK: sp-site-a
      } else {
        mw::mma_sp_m16n8k16_f16<0>(acc, a, b, acc, meta);  // MARK: sp-site-b
      }
      break;
    default:
      mw::mma_sp_m16n8k16_f16<0>(acc, a, b, acc, meta);  // MARK: sp-partial-warp
      break;
  }
  (void)acc;  // asm volatile: nvcc keeps the instruction without a use of its result
}

__global__ void __launch_bounds__(32)
    ldmatrix_kernel(const uint16_t* tile, int stride, int offset, uint32_t* out) {
  __shared__ __align__(16) uint16_t smem[32 * 40 + 8];
  const int lane = static_cast<int>(threadIdx.x) & 31;
  for (int e = lane; e < 32 * 8; e += 32) smem[offset + (e / 8) * stride + e % 8] = tile[e];
  __syncwarp();
  uint32_t r[4];
  mw::ldmatrix_x4_trans(r, smem + offset + lane * stride);  // MARK: ldmatrix
  for (int i = 0; i < 4; ++i) out[lane * 4 + i] = r[i];
}

}  // namespace

extern "C" {

int mw_selftest_ldmatrix_trans(const uint16_t* tile, int stride, int offset, uint32_t* out) {
  if (stride < 8 || stride > 40 || offset < 0 || offset > 7) return cudaErrorInvalidValue;
  return mw::launch(ldmatrix_kernel, dim3(1), dim3(32), 0, nullptr, tile, stride, offset, out);
}

int mw_selftest_mma_sp(int kind, int selector, const void* a_values, const void* b, const float* c,
                       const uint32_t* meta, float* d) {
  if (selector < 0 || selector > 3) return cudaErrorInvalidValue;
  switch (kind) {
    case MW_MMA_SP_F16:
      return mw::launch(mma_sp_kernel<MW_MMA_SP_F16>, dim3(1), dim3(32), 0, nullptr, selector,
                        a_values, b, c, meta, d);
    case MW_MMA_SP_BF16:
      return mw::launch(mma_sp_kernel<MW_MMA_SP_BF16>, dim3(1), dim3(32), 0, nullptr, selector,
                        a_values, b, c, meta, d);
    case MW_MMA_SP_TF32:
      return mw::launch(mma_sp_kernel<MW_MMA_SP_TF32>, dim3(1), dim3(32), 0, nullptr, selector,
                        a_values, b, c, meta, d);
    default:
      return cudaErrorInvalidValue;
  }
}

int mw_selftest_mma_sp_bad(int which) {
  return mw::launch(mma_sp_bad_kernel, dim3(1), dim3(which == 2 ? 16 : 32), 0, nullptr, which);
}

}  // extern "C"
