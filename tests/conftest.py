"""Shared test helpers: error measure, Winograd tolerances, a fixed-seed RNG.

Use the fixtures (``rng``, ``winograd_tol``, ``wino_error_bound``, ``rel_error``,
``record_error``) rather than importing this module, so the tests do not depend on
``sys.path`` details.

Error measure everywhere: ``rel_err(y, y_ref) = max|y − y_ref| / max|y_ref|`` with
``y_ref`` the float64 direct convolution.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from magma_wino.transforms import winograd

#: (label, F(m,r), reduction length n, measured error, tolerance) rows recorded by
#: tests via the ``record_error`` fixture; printed at the end of the session.
MEASURED: list[tuple[str, str, int, float, float]] = []


def rel_err(y: np.ndarray, y_ref: np.ndarray) -> float:
    """``max|y − y_ref| / max|y_ref|`` computed in float64 (inf if y_ref is all zero)."""
    y = np.asarray(y, dtype=np.float64)
    y_ref = np.asarray(y_ref, dtype=np.float64)
    assert y.shape == y_ref.shape, (y.shape, y_ref.shape)
    scale = np.abs(y_ref).max()
    diff = np.abs(y - y_ref).max()  # NaN propagates: unwritten outputs fail
    return float(diff / scale) if scale > 0 else (0.0 if diff == 0 else math.inf)


def growth_factor(m: int, r: int, ndim: int = 2, points=None) -> float:
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
    random data (it is used for the worst-case :func:`winograd_error_bound`).
    """
    at, g, bt = winograd(m, r, points).matrices(np.float64)
    beta2 = float(np.sqrt(((at**2) @ ((g**2).sum(1) * (bt**2).sum(1))).max()))
    return beta2**ndim


def rounding_depth(m: int, r: int, ndim: int = 2) -> int:
    """L = ndim·(r + 2α) + 1: roundings along one path through the transforms.

    Filter transform: ndim passes of length-r dot products; input and output
    transforms: ndim passes of length α each; plus the product U·V.
    """
    alpha = m + r - 1
    return ndim * (r + 2 * alpha) + 1


def winograd_tolerance(dtype, m: int, r: int, reduction_len: int, ndim: int = 2,
                       points=None) -> float:
    """Tolerance for ``rel_err(winograd(x, w), direct(x, w))`` on random (non-cancelling) data.

    ``tol = u · β₂^ndim · √(n + L)`` with ``u`` the unit roundoff of ``dtype``
    (2⁻²⁴ float32, 2⁻⁵³ float64), ``β₂^ndim`` from :func:`growth_factor`,
    ``n = reduction_len = C·r^ndim`` and ``L`` from :func:`rounding_depth`.

    Derivation (first order in u; rounding errors modelled as independent,
    zero-mean, of size ≤ u times the value rounded — Higham & Mary, SISC 2019).
    Output ``y = Σ_c Aᵀ[(G g_c Gᵀ) ⊙ (Bᵀ d_c B)]A`` with entries of g, d of
    variance σ_g², σ_d²:

    * transforms and product: ≤ L roundings per channel, each of a quantity whose
      β-weighted variance is ≤ β₂^(2·ndim) σ_g²σ_d², so variance
      ≤ u² · L · β₂^(2·ndim) σ_g²σ_d² per channel, × C channels;
    * channel sum (sequential, the worst order — GPU threads accumulate so): the
      c-th partial sum has variance c·(…), total ≈ u² · (C²/2) · β₂^(2·ndim) σ_g²σ_d².

    So ``std(δy) ≲ u β₂^ndim σ_gσ_d √(C(L + C/2))`` while ``y`` is a sum of
    ``n = C r^ndim`` random products, ``std(y) = √n σ_gσ_d``.  The maxima over all
    outputs of δy and of y carry about the same extreme-value factor, so

        rel_err ≈ u β₂^ndim √((L + C/2) / r^ndim)  ≤  u β₂^ndim √(L + n) = tol.

    The slack, ``√((L + n)·r^ndim / (L + C/2)) ≥ r^(ndim/2)`` (3 for 3×3 in 2D, 5.2
    in 3D; only 1…√2 for the degenerate r = 1), absorbs non-Gaussian data, the
    fluctuation of the maxima, and FMA / reordered sums.  Measured with NumPy
    (BLAS and sequential channel sums, normal / uniform / ReLU / sparse / offset
    data, m ≤ 8, r ≤ 7, C = 1…1024): error/tol ≤ 0.11 for r = 3 (≈ 0.03–0.05 on
    VGG layers), ≤ 0.21 for r = 2 and ≤ 0.35 for r = 1.  Rounding U and V to TF32 (u = 2⁻¹¹) exceeds it
    (``test_reference.py::test_float32_tolerance_rejects_tf32_precision``).
    Data whose output cancels (max|y| ≪ √n σ_gσ_d) is outside its scope.
    """
    u = float(np.finfo(np.dtype(dtype)).eps) / 2.0
    n_total = reduction_len + rounding_depth(m, r, ndim)
    return u * growth_factor(m, r, ndim, points) * math.sqrt(n_total)


