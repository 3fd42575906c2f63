// TF32 numerics of the emulator: nvcuda::wmma::__float_to_tf32 and what a tensor core does
// with its operands. The emulator's <mma.h> includes this header; it also stands alone.
//
// TF32 keeps float's sign and 8-bit exponent and the top 10 fraction bits: the top 19 bits of a
// float (PTX ISA, "Alternate Floating-Point Data Formats": same range as .f32, >= 10 bits of
// precision, internal layout implementation defined). Two ways a float becomes TF32:
//
//   * nvcuda::wmma::__float_to_tf32(x) is PTX `cvt.rna.tf32.f32` (CUDA's crt/mma.h): round to
//     nearest, ties AWAY from zero (PTX ISA, cvt, "Floating Point Notes": ".rna mantissa LSB
//     rounds to nearest, ties away from zero"). The result is a float whose low 13 bits are zero.
//     Overflow gives +-infinity (the carry of 0x7F7FF000 and above), infinities stay, subnormals
//     round the same way (TF32 has float's subnormal range with a 2^-136 quantum).
//     NaN: the PTX ISA does not say. A third-party measurement (reported, not verified here: no
//     GPU) says .rna rounds a NaN's bits like any others, the carry saturating at 0x7FFFE000;
//     this emulator does the same, except that a NaN whose payload lies only in the 13 dropped
//     bits (a signalling NaN, which arithmetic never produces) stays a NaN (quiet bit set)
//     instead of becoming infinity: a NaN is never turned into a number.
//   * A float given to mma_sync without conversion: the tensor core reads only the top 19 bits,
//     i.e. truncates toward zero (tf32_truncate). NaNs stay NaNs here too (same rule).
//
// Products: the product of two TF32 values (11-bit significands) has at most 22 significant
// bits, of two bfloat16 at most 16, of two binary16 at most 22, so each product is exact in
// float32 unless it overflows or underflows float's range (impossible for binary16 operands;
// possible for TF32/bfloat16 near float's extremes), and always exact in double.
// Accumulation: within one mma the order and rounding of the sum of the products and the
// accumulator are unspecified; measurements of real tensor cores show truncation and alignment
// to the largest exponent rather than IEEE round-to-nearest per addition. mma_dot below adds the
// exact products in double and rounds once to float: a reference, not the hardware's bits, so
// tests compare tensor-core results with a tolerance (a few units of 2^-23 times sum |a_k b_k|
// per mma, plus the TF32 input rounding, 2^-11 relative per operand).
#pragma once

#if defined(__CUDACC__)
#error "kernels/emu/include/mw_emu_tf32.h is the emulator's; nvcc uses CUDA's <mma.h>"
#endif

#include <bit>
#include <cstddef>
#include <cstdint>

#ifndef __host__
#define __host__
#endif
#ifndef __device__
#define __device__
#endif

namespace mw::emu {

inline constexpr uint32_t kTf32Mask = 0xFFFFE000u;  // sign, exponent and 10 fraction bits
inline constexpr uint32_t kTf32DroppedBits = ~kTf32Mask;
inline constexpr uint32_t kFloatQuietBit = 0x00400000u;

constexpr bool float_bits_are_nan(uint32_t bits) { return (bits & 0x7FFFFFFFu) > 0x7F800000u; }

// Keeps a NaN a NaN after its low bits were changed: sets the quiet bit if they became infinity.
constexpr uint32_t keep_nan(uint32_t input, uint32_t result) {
  return float_bits_are_nan(input) && !float_bits_are_nan(result) ? result | kFloatQuietBit
                                                                  : result;
}

// What the tensor core uses of a float operand that was not converted: its top 19 bits.
constexpr float tf32_truncate(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  return std::bit_cast<float>(keep_nan(bits, bits & kTf32Mask));
}

// PTX cvt.rna.tf32.f32: round to nearest, ties away from zero, low 13 bits zero. Adding half a
// TF32 ulp (0x1000) to the magnitude and truncating rounds ties away; a carry out of the
// fraction increments the exponent (to infinity for the largest floats), which is right.
constexpr float tf32_round_nearest_away(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t sign = bits & 0x80000000u;
  uint32_t magnitude = ((bits & 0x7FFFFFFFu) + 0x1000u) & kTf32Mask;
  if (magnitude > 0x7FFFE000u) magnitude = 0x7FFFE000u;  // a NaN's carry saturates
  return std::bit_cast<float>(keep_nan(bits, sign | magnitude));
}

// True when x is a TF32 value (its low 13 bits are zero).
constexpr bool is_tf32(float x) { return (std::bit_cast<uint32_t>(x) & kTf32DroppedBits) == 0; }

// The exact product of two floats (24-bit significands: 48 bits fit double's 53, and double's
// exponent range holds any product of floats).
constexpr double exact_product(float a, float b) {
  return static_cast<double>(a) * static_cast<double>(b);
}

// c + sum_k a[k * a_stride] * b[k * b_stride] with exact products, summed in double in order k,
// rounded once to float: the reference for one row-times-column of a tensor-core mma whose
// operands were already reduced to TF32, bfloat16 or binary16 values (as floats). Not the
// hardware's bits (see above).
constexpr float mma_dot(float c, const float* a, std::ptrdiff_t a_stride, const float* b,
                        std::ptrdiff_t b_stride, int k) {
  double sum = c;
  for (int i = 0; i < k; ++i) sum += exact_product(a[i * a_stride], b[i * b_stride]);
  return static_cast<float>(sum);
}

}  // namespace mw::emu

namespace nvcuda::wmma {
// CUDA declares it in <mma.h> (crt/mma.h), device only, for sm_80 and later.
__device__ inline float __float_to_tf32(float in) { return mw::emu::tf32_round_nearest_away(in); }
}  // namespace nvcuda::wmma
