"""Every kernel of kernels/, run by the CPU emulator (``magma_wino._emu``), against NumPy.

Layer 1 and 2 of the validation plan (DESIGN.md, "Validation, in layers"):

* tile transforms (filter / input / output, 2D and 3D, specialised and generic) against
  :mod:`magma_wino.reference`, outputs pre-filled with NaN so unwritten elements fail,
  tolerances derived from the transform's norm and the dtype's unit roundoff;
* the dense and sparse batched products exactly (bitwise) on integer-valued data, with
  sizes straddling every tile edge of the configurations in gemm_batched.cuh /
  spmm_batched.cuh;
* the emulator schedule (workers, fiber order) does not change a single bit;
* the C layer's argument checks raise the right exception class naming the field.

The raw API takes pointers (``arr.ctypes.data``); every array handed to it is created
here C-contiguous and kept alive for the call.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import magma_wino._emu as emu
from magma_wino import reference
from magma_wino.errors import InvalidArgumentError, UnsupportedError
from magma_wino.sparse import BatchedCSR
from magma_wino.transforms import winograd

DTYPES = [np.float32, np.float64]
DT_CODE = {np.dtype(np.float32): emu.FLOAT32, np.dtype(np.float64): emu.FLOAT64}

SPECIALISED_2D = [(2, 3), (4, 3), (6, 3), (2, 5)]
SPECIALISED_3D = [(2, 3), (4, 3)]
GENERIC_2D = SPECIALISED_2D + [(3, 2), (3, 4), (5, 3), (1, 3), (4, 1)]
GENERIC_3D = [(2, 3), (4, 3), (3, 3), (3, 2)]

# (ndim, m, r, generic) for every transform kernel instantiation exercised here.
TRANSFORM_CASES = (
    [(2, m, r, False) for m, r in SPECIALISED_2D]
    + [(2, m, r, True) for m, r in GENERIC_2D]
    + [(3, m, r, False) for m, r in SPECIALISED_3D]
    + [(3, m, r, True) for m, r in GENERIC_3D]
)


def _case_id(case) -> str:
    ndim, m, r, generic = case
    return f"{ndim}D-F({m},{r})-{'generic' if generic else 'specialised'}"


def ptr(a: np.ndarray | None) -> int:
    if a is None:
        return 0
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def nan_array(shape, dtype) -> np.ndarray:
    return np.full(shape, np.nan, dtype=dtype)


def mats_for(m: int, r: int, dtype) -> np.ndarray:
    """Aᵀ, G, Bᵀ back to back (the C ABI's ``matrices`` argument)."""
    at, g, bt = winograd(m, r).matrices(np.dtype(dtype))
    return np.ascontiguousarray(np.concatenate([at.ravel(), g.ravel(), bt.ravel()]).astype(dtype))


def inf_norm(mat: np.ndarray) -> float:
    return float(np.abs(mat).sum(axis=1).max())


def transform_tol(dtype, mat: np.ndarray, ndim: int, max_in: float, extra: float = 0.0) -> float:
    """Max-norm bound on the error of a separable transform ``T ⊗ … ⊗ T`` (ndim passes).

    First order: each pass is a dot product of length ``n = T.shape[1]``, so the computed
    value differs from the exact one by at most ``ndim · n · u · (|T|^⊗ndim |a|)``, plus
    ``ndim · u`` relative for rounding T's coefficients to ``dtype``; and
    ``|T|^⊗ndim |a| <= ‖T‖∞^ndim · max|a|``.  A factor 4 covers the reference's own
    rounding (float64) and re-associated straight-line kernels (common subexpressions).
    ``extra`` adds a bias term.  A missing / misplaced coefficient or an unwritten element
    is an O(1) relative error and cannot pass.
    """
    u = float(np.finfo(np.dtype(dtype)).eps) / 2
    n = mat.shape[1]
    return 4 * ndim * (n + 1) * u * inf_norm(mat) ** ndim * max_in + 4 * u * extra


def in_sizes(ndim: int, m: int, r: int, pads: tuple[int, ...]) -> tuple[int, ...]:
    """Input sizes whose outputs are not multiples of m (last tile clipped): 2m+1, m+1, m+2."""
    outs = [2 * m + 1, m + 1, m + 2][:ndim] if m > 1 else [3, 2, 4][:ndim]
    sizes = []
    for o, p in zip(outs, pads):
        size = o + r - 1 - 2 * p
        while size < 1:  # large padding: m more outputs keep the remainder
            size += m
        sizes.append(size)
    return tuple(sizes)


def pads_for(ndim: int, r: int) -> tuple[int, ...]:
    return ((r - 1, min(1, r - 1), 0) if ndim == 3 else (min(1, r - 1), r - 1))[:ndim]


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=_case_id)
def test_filter_transform_kernel_matches_reference(case, dtype, rng):
    ndim, m, r, generic = case
    K, C = 5, 3
    w = rng.standard_normal((K, C) + (r,) * ndim).astype(dtype)
    alpha = m + r - 1
    U = nan_array((alpha**ndim, K, C), dtype)
    desc = emu.ConvDesc(ndim, m, r, 1, C, K, (r,) * ndim, (0,) * ndim)
    mats = mats_for(m, r, dtype) if generic else None
    emu.filter_transform(desc, DT_CODE[np.dtype(dtype)], ptr(w), ptr(U), ptr(mats), 0)
    ref = reference.filter_transform(w.astype(np.float64), m)
    _, g, _ = winograd(m, r).matrices(np.float64)
    tol = transform_tol(dtype, g, ndim, float(np.abs(w).max()))
    err = float(np.abs(U - ref).max())  # NaN (unwritten) fails the comparison below
    assert err <= tol, (
        f"{_case_id(case)} {np.dtype(dtype).name} w{w.shape} -> U{U.shape}: "
        f"max|U - ref| = {err:.3g} > tol {tol:.3g}"
    )


@pytest.mark.parametrize("relu", [0, 1, 2], ids=["relu-none", "relu-spatial", "relu-winograd"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=_case_id)
def test_input_transform_kernel_matches_reference(case, dtype, relu, rng):
    ndim, m, r, generic = case
    N, C, K = 2, 3, 4
    pads = pads_for(ndim, r)
    size = in_sizes(ndim, m, r, pads)
    x = rng.standard_normal((N, C) + size).astype(dtype)
    desc = emu.ConvDesc(ndim, m, r, N, C, K, size, pads)
    geo = desc.geometry(DT_CODE[np.dtype(dtype)])
    V = nan_array((geo["positions"], C, geo["num_tiles"]), dtype)
    mats = mats_for(m, r, dtype) if generic else None
    emu.input_transform(desc, DT_CODE[np.dtype(dtype)], ptr(x), ptr(V), relu, ptr(mats), 0)
    x64 = x.astype(np.float64)
    if relu == 1:
        x64 = np.maximum(x64, 0)
    ref = reference.input_transform(x64, m, r, pads, relu=relu == 2)
    assert V.shape == ref.shape, (V.shape, ref.shape)
    _, _, bt = winograd(m, r).matrices(np.float64)
    tol = transform_tol(dtype, bt, ndim, float(np.abs(x).max()))
    err = float(np.abs(V - ref).max())
    assert err <= tol, (
        f"{_case_id(case)} {np.dtype(dtype).name} relu={relu} x{x.shape} pad {pads} -> V{V.shape}: "
        f"max|V - ref| = {err:.3g} > tol {tol:.3g}"
    )
    if relu == 2:
        assert (V >= 0).all(), "relu=2 (Winograd-ReLU) left negative entries in V"


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=_case_id)
def test_output_transform_kernel_matches_reference(case, dtype, bias, rng):
    ndim, m, r, generic = case
    N, C, K = 2, 3, 4
    pads = pads_for(ndim, r)
    size = in_sizes(ndim, m, r, pads)
    desc = emu.ConvDesc(ndim, m, r, N, C, K, size, pads)
    geo = desc.geometry(DT_CODE[np.dtype(dtype)])
    M = rng.standard_normal((geo["positions"], K, geo["num_tiles"])).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if bias else None
    yshape = (N, K) + geo["out_size"]
    y = nan_array(yshape, dtype)
    mats = mats_for(m, r, dtype) if generic else None
    emu.output_transform(desc, DT_CODE[np.dtype(dtype)], ptr(M), ptr(b), ptr(y), ptr(mats), 0)
    ref = reference.output_transform(
        M.astype(np.float64), m, r, yshape, None if b is None else b.astype(np.float64)
    )
    at, _, _ = winograd(m, r).matrices(np.float64)
    tol = transform_tol(dtype, at, ndim, float(np.abs(M).max()),
                        extra=0.0 if b is None else float(np.abs(b).max()))
    err = float(np.abs(y - ref).max())
    assert err <= tol, (
        f"{_case_id(case)} {np.dtype(dtype).name} bias={bias} M{M.shape} -> y{y.shape}: "
        f"max|y - ref| = {err:.3g} > tol {tol:.3g}"
    )