def winograd_error_bound(dtype, m: int, r: int, x: np.ndarray, w: np.ndarray) -> float:
    """Worst-case (first-order) bound on ``max|y_wino − y_exact|``, valid for any data.

    ``(L + 3·ndim + C) · u · β₁^ndim · Σ_c max|x[:,c]| · max|w[:,c]|`` with
    ``β₁ = max_i Σ_b |Aᵀ[i,b]|·‖G_b‖₁·‖Bᵀ_b‖₁`` (the magnitude of everything a tile
    computes, per unit max|g|·max|d|), ``L`` from :func:`rounding_depth` (roundings
    in the transforms and the product), ``3·ndim`` for the coefficients of Aᵀ, G, Bᵀ
    rounded to ``dtype``, and ``C`` for the channel sum in any order.  Unlike
    :func:`winograd_tolerance` it does not rely on the data being random, so it
    cannot flake, but it is loose (use it for small random shapes).  When the
    result is float64, add the float64 reference's own error, ``≤ n·u·max conv(|x|, |w|)``.
    """
    ndim = np.ndim(w) - 2
    at, g, bt = winograd(m, r).matrices(np.float64)
    beta1 = float((np.abs(at) @ (np.abs(g).sum(1) * np.abs(bt).sum(1))).max())
    c = np.shape(w)[1]
    axes_x = tuple(i for i in range(np.ndim(x)) if i != 1)
    axes_w = tuple(i for i in range(np.ndim(w)) if i != 1)
    scale = float(np.sum(np.abs(x).max(axis=axes_x) * np.abs(w).max(axis=axes_w)))
    u = float(np.finfo(np.dtype(dtype)).eps) / 2.0
    return (rounding_depth(m, r, ndim) + 3 * ndim + c) * u * beta1**ndim * scale


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator (each test gets a fresh one: results are reproducible)."""
    return np.random.default_rng(20240611)


@pytest.fixture
def winograd_tol():
    """The :func:`winograd_tolerance` function."""
    return winograd_tolerance


@pytest.fixture
def wino_error_bound():
    """The :func:`winograd_error_bound` function."""
    return winograd_error_bound


@pytest.fixture
def rel_error():
    """The :func:`rel_err` function."""
    return rel_err


@pytest.fixture
def record_error():
    """``record(label, m, r, n, err, tol)``: keep a measured error for the session summary."""

    def record(label: str, m: int, r: int, n: int, err: float, tol: float) -> None:
        MEASURED.append((label, f"F({m},{r})", n, err, tol))

    return record


def pytest_terminal_summary(terminalreporter):
    if not MEASURED:
        return
    tr = terminalreporter
    tr.section("measured Winograd errors (max|y - y_direct| / max|y_direct|)")
    tr.write_line(f"{'case':38s} {'F':8s} {'n=C*r^d':>8s} {'error':>10s} {'tolerance':>10s} {'tol/err':>8s}")
    for label, f, n, err, tol in MEASURED:
        ratio = tol / err if err > 0 else math.inf
        tr.write_line(f"{label:38s} {f:8s} {n:8d} {err:10.2e} {tol:10.2e} {ratio:8.0f}")


# --------------------------------------------------------------------------- backends (API tests)

#: The host backends every API test runs on (the emulator is always built).
HOST_BACKENDS = ("numpy", "emulator")


@pytest.fixture
def emu_defaults():
    """Restore the emulator's worker count and fiber order after the test."""
    emu = pytest.importorskip("magma_wino._emu", reason="the emulator extension is not built")
    saved_workers, saved_order = emu.get_workers(), emu.get_order()
    yield emu
    emu.set_workers(saved_workers)
    emu.set_order(saved_order)


