"""Functional interface: :func:`conv2d` / :func:`conv3d` with ``torch.nn.functional``'s
positional order, and :func:`conv2d_winograd` / :func:`conv3d_winograd` whose weight is the
Winograd-domain U (α^nd×K×C).

All four are differentiable (the ``magma_wino::*`` operators of :mod:`magma_wino.torch._ops`)
and traceable by ``torch.compile``.  ``backend="auto"`` runs the CUDA kernels for CUDA tensors
and the NumPy reference for CPU tensors; ``backend="emulator"`` runs the kernels' source on the
CPU (CPU tensors).  :func:`conv2d` / :func:`conv3d` take every convolution
``torch.nn.functional`` does (padding modes aside): stride, dilation and rectangular kernels
rewritten by :mod:`magma_wino.decompose` into one stride-1 Winograd convolution, groups as
block-diagonal products, any zero padding per side, ``channels_last`` inputs without a copy
(docs/limitations.md: what runs how, and what is refused).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from .._checks import as_padding
from ..decompose import decompose
from ..reference import tile_alpha
from . import _ops

__all__ = ["conv2d", "conv3d", "conv2d_winograd", "conv3d_winograd", "winograd_weight_shape"]

Relu = Literal["spatial", "winograd"] | None
_IntOrTuple = int | Sequence[int]
# bfloat16 tensors are not taken: NumPy and CuPy have no bfloat16 dtype to view them as (the
# library's bf16 mode is float32 data with bfloat16 products: precision="bf16")
_FLOATS = (torch.float32, torch.float64, torch.float16)


def _tensor(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def _tuple(v: object, nd: int, name: str) -> tuple[int, ...]:
    """An int or a sequence of ``nd`` ints, as a tuple (TypeError / ValueError naming ``name``)."""
    if isinstance(v, bool) or not isinstance(v, (int, Sequence)) or isinstance(v, str):
        raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {v!r}")
    vals = (v,) * nd if isinstance(v, int) else tuple(v)
    if len(vals) != nd or any(isinstance(i, bool) or not isinstance(i, int) for i in vals):
        raise TypeError(f"{name} must be an int or a tuple of {nd} ints, got {v!r}")
    return tuple(int(i) for i in vals)


def _pads(padding: object, nd: int, extent: Sequence[int]) -> list[int]:
    """``padding`` (every form of :func:`magma_wino._checks.as_padding`) as the operators' flat
    per-side list [lo_0, hi_0, lo_1, hi_1, ...] in axis order."""
    return [p for pair in as_padding(padding, nd, tuple(extent)) for p in pair]


def _is_channels_last(t: torch.Tensor) -> bool:
    """A ``channels_last`` (``channels_last_3d``) tensor that is not also C-contiguous."""
    fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    return not t.is_contiguous() and t.is_contiguous(memory_format=fmt)


def _last(t: torch.Tensor) -> torch.Tensor:
    """N×C×spatial -> its N×spatial×C view (C-contiguous for a channels_last tensor: no copy)."""
    return t.permute(0, *range(2, t.dim()), 1)


def _first(t: torch.Tensor) -> torch.Tensor:
    """N×spatial×C -> its N×C×spatial view (a channels_last tensor)."""
    return t.permute(0, t.dim() - 1, *range(1, t.dim() - 1))


def _check_common(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, nd: int,
                  weight_what: str) -> None:
    _tensor(input, "input")
    _tensor(weight, "weight")
    if input.dim() != nd + 2:
        raise ValueError(f"input must be {nd + 2}-D (N×C×{'D×' if nd == 3 else ''}H×W) for a {nd}D "
                         f"convolution, got shape {tuple(input.shape)}")
    if input.dtype == torch.bfloat16:
        raise TypeError("input is a bfloat16 tensor, which NumPy and CuPy cannot view; give float32 data "
                        "(precision='bf16' runs the products in bfloat16)")
    if input.dtype not in _FLOATS:
        raise TypeError(f"input must be a floating-point tensor (float32, float64, float16), got {input.dtype}")
    if weight.device != input.device:
        raise TypeError(f"weight is on {weight.device} but input is on {input.device}: move both to one device")
    if weight.dtype != input.dtype:
        raise TypeError(f"dtype mismatch: weight is {weight.dtype} but input is {input.dtype}")
    if bias is not None:
        _tensor(bias, "bias")
        if bias.device != input.device:
            raise TypeError(f"bias is on {bias.device} but input is on {input.device}")
        if bias.dtype != input.dtype:
            raise TypeError(f"dtype mismatch: bias is {bias.dtype} but input is {input.dtype}")
    if weight.dim() != {"spatial": nd + 2, "winograd": 3}[weight_what]:
        want = f"K×C×{'×'.join(['r'] * nd)}" if weight_what == "spatial" else "α^nd×K×C"
        raise ValueError(f"weight must be {want}, got shape {tuple(weight.shape)}")


def _m_arg(m: object) -> int:
    if m is None:
        return 0  # the plan's default tile
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be None or an int >= 1, got {m!r}")
    return int(m)


def _relu_arg(relu: object) -> str | None:
    if relu is not None and relu not in ("spatial", "winograd"):
        raise ValueError(f"relu must be None, 'spatial' or 'winograd', got {relu!r}")
    return relu  # type: ignore[return-value]


def _check_channels(input: torch.Tensor, bias: torch.Tensor | None, C: int, K: int, weight_name: str) -> None:
    """input's channels are the weight's C; bias, if any, has the weight's K entries."""
    if input.shape[1] != C:
        raise ValueError(f"channel mismatch: input has C = {input.shape[1]} channels but {weight_name} has C = {C}")
    if bias is not None and tuple(bias.shape) != (K,):
        raise ValueError(f"bias must have shape ({K},), got {tuple(bias.shape)}")


