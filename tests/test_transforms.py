"""Tests of magma_wino.transforms: exact identities, construction, points, errors, printing."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from magma_wino.transforms import (
    DEFAULT_POINTS,
    MAX_ALPHA,
    default_points,
    tile_default_points,
    winograd,
)

ALL_F = [(m, r) for m in range(1, 9) for r in range(1, 8)]  # alpha up to 14


# ----------------------------------------------------------------------------- helpers


def _matvec(a, x):
    return [sum((aij * xj for aij, xj in zip(row, x)), Fraction(0)) for row in a]


def _matmul(a, b):
    bt = list(zip(*b))
    return [[sum((x * y for x, y in zip(row, col)), Fraction(0)) for col in bt] for row in a]


def _transpose(a):
    return [list(col) for col in zip(*a)]


def _correlate1d(d, g):
    m = len(d) - len(g) + 1
    return [sum((d[i + j] * g[j] for j in range(len(g))), Fraction(0)) for i in range(m)]


def _correlate2d(d, g):
    r = len(g)
    m = len(d) - r + 1
    return [
        [sum((d[i + u][j + v] * g[u][v] for u in range(r) for v in range(r)), Fraction(0))
         for j in range(m)]
        for i in range(m)
    ]


def _rand_ints(rnd, n, lo=-3, hi=3):
    return [Fraction(rnd.randint(lo, hi)) for _ in range(n)]


def _eval_matrix(points, k):
    rows = [[Fraction(p) ** j for j in range(k)] for p in points]
    rows.append([Fraction(0)] * (k - 1) + [Fraction(1)])
    return rows


def _assert_tensor_identity(t):
    """Σ_b Aᵀ[i,b]·G[b,j]·Bᵀ[b,a] = [a == i + j] for all i, j, a.

    The bilinear map (g, d) ↦ Aᵀ[(G g) ⊙ (Bᵀ d)] is fixed by its values on basis
    vectors g = e_j, d = e_a, where the correlation gives y_i = [a == i + j]: this
    proves y = Aᵀ[(G g) ⊙ (Bᵀ d)] for *all* g, d (and so in n-D, by separability).
    """
    at, g, bt = t.exact()
    for i in range(t.m):
        for j in range(t.r):
            for a in range(t.alpha):
                s = sum((at[i][b] * g[b][j] * bt[b][a] for b in range(t.alpha)), Fraction(0))
                assert s == (1 if a == i + j else 0), (t.m, t.r, i, j, a, s)


# ----------------------------------------------------------------------------- exact identities


@pytest.mark.parametrize("m,r", ALL_F, ids=[f"F({m},{r})" for m, r in ALL_F])
def test_exact_bilinear_identity_on_basis_all_F(m, r):
    _assert_tensor_identity(winograd(m, r))


@pytest.mark.parametrize("m,r", ALL_F, ids=[f"F({m},{r})" for m, r in ALL_F])
def test_exact_1d_correlation_on_random_integers_all_F(m, r):
    t = winograd(m, r)
    at, g_mat, bt = t.exact()
    rnd = random.Random(1000 * m + r)
    for _ in range(3):
        g = _rand_ints(rnd, r)
        d = _rand_ints(rnd, t.alpha)
        y = _matvec(at, [a * b for a, b in zip(_matvec(g_mat, g), _matvec(bt, d))])
        assert y == _correlate1d(d, g)


@pytest.mark.parametrize("m,r", ALL_F, ids=[f"F({m},{r})" for m, r in ALL_F])
def test_exact_2d_correlation_on_random_integers_all_F(m, r):
    """Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A equals the 2D correlation exactly (one sample each)."""
    t = winograd(m, r)
    at, g_mat, bt = (list(map(list, x)) for x in t.exact())
    rnd = random.Random(7919 * m + r)
    g = [_rand_ints(rnd, r, -2, 2) for _ in range(r)]
    d = [_rand_ints(rnd, t.alpha, -2, 2) for _ in range(t.alpha)]
    u = _matmul(_matmul(g_mat, g), _transpose(g_mat))
    v = _matmul(_matmul(bt, d), _transpose(bt))
    prod = [[a * b for a, b in zip(ru, rv)] for ru, rv in zip(u, v)]
    y = _matmul(_matmul(at, prod), _transpose(at))
    assert y == _correlate2d(d, g)


@pytest.mark.parametrize("m,r", [(2, 3), (4, 3), (6, 3), (3, 2), (2, 5), (8, 7)])
def test_construction_matches_documented_formulas(m, r):
    """Aᵀ = E_mᵀ;  Bᵀ·E_αᵀ = D diagonal > 0 (i.e. Bᵀ = D·E_α⁻ᵀ);  D·G = E_r.

    This is the construction of the module docstring, checked from the points with
    multiplications only (no inverse recomputed).
    """
    t = winograd(m, r)
    at, g, bt = (list(map(list, x)) for x in t.exact())
    assert at == _transpose(_eval_matrix(t.points, m))
    d = _matmul(bt, _transpose(_eval_matrix(t.points, t.alpha)))  # D E_α⁻ᵀ E_αᵀ = D
    for i in range(t.alpha):
        for j in range(t.alpha):
            if i != j:
                assert d[i][j] == 0
        assert d[i][i] > 0
    e_r = _eval_matrix(t.points, r)
    assert [[d[i][i] * v for v in g[i]] for i in range(t.alpha)] == e_r


@pytest.mark.parametrize("m,r", ALL_F[::5])
def test_input_transform_rows_are_primitive_integer_vectors(m, r):
    """Bᵀ has integer entries and each row's gcd is 1 (the normalisation in the docstring)."""
    import math

    for row in winograd(m, r).exact()[2]:
        assert all(v.denominator == 1 for v in row)
        assert math.gcd(*(int(v) for v in row)) == 1


