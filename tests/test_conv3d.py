"""3D Winograd convolution: ``conv3d`` / ``WinogradConv3d`` on the numpy and emulator
backends against ``reference.conv3d_direct`` (float64), dense and sparse."""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import WinogradConv3d, conv3d, pruning
from magma_wino.accuracy import rel_err, tolerance
from magma_wino.reference import conv3d_direct, winograd_conv_from_U

BACKENDS = ["numpy", "emulator"]
DTYPES = [np.float32, np.float64]


def dt_id(d) -> str:
    return np.dtype(d).name


def make(rng, N, C, K, size, r, dtype):
    x = rng.standard_normal((N, C) + tuple(size)).astype(dtype)
    w = rng.standard_normal((K, C, r, r, r)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b


def direct(x, w, b, pad):
    return conv3d_direct(x.astype(np.float64), w.astype(np.float64),
                         None if b is None else b.astype(np.float64), pad)


def odd_size(m, r, pad):
    """Input sizes whose outputs are 2m+1, m+1, m+2 per axis (never multiples of m > 2)."""
    return tuple(o + r - 1 - 2 * p for o, p in zip((2 * m + 1, m + 1, m + 2), pad))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m,generic", [(2, False), (4, False), (2, True), (4, True), (3, False), (1, False)],
                         ids=lambda v: str(v))
