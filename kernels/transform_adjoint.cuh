// Adjoints (transposes) of the three generic tile transforms, for the backward pass
// (DESIGN.md, "Training"):
//
//   output adjoint:  dM_tile = (Aᵀ)ᵀ · dY_tile · Aᵀ       dy (N x K x [Do x] Ho x Wo) -> dM
//   input adjoint:   dx = Σ_tiles (Bᵀ)ᵀ · dV_tile · Bᵀ    dV (alpha^nd x C x P) -> dx
//   filter adjoint:  dw[k, c] = Gᵀ · dU[., k, c] · G     dU (alpha^nd x K x C) -> dw
//
// with dM alpha^nd x K x P, dx N x C x [D x] H x W, dw K x C x r^nd (3D: along all three axes;
// a rectangular F(m_h x m_w, r_h x r_w) has each axis's own matrices, alpha and r).
// `mat` is the SAME GenericMatrices the forward generic kernels take (Aᵀ, G, Bᵀ as stored); the
// transposes are applied by indexing (Aᵀ[u, i] read as the (i, u) entry of A), so the backward
// needs no second copy of the matrices.  Any F(m, r) with alpha <= MW_MAX_ALPHA, any interpolation
// points; float32 and float64.  ReLU masks, bias and pruning masks are not applied here: the Python
// layer applies them to dy / dV / dU.
//
// Layers as in transform.cuh: *_kernel (the __global__, one thread per result element: a
// direct sum, no register arrays sized by alpha, so no spills at any alpha) -> *_launch (host:
// grid) -> mw_*_adjoint in magma_wino.cu (checks and dtype dispatch).  Every result element is
// written exactly once by one thread: no atomics, so the results are deterministic, and
// elements no tile touches are written as 0 (never left as they were).
#pragma once

#include "transform.cuh"

namespace mw {

// min of two ints on host and device alike (no reliance on CUDA's or the emulator's min()).
MW_HOST_DEVICE inline int min_int(int a, int b) { return a < b ? a : b; }

// dM[b, k, p] = Σ_u Aᵀ[u0, b0] Aᵀ[u1, b1] Aᵀ[u2, b2] dy[n, k, t·m + u]  (u over the m^nd
// outputs of tile p that lie inside y: the forward clipped the rest, so they contribute 0).
// Thread index = dM's linear index (b · K + k) · P + p: p fastest, so the stores are coalesced
// (the loads of dy then step by m along the row, what the forward's M loads do in reverse).
template <typename T, int NDIM>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    output_transform_adjoint_kernel(ConvGeometry g, GenericMatrices<T> mat,
                                    const T* __restrict__ dy, T* __restrict__ dM) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const AxisMatrices<T>&ad = mat.axis[0], &ah = mat.axis[1], &aw = mat.axis[2];
  if (idx >= static_cast<long long>(position_count(mat)) * g.K * g.P) return;
  const int i = static_cast<int>(idx);  // M has < 2^31 elements (C layer)
  const int p = i % g.P;
  const int k = (i / g.P) % g.K;
  const int b = i / g.P / g.K;
  int bi[3];
  split_position(b, mat, bi);
  const TileCoord tc = tile_coord(g, p);
  const int Do = g.out[0], Ho = g.out[1], Wo = g.out[2];
  const ActStrides ys = act_strides(g.channels_last, g.K, g.out);  // dy has y's layout
  const T* __restrict__ dyk = act_channel(dy, ys, tc.n, k);
  // Outputs of this tile inside y, per axis (the clipped edge tile has fewer than m).
  const int z0 = tc.t[0] * ad.m, h0 = tc.t[1] * ah.m, w0 = tc.t[2] * aw.m;
  const int n0 = NDIM == 3 ? min_int(ad.m, Do - z0) : 1, n1 = min_int(ah.m, Ho - h0),
            n2 = min_int(aw.m, Wo - w0);
  T acc = T(0);
  for (int u0 = 0; u0 < n0; ++u0) {
    const T c0 = NDIM == 3 ? ad.at[u0 * ad.alpha + bi[0]] : T(1);  // (Aᵀ)ᵀ[b0, u0]
    if (c0 == T(0)) continue;
    for (int u1 = 0; u1 < n1; ++u1) {
      const T c1 = ah.at[u1 * ah.alpha + bi[1]];
      if (c1 == T(0)) continue;
      const T* __restrict__ row = dyk + (z0 + u0) * ys.d + (h0 + u1) * ys.h + w0 * ys.w;
      T sum = T(0);
      for (int u2 = 0; u2 < n2; ++u2) {
        const T c2 = aw.at[u2 * aw.alpha + bi[2]];
        if (c2 != T(0)) sum += c2 * __ldg(row + u2 * ys.w);
      }
      acc += c0 * c1 * sum;
    }
  }
  dM[idx] = acc;
}

