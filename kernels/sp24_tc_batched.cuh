// 2:4 structured-sparse batched products on sparse tensor cores (mma.sp, kernels/mma_sp.cuh):
// C[b] (m x n, float32) = A[b] (m x k, structured sparse along k) · B[b] (k x n, dense).
//
// In a layer: M[b] (K x P) = U[b] (K x C) · V[b] (C x P), U pruned so that along C (the reduction)
// the pattern of mma.sp holds: m = K, n = P, k = C.  MAGMA's four layers:
//
//   sp24_tc_device<P, Cfg, VEC>   one block: the kM x kN tile of C[b] at (row0, col0), all of k
//   sp24_tc_kernel<P, Cfg, VEC>   __global__: b = blockIdx.z, row block y, column block x
//   sp24_tc_launch<P, Cfg, VEC>   host: grid (ceil(n / kN), ceil(m / kM), batch)
//   sp24_tc_batched<P>            host: the tile (64 or 128 rows, by m), the copy width of B
//                                 (16-byte vectors or elements)
//
// Precisions (TcPrecision of gemm_tc.cuh; fp64 has no sparse tensor core):
//   kFp16, kBf16   2:4 (2 nonzeros in every 4 consecutive k), mma.sp m16n8k16, operands 16-bit
//   kTf32          1:2 (1 nonzero in every 2 consecutive k: the ISA's rule for .tf32, written
//                  in the 2:4 metadata as index pairs {0,1} / {2,3}), mma.sp m16n8k8, operands
//                  float in memory rounded to TF32 (__float_to_tf32) after their load
//   kTf32x3        the tf32 pattern, three mma.sp per step on hi/lo splits of A and B
//                  (a = hi + lo, hi = tf32(a), lo = tf32(a - hi)): acc += a_hi b_lo + a_lo b_hi
//                  + a_hi b_hi, the small terms first (as gemm_tc.cuh's 3xTF32): float32 level.
//
// THE FORMAT (magma_wino/sparse24.py builds it).  kK = the dense k of one pipeline stage, the
// "k-step": 64 for 16-bit (4 mma.sp m16n8k16), 32 for tf32 (4 mma.sp m16n8k8).  Let
// kp = k rounded up to kK, kc = kp / 2, tiles = ceil(m / 16), steps = kp / kK.
//   values  (batch, m, kc), the operand type (__half, __nv_bfloat16 as its bits, float),
//           row-major: row r holds the stored values of A[b][r] in k order, two per chunk of 4
//           (16-bit; a chunk with fewer nonzeros stores zeros at unused positions) or one per
//           pair (tf32).  Columns for k >= k (padding) are zero.
//   meta    uint32 (batch, tiles, steps, 32), in the order the kernel loads it: word
//           [b][t][s][4g + q] is the mma.sp metadata register (mma_sp.cuh) of rows 16t + g and
//           16t + g + 8 for sub-step q (dense k [s*kK + q*kI, s*kK + (q+1)*kI), kI = 16 or 8):
//           bits [4c+3 : 4c] chunk c (of 4 k, or pair c for tf32) of row 16t + g, bits
//           [16+4c+3 : 16+4c] of row 16t + g + 8.  A nibble holds the positions i0 < i1 of the
//           chunk's two stored values (bits 1:0, 3:2), for tf32 0x4 (first of the pair) or 0xE
//           (second).  Lane 4g + q loads word 4g + q and the q-th mma.sp of a stage uses sparsity
//           selector q: every lane's register is the one the instruction reads at some sub-step,
//           so the metadata of a 16 x kK tile is one 32-bit load per lane.  Rows >= m (the last
//           tile's padding) carry a valid code (0x4 nibbles) and zero values.
//   B       (batch, k, n) operand type, C (batch, m, n) float32, row-major, C fully written.
// Invalid metadata is undefined behaviour on a GPU (wrong numbers, never an out-of-bounds
// access: the kernel's addresses do not depend on it); the emulator fails the launch naming the
// lane and register.
//
// Block (Sp24TcConfig): a 64 x 64 tile of C, 4 warps as 2 x 2, each warp 32 x 32 = 2 m16 tiles x
// 4 n8 tiles (32 float accumulators per thread); for m >= 128 a 128 x 64 tile of four 64 x 32
// warps (4 x 4 tiles, 64 accumulators) in 2 stages.  Mainloop: kStages stages (3; wide: 2) of
// (values kM x kK/2, metadata kM / 16 tiles x 32 words, B kK x 64) in shared memory by cp.async
// (__pipeline_memcpy_async, one commit per stage even when empty, as gemm_tc.cuh); the values and
// metadata in 16-byte copies (the C entry requires 16-byte aligned arrays; kc is a multiple of
// 32 elements), B in 16-byte copies when every row is 16-byte aligned, else by element (4-byte
// cp.async for float, plain 2-byte loads for 16-bit, as gemm_tc.cuh).  Edges: rows >= m and
// columns >= n of a tile zero-filled by the copies (metadata of tiles >= tiles written as 0x4
// nibbles), k beyond k: B rows zero-filled and values zero by the format.  Fragments: A values,
// metadata and tf32 B by 32-bit shared loads; 16-bit B (a register pairs two k rows) by
// ldmatrix .x4 .trans, two n8 tiles per instruction (mma_sp.cuh; the emulator models it; rows
// of sB are 16-byte aligned: 144-byte stride).  Epilogue: guarded stores straight from the
// accumulators (C[g][2t], C[g][2t+1], ...), never out of bounds.
// Bank conflicts (rows padded): A values are read as 8 rows x 4 consecutive words, so the row
// stride in words must spread 8 rows over the 8 four-bank groups: 16-bit kK/2 + 8 = 40 halves =
// 20 words, tf32 16 + 4 = 20 floats (20g mod 32 = 0, 20, 8, 28, 16, 4, 24, 12); B is read as
// 4 k rows x 8 consecutive columns (tf32): the stride 64 + 8 = 72 words (8 mod 32) puts rows
// 0..3 on distinct bank groups; ldmatrix (16-bit) reads 8 rows of 16 bytes per phase, which are
// conflict-free when the stride in 16-byte units is odd: 72 halves = 9 units.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_pipeline.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "gemm_tc.cuh"
#include "launch.cuh"
#include "mma_sp.cuh"

