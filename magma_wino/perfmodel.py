"""Speed-of-light model of a Winograd layer on a GPU: an ESTIMATE, not a measurement.

Development machines have no GPU, so this module reasons about speed the way kernel engineers
do before they profile.  For each phase of a three-phase layer (input transform, batched
product, output transform) it computes lower bounds on the time from

* the phase's DRAM bytes (compulsory: every operand read once, every result written once)
  over the GPU's HBM bandwidth;
* its arithmetic (FMA-pipe lane operations) over the GPU's published FP32 / FP64 / TF32 peak;
* its shared-memory / L1 traffic (wavefronts of 128 bytes, one per SM per clock) from the
  kernel's hot-loop SASS mix (``tools/kernel_report.py``) or, without one, from the tile shape;
* its issue slots (4 warp instructions per SM per clock) from the same mix;

scales the on-chip bounds by the wave-quantisation efficiency of the grid, takes the largest
(the *binding limit*, named), and adds a fixed launch overhead.  A layer's estimate is the sum
of its phases (they run back to back; V and M round-trip through DRAM).

Not modelled (so real kernels are slower): latency and occupancy stalls, bank conflicts, L2
bandwidth (the tiled bytes are reported but not bounded), DRAM efficiency below the datasheet
figure, clock throttling.  Every figure printed carries the word "estimate"; when a GPU is
lent, ``magma-wino bench --backend cuda --model h200`` prints measured/estimated ratios.

Usage::

    python -m magma_wino.perfmodel --gpu h200 --network vgg16 resnet50 --batch 32
    python -m magma_wino.perfmodel --roofline docs/results/roofline_h200.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "GPU",
    "GPUS",
    "KernelMix",
    "SASS_SM90",
    "PhaseEstimate",
    "LayerEstimate",
    "CUDNN_EFFICIENCY",
    "LAUNCH_OVERHEAD_S",
    "gpu",
    "mix_from_sass",
    "estimate_layer",
    "estimate_cudnn",
    "network_estimates",
    "format_estimates",
    "markdown_estimates",
    "network_totals",
    "roofline_png",
    "main",
]

LABEL = "estimate (speed-of-light model, not measured)"


# --------------------------------------------------------------------------- GPUs


@dataclass(frozen=True)
class GPU:
    """Published peaks of one GPU (dense rates, boost clock).  TFLOP/s, TB/s, MiB, KiB."""

    key: str
    name: str
    sms: int
    clock_ghz: float
    fp32_tflops: float
    tf32_tflops: float
    bf16_tflops: float
    fp64_tflops: float
    fp64_tc_tflops: float
    hbm_tbs: float
    l2_mib: float
    smem_per_sm_kib: int
    smem_bytes_per_clk: int = 128  # per SM: 32 banks x 4 bytes (one wavefront per clock)
    issue_per_clk: int = 4  # warp instructions per SM per clock: 4 schedulers
    regs_per_sm: int = 65536
    max_warps_per_sm: int = 64

    def peak(self, precision: str) -> float:
        """FLOP/s of the math path a precision uses (fp32, fp64: SIMT FMA; tf32, bf16: tensor cores)."""
        t = {"float32": self.fp32_tflops, "float64": self.fp64_tflops, "tf32": self.tf32_tflops,
             "bf16": self.bf16_tflops, "fp64_tc": self.fp64_tc_tflops}[precision]
        return t * 1e12

    def fma_warps_per_clk(self, precision: str) -> float:
        """Warp FMA instructions per SM per clock implied by the SIMT peak (FP32 on H100: 4)."""
        return self.peak(precision) / (2 * 32 * self.sms * self.clock_ghz * 1e9)


#: Sources: NVIDIA A100 datasheet (2021, SXM4 80GB: 19.5 FP32, 156 TF32, 312 BF16, 9.7 FP64,
#: 19.5 FP64 tensor, 2039 GB/s) and the Ampere whitepaper (108 SMs, 1410 MHz boost, 40 MB L2,
#: 164 KiB shared memory per SM); NVIDIA H100 datasheet (SXM5: 67 FP32, 494.7 TF32 and 989.4
#: BF16 dense -- the datasheet's 989/1979 are with 2:4 sparsity --, 34 FP64, 67 FP64 tensor,
#: 3.35 TB/s) and the Hopper whitepaper (132 SMs, 1980 MHz boost -- 132 x 128 x 2 x 1.98 GHz =
#: 66.9 TFLOP/s --, 50 MB L2, 228 KiB shared memory per SM); NVIDIA H200 datasheet (SXM: the
#: H100's compute, 141 GB HBM3e at 4.8 TB/s).  Shared memory: 128 bytes per clock per SM on all
#: three (CUDA C++ Programming Guide, 32 banks of 4 bytes).  /work/.library/device/H200.md.
GPUS: dict[str, GPU] = {
    "a100": GPU("a100", "A100-SXM4-80GB", 108, 1.41, 19.5, 156.0, 312.0, 9.7, 19.5, 2.039, 40.0, 164),
    "h100": GPU("h100", "H100-SXM5-80GB", 132, 1.98, 66.9, 494.7, 989.4, 33.5, 66.9, 3.35, 50.0, 228),
    "h200": GPU("h200", "H200-SXM-141GB", 132, 1.98, 66.9, 494.7, 989.4, 33.5, 66.9, 4.8, 50.0, 228),
}


def gpu(key: str | GPU) -> GPU:
    if isinstance(key, GPU):
        return key
    try:
        return GPUS[key.lower()]
    except KeyError:
        raise ValueError(f"unknown GPU {key!r}; choose from {sorted(GPUS)}") from None


#: Launch overhead per kernel: launch latency plus grid ramp-up and drain of back-to-back
#: launches on one stream, a few microseconds on these GPUs; 4 us is a stated assumption.
LAUNCH_OVERHEAD_S = 4e-6

#: cuDNN's implicit-GEMM / direct 3x3 kernels are taken to reach 70% of the math peak they use
#: (FP32 SIMT with TF32 off, as the bench runs it; the TF32 tensor-core peak with it on).
#: Large CUTLASS/cuDNN implicit-GEMM convolutions typically sustain 60-80% of peak; 0.7 is the
#: middle of that range, an assumption until a GPU measures it (bench's cudnn rows).
CUDNN_EFFICIENCY = 0.7


# --------------------------------------------------------------------------- kernel mixes


@dataclass(frozen=True)
class KernelMix:
    """Warp instructions of one hot-loop iteration (or, for ``per_thread``, one thread's kernel).

    ``fma``: FMA-class instructions; ``insns``: all; ``l1_wavefronts``: shared-memory and L1
    wavefronts (LDS/STS/LDG: one per 128 bytes a warp instruction moves, no conflicts);
    ``source``: where the numbers come from."""

    fma: float
    insns: float
    l1_wavefronts: float
    source: str = "tile shape"


_WAVES = {"32": 1, "64": 2, "128": 4}


def mix_from_sass(mix: dict[str, int], source: str = "SASS") -> KernelMix:
    """A :class:`KernelMix` from a ``tools/kernel_report.py`` hot-loop ``mix`` dict."""
    fma = sum(mix.get(k, 0) for k in ("FFMA", "DFMA", "HMMA", "DMMA"))
    waves = sum(mix.get(f"{op}.{w}", 0) * n for op in ("LDS", "LDG", "STS") for w, n in _WAVES.items())
    return KernelMix(fma, sum(mix.values()), waves + mix.get("LDGSTS", 0), source)


#: Hot-loop mixes read from the SASS of the kernels by tools/kernel_report.py (nvcc 13.0,
#: sm_90, cuobjdump 13.5), kept here so that the model runs without the CUDA toolchain:
#: gemm = one BLK_K = 16 slice of the 64x64 tile, per warp (fp32 with 16-byte loads: VEC 4,
#: fp64: VEC 2); spmm = the per-nonzero loop of the wide tile (unrolled 4x by ptxas).
SASS_SM90: dict[tuple[str, str], dict[str, int]] = {
    ("gemm", "float32"): {"FFMA": 256, "LDS.32": 128, "LDG.128": 2, "STS.32": 4, "STS.128": 1, "BAR": 2, "other": 32},
    ("gemm", "float64"): {"DFMA": 256, "LDS.64": 128, "LDG.128": 4, "STS.64": 4, "STS.128": 2, "BAR": 2, "other": 55},
    ("spmm", "float32"): {"FFMA": 16, "LDS.32": 8, "LDG.32": 16, "other": 88},
    ("spmm", "float64"): {"DFMA": 8, "LDS.32": 4, "LDS.64": 4, "LDG.64": 8, "other": 88},
}

#: One thread's whole transform kernel (2D, r = 3; static instruction counts of the SASS, so
#: an upper bound on the dynamic count): (phase, dtype, m) -> instructions.
TRANSFORM_INSNS_SM90: dict[tuple[str, str, int], int] = {
    ("input", "float32", 2): 423, ("input", "float32", 4): 903, ("input", "float32", 6): 1663,
    ("input", "float64", 2): 423, ("input", "float64", 4): 903, ("input", "float64", 6): 1695,
    ("output", "float32", 2): 271, ("output", "float32", 4): 495, ("output", "float32", 6): 943,
    ("output", "float64", 2): 271, ("output", "float64", 4): 503, ("output", "float64", 6): 935,
}


@dataclass(frozen=True)
class GemmTile:
    """kernels/gemm_batched.cuh's GemmConfig, and its selection rule (gemm_batched)."""

    name: str
    dim_x: int
    dim_y: int
    blk_m: int
    blk_n: int
    blk_k: int
    blocks_per_sm: int  # resident blocks (kernel report's occupancy on sm_90, fp32 VEC 4)

    @property
    def warps(self) -> int:
        return self.dim_x * self.dim_y // 32


GEMM_TILES = (GemmTile("64x64", 16, 16, 64, 64, 16, 4), GemmTile("32x64", 16, 16, 32, 64, 16, 4),
              GemmTile("16x32", 16, 8, 16, 32, 8, 8))
#: SpmmTileWide (fp32: 32 x 128, fp64: 32 x 64), 256 threads, 3 blocks per SM (occupancy 0.375).
SPMM_TILE = {"float32": (32, 128), "float64": (32, 64)}


def gemm_tile(K: int, P: int) -> GemmTile:
    if K >= 64 and P >= 64:
        return GEMM_TILES[0]
    if K >= 32 and P >= 64:
        return GEMM_TILES[1]
    return GEMM_TILES[2]


def gemm_mix(tile: GemmTile, dtype: str, sass: dict | None = None) -> KernelMix:
    """Per warp per BLK_K slice.  From the SASS for 64x64 (built in or given), else derived:
    THR_M x THR_N FMAs and THR_M + THR_N scalar shared loads per k step (the register block is
    strided, so no vector LDS), the slice's stores, and 1/8 of the FMAs in other instructions."""
    if tile.name == "64x64":
        mix = (sass or {}).get(("gemm", dtype)) or SASS_SM90[("gemm", dtype)]
        return mix_from_sass(mix, "SASS sm_90" if sass is None else "SASS (given)")
    s = 8 if dtype == "float64" else 4
    thr_m, thr_n = tile.blk_m // tile.dim_y, tile.blk_n // tile.dim_x
    fma = thr_m * thr_n * tile.blk_k
    lds = (thr_m + thr_n) * tile.blk_k * s / 4
    sts = tile.blk_k * (tile.blk_m + tile.blk_n) * s / 128 / tile.warps  # wavefronts per warp
    return KernelMix(fma, fma + (thr_m + thr_n) * tile.blk_k + fma / 8, lds + 2 * sts, "tile shape")


# --------------------------------------------------------------------------- estimates


@dataclass
class PhaseEstimate:
    """Lower bounds of one phase (seconds) and the estimate: max(bounds) + launch overhead."""

    phase: str
    kernel: str
    flops: float  # useful arithmetic: multiplications + additions (an FMA is 2)
    dram_bytes: float  # compulsory
    tiled_bytes: float | None  # bytes the tiles read through L2 (not bounded)
    bounds: dict[str, float]
    wave_efficiency: float
    mix_source: str
    hypothetical: bool = False

    @property
    def limit(self) -> str:
        """The largest bound's name."""
        return max(self.bounds, key=self.bounds.get)

    @property
    def binding(self) -> str:
        """The binding limit: the largest bound, or "launch" when the launch overhead exceeds it."""
        return "launch" if LAUNCH_OVERHEAD_S > self.bounds[self.limit] else self.limit

    @property
    def seconds(self) -> float:
        return max(self.bounds.values()) + LAUNCH_OVERHEAD_S

    @property
    def intensity(self) -> float:
        return self.flops / self.dram_bytes if self.dram_bytes else math.inf

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(binding=self.binding, ms=self.seconds * 1e3, intensity=self.intensity, label=LABEL)
        return d


@dataclass
class LayerEstimate:
    gpu: str
    N: int
    C: int
    K: int
    H: int
    W: int
    m: int
    r: int
    precision: str
    density: float
    phases: list[PhaseEstimate] = field(default_factory=list)
    hypothetical: bool = False

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    @property
    def ms(self) -> float:
        return self.seconds * 1e3

    def phase(self, name: str) -> PhaseEstimate:
        return next(p for p in self.phases if p.phase == name)

    def as_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "N": self.N, "C": self.C, "K": self.K, "H": self.H, "W": self.W,
                "m": self.m, "r": self.r, "precision": self.precision, "density": self.density,
                "hypothetical": self.hypothetical, "ms": self.ms, "label": LABEL,
                "phases": [p.as_dict() for p in self.phases]}