@pytest.mark.parametrize("ndim,m,r", [(2, m, r) for m, r in SPECIALISED_2D] + [(3, m, r) for m, r in SPECIALISED_3D])
def test_specialised_and_generic_transforms_agree_to_rounding(ndim, m, r, rng):
    """The specialised kernel (baked-in coefficients) and the generic one given the same
    default matrices compute the same transform (float64, to rounding)."""
    N, C, K = 1, 2, 3
    pads = pads_for(ndim, r)
    size = in_sizes(ndim, m, r, pads)
    x = rng.standard_normal((N, C) + size)
    desc = emu.ConvDesc(ndim, m, r, N, C, K, size, pads)
    geo = desc.geometry(emu.FLOAT64)
    out = []
    for mats in (None, mats_for(m, r, np.float64)):
        V = nan_array((geo["positions"], C, geo["num_tiles"]), np.float64)
        emu.input_transform(desc, emu.FLOAT64, ptr(x), ptr(V), 0, ptr(mats), 0)
        out.append(V)
    np.testing.assert_allclose(out[0], out[1], rtol=0, atol=1e-12 * np.abs(out[1]).max())


def test_has_specialized_transform_matches_build_info():
    info = emu.build_info()
    for m, r in SPECIALISED_2D:
        assert emu.has_specialized_transform(2, m, r), (m, r)
        assert f"F({m},{r})" in info["specialized2d"]
    for m, r in SPECIALISED_3D:
        assert emu.has_specialized_transform(3, m, r), (m, r)
    for ndim, m, r in [(2, 3, 3), (2, 3, 2), (3, 6, 3), (3, 2, 5), (4, 2, 3), (1, 2, 3)]:
        assert not emu.has_specialized_transform(ndim, m, r), (ndim, m, r)


# --------------------------------------------------------------------------- dense products

GEMM_BLK = {  # name: (BLK_M, BLK_N, BLK_K), from kernels/gemm_batched.cuh (the float 128x128
    # tile of large aligned products is swept in tests/test_kernels_simt_gemm.py)
    "64x64": (64, 64, 16),
    "32x64": (32, 64, 8),
    "16x32": (16, 32, 8),
}


def gemm_config(m: int, n: int) -> str:
    """The selection rule of mw::gemm_batched<T>."""
    if m >= 64 and n >= 64:
        return "64x64"
    if m >= 32 and n >= 64:
        return "32x64"
    return "16x32"


def _gemm_cases():
    cases = []
    # 64x64: m, n >= 64, straddle BLK_M = BLK_N = 64 (and 2 tiles), k around BLK_K = 16.
    for m, n, k in [(64, 64, 16), (65, 63 + 64, 17), (63 + 64, 65, 15), (129, 128, 33), (64, 129, 1)]:
        cases.append((m, n, k))
    # 32x64: 32 <= m < 64, n >= 64.
    for m, n, k in [(32, 64, 16), (33, 65, 15), (63, 127, 17), (31 + 32, 129, 31)]:
        cases.append((m, n, k))
    # 16x32: m < 32 or n < 64; straddle BLK_M = 16, BLK_N = 32, BLK_K = 8.
    for m, n, k in [(1, 1, 1), (15, 31, 7), (16, 32, 8), (17, 33, 9), (31, 63, 17), (65, 63, 9),
                    (128, 33, 8), (33, 17, 23)]:
        cases.append((m, n, k))
    return cases


GEMM_CASES = _gemm_cases()


def test_gemm_cases_hit_every_tile_configuration_and_edge():
    hit = {gemm_config(m, n) for m, n, _ in GEMM_CASES}
    assert hit == set(GEMM_BLK), hit
    for cfg, (bm, bn, bk) in GEMM_BLK.items():
        mine = [(m, n, k) for m, n, k in GEMM_CASES if gemm_config(m, n) == cfg]
        ms = {m % bm for m, _, _ in mine}
        ns = {n % bn for _, n, _ in mine}
        ks = {k % bk for _, _, k in mine}
        # each of the block's edges is hit exactly, one past (remainder 1) and one short.
        for rems, blk, name in [(ms, bm, "BLK_M"), (ns, bn, "BLK_N"), (ks, bk, "BLK_K")]:
            assert {0, 1, blk - 1} <= rems, f"{cfg}: {name} remainders {sorted(rems)}"


def int_array(rng, shape, dtype, lo=-4, hi=4) -> np.ndarray:
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("m,n,k", GEMM_CASES, ids=lambda v: str(v))
def test_gemm_batched_exact_on_integers_straddling_blk(m, n, k, dtype, rng):
    batch = 4
    A = int_array(rng, (batch, m, k), dtype)
    B = int_array(rng, (batch, k, n), dtype)
    C = nan_array((batch, m, n), dtype)
    emu.gemm_batched(DT_CODE[np.dtype(dtype)], batch, m, n, k, ptr(A), ptr(B), ptr(C), 0)
    ref = np.matmul(A.astype(np.float64), B.astype(np.float64))
    assert np.abs(ref).max() < 2**24
    assert np.array_equal(C, ref), (
        f"gemm_batched {np.dtype(dtype).name} batch={batch} m={m} n={n} k={k} "
        f"(config {gemm_config(m, n)}): {int((C != ref).sum())} of {C.size} differ "
        f"(NaN = unwritten: {int(np.isnan(C).sum())})"
    )


@pytest.mark.parametrize("batch", [1, 2, 4, 16, 36, 64])
def test_gemm_batched_exact_for_batch_counts_up_to_alpha_cubed(batch, rng):
    """α² of F(2,3) = 16, α² of F(4,3) = 36, α³ of F(2,3) = 64: each batch entry its own product."""
    m, n, k = 17, 33, 9
    A = int_array(rng, (batch, m, k), np.float32)
    B = int_array(rng, (batch, k, n), np.float32)
    C = nan_array((batch, m, n), np.float32)
    emu.gemm_batched(emu.FLOAT32, batch, m, n, k, ptr(A), ptr(B), ptr(C), 0)
    ref = np.matmul(A, B)
    bad = [b for b in range(batch) if not np.array_equal(C[b], ref[b])]
    assert not bad, f"gemm_batched batch={batch} m={m} n={n} k={k}: entries {bad} wrong"


