"""The SIMT batched products (kernels/gemm_batched.cuh: float32 / float64, FFMA / DFMA) on the
emulator, through the extension's ``gemm_batched`` (the C ABI ``mw_gemm_batched``).

The kernel stages k slices through two shared-memory stages: B by cp.async (16-byte copies on
16-byte aligned rows, element copies otherwise, zero-filled outside the matrix), A through
registers (transposed on the store) or, on unaligned rows, by element copies.  So every test
here is run over every tile configuration the dispatcher picks, on both copy paths:

* exact results on integer data (every partial sum is an integer below 2^24, so any order of
  the FMAs gives the exact product), with m, n and k straddling each configuration's block
  edges, k = 1, batch > 1, C pre-filled with NaN inside a sentinel-filled buffer (every element
  written, nothing before or after C touched);
* random data within the worst-case bound |C - AB| <= γ_k (|A|·|B|) element-wise, γ_k =
  k·u / (1 - k·u) with u the dtype's unit roundoff (Higham, Accuracy and Stability, §3.1: any
  summation order, with or without FMA), against an extended-precision product;
* operands offset from 16-byte boundaries (the element-copy path, and C's element stores next
  to aligned A and B);
* bitwise identical results when the emulator completes asynchronous copies late or early at
  random (MW_EMU_ASYNC_COPY=random:SEED) and runs the threads in other orders: a missing wait
  or barrier reads poisoned shared memory there.  The setting is read once per process, so those
  runs are subprocesses;
* the compile-time bank-conflict model of the header (gemm_detail::excess_wavefronts) on known
  patterns, compiled with g++.

SIMT_TILES and simt_config restate the header's configuration table and selection rule (the C
layer does not report them); test_cases_hit_every_configuration_and_edge keeps the case lists
honest against that restatement.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from emu_subprocess import results_under_env

import magma_wino._emu as emu

ROOT = Path(__file__).resolve().parents[1]
DT_CODE = {np.dtype(np.float32): emu.FLOAT32, np.dtype(np.float64): emu.FLOAT64}
DTYPES = [np.float32, np.float64]

SIMT_TILES = {  # kernels/gemm_batched.cuh: name -> (BLK_M, BLK_N, BLK_K)
    "128x128": (128, 128, 8),  # GemmTile128x128, float only, 16-byte aligned rows only
    "64x64": (64, 64, 16),  # GemmTile64x64
    "32x64": (32, 64, 8),  # GemmTile32x64
    "16x32": (16, 32, 8),  # GemmTile16x32
}


def rows_aligned(dtype, k: int, n: int, A: np.ndarray, B: np.ndarray) -> bool:
    """The header's condition for 16-byte copies (gemm_batched_vectorized_if_aligned)."""
    v = 16 // np.dtype(dtype).itemsize
    return k % v == 0 and n % v == 0 and A.ctypes.data % 16 == 0 and B.ctypes.data % 16 == 0


def simt_config(dtype, m: int, n: int, aligned: bool) -> str:
    """The selection rule of mw::gemm_batched<T>."""
    if np.dtype(dtype) == np.float32 and m >= 128 and n >= 128:
        return "128x128" if aligned else "64x64"
    if m >= 64 and n >= 64:
        return "64x64"
    if m >= 32 and n >= 64:
        return "32x64"
    return "16x32"


