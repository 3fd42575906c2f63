// Winograd tile transforms: input (x -> V), filter (w -> U), output (M -> y).
//
// Four layers, MAGMA style:  *_device (the per-thread body)  ->  *_kernel (__global__)
// ->  *_launch (host: grid and block)  ->  mw_* in magma_wino.cu (checks and dispatch).
//
// Two families:
//  - specialised, templated on <T, M, R>: the coefficients of F(M, R) are compile-time
//    constants (generated from magma_wino/transforms.py into mw_coefficients.h), loops are
//    fully unrolled and zero coefficients cost nothing;
//  - generic, any F(m, r) with alpha <= 16 and any interpolation points: the matrices are
//    read from device memory and every transformed element is one thread's direct sum.
//
// Layouts (docs/layouts.md): x N x C x D x H x W (2D: D = 1), V alpha^nd x C x P,
// U alpha^nd x K x C, M alpha^nd x K x P, y N x K x Do x Ho x Wo -- or x, y channels last
// (N x D x H x W x C, N x Do x Ho x Wo x K: ConvGeometry::channels_last, the addresses through
// act_strides; V, U, M are the same either way) -- with P = N * tD * tH * tW
// and p = ((n * tD + td) * tH + th) * tW + tw.  Thread index -> (channel, tile) puts the
// tile index p in the fastest-varying position so that V and M, contiguous along P, are
// read and written coalesced.
//
// Storage type (TS) of U and V: the input and filter transforms compute in T and store TS,
// through store_as<TS>: T itself, or, for T = float, IEEE binary16 (__half) or bfloat16
// (__nv_bfloat16) rounded to nearest even -- the U and V of the 16-bit precision modes
// (gemm_tc.cuh multiplies them).  ReLU modes act on the T value before the rounding.  The output
// transform reads M in T (M stays float32 in the 16-bit modes).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "launch.cuh"
#include "magma_wino.h"
#include "mw_coefficients.h"

namespace mw {

// Sizes of one layer, as the kernels see them.  2D layers are 3D layers with D = 1
// (one tile along depth, no padding there).  The C layer has checked that every array
// has fewer than 2^31 elements, so int indices suffice except where noted.
struct ConvGeometry {
  int N, C, K;
  int in[3];   // D, H, W
  int out[3];  // Do, Ho, Wo
  int pad[3];
  int tiles[3];
  int P;              // N * tiles[0] * tiles[1] * tiles[2]
  int channels_last;  // x, y (dx, dy) N x [D x] H x W x C, not N x C x [D x] H x W
};

// Element strides of an activation array of the layer -- x (C channels over in[]) or y (K over
// out[]) -- in its layout: channels first or channels last.  Offsets inside one image fit an
// int (the C layer: every array has fewer than 2^31 elements); the image stride is 64-bit.
struct ActStrides {
  long long n;
  int c, d, h, w;
};

MW_HOST_DEVICE inline ActStrides act_strides(int channels_last, int channels,
                                             const int (&size)[3]) {
  const int plane = size[1] * size[2], volume = size[0] * plane;
  ActStrides s;
  s.n = static_cast<long long>(volume) * channels;
  if (channels_last) {
    s.c = 1, s.w = channels, s.h = size[2] * channels, s.d = plane * channels;
  } else {
    s.c = volume, s.w = 1, s.h = size[2], s.d = plane;
  }
  return s;
}

// The first element of image n, channel c of an activation array with strides s.
template <typename T>
MW_HOST_DEVICE inline T* act_channel(T* a, const ActStrides& s, int n, int c) {
  return a + n * s.n + static_cast<long long>(c) * s.c;
}

// The (n, c, z, h, w) of linear index i of an activation array (channels over size[]) in its
// layout -- the inverse of act_strides' offsets (i < 2^31: the C layer).
MW_HOST_DEVICE inline void split_act_index(int i, int channels_last, int channels,
                                           const int (&size)[3], int& n, int& c, int& z, int& h,
                                           int& w) {
  if (channels_last) {
    c = i % channels;
    i /= channels;
  }
  w = i % size[2];
  i /= size[2];
  h = i % size[1];
  i /= size[1];
  z = i % size[0];
  i /= size[0];
  if (!channels_last) {
    c = i % channels;
    i /= channels;
  }
  n = i;
}

struct TileCoord {
  int n, t[3];
};

MW_HOST_DEVICE inline TileCoord tile_coord(const ConvGeometry& g, int p) {
  TileCoord tc;
  tc.t[2] = p % g.tiles[2];
  p /= g.tiles[2];
  tc.t[1] = p % g.tiles[1];
  p /= g.tiles[1];
  tc.t[0] = p % g.tiles[0];
  tc.n = p / g.tiles[0];
  return tc;
}

// Threads per block of the transform kernels: one thread per (channel, tile) pair and
// no shared memory, so a modest block keeps many blocks resident and lets the compiler
// use up to 255 registers for the tile arrays (F(6,3) in double needs ~150).
constexpr int kTransformThreads = 128;
// Minimum resident blocks per SM promised to ptxas.  With only the thread count, ptxas
// caps some of these kernels at 32 or 128 registers (an occupancy heuristic) and spills;
// promising one block lets it keep the tile in registers.  Occupancy is then what the
// register count gives, as the kernel report shows.
constexpr int kTransformMinBlocks = 1;

// One thread per (outer, inner) pair, inner fastest (so that the tile index p, contiguous in
// V and M, varies across a warp).  False for the threads past the end of the grid.  The C
// layer has checked outer * inner < 2^31, so the division is a cheap 32-bit one.
__device__ __forceinline__ bool thread_pair(int outer_count, int inner_count, int& outer,
                                            int& inner) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<long long>(outer_count) * inner_count) return false;
  const int i = static_cast<int>(idx);
  outer = i / inner_count;
  inner = i % inner_count;
  return true;
}