def test_gemm_batched_exact_with_large_k_and_sums_near_2_24(rng):
    """k = 1000 (63 BLK_K slices, not a multiple) with |sums| up to ~2^22: still exact."""
    batch, m, n, k = 2, 20, 40, 1001
    A = int_array(rng, (batch, m, k), np.float32, -64, 64)
    B = int_array(rng, (batch, k, n), np.float32, -64, 64)
    C = nan_array((batch, m, n), np.float32)
    emu.gemm_batched(emu.FLOAT32, batch, m, n, k, ptr(A), ptr(B), ptr(C), 0)
    ref = np.matmul(A.astype(np.int64), B.astype(np.int64))
    assert np.abs(ref).max() < 2**24
    assert np.array_equal(C, ref.astype(np.float32)), f"m={m} n={n} k={k}"


def test_gemm_batched_leaves_memory_past_c_untouched(rng):
    """C is batch×m×n exactly: the guard elements after it keep their values."""
    batch, m, n, k = 3, 17, 33, 9
    A = int_array(rng, (batch, m, k), np.float32)
    B = int_array(rng, (batch, k, n), np.float32)
    buf = np.full(batch * m * n + 64, -7.0, np.float32)
    emu.gemm_batched(emu.FLOAT32, batch, m, n, k, ptr(A), ptr(B), ptr(buf), 0)
    assert np.array_equal(buf[: batch * m * n].reshape(batch, m, n), np.matmul(A, B))
    assert (buf[batch * m * n:] == -7.0).all()


# --------------------------------------------------------------------------- sparse products

SPMM_BLK = {  # from kernels/spmm_batched.cuh: (BLK_M, BLK_N, NNZ_CHUNK)
    "wide-f32": (32, 128, 512),
    "wide-f64": (32, 64, 256),
    "narrow": (16, 32, 256),
}


def spmm_config(n: int, dtype) -> str:
    wide = "wide-f64" if np.dtype(dtype) == np.float64 else "wide-f32"
    return wide if n >= SPMM_BLK[wide][1] else "narrow"


def random_csr(rng, batch, rows, cols, density, dtype) -> BatchedCSR:
    """Integer-valued nonzero entries (±1..±4) at a random density."""
    mask = rng.random((batch, rows, cols)) < density
    vals = rng.integers(1, 5, size=mask.shape) * rng.choice([-1, 1], size=mask.shape)
    U = np.where(mask, vals, 0).astype(dtype)
    return BatchedCSR.from_dense(U)


def csr_from_row_counts(rng, counts: np.ndarray, cols: int, dtype) -> BatchedCSR:
    """A batched CSR whose row (b, i) holds exactly counts[b, i] distinct columns."""
    batch, rows = counts.shape
    U = np.zeros((batch, rows, cols), dtype)
    for b in range(batch):
        for i in range(rows):
            c = rng.choice(cols, size=int(counts[b, i]), replace=False)
            U[b, i, c] = rng.integers(1, 5, size=c.size) * rng.choice([-1, 1], size=c.size)
    return BatchedCSR.from_dense(U, U != 0)


def run_spmm(csr: BatchedCSR, B: np.ndarray, *, null_empty=False) -> np.ndarray:
    batch, rows, cols = csr.shape
    n = B.shape[2]
    dtype = B.dtype
    C = nan_array((batch, rows, n), dtype)
    rp = np.ascontiguousarray(csr.row_ptr, dtype=np.int32)
    ci = np.ascontiguousarray(csr.col_idx, dtype=np.int32)
    vals = np.ascontiguousarray(csr.values, dtype=dtype)
    use_null = null_empty and csr.nnz == 0
    emu.spmm_batched(DT_CODE[np.dtype(dtype)], batch, rows, cols, n, ptr(rp),
                     0 if use_null else ptr(ci), 0 if use_null else ptr(vals), csr.nnz,
                     ptr(B), ptr(C), 0)
    return C


def assert_spmm_exact(csr: BatchedCSR, B: np.ndarray, label: str) -> None:
    C = run_spmm(csr, B)
    ref = np.matmul(csr.to_dense().astype(np.float64), B.astype(np.float64))
    assert np.abs(ref).max(initial=0) < 2**24
    batch, rows, cols = csr.shape
    assert np.array_equal(C, ref), (
        f"spmm_batched {label} {B.dtype} batch={batch} rows={rows} cols={cols} n={B.shape[2]} "
        f"nnz={csr.nnz} (config {spmm_config(B.shape[2], B.dtype)}): "
        f"{int((C != ref).sum())} of {C.size} differ, NaN (unwritten) {int(np.isnan(C).sum())}"
    )


