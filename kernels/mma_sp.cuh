// Sparse tensor-core MMA (PTX mma.sp, sm_80+): D (16 x 8) = A (16 x k, 2:4 / 1:2 structured
// sparse, compressed to 16 x k/2) · B (k x 8, dense) + C, float32 accumulation.
//
// Under nvcc each function is the inline `mma.sp::ordered_metadata.sync.aligned` instruction (the
// form CUTLASS uses from CUDA 12.5 on, for sm_80 and sm_90: the indices of a chunk must be in
// increasing order, which is also what the emulator checks); under g++ it is a warp collective of
// the CPU emulator (kernels/emu: the same rendezvous as WMMA's mma_sync) that rebuilds A, B and C
// from the 32 lanes' registers, computes D and scatters it back.
//
// Shapes (PTX ISA 9.7.14.6, "mma.sp with sparse matrix A"; groupID g = lane >> 2,
// threadID_in_group t = lane % 4):
//
//   mma_sp_m16n8k16_f16 / _bf16   A 16 x 16 at 2:4: every chunk of 4 consecutive k of a row holds
//                                 at most 2 nonzeros, stored compressed (16 x 8); a[0] = the two
//                                 stored values of row g, chunk t (k 4t .. 4t+3), low half first;
//                                 a[1] the same for row g + 8.  B (16 x 8): b[0] = {B[2t][g],
//                                 B[2t+1][g]}, b[1] = {B[2t+8][g], B[2t+9][g]}.
//   mma_sp_m16n8k8_tf32           A 16 x 8 at 1:2: every pair of consecutive k holds at most one
//                                 nonzero (the ISA's rule for .tf32), compressed 16 x 4; a[0] =
//                                 the stored value of row g, pair t (k 2t, 2t+1), a[1] of row
//                                 g + 8.  B (8 x 8): b[0] = B[t][g], b[1] = B[t+4][g] (float bits;
//                                 the tensor core reads the top 19 bits: convert first).
//   C, D (16 x 8): c[0] = C[g][2t], c[1] = C[g][2t+1], c[2] = C[g+8][2t], c[3] = C[g+8][2t+1].
//
// Metadata: one 32-bit register; the sparsity selector kSelector (0..3, an immediate) says which
// lane of each group of four supplies it: lane 4g + kSelector's `meta` describes rows g and
// g + 8, the other lanes' registers are not read.  Bits [4c+3 : 4c] describe chunk c (c = 0..3)
// of row g, bits [16+4c+3 : 16+4c] chunk c of row g + 8.
//   16-bit: a nibble is two 2-bit indices i0 (bits 1:0) and i1 (bits 3:2), the positions within
//           the chunk of the first and second stored value, i0 < i1 (ordered metadata; 0b0000,
//           0b0101, 0b1010, 0b1111 are invalid in every form).
//   tf32:   a nibble is 0b0100 (the stored value is the pair's first element) or 0b1110 (its
//           second): the tf32 element counted as two 16-bit halves, indices {0, 1} or {2, 3}.
//           The ISA calls every other value undefined.
// A kernel that uses the four selectors of four consecutive k-steps can hand each lane of a
// group its own metadata word with one load (sp24_tc_batched.cuh does).
//
// ldmatrix_x4_trans: the 16-bit B registers from a row-major k x n tile in shared memory, four at
// a time (PTX ldmatrix .m8n8 .x4 .trans .b16); its emulator model is a warp collective too.
//
// Emulator (numerics as kernels/emu/include/mma.h's mma_sync): the values are exact as floats
// (binary16, bfloat16; tf32 operands truncated to their top 19 bits); each element of D is C plus
// the exact products summed in double and rounded once to float -- a reference, not the
// hardware's bits.  Diagnostics: every lane of a full warp must reach the same call (divergence
// fails the launch with file:line, warp, block and thread, as WMMA's); metadata the ISA forbids
// (for 16-bit: indices not strictly increasing; for tf32: a nibble other than 0b0100 / 0b1110)
// fails the launch naming the lane, the register (meta), its bits and the row and chunk.
#pragma once

