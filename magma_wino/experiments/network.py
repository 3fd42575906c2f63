"""The experiments' network: a small VGG-style CNN of 3×3 Winograd convolutions.

``widths`` lists the output channels of the 3×3 convolutions (stride 1, padding 1) and ``"M"``
a 2×2 max pooling; one linear layer classifies the flattened last feature map.  Three kinds of
network share that layout (``kind``):

* ``"spatial"`` — :class:`magma_wino.torch.WinogradConv2d` layers (spatial weights w, the
  standard Winograd layer), ReLU after every convolution: conv → ReLU → [pool] → conv;
* ``"winograd"`` — :class:`magma_wino.torch.WinogradDomainConv2d` layers (the parameter is
  U = G w Gᵀ, with a mask), the same ReLUs: the same function as a spatial network it is
  converted from (:func:`to_winograd_domain`), pruned in the Winograd domain (Li et al. 2017);
* ``"winograd_relu"`` — Winograd-domain layers with the ReLU moved after the input transform
  (Liu et al. 2018): every layer but the first computes Aᵀ[(U ⊙ mask) ⊙ ReLU(Bᵀ d B)]A, so the
  spatial ReLU between two convolutions is gone; the last convolution keeps a spatial ReLU
  before the classifier.  Such a network is trained as it is, from the start.

:func:`drop_filters` removes whole filters (filter pruning) and the matching input channels
of the next layer (or columns of the classifier), returning a smaller network of the same kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import pruning as _pruning
from ..torch import WinogradConv2d, WinogradDomainConv2d

__all__ = ["KINDS", "SmallVGG", "drop_filters", "scale_to_unit_output", "to_winograd_domain"]

KINDS = ("spatial", "winograd", "winograd_relu")


def _parse_widths(widths: Sequence[int | str]) -> tuple[list[int], set[int]]:
    """(conv output channels, indices of the convs followed by a pooling)."""
    channels: list[int] = []
    pools: set[int] = set()
    for w in widths:
        if w == "M":
            if not channels:
                raise ValueError("widths must start with a convolution, not 'M'")
            pools.add(len(channels) - 1)
        elif isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 1:
            channels.append(int(w))
        else:
            raise ValueError(f"widths must hold positive ints (output channels) and 'M' (pooling), got {w!r}")
    if not channels:
        raise ValueError("widths must hold at least one convolution")
    return channels, pools


class SmallVGG(nn.Module):
    """The experiments' CNN (module docstring).

    Args:
        in_channels, classes, image_size: of the data (square images, ``image_size`` divisible by
            2 per pooling).
        widths: output channels of the 3×3 convolutions, ``"M"`` for a 2×2 max pooling.
        m: Winograd output tile size of every layer (F(m, 3)).
        kind: "spatial", "winograd" or "winograd_relu".
        backend: the layers' backend ("auto": the NumPy reference on CPU tensors).
    """

    def __init__(self, in_channels: int, classes: int, widths: Sequence[int | str] = (16, 16, "M", 32, 32, "M"),
                 *, image_size: int = 16, m: int = 2, kind: str = "spatial", backend: str = "auto") -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        channels, pools = _parse_widths(widths)
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1 or \
                image_size % 2 ** len(pools):
            raise ValueError(f"image_size must be a positive int divisible by 2^{len(pools)} (one halving per "
                             f"pooling), got {image_size!r}")
        self.image_size = image_size
        self.final_size = image_size // 2 ** len(pools)  # side of the last feature map
        self.kind, self.m, self.backend = kind, int(m), backend
        self.widths = tuple(widths)
        self.pool_after = frozenset(pools)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(channels):
            if kind == "spatial":
                layers.append(WinogradConv2d(c_in, c_out, 3, padding=1, m=m, backend=backend))
            else:
                relu = "winograd" if kind == "winograd_relu" and i > 0 else None
                layers.append(WinogradDomainConv2d(c_in, c_out, 3, padding=1, m=m, relu=relu, backend=backend))
            c_in = c_out
        self.convs = nn.ModuleList(layers)
        self.fc = nn.Linear(c_in * self.final_size**2, classes)

    @property
    def channels(self) -> list[int]:
        """Output channels of each convolution (after any filter pruning)."""
        return [c.out_channels for c in self.convs]

    def _relu_after(self, i: int) -> bool:
        # Winograd-ReLU: the next layer applies the ReLU to its transformed input instead
        return self.kind != "winograd_relu" or i == len(self.convs) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = self.between(i, conv(x))
        return self.fc(x.flatten(1))

    def between(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """What follows convolution ``i`` before the next one: its pooling, and its ReLU
        unless the next layer takes the ReLU into the Winograd domain."""
        if i in self.pool_after:
            x = F.max_pool2d(x, 2)
        return F.relu(x) if self._relu_after(i) else x

    def conv_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input of every convolution for the images ``x`` (what its tiles are cut from)."""
        inputs = []
        with torch.no_grad():
            for i, conv in enumerate(self.convs):
                inputs.append(x)
                x = self.between(i, conv(x))
        return inputs

    def _like(self, channels: Sequence[int], kind: str | None = None) -> SmallVGG:
        """A new, freshly initialised network of this layout and dtype with the given conv widths."""
        widths: list[int | str] = []
        it = iter(channels)
        for w in self.widths:
            widths.append(w if w == "M" else next(it))
        new = SmallVGG(self.convs[0].in_channels, self.fc.out_features, widths, image_size=self.image_size,
                       m=self.m, kind=kind or self.kind, backend=self.backend)
        return new.to(self.fc.weight.dtype)


