"""Tests of magma_wino.reference (direct and Winograd convolution references)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magma_wino import _checks
from magma_wino.reference import (
    conv2d_direct,
    conv3d_direct,
    filter_transform,
    input_transform,
    output_transform,
    tile_grid,
    winograd_conv2d,
    winograd_conv3d,
    winograd_conv_from_U,
)
from magma_wino.transforms import winograd

F64_TOL = 1e-12


# ----------------------------------------------------------------------------- naive references


def naive_conv2d(x, w, bias=None, padding=(0, 0)):
    """Seven nested loops, straight from the definition (tiny shapes only)."""
    n_, c_, h, wd = x.shape
    k_, _, r, _ = w.shape
    ph, pw = padding
    ho, wo = h + 2 * ph - r + 1, wd + 2 * pw - r + 1
    y = np.zeros((n_, k_, ho, wo))
    for n, k, i, j in itertools.product(range(n_), range(k_), range(ho), range(wo)):
        s = 0.0 if bias is None else float(bias[k])
        for c, u, v in itertools.product(range(c_), range(r), range(r)):
            ii, jj = i + u - ph, j + v - pw
            if 0 <= ii < h and 0 <= jj < wd:
                s += float(x[n, c, ii, jj]) * float(w[k, c, u, v])
        y[n, k, i, j] = s
    return y


def naive_conv3d(x, w, padding=(0, 0, 0)):
    n_, c_, *sp = x.shape
    k_, _, r, _, _ = w.shape
    out = [s + 2 * p - r + 1 for s, p in zip(sp, padding)]
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(p, p) for p in padding])
    y = np.zeros((n_, k_, *out))
    for n, k, i, j, l in itertools.product(range(n_), range(k_), *map(range, out)):
        y[n, k, i, j, l] = np.sum(xp[n, :, i:i + r, j:j + r, l:l + r] * w[k])
    return y


# ----------------------------------------------------------------------------- direct convolution


@pytest.mark.parametrize(
    "shape_x,shape_w,padding",
    [
        ((1, 1, 5, 5), (1, 1, 3, 3), (0, 0)),
        ((2, 3, 5, 4), (2, 3, 3, 3), (1, 1)),
        ((1, 2, 4, 6), (3, 2, 2, 2), (0, 2)),
        ((2, 2, 3, 3), (2, 2, 3, 3), (2, 1)),
        ((1, 3, 4, 4), (2, 3, 1, 1), (1, 0)),
        ((1, 1, 2, 2), (1, 1, 5, 5), (2, 2)),
    ],
)
def test_conv2d_direct_matches_naive_loops(rng, shape_x, shape_w, padding):
    x = rng.standard_normal(shape_x)
    w = rng.standard_normal(shape_w)
    b = rng.standard_normal(shape_w[0])
    y = conv2d_direct(x, w, b, padding)
    assert y.dtype == np.float64 and y.flags.c_contiguous
    np.testing.assert_allclose(y, naive_conv2d(x, w, b, padding), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(conv2d_direct(x, w, None, padding), naive_conv2d(x, w, None, padding),
                               rtol=1e-13, atol=1e-13)


def test_conv2d_direct_matches_np_convolve_on_separable_filter(rng):
    """Independent method: a separable r×r filter a⊗b correlates rows with b then columns with a."""
    x = rng.standard_normal((12, 15))
    a, b = rng.standard_normal(4), rng.standard_normal(4)
    rows = np.array([np.convolve(row, b[::-1], mode="valid") for row in x])
    ref = np.array([np.convolve(col, a[::-1], mode="valid") for col in rows.T]).T
    y = conv2d_direct(x[None, None], np.outer(a, b)[None, None])
    np.testing.assert_allclose(y[0, 0], ref, rtol=1e-12, atol=1e-12)


def test_conv2d_direct_matches_scipy_correlate_if_available(rng):
    signal = pytest.importorskip("scipy.signal")
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    xp = np.pad(x, [(0, 0), (0, 0), (1, 1), (2, 2)])
    ref = np.zeros((2, 4, 9, 10))
    for n, k, c in itertools.product(range(2), range(4), range(3)):
        ref[n, k] += signal.correlate2d(xp[n, c], w[k, c], mode="valid")
    np.testing.assert_allclose(conv2d_direct(x, w, padding=(1, 2)), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", [(0, 0, 0), (1, 1, 1), (0, 2, 1)])
def test_conv3d_direct_matches_naive_loops(rng, padding):
    x = rng.standard_normal((2, 2, 4, 5, 3))
    w = rng.standard_normal((3, 2, 3, 3, 3))
    b = rng.standard_normal(3)
    y = conv3d_direct(x, w, b, padding)
    np.testing.assert_allclose(y, naive_conv3d(x, w, padding) + b[None, :, None, None, None],
                               rtol=1e-13, atol=1e-13)


def test_direct_computes_in_float64_for_any_input_dtype(rng):
    x = rng.integers(-5, 5, (1, 2, 6, 6))
    w = rng.integers(-3, 3, (2, 2, 3, 3))
    y_int = conv2d_direct(x.astype(np.int16), w.astype(np.int8), padding=1)
    y_f32 = conv2d_direct(x.astype(np.float32), w.astype(np.float32), padding=1)
    assert y_int.dtype == y_f32.dtype == np.float64
    np.testing.assert_array_equal(y_int, naive_conv2d(x, w, padding=(1, 1)))
    np.testing.assert_array_equal(y_f32, y_int)


def test_direct_accepts_non_contiguous_and_list_input(rng):
    x = rng.standard_normal((1, 2, 10, 12))[:, :, ::2, ::3]
    w = rng.standard_normal((2, 2, 2, 2))
    np.testing.assert_allclose(conv2d_direct(x, w), naive_conv2d(x, w), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(conv2d_direct(x.tolist(), w.tolist()), naive_conv2d(x, w),
                               rtol=1e-13, atol=1e-13)


# ----------------------------------------------------------------------------- float64 Winograd

F_LIST = [(2, 3), (4, 3), (6, 3), (2, 5), (3, 2)]
SHAPES_2D = [
    # (N, C, K, H, W, padding): non tile multiples, 1×1 outputs, large and per-axis padding
    (2, 3, 4, 7, 9, 1),
    (1, 2, 3, 11, 5, 0),
    (1, 1, 1, 6, 6, 2),
    (2, 2, 2, 5, 8, (2, 3)),
    (1, 3, 2, 9, 4, (0, 3)),
    (1, 2, 2, 13, 13, 3),
]


@pytest.mark.parametrize("m,r", F_LIST, ids=[f"F({m},{r})" for m, r in F_LIST])
@pytest.mark.parametrize("shape", SHAPES_2D, ids=str)
def test_float64_winograd_conv2d_equals_direct(rng, rel_error, m, r, shape):
    n, c, k, h, w_, pad = shape
    x = rng.standard_normal((n, c, h, w_))
    w = rng.standard_normal((k, c, r, r))
    b = rng.standard_normal(k)
    ref = conv2d_direct(x, w, b, pad)
    y = winograd_conv2d(x, w, m, pad, b)
    assert y.dtype == np.float64 and y.shape == ref.shape and y.flags.c_contiguous
    assert rel_error(y, ref) < F64_TOL


@pytest.mark.parametrize("m,r", F_LIST, ids=[f"F({m},{r})" for m, r in F_LIST])
def test_float64_winograd_1x1_output(rng, rel_error, m, r):
    """A single output pixel (H = W = r, no padding): one tile, almost all of it clipped."""
    x = rng.standard_normal((2, 3, r, r))
    w = rng.standard_normal((4, 3, r, r))
    y = winograd_conv2d(x, w, m)
    assert y.shape == (2, 4, 1, 1)
    assert rel_error(y, conv2d_direct(x, w)) < F64_TOL


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("shape", [(1, 2, 3, 5, 6, 7, 1), (2, 1, 2, 4, 4, 9, (0, 1, 2)),
                                   (1, 2, 2, 3, 3, 3, 0), (1, 1, 1, 2, 3, 2, (2, 1, 3))], ids=str)
def test_float64_winograd_conv3d_equals_direct(rng, rel_error, m, shape):
    n, c, k, d, h, w_, pad = shape
    x = rng.standard_normal((n, c, d, h, w_))
    w = rng.standard_normal((k, c, 3, 3, 3))
    b = rng.standard_normal(k)
    ref = conv3d_direct(x, w, b, pad)
    y = winograd_conv3d(x, w, m, pad, b)
    assert y.shape == ref.shape and y.dtype == np.float64
    assert rel_error(y, ref) < F64_TOL


@pytest.mark.parametrize("points", [[0, 1, -1, "1/2", "-1/2"], [0, 1, -1, 2, "1/2"]])
def test_float64_winograd_with_user_points(rng, rel_error, points):
    x = rng.standard_normal((1, 3, 10, 9))
    w = rng.standard_normal((2, 3, 3, 3))
    y = winograd_conv2d(x, w, 4, 1, points=points)
    assert rel_error(y, conv2d_direct(x, w, padding=1)) < F64_TOL


def test_integer_inputs_give_float64_and_near_exact(rng, rel_error):
    x = rng.integers(-4, 5, (1, 2, 8, 8))
    w = rng.integers(-2, 3, (3, 2, 3, 3))
    y = winograd_conv2d(x, w, 4, 1)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, conv2d_direct(x, w, padding=1), atol=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    m=st.integers(1, 6), r=st.integers(1, 5), n=st.integers(1, 2), c=st.integers(1, 3),
    k=st.integers(1, 3), h=st.integers(1, 12), w_=st.integers(1, 12),
    ph=st.integers(0, 3), pw=st.integers(0, 3), seed=st.integers(0, 2**32 - 1),
)
def test_property_winograd_conv2d_equals_direct_float64(
    wino_error_bound, m, r, n, c, k, h, w_, ph, pw, seed
):
    if h + 2 * ph < r or w_ + 2 * pw < r:
        with pytest.raises(ValueError, match="smaller than the filter"):
            winograd_conv2d(np.ones((n, c, h, w_)), np.ones((k, c, r, r)), m, (ph, pw))
        return
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, c, h, w_))
    w = g.standard_normal((k, c, r, r))
    ref = conv2d_direct(x, w, padding=(ph, pw))
    y = winograd_conv2d(x, w, m, (ph, pw))
    assert y.shape == ref.shape
    # worst-case bound (cannot flake on cancelling outputs) + the float64 reference's
    # own error (≤ n·u·max conv(|x|, |w|), n = C·r²):
    u = np.finfo(np.float64).eps / 2
    ref_err = c * r * r * u * conv2d_direct(np.abs(x), np.abs(w), padding=(ph, pw)).max()
    bound = wino_error_bound(np.float64, m, r, x, w) + ref_err
    assert np.abs(y - ref).max() <= bound, (m, r, x.shape, w.shape, (ph, pw))


# ----------------------------------------------------------------------------- float32 Winograd

VGG = [(1, 64, 28), (1, 128, 14)]  # (N, C = K, H = W), 3×3, padding 1


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("n,c,hw", VGG, ids=lambda v: str(v))
def test_float32_winograd_error_on_vgg_layers_within_tolerance(
    rng, rel_error, winograd_tol, record_error, m, n, c, hw
):
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((c, c, 3, 3)) / math.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    ref = conv2d_direct(x, w, b, 1)
    y = winograd_conv2d(x, w, m, 1, b)
    assert y.dtype == np.float32
    err = rel_error(y, ref)
    tol = winograd_tol(np.float32, m, 3, c * 9)
    record_error(f"float32 N={n} C=K={c} {hw}x{hw} pad 1", m, 3, c * 9, err, tol)
    print(f"F({m},3) C=K={c} {hw}x{hw}: float32 rel error {err:.3e} (tolerance {tol:.3e})")
    assert err <= tol
    # computed in float32, not in float64 and rounded at the end (that would give <= u):
    assert err > np.finfo(np.float32).eps / 2


@pytest.mark.parametrize("m", [2, 4, 6])
def test_float32_tolerance_holds_for_sequential_channel_accumulation(
    rng, rel_error, winograd_tol, record_error, m
):
    """GPU threads sum over C one channel after the other (BLAS blocks the sum): the
    tolerance covers that order too (its derivation assumes the sequential sum)."""
    c, hw = 128, 14
    x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
    w = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
    ref = conv2d_direct(x, w, padding=1)
    u = filter_transform(w, m)
    v = input_transform(x, m, 3, 1)
    acc = np.zeros((u.shape[0], c, v.shape[2]), np.float32)
    for ch in range(c):
        acc += u[:, :, ch:ch + 1] * v[:, ch:ch + 1, :]
    err = rel_error(output_transform(acc, m, 3, ref.shape), ref)
    tol = winograd_tol(np.float32, m, 3, c * 9)
    record_error(f"float32 seq. C-sum C=K={c} {hw}x{hw} pad 1", m, 3, c * 9, err, tol)
    assert err <= tol


def _round_to_tf32(a):
    """Round float32 to 10 explicit mantissa bits (NVIDIA TF32), round-to-nearest-even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    lsb = (bits >> 13) & 1
    bits = (bits + np.uint32(0xFFF) + lsb) & np.uint32(0xFFFFE000)
    return bits.view(np.float32)


