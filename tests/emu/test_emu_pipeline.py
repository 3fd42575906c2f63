"""Asynchronous copies in the emulator (<cuda_pipeline.h>: __pipeline_memcpy_async, commit,
wait_prior) on the test kernels of tests/emu/pipeline_kernels.cu.

A correct double-buffered GEMM must equal NumPy exactly (integer data) for every copy width,
worker count, fiber order and completion mode; kernels that read a stage before the wait that
covers it must see the poison (NaN) the emulator leaves in a destination until then; bad copies
must fail the launch naming the call's file:line, block and thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kernel_files
import numpy as np
import pytest

emu = pytest.importorskip(
    "magma_wino._emu_selftest", reason="the emulator self-test extension is not built"
)

KERNEL_SOURCE = Path(__file__).with_name("pipeline_kernels.cu")
LAUNCH_FAILURE = 719
MISALIGNED_ADDRESS = 716
BUGS = ["no_wait", "wait_too_short", "skip_empty_commit"]
ORDERS = ["forward", "reverse", "shuffle"]


def marked_line(tag: str) -> int:
    return kernel_files.marked_line(KERNEL_SOURCE, tag)


@pytest.fixture(autouse=True)
def restore_settings():
    saved = (emu.get_workers(), emu.get_order(), emu.get_async_copy())
    yield
    emu.set_workers(saved[0])
    emu.set_order(saved[1][0], saved[1][1])
    emu.set_async_copy(saved[2][0], saved[2][1])


def integer_operands(m, n, k, seed=3):
    rng = np.random.default_rng(seed)
    a = rng.integers(-3, 4, size=(m, k)).astype(np.float32)
    b = rng.integers(-3, 4, size=(k, n)).astype(np.float32)
    return a, b


def test_async_copy_setting_round_trips():
    emu.set_async_copy("random", 17)
    assert emu.get_async_copy() == ("random", 17)
    emu.set_async_copy("late")
    assert emu.get_async_copy()[0] == "late"
    with pytest.raises(ValueError):
        emu.set_async_copy("early")


@pytest.mark.parametrize("width", [1, 2, 4], ids=lambda w: f"{4 * w}B")
@pytest.mark.parametrize("mode", ["late", "random"])
def test_double_buffered_gemm_is_exact(width, mode):
    """4-, 8- and 16-byte copies, edges zero-filled (m, n, k not multiples of the tile)."""
    emu.set_async_copy(mode, 2024)
    a, b = integer_operands(45, 36, 52)
    np.testing.assert_array_equal(emu.pipe_gemm(a, b, width), a @ b)


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("order", ["forward", "reverse", "shuffle"])
def test_double_buffered_gemm_does_not_depend_on_schedule(workers, order):
    emu.set_workers(workers)
    emu.set_order(order, 5)
    a, b = integer_operands(70, 68, 100, seed=4)
    results = []
    for seed in (1, 2):
        emu.set_async_copy("random", seed)
        results.append(emu.pipe_gemm(a, b, 4))
    emu.set_async_copy("late")
    results.append(emu.pipe_gemm(a, b, 4))
    for result in results:
        np.testing.assert_array_equal(result, a @ b)


@pytest.mark.parametrize("bug", BUGS)
def test_reading_a_stage_before_its_wait_sees_poison(bug):
    """The destination of a copy stays poisoned (NaN) until the wait that covers it: reading
    without a wait, waiting with wait_prior(2) where 1 is needed, or skipping the commit of the
    empty tail stage (so that wait_prior(1) leaves the last real stage in flight)."""
    emu.set_async_copy("late")
    a, b = integer_operands(40, 32, 48)
    c = emu.pipe_gemm(a, b, 4, bug)
    assert np.isnan(c).all(), f"{bug}: {np.isnan(c).sum()} of {c.size} entries are NaN"


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", ["late", "random"])
def test_refilling_a_stage_without_a_barrier_sees_poison(order, mode):
    """Without the barrier between a stage's multiply and its refill, a thread that runs ahead
    issues the copies of slice t + 2 over the stage other threads still multiply: the poison
    written at issue makes their reads NaN (a GPU would give them a mix of old and new data)."""
    emu.set_order(order, 11)
    emu.set_async_copy(mode, 3)
    a, b = integer_operands(40, 32, 64)
    assert np.isnan(emu.pipe_gemm(a, b, 4, "no_refill_barrier")).any()


@pytest.mark.parametrize("bug", BUGS)
def test_random_completion_still_exposes_the_bug(bug):
    """With early completion at random points some copies land in time; never all."""
    for seed in range(3):
        emu.set_async_copy("random", seed)
        a, b = integer_operands(40, 32, 48)
        assert np.isnan(emu.pipe_gemm(a, b, 4, bug)).any(), f"{bug}, seed {seed}"


@pytest.mark.parametrize("size", [4, 8, 16])
def test_zero_fill_form_zeroes_the_tail(size):
    src = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    words = size // 4
    for zfill in range(0, size + 1, 4):
        out = emu.pipe_zfill(src, size, zfill)
        kept = words - zfill // 4
        np.testing.assert_array_equal(out[:kept], src[:kept])
        np.testing.assert_array_equal(out[kept:words], 0.0)
        assert np.isnan(out[words:]).all()  # bytes past the copy keep the poison the kernel wrote


@pytest.mark.parametrize(
    ("which", "code", "text"),
    [
        (
            "size12",
            LAUNCH_FAILURE,
            "size_and_align 12, zfill 0): size_and_align must be 4, 8 or 16",
        ),
        ("misaligned_src", MISALIGNED_ADDRESS, "misaligned address: the global source"),
        ("misaligned_dst", MISALIGNED_ADDRESS, "misaligned address: the shared-memory destination"),
        ("zfill_too_large", LAUNCH_FAILURE, "zfill 20): zfill exceeds size_and_align"),
    ],
)
def test_bad_copy_is_reported_with_its_place(which, code, text):
    with pytest.raises(emu.EmulatorError) as info:
        emu.pipe_bad_copy(which)
    message = str(info.value)
    assert info.value.code == code
    assert f"pipeline_kernels.cu:{marked_line('bad-copy')}" in message
    assert text in message
    assert "[block (0,0,0) thread (0,0,0)]" in message


def test_a_launch_after_a_bad_copy_works():
    with pytest.raises(emu.EmulatorError):
        emu.pipe_bad_copy("size12")
    a, b = integer_operands(32, 32, 32)
    np.testing.assert_array_equal(emu.pipe_gemm(a, b, 4), a @ b)


# ---- sanitizer build (MW_EMU_ASAN_EXE, as in test_emulator.py) -------------------------------
@pytest.fixture
def asan_executable():
    path = os.environ.get("MW_EMU_ASAN_EXE")
    if not path:
        pytest.skip("MW_EMU_ASAN_EXE is not set (see docs/emulator.md, sanitizer build)")
    return path


def test_sanitizer_build_reports_out_of_bounds_async_copy_source(asan_executable):
    run = subprocess.run(
        [asan_executable, "async_oob"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0 and run.returncode != 3, run.stdout + run.stderr
    assert "heap-buffer-overflow" in run.stderr
    assert "pipeline_kernels.cu" in run.stderr


@kernel_files.needs_nvcc
def test_pipeline_kernels_are_valid_cuda_for_sm80_and_sm90(tmp_path):
    """The same file with the toolkit's <cuda_pipeline.h> (the CMake build also compiles it, in
    mw_emu_selftest_cuda, when nvcc is found)."""
    kernel_files.compile_for_sm80_and_sm90(KERNEL_SOURCE, tmp_path)


def test_environment_selects_random_completion():
    """MW_EMU_ASYNC_COPY=random:seed is read when the emulator library is first used."""
    code = "import magma_wino._emu_selftest as m; print(m.get_async_copy())"
    env = dict(os.environ, MW_EMU_ASYNC_COPY="random:7")
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "('random', 7)"
