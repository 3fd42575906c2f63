"""precision= on the plans and conv2d/conv3d (magma_wino.precision, docs/api.md "Precision").

Tolerances:

* fp32 and tf32x3: :func:`magma_wino.accuracy.tolerance` for float32 (tf32x3 drops only the
  lo·lo term, u_tf32² = 2⁻²² relative per product, below float32's 2⁻²⁴ summation error at
  these C), and tf32x3 within 4× of the fp32 error on scaled VGG layers.
* tf32: each operand of a product is rounded once to TF32, x(1 + δ) with |δ| <= u = 2⁻¹¹,
  modelled uniform (std u/√3), so a product carries a relative error of std √2·u/√3.  As in
  the derivation of ``accuracy.tolerance`` (per-channel contributions weighted by the
  growth factor β₂^nd, y a sum of C·r^nd products) this gives
  ``rel_err ≈ √(2/3) · u · β₂^nd / √(r^nd)``; the tolerance is TOLERANCE_SAFETY (3) times
  that plus the float32 tolerance (the float32 sums and transforms still round):
  :func:`magma_wino.accuracy.tolerance_tf32`, which ``magma-wino validate`` and ``bench`` use too.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from magma_wino import WinogradConv2d, WinogradConv3d, conv2d, conv3d, precision, reference
from magma_wino.accuracy import USABLE_LIMIT, rel_err, tolerance, tolerance_tf32

BACKENDS = ("numpy", "emulator")
MODES32 = ("fp32", "tf32x3", "tf32")


def _data(seed, N, C, K, H, r=3, ndim=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C) + (H,) * ndim).astype(np.float32)
    w = rng.standard_normal((K, C) + (r,) * ndim).astype(np.float32)
    direct = reference.conv2d_direct if ndim == 2 else reference.conv3d_direct
    return x, w, direct(x.astype(np.float64), w.astype(np.float64), padding=1)


# --------------------------------------------------------------------------- TF32 rounding


def _tf32_bits(f: float) -> float:
    """Bit-level definition: float32 bits b, b' = (b + 2^12) with the low 13 bits cleared."""
    (b,) = struct.unpack("<I", struct.pack("<f", f))
    b = ((b + 0x1000) & 0xFFFFE000) & 0xFFFFFFFF
    return struct.unpack("<f", struct.pack("<I", b))[0]


def test_round_tf32_matches_bit_level_definition():
    rng = np.random.default_rng(3)
    a = np.concatenate([rng.standard_normal(2000), rng.uniform(-1e30, 1e30, 200),
                        rng.uniform(-1e-30, 1e-30, 200)]).astype(np.float32)
    got = precision.round_tf32(a)
    want = np.array([_tf32_bits(float(v)) for v in a], dtype=np.float32)
    np.testing.assert_array_equal(got, want)
    assert (got.view(np.uint32) & 0x1FFF == 0).all()


def test_round_tf32_ties_away_and_specials():
    u = 2.0**-11
    a = np.array([1 + u, 1 + u / 2, -(1 + u), 1 + 3 * u, 1 + u * 0.999, np.inf, -np.inf, 0.0, -0.0],
                 dtype=np.float32)
    want = [1 + 2 * u, 1.0, -(1 + 2 * u), 1 + 4 * u, 1.0, np.inf, -np.inf, 0.0, -0.0]
    np.testing.assert_array_equal(precision.round_tf32(a), np.array(want, np.float32))
    assert np.isnan(precision.round_tf32(np.array([np.nan], np.float32))).all()
    hi, lo = precision.split_tf32(np.array([1 + 2.0**-15], np.float32))
    assert hi[0] == 1.0 and lo[0] == np.float32(2.0**-15)


