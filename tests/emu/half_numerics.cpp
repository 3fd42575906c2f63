// Test library for the emulator's 16-bit and TF32 numerics (kernels/emu/include/cuda_fp16.h,
// cuda_bf16.h, mw_emu_tf32.h). tests/test_emu_half_numerics.py compiles it into a shared
// library and compares every entry point bit for bit with NumPy and independent references.
//
// Every entry point takes an operation name and arrays of raw bits (uint16_t for __half and
// __nv_bfloat16) and returns 0, or -1 for an unknown name. Pair operations (__half2,
// __nv_bfloat162) write two outputs per element: lane x then lane y.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mw_emu_tf32.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

// What kernels/emu/cuda_emu.h defines (the headers only forward-declare float2).
struct alignas(8) float2 {
  float x, y;
};

namespace {

using mw::emu::BFloat16;
using mw::emu::Binary16;
using mw::emu::Rounding;

// ---- compile-time checks of the constexpr core ------------------------------------------------
constexpr uint32_t rn16(double x) {
  return mw::emu::round_to_format<Binary16>(x, Rounding::kNearestEven);
}
constexpr uint32_t rz16(double x) {
  return mw::emu::round_to_format<Binary16>(x, Rounding::kTowardZero);
}
constexpr uint32_t rnbf(double x) {
  return mw::emu::round_to_format<BFloat16>(x, Rounding::kNearestEven);
}

static_assert(rn16(1.0) == 0x3C00 && rn16(-2.0) == 0xC000 && rn16(-0.0) == 0x8000);
static_assert(rn16(65504.0) == 0x7BFF && rn16(65519.99) == 0x7BFF && rn16(65520.0) == 0x7C00);
static_assert(rz16(65520.0) == 0x7BFF && rz16(1e300) == 0x7BFF && rz16(-1e300) == 0xFBFF);
static_assert(rn16(0x1p-24) == 0x0001 && rn16(0x1p-25) == 0x0000 && rn16(0x1.8p-25) == 0x0001);
static_assert(rn16(0x1.8p-24) == 0x0002 && rn16(0x1.4p-24) == 0x0001);  // ties to even
static_assert(rn16(0x1.ffcp-15) == 0x0400);  // the largest subnormal rounds up to the min normal
static_assert(rn16(1.0 + 0x1p-11) == 0x3C00 && rn16(1.0 + 0x1.8p-10) == 0x3C02);
static_assert(rn16(__builtin_nan("")) == 0x7FFF && rn16(-__builtin_inf()) == 0xFC00);
static_assert(rnbf(1.0 + 0x1p-8) == 0x3F80 && rnbf(1.0 + 0x1.8p-7) == 0x3F82);
static_assert(rnbf(0x1p-133) == 0x0001 && rnbf(0x1p-134) == 0x0000);
static_assert(rnbf(3.4e38) == 0x7F80 && rnbf(3.38e38) == 0x7F7E);
// Integers go straight to the format: 2^60 + 2^52 + 1 is just above a bfloat16 tie and rounds
// up, which a detour through double (2^60 + 2^52 exactly, a tie, to even: down) would miss.
static_assert(mw::emu::round_integer_to_format<BFloat16>((int64_t{1} << 60) + (int64_t{1} << 52) +
                                                             1,
                                                         Rounding::kNearestEven) ==
              rnbf(0x1p60 + 0x1p53));
static_assert(mw::emu::round_integer_to_format<Binary16>(INT64_MIN, Rounding::kNearestEven) ==
              0xFC00);
// fma(3, 87, 2^-100) = 261 + 2^-100, just above the bfloat16 tie 261: the exact result rounds to
// 262; rounding the double sum (exactly 261) would give 260.
static_assert(mw::emu::fused_multiply_add<BFloat16>(3.0, 87.0, 0x1p-100, Rounding::kNearestEven) ==
              rnbf(262.0));
static_assert(mw::emu::fused_multiply_add<BFloat16>(3.0, 87.0, -0x1p-100, Rounding::kNearestEven) ==
              rnbf(260.0));
static_assert(mw::emu::format_to_double<Binary16>(0x0001) == 0x1p-24);
static_assert(mw::emu::format_to_double<Binary16>(0x7BFF) == 65504.0);
static_assert(mw::emu::format_to_double<BFloat16>(0x0001) == 0x1p-133);
static_assert(mw::emu::saturating_to_integer<int>(2.5, true) == 2 &&
              mw::emu::saturating_to_integer<int>(3.5, true) == 4 &&
              mw::emu::saturating_to_integer<int>(-2.5, true) == -2 &&
              mw::emu::saturating_to_integer<int>(-2.7, false) == -2);
static_assert(mw::emu::saturating_to_integer<unsigned char>(300.0, false) == 255 &&
              mw::emu::saturating_to_integer<unsigned>(-3.0, false) == 0 &&
              mw::emu::saturating_to_integer<int64_t>(__builtin_nan(""), false) == INT64_MIN);
static_assert(mw::emu::tf32_round_nearest_away(1.0f + 0x1p-11f) == 1.0f + 0x1p-10f);  // tie: away
static_assert(mw::emu::tf32_round_nearest_away(-(1.0f + 0x1p-11f)) == -(1.0f + 0x1p-10f));
static_assert(mw::emu::tf32_truncate(1.0f + 0x1.fp-11f) == 1.0f);
static_assert(mw::emu::is_tf32(mw::emu::tf32_round_nearest_away(3.14159f)));
static_assert(sizeof(__half) == 2 && sizeof(__nv_bfloat16) == 2 && sizeof(__half2) == 4 &&
              sizeof(__nv_bfloat162) == 4 && alignof(__half2) == 4 && alignof(__nv_bfloat162) == 4);
static_assert(std::is_trivially_copyable_v<__half> && std::is_trivially_copyable_v<__half2> &&
              std::is_trivially_copyable_v<__nv_bfloat16> &&
              std::is_trivially_copyable_v<__nv_bfloat162>);
static_assert(std::is_trivially_default_constructible_v<__half> &&
              std::is_standard_layout_v<__half>);

// ---- helpers -----------------------------------------------------------------------------------
uint16_t H(__half h) { return __half_as_ushort(h); }
uint16_t B(__nv_bfloat16 h) { return __bfloat16_as_ushort(h); }
__half h_(uint16_t bits) { return __ushort_as_half(bits); }
__nv_bfloat16 b_(uint16_t bits) { return __ushort_as_bfloat16(bits); }

template <typename Fn>
struct Op {
  std::string_view name;
  Fn fn;
};

template <typename Fn, std::size_t N>
Fn find(const Op<Fn> (&table)[N], const char* name) {
  for (const auto& op : table)
    if (op.name == name) return op.fn;
  return nullptr;
}

// ---- float / double / integer -> 16 bits --------------------------------------------------------
using FromF32 = uint16_t (*)(float);
constexpr Op<FromF32> kFromF32[] = {
    {"float2half", [](float x) { return H(__float2half(x)); }},
    {"float2half_rn", [](float x) { return H(__float2half_rn(x)); }},
    {"float2half_rz", [](float x) { return H(__float2half_rz(x)); }},
    {"half_ctor", [](float x) { return H(__half(x)); }},
    {"half_assign",
     [](float x) {
       __half h;
       h = x;
       return H(h);
     }},
    {"float2bfloat16", [](float x) { return B(__float2bfloat16(x)); }},
    {"float2bfloat16_rn", [](float x) { return B(__float2bfloat16_rn(x)); }},
    {"float2bfloat16_rz", [](float x) { return B(__float2bfloat16_rz(x)); }},
    {"bfloat16_ctor", [](float x) { return B(__nv_bfloat16(x)); }},
};

using FromF64 = uint16_t (*)(double);
constexpr Op<FromF64> kFromF64[] = {
    {"double2half", [](double x) { return H(__double2half(x)); }},
    {"half_ctor", [](double x) { return H(__half(x)); }},
    {"double2bfloat16", [](double x) { return B(__double2bfloat16(x)); }},
    {"bfloat16_ctor", [](double x) { return B(__nv_bfloat16(x)); }},
};

using FromI64 = uint16_t (*)(int64_t);
constexpr Op<FromI64> kFromI64[] = {
    {"int2half_rn", [](int64_t x) { return H(__int2half_rn(static_cast<int>(x))); }},
    {"uint2half_rn", [](int64_t x) { return H(__uint2half_rn(static_cast<unsigned>(x))); }},
    {"ll2half_rn", [](int64_t x) { return H(__ll2half_rn(x)); }},
    {"half_ctor_int", [](int64_t x) { return H(__half(static_cast<int>(x))); }},
    {"half_ctor_ll", [](int64_t x) { return H(__half(static_cast<long long>(x))); }},
    {"half_ctor_ull", [](int64_t x) { return H(__half(static_cast<unsigned long long>(x))); }},
    {"int2bfloat16_rn", [](int64_t x) { return B(__int2bfloat16_rn(static_cast<int>(x))); }},
    {"uint2bfloat16_rn", [](int64_t x) { return B(__uint2bfloat16_rn(static_cast<unsigned>(x))); }},
    {"ll2bfloat16_rn", [](int64_t x) { return B(__ll2bfloat16_rn(x)); }},
    {"bfloat16_ctor_ll", [](int64_t x) { return B(__nv_bfloat16(static_cast<long long>(x))); }},
    {"bfloat16_ctor_ull",
     [](int64_t x) { return B(__nv_bfloat16(static_cast<unsigned long long>(x))); }},
};

// ---- 16 bits -> float / integer -----------------------------------------------------------------
using ToF32 = float (*)(uint16_t);
constexpr Op<ToF32> kToF32[] = {
    {"half2float", [](uint16_t h) { return __half2float(h_(h)); }},
    {"half_to_float", [](uint16_t h) { return static_cast<float>(h_(h)); }},
    {"low2float", [](uint16_t h) { return __low2float(__halves2half2(h_(h), h_(0x7BFF))); }},
    {"high2float", [](uint16_t h) { return __high2float(__halves2half2(h_(0x7BFF), h_(h))); }},
    {"bfloat162float", [](uint16_t h) { return __bfloat162float(b_(h)); }},
    {"bfloat16_to_float", [](uint16_t h) { return static_cast<float>(b_(h)); }},
    {"bf_low2float", [](uint16_t h) { return __low2float(__halves2bfloat162(b_(h), b_(0x7F7F))); }},
    {"bf_high2float",
     [](uint16_t h) { return __high2float(__halves2bfloat162(b_(0x7F7F), b_(h))); }},
};

using ToI64 = int64_t (*)(uint16_t);
constexpr Op<ToI64> kToI64[] = {
    {"half2int_rz", [](uint16_t h) -> int64_t { return __half2int_rz(h_(h)); }},
    {"half2int_rn", [](uint16_t h) -> int64_t { return __half2int_rn(h_(h)); }},
    {"half2uint_rz", [](uint16_t h) -> int64_t { return __half2uint_rz(h_(h)); }},
    {"half2ll_rz", [](uint16_t h) -> int64_t { return __half2ll_rz(h_(h)); }},
    {"half_to_int", [](uint16_t h) -> int64_t { return static_cast<int>(h_(h)); }},
    {"half_to_short", [](uint16_t h) -> int64_t { return static_cast<short>(h_(h)); }},
    {"half_to_uchar", [](uint16_t h) -> int64_t { return static_cast<unsigned char>(h_(h)); }},
    {"half_to_uint", [](uint16_t h) -> int64_t { return static_cast<unsigned>(h_(h)); }},
    {"half_to_ll", [](uint16_t h) -> int64_t { return static_cast<long long>(h_(h)); }},
    {"half_to_bool", [](uint16_t h) -> int64_t { return static_cast<bool>(h_(h)); }},
    {"hisnan", [](uint16_t h) -> int64_t { return __hisnan(h_(h)); }},
    {"hisinf", [](uint16_t h) -> int64_t { return __hisinf(h_(h)); }},
    {"bfloat162int_rz", [](uint16_t h) -> int64_t { return __bfloat162int_rz(b_(h)); }},
    {"bfloat162int_rn", [](uint16_t h) -> int64_t { return __bfloat162int_rn(b_(h)); }},
    {"bfloat162uint_rz", [](uint16_t h) -> int64_t { return __bfloat162uint_rz(b_(h)); }},
    {"bf_to_int", [](uint16_t h) -> int64_t { return static_cast<int>(b_(h)); }},
    {"bf_to_ll", [](uint16_t h) -> int64_t { return static_cast<long long>(b_(h)); }},
    {"bf_to_bool", [](uint16_t h) -> int64_t { return static_cast<bool>(b_(h)); }},
    {"bf_hisnan", [](uint16_t h) -> int64_t { return __hisnan(b_(h)); }},
    {"bf_hisinf", [](uint16_t h) -> int64_t { return __hisinf(b_(h)); }},
};

// ---- 16 bits -> 16 bits -------------------------------------------------------------------------
using Unary = uint16_t (*)(uint16_t);
constexpr Op<Unary> kUnary[] = {
    {"hneg", [](uint16_t a) { return H(__hneg(h_(a))); }},
    {"habs", [](uint16_t a) { return H(__habs(h_(a))); }},
    {"neg_op", [](uint16_t a) { return H(-h_(a)); }},
    {"pos_op", [](uint16_t a) { return H(+h_(a)); }},
    {"pre_inc",
     [](uint16_t a) {
       __half h = h_(a);
       return H(++h);
     }},
    {"post_inc",
     [](uint16_t a) {
       __half h = h_(a);
       const __half old = h++;
       return H(old) == a ? H(h) : uint16_t{0xDEAD};
     }},
    {"pre_dec",
     [](uint16_t a) {
       __half h = h_(a);
       return H(--h);
     }},
    {"post_dec",
     [](uint16_t a) {
       __half h = h_(a);
       const __half old = h--;
       return H(old) == a ? H(h) : uint16_t{0xDEAD};
     }},
    {"half_from_bf16", [](uint16_t a) { return H(__half(b_(a))); }},
    {"bf16_from_half", [](uint16_t a) { return B(__nv_bfloat16(h_(a))); }},
    {"raw_roundtrip",
     [](uint16_t a) {
       const __half_raw raw = static_cast<__half_raw>(h_(a));
       __half h;
       h = raw;
       return H(h);
     }},
    {"bf_hneg", [](uint16_t a) { return B(__hneg(b_(a))); }},
    {"bf_habs", [](uint16_t a) { return B(__habs(b_(a))); }},
    {"bf_neg_op", [](uint16_t a) { return B(-b_(a)); }},
    {"bf_pre_inc",
     [](uint16_t a) {
       __nv_bfloat16 h = b_(a);
       return B(++h);
     }},
    {"bf_post_dec",
     [](uint16_t a) {
       __nv_bfloat16 h = b_(a);
       const __nv_bfloat16 old = h--;
       return B(old) == a ? B(h) : uint16_t{0xDEAD};
     }},
};

using Binary = uint16_t (*)(uint16_t, uint16_t);
constexpr Op<Binary> kBinary[] = {
    {"hadd", [](uint16_t a, uint16_t b) { return H(__hadd(h_(a), h_(b))); }},
    {"hsub", [](uint16_t a, uint16_t b) { return H(__hsub(h_(a), h_(b))); }},
    {"hmul", [](uint16_t a, uint16_t b) { return H(__hmul(h_(a), h_(b))); }},
    {"hdiv", [](uint16_t a, uint16_t b) { return H(__hdiv(h_(a), h_(b))); }},
    {"hadd_rn", [](uint16_t a, uint16_t b) { return H(__hadd_rn(h_(a), h_(b))); }},
    {"hsub_rn", [](uint16_t a, uint16_t b) { return H(__hsub_rn(h_(a), h_(b))); }},
    {"hmul_rn", [](uint16_t a, uint16_t b) { return H(__hmul_rn(h_(a), h_(b))); }},
    {"add_op", [](uint16_t a, uint16_t b) { return H(h_(a) + h_(b)); }},
    {"sub_op", [](uint16_t a, uint16_t b) { return H(h_(a) - h_(b)); }},
    {"mul_op", [](uint16_t a, uint16_t b) { return H(h_(a) * h_(b)); }},
    {"div_op", [](uint16_t a, uint16_t b) { return H(h_(a) / h_(b)); }},
    {"add_assign",
     [](uint16_t a, uint16_t b) {
       __half h = h_(a);
       h += h_(b);
       return H(h);
     }},
    {"sub_assign",
     [](uint16_t a, uint16_t b) {
       __half h = h_(a);
       h -= h_(b);
       return H(h);
     }},
    {"mul_assign",
     [](uint16_t a, uint16_t b) {
       __half h = h_(a);
       h *= h_(b);
       return H(h);
     }},
    {"div_assign",
     [](uint16_t a, uint16_t b) {
       __half h = h_(a);
       h /= h_(b);
       return H(h);
     }},
    {"hmax", [](uint16_t a, uint16_t b) { return H(__hmax(h_(a), h_(b))); }},
    {"hmin", [](uint16_t a, uint16_t b) { return H(__hmin(h_(a), h_(b))); }},
    {"bf_hadd", [](uint16_t a, uint16_t b) { return B(__hadd(b_(a), b_(b))); }},
    {"bf_hsub", [](uint16_t a, uint16_t b) { return B(__hsub(b_(a), b_(b))); }},
    {"bf_hmul", [](uint16_t a, uint16_t b) { return B(__hmul(b_(a), b_(b))); }},
    {"bf_hdiv", [](uint16_t a, uint16_t b) { return B(__hdiv(b_(a), b_(b))); }},
    {"bf_hadd_rn", [](uint16_t a, uint16_t b) { return B(__hadd_rn(b_(a), b_(b))); }},
    {"bf_hsub_rn", [](uint16_t a, uint16_t b) { return B(__hsub_rn(b_(a), b_(b))); }},
    {"bf_hmul_rn", [](uint16_t a, uint16_t b) { return B(__hmul_rn(b_(a), b_(b))); }},
    {"bf_add_op", [](uint16_t a, uint16_t b) { return B(b_(a) + b_(b)); }},
    {"bf_sub_op", [](uint16_t a, uint16_t b) { return B(b_(a) - b_(b)); }},
    {"bf_mul_op", [](uint16_t a, uint16_t b) { return B(b_(a) * b_(b)); }},
    {"bf_div_op", [](uint16_t a, uint16_t b) { return B(b_(a) / b_(b)); }},
    {"bf_mul_assign",
     [](uint16_t a, uint16_t b) {
       __nv_bfloat16 h = b_(a);
       h *= b_(b);
       return B(h);
     }},
    {"bf_hmax", [](uint16_t a, uint16_t b) { return B(__hmax(b_(a), b_(b))); }},
    {"bf_hmin", [](uint16_t a, uint16_t b) { return B(__hmin(b_(a), b_(b))); }},
};

using Compare = int32_t (*)(uint16_t, uint16_t);
constexpr Op<Compare> kCompare[] = {
    {"heq", [](uint16_t a, uint16_t b) -> int32_t { return __heq(h_(a), h_(b)); }},
    {"hne", [](uint16_t a, uint16_t b) -> int32_t { return __hne(h_(a), h_(b)); }},
    {"hlt", [](uint16_t a, uint16_t b) -> int32_t { return __hlt(h_(a), h_(b)); }},
    {"hle", [](uint16_t a, uint16_t b) -> int32_t { return __hle(h_(a), h_(b)); }},
    {"hgt", [](uint16_t a, uint16_t b) -> int32_t { return __hgt(h_(a), h_(b)); }},
    {"hge", [](uint16_t a, uint16_t b) -> int32_t { return __hge(h_(a), h_(b)); }},
    {"hequ", [](uint16_t a, uint16_t b) -> int32_t { return __hequ(h_(a), h_(b)); }},
    {"hneu", [](uint16_t a, uint16_t b) -> int32_t { return __hneu(h_(a), h_(b)); }},
    {"hltu", [](uint16_t a, uint16_t b) -> int32_t { return __hltu(h_(a), h_(b)); }},
    {"hleu", [](uint16_t a, uint16_t b) -> int32_t { return __hleu(h_(a), h_(b)); }},
    {"hgtu", [](uint16_t a, uint16_t b) -> int32_t { return __hgtu(h_(a), h_(b)); }},
    {"hgeu", [](uint16_t a, uint16_t b) -> int32_t { return __hgeu(h_(a), h_(b)); }},
    {"eq_op", [](uint16_t a, uint16_t b) -> int32_t { return h_(a) == h_(b); }},
    {"ne_op", [](uint16_t a, uint16_t b) -> int32_t { return h_(a) != h_(b); }},
    {"lt_op", [](uint16_t a, uint16_t b) -> int32_t { return h_(a) < h_(b); }},
    {"le_op", [](uint16_t a, uint16_t b) -> int32_t { return h_(a) <= h_(b); }},
    {"gt_op", [](uint16_t a, uint16_t b) -> int32_t { return h_(a) > h_(b); }},
    {"ge_op", [](uint16_t a, uint16_t b) -> int32_t { return h_(a) >= h_(b); }},
    {"bf_heq", [](uint16_t a, uint16_t b) -> int32_t { return __heq(b_(a), b_(b)); }},
    {"bf_hne", [](uint16_t a, uint16_t b) -> int32_t { return __hne(b_(a), b_(b)); }},
    {"bf_hlt", [](uint16_t a, uint16_t b) -> int32_t { return __hlt(b_(a), b_(b)); }},
    {"bf_hle", [](uint16_t a, uint16_t b) -> int32_t { return __hle(b_(a), b_(b)); }},
    {"bf_hgt", [](uint16_t a, uint16_t b) -> int32_t { return __hgt(b_(a), b_(b)); }},
    {"bf_hge", [](uint16_t a, uint16_t b) -> int32_t { return __hge(b_(a), b_(b)); }},
    {"bf_hequ", [](uint16_t a, uint16_t b) -> int32_t { return __hequ(b_(a), b_(b)); }},
    {"bf_hneu", [](uint16_t a, uint16_t b) -> int32_t { return __hneu(b_(a), b_(b)); }},
    {"bf_hltu", [](uint16_t a, uint16_t b) -> int32_t { return __hltu(b_(a), b_(b)); }},
    {"bf_hleu", [](uint16_t a, uint16_t b) -> int32_t { return __hleu(b_(a), b_(b)); }},
    {"bf_hgtu", [](uint16_t a, uint16_t b) -> int32_t { return __hgtu(b_(a), b_(b)); }},
    {"bf_hgeu", [](uint16_t a, uint16_t b) -> int32_t { return __hgeu(b_(a), b_(b)); }},
    {"bf_eq_op", [](uint16_t a, uint16_t b) -> int32_t { return b_(a) == b_(b); }},
    {"bf_ne_op", [](uint16_t a, uint16_t b) -> int32_t { return b_(a) != b_(b); }},
    {"bf_lt_op", [](uint16_t a, uint16_t b) -> int32_t { return b_(a) < b_(b); }},
    {"bf_le_op", [](uint16_t a, uint16_t b) -> int32_t { return b_(a) <= b_(b); }},
    {"bf_gt_op", [](uint16_t a, uint16_t b) -> int32_t { return b_(a) > b_(b); }},
    {"bf_ge_op", [](uint16_t a, uint16_t b) -> int32_t { return b_(a) >= b_(b); }},
};

using Ternary = uint16_t (*)(uint16_t, uint16_t, uint16_t);
constexpr Op<Ternary> kTernary[] = {
    {"hfma", [](uint16_t a, uint16_t b, uint16_t c) { return H(__hfma(h_(a), h_(b), h_(c))); }},
    {"bf_hfma", [](uint16_t a, uint16_t b, uint16_t c) { return B(__hfma(b_(a), b_(b), b_(c))); }},
};

// ---- pairs: x = (a, b), y = (b, a); the result's lanes are written to out[2i], out[2i + 1] ----
using Pair = std::pair<uint16_t, uint16_t> (*)(uint16_t, uint16_t);
std::pair<uint16_t, uint16_t> lanes(__half2 v) { return {H(__low2half(v)), H(__high2half(v))}; }
std::pair<uint16_t, uint16_t> lanes(__nv_bfloat162 v) {
  return {B(__low2bfloat16(v)), B(__high2bfloat16(v))};
}
__half2 hx(uint16_t a, uint16_t b) { return __halves2half2(h_(a), h_(b)); }
__nv_bfloat162 bx(uint16_t a, uint16_t b) { return __halves2bfloat162(b_(a), b_(b)); }

constexpr Op<Pair> kPair[] = {
    {"hadd2", [](uint16_t a, uint16_t b) { return lanes(__hadd2(hx(a, b), hx(b, a))); }},
    {"hsub2", [](uint16_t a, uint16_t b) { return lanes(__hsub2(hx(a, b), hx(b, a))); }},
    {"hmul2", [](uint16_t a, uint16_t b) { return lanes(__hmul2(hx(a, b), hx(b, a))); }},
    {"h2div", [](uint16_t a, uint16_t b) { return lanes(__h2div(hx(a, b), hx(b, a))); }},
    {"add2_op", [](uint16_t a, uint16_t b) { return lanes(hx(a, b) + hx(b, a)); }},
    {"sub2_op", [](uint16_t a, uint16_t b) { return lanes(hx(a, b) - hx(b, a)); }},
    {"mul2_op", [](uint16_t a, uint16_t b) { return lanes(hx(a, b) * hx(b, a)); }},
    {"div2_op", [](uint16_t a, uint16_t b) { return lanes(hx(a, b) / hx(b, a)); }},
    {"add2_assign",
     [](uint16_t a, uint16_t b) {
       __half2 v = hx(a, b);
       v += hx(b, a);
       return lanes(v);
     }},
    // fma2(x, y, x): lane x = fma(a, b, a), lane y = fma(b, a, b)
    {"hfma2", [](uint16_t a, uint16_t b) { return lanes(__hfma2(hx(a, b), hx(b, a), hx(a, b))); }},
    {"hneg2", [](uint16_t a, uint16_t b) { return lanes(__hneg2(hx(a, b))); }},
    {"neg2_op", [](uint16_t a, uint16_t b) { return lanes(-hx(a, b)); }},
    {"habs2", [](uint16_t a, uint16_t b) { return lanes(__habs2(hx(a, b))); }},
    {"make_half2", [](uint16_t a, uint16_t b) { return lanes(make_half2(h_(a), h_(b))); }},
    {"half2half2", [](uint16_t a, uint16_t) { return lanes(__half2half2(h_(a))); }},
    {"half2_raw",
     [](uint16_t a, uint16_t b) {
       const __half2_raw raw = static_cast<__half2_raw>(hx(a, b));
       return lanes(__half2(raw));
     }},
    {"bf_hadd2", [](uint16_t a, uint16_t b) { return lanes(__hadd2(bx(a, b), bx(b, a))); }},
    {"bf_hsub2", [](uint16_t a, uint16_t b) { return lanes(__hsub2(bx(a, b), bx(b, a))); }},
    {"bf_hmul2", [](uint16_t a, uint16_t b) { return lanes(__hmul2(bx(a, b), bx(b, a))); }},
    {"bf_h2div", [](uint16_t a, uint16_t b) { return lanes(__h2div(bx(a, b), bx(b, a))); }},
    {"bf_add2_op", [](uint16_t a, uint16_t b) { return lanes(bx(a, b) + bx(b, a)); }},
    {"bf_mul2_op", [](uint16_t a, uint16_t b) { return lanes(bx(a, b) * bx(b, a)); }},
    {"bf_hfma2",
     [](uint16_t a, uint16_t b) { return lanes(__hfma2(bx(a, b), bx(b, a), bx(a, b))); }},
    {"bf_hneg2", [](uint16_t a, uint16_t b) { return lanes(__hneg2(bx(a, b))); }},
    {"bf_habs2", [](uint16_t a, uint16_t b) { return lanes(__habs2(bx(a, b))); }},
    {"make_bfloat162", [](uint16_t a, uint16_t b) { return lanes(make_bfloat162(b_(a), b_(b))); }},
    {"bfloat162bfloat162", [](uint16_t a, uint16_t) { return lanes(__bfloat162bfloat162(b_(a))); }},
    {"bfloat162_raw",
     [](uint16_t a, uint16_t b) {
       const __nv_bfloat162_raw raw = static_cast<__nv_bfloat162_raw>(bx(a, b));
       return lanes(__nv_bfloat162(raw));
     }},
};

// Two floats -> a pair.
using FloatsToPair = std::pair<uint16_t, uint16_t> (*)(float, float);
constexpr Op<FloatsToPair> kFloatsToPair[] = {
    {"floats2half2_rn", [](float a, float b) { return lanes(__floats2half2_rn(a, b)); }},
    {"float2half2_rn", [](float a, float) { return lanes(__float2half2_rn(a)); }},
    {"float22half2_rn", [](float a, float b) { return lanes(__float22half2_rn(float2{a, b})); }},
    {"floats2bfloat162_rn", [](float a, float b) { return lanes(__floats2bfloat162_rn(a, b)); }},
    {"float2bfloat162_rn", [](float a, float) { return lanes(__float2bfloat162_rn(a)); }},
    {"float22bfloat162_rn",
     [](float a, float b) { return lanes(__float22bfloat162_rn(float2{a, b})); }},
};

// A pair -> two floats.
using PairToFloats = std::pair<float, float> (*)(uint16_t, uint16_t);
constexpr Op<PairToFloats> kPairToFloats[] = {
    {"half22float2",
     [](uint16_t a, uint16_t b) {
       const float2 f = __half22float2(hx(a, b));
       return std::pair{f.x, f.y};
     }},
    {"low_high2float",
     [](uint16_t a, uint16_t b) {
       return std::pair{__low2float(hx(a, b)), __high2float(hx(a, b))};
     }},
    {"bfloat1622float2",
     [](uint16_t a, uint16_t b) {
       const float2 f = __bfloat1622float2(bx(a, b));
       return std::pair{f.x, f.y};
     }},
};

// ---- TF32
// ----------------------------------------------------------------------------------------
using F32Unary = float (*)(float);
constexpr Op<F32Unary> kTf32[] = {
    {"float_to_tf32", [](float x) { return nvcuda::wmma::__float_to_tf32(x); }},
    {"tf32_truncate", [](float x) { return mw::emu::tf32_truncate(x); }},
    {"is_tf32", [](float x) { return mw::emu::is_tf32(x) ? 1.0f : 0.0f; }},
};

}  // namespace

