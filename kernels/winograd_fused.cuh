// Fused 2D Winograd layer F(m x m, 3 x 3): the input transform in the prologue of the products
// over channels, the output transform in their epilogue, so that V (alpha² x C x P) and M
// (alpha² x K x P) never touch global memory.  The three-phase path (transform.cuh,
// gemm_tc.cuh, gemm_batched.cuh) stays for every other F(m, r), for sparse U, and as the
// reference these kernels are validated against (docs/fused.md).
//
// One thread block owns a BK x BP tile of (output channel k, tile p) for all alpha² Winograd
// positions ξ, and loops over the input channels in chunks of BC:
//
//   for each chunk c0 (double buffered, one __syncthreads per chunk):
//     U[ξ][k0 : k0+BK][c0 : c0+BC]  for every ξ  -> shared, by cp.async (zero-filled off the edges)
//     x windows (alpha x alpha, with halo) of BC channels x BP tiles -> registers (masks built
//         once per thread: padding and edges read nothing), one chunk ahead of the products
//     products of the current chunk: acc[ξ] (BK x BP) += U[ξ] (BK x BC) · V[ξ] (BC x BP)
//     Bᵀ d B of the prefetched windows -> V[ξ] of the next chunk, in shared memory, rounded to the
//         operand type (16-bit modes) after the ReLU of Winograd-ReLU layers
//   epilogue, 16 (8 for float64) output channels at a time: accumulators -> shared M slab
//       (alpha² x rows x BP) -> Aᵀ M A per (k, p) (+ bias, optional ReLU) -> clipped stores of y
//
// Warp decomposition: the block's accumulators are alpha² x (BK / kSlabRows) units, one unit a
// kSlabRows x BP slab (16 rows; 8 for float64) of one position's tile; each warp owns
// kUnitsPerWarp of them, on tensor cores (the WMMA fragments and mac_stage of gemm_tc.cuh: tf32,
// tf32x3, fp16, bf16, fp64 on DMMA).  SIMT (fp32) warps own whole positions instead, each lane a
// BK/8 x BP/4 register block of one (FusedSimtLane: the fma chain of gemm_batched.cuh).  The
// accumulators of all alpha² positions live in registers; that, with the input transform's
// registers, is what bounds BK x BP (F(4,3): 36 positions; docs/fused.md, "Choosing the tile").
// The per-element order of the products is that of the three-phase kernels (k ascending, the
// same instruction per k step), and the transforms are transform.cuh's input_tile_2d /
// output_tile_2d, so without split-K the fused y is bitwise the three-phase y.
//
// Layouts: NCHW (x N x C x H x W, y N x K x Ho x Wo) or NHWC (x N x H x W x C, y N x Ho x Wo x K),
// a runtime argument (uniform branch): it changes the address arithmetic and which of (c, p) /
// (k, p) varies fastest across a warp, for coalescing.
//
// MAGMA's layers: winograd_fused_2d_device -> winograd_fused_2d_kernel -> winograd_fused_2d_launch
// -> winograd_fused_2d (dispatcher on F(m, 3) and precision) -> mw_conv2d_fused (magma_wino.cu).
#pragma once

#include <cuda_pipeline.h>

#include <climits>
#include <cstdint>
#include <type_traits>

#include "gemm_batched.cuh"
#include "gemm_tc.cuh"
#include "launch.cuh"
#include "transform.cuh"

