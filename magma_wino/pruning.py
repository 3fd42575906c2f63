"""Magnitude pruning in the spatial and in the Winograd domain, filter pruning by norm.

Three sparse variants (docs/sparse.md) need weights pruned in one of two domains:

* **spatially pruned** ("standard"): prune the spatial filters ``w`` (K×C×r×r) with
  :func:`prune_spatial`, then transform.  The filter transform ``G g Gᵀ`` fills the
  zeros back in, so the Winograd-domain weights ``U`` are dense again;
* **Winograd-domain pruned** (Li, Park, Tang 2017) and **Winograd-ReLU** (Liu et al. 2018):
  the layer's parameters are ``U`` itself (α^nd×K×C) and :func:`prune_winograd` prunes
  them directly, per layer or per Winograd position.

Structured Winograd-domain pruning (:func:`prune_winograd_blocks`) keeps or drops whole
blocks of U[b] (e.g. 16 output × 8 input channels, the A operand of a tensor-core tile, or whole
rows: one (position, filter) pair) by their Frobenius norm.

Filter pruning (:func:`prune_filters`) removes whole output filters by Frobenius norm;
the next layer then drops the matching input channels (:func:`drop_input_channels`).

Conventions shared by every function here:

* the kept count is ``round(density · size)`` with halves rounded up
  (``floor(density · size + 0.5)``), so the requested density is reached within one
  element of every group;
* ties are deterministic: among equal magnitudes the element with the lower flat
  (C-order) index is kept;
* masks are boolean arrays of the pruned array's shape, returned so that the sparsity
  pattern can be re-applied after a weight update (:func:`apply_mask`);
* arrays are NumPy arrays (pruning is a host-side, once-per-layer operation);
  ``ValueError`` for bad values and shapes, ``TypeError`` for bad types, and the message
  names the argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import numpy as np

__all__ = [
    "apply_mask",
    "drop_input_channels",
    "kept_count",
    "magnitude_mask",
    "measured_density",
    "prune_filters",
    "prune_spatial",
    "prune_winograd",
    "prune_winograd_blocks",
    "prune_winograd_n_m",
]


# --------------------------------------------------------------------------- helpers


def _as_array(a: object, name: str) -> np.ndarray:
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"{name} must be a NumPy array, got {type(a).__name__}")
    if type(a).__module__.split(".")[0] == "cupy":
        raise TypeError(
            f"{name} must be a NumPy array (pruning runs on the host); "
            f"call .get() on the CuPy array first"
        )
    arr = np.asarray(a)
    if arr.dtype.kind not in "iuf" and arr.dtype.name != "bfloat16":  # ml_dtypes' bfloat16: kind "V"
        raise TypeError(f"{name} must have a real numeric dtype, got {arr.dtype}")
    return arr


def _check_density(density: object, name: str = "density") -> float:
    if isinstance(density, (bool, np.bool_)) or not isinstance(density, (Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number in [0, 1], got {type(density).__name__}")
    d = float(density)  # type: ignore[arg-type]
    if not (0.0 <= d <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {density!r}")
    return d


def kept_count(density: float, size: int) -> int:
    """Number of elements kept out of ``size`` at ``density``: ``floor(density·size + 0.5)``.

    Halves round up, so e.g. density 0.5 of 3 elements keeps 2.  The result is in
    ``[0, size]`` and within 0.5 of ``density · size``.
    """
    d = _check_density(density)
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an int >= 0, got {type(size).__name__}")
    if size < 0:
        raise ValueError(f"size must be an int >= 0, got {size!r}")
    return min(int(size), max(0, math.floor(d * int(size) + 0.5)))


def _magnitudes(a: np.ndarray, name: str) -> np.ndarray:
    """|a| in a float type whose negation is exact (unsigned ints cannot be negated)."""
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values; cannot rank magnitudes")
        return np.abs(a)
    return np.abs(a.astype(np.float64))


def _normalise_axes(axis_groups: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if axis_groups is None:
        return ()
    if isinstance(axis_groups, (bool, np.bool_)):
        raise TypeError("axis_groups must be None, an int or a sequence of ints, got bool")
    if isinstance(axis_groups, (int, np.integer)):
        axes: Sequence[object] = (axis_groups,)
    elif isinstance(axis_groups, Sequence) and not isinstance(axis_groups, (str, bytes)):
        axes = axis_groups
    else:
        raise TypeError(
            f"axis_groups must be None, an int or a sequence of ints, got {type(axis_groups).__name__}"
        )
    out = []
    for ax in axes:
        if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (int, np.integer)):
            raise TypeError(f"axis_groups entries must be ints, got {type(ax).__name__}")
        if not -ndim <= int(ax) < ndim:
            raise ValueError(f"axis_groups: axis {ax} is out of range for an array of rank {ndim}")
        out.append(int(ax) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axis_groups must not repeat an axis, got {tuple(axes)!r}")
    return tuple(sorted(out))


# --------------------------------------------------------------------------- masks


def magnitude_mask(
    a: np.ndarray, density: float, axis_groups: int | Sequence[int] | None = None
) -> np.ndarray:
    """Boolean mask keeping the ``round(density · group size)`` largest-magnitude entries.

    Args:
        a: real array of any shape.
        density: fraction of entries kept, in ``[0, 1]``.
        axis_groups: axes that index independent groups.  ``None`` (default): the whole
            array is one group (per-layer pruning).  E.g. ``axis_groups=0`` on U
            (α^nd×K×C) prunes each Winograd position ``U[b]`` separately, keeping
            ``round(density·K·C)`` entries in every one.

    Returns:
        A boolean array of ``a``'s shape.  Among equal magnitudes, the entry with the
        lower flat (C-order) index is kept, so the result is deterministic.

    Raises:
        TypeError: ``a`` not a real NumPy array, ``density`` not a number, bad axis types.
        ValueError: ``density`` outside ``[0, 1]``, NaN/inf in ``a``, bad axes.
    """
    return _mask(_as_array(a, "a"), density, axis_groups, "a", "density")


def _mask(arr: np.ndarray, density: object, axis_groups: object, name: str, density_name: str) -> np.ndarray:
    """:func:`magnitude_mask` of a checked array; messages name ``name`` / ``density_name``."""
    d = _check_density(density, density_name)
    axes = _normalise_axes(axis_groups, arr.ndim)  # type: ignore[arg-type]
    mag = _magnitudes(arr, name)
    rest = tuple(ax for ax in range(arr.ndim) if ax not in axes)
    # groups first, then the group's elements in C order: their flat order within a
    # group is the same as in the whole array, so "lower flat index" is well defined.
    moved = np.transpose(mag, axes + rest)
    n_groups = int(np.prod([arr.shape[ax] for ax in axes], dtype=np.int64))
    group_size = int(np.prod([arr.shape[ax] for ax in rest], dtype=np.int64))
    flat = moved.reshape(n_groups, group_size)
    k = kept_count(d, group_size)
    keep = np.zeros((n_groups, group_size), dtype=bool)
    if k > 0 and group_size > 0:
        # stable sort of -|a|: descending magnitude, ties in ascending index order
        order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
        np.put_along_axis(keep, order, True, axis=1)
    keep = keep.reshape(moved.shape)
    return np.transpose(keep, np.argsort(axes + rest))


def apply_mask(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``a`` with the entries where ``mask`` is False set to zero (a new array, same dtype).

    Use it to re-impose a pruning pattern after a weight update.  NaN/inf in pruned
    positions become exact zeros (``np.where``, not a multiplication).

    Raises:
        TypeError: ``mask`` is not a boolean array, ``a`` not a real array.
        ValueError: ``mask.shape`` differs from ``a.shape``.
    """
    arr = _as_array(a, "a")
    if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
        raise TypeError(f"mask must be a boolean NumPy array, got {type(mask).__name__}")
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"mask must have dtype bool, got {m.dtype}")
    if m.shape != arr.shape:
        raise ValueError(f"mask must have the shape of a, {arr.shape}, got {m.shape}")
    return np.where(m, arr, arr.dtype.type(0))


