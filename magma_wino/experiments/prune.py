"""``magma-wino experiment prune``: which pruning keeps accuracy at which density, and what it saves.

The experiment (docs/experiments.md):

1. For each tile size m, train a :class:`~magma_wino.experiments.network.SmallVGG` of F(m, 3)
   Winograd layers on the data set: a *spatial* network (standard Winograd layers, ReLU before
   the transform) and, for the Winograd-ReLU method, a *Winograd-ReLU* network from the start
   (as Liu et al. 2018 train theirs).
2. For each method and target density d: prune the trained network, fine-tune it with the mask
   fixed (the pruned weights get no gradient, and start with no optimiser state, so they stay
   exactly zero), and measure the test accuracy, the density reached and the exact
   multiplications per image of the convolutions (:func:`magma_wino.cost.layer_cost` on the
   layers' actual weights, and for Winograd-ReLU layers on their actual ReLU'd V of the first
   ``cost_images`` test images).  d = 1 is the trained network itself.

Methods (``METHODS``):

* ``spatial`` — magnitude pruning of w per layer (:func:`magma_wino.pruning.prune_spatial`);
  U = G w Gᵀ is dense again, so the Winograd products save nothing;
* ``winograd`` / ``winograd_position`` — the spatial network converted to Winograd-domain
  layers (U its parameters), U magnitude-pruned per layer / with the same density in every
  position (Li et al. 2017);
* ``winograd_block`` — structured: whole ``block`` = 16×8 blocks of every U[b] (the A operand of a
  TF32 tensor-core tile of the products, clipped to U[b]) kept by their Frobenius norm, per
  layer (:func:`magma_wino.pruning.prune_winograd_blocks`; d = fraction of blocks kept);
* ``winograd_2:4`` — structured along C: of every 4 consecutive input channels of each
  (position, filter) row of U the 2 largest kept (:func:`magma_wino.pruning.prune_winograd_n_m`;
  the pattern of sparse tensor cores, ``mma.sp``); its density is 0.5 whatever ``densities``
  says, so it makes one row, at 0.5;
* ``winograd_relu`` — the Winograd-ReLU network, U pruned per layer (Liu et al. 2018);
* ``filter`` — in every layer the filters of smallest Frobenius norm removed, with the next
  layer's matching input channels (target d = fraction of filters kept);
* ``filter+winograd`` — filters removed first (``filter_keep`` of them kept, fine-tuned), then U
  pruned per layer so that each layer keeps d of its original Winograd-domain weights.

Element-wise methods leave the first convolution dense unless ``prune_first`` (it holds a few
hundred weights and sees the raw image); filter pruning applies to every convolution.
``schedule="iterative"`` prunes in ``steps`` geometric steps 1 → d with a fine-tuning after each.

Everything is seeded: the runs of one method and density draw their batches from a seed of
(seed, m, method, density), independent of the other methods run alongside, and the layers run
on the NumPy reference (CPU tensors), so the same command gives the same numbers on one machine.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import cost as _cost
from .. import pruning as _pruning
from .. import reference as _reference
from ..torch import WinogradDomainConv2d
from .data import Dataset
from .network import SmallVGG, drop_filters, scale_to_unit_output, to_winograd_domain

__all__ = ["FIXED_DENSITY", "METHODS", "PruneConfig", "PruneResult", "count_mults", "evaluate", "prune_network", "run"]

#: Method name → what it does (the order of the report).
METHODS: dict[str, str] = {
    "spatial": "magnitude pruning of w (standard Winograd layer, ReLU before the transform)",
    "winograd": "magnitude pruning of U, one threshold per layer (Li et al. 2017)",
    "winograd_position": "magnitude pruning of U, the same density in every Winograd position",
    "winograd_relu": "Winograd-ReLU network (ReLU after the input transform), U pruned per layer (Liu et al. 2018)",
    "winograd_block": "whole blocks of U[b] (default 16×8, one tensor-core tile) kept by block norm, per layer",
    "winograd_2:4": "2 of every 4 input channels of each U[b] row kept by magnitude (sparse tensor cores)",
    "filter": "filters of smallest Frobenius norm removed, with the next layer's input channels",
    "filter+winograd": "filters removed (filter_keep kept), then U pruned per layer to the target",
}
SCHEDULES = ("oneshot", "iterative")
# the methods that convert the trained spatial network to Winograd-domain layers first
_CONVERTED = ("winograd", "winograd_position", "winograd_block", "winograd_2:4")
#: Methods whose pattern fixes the density: the one target they are run at.
FIXED_DENSITY = {"winograd_2:4": 0.5}


@dataclass(frozen=True)
class PruneConfig:
    """What :func:`run` does (defaults: the full run of docs/experiments.md)."""

    data: str = "digits"
    path: str | None = None
    tiles: tuple[int, ...] = (2, 4)
    methods: tuple[str, ...] = tuple(METHODS)
    densities: tuple[float, ...] = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05)
    widths: tuple[int | str, ...] = (16, 16, "M", 32, 32, "M")
    epochs: int = 8
    finetune_epochs: int = 2
    batch_size: int = 64
    lr: float = 0.05
    winograd_relu_lr: float = 0.01
    finetune_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    clip: float = 1.0
    schedule: str = "oneshot"
    steps: int = 3
    prune_first: bool = False
    filter_keep: float = 0.75
    block: tuple[int, int] = (16, 8)
    train_images: int | None = None
    test_images: int | None = None
    cost_images: int = 256
    seed: int = 0
    backend: str = "auto"

    @classmethod
    def quick(cls, **kw: Any) -> PruneConfig:
        """The ``--quick`` run: F(2,3) only, densities 1, 0.3, 0.1, short training."""
        base = {"tiles": (2,), "densities": (1.0, 0.3, 0.1), "epochs": 4, "finetune_epochs": 1}
        base.update(kw)
        return cls(**base)

    def check(self) -> PruneConfig:
        """This config, or a ValueError naming the first bad field."""
        for name in ("epochs", "batch_size", "steps", "cost_images"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if isinstance(self.finetune_epochs, bool) or not isinstance(self.finetune_epochs, int) or \
                self.finetune_epochs < 0:
            raise ValueError(f"finetune_epochs must be an int >= 0, got {self.finetune_epochs!r}")
        if not self.tiles or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.tiles):
            raise ValueError(f"tiles must be a non-empty sequence of output tile sizes m >= 1, got {self.tiles!r}")
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown:
            raise ValueError(f"methods must be a non-empty subset of {tuple(METHODS)}, got {self.methods!r}")
        if not self.densities or any(not 0.0 < float(d) <= 1.0 for d in self.densities):
            raise ValueError(f"densities must be a non-empty sequence of numbers in (0, 1], got {self.densities!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if (not isinstance(self.block, (tuple, list)) or len(self.block) != 2
                or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.block)):
            raise ValueError(f"block must be a pair of ints >= 1 (output, input channels), got {self.block!r}")
        if not 0.0 < float(self.filter_keep) <= 1.0:
            raise ValueError(f"filter_keep must be in (0, 1], got {self.filter_keep!r}")
        for name in ("train_images", "test_images"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be None (all) or an int >= 1, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        convs = sum(1 for w in self.widths if w != "M")
        elementwise = [m for m in self.methods if m not in ("filter",)]
        if convs < 2 and not self.prune_first and elementwise:
            raise ValueError(f"widths: {elementwise} leave the first convolution dense, so they need at least two "
                             f"convolutions (or prune_first=True); widths has {convs}")
        for name in ("lr", "winograd_relu_lr", "finetune_lr", "clip"):
            if not float(getattr(self, name)) > 0.0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        return self


@dataclass
class PruneResult:
    """The rows of one run (one per tile size, method and density), the config, and, when
    asked for (``keep_networks=True``), the pruned networks keyed by (m, method, density)."""

    config: PruneConfig
    rows: list[dict[str, Any]]
    seconds: float
    networks: dict[tuple[int, str, float], SmallVGG] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``--json``: config, rows, run time."""
        cfg = asdict(self.config)
        return {"experiment": "prune", "config": cfg, "seconds": round(self.seconds, 1), "rows": self.rows}