# ----------------------------------------------------------------------------- Lavin & Gray

# Published matrices, Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"
# (CVPR 2016, arXiv:1509.09308), section 4.1 (F(2,3)) and 4.2 (F(4,3)).  Both use the
# points 0, 1, -1 (F(4,3): also 2, -2) and infinity, in the same order as ours.
_H = Fraction(1, 2)
LAVIN = {
    (2, 3): (
        [[1, 1, 1, 0], [0, 1, -1, -1]],
        [[1, 0, 0], [_H, _H, _H], [_H, -_H, _H], [0, 0, 1]],
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    ),
    (4, 3): (
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
        [[Fraction(1, 4), 0, 0],
         [Fraction(-1, 6), Fraction(-1, 6), Fraction(-1, 6)],
         [Fraction(-1, 6), Fraction(1, 6), Fraction(-1, 6)],
         [Fraction(1, 24), Fraction(1, 12), Fraction(1, 6)],
         [Fraction(1, 24), Fraction(-1, 12), Fraction(1, 6)],
         [0, 0, 1]],
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
    ),
}


@pytest.mark.parametrize("m,r", sorted(LAVIN))
def test_matches_lavin_gray_up_to_per_position_scaling(m, r):
    """Equal to Lavin & Gray's matrices modulo the (only) freedom of the algorithm.

    For a fixed order of the points, a Winograd algorithm may rescale, at each position
    b, column b of Aᵀ, row b of G and row b of Bᵀ by s_A, s_G, s_B with s_A·s_G·s_B = 1
    (signs included: F(2,3) differs from the paper in the sign of the ∞ column of Aᵀ
    and the ∞ row of Bᵀ).  That is exactly equality of the rank-one tensors
    Aᵀ[:,b] ⊗ G[b,:] ⊗ Bᵀ[b,:] for every b, which is what is compared here.
    The published matrices are themselves checked to be a valid F(m, r) first.
    """
    t = winograd(m, r)
    pub = tuple([[Fraction(v) for v in row] for row in mat] for mat in LAVIN[(m, r)])
    ours = t.exact()

    class _Pub:  # duck-typed like WinogradTransform for the identity check
        pass

    p = _Pub()
    p.m, p.r, p.alpha = m, r, t.alpha
    p.exact = lambda: pub
    _assert_tensor_identity(p)

    def rank_one(at, g, bt, b):
        return [[[at[i][b] * g[b][j] * bt[b][a] for a in range(t.alpha)]
                 for j in range(r)] for i in range(m)]

    for b in range(t.alpha):
        assert rank_one(*ours, b) == rank_one(*pub, b), f"position {b}"
    # and the spatial-domain part that has no freedom at all (row scaling aside) agrees:
    assert [abs(v) for row in ours[0] for v in row] == [abs(v) for row in pub[0] for v in row]


# ----------------------------------------------------------------------------- points


