"""Argument validation shared by the NumPy references and the GPU API.

The helpers only look at ``.shape``, ``.ndim`` and ``.dtype``, so they accept
NumPy arrays, CuPy arrays and anything else array-like that has those
attributes (nothing is copied to the host).  Conventions:

* ``ValueError`` for wrong values and shapes, ``TypeError`` for wrong types;
* every message starts with (or names) the offending argument, e.g.
  ``"x must be 4-D (N×C×H×W) for a 2D convolution, got shape (3, 4)"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "LAYOUTS",
    "as_padding",
    "check_array",
    "check_bias",
    "check_conv_args",
    "check_input_args",
    "compute_dtype",
    "out_spatial",
    "spatial_ndim",
]

#: Human-readable layouts, keyed by (argument name, spatial ndim).
LAYOUTS = {
    ("x", 2): "N×C×H×W",
    ("x", 3): "N×C×D×H×W",
    ("w", 2): "K×C×r×r",
    ("w", 3): "K×C×r×r×r",
}
_DIM_NAME = {2: "2D", 3: "3D"}


def _shape(a: object, name: str) -> tuple[int, ...]:
    shape = getattr(a, "shape", None)
    if shape is None or not hasattr(a, "dtype"):
        raise TypeError(f"{name} must be an array (with .shape and .dtype), got {type(a).__name__}")
    return tuple(int(s) for s in shape)


def check_dtype(a: object, name: str) -> np.dtype:
    """The dtype of ``a``; TypeError unless it is a real integer or floating type."""
    _shape(a, name)
    dt = np.dtype(a.dtype)  # type: ignore[attr-defined]
    if dt.kind not in "iuf" and dt.name != "bfloat16":  # ml_dtypes' bfloat16 has kind "V"
        raise TypeError(
            f"{name} must have a real numeric dtype (integer or floating point), got {dt}"
        )
    return dt


def check_array(a: object, name: str, ndim: int, layout: str | None = None) -> tuple[int, ...]:
    """Check ``a`` is a non-empty real numeric array of rank ``ndim``; return its shape."""
    shape = _shape(a, name)
    check_dtype(a, name)
    if len(shape) != ndim:
        lay = f" ({layout})" if layout else ""
        raise ValueError(f"{name} must be {ndim}-D{lay}, got shape {shape}")
    if any(s == 0 for s in shape):
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    return shape


def spatial_ndim(x: object, name: str = "x") -> int:
    """Spatial rank (2 or 3) of an input ``x`` of rank 4 (N×C×H×W) or 5 (N×C×D×H×W)."""
    shape = _shape(x, name)
    if len(shape) not in (4, 5):
        raise ValueError(
            f"{name} must be 4-D (N×C×H×W) for 2D or 5-D (N×C×D×H×W) for 3D, got shape {shape}"
        )
    return len(shape) - 2


def as_padding(padding: object, ndim: int) -> tuple[int, ...]:
    """Normalise ``padding`` (an int, or a tuple of ``ndim`` ints) to a tuple of ``ndim`` ints."""
    if isinstance(padding, (bool, np.bool_)):
        raise TypeError("padding must be an int or a tuple of ints, got bool")
    if isinstance(padding, (int, np.integer)):
        pads = (int(padding),) * ndim
    elif isinstance(padding, Sequence) and not isinstance(padding, (str, bytes)):
        if len(padding) != ndim:
            raise ValueError(
                f"padding must be an int or a tuple of {ndim} ints (one per spatial axis) "
                f"for a {_DIM_NAME.get(ndim, f'{ndim}-D')} convolution, got {tuple(padding)!r}"
            )
        for p in padding:
            if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)):
                raise TypeError(f"padding entries must be ints, got {type(p).__name__}")
        pads = tuple(int(p) for p in padding)
    else:
        raise TypeError(f"padding must be an int or a tuple of ints, got {type(padding).__name__}")
    if any(p < 0 for p in pads):
        raise ValueError(f"padding must be >= 0, got {pads}")
    return pads


def out_spatial(
    in_spatial: Sequence[int], r: int, pads: Sequence[int], name: str = "x"
) -> tuple[int, ...]:
    """Output spatial shape ``in + 2·pad − r + 1`` per axis; ValueError if any is < 1."""
    out = tuple(int(s) + 2 * int(p) - int(r) + 1 for s, p in zip(in_spatial, pads))
    if any(o < 1 for o in out):
        padded = tuple(int(s) + 2 * int(p) for s, p in zip(in_spatial, pads))
        raise ValueError(
            f"{name}: spatial size {tuple(in_spatial)} with padding {tuple(pads)} is "
            f"{padded}, smaller than the filter size r = {r}"
        )
    return out


def check_bias(bias: object, k: int) -> None:
    """``bias`` must be None or a real numeric array of shape (K,)."""
    if bias is None:
        return
    shape = _shape(bias, "bias")
    check_dtype(bias, "bias")
    if shape != (k,):
        raise ValueError(f"bias must have shape (K,) = ({k},), got {shape}")


def check_filter(w: object, ndim: int, name: str = "w") -> tuple[int, ...]:
    """Check a spatial filter K×C×r×r (3D: K×C×r×r×r); returns its shape."""
    shape = check_array(w, name, ndim + 2, LAYOUTS.get((name, ndim)))
    if len(set(shape[2:])) != 1:
        raise ValueError(
            f"{name} must have a square (cubic in 3D) r×r filter, got spatial shape {shape[2:]}"
        )
    return shape


def check_input_args(
    x: object, r: int, padding: object, ndim: int | None = None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Check the input ``x`` for an ``r``-tap filter: returns (padding tuple, out spatial shape).

    ``ndim`` (2 or 3) defaults to what ``x``'s rank implies.
    """
    if ndim is None:
        ndim = spatial_ndim(x)
    shape = check_array(x, "x", ndim + 2, LAYOUTS.get(("x", ndim)))
    pads = as_padding(padding, ndim)
    return pads, out_spatial(shape[2:], r, pads)


def check_conv_args(
    x: object, w: object, bias: object, padding: object, ndim: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Validate a convolution ``y = conv(x, w) + bias``; returns (padding tuple, out spatial).

    ``x`` must be N×C×H×W (3D: N×C×D×H×W), ``w`` K×C×r×r (3D: K×C×r×r×r) with the
    same C, ``bias`` None or shape (K,), ``padding`` an int or ``ndim`` ints >= 0.
    """
    xshape = check_array(x, "x", ndim + 2, LAYOUTS.get(("x", ndim)))
    wshape = check_filter(w, ndim)
    if xshape[1] != wshape[1]:
        raise ValueError(
            f"channel mismatch: x has C = {xshape[1]} channels (axis 1) but w has "
            f"C = {wshape[1]} (axis 1)"
        )
    check_bias(bias, wshape[0])
    pads = as_padding(padding, ndim)
    return pads, out_spatial(xshape[2:], wshape[2], pads)


def compute_dtype(*dtypes: object) -> np.dtype:
    """The floating dtype the references compute in for these input dtypes.

    float32 (and float16) → float32; float64, integers and anything wider → float64.
    """
    dt = np.result_type(*[np.dtype(d) for d in dtypes])
    if dt.kind == "f" and dt.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def num_tiles(spatial_out: Sequence[int], m: int) -> tuple[int, ...]:
    """``ceil(o / m)`` per axis."""
    return tuple(math.ceil(int(o) / m) for o in spatial_out)
