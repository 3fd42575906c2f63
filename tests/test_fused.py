"""The fused Winograd layer (kernels/winograd_fused.cuh, docs/fused.md) on the emulator.

Two kinds of check:

* against float64 direct convolution, within ``precision.tolerance`` of the mode, F(m, 3) and
  the reduction length C·9 (float64 data: float64's tolerance);
* bitwise against the three-phase path of the same plan (``fused=False``): the fused kernel
  runs the transforms' own tile code (transform.cuh's input_tile_2d / output_tile_2d) and the
  products with the same instruction per k step in the same k order, so without split-K (these
  C are too small for it to split) every element of y must be the same float.  This catches an
  off-by-one in a window, a wrong position, a lost chunk or tile, which a tolerance might not.

Shapes are off every block multiple on purpose: H, W not multiples of m, P not a multiple of BP
(32 / 16) and smaller than one block, K not a multiple of BK, C not a multiple of BC (8, 16, 4)
and smaller than one chunk.  Outputs are pre-filled with NaN (NNPACK's habit) so an element the
kernel does not write shows.
"""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import WinogradConv2d, WinogradConv3d, precision, reference
from magma_wino.accuracy import rel_err

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

BF16 = precision.BFLOAT16
MODES32 = ("fp32", "tf32x3", "tf32", "fp16", "bf16")
RELUS = (None, "spatial", "winograd")


