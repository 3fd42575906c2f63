"""Precision modes of the products M[b] = U[b]·V[b] (docs/api.md, "Precision").

The mode table, the rule that resolves ``precision="auto"``, the measured-accuracy table
that refuses inaccurate (mode, F(m, r)) pairs, and the NumPy emulation of the tensor-core
operand rounding (:func:`round_tf32`, :func:`matmul`) that lets the numpy backend compute
what the tensor-core kernels compute.

Only the dense product has modes: the sparse product (batched CSR) runs in float32/float64
SIMT whatever the precision.  The transforms always run in the data's dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MODES", "SUPPORTED", "MEASURED_REL_ERR", "U_TF32", "resolve", "check", "round_tf32",
           "split_tf32", "matmul", "estimated_rel_err", "ext_code"]

#: Every mode the API knows, in the order of docs/api.md.
MODES = ("auto", "fp32", "tf32x3", "tf32", "bf16", "fp16", "fp64")
#: The concrete modes each data dtype can run in (bf16 / fp16: not yet, refused).
SUPPORTED: dict[Any, tuple[str, ...]] = {
    np.dtype(np.float32): ("fp32", "tf32x3", "tf32"),
    np.dtype(np.float64): ("fp64",),
}
_NOT_YET = ("bf16", "fp16")
#: Unit roundoff of TF32 (10 explicit mantissa bits): 2⁻¹¹.
U_TF32 = 2.0**-11

#: Measured max relative error ``rel_err(y, direct float64)`` (max|δy| / max|y|) of float32
#: data per (mode, m, r, ndim): the largest over VGG-16 layers with C = 64…256 (conv2_1 …
#: conv5_3, H = W = 28 capped; 3D: C = K = 64 and 128, 8³), seeds 0 and 1, normal data,
#: numpy backend with the tensor-core operand rounding emulated (:func:`matmul`, the
#: emulator's kernels agree to float32 rounding).  Produced by
#: ``python -m magma_wino.precision`` (2026-12-01; fp32 for comparison: 5e-7 … 5e-5, docs/accuracy.md).  A mode whose entry exceeds
#: ``accuracy.USABLE_LIMIT[float32]`` (1e-3) is refused for that tile unless
#: ``allow_inaccurate=True``.
MEASURED_REL_ERR: dict[tuple[str, int, int, int], float] = {
    ('tf32', 2, 3, 2): 0.000589,
    ('tf32x3', 2, 3, 2): 7.64e-07,
    ('tf32', 2, 5, 2): 0.00793,
    ('tf32x3', 2, 5, 2): 9.22e-06,
    ('tf32', 4, 3, 2): 0.00972,
    ('tf32x3', 4, 3, 2): 1.67e-05,
    ('tf32', 6, 3, 2): 0.0139,
    ('tf32x3', 6, 3, 2): 2.29e-05,
    ('tf32', 2, 3, 3): 0.00066,
    ('tf32x3', 2, 3, 3): 5.35e-07,
    ('tf32', 4, 3, 3): 0.0469,
    ('tf32x3', 4, 3, 3): 4.36e-05,
}


def check(precision: object) -> str:
    """``precision`` as one of :data:`MODES`, or a TypeError / ValueError naming it."""
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a str (one of {', '.join(MODES)}), got {type(precision).__name__}")
    if precision not in MODES:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in MODES)}, got {precision!r}")
    return precision


def estimated_rel_err(mode: str, m: int, r: int, ndim: int) -> tuple[float, bool]:
    """(error, measured) of float32 data in ``mode`` for F(m, r) in ``ndim`` D: the entry
    of :data:`MEASURED_REL_ERR`, else an estimate ``growth_factor · u`` with u = 2⁻¹¹ for
    tf32 and u_tf32² = 2⁻²² for tf32x3 (the term the split drops), measured False.  The
    estimate is conservative: for the tabulated tiles it is 4–10× the measured figure."""
    key = (mode, int(m), int(r), int(ndim))
    if key in MEASURED_REL_ERR:
        return MEASURED_REL_ERR[key], True
    from .accuracy import growth_factor

    u = {"tf32": U_TF32, "tf32x3": U_TF32**2}[mode]
    return growth_factor(m, r, ndim) * u, False


def resolve(precision: object, dtype: Any, backend: str, m: int, r: int, ndim: int,
            capability: tuple[int, int] | None = None, allow_inaccurate: bool = False) -> str:
    """The concrete mode a plan runs in.

    ``"auto"``: float64 data → fp64; float32 data → tf32x3 on the emulator and on cuda
    GPUs of compute capability 8.0+, fp32 on older GPUs and on the numpy backend (whose
    float32 matmul is already float32-level; emulating the split would only cost time).
    Explicit modes are checked against the dtype (float32: fp32 / tf32x3 / tf32; float64:
    fp64), bf16 / fp16 are refused (not yet), tensor-core modes need sm_80+ on cuda, and a
    tensor-core mode whose measured (or, untabulated, estimated) error for F(m, r) exceeds
    the float32 usable limit is refused unless ``allow_inaccurate``.
    """
    from .accuracy import USABLE_LIMIT

    precision = check(precision)
    if not isinstance(allow_inaccurate, (bool, np.bool_)):
        raise TypeError(f"allow_inaccurate must be a bool, got {type(allow_inaccurate).__name__}")
    dt = np.dtype(dtype)
    if precision in _NOT_YET:
        raise ValueError(f"precision={precision!r} is not supported yet (16-bit tensor-core products); "
                         f"use 'tf32x3', 'tf32', 'fp32' or 'auto'")
    tensor_cores = backend == "emulator" or (backend == "cuda" and capability is not None and capability >= (8, 0))
    if precision == "auto":
        if dt == np.float64:
            return "fp64"
        return "tf32x3" if tensor_cores else "fp32"
    if precision not in SUPPORTED[dt]:
        raise ValueError(f"precision={precision!r} does not apply to {dt} data "
                         f"(use {' or '.join(repr(p) for p in SUPPORTED[dt])}, or 'auto')")
    if precision in ("tf32", "tf32x3"):
        if backend == "cuda" and not tensor_cores:
            cc = "unknown" if capability is None else f"{capability[0]}.{capability[1]}"
            raise ValueError(f"precision={precision!r} needs tensor cores with TF32 (compute capability 8.0+), "
                             f"this GPU has {cc}; use 'fp32' or 'auto'")
        err, measured = estimated_rel_err(precision, m, r, ndim)
        limit = USABLE_LIMIT[np.dtype(np.float32)]
        if err > limit and not allow_inaccurate:
            how = "measured" if measured else "estimated (growth factor x unit roundoff; not in the measured table)"
            raise ValueError(
                f"precision={precision!r} is too inaccurate for F({m}, {r}) in {ndim}D: {how} relative error "
                f"{err:.2e} > usable limit {limit:.0e} for float32 data; use 'tf32x3' or 'fp32', "
                f"or pass allow_inaccurate=True")
    return precision


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


def matmul(U: np.ndarray, V: np.ndarray, mode: str, out: Any = None) -> np.ndarray:
    """U @ V (batched) as ``mode`` computes it: fp32 / fp64 plain matmul; tf32 on operands
    rounded to TF32 (products of TF32 values are exact in float32), float32 sums; tf32x3
    three products on the hi/lo split, small terms first (lo·hi + hi·lo, then + hi·hi)."""
    if mode == "tf32":
        return np.matmul(round_tf32(U), round_tf32(V), out=out)
    if mode == "tf32x3":
        uh, ul = split_tf32(U)
        vh, vl = split_tf32(V)
        small = np.matmul(ul, vh)
        small += np.matmul(uh, vl)
        big = np.matmul(uh, vh)
        return np.add(small, big, out=out)
    return np.matmul(U, V, out=out)


# --------------------------------------------------------------------------- measuring the table


def measure(tiles: tuple[tuple[int, int, int], ...] = ((2, 3, 2), (4, 3, 2), (6, 3, 2), (2, 5, 2),
                                                       (2, 3, 3), (4, 3, 3)),
            modes: tuple[str, ...] = ("tf32", "tf32x3", "fp32"), seeds: tuple[int, ...] = (0, 1),
            backend: str = "numpy") -> dict[tuple[str, int, int, int], float]:
    """Max rel_err per (mode, m, r, ndim) over VGG-16 layers with C = 64…256 (2D) or
    C = K = 64, 128 at 8³ (3D), float32 normal data, against the float64 direct convolution."""
    from . import reference
    from .accuracy import rel_err, vgg16_layers
    from .conv import conv2d, conv3d

    table: dict[tuple[str, int, int, int], float] = {}
    for m, r, nd in tiles:
        if nd == 2:
            shapes = [(L["C"], L["K"], L["H"]) for L in vgg16_layers(28) if 64 <= L["C"] <= 256]
        else:
            shapes = [(64, 64, 8), (128, 128, 8)]
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
        print(f"    {key!r}: {float(f'{table[key]:.2e}')!r},")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
