"""Accuracy study: float32 Winograd error against the float64 direct convolution.

``magma-wino accuracy`` (= ``python -m magma_wino.cli.accuracy``) measures, for F(2,3), F(4,3),
F(6,3), F(8,3), F(2,5) and F(4,5) in float32, on VGG-16 layer shapes (batch 1, the real
channel counts, spatial size capped at ``--spatial``), the maximum and the mean relative
error of the NumPy Winograd reference (``reference.winograd_conv2d(..., points=...)``)
against ``reference.conv2d_direct`` (float64):

    max_rel  = max|y − y_ref| / max|y_ref|          (the project's measure, tests/conftest.py)
    mean_rel = mean|y − y_ref| / mean|y_ref|

for the default interpolation points and alternative point sets (:data:`POINT_SETS`), and the
same through the emulator backend (the CUDA kernel source on the CPU) on one small layer, to
show that the kernels reproduce the reference's accuracy.  Published thresholds (NNPACK) are
reported next to an NNPACK-style measurement (element-wise relative error on uniform(−0.1, 1)
data).

A second study (:func:`precision_study`) runs every concrete precision mode of
:mod:`magma_wino.precision` (read from ``precision.MODES`` at run time) × F(2,3), F(4,3),
F(6,3), F(2,5) (2D) and F(2,3), F(4,3) (3D) on the same VGG-16 layers (3D: their channel
counts at ``--spatial-3d``³): max and mean relative error against float64, the usable limit of
the data dtype, ok — on the numpy backend (tensor-core operand rounding emulated by
``precision.matmul``) or ``--backend emulator``.  ``--out DIR`` writes ``accuracy.json``, ``accuracy.md`` and, when matplotlib is
installed (``pip install 'magma-wino[bench]'``), ``accuracy.png``.

:func:`tolerance` is the library copy of ``tests/conftest.py::winograd_tolerance`` (the
library must not import the tests); the two are kept in sync by
``tests/test_accuracy.py::test_tolerance_matches_conftest``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import platform
import sys
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import _checks, reference
from ._backend import to_host
from ._version import __version__
from .cost import VGG16_LAYERS
from .transforms import _check_mr, default_points, tile_default_points, winograd

__all__ = [
    "TILES",
    "POINT_SETS",
    "SEARCHED_POINTS",
    "PRECISION_TILES",
    "REFERENCE_LINES",
    "concrete_modes",
    "precision_study",
    "summarise_precision",
    "precision_checks",
    "precision_markdown",
    "NNPACK_THRESHOLDS",
    "USABLE_LIMIT",
    "TOLERANCE_SAFETY",
    "usable_limit",
    "growth_factor",
    "rounding_depth",
    "tolerance",
    "tolerance_tf32",
    "tolerance_from_U",
    "rel_err",
    "mean_rel_err",
    "elementwise_rel_err",
    "point_set",
    "vgg16_layers",
    "study",
    "emulator_check",
    "nnpack_comparison",
    "plot",
    "markdown",
]

#: The tile configurations of the study: (m, r).
TILES: tuple[tuple[int, int], ...] = ((2, 3), (4, 3), (6, 3), (8, 3), (2, 5), (4, 5))

#: Published acceptance thresholds for float32 Winograd F(6×6, 3×3) (NNPACK's
#: ``nnp_convolution_algorithm_wt8x8``), from NNPACK's tests: the limit passed to
#: ``ConvolutionTester::errorLimit``; NNPACK's error is the element-wise
#: ``|ref − y| / max(FLT_MIN, |ref|)``, maximum over outputs, median over iterations, on
#: uniform(−0.1, 1.0) data.
NNPACK_THRESHOLDS: tuple[dict[str, Any], ...] = (
    {"source": "NNPACK test/convolution-inference/alexnet.cc (WT8x8, conv3-conv5)",
     "network": "AlexNet", "F": "F(6,3)", "limit": 1e-5},
    {"source": "NNPACK test/convolution-inference/vgg-a.cc (WT8x8, conv1)",
     "network": "VGG-A", "F": "F(6,3)", "limit": 1e-4},
)

#: Usable limits: the largest ``rel_err`` (max|y − y_ref| / max|y_ref| against the float64
#: direct convolution) at which a result is still called usable, per result dtype.
#: float32: 1e-3, the limit NNPACK's VGG-A output tests accept for its float32
#: F(6×6, 3×3) (``test/convolution-output/vgg-a.cc``, ``WT8x8``, ``errorLimit(1.0e-3)``;
#: NNPACK's measure is element-wise, which is stricter than ours).  float64: 1e-9, the
#: project's choice (no published Winograd float64 limit): six decimal digits more than
#: float32's, and ~10⁷ unit roundoffs, so only algorithms that lose over half of
#: float64's digits fail it.  :func:`tolerance` says whether an error is as small as the
#: algorithm allows; this says whether it is small enough to use.
USABLE_LIMIT: dict[Any, float] = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}


def usable_limit(dtype: Any) -> float:
    """The usable limit of ``rel_err`` for ``dtype`` data: :data:`USABLE_LIMIT` for float32
    and float64, :data:`magma_wino.precision.HALF_USABLE_LIMIT` for float16 / bfloat16."""
    from .precision import usable_limit as limit

    return limit(dtype)


#: The factor of :func:`tolerance` over its error model (derivation in its docstring).
TOLERANCE_SAFETY: float = 3.0


# --------------------------------------------------------------------------- tolerance
# The one tolerance of the project: the tests (tests/conftest.py), `validate` and `bench`
# all use these functions.


def _int_arg(v: Any, name: str, minimum: int = 1) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


def _check_ndim(ndim: Any) -> int:
    ndim = _int_arg(ndim, "ndim")
    if ndim > 3:
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
    return ndim


def _unit_roundoff(dtype: Any) -> float:
    """Unit roundoff of a floating-point ``dtype`` (TypeError naming dtype otherwise)."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}") from None
    if dt.kind != "f":
        raise TypeError(f"dtype must be a floating-point dtype (float16, float32, float64), got {dt}")
    return float(np.finfo(dt).eps) / 2.0


def growth_factor(m: int, r: int, ndim: int = 2, points: Any = None) -> float:
    """RMS error growth factor β₂^ndim of F(m, r) (computed in float64).

    ``β₂² = max_i Σ_b Aᵀ[i,b]² · ‖G[b,:]‖₂² · ‖Bᵀ[b,:]‖₂²``.  For data with
    independent entries of variance σ², ``(G g)_b (Bᵀ d)_b`` has variance
    ``‖G_b‖₂²‖Bᵀ_b‖₂² σ_g²σ_d²`` and output i weighs it with ``Aᵀ[i,b]``, so β₂ is
    the RMS size of what a 1D tile computes; n-D transforms are tensor products,
    hence ``β₂^ndim``.  β₂ is invariant under the freedom of the algorithm
    (G row b × s, Bᵀ row b / s).  Default points: F(2,3) 2.24, F(3,2) 2.00,
    F(4,3) 9.71, F(2,5) 9.94, F(6,3) 11.78.

    The worst-case (max-norm) analogue ``β₁ = max_i Σ_b |Aᵀ[i,b]|·‖G_b‖₁·‖Bᵀ_b‖₁``
    (≤ ‖Aᵀ‖∞‖G‖∞‖Bᵀ‖∞) is 3.6–5.7× larger per axis (F(6,3): 67.7), i.e. 13–33×
    in 2D and 46–190× in 3D: a tolerance built on it is never approached by
    random data (tests/conftest.py::winograd_error_bound uses it for a worst-case bound).
    """
    ndim = _check_ndim(ndim)
    at, g, bt = winograd(m, r, points).matrices(np.float64)
    beta2 = float(np.sqrt(((at**2) @ ((g**2).sum(1) * (bt**2).sum(1))).max()))
    return beta2**ndim