template <typename T>
MW_HOST_DEVICE inline T relu(T v) {
  return v > T(0) ? v : T(0);
}

// A transformed value v (computed in T) as stored in U or V: v itself when TS is T; a float
// rounded to nearest even to binary16 or bfloat16 otherwise (the only conversions the C layer
// instantiates).
template <typename TS, typename T>
__device__ __forceinline__ TS store_as(T v) {
  if constexpr (std::is_same_v<TS, T>) {
    return v;
  } else if constexpr (std::is_same_v<TS, __half>) {
    static_assert(std::is_same_v<T, float>, "16-bit storage is rounded from float");
    return __float2half_rn(v);
  } else {
    static_assert(std::is_same_v<T, float> && std::is_same_v<TS, __nv_bfloat16>,
                  "storage types: T, __half or __nv_bfloat16 (from float)");
    return __float2bfloat16_rn(v);
  }
}

// ---------------------------------------------------------------------------------------
// Specialised 2D transforms
// ---------------------------------------------------------------------------------------

// The specialised kernels apply the generated straight-line 1D transforms (Coef::bt, ::g,
// ::at: y = Mat · x) first down every column, then along every row of the tile.  All loops
// unroll completely, so every array index is a compile-time constant and the tile lives
// in registers.

// d[0..OUT)[j] <- Mat · d[0..IN)[j] for each of the COLS columns (OUT <= ROWS rows kept).
template <typename T, int IN, int OUT, int ROWS, int COLS, typename Apply>
__device__ __forceinline__ void transform_columns(T (&d)[ROWS][COLS], Apply apply) {
#pragma unroll
  for (int j = 0; j < COLS; ++j) {
    T in[IN], out[OUT];
#pragma unroll
    for (int i = 0; i < IN; ++i) in[i] = d[i][j];
    apply(in, out);
#pragma unroll
    for (int i = 0; i < OUT; ++i) d[i][j] = out[i];
  }
}

// The tile math of the specialised 2D transforms, shared by the three-phase kernels below and
// the fused kernels (winograd_fused.cuh), so that both compute V and y with the same operations in
// the same order (the fused results are then bitwise those of the three-phase path where the
// products also agree).

// Bᵀ d B of one alpha x alpha window d (destroyed), element (i, l) handed to
// store(i * alpha + l, value) with ReLU applied when winograd_relu (Liu et al.: after the
// transform).  A spatial ReLU is the caller's, when it loads d.
template <typename T, int M, int R, typename Store>
__device__ __forceinline__ void input_tile_2d(T (&d)[M + R - 1][M + R - 1], bool winograd_relu,
                                              Store store) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  transform_columns<T, A, A>(d, [](const T(&in)[A], T(&out)[A]) { Coef::bt(in, out); });
#pragma unroll
  for (int i = 0; i < A; ++i) {
    T row[A];
    Coef::bt(d[i], row);  // (Bᵀ d) B, one row at a time
#pragma unroll
    for (int l = 0; l < A; ++l) store(i * A + l, winograd_relu ? relu(row[l]) : row[l]);
  }
}

// Aᵀ t A of one alpha x alpha tile t of M (destroyed): output (u, v) of the m x m tile handed to
// store(u, v, value).
template <typename T, int M, int R, typename Store>
__device__ __forceinline__ void output_tile_2d(T (&t)[M + R - 1][M + R - 1], Store store) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  // Rows 0..M-1 of t <- Aᵀ t.
  transform_columns<T, A, M>(t, [](const T(&in)[A], T(&out)[M]) { Coef::at(in, out); });
#pragma unroll
  for (int u = 0; u < M; ++u) {
    T row[M];
    Coef::at(t[u], row);  // (Aᵀ t) A
#pragma unroll
    for (int v = 0; v < M; ++v) store(u, v, row[v]);
  }
}

// V[:, c, p] = Bᵀ d B for the alpha x alpha window d of channel c under tile p.  The layout is
// a template parameter here (LAST: channels last), unlike in the other transform kernels: these
// square 2D kernels are the hot path, and with a compile-time unit stride along W their loads
// (and the output kernel's stores) keep immediate offsets -- the channels-first code is what it
// was before the layouts (5 % fewer instructions than with run-time strides, 30 % in the output).
template <typename T, typename TS, int M, int R, int RELU, bool LAST = false>
__device__ __forceinline__ void input_transform_2d_device(const ConvGeometry& g,
                                                          const T* __restrict__ x,
                                                          TS* __restrict__ V, int c, int p) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  const TileCoord tc = tile_coord(g, p);
  const int H = g.in[1], W = g.in[2];
  const ActStrides xs = act_strides(LAST ? 1 : 0, g.C, g.in);
  const T* __restrict__ xc = act_channel(x, xs, tc.n, c);
  const int h0 = tc.t[1] * M - g.pad[1];
  const int w0 = tc.t[2] * M - g.pad[2];

  // Load the window; reads that fall in the padding (or past the input) are zeros.
  T d[A][A];
#pragma unroll
  for (int i = 0; i < A; ++i) {
#pragma unroll
    for (int j = 0; j < A; ++j) {
      const int h = h0 + i, w = w0 + j;
      const bool inside = h >= 0 && h < H && w >= 0 && w < W;
      T v = inside ? __ldg(xc + h * xs.h + w * xs.w) : T(0);
      if (RELU == MW_RELU_SPATIAL) v = relu(v);
      d[i][j] = v;
    }
  }
  const long long stride = static_cast<long long>(g.C) * g.P;
  TS* __restrict__ out = V + static_cast<long long>(c) * g.P + p;
  input_tile_2d<T, M, R>(d, RELU == MW_RELU_WINOGRAD,
                         [&](int b, T v) { out[b * stride] = store_as<TS>(v); });
}

