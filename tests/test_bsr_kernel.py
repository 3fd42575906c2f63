"""The block-sparse tensor-core kernel (kernels/bsr_tc_batched.cuh, ``mw_bsr_batched``) on the
emulator, through the extension with raw pointers.

The format: per position b a rows x cols matrix in bm x 8 blocks (bm = 16 or 32: every test runs
both block heights, the kernel's two configurations), row_ptr (batch, R + 1) global offsets
chained across positions, col_idx (nblocks,), values (nblocks, bm, 8) in the operand type
of the precision; B (batch, cols, n) operand type, C (batch, rows, n) float32 (float64 for fp64).
The packing helper here (dense U + block mask -> arrays) is the test's own.

* Exact on small integers in every precision (exact in TF32, binary16 and bfloat16, products and
  partial sums < 2^24) over edge shapes: rows off 16 and 32, cols off 8, n off the 64-column tile, n = 1,
  empty block rows, an empty position, density 1, one position of many, blocks in reverse column
  order, the element-copy path (operands one element off 16 bytes).
* Random data against the float64 product of the masked U, element-wise within the bound
  tests/test_kernels_tc.py derives for the precision, with the reduction length of each block row
  = its kept blocks x 8; tf32x3 at least 100x more accurate than tf32.
* Bitwise the dense gemm_tc product on the masked dense U where the k order is the same: tf32,
  tf32x3 and fp64 (the dense k steps of 8 / 4 lie within one block; the ones over dropped blocks
  add exact zeros) with col_idx ascending; fp16 / bf16 only for masks whose kept blocks come in
  aligned pairs (2i, 2i + 1): the dense m16n16k16 step pairs block columns that way, the kernel
  pairs consecutive list entries (other masks: within the bound, not bitwise).
* C pre-filled with NaN (an unwritten element shows) inside a sentinel buffer (a write outside C
  shows); corrupt structures (block columns outside the range, row pointers negative, past
  nblocks, decreasing) with the operands between NaN guards: wrong numbers allowed, reads outside
  the arrays or an unwritten C are not; bad arguments give the status with a message.
* Bitwise the same under the emulator's permuted fragments and random early completion of the
  asynchronous copies (a subprocess).
Not tested: the grid chunks past 65535 block rows / positions (as test_kernels_tc.py: too slow
emulated; the loop is gemm_tc_launch's).
"""

from __future__ import annotations

import numpy as np
import pytest
from emu_subprocess import results_under_env
from test_kernels_tc import (
    U_F32,
    U_F64,
    bf16_bits,
    bf16_value,
    gamma,
    tf32_bound,
    tf32x3_bound,
)

import magma_wino._emu as emu
from magma_wino.errors import InvalidArgumentError, UnsupportedError

BK = 8  # the block columns of the format
BMS = (16, 32)  # the block heights the kernel runs
TILE_N = 64  # kN of the BsrTc configurations (kernels/bsr_tc_batched.cuh)
PRECISION = {"tf32": emu.PRECISION_TF32, "tf32x3": emu.PRECISION_TF32X3, "fp16": emu.PRECISION_FP16,
             "bf16": emu.PRECISION_BF16, "fp64": emu.PRECISION_FP64}
ALL = list(PRECISION)


def _ptr(a: np.ndarray | None) -> int:
    if a is None:
        return 0
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def operand(precision: str, x: np.ndarray) -> np.ndarray:
    """float data in the precision's operand encoding (16-bit: rounded to nearest even)."""
    if precision == "fp64":
        return np.asarray(x, np.float64)
    if precision == "fp16":
        return np.asarray(x, np.float32).astype(np.float16)
    if precision == "bf16":
        return bf16_bits(np.asarray(x, np.float32))
    return np.asarray(x, np.float32)


def value(precision: str, a: np.ndarray) -> np.ndarray:
    """float64 values of operand encodings."""
    return (bf16_value(a) if precision == "bf16" else a).astype(np.float64)


def acc_dtype(precision: str):
    return np.float64 if precision == "fp64" else np.float32


