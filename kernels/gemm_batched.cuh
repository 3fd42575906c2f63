// Dense batched products over channels: C[b] = A[b] · B[b] for every Winograd position b, SIMT
// (FFMA / DFMA), float32 and float64.
//
// In a layer: M[b] (K x P) = U[b] (K x C) · V[b] (C x P), batch = alpha^nd.  All matrices
// are row-major and contiguous per batch entry.  MAGMA's batched GEMM structure, four layers:
//
//   gemm_batched_device<T, Config, VEC>  one thread block computes a BLK_M x BLK_N tile of C[b]
//   gemm_batched_kernel<T, Config, VEC>  __global__: picks b = blockIdx.z (+ chunk offset)
//   gemm_batched_launch<T, Config, VEC>  host: grid (ceil(n/BLK_N), ceil(m/BLK_M), batch), chunked
//   gemm_batched<T>                      host: picks the named tile configuration by problem size
//
// Register blocking (the classic SIMT layout, as MAGMA's and CUTLASS's SIMT sgemm): each thread
// owns THR_M x THR_N outputs made of FRAG-wide pieces, FRAG = 16 bytes of T (4 floats, 2
// doubles) or THR if smaller.  Rows: ty*FRAG_M + i + g*SPAN_M for the GROUPS_M = THR_M/FRAG_M
// pieces g (SPAN_M = BLK_M/GROUPS_M: the two "halves" of an 8 x 8 float block are rows
// ty*4..ty*4+3 and 64+ty*4..), columns likewise with tx.  So every operand fragment of a k step
// is one 16-byte shared load (LDS.128), and a thread's outputs are FRAG-wide runs of a row of C
// (vector stores).  The 32 lanes of a warp are 8 (tx) x 4 (ty), so a warp's B fragment load
// reads 8 consecutive 16-byte pieces (128 bytes: one wavefront) and its A fragment load 4 (a
// 64-byte broadcast: one wavefront).  Per warp and k step, the 128 x 128 float tile issues 64
// FFMA against 4 LDS.128 (4 wavefronts): 16 FFMA per shared-memory wavefront, above the 4 an
// H100/H200 SM needs (4 warp-FFMA per clock against 1 wavefront per clock) to be FMA-bound.
//
// Mainloop: k is walked in BLK_K slices through two shared-memory stages (double buffering, one
// __syncthreads per slice).  While slice t is multiplied out of stage t % 2, slice t + 1 is
// fetched into the other stage: B (k x n, n contiguous) by __pipeline_memcpy_async (cp.async,
// 16-byte copies when rows allow, zero-fill outside the matrix), A through registers (MAGMA's
// prefetch: 16-byte loads issued before the multiply, stored after it), because A must be
// stored transposed (sA[k][m]: a thread's 4 consecutive rows of one k are then one LDS.128) and
// a 16-byte cp.async cannot transpose.  On rows that do not allow 16-byte accesses, A too goes
// by cp.async, one element per copy, each landing at its transposed place.  The transposed
// store is free of bank conflicts by the row padding kPadA (bank arithmetic at
// GemmStageLoader); every shared access pattern of every instantiation is checked at compile
// time by gemm_detail::shared_accesses_conflict_free (the bank model at excess_wavefronts).
#pragma once

#include <cuda_pipeline.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "launch.cuh"