def _conv(nd: int, input, weight, bias, stride, padding, dilation, groups, m, precision, backend, relu):
    _check_common(input, weight, bias, nd, "spatial")
    # decompose checks stride, padding, dilation and groups (an int >= 1), naming each
    # rectangular: a 1×3 filter (or a stride's 2×1 phase filter) runs a rectangular tile
    dec = decompose(nd, tuple(int(s) for s in weight.shape[2:]), stride, padding, dilation, groups, rectangular=True)
    groups = dec.groups
    K, Cg = int(weight.shape[0]), int(weight.shape[1])
    if input.shape[1] != Cg * groups:
        raise ValueError(f"channel mismatch: input has C = {input.shape[1]} channels but weight has C / groups = "
                         f"{Cg} with groups = {groups} (C = {Cg * groups})")
    if K % groups:
        raise ValueError(f"weight has K = {K} output channels, not a multiple of groups = {groups}")
    if bias is not None and tuple(bias.shape) != (K,):
        raise ValueError(f"bias must have shape ({K},), got {tuple(bias.shape)}")
    dec.out_spatial(tuple(input.shape[2:]), "input")
    relu = _relu_arg(relu)
    if backend == "auto" and groups > 1 and Cg == 1 and relu != "winograd":
        return _direct(nd, input, weight, bias, dec, relu)
    if relu == "winograd" and not dec.direct:
        raise NotImplementedError("relu='winograd' with a stride or dilation is not supported: the Winograd-domain "
                                  "ReLU would act on the phase convolution's tiles, not on this layer's")
    cl = _is_channels_last(input)
    x = _last(input) if cl else input
    w = weight if dec.direct else dec.weights(weight)
    pads = [p for pair in dec.inner_padding for p in pair]
    y = _ops.conv_spatial(dec.inputs(x, cl), w, bias, pads, _m_arg(m), _ops.resolve_backend(backend, input),
                          precision, relu, groups, cl)
    y = dec.outputs(y, tuple(input.shape[2:]), cl)
    return _first(y) if cl else y