# --------------------------------------------------------------------------- seeds


def _seed(*parts: Any) -> int:
    """A 63-bit seed from the experiment's coordinates (stable across runs and Python versions:
    crc32 of the text, not hash())."""
    text = "/".join(str(p) for p in parts)
    return int(np.random.SeedSequence([zlib.crc32(text.encode())]).generate_state(1, np.uint64)[0] >> 1)


# --------------------------------------------------------------------------- training


Masks = list[tuple[nn.Parameter, torch.Tensor]]


def _masks(net: SmallVGG, spatial: dict[int, torch.Tensor]) -> Masks:
    """(parameter, keep mask) of every pruned weight: the spatial masks of ``spatial``, and the
    mask buffer of every Winograd-domain layer."""
    out: Masks = [(net.convs[i].weight, mk) for i, mk in spatial.items()]
    out += [(c.weight, c.mask) for c in net.convs if isinstance(c, WinogradDomainConv2d)]
    return out


def train(net: SmallVGG, data: Dataset, epochs: int, lr: float, cfg: PruneConfig, seed: int,
          masks: Masks = (), *, warmup: bool = True) -> None:
    """SGD with momentum and weight decay, gradients clipped to norm ``cfg.clip``, the learning
    rate warmed up linearly over the first epoch (``warmup``; fine-tuning starts from a trained
    network and does without) and then cosine-annealed to zero, batches drawn
    from ``seed``.  Gradients are multiplied by ``masks`` before each step and the optimiser is
    new (no state), so a pruned weight — zero — gets a zero update: zero gradient, zero
    momentum, and weight decay of zero is zero."""
    if epochs == 0:
        return
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    n = len(y)
    per_epoch = math.ceil(n / cfg.batch_size)
    steps, warm = epochs * per_epoch, (per_epoch if warmup else 0)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    # one epoch of linear warm-up, then cosine: without it the Winograd-ReLU network (no BatchNorm)
    # diverges at the learning rate the spatial one trains well with
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    net.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            for p, mk in masks:
                p.grad.mul_(mk)
            # clipping keeps the Winograd-ReLU network's first steps stable; it scales the
            # masked gradients too, so their zeros stay zeros
            nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
            opt.step()
            sched.step()
    net.eval()


