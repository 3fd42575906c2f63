// The emulator's <cuda_fp16.h>: IEEE binary16 (`__half`, `__half2`) for kernels compiled with g++.
//
// With kernels/emu/include on the include path, `#include <cuda_fp16.h>` in kernel source finds
// this file under g++ and the CUDA toolkit's header under nvcc. It provides a subset of CUDA's
// API with CUDA's names and signatures (checked by compiling a kernel that uses all of it against
// the real header, tests/test_emu_half_numerics.py) and exact IEEE numerics, bit for bit:
//
//   * float/double/integer -> half round to nearest, ties to even (`_rz`: toward zero), with
//     subnormals, overflow to infinity (`_rz`: to the largest finite value) and every NaN
//     becoming CUDA's canonical NaN 0x7FFF;
//   * half -> float is exact; a NaN becomes the float NaN 0x7FFFFFFF, as in CUDA's host code;
//   * + - * / are the exact result rounded once (computed in double, whose 53 bits are more than
//     2*11+2, so the double rounding is innocuous); __hfma rounds the exact a*b+c once (the
//     double sum is made round-to-odd first, so there is no double rounding at all);
//   * an arithmetic result that is NaN is 0x7FFF (CUDART_NAN_FP16, what CUDA's host code gives;
//     the PTX ISA leaves the GPU's NaN bits unspecified, so kernels must not depend on them).
//
// As in CUDA, the operators and conversions of __half can be switched off with
// __CUDA_NO_HALF_OPERATORS__, __CUDA_NO_HALF2_OPERATORS__ and __CUDA_NO_HALF_CONVERSIONS__.
// Functions that CUDA declares device-only (__hfma, __half2int_rn, ...) are host callable here,
// as everything is under the emulator; CUDA API functions are not constexpr unless CUDA's are,
// so that constant expressions accepted here are accepted by nvcc too. The rounding itself
// (mw::emu::round_to_format) is constexpr. docs/emulator_numerics.md has the details.
#pragma once

#if defined(__CUDACC__)
#error "kernels/emu/include/cuda_fp16.h is the emulator's; nvcc must use the CUDA toolkit's header"
#endif

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <type_traits>

// The qualifiers are empty under the emulator (kernels/emu/cuda_emu.h defines them the same way;
// identical redefinitions are allowed, so either header may come first).
#ifndef __host__
#define __host__
#endif
#ifndef __device__
#define __device__
#endif

