"""Where the installed C library is: for builds that link against the pip-installed package
(as ``pybind11 --cmakedir`` tells CMake where pybind11 is).

The wheel holds, under the package directory, ``lib/libmagma_wino_emu.so`` (and
``lib/libmagma_wino.so`` when built with nvcc), ``include/magma_wino.h``, the CMake package
``lib/cmake/magma_wino`` (``find_package(magma_wino CONFIG)``: ``magma_wino::emu``,
``magma_wino::magma_wino``) and the pkg-config files ``lib/pkgconfig/magma_wino_emu.pc`` /
``magma_wino.pc``.  ``python -m magma_wino --cmake-dir`` (``--include``, ``--libs``,
``--pkgconfig-dir``) prints these paths; docs/c_abi.md, "Linking against the library"."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["cmake_dir", "include_dir", "lib_dir", "pkgconfig_dir", "root"]


def root() -> Path:
    """The directory holding ``include/`` and the library directory: the package directory the
    compiled modules were installed to (in an editable install, the build's site-packages copy,
    not the source tree).  FileNotFoundError when the package was built without the C library."""
    candidates = [Path(__file__).resolve().parent]
    spec = importlib.util.find_spec("magma_wino._emu")
    if spec is not None and spec.origin:
        candidates.insert(0, Path(spec.origin).resolve().parent)
    for base in candidates:
        if (base / "include" / "magma_wino.h").is_file() and any(base.glob("lib*/cmake/magma_wino")):
            return base
    raise FileNotFoundError("the C library is not installed with this magma_wino (built with -DMW_C_LIBRARY=OFF, "
                            f"or not built); looked in {', '.join(str(c) for c in candidates)}")


def lib_dir() -> Path:
    """The directory of ``libmagma_wino_emu.so`` (``-L``, ``-Wl,-rpath``)."""
    return next(root().glob("lib*/cmake/magma_wino")).parents[1]


def include_dir() -> Path:
    """The directory of ``magma_wino.h`` (``-I``)."""
    return root() / "include"


def cmake_dir() -> Path:
    """The CMake package directory: ``-Dmagma_wino_DIR=...`` or on ``CMAKE_PREFIX_PATH``."""
    return lib_dir() / "cmake" / "magma_wino"


def pkgconfig_dir() -> Path:
    """The directory of ``magma_wino_emu.pc``: put it on ``PKG_CONFIG_PATH``."""
    return lib_dir() / "pkgconfig"
