"""The tensor-core batched products (kernels/gemm_tc.cuh) on the emulator, through the C ABI
(``mw_gemm_batched_ex``) and the extension, with NumPy arrays.

* Exact tests on integers: |x| <= 2^10 is exact in TF32 (11 significant bits), so both
  precisions must reproduce the integer product exactly, with sizes straddling every edge of
  the 64x64x16 block tile and the 16x16x8 MMA tile, batch > 1, outputs pre-filled with NaN
  (unwritten elements fail), operands offset by one float (the 4-byte cp.async path) and
  k, n not multiples of 4.  3xTF32 is also exact on integers beyond TF32 (|a| <= 2^14 with
  b exact in TF32: a = a_hi + a_lo exactly, b_lo = 0), where one TF32 product is not.
* Random data: element-wise worst-case bounds derived below, and tf32x3 at least 100x more
  accurate than tf32 on the same data.
* The emulator's fragment permutation (MW_EMU_WMMA_PERMUTE) and random early completion of
  asynchronous copies (MW_EMU_ASYNC_COPY=random:seed) give bitwise identical results.  Both
  settings are read from the environment when the emulator library is first used, so they
  run in a subprocess.

16-bit precisions (fp16, bf16: A and B binary16 / bfloat16, C float32, GemmTc16_64x64x32_32x32_s3):
* exact on integers (exact in the 16-bit type, sums < 2^24) and a selection product (A picks one
  row of B per row of C: a misplaced element, swapped halves of a 16-bit pair, a wrong stride or
  a dropped k slice shows exactly where) over the 64x64x32 block and 16x16x16 MMA edges, aligned
  (16-byte cp.async) and unaligned (odd k or n, operands offset by one element: plain loads);
* values exactly representable in 16 bits against the float64 product, within float32
  accumulation over k; float32 data rounded in the test (NumPy's float16; bfloat16 round to
  nearest even by integer arithmetic, written here) against the float32 product, within the
  16-bit rounding bound; bitwise under the emulator modes.

float64 (fp64: DMMA, GemmTc64_64x64x16_32x32_s2, which MW_PRECISION_FP64 runs on the emulator):
exact on integers (sums < 2^53), aligned and offset by one double, a selection product, random
data within γ_k(2^-53), bitwise under the emulator modes.

Configurations and split-K (last section): at the emulator's 132 SMs every small shape here runs
the 32x64 configuration of its family (gemm_tc_plan: the 64x64 grid is below one wave), which
gives C bitwise equal to the 64x64 one (same MMAs per element, same k order); the 64x64
configurations run in a subprocess with MW_EMU_SM_COUNT=1.  Split-K through
mw_gemm_batched_ex_ws: exact and bitwise equal to the unsplit product on integers, within the
unsplit bounds on random data, exactly sized workspaces with an untouched sentinel after them,
NULL / too small workspaces identical to no split, bitwise under the emulator modes.

Not tested here: the second grid chunk (batch > 65535): 65,537 emulated 128-thread blocks take
~70 s; gemm_tc_launch's chunk loop is the one of gemm_batched_launch, which
test_kernels_emulator.py covers.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from emu_subprocess import results_under_env

import magma_wino._emu as emu
from magma_wino.errors import InvalidArgumentError, UnsupportedError

# GemmTc64x64x16_32x32_s2 in kernels/gemm_tc.cuh: (kM, kN, kK); the 32x64 configuration the small
# shapes here run has the same kK (see the last section)
TC_BLOCK = (64, 64, 16)
TC16_BLOCK = (64, 64, 32)  # GemmTc16_64x64x32_32x32_s3 (three stages)
PRECISIONS = {"tf32": emu.PRECISION_TF32, "tf32x3": emu.PRECISION_TF32X3}
PRECISIONS16 = {"fp16": emu.PRECISION_FP16, "bf16": emu.PRECISION_BF16}

U_TF32 = 2.0**-11  # unit roundoff of TF32 (11 significant bits, round to nearest)
U_F32 = 2.0**-24


def ptr(a: np.ndarray) -> int:
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def gemm_tc(precision: str, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
    """C = A · B; A and B float32, or for fp16 / bf16 the 16-bit encodings (float16 / uint16), or
    for fp64 float64 (C too)."""
    batch, m, k = A.shape
    n = B.shape[2]
    if precision in PRECISIONS16:
        assert A.itemsize == B.itemsize == 2 and C.dtype == np.float32
    if precision == "fp64":
        assert A.dtype == B.dtype == C.dtype == np.float64
        emu.gemm_batched_ex(emu.FLOAT64, emu.PRECISION_FP64, batch, m, n, k, ptr(A), ptr(B),
                            ptr(C), 0)
        return
    code = PRECISIONS16.get(precision) or PRECISIONS[precision]
    emu.gemm_batched_ex(emu.FLOAT32, code, batch, m, n, k, ptr(A), ptr(B), ptr(C), 0)


def offset_array(values: np.ndarray, offset_floats: int) -> np.ndarray:
    """A copy of values whose data start `offset_floats` elements (of values' dtype, float32 if
    not given as an array of another dtype) past a 64-byte boundary."""
    dtype = values.dtype if isinstance(values, np.ndarray) else np.float32
    size = np.dtype(dtype).itemsize
    raw = np.zeros(values.size + 64, dtype)
    skip = (-raw.ctypes.data % 64) // size + offset_floats
    out = raw[skip : skip + values.size].reshape(values.shape)
    out[...] = values
    assert out.ctypes.data % 64 == size * offset_floats
    return out


def int_array(rng, shape, bound) -> np.ndarray:
    return rng.integers(-bound, bound + 1, shape).astype(np.float32)


EDGES = [1, 15, 16, 17, 33, 65]


def _exact_cases():
    # Every edge value for each dimension with the other two at a non-edge size, and a few
    # all-edge combinations (m, n, k each straddling both the MMA tile 16 and the block tile).
    cases = []
    for v in EDGES:
        cases += [(v, 20, 24), (20, v, 24), (20, 24, v)]
    cases += [(65, 65, 65), (17, 33, 15), (1, 1, 1), (64, 64, 16), (33, 16, 17)]
    return sorted(set(cases))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("m,n,k", _exact_cases(), ids=lambda v: str(v))
def test_gemm_tc_exact_on_integers_straddling_tiles(precision, m, n, k, rng):
    """|A| <= 2^10 (exact in TF32), |B| <= 16: every partial sum < 2^24, so exact."""
    batch = 3
    A = int_array(rng, (batch, m, k), 1024)
    B = int_array(rng, (batch, k, n), 16)
    C = np.full((batch, m, n), np.nan, np.float32)
    gemm_tc(precision, A, B, C)
    ref = np.matmul(A.astype(np.int64), B.astype(np.int64))
    assert k * 1024 * 16 < 2**24
    assert np.array_equal(C, ref.astype(np.float32)), (
        f"gemm_tc {precision} batch={batch} m={m} n={n} k={k} (block {TC_BLOCK}): "
        f"{int((C != ref).sum())} of {C.size} differ (NaN = unwritten: {int(np.isnan(C).sum())})"
    )


@pytest.mark.parametrize("precision", PRECISIONS)
def test_gemm_tc_exact_with_large_b_operand(precision, rng):
    """The other operand at |x| <= 2^10 (B fragments convert too)."""
    batch, m, n, k = 2, 33, 65, 17
    A = int_array(rng, (batch, m, k), 16)
    B = int_array(rng, (batch, k, n), 1024)
    C = np.full((batch, m, n), np.nan, np.float32)
    gemm_tc(precision, A, B, C)
    assert np.array_equal(C, np.matmul(A, B))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(
    "offsets,m,n,k",
    [
        ((1, 0, 0), 17, 20, 24),
        ((0, 1, 0), 17, 20, 24),
        ((1, 1, 1), 33, 65, 17),
        ((0, 0, 0), 17, 21, 23),
        ((2, 3, 1), 16, 16, 16),
    ],
    ids=["A+1", "B+1", "all+1-edges", "k,n-not-multiple-of-4", "A+2,B+3,C+1"],
)
def test_gemm_tc_exact_through_the_4_byte_copy_path(precision, offsets, m, n, k, rng):
    """Operands offset from 16-byte alignment (or rows of k, n floats not multiples of 4) take
    the 4-byte cp.async path; a 16-byte copy from such an address is a launch failure in the
    emulator, so passing proves the fallback."""
    batch = 2
    A = offset_array(int_array(rng, (batch, m, k), 1024), offsets[0])
    B = offset_array(int_array(rng, (batch, k, n), 16), offsets[1])
    C = offset_array(np.full((batch, m, n), np.nan, np.float32), offsets[2])
    gemm_tc(precision, A, B, C)
    assert np.array_equal(C, np.matmul(A, B)), f"NaN: {int(np.isnan(C).sum())}"


def test_gemm_tc_x3_exact_beyond_tf32_where_one_tf32_product_is_not(rng):
    """|a| <= 2^14 needs up to 15 bits: a_hi + a_lo reproduces it exactly and b (<= 8) has
    b_lo = 0, so 3xTF32 is exact; one TF32 product rounds a and is not."""
    batch, m, n, k = 2, 33, 40, 48
    A = int_array(rng, (batch, m, k), 2**14)
    B = int_array(rng, (batch, k, n), 8)
    ref = np.matmul(A.astype(np.int64), B.astype(np.int64))
    assert k * 2**14 * 8 < 2**24
    C3 = np.full((batch, m, n), np.nan, np.float32)
    gemm_tc("tf32x3", A, B, C3)
    assert np.array_equal(C3, ref.astype(np.float32))
    C1 = np.full((batch, m, n), np.nan, np.float32)
    gemm_tc("tf32", A, B, C1)
    assert not np.isnan(C1).any()
    assert not np.array_equal(C1, ref.astype(np.float32))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_gemm_tc_leaves_memory_past_c_untouched(precision, rng):
    batch, m, n, k = 3, 17, 33, 9
    A = int_array(rng, (batch, m, k), 64)
    B = int_array(rng, (batch, k, n), 64)
    buf = np.full(batch * m * n + 64, -7.0, np.float32)
    gemm_tc(precision, A, B, buf)
    assert np.array_equal(buf[: batch * m * n].reshape(batch, m, n), np.matmul(A, B))
    assert (buf[batch * m * n :] == -7.0).all()


# --------------------------------------------------------------------------- random data
#
# Element-wise worst-case bounds, with S = |A|·|B| and γ_j(u) = j·u / (1 − j·u):
#
# tf32: each operand is rounded once, x_t = x(1 + δ), |δ| <= u_t = 2^-11, and the products of
# TF32 values are exact; the k products are then summed in float32 (at most k roundings: the
# emulator rounds once per 16x16x8 MMA, a GPU at most once per product), so
#   |C − AB| <= [(1 + u_t)^2 − 1 + γ_k(u_32)·(1 + u_t)^2] · S.
# tf32x3: a = a_hi + a_lo exactly with |a_lo| <= u_t|a|, a_lo' = tf32(a_lo) = a_lo(1 + ε); the
# three products sum to ab − a_lo b_lo − a_hi(b_lo − b_lo') − (a_lo − a_lo')b_hi, so per term
# |error| <= u_t^2 (1 + 2(1 + u_t)) |ab|; 3k float32 additions add γ_{3k}(u_32)(1 + u_t)^2 S:
#   |C − AB| <= [u_t^2 (3 + 2 u_t) + γ_3k(u_32)·(1 + u_t)^2] · S     (float32 level).


def gamma(j: int, u: float) -> float:
    return j * u / (1 - j * u)


def tf32_bound(k: int) -> float:
    return (1 + U_TF32) ** 2 - 1 + gamma(k, U_F32) * (1 + U_TF32) ** 2


def tf32x3_bound(k: int) -> float:
    return U_TF32**2 * (3 + 2 * U_TF32) + gamma(3 * k, U_F32) * (1 + U_TF32) ** 2


def _errors(C, A, B):
    exact = np.matmul(A.astype(np.longdouble), B.astype(np.longdouble))
    S = np.matmul(np.abs(A).astype(np.float64), np.abs(B).astype(np.float64))
    err = np.abs(C.astype(np.longdouble) - exact)
    return float(err.max()), float((err / S).max())


@pytest.mark.parametrize("m,n,k", [(65, 68, 300), (17, 33, 301)], ids=lambda v: str(v))
def test_gemm_tc_random_data_within_bounds_and_tf32x3_100x_better(m, n, k, rng):
    batch = 2
    A = rng.standard_normal((batch, m, k)).astype(np.float32)
    B = rng.standard_normal((batch, k, n)).astype(np.float32)
    out = {}
    for precision in ("tf32", "tf32x3"):
        C = np.full((batch, m, n), np.nan, np.float32)
        gemm_tc(precision, A, B, C)
        out[precision] = _errors(C, A, B)
    C = np.full((batch, m, n), np.nan, np.float32)
    emu.gemm_batched_ex(emu.FLOAT32, emu.PRECISION_FP32, batch, m, n, k, ptr(A), ptr(B), ptr(C), 0)
    out["fp32"] = _errors(C, A, B)
    report = ", ".join(f"{p}: max {e:.3g} (rel to |A||B| {r:.3g})" for p, (e, r) in out.items())
    print(f"gemm m={m} n={n} k={k}: {report}")
    assert out["tf32"][1] <= tf32_bound(k), report
    assert out["tf32x3"][1] <= tf32x3_bound(k), report
    assert out["tf32x3"][0] * 100 <= out["tf32"][0], report


# --------------------------------------------------------------------------- 16-bit operands
#
# The test's own roundings, independent of the kernels' (__float2half_rn / __float2bfloat16_rn):
# binary16 by NumPy's float16 cast (round to nearest even); bfloat16 by integer arithmetic on
# the float32 bits: add 0x7FFF plus the lowest kept bit, drop the low 16 bits (round to nearest,
# ties to even; finite data only).

U_FP16 = 2.0**-11  # binary16: 11 significant bits
U_BF16 = 2.0**-8  # bfloat16: 8 significant bits
UNIT16 = {"fp16": U_FP16, "bf16": U_BF16}


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 encodings (uint16), round to nearest even."""
    x = np.asarray(x, np.float32)
    assert np.isfinite(x).all()
    u = x.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_value(bits: np.ndarray) -> np.ndarray:
    """bfloat16 encodings -> their float32 values (exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def to16(precision: str, x: np.ndarray) -> np.ndarray:
    """float32 data rounded to the precision's 16-bit type, as the encodings the kernel reads."""
    return x.astype(np.float16) if precision == "fp16" else bf16_bits(x)