namespace mw {

// Named tile configurations (CUTLASS habit: a config is a type, not a numbered macro).
//   DIM_X x DIM_Y  threads (tx along n, ty along m; a warp is 8 x 4 of them)
//   BLK_M x BLK_N  the C tile of one block;  BLK_K  the k slice of one pipeline stage
template <int DIM_X_, int DIM_Y_, int BLK_M_, int BLK_N_, int BLK_K_>
struct GemmConfig {
  static constexpr int DIM_X = DIM_X_, DIM_Y = DIM_Y_;
  static constexpr int BLK_M = BLK_M_, BLK_N = BLK_N_, BLK_K = BLK_K_;
  static constexpr int THREADS = DIM_X * DIM_Y;
  static constexpr int THR_M = BLK_M / DIM_Y, THR_N = BLK_N / DIM_X;
  static constexpr int kStages = 2;  // double buffering
  // sA rows (one per k, BLK_M elements) are padded by kPadA elements: a multiple of 4 keeps
  // every row 16-byte aligned for LDS.128 and, with BLK_M % 8 == 0, makes the row stride
  // 4 x an odd number of elements, which spreads the transposed stores over all 32 banks.
  static constexpr int kPadA = 4;
  static constexpr int LDA = BLK_M + kPadA;  // sA: [BLK_K][LDA] per stage
  static constexpr int LDB = BLK_N;          // sB: [BLK_K][LDB] per stage
  static constexpr int kStageA = BLK_K * LDA, kStageB = BLK_K * LDB;
  static constexpr int kStageElements = kStageA + kStageB;
  static_assert(BLK_M % DIM_Y == 0 && BLK_N % DIM_X == 0, "register block must tile the block");
  static_assert(DIM_X % 8 == 0 && DIM_Y % 4 == 0, "warps are 8 x 4 threads");
  static_assert(THREADS % 32 == 0 && THREADS <= 1024, "whole warps");
  static_assert(BLK_K % 8 == 0 && BLK_M % 16 == 0 && BLK_N % 4 == 0,
                "staging strips: 8 k x 16 rows of A; 16-byte vectors of B");
  // 2 stages of padded A and B slices.  tools/kernel_report.py restates this formula.
  template <typename T>
  static constexpr size_t shared_bytes() {
    return sizeof(T) * static_cast<size_t>(kStages) * kStageElements;
  }
};

// 128 x 128 tile, BLK_K 8, 8 x 8 floats per thread (two 4 x 4 halves per dimension), 256
// threads: the float32 workhorse for K (output channels) >= 128 and P >= 128 on 16-byte aligned
// rows.  float only (8 x 8 doubles would need 128 accumulator registers).
using GemmTile128x128 = GemmConfig<16, 16, 128, 128, 8>;
// 64 x 64 tile, 4 x 4 per thread (float: one 4-wide piece per dimension; double: two 2-wide
// halves), 256 threads: float K or P in [64, 128), and the float64 workhorse.
using GemmTile64x64 = GemmConfig<16, 16, 64, 64, 16>;
// 32 x 64 tile, 4 x 4 per thread (128 threads): few output channels (32 <= K < 64).  BLK_K 8:
// half the copies per thread of BLK_K 16, which keeps the double element-copy path well inside
// kGemmMinBlocks' 128 registers (it spilled with 16).
using GemmTile32x64 = GemmConfig<16, 8, 32, 64, 8>;
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

// Which outputs a thread owns (see the file comment).  tid = threadIdx.x of a 1-D block.
template <typename T, typename Cfg>
struct GemmThreadMap {
  static constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));
  static constexpr int FRAG_M = Cfg::THR_M < kVec16 ? Cfg::THR_M : kVec16;
  static constexpr int FRAG_N = Cfg::THR_N < kVec16 ? Cfg::THR_N : kVec16;
  static constexpr int GROUPS_M = Cfg::THR_M / FRAG_M, GROUPS_N = Cfg::THR_N / FRAG_N;
  static constexpr int SPAN_M = Cfg::BLK_M / GROUPS_M, SPAN_N = Cfg::BLK_N / GROUPS_N;
  static constexpr int kWarpsX = Cfg::DIM_X / 8;  // warps side by side along n
  static_assert(Cfg::THR_M % FRAG_M == 0 && Cfg::THR_N % FRAG_N == 0, "whole fragments");
  static_assert(SPAN_M == Cfg::DIM_Y * FRAG_M && SPAN_N == Cfg::DIM_X * FRAG_N, "pieces tile");

  static __host__ __device__ constexpr int tx(int tid) {
    return (tid / 32 % kWarpsX) * 8 + tid % 8;
  }
  static __host__ __device__ constexpr int ty(int tid) {
    return (tid / 32 / kWarpsX) * 4 + tid % 32 / 8;
  }
  // Offset of fragment g (h) within a k row of sA (sB), and within the block's rows (columns).
  static __host__ __device__ constexpr int a_off(int ty, int g) { return g * SPAN_M + ty * FRAG_M; }
  static __host__ __device__ constexpr int b_off(int tx, int h) { return h * SPAN_N + tx * FRAG_N; }
};