def rounding_depth(m: int, r: int, ndim: int = 2) -> int:
    """L = ndim·(r + 2α) + 1: roundings along one path through the transforms.

    Filter transform: ndim passes of length-r dot products; input and output
    transforms: ndim passes of length α each; plus the product U·V.
    """
    m, r, ndim = _int_arg(m, "m"), _int_arg(r, "r"), _check_ndim(ndim)
    alpha = m + r - 1
    return ndim * (r + 2 * alpha) + 1


def _tile_terms(m: Any, r: Any, ndim: int, points: Any = None) -> tuple[float, int, int]:
    """(β₂, L, taps) of a tile: the square F(m, r) in ndim dimensions (β₂^ndim, ndim·(r + 2α) + 1,
    r^ndim), or, for m and r given per axis (a rectangular tile F(m_h×m_w, r_h×r_w)), the
    products and sums of the axes' own terms (the n-D transforms are tensor products of the 1D
    ones, so the derivation of :func:`tolerance` holds axis by axis)."""
    if isinstance(m, tuple) or isinstance(r, tuple):
        ms = m if isinstance(m, tuple) else (m,) * len(r)  # type: ignore[arg-type]
        rs = r if isinstance(r, tuple) else (r,) * len(ms)
        if len(ms) != len(rs):
            raise ValueError(f"m and r must have one entry per axis each, got m={m!r}, r={r!r}")
        if points is not None:
            raise ValueError("points: a rectangular tile runs the default points (points=None)")
        beta = math.prod(growth_factor(a, b, 1) for a, b in zip(ms, rs))
        depth = sum(rounding_depth(a, b, 1) - 1 for a, b in zip(ms, rs)) + 1
        return beta, depth, math.prod(int(b) for b in rs)
    return growth_factor(m, r, ndim, points), rounding_depth(m, r, ndim), int(r) ** _check_ndim(ndim)


def tolerance(dtype: Any, m: Any, r: Any, reduction_len: int, ndim: int = 2,
              points: Any = None) -> float:
    """Tolerance for ``rel_err(winograd(x, w), direct(x, w))`` on random zero-mean data.

    ``tol = TOLERANCE_SAFETY · (u/√3) · β₂^ndim · √((L + C/2) / r^ndim)``, at most
    ``u · β₂^ndim · √(n + L)``, with ``u`` the unit roundoff of ``dtype`` (2⁻²⁴ float32,
    2⁻⁵³ float64), ``β₂^ndim`` from :func:`growth_factor`, ``n = reduction_len = C·r^ndim``
    and ``L`` from :func:`rounding_depth`.

    Derivation (first order in u; rounding errors modelled as independent, zero-mean,
    uniform on ``[−u, u]`` times the value rounded, so of standard deviation ≤ u/√3 —
    Higham & Mary, SISC 2019).  Output ``y = Σ_c Aᵀ[(G g_c Gᵀ) ⊙ (Bᵀ d_c B)]A`` with
    entries of g, d of variance σ_g², σ_d²:

    * transforms and product: ≤ L roundings per channel, each of a quantity whose
      β-weighted variance is ≤ β₂^(2·ndim) σ_g²σ_d², so variance
      ≤ (u²/3) · L · β₂^(2·ndim) σ_g²σ_d² per channel, × C channels;
    * channel sum (sequential, the worst order — GPU threads accumulate so): the
      c-th partial sum has variance c·(…), total ≈ (u²/3) · (C²/2) · β₂^(2·ndim) σ_g²σ_d².

    So ``std(δy) ≈ (u/√3) β₂^ndim σ_gσ_d √(C(L + C/2))`` while ``y`` is a sum of
    ``n = C r^ndim`` random products, ``std(y) = √n σ_gσ_d``.  The maxima over all
    outputs of δy and of y carry about the same extreme-value factor, so

        rel_err ≈ (u/√3) β₂^ndim √((L + C/2) / r^ndim)        (the model)

    and the tolerance is :data:`TOLERANCE_SAFETY` (3) times the model: the model
    already over-counts (every one of the L roundings at full size), and the factor 3
    absorbs the fluctuation of the maxima from draw to draw (×2–3 on one layer shape),
    FMA contraction and reordered sums, and a float64 reference's own rounding (for
    float64 results).  Measured (NumPy BLAS and sequential channel sums; zero-mean normal /
    uniform / sparse weights, normal / uniform / ReLU / sparse inputs; F(1…8, 2…5),
    C = 1…256; about 2400 draws): error/tol = 0.03…0.44, median 0.12.  On the scaled
    VGG / ResNet layers of the tests (``test_conv_api.py``) error/tol = 0.11…0.29, i.e.
    tol/error = 3.4…9 (``test_accuracy.py::test_tolerance_is_tight_on_the_tests_vgg_layers``:
    a 10× larger error fails); ``magma-wino validate --backend emulator``: tol/error ≥ 2.35
    (F(2,3), C = 256, sequential sums), --quick ≥ 3.8.  Version 0.1.0 used
    ``u β₂^ndim √(n + L)``, 9–40× the measured error on the tests' VGG layers; it is kept as
    a cap, which only binds for r = 1 (1×1 filters, where the model has no r^ndim slack).
    Rounding U and V to TF32 (u = 2⁻¹¹) exceeds it
    (``test_reference.py::test_float32_tolerance_rejects_tf32_precision``).
    ``m`` and ``r`` may be given per axis (a rectangular tile; ``ndim`` is then their length):
    β₂ is the product of the axes' 1D growth factors, L the sum of their depths plus the product,
    and r^ndim the product of the r_i.

    Outside its scope: data whose output cancels (max|y| ≪ √n σ_gσ_d), and weights or
    inputs with a large mean (then ``G g`` adds up coherently, up to √r per axis more
    than the model: error/tol measured up to 0.58 with uniform(−0.1, 1) weights).
    """
    u = _unit_roundoff(dtype)
    reduction_len = _int_arg(reduction_len, "reduction_len")
    beta, depth, taps = _tile_terms(m, r, ndim, points)
    channels = reduction_len / taps
    model = u / math.sqrt(3.0) * beta * math.sqrt((depth + channels / 2.0) / taps)
    return min(TOLERANCE_SAFETY * model, u * beta * math.sqrt(reduction_len + depth))


def tolerance_tf32(m: Any, r: Any, reduction_len: int, ndim: int = 2) -> float:
    """Tolerance for ``rel_err`` of float32 data whose products run in ``precision="tf32"``.

    Each operand of a product is rounded once to TF32, x(1 + δ) with |δ| ≤ u = 2⁻¹¹
    (:data:`magma_wino.precision.U_TF32`), modelled uniform (std u/√3), so a product carries
    a relative error of std √2·u/√3.  As in the derivation of :func:`tolerance`
    (per-channel contributions weighted by the growth factor β₂^ndim, y a sum of
    ``reduction_len = C·r^ndim`` products) this gives
    ``rel_err ≈ √(2/3) · u · β₂^ndim / √(r^ndim)``; the tolerance is
    :data:`TOLERANCE_SAFETY` (3) times that plus the float32 :func:`tolerance` (the float32
    sums and transforms still round).  fp32 and tf32x3 use the float32 :func:`tolerance`
    (tf32x3 drops only the lo·lo term, u² = 2⁻²² relative per product).
    """
    from .precision import U_TF32

    reduction_len = _int_arg(reduction_len, "reduction_len")
    beta, _, taps = _tile_terms(m, r, ndim)  # m, r per axis: a rectangular tile (see tolerance)
    model = math.sqrt(2.0 / 3.0) * U_TF32 * beta / math.sqrt(taps)
    return TOLERANCE_SAFETY * model + tolerance(np.float32, m, r, reduction_len, ndim)


