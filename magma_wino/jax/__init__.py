"""JAX binding: :func:`conv2d` and :func:`conv3d`, the Winograd layer as XLA FFI custom calls.

The layer is composed in JAX from one custom call per entry of the C ABI — the filter, input
and output transforms, the batched products, and the three adjoint transforms for the
gradients (``magma_wino/jax/ffi_handlers.cpp``) — so XLA owns U, V and M as ordinary
intermediates, and the reshapes and transposes between the phases (the groups' block-diagonal
products, Uᵀ and Vᵀ of the backward) are XLA's own.  On XLA's CPU platform the calls run the
emulator build of the library (``libmagma_wino_emu``: the CUDA kernels' source on host
buffers); on its CUDA platform the CUDA library (``libmagma_wino``) on XLA's stream.  Works
under ``jax.jit`` and is differentiable (``jax.custom_vjp`` on the stride-1 layer: the adjoint
kernels; the phase gathers of strided and dilated layers are differentiated by JAX).

Everything :func:`magma_wino.conv2d` takes: any padding per side, stride, dilation, groups,
rectangular filters (by :mod:`magma_wino.decompose`), channels-last layouts, the precision
modes (docs/api.md, "Precision").  Needs the ``[jax]`` extra; docs/jax.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .. import precision as _precision
from .. import reference
from .._checks import check_bias
from ..decompose import decompose
from ..transforms import winograd

__all__ = ["conv2d", "conv3d"]

_LAYOUTS = {2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def conv2d(x: Any, w: Any, bias: Any = None, padding: Any = 0, *, stride: Any = 1, dilation: Any = 1,
           groups: int = 1, layout: str = "NCHW", m: int = 4, precision: str = "auto",
           allow_inaccurate: bool = False) -> Any:
    """y = conv(x, w) + bias by Winograd F(m×m, r×r), as XLA custom calls (PyTorch's semantics).

    Args:
        x: N×C×H×W JAX array (layout "NHWC": N×H×W×C), float32 or float64.
        w: K×(C/groups)×r_h×r_w of x's dtype (rectangular filters too).
        bias: optional (K,) of x's dtype.
        padding: zero padding, any size per side: an int, (pad_h, pad_w), ((top, bottom),
            (left, right)), (left, right, top, bottom) as ``torch.nn.functional.pad`` orders
            it, "same" (stride 1) or "valid".
        stride, dilation: an int or (h, w), as PyTorch (:mod:`magma_wino.decompose`).
        groups: grouped convolution (``groups = C``: depthwise), as PyTorch.
        layout: "NCHW" or "NHWC" (x N×H×W×C and y N×Ho×Wo×K; XLA transposes them around the
            channels-first kernels).
        m: output tile size (specialised kernels F(2,3), F(4,3), F(6,3), F(2,5); others the
            generic ones, α = m + r − 1 ≤ 16, r the filter size of the stride-1 layer run).
        precision: "auto", "fp32", "tf32x3", "tf32", "bf16", "fp16" (float32 data) or "fp64"
            (float64 data): what the products compute in; "auto" is tf32x3 for float32 (the
            emulator, and GPUs of compute capability 8.0+; fp32 on older ones) and fp64 for
            float64.
        allow_inaccurate: run a mode whose measured error for F(m, r) exceeds the usable limit.

    Returns:
        y, N×K×Ho×Wo (or N×Ho×Wo×K), of x's dtype: differentiable in x, w and bias
        (``jax.grad``), under ``jax.jit``, on XLA's CPU and CUDA platforms (the default
        backend's, ``jax.default_backend()``).

    Raises:
        ValueError / TypeError naming the argument for bad shapes, dtypes, layouts, padding,
        stride, dilation, groups, tiles or precision modes, before anything is traced.
    """
    return _conv(2, x, w, bias, padding, stride, dilation, groups, layout, m, precision, allow_inaccurate)


def conv3d(x: Any, w: Any, bias: Any = None, padding: Any = 0, *, stride: Any = 1, dilation: Any = 1,
           groups: int = 1, layout: str = "NCDHW", m: int = 2, precision: str = "auto",
           allow_inaccurate: bool = False) -> Any:
    """As :func:`conv2d`, one axis more: x N×C×D×H×W ("NDHWC": N×D×H×W×C), w K×(C/groups)×r_d×r_h×r_w
    (padding: 6 flat ints are (left, right, top, bottom, front, back)); F(2,3) and F(4,3) have
    specialised 3D kernels."""
    return _conv(3, x, w, bias, padding, stride, dilation, groups, layout, m, precision, allow_inaccurate)


def _conv(nd: int, x: Any, w: Any, bias: Any, padding: Any, stride: Any, dilation: Any, groups: Any,
          layout: Any, m: Any, precision: Any, allow_inaccurate: Any) -> Any:
    import jax.numpy as jnp

    for name, a in (("x", x), ("w", w)):
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise TypeError(f"{name} must be a JAX array, got {type(a).__name__}")
    first, last = _LAYOUTS[nd]
    if not isinstance(layout, str) or layout.upper() not in (first, last):
        raise ValueError(f"layout must be {first!r} or {last!r} for a {nd}D convolution, got {layout!r}")
    cl = layout.upper() == last
    if len(x.shape) != nd + 2 or len(w.shape) != nd + 2:
        want = "×".join(last if cl else first)
        raise ValueError(f"x must be {want} and w K×C×{'×'.join('r' * nd)}, got shapes {tuple(x.shape)} "
                         f"and {tuple(w.shape)}")
    dt = np.dtype(x.dtype)
    if dt not in (np.float32, np.float64) or np.dtype(w.dtype) != dt:
        raise TypeError(f"x and w must both be float32 or both float64, got {x.dtype} and {w.dtype}")
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be an int >= 1, got {m!r}")
    if cl:  # the FFI descriptor has no layout (channels first): XLA transposes x here and y at the end
        x = jnp.moveaxis(x, -1, 1)
    dec = decompose(nd, tuple(int(s) for s in w.shape[2:]), stride, padding, dilation, groups, rectangular=True)
    K, Cg = int(w.shape[0]), int(w.shape[1])
    if int(x.shape[1]) != Cg * dec.groups:
        per = f"C/groups = {Cg} with groups = {dec.groups}" if dec.groups != 1 else f"C = {Cg}"
        raise ValueError(f"channel mismatch: x has C = {x.shape[1]} channels but w has {per}")
    if K % dec.groups:
        raise ValueError(f"w: K = {K} output channels is not divisible by groups = {dec.groups}")
    in_spatial = tuple(int(s) for s in x.shape[2:])
    dec.out_spatial(in_spatial, "x")
    if bias is None:
        bias = jnp.zeros((K,), dt)
    else:
        check_bias(bias, K)
        if np.dtype(bias.dtype) != dt:
            raise TypeError(f"bias must have x's dtype {dt}, got {bias.dtype}")
    rs = dec.inner_kernel  # the inner filter per axis: a rectangular tile where they differ
    r = max(rs)
    if m + r - 1 > 16:
        raise ValueError(f"F({m}, {r}): alpha = m + r - 1 = {m + r - 1} exceeds 16, the kernels' limit; use a smaller m")
    platform, capability = _platform()
    mode = _precision.resolve(precision, dt, platform, int(m), r, nd, capability, allow_inaccurate)
    # per axis as the plans: F(m, r_i), F(1, 1) on an axis of one tap of a rectangular filter
    ms = reference.tile_m(int(m), rs)
    layer = _layer(nd, ms, rs, dec.inner_padding, dec.groups, mode)
    y = dec.outputs(layer(dec.inputs(x), w if dec.direct else dec.weights(w), bias), in_spatial)
    return jnp.moveaxis(y, 1, -1) if cl else y


def _platform() -> tuple[str, tuple[int, int] | None]:
    """The library backend of JAX's default platform, and the GPU's compute capability."""
    import jax

    name = jax.default_backend()
    if name == "cpu":
        return "emulator", None
    if name in ("gpu", "cuda"):
        cc = getattr(jax.devices()[0], "compute_capability", None)
        return "cuda", (tuple(int(v) for v in str(cc).split(".")[:2]) if cc else None)  # type: ignore[return-value]
    raise ValueError(f"magma_wino.jax runs on XLA's CPU and CUDA platforms, not on {name!r}")


# ---------------------------------------------------------------------- the stride-1 layer


def _call(target: str, shape: tuple[int, ...], dtype: Any, *args: Any, **attrs: Any) -> Any:
    import jax

    from . import _build

    _build.register()
    out = jax.ShapeDtypeStruct(tuple(int(s) for s in shape), dtype)
    return jax.ffi.ffi_call(f"magma_wino_{target}", out, vmap_method="sequential")(*args, **attrs)


@dataclass(frozen=True)
class _Layer:
    """The stride-1 grouped layer of one (tile, padding, groups, mode) as a differentiable
    function (x, w, b) -> y of JAX arrays: x N×C×spatial, w K×(C/g)×r_1×…; the tile F(m_i, r_i)
    per axis (``m``, ``r``: one entry per axis; square when they agree, else rectangular)."""

    nd: int
    m: tuple[int, ...]
    r: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    groups: int
    mode: str

    @property
    def square(self) -> bool:
        return len(set(zip(self.m, self.r))) == 1

    @property
    def positions(self) -> int:
        return math.prod(a + b - 1 for a, b in zip(self.m, self.r))

    @cached_property
    def generic(self) -> bool:
        from .. import _emu

        desc = _emu.ConvDesc(self.nd, self.m, self.r, 1, 1, 1, self.r, (0,) * self.nd)
        return not _emu.has_specialized_tile(desc)

    @cached_property
    def _matrices(self) -> dict[np.dtype, np.ndarray]:
        """Aᵀ, G, Bᵀ back to back per compute dtype (the generic and the adjoint kernels'); a
        rectangular tile: one set per axis."""
        axes = list(zip(self.m, self.r))[:1 if self.square else self.nd]
        packed = np.concatenate([a.ravel() for m, r in axes for a in winograd(m, r).matrices(np.float64)])
        return {np.dtype(t): packed.astype(t) for t in (np.float32, np.float64)}

    def _desc(self, N: int, C: int, K: int, spatial: tuple[int, ...], pads: Any = None) -> np.ndarray:
        pads = self.pads if pads is None else pads
        pad3 = list(pads) + [(0, 0)] * (3 - self.nd)
        size = list(spatial) + [0] * (3 - self.nd)
        axes = [0] * 6 if self.square else [*self.m, *[0] * (3 - self.nd), *self.r, *[0] * (3 - self.nd)]
        return np.array([self.nd, self.m[0], self.r[0], N, C, K, *size, *(lo for lo, _ in pad3),
                         *(hi for _, hi in pad3), *axes], np.int64)

    def _geometry(self, x: Any, w: Any) -> tuple[np.ndarray, np.ndarray, int, tuple[int, ...]]:
        """(the layer's desc, the filter transform's desc, P, the output's spatial size)."""
        N, C = (int(s) for s in x.shape[:2])
        K, Cg = (int(s) for s in w.shape[:2])
        spatial = tuple(int(s) for s in x.shape[2:])
        out = tuple(s + lo + hi - r + 1 for s, (lo, hi), r in zip(spatial, self.pads, self.r))
        P = N * math.prod(-(-o // m) for o, m in zip(out, self.m))
        fdesc = self._desc(1, Cg, K, self.r, ((0, 0),) * self.nd)  # one r_1×… "image"
        return self._desc(N, C, K, spatial), fdesc, P, out

    def _storage(self, dt: np.dtype) -> Any:
        import jax.numpy as jnp

        return {"fp16": jnp.float16, "bf16": jnp.bfloat16}.get(self.mode, dt)

    def forward(self, x: Any, w: Any, b: Any) -> Any:
        dt = np.dtype(x.dtype)
        desc, fdesc, P, out = self._geometry(x, w)
        N, C, K, Cg, g = int(x.shape[0]), int(x.shape[1]), int(w.shape[0]), int(w.shape[1]), self.groups
        A = self.positions
        mats, gen, sdt = self._matrices[dt], np.int64(self.generic), self._storage(dt)
        U = _call("filter_transform", (A, K, Cg), sdt, mats, w, desc=fdesc, generic=gen)
        V = _call("input_transform", (A, C, P), sdt, mats, x, desc=desc, generic=gen, relu=np.int64(0))
        # the groups' block-diagonal products: U (A, g·Kg, Cg) and V (A, g·Cg, P) are (A·g, Kg, Cg) and
        # (A·g, Cg, P) by a reshape, M (A·g, Kg, P) is (A, K, P) by another
        M = self._bmm(U.reshape(A * g, K // g, Cg), V.reshape(A * g, Cg, P), self.mode, dt).reshape(A, K, P)
        return _call("output_transform", (N, K, *out), dt, mats, M, b, desc=desc, generic=gen)

    def _bmm(self, A: Any, B: Any, mode: str, dt: np.dtype) -> Any:
        from .. import _emu

        return _call("gemm_batched", (A.shape[0], A.shape[1], B.shape[2]), dt, A, B,
                     precision=np.int64(_precision.ext_code(_emu, mode)))

    def backward(self, x: Any, w: Any, dy: Any) -> tuple[Any, Any, Any]:
        """(dx, dw, db): dM = the output adjoint of dy; dV = Uᵀ·dM and dU = dM·Vᵀ per group; dx, dw
        their input and filter adjoints (docs/backward.md, as the plans' backward).  The products
        run in the forward's mode, "fp32" for the 16-bit modes (float32 U and V, as the plans)."""
        dt = np.dtype(x.dtype)
        desc, fdesc, P, _ = self._geometry(x, w)
        C, K, Cg, g, A = int(x.shape[1]), int(w.shape[0]), int(w.shape[1]), self.groups, self.positions
        Kg = K // g
        mode = "fp32" if self.mode in _precision.HALF_MODES else self.mode
        mats, gen = self._matrices[dt], np.int64(self.generic)
        dM = _call("output_adjoint", (A, K, P), dt, mats, dy, desc=desc).reshape(A * g, Kg, P)
        U = _call("filter_transform", (A, K, Cg), dt, mats, w, desc=fdesc, generic=gen).reshape(A * g, Kg, Cg)
        dV = self._bmm(U.transpose(0, 2, 1), dM, mode, dt).reshape(A, C, P)
        dx = _call("input_adjoint", tuple(x.shape), dt, mats, dV, desc=desc)
        V = _call("input_transform", (A, C, P), dt, mats, x, desc=desc, generic=gen, relu=np.int64(0))
        dU = self._bmm(dM, V.reshape(A * g, Cg, P).transpose(0, 2, 1), mode, dt).reshape(A, K, Cg)
        dw = _call("filter_adjoint", tuple(w.shape), dt, mats, dU, desc=fdesc)
        return dx, dw, dy.sum(axis=(0, *range(2, 2 + self.nd)))

    @cached_property
    def _fn(self) -> Any:
        import jax

        @jax.custom_vjp
        def fn(x, w, b):
            return self.forward(x, w, b)

        fn.defvjp(lambda x, w, b: (self.forward(x, w, b), (x, w)), lambda res, dy: self.backward(*res, dy))
        return fn

    def __call__(self, x: Any, w: Any, b: Any) -> Any:
        return self._fn(x, w, b)


@functools.cache
def _layer(nd: int, m: tuple[int, ...], r: tuple[int, ...], pads: tuple[tuple[int, int], ...], groups: int,
           mode: str) -> _Layer:
    """One :class:`_Layer` (and its custom_vjp function) per configuration, for the process."""
    return _Layer(nd, m, r, pads, groups, mode)
