"""NumPy references: direct convolution (float64 ground truth) and Winograd convolution.

These functions define the conventions the CUDA kernels are validated against
(see ``docs/reference.md`` and ``/work/shared/DESIGN.md``):

* ``x`` is N×C×H×W (3D: N×C×D×H×W), ``w`` is K×C×r×r (3D: K×C×r×r×r), stride 1,
  zero padding ``padding`` (every form of :func:`magma_wino._checks.as_padding`: an int, one
  int per spatial axis, one (lo, hi) pair per axis, ``torch.nn.functional.pad``'s flat order,
  "same", "valid"; any size >= 0 per side), output ``Ho = H + lo_h + hi_h − r + 1`` etc.  The operation is correlation (what CNNs
  call convolution): ``y[n,k,i,j] = Σ_c Σ_u Σ_v x_pad[n,c,i+u,j+v]·w[k,c,u,v] + bias[k]``.
* Tiles: ``tiles = ceil(Ho/m)`` per axis; ``P = N·tilesH·tilesW``; tile index
  ``p = (n·tilesH + th)·tilesW + tw`` (3D: ``((n·tD + td)·tH + th)·tW + tw``).
  Tile ``(th, tw)`` reads the α×α window of the padded input starting at
  ``(th·m, tw·m)``; reads beyond the padded input are zeros.
* Winograd position ``b = i·α + j`` (3D: ``(i·α + j)·α + l``), row-major.
* ``U`` (α²×K×C, 3D α³×K×C): ``U[b,k,c] = (G w[k,c] Gᵀ)[i,j]``.
* ``V`` (α²×C×P): ``V[b,c,p] = (Bᵀ d B)[i,j]``, ``d`` the tile's window of channel c;
  optionally ``ReLU`` after the transform (Winograd-ReLU).
* ``M`` (α²×K×P): ``M[b] = U[b] @ V[b]``.
* ``y[n,k,th·m+u,tw·m+v] = (Aᵀ M_tile A)[u,v] (+ bias[k])``, edge tiles clipped.

Computation dtype of the transform functions: float32 (and float16) inputs are
computed in float32 with float32 matrices, everything else (float64, integers)
in float64 — what the GPU kernels do for their two dtypes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import _checks
from .transforms import winograd

__all__ = [
    "conv2d_direct",
    "conv3d_direct",
    "conv_direct_backward",
    "filter_transform",
    "filter_transform_adjoint",
    "input_transform",
    "input_transform_adjoint",
    "output_transform",
    "output_transform_adjoint",
    "tile_grid",
    "tile_m",
    "tile_alpha",
    "winograd_conv2d",
    "winograd_conv3d",
    "winograd_conv_from_U",
]


# --------------------------------------------------------------------------- helpers


def tile_grid(spatial_out: Sequence[int], m: int) -> tuple[int, ...]:
    """Number of m-wide output tiles per spatial axis, ``ceil(o / m)`` for each ``o``.

    Parameters
    ----------
    spatial_out : sequence of int
        Output spatial shape, e.g. ``(Ho, Wo)`` or ``(Do, Ho, Wo)``; entries >= 1.
    m : int
        Output tile size, >= 1.

    Returns
    -------
    tuple of int
        Tiles per axis; ``P = N · prod(tile_grid(...))``.
    """
    if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)):
        raise TypeError(f"m must be an int, got {type(m).__name__}")
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    out = _int_tuple(spatial_out, "spatial_out")
    if any(o < 1 for o in out):
        raise ValueError(f"spatial_out entries must be >= 1, got {out}")
    return _checks.num_tiles(out, int(m))


def _int_tuple(v: object, name: str) -> tuple[int, ...]:
    """A tuple of ints from a sequence of ints (TypeError naming ``name`` otherwise)."""
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence | np.ndarray):
        raise TypeError(f"{name} must be a tuple of ints, got {type(v).__name__}")
    for s in v:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{name} entries must be ints, got {type(s).__name__}")
    return tuple(int(s) for s in v)


def _check_bool(v: object, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


def _as_array(a: object, name: str) -> np.ndarray:
    """np.asarray with a TypeError naming the argument for non-arrays / odd dtypes."""
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"{name} could not be converted to an array: {exc}") from exc
    _checks.check_dtype(arr, name)
    return arr


def _contract_axes(mat: np.ndarray, arr: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """Apply ``mat`` (out × in) along each axis in ``axes`` of ``arr``: arr ×_ax mat."""
    for ax in axes:
        arr = np.moveaxis(np.tensordot(arr, mat, axes=([ax], [1])), -1, ax)
    return arr


def _contract_each(mats: Sequence[np.ndarray], arr: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """Apply ``mats[i]`` (out × in) along axis ``axes[i]`` of ``arr``: one matrix per axis (a
    rectangular tile); the same matrix on every axis is :func:`_contract_axes`."""
    for mat, ax in zip(mats, axes):
        arr = np.moveaxis(np.tensordot(arr, mat, axes=([ax], [1])), -1, ax)
    return arr


def _per_axis(v: object, ndim: int, name: str) -> tuple[int, ...]:
    """An int (every axis) or a tuple of ``ndim`` ints (one per axis, [D,] H, W) as a tuple of
    ints (a list is not a tile size: winograd() refuses it by name)."""
    if isinstance(v, tuple):
        if len(v) != ndim:
            raise ValueError(f"{name} must be an int or {ndim} ints (one per axis), got {v!r}")
        return tuple(int(q) for q in v)
    return (v,) * ndim  # type: ignore[return-value]  # winograd() validates the value


def tile_m(m: int, r: Sequence[int]) -> tuple[int, ...]:
    """The output tile size per axis the library runs for filter sizes ``r`` and tile size
    ``m``: m on every axis of a square (cubic) filter; for a rectangular one, m on each axis of
    more than one tap and 1 (F(1, 1)) on an axis of one tap, so a 1×r filter is the 1D F(m, r)
    along its long axis."""
    rs = tuple(r)
    return tuple(1 if ri == 1 and len(set(rs)) > 1 else m for ri in rs)


def tile_alpha(m: int, r: Sequence[int]) -> tuple[int, ...]:
    """α_i = m_i + r_i − 1 per axis of the tile :func:`tile_m` gives (their product: the
    Winograd positions, the rows of U)."""
    return tuple(mi + ri - 1 for mi, ri in zip(tile_m(m, r), r))


class _Tile:
    """The F(m_i, r_i) of each axis of a (possibly rectangular) tile: ``axes`` the 1D
    transforms, ``m``, ``r``, ``alpha`` per axis, ``positions`` = prod(alpha)."""

    def __init__(self, m: object, r: object, ndim: int, points: object) -> None:
        ms, rs = _per_axis(m, ndim, "m"), _per_axis(r, ndim, "r")
        if points is not None and len(set(zip(ms, rs))) > 1:
            raise ValueError("points: a rectangular tile runs the default points (points=None)")
        self.axes = [winograd(a, b, points) for a, b in zip(ms, rs)]  # validates m, r, points
        self.m = tuple(t.m for t in self.axes)
        self.r = tuple(t.r for t in self.axes)
        self.alpha = tuple(t.alpha for t in self.axes)
        self.positions = math.prod(self.alpha)

    def matrices(self, dtype: np.dtype) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [t.matrices(dtype) for t in self.axes]

    def __str__(self) -> str:
        if len(set(zip(self.m, self.r))) == 1:
            return f"F({self.m[0]}, {self.r[0]})"
        return f"F({'×'.join(map(str, self.m))}, {'×'.join(map(str, self.r))})"


# --------------------------------------------------------------------------- direct


def _conv_direct(x, w, bias, padding, ndim: int) -> np.ndarray:
    x = _as_array(x, "x")
    w = _as_array(w, "w")
    if bias is not None:
        bias = _as_array(bias, "bias")
    pads, out = _checks.check_conv_args(x, w, bias, padding, ndim)
    x = x.astype(np.float64, copy=False)
    w = w.astype(np.float64, copy=False)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    acc = np.zeros((w.shape[0], x.shape[0]) + out, dtype=np.float64)  # K, N, spatial
    for taps in itertools.product(*(range(k) for k in w.shape[2:])):
        sl = (slice(None), slice(None)) + tuple(slice(t, t + o) for t, o in zip(taps, out))
        # (K×C) · (N×C×spatial) over C  ->  K×N×spatial
        acc += np.tensordot(w[(slice(None), slice(None)) + taps], xp[sl], axes=([1], [1]))
    y = np.ascontiguousarray(np.swapaxes(acc, 0, 1))
    if bias is not None:
        y += bias.astype(np.float64).reshape((1, -1) + (1,) * ndim)
    return y


def conv2d_direct(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, padding: Any = 0
) -> np.ndarray:
    """Direct 2D correlation in float64 (the ground truth).

    Parameters
    ----------
    x : ndarray, N×C×H×W
        Input (any real numeric dtype; converted to float64).
    w : ndarray, K×C×r×r
        Filters.
    bias : ndarray of shape (K,), optional
    padding : int, (int, int), ((lo, hi), (lo, hi)), 4 ints or "same" / "valid"
        Zero padding: every form of :func:`magma_wino._checks.as_padding` (per side, any size;
        4 ints in ``torch.nn.functional.pad``'s order (left, right, top, bottom)).

    Returns
    -------
    ndarray, float64, N×K×Ho×Wo
        ``y[n,k,i,j] = Σ_c Σ_u Σ_v x_pad[n,c,i+u,j+v]·w[k,c,u,v] + bias[k]``.
    """
    return _conv_direct(x, w, bias, padding, 2)


def conv3d_direct(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, padding: Any = 0
) -> np.ndarray:
    """Direct 3D correlation in float64: x N×C×D×H×W, w K×C×r×r×r → N×K×Do×Ho×Wo.

    See :func:`conv2d_direct`; ``padding`` is any form of :func:`magma_wino._checks.as_padding`
    for three axes (6 flat ints: (left, right, top, bottom, front, back)).
    """
    return _conv_direct(x, w, bias, padding, 3)


def conv_direct_backward(
    x: np.ndarray, w: np.ndarray, dy: np.ndarray, padding: Any = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of the direct correlation in float64 (the backward's ground truth).

    For ``y = conv(x, w)`` (2D or 3D by rank, stride 1, zero ``padding``) and ``dy = dL/dy``:
    ``dw[k,c,u] = Σ_{n,i} dy[n,k,i]·x_pad[n,c,i+u]`` and ``dx = crop(Σ_u dy ⋆ w[:,:,u])`` (the
    transposed correlation); u runs over the r^nd filter taps.  Returns ``(dx, dw)``.
    """
    x = _as_array(x, "x").astype(np.float64)
    w = _as_array(w, "w").astype(np.float64)
    dy = _as_array(dy, "dy").astype(np.float64)
    ndim = _checks.spatial_ndim(x)
    _checks.check_filter(w, ndim)
    pads, out = _checks.check_input_args(x, w.shape[2:], padding, ndim)
    want = (x.shape[0], w.shape[0]) + tuple(out)
    if dy.shape != want:
        raise ValueError(f"dy must have y's shape {want}, got {dy.shape}")
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    dw = np.zeros_like(w)
    dxp = np.zeros_like(xp)
    sums = [0] + list(range(2, 2 + ndim))  # n and the output positions
    for u in itertools.product(*(range(k) for k in w.shape[2:])):
        win = (slice(None), slice(None)) + tuple(slice(a, a + o) for a, o in zip(u, out))
        tap = (slice(None), slice(None)) + u
        dw[tap] = np.tensordot(dy, xp[win], axes=(sums, sums))
        dxp[win] += np.einsum("nk...,kc->nc...", dy, w[tap])
    crop = (slice(None), slice(None)) + tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, x.shape[2:]))
    return np.ascontiguousarray(dxp[crop]), dw


