"""Compile and register the XLA FFI handlers of :mod:`magma_wino.jax` (ffi_conv2d.cpp), once per
process, cached on disk by a hash of the source, the JAX version and the C library's path.

The handlers are C++ against the header-only XLA FFI API (``jax.ffi.include_dir()``) and the
installed emulator library (:mod:`magma_wino.c_library`), so they are built on first use with
the system C++ compiler (``$CXX``, else ``c++``) rather than at ``pip install`` time, when JAX
(an optional extra) need not be present.  The cache is ``$MAGMA_WINO_CACHE`` or
``~/.cache/magma_wino``."""

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

SOURCE = Path(__file__).with_name("ffi_conv2d.cpp")
TARGETS = {"magma_wino_conv2d_fwd": "MwJaxConv2dForward", "magma_wino_conv2d_bwd": "MwJaxConv2dBackward"}


def _cache_dir() -> Path:
    return Path(os.environ.get("MAGMA_WINO_CACHE") or Path.home() / ".cache" / "magma_wino")


@functools.cache
def library() -> ctypes.CDLL:
    """The compiled handler library, built if needed; its targets registered with XLA (CPU)."""
    import jax
    import jax.ffi

    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        raise RuntimeError("magma_wino.jax needs a C++ compiler ($CXX or c++ on PATH) to build its XLA FFI "
                           "handlers once")
    lib_dir, include = c_library.lib_dir(), c_library.include_dir()
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), jax.__version__.encode(), str(lib_dir).encode(),
                                     (include / "magma_wino.h").read_bytes()])).hexdigest()[:16]
    out = _cache_dir() / f"mw_jax_ffi_{key}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            part = Path(tmp) / out.name  # built aside, then renamed: concurrent builds never see half a file
            cmd = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", f"-I{jax.ffi.include_dir()}", f"-I{include}",
                   str(SOURCE), f"-L{lib_dir}", f"-Wl,-rpath,{lib_dir}", "-lmagma_wino_emu", "-o", str(part)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"building magma_wino.jax's FFI handlers failed:\n{' '.join(cmd)}\n{res.stderr}")
            os.replace(part, out)
    lib = ctypes.cdll.LoadLibrary(str(out))
    for target, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    return lib
