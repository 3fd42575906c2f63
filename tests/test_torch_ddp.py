"""A converted model under torch.nn.parallel.DistributedDataParallel: two gloo processes on
this machine (CPU tensors), identical parameters on both ranks after a few steps, equal to
one process training on the concatenated batch."""

from __future__ import annotations

import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as tmp  # noqa: E402
from torch import nn  # noqa: E402

import magma_wino.torch as mt  # noqa: E402
from magma_wino.accuracy import tolerance  # noqa: E402

STEPS = 3
WORLD = 2
pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available in this PyTorch build")


def _model() -> nn.Module:
    """No BatchNorm: its per-rank batch statistics would differ from the full batch's."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2),
                        nn.ReLU(), nn.Conv2d(6, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return mt.convert(net.double(), m=2)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = np.random.default_rng(40)
    x = torch.from_numpy(gen.standard_normal((8, 3, 9, 8)))
    y = torch.from_numpy(gen.integers(0, 4, 8))
    return x, y


def _steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    for _ in range(STEPS):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model = _model()
        ddp = nn.parallel.DistributedDataParallel(model)
        x, y = _data()
        half = x.shape[0] // WORLD
        _steps(ddp, x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half])
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_ranks_agree_and_match_single_process_training(tmp_path):
    tmp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k  # DDP: one all-reduced gradient, bitwise
    single = _model()
    assert type(single[0]) is mt.WinogradConv2d and type(single[2]) is nn.Conv2d
    _steps(single, *_data())
    # The mean of the two half-batch losses is the full batch's mean loss: the same gradient
    # up to the order of the float64 sums (the all-reduce adds two partial sums), carried
    # through STEPS updates: allow the layers' float64 tolerance once per step.
    tol = STEPS * 2 * tolerance(np.float64, 2, 3, 6 * 9)
    for k, v in single.state_dict().items():
        scale = float(v.abs().max())
        assert float((states[0][k] - v).abs().max()) <= tol * scale, k
        assert not torch.equal(v, _model().state_dict()[k]), k  # training moved every parameter