// Issues one slice's global -> shared traffic (a predicated tile iterator in CUTLASS's terms).
//
// A (m x k, k contiguous) goes into the transposed sA[c][r] (row stride LDA) in groups of
// kGroup = 16 bytes of consecutive k of one row (4 floats, 2 doubles): one 16-byte load into
// registers per group when rows allow it (VEC > 1; store_a writes them after the multiply),
// else kGroup element-wise cp.async copies, each landing at its transposed place (a 4- or
// 8-byte copy may land anywhere, so the copy itself transposes).  A warp takes 2 groups of each
// of 16 consecutive rows: each row's part is one 32-byte sector (coalesced), and element i of
// the groups is stored without bank conflicts.  Bank of float (c, r): (c*LDA + r) mod 32, with
// LDA = 4*q, q odd (kPadA), c = c0 + 4h + i (h in {0,1} the group, i the element):
// 4*LDA*h = 16*q*h = 16h (mod 32), so the 16 rows r0..r0+15 and the two groups hit
// r + 16h + const, 32 distinct banks.  (Unpadded, LDA = 128: both groups on the same banks,
// 2-way.)  Doubles: 32 lanes store 256 bytes, 2 wavefronts at least; 16 consecutive rows per
// group cover every bank pair once per group, for any stride.
// B (k x n, n contiguous) by cp.async straight into sB[r][c] (row stride BLK_N), VEC elements
// per copy: a warp copies up to 32 consecutive vectors of a row (or whole rows when a row has
// fewer), so global reads and shared writes are contiguous, and a thread's further copies step
// along its row (immediate offsets from one pointer) before they step to further rows.
// Elements outside the matrix are zero-filled (A: zeros in registers; the copies: the zero-fill
// form, nothing read, the source clamped to the matrix base), so the multiply needs no bounds
// checks.  With VEC > 1 the launcher has checked k % VEC == 0, n % VEC == 0 and 16-byte
// aligned bases, so a vector is wholly inside or wholly outside the matrix.
template <typename T, typename Cfg, int VEC>
struct GemmStageLoader {
  using V = Vec<T, VEC>;
  static constexpr int THREADS = Cfg::THREADS, BLK_M = Cfg::BLK_M, BLK_N = Cfg::BLK_N;
  static constexpr int BLK_K = Cfg::BLK_K;
  // A: groups of kGroup consecutive k of one row; a warp: 2 groups x 16 rows (a strip).
  static constexpr int kGroup = 16 / static_cast<int>(sizeof(T));
  static constexpr int kStripK = 2 * kGroup;
  static constexpr int kGroupsA = BLK_M * BLK_K / kGroup;
  static constexpr int kLoadsA = (kGroupsA + THREADS - 1) / THREADS;  // per thread
  static_assert(VEC == 1 || VEC == kGroup, "16-byte vectors or single elements");
  static_assert(BLK_K % kStripK == 0 && BLK_M % 16 == 0, "whole strips");
  // B: kLanesRowB consecutive vectors of each of kRowsPassB rows per pass of the block.
  static constexpr int kVecsRowB = BLK_N / VEC;
  static constexpr int kLanesRowB = kVecsRowB < 32 ? kVecsRowB : 32;
  static constexpr int kRowsPassB = THREADS / kLanesRowB;
  static constexpr int kPassesB = (BLK_K + kRowsPassB - 1) / kRowsPassB;
  static constexpr int kStepsB = kVecsRowB / kLanesRowB;  // copies per thread and row
  static_assert(kVecsRowB % kLanesRowB == 0 && 32 % kLanesRowB == 0, "whole rows of B");
  static_assert(kRowsPassB >= BLK_K || BLK_K % kRowsPassB == 0, "whole passes of B");

  static __host__ __device__ constexpr int a_row(int e) { return e / 2 % BLK_M; }
  static __host__ __device__ constexpr int a_k(int e) {
    return e / (2 * BLK_M) * kStripK + e % 2 * kGroup;
  }
  static __host__ __device__ constexpr int b_row(int tid, int pass) {
    return tid / kLanesRowB + pass * kRowsPassB;
  }
  static __host__ __device__ constexpr int b_col(int tid, int step) {
    return (tid % kLanesRowB + step * kLanesRowB) * VEC;
  }