class Packed:
    """A dense U (batch, rows, cols; operand encoding) and a block mask (batch, R, J) as the
    format's arrays, and the masked dense U the kernel multiplies."""

    def __init__(self, U: np.ndarray, keep: np.ndarray, reverse: bool = False, bm: int = 16):
        batch, rows, cols = U.shape
        BM = self.bm = bm
        R, J = -(-rows // BM), -(-cols // BK)
        assert keep.shape == (batch, R, J)
        pad = np.zeros((batch, R * BM, J * BK), U.dtype)
        pad[:, :rows, :cols] = U
        blocks = pad.reshape(batch, R, BM, J, BK).transpose(0, 1, 3, 2, 4)  # (b, R, J, bm, 8)
        blocks = np.where(keep[..., None, None], blocks, np.zeros((), U.dtype))
        self.masked = np.ascontiguousarray(blocks.transpose(0, 1, 3, 2, 4).reshape(pad.shape)[:, :rows, :cols])
        b, r, j = np.nonzero(keep)  # row-major: blocks of a row in ascending column order
        if reverse:  # each row's blocks in descending column order (a valid, unsorted list)
            order = np.lexsort((-j, r, b))
            b, r, j = b[order], r[order], j[order]
        self.col_idx = j.astype(np.int32)
        self.values = np.ascontiguousarray(blocks[b, r, j])  # (nblocks, bm, 8)
        flat = np.concatenate([[0], np.cumsum(keep.sum(axis=2).ravel())])
        self.row_ptr = np.stack([flat[p * R : p * R + R + 1] for p in range(batch)]).astype(np.int32)
        self.shape, self.nblocks = (batch, rows, cols), int(self.col_idx.size)
        self.k_rows = np.repeat(keep.sum(axis=2) * BK, BM, axis=1)[:, :rows]  # reduction length per row


def bsr(precision: str, p: Packed, B: np.ndarray, *, row_ptr=None, col_idx=None, values=None,
        nblocks=None) -> np.ndarray:
    """C = A_bsr · B by the kernel; C pre-filled with NaN inside a buffer whose 16 elements before
    and after it must stay untouched."""
    batch, rows, cols = p.shape
    n = B.shape[2]
    rp = p.row_ptr if row_ptr is None else row_ptr
    ci = p.col_idx if col_idx is None else col_idx
    vals = p.values if values is None else values
    buf = np.full(batch * rows * n + 32, -7.0, acc_dtype(precision))
    C = buf[16:-16].reshape(batch, rows, n)
    C[...] = np.nan
    dt = emu.FLOAT64 if precision == "fp64" else emu.FLOAT32
    emu.bsr_batched(dt, PRECISION[precision], batch, rows, cols, n, p.bm, BK, _ptr(rp),
                    _ptr(ci) if ci.size else 0, _ptr(vals) if vals.size else 0,
                    p.nblocks if nblocks is None else nblocks, _ptr(B), _ptr(C), 0)
    assert (buf[:16] == -7).all() and (buf[-16:] == -7).all(), "written outside C"
    return C.copy()


def random_keep(rng, batch, rows, cols, density, bm=16) -> np.ndarray:
    return rng.random((batch, -(-rows // bm), -(-cols // BK))) < density


def int_case(precision, rng, batch, rows, cols, n, keep, bm=16):
    """|U| <= 256 (exact in bfloat16, binary16, TF32), |B| <= 8: every partial sum < 2^24."""
    U = operand(precision, rng.integers(-256, 257, (batch, rows, cols)))
    B = operand(precision, rng.integers(-8, 9, (batch, cols, n)))
    assert cols * 256 * 8 < 2**24
    return Packed(U, keep, bm=bm), B


def exact(p: Packed, B: np.ndarray, precision: str) -> np.ndarray:
    return np.matmul(value(precision, p.masked), value(precision, B))


def assert_exact(C, p, B, precision, label):
    ref = exact(p, B, precision)
    bad = C != ref
    assert not bad.any(), (f"{precision} {label}: {int(bad.sum())} of {C.size} differ "
                           f"(NaN = unwritten: {int(np.isnan(C).sum())})")


# --------------------------------------------------------------------------- exact on integers

# (batch, rows, cols, n, density): rows off 16 and 32, cols off 8, n off the 64 tile, n = 1, n a
# multiple of 8 (16-byte copies for every operand type) and not, several stages per row
# (cols = 100: 13 block columns), density 1
SHAPES = [(2, 37, 45, 70, 0.5), (1, 16, 8, 64, 1.0), (3, 1, 1, 1, 1.0), (2, 17, 9, 65, 0.6),
          (2, 48, 64, 136, 1.0), (2, 33, 100, 3, 0.4)]


@pytest.mark.parametrize("bm", BMS)
@pytest.mark.parametrize("precision", ALL)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:4])) + f"@{s[4]}")
def test_exact_on_integers_over_edge_shapes(precision, shape, bm, rng):
    batch, rows, cols, n, density = shape
    keep = random_keep(rng, batch, rows, cols, density, bm)
    p, B = int_case(precision, rng, batch, rows, cols, n, keep, bm)
    assert_exact(bsr(precision, p, B), p, B, precision, f"shape {shape}, {bm}-row blocks")