template <typename T, typename TS, int M, int R, int RELU>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    input_transform_2d_kernel(ConvGeometry g, const T* __restrict__ x, TS* __restrict__ V) {
  int c, p;
  if (thread_pair(g.C, g.P, c, p)) input_transform_2d_device<T, TS, M, R, RELU>(g, x, V, c, p);
}

// The same for channels-last x (g.channels_last; the launcher picks the kernel).
template <typename T, typename TS, int M, int R, int RELU>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    input_transform_2d_nhwc_kernel(ConvGeometry g, const T* __restrict__ x, TS* __restrict__ V) {
  int c, p;
  if (thread_pair(g.C, g.P, c, p))
    input_transform_2d_device<T, TS, M, R, RELU, true>(g, x, V, c, p);
}

// U[:, k, c] = G g Gᵀ for the r x r filter g = w[k, c].
template <typename T, typename TS, int M, int R>
__device__ __forceinline__ void filter_transform_2d_device(const ConvGeometry& g,
                                                           const T* __restrict__ w,
                                                           TS* __restrict__ U, int k, int c) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  const T* __restrict__ wkc = w + (static_cast<long long>(k) * g.C + c) * R * R;
  // t = G g (alpha x R): G applied to each column of the filter.
  T t[A][R];
#pragma unroll
  for (int j = 0; j < R; ++j) {
    T in[R], col[A];
#pragma unroll
    for (int i = 0; i < R; ++i) in[i] = __ldg(wkc + i * R + j);
    Coef::g(in, col);
#pragma unroll
    for (int i = 0; i < A; ++i) t[i][j] = col[i];
  }
  const long long stride = static_cast<long long>(g.K) * g.C;
  TS* __restrict__ out = U + static_cast<long long>(k) * g.C + c;
#pragma unroll
  for (int i = 0; i < A; ++i) {
    T row[A];
    Coef::g(t[i], row);  // (G g) Gᵀ
#pragma unroll
    for (int j = 0; j < A; ++j) out[(i * A + j) * stride] = store_as<TS>(row[j]);
  }
}

template <typename T, typename TS, int M, int R>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    filter_transform_2d_kernel(ConvGeometry g, const T* __restrict__ w, TS* __restrict__ U) {
  int k, c;
  if (thread_pair(g.K, g.C, k, c)) filter_transform_2d_device<T, TS, M, R>(g, w, U, k, c);
}

// y[n, k, tile p] = Aᵀ M[:, k, p] A (+ bias[k]), clipped at the right and bottom edges (LAST:
// y channels last, as in input_transform_2d_device).
template <typename T, int M, int R, bool LAST = false>
__device__ __forceinline__ void output_transform_2d_device(const ConvGeometry& g,
                                                           const T* __restrict__ Mw,
                                                           const T* __restrict__ bias,
                                                           T* __restrict__ y, int k, int p) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  const long long stride = static_cast<long long>(g.K) * g.P;
  const T* __restrict__ src = Mw + static_cast<long long>(k) * g.P + p;
  T t[A][A];
#pragma unroll
  for (int i = 0; i < A; ++i) {
#pragma unroll
    for (int j = 0; j < A; ++j) t[i][j] = __ldg(src + (i * A + j) * stride);
  }
  const TileCoord tc = tile_coord(g, p);
  const int Ho = g.out[1], Wo = g.out[2];
  const T b = bias != nullptr ? __ldg(bias + k) : T(0);
  const ActStrides ys = act_strides(LAST ? 1 : 0, g.K, g.out);
  T* __restrict__ yk = act_channel(y, ys, tc.n, k);
  output_tile_2d<T, M, R>(t, [&](int u, int v, T value) {
    const int oh = tc.t[1] * M + u, ow = tc.t[2] * M + v;
    if (oh < Ho && ow < Wo) yk[oh * ys.h + ow * ys.w] = value + b;
  });
}

template <typename T, int M, int R>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    output_transform_2d_kernel(ConvGeometry g, const T* __restrict__ Mw, const T* __restrict__ bias,
                               T* __restrict__ y) {
  int k, p;
  if (thread_pair(g.K, g.P, k, p)) output_transform_2d_device<T, M, R>(g, Mw, bias, y, k, p);
}

template <typename T, int M, int R>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    output_transform_2d_nhwc_kernel(ConvGeometry g, const T* __restrict__ Mw,
                                    const T* __restrict__ bias, T* __restrict__ y) {
  int k, p;
  if (thread_pair(g.K, g.P, k, p)) output_transform_2d_device<T, M, R, true>(g, Mw, bias, y, k, p);
}

// ---------------------------------------------------------------------------------------
// Specialised line transforms: the 2D rectangular tiles F(1×M, 1×R) (AXIS = 2, along W: a 1×R
// filter) and F(M×1, R×1) (AXIS = 1, along H: an R×1 filter), Inception's factorised filters.
// The other axis is F(1, 1) (alpha 1, identity), so a tile is one line of alpha values and the
// transform is the straight-line 1D Coef::bt / ::g / ::at of F(M, R): alpha loads per tile
// instead of the generic kernel's alpha per transformed element.
// ---------------------------------------------------------------------------------------

template <typename T, typename TS, int M, int R, int AXIS, int RELU>
__device__ __forceinline__ void input_transform_line_device(const ConvGeometry& g,
                                                            const T* __restrict__ x,
                                                            TS* __restrict__ V, int c, int p) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  static_assert(AXIS == 1 || AXIS == 2, "a line along H (1) or W (2)");
  const TileCoord tc = tile_coord(g, p);
  const int H = g.in[1], W = g.in[2];
  const ActStrides xs = act_strides(g.channels_last, g.C, g.in);
  const T* __restrict__ xc = act_channel(x, xs, tc.n, c);
  // The line's first element; along the other axis the tile is one element (m = 1).
  const int h0 = tc.t[1] * (AXIS == 1 ? M : 1) - g.pad[1];
  const int w0 = tc.t[2] * (AXIS == 2 ? M : 1) - g.pad[2];
  T d[A], v[A];
