"""``magma-wino validate --sanitize``: the kernels under AddressSanitizer + UBSan.

The sweep of ``magma-wino validate`` compares results, so a kernel that reads one element
past an array, and happens to discard what it read, passes it.  The sanitizer build sees such
accesses: it compiles the kernels, the C ABI and the emulator with
``-fsanitize=address,undefined -fno-sanitize-recover=undefined`` (CMake option
``MW_EMU_SANITIZE``), so every access outside a heap array and every signed overflow aborts
with a report.  This module builds (or brings up to date) two targets of a source checkout and
runs them:

``kernels_asan`` (``tests/emu/kernels_asan_driver.cpp``)
    the transforms, the batched GEMM and the batched SpMM through the C ABI on exactly sized
    heap buffers, over sizes straddling every tile edge, corrupt CSR, operands offset from
    16-byte alignment and CSR offsets ending at INT_MAX;
``emu_selftest_asan`` (``tests/emu/emu_selftest_main.cpp``)
    the emulator's own self-tests (every diagnostic, every fiber order and context switch).

The build directory is ``build/asan`` of the checkout (the one CI uses), or
``$MW_ASAN_BUILD_DIR``.  It needs a source checkout (the package imported from it, e.g. an
editable install), ``cmake`` and a C++20 compiler (g++ or clang++); without them it says so and
exits with status 2.  Exit status 0: both ran clean; 1: a check failed or a sanitizer reported.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TARGETS", "Check", "source_root", "missing_tools", "build_dir_for", "build", "run_checks", "run"]

#: (target, path of the executable inside the build directory, success line it must print)
TARGETS = [
    ("kernels_asan", "kernels_asan", "kernels under ASan: 0 failures"),
    ("emu_selftest_asan", "kernels/emu/emu_selftest_asan", "emu selftest: all checks passed"),
]

#: A sanitizer report in the output (ASan, LeakSanitizer, UBSan).
REPORT = re.compile(r"ERROR: (Address|Leak|Undefined|Memory|Thread)Sanitizer|runtime error:")

_MARKERS = ("CMakeLists.txt", "tests/emu/kernels_asan_driver.cpp", "kernels/magma_wino.cu")


@dataclass
class Check:
    """The outcome of running one sanitizer executable."""

    name: str
    ok: bool
    seconds: float
    returncode: int
    output: str
    reason: str = ""


def source_root(start: Path | None = None) -> Path | None:
    """The source checkout this package was imported from, or None (e.g. a wheel install)."""
    root = (start or Path(__file__).resolve().parent).parent
    return root if all((root / m).is_file() for m in _MARKERS) else None


def missing_tools() -> list[str]:
    """What the sanitizer build needs and this machine lacks."""
    missing = []
    if shutil.which("cmake") is None:
        missing.append("cmake (e.g. `pip install cmake` or the system package)")
    cxx = os.environ.get("CXX")
    if not (cxx and shutil.which(cxx)) and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        missing.append("a C++20 compiler (g++ >= 11 or clang++ >= 14)")
    return missing


def build_dir_for(root: Path) -> Path:
    return Path(os.environ.get("MW_ASAN_BUILD_DIR") or root / "build" / "asan")


def _configured(build_dir: Path) -> bool:
    cache = build_dir / "CMakeCache.txt"
    return cache.is_file() and re.search(r"^MW_EMU_SANITIZE:BOOL=ON$", cache.read_text(), re.M) is not None


def build(root: Path, build_dir: Path, jobs: int | None = None, log=print) -> bool:
    """Configure (once) and build the sanitizer targets; False with the output logged on failure."""
    steps = []
    if not _configured(build_dir):
        steps.append(["cmake", "-S", str(root), "-B", str(build_dir), "-DMW_CUDA=OFF", "-DMW_PYTHON=OFF",
                      "-DMW_EMU_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                      f"-DPython_EXECUTABLE={sys.executable}"])
    steps.append(["cmake", "--build", str(build_dir), "--target", *(t for t, _, _ in TARGETS),
                  "-j", str(jobs or os.cpu_count() or 2)])
    for cmd in steps:
        log("$ " + " ".join(cmd))
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            log((proc.stdout + proc.stderr)[-6000:])
            log(f"sanitizer build failed (exit status {proc.returncode})")
            return False
        log(f"  done in {time.perf_counter() - t0:.1f} s")
    return True


def run_checks(build_dir: Path, timeout: float = 1800.0) -> list[Check]:
    """Run every sanitizer executable of the build directory."""
    checks = []
    for target, rel, success in TARGETS:
        exe = build_dir / rel
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or ""
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            checks.append(Check(target, False, time.perf_counter() - t0, -1, out, f"timed out after {timeout:.0f} s"))
            continue
        out = proc.stdout + proc.stderr
        report = REPORT.search(out)
        reason = ""
        if report:
            reason = "sanitizer report: " + out[report.start():].splitlines()[0].strip()
        elif proc.returncode != 0:
            reason = f"exit status {proc.returncode}"
        elif success not in proc.stdout:
            reason = f"no {success!r} line"
        checks.append(Check(target, not reason, time.perf_counter() - t0, proc.returncode, out, reason))
    return checks


def run(args: argparse.Namespace | None = None, log=print) -> int:
    """Build and run the sanitizer checks; the exit status (0 clean, 1 failed, 2 cannot run)."""
    root = source_root()
    if root is None:
        log("magma-wino validate --sanitize needs a source checkout of magma_wino (this package "
            f"was imported from {Path(__file__).resolve().parent}, which is not inside one): clone "
            "the repository and install it editable (pip install -e .), then run it again")
        return 2
    missing = missing_tools()
    if missing:
        log("magma-wino validate --sanitize needs " + " and ".join(missing) + " to build the "
            "sanitizer executables; install them and run it again")
        return 2
    build_dir = build_dir_for(root)
    log(f"sanitizer build (AddressSanitizer + UBSan) of {root} in {build_dir}")
    if not build(root, build_dir, log=log):
        return 1
    checks = run_checks(build_dir)
    for c in checks:
        if not c.ok:
            log(c.output[-6000:])
        log(f"{'ok    ' if c.ok else 'FAILED'} {c.name:18s} {c.seconds:6.1f} s"
            + (f"  {c.reason}" if c.reason else ""))
    failed = [c for c in checks if not c.ok]
    log(f"{len(checks) - len(failed)} passed, {len(failed)} failed under AddressSanitizer + UBSan")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run())