def _tile_transform(x: np.ndarray, bt: np.ndarray, m: int, alpha: int, padding: Any) -> np.ndarray:
    """``Bᵀ d B`` (``bt`` along every spatial axis) of every tile of ``x`` (N×C×spatial), in
    float64, as α^nd × C × P (:func:`magma_wino.reference._transform_tiles`).  ``padding``: every
    form of :func:`magma_wino._checks.as_padding` ("same" for r = α − m + 1)."""
    ndim = x.ndim - 2
    pads = _checks.as_padding(padding, ndim, alpha - m + 1)
    out = [s + lo + hi - (alpha - m) for s, (lo, hi) in zip(x.shape[2:], pads)]
    return reference._transform_tiles(x, bt, m, pads, out)


def _output_matrix(at: np.ndarray, ndim: int) -> np.ndarray:
    """``Aᵀ ⊗ … ⊗ Aᵀ`` (m^nd × α^nd), positions row-major as the kernels number them."""
    a_nd = at
    for _ in range(ndim - 1):
        a_nd = np.kron(a_nd, at)
    return a_nd


def _largest_of_normals(var: np.ndarray) -> float:
    """About the largest magnitude of independent zero-mean normal errors of variances
    ``var``: the ``t`` with ``Σ_i exp(−t² / (2 var_i)) = 1`` (the Gaussian tail bound; for
    N equal variances σ², ``t = σ √(2 ln N)``), at least one standard deviation of the largest."""
    var = np.asarray(var, dtype=np.float64).ravel()
    vmax = float(var.max()) if var.size else 0.0
    if vmax <= 0.0:
        return 0.0
    q = var[var > vmax * 1e-6] / vmax
    lo, hi = 1.0, math.sqrt(2.0 * math.log(q.size) + 1.0)  # in units of √vmax
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if np.exp(-mid * mid / (2.0 * q)).sum() > 1.0:
            lo = mid
        else:
            hi = mid
    return hi * math.sqrt(vmax)


def tolerance_from_U(dtype: Any, x: Any, U: Any, m: int, r: int, padding: Any = 0,
                     relu: str | None = None, points: Any = None) -> float:
    """Tolerance on ``max|y − y_ref|`` (absolute) for ``y = Aᵀ[U ⊙ V]A`` computed in ``dtype``
    from given Winograd-domain weights ``U`` (α^nd×K×C) and input ``x``, against the float64
    ``reference.winograd_conv_from_U`` — the layers built with ``from_winograd``, whose U
    comes from no spatial filter, so :func:`tolerance` (which assumes U = G g Gᵀ) does not
    apply.  ``relu="winograd"``: ReLU on V (pass ``x`` already ReLU'd for ``"spatial"``).

    The model of :func:`tolerance`, with the data's own magnitudes in place of the growth
    factor: rounding errors independent, of standard deviation ≤ u/√3 times the value
    rounded.  Output ``(i, k, p)`` sums ``Aᵀ[i,b] U[b,k,c] V[b,c,p]``; the quantities rounded
    along its paths have mean square ≤ ``S = Σ_b Aᵀ[i,b]² Σ_c U[b,k,c]² V2[b,c,p]`` with
    ``V2 = (Bᵀ)²·x²·B²`` (the mean square of V's terms; 0 where Winograd-ReLU cuts V),
    rounded ``D = 2·ndim·α + 2`` times (input and output transforms, product, bias) plus
    ``C/2`` for the sequential channel sum: ``var δy ≤ (u²/3)·D·S`` (+ the same in float64
    for the reference).  The largest error over the outputs is about the ``t`` of
    ``Σ_i exp(−t²/(2 var_i)) = 1`` (``σ√(2 ln N)`` for N equal variances), and the
    tolerance is :data:`TOLERANCE_SAFETY` · t: 4–40× (median 7) the measured error of the
    tests' layers, where a worst-case bound (|Aᵀ|·|U|·|Bᵀ|·|x|) is 100–1000×.
    """
    t = winograd(m, r, points)
    at, _, bt = t.matrices(np.float64)
    x = to_host(x).astype(np.float64, copy=False)
    ndim = x.ndim - 2
    V2 = _tile_transform(x * x, bt * bt, m, t.alpha, padding)
    if relu == "winograd":
        V2 = np.where(_tile_transform(x, bt, m, t.alpha, padding) > 0, V2, 0.0)
    U = to_host(U).astype(np.float64, copy=False)
    S = np.tensordot(_output_matrix(at * at, ndim), np.matmul(U * U, V2), axes=([1], [0]))  # m^nd, K, P
    u = float(np.finfo(np.dtype(dtype)).eps) / 2.0
    u64 = float(np.finfo(np.float64).eps) / 2.0
    depth = 2 * ndim * t.alpha + 2 + x.shape[1] / 2.0
    return TOLERANCE_SAFETY * _largest_of_normals((u * u + u64 * u64) / 3.0 * depth * S)


# --------------------------------------------------------------------------- error measures


def _host64(a: Any, name: str) -> np.ndarray:
    if a is None or isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be an array, got {type(a).__name__}")
    try:
        h = to_host(a)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    # bfloat16 (ml_dtypes) has kind 'V' but converts to float64 exactly, as float16 does
    if h.dtype.kind not in "biuf" and h.dtype.name != "bfloat16":
        raise TypeError(f"{name} must be a real numeric array, got dtype {h.dtype}")
    return h.astype(np.float64, copy=False)


def _pair64(y: Any, y_ref: Any) -> tuple[np.ndarray, np.ndarray]:
    y, y_ref = _host64(y, "y"), _host64(y_ref, "y_ref")
    if y.shape != y_ref.shape:
        raise ValueError(f"y and y_ref must have the same shape, got {y.shape} and {y_ref.shape}")
    return y, y_ref


def rel_err(y: Any, y_ref: Any) -> float:
    """``max|y − y_ref| / max|y_ref|`` in float64 (0 when both are zero, inf when only y_ref is)."""
    y, y_ref = _pair64(y, y_ref)
    scale = float(np.abs(y_ref).max()) if y_ref.size else 0.0
    diff = float(np.abs(y - y_ref).max()) if y.size else 0.0
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else math.inf


def mean_rel_err(y: Any, y_ref: Any) -> float:
    """``mean|y − y_ref| / mean|y_ref|`` in float64."""
    y, y_ref = _pair64(y, y_ref)
    scale = float(np.abs(y_ref).mean()) if y_ref.size else 0.0
    diff = float(np.abs(y - y_ref).mean()) if y.size else 0.0
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else math.inf


def elementwise_rel_err(y: Any, y_ref: Any) -> float:
    """NNPACK's measure: ``max_i |y_ref_i − y_i| / max(FLT_MIN, |y_ref_i|)``."""
    y, y_ref = _pair64(y, y_ref)
    den = np.maximum(np.abs(y_ref), np.finfo(np.float32).tiny)
    return float((np.abs(y - y_ref) / den).max()) if y.size else 0.0


# --------------------------------------------------------------------------- point sets


def _integers(count: int) -> list[Fraction]:
    pts = [Fraction(0)]
    k = 1
    while len(pts) < count:
        pts += [Fraction(k), Fraction(-k)]
        k += 1
    return pts[:count]


def _reciprocals_first(count: int) -> list[Fraction]:
    pts = [Fraction(0), Fraction(1), Fraction(-1)]
    k = 2
    while len(pts) < count:
        pts += [Fraction(1, k), Fraction(-1, k), Fraction(k), Fraction(-k)]
        k += 1
    return pts[:count]


