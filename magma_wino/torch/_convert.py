"""``convert(model)``: every eligible ``nn.Conv2d`` / ``nn.Conv3d`` swapped for a Winograd module."""

from __future__ import annotations

import logging

import torch
from torch import nn

from . import functional as F
from .modules import WinogradConv2d, WinogradConv3d, WinogradDomainConv2d, WinogradDomainConv3d

__all__ = ["convert", "eligible"]

_log = logging.getLogger(__name__)
#: The filter sizes convert() swaps (F(m, 3) and F(m, 5) are the accurate, useful tiles).
KERNEL_SIZES = (3, 5)


def eligible(conv: nn.Module) -> str | None:
    """None when ``convert`` would swap ``conv``; otherwise why not, in words.  Eligible:
    exactly ``nn.Conv2d`` / ``nn.Conv3d`` (not a subclass, which may compute something
    else), a square (cubic) 3 or 5 kernel, stride 1, dilation 1, groups 1, "zeros" padding
    mode, padding <= r - 1 (or "valid" / "same", which are 0 and (r - 1) / 2 there), a
    floating-point weight NumPy or CuPy can view (not bfloat16)."""
    if type(conv) not in (nn.Conv2d, nn.Conv3d):
        return f"{type(conv).__name__} is not nn.Conv2d / nn.Conv3d"
    nd = 2 if type(conv) is nn.Conv2d else 3
    ks = tuple(conv.kernel_size)
    if len(set(ks)) != 1 or ks[0] not in KERNEL_SIZES:
        return f"kernel_size {ks} is not square 3 or 5"
    r = ks[0]
    for name in ("stride", "dilation"):
        if any(v != 1 for v in getattr(conv, name)):
            return f"{name} {tuple(getattr(conv, name))} != 1"
    if conv.groups != 1:
        return f"groups {conv.groups} != 1"
    if conv.padding_mode != "zeros":
        return f"padding_mode {conv.padding_mode!r} is not 'zeros'"
    pad = conv.padding
    if isinstance(pad, str):
        pad = 0 if pad == "valid" else (r - 1) // 2
    pads = F._tuple(pad, nd, "padding")
    if any(p > r - 1 for p in pads):
        return f"padding {pads} > r - 1 = {r - 1}"
    if not conv.weight.is_floating_point():
        return f"dtype {conv.weight.dtype} is not floating point"
    if conv.weight.dtype == torch.bfloat16:
        return "bfloat16 weights (NumPy and CuPy cannot view bfloat16 tensors)"
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
            why = eligible(mod)
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