def value16(precision: str, a: np.ndarray) -> np.ndarray:
    """The float64 values of 16-bit encodings."""
    return (a if precision == "fp16" else bf16_value(a)).astype(np.float64)


def test_bf16_rounding_helper_rounds_to_nearest_even():
    """The test's bfloat16 rounding on hand-made cases: ties go to the even neighbour, values
    just above a tie go up, and exactly representable values are unchanged."""
    one = np.float32(1.0)
    ulp = np.float32(2.0**-7)  # bfloat16 spacing in [1, 2)
    cases = {
        1.0: 1.0,
        float(one + ulp / 2): 1.0,  # tie, 1.0 is even -> down
        float(one + 3 * ulp / 2): float(one + 2 * ulp),  # tie, odd below -> up
        float(np.nextafter(one + ulp / 2, np.float32(2))): float(one + ulp),  # above tie -> up
        -3.0: -3.0,
        float(np.float32(-(one + 3 * ulp / 2))): float(-(one + 2 * ulp)),
    }
    got = bf16_value(bf16_bits(np.array(list(cases), np.float32)))
    assert got.tolist() == list(cases.values())


def int_bound16(precision: str) -> int:
    """Largest integer magnitude exact in the 16-bit type (2^significand bits)."""
    return 2048 if precision == "fp16" else 256


