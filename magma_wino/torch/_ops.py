"""The ``torch.library`` operators behind :mod:`magma_wino.torch`.

Four custom operators in the ``magma_wino`` namespace, each with a fake (meta) implementation
so that ``torch.compile`` / AOT autograd can trace them without running them:

==============================================  ============================================
``magma_wino::conv_spatial``                    y = conv(x, weight) + bias, weight K×C×r^nd
``magma_wino::conv_spatial_backward``           (dL/dx, dL/dweight, dL/dbias) of the above
``magma_wino::conv_winograd``                   y = Aᵀ[(U ⊙ mask) ⊙ V]A + bias, U α^nd×K×C
``magma_wino::conv_winograd_backward``          (dL/dx, dL/dU, dL/dbias), dL/dU zero where ~mask
==============================================  ============================================

The forward operators have an autograd formula (``register_autograd``) that calls the backward
operator, which builds the same plan again from the saved tensors and runs
:meth:`magma_wino.WinogradConv2d.backward` (V is recomputed from x there: the plan is cheap to
rebuild — one filter transform — and keeping no Python plan on ``ctx`` is what lets
``torch.compile`` trace the backward graph).  Double backward is not supported.

Arrays: CPU tensors go to the ``numpy`` / ``emulator`` backends as zero-copy NumPy views
(``tensor.detach().numpy()``); CUDA tensors go to the ``cuda`` backend as zero-copy CuPy views
(DLPack) with PyTorch's current stream made CuPy's current stream, so the kernels are ordered
with the surrounding PyTorch work.  ``backend="auto"`` is ``"cuda"`` for CUDA tensors and
``"numpy"`` for CPU tensors.  Results come back zero copy (``torch.from_numpy`` /
``torch.from_dlpack``).

Gradients that are not needed are returned as empty tensors by the backward operators (the
operator schema has no optional outputs) and turned into ``None`` by the autograd formula.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .. import layer as _layer

__all__ = [
    "conv_spatial",
    "conv_spatial_backward",
    "conv_winograd",
    "conv_winograd_backward",
    "resolve_backend",
]

_EMPTY: tuple[int, ...] = (0,)
_PLAN_CLASS = {2: _layer.WinogradConv2d, 3: _layer.WinogradConv3d}
_HOST_BACKENDS = ("numpy", "emulator")


# --------------------------------------------------------------------------- conversions


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """``backend`` with "auto" resolved: "cuda" for CUDA tensors, "numpy" for CPU tensors."""
    if not isinstance(backend, str) or backend not in ("auto", "cuda", "emulator", "numpy"):
        raise ValueError(f"backend must be 'auto', 'cuda', 'emulator' or 'numpy', got {backend!r}")
    if backend != "auto":
        return backend
    return "cuda" if x.device.type == "cuda" else "numpy"


def _plan_class(x: torch.Tensor) -> type[_layer._WinogradConvNd]:
    nd = x.dim() - 2
    if nd not in _PLAN_CLASS:
        raise ValueError(f"input must be 4-D (N×C×H×W) or 5-D (N×C×D×H×W), got shape {tuple(x.shape)}")
    return _PLAN_CLASS[nd]


def _check_device(t: torch.Tensor, name: str, backend: str) -> None:
    if backend in _HOST_BACKENDS and t.device.type != "cpu":
        raise TypeError(f"{name} is on {t.device} but backend={backend!r} runs on CPU tensors; "
                        f"use backend='cuda' (or 'auto') or move it with .cpu()")
    if backend == "cuda" and t.device.type != "cuda":
        raise TypeError(f"{name} is on {t.device} but backend='cuda' needs CUDA tensors")


def _to_array(t: torch.Tensor | None, name: str, backend: str) -> Any:
    """A zero-copy NumPy (host backends) or CuPy (cuda) view of a C-contiguous ``t``."""
    if t is None:
        return None
    _check_device(t, name, backend)
    t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()  # channels_last / strided tensors: the plans take C order (a copy)
    if t.dtype == torch.bfloat16:  # (the functional API refuses it first; this guards the operators)
        raise TypeError(f"{name} is bfloat16, which NumPy and CuPy cannot view; give float32 data "
                        f"(precision='bf16' runs the products in bfloat16)")
    if backend in _HOST_BACKENDS:
        return t.numpy()
    import cupy

    return cupy.from_dlpack(t)


def _to_tensor(a: Any, like: torch.Tensor) -> torch.Tensor:
    """A plan's result (NumPy / CuPy) as a tensor on ``like``'s device (zero copy)."""
    if isinstance(a, np.ndarray):
        if not a.flags.writeable:
            a = a.copy()
        return torch.from_numpy(a)
    return torch.from_dlpack(a)


@contextlib.contextmanager
def _stream_scope(x: torch.Tensor, backend: str) -> Iterator[None]:
    """On the cuda backend: PyTorch's current stream of x's device as CuPy's current stream,
    around the plan's construction (its filter transform) and its calls: the plans launch on
    CuPy's current stream, so the kernels are ordered with PyTorch's work on the tensors."""
    if backend != "cuda":
        yield
        return
    import cupy

    dev = x.device.index if x.device.index is not None else torch.cuda.current_device()
    stream = torch.cuda.current_stream(dev)
    with cupy.cuda.Device(dev), cupy.cuda.ExternalStream(stream.cuda_stream, dev):
        yield


def _relu_arg(relu: str | None) -> str | None:
    return relu if relu else None


def _pairs(padding: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """The operators' flat padding [lo_0, hi_0, lo_1, hi_1, ...] (axis order) as per-axis pairs."""
    return tuple((int(padding[2 * i]), int(padding[2 * i + 1])) for i in range(len(padding) // 2))


def _out_shape(x: torch.Tensor, K: int, r: int | Sequence[int], padding: Sequence[int],
               channels_last: bool = False) -> list[int]:
    """y's shape: N×K×spatial, or N×spatial×K when ``channels_last`` (x is then N×spatial×C);
    ``r``: the filter size, one int or one per axis."""
    spatial = x.shape[1:-1] if channels_last else x.shape[2:]
    rs = list(r) if isinstance(r, Sequence) else [r] * len(spatial)
    out = [s + lo + hi - ri + 1 for s, (lo, hi), ri in zip(spatial, _pairs(padding), rs)]
    return [x.shape[0], *out, K] if channels_last else [x.shape[0], K, *out]


def _layout(x: torch.Tensor, channels_last: bool) -> str | None:
    return {4: "NHWC", 5: "NDHWC"}[x.dim()] if channels_last else None


def _spatial_plan(x, weight, bias, padding, m, backend, precision, relu, groups, channels_last):
    be = resolve_backend(backend, x)
    cls = _plan_class(x)
    w, b = _to_array(weight, "weight", be), _to_array(bias, "bias", be)
    return cls(w, b, _pairs(padding), m if m > 0 else None, be, relu=_relu_arg(relu), precision=precision,
               layout=_layout(x, channels_last), groups=groups), be


def _winograd_plan(x, U, mask, bias, r, padding, m, backend, precision, relu, sparse, channels_last, groups=1):
    be = resolve_backend(backend, x)
    cls = _plan_class(x)
    # the mask's dtype and shape are checked by from_winograd, which names it
    u, b, msk = _to_array(U, "weight", be), _to_array(bias, "bias", be), _to_array(mask, "mask", be)
    sp: bool | str = "auto" if sparse is None else bool(sparse)
    rs = tuple(int(i) for i in r) if isinstance(r, Sequence) else (int(r),)
    plan = cls.from_winograd(u, rs[0] if len(set(rs)) == 1 else rs, mask=msk, bias=b, padding=_pairs(padding),
                             m=m if m > 0 else None, backend=be, relu=_relu_arg(relu), sparse=sp,
                             precision=precision, layout=_layout(x, channels_last), groups=groups)
    return plan, be


def _grads(plan, x, grad_output, be, need_x, need_w, need_b, w_like, b_like):
    """The three gradients of ``plan`` as tensors (empty where not needed)."""
    g = plan.backward(_to_array(x, "input", be), _to_array(grad_output, "grad_output", be),
                      input_grad=need_x, weight_grad=need_w)
    gx = _to_tensor(g.grad_input, x) if need_x else x.new_empty(_EMPTY)
    gw = _to_tensor(g.grad_weight, w_like) if need_w else w_like.new_empty(_EMPTY)
    gb = _to_tensor(g.grad_bias, b_like) if need_b and g.grad_bias is not None else x.new_empty(_EMPTY)
    return gx, gw, gb


# --------------------------------------------------------------------------- spatial weights


@torch.library.custom_op("magma_wino::conv_spatial", mutates_args=())
def conv_spatial(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: list[int], m: int,
                 backend: str, precision: str, relu: str | None, groups: int = 1,
                 channels_last: bool = False) -> torch.Tensor:
    """Stride-1 Winograd convolution with spatial weights (K×C/groups×r^nd); ``padding``: per
    side, [lo_0, hi_0, lo_1, hi_1, ...] in axis order; ``m`` = 0: the plan's default tile (4 in
    2D, 2 in 3D); ``relu``: None, "spatial" or "winograd"; ``channels_last``: x is N×spatial×C
    (C-contiguous, e.g. the permuted view of a ``channels_last`` tensor) and so is y."""
    with _stream_scope(x, resolve_backend(backend, x)):  # the plan's filter transform too
        plan, be = _spatial_plan(x, weight, bias, padding, m, backend, precision, relu, groups, channels_last)
        return _to_tensor(plan(_to_array(x, "input", be)), x)


@conv_spatial.register_fake
def _(x, weight, bias, padding, m, backend, precision, relu, groups=1, channels_last=False):
    return x.new_empty(_out_shape(x, weight.shape[0], tuple(weight.shape[2:]), padding, channels_last))


@torch.library.custom_op("magma_wino::conv_spatial_backward", mutates_args=())
def conv_spatial_backward(grad_output: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor | None, padding: list[int], m: int, backend: str, precision: str,
                          relu: str | None, groups: int, channels_last: bool, input_grad: bool, weight_grad: bool,
                          bias_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dx, dL/dweight, dL/dbias) of :func:`conv_spatial`; empty tensors for those not asked."""
    with _stream_scope(x, resolve_backend(backend, x)):
        plan, be = _spatial_plan(x, weight, bias, padding, m, backend, precision, relu, groups, channels_last)
        return _grads(plan, x, grad_output, be, input_grad, weight_grad, bias_grad and bias is not None,
                      weight, bias)


@conv_spatial_backward.register_fake
def _(grad_output, x, weight, bias, padding, m, backend, precision, relu, groups, channels_last, input_grad,
      weight_grad, bias_grad):
    gx = x.new_empty(x.shape if input_grad else _EMPTY)
    gw = weight.new_empty(weight.shape if weight_grad else _EMPTY)
    gb = x.new_empty(bias.shape if bias_grad and bias is not None else _EMPTY)
    return gx, gw, gb


def _setup_spatial(ctx, inputs, output):
    x, weight, bias, padding, m, backend, precision, relu, groups, channels_last = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.config = (list(padding), m, backend, precision, relu, groups, channels_last)


def _backward_spatial(ctx, grad):
    x, weight, bias = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    if not (need_x or need_w or need_b):
        return (None,) * 10
    gx, gw, gb = conv_spatial_backward(grad.contiguous(), x, weight, bias, *ctx.config, need_x, need_w,
                                       need_b and bias is not None)
    return (gx if need_x else None, gw if need_w else None, gb if need_b and bias is not None else None,
            *(None,) * 7)


conv_spatial.register_autograd(_backward_spatial, setup_context=_setup_spatial)


# --------------------------------------------------------------------------- Winograd-domain weights


@torch.library.custom_op("magma_wino::conv_winograd", mutates_args=())
def conv_winograd(x: torch.Tensor, U: torch.Tensor, mask: torch.Tensor | None, bias: torch.Tensor | None,
                  r: list[int], padding: list[int], m: int, backend: str, precision: str, relu: str | None,
                  sparse: bool | None, channels_last: bool = False, groups: int = 1) -> torch.Tensor:
    """Convolution with Winograd-domain weights U (α^nd×K×C/groups), zero where the bool
    ``mask`` is False; ``r`` the filter size per axis; ``sparse``: None (the plan decides by
    density), True (the batched CSR product) or False (dense); ``padding``, ``channels_last``
    and ``groups`` as :func:`conv_spatial`."""
    with _stream_scope(x, resolve_backend(backend, x)):
        plan, be = _winograd_plan(x, U, mask, bias, r, padding, m, backend, precision, relu, sparse, channels_last,
                                  groups)
        return _to_tensor(plan(_to_array(x, "input", be)), x)


@conv_winograd.register_fake
def _(x, U, mask, bias, r, padding, m, backend, precision, relu, sparse, channels_last=False, groups=1):
    return x.new_empty(_out_shape(x, U.shape[1], r, padding, channels_last))


@torch.library.custom_op("magma_wino::conv_winograd_backward", mutates_args=())
def conv_winograd_backward(grad_output: torch.Tensor, x: torch.Tensor, U: torch.Tensor, mask: torch.Tensor | None,
                           bias: torch.Tensor | None, r: list[int], padding: list[int], m: int, backend: str,
                           precision: str, relu: str | None, sparse: bool | None, channels_last: bool,
                           groups: int, input_grad: bool, weight_grad: bool,
                           bias_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dx, dL/dU, dL/dbias) of :func:`conv_winograd` (dL/dU zero where ``mask`` is False)."""
    with _stream_scope(x, resolve_backend(backend, x)):
        plan, be = _winograd_plan(x, U, mask, bias, r, padding, m, backend, precision, relu, sparse, channels_last,
                                  groups)
        return _grads(plan, x, grad_output, be, input_grad, weight_grad, bias_grad and bias is not None, U, bias)


@conv_winograd_backward.register_fake
def _(grad_output, x, U, mask, bias, r, padding, m, backend, precision, relu, sparse, channels_last, groups,
      input_grad, weight_grad, bias_grad):
    gx = x.new_empty(x.shape if input_grad else _EMPTY)
    gw = U.new_empty(U.shape if weight_grad else _EMPTY)
    gb = x.new_empty(bias.shape if bias_grad and bias is not None else _EMPTY)
    return gx, gw, gb


def _setup_winograd(ctx, inputs, output):
    x, U, mask, bias, r, padding, m, backend, precision, relu, sparse, channels_last, groups = inputs
    ctx.save_for_backward(x, U, mask, bias)
    ctx.config = (list(r), list(padding), m, backend, precision, relu, sparse, channels_last, groups)


def _backward_winograd(ctx, grad):
    x, U, mask, bias = ctx.saved_tensors
    need_x, need_u, _, need_b = ctx.needs_input_grad[:4]
    none = (None,) * 9
    if not (need_x or need_u or need_b):
        return (None, None, None, None) + none
    gx, gu, gb = conv_winograd_backward(grad.contiguous(), x, U, mask, bias, *ctx.config, need_x, need_u,
                                        need_b and bias is not None)
    return (gx if need_x else None, gu if need_u else None, None,
            gb if need_b and bias is not None else None) + none


conv_winograd.register_autograd(_backward_winograd, setup_context=_setup_winograd)


# --------------------------------------------------------------------------- double backward


def _no_double_backward(ctx, *grads):
    raise NotImplementedError("magma_wino.torch: double backward (create_graph=True, then differentiating the "
                              "gradients again) is not supported; the backward operators have no autograd formula")


for _op in (conv_spatial_backward, conv_winograd_backward):
    _op.register_autograd(_no_double_backward, setup_context=lambda ctx, inputs, output: None)