#pragma unroll
  for (int i = 0; i < A; ++i) {
    const int h = h0 + (AXIS == 1 ? i : 0), w = w0 + (AXIS == 2 ? i : 0);
    const bool inside = h >= 0 && h < H && w >= 0 && w < W;
    T e = inside ? __ldg(xc + h * xs.h + w * xs.w) : T(0);
    if (RELU == MW_RELU_SPATIAL) e = relu(e);
    d[i] = e;
  }
  Coef::bt(d, v);
  const long long stride = static_cast<long long>(g.C) * g.P;
  TS* __restrict__ out = V + static_cast<long long>(c) * g.P + p;
#pragma unroll
  for (int b = 0; b < A; ++b)
    out[b * stride] = store_as<TS>(RELU == MW_RELU_WINOGRAD ? relu(v[b]) : v[b]);
}

template <typename T, typename TS, int M, int R, int AXIS, int RELU>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    input_transform_line_kernel(ConvGeometry g, const T* __restrict__ x, TS* __restrict__ V) {
  int c, p;
  if (thread_pair(g.C, g.P, c, p))
    input_transform_line_device<T, TS, M, R, AXIS, RELU>(g, x, V, c, p);
}

// U[:, k, c] = G g for the R taps of w[k, c] (a 1×R or R×1 filter: R contiguous values).
template <typename T, typename TS, int M, int R>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    filter_transform_line_kernel(ConvGeometry g, const T* __restrict__ w, TS* __restrict__ U) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  int k, c;
  if (!thread_pair(g.K, g.C, k, c)) return;
  const T* __restrict__ wkc = w + (static_cast<long long>(k) * g.C + c) * R;
  T in[R], u[A];
#pragma unroll
  for (int i = 0; i < R; ++i) in[i] = __ldg(wkc + i);
  Coef::g(in, u);
  const long long stride = static_cast<long long>(g.K) * g.C;
  TS* __restrict__ out = U + static_cast<long long>(k) * g.C + c;
#pragma unroll
  for (int b = 0; b < A; ++b) out[b * stride] = store_as<TS>(u[b]);
}

// y[n, k, line p] = Aᵀ M[:, k, p] (+ bias[k]), clipped at the line's end.
template <typename T, int M, int R, int AXIS>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    output_transform_line_kernel(ConvGeometry g, const T* __restrict__ Mw,
                                 const T* __restrict__ bias, T* __restrict__ y) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  int k, p;
  if (!thread_pair(g.K, g.P, k, p)) return;
  const long long stride = static_cast<long long>(g.K) * g.P;
  const T* __restrict__ src = Mw + static_cast<long long>(k) * g.P + p;
  T t[A], o[M];
#pragma unroll
  for (int b = 0; b < A; ++b) t[b] = __ldg(src + b * stride);
  Coef::at(t, o);
  const TileCoord tc = tile_coord(g, p);
  const int Ho = g.out[1], Wo = g.out[2];
  const T bk = bias != nullptr ? __ldg(bias + k) : T(0);
  const ActStrides ys = act_strides(g.channels_last, g.K, g.out);
  T* __restrict__ yk = act_channel(y, ys, tc.n, k);
#pragma unroll
  for (int u = 0; u < M; ++u) {
    const int oh = tc.t[1] * (AXIS == 1 ? M : 1) + (AXIS == 1 ? u : 0);
    const int ow = tc.t[2] * (AXIS == 2 ? M : 1) + (AXIS == 2 ? u : 0);
    if (oh < Ho && ow < Wo) yk[oh * ys.h + ow * ys.w] = o[u] + bk;
  }
}

// ---------------------------------------------------------------------------------------
// Specialised 3D transforms.  An alpha^3 tile does not fit in registers for alpha = 6
// (216 values, 432 registers in double), so the 3D kernels produce the result one depth
// slice at a time: slice i is (Σ_a Mat(i, a) · X[a]) transformed in 2D, where X[a] are
// the input's depth slices, re-read from global memory (L1-resident: one thread re-reads
// the same alpha^3 window alpha times).  The depth loop is not unrolled (it bounds code
// size and register pressure), so its coefficients come from the runtime accessors.
// ---------------------------------------------------------------------------------------

template <typename T, typename TS, int M, int R, int RELU>
__device__ __forceinline__ void input_transform_3d_device(const ConvGeometry& g,
                                                          const T* __restrict__ x,
                                                          TS* __restrict__ V, int c, int p) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  const TileCoord tc = tile_coord(g, p);
  const int D = g.in[0], H = g.in[1], W = g.in[2];
  const ActStrides xs = act_strides(g.channels_last, g.C, g.in);
  const T* __restrict__ xc = act_channel(x, xs, tc.n, c);
  const int z0 = tc.t[0] * M - g.pad[0];
  const int h0 = tc.t[1] * M - g.pad[1];
  const int w0 = tc.t[2] * M - g.pad[2];
  const long long stride = static_cast<long long>(g.C) * g.P;
  TS* __restrict__ out = V + static_cast<long long>(c) * g.P + p;
