"""What the emulator's test-kernel suites share about their kernel files: where a marked line
is (diagnostics must name it), and that a file is valid CUDA for the GPUs the project builds for
(the same source that the emulator runs must also compile with nvcc)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Skip marker of the nvcc compile tests.
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")


def marked_line(source: Path, tag: str) -> int:
    """Line of the `// MARK: tag` comment in ``source`` (the line after it for
    `MARK: tag (next line)`, where the comment cannot share the line)."""
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        if f"MARK: {tag} (next line)" in line:
            return number + 1
        if f"MARK: {tag}" in line:
            return number
    raise AssertionError(f"no MARK: {tag} in {source}")


def compile_for_sm80_and_sm90(source: Path, out_dir: Path, include_dirs: tuple[Path, ...] = ()) -> None:
    """nvcc compiles ``source`` for sm_80 and sm_90 against the toolkit's own headers
    (kernels/emu/include is never on nvcc's path); fails the test with nvcc's message."""
    command = ["nvcc", "-std=c++17", "-c", str(source), "-o", str(out_dir / "k.o"),
               f"-I{ROOT / 'kernels'}", f"-I{source.parent}", *(f"-I{d}" for d in include_dirs),
               "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
