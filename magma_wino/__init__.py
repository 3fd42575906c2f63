"""magma_wino — Winograd convolution, dense and sparse, with MAGMA-style batched CUDA kernels.

Public API (see docs/):

- :func:`conv2d`, :func:`conv3d` and the plans :class:`WinogradConv2d`, :class:`WinogradConv3d`
- :mod:`magma_wino.transforms` — exact Cook–Toom matrices for any F(m, r)
- :mod:`magma_wino.reference` — NumPy references (float64 direct convolution, Winograd)
- :mod:`magma_wino.pruning`, :mod:`magma_wino.sparse` — pruning and the batched CSR format
- :mod:`magma_wino.cost` — exact multiplication / addition counts of a layer

The compiled extensions (``_cuda``, ``_emu``) are imported lazily, so the pure-Python
modules work even where no extension could be built.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .errors import (
    BackendUnavailableError,
    CudaError,
    EmulatorError,
    InvalidArgumentError,
    LaunchError,
    MagmaWinoError,
    UnsupportedError,
)

__all__ = [
    "__version__",
    "MagmaWinoError",
    "InvalidArgumentError",
    "UnsupportedError",
    "LaunchError",
    "CudaError",
    "EmulatorError",
    "BackendUnavailableError",
    "conv2d",
    "conv3d",
    "WinogradConv2d",
    "WinogradConv3d",
]

_LAZY = {
    "conv2d": ".conv",
    "conv3d": ".conv",
    "WinogradConv2d": ".layer",
    "WinogradConv3d": ".layer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod = importlib.import_module(_LAZY[name], __name__)
        return getattr(mod, name)
    raise AttributeError(f"module 'magma_wino' has no attribute {name!r}")