DENSITIES = [1.0, 0.5, 0.25, 0.1, 0.05, 0.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("density", DENSITIES)
def test_spmm_batched_exact_on_integers_at_density(density, dtype, rng):
    batch, rows, cols, n = 16, 33, 29, 70
    csr = random_csr(rng, batch, rows, cols, density, dtype)
    B = int_array(rng, (batch, cols, n), dtype)
    assert_spmm_exact(csr, B, f"density={density}")


def _spmm_size_cases():
    cases = []
    for dtype in DTYPES:
        bm, bn, _ = SPMM_BLK[spmm_config(10**6, dtype)]
        nm, nn, _ = SPMM_BLK["narrow"]
        # wide config: n >= BLK_N of the wide tile; rows straddle BLK_M (32).
        for rows, n in [(bm - 1, bn), (bm, bn + 1), (bm + 1, 2 * bn - 1), (2 * bm + 1, 2 * bn + 1)]:
            cases.append((dtype, rows, n))
        # narrow config: n < wide BLK_N; rows straddle BLK_M (16), n straddles BLK_N (32).
        for rows, n in [(1, 1), (nm - 1, nn - 1), (nm, nn), (nm + 1, nn + 1), (2 * nm + 1, bn - 1)]:
            cases.append((dtype, rows, n))
    return cases


@pytest.mark.parametrize("dtype,rows,n", _spmm_size_cases(),
                         ids=lambda v: np.dtype(v).name if isinstance(v, type) else str(v))
def test_spmm_batched_exact_on_sizes_straddling_tiles(dtype, rows, n, rng):
    batch, cols = 4, 23
    csr = random_csr(rng, batch, rows, cols, 0.3, dtype)
    B = int_array(rng, (batch, cols, n), dtype)
    assert_spmm_exact(csr, B, f"rows={rows} n={n}")


def test_spmm_size_cases_hit_every_configuration():
    hit = {spmm_config(n, dt) for dt, _, n in _spmm_size_cases()}
    assert hit == set(SPMM_BLK), hit


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_spmm_batched_exact_when_block_nnz_straddles_nnz_chunk(dtype, delta, rng):
    """One row block whose nonzeros number NNZ_CHUNK - 1, NNZ_CHUNK, NNZ_CHUNK + 1 (and
    2 chunks + 1 in the second position): the chunk loop's edges."""
    for n in (40, 200):  # narrow and wide configuration
        bm, _, chunk = SPMM_BLK[spmm_config(n, dtype)]
        rows, cols, batch = bm, 48, 2
        counts = np.zeros((batch, rows), np.int64)
        for b, total in enumerate([chunk + delta, 2 * chunk + delta]):
            base, rest = divmod(total, rows)
            counts[b] = base
            counts[b, :rest] += 1
        assert counts.max() <= cols
        csr = csr_from_row_counts(rng, counts, cols, dtype)
        B = int_array(rng, (batch, cols, n), dtype)
        assert_spmm_exact(csr, B, f"block nnz {chunk}{delta:+d} (chunk {chunk})")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_spmm_batched_exact_with_empty_and_very_unbalanced_rows(dtype, rng):
    batch, rows, cols, n = 3, 40, 300, 150
    counts = np.zeros((batch, rows), np.int64)
    counts[0, 5] = cols          # one full row, all others empty
    counts[1, ::7] = 1           # sparse rows, mostly empty
    counts[1, 39] = cols         # the last row of the last block full
    counts[2, :] = rng.integers(0, 3, size=rows)
    counts[2, 16] = cols - 1     # full row straddling chunks among near-empty rows
    csr = csr_from_row_counts(rng, counts, cols, dtype)
    B = int_array(rng, (batch, cols, n), dtype)
    assert_spmm_exact(csr, B, "unbalanced rows")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_spmm_batched_all_empty_matrices_write_zeros(dtype, rng):
    batch, rows, cols, n = 5, 33, 7, 130
    csr = BatchedCSR.from_dense(np.zeros((batch, rows, cols), dtype))
    assert csr.nnz == 0
    B = int_array(rng, (batch, cols, n), dtype)
    for null in (False, True):
        C = run_spmm(csr, B, null_empty=null)
        assert np.array_equal(C, np.zeros_like(C)), f"nnz=0 (NULL col_idx/values: {null}): C not all zero"


def test_spmm_batched_some_positions_empty_others_dense(rng):
    batch, rows, cols, n = 36, 20, 12, 50
    U = int_array(rng, (batch, rows, cols), np.float32)
    U[U == 0] = 1
    U[::3] = 0  # every third position pruned away entirely
    csr = BatchedCSR.from_dense(U)
    B = int_array(rng, (batch, cols, n), np.float32)
    assert_spmm_exact(csr, B, "mixed empty/dense positions")


def test_spmm_batched_unsorted_and_repeated_columns_add_up(rng):
    """The format allows unsorted and repeated columns in a row; repeats add (as to_dense)."""
    batch, rows, cols, n = 2, 3, 5, 33
    row_ptr = np.array([[0, 3, 3, 5], [5, 6, 9, 9]], np.int32)
    col_idx = np.array([4, 1, 4, 0, 0, 2, 3, 1, 3], np.int32)
    values = np.array([1, 2, 3, 4, -1, 5, 2, 2, -3], np.float32)
    csr = BatchedCSR(row_ptr, col_idx, values, (batch, rows, cols))
    B = int_array(rng, (batch, cols, n), np.float32)
    assert_spmm_exact(csr, B, "unsorted/repeated columns")


def test_spmm_batched_skips_out_of_range_column_indices(rng):
    """The kernel's defence against a corrupt CSR: column indices outside [0, cols) are
    skipped (never read out of bounds), the rest is still exact."""
    batch, rows, cols, n = 1, 2, 4, 40
    row_ptr = np.array([[0, 3, 5]], np.int32)
    col_idx = np.array([0, -1, 2, 4, 1], np.int32)  # -1 and 4 are corrupt
    values = np.array([1, 100, 2, 100, 3], np.float32)
    B = int_array(rng, (batch, cols, n), np.float32)
    C = nan_array((batch, rows, n), np.float32)
    emu.spmm_batched(emu.FLOAT32, batch, rows, cols, n, ptr(row_ptr), ptr(col_idx), ptr(values),
                     5, ptr(B), ptr(C), 0)
    ref = np.stack([B[0, 0] + 2 * B[0, 2], 3 * B[0, 1]])[None]
    assert np.array_equal(C, ref)


def test_spmm_batched_clamps_row_ranges_past_nnz(rng):
    """row_ptr entries beyond nnz are clamped to nnz: no crash, C fully written."""
    batch, rows, cols, n = 1, 3, 4, 40
    row_ptr = np.array([[0, 2, 1000, 1000]], np.int32)
    col_idx = np.array([0, 1, 2], np.int32)
    values = np.array([1, 2, 3], np.float32)
    B = int_array(rng, (batch, cols, n), np.float32)
    C = nan_array((batch, rows, n), np.float32)
    emu.spmm_batched(emu.FLOAT32, batch, rows, cols, n, ptr(row_ptr), ptr(col_idx), ptr(values),
                     3, ptr(B), ptr(C), 0)
    assert np.isfinite(C).all()
    assert np.array_equal(C[0, 0], B[0, 0] + 2 * B[0, 1])
    assert np.array_equal(C[0, 2], np.zeros(n, np.float32))


# --------------------------------------------------------------------------- schedules


def _layer_pipeline(rng, dtype, ndim, m, r, sparse):
    """Run every kernel of a layer once; return all intermediate arrays."""
    N, C, K = 2, 9, 11
    pads = pads_for(ndim, r)
    size = in_sizes(ndim, m, r, pads)
    x = rng.standard_normal((N, C) + size).astype(dtype)
    w = rng.standard_normal((K, C) + (r,) * ndim).astype(dtype)
    bias = rng.standard_normal(K).astype(dtype)
    dt = DT_CODE[np.dtype(dtype)]
    desc = emu.ConvDesc(ndim, m, r, N, C, K, size, pads)
    geo = desc.geometry(dt)
    pos, P = geo["positions"], geo["num_tiles"]
    U = nan_array((pos, K, C), dtype)
    wdesc = emu.ConvDesc(ndim, m, r, 1, C, K, (r,) * ndim, (0,) * ndim)
    emu.filter_transform(wdesc, dt, ptr(w), ptr(U), 0, 0)
    V = nan_array((pos, C, P), dtype)
    emu.input_transform(desc, dt, ptr(x), ptr(V), 2, 0, 0)
    M = nan_array((pos, K, P), dtype)
    if sparse:
        Up = np.where(np.abs(U) > np.quantile(np.abs(U), 0.7), U, 0).astype(dtype)
        csr = BatchedCSR.from_dense(Up)
        M = run_spmm(csr, V)
    else:
        emu.gemm_batched(dt, pos, K, P, C, ptr(U), ptr(V), ptr(M), 0)
    y = nan_array((N, K) + geo["out_size"], dtype)
    emu.output_transform(desc, dt, ptr(M), ptr(bias), ptr(y), 0, 0)
    return U, V, M, y


SCHEDULES = [(1, "forward"), (2, "forward"), (1, "reverse"), (2, "reverse"), (2, "shuffle")]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("ndim,m,r", [(2, 4, 3), (2, 2, 5), (3, 2, 3)])
def test_emulator_workers_and_fiber_order_give_bitwise_identical_results(emu_defaults, ndim, m, r, sparse):
    results = []
    for workers, order in SCHEDULES:
        emu.set_workers(workers)
        emu.set_order(order)
        assert emu.get_workers() == workers and emu.get_order() == order
        results.append(_layer_pipeline(np.random.default_rng(5), np.float32, ndim, m, r, sparse))
    names = ["U", "V", "M", "y"]
    for (workers, order), res in zip(SCHEDULES[1:], results[1:]):
        for name, a, b in zip(names, results[0], res):
            assert not np.isnan(b).any(), f"{name} has unwritten elements with {workers} workers, {order}"
            assert np.array_equal(a, b), (
                f"{ndim}D F({m},{r}) {'sparse' if sparse else 'dense'}: {name}{a.shape} differs between "
                f"1 worker/forward and {workers} workers/{order}"
            )


def test_emulator_rejects_bad_schedule_settings(emu_defaults):
    with pytest.raises(ValueError, match="order"):
        emu.set_order("sideways")
    with pytest.raises(ValueError, match="workers"):
        emu.set_workers(-1)


# --------------------------------------------------------------------------- C-layer checks


def _geometry_error(cls, match, *args):
    with pytest.raises(cls, match=match) as info:
        emu.ConvDesc(*args).geometry()
    return info.value


@pytest.mark.parametrize(
    "args,field",
    [
        ((4, 2, 3, 1, 1, 1, (8, 8, 8, 8), (0, 0, 0, 0)), "ndim"),
        ((1, 2, 3, 1, 1, 1, (8,), (0,)), "ndim"),
        ((2, 0, 3, 1, 1, 1, (8, 8), (0, 0)), r"desc\.m"),
        ((2, 2, 0, 1, 1, 1, (8, 8), (0, 0)), r"desc\.r"),
        ((2, 2, 3, 0, 1, 1, (8, 8), (0, 0)), r"desc\.batch"),
        ((2, 2, 3, -1, 1, 1, (8, 8), (0, 0)), r"desc\.batch"),
        ((2, 2, 3, 1, -3, 1, (8, 8), (0, 0)), r"desc\.in_channels"),
        ((2, 2, 3, 1, 1, -2, (8, 8), (0, 0)), r"desc\.out_channels"),
        ((2, 2, 3, 1, 1, 1, (8, -8), (0, 0)), r"desc\.in_size\[1\]"),
        ((3, 2, 3, 1, 1, 1, (0, 8, 8), (0, 0, 0)), r"desc\.in_size\[0\]"),
        ((2, 2, 3, 1, 1, 1, (8, 8), (0, 0), (0, -3)), r"desc\.padding_end\[1\]"),
        ((2, 2, 3, 1, 1, 1, (8, 8), (-1, 0)), r"desc\.padding\[0\]"),
        ((2, 2, 5, 1, 1, 1, (3, 8), (0, 0)), "smaller than the filter"),
    ],
)
def test_conv_desc_invalid_field_raises_invalid_argument_naming_it(args, field):
    err = _geometry_error(InvalidArgumentError, field, *args)
    assert err.status == "MW_STATUS_INVALID_ARGUMENT"
    assert "[emulator]" in str(err)
    assert isinstance(err, ValueError)


def test_conv_desc_alpha_above_16_raises_unsupported():
    err = _geometry_error(UnsupportedError, "alpha", 2, 15, 3, 1, 1, 1, (20, 20), (0, 0))
    assert err.status == "MW_STATUS_UNSUPPORTED"
    assert "17" in err.detail and "16" in err.detail
    # alpha = 16 exactly is fine
    assert emu.ConvDesc(2, 14, 3, 1, 1, 1, (20, 20), (0, 0)).geometry()["alpha"] == 16


@pytest.mark.parametrize(
    "args,match",
    [
        # x itself: N*C*H*W = 2^16 * 2^16 = 2^32 elements
        ((2, 4, 3, 1, 2**16, 1, (2**8, 2**8), (1, 1)), "2\\^31"),
        # y: N*K*Ho*Wo >= 2^31
        ((2, 4, 3, 2**15, 1, 2**16, (3, 3), (1, 1)), "2\\^31"),
        # x fits (2^30), but V = alpha^2 * C * P does not
        ((2, 4, 3, 1, 2**12, 1, (2**9, 2**9), (1, 1)), "Winograd-domain arrays"),
        # 3D: alpha^3 * K * P
        ((3, 2, 3, 1, 1, 2**12, (64, 64, 64), (1, 1, 1)), "2\\^31"),
    ],
)
def test_conv_desc_arrays_of_2_31_elements_raise_unsupported(args, match):
    err = _geometry_error(UnsupportedError, match, *args)
    assert err.status == "MW_STATUS_UNSUPPORTED"


def test_conv_desc_geometry_reports_sizes():
    geo = emu.ConvDesc(2, 4, 3, 2, 3, 5, (11, 8), (1, 0)).geometry(emu.FLOAT64)
    assert geo["alpha"] == 6 and geo["positions"] == 36
    assert geo["out_size"] == (11, 6) and geo["tiles"] == (3, 2) and geo["num_tiles"] == 12
    assert geo["workspace_bytes"] == 36 * (3 + 5) * 12 * 8
    # every buffer a C caller allocates: x, y, w, U, V, M, the generic kernels' matrices
    assert (geo["x_elems"], geo["y_elems"], geo["w_elems"]) == (2 * 3 * 11 * 8, 2 * 5 * 11 * 6, 5 * 3 * 9)
    assert (geo["u_elems"], geo["v_elems"], geo["m_elems"]) == (36 * 5 * 3, 36 * 3 * 12, 36 * 5 * 12)
    assert geo["matrices_elems"] == 4 * 6 + 6 * 3 + 6 * 6
    g3 = emu.ConvDesc(3, 2, 3, 1, 2, 4, (5, 6, 7), (1, 1, 1), (0, 2, 1)).geometry(emu.FLOAT32)
    assert g3["out_size"] == (4, 7, 7) and g3["w_elems"] == 4 * 2 * 27 and g3["y_elems"] == 4 * 4 * 7 * 7
    with pytest.raises(ValueError, match="in_size, padding and padding_end"):
        emu.ConvDesc(2, 4, 3, 1, 1, 1, (8,), (0, 0))


def test_conv_desc_geometry_sizes_the_sparse_formats_of_u_as_the_python_builders_do():
    # K = 20, C = 11 are off the 16 × 8 block multiples: 2 block rows, 2 block columns
    from magma_wino.sparse import BatchedBSR

    geo = emu.ConvDesc(2, 2, 3, 1, 11, 20, (6, 6), (1, 1)).geometry(emu.FLOAT32)
    U = np.random.default_rng(3).standard_normal((16, 20, 11)).astype(np.float32)  # every block kept
    csr, bsr = BatchedCSR.from_dense(U), BatchedBSR.from_dense(U)
    assert geo["csr_row_ptr_elems"] == csr.row_ptr.size == 16 * 21
    assert geo["bsr_row_ptr_elems"] == bsr.row_ptr.size == 16 * 3
    assert geo["bsr_max_blocks"] == bsr.nblocks == 16 * 2 * 2


def _small_desc():
    return emu.ConvDesc(2, 2, 3, 1, 2, 2, (6, 6), (0, 0))


def test_transforms_with_null_pointers_raise_invalid_argument_naming_them():
    d = _small_desc()
    geo = d.geometry()
    buf = np.zeros(4096, np.float32)
    p = ptr(buf)
    with pytest.raises(InvalidArgumentError, match="w and U must not be NULL"):
        emu.filter_transform(d, emu.FLOAT32, 0, p, 0, 0)
    with pytest.raises(InvalidArgumentError, match="w and U must not be NULL"):
        emu.filter_transform(d, emu.FLOAT32, p, 0, 0, 0)
    with pytest.raises(InvalidArgumentError, match="x and V must not be NULL"):
        emu.input_transform(d, emu.FLOAT32, 0, p, 0, 0, 0)
    with pytest.raises(InvalidArgumentError, match="x and V must not be NULL"):
        emu.input_transform(d, emu.FLOAT32, p, 0, 0, 0, 0)
    with pytest.raises(InvalidArgumentError, match="M and y must not be NULL"):
        emu.output_transform(d, emu.FLOAT32, 0, 0, p, 0, 0)
    with pytest.raises(InvalidArgumentError, match="M and y must not be NULL"):
        emu.output_transform(d, emu.FLOAT32, p, 0, 0, 0, 0)
    assert (buf == 0).all(), "a rejected call wrote to its output"
    assert geo["positions"] == 16


def test_products_with_null_pointers_raise_invalid_argument():
    buf = np.zeros(1024, np.float32)
    p = ptr(buf)
    rp = np.zeros(5, np.int32)
    for args in [(0, p, p), (p, 0, p), (p, p, 0)]:
        with pytest.raises(InvalidArgumentError, match="A, B and C must not be NULL"):
            emu.gemm_batched(emu.FLOAT32, 1, 2, 2, 2, *args, 0)
    with pytest.raises(InvalidArgumentError, match="row_ptr"):
        emu.spmm_batched(emu.FLOAT32, 1, 4, 4, 4, 0, p, p, 1, p, p, 0)
    with pytest.raises(InvalidArgumentError, match="col_idx, values when nnz > 0"):
        emu.spmm_batched(emu.FLOAT32, 1, 4, 4, 4, ptr(rp), 0, 0, 1, p, p, 0)
    with pytest.raises(InvalidArgumentError, match="row_ptr, B, C"):
        emu.spmm_batched(emu.FLOAT32, 1, 4, 4, 4, ptr(rp), p, p, 0, p, 0, 0)


@pytest.mark.parametrize("sizes", [(0, 2, 2, 2), (1, -1, 2, 2), (1, 2, 0, 2), (1, 2, 2, -5)])
def test_gemm_batched_nonpositive_sizes_raise_invalid_argument(sizes):
    buf = np.zeros(64, np.float32)
    with pytest.raises(InvalidArgumentError, match="batch, m, n, k must be >= 1"):
        emu.gemm_batched(emu.FLOAT32, *sizes, ptr(buf), ptr(buf), ptr(buf), 0)


def test_spmm_batched_bad_sizes_and_nnz_raise_invalid_argument():
    buf = np.zeros(64, np.float32)
    rp = np.zeros(8, np.int32)
    p = ptr(buf)
    with pytest.raises(InvalidArgumentError, match="batch, rows, cols, n must be >= 1"):
        emu.spmm_batched(emu.FLOAT32, 1, 0, 4, 4, ptr(rp), p, p, 0, p, p, 0)
    with pytest.raises(InvalidArgumentError, match="nnz"):  # more than int32 offsets address
        emu.spmm_batched(emu.FLOAT32, 1, 2, 2, 4, ptr(rp), p, p, 2**31, p, p, 0)
    with pytest.raises(InvalidArgumentError, match="nnz"):
        emu.spmm_batched(emu.FLOAT32, 1, 2, 2, 4, ptr(rp), p, p, -1, p, p, 0)


def test_bad_dtype_code_and_relu_code_raise_invalid_argument():
    d = _small_desc()
    buf = np.zeros(4096, np.float64)
    p = ptr(buf)
    with pytest.raises(InvalidArgumentError, match="dtype 2"):
        d.geometry(2)
    with pytest.raises(InvalidArgumentError, match="dtype 7"):
        emu.filter_transform(d, 7, p, p, 0, 0)
    with pytest.raises(InvalidArgumentError, match="dtype"):
        emu.gemm_batched(3, 1, 2, 2, 2, p, p, p, 0)
    with pytest.raises(InvalidArgumentError, match="dtype"):
        emu.spmm_batched(-1, 1, 2, 2, 2, p, p, p, 0, p, p, 0)
    with pytest.raises(InvalidArgumentError, match="relu must be"):
        emu.input_transform(d, emu.FLOAT64, p, p, 3, 0, 0)


@pytest.mark.parametrize("ndim,m,r", [(2, 3, 3), (2, 3, 2), (3, 6, 3), (3, 3, 3)])
def test_no_specialised_kernel_and_no_matrices_raises_unsupported(ndim, m, r):
    d = emu.ConvDesc(ndim, m, r, 1, 1, 1, (r + m,) * ndim, (0,) * ndim)
    buf = np.zeros(1 << 16, np.float32)
    p = ptr(buf)
    for call in (
        lambda: emu.filter_transform(d, emu.FLOAT32, p, p, 0, 0),
        lambda: emu.input_transform(d, emu.FLOAT32, p, p, 0, 0, 0),
        lambda: emu.output_transform(d, emu.FLOAT32, p, 0, p, 0, 0),
    ):
        with pytest.raises(UnsupportedError, match=rf"F\({m}, {r}\) in {ndim}D has no specialised kernel"):
            call()
    assert (buf == 0).all()


def test_products_of_2_31_elements_raise_unsupported():
    """Checked before anything is launched (the tiny buffers are never touched)."""
    buf = np.zeros(16, np.float32)
    p = ptr(buf)
    with pytest.raises(UnsupportedError, match="2\\^31"):
        emu.gemm_batched(emu.FLOAT32, 64, 2**13, 2**13, 1, p, p, p, 0)
    rp = np.zeros(2, np.int32)
    with pytest.raises(UnsupportedError, match="2\\^31"):
        emu.spmm_batched(emu.FLOAT32, 1, 1, 2**16, 2**16, ptr(rp), p, p, 0, p, p, 0)
    assert (buf == 0).all()


def test_transform_cases_cover_every_specialised_tile():
    spec = {(nd, m, r) for nd, m, r, g in TRANSFORM_CASES if not g}
    expected = {(2, m, r) for m, r in SPECIALISED_2D} | {(3, m, r) for m, r in SPECIALISED_3D}
    assert spec == expected
    # every generic case without a specialisation really has none
    for nd, m, r, g in TRANSFORM_CASES:
        if g and (nd, m, r) not in expected:
            assert not emu.has_specialized_transform(nd, m, r)
    assert all(isinstance(c, tuple) for c in itertools.chain(GENERIC_2D, GENERIC_3D))


# --------------------------------------------------------------------------- misaligned operands
#
# Every entry point takes any element-aligned pointer.  The products use 16-byte vector loads
# only when A and B are 16-byte aligned (and k, n multiples of the vector width); otherwise
# they must fall back to scalar loads.  The emulator fails a launch whose vector load is
# misaligned (as a GPU faults), so these tests catch a missing or wrong alignment check, which
# element-by-element reads would otherwise hide.  Shapes below take the vector path when aligned.

MISALIGNED = [(np.float32, 4), (np.float32, 8), (np.float64, 8)]
MISALIGNED_IDS = [f"{np.dtype(d).name}+{o}B" for d, o in MISALIGNED]


def offset_array(shape, dtype, offset_bytes: int, fill=np.nan) -> np.ndarray:
    """A C-contiguous array whose data start ``offset_bytes`` past a 64-byte boundary."""
    dtype = np.dtype(dtype)
    assert offset_bytes % dtype.itemsize == 0
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + offset_bytes + 64, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset_bytes
    a = raw[start:start + nbytes].view(dtype).reshape(shape)
    a[...] = fill
    assert a.ctypes.data % 64 == offset_bytes and a.flags["C_CONTIGUOUS"]
    return a


def offset_copy(a: np.ndarray | None, offset_bytes: int) -> np.ndarray | None:
    if a is None:
        return None
    return offset_array(a.shape, a.dtype, offset_bytes, a)


def _run_transforms(case, dtype, arrays, relu=2):
    """Filter, input and output transform of one small layer on the given arrays (in place)."""
    ndim, m, r, _ = case
    N, C, K = 2, 3, 4
    pads = pads_for(ndim, r)
    size = in_sizes(ndim, m, r, pads)
    dt = DT_CODE[np.dtype(dtype)]
    a = arrays
    emu.filter_transform(emu.ConvDesc(ndim, m, r, 1, C, K, (r,) * ndim, (0,) * ndim), dt,
                         ptr(a["w"]), ptr(a["U"]), ptr(a["mats"]), 0)
    desc = emu.ConvDesc(ndim, m, r, N, C, K, size, pads)
    emu.input_transform(desc, dt, ptr(a["x"]), ptr(a["V"]), relu, ptr(a["mats"]), 0)
    emu.output_transform(desc, dt, ptr(a["M"]), ptr(a["bias"]), ptr(a["y"]), ptr(a["mats"]), 0)


@pytest.mark.parametrize("dtype,offset", MISALIGNED, ids=MISALIGNED_IDS)
@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=_case_id)
def test_transforms_on_misaligned_arrays_equal_aligned_bitwise(case, dtype, offset, rng):
    ndim, m, r, generic = case
    N, C, K = 2, 3, 4
    pads = pads_for(ndim, r)
    size = in_sizes(ndim, m, r, pads)
    geo = emu.ConvDesc(ndim, m, r, N, C, K, size, pads).geometry(DT_CODE[np.dtype(dtype)])
    pos, P = geo["positions"], geo["num_tiles"]
    aligned = {
        "w": rng.standard_normal((K, C) + (r,) * ndim).astype(dtype),
        "x": rng.standard_normal((N, C) + size).astype(dtype),
        "M": rng.standard_normal((pos, K, P)).astype(dtype),
        "bias": rng.standard_normal(K).astype(dtype),
        "mats": mats_for(m, r, dtype) if generic else None,
        "U": nan_array((pos, K, C), dtype),
        "V": nan_array((pos, C, P), dtype),
        "y": nan_array((N, K) + geo["out_size"], dtype),
    }
    shifted = {name: offset_copy(a, offset) for name, a in aligned.items()}
    _run_transforms(case, dtype, aligned)
    _run_transforms(case, dtype, shifted)
    for name in ("U", "V", "y"):
        assert not np.isnan(shifted[name]).any(), f"{_case_id(case)}: {name} has unwritten elements"
        assert np.array_equal(shifted[name], aligned[name]), (
            f"{_case_id(case)} {np.dtype(dtype).name}: {name} on arrays offset by {offset} bytes "
            f"differs from the aligned run"
        )