# --------------------------------------------------------------------------- transforms


def filter_transform(
    w: np.ndarray, m: int, points: Sequence[object] | None = None
) -> np.ndarray:
    """Winograd-domain weights ``U`` of ``w`` for F(m, r).

    Parameters
    ----------
    w : ndarray, K×C×r×r (2D) or K×C×r×r×r (3D)
        Spatial filters; the rank decides 2D / 3D.
    m : int
        Output tile size.
    points : sequence, optional
        Interpolation points (see :func:`magma_wino.transforms.winograd`).

    Returns
    -------
    ndarray, α²×K×C (3D: α³×K×C)
        ``U[b,k,c] = (G w[k,c] Gᵀ)[i,j]`` with ``b = i·α + j`` (3D: G applied on
        all three axes, ``b = (i·α + j)·α + l``).  float32 for float32/float16
        ``w``, else float64.
    """
    w = _as_array(w, "w")
    if w.ndim not in (4, 5):
        raise ValueError(
            f"w must be 4-D (K×C×r×r) for 2D or 5-D (K×C×r×r×r) for 3D, got shape {w.shape}"
        )
    ndim = w.ndim - 2
    _checks.check_filter(w, ndim)
    k, c = w.shape[0], w.shape[1]
    dt = _checks.compute_dtype(w.dtype)
    try:
        t = _Tile(m, w.shape[2:], ndim, points)
    except ValueError as exc:  # an axis too long for any tile: say it is w's
        if "tile size alpha" not in str(exc):
            raise
        raise ValueError(f"w: filter sizes {tuple(w.shape[2:])} with m = {m!r}: {exc}") from None
    gs = [g for _, g, _ in t.matrices(dt)]
    u = _contract_each(gs, w.astype(dt, copy=False), range(2, 2 + ndim))  # K, C, α...
    u = np.moveaxis(u, (0, 1), (-2, -1))  # α..., K, C
    return np.ascontiguousarray(u.reshape(t.positions, k, c))


