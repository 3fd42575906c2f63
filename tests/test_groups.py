"""Grouped and depthwise convolution in the plans (issue 17): the α^nd products become
block-diagonal, run as one batched product of α^nd·groups (K/g)×(C/g) blocks.

Oracle: the float64 direct convolution of each group on its own (the definition of a grouped
convolution), and its gradient; tolerances from :func:`magma_wino.accuracy.tolerance` at the
group's reduction length C/g·r^nd (dx: K/g·r^nd)."""

from __future__ import annotations

import numpy as np
import pytest

import magma_wino as mw
from magma_wino import _backend, accuracy
from magma_wino import reference as R

BACKENDS = ["numpy", pytest.param("emulator", marks=pytest.mark.skipif(
    _backend.extension("emulator", required=False) is None, reason="the emulator extension is not built"))]


def grouped_direct(x, w, b, pads, groups):
    """y of a grouped convolution: group i's outputs from group i's input channels."""
    nd = x.ndim - 2
    Cg, Kg = w.shape[1], w.shape[0] // groups
    ys = [R._conv_direct(x[:, i * Cg:(i + 1) * Cg], w[i * Kg:(i + 1) * Kg], None if b is None else b[i * Kg:(i + 1) * Kg],
                         pads, nd) for i in range(groups)]
    return np.concatenate(ys, axis=1)


def grouped_direct_backward(x, w, dy, pads, groups):
    Cg, Kg = w.shape[1], w.shape[0] // groups
    parts = [R.conv_direct_backward(x[:, i * Cg:(i + 1) * Cg], w[i * Kg:(i + 1) * Kg], dy[:, i * Kg:(i + 1) * Kg], pads)
             for i in range(groups)]
    return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=0)


# m, r, x shape (N, C, spatial...), K, groups, padding: C and K off the tile multiples, depthwise
CASES = [
    (2, 3, (2, 4, 7, 6), 6, 2, 1),
    (4, 3, (1, 6, 9, 5), 6, 3, ((0, 2), (1, 1))),
    (4, 3, (1, 5, 6, 7), 5, 5, 1),            # depthwise, K = C
    (2, 3, (1, 4, 5, 6), 8, 4, 1),            # depthwise with a channel multiplier of 2
    (2, 3, (1, 4, 4, 5, 6), 4, 2, 1),         # 3D
]
IDS = ["g2", "g3_asym_pad", "depthwise", "depthwise_x2", "3d_g2"]