# (m, n, k) per GEMM configuration (64x64, 32x64, 16x32), k and n multiples of 4.
MISALIGNED_GEMM_SHAPES = [(65, 68, 20), (40, 64, 16), (17, 36, 8)]


@pytest.mark.parametrize("operands", ["A", "B", "C", "ABC"])
@pytest.mark.parametrize("dtype,offset", MISALIGNED, ids=MISALIGNED_IDS)
@pytest.mark.parametrize("m,n,k", MISALIGNED_GEMM_SHAPES, ids=lambda v: str(v))
def test_gemm_batched_exact_on_misaligned_operands(m, n, k, dtype, offset, operands, rng):
    batch = 3
    A = int_array(rng, (batch, m, k), dtype)
    B = int_array(rng, (batch, k, n), dtype)
    C = nan_array((batch, m, n), dtype)
    A, B, C = (offset_copy(a, offset) if name in operands else a for name, a in zip("ABC", (A, B, C)))
    emu.gemm_batched(DT_CODE[np.dtype(dtype)], batch, m, n, k, ptr(A), ptr(B), ptr(C), 0)
    ref = np.matmul(A.astype(np.float64), B.astype(np.float64))
    assert np.array_equal(C, ref), (
        f"gemm_batched {np.dtype(dtype).name} m={m} n={n} k={k} (config {gemm_config(m, n)}) with "
        f"{operands} offset by {offset} bytes: {int((C != ref).sum())} of {C.size} differ"
    )


