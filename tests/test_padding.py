"""Zero padding of any size per side (issue 17): the plans, the kernels (emulator) and the C
descriptor take asymmetric padding and padding beyond r − 1 without copying x.

Oracle: the float64 direct convolution of ``np.pad``-ed x (:mod:`magma_wino.reference`), and its
gradient; tolerances from :func:`magma_wino.accuracy.tolerance` for the layer's F(m, r) and
reduction length.  Outputs are compared in full, so a kernel that writes too few outputs (NaN
pre-fill of ``out``) or reads x at the wrong offset fails."""

from __future__ import annotations

import numpy as np
import pytest

import magma_wino as mw
from magma_wino import _backend, _checks, accuracy
from magma_wino import reference as R

BACKENDS = ["numpy", pytest.param("emulator", marks=pytest.mark.skipif(
    _backend.extension("emulator", required=False) is None, reason="the emulator extension is not built"))]

# m, r, x shape (N, C, spatial...), K, padding (every form of as_padding), its (lo, hi) pairs
CASES = [
    (2, 3, (1, 2, 7, 6), 3, ((0, 2), (1, 0)), ((0, 2), (1, 0))),           # asymmetric pairs
    (4, 3, (2, 2, 6, 9), 2, (2, 0, 0, 1), ((0, 1), (2, 0))),               # F.pad order (l, r, t, b)
    (2, 3, (1, 2, 5, 5), 2, 4, ((4, 4), (4, 4))),                          # > r − 1: whole zero tiles
    (4, 3, (1, 3, 6, 7), 2, ((3, 5), (0, 6)), ((3, 5), (0, 6))),           # > r − 1, asymmetric
    (2, 4, (1, 2, 7, 6), 3, "same", ((1, 2), (1, 2))),                     # even r: the odd zero after
    (2, 3, (1, 2, 4, 5, 6), 2, ((0, 1), (3, 0), (1, 1)), ((0, 1), (3, 0), (1, 1))),  # 3D
]
IDS = ["pairs", "fpad_order", "beyond_r", "beyond_r_asym", "same_even", "3d"]


def _plan(x, w, b, padding, m, backend):
    cls = mw.WinogradConv2d if x.ndim == 4 else mw.WinogradConv3d
    return cls(w, b, padding, m, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,r,shape,K,padding,pairs", CASES, ids=IDS)
def test_plan_with_any_padding_equals_direct_convolution_float32(backend, m, r, shape, K, padding, pairs):
    rng = np.random.default_rng(17)
    nd = len(shape) - 2
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((K, shape[1]) + (r,) * nd).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    plan = _plan(x, w, b, padding, m, backend)
    assert _checks.as_padding(padding, nd, r) == pairs
    y_ref = R._conv_direct(x, w, b, pairs, nd)
    assert plan.out_shape(shape) == y_ref.shape
    out = np.full(y_ref.shape, np.nan, np.float32)  # every output must be written
    plan(x, out=out)
    tol = accuracy.tolerance(np.float32, m, r, shape[1] * r**nd, nd)
    assert accuracy.rel_err(out, y_ref) <= tol


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,r,shape,K,padding,pairs", CASES, ids=IDS)
def test_plan_gradients_with_any_padding_equal_direct_gradients_float64(backend, m, r, shape, K, padding, pairs):
    """Padding <= r − 1 per side takes the data gradient by the forward kernels on the flipped
    filter (padded r − 1 − lo before, r − 1 − hi after); beyond r − 1, the adjoint kernels."""
    rng = np.random.default_rng(18)
    nd = len(shape) - 2
    x = rng.standard_normal(shape)
    w = rng.standard_normal((K, shape[1]) + (r,) * nd)
    plan = _plan(x, w, None, padding, m, backend)
    dy = rng.standard_normal(plan.out_shape(shape))
    g = plan.backward(x, dy)
    dx, dw = R.conv_direct_backward(x, w, dy, pairs)
    by_forward = all(p <= r - 1 for pair in pairs for p in pair)
    assert plan._dgrad_by_forward() == by_forward
    tol_x = accuracy.tolerance(np.float64, m, r, K * r**nd, nd)
    tol_w = accuracy.tolerance(np.float64, m, r, plan._positions_and_tiles(shape)[1] * r**nd, nd)
    assert accuracy.rel_err(g.grad_input, dx) <= tol_x
    assert accuracy.rel_err(g.grad_weight, dw) <= tol_w


def test_plan_keeps_symmetric_padding_as_ints_and_asymmetric_as_pairs():
    w = np.zeros((2, 2, 3, 3), np.float32)
    assert mw.WinogradConv2d(w, None, (1, 2), backend="numpy").padding == (1, 2)
    assert mw.WinogradConv2d(w, None, "same", backend="numpy").padding == (1, 1)
    assert mw.WinogradConv2d(w, None, (0, 1, 2, 2), backend="numpy").padding == ((2, 2), (0, 1))


@pytest.mark.parametrize("padding,exc,match", [
    (-1, ValueError, ">= 0"),
    ((1, 2, 3), ValueError, "padding"),
    (((1, 2), 3), TypeError, "mix"),
    ("full", ValueError, "'full'"),
    (1.5, TypeError, "padding"),
    (((0, 1), (0, 1.0)), TypeError, "ints"),
])
def test_bad_padding_names_padding(padding, exc, match):
    with pytest.raises(exc, match=match):
        mw.WinogradConv2d(np.zeros((2, 2, 3, 3), np.float32), None, padding, backend="numpy")


@pytest.mark.skipif(_backend.extension("emulator", required=False) is None,
                    reason="the emulator extension is not built")
def test_c_descriptor_takes_per_side_padding_and_refuses_negative_values():
    ext = _backend.extension("emulator")
    geo = ext.ConvDesc(2, 2, 3, 1, 2, 3, (7, 6), (0, 1), (2, 5)).geometry()
    assert tuple(geo["out_size"])[:2] == (7 + 0 + 2 - 2, 6 + 1 + 5 - 2)
    assert ext.ConvDesc(2, 2, 3, 1, 2, 3, (7, 6), (1, 1)).geometry()["out_size"][:2] == (7, 6)
    with pytest.raises(Exception, match="padding_end"):
        ext.ConvDesc(2, 2, 3, 1, 2, 3, (7, 6), (0, 0), (0, -1)).geometry()
    with pytest.raises(Exception, match="smaller than the filter"):
        ext.ConvDesc(2, 2, 3, 1, 2, 3, (1, 6), (0, 0), (1, 0)).geometry()


@pytest.mark.skipif(_backend.extension("emulator", required=False) is None,
                    reason="the emulator extension is not built")
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("m", [2, 4])
def test_fused_kernel_with_asymmetric_padding_beyond_r_equals_direct_float32(m, layout):
    rng = np.random.default_rng(19)
    pairs = ((0, 3), (4, 1))
    x = rng.standard_normal((1, 3, 6, 7)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    plan = mw.WinogradConv2d(w, None, pairs, m, "emulator", fused=True, precision="fp32", layout=layout)
    y_ref = R._conv_direct(x, w, None, pairs, 2)
    xin = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
    y = plan(xin)
    assert plan.algorithm == "fused"
    y = y.transpose(0, 3, 1, 2) if layout == "NHWC" else y
    assert accuracy.rel_err(y, y_ref) <= accuracy.tolerance(np.float32, m, 3, 3 * 9, 2)
