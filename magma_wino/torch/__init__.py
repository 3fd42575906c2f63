"""magma_wino.torch — Winograd convolution in PyTorch (``pip install 'magma-wino[torch]'``).

* :mod:`magma_wino.torch.functional` — :func:`~magma_wino.torch.functional.conv2d` /
  ``conv3d`` (``torch.nn.functional``'s positional order) and ``conv2d_winograd`` /
  ``conv3d_winograd`` (the weight is the Winograd-domain U); differentiable, traceable by
  ``torch.compile`` (``torch.library`` operators ``magma_wino::conv_spatial`` and
  ``magma_wino::conv_winograd`` with autograd and fake implementations).
* Modules: :class:`WinogradConv2d` / :class:`WinogradConv3d` (drop-in ``nn.Conv2d`` /
  ``nn.Conv3d`` subclasses), :class:`WinogradDomainConv2d` / :class:`WinogradDomainConv3d`
  (U as the parameter, a pruning mask, Winograd-ReLU).
* :func:`convert` — swap every eligible convolution of a model for these modules.

``backend="auto"`` everywhere means: "cuda" (the kernels, zero copy through DLPack, on
PyTorch's current stream) for CUDA tensors, "numpy" (the NumPy reference) for CPU tensors;
"emulator" runs the kernels' source on CPU tensors.  Multi-GPU training is PyTorch's
(``DistributedDataParallel`` works with these modules as with ``nn.Conv2d``).
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("magma_wino.torch needs PyTorch: pip install 'magma-wino[torch]'") from exc

from . import functional
from ._convert import convert, eligible
from .modules import WinogradConv2d, WinogradConv3d, WinogradDomainConv2d, WinogradDomainConv3d

__all__ = [
    "functional",
    "convert",
    "eligible",
    "WinogradConv2d",
    "WinogradConv3d",
    "WinogradDomainConv2d",
    "WinogradDomainConv3d",
]