namespace mw {

// What a precision feeds the sparse tensor core: the instruction's dense k, the k of a stage.
template <TcPrecision P>
struct Sp24Operand {
  static_assert(P != TcPrecision::kFp64, "no sparse tensor core for float64");
  using Element = TcElement<P>;
  static constexpr bool kHalf = sizeof(Element) == 2;
  static constexpr int kInstK = kHalf ? 16 : 8;  // dense k of one mma.sp
  static constexpr int kStepK = 4 * kInstK;      // dense k of a stage: the four selectors
};

// The tile configuration (a named type, CUTLASS habit).  Sizes in elements of the operand type:
// a M_ x 64 tile of C per block, warps of WarpM_ x 32.
template <int ElementBytes_, int Stages_, int M_, int WarpM_>
struct Sp24TcConfig {
  static constexpr int kElementBytes = ElementBytes_;
  static constexpr int kM = M_, kN = 64;  // C tile of a block
  static constexpr int kWarpM = WarpM_, kWarpN = 32;
  static constexpr int kWarpsM = kM / kWarpM, kWarpsN = kN / kWarpN;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;
  static constexpr int kStages = Stages_;
  static constexpr int kK = kElementBytes == 2 ? 64 : 32;  // dense k of a stage
  static constexpr int kKc = kK / 2;                       // stored values per row and stage
  static constexpr int kPadA = kElementBytes == 2 ? 8 : 4, kPadB = 8;
  static constexpr int kLdA = kKc + kPadA;  // sA [kM][kLdA]
  static constexpr int kLdB = kN + kPadB;   // sB [kK][kLdB]
  static constexpr int kTiles = kM / 16;    // metadata tiles of a block: sE [kTiles][32]
  static constexpr int kBytesA = kM * kLdA * kElementBytes;
  static constexpr int kBytesE = kTiles * 32 * 4;
  static constexpr int kBytesB = kK * kLdB * kElementBytes;
  static constexpr int kStageBytes = kBytesA + kBytesE + kBytesB;
  static constexpr int kVec16 = 16 / kElementBytes;
  static constexpr size_t shared_bytes() { return size_t(kStages) * kStageBytes; }
  static_assert(kBytesA % 16 == 0 && kBytesE % 16 == 0 && kBytesB % 16 == 0,
                "16-byte copies stay aligned in every part of a stage");
  static_assert(kStages >= 2, "a pipeline has at least two stages");
  static_assert(kM % kWarpM == 0 && kWarpM % 16 == 0, "warps own whole m16 tiles of the block");
  static_assert(kTiles * 8 <= kThreads, "one thread per 16-byte metadata copy of a stage");
};

// 16-bit (fp16, bf16) and float (tf32, tf32x3): 3 stages of 14.5 KiB each (43.5 KiB, no opt-in).
using Sp24Tc16_64x64x64_32x32_s3 = Sp24TcConfig<2, 3, 64, 32>;
using Sp24Tc32_64x64x32_32x32_s3 = Sp24TcConfig<4, 3, 64, 32>;
// The wide tiles, for m >= 128 (K of a layer): 128 x 64 of C, four warps of 64 x 32.  Each B
// fragment (the dense operand, V: the same bytes per stage as the narrow tile) then feeds four
// m16 tiles instead of two, and each A fragment four n8 tiles as before, so the fragment loads,
// the tf32 rounding of B and the stage's B copies are spread over twice the mma.sp (the sm_90
// SASS: kernel report).  64 accumulators per thread.  2 stages of 20 KiB (40 KiB, no opt-in):
// a stage is 64 mma.sp per warp (tf32x3: 192), enough work to cover the next stage's copies.
using Sp24Tc16_128x64x64_64x32_s2 = Sp24TcConfig<2, 2, 128, 64>;
using Sp24Tc32_128x64x32_64x32_s2 = Sp24TcConfig<4, 2, 128, 64>;

// The configuration of a precision: the wide tile when m (K) fills it.
template <TcPrecision P, bool Wide>
using Sp24TcConfigFor =
    std::conditional_t<Wide,
                       std::conditional_t<Sp24Operand<P>::kHalf, Sp24Tc16_128x64x64_64x32_s2,
                                          Sp24Tc32_128x64x32_64x32_s2>,
                       std::conditional_t<Sp24Operand<P>::kHalf, Sp24Tc16_64x64x64_32x32_s3,
                                          Sp24Tc32_64x64x32_32x32_s3>>;
// The smallest m that takes the wide tile (a narrower K would leave half of its rows empty).
constexpr int kSp24WideMinRows = 128;

// Metadata words of the format (see the top of the file): batch x tiles x steps x 32.
inline long long sp24_meta_words(bool half, long long batch, long long m, long long k) {
  const long long step = half ? 64 : 32;
  return batch * ((m + 15) / 16) * ((k + step - 1) / step) * 32;
}
// Stored values per row: k rounded up to the k-step, halved.
inline long long sp24_value_cols(bool half, long long k) {
  const long long step = half ? 64 : 32;
  return (k + step - 1) / step * step / 2;
}

namespace sp_detail {

// A valid metadata word (every chunk: positions 0, 1; every tf32 pair: its first element) for
// the tiles below the matrix's last row: their values are zero, the code only has to be legal.
constexpr uint32_t kPaddingMeta = 0x44444444u;

// Issues the copies of stage `kt`: values rows [row0, row0 + kM) x stored columns
// [kt * kKc, +kKc), the metadata of the block's kTiles tiles at step kt, B rows [kt * kK, +kK)
// x columns [col0, col0 + kN).
template <typename Cfg, int VEC, typename E>
__device__ __forceinline__ void load_stage(unsigned char* stage, const E* __restrict__ values,
                                           const uint32_t* __restrict__ meta,
                                           const E* __restrict__ B, int m, int n, int k, int kc,
                                           int tiles, int steps, int row0, int col0, int kt) {
  E* sA = reinterpret_cast<E*>(stage);
  uint32_t* sE = reinterpret_cast<uint32_t*>(stage + Cfg::kBytesA);
  E* sB = reinterpret_cast<E*>(stage + Cfg::kBytesA + Cfg::kBytesE);
  tc_detail::stage_tile<Cfg::kM, Cfg::kKc, Cfg::kLdA, Cfg::kVec16, Cfg::kThreads>(
      sA, values, m, kc, row0, kt * Cfg::kKc);
  // Metadata: kTiles x 32 words = kTiles x 8 copies of 16 bytes, by the first threads.
  const int e = static_cast<int>(threadIdx.x);
  if (e < Cfg::kTiles * 8) {
    const int tile = e / 8, part = e % 8;
    const int gt = row0 / 16 + tile;
    uint32_t* dst = sE + tile * 32 + part * 4;
    if (gt < tiles) {
      tc_detail::cp_async_zfill(
          dst, meta + (static_cast<long long>(gt) * steps + kt) * 32 + part * 4, 16, true);
    } else {
      // Read only after the barriers that order this stage's copies (as the plain 16-bit loads).
      for (int i = 0; i < 4; ++i) dst[i] = kPaddingMeta;
    }
  }
  tc_detail::stage_tile<Cfg::kK, Cfg::kN, Cfg::kLdB, VEC, Cfg::kThreads>(sB, B, k, n, kt * Cfg::kK,
                                                                         col0);
}

__device__ __forceinline__ uint32_t bits_of(float x) { return __float_as_uint(x); }
__device__ __forceinline__ uint32_t bits_of(__half x) { return __half_as_ushort(x); }
__device__ __forceinline__ uint32_t bits_of(__nv_bfloat16 x) { return __bfloat16_as_ushort(x); }

// The 32-bit word at p (4-byte aligned shared memory).
template <typename E>
__device__ __forceinline__ uint32_t load_word(const E* p) {
#if MW_EMULATOR
  uint32_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
#else
  return *reinterpret_cast<const uint32_t*>(p);
#endif
}

__device__ __forceinline__ float tf32_round(float x) { return ::nvcuda::wmma::__float_to_tf32(x); }

// One mma.sp of the precision with selector Q on (a, b) into acc.
template <TcPrecision P, int Q>
__device__ __forceinline__ void mma(float (&acc)[4], const uint32_t (&a)[2], const uint32_t (&b)[2],
                                    uint32_t meta) {
  if constexpr (P == TcPrecision::kFp16) {
    mma_sp_m16n8k16_f16<Q>(acc, a, b, acc, meta);
  } else if constexpr (P == TcPrecision::kBf16) {
    mma_sp_m16n8k16_bf16<Q>(acc, a, b, acc, meta);
  } else {
    mma_sp_m16n8k8_tf32<Q>(acc, a, b, acc, meta);
  }
}

// hi = tf32(x), lo = tf32(x - hi), on the float bits of a register pair (x - hi is exact).
__device__ __forceinline__ void split_tf32(const uint32_t (&x)[2], uint32_t (&hi)[2],
                                           uint32_t (&lo)[2]) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float v = __uint_as_float(x[i]);
    const float h = tf32_round(v);
    hi[i] = __float_as_uint(h);
    lo[i] = __float_as_uint(tf32_round(v - h));
  }
}

