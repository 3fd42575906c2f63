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

Not tested here: the second grid chunk (batch > 65535): 65,537 emulated 128-thread blocks take
~70 s; gemm_tc_launch's chunk loop is the one of gemm_batched_launch, which
test_kernels_emulator.py covers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import magma_wino._emu as emu
from magma_wino.errors import InvalidArgumentError, UnsupportedError

TC_BLOCK = (64, 64, 16)  # GemmTc64x64x16_32x32_s2 in kernels/gemm_tc.cuh: (kM, kN, kK)
PRECISIONS = {"tf32": emu.PRECISION_TF32, "tf32x3": emu.PRECISION_TF32X3}

U_TF32 = 2.0**-11  # unit roundoff of TF32 (11 significant bits, round to nearest)
U_F32 = 2.0**-24


def ptr(a: np.ndarray) -> int:
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def gemm_tc(precision: str, A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
    batch, m, k = A.shape
    n = B.shape[2]
    emu.gemm_batched_ex(
        emu.FLOAT32, PRECISIONS[precision], batch, m, n, k, ptr(A), ptr(B), ptr(C), 0
    )


def offset_array(values: np.ndarray, offset_floats: int) -> np.ndarray:
    """A copy of values whose data start `offset_floats` floats past a 64-byte boundary."""
    raw = np.zeros(values.size + 32, np.float32)
    skip = (-raw.ctypes.data % 64) // 4 + offset_floats
    out = raw[skip : skip + values.size].reshape(values.shape)
    out[...] = values
    assert out.ctypes.data % 64 == 4 * offset_floats
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


# --------------------------------------------------------------------------- emulator modes

_CASES = [  # (precision, batch, m, n, k, offset of A in floats)
    ("tf32", 2, 65, 40, 33, 0),
    ("tf32x3", 2, 65, 40, 33, 0),
    ("tf32", 1, 17, 33, 23, 1),
    ("tf32x3", 1, 17, 33, 23, 1),
]

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import test_kernels_tc as t
    print(json.dumps(t.run_cases()))
    """
)


def run_cases() -> list[str]:
    """The results of _CASES on fixed random data, as hex strings of their bytes."""
    out = []
    for i, (precision, batch, m, n, k, off) in enumerate(_CASES):
        rng = np.random.default_rng(1000 + i)
        A = offset_array(rng.standard_normal((batch, m, k)).astype(np.float32), off)
        B = rng.standard_normal((batch, k, n)).astype(np.float32)
        C = np.full((batch, m, n), np.nan, np.float32)
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
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("MW_EMU_")}
    child_env.update(env)
    script = _SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", script], env=child_env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    other = json.loads(proc.stdout.strip().splitlines()[-1])
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
    with pytest.raises(UnsupportedError, match="MW_PRECISION_BF16 is reserved"):
        _call(emu.FLOAT32, emu.PRECISION_BF16)
    with pytest.raises(UnsupportedError, match="MW_PRECISION_FP16 is reserved"):
        _call(emu.FLOAT32, emu.PRECISION_FP16)
    with pytest.raises(UnsupportedError, match="FP64 needs dtype MW_FLOAT64"):
        _call(emu.FLOAT32, emu.PRECISION_FP64)
    with pytest.raises(UnsupportedError, match="FP32 needs dtype MW_FLOAT32"):
        _call(emu.FLOAT64, emu.PRECISION_FP32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_batched_ex_fp32_fp64_are_the_simt_products(dtype, rng):
    batch, m, n, k = 2, 17, 33, 9
    A = rng.standard_normal((batch, m, k)).astype(dtype)
    B = rng.standard_normal((batch, k, n)).astype(dtype)
    code = emu.FLOAT32 if dtype == np.float32 else emu.FLOAT64
    prec = emu.PRECISION_FP32 if dtype == np.float32 else emu.PRECISION_FP64
    C1 = np.full((batch, m, n), np.nan, dtype)
    C2 = np.full((batch, m, n), np.nan, dtype)
    emu.gemm_batched(code, batch, m, n, k, ptr(A), ptr(B), ptr(C1), 0)
    emu.gemm_batched_ex(code, prec, batch, m, n, k, ptr(A), ptr(B), ptr(C2), 0)
    assert np.array_equal(C1, C2)