namespace mw::emu {

// How a value that is not representable is rounded.
enum class Rounding {
  kNearestEven,  // IEEE round to nearest, ties to even (CUDA's _rn, PTX .rn)
  kTowardZero,   // truncation (CUDA's _rz, PTX .rz)
  kNearestAway,  // round to nearest, ties away from zero (PTX .rna; TF32 conversion)
};

// A binary floating-point format with kExpBits exponent bits and kFracBits stored fraction bits:
// binary16 is <5, 10>, bfloat16 <8, 7>, TF32 <8, 10>. Encodings are sign | exponent | fraction,
// right-aligned in a uint32_t.
template <int kExp, int kFrac>
struct BinaryFormat {
  static_assert(kExp >= 2 && kExp <= 11 && kFrac >= 1 && kFrac <= 52 && kExp + kFrac <= 31);
  static constexpr int kExpBits = kExp;
  static constexpr int kFracBits = kFrac;
  static constexpr int kBias = (1 << (kExp - 1)) - 1;
  static constexpr int kMinQuantumExp = 1 - kBias - kFrac;  // exponent of the subnormal ulp
  static constexpr uint32_t kSignBit = 1u << (kExp + kFrac);
  static constexpr uint32_t kInfinity = ((1u << kExp) - 1) << kFrac;
  static constexpr uint32_t kMaxFinite = kInfinity - 1;
  static constexpr uint32_t kCanonicalNaN = kSignBit - 1;  // 0x7FFF for 16-bit formats (CUDA's)
};

using Binary16 = BinaryFormat<5, 10>;
using BFloat16 = BinaryFormat<8, 7>;

// Rounds (-1)^negative * significand * 2^lsb_exp (significand != 0, exact) to Format.
template <typename Format>
constexpr uint32_t round_significand(bool negative, uint64_t significand, int lsb_exp,
                                     Rounding mode) {
  constexpr int kFrac = Format::kFracBits;
  const uint32_t sign = negative ? Format::kSignBit : 0u;
  const int top_exp = lsb_exp + std::bit_width(significand) - 1;  // floor(log2 |x|)
  // Exponent of the target's ulp at |x|: kFrac bits below the leading one, but never below
  // the subnormal quantum.
  const int quantum_exp = std::max(top_exp - kFrac, Format::kMinQuantumExp);
  const int shift = quantum_exp - lsb_exp;  // bits of `significand` below the target's ulp
  uint64_t kept = 0;
  bool round_up = false;
  if (shift <= 0) {
    kept = significand << -shift;  // exact (only for integer inputs with few bits)
  } else if (shift < 64) {
    kept = significand >> shift;
    const uint64_t rest = significand & ((uint64_t{1} << shift) - 1);
    const uint64_t half = uint64_t{1} << (shift - 1);
    switch (mode) {
      case Rounding::kNearestEven:
        round_up = rest > half || (rest == half && (kept & 1u) != 0);
        break;
      case Rounding::kNearestAway:
        round_up = rest >= half;
        break;
      case Rounding::kTowardZero:
        break;
    }
  }  // else: |x| is below half the smallest subnormal: kept = 0, never rounded up
  kept += round_up ? 1u : 0u;
  // kept is in [2^kFrac, 2^(kFrac+1)] for a normal result and below 2^kFrac for a subnormal one
  // (quantum_exp == kMinQuantumExp). (biased exponent - 1) << kFrac plus kept encodes both: the
  // leading one of kept adds the missing 1 to the exponent field, and a carry into the next
  // binade (kept == 2^(kFrac+1)) or from the largest subnormal into the smallest normal is right.
  const uint64_t encoding =
      (static_cast<uint64_t>(quantum_exp - Format::kMinQuantumExp) << kFrac) + kept;
  if (encoding >= Format::kInfinity)
    return sign | (mode == Rounding::kTowardZero ? Format::kMaxFinite : Format::kInfinity);
  return sign | static_cast<uint32_t>(encoding);
}

// Rounds a double (exact input) to Format; NaN becomes Format::kCanonicalNaN.
template <typename Format>
constexpr uint32_t round_to_format(double x, Rounding mode) {
  const uint64_t bits = std::bit_cast<uint64_t>(x);
  const bool negative = (bits >> 63) != 0;
  const int biased = static_cast<int>(bits >> 52) & 0x7ff;
  const uint64_t fraction = bits & ((uint64_t{1} << 52) - 1);
  if (biased == 0x7ff)
    return fraction != 0 ? Format::kCanonicalNaN
                         : (negative ? Format::kSignBit : 0u) | Format::kInfinity;
  if (biased == 0 && fraction == 0) return negative ? Format::kSignBit : 0u;
  if (biased == 0) return round_significand<Format>(negative, fraction, -1074, mode);
  return round_significand<Format>(negative, fraction | (uint64_t{1} << 52), biased - 1075, mode);
}

// Rounds an integer to Format (directly, not through double: a 64-bit integer is not exact in
// double, and rounding twice would be wrong for bfloat16).
template <typename Format, typename Int>
constexpr uint32_t round_integer_to_format(Int value, Rounding mode) {
  static_assert(std::is_integral_v<Int>);
  if (value == 0) return 0u;
  bool negative = false;
  uint64_t magnitude = static_cast<uint64_t>(value);  // modulo 2^64 for negative values
  if constexpr (std::is_signed_v<Int>) {
    negative = value < 0;
    if (negative) magnitude = uint64_t{0} - magnitude;  // |value|, also for the minimum
  }
  return round_significand<Format>(negative, magnitude, 0, mode);
}

// The exact value of a Format encoding as a double (NaN: a quiet double NaN of the same sign).
template <typename Format>
constexpr double format_to_double(uint32_t bits) {
  constexpr int kFrac = Format::kFracBits;
  const bool negative = (bits & Format::kSignBit) != 0;
  const uint32_t magnitude = bits & (Format::kSignBit - 1);
  const uint64_t sign = negative ? uint64_t{1} << 63 : 0;
  if (magnitude >= Format::kInfinity) {
    const uint64_t nan_or_inf =
        magnitude == Format::kInfinity ? 0x7ff0000000000000ull : 0x7ff8000000000000ull;
    return std::bit_cast<double>(sign | nan_or_inf);
  }
  const int exponent_field = static_cast<int>(magnitude >> kFrac);
  const uint64_t fraction = magnitude & ((1u << kFrac) - 1);
  if (exponent_field == 0) {
    // subnormal (or zero): fraction * 2^kMinQuantumExp, normal in double
    if (fraction == 0) return std::bit_cast<double>(sign);
    const int width = std::bit_width(fraction);
    const int exponent = Format::kMinQuantumExp + width - 1;
    const uint64_t mantissa = (fraction << (53 - width)) & ((uint64_t{1} << 52) - 1);
    return std::bit_cast<double>(sign | static_cast<uint64_t>(exponent + 1023) << 52 | mantissa);
  }
  const int exponent = exponent_field - Format::kBias;
  return std::bit_cast<double>(sign | static_cast<uint64_t>(exponent + 1023) << 52 |
                               fraction << (52 - kFrac));
}

constexpr bool is_nan_double(double x) {
  return (std::bit_cast<uint64_t>(x) & 0x7fffffffffffffffull) > 0x7ff0000000000000ull;
}
constexpr bool is_finite_double(double x) {
  return (std::bit_cast<uint64_t>(x) & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
}

// The value of a Format encoding as a float, NaN as the canonical float NaN 0x7FFFFFFF (what
// CUDA's half -> float conversion gives). Exact for formats no wider than float.
template <typename Format>
constexpr float format_to_float_canonical_nan(uint32_t bits) {
  const double value = format_to_double<Format>(bits);
  return is_nan_double(value) ? std::bit_cast<float>(0x7fffffffu) : static_cast<float>(value);
}

// Rounds a*b + c, all exact doubles whose product a*b is exact in double (true for products of
// binary16, bfloat16 or TF32 values), once to Format. The double sum s = RN(p + c) is turned into
// its round-to-odd version (the exact error e of the sum comes from TwoSum; if e != 0 and s is
// even, s moves one ulp toward e): rounding a round-to-odd value with >= 2 extra bits to Format
// equals rounding the exact sum (Boldo & Melquiond), so the result is the correctly rounded fma.
template <typename Format>
constexpr uint32_t fused_multiply_add(double a, double b, double c, Rounding mode) {
  const double p = a * b;
  const double s = p + c;
  if (!is_finite_double(s)) return round_to_format<Format>(s, mode);  // NaN or infinity
  const double bp = s - p;
  const double error = (p - (s - bp)) + (c - bp);  // s + error == p + c exactly
  uint64_t bits = std::bit_cast<uint64_t>(s);
  if (error != 0.0 && (bits & 1u) == 0) {
    // The exact value lies strictly between s and its neighbour toward `error`; the odd one of the
    // two is the round-to-odd result. s != 0 here (p + c rounding to zero would be exact).
    const bool away_from_zero = (error > 0.0) == (s > 0.0);
    bits = away_from_zero ? bits + 1 : bits - 1;
  }
  return round_to_format<Format>(std::bit_cast<double>(bits), mode);
}

// A float -> integer conversion with CUDA's rules (PTX cvt.rzi / cvt.rni): NaN gives 0 (for
// 64-bit results 1 << 63), out-of-range values saturate. `nearest_even` selects .rni, else .rzi.
template <typename Int>
constexpr Int saturating_to_integer(double x, bool nearest_even) {
  static_assert(std::is_integral_v<Int> && !std::is_same_v<Int, bool>);
  if (is_nan_double(x)) {
    if constexpr (sizeof(Int) == 8)
      return static_cast<Int>(uint64_t{1} << 63);
    else
      return Int{0};
  }
  double r = x < 0 ? -x : x;     // |x|, then rounded to an integer in double (exact arithmetic)
  if (r < 4503599627370496.0) {  // 2^52: below it a double may have a fractional part
    const double whole = static_cast<double>(static_cast<int64_t>(r));
    const double rest = r - whole;
    r = whole;
    if (nearest_even && (rest > 0.5 || (rest == 0.5 && static_cast<int64_t>(whole) % 2 != 0)))
      r += 1.0;
  }
  const double value = x < 0 ? -r : r;
  constexpr double kMin = static_cast<double>(std::numeric_limits<Int>::min());
  // max + 1 is a power of two, exact in double; compare against it to avoid rounding max.
  constexpr double kMaxPlusOne = static_cast<double>(std::numeric_limits<Int>::max() / 2 + 1) * 2.0;
  if (value <= kMin) return std::numeric_limits<Int>::min();
  if (value >= kMaxPlusOne) return std::numeric_limits<Int>::max();
  return static_cast<Int>(value);
}

}  // namespace mw::emu

// ---------------------------------------------------------------------------------------------
// Types.
struct alignas(2) __half_raw {
  unsigned short x;
};
struct alignas(4) __half2_raw {
  unsigned short x;
  unsigned short y;
};

struct __nv_bfloat16;  // for the explicit conversion, defined in the emulator's cuda_bf16.h

struct alignas(2) __half {
  // The bits. Protected in CUDA; public here because g++ rejects (-Wclass-memaccess) the
  // memcpy with which the emulator's shuffles move a value into a class with protected members.
  // Kernels must not use it (nvcc would reject them): use __half_as_ushort / __ushort_as_half.
  unsigned short __x;

