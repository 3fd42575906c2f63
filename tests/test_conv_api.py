"""The public API end to end: ``conv2d`` and ``WinogradConv2d`` on the numpy and emulator
backends against the float64 direct convolution (layer 3 of DESIGN.md's validation plan).

Tolerances come from ``conftest.winograd_tolerance`` (per dtype, per F(m, r), scaled by the
reduction length); outputs given through ``out=`` are pre-filled with NaN so that unwritten
elements fail.  Every case runs on both host backends, and the two are also compared with
each other (CuPy's habit of running the same body on NumPy and on the device module).
"""

from __future__ import annotations

import numpy as np
import pytest

import magma_wino
from magma_wino import WinogradConv2d, conv2d, conv3d
from magma_wino.reference import conv2d_direct

BACKENDS = ["numpy", "emulator"]
DTYPES = [np.float32, np.float64]
SPECIALISED = [(2, 3), (4, 3), (6, 3), (2, 5)]
NOT_SPECIALISED = [(3, 3), (3, 2), (5, 3), (1, 3), (3, 4)]
ALT_POINTS = {(4, 3): [0, 1, -1, "1/2", "-1/2"], (2, 3): [0, 2, "-1/2"], (3, 2): [0, 1, "-1/3"]}


def dt_id(d) -> str:
    return np.dtype(d).name


def make_layer(rng, N, C, K, H, W, r, dtype, bias=True):
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, r, r)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    return x, w, b


def direct(x, w, b, padding):
    return conv2d_direct(x.astype(np.float64), w.astype(np.float64),
                         None if b is None else b.astype(np.float64), padding)


