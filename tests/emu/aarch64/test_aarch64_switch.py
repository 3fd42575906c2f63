"""The emulator's hand-written aarch64 context switch, cross-compiled and run under qemu-user.

Needs `aarch64-linux-gnu-g++` and `qemu-aarch64` on PATH (Debian/Ubuntu: `apt-get install
g++-aarch64-linux-gnu qemu-user`); skips otherwise, as in CI. Two static aarch64 programs are
built from the unchanged sources:

* fiber_switch_harness.cpp + kernels/emu/fiber_context.cpp: register/FPCR preservation over
  ~400k switches, live locals (asm and ucontext), deep recursion, alignment, guard page;
* tests/emu/emu_selftest_main.cpp + the whole emulator + the self-test kernels: exact SGEMM,
  block reduction, histogram and conv3x3 and every diagnostic, with 1 and 3 workers, forward,
  reverse and shuffled fiber order, on the asm switch and then on ucontext.

Each variant is also built with -mbranch-protection=standard (return addresses signed with
pointer authentication across fiber switches; qemu's `-cpu max` checks them).
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CXX = "aarch64-linux-gnu-g++"
QEMU = "qemu-aarch64"

missing = [tool for tool in (CXX, QEMU) if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(
    bool(missing),
    reason=f"{' and '.join(missing)} not on PATH (apt-get install g++-aarch64-linux-gnu qemu-user)",
)

COMMON = [
    "-std=c++20",
    "-static",
    "-Wall",
    "-Wno-unknown-pragmas",
    f"-I{ROOT / 'kernels'}",
    f"-I{ROOT / 'kernels/emu/include'}",
]
HARNESS_SOURCES = [
    ROOT / "tests/emu/aarch64/fiber_switch_harness.cpp",
    ROOT / "kernels/emu/fiber_context.cpp",
]
SELFTEST_SOURCES = [
    ROOT / "kernels/emu/cuda_emu.cpp",
    ROOT / "kernels/emu/fiber_context.cpp",
    ROOT / "kernels/emu/pipeline_emu.cpp",
    ROOT / "tests/emu/selftest_kernels_emu.cpp",
    ROOT / "tests/emu/pipeline_kernels_emu.cpp",
    ROOT / "tests/emu/wmma_kernels_emu.cpp",
    ROOT / "tests/emu/wmma_selftest_checks.cpp",
    ROOT / "tests/emu/emu_selftest_main.cpp",
]


def compile_program(output: Path, sources: list[Path], flags: list[str]) -> Path:
    command = [CXX, *COMMON, *flags, f"-I{ROOT / 'tests/emu'}", "-pthread", "-o", str(output)]
    result = subprocess.run(
        command + [str(s) for s in sources], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-4000:]}"
    return output


def run_qemu(program: Path) -> str:
    result = subprocess.run(
        [QEMU, "-cpu", "max", str(program)], capture_output=True, text=True, timeout=120
    )
    output = result.stdout
    assert result.returncode == 0, f"{program.name} exited with {result.returncode}:\n{output}"
    return output


@pytest.fixture(
    scope="module", params=["-O2", "-O2 -mbranch-protection=standard"], ids=["O2", "pac"]
)
def programs(request, tmp_path_factory):
    flags = request.param.split()
    directory = tmp_path_factory.mktemp("aarch64")
    with ThreadPoolExecutor(max_workers=2) as pool:
        harness = pool.submit(compile_program, directory / "harness", HARNESS_SOURCES, flags)
        selftest = pool.submit(compile_program, directory / "selftest", SELFTEST_SOURCES, flags)
        return harness.result(), selftest.result()


def test_fiber_switch_harness(programs):
    output = run_qemu(programs[0])
    assert "MW_EMU_HAVE_ASM_SWITCH=1" in output
    assert "FAIL" not in output, output
    assert output.rstrip().endswith("aarch64 fiber harness: all checks passed"), output


def test_emulator_selftest_on_aarch64(programs):
    output = run_qemu(programs[1])
    assert "FAIL" not in output, output
    # Six schedules (1 and 3 workers x forward/reverse/shuffle) on the default switch, then a
    # ucontext pass, which the driver runs only when the asm switch is compiled in: so the six
    # schedules above ran on the hand-written aarch64 switch.
    assert output.count("-- workers") == 6, output
    assert "-- ucontext switch" in output, output
    assert output.count("ok   sgemm equals the reference") == 7, output
    assert output.rstrip().endswith("emu selftest: all checks passed"), output