def _tile_windows(x: np.ndarray, m: Any, alpha: Any, pads, out) -> np.ndarray:
    """View N×C×tiles...×α... of the zero-padded input (extra zeros past the edge).

    ``m``, ``alpha``: ints or one per axis (a rectangular tile); ``pads``: per-axis (lo, hi)
    pairs (or ints, symmetric)."""
    ndim = x.ndim - 2
    ms, alphas = _per_axis(m, ndim, "m"), _per_axis(alpha, ndim, "alpha")
    tiles = _checks.num_tiles(out, ms)
    # padded extent must be (tiles-1)·m + α = tiles·m + r − 1 = out + r − 1 + (tiles·m − out)
    widths = [(0, 0), (0, 0)] + [(lo, hi + t * mi - o)
                                 for (lo, hi), t, o, mi in zip(_checks._pairs(pads), tiles, out, ms)]
    xp = np.pad(x, widths)
    win = sliding_window_view(xp, alphas, axis=tuple(range(2, 2 + ndim)))
    return win[(slice(None), slice(None)) + tuple(slice(None, None, mi) for mi in ms)]


def _transform_tiles(x: np.ndarray, bt: Any, m: Any, pads: Sequence[Any],
                    out: Sequence[int]) -> np.ndarray:
    """``bt · d · btᵀ`` (``bt`` α×α along every spatial axis) of every α-window ``d`` of ``x``
    (N×C×spatial, zero-padded by ``pads``: per-axis (lo, hi) pairs or ints, tiles of ``m`` outputs covering ``out``), as
    α^nd×C×P with P ordered (n, tiles...) as the kernels order the tiles.  With ``bt = Bᵀ``
    it is the input transform; :mod:`magma_wino.accuracy` also runs it on ``|Bᵀ|²`` and ``x²``.
    A rectangular tile: ``bt`` and ``m`` one per axis."""
    ndim = x.ndim - 2
    bts = list(bt) if isinstance(bt, (list, tuple)) else [bt] * ndim
    alphas = tuple(b.shape[1] for b in bts)
    c = x.shape[1]
    win = _tile_windows(x, m, alphas, pads, out)
    # win: N, C, tiles..., α...  -> contract every α axis with bt (positions kept)
    v = _contract_each(bts, win, range(2 + ndim, 2 + 2 * ndim))
    v = np.moveaxis(v, tuple(range(2 + ndim, 2 + 2 * ndim)), tuple(range(ndim)))  # α..., N, C, tiles...
    v = np.moveaxis(v, ndim + 1, ndim)  # α..., C, N, tiles...
    return np.ascontiguousarray(v).reshape(math.prod(alphas), c, -1)