// Sub-step Q (selector Q) of a stage: the warp's kFragsM x kFragsN mma.sp over dense k
// [Q * kInstK, (Q + 1) * kInstK) of the stage.
template <TcPrecision P, typename Cfg, int Q>
__device__ __forceinline__ void mac_sub_step(const unsigned char* stage, int warp_m, int warp_n,
                                             const uint32_t (&meta)[Cfg::kFragsM],
                                             float (&acc)[Cfg::kFragsM][Cfg::kFragsN][4]) {
  using E = TcElement<P>;
  constexpr bool kHalf = Sp24Operand<P>::kHalf;
  constexpr int kInstK = Sp24Operand<P>::kInstK;
  const E* sA = reinterpret_cast<const E*>(stage);
  const E* sB = reinterpret_cast<const E*>(stage + Cfg::kBytesA + Cfg::kBytesE);
  const int lane = static_cast<int>(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
  uint32_t a[Cfg::kFragsM][2], b[Cfg::kFragsN][2];
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; ++i) {
    const int row = warp_m * Cfg::kWarpM + i * 16 + g;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const E* p = sA + (row + 8 * h) * Cfg::kLdA + Q * (kInstK / 2);
      if constexpr (kHalf) {
        a[i][h] = load_word(p + 2 * t);  // the two stored values of a chunk: one 32-bit LDS
      } else {
        a[i][h] = bits_of(p[t]);
      }
    }
  }
  if constexpr (kHalf) {
    // Two n8 tiles per ldmatrix .x4 .trans: lane 8i + r names row r of matrix i = (k rows
    // 8 (i & 1) .. +7 of the sub-step, n tile j + (i >> 1)); registers {b[j][0], b[j][1],
    // b[j+1][0], b[j+1][1]} (a B register pairs two k rows: one instruction instead of four
    // 16-bit loads and two permutes per tile).
    static_assert(Cfg::kFragsN % 2 == 0, "n tiles in pairs");
    const int i = lane >> 3, r = lane & 7;
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; j += 2) {
      uint32_t x[4];
      ldmatrix_x4_trans(x, sB + (Q * kInstK + 8 * (i & 1) + r) * Cfg::kLdB + warp_n * Cfg::kWarpN +
                               (j + (i >> 1)) * 8);
      b[j][0] = x[0];
      b[j][1] = x[1];
      b[j + 1][0] = x[2];
      b[j + 1][1] = x[3];
    }
  } else {
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; ++j) {
      const E* p = sB + Q * kInstK * Cfg::kLdB + warp_n * Cfg::kWarpN + j * 8 + g;
      b[j][0] = bits_of(p[t * Cfg::kLdB]);
      b[j][1] = bits_of(p[(t + 4) * Cfg::kLdB]);
    }
  }
  if constexpr (P == TcPrecision::kTf32x3) {
    uint32_t a_hi[Cfg::kFragsM][2], a_lo[Cfg::kFragsM][2];
    uint32_t b_hi[Cfg::kFragsN][2], b_lo[Cfg::kFragsN][2];
#pragma unroll
    for (int i = 0; i < Cfg::kFragsM; ++i) split_tf32(a[i], a_hi[i], a_lo[i]);
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; ++j) split_tf32(b[j], b_hi[j], b_lo[j]);
#pragma unroll
    for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
      for (int j = 0; j < Cfg::kFragsN; ++j) {
        mma<P, Q>(acc[i][j], a_hi[i], b_lo[j], meta[i]);  // small terms first
        mma<P, Q>(acc[i][j], a_lo[i], b_hi[j], meta[i]);
        mma<P, Q>(acc[i][j], a_hi[i], b_hi[j], meta[i]);
      }
    }
  } else {
    if constexpr (P == TcPrecision::kTf32) {
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; ++i) {
        a[i][0] = bits_of(tf32_round(__uint_as_float(a[i][0])));
        a[i][1] = bits_of(tf32_round(__uint_as_float(a[i][1])));
      }
#pragma unroll
      for (int j = 0; j < Cfg::kFragsN; ++j) {
        b[j][0] = bits_of(tf32_round(__uint_as_float(b[j][0])));
        b[j][1] = bits_of(tf32_round(__uint_as_float(b[j][1])));
      }
    }