# Shapes off the 64x64x32 tile: m = 70 (two row blocks, 6 rows in the second), n = 37 and k = 45
# odd (the plain-load path), n = 40 / k = 48 multiples of 8 (16-byte copies), k = 1, k = 100 (four
# slices: the three-stage ring wraps), full tiles.
SHAPES16 = [
    (70, 37, 45),
    (70, 40, 48),
    (17, 33, 1),
    (16, 8, 8),
    (65, 64, 100),
    (64, 64, 64),
    (1, 1, 1),
]


@pytest.mark.parametrize("precision", PRECISIONS16)
@pytest.mark.parametrize("m,n,k", SHAPES16, ids=lambda v: str(v))
def test_gemm_16bit_exact_on_integers(precision, m, n, k, rng):
    """Integers exact in the 16-bit type (|A| <= 2^11 for fp16, 2^8 for bf16; |B| <= 8): products
    and every partial sum (< 2^24) are exact in float32, so C equals the integer product."""
    batch = 3
    bound = int_bound16(precision)
    A32 = int_array(rng, (batch, m, k), bound)
    B32 = int_array(rng, (batch, k, n), 8)
    assert k * bound * 8 < 2**24
    A, B = to16(precision, A32), to16(precision, B32)
    assert np.array_equal(value16(precision, A), A32)  # exact in 16 bits
    C = np.full((batch, m, n), np.nan, np.float32)
    gemm_tc(precision, A, B, C)
    ref = np.matmul(A32.astype(np.int64), B32.astype(np.int64))
    assert np.array_equal(C, ref.astype(np.float32)), (
        f"gemm_tc {precision} batch={batch} m={m} n={n} k={k} (block {TC16_BLOCK}): "
        f"{int((C != ref).sum())} of {C.size} differ (NaN = unwritten: {int(np.isnan(C).sum())})"
    )


@pytest.mark.parametrize("precision", PRECISIONS16)
@pytest.mark.parametrize(
    "m,n,k,offsets",
    [(70, 37, 100, (0, 0, 0)), (70, 40, 96, (0, 0, 0)), (33, 40, 96, (1, 1, 1)),
     (33, 40, 96, (8, 0, 0))],
    ids=["unaligned", "aligned", "offset-by-one", "offset-16-bytes"],
)
def test_gemm_16bit_selection_product_puts_every_element_in_place(precision, m, n, k, offsets):
    """A[b, i, l] = 1 for l = sel[b, i], else 0: row i of C[b] must be row sel[b, i] of B[b],
    whose elements are all distinct.  Swapped 16-bit halves, a wrong row stride, a k slice read
    twice or dropped, or a batch mixed up give a wrong row or column -- reported where.  k = 96 /
    100: three or four slices, the ring of three stages wraps; offset by one element: the
    plain-load path even though k and n are multiples of 8; by 8 elements (16 bytes): aligned."""
    batch = 2
    sel = (np.arange(batch * m).reshape(batch, m) * 37 + 11) % k
    sel[:, 0] = k - 1  # the last k of the last slice
    A32 = np.zeros((batch, m, k), np.float32)
    A32[np.arange(batch)[:, None], np.arange(m)[None, :], sel] = 1.0
    # distinct per (b, l, j) and exact in 16 bits: |values| < 2^8 for bf16, 2^11 for fp16
    B32 = (np.arange(batch * k * n) % (2 * int_bound16(precision) - 1)).astype(np.float32)
    B32 = (B32 - int_bound16(precision) + 1).reshape(batch, k, n)
    A = offset_array(to16(precision, A32), offsets[0])
    B = offset_array(to16(precision, B32), offsets[1])
    C = offset_array(np.full((batch, m, n), np.nan, np.float32), offsets[2])
    gemm_tc(precision, A, B, C)
    want = B32[np.arange(batch)[:, None], sel]  # (batch, m, n)
    bad = np.argwhere(C != want)
    assert bad.size == 0, (
        f"{len(bad)} wrong, first (b, i, j) = {tuple(bad[0])}: got {C[tuple(bad[0])]}, want "
        f"{want[tuple(bad[0])]} (row sel = {sel[bad[0][0], bad[0][1]]})"
    )


