"""WMMA (nvcuda::wmma) in the CUDA emulator: kernels/emu/include/mma.h on the test kernels of
tests/emu/wmma_kernels.cu.

GEMMs in every supported precision against NumPy: exact on integer data, within the documented
bound on random data (operands rounded to TF32 / bfloat16 / binary16 as the kernel does, exact
products, float64 sums); bitwise identical for any worker count and with the fragment
permutation on; a kernel that assumes a lane mapping is caught by the permutation; every WMMA
diagnostic fires and names its line.
"""

from __future__ import annotations

import re
from pathlib import Path

import kernel_files
import numpy as np
import pytest

emu = pytest.importorskip(
    "magma_wino._emu_selftest", reason="the emulator self-test extension is not built"
)
if not hasattr(emu, "wmma_gemm"):
    pytest.skip("the emulator self-test extension predates WMMA", allow_module_level=True)

KERNEL_SOURCE = Path(__file__).with_name("wmma_kernels.cu")
LAUNCH_FAILURE = 719
MISALIGNED_ADDRESS = 716
# precision -> (tile m, n, k)
TILES = {
    "tf32": (16, 16, 8),
    "tf32-raw": (16, 16, 8),
    "tf32x3": (16, 16, 8),
    "bf16": (16, 16, 16),
    "fp16": (16, 16, 16),
    "fp16-acc16": (16, 16, 16),
    "fp64": (8, 8, 4),
}


def marked_line(tag: str) -> int:
    """Line of the `// MARK: tag` comment (of the line after it for `MARK: tag (next line)`)."""
    return kernel_files.marked_line(KERNEL_SOURCE, tag)


@pytest.fixture(autouse=True)
def restore_settings():
    saved = (emu.get_workers(), emu.get_fragment_permutation())
    yield
    emu.set_workers(saved[0])
    emu.set_fragment_permutation(saved[1])


@pytest.fixture
def rng():
    return np.random.default_rng(11)


# ---- references -------------------------------------------------------------------------------