#pragma unroll
    for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
      for (int j = 0; j < Cfg::kFragsN; ++j) mma<P, Q>(acc[i][j], a[i], b[j], meta[i]);
    }
  }
}

// acc += the stage's A (values + metadata) · B: the four sub-steps, selectors 0 .. 3.
template <TcPrecision P, typename Cfg>
__device__ __forceinline__ void mac_stage(const unsigned char* stage, int warp_m, int warp_n,
                                          float (&acc)[Cfg::kFragsM][Cfg::kFragsN][4]) {
  const uint32_t* sE = reinterpret_cast<const uint32_t*>(stage + Cfg::kBytesA);
  const int lane = static_cast<int>(threadIdx.x) & 31;
  uint32_t meta[Cfg::kFragsM];  // one 32-bit load per m16 tile and stage
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; ++i) meta[i] = sE[(warp_m * Cfg::kFragsM + i) * 32 + lane];
  mac_sub_step<P, Cfg, 0>(stage, warp_m, warp_n, meta, acc);
  mac_sub_step<P, Cfg, 1>(stage, warp_m, warp_n, meta, acc);
  mac_sub_step<P, Cfg, 2>(stage, warp_m, warp_n, meta, acc);
  mac_sub_step<P, Cfg, 3>(stage, warp_m, warp_n, meta, acc);
}

}  // namespace sp_detail