@pytest.mark.parametrize("precision", PRECISIONS16)
@pytest.mark.parametrize("m,n,k", [(70, 37, 45), (65, 64, 301), (17, 40, 1)], ids=lambda v: str(v))
def test_gemm_16bit_random_data_within_bounds(precision, m, n, k, rng):
    """float32 data in ±[1/8, 4) (no 16-bit subnormals or overflow), rounded to 16 bits by the
    test.  Against the float64 product of the rounded values: products of 16-bit values are exact
    and only the float32 accumulation errs, at most k roundings (the emulator rounds once per MMA,
    a GPU at most once per product): |C − A16 B16| <= γ_k(2^-24) |A16||B16|.  Against the float32
    data (each operand rounded once, |δ| <= u = 2^-11 fp16, 2^-8 bf16):
    |C − AB| <= [(1 + u)^2 − 1 + γ_k(2^-24)(1 + u)^2] |A||B|."""
    batch = 2
    sign = lambda shape: rng.choice(np.array([-1.0, 1.0], np.float32), shape)  # noqa: E731
    A32 = (sign((batch, m, k)) * rng.uniform(0.125, 4.0, (batch, m, k))).astype(np.float32)
    B32 = (sign((batch, k, n)) * rng.uniform(0.125, 4.0, (batch, k, n))).astype(np.float32)
    A, B = to16(precision, A32), to16(precision, B32)
    C = np.full((batch, m, n), np.nan, np.float32)
    gemm_tc(precision, A, B, C)
    A16, B16 = value16(precision, A), value16(precision, B)
    _, rel16 = _errors(C, A16, B16)
    _, rel32 = _errors(C, A32, B32)
    u = UNIT16[precision]
    bound16 = gamma(k, U_F32)
    bound32 = (1 + u) ** 2 - 1 + gamma(k, U_F32) * (1 + u) ** 2
    report = (f"{precision} m={m} n={n} k={k}: rel. to |A16||B16| {rel16:.3g} (bound {bound16:.3g}), "
              f"rel. to |A||B| of the float32 data {rel32:.3g} (bound {bound32:.3g})")
    print(report)
    assert rel16 <= bound16, report
    assert rel32 <= bound32, report
    # and not better than a 16-bit product can be: the rounding of the operands shows
    if k > 1:
        assert rel32 > u / 64, report


# --------------------------------------------------------------------------- float64 (DMMA)
#
# MW_PRECISION_FP64 runs the DMMA kernel (WMMA m8n8k4 double, GemmTc64_64x64x16_32x32_s2) where
# the device has float64 tensor cores: sm_80+ and the emulator (which models one); SIMT DFMA
# elsewhere.  Each m8n8k4 step is four fused multiply-adds per element, so C is the float64 sum
# of k products with at most k roundings: |C − AB| <= γ_k(2^-53) |A||B|.

U_F64 = 2.0**-53
TC64_BLOCK = (64, 64, 16)


@pytest.mark.parametrize("m,n,k,off", [(70, 37, 45, 0), (70, 40, 48, 0), (17, 33, 1, 0),
                                       (65, 64, 100, 0), (33, 40, 48, 1)], ids=lambda v: str(v))
def test_gemm_fp64_exact_on_integers(m, n, k, off, rng):
    """|A| <= 2^20, |B| <= 2^10: every partial sum < 2^53, so exact.  n = 37 / k = 45 odd and the
    operands offset by one double take the 8-byte copies; n, k even and aligned the 16-byte ones
    (a 16-byte copy from an 8-byte aligned address fails the emulated launch)."""
    batch = 3
    A = offset_array(rng.integers(-(2**20), 2**20 + 1, (batch, m, k)).astype(np.float64), off)
    B = offset_array(rng.integers(-(2**10), 2**10 + 1, (batch, k, n)).astype(np.float64), off)
    C = offset_array(np.full((batch, m, n), np.nan), off)
    assert k * 2**30 < 2**53
    gemm_tc("fp64", A, B, C)
    ref = np.matmul(A.astype(np.int64), B.astype(np.int64))
    assert np.array_equal(C, ref.astype(np.float64)), (
        f"fp64 batch={batch} m={m} n={n} k={k} (block {TC64_BLOCK}): {int((C != ref).sum())} of "
        f"{C.size} differ (NaN = unwritten: {int(np.isnan(C).sum())})")


def test_gemm_fp64_selection_product_puts_every_element_in_place():
    """As the 16-bit selection test: C[b, i] must be row sel[b, i] of B[b] (distinct values)."""
    batch, m, n, k = 2, 70, 37, 100
    sel = (np.arange(batch * m).reshape(batch, m) * 37 + 11) % k
    sel[:, 0] = k - 1
    A = np.zeros((batch, m, k))
    A[np.arange(batch)[:, None], np.arange(m)[None, :], sel] = 1.0
    B = np.arange(batch * k * n, dtype=np.float64).reshape(batch, k, n) - 1000.5
    C = np.full((batch, m, n), np.nan)
    gemm_tc("fp64", A, B, C)
    want = B[np.arange(batch)[:, None], sel]
    bad = np.argwhere(C != want)
    assert bad.size == 0, f"{len(bad)} wrong, first (b, i, j) = {tuple(bad[0])}"


@pytest.mark.parametrize("m,n,k", [(65, 68, 300), (17, 33, 301)], ids=lambda v: str(v))
def test_gemm_fp64_random_data_within_gamma_k(m, n, k, rng):
    batch = 2
    A = rng.standard_normal((batch, m, k))
    B = rng.standard_normal((batch, k, n))
    C = np.full((batch, m, n), np.nan)
    gemm_tc("fp64", A, B, C)
    _, rel = _errors(C, A, B)
    assert np.finfo(np.longdouble).eps < U_F64  # the reference is more accurate than float64
    assert rel <= gamma(k, U_F64), f"fp64 m={m} n={n} k={k}: rel. error {rel:.3g}"


# --------------------------------------------------------------------------- emulator modes

