// Exact Cook–Toom transform matrices of F(m, r) on the host: the C ABI's
// mw_winograd_matrices, so that a C or C++ caller runs the generic kernels (any F(m, r), any
// points) without Python.  The same construction as magma_wino/transforms.py, in the same
// exact rational arithmetic, rounded once the same way, so the two agree bit for bit:
//
//   E_k: alpha x k evaluation matrix (row i = [1, p_i, p_i^2, ...], the last row the point at
//   infinity [0, ..., 0, 1]);  Aᵀ = E_mᵀ,  G = E_r,  Bᵀ = E_alpha^-T;  then each row of Bᵀ
//   scaled to a primitive integer vector and the same row of G divided by that factor.
//
// Rationals are __int128 fractions in lowest terms; every operation checks for overflow (the
// default points of every alpha <= 16 stay far inside it), and an overflow is reported, never
// wrapped.  Rounding: each value to the nearest double (ties to even, as Python's
// float(Fraction)), float32 from that double (as the Python side's astype).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace mw {
namespace cook_toom {

using std::size_t;

using i128 = __int128;
using u128 = unsigned __int128;

/// Largest alpha = m + r - 1 (magma_wino.transforms.MAX_ALPHA).
constexpr int kMaxAlpha = 16;

/// Set when an operation would overflow 128 bits; the caller reports it.
struct Overflow {
  bool hit = false;
};

inline i128 abs128(i128 v) { return v < 0 ? -v : v; }

inline i128 gcd128(i128 a, i128 b) {
  a = abs128(a);
  b = abs128(b);
  while (b != 0) {
    const i128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/// num / den in lowest terms, den > 0.
struct Rational {
  i128 num = 0, den = 1;
};

inline Rational make(i128 num, i128 den) {
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const i128 g = gcd128(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  return {num, den};
}

inline i128 mul(i128 a, i128 b, Overflow& of) {
  i128 out;
  if (__builtin_mul_overflow(a, b, &out)) of.hit = true;
  return out;
}

inline i128 add(i128 a, i128 b, Overflow& of) {
  i128 out;
  if (__builtin_add_overflow(a, b, &out)) of.hit = true;
  return out;
}

inline Rational mul(Rational a, Rational b, Overflow& of) {
  // cross-reduce first, so the products stay as small as the result
  const i128 g1 = gcd128(a.num, b.den), g2 = gcd128(b.num, a.den);
  const i128 an = g1 > 1 ? a.num / g1 : a.num, bd = g1 > 1 ? b.den / g1 : b.den;
  const i128 bn = g2 > 1 ? b.num / g2 : b.num, ad = g2 > 1 ? a.den / g2 : a.den;
  return make(mul(an, bn, of), mul(ad, bd, of));
}

inline Rational sub(Rational a, Rational b, Overflow& of) {
  const i128 g = gcd128(a.den, b.den);
  const i128 da = a.den / g, db = b.den / g;  // lcm = a.den * db
  const i128 num = add(mul(a.num, db, of), -mul(b.num, da, of), of);
  return make(num, mul(a.den, db, of));
}

inline Rational inverse(Rational a) { return make(a.den, a.num); }  // a != 0

/// The nearest double to num / den (den > 0), ties to even: 55 significant quotient bits by
/// long division (53 kept, a round bit, a guard bit) and a sticky bit for the rest, then one
/// rounding.
inline double to_double(Rational q) {
  if (q.num == 0) return 0.0;
  const bool neg = q.num < 0;
  const u128 n = static_cast<u128>(neg ? -q.num : q.num), d = static_cast<u128>(q.den);
  u128 mant = n / d, rem = n % d;  // d < 2^127, so rem << 1 below never overflows
  int e = 0;
  bool sticky = false;
  int bits = 0;
  for (u128 t = mant; t != 0; t >>= 1) ++bits;
  if (bits > 55) {  // too many integer bits: the low ones join the sticky bit
    const int k = bits - 55;
    sticky = (mant & ((u128(1) << k) - 1)) != 0;
    mant >>= k;
    e = k;
  }
  while (mant < (u128(1) << 54)) {  // fraction bits, one at a time
    rem <<= 1;
    const bool bit = rem >= d;
    if (bit) rem -= d;
    mant = (mant << 1) | u128(bit);
    --e;
  }
  sticky = sticky || rem != 0;
  u128 kept = mant >> 2;  // 53 bits
  const unsigned low = unsigned(mant & 3u);
  if (low == 3 || (low == 2 && (sticky || (kept & 1u)))) ++kept;  // nearest, ties to even
  double v = static_cast<double>(static_cast<uint64_t>(kept));    // exact: <= 2^53
  for (int x = e + 2; x > 0; --x) v *= 2.0;
  for (int x = e + 2; x < 0; ++x) v *= 0.5;  // exact: no coefficient comes near the subnormals
  return neg ? -v : v;
}

/// The default finite points of F(m, r) (magma_wino.transforms.tile_default_points).
inline std::vector<Rational> default_points(int m, int r) {
  std::vector<Rational> pts;
  if (m == 8 && r == 3) {  // DEFAULT_POINTS[(8, 3)]: reciprocal pairs, chosen for float32
    const int64_t tab[9][2] = {{0, 1}, {4, 9},  {-4, 9}, {5, 6}, {-5, 6},
                               {6, 5}, {-6, 5}, {9, 4},  {-9, 4}};
    for (const auto& p : tab) pts.push_back(make(p[0], p[1]));
    return pts;
  }
  const int count = m + r - 2;
  pts = {make(0, 1), make(1, 1), make(-1, 1)};
  for (int k = 2; int(pts.size()) < count; ++k) {
    pts.push_back(make(k, 1));
    pts.push_back(make(-k, 1));
    pts.push_back(make(1, k));
    pts.push_back(make(-1, k));
  }
  pts.resize(count);
  return pts;
}

/// The exact matrices: at (m x alpha), g (alpha x r), bt (alpha x alpha), row-major.
struct Matrices {
  std::vector<Rational> at, g, bt;
};

/// E_k of the points (alpha - 1 finite ones, then infinity): alpha x k, row-major.
inline std::vector<Rational> eval_matrix(const std::vector<Rational>& pts, int k, Overflow& of) {
  const int alpha = int(pts.size()) + 1;
  std::vector<Rational> e(size_t(alpha) * k);
  for (int i = 0; i + 1 < alpha; ++i) {
    Rational p{1, 1};
    for (int j = 0; j < k; ++j) {
      e[size_t(i) * k + j] = p;
      p = mul(p, pts[i], of);
    }
  }
  e[size_t(alpha - 1) * k + (k - 1)] = Rational{1, 1};
  return e;
}

/// Build the matrices of F(m, r) on ``pts`` (distinct, alpha - 1 of them); false on overflow.
inline bool build(int m, int r, const std::vector<Rational>& pts, Matrices* out) {
  Overflow of;
  const int alpha = m + r - 1;
  // Gauss–Jordan inverse of E_alpha (a Vandermonde matrix with the row of infinity: invertible
  // for distinct points, so a nonzero pivot always exists).
  std::vector<Rational> a = eval_matrix(pts, alpha, of), inv(size_t(alpha) * alpha);
  for (int i = 0; i < alpha; ++i) inv[size_t(i) * alpha + i] = Rational{1, 1};
  for (int col = 0; col < alpha && !of.hit; ++col) {
    int piv = col;
    while (a[size_t(piv) * alpha + col].num == 0) ++piv;
    for (int j = 0; j < alpha; ++j) {
      std::swap(a[size_t(col) * alpha + j], a[size_t(piv) * alpha + j]);
      std::swap(inv[size_t(col) * alpha + j], inv[size_t(piv) * alpha + j]);
    }
    const Rational s = inverse(a[size_t(col) * alpha + col]);
    for (int j = 0; j < alpha; ++j) {
      a[size_t(col) * alpha + j] = mul(a[size_t(col) * alpha + j], s, of);
      inv[size_t(col) * alpha + j] = mul(inv[size_t(col) * alpha + j], s, of);
    }
    for (int i = 0; i < alpha; ++i) {
      const Rational f = a[size_t(i) * alpha + col];
      if (i == col || f.num == 0) continue;
      for (int j = 0; j < alpha; ++j) {
        a[size_t(i) * alpha + j] =
            sub(a[size_t(i) * alpha + j], mul(f, a[size_t(col) * alpha + j], of), of);
        inv[size_t(i) * alpha + j] =
            sub(inv[size_t(i) * alpha + j], mul(f, inv[size_t(col) * alpha + j], of), of);
      }
    }
  }
  out->bt.assign(size_t(alpha) * alpha, Rational{});
  for (int i = 0; i < alpha; ++i)
    for (int j = 0; j < alpha; ++j) out->bt[size_t(i) * alpha + j] = inv[size_t(j) * alpha + i];
  out->g = eval_matrix(pts, r, of);
  const std::vector<Rational> em = eval_matrix(pts, m, of);
  out->at.assign(size_t(m) * alpha, Rational{});
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < alpha; ++j) out->at[size_t(i) * alpha + j] = em[size_t(j) * m + i];
  // Row i of Bᵀ times s (its primitive integer form: s = lcm(dens) / gcd(nums · lcm / den)),
  // row i of G divided by s: the input transform gets integer coefficients.
  for (int i = 0; i < alpha && !of.hit; ++i) {
    i128 lcm = 1;
    for (int j = 0; j < alpha; ++j) {
      const i128 d = out->bt[size_t(i) * alpha + j].den;
      lcm = mul(lcm / gcd128(lcm, d), d, of);
    }
    i128 g = 0;
    for (int j = 0; j < alpha; ++j) {
      const Rational v = out->bt[size_t(i) * alpha + j];
      g = gcd128(g, mul(v.num, lcm / v.den, of));
    }
    const Rational s = g != 0 ? make(lcm, g) : Rational{1, 1};
    for (int j = 0; j < alpha; ++j)
      out->bt[size_t(i) * alpha + j] = mul(out->bt[size_t(i) * alpha + j], s, of);
    for (int j = 0; j < r; ++j)
      out->g[size_t(i) * r + j] = mul(out->g[size_t(i) * r + j], inverse(s), of);
  }
  return !of.hit;
}

}  // namespace cook_toom
}  // namespace mw
