"""``convert(model)``: every eligible ``nn.Conv2d`` / ``nn.Conv3d`` swapped for a Winograd module."""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..cost import conv_cost
from ..decompose import decompose
from ..layer import WinogradConv2d as _Plan2d
from ..layer import WinogradConv3d as _Plan3d
from . import functional as F
from .modules import WinogradConv2d, WinogradConv3d, WinogradDomainConv2d, WinogradDomainConv3d

__all__ = ["convert", "eligible"]

_log = logging.getLogger(__name__)
#: The taps of the phase layers convert() swaps (F(m, 2) … F(m, 5)).
PHASE_TAPS = (2, 5)
#: The plans whose default tile a module with ``m=None`` runs, per dimension.
LAYER_CLASSES = {2: _Plan2d, 3: _Plan3d}


def eligible(conv: nn.Module, *, winograd_domain: bool = False, m: int | None = None,
             relu: F.Relu = None) -> str | None:
    """None when ``convert`` (with the same ``winograd_domain``, ``m`` and ``relu``) would swap
    ``conv``; otherwise why not, in words.

    Always required: exactly ``nn.Conv2d`` / ``nn.Conv3d`` (not a subclass, which may compute
    something else), "zeros" padding mode, a floating-point weight NumPy
    or CuPy can view (not bfloat16), and not depthwise (C/groups = 1: memory-bound, where the
    model's verdict is PyTorch's direct kernel, docs/limitations.md).

    The spatial modules (``winograd_domain=False``, ``relu`` None or "spatial") run every stride,
    dilation, group count and padding by :mod:`magma_wino.decompose`; swapped are the layers whose
    stride-1 phase layer has a filter of 2 to 5 taps on its longest axis (:data:`PHASE_TAPS`:
    stride 1 with kernel 2 to 5, dilated too; stride 2 with kernel 3 to 10, e.g. ResNet's stage
    entries, 3×3, and its conv1, 7×7; rectangular kernels such as Inception's 1×3 / 3×1, which
    run a rectangular tile) and where :func:`magma_wino.cost.conv_cost` counts fewer
    multiplications than the direct layer for F(m, taps) (at a nominal 56×56 input, batch 1:
    F(2, 2) of a stride-2 3×3 saves none and is left alone, F(4, 2) is swapped).

    Winograd-domain modules (``winograd_domain=True``) follow the same rule: their U is the weights
    of that phase layer (grouped: α^nd×K×(C/groups)).  Winograd-ReLU (``relu="winograd"``) needs
    the layer itself to be the stride-1 one (stride 1, dilation 1): its ReLU acts on the tiles
    of the layer's own input."""
    if type(conv) not in (nn.Conv2d, nn.Conv3d):
        return f"{type(conv).__name__} is not nn.Conv2d / nn.Conv3d"
    nd = 2 if type(conv) is nn.Conv2d else 3
    ks = tuple(conv.kernel_size)
    if conv.padding_mode != "zeros":
        return f"padding_mode {conv.padding_mode!r} is not 'zeros'"
    if not conv.weight.is_floating_point():
        return f"dtype {conv.weight.dtype} is not floating point"
    if conv.weight.dtype == torch.bfloat16:
        return "bfloat16 weights (NumPy and CuPy cannot view bfloat16 tensors)"
    if conv.groups > 1 and conv.in_channels == conv.groups:
        return f"depthwise (groups = C = {conv.groups}): memory-bound, PyTorch's direct kernel is faster"
    if relu == "winograd":
        for name in ("stride", "dilation"):
            if any(v != 1 for v in getattr(conv, name)):
                return f"{name} {tuple(getattr(conv, name))} != 1 (the Winograd-ReLU acts on the layer's own tiles)"
    dec = decompose(nd, ks, conv.stride, conv.padding, conv.dilation, conv.groups, rectangular=True)
    L = dec.inner_r
    tile = LAYER_CLASSES[nd].default_m if m is None else m
    if not PHASE_TAPS[0] <= L <= PHASE_TAPS[1]:
        return (f"its phase layer has a {L}-tap filter (kernel {ks}, stride {tuple(conv.stride)}): "
                f"outside the converted {PHASE_TAPS[0]}..{PHASE_TAPS[1]} taps")
    size = tuple(max(56, dec.axes[i].extent) for i in range(nd))
    ratio = conv_cost(1, conv.in_channels, conv.out_channels, size, ks, conv.stride, conv.padding,
                      conv.dilation, conv.groups, tile)["mult_ratio"]
    if ratio >= 1.0:
        return f"F({tile}, {L}) saves no multiplications here ({ratio:.2f} of the direct layer's)"
    return None


def convert(model: nn.Module, *, m: int | None = None, winograd_domain: bool = False, relu: F.Relu = None,
            backend: str = "auto", precision: str = "auto") -> nn.Module:
    """Replace, in place, every eligible convolution of ``model`` (see :func:`eligible`) by
    :class:`~magma_wino.torch.WinogradConv2d` / ``3d`` (weights copied: the same function), or
    with ``winograd_domain=True`` by :class:`~magma_wino.torch.WinogradDomainConv2d` / ``3d``
    (U = G g Gᵀ; with ``relu="winograd"`` the Winograd-ReLU layer to fine-tune, no longer the
    same function).  Ineligible convolutions are left as they are.  ``backend="auto"``: cuda
    for CUDA tensors, numpy for CPU tensors.

    Returns ``model``; the converted and the skipped modules are logged (logger
    ``magma_wino.torch._convert``, level INFO), and ``model.winograd_converted`` lists the
    qualified names of the converted ones.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(winograd_domain, bool):
        raise TypeError(f"winograd_domain must be a bool, got {winograd_domain!r}")
    F._m_arg(m)
    F._relu_arg(relu)
    targets, converted = [], []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Conv3d)):
            why = eligible(mod, winograd_domain=winograd_domain, m=m, relu=relu)
            if why is None:
                targets.append((name, mod))
            else:
                _log.info("convert: %s left as %s (%s)", name or "<model>", type(mod).__name__, why)
    if any(name == "" for name, _ in targets):
        raise ValueError("model itself is a convolution: use WinogradConv2d.from_conv(model) instead")
    for name, mod in targets:
        nd = 2 if type(mod) is nn.Conv2d else 3
        if winograd_domain:
            cls = WinogradDomainConv2d if nd == 2 else WinogradDomainConv3d
            new = cls.from_conv(mod, m=m, relu=relu, backend=backend, precision=precision)
        else:
            cls = WinogradConv2d if nd == 2 else WinogradConv3d
            new = cls.from_conv(mod, m=m, relu=relu, backend=backend, precision=precision)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, new)
        converted.append(name)
        _log.info("convert: %s -> %s", name, type(new).__name__)
    model.winograd_converted = converted
    return model