@pytest.mark.parametrize("m", [2, 4, 6])
def test_float32_tolerance_rejects_tf32_precision(rng, rel_error, winograd_tol, m):
    """The float32 tolerance is not vacuous: products on TF32 inputs (as tensor cores
    would do by default) exceed it, while the float32 path is far below it."""
    c, hw = 64, 28
    x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((c, c, 3, 3)) / math.sqrt(9 * c)).astype(np.float32)
    ref = conv2d_direct(x, w, padding=1)
    u = _round_to_tf32(filter_transform(w, m))
    v = _round_to_tf32(input_transform(x, m, 3, 1))
    y_tf32 = output_transform(np.matmul(u, v), m, 3, ref.shape)
    assert rel_error(y_tf32, ref) > winograd_tol(np.float32, m, 3, c * 9)


def test_tf32_rounding_helper():
    a = np.array([1.0, 1.0 + 2.0**-10, 1.0 + 2.0**-11, 1.0 + 2.0**-12, -3.0], dtype=np.float32)
    np.testing.assert_array_equal(_round_to_tf32(a), [1.0, 1.0 + 2.0**-10, 1.0, 1.0, -3.0])


@pytest.mark.parametrize("m", [2, 4])
def test_float32_winograd_conv3d_within_tolerance(rng, rel_error, winograd_tol, record_error, m):
    c = 16
    x = rng.standard_normal((1, c, 8, 9, 10)).astype(np.float32)
    w = rng.standard_normal((c, c, 3, 3, 3)).astype(np.float32)
    y = winograd_conv3d(x, w, m, 1)
    assert y.dtype == np.float32
    err = rel_error(y, conv3d_direct(x, w, padding=1))
    tol = winograd_tol(np.float32, m, 3, c * 27, ndim=3)
    record_error(f"float32 3D N=1 C=K={c} 8x9x10 pad 1", m, 3, c * 27, err, tol)
    assert err <= tol