@pytest.mark.parametrize("bm", BMS)
@pytest.mark.parametrize("precision", ALL)
def test_empty_rows_empty_position_one_position_of_many(precision, bm, rng):
    """Block rows without blocks and a position without any are written as zeros; a single
    nonempty position among five (its row_ptr chained after four empty ones) lands in its place;
    no blocks at all (nblocks = 0, col_idx and values NULL) gives C = 0."""
    batch, rows, cols, n = 5, 70, 40, 70
    keep = random_keep(rng, batch, rows, cols, 0.5, bm)
    keep[:, 1] = False  # an empty block row everywhere
    keep[2] = False  # an empty position
    p, B = int_case(precision, rng, batch, rows, cols, n, keep, bm)
    C = bsr(precision, p, B)
    assert_exact(C, p, B, precision, "empty rows / position")
    assert (C[:, bm : 2 * bm] == 0).all() and (C[2] == 0).all()
    keep1 = np.zeros_like(keep)
    keep1[3] = True
    p1, _ = int_case(precision, rng, batch, rows, cols, n, keep1, bm)
    assert p1.row_ptr[3, 0] == 0 and p1.row_ptr[4, 0] == p1.nblocks
    C1 = bsr(precision, p1, B)
    assert_exact(C1, p1, B, precision, "one position of many")
    assert (C1[[0, 1, 2, 4]] == 0).all()
    p0, _ = int_case(precision, rng, batch, rows, cols, n, np.zeros_like(keep), bm)
    assert p0.nblocks == 0
    assert (bsr(precision, p0, B) == 0).all()


@pytest.mark.parametrize("bm", BMS)
@pytest.mark.parametrize("precision", ALL)
def test_reverse_block_order_and_the_element_copy_path(precision, bm, rng):
    """Blocks of a row in descending column order (integers: the order cannot change an exact
    sum), and values / B one element past a 16-byte boundary (the launcher's element-copy path:
    4- / 8-byte cp.async, plain 2-byte loads) give the same exact C."""
    batch, rows, cols, n = 2, 37, 45, 72
    keep = random_keep(rng, batch, rows, cols, 0.6, bm)
    p, B = int_case(precision, rng, batch, rows, cols, n, keep, bm)
    C = bsr(precision, p, B)
    assert_exact(C, p, B, precision, "ascending")
    pr = Packed(p.masked, keep, reverse=True, bm=bm)
    assert not np.array_equal(pr.col_idx, p.col_idx)
    assert np.array_equal(bsr(precision, pr, B), C)

    def off_by_one(a):
        raw = np.zeros(a.size + 16, a.dtype)
        skip = (-raw.ctypes.data % 16) // a.itemsize + 1
        out = raw[skip : skip + a.size].reshape(a.shape)
        out[...] = a
        assert out.ctypes.data % 16 != 0
        return out

    assert np.array_equal(bsr(precision, p, off_by_one(B), values=off_by_one(p.values)), C)


# --------------------------------------------------------------------------- random data

def _bound(precision: str, k: np.ndarray) -> np.ndarray:
    """test_kernels_tc.py's element-wise bounds relative to |A||B| (of the operands' values),
    for reduction lengths k: tf32 / tf32x3 against the float32 data, 16-bit against the 16-bit
    values (exact products, float32 sums), fp64 γ_k(2^-53)."""
    f = {"tf32": tf32_bound, "tf32x3": tf32x3_bound, "fp64": lambda j: gamma(j, U_F64)}.get(
        precision, lambda j: gamma(j, U_F32))
    return np.vectorize(f, otypes=[float])(k)


