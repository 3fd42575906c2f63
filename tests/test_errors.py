"""Bad input to ``conv2d`` / ``conv3d`` and the plans: the right exception class, and a
message that names the argument (DESIGN.md: "other strides → copy or clear error").

Conventions checked (magma_wino/_checks.py, _backend.py, errors.py): ValueError for wrong
values and shapes, TypeError for wrong types and dtypes, BackendUnavailableError when a
backend cannot run here; errors of the compiled layer derive from ValueError too.
"""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import WinogradConv2d, WinogradConv3d, _backend, conv2d, conv3d
from magma_wino.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    MagmaWinoError,
    UnsupportedError,
)

BACKENDS = ["numpy", "emulator"]
KERNEL_BACKENDS = ["emulator"]  # the backends that hand raw pointers to kernels


@pytest.fixture
def xw(rng):
    x = rng.standard_normal((2, 3, 10, 12)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    return x, w, b


# --------------------------------------------------------------------------- ranks, shapes


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_ranks_raise_value_error_naming_the_argument(backend, xw):
    x, w, b = xw
    with pytest.raises(ValueError, match=r"^x must be 4-D \(N×C×H×W\), got shape \(3, 10, 12\)"):
        conv2d(x[0], w, backend=backend)
    with pytest.raises(ValueError, match=r"^x must be 4-D"):
        conv2d(x[:, :, None], w, backend=backend)
    with pytest.raises(ValueError, match=r"^w must be 4-D \(K×C×r_h×r_w\)"):
        conv2d(x, w[0], backend=backend)
    with pytest.raises(ValueError, match=r"^w must be 4-D"):
        WinogradConv2d(w[..., None], backend=backend)
    plan = WinogradConv2d(w, b, 1, m=2, backend=backend)
    with pytest.raises(ValueError, match=r"^x must be 4-D"):
        plan(x[None])
    with pytest.raises(ValueError, match=r"^x must be 5-D"):
        WinogradConv3d(w[..., None].repeat(3, -1), backend=backend)(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_channel_mismatch_raises_value_error(backend, xw):
    x, w, b = xw
    with pytest.raises(ValueError, match=r"channel mismatch: x has C = 2 .* w has C = 3"):
        conv2d(x[:, :2].copy(), w, backend=backend)
    plan = WinogradConv2d(w, b, 1, m=4, backend=backend)
    with pytest.raises(ValueError, match=r"channel mismatch: x has C = 5"):
        plan(np.zeros((1, 5, 8, 8), np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rectangular_filter_with_points_empty_arrays_and_too_small_input(backend, xw):
    x, w, b = xw
    with pytest.raises(ValueError, match=r"points: a rectangular tile runs the default points"):
        WinogradConv2d(np.zeros((4, 3, 3, 5), np.float32), m=2, backend=backend, points=[0, 1, -1])
    with pytest.raises(ValueError, match=r"x must not be empty"):
        conv2d(x[:0], w, backend=backend)
    with pytest.raises(ValueError, match=r"smaller than the filter's extent \(3, 3\)"):
        conv2d(x[:, :, :2].copy(), w, backend=backend)
    with pytest.raises(ValueError, match=r"smaller than the filter size r = 3"):
        WinogradConv2d(w, backend=backend)(x[:, :, :2].copy())
    with pytest.raises(ValueError, match=r"bias must have shape \(K,\) = \(4,\)"):
        conv2d(x, w, b[:3].copy(), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_arrays_raise_type_error(backend, xw):
    x, w, _ = xw
    with pytest.raises(TypeError, match=r"^x must be an array"):
        conv2d(x.tolist(), w, backend=backend)
    with pytest.raises(TypeError, match=r"^w must be an array"):
        conv2d(x, None, backend=backend)


# --------------------------------------------------------------------------- strides


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("view", ["x[:, :, ::2]", "x[..., ::-1]", "x.transpose(0, 1, 3, 2)"])
def test_non_contiguous_x_raises_value_error_naming_x_and_contiguous(view, backend, rng):
    base = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)
    x = eval(view, {"x": base})  # noqa: S307 - a fixed list of views
    assert not x.flags["C_CONTIGUOUS"]
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^x must be C-contiguous .*strides"):
        conv2d(x, w, backend=backend)
    with pytest.raises(ValueError, match=r"^x must be C-contiguous"):
        WinogradConv2d(w, m=2, backend=backend)(x)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_non_contiguous_w_bias_out_raise_value_error_naming_them(backend, rng):
    x = rng.standard_normal((1, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"^w must be C-contiguous"):
        conv2d(x, w[..., ::-1], backend=backend)
    with pytest.raises(ValueError, match=r"^w must be C-contiguous"):
        conv2d(x, np.zeros((4, 3, 6, 3))[:, :, ::2], backend=backend)
    with pytest.raises(ValueError, match=r"^bias must be C-contiguous"):
        conv2d(x, w, np.zeros(8)[::2], backend=backend)
    out = np.zeros((1, 4, 6, 12))[..., ::2]
    with pytest.raises(ValueError, match=r"^out must be C-contiguous"):
        conv2d(x, w, backend=backend, out=out)
    with pytest.raises(ValueError, match=r"^U must be C-contiguous"):
        WinogradConv2d.from_winograd(np.zeros((16, 4, 6))[:, :, ::2], 3, m=2, backend=backend)


def test_numpy_backend_accepts_strided_views_and_computes_the_same(rng):
    """The numpy backend is the reference: it reads any strides correctly (no pointers)."""
    base = rng.standard_normal((2, 3, 12, 12))
    w = rng.standard_normal((4, 3, 3, 3))
    for x in (base[:, :, ::2], base[..., ::-1]):
        y = conv2d(x, w, m=2, backend="numpy")
        np.testing.assert_allclose(y, conv2d(np.ascontiguousarray(x), w, m=2, backend="emulator"),
                                   rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_mismatch_between_x_and_w_raises_type_error(backend, xw):
    x, w, b = xw
    with pytest.raises(TypeError, match=r"dtype mismatch: x is float64 but the weights are float32"):
        conv2d(x.astype(np.float64), w, backend=backend)
    with pytest.raises(TypeError, match=r"dtype mismatch: x is float32 but the weights are float64"):
        WinogradConv2d(w.astype(np.float64), backend=backend)(x)
    with pytest.raises(TypeError, match=r"dtype mismatch: bias is float64"):
        conv2d(x, w, b.astype(np.float64), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_integer_input_raises_type_error(dtype, backend, xw):
    x, w, _ = xw
    with pytest.raises(TypeError, match=rf"w must be float32, float64, float16 or bfloat16, got {np.dtype(dtype).name}"):
        conv2d(x.astype(dtype), w.astype(dtype), backend=backend)
    with pytest.raises(TypeError, match=rf"dtype mismatch: x is {np.dtype(dtype).name}"):
        conv2d(x.astype(dtype), w, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float16_input_with_float32_weights_raises_dtype_mismatch(backend, xw):
    x, w, _ = xw  # float16 data is supported (docs/api.md, "Precision"), but x and w must agree
    with pytest.raises(TypeError, match=r"dtype mismatch: x is float16 but the weights are float32"):
        conv2d(x.astype(np.float16), w, backend=backend)
    with pytest.raises(TypeError, match=r"dtype mismatch: x is float32 but the weights are float16"):
        conv2d(x, w.astype(np.float16), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_complex_and_bool_input_raise_type_error(backend, xw):
    x, w, _ = xw
    with pytest.raises(TypeError, match=r"^x must have a real numeric dtype"):
        conv2d(x.astype(np.complex64), w, backend=backend)
    with pytest.raises(TypeError, match=r"^w must have a real numeric dtype"):
        conv2d(x, w > 0, backend=backend)


# --------------------------------------------------------------------------- F(m, r), padding


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,r", [(15, 3), (14, 4), (13, 5), (17, 1)], ids=str)
def test_alpha_above_16_raises_value_error(m, r, backend, rng):
    w = rng.standard_normal((2, 2, r, r))
    with pytest.raises(ValueError, match=rf"alpha = m \+ r - 1 = {m + r - 1}; at most 16"):
        WinogradConv2d(w, m=m, backend=backend)
    with pytest.raises(ValueError, match="at most 16"):
        conv2d(rng.standard_normal((1, 2, 20, 20)), w, m=m, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_alpha_16_exactly_is_accepted(backend, rng, check_direct):
    from magma_wino.reference import conv2d_direct

    x = rng.standard_normal((1, 2, 16, 16))
    w = rng.standard_normal((2, 2, 3, 3))
    y = conv2d(x, w, m=14, backend=backend)
    check_direct(y, conv2d_direct(x, w), np.float64, 14, 3, 2, label=f"{backend} F(14,3)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_m_raises(backend, xw):
    x, w, _ = xw
    with pytest.raises(ValueError, match=r"^m must be >= 1, got 0"):
        conv2d(x, w, m=0, backend=backend)
    with pytest.raises(ValueError, match=r"^m must be >= 1, got -2"):
        WinogradConv2d(w, m=-2, backend=backend)
    for bad in (2.0, "4", True):  # None means the default m
        with pytest.raises(TypeError, match=r"^m must be an int"):
            WinogradConv2d(w, m=bad, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_padding_raises(backend, xw):
    x, w, _ = xw
    with pytest.raises(ValueError, match=r"padding must be an int, 2 ints .* got \(0, 3, 1\)"):
        conv2d(x, w, padding=(0, 3, 1), backend=backend)
    with pytest.raises(ValueError, match=r"x: spatial size .* smaller than the filter"):
        WinogradConv2d(w, padding=((0, 0), (0, 0)), backend=backend)(x[:, :, :2])
    with pytest.raises(ValueError, match=r"padding must be >= 0"):
        conv2d(x, w, padding=(-1, 0), backend=backend)
    with pytest.raises(ValueError, match=r"one per spatial axis"):
        conv2d(x, w, padding=(1, 1, 1), backend=backend)
    with pytest.raises(TypeError, match=r"padding"):
        conv2d(x, w, padding=1.0, backend=backend)
    with pytest.raises(TypeError, match=r"padding"):
        conv2d(x, w, padding=True, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_points_and_relu_raise_value_error(backend, xw):
    _, w, _ = xw
    with pytest.raises(ValueError, match=r"points: F\(4, 3\) needs alpha - 1 = 5"):
        WinogradConv2d(w, m=4, backend=backend, points=[0, 1, -1])
    with pytest.raises(ValueError, match=r"points must be distinct"):
        WinogradConv2d(w, m=2, backend=backend, points=[0, 1, 1])
    with pytest.raises(ValueError, match=r"relu must be None, 'spatial' or 'winograd'"):
        WinogradConv2d(w, m=2, backend=backend, relu="before")


# --------------------------------------------------------------------------- out=


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_wrong_shape_or_dtype_raises(backend, xw):
    x, w, b = xw
    with pytest.raises(ValueError, match=r"out must have shape \(2, 4, 8, 10\), got \(2, 4, 10, 12\)"):
        conv2d(x, w, b, backend=backend, out=np.zeros((2, 4, 10, 12), np.float32))
    with pytest.raises(TypeError, match=r"out must be float32, got float64"):
        conv2d(x, w, b, backend=backend, out=np.zeros((2, 4, 8, 10), np.float64))
    out = np.full((2, 4, 8, 10), 7.0, np.float32)
    with pytest.raises(TypeError):
        conv2d(x, w, b, backend=backend, out=out.astype(np.float16))
    assert (out == 7.0).all()


def test_emulator_out_must_be_a_numpy_array(xw):
    x, w, b = xw
    with pytest.raises(TypeError, match=r"^out must be a numpy.ndarray"):
        conv2d(x, w, b, backend="emulator", out=_FakeHostArray(np.zeros((2, 4, 8, 10), np.float32)))


class _FakeHostArray:
    """Has shape and dtype but is not a NumPy array."""

    def __init__(self, a):
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim


class _FakeDeviceArray(_FakeHostArray):
    """Looks like a device array (``__cuda_array_interface__``) without any GPU."""

    def __init__(self, a):
        super().__init__(a)
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "data": (0, False),
                                         "version": 3, "strides": None}


# --------------------------------------------------------------------------- backends


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cpu", "", None, 0])
def test_unknown_backend_name_raises_value_error(name, xw):
    x, w, _ = xw
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'cuda', 'emulator', 'numpy'\)"):
        conv2d(x, w, backend=name)
    with pytest.raises(ValueError, match=r"backend must be one of"):
        WinogradConv2d.from_winograd(np.zeros((16, 4, 3), np.float32), 3, m=2, backend=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_device_array_given_to_a_host_backend_raises_type_error_naming_it(backend, xw):
    x, w, _ = xw
    plan = WinogradConv2d(w, m=2, backend=backend)
    with pytest.raises(TypeError, match=rf"^x: backend='{backend}' runs on host \(NumPy\) arrays, got a device array"):
        plan(_FakeDeviceArray(x))


def test_backend_auto_decides_on_the_weights_device_x_with_host_w_names_x(xw):
    x, w, _ = xw
    with pytest.raises(TypeError, match=r"^x: backend='numpy' runs on host"):
        conv2d(_FakeDeviceArray(x), w)


@pytest.mark.skipif(_backend.cuda_available(), reason="a CUDA GPU is present (see test_gpu.py)")
def test_backend_cuda_without_gpu_raises_backend_unavailable(xw):
    """No GPU (or no CUDA extension): BackendUnavailableError (a MagmaWinoError, not a
    TypeError), naming the backend and the alternatives — before any array is looked at."""
    x, w, b = xw
    built = _backend.extension("cuda", required=False) is not None
    expect = "no usable CUDA GPU" if built else "the CUDA extension was not built"
    for call in (lambda: conv2d(x, w, b, backend="cuda"),
                 lambda: WinogradConv2d(w, backend="cuda"),
                 lambda: conv3d(x[:, :, None].repeat(3, 2), w[:, :, None].repeat(3, 2), backend="cuda"),
                 lambda: WinogradConv2d.from_winograd(np.zeros((16, 4, 3), np.float32), 3, m=2, backend="cuda")):
        with pytest.raises(BackendUnavailableError, match=rf"backend='cuda'.*{expect}") as info:
            call()
        assert isinstance(info.value, MagmaWinoError)
        assert not isinstance(info.value, TypeError)
        assert "emulator" in str(info.value)


@pytest.mark.skipif(not _backend.cuda_available(), reason="no CUDA GPU: cupy.is_available() is False or the "
                                                          "CUDA extension was not built")
@pytest.mark.gpu
def test_backend_cuda_with_host_arrays_raises_type_error_naming_the_first_host_argument(xw):
    """With a GPU: the weights are moved first, so conv2d(host x, host w) names w; a plan
    built on device weights called with host x names x (see also test_gpu.py)."""
    cp = _backend.cupy_module()
    x, w, _ = xw
    with pytest.raises(TypeError, match=r"^w: the cuda backend needs a device array"):
        conv2d(x, w, backend="cuda")
    with pytest.raises(TypeError, match=r"^x: the cuda backend needs a device array"):
        conv2d(x, cp.asarray(w), backend="cuda")


class _CudaArrayInterfaceOnly:
    """Nothing but ``__cuda_array_interface__`` (no .shape / .dtype), as Numba / PyCUDA wrap."""

    def __init__(self, a):
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "data": (0, False),
                                         "version": 3, "strides": None}


class _DLPackOnly:
    """Nothing but the DLPack protocol, on a CUDA device."""

    def __dlpack__(self, *args, **kwargs):  # pragma: no cover - never reached without a GPU
        raise RuntimeError("no GPU")

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA, device 0


@pytest.mark.skipif(_backend.cuda_available(), reason="a CUDA GPU is present (test_gpu.py runs the real case)")
@pytest.mark.parametrize("wrap", [_CudaArrayInterfaceOnly, lambda a: _DLPackOnly()], ids=["cai", "dlpack"])
def test_protocol_only_device_objects_reach_the_cuda_backend(wrap, xw):
    """auto picks cuda for them; with no GPU that is BackendUnavailableError, not a TypeError."""
    x, w, _ = xw
    with pytest.raises(BackendUnavailableError, match=r"^x is a device array .* cuda backend is not usable"):
        conv2d(wrap(x), wrap(w))
    with pytest.raises(BackendUnavailableError, match=r"^w is a device array"):
        WinogradConv2d(wrap(w), m=2)
    with pytest.raises(BackendUnavailableError, match=r"^U is a device array"):
        WinogradConv2d.from_winograd(wrap(np.zeros((16, 4, 3), np.float32)), 3, m=2)
    with pytest.raises(BackendUnavailableError):
        conv3d(wrap(x[:, :, None].repeat(3, 2)), wrap(w[:, :, None].repeat(3, 2)))


# --------------------------------------------------------------------------- exception hierarchy


def test_compiled_layer_errors_are_value_errors_with_status_and_detail():
    emu = pytest.importorskip("magma_wino._emu")
    with pytest.raises(ValueError) as info:
        emu.ConvDesc(2, 0, 3, 1, 1, 1, (8, 8), (0, 0)).geometry()
    err = info.value
    assert isinstance(err, InvalidArgumentError) and isinstance(err, MagmaWinoError)
    assert err.status == "MW_STATUS_INVALID_ARGUMENT" and "desc.m" in err.detail
    assert issubclass(UnsupportedError, ValueError)
    assert issubclass(BackendUnavailableError, MagmaWinoError)


# --------------------------------------------------------------------------- issue 10 §3
# Found by the fuzz (tests/test_fuzz.py): every bad input of the public API a TypeError or
# ValueError whose message names the argument, never IndexError, AttributeError, NumPy's
# or CuPy's internals.


def test_cost_table_of_no_layers_raises_value_error_naming_layers():
    from magma_wino import cost

    with pytest.raises(ValueError, match=r"^layers must not be empty"):
        cost.cost_table([], [2])
    with pytest.raises(TypeError, match=r"^layers must be a sequence"):
        cost.cost_table(5, [2])
    with pytest.raises(ValueError, match=r"^layers\[0\] must be \(C, K, \*spatial\)"):
        cost.cost_table([(3,)], [2])
    with pytest.raises(TypeError, match=r"^ms\[0\] must be an int"):
        cost.cost_table([(3, 4, 8, 8)], [2.5])
    with pytest.raises(ValueError, match=r"configs\[0\]"):
        cost.cost_table([(3, 4, 8, 8)], [2], [("dense", 1.0)])
    with pytest.raises(TypeError, match=r"^per_layer must be a bool"):
        cost.cost_table([(3, 4, 8, 8)], [2], per_layer=None)


def test_format_table_of_a_string_raises_type_error_naming_rows():
    from magma_wino import cost

    with pytest.raises(TypeError, match=r"^rows must be a sequence of dicts, got str"):
        cost.format_table("abc")
    with pytest.raises(TypeError, match=r"^rows\[1\] must be a dict"):
        cost.format_table([{"a": 1}, 5])
    with pytest.raises(TypeError, match=r"^columns"):
        cost.format_table([{"a": 1}], columns=5)
    with pytest.raises(TypeError, match=r"^markdown must be a bool"):
        cost.format_table([{"a": 1}], markdown="yes")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_weights_in_pruning_name_the_users_argument(bad):
    from magma_wino import pruning

    w = np.ones((2, 2, 3, 3))
    w[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"^w contains NaN or infinite values"):
        pruning.prune_spatial(w, 0.5)
    U = np.ones((16, 2, 2))
    U[3, 1, 0] = bad
    with pytest.raises(ValueError, match=r"^U contains NaN or infinite values"):
        pruning.prune_winograd(U, 0.5)
    with pytest.raises(ValueError, match=r"^U contains NaN"):
        pruning.prune_winograd(U, 0.5, per_position=True)


@pytest.mark.parametrize("shape", [(0, 2, 3, 3), (2, 0, 3, 3)])
def test_prune_filters_of_empty_w_raises_value_error_naming_w(shape):
    from magma_wino import pruning

    with pytest.raises(ValueError, match=r"^w must not be empty"):
        pruning.prune_filters(np.zeros(shape), keep_fraction=0.5)
    with pytest.raises(ValueError, match=r"^w must not be empty"):
        pruning.prune_filters(np.zeros(shape), 1)


def test_matvec_and_transform_cost_of_non_matrices_name_T():
    from magma_wino import cost

    with pytest.raises(TypeError, match=r"^T must be a matrix .*got int"):
        cost.matvec_cost(5)
    with pytest.raises(TypeError, match=r"^T must be a matrix .*got int"):
        cost.transform_cost(5, 2)
    with pytest.raises(TypeError, match=r"^T\[0\] must be a row"):
        cost.matvec_cost([5, 6])
    with pytest.raises(ValueError, match=r"^T\[0\]\[1\] must be finite, got nan"):
        cost.matvec_cost([[1, float("nan")]])
    with pytest.raises(ValueError, match=r"^T\[0\]\[0\] must be finite, got inf"):
        cost.matvec_cost(np.array([[np.inf]]))
    with pytest.raises(ValueError, match=r"^T must be a non-empty"):
        cost.transform_cost(np.zeros((0, 3)), 2)
    with pytest.raises(TypeError, match=r"^T\[0\]\[0\] must be a real number, got NoneType"):
        cost.matvec_cost([[None]])


@pytest.mark.parametrize("ndim", [True, 2.0, "2", None])
def test_transform_cost_refuses_a_non_int_ndim(ndim):
    from magma_wino import cost

    with pytest.raises(TypeError, match=r"^ndim must be an int"):
        cost.transform_cost([[1, 2], [3, 4]], ndim=ndim)
    with pytest.raises(TypeError, match=r"^ndim must be an int"):
        cost.layer_cost(1, 2, 2, 8, ndim=ndim)


def test_pruning_messages_use_the_callers_argument_name():
    """The plans pass ``density_name="prune"``: an out-of-range ``prune=`` names prune."""
    from magma_wino import pruning

    with pytest.raises(ValueError, match=r"^prune must be in \[0, 1\], got 1.5"):
        pruning.prune_spatial(np.ones((2, 2, 3, 3)), 1.5, density_name="prune")
    with pytest.raises(TypeError, match=r"^prune must be a real number"):
        pruning.prune_winograd(np.ones((16, 2, 2)), True, density_name="prune")
    with pytest.raises(ValueError, match=r"^density must be in \[0, 1\]"):  # the default name
        pruning.prune_spatial(np.ones((2, 2, 3, 3)), -0.1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prune", [1.5, -0.1, float("nan"), True, "0.5"])
def test_out_of_range_prune_names_prune(prune, backend, rng):
    w = rng.standard_normal((2, 2, 3, 3))
    exc = TypeError if isinstance(prune, (bool, str)) else ValueError
    with pytest.raises(exc, match=r"^prune "):
        WinogradConv2d.from_spatial(w, prune=prune, backend=backend)
    with pytest.raises(exc, match=r"^prune "):
        WinogradConv2d.from_winograd(rng.standard_normal((16, 2, 2)), 3, m=2, prune=prune, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_spatial_of_a_list_raises_type_error_naming_w(backend):
    """Lists are refused by name on every backend, as conv2d refuses them (no CuPy error)."""
    with pytest.raises(TypeError, match=r"^w must be an array"):
        WinogradConv2d.from_spatial([[[[1.0]]]], prune=0.5, backend=backend)
    with pytest.raises(TypeError, match=r"^w must be an array"):
        WinogradConv2d([[[[1.0]]]], backend=backend)
    with pytest.raises(TypeError, match=r"^x must be an array"):
        conv2d([[[[1.0]]]], np.ones((1, 1, 1, 1)), backend=backend)


@pytest.mark.skipif(_backend.cuda_available(), reason="a CUDA GPU is present")
def test_csr_to_device_without_gpu_is_backend_unavailable_not_a_cuda_runtime_error():
    from magma_wino.sparse import BatchedCSR

    csr = BatchedCSR.from_dense(np.eye(3)[None])
    try:
        import cupy  # noqa: F401
    except Exception:
        pytest.skip("CuPy is not installed (to_device raises ImportError then)")
    with pytest.raises(BackendUnavailableError, match=r"to_device: no usable CUDA GPU"):
        csr.to_device()


def test_bools_and_floats_for_ints_are_type_errors_everywhere():
    from magma_wino import accuracy, pruning, transforms

    with pytest.raises(TypeError, match=r"^size must be an int"):
        pruning.kept_count(0.5, np.float64(3))
    with pytest.raises(TypeError, match=r"^count must be an int"):
        transforms.default_points(True)
    with pytest.raises(ValueError, match=r"^count must be in \[0, MAX_ALPHA - 1\]"):
        transforms.default_points(10**12)  # refused, not a list of 10^12 points
    with pytest.raises(TypeError, match=r"^reduction_len must be an int"):
        accuracy.tolerance(np.float32, 2, 3, 2.5)
    with pytest.raises(TypeError, match=r"^ndim must be an int"):
        accuracy.rounding_depth(2, 3, True)
    with pytest.raises(TypeError, match=r"^bias must be a bool"):
        from magma_wino import cost

        cost.layer_cost(1, 2, 2, 8, bias=2)


def test_error_measures_name_y_and_y_ref():
    from magma_wino import accuracy

    for f in (accuracy.rel_err, accuracy.mean_rel_err, accuracy.elementwise_rel_err):
        with pytest.raises(ValueError, match=r"^y and y_ref must have the same shape"):
            f(np.ones(3), np.ones(2))  # mean_rel_err used to broadcast
        with pytest.raises(TypeError, match=r"^y_ref must be an array, got NoneType"):
            f(np.ones(3), None)
        with pytest.raises(TypeError, match=r"^y must be a real numeric array, got dtype complex"):
            f(np.ones(3, complex), np.ones(3))
    assert accuracy.elementwise_rel_err(np.ones(0), np.ones(0)) == 0.0


def test_dtype_arguments_name_dtype():
    from magma_wino import accuracy, transforms
    from magma_wino.sparse import BatchedCSR

    with pytest.raises(TypeError, match=r"^dtype must be a floating-point dtype, got 'abc'"):
        transforms.winograd(2, 3).matrices("abc")
    with pytest.raises(TypeError, match=r"^dtype must be a floating-point dtype"):
        accuracy.tolerance(np.int32, 2, 3, 9)
    with pytest.raises(TypeError, match=r"^dtype must be float32 or float64, got int32"):
        BatchedCSR.from_dense(np.eye(2)[None]).astype(np.int32)


def test_layer_cost_with_huge_channel_counts_counts_without_allocating():
    """Rows are kept as a histogram: K = C = 10^9 needs no K-sized array."""
    from magma_wino import cost

    lc = cost.layer_cost(1, 10**9, 10**9, 8, variant="winograd_relu", weight_density=0.5,
                         activation_density=0.5)
    assert lc.weight_nnz == 16 * (10**18 // 2)
    assert cost.layer_cost(1, 10**9, 10**9, 8).product_mults == 16 * 10**18 * lc.P