namespace mw {

// The math of a fused kernel: SIMT float32 (the FFMA chain of gemm_batched.cuh) or the tensor
// cores in one of gemm_tc.cuh's precisions.  Values are those of mw_precision.
enum class FusedMath { kFp32 = 0, kTf32 = 1, kTf32x3 = 2, kBf16 = 3, kFp16 = 4, kFp64 = 5 };

// The gemm_tc.cuh precision of a tensor-core math (kFp32 has none; it maps to kFp64 unused).
template <FusedMath F>
inline constexpr TcPrecision kFusedTcPrecision = F == FusedMath::kTf32     ? TcPrecision::kTf32
                                                 : F == FusedMath::kTf32x3 ? TcPrecision::kTf32x3
                                                 : F == FusedMath::kBf16   ? TcPrecision::kBf16
                                                 : F == FusedMath::kFp16   ? TcPrecision::kFp16
                                                                           : TcPrecision::kFp64;

// A fused tile configuration (CUTLASS habit: shapes are types).
//   M_           output tile of F(M_, 3); alpha = M_ + 2, alpha² positions
//   BK_, BP_     output channels x tiles of one block;  BC_ input channels per chunk (stage)
//   Warps_       warps per block; each owns alpha² · (BK / kSlabRows) / Warps_ units
//   Position     the per-position operand layout, gemm_tc.cuh's GemmTcLayout: U[ξ] slice
//                [BK][BC + PadA] then V[ξ] slice [BC][BP + PadB], the shape mac_stage reads
// Shared memory: two stages of alpha² position slices; the epilogue's M slab
// [alpha²][kSlabRows][BP + 4] accumulators reuses them.
//   Prefetch_    load the next chunk's windows into registers before the products (hiding
//                their latency behind them) or after (fewer live registers: the F(4,3) float
//                and float64 tiles, whose alpha² = 36 windows would otherwise spill)
template <int M_, int BK_, int BP_, int BC_, int Warps_, int ElementBytes_, typename Inst_,
          int PadA_, int PadB_, bool Prefetch_>
struct FusedConfig {
  static constexpr int kM = M_, kR = 3, kAlpha = M_ + 2, kPositions = kAlpha * kAlpha;
  static constexpr int kBK = BK_, kBP = BP_, kBC = BC_;
  static constexpr int kWarps = Warps_, kThreads = 32 * Warps_;
  static constexpr int kStages = 2;
  static constexpr bool kPrefetch = Prefetch_;
  static constexpr int kElementBytes = ElementBytes_;
  static constexpr int kAccumulatorBytes = ElementBytes_ == 8 ? 8 : 4;
  static constexpr int kSlabRows = Inst_::kM;  // rows (output channels) of a unit
  static constexpr int kSlabs = BK_ / kSlabRows;
  // A warp's unit of work: one slab (kSlabRows x BP) of one position's accumulator tile; the
  // warp shape of mac_stage is one slab.
  using Position = GemmTcLayout<ElementBytes_, GemmShape<BK_, BP_, BC_>,
                                GemmShape<kSlabRows, BP_, BC_>, Inst_, 2, PadA_, PadB_>;
  static constexpr int kUnits = kPositions * kSlabs;
  static constexpr int kUnitsPerWarp = kUnits / kWarps;
  static constexpr int kPosElements = Position::kStageElements;  // one position's U and V slices
  static constexpr int kStageElements = kPositions * kPosElements;
  static constexpr int kPairs = BC_ * BP_;  // input windows per chunk
  static constexpr int kPairsPerThread = (kPairs + kThreads - 1) / kThreads;
  static constexpr int kLdM = BP_ + 4;
  static constexpr int kSlabElements = kSlabRows * kLdM;
  static constexpr size_t kStagesBytes = size_t(kElementBytes) * kStages * kStageElements;
  static constexpr size_t kEpilogueBytes = size_t(kAccumulatorBytes) * kPositions * kSlabElements;