def _direct(nd: int, input, weight, bias, dec, relu):
    """A depthwise layer (C/groups = 1) with ``backend="auto"``: PyTorch's own direct convolution
    (cuDNN's depthwise kernels on a GPU).  Such a layer is memory-bound — its multiplications take
    a sixth of the time its x and y take to move — so Winograd, which saves multiplications and
    moves V and M besides, cannot win (docs/limitations.md has the model's numbers)."""
    import torch.nn.functional as TF

    x = TF.relu(input) if relu == "spatial" else input
    pads = [(ax.lo, ax.hi) for ax in dec.axes]
    if any(lo != hi for lo, hi in pads):  # torch's convolution takes symmetric padding per axis
        x = TF.pad(x, [p for pair in reversed(pads) for p in pair])
        pads = [(0, 0)] * nd
    conv = TF.conv2d if nd == 2 else TF.conv3d
    return conv(x, weight, bias, tuple(ax.stride for ax in dec.axes), tuple(lo for lo, _ in pads),
                tuple(ax.dilation for ax in dec.axes), dec.groups)


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: _IntOrTuple = 1,
           padding: _IntOrTuple = 0, dilation: _IntOrTuple = 1, groups: int = 1, *, m: int | None = None,
           precision: str = "auto", backend: str = "auto", relu: Relu = None) -> torch.Tensor:
    """2D Winograd convolution F(m×m, r×r), a differentiable drop-in for
    ``torch.nn.functional.conv2d``: the same positional order and semantics, every stride,
    dilation, groups, kernel shape and padding (docs/limitations.md says how each runs).

    Args:
        input: N×C×H×W (float32, float64, float16; bfloat16 tensors are refused: NumPy and
            CuPy have no bfloat16 dtype, use float32 with ``precision="bf16"``).
        weight: K×C×r×r, same dtype and device as ``input``.
        bias: optional (K,).
        stride, dilation: an int or (h, w), as PyTorch: one stride-1 plan on the phases of
            the input (:mod:`magma_wino.decompose`).
        groups: as PyTorch (block-diagonal products); a depthwise layer (C/groups = 1) with
            ``backend="auto"`` runs PyTorch's own direct convolution (memory-bound: Winograd
            cannot win there), with an explicit backend the Winograd kernels.
        padding: any zero padding >= 0 per side: an int, one int per axis, (lo, hi) pairs,
            2·nd ints in ``torch.nn.functional.pad``'s order, "same" (stride 1) or "valid".
        m: output tile per axis (None: 4).
        precision: the products' precision mode ("auto", "fp32", "tf32x3", "tf32", "fp16",
            "bf16", "fp64"; see docs/api.md, "Precision"); float64 data runs in "fp64".
        backend: "auto" ("cuda" for CUDA tensors, "numpy" for CPU tensors), "cuda",
            "emulator" (the kernels' source on the CPU, CPU tensors) or "numpy".
        relu: None, "spatial" (ReLU of the input before the transform) or "winograd" (ReLU
            after the input transform, Liu et al. 2018; stride and dilation 1 only).

    A ``channels_last`` input is read in place (stride 1, dilation 1) and the result is
    ``channels_last`` too.
    """
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, m, precision, backend, relu)