// The tiles along one axis whose alpha-window covers padded coordinate q (= x coordinate +
// padding): t·m <= q < t·m + alpha, i.e. t in [ceil((q - alpha + 1) / m), floor(q / m)],
// clipped to [0, tiles).  At most ceil(alpha / m) of them (the windows overlap by r - 1).
MW_HOST_DEVICE inline void covering_tiles(int q, int m, int alpha, int tiles, int& first,
                                          int& last) {
  const int lo = q - alpha + 1;
  first = lo <= 0 ? 0 : (lo + m - 1) / m;
  last = min_int(q / m, tiles - 1);  // q >= 0: the caller adds the padding to an x coordinate
}

// dx[n, c, z, h, w] = Σ over the tiles t covering (z, h, w) of
//   Σ_i Bᵀ[i0, l0] Bᵀ[i1, l1] Bᵀ[i2, l2] dV[i, c, p(n, t)],   l = (z, h, w) + pad − t·m.
// A gather: one thread per dx element (idx = dx's linear index in x's layout, w -- channels
// last: c -- fastest: coalesced stores),
// each written exactly once, no atomics.  An element no window covers (none in a valid
// geometry, but the loop bounds say so rather than assume it) gets 0.
template <typename T, int NDIM>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    input_transform_adjoint_kernel(ConvGeometry g, GenericMatrices<T> mat, const T* __restrict__ dV,
                                   T* __restrict__ dx) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int D = g.in[0], H = g.in[1], W = g.in[2];
  if (idx >= static_cast<long long>(g.N) * g.C * D * H * W) return;
  int n, c, z, h, w;  // x has < 2^31 elements (C layer)
  split_act_index(static_cast<int>(idx), g.channels_last, g.C, g.in, n, c, z, h, w);
  const AxisMatrices<T>&ad = mat.axis[0], &ah = mat.axis[1], &aw = mat.axis[2];
  const int q0 = z + g.pad[0], q1 = h + g.pad[1], q2 = w + g.pad[2];
  int f0 = 0, e0 = 0, f1, e1, f2, e2;
  if (NDIM == 3) covering_tiles(q0, ad.m, ad.alpha, g.tiles[0], f0, e0);
  covering_tiles(q1, ah.m, ah.alpha, g.tiles[1], f1, e1);
  covering_tiles(q2, aw.m, aw.alpha, g.tiles[2], f2, e2);
  const long long pos_stride = static_cast<long long>(g.C) * g.P;  // b -> b + 1 in dV
  const T* __restrict__ dVc = dV + static_cast<long long>(c) * g.P;
  T acc = T(0);
  for (int t0 = f0; t0 <= e0; ++t0) {
    const int l0 = q0 - t0 * ad.m;  // local index in the window (2D: 0, one position)
    for (int t1 = f1; t1 <= e1; ++t1) {
      const int l1 = q1 - t1 * ah.m;
      for (int t2 = f2; t2 <= e2; ++t2) {
        const int l2 = q2 - t2 * aw.m;
        const int p = ((n * g.tiles[0] + t0) * g.tiles[1] + t1) * g.tiles[2] + t2;
        const T* __restrict__ src = dVc + p;
        // ((Bᵀ)ᵀ dV_tile Bᵀ)[l]: the transposed Bᵀ is Bᵀ read by column l.
        for (int i0 = 0; i0 < (NDIM == 3 ? ad.alpha : 1); ++i0) {
          const T c0 = NDIM == 3 ? ad.bt[i0 * ad.alpha + l0] : T(1);
          if (c0 == T(0)) continue;
          for (int i1 = 0; i1 < ah.alpha; ++i1) {
            const T c1 = ah.bt[i1 * ah.alpha + l1];
            if (c1 == T(0)) continue;
            T sum = T(0);
            for (int i2 = 0; i2 < aw.alpha; ++i2) {
              const T c2 = aw.bt[i2 * aw.alpha + l2];
              if (c2 != T(0))
                sum += c2 * __ldg(src + ((i0 * ah.alpha + i1) * aw.alpha + i2) * pos_stride);
            }
            acc += c0 * c1 * sum;
          }
        }
      }
    }
  }
  dx[idx] = acc;
}