#: The best point sets ``tools/search_points.py`` found per F(m, r) (symmetric sets with
#: numerators and denominators ≤ 9 screened by β₂, the best measured on VGG-16 layers; docs/
#: accuracy.md, "Better interpolation points"); tiles not listed: the default points.
SEARCHED_POINTS: dict[tuple[int, int], tuple[str, ...]] = {
    (4, 3): ("0", "2/3", "-2/3", "3/2", "-3/2"),
    (2, 5): ("0", "2/3", "-2/3", "3/2", "-3/2"),
    (6, 3): ("0", "4/7", "-4/7", "1", "-1", "5/3", "-5/3"),
    (8, 3): ("0", "4/9", "-4/9", "5/6", "-5/6", "6/5", "-6/5", "9/4", "-9/4"),
}

#: Point sets of the study (the first α − 1 points of each sequence; ∞ is implied):
#: ``default`` = the library's default points (transforms.tile_default_points: the
#: DEFAULT_POINTS table, else 0, ±1, ±2, ±1/2, ±3, ±1/3, …);
#: ``sequence`` = 0, ±1, ±2, ±1/2, ±3, ±1/3, … (transforms.default_points: the defaults of
#: every tile before the table, i.e. the "before" of F(8,3));
#: ``reciprocals`` = 0, ±1, ±1/2, ±2, ±1/3, ±3, … (the same kind of points, reciprocals first);
#: ``integers`` = 0, ±1, ±2, ±3, … (no fractions: the growth of Aᵀ is not compensated);
#: ``searched`` = :data:`SEARCHED_POINTS` (the best found; the default where not listed).
POINT_SETS: tuple[str, ...] = ("default", "sequence", "reciprocals", "integers", "searched")


def point_set(name: str, m: int, r: int) -> list[Fraction] | None:
    """The ``α − 1`` finite points of the named set for F(m, r) (None for ``default``)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a point set name, one of {POINT_SETS}, got {type(name).__name__}")
    m, r = _check_mr(m, r)
    count = m + r - 2
    if name == "default":
        return None
    if name == "sequence":
        return list(default_points(count))
    if name == "integers":
        return _integers(count)
    if name == "reciprocals":
        return _reciprocals_first(count)
    if name == "searched":
        pts = SEARCHED_POINTS.get((m, r))
        return [Fraction(p) for p in pts] if pts else list(tile_default_points(m, r))
    raise ValueError(f"name: unknown point set {name!r}; choose from {POINT_SETS}")


def _points_str(name: str, m: int, r: int) -> str:
    pts = winograd(m, r, point_set(name, m, r)).points
    return ", ".join(str(p) for p in pts) + ", inf"


# --------------------------------------------------------------------------- layers


def vgg16_layers(spatial: int = 28, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """VGG-16's 3×3 layers, batch 1, real channel counts, H = W = min(H, ``spatial``).

    Identical (C, K, H) after capping are kept once, named after every layer they stand for.
    ``names``: the layers to keep (``conv1_1`` … ``conv5_3``), default all.
    """
    spatial = _int_arg(spatial, "spatial")
    labels = [f"conv{s}_{i}" for s, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)]
    if names is not None:
        if isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, set, frozenset)):
            raise TypeError(f"names must be a sequence of layer names (str), got {type(names).__name__}")
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"names must be layer names (str), got {type(n).__name__}")
        unknown = [n for n in names if n not in labels]
        if unknown:
            raise ValueError(f"names: unknown VGG-16 layer(s) {unknown}; choose from {labels[0]} … {labels[-1]}")
    seen: dict[tuple[int, int, int], dict[str, Any]] = {}
    for label, (C, K, H, _W) in zip(labels, VGG16_LAYERS):
        if names is not None and label not in names:
            continue
        h = min(H, spatial)
        key = (C, K, h)
        if key in seen:
            seen[key]["name"] += "/" + label.split("conv")[1]
        else:
            seen[key] = {"name": label, "C": C, "K": K, "H": h, "W": h, "full_H": H}
    return list(seen.values())


# --------------------------------------------------------------------------- the study


def _data(rng: np.random.Generator, shape: tuple[int, ...], dist: str) -> np.ndarray:
    if dist == "normal":
        return rng.standard_normal(shape)
    if dist == "nnpack":
        return rng.uniform(-0.1, 1.0, shape)
    raise ValueError(f"unknown data distribution {dist!r}")


def _verdict(err: float, tol: float, dtype: Any) -> dict[str, Any]:
    """The judgement of one row: ``within_bound`` (err ≤ :func:`tolerance`: as accurate as the
    algorithm can be — else a bug), ``usable`` (err ≤ :data:`USABLE_LIMIT`: accurate enough
    to use), ``ok`` = both."""
    limit = usable_limit(dtype)
    within, usable = bool(err <= tol), bool(err <= limit)
    return {"usable_limit": limit, "within_bound": within, "usable": usable, "ok": within and usable}


def study(layers: Sequence[dict[str, Any]], tiles: Sequence[tuple[int, int]] = TILES,
          point_sets: Sequence[str] = POINT_SETS, dtype: Any = np.float32, seed: int = 0,
          progress: Any = None) -> list[dict[str, Any]]:
    """Error rows of the NumPy Winograd reference against float64 direct convolution.

    Each layer gets one random normal (x, w) per filter size r (padding (r−1)/2), computed
    in ``dtype``; the float64 direct result is the reference.
    """
    dtype = np.dtype(dtype)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(seed)
    for lay in layers:
        for r in sorted({r for _, r in tiles}):
            pad = (r - 1) // 2
            x64 = _data(rng, (1, lay["C"], lay["H"], lay["W"]), "normal")
            w64 = _data(rng, (lay["K"], lay["C"], r, r), "normal")
            x, w = x64.astype(dtype), w64.astype(dtype)
            y_ref = reference.conv2d_direct(x, w, padding=pad)  # float64 on the rounded data
            for m, rr in tiles:
                if rr != r:
                    continue
                for ps in point_sets:
                    pts = point_set(ps, m, r)
                    if ps != "default" and m + r - 2 <= 3 and pts is not None:
                        pass  # α − 1 ≤ 3: every set is {0, 1, −1}; still measured (same numbers)
                    t0 = time.perf_counter()
                    y = reference.winograd_conv2d(x, w, m, padding=pad, points=pts)
                    dt_s = time.perf_counter() - t0
                    n = lay["C"] * r * r
                    tol = tolerance(dtype, m, r, n, 2, pts)
                    err = rel_err(y, y_ref)
                    rows.append({
                        "layer": lay["name"], "C": lay["C"], "K": lay["K"], "H": lay["H"], "W": lay["W"],
                        "m": m, "r": r, "F": f"F({m},{r})", "points": ps, "point_values": _points_str(ps, m, r),
                        "backend": "numpy", "dtype": dtype.name, "max_rel": err,
                        "mean_rel": mean_rel_err(y, y_ref), "tolerance": tol,
                        **_verdict(err, tol, dtype),
                        "growth_factor": growth_factor(m, r, 2, pts), "seconds": dt_s,
                    })
                    if progress is not None:
                        progress()
    return rows


def emulator_check(C: int = 32, K: int = 32, H: int = 14, tiles: Sequence[tuple[int, int]] = TILES,
                   point_sets: Sequence[str] = ("default", "integers"), dtype: Any = np.float32,
                   seed: int = 1) -> list[dict[str, Any]]:
    """The same errors through the emulator backend (the CUDA kernel source on the CPU):
    specialised kernels for the default points where they exist, generic ones otherwise.

    Returns [] with no rows when the emulator extension is missing.
    """
    from . import _backend
    from .layer import WinogradConv2d

    ext = _backend.extension("emulator", required=False)
    if ext is None:
        return []
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    rows = []
    for r in sorted({r for _, r in tiles}):
        pad = (r - 1) // 2
        x = rng.standard_normal((1, C, H, H)).astype(dtype)
        w = rng.standard_normal((K, C, r, r)).astype(dtype)
        y_ref = reference.conv2d_direct(x, w, padding=pad)
        for m, rr in tiles:
            if rr != r:
                continue
            for ps in point_sets:
                pts = point_set(ps, m, r)
                plan = WinogradConv2d(w, padding=pad, m=m, backend="emulator", points=pts)
                y = plan(x)
                y_np = reference.winograd_conv2d(x, w, m, padding=pad, points=pts)
                tol = tolerance(dtype, m, r, C * r * r, 2, pts)
                err = rel_err(y, y_ref)
                rows.append({
                    "layer": f"C{C}-K{K}-{H}x{H}", "C": C, "K": K, "H": H, "W": H, "m": m, "r": r,
                    "F": f"F({m},{r})", "points": ps, "backend": "emulator",
                    "kernels": "generic" if plan.generic else "specialised", "dtype": dtype.name,
                    "max_rel": err, "mean_rel": mean_rel_err(y, y_ref), "numpy_max_rel": rel_err(y_np, y_ref),
                    "emulator_vs_numpy": rel_err(y, y_np), "tolerance": tol, **_verdict(err, tol, dtype),
                })
    return rows


def nnpack_comparison(layers: Sequence[dict[str, Any]], m: int = 6, r: int = 3, iterations: int = 3,
                      seed: int = 2) -> list[dict[str, Any]]:
    """NNPACK-style measurement: uniform(−0.1, 1) data, element-wise relative error, median
    of ``iterations`` draws, float32, default points — next to NNPACK's limits."""
    rng = np.random.default_rng(seed)
    pad = (r - 1) // 2
    rows = []
    for lay in layers:
        errs, proj = [], []
        for _ in range(iterations):
            x = _data(rng, (1, lay["C"], lay["H"], lay["W"]), "nnpack").astype(np.float32)
            w = _data(rng, (lay["K"], lay["C"], r, r), "nnpack").astype(np.float32)
            y_ref = reference.conv2d_direct(x, w, padding=pad)
            y = reference.winograd_conv2d(x, w, m, padding=pad)
            errs.append(elementwise_rel_err(y, y_ref))
            proj.append(rel_err(y, y_ref))
        rows.append({"layer": lay["name"], "C": lay["C"], "K": lay["K"], "H": lay["H"], "W": lay["W"],
                     "F": f"F({m},{r})", "elementwise_max_rel": float(np.median(errs)),
                     "max_rel": float(np.median(proj)), "iterations": iterations})
    return rows