def conv3d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: _IntOrTuple = 1,
           padding: _IntOrTuple = 0, dilation: _IntOrTuple = 1, groups: int = 1, *, m: int | None = None,
           precision: str = "auto", backend: str = "auto", relu: Relu = None) -> torch.Tensor:
    """3D Winograd convolution F(m×m×m, r×r×r) (input N×C×D×H×W, weight K×C×r×r×r; m
    default 2); otherwise as :func:`conv2d`."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, m, precision, backend, relu)


def tile_for(weight_positions: int, r: int | Sequence[int], nd: int) -> int:
    """The output tile m of Winograd-domain weights with ``weight_positions`` rows for a filter
    of ``r`` taps (an int, or one per axis): the m whose tile (:func:`magma_wino.reference.tile_m`:
    F(1, 1) on a one-tap axis of a rectangular filter) has prod(α_i) = ``weight_positions``."""
    rs = (r,) * nd if isinstance(r, int) else tuple(r)
    for m in range(1, max(2, weight_positions) + 1):
        positions = math.prod(tile_alpha(m, rs))
        if positions == weight_positions:
            return m
        if positions > weight_positions and positions > 1:
            break
    square = len(set(rs)) == 1
    if square:
        alpha = round(weight_positions ** (1.0 / nd))
        if all(a**nd != weight_positions for a in (alpha - 1, alpha, alpha + 1)):
            raise ValueError(f"weight has {weight_positions} Winograd positions, not a {nd}-th power α^{nd}")
        raise ValueError(f"weight has α = {alpha} per axis, too few for r = {rs[0]} (α = m + r - 1, m >= 1)")
    raise ValueError(f"weight has {weight_positions} Winograd positions, which no tile F(m, r_i) of the "
                     f"{'×'.join(map(str, rs))} filter has (α_i = m + r_i - 1 on each axis of more than one tap)")


def _kernel(r: object, nd: int) -> tuple[int, ...]:
    if isinstance(r, bool) or not isinstance(r, (int, Sequence)) or isinstance(r, str):
        raise ValueError(f"r must be an int >= 1 or a tuple of {nd} (the filter size the weights belong to), "
                         f"got {r!r}")
    rs = (r,) * nd if isinstance(r, int) else tuple(r)
    if len(rs) != nd or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in rs):
        raise ValueError(f"r must be an int >= 1 or a tuple of {nd} (the filter size the weights belong to), "
                         f"got {r!r}")
    return tuple(int(i) for i in rs)


def winograd_weight_shape(in_channels: int, out_channels: int, kernel_size: _IntOrTuple, nd: int = 2, *,
                          m: int | None = None, stride: _IntOrTuple = 1, dilation: _IntOrTuple = 1,
                          groups: int = 1) -> tuple[int, int, int]:
    """The shape of the Winograd-domain weight U of a layer: (positions, K, C'), with C' =
    C/groups times the input phases of a stride (:mod:`magma_wino.decompose`) and the positions
    those of the tile of its (phase) filter (``m`` None: 4 in 2D, 2 in 3D)."""
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    dec = decompose(nd, _tuple(kernel_size, nd, "kernel_size"), stride, 0, dilation, groups, rectangular=True)
    if in_channels % dec.groups:
        raise ValueError(f"in_channels = {in_channels} is not a multiple of groups = {dec.groups}")
    positions = math.prod(tile_alpha(_m_arg(m) or (4 if nd == 2 else 2), dec.inner_kernel))
    return positions, int(out_channels), in_channels // dec.groups * dec.in_phases


def _conv_winograd(nd, input, weight, bias, padding, r, mask, m, relu, sparse, precision, backend,
                   stride=1, dilation=1, groups=1):
    _check_common(input, weight, bias, nd, "winograd")
    rs = _kernel(r, nd)
    # decompose checks stride, padding, dilation and groups (an int >= 1), naming each
    dec = decompose(nd, rs, stride, padding, dilation, groups, rectangular=True)
    groups, Ls = dec.groups, dec.inner_kernel
    m_tile = tile_for(int(weight.shape[0]), Ls, nd)
    if m is not None and m != m_tile:
        raise ValueError(f"m={m!r} does not match weight: {weight.shape[0]} positions are F({m_tile}, "
                         f"{'×'.join(map(str, Ls))})")
    K, Ci = int(weight.shape[1]), int(weight.shape[2])
    phases = dec.in_phases
    if Ci % phases:
        raise ValueError(f"weight (α^nd×K×C') has C' = {Ci} input channels, not a multiple of the {phases} "
                         f"input phases of stride={stride}, dilation={dilation} (C' = C/groups · phases)")
    if input.shape[1] != Ci // phases * groups:
        raise ValueError(f"channel mismatch: input has C = {input.shape[1]} channels but weight (α^nd×K×C') has "
                         f"C' = {Ci}" + (f" = C/groups · {phases} phases" if phases > 1 else "")
                         + (f" with groups = {groups} (C = {Ci // phases * groups})" if groups > 1 else ""))
    if K % groups:
        raise ValueError(f"weight has K = {K} output channels, not a multiple of groups = {groups}")
    if bias is not None and tuple(bias.shape) != (K,):
        raise ValueError(f"bias must have shape ({K},), got {tuple(bias.shape)}")
    if mask is not None:
        _tensor(mask, "mask")
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"mask must have the weight's shape {tuple(weight.shape)}, got {tuple(mask.shape)}")
        if mask.device != input.device:
            raise TypeError(f"mask is on {mask.device} but input is on {input.device}")
    if sparse is not None and not isinstance(sparse, bool):
        raise TypeError(f"sparse must be None, True or False, got {sparse!r}")
    relu = _relu_arg(relu)
    if relu == "winograd" and not dec.direct:
        raise NotImplementedError("relu='winograd' with a stride or dilation is not supported: the Winograd-domain "
                                  "ReLU would act on the phase convolution's tiles, not on this layer's")
    dec.out_spatial(tuple(input.shape[2:]), "input")
    cl = _is_channels_last(input)
    x = dec.inputs(_last(input) if cl else input, cl)
    pads = [p for pair in dec.inner_padding for p in pair]
    y = _ops.conv_winograd(x, weight, mask, bias, list(Ls), pads, m_tile, _ops.resolve_backend(backend, input),
                           precision, relu, sparse, cl, groups)
    y = dec.outputs(y, tuple(input.shape[2:]), cl)
    return _first(y) if cl else y


def conv2d_winograd(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                    padding: _IntOrTuple = 0, *, r: _IntOrTuple, mask: torch.Tensor | None = None,
                    m: int | None = None, relu: Relu = None, sparse: bool | None = None, precision: str = "auto",
                    backend: str = "auto", stride: _IntOrTuple = 1, dilation: _IntOrTuple = 1,
                    groups: int = 1) -> torch.Tensor:
    """2D convolution whose weight is the Winograd-domain U (α²×K×C) of an r×r filter:
    y = Aᵀ[(U ⊙ mask) ⊙ V]A + bias, V = Bᵀ d B (ReLU(V) with ``relu="winograd"``: the
    Winograd-ReLU layer of Liu et al. 2018).  With a ``stride`` / ``dilation`` U is the weights
    of the stride-1 phase layer :mod:`magma_wino.decompose` rewrites the layer into (its
    phase filter, its C/groups · phases input channels); with ``groups``, α²×K×(C/groups)
    block-diagonal products.  :func:`winograd_weight_shape` gives U's shape for a layer, and
    ``magma_wino.torch.WinogradDomainConv2d.from_conv`` the U of a ``nn.Conv2d``.

    Args:
        input: N×C×H×W.
        weight: U, positions×K×C' (α_h·α_w positions of the tile of the (phase) filter: m is
            read from it; C' = C/groups · input phases).
        bias: optional (K,).
        padding: any zero padding per side, as :func:`conv2d` ("same" / "valid" too).
        r: the filter size the weights belong to: an int, or (r_h, r_w) (a rectangular tile).
        mask: optional bool tensor of the weight's shape: U is zero where it is False, and so
            is dL/dU (the pruning pattern is fixed during fine-tuning).
        m: optional, checked against the weight's shape.
        relu: None, "spatial" or "winograd" (stride and dilation 1 only).
        sparse: None (the plan chooses the batched CSR product when the masked density is
            low), True (CSR) or False (dense).
        precision, backend: as :func:`conv2d`.
        stride, dilation, groups: as :func:`conv2d` (keyword-only here).
    """
    return _conv_winograd(2, input, weight, bias, padding, r, mask, m, relu, sparse, precision, backend, stride,
                          dilation, groups)


def conv3d_winograd(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                    padding: _IntOrTuple = 0, *, r: _IntOrTuple, mask: torch.Tensor | None = None,
                    m: int | None = None, relu: Relu = None, sparse: bool | None = None, precision: str = "auto",
                    backend: str = "auto", stride: _IntOrTuple = 1, dilation: _IntOrTuple = 1,
                    groups: int = 1) -> torch.Tensor:
    """3D :func:`conv2d_winograd` (input N×C×D×H×W, weight α³×K×C)."""
    return _conv_winograd(3, input, weight, bias, padding, r, mask, m, relu, sparse, precision, backend, stride,
                          dilation, groups)