  static_assert(kUnits % kWarps == 0, "warps own whole units");
  static_assert(BK_ % kSlabRows == 0, "the epilogue slabs tile BK");
  static_assert(kSlabElements * kAccumulatorBytes % 32 == 0 && kLdM * kAccumulatorBytes % 16 == 0,
                "WMMA store_matrix_sync: slabs 32-byte aligned, ldm 16 bytes");
  static_assert(kThreads <= 1024, "block size");
  static constexpr size_t shared_bytes() {
    return (kStagesBytes > kEpilogueBytes ? kStagesBytes : kEpilogueBytes) + 32;
  }
};

// SIMT lanes (fp32): a warp owns whole positions (BK x BP tiles; positions j * kWarps + warp),
// its lanes an 8 x 4 grid (ty, tx) over each: a lane holds rows ty + 8 i (i < BK / 8) and the
// kCols = BP / 4 consecutive columns from tx * kCols.  Per input channel a lane then reads BK / 8
// values of U and BP / 4 of V for BK x BP / 32 FMAs (F(2,3): 8 + 8 for 64, the register block of
// gemm_batched.cuh's 128 x 128 tile), all as 16-byte vectors.  Two choices keep those loads at
// their cheapest:
//   - the rows interleave, so that the eight rows one load reads (ty = 0..7, ldA = BC + 4 = 12
//     floats apart) fall in distinct banks;
//   - lane bit 0 is a bit of tx and bit 1 a bit of ty (tx = b0 + 2 b2, ty = b1 + 2 b3 + 4 b4), so
//     that lanes n and n ^ 1 read the same U address and lanes n and n ^ 2 the same V address:
//     a 16-byte load whose lane pairs share addresses returns in 2 wavefronts instead of 4
//     (NVIDIA's description of the shared-memory return path, docs/performance.md).
template <typename Cfg>
struct FusedSimtLane {
  static constexpr int kRows = Cfg::kBK / 8, kCols = Cfg::kBP / 4;
  static constexpr int kUnitsPerWarp = Cfg::kPositions / Cfg::kWarps;  // positions per warp
  // Channels per 16-byte load of U (a row's BC values are contiguous).
  static constexpr int kGroup = Cfg::kBC % 4 == 0 ? 4 : 1;
  static_assert(Cfg::kSlabRows == 16 && Cfg::kBK % 16 == 0 && Cfg::kBP % 16 == 0,
                "SIMT lanes: whole 16-row slabs, 4-column vectors per lane");
  static_assert(Cfg::kPositions % Cfg::kWarps == 0, "SIMT warps own whole positions");
  static_assert(Cfg::Position::kLdA % 4 == 0 && Cfg::Position::kLdB % 4 == 0,
                "16-byte aligned rows of the U and V slices");
  static __device__ __forceinline__ int ty(int lane) {
    return ((lane >> 1) & 1) | ((lane >> 2) & 6);
  }
  static __device__ __forceinline__ int tx(int lane) { return (lane & 1) | ((lane >> 1) & 2); }
};

// Configurations.  Float operands (fp32, tf32, tf32x3): WMMA m16n16k8 layout and gemm_tc.cuh's
// float padding (A + 4, B + 8 floats); 16-bit: m16n16k16, padding 8 halves; float64: DMMA
// m8n8k4, padding 4 doubles.  Shared memory (two stages; the epilogue slab fits inside):
//   Fused_F2_K64xP32xC8_w8      16 x (64 x 12 + 8 x 40) floats x 2      = 136 KiB
//   (Fused_F2_K64xP32xC8_w8_noprefetch, tf32x3: the same)
//   Fused_F4_K32xP16xC8_w12     36 x (32 x 12 + 8 x 24) floats x 2      = 162 KiB (sm_80: 163)
//   Fused_F4_K16xP16xC8_w12     36 x (16 x 12 + 8 x 24) floats x 2      = 108 KiB
//   Fused16_F2_K64xP32xC16_w8   16 x (64 x 24 + 16 x 40) halves x 2     = 136 KiB
//   Fused16_F4_K32xP16xC16_w8   36 x (32 x 24 + 16 x 24) halves x 2     = 162 KiB
//   Fused64_F2_K16xP32xC4_w8    16 x (16 x 8 + 4 x 36) doubles x 2      =  68 KiB
//   Fused64_F4_K8xP8xC4_w4      36 x (8 x 8 + 4 x 12) doubles x 2       =  63 KiB
// The shapes are what ptxas fits without a spill (sm_80, sm_90).  BK = 64 for F(2,3): the input
// transform is recomputed once per block of BK output channels, so a larger BK is what makes the
// fused kernel pay (docs/performance.md); its 8 units of 16 x 32 per warp (128 accumulator
// registers) fit under 255 -- for tf32x3, with its hi / lo fragments, only when the next
// chunk's windows are loaded after the products.  The F(4,3) float tile needs 12 warps
// (6 units each: 48 accumulator registers) under the 168-register cap of 384 threads, tf32x3's
// hi / lo fragments half the channels (K16), and float64's 36-value windows in doubles leave
// room for only 8 x 8 tiles on 4 warps.  docs/fused.md has the trade-offs.
using Fused_F2_K64xP32xC8_w8 = FusedConfig<2, 64, 32, 8, 8, 4, GemmShape<16, 16, 8>, 4, 8, true>;
using Fused_F2_K64xP32xC8_w8_noprefetch =
    FusedConfig<2, 64, 32, 8, 8, 4, GemmShape<16, 16, 8>, 4, 8, false>;
using Fused_F4_K32xP16xC8_w12 = FusedConfig<4, 32, 16, 8, 12, 4, GemmShape<16, 16, 8>, 4, 8, false>;
using Fused16_F2_K64xP32xC16_w8 =
    FusedConfig<2, 64, 32, 16, 8, 2, GemmShape<16, 16, 16>, 8, 8, true>;
using Fused16_F4_K32xP16xC16_w8 =
    FusedConfig<4, 32, 16, 16, 8, 2, GemmShape<16, 16, 16>, 8, 8, true>;
using Fused64_F2_K16xP32xC4_w8 = FusedConfig<2, 16, 32, 4, 8, 8, GemmShape<8, 8, 4>, 4, 4, true>;
using Fused_F4_K16xP16xC8_w12 = FusedConfig<4, 16, 16, 8, 12, 4, GemmShape<16, 16, 8>, 4, 8, false>;
using Fused64_F4_K8xP8xC4_w4 = FusedConfig<4, 8, 8, 4, 4, 8, GemmShape<8, 8, 4>, 4, 4, false>;

// The configuration of (F(M, 3), math), and its name (the plan reports it).
template <int M, FusedMath F>
struct FusedConfigFor;
#define MW_FUSED_CONFIG(M, F, CFG)            \
  template <>                                 \
  struct FusedConfigFor<M, FusedMath::F> {    \
    using type = CFG;                         \
    static constexpr const char* name = #CFG; \
  };
MW_FUSED_CONFIG(2, kFp32, Fused_F2_K64xP32xC8_w8)
MW_FUSED_CONFIG(2, kTf32, Fused_F2_K64xP32xC8_w8)
MW_FUSED_CONFIG(2, kTf32x3, Fused_F2_K64xP32xC8_w8_noprefetch)
MW_FUSED_CONFIG(2, kFp16, Fused16_F2_K64xP32xC16_w8)
MW_FUSED_CONFIG(2, kBf16, Fused16_F2_K64xP32xC16_w8)
MW_FUSED_CONFIG(2, kFp64, Fused64_F2_K16xP32xC4_w8)
MW_FUSED_CONFIG(4, kFp32, Fused_F4_K32xP16xC8_w12)
MW_FUSED_CONFIG(4, kTf32, Fused_F4_K32xP16xC8_w12)
MW_FUSED_CONFIG(4, kTf32x3, Fused_F4_K16xP16xC8_w12)
MW_FUSED_CONFIG(4, kFp16, Fused16_F4_K32xP16xC16_w8)
MW_FUSED_CONFIG(4, kBf16, Fused16_F4_K32xP16xC16_w8)
MW_FUSED_CONFIG(4, kFp64, Fused64_F4_K8xP8xC4_w4)
#undef MW_FUSED_CONFIG

// The F(m, 3) with fused kernels.
using FusedTiles = TileList<Tile<2, 3>, Tile<4, 3>>;

// Everything a fused launch reads, beyond the geometry.  T: x, bias, y and the transforms'
// arithmetic (float, double); TS: U and V operands (float, __half, __nv_bfloat16, double).
template <typename T, typename TS>
struct FusedArgs {
  const T* x;     // NCHW or NHWC
  const TS* U;    // alpha² x K x C (the plan's filter transform)
  const T* bias;  // K or nullptr
  T* y;           // NCHW or NHWC
  int nhwc;       // 0: NCHW, 1: NHWC
  int relu;       // mw_relu of the input: MW_RELU_NONE, _SPATIAL, _WINOGRAD
  int relu_out;   // ReLU of y (after the bias)
  int u_vec16;    // U rows (C elements) are whole 16-byte vectors from a 16-byte aligned base
};

// One position's accumulator tile of one warp: SIMT lanes' registers (fp32) or WMMA fragments.
template <typename Cfg, FusedMath F, bool kSimt = F == FusedMath::kFp32>
struct FusedAccumulators {
  using Tile = float[1][FusedSimtLane<Cfg>::kRows][FusedSimtLane<Cfg>::kCols];
};
template <typename Cfg, FusedMath F>
struct FusedAccumulators<Cfg, F, false> {
  using Tile = tc_detail::FragC<kFusedTcPrecision<F>>[1][Cfg::Position::kFragsN];
};

namespace fused_detail {

// U[ξ][k0 : k0+BK][c0 : c0+BC] of every position into the U slices of `stage` (zero-filled off
// the matrix).  16-byte copies when u_vec16 (then a vector is wholly inside or outside), else
// one element per copy (16-bit: a plain load and store, cp.async has no 2-byte size).
template <typename Cfg, typename TS>
__device__ __forceinline__ void stage_u(TS* stage, const TS* __restrict__ U, int K, int C, int k0,
                                        int c0, bool vec16) {
  using P = typename Cfg::Position;
  // Offsets in int: the C layer checked alpha² * K * C < 2^31 (64-bit address arithmetic per copy
  // is most of this loop's instructions otherwise).  The divisors are powers of two (shifts).
  constexpr int kVec = 16 / sizeof(TS), kRowVecs = Cfg::kBC / kVec;
  constexpr int kPosVecs = Cfg::kBK * kRowVecs;
  if (vec16 && Cfg::kThreads % kPosVecs == 0) {
    // Every configuration: a thread copies the same (row, vector) of every kThreads / kPosVecs-th
    // position, so its row, column and bound are computed once and the loop only steps.
    constexpr int kStep = Cfg::kThreads / kPosVecs;
    const int t = static_cast<int>(threadIdx.x), xi0 = t / kPosVecs;
    const int r = (t % kPosVecs) / kRowVecs, c = (t % kRowVecs) * kVec;
    const int gk = k0 + r, gc = c0 + c;
    const bool valid = gk < K && gc < C;
    // The offset is formed only for a vector inside U (< alpha² K C, an int): stepping it past
    // the last position would overflow for the largest layers.
    const int row = gk * C + gc, kc = K * C;
    TS* dst = stage + xi0 * Cfg::kPosElements + r * P::kLdA + c;
#pragma unroll 1
    for (int xi = xi0; xi < Cfg::kPositions; xi += kStep) {
      tc_detail::cp_async_zfill(dst, U + (valid ? xi * kc + row : 0), 16, valid);
      dst += kStep * Cfg::kPosElements;
    }
  } else if (vec16) {
    constexpr int kVecs = Cfg::kPositions * kPosVecs;
    // Not unrolled: unrolled, ptxas keeps every iteration's address live across the main loop.
#pragma unroll 1
    for (int e = threadIdx.x; e < kVecs; e += Cfg::kThreads) {
      const int xi = e / kPosVecs, rem = e % kPosVecs;
      const int r = rem / kRowVecs, c = (rem % kRowVecs) * kVec;
      const int gk = k0 + r, gc = c0 + c;
      const bool valid = gk < K && gc < C;
      const int off = valid ? (xi * K + gk) * C + gc : 0;
      tc_detail::cp_async_zfill(stage + xi * Cfg::kPosElements + r * P::kLdA + c, U + off, 16,
                                valid);
    }
  } else {
    constexpr int kPosElems = Cfg::kBK * Cfg::kBC, kElems = Cfg::kPositions * kPosElems;
#pragma unroll 1
    for (int e = threadIdx.x; e < kElems; e += Cfg::kThreads) {
      const int xi = e / kPosElems, rem = e % kPosElems;
      const int r = rem / Cfg::kBC, c = rem % Cfg::kBC;
      const int gk = k0 + r, gc = c0 + c;
      const bool valid = gk < K && gc < C;
      const int off = valid ? (xi * K + gk) * C + gc : 0;
      TS* dst = stage + xi * Cfg::kPosElements + r * P::kLdA + c;
      if constexpr (sizeof(TS) == 2) {
        const unsigned short* s = reinterpret_cast<const unsigned short*>(U);
        *reinterpret_cast<unsigned short*>(dst) = valid ? s[off] : 0;
      } else {
        tc_detail::cp_async_zfill(dst, U + off, sizeof(TS), valid);
      }
    }
  }
}

// One thread's input windows: (c, p) pairs of a chunk, fixed for the whole main loop, with the
// addresses and edge masks computed once.
template <typename Cfg>
struct WindowSet {
  static constexpr int kA = Cfg::kAlpha;
  int c_local[Cfg::kPairsPerThread], p_local[Cfg::kPairsPerThread];
  int base[Cfg::kPairsPerThread];       // element offset of the window's (0, 0) at channel 0
  unsigned rows[Cfg::kPairsPerThread];  // bit i: window row i inside the input (0: no window)
  unsigned cols[Cfg::kPairsPerThread];  // bit j: window column j inside the input
};

template <typename Cfg>
__device__ __forceinline__ void make_windows(WindowSet<Cfg>& ws, const ConvGeometry& g, int p0,
                                             bool nhwc) {
  const int H = g.in[1], W = g.in[2];
#pragma unroll
  for (int i = 0; i < Cfg::kPairsPerThread; ++i) {
    const int e = static_cast<int>(threadIdx.x) + i * Cfg::kThreads;
    // NCHW: tiles fastest across the warp (neighbouring windows along W); NHWC: channels
    // fastest (contiguous in x).
    const int cl = nhwc ? e % Cfg::kBC : e / Cfg::kBP;
    const int pl = nhwc ? e / Cfg::kBC : e % Cfg::kBP;
    ws.c_local[i] = cl;
    ws.p_local[i] = pl;
    const int p = p0 + pl;
    ws.rows[i] = ws.cols[i] = 0u;
    ws.base[i] = 0;
    if (e >= Cfg::kPairs || p >= g.P) continue;  // no window: zeros
    const TileCoord tc = tile_coord(g, p);
    const int h0 = tc.t[1] * Cfg::kM - g.pad[1], w0 = tc.t[2] * Cfg::kM - g.pad[2];
#pragma unroll
    for (int a = 0; a < Cfg::kAlpha; ++a) {
      if (h0 + a >= 0 && h0 + a < H) ws.rows[i] |= 1u << a;
      if (w0 + a >= 0 && w0 + a < W) ws.cols[i] |= 1u << a;
    }
    // The offset of (h0, w0) may be negative (padding); only in-mask elements are read.
    ws.base[i] = nhwc ? ((tc.n * H + h0) * W + w0) * g.C : ((tc.n * g.C) * H + h0) * W + w0;
  }
}

// The windows of chunk c0 into registers (zeros for channels >= C, tiles >= P, padding), with
// the spatial ReLU applied.
template <typename Cfg, typename T>
__device__ __forceinline__ void load_windows(T (&d)[Cfg::kPairsPerThread][Cfg::kAlpha][Cfg::kAlpha],
                                             const WindowSet<Cfg>& ws, const T* __restrict__ x,
                                             const ConvGeometry& g, int c0, bool nhwc,
                                             bool spatial_relu) {
  const int H = g.in[1], W = g.in[2];
  const int rs = nhwc ? W * g.C : W, cs = nhwc ? g.C : 1;  // row and column strides
#pragma unroll
  for (int i = 0; i < Cfg::kPairsPerThread; ++i) {
    // Threads past the chunk's windows (whole warps where BC x BP < threads) skip the loop.
    if (static_cast<int>(threadIdx.x) + i * Cfg::kThreads >= Cfg::kPairs) continue;
    const int c = c0 + ws.c_local[i];
    const bool any = c < g.C;
    const int base = any ? ws.base[i] + (nhwc ? c : c * H * W) : 0;  // c < C: inside x
#pragma unroll
    for (int a = 0; a < Cfg::kAlpha; ++a) {
#pragma unroll
      for (int b = 0; b < Cfg::kAlpha; ++b) {
        const bool inside = any && ((ws.rows[i] >> a) & (ws.cols[i] >> b) & 1u);
        T v = inside ? __ldg(x + base + a * rs + b * cs) : T(0);
        d[i][a][b] = spatial_relu ? relu(v) : v;
      }
    }
  }
}

// Bᵀ d B of the prefetched windows into the V slices of `stage`.
template <typename Cfg, typename T, typename TS>
__device__ __forceinline__ void store_windows(
    TS* stage, T (&d)[Cfg::kPairsPerThread][Cfg::kAlpha][Cfg::kAlpha], const WindowSet<Cfg>& ws,
    bool winograd_relu) {
  using P = typename Cfg::Position;
#pragma unroll
  for (int i = 0; i < Cfg::kPairsPerThread; ++i) {
    if (static_cast<int>(threadIdx.x) + i * Cfg::kThreads >= Cfg::kPairs) continue;
    TS* dst = stage + P::kStageA + ws.c_local[i] * P::kLdB + ws.p_local[i];
    input_tile_2d<T, Cfg::kM, Cfg::kR>(
        d[i], winograd_relu, [&](int xi, T v) { dst[xi * Cfg::kPosElements] = store_as<TS>(v); });
  }
}

// SIMT (fp32): acc (one position's tile) += U slice · V slice of one chunk, fma per element in
// channel order (gemm_batched.cuh's chain).
template <typename Cfg, typename T>
__device__ __forceinline__ void simt_mac(
    const T* pos, T (&acc)[1][FusedSimtLane<Cfg>::kRows][FusedSimtLane<Cfg>::kCols]) {
  using P = typename Cfg::Position;
  using L = FusedSimtLane<Cfg>;
  using VA = Vec<T, L::kGroup>;
  using VB = Vec<T, 4>;
  const int lane = threadIdx.x % 32, ty = L::ty(lane), tx = L::tx(lane);
  const T* sA = pos + ty * P::kLdA;
  const T* sB = pos + P::kStageA + tx * L::kCols;
#pragma unroll
  for (int c0 = 0; c0 < Cfg::kBC; c0 += L::kGroup) {
    T a[L::kRows][L::kGroup];
#pragma unroll
    for (int r = 0; r < L::kRows; ++r) {
      const VA v = MW_LOAD_VECTOR(VA, sA + r * 8 * P::kLdA + c0);
#pragma unroll
      for (int c = 0; c < L::kGroup; ++c) a[r][c] = v.x[c];
    }
#pragma unroll
    for (int c = 0; c < L::kGroup; ++c) {
      T b[L::kCols];
#pragma unroll
      for (int h = 0; h < L::kCols / 4; ++h) {
        const VB v = MW_LOAD_VECTOR(VB, sB + (c0 + c) * P::kLdB + h * 4);
#pragma unroll
        for (int j = 0; j < 4; ++j) b[h * 4 + j] = v.x[j];
      }
#pragma unroll
      for (int r = 0; r < L::kRows; ++r) {
#pragma unroll
        for (int j = 0; j < L::kCols; ++j) acc[0][r][j] = fma(a[r][c], b[j], acc[0][r][j]);
      }
    }
  }
}

// Aᵀ M A of the slab's (k, p) pairs (+ bias, ReLU) into y, clipped at the edges.
template <typename Cfg, typename T, typename Acc, typename TS>
__device__ __forceinline__ void output_slab(const Acc* sM, const ConvGeometry& g,
                                            const FusedArgs<T, TS>& a, int k_first, int p0) {
  constexpr int kA = Cfg::kAlpha, kPairs = Cfg::kSlabRows * Cfg::kBP;
  const int Ho = g.out[1], Wo = g.out[2];
#pragma unroll 1
  for (int e = threadIdx.x; e < kPairs; e += Cfg::kThreads) {
    // NCHW: tiles fastest (y rows along W); NHWC: output channels fastest (contiguous in y).
    const int kl = a.nhwc ? e % Cfg::kSlabRows : e / Cfg::kBP;
    const int pl = a.nhwc ? e / Cfg::kSlabRows : e % Cfg::kBP;
    const int k = k_first + kl, p = p0 + pl;
    if (k >= g.K || p >= g.P) continue;
    T t[kA][kA];
#pragma unroll
    for (int i = 0; i < kA; ++i) {
#pragma unroll
      for (int j = 0; j < kA; ++j)
        t[i][j] = T(sM[(i * kA + j) * Cfg::kSlabElements + kl * Cfg::kLdM + pl]);
    }
    const TileCoord tc = tile_coord(g, p);
    const T b = a.bias != nullptr ? __ldg(a.bias + k) : T(0);
    const bool relu_out = a.relu_out != 0;
    output_tile_2d<T, Cfg::kM, Cfg::kR>(t, [&](int u, int v, T value) {
      const int oh = tc.t[1] * Cfg::kM + u, ow = tc.t[2] * Cfg::kM + v;
      if (oh >= Ho || ow >= Wo) return;
      T out = value + b;
      if (relu_out && out < T(0)) out = T(0);  // NaN stays NaN, as NumPy's maximum(y, 0)
      const long long idx = a.nhwc ? ((static_cast<long long>(tc.n) * Ho + oh) * Wo + ow) * g.K + k
                                   : ((static_cast<long long>(tc.n) * g.K + k) * Ho + oh) * Wo + ow;
      a.y[idx] = out;
    });
  }
}

}  // namespace fused_detail

// The block (k0, p0): all alpha² positions of the BK x BP output tile, over every channel chunk.
template <typename Cfg, FusedMath F, typename T, typename TS>
__device__ __forceinline__ void winograd_fused_2d_device(const ConvGeometry& g,
                                                         const FusedArgs<T, TS>& a, void* smem,
                                                         int k0, int p0) {
  using namespace fused_detail;
  using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
  constexpr bool kSimt = F == FusedMath::kFp32;
  static_assert(sizeof(TS) == Cfg::kElementBytes && sizeof(Acc) == Cfg::kAccumulatorBytes,
                "the configuration is for these operand and accumulator sizes");
  TS* stages = static_cast<TS*>(smem);
  const int warp = threadIdx.x / 32;
  const bool nhwc = a.nhwc != 0;
  const bool spatial_relu = a.relu == MW_RELU_SPATIAL, winograd_relu = a.relu == MW_RELU_WINOGRAD;
  const int chunks = (g.C + Cfg::kBC - 1) / Cfg::kBC;

  // Accumulators of the warp's units q = j * kWarps + warp.  Tensor cores: position q % alpha²,
  // slab q / alpha² (so that every warp has units in about every slab of the epilogue); SIMT:
  // position q, whole (FusedSimtLane).
  using L = FusedSimtLane<Cfg>;  // read in the SIMT branches only
  constexpr int kUnits = std::conditional_t<kSimt, L, Cfg>::kUnitsPerWarp;
  constexpr TcPrecision kP = kFusedTcPrecision<F>;
  using PosCfg = typename Cfg::Position;
  typename FusedAccumulators<Cfg, F>::Tile acc[kUnits];
#pragma unroll
  for (int j = 0; j < kUnits; ++j) {
    if constexpr (kSimt) {
#pragma unroll
      for (int r = 0; r < L::kRows; ++r)
#pragma unroll
        for (int c = 0; c < L::kCols; ++c) acc[j][0][r][c] = Acc(0);
    } else {
#pragma unroll
      for (int l = 0; l < PosCfg::kFragsN; ++l)
        tc_detail::wmma::fill_fragment(acc[j][0][l], Acc(0));
    }
  }

  WindowSet<Cfg> ws;
  make_windows(ws, g, p0, nhwc);
  T d[Cfg::kPairsPerThread][Cfg::kAlpha][Cfg::kAlpha];

  // Prologue: chunk 0 into stage 0.
  stage_u<Cfg>(stages, a.U, g.K, g.C, k0, 0, a.u_vec16 != 0);
  __pipeline_commit();
  load_windows<Cfg>(d, ws, a.x, g, 0, nhwc, spatial_relu);
  store_windows<Cfg>(stages, d, ws, winograd_relu);

  for (int t = 0; t < chunks; ++t) {
    TS* cur = stages + (t % 2) * Cfg::kStageElements;
    TS* nxt = stages + ((t + 1) % 2) * Cfg::kStageElements;
    __pipeline_wait_prior(0);  // this thread's U copies of chunk t have landed
    __syncthreads();           // ... every thread's, and every V store; chunk t - 1 is read
    const bool more = t + 1 < chunks;
    if (more) {  // chunk t + 1: U copies in flight (and the windows) under the products
      stage_u<Cfg>(nxt, a.U, g.K, g.C, k0, (t + 1) * Cfg::kBC, a.u_vec16 != 0);
      if constexpr (Cfg::kPrefetch)
        load_windows<Cfg>(d, ws, a.x, g, (t + 1) * Cfg::kBC, nhwc, spatial_relu);
    }
    __pipeline_commit();
#pragma unroll
    for (int j = 0; j < kUnits; ++j) {
      const int q = j * Cfg::kWarps + warp;
      if constexpr (kSimt) {
        simt_mac<Cfg>(cur + q * Cfg::kPosElements, acc[j]);
      } else {
        const TS* pos = cur + (q % Cfg::kPositions) * Cfg::kPosElements;
        tc_detail::mac_stage<kP, PosCfg>(pos, q / Cfg::kPositions, 0, acc[j]);
      }
      // A fence for the compiler only (the warp is converged): without it ptxas hoists the
      // fragment loads of all the warp's units above the first MMA and the F(4,3) tiles spill.
      if constexpr (kUnits > 4) __syncwarp();
    }
    if (more) {
      if constexpr (!Cfg::kPrefetch)
        load_windows<Cfg>(d, ws, a.x, g, (t + 1) * Cfg::kBC, nhwc, spatial_relu);
      store_windows<Cfg>(nxt, d, ws, winograd_relu);
    }
  }
  __pipeline_wait_prior(0);
  __syncthreads();  // every product is done before the stages become the M slab

  // Epilogue, one slab of kSlabRows output channels at a time.
  Acc* sM = static_cast<Acc*>(smem);  // [alpha²][kSlabRows][kLdM]
#pragma unroll
  for (int s = 0; s < Cfg::kSlabs; ++s) {
#pragma unroll
    for (int j = 0; j < kUnits; ++j) {
      const int q = j * Cfg::kWarps + warp;
      if constexpr (kSimt) {
        // The lane's rows ty + 8 i in slab s (16 rows): i = 2 s, 2 s + 1.
        Acc* slab = sM + q * Cfg::kSlabElements;
        const int lane = threadIdx.x % 32, ty = L::ty(lane), tx = L::tx(lane);
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int c = 0; c < L::kCols; ++c)
            slab[(ty + 8 * h) * Cfg::kLdM + tx * L::kCols + c] = acc[j][0][2 * s + h][c];
      } else {
        if (q / Cfg::kPositions != s) continue;  // the unit belongs to another slab
        Acc* slab = sM + (q % Cfg::kPositions) * Cfg::kSlabElements;
#pragma unroll
        for (int l = 0; l < PosCfg::kFragsN; ++l)
          tc_detail::wmma::store_matrix_sync(slab + l * PosCfg::InstructionShape::kN, acc[j][0][l],
                                             Cfg::kLdM, tc_detail::wmma::mem_row_major);
      }
    }
    __syncthreads();
    output_slab<Cfg>(sM, g, a, k0 + s * Cfg::kSlabRows, p0);
    __syncthreads();  // the slab is read before the next one overwrites it
  }
}