def measured_density(a: np.ndarray, axis_groups: int | Sequence[int] | None = None) -> np.ndarray | float:
    """Fraction of nonzero entries: a float, or an array over the groups of ``axis_groups``.

    ``measured_density(U, axis_groups=0)`` is the density of every Winograd position.
    """
    arr = _as_array(a, "a")
    axes = _normalise_axes(axis_groups, arr.ndim)
    nz = arr != 0
    if not axes:
        return float(nz.mean()) if arr.size else 0.0
    rest = tuple(ax for ax in range(arr.ndim) if ax not in axes)
    return nz.mean(axis=rest) if rest else nz.astype(np.float64)


# --------------------------------------------------------------------------- pruning


def prune_spatial(w: np.ndarray, density: float, *, density_name: str = "density") -> tuple[np.ndarray, np.ndarray]:
    """Magnitude-prune spatial filters (K×C×r×r or K×C×r×r×r) to ``density`` per layer.

    This is the "spatially pruned" variant: after the filter transform the zeros are
    filled in again (U is dense), so no multiplications are saved in the products.
    ``density_name``: what error messages call ``density`` (a caller's own argument name,
    e.g. ``"prune"`` for ``WinogradConv2d.from_spatial(w, prune=...)``).

    Returns:
        ``(w_pruned, mask)``: a new array of ``w``'s dtype in which only the
        ``round(density · w.size)`` largest-magnitude entries are kept, and the mask.

    Raises:
        TypeError / ValueError: as :func:`magnitude_mask`; ``w`` must be at least 3-D.
    """
    arr = _as_array(w, "w")
    if arr.ndim < 3:
        raise ValueError(f"w must be K×C×r×r (or K×C×r×r×r), got shape {arr.shape}")
    mask = _mask(arr, density, None, "w", density_name)
    return apply_mask(arr, mask), mask