def test_result_dtype_follows_x_and_w(rng):
    x = rng.standard_normal((1, 2, 6, 6))
    w = rng.standard_normal((2, 2, 3, 3))
    f32, f64 = np.float32, np.float64
    assert winograd_conv2d(x.astype(f32), w.astype(f32), 2).dtype == f32
    assert winograd_conv2d(x.astype(f32), w.astype(f64), 2).dtype == f64
    assert winograd_conv2d(x.astype(np.float16), w.astype(np.float16), 2).dtype == f32
    assert winograd_conv2d(x.astype(np.int32), w.astype(f32), 2).dtype == f64
    assert filter_transform(w.astype(f32), 2).dtype == f32
    assert filter_transform(w.astype(np.int64), 2).dtype == f64
    assert input_transform(x.astype(f32), 2, 3).dtype == f32
    assert input_transform(x.astype(np.uint8), 2, 3).dtype == f64
    assert output_transform(np.ones((16, 2, 9), f32), 2, 3, (1, 2, 6, 6)).dtype == f32


# ----------------------------------------------------------------------------- per-transform (NNPACK style)


def test_filter_transform_equals_per_filter_products(rng):
    m, r, k_, c_ = 4, 3, 3, 2
    w = rng.standard_normal((k_, c_, r, r))
    _, g, _ = winograd(m, r).matrices()
    a = m + r - 1
    u = filter_transform(w, m)
    assert u.shape == (a * a, k_, c_) and u.flags.c_contiguous
    ref = np.full((a * a, k_, c_), np.nan)
    for k, c in itertools.product(range(k_), range(c_)):
        t = g @ w[k, c] @ g.T
        for i, j in itertools.product(range(a), range(a)):
            ref[i * a + j, k, c] = t[i, j]
    np.testing.assert_allclose(u, ref, rtol=1e-14, atol=1e-14)