def _plan(w, b, pad, m, backend, groups, **kw):
    cls = mw.WinogradConv2d if w.ndim == 4 else mw.WinogradConv3d
    return cls(w, b, pad, m, backend, groups=groups, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,r,shape,K,groups,pad", CASES, ids=IDS)
def test_grouped_plan_equals_grouped_direct_convolution_float32(backend, m, r, shape, K, groups, pad):
    rng = np.random.default_rng(21)
    nd = len(shape) - 2
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((K, shape[1] // groups) + (r,) * nd).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    plan = _plan(w, b, pad, m, backend, groups)
    assert plan.groups == groups and plan.C == shape[1] and plan.U.shape == (plan.alpha**nd, K, shape[1] // groups)
    y_ref = grouped_direct(x, w, b, pad, groups)
    out = np.full(y_ref.shape, np.nan, np.float32)
    plan(x, out=out)
    assert plan.algorithm == "three-phase"
    tol = accuracy.tolerance(np.float32, m, r, shape[1] // groups * r**nd, nd)
    assert accuracy.rel_err(out, y_ref) <= tol


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,r,shape,K,groups,pad", CASES, ids=IDS)
def test_grouped_plan_gradients_equal_grouped_direct_gradients_float64(backend, m, r, shape, K, groups, pad):
    rng = np.random.default_rng(22)
    nd = len(shape) - 2
    x = rng.standard_normal(shape)
    w = rng.standard_normal((K, shape[1] // groups) + (r,) * nd)
    plan = _plan(w, None, pad, m, backend, groups)
    dy = rng.standard_normal(plan.out_shape(shape))
    g = plan.backward(x, dy)
    dx, dw = grouped_direct_backward(x, w, dy, pad, groups)
    tol_x, tol_w = plan._gradient_tolerances(shape)
    assert tol_x <= accuracy.tolerance(np.float64, m, r, K // groups * r**nd, nd)
    assert accuracy.rel_err(g.grad_input, dx) <= tol_x
    assert accuracy.rel_err(g.grad_weight, dw) <= tol_w


@pytest.mark.parametrize("backend", BACKENDS)
def test_grouped_adjoint_path_gradients_equal_direct(backend):
    """Winograd-ReLU plans take dx by Uᵀ·dM and the input adjoint (not the flipped forward):
    the grouped transposed product.  Without ReLU activity (x > 0 everywhere after the
    transform is not guaranteed) the check is against the plan's own directional derivative."""
    rng = np.random.default_rng(23)
    x = rng.standard_normal((1, 4, 6, 6))
    w = rng.standard_normal((6, 2, 3, 3))
    plan = mw.WinogradConv2d(w, None, 1, 2, backend, groups=2, relu="winograd")
    assert not plan._dgrad_by_forward()
    dy = rng.standard_normal(plan.out_shape(x.shape))
    g = plan.backward(x, dy)
    d = rng.standard_normal(x.shape)
    eps = 1e-6  # y is piecewise linear in x: a small step stays within one linear piece
    fd = (np.vdot(plan(x + eps * d), dy) - np.vdot(plan(x - eps * d), dy)) / (2 * eps)
    assert abs(fd - np.vdot(g.grad_input, d)) <= 1e-6 * abs(fd) + 1e-8
    dw = rng.standard_normal(w.shape)
    pw = mw.WinogradConv2d(w + eps * dw, None, 1, 2, backend, groups=2, relu="winograd")
    mw_ = mw.WinogradConv2d(w - eps * dw, None, 1, 2, backend, groups=2, relu="winograd")
    fdw = (np.vdot(pw(x), dy) - np.vdot(mw_(x), dy)) / (2 * eps)
    assert abs(fdw - np.vdot(g.grad_weight, dw)) <= 1e-6 * abs(fdw) + 1e-8


def test_grouped_plan_refuses_what_does_not_divide():
    w = np.zeros((6, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="groups"):
        mw.WinogradConv2d(w, None, 1, backend="numpy", groups=4)  # K = 6 not a multiple of 4
    with pytest.raises(ValueError, match="groups"):
        mw.WinogradConv2d(w, None, 1, backend="numpy", groups=0)
    plan = mw.WinogradConv2d(w, None, 1, backend="numpy", groups=3)
    with pytest.raises(ValueError, match="C = 6"):
        plan(np.zeros((1, 2, 5, 5), np.float32))  # x needs groups · C/groups = 6 channels


@pytest.mark.skipif(_backend.extension("emulator", required=False) is None,
                    reason="the emulator extension is not built")
def test_grouped_plan_is_three_phase_and_takes_channels_last():
    rng = np.random.default_rng(24)
    x = rng.standard_normal((2, 6, 7, 5)).astype(np.float32)
    w = rng.standard_normal((9, 2, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="fused=True: grouped"):
        mw.WinogradConv2d(w, None, 1, 4, backend="emulator", groups=3, fused=True)
    plan = mw.WinogradConv2d(w, None, 1, 4, backend="emulator", groups=3, layout="NHWC")
    y = plan(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    y_ref = grouped_direct(x, w, None, 1, 3)
    assert accuracy.rel_err(y.transpose(0, 3, 1, 2), y_ref) <= accuracy.tolerance(np.float32, 4, 3, 2 * 9, 2)


@pytest.mark.skipif(_backend.extension("emulator", required=False) is None,
                    reason="the emulator extension is not built")
@pytest.mark.parametrize("precision", ["fp32", "tf32x3", "tf32", "fp16", "bf16"])
def test_grouped_strided_layer_in_every_precision_mode_within_its_tolerance(precision):
    """magma_wino.conv2d with a stride and groups: the decomposition's phase convolution
    (F(4, 2) over 4·C/g channels) through the grouped products in each mode."""
    from magma_wino import precision as P

    rng = np.random.default_rng(25)
    x = rng.standard_normal((2, 4, 13, 12)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    args = dict(stride=2, groups=2, m=4, backend="emulator", precision=precision)
    if precision in ("tf32", "fp16", "bf16"):  # the accuracy gate sees the phase layer's F(4, 2)
        with pytest.raises(ValueError, match=f"precision='{precision}' is too inaccurate for F\\(4, 2\\)"):
            mw.conv2d(x, w, None, 1, **args)
        args["allow_inaccurate"] = True
    y = mw.conv2d(x, w, None, 1, **args)
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), None, 2, 1, 1,
                                     2).numpy()
    assert y.dtype == np.float32 and y.shape == ref.shape
    assert accuracy.rel_err(y, ref) <= P.tolerance(precision, 4, 2, 2 * 4 * 4, 2)


def test_conv2d_with_a_stride_checks_out_before_writing_it():
    """The decomposed path writes y into out itself: out is checked as the plan checks it (no
    broadcasting of a wrong shape, no silent cast)."""
    rng = np.random.default_rng(26)
    x, w = rng.standard_normal((1, 2, 7, 7)), rng.standard_normal((2, 2, 3, 3))
    out = np.full((1, 2, 3, 3), np.nan)
    y = mw.conv2d(x, w, None, 0, stride=2, backend="numpy", out=out)
    assert y is out and not np.isnan(out).any()
    with pytest.raises(ValueError, match=r"out must have shape \(1, 2, 3, 3\)"):
        mw.conv2d(x, w, None, 0, stride=2, backend="numpy", out=np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match="out must have shape"):
        mw.conv2d(x, w, None, 0, stride=2, backend="numpy", out=np.zeros((3, 2, 3, 3)))
    with pytest.raises(TypeError, match="out must be float64"):
        mw.conv2d(x, w, None, 0, stride=2, backend="numpy", out=np.zeros((1, 2, 3, 3), np.float32))