def check_against_direct(y, y_ref, dtype, m, r, C, ndim=2, points=None, label="", record=False,
                         factor=1.0):
    """Assert ``rel_err(y, y_ref) <= factor · winograd_tolerance(...)`` with a message that
    names the case (shapes included in ``label``); NaN (unwritten output) fails."""
    y = np.asarray(y)
    assert y.dtype == np.dtype(dtype), f"{label}: result dtype {y.dtype}, expected {np.dtype(dtype)}"
    assert y.shape == y_ref.shape, f"{label}: shape {y.shape}, expected {y_ref.shape}"
    assert not np.isnan(y).any(), f"{label}: {int(np.isnan(y).sum())} NaN (unwritten) outputs"
    n = C * r**ndim
    tol = factor * winograd_tolerance(dtype, m, r, n, ndim, points)
    err = rel_err(y, y_ref)
    if record:  # shown in the session summary
        MEASURED.append((label[:38], f"F({m},{r})", n, err, tol))
    assert err <= tol, f"{label}: rel err {err:.3g} > tol {tol:.3g} (F({m},{r}), n = {n})"
    return err


@pytest.fixture
def check_direct():
    """The :func:`check_against_direct` function."""
    return check_against_direct


def winograd_from_U_error_bound(dtype, x, U, m, r, padding=0, relu=None, points=None) -> float:
    """First-order bound on ``max|y − y_exact|`` for ``y = Aᵀ[U ⊙ V]A`` computed in ``dtype``
    from given Winograd-domain weights ``U`` (α^nd×K×C) — the layers built with
    ``from_winograd``, whose U comes from no spatial filter, so :func:`winograd_tolerance`
    (which assumes U = G g Gᵀ) does not apply.

    Every output is a signed sum of products ``Aᵀ[i,b] · U[b,k,c] · Bᵀ-rows · x``; along
    one path the value is rounded at most ``L = 2·ndim·α`` times in the transforms, ``C``
    times in the channel sum and ``2·ndim`` times more through the rounded coefficients, so
    ``|δy| ≤ (L + C + 2·ndim + 1) · u · y_abs`` with ``y_abs`` the same computation on
    ``|Aᵀ|, |U|, |Bᵀ|, |x|`` (ReLU in either place only shrinks magnitudes and is
    1-Lipschitz).  The max over all outputs of ``y_abs`` is used; ×2 covers the float64
    reference's own rounding.  It cannot flake, and an O(1) error on any tile exceeds it
    by orders of magnitude for the shapes used here.
    """
    from numpy.lib.stride_tricks import sliding_window_view  # noqa: PLC0415

    t = winograd(m, r, points)
    at, _, bt = (np.abs(a) for a in t.matrices(np.float64))
    x = np.abs(np.asarray(x, dtype=np.float64))
    U = np.abs(np.asarray(U, dtype=np.float64))
    ndim = x.ndim - 2
    alpha = t.alpha
    pads = (padding,) * ndim if np.isscalar(padding) else tuple(padding)
    out = [s + 2 * p - r + 1 for s, p in zip(x.shape[2:], pads)]
    tiles = [-(-o // m) for o in out]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p + tl * m - o) for p, tl, o in zip(pads, tiles, out)])
    spatial = tuple(range(2, 2 + ndim))
    win = sliding_window_view(xp, (alpha,) * ndim, axis=spatial)
    win = win[(slice(None), slice(None)) + (slice(None, None, m),) * ndim]  # N, C, tiles..., α...
    for ax in range(2 + ndim, 2 + 2 * ndim):
        win = np.moveaxis(np.tensordot(win, bt, axes=([ax], [1])), -1, ax)
    n, c = x.shape[:2]
    # -> α..., C, N, tiles...  -> (α^nd, C, P) with P ordered (n, tiles...) as the kernels
    order = tuple(range(2 + ndim, 2 + 2 * ndim)) + (1, 0) + spatial
    V = np.ascontiguousarray(win.transpose(order)).reshape(alpha**ndim, c, -1)
    M = np.matmul(U, V)  # α^nd, K, P
    a_nd = at
    for _ in range(ndim - 1):
        a_nd = np.kron(a_nd, at)  # m^nd × α^nd, positions row-major as the kernels
    y_abs = np.tensordot(a_nd, M, axes=([1], [0]))  # m^nd, K, P
    u = float(np.finfo(np.dtype(dtype)).eps) / 2
    depth = 2 * ndim * alpha + c + 2 * ndim + 1
    return 2.0 * depth * u * float(y_abs.max())


@pytest.fixture
def from_U_bound():
    """The :func:`winograd_from_U_error_bound` function."""
    return winograd_from_U_error_bound