@pytest.mark.parametrize("dtype,offset", MISALIGNED, ids=MISALIGNED_IDS)
@pytest.mark.parametrize("n", [40, 200], ids=["narrow", "wide"])
def test_spmm_batched_exact_on_misaligned_operands(n, dtype, offset, rng):
    batch, rows, cols = 3, 37, 24
    csr = random_csr(rng, batch, rows, cols, 0.4, dtype)
    B = offset_copy(int_array(rng, (batch, cols, n), dtype), offset)
    C = offset_array((batch, rows, n), dtype, offset)
    rp = offset_copy(np.ascontiguousarray(csr.row_ptr, np.int32), 4)
    ci = offset_copy(np.ascontiguousarray(csr.col_idx, np.int32), 4)
    vals = offset_copy(np.ascontiguousarray(csr.values, dtype), offset)
    emu.spmm_batched(DT_CODE[np.dtype(dtype)], batch, rows, cols, n, ptr(rp), ptr(ci), ptr(vals),
                     csr.nnz, ptr(B), ptr(C), 0)
    ref = np.matmul(csr.to_dense().astype(np.float64), B.astype(np.float64))
    assert np.array_equal(C, ref), f"spmm_batched n={n} on operands offset by {offset} bytes"


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype,offset", MISALIGNED, ids=MISALIGNED_IDS)
def test_plan_phases_on_misaligned_views_equal_aligned_bitwise(dtype, offset, sparse, rng):
    """The plan API on backend="emulator" hands user arrays to the kernels as they are: x, w,
    bias, V, M and out as offset views (C = 8, K = 12, P = 16: the dense product would take
    the vector path if they were aligned)."""
    from magma_wino import WinogradConv2d

    N, C, K, H = 1, 8, 12, 16
    x = rng.standard_normal((N, C, H, H)).astype(dtype)
    w = rng.standard_normal((K, C, 3, 3)).astype(dtype)
    bias = rng.standard_normal(K).astype(dtype)

    def plan_for(w, bias):
        if not sparse:
            return WinogradConv2d(w, bias, padding=1, m=4, backend="emulator")
        dense = WinogradConv2d(w, bias, padding=1, m=4, backend="emulator")
        return WinogradConv2d.from_winograd(np.asarray(dense.U), r=3, prune=0.3, bias=bias,
                                            padding=1, m=4, backend="emulator", sparse=True)

    ref_plan = plan_for(w, bias)
    y_ref = ref_plan(x)
    plan = plan_for(offset_copy(w, offset), offset_copy(bias, offset))
    assert plan.uses_sparse_product == sparse
    out = offset_array(y_ref.shape, dtype, offset)
    assert plan(offset_copy(x, offset), out=out) is out
    assert np.array_equal(out, y_ref), "plan(x) on offset views differs from the aligned run"
    V = plan.transform_input(offset_copy(x, offset))
    M = offset_array((36, K, V.shape[2]), dtype, offset)
    assert plan.multiply(offset_copy(V, offset), out=M) is M
    y = plan.transform_output(offset_copy(M, offset), x.shape, out=offset_array(y_ref.shape, dtype, offset))
    assert np.array_equal(y, y_ref), "the phases on offset views differ from the aligned run"


