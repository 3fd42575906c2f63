"""magma_wino.jax: the Winograd layer composed of XLA FFI custom calls (one per C ABI entry), on
XLA's CPU platform (the emulator library's kernels), under jax.jit and jax.grad, against JAX's
own convolution (jax.lax.conv_general_dilated) in float64 — every convolution a CNN has (stride,
dilation, groups, rectangular filters, asymmetric padding, channels-last, 3D) — and in float32
for every precision mode.  Tolerances: the library's, of the stride-1 convolution the
decomposition runs (F(m, L), its reduction lengths: forward C·s'^nd·L^nd, dx K/g·L^nd, dw P·L^nd).
The CUDA handlers are compiled and linked against libmagma_wino here; they run in the gpu tests."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from magma_wino import accuracy, c_library  # noqa: E402
from magma_wino import precision as P_  # noqa: E402
from magma_wino.decompose import decompose  # noqa: E402

try:
    c_library.lib_dir()
except FileNotFoundError as exc:
    pytest.skip(str(exc), allow_module_level=True)

import magma_wino.jax as mj  # noqa: E402
from magma_wino.jax import _build  # noqa: E402


def _reference(x, w, b, stride, pads, dilation, groups):
    nd = w.ndim - 2
    dn = ("NCHW", "OIHW", "NCHW") if nd == 2 else ("NCDHW", "OIDHW", "NCDHW")
    y = jax.lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dilation, feature_group_count=groups,
                                     dimension_numbers=dn, precision=jax.lax.Precision.HIGHEST)
    return y + b.reshape((1, -1) + (1,) * nd)


def _tolerances(xshape, w, stride, pads, dilation, groups, m, dtype=np.float64, mode="fp64"):
    """(forward, dx, dw) tolerances of the stride-1 convolution the decomposition runs."""
    nd = w.ndim - 2
    dec = decompose(nd, tuple(w.shape[2:]), stride, pads, dilation, groups, rectangular=True)
    Ls, Ci = dec.inner_kernel, int(w.shape[1]) * dec.in_phases  # the tile per axis, as the binding runs it
    ms = tuple(1 if L == 1 and len(set(Ls)) > 1 else m for L in Ls)
    out = dec.out_spatial(tuple(xshape[2:]))
    tiles = xshape[0] * dec.out_phases * math.prod(
        math.ceil(o / (mi * ax.out_phases)) for o, ax, mi in zip(out, dec.axes, ms))
    taps = math.prod(Ls)
    tol = (lambda n: accuracy.tolerance(dtype, ms, Ls, n * taps, nd)) if mode == "fp64" else \
        (lambda n: P_.tolerance(mode, ms, Ls, n * taps, nd))
    return tol(Ci), tol(w.shape[0] // groups), tol(tiles)


def _check(rng, shape, K, kernel, m=4, stride=1, pads=None, dilation=1, groups=1, grads=True, layout=None):
    nd = len(kernel)
    stride_t, dil_t = (stride,) * nd if isinstance(stride, int) else stride, \
        (dilation,) * nd if isinstance(dilation, int) else dilation
    pads = ((1, 1),) * nd if pads is None else pads
    x = jnp.asarray(rng.standard_normal(shape))
    w = jnp.asarray(rng.standard_normal((K, shape[1] // groups, *kernel)))
    b = jnp.asarray(rng.standard_normal(K))
    conv = mj.conv2d if nd == 2 else mj.conv3d
    kw = dict(stride=stride, dilation=dilation, groups=groups, m=m)
    cl = layout is not None
    xin = jnp.moveaxis(x, 1, -1) if cl else x

    def mine(x, w, b):
        y = conv(x, w, b, pads, layout=layout, **kw) if cl else conv(x, w, b, pads, **kw)
        return jnp.moveaxis(y, -1, 1) if cl else y

    y = jax.jit(mine)(xin, w, b)
    ref = _reference(x, w, b, stride_t, pads, dil_t, groups)
    fwd, dx_tol, dw_tol = _tolerances(shape, w, stride, pads, dilation, groups, m)
    assert y.shape == ref.shape and y.dtype == jnp.float64
    assert accuracy.rel_err(np.asarray(y), np.asarray(ref)) <= fwd
    if not grads:
        return
    # a linear loss <y, g>: dy = g in both, so the gradients check the backward kernels alone
    # (a nonlinear loss would feed each side's own forward rounding into its dy)
    g = jnp.asarray(rng.standard_normal(ref.shape))
    got = jax.jit(jax.grad(lambda x, w, b: jnp.vdot(mine(x, w, b), g), argnums=(0, 1, 2)))(xin, w, b)
    want = jax.grad(lambda x, w, b: jnp.vdot(_reference(x, w, b, stride_t, pads, dil_t, groups), g),
                    argnums=(0, 1, 2))(x, w, b)
    dx = jnp.moveaxis(got[0], -1, 1) if cl else got[0]
    assert accuracy.rel_err(np.asarray(dx), np.asarray(want[0])) <= dx_tol, "dx"
    assert accuracy.rel_err(np.asarray(got[1]), np.asarray(want[1])) <= dw_tol, "dw"
    np.testing.assert_allclose(np.asarray(got[2]), np.asarray(want[2]), rtol=1e-12)  # dbias = Σ dy


STRIDE1 = [  # m, r, x shape, K, padding (lo, hi) per axis: tile edges, asymmetric and large padding
    (4, 3, (2, 3, 9, 8), 4, ((1, 1), (1, 1))),
    (2, 3, (1, 4, 7, 10), 3, ((0, 2), (3, 0))),
    (6, 3, (1, 2, 13, 11), 5, ((1, 1), (1, 1))),
    (3, 2, (2, 2, 6, 7), 3, ((0, 1), (1, 0))),      # generic kernels (no specialised F(3, 2))
    (2, 5, (1, 3, 8, 9), 2, ((2, 2), (4, 4))),      # padding beyond r − 1 on one axis
]


@pytest.mark.parametrize("m,r,shape,K,pads", STRIDE1)
def test_jit_conv2d_and_its_gradients_equal_jax_convolution_float64(m, r, shape, K, pads):
    _check(np.random.default_rng(50), shape, K, (r, r), m=m, pads=pads)


LAYERS = [  # what a CNN has, scaled down: (x shape, K, kernel, stride, padding, dilation, groups)
    ((2, 4, 11, 10), 6, (3, 3), 2, ((1, 1), (1, 1)), 1, 1),   # ResNet's stride-2 3×3
    ((1, 3, 9, 12), 4, (3, 3), 1, ((2, 2), (2, 2)), 2, 1),    # dilation 2
    ((1, 4, 8, 9), 6, (3, 3), 1, ((1, 1), (1, 1)), 1, 2),     # groups 2
    ((2, 4, 7, 8), 4, (3, 3), 1, ((1, 1), (1, 1)), 1, 4),     # depthwise
    ((1, 3, 8, 10), 4, (1, 3), 1, ((0, 0), (1, 1)), 1, 1),    # Inception's 1×3
    ((1, 3, 10, 8), 4, (3, 1), 1, ((1, 1), (0, 0)), 1, 1),    # and 3×1
    ((1, 2, 9, 11), 3, (3, 5), (2, 3), ((0, 2), (2, 1)), (1, 2), 1),  # everything at once
]


@pytest.mark.parametrize("shape,K,kernel,stride,pads,dilation,groups", LAYERS)
def test_strided_dilated_grouped_and_rectangular_layers_equal_jax_convolution(shape, K, kernel, stride, pads,
                                                                              dilation, groups):
    _check(np.random.default_rng(52), shape, K, kernel, stride=stride, pads=pads, dilation=dilation, groups=groups)


def test_channels_last_layout_gives_the_channels_first_result_transposed():
    _check(np.random.default_rng(53), (2, 3, 9, 8), 4, (3, 3), stride=2, layout="NHWC")


def test_conv3d_and_its_gradients_equal_jax_convolution():
    _check(np.random.default_rng(54), (1, 2, 5, 6, 7), 3, (3, 3, 3), m=2, pads=((1, 1), (0, 2), (1, 0)))


def test_conv3d_channels_last_stride_2_forward():
    _check(np.random.default_rng(55), (1, 2, 7, 6, 5), 3, (3, 3, 3), m=2, stride=2, layout="NDHWC", grads=False)


@pytest.mark.parametrize("mode", ["fp32", "tf32x3", "tf32", "bf16", "fp16"])
def test_float32_precision_modes_within_their_tolerance(mode):
    rng = np.random.default_rng(51)
    x = jnp.asarray(rng.standard_normal((1, 8, 10, 10)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((6, 8, 3, 3)), jnp.float32)
    # tf32 / bf16 / fp16 are refused for float32 data unless asked for (their error is above
    # float32's usable limit: the next test's case), then run within their own tolerance
    y = mj.conv2d(x, w, None, "same", m=2, precision=mode, allow_inaccurate=mode in ("tf32", "bf16", "fp16"))
    ref = _reference(x.astype(jnp.float64), w.astype(jnp.float64), jnp.zeros(6), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert y.dtype == jnp.float32 and y.shape == (1, 6, 10, 10)
    err = accuracy.rel_err(np.asarray(y), np.asarray(ref))
    assert err <= P_.tolerance(mode, 2, 3, 72)
    if mode in ("tf32", "bf16", "fp16"):  # the operand rounding is really there: not float32's error
        assert err > accuracy.tolerance(np.float32, 2, 3, 72) / 10


def test_float32_gradients_in_tf32x3_within_the_float32_tolerance():
    rng = np.random.default_rng(56)
    x = jnp.asarray(rng.standard_normal((1, 4, 9, 9)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((5, 4, 3, 3)), jnp.float32)
    g = jnp.asarray(rng.standard_normal((1, 5, 9, 9)), jnp.float32)
    got = jax.grad(lambda x, w: jnp.vdot(mj.conv2d(x, w, None, 1, precision="tf32x3"), g), argnums=(0, 1))(x, w)
    x64, w64, g64 = (a.astype(jnp.float64) for a in (x, w, g))
    want = jax.grad(lambda x, w: jnp.vdot(_reference(x, w, jnp.zeros(5), (1, 1), ((1, 1), (1, 1)), (1, 1), 1), g64),
                    argnums=(0, 1))(x64, w64)
    tiles = 9  # ⌈9/4⌉²
    for a, e, n in zip(got, want, (5, tiles)):
        assert a.dtype == jnp.float32
        assert accuracy.rel_err(np.asarray(a), np.asarray(e)) <= P_.tolerance("tf32x3", 4, 3, n * 9)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: mj.conv2d(jnp.zeros((1, 3, 8, 8)), jnp.zeros((4, 2, 3, 3))), ValueError, "channel mismatch"),
    (lambda: mj.conv2d(jnp.zeros((3, 8, 8)), jnp.zeros((4, 3, 3, 3))), ValueError, "N×C×H×W"),
    (lambda: mj.conv2d(jnp.zeros((1, 3, 2, 8)), jnp.zeros((4, 3, 3, 3))), ValueError, "smaller than the filter"),
    (lambda: mj.conv2d(jnp.zeros((1, 3, 8, 8), jnp.float32), jnp.zeros((4, 3, 3, 3))), TypeError,
     "float32 or both float64"),
    (lambda: mj.conv2d(jnp.zeros((1, 3, 8, 8)), jnp.zeros((4, 3, 3, 3)), m=0), ValueError, "m must be"),
    (lambda: mj.conv2d(jnp.zeros((1, 3, 8, 8)), jnp.zeros((4, 3, 3, 3)), m=15), ValueError, "exceeds 16"),
    (lambda: mj.conv2d(jnp.zeros((1, 3, 8, 8)), jnp.zeros((4, 3, 3, 3)), layout="NCDHW"), ValueError, "layout"),
    (lambda: mj.conv2d(jnp.zeros((1, 4, 8, 8)), jnp.zeros((6, 2, 3, 3)), groups=3), ValueError, "groups"),
    (lambda: mj.conv2d(jnp.zeros((1, 3, 8, 8)), jnp.zeros((4, 3, 3, 3)), stride=0), ValueError, "stride"),
    (lambda: mj.conv2d(jnp.zeros((1, 3, 8, 8)), jnp.zeros((4, 3, 3, 3)), precision="tf32"), ValueError,
     "does not apply to float64"),
    (lambda: mj.conv2d(jnp.zeros((1, 3, 8, 8)), jnp.zeros((4, 3, 3, 3)), jnp.zeros(5)), ValueError, "bias"),
    (lambda: mj.conv2d(jnp.zeros((1, 3, 8, 8), jnp.float32), jnp.zeros((4, 3, 3, 3), jnp.float32), precision="bf16"),
     ValueError, "too inaccurate"),
    (lambda: mj.conv2d(np.zeros((1, 3, 8, 8)).tolist(), jnp.zeros((4, 3, 3, 3))), TypeError, "JAX array"),
])
def test_bad_arguments_name_themselves(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_a_bad_buffer_reaching_a_handler_is_an_error_naming_it_not_an_access_outside_it():
    # the handlers check every size against the descriptor again (a caller of the custom calls
    # other than magma_wino.jax): a V one element short is refused with the sizes
    from magma_wino.jax import _call

    _build.register()
    desc = np.array([2, 4, 3, 1, 2, 2, 6, 6, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0], np.int64)
    x = jnp.zeros((1, 2, 6, 6))
    with pytest.raises(Exception, match="V has 287 elements, expected 288"):
        _call("input_transform", (287,), jnp.float64, jnp.zeros(1), x, desc=desc, generic=np.int64(0),
              relu=np.int64(0)).block_until_ready()


def _symbols(path, *flags):
    return subprocess.run(["nm", "-D", *flags, str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("nm") is None, reason="no nm")
def test_cuda_handlers_build_and_link_against_the_cuda_library(tmp_path):
    # built here without a GPU (they need no CUDA header: XLA's stream is passed through as it is);
    # they run on a GPU in the gpu tests (tools/device_check.sh)
    if not (c_library.lib_dir() / "libmagma_wino.so").exists():
        pytest.skip("the CUDA library was not built (no nvcc at install)")
    out = tmp_path / "handlers_cuda.so"
    res = subprocess.run(_build.command("cuda", out), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    defined = _symbols(out, "--defined-only")
    for name in _build.ENTRIES.values():
        assert f"MwJax{name}Cuda" in defined and f"MwJax{name}Cpu" not in defined
    needed = subprocess.run(["readelf", "-d", str(out)], capture_output=True, text=True).stdout
    assert "libmagma_wino.so.0" in needed and "libmagma_wino_emu" not in needed
    assert " U mw_gemm_batched_ex" in _symbols(out, "--undefined-only")


@pytest.mark.gpu
def test_on_the_gpu_the_cuda_handlers_equal_jax_convolution():
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        pytest.skip("JAX has no GPU backend here (jax[cuda] and a GPU are needed)")
    rng = np.random.default_rng(57)
    with jax.default_device(gpus[0]):
        _check(rng, (2, 4, 11, 10), 6, (3, 3), stride=2)
