"""Shared test helpers: error measure, Winograd tolerances, a fixed-seed RNG.

Use the fixtures (``rng``, ``fresh_rng``, ``winograd_tol``, ``wino_error_bound``,
``from_U_bound``, ``check_direct``, ``rel_error``, ``record_error``) rather than importing
this module, so the tests do not depend on ``sys.path`` details.

Error measure everywhere: ``rel_err(y, y_ref) = max|y − y_ref| / max|y_ref|`` with
``y_ref`` the float64 direct convolution.  It and the tolerances (``tolerance`` for layers
with spatial weights, ``tolerance_from_U`` for Winograd-domain weights, with their
derivations) live in :mod:`magma_wino.accuracy`, shared with ``magma-wino validate`` and
``bench``.  On the tests' VGG-style layers they are 3.4–9× (``tolerance``) and 5–7×
(``tolerance_from_U``) the measured error, so a 10× larger error fails
(``tests/test_accuracy.py::test_tolerance_is_tight_on_the_tests_vgg_layers``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from magma_wino.accuracy import growth_factor, rel_err, rounding_depth, tolerance_from_U  # noqa: F401
from magma_wino.accuracy import tolerance as winograd_tolerance
from magma_wino.transforms import winograd

#: (label, F(m,r), reduction length n, measured error, tolerance) rows recorded by
#: tests via the ``record_error`` fixture; printed at the end of the session.
MEASURED: list[tuple[str, str, int, float, float]] = []


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


#: The seed of the ``rng`` fixture.
RNG_SEED = 20240611


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator (each test gets a fresh one: results are reproducible)."""
    return np.random.default_rng(RNG_SEED)


@pytest.fixture
def fresh_rng():
    """``fresh_rng()``: a new generator seeded as the ``rng`` fixture, i.e. the data another
    test draws from its own ``rng`` (for tests that re-create other tests' data)."""
    return lambda: np.random.default_rng(RNG_SEED)


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
    """Worst-case first-order bound on ``max|y − y_exact|`` for ``y = Aᵀ[U ⊙ V]A`` computed
    in ``dtype`` from given Winograd-domain weights ``U`` (α^nd×K×C), valid for any data.

    Every output is a signed sum of products ``Aᵀ[i,b] · U[b,k,c] · Bᵀ-rows · x``; along
    one path the value is rounded at most ``L = 2·ndim·α`` times in the transforms, ``C``
    times in the channel sum and ``2·ndim`` times more through the rounded coefficients, so
    ``|δy| ≤ (L + C + 2·ndim + 1) · u · y_abs`` with ``y_abs`` the same computation on
    ``|Aᵀ|, |U|, |Bᵀ|, |x|`` (ReLU in either place only shrinks magnitudes and is
    1-Lipschitz).  The max over all outputs of ``y_abs`` is used; ×2 covers the float64
    reference's own rounding.  It cannot flake, but it is 100–1000× the error of random
    data: the ``from_U_bound`` fixture is :func:`magma_wino.accuracy.tolerance_from_U`.
    """
    from magma_wino.accuracy import _output_matrix, _tile_transform  # noqa: PLC0415

    t = winograd(m, r, points)
    at, _, bt = (np.abs(a) for a in t.matrices(np.float64))
    x = np.abs(np.asarray(x, dtype=np.float64))
    ndim = x.ndim - 2
    V = _tile_transform(x, bt, m, t.alpha, padding)
    M = np.matmul(np.abs(np.asarray(U, dtype=np.float64)), V)  # α^nd, K, P
    y_abs = np.tensordot(_output_matrix(at, ndim), M, axes=([1], [0]))  # m^nd, K, P
    u = float(np.finfo(np.dtype(dtype)).eps) / 2
    depth = 2 * ndim * t.alpha + x.shape[1] + 2 * ndim + 1
    return 2.0 * depth * u * float(y_abs.max())


@pytest.fixture
def from_U_bound():
    """:func:`magma_wino.accuracy.tolerance_from_U` (tolerance on max|y − y_ref| of the
    ``from_winograd`` layers; the fixture's name is historical)."""
    return tolerance_from_U