# --------------------------------------------------------------------------- grid chunks
#
# CUDA limits grid.y and grid.z to 65,535: the product launchers cut the batch (z) and the
# row blocks (y) into chunks and pass the chunk's offset.  Tiny matrices make a second chunk
# cheap on the emulator (~1 s each); every entry is checked exactly (C pre-filled with NaN).

GRID_YZ = 65535


def _check_every_entry(C: np.ndarray, ref: np.ndarray, label: str) -> None:
    bad = np.flatnonzero(~(C == ref).reshape(C.shape[0], -1).all(axis=1))
    assert bad.size == 0, (
        f"{label}: {bad.size} of {C.shape[0]} entries wrong (first {bad[:5].tolist()}, "
        f"NaN = unwritten: {int(np.isnan(C).sum())})"
    )


def _check_rows(C: np.ndarray, ref: np.ndarray, block_rows: int, label: str) -> None:
    bad = np.flatnonzero(~(C[0] == ref[0]).all(axis=1))
    assert bad.size == 0, (
        f"{label}: {bad.size} of {C.shape[1]} rows wrong (first in row block "
        f"{bad[0] // block_rows} of {-(-C.shape[1] // block_rows)}; NaN = unwritten: "
        f"{int(np.isnan(C).sum())})"
    )


def test_gemm_batched_exact_in_the_second_batch_chunk(emu_defaults, rng):
    batch, m, n, k = GRID_YZ + 2, 2, 3, 2
    A = int_array(rng, (batch, m, k), np.float32)
    B = int_array(rng, (batch, k, n), np.float32)
    C = nan_array((batch, m, n), np.float32)
    emu.gemm_batched(emu.FLOAT32, batch, m, n, k, ptr(A), ptr(B), ptr(C), 0)
    _check_every_entry(C, np.matmul(A, B), f"gemm_batched batch={batch} m={m} n={n} k={k}")


def test_gemm_batched_exact_in_the_second_row_block_chunk(emu_defaults, rng):
    bm = GEMM_BLK[gemm_config(10**7, 3)][0]
    m, n, k = bm * GRID_YZ + bm + 1, 3, 2  # 65,537 row blocks of the 16x32 configuration
    A = int_array(rng, (1, m, k), np.float32)
    B = int_array(rng, (1, k, n), np.float32)
    C = nan_array((1, m, n), np.float32)
    emu.gemm_batched(emu.FLOAT32, 1, m, n, k, ptr(A), ptr(B), ptr(C), 0)
    _check_rows(C, np.matmul(A, B), bm, f"gemm_batched m={m} n={n} k={k}")


