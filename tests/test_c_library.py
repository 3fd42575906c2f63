"""The installed C library (issue 18): libmagma_wino_emu (and libmagma_wino with CUDA) as the
pip install leaves them under the package — shared, versioned, exporting only the C ABI, with
<magma_wino.h>, a CMake package and pkg-config files — and the two examples that a C and a C++
framework would write, built against them and run: a C file with ``cc $(pkg-config ...)`` and
a CMake project with ``find_package(magma_wino)``, each checking a layer against a direct loop."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import magma_wino
from magma_wino import c_library

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "kernels" / "include" / "magma_wino.h"

try:
    LIB = c_library.lib_dir()
except FileNotFoundError as exc:  # built with -DMW_C_LIBRARY=OFF
    pytestmark = pytest.mark.skip(reason=str(exc))
    LIB = None


def _layouts() -> list:
    """(name, pkg-config dir, CMake package dir) of each installed copy to build against: the pip
    install's (under the package) and, when CI has made one (MW_C_PREFIX), a `cmake --install`
    prefix of a standalone build (lib/ or lib64/, include/)."""
    out = [pytest.param(lambda: (c_library.pkgconfig_dir(), c_library.cmake_dir()), id="pip")]
    prefix = os.environ.get("MW_C_PREFIX")
    if prefix:
        def of_prefix(p=Path(prefix)):
            cmake = next(p.glob("lib*/cmake/magma_wino"))
            return cmake.parents[1] / "pkgconfig", cmake
        out.append(pytest.param(of_prefix, id="prefix"))
    return out


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def test_python_m_magma_wino_prints_the_installed_paths():
    got = {}
    for flag in ("--cmake-dir", "--include", "--libs", "--pkgconfig-dir"):
        res = _run([sys.executable, "-m", "magma_wino", flag])
        assert res.returncode == 0, res.stderr
        got[flag] = Path(res.stdout.strip())
    assert (got["--cmake-dir"] / "magma_winoConfig.cmake").is_file()
    assert (got["--cmake-dir"] / "magma_winoConfigVersion.cmake").is_file()
    assert (got["--include"] / "magma_wino.h").read_text() == HEADER.read_text()
    assert (got["--libs"] / "libmagma_wino_emu.so").exists()
    assert (got["--pkgconfig-dir"] / "magma_wino_emu.pc").is_file()


def _header_functions() -> set[str]:
    return set(re.findall(r"MW_API [^;(]*?\b(mw_\w+)\(", HEADER.read_text()))


@pytest.mark.skipif(shutil.which("nm") is None or shutil.which("readelf") is None, reason="no nm / readelf")
@pytest.mark.parametrize("name", ["magma_wino_emu", "magma_wino"])
def test_shared_library_exports_only_the_c_abi_and_needs_no_cxx_runtime(name):
    path = LIB / f"lib{name}.so"
    if name == "magma_wino" and not path.exists():
        pytest.skip("built without nvcc: no libmagma_wino (CUDA)")
    names = {line.split()[-1] for line in _run(["nm", "-D", "--defined-only", str(path)]).stdout.splitlines()}
    assert names and all(n.startswith("mw_") for n in names), sorted(n for n in names if not n.startswith("mw_"))
    assert _header_functions() <= names  # every declared entry point is there
    dyn = _run(["readelf", "-d", str(path)]).stdout
    assert f"Library soname: [lib{name}.so.{magma_wino.__version__.split('.')[0]}]" in dyn
    assert "libstdc++" not in dyn and "libgcc_s" not in dyn


def test_version_macros_are_the_package_version():
    major, minor, patch = (int(v) for v in magma_wino.__version__.split("."))
    text = HEADER.read_text()
    assert re.search(rf"#define MW_VERSION_MAJOR {major}\b", text)
    assert re.search(rf"#define MW_VERSION_MINOR {minor}\b", text)
    assert re.search(rf"#define MW_VERSION_PATCH {patch}\b", text)
    emu = pytest.importorskip("magma_wino._emu")
    assert emu.version() == major * 10000 + minor * 100 + patch


@pytest.mark.skipif(shutil.which("cc") is None or shutil.which("pkg-config") is None, reason="no cc / pkg-config")
@pytest.mark.parametrize("layout", _layouts())
def test_c_example_builds_with_cc_and_pkg_config_and_matches_the_direct_loop(tmp_path, layout):
    pkgconfig, _ = layout()
    env = dict(os.environ, PKG_CONFIG_PATH=str(pkgconfig))
    flags = _run(["pkg-config", "--cflags", "--libs", "magma_wino_emu"], env=env)
    assert flags.returncode == 0, flags.stderr
    exe = tmp_path / "conv_layer"
    build = _run(["cc", "-std=c99", "-Wall", "-Werror", str(ROOT / "examples" / "c" / "conv_layer.c"),
                  *flags.stdout.split(), "-lm", "-o", str(exe)])
    assert build.returncode == 0, build.stderr
    run = _run([str(exe)])  # the rpath of the .pc: no LD_LIBRARY_PATH
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count(" ok") == 2 and "backend=emulator" in run.stdout


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake")
@pytest.mark.parametrize("layout", _layouts())
def test_cmake_example_builds_with_find_package_and_matches_the_direct_loop(tmp_path, layout):
    _, cmake_dir = layout()
    build = tmp_path / "build"
    conf = _run(["cmake", "-S", str(ROOT / "examples" / "cmake"), "-B", str(build), f"-Dmagma_wino_DIR={cmake_dir}"])
    assert conf.returncode == 0, conf.stdout + conf.stderr
    make = _run(["cmake", "--build", str(build)])
    assert make.returncode == 0, make.stdout + make.stderr
    run = _run([str(build / "conv_layer_cpp")])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "F(6, 3) float32" in run.stdout and run.stdout.rstrip().endswith("ok")


def _cuda_home() -> Path | None:
    for cand in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                 Path(shutil.which("nvcc")).resolve().parents[1] if shutil.which("nvcc") else None, "/usr/local/cuda"):
        if cand and (Path(cand) / "include" / "cuda_runtime_api.h").is_file():
            return Path(cand)
    return None


@pytest.mark.gpu  # tools/device_check.sh's gpu-tests step runs it on the GPU; CI builds it, no GPU
@pytest.mark.skipif(shutil.which("cc") is None or shutil.which("pkg-config") is None, reason="no cc / pkg-config")
def test_cuda_example_builds_against_libmagma_wino_and_runs_or_says_there_is_no_gpu(tmp_path):
    """Built in CI (no GPU: it must say so with exit status 77, the 'skipped' code, not crash);
    on a GPU (tools/device_check.sh) it computes the layer and checks it."""
    if not (LIB / "libmagma_wino.so").exists():
        pytest.skip("built without nvcc: no libmagma_wino (CUDA)")
    cuda = _cuda_home()
    if cuda is None:
        pytest.skip("no CUDA toolkit headers (cuda_runtime_api.h) for the example's cudaMalloc")
    libdir = next(p for p in (cuda / "lib64", cuda / "lib") if (p / "libcudart.so").exists())
    env = dict(os.environ, PKG_CONFIG_PATH=str(c_library.pkgconfig_dir()))
    flags = _run(["pkg-config", "--cflags", "--libs", "magma_wino"], env=env)
    assert flags.returncode == 0, flags.stderr
    exe = tmp_path / "conv_layer_cuda"
    build = _run(["cc", "-std=c99", "-Wall", "-Werror", str(ROOT / "examples" / "cuda" / "conv_layer_cuda.c"),
                  *flags.stdout.split(), f"-I{cuda / 'include'}", f"-L{libdir}", f"-Wl,-rpath,{libdir}", "-lcudart",
                  "-lm", "-o", str(exe)])
    assert build.returncode == 0, build.stderr
    run = _run([str(exe)])
    if run.returncode == 77:
        assert "no usable CUDA GPU" in run.stderr and "backend=cuda" in run.stderr
    else:
        assert run.returncode == 0 and run.stdout.rstrip().endswith("ok"), run.stdout + run.stderr