#pragma unroll 1
  for (int i = 0; i < A; ++i) {
    T s[A][A];  // s = Σ_a Bᵀ(i, a) · window slice a
#pragma unroll
    for (int j = 0; j < A; ++j) {
#pragma unroll
      for (int l = 0; l < A; ++l) s[j][l] = T(0);
    }
#pragma unroll 1
    for (int a = 0; a < A; ++a) {
      const T cf = Coef::template bt_coef<T>(i, a);
      const int z = z0 + a;
      if (cf == T(0) || z < 0 || z >= D) continue;
#pragma unroll
      for (int j = 0; j < A; ++j) {
#pragma unroll
        for (int l = 0; l < A; ++l) {
          const int h = h0 + j, w = w0 + l;
          const bool inside = h >= 0 && h < H && w >= 0 && w < W;
          T v = inside ? __ldg(xc + z * xs.d + h * xs.h + w * xs.w) : T(0);
          if (RELU == MW_RELU_SPATIAL) v = relu(v);
          s[j][l] += cf * v;
        }
      }
    }
    transform_columns<T, A, A>(s, [](const T(&in)[A], T(&o)[A]) { Coef::bt(in, o); });
#pragma unroll
    for (int j = 0; j < A; ++j) {
      T row[A];
      Coef::bt(s[j], row);
#pragma unroll
      for (int l = 0; l < A; ++l)
        out[((i * A + j) * A + l) * stride] =
            store_as<TS>(RELU == MW_RELU_WINOGRAD ? relu(row[l]) : row[l]);
    }
  }
}

template <typename T, typename TS, int M, int R, int RELU>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    input_transform_3d_kernel(ConvGeometry g, const T* __restrict__ x, TS* __restrict__ V) {
  int c, p;
  if (thread_pair(g.C, g.P, c, p)) input_transform_3d_device<T, TS, M, R, RELU>(g, x, V, c, p);
}

template <typename T, typename TS, int M, int R>
__device__ __forceinline__ void filter_transform_3d_device(const ConvGeometry& g,
                                                           const T* __restrict__ w,
                                                           TS* __restrict__ U, int k, int c) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  const T* __restrict__ wkc = w + (static_cast<long long>(k) * g.C + c) * R * R * R;
  const long long stride = static_cast<long long>(g.K) * g.C;
  TS* __restrict__ out = U + static_cast<long long>(k) * g.C + c;
#pragma unroll 1
  for (int i = 0; i < A; ++i) {
    // s = Σ_a G(i, a) · filter slice a (R x R), then the 2D transform G s Gᵀ.
    T s[A][R];
#pragma unroll
    for (int j = 0; j < R; ++j) {
#pragma unroll
      for (int l = 0; l < R; ++l) s[j][l] = T(0);
    }
#pragma unroll 1
    for (int a = 0; a < R; ++a) {
      const T cf = Coef::template g_coef<T>(i, a);
      if (cf == T(0)) continue;
#pragma unroll
      for (int j = 0; j < R; ++j) {
#pragma unroll
        for (int l = 0; l < R; ++l) s[j][l] += cf * __ldg(wkc + (a * R + j) * R + l);
      }
    }
    transform_columns<T, R, A>(s, [](const T(&in)[R], T(&o)[A]) { Coef::g(in, o); });
#pragma unroll
    for (int j = 0; j < A; ++j) {
      T row[A];
      Coef::g(s[j], row);
#pragma unroll
      for (int l = 0; l < A; ++l) out[((i * A + j) * A + l) * stride] = store_as<TS>(row[l]);
    }
  }
}

template <typename T, typename TS, int M, int R>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    filter_transform_3d_kernel(ConvGeometry g, const T* __restrict__ w, TS* __restrict__ U) {
  int k, c;
  if (thread_pair(g.K, g.C, k, c)) filter_transform_3d_device<T, TS, M, R>(g, w, U, k, c);
}

template <typename T, int M, int R>
__device__ __forceinline__ void output_transform_3d_device(const ConvGeometry& g,
                                                           const T* __restrict__ Mw,
                                                           const T* __restrict__ bias,
                                                           T* __restrict__ y, int k, int p) {
  using Coef = WinogradCoefficients<M, R>;
  constexpr int A = Coef::alpha;
  const long long stride = static_cast<long long>(g.K) * g.P;
  const T* __restrict__ src = Mw + static_cast<long long>(k) * g.P + p;
  const TileCoord tc = tile_coord(g, p);
  const int Do = g.out[0], Ho = g.out[1], Wo = g.out[2];
  const T b = bias != nullptr ? __ldg(bias + k) : T(0);
  const ActStrides ys = act_strides(g.channels_last, g.K, g.out);
  T* __restrict__ yk = act_channel(y, ys, tc.n, k);
#pragma unroll 1
  for (int u = 0; u < M; ++u) {
    const int od = tc.t[0] * M + u;
    if (od >= Do) break;
    T s[A][A];  // s = Σ_i Aᵀ(u, i) · M slice i, then the 2D output transform of s
#pragma unroll
    for (int j = 0; j < A; ++j) {
#pragma unroll
      for (int l = 0; l < A; ++l) s[j][l] = T(0);
    }
#pragma unroll 1
    for (int i = 0; i < A; ++i) {
      const T cf = Coef::template at_coef<T>(u, i);
      if (cf == T(0)) continue;
#pragma unroll
      for (int j = 0; j < A; ++j) {
#pragma unroll
        for (int l = 0; l < A; ++l) s[j][l] += cf * __ldg(src + ((i * A + j) * A + l) * stride);
      }
    }
    transform_columns<T, A, M>(s, [](const T(&in)[A], T(&o)[M]) { Coef::at(in, o); });
#pragma unroll
    for (int v = 0; v < M; ++v) {
      const int oh = tc.t[1] * M + v;
      T row[M];
      Coef::at(s[v], row);
#pragma unroll
      for (int q = 0; q < M; ++q) {
        const int ow = tc.t[2] * M + q;
        if (oh < Ho && ow < Wo) yk[od * ys.d + oh * ys.h + ow * ys.w] = row[q] + b;
      }
    }
  }
}