# --------------------------------------------------------------------------- precision modes

#: The (m, r, ndim) of the per-mode study (``magma-wino accuracy``, "Precision modes"): the tiles
#: with specialised kernels, 2D and 3D.
PRECISION_TILES: tuple[tuple[int, int, int], ...] = ((2, 3, 2), (4, 3, 2), (6, 3, 2), (2, 5, 2), (2, 3, 3), (4, 3, 3))

#: Published figures the per-mode table is read against (docs/accuracy.md).  TF32 keeps 10 of
#: float32's 23 mantissa bits (unit roundoff 2⁻¹¹ = 4.9e-4): cuDNN and cuBLAS in TF32 mode are
#: accurate to about 1e-3 relative; PyTorch's documentation measures a 10240² matmul on an A100
#: at max|error| / mean|result| = 2.2e-3 in TF32 against 3.9e-5 in float32.
REFERENCE_LINES: tuple[dict[str, Any], ...] = (
    {"what": "cuDNN / cuBLAS TF32 (10-bit mantissa, u = 2^-11)", "rel_err": 1e-3,
     "source": "NVIDIA TF32 (A100 whitepaper); PyTorch docs, CUDA semantics, 'TensorFloat-32 (TF32) on "
               "Ampere devices': 10240x10240 matmul, max|err|/mean|result| 2.2e-3 TF32 vs 3.9e-5 fp32"},
    {"what": "NNPACK F(6x6,3x3) float32, AlexNet conv3-5 (element-wise)", "rel_err": 1e-5,
     "source": NNPACK_THRESHOLDS[0]["source"]},
    {"what": "NNPACK F(6x6,3x3) float32, VGG-A conv1 (element-wise)", "rel_err": 1e-4,
     "source": NNPACK_THRESHOLDS[1]["source"]},
    {"what": "NNPACK F(6x6,3x3) float32 VGG-A output test = our usable limit", "rel_err": 1e-3,
     "source": "NNPACK test/convolution-output/vgg-a.cc (WT8x8, errorLimit(1.0e-3))"},
)


def concrete_modes() -> list[str]:
    """The concrete precision modes :mod:`magma_wino.precision` knows at run time (every entry
    of ``precision.MODES`` but ``"auto"``), in its order — modes added there join the study."""
    from . import precision

    return [p for p in precision.MODES if p != "auto"]


def _mode_dtype(mode: str) -> np.dtype:
    """The data dtype a mode is studied on: float64 for fp64, float32 for the others."""
    return np.dtype(np.float64 if mode == "fp64" else np.float32)


def _mode_tolerance(mode: str, dtype: np.dtype, m: int, r: int, n: int, ndim: int) -> float | None:
    """The a-priori bound of a mode's rel_err, or None where the project has no model for it.

    fp32, tf32x3: :func:`tolerance` of float32 (tf32x3 drops only lo·lo, 2⁻²² per product);
    fp64: :func:`tolerance` of float64; tf32: :func:`tolerance_tf32`; other modes: the
    precision module's ``tolerance(mode, …)`` when it has one, else None (not judged)."""
    from . import precision

    if mode in ("fp32", "tf32x3", "fp64"):
        return tolerance(dtype, m, r, n, ndim)
    if mode == "tf32":
        return tolerance_tf32(m, r, n, ndim)
    fn = getattr(precision, "tolerance", None)
    if fn is None:
        return None
    try:
        return float(fn(mode, m, r, n, ndim))
    except (KeyError, ValueError, TypeError):
        return None


def _mode_limit(dtype: np.dtype) -> float:
    return usable_limit(dtype)


def _resolve_mode(mode: str, dtype: np.dtype, backend: str, m: int, r: int, ndim: int) -> tuple[str, str]:
    """(status, message) of running ``mode``: ``"accepted"``; ``"refused"`` (too inaccurate:
    measured anyway with ``allow_inaccurate=True``, reported not usable); ``"not supported"``
    (``precision.resolve`` refuses it outright, e.g. "not supported yet": not measured)."""
    from . import precision

    try:
        precision.resolve(mode, dtype, backend, m, r, ndim)
        return "accepted", ""
    except ValueError as exc:
        first = str(exc)
    try:
        precision.resolve(mode, dtype, backend, m, r, ndim, allow_inaccurate=True)
    except ValueError as exc:
        return "not supported", str(exc)
    return "refused", first


