"""``nn.Module``\\ s: Winograd layers that drop into PyTorch models.

* :class:`WinogradConv2d` / :class:`WinogradConv3d` — subclasses of ``nn.Conv2d`` /
  ``nn.Conv3d`` with the same constructor, parameters and ``state_dict``, computed by Winograd
  F(m, r): every stride, dilation, groups, padding (ints, "same", "valid") and kernel shape,
  as :mod:`magma_wino.decompose` rewrites them (padding modes other than "zeros" are refused).
* :class:`WinogradDomainConv2d` / :class:`WinogradDomainConv3d` — the parameter ``weight`` IS
  the Winograd-domain U (α^nd×K×C), with a bool ``mask`` buffer (the pruning pattern),
  ``relu="winograd"`` for the Winograd-ReLU layer (Liu et al. 2018), :meth:`prune_` /
  :meth:`prune_filters_` and :meth:`to_plan` for inference.

Masked entries: the operator's forward uses U only where ``mask`` is True and its backward
returns dL/dU = 0 elsewhere, and the pruning methods zero ``weight`` there too.  A zero
gradient on a zero weight stays zero under SGD (momentum, weight decay), Adam and AdamW *if the
optimiser's state is zero there too*: momentum or Adam moments gathered before a prune would
move the pruned entries again, so pass the optimiser to :meth:`prune_` /
:meth:`prune_filters_` (``optimizer=opt``: its per-parameter state tensors of ``weight`` are
zeroed at the pruned entries), or build the optimiser after pruning.  Even a value that did
change (a hand edit, a loaded state, stale optimiser state) never reaches the output — the
mask, not the value, decides.  The forward then also sees the sparsity (the batched CSR
product at low density).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import layer as _layer
from .. import pruning as _pruning
from .. import reference as _reference
from ..decompose import decompose
from ..sparse import BSR_BLOCKS
from . import functional as F

__all__ = ["WinogradConv2d", "WinogradConv3d", "WinogradDomainConv2d", "WinogradDomainConv3d"]

_PLAN = {2: _layer.WinogradConv2d, 3: _layer.WinogradConv3d}


def _padding_mode(padding_mode: str) -> None:
    if padding_mode != "zeros":
        raise NotImplementedError(f"padding_mode={padding_mode!r} is not supported: the Winograd layers pad "
                                  f"with zeros only")


def _domain_decomposition(nd: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
                          padding_mode: str, relu: Any) -> Any:
    """The :class:`magma_wino.decompose.Decomposition` of a layer whose Winograd-domain weights the
    modules hold (U: the weights of its stride-1 phase layer), or a clear error."""
    ks = F._tuple(kernel_size, nd, "kernel_size")
    _padding_mode(padding_mode)
    # checks stride, padding (every form of as_padding, "same" / "valid"), dilation, groups
    dec = decompose(nd, ks, stride, padding, dilation, groups, rectangular=True)
    if F._relu_arg(relu) == "winograd" and not dec.direct:
        raise NotImplementedError("relu='winograd' with a stride or dilation is not supported: the Winograd-domain "
                                  "ReLU would act on the phase convolution's tiles, not on this layer's")
    return dec


class _SpatialMixin:
    """Shared by :class:`WinogradConv2d` and :class:`WinogradConv3d`."""

    _nd = 2

    def _winograd_init(self, m: int | None, backend: str, precision: str, relu: F.Relu) -> None:
        # Every stride, dilation, groups, padding and kernel shape nn.Conv2d takes (its own
        # constructor has checked them): checked here once more for what the decomposition needs.
        _padding_mode(self.padding_mode)
        self._decomposition = decompose(self._nd, self.kernel_size, self.stride, self.padding, self.dilation,
                                        self.groups, rectangular=True)
        F._m_arg(m)
        F._relu_arg(relu)
        self.m, self.backend, self.precision, self.relu = m, backend, precision, relu

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d if self._nd == 2 else F.conv3d
        return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups, m=self.m,
                    precision=self.precision, backend=self.backend, relu=self.relu)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", m={self.m}, backend={self.backend!r}, precision={self.precision!r}"
                + (f", relu={self.relu!r}" if self.relu else ""))

    @classmethod
    def from_conv(cls, conv: nn.Module, **kw: Any) -> Any:
        """This module with ``conv``'s configuration and a copy of its weights (``kw``: m,
        backend, precision, relu); ``conv`` is left as it is."""
        base = nn.Conv2d if cls._nd == 2 else nn.Conv3d
        if not isinstance(conv, base):
            raise TypeError(f"conv must be a {base.__name__}, got {type(conv).__name__}")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                  padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                  bias=conv.bias is not None, padding_mode=conv.padding_mode, device=conv.weight.device,
                  dtype=conv.weight.dtype, **kw)
        with torch.no_grad():
            new.weight.copy_(conv.weight)
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        new.weight.requires_grad_(conv.weight.requires_grad)
        if conv.bias is not None:
            new.bias.requires_grad_(conv.bias.requires_grad)
        return new.train(conv.training)

    def to_plan(self, backend: str = "auto", **kw: Any) -> Any:
        """The inference plan :class:`magma_wino.WinogradConv2d` (3D: ``WinogradConv3d``) of the
        current weights (copied: training on does not change the plan).  ``kw``: the plan's
        other keywords (layout, fused, output_relu, ...)."""
        dec = self._decomposition
        if not dec.direct:
            raise NotImplementedError(f"to_plan: the plans run stride-1, dilation-1 layers; "
                                      f"this one has stride={self.stride}, dilation={self.dilation} "
                                      f"(magma_wino.conv{self._nd}d and this module's forward compute it)")
        w = self.weight.detach().clone()
        b = None if self.bias is None else self.bias.detach().clone()
        be = F._ops.resolve_backend(backend, w)
        w_arr, b_arr = F._ops._to_array(w, "weight", be), F._ops._to_array(b, "bias", be)
        return _PLAN[self._nd](w_arr, b_arr, dec.inner_padding, self.m, be, relu=self.relu,
                               precision=self.precision, groups=self.groups, **kw)


class WinogradConv2d(_SpatialMixin, nn.Conv2d):
    """``nn.Conv2d`` computed by Winograd F(m×m, r×r): the same constructor (plus keyword-only
    ``m``, ``backend``, ``precision``, ``relu``), parameters and ``state_dict``; every stride,
    dilation, groups, padding and kernel shape ``nn.Conv2d`` takes (docs/limitations.md says how
    each runs), ``padding_mode`` "zeros".

    ``backend="auto"``: "cuda" for CUDA tensors, "numpy" for CPU tensors; "emulator" runs the
    kernels' source on CPU tensors.
    """

    _nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device: Any = None, dtype: Any = None, *, m: int | None = None, backend: str = "auto",
                 precision: str = "auto", relu: F.Relu = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self._winograd_init(m, backend, precision, relu)


class WinogradConv3d(_SpatialMixin, nn.Conv3d):
    """``nn.Conv3d`` computed by Winograd F(m×m×m, r×r×r) (m default 2); see :class:`WinogradConv2d`."""

    _nd = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device: Any = None, dtype: Any = None, *, m: int | None = None, backend: str = "auto",
                 precision: str = "auto", relu: F.Relu = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self._winograd_init(m, backend, precision, relu)


# --------------------------------------------------------------------------- Winograd domain


class _WinogradDomainConvNd(nn.Module):
    """Shared by :class:`WinogradDomainConv2d` and :class:`WinogradDomainConv3d`."""

    _nd = 2
    _default_m = 4

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, padding: Any = 0, bias: bool = True,
                 device: Any = None, dtype: Any = None, *, m: int | None = None, relu: F.Relu = None,
                 backend: str = "auto", precision: str = "auto", sparse: bool | None = None, stride: Any = 1,
                 dilation: Any = 1, groups: int = 1) -> None:
        super().__init__()
        nd = self._nd
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        if min(self.in_channels, self.out_channels) < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
        dec = _domain_decomposition(nd, kernel_size, stride, padding, dilation, groups, "zeros", relu)
        if self.in_channels % dec.groups or self.out_channels % dec.groups:
            raise ValueError(f"groups={dec.groups} must divide in_channels = {in_channels} and out_channels = "
                             f"{out_channels}")
        self._decomposition = dec
        self.padding, self.groups = padding, dec.groups
        self.kernel_size = tuple(ax.r for ax in dec.axes)
        self.stride = tuple(ax.stride for ax in dec.axes)
        self.dilation = tuple(ax.dilation for ax in dec.axes)
        #: The filter size: an int for a square (cubic) kernel, else the per-axis tuple.
        self.r: int | tuple[int, ...] = self.kernel_size[0] if len(set(self.kernel_size)) == 1 else self.kernel_size
        self.m = self._default_m if m is None else F._m_arg(m)
        #: The tile of U: F(m_i, L_i) per axis of the (phase) filter L (the layer's own at stride 1).
        self.tile_m = _reference.tile_m(self.m, dec.inner_kernel)
        self.alpha = _reference.tile_alpha(self.m, dec.inner_kernel)
        if len(set(self.alpha)) == 1:
            self.alpha = self.alpha[0]
        self.relu = F._relu_arg(relu)
        self.backend, self.precision, self.sparse = backend, precision, sparse
        factory = {"device": device, "dtype": dtype}
        shape = F.winograd_weight_shape(self.in_channels, self.out_channels, self.kernel_size, nd, m=self.m,
                                        stride=self.stride, dilation=self.dilation, groups=self.groups)
        self.weight = nn.Parameter(torch.empty(shape, **factory))
        self.bias = nn.Parameter(torch.empty(self.out_channels, **factory)) if bias else None
        self.register_buffer("mask", torch.ones(shape, dtype=torch.bool, device=device))
        # "block" once prune_ kept whole blocks of a block-sparse kernel's shape (block: that
        # shape): to_plan's defaults
        self.structure: str | None = None
        self.block: tuple[int, int] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U = G g Gᵀ of a spatial filter g initialised as ``nn.Conv2d`` does (Kaiming uniform,
        a = √5), so that a fresh layer starts as a freshly initialised convolution would; the
        bias likewise; the mask all True."""
        g = torch.empty((self.out_channels, self.in_channels // self.groups) + self.kernel_size, dtype=torch.float64)
        nn.init.kaiming_uniform_(g, a=math.sqrt(5))
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(self._transform(g.numpy())))
            if self.bias is not None:
                bound = 1 / math.sqrt(self.in_channels // self.groups * math.prod(self.kernel_size))
                nn.init.uniform_(self.bias, -bound, bound)
            self.mask.fill_(True)

    def _transform(self, g: np.ndarray) -> np.ndarray:
        """U of spatial weights g (K×C/groups×kernel, float64): G g Gᵀ of the phase filters of
        the decomposition (g itself at stride and dilation 1), per axis of the tile."""
        return _reference.filter_transform(self._decomposition.weights(g), self.tile_m)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d_winograd if self._nd == 2 else F.conv3d_winograd
        return conv(input, self.weight, self.bias, self.padding, r=self.r, mask=self.mask, m=self.m,
                    relu=self.relu, sparse=self.sparse, precision=self.precision, backend=self.backend,
                    stride=self.stride, dilation=self.dilation, groups=self.groups)

    def extra_repr(self) -> str:
        inner = self._decomposition.inner_kernel
        tile = (f"F({self.tile_m[0]}, {inner[0]})" if len(set(zip(self.tile_m, inner))) == 1 else
                f"F({'×'.join(map(str, self.tile_m))}, {'×'.join(map(str, inner))})")
        extra = "".join(f", {n}={v}" for n, v, d in (("stride", self.stride, 1), ("dilation", self.dilation, 1))
                        if any(i != d for i in v))
        extra += f", groups={self.groups}" if self.groups != 1 else ""
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, padding={self.padding}"
                f"{extra}, {tile}, bias={self.bias is not None}, relu={self.relu!r}, density={self.density:.3g}")

    @property
    def density(self) -> float:
        """Fraction of the Winograd-domain weights the mask keeps."""
        return float(self.mask.float().mean())

    @classmethod
    def from_conv(cls, conv: nn.Module, *, m: int | None = None, relu: F.Relu = None, backend: str = "auto",
                  precision: str = "auto", sparse: bool | None = None) -> Any:
        """The Winograd-domain layer of ``conv`` (an ``nn.Conv2d`` / ``nn.Conv3d`` it can
        compute): U = G g Gᵀ (:func:`magma_wino.reference.filter_transform`, in float64, then
        the weight's dtype), the bias copied, the mask all True.  With ``relu=None`` it
        computes the same function as ``conv``; with ``relu="winograd"`` it is the
        Winograd-ReLU layer to fine-tune."""
        base = nn.Conv2d if cls._nd == 2 else nn.Conv3d
        if not isinstance(conv, base):
            raise TypeError(f"conv must be a {base.__name__}, got {type(conv).__name__}")
        _padding_mode(conv.padding_mode)
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding,
                  bias=conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype, m=m, relu=relu,
                  backend=backend, precision=precision, sparse=sparse, stride=conv.stride, dilation=conv.dilation,
                  groups=conv.groups)
        U = torch.from_numpy(new._transform(conv.weight.detach().to("cpu", torch.float64).numpy()))
        with torch.no_grad():
            new.weight.copy_(U)
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        return new.train(conv.training)

    # ----------------------------------------------------------------- pruning

    def _masked_host(self) -> np.ndarray:
        """U ⊙ mask on the host in float64 (exact for every float dtype: only ranked)."""
        return (self.weight.detach() * self.mask).to("cpu", torch.float64).numpy()

    @torch.no_grad()
    def _set_mask(self, keep: np.ndarray, optimizer: torch.optim.Optimizer | None) -> None:
        self.mask &= torch.from_numpy(np.ascontiguousarray(keep)).to(self.mask.device)
        self.weight.mul_(self.mask)
        if optimizer is None:
            return
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
        # momentum_buffer (SGD), exp_avg / exp_avg_sq (Adam, AdamW), ...: every state tensor
        # shaped like the weight, so the next step leaves the pruned entries at zero
        for value in optimizer.state.get(self.weight, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == self.weight.shape:
                value.mul_(self.mask)

    def prune_(self, density: float, per_position: bool = False, *, block: Any = None,
               optimizer: torch.optim.Optimizer | None = None) -> _WinogradDomainConvNd:
        """Magnitude-prune the Winograd-domain weights in place
        (:func:`magma_wino.pruning.prune_winograd`): keep the ``round(density · α^nd·K·C)``
        largest |U| (``per_position``: ``round(density · K·C)`` in every position), AND-ed with
        the current mask (already pruned entries stay pruned, so a density above the current
        one keeps the current pattern), and zero the weight where the mask is False.
        ``block=(bk, bc)``: structured instead — whole bk×bc blocks of every U[b] by their
        Frobenius norm, ``density`` the fraction of blocks kept
        (:func:`magma_wino.pruning.prune_winograd_blocks`; ``(1, None)``: whole rows; grouped:
        blocks of each group's matrix, ``per_position`` per (position, group)).
        ``optimizer``: also zero its state of ``weight`` there (see the module docstring).
        Blocks of a block-sparse kernel's shape, (16, 8) or (32, 8), set :attr:`structure` to
        "block" and :attr:`block` to the shape, so that :meth:`to_plan` runs the block-sparse
        product in those blocks.  Returns the module."""
        if block is None:
            _, keep = _pruning.prune_winograd(self._masked_host(), density, per_position=per_position)
        else:
            # grouped: blocks of each group's (K/groups)×C' matrix, never across two groups (the
            # block-sparse product's batch, as from_winograd(..., groups=) prunes).  A kernel
            # shape is clipped to U[b] as from_winograd clips it (a layer of K < 32: one block row).
            pblock = block
            if tuple(block) in BSR_BLOCKS:
                _, K, C = self.weight.shape
                pblock = (min(block[0], K), min(block[1], C))
            _, keep = _pruning.prune_winograd_blocks(self._masked_host(), density, pblock, per_position=per_position,
                                                     groups=self.groups)
        self._set_mask(keep, optimizer)
        if block is not None and tuple(block) in BSR_BLOCKS:
            self.structure, self.block = "block", tuple(block)
        return self

    def prune_n_m_(self, n: int | None = None, m: int | None = None, *,
                   optimizer: torch.optim.Optimizer | None = None) -> _WinogradDomainConvNd:
        """N:M structured pruning in place (:func:`magma_wino.pruning.prune_winograd_n_m`): of
        every ``m`` consecutive input channels of each (position, filter) row keep the ``n``
        largest |U|, AND-ed with the current mask.  Default: the pattern of sparse tensor cores
        in the module's precision, 2:4 for "fp16" / "bf16", else 1:2 (``mma.sp`` needs 1:2 for
        TF32 operands, and "auto" runs tf32x3 on the GPU and the emulator; 1:2 is also a 2:4
        pattern).  Sets :attr:`structure` to "2:4", so that :meth:`to_plan` runs the product on
        sparse tensor cores (a mask pruned 2:4 exports only in "fp16" / "bf16").  ``optimizer``
        as for :meth:`prune_`.  Returns the module."""
        if (n is None) != (m is None):
            raise TypeError("prune_n_m_ takes both n and m, or neither (the precision's pattern)")
        if n is None:
            n, m = (2, 4) if self.precision in ("fp16", "bf16") else (1, 2)
        _, keep = _pruning.prune_winograd_n_m(self._masked_host(), n, m)
        self._set_mask(keep, optimizer)
        self.structure = "2:4"
        return self

    def prune_filters_(self, keep: int | None = None, keep_fraction: float | None = None, *,
                       optimizer: torch.optim.Optimizer | None = None) -> torch.Tensor:
        """Filter pruning by the Frobenius norm of U[:, k, :] (:func:`magma_wino.pruning.prune_filters`
        on U ⊙ mask): the dropped filters' weights are zeroed through the mask (their bias is
        kept: the channel then outputs its bias, which the next layer can absorb).  Give
        exactly one of ``keep`` (a count) and ``keep_fraction``.  Returns the kept filter
        indices (ascending int64), e.g. for
        :func:`magma_wino.pruning.drop_input_channels` of the next layer."""
        per_filter = np.moveaxis(self._masked_host(), 1, 0)  # K × α^nd × C
        _, kept = _pruning.prune_filters(per_filter, keep, keep_fraction=keep_fraction)
        keep_mask = np.zeros(self.weight.shape, dtype=bool)
        keep_mask[:, kept, :] = True
        self._set_mask(keep_mask, optimizer)
        return torch.from_numpy(kept)

    # ----------------------------------------------------------------- inference

    def to_plan(self, backend: str = "auto", *, sparse: bool | str = "auto", **kw: Any) -> Any:
        """The inference plan ``magma_wino.WinogradConv2d.from_winograd(U, r, mask=..., bias=...,
        padding=..., m=..., relu=...)`` (3D: ``WinogradConv3d``) of the current weights and
        mask (copied).  ``sparse``: the plan's (True: the sparse product of the structure);
        ``structure`` defaults to :attr:`structure` ("block" after ``prune_(block=(16, 8))`` or
        ``(32, 8)``; ``block`` then to that shape);
        ``kw``: the plan's other keywords (precision, layout, fused, ...)."""
        dec = self._decomposition
        if not dec.direct:
            raise NotImplementedError(f"to_plan: the plans run stride-1, dilation-1 layers; "
                                      f"this one has stride={self.stride}, dilation={self.dilation} "
                                      f"(this module's forward computes it)")
        U = self.weight.detach().clone()
        b = None if self.bias is None else self.bias.detach().clone()
        be = F._ops.resolve_backend(backend, U)
        arr = F._ops._to_array
        kw.setdefault("precision", self.precision)
        kw.setdefault("structure", self.structure)
        if kw["structure"] == "block" and self.block is not None:
            kw.setdefault("block", self.block)
        return _PLAN[self._nd].from_winograd(arr(U, "weight", be), self.r, mask=arr(self.mask, "mask", be),
                                             bias=arr(b, "bias", be), padding=dec.inner_padding, m=self.m,
                                             backend=be, relu=self.relu, sparse=sparse, groups=self.groups, **kw)


class WinogradDomainConv2d(_WinogradDomainConvNd):
    """2D layer whose parameter ``weight`` is the Winograd-domain U (α²×K×C) of an r×r filter,
    with a bool ``mask`` buffer (all True initially) and ``relu=None | "winograd"``
    (Winograd-ReLU, Liu et al. 2018; "spatial" is accepted too).  Any zero padding per side;
    a rectangular ``kernel_size`` holds U of the rectangular tile (F(1×4, 1×3) for 1×3);
    keyword-only ``stride``, ``dilation``, ``groups`` (PyTorch's semantics) make U the weights
    of the stride-1 phase layer :mod:`magma_wino.decompose` rewrites the layer into — its phase
    filter, C/groups · phases input channels (:func:`~magma_wino.torch.functional.winograd_weight_shape`)
    — so ``from_conv`` of any ``nn.Conv2d`` computes the same function, and pruning U prunes
    that layer (Winograd-ReLU: stride and dilation 1 only).  ``backend="auto"``: "cuda" for
    CUDA tensors, "numpy" for CPU tensors.  See the module docstring for how masked entries
    stay zero."""

    _nd = 2
    _default_m = 4


class WinogradDomainConv3d(_WinogradDomainConvNd):
    """3D :class:`WinogradDomainConv2d` (weight α³×K×C, m default 2)."""

    _nd = 3
    _default_m = 2
