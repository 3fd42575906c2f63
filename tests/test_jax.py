"""magma_wino.jax: the Winograd layer as an XLA FFI custom call on CPU (the emulator library's
kernels), under jax.jit and jax.grad, against JAX's own convolution
(jax.lax.conv_general_dilated) in float64, with the library's tolerances for the layer's F(m, r)
and reduction lengths (the forward C·r², dx K·r², dw P·r²)."""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from magma_wino import accuracy, c_library  # noqa: E402

try:
    c_library.lib_dir()
except FileNotFoundError as exc:
    pytest.skip(str(exc), allow_module_level=True)

import magma_wino.jax as mj  # noqa: E402

DN = ("NCHW", "OIHW", "NCHW")


def _reference(x, w, b, pads):
    return jax.lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=DN) + b[None, :, None, None]


CASES = [  # m, r, x shape, K, padding (lo, hi) per axis: tile edges, asymmetric and large padding
    (4, 3, (2, 3, 9, 8), 4, ((1, 1), (1, 1))),
    (2, 3, (1, 4, 7, 10), 3, ((0, 2), (3, 0))),
    (6, 3, (1, 2, 13, 11), 5, ((1, 1), (1, 1))),
    (3, 2, (2, 2, 6, 7), 3, ((0, 1), (1, 0))),      # generic kernels (no specialised F(3, 2))
    (2, 5, (1, 3, 8, 9), 2, ((2, 2), (4, 4))),      # padding beyond r − 1 on one axis
]


@pytest.mark.parametrize("m,r,shape,K,pads", CASES)
def test_jit_conv2d_and_its_gradients_equal_jax_convolution_float64(m, r, shape, K, pads):
    rng = np.random.default_rng(50)
    x = jnp.asarray(rng.standard_normal(shape))
    w = jnp.asarray(rng.standard_normal((K, shape[1], r, r)))
    b = jnp.asarray(rng.standard_normal(K))
    y = jax.jit(lambda x, w, b: mj.conv2d(x, w, b, pads, m=m))(x, w, b)
    ref = _reference(x, w, b, pads)
    assert y.shape == ref.shape and y.dtype == jnp.float64
    assert accuracy.rel_err(np.asarray(y), np.asarray(ref)) <= accuracy.tolerance(np.float64, m, r, shape[1] * r * r)

    # a linear loss <y, g>: dy = g in both, so the gradients check the backward kernels alone
    # (a nonlinear loss would feed each side's own forward rounding into its dy)
    g = jnp.asarray(rng.standard_normal(ref.shape))

    def loss(conv):
        return lambda x, w, b: jnp.vdot(conv(x, w, b), g)

    got = jax.jit(jax.grad(loss(lambda x, w, b: mj.conv2d(x, w, b, pads, m=m)), argnums=(0, 1, 2)))(x, w, b)
    want = jax.grad(loss(lambda x, w, b: _reference(x, w, b, pads)), argnums=(0, 1, 2))(x, w, b)
    P = shape[0] * math.prod(math.ceil(o / m) for o in ref.shape[2:])
    tols = (accuracy.tolerance(np.float64, m, r, K * r * r), accuracy.tolerance(np.float64, m, r, P * r * r))
    for name, a, e, tol in zip(("x", "w"), got, want, tols):
        assert accuracy.rel_err(np.asarray(a), np.asarray(e)) <= tol, name
    np.testing.assert_allclose(np.asarray(got[2]), np.asarray(g.sum(axis=(0, 2, 3))), rtol=1e-13)  # dbias = Σ dy


def test_float32_conv2d_within_the_float32_tolerance_and_same_padding():
    rng = np.random.default_rng(51)
    x = jnp.asarray(rng.standard_normal((1, 8, 12, 12)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((6, 8, 3, 3)), jnp.float32)
    y = mj.conv2d(x, w, None, "same")
    ref = _reference(x.astype(jnp.float64), w.astype(jnp.float64), jnp.zeros(6), ((1, 1), (1, 1)))
    assert y.dtype == jnp.float32 and y.shape == (1, 6, 12, 12)
    assert accuracy.rel_err(np.asarray(y), np.asarray(ref)) <= accuracy.tolerance(np.float32, 4, 3, 72)


@pytest.mark.parametrize("args,exc,match", [
    (((1, 3, 8, 8), (4, 2, 3, 3)), ValueError, "channel mismatch"),
    (((1, 3, 8, 8), (4, 3, 3, 2)), ValueError, "square"),
    (((3, 8, 8), (4, 3, 3, 3)), ValueError, "N×C×H×W"),
    (((1, 3, 2, 8), (4, 3, 3, 3)), ValueError, "smaller than the filter"),
])
def test_bad_arguments_name_themselves(args, exc, match):
    x, w = jnp.zeros(args[0]), jnp.zeros(args[1])
    with pytest.raises(exc, match=match):
        mj.conv2d(x, w)
    with pytest.raises(TypeError, match="float32 or both float64"):
        mj.conv2d(jnp.zeros((1, 3, 8, 8), jnp.float32), jnp.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="m must be"):
        mj.conv2d(jnp.zeros((1, 3, 8, 8)), jnp.zeros((4, 3, 3, 3)), m=0)
