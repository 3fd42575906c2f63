"""The CUDA backend on a real GPU: the same sweep as the host tests, compared with the numpy
backend (never bitwise with the emulator: nvcc contracts a*b+c into FMA, g++ does not) and
with the float64 direct convolution.

Skipped, with the reason, where ``magma_wino._backend.cuda_available()`` is False (no GPU,
CuPy missing, or the CUDA extension not built).  The no-GPU behaviour of ``backend="cuda"``
(BackendUnavailableError) is tested where it can run, in
``test_errors.py::test_backend_cuda_without_gpu_raises_backend_unavailable`` — a module-level
skip would skip it here.
"""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import WinogradConv2d, WinogradConv3d, _backend, conv2d, conv3d, pruning
from magma_wino.reference import conv2d_direct, conv3d_direct, winograd_conv_from_U

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not _backend.cuda_available(),
        reason="no CUDA GPU: cupy.is_available() is False or the CUDA extension was not built",
    ),
]

cp = _backend.cupy_module()  # None where CuPy is missing (every test is skipped then)

DTYPES = [np.float32, np.float64]
SPEC_2D = [(2, 3), (4, 3), (6, 3), (2, 5)]


def dt_id(d) -> str:
    return np.dtype(d).name


class CudaArrayInterfaceOnly:
    """Exposes nothing but ``__cuda_array_interface__`` (Numba / PyCUDA style)."""

    def __init__(self, a):
        self._a = a

    @property
    def __cuda_array_interface__(self):
        return self._a.__cuda_array_interface__


