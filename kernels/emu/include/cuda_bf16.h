// The emulator's <cuda_bf16.h>: bfloat16 (`__nv_bfloat16`, `__nv_bfloat162`) for kernels compiled
// with g++.
//
// Like CUDA's, it includes <cuda_fp16.h> (here the emulator's) and shares its rounding code:
//
//   * float/double/integer -> bfloat16 round to nearest, ties to even (`_rz`: toward zero), with
//     subnormals, overflow to infinity (`_rz`: to the largest finite value) and every NaN
//     becoming CUDA's canonical NaN 0x7FFF;
//   * bfloat16 -> float is exact, the bits shifted left by 16 (a NaN keeps its payload), as
//     CUDA's;
//   * + - * / round the exact result once (computed in double: 53 bits > 2*8+2, and no
//     intermediate is subnormal in double, whatever the compiler's flush-to-zero setting);
//     __hfma rounds the exact a*b+c once (round-to-odd in double first: plain double rounding
//     would be wrong for bfloat16's exponent range, e.g. fma(3, 87, 2^-100));
//   * an arithmetic result that is NaN is 0x7FFF (CUDART_NAN_BF16; the GPU's NaN bits are
//     unspecified).
//
// __CUDA_NO_BFLOAT16_OPERATORS__, __CUDA_NO_BFLOAT162_OPERATORS__ and
// __CUDA_NO_BFLOAT16_CONVERSIONS__ switch off the operators and conversions, as in CUDA.
// docs/emulator_numerics.md has the details.
#pragma once

#if defined(__CUDACC__)
#error "kernels/emu/include/cuda_bf16.h is the emulator's; nvcc must use the CUDA toolkit's header"
#endif

#include "cuda_fp16.h"  // this directory's, even if a CUDA include directory is on the path

#include <bit>
#include <cstdint>
#include <type_traits>

// ---------------------------------------------------------------------------------------------
// Types.
struct alignas(2) __nv_bfloat16_raw {
  unsigned short x;
};
struct alignas(4) __nv_bfloat162_raw {
  unsigned short x;
  unsigned short y;
};

struct alignas(2) __nv_bfloat16 {
  // The bits: protected in CUDA, public here for the same reason as __half::__x (cuda_fp16.h).
  unsigned short __x;

  __nv_bfloat16() = default;
  __host__ __device__ constexpr __nv_bfloat16(const __nv_bfloat16_raw& hr) : __x(hr.x) {}
  __host__ __device__ __nv_bfloat16& operator=(const __nv_bfloat16_raw& hr) {
    __x = hr.x;
    return *this;
  }
  __host__ __device__ operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }

#if !defined(__CUDA_NO_BFLOAT16_CONVERSIONS__)
  explicit __host__ __device__ __nv_bfloat16(const __half f)  // round to nearest even
      : __x(static_cast<unsigned short>(mw::emu::round_to_format<mw::emu::BFloat16>(
            mw::emu::half_to_double(f), mw::emu::Rounding::kNearestEven))) {}
  __host__ __device__ __nv_bfloat16(const float f)
      : __x(static_cast<unsigned short>(
            mw::emu::round_to_format<mw::emu::BFloat16>(f, mw::emu::Rounding::kNearestEven))) {}
  __host__ __device__ __nv_bfloat16(const double f)
      : __x(static_cast<unsigned short>(
            mw::emu::round_to_format<mw::emu::BFloat16>(f, mw::emu::Rounding::kNearestEven))) {}
  template <typename Int, std::enable_if_t<std::is_integral_v<Int>, int> = 0>
  __host__ __device__ __nv_bfloat16(const Int val)
      : __x(static_cast<unsigned short>(mw::emu::round_integer_to_format<mw::emu::BFloat16>(
            val, mw::emu::Rounding::kNearestEven))) {}
  __host__ __device__ operator float() const {
    return std::bit_cast<float>(static_cast<uint32_t>(__x) << 16);
  }
  template <typename Int,
            std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>, int> = 0>
  __host__ __device__ operator Int() const {
    return mw::emu::saturating_to_integer<Int>(mw::emu::format_to_double<mw::emu::BFloat16>(__x),
                                               false);
  }
  __host__ __device__ constexpr operator bool() const { return (__x & 0x7FFFu) != 0u; }
