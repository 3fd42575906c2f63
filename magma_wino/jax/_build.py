"""Compile and register the XLA FFI handlers of :mod:`magma_wino.jax` (ffi_handlers.cpp), once per
process, cached on disk by a hash of the source, the header, the JAX version and the library's path.

The handlers are C++ against the header-only XLA FFI API (``jax.ffi.include_dir()``) and the
installed C library (:mod:`magma_wino.c_library`), so they are built on first use with the
system C++ compiler (``$CXX``, else ``c++``) rather than at ``pip install`` time, when JAX
(an optional extra) need not be present.  Two builds of the one source:

- ``cpu``: linked against ``libmagma_wino_emu``, registered for XLA's CPU platform;
- ``cuda``: ``-DMW_JAX_CUDA``, linked against ``libmagma_wino``, registered for XLA's CUDA
  platform (built only when JAX has a GPU and the library was built with nvcc).

Each is loaded with its own library as a local dependency (``RTLD_LOCAL``): both define the
``mw_*`` symbols, and each handler library resolves them to its own.  The cache is
``$MAGMA_WINO_CACHE`` or ``~/.cache/magma_wino``."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import c_library

SOURCE = Path(__file__).with_name("ffi_handlers.cpp")
#: The C ABI entries with a handler: target ``magma_wino_<entry>``, symbol ``MwJax<Name><Platform>``.
ENTRIES = {"filter_transform": "FilterTransform", "input_transform": "InputTransform",
           "output_transform": "OutputTransform", "output_adjoint": "OutputAdjoint",
           "input_adjoint": "InputAdjoint", "filter_adjoint": "FilterAdjoint", "gemm_batched": "GemmBatched"}
#: Per platform: (the library linked, the -D flag, the symbols' suffix, XLA's platform name).
PLATFORMS = {"cpu": ("magma_wino_emu", None, "Cpu", "cpu"), "cuda": ("magma_wino", "MW_JAX_CUDA", "Cuda", "CUDA")}


def _cache_dir() -> Path:
    return Path(os.environ.get("MAGMA_WINO_CACHE") or Path.home() / ".cache" / "magma_wino")


def command(platform: str, output: Path) -> list[str]:
    """The compiler command that builds the ``platform`` handlers into ``output``."""
    import jax.ffi

    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        raise RuntimeError("magma_wino.jax needs a C++ compiler ($CXX or c++ on PATH) to build its XLA FFI "
                           "handlers once")
    lib, define, _, _ = PLATFORMS[platform]
    lib_dir = c_library.lib_dir()
    return [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", *([f"-D{define}"] if define else []),
            f"-I{jax.ffi.include_dir()}", f"-I{c_library.include_dir()}", str(SOURCE), f"-L{lib_dir}",
            f"-Wl,-rpath,{lib_dir}", f"-l{lib}", "-o", str(output)]


def build(platform: str) -> Path:
    """The handler library of ``platform`` ("cpu" or "cuda"), compiled if not cached."""
    import jax

    lib, _, _, _ = PLATFORMS[platform]
    lib_dir = c_library.lib_dir()
    if not (lib_dir / f"lib{lib}.so").exists():
        raise FileNotFoundError(f"magma_wino.jax on {platform}: lib{lib}.so is not installed in {lib_dir} "
                                f"({'build with nvcc for the CUDA library' if platform == 'cuda' else 'reinstall'})")
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), jax.__version__.encode(), str(lib_dir).encode(),
                                     platform.encode(),
                                     (c_library.include_dir() / "magma_wino.h").read_bytes()])).hexdigest()[:16]
    out = _cache_dir() / f"mw_jax_ffi_{platform}_{key}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            part = Path(tmp) / out.name  # built aside, then renamed: concurrent builds never see half a file
            cmd = command(platform, part)
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"building magma_wino.jax's FFI handlers failed:\n{' '.join(cmd)}\n{res.stderr}")
            os.replace(part, out)
    return out


@functools.cache
def _load(platform: str) -> ctypes.CDLL:
    import jax
    import jax.ffi

    lib = ctypes.CDLL(str(build(platform)), mode=os.RTLD_LOCAL)
    _, _, suffix, xla_platform = PLATFORMS[platform]
    for entry, name in ENTRIES.items():
        jax.ffi.register_ffi_target(f"magma_wino_{entry}", jax.ffi.pycapsule(getattr(lib, f"MwJax{name}{suffix}")),
                                    platform=xla_platform)
    return lib


def register() -> None:
    """Build (once) and register the handlers of every platform JAX runs here: the CPU always,
    CUDA when JAX has a GPU backend."""
    import jax

    _load("cpu")
    try:
        gpu = bool(jax.devices("gpu"))
    except RuntimeError:  # no GPU backend in this JAX
        gpu = False
    if gpu:
        _load("cuda")