template <typename T, int M, int R>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    output_transform_3d_kernel(ConvGeometry g, const T* __restrict__ Mw, const T* __restrict__ bias,
                               T* __restrict__ y) {
  int k, p;
  if (thread_pair(g.K, g.P, k, p)) output_transform_3d_device<T, M, R>(g, Mw, bias, y, k, p);
}

// ---------------------------------------------------------------------------------------
// Generic transforms: any F(m, r), any points, 2D or 3D.  One thread per transformed
// element, a direct sum over the tile with the matrices read from device memory.  No
// register arrays whose size depends on alpha, hence no spills at any alpha <= 16.
// ---------------------------------------------------------------------------------------

// The transform matrices of one axis's F(m, r): row-major, in device memory.
template <typename T>
struct AxisMatrices {
  const T* at;  // m x alpha
  const T* g;   // alpha x r
  const T* bt;  // alpha x alpha
  int m, r, alpha;
};

// The matrices of every axis, axis 0 = depth (unused in 2D: F(1, 1), no matrices), 1 = H, 2 = W.
// A square layer's axes share one set; a rectangular one (F(m_h x m_w, r_h x r_w)) has a set
// per axis, back to back in the caller's array (magma_wino.h).
template <typename T>
struct GenericMatrices {
  AxisMatrices<T> axis[3];
};

// The device array `mats` split into the axes' sets: ndim axes with tile and filter sizes m[i],
// r[i] (the descriptor's order, [D,] H, W); `rectangular`: one set per axis, else one shared.
template <typename T>
MW_HOST_DEVICE inline GenericMatrices<T> split_matrices(const T* mats, int ndim, const int* m,
                                                        const int* r, bool rectangular) {
  GenericMatrices<T> out{};
  out.axis[0] = AxisMatrices<T>{nullptr, nullptr, nullptr, 1, 1, 1};
  const T* set = mats;
  for (int i = 0; i < ndim; ++i) {
    const int a = m[i] + r[i] - 1;
    out.axis[3 - ndim + i] =
        AxisMatrices<T>{set, set + m[i] * a, set + m[i] * a + a * r[i], m[i], r[i], a};
    if (rectangular) set += m[i] * a + a * r[i] + a * a;
  }
  return out;
}

// The Winograd positions of a tile: prod(alpha) over the layer's axes (2D: axis 0 is 1).
template <typename T>
MW_HOST_DEVICE inline int position_count(const GenericMatrices<T>& mat) {
  return mat.axis[0].alpha * mat.axis[1].alpha * mat.axis[2].alpha;
}

// Filter taps: prod(r) over the layer's axes.
template <typename T>
MW_HOST_DEVICE inline int tap_count(const GenericMatrices<T>& mat) {
  return mat.axis[0].r * mat.axis[1].r * mat.axis[2].r;
}

// Split a position index b into its per-axis indices (axis 0 = depth: 0 in 2D, where its alpha
// is 1), b = (i0 * alpha1 + i1) * alpha2 + i2.
template <typename T>
MW_HOST_DEVICE inline void split_position(int b, const GenericMatrices<T>& mat, int (&idx)[3]) {
  idx[2] = b % mat.axis[2].alpha;
  b /= mat.axis[2].alpha;
  idx[1] = b % mat.axis[1].alpha;
  idx[0] = b / mat.axis[1].alpha;
}

// In the generic kernels below, axis 0 (depth) runs its loop only in 3D (NDIM == 3 ? ... : 1),
// so a 2D kernel never reads the absent depth matrices.

template <typename T, typename TS, int NDIM, int RELU>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    input_transform_generic_kernel(ConvGeometry g, GenericMatrices<T> mat, const T* __restrict__ x,
                                   TS* __restrict__ V) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const AxisMatrices<T>&ad = mat.axis[0], &ah = mat.axis[1], &aw = mat.axis[2];
  if (idx >= static_cast<long long>(position_count(mat)) * g.C * g.P) return;
  const int i = static_cast<int>(idx);  // V has < 2^31 elements (C layer)
  const int p = i % g.P;
  const int c = (i / g.P) % g.C;
  const int b = i / g.P / g.C;
  int bi[3];
  split_position(b, mat, bi);
  const TileCoord tc = tile_coord(g, p);
  const int D = g.in[0], H = g.in[1], W = g.in[2];
  const ActStrides xs = act_strides(g.channels_last, g.C, g.in);
  const T* __restrict__ xc = act_channel(x, xs, tc.n, c);
  const int z0 = tc.t[0] * ad.m - g.pad[0];
  const int h0 = tc.t[1] * ah.m - g.pad[1];
  const int w0 = tc.t[2] * aw.m - g.pad[2];
  T acc = T(0);
  for (int a0 = 0; a0 < (NDIM == 3 ? ad.alpha : 1); ++a0) {
    const T c0 = NDIM == 3 ? ad.bt[bi[0] * ad.alpha + a0] : T(1);
    const int z = z0 + a0;
    if (c0 == T(0) || z < 0 || z >= D) continue;
    for (int a1 = 0; a1 < ah.alpha; ++a1) {
      const T c1 = ah.bt[bi[1] * ah.alpha + a1];
      const int h = h0 + a1;
      if (c1 == T(0) || h < 0 || h >= H) continue;
      T row = T(0);
      for (int a2 = 0; a2 < aw.alpha; ++a2) {
        const T c2 = aw.bt[bi[2] * aw.alpha + a2];
        const int w = w0 + a2;
        if (c2 == T(0) || w < 0 || w >= W) continue;
        T v = __ldg(xc + z * xs.d + h * xs.h + w * xs.w);
        if (RELU == MW_RELU_SPATIAL) v = relu(v);
        row += c2 * v;
      }
      acc += c0 * c1 * row;
    }
  }
  if (RELU == MW_RELU_WINOGRAD) acc = relu(acc);
  V[idx] = store_as<TS>(acc);  // idx = (b * C + c) * P + p: exactly V's layout
}