#endif
};

struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x;
  __nv_bfloat16 y;

  __nv_bfloat162() = default;
  __host__ __device__ constexpr __nv_bfloat162(const __nv_bfloat16& a, const __nv_bfloat16& b)
      : x(a), y(b) {}
  __host__ __device__ __nv_bfloat162(const __nv_bfloat162_raw& h2r)
      : x(__nv_bfloat16_raw{h2r.x}), y(__nv_bfloat16_raw{h2r.y}) {}
  __host__ __device__ __nv_bfloat162& operator=(const __nv_bfloat162_raw& h2r) {
    x = __nv_bfloat16_raw{h2r.x};
    y = __nv_bfloat16_raw{h2r.y};
    return *this;
  }
  __host__ __device__ operator __nv_bfloat162_raw() const {
    return __nv_bfloat162_raw{static_cast<__nv_bfloat16_raw>(x).x,
                              static_cast<__nv_bfloat16_raw>(y).x};
  }
};

static_assert(sizeof(__nv_bfloat16) == 2 && alignof(__nv_bfloat16) == 2 &&
              std::is_trivially_copyable_v<__nv_bfloat16>);
static_assert(sizeof(__nv_bfloat162) == 4 && alignof(__nv_bfloat162) == 4 &&
              std::is_trivially_copyable_v<__nv_bfloat162>);

using nv_bfloat16 = __nv_bfloat16;
using nv_bfloat162 = __nv_bfloat162;

#if !defined(__CUDA_NO_HALF_CONVERSIONS__)
// Declared in cuda_fp16.h, as in CUDA.
__host__ __device__ inline __half::__half(const __nv_bfloat16 f)
    : __x(static_cast<unsigned short>(mw::emu::round_to_format<mw::emu::Binary16>(
          mw::emu::format_to_double<mw::emu::BFloat16>(static_cast<__nv_bfloat16_raw>(f).x),
          mw::emu::Rounding::kNearestEven))) {}
#endif

// ---------------------------------------------------------------------------------------------
// Bit access and conversions.
namespace mw::emu {
inline unsigned short bf16_bits(const __nv_bfloat16 h) {
  return static_cast<__nv_bfloat16_raw>(h).x;
}
inline __nv_bfloat16 bf16_from_bits(uint32_t bits) {
  return __nv_bfloat16(__nv_bfloat16_raw{static_cast<unsigned short>(bits)});
}
inline double bf16_to_double(const __nv_bfloat16 h) {
  return format_to_double<BFloat16>(bf16_bits(h));
}
inline bool bf16_is_nan(const __nv_bfloat16 h) { return (bf16_bits(h) & 0x7fffu) > 0x7f80u; }
inline __nv_bfloat16 bf16_rn(double x) {
  return bf16_from_bits(round_to_format<BFloat16>(x, Rounding::kNearestEven));
}
}  // namespace mw::emu

__host__ __device__ inline unsigned short __bfloat16_as_ushort(const __nv_bfloat16 h) {
  return mw::emu::bf16_bits(h);
}
__host__ __device__ inline __nv_bfloat16 __ushort_as_bfloat16(const unsigned short i) {
  return __nv_bfloat16(__nv_bfloat16_raw{i});
}
__host__ __device__ inline short __bfloat16_as_short(const __nv_bfloat16 h) {
  return static_cast<short>(mw::emu::bf16_bits(h));
}
__host__ __device__ inline __nv_bfloat16 __short_as_bfloat16(const short i) {
  return __nv_bfloat16(__nv_bfloat16_raw{static_cast<unsigned short>(i)});
}