// One grid dimension, blockIdx.x < 2^31 (checked by the C layer), so neither K nor P is limited
// by a grid dimension.  Its order (k_fastest) decides which operand the blocks running at the
// same time share from L2: output-channel blocks fastest, the K-blocks of one tile block are
// neighbours and read the same x windows at about the same time (x from DRAM about once; U is
// swept by every tile block); tile blocks fastest, the tile blocks of one K-block share its U
// slice (U from DRAM once; x is swept once per K-block).  The launcher streams the larger of the
// two once.  One block per SM is all the shared memory of the F(4,3) configurations allows; the
// promise leaves ptxas the registers the alpha² accumulators need.
template <typename Cfg, FusedMath F, typename T, typename TS>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    winograd_fused_2d_kernel(ConvGeometry g, FusedArgs<T, TS> a, int k_blocks, int p_blocks,
                             int k_fastest) {
  MW_DYNAMIC_SHARED(unsigned char, smem_raw);
  // WMMA pointers must be 32-byte aligned; the dynamic base is only promised 16 (gemm_tc.cuh).
  void* smem = smem_raw + ((32 - reinterpret_cast<uintptr_t>(smem_raw) % 32) % 32);
  const int block = static_cast<int>(blockIdx.x);
  const int kb = k_fastest ? block % k_blocks : block / p_blocks;
  const int pb = k_fastest ? block / k_blocks : block % p_blocks;
  winograd_fused_2d_device<Cfg, F>(g, a, smem, kb * Cfg::kBK, pb * Cfg::kBP);
}

