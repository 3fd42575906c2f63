"""Channels-last x and y in the three-phase kernels (issue 17): ``mw_conv_desc.layout =
MW_LAYOUT_NHWC`` makes the input / output transforms (specialised, line and generic, 2D and 3D)
and the input / output adjoints read and write N×[D×]H×W×C arrays in place.

Oracle: the same kernels on the channels-first arrays.  Only the addresses differ — the same
arithmetic in the same order — so every result is bitwise the channels-first one, transposed;
outputs are pre-filled with NaN so an unwritten element fails.  A plan with ``layout="NHWC"``
on the emulator then runs without transposing x or y (its copy helpers are made to fail)."""

from __future__ import annotations

import numpy as np
import pytest

import magma_wino as mw
from magma_wino import _backend, reference
from magma_wino.errors import InvalidArgumentError
from magma_wino.transforms import winograd

emu = _backend.extension("emulator", required=False)
pytestmark = pytest.mark.skipif(emu is None, reason="the emulator extension is not built")

F64 = None if emu is None else emu.FLOAT64
N, C, K = 2, 3, 5


def ptr(a: np.ndarray | None) -> int:
    if a is None:
        return 0
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def to_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def to_first(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def mats(m, r, rect=None):
    """Aᵀ, G, Bᵀ back to back (one set per axis for a rectangular tile)."""
    sets = rect or [(m, r)]
    parts = []
    for mi, ri in sets:
        parts += [a.ravel() for a in winograd(mi, ri).matrices(np.float64)]
    return np.ascontiguousarray(np.concatenate(parts))


# (name, ndim, m, r, in_size, leading pad, trailing pad, matrices or None = specialised kernels)
CASES = [
    ("2d-F(4,3)-specialised", 2, 4, 3, (9, 7), (1, 0), (2, 1), None),
    ("2d-F(2,3)-generic", 2, 2, 3, (6, 8), (1, 1), (0, 2), "square"),
    ("2d-F(1x4,1x3)-line", 2, (1, 4), (1, 3), (5, 11), (0, 1), (0, 2), None),
    ("2d-F(3x2,3x2)-generic", 2, (2, 3), (3, 2), (7, 6), (1, 0), (2, 1), "rect"),
    ("3d-F(2,3)-specialised", 3, 2, 3, (4, 5, 6), (1, 0, 1), (0, 1, 2), None),
    ("3d-F(2,3)-generic", 3, 2, 3, (3, 5, 4), (1, 1, 0), (1, 0, 1), "square"),
]


def _desc(case, layout):
    _, nd, m, r, size, lo, hi, _ = case
    return emu.ConvDesc(nd, m, r, N, C, K, size, lo, hi, layout)


def _mats(case):
    _, nd, m, r, *_, kind = case
    if kind is None:
        return None
    if kind == "square":
        return mats(m, r)
    return mats(None, None, list(zip(m, r)))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_channels_last_transforms_are_bitwise_the_channels_first_ones(case, rng):
    first, last = _desc(case, emu.LAYOUT_NCHW), _desc(case, emu.LAYOUT_NHWC)
    geo = first.geometry(F64)
    assert last.geometry(F64) == geo  # V, M and every size are the same
    x = rng.standard_normal((N, C) + case[4])
    xl = to_last(x)
    mat = _mats(case)
    V = {}
    for name, desc, xin in (("first", first, x), ("last", last, xl)):
        V[name] = np.full((geo["positions"], C, geo["num_tiles"]), np.nan)
        emu.input_transform_ex(desc, F64, F64, ptr(xin), ptr(V[name]), emu.RELU_SPATIAL, ptr(mat), 0)
    np.testing.assert_array_equal(V["last"], V["first"])
    assert not np.isnan(V["first"]).any()
    M = rng.standard_normal((geo["positions"], K, geo["num_tiles"]))
    bias = rng.standard_normal(K)
    y = np.full((N, K) + geo["out_size"], np.nan)
    yl = np.full((N,) + geo["out_size"] + (K,), np.nan)
    emu.output_transform(first, F64, ptr(M), ptr(bias), ptr(y), ptr(mat), 0)
    emu.output_transform(last, F64, ptr(M), ptr(bias), ptr(yl), ptr(mat), 0)
    assert not np.isnan(y).any()
    np.testing.assert_array_equal(to_first(yl), y)


@pytest.mark.parametrize("case", [c for c in CASES if c[-1] is not None], ids=lambda c: c[0])
def test_channels_last_adjoints_are_bitwise_the_channels_first_ones(case, rng):
    """The output adjoint reads dy, the input adjoint writes dx, in the layout of y and x."""
    first, last = _desc(case, emu.LAYOUT_NCHW), _desc(case, emu.LAYOUT_NHWC)
    geo = first.geometry(F64)
    mat = _mats(case)
    dy = rng.standard_normal((N, K) + geo["out_size"])
    dyl = to_last(dy)
    dM, dMl = (np.full((geo["positions"], K, geo["num_tiles"]), np.nan) for _ in range(2))
    emu.output_transform_adjoint(first, F64, ptr(dy), ptr(dM), ptr(mat), 0)
    emu.output_transform_adjoint(last, F64, ptr(dyl), ptr(dMl), ptr(mat), 0)
    assert not np.isnan(dM).any()
    np.testing.assert_array_equal(dMl, dM)
    dV = rng.standard_normal((geo["positions"], C, geo["num_tiles"]))
    dx = np.full((N, C) + case[4], np.nan)
    dxl = np.full((N,) + case[4] + (C,), np.nan)
    emu.input_transform_adjoint(first, F64, ptr(dV), ptr(dx), ptr(mat), 0)
    emu.input_transform_adjoint(last, F64, ptr(dV), ptr(dxl), ptr(mat), 0)
    assert not np.isnan(dx).any()
    np.testing.assert_array_equal(to_first(dxl), dx)


def test_descriptor_layout_is_checked_by_the_c_layer():
    bad = emu.ConvDesc(2, 2, 3, 1, 1, 1, (4, 4), (0, 0), (0, 0), 7)
    with pytest.raises(InvalidArgumentError, match="desc.layout must be MW_LAYOUT_NCHW"):
        bad.geometry(F64)


@pytest.mark.parametrize("kw", [{"m": 4}, {"m": 2, "generic": True}, {"m": 4, "relu": "winograd"}],
                         ids=["specialised", "generic", "winograd-relu"])
def test_nhwc_plan_runs_the_three_phases_without_transposing(kw, rng, monkeypatch):
    """The plan hands the NHWC x to the kernels and gets the NHWC y from them: with its
    transposing helpers made to fail it still computes the NCHW plan's y, bitwise."""
    x = rng.standard_normal((2, 4, 9, 7)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    nchw = mw.WinogradConv2d(w, b, ((1, 0), (2, 1)), backend="emulator", fused=False, output_relu=True, **kw)
    nhwc = mw.WinogradConv2d(w, b, ((1, 0), (2, 1)), backend="emulator", fused=False, output_relu=True,
                             layout="NHWC", **kw)
    ref = nchw(x)

    def no_copy(*_):
        raise AssertionError("the channels-last plan transposed an array")

    monkeypatch.setattr(nhwc, "_first", no_copy)
    monkeypatch.setattr(nhwc, "_last_copy", no_copy)
    xl = to_last(x)
    y = nhwc(xl)
    assert nhwc.algorithm == "three-phase"
    np.testing.assert_array_equal(to_first(y), ref)
    out = np.full_like(y, np.nan)
    assert nhwc(xl, out=out) is out
    np.testing.assert_array_equal(out, y)
    np.testing.assert_array_equal(nhwc.transform_input(xl), nchw.transform_input(x))
    assert nhwc.workspace_bytes(xl.shape) == nchw.workspace_bytes(x.shape)  # no transposed copies


def test_ndhwc_plan_matches_float64_direct(rng):
    x = rng.standard_normal((1, 3, 5, 6, 4))
    w = rng.standard_normal((4, 3, 3, 3, 3))
    plan = mw.WinogradConv3d(w, None, 1, 2, "emulator", layout="NDHWC")
    y = plan(np.ascontiguousarray(np.moveaxis(x, 1, -1)))
    ref = reference.conv3d_direct(x, w, None, 1)
    assert np.abs(np.moveaxis(y, -1, 1) - ref).max() <= 1e-12 * np.abs(ref).max()


@pytest.mark.parametrize("kw", [{"m": 4}, {"m": 2, "relu": "winograd"}, {"m": 2, "relu": "spatial", "output_relu": True},
                                {"m": 4, "padding": ((0, 3), (1, 0))}],
                         ids=["dgrad-by-forward", "adjoint-path", "relu-both", "padding-past-r-1"])
def test_nhwc_backward_is_the_nchw_backward_without_transposes(kw, rng, monkeypatch):
    """grad_input, grad_weight, grad_bias of an NHWC plan: the NCHW plan's, bitwise (dx
    transposed), with the plan's transposing helpers made to fail (dy, dx, x in place)."""
    kw = dict(kw)
    pad = kw.pop("padding", 1)
    x = rng.standard_normal((2, 4, 9, 7))
    w = rng.standard_normal((6, 4, 3, 3))
    b = rng.standard_normal(6)
    nchw = mw.WinogradConv2d(w, b, pad, backend="emulator", fused=False, **kw)
    nhwc = mw.WinogradConv2d(w, b, pad, backend="emulator", fused=False, layout="NHWC", **kw)
    dy = rng.standard_normal(nchw.out_shape(x.shape))
    ref = nchw.backward(x, dy)

    def no_copy(*_):
        raise AssertionError("the channels-last plan transposed an array")

    monkeypatch.setattr(nhwc, "_first", no_copy)
    monkeypatch.setattr(nhwc, "_last_copy", no_copy)
    if nhwc._dgrad_by_forward():  # dx by the data-gradient plan: NHWC too, and it copies nothing
        dgrad = nhwc._dgrad_plan_()
        assert dgrad.layout == "NHWC"
        monkeypatch.setattr(dgrad, "_first", no_copy)
        monkeypatch.setattr(dgrad, "_last_copy", no_copy)
    got = nhwc.backward(to_last(x), to_last(dy))
    np.testing.assert_array_equal(to_first(got.grad_input), ref.grad_input)
    np.testing.assert_array_equal(got.grad_weight, ref.grad_weight)
    np.testing.assert_allclose(got.grad_bias, ref.grad_bias, rtol=1e-13)  # summed in another order