@torch.no_grad()
def scale_to_unit_output(net: SmallVGG, x: torch.Tensor) -> SmallVGG:
    """Rescale each convolution's weights and bias, first to last, so that its output on the
    images ``x`` has standard deviation 1 (data-dependent initialisation, as LSUV, Mishkin &
    Matas 2016, does).  The Winograd-ReLU network starts with it: the ReLU after Bᵀ d B (whose
    entries reach 5 for α = 6) keeps the large positive parts, and from the Kaiming initialisation
    the activations grow about 3× per layer at F(4,3).  Returns ``net``."""
    h = x
    for i, conv in enumerate(net.convs):
        std = float(conv(h).std())
        if std > 0:
            conv.weight.div_(std)
            if conv.bias is not None:
                conv.bias.div_(std)
        h = net.between(i, conv(h))
    return net


def to_winograd_domain(net: SmallVGG) -> SmallVGG:
    """The ``"winograd"`` network computing the same function as the spatial ``net``: every
    layer's U = G w Gᵀ (float64, then float32), biases and classifier copied."""
    if net.kind != "spatial":
        raise ValueError(f"net must be a 'spatial' network, got kind {net.kind!r}")
    new = net._like(net.channels, kind="winograd")
    for i, conv in enumerate(net.convs):
        new.convs[i] = WinogradDomainConv2d.from_conv(conv, m=net.m, backend=net.backend)
    new.fc.load_state_dict(net.fc.state_dict())
    return new.train(net.training)


def drop_filters(net: SmallVGG, keep_fraction: float) -> tuple[SmallVGG, list[np.ndarray]]:
    """Filter pruning by Frobenius norm: in every convolution keep the ``max(1, round(keep_fraction
    · K))`` filters of largest norm (:func:`magma_wino.pruning.prune_filters`, ranked after the
    input channels the previous layer lost were removed), remove the others with their biases
    and the matching input channels of the next layer (for the last convolution: the matching
    columns of the classifier).  Returns (the smaller network, the kept filter indices per layer).

    The result computes exactly what ``net`` computes with the dropped filters' weights and
    biases set to zero (a zero channel stays zero through ReLU, pooling and the Winograd-domain
    ReLU, and contributes nothing to the next layer).
    """
    kept_all: list[np.ndarray] = []
    weights: list[torch.Tensor] = []
    biases: list[torch.Tensor | None] = []
    masks: list[torch.Tensor | None] = []
    prev: np.ndarray | None = None
    for conv in net.convs:
        winograd = isinstance(conv, WinogradDomainConv2d)
        w = conv.weight.detach()
        mask = conv.mask if winograd else None
        if prev is not None:  # the previous layer's dropped channels are this layer's dropped inputs
            idx = torch.from_numpy(prev)
            w = w[..., idx] if winograd else w[:, idx]
            mask = None if mask is None else mask[..., idx]
        ranked = (w * mask).permute(1, 0, 2) if winograd else w
        _, kept = _pruning.prune_filters(ranked.to(torch.float64).numpy(), keep_fraction=keep_fraction)
        k = torch.from_numpy(kept)
        weights.append(w[:, k] if winograd else w[k])
        masks.append(None if mask is None else mask[:, k])
        biases.append(None if conv.bias is None else conv.bias.detach()[k])
        kept_all.append(kept)
        prev = kept
    new = net._like([len(k) for k in kept_all])
    with torch.no_grad():
        for conv, w, b, mk in zip(new.convs, weights, biases, masks):
            conv.weight.copy_(w)
            if b is not None:
                conv.bias.copy_(b)
            if mk is not None:
                conv.mask.copy_(mk)
        # the classifier's columns are (channel, row, column) of the flattened feature map
        fc_w = net.fc.weight.detach().reshape(net.fc.out_features, -1, net.final_size**2)
        new.fc.weight.copy_(fc_w[:, torch.from_numpy(prev)].flatten(1))
        new.fc.bias.copy_(net.fc.bias.detach())
    return new.train(net.training), kept_all
