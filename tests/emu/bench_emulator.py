"""Benchmark of the CUDA emulator (a benchmark, not a test: pytest does not collect it).

Times, on one worker, a tiled 256x256x256 SGEMM and a convolution-sized launch (N=2,
C=K=32, 32x32 image, 3x3, 16x16 output tiles with shared memory and two barriers per input
channel) with the hand-written x86-64 context switch and with the ucontext fallback.

    python tests/emu/bench_emulator.py [--repeat 5] [--workers 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from magma_wino import _emu_selftest as emu


def best_time(function, repeat: int) -> float:
    function()  # warm-up: fiber stacks are created on first use
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    a = rng.integers(-4, 5, size=(256, 256)).astype(np.float32)
    b = rng.integers(-4, 5, size=(256, 256)).astype(np.float32)
    x = rng.integers(-3, 4, size=(2, 32, 32, 32)).astype(np.float32)
    w = rng.integers(-2, 3, size=(32, 32, 3, 3)).astype(np.float32)
    cases = {
        "sgemm 256^3 (256 blocks x 256 thr, 32 barriers/thr)": lambda: emu.sgemm(a, b),
        "conv N=2 C=K=32 32x32 3x3 (256 blocks x 256 thr, 64 barriers/thr)": lambda: emu.conv3x3(
            x, w
        ),
    }
    switches = ["asm", "ucontext"] if emu.has_asm_switch() else ["ucontext"]
    emu.set_workers(args.workers)
    emu.set_order("forward")
    print(f"workers = {args.workers}, best of {args.repeat}")
    print(f"{'launch':70s} " + " ".join(f"{s:>10s}" for s in switches))
    for name, function in cases.items():
        row = []
        for switch in switches:
            emu.set_context_switch(switch)
            row.append(best_time(function, args.repeat))
        print(f"{name:70s} " + " ".join(f"{t:9.4f}s" for t in row))
    emu.set_context_switch(switches[0])


if __name__ == "__main__":
    main()
