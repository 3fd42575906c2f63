"""The CSR kernel (kernels/spmm_batched.cuh) on the emulator, path by path.

Every path the launcher can pick computes the same sums per row in the same order, so the paths
are compared bitwise with each other: 32-bit vs 64-bit offsets (``SPMM_OFFSETS64``), and the
full-tile fast path vs the guarded edge path (sizes off the tile multiples).  Against NumPy:
float64 reference, tolerance of the dtype for the reduction length.  Corrupt CSR arrays (column
indices outside [0, cols), row pointers outside [0, nnz] or decreasing) give wrong numbers,
never a crash or an unwritten output.
"""

from __future__ import annotations

import numpy as np
import pytest

import magma_wino._emu as emu
from magma_wino.sparse import BatchedCSR

DTYPES = [np.float32, np.float64]
DT_CODE = {np.dtype(np.float32): emu.FLOAT32, np.dtype(np.float64): emu.FLOAT64}
#: kernels/spmm_batched.cuh: (BLK_M, BLK_N) of the wide tiles (float32, float64) and the narrow one
WIDE = {np.dtype(np.float32): (32, 128), np.dtype(np.float64): (32, 64)}
NARROW = (16, 32)


def _ptr(a: np.ndarray | None) -> int:
    if a is None:
        return 0
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def spmm(row_ptr, col_idx, values, shape, B, *, flags: int = 0, nnz: int | None = None) -> np.ndarray:
    """C = A_csr · B by the kernel (C pre-filled with NaN: an unwritten element shows)."""
    batch, rows, cols = shape
    n = B.shape[2]
    rp = np.ascontiguousarray(row_ptr, np.int32)
    ci = np.ascontiguousarray(col_idx, np.int32)
    vals = np.ascontiguousarray(values, B.dtype)
    C = np.full((batch, rows, n), np.nan, B.dtype)
    emu.spmm_batched(DT_CODE[B.dtype], batch, rows, cols, n, _ptr(rp), _ptr(ci), _ptr(vals),
                     int(ci.size if nnz is None else nnz), _ptr(B), _ptr(C), 0, 0, flags)
    return C


def run(csr: BatchedCSR, B: np.ndarray, **kw) -> np.ndarray:
    return spmm(csr.row_ptr, csr.col_idx, csr.values, csr.shape, B, **kw)


def random_csr(rng, shape, density, dtype, counts=None) -> BatchedCSR:
    """Random values in [-1, 1) at a density, or with exactly ``counts[b, i]`` entries per row."""
    batch, rows, cols = shape
    if counts is None:
        mask = rng.random(shape) < density
    else:
        mask = np.zeros(shape, bool)
        for b in range(batch):
            for i in range(rows):
                mask[b, i, rng.choice(cols, size=int(counts[b, i]), replace=False)] = True
    U = np.where(mask, rng.uniform(-1, 1, shape), 0).astype(dtype)
    return BatchedCSR.from_dense(U, mask)


def assert_close(C: np.ndarray, csr: BatchedCSR, B: np.ndarray, label: str) -> None:
    """|C - A·B| <= gamma_k · |A|·|B| (k = the longest row, u = the dtype's unit roundoff)."""
    A = csr.to_dense().astype(np.float64)
    ref = A @ B.astype(np.float64)
    bound = np.abs(A) @ np.abs(B.astype(np.float64))
    k = int(csr.row_nnz().max(initial=0))
    u = np.finfo(B.dtype).eps / 2
    tol = (k * u / (1 - k * u)) * bound + np.finfo(B.dtype).tiny
    assert not np.isnan(C).any(), f"{label}: {int(np.isnan(C).sum())} elements of C unwritten"
    err = np.abs(C - ref)
    assert (err <= tol).all(), f"{label}: max error {err.max():.3g}, {int((err > tol).sum())} over the bound"


def size_cases():
    """(dtype, rows, n): n off the vector width (n % 4 != 0), n = 1, n on and off the tile's
    BLK_N, rows off BLK_M; both the wide and the narrow configuration."""
    cases = []
    for dt in DTYPES:
        bm, bn = WIDE[np.dtype(dt)]
        nm, nn = NARROW
        for rows, n in [(1, 1), (nm + 1, 3), (nm - 1, nn), (bm + 3, nn + 5), (bm - 1, bn), (bm + 1, bn + 2),
                        (2 * bm + 5, 2 * bn + 4), (bm, 3 * bn - 1), (7, 2 * bn)]:
            cases.append((dt, rows, n))
    return cases


