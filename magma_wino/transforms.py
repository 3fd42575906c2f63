"""Exact Cook–Toom (Winograd) transforms for F(m, r) and their n-D form.

F(m, r) computes ``m`` outputs of an ``r``-tap correlation

    y[i] = sum_j d[i + j] * g[j],      i = 0..m-1,  d of length alpha = m + r - 1

(what CNN layers call "convolution") with alpha multiplications:

    y = Aᵀ [ (G g) ⊙ (Bᵀ d) ]

and in 2D ``Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A``; n-D applies the 1D transform
along every axis.

Construction (Toom–Cook / Lagrange, then the transposition principle).
Pick ``alpha - 1`` distinct finite points ``p_i`` and the point at infinity.
Let ``E_k`` be the ``alpha x k`` evaluation matrix: row ``i`` is
``[1, p_i, p_i², …, p_i^(k-1)]`` and the row of ∞ is ``[0, …, 0, 1]`` (the
leading coefficient).  The *linear convolution* ``s = g * h`` of a length-r and
a length-m sequence is ``s = E_α⁻¹ [(E_r g) ⊙ (E_m h)]``, i.e. ``s = C_g h`` with
``C_g = E_α⁻¹ diag(E_r g) E_m``.  The correlation above is ``y = C_gᵀ d``, hence

    Aᵀ = E_mᵀ   (m x alpha),     G = E_r   (alpha x r),     Bᵀ = E_α⁻ᵀ  (alpha x alpha).

Each row ``i`` of ``Bᵀ`` is then rescaled to a primitive integer vector and row
``i`` of ``G`` divided by the same factor (the product ``G_i · Bᵀ_i`` is
unchanged).  So the input transform — applied once per tile and input channel,
the most frequent transform — has integer coefficients, and the fractions sit in
the filter transform, which runs once per layer.

Everything is computed in exact rational arithmetic (:class:`fractions.Fraction`)
and cached; :meth:`WinogradTransform.matrices` rounds once to the requested dtype.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational

import numpy as np

__all__ = [
    "DEFAULT_POINTS",
    "MAX_ALPHA",
    "WinogradTransform",
    "default_points",
    "tile_default_points",
    "winograd",
]

#: Largest supported tile size alpha = m + r - 1.  Beyond 16 the interpolation
#: points' powers make the transforms numerically useless in float32 anyway.
MAX_ALPHA = 16

Matrix = tuple[tuple[Fraction, ...], ...]


def default_points(count: int) -> tuple[Fraction, ...]:
    """The first ``count`` points of the default sequence.

    ``0, 1, -1, 2, -2, 1/2, -1/2, 3, -3, 1/3, -1/3, 4, …``: small integers and
    their reciprocals, which keep the transform coefficients (and so the
    floating-point error) as small as such simple points allow.  ``count`` is at most
    ``MAX_ALPHA - 1`` (the points of the largest supported tile).  The default points of a
    tile F(m, r) are these unless :data:`DEFAULT_POINTS` lists the tile
    (:func:`tile_default_points`).
    """
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"count must be an int, got {type(count).__name__}")
    if not 0 <= count <= MAX_ALPHA - 1:
        raise ValueError(f"count must be in [0, MAX_ALPHA - 1] = [0, {MAX_ALPHA - 1}], got {count}")
    pts: list[Fraction] = [Fraction(0), Fraction(1), Fraction(-1)]
    k = 2
    while len(pts) < count:
        pts += [Fraction(k), Fraction(-k), Fraction(1, k), Fraction(-1, k)]
        k += 1
    return tuple(pts[:count])


#: Default finite points per (m, r) where they are not ``default_points(m + r - 2)``: chosen for
#: float32 accuracy by ``tools/search_points.py`` (docs/accuracy.md, "Better interpolation
#: points"), which screens every symmetric set {0, ±p₁, ±p₂, …} with p = n/d, n, d ≤ 9 by the
#: growth factor β₂ (accuracy.growth_factor) and measures the best on VGG-16 layers.
#:
#: * F(8, 3): 0, ±4/9, ±5/6, ±6/5, ±9/4 — reciprocal pairs (p, 1/p) as in Barabasz et al. 2018;
#:   β₂ 30.6 instead of 148.5 for 0, ±1, ±2, ±1/2, ±3; float32 max rel. error over the
#:   VGG-16 layers 1.3e-4 instead of 2.6e-3 (20× smaller); its primitive integer Bᵀ entries
#:   stay below 2²⁴ (largest 15428257), so the input transform's coefficients are exact in float32.
#:
#: Every other tile keeps ``default_points``: for F(6, 3) no point set found is better than
#: 0, ±1, ±2, ±1/2 (Lavin's F(6×6, 3×3) points) by more than a few percent (β₂ ≥ 11.5 against
#: 11.78); for F(4, 3) and F(2, 5), 0, ±2/3, ±3/2 is 3.9× more accurate (β₂ 4.63 / 5.16
#: against 9.71 / 9.94) but costs 10 more multiplications per 1D input transform in the
#: specialised kernels (docs/accuracy.md) — available as ``points=``, left for a decision on
#: that cost.
DEFAULT_POINTS: dict[tuple[int, int], tuple[Fraction, ...]] = {
    (8, 3): tuple(Fraction(p) for p in ("0", "4/9", "-4/9", "5/6", "-5/6", "6/5", "-6/5", "9/4", "-9/4")),
}


def tile_default_points(m: int, r: int) -> tuple[Fraction, ...]:
    """The default finite points of F(m, r): :data:`DEFAULT_POINTS` ``[(m, r)]`` where the table
    has the tile, else ``default_points(m + r - 2)``."""
    m, r = _check_mr(m, r)
    return DEFAULT_POINTS.get((m, r)) or default_points(m + r - 2)


def _as_fraction(p: object, index: int) -> Fraction:
    if isinstance(p, (bool, np.bool_)):
        raise TypeError(f"points[{index}] must be a finite rational number, got bool")
    if isinstance(p, (Fraction, int, Rational)):
        return Fraction(p)  # type: ignore[arg-type]
    if isinstance(p, (float, np.floating)):
        if not math.isfinite(p):
            raise ValueError(
                f"points[{index}] must be finite (the point at infinity is always "
                f"included), got {p!r}"
            )
        return Fraction(float(p))
    if isinstance(p, (np.integer,)):
        return Fraction(int(p))
    if isinstance(p, str):
        try:
            return Fraction(p)
        except ValueError as exc:
            raise ValueError(f"points[{index}] = {p!r} is not a rational number") from exc
    raise TypeError(f"points[{index}] must be a rational number, got {type(p).__name__}")


def _check_mr(m: object, r: object) -> tuple[int, int]:
    for name, v in (("m", m), ("r", r)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    alpha = int(m) + int(r) - 1  # type: ignore[operator]
    if alpha > MAX_ALPHA:
        raise ValueError(
            f"F(m={m}, r={r}) has tile size alpha = m + r - 1 = {alpha}; "
            f"at most {MAX_ALPHA} is supported"
        )
    return int(m), int(r)  # type: ignore[arg-type]


def _eval_matrix(points: Sequence[Fraction], k: int) -> list[list[Fraction]]:
    """alpha x k evaluation matrix: finite points, then the point at infinity."""
    rows = [[p**j for j in range(k)] for p in points]
    rows.append([Fraction(0)] * (k - 1) + [Fraction(1)])
    return rows


def _inverse(a: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact Gauss–Jordan inverse of a square rational matrix."""
    n = len(a)
    aug = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(a)]
    for col in range(n):
        piv = next(i for i in range(col, n) if aug[i][col] != 0)
        aug[col], aug[piv] = aug[piv], aug[col]
        inv = 1 / aug[col][col]
        aug[col] = [v * inv for v in aug[col]]
        for i in range(n):
            if i != col and aug[i][col] != 0:
                f = aug[i][col]
                aug[i] = [vi - f * vc for vi, vc in zip(aug[i], aug[col])]
    return [row[n:] for row in aug]