def input_transform(
    x: np.ndarray,
    m: int,
    r: int,
    padding: Any = 0,
    points: Sequence[object] | None = None,
    relu: bool = False,
) -> np.ndarray:
    """Transformed input tiles ``V`` for F(m, r).

    Parameters
    ----------
    x : ndarray, N×C×H×W (2D) or N×C×D×H×W (3D)
        Input; the rank decides 2D / 3D.
    m, r : int
        Output tile size and filter size.
    padding : int, tuple of int, (lo, hi) pairs, flat F.pad-order ints, "same" or "valid"
        Zero padding (:func:`magma_wino._checks.as_padding`; any size per side).
    points : sequence, optional
        Interpolation points.
    relu : bool
        Apply ReLU to V after the transform (Winograd-ReLU, Liu et al. 2018).

    Returns
    -------
    ndarray, α²×C×P (3D: α³×C×P)
        ``V[b,c,p] = (Bᵀ d B)[i,j]`` where ``d`` is the α×α window of tile ``p``
        (``p = (n·tH + th)·tW + tw``) of channel ``c``, starting at padded
        coordinates ``(th·m, tw·m)`` (x coordinates ``(th·m − lo_h, tw·m − lo_w)``).  float32 for float32/float16 ``x``, else float64.
    """
    x = _as_array(x, "x")
    relu = _check_bool(relu, "relu")
    ndim = _checks.spatial_ndim(x)
    dt = _checks.compute_dtype(x.dtype)
    t = _Tile(m, r, ndim, points)
    bts = [bt for _, _, bt in t.matrices(dt)]
    pads, out = _checks.check_input_args(x, t.r, padding, ndim)
    v = _transform_tiles(x.astype(dt, copy=False), bts, t.m, pads, out)
    if relu:
        np.maximum(v, 0, out=v)
    return v