def tf32_round(x):
    """__float_to_tf32: nearest, ties away from zero (finite inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    magnitude = ((u & 0x7FFFFFFF) + 0x1000) & 0xFFFFE000
    return ((u & 0x80000000) | magnitude).astype(np.uint32).view(np.float32)


def tf32_truncate(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return (u & np.uint32(0xFFFFE000)).view(np.float32)


def bf16_round(x):
    bits = emu.bf16_bits(x).astype(np.uint32) << 16
    return bits.view(np.float32)


def operand(x, precision):
    """The operand values the tensor core multiplies, as float64."""
    x = np.asarray(x, dtype=np.float64 if precision == "fp64" else np.float32)
    if precision == "tf32":
        x = tf32_round(x)
    elif precision == "tf32-raw":
        x = tf32_truncate(x)
    elif precision == "bf16":
        x = bf16_round(x)
    elif precision in ("fp16", "fp16-acc16"):
        x = x.astype(np.float16)
    return np.asarray(x, dtype=np.float64)


def reference(a, b, c, precision):
    """float64 (a b + c) from the rounded operands, and sum |a||b| + |c| (for the bound)."""
    if precision == "tf32x3":  # float32 operands, split exactly enough: the float64 product
        ra, rb = np.float64(np.float32(a)), np.float64(np.float32(b))
    else:
        ra, rb = operand(a, precision), operand(b, precision)
    acc = (
        np.float16
        if precision == "fp16-acc16"
        else np.float64
        if precision == "fp64"
        else np.float32
    )
    rc = np.zeros((a.shape[0], b.shape[1])) if c is None else np.asarray(c, acc).astype(np.float64)
    return ra @ rb + rc, np.abs(ra) @ np.abs(rb) + np.abs(rc)


def tolerance(magnitude, k, precision):
    """Per-element bound: every mma rounds its sum once (k / tile_k of them plus the final)."""
    steps = k // TILES[precision][2] + 1
    if precision == "fp16-acc16":
        return steps * 2.0**-11 * magnitude
    if precision == "fp64":
        return k * 2.0**-52 * magnitude
    if precision == "tf32x3":  # the dropped a_lo b_lo and the residues: 3 * 2^-22 relative
        return (steps * 2.0**-24 + 3 * 2.0**-22) * magnitude
    return steps * 2.0**-24 * magnitude


# ---- GEMMs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", list(TILES))
def test_wmma_gemm_on_integers_equals_numpy_exactly(precision, rng):
    tm, tn, tk = TILES[precision]
    m, n, k = 2 * tm, 3 * tn, 4 * tk
    a = rng.integers(-8, 9, size=(m, k)).astype(np.float64)
    b = rng.integers(-8, 9, size=(k, n)).astype(np.float64)
    c = rng.integers(-64, 65, size=(m, n)).astype(np.float64)
    for a_col, b_col, c_col, d_col in [(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 1, 0), (1, 0, 0, 1)]:
        d = emu.wmma_gemm(a, b, c, precision, a_col=a_col, b_col=b_col, c_col=c_col, d_col=d_col)
        np.testing.assert_array_equal(
            d.astype(np.float64),
            a @ b + c,
            err_msg=f"layouts a_col={a_col} b_col={b_col} c_col={c_col} d_col={d_col}",
        )


@pytest.mark.parametrize("precision", list(TILES))
def test_wmma_gemm_64_on_random_data_is_within_the_bound(precision, rng):
    m = n = k = 64 if precision != "fp64" else 32
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    if precision == "fp64":
        a, b, c = (x.astype(np.float64) for x in (a, b, c))
    d = emu.wmma_gemm(a, b, c, precision, b_col=True).astype(np.float64)
    expected, magnitude = reference(a, b, c, precision)
    error = np.abs(d - expected)
    bound = tolerance(magnitude, k, precision)
    assert np.all(error <= bound), f"{precision}: max error / bound {np.max(error / bound):.3g}"


def test_tf32x3_is_float32_accurate_and_one_tf32_product_is_not(rng):
    a = rng.standard_normal((64, 64)).astype(np.float32)
    b = rng.standard_normal((64, 64)).astype(np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    err3 = np.max(np.abs(emu.wmma_gemm(a, b, None, "tf32x3") - exact) / scale)
    err1 = np.max(np.abs(emu.wmma_gemm(a, b, None, "tf32") - exact) / scale)
    assert err3 < 2.0**-19 and err1 > 2.0**-14, (err3, err1)


def test_unconverted_tf32_operands_are_truncated_not_rounded(rng):
    # TF32 keeps 10 fraction bits: 1 + 2^-11 + 2^-12 rounds up to 1 + 2^-10, truncates to 1.
    x = np.float32(1 + 2.0**-11 + 2.0**-12)
    a = np.full((16, 8), x, dtype=np.float32)
    b = np.zeros((8, 16), dtype=np.float32)
    b[0, :] = 1.0
    raw = emu.wmma_gemm(a, b, None, "tf32-raw")
    converted = emu.wmma_gemm(a, b, None, "tf32")
    assert np.all(raw == np.float32(1.0)), raw
    assert np.all(converted == np.float32(1 + 2.0**-10)), converted


@pytest.mark.parametrize("precision", ["tf32x3", "bf16", "fp16-acc16", "fp64"])
def test_results_are_bitwise_identical_across_workers_orders_and_permutations(precision, rng):
    m = n = 64 if precision != "fp64" else 32
    a = rng.standard_normal((m, 32)).astype(np.float32)
    b = rng.standard_normal((32, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    results = []
    runs = [
        (1, "forward", None),
        (3, "reverse", None),
        (1, "shuffle", 5),
        (3, "forward", 123456789),
    ]
    for workers, order, seed in runs:
        emu.set_workers(workers)
        emu.set_order(order, 3)
        emu.set_fragment_permutation(seed)
        results.append(emu.wmma_gemm(a, b, c, precision, a_col=True))
    emu.set_order("forward", 0)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_fragment_permutation_setting_round_trips():
    emu.set_fragment_permutation(42)
    assert emu.get_fragment_permutation() == 42
    emu.set_fragment_permutation(None)
    assert emu.get_fragment_permutation() is None


def test_kernel_assuming_a_lane_mapping_fails_under_the_permutation(rng):
    a = rng.integers(-4, 5, size=(16, 8)).astype(np.float32)
    b = rng.integers(-4, 5, size=(8, 16)).astype(np.float32)
    emu.set_fragment_permutation(None)
    np.testing.assert_array_equal(emu.wmma_assume_mapping(a, b), a @ b)  # the default mapping
    emu.set_fragment_permutation(7)
    wrong = emu.wmma_assume_mapping(a, b)
    assert not np.array_equal(wrong, a @ b)
    # The same elements, in the wrong places: only where they live was assumed.
    np.testing.assert_array_equal(np.sort(wrong.ravel()), np.sort((a @ b).ravel()))
    # The GEMM kernel, element-wise on x[] only, is still right under the same permutation.
    np.testing.assert_array_equal(emu.wmma_gemm(a, b, None, "tf32"), a @ b)


# ---- diagnostics ------------------------------------------------------------------------------

DIAGNOSTICS = {
    # which: (status, marks that the message names, message pattern)
    "misaligned_load": (
        MISALIGNED_ADDRESS,
        ["wmma-misaligned"],
        r"load_matrix_sync: misaligned pointer .*address % 32 = 16.*256-bit",
    ),
    "bad_ldm_float": (
        MISALIGNED_ADDRESS,
        ["wmma-bad-ldm"],
        r"load_matrix_sync: ldm 10 is not a multiple of 4 elements",
    ),
    "bad_ldm_half": (
        MISALIGNED_ADDRESS,
        ["wmma-half-ldm"],
        r"load_matrix_sync: ldm 20 is not a multiple of 8 elements",
    ),
    "divergent_lanes": (
        LAUNCH_FAILURE,
        ["wmma-divergent"],
        r"load_matrix_sync: .*thread \(16,0,0\).*exited.*must be reached by "
        r"every lane of the warp",
    ),
    "ldm_disagrees": (
        LAUNCH_FAILURE,
        ["wmma-ldm-disagree"],
        r"load_matrix_sync: lanes of warp 0 disagree on ldm: lane \d+ passes "
        r"0x(8|10), lane \d+ passes 0x(8|10)",
    ),
    "pointer_disagrees": (
        LAUNCH_FAILURE,
        ["wmma-pointer-disagree"],
        r"load_matrix_sync: lanes of warp 0 disagree on the pointer",
    ),
    "different_calls": (
        LAUNCH_FAILURE,
        ["wmma-site-a", "wmma-site-b"],
        r"load_matrix_sync: warp-collective call diverges in warp 0",
    ),
    "misaligned_store": (
        MISALIGNED_ADDRESS,
        ["wmma-store-misaligned"],
        r"store_matrix_sync: misaligned pointer",
    ),
    "partial_warp": (
        LAUNCH_FAILURE,
        ["wmma-partial-warp"],
        r"mma_sync: mask 0xffffffff names lanes absent from this warp \(it has 16",
    ),
    "deadlock": (
        LAUNCH_FAILURE,
        ["wmma-deadlock-mma", "wmma-deadlock-barrier"],
        r"deadlock: nvcuda::wmma::mma_sync in thread .* waits for lane",
    ),
}


@pytest.mark.parametrize("order", ["forward", "reverse"])
@pytest.mark.parametrize("which", list(DIAGNOSTICS))
def test_wmma_diagnostic_names_the_line(which, order):
    status, marks, pattern = DIAGNOSTICS[which]
    emu.set_order(order, 0)
    try:
        with pytest.raises(emu.EmulatorError) as info:
            emu.wmma_bad(which)
    finally:
        emu.set_order("forward", 0)
    message = str(info.value)
    assert info.value.code == status, message
    assert re.search(pattern, message), message
    for mark in marks:
        assert f"wmma_kernels.cu:{marked_line(mark)}" in message, (mark, message)
    assert "[block (0,0,0)" in message, message


@kernel_files.needs_nvcc
def test_wmma_kernels_are_valid_cuda_for_sm80_and_sm90(tmp_path):
    """The same file against the toolkit's <mma.h> (the CMake build also compiles it, in
    mw_emu_selftest_cuda, when nvcc is found)."""
    kernel_files.compile_for_sm80_and_sm90(KERNEL_SOURCE, tmp_path)
