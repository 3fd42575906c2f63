"""mw_winograd_matrices (kernels/cook_toom.h): the C ABI's own Cook–Toom construction, so a C or
C++ caller runs the generic kernels without Python.  Oracle: magma_wino.transforms (exact
Fractions, rounded once) — the two must agree bit for bit on every F(m, r) with α <= 16, for
the default points and for given ones; and the generic kernels fed the C matrices must give
the Python matrices' V bitwise."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from magma_wino import reference
from magma_wino.errors import InvalidArgumentError, UnsupportedError
from magma_wino.transforms import MAX_ALPHA, winograd

emu = pytest.importorskip("magma_wino._emu")

TILES = [(m, a - m + 1) for a in range(1, MAX_ALPHA + 1) for m in range(1, a + 1)]


def _python(m, r, points=None, dtype=np.float64):
    at, g, bt = winograd(m, r, points).matrices(dtype)
    return np.concatenate([at.ravel(), g.ravel(), bt.ravel()])


@pytest.mark.parametrize("dtype,code", [(np.float64, "FLOAT64"), (np.float32, "FLOAT32")])
def test_default_matrices_of_every_tile_equal_the_python_construction_bitwise(dtype, code):
    assert len(TILES) == 136
    for m, r in TILES:
        got = emu.winograd_matrices(m, r, None, getattr(emu, code))
        want = _python(m, r, None, dtype)
        assert got.dtype == want.dtype and got.shape == want.shape, (m, r)
        assert np.array_equal(got.view(np.uint64 if dtype == np.float64 else np.uint32),
                              want.view(np.uint64 if dtype == np.float64 else np.uint32)), f"F({m}, {r})"


@pytest.mark.parametrize("m,r,points", [
    (4, 3, ["0", "2/3", "-2/3", "3/2", "-3/2"]),        # the more accurate F(4, 3) points (docs/accuracy.md)
    (2, 5, ["0", "2/3", "-2/3", "3/2", "-3/2"]),
    (6, 3, ["1/7", "-3/5", "2", "-9/4", "5/3", "-1", "0"]),
    (3, 2, ["-7/9", "4/5", "11/13"]),
    (10, 7, [str(Fraction(k, 7) * (-1) ** k) for k in range(15)]),  # α = 16, odd points
])
def test_given_points_equal_the_python_construction_bitwise(m, r, points):
    pairs = [(Fraction(p).numerator, Fraction(p).denominator) for p in points]
    got = emu.winograd_matrices(m, r, pairs, emu.FLOAT64)
    assert np.array_equal(got, _python(m, r, points))


def test_generic_input_transform_with_the_c_matrices_equals_the_reference():
    m, r, points = 4, 3, ["0", "2/3", "-2/3", "3/2", "-3/2"]
    mats = emu.winograd_matrices(m, r, [(Fraction(p).numerator, Fraction(p).denominator) for p in points],
                                 emu.FLOAT64)
    x = np.random.default_rng(40).standard_normal((1, 2, 7, 9))
    desc = emu.ConvDesc(2, m, r, 1, 2, 3, (7, 9), (1, 1))
    geo = desc.geometry(emu.FLOAT64)
    V = np.full((geo["positions"], 2, geo["num_tiles"]), np.nan)
    emu.input_transform(desc, emu.FLOAT64, x.ctypes.data, V.ctypes.data, 0, mats.ctypes.data, 0)
    want = reference.input_transform(x, m, r, 1, points)
    np.testing.assert_allclose(V, want, rtol=0, atol=1e-13 * np.abs(want).max())


@pytest.mark.parametrize("args,exc,match", [
    ((0, 3, None), InvalidArgumentError, "m and r must be >= 1"),
    ((2, 0, None), InvalidArgumentError, "m and r must be >= 1"),
    ((15, 3, None), UnsupportedError, "alpha = m \\+ r - 1 = 17; at most 16"),
    ((2, 3, [(0, 1), (1, 1), (1, 1)]), InvalidArgumentError, "points must be distinct: points 1 and 2"),
    ((2, 3, [(0, 1), (2, 4), (1, 2)]), InvalidArgumentError, "points must be distinct: points 1 and 2"),
    ((2, 3, [(0, 1), (1, 0), (1, 2)]), InvalidArgumentError, "points_den\\[1\\] = 0: must be > 0"),
    ((2, 3, [(0, 1), (1, -2), (1, 2)]), InvalidArgumentError, "points_den\\[1\\] = -2"),
])
def test_bad_arguments_are_status_codes_naming_them(args, exc, match):
    with pytest.raises(exc, match=match):
        emu.winograd_matrices(*args, emu.FLOAT64)


def test_bad_dtype_is_an_invalid_argument():
    with pytest.raises(InvalidArgumentError, match="dtype must be MW_FLOAT32 or MW_FLOAT64"):
        emu.winograd_matrices(2, 3, None, emu.FLOAT16)


def test_points_that_overflow_the_exact_arithmetic_are_unsupported_not_wrapped():
    big = 10**17 + 3
    pts = [(big + k, big - k) for k in range(1, 15)] + [(0, 1)]  # α = 16, points near 1 with 57-bit terms
    with pytest.raises(UnsupportedError, match="overflow the exact 128-bit arithmetic"):
        emu.winograd_matrices(8, 9, pts, emu.FLOAT64)
