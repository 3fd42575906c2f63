// Tile configurations known at compile time, and the dispatch from runtime (m, r) to them.
#pragma once

#include "launch.cuh"

#if defined(__CUDACC__)
#define MW_HOST_DEVICE __host__ __device__
#else
#define MW_HOST_DEVICE
#endif
#define MW_FORCEINLINE __forceinline__

namespace mw {

// Exact Winograd coefficients of F(M, R) for the default points; specialisations are
// generated into mw_coefficients.h.  The primary template is left undefined on purpose:
// an F(m, r) without a specialisation has only the generic kernels.
template <int M, int R>
struct WinogradCoefficients;

// F(M, R) as a type.
template <int M_, int R_>
struct Tile {
  static constexpr int m = M_;
  static constexpr int r = R_;
  static constexpr int alpha = M_ + R_ - 1;
};

// A compile-time list of tiles.  dispatch(m, r, f) calls f(Tile<m, r>{}) for the entry
// that matches and returns whether one did: the bridge from a runtime F(m, r) to the
// template instantiation that has its coefficients baked in.
template <typename... Tiles>
struct TileList {
  static constexpr bool contains(int m, int r) { return ((Tiles::m == m && Tiles::r == r) || ...); }
  template <typename F>
  static bool dispatch(int m, int r, F&& f) {
    return ((Tiles::m == m && Tiles::r == r ? (f(Tiles{}), true) : false) || ...);
  }
};

}  // namespace mw
