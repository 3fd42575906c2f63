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
HALF = ("fp16", "bf16")
BF16 = precision.BFLOAT16
needs_bf16 = pytest.mark.skipif(BF16 is None, reason="ml_dtypes (the test extra) is not installed: no bfloat16 dtype")


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
        with pytest.raises(ValueError, match=f"precision='{p}' does not apply to float64"):
            conv2d(np.ones((1, 3, 5, 5)), w32.astype(np.float64), backend=backend, precision=p)
    with pytest.raises(TypeError, match="w must be float32, float64, float16 or bfloat16, got int32"):
        WinogradConv2d(w32.astype(np.int32), backend=backend)


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


# --------------------------------------------------------------------------- 16-bit modes


def _bf16_bits(f: float) -> int:
    """Independent bfloat16 rounding of one float32 (round to nearest, ties to even) on its
    bits with Python integers: keep the top 16 bits, round up when the dropped 16 bits are
    above half, or exactly half with an odd kept part."""
    (b,) = struct.unpack("<I", struct.pack("<f", f))
    top, rest = b >> 16, b & 0xFFFF
    if rest > 0x8000 or (rest == 0x8000 and top & 1):
        top += 1
    return top


def test_round_bf16_matches_an_independent_bit_rounding():
    rng = np.random.default_rng(7)
    a = np.concatenate([rng.standard_normal(3000), rng.uniform(-3e38, 3e38, 300),
                        rng.uniform(-1e-38, 1e-38, 300)]).astype(np.float32)
    # Exact ties in both directions: 1 + 2⁻⁸ (kept part even: down), 1 + 3·2⁻⁸ (odd: up).
    ties = np.array([1 + 2.0**-8, 1 + 3 * 2.0**-8, -(1 + 2.0**-8), np.inf, -np.inf, 0.0, -0.0], np.float32)
    a = np.concatenate([a, ties])
    got = precision.round_bf16(a)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, np.array([_bf16_bits(float(v)) for v in a], dtype=np.uint16))
    np.testing.assert_array_equal(precision.from_storage(got[-7:], "bf16"),
                                  np.array([1, 1 + 4 * 2.0**-8, -1, np.inf, -np.inf, 0.0, -0.0], np.float32))
    # Every NaN becomes the canonical 0x7FFF, as __float2bfloat16_rn / __float2half_rn do.
    nans = np.array([np.nan, -np.nan], np.float32)
    nans = np.concatenate([nans, (nans.view(np.uint32) | np.uint32(0x1234)).view(np.float32)])
    np.testing.assert_array_equal(precision.round_bf16(nans), [0x7FFF] * 4)
    np.testing.assert_array_equal(precision.to_storage(nans, "fp16").view(np.uint16), [0x7FFF] * 4)
    if BF16 is not None:  # and ml_dtypes agrees
        np.testing.assert_array_equal(got[:-7], a[:-7].astype(BF16).view(np.uint16))


def test_fp16_storage_rounds_to_nearest_even_and_overflows_to_inf():
    a = np.array([1 + 2.0**-11, 1 + 3 * 2.0**-11, 65504, 65520, 1e-8], np.float32)
    got = precision.to_storage(a, "fp16")
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got.astype(np.float64), [1, 1 + 2.0**-9, 65504, np.inf, 0.0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m", [2, 4])
def test_fp16_and_bf16_modes_match_direct_conv_within_their_tolerance(backend, m):
    x, w, ref = _data(8, 1, 24, 12, 10)
    C = 24
    err = {p: rel_err(conv2d(x, w, padding=1, m=m, backend=backend, precision=p, allow_inaccurate=True), ref)
           for p in HALF + ("tf32x3",)}
    for p in HALF:
        assert err[p] <= precision.tolerance(p, m, 3, C * 9), (p, err)
    # The 16-bit rounding really happens (a product in float32 would be ~1e3 times better),
    # and bf16 (u = 2⁻⁸) is worse than fp16 (u = 2⁻¹¹) by about their ratio, 8.
    assert err["fp16"] >= 100 * err["tf32x3"], err
    assert 3 * err["fp16"] <= err["bf16"] <= 25 * err["fp16"], err


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_mode_phases_store_U_and_V_in_16_bits(backend):
    x, w, _ = _data(9, 2, 6, 5, 7)
    for p, store in (("fp16", np.float16), ("bf16", np.uint16)):
        plan = WinogradConv2d(w, padding=1, m=2, backend=backend, precision=p, allow_inaccurate=True)
        assert plan.U.dtype == store
        V = plan.transform_input(x)
        assert V.dtype == store and V.shape[:2] == (16, 6)
        M = plan.multiply(V)
        assert M.dtype == np.float32
        y = plan.transform_output(M, x.shape)
        np.testing.assert_array_equal(y, plan(x))
        # U and V are the float32 transforms rounded once to the 16-bit type.
        U32 = reference.filter_transform(w, 2).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(plan.U), precision.to_storage(U32, p))
        with pytest.raises(TypeError, match=f"V must be {np.dtype(store)}, got float32"):
            plan.multiply(precision.from_storage(V, p))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp16_refuses_weights_beyond_its_range(backend):
    w = np.full((2, 3, 3, 3), 3.0e4, np.float32)  # G g Gᵀ sums 9 of them: beyond 65504
    with pytest.raises(ValueError, match=r"precision='fp16' cannot hold these weights.*infinite in float16"):
        WinogradConv2d(w, m=2, backend=backend, precision="fp16", allow_inaccurate=True)
    assert WinogradConv2d(w, m=2, backend=backend, precision="bf16", allow_inaccurate=True).U.dtype == np.uint16


