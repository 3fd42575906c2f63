"""The batched CSR format of pruned Winograd-domain weights.

After Winograd-domain pruning, ``U`` (α^nd×K×C) is a batch of α^nd sparse K×C matrices,
one per Winograd position, each with its own density.  They are stored as **one** CSR
structure whose row-pointer table has one row per position (docs/sparse.md):

    row_ptr  int32, batch × (rows + 1)   offsets into the shared arrays below
    col_idx  int32, nnz                  column (input channel) of every stored entry
    values   float32 | float64, nnz      the stored entries

Matrix ``b``'s row ``i`` holds the entries ``row_ptr[b, i] .. row_ptr[b, i + 1] - 1``.
Positions follow each other: ``row_ptr[0, 0] = 0``, ``row_ptr[b, 0] = row_ptr[b - 1, rows]``
and ``row_ptr[batch - 1, rows] = nnz``.  So the whole structure is one ordinary CSR
matrix of ``batch · rows`` rows whose row pointer is stored with the position boundaries
repeated; the kernel (``kernels/spmm_batched.cuh``) computes ``C[b] = A[b] · B[b]`` for
all positions in one launch.

Arrays may be NumPy (host) or CuPy (device) arrays; the array module of each call is
found with :func:`array_module`, and :meth:`BatchedCSR.to_device` /
:meth:`BatchedCSR.to_host` move the whole structure.  Within a row, entries need not be
sorted and may repeat a column (repeats add up, in :meth:`BatchedCSR.to_dense` as in the
kernel); :meth:`BatchedCSR.from_dense` always produces sorted, unique columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from . import _backend
from .errors import BackendUnavailableError

__all__ = ["BatchedCSR", "array_module", "INT32_MAX"]

#: Largest nnz (and any offset) the int32 index arrays can hold.
INT32_MAX = 2**31 - 1

#: Rows dealt per round by :meth:`BatchedCSR.row_order`: twice the warps of the kernel's wide
#: tile (8; the narrow tile has 4, which the same deal also balances).
ROW_DEAL_GROUP = 16


def deal_rows(counts: np.ndarray, group: int = ROW_DEAL_GROUP) -> np.ndarray:
    """The kernel's row order for rows of ``counts[b, i]`` entries: int32, shape of ``counts``.

    Per matrix ``b`` the rows are sorted by count, descending (ties: lower row first), so that
    each block of the kernel gets rows of similar length (Sputnik's row swizzle, Gale et al.
    SC 2020).  Within every ``group`` consecutive slots the second half is dealt in reverse:
    warp ``w`` of a block (slots ``w, w + W, w + 2W, ...`` for W warps, 2W dividing ``group``)
    then gets ranks ``w, group - 1 - w, ...`` of each group, whose sums are equal, instead of
    always the longer row of every pair.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts must be 2-D (batch, rows), got shape {counts.shape}")
    if group < 2 or group % 2:
        raise ValueError(f"group must be an even number >= 2, got {group}")
    rows = counts.shape[1]
    by_count = np.argsort(-counts.astype(np.int64), axis=1, kind="stable")
    rank = np.arange(rows)
    full = rows // group * group
    k = rank[:full] % group
    half = group // 2
    # slot g*group + k holds rank g*group + k (first half) or g*group + group - 1 - (k - half)
    rank[:full] = np.where(k < half, rank[:full], rank[:full] - k + group - 1 - (k - half))
    return np.ascontiguousarray(by_count[:, rank].astype(np.int32))


def _cupy() -> ModuleType | None:
    try:
        import cupy  # noqa: PLC0415
    except Exception:  # ImportError, or a broken CUDA install
        return None
    return cupy


def array_module(*arrays: Any) -> ModuleType:
    """``cupy`` if any argument is a CuPy array (and CuPy imports), else ``numpy``."""
    cp = _cupy()
    if cp is None:
        return np
    return cp.get_array_module(*arrays)


def _is_cupy(a: Any) -> bool:
    return type(a).__module__.split(".")[0] == "cupy"


def _scalar(x: Any) -> int:
    """A 0-d (NumPy or CuPy) value as a Python int (one device sync for CuPy)."""
    return int(x.item()) if hasattr(x, "item") else int(x)


def _check_shape(shape: Any) -> tuple[int, int, int]:
    if not isinstance(shape, tuple):
        raise TypeError(f"shape must be a tuple (batch, rows, cols), got {type(shape).__name__}")
    if len(shape) != 3:
        raise TypeError(f"shape must be a tuple (batch, rows, cols) of 3 ints, got {shape!r}")
    out = []
    for name, v in zip(("batch", "rows", "cols"), shape):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"shape: {name} must be an int, got {type(v).__name__}")
        if v < 0:
            raise ValueError(f"shape: {name} must be >= 0, got {v}")
        out.append(int(v))
    if out[0] * (out[1] + 1) > INT32_MAX or out[2] > INT32_MAX:
        raise ValueError(f"shape {tuple(out)} is too large for int32 indices")
    return out[0], out[1], out[2]