  __half() = default;
  __host__ __device__ constexpr __half(const __half_raw& hr) : __x(hr.x) {}
  __host__ __device__ __half& operator=(const __half_raw& hr) {
    __x = hr.x;
    return *this;
  }
  __host__ __device__ operator __half_raw() const { return __half_raw{__x}; }

#if !defined(__CUDA_NO_HALF_CONVERSIONS__)
  explicit __host__ __device__ __half(const __nv_bfloat16 f);  // round to nearest even
  __host__ __device__ __half(const float f)
      : __x(static_cast<unsigned short>(
            mw::emu::round_to_format<mw::emu::Binary16>(f, mw::emu::Rounding::kNearestEven))) {}
  __host__ __device__ __half(const double f)
      : __x(static_cast<unsigned short>(
            mw::emu::round_to_format<mw::emu::Binary16>(f, mw::emu::Rounding::kNearestEven))) {}
  // From any integer type, rounded to nearest even (CUDA has one constructor per type).
  template <typename Int, std::enable_if_t<std::is_integral_v<Int>, int> = 0>
  __host__ __device__ __half(const Int val)
      : __x(static_cast<unsigned short>(mw::emu::round_integer_to_format<mw::emu::Binary16>(
            val, mw::emu::Rounding::kNearestEven))) {}
  __host__ __device__ operator float() const {
    return mw::emu::format_to_float_canonical_nan<mw::emu::Binary16>(__x);
  }
  // To integer types: round toward zero, saturating, NaN -> 0 (as CUDA's __half2int_rz, ...).
  template <typename Int,
            std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>, int> = 0>
  __host__ __device__ operator Int() const {
    return mw::emu::saturating_to_integer<Int>(mw::emu::format_to_double<mw::emu::Binary16>(__x),
                                               false);
  }
  // +0 and -0 are false, everything else (NaN included) true.
  __host__ __device__ constexpr operator bool() const { return (__x & 0x7FFFu) != 0u; }
#endif
};

struct alignas(4) __half2 {
  __half x;
  __half y;