__host__ __device__ inline __nv_bfloat16 __float2bfloat16(const float a) {
  return mw::emu::bf16_rn(a);
}
__host__ __device__ inline __nv_bfloat16 __float2bfloat16_rn(const float a) {
  return mw::emu::bf16_rn(a);
}
__host__ __device__ inline __nv_bfloat16 __float2bfloat16_rz(const float a) {
  return mw::emu::bf16_from_bits(
      mw::emu::round_to_format<mw::emu::BFloat16>(a, mw::emu::Rounding::kTowardZero));
}
__host__ __device__ inline __nv_bfloat16 __double2bfloat16(const double a) {
  return mw::emu::bf16_rn(a);
}
__host__ __device__ inline float __bfloat162float(const __nv_bfloat16 a) {
  return std::bit_cast<float>(static_cast<uint32_t>(mw::emu::bf16_bits(a)) << 16);
}
__host__ __device__ inline __nv_bfloat16 __int2bfloat16_rn(const int i) {
  return mw::emu::bf16_from_bits(
      mw::emu::round_integer_to_format<mw::emu::BFloat16>(i, mw::emu::Rounding::kNearestEven));
}
__host__ __device__ inline __nv_bfloat16 __uint2bfloat16_rn(const unsigned int i) {
  return mw::emu::bf16_from_bits(
      mw::emu::round_integer_to_format<mw::emu::BFloat16>(i, mw::emu::Rounding::kNearestEven));
}
__host__ __device__ inline __nv_bfloat16 __ll2bfloat16_rn(const long long int i) {
  return mw::emu::bf16_from_bits(
      mw::emu::round_integer_to_format<mw::emu::BFloat16>(i, mw::emu::Rounding::kNearestEven));
}
__host__ __device__ inline int __bfloat162int_rz(const __nv_bfloat16 h) {
  return mw::emu::saturating_to_integer<int>(mw::emu::bf16_to_double(h), false);
}
__device__ inline int __bfloat162int_rn(const __nv_bfloat16 h) {
  return mw::emu::saturating_to_integer<int>(mw::emu::bf16_to_double(h), true);
}
__host__ __device__ inline unsigned int __bfloat162uint_rz(const __nv_bfloat16 h) {
  return mw::emu::saturating_to_integer<unsigned int>(mw::emu::bf16_to_double(h), false);
}

// __nv_bfloat162 construction and access.
__host__ __device__ inline __nv_bfloat162 make_bfloat162(const __nv_bfloat16 x,
                                                         const __nv_bfloat16 y) {
  return __nv_bfloat162(x, y);
}
__host__ __device__ inline __nv_bfloat162 __halves2bfloat162(const __nv_bfloat16 a,
                                                             const __nv_bfloat16 b) {
  return __nv_bfloat162(a, b);
}
__host__ __device__ inline __nv_bfloat162 __bfloat162bfloat162(const __nv_bfloat16 a) {
  return __nv_bfloat162(a, a);
}
__host__ __device__ inline __nv_bfloat16 __low2bfloat16(const __nv_bfloat162 a) { return a.x; }
__host__ __device__ inline __nv_bfloat16 __high2bfloat16(const __nv_bfloat162 a) { return a.y; }
__host__ __device__ inline float __low2float(const __nv_bfloat162 a) {
  return __bfloat162float(a.x);
}
__host__ __device__ inline float __high2float(const __nv_bfloat162 a) {
  return __bfloat162float(a.y);
}
__host__ __device__ inline __nv_bfloat162 __float2bfloat162_rn(const float a) {
  return __bfloat162bfloat162(__float2bfloat16_rn(a));
}
__host__ __device__ inline __nv_bfloat162 __floats2bfloat162_rn(const float a, const float b) {
  return __nv_bfloat162(__float2bfloat16_rn(a), __float2bfloat16_rn(b));
}
template <typename Float2 = float2>
__host__ __device__ inline Float2 __bfloat1622float2(const __nv_bfloat162 a) {
  return Float2{__bfloat162float(a.x), __bfloat162float(a.y)};
}
template <typename Float2, std::enable_if_t<std::is_same_v<Float2, float2>, int> = 0>
__host__ __device__ inline __nv_bfloat162 __float22bfloat162_rn(const Float2 a) {
  return __nv_bfloat162(__float2bfloat16_rn(a.x), __float2bfloat16_rn(a.y));
}