def test_conv3d_matches_direct(m, generic, dtype, backend, rng, check_direct):
    r = 3
    pad = (2, 1, 0)
    x, w, b = make(rng, 2, 4, 5, odd_size(m, r, pad), r, dtype)
    plan = WinogradConv3d(w, b, pad, m=m, backend=backend, generic=generic)
    if backend == "emulator":
        assert plan.generic == (generic or m not in (2, 4))
    y = plan(x)
    label = f"{dt_id(dtype)} {backend} 3D x{x.shape} pad {pad}{' generic' if generic else ''}"
    check_direct(y, direct(x, w, b, pad), dtype, m, r, 4, ndim=3, label=label, record=True)
    y2 = conv3d(x, w, b, pad, m=m, backend=backend)
    if not generic:
        assert np.array_equal(y, y2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("r,m", [(2, 3), (2, 2), (4, 2)], ids=str)
def test_conv3d_other_filter_sizes_run_generic(r, m, backend, rng, check_direct):
    pad = (r - 1, 0, min(1, r - 1))
    x, w, b = make(rng, 1, 3, 4, odd_size(m, r, pad), r, np.float64)
    y = conv3d(x, w, b, pad, m=m, backend=backend)
    check_direct(y, direct(x, w, b, pad), np.float64, m, r, 3, ndim=3, label=f"{backend} 3D r={r}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pad", [0, 1, 2, (0, 1, 2), (2, 0, 1)], ids=str)
def test_conv3d_every_padding_per_axis(pad, backend, rng, check_direct):
    x, w, b = make(rng, 1, 2, 3, (5, 6, 7), 3, np.float64)
    y = conv3d(x, w, b, pad, m=2, backend=backend)
    p = (pad,) * 3 if isinstance(pad, int) else pad
    assert y.shape == (1, 3) + tuple(s + 2 * q - 2 for s, q in zip((5, 6, 7), p))
    check_direct(y, direct(x, w, b, pad), np.float64, 2, 3, 2, ndim=3, label=f"{backend} pad {pad}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_conv3d_scaled_c3d_layer_and_out_prefilled_nan(dtype, backend, rng, check_direct):
    """A C3D-like conv layer scaled down: C=16, K=16, 8×10×10 (not multiples of m = 4)."""
    x, w, b = make(rng, 1, 16, 16, (7, 10, 9), 3, dtype)
    out = np.full((1, 16, 7, 10, 9), np.nan, dtype)
    y = conv3d(x, w, b, 1, m=4, backend=backend, out=out)
    assert y is out
    check_direct(out, direct(x, w, b, 1), dtype, 4, 3, 16, ndim=3, record=True,
                 label=f"{dt_id(dtype)} {backend} C3D/4 x{x.shape}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv3d_one_by_one_by_one_output(backend, rng, check_direct):
    x, w, b = make(rng, 2, 3, 4, (3, 3, 3), 3, np.float32)
    for m in (2, 4):
        y = conv3d(x, w, b, m=m, backend=backend)
        assert y.shape == (2, 4, 1, 1, 1)
        check_direct(y, direct(x, w, b, 0), np.float32, m, 3, 3, ndim=3, label=f"{backend} 1x1x1 m={m}")


@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_conv3d_numpy_and_emulator_agree(dtype, rng, winograd_tol, rel_error):
    x, w, b = make(rng, 2, 6, 7, (6, 9, 7), 3, dtype)
    for m in (2, 4, 3):
        ys = {be: WinogradConv3d(w, b, 1, m=m, backend=be)(x) for be in BACKENDS}
        tol = 2 * winograd_tol(dtype, m, 3, 6 * 27, 3)
        assert rel_error(ys["emulator"], ys["numpy"]) <= tol, f"m={m}"


# --------------------------------------------------------------------------- sparse 3D


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("relu", [None, "winograd"])
@pytest.mark.parametrize("sparse", [True, False])
def test_conv3d_from_winograd_pruned_matches_reference(sparse, relu, m, dtype, backend, rng, from_U_bound):
    r = 3
    alpha = m + r - 1
    pad = (1, 0, 2)
    x = rng.standard_normal((2, 6) + odd_size(m, r, pad)).astype(dtype)
    U = rng.standard_normal((alpha**3, 5, 6)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    plan = WinogradConv3d.from_winograd(U, r, prune=0.2, bias=b, padding=pad, m=m, backend=backend,
                                        relu=relu, sparse=sparse)
    assert plan.uses_sparse_product == sparse
    Up, _ = pruning.prune_winograd(U, 0.2)
    y = plan(x)
    ref = winograd_conv_from_U(x.astype(np.float64), Up.astype(np.float64), m, r, pad,
                               b.astype(np.float64), relu=relu == "winograd")
    assert y.shape == ref.shape and not np.isnan(y).any()
    tol = from_U_bound(dtype, x, Up, m, r, pad, relu=relu)
    err = float(np.abs(y.astype(np.float64) - ref).max())
    assert err <= tol, f"{backend} 3D F({m},3) sparse={sparse} relu={relu} x{x.shape}: {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv3d_from_spatial_prune_equals_direct_of_pruned_w(backend, rng, check_direct):
    x, w, b = make(rng, 1, 4, 3, (6, 7, 5), 3, np.float64)
    plan = WinogradConv3d.from_spatial(w, prune=0.3, bias=b, padding=1, m=2, backend=backend, relu="spatial")
    wp, _ = pruning.prune_spatial(w, 0.3)
    check_direct(plan(x), direct(np.maximum(x, 0), wp, b, 1), np.float64, 2, 3, 4, ndim=3,
                 label=f"{backend} 3D from_spatial")


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv3d_wrong_positions_for_U_raises(backend, rng):
    U = rng.standard_normal((16, 2, 2))  # α² of F(2,3), not α³ = 64
    with pytest.raises(ValueError, match=r"needs alpha\^3 = 64"):
        WinogradConv3d.from_winograd(U, 3, m=2, backend=backend)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv3d_rejects_rank_4_input_and_weights(backend, rng):
    x4 = rng.standard_normal((1, 2, 8, 8))
    w5 = rng.standard_normal((3, 2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"^x must be 5-D \(N×C×D×H×W\)"):
        conv3d(x4, w5, backend=backend)
    with pytest.raises(ValueError, match=r"^w must be 5-D"):
        conv3d(rng.standard_normal((1, 2, 8, 8, 8)), rng.standard_normal((3, 2, 3, 3)), backend=backend)
    with pytest.raises(ValueError, match=r"^w must be 5-D"):
        WinogradConv3d(rng.standard_normal((3, 2, 3, 3)), backend=backend)
    plan = WinogradConv3d(w5, m=2, backend=backend)
    with pytest.raises(ValueError, match=r"^x must be 5-D"):
        plan(x4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(3, 2, 3, 3, 5), (3, 2, 1, 3, 3), (3, 2, 3, 5, 3)], ids=str)
def test_conv3d_and_plans_run_anisotropic_filters_as_rectangular_tiles(shape, backend, rng):
    """conv3d and a plan run an anisotropic filter as the rectangular tile F(m_d×m_h×m_w,
    r_d×r_h×r_w) (an axis of one tap: F(1, 1)); both equal the direct convolution."""
    x = rng.standard_normal((1, 2, 8, 7, 6))
    w = rng.standard_normal(shape)
    y = conv3d(x, w, padding=1, backend=backend)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(1, 1)] * 3)
    out = [s + 2 - k + 1 for s, k in zip(x.shape[2:], shape[2:])]
    y_ref = np.zeros((1, shape[0], *out))
    for a, b, c in np.ndindex(*shape[2:]):  # the direct correlation, tap by tap
        win = xp[:, :, a:a + out[0], b:b + out[1], c:c + out[2]]
        y_ref += np.einsum("nc...,kc->nk...", win, w[:, :, a, b, c])
    ms = tuple(1 if k == 1 else 2 for k in shape[2:])  # the rectangular tile's m per axis
    tol = tolerance(np.float64, ms, shape[2:], 2 * int(np.prod(shape[2:])), 3)
    assert y.shape == y_ref.shape and rel_err(y, y_ref) <= tol
    plan = WinogradConv3d(w, None, 1, m=2, backend=backend)
    assert plan.rectangular and plan.r == shape[2:] and plan.positions == np.prod(
        [1 if k == 1 else 2 + k - 1 for k in shape[2:]])
    assert rel_err(plan(x), y_ref) <= tol


def test_conv3d_rejects_bad_padding(rng):
    x = rng.standard_normal((1, 2, 8, 8, 8))
    w = rng.standard_normal((3, 2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"padding must be >= 0 on every side"):
        conv3d(x, w, padding=(0, -3, 0), backend="emulator")
    with pytest.raises(ValueError, match="smaller than the filter"):
        conv3d(x[:, :, :1], w, padding=((0, 1), (0, 0), (0, 0)), backend="emulator")
    with pytest.raises(ValueError, match="one per spatial axis"):
        conv3d(x, w, padding=(1, 1), backend="emulator")
    with pytest.raises(ValueError, match="channel mismatch"):
        conv3d(rng.standard_normal((1, 3, 8, 8, 8)), w, backend="emulator")
