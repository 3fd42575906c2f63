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

__all__ = ["BatchedCSR", "BatchedBSR", "BSR_BLOCK", "BSR_BLOCKS", "array_module", "INT32_MAX"]

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


def _usable_cupy(what: str) -> ModuleType:
    """CuPy with a usable GPU, for ``what`` (a ``to_device`` method)."""
    cp = _cupy()
    if cp is None:
        raise ImportError(f"{what} needs CuPy (pip install cupy-cuda12x or cupy-cuda13x)")
    try:
        usable = bool(cp.is_available())
    except Exception:  # a broken CUDA install
        usable = False
    if not usable:
        raise BackendUnavailableError(
            f"{what}: no usable CUDA GPU (cupy.is_available() is False); "
            "keep the arrays on the host for backend='emulator' or 'numpy'"
        )
    return cp


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


def _dense_input(U: Any, mask: Any) -> tuple[ModuleType, Any, Any]:
    """Checks of a dense U and optional mask for ``from_dense``: (array module, value dtype,
    selection: the mask, or U's nonzeros)."""
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
    return xp, vdt, sel


def _check_structure(row_ptr: Any, col_idx: Any, nnz: int, rows: int, cols: int,
                     what: tuple[str, str, str] = ("row_ptr", "col_idx", "nnz")) -> None:
    """The CSR invariants of a ``row_ptr`` (batch × (rows + 1), batch >= 1) and ``col_idx``
    (nnz,) whose types and shapes are already checked: ``row_ptr[0, 0] == 0``, non-decreasing
    rows, positions chained, the last offset ``nnz``, columns in ``[0, cols)``.  ``what`` names
    the arrays and the count in messages (the block CSR checks its block structure with it)."""
    rp_name, ci_name, n_name = what
    xp = array_module(row_ptr)
    batch = int(row_ptr.shape[0])
    rp = row_ptr.astype(np.int64)  # differences of int32 extremes must not wrap
    first = _scalar(rp[0, 0])
    if first != 0:
        raise ValueError(f"{rp_name}[0, 0] must be 0, got {first}")
    if rows > 0:
        d = rp[:, 1:] - rp[:, :-1]
        if bool(xp.any(d < 0)):
            b, i = (int(v) for v in np.argwhere(_backend.to_host(d) < 0)[0])
            raise ValueError(
                f"{rp_name} must be non-decreasing within each position: "
                f"{rp_name}[{b}, {i + 1}] = {_scalar(rp[b, i + 1])} < "
                f"{rp_name}[{b}, {i}] = {_scalar(rp[b, i])}"
            )
    if batch > 1:
        mismatch = rp[1:, 0] != rp[:-1, rows]
        if bool(xp.any(mismatch)):
            b = int(np.argmax(_backend.to_host(mismatch))) + 1
            raise ValueError(
                f"{rp_name}: position {b} must start where position {b - 1} ends: "
                f"{rp_name}[{b}, 0] = {_scalar(rp[b, 0])} != "
                f"{rp_name}[{b - 1}, {rows}] = {_scalar(rp[b - 1, rows])}"
            )
    last = _scalar(rp[batch - 1, rows])
    if last != nnz:
        raise ValueError(
            f"{rp_name}[{batch - 1}, {rows}] (the last offset) must equal {n_name} = {nnz} "
            f"(the length of {ci_name} and values), got {last}"
        )
    if nnz:
        lo, hi = _scalar(col_idx.min()), _scalar(col_idx.max())
        if lo < 0 or hi >= cols:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{ci_name} must be in [0, {cols}), found {bad}")