// ---------------------------------------------------------------------------------------------
// Arithmetic (overloads of the __half names, as in CUDA).
__host__ __device__ inline __nv_bfloat16 __hadd(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return mw::emu::bf16_rn(mw::emu::bf16_to_double(a) + mw::emu::bf16_to_double(b));
}
__host__ __device__ inline __nv_bfloat16 __hsub(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return mw::emu::bf16_rn(mw::emu::bf16_to_double(a) - mw::emu::bf16_to_double(b));
}
__host__ __device__ inline __nv_bfloat16 __hmul(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return mw::emu::bf16_rn(mw::emu::bf16_to_double(a) * mw::emu::bf16_to_double(b));
}
__host__ __device__ inline __nv_bfloat16 __hdiv(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return mw::emu::bf16_rn(mw::emu::bf16_to_double(a) / mw::emu::bf16_to_double(b));
}
__host__ __device__ inline __nv_bfloat16 __hadd_rn(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return __hadd(a, b);
}
__host__ __device__ inline __nv_bfloat16 __hsub_rn(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return __hsub(a, b);
}
__host__ __device__ inline __nv_bfloat16 __hmul_rn(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return __hmul(a, b);
}
__device__ inline __nv_bfloat16 __hfma(const __nv_bfloat16 a, const __nv_bfloat16 b,
                                       const __nv_bfloat16 c) {
  return mw::emu::bf16_from_bits(mw::emu::fused_multiply_add<mw::emu::BFloat16>(
      mw::emu::bf16_to_double(a), mw::emu::bf16_to_double(b), mw::emu::bf16_to_double(c),
      mw::emu::Rounding::kNearestEven));
}
__host__ __device__ inline __nv_bfloat16 __hneg(const __nv_bfloat16 a) {
  return mw::emu::bf16_is_nan(a)
             ? __ushort_as_bfloat16(0x7FFFu)
             : __ushort_as_bfloat16(static_cast<unsigned short>(mw::emu::bf16_bits(a) ^ 0x8000u));
}
__host__ __device__ inline __nv_bfloat16 __habs(const __nv_bfloat16 a) {
  return mw::emu::bf16_is_nan(a)
             ? __ushort_as_bfloat16(0x7FFFu)
             : __ushort_as_bfloat16(static_cast<unsigned short>(mw::emu::bf16_bits(a) & 0x7FFFu));
}

// Comparisons: ordered plain forms, unordered u forms.
__host__ __device__ inline bool __hisnan(const __nv_bfloat16 a) { return mw::emu::bf16_is_nan(a); }
__host__ __device__ inline int __hisinf(const __nv_bfloat16 a) {
  const unsigned short bits = mw::emu::bf16_bits(a);
  return bits == 0x7F80u ? 1 : (bits == 0xFF80u ? -1 : 0);
}
__host__ __device__ inline bool __heq(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return mw::emu::bf16_to_double(a) == mw::emu::bf16_to_double(b);
}
__host__ __device__ inline bool __hne(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return !__hisnan(a) && !__hisnan(b) && !__heq(a, b);
}
__host__ __device__ inline bool __hlt(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return mw::emu::bf16_to_double(a) < mw::emu::bf16_to_double(b);
}
__host__ __device__ inline bool __hle(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return mw::emu::bf16_to_double(a) <= mw::emu::bf16_to_double(b);
}
__host__ __device__ inline bool __hgt(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return mw::emu::bf16_to_double(a) > mw::emu::bf16_to_double(b);
}
__host__ __device__ inline bool __hge(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return mw::emu::bf16_to_double(a) >= mw::emu::bf16_to_double(b);
}
__host__ __device__ inline bool __hequ(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return __hisnan(a) || __hisnan(b) || __heq(a, b);
}
__host__ __device__ inline bool __hneu(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return !__heq(a, b);
}
__host__ __device__ inline bool __hltu(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return !__hge(a, b);
}
__host__ __device__ inline bool __hleu(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return !__hgt(a, b);
}
__host__ __device__ inline bool __hgtu(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return !__hle(a, b);
}
__host__ __device__ inline bool __hgeu(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  return !__hlt(a, b);
}
__host__ __device__ inline __nv_bfloat16 __hmax(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  if (__hisnan(a)) return __hisnan(b) ? __ushort_as_bfloat16(0x7FFFu) : b;
  if (__hisnan(b)) return a;
  if (__heq(a, b)) return (mw::emu::bf16_bits(a) & 0x8000u) != 0 ? b : a;
  return __hgt(a, b) ? a : b;
}
__host__ __device__ inline __nv_bfloat16 __hmin(const __nv_bfloat16 a, const __nv_bfloat16 b) {
  if (__hisnan(a)) return __hisnan(b) ? __ushort_as_bfloat16(0x7FFFu) : b;
  if (__hisnan(b)) return a;
  if (__heq(a, b)) return (mw::emu::bf16_bits(a) & 0x8000u) != 0 ? a : b;
  return __hlt(a, b) ? a : b;
}