def test_filter_transform_3d_equals_per_filter_products(rng):
    m, r = 2, 3
    w = rng.standard_normal((2, 2, r, r, r))
    _, g, _ = winograd(m, r).matrices()
    a = m + r - 1
    u = filter_transform(w, m)
    assert u.shape == (a**3, 2, 2)
    for k, c in itertools.product(range(2), range(2)):
        t = np.einsum("ia,jb,lc,abc->ijl", g, g, g, w[k, c])
        for i, j, l in itertools.product(range(a), repeat=3):
            assert u[(i * a + j) * a + l, k, c] == pytest.approx(t[i, j, l], abs=1e-13)


def _explicit_windows(x, m, r, pads):
    """Yield (p, n, tile index tuple, α^d window) with explicit bounds checks (zeros outside)."""
    n_, c_, *sp = x.shape
    nd = len(sp)
    a = m + r - 1
    out = [s + 2 * p - r + 1 for s, p in zip(sp, pads)]
    tiles = [math.ceil(o / m) for o in out]
    p = 0
    for n in range(n_):
        for t in itertools.product(*map(range, tiles)):
            win = np.zeros((c_,) + (a,) * nd)
            for off in itertools.product(range(a), repeat=nd):
                src = [ti * m + o - pd for ti, o, pd in zip(t, off, pads)]
                if all(0 <= s < lim for s, lim in zip(src, sp)):
                    win[(slice(None),) + off] = x[(n, slice(None)) + tuple(src)]
            yield p, n, t, win
            p += 1