_CASES = [  # (precision, batch, m, n, k, offset of A in elements)
    ("tf32", 2, 65, 40, 33, 0),
    ("tf32x3", 2, 65, 40, 33, 0),
    ("tf32", 1, 17, 33, 23, 1),
    ("tf32x3", 1, 17, 33, 23, 1),
    ("fp16", 2, 70, 40, 96, 0),  # 16-byte copies, three slices through three stages
    ("bf16", 2, 70, 40, 96, 0),
    ("fp16", 1, 17, 37, 45, 1),  # plain loads
    ("bf16", 1, 17, 37, 45, 1),
    ("fp64", 2, 65, 40, 33, 0),  # DMMA, 16-byte copies where k, n even: here 8-byte (k odd)
    ("fp64", 1, 17, 34, 32, 0),  # 16-byte copies
]

def run_cases() -> list[str]:
    """The results of _CASES on fixed random data, as hex strings of their bytes."""
    out = []
    for i, (precision, batch, m, n, k, off) in enumerate(_CASES):
        rng = np.random.default_rng(1000 + i)
        dtype = np.float64 if precision == "fp64" else np.float32
        A = rng.standard_normal((batch, m, k)).astype(dtype)
        B = rng.standard_normal((batch, k, n)).astype(dtype)
        if precision in PRECISIONS16:
            A, B = to16(precision, A), to16(precision, B)
        A = offset_array(A, off)
        C = np.full((batch, m, n), np.nan, dtype)
        gemm_tc(precision, A, B, C)
        assert not np.isnan(C).any()
        out.append(C.tobytes().hex())
    return out


@pytest.mark.parametrize(
    "env",
    [
        {"MW_EMU_WMMA_PERMUTE": "0x5eed"},
        {"MW_EMU_ASYNC_COPY": "random:7", "MW_EMU_ORDER": "shuffle:3"},
        {
            "MW_EMU_WMMA_PERMUTE": "11",
            "MW_EMU_ASYNC_COPY": "random:12345",
            "MW_EMU_ORDER": "reverse",
        },
    ],
    ids=["permuted-fragments", "random-async-copies-shuffled", "all"],
)
def test_gemm_tc_bitwise_identical_under_emulator_modes(env):
    baseline = run_cases()
    other = results_under_env("test_kernels_tc", "run_cases", env, timeout=120)
    differ = [_CASES[i] for i in range(len(_CASES)) if other[i] != baseline[i]]
    assert not differ, f"results differ under {env}: {differ}"


def test_emulator_reads_the_permutation_setting_from_the_environment():
    """The setting the subprocess above relies on is read from the environment (checked through
    the self-test module, which exposes the getter; _emu reads the same variable)."""
    pytest.importorskip("magma_wino._emu_selftest")
    code = "import magma_wino._emu_selftest as s; print(s.get_fragment_permutation())"
    env = dict(os.environ, MW_EMU_WMMA_PERMUTE="0x5eed")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(0x5EED)


# --------------------------------------------------------------------------- argument checks


def _call(dtype, precision, batch=1, m=4, n=4, k=4, A=16, B=16, C=16):
    emu.gemm_batched_ex(dtype, precision, batch, m, n, k, A, B, C, 0)


def test_gemm_batched_ex_argument_checks():
    with pytest.raises(InvalidArgumentError, match="precision 99"):
        _call(emu.FLOAT32, 99)
    with pytest.raises(InvalidArgumentError, match="dtype 7"):
        _call(7, emu.PRECISION_TF32)
    for p in (emu.PRECISION_TF32, emu.PRECISION_TF32X3):
        with pytest.raises(UnsupportedError, match="needs dtype MW_FLOAT32"):
            _call(emu.FLOAT64, p)
        with pytest.raises(InvalidArgumentError, match="must be >= 1"):
            _call(emu.FLOAT32, p, m=0)
        with pytest.raises(InvalidArgumentError, match="must not be NULL"):
            _call(emu.FLOAT32, p, B=0)
        with pytest.raises(InvalidArgumentError, match="4-byte aligned"):
            _call(emu.FLOAT32, p, A=18)
        with pytest.raises(UnsupportedError, match="too large"):
            _call(emu.FLOAT32, p, batch=2**20, m=2**12, k=2**12)
    for p in (emu.PRECISION_BF16, emu.PRECISION_FP16):
        with pytest.raises(UnsupportedError, match="needs dtype MW_FLOAT32 .the type of C"):
            _call(emu.FLOAT64, p)
        for dt in (emu.FLOAT16, emu.BFLOAT16):  # the 16-bit type is A's and B's, not dtype
            with pytest.raises(InvalidArgumentError, match="16-bit storage type of U and V only"):
                _call(dt, p)
        with pytest.raises(InvalidArgumentError, match="A and B must be 2-byte aligned"):
            _call(emu.FLOAT32, p, B=17)
        with pytest.raises(InvalidArgumentError, match="C 4-byte aligned"):
            _call(emu.FLOAT32, p, C=18)
        with pytest.raises(InvalidArgumentError, match="must be >= 1"):
            _call(emu.FLOAT32, p, k=0)
        with pytest.raises(InvalidArgumentError, match="must not be NULL"):
            _call(emu.FLOAT32, p, A=0)
        with pytest.raises(UnsupportedError, match="too large"):
            _call(emu.FLOAT32, p, batch=2**20, m=2**12, k=2**12)
    for dt in (emu.FLOAT16, emu.BFLOAT16):
        with pytest.raises(InvalidArgumentError, match="16-bit storage type"):
            _call(dt, emu.PRECISION_TF32)
        with pytest.raises(InvalidArgumentError, match="16-bit storage type"):
            emu.gemm_batched(dt, 1, 4, 4, 4, 16, 16, 16, 0)
    with pytest.raises(UnsupportedError, match="FP64 needs dtype MW_FLOAT64"):
        _call(emu.FLOAT32, emu.PRECISION_FP64)
    with pytest.raises(InvalidArgumentError, match="8-byte aligned .float64"):
        _call(emu.FLOAT64, emu.PRECISION_FP64, A=20)
    with pytest.raises(InvalidArgumentError, match="must not be NULL"):
        _call(emu.FLOAT64, emu.PRECISION_FP64, C=0)
    with pytest.raises(UnsupportedError, match="FP32 needs dtype MW_FLOAT32"):
        _call(emu.FLOAT64, emu.PRECISION_FP32)


def test_gemm_batched_ex_fp32_is_the_simt_product(rng):
    batch, m, n, k = 2, 17, 33, 9
    A = rng.standard_normal((batch, m, k)).astype(np.float32)
    B = rng.standard_normal((batch, k, n)).astype(np.float32)
    C1 = np.full((batch, m, n), np.nan, np.float32)
    C2 = np.full((batch, m, n), np.nan, np.float32)
    emu.gemm_batched(emu.FLOAT32, batch, m, n, k, ptr(A), ptr(B), ptr(C1), 0)
    emu.gemm_batched_ex(emu.FLOAT32, emu.PRECISION_FP32, batch, m, n, k, ptr(A), ptr(B), ptr(C2), 0)
    assert np.array_equal(C1, C2)