  // A[row0 : row0+BLK_M, kk : kk+BLK_K] (zeros outside A), started: VEC > 1 into this thread's
  // registers ra, VEC == 1 by cp.async into sA (the caller commits the group).
  static __device__ __forceinline__ void fetch_a(V (&ra)[kLoadsA], T* __restrict__ sA,
                                                 const T* __restrict__ A, int m, int k, int row0,
                                                 int kk) {
#pragma unroll
    for (int it = 0; it < kLoadsA; ++it) {
      const int e = static_cast<int>(threadIdx.x) + it * THREADS;
      if (kGroupsA % THREADS != 0 && e >= kGroupsA) break;
      const int gr = row0 + a_row(e), gc = kk + a_k(e);
      if constexpr (VEC == 1) {
#pragma unroll
        for (int i = 0; i < kGroup; ++i) {
          const bool valid = gr < m && gc + i < k;
          copy_async(sA + (a_k(e) + i) * Cfg::LDA + a_row(e),
                     valid ? A + static_cast<long long>(gr) * k + gc + i : A, valid);
        }
        continue;
      }
      V v;
      if (gr < m && gc < k)
        v = load_vec<T, VEC>(A + static_cast<long long>(gr) * k + gc);
      else
        v = V::zeros();
      ra[it] = v;
    }
  }

  // ra -> sA, transposed (sA[c][r]); nothing with VEC == 1 (fetch_a copied it).
  static __device__ __forceinline__ void store_a(T* __restrict__ sA, const V (&ra)[kLoadsA]) {
    if constexpr (VEC > 1) {
#pragma unroll
      for (int it = 0; it < kLoadsA; ++it) {
        const int e = static_cast<int>(threadIdx.x) + it * THREADS;
        if (kGroupsA % THREADS != 0 && e >= kGroupsA) break;
        const int r = a_row(e), c = a_k(e);
#pragma unroll
        for (int i = 0; i < VEC; ++i) sA[(c + i) * Cfg::LDA + r] = ra[it].x[i];
      }
    }
  }

  // B[kk : kk+BLK_K, col0 : col0+BLK_N] -> sB, asynchronously (the caller commits the group).
  static __device__ __forceinline__ void copy_b(T* __restrict__ sB, const T* __restrict__ B, int n,
                                                int k, int col0, int kk) {
    const int tid = static_cast<int>(threadIdx.x);
#pragma unroll
    for (int pass = 0; pass < kPassesB; ++pass) {
      const int r = b_row(tid, pass);
      if (kRowsPassB * kPassesB != BLK_K && r >= BLK_K) break;  // idle in a partial pass
      const int gr = kk + r;
#pragma unroll
      for (int step = 0; step < kStepsB; ++step) {
        const int c = b_col(tid, step), gc = col0 + c;
        const bool valid = gr < k && gc < n;
        copy_async(sB + r * Cfg::LDB + c, valid ? B + static_cast<long long>(gr) * n + gc : B,
                   valid);
      }
    }
  }

  // The one asynchronous copy of this file: VEC elements (sizeof(V) bytes: 4, 8 or 16), or
  // zeros when !valid (the zero-fill form: nothing is read from src).
  static __device__ __forceinline__ void copy_async(T* dst, const T* src, bool valid) {
    __pipeline_memcpy_async(dst, src, sizeof(V), valid ? 0 : sizeof(V));
  }
};