# --------------------------------------------------------------------------- accuracy per mode


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_mode_matches_direct_conv_within_its_tolerance(backend):
    x, w, ref = _data(0, 1, 32, 16, 12)
    C = 32
    err = {}
    for p in MODES32:
        err[p] = rel_err(conv2d(x, w, padding=1, m=4, backend=backend, precision=p, allow_inaccurate=True), ref)
    fp32_tol = tolerance(np.float32, 4, 3, C * 9)
    assert err["fp32"] <= fp32_tol, err
    assert err["tf32x3"] <= fp32_tol, err
    assert err["tf32"] <= tolerance_tf32(4, 3, C * 9), err
    y64 = conv2d(x.astype(np.float64), w.astype(np.float64), padding=1, m=4, backend=backend, precision="fp64")
    assert rel_err(y64, ref) <= tolerance(np.float64, 4, 3, C * 9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("C, H", [(64, 28), (128, 14)])
def test_tf32x3_within_4x_of_fp32_and_tf32_50x_worse_on_vgg_layers(backend, C, H):
    x, w, ref = _data(1, 1, C, C, H)
    err = {p: rel_err(conv2d(x, w, padding=1, m=4, backend=backend, precision=p, allow_inaccurate=True), ref)
           for p in MODES32}
    assert err["tf32x3"] <= 4 * err["fp32"], err
    assert err["tf32x3"] <= tolerance(np.float32, 4, 3, C * 9), err
    assert err["tf32"] <= tolerance_tf32(4, 3, C * 9), err
    assert err["tf32"] >= 50 * err["tf32x3"], err


def test_numpy_emulation_agrees_with_the_emulator_kernels():
    x, w, ref = _data(2, 1, 24, 8, 10)
    for p in MODES32:
        a = conv2d(x, w, padding=1, m=2, backend="numpy", precision=p, allow_inaccurate=True)
        b = conv2d(x, w, padding=1, m=2, backend="emulator", precision=p, allow_inaccurate=True)
        # Same rounded operands; only the float32 sums' order differs.
        assert rel_err(a, b.astype(np.float64)) <= tolerance(np.float32, 2, 3, 24 * 9), p


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv3d_modes(backend):
    x, w, ref = _data(4, 1, 8, 4, 6, ndim=3)
    for p in ("fp32", "tf32x3"):
        y = conv3d(x, w, padding=1, m=2, backend=backend, precision=p)
        assert rel_err(y, ref) <= tolerance(np.float32, 2, 3, 8 * 27, 3), p
    plan = WinogradConv3d(w, padding=1, m=2, backend=backend)
    assert plan.precision == ("tf32x3" if backend == "emulator" else "fp32")


# --------------------------------------------------------------------------- resolution and errors


def test_auto_resolution():
    w32 = np.ones((2, 3, 3, 3), np.float32)
    assert WinogradConv2d(w32, backend="emulator").precision == "tf32x3"
    assert WinogradConv2d(w32, backend="numpy").precision == "fp32"
    for b in BACKENDS:
        assert WinogradConv2d(w32.astype(np.float64), backend=b).precision == "fp64"
    plan = WinogradConv2d(w32, backend="emulator", precision="fp32")
    assert plan.precision == "fp32" and "precision='fp32'" in repr(plan)
    assert precision.resolve("auto", np.float32, "cuda", 4, 3, 2, capability=(9, 0)) == "tf32x3"
    assert precision.resolve("auto", np.float32, "cuda", 4, 3, 2, capability=(7, 5)) == "fp32"
    with pytest.raises(ValueError, match="precision='tf32x3'.*compute capability"):
        precision.resolve("tf32x3", np.float32, "cuda", 4, 3, 2, capability=(7, 5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_precision_values_types_and_dtype_mismatches(backend):
    w32 = np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="precision must be one of"):
        WinogradConv2d(w32, backend=backend, precision="fp8")
    with pytest.raises(TypeError, match="precision must be a str"):
        WinogradConv2d(w32, backend=backend, precision=32)
    with pytest.raises(TypeError, match="allow_inaccurate must be a bool"):
        WinogradConv2d(w32, backend=backend, precision="fp32", allow_inaccurate="yes")
    for p in ("fp32", "tf32", "tf32x3"):
        with pytest.raises(ValueError, match=f"precision='{p}'.*float64"):
            WinogradConv2d(w32.astype(np.float64), backend=backend, precision=p)
    with pytest.raises(ValueError, match="precision='fp64'.*float32"):
        WinogradConv2d(w32, backend=backend, precision="fp64")
    for p in ("bf16", "fp16"):
        with pytest.raises(ValueError, match=f"precision='{p}' is not supported yet"):
            conv2d(np.ones((1, 3, 5, 5), np.float32), w32, backend=backend, precision=p)


def test_inaccurate_mode_refused_unless_allowed(monkeypatch):
    key = ("tf32", 6, 3, 2)
    measured = precision.MEASURED_REL_ERR[key]
    assert measured > USABLE_LIMIT[np.dtype(np.float32)]
    w = np.random.default_rng(0).standard_normal((4, 4, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=rf"precision='tf32'.*F\(6, 3\).*measured.*{measured:.2e}"):
        WinogradConv2d(w, m=6, backend="emulator", precision="tf32")
    assert WinogradConv2d(w, m=6, backend="emulator", precision="tf32", allow_inaccurate=True).precision == "tf32"
    # A tabulated tile over the limit, whatever the mode: the table decides.
    monkeypatch.setitem(precision.MEASURED_REL_ERR, ("tf32x3", 2, 3, 2), 5e-3)
    with pytest.raises(ValueError, match=r"precision='tf32x3'.*F\(2, 3\).*5.00e-03"):
        conv2d(np.ones((1, 4, 6, 6), np.float32), w, m=2, backend="numpy", precision="tf32x3")
    # Untabulated tiles: estimated from the growth factor, and said so.
    with pytest.raises(ValueError, match="precision='tf32'.*estimated"):
        WinogradConv2d(w, m=5, backend="numpy", precision="tf32")


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_plans_work_with_every_precision(backend):
    x, w, _ = _data(5, 1, 16, 8, 8)
    U = reference.filter_transform(w.astype(np.float64), 4).astype(np.float32)
    base = WinogradConv2d.from_winograd(U, 3, prune=0.2, padding=1, m=4, backend="numpy", sparse=True,
                                        precision="fp32")
    y0 = base(x).astype(np.float64)
    for p in ("auto",) + MODES32:
        plan = WinogradConv2d.from_winograd(U, 3, prune=0.2, padding=1, m=4, backend=backend, sparse=True,
                                            precision=p, allow_inaccurate=True)
        assert plan.uses_sparse_product
        # The sparse product is SIMT in every mode: float32 agreement with the fp32 plan.
        assert rel_err(plan(x), y0) <= tolerance(np.float32, 4, 3, 16 * 9), p
    sp = WinogradConv2d.from_spatial(w, prune=0.5, padding=1, backend=backend, precision="fp32")
    assert sp.precision == "fp32"