@pytest.mark.parametrize("m,r,pads", [(2, 3, (1, 1)), (4, 3, (0, 2)), (3, 2, (2, 0)), (2, 5, (3, 1))])
def test_input_transform_equals_per_tile_products(rng, m, r, pads):
    x = rng.standard_normal((2, 3, 7, 6))
    _, _, bt = winograd(m, r).matrices()
    a = m + r - 1
    v = input_transform(x, m, r, pads)
    tiles = tile_grid([s + 2 * p - r + 1 for s, p in zip(x.shape[2:], pads)], m)
    assert v.shape == (a * a, 3, 2 * tiles[0] * tiles[1]) and v.flags.c_contiguous
    ref = np.full(v.shape, np.nan)
    for p, _, _, win in _explicit_windows(x, m, r, pads):
        for c in range(3):
            ref[:, c, p] = (bt @ win[c] @ bt.T).reshape(-1)  # b = i·α + j
    np.testing.assert_allclose(v, ref, rtol=1e-13, atol=1e-13)
    v_relu = input_transform(x, m, r, pads, relu=True)
    np.testing.assert_array_equal(v_relu, np.maximum(v, 0))


def test_input_transform_3d_equals_per_tile_products(rng):
    m, r, pads = 2, 3, (1, 0, 2)
    x = rng.standard_normal((1, 2, 4, 5, 3))
    _, _, bt = winograd(m, r).matrices()
    v = input_transform(x, m, r, pads)
    ref = np.full(v.shape, np.nan)
    for p, _, _, win in _explicit_windows(x, m, r, pads):
        for c in range(2):
            ref[:, c, p] = np.einsum("ia,jb,lc,abc->ijl", bt, bt, bt, win[c]).reshape(-1)
    np.testing.assert_allclose(v, ref, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("m,r,out", [(2, 3, (5, 4)), (4, 3, (9, 7)), (3, 2, (3, 3)), (6, 3, (1, 13))])
def test_output_transform_equals_per_tile_products_and_clips(rng, m, r, out):
    n_, k_ = 2, 3
    a = m + r - 1
    at, _, _ = winograd(m, r).matrices()
    th, tw = tile_grid(out, m)
    mm = rng.standard_normal((a * a, k_, n_ * th * tw))
    b = rng.standard_normal(k_)
    y = output_transform(mm, m, r, (n_, k_) + out, bias=b)
    assert y.shape == (n_, k_) + out and y.flags.c_contiguous
    ref = np.full((n_, k_, th * m, tw * m), np.nan)  # NaN: unwritten elements fail
    for n, i, j, k in itertools.product(range(n_), range(th), range(tw), range(k_)):
        p = (n * th + i) * tw + j
        ref[n, k, i * m:(i + 1) * m, j * m:(j + 1) * m] = at @ mm[:, k, p].reshape(a, a) @ at.T + b[k]
    ref = ref[:, :, : out[0], : out[1]]
    assert not np.isnan(ref).any()
    np.testing.assert_allclose(y, ref, rtol=1e-13, atol=1e-13)


def test_output_transform_3d_equals_per_tile_products(rng):
    m, r, out = 2, 3, (3, 4, 5)
    a = m + r - 1
    at, _, _ = winograd(m, r).matrices()
    tiles = tile_grid(out, m)
    mm = rng.standard_normal((a**3, 2, int(np.prod(tiles))))
    y = output_transform(mm, m, r, (1, 2) + out)
    ref = np.full((1, 2) + tuple(t * m for t in tiles), np.nan)
    for p, t in enumerate(itertools.product(*map(range, tiles))):
        for k in range(2):
            blk = np.einsum("ia,jb,lc,abc->ijl", at, at, at, mm[:, k, p].reshape(a, a, a))
            ref[(0, k) + tuple(slice(ti * m, (ti + 1) * m) for ti in t)] = blk
    np.testing.assert_allclose(y, ref[:, :, :3, :4, :5], rtol=1e-13, atol=1e-13)


def test_tile_grid_and_tile_order():
    assert tile_grid((5, 4), 2) == (3, 2)
    assert tile_grid((1, 1), 6) == (1, 1)
    assert tile_grid((7, 8, 9), 4) == (2, 2, 3)
    # tile p = (n·tH + th)·tW + tw.  F(2,3) on 8×8 (6×6 out, 3×3 tiles): tile th reads
    # rows [2·th, 2·th + 4), so row 7 is read by th = 2 only and column 1 by tw = 0 only:
    # a delta in x at (n=1, 7, 1) must show up in tile p = (1·3 + 2)·3 + 0 = 15 alone.
    x = np.zeros((2, 1, 8, 8))
    x[1, 0, 7, 1] = 1.0
    v = input_transform(x, 2, 3)
    assert v.shape == (16, 1, 18)
    assert list(np.flatnonzero(np.abs(v).sum(axis=(0, 1)))) == [15]
    # inside that tile the window offset is (7 - 2·2, 1 - 0) = (3, 1): V = Bᵀ e_3 e_1ᵀ B
    _, _, bt = winograd(2, 3).matrices()
    np.testing.assert_array_equal(v[:, 0, 15], np.outer(bt[:, 3], bt[:, 1]).reshape(-1))


@pytest.mark.parametrize("m,r", [(2, 3), (4, 3)])
def test_winograd_conv_from_U_matches_layer_and_explicit_relu_formula(rng, rel_error, m, r):
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, r, r))
    b = rng.standard_normal(4)
    u = filter_transform(w, m)
    y = winograd_conv_from_U(x, u, m, r, 1, b)
    assert rel_error(y, conv2d_direct(x, w, b, 1)) < F64_TOL
    # Winograd-ReLU with a pruned U: Aᵀ[Prune(U) ⊙ ReLU(Bᵀ d B)]A, tile by tile
    u_pruned = np.where(np.abs(u) > np.median(np.abs(u)), u, 0.0)
    y_relu = winograd_conv_from_U(x, u_pruned, m, r, 1, b, relu=True)
    at, _, bt = winograd(m, r).matrices()
    a = m + r - 1
    th, tw = tile_grid(y_relu.shape[2:], m)
    ref = np.full((2, 4, th * m, tw * m), np.nan)
    for _p, n, (i, j), win in _explicit_windows(x, m, r, (1, 1)):
        vt = np.maximum(np.einsum("ia,cab,jb->cij", bt, win, bt), 0)
        mt = np.einsum("kcij,cij->kij", u_pruned.reshape(a, a, 4, 3).transpose(2, 3, 0, 1), vt)
        ref[n, :, i * m:(i + 1) * m, j * m:(j + 1) * m] = (
            np.einsum("ua,kab,vb->kuv", at, mt, at) + b[:, None, None])
    np.testing.assert_allclose(y_relu, ref[:, :, :7, :6], rtol=1e-12, atol=1e-12)


