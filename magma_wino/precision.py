"""Precision modes of the products M[b] = U[b]·V[b] (docs/api.md, "Precision").

The mode table, the rule that resolves ``precision="auto"``, the measured-accuracy table
that refuses inaccurate (mode, F(m, r)) pairs, and the NumPy emulation of the tensor-core
operand rounding (:func:`round_tf32`, :func:`matmul`) that lets the numpy backend compute
what the tensor-core kernels compute.

Only the dense product has modes: the sparse product (batched CSR) runs in float32/float64
SIMT whatever the precision.  The transforms run in the compute dtype (float64 for float64
data, float32 otherwise); in "fp16" / "bf16" the transforms store U and V in 16 bits
(binary16 as ``float16``, bfloat16 as its raw bits in ``uint16``: neither CuPy nor NumPy has
a bfloat16 dtype of their own) and the products accumulate in float32.

Data dtypes: float32, float64, and the 16-bit ``float16`` and ``bfloat16`` (NumPy arrays of
``ml_dtypes.bfloat16``; CuPy has none) whose layers compute in float32 and return their own
dtype (:func:`compute_dtype`, :func:`is_half`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MODES", "FLOAT32_MODES", "HALF_MODES", "MEASURED_REL_ERR", "MEASURED_MARGIN", "U_TF32", "U_FP16", "U_BF16",
           "UNIT_ROUNDOFF", "FP16_MAX", "BFLOAT16", "HALF_USABLE_LIMIT", "resolve", "check", "supported",
           "is_half", "compute_dtype", "storage_dtype", "usable_limit", "round_tf32", "split_tf32",
           "round_bf16", "to_storage", "from_storage", "matmul", "estimated_rel_err", "tolerance", "ext_code"]

#: Every mode the API knows, in the order of docs/api.md.
MODES = ("auto", "fp32", "tf32x3", "tf32", "bf16", "fp16", "fp64")
#: The concrete modes of data that computes in float32 (float32, float16 and bfloat16 data).
FLOAT32_MODES = ("fp32", "tf32x3", "tf32", "bf16", "fp16")
#: The modes that store U and V in 16 bits.
HALF_MODES = ("bf16", "fp16")
#: Unit roundoff of TF32 (10 explicit mantissa bits): 2⁻¹¹.
U_TF32 = 2.0**-11
#: Unit roundoff of IEEE binary16 (10 explicit mantissa bits, as TF32): 2⁻¹¹.
U_FP16 = 2.0**-11
#: Unit roundoff of bfloat16 (7 explicit mantissa bits): 2⁻⁸.
U_BF16 = 2.0**-8
#: The unit roundoff with which each mode rounds the operands of a product (0: none).
UNIT_ROUNDOFF = {"fp32": 0.0, "fp64": 0.0, "tf32x3": U_TF32**2, "tf32": U_TF32, "fp16": U_FP16, "bf16": U_BF16}
#: Largest finite binary16: U or V beyond it become infinite in "fp16".
FP16_MAX = 65504.0

try:  # the bfloat16 NumPy dtype of JAX's ml_dtypes, when installed
    import ml_dtypes as _ml_dtypes

    #: ``np.dtype(ml_dtypes.bfloat16)``, or None without ml_dtypes.
    BFLOAT16: np.dtype | None = np.dtype(_ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
    BFLOAT16 = None

#: Usable limit of ``rel_err`` for 16-bit data (float32 and float64: accuracy.USABLE_LIMIT):
#: about 20 units of the data's own roundoff (float16: 20·2⁻¹¹ = 9.8e-3 → 1e-2, bfloat16: 20·2⁻⁸ = 7.8e-2 → 8e-2).
#: The output alone is rounded to the data dtype (up to one unit); a layer that loses more
#: than ~4 bits beyond that is not worth its speed.
HALF_USABLE_LIMIT = {"float16": 1e-2, "bfloat16": 8e-2}


def is_half(dtype: Any) -> bool:
    """Whether ``dtype`` is a 16-bit float data dtype (float16 or bfloat16)."""
    return np.dtype(dtype).name in HALF_USABLE_LIMIT


def compute_dtype(dtype: Any) -> np.dtype:
    """The dtype a layer of ``dtype`` data computes in: float64 for float64, float32 else."""
    dt = np.dtype(dtype)
    return dt if dt == np.float64 else np.dtype(np.float32)


def storage_dtype(mode: str, dtype: Any) -> np.dtype:
    """The dtype of U and V in ``mode`` for data of ``dtype``: float16 in "fp16", uint16
    (bfloat16 bits) in "bf16", else the compute dtype."""
    if mode == "fp16":
        return np.dtype(np.float16)
    if mode == "bf16":
        return np.dtype(np.uint16)
    return compute_dtype(dtype)


def supported(dtype: Any) -> tuple[str, ...]:
    """The concrete modes data of ``dtype`` can run in."""
    return ("fp64",) if np.dtype(dtype) == np.float64 else FLOAT32_MODES


def usable_limit(dtype: Any) -> float:
    """The usable limit of ``rel_err`` for data of ``dtype`` (16-bit: :data:`HALF_USABLE_LIMIT`)."""
    from .accuracy import USABLE_LIMIT

    dt = np.dtype(dtype)
    return HALF_USABLE_LIMIT[dt.name] if is_half(dt) else USABLE_LIMIT[dt]

#: Measured max relative error ``rel_err(y, direct float64)`` (max|δy| / max|y|) of float32
#: data per (mode, m, r, ndim) for the modes that round operands (tf32, tf32x3, fp16, bf16):
#: the largest over the VGG-16 layers with C = 3…256 (conv1_1 … conv5_3, H = W = 28 capped;
#: 3D: (C, K) = (3, 64), (64, 64), (128, 128) at 8³), seeds 0 … 7, normal data, numpy
#: backend with the tensor-core operand rounding emulated (:func:`matmul`; the emulator's
#: kernels agree to float32 rounding).  Produced by ``python -m magma_wino.precision``
#: (2026-12-01; fp32 for comparison: 6e-7 … 4e-5, docs/accuracy.md).  A mode whose entry
#: times :data:`MEASURED_MARGIN` exceeds the data's usable limit (:func:`usable_limit`:
#: float32 1e-3, float16 1e-2, bfloat16 8e-2) is refused for that tile unless
#: ``allow_inaccurate=True``.  The first layer (C = 3) has the largest relative errors of
#: the tf32 / fp16 / bf16 modes.
#: Headroom on a measured figure: the table is a sample maximum (8 seeds × the layers), and a
#: fresh draw exceeds it (2 seeds gave 7.3e-4 for tf32 F(2, 3), 8 seeds 1.1e-3); a mode is
#: accepted only when measured × 1.25 is within the limit.
MEASURED_MARGIN = 1.25
MEASURED_REL_ERR: dict[tuple[str, int, int, int], float] = {
    ('bf16', 2, 3, 2): 0.00816,
    ('fp16', 2, 3, 2): 0.0011,
    ('tf32', 2, 3, 2): 0.0011,
    ('tf32x3', 2, 3, 2): 9.62e-07,
    ('bf16', 2, 5, 2): 0.0934,
    ('fp16', 2, 5, 2): 0.0109,
    ('tf32', 2, 5, 2): 0.0109,
    ('tf32x3', 2, 5, 2): 1.1e-05,
    ('bf16', 4, 3, 2): 0.152,
    ('fp16', 4, 3, 2): 0.0176,
    ('tf32', 4, 3, 2): 0.0176,
    ('tf32x3', 4, 3, 2): 1.51e-05,
    ('bf16', 6, 3, 2): 0.212,
    ('fp16', 6, 3, 2): 0.03,
    ('tf32', 6, 3, 2): 0.03,
    ('tf32x3', 6, 3, 2): 2.63e-05,
    ('bf16', 2, 3, 3): 0.00722,
    ('fp16', 2, 3, 3): 0.001,
    ('tf32', 2, 3, 3): 0.001,
    ('tf32x3', 2, 3, 3): 6.17e-07,
    ('bf16', 4, 3, 3): 0.536,
    ('fp16', 4, 3, 3): 0.0908,
    ('tf32', 4, 3, 3): 0.0908,
    ('tf32x3', 4, 3, 3): 5.55e-05,
}


def check(precision: object) -> str:
    """``precision`` as one of :data:`MODES`, or a TypeError / ValueError naming it."""
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a str (one of {', '.join(MODES)}), got {type(precision).__name__}")
    if precision not in MODES:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in MODES)}, got {precision!r}")
    return precision


def _default_points(m: int, r: int, points: Any) -> bool:
    """Whether ``points`` (None or a point sequence) are F(m, r)'s default points, in any
    order (an order only renumbers the Winograd positions: the same arithmetic)."""
    if points is None:
        return True
    from .transforms import winograd

    return set(winograd(m, r, points).points) == set(winograd(m, r).points)


def estimated_rel_err(mode: str, m: int, r: int, ndim: int, points: Any = None) -> tuple[float, bool]:
    """(error, measured) of float32 data in ``mode`` for F(m, r) in ``ndim`` D with the
    interpolation ``points`` (None: the defaults): the entry of :data:`MEASURED_REL_ERR`
    (default points only), else an estimate ``growth_factor(points) · u`` with the mode's
    operand unit roundoff (:data:`UNIT_ROUNDOFF`: 2⁻¹¹ for tf32 and fp16, 2⁻⁸ for bf16,
    u_tf32² = 2⁻²² for tf32x3, the term the split drops), measured False.  The estimate is
    conservative: for the tabulated tiles it is 3–8× the measured figure for tf32 / fp16 /
    bf16 (1.3–4.4× for tf32x3)."""
    key = (mode, int(m), int(r), int(ndim))
    if key in MEASURED_REL_ERR and _default_points(m, r, points):
        return MEASURED_REL_ERR[key], True
    from .accuracy import growth_factor

    return growth_factor(m, r, ndim, points) * UNIT_ROUNDOFF[mode], False


def _tensor_cores(backend: str, capability: tuple[int, int] | None) -> bool:
    """Whether the plan's products can run on tensor cores with TF32/BF16/FP16 inputs: the
    emulator, and cuda GPUs of compute capability 8.0+ (the kernels are built for sm_80+)."""
    return backend == "emulator" or (backend == "cuda" and capability is not None and capability >= (8, 0))


def _refusal(mode: str, dt: np.dtype, m: int, r: int, ndim: int, points: Any = None) -> str | None:
    """Why ``mode`` is too inaccurate for F(m, r) with ``points`` on ``dt`` data, or None."""
    if UNIT_ROUNDOFF[mode] == 0.0:
        return None
    err, measured = estimated_rel_err(mode, m, r, ndim, points)
    limit = usable_limit(dt)
    if err * (MEASURED_MARGIN if measured else 1.0) <= limit:
        return None
    how = (f"measured (with the table's headroom x{MEASURED_MARGIN:g})" if measured else
           "estimated (growth factor x unit roundoff; " +
           ("not in the measured table)" if _default_points(m, r, points) else "for these interpolation points)"))
    return (f"precision={mode!r} is too inaccurate for F({m}, {r}) in {ndim}D: {how} relative error "
            f"{err:.2e} > usable limit {limit:.0e} for {dt.name} data")


def resolve(precision: object, dtype: Any, backend: str, m: int, r: int, ndim: int,
            capability: tuple[int, int] | None = None, allow_inaccurate: bool = False,
            points: Any = None) -> str:
    """The concrete mode a plan runs in.

    ``"auto"``: float64 data → fp64; float32 data → tf32x3 on the emulator and on cuda
    GPUs of compute capability 8.0+, fp32 on older GPUs and on the numpy backend (whose
    float32 matmul is already float32-level; emulating the split would only cost time);
    float16 / bfloat16 data → fp16 / bf16 where tensor cores are (tf32x3 if the 16-bit mode
    is too inaccurate for F(m, r)), fp32 elsewhere.  Explicit modes are checked against the
    dtype (float64: fp64; every other dtype: :data:`FLOAT32_MODES`), tensor-core modes need
    sm_80+ on cuda, and a mode whose measured (or, untabulated, estimated) error for F(m, r)
    exceeds the data's usable limit (:func:`usable_limit`) is refused unless
    ``allow_inaccurate``.  Non-default interpolation ``points`` are judged on the estimate
    from their own growth factor (the measured table holds the default points only).
    """
    precision = check(precision)
    if not isinstance(allow_inaccurate, (bool, np.bool_)):
        raise TypeError(f"allow_inaccurate must be a bool, got {type(allow_inaccurate).__name__}")
    dt = np.dtype(dtype)
    tensor_cores = _tensor_cores(backend, capability)
    if precision == "auto":
        if dt == np.float64:
            return "fp64"
        if not tensor_cores:
            return "fp32"
        if is_half(dt):
            own = "fp16" if dt.name == "float16" else "bf16"
            return own if _refusal(own, dt, m, r, ndim, points) is None else "tf32x3"
        return "tf32x3"
    if precision not in supported(dt):
        raise ValueError(f"precision={precision!r} does not apply to {dt} data "
                         f"(use {' or '.join(repr(p) for p in supported(dt))}, or 'auto')")
    if UNIT_ROUNDOFF[precision] > 0.0:
        if backend == "cuda" and not tensor_cores:
            cc = "unknown" if capability is None else f"{capability[0]}.{capability[1]}"
            raise ValueError(f"precision={precision!r} needs tensor cores with TF32/BF16 (compute capability 8.0+), "
                             f"this GPU has {cc}; use 'fp32' or 'auto'")
        why = _refusal(precision, dt, m, r, ndim, points)
        if why is not None and not allow_inaccurate:
            raise ValueError(f"{why}; use 'tf32x3' or 'fp32', or pass allow_inaccurate=True")
    return precision


def tolerance(mode: str, m: Any, r: Any, reduction_len: int, ndim: int = 2) -> float:
    """Tolerance for ``rel_err`` of float32 data whose products run in ``mode``.

    fp32 and tf32x3: :func:`magma_wino.accuracy.tolerance` of float32 (tf32x3 drops only the
    lo·lo term, 2⁻²² relative per product).  tf32, fp16, bf16: each operand of a product is
    rounded once with unit roundoff u (2⁻¹¹, 2⁻¹¹, 2⁻⁸), the model of
    :func:`magma_wino.accuracy.tolerance_tf32` with its operand term scaled by u / 2⁻¹¹ (the
    model is linear in u), plus the float32 tolerance.  fp64: float64's.  ``m``, ``r`` per axis:
    a rectangular tile (:func:`magma_wino.accuracy.tolerance`)."""
    from .accuracy import tolerance as tol
    from .accuracy import tolerance_tf32

    if mode == "fp64":
        return tol(np.float64, m, r, reduction_len, ndim)
    base = tol(np.float32, m, r, reduction_len, ndim)
    if mode in ("fp32", "tf32x3"):
        return base
    return base + (tolerance_tf32(m, r, reduction_len, ndim) - base) * UNIT_ROUNDOFF[mode] / U_TF32


def ext_code(ext: Any, mode: str) -> int:
    """The extension's ``PRECISION_*`` constant of a concrete mode."""
    return int(getattr(ext, f"PRECISION_{mode.upper()}"))