def _c_contiguous(a: Any) -> bool:
    flags = getattr(a, "flags", None)
    return bool(flags is not None and flags["C_CONTIGUOUS"])


@dataclass(frozen=True, eq=False)
class BatchedCSR:
    """``batch`` sparse ``rows × cols`` matrices in one CSR structure (see module docs).

    Attributes:
        row_ptr: int32 array, shape ``(batch, rows + 1)``, C-contiguous.
        col_idx: int32 array, shape ``(nnz,)``, contiguous.
        values: float32 or float64 array, shape ``(nnz,)``, contiguous.
        shape: ``(batch, rows, cols)``; for Winograd weights ``(α^nd, K, C)``.

    The constructor validates everything (:meth:`validate`) and raises ``TypeError`` /
    ``ValueError`` naming the offending field, so a ``BatchedCSR`` that exists is safe
    to hand to the kernels.  The arrays are NumPy or CuPy arrays, all of the same kind.
    """

    row_ptr: Any
    col_idx: Any
    values: Any
    shape: tuple[int, int, int]
    # row_order()'s cache (computed on first use, where the arrays live)
    _row_order: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _check_shape(self.shape))
        self.validate()

    # ---------------------------------------------------------------- validation

    def validate(self) -> None:
        """Check every invariant of the format; raise naming the field that breaks one.

        Checked: array types (all NumPy or all CuPy), dtypes (int32 / int32 /
        float32|float64), ranks and C-contiguity, ``row_ptr.shape == (batch, rows + 1)``,
        ``len(values) == len(col_idx)``, nnz fits int32, ``row_ptr[0, 0] == 0``,
        monotone non-decreasing rows, ``row_ptr[b, 0] == row_ptr[b - 1, rows]``,
        ``row_ptr[-1, -1] == nnz`` and ``0 <= col_idx < cols``.
        """
        batch, rows, cols = self.shape
        fields = (("row_ptr", self.row_ptr), ("col_idx", self.col_idx), ("values", self.values))
        for name, a in fields:
            if not hasattr(a, "shape") or not hasattr(a, "dtype") or not hasattr(a, "flags"):
                raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(a).__name__}")
        kinds = {_is_cupy(a) for _, a in fields}
        if len(kinds) != 1:
            raise TypeError("row_ptr, col_idx and values must all be NumPy arrays or all CuPy arrays")
        for name, a in fields[:2]:
            if np.dtype(a.dtype) != np.int32:
                raise TypeError(f"{name} must have dtype int32, got {a.dtype}")
        if np.dtype(self.values.dtype) not in (np.float32, np.float64):
            raise TypeError(f"values must have dtype float32 or float64, got {self.values.dtype}")
        if self.row_ptr.ndim != 2 or tuple(self.row_ptr.shape) != (batch, rows + 1):
            raise ValueError(
                f"row_ptr must have shape (batch, rows + 1) = ({batch}, {rows + 1}), "
                f"got {tuple(self.row_ptr.shape)}"
            )
        for name, a in fields[1:]:
            if a.ndim != 1:
                raise ValueError(f"{name} must be 1-D (nnz,), got shape {tuple(a.shape)}")
        for name, a in fields:
            if not _c_contiguous(a):
                raise ValueError(f"{name} must be C-contiguous")
        nnz = int(self.col_idx.shape[0])
        if int(self.values.shape[0]) != nnz:
            raise ValueError(
                f"values has length {self.values.shape[0]} but col_idx has length {nnz}; "
                f"both must be nnz"
            )
        if nnz > INT32_MAX:
            raise ValueError(f"nnz = {nnz} does not fit the int32 offsets of row_ptr")
        if batch == 0:
            if nnz:
                raise ValueError(f"row_ptr: batch = 0 matrices cannot hold nnz = {nnz} entries")
            return
        xp = array_module(self.row_ptr)
        rp = self.row_ptr.astype(np.int64)  # differences of int32 extremes must not wrap
        first = _scalar(rp[0, 0])
        if first != 0:
            raise ValueError(f"row_ptr[0, 0] must be 0, got {first}")
        if rows > 0:
            d = rp[:, 1:] - rp[:, :-1]
            if bool(xp.any(d < 0)):
                b, i = (int(v) for v in np.argwhere(_backend.to_host(d) < 0)[0])
                raise ValueError(
                    f"row_ptr must be non-decreasing within each position: "
                    f"row_ptr[{b}, {i + 1}] = {_scalar(rp[b, i + 1])} < "
                    f"row_ptr[{b}, {i}] = {_scalar(rp[b, i])}"
                )
        if batch > 1:
            mismatch = rp[1:, 0] != rp[:-1, rows]
            if bool(xp.any(mismatch)):
                b = int(np.argmax(_backend.to_host(mismatch))) + 1
                raise ValueError(
                    f"row_ptr: position {b} must start where position {b - 1} ends: "
                    f"row_ptr[{b}, 0] = {_scalar(rp[b, 0])} != "
                    f"row_ptr[{b - 1}, {rows}] = {_scalar(rp[b - 1, rows])}"
                )
        last = _scalar(rp[batch - 1, rows])
        if last != nnz:
            raise ValueError(
                f"row_ptr[{batch - 1}, {rows}] (the last offset) must equal nnz = {nnz} "
                f"(the length of col_idx and values), got {last}"
            )
        if nnz:
            lo, hi = _scalar(self.col_idx.min()), _scalar(self.col_idx.max())
            if lo < 0 or hi >= cols:
                bad = lo if lo < 0 else hi
                raise ValueError(f"col_idx must be in [0, cols) = [0, {cols}), found {bad}")

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_dense(cls, U: Any, mask: Any = None) -> BatchedCSR:
        """Build the CSR of a dense ``batch × rows × cols`` array (NumPy or CuPy).

        Args:
            U: the dense matrices, e.g. Winograd-domain weights α^nd×K×C.  float32 and
                float64 keep their dtype; float16 becomes float32; integer and bool
                become float64.
            mask: None (default): store the nonzero entries.  Otherwise a boolean array
                of ``U``'s shape selecting the stored entries (an entry selected by the
                mask is stored even if its value is zero, so a pruning pattern survives
                exact zeros in the weights).

        Columns come out sorted within each row, without repeats.
        """
        if not hasattr(U, "shape") or not hasattr(U, "dtype"):
            raise TypeError(f"U must be a NumPy or CuPy array, got {type(U).__name__}")
        xp = array_module(U)
        if len(U.shape) != 3:
            raise ValueError(f"U must be 3-D (batch × rows × cols, e.g. α^nd×K×C), got shape {tuple(U.shape)}")
        dt = np.dtype(U.dtype)
        if dt.kind == "f":
            vdt = np.float64 if dt.itemsize >= 8 else np.float32
            if dt.itemsize > 8:
                raise TypeError(f"U must be float32 or float64 (or an integer type), got {dt}")
        elif dt.kind in "iub":
            vdt = np.float64
        elif dt.name == "bfloat16":  # ml_dtypes' bfloat16 (kind "V"): values in float32
            vdt = np.float32
        else:
            raise TypeError(f"U must have a real numeric dtype, got {dt}")
        if mask is None:
            sel = U != 0
        else:
            if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
                raise TypeError(f"mask must be a boolean array, got {type(mask).__name__}")
            if np.dtype(mask.dtype) != np.bool_:
                raise TypeError(f"mask must have dtype bool, got {mask.dtype}")
            if tuple(mask.shape) != tuple(U.shape):
                raise ValueError(f"mask must have the shape of U, {tuple(U.shape)}, got {tuple(mask.shape)}")
            if array_module(mask) is not xp:
                raise TypeError("mask must live where U lives (both NumPy or both CuPy)")
            sel = mask
        batch, rows, cols = (int(s) for s in U.shape)
        shape = _check_shape((batch, rows, cols))
        counts = sel.reshape(batch * rows, cols).sum(axis=1, dtype=np.int64)
        starts = xp.zeros(batch * rows + 1, dtype=np.int64)
        if batch * rows:
            xp.cumsum(counts, out=starts[1:])
        nnz = _scalar(starts[-1])
        if nnz > INT32_MAX:
            raise ValueError(f"U has {nnz} stored entries, more than int32 offsets can address")
        idx = (xp.arange(batch, dtype=np.int64)[:, None] * rows + xp.arange(rows + 1, dtype=np.int64)[None, :])
        row_ptr = xp.ascontiguousarray(starts[idx].astype(np.int32))
        # C-order nonzero() enumerates (b, row, col) lexicographically: exactly CSR order
        col_idx = xp.ascontiguousarray(xp.nonzero(sel)[2].astype(np.int32))
        values = xp.ascontiguousarray(U[sel].astype(vdt))
        return cls(row_ptr, col_idx, values, shape)

    # ---------------------------------------------------------------- views

    @property
    def xp(self) -> ModuleType:
        """The array module of the arrays (``numpy`` or ``cupy``)."""
        return array_module(self.row_ptr)

    @property
    def dtype(self) -> np.dtype:
        """dtype of ``values``."""
        return np.dtype(self.values.dtype)

    @property
    def nnz(self) -> int:
        """Number of stored entries (explicit zeros included)."""
        return int(self.col_idx.shape[0])

    @property
    def density(self) -> float:
        """``nnz / (batch · rows · cols)`` (0.0 for an empty shape)."""
        size = self.shape[0] * self.shape[1] * self.shape[2]
        return self.nnz / size if size else 0.0

    def nnz_per_position(self) -> np.ndarray:
        """Stored entries of every matrix ``b`` (host int64 array of length batch)."""
        rp = _backend.to_host(self.row_ptr).astype(np.int64)
        return rp[:, -1] - rp[:, 0] if rp.size else np.zeros(self.shape[0], np.int64)

    def density_per_position(self) -> np.ndarray:
        """Density of every matrix ``b``: ``nnz_b / (rows · cols)`` (host float64 array)."""
        size = self.shape[1] * self.shape[2]
        n = self.nnz_per_position().astype(np.float64)
        return n / size if size else np.zeros_like(n)

    def row_nnz(self) -> np.ndarray:
        """Stored entries per row, host int64 array of shape ``(batch, rows)``."""
        rp = _backend.to_host(self.row_ptr).astype(np.int64)
        return np.diff(rp, axis=1)

    def row_order(self) -> Any:
        """The kernel's load-balancing row permutation (:func:`deal_rows` of :meth:`row_nnz`):
        int32, ``(batch, rows)``, where the arrays live; computed once and cached.

        The kernel computes the same C, bitwise, with or without it (every row is summed in
        CSR order); with it, the rows of a block have similar lengths and its warps similar work.
        """
        if self._row_order is None:
            order = deal_rows(self.row_nnz())
            xp = self.xp
            object.__setattr__(self, "_row_order", order if xp is np else xp.ascontiguousarray(xp.asarray(order)))
        return self._row_order

    def to_dense(self) -> Any:
        """The dense ``batch × rows × cols`` array (same array module and dtype as values).

        Repeated columns within a row add up (as in the kernel).
        """
        batch, rows, cols = self.shape
        xp = self.xp
        out = xp.zeros((batch, rows, cols), dtype=self.values.dtype)
        if self.nnz == 0:
            return out
        # The (flattened) row of every entry: the last row whose start is <= its index (empty
        # rows share their start with the next row).  searchsorted rather than repeat with
        # array counts, which CuPy accepts only from version 14.
        starts = self.row_ptr[:, :-1].ravel().astype(np.int64)
        row_of = xp.searchsorted(starts, xp.arange(self.nnz, dtype=np.int64), side="right") - 1
        flat = row_of * cols + self.col_idx.astype(np.int64)
        if xp is np:
            np.add.at(out.reshape(-1), flat, self.values)
        else:  # pragma: no cover - needs a GPU
            import cupyx  # noqa: PLC0415

            cupyx.scatter_add(out.reshape(-1), flat, self.values)
        return out

    # ---------------------------------------------------------------- movement

    def to_device(self) -> BatchedCSR:
        """A copy on the current CUDA device (CuPy arrays); ``self`` if already there.

        Raises:
            ImportError: CuPy is not installed.
            BackendUnavailableError: CuPy imports but sees no usable GPU.
        """
        if self.xp is not np:
            return self
        cp = _cupy()
        if cp is None:
            raise ImportError("BatchedCSR.to_device needs CuPy (pip install cupy-cuda12x or cupy-cuda13x)")
        try:
            usable = bool(cp.is_available())
        except Exception:  # a broken CUDA install
            usable = False
        if not usable:
            raise BackendUnavailableError(
                "BatchedCSR.to_device: no usable CUDA GPU (cupy.is_available() is False); "
                "keep the CSR on the host for backend='emulator' or 'numpy'"
            )
        return BatchedCSR(cp.asarray(self.row_ptr), cp.asarray(self.col_idx), cp.asarray(self.values), self.shape)

    def to_host(self) -> BatchedCSR:
        """A copy in host memory (NumPy arrays); ``self`` if already there."""
        if self.xp is np:
            return self
        return BatchedCSR(
            _backend.to_host(self.row_ptr), _backend.to_host(self.col_idx), _backend.to_host(self.values), self.shape
        )

    def astype(self, dtype: Any) -> BatchedCSR:
        """The same structure with ``values`` converted to float32 or float64."""
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError):
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if dt not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dt}")
        return BatchedCSR(self.row_ptr, self.col_idx, self.values.astype(dt), self.shape)

    def __repr__(self) -> str:
        where = "device" if self.xp is not np else "host"
        return (
            f"BatchedCSR(shape={self.shape}, nnz={self.nnz}, density={self.density:.4g}, "
            f"dtype={self.dtype}, {where})"
        )