// The grid order of winograd_fused_2d_kernel: output-channel blocks fastest when x is at least as
// large as U (then x is the operand worth reading from DRAM once).
template <typename T, typename TS>
bool fused_k_fastest(const ConvGeometry& g, int positions) {
  const double x_bytes = double(g.N) * g.C * g.in[1] * g.in[2] * sizeof(T);
  const double u_bytes = double(positions) * g.K * g.C * sizeof(TS);
  return x_bytes >= u_bytes;
}

// What a fused launch of (F(m, 3), math) is: configuration, block, grid, shared memory.
struct FusedPlan {
  const char* config = nullptr;
  int block_k = 0, block_p = 0, block_c = 0, threads = 0;
  long long blocks = 0;
  size_t shared_bytes = 0;
};

template <int M, FusedMath F>
FusedPlan fused_plan_for(const ConvGeometry& g) {
  using Cfg = typename FusedConfigFor<M, F>::type;
  FusedPlan p;
  p.config = FusedConfigFor<M, F>::name;
  p.block_k = Cfg::kBK, p.block_p = Cfg::kBP, p.block_c = Cfg::kBC, p.threads = Cfg::kThreads;
  p.blocks =
      static_cast<long long>((g.P + Cfg::kBP - 1) / Cfg::kBP) * ((g.K + Cfg::kBK - 1) / Cfg::kBK);
  p.shared_bytes = Cfg::shared_bytes();
  return p;
}