def test_gemm_batched_ex_fp64_is_the_dmma_product_on_the_emulator(rng):
    """The emulator models a device with float64 tensor cores, so MW_PRECISION_FP64 runs the DMMA
    kernel there (its own argument check shows it: 8-byte alignment, which the SIMT entry does not
    ask for); SIMT and DMMA both stay within γ_k of the exact product."""
    batch, m, n, k = 2, 17, 33, 40
    A = rng.standard_normal((batch, m, k))
    B = rng.standard_normal((batch, k, n))
    C1 = np.full((batch, m, n), np.nan)
    C2 = np.full((batch, m, n), np.nan)
    emu.gemm_batched(emu.FLOAT64, batch, m, n, k, ptr(A), ptr(B), ptr(C1), 0)
    gemm_tc("fp64", A, B, C2)
    for C in (C1, C2):
        assert _errors(C, A, B)[1] <= gamma(k, U_F64)
    raw = np.zeros(C2.size * 8 + 16, np.uint8)
    skip = (-raw.ctypes.data) % 8 + 4  # 4 bytes past an 8-byte boundary
    C_bad = raw[skip : skip + C2.size * 8].view(np.float64).reshape(C2.shape)
    with pytest.raises(InvalidArgumentError, match="8-byte aligned"):
        gemm_tc("fp64", A, B, C_bad)


# --------------------------------------------------------------------------- configurations, split-K
#
# gemm_tc_plan (kernels/gemm_tc.cuh) picks the 32x64 configuration of a precision family when
# m <= 32 or the 64x64 grid is below one wave (sm_count x 2 blocks), and splits k into S partitions
# (S <= 8, each >= 4 k slices) when the chosen grid is still below one wave and the caller gives the
# workspace (S x batch x m x n partials).  The emulator reports 132 SMs (MW_EMU_SM_COUNT changes it,
# read once: in a subprocess), so every small in-process shape below runs the 32x64 configuration,
# and split-K when a workspace is passed; the 64x64 one runs in the MW_EMU_SM_COUNT=1 subprocess.

ALL_PRECISIONS = ["tf32", "tf32x3", "fp16", "bf16", "fp64"]
CODES = {**PRECISIONS, **PRECISIONS16, "fp64": emu.PRECISION_FP64}
DTYPES = {p: (emu.FLOAT64 if p == "fp64" else emu.FLOAT32) for p in ALL_PRECISIONS}
BLOCK_K = {"tf32": 16, "tf32x3": 16, "fp16": 32, "bf16": 32, "fp64": 16}
LARGE = {"tf32": "GemmTc64x64x16_32x32_s2", "tf32x3": "GemmTc64x64x16_32x32_s2",
         "fp16": "GemmTc16_64x64x32_32x32_s3", "bf16": "GemmTc16_64x64x32_32x32_s3",
         "fp64": "GemmTc64_64x64x16_32x32_s2"}
SMALL = {"tf32": "GemmTc32x64x16_16x32_s2", "tf32x3": "GemmTc32x64x16_16x32_s2",
         "fp16": "GemmTc16_32x64x32_16x32_s3", "bf16": "GemmTc16_32x64x32_16x32_s3",
         "fp64": "GemmTc64_32x64x16_16x32_s2"}


def plan(precision: str, batch: int, m: int, n: int, k: int) -> dict:
    return emu.gemm_batched_ex_plan(DTYPES[precision], CODES[precision], batch, m, n, k)


def gemm_ws(precision: str, A, B, C, ws, nbytes: int) -> None:
    """C = A · B through mw_gemm_batched_ex_ws with `nbytes` of the workspace array ws (None:
    NULL)."""
    batch, m, k = A.shape
    n = B.shape[2]
    emu.gemm_batched_ex_ws(DTYPES[precision], CODES[precision], batch, m, n, k, ptr(A), ptr(B),
                           ptr(C), 0 if ws is None else ptr(ws), nbytes, 0)


def int_operands(precision: str, rng, batch: int, m: int, n: int, k: int):
    """Integer A, B (the encodings the kernel reads) whose products and partial sums are exact in
    the accumulator type, and the exact product as the accumulator type."""
    if precision == "fp64":
        A = rng.integers(-(2**20), 2**20 + 1, (batch, m, k)).astype(np.float64)
        B = rng.integers(-(2**10), 2**10 + 1, (batch, k, n)).astype(np.float64)
        assert k * 2**30 < 2**53
        return A, B, np.matmul(A.astype(np.int64), B.astype(np.int64)).astype(np.float64)
    bound = int_bound16(precision) if precision in PRECISIONS16 else 1024
    A32, B32 = int_array(rng, (batch, m, k), bound), int_array(rng, (batch, k, n), 8)
    assert k * bound * 8 < 2**24
    ref = np.matmul(A32.astype(np.int64), B32.astype(np.int64)).astype(np.float32)
    if precision in PRECISIONS16:
        return to16(precision, A32), to16(precision, B32), ref
    return A32, B32, ref


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _wave(p: dict) -> int:
    return p["sm_count"] * 2  # kGemmTcMinBlocks resident blocks per SM