# (m, n, k): per configuration, aligned rows (k, n multiples of 4: the 16-byte path of both
# dtypes) and unaligned rows (the element-copy path), m, n, k on and off the block edges.
CASES = [
    # 128x128 (float, aligned): m % 128 in {0, 1, 127}, n % 128 in {0, 4, 124}, k % 8 in {0, 4}
    (128, 128, 8), (129, 132, 12), (255, 252, 36), (130, 256, 4),
    # m, n >= 128 unaligned -> 64x64 element copies (float), 64x64 (double)
    (130, 131, 33), (129, 255, 1), (255, 129, 17),
    # 64x64: m or n in [64, 128)
    (64, 64, 16), (65, 68, 20), (127, 124, 12), (200, 100, 32),
    (65, 65, 17), (127, 127, 15), (64, 129, 1), (130, 67, 33),
    # 32x64: 32 <= m < 64, n >= 64
    (32, 64, 8), (33, 68, 12), (63, 132, 20), (33, 65, 9), (63, 127, 7), (40, 64, 3),
    # 16x32: m < 32 or n < 64
    (1, 1, 1), (15, 31, 7), (16, 32, 8), (17, 36, 12), (31, 63, 17), (200, 33, 9),
    (33, 17, 23), (5, 300, 5), (128, 40, 2),
]


def _config_of(dtype, m, n, k) -> str:
    v = 16 // np.dtype(dtype).itemsize
    return simt_config(dtype, m, n, k % v == 0 and n % v == 0)  # arrays made 16-byte aligned


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cases_hit_every_configuration_and_edge(dtype):
    """Every configuration of this dtype is hit on both copy paths (128x128: aligned only), with
    m % BLK_M in {0, 1, BLK_M - 1}, and n, k remainders 0, s, BLK - s (s = 4 where only aligned
    rows reach the configuration, else 1)."""
    v = 16 // np.dtype(dtype).itemsize
    want = {name for name in SIMT_TILES if name != "128x128" or np.dtype(dtype) == np.float32}
    paths: dict[str, set[bool]] = {}
    for m, n, k in CASES:
        paths.setdefault(_config_of(dtype, m, n, k), set()).add(k % v == 0 and n % v == 0)
    assert set(paths) == want, sorted(paths)
    for name in want:
        assert paths[name] == ({True} if name == "128x128" else {True, False}), (name, paths[name])
        bm, bn, bk = SIMT_TILES[name]
        mine = [c for c in CASES if _config_of(dtype, *c) == name]
        s = 4 if name == "128x128" else 1
        for rems, blk, step, what in [({m % bm for m, _, _ in mine}, bm, 1, "m"),
                                      ({n % bn for _, n, _ in mine}, bn, s, "n"),
                                      ({k % bk for _, _, k in mine}, bk, s, "k")]:
            assert {0, step, blk - step} <= rems, f"{name}: {what} remainders {sorted(rems)}"


# --------------------------------------------------------------------------- helpers


def ptr(a: np.ndarray) -> int:
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def placed(values: np.ndarray, offset_bytes: int = 0, guard: int = 0, fill=None):
    """A C-contiguous copy of ``values`` whose data start ``offset_bytes`` past a 64-byte
    boundary, with ``guard`` elements of sentinel before and after it.  Returns (array, buffer
    view of guard + array + guard)."""
    dt = values.dtype
    assert offset_bytes % dt.itemsize == 0
    count = values.size + 2 * guard
    raw = np.empty(count * dt.itemsize + offset_bytes + 64 + guard * dt.itemsize, np.uint8)
    start = (-raw.ctypes.data - guard * dt.itemsize) % 64 + offset_bytes
    buf = raw[start:start + count * dt.itemsize].view(dt)
    buf[:] = SENTINEL
    a = buf[guard:guard + values.size].reshape(values.shape)
    a[...] = values if fill is None else fill
    assert a.ctypes.data % 64 == offset_bytes and a.flags["C_CONTIGUOUS"]
    return a, buf


SENTINEL = -7.25