class DLPackOnly:
    """Exposes nothing but the DLPack protocol (``__dlpack__`` / ``__dlpack_device__``)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


def host(a) -> np.ndarray:
    return cp.asnumpy(a) if isinstance(a, cp.ndarray) else np.asarray(a)


def layer(rng, N, C, K, size, r, dtype, ndim=2):
    x = rng.standard_normal((N, C) + tuple(size)).astype(dtype)
    w = rng.standard_normal((K, C) + (r,) * ndim).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b


def test_cuda_extension_reports_cuda_build():
    info = _backend.extension("cuda").build_info()
    assert info["backend"] == "cuda"
    assert "F(4,3)" in info["specialized2d"]


# --------------------------------------------------------------------------- dense sweep


@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m,r,generic", [(m, r, False) for m, r in SPEC_2D]
                         + [(4, 3, True), (3, 3, False), (3, 2, False)], ids=str)
def test_cuda_conv2d_matches_numpy_backend_and_direct(m, r, generic, dtype, rng, check_direct, winograd_tol,
                                                      rel_error):
    x, w, b = layer(rng, 2, 16, 24, (3 * m + 1, 2 * m + r + 2), r, dtype)
    pad = (r - 1, 1)
    plan = WinogradConv2d(cp.asarray(w), cp.asarray(b), pad, m=m, backend="cuda", generic=generic)
    assert plan.backend == "cuda"
    y = plan(cp.asarray(x))
    assert isinstance(y, cp.ndarray)
    y_np = WinogradConv2d(w, b, pad, m=m, backend="numpy")(x)
    label = f"cuda {dt_id(dtype)} F({m},{r}) x{x.shape} pad {pad}"
    check_direct(host(y), conv2d_direct(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), pad),
                 dtype, m, r, 16, label=label, record=True)
    assert rel_error(host(y), y_np) <= 2 * winograd_tol(dtype, m, r, 16 * r * r), label


@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_cuda_scaled_vgg_layer_with_out_prefilled_nan(dtype, rng, check_direct):
    x, w, b = layer(rng, 2, 64, 64, (28, 28), 3, dtype)
    out = cp.full((2, 64, 28, 28), cp.nan, dtype=dtype)
    y = conv2d(cp.asarray(x), cp.asarray(w), cp.asarray(b), 1, m=4, out=out)  # auto -> cuda
    assert y is out
    check_direct(host(out), conv2d_direct(x, w, b, 1), dtype, 4, 3, 64, label=f"cuda VGG/8 {dt_id(dtype)}")


@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m", [2, 4, 3])
def test_cuda_conv3d_matches_numpy_backend(m, dtype, rng, check_direct):
    x, w, b = layer(rng, 2, 8, 8, (2 * m + 1, m + 2, 3 * m - 1), 3, dtype, ndim=3)
    pad = (1, 0, 2)
    y = conv3d(cp.asarray(x), cp.asarray(w), cp.asarray(b), pad, m=m, backend="cuda")
    y_np = conv3d(x, w, b, pad, m=m, backend="numpy")
    ref = conv3d_direct(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), pad)
    check_direct(host(y), ref, dtype, m, 3, 8, ndim=3, label=f"cuda 3D F({m},3) {dt_id(dtype)}")
    check_direct(y_np, ref, dtype, m, 3, 8, ndim=3, label=f"numpy 3D F({m},3) {dt_id(dtype)}")


# --------------------------------------------------------------------------- sparse sweep


@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("density", [1.0, 0.5, 0.25, 0.1, 0.05, 0.0])
@pytest.mark.parametrize("relu", [None, "winograd"])
def test_cuda_sparse_winograd_layers_match_numpy_backend(relu, density, dtype, rng, from_U_bound):
    m, r, pad = 4, 3, 1
    x = rng.standard_normal((2, 32, 14, 14)).astype(dtype)
    U = rng.standard_normal((36, 48, 32)).astype(dtype)
    b = rng.standard_normal(48).astype(dtype)
    Up, _ = pruning.prune_winograd(U, density)
    ref = winograd_conv_from_U(x.astype(np.float64), Up.astype(np.float64), m, r, pad, b.astype(np.float64),
                               relu=relu == "winograd")
    tol = from_U_bound(dtype, x, Up, m, r, pad, relu=relu)
    for sparse in (True, False):
        plan = WinogradConv2d.from_winograd(cp.asarray(U), r, prune=density, bias=cp.asarray(b), padding=pad,
                                            m=m, backend="cuda", relu=relu, sparse=sparse)
        assert plan.uses_sparse_product == sparse
        y = host(plan(cp.asarray(x)))
        err = float(np.abs(y.astype(np.float64) - ref).max())
        assert err <= tol, f"cuda sparse={sparse} density={density} relu={relu}: {err:.3g} > {tol:.3g}"
    y_np = WinogradConv2d.from_winograd(U, r, prune=density, bias=b, padding=pad, m=m, backend="numpy",
                                        relu=relu)(x)
    assert float(np.abs(y_np.astype(np.float64) - ref).max()) <= tol


@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_cuda_sparse_3d_and_csr_on_device(dtype, rng, from_U_bound):
    from magma_wino.sparse import BatchedCSR

    m, r, pad = 2, 3, (1, 1, 0)
    x = rng.standard_normal((1, 8, 7, 6, 9)).astype(dtype)
    U = rng.standard_normal((64, 12, 8)).astype(dtype)
    Up, mask = pruning.prune_winograd(U, 0.2)
    csr = BatchedCSR.from_dense(Up, mask).to_device()
    plan = WinogradConv3d.from_winograd(csr=csr, r=r, padding=pad, m=m, backend="cuda")
    assert plan.uses_sparse_product
    y = host(plan(cp.asarray(x)))
    ref = winograd_conv_from_U(x.astype(np.float64), Up.astype(np.float64), m, r, pad)
    assert float(np.abs(y - ref).max()) <= from_U_bound(dtype, x, Up, m, r, pad)


def test_cuda_spatially_pruned_relu_layer(rng, check_direct):
    x, w, b = layer(rng, 1, 16, 16, (15, 15), 3, np.float32)
    plan = WinogradConv2d.from_spatial(cp.asarray(w), prune=0.3, bias=cp.asarray(b), padding=1, m=4,
                                       backend="cuda", relu="spatial")
    wp, _ = pruning.prune_spatial(w, 0.3)
    check_direct(host(plan(cp.asarray(x))), conv2d_direct(np.maximum(x, 0), wp, b, 1), np.float32, 4, 3, 16,
                 label="cuda from_spatial")


# --------------------------------------------------------------------------- array protocols


def test_cuda_array_interface_only_objects_are_accepted(rng, check_direct):
    x, w, b = layer(rng, 2, 8, 8, (11, 13), 3, np.float32)
    xd, wd, bd = (cp.asarray(a) for a in (x, w, b))
    y = conv2d(CudaArrayInterfaceOnly(xd), CudaArrayInterfaceOnly(wd), CudaArrayInterfaceOnly(bd), 1, m=4)
    check_direct(host(y), conv2d_direct(x, w, b, 1), np.float32, 4, 3, 8, label="__cuda_array_interface__")
    plan = WinogradConv2d(wd, bd, 1, m=4, backend="cuda")
    assert np.array_equal(host(plan(CudaArrayInterfaceOnly(xd))), host(plan(xd)))


def test_dlpack_only_objects_are_accepted(rng, check_direct):
    x, w, b = layer(rng, 2, 8, 8, (11, 13), 3, np.float64)
    xd, wd, bd = (cp.asarray(a) for a in (x, w, b))
    y = conv2d(DLPackOnly(xd), DLPackOnly(wd), DLPackOnly(bd), 1, m=4)
    check_direct(host(y), conv2d_direct(x, w, b, 1), np.float64, 4, 3, 8, label="DLPack")
    plan = WinogradConv2d(wd, bd, 1, m=4, backend="cuda")
    assert np.array_equal(host(plan(DLPackOnly(xd))), host(plan(xd)))


def test_pytorch_cuda_tensors_through_dlpack(rng, check_direct):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    x, w, b = layer(rng, 2, 8, 8, (11, 13), 3, np.float32)
    tx, tw, tb = (torch.from_numpy(a).cuda() for a in (x, w, b))
    ref = conv2d_direct(x, w, b, 1)
    y = conv2d(DLPackOnly(tx), DLPackOnly(tw), DLPackOnly(tb), 1, m=4, backend="cuda")
    check_direct(host(y), ref, np.float32, 4, 3, 8, label="torch via DLPack")
    y2 = conv2d(tx, tw, tb, 1, m=4)  # the tensors themselves (auto -> cuda)
    check_direct(host(y2), ref, np.float32, 4, 3, 8, label="torch tensors")


# --------------------------------------------------------------------------- streams, errors


def test_runs_on_the_current_non_default_stream(rng, check_direct):
    x, w, b = layer(rng, 2, 32, 32, (28, 28), 3, np.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        xd, wd, bd = (cp.asarray(a) for a in (x, w, b))
        plan = WinogradConv2d(wd, bd, 1, m=4, backend="cuda")
        ys = [plan(xd) for _ in range(3)]
        assert _backend.Engine("cuda").stream() == stream.ptr
    stream.synchronize()
    ref = conv2d_direct(x, w, b, 1)
    for y in ys:
        check_direct(host(y), ref, np.float32, 4, 3, 32, label="non-default stream")
    assert all(np.array_equal(host(ys[0]), host(y)) for y in ys[1:])


def test_host_arrays_given_to_the_cuda_backend_raise_type_error_naming_them(rng):
    x, w, b = layer(rng, 1, 4, 4, (8, 8), 3, np.float32)
    plan = WinogradConv2d(cp.asarray(w), cp.asarray(b), 1, m=4, backend="cuda")
    with pytest.raises(TypeError, match=r"^x: the cuda backend needs a device array .*numpy\.ndarray"):
        plan(x)
    with pytest.raises(TypeError, match=r"^x: the cuda backend needs a device array"):
        conv2d(x, cp.asarray(w), backend="cuda")
    with pytest.raises(TypeError, match=r"^w: the cuda backend needs a device array"):
        conv2d(cp.asarray(x), w, backend="cuda")
    with pytest.raises(TypeError, match=r"^out: the cuda backend needs a device array"):
        plan(cp.asarray(x), out=np.zeros((1, 4, 8, 8), np.float32))


def test_device_arrays_given_to_host_backends_raise_type_error(rng):
    x, w, _ = layer(rng, 1, 4, 4, (8, 8), 3, np.float32)
    for backend in ("numpy", "emulator"):
        plan = WinogradConv2d(w, m=2, backend=backend)
        with pytest.raises(TypeError, match=rf"^x: backend='{backend}' runs on host"):
            plan(cp.asarray(x))


def test_non_contiguous_device_array_raises_value_error_naming_x(rng):
    x, w, _ = layer(rng, 1, 4, 4, (8, 16), 3, np.float32)
    plan = WinogradConv2d(cp.asarray(w), m=2, backend="cuda")
    with pytest.raises(ValueError, match=r"^x must be C-contiguous"):
        plan(cp.asarray(x)[..., ::2])
    with pytest.raises(ValueError, match=r"^x must be C-contiguous"):
        plan(cp.asarray(x)[..., ::-1])


# --------------------------------------------------------------------------- streams, devices


def test_plan_built_on_one_stream_is_ordered_before_calls_on_another(rng, check_direct):
    x, w, b = layer(rng, 2, 32, 48, (20, 20), 3, np.float32)
    build = cp.cuda.Stream(non_blocking=True)
    with build:
        plan = WinogradConv2d(cp.asarray(w), cp.asarray(b), 1, m=4, backend="cuda")
    run = cp.cuda.Stream(non_blocking=True)
    with run:
        xd = cp.asarray(x)
        y = plan(xd)
    run.synchronize()
    check_direct(host(y), conv2d_direct(x, w, b, 1), np.float32, 4, 3, 32, label="cross-stream plan")


def test_foreign_temporary_input_gives_the_same_result_as_cupy(rng):
    x, w, b = layer(rng, 1, 16, 16, (12, 12), 3, np.float32)
    plan = WinogradConv2d(cp.asarray(w), cp.asarray(b), 1, m=2, backend="cuda")
    y_ref = host(plan(cp.asarray(x)))
    y = plan(DLPackOnly(cp.asarray(x)))  # the temporary is dropped by the caller at once
    cp.cuda.get_current_stream().synchronize()
    np.testing.assert_array_equal(host(y), y_ref)


def _gpu_count() -> int:
    try:
        return cp.cuda.runtime.getDeviceCount() if cp is not None else 0
    except Exception:  # no driver
        return 0


@pytest.mark.skipif(_gpu_count() < 2, reason="needs two GPUs")
def test_input_on_another_gpu_than_the_plan_is_rejected(rng):
    x, w, b = layer(rng, 1, 4, 4, (8, 8), 3, np.float32)
    with cp.cuda.Device(0):
        plan = WinogradConv2d(cp.asarray(w), padding=1, m=2, backend="cuda")
    with cp.cuda.Device(1):
        x1 = cp.asarray(x)
    with pytest.raises(ValueError, match="x is on GPU 1 but the plan's weights are on GPU 0"):
        plan(x1)