# --------------------------------------------------------------------------- NumPy emulation


def round_tf32(a: Any) -> np.ndarray:
    """float32 ``a`` rounded to TF32 as ``cvt.rna.tf32.f32`` (``__float_to_tf32``) does:
    round to nearest, ties away from zero, on the float32 bits — add half a unit of the 13
    dropped mantissa bits (0x1000) to the magnitude and keep the top 19 bits (sign, 8
    exponent, 10 mantissa).  Infinities and NaNs pass through; values that round past the
    largest finite float32 become infinite.  Returns float32 (the low 13 bits zero)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32)
    rounded = ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)
    return np.where(np.isfinite(a), rounded, a)


def split_tf32(a: Any) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo): hi = tf32(a), lo = tf32(a − hi) (a − hi is exact in float32)."""
    a = np.asarray(a, dtype=np.float32)
    hi = round_tf32(a)
    return hi, round_tf32(a - hi)


def round_bf16(a: Any) -> np.ndarray:
    """float32 ``a`` rounded to bfloat16 as ``__float2bfloat16_rn`` does, as uint16 bits:
    round to nearest, ties to even, on the float32 bits — add 0x7FFF plus the lowest kept
    bit to the 32-bit pattern and keep the top 16 bits.  Values that round past the largest
    finite bfloat16 become infinite; every NaN becomes the canonical 0x7FFF, as on the GPU."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    rounded[np.isnan(a)] = 0x7FFF
    return rounded


def to_storage(a: Any, mode: str) -> np.ndarray:
    """U or V (float32, NumPy) as ``mode`` stores it: float16 (round to nearest even;
    beyond :data:`FP16_MAX` infinite; NaN the canonical 0x7FFF of ``__float2half_rn``) in
    "fp16", bfloat16 bits (:func:`round_bf16`) in "bf16", ``a`` itself otherwise."""
    if mode == "fp16":
        a = np.asarray(a, dtype=np.float32)
        with np.errstate(over="ignore"):
            h = a.astype(np.float16)
        h.view(np.uint16)[np.isnan(a)] = 0x7FFF
        return h
    if mode == "bf16":
        return round_bf16(a)
    return np.asarray(a)


def from_storage(a: Any, mode: str) -> np.ndarray:
    """The float32 values of U or V stored by :func:`to_storage` in ``mode`` (exact)."""
    if mode == "bf16":
        return (np.asarray(a, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    if mode == "fp16":
        return np.asarray(a).astype(np.float32)
    return np.asarray(a)


def matmul(U: np.ndarray, V: np.ndarray, mode: str, out: Any = None) -> np.ndarray:
    """U @ V (batched) as ``mode`` computes it: fp32 / fp64 plain matmul; tf32 on operands
    rounded to TF32 (products of TF32 values are exact in float32), float32 sums; tf32x3
    three products on the hi/lo split, small terms first (lo·hi + hi·lo, then + hi·hi);
    fp16 / bf16 on U and V in their storage dtype (:func:`storage_dtype`; float32 operands
    are rounded first): the 16-bit products are exact in float32, the sums float32."""
    if mode == "tf32":
        return np.matmul(round_tf32(U), round_tf32(V), out=out)
    if mode == "tf32x3":
        uh, ul = split_tf32(U)
        vh, vl = split_tf32(V)
        small = np.matmul(ul, vh)
        small += np.matmul(uh, vl)
        big = np.matmul(uh, vh)
        return np.add(small, big, out=out)
    if mode in HALF_MODES:
        store = storage_dtype(mode, np.float32)
        U, V = (a if np.asarray(a).dtype == store else to_storage(a, mode) for a in (U, V))
        return np.matmul(from_storage(U, mode), from_storage(V, mode), out=out)
    return np.matmul(U, V, out=out)


# --------------------------------------------------------------------------- measuring the table


def measure(tiles: tuple[tuple[int, int, int], ...] = ((2, 3, 2), (4, 3, 2), (6, 3, 2), (2, 5, 2),
                                                       (2, 3, 3), (4, 3, 3)),
            modes: tuple[str, ...] = ("tf32", "tf32x3", "fp16", "bf16", "fp32"),
            seeds: tuple[int, ...] = tuple(range(8)),
            backend: str = "numpy") -> dict[tuple[str, int, int, int], float]:
    """Max rel_err per (mode, m, r, ndim) over VGG-16 layers with C = 3…256 (2D, conv1_1 …
    conv5_3) or (C, K) = (3, 64), (64, 64), (128, 128) at 8³ (3D), float32 normal data,
    against the float64 direct convolution."""
    from . import reference
    from .accuracy import rel_err, vgg16_layers
    from .conv import conv2d, conv3d

    table: dict[tuple[str, int, int, int], float] = {}
    for m, r, nd in tiles:
        if nd == 2:
            shapes = [(L["C"], L["K"], L["H"]) for L in vgg16_layers(28) if L["C"] <= 256]
        else:
            shapes = [(3, 64, 8), (64, 64, 8), (128, 128, 8)]
        for seed in seeds:
            rng = np.random.default_rng(seed)
            for C, K, H in shapes:
                x = rng.standard_normal((1, C) + (H,) * nd)
                w = rng.standard_normal((K, C) + (r,) * nd)
                ref = (reference.conv2d_direct if nd == 2 else reference.conv3d_direct)(x, w, padding=1)
                x32, w32 = x.astype(np.float32), w.astype(np.float32)
                conv = conv2d if nd == 2 else conv3d
                for mode in modes:
                    y = conv(x32, w32, padding=1, m=m, backend=backend, precision=mode, allow_inaccurate=True)
                    key = (mode, m, r, nd)
                    table[key] = max(table.get(key, 0.0), rel_err(y, ref))
    return table


def main(argv: list[str] | None = None) -> int:
    """``python -m magma_wino.precision [--backend numpy|emulator]``: print the table."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m magma_wino.precision",
                                     description="Measure MEASURED_REL_ERR (float32 data, VGG-16 layers).")
    parser.add_argument("--backend", choices=("numpy", "emulator"), default="numpy")
    args = parser.parse_args(argv)
    table = measure(backend=args.backend)
    for key in sorted(table, key=lambda k: (k[3], k[1], k[2], k[0])):
        comment = "# " if key[0] == "fp32" else ""  # for comparison: fp32 has no entry
        print(f"    {comment}{key!r}: {float(f'{table[key]:.2e}')!r},")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
