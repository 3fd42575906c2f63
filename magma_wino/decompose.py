"""Stride, dilation and rectangular filters as one stride-1 Winograd convolution.

The Winograd kernels compute stride-1 convolutions with a square (cubic) r×r filter.  Every
other convolution a CNN has is rewritten here, exactly, as *one* such convolution on a
re-indexed input — one plan, one set of launches, no Python loop over phases:

Per spatial axis, with the input zero-padded to ``xpad`` (``lo`` zeros before, ``hi`` after),
filter taps ``w[k]`` (k < r), stride s and dilation d, PyTorch's convolution is

    y[i] = Σ_k xpad[s·i + d·k] · w[k],        Ho = ⌊(H + lo + hi − d·(r − 1) − 1) / s⌋ + 1.

Let g = gcd(s, d), P = d / g and s' = s / g.  Writing the output index i = P·j + b
(b < P: an *output phase*) and the tap k = s'·q + a (a < s': an *input phase*):

    y[P·j + b] = Σ_a Σ_q  X[b, a][j + q] · W[a][q],
    X[b, a][u] = xpad[s·b + d·a + d·s'·u],      W[a][q] = w[s'·q + a]  (0 past r).

So the output phases go into the batch (N·P images), the input phases into the channels
(C·s' channels: the stride's polyphase sum is the reduction over channels the products already
do; only the min(s', r) phases that have taps are kept, so a 1×1 stride-2 filter reads one
phase, not four), and the filter becomes ``L = ⌈r / s'⌉`` taps.  In 2D/3D the phases of the axes multiply.

- stride 1, dilation 1: nothing moves; the padding goes to the kernels (no copy of x).
- stride s (dilation 1): s^nd input phases, a ⌈r/s⌉ filter: the polyphase decomposition.
- dilation d (stride 1): d^nd output phases, the filter unchanged.
- rectangular filters: with ``rectangular=True`` the inner filter keeps each axis's own L_i
  (the plans run the rectangular tile F(m_h×m_w, L_h×L_w)); otherwise (the square kinds:
  the fused kernel, the JAX binding) it is square with L = max over the axes, a shorter axis
  getting zero taps at its end (and, without phases, that many more zeros of trailing padding).

The re-indexing is a gather (one copy of x) when any axis has a stride or dilation; the phases
of the output are put back by a reshape and a transpose (one copy of y).  The functions take
NumPy, CuPy, PyTorch or JAX arrays alike (PyTorch and JAX: differentiable, as slicing is).
Cost (docs/limitations.md): the products of L^nd taps over C·s'^nd channels at N·P^nd·⌈Ho/P⌉^nd
outputs; for the 3×3 stride-2 layer that is F(m, 2) over 4C channels.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _checks

__all__ = ["Axis", "Decomposition", "as_ints", "decompose"]


def as_ints(v: object, nd: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """An int or ``nd`` ints, each >= ``minimum``, as a tuple (TypeError / ValueError naming ``name``)."""
    if isinstance(v, (bool, np.bool_)) or isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {v!r}")
    if isinstance(v, (int, np.integer)):
        vals: tuple[Any, ...] = (int(v),) * nd
    elif isinstance(v, Sequence):
        vals = tuple(v)
    else:
        raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {type(v).__name__}")
    if any(isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) for i in vals):
        raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {v!r}")
    if len(vals) != nd:
        raise ValueError(f"{name} must be an int or a tuple of {nd} ints (one per spatial axis), got {v!r}")
    if any(int(i) < minimum for i in vals):
        raise ValueError(f"{name} must be >= {minimum} on every axis, got {v!r}")
    return tuple(int(i) for i in vals)


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a convolution and of its stride-1 rewriting (module docstring)."""

    r: int  #: filter taps
    stride: int
    dilation: int
    lo: int  #: zeros before the input
    hi: int  #: zeros after the input

    @property
    def out_phases(self) -> int:
        """P = d / gcd(s, d): output phases, stacked into the batch."""
        return self.dilation // math.gcd(self.stride, self.dilation)

    @property
    def in_phases(self) -> int:
        """s' = s / gcd(s, d): input phases, stacked into the channels."""
        return self.stride // math.gcd(self.stride, self.dilation)

    @property
    def phases(self) -> int:
        """min(s', r): the input phases that have taps (a >= r has none: a 1×1 stride-2 filter
        reads one phase of four), the only ones gathered and multiplied."""
        return min(self.in_phases, self.r)

    @property
    def taps(self) -> int:
        """L = ⌈r / s'⌉: the taps of the phase filters."""
        return -(-self.r // self.in_phases)

    @property
    def extent(self) -> int:
        """d·(r − 1) + 1: the input span of one output."""
        return self.dilation * (self.r - 1) + 1

    @property
    def plain(self) -> bool:
        """Stride 1 and dilation 1: the kernels run this axis as it is."""
        return self.stride == 1 and self.dilation == 1

    def out(self, size: int) -> int:
        """Ho for an input of ``size`` (may be < 1: the caller refuses it)."""
        return (size + self.lo + self.hi - self.extent) // self.stride + 1

    def inner_out(self, size: int) -> int:
        """Outputs per output phase, ⌈Ho / P⌉: the inner convolution's output size."""
        return -(-self.out(size) // self.out_phases)

    def gather_index(self, size: int, inner_r: int) -> np.ndarray:
        """Indices into ``xpad`` (padded by ``lo`` and enough trailing zeros), shape P × phases × U with
        U = inner_out + inner_r − 1: X[b, a][u] = xpad[s·b + d·a + d·s'·u]."""
        b = np.arange(self.out_phases)[:, None, None]
        a = np.arange(self.phases)[None, :, None]
        u = np.arange(self.inner_out(size) + inner_r - 1)[None, None, :]
        return self.stride * b + self.dilation * a + self.dilation * self.in_phases * u


@dataclass(frozen=True)
class Decomposition:
    """A convolution (per-axis :class:`Axis`, ``groups``) as one stride-1 square-filter one.

    ``inner_*`` describe the convolution the Winograd plan runs; :meth:`weights`,
    :meth:`inputs` and :meth:`outputs` map the arrays between the two.  Arrays are
    channels-first (N×C×spatial) unless ``channels_last``."""

    axes: tuple[Axis, ...]
    groups: int = 1
    #: Keep each axis's own phase-filter length (a rectangular inner filter) instead of the
    #: square L = max over the axes.
    rectangular: bool = False

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def direct(self) -> bool:
        """No phases: x and y go to the kernels as they are (the padding too: any size per side,
        never materialised)."""
        return all(ax.plain for ax in self.axes)

    @property
    def inner_r(self) -> int:
        """The inner filter size: the largest phase filter over the axes."""
        return max(ax.taps for ax in self.axes)

    @property
    def inner_kernel(self) -> tuple[int, ...]:
        """The inner filter size per axis: each axis's L_i when :attr:`rectangular`, else
        :attr:`inner_r` on every axis (the square filter)."""
        if self.rectangular:
            return tuple(ax.taps for ax in self.axes)
        return (self.inner_r,) * self.ndim

    @property
    def in_phases(self) -> int:
        """Input phases (with taps) of all axes together: the inner channels are C times this."""
        return math.prod(ax.phases for ax in self.axes)

    @property
    def out_phases(self) -> int:
        """Output phases of all axes together: the inner batch is N times this."""
        return math.prod(ax.out_phases for ax in self.axes)

    @property
    def inner_padding(self) -> tuple[tuple[int, int], ...]:
        """The inner plan's zero padding per axis: the layer's own when :attr:`direct` (with
        the square filter's extra taps as trailing zeros), else none (the gather pads)."""
        if not self.direct:
            return tuple((0, 0) for _ in self.axes)
        return tuple((ax.lo, ax.hi + L - ax.r) for ax, L in zip(self.axes, self.inner_kernel))

    def out_spatial(self, in_spatial: Sequence[int], name: str = "x") -> tuple[int, ...]:
        """The layer's output size per axis; ValueError naming ``name`` if any is < 1."""
        out = tuple(ax.out(int(s)) for ax, s in zip(self.axes, in_spatial))
        if any(o < 1 for o in out):
            raise ValueError(
                f"{name}: spatial size {tuple(in_spatial)} with padding "
                f"{tuple((ax.lo, ax.hi) for ax in self.axes)} is smaller than the filter's extent "
                f"{tuple(ax.extent for ax in self.axes)} (dilation·(r − 1) + 1)")
        return out

    # ------------------------------------------------------------------ array maps

    def weights(self, w: Any) -> Any:
        """K×(C/groups)×r_1×…  ->  K×(C/groups·s'^nd)×L_1×…: the phase filters, zero-extended to
        the inner filter (:attr:`inner_kernel`; inner channel c·s'^nd + phase, phases in axis
        order)."""
        nd, Ls = self.ndim, self.inner_kernel
        K, Cg = int(w.shape[0]), int(w.shape[1])
        # Each axis to s'·L taps (zeros at the end), split as (q, a), phases moved before the taps.
        w = _pad(w, [(0, 0), (0, 0)] + [(0, ax.in_phases * L - ax.r) for ax, L in zip(self.axes, Ls)])
        split = [K, Cg]
        for ax, L in zip(self.axes, Ls):
            split += [L, ax.in_phases]
        w = w.reshape(split)
        perm = [0, 1] + [3 + 2 * i for i in range(nd)] + [2 + 2 * i for i in range(nd)]
        w = _permute(w, perm)[(slice(None), slice(None)) + tuple(slice(0, ax.phases) for ax in self.axes)]
        return _contiguous(w.reshape(K, Cg * self.in_phases, *Ls))

    def inputs(self, x: Any, channels_last: bool = False) -> Any:
        """x (N×C×spatial, or N×spatial×C) -> the inner input: itself when :attr:`direct`,
        else the gathered phases, (N·P^nd)×(C·s'^nd)×U… (channels last: (N·P^nd)×U…×(C·s'^nd))."""
        if self.direct:
            return x
        nd = self.ndim
        first = 1 if channels_last else 2  # the first spatial axis
        sizes = [int(x.shape[first + i]) for i in range(nd)]
        idx = [ax.gather_index(n, L) for ax, n, L in zip(self.axes, sizes, self.inner_kernel)]
        pads = [(ax.lo, max(0, int(i.max()) + 1 - ax.lo - n)) for ax, n, i in zip(self.axes, sizes, idx)]
        full = [(0, 0)] * x.ndim
        full[first:first + nd] = pads
        xp_ = _pad(x, full)
        # One advanced index per spatial axis, broadcast against each other: the result has the
        # index dimensions (P, s', U) of every axis in place of the spatial axes, in axis order.
        index: list[Any] = [slice(None)] * x.ndim
        for i, ix in enumerate(idx):
            shape = [1] * (3 * nd)
            shape[3 * i:3 * i + 3] = ix.shape
            index[first + i] = _like_index(ix.reshape(shape), x)
        g = xp_[tuple(index)]
        # g: N, [C,] (P_i, s'_i, U_i) per axis [, C] -> (N, P..., C, s'..., U...) or (N, P..., U..., C, s'...)
        N, C = int(x.shape[0]), int(x.shape[-1] if channels_last else x.shape[1])
        sp = 1 if channels_last else 2  # where the (P, s', U) triples start in g
        Pd = [sp + 3 * i for i in range(nd)]
        Sd = [sp + 3 * i + 1 for i in range(nd)]
        Ud = [sp + 3 * i + 2 for i in range(nd)]
        cdim = g.ndim - 1 if channels_last else 1
        perm = [0] + Pd + ([cdim] + Sd + Ud if not channels_last else Ud + [cdim] + Sd)
        g = _permute(g, perm)
        U = [int(i.shape[2]) for i in idx]
        shape = [N * self.out_phases] + ([C * self.in_phases] + U if not channels_last else U + [C * self.in_phases])
        return _contiguous(g.reshape(shape))

    def outputs(self, y: Any, in_spatial: Sequence[int], channels_last: bool = False) -> Any:
        """The inner output -> y: itself when :attr:`direct`, else the output phases interleaved
        (y[P·j + b] = phase b's j-th output) and cropped to the layer's output size."""
        if self.direct:
            return y
        nd = self.ndim
        out = self.out_spatial(in_spatial)
        P = [ax.out_phases for ax in self.axes]
        N = int(y.shape[0]) // self.out_phases
        K = int(y.shape[-1] if channels_last else y.shape[1])
        J = [int(y.shape[(1 if channels_last else 2) + i]) for i in range(nd)]
        if channels_last:  # (N, P..., J..., K) -> (N, J_0, P_0, J_1, P_1, ..., K)
            y = y.reshape([N] + P + J + [K])
            perm = [0] + [d for i in range(nd) for d in (1 + nd + i, 1 + i)] + [1 + 2 * nd]
            y = _permute(y, perm).reshape([N] + [j * p for j, p in zip(J, P)] + [K])
            crop = (slice(None),) + tuple(slice(0, o) for o in out) + (slice(None),)
        else:  # (N, P..., K, J...) -> (N, K, J_0, P_0, J_1, P_1, ...)
            y = y.reshape([N] + P + [K] + J)
            perm = [0, 1 + nd] + [d for i in range(nd) for d in (2 + nd + i, 1 + i)]
            y = _permute(y, perm).reshape([N, K] + [j * p for j, p in zip(J, P)])
            crop = (slice(None), slice(None)) + tuple(slice(0, o) for o in out)
        return _contiguous(y[crop])


def decompose(ndim: int, kernel: Sequence[int], stride: object = 1, padding: object = 0,
              dilation: object = 1, groups: object = 1, *, rectangular: bool = False) -> Decomposition:
    """The :class:`Decomposition` of a convolution with filter sizes ``kernel`` (one per axis),
    PyTorch's ``stride`` / ``padding`` / ``dilation`` / ``groups`` (``padding``: every form of
    :func:`magma_wino._checks.as_padding`, "same" as PyTorch defines it, refused with a stride).
    ``rectangular``: the inner filter keeps each axis's length (for the plans' rectangular
    tiles) rather than the square max."""
    kernel = as_ints(tuple(kernel), ndim, "kernel")
    strides = as_ints(stride, ndim, "stride")
    dils = as_ints(dilation, ndim, "dilation")
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    if isinstance(padding, str) and padding == "same" and any(s != 1 for s in strides):
        raise ValueError(f"padding='same' is not supported for strided convolutions (stride={stride!r}), "
                         f"as in PyTorch: give the padding as ints")
    extent = tuple(d * (r - 1) + 1 for d, r in zip(dils, kernel))
    pads = _checks.as_padding(padding, ndim, extent)
    axes = tuple(Axis(r, s, d, lo, hi) for r, s, d, (lo, hi) in zip(kernel, strides, dils, pads))
    return Decomposition(axes, int(groups), bool(rectangular))


# ---------------------------------------------------------------------- array helpers
# NumPy, CuPy, PyTorch and JAX spell these differently; everything else above is shared syntax.


def _is_torch(a: Any) -> bool:
    return type(a).__module__.startswith("torch")


def _is_jax(a: Any) -> bool:
    """A JAX array or tracer (magma_wino.jax: the decomposition is traced, and differentiated, by JAX)."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(a, jax.Array)


def _pad(a: Any, pairs: Sequence[tuple[int, int]]) -> Any:
    if all(lo == 0 and hi == 0 for lo, hi in pairs):
        return a
    if _is_torch(a):
        import torch.nn.functional as F

        flat: list[int] = []
        for lo, hi in reversed(list(pairs)):
            flat += [lo, hi]
        return F.pad(a, flat)
    xp = _xp(a)
    return xp.pad(a, [tuple(p) for p in pairs])


def _permute(a: Any, perm: Sequence[int]) -> Any:
    return a.permute(*perm) if _is_torch(a) else a.transpose(perm)


def _contiguous(a: Any) -> Any:
    if _is_torch(a):
        return a.contiguous()
    if _is_jax(a):  # XLA chooses its own layouts
        return a
    return _xp(a).ascontiguousarray(a)


def _like_index(ix: np.ndarray, like: Any) -> Any:
    """A NumPy index array on ``like``'s device (CuPy or PyTorch), as int64."""
    if _is_torch(like):
        import torch

        return torch.as_tensor(ix, dtype=torch.int64, device=like.device)
    if _is_jax(like):  # a static index: JAX gathers with it
        return ix.astype(np.int64)
    return _xp(like).asarray(ix.astype(np.int64))


def _xp(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return np
    if _is_jax(a):
        import jax.numpy as jnp

        return jnp
    import cupy

    return cupy
