"""The kernels under AddressSanitizer + UBSan, and ``magma-wino validate --sanitize``.

The exact-result tests cannot see a kernel that reads past an array and discards what it
read; the sanitizer build of the kernels (``tests/emu/kernels_asan_driver.cpp``, CMake target
``kernels_asan`` with ``-DMW_EMU_SANITIZE=ON``) does.  These tests run that executable when it
is built: ``$MW_KERNELS_ASAN_EXE`` (CI sets it), else ``build/asan/kernels_asan`` of this
checkout if it is newer than the kernel sources; otherwise they skip, saying how to build it::

    magma-wino validate --sanitize        # builds build/asan and runs it, or by hand:
    cmake -S . -B build/asan -DMW_CUDA=OFF -DMW_PYTHON=OFF -DMW_EMU_SANITIZE=ON \\
          -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build build/asan --target kernels_asan emu_selftest_asan -j
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import pytest

from magma_wino import sanitize

ROOT = Path(__file__).resolve().parents[1]
BUILD_HINT = (
    "build it with `magma-wino validate --sanitize` (or cmake -DMW_EMU_SANITIZE=ON, target "
    "kernels_asan) or point MW_KERNELS_ASAN_EXE at it"
)


def _newest_source() -> float:
    files = [p for d in ("kernels", "tests/emu") for p in (ROOT / d).rglob("*")
             if p.suffix in {".cu", ".cuh", ".h", ".cpp"}]
    return max(p.stat().st_mtime for p in files)


@pytest.fixture(scope="module")
def kernels_asan() -> str:
    path = os.environ.get("MW_KERNELS_ASAN_EXE")
    if path:
        if not os.access(path, os.X_OK):
            pytest.fail(f"MW_KERNELS_ASAN_EXE={path} is not an executable")
        return path
    exe = ROOT / "build" / "asan" / "kernels_asan"
    if not os.access(exe, os.X_OK):
        pytest.skip(f"the sanitizer build of the kernels is not built: {BUILD_HINT}")
    if exe.stat().st_mtime < _newest_source():
        pytest.skip(f"{exe} is older than the kernel sources: rebuild it ({BUILD_HINT})")
    return str(exe)


def test_kernels_under_asan_run_clean(kernels_asan):
    """Transforms, GEMM, SpMM on exactly sized buffers (tile edges, corrupt CSR, misaligned
    operands, CSR offsets ending at INT_MAX): no sanitizer report, no wrong result."""
    run = subprocess.run([kernels_asan], capture_output=True, text=True, timeout=1200)
    output = run.stdout + run.stderr
    assert not sanitize.REPORT.search(output), output[-6000:]
    assert run.returncode == 0, output[-6000:]
    assert "kernels under ASan: 0 failures" in run.stdout


def test_kernels_under_asan_report_a_product_reading_past_its_operand(kernels_asan):
    """The driver's self-check: A one element short must be reported from inside the kernel."""
    run = subprocess.run([kernels_asan, "overread"], capture_output=True, text=True, timeout=600)
    assert run.returncode != 0, run.stdout
    assert "AddressSanitizer: heap-buffer-overflow" in run.stderr, run.stderr[-4000:]
    assert "gemm_batched" in run.stderr


def test_validate_sanitize_dispatches_to_the_sanitizer_checks(monkeypatch):
    from magma_wino import cli

    seen = []
    monkeypatch.setattr(sanitize, "run", lambda args: seen.append(args) or 0)
    assert cli.main(["validate", "--sanitize"]) == 0
    assert len(seen) == 1 and seen[0].sanitize


def test_validate_sanitize_without_a_source_checkout_exits_2(monkeypatch, tmp_path):
    assert sanitize.source_root(ROOT / "magma_wino") == ROOT
    assert sanitize.source_root(tmp_path / "magma_wino") is None  # e.g. site-packages/magma_wino
    monkeypatch.setattr(sanitize, "source_root", lambda start=None: None)
    lines = []
    assert sanitize.run(argparse.Namespace(sanitize=True), log=lines.append) == 2
    assert "needs a source checkout" in lines[0]


def test_validate_sanitize_without_cmake_exits_2(monkeypatch):
    monkeypatch.setattr(sanitize, "source_root", lambda start=None: ROOT)
    monkeypatch.setattr(sanitize.shutil, "which", lambda name: None if name == "cmake" else f"/usr/bin/{name}")
    lines = []
    assert sanitize.run(argparse.Namespace(sanitize=True), log=lines.append) == 2
    assert "cmake" in lines[0] and "needs" in lines[0]