// __nv_bfloat162: lane by lane.
__host__ __device__ inline __nv_bfloat162 __hadd2(const __nv_bfloat162 a, const __nv_bfloat162 b) {
  return __nv_bfloat162(__hadd(a.x, b.x), __hadd(a.y, b.y));
}
__host__ __device__ inline __nv_bfloat162 __hsub2(const __nv_bfloat162 a, const __nv_bfloat162 b) {
  return __nv_bfloat162(__hsub(a.x, b.x), __hsub(a.y, b.y));
}
__host__ __device__ inline __nv_bfloat162 __hmul2(const __nv_bfloat162 a, const __nv_bfloat162 b) {
  return __nv_bfloat162(__hmul(a.x, b.x), __hmul(a.y, b.y));
}
__host__ __device__ inline __nv_bfloat162 __h2div(const __nv_bfloat162 a, const __nv_bfloat162 b) {
  return __nv_bfloat162(__hdiv(a.x, b.x), __hdiv(a.y, b.y));
}
__device__ inline __nv_bfloat162 __hfma2(const __nv_bfloat162 a, const __nv_bfloat162 b,
                                         const __nv_bfloat162 c) {
  return __nv_bfloat162(__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y));
}
__host__ __device__ inline __nv_bfloat162 __hneg2(const __nv_bfloat162 a) {
  return __nv_bfloat162(__hneg(a.x), __hneg(a.y));
}
__host__ __device__ inline __nv_bfloat162 __habs2(const __nv_bfloat162 a) {
  return __nv_bfloat162(__habs(a.x), __habs(a.y));
}

// ---------------------------------------------------------------------------------------------
// Operators (CUDA's set).
#if !defined(__CUDA_NO_BFLOAT16_OPERATORS__)
__host__ __device__ inline __nv_bfloat16 operator+(const __nv_bfloat16& lh,
                                                   const __nv_bfloat16& rh) {
  return __hadd(lh, rh);
}
__host__ __device__ inline __nv_bfloat16 operator-(const __nv_bfloat16& lh,
                                                   const __nv_bfloat16& rh) {
  return __hsub(lh, rh);
}
__host__ __device__ inline __nv_bfloat16 operator*(const __nv_bfloat16& lh,
                                                   const __nv_bfloat16& rh) {
  return __hmul(lh, rh);
}
__host__ __device__ inline __nv_bfloat16 operator/(const __nv_bfloat16& lh,
                                                   const __nv_bfloat16& rh) {
  return __hdiv(lh, rh);
}
__host__ __device__ inline __nv_bfloat16& operator+=(__nv_bfloat16& lh, const __nv_bfloat16& rh) {
  lh = __hadd(lh, rh);
  return lh;
}
__host__ __device__ inline __nv_bfloat16& operator-=(__nv_bfloat16& lh, const __nv_bfloat16& rh) {
  lh = __hsub(lh, rh);
  return lh;
}
__host__ __device__ inline __nv_bfloat16& operator*=(__nv_bfloat16& lh, const __nv_bfloat16& rh) {
  lh = __hmul(lh, rh);
  return lh;
}
__host__ __device__ inline __nv_bfloat16& operator/=(__nv_bfloat16& lh, const __nv_bfloat16& rh) {
  lh = __hdiv(lh, rh);
  return lh;
}
__host__ __device__ inline __nv_bfloat16& operator++(__nv_bfloat16& h) {
  h = __hadd(h, __ushort_as_bfloat16(0x3F80u));
  return h;
}
__host__ __device__ inline __nv_bfloat16& operator--(__nv_bfloat16& h) {
  h = __hsub(h, __ushort_as_bfloat16(0x3F80u));
  return h;
}
__host__ __device__ inline __nv_bfloat16 operator++(__nv_bfloat16& h, const int) {
  const __nv_bfloat16 old = h;
  ++h;
  return old;
}
__host__ __device__ inline __nv_bfloat16 operator--(__nv_bfloat16& h, const int) {
  const __nv_bfloat16 old = h;
  --h;
  return old;
}
__host__ __device__ inline __nv_bfloat16 operator+(const __nv_bfloat16& h) { return h; }
__host__ __device__ inline __nv_bfloat16 operator-(const __nv_bfloat16& h) { return __hneg(h); }
__host__ __device__ inline bool operator==(const __nv_bfloat16& lh, const __nv_bfloat16& rh) {
  return __heq(lh, rh);
}
__host__ __device__ inline bool operator!=(const __nv_bfloat16& lh, const __nv_bfloat16& rh) {
  return __hneu(lh, rh);
}
__host__ __device__ inline bool operator<(const __nv_bfloat16& lh, const __nv_bfloat16& rh) {
  return __hlt(lh, rh);
}
__host__ __device__ inline bool operator>(const __nv_bfloat16& lh, const __nv_bfloat16& rh) {
  return __hgt(lh, rh);
}
__host__ __device__ inline bool operator<=(const __nv_bfloat16& lh, const __nv_bfloat16& rh) {
  return __hle(lh, rh);
}
__host__ __device__ inline bool operator>=(const __nv_bfloat16& lh, const __nv_bfloat16& rh) {
  return __hge(lh, rh);
}
#endif