namespace gemm_detail {

// One warp-wide shared-memory access: lane l touches `words` consecutive 4-byte words from word
// address base[l] (base[l] < 0: the lane is idle).
struct WarpAccess {
  int base[32] = {};
  int words = 1;
};

// Extra wavefronts of an access over the minimum, by the bank rule: shared memory is 32 banks
// of 4-byte words and serves one distinct word per bank per wavefront (lanes reading the same
// word share it), so an access takes max over banks of (distinct words in the bank) wavefronts,
// at least ceil(distinct words / 32).  (The CUDA Programming Guide's rule for 32-bit accesses;
// applying it to the distinct words of 64- and 128-bit accesses is our model, the one
// Nsight Compute's shared wavefront counts follow.)  0 means conflict-free.
constexpr int excess_wavefronts(const WarpAccess& a) {
  int word[32 * 4] = {};
  int count = 0;
  for (int l = 0; l < 32; ++l) {
    if (a.base[l] < 0) continue;
    for (int w = 0; w < a.words; ++w) {
      const int x = a.base[l] + w;
      bool seen = false;
      for (int y = 0; y < count; ++y) seen = seen || word[y] == x;
      if (!seen) word[count++] = x;
    }
  }
  int per_bank[32] = {};
  int worst = 0;
  for (int y = 0; y < count; ++y) {
    const int b = word[y] % 32;
    ++per_bank[b];
    if (per_bank[b] > worst) worst = per_bank[b];
  }
  return worst - (count + 31) / 32;
}

// Every shared-memory access of gemm_batched_device<T, Cfg, VEC>, warp by warp: the A and B
// fragment loads of a k step (the same for every k: all lanes read one sA / sB row), the
// transposed A stores and the B copies.  True when none has a bank conflict.
template <typename T, typename Cfg, int VEC>
constexpr bool shared_accesses_conflict_free() {
  using Map = GemmThreadMap<T, Cfg>;
  using L = GemmStageLoader<T, Cfg, VEC>;
  constexpr int kw = static_cast<int>(sizeof(T)) / 4;  // words per element
  for (int w = 0; w < Cfg::THREADS / 32; ++w) {
    WarpAccess a;
    for (int g = 0; g < Map::GROUPS_M; ++g) {  // A fragments: sA[l][a_off]
      a.words = Map::FRAG_M * kw;
      for (int l = 0; l < 32; ++l) a.base[l] = Map::a_off(Map::ty(32 * w + l), g) * kw;
      if (excess_wavefronts(a) != 0) return false;
    }
    for (int h = 0; h < Map::GROUPS_N; ++h) {  // B fragments: sB[l][b_off]
      a.words = Map::FRAG_N * kw;
      for (int l = 0; l < 32; ++l) a.base[l] = Map::b_off(Map::tx(32 * w + l), h) * kw;
      if (excess_wavefronts(a) != 0) return false;
    }
    for (int it = 0; it < L::kLoadsA; ++it) {  // A stores (or copies), element i of each group
      for (int i = 0; i < L::kGroup; ++i) {
        a.words = kw;
        for (int l = 0; l < 32; ++l) {
          const int e = 32 * w + l + it * Cfg::THREADS;
          a.base[l] = e < L::kGroupsA ? ((L::a_k(e) + i) * Cfg::LDA + L::a_row(e)) * kw : -1;
        }
        if (excess_wavefronts(a) != 0) return false;
      }
    }
    for (int pass = 0; pass < L::kPassesB; ++pass) {  // B copies
      for (int step = 0; step < L::kStepsB; ++step) {
        a.words = VEC * kw;
        for (int l = 0; l < 32; ++l) {
          const int tid = 32 * w + l, r = L::b_row(tid, pass);
          a.base[l] = r < Cfg::BLK_K ? (r * Cfg::LDB + L::b_col(tid, step)) * kw : -1;
        }
        if (excess_wavefronts(a) != 0) return false;
      }
    }
  }
  return true;
}

}  // namespace gemm_detail

