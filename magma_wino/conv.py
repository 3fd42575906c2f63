"""One-call Winograd convolution: ``conv2d`` and ``conv3d``.

Each builds a plan (:class:`~magma_wino.layer.WinogradConv2d` / ``3d``) and runs it once;
to run the same weights many times, keep the plan.
"""

from __future__ import annotations

from typing import Any

from . import _backend, _checks
from .layer import WinogradConv2d, WinogradConv3d

__all__ = ["conv2d", "conv3d"]


def conv2d(
    x: Any,
    w: Any,
    bias: Any = None,
    padding: int | tuple[int, int] = 0,
    *,
    m: int = 4,
    backend: str = "auto",
    out: Any = None,
    points: Any = None,
    precision: str = "auto",
    allow_inaccurate: bool = False,
    fused: bool | None = None,
) -> Any:
    """2D convolution (cross-correlation, stride 1) by Winograd F(m×m, r×r).

    Everything after ``padding`` is keyword-only: the positional order differs from
    ``torch.nn.functional.conv2d`` (whose fourth argument is the stride), so a ported call
    ``conv2d(x, w, b, 1, 1)`` is a TypeError, not a silent F(1, r).  PyTorch users:
    :func:`magma_wino.torch.functional.conv2d` takes torch's order.

    Args:
        x: input N×C×H×W, float32, float64, float16 or bfloat16 (16-bit data computes in
            float32) — CuPy / device array for ``backend="cuda"``,
            NumPy for ``"emulator"`` and ``"numpy"`` (or any host array offering DLPack or
            ``__array__``, e.g. a PyTorch CPU tensor: viewed as NumPy without a copy).
        w: weights K×C×r×r of x's dtype; r is taken from w.
        bias: optional (K,) array.
        padding: zero padding, int or (pad_h, pad_w), each in [0, r - 1].
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
        y, N×K×Ho×Wo with Ho = H + 2·pad_h − r + 1, of x's dtype, on x's backend.

    Raises:
        ValueError / TypeError naming the argument for bad shapes, dtypes, ranks,
        non-contiguous arrays, host arrays given to the cuda backend, padding > r - 1 or an
        unsupported F(m, r); :class:`magma_wino.MagmaWinoError` subclasses for errors of
        the compiled layer.
    """
    # The weights decide "auto", as they do for a plan; x must then live there too.
    backend = _backend.resolve(backend, w, bias)
    x, w, bias, out = (
        _backend.coerce(a, n, backend) for a, n in ((x, "x"), (w, "w"), (bias, "bias"), (out, "out"))
    )
    _checks.check_conv_args(x, w, bias, padding, 2)
    return WinogradConv2d(w, bias, padding, m, backend, points=points, precision=precision,
                          allow_inaccurate=allow_inaccurate, fused=fused)(x, out=out)


def conv3d(
    x: Any,
    w: Any,
    bias: Any = None,
    padding: int | tuple[int, int, int] = 0,
    *,
    m: int = 2,
    backend: str = "auto",
    out: Any = None,
    points: Any = None,
    precision: str = "auto",
    allow_inaccurate: bool = False,
) -> Any:
    """3D convolution (stride 1) by Winograd F(m×m×m, r×r×r): x N×C×D×H×W, w K×C×r×r×r.

    As :func:`conv2d`, one axis more; F(2,3) and F(4,3) have specialised 3D kernels.
    """
    # The weights decide "auto", as they do for a plan; x must then live there too.
    backend = _backend.resolve(backend, w, bias)
    x, w, bias, out = (
        _backend.coerce(a, n, backend) for a, n in ((x, "x"), (w, "w"), (bias, "bias"), (out, "out"))
    )
    _checks.check_conv_args(x, w, bias, padding, 3)
    return WinogradConv3d(w, bias, padding, m, backend, points=points, precision=precision,
                          allow_inaccurate=allow_inaccurate)(x, out=out)