def int_array(rng, shape, dtype, lo=-4, hi=4) -> np.ndarray:
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def run_gemm(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
    batch, m, k = A.shape
    n = B.shape[2]
    assert B.shape == (batch, k, n) and C.shape == (batch, m, n) and A.dtype == B.dtype == C.dtype
    emu.gemm_batched(DT_CODE[A.dtype], batch, m, n, k, ptr(A), ptr(B), ptr(C), 0)


def gamma(k: int, dtype) -> float:
    u = float(np.finfo(np.dtype(dtype)).eps) / 2
    return k * u / (1 - k * u)


def error_ratio(C: np.ndarray, A: np.ndarray, B: np.ndarray) -> float:
    """max |C - A·B| / (γ_k (|A|·|B|)) element-wise, A·B in extended precision."""
    exact = np.matmul(A.astype(np.longdouble), B.astype(np.longdouble))
    bound = np.matmul(np.abs(A).astype(np.longdouble), np.abs(B).astype(np.longdouble))
    bound *= gamma(A.shape[2], A.dtype)
    return float((np.abs(C.astype(np.longdouble) - exact) / bound).max())


# --------------------------------------------------------------------------- exact on integers


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("m,n,k", CASES, ids=lambda v: str(v))
def test_exact_on_integers_every_element_written_nothing_outside(m, n, k, dtype, rng):
    batch = 2
    A = int_array(rng, (batch, m, k), dtype)
    B = int_array(rng, (batch, k, n), dtype)
    C, buf = placed(np.empty((batch, m, n), dtype), guard=64, fill=np.nan)
    run_gemm(A, B, C)
    ref = np.matmul(A.astype(np.int64), B.astype(np.int64))
    assert np.abs(ref).max() < 2**24
    where = f"{np.dtype(dtype).name} batch={batch} m={m} n={n} k={k} (config {_config_of(dtype, m, n, k)})"
    assert not np.isnan(C).any(), f"{where}: {int(np.isnan(C).sum())} elements unwritten"
    assert np.array_equal(C, ref), f"{where}: {int((C != ref).sum())} of {C.size} differ"
    assert (buf[:64] == SENTINEL).all() and (buf[-64:] == SENTINEL).all(), f"{where}: wrote outside C"


@pytest.mark.parametrize("batch", [1, 3, 16])
def test_exact_per_batch_entry_on_the_128x128_tile(batch, rng):
    """Each batch entry its own product (batch strides m·k, k·n, m·n) on the largest tile."""
    m, n, k = 129, 132, 20
    A = int_array(rng, (batch, m, k), np.float32)
    B = int_array(rng, (batch, k, n), np.float32)
    C, _ = placed(np.empty((batch, m, n), np.float32), fill=np.nan)
    run_gemm(A, B, C)
    ref = np.matmul(A, B)
    bad = [b for b in range(batch) if not np.array_equal(C[b], ref[b])]
    assert not bad, f"batch={batch} m={m} n={n} k={k}: entries {bad} wrong"


def test_exact_with_many_k_slices_and_sums_near_2_24(rng):
    """k = 1001 (126 slices of 8, the last one partial) through both stages many times, |sums|
    up to ~2^22: still exact, on the 128x128 tile and the 64x64 element-copy path."""
    for n in (128, 129):
        m, k = 130, 1001 if n == 129 else 1000
        A = int_array(rng, (1, m, k), np.float32, -64, 64)
        B = int_array(rng, (1, k, n), np.float32, -64, 64)
        C, _ = placed(np.empty((1, m, n), np.float32), fill=np.nan)
        run_gemm(A, B, C)
        ref = np.matmul(A.astype(np.int64), B.astype(np.int64))
        assert np.abs(ref).max() < 2**24
        assert np.array_equal(C, ref.astype(np.float32)), f"m={m} n={n} k={k}"


# --------------------------------------------------------------------------- offsets


# (dtype, offset in bytes): off 16-byte boundaries, element-aligned (a GPU needs that).
OFFSETS = [(np.float32, 4), (np.float32, 8), (np.float32, 12), (np.float64, 8)]
# Aligned sizes (k, n multiples of 4) per configuration, so that only the offsets decide the path.
OFFSET_SHAPES = [(130, 132, 20), (65, 68, 20), (40, 64, 16), (17, 36, 8)]


@pytest.mark.parametrize("operands", ["A", "B", "C", "ABC"])
@pytest.mark.parametrize("dtype,offset", OFFSETS, ids=[f"{np.dtype(d).name}+{o}B" for d, o in OFFSETS])
@pytest.mark.parametrize("m,n,k", OFFSET_SHAPES, ids=lambda v: str(v))
def test_exact_on_operands_off_16_byte_boundaries(m, n, k, dtype, offset, operands, rng):
    """A or B offset: the element-copy path.  C offset alone: 16-byte copies of A and B, element
    stores of C (its vector stores need 16-byte aligned rows too)."""
    batch = 2
    arrays = {}
    for name, shape in (("A", (batch, m, k)), ("B", (batch, k, n))):
        arrays[name], _ = placed(int_array(rng, shape, dtype), offset if name in operands else 0)
    C, buf = placed(np.empty((batch, m, n), dtype), offset if "C" in operands else 0, guard=8,
                    fill=np.nan)
    A, B = arrays["A"], arrays["B"]
    run_gemm(A, B, C)
    ref = np.matmul(A.astype(np.int64), B.astype(np.int64))
    where = (f"{np.dtype(dtype).name} m={m} n={n} k={k} {operands} +{offset} B (config "
             f"{simt_config(dtype, m, n, rows_aligned(dtype, k, n, A, B))})")
    assert np.array_equal(C, ref), f"{where}: {int((C != ref).sum())} of {C.size} differ"
    assert (buf[:8] == SENTINEL).all() and (buf[-8:] == SENTINEL).all(), f"{where}: wrote outside C"


# --------------------------------------------------------------------------- random data


RANDOM_SHAPES = [(130, 67, 33), (129, 132, 300), (130, 131, 301), (65, 68, 100), (40, 64, 37),
                 (17, 33, 301)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("m,n,k", RANDOM_SHAPES, ids=lambda v: str(v))
def test_random_data_within_the_gamma_k_bound(m, n, k, dtype, rng):
    """Standard normal data: every element within γ_k·(|A|·|B|) of the exact product (measured:
    1-12% of it, both dtypes).  A float32 accumulator in the float64 path, a lost k slice or a slice
    multiplied twice is far outside."""
    batch = 2
    A = rng.standard_normal((batch, m, k)).astype(dtype)
    B = rng.standard_normal((batch, k, n)).astype(dtype)
    C, _ = placed(np.empty((batch, m, n), dtype), fill=np.nan)
    run_gemm(A, B, C)
    ratio = error_ratio(C, A, B)
    assert ratio <= 1.0, f"{np.dtype(dtype).name} m={m} n={n} k={k}: error / γ_k bound = {ratio:.3g}"


# --------------------------------------------------------------------------- emulator modes

# (dtype, m, n, k, offset of A in bytes): every configuration, both copy paths.
_MODE_CASES = [
    ("float32", 130, 132, 36, 0),  # 128x128, 16-byte copies
    ("float32", 130, 131, 33, 0),  # 64x64, element copies
    ("float32", 65, 68, 40, 4),  # 64x64, element copies (offset A)
    ("float64", 65, 68, 40, 0),  # 64x64, 16-byte copies
    ("float64", 40, 67, 19, 0),  # 32x64, element copies
    ("float32", 40, 64, 24, 0),  # 32x64, 16-byte copies
    ("float32", 17, 33, 23, 0),  # 16x32, element copies
    ("float64", 17, 36, 12, 0),  # 16x32, 16-byte copies
]

def run_mode_cases() -> list[str]:
    """The results of _MODE_CASES on fixed random data, as hex strings of their bytes."""
    out = []
    for i, (dtype, m, n, k, off) in enumerate(_MODE_CASES):
        rng = np.random.default_rng(2000 + i)
        A, _ = placed(rng.standard_normal((2, m, k)).astype(dtype), off)
        B, _ = placed(rng.standard_normal((2, k, n)).astype(dtype))
        C, _ = placed(np.empty((2, m, n), dtype), fill=np.nan)
        run_gemm(A, B, C)
        assert not np.isnan(C).any(), (dtype, m, n, k, off)
        out.append(C.tobytes().hex())
    return out


@pytest.mark.parametrize(
    "env",
    [
        {"MW_EMU_ASYNC_COPY": "random:7"},
        {"MW_EMU_ASYNC_COPY": "random:12345", "MW_EMU_ORDER": "reverse"},
        {"MW_EMU_ASYNC_COPY": "random:99", "MW_EMU_ORDER": "shuffle:3"},
    ],
    ids=["random-async-copies", "random-async-copies-reversed", "random-async-copies-shuffled"],
)
def test_bitwise_identical_under_random_copy_completion_and_thread_orders(env):
    baseline = run_mode_cases()
    other = results_under_env("test_kernels_simt_gemm", "run_mode_cases", env, timeout=300)
    differ = [_MODE_CASES[i] for i in range(len(_MODE_CASES)) if other[i] != baseline[i]]
    assert not differ, f"results differ under {env}: {differ}"


# --------------------------------------------------------------------------- bank-conflict model

_MODEL_CHECKS = """
#include "gemm_batched.cuh"
using namespace mw;
using namespace mw::gemm_detail;
// lane l reads `words` words from l * stride (+ offset)
constexpr WarpAccess strided(int stride, int words, int offset = 0) {
  WarpAccess a;
  a.words = words;
  for (int l = 0; l < 32; ++l) a.base[l] = l * stride + offset;
  return a;
}
// the unpadded transposed float4 store of the old kernel: 16 rows x 2 groups, row stride 128
constexpr WarpAccess transposed_store(int lda) {
  WarpAccess a;
  for (int l = 0; l < 32; ++l) a.base[l] = (l % 2 * 4) * lda + l / 2;
  return a;
}
static_assert(excess_wavefronts(strided(1, 1)) == 0, "32 consecutive words: 1 wavefront");
static_assert(excess_wavefronts(strided(2, 1)) == 1, "stride 2: 2-way");
static_assert(excess_wavefronts(strided(32, 1)) == 31, "stride 32: 32-way");
static_assert(excess_wavefronts(strided(0, 4)) == 0, "broadcast of 16 bytes");
static_assert(excess_wavefronts(strided(4, 4)) == 0, "LDS.128, 512 contiguous bytes: 4");
static_assert(excess_wavefronts(strided(8, 4)) == 4, "LDS.128 with a gap: 8 instead of 4");
static_assert(excess_wavefronts(transposed_store(128)) == 1, "unpadded: 2-way");
static_assert(excess_wavefronts(transposed_store(132)) == 0, "padded by 4: conflict-free");
static_assert(shared_accesses_conflict_free<float, GemmTile128x128, 4>(), "");
static_assert(shared_accesses_conflict_free<float, GemmTile64x64, 1>(), "");
static_assert(shared_accesses_conflict_free<double, GemmTile64x64, 2>(), "");
static_assert(shared_accesses_conflict_free<double, GemmTile16x32, 1>(), "");
int main() { return 0; }
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not on PATH")
def test_bank_conflict_model_counts_known_patterns(tmp_path):
    """The model behind the header's static_assert: conflict-free patterns give 0 extra
    wavefronts, strided and unpadded transposed ones the textbook counts.  Also, a broken
    expectation must fail the compile (so the checks above are evaluated at all)."""
    src = tmp_path / "model.cpp"
    cmd = ["g++", "-std=c++20", "-fsyntax-only", str(src), f"-I{ROOT / 'kernels'}",
           f"-I{ROOT / 'kernels' / 'emu' / 'include'}", f"-I{ROOT / 'kernels' / 'include'}"]
    src.write_text(_MODEL_CHECKS)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    src.write_text(_MODEL_CHECKS.replace("(transposed_store(128)) == 1", "(transposed_store(128)) == 0"))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "unpadded" in run.stderr, run.stderr[-3000:]