def _data(seed, N, C, K, H, W, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b


def _direct(x, w, b, padding, relu):
    """float64 reference of the plan's layer; relu "winograd" has no spatial equivalent and is
    compared against the three-phase path instead."""
    x64 = x.astype(np.float64)
    if relu == "spatial":
        x64 = np.maximum(x64, 0)
    return reference.conv2d_direct(x64, w.astype(np.float64), b.astype(np.float64), padding=padding)


def _nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def _plan(w, b, m, prec, fused, **kw):
    return WinogradConv2d(w, b, padding=kw.pop("padding", 1), m=m, backend="emulator", precision=prec,
                          allow_inaccurate=True, fused=fused, **kw)


def _run(plan, x, layout="NCHW"):
    xin = _nhwc(x) if layout == "NHWC" else x
    out = np.full(plan.out_shape(xin.shape), np.nan, dtype=x.dtype)
    y = plan(xin, out=out)
    assert y is out and not np.isnan(y).any()
    return y.transpose(0, 3, 1, 2) if layout == "NHWC" else y


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("prec", MODES32)
@pytest.mark.parametrize("m", [2, 4])
def test_fused_matches_float64_direct_conv_in_every_mode_and_layout(m, prec, layout):
    N, C, K, H, W = 2, 11, 19, 9, 7
    x, w, b = _data(1, N, C, K, H, W)
    plan = _plan(w, b, m, prec, True, layout=layout)
    y = _run(plan, x, layout)
    assert plan.algorithm == "fused"
    assert rel_err(y, _direct(x, w, b, 1, None)) <= precision.tolerance(prec, m, 3, C * 9)


@pytest.mark.parametrize("m", [2, 4])
def test_fused_fp64_matches_float64_direct_conv(m):
    x, w, b = _data(2, 1, 6, 9, 10, 11, np.float64)
    plan = _plan(w, b, m, "fp64", True)
    y = _run(plan, x)
    assert rel_err(y, _direct(x, w, b, 1, None)) <= precision.tolerance("fp64", m, 3, 6 * 9)


@pytest.mark.parametrize("relu", RELUS)
@pytest.mark.parametrize("prec", ("fp32", "tf32x3", "tf32", "fp16", "bf16"))
@pytest.mark.parametrize("m", [2, 4])
def test_fused_is_bitwise_the_three_phase_path(m, prec, relu):
    # C = 21: two full channel chunks and a partial one for BC = 8, one and a partial for 16.
    x, w, b = _data(3, 1, 21, 35, 10, 13)
    y_fused = _run(_plan(w, b, m, prec, True, relu=relu), x)
    y_three = _run(_plan(w, b, m, prec, False, relu=relu), x)
    np.testing.assert_array_equal(y_fused, y_three)
    if relu != "winograd":
        assert rel_err(y_fused, _direct(x, w, b, 1, relu)) <= precision.tolerance(prec, m, 3, 21 * 9)


@pytest.mark.parametrize("m", [2, 4])
def test_fused_fp64_is_bitwise_the_three_phase_path(m):
    x, w, b = _data(4, 2, 5, 10, 8, 9, np.float64)
    np.testing.assert_array_equal(_run(_plan(w, b, m, "fp64", True), x), _run(_plan(w, b, m, "fp64", False), x))


@pytest.mark.parametrize("m", [2, 4])
def test_fused_nhwc_is_the_nchw_result_transposed(m):
    x, w, b = _data(5, 2, 9, 13, 7, 12)
    y_nchw = _run(_plan(w, b, m, "tf32x3", True), x)
    np.testing.assert_array_equal(_run(_plan(w, b, m, "tf32x3", True, layout="NHWC"), x, "NHWC"), y_nchw)


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("shape", [(1, 1, 1, 3, 3), (1, 3, 5, 4, 4), (3, 8, 16, 6, 5), (1, 17, 33, 23, 9)])
def test_fused_tile_edges_padding_and_small_layers(shape, padding):
    # (1, 1, 1, 3, 3): one channel, one output channel, one tile (P far below a block).
    N, C, K, H, W = shape
    x, w, b = _data(6, N, C, K, H, W)
    for m in (2, 4):
        plan = _plan(w, b, m, "fp32", True, padding=padding)
        y = _run(plan, x)
        np.testing.assert_array_equal(y, _run(_plan(w, b, m, "fp32", False, padding=padding), x))
        assert rel_err(y, _direct(x, w, b, padding, None)) <= precision.tolerance("fp32", m, 3, C * 9)


def test_fused_output_relu_and_no_bias():
    x, w, _ = _data(7, 1, 6, 10, 8, 8)
    y = _run(_plan(w, None, 4, "fp32", True, output_relu=True), x)
    ref = np.maximum(reference.conv2d_direct(x.astype(np.float64), w.astype(np.float64), padding=1), 0)
    assert (y >= 0).all() and (y == 0).any()
    assert rel_err(y, ref) <= precision.tolerance("fp32", 4, 3, 6 * 9)
    np.testing.assert_array_equal(y, _run(_plan(w, None, 4, "fp32", False, output_relu=True), x))


@pytest.mark.skipif(BF16 is None, reason="ml_dtypes (the test extra) is not installed: no bfloat16 dtype")
@pytest.mark.parametrize("dtname", ["float16", "bfloat16"])
def test_fused_16_bit_data_returns_its_dtype_and_agrees_with_three_phase(dtname):
    dt = np.float16 if dtname == "float16" else BF16
    x, w, b = _data(8, 1, 8, 12, 9, 9)
    x, w, b = x.astype(dt), w.astype(dt), b.astype(dt)
    y = WinogradConv2d(w, b, padding=1, m=2, backend="emulator", fused=True)(x)
    assert y.dtype == dt
    y3 = WinogradConv2d(w, b, padding=1, m=2, backend="emulator", fused=False)(x)
    np.testing.assert_array_equal(y.astype(np.float32), y3.astype(np.float32))


def test_fused_plan_needs_no_workspace_and_reports_its_algorithm():
    x, w, b = _data(9, 2, 16, 32, 14, 14)
    fused = _plan(w, b, 4, "tf32x3", True)
    three = _plan(w, b, 4, "tf32x3", False)
    assert fused.algorithm is None and fused.algorithm_for(x.shape) == "fused"
    assert fused.workspace_bytes(x.shape) == 0
    positions, P = 36, 2 * 4 * 4
    assert three.workspace_bytes(x.shape) >= positions * (16 + 32) * P * 4
    fused(x)
    assert fused.algorithm == "fused"
    three(x)
    assert three.algorithm == "three-phase"


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda w: WinogradConv2d(w, m=6, backend="emulator", fused=True), "F(6, 3) has no fused kernel"),
        (lambda w: WinogradConv2d(w, m=2, backend="emulator", fused=True, points=(0, 1, 2)), "points"),
        (lambda w: WinogradConv2d(w, m=2, backend="numpy", fused=True), "numpy backend"),
        (lambda w: WinogradConv3d(np.ones((2, 2, 3, 3, 3), np.float32), backend="emulator", fused=True),
         "fused kernels are 2D"),
        (lambda w: WinogradConv2d.from_winograd(np.ones((16, 4, 3), np.float32), 3, m=2, sparse=True,
                                                backend="emulator", fused=True), "sparse"),
    ],
)
def test_fused_true_without_a_fused_kernel_is_refused_at_construction(make, fragment):
    w = np.ones((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match="fused=True") as caught:
        make(w)
    assert fragment in str(caught.value)


def test_fused_false_and_layers_without_fused_kernel_run_three_phase():
    x, w, b = _data(10, 1, 4, 4, 8, 8)
    plan = WinogradConv2d(w, b, padding=1, m=6, backend="emulator")
    assert plan.fused_unavailable() is not None
    assert plan.algorithm_for(x.shape) == "three-phase"


@pytest.mark.parametrize(
    "kwargs, exc, fragment",
    [
        ({"layout": "NWHC"}, ValueError, "layout must be one of"),
        ({"layout": 3}, ValueError, "layout must be one of"),
        ({"fused": "yes"}, TypeError, "fused must be None, True or False"),
        ({"output_relu": 1}, TypeError, "output_relu must be a bool"),
    ],
)
def test_bad_layout_fused_and_output_relu_arguments(kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        WinogradConv2d(np.ones((2, 2, 3, 3), np.float32), backend="emulator", **kwargs)


def test_nhwc_plan_checks_the_channel_axis_last():
    plan = WinogradConv2d(np.ones((2, 3, 3, 3), np.float32), padding=1, backend="emulator", layout="NHWC",
                          fused=True)
    with pytest.raises(ValueError, match="channel mismatch"):
        plan(np.ones((1, 3, 8, 8), np.float32))  # NCHW given to an NHWC plan
    assert plan.out_shape((1, 8, 8, 3)) == (1, 8, 8, 2)


def test_three_phase_phases_take_the_plans_layout():
    x, w, b = _data(11, 1, 5, 6, 7, 9)
    plan = _plan(w, b, 2, "fp32", False, layout="NHWC")
    xn = _nhwc(x)
    y = plan.transform_output(plan.multiply(plan.transform_input(xn)), xn.shape)
    np.testing.assert_array_equal(y, plan(xn))
    assert y.shape == (1, 7, 9, 6)


def fused_results():
    """y of a few fused layers, as lists of floats (run in child interpreters by the test below)."""
    x, w, b = _data(12, 1, 13, 21, 9, 10)
    out = {}
    for m in (2, 4):
        for prec in ("fp32", "tf32x3", "bf16"):
            for layout in ("NCHW", "NHWC"):
                out[f"{m}-{prec}-{layout}"] = _run(_plan(w, b, m, prec, True, layout=layout), x, layout).ravel().tolist()
    return out


def test_fused_results_do_not_depend_on_thread_order_or_the_fragment_layout():
    # The emulator's diagnostics all on: threads of a block scheduled in a shuffled order (a
    # missing barrier shows as a different result) and the WMMA element-to-lane mapping permuted
    # (code that assumes a fragment layout shows); y must be bitwise the default run's.
    from emu_subprocess import results_under_env

    want = fused_results()
    got = results_under_env("test_fused", "fused_results", {"MW_EMU_ORDER": "shuffle:11", "MW_EMU_WMMA_PERMUTE": "7"})
    assert got == want


def test_conv2d_takes_fused():
    from magma_wino import conv2d

    x, w, b = _data(13, 1, 7, 9, 8, 10)
    y = conv2d(x, w, b, padding=1, m=2, backend="emulator", fused=True)
    np.testing.assert_array_equal(y, conv2d(x, w, b, padding=1, m=2, backend="emulator", fused=False))
    with pytest.raises(ValueError, match="fused=True"):
        conv2d(x, w, b, padding=1, m=6, backend="emulator", fused=True)


@pytest.mark.parametrize("m", [2, 4])
def test_fused_u_fast_path_over_several_chunks(m):
    # C = 40: every U row whole 16-byte vectors (stage_u's stepping path), five chunks of 8.
    x, w, b = _data(14, 1, 40, 33, 9, 11)
    y = _run(_plan(w, b, m, "tf32x3", True), x)
    np.testing.assert_array_equal(y, _run(_plan(w, b, m, "tf32x3", False), x))
    assert rel_err(y, _direct(x, w, b, 1, None)) <= precision.tolerance("tf32x3", m, 3, 40 * 9)


def test_out_overlapping_x_runs_three_phase_or_is_refused():
    # The fused kernel reads x while other blocks write y: an in-place call falls back to the
    # three phases (which read x into V first), and fused=True refuses it.
    x, w, b = _data(15, 1, 12, 12, 8, 8)
    want = _run(_plan(w, b, 2, "fp32", False), x)
    xin = x.copy()
    plan = _plan(w, b, 2, "fp32", None)
    plan._algorithms[tuple(x.shape)] = "fused"  # as if the model had picked it for this shape
    y = plan(xin, out=xin)
    assert y is xin and plan.algorithm == "three-phase"
    np.testing.assert_array_equal(y, want)
    xin = x.copy()
    with pytest.raises(ValueError, match="out overlaps x"):
        _plan(w, b, 2, "fp32", True)(xin, out=xin)


def test_output_relu_keeps_nan_on_both_paths():
    x, w, b = _data(16, 1, 4, 6, 8, 8)
    x[0, 1, 3, 4] = np.nan
    y_f = _plan(w, b, 4, "fp32", True, output_relu=True)(x)
    y_t = _plan(w, b, 4, "fp32", False, output_relu=True)(x)
    assert np.isnan(y_f).any()
    np.testing.assert_array_equal(np.isnan(y_f), np.isnan(y_t))
    np.testing.assert_array_equal(np.nan_to_num(y_f), np.nan_to_num(y_t))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_workspace_bytes_counts_the_16_bit_copies_and_no_layout_copies(layout):
    x, w, b = _data(17, 2, 8, 16, 10, 10)
    for fused in (True, False):
        plan = _plan(w.astype(np.float16), b.astype(np.float16), 2, "fp16", fused, layout=layout)
        shape = x.shape if layout == "NCHW" else (2, 10, 10, 8)
        n_x, n_y = 2 * 8 * 10 * 10, 2 * 16 * 10 * 10
        convert = (n_x + n_y) * 4
        if fused:
            assert plan.workspace_bytes(shape) == convert
        else:
            P = 2 * 5 * 5
            vm = 16 * 8 * P * 2 + 16 * 16 * P * 4
            # channels last: the kernels read x and write y in place (no transposed copies)
            assert plan.workspace_bytes(shape) == vm + plan.split_k_workspace_bytes(shape) + convert