@pytest.mark.parametrize(
    "m,r,points",
    [
        (2, 3, [0, 1, 2]),
        (2, 3, ["1/2", -1, 0]),
        (4, 3, [0, 1, -1, Fraction(1, 2), Fraction(-1, 2)]),
        (4, 3, np.array([0.0, 1.0, -1.0, 0.5, -2.0])),
        (3, 2, [np.int64(0), np.int32(1), np.float32(-1)]),
        (6, 3, [0, 1, -1, 2, -2, "1/2", "-1/2"]),
        (2, 5, [0, 1, -1, 3, -3]),
    ],
)
def test_alternative_points_give_valid_transforms(m, r, points):
    t = winograd(m, r, points)
    assert len(t.points) == t.alpha - 1
    assert all(isinstance(p, Fraction) for p in t.points)
    _assert_tensor_identity(t)


def test_default_points_order():
    assert default_points(7) == tuple(map(Fraction, [0, 1, -1, 2, -2, "1/2", "-1/2"]))
    assert winograd(4, 3).points == default_points(5)


def test_default_points_table_overrides_the_sequence_only_where_listed():
    # F(8,3): the searched points (docs/accuracy.md); the table's tiles only, everything else
    # keeps the sequence (the specialised kernels' tiles among them).
    assert DEFAULT_POINTS[(8, 3)] == tuple(map(Fraction, [0, "4/9", "-4/9", "5/6", "-5/6", "6/5", "-6/5",
                                                          "9/4", "-9/4"]))
    assert winograd(8, 3).points == tile_default_points(8, 3) == DEFAULT_POINTS[(8, 3)]
    for m, r in [(2, 3), (4, 3), (6, 3), (2, 5), (4, 5), (6, 5), (7, 4)]:
        assert (m, r) not in DEFAULT_POINTS
        assert winograd(m, r).points == tile_default_points(m, r) == default_points(m + r - 2)
    # the explicit-points API still builds the old F(8,3), a different (and exact) algorithm
    old = winograd(8, 3, default_points(9))
    assert old is not winograd(8, 3) and old.points == default_points(9)
    _assert_tensor_identity(old)
    with pytest.raises(ValueError, match="alpha = m \\+ r - 1 = 17"):
        tile_default_points(10, 8)


@pytest.mark.parametrize("m,r", sorted(DEFAULT_POINTS))
def test_table_defaults_are_exact_and_keep_float32_integer_input_transforms(m, r):
    t = winograd(m, r)
    _assert_tensor_identity(t)
    assert len(set(t.points)) == t.alpha - 1
    # Bᵀ rows are primitive integer vectors whose entries float32 holds exactly (< 2^24), so the
    # input transform computes with exact coefficients, as for the sequence's points.
    bt = t.exact()[2]
    assert all(v.denominator == 1 and abs(v) < 2**24 for row in bt for v in row)
    np.testing.assert_array_equal(t.matrices(np.float32)[2].astype(np.float64), t.matrices(np.float64)[2])


def test_table_defaults_have_a_smaller_growth_factor_than_the_sequence():
    from magma_wino.accuracy import growth_factor

    for (m, r), pts in DEFAULT_POINTS.items():
        assert growth_factor(m, r, 1) == growth_factor(m, r, 1, pts)
        assert growth_factor(m, r, 1) < growth_factor(m, r, 1, default_points(m + r - 2)) / 4


@pytest.mark.parametrize(
    "points,exc,match",
    [
        ([0, 1], ValueError, r"points: F\(2, 3\) needs alpha - 1 = 3"),  # too few
        ([0, 1, -1, 2], ValueError, r"points: F\(2, 3\) needs"),  # too many
        ([0, 1, 1], ValueError, r"points must be distinct, repeated: 1"),
        ([0.5, "1/2", 2], ValueError, r"points must be distinct, repeated: 1/2"),
        ([0, 1, float("inf")], ValueError, r"points\[2\] must be finite"),
        ([0, float("nan"), 1], ValueError, r"points\[1\] must be finite"),
        ([0, 1, np.float32("-inf")], ValueError, r"points\[2\] must be finite"),
        ([0, 1, None], TypeError, r"points\[2\] must be a rational number"),
        ([0, 1, 1j], TypeError, r"points\[2\] must be a rational number"),
        ([0, True, 2], TypeError, r"points\[1\] must be a finite rational number, got bool"),
        ([0, 1, "abc"], ValueError, r"points\[2\] = 'abc' is not a rational number"),
        ("012", TypeError, r"points must be a sequence"),
        (5, TypeError, r"points must be a sequence"),
    ],
)
def test_bad_points_raise_naming_points(points, exc, match):
    with pytest.raises(exc, match=match):
        winograd(2, 3, points)