class _RowPointerArrays:
    """What the CSR and the block CSR share: arrays ``row_ptr`` (chained over the positions),
    ``col_idx`` and ``values`` of one array module."""

    row_ptr: Any
    col_idx: Any
    values: Any

    @property
    def xp(self) -> ModuleType:
        """The array module of the arrays (``numpy`` or ``cupy``)."""
        return array_module(self.row_ptr)

    @property
    def dtype(self) -> np.dtype:
        """dtype of ``values`` (uint16 for bfloat16 bits)."""
        return np.dtype(self.values.dtype)

    def _check_arrays(self) -> tuple[tuple[str, Any], ...]:
        """The checks both formats start with: three NumPy or CuPy arrays, all of one kind,
        int32 ``row_ptr`` and ``col_idx``.  Returns the (name, array) pairs."""
        fields = (("row_ptr", self.row_ptr), ("col_idx", self.col_idx), ("values", self.values))
        for name, a in fields:
            if not hasattr(a, "shape") or not hasattr(a, "dtype") or not hasattr(a, "flags"):
                raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(a).__name__}")
        if len({_is_cupy(a) for _, a in fields}) != 1:
            raise TypeError("row_ptr, col_idx and values must all be NumPy arrays or all CuPy arrays")
        for name, a in fields[:2]:
            if np.dtype(a.dtype) != np.int32:
                raise TypeError(f"{name} must have dtype int32, got {a.dtype}")
        return fields

    def _entry_rows(self) -> Any:
        """The flattened row (b·rows + i; block rows for the block CSR) of every stored entry,
        where the arrays live: the last row whose start is <= its index (empty rows share their
        start with the next row).  searchsorted rather than repeat with array counts, which CuPy
        accepts only from version 14."""
        xp = self.xp
        starts = self.row_ptr[:, :-1].ravel().astype(np.int64)
        return xp.searchsorted(starts, xp.arange(int(self.col_idx.shape[0]), dtype=np.int64), side="right") - 1


@dataclass(frozen=True, eq=False)
class BatchedCSR(_RowPointerArrays):
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
        fields = self._check_arrays()
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
        _check_structure(self.row_ptr, self.col_idx, nnz, rows, cols)

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
        xp, vdt, sel = _dense_input(U, mask)
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
        flat = self._entry_rows() * cols + self.col_idx.astype(np.int64)
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
        cp = _usable_cupy("BatchedCSR.to_device")
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



#: The default block shape of :class:`BatchedBSR` (kernels/bsr_tc_batched.cuh): 16 output
#: channels × 8 input channels, the A operand of one m16n16k8 TF32 step.
BSR_BLOCK = (16, 8)
#: Every block shape the tensor-core kernel runs: (16, 8), and (32, 8) -- 32 output channels, a
#: warp's rows: each staged row of V then feeds 32 rows and a block's fixed costs are spread over
#: twice the MMAs (fewer instructions per MMA, coarser pruning).
BSR_BLOCKS = ((16, 8), (32, 8))

#: Value dtypes of a :class:`BatchedBSR` by its ``storage``: the operand type of the product.
_BSR_STORAGE = {None: (np.float32, np.float64), "fp16": (np.float16,), "bf16": (np.uint16,)}