def output_transform(
    M: np.ndarray,
    m: int,
    r: int,
    out_shape: Sequence[int],
    bias: np.ndarray | None = None,
    points: Sequence[object] | None = None,
) -> np.ndarray:
    """Output ``y`` from the Winograd-domain products ``M``.

    Parameters
    ----------
    M : ndarray, α²×K×P (3D: α³×K×P)
        ``M[b] = U[b] @ V[b]``.
    m, r : int
        Output tile size and filter size.
    out_shape : (N, K, Ho, Wo) or (N, K, Do, Ho, Wo)
        Output shape; its length decides 2D / 3D and ``P`` must equal
        ``N · prod(tile_grid(out_shape[2:], m))``.
    bias : ndarray of shape (K,), optional
    points : sequence, optional

    Returns
    -------
    ndarray, out_shape
        ``y[n,k,th·m+u,tw·m+v] = (Aᵀ M_tile A)[u,v] + bias[k]``, edge tiles clipped.
        float32 for float32/float16 ``M``, else float64.
    """
    M = _as_array(M, "M")
    out_shape = _int_tuple(out_shape, "out_shape")
    if len(out_shape) not in (4, 5):
        raise ValueError(
            f"out_shape must be (N, K, Ho, Wo) or (N, K, Do, Ho, Wo), got {out_shape}"
        )
    if any(s < 1 for s in out_shape):
        raise ValueError(f"out_shape entries must be >= 1, got {out_shape}")
    ndim = len(out_shape) - 2
    dt = _checks.compute_dtype(M.dtype)
    t = _Tile(m, r, ndim, points)
    ats = [at for at, _, _ in t.matrices(dt)]
    n, k = out_shape[:2]
    spatial = out_shape[2:]
    tiles = _checks.num_tiles(spatial, t.m)
    p = n * math.prod(tiles)
    expect = (t.positions, k, p)
    if M.shape != expect:
        raise ValueError(
            f"M must have shape (alpha^{ndim}, K, P) = {expect} for {t} and "
            f"out_shape {out_shape}, got {M.shape}"
        )
    if bias is not None:
        bias = _as_array(bias, "bias")
    _checks.check_bias(bias, k)
    mm = M.astype(dt, copy=False).reshape(t.alpha + (k, n) + tiles)
    y = _contract_each(ats, mm, range(ndim))  # m..., K, N, tiles...
    # -> N, K, (tile0, m0), (tile1, m1), ...
    order = [ndim + 1, ndim]
    for a in range(ndim):
        order += [ndim + 2 + a, a]
    y = y.transpose(order).reshape((n, k) + tuple(tl * mi for tl, mi in zip(tiles, t.m)))
    y = np.ascontiguousarray(y[(slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)])
    if bias is not None:
        y += bias.astype(dt).reshape((1, -1) + (1,) * ndim)
    return y


