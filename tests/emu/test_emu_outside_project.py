"""magma_wino::emu from another project: tests/emu/outside_project adds this repository with
add_subdirectory (Python and CUDA parts off), builds its own kernel file (a 64x64x64 TF32 WMMA
GEMM staged by double-buffered __pipeline_memcpy_async, launched with mw::launch; it includes
<mma.h> and <cuda_pipeline.h>) against the emulator, and the result must match the NumPy product
of the TF32-rounded operands; the same kernel file must compile with nvcc for sm_80 and sm_90.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kernel_files
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Path(__file__).with_name("outside_project")


def tf32_round(x):
    """__float_to_tf32 (cvt.rna.tf32.f32): nearest, ties away from zero, low 13 bits cleared
    (finite inputs)."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return (((bits + 0x1000) & 0xFFFFE000).astype(np.uint32)).view(np.float32)


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("g++") is None, reason="needs cmake and g++"
)
def test_outside_project_builds_against_magma_wino_emu_and_matches_tf32_numpy(tmp_path):
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run(
        ["cmake", "-S", PROJECT, "-B", build, *generator, f"-DMAGMA_WINO_SOURCE_DIR={ROOT}"]
        + ["-DCMAKE_CXX_COMPILER=g++", "-DCMAKE_C_COMPILER=gcc"]
    )
    run(["cmake", "--build", build, "--target", "outside_gemm"])
    output = tmp_path / "result.bin"
    assert "ok" in run([build / "outside_gemm", output]).stdout
    a, b, c = np.fromfile(output, dtype=np.float32).reshape(3, 64, 64)
    a32, b32 = tf32_round(a).astype(np.float64), tf32_round(b).astype(np.float64)
    exact = a32 @ b32  # TF32 products are exact; the accumulation is float32
    # float32 accumulation of 64 products: |error| <= 64 u sum |a||b| with u = 2^-24.
    bound = 64 * 2.0**-24 * (np.abs(a32) @ np.abs(b32))
    assert np.all(np.abs(c - exact) <= bound), np.abs(c - exact).max()
    # ... and the operands really were rounded to TF32 (2^-11): far from the float32 product.
    assert np.abs(c - a.astype(np.float64) @ b.astype(np.float64)).max() > 1e-4


@kernel_files.needs_nvcc
def test_outside_kernel_file_compiles_with_nvcc_for_sm80_and_sm90(tmp_path):
    """The toolkit's <cuda_pipeline.h>: kernels/emu/include is not on nvcc's path."""
    kernel_files.compile_for_sm80_and_sm90(PROJECT / "gemm_kernel.cu", tmp_path)
