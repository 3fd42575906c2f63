"""JAX binding: :func:`conv2d`, the Winograd layer as an XLA FFI custom call (``jax.ffi``).

On CPU the custom call runs the library's kernels through the emulator build of its C ABI
(``libmagma_wino_emu``: the CUDA kernels' source on XLA's host buffers); it works under
``jax.jit`` and is differentiable (``jax.custom_vjp``: the data and weight gradients are a
second custom call running the adjoint kernels, the bias gradient a sum).  The handlers are
compiled once, on first use (:mod:`magma_wino.jax._build`).  Needs the ``[jax]`` extra.

Scope: 2D, stride 1, square r×r filters, NCHW, float32 / float64, any zero padding per side
(every form of :func:`magma_wino._checks.as_padding`).  GPU arrays are refused for now (the
CUDA library is built, its XLA GPU handler is not: docs/jax.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _checks

__all__ = ["conv2d"]


def _pads(padding: Any, r: int) -> tuple[int, int, int, int]:
    (top, bottom), (left, right) = _checks.as_padding(padding, 2, r)
    return top, bottom, left, right


def _attrs(m: int, pads: tuple[int, int, int, int]) -> dict[str, Any]:
    return dict(m=np.int64(m), top=np.int64(pads[0]), bottom=np.int64(pads[1]), left=np.int64(pads[2]),
                right=np.int64(pads[3]))


def _forward(x, w, b, m, pads):
    import jax

    from . import _build

    _build.library()
    H, W = x.shape[2] + pads[0] + pads[1] - w.shape[2] + 1, x.shape[3] + pads[2] + pads[3] - w.shape[3] + 1
    out = jax.ShapeDtypeStruct((x.shape[0], w.shape[0], H, W), x.dtype)
    return jax.ffi.ffi_call("magma_wino_conv2d_fwd", out, vmap_method="sequential")(x, w, b, **_attrs(m, pads))


def _backward(x, w, dy, m, pads):
    import jax

    from . import _build

    _build.library()
    shapes = (jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct(w.shape, w.dtype))
    return jax.ffi.ffi_call("magma_wino_conv2d_bwd", shapes, vmap_method="sequential")(x, w, dy, **_attrs(m, pads))


def conv2d(x: Any, w: Any, bias: Any = None, padding: Any = 0, *, m: int = 4) -> Any:
    """y = conv(x, w) + bias by Winograd F(m×m, r×r), as an XLA custom call (CPU).

    Args:
        x: N×C×H×W JAX array, float32 or float64.
        w: K×C×r×r of x's dtype.
        bias: optional (K,).
        padding: zero padding, any size per side (an int, (pad_h, pad_w), ((top, bottom),
            (left, right)), (left, right, top, bottom), "same", "valid").
        m: output tile size (specialised kernels F(2,3), F(4,3), F(6,3), F(2,5); others the
            generic ones, α = m + r − 1 ≤ 16).

    Returns:
        y, N×K×Ho×Wo, differentiable in x, w and bias (``jax.grad``), under ``jax.jit``.
    """
    import jax.numpy as jnp

    for name, a in (("x", x), ("w", w)):
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise TypeError(f"{name} must be a JAX array, got {type(a).__name__}")
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise ValueError(f"x must be N×C×H×W and w K×C×r×r, got shapes {tuple(x.shape)} and {tuple(w.shape)}")
    if w.shape[2] != w.shape[3]:
        raise ValueError(f"w must have a square r×r filter, got {tuple(w.shape[2:])}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"channel mismatch: x has C = {x.shape[1]} channels but w has C = {w.shape[1]}")
    if np.dtype(x.dtype) not in (np.float32, np.float64) or np.dtype(w.dtype) != np.dtype(x.dtype):
        raise TypeError(f"x and w must both be float32 or both float64, got {x.dtype} and {w.dtype}")
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be an int >= 1, got {m!r}")
    pads = _pads(padding, int(w.shape[2]))
    _checks.out_spatial(tuple(x.shape[2:]), int(w.shape[2]), ((pads[0], pads[1]), (pads[2], pads[3])))
    if bias is None:
        bias = jnp.zeros((w.shape[0],), x.dtype)
    elif tuple(bias.shape) != (w.shape[0],) or np.dtype(bias.dtype) != np.dtype(x.dtype):
        raise ValueError(f"bias must be ({w.shape[0]},) of x's dtype, got {tuple(bias.shape)} {bias.dtype}")
    return _conv(m, pads)(x, w, bias)


def _conv(m: int, pads: tuple[int, int, int, int]):
    """The differentiable custom call for one (m, padding): the configuration is static."""
    import jax
    import jax.numpy as jnp

    key = (m, pads)
    fn = _CONVS.get(key)
    if fn is None:
        @jax.custom_vjp
        def fn(x, w, b):
            return _forward(x, w, b, m, pads)

        def fwd(x, w, b):
            return _forward(x, w, b, m, pads), (x, w)

        def bwd(res, dy):
            x, w = res
            dx, dw = _backward(x, w, dy, m, pads)
            return dx, dw, jnp.sum(dy, axis=(0, 2, 3))

        fn.defvjp(fwd, bwd)
        _CONVS[key] = fn
    return fn


_CONVS: dict[tuple[int, tuple[int, int, int, int]], Any] = {}