  __half2() = default;
  __host__ __device__ constexpr __half2(const __half& a, const __half& b) : x(a), y(b) {}
  __host__ __device__ __half2(const __half2_raw& h2r)
      : x(__half_raw{h2r.x}), y(__half_raw{h2r.y}) {}
  __host__ __device__ __half2& operator=(const __half2_raw& h2r) {
    x = __half_raw{h2r.x};
    y = __half_raw{h2r.y};
    return *this;
  }
  __host__ __device__ operator __half2_raw() const {
    return __half2_raw{static_cast<__half_raw>(x).x, static_cast<__half_raw>(y).x};
  }
};

static_assert(sizeof(__half) == 2 && alignof(__half) == 2 && std::is_trivially_copyable_v<__half>);
static_assert(sizeof(__half2) == 4 && alignof(__half2) == 4 &&
              std::is_trivially_copyable_v<__half2>);

using half = __half;
using half2 = __half2;

// ---------------------------------------------------------------------------------------------
// Bit access and conversions.
namespace mw::emu {
inline unsigned short half_bits(const __half h) { return static_cast<__half_raw>(h).x; }
inline __half half_from_bits(uint32_t bits) {
  return __half(__half_raw{static_cast<unsigned short>(bits)});
}
inline double half_to_double(const __half h) { return format_to_double<Binary16>(half_bits(h)); }
inline bool half_is_nan(const __half h) { return (half_bits(h) & 0x7fffu) > 0x7c00u; }
// An arithmetic result (exact double or already correctly rounded) rounded to binary16.
inline __half half_rn(double x) {
  return half_from_bits(round_to_format<Binary16>(x, Rounding::kNearestEven));
}
}  // namespace mw::emu

__host__ __device__ inline unsigned short __half_as_ushort(const __half h) {
  return mw::emu::half_bits(h);
}
__host__ __device__ inline __half __ushort_as_half(const unsigned short i) {
  return __half(__half_raw{i});
}
__host__ __device__ inline short __half_as_short(const __half h) {
  return static_cast<short>(mw::emu::half_bits(h));
}
__host__ __device__ inline __half __short_as_half(const short i) {
  return __half(__half_raw{static_cast<unsigned short>(i)});
}

__host__ __device__ inline __half __float2half(const float a) { return mw::emu::half_rn(a); }
__host__ __device__ inline __half __float2half_rn(const float a) { return mw::emu::half_rn(a); }
__host__ __device__ inline __half __float2half_rz(const float a) {
  return mw::emu::half_from_bits(
      mw::emu::round_to_format<mw::emu::Binary16>(a, mw::emu::Rounding::kTowardZero));
}
__host__ __device__ inline __half __double2half(const double a) { return mw::emu::half_rn(a); }
__host__ __device__ inline float __half2float(const __half a) {
  return mw::emu::format_to_float_canonical_nan<mw::emu::Binary16>(mw::emu::half_bits(a));
}
__host__ __device__ inline __half __int2half_rn(const int i) {
  return mw::emu::half_from_bits(
      mw::emu::round_integer_to_format<mw::emu::Binary16>(i, mw::emu::Rounding::kNearestEven));
}
__host__ __device__ inline __half __uint2half_rn(const unsigned int i) {
  return mw::emu::half_from_bits(
      mw::emu::round_integer_to_format<mw::emu::Binary16>(i, mw::emu::Rounding::kNearestEven));
}
__host__ __device__ inline __half __ll2half_rn(const long long int i) {
  return mw::emu::half_from_bits(
      mw::emu::round_integer_to_format<mw::emu::Binary16>(i, mw::emu::Rounding::kNearestEven));
}
__host__ __device__ inline int __half2int_rz(const __half h) {
  return mw::emu::saturating_to_integer<int>(mw::emu::half_to_double(h), false);
}
__device__ inline int __half2int_rn(const __half h) {
  return mw::emu::saturating_to_integer<int>(mw::emu::half_to_double(h), true);
}
__host__ __device__ inline unsigned int __half2uint_rz(const __half h) {
  return mw::emu::saturating_to_integer<unsigned int>(mw::emu::half_to_double(h), false);
}
__host__ __device__ inline long long int __half2ll_rz(const __half h) {
  return mw::emu::saturating_to_integer<long long int>(mw::emu::half_to_double(h), false);
}

// __half2 construction and access.
__host__ __device__ inline __half2 make_half2(const __half x, const __half y) {
  return __half2(x, y);
}
__host__ __device__ inline __half2 __halves2half2(const __half a, const __half b) {
  return __half2(a, b);
}
__host__ __device__ inline __half2 __half2half2(const __half a) { return __half2(a, a); }
__host__ __device__ inline __half __low2half(const __half2 a) { return a.x; }
__host__ __device__ inline __half __high2half(const __half2 a) { return a.y; }
__host__ __device__ inline float __low2float(const __half2 a) { return __half2float(a.x); }
__host__ __device__ inline float __high2float(const __half2 a) { return __half2float(a.y); }
__host__ __device__ inline __half2 __float2half2_rn(const float a) {
  return __half2half2(__float2half_rn(a));
}
__host__ __device__ inline __half2 __floats2half2_rn(const float a, const float b) {
  return __half2(__float2half_rn(a), __float2half_rn(b));
}
// float2 comes from kernels/emu/cuda_emu.h (CUDA's from vector_types.h); the templates defer the
// use of the type until a call, so this header also compiles where float2 is not defined.
struct float2;
template <typename Float2 = float2>
__host__ __device__ inline Float2 __half22float2(const __half2 a) {
  return Float2{__half2float(a.x), __half2float(a.y)};
}
template <typename Float2, std::enable_if_t<std::is_same_v<Float2, float2>, int> = 0>
__host__ __device__ inline __half2 __float22half2_rn(const Float2 a) {
  return __half2(__float2half_rn(a.x), __float2half_rn(a.y));
}

// ---------------------------------------------------------------------------------------------
// Arithmetic: the exact result rounded once to nearest even; NaN results are 0x7FFF.
__host__ __device__ inline __half __hadd(const __half a, const __half b) {
  return mw::emu::half_rn(mw::emu::half_to_double(a) + mw::emu::half_to_double(b));
}
__host__ __device__ inline __half __hsub(const __half a, const __half b) {
  return mw::emu::half_rn(mw::emu::half_to_double(a) - mw::emu::half_to_double(b));
}
__host__ __device__ inline __half __hmul(const __half a, const __half b) {
  return mw::emu::half_rn(mw::emu::half_to_double(a) * mw::emu::half_to_double(b));
}
__host__ __device__ inline __half __hdiv(const __half a, const __half b) {
  return mw::emu::half_rn(mw::emu::half_to_double(a) / mw::emu::half_to_double(b));
}
// The _rn forms are never contracted into an fma by nvcc; here nothing is.
__host__ __device__ inline __half __hadd_rn(const __half a, const __half b) { return __hadd(a, b); }
__host__ __device__ inline __half __hsub_rn(const __half a, const __half b) { return __hsub(a, b); }
__host__ __device__ inline __half __hmul_rn(const __half a, const __half b) { return __hmul(a, b); }
__device__ inline __half __hfma(const __half a, const __half b, const __half c) {
  return mw::emu::half_from_bits(mw::emu::fused_multiply_add<mw::emu::Binary16>(
      mw::emu::half_to_double(a), mw::emu::half_to_double(b), mw::emu::half_to_double(c),
      mw::emu::Rounding::kNearestEven));
}
__host__ __device__ inline __half __hneg(const __half a) {
  return mw::emu::half_is_nan(a)
             ? __ushort_as_half(0x7FFFu)
             : __ushort_as_half(static_cast<unsigned short>(mw::emu::half_bits(a) ^ 0x8000u));
}
__host__ __device__ inline __half __habs(const __half a) {
  return mw::emu::half_is_nan(a)
             ? __ushort_as_half(0x7FFFu)
             : __ushort_as_half(static_cast<unsigned short>(mw::emu::half_bits(a) & 0x7FFFu));
}

// Comparisons: the plain forms are ordered (false if either is NaN), the u forms unordered.
__host__ __device__ inline bool __hisnan(const __half a) { return mw::emu::half_is_nan(a); }
// -1 for -infinity, 1 for +infinity, 0 otherwise.
__host__ __device__ inline int __hisinf(const __half a) {
  const unsigned short bits = mw::emu::half_bits(a);
  return bits == 0x7C00u ? 1 : (bits == 0xFC00u ? -1 : 0);
}
__host__ __device__ inline bool __heq(const __half a, const __half b) {
  return mw::emu::half_to_double(a) == mw::emu::half_to_double(b);
}
__host__ __device__ inline bool __hne(const __half a, const __half b) {
  return !__hisnan(a) && !__hisnan(b) && !__heq(a, b);
}
__host__ __device__ inline bool __hlt(const __half a, const __half b) {
  return mw::emu::half_to_double(a) < mw::emu::half_to_double(b);
}
__host__ __device__ inline bool __hle(const __half a, const __half b) {
  return mw::emu::half_to_double(a) <= mw::emu::half_to_double(b);
}
__host__ __device__ inline bool __hgt(const __half a, const __half b) {
  return mw::emu::half_to_double(a) > mw::emu::half_to_double(b);
}
__host__ __device__ inline bool __hge(const __half a, const __half b) {
  return mw::emu::half_to_double(a) >= mw::emu::half_to_double(b);
}
__host__ __device__ inline bool __hequ(const __half a, const __half b) {
  return __hisnan(a) || __hisnan(b) || __heq(a, b);
}
__host__ __device__ inline bool __hneu(const __half a, const __half b) { return !__heq(a, b); }
__host__ __device__ inline bool __hltu(const __half a, const __half b) { return !__hge(a, b); }
__host__ __device__ inline bool __hleu(const __half a, const __half b) { return !__hgt(a, b); }
__host__ __device__ inline bool __hgtu(const __half a, const __half b) { return !__hle(a, b); }
__host__ __device__ inline bool __hgeu(const __half a, const __half b) { return !__hlt(a, b); }

// max/min: a NaN operand yields the other one (two NaNs: 0x7FFF); +0 counts as larger than -0.
__host__ __device__ inline __half __hmax(const __half a, const __half b) {
  if (__hisnan(a)) return __hisnan(b) ? __ushort_as_half(0x7FFFu) : b;
  if (__hisnan(b)) return a;
  if (__heq(a, b)) return (mw::emu::half_bits(a) & 0x8000u) != 0 ? b : a;
  return __hgt(a, b) ? a : b;
}
__host__ __device__ inline __half __hmin(const __half a, const __half b) {
  if (__hisnan(a)) return __hisnan(b) ? __ushort_as_half(0x7FFFu) : b;
  if (__hisnan(b)) return a;
  if (__heq(a, b)) return (mw::emu::half_bits(a) & 0x8000u) != 0 ? a : b;
  return __hlt(a, b) ? a : b;
}

// __half2: the same, lane by lane.
__host__ __device__ inline __half2 __hadd2(const __half2 a, const __half2 b) {
  return __half2(__hadd(a.x, b.x), __hadd(a.y, b.y));
}
__host__ __device__ inline __half2 __hsub2(const __half2 a, const __half2 b) {
  return __half2(__hsub(a.x, b.x), __hsub(a.y, b.y));
}
__host__ __device__ inline __half2 __hmul2(const __half2 a, const __half2 b) {
  return __half2(__hmul(a.x, b.x), __hmul(a.y, b.y));
}
__host__ __device__ inline __half2 __h2div(const __half2 a, const __half2 b) {
  return __half2(__hdiv(a.x, b.x), __hdiv(a.y, b.y));
}
__device__ inline __half2 __hfma2(const __half2 a, const __half2 b, const __half2 c) {
  return __half2(__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y));
}
__host__ __device__ inline __half2 __hneg2(const __half2 a) {
  return __half2(__hneg(a.x), __hneg(a.y));
}
__host__ __device__ inline __half2 __habs2(const __half2 a) {
  return __half2(__habs(a.x), __habs(a.y));
}