@pytest.mark.parametrize("precision", ALL_PRECISIONS)
def test_plan_selection_rule_hits_each_configuration(precision):
    """The rule on hand-computed cases (no launch): a grid that fills the SMs keeps the 64x64
    tile and never splits; m <= 32 takes the 32x64 tile even on a full grid; a small grid takes
    the 32x64 tile and splits k; a short k does not split."""
    kk = BLOCK_K[precision]
    acc = 8 if precision == "fp64" else 4
    big = plan(precision, 36, 512, 512, 512)  # VGG-16 conv4 at batch 32, F(4,3): 2304 blocks
    assert big["sm_count"] == 132  # the emulator's documented default
    assert (big["config"], big["block_m"], big["block_n"], big["block_k"]) == (LARGE[precision], 64,
                                                                                64, kk)
    assert (big["blocks"], big["splits"], big["workspace_bytes"]) == (36 * 8 * 8, 1, 0)
    assert big["threads"] == 128
    thin = plan(precision, 36, 32, 4096, 512)  # K = 32: a 64-row tile is half zeros
    assert (thin["config"], thin["block_m"], thin["blocks"]) == (SMALL[precision], 32, 36 * 64)
    assert (thin["splits"], thin["workspace_bytes"]) == (1, 0)  # 2304 blocks >= one wave
    # 36 blocks of 64x64 < 264: 72 blocks of 32x64; S = min(8, ceil(264 / 72) = 4, slices / 4)
    small = plan(precision, 36, 64, 64, 512)
    slices = 512 // kk
    want = min(8, 4, slices // 4)
    per = _ceil(slices, want)
    assert small["config"] == SMALL[precision] and small["blocks"] == 72 < _wave(small)
    assert (small["splits"], small["slices_per_split"]) == (_ceil(slices, per), per)
    assert small["workspace_bytes"] == small["splits"] * 36 * 64 * 64 * acc
    assert emu.gemm_batched_ex_workspace(DTYPES[precision], CODES[precision], 36, 64, 64,
                                         512) == small["workspace_bytes"]
    short = plan(precision, 36, 64, 64, 7 * kk)  # 7 slices: two partitions would have < 4 each
    assert (short["config"], short["splits"], short["workspace_bytes"]) == (SMALL[precision], 1, 0)
    one = plan(precision, 1, 17, 40, 1000)  # 1 block: S capped at 8
    assert one["splits"] == 8 and one["slices_per_split"] == _ceil(_ceil(1000, kk), 8)


def test_plan_of_the_simt_product_never_splits():
    p = emu.gemm_batched_ex_plan(emu.FLOAT32, emu.PRECISION_FP32, 1, 17, 40, 1000)
    assert (p["config"], p["splits"], p["workspace_bytes"]) == ("gemm_batched", 1, 0)
    assert emu.gemm_batched_ex_workspace(emu.FLOAT32, emu.PRECISION_FP32, 1, 17, 40, 1000) == 0


# Off every tile multiple, k not a multiple of S * kK (the last partition shorter, its last slice
# partly zero-filled): (batch, m, n, k) with the split the rule gives at 132 SMs.
SPLIT_SHAPES = [(2, 33, 40, 300), (1, 17, 65, 333), (3, 70, 37, 301)]


@pytest.mark.parametrize("precision", ALL_PRECISIONS)
@pytest.mark.parametrize("shape", SPLIT_SHAPES, ids=lambda v: "x".join(map(str, v)))
def test_splitk_exact_on_integers_and_bitwise_the_unsplit_product(precision, shape, rng):
    """Exact data: every partial sum is exact, so the split product equals the integer product and
    the unsplit one bitwise.  The workspace is exactly the queried size, followed by a NaN
    sentinel that must stay untouched; C starts NaN (unwritten elements fail)."""
    batch, m, n, k = shape
    p = plan(precision, batch, m, n, k)
    assert p["splits"] >= 2, p
    assert k % (p["splits"] * p["block_k"]) != 0
    A, B, ref = int_operands(precision, rng, batch, m, n, k)
    acc = np.float64 if precision == "fp64" else np.float32
    nbytes = p["workspace_bytes"]
    assert nbytes == p["splits"] * batch * m * n * np.dtype(acc).itemsize
    ws = np.full(nbytes // np.dtype(acc).itemsize + 64, np.nan, acc)
    C = np.full((batch, m, n), np.nan, acc)
    gemm_ws(precision, A, B, C, ws, nbytes)
    assert np.array_equal(C, ref), (
        f"{precision} split {p['splits']} {shape}: {int((C != ref).sum())} differ "
        f"(NaN: {int(np.isnan(C).sum())})")
    assert np.isnan(ws[nbytes // np.dtype(acc).itemsize:]).all(), "written past the workspace"
    assert not np.isnan(ws[: nbytes // np.dtype(acc).itemsize]).any(), "a partial left unwritten"
    C0 = np.full((batch, m, n), np.nan, acc)
    gemm_tc(precision, A, B, C0)
    assert np.array_equal(C, C0)


def _bound(precision: str, k: int) -> float:
    """The element-wise bounds of the random-data tests above, relative to |A||B| of the operands
    the tensor cores multiply: they hold for any order of the k additions (recursive summation of
    k terms in any binary tree: at most k - 1 roundings), so split-K keeps them."""
    return {"tf32": tf32_bound(k), "tf32x3": tf32x3_bound(k), "fp64": gamma(k, U_F64)}.get(
        precision, gamma(k, U_F32))


@pytest.mark.parametrize("precision", ALL_PRECISIONS)
def test_splitk_random_data_within_the_unsplit_bounds(precision, rng):
    """Random data: split and unsplit products both within the precision's bound against the
    longdouble product; they differ only by the order of the float additions."""
    batch, m, n, k = 2, 33, 40, 300
    dtype = np.float64 if precision == "fp64" else np.float32
    A = rng.standard_normal((batch, m, k)).astype(dtype)
    B = rng.standard_normal((batch, k, n)).astype(dtype)
    if precision in PRECISIONS16:
        A, B = to16(precision, A), to16(precision, B)
        Av, Bv = value16(precision, A), value16(precision, B)
    else:
        Av, Bv = A, B
    p = plan(precision, batch, m, n, k)
    assert p["splits"] >= 2
    ws = np.full(p["workspace_bytes"] // np.dtype(dtype).itemsize, np.nan, dtype)
    Cs = np.full((batch, m, n), np.nan, dtype)
    gemm_ws(precision, A, B, Cs, ws, p["workspace_bytes"])
    C0 = np.full((batch, m, n), np.nan, dtype)
    gemm_tc(precision, A, B, C0)
    bound = _bound(precision, k)
    for label, C in (("split", Cs), ("unsplit", C0)):
        _, rel = _errors(C, Av, Bv)
        assert rel <= bound, f"{precision} {label}: rel. error {rel:.3g} > {bound:.3g}"
    # the two differ by at most the sum of both bounds, element-wise
    S = np.matmul(np.abs(Av).astype(np.float64), np.abs(Bv).astype(np.float64))
    assert (np.abs(Cs.astype(np.float64) - C0) <= 2 * bound * S).all()


@pytest.mark.parametrize("precision", ALL_PRECISIONS)
def test_workspace_null_or_too_small_is_the_unsplit_product(precision, rng):
    """NULL or one byte short of the queried size: no split (the workspace untouched), C bitwise
    that of mw_gemm_batched_ex."""
    batch, m, n, k = 1, 17, 65, 333
    dtype = np.float64 if precision == "fp64" else np.float32
    A = rng.standard_normal((batch, m, k)).astype(dtype)
    B = rng.standard_normal((batch, k, n)).astype(dtype)
    if precision in PRECISIONS16:
        A, B = to16(precision, A), to16(precision, B)
    C0 = np.full((batch, m, n), np.nan, dtype)
    gemm_tc(precision, A, B, C0)
    nbytes = plan(precision, batch, m, n, k)["workspace_bytes"]
    assert nbytes > 0
    ws = np.full(nbytes // np.dtype(dtype).itemsize, -3.0, dtype)
    for buf, size in ((None, 0), (None, nbytes), (ws, nbytes - 1), (ws, 0)):
        C = np.full((batch, m, n), np.nan, dtype)
        gemm_ws(precision, A, B, C, buf, size)
        assert np.array_equal(C, C0), f"{precision} workspace {size} of {nbytes} bytes"
        assert (ws == -3.0).all()
    C = np.full((batch, m, n), np.nan, dtype)
    gemm_ws(precision, A, B, C, ws, nbytes)  # the full size does split: a different order
    assert not (ws == -3.0).any()


def test_workspace_argument_checks():
    ws = lambda **kw: emu.gemm_batched_ex_ws(  # noqa: E731
        kw.get("dtype", emu.FLOAT32), kw.get("precision", emu.PRECISION_TF32), 1, 17, 40, 300,
        16, 16, 16, kw.get("w", 32), kw.get("nbytes", 1 << 20), 0)
    with pytest.raises(InvalidArgumentError, match="workspace must be 4-byte aligned"):
        ws(w=34)
    with pytest.raises(InvalidArgumentError, match="workspace must be 8-byte aligned .float64"):
        ws(dtype=emu.FLOAT64, precision=emu.PRECISION_FP64, w=36)
    with pytest.raises(InvalidArgumentError, match="precision 99"):
        ws(precision=99)
    with pytest.raises(UnsupportedError, match="needs dtype MW_FLOAT32"):
        ws(dtype=emu.FLOAT64)
    for fn in (emu.gemm_batched_ex_workspace, emu.gemm_batched_ex_plan):
        with pytest.raises(InvalidArgumentError, match="must be >= 1"):
            fn(emu.FLOAT32, emu.PRECISION_TF32, 1, 17, 0, 300)
        with pytest.raises(InvalidArgumentError, match="precision 99"):
            fn(emu.FLOAT32, 99, 1, 17, 40, 300)
        with pytest.raises(InvalidArgumentError, match="16-bit storage type"):
            fn(emu.FLOAT16, emu.PRECISION_FP16, 1, 17, 40, 300)
        with pytest.raises(UnsupportedError, match="FP64 needs dtype MW_FLOAT64"):
            fn(emu.FLOAT32, emu.PRECISION_FP64, 1, 17, 40, 300)
        with pytest.raises(UnsupportedError, match="too large"):
            fn(emu.FLOAT32, emu.PRECISION_TF32, 2**20, 2**12, 4, 2**12)


_SPLIT_CASES = [  # (precision, batch, m, n, k): split at 132 SMs
    ("tf32", 2, 33, 40, 300),
    ("tf32x3", 1, 17, 65, 333),
    ("fp16", 1, 17, 65, 333),
    ("bf16", 2, 33, 40, 300),
    ("fp64", 1, 17, 65, 333),
]


def run_split_cases() -> list[str]:
    """The split-K results of _SPLIT_CASES on fixed random data, as hex strings."""
    out = []
    for i, (precision, batch, m, n, k) in enumerate(_SPLIT_CASES):
        rng = np.random.default_rng(2000 + i)
        dtype = np.float64 if precision == "fp64" else np.float32
        A = rng.standard_normal((batch, m, k)).astype(dtype)
        B = rng.standard_normal((batch, k, n)).astype(dtype)
        if precision in PRECISIONS16:
            A, B = to16(precision, A), to16(precision, B)
        p = plan(precision, batch, m, n, k)
        assert p["splits"] >= 2
        ws = np.full(p["workspace_bytes"] // np.dtype(dtype).itemsize, np.nan, dtype)
        C = np.full((batch, m, n), np.nan, dtype)
        gemm_ws(precision, A, B, C, ws, p["workspace_bytes"])
        assert not np.isnan(C).any()
        out.append(C.tobytes().hex())
    return out


def test_splitk_bitwise_identical_under_emulator_modes():
    """Random block order, random early completion of the copies and permuted fragments: the
    partials land in their own slots and are summed in a fixed order, so C is bitwise the same."""
    baseline = run_split_cases()
    env = {"MW_EMU_WMMA_PERMUTE": "0x77", "MW_EMU_ASYNC_COPY": "random:99",
           "MW_EMU_ORDER": "shuffle:5"}
    other = results_under_env("test_kernels_tc", "run_split_cases", env)
    differ = [_SPLIT_CASES[i] for i in range(len(_SPLIT_CASES)) if other[i] != baseline[i]]
    assert not differ, f"split-K results differ under {env}: {differ}"


def run_one_sm_cases() -> list[str]:
    """On an emulated 1-SM device (one wave = 2 blocks): the 64x64 configurations on integer
    data straddling the 64-tile edges (exact), and a split with m <= 32.  Returns failures."""
    bad = []
    rng = np.random.default_rng(7)
    for precision in ALL_PRECISIONS:
        for batch, m, n, k in [(2, 65, 65, 33), (1, 70, 37, 45), (2, 64, 64, 64), (2, 65, 40, 100)]:
            p = plan(precision, batch, m, n, k)
            if p["sm_count"] != 1 or p["config"] != LARGE[precision] or p["splits"] != 1:
                bad.append(f"{precision} {(batch, m, n, k)}: plan {p}")
                continue
            A, B, ref = int_operands(precision, rng, batch, m, n, k)
            C = np.full(ref.shape, np.nan, ref.dtype)
            gemm_tc(precision, A, B, C)
            if not np.array_equal(C, ref):
                bad.append(f"{precision} {(batch, m, n, k)}: {int((C != ref).sum())} differ")
        p = plan(precision, 1, 17, 40, 300)  # 1 block of 32x64 < 2: S = min(8, 2, slices / 4)
        if p["config"] != SMALL[precision] or p["splits"] != 2:
            bad.append(f"{precision} small split: plan {p}")
            continue
        A, B, ref = int_operands(precision, rng, 1, 17, 40, 300)
        ws = np.full(p["workspace_bytes"] // ref.itemsize, np.nan, ref.dtype)
        C = np.full(ref.shape, np.nan, ref.dtype)
        gemm_ws(precision, A, B, C, ws, p["workspace_bytes"])
        if not np.array_equal(C, ref):
            bad.append(f"{precision} split on 1 SM: {int((C != ref).sum())} differ")
    return bad


def test_64x64_configurations_exact_on_a_one_sm_device():
    """MW_EMU_SM_COUNT=1 (read once: a subprocess): grids of >= 2 blocks fill the device, so the
    64x64 configurations run; exact on integers over the 64-row and 64-column edges."""
    out = results_under_env("test_kernels_tc", "run_one_sm_cases", {"MW_EMU_SM_COUNT": "1"})
    assert out == [], "\n".join(out)