// ---- the C entry points
// ----------------------------------------------------------------------------
extern "C" {

int mw_test_from_f32(const char* op, const float* in, uint16_t* out, size_t n) {
  const FromF32 fn = find(kFromF32, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(in[i]);
  return 0;
}

int mw_test_from_f64(const char* op, const double* in, uint16_t* out, size_t n) {
  const FromF64 fn = find(kFromF64, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(in[i]);
  return 0;
}

int mw_test_from_i64(const char* op, const int64_t* in, uint16_t* out, size_t n) {
  const FromI64 fn = find(kFromI64, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(in[i]);
  return 0;
}

int mw_test_to_f32(const char* op, const uint16_t* in, float* out, size_t n) {
  const ToF32 fn = find(kToF32, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(in[i]);
  return 0;
}

int mw_test_to_i64(const char* op, const uint16_t* in, int64_t* out, size_t n) {
  const ToI64 fn = find(kToI64, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(in[i]);
  return 0;
}

int mw_test_unary(const char* op, const uint16_t* a, uint16_t* out, size_t n) {
  const Unary fn = find(kUnary, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(a[i]);
  return 0;
}

int mw_test_binary(const char* op, const uint16_t* a, const uint16_t* b, uint16_t* out, size_t n) {
  const Binary fn = find(kBinary, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(a[i], b[i]);
  return 0;
}

int mw_test_compare(const char* op, const uint16_t* a, const uint16_t* b, int32_t* out, size_t n) {
  const Compare fn = find(kCompare, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(a[i], b[i]);
  return 0;
}

int mw_test_ternary(const char* op, const uint16_t* a, const uint16_t* b, const uint16_t* c,
                    uint16_t* out, size_t n) {
  const Ternary fn = find(kTernary, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(a[i], b[i], c[i]);
  return 0;
}

int mw_test_pair(const char* op, const uint16_t* a, const uint16_t* b, uint16_t* out, size_t n) {
  const Pair fn = find(kPair, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) std::tie(out[2 * i], out[2 * i + 1]) = fn(a[i], b[i]);
  return 0;
}

int mw_test_floats_to_pair(const char* op, const float* a, const float* b, uint16_t* out,
                           size_t n) {
  const FloatsToPair fn = find(kFloatsToPair, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) std::tie(out[2 * i], out[2 * i + 1]) = fn(a[i], b[i]);
  return 0;
}

int mw_test_pair_to_floats(const char* op, const uint16_t* a, const uint16_t* b, float* out,
                           size_t n) {
  const PairToFloats fn = find(kPairToFloats, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) std::tie(out[2 * i], out[2 * i + 1]) = fn(a[i], b[i]);
  return 0;
}

int mw_test_tf32(const char* op, const float* in, float* out, size_t n) {
  const F32Unary fn = find(kTf32, op);
  if (fn == nullptr) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = fn(in[i]);
  return 0;
}

// c + sum_k a[k] * b[k] through mw::emu::mma_dot (unit strides).
float mw_test_mma_dot(float c, const float* a, const float* b, int k) {
  return mw::emu::mma_dot(c, a, 1, b, 1, k);
}

}  // extern "C"