#include <cstdint>

#include "launch.cuh"

#if MW_EMULATOR
#include <mma.h>  // the emulator's: its warp-collective rendezvous, fail(), TF32 numerics

#include <cstdio>
#include <cstring>
#include <source_location>
#endif

namespace mw {

enum class SpKind { kF16 = 0, kBf16 = 1, kTf32 = 2 };

#if MW_EMULATOR

namespace emu::sp_detail {

inline float operand_value(uint32_t bits16_or_32, SpKind kind) {
  switch (kind) {
    case SpKind::kF16:
      return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16_or_32)));
    case SpKind::kBf16:
      return std::bit_cast<float>(bits16_or_32 << 16);
    default:
      return tf32_truncate(std::bit_cast<float>(bits16_or_32));
  }
}

// The operands of one lane; kA / kB registers per lane, dense k of the shape.
template <SpKind kKind, int kSelector>
struct MmaSpOperands {
  static constexpr bool kHalf = kKind != SpKind::kTf32;
  static constexpr int kK = kHalf ? 16 : 8;  // dense k
  float* d;
  const uint32_t* a;
  const uint32_t* b;
  const float* c;
  uint32_t meta;
  bool bad = false;

  static char* error_text() {
    static thread_local char text[512];
    return text;
  }
  static const char* name() {
    return kKind == SpKind::kF16    ? "mw::mma_sp_m16n8k16_f16"
           : kKind == SpKind::kBf16 ? "mw::mma_sp_m16n8k16_bf16"
                                    : "mw::mma_sp_m16n8k8_tf32";
  }

  // Run by the last lane to arrive: D = A B + C for the whole warp.
  static void run(void* const* lane_data) {
    auto lane_ops = [&](int lane) -> MmaSpOperands& {
      return *static_cast<MmaSpOperands*>(lane_data[lane]);
    };
    double a[16][kK] = {};
    bool stored[16][kK] = {};  // the positions the metadata names (pattern zeros are skipped)
    float b[kK][8], c[16][8];
    for (int lane = 0; lane < 32; ++lane) {
      const MmaSpOperands& o = lane_ops(lane);
      const int g = lane >> 2, t = lane & 3;
      const uint32_t meta = lane_ops(4 * g + kSelector).meta;
      for (int half = 0; half < 2; ++half) {  // row g, then row g + 8
        const int row = g + 8 * half;
        const unsigned nibble = (meta >> (16 * half + 4 * t)) & 0xFu;
        const int bit = 16 * half + 4 * t;
        if constexpr (kHalf) {
          const int i0 = nibble & 3, i1 = nibble >> 2;
          if (i0 >= i1) {
            std::snprintf(error_text(), 512,
                          "invalid sparsity metadata: lane %d, register meta (selector %d), bits "
                          "%d..%d = 0x%x (row %d, chunk %d: indices %d, %d): the two indices of "
                          "a 2:4 chunk must be strictly increasing",
                          4 * g + kSelector, kSelector, bit + 3, bit, nibble, row, t, i0, i1);
            for (int l = 0; l < 32; ++l) lane_ops(l).bad = true;
            return;
          }
          const uint32_t reg = o.a[half];
          a[row][4 * t + i0] = operand_value(reg & 0xFFFFu, kKind);
          a[row][4 * t + i1] = operand_value(reg >> 16, kKind);
          stored[row][4 * t + i0] = stored[row][4 * t + i1] = true;
        } else {
          if (nibble != 0x4u && nibble != 0xEu) {
            std::snprintf(error_text(), 512,
                          "invalid sparsity metadata: lane %d, register meta (selector %d), bits "
                          "%d..%d = 0x%x (row %d, pair %d): tf32 is 1:2 sparse, a nibble must be "
                          "0x4 (first element) or 0xe (second)",
                          4 * g + kSelector, kSelector, bit + 3, bit, nibble, row, t);
            for (int l = 0; l < 32; ++l) lane_ops(l).bad = true;
            return;
          }
          const int i = 2 * t + (nibble == 0xEu ? 1 : 0);
          a[row][i] = operand_value(o.a[half], kKind);
          stored[row][i] = true;
        }
      }
      if constexpr (kHalf) {
        for (int r = 0; r < 2; ++r) {
          b[2 * t + 8 * r][g] = operand_value(o.b[r] & 0xFFFFu, kKind);
          b[2 * t + 8 * r + 1][g] = operand_value(o.b[r] >> 16, kKind);
        }
      } else {
        b[t][g] = operand_value(o.b[0], kKind);
        b[t + 4][g] = operand_value(o.b[1], kKind);
      }
      c[g][2 * t] = o.c[0];
      c[g][2 * t + 1] = o.c[1];
      c[g + 8][2 * t] = o.c[2];
      c[g + 8][2 * t + 1] = o.c[3];
    }
    float d[16][8];
    for (int r = 0; r < 16; ++r) {
      for (int col = 0; col < 8; ++col) {
        double sum = c[r][col];
        // Exact products of the stored values only: the zeros of the pattern are not
        // multiplied (an infinite or NaN B there does not reach D), a stored zero is.
        for (int i = 0; i < kK; ++i) {
          if (stored[r][i]) sum += a[r][i] * static_cast<double>(b[i][col]);
        }
        d[r][col] = static_cast<float>(sum);
      }
    }
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane >> 2, t = lane & 3;
      float* out = lane_ops(lane).d;
      out[0] = d[g][2 * t];
      out[1] = d[g][2 * t + 1];
      out[2] = d[g + 8][2 * t];
      out[3] = d[g + 8][2 * t + 1];
    }
  }
};

