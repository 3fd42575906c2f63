"""The adjoint tile-transform kernels (kernels/transform_adjoint.cuh), run by the CPU emulator.

* each adjoint kernel (output: dy -> dM, input: dV -> dx, filter: dU -> dw) against the float64
  NumPy adjoints of :mod:`magma_wino.reference`, float32 and float64, sizes off the tile
  multiples, every padding 0..r-1, outputs pre-filled with NaN so unwritten elements fail;
  tolerances derived from the dtype's unit roundoff, the transform's norm and the sum length;
* the dot-product identity ``<forward(a), b> == <a, adjoint(b)>`` against the FORWARD generic
  kernels in float64: it holds whatever the reference says, so a transposed index fails it;
* the C layer's refusals: NULL matrices (no specialised adjoints), 16-bit dtype, NULL arrays.

The raw API takes pointers (``arr.ctypes.data``); every array handed to it is created here
C-contiguous and kept alive for the call.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from magma_wino import _backend, reference
from magma_wino.errors import InvalidArgumentError
from magma_wino.transforms import winograd

emu = _backend.extension("emulator")

DTYPES = [np.float32, np.float64]
DT_CODE = {np.dtype(np.float32): emu.FLOAT32, np.dtype(np.float64): emu.FLOAT64}

# (ndim, m, r): the F(m, r) of the brief; 3D F(2, 3) along all three axes; and the extremes of
# the window overlap: F(1, 3) (each element in up to 3 windows per axis), F(6, 3) (alpha = 8) and
# F(4, 1) (no overlap).
TILES = [(2, 2, 3), (2, 4, 3), (2, 2, 5), (2, 3, 2), (3, 2, 3), (2, 1, 3), (2, 6, 3), (2, 4, 1)]
# Every padding 0..r-1 of every tile; the second (and third) axis get other paddings so that
# the axes are not symmetric (a swapped axis index then fails).
CASES = [(ndim, m, r, p) for ndim, m, r in TILES for p in range(r)]
N, C, K = 2, 3, 4


def _case_id(case) -> str:
    ndim, m, r, p = case
    return f"{ndim}D-F({m},{r})-pad{p}"


def ptr(a: np.ndarray | None) -> int:
    """The address of ``a``; ``a`` must be bound to a name for the call (``ptr(f())`` of a
    temporary points at memory freed before the kernel runs)."""
    if a is None:
        return 0
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def mats_for(m: int, r: int, dtype, absolute: bool = False) -> np.ndarray:
    """Aᵀ, G, Bᵀ back to back (the C ABI's ``matrices``); ``absolute``: their |entries|."""
    at, g, bt = winograd(m, r).matrices(np.float64)
    flat = np.concatenate([at.ravel(), g.ravel(), bt.ravel()])
    return np.ascontiguousarray((np.abs(flat) if absolute else flat).astype(dtype))


def pads_of(case) -> tuple[int, ...]:
    ndim, _, r, p = case
    return tuple((p + a) % r for a in range(ndim))


def in_sizes(case) -> tuple[int, ...]:
    """Inputs whose outputs are off the multiples of m (last tile clipped): 2m+1, m+2, m+1."""
    ndim, m, r, _ = case
    outs = [2 * m + 1, m + 2, m + 1][:ndim]
    sizes = []
    for o, p in zip(outs, pads_of(case)):
        size = o + r - 1 - 2 * p
        while size < 1:  # large padding: m more outputs keep the remainder
            size += m
        sizes.append(size)
    return tuple(sizes)


def layer(case):
    ndim, m, r, _ = case
    desc = emu.ConvDesc(ndim, m, r, N, C, K, in_sizes(case), pads_of(case))
    return desc, desc.geometry(emu.FLOAT64)


def col_norm(mat: np.ndarray) -> float:
    """‖matᵀ‖∞: the largest column sum of |mat| -- what the transposed matrix multiplies by."""
    return float(np.abs(mat).sum(axis=0).max())


def adjoint_tol(dtype, mat: np.ndarray, ndim: int, max_in: float, cover: int = 1) -> float:
    """Max-norm bound on the error of an adjoint element ``Σ_tiles (Tᵀ ⊗ … ⊗ Tᵀ) a``.

    First order in the unit roundoff u: per axis a dot product of length ``n = T.shape[0]``
    (the sum over T's rows), ``ndim`` nested passes, then ``cover^ndim`` partial results (the
    overlapping windows of the input adjoint) added up, and ``ndim · u`` relative for T's
    coefficients rounded to ``dtype``: at most ``(ndim·(n + 2) + cover^ndim) · u`` times
    ``Σ|coefficient products|·|a| <= (cover · ‖Tᵀ‖∞)^ndim · max|a|``.  The factor 2 covers the
    float64 reference's own rounding.  A wrong or transposed coefficient, a missed window or an
    unwritten (NaN) element is an O(1) relative error and cannot pass.
    """
    u = float(np.finfo(np.dtype(dtype)).eps) / 2
    depth = ndim * (mat.shape[0] + 2) + cover**ndim
    return 2 * depth * u * (cover * col_norm(mat)) ** ndim * max_in


def check(name: str, case, dtype, got: np.ndarray, ref: np.ndarray, tol: float) -> None:
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    err = float(np.abs(got - ref).max())  # NaN (unwritten) fails the comparison
    assert err <= tol, (
        f"{name} {_case_id(case)} {np.dtype(dtype).name} in_size {in_sizes(case)} pad "
        f"{pads_of(case)}: max|got - ref| = {err:.3g} > tol {tol:.3g}"
    )


# --------------------------------------------------------------------------- against the reference


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_output_transform_adjoint_matches_reference(case, dtype, rng):
    ndim, m, r, _ = case
    desc, geo = layer(case)
    dy = rng.standard_normal((N, K) + geo["out_size"]).astype(dtype)
    dM = np.full((geo["positions"], K, geo["num_tiles"]), np.nan, dtype)
    mats = mats_for(m, r, dtype)  # bound: a temporary would be freed before the call
    emu.output_transform_adjoint(desc, DT_CODE[np.dtype(dtype)], ptr(dy), ptr(dM),
                                 ptr(mats), 0)
    ref = reference.output_transform_adjoint(dy.astype(np.float64), m, r)
    at, _, _ = winograd(m, r).matrices(np.float64)
    check("output adjoint", case, dtype, dM, ref, adjoint_tol(dtype, at, ndim, float(np.abs(dy).max())))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_input_transform_adjoint_matches_reference(case, dtype, rng):
    ndim, m, r, _ = case
    desc, geo = layer(case)
    x_shape = (N, C) + in_sizes(case)
    dV = rng.standard_normal((geo["positions"], C, geo["num_tiles"])).astype(dtype)
    dx = np.full(x_shape, np.nan, dtype)
    mats = mats_for(m, r, dtype)  # bound: a temporary would be freed before the call
    emu.input_transform_adjoint(desc, DT_CODE[np.dtype(dtype)], ptr(dV), ptr(dx),
                                ptr(mats), 0)
    ref = reference.input_transform_adjoint(dV.astype(np.float64), m, r, x_shape, pads_of(case))
    _, _, bt = winograd(m, r).matrices(np.float64)
    cover = math.ceil((m + r - 1) / m)  # windows covering one element, per axis
    check("input adjoint", case, dtype, dx, ref,
          adjoint_tol(dtype, bt, ndim, float(np.abs(dV).max()), cover))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("ndim,m,r", TILES, ids=lambda v: str(v))
def test_filter_transform_adjoint_matches_reference(ndim, m, r, dtype, rng):
    case = (ndim, m, r, 0)
    desc, geo = layer(case)
    dU = rng.standard_normal((geo["positions"], K, C)).astype(dtype)
    dw = np.full((K, C) + (r,) * ndim, np.nan, dtype)
    mats = mats_for(m, r, dtype)  # bound: a temporary would be freed before the call
    emu.filter_transform_adjoint(desc, DT_CODE[np.dtype(dtype)], ptr(dU), ptr(dw),
                                 ptr(mats), 0)
    ref = reference.filter_transform_adjoint(dU.astype(np.float64), m, r, ndim)
    _, g, _ = winograd(m, r).matrices(np.float64)
    check("filter adjoint", case, dtype, dw, ref, adjoint_tol(dtype, g, ndim, float(np.abs(dU).max())))


# --------------------------------------------------------------------------- dot-product identity


def _identity_tol(a_abs_fwd: np.ndarray, b: np.ndarray, depth: int) -> float:
    """Bound on |<F a, b> − <a, F* b>| in float64.

    Each computed element of ``F a`` (and of ``F* b``) is off by at most ``depth · u`` times
    the same sum of |terms|, and each inner product of length n adds ``n · u`` relative to the
    sum of |products|: both sides lie within ``(depth + n) · u · S`` of the exact value, with
    ``S = <|F| |a|, |b|> = <|a|, |F|* |b|>`` (``a_abs_fwd`` = |F| |a|, computed by the forward
    kernel with |matrices|).  That is ~1e-13 of S on these sizes; a transposed index is O(1).
    """
    u = float(np.finfo(np.float64).eps) / 2
    S = float(np.sum(a_abs_fwd * np.abs(b)))
    return 2 * (depth + b.size) * u * S


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_output_adjoint_is_the_transpose_of_the_forward_kernel(case, rng):
    ndim, m, r, _ = case
    desc, geo = layer(case)
    mats, amats = mats_for(m, r, np.float64), mats_for(m, r, np.float64, absolute=True)
    Mw = rng.standard_normal((geo["positions"], K, geo["num_tiles"]))
    dy = rng.standard_normal((N, K) + geo["out_size"])
    y, y_abs = np.full(dy.shape, np.nan), np.full(dy.shape, np.nan)
    emu.output_transform(desc, emu.FLOAT64, ptr(Mw), 0, ptr(y), ptr(mats), 0)
    Mw_abs = np.abs(Mw)  # bound: ptr() of a temporary would point at freed memory
    emu.output_transform(desc, emu.FLOAT64, ptr(Mw_abs), 0, ptr(y_abs), ptr(amats), 0)
    dM = np.full(Mw.shape, np.nan)
    emu.output_transform_adjoint(desc, emu.FLOAT64, ptr(dy), ptr(dM), ptr(mats), 0)
    lhs, rhs = float(np.sum(y * dy)), float(np.sum(Mw * dM))
    tol = _identity_tol(y_abs, dy, ndim * (m + r + 1))
    assert abs(lhs - rhs) <= tol, f"{_case_id(case)}: <O M, dy> = {lhs!r}, <M, O* dy> = {rhs!r}, tol {tol:.3g}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_input_adjoint_is_the_transpose_of_the_forward_kernel(case, rng):
    ndim, m, r, _ = case
    desc, geo = layer(case)
    mats, amats = mats_for(m, r, np.float64), mats_for(m, r, np.float64, absolute=True)
    x = rng.standard_normal((N, C) + in_sizes(case))
    dV = rng.standard_normal((geo["positions"], C, geo["num_tiles"]))
    V, V_abs = np.full(dV.shape, np.nan), np.full(dV.shape, np.nan)
    emu.input_transform(desc, emu.FLOAT64, ptr(x), ptr(V), emu.RELU_NONE, ptr(mats), 0)
    x_abs = np.abs(x)
    emu.input_transform(desc, emu.FLOAT64, ptr(x_abs), ptr(V_abs), emu.RELU_NONE, ptr(amats), 0)
    dx = np.full(x.shape, np.nan)
    emu.input_transform_adjoint(desc, emu.FLOAT64, ptr(dV), ptr(dx), ptr(mats), 0)
    lhs, rhs = float(np.sum(V * dV)), float(np.sum(x * dx))
    alpha = m + r - 1
    tol = _identity_tol(V_abs, dV, ndim * (alpha + 2) + math.ceil(alpha / m) ** ndim)
    assert abs(lhs - rhs) <= tol, f"{_case_id(case)}: <I x, dV> = {lhs!r}, <x, I* dV> = {rhs!r}, tol {tol:.3g}"


@pytest.mark.parametrize("ndim,m,r", TILES, ids=lambda v: str(v))
def test_filter_adjoint_is_the_transpose_of_the_forward_kernel(ndim, m, r, rng):
    desc, geo = layer((ndim, m, r, 0))
    mats, amats = mats_for(m, r, np.float64), mats_for(m, r, np.float64, absolute=True)
    w = rng.standard_normal((K, C) + (r,) * ndim)
    dU = rng.standard_normal((geo["positions"], K, C))
    U, U_abs = np.full(dU.shape, np.nan), np.full(dU.shape, np.nan)
    emu.filter_transform(desc, emu.FLOAT64, ptr(w), ptr(U), ptr(mats), 0)
    w_abs = np.abs(w)
    emu.filter_transform(desc, emu.FLOAT64, ptr(w_abs), ptr(U_abs), ptr(amats), 0)
    dw = np.full(w.shape, np.nan)
    emu.filter_transform_adjoint(desc, emu.FLOAT64, ptr(dU), ptr(dw), ptr(mats), 0)
    lhs, rhs = float(np.sum(U * dU)), float(np.sum(w * dw))
    tol = _identity_tol(U_abs, dU, ndim * (m + r + 1))
    assert abs(lhs - rhs) <= tol, f"F({m},{r}) {ndim}D: <G w, dU> = {lhs!r}, <w, G* dU> = {rhs!r}, tol {tol:.3g}"


def test_identity_catches_a_transposed_matrix(rng):
    """The identity test has teeth: with Bᵀ replaced by B in the adjoint (the mistake it is
    there to catch) the two inner products differ by far more than its tolerance."""
    case = (2, 4, 3, 1)
    ndim, m, r, _ = case
    desc, geo = layer(case)
    at, g, bt = winograd(m, r).matrices(np.float64)
    mats = mats_for(m, r, np.float64)
    wrong = np.ascontiguousarray(np.concatenate([at.ravel(), g.ravel(), bt.T.ravel()]))
    x = rng.standard_normal((N, C) + in_sizes(case))
    dV = rng.standard_normal((geo["positions"], C, geo["num_tiles"]))
    V, V_abs = np.full(dV.shape, np.nan), np.full(dV.shape, np.nan)
    emu.input_transform(desc, emu.FLOAT64, ptr(x), ptr(V), emu.RELU_NONE, ptr(mats), 0)
    x_abs, amats = np.abs(x), mats_for(m, r, np.float64, absolute=True)
    emu.input_transform(desc, emu.FLOAT64, ptr(x_abs), ptr(V_abs), emu.RELU_NONE, ptr(amats), 0)
    dx = np.full(x.shape, np.nan)
    emu.input_transform_adjoint(desc, emu.FLOAT64, ptr(dV), ptr(dx), ptr(wrong), 0)
    alpha = m + r - 1
    tol = _identity_tol(V_abs, dV, ndim * (alpha + 2) + math.ceil(alpha / m) ** ndim)
    assert abs(float(np.sum(V * dV)) - float(np.sum(x * dx))) > 1e6 * tol


# --------------------------------------------------------------------------- bad input


ENTRIES = ["output_transform_adjoint", "input_transform_adjoint", "filter_transform_adjoint"]


def _buffers(dtype=np.float64):
    """A valid 2D F(2, 3) layer and arrays large enough for any of the three entries."""
    desc = emu.ConvDesc(2, 2, 3, 1, 2, 2, (6, 5), (1, 1))
    geo = desc.geometry(emu.FLOAT64)
    big = np.zeros(geo["positions"] * 4 * geo["num_tiles"] + 64, dtype)
    return desc, big, np.zeros_like(big), mats_for(2, 3, dtype)


@pytest.mark.parametrize("entry", ENTRIES)
def test_adjoint_refuses_null_matrices_even_for_a_specialised_tile(entry):
    desc, src, dst, _ = _buffers()
    assert emu.has_specialized_transform(2, 2, 3)  # the forward would accept NULL here
    with pytest.raises(InvalidArgumentError, match="matrices is NULL"):
        getattr(emu, entry)(desc, emu.FLOAT64, ptr(src), ptr(dst), 0, 0)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("dtype_code", ["FLOAT16", "BFLOAT16"])
def test_adjoint_refuses_16bit_dtype(entry, dtype_code):
    desc, src, dst, mats = _buffers(np.float32)
    with pytest.raises(InvalidArgumentError, match="16-bit storage type"):
        getattr(emu, entry)(desc, getattr(emu, dtype_code), ptr(src), ptr(dst), ptr(mats), 0)
    with pytest.raises(InvalidArgumentError, match="dtype 7 is not"):
        getattr(emu, entry)(desc, 7, ptr(src), ptr(dst), ptr(mats), 0)


@pytest.mark.parametrize("entry,names", list(zip(ENTRIES, ["dy and dM", "dV and dx", "dU and dw"])))
def test_adjoint_refuses_null_arrays(entry, names):
    desc, src, dst, mats = _buffers()
    fn = getattr(emu, entry)
    with pytest.raises(InvalidArgumentError, match=f"{names} must not be NULL"):
        fn(desc, emu.FLOAT64, 0, ptr(dst), ptr(mats), 0)
    with pytest.raises(InvalidArgumentError, match=f"{names} must not be NULL"):
        fn(desc, emu.FLOAT64, ptr(src), 0, ptr(mats), 0)


@pytest.mark.parametrize("entry", ENTRIES)
def test_adjoint_validates_the_descriptor_like_the_forward(entry):
    _, src, dst, mats = _buffers()
    bad = emu.ConvDesc(2, 2, 3, 1, 2, 2, (6, 5), (-3, 1))  # negative padding
    with pytest.raises(InvalidArgumentError, match=r"desc.padding\[0\] = -3"):
        getattr(emu, entry)(bad, emu.FLOAT64, ptr(src), ptr(dst), ptr(mats), 0)