def _rel_errors(C, p, B, precision):
    A, Bv = value(precision, p.masked), value(precision, B)
    exact_ = np.matmul(A.astype(np.longdouble), Bv.astype(np.longdouble))
    S = np.matmul(np.abs(A), np.abs(Bv))
    err = np.abs(C.astype(np.longdouble) - exact_).astype(np.float64)
    assert (err[S == 0] == 0).all(), "rows without blocks must be exact zeros"
    return err, S


@pytest.mark.parametrize("bm", BMS)
@pytest.mark.parametrize("precision", ALL)
def test_random_data_within_the_precision_bound(precision, bm, rng):
    """±[1/8, 4) data (no 16-bit subnormals); k = kept blocks x 8 per block row, the bound
    element-wise per row; rows off 16 and 32, cols off 8, n off 64, one block row empty."""
    batch, rows, cols, n = 3, 70, 90, 70
    keep = random_keep(rng, batch, rows, cols, 0.6, bm)
    keep[1, 1] = False
    sign = lambda shape: rng.choice(np.array([-1.0, 1.0]), shape)  # noqa: E731
    U = operand(precision, sign((batch, rows, cols)) * rng.uniform(0.125, 4, (batch, rows, cols)))
    B = operand(precision, sign((batch, cols, n)) * rng.uniform(0.125, 4, (batch, cols, n)))
    p = Packed(U, keep, bm=bm)
    C = bsr(precision, p, B)
    err, S = _rel_errors(C, p, B, precision)
    tol = _bound(precision, p.k_rows)[..., None] * S
    assert (err <= tol).all(), f"{precision}: max rel. error {(err / np.maximum(S, 1e-300)).max():.3g}"


@pytest.mark.parametrize("bm", BMS)
def test_tf32x3_is_at_least_100x_more_accurate_than_tf32(bm, rng):
    batch, rows, cols, n = 2, 33, 120, 40
    keep = random_keep(rng, batch, rows, cols, 0.7, bm)
    U = rng.standard_normal((batch, rows, cols)).astype(np.float32)
    B = rng.standard_normal((batch, cols, n)).astype(np.float32)
    p = Packed(U, keep, bm=bm)
    worst = {}
    for precision in ("tf32", "tf32x3"):
        err, S = _rel_errors(bsr(precision, p, B), p, B, precision)
        worst[precision] = err.max()
    assert worst["tf32"] > 2.0**-11 * 0.01, worst  # TF32 rounding is there
    assert worst["tf32x3"] * 100 <= worst["tf32"], worst


# --------------------------------------------------------------------------- the dense product