template <typename T, typename TS, int NDIM>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    filter_transform_generic_kernel(ConvGeometry g, GenericMatrices<T> mat, const T* __restrict__ w,
                                    TS* __restrict__ U) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const AxisMatrices<T>&ad = mat.axis[0], &ah = mat.axis[1], &aw = mat.axis[2];
  const int KC = g.K * g.C;
  if (idx >= static_cast<long long>(position_count(mat)) * KC) return;
  const int b = static_cast<int>(idx) / KC;
  const int kc = static_cast<int>(idx) % KC;  // k * C + c
  int bi[3];
  split_position(b, mat, bi);
  const T* __restrict__ wkc = w + kc * tap_count(mat);
  T acc = T(0);
  for (int a0 = 0; a0 < (NDIM == 3 ? ad.r : 1); ++a0) {
    const T c0 = NDIM == 3 ? ad.g[bi[0] * ad.r + a0] : T(1);
    if (c0 == T(0)) continue;
    for (int a1 = 0; a1 < ah.r; ++a1) {
      const T c1 = ah.g[bi[1] * ah.r + a1];
      if (c1 == T(0)) continue;
      T row = T(0);
      for (int a2 = 0; a2 < aw.r; ++a2)
        row += aw.g[bi[2] * aw.r + a2] * __ldg(wkc + (a0 * ah.r + a1) * aw.r + a2);
      acc += c0 * c1 * row;
    }
  }
  U[idx] = store_as<TS>(acc);  // idx = b * K * C + k * C + c: exactly U's layout
}

template <typename T, int NDIM>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    output_transform_generic_kernel(ConvGeometry g, GenericMatrices<T> mat,
                                    const T* __restrict__ Mw, const T* __restrict__ bias,
                                    T* __restrict__ y) {
  // One thread per output element, idx = y's linear index in its layout: consecutive threads
  // write consecutive ow (channels last: consecutive k), so the stores are coalesced.
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int Do = g.out[0], Ho = g.out[1], Wo = g.out[2];
  const long long per_image = static_cast<long long>(g.K) * Do * Ho * Wo;
  if (idx >= per_image * g.N) return;
  int n, k, od, oh, ow;
  split_act_index(static_cast<int>(idx), g.channels_last, g.K, g.out, n, k, od, oh, ow);
  const AxisMatrices<T>&ad = mat.axis[0], &ah = mat.axis[1], &aw = mat.axis[2];
  const int p = ((n * g.tiles[0] + od / ad.m) * g.tiles[1] + oh / ah.m) * g.tiles[2] + ow / aw.m;
  const int u0 = od % ad.m, u1 = oh % ah.m, u2 = ow % aw.m;
  const long long stride = static_cast<long long>(g.K) * g.P;
  const T* __restrict__ src = Mw + static_cast<long long>(k) * g.P + p;
  T acc = T(0);
  for (int i0 = 0; i0 < (NDIM == 3 ? ad.alpha : 1); ++i0) {
    const T c0 = NDIM == 3 ? ad.at[u0 * ad.alpha + i0] : T(1);
    if (c0 == T(0)) continue;
    for (int i1 = 0; i1 < ah.alpha; ++i1) {
      const T c1 = ah.at[u1 * ah.alpha + i1];
      if (c1 == T(0)) continue;
      T row = T(0);
      for (int i2 = 0; i2 < aw.alpha; ++i2) {
        const T c2 = aw.at[u2 * aw.alpha + i2];
        if (c2 == T(0)) continue;
        row += c2 * __ldg(src + ((i0 * ah.alpha + i1) * aw.alpha + i2) * stride);
      }
      acc += c0 * c1 * row;
    }
  }
  if (bias != nullptr) acc += __ldg(bias + k);
  y[idx] = acc;
}

// ---------------------------------------------------------------------------------------
// Host launchers
// ---------------------------------------------------------------------------------------

inline unsigned transform_blocks(long long threads) {
  return static_cast<unsigned>((threads + kTransformThreads - 1) / kTransformThreads);
}

// The ReLU mode becomes a template parameter so the common no-ReLU kernel carries no branch.
template <template <typename, typename, int, int, int> class Kernel, typename T, typename TS, int M,
          int R, typename... Args>
cudaError_t launch_with_relu(int relu_mode, dim3 grid, dim3 block, cudaStream_t stream,
                             Args... args) {
  switch (relu_mode) {
    case MW_RELU_SPATIAL:
      return launch(Kernel<T, TS, M, R, MW_RELU_SPATIAL>::fn, grid, block, 0, stream, args...);
    case MW_RELU_WINOGRAD:
      return launch(Kernel<T, TS, M, R, MW_RELU_WINOGRAD>::fn, grid, block, 0, stream, args...);
    default:
      return launch(Kernel<T, TS, M, R, MW_RELU_NONE>::fn, grid, block, 0, stream, args...);
  }
}

// Kernel "names" as types, so launch_with_relu can instantiate them per ReLU mode.
template <typename T, typename TS, int M, int R, int RELU>
struct InputTransform2d {
  static constexpr auto fn = input_transform_2d_kernel<T, TS, M, R, RELU>;
};
template <typename T, typename TS, int M, int R, int RELU>
struct InputTransform2dNhwc {
  static constexpr auto fn = input_transform_2d_nhwc_kernel<T, TS, M, R, RELU>;
};
template <typename T, typename TS, int M, int R, int RELU>
struct InputTransform3d {
  static constexpr auto fn = input_transform_3d_kernel<T, TS, M, R, RELU>;
};
// The generic kernel in the same form (M, R unused: NDIM rides in the first int).
template <typename T, typename TS, int NDIM, int, int RELU>
struct InputTransformGeneric {
  static constexpr auto fn = input_transform_generic_kernel<T, TS, NDIM, RELU>;
};