def test_half_modes_refused_for_float32_data_where_too_inaccurate():
    w = np.ones((2, 3, 3, 3), np.float32)
    # fp16 F(2, 3) (as tf32): 1.1e-3 measured over 8 seeds, refused for float32 data with the
    # table's headroom, usable for float16 data
    f23 = precision.MEASURED_REL_ERR[("fp16", 2, 3, 2)]
    with pytest.raises(ValueError, match=rf"precision='fp16'.*F\(2, 3\).*measured .with the table's headroom x1.25. relative error {f23:.2e}"):
        WinogradConv2d(w, m=2, backend="emulator", precision="fp16")
    assert WinogradConv2d(w.astype(np.float16), m=2, backend="emulator", precision="fp16").precision == "fp16"
    fp16, bf16 = precision.MEASURED_REL_ERR[("fp16", 4, 3, 2)], precision.MEASURED_REL_ERR[("bf16", 2, 3, 2)]
    with pytest.raises(ValueError, match=rf"precision='fp16'.*F\(4, 3\).*measured.*{fp16:.2e} > usable limit 1e-03"):
        WinogradConv2d(w, m=4, backend="emulator", precision="fp16")
    with pytest.raises(ValueError, match=rf"precision='bf16'.*F\(2, 3\).*{bf16:.2e} > usable limit 1e-03 for float32"):
        WinogradConv2d(w, m=2, backend="numpy", precision="bf16")
    # 16-bit data has its own, larger limit: bf16 F(2, 3) is usable on bfloat16 data.
    assert bf16 <= precision.usable_limit(precision.BFLOAT16 or np.float16)