@torch.no_grad()
def evaluate(net: SmallVGG, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    """Top-1 accuracy of ``net`` on (x, y)."""
    net.eval()
    correct = 0
    for s in range(0, len(y), batch):
        pred = net(torch.from_numpy(x[s:s + batch])).argmax(dim=1)
        correct += int((pred == torch.from_numpy(y[s:s + batch])).sum())
    return correct / len(y)


# --------------------------------------------------------------------------- counting


def count_mults(net: SmallVGG, x: np.ndarray) -> list[_cost.LayerCost]:
    """:func:`magma_wino.cost.layer_cost` of every convolution of ``net`` for the images ``x``:
    spatial layers as ``variant="spatial"`` (U dense; the density of w enters only the sparse
    direct count), Winograd-domain layers as ``"winograd"`` with their actual mask, and
    Winograd-ReLU layers as ``"winograd_relu"`` with their mask and their actual ReLU(V) of
    ``x`` — exact counts, not expectations."""
    inputs = net.conv_inputs(torch.from_numpy(x))
    costs = []
    for conv, inp in zip(net.convs, inputs):
        n, c, h, w = inp.shape
        geom = {"N": n, "C": c, "K": conv.out_channels, "spatial_size": (h, w), "r": 3, "m": net.m, "padding": 1,
                "bias": conv.bias is not None}
        if not isinstance(conv, WinogradDomainConv2d):
            wd = float((conv.weight != 0).sum()) / conv.weight.numel()
            costs.append(_cost.layer_cost(**geom, variant="spatial", weight_density=wd))
            continue
        mask = conv.mask.numpy() & (conv.weight.detach() != 0).numpy()
        if conv.relu == "winograd":
            V = _reference.input_transform(inp.numpy(), net.m, 3, padding=1, relu=True)
            costs.append(_cost.layer_cost(**geom, variant="winograd_relu", U=mask, V=V))
        else:
            costs.append(_cost.layer_cost(**geom, variant="winograd", U=mask))
    return costs


def _kept(conv: nn.Module) -> int:
    """Kept (nonzero and, for a Winograd-domain layer, unmasked) weights of a conv, counted in
    the domain it is parametrised in."""
    nonzero = conv.weight.detach() != 0
    return int((conv.mask & nonzero).sum() if isinstance(conv, WinogradDomainConv2d) else nonzero.sum())


# --------------------------------------------------------------------------- pruning


def _layers_to_prune(net: SmallVGG, cfg: PruneConfig) -> list[int]:
    """The convolutions element-wise methods prune: all but the first, unless ``prune_first``."""
    return list(range(0 if cfg.prune_first else 1, len(net.convs)))


def filter_left(channels: Sequence[int], in_channels: int, keep: float) -> list[float]:
    """Per convolution, the fraction K'·C' / (K·C) of its weights that filter pruning to the
    fraction ``keep`` leaves (``channels``: the convolutions' output channels)."""
    kept = [max(1, _pruning.kept_count(keep, k)) for k in channels]
    c_in, c_kept = [in_channels, *channels[:-1]], [in_channels, *kept[:-1]]
    return [kk * ck / (k * c) for k, c, kk, ck in zip(channels, c_in, kept, c_kept)]


def _check_filter_winograd(cfg: PruneConfig, channels: Sequence[int], in_channels: int) -> None:
    """``filter+winograd`` can reach a density d only if filter pruning left at least d of every
    layer it prunes U in; say so before training rather than miss the target silently."""
    if "filter+winograd" not in cfg.methods:
        return
    left = filter_left(channels, in_channels, cfg.filter_keep)
    layers = range(0 if cfg.prune_first else 1, len(channels))
    worst = min(layers, key=lambda i: left[i])
    too_high = [d for d in cfg.densities if float(d) < 1.0 and float(d) > left[worst]]
    if too_high:
        raise ValueError(f"densities {too_high} are above the {left[worst]:.3f} of conv{worst + 1}'s weights that "
                         f"filter_keep={cfg.filter_keep} leaves, so filter+winograd cannot reach them: lower "
                         f"them or raise filter_keep")


def _prune_spatial(net: SmallVGG, density: float, layers: Sequence[int], masks: dict[int, torch.Tensor]) -> None:
    """Magnitude-prune w of ``layers`` to ``density`` (AND-ed with their current masks)."""
    with torch.no_grad():
        for i in layers:
            w = net.convs[i].weight
            current = masks.get(i, torch.ones_like(w, dtype=torch.bool))
            _, keep = _pruning.prune_spatial((w * current).to(torch.float64).numpy(), density)
            masks[i] = current & torch.from_numpy(keep)
            w.mul_(masks[i])


def _prune_u(net: SmallVGG, densities: dict[int, float], per_position: bool,
             block: tuple[int, int] | None = None) -> None:
    """Prune U of the layers in ``densities`` (element-wise, or in blocks of ``block`` clipped to U[b])."""
    for i, d in densities.items():
        if d < 1.0:
            conv = net.convs[i]
            blk = None if block is None else (min(block[0], conv.out_channels), min(block[1], conv.in_channels))
            conv.prune_(d, per_position=per_position, block=blk)


def _schedule(target: float, cfg: PruneConfig) -> list[float]:
    """The densities pruned to in turn: [target] one-shot, else ``steps`` geometric steps."""
    if cfg.schedule == "oneshot" or target >= 1.0:
        return [target]
    return [target ** ((j + 1) / cfg.steps) for j in range(cfg.steps)]


def prune_network(base: SmallVGG, method: str, density: float, data: Dataset, cfg: PruneConfig,
                  seed: int) -> tuple[SmallVGG, dict[int, torch.Tensor]]:
    """``base`` (a copy of it) pruned by ``method`` to ``density`` and fine-tuned with the masks
    fixed.  ``base`` is the spatial network, or for ``winograd_relu`` the Winograd-ReLU one.
    Returns (the network, the spatial masks by layer index, empty for other methods)."""
    net = _copy(base)
    spatial_masks: dict[int, torch.Tensor] = {}
    if density >= 1.0:
        return (to_winograd_domain(net) if method in _CONVERTED else net), spatial_masks
    layers = _layers_to_prune(net, cfg)

    def finetune(step: int) -> None:
        train(net, data, cfg.finetune_epochs, cfg.finetune_lr, cfg, _seed(seed, "finetune", step),
              _masks(net, spatial_masks), warmup=False)

    if method in _CONVERTED:
        net = to_winograd_domain(net)
    if method == "filter+winograd":
        net, _ = drop_filters(net, cfg.filter_keep)
        finetune(-1)
        original = [base.convs[i].weight.numel() // 9 for i in range(len(base.convs))]  # K·C per layer
        net = to_winograd_domain(net)
    steps = [density] if method in FIXED_DENSITY else _schedule(density, cfg)
    for step, d in enumerate(steps):
        if method == "spatial":
            _prune_spatial(net, d, layers, spatial_masks)
        elif method in ("winograd", "winograd_position", "winograd_relu"):
            _prune_u(net, dict.fromkeys(layers, d), per_position=method == "winograd_position")
        elif method == "winograd_block":
            _prune_u(net, dict.fromkeys(layers, d), per_position=False, block=cfg.block)
        elif method == "winograd_2:4":
            for i in layers:
                net.convs[i].prune_n_m_(2, 4)
        elif method == "filter":
            net, _ = drop_filters(net, d / (steps[step - 1] if step else 1.0))  # of what is left
        elif method == "filter+winograd":
            # each layer keeps d of its ORIGINAL U: d·K·C / (K'·C') of what filter pruning left
            left = {i: net.convs[i].in_channels * net.convs[i].out_channels for i in layers}
            _prune_u(net, {i: min(1.0, d * original[i] / left[i]) for i in layers}, per_position=False)
        else:  # pragma: no cover - PruneConfig.check refuses unknown methods
            raise ValueError(f"unknown method {method!r}")
        finetune(step)
    return net, spatial_masks


def _copy(net: SmallVGG) -> SmallVGG:
    new = net._like(net.channels)
    new.load_state_dict(net.state_dict())
    return new.train(net.training)


# --------------------------------------------------------------------------- the run


def _row(m: int, method: str, target: float, net: SmallVGG, base_costs: Sequence[_cost.LayerCost],
         data: Dataset, cfg: PruneConfig) -> dict[str, Any]:
    acc = evaluate(net, data.x_test, data.y_test)
    costs = count_mults(net, data.x_test[:cfg.cost_images])
    n = costs[0].N
    kept = [_kept(c) for c in net.convs]
    # density over all convolutions, against the unpruned network in the domain of net's weights
    # (w: 9·K·C per layer, U: α²·K·C), so filter pruning counts the removed filters too; per layer
    # likewise against that layer of the unpruned network
    per_pair = (net.m + 2) ** 2 if isinstance(net.convs[0], WinogradDomainConv2d) else 9
    original = [lc.K * lc.C * per_pair for lc in base_costs]
    relu_layers = [lc for lc in costs if lc.variant == "winograd_relu"]
    layers = []
    for i, lc in enumerate(costs):
        layers.append({
            "layer": f"conv{i + 1}", "C": lc.C, "K": lc.K, "size": list(lc.spatial_size), "variant": lc.variant,
            "weight_density": kept[i] / original[i], "activation_density": lc.activation_density if lc.variant ==
            "winograd_relu" else None, "mults_per_image": lc.mults / n,
            "direct_mults_per_image": base_costs[i].direct_mults / base_costs[i].N,
        })
    mults = sum(lc.mults for lc in costs) / n
    direct = sum(lc.direct_mults for lc in base_costs) / base_costs[0].N
    return {
        "m": m, "method": method, "target_density": target, "accuracy": acc,
        "weight_density": sum(kept) / sum(original),
        "activation_density": (float(np.mean([lc.activation_density for lc in relu_layers]))
                               if relu_layers else None),
        "mults_per_image": mults, "direct_mults_per_image": direct, "mult_reduction": direct / mults,
        "channels": net.channels, "layers": layers,
    }


def run(cfg: PruneConfig, data: Dataset, *, keep_networks: bool = False,
        progress: Callable[[str], None] | None = None) -> PruneResult:
    """The experiment of the module docstring on ``data``; ``progress`` gets one line per step."""
    cfg = cfg.check()
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a magma_wino.experiments.Dataset, got {type(data).__name__}")
    c, h, w = data.image_shape
    if h != w:
        raise ValueError(f"data: the network takes square images, got {h}×{w}")
    # record what was run on, not what the config named
    cfg = replace(cfg, data=data.name, path=cfg.path if cfg.data == data.name else None)
    _check_filter_winograd(cfg, [v for v in cfg.widths if v != "M"], c)
    data = data.subset(cfg.train_images, cfg.test_images)
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    networks: dict[tuple[int, str, float], SmallVGG] = {}
    for m in cfg.tiles:
        bases: dict[str, SmallVGG] = {}
        kinds = {"winograd_relu" if meth == "winograd_relu" else "spatial" for meth in cfg.methods}
        for kind in sorted(kinds, key=("spatial", "winograd_relu").index):
            torch.manual_seed(_seed(cfg.seed, m, kind, "init"))
            net = SmallVGG(c, data.classes, cfg.widths, image_size=data.image_shape[1], m=m, kind=kind,
                           backend=cfg.backend)
            lr = cfg.lr
            if kind == "winograd_relu":
                # at the spatial network's rate the F(4,3) Winograd-ReLU network collapses to chance
                # accuracy (the full run showed it); a unit-output start and a lower rate train it
                scale_to_unit_output(net, torch.from_numpy(data.x_train[:256]))
                lr = cfg.winograd_relu_lr
            say(f"F({m},3): training the {kind} network ({cfg.epochs} epochs)")
            train(net, data, cfg.epochs, lr, cfg, _seed(cfg.seed, m, kind, "train"))
            bases[kind] = net
        base_costs = count_mults(bases["spatial"] if "spatial" in bases else bases["winograd_relu"],
                                 data.x_test[:cfg.cost_images])
        for method in cfg.methods:
            base = bases["winograd_relu" if method == "winograd_relu" else "spatial"]
            for d in ([FIXED_DENSITY[method]] if method in FIXED_DENSITY else cfg.densities):
                d = float(d)
                net, _ = prune_network(base, method, d, data, cfg, _seed(cfg.seed, m, method, d))
                row = _row(m, method, d, net, base_costs, data, cfg)
                say(f"F({m},3) {method:<17} d={d:<5g} acc {row['accuracy']:.4f} density "
                    f"{row['weight_density']:.3f} mults {row['mults_per_image']:.4g}")
                rows.append(row)
                if keep_networks:
                    networks[(m, method, d)] = net
    return PruneResult(cfg, rows, time.perf_counter() - t0, networks)


def config_with(cfg: PruneConfig, **kw: Any) -> PruneConfig:
    """``cfg`` with the given fields replaced (None values left as they are)."""
    return replace(cfg, **{k: v for k, v in kw.items() if v is not None})
