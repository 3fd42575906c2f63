"""The CUDA emulator (kernels/emu) on its self-test kernels (tests/emu/selftest_kernels.cu).

Correct kernels must equal NumPy exactly (integer-valued data, so float32 sums are exact) for
any worker count, fiber order and context switch; deliberately wrong kernels must make the
emulator raise EmulatorError with a message naming the place.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import kernel_files
import numpy as np
import pytest

emu = pytest.importorskip(
    "magma_wino._emu_selftest", reason="the emulator self-test extension is not built"
)

KERNEL_SOURCE = Path(__file__).with_name("selftest_kernels.cu")
ORDERS = ["forward", "reverse", "shuffle"]
WORKERS = [1, 3]
INVALID_CONFIGURATION = 9
LAUNCH_FAILURE = 719


def marked_line(tag: str) -> int:
    """Line number of the `// MARK: tag` comment in the kernel source."""
    return kernel_files.marked_line(KERNEL_SOURCE, tag)


@pytest.fixture(autouse=True)
def restore_settings():
    saved = (emu.get_workers(), emu.get_order(), emu.get_context_switch())
    yield
    emu.set_workers(saved[0])
    emu.set_order(saved[1][0], saved[1][1])
    emu.set_context_switch(saved[2])


@pytest.fixture(params=[(w, o) for w in WORKERS for o in ORDERS], ids=lambda p: f"{p[0]}w-{p[1]}")
def schedule(request):
    workers, order = request.param
    emu.set_workers(workers)
    emu.set_order(order, 2024)
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ---- correct kernels: exact against NumPy -----------------------------------------------------


def test_tiled_sgemm_equals_numpy_exactly(schedule, rng):
    a = rng.integers(-4, 5, size=(70, 45)).astype(np.float32)  # sizes straddle 16-tiles
    b = rng.integers(-4, 5, size=(45, 33)).astype(np.float32)
    np.testing.assert_array_equal(emu.sgemm(a, b), a @ b)


def test_warp_shuffle_block_reduction_equals_numpy_exactly(schedule, rng):
    x = rng.integers(-50, 50, size=1000).astype(np.float32)
    sums = emu.block_reduce(x, threads=256)
    padded = np.concatenate([x, np.zeros(4 * 256 - x.size, np.float32)])
    np.testing.assert_array_equal(sums, padded.reshape(4, 256).sum(axis=1))


def test_atomic_histogram_equals_numpy_exactly(schedule, rng):
    values = rng.integers(0, 37, size=5000)
    np.testing.assert_array_equal(emu.histogram(values, 37), np.bincount(values, minlength=37))


def test_float_and_double_atomic_add_histogram_equals_numpy(schedule, rng):
    values = rng.integers(0, 11, size=3000)
    weights = rng.integers(-3, 4, size=3000).astype(np.float32)
    fbins, dbins = emu.weighted_histogram(values, weights, 11)
    expected = np.bincount(values, weights=weights, minlength=11)
    np.testing.assert_array_equal(fbins, expected.astype(np.float32))
    np.testing.assert_array_equal(dbins, expected)


def test_blockidx_z_batched_kernel_equals_numpy_exactly(schedule, rng):
    x = rng.integers(-9, 10, size=(5, 19, 35)).astype(np.float32)
    y = rng.integers(-9, 10, size=(5, 19, 35)).astype(np.float32)
    np.testing.assert_array_equal(emu.batched_axpy(x, y, 3.0), 3.0 * x + y)


def test_atomic_max_cas_and_exchange_give_exact_results(schedule, rng):
    x = rng.integers(-1000, 1000, size=500)
    results, exchanged = emu.atomics(x)
    assert results[0] == results[1] == results[2] == x.max()
    assert results[3] == x.size  # every compare-and-swap increment counted once
    # atomicExch hands each old value to exactly one thread: the initial -1 and every index
    # but the final slot value appear once among the returned old values.
    final = int(results[4])
    assert sorted(exchanged.tolist() + [final]) == [-1] + list(range(x.size))


def test_direct_conv3x3_equals_numpy_exactly(schedule, rng):
    x = rng.integers(-3, 4, size=(2, 3, 20, 37)).astype(np.float32)
    w = rng.integers(-2, 3, size=(4, 3, 3, 3)).astype(np.float32)
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.zeros((2, 4, 20, 37))
    for dr in range(3):
        for dq in range(3):
            window = padded[:, :, dr : dr + 20, dq : dq + 37]
            expected += np.einsum("nchw,kc->nkhw", window, w[:, :, dr, dq].astype(np.float64))
    np.testing.assert_array_equal(emu.conv3x3(x, w), expected.astype(np.float32))


@pytest.mark.parametrize("width", [32, 16, 8, 4])
def test_shuffles_and_votes_follow_cuda_semantics(width):
    lanes = np.arange(32)
    segment = lanes & ~(width - 1)
    value = 100 + lanes
    expected = np.stack(
        [
            value[segment + ((lanes * 3 + 1) & (width - 1))],
            value[np.where(lanes - segment >= 3, lanes - 3, lanes)],
            value[np.where(lanes - segment + 5 < width, lanes + 5, lanes)],
            value[np.where((lanes ^ 6) < segment + width, lanes ^ 6, lanes)],
            np.full(32, sum(1 << lane for lane in range(0, 32, 3))),
            np.ones(32),
            np.zeros(32),
        ]
    )
    np.testing.assert_array_equal(emu.shuffle_semantics(width), expected)


def test_results_do_not_depend_on_the_context_switch(rng):
    if not emu.has_asm_switch():
        pytest.skip("this build has only the ucontext switch")
    a = rng.integers(-4, 5, size=(40, 30)).astype(np.float32)
    b = rng.integers(-4, 5, size=(30, 20)).astype(np.float32)
    emu.set_context_switch("ucontext")
    slow = emu.sgemm(a, b)
    emu.set_context_switch("asm")
    np.testing.assert_array_equal(slow, emu.sgemm(a, b))
    np.testing.assert_array_equal(slow, a @ b)


# ---- diagnostics -----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_early_return_before_syncthreads_reports_divergence_at_its_line(order):
    emu.set_order(order, 5)
    with pytest.raises(emu.EmulatorError) as caught:
        emu.early_return_divergence()
    message = str(caught.value)
    assert "barrier divergence" in message
    assert f"selftest_kernels.cu:{marked_line('early-return-barrier')}" in message
    assert "thread (5,0,0)" in message
    assert caught.value.code == LAUNCH_FAILURE


def test_barriers_at_different_lines_report_both_lines():
    with pytest.raises(emu.EmulatorError) as caught:
        emu.barrier_mismatch()
    message = str(caught.value)
    assert "barrier divergence" in message
    assert f"selftest_kernels.cu:{marked_line('mismatch-even-barrier')}" in message
    assert f"selftest_kernels.cu:{marked_line('mismatch-odd-barrier')}" in message


@pytest.mark.parametrize("order", ORDERS)
def test_unwritten_dynamic_shared_memory_reads_as_nan(order):
    emu.set_order(order, 3)
    out = emu.read_unwritten_shared(64)
    np.testing.assert_array_equal(out[0::2], np.arange(0, 64, 2, dtype=np.float32))
    assert np.isnan(out[1::2]).all()


def test_write_past_dynamic_shared_memory_reports_canary_overflow():
    with pytest.raises(emu.EmulatorError) as caught:
        emu.shared_overflow(64)
    message = str(caught.value)
    assert "dynamic shared memory overflow" in message
    assert "256-byte" in message  # 64 floats


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("lane_not_in_mask", "does not include the calling lane"),
        ("masks_disagree", "lanes disagree"),
        ("absent_lane", "absent from this warp"),
        ("exited_lane", "exited"),
        ("deadlock", "deadlock"),
        ("bad_width", "not a power of two"),
    ],
)
def test_bad_shuffle_is_reported(kind, fragment):
    with pytest.raises(emu.EmulatorError) as caught:
        emu.bad_shuffle(kind)
    assert fragment in str(caught.value)
    assert "selftest_kernels.cu:" in str(caught.value)


def test_shuffle_diagnostic_names_the_shuffle_line():
    with pytest.raises(emu.EmulatorError) as caught:
        emu.bad_shuffle("lane_not_in_mask")
    assert f"selftest_kernels.cu:{marked_line('shuffle-not-in-mask')}" in str(caught.value)
    with pytest.raises(emu.EmulatorError) as caught:
        emu.bad_shuffle("deadlock")
    assert f"selftest_kernels.cu:{marked_line('shuffle-deadlock')}" in str(caught.value)


def test_missing_barrier_is_correct_forward_and_wrong_reversed(rng):
    x = rng.integers(-9, 10, size=256).astype(np.float32)
    blocks = x.reshape(4, 64)
    expected = (blocks + np.pad(blocks, ((0, 0), (1, 0)))[:, :-1]).reshape(-1)
    emu.set_order("forward")
    np.testing.assert_array_equal(emu.neighbor_sum(x, 64, with_barrier=False), expected)
    emu.set_order("reverse")
    wrong = emu.neighbor_sum(x, 64, with_barrier=False)
    assert np.isnan(wrong).sum() >= 4 * 63  # every read of the neighbour saw poison


@pytest.mark.parametrize("order", ORDERS)
def test_neighbor_sum_with_barrier_is_correct_in_every_order(order, rng):
    emu.set_order(order, 11)
    x = rng.integers(-9, 10, size=200).astype(np.float32)
    out = emu.neighbor_sum(x, 64, with_barrier=True)
    padded = np.concatenate([x, np.zeros(56, np.float32)]).reshape(4, 64)
    expected = (padded + np.pad(padded, ((0, 0), (1, 0)))[:, :-1]).reshape(-1)[:200]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "grid, block, shared, fragment",
    [
        ((1,), (1025,), 0, "1025 threads"),
        ((1,), (32, 33), 0, "1056 threads"),
        ((0,), (32,), 0, "zero dimension"),
        ((4,), (32, 0), 0, "zero dimension"),
        ((1,), (1, 1, 65), 0, "exceeds the limits"),
        ((1, 65536), (32,), 0, "exceeds the limits"),
        ((1,), (32,), 227 * 1024 + 1, "more than 232448 (sm_90's limit)"),
    ],
)
def test_invalid_launch_configuration_is_rejected(grid, block, shared, fragment):
    with pytest.raises(emu.EmulatorError) as caught:
        emu.launch_config(grid, block, shared, opt_in=False)
    assert caught.value.code == INVALID_CONFIGURATION
    assert "invalid launch configuration" in str(caught.value)
    assert fragment in str(caught.value)


def test_more_than_48_kib_of_shared_memory_needs_the_kernels_opt_in():
    # As on a GPU: without cudaFuncSetAttribute(MaxDynamicSharedMemorySize) the launch fails.
    assert emu.launch_config((1,), (32,), 48 * 1024, opt_in=False)
    with pytest.raises(emu.EmulatorError) as caught:
        emu.launch_config((1,), (32,), 48 * 1024 + 16, opt_in=False)
    assert caught.value.code == INVALID_CONFIGURATION
    assert "cudaFuncSetAttribute" in str(caught.value)


def test_launch_configurations_at_the_limits_run():
    assert emu.launch_config((2,), (1024,), 227 * 1024)
    assert emu.launch_config((1, 2, 3), (2, 2, 64))
    assert emu.launch_config((1, 65535), (1,))


def test_a_launch_after_a_failed_one_works(rng):
    for kind in ["exited_lane", "deadlock"]:
        with pytest.raises(emu.EmulatorError):
            emu.bad_shuffle(kind)
    with pytest.raises(emu.EmulatorError):
        emu.early_return_divergence()
    a = rng.integers(-4, 5, size=(17, 17)).astype(np.float32)
    np.testing.assert_array_equal(emu.sgemm(a, a), a @ a)


MISALIGNED_ADDRESS = 716


@pytest.mark.parametrize("store", [False, True], ids=["load", "store"])
@pytest.mark.parametrize("width", [2, 4])
def test_aligned_vector_accesses_are_exact(width, store, rng):
    x = rng.integers(-9, 10, size=64 * width * 3).astype(np.float32)  # 3 blocks of 64 threads
    for offset in (0, width, 3 * width):
        np.testing.assert_array_equal(emu.vector_access(x, width, offset, store), 2 * x)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("store", [False, True], ids=["load", "store"])
@pytest.mark.parametrize("width,offset", [(2, 1), (4, 1), (4, 2), (4, 3), (4, 5)])
def test_misaligned_vector_access_is_reported_as_a_gpu_fault(width, offset, store, order):
    """A GPU faults on a vector load / store whose address is not a multiple of its size; the
    emulator, which could read element by element, must report it (MW_LOAD_VECTOR /
    MW_STORE_VECTOR) with the line, the access and the thread, as cudaErrorMisalignedAddress."""
    emu.set_order(order, 9)
    with pytest.raises(emu.EmulatorError) as caught:
        emu.vector_access(np.ones(64 * width * 2, np.float32), width, offset, store)
    message = str(caught.value)
    assert caught.value.code == MISALIGNED_ADDRESS
    assert "misaligned address" in message
    kind = "store" if store else "load"
    assert f"selftest_kernels.cu:{marked_line('vector-' + kind)}" in message
    assert f"{4 * width}-byte vector {kind}" in message
    assert f"address % {4 * width} = {4 * offset % (4 * width)}" in message
    assert re.search(r"\[block \(0,0,0\) thread \(\d+,0,0\)\]", message), message


def test_a_launch_after_a_misaligned_access_works(rng):
    with pytest.raises(emu.EmulatorError):
        emu.vector_access(np.ones(16, np.float32), 4, 2)
    x = rng.integers(-9, 10, size=256).astype(np.float32)
    np.testing.assert_array_equal(emu.vector_access(x, 4, 4), 2 * x)


def test_emulator_error_is_a_runtime_error():
    assert issubclass(emu.EmulatorError, RuntimeError)


def test_settings_reject_bad_values():
    with pytest.raises(ValueError):
        emu.set_workers(-1)
    with pytest.raises(ValueError):
        emu.set_order("sideways")
    with pytest.raises(ValueError):
        emu.set_context_switch("threads")
    emu.set_workers(2)
    assert emu.get_workers() == 2
    emu.set_order("shuffle", 99)
    assert emu.get_order() == ("shuffle", 99)


# ---- sanitizer build ---------------------------------------------------------------------------


@pytest.fixture
def asan_executable():
    path = os.environ.get("MW_EMU_ASAN_EXE")
    if not path:
        pytest.skip(
            "MW_EMU_ASAN_EXE is not set (build emu_selftest_asan with -DMW_EMU_SANITIZE=ON and "
            "point MW_EMU_ASAN_EXE at it)"
        )
    if not os.access(path, os.X_OK):
        pytest.fail(f"MW_EMU_ASAN_EXE={path} is not an executable")
    return path


def test_sanitizer_build_runs_correct_kernels_cleanly(asan_executable):
    run = subprocess.run([asan_executable], capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "emu selftest: all checks passed" in run.stdout
    assert "Sanitizer" not in output and "runtime error" not in output, output[-4000:]


def test_sanitizer_build_reports_global_out_of_bounds_write(asan_executable):
    run = subprocess.run([asan_executable, "oob"], capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert re.search(r"AddressSanitizer: heap-buffer-overflow", run.stderr), run.stderr[-4000:]
    assert "global_out_of_bounds_kernel" in run.stderr