// The kM x kN tile of C at (row0, col0), over all k.
template <TcPrecision P, typename Cfg, int VEC>
__device__ __forceinline__ void sp24_tc_device(int m, int n, int k, const TcElement<P>* values,
                                               const uint32_t* __restrict__ meta,
                                               const TcElement<P>* __restrict__ B,
                                               float* __restrict__ C, unsigned char* smem, int row0,
                                               int col0) {
  using namespace sp_detail;
  static_assert(Cfg::kElementBytes == sizeof(TcElement<P>) && Cfg::kK == Sp24Operand<P>::kStepK,
                "the configuration is for this precision");
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int steps = (k + Cfg::kK - 1) / Cfg::kK;
  const int kc = steps * Cfg::kKc;
  const int tiles = (m + 15) / 16;

  float acc[Cfg::kFragsM][Cfg::kFragsN][4];
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; ++j) {
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;
    }
  }

  // Prologue: stages 0 .. kStages - 2, one group each (committed even when empty).
#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (s < steps)
      load_stage<Cfg, VEC>(smem + s * Cfg::kStageBytes, values, meta, B, m, n, k, kc, tiles, steps,
                           row0, col0, s);
    __pipeline_commit();
  }
  // Mainloop: issue step t + kStages - 1 into the stage read in iteration t - 1, then wait for
  // step t and multiply it.
  for (int t = 0; t < steps; ++t) {
    const int next = t + Cfg::kStages - 1;
    if (next < steps)
      load_stage<Cfg, VEC>(smem + (next % Cfg::kStages) * Cfg::kStageBytes, values, meta, B, m, n,
                           k, kc, tiles, steps, row0, col0, next);
    __pipeline_commit();                      // every iteration, even with nothing issued
    __pipeline_wait_prior(Cfg::kStages - 1);  // this thread's copies of step t have landed
    __syncthreads();                          // ... and every other thread's
    mac_stage<P, Cfg>(smem + (t % Cfg::kStages) * Cfg::kStageBytes, warp_m, warp_n, acc);
    __syncthreads();  // the stage may be refilled next iteration
  }
  __pipeline_wait_prior(0);  // nothing in flight when the block exits

  // Epilogue: guarded stores from the accumulator layout (C[g][2t], C[g][2t+1], C[g+8][..]).
  const int lane = static_cast<int>(threadIdx.x) & 31, g = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; ++j) {
      const int col = col0 + warp_n * Cfg::kWarpN + j * 8 + 2 * t4;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = row0 + warp_m * Cfg::kWarpM + i * 16 + g + 8 * h;
        if (row >= m) continue;
        float* out = C + static_cast<long long>(row) * n;
        if (col < n) out[col] = acc[i][j][2 * h];
        if (col + 1 < n) out[col + 1] = acc[i][j][2 * h + 1];
      }
    }
  }
}