def _primitive_scale(row: Sequence[Fraction]) -> Fraction:
    """Factor s > 0 such that s * row is a primitive integer vector."""
    den = 1
    for v in row:
        den = den * v.denominator // math.gcd(den, v.denominator)
    nums = [int(v * den) for v in row]
    g = functools.reduce(math.gcd, (abs(n) for n in nums), 0)
    return Fraction(den, g) if g else Fraction(1)


def _fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def _format_matrix(name: str, mat: Matrix) -> str:
    cells = [[_fmt(v) for v in row] for row in mat]
    width = max((len(c) for row in cells for c in row), default=1)
    lines = [f"  {name} ({len(mat)}x{len(mat[0]) if mat else 0}):"]
    lines += ["    [" + "  ".join(c.rjust(width) for c in row) + "]" for row in cells]
    return "\n".join(lines)


@dataclass(frozen=True)
class WinogradTransform:
    """The exact transform matrices of F(m, r) (use :func:`winograd` to build one).

    Attributes:
        m: output tile size per axis.
        r: filter size per axis.
        alpha: input tile size ``m + r - 1``.
        points: the ``alpha - 1`` finite interpolation points (∞ is implied).
    """

    m: int
    r: int
    points: tuple[Fraction, ...]
    _AT: Matrix
    _G: Matrix
    _BT: Matrix

    @property
    def alpha(self) -> int:
        return self.m + self.r - 1

    def exact(self) -> tuple[Matrix, Matrix, Matrix]:
        """(Aᵀ, G, Bᵀ) as nested tuples of :class:`~fractions.Fraction`."""
        return self._AT, self._G, self._BT

    def matrices(self, dtype: object = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Aᵀ ``m x alpha``, G ``alpha x r``, Bᵀ ``alpha x alpha``) as NumPy arrays.

        Each coefficient is rounded once from its exact value (via float64).
        The returned arrays are read-only and cached.
        """
        try:
            dt = np.dtype(dtype)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}") from None
        if dt.kind not in "fc":
            raise TypeError(f"dtype must be a floating-point dtype, got {dt}")
        return _matrices(self, dt.str)

    def __str__(self) -> str:
        pts = ", ".join(_fmt(p) for p in self.points)
        head = (
            f"F({self.m}, {self.r}): alpha = {self.alpha}, points = [{pts}, inf]\n"
            f"  y = Aᵀ[(G g) ⊙ (Bᵀ d)]   (2D: Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A)"
        )
        return "\n".join(
            [head, _format_matrix("Aᵀ", self._AT), _format_matrix("G", self._G),
             _format_matrix("Bᵀ", self._BT)]
        )

    def __repr__(self) -> str:
        return str(self)


@functools.cache
def _matrices(t: WinogradTransform, dtype_str: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out = []
    for mat in t.exact():
        a = np.array([[float(v) for v in row] for row in mat], dtype=np.float64).astype(dtype_str)
        a.setflags(write=False)
        out.append(a)
    return tuple(out)  # type: ignore[return-value]


@functools.cache
def _build(m: int, r: int, points: tuple[Fraction, ...]) -> WinogradTransform:
    alpha = m + r - 1
    e_alpha = _eval_matrix(points, alpha)
    inv = _inverse(e_alpha)
    bt = [[inv[j][i] for j in range(alpha)] for i in range(alpha)]  # E_α^{-T}
    g = _eval_matrix(points, r)
    e_m = _eval_matrix(points, m)
    at = [[e_m[j][i] for j in range(alpha)] for i in range(m)]  # E_mᵀ
    for i in range(alpha):
        s = _primitive_scale(bt[i])
        bt[i] = [v * s for v in bt[i]]
        g[i] = [v / s for v in g[i]]
    as_t = lambda mat: tuple(tuple(row) for row in mat)  # noqa: E731
    return WinogradTransform(m, r, points, as_t(at), as_t(g), as_t(bt))


def winograd(m: int, r: int, points: Sequence[object] | None = None) -> WinogradTransform:
    """Build (or fetch from cache) the exact Winograd transform F(m, r).

    Args:
        m: outputs per tile and axis, ``m >= 1``.
        r: filter taps per axis, ``r >= 1``.  ``alpha = m + r - 1 <= 16``.
        points: ``alpha - 1`` distinct finite rational interpolation points
            (ints, Fractions, strings like ``"1/2"``, or exactly representable
            floats).  The point at infinity is always added.  Default:
            :func:`tile_default_points` (the :data:`DEFAULT_POINTS` table, else
            :func:`default_points`).

    Raises:
        TypeError: ``m``/``r`` not ints, or a point that is not a number.
        ValueError: ``m < 1``, ``r < 1``, ``alpha > 16``, the wrong number of
            points, repeated or non-finite points.
    """
    m, r = _check_mr(m, r)
    alpha = m + r - 1
    if points is None:
        pts = tile_default_points(m, r)
    else:
        if isinstance(points, (str, bytes)) or not isinstance(points, Sequence | np.ndarray):
            raise TypeError(f"points must be a sequence of numbers, got {type(points).__name__}")
        pts = tuple(_as_fraction(p, i) for i, p in enumerate(points))
        if len(pts) != alpha - 1:
            raise ValueError(
                f"points: F({m}, {r}) needs alpha - 1 = {alpha - 1} finite points "
                f"(infinity is implied), got {len(pts)}"
            )
        if len(set(pts)) != len(pts):
            dup = sorted({_fmt(p) for p in pts if pts.count(p) > 1})
            raise ValueError(f"points must be distinct, repeated: {', '.join(dup)}")
    return _build(m, r, pts)
