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
    ("w", 2): "K×C×r_h×r_w",
    ("w", 3): "K×C×r_d×r_h×r_w",
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


_PADDING_FORMS = (
    "an int, one int per axis, one (lo, hi) pair per axis, 2·ndim ints in "
    "torch.nn.functional.pad's order, 'same' or 'valid'"
)


def _pad_int(p: object, what: object) -> int:
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)):
        raise TypeError(f"padding entries must be ints, got {type(p).__name__} in {what!r}")
    return int(p)


def as_padding(
    padding: object, ndim: int, extent: Sequence[int] | int | None = None
) -> tuple[tuple[int, int], ...]:
    """Normalise ``padding`` to per-axis ``(lo, hi)`` pairs (zeros before / after), in axis order.

    Accepted forms (every value an int >= 0, any size):

    * an int: the same on both sides of every axis;
    * one int per axis: symmetric per axis;
    * one ``(lo, hi)`` pair per axis (``numpy.pad``'s order: the first axis first);
    * ``2·ndim`` ints in ``torch.nn.functional.pad``'s order, the *last* axis first:
      ``(left, right, top, bottom)`` in 2D, ``(left, right, top, bottom, front, back)`` in 3D;
    * ``"valid"``: no padding;
    * ``"same"``: the output has the input's size; needs ``extent`` (the filter's extent per axis,
      or one int for all): ``extent − 1`` zeros per axis, ``lo = (extent − 1) // 2`` and the
      rest (the odd one, for an even extent) after, as PyTorch does.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            if extent is None:
                raise ValueError("padding='same' needs the filter extent (extent=) to size it")
            ext = (extent,) * ndim if isinstance(extent, (int, np.integer)) else tuple(extent)
            if len(ext) != ndim or any(int(e) < 1 for e in ext):
                raise ValueError(
                    f"padding='same': extent must be {ndim} filter sizes >= 1, got {extent!r}"
                )
            return tuple(((int(e) - 1) // 2, int(e) - 1 - (int(e) - 1) // 2) for e in ext)
        raise ValueError(f"padding must be {_PADDING_FORMS}, got the string {padding!r}")
    if isinstance(padding, (bool, np.bool_)):
        raise TypeError(f"padding must be {_PADDING_FORMS}, got bool")
    if isinstance(padding, np.ndarray):
        padding = padding.tolist()
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        pairs = ((p, p),) * ndim
    elif isinstance(padding, Sequence) and not isinstance(padding, (bytes, bytearray)):
        items = list(padding)
        nested = [isinstance(q, (Sequence, np.ndarray)) and not isinstance(q, str) for q in items]
        dim = _DIM_NAME.get(ndim, f"{ndim}-D")
        if items and all(nested):
            rows = [list(q.tolist() if isinstance(q, np.ndarray) else q) for q in items]
            if len(rows) != ndim or any(len(q) != 2 for q in rows):
                raise ValueError(
                    f"padding as (lo, hi) pairs needs one pair per spatial axis ({ndim} for a "
                    f"{dim} convolution), got {padding!r}"
                )
            pairs = tuple((_pad_int(q[0], padding), _pad_int(q[1], padding)) for q in rows)
        elif any(nested):
            raise TypeError(f"padding must be {_PADDING_FORMS}; got a mix of ints and pairs: "
                            f"{padding!r}")
        elif len(items) == ndim:
            pairs = tuple((_pad_int(q, padding),) * 2 for q in items)
        elif len(items) == 2 * ndim:  # torch.nn.functional.pad's order: the last axis first
            flat = [_pad_int(q, padding) for q in items]
            pairs = tuple((flat[2 * (ndim - 1 - i)], flat[2 * (ndim - 1 - i) + 1])
                          for i in range(ndim))
        else:
            raise ValueError(
                f"padding must be an int, {ndim} ints (one per spatial axis), {ndim} (lo, hi) "
                f"pairs or {2 * ndim} ints (torch.nn.functional.pad's order) for a {dim} "
                f"convolution, got {tuple(padding)!r}"
            )
    else:
        raise TypeError(f"padding must be {_PADDING_FORMS}, got {type(padding).__name__}")
    if any(p < 0 for pair in pairs for p in pair):
        raise ValueError(f"padding must be >= 0 on every side, got {padding!r}")
    return tuple(pairs)


def _pairs(pads: Sequence[object]) -> tuple[tuple[int, int], ...]:
    """Per-axis pads as (lo, hi) pairs: an int entry p is (p, p) (already checked values)."""
    return tuple(
        (int(p), int(p)) if isinstance(p, (int, np.integer)) else (int(p[0]), int(p[1]))  # type: ignore[index]
        for p in pads
    )


def _each(v: Sequence[int] | int, n: int) -> tuple[int, ...]:
    """An int for every axis, or one per axis, as ``n`` ints."""
    return tuple(int(q) for q in v) if isinstance(v, Sequence) else (int(v),) * n


def out_spatial(
    in_spatial: Sequence[int], r: Sequence[int] | int, pads: Sequence[object], name: str = "x"
) -> tuple[int, ...]:
    """Output spatial shape ``in + lo + hi − r + 1`` per axis; ValueError if any is < 1.

    ``r``: the filter size, one int or one per axis (rectangular filters); ``pads``: per-axis
    (lo, hi) pairs (:func:`as_padding`), or per-axis ints (symmetric)."""
    pairs = _pairs(pads)
    rs = _each(r, len(pairs))
    out = tuple(int(s) + lo + hi - ri + 1 for s, (lo, hi), ri in zip(in_spatial, pairs, rs))
    if any(o < 1 for o in out):
        padded = tuple(int(s) + lo + hi for s, (lo, hi) in zip(in_spatial, pairs))
        size = f"r = {rs[0]}" if len(set(rs)) == 1 else "×".join(map(str, rs))
        raise ValueError(
            f"{name}: spatial size {tuple(in_spatial)} with padding {pairs} is "
            f"{padded}, smaller than the filter size {size}"
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
    """Check a spatial filter K×C×r_h×r_w (3D: K×C×r_d×r_h×r_w); returns its shape."""
    return check_array(w, name, ndim + 2, LAYOUTS.get((name, ndim)))


def check_input_args(
    x: object, r: Sequence[int] | int, padding: object, ndim: int | None = None
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """Check the input ``x`` for an ``r``-tap filter: returns (padding pairs, out spatial shape).

    ``ndim`` (2 or 3) defaults to what ``x``'s rank implies; ``padding``: every form of
    :func:`as_padding` ("same" sized for the r-tap filter).
    """
    if ndim is None:
        ndim = spatial_ndim(x)
    shape = check_array(x, "x", ndim + 2, LAYOUTS.get(("x", ndim)))
    pads = as_padding(padding, ndim, r)
    return pads, out_spatial(shape[2:], r, pads)


def check_conv_args(
    x: object, w: object, bias: object, padding: object, ndim: int
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """Validate a convolution ``y = conv(x, w) + bias``; returns (padding pairs, out spatial).

    ``x`` must be N×C×H×W (3D: N×C×D×H×W), ``w`` K×C×r×r (3D: K×C×r×r×r) with the
    same C, ``bias`` None or shape (K,), ``padding`` every form of :func:`as_padding`
    ("same" sized for w's r).
    """
    xshape = check_array(x, "x", ndim + 2, LAYOUTS.get(("x", ndim)))
    wshape = check_filter(w, ndim)
    if xshape[1] != wshape[1]:
        raise ValueError(
            f"channel mismatch: x has C = {xshape[1]} channels (axis 1) but w has "
            f"C = {wshape[1]} (axis 1)"
        )
    check_bias(bias, wshape[0])
    pads = as_padding(padding, ndim, wshape[2:])
    return pads, out_spatial(xshape[2:], wshape[2:], pads)


def compute_dtype(*dtypes: object) -> np.dtype:
    """The floating dtype the references compute in for these input dtypes.

    float32 (and float16) → float32; float64, integers and anything wider → float64.
    """
    dt = np.result_type(*[np.dtype(d) for d in dtypes])
    if dt.kind == "f" and dt.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def num_tiles(spatial_out: Sequence[int], m: Sequence[int] | int) -> tuple[int, ...]:
    """``ceil(o / m)`` per axis (``m``: one int, or one per axis for a rectangular tile)."""
    return tuple(math.ceil(int(o) / mi) for o, mi in zip(spatial_out, _each(m, len(spatial_out))))