// Resident blocks per SM promised to ptxas (as gemm_tc.cuh's): two blocks of 128 threads leave
// up to 255 registers per thread (43.5 / 40 KiB of shared memory per block: 5 fit on sm_90, 3-4
// on sm_80).
constexpr int kSp24TcMinBlocks = 2;

template <TcPrecision P, typename Cfg, int VEC>
__global__ void __launch_bounds__(Cfg::kThreads, kSp24TcMinBlocks)
    sp24_tc_kernel(int m, int n, int k, const TcElement<P>* __restrict__ values,
                   long long stride_values, const uint32_t* __restrict__ meta,
                   long long stride_meta, const TcElement<P>* __restrict__ B, long long stride_b,
                   float* __restrict__ C, long long stride_c) {
  MW_DYNAMIC_SHARED(unsigned char, smem);
  const long long b = blockIdx.z;
  sp24_tc_device<P, Cfg, VEC>(m, n, k, values + b * stride_values, meta + b * stride_meta,
                              B + b * stride_b, C + b * stride_c, smem,
                              static_cast<int>(blockIdx.y) * Cfg::kM,
                              static_cast<int>(blockIdx.x) * Cfg::kN);
}

// Grid limits of CUDA: y and z at most 65535 (the C entry checks batch and m against them).
constexpr int kSp24TcMaxGridYZ = 65535;