# --------------------------------------------------------------------------- adjoints
#
# The backward of the three-phase layer runs the transposes of the three tile transforms
# (docs/training.md).  These are the float64 references the adjoint kernels
# (kernels/transform_adjoint.cuh) are validated against.  Each is the exact transpose of the
# forward function above as a linear map: <forward(a), b> == <a, adjoint(b)>.


def output_transform_adjoint(
    dy: np.ndarray, m: int, r: int, points: Sequence[object] | None = None
) -> np.ndarray:
    """Adjoint of :func:`output_transform` (without bias): dM from the output gradient dy.

    Parameters
    ----------
    dy : ndarray, N×K×Ho×Wo (3D: N×K×Do×Ho×Wo)
        Gradient of the loss with respect to y; the rank decides 2D / 3D.
    m, r : int
    points : sequence, optional

    Returns
    -------
    ndarray, α²×K×P (3D: α³×K×P)
        Per tile ``dM_tile = A · dY_tile · Aᵀ`` (``A`` = (Aᵀ)ᵀ along every axis), with
        ``dY_tile`` zero past the output's edge (where the forward clipped).
        float32 for float32/float16 ``dy``, else float64.
    """
    dy = _as_array(dy, "dy")
    if dy.ndim not in (4, 5) or 0 in dy.shape:
        raise ValueError(f"dy must be N×K×Ho×Wo or N×K×Do×Ho×Wo (non-empty), got shape {dy.shape}")
    ndim = dy.ndim - 2
    dt = _checks.compute_dtype(dy.dtype)
    t = _Tile(m, r, ndim, points)
    ats = [at.T for at, _, _ in t.matrices(dt)]
    n, k = dy.shape[:2]
    spatial = dy.shape[2:]
    tiles = _checks.num_tiles(spatial, t.m)
    full = np.pad(dy.astype(dt, copy=False),
                  [(0, 0), (0, 0)] + [(0, tl * mi - s) for tl, s, mi in zip(tiles, spatial, t.m)])
    # N, K, (tile0, m0), (tile1, m1), ...  ->  m..., K, N, tiles...
    split = full.reshape((n, k) + tuple(v for tl, mi in zip(tiles, t.m) for v in (tl, mi)))
    order = [2 + 2 * a + 1 for a in range(ndim)] + [1, 0] + [2 + 2 * a for a in range(ndim)]
    tiled = split.transpose(order)
    dM = _contract_each(ats, tiled, range(ndim))  # α..., K, N, tiles...
    return np.ascontiguousarray(dM).reshape(t.positions, k, -1)