@pytest.mark.parametrize("dtype,rows,n", size_cases(), ids=lambda v: np.dtype(v).name if isinstance(v, type) else str(v))
def test_sizes_off_the_tile_multiples_match_numpy(dtype, rows, n, rng):
    csr = random_csr(rng, (3, rows, 37), 0.3, dtype)
    B = rng.uniform(-1, 1, (3, 37, n)).astype(dtype)
    C = run(csr, B)
    assert_close(C, csr, B, f"rows={rows} n={n}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [1, 5, 64, 130, 256])
def test_32_and_64_bit_offsets_give_bitwise_the_same_c(dtype, n, rng):
    """The launcher's 32-bit path (pre-scaled column offsets) and the 64-bit one it takes when
    batch*cols*n or batch*rows*n exceeds int32 (forced here) add the same terms in the same order."""
    csr = random_csr(rng, (4, 45, 70), 0.25, dtype)
    B = rng.uniform(-1, 1, (4, 70, n)).astype(dtype)
    C32 = run(csr, B)
    C64 = run(csr, B, flags=emu.SPMM_OFFSETS64)
    assert np.array_equal(C32, C64)
    assert_close(C32, csr, B, f"n={n}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_empty_and_very_unbalanced_rows(dtype, rng):
    batch, rows, cols, n = 3, 70, 600, 132
    counts = np.zeros((batch, rows), np.int64)
    counts[0, 3] = cols                      # one full row (several nonzero chunks) among empty ones
    counts[1, ::9] = 1
    counts[1, -1] = cols - 3                 # the last row of the last block nearly full
    counts[2] = rng.integers(0, 4, size=rows)
    counts[2, 40] = cols // 2
    csr = random_csr(rng, (batch, rows, cols), 0, dtype, counts)
    B = rng.uniform(-1, 1, (batch, cols, n)).astype(dtype)
    C = run(csr, B)
    assert_close(C, csr, B, "unbalanced rows")
    assert np.array_equal(C[0, :3], np.zeros((3, n), dtype)), "empty rows must be written as zeros"
    assert np.array_equal(C, run(csr, B, flags=emu.SPMM_OFFSETS64))


def test_float32_accumulates_in_float32_not_float64(rng):
    """A check of the check: the float32 kernel's error is above float64's roundoff (so the
    tolerance above is the float32 one for a reason) and within the float32 bound."""
    csr = random_csr(rng, (1, 8, 512), 0.9, np.float32)
    B = rng.uniform(-1, 1, (1, 512, 96)).astype(np.float32)
    C = run(csr, B)
    ref = csr.to_dense().astype(np.float64) @ B.astype(np.float64)
    assert np.abs(C - ref).max() > 1e-9
    assert_close(C, csr, B, "float32 sums")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("flags", [0, 1], ids=["offsets32", "offsets64"])
def test_corrupt_column_indices_add_nothing_and_never_read_out_of_bounds(dtype, flags, rng):
    """Columns outside [0, cols) (negative, cols, INT32 extremes) are clamped into range for the
    address and their value replaced by 0, branch-free: the other entries' sums are exact."""
    batch, rows, cols, n = 2, 20, 9, 132
    csr = random_csr(rng, (batch, rows, cols), 0.5, dtype)
    ci = csr.col_idx.copy()
    bad = np.arange(0, csr.nnz, 3)
    ci[bad] = np.resize(np.array([-1, cols, -(2**31), 2**31 - 1, cols + 100], np.int32), bad.size)
    B = rng.uniform(-1, 1, (batch, cols, n)).astype(dtype)
    C = spmm(csr.row_ptr, ci, csr.values, csr.shape, B, flags=flags)
    kept = np.ones(csr.nnz, bool)
    kept[bad] = False
    vals = np.where(kept, csr.values, 0).astype(dtype)
    good = BatchedCSR(csr.row_ptr, np.where(kept, ci, 0).astype(np.int32), vals, csr.shape)
    assert np.array_equal(C, run(good, B, flags=flags))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("flags", [0, 1], ids=["offsets32", "offsets64"])
def test_corrupt_row_pointers_give_finite_numbers_and_a_full_c(dtype, flags, rng):
    """row_ptr entries negative, past nnz, decreasing: every row range is clamped into [0, nnz]
    and into its block's range; wrong numbers are allowed, an unwritten or non-finite C is not."""
    batch, rows, cols, n = 3, 40, 11, 70
    csr = random_csr(rng, (batch, rows, cols), 0.4, dtype)
    rp = csr.row_ptr.copy()
    rp.reshape(-1)[::5] = -1000
    rp.reshape(-1)[2::7] = csr.nnz + 1000
    rp[1, 10:20] = rp[1, 10:20][::-1]
    rp[2, -1] = 2**31 - 1
    B = rng.uniform(-1, 1, (batch, cols, n)).astype(dtype)
    C = spmm(rp, csr.col_idx, csr.values, csr.shape, B, flags=flags)
    assert np.isfinite(C).all()
    # a row range past nnz must not let the kernel read past the arrays: nnz itself bounds them
    C2 = spmm(rp, csr.col_idx, csr.values, csr.shape, B, flags=flags, nnz=csr.nnz // 2)
    assert np.isfinite(C2).all()


def test_unknown_flags_are_rejected_by_name():
    from magma_wino.errors import InvalidArgumentError

    rp = np.zeros(5, np.int32)
    B = np.zeros((1, 4, 4), np.float32)
    C = np.zeros((1, 4, 4), np.float32)
    with pytest.raises(InvalidArgumentError, match="flags"):
        emu.spmm_batched(emu.FLOAT32, 1, 4, 4, 4, _ptr(rp), 0, 0, 0, _ptr(B), _ptr(C), 0, 0, 8)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [4, 128, 132, 260, 64, 68])
def test_vector_and_element_loads_give_bitwise_the_same_c(dtype, n, rng):
    """n % 4 == 0 with 16-byte aligned B and C: the wide tile loads B in float4 / double2
    vectors; SPMM_SCALAR forces element loads; B or C one element off 16 bytes falls back to
    element loads by itself (the emulator would report a misaligned vector access)."""
    batch, rows, cols = 3, 37, 50
    csr = random_csr(rng, (batch, rows, cols), 0.3, dtype)
    B = rng.uniform(-1, 1, (batch, cols, n)).astype(dtype)
    C_vec = run(csr, B)
    assert np.array_equal(C_vec, run(csr, B, flags=emu.SPMM_SCALAR))
    assert np.array_equal(C_vec, run(csr, B, flags=emu.SPMM_SCALAR | emu.SPMM_OFFSETS64))
    assert_close(C_vec, csr, B, f"n={n}")
    # B and C one element past a 16-byte boundary
    buf = np.zeros(B.size + 1, dtype)
    B_off = buf[1:].reshape(B.shape)
    B_off[...] = B
    assert B_off.ctypes.data % 16 != 0
    cbuf = np.full(batch * rows * n + 1, np.nan, dtype)
    C_off = cbuf[1:].reshape(batch, rows, n)
    rp, ci, vals = csr.row_ptr, csr.col_idx, csr.values
    emu.spmm_batched(DT_CODE[np.dtype(dtype)], batch, rows, cols, n, _ptr(rp), _ptr(ci), _ptr(vals), csr.nnz,
                     B_off.ctypes.data, C_off.ctypes.data, 0, 0, 0)
    assert np.array_equal(C_off, C_vec)


def _reordered(csr: BatchedCSR, B: np.ndarray, order: np.ndarray, flags: int = 0) -> np.ndarray:
    batch, rows, cols = csr.shape
    n = B.shape[2]
    order = np.ascontiguousarray(order, np.int32)
    C = np.full((batch, rows, n), np.nan, B.dtype)
    emu.spmm_batched(DT_CODE[B.dtype], batch, rows, cols, n, _ptr(csr.row_ptr), _ptr(csr.col_idx),
                     _ptr(csr.values), csr.nnz, _ptr(B), _ptr(C), 0, _ptr(order), flags)
    return C


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [1, 37, 64, 132])
@pytest.mark.parametrize("flags", [0, 1, 2], ids=["default", "offsets64", "scalar"])
def test_reordered_rows_give_bitwise_the_identity_result(dtype, n, flags, rng):
    """The permuted path (warp-private staging of each row) sums every row in CSR order, as the
    identity path does: bitwise the same C for the load-balancing order, a random permutation
    and the identity given explicitly; long rows take several staging rounds of 32 entries."""
    batch, rows, cols = 3, 45, 300
    counts = rng.integers(0, 12, size=(batch, rows))
    counts[0, 7] = 290                    # many rounds of 32
    counts[1, ::5] = 0
    counts[2, -1] = 33
    csr = random_csr(rng, (batch, rows, cols), 0, dtype, counts)
    B = rng.uniform(-1, 1, (batch, cols, n)).astype(dtype)
    C = run(csr, B, flags=flags)
    assert_close(C, csr, B, "identity")
    for order in (csr.row_order(), np.stack([rng.permutation(rows) for _ in range(batch)]),
                  np.tile(np.arange(rows), (batch, 1))):
        assert np.array_equal(_reordered(csr, B, order, flags), C)


def test_row_order_is_sorted_by_nnz_and_dealt_evenly_to_warps(rng):
    counts = rng.integers(0, 50, size=(2, 70))
    csr = random_csr(rng, (2, 70, 64), 0, np.float32, counts)
    order = csr.row_order()
    assert order.dtype == np.int32 and order.shape == (2, 70) and order.flags["C_CONTIGUOUS"]
    assert csr.row_order() is order, "computed once, cached"
    for b in range(2):
        assert sorted(order[b]) == list(range(70)), "a permutation of the rows"
        nnz = counts[b][order[b]]
        # blocks of 32 slots (the wide tile) hold rows of descending length
        assert nnz[:32].min() >= nnz[32:64].max()
        # the 8 warps of the first block: slots w, w + 8, w + 16, w + 24 -> equal rank sums
        ranks = np.argsort(np.argsort(-counts[b], kind="stable"), kind="stable")[order[b]]
        sums = [int(ranks[w:32:8].sum()) for w in range(8)]
        assert len(set(sums)) == 1, sums
        sums4 = [int(ranks[w:16:4].sum()) for w in range(4)]  # the narrow tile's 4 warps
        assert len(set(sums4)) == 1, sums4


def test_deal_rows_rejects_bad_arguments():
    from magma_wino.sparse import deal_rows

    with pytest.raises(ValueError, match="counts"):
        deal_rows(np.zeros(5))
    with pytest.raises(ValueError, match="group"):
        deal_rows(np.zeros((1, 5)), group=3)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_corrupt_row_order_and_row_pointers_never_crash_the_permuted_path(dtype, rng):
    batch, rows, cols, n = 2, 40, 9, 68
    csr = random_csr(rng, (batch, rows, cols), 0.4, dtype)
    B = rng.uniform(-1, 1, (batch, cols, n)).astype(dtype)
    order = np.stack([rng.permutation(rows) for _ in range(batch)]).astype(np.int32)
    order[0, ::3] = -7
    order[1, ::4] = rows + 100
    C = _reordered(csr, B, order)
    assert np.isfinite(C[~np.isnan(C)]).all()
    rp = csr.row_ptr.copy()
    rp.reshape(-1)[::4] = -1000
    rp.reshape(-1)[1::6] = 2**31 - 1
    ci = csr.col_idx.copy()
    ci[::2] = -(2**31)
    Cn = np.full((batch, rows, n), np.nan, dtype)
    emu.spmm_batched(DT_CODE[np.dtype(dtype)], batch, rows, cols, n, _ptr(rp), _ptr(ci), _ptr(csr.values),
                     csr.nnz, _ptr(B), _ptr(Cn), 0, _ptr(csr.row_order()), 0)
    assert np.isfinite(Cn).all(), "a valid permutation writes every row"


def test_perfmodel_reads_the_layer_path_of_a_kernel_report(tmp_path):
    """load_sass takes the SpMM row of the path a layer runs (wide tile, 16-byte vectors, 32-bit
    offsets, row order), not the other instantiations of the same tile; old reports (no flags)
    still read."""
    import json

    from magma_wino import perfmodel as pm

    def row(kernel, ffma):
        return {"arch": "90", "kernel": kernel, "sass": {"scope": "loop", "mix": {"FFMA": ffma, "other": 10}}}

    wide = "spmm_batched_kernel<float, 32, 8, 32, 128, 512"
    rows = [row(f"{wide}, 4, true, true>", 64), row(f"{wide}, 1, true, true>", 1), row(f"{wide}, 4, false, true>", 2),
            row(f"{wide}, 4, true, false>", 3), row("spmm_batched_kernel<float, 32, 4, 16, 32, 256, 1, true, true>", 4),
            row("spmm_batched_kernel<double, 32, 8, 32, 64, 256, 2, true, true>", 5)]
    path = tmp_path / "kr.json"
    path.write_text(json.dumps(rows))
    sass = pm.load_sass(path)
    assert sass[("spmm", "float32")]["FFMA"] == 64 and sass[("spmm", "float64")]["FFMA"] == 5
    path.write_text(json.dumps([row(f"{wide}>", 16)]))
    assert pm.load_sass(path)[("spmm", "float32")]["FFMA"] == 16
