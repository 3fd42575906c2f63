"""One-call Winograd convolution: ``conv2d`` and ``conv3d``.

Each builds a plan (:class:`~magma_wino.layer.WinogradConv2d` / ``3d``) and runs it once;
to run the same weights many times, keep the plan.  Every convolution a CNN has goes through:
stride, dilation and rectangular filters by :mod:`magma_wino.decompose` (one stride-1 square
plan on the phases of x), groups by the plans' block-diagonal products, any zero padding per
side by the kernels, channels-last arrays as they are (docs/limitations.md).
"""

from __future__ import annotations

from typing import Any

from . import _backend, _checks
from .decompose import decompose
from .layer import WinogradConv2d, WinogradConv3d

__all__ = ["conv2d", "conv3d"]

_LAYOUTS = {2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def _channels_last(x: Any, layout: str | None, nd: int) -> tuple[bool, bool]:
    """(channels_last, by_strides): whether x is channels-last, and whether that was read from
    its strides (an N×C×spatial-shaped array whose memory is N×spatial×C, as a PyTorch
    ``channels_last`` tensor viewed through DLPack) rather than given by ``layout``."""
    first, last = _LAYOUTS[nd]
    if layout is not None:
        if not isinstance(layout, str) or layout.upper() not in (first, last):
            raise ValueError(f"layout must be None, {first!r} or {last!r} for a {nd}D convolution, got {layout!r}")
        return layout.upper() == last, False
    strides = getattr(x, "strides", None)
    if strides is None or getattr(x, "ndim", None) != nd + 2 or getattr(x, "flags", None) is None:
        return False, False
    if x.flags.c_contiguous:
        return False, False
    view = x.transpose(0, *range(2, nd + 2), 1)
    return (True, True) if view.flags.c_contiguous else (False, False)


def _conv(nd: int, x: Any, w: Any, bias: Any, padding: Any, stride: Any, dilation: Any, groups: Any,
          layout: str | None, m: int, backend: str, out: Any, **plan_kw: Any) -> Any:
    # The weights decide "auto", as they do for a plan; x must then live there too.
    backend = _backend.resolve(backend, w, bias)
    x, w, bias, out = (
        _backend.coerce(a, n, backend) for a, n in ((x, "x"), (w, "w"), (bias, "bias"), (out, "out"))
    )
    cl, by_strides = _channels_last(x, layout, nd)
    if by_strides:  # the N×spatial×C view of x's own memory (no copy); y comes back the same way
        x = x.transpose(0, *range(2, nd + 2), 1)
        if out is not None and hasattr(out, "transpose") and getattr(out, "ndim", None) == nd + 2:
            out = out.transpose(0, *range(2, nd + 2), 1)
    lay = _LAYOUTS[nd][1 if cl else 0]
    xshape = _checks.check_array(x, "x", nd + 2, "×".join(lay))  # N×C×H×W or N×H×W×C
    wshape = _checks.check_array(w, "w", nd + 2, _checks.LAYOUTS[("w", nd)])
    # A rectangular inner filter runs the plans' rectangular tiles (three-phase); fused=True asks
    # for the fused kernel, which has the square F(m, 3) only.
    dec = decompose(nd, wshape[2:], stride, padding, dilation, groups, rectangular=plan_kw.get("fused") is not True)
    C = xshape[-1] if cl else xshape[1]
    if C != wshape[1] * dec.groups:
        per = f"C/groups = {wshape[1]} with groups = {dec.groups}" if dec.groups != 1 else f"C = {wshape[1]}"
        raise ValueError(f"channel mismatch: x has C = {C} channels but w has {per}")
    _checks.check_bias(bias, wshape[0])
    in_spatial = xshape[1:-1] if cl else xshape[2:]
    out_sp = dec.out_spatial(in_spatial, "x")
    as_is = dec.direct and dec.inner_kernel == tuple(wshape[2:])
    plan_cls = WinogradConv2d if nd == 2 else WinogradConv3d
    plan = plan_cls(w if as_is else dec.weights(w), bias, dec.inner_padding, m, backend,
                    groups=dec.groups, layout=lay, **plan_kw)
    if dec.direct:
        y = plan(x, out=out)  # the plan checks out
    else:
        if out is not None:  # checked up front by the plan's own check: never broadcast or cast into it
            K = wshape[0]
            out = plan._work(out, "out", (xshape[0], *out_sp, K) if cl else (xshape[0], K, *out_sp), plan.dtype)
        y = dec.outputs(plan(dec.inputs(x, cl)), in_spatial, cl)
        if out is not None:
            out[...] = y
            y = out
    return y.transpose(0, nd + 1, *range(1, nd + 1)) if by_strides else y


def conv2d(
    x: Any,
    w: Any,
    bias: Any = None,
    padding: Any = 0,
    *,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    layout: str | None = None,
    m: int = 4,
    backend: str = "auto",
    out: Any = None,
    points: Any = None,
    precision: str = "auto",
    allow_inaccurate: bool = False,
    fused: bool | None = None,
) -> Any:
    """2D convolution (cross-correlation) by Winograd F(m×m, r×r), with PyTorch's stride,
    dilation, groups and padding semantics.

    Everything after ``padding`` is keyword-only: this function's fourth positional argument
    has always been the padding, while ``torch.nn.functional.conv2d``'s is the stride, so a
    ported call ``conv2d(x, w, b, 1, 1)`` is a TypeError, not a silently different layer.
    PyTorch users: :func:`magma_wino.torch.functional.conv2d` takes torch's positional order.

    Args:
        x: input N×C×H×W, float32, float64, float16 or bfloat16 (16-bit data computes in
            float32) — CuPy / device array for ``backend="cuda"``,
            NumPy for ``"emulator"`` and ``"numpy"`` (or any host array offering DLPack or
            ``__array__``, e.g. a PyTorch CPU tensor: viewed as NumPy without a copy).
        w: weights K×(C/groups)×r_h×r_w of x's dtype (rectangular filters too).
        bias: optional (K,) array.
        padding: zero padding of any size per side: an int, (pad_h, pad_w), ((top, bottom),
            (left, right)), (left, right, top, bottom) as ``torch.nn.functional.pad`` orders
            it, "same" (stride 1; even filters get the odd zero after, as PyTorch) or "valid".
        stride, dilation: an int or (h, w), as PyTorch; run as one stride-1 plan on the
            phases of x (:mod:`magma_wino.decompose`: one gather of x, one of y).
        groups: grouped convolution (``groups = C``: depthwise), as PyTorch.
        layout: "NCHW" or "NHWC" (x N×H×W×C, y N×Ho×Wo×K); None: NCHW, or channels-last when
            x is N×C×H×W-shaped with channels-last strides (a PyTorch ``channels_last``
            tensor through DLPack) — read in place, y returned the same way.
        m: output tile size; F(2,3), F(4,3), F(6,3), F(2,5) have specialised kernels, any
            other F(m, r) with m + r - 1 <= 16 runs the generic kernels.
        backend: "auto" (cuda for device arrays, numpy for host arrays), "cuda",
            "emulator" or "numpy".
        out: optional preallocated output N×K×Ho×Wo.
        points: optional interpolation points (see :mod:`magma_wino.transforms`).
        precision: "auto" (default), "fp32", "tf32x3", "tf32", "fp16", "bf16" or "fp64":
            what the products compute in (docs/api.md, "Precision").
        allow_inaccurate: run a mode whose measured error for F(m, r) exceeds the usable
            limit instead of refusing it.
        fused: None (the model chooses), True or False: the fused kernel of F(2,3) / F(4,3)
            or the three phases, as for :class:`WinogradConv2d` (docs/fused.md).

    Returns:
        y, N×K×Ho×Wo (layout NHWC: N×Ho×Wo×K) with PyTorch's
        Ho = ⌊(H + pad_top + pad_bottom − dilation·(r_h − 1) − 1) / stride⌋ + 1, of x's dtype,
        on x's backend.

    Raises:
        ValueError / TypeError naming the argument for bad shapes, dtypes, ranks,
        non-contiguous arrays, host arrays given to the cuda backend, a bad stride, dilation,
        groups or padding, or an unsupported F(m, r); :class:`magma_wino.MagmaWinoError` subclasses for errors of
        the compiled layer.
    """
    return _conv(2, x, w, bias, padding, stride, dilation, groups, layout, m, backend, out, points=points,
                 precision=precision, allow_inaccurate=allow_inaccurate, fused=fused)


def conv3d(
    x: Any,
    w: Any,
    bias: Any = None,
    padding: Any = 0,
    *,
    stride: int | tuple[int, int, int] = 1,
    dilation: int | tuple[int, int, int] = 1,
    groups: int = 1,
    layout: str | None = None,
    m: int = 2,
    backend: str = "auto",
    out: Any = None,
    points: Any = None,
    precision: str = "auto",
    allow_inaccurate: bool = False,
) -> Any:
    """3D convolution by Winograd F(m×m×m, r×r×r): x N×C×D×H×W (layout "NDHWC": N×D×H×W×C),
    w K×(C/groups)×r_d×r_h×r_w.

    As :func:`conv2d`, one axis more (padding: 6 flat ints are (left, right, top, bottom,
    front, back)); F(2,3) and F(4,3) have specialised 3D kernels.
    """
    return _conv(3, x, w, bias, padding, stride, dilation, groups, layout, m, backend, out, points=points,
                 precision=precision, allow_inaccurate=allow_inaccurate)