def input_transform_adjoint(
    dV: np.ndarray,
    m: int,
    r: int,
    x_shape: Sequence[int],
    padding: Any = 0,
    points: Sequence[object] | None = None,
) -> np.ndarray:
    """Adjoint of :func:`input_transform` (without ReLU): dx from the gradient dV.

    Parameters
    ----------
    dV : ndarray, α²×C×P (3D: α³×C×P)
    m, r : int
    x_shape : (N, C, H, W) or (N, C, D, H, W)
        The forward input's shape; its length decides 2D / 3D.
    padding : every form of :func:`magma_wino._checks.as_padding` (per side, any size)
    points : sequence, optional

    Returns
    -------
    ndarray, x_shape
        ``dx`` = the sum, over every tile whose α-window covers an element, of
        ``(B · dV_tile · Bᵀ)`` at that element's place in the window (``B`` = (Bᵀ)ᵀ along
        every axis); windows overlap by r − 1, and the padding is cropped.
        float32 for float32/float16 ``dV``, else float64.
    """
    dV = _as_array(dV, "dV")
    x_shape = _int_tuple(x_shape, "x_shape")
    if len(x_shape) not in (4, 5) or min(x_shape) < 1:
        raise ValueError(f"x_shape must be (N, C, H, W) or (N, C, D, H, W) of ints >= 1, got {x_shape}")
    ndim = len(x_shape) - 2
    dt = _checks.compute_dtype(dV.dtype)
    t = _Tile(m, r, ndim, points)
    bts = [bt.T for _, _, bt in t.matrices(dt)]
    pads = _checks.as_padding(padding, ndim, t.r)
    out = _checks.out_spatial(x_shape[2:], t.r, pads, name="x_shape")
    tiles = _checks.num_tiles(out, t.m)
    n, c = x_shape[:2]
    expect = (t.positions, c, n * math.prod(tiles))
    if dV.shape != expect:
        raise ValueError(
            f"dV must have shape (alpha^{ndim}, C, P) = {expect} for {t}, x_shape {x_shape} "
            f"and padding {pads}, got {dV.shape}"
        )
    win = dV.astype(dt, copy=False).reshape(t.alpha + (c, n) + tiles)
    win = _contract_each(bts, win, range(ndim))  # window offsets..., C, N, tiles...
    # Scatter-add every window offset into the padded input (a loop over α^nd offsets, each a
    # strided add of all tiles at once), then crop the padding.
    padded = np.zeros((n, c) + tuple((tl - 1) * mi + a for tl, mi, a in zip(tiles, t.m, t.alpha)), dt)
    for offs in itertools.product(*(range(a) for a in t.alpha)):
        part = np.moveaxis(win[offs], 0, 1)  # N, C, tiles...
        dest = (slice(None), slice(None)) + tuple(
            slice(o, o + (tl - 1) * mi + 1, mi) for o, tl, mi in zip(offs, tiles, t.m))
        padded[dest] += part
    crop = (slice(None), slice(None)) + tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, x_shape[2:]))
    return np.ascontiguousarray(padded[crop])


def filter_transform_adjoint(
    dU: np.ndarray, m: int, r: int, ndim: int = 2, points: Sequence[object] | None = None
) -> np.ndarray:
    """Adjoint of :func:`filter_transform`: dw from the gradient dU.

    Parameters
    ----------
    dU : ndarray, α²×K×C (3D: α³×K×C)
    m, r : int
    ndim : 2 or 3
    points : sequence, optional

    Returns
    -------
    ndarray, K×C×r×r (3D: K×C×r×r×r)
        ``dw[k,c] = Gᵀ · dU[·,k,c] · G`` (along every axis).  float32 for float32/float16
        ``dU``, else float64.
    """
    dU = _as_array(dU, "dU")
    if ndim not in (2, 3) or isinstance(ndim, bool):
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
    dt = _checks.compute_dtype(dU.dtype)
    t = _Tile(m, r, ndim, points)
    if dU.ndim != 3 or dU.shape[0] != t.positions or 0 in dU.shape:
        raise ValueError(
            f"dU must have shape (alpha^{ndim}, K, C) = ({t.positions}, K, C) for {t}, "
            f"got {dU.shape}"
        )
    k, c = dU.shape[1:]
    arr = dU.astype(dt, copy=False).reshape(t.alpha + (k, c))
    for _, g, _ in t.matrices(dt):  # contract the leading α axis with G: (α, rest...) -> (rest..., r)
        arr = np.tensordot(arr, g, axes=([0], [0]))
    return np.ascontiguousarray(arr)  # K, C, r...


# --------------------------------------------------------------------------- layers


def _winograd_conv(x, w, m, padding, bias, points, ndim: int) -> np.ndarray:
    x = _as_array(x, "x")
    w = _as_array(w, "w")
    if bias is not None:
        bias = _as_array(bias, "bias")
    pads, out = _checks.check_conv_args(x, w, bias, padding, ndim)
    dt = _checks.compute_dtype(x.dtype, w.dtype)
    x = x.astype(dt, copy=False)
    w = w.astype(dt, copy=False)
    r = w.shape[2:]
    u = filter_transform(w, m, points)
    v = input_transform(x, m, r, pads, points)
    M = np.matmul(u, v)  # the one batched product: α^nd × (K×C @ C×P)
    return output_transform(M, m, r, (x.shape[0], w.shape[0]) + out, bias, points)