template <typename T, typename Cfg, int VEC>
__device__ __forceinline__ void gemm_batched_device(int m, int n, int k, const T* __restrict__ A,
                                                    const T* __restrict__ B, T* __restrict__ C,
                                                    T* __restrict__ smem) {
  using Map = GemmThreadMap<T, Cfg>;
  using Loader = GemmStageLoader<T, Cfg, VEC>;
  constexpr int BLK_M = Cfg::BLK_M, BLK_N = Cfg::BLK_N, BLK_K = Cfg::BLK_K;
  constexpr int THR_M = Cfg::THR_M, THR_N = Cfg::THR_N;
  constexpr int FRAG_M = Map::FRAG_M, FRAG_N = Map::FRAG_N;
  using FragA = Vec<T, FRAG_M>;
  using FragB = Vec<T, FRAG_N>;

  const int tid = static_cast<int>(threadIdx.x);
  const int tx = Map::tx(tid), ty = Map::ty(tid);
  const int row0 = blockIdx.y * BLK_M;
  const int col0 = blockIdx.x * BLK_N;
  const int tiles_k = (k + BLK_K - 1) / BLK_K;

  T acc[THR_M][THR_N];
#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
#pragma unroll
    for (int j = 0; j < THR_N; ++j) acc[i][j] = T(0);
  }

  // Prologue: slice 0 into stage 0, complete before anyone reads it.
  typename Loader::V ra[Loader::kLoadsA];
  Loader::fetch_a(ra, smem, A, m, k, row0, 0);
  Loader::copy_b(smem + Cfg::kStageA, B, n, k, col0, 0);
  __pipeline_commit();
  Loader::store_a(smem, ra);
  __pipeline_wait_prior(0);
  __syncthreads();

  for (int t = 0; t < tiles_k; ++t) {
    const T* cur = smem + (t & 1) * Cfg::kStageElements;
    T* nxt = smem + ((t + 1) & 1) * Cfg::kStageElements;
    const bool more = t + 1 < tiles_k;
    // Slice t + 1 into the other stage, which every thread finished reading before the barrier
    // that ended iteration t - 1: B (and A when VEC == 1) asynchronously, A's global loads now
    // (VEC > 1: stored below, after the multiply has hidden their latency).
    if (more) {
      Loader::copy_b(nxt + Cfg::kStageA, B, n, k, col0, (t + 1) * BLK_K);
      Loader::fetch_a(ra, nxt, A, m, k, row0, (t + 1) * BLK_K);
    }
    __pipeline_commit();  // every iteration, even with nothing issued

    // Multiply slice t: per k step, GROUPS_M + GROUPS_N 16-byte fragment loads, THR_M x THR_N
    // FMAs.
    const T* sA = cur;
    const T* sB = cur + Cfg::kStageA;
#pragma unroll
    for (int l = 0; l < BLK_K; ++l) {
      T a[THR_M], b[THR_N];
#pragma unroll
      for (int g = 0; g < Map::GROUPS_M; ++g) {
        const FragA f = MW_LOAD_VECTOR(FragA, sA + l * Cfg::LDA + Map::a_off(ty, g));
#pragma unroll
        for (int i = 0; i < FRAG_M; ++i) a[g * FRAG_M + i] = f.x[i];
      }
#pragma unroll
      for (int h = 0; h < Map::GROUPS_N; ++h) {
        const FragB f = MW_LOAD_VECTOR(FragB, sB + l * Cfg::LDB + Map::b_off(tx, h));
#pragma unroll
        for (int j = 0; j < FRAG_N; ++j) b[h * FRAG_N + j] = f.x[j];
      }
#pragma unroll
      for (int i = 0; i < THR_M; ++i) {
#pragma unroll
        for (int j = 0; j < THR_N; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
      }
    }

    if (more) Loader::store_a(nxt, ra);
    __pipeline_wait_prior(0);  // this thread's copies of slice t + 1 have landed
    __syncthreads();           // ... and every thread's, and every thread is done with `cur`
  }
  // No copy is in flight here (the last group waited on was the last issued): shared memory
  // is not reused, so no drain is needed beyond that wait.

  // Epilogue: FRAG_N-wide runs of a row, one vector store each when C's rows allow it (a warp
  // then writes 4 rows x 128 contiguous bytes per store), element by element at the right edge
  // or on unaligned rows.  Guarded: never out of bounds.
  using FragC = Vec<T, FRAG_N>;
  const bool vec_c = n % FRAG_N == 0 && reinterpret_cast<uintptr_t>(C) % (sizeof(T) * FRAG_N) == 0;
#pragma unroll
  for (int i = 0; i < THR_M; ++i) {
    const int gr = row0 + Map::a_off(ty, i / FRAG_M) + i % FRAG_M;
    if (gr >= m) continue;
    T* c_row = C + static_cast<long long>(gr) * n;
#pragma unroll
    for (int h = 0; h < Map::GROUPS_N; ++h) {
      const int gc = col0 + Map::b_off(tx, h);
      if (vec_c && gc + FRAG_N <= n) {
        FragC v;
#pragma unroll
        for (int j = 0; j < FRAG_N; ++j) v.x[j] = acc[i][h * FRAG_N + j];
        MW_STORE_VECTOR(c_row + gc, v);
      } else {
#pragma unroll
        for (int j = 0; j < FRAG_N; ++j) {
          if (gc + j < n) c_row[gc + j] = acc[i][h * FRAG_N + j];
        }
      }
    }
  }
}