def _precision_layers(layers: Sequence[dict[str, Any]], ndim: int, spatial_3d: int,
                      max_channels: int | None, max_channels_3d: int = 128) -> list[dict[str, Any]]:
    """The layers of the per-mode study: VGG-16's (C, K) (capped at ``max_channels``), 2D at
    their (capped) H×W, 3D at ``spatial_3d``³ with C, K also capped at ``max_channels_3d``
    (a 3D F(4,3) U of 512×512 channels is α³·K·C = 57 M values); identical shapes kept once."""
    out: dict[tuple[int, int, int], dict[str, Any]] = {}
    for lay in layers:
        C, K = lay["C"], lay["K"]
        cap = max_channels if ndim == 2 else min(max_channels or max_channels_3d, max_channels_3d)
        if cap is not None:
            C, K = min(C, cap), min(K, cap)
        H = lay["H"] if ndim == 2 else spatial_3d
        key = (C, K, H)
        if key in out:
            out[key]["name"] += "/" + lay["name"].replace("conv", "")
        else:
            out[key] = {"name": lay["name"], "C": C, "K": K, "H": H, "ndim": ndim}
    return list(out.values())


def precision_study(layers: Sequence[dict[str, Any]], tiles: Sequence[tuple[int, int, int]] = PRECISION_TILES,
                    modes: Sequence[str] | None = None, backend: str = "numpy", seed: int = 0,
                    spatial_3d: int = 8, max_channels: int | None = None, max_channels_3d: int = 128,
                    progress: Any = None) -> list[dict[str, Any]]:
    """Error rows per precision mode × F(m, r) × layer against the float64 direct convolution.

    ``modes``: default :func:`concrete_modes` (every mode ``precision.MODES`` has now).  fp64
    runs on float64 data, every other mode on float32 data (the same normal draw, rounded);
    each row's reference is the float64 direct convolution of its own (rounded) data, so only
    the algorithm and the mode are measured.  The numpy backend emulates the tensor-core
    operand rounding (``precision.matmul``); ``backend="emulator"`` runs the kernels.  A mode
    ``precision.resolve`` refuses as too inaccurate is measured with ``allow_inaccurate=True``
    and reported ``usable = False`` (status ``refused``); one it refuses outright (e.g. "not
    supported yet") gets one row per tile with status ``not supported`` and no numbers; one
    whose run raises gets status ``failed`` with the message (``within_bound = False``: the
    command's exit status is 1).
    """
    from .conv import conv2d, conv3d

    modes = concrete_modes() if modes is None else list(modes)
    for p in modes:
        if p not in concrete_modes():
            raise ValueError(f"modes: unknown precision mode {p!r}; choose from {concrete_modes()}")
    if backend not in ("numpy", "emulator"):
        raise ValueError(f"backend must be 'numpy' or 'emulator', got {backend!r}")
    spatial_3d = _int_arg(spatial_3d, "spatial_3d")
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for ndim in sorted({nd for _, _, nd in tiles}):
        conv = conv2d if ndim == 2 else conv3d
        direct = reference.conv2d_direct if ndim == 2 else reference.conv3d_direct
        for lay in _precision_layers(layers, ndim, spatial_3d, max_channels, max_channels_3d):
            for r in sorted({r for _, r, nd in tiles if nd == ndim}):
                pad = (r - 1) // 2
                x64 = _data(rng, (1, lay["C"]) + (lay["H"],) * ndim, "normal")
                w64 = _data(rng, (lay["K"], lay["C"]) + (r,) * ndim, "normal")
                data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
                for m, rr, nd in tiles:
                    if (rr, nd) != (r, ndim):
                        continue
                    n = lay["C"] * r**ndim
                    for mode in modes:
                        dt = _mode_dtype(mode)
                        status, why = _resolve_mode(mode, dt, backend, m, r, ndim)
                        row: dict[str, Any] = {
                            "layer": lay["name"], "C": lay["C"], "K": lay["K"], "H": lay["H"], "ndim": ndim,
                            "m": m, "r": r, "F": f"F({m},{r})" + (" 3D" if ndim == 3 else ""), "mode": mode,
                            "dtype": dt.name, "backend": backend, "status": status, "message": why,
                            "usable_limit": _mode_limit(dt)}
                        if status == "not supported":
                            row.update(max_rel=None, mean_rel=None, tolerance=None, within_bound=None,
                                       usable=False, ok=False)
                            rows.append(row)
                            if progress is not None:
                                progress()
                            continue
                        if dt.name not in data:
                            x, w = x64.astype(dt), w64.astype(dt)
                            data[dt.name] = (x, w, direct(x, w, padding=pad))
                        x, w, y_ref = data[dt.name]
                        try:
                            y = to_host(conv(x, w, padding=pad, m=m, backend=backend, precision=mode,
                                             allow_inaccurate=True))
                        except Exception as exc:  # noqa: BLE001 - reported as a failed row (exit status 1)
                            row.update(status="failed", message=f"{type(exc).__name__}: {exc}", max_rel=None,
                                       mean_rel=None, tolerance=None, within_bound=False, usable=False, ok=False)
                            rows.append(row)
                            if progress is not None:
                                progress()
                            continue
                        err = rel_err(y, y_ref)
                        tol = _mode_tolerance(mode, dt, m, r, n, ndim)
                        usable = bool(err <= row["usable_limit"]) and status == "accepted"
                        within = None if tol is None else bool(err <= tol)
                        row.update(max_rel=err, mean_rel=mean_rel_err(y, y_ref), tolerance=tol,
                                   within_bound=within, usable=usable, ok=usable and within is not False)
                        rows.append(row)
                        if progress is not None:
                            progress()
    return rows