// ---------------------------------------------------------------------------------------------
// Operators (CUDA's set).
#if !defined(__CUDA_NO_HALF_OPERATORS__)
__host__ __device__ inline __half operator+(const __half& lh, const __half& rh) {
  return __hadd(lh, rh);
}
__host__ __device__ inline __half operator-(const __half& lh, const __half& rh) {
  return __hsub(lh, rh);
}
__host__ __device__ inline __half operator*(const __half& lh, const __half& rh) {
  return __hmul(lh, rh);
}
__host__ __device__ inline __half operator/(const __half& lh, const __half& rh) {
  return __hdiv(lh, rh);
}
__host__ __device__ inline __half& operator+=(__half& lh, const __half& rh) {
  lh = __hadd(lh, rh);
  return lh;
}
__host__ __device__ inline __half& operator-=(__half& lh, const __half& rh) {
  lh = __hsub(lh, rh);
  return lh;
}
__host__ __device__ inline __half& operator*=(__half& lh, const __half& rh) {
  lh = __hmul(lh, rh);
  return lh;
}
__host__ __device__ inline __half& operator/=(__half& lh, const __half& rh) {
  lh = __hdiv(lh, rh);
  return lh;
}
__host__ __device__ inline __half& operator++(__half& h) {
  h = __hadd(h, __ushort_as_half(0x3C00u));
  return h;
}
__host__ __device__ inline __half& operator--(__half& h) {
  h = __hsub(h, __ushort_as_half(0x3C00u));
  return h;
}
__host__ __device__ inline __half operator++(__half& h, const int) {
  const __half old = h;
  ++h;
  return old;
}
__host__ __device__ inline __half operator--(__half& h, const int) {
  const __half old = h;
  --h;
  return old;
}
__host__ __device__ inline __half operator+(const __half& h) { return h; }
__host__ __device__ inline __half operator-(const __half& h) { return __hneg(h); }
__host__ __device__ inline bool operator==(const __half& lh, const __half& rh) {
  return __heq(lh, rh);
}
__host__ __device__ inline bool operator!=(const __half& lh, const __half& rh) {
  return __hneu(lh, rh);
}
__host__ __device__ inline bool operator<(const __half& lh, const __half& rh) {
  return __hlt(lh, rh);
}
__host__ __device__ inline bool operator>(const __half& lh, const __half& rh) {
  return __hgt(lh, rh);
}
__host__ __device__ inline bool operator<=(const __half& lh, const __half& rh) {
  return __hle(lh, rh);
}
__host__ __device__ inline bool operator>=(const __half& lh, const __half& rh) {
  return __hge(lh, rh);
}
#endif