def prune_winograd(
    U: np.ndarray, density: float, per_position: bool = False, *, density_name: str = "density"
) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude-prune Winograd-domain weights U (α^nd×K×C) to ``density``.

    Args:
        U: the Winograd-domain weights, 3-D: positions × K × C.
        density: fraction kept, in ``[0, 1]``.
        per_position: False (default): one threshold for the whole layer, keeping
            ``round(density·α^nd·K·C)`` entries (positions end up with different
            densities).  True: every position ``b`` keeps ``round(density·K·C)`` of
            ``U[b]`` (balanced work per position in the batched products).
        density_name: what error messages call ``density`` (e.g. ``"prune"`` for
            ``from_winograd(U, r, prune=...)``).

    Returns:
        ``(U_pruned, mask)``.
    """
    arr = _as_array(U, "U")
    if arr.ndim != 3:
        raise ValueError(f"U must be 3-D (α^nd×K×C), got shape {arr.shape}")
    if not isinstance(per_position, (bool, np.bool_)):
        raise TypeError(f"per_position must be a bool, got {type(per_position).__name__}")
    mask = _mask(arr, density, 0 if per_position else None, "U", density_name)
    return apply_mask(arr, mask), mask


def _block_shape(block: object, K: int, C: int) -> tuple[int, int]:
    """(bk, bc) of ``block``: a pair of ints >= 1, ``None`` for all of an axis (``(1, None)``:
    whole rows of U[b]); sizes above K or C are refused."""
    if not isinstance(block, Sequence) or isinstance(block, (str, bytes)) or len(block) != 2:
        raise TypeError(f"block must be a pair (output channels, input channels) of ints or None, got {block!r}")
    out = []
    for v, full, axis in zip(block, (K, C), ("K", "C")):
        if v is None:
            out.append(full)
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"block sizes must be ints >= 1 or None, got block={block!r}")
        if v > full:
            raise ValueError(f"block {tuple(block)!r} is larger than U[b] ({K}×{C}) along {axis}")
        out.append(int(v))
    return out[0], out[1]


def prune_winograd_blocks(
    U: np.ndarray, density: float, block: Sequence[int | None] = (16, 8), *, per_position: bool = False,
    density_name: str = "density", groups: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Structured pruning of Winograd-domain weights U (α^nd×K×C): whole blocks of ``block``
    = (bk, bc) entries of every U[b] kept or dropped by their Frobenius norm.

    The blocks tile U[b] from (0, 0); the last block of an axis is short when bk ∤ K or bc ∤ C.
    Kept are the ``round(density · blocks)`` blocks of largest norm — of the layer (one
    threshold over all positions) or, ``per_position``, of every position.  Ties keep the lower
    (position, block row, block column).  The weight density reached is that block fraction
    up to the short edge blocks (:func:`measured_density` says it exactly).

    Args:
        U: Winograd-domain weights, 3-D: positions × K × C.
        density: fraction of blocks kept, in ``[0, 1]``.
        block: (output channels, input channels) per block; ``None`` for a whole axis, so
            ``(1, None)`` prunes whole (position, filter) rows.  Default (16, 8): one TF32
            tensor-core A tile (m16n8k8) of the products M[b] = U[b]·V[b].
        per_position: the same number of blocks kept in every position.
        groups: U of a grouped layer (α^nd×K×(C/groups), output channels in ``groups`` equal
            groups): the blocks tile each group's (K/groups)×C matrix — the batch of the
            block-diagonal products — so none spans two groups (``bk`` above K/groups is one
            group's rows), and ``per_position`` keeps as many in every (position, group).

    Returns:
        ``(U_pruned, mask)``, the mask constant over each block.
    """
    arr = _as_array(U, "U")
    if arr.ndim != 3:
        raise ValueError(f"U must be 3-D (α^nd×K×C), got shape {arr.shape}")
    if not isinstance(per_position, (bool, np.bool_)):
        raise TypeError(f"per_position must be a bool, got {type(per_position).__name__}")
    positions, K, C = arr.shape
    bk, bc = _block_shape(block, K, C)
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)) or groups < 1 or K % groups:
        raise ValueError(f"groups must be an int >= 1 dividing K = {K}, got {groups!r}")
    if groups > 1:
        pruned, mask = prune_winograd_blocks(arr.reshape(positions * groups, K // groups, C), density,
                                             (min(bk, K // groups), bc), per_position=per_position,
                                             density_name=density_name)
        return pruned.reshape(arr.shape), mask.reshape(arr.shape)
    nk, nc = -(-K // bk), -(-C // bc)
    padded = np.zeros((positions, nk * bk, nc * bc))
    padded[:, :K, :C] = np.square(_magnitudes(arr, "U").astype(np.float64))
    norms = np.sqrt(padded.reshape(positions, nk, bk, nc, bc).sum(axis=(2, 4)))  # positions × nk × nc
    keep_blocks = _mask(norms, density, 0 if per_position else None, "U", density_name)
    mask = np.repeat(np.repeat(keep_blocks, bk, axis=1), bc, axis=2)[:, :K, :C]
    return apply_mask(arr, mask), mask


def prune_winograd_n_m(U: np.ndarray, n: int = 2, m: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """N:M structured pruning of Winograd-domain weights U (α^nd×K×C) along C, the reduction
    of the products: of every ``m`` consecutive input channels of every (position, filter) row,
    the ``n`` of largest magnitude are kept (2:4, the pattern of sparse tensor cores'
    ``mma.sp`` for 16-bit operands; 1:2 for TF32).  A short last group (m ∤ C) keeps at most
    ``n`` of its entries.  Ties keep the lower channel.  Density: n / m (up to the short group).

    Returns:
        ``(U_pruned, mask)``.
    """
    arr = _as_array(U, "U")
    if arr.ndim != 3:
        raise ValueError(f"U must be 3-D (α^nd×K×C), got shape {arr.shape}")
    for name, v in (("n", n), ("m", m)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if not 1 <= n <= m:
        raise ValueError(f"n:m must satisfy 1 <= n <= m, got {n}:{m}")
    positions, K, C = arr.shape
    groups = -(-C // m)
    mag = np.full((positions, K, groups * m), -1.0)  # padding ranks below every real entry
    mag[..., :C] = _magnitudes(arr, "U")
    g = mag.reshape(positions, K, groups, m)
    order = np.argsort(-g, axis=-1, kind="stable")  # ties: the lower channel first
    keep = np.zeros(g.shape, bool)
    np.put_along_axis(keep, order[..., :n], True, axis=-1)
    mask = (keep & (g >= 0)).reshape(positions, K, groups * m)[..., :C]
    return apply_mask(arr, mask), mask


def prune_filters(
    w: np.ndarray, keep: int | None = None, *, keep_fraction: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Remove whole output filters, keeping those with the largest Frobenius norm.

    Args:
        w: weights K×C×… (spatial K×C×r×r, or any array whose axis 0 is the filter).
        keep: number of filters kept, ``1 <= keep <= K``.
        keep_fraction: alternatively, the fraction of filters kept, in ``(0, 1]``:
            ``max(1, round(keep_fraction · K))`` filters.  Give exactly one of the two.

    Returns:
        ``(w_kept, kept_indices)``: the kept filters in their original order
        (``w[kept_indices]``), and the ascending int64 indices of the kept filters.
        Pass ``kept_indices`` to :func:`drop_input_channels` for the next layer, and use
        it to index this layer's bias.  Ties in norm keep the lower index.
    """
    arr = _as_array(w, "w")
    if arr.ndim < 2:
        raise ValueError(f"w must be at least 2-D (K×C×…), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"w must not be empty (at least one filter of at least one element), got shape {arr.shape}")
    k_total = arr.shape[0]
    if (keep is None) == (keep_fraction is None):
        raise TypeError("prune_filters needs exactly one of keep (a count) and keep_fraction")
    if keep is not None:
        if isinstance(keep, (bool, np.bool_)) or not isinstance(keep, (int, np.integer)):
            raise TypeError(f"keep must be an int (a number of filters), got {type(keep).__name__}")
        n_keep = int(keep)
        if not 1 <= n_keep <= k_total:
            raise ValueError(f"keep must be in [1, K] = [1, {k_total}], got {keep}")
    else:
        f = _check_density(keep_fraction, "keep_fraction")
        if f == 0.0:
            raise ValueError("keep_fraction must be in (0, 1], got 0")
        n_keep = max(1, kept_count(f, k_total))
    flat = arr.reshape(k_total, -1)
    if flat.dtype.kind == "f" and not np.all(np.isfinite(flat)):
        raise ValueError("w contains NaN or infinite values; cannot rank filter norms")
    norms = np.sqrt(np.sum(np.square(flat.astype(np.float64)), axis=1))
    order = np.argsort(-norms, kind="stable")  # ties: lower index first
    kept = np.sort(order[:n_keep]).astype(np.int64)
    return arr[kept].copy(), kept


def drop_input_channels(w_next: np.ndarray, kept_indices: np.ndarray | Sequence[int]) -> np.ndarray:
    """Keep only the input channels ``kept_indices`` (axis 1) of the next layer's weights.

    After :func:`prune_filters` removed output filters of a layer, the next layer's
    weights ``w_next`` (K'×C×…) must drop the same channels: returns
    ``w_next[:, kept_indices]`` (a copy).

    Raises:
        TypeError: indices not integers.
        ValueError: ``w_next`` not at least 2-D, indices not 1-D, out of range or repeated.
    """
    arr = _as_array(w_next, "w_next")
    if arr.ndim < 2:
        raise ValueError(f"w_next must be at least 2-D (K×C×…), got shape {arr.shape}")
    try:
        idx = np.asarray(kept_indices)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"kept_indices must be a 1-D sequence of ints: {exc}") from None
    if idx.dtype.kind not in "iu":
        raise TypeError(f"kept_indices must be integers, got dtype {idx.dtype}")
    if idx.ndim != 1:
        raise ValueError(f"kept_indices must be 1-D, got shape {idx.shape}")
    c = arr.shape[1]
    if idx.size and (idx.min() < 0 or idx.max() >= c):
        raise ValueError(f"kept_indices must be in [0, C) = [0, {c}) for w_next, got {idx.min()}..{idx.max()}")
    if np.unique(idx).size != idx.size:
        raise ValueError("kept_indices must not repeat a channel")
    return arr[:, idx].copy()