template <typename T, typename TS, int NDIM, int M, int R>
cudaError_t input_transform_launch(const ConvGeometry& g, const T* x, TS* V, int relu_mode,
                                   cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(g.C) * g.P)), block(kTransformThreads);
  if constexpr (NDIM == 2) {
    if (g.channels_last)
      return launch_with_relu<InputTransform2dNhwc, T, TS, M, R>(relu_mode, grid, block, stream, g,
                                                                 x, V);
    return launch_with_relu<InputTransform2d, T, TS, M, R>(relu_mode, grid, block, stream, g, x, V);
  } else {
    return launch_with_relu<InputTransform3d, T, TS, M, R>(relu_mode, grid, block, stream, g, x, V);
  }
}

template <typename T, typename TS, int NDIM, int M, int R>
cudaError_t filter_transform_launch(const ConvGeometry& g, const T* w, TS* U, cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(g.K) * g.C)), block(kTransformThreads);
  if constexpr (NDIM == 2) {
    return launch(filter_transform_2d_kernel<T, TS, M, R>, grid, block, 0, stream, g, w, U);
  } else {
    return launch(filter_transform_3d_kernel<T, TS, M, R>, grid, block, 0, stream, g, w, U);
  }
}

template <typename T, int NDIM, int M, int R>
cudaError_t output_transform_launch(const ConvGeometry& g, const T* Mw, const T* bias, T* y,
                                    cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(g.K) * g.P)), block(kTransformThreads);
  if constexpr (NDIM == 2) {
    if (g.channels_last)
      return launch(output_transform_2d_nhwc_kernel<T, M, R>, grid, block, 0, stream, g, Mw, bias,
                    y);
    return launch(output_transform_2d_kernel<T, M, R>, grid, block, 0, stream, g, Mw, bias, y);
  } else {
    return launch(output_transform_3d_kernel<T, M, R>, grid, block, 0, stream, g, Mw, bias, y);
  }
}

// The line kernels (AXIS 1: along H, 2: along W) of F(M, R).
template <typename T, typename TS, int M, int R, int AXIS, int RELU>
struct InputTransformLine {
  static constexpr auto fn = input_transform_line_kernel<T, TS, M, R, AXIS, RELU>;
};
template <int AXIS>
struct LineAxis {
  template <typename T, typename TS, int M, int R, int RELU>
  using Kernel = InputTransformLine<T, TS, M, R, AXIS, RELU>;
};

template <typename T, typename TS, int M, int R, int AXIS>
cudaError_t input_transform_line_launch(const ConvGeometry& g, const T* x, TS* V, int relu_mode,
                                        cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(g.C) * g.P)), block(kTransformThreads);
  return launch_with_relu<LineAxis<AXIS>::template Kernel, T, TS, M, R>(relu_mode, grid, block,
                                                                        stream, g, x, V);
}

template <typename T, typename TS, int M, int R>
cudaError_t filter_transform_line_launch(const ConvGeometry& g, const T* w, TS* U,
                                         cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(g.K) * g.C)), block(kTransformThreads);
  return launch(filter_transform_line_kernel<T, TS, M, R>, grid, block, 0, stream, g, w, U);
}

template <typename T, int M, int R, int AXIS>
cudaError_t output_transform_line_launch(const ConvGeometry& g, const T* Mw, const T* bias, T* y,
                                         cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(g.K) * g.P)), block(kTransformThreads);
  return launch(output_transform_line_kernel<T, M, R, AXIS>, grid, block, 0, stream, g, Mw, bias,
                y);
}

template <typename T, typename TS>
cudaError_t input_transform_generic_launch(int ndim, const ConvGeometry& g,
                                           const GenericMatrices<T>& mat, const T* x, TS* V,
                                           int relu_mode, cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(position_count(mat)) * g.C * g.P)),
      block(kTransformThreads);
  if (ndim == 2)
    return launch_with_relu<InputTransformGeneric, T, TS, 2, 0>(relu_mode, grid, block, stream, g,
                                                                mat, x, V);
  return launch_with_relu<InputTransformGeneric, T, TS, 3, 0>(relu_mode, grid, block, stream, g,
                                                              mat, x, V);
}

template <typename T, typename TS>
cudaError_t filter_transform_generic_launch(int ndim, const ConvGeometry& g,
                                            const GenericMatrices<T>& mat, const T* w, TS* U,
                                            cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(position_count(mat)) * g.K * g.C)),
      block(kTransformThreads);
  if (ndim == 2)
    return launch(filter_transform_generic_kernel<T, TS, 2>, grid, block, 0, stream, g, mat, w, U);
  return launch(filter_transform_generic_kernel<T, TS, 3>, grid, block, 0, stream, g, mat, w, U);
}

template <typename T>
cudaError_t output_transform_generic_launch(int ndim, const ConvGeometry& g,
                                            const GenericMatrices<T>& mat, const T* Mw,
                                            const T* bias, T* y, cudaStream_t stream) {
  const long long outputs = static_cast<long long>(g.N) * g.K * g.out[0] * g.out[1] * g.out[2];
  const dim3 grid(transform_blocks(outputs)), block(kTransformThreads);
  if (ndim == 2)
    return launch(output_transform_generic_kernel<T, 2>, grid, block, 0, stream, g, mat, Mw, bias,
                  y);
  return launch(output_transform_generic_kernel<T, 3>, grid, block, 0, stream, g, mat, Mw, bias, y);
}

}  // namespace mw