def winograd_conv2d(
    x: np.ndarray,
    w: np.ndarray,
    m: int,
    padding: Any = 0,
    bias: np.ndarray | None = None,
    points: Sequence[object] | None = None,
) -> np.ndarray:
    """2D convolution by F(m×m, r×r) Winograd: filter/input transforms, one batched matmul, output transform.

    Parameters
    ----------
    x : ndarray, N×C×H×W
    w : ndarray, K×C×r×r
    m : int
        Output tile size.
    padding : every form of :func:`magma_wino._checks.as_padding` (per side, any size)
    bias : ndarray of shape (K,), optional
    points : sequence, optional
        Interpolation points (see :func:`magma_wino.transforms.winograd`).

    Returns
    -------
    ndarray, N×K×Ho×Wo
        float32 if the result dtype of ``x`` and ``w`` is float32 (or float16), else float64.
    """
    return _winograd_conv(x, w, m, padding, bias, points, 2)


def winograd_conv3d(
    x: np.ndarray,
    w: np.ndarray,
    m: int,
    padding: Any = 0,
    bias: np.ndarray | None = None,
    points: Sequence[object] | None = None,
) -> np.ndarray:
    """3D convolution by F(m×m×m, r×r×r) Winograd (x N×C×D×H×W, w K×C×r×r×r).

    See :func:`winograd_conv2d`.
    """
    return _winograd_conv(x, w, m, padding, bias, points, 3)


def winograd_conv_from_U(
    x: np.ndarray,
    U: np.ndarray,
    m: int,
    r: int,
    padding: Any = 0,
    bias: np.ndarray | None = None,
    relu: bool = False,
    points: Sequence[object] | None = None,
) -> np.ndarray:
    """Convolution whose parameters are the Winograd-domain weights ``U``.

    Computes ``Aᵀ[U ⊙ V]A`` (``V`` passed through ReLU when ``relu``): the
    Winograd-domain-pruned layer (Li et al. 2017) and, with ``relu=True``, the
    Winograd-ReLU layer (Liu et al. 2018).  ``U`` need not come from any spatial
    filter.

    Parameters
    ----------
    x : ndarray, N×C×H×W (2D) or N×C×D×H×W (3D)
        Input; the rank decides 2D / 3D.
    U : ndarray, α²×K×C (3D: α³×K×C)
        Winograd-domain weights for F(m, r), ``α = m + r − 1``.
    m, r : int
    padding : every form of :func:`magma_wino._checks.as_padding` (per side, any size)
    bias : ndarray of shape (K,), optional
    relu : bool
        ReLU on the transformed input (Winograd-ReLU).
    points : sequence, optional

    Returns
    -------
    ndarray, N×K×Ho×Wo (3D: N×K×Do×Ho×Wo)
        float32 if the result dtype of ``x`` and ``U`` is float32 (or float16), else float64.
    """
    x = _as_array(x, "x")
    U = _as_array(U, "U")
    if bias is not None:
        bias = _as_array(bias, "bias")
    relu = _check_bool(relu, "relu")
    ndim = _checks.spatial_ndim(x)
    t = _Tile(m, r, ndim, points)
    pads, out = _checks.check_input_args(x, t.r, padding, ndim)
    expect0 = t.positions
    if U.ndim != 3 or U.shape[0] != expect0 or U.shape[2] != x.shape[1] or 0 in U.shape:
        raise ValueError(
            f"U must have shape (alpha^{ndim}, K, C) = ({expect0}, K, {x.shape[1]}) for "
            f"{t} and x with C = {x.shape[1]}, got {U.shape}"
        )
    _checks.check_bias(bias, U.shape[1])
    dt = _checks.compute_dtype(x.dtype, U.dtype)
    v = input_transform(x.astype(dt, copy=False), m, r, pads, points, relu=relu)
    M = np.matmul(U.astype(dt, copy=False), v)
    return output_transform(M, m, r, (x.shape[0], U.shape[1]) + out, bias, points)