def dense_tc(precision: str, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    batch, m, k = A.shape
    n = B.shape[2]
    C = np.full((batch, m, n), np.nan, acc_dtype(precision))
    dt = emu.FLOAT64 if precision == "fp64" else emu.FLOAT32
    emu.gemm_batched_ex(dt, PRECISION[precision], batch, m, n, k, _ptr(np.ascontiguousarray(A)), _ptr(B),
                        _ptr(C), 0)
    return C


@pytest.mark.parametrize("bm", BMS)
@pytest.mark.parametrize("precision", ALL)
@pytest.mark.parametrize("shape", [(2, 37, 45, 70), (1, 64, 64, 64)], ids=["off-tiles", "on-tiles"])
def test_bitwise_the_dense_tensor_core_product_of_the_masked_u(precision, shape, bm, rng):
    """Random data, col_idx ascending.  tf32 / tf32x3 / fp64: any mask.  fp16 / bf16: masks of
    aligned block pairs (the dense k step of 16 = block columns 2i, 2i + 1; an odd last block
    column pairs with the zero-filled k past cols in both); with another mask the two pair
    different blocks in one MMA and agree only within the bound (checked in the random test)."""
    batch, rows, cols, n = shape
    keep = random_keep(rng, batch, rows, cols, 0.5, bm)
    if precision in ("fp16", "bf16"):
        keep[..., 1::2] = keep[..., 0::2][..., : keep[..., 1::2].shape[-1]]
    U = operand(precision, rng.standard_normal((batch, rows, cols)))
    B = operand(precision, rng.standard_normal((batch, cols, n)))
    p = Packed(U, keep, bm=bm)
    C = bsr(precision, p, B)
    D = dense_tc(precision, p.masked, B)
    assert not np.isnan(C).any()
    assert np.array_equal(C, D), f"{precision}: {int((C != D).sum())} of {C.size} differ from the dense product"


# --------------------------------------------------------------------------- corrupt structures

def _guarded(a: np.ndarray, guard: int = 512) -> np.ndarray:
    """A copy of a between NaN guards (bfloat16 encodings: the all-ones NaN pattern; int32: an
    out-of-range block column); a read past either end that reaches C shows as NaN."""
    nan = {np.dtype(np.uint16): 0xFFFF, np.dtype(np.int32): 2**31 - 1}.get(a.dtype, np.nan)
    raw = np.full(a.size + 2 * guard, nan, a.dtype)
    out = raw[guard:-guard].reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("bm", BMS)
@pytest.mark.parametrize("precision", ALL)
def test_corrupt_block_columns_add_nothing(precision, bm, rng):
    """Block columns -1, J, INT32 extremes: the slot is zero-filled (values and B rows unread),
    the other blocks' sums stay exact: C equals the product without those blocks."""
    batch, rows, cols, n = 2, 40, 30, 68
    keep = random_keep(rng, batch, rows, cols, 0.7, bm)
    p, B = int_case(precision, rng, batch, rows, cols, n, keep, bm)
    J = -(-cols // BK)
    ci = p.col_idx.copy()
    bad = np.arange(0, p.nblocks, 3)
    ci[bad] = np.resize(np.array([-1, J, -(2**31), 2**31 - 1, J + 100], np.int32), bad.size)
    vals = _guarded(p.values)
    C = bsr(precision, p, _guarded(B), col_idx=ci, values=vals)
    good = p.values.copy()
    good[bad] = 0
    C_ref = bsr(precision, p, B, values=good)
    assert np.array_equal(C, C_ref)


@pytest.mark.parametrize("bm", BMS)
@pytest.mark.parametrize("precision", ALL)
def test_corrupt_row_pointers_stay_in_bounds_and_write_all_of_c(precision, bm, rng):
    """row_ptr entries negative, past nblocks, decreasing, INT32_MAX: each row range is clamped
    into [0, nblocks]; the block arrays between NaN guards: C finite (no guard element read) and
    fully written, also when nblocks is passed smaller than the arrays (it bounds the reads)."""
    batch, rows, cols, n = 3, 70, 20, 40
    keep = random_keep(rng, batch, rows, cols, 0.6, bm)
    p, B = int_case(precision, rng, batch, rows, cols, n, keep, bm)
    rp = p.row_ptr.copy()
    rp.reshape(-1)[::4] = -1000
    rp.reshape(-1)[2::7] = p.nblocks + 1000
    rp[1] = rp[1][::-1]
    rp[2, -1] = 2**31 - 1
    vals, ci, Bg = _guarded(p.values), _guarded(p.col_idx), _guarded(B)
    for nb in (p.nblocks, p.nblocks // 2):
        C = bsr(precision, p, Bg, row_ptr=rp, col_idx=ci, values=vals, nblocks=nb)
        assert np.isfinite(C).all(), f"nblocks={nb}: {int((~np.isfinite(C)).sum())} not finite"


# --------------------------------------------------------------------------- argument checks

def _call(dtype=emu.FLOAT32, precision=emu.PRECISION_TF32, batch=1, rows=16, cols=8, n=4, bm=16, bk=8,
          row_ptr=16, col_idx=16, values=16, nblocks=1, B=16, C=16):
    emu.bsr_batched(dtype, precision, batch, rows, cols, n, bm, bk, row_ptr, col_idx, values, nblocks, B, C, 0)


def test_bad_arguments_give_the_status_and_a_message():
    """Checked before anything is read (the pointers here are never dereferenced)."""
    with pytest.raises(UnsupportedError, match=r"16 x 8 and 32 x 8 blocks"):
        _call(bm=16, bk=16)
    for bm in (8, 24, 64):
        with pytest.raises(UnsupportedError, match=rf"block shape {bm} x 8"):
            _call(bm=bm)
    with pytest.raises(UnsupportedError, match=r"block shape 32 x 16"):
        _call(bm=32, bk=16)
    with pytest.raises(UnsupportedError, match="tensor cores: MW_PRECISION_FP32"):
        _call(precision=emu.PRECISION_FP32)
    with pytest.raises(InvalidArgumentError, match="precision 99"):
        _call(precision=99)
    with pytest.raises(UnsupportedError, match="needs dtype MW_FLOAT32"):
        _call(dtype=emu.FLOAT64)
    with pytest.raises(UnsupportedError, match="FP64 needs dtype MW_FLOAT64"):
        _call(precision=emu.PRECISION_FP64)
    with pytest.raises(InvalidArgumentError, match="16-bit storage type"):
        _call(dtype=emu.FLOAT16, precision=emu.PRECISION_FP16)
    for kw in ({"batch": 0}, {"rows": 0}, {"cols": -1}, {"n": 0}):
        with pytest.raises(InvalidArgumentError, match="must be >= 1"):
            _call(**kw)
    with pytest.raises(InvalidArgumentError, match="nblocks = -1"):
        _call(nblocks=-1)
    for kw in ({"row_ptr": 0}, {"B": 0}, {"C": 0}, {"col_idx": 0}, {"values": 0}):
        with pytest.raises(InvalidArgumentError, match="must not be NULL"):
            _call(**kw)
    _call(col_idx=0, values=0, nblocks=0, row_ptr=_ptr(ZEROS), C=_ptr(C_OUT), B=_ptr(B_IN))  # allowed
    assert (C_OUT == 0).all()
    with pytest.raises(UnsupportedError, match="too large"):
        _call(batch=2**20, rows=2**12, n=2**12)
    with pytest.raises(UnsupportedError, match="too large"):
        _call(nblocks=2**24)
    for kw in ({"rows": 2**63 - 1}, {"cols": 2**62 + 4}, {"n": 2**62 + 4}, {"batch": 2**40, "rows": 2**40}):
        with pytest.raises(UnsupportedError, match="too large"):  # products that overflow int64
            _call(**kw)
    with pytest.raises(InvalidArgumentError, match="4-byte aligned .float32 arrays"):
        _call(values=18)
    with pytest.raises(InvalidArgumentError, match="2-byte aligned .16-bit arrays"):
        _call(precision=emu.PRECISION_BF16, B=17)
    with pytest.raises(InvalidArgumentError, match="C 8-byte aligned .float64"):
        _call(dtype=emu.FLOAT64, precision=emu.PRECISION_FP64, C=20)


ZEROS = np.zeros(2, np.int32)
B_IN = np.ones((1, 8, 4), np.float32)
C_OUT = np.full((1, 16, 4), np.nan, np.float32)


# --------------------------------------------------------------------------- emulator modes

_MODE_CASES = [(p, n, bm) for bm in BMS
               for p, n in (("tf32", 72), ("tf32x3", 70), ("fp16", 72), ("bf16", 70), ("fp64", 70))]


def run_mode_cases() -> list[str]:
    """Fixed random cases (several stages per row: the rings wrap), as hex of C's bytes."""
    out = []
    for i, (precision, n, bm) in enumerate(_MODE_CASES):
        rng = np.random.default_rng(500 + i)
        keep = random_keep(rng, 2, 37, 90, 0.6, bm)
        U = operand(precision, rng.standard_normal((2, 37, 90)))
        B = operand(precision, rng.standard_normal((2, 90, n)))
        C = bsr(precision, Packed(U, keep, bm=bm), B)
        assert not np.isnan(C).any()
        out.append(C.tobytes().hex())
    return out


def test_bitwise_the_same_under_permuted_fragments_and_random_async_copies():
    env = {"MW_EMU_WMMA_PERMUTE": "0x77", "MW_EMU_ASYNC_COPY": "random:99", "MW_EMU_ORDER": "shuffle:5"}
    other = results_under_env("test_bsr_kernel", "run_mode_cases", env, timeout=120)
    base = run_mode_cases()
    differ = [_MODE_CASES[i] for i in range(len(base)) if base[i] != other[i]]
    assert not differ, f"results differ under {env}: {differ}"