template <TcPrecision P, typename Cfg, int VEC>
cudaError_t sp24_tc_launch(int batch, int m, int n, int k, const TcElement<P>* values,
                           const uint32_t* meta, const TcElement<P>* B, float* C,
                           cudaStream_t stream) {
  const bool half = Sp24Operand<P>::kHalf;
  const long long stride_values = static_cast<long long>(m) * sp24_value_cols(half, k);
  const long long stride_meta = sp24_meta_words(half, 1, m, k);
  const dim3 grid((n + Cfg::kN - 1) / Cfg::kN, (m + Cfg::kM - 1) / Cfg::kM, batch);
  return launch(sp24_tc_kernel<P, Cfg, VEC>, grid, dim3(Cfg::kThreads), Cfg::shared_bytes(), stream,
                m, n, k, values, stride_values, meta, stride_meta, B, static_cast<long long>(k) * n,
                C, static_cast<long long>(m) * n);
}

// The copy width of B for one configuration: 16-byte copies when every row of B is 16-byte
// aligned, else by element.  values and meta must be 16-byte aligned (the C entry checks).
template <TcPrecision P, typename Cfg>
cudaError_t sp24_tc_batched_config(int batch, int m, int n, int k, const TcElement<P>* values,
                                   const uint32_t* meta, const TcElement<P>* B, float* C,
                                   cudaStream_t stream) {
  const bool vec16 = (static_cast<long long>(n) * Cfg::kElementBytes) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(B) % 16 == 0;
  if (vec16) return sp24_tc_launch<P, Cfg, Cfg::kVec16>(batch, m, n, k, values, meta, B, C, stream);
  return sp24_tc_launch<P, Cfg, 1>(batch, m, n, k, values, meta, B, C, stream);
}

// The dispatcher: the wide tile (128 x 64) when m >= kSp24WideMinRows, else 64 x 64.  The format
// does not depend on it (the metadata is per 16-row tile).
template <TcPrecision P>
cudaError_t sp24_tc_batched(int batch, int m, int n, int k, const TcElement<P>* values,
                            const uint32_t* meta, const TcElement<P>* B, float* C,
                            cudaStream_t stream) {
  if (m >= kSp24WideMinRows)
    return sp24_tc_batched_config<P, Sp24TcConfigFor<P, true>>(batch, m, n, k, values, meta, B, C,
                                                               stream);
  return sp24_tc_batched_config<P, Sp24TcConfigFor<P, false>>(batch, m, n, k, values, meta, B, C,
                                                              stream);
}

}  // namespace mw