template <int M, FusedMath F, typename T, typename TS>
cudaError_t winograd_fused_2d_launch(const ConvGeometry& g, const FusedArgs<T, TS>& a,
                                     cudaStream_t stream) {
  using Cfg = typename FusedConfigFor<M, F>::type;
  const size_t smem = Cfg::shared_bytes();
  auto* kernel = &winograd_fused_2d_kernel<Cfg, F, T, TS>;
  // More than 48 KiB of dynamic shared memory is an opt-in per kernel.
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const int k_blocks = (g.K + Cfg::kBK - 1) / Cfg::kBK, p_blocks = (g.P + Cfg::kBP - 1) / Cfg::kBP;
  const long long blocks = static_cast<long long>(p_blocks) * k_blocks;
  if (blocks > INT_MAX) return cudaErrorInvalidConfiguration;  // refused by the C layer first
  const int k_fastest = fused_k_fastest<T, TS>(g, Cfg::kPositions) ? 1 : 0;
  return launch(kernel, dim3(static_cast<unsigned>(blocks)), dim3(Cfg::kThreads), smem, stream, g,
                a, k_blocks, p_blocks, k_fastest);
}

// Calls f(std::integral_constant<int, m>{}, std::integral_constant<FusedMath, F>{}) for a
// runtime (m, math) with a fused kernel; false when there is none.
template <FusedMath... Fs, typename Fn>
bool dispatch_fused_math(FusedMath math, Fn&& f) {
  return ((math == Fs ? (f(std::integral_constant<FusedMath, Fs>{}), true) : false) || ...);
}

template <typename Fn>
bool dispatch_fused(int m, FusedMath math, Fn&& f) {
  bool found = false;
  FusedTiles::dispatch(m, 3, [&](auto tile) {
    found = dispatch_fused_math<FusedMath::kFp32, FusedMath::kTf32, FusedMath::kTf32x3,
                                FusedMath::kBf16, FusedMath::kFp16, FusedMath::kFp64>(
        math, [&](auto f_math) { f(std::integral_constant<int, decltype(tile)::m>{}, f_math); });
  });
  return found;
}

// The operand type of a math: float (fp32, tf32, tf32x3), __half, __nv_bfloat16, double.
template <FusedMath F>
using FusedOperand = std::conditional_t<
    F == FusedMath::kFp64, double,
    std::conditional_t<F == FusedMath::kFp16, __half,
                       std::conditional_t<F == FusedMath::kBf16, __nv_bfloat16, float>>>;

}  // namespace mw
