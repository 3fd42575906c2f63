"""The 2:4 format of pruned Winograd-domain weights, for sparse tensor cores (``mma.sp``).

After pruning along the reduction (the input channels C), every Winograd position's U[b]
(K×C) keeps at most 2 of every 4 consecutive entries of a row (fp16, bf16: the 2:4 pattern of
``mma.sp`` m16n8k16) or at most 1 of every 2 (tf32, tf32x3: the PTX ISA requires 1:2 for
``.tf32`` operands, written in the same 2:4 metadata as index pairs {0, 1} / {2, 3}).  The
kernel ``kernels/sp24_tc_batched.cuh`` multiplies such a U by a dense V on sparse tensor cores,
C[b] = U[b] · V[b]; :class:`Batched24` holds U in exactly the layout it loads:

    values  (batch, K, Cc)  operand type: float16 (fp16), bfloat16 bits as uint16 (bf16),
                            float32 (tf32, tf32x3).  Row r: its stored values in column order,
                            2 per 4 columns (1 per 2 for tf32); positions a group does not use
                            (fewer nonzeros than the pattern allows) hold zeros.
    meta    uint32 (batch, ceil(K / 16), Cp / step, 32)  the mma.sp metadata registers:
                            word [b, t, s, 4g + q] describes rows 16t + g (bits 15..0) and
                            16t + g + 8 (bits 31..16) for quarter q of step s, 4 bits per group
                            (2-bit positions i0 < i1; tf32: 0x4 first element, 0xE second).

with step = 64 (16-bit) or 32 (tf32), Cp = C rounded up to the step, Cc = Cp / 2; groups past C
hold zeros (code 0x4), rows past K in the last tile code 0x4.  Both arrays are C-contiguous and
16-byte aligned (the kernel stages them in 16-byte copies).  The C entry is
``mw_sp24_batched``; the binding ``sp24_batched`` of the extensions.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import _backend
from .precision import from_storage, to_storage
from .sparse import _c_contiguous, _is_cupy, _usable_cupy, array_module

__all__ = ["Batched24", "PRECISIONS", "pattern", "pattern_mask"]

#: The precisions of the format (fp32 and fp64 have no sparse tensor core).
PRECISIONS = ("fp16", "bf16", "tf32", "tf32x3")

_VALUE_DTYPES = {"fp16": np.float16, "bf16": np.uint16, "tf32": np.float32, "tf32x3": np.float32}
_PAD_CODE = 0x4  # positions {0, 1} (16-bit) / the first element (tf32): valid, with zero values


def _check_precision(precision: Any) -> str:
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {PRECISIONS} (fp32 and fp64 have no sparse tensor core), "
            f"got {precision!r}"
        )
    return precision


def pattern(precision: str) -> tuple[int, int, int]:
    """(group, kept, step) of a precision: (4, 2, 64) for fp16 / bf16, (2, 1, 32) for tf32 and
    tf32x3 (the ISA's 1:2 rule for .tf32)."""
    half = _check_precision(precision) in ("fp16", "bf16")
    return (4, 2, 64) if half else (2, 1, 32)


def _groups(a: np.ndarray, group: int, cols_padded: int, fill: Any) -> np.ndarray:
    """(batch, rows, cols) -> (batch, rows, cols_padded / group, group), padded with ``fill``."""
    batch, rows, cols = a.shape
    out = np.full((batch, rows, cols_padded), fill, dtype=a.dtype)
    out[:, :, :cols] = a
    return out.reshape(batch, rows, cols_padded // group, group)


def pattern_mask(U: Any, precision: str) -> np.ndarray:
    """A bool mask of U's shape (…×K×C, along C) keeping the largest-magnitude entries of every
    group of the precision's pattern: 2 of every 4 consecutive columns (fp16, bf16), 1 of every
    2 (tf32, tf32x3); ties keep the lower column; a last partial group keeps up to as many.

    Host (NumPy) arrays; ``U * pattern_mask(U, p)`` is a valid :meth:`Batched24.from_dense`
    input."""
    from .pruning import prune_winograd_n_m  # noqa: PLC0415

    group, kept, _ = pattern(precision)
    a = np.asarray(U)
    if a.ndim < 1:
        raise ValueError("U must have at least one dimension (the reduction, C, last)")
    _, mask = prune_winograd_n_m(a.reshape(-1, 1, a.shape[-1]), kept, group)
    return mask.reshape(a.shape)


def _aligned_empty(shape: tuple[int, ...], dtype: Any, alignment: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data is ``alignment``-byte aligned."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    skip = -raw.ctypes.data % alignment
    return raw[skip:skip + nbytes].view(dtype).reshape(shape)


def _decode_codes(meta: np.ndarray, rows: int) -> np.ndarray:
    """meta (batch, tiles, steps, 32) -> the 4-bit codes (batch, rows, steps * 16) of every
    group, in column order (inverse of the packing in :meth:`Batched24.from_dense`)."""
    batch, tiles, steps, _ = meta.shape
    words = meta.reshape(batch, tiles, steps, 8, 4)  # [.., g, q]
    shifts = np.arange(8, dtype=np.uint32) * 4  # h * 16 + 4 c for h in (0, 1), c in 0..3
    nib = (words[..., None] >> shifts) & np.uint32(0xF)  # [b, t, s, g, q, h*4 + c]
    nib = nib.reshape(batch, tiles, steps, 8, 4, 2, 4)  # [b, t, s, g, q, h, c]
    codes = nib.transpose(0, 1, 5, 3, 2, 4, 6)  # [b, t, h, g, s, q, c]: row = 16t + 8h + g
    return codes.reshape(batch, tiles * 16, steps * 16)[:, :rows]


@dataclass(frozen=True, eq=False)
class Batched24:
    """``batch`` structured-sparse ``rows × cols`` matrices in the 2:4 format (module docs).

    Attributes:
        values: (batch, rows, Cc) array of the operand type, C-contiguous, 16-byte aligned.
        meta: uint32 array (batch, ceil(rows / 16), Cp / step, 32), C-contiguous, aligned.
        shape: ``(batch, rows, cols)``; for Winograd weights ``(α^nd, K, C)``.
        precision: "fp16", "bf16", "tf32" or "tf32x3".

    The constructor validates everything (:meth:`validate`) and raises ``TypeError`` /
    ``ValueError`` naming the offending field.  NumPy or CuPy arrays, both of the same kind.
    """

    values: Any
    meta: Any
    shape: tuple[int, int, int]
    precision: str

    def __post_init__(self) -> None:
        self.validate()

    # ---------------------------------------------------------------- geometry

    @property
    def xp(self) -> ModuleType:
        """The array module of the arrays (numpy or cupy)."""
        return array_module(self.values)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of ``values`` (the operand storage of the precision)."""
        return np.dtype(self.values.dtype)

    @staticmethod
    def geometry(shape: tuple[int, int, int], precision: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(values shape, meta shape) of the format for ``shape`` and ``precision``."""
        _, _, step = pattern(precision)
        batch, rows, cols = shape
        steps = -(-cols // step)
        return (batch, rows, steps * step // 2), (batch, -(-rows // 16), steps, 32)

    # ---------------------------------------------------------------- validation

    def validate(self) -> None:
        """Check every invariant; raise naming the field that breaks one.

        Checked: ``shape`` (three ints >= 1) and ``precision``; both arrays NumPy or both CuPy;
        dtypes (the precision's operand type, uint32), shapes (:meth:`geometry`), C-contiguity,
        16-byte alignment; every metadata code legal for the precision (2-bit positions strictly
        increasing; tf32 0x4 / 0xE only: anything else is undefined behaviour on the GPU); the
        values of groups past ``cols`` zero."""
        if not isinstance(self.shape, tuple) or len(self.shape) != 3:
            raise TypeError(f"shape must be a tuple (batch, rows, cols), got {self.shape!r}")
        for name, v in zip(("batch", "rows", "cols"), self.shape):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"shape: {name} must be an int, got {type(v).__name__}")
            if v < 1:
                raise ValueError(f"shape: {name} must be >= 1, got {v}")
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        _check_precision(self.precision)
        fields = (("values", self.values), ("meta", self.meta))
        for name, a in fields:
            if not hasattr(a, "shape") or not hasattr(a, "dtype") or not hasattr(a, "flags"):
                raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(a).__name__}")
        if len({_is_cupy(a) for _, a in fields}) != 1:
            raise TypeError("values and meta must both be NumPy arrays or both CuPy arrays")
        want = np.dtype(_VALUE_DTYPES[self.precision])
        if np.dtype(self.values.dtype) != want:
            raise TypeError(f"values must have dtype {want} for precision {self.precision!r}, "
                            f"got {self.values.dtype}")
        if np.dtype(self.meta.dtype) != np.uint32:
            raise TypeError(f"meta must have dtype uint32, got {self.meta.dtype}")
        vshape, mshape = self.geometry(self.shape, self.precision)
        for (name, a), s in zip(fields, (vshape, mshape)):
            if tuple(a.shape) != s:
                raise ValueError(f"{name} must have shape {s} for shape {self.shape} and "
                                 f"precision {self.precision!r}, got {tuple(a.shape)}")
            if not _c_contiguous(a):
                raise ValueError(f"{name} must be C-contiguous")
            pointer = a.data.ptr if _is_cupy(a) else a.ctypes.data
            if pointer % 16:
                raise ValueError(f"{name} must be 16-byte aligned (the kernel's 16-byte copies)")
        meta = _backend.to_host(self.meta) if _is_cupy(self.meta) else self.meta
        values = _backend.to_host(self.values) if _is_cupy(self.values) else self.values
        codes = _decode_codes(np.asarray(meta), self.shape[1])
        bad = self._invalid(codes)
        if bad.any():
            b, r, grp = (int(i[0]) for i in np.nonzero(bad))
            raise ValueError(
                f"meta: invalid code {int(codes[b, r, grp]):#x} for matrix {b}, row {r}, group "
                f"{grp} ({self._rule()})"
            )
        tiles_bad = self._invalid(_decode_codes(np.asarray(meta), mshape[1] * 16))
        if tiles_bad.any():
            raise ValueError(f"meta: invalid code in the padding rows past rows = {self.shape[1]} "
                             f"({self._rule()})")
        group, kept, _ = pattern(self.precision)
        first_pad = -(-self.shape[2] // group) * kept  # stored columns of groups past cols
        if np.any(from_storage(np.asarray(values)[:, :, first_pad:], self.precision) != 0):
            raise ValueError(f"values: the groups past cols = {self.shape[2]} must be zero")

    def _rule(self) -> str:
        if self.precision in ("fp16", "bf16"):
            return "a 2:4 group's two 2-bit positions must be strictly increasing"
        return "a tf32 group's code must be 0x4 (first element) or 0xe (second)"

    def _invalid(self, codes: np.ndarray) -> np.ndarray:
        if self.precision in ("fp16", "bf16"):
            return (codes & 3) >= (codes >> 2)
        return (codes != 0x4) & (codes != 0xE)

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_dense(cls, U: Any, precision: str, mask: Any = None) -> Batched24:
        """The format of a dense ``batch × rows × cols`` array U (host, float32 or float64).

        Args:
            U: the matrices; values are rounded to the precision's storage (float16 / bfloat16
                nearest even; float32 kept, the kernel rounds to TF32).
            precision: "fp16", "bf16", "tf32" or "tf32x3".
            mask: None (every nonzero of U is kept and must fit the pattern), or a bool array of
                U's shape naming the kept entries (``pattern_mask`` gives one); the rest is
                dropped.

        Raises:
            ValueError: naming ``U`` (or ``mask``) and the first group with more entries than
                the pattern allows.
        """
        group, kept, step = pattern(precision)
        if _is_cupy(U) or _is_cupy(mask):
            raise TypeError("Batched24.from_dense takes host (NumPy) arrays; call .to_device() after")
        a = np.asarray(U)
        if a.ndim != 3:
            raise ValueError(f"U must be 3-D (batch, rows, cols), got shape {a.shape}")
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"U must have dtype float32 or float64, got {a.dtype}")
        a = a.astype(np.float32)
        name = "U"
        if mask is None:
            keep = a != 0
        else:
            keep = np.asarray(mask)
            if keep.dtype != np.bool_ or keep.shape != a.shape:
                raise ValueError(f"mask must be a bool array of U's shape {a.shape}, got "
                                 f"{keep.dtype} {keep.shape}")
            name = "mask"
        batch, rows, cols = a.shape
        if min(a.shape) < 1:
            raise ValueError(f"U must have batch, rows, cols >= 1, got shape {a.shape}")
        steps = -(-cols // step)
        cp_ = steps * step
        k = _groups(keep, group, cp_, False)
        counts = k.sum(axis=-1)
        if np.any(counts > kept):
            b, r, grp = (int(i[0]) for i in np.nonzero(counts > kept))
            raise ValueError(
                f"{name}: matrix {b}, row {r}, columns {grp * group}..{grp * group + group - 1} "
                f"hold {int(counts[b, r, grp])} {'nonzeros' if name == 'U' else 'kept entries'}; "
                f"precision {precision!r} allows {kept} of every {group} (pattern_mask prunes "
                f"to it)"
            )
        vals = _groups(np.where(keep, a, 0).astype(np.float32), group, cp_, 0)
        idx = np.arange(group)
        # The kept positions first (in order), then the lowest unused ones as filler: `kept`
        # sorted positions per group containing every kept entry.
        key = np.where(k, idx, idx + group)
        pos = np.sort(np.argsort(key, axis=-1, kind="stable")[..., :kept], axis=-1)
        stored = np.take_along_axis(vals, pos, axis=-1)  # zeros at filler positions
        if kept == 2:
            codes = (pos[..., 0] | pos[..., 1] << 2).astype(np.uint32)
        else:
            codes = np.where(pos[..., 0] == 1, 0xE, 0x4).astype(np.uint32)
        vshape, mshape = cls.geometry((batch, rows, cols), precision)
        values = _aligned_empty(vshape, _VALUE_DTYPES[precision])
        values[...] = to_storage(stored.reshape(vshape).astype(np.float32), precision)
        tiles = mshape[1]
        full = np.full((batch, tiles * 16, steps * 16), _PAD_CODE, dtype=np.uint32)
        full[:, :rows] = codes
        c = full.reshape(batch, tiles, 2, 8, steps, 4, 4)  # [b, t, h, g, s, q, c]
        shifts = (np.arange(2)[:, None] * 16 + np.arange(4)[None, :] * 4).astype(np.uint32)
        words = (c.transpose(0, 1, 4, 3, 5, 2, 6) << shifts).sum(axis=(-2, -1), dtype=np.uint64)
        meta = _aligned_empty(mshape, np.uint32)
        meta[...] = words.reshape(mshape).astype(np.uint32)  # [b, t, s, g, q] -> 4g + q
        return cls(values, meta, (batch, rows, cols), precision)

    def to_dense(self) -> np.ndarray:
        """The matrices as a float32 host array ``(batch, rows, cols)`` (values from their
        storage, exact)."""
        group, kept, _ = pattern(self.precision)
        batch, rows, cols = self.shape
        host = self.to_host()
        codes = _decode_codes(np.asarray(host.meta), rows)  # (batch, rows, groups)
        if kept == 2:
            pos = np.stack([codes & 3, codes >> 2], axis=-1).astype(np.int64)
        else:
            pos = np.where(codes == 0xE, 1, 0)[..., None].astype(np.int64)
        vals = from_storage(np.asarray(host.values), self.precision).astype(np.float32)
        vals = vals.reshape(batch, rows, codes.shape[-1], kept)
        dense = np.zeros((batch, rows, codes.shape[-1], group), dtype=np.float32)
        np.put_along_axis(dense, pos, vals, axis=-1)
        return dense.reshape(batch, rows, -1)[:, :, :cols]

    # ---------------------------------------------------------------- devices

    def to_device(self) -> Batched24:
        """A copy on the current CUDA device (CuPy arrays); ``self`` if already there.

        Raises:
            ImportError: CuPy is not installed.
            BackendUnavailableError: CuPy imports but sees no usable GPU.
        """
        if self.xp is not np:
            return self
        cp = _usable_cupy("Batched24.to_device")
        return Batched24(cp.asarray(self.values), cp.asarray(self.meta), self.shape, self.precision)

    def to_host(self) -> Batched24:
        """A copy in host memory (NumPy arrays, 16-byte aligned); ``self`` if already there."""
        if self.xp is np:
            return self
        values = _aligned_empty(tuple(self.values.shape), self.values.dtype)
        meta = _aligned_empty(tuple(self.meta.shape), np.uint32)
        values[...] = _backend.to_host(self.values)
        meta[...] = _backend.to_host(self.meta)
        return Batched24(values, meta, self.shape, self.precision)