// Resident blocks per SM promised to ptxas: 512 threads' worth (2 blocks of 256, 4 of 128),
// i.e. a cap of 128 registers per thread.  Without a min-blocks argument CUDA 13's ptxas
// sometimes caps these kernels at 48-64 registers and spills; with it the 8 x 8 float block (64
// accumulators, 16 fragment registers, 4 prefetch registers, addresses) fits 128 without
// spilling, and 16 warps per SM, each with 64 independent FMAs per k step, hide the
// shared-memory latency.  A tighter promise (3 blocks of 256: 80 registers) would spill it.  The
// 128-thread tiles get the same 128-register cap (4 blocks); they use at most 112 (sm_90), so
// their occupancy is set by registers, as for the 256-thread tiles, not by this promise.
template <typename Cfg>
constexpr int kGemmMinBlocks = 512 / Cfg::THREADS;

template <typename T, typename Cfg, int VEC>
__global__ void __launch_bounds__(Cfg::THREADS, kGemmMinBlocks<Cfg>)
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
  // Checked here, in host code: nvcc evaluates host constexpr functions only there.
  static_assert(gemm_detail::shared_accesses_conflict_free<T, Cfg, VEC>(),
                "a shared-memory access pattern of this configuration has bank conflicts");
  const int blocks_m = (m + Cfg::BLK_M - 1) / Cfg::BLK_M;
  const int blocks_n = (n + Cfg::BLK_N - 1) / Cfg::BLK_N;
  const dim3 block(Cfg::THREADS);
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

// 16-byte vector loads and copies need 16-byte aligned rows: aligned base pointers and row
// lengths (k for A, n for B) that are multiples of the vector width.  (C's vector stores are
// decided in the kernel, from C and n.)  Otherwise every element is its own copy, with
// CfgUnaligned: the 128 x 128 tile's element-copy path needs more than 128 registers on sm_80
// (it spills at kGemmMinBlocks' cap), so unaligned problems take the 64 x 64 tile instead.
template <typename T, typename Cfg, typename CfgUnaligned = Cfg>
cudaError_t gemm_batched_vectorized_if_aligned(int batch, int m, int n, int k, const T* A,
                                               const T* B, T* C, cudaStream_t stream) {
  constexpr int V = kVecWidth<T>;
  const bool aligned = k % V == 0 && n % V == 0 && reinterpret_cast<uintptr_t>(A) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(B) % 16 == 0;
  if (aligned) return gemm_batched_launch<T, Cfg, V>(batch, m, n, k, A, B, C, stream);
  return gemm_batched_launch<T, CfgUnaligned, 1>(batch, m, n, k, A, B, C, stream);
}

// Pick the tile configuration by problem size (m = output channels, n = tiles P): the largest
// tile that the problem fills in both dimensions, so that no block is mostly idle (float 128 x
// 128 on 16-byte aligned rows only, see above).
template <typename T>
cudaError_t gemm_batched(int batch, int m, int n, int k, const T* A, const T* B, T* C,
                         cudaStream_t stream) {
  if constexpr (std::is_same_v<T, float>) {
    if (m >= 128 && n >= 128)
      return gemm_batched_vectorized_if_aligned<T, GemmTile128x128, GemmTile64x64>(batch, m, n, k,
                                                                                   A, B, C, stream);
  }
  if (m >= 64 && n >= 64)
    return gemm_batched_vectorized_if_aligned<T, GemmTile64x64>(batch, m, n, k, A, B, C, stream);
  if (m >= 32 && n >= 64)
    return gemm_batched_vectorized_if_aligned<T, GemmTile32x64>(batch, m, n, k, A, B, C, stream);
  return gemm_batched_vectorized_if_aligned<T, GemmTile16x32>(batch, m, n, k, A, B, C, stream);
}

}  // namespace mw