#if !defined(__CUDA_NO_HALF2_OPERATORS__)
__host__ __device__ inline __half2 operator+(const __half2& lh, const __half2& rh) {
  return __hadd2(lh, rh);
}
__host__ __device__ inline __half2 operator-(const __half2& lh, const __half2& rh) {
  return __hsub2(lh, rh);
}
__host__ __device__ inline __half2 operator*(const __half2& lh, const __half2& rh) {
  return __hmul2(lh, rh);
}
__host__ __device__ inline __half2 operator/(const __half2& lh, const __half2& rh) {
  return __h2div(lh, rh);
}
__host__ __device__ inline __half2& operator+=(__half2& lh, const __half2& rh) {
  lh = __hadd2(lh, rh);
  return lh;
}
__host__ __device__ inline __half2& operator-=(__half2& lh, const __half2& rh) {
  lh = __hsub2(lh, rh);
  return lh;
}
__host__ __device__ inline __half2& operator*=(__half2& lh, const __half2& rh) {
  lh = __hmul2(lh, rh);
  return lh;
}
__host__ __device__ inline __half2& operator/=(__half2& lh, const __half2& rh) {
  lh = __h2div(lh, rh);
  return lh;
}
__host__ __device__ inline __half2 operator+(const __half2& h) { return h; }
__host__ __device__ inline __half2 operator-(const __half2& h) { return __hneg2(h); }
#endif

// Constants (CUDA defines the same macros in cuda_fp16.hpp).
#define CUDART_INF_FP16 __ushort_as_half((unsigned short)0x7C00U)
#define CUDART_NAN_FP16 __ushort_as_half((unsigned short)0x7FFFU)
#define CUDART_MIN_DENORM_FP16 __ushort_as_half((unsigned short)0x0001U)
#define CUDART_MAX_NORMAL_FP16 __ushort_as_half((unsigned short)0x7BFFU)
#define CUDART_NEG_ZERO_FP16 __ushort_as_half((unsigned short)0x8000U)
#define CUDART_ZERO_FP16 __ushort_as_half((unsigned short)0x0000U)
#define CUDART_ONE_FP16 __ushort_as_half((unsigned short)0x3C00U)