def _dense_csr(U: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched CSR arrays (row_ptr batch x (rows+1), col_idx, values) of a dense stack, fast
    for a large batch."""
    batch, rows, _ = U.shape
    counts = (U != 0).sum(axis=2).ravel()
    flat = np.concatenate([[0], np.cumsum(counts)])
    row_ptr = flat[np.arange(batch)[:, None] * rows + np.arange(rows + 1)[None, :]]
    col_idx = np.nonzero(U)[2]
    return row_ptr.astype(np.int32), col_idx.astype(np.int32), np.ascontiguousarray(U[U != 0])


def _spmm_dense(U: np.ndarray, B: np.ndarray) -> np.ndarray:
    batch, rows, cols = U.shape
    n = B.shape[2]
    rp, ci, vals = _dense_csr(U)
    C = nan_array((batch, rows, n), U.dtype)
    emu.spmm_batched(DT_CODE[np.dtype(U.dtype)], batch, rows, cols, n, ptr(rp), ptr(ci), ptr(vals),
                     vals.size, ptr(B), ptr(C), 0)
    return C


def test_spmm_batched_exact_in_the_second_batch_chunk(emu_defaults, rng):
    batch, rows, cols, n = GRID_YZ + 2, 2, 3, 2
    U = np.where(rng.random((batch, rows, cols)) < 0.6, int_array(rng, (batch, rows, cols), np.float32), 0)
    B = int_array(rng, (batch, cols, n), np.float32)
    _check_every_entry(_spmm_dense(U.astype(np.float32), B), np.matmul(U, B),
                       f"spmm_batched batch={batch} rows={rows}")


def test_spmm_batched_exact_in_the_second_row_block_chunk(emu_defaults, rng):
    bm = SPMM_BLK[spmm_config(2, np.float32)][0]
    rows, cols, n = bm * GRID_YZ + bm + 1, 3, 2  # 65,537 row blocks of the narrow configuration
    U = np.where(rng.random((1, rows, cols)) < 0.6, int_array(rng, (1, rows, cols), np.float32), 0)
    B = int_array(rng, (1, cols, n), np.float32)
    _check_rows(_spmm_dense(U.astype(np.float32), B), np.matmul(U, B), bm, f"spmm_batched rows={rows}")


# --------------------------------------------------------------------------- nnz near 2^31


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("rows,n,window", [(40, 40, 700), (40, 200, 700), (3, 40, 1300), (3, 200, 1300)])
def test_spmm_batched_exact_with_nonzero_offsets_ending_at_int_max(rows, n, window, dtype, rng):
    """nnz = INT_MAX without 2^31 elements of memory: the CSR offsets of two matrices cover
    [INT_MAX − window, INT_MAX), and col_idx / values are passed as base pointers that many
    elements before small real arrays (pointers are plain integers here, never dereferenced
    outside the window).  The chunk loop of the last row block runs into INT_MAX: a 32-bit
    chunk start overflows there."""
    int_max = 2**31 - 1
    batch, cols = 2, 9
    start = int_max - window
    local = (window * np.arange(batch * rows + 1)) // (batch * rows)  # row boundaries
    row_ptr = np.stack([local[b * rows: (b + 1) * rows + 1] for b in range(batch)]) + start
    _, _, chunk = SPMM_BLK[spmm_config(n, dtype)]
    bm = SPMM_BLK[spmm_config(n, dtype)][0]
    last_block = int_max - row_ptr[-1, (rows - 1) // bm * bm]
    assert last_block % chunk != 0, "the last block's nonzeros must not fill whole chunks"
    col_idx = rng.integers(0, cols, size=window).astype(np.int32)
    values = (rng.integers(1, 5, size=window) * rng.choice([-1, 1], size=window)).astype(dtype)
    B = int_array(rng, (batch, cols, n), dtype)
    C = nan_array((batch, rows, n), dtype)
    ci_base = ptr(col_idx) - start * col_idx.itemsize
    vals_base = ptr(values) - start * values.itemsize
    assert ci_base > 0 and vals_base > 0
    rp = np.ascontiguousarray(row_ptr, np.int32)
    emu.spmm_batched(DT_CODE[np.dtype(dtype)], batch, rows, cols, n, ptr(rp), ci_base, vals_base,
                     int_max, ptr(B), ptr(C), 0)
    U = np.zeros((batch, rows, cols))
    entry_row = np.repeat(np.arange(batch * rows), np.diff(local))
    np.add.at(U.reshape(batch * rows, cols), (entry_row, col_idx), values)
    ref = np.matmul(U, B.astype(np.float64))
    assert np.array_equal(C, ref), (
        f"spmm_batched nnz=INT_MAX rows={rows} n={n} window={window}: "
        f"{int((C != ref).sum())} of {C.size} differ (NaN: {int(np.isnan(C).sum())})"
    )


# --------------------------------------------------------------------------- fp64 accuracy


def gamma(k: int, dtype) -> float:
    """γ_k = k·u / (1 − k·u): |fl(Σ x_i y_i) − Σ x_i y_i| ≤ γ_k Σ|x_i y_i| for a dot product of
    length k in any order, with or without FMA (Higham, Accuracy and Stability, §3.1)."""
    u = float(np.finfo(np.dtype(dtype)).eps) / 2
    return k * u / (1 - k * u)


def _products_error_ratio(C: np.ndarray, A: np.ndarray, B: np.ndarray) -> float:
    """max |C − A·B| / (γ_k (|A|·|B|)), with A·B in extended precision (long double)."""
    exact = np.matmul(A.astype(np.longdouble), B.astype(np.longdouble))
    scale = np.matmul(np.abs(A), np.abs(B)) * gamma(A.shape[2], np.float64)
    return float((np.abs(C.astype(np.longdouble) - exact) / scale).max())


@pytest.mark.parametrize("m,n,k", [(65, 68, 300), (17, 33, 301)], ids=lambda v: str(v))
def test_gemm_batched_fp64_on_non_integer_data_is_fp64_accurate(m, n, k, rng):
    """Integer data are exact in any accumulator wider than 24 bits, so the exact tests cannot
    tell a float32 accumulator in the fp64 path.  Standard normal data: every entry must be
    within the worst-case float64 bound γ_k·(|A|·|B|)[i, j] (measured: ~0.01 of it); a
    float32 accumulator is ~6·10^6 times over (tools/mutation_test.py)."""
    batch = 3
    A = rng.standard_normal((batch, m, k))
    B = rng.standard_normal((batch, k, n))
    C = nan_array((batch, m, n), np.float64)
    emu.gemm_batched(emu.FLOAT64, batch, m, n, k, ptr(A), ptr(B), ptr(C), 0)
    ratio = _products_error_ratio(C, A, B)
    assert ratio <= 1.0, f"gemm_batched float64 m={m} n={n} k={k}: error / γ_k bound = {ratio:.3g}"


@pytest.mark.parametrize("n", [40, 200], ids=["narrow", "wide"])
def test_spmm_batched_fp64_on_non_integer_data_is_fp64_accurate(n, rng):
    batch, rows, cols = 2, 33, 300
    mask = rng.random((batch, rows, cols)) < 0.9
    U = np.where(mask, rng.standard_normal((batch, rows, cols)), 0.0)
    B = rng.standard_normal((batch, cols, n))
    C = _spmm_dense(U, B)
    ratio = _products_error_ratio(C, U, B)
    assert ratio <= 1.0, f"spmm_batched float64 n={n}: error / γ_k bound = {ratio:.3g}"