@pytest.mark.parametrize(
    "m,r,exc,match",
    [
        (0, 3, ValueError, r"^m must be >= 1, got 0"),
        (-2, 3, ValueError, r"^m must be >= 1"),
        (2, 0, ValueError, r"^r must be >= 1, got 0"),
        (10, 8, ValueError, r"alpha = m \+ r - 1 = 17; at most 16"),
        (16, 2, ValueError, r"alpha = m \+ r - 1 = 17"),
        (2.0, 3, TypeError, r"^m must be an int"),
        (2, "3", TypeError, r"^r must be an int"),
        (True, 3, TypeError, r"^m must be an int"),
    ],
)
def test_bad_m_r_alpha_raise_naming_them(m, r, exc, match):
    with pytest.raises(exc, match=match):
        winograd(m, r)


def test_largest_alpha_is_accepted():
    t = winograd(14, 3)
    assert t.alpha == MAX_ALPHA == 16
    at, g, bt = t.matrices()
    assert at.shape == (14, 16) and g.shape == (16, 3) and bt.shape == (16, 16)


# ----------------------------------------------------------------------------- API


def _parse_printed(text, name):
    """Read back the matrix printed under ``  name (rxc):`` as Fractions."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith(f"{name} ("))
    rows, c = lines[start].split("(")[1].split(")")[0].split("x")
    out = []
    for ln in lines[start + 1: start + 1 + int(rows)]:
        out.append([Fraction(v) for v in ln.strip().strip("[]").split()])
        assert len(out[-1]) == int(c)
    return out


def test_str_shows_points_and_the_three_matrices():
    t = winograd(4, 3)
    s = str(t)
    assert s.startswith("F(4, 3): alpha = 6, points = [0, 1, -1, 2, -2, inf]")
    assert "Aᵀ (4x6):" in s and "G (6x3):" in s and "Bᵀ (6x6):" in s
    for name, mat in zip(("Aᵀ", "G", "Bᵀ"), t.exact()):
        assert _parse_printed(s, name) == [list(row) for row in mat]
    assert repr(t) == s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,r", [(2, 3), (4, 3), (6, 3), (3, 5)])
def test_matrices_dtype_shape_values(m, r, dtype):
    t = winograd(m, r)
    at, g, bt = t.matrices(dtype)
    a = t.alpha
    assert (at.shape, g.shape, bt.shape) == ((m, a), (a, r), (a, a))
    assert at.dtype == g.dtype == bt.dtype == np.dtype(dtype)
    for arr, exact in zip((at, g, bt), t.exact()):
        assert not arr.flags.writeable
        ref = np.array([[float(v) for v in row] for row in exact]).astype(dtype)
        np.testing.assert_array_equal(arr, ref)  # rounded once from the exact value


@pytest.mark.parametrize("dtype", [np.int32, bool, object])
def test_matrices_reject_non_float_dtype(dtype):
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        winograd(2, 3).matrices(dtype)


def test_caching_returns_the_same_objects():
    t = winograd(4, 3)
    assert winograd(4, 3) is t
    assert winograd(4, 3, [0, 1, -1, 2, -2]) is t  # the default points, given explicitly
    assert winograd(4, 3, [0, 1, -1, 2, "-2"]) is t
    assert winograd(4, 3, [0, 1, -1, "1/2", -2]) is not t
    assert t.matrices(np.float32)[1] is t.matrices(np.float32)[1]
    assert t.matrices(np.float32)[1] is not t.matrices(np.float64)[1]


def test_transform_is_immutable():
    t = winograd(2, 3)
    with pytest.raises(AttributeError):
        t.m = 3  # type: ignore[misc]


def test_generated_kernel_coefficients_use_the_library_default_points():
    """tools/gen_coefficients.py (run by the build) writes each specialised tile from
    winograd(m, r): its header names the same points, and so the same algorithm, as
    points=None — also for tiles the DEFAULT_POINTS table would list."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "gen_coefficients.py"
    spec = importlib.util.spec_from_file_location("_gen_coefficients_under_test", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = gen.generate()
    for m, r in sorted(set(gen.SPECIALIZED_2D) | set(gen.SPECIALIZED_3D)):
        t = winograd(m, r)
        pts = ", ".join(str(p) for p in t.points)
        assert f"// F({m}, {r}), alpha = {t.alpha}, points {pts}, inf" in text
        assert (m, r) not in DEFAULT_POINTS or t.points == DEFAULT_POINTS[(m, r)]