def test_winograd_conv_from_U_3d(rng, rel_error):
    x = rng.standard_normal((1, 2, 5, 4, 6))
    w = rng.standard_normal((3, 2, 3, 3, 3))
    y = winograd_conv_from_U(x, filter_transform(w, 2), 2, 3, (1, 0, 1))
    assert rel_error(y, conv3d_direct(x, w, padding=(1, 0, 1))) < F64_TOL


# ----------------------------------------------------------------------------- validation

X = np.ones((1, 2, 5, 5))
W = np.ones((3, 2, 3, 3))
X3 = np.ones((1, 2, 4, 4, 4))
W3 = np.ones((3, 2, 3, 3, 3))

BAD_CALLS = [
    # ranks
    ("x rank 2D", lambda: conv2d_direct(np.ones((2, 5, 5)), W), ValueError, r"x must be 4-D \(N×C×H×W\)"),
    ("x rank 3D", lambda: conv3d_direct(X, W3), ValueError, r"x must be 5-D \(N×C×D×H×W\)"),
    ("w rank 2D", lambda: winograd_conv2d(X, np.ones((3, 2, 3)), 2), ValueError, r"w must be 4-D \(K×C×r_h×r_w\)"),
    ("w rank 3D", lambda: winograd_conv3d(X3, W, 2), ValueError, r"w must be 5-D \(K×C×r_d×r_h×r_w\)"),
    ("x rank input_transform", lambda: input_transform(np.ones((5, 5)), 2, 3), ValueError, r"x must be 4-D .* or 5-D"),
    ("w rank filter_transform", lambda: filter_transform(np.ones((3, 3)), 2), ValueError, r"w must be 4-D .* or 5-D"),
    # channels, filter shape
    ("channel mismatch", lambda: conv2d_direct(X, np.ones((3, 4, 3, 3))), ValueError, r"channel mismatch: x has C = 2 .* w has C = 4"),
    ("channel mismatch wino", lambda: winograd_conv2d(X, np.ones((3, 1, 3, 3)), 2), ValueError, r"channel mismatch"),
    ("rectangular w with points", lambda: filter_transform(np.ones((3, 2, 2, 3)), 2, points=[0, 1, -1]), ValueError,
     r"points: a rectangular tile runs the default points"),
    ("m per axis of the wrong length", lambda: input_transform(X, (2, 2, 2), (3, 3)), ValueError,
     r"m must be an int or 2 ints \(one per axis\)"),
    # padding
    ("negative padding", lambda: conv2d_direct(X, W, padding=-1), ValueError, r"padding must be >= 0"),
    ("negative padding tuple", lambda: winograd_conv2d(X, W, 2, padding=(1, -1)), ValueError, r"padding must be >= 0"),
    ("padding wrong length", lambda: conv2d_direct(X, W, padding=(1, 1, 1)), ValueError, r"padding must be an int, 2 ints \(one per spatial axis\)"),
    ("padding wrong length 3D", lambda: conv3d_direct(X3, W3, padding=(1, 1)), ValueError, r"3 ints \(one per spatial axis\), 3 \(lo, hi\) pairs or 6 ints"),
    ("padding float", lambda: conv2d_direct(X, W, padding=1.0), TypeError, r"padding must be an int"),
    ("padding float entry", lambda: input_transform(X, 2, 3, padding=(1, 0.5)), TypeError, r"padding entries must be ints"),
    ("padding bool", lambda: conv2d_direct(X, W, padding=True), TypeError, r"padding must be an int"),
    # dtypes
    ("x bool", lambda: conv2d_direct(X.astype(bool), W), TypeError, r"x must have a real numeric dtype"),
    ("x object", lambda: winograd_conv2d(X.astype(object), W, 2), TypeError, r"x must have a real numeric dtype"),
    ("x complex", lambda: input_transform(X.astype(complex), 2, 3), TypeError, r"x must have a real numeric dtype"),
    ("w complex", lambda: conv2d_direct(X, W.astype(np.complex64)), TypeError, r"w must have a real numeric dtype"),
    ("w bool filter_transform", lambda: filter_transform(W.astype(bool), 2), TypeError, r"w must have a real numeric dtype"),
    ("x string", lambda: conv2d_direct(np.full((1, 2, 5, 5), "a"), W), TypeError, r"x must have a real numeric dtype"),
    ("x None", lambda: conv2d_direct(None, W), TypeError, r"x must be an array"),
    ("M complex", lambda: output_transform(np.ones((16, 3, 4), complex), 2, 3, (1, 3, 4, 4)), TypeError, r"M must have a real numeric dtype"),
    ("U bool", lambda: winograd_conv_from_U(X, np.ones((16, 3, 2), bool), 2, 3), TypeError, r"U must have a real numeric dtype"),
    # empty
    ("x empty N", lambda: conv2d_direct(np.ones((0, 2, 5, 5)), W), ValueError, r"x must not be empty"),
    ("x empty H", lambda: winograd_conv2d(np.ones((1, 2, 0, 5)), W, 2), ValueError, r"x must not be empty"),
    ("w empty K", lambda: conv2d_direct(X, np.ones((0, 2, 3, 3))), ValueError, r"w must not be empty"),
    ("w empty r", lambda: filter_transform(np.ones((3, 2, 0, 0)), 2), ValueError, r"w must not be empty"),
    ("x empty 3D", lambda: conv3d_direct(np.ones((1, 2, 4, 0, 4)), W3), ValueError, r"x must not be empty"),
    ("x empty input_transform", lambda: input_transform(np.ones((1, 0, 5, 5)), 2, 3), ValueError, r"x must not be empty"),
    # spatial too small
    ("too small", lambda: conv2d_direct(np.ones((1, 2, 2, 5)), W), ValueError, r"x: spatial size \(2, 5\) with padding \(\(0, 0\), \(0, 0\)\) is \(2, 5\), smaller than the filter size r = 3"),
    ("too small wino", lambda: winograd_conv2d(np.ones((1, 2, 5, 1)), W, 2, padding=(0, 0)), ValueError, r"smaller than the filter"),
    ("too small input_transform", lambda: input_transform(np.ones((1, 2, 2, 2)), 2, 5, padding=1), ValueError, r"smaller than the filter size r = 5"),
    ("too small 3D", lambda: conv3d_direct(np.ones((1, 2, 4, 4, 2)), W3), ValueError, r"smaller than the filter"),
    # bias
    ("bias wrong length", lambda: conv2d_direct(X, W, bias=np.ones(2)), ValueError, r"bias must have shape \(K,\) = \(3,\)"),
    ("bias 2-D", lambda: winograd_conv2d(X, W, 2, bias=np.ones((3, 1))), ValueError, r"bias must have shape"),
    ("bias complex", lambda: conv2d_direct(X, W, bias=np.ones(3, complex)), TypeError, r"bias must have a real numeric dtype"),
    ("bias output_transform", lambda: output_transform(np.ones((16, 3, 4)), 2, 3, (1, 3, 4, 4), bias=np.ones(4)), ValueError, r"bias must have shape"),
    # m, r, points (delegated to transforms.winograd)
    ("m zero", lambda: winograd_conv2d(X, W, 0), ValueError, r"^m must be >= 1"),
    ("m zero 3D", lambda: winograd_conv3d(X3, W3, 0), ValueError, r"^m must be >= 1"),
    ("m float", lambda: filter_transform(W, 2.0), TypeError, r"^m must be an int"),
    ("alpha too big", lambda: winograd_conv2d(np.ones((1, 2, 20, 20)), W, 15), ValueError, r"alpha = m \+ r - 1 = 17"),
    ("r zero", lambda: input_transform(X, 2, 0), ValueError, r"^r must be >= 1"),
    ("points", lambda: winograd_conv2d(X, W, 2, points=[0, 1]), ValueError, r"^points"),
    ("tile_grid m", lambda: tile_grid((4, 4), 0), ValueError, r"^m must be >= 1"),
    ("tile_grid out", lambda: tile_grid((4, 0), 2), ValueError, r"spatial_out"),
    # shapes of M, U, out_shape
    ("M wrong P", lambda: output_transform(np.ones((16, 3, 5)), 2, 3, (1, 3, 4, 4)), ValueError, r"M must have shape \(alpha\^2, K, P\) = \(16, 3, 4\)"),
    ("M wrong alpha", lambda: output_transform(np.ones((36, 3, 4)), 2, 3, (1, 3, 4, 4)), ValueError, r"M must have shape"),
    ("out_shape length", lambda: output_transform(np.ones((16, 3, 4)), 2, 3, (3, 4, 4)), ValueError, r"out_shape must be \(N, K, Ho, Wo\)"),
    ("out_shape zero", lambda: output_transform(np.ones((16, 3, 4)), 2, 3, (1, 3, 0, 4)), ValueError, r"out_shape entries must be >= 1"),
    ("out_shape type", lambda: output_transform(np.ones((16, 3, 4)), 2, 3, 4), TypeError, r"out_shape must be a tuple"),
    ("U wrong C", lambda: winograd_conv_from_U(X, np.ones((16, 3, 5)), 2, 3), ValueError, r"U must have shape \(alpha\^2, K, C\) = \(16, K, 2\)"),
    ("U wrong alpha", lambda: winograd_conv_from_U(X, np.ones((36, 3, 2)), 2, 3), ValueError, r"U must have shape"),
    ("U wrong rank", lambda: winograd_conv_from_U(X, np.ones((16, 3)), 2, 3), ValueError, r"U must have shape"),
    ("U bias", lambda: winograd_conv_from_U(X, np.ones((16, 3, 2)), 2, 3, bias=np.ones(2)), ValueError, r"bias must have shape \(K,\) = \(3,\)"),
    ("from_U x rank", lambda: winograd_conv_from_U(np.ones((2, 5, 5)), np.ones((16, 3, 2)), 2, 3), ValueError, r"x must be 4-D .* or 5-D"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_raise_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


class _DuckArray:
    """Only .shape / .ndim / .dtype, like a device array: the checks must not touch data."""

    def __init__(self, shape, dtype=np.float32):
        self.shape, self.ndim, self.dtype = shape, len(shape), np.dtype(dtype)

    def __array__(self, *a, **k):  # pragma: no cover - failing here is the bug
        raise AssertionError("the checks must not convert to a host array")


def test_checks_work_on_duck_typed_device_arrays():
    x, w = _DuckArray((2, 3, 9, 8)), _DuckArray((4, 3, 3, 3))
    assert _checks.check_conv_args(x, w, _DuckArray((4,)), (1, 2), 2) == (((1, 1), (2, 2)), (9, 10))
    assert _checks.check_conv_args(_DuckArray((1, 3, 4, 5, 6)), _DuckArray((2, 3, 3, 3, 3)),
                                   None, 0, 3) == (((0, 0),) * 3, (2, 3, 4))
    with pytest.raises(ValueError, match="channel mismatch"):
        _checks.check_conv_args(x, _DuckArray((4, 2, 3, 3)), None, 0, 2)
    with pytest.raises(TypeError, match="x must have a real numeric dtype"):
        _checks.check_conv_args(_DuckArray((2, 3, 9, 8), np.complex64), w, None, 0, 2)
    assert _checks.as_padding(np.int64(2), 3) == ((2, 2),) * 3
    assert _checks.as_padding([1, 2], 2) == ((1, 1), (2, 2))
    assert _checks.as_padding(np.array([[0, 1], [2, 3]]), 2) == ((0, 1), (2, 3))
    assert _checks.as_padding((0, 1, 2, 3), 2) == ((2, 3), (0, 1))  # F.pad's order: last axis first
    assert _checks.compute_dtype(np.float16) == np.float32
    assert _checks.compute_dtype(np.int8, np.float64) == np.float64