// dw[k, c, a] = Σ_b G[b0, a0] G[b1, a1] G[b2, a2] dU[b, k, c]   (Gᵀ · dU · G per axis).
// One thread per dw element, idx = (k · C + c) · r^nd + a: dw's layout, coalesced stores.
template <typename T, int NDIM>
__global__ void __launch_bounds__(kTransformThreads, kTransformMinBlocks)
    filter_transform_adjoint_kernel(ConvGeometry g, GenericMatrices<T> mat,
                                    const T* __restrict__ dU, T* __restrict__ dw) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  const AxisMatrices<T>&ad = mat.axis[0], &ah = mat.axis[1], &aw = mat.axis[2];
  const int taps = tap_count(mat);
  const int KC = g.K * g.C;
  if (idx >= static_cast<long long>(taps) * KC) return;
  const int kc = static_cast<int>(idx) / taps;  // k * C + c
  int tap = static_cast<int>(idx) % taps;
  const int a2 = tap % aw.r;
  tap /= aw.r;
  const int a1 = tap % ah.r;
  const int a0 = tap / ah.r;            // 0 in 2D (axis 0 has r = 1)
  const T* __restrict__ src = dU + kc;  // dU[b, k, c] = src[b * KC]
  T acc = T(0);
  for (int b0 = 0; b0 < (NDIM == 3 ? ad.alpha : 1); ++b0) {
    const T c0 = NDIM == 3 ? ad.g[b0 * ad.r + a0] : T(1);  // Gᵀ[a0, b0]
    if (c0 == T(0)) continue;
    for (int b1 = 0; b1 < ah.alpha; ++b1) {
      const T c1 = ah.g[b1 * ah.r + a1];
      if (c1 == T(0)) continue;
      T sum = T(0);
      for (int b2 = 0; b2 < aw.alpha; ++b2) {
        const T c2 = aw.g[b2 * aw.r + a2];
        if (c2 != T(0))
          sum +=
              c2 * __ldg(src + static_cast<long long>((b0 * ah.alpha + b1) * aw.alpha + b2) * KC);
      }
      acc += c0 * c1 * sum;
    }
  }
  dw[idx] = acc;
}

// ---------------------------------------------------------------------------------------
// Host launchers: one thread per result element, kTransformThreads per block.
// ---------------------------------------------------------------------------------------

template <typename T>
cudaError_t output_transform_adjoint_launch(int ndim, const ConvGeometry& g,
                                            const GenericMatrices<T>& mat, const T* dy, T* dM,
                                            cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(position_count(mat)) * g.K * g.P)),
      block(kTransformThreads);
  if (ndim == 2)
    return launch(output_transform_adjoint_kernel<T, 2>, grid, block, 0, stream, g, mat, dy, dM);
  return launch(output_transform_adjoint_kernel<T, 3>, grid, block, 0, stream, g, mat, dy, dM);
}

template <typename T>
cudaError_t input_transform_adjoint_launch(int ndim, const ConvGeometry& g,
                                           const GenericMatrices<T>& mat, const T* dV, T* dx,
                                           cudaStream_t stream) {
  const long long inputs = static_cast<long long>(g.N) * g.C * g.in[0] * g.in[1] * g.in[2];
  const dim3 grid(transform_blocks(inputs)), block(kTransformThreads);
  if (ndim == 2)
    return launch(input_transform_adjoint_kernel<T, 2>, grid, block, 0, stream, g, mat, dV, dx);
  return launch(input_transform_adjoint_kernel<T, 3>, grid, block, 0, stream, g, mat, dV, dx);
}

template <typename T>
cudaError_t filter_transform_adjoint_launch(int ndim, const ConvGeometry& g,
                                            const GenericMatrices<T>& mat, const T* dU, T* dw,
                                            cudaStream_t stream) {
  const dim3 grid(transform_blocks(static_cast<long long>(tap_count(mat)) * g.K * g.C)),
      block(kTransformThreads);
  if (ndim == 2)
    return launch(filter_transform_adjoint_kernel<T, 2>, grid, block, 0, stream, g, mat, dU, dw);
  return launch(filter_transform_adjoint_kernel<T, 3>, grid, block, 0, stream, g, mat, dU, dw);
}

}  // namespace mw