template <SpKind kKind, int kSelector>
inline void mma_sp(float (&d)[4], const uint32_t* a, const uint32_t* b, const float (&c)[4],
                   uint32_t meta, const std::source_location& where) {
  using Operands = MmaSpOperands<kKind, kSelector>;
  float out[4];
  Operands operands{out, a, b, c, meta};
  const WarpCollective collective{
      {0, 0, 0}, {nullptr, nullptr, nullptr}, &operands, &Operands::run};
  wmma_detail::rendezvous(Operands::name(), collective, where);
  if (operands.bad) {
    wmma_detail::fail(cudaErrorLaunchFailure, where, "%s: %s [warp %u]", Operands::name(),
                      Operands::error_text(), wmma_detail::linear_thread() / 32);
  }
  for (int i = 0; i < 4; ++i) d[i] = out[i];  // d may alias c
}

// ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16: lane 8i + r names row r of 8 x 8 matrix i
// (16 bytes of shared memory, 16-byte aligned); lane l receives in register i the elements
// (2(l % 4), l / 4) and (2(l % 4) + 1, l / 4) of matrix i, low half first (the transpose of the
// non-transposed form's (l / 4, 2(l % 4) .. +1)).
struct LdmatrixOperands {
  uint32_t* out;
  const void* row;

  static void run(void* const* lane_data) {
    auto ops = [&](int lane) -> LdmatrixOperands& {
      return *static_cast<LdmatrixOperands*>(lane_data[lane]);
    };
    uint16_t m[4][8][8];
    for (int lane = 0; lane < 32; ++lane) {
      std::memcpy(m[lane / 8][lane % 8], ops(lane).row, 16);
    }
    for (int lane = 0; lane < 32; ++lane) {
      const int c = lane / 4, r = 2 * (lane % 4);
      for (int i = 0; i < 4; ++i) {
        ops(lane).out[i] = uint32_t(m[i][r][c]) | uint32_t(m[i][r + 1][c]) << 16;
      }
    }
  }
};

inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row,
                              const std::source_location& where) {
  constexpr const char* kName = "mw::ldmatrix_x4_trans";
  // Each lane's own row address must be 16-byte aligned (a GPU faults otherwise); checked before
  // the rendezvous so that the message names the lane.
  if (reinterpret_cast<uintptr_t>(row) % 16 != 0) {
    wmma_detail::fail(cudaErrorMisalignedAddress, where,
                      "%s: lane %u: row address %p is not 16-byte aligned (address %% 16 = %zu)",
                      kName, wmma_detail::linear_thread() % 32, row,
                      static_cast<size_t>(reinterpret_cast<uintptr_t>(row) % 16));
  }
  uint32_t out[4];
  LdmatrixOperands operands{out, row};
  const WarpCollective collective{
      {0, 0, 0}, {nullptr, nullptr, nullptr}, &operands, &LdmatrixOperands::run};
  wmma_detail::rendezvous(kName, collective, where);
  for (int i = 0; i < 4; ++i) r[i] = out[i];
}

}  // namespace emu::sp_detail

#define MW_SP_WHERE , std::source_location where = std::source_location::current()

#else
#define MW_SP_WHERE
#endif

template <int kSelector>
__device__ __forceinline__ void mma_sp_m16n8k16_f16(float (&d)[4], const uint32_t (&a)[2],
                                                    const uint32_t (&b)[2], const float (&c)[4],
                                                    uint32_t meta MW_SP_WHERE) {
  static_assert(kSelector >= 0 && kSelector <= 3, "m16n8k16: sparsity selector 0..3");
#if MW_EMULATOR
  emu::sp_detail::mma_sp<SpKind::kF16, kSelector>(d, a, b, c, meta, where);
#else
  asm volatile(
      "mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0,%1,%2,%3}, {%4,%5}, {%6,%7}, {%8,%9,%10,%11}, %12, %13;\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]),
        "r"(meta), "n"(kSelector));
#endif
}

template <int kSelector>
__device__ __forceinline__ void mma_sp_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[2],
                                                     const uint32_t (&b)[2], const float (&c)[4],
                                                     uint32_t meta MW_SP_WHERE) {
  static_assert(kSelector >= 0 && kSelector <= 3, "m16n8k16: sparsity selector 0..3");
#if MW_EMULATOR
  emu::sp_detail::mma_sp<SpKind::kBf16, kSelector>(d, a, b, c, meta, where);
#else
  asm volatile(
      "mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0,%1,%2,%3}, {%4,%5}, {%6,%7}, {%8,%9,%10,%11}, %12, %13;\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]),
        "r"(meta), "n"(kSelector));
#endif
}

template <int kSelector>
__device__ __forceinline__ void mma_sp_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[2],
                                                    const uint32_t (&b)[2], const float (&c)[4],
                                                    uint32_t meta MW_SP_WHERE) {
  static_assert(kSelector >= 0 && kSelector <= 3, "m16n8k8: sparsity selector 0..3");
#if MW_EMULATOR
  emu::sp_detail::mma_sp<SpKind::kTf32, kSelector>(d, a, b, c, meta, where);
#else
  asm volatile(
      "mma.sp::ordered_metadata.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0,%1,%2,%3}, {%4,%5}, {%6,%7}, {%8,%9,%10,%11}, %12, %13;\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]),
        "r"(meta), "n"(kSelector));
#endif
}

// Four 8 x 8 matrices of 16-bit elements from shared memory, transposed (ldmatrix .x4 .trans):
// lane 8i + r passes the address of row r of matrix i (16 bytes, 16-byte aligned); register i of
// lane l receives column l / 4, rows 2(l % 4) and 2(l % 4) + 1 of matrix i, low half first -- for
// a row-major k x n tile of B that is the m16n8k16 B register {B[2t][g], B[2t+1][g]}.  The
// emulator's model is a warp collective (every lane of a full warp, same call site).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row MW_SP_WHERE) {
#if MW_EMULATOR
  emu::sp_detail::ldmatrix_x4_trans(r, row, where);
#else
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
#endif
}

#undef MW_SP_WHERE

}  // namespace mw