def _waves(blocks: int, per_sm: int, sms: int) -> float:
    """Wave-quantisation efficiency: blocks / (waves x resident slots)."""
    if blocks <= 0:
        return 1.0
    slots = per_sm * sms
    return blocks / (math.ceil(blocks / slots) * slots)


@cache
def _transform_ops(m: int, r: int) -> tuple[int, int, int, int]:
    """(input mults+adds per tile-channel, output mults+adds per tile-channel) from cost.py's
    exact counts of the actual matrices (adds and mults each one lane operation)."""
    from .cost import layer_cost

    lc = layer_cost(1, 1, 1, (m, m), r=r, m=m, padding=(r - 1) // 2)
    return int(lc.input_mults), int(lc.input_adds), int(lc.output_mults), int(lc.output_adds)


def _dtype_of(precision: str) -> str:
    return "float64" if precision == "float64" else "float32"


def estimate_layer(N: int, C: int, K: int, H: int, W: int | None = None, m: int = 4, r: int = 3,
                   precision: str = "float32", density: float = 1.0, gpu_key: str | GPU = "h200",
                   sass: dict | None = None) -> LayerEstimate:
    """Estimated time of one 2D stride-1 'same' layer (N, C, K, H x W) with F(m, r).

    ``precision``: float32 / float64 (today's SIMT kernels) or tf32 (a *hypothetical*
    tensor-core product: no tensor-core kernel in the layer yet; transforms as float32).  ``density`` < 1:
    the batched CSR product on a pruned U (density 1: the dense GEMM).  ``sass``: hot-loop
    mixes {(kernel, dtype): mix} from tools/kernel_report.py's JSON, else the built-in ones."""
    g = gpu(gpu_key)
    W = H if W is None else W
    dtype = _dtype_of(precision)
    s = 8 if dtype == "float64" else 4
    alpha = m + r - 1
    pos = alpha * alpha
    P = N * math.ceil(H / m) * math.ceil(W / m)
    clk = g.clock_ghz * 1e9
    fma_rate = g.fma_warps_per_clk(dtype) * g.sms * clk * 32  # lane FMA-pipe ops per second
    issue = g.issue_per_clk * g.sms * clk  # warp instructions per second
    l1 = g.sms * clk  # wavefronts per second
    hbm = g.hbm_tbs * 1e12
    est = LayerEstimate(g.key, N, C, K, H, W, m, r, precision, density, hypothetical=precision == "tf32")
    im, ia, om, oa = _transform_ops(m, r)

    def transform(phase: str, channels: int, read: float, write: float, ops: int) -> PhaseEstimate:
        threads = channels * P
        warps = math.ceil(threads / 32)
        insns = TRANSFORM_INSNS_SM90.get((phase, dtype, m))
        src = "SASS sm_90 (static count)"
        if insns is None:  # an F(m, r) without a measured mix: ops plus loads, stores, indexing
            insns, src = 3 * ops + 2 * pos, "op count"
        blocks = math.ceil(threads / 128)
        eff = _waves(blocks, 8, g.sms)
        bounds = {"HBM": (read + write) / hbm, "FMA pipe": threads * ops / fma_rate / eff,
                  "issue": warps * insns / issue / eff}
        return PhaseEstimate(phase, f"{phase}_transform_2d F({m},{r}) {dtype}", threads * ops,
                             read + write, None, bounds, eff, src)

    est.phases.append(transform("input", C, N * C * H * W * s, pos * C * P * s, im + ia))

    flops = 2.0 * pos * K * C * P * density
    v_bytes, m_bytes = pos * C * P * s, pos * K * P * s
    if density >= 1.0:
        tile = gemm_tile(K, P)
        mix = gemm_mix(tile, dtype, sass)
        blocks = pos * math.ceil(K / tile.blk_m) * math.ceil(P / tile.blk_n)
        eff = _waves(blocks, tile.blocks_per_sm, g.sms)
        warp_iters = blocks * tile.warps * math.ceil(C / tile.blk_k)
        dram = pos * K * C * s + v_bytes + m_bytes
        tiled = pos * (K * C * math.ceil(P / tile.blk_n) + C * P * math.ceil(K / tile.blk_m)) * s + m_bytes
        if precision == "tf32":
            bounds = {"HBM": dram / hbm, "tensor core": flops / g.peak("tf32")}
            est.phases.append(PhaseEstimate("product", "TF32 tensor-core GEMM (no tensor-core kernel in the layer yet)", flops,
                                            dram, tiled, bounds, 1.0, "peak only", hypothetical=True))
        else:
            bounds = {"HBM": dram / hbm, "FMA pipe": warp_iters * mix.fma * 32 / fma_rate / eff,
                      "shared memory": warp_iters * mix.l1_wavefronts / l1 / eff,
                      "issue": warp_iters * mix.insns / issue / eff}
            est.phases.append(PhaseEstimate("product", f"gemm_batched {tile.name} {dtype}", flops, dram, tiled,
                                            bounds, eff, mix.source))
    else:
        bm, bn = SPMM_TILE[dtype]
        mix = mix_from_sass((sass or {}).get(("spmm", dtype)) or SASS_SM90[("spmm", dtype)],
                            "SASS sm_90" if sass is None else "SASS (given)")
        nnz = density * pos * K * C
        warp_fmas = nnz * math.ceil(P / bn) * (bn / 32)  # a warp covers BLK_N columns of a row
        blocks = pos * math.ceil(K / bm) * math.ceil(P / bn)
        eff = _waves(blocks, 3, g.sms)
        used = 1.0 - (1.0 - density) ** K if density > 0 else 0.0  # V rows some nonzero needs
        dram = nnz * (s + 4) + pos * (K + 1) * 4 + used * v_bytes + m_bytes
        tiled = nnz * math.ceil(P / bn) * bn * s + m_bytes
        bounds = {"HBM": dram / hbm, "FMA pipe": warp_fmas * 32 / fma_rate / eff,
                  "L1/shared": warp_fmas * mix.l1_wavefronts / mix.fma / l1 / eff,
                  "issue": warp_fmas * mix.insns / mix.fma / issue / eff}
        est.phases.append(PhaseEstimate("product", f"spmm_batched {bm}x{bn} {dtype}", flops, dram, tiled, bounds,
                                        eff, mix.source))

    est.phases.append(transform("output", K, m_bytes, N * K * H * W * s, om + oa))
    return est


def estimate_cudnn(N: int, C: int, K: int, H: int, W: int | None = None, r: int = 3,
                   precision: str = "float32", gpu_key: str | GPU = "h200",
                   efficiency: float = CUDNN_EFFICIENCY) -> dict[str, Any]:
    """Estimated cuDNN (implicit GEMM) time: direct FLOPs at ``efficiency`` of the FP32 (or
    TF32, FP64) peak, or the compulsory bytes over HBM, whichever is larger, plus one launch."""
    g = gpu(gpu_key)
    W = H if W is None else W
    s = 8 if precision == "float64" else 4
    flops = 2.0 * N * K * C * H * W * r * r
    dram = (N * C * H * W + K * C * r * r + N * K * H * W) * s
    bounds = {"HBM": dram / (g.hbm_tbs * 1e12), "math": flops / (efficiency * g.peak(precision))}
    t = max(bounds.values()) + LAUNCH_OVERHEAD_S
    return {"precision": precision, "efficiency": efficiency, "flops": flops, "dram_bytes": dram,
            "bounds": bounds, "binding": max(bounds, key=bounds.get), "ms": t * 1e3, "label": LABEL}


# --------------------------------------------------------------------------- tables


def network_estimates(networks: Sequence[str] = ("vgg16", "resnet50"), batches: Sequence[int] = (32,),
                      tiles: Sequence[int] = (4,), precisions: Sequence[str] = ("float32",),
                      densities: Sequence[float] = (1.0,), gpu_key: str = "h200",
                      sass: dict | None = None) -> list[dict[str, Any]]:
    """One row per (layer, N, m, precision, density) of bench's 2D network layer lists."""
    from .bench import network_layers

    rows = []
    for lay in network_layers(list(networks)):
        if lay.ndim != 2:
            continue
        H, W = lay.spatial
        for N in batches:
            for prec in precisions:
                # cuDNN on the same math path (FP32, FP64, TF32), and with TF32 allowed (fp32 rows)
                cud = estimate_cudnn(N, lay.C, lay.K, H, W, lay.r, prec, gpu_key)
                cud_tf32 = estimate_cudnn(N, lay.C, lay.K, H, W, lay.r, "tf32", gpu_key) if prec != "float64" else None
                for m in tiles:
                    for d in (densities if prec != "tf32" else [1.0]):  # no tensor-core SpMM modelled
                        e = estimate_layer(N, lay.C, lay.K, H, W, m, lay.r, prec, d, gpu_key, sass)
                        rows.append({"network": lay.network, "layer": lay.name, **e.as_dict(),
                                     "cudnn_ms": cud["ms"], "cudnn_binding": cud["binding"],
                                     "ratio_to_cudnn": e.ms / cud["ms"],
                                     "cudnn_tf32_ms": cud_tf32["ms"] if cud_tf32 else None,
                                     "ratio_to_cudnn_tf32": e.ms / cud_tf32["ms"] if cud_tf32 else None})
    return rows


def _opt(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _phase_cell(p: dict[str, Any]) -> str:
    return f"{p['ms']:.3g} ({p['binding']})"


def _prec_label(r: dict[str, Any]) -> str:
    return r["precision"] + ("*" if r["hypothetical"] else "")


def format_estimates(rows: Sequence[dict[str, Any]], title: str | None = None) -> Any:
    """A rich Table of estimated rows (every one an estimate; * = no tensor-core kernel in the layer yet)."""
    from rich.table import Table

    t = Table(title=title or f"ESTIMATE: speed-of-light model on {rows[0]['gpu'] if rows else '?'} (not measured)")
    for c in ("layer", "N", "F(m,r)", "precision", "density", "input ms", "product ms", "output ms",
              "total ms (est.)", "cuDNN ms (est.)", "ratio to cuDNN"):
        t.add_column(c, justify="right")
    for r in rows:
        ph = {p["phase"]: p for p in r["phases"]}
        t.add_row(r["layer"], str(r["N"]), f"F({r['m']},{r['r']})", _prec_label(r), f"{r['density']:g}",
                  _phase_cell(ph["input"]), _phase_cell(ph["product"]), _phase_cell(ph["output"]),
                  f"{r['ms']:.3g}", f"{r['cudnn_ms']:.3g}", f"{r['ratio_to_cudnn']:.2f}")
    return t


def markdown_estimates(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of estimated rows: per phase ms (binding limit), total, cuDNN, ratios."""
    lines = ["| layer | N | F(m,r) | precision | density | input ms (limit) | product ms (limit) | "
             "output ms (limit) | total ms | cuDNN ms, same math | ratio | cuDNN ms, TF32 | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ph = {p["phase"]: p for p in r["phases"]}
        lines.append(f"| {r['network']}/{r['layer']} | {r['N']} | F({r['m']},{r['r']}) | {_prec_label(r)} | "
                     f"{r['density']:g} | {_phase_cell(ph['input'])} | {_phase_cell(ph['product'])} | "
                     f"{_phase_cell(ph['output'])} | {r['ms']:.3g} | {r['cudnn_ms']:.3g} | "
                     f"{r['ratio_to_cudnn']:.2f} | {_opt(r['cudnn_tf32_ms'], '.3g')} | "
                     f"{_opt(r['ratio_to_cudnn_tf32'], '.2f')} |")
    return "\n".join(lines) + "\n"


def network_totals(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (network, N, F, precision, density): the sum over the network's 3x3 layers, each
    deduplicated shape counted as often as it occurs (conv3_2/3_3: twice), and the binding
    limits of the phases (limit: number of layer-phases)."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        k = (r["network"], r["N"], r["m"], r["precision"], r["density"])
        t = out.setdefault(k, {"network": r["network"], "N": r["N"], "m": r["m"], "r": r["r"],
                               "precision": r["precision"], "hypothetical": r["hypothetical"],
                               "density": r["density"], "ms": 0.0, "cudnn_ms": 0.0, "limits": {}})
        times = r["layer"].count("/") + 1
        t["ms"] += times * r["ms"]
        t["cudnn_ms"] += times * r["cudnn_ms"]
        for p in r["phases"]:
            t["limits"][f"{p['phase']}: {p['binding']}"] = t["limits"].get(f"{p['phase']}: {p['binding']}", 0) + times
    for t in out.values():
        t["ratio_to_cudnn"] = t["ms"] / t["cudnn_ms"]
        t["label"] = LABEL
    return list(out.values())


def markdown_totals(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| network | N | F(m,r) | precision | density | total ms | cuDNN ms, same math | ratio | "
             "binding limits (layer-phases) |", "|---|---|---|---|---|---|---|---|---|"]
    for t in network_totals(rows):
        lim = ", ".join(f"{k} ×{v}" for k, v in sorted(t["limits"].items()))
        lines.append(f"| {t['network']} | {t['N']} | F({t['m']},{t['r']}) | {_prec_label(t)} | {t['density']:g} | "
                     f"{t['ms']:.3g} | {t['cudnn_ms']:.3g} | {t['ratio_to_cudnn']:.2f} | {lim} |")
    return "\n".join(lines) + "\n"


def roofline_png(path: str | Path, gpu_key: str = "h200", N: int = 32, m: int = 4) -> Path:
    """Roofline plot: each kernel's arithmetic intensity (FLOP per compulsory DRAM byte) and
    estimated rate on VGG-16 conv3 and ResNet-50 conv4 layers, against the GPU's roofs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = gpu(gpu_key)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    x = [10 ** (i / 20) for i in range(-40, 81)]
    hbm = g.hbm_tbs * 1e12
    for name, peak, style in (("FP32", g.peak("float32"), "-"), ("FP64", g.peak("float64"), "--"),
                              ("TF32 tensor", g.peak("tf32"), ":")):
        ax.plot(x, [min(peak, hbm * i) / 1e12 for i in x], style, label=f"{name} roof ({peak / 1e12:.0f} TFLOP/s)")
    markers = {"input": "o", "product": "s", "output": "^"}
    colors = {"float32": "C0", "float64": "C1", "tf32": "C2"}
    for H, C, K, lay in ((56, 256, 256, "VGG conv3"), (14, 256, 256, "R50 conv4")):
        for prec in ("float32", "float64", "tf32"):
            for d in (1.0, 0.25):
                if d < 1 and prec == "tf32":
                    continue
                e = estimate_layer(N, C, K, H, H, m, 3, prec, d, g)
                for p in e.phases:
                    if (d < 1 or prec == "tf32") and p.phase != "product":
                        continue  # tf32 transforms are the float32 ones
                    ax.scatter(p.intensity, p.flops / p.seconds / 1e12, marker=markers[p.phase], color=colors[prec],
                               edgecolors="k" if d == 1 else "none", s=40, zorder=3)
                    if prec == "float32" and d == 1 and p.phase == "product":
                        ax.annotate(lay, (p.intensity, p.flops / p.seconds / 1e12), fontsize=7,
                                    xytext=(4, -10), textcoords="offset points")
    for ph, mk in markers.items():
        ax.scatter([], [], marker=mk, color="gray", label=f"{ph} phase")
    for prec, c in colors.items():
        ax.scatter([], [], marker="s", color=c, label=prec + (" (no tensor-core kernel in the layer yet)" if prec == "tf32" else ""))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / compulsory DRAM byte)")
    ax.set_ylabel("TFLOP/s (ESTIMATED, useful FLOPs)")
    ax.set_title(f"ESTIMATE: roofline, {g.name}, N={N}, F({m},3); VGG conv3 56x56x256, R50 conv4 14x14x256\n"
                 "filled edge = dense, no edge = 25% density (SpMM)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- CLI


def _load_sass(path: str | None) -> dict | None:
    """{(kernel, dtype): mix} from a tools/kernel_report.py --json file (sm_90 rows, 64x64 GEMM
    with vector loads, the wide SpMM)."""
    if not path:
        return None
    out: dict[tuple[str, str], dict[str, int]] = {}
    for r in json.loads(Path(path).read_text()):
        if r.get("arch") != "90" or not r.get("sass"):
            continue
        k = r["kernel"]
        dtype = "float64" if "<double" in k else "float32"
        if "gemm_batched_kernel" in k and "64, 64, 16>" in k and not k.endswith(", 1>"):
            out[("gemm", dtype)] = r["sass"]["mix"]
        elif "spmm_batched_kernel" in k and ("128, 512>" in k or "32, 64, 256>" in k):
            out[("spmm", dtype)] = r["sass"]["mix"]
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m magma_wino.perfmodel",
                                 description="Speed-of-light ESTIMATES of Winograd layers on a GPU (not measurements).")
    ap.add_argument("--gpu", choices=sorted(GPUS), default="h200")
    ap.add_argument("--network", nargs="+", default=["vgg16", "resnet50"], help="2D networks of magma-wino bench")
    ap.add_argument("--batch", nargs="+", type=int, default=[32])
    ap.add_argument("--tile", nargs="+", type=int, default=[4], help="output tile sizes m of F(m,3)")
    ap.add_argument("--precision", nargs="+", default=["float32", "float64", "tf32"],
                    choices=("float32", "float64", "tf32"), help="tf32: hypothetical (no tensor-core kernel in the layer yet)")
    ap.add_argument("--density", nargs="+", type=float, default=[1.0])
    ap.add_argument("--sass-json", metavar="FILE", help="hot-loop mixes from tools/kernel_report.py --json")
    ap.add_argument("--markdown", metavar="FILE", help="write the table as markdown")
    ap.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    ap.add_argument("--roofline", metavar="PNG", help="write the roofline plot (matplotlib) and stop")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.roofline:
        print(f"wrote {roofline_png(args.roofline, args.gpu)} ({LABEL})")
        return 0
    rows = network_estimates(args.network, args.batch, args.tile, args.precision, args.density, args.gpu,
                             _load_sass(args.sass_json))
    from rich.console import Console

    Console(width=240).print(format_estimates(rows))
    print(f"All rows: {LABEL}; * = precision with no kernel in the layer yet. "
          f"cuDNN: implicit GEMM at {CUDNN_EFFICIENCY:.0%} of the peak (an assumption).")
    if args.markdown:
        p = Path(args.markdown)
        p.parent.mkdir(parents=True, exist_ok=True)
        cmd = "python -m magma_wino.perfmodel " + " ".join(sys.argv[1:] if argv is None else argv)
        p.write_text(f"ESTIMATES on {gpu(args.gpu).name} ({LABEL}). Command: `{cmd}`\n\n"
                     "Network totals (every 3x3 layer, repeated shapes counted each time):\n\n"
                     + markdown_totals(rows) + "\nPer layer:\n\n" + markdown_estimates(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"label": LABEL, "gpu": asdict(gpu(args.gpu)), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