#if !defined(__CUDA_NO_BFLOAT162_OPERATORS__)
__host__ __device__ inline __nv_bfloat162 operator+(const __nv_bfloat162& lh,
                                                    const __nv_bfloat162& rh) {
  return __hadd2(lh, rh);
}
__host__ __device__ inline __nv_bfloat162 operator-(const __nv_bfloat162& lh,
                                                    const __nv_bfloat162& rh) {
  return __hsub2(lh, rh);
}
__host__ __device__ inline __nv_bfloat162 operator*(const __nv_bfloat162& lh,
                                                    const __nv_bfloat162& rh) {
  return __hmul2(lh, rh);
}
__host__ __device__ inline __nv_bfloat162 operator/(const __nv_bfloat162& lh,
                                                    const __nv_bfloat162& rh) {
  return __h2div(lh, rh);
}
__host__ __device__ inline __nv_bfloat162& operator+=(__nv_bfloat162& lh,
                                                      const __nv_bfloat162& rh) {
  lh = __hadd2(lh, rh);
  return lh;
}
__host__ __device__ inline __nv_bfloat162& operator-=(__nv_bfloat162& lh,
                                                      const __nv_bfloat162& rh) {
  lh = __hsub2(lh, rh);
  return lh;
}
__host__ __device__ inline __nv_bfloat162& operator*=(__nv_bfloat162& lh,
                                                      const __nv_bfloat162& rh) {
  lh = __hmul2(lh, rh);
  return lh;
}
__host__ __device__ inline __nv_bfloat162& operator/=(__nv_bfloat162& lh,
                                                      const __nv_bfloat162& rh) {
  lh = __h2div(lh, rh);
  return lh;
}
__host__ __device__ inline __nv_bfloat162 operator+(const __nv_bfloat162& h) { return h; }
__host__ __device__ inline __nv_bfloat162 operator-(const __nv_bfloat162& h) { return __hneg2(h); }
#endif

// Constants (CUDA defines the same macros in cuda_bf16.hpp).
#define CUDART_INF_BF16 __ushort_as_bfloat16((unsigned short)0x7F80U)
#define CUDART_NAN_BF16 __ushort_as_bfloat16((unsigned short)0x7FFFU)
#define CUDART_MIN_DENORM_BF16 __ushort_as_bfloat16((unsigned short)0x0001U)
#define CUDART_MAX_NORMAL_BF16 __ushort_as_bfloat16((unsigned short)0x7F7FU)
#define CUDART_NEG_ZERO_BF16 __ushort_as_bfloat16((unsigned short)0x8000U)
#define CUDART_ZERO_BF16 __ushort_as_bfloat16((unsigned short)0x0000U)
#define CUDART_ONE_BF16 __ushort_as_bfloat16((unsigned short)0x3F80U)