def _half_data(dt, seed=10, C=16, K=8, H=9, ndim=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, C) + (H,) * ndim).astype(dt)
    w = rng.standard_normal((K, C) + (3,) * ndim).astype(dt)
    direct = reference.conv2d_direct if ndim == 2 else reference.conv3d_direct
    return x, w, direct(x.astype(np.float64), w.astype(np.float64), padding=1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtname", ["float16", pytest.param("bfloat16", marks=needs_bf16)])
def test_half_input_arrays_return_their_dtype_within_the_mode_tolerance(backend, dtname):
    dt = BF16 if dtname == "bfloat16" else np.dtype(np.float16)
    own = "fp16" if dtname == "float16" else "bf16"
    u_data = precision.UNIT_ROUNDOFF[own]
    for m, ndim in ((2, 2), (4, 2), (2, 3)):
        x, w, ref = _half_data(dt, ndim=ndim, H=9 if ndim == 2 else 5)
        b = np.linspace(-1, 1, w.shape[0]).astype(dt)
        plan = (WinogradConv2d if ndim == 2 else WinogradConv3d)(w, b, padding=1, m=m, backend=backend)
        # auto: the data's own 16-bit mode on the emulator's tensor cores where it is accurate
        # enough for the tile (F(2, 3); F(4, 3) falls back to tf32x3), fp32 on numpy.
        usable = precision.resolve("auto", dt, "emulator", m, 3, ndim) == own
        assert usable == (m == 2), (m, ndim)
        assert plan.precision == ("fp32" if backend == "numpy" else own if usable else "tf32x3"), (m, ndim)
        y = plan(x)
        assert y.dtype == dt and y.shape == ref.shape
        err = rel_err(y.astype(np.float64), ref + b.astype(np.float64).reshape((1, -1) + (1,) * ndim))
        assert err <= precision.tolerance(plan.precision, m, 3, 16 * 3**ndim, ndim) + u_data, (m, ndim, err)
        out = np.full(ref.shape, np.nan, dtype=dt)
        assert plan(x, out=out) is out
        np.testing.assert_array_equal(out.astype(np.float32), y.astype(np.float32))
        with pytest.raises(TypeError, match=f"dtype mismatch: x is float32 but the weights are {dtname}"):
            plan(x.astype(np.float32))


def test_auto_falls_back_to_tf32x3_where_the_16_bit_mode_is_too_inaccurate():
    w = np.ones((2, 3, 3, 3), np.float16)
    assert precision.MEASURED_REL_ERR[("fp16", 6, 3, 2)] > precision.usable_limit(np.float16)
    assert WinogradConv2d(w, m=6, backend="emulator").precision == "tf32x3"
    assert WinogradConv2d(w, m=2, backend="emulator").precision == "fp16"
    assert precision.resolve("auto", np.float16, "cuda", 2, 3, 2, capability=(7, 5)) == "fp32"
    with pytest.raises(ValueError, match="precision='fp16' needs tensor cores"):
        precision.resolve("fp16", np.float32, "cuda", 2, 3, 2, capability=(7, 5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_winograd_dense_product_in_16_bit_modes(backend):
    x, w, ref = _data(11, 1, 12, 6, 8)
    U = reference.filter_transform(w.astype(np.float64), 2).astype(np.float32)
    for p in HALF:
        plan = WinogradConv2d.from_winograd(U, 3, padding=1, m=2, backend=backend, sparse=False, precision=p,
                                            allow_inaccurate=True)
        assert not plan.uses_sparse_product and plan.U.dtype == precision.storage_dtype(p, np.float32)
        assert rel_err(plan(x), ref) <= precision.tolerance(p, 2, 3, 12 * 9), p
        sparse = WinogradConv2d.from_winograd(U, 3, padding=1, m=2, backend=backend, sparse=True, precision=p,
                                              allow_inaccurate=True)
        # The sparse product stays float32 SIMT: float32 accuracy, V in float32.
        assert rel_err(sparse(x), ref) <= tolerance(np.float32, 2, 3, 12 * 9), p
        assert sparse.transform_input(x).dtype == np.float32


# --------------------------------------------------------------------------- split-K in the plans


@pytest.mark.parametrize("mode", ["tf32x3", "fp16"])
def test_plans_split_k_when_the_grid_is_small_and_stay_within_the_mode_tolerance(mode):
    # K = 16, P = 9 tiles, C = 256: 16 blocks of the 32x64 tile, far below one wave of the
    # emulator's 132 SMs, and 16 k slices: the product splits k (gemm_tc.cuh, "Split-K").
    x, w, ref = _data(12, 1, 256, 16, 6)
    plan = WinogradConv2d(w, padding=1, m=2, backend="emulator", precision=mode, allow_inaccurate=True)
    nbytes = plan.split_k_workspace_bytes(x.shape)
    P = 9
    splits = nbytes // (16 * 16 * P * 4)  # S partials of alpha^2 x K x P floats
    assert nbytes == splits * 16 * 16 * P * 4 and splits >= 2, nbytes
    assert rel_err(plan(x), ref) <= precision.tolerance(mode, 2, 3, 256 * 9)
    # The numpy backend neither splits nor needs a workspace; the same mode agrees.
    ynp = WinogradConv2d(w, padding=1, m=2, backend="numpy", precision=mode, allow_inaccurate=True)
    assert ynp.split_k_workspace_bytes(x.shape) == 0
    assert WinogradConv2d(w, padding=1, m=2, backend="emulator", precision="fp32").split_k_workspace_bytes(x.shape) == 0


def test_non_default_points_are_judged_on_their_own_growth_factor():
    # The measured table holds the default points; (0, 8, -8) has a huge growth factor.
    w = np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"precision='fp16'.*for these interpolation points"):
        WinogradConv2d(w, m=2, backend="emulator", precision="fp16", points=(0, 8, -8))
    # ... so "auto" on float16 data falls back to tf32x3 there, and keeps fp16 for the defaults
    assert WinogradConv2d(w.astype(np.float16), m=2, backend="emulator", points=(0, 8, -8)).precision == "tf32x3"
    assert WinogradConv2d(w.astype(np.float16), m=2, backend="emulator", points=(0, 1, -1)).precision == "fp16"
    err, measured = precision.estimated_rel_err("fp16", 2, 3, 2, points=(0, -1, 1))
    assert measured and err == precision.MEASURED_REL_ERR[("fp16", 2, 3, 2)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_density_of_bf16_plans_counts_negative_zero_as_zero(backend):
    rng = np.random.default_rng(13)
    w = rng.standard_normal((5, 8, 3, 3)).astype(np.float32)
    w[0], w[1], w[2, :, 1, :] = 0.0, -0.0, 0.0
    want = WinogradConv2d(w, padding=1, m=2, backend=backend, precision="fp32").weight_density
    for p in HALF:
        plan = WinogradConv2d(w, padding=1, m=2, backend=backend, precision=p, allow_inaccurate=True)
        assert plan.weight_density == want, p
    assert want < 0.9  # the zeros above really are there


@needs_bf16
def test_bfloat16_weights_through_spatial_pruning_and_from_winograd():
    x, w, _ = _half_data(BF16, seed=14)
    plan = WinogradConv2d.from_spatial(w, prune=0.5, padding=1, m=2, backend="numpy")
    assert plan.dtype == BF16 and plan(x).dtype == BF16
    U = reference.filter_transform(w.astype(np.float64), 2).astype(BF16)
    sp = WinogradConv2d.from_winograd(U, 3, prune=0.3, padding=1, m=2, backend="numpy", sparse=True)
    assert sp.uses_sparse_product and sp(x).dtype == BF16