@dataclass(frozen=True, eq=False)
class BatchedBSR(_RowPointerArrays):
    """``batch`` sparse ``rows × cols`` matrices in blocks of ``block = (bm, bk)``: a block CSR.

    The blocks of matrix ``b`` form a CSR matrix of ``R = ceil(rows / bm)`` block rows and
    ``ceil(cols / bk)`` block columns whose "entries" are dense ``bm × bk`` blocks
    (docs/sparse.md, "Block-sparse"):

        row_ptr  int32, batch × (R + 1)      offsets into the block arrays, chained over the
                                             positions as :class:`BatchedCSR`'s
        col_idx  int32, nblocks              block column j: columns ``[j·bk, (j + 1)·bk)``
        values   nblocks × bm × bk           the blocks, row-major, in the product's operand
                                             type: float32 / float64, float16 (``storage``
                                             "fp16") or bfloat16 bits as uint16 ("bf16")

    Entries of a block outside the matrix (the last block row or column when ``bm`` or
    ``bk`` does not divide ``rows`` or ``cols``) are zero.  Within a block row the block
    columns are unique (:meth:`from_dense` also sorts them); the kernel reads each block once.

    As :class:`BatchedCSR`, the constructor validates everything and the arrays are all NumPy
    or all CuPy.
    """

    row_ptr: Any
    col_idx: Any
    values: Any
    shape: tuple[int, int, int]
    block: tuple[int, int] = BSR_BLOCK
    storage: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _check_shape(self.shape))
        block = self.block
        if (not isinstance(block, tuple) or len(block) != 2
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and v >= 1
                           for v in block)):
            raise ValueError(f"block must be a tuple (bm, bk) of two ints >= 1, got {block!r}")
        object.__setattr__(self, "block", (int(block[0]), int(block[1])))
        if self.storage not in _BSR_STORAGE:
            raise ValueError(f"storage must be None, 'fp16' or 'bf16', got {self.storage!r}")
        self.validate()

    @property
    def block_shape(self) -> tuple[int, int, int]:
        """``(batch, R, CB)``: the block grid of every matrix."""
        batch, rows, cols = self.shape
        bm, bk = self.block
        return batch, -(-rows // bm), -(-cols // bk)

    def validate(self) -> None:
        """Check every invariant; raise naming the field that breaks one: array types (all
        NumPy or all CuPy), dtypes (int32 / int32 / the ``storage``'s), shapes
        (``row_ptr`` batch × (R + 1), ``values`` nblocks × bm × bk), C-contiguity, the block
        CSR structure (as :class:`BatchedCSR`'s, over block columns), unique block columns
        within a block row, and zeros outside the matrix."""
        batch, R, CB = self.block_shape
        bm, bk = self.block
        fields = self._check_arrays()
        allowed = _BSR_STORAGE[self.storage]
        if np.dtype(self.values.dtype) not in allowed:
            names = " or ".join(np.dtype(t).name for t in allowed)
            raise TypeError(f"values must have dtype {names} for storage={self.storage!r}, got {self.values.dtype}")
        if self.row_ptr.ndim != 2 or tuple(self.row_ptr.shape) != (batch, R + 1):
            raise ValueError(f"row_ptr must have shape (batch, R + 1) = ({batch}, {R + 1}) for "
                             f"R = ceil(rows / {bm}), got {tuple(self.row_ptr.shape)}")
        if self.col_idx.ndim != 1:
            raise ValueError(f"col_idx must be 1-D (nblocks,), got shape {tuple(self.col_idx.shape)}")
        nblocks = int(self.col_idx.shape[0])
        if tuple(self.values.shape) != (nblocks, bm, bk):
            raise ValueError(f"values must have shape (nblocks, bm, bk) = ({nblocks}, {bm}, {bk}), "
                             f"got {tuple(self.values.shape)}")
        for name, a in fields:
            if not _c_contiguous(a):
                raise ValueError(f"{name} must be C-contiguous")
        if nblocks > INT32_MAX:
            raise ValueError(f"nblocks = {nblocks} does not fit the int32 offsets of row_ptr")
        if batch == 0:
            if nblocks:
                raise ValueError(f"row_ptr: batch = 0 matrices cannot hold {nblocks} blocks")
            return
        _check_structure(self.row_ptr, self.col_idx, nblocks, R, CB, ("row_ptr", "col_idx", "nblocks"))
        if not nblocks:
            return
        xp = self.xp
        brow = self._entry_rows()  # flattened block row b·R + i of every block
        key = brow * CB + self.col_idx.astype(np.int64)
        if bool(xp.any(xp.diff(xp.sort(key)) == 0)):
            dup = _backend.to_host(xp.sort(key))
            j = int(np.argmax(np.diff(dup) == 0))
            b, i = divmod(int(dup[j]) // CB, R)
            raise ValueError(f"col_idx: block column {int(dup[j]) % CB} appears twice in block row {i} "
                             f"of position {b}; each block is stored once")
        _, rows, cols = self.shape
        bits = self.values.view(np.uint16) & 0x7FFF if self.storage == "bf16" else self.values
        if rows % bm:
            last = (brow % R) == R - 1
            if bool(xp.any(bits[last][:, rows % bm:, :] != 0)):
                raise ValueError(f"values: rows {rows} .. {R * bm - 1} of the last block row lie outside "
                                 f"the matrix and must be zero")
        if cols % bk:
            last = self.col_idx == CB - 1
            if bool(xp.any(bits[last][:, :, cols % bk:] != 0)):
                raise ValueError(f"values: columns {cols} .. {CB * bk - 1} of the last block column lie "
                                 f"outside the matrix and must be zero")

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_dense(cls, U: Any, mask: Any = None, block: tuple[int, int] = BSR_BLOCK) -> BatchedBSR:
        """The block CSR of a dense ``batch × rows × cols`` array (NumPy or CuPy).

        A block is stored when it holds a nonzero entry of ``U`` (``mask=None``) or an entry
        the boolean ``mask`` selects (a pruning pattern survives exact zeros; unselected
        entries of a stored block are stored as zeros).  Values keep float32 / float64 (other
        types: as :meth:`BatchedCSR.from_dense`); :meth:`to_storage` converts them to the
        16-bit operand types.  Block columns come out sorted within each block row.
        """
        xp, csr_dtype, sel = _dense_input(U, mask)
        batch, rows, cols = (int(s) for s in U.shape)
        tmp = cls(xp.zeros((batch, -(-rows // block[0]) + 1), np.int32), xp.zeros(0, np.int32),
                  xp.zeros((0, *block), csr_dtype), (batch, rows, cols), tuple(block))
        _, R, CB = tmp.block_shape
        bm, bk = tmp.block
        vals = xp.where(sel, U, 0).astype(csr_dtype)
        padded = xp.zeros((batch, R * bm, CB * bk), csr_dtype)
        padded[:, :rows, :cols] = vals
        psel = xp.zeros((batch, R * bm, CB * bk), bool)
        psel[:, :rows, :cols] = sel
        tiles = padded.reshape(batch, R, bm, CB, bk).transpose(0, 1, 3, 2, 4)  # b, i, j, bm, bk
        kept = psel.reshape(batch, R, bm, CB, bk).any(axis=(2, 4))  # b, i, j
        counts = kept.reshape(batch * R, CB).sum(axis=1, dtype=np.int64)
        starts = xp.zeros(batch * R + 1, dtype=np.int64)
        if batch * R:
            xp.cumsum(counts, out=starts[1:])
        idx = xp.arange(batch, dtype=np.int64)[:, None] * R + xp.arange(R + 1, dtype=np.int64)[None, :]
        row_ptr = xp.ascontiguousarray(starts[idx].astype(np.int32))
        col_idx = xp.ascontiguousarray(xp.nonzero(kept)[2].astype(np.int32))
        values = xp.ascontiguousarray(tiles[kept])
        return cls(row_ptr, col_idx, values, (batch, rows, cols), tmp.block)

    def to_storage(self, mode: str | None) -> BatchedBSR:
        """The same blocks in the operand type of precision ``mode``: float16 for "fp16",
        bfloat16 bits for "bf16" (round to nearest even, :func:`magma_wino.precision.to_storage`),
        unchanged for the float32 / float64 modes (``None`` or any other mode)."""
        from . import precision  # noqa: PLC0415

        if mode not in ("fp16", "bf16") or self.storage == mode:
            return self
        if self.storage is not None:
            raise ValueError(f"blocks already stored as {self.storage!r}; convert from the float values")
        xp = self.xp
        host = precision.to_storage(_backend.to_host(self.values).astype(np.float32), mode)
        values = xp.ascontiguousarray(host if xp is np else xp.asarray(host))
        return BatchedBSR(self.row_ptr, self.col_idx, values, self.shape, self.block, mode)

    # ---------------------------------------------------------------- views

    @property
    def nblocks(self) -> int:
        """Number of stored blocks."""
        return int(self.col_idx.shape[0])

    @property
    def block_density(self) -> float:
        """Stored blocks over the blocks of the block grid (0.0 for an empty shape)."""
        batch, R, CB = self.block_shape
        return self.nblocks / (batch * R * CB) if batch * R * CB else 0.0

    @property
    def density(self) -> float:
        """Stored entries (whole blocks, zeros inside them included, padding excluded) over
        ``batch · rows · cols``: the fraction of the dense product's work the kernel does."""
        batch, rows, cols = self.shape
        if not batch * rows * cols:
            return 0.0
        return float(self.pattern().sum()) / (batch * rows * cols)

    def block_pattern(self) -> np.ndarray:
        """Host bool array ``(batch, R, CB)``: which blocks are stored."""
        batch, R, CB = self.block_shape
        out = np.zeros(batch * R * CB, bool)
        if self.nblocks:
            flat = _backend.to_host(self._entry_rows()) * CB + _backend.to_host(self.col_idx).astype(np.int64)
            out[flat] = True
        return out.reshape(batch, R, CB)

    def pattern(self) -> np.ndarray:
        """Host bool array of the matrices' shape: the entries inside stored blocks."""
        batch, rows, cols = self.shape
        bm, bk = self.block
        full = np.repeat(np.repeat(self.block_pattern(), bm, axis=1), bk, axis=2)
        return np.ascontiguousarray(full[:, :rows, :cols])

    def to_dense(self) -> Any:
        """The dense ``batch × rows × cols`` array, where the arrays live: float32 / float64
        values as they are, 16-bit storage decoded to float32."""
        from . import precision  # noqa: PLC0415

        batch, rows, cols = self.shape
        _, R, CB = self.block_shape
        bm, bk = self.block
        xp = self.xp
        vals = self.values
        if self.storage is not None:
            host = precision.from_storage(_backend.to_host(vals), self.storage).astype(np.float32)
            vals = host if xp is np else xp.asarray(host)
        tiles = xp.zeros((batch * R, CB, bm, bk), vals.dtype)
        if self.nblocks:
            tiles[self._entry_rows(), self.col_idx.astype(np.int64)] = vals
        full = tiles.reshape(batch, R, CB, bm, bk).transpose(0, 1, 3, 2, 4).reshape(batch, R * bm, CB * bk)
        return xp.ascontiguousarray(full[:, :rows, :cols])

    # ---------------------------------------------------------------- movement

    def to_device(self) -> BatchedBSR:
        """A copy on the current CUDA device (CuPy arrays); ``self`` if already there
        (errors as :meth:`BatchedCSR.to_device`)."""
        if self.xp is not np:
            return self
        cp = _usable_cupy("BatchedBSR.to_device")
        return BatchedBSR(cp.asarray(self.row_ptr), cp.asarray(self.col_idx), cp.asarray(self.values), self.shape,
                          self.block, self.storage)

    def to_host(self) -> BatchedBSR:
        """A copy in host memory (NumPy arrays); ``self`` if already there."""
        if self.xp is np:
            return self
        return BatchedBSR(_backend.to_host(self.row_ptr), _backend.to_host(self.col_idx),
                          _backend.to_host(self.values), self.shape, self.block, self.storage)

    def astype(self, dtype: Any) -> BatchedBSR:
        """The same blocks with float32 / float64 ``values`` (not for 16-bit storage)."""
        if self.storage is not None:
            raise ValueError(f"astype: the blocks are stored as {self.storage!r}; rebuild from the float values")
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dt}")
        return BatchedBSR(self.row_ptr, self.col_idx, self.values.astype(dt), self.shape, self.block)

    def __repr__(self) -> str:
        where = "device" if self.xp is not np else "host"
        return (f"BatchedBSR(shape={self.shape}, block={self.block}, nblocks={self.nblocks}, "
                f"block_density={self.block_density:.4g}, dtype={self.dtype}, storage={self.storage!r}, {where})")