# --------------------------------------------------------------------------- every F(m, r)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m,r", SPECIALISED, ids=lambda v: str(v))
def test_conv2d_specialised_matches_direct_with_odd_sizes_bias_and_padding(
        m, r, dtype, backend, rng, check_direct):
    # H, W not multiples of m; asymmetric padding (p_h = r - 1, p_w = 1 or 0).
    N, C, K, H, W = 2, 5, 7, 3 * m + r + 2, 2 * m + r - 1 + 3
    pad = (r - 1, min(1, r - 1))
    x, w, b = make_layer(rng, N, C, K, H, W, r, dtype)
    y = conv2d(x, w, b, padding=pad, m=m, backend=backend)
    check_direct(y, direct(x, w, b, pad), dtype, m, r, C,
                 label=f"{dt_id(dtype)} {backend} x{x.shape} w{w.shape} pad {pad}", record=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m,r", SPECIALISED + NOT_SPECIALISED, ids=lambda v: str(v))
def test_generic_path_matches_direct(m, r, dtype, backend, rng, check_direct):
    N, C, K, H, W = 1, 4, 6, 2 * m + r, m + r + 1
    pad = (min(1, r - 1), r - 1)
    x, w, b = make_layer(rng, N, C, K, H, W, r, dtype)
    plan = WinogradConv2d(w, b, pad, m=m, backend=backend, generic=True)
    if backend == "emulator":
        assert plan.generic
    y = plan(x)
    check_direct(y, direct(x, w, b, pad), dtype, m, r, C,
                 label=f"generic {backend} x{x.shape} w{w.shape} pad {pad}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,r", NOT_SPECIALISED, ids=lambda v: str(v))
def test_unspecialised_f_m_r_runs_generic_kernels_automatically(m, r, backend, rng, check_direct):
    x, w, b = make_layer(rng, 2, 3, 4, 2 * m + r + 1, m + r, r, np.float64)
    plan = WinogradConv2d(w, b, 0, m=m, backend=backend)
    if backend == "emulator":
        assert plan.generic, "no specialised kernel for this F(m, r): the plan must use the generic one"
    check_direct(plan(x), direct(x, w, b, 0), np.float64, m, r, 3, label=f"{backend} F({m},{r})")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("mr", sorted(ALT_POINTS), ids=lambda v: str(v))
def test_alternative_points_match_direct(mr, dtype, backend, rng, check_direct):
    m, r = mr
    points = ALT_POINTS[mr]
    x, w, b = make_layer(rng, 2, 6, 5, 3 * m + 1, 2 * m + r, r, dtype)
    plan = WinogradConv2d(w, b, 1, m=m, backend=backend, points=points)
    if backend == "emulator":
        assert plan.generic
    check_direct(plan(x), direct(x, w, b, 1), dtype, m, r, 6, points=points,
                 label=f"{backend} points={points} x{x.shape}")
    y2 = conv2d(x, w, b, 1, m=m, backend=backend, points=points)
    check_direct(y2, direct(x, w, b, 1), dtype, m, r, 6, points=points, label=f"conv2d {backend} points")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ph", [0, 1, 2])
@pytest.mark.parametrize("pw", [0, 1, 2])
def test_every_padding_per_axis_for_3x3(ph, pw, backend, rng, check_direct):
    x, w, b = make_layer(rng, 1, 3, 4, 9, 10, 3, np.float64)
    y = conv2d(x, w, b, padding=(ph, pw), m=4, backend=backend)
    assert y.shape == (1, 4, 9 + 2 * ph - 2, 10 + 2 * pw - 2)
    check_direct(y, direct(x, w, b, (ph, pw)), np.float64, 4, 3, 3, label=f"{backend} pad ({ph},{pw})")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pad", [0, 1, 2, 3, 4, (4, 0), (0, 3)], ids=str)
def test_every_padding_for_5x5(pad, backend, rng, check_direct):
    x, w, b = make_layer(rng, 1, 2, 3, 7, 8, 5, np.float64)
    y = conv2d(x, w, b, padding=pad, m=2, backend=backend)
    check_direct(y, direct(x, w, b, pad), np.float64, 2, 5, 2, label=f"{backend} 5x5 pad {pad}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m,r", SPECIALISED + [(3, 3)], ids=lambda v: str(v))
def test_one_by_one_output(m, r, dtype, backend, rng, check_direct):
    """H = W = r, no padding: one output per channel, one tile mostly clipped away."""
    x, w, b = make_layer(rng, 3, 4, 5, r, r, r, dtype)
    y = conv2d(x, w, b, m=m, backend=backend)
    assert y.shape == (3, 5, 1, 1)
    check_direct(y, direct(x, w, b, 0), dtype, m, r, 4, label=f"{backend} 1x1 out x{x.shape}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_single_channel_single_filter_layer(dtype, backend, rng, check_direct):
    """C = K = 1: products of 1×1 by 1×P (m = k = 1 in the batched GEMM)."""
    x, w, b = make_layer(rng, 1, 1, 1, 9, 7, 3, dtype)
    for m in (2, 4, 6):
        y = conv2d(x, w, b, 1, m=m, backend=backend)
        check_direct(y, direct(x, w, b, 1), dtype, m, 3, 1, label=f"{backend} C=K=1 m={m}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_row_and_single_column_outputs(backend, rng, check_direct):
    for H, W in [(3, 17), (17, 3), (4, 3)]:
        x, w, b = make_layer(rng, 2, 3, 2, H, W, 3, np.float64)
        y = conv2d(x, w, b, m=4, backend=backend)
        check_direct(y, direct(x, w, b, 0), np.float64, 4, 3, 3, label=f"{backend} x{x.shape}")


# --------------------------------------------------------------------------- real layer shapes

# VGG-16 / ResNet 3×3 layers with the channel ratios kept and everything scaled down:
# (name, N, C, K, H, W)
LAYERS = [
    ("vgg16-conv1_2/8", 1, 8, 8, 28, 28),
    ("vgg16-conv2_1/8", 1, 8, 16, 28, 28),
    ("vgg16-conv3_1/8", 2, 16, 32, 14, 14),
    ("vgg16-conv4_2/8", 1, 64, 64, 14, 14),
    ("resnet-conv2_x/4", 2, 16, 16, 14, 14),
    ("resnet-conv3_x/4", 1, 32, 32, 14, 14),
    ("resnet-conv4_x/8", 1, 32, 32, 13, 13),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("layer", LAYERS, ids=lambda v: v[0])
def test_scaled_vgg_resnet_layers_match_direct(layer, m, dtype, backend, rng, check_direct):
    name, N, C, K, H, W = layer
    x, w, b = make_layer(rng, N, C, K, H, W, 3, dtype)
    y = conv2d(x, w, b, padding=1, m=m, backend=backend)
    check_direct(y, direct(x, w, b, 1), dtype, m, 3, C, record=dtype == np.float32 and m == 6,
                 label=f"{backend} {name} x{x.shape} K={K}")


# --------------------------------------------------------------------------- out=, plans, auto


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m,r", [(4, 3), (2, 5), (3, 3)], ids=lambda v: str(v))
def test_out_prefilled_with_nan_is_fully_written_and_returned(m, r, dtype, backend, rng, check_direct):
    x, w, b = make_layer(rng, 2, 5, 6, 4 * m + 1, 3 * m + 2, r, dtype)
    pad = (r - 1, 1)
    yshape = (2, 6, 4 * m + 1 + 2 * (r - 1) - r + 1, 3 * m + 2 + 2 - r + 1)
    out = np.full(yshape, np.nan, dtype)
    y = conv2d(x, w, b, padding=pad, m=m, backend=backend, out=out)
    assert y is out
    check_direct(out, direct(x, w, b, pad), dtype, m, r, 5, label=f"{backend} out= x{x.shape}")
    plan = WinogradConv2d(w, b, pad, m=m, backend=backend)
    out2 = np.full(yshape, np.nan, dtype)
    assert plan(x, out=out2) is out2
    assert not np.isnan(out2).any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_plan_reuse_on_different_inputs(dtype, backend, rng, check_direct):
    x1, w, b = make_layer(rng, 2, 6, 4, 11, 9, 3, dtype)
    x2 = rng.standard_normal((3, 6, 7, 13)).astype(dtype)  # other N and spatial size
    plan = WinogradConv2d(w, b, padding=1, m=4, backend=backend)
    y1 = plan(x1)
    y2 = plan(x2)
    y1_again = plan(x1)
    check_direct(y1, direct(x1, w, b, 1), dtype, 4, 3, 6, label=f"{backend} plan x1{x1.shape}")
    check_direct(y2, direct(x2, w, b, 1), dtype, 4, 3, 6, label=f"{backend} plan x2{x2.shape}")
    assert np.array_equal(y1, y1_again), "the same plan on the same input must be deterministic"
    assert plan.out_shape(x2.shape) == y2.shape


def test_plan_matches_one_call_conv2d_bitwise(rng):
    x, w, b = make_layer(rng, 2, 8, 8, 10, 10, 3, np.float32)
    for backend in BACKENDS:
        plan = WinogradConv2d(w, b, 1, m=4, backend=backend)
        assert np.array_equal(plan(x), conv2d(x, w, b, 1, m=4, backend=backend)), backend


def test_backend_auto_with_numpy_arrays_uses_numpy(rng):
    x, w, b = make_layer(rng, 1, 3, 4, 8, 8, 3, np.float32)
    plan = WinogradConv2d(w, b, 1, m=2, backend="auto")
    assert plan.backend == "numpy"
    assert WinogradConv2d(w, b, 1, m=2).backend == "numpy"  # auto is the default
    y = conv2d(x, w, b, 1, m=2)  # auto
    assert isinstance(y, np.ndarray)
    assert np.array_equal(y, conv2d(x, w, b, 1, m=2, backend="numpy"))


def test_plan_properties_and_repr(rng):
    x, w, b = make_layer(rng, 1, 3, 4, 8, 8, 3, np.float64)
    for backend in BACKENDS:
        plan = WinogradConv2d(w, b, (1, 2), m=4, backend=backend)
        assert (plan.m, plan.r, plan.alpha, plan.K, plan.C) == (4, 3, 6, 4, 3)
        assert plan.padding == (1, 2) and plan.dtype == np.float64
        assert plan.U.shape == (36, 4, 3)
        assert not plan.uses_sparse_product
        assert plan.weight_density == 1.0
        assert plan.out_shape((2, 3, 8, 8)) == (2, 4, 8, 10)
        rep = repr(plan)
        assert "F(4, 3)" in rep and backend in rep


@pytest.mark.parametrize("m,r", SPECIALISED + [(3, 3)], ids=lambda v: str(v))
def test_plan_U_equals_reference_filter_transform_on_both_backends(m, r, rng):
    from magma_wino.reference import filter_transform

    w = rng.standard_normal((4, 3, r, r))
    ref = filter_transform(w, m)
    for backend in BACKENDS:
        U = WinogradConv2d(w, m=m, backend=backend).U
        np.testing.assert_allclose(U, ref, rtol=0, atol=1e-13 * np.abs(ref).max(), err_msg=backend)


def test_bias_is_added_per_output_channel(rng):
    x, w, _ = make_layer(rng, 1, 2, 3, 6, 6, 3, np.float64, bias=False)
    b = np.array([1.0, -2.0, 100.0])
    for backend in BACKENDS:
        y0 = conv2d(x, w, None, 1, m=4, backend=backend)
        y1 = conv2d(x, w, b, 1, m=4, backend=backend)
        np.testing.assert_allclose(y1 - y0, np.broadcast_to(b[None, :, None, None], y0.shape),
                                   atol=1e-12, err_msg=backend)


# --------------------------------------------------------------------------- numpy vs emulator


def run_on_backends(body, backends=BACKENDS):
    """CuPy's testing habit: the same body on each backend, the results returned by name."""
    return {backend: body(backend) for backend in backends}


@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m,r,pad", [(2, 3, 1), (4, 3, (0, 2)), (6, 3, 1), (2, 5, (4, 1)), (3, 3, 2),
                                     (3, 2, 1), (5, 3, 0)], ids=str)
def test_numpy_and_emulator_backends_agree(m, r, pad, dtype, rng, winograd_tol, rel_error):
    x, w, b = make_layer(rng, 2, 12, 10, 3 * m + 2, 2 * m + 1 + r, r, dtype)

    def body(backend):
        return WinogradConv2d(w, b, pad, m=m, backend=backend)(x)

    ys = run_on_backends(body)
    assert ys["numpy"].dtype == ys["emulator"].dtype == np.dtype(dtype)
    assert ys["numpy"].shape == ys["emulator"].shape
    # Both are within tol of the exact result, so within 2·tol of each other.
    tol = 2 * winograd_tol(dtype, m, r, 12 * r * r)
    err = rel_error(ys["emulator"], ys["numpy"])
    assert err <= tol, f"F({m},{r}) pad {pad} x{x.shape}: emulator vs numpy rel err {err:.3g} > {tol:.3g}"
    if dtype == np.float64:
        assert err <= 1e-13


def test_conv2d_is_exported_lazily():
    assert magma_wino.conv2d is conv2d
    assert magma_wino.WinogradConv2d is WinogradConv2d
    with pytest.raises(AttributeError):
        magma_wino.not_a_function  # noqa: B018


def test_default_m_is_4_in_2d_and_2_in_3d(rng):
    from magma_wino import WinogradConv3d, conv3d

    w2 = rng.standard_normal((2, 2, 3, 3))
    w3 = rng.standard_normal((2, 2, 3, 3, 3))
    assert WinogradConv2d(w2).m == 4 and WinogradConv2d(w2, m=None).m == 4
    assert WinogradConv3d(w3).m == 2 and WinogradConv3d(w3, m=None).m == 2
    x3 = rng.standard_normal((1, 2, 5, 5, 5))
    for backend in BACKENDS:
        np.testing.assert_array_equal(conv3d(x3, w3, backend=backend),
                                      WinogradConv3d(w3, m=2, backend=backend)(x3))


def test_conv_options_after_padding_are_keyword_only():
    # torch's order is (input, weight, bias, stride, padding): a ported positional call must
    # fail loudly instead of building F(stride, r)
    x = np.ones((1, 2, 6, 6))
    w = np.ones((3, 2, 3, 3))
    with pytest.raises(TypeError, match="positional"):
        conv2d(x, w, None, 1, 1)
    with pytest.raises(TypeError, match="positional"):
        conv3d(np.ones((1, 2, 4, 4, 4)), np.ones((3, 2, 3, 3, 3)), None, 1, 2)


class _ArrayLike:
    """A host array-like that is not an ndarray (only ``__array__``)."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a


@pytest.mark.parametrize("backend", ["numpy", "emulator"])
def test_host_array_likes_are_accepted_on_host_backends(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 6, 7))
    w = rng.standard_normal((3, 2, 3, 3))
    want = conv2d(x, w, padding=1, m=2, backend=backend)
    np.testing.assert_array_equal(conv2d(_ArrayLike(x), _ArrayLike(w), padding=1, m=2, backend=backend), want)


def test_torch_cpu_tensors_are_viewed_without_copy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 6, 7))
    w = rng.standard_normal((3, 2, 3, 3))
    out = torch.full((1, 3, 6, 7), float("nan"), dtype=torch.float64)
    y = conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1, m=2, out=out)  # auto -> numpy
    assert y.ctypes.data == out.data_ptr()  # written into the tensor's own memory
    np.testing.assert_array_equal(out.numpy(), conv2d(x, w, padding=1, m=2, backend="numpy"))
    with pytest.raises(TypeError, match="x .*could not be viewed as a NumPy array"):
        conv2d(torch.from_numpy(x).requires_grad_(), torch.from_numpy(w), padding=1)