def summarise_precision(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (F, ndim, mode): the maximum over layers of max_rel, the mean of mean_rel, the
    largest error / bound; ``usable`` / ``ok`` only when every layer's row is."""
    groups: dict[tuple[int, int, int, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["ndim"], row["r"], row["m"], row["mode"]), []).append(row)
    out = []
    for (nd, r, m, mode), rs in groups.items():
        measured = [x for x in rs if x["max_rel"] is not None]
        bounded = [x for x in measured if x["tolerance"]]
        failed = [x for x in rs if x["status"] == "failed"]
        first = failed[0] if failed else rs[0]
        out.append({
            "F": rs[0]["F"], "m": m, "r": r, "ndim": nd, "mode": mode, "dtype": rs[0]["dtype"],
            "status": first["status"], "message": first["message"], "layers": len(rs),
            "max_rel": max((x["max_rel"] for x in measured), default=None),
            "mean_rel": float(np.mean([x["mean_rel"] for x in measured])) if measured else None,
            "max_tolerance_ratio": max((x["max_rel"] / x["tolerance"] for x in bounded), default=None),
            "usable_limit": rs[0]["usable_limit"],
            "within_bound": False if failed else None if not bounded else all(x["within_bound"] for x in bounded),
            "usable": all(x["usable"] for x in rs), "ok": all(x["ok"] for x in rs)})
    return out


def precision_checks(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comparisons the per-mode table must show, per tile (max over layers):
    tf32x3 within 4× of fp32 (float32 level), and tf32 more than 10× tf32x3 (what the split buys)."""
    by = {(s["F"], s["mode"]): s for s in summary}
    out = []
    for f in dict.fromkeys(s["F"] for s in summary):
        fp32, x3, tf32 = ((by[(f, p)]["max_rel"] if (f, p) in by else None) for p in ("fp32", "tf32x3", "tf32"))
        if fp32 and x3 is not None:
            out.append({"F": f, "check": "tf32x3 <= 4 x fp32", "ratio": x3 / fp32, "passed": x3 <= 4 * fp32})
        if x3 and tf32 is not None:
            out.append({"F": f, "check": "tf32 > 10 x tf32x3", "ratio": tf32 / x3, "passed": tf32 > 10 * x3})
    return out


# --------------------------------------------------------------------------- outputs


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (F, points): the maximum over layers of max_rel and the mean of mean_rel; ``ok``
    (and ``within_bound``, ``usable``) only when every layer's row is."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["F"], row["points"]), []).append(row)
    out = []
    for (f, ps), rs in groups.items():
        out.append({"F": f, "m": rs[0]["m"], "r": rs[0]["r"], "points": ps,
                    "point_values": rs[0].get("point_values", ""),
                    "max_rel": max(r["max_rel"] for r in rs),
                    "mean_rel": float(np.mean([r["mean_rel"] for r in rs])),
                    "max_tolerance_ratio": max(r["max_rel"] / r["tolerance"] for r in rs),
                    "usable_limit": rs[0]["usable_limit"],
                    "within_bound": all(r["within_bound"] for r in rs), "usable": all(r["usable"] for r in rs),
                    "ok": all(r["ok"] for r in rs), "layers": len(rs)})
    return out


def plot(summary: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Error against tile size m, one line per (filter size r, point set); a log-scale PNG.

    Returns the path, or None (with a message on stderr) when matplotlib is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'magma-wino[bench]'): no plot", file=sys.stderr)
        return None
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"default": "-o", "sequence": "-.v", "reciprocals": "--s", "integers": ":^", "searched": "-D"}
    for r in sorted({s["r"] for s in summary}):
        for ps in sorted({s["points"] for s in summary}, key=lambda p: POINT_SETS.index(p) if p in POINT_SETS else 9):
            pts = sorted((s for s in summary if s["r"] == r and s["points"] == ps), key=lambda s: s["m"])
            if not pts:
                continue
            ax.plot([s["m"] for s in pts], [s["max_rel"] for s in pts], styles.get(ps, "-x"),
                    label=f"r={r}, {ps} points")
    ax.axhline(1e-5, color="grey", lw=0.8, ls="--")
    ax.axhline(1e-4, color="grey", lw=0.8, ls="-.")
    ax.text(ax.get_xlim()[0], 1e-5, " NNPACK AlexNet F(6,3) limit 1e-5", va="bottom", fontsize=7, color="grey")
    ax.text(ax.get_xlim()[0], 1e-4, " NNPACK VGG-A F(6,3) limit 1e-4", va="bottom", fontsize=7, color="grey")
    limit = USABLE_LIMIT[np.dtype(np.float32)]
    ax.axhline(limit, color="firebrick", lw=1.0, ls="-")
    ax.text(ax.get_xlim()[0], limit, f" usable limit {limit:.0e} (NNPACK VGG-A output test, F(6,3))", va="bottom",
            fontsize=7, color="firebrick")
    ax.set_yscale("log")
    ax.set_xlabel("output tile size m  (F(m, r), α = m + r − 1)")
    ax.set_ylabel("max|y − y_ref| / max|y_ref|  (float32, max over layers)")
    ax.set_title("Winograd float32 error vs float64 direct convolution (VGG-16 shapes)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _e(v: float) -> str:
    return f"{v:.2e}"


def _ok_str(row: dict[str, Any]) -> str:
    """``yes``, or why not: over the usable limit and/or over the a-priori bound."""
    if row["ok"]:
        return "yes"
    why = ([] if row["usable"] else ["unusable"]) + ([] if row["within_bound"] else ["exceeds bound"])
    return "NO (" + ", ".join(why) + ")"


def markdown(result: dict[str, Any]) -> str:
    """The markdown tables of a study result (what docs/results/accuracy.md holds)."""
    lines = [f"Command: `{result['meta']['command']}`", ""]
    lines += [f"### Summary: max over layers ({result['meta']['dtype']}, numpy backend)", "",
              "`ok`: within the a-priori bound (`tolerance()`: as accurate as the algorithm can be) "
              "*and* within the usable limit (`USABLE_LIMIT`: "
              + ", ".join(f"{np.dtype(k).name} {v:.0e}" for k, v in USABLE_LIMIT.items()) + ").", "",
              "| F(m,r) | points | finite points | max rel. error | mean rel. error | error / bound | "
              "usable limit | ok |",
              "|---|---|---|---|---|---|---|---|"]
    for s in sorted(result["summary"], key=lambda s: (s["r"], s["m"], POINT_SETS.index(s["points"]))):
        lines.append(f"| {s['F']} | {s['points']} | {s['point_values']} | {_e(s['max_rel'])} | "
                     f"{_e(s['mean_rel'])} | {s['max_tolerance_ratio']:.3f} | {s['usable_limit']:.0e} | "
                     f"{_ok_str(s)} |")
    lines += ["", "### Per layer, default points (max rel. error)", ""]
    fs = [f"F({m},{r})" for m, r in result["meta"]["tiles"]]
    lines += ["| layer | C | K | H×W | " + " | ".join(fs) + " |", "|---|---|---|---|" + "---|" * len(fs)]
    by = {(r["layer"], r["F"]): r for r in result["rows"] if r["points"] == "default"}
    for lay in result["meta"]["layers"]:
        cells = [_e(by[(lay['name'], f)]["max_rel"]) if (lay["name"], f) in by else "-" for f in fs]
        lines.append(f"| {lay['name']} | {lay['C']} | {lay['K']} | {lay['H']}×{lay['W']} | " + " | ".join(cells) + " |")
    if result.get("emulator"):
        lines += ["", "### Emulator backend (the CUDA kernel source on the CPU) vs numpy", "",
                  "| layer | F(m,r) | points | kernels | emulator max rel. | numpy max rel. | emulator vs numpy | ok |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in result["emulator"]:
            lines.append(f"| {r['layer']} | {r['F']} | {r['points']} | {r['kernels']} | {_e(r['max_rel'])} | "
                         f"{_e(r['numpy_max_rel'])} | {_e(r['emulator_vs_numpy'])} | {_ok_str(r)} |")
    if result.get("nnpack"):
        lines += ["", "### Next to NNPACK's published limits for F(6×6, 3×3) float32", "",
                  "NNPACK accepts " + "; ".join(f"{t['limit']:.0e} on {t['network']} ({t['source']})"
                                                for t in NNPACK_THRESHOLDS)
                  + ". Its error is element-wise (|ref − y| / |ref|, max over outputs, median over "
                    "iterations) on uniform(−0.1, 1) data; ours measured the same way:", "",
                  "| layer | C | K | H×W | F | element-wise max rel. (NNPACK measure) | max abs. err. / max abs. ref. | "
                  "NNPACK VGG-A limit | NNPACK AlexNet limit |", "|---|---|---|---|---|---|---|---|---|"]
        for r in result["nnpack"]:
            lines.append(f"| {r['layer']} | {r['C']} | {r['K']} | {r['H']}×{r['W']} | {r['F']} | "
                         f"{_e(r['elementwise_max_rel'])} | {_e(r['max_rel'])} | 1e-04 | 1e-05 |")
    if (result.get("precision") or {}).get("summary"):
        lines += ["", precision_markdown(result["precision"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- a study of parsed options
# (the options themselves: magma_wino.cli.accuracy, ``magma-wino accuracy``)


def _parse_precision_tiles(items: Sequence[str]) -> list[tuple[int, int, int]]:
    out = []
    for it in items:
        try:
            vals = [int(v) for v in it.replace("x", ",").split(",")]
        except ValueError as exc:
            raise SystemExit(f"--precision-tiles: expected m,r or m,r,3, got {it!r}") from exc
        if len(vals) == 2:
            vals.append(2)
        if len(vals) != 3 or vals[2] not in (2, 3):
            raise SystemExit(f"--precision-tiles: expected m,r (2D) or m,r,3 (3D), got {it!r}")
        try:
            _check_mr(vals[0], vals[1])
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"--precision-tiles: {exc}") from None
        out.append((vals[0], vals[1], vals[2]))
    return out


def _parse_tiles(items: Sequence[str]) -> list[tuple[int, int]]:
    out = []
    for it in items:
        try:
            m, r = (int(v) for v in it.replace("x", ",").split(","))
        except ValueError as exc:
            raise SystemExit(f"--tiles: expected m,r (e.g. 4,3), got {it!r}") from exc
        out.append((m, r))
    return out


def collect(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run the study described by ``args``; the result dict (meta, rows, summary, …)."""
    tiles = _parse_tiles(args.tiles)
    spatial, names = args.spatial, args.layers
    if args.quick:
        tiles = [(2, 3), (4, 3), (6, 3), (2, 5)]
        spatial, names = 14, names or ["conv1_2", "conv3_1", "conv5_1"]
    try:
        layers = vgg16_layers(spatial, names)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"--layers / --spatial: {exc}") from None
    if not layers:
        raise SystemExit(f"--layers: no VGG-16 layer named {names}")
    # the precision-study options are checked before anything runs
    ptiles = _parse_precision_tiles(args.precision_tiles)
    modes = args.modes or concrete_modes()
    unknown = [p for p in modes if p not in concrete_modes()]
    if unknown:
        raise SystemExit(f"--modes: unknown precision mode(s) {unknown}; choose from {concrete_modes()}")
    for opt, v in (("--max-channels", args.max_channels), ("--max-channels-3d", args.max_channels_3d),
                   ("--spatial-3d", args.spatial_3d)):
        if v is not None and v < 1:
            raise SystemExit(f"{opt} must be >= 1, got {v}")
    s3 = min(args.spatial_3d, 4) if args.quick else args.spatial_3d
    t0 = time.perf_counter()
    rows = _with_progress(lambda tick: study(layers, tiles, args.points, args.dtype, args.seed, tick),
                          len(layers) * len(tiles) * len(args.points))
    emu = [] if args.no_emulator else emulator_check(tiles=tiles, dtype=args.dtype)
    r3 = [lay for lay in layers if lay["name"].split("/")[0] in ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")]
    nn = [] if args.no_nnpack or args.dtype != "float32" else nnpack_comparison(r3 or layers[:1])
    prec: dict[str, Any] = {}
    if not args.no_precision:
        n_layers = sum(len(_precision_layers(layers, nd, s3, args.max_channels, args.max_channels_3d))
                       * sum(1 for t in ptiles if t[2] == nd) for nd in {t[2] for t in ptiles})
        prows = _with_progress(lambda tick: precision_study(layers, ptiles, modes, args.backend, args.seed, s3,
                                                            args.max_channels, args.max_channels_3d, tick),
                               n_layers * len(modes))
        psum = summarise_precision(prows)
        prec = {"backend": args.backend, "modes": list(modes), "tiles": ptiles, "spatial_3d": s3,
                "max_channels": args.max_channels, "max_channels_3d": args.max_channels_3d, "rows": prows, "summary": psum,
                "checks": precision_checks(psum), "reference_lines": list(REFERENCE_LINES)}
    return {
        "schema": "magma_wino.accuracy/1",
        "meta": {"command": command, "version": __version__, "numpy": np.__version__,
                 "python": platform.python_version(), "machine": platform.machine(),
                 "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "dtype": args.dtype, "tiles": tiles, "points": list(args.points),
                 "point_values": {f"F({m},{r})": {ps: _points_str(ps, m, r) for ps in args.points} for m, r in tiles},
                 "layers": layers, "spatial_cap": spatial, "batch": 1, "data": "standard normal x and w",
                 "measure": "max_rel = max|y-y_ref|/max|y_ref|, mean_rel = mean|y-y_ref|/mean|y_ref|, "
                            "y_ref = float64 direct convolution of the same (rounded) data",
                 "seconds": time.perf_counter() - t0},
        "rows": rows,
        "summary": summarise(rows),
        "emulator": emu,
        "nnpack": nn,
        "nnpack_thresholds": list(NNPACK_THRESHOLDS),
        "precision": prec,
    }


def _with_progress(fn, total: int):
    try:
        from rich.progress import Progress
    except ImportError:  # pragma: no cover - rich is a dependency
        return fn(None)
    with Progress(transient=True) as prog:
        task = prog.add_task("accuracy", total=total)
        return fn(lambda: prog.advance(task))


def _sorted_precision(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {p: i for i, p in enumerate(concrete_modes())}
    return sorted(summary, key=lambda s: (s["ndim"], s["r"], s["m"], order.get(s["mode"], 99)))


def _e_or(v: float | None) -> str:
    return "-" if v is None else _e(v)


def _precision_ok_str(row: dict[str, Any]) -> str:
    """``yes``, or why not: not supported (not measured), refused by precision.resolve as too
    inaccurate (measured with allow_inaccurate=True), over the usable limit, over the bound."""
    if row["status"] == "not supported":
        return "not supported" + (" yet" if "not supported yet" in row["message"] else "")
    if row["status"] == "failed":
        return "FAILED: " + row["message"][:80]
    if row["ok"]:
        return "yes"
    why = (["refused: too inaccurate"] if row["status"] == "refused" else []) + \
          (["unusable"] if row["status"] != "refused" and not row["usable"] else []) + \
          (["exceeds bound"] if row["within_bound"] is False else [])
    return "NO (" + ", ".join(why) + ")"


def precision_markdown(prec: dict[str, Any]) -> str:
    """The markdown of the precision-mode study (part of :func:`markdown`)."""
    modes = [p for p in concrete_modes() if p in prec["modes"]]
    lines = [f"### Precision modes ({prec['backend']} backend): max rel. error over layers", "",
             "Rows: F(m,r) (3D at " + f"{prec['spatial_3d']}³); columns: the modes of `magma_wino.precision` "
             "(fp64 on float64 data, the others on float32 data). `refused`: `precision.resolve` refuses the "
             "mode for that tile as too inaccurate (measured with `allow_inaccurate=True`, not usable); "
             "`n/s`: not supported (not measured).", "",
             "| F(m,r) | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    by = {(s["F"], s["mode"]): s for s in prec["summary"]}
    for f in dict.fromkeys(s["F"] for s in _sorted_precision(prec["summary"])):
        cells = []
        for p in modes:
            s = by.get((f, p))
            if s is None:
                cells.append("-")
            elif s["status"] == "not supported":
                cells.append("n/s")
            elif s["status"] == "failed":
                cells.append("FAILED")
            else:
                cells.append(_e(s["max_rel"]) + (" refused" if s["status"] == "refused" else "")
                             + ("" if s["usable"] or s["status"] == "refused" else " unusable"))
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    lines += ["", "| F(m,r) | mode | data | max rel. error | mean rel. error | error / bound | usable limit | ok |",
              "|---|---|---|---|---|---|---|---|"]
    for s in _sorted_precision(prec["summary"]):
        ratio = "-" if s["max_tolerance_ratio"] is None else f"{s['max_tolerance_ratio']:.3f}"
        lines.append(f"| {s['F']} | {s['mode']} | {s['dtype']} | {_e_or(s['max_rel'])} | {_e_or(s['mean_rel'])} | "
                     f"{ratio} | {s['usable_limit']:.0e} | {_precision_ok_str(s)} |")
    if prec["checks"]:
        lines += ["", "| F(m,r) | check | ratio | holds |", "|---|---|---|---|"]
        lines += [f"| {c['F']} | {c['check']} | {c['ratio']:.2f} | {'yes' if c['passed'] else 'NO'} |"
                  for c in prec["checks"]]
    lines += ["", "Reference lines: " + "; ".join(f"{x['what']}: {x['rel_err']:.0e}" for x in prec["reference_lines"])
              + "."]
    return "\n".join(lines) + "\n"
