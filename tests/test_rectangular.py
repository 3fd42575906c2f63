"""Rectangular tiles F(m_h×m_w, r_h×r_w) (3D: F(m_d×m_h×m_w, r_d×r_h×r_w)), end to end.

* the C layer's geometry of a rectangular descriptor (mw_conv_desc.m_axes / r_axes) and its
  argument checks;
* the generic transform kernels and their adjoints, run by the emulator on a rectangular
  tile, against :mod:`magma_wino.reference` (outputs pre-filled with NaN, tolerances from the
  per-axis matrices' norms and the dtype's unit roundoff, as tests/test_kernels_emulator.py);
* plans, ``magma_wino.conv2d`` and the torch path against float64 direct convolution for
  1×3, 3×1, 3×5, 5×3, 1×7, 7×1 filters, with strides and dilations whose phase filters are
  rectangular, every precision mode, forward and backward.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import magma_wino as mw
import magma_wino._emu as emu
from magma_wino import precision as _precision
from magma_wino import reference
from magma_wino.errors import InvalidArgumentError, UnsupportedError
from magma_wino.transforms import winograd

DT_CODE = {np.dtype(np.float32): emu.FLOAT32, np.dtype(np.float64): emu.FLOAT64}

# (m per axis, r per axis): the 1D tiles along a long axis, and two-sided rectangles.
TILES_2D = [((1, 4), (1, 3)), ((4, 1), (3, 1)), ((2, 4), (3, 5)), ((4, 2), (5, 3)), ((1, 6), (1, 7)),
            ((3, 2), (2, 3))]
TILES_3D = [((1, 2, 2), (1, 3, 3)), ((2, 2, 4), (3, 3, 1)), ((2, 3, 2), (3, 2, 3))]
TILES = [(2, *t) for t in TILES_2D] + [(3, *t) for t in TILES_3D]


def _id(case) -> str:
    nd, ms, rs = case
    return f"{nd}D-F({'x'.join(map(str, ms))},{'x'.join(map(str, rs))})"


def ptr(a: np.ndarray | None) -> int:
    return 0 if a is None else int(a.ctypes.data)


def nan_array(shape, dtype) -> np.ndarray:
    return np.full(shape, np.nan, dtype=dtype)


def axis_mats(ms, rs, dtype) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [winograd(m, r).matrices(np.dtype(dtype)) for m, r in zip(ms, rs)]


def mats_for(ms, rs, dtype) -> np.ndarray:
    """One Aᵀ, G, Bᵀ set per axis, back to back (magma_wino.h, rectangular tiles)."""
    return np.ascontiguousarray(
        np.concatenate([a.ravel() for s in axis_mats(ms, rs, dtype) for a in s]).astype(dtype))


def transform_tol(dtype, mats: list[np.ndarray], max_in: float, extra: float = 0.0) -> float:
    """tests/test_kernels_emulator.transform_tol with one matrix per axis: ndim passes, each a
    dot product of at most n = max(columns) terms, so the error is below
    ndim·(n + 1)·u·prod(‖T_i‖∞)·max|a| (factor 4: the reference's own rounding)."""
    u = float(np.finfo(np.dtype(dtype)).eps) / 2
    n = max(t.shape[1] for t in mats)
    norms = math.prod(float(np.abs(t).sum(axis=1).max()) for t in mats)
    return 4 * len(mats) * (n + 1) * u * norms * max_in + 4 * u * extra


def layer(nd, ms, rs):
    """Sizes whose outputs are not multiples of m on any axis, asymmetric padding."""
    pads = [(min(1, r - 1), r - 1) for r in rs]
    outs = [2 * m + 1 if m > 1 else 3 for m in ms]
    size = tuple(o + r - 1 - lo - hi for o, r, (lo, hi) in zip(outs, rs, pads))
    return size, pads


def desc_for(nd, ms, rs, N, C, K, size, pads):
    return emu.ConvDesc(nd, ms, rs, N, C, K, size, tuple(lo for lo, _ in pads), tuple(hi for _, hi in pads))


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("case", TILES, ids=_id)
def test_rectangular_geometry_counts_positions_matrices_and_taps_per_axis(case):
    nd, ms, rs = case
    size, pads = layer(nd, ms, rs)
    g = desc_for(nd, ms, rs, 2, 3, 5, size, pads).geometry(emu.FLOAT64)
    alphas = tuple(m + r - 1 for m, r in zip(ms, rs))
    assert g["rectangular"] and g["alpha_axes"] == alphas and g["alpha"] == max(alphas)
    assert g["positions"] == math.prod(alphas)
    assert g["matrices_elems"] == sum(m * a + a * r + a * a for m, r, a in zip(ms, rs, alphas))
    assert g["w_elems"] == 5 * 3 * math.prod(rs)
    out = tuple(s + lo + hi - r + 1 for s, r, (lo, hi) in zip(size, rs, pads))
    assert g["out_size"] == out
    assert g["tiles"] == tuple(-(-o // m) for o, m in zip(out, ms))
    assert g["u_elems"] == g["positions"] * 15


def test_square_descriptor_spelled_per_axis_is_not_rectangular():
    g = emu.ConvDesc(2, (4, 4), (3, 3), 1, 2, 2, (9, 9), (1, 1)).geometry(emu.FLOAT32)
    assert not g["rectangular"] and g["positions"] == 36 and g["matrices_elems"] == 4 * 6 + 6 * 3 + 36


def test_rectangular_descriptor_errors_name_the_field():
    with pytest.raises(UnsupportedError, match=r"axis 1: F\(14, 5\): alpha = m \+ r - 1 = 18 exceeds 16"):
        emu.ConvDesc(2, (2, 14), (3, 5), 1, 1, 1, (9, 30), (0, 0)).geometry(emu.FLOAT32)
    with pytest.raises(InvalidArgumentError, match=r"desc.m_axes\[1\] = -1"):
        emu.ConvDesc(2, (2, -1), (3, 3), 1, 1, 1, (9, 9), (0, 0)).geometry(emu.FLOAT32)
    with pytest.raises(InvalidArgumentError, match=r"smaller than the filter 5"):
        emu.ConvDesc(2, (2, 2), (3, 5), 1, 1, 1, (9, 3), (0, 0)).geometry(emu.FLOAT32)
    with pytest.raises(ValueError, match=r"m and r must be ints or 2 ints"):
        emu.ConvDesc(2, (2, 2, 2), 3, 1, 1, 1, (9, 9), (0, 0))
    for m, r in [((1, 4), (1, 0)), ((0, 4), (1, 3))]:  # C's 0 = "m / r": never taken from a tuple
        with pytest.raises(ValueError, match=r"m and r per axis must be >= 1 on every axis"):
            emu.ConvDesc(2, m, r, 1, 1, 1, (4, 4), (0, 0))


def test_rectangular_tile_without_matrices_is_unsupported_and_has_no_fused_kernel():
    desc = emu.ConvDesc(2, (2, 4), (3, 3), 1, 2, 2, (4, 8), (1, 1))  # a rectangle, not a line
    x = np.zeros((1, 2, 4, 8), np.float32)
    V = np.zeros((24, 2, 4), np.float32)
    with pytest.raises(UnsupportedError, match=r"rectangular tile .* has no specialised\s+kernel"):
        emu.input_transform(desc, emu.FLOAT32, ptr(x), ptr(V), 0, 0, 0)
    with pytest.raises(UnsupportedError, match=r"no fused kernel for a rectangular tile"):
        emu.conv2d_fused_plan(emu.ConvDesc(2, (4, 4), (3, 1), 1, 2, 2, (8, 8), (1, 0)), emu.FLOAT32,
                              emu.PRECISION_FP32)


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", TILES, ids=_id)
def test_generic_transform_kernels_on_rectangular_tiles_match_the_reference(case, dtype, rng):
    nd, ms, rs = case
    N, C, K = 2, 3, 4
    size, pads = layer(nd, ms, rs)
    code = DT_CODE[np.dtype(dtype)]
    desc = desc_for(nd, ms, rs, N, C, K, size, pads)
    geo = desc.geometry(code)
    mats = mats_for(ms, rs, dtype)
    m64 = axis_mats(ms, rs, np.float64)
    # filter transform: one r_h×r_w image per (k, c)
    w = rng.standard_normal((K, C) + rs).astype(dtype)
    U = nan_array((geo["positions"], K, C), dtype)
    emu.filter_transform(emu.ConvDesc(nd, ms, rs, 1, C, K, rs, (0,) * nd), code, ptr(w), ptr(U), ptr(mats), 0)
    ref = reference.filter_transform(w.astype(np.float64), ms)
    assert float(np.abs(U - ref).max()) <= transform_tol(dtype, [g for _, g, _ in m64], float(np.abs(w).max()))
    # input transform
    x = rng.standard_normal((N, C) + size).astype(dtype)
    V = nan_array((geo["positions"], C, geo["num_tiles"]), dtype)
    emu.input_transform(desc, code, ptr(x), ptr(V), 0, ptr(mats), 0)
    ref = reference.input_transform(x.astype(np.float64), ms, rs, pads)
    assert V.shape == ref.shape
    assert float(np.abs(V - ref).max()) <= transform_tol(dtype, [bt for _, _, bt in m64], float(np.abs(x).max()))
    # output transform, with bias
    M = rng.standard_normal((geo["positions"], K, geo["num_tiles"])).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    yshape = (N, K) + geo["out_size"]
    y = nan_array(yshape, dtype)
    emu.output_transform(desc, code, ptr(M), ptr(b), ptr(y), ptr(mats), 0)
    ref = reference.output_transform(M.astype(np.float64), ms, rs, yshape, b.astype(np.float64))
    tol = transform_tol(dtype, [at for at, _, _ in m64], float(np.abs(M).max()), float(np.abs(b).max()))
    assert float(np.abs(y - ref).max()) <= tol


@pytest.mark.parametrize("case", TILES, ids=_id)
def test_adjoint_kernels_on_rectangular_tiles_match_the_reference_adjoints(case, rng):
    nd, ms, rs = case
    N, C, K = 2, 3, 4
    size, pads = layer(nd, ms, rs)
    code, dt = emu.FLOAT64, np.float64
    desc = desc_for(nd, ms, rs, N, C, K, size, pads)
    geo = desc.geometry(code)
    mats = mats_for(ms, rs, dt)
    m64 = axis_mats(ms, rs, dt)
    dy = rng.standard_normal((N, K) + geo["out_size"])
    dM = nan_array((geo["positions"], K, geo["num_tiles"]), dt)
    emu.output_transform_adjoint(desc, code, ptr(dy), ptr(dM), ptr(mats), 0)
    ref = reference.output_transform_adjoint(dy, ms, rs)
    assert float(np.abs(dM - ref).max()) <= transform_tol(dt, [at.T for at, _, _ in m64], float(np.abs(dy).max()))
    dV = rng.standard_normal((geo["positions"], C, geo["num_tiles"]))
    dx = nan_array((N, C) + size, dt)
    emu.input_transform_adjoint(desc, code, ptr(dV), ptr(dx), ptr(mats), 0)
    ref = reference.input_transform_adjoint(dV, ms, rs, (N, C) + size, pads)
    # each dx element sums the windows of up to ceil(alpha/m) tiles per axis
    overlap = math.prod(-(-(m + r - 1) // m) for m, r in zip(ms, rs))
    tol = overlap * transform_tol(dt, [bt.T for _, _, bt in m64], float(np.abs(dV).max()))
    assert float(np.abs(dx - ref).max()) <= tol
    dU = rng.standard_normal((geo["positions"], K, C))
    dw = nan_array((K, C) + rs, dt)
    emu.filter_transform_adjoint(emu.ConvDesc(nd, ms, rs, 1, C, K, rs, (0,) * nd), code, ptr(dU), ptr(dw),
                                 ptr(mats), 0)
    ref = reference.filter_transform_adjoint(dU, ms, rs, nd)
    assert float(np.abs(dw - ref).max()) <= transform_tol(dt, [g.T for _, g, _ in m64], float(np.abs(dU).max()))


# --------------------------------------------------------------------------- layers

FILTERS = [(1, 3), (3, 1), (3, 5), (5, 3), (1, 7), (7, 1)]


def rel_err(y, ref) -> float:
    return float(np.abs(np.asarray(y, np.float64) - ref).max() / max(np.abs(ref).max(), 1e-300))


def tol_for(mode: str, m: int, rs, C: int, nd: int = 2) -> float:
    """The precision model's bound (:func:`magma_wino.precision.tolerance`) of the rectangular
    tile the plans run — F(m, r_i) per axis, F(1, 1) on an axis of one tap; per axis, the
    growth factors multiply — at the layer's reduction length C·prod(r)."""
    ms = tuple(1 if r == 1 and len(set(rs)) > 1 else m for r in rs)
    return _precision.tolerance(mode, ms, tuple(rs), C * math.prod(rs), nd)


@pytest.mark.parametrize("backend", ["numpy", "emulator"])
@pytest.mark.parametrize("ks", FILTERS, ids=lambda k: f"{k[0]}x{k[1]}")
def test_plan_runs_a_rectangular_filter_as_a_rectangular_tile(ks, backend, rng):
    x = rng.standard_normal((2, 3, 11, 10))
    w = rng.standard_normal((4, 3) + ks)
    b = rng.standard_normal(4)
    pads = ((1, 2), (0, 3))
    plan = mw.WinogradConv2d(w, b, pads, 4, backend)
    ms = tuple(1 if k == 1 else 4 for k in ks)
    assert plan.rectangular and plan.r == ks and plan.positions == math.prod(m + k - 1 for m, k in zip(ms, ks))
    assert plan.tile == f"F({ms[0]}×{ms[1]}, {ks[0]}×{ks[1]})"
    line = 1 in ks and (4, max(ks)) in [(2, 3), (4, 3), (6, 3), (2, 5)]  # a specialised line kernel
    assert plan.generic == (backend != "numpy" and not line)
    y = plan(x)
    ref = reference.conv2d_direct(x, w, b, pads)
    assert y.shape == ref.shape and rel_err(y, ref) <= tol_for("fp64", 4, ks, 3)


@pytest.mark.parametrize("mode", ["fp32", "tf32x3", "tf32", "fp16", "bf16"])
def test_rectangular_plans_in_every_precision_mode_match_float64(mode, rng):
    ks = (1, 3)
    x = rng.standard_normal((1, 8, 6, 17)).astype(np.float32)
    w = rng.standard_normal((8, 8) + ks).astype(np.float32)
    plan = mw.WinogradConv2d(w, None, (0, 1), 4, "emulator", precision=mode, allow_inaccurate=True)
    assert plan.precision == mode and plan.rectangular
    ref = reference.conv2d_direct(x, w, None, (0, 1))
    assert rel_err(plan(x), ref) <= tol_for(mode, 4, ks, 8)


@pytest.mark.parametrize("backend", ["numpy", "emulator"])
@pytest.mark.parametrize("ks", [(1, 3), (3, 5), (7, 1)], ids=lambda k: f"{k[0]}x{k[1]}")
def test_rectangular_plan_gradients_match_the_direct_gradients(ks, backend, rng):
    """Both data-gradient paths: the forward kernels on the flipped filter (padding <= r − 1)
    and the adjoint kernels (padding beyond r − 1 on a side)."""
    x = rng.standard_normal((2, 3, 9, 10))
    w = rng.standard_normal((4, 3) + ks)
    for pads in (((ks[0] // 2,) * 2, (ks[1] // 2,) * 2), ((ks[0], 0), (0, ks[1]))):
        plan = mw.WinogradConv2d(w, None, pads, 4, backend)
        dy = rng.standard_normal(plan.out_shape(x.shape))
        g = plan.backward(x, dy)
        dx, dw = reference.conv_direct_backward(x, w, dy, pads)
        n = max(4, 2 * 9 * 10)  # the weight gradient's reduction runs over N·H·W
        assert rel_err(g.grad_input, dx) <= tol_for("fp64", 4, ks, 4)
        assert rel_err(g.grad_weight, dw) <= tol_for("fp64", 4, ks, n)


@pytest.mark.parametrize("backend", ["numpy", "emulator"])
@pytest.mark.parametrize("ks,kw", [((1, 3), {}), ((3, 5), {"stride": 2, "padding": 2}),
                                   ((3, 3), {"stride": (1, 2), "padding": 1}),
                                   ((1, 7), {"dilation": (1, 2), "padding": (0, 6)}),
                                   ((5, 3), {"padding": "same"}), ((3, 1), {"groups": 2, "padding": (1, 0)})],
                         ids=["1x3", "3x5-s2", "3x3-s1x2", "1x7-d1x2", "5x3-same", "3x1-g2"])
def test_conv2d_runs_rectangular_inner_filters_without_square_extension(ks, kw, backend, rng):
    """magma_wino.conv2d keeps each axis's phase-filter length: the 3×3 filter with stride
    (1, 2) becomes a 3×2 phase filter, 3×5 stride 2 a 2×3 one — no zero taps multiplied."""
    from magma_wino.decompose import decompose

    g = kw.get("groups", 1)
    x = rng.standard_normal((2, 4, 13, 14))
    w = rng.standard_normal((6, 4 // g) + ks)
    y = mw.conv2d(x, w, None, kw.get("padding", 0), stride=kw.get("stride", 1), dilation=kw.get("dilation", 1),
                  groups=g, backend=backend)
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, kw.get("stride", 1),
                                     kw.get("padding", 0), kw.get("dilation", 1), g).numpy()
    dec = decompose(2, ks, kw.get("stride", 1), kw.get("padding", 0), kw.get("dilation", 1), g, rectangular=True)
    inner = dec.inner_kernel
    assert inner == tuple(-(-k // s) for k, s in zip(ks, dec_strides(kw)))
    assert y.shape == ref.shape and rel_err(y, ref) <= tol_for("fp64", 4, inner, 4 // g * dec.in_phases)


def dec_strides(kw) -> tuple[int, int]:
    s = kw.get("stride", 1)
    return (s, s) if isinstance(s, int) else tuple(s)


def test_torch_conv2d_of_rectangular_filters_forward_and_backward_match_torch(rng):
    torch = pytest.importorskip("torch")
    from magma_wino.torch import functional as F

    for ks, kw in [((1, 3), {"padding": (0, 1)}), ((3, 1), {"padding": "same"}),
                   ((1, 7), {"stride": 2, "padding": (0, 3)})]:
        x = torch.from_numpy(rng.standard_normal((2, 3, 9, 12))).requires_grad_()
        w = torch.from_numpy(rng.standard_normal((4, 3) + ks)).requires_grad_()
        y = F.conv2d(x, w, None, backend="emulator", **kw)
        ref = torch.nn.functional.conv2d(x, w, None, **kw)
        assert y.shape == ref.shape
        assert rel_err(y.detach().numpy(), ref.detach().numpy()) <= tol_for("fp64", 4, ks, 3)
        dy = torch.from_numpy(rng.standard_normal(tuple(y.shape)))
        gx, gw = torch.autograd.grad(y, (x, w), dy)
        rx, rw = torch.autograd.grad(ref, (x, w), dy)
        assert rel_err(gx.numpy(), rx.numpy()) <= tol_for("fp64", 4, ks, 4)
        assert rel_err(gw.numpy(), rw.numpy()) <= tol_for("fp64", 4, ks, 2 * 9 * 12)


def test_rectangular_plans_refuse_the_fused_kernel_and_conv2d_fused_runs_the_square_filter(rng):
    """The fused kernel is the square F(m, 3): a rectangular plan says so at construction;
    ``conv2d(..., fused=True)`` runs a 1×3 filter as the 3×3 with zero taps, fused."""
    w = rng.standard_normal((8, 8, 1, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"rectangular tile F\(1×4, 1×3\) has no fused kernel"):
        mw.WinogradConv2d(w, None, (0, 1), 4, "emulator", fused=True)
    assert mw.WinogradConv2d(w, None, (0, 1), 4, "emulator").algorithm_for((1, 8, 8, 8)) == "three-phase"
    x = rng.standard_normal((1, 8, 8, 9)).astype(np.float32)
    y = mw.conv2d(x, w, None, (0, 1), backend="emulator", fused=True, precision="fp32")
    ref = reference.conv2d_direct(x, w, None, (0, 1))
    assert rel_err(y, ref) <= _precision.tolerance("fp32", 4, 3, 8 * 9)


def test_spatially_pruned_rectangular_plan_matches_the_pruned_direct_layer(rng):
    w = rng.standard_normal((6, 4, 3, 5))
    plan = mw.WinogradConv2d.from_spatial(w, prune=0.4, padding=(1, 2), m=2, backend="emulator")
    kept = np.count_nonzero(plan._w)
    assert kept == round(0.4 * w.size) and plan.rectangular
    x = rng.standard_normal((2, 4, 9, 11))
    ref = reference.conv2d_direct(x, plan._w, None, (1, 2))
    assert rel_err(plan(x), ref) <= tol_for("fp64", 2, (3, 5), 4)


def test_per_axis_tolerance_is_the_square_model_on_square_tiles_and_tight_on_rectangular_ones(rng):
    """accuracy.tolerance with m, r per axis: the square model where the axes agree (bit for
    bit), and on a 1×7 / 3×5 layer tight enough that a 10× larger error fails (the square
    F(4, 7) model, 2D, would pass a 70× larger one)."""
    from magma_wino.accuracy import tolerance

    for m, r, nd in [(4, 3, 2), (2, 5, 2), (2, 3, 3)]:
        assert tolerance(np.float32, (m,) * nd, (r,) * nd, 64, nd) == tolerance(np.float32, m, r, 64, nd)
        assert _precision.tolerance("tf32", (m,) * nd, (r,) * nd, 64, nd) == _precision.tolerance("tf32", m, r, 64, nd)
    for ks in [(1, 7), (3, 5)]:
        x = rng.standard_normal((2, 16, 12, 14)).astype(np.float32)
        w = rng.standard_normal((8, 16) + ks).astype(np.float32)
        err = rel_err(mw.WinogradConv2d(w, None, 1, 4, "numpy")(x), reference.conv2d_direct(x, w, None, 1))
        tol = tol_for("fp32", 4, ks, 16)
        assert err <= tol < 10 * err, (ks, err, tol)


LINES = [(axis, m, r) for axis in ("W", "H") for m, r in [(2, 3), (4, 3), (6, 3), (2, 5)]]


def _line(axis: str, m: int, r: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return ((1, m), (1, r)) if axis == "W" else ((m, 1), (r, 1))


@pytest.mark.parametrize("relu", [0, 1, 2], ids=["relu-none", "relu-spatial", "relu-winograd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("axis,m,r", LINES, ids=lambda v: str(v))
def test_specialised_line_kernels_of_1xr_and_rx1_tiles_match_the_reference(axis, m, r, dtype, relu, rng):
    """F(1×m, 1×r) and F(m×1, r×1) of a specialised F(m, r) run straight-line 1D transforms with
    matrices = NULL (mw_has_specialized_tile); against the reference, outputs NaN-prefilled."""
    ms, rs = _line(axis, m, r)
    N, C, K = 2, 3, 4
    size, pads = layer(2, ms, rs)
    code = DT_CODE[np.dtype(dtype)]
    desc = desc_for(2, ms, rs, N, C, K, size, pads)
    assert emu.has_specialized_tile(desc)
    geo = desc.geometry(code)
    m64 = axis_mats(ms, rs, np.float64)
    w = rng.standard_normal((K, C) + rs).astype(dtype)
    U = nan_array((geo["positions"], K, C), dtype)
    emu.filter_transform(emu.ConvDesc(2, ms, rs, 1, C, K, rs, (0, 0)), code, ptr(w), ptr(U), 0, 0)
    ref = reference.filter_transform(w.astype(np.float64), ms)
    assert float(np.abs(U - ref).max()) <= transform_tol(dtype, [g for _, g, _ in m64], float(np.abs(w).max()))
    x = rng.standard_normal((N, C) + size).astype(dtype)
    V = nan_array((geo["positions"], C, geo["num_tiles"]), dtype)
    emu.input_transform(desc, code, ptr(x), ptr(V), relu, 0, 0)
    x64 = np.maximum(x.astype(np.float64), 0) if relu == 1 else x.astype(np.float64)
    ref = reference.input_transform(x64, ms, rs, pads, relu=relu == 2)
    assert float(np.abs(V - ref).max()) <= transform_tol(dtype, [bt for _, _, bt in m64], float(np.abs(x).max()))
    M = rng.standard_normal((geo["positions"], K, geo["num_tiles"])).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    yshape = (N, K) + geo["out_size"]
    y = nan_array(yshape, dtype)
    emu.output_transform(desc, code, ptr(M), ptr(b), ptr(y), 0, 0)
    ref = reference.output_transform(M.astype(np.float64), ms, rs, yshape, b.astype(np.float64))
    tol = transform_tol(dtype, [at for at, _, _ in m64], float(np.abs(M).max()), float(np.abs(b).max()))
    assert float(np.abs(y - ref).max()) <= tol


def test_only_the_lines_of_specialised_tiles_are_specialised_rectangular_tiles():
    assert emu.has_specialized_tile(emu.ConvDesc(2, 4, 3, 1, 1, 1, (9, 9), (1, 1)))  # square F(4, 3)
    assert not emu.has_specialized_tile(emu.ConvDesc(2, (1, 3), (1, 3), 1, 1, 1, (9, 9), (0, 1)))  # no F(3, 3)
    assert not emu.has_specialized_tile(emu.ConvDesc(2, (2, 4), (3, 3), 1, 1, 1, (9, 9), (1, 1)))
    assert not emu.has_specialized_tile(emu.ConvDesc(3, (1, 1, 4), (1, 1, 3), 1, 1, 1, (3, 9, 9), (0, 0, 1)))
    assert not emu.has_specialized_tile(emu.ConvDesc(2, 4, 3, 1, 1, 1, (1, 1), (0, 0)))  # invalid: too small


@pytest.mark.parametrize("ks", [(1, 3), (3, 1), (1, 5)], ids=lambda k: f"{k[0]}x{k[1]}")
def test_line_plans_run_the_specialised_kernels_and_agree_with_the_generic_ones(ks, rng):
    x = rng.standard_normal((2, 5, 10, 11))
    w = rng.standard_normal((6, 5) + ks)
    m = 2 if 5 in ks else 4
    special = mw.WinogradConv2d(w, None, 1, m, "emulator")
    generic = mw.WinogradConv2d(w, None, 1, m, "emulator", generic=True)
    assert not special.generic and generic.generic
    ref = reference.conv2d_direct(x, w, None, 1)
    tol = tol_for("fp64", m, ks, 5)
    assert rel_err(special(x), ref) <= tol and rel_err(generic(x), ref) <= tol


def test_torch_module_of_a_rectangular_kernel_and_its_plan_compute_the_same_layer(rng):
    torch = pytest.importorskip("torch")
    import magma_wino.torch as mt

    torch.manual_seed(3)
    conv = torch.nn.Conv2d(4, 6, (1, 3), padding=(0, 1)).double()
    mod = mt.WinogradConv2d.from_conv(conv, backend="emulator")
    plan = mod.to_plan(backend="emulator")
    assert plan.rectangular and plan.tile == "F(1×4, 1×3)" and not plan.generic
    x = torch.from_numpy(rng.standard_normal((2, 4, 7, 9)))
    ref = conv(x).detach().numpy()
    tol = tol_for("fp64", 4, (1, 3), 4)
    assert rel_err(mod(x).detach().numpy(), ref) <= tol and rel_err(plan(x.numpy()), ref) <= tol


@pytest.mark.parametrize("backend", ["numpy", "emulator"])
@pytest.mark.parametrize("kw,product", [
    ({"prune": 0.4, "sparse": True, "precision": "fp64"}, "csr"),
    ({"prune": 0.3, "sparse": True, "relu": "winograd", "precision": "fp64"}, "csr"),
    ({"prune": 0.5, "sparse": True, "structure": "block", "precision": "tf32x3"}, "block"),
    ({"sparse": True, "structure": "2:4", "precision": "tf32x3"}, "2:4"),
    ({"prune": 0.05, "sparse": "auto", "precision": "fp64"}, None),
], ids=["csr", "winograd-relu", "block", "2:4", "auto"])
def test_winograd_domain_pruned_rectangular_layers_match_their_float64_formula(kw, product, backend, rng):
    """from_winograd(U, r=(1, 3), m=(1, 4)): U of the rectangular tile, pruned, on every sparse
    product; y against Aᵀ[(pruned U) ⊙ V]A in float64 (reference.winograd_conv_from_U)."""
    dt = np.float64 if kw["precision"] == "fp64" else np.float32
    w = rng.standard_normal((20, 16, 1, 3))
    x = rng.standard_normal((2, 16, 9, 10))
    U = reference.filter_transform(w, (1, 4))
    plan = mw.WinogradConv2d.from_winograd(U.astype(dt), (1, 3), m=(1, 4), padding=(0, 1), backend=backend, **kw)
    assert plan.rectangular and plan.tile == "F(1×4, 1×3)"
    assert plan.product == (product or plan.product) and plan.product != "dense"  # 5 %: sparse pays
    Up = plan.csr.to_host().to_dense().astype(np.float64)
    assert 0 < np.count_nonzero(Up) < Up.size
    relu = kw.get("relu") == "winograd"
    ref = reference.winograd_conv_from_U(x.astype(dt).astype(np.float64), Up, (1, 4), (1, 3), (0, 1), relu=relu)
    y = plan(x.astype(dt))
    assert rel_err(y, ref) <= tol_for(kw["precision"], 4, (1, 3), 16)
