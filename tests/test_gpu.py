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


# --------------------------------------------------------------------------- every kernel path


@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize(
    "K, size, config",
    [(64, (16, 16), "64x64"), (40, (16, 16), "32x64"), (8, (8, 8), "16x32")],
    ids=["64x64", "32x64", "16x32"],
)
def test_cuda_vectorized_gemm_paths(K, size, config, dtype, rng, check_direct):
    """C and P = N·tiles multiples of 4 (16-byte rows) reach the vector-load GEMM of each
    tile configuration: K >= 64 and P >= 64 the 64x64 tile, 32 <= K < 64 the 32x64 tile,
    smaller layers the 16x32 tile (gemm_batched in kernels/gemm_batched.cuh)."""
    x, w, b = layer(rng, 1, 16, K, size, 3, dtype)
    P = (size[0] // 2) * (size[1] // 2)
    assert P % 4 == 0 and (P >= 64) == (config != "16x32")
    plan = WinogradConv2d(cp.asarray(w), cp.asarray(b), 1, m=2)
    xd = cp.asarray(x)
    check_direct(host(plan(xd)), conv2d_direct(x, w, b, 1), dtype, 2, 3, 16, label=f"vector GEMM {config}")
    # The same V one element off 16-byte alignment takes the scalar loads of that tile.
    V = plan.transform_input(xd)
    Vv = cp.empty(V.size + 1, dtype=dtype)[1:].reshape(V.shape)
    Vv[...] = V
    y = plan.transform_output(plan.multiply(Vv), x.shape)
    check_direct(host(y), conv2d_direct(x, w, b, 1), dtype, 2, 3, 16, label=f"scalar GEMM {config}")


def test_cuda_build_has_code_for_this_gpu():
    cc = str(cp.cuda.Device().compute_capability)
    arch = _backend.extension("cuda").build_info()["arch"]
    assert _backend.build_runs_on(arch, (int(cc[:-1]), int(cc[-1]))), (arch, cc)


def test_cuda_large_layer_at_the_int32_element_limit(rng, winograd_tol):
    """V and M just under 2^31 elements (F(2,3): 16·64·P with P = 127·128² tiles), where an
    offset computed in 32 bits without care would wrap: the first and the last image must
    match the same plan run on that image alone.  Two images more pass the limit, and the
    C layer must refuse the layer by name rather than fault."""
    from magma_wino.errors import UnsupportedError

    N, C, K, H = 127, 64, 64, 256
    free, _ = cp.cuda.Device().mem_info
    if free < 30 * 2**30:
        pytest.skip(f"needs ~30 GiB of free GPU memory, {free / 2**30:.0f} GiB free")
    assert 16 * C * N * (H // 2) ** 2 < 2**31 < 16 * C * (N + 2) * (H // 2) ** 2
    plan = WinogradConv2d(cp.asarray(rng.standard_normal((K, C, 3, 3)).astype(np.float32)), padding=1, m=2)
    x = cp.random.default_rng(1).standard_normal((N + 2, C, H, H), dtype=cp.float32)
    y = plan(x[:N])
    tol = winograd_tol(np.float32, 2, 3, C * 9)
    for n in (0, N - 1):
        alone = plan(x[n:n + 1].copy())
        err = float(cp.abs(y[n] - alone[0]).max() / cp.abs(alone).max())
        assert err <= tol, (n, err, tol)
    del y
    with pytest.raises(UnsupportedError, match=r"layer too large: the Winograd-domain arrays .* fewer than 2\^31 elements"):
        plan(x)
    del x


# --------------------------------------------------------------------------- threads, streams


def test_cuda_calls_from_several_threads_and_streams(rng, check_direct):
    """A plan built in one thread, called from four others, each on its own stream or on its
    per-thread default stream (same handle in every thread, a different stream in each)."""
    import threading

    x, w, b = layer(rng, 2, 16, 24, (14, 14), 3, np.float32)
    plan = WinogradConv2d(cp.asarray(w), cp.asarray(b), 1, m=4)
    ref = conv2d_direct(x, w, b, 1)
    results, errors = {}, []

    def work(i):
        try:
            stream = cp.cuda.Stream(non_blocking=True) if i % 2 else cp.cuda.Stream.ptds
            with stream:
                xd = cp.asarray(x)
                results[i] = host(plan(xd))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, y in results.items():
        check_direct(y, ref, np.float32, 4, 3, 16, label=f"thread {i}")


def test_cuda_dropped_plan_does_not_recycle_weights_under_pending_calls(rng, check_direct):
    """Calls on streams A and B, then the plan is dropped and the home stream reuses the pool
    memory at once: both calls must still see the plan's U (the home stream waits for both)."""
    x, w, b = layer(rng, 2, 32, 48, (20, 20), 3, np.float32)
    plan = WinogradConv2d(cp.asarray(w), cp.asarray(b), 1, m=4)
    a, bs = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    ys = []
    for s in (a, bs):
        with s:
            ys.append(plan(cp.asarray(x)))
    del plan
    junk = [cp.full(1 << 20, cp.nan, dtype=cp.float32) for _ in range(8)]  # take the freed blocks
    a.synchronize()
    bs.synchronize()
    for y in ys:
        check_direct(host(y), conv2d_direct(x, w, b, 1), np.float32, 4, 3, 32, label="after drop")
    del junk


def test_cuda_foreign_temporary_weights_are_kept_alive(rng):
    x, w, b = layer(rng, 1, 16, 16, (12, 12), 3, np.float32)
    ref = host(WinogradConv2d(cp.asarray(w), cp.asarray(b), 1, m=2)(cp.asarray(x)))
    plan = WinogradConv2d(DLPackOnly(cp.asarray(w)), DLPackOnly(cp.asarray(b)), 1, m=2)
    np.testing.assert_array_equal(host(plan(cp.asarray(x))), ref)


def test_cuda_pytorch_tensors_with_pruning(rng, check_direct, from_U_bound):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device")
    x, w, b = layer(rng, 1, 8, 12, (10, 10), 3, np.float32)
    tx, tw, tb = (torch.from_numpy(a).cuda() for a in (x, w, b))
    plan = WinogradConv2d.from_spatial(tw, prune=0.5, bias=tb, padding=1, m=2)
    wp, _ = pruning.prune_spatial(w, 0.5)
    check_direct(host(plan(tx)), conv2d_direct(x, wp, b, 1), np.float32, 2, 3, 8, label="torch from_spatial")
    U = WinogradConv2d(w, m=2, backend="numpy").U
    mask = np.abs(U) > np.median(np.abs(U))
    sp = WinogradConv2d.from_winograd(torch.from_numpy(U).cuda(), 3, mask=torch.from_numpy(mask).cuda(),
                                      bias=tb, padding=1, m=2, sparse=True)
    y_ref = winograd_conv_from_U(x, np.where(mask, U, 0).astype(np.float64), 2, 3, 1, b)
    err = np.abs(host(sp(tx)) - y_ref).max()
    assert err <= from_U_bound(np.float32, x, np.where(mask, U, 0), 2, 3, 1), err


# --------------------------------------------------------------------------- two GPUs


@pytest.mark.skipif(_gpu_count() < 2, reason="needs two GPUs")
def test_plan_lives_on_the_gpu_of_its_weights(rng, check_direct):
    """Weights on GPU 1 while GPU 0 is current: the plan is built and runs on GPU 1."""
    x, w, b = layer(rng, 1, 4, 4, (8, 8), 3, np.float32)
    with cp.cuda.Device(1):
        w1, b1, x1 = cp.asarray(w), cp.asarray(b), cp.asarray(x)
        U1 = cp.asarray(WinogradConv2d(w, m=2, backend="numpy").U)
    with cp.cuda.Device(0):
        plan = WinogradConv2d(w1, b1, padding=1, m=2)
        assert plan._device == 1 and plan.U.device.id == 1
        y = plan(x1)
        assert y.device.id == 1
        check_direct(host(y), conv2d_direct(x, w, b, 1), np.float32, 2, 3, 4, label="weights on GPU 1")
        with pytest.raises(ValueError, match="bias is on GPU 0 but the plan's weights are on GPU 1"):
            WinogradConv2d(w1, cp.asarray(b), padding=1, m=2)
        sp = WinogradConv2d.from_winograd(U1, 3, prune=0.5, bias=b1, padding=1, m=2, sparse=True)
        assert sp.csr.values.device.id == 1 and sp.csr.row_ptr.device.id == 1
        assert sp(x1).device.id == 1
        with pytest.raises(ValueError, match="bias is on GPU 0 but the plan's weights are on GPU 1"):
            WinogradConv2d.from_winograd(U1, 3, bias=cp.asarray(b), padding=1, m=2)


# --------------------------------------------------------------------------- precision modes


@pytest.mark.parametrize("mode", ["fp32", "tf32x3", "tf32", "fp16", "bf16"])
@pytest.mark.parametrize("m", [2, 4])
def test_cuda_every_precision_mode_within_its_tolerance(mode, m, rng):
    from magma_wino import precision
    from magma_wino.accuracy import rel_err

    x, w, _ = layer(rng, 2, 40, 36, (13, 11), 3, np.float32)
    ref = conv2d_direct(x.astype(np.float64), w.astype(np.float64), padding=1)
    plan = WinogradConv2d(cp.asarray(w), padding=1, m=m, backend="cuda", precision=mode, allow_inaccurate=True)
    assert plan.U.dtype == precision.storage_dtype(mode, np.float32)
    y = plan(cp.asarray(x))
    assert y.dtype == np.float32
    assert rel_err(host(y), ref) <= precision.tolerance(mode, m, 3, 40 * 9)
    # the numpy backend's emulation of the same mode is as accurate (same rounded operands)
    y_np = conv2d(x, w, padding=1, m=m, backend="numpy", precision=mode, allow_inaccurate=True)
    assert rel_err(y_np, ref) <= precision.tolerance(mode, m, 3, 40 * 9)


def test_cuda_float16_arrays_in_auto_run_fp16_and_return_float16(rng):
    from magma_wino import precision
    from magma_wino.accuracy import rel_err

    x, w, b = layer(rng, 1, 24, 16, (12, 12), 3, np.float16)
    ref = conv2d_direct(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), padding=1)
    plan = WinogradConv2d(cp.asarray(w), cp.asarray(b), padding=1, m=2, backend="cuda")
    assert plan.precision == ("fp16" if int(cp.cuda.Device().compute_capability) >= 80 else "fp32")
    y = plan(cp.asarray(x))
    assert y.dtype == np.float16
    assert rel_err(host(y).astype(np.float64), ref) <= precision.tolerance(plan.precision, 2, 3, 24 * 9) + 2.0**-11


def test_cuda_from_winograd_dense_bf16_keeps_U_on_the_device(rng):
    from magma_wino import precision
    from magma_wino.accuracy import rel_err
    from magma_wino.reference import filter_transform

    x, w, _ = layer(rng, 1, 12, 8, (10, 10), 3, np.float32)
    U = filter_transform(w.astype(np.float64), 2).astype(np.float32)
    plan = WinogradConv2d.from_winograd(cp.asarray(U), 3, m=2, padding=1, backend="cuda", sparse=False,
                                        precision="bf16", allow_inaccurate=True)
    assert isinstance(plan.U, cp.ndarray) and plan.U.dtype == np.uint16
    np.testing.assert_array_equal(host(plan.U), precision.to_storage(U, "bf16"))
    ref = conv2d_direct(x.astype(np.float64), w.astype(np.float64), padding=1)
    assert rel_err(host(plan(cp.asarray(x))), ref) <= precision.tolerance("bf16", 2, 3, 12 * 9)


# --------------------------------------------------------------------------- the fused layer
#
# kernels/winograd_fused.cuh on the GPU (the same checks as tests/test_fused.py on the emulator):
# against the float64 direct convolution within precision.tolerance of the mode, and bitwise
# against the three-phase path of the same plan where split-K does not split (the kernel runs the
# transforms' tile code and the products' instruction per k step in the same k order; the claim
# of winograd_fused.cuh's header).  Shapes off every block multiple: C off the chunk (8 / 16 / 4),
# K off the block (32 / 16 / 8) and past one, P past one block of tiles, H, W off m.

FUSED_MODES = ["fp32", "tf32x3", "tf32", "fp16", "bf16", "fp64"]


def _fused_or_skip(mode: str) -> None:
    """The tensor-core fused kernels need sm_80+ (fp32 SIMT runs everywhere)."""
    if mode != "fp32" and int(cp.cuda.Device().compute_capability) < 80:
        pytest.skip(f"fused {mode} needs compute capability 8.0+ (tensor cores, cp.async)")


def _fused_plan(w: np.ndarray, b: np.ndarray | None, m: int, mode: str, **kwargs) -> WinogradConv2d:
    """A fused=True plan on the device; a skip (with the C layer's reason) where this GPU's opt-in
    shared memory is below the configuration's (sm_86 / sm_89: 99 KiB), any other refusal fails."""
    try:
        return WinogradConv2d(cp.asarray(w), None if b is None else cp.asarray(b), padding=1, m=m, backend="cuda",
                              precision=mode, allow_inaccurate=True, fused=True, **kwargs)
    except ValueError as exc:
        if "bytes of shared memory per block" in str(exc):
            pytest.skip(f"this GPU: {exc}")
        raise


def _nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def _fused_run(plan, x: np.ndarray, layout: str) -> np.ndarray:
    """plan(x) on the device with y pre-filled with NaN; y on the host, NCHW."""
    xin = _nhwc(x) if layout == "NHWC" else x
    out = cp.full(plan.out_shape(xin.shape), cp.nan, dtype=x.dtype)
    y = plan(cp.asarray(xin), out=out)
    assert y is out
    yh = host(y)
    assert not np.isnan(yh).any(), "elements of y left unwritten"
    return yh.transpose(0, 3, 1, 2) if layout == "NHWC" else yh


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("mode", FUSED_MODES)
@pytest.mark.parametrize("m", [2, 4])
def test_cuda_fused_matches_float64_direct_conv(m, mode, layout, rng):
    from magma_wino import precision
    from magma_wino.accuracy import rel_err

    _fused_or_skip(mode)
    dtype = np.float64 if mode == "fp64" else np.float32
    N, C, K, H, W = 2, 21, 37, 13, 11
    x, w, b = layer(rng, N, C, K, (H, W), 3, dtype)
    plan = _fused_plan(w, b, m, mode, layout=layout)
    xshape = _nhwc(x).shape if layout == "NHWC" else x.shape
    assert plan.algorithm_for(xshape) == "fused"
    assert plan.workspace_bytes(xshape) == 0  # V and M never leave the SM
    assert plan.U.dtype == precision.storage_dtype(mode, dtype)
    y = _fused_run(plan, x, layout)
    assert plan.algorithm == "fused"
    ref = conv2d_direct(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1)
    err, tol = rel_err(y, ref), precision.tolerance(mode, m, 3, C * 9)
    assert err <= tol, f"fused F({m},3) {mode} {layout}: rel_err {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("relu", [None, "spatial", "winograd"])
@pytest.mark.parametrize("mode", FUSED_MODES)
@pytest.mark.parametrize("m", [2, 4])
def test_cuda_fused_is_bitwise_the_three_phase_path(m, mode, relu, rng):
    _fused_or_skip(mode)
    dtype = np.float64 if mode == "fp64" else np.float32
    x, w, b = layer(rng, 1, 13, 35, (10, 13), 3, dtype)  # C = 13: one k slice, too short to split
    kw = {"relu": relu, "output_relu": relu == "spatial"}
    plans = {True: _fused_plan(w, b, m, mode, **kw),
             False: WinogradConv2d(cp.asarray(w), cp.asarray(b), padding=1, m=m, backend="cuda", precision=mode,
                                   allow_inaccurate=True, fused=False, **kw)}
    assert plans[False].split_k_workspace_bytes(x.shape) == 0, "the comparison needs an unsplit product"
    y_fused = _fused_run(plans[True], x, "NCHW")
    y_three = _fused_run(plans[False], x, "NCHW")
    assert (plans[True].algorithm, plans[False].algorithm) == ("fused", "three-phase")
    bad = np.argwhere(y_fused != y_three)
    assert bad.size == 0, (f"F({m},3) {mode} relu {relu}: {len(bad)} of {y_fused.size} differ, first at "
                           f"{tuple(bad[0])}: {y_fused[tuple(bad[0])]!r} != {y_three[tuple(bad[0])]!r}")


@pytest.mark.parametrize("mode", ["fp32", "tf32x3", "bf16", "fp64"])
def test_cuda_fused_nhwc_is_the_nchw_result_transposed(mode, rng):
    _fused_or_skip(mode)
    dtype = np.float64 if mode == "fp64" else np.float32
    x, w, b = layer(rng, 2, 9, 13, (7, 12), 3, dtype)
    ys = [_fused_run(_fused_plan(w, b, 4, mode, layout=layout), x, layout) for layout in ("NCHW", "NHWC")]
    np.testing.assert_array_equal(ys[0], ys[1])


_SPIN_THEN_COPY = r"""
extern "C" __global__ void spin_then_copy(const float* src, float* dst, long long n, long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    dst[i] = src[i];
}
"""


def test_cuda_fused_runs_on_the_current_stream(rng):
    # On a non-blocking stream, a kernel that spins (~10^8 cycles) and then writes x is queued
    # before the fused layer: a fused kernel launched on any other stream would read x before it
    # is written (zeros) and give a different y.  An ordering check, not a timing one.
    _fused_or_skip("tf32x3")
    x, w, b = layer(rng, 2, 24, 40, (14, 14), 3, np.float32)
    plan = _fused_plan(w, b, 4, "tf32x3")
    want = _fused_run(plan, x, "NCHW")
    spin = cp.RawKernel(_SPIN_THEN_COPY, "spin_then_copy")
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        src = cp.asarray(x)
        xd = cp.zeros_like(src)
        spin((1,), (128,), (src, xd, np.int64(src.size), np.int64(10**8)))
        y = plan(xd)
        assert _backend.Engine("cuda").stream() == stream.ptr
        yh = cp.asnumpy(y, stream=stream)
    stream.synchronize()
    assert plan.algorithm == "fused"
    np.testing.assert_array_equal(yh, want)


@pytest.mark.parametrize("mode", ["fp16", "bf16"])
def test_cuda_fused_16bit_U_stays_16bit_on_the_device(mode, rng):
    from magma_wino import precision

    _fused_or_skip(mode)
    x, w, _ = layer(rng, 1, 16, 24, (9, 9), 3, np.float32)  # C = 16: U rows are 16-byte vectors
    plan = _fused_plan(w, None, 2, mode, output_relu=True)
    assert isinstance(plan.U, cp.ndarray) and plan.U.dtype == precision.storage_dtype(mode, np.float32)
    y = _fused_run(plan, x, "NCHW")
    ref = np.maximum(conv2d_direct(x.astype(np.float64), w.astype(np.float64), padding=1), 0)
    assert (y >= 0).all()
    from magma_wino.accuracy import rel_err

    assert rel_err(y, ref) <= precision.tolerance(mode, 2, 3, 16 * 9)


@pytest.mark.parametrize("precision", ["fp32", "tf32x3", "fp64"])
@pytest.mark.parametrize("kind", ["spatial", "winograd-relu-masked", "csr", "nhwc"])
def test_backward_on_gpu_matches_float64_gradients(kind, precision):
    """plan.backward on the cuda backend (adjoint kernels, GEMMs, the dx-by-forward path) against
    the float64 gradients: the direct convolution's, or the adjoint formula for U."""
    from magma_wino import accuracy, reference
    from magma_wino import precision as _precision

    rng = np.random.default_rng(40)
    dt = np.float64 if precision == "fp64" else np.float32
    m, r, K, C = 4, 3, 19, 13
    x64 = rng.standard_normal((2, C, 17, 15)).astype(dt).astype(np.float64)
    w64 = rng.standard_normal((K, C, r, r)).astype(dt).astype(np.float64)
    layout = "NHWC" if kind == "nhwc" else None
    if kind in ("spatial", "nhwc"):
        plan = WinogradConv2d(cp.asarray(w64.astype(dt)), None, 1, m, "cuda", precision=precision, layout=layout)
    else:
        U = cp.asarray(reference.filter_transform(w64, m).astype(dt))
        mask = rng.random(U.shape) < 0.4
        plan = WinogradConv2d.from_winograd(U, r, mask=mask, padding=1, m=m, backend="cuda", precision=precision,
                                            relu="winograd" if kind != "csr" else None, sparse=kind == "csr")
    dy64 = rng.standard_normal((2, K, 17, 15)).astype(dt).astype(np.float64)
    xin, dyin = x64, dy64
    if layout:
        xin, dyin = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x64, dy64))
    g = plan.backward(cp.asarray(xin.astype(dt)), cp.asarray(dyin.astype(dt)))
    dx, dw = g.grad_input.get(), g.grad_weight.get()
    if layout:
        dx = dx.transpose(0, 3, 1, 2)
    if kind in ("spatial", "nhwc"):
        dx_ref, dw_ref = reference.conv_direct_backward(x64, w64, dy64, 1)
    else:
        Uh = plan.U.get().astype(np.float64)
        relu = kind != "csr"
        V = reference.input_transform(x64, m, r, 1, relu=relu)
        dM = reference.output_transform_adjoint(dy64, m, r)
        dw_ref = np.matmul(dM, V.transpose(0, 2, 1)) * mask
        dV = np.matmul(Uh.transpose(0, 2, 1), dM)
        dx_ref = reference.input_transform_adjoint(dV * (V > 0) if relu else dV, m, r, x64.shape, 1)
    P = plan._positions_and_tiles(xin.shape)[1]
    mode = plan._backward_precision
    assert accuracy.rel_err(dx, dx_ref) <= _precision.tolerance(mode, m, r, K * r * r)
    assert accuracy.rel_err(dw, dw_ref) <= _precision.tolerance(mode, m, r, P * r * r)
