"""Speed-of-light model of a Winograd layer on a GPU: an ESTIMATE, not a measurement.

Development machines have no GPU, so this module reasons about speed the way kernel engineers
do before they profile.  For each phase of a three-phase layer (input transform, batched
product, output transform) and each precision mode of the products (``fp32``: SIMT FFMA;
``tf32``, ``tf32x3``: the WMMA TF32 kernel, one or three HMMA per product; ``bf16``, ``fp16``:
16-bit U and V, WMMA m16n16k16 with float32 accumulation; ``fp64``: WMMA m8n8k4 double, DMMA)
it computes
lower bounds on the time from

* the phase's DRAM bytes (compulsory: every operand read once, every result written once;
  U and V in 16 bits for bf16 / fp16) over the GPU's HBM bandwidth;
* its arithmetic: SIMT lane operations over the published FP32 / FP64 peak, or the HMMA
  work (zero-filled edge tiles included; three passes for tf32x3) over the dense TF32 /
  BF16 / FP16 tensor-core peak;
* its shared-memory / L1 traffic (wavefronts of 128 bytes, one per SM per clock) from the
  kernel's hot-loop SASS mix (``tools/kernel_report.py``) and the tile shape;
* its issue slots (4 warp instructions per SM per clock) from the same mix: for the
  tensor-core GEMM the non-HMMA instructions (fragment loads, TF32 conversion, addressing)
  are most of the loop, so this is usually its binding limit;

scales the on-chip bounds by the wave-quantisation efficiency of the grid, takes the largest
(the *binding limit*, named), and adds a fixed launch overhead.  A layer's estimate is the sum
of its phases (they run back to back; V and M round-trip through DRAM).  A *projection* (a
kernel that does not exist) is attached to a layer: split-K for the dense product when the
grid fills the SMs badly.

The fused layer (kernels/winograd_fused.cuh, :func:`estimate_fused`) is one kernel: V and M stay
on chip, x is re-read per block of output channels (mostly from L2, an assumed bandwidth), U per
block of tiles, and the input transform is recomputed per block of output channels; its bounds
come from the fused kernels' own SASS (:data:`SASS_FUSED_SM90`).  :func:`choose_algorithm` picks
it per layer shape when its estimate beats the three phases; :func:`fused_alternatives` projects
other tile choices.  Rows carry ``algorithm`` ("three-phase" / "fused") and ``dram_bytes``.

Not modelled (so real kernels are slower): latency and occupancy stalls, bank conflicts, L2
bandwidth (the tiled bytes are reported but not bounded), DRAM efficiency below the datasheet
figure, clock throttling, and whether HMMA (mma.sync) reaches the dense tensor peak on Hopper
(its full rate is documented for wgmma).  Every figure printed carries the word "estimate";
when a GPU is lent, ``magma-wino bench --backend cuda --model h200`` prints
measured/estimated ratios.

Usage::

    python -m magma_wino.perfmodel --gpu h200 --network vgg16 resnet50 --batch 32
    python -m magma_wino.perfmodel --roofline docs/results/roofline_h200.png
    python -m magma_wino.perfmodel --refresh-builtin /tmp/kr.json   # built-in mixes from a report
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "GPU",
    "GPUS",
    "PRECISIONS",
    "KernelMix",
    "SASS_SM90",
    "TC_TILE",
    "TC_TILE_16",
    "tc_tile",
    "PhaseEstimate",
    "LayerEstimate",
    "CUDNN_EFFICIENCY",
    "CUDNN_PATH",
    "LAUNCH_OVERHEAD_S",
    "gpu",
    "mode",
    "mix_from_sass",
    "tc_mix",
    "tc_hmma_per_slice",
    "load_sass",
    "estimate_layer",
    "estimate_cudnn",
    "FusedTile",
    "FUSED_TILES",
    "SASS_FUSED_SM90",
    "FUSED_SIMT_LDS128_WAVEFRONTS",
    "L2_RESIDENT_FRACTION",
    "fused_tile",
    "estimate_fused",
    "fused_alternatives",
    "choose_algorithm",
    "layer_rows",
    "network_estimates",
    "format_estimates",
    "format_totals",
    "markdown_estimates",
    "markdown_totals",
    "markdown_report",
    "markdown_pivot",
    "network_totals",
    "roofline_png",
    "main",
]

LABEL = "estimate (speed-of-light model, not measured)"
PROJECTION = "projection (speed-of-light model of a kernel that does not exist yet)"

#: The precision modes the model knows: magma_wino.precision.MODES without "auto", in its order.
PRECISIONS = ("fp32", "tf32x3", "tf32", "bf16", "fp16", "fp64")
#: Data dtypes accepted for the SIMT modes (the model's first version used them).
_ALIASES = {"float32": "fp32", "float64": "fp64"}
#: Modes whose products run on tensor cores (on these sm_80+ GPUs), and the dense peak each uses.
TC_PEAK = {"tf32": "tf32", "tf32x3": "tf32", "bf16": "bf16", "fp16": "fp16", "fp64": "fp64_tc"}
#: Bytes per element of U and V in DRAM and shared memory (M and the transforms: float32).
OPERAND_BYTES = {"fp32": 4, "tf32": 4, "tf32x3": 4, "bf16": 2, "fp16": 2, "fp64": 8}


def mode(precision: str) -> str:
    """``precision`` as one of :data:`PRECISIONS` (float32 / float64 name fp32 / fp64)."""
    p = _ALIASES.get(precision, precision)
    if p not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (or float32 / float64), got {precision!r}")
    return p


# --------------------------------------------------------------------------- GPUs


@dataclass(frozen=True)
class GPU:
    """Published peaks of one GPU: dense rates (no 2:4 sparsity), boost clock.  TFLOP/s, TB/s, MiB, KiB."""

    key: str
    name: str
    sms: int
    clock_ghz: float
    fp32_tflops: float
    tf32_tflops: float
    bf16_tflops: float
    fp16_tflops: float
    fp64_tflops: float
    fp64_tc_tflops: float
    hbm_tbs: float
    l2_mib: float
    smem_per_sm_kib: int
    smem_bytes_per_clk: int = 128  # per SM: 32 banks x 4 bytes (one wavefront per clock)
    issue_per_clk: int = 4  # warp instructions per SM per clock: 4 schedulers
    regs_per_sm: int = 65536
    max_warps_per_sm: int = 64
    #: L2 -> SM bandwidth per SM per clock (bytes).  Not a datasheet figure: about what public
    #: microbenchmarks of the H100 PCIe report (~5.5 TB/s with 114 SMs at 1.755 GHz), taken
    #: for every GPU here -- an assumption (H200: 28 x 132 x 1.98 GHz = 7.3 TB/s).
    l2_bytes_per_clk: float = 28.0

    @property
    def l2_bw(self) -> float:
        """Assumed L2 -> SM bandwidth, bytes per second (:attr:`l2_bytes_per_clk`)."""
        return self.l2_bytes_per_clk * self.sms * self.clock_ghz * 1e9

    def peak(self, path: str) -> float:
        """FLOP/s of a math path: fp32, fp64 (SIMT FMA); tf32, bf16, fp16, fp64_tc (tensor
        cores, dense); a precision mode names its path (tf32x3 -> tf32)."""
        path = {"float32": "fp32", "float64": "fp64", "tf32x3": "tf32"}.get(path, path)
        t = {"fp32": self.fp32_tflops, "fp64": self.fp64_tflops, "tf32": self.tf32_tflops,
             "bf16": self.bf16_tflops, "fp16": self.fp16_tflops, "fp64_tc": self.fp64_tc_tflops}[path]
        return t * 1e12

    def fma_warps_per_clk(self, path: str) -> float:
        """Warp FMA instructions per SM per clock implied by the SIMT peak (FP32 on H100: 4)."""
        return self.peak(path) / (2 * 32 * self.sms * self.clock_ghz * 1e9)

    def tc_flops_per_clk(self, path: str) -> float:
        """Tensor-core FLOPs per SM per clock implied by a dense peak (H100 TF32: ~1893)."""
        return self.peak(path) / (self.sms * self.clock_ghz * 1e9)


#: Sources, all dense figures (NVIDIA's datasheets mark the 2:4-sparsity figures, twice these,
#: with an asterisk; we halve those):
#: * A100: NVIDIA A100 Tensor Core GPU datasheet (2021), SXM4 80GB: FP32 19.5, TF32 156, BF16
#:   312, FP16 312, FP64 9.7, FP64 tensor 19.5 TFLOP/s, 2039 GB/s; NVIDIA A100 Tensor Core GPU
#:   Architecture whitepaper: 108 SMs, 1410 MHz boost, 40 MB L2, 164 KiB shared memory per SM.
#: * H100: NVIDIA H100 Tensor Core GPU datasheet, SXM5: FP32 67, TF32 989 / BF16 1979 / FP16 1979
#:   "with sparsity" -> 494.7 / 989.4 / 989.4 dense, FP64 34, FP64 tensor 67, 3.35 TB/s; NVIDIA
#:   H100 Tensor Core GPU Architecture whitepaper: 132 SMs, 50 MB L2, 228 KiB shared memory per
#:   SM; 1980 MHz boost (132 x 128 FP32 lanes x 2 x 1.98 GHz = 66.9 TFLOP/s, x 64 FP64 lanes =
#:   33.5: the datasheet's 67 and 34 rounded).  The dense BF16 figure equals 132 SMs x 4096
#:   FLOP/clk x 1.83 GHz: the tensor peaks are quoted at a lower clock than the SIMT ones; the
#:   model uses each published peak as it is and 1.98 GHz for issue and shared-memory bounds.
#: * H200: NVIDIA H200 Tensor Core GPU datasheet, SXM: the H100 SXM's compute figures (same
#:   sparsity asterisks), 141 GB HBM3e at 4.8 TB/s.
#: Shared memory: 128 bytes per clock per SM on all three (CUDA C++ Programming Guide: 32 banks
#: of 4 bytes).  Device notes: /work/.library/device/H200.md.
GPUS: dict[str, GPU] = {
    "a100": GPU("a100", "A100-SXM4-80GB", 108, 1.41, 19.5, 156.0, 312.0, 312.0, 9.7, 19.5, 2.039, 40.0, 164),
    "h100": GPU("h100", "H100-SXM5-80GB", 132, 1.98, 66.9, 494.7, 989.4, 989.4, 33.5, 66.9, 3.35, 50.0, 228),
    "h200": GPU("h200", "H200-SXM-141GB", 132, 1.98, 66.9, 494.7, 989.4, 989.4, 33.5, 66.9, 4.8, 50.0, 228),
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

#: cuDNN's implicit-GEMM / direct 3x3 kernels are taken to reach 70% of the math peak they use.
#: Large CUTLASS/cuDNN implicit-GEMM convolutions typically sustain 60-80% of peak; 0.7 is the
#: middle of that range, an assumption until a GPU measures it (bench's cudnn rows).
CUDNN_EFFICIENCY = 0.7
#: The cuDNN configuration each mode is compared with: the same accuracy class.  tf32x3 is
#: float32-accurate and cuDNN has no 3xTF32 convolution, so its comparator is cuDNN with TF32
#: off (FP32 SIMT), as ``magma-wino bench`` runs it; every float32 mode is also shown against
#: cuDNN with TF32 allowed (``cudnn_tf32_ms``).
CUDNN_PATH = {"fp32": "fp32", "tf32x3": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16": "fp16", "fp64": "fp64"}


# --------------------------------------------------------------------------- kernel mixes


@dataclass(frozen=True)
class KernelMix:
    """Warp instructions of one hot-loop iteration (or, for ``per_thread``, one thread's kernel).

    ``fma``: FMA-class instructions (FFMA/DFMA lanes, or HMMA); ``insns``: all;
    ``l1_wavefronts``: shared-memory and L1 wavefronts (one per 128 bytes a warp instruction
    moves, no conflicts); ``source``: where the numbers come from ("SASS ..." or "projection ...")."""

    fma: float
    insns: float
    l1_wavefronts: float
    source: str = "tile shape"


_WAVES = {"32": 1, "64": 2, "128": 4}


def mix_from_sass(mix: dict[str, int], source: str = "SASS") -> KernelMix:
    """A :class:`KernelMix` from a ``tools/kernel_report.py`` hot-loop ``mix`` dict (LDGSTS: one
    wavefront each; the tensor-core GEMM replaces that with its stage bytes, :func:`tc_mix`)."""
    fma = sum(mix.get(k, 0) for k in ("FFMA", "DFMA", "HMMA", "DMMA"))
    waves = sum(mix.get(f"{op}.{w}", 0) * n for op in ("LDS", "LDG", "STS") for w, n in _WAVES.items())
    return KernelMix(fma, sum(mix.values()), waves + mix.get("LDGSTS", 0), source)


#: Hot-loop mixes read from the SASS of the kernels by tools/kernel_report.py (nvcc 13.0,
#: sm_90, cuobjdump 13.5, the kernels as of issue 16's block-sparse and 2:4 kernels, with
#: gemm_tc's element-copy fix; FADD counted apart from "other"; ``python tools/kernel_report.py --arch
#: 90 --json FILE``, then ``python -m magma_wino.perfmodel --refresh-builtin FILE`` prints this
#: table), kept here so that the model runs without the CUDA toolchain.  Per warp:
#: * gemm (kernels/gemm_batched.cuh, key (dtype, tile, VEC)) = one BLK_K slice; VEC 4 (float) /
#:   2 (double) = 16-byte vector copies, 1 = element copies.  The register block is read with
#:   LDS.128 (the 128x128 float tile: 8x8 per thread, 512 FFMA per 8-deep slice);
#: * spmm = the per-nonzero loop of the wide tile (kernels/spmm_batched.cuh after the issue-16
#:   rewrite: 16 nonzeros per iteration, 4 (float64: 2) consecutive columns per lane with 16-byte
#:   loads of V; 159 / 132 instructions, 9.9 / 8.3 per nonzero; kernel
#:   spmm_batched_kernel<float, 32, 8, 32, 128, 512, 4, true, true> / <double, ..., 64, 256, 2, ...>);
#: * gemm_tc (kernels/gemm_tc.cuh, key (precision, VEC)) = one kK slice:
#:   - tf32 / tf32x3 (GemmTc64x64x16_32x32_s2, VEC 4 = 16-byte cp.async, 1 = 4-byte): 32 / 96
#:     HMMA.1684.F32.TF32 (m16n8k4, 1024 FLOP each) per 16-deep slice.  Opcode by opcode: the
#:     WMMA fragment loads are 32 generic LD.E (shared memory through generic addresses, each
#:     with an IMAD.WIDE), the TF32 rounding of the 32 fragment elements per thread an FSETP +
#:     an IMAD.IADD each (tf32x3's split ~7 per element), the rest copy addressing and loop
#:     control: 223 / 365 "other" per 32 / 96 HMMA (tf32x3 also 32 FADD);
#:   - bf16 / fp16 (GemmTc16_64x64x32_32x32_s3, VEC 8 = 16-byte cp.async, 1 = 16-bit loads and
#:     stores): 16 HMMA.16816.F32 (4096 FLOP each) per 32-deep slice; fp16 loads its fragments
#:     with LDSM (134 instructions), bf16 with 32 generic LD.E + 16 MOVM (168);
#:   - fp64 (GemmTc64_64x64x16_32x32_s2, VEC 2 = 16-byte cp.async, 1 = 8-byte):
#:     64 DMMA.884 (512 FLOP each) per 16-deep slice, 349 instructions;
#: * bsr (kernels/bsr_tc_batched.cuh, key precision, 16-byte copies) = one pipeline stage of two
#:   kept 16 x 8 blocks per warp (warp tile 16 x 32): tf32 16 HMMA.1684 in 264 instructions
#:   (its fragment loads, as gemm_tc's, generic LD.E in "other"), tf32x3 48, fp16 / bf16 4
#:   HMMA.16816, fp64 32 DMMA.884;
#: * bsr32 (the same kernel in 32 x 8 blocks) = one stage of two kept 32 x 8 blocks per warp (warp
#:   tile 32 x 32; fp64 16 x 32 of four warps): tf32 32 HMMA in 334 instructions (10.4 per HMMA,
#:   the 16-row tile 16.5, the dense tile 8.4), tf32x3 96 in 584, fp16 / bf16 8, fp64 32 DMMA;
#: * sp24 (kernels/sp24_tc_batched.cuh, key precision, 16-byte copies of B) = one pipeline stage
#:   per warp (warp tile 32 x 32): fp16 / bf16 64 dense k, 32 HMMA.SP.16816 in 219 instructions
#:   (B by 8 LDSM.16.MT88.4 in "other"); tf32 32 k, 32 HMMA.SP.1688 in 325 (96 of them the
#:   __float_to_tf32 expansion); tf32x3 96 HMMA.SP in 638;
#: * sp24w (the wide 128 x 64 tile, K >= 128; warp tile 64 x 32): fp16 / bf16 64 HMMA.SP in 300,
#:   tf32 64 in 431, tf32x3 192 in 897.
SASS_SM90: dict[tuple, dict[str, int]] = {
    ('bsr', 'bf16'): {'HMMA': 4, 'LDS.32': 6, 'LDG.32': 2, 'LDGSTS': 6, 'BAR': 2, 'other': 117},
    ('bsr', 'fp16'): {'HMMA': 4, 'LDS.32': 6, 'LDG.32': 2, 'LDGSTS': 6, 'BAR': 2, 'other': 93},
    ('bsr', 'fp64'): {'DMMA': 32, 'LDS.32': 3, 'LDG.32': 2, 'LDGSTS': 20, 'BAR': 2, 'other': 265},
    ('bsr', 'tf32'): {'HMMA': 16, 'LDS.32': 3, 'LDG.32': 2, 'LDGSTS': 10, 'BAR': 2, 'other': 231},
    ('bsr', 'tf32x3'): {'HMMA': 48, 'FADD': 24, 'LDS.32': 3, 'LDG.32': 2, 'LDGSTS': 10, 'BAR': 2, 'other': 343},
    ('bsr32', 'bf16'): {'HMMA': 8, 'LDS.32': 3, 'LDG.32': 2, 'LDGSTS': 6, 'BAR': 2, 'other': 122},
    ('bsr32', 'fp16'): {'HMMA': 8, 'LDS.32': 3, 'LDG.32': 2, 'LDGSTS': 6, 'BAR': 2, 'other': 97},
    ('bsr32', 'fp64'): {'DMMA': 32, 'LDS.32': 3, 'LDG.32': 2, 'LDGSTS': 12, 'BAR': 2, 'other': 196},
    ('bsr32', 'tf32'): {'HMMA': 32, 'LDS.32': 3, 'LDG.32': 2, 'LDGSTS': 12, 'BAR': 2, 'other': 283},
    ('bsr32', 'tf32x3'): {'HMMA': 96, 'FADD': 32, 'LDS.32': 3, 'LDG.32': 2, 'LDGSTS': 12, 'BAR': 2, 'other': 437},
    ('gemm', 'float32', '128x128', 4): {'FFMA': 512, 'LDS.32': 3, 'LDS.128': 32, 'LDG.128': 1, 'LDGSTS': 2, 'STS.32': 4, 'BAR': 1, 'other': 56},
    ('gemm', 'float32', '16x32', 1): {'FFMA': 32, 'LDS.32': 6, 'LDS.64': 16, 'LDGSTS': 12, 'BAR': 1, 'other': 87},
    ('gemm', 'float32', '16x32', 4): {'FFMA': 32, 'LDS.32': 3, 'LDS.64': 16, 'LDG.128': 1, 'LDGSTS': 2, 'STS.32': 4, 'BAR': 1, 'other': 66},
    ('gemm', 'float32', '32x64', 1): {'FFMA': 128, 'LDS.32': 6, 'LDS.128': 16, 'LDGSTS': 16, 'BAR': 1, 'other': 111},
    ('gemm', 'float32', '32x64', 4): {'FFMA': 128, 'LDS.32': 3, 'LDS.128': 16, 'LDG.128': 1, 'LDGSTS': 2, 'STS.32': 4, 'BAR': 1, 'other': 47},
    ('gemm', 'float32', '64x64', 1): {'FFMA': 256, 'LDS.32': 3, 'LDS.128': 32, 'LDGSTS': 16, 'BAR': 1, 'other': 109},
    ('gemm', 'float32', '64x64', 4): {'FFMA': 256, 'LDS.32': 3, 'LDS.128': 32, 'LDG.128': 1, 'LDGSTS': 2, 'STS.32': 4, 'BAR': 1, 'other': 56},
    ('gemm', 'float64', '16x32', 1): {'DFMA': 32, 'LDS.32': 6, 'LDS.128': 16, 'LDGSTS': 8, 'BAR': 1, 'other': 76},
    ('gemm', 'float64', '16x32', 2): {'DFMA': 32, 'LDS.32': 3, 'LDS.128': 16, 'LDG.128': 1, 'LDGSTS': 2, 'STS.64': 2, 'BAR': 1, 'other': 48},
    ('gemm', 'float64', '32x64', 1): {'DFMA': 128, 'LDS.32': 3, 'LDS.128': 32, 'LDGSTS': 12, 'BAR': 1, 'other': 89},
    ('gemm', 'float64', '32x64', 2): {'DFMA': 128, 'LDS.32': 3, 'LDS.128': 32, 'LDG.128': 1, 'LDGSTS': 4, 'STS.64': 2, 'BAR': 1, 'other': 67},
    ('gemm', 'float64', '64x64', 1): {'DFMA': 256, 'LDS.32': 3, 'LDS.128': 64, 'LDGSTS': 16, 'BAR': 1, 'other': 122},
    ('gemm', 'float64', '64x64', 2): {'DFMA': 256, 'LDS.32': 3, 'LDS.128': 64, 'LDG.128': 2, 'LDGSTS': 4, 'STS.64': 4, 'BAR': 1, 'other': 86},
    ('gemm_tc', 'bf16', 1): {'HMMA': 16, 'LDG.32': 32, 'STS.32': 32, 'BAR': 2, 'other': 557},
    ('gemm_tc', 'bf16', 8): {'HMMA': 16, 'LDS.32': 3, 'LDGSTS': 8, 'BAR': 2, 'other': 140},
    ('gemm_tc', 'fp16', 1): {'HMMA': 16, 'LDG.32': 32, 'STS.32': 32, 'BAR': 2, 'other': 472},
    ('gemm_tc', 'fp16', 8): {'HMMA': 16, 'LDS.32': 3, 'LDGSTS': 8, 'BAR': 2, 'other': 110},
    ('gemm_tc', 'fp64', 1): {'DMMA': 64, 'LDS.32': 3, 'LDGSTS': 32, 'BAR': 2, 'other': 385},
    ('gemm_tc', 'fp64', 2): {'DMMA': 64, 'LDS.32': 3, 'LDGSTS': 16, 'BAR': 2, 'other': 264},
    ('gemm_tc', 'tf32', 1): {'HMMA': 32, 'LDS.32': 3, 'LDGSTS': 32, 'BAR': 2, 'other': 416},
    ('gemm_tc', 'tf32', 4): {'HMMA': 32, 'LDS.32': 3, 'LDGSTS': 8, 'BAR': 2, 'other': 223},
    ('gemm_tc', 'tf32x3', 1): {'HMMA': 96, 'FADD': 32, 'LDS.32': 3, 'LDGSTS': 32, 'BAR': 2, 'other': 559},
    ('gemm_tc', 'tf32x3', 4): {'HMMA': 96, 'FADD': 32, 'LDS.32': 3, 'LDGSTS': 8, 'BAR': 2, 'other': 365},
    ('sp24', 'bf16'): {'HMMA': 32, 'LDS.32': 27, 'LDGSTS': 13, 'STS.128': 1, 'BAR': 2, 'other': 144},
    ('sp24', 'fp16'): {'HMMA': 32, 'LDS.32': 27, 'LDGSTS': 13, 'STS.128': 1, 'BAR': 2, 'other': 144},
    ('sp24', 'tf32'): {'HMMA': 32, 'LDS.32': 59, 'LDGSTS': 13, 'STS.128': 1, 'BAR': 2, 'other': 218},
    ('sp24', 'tf32x3'): {'HMMA': 96, 'FADD': 48, 'LDS.32': 59, 'LDGSTS': 13, 'STS.128': 1, 'BAR': 2, 'other': 419},
    ('sp24w', 'bf16'): {'HMMA': 64, 'LDS.32': 45, 'LDGSTS': 17, 'STS.128': 1, 'BAR': 2, 'other': 171},
    ('sp24w', 'fp16'): {'HMMA': 64, 'LDS.32': 45, 'LDGSTS': 17, 'STS.128': 1, 'BAR': 2, 'other': 171},
    ('sp24w', 'tf32'): {'HMMA': 64, 'LDS.32': 77, 'LDGSTS': 17, 'STS.128': 1, 'BAR': 2, 'other': 270},
    ('sp24w', 'tf32x3'): {'HMMA': 192, 'FADD': 64, 'LDS.32': 77, 'LDGSTS': 17, 'STS.128': 1, 'BAR': 2, 'other': 544},
    ('spmm', 'float32'): {'FFMA': 64, 'LDS.128': 8, 'LDG.128': 16, 'other': 71},
    ('spmm', 'float64'): {'DFMA': 32, 'LDS.128': 12, 'LDG.128': 16, 'other': 72},
}

#: One thread's whole transform kernel (2D, r = 3; static instruction counts of the SASS, so
#: an upper bound on the dynamic count): (phase, dtype, m) -> instructions, channels first.
#: (The channels-last instantiations, input_transform_2d_nhwc_kernel / output_transform_2d_nhwc_
#: kernel, have 4-6 % and 9-35 % more: their strides along W are not the unit.)
TRANSFORM_INSNS_SM90: dict[tuple[str, str, int], int] = {
    ("input", "float32", 2): 423, ("input", "float32", 4): 903, ("input", "float32", 6): 1671,
    ("input", "float64", 2): 423, ("input", "float64", 4): 911, ("input", "float64", 6): 1695,
    ("output", "float32", 2): 271, ("output", "float32", 4): 495, ("output", "float32", 6): 943,
    ("output", "float64", 2): 271, ("output", "float64", 4): 503, ("output", "float64", 6): 943,
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
    #: resident blocks per SM by (dtype, VEC): the kernel report's sm_90 occupancy
    blocks_per_sm: dict = field(default_factory=dict)

    @property
    def warps(self) -> int:
        return self.dim_x * self.dim_y // 32


GEMM_TILES = (
    GemmTile("128x128", 16, 16, 128, 128, 8, {("float32", 4): 2}),
    GemmTile("64x64", 16, 16, 64, 64, 16, {("float32", 4): 3, ("float32", 1): 3, ("float64", 2): 2, ("float64", 1): 2}),
    GemmTile("32x64", 16, 8, 32, 64, 8, {("float32", 4): 7, ("float32", 1): 7, ("float64", 2): 4, ("float64", 1): 4}),
    GemmTile("16x32", 16, 8, 16, 32, 8, {("float32", 4): 8, ("float32", 1): 9, ("float64", 2): 6, ("float64", 1): 6}),
)
#: SpmmTileWide (fp32: 32 x 128, fp64: 32 x 64), 256 threads; 2 blocks per SM (118 / 120
#: registers per thread in the sm_90 kernel report of the issue-16 rewrite: occupancy 0.25).
SPMM_TILE = {"float32": (32, 128), "float64": (32, 64)}
SPMM_BLOCKS_PER_SM = 2


def gemm_vec(dtype: str, C: int, P: int) -> int:
    """gemm_batched's copy width: 16-byte vectors (4 floats, 2 doubles) when every row of U
    (C long) and V (P long) is 16-byte aligned, else one element per copy."""
    v = 2 if dtype == "float64" else 4
    return v if C % v == 0 and P % v == 0 else 1


def gemm_tile(K: int, P: int, dtype: str = "float32", vec: int = 4) -> GemmTile:
    """gemm_batched's choice: the largest tile the problem fills (float 128 x 128 on aligned rows only)."""
    if dtype == "float32" and vec > 1 and K >= 128 and P >= 128:
        return GEMM_TILES[0]
    if K >= 64 and P >= 64:
        return GEMM_TILES[1]
    if K >= 32 and P >= 64:
        return GEMM_TILES[2]
    return GEMM_TILES[3]


def gemm_mix(tile: GemmTile, dtype: str, sass: dict | None = None, vec: int | None = None) -> KernelMix:
    """Per warp per BLK_K slice.  From the SASS (given or built in, :data:`SASS_SM90`), else
    derived from the tile shape: THR_M x THR_N FMAs and (THR_M + THR_N) / 4 LDS.128 per k step
    (the register block is read as 4-wide vectors), the slice's stores, and 1/8 of the FMAs in
    other instructions."""
    vec = (2 if dtype == "float64" else 4) if vec is None else vec
    key = ("gemm", dtype, tile.name, vec)
    given = (sass or {}).get(key)
    if given or key in SASS_SM90:
        return mix_from_sass(given or SASS_SM90[key], "SASS (given)" if given else "SASS sm_90")
    s = 8 if dtype == "float64" else 4
    thr_m, thr_n = tile.blk_m // tile.dim_y, tile.blk_n // tile.dim_x
    fma = thr_m * thr_n * tile.blk_k
    lds = (thr_m + thr_n) * tile.blk_k * s / 4  # wavefronts: the operand bytes of a warp
    sts = tile.blk_k * (tile.blk_m + tile.blk_n) * s / 128 / tile.warps  # wavefronts per warp
    n_lds = (thr_m + thr_n) * tile.blk_k * s / 16
    return KernelMix(fma, fma + n_lds + fma / 8, lds + sts, "tile shape")


@dataclass(frozen=True)
class TcTile:
    """A kernels/gemm_tc.cuh configuration (gemm_tc_batched picks one per operand width)."""

    name: str = "64x64x16_32x32_s2"
    blk_m: int = 64
    blk_n: int = 64
    blk_k: int = 16
    warp_m: int = 32
    warp_n: int = 32
    #: resident blocks per SM by copy width VEC (sm_90 occupancy of the kernel's registers and
    #: shared memory, 128 threads per block; float: 0.25 with 16-byte copies, 0.19 with 4-byte)
    blocks_per_sm: dict = field(default_factory=lambda: {4: 4, 1: 3})

    @property
    def warps(self) -> int:
        return (self.blk_m // self.warp_m) * (self.blk_n // self.warp_n)


#: float operands (tf32, tf32x3): GemmTc64x64x16_32x32_s2.
TC_TILE = TcTile()
#: double operands (fp64, DMMA): GemmTc64_64x64x16_32x32_s2 (occupancy from the kernel report).
TC_TILE_64 = TcTile("64_64x64x16_32x32_s2", blocks_per_sm={2: 2, 1: 2})
#: 16-bit operands (bf16, fp16): GemmTc16_64x64x32_32x32_s3 (32-deep slices, 3 stages, 28.5 KiB;
#: occupancy 0.25 with 16-byte copies, 0.125 with 16-bit loads: 181 / 249 registers).
TC_TILE_16 = TcTile("16_64x64x32_32x32_s3", blk_k=32, blocks_per_sm={8: 4, 1: 2})


def tc_tile(precision: str) -> TcTile:
    """The tensor-core configuration of a mode (by its operand width)."""
    return {2: TC_TILE_16, 8: TC_TILE_64}.get(OPERAND_BYTES[precision], TC_TILE)
#: HMMA instruction shapes (m, n, k) the WMMA fragments compile to on sm_80 / sm_90.
HMMA_SHAPE = {"tf32": (16, 8, 4), "tf32x3": (16, 8, 4), "bf16": (16, 8, 16), "fp16": (16, 8, 16),
              "fp64": (8, 8, 4)}  # fp64: DMMA.884


def tc_hmma_per_slice(precision: str, tile: TcTile | None = None) -> int:
    """HMMA instructions per warp per kK slice implied by the tile and instruction shapes
    (tf32x3: three products each)."""
    tile = tile or tc_tile(precision)
    hm, hn, hk = HMMA_SHAPE[precision]
    n = (tile.warp_m // hm) * (tile.warp_n // hn) * (tile.blk_k // hk)
    return 3 * n if precision == "tf32x3" else n


def _tc_vec(precision: str, C: int, P: int) -> int:
    """gemm_tc_batched's copy width: 16-byte cp.async when every row of U and V is 16-byte
    aligned (C and P multiples of 16 bytes' worth of elements), else 4 bytes."""
    per16 = 16 // OPERAND_BYTES[precision]
    return per16 if C % per16 == 0 and P % per16 == 0 else 1


def tc_mix(precision: str, vec: int, sass: dict | None = None, tile: TcTile | None = None) -> KernelMix:
    """The tensor-core GEMM's hot loop per warp per kK slice: instructions from the SASS (given
    or built in); shared-memory wavefronts from the mix's LDS/STS plus, from the tile shape, the
    stage's cp.async stores (the A and B slices, split over the warps; the mix's STS when the
    copies go through registers) and the WMMA fragment loads (generic LD.E or LDSM, which the
    report counts as "other")."""
    tile = tile or tc_tile(precision)
    key = ("gemm_tc", precision, vec)
    given = (sass or {}).get(key)
    if given:
        mix, source = given, "SASS (given)"
    elif key in SASS_SM90:
        mix, source = SASS_SM90[key], "SASS sm_90"
    else:
        raise ValueError(f"no tensor-core mix for precision {precision!r} with VEC {vec}")
    s = OPERAND_BYTES[precision]
    base = mix_from_sass({k: v for k, v in mix.items() if k != "LDGSTS"})
    stage = (tile.blk_m + tile.blk_n) * tile.blk_k * s / tile.warps / 128 if mix.get("LDGSTS") else 0.0
    frags = (tile.warp_m + tile.warp_n) * tile.blk_k * s / 128
    return KernelMix(mix.get("HMMA", 0) + mix.get("DMMA", 0), sum(mix.values()), base.l1_wavefronts + stage + frags,
                     source)


def _tc_key(kernel: str) -> tuple[str, int] | None:
    """(precision, VEC) of a kernel report's gemm_tc_kernel row name, or None."""
    if "gemm_tc_kernel<" not in kernel:
        return None
    head = kernel.split("<", 1)[1].split(",", 1)[0].strip()
    prec = {"kTf32": "tf32", "kTf32x3": "tf32x3", "kBf16": "bf16", "kFp16": "fp16",
            "(TcPrecision)0": "tf32", "(TcPrecision)1": "tf32x3", "(TcPrecision)2": "bf16",
            "(TcPrecision)3": "fp16", "kFp64": "fp64", "(TcPrecision)4": "fp64"}.get(head)  # fixed enum values
    vec = kernel.rstrip(">").rsplit(",", 1)[-1].strip()
    return (prec, int(vec)) if prec and vec.isdigit() else None


#: The gemm_tc configurations of TC_TILE and TC_TILE_16, as the kernel report prints them.
_TC_CONFIGS = ("GemmTcConfig<GemmShape<64, 64, 16>, GemmShape<32, 32, 16>, 2>",
               "GemmTcConfig16<GemmShape<64, 64, 32>, GemmShape<32, 32, 32>, 3>",
               "GemmTcConfig64<GemmShape<64, 64, 16>, GemmShape<32, 32, 16>, 2>")


#: The wide SpMM tiles (SpmmTileWide, SpmmTileWide64) in a kernel name, with the path flags of
#: kernels/spmm_batched.cuh after them (VEC, OFF32, ORDERED) or, in reports of the kernel before
#: issue 16, without.
_SPMM_WIDE = re.compile(r"spmm_batched_kernel<\w+, 32, 8, 32, (?:128, 512|64, 256)(?P<flags>, \d+, \w+, \w+)?>")


def _is_layer_spmm(kernel: str) -> bool:
    """Whether a kernel report row is the SpMM a layer runs: a wide tile, and with the path
    flags the layer's path (16-byte vectors, 32-bit offsets, the load-balancing row order:
    P is a multiple of 4 for any batch that is, and the C ABI's sizes fit int32)."""
    if not (m := _SPMM_WIDE.search(kernel)):
        return False
    flags = m["flags"]
    return flags is None or (not flags.startswith(", 1,") and flags.endswith("true, true"))


def load_sass(path: str | Path | None, arch: str = "90") -> dict | None:
    """{key: mix} in the keys of :data:`SASS_SM90` from a ``tools/kernel_report.py --json``
    file (``arch`` rows: every SIMT GEMM tile and copy width, the wide SpMM, every
    gemm_tc_kernel precision and copy width).  None for no path."""
    if not path:
        return None
    out: dict[tuple, dict[str, int]] = {}
    for r in json.loads(Path(path).read_text()):
        if str(r.get("arch")) != arch or not r.get("sass"):
            continue
        k = r["kernel"]
        mix = {c: v for c, v in r["sass"]["mix"].items() if v}
        dtype = "float64" if "<double" in k else "float32"
        if (g := re.search(r"gemm_batched_kernel<\w+, GemmConfig<\d+, \d+, (\d+), (\d+), \d+>, (\d+)>", k)):
            out[("gemm", dtype, f"{g[1]}x{g[2]}", int(g[3]))] = mix
        elif _is_layer_spmm(k):
            out[("spmm", dtype)] = mix
        elif (tc := _tc_key(k)) and any(c in k for c in _TC_CONFIGS):
            out[("gemm_tc", *tc)] = mix
        elif (sk := _sparse_tc_key(k)) is not None:
            out[sk] = mix
        elif (fk := _fused_key(k)) and r["sass"].get("scope") == "loop":
            entry = {"loop": mix, "inner": [{c: v for c, v in loop["mix"].items() if v}
                                            for loop in r["sass"].get("inner") or []]}
            if r["sass"].get("epilogue"):
                entry["epilogue"] = {c: v for c, v in r["sass"]["epilogue"]["mix"].items() if v}
            out[("fused", *fk)] = entry
    return out


def _sparse_tc_key(kernel: str) -> tuple[str, str] | None:
    """("bsr", mode) / ("bsr32", mode) / ("sp24", mode) / ("sp24w", mode) of a kernel report's
    bsr_tc_batched_kernel (16- / 32-row blocks) / sp24_tc_kernel (64- / 128-row tile) row with
    16-byte copies (the path the model takes), else None."""
    for name, family in (("bsr_tc_batched_kernel<", "bsr"), ("sp24_tc_kernel<", "sp24")):
        if name not in kernel:
            continue
        if family == "bsr" and re.search(r"BsrTcConfig<GemmTcConfig(?:16|64)?<GemmShape<32,", kernel):
            family = "bsr32"
        if family == "sp24" and re.search(r"Sp24TcConfig<\d+, \d+, 128,", kernel):
            family = "sp24w"
        head = kernel.split("<", 1)[1].split(",", 1)[0].strip()
        prec = {"kTf32": "tf32", "kTf32x3": "tf32x3", "kBf16": "bf16", "kFp16": "fp16", "kFp64": "fp64",
                "(TcPrecision)0": "tf32", "(TcPrecision)1": "tf32x3", "(TcPrecision)2": "bf16",
                "(TcPrecision)3": "fp16", "(TcPrecision)4": "fp64"}.get(head)
        vec = kernel.rstrip(">").rsplit(",", 1)[-1].strip()
        if prec and vec.isdigit() and int(vec) == 16 // OPERAND_BYTES[prec]:
            return family, prec
    return None


#: FusedMath (winograd_fused.cuh) as the kernel report prints it -> precision mode.
_FUSED_MATH = {"kFp32": "fp32", "kTf32": "tf32", "kTf32x3": "tf32x3", "kBf16": "bf16", "kFp16": "fp16",
               "kFp64": "fp64", "(FusedMath)0": "fp32", "(FusedMath)1": "tf32", "(FusedMath)2": "tf32x3",
               "(FusedMath)3": "bf16", "(FusedMath)4": "fp16", "(FusedMath)5": "fp64"}


def _fused_key(kernel: str) -> tuple[int, str] | None:
    """(m, precision) of a kernel report's winograd_fused_2d_kernel row name, or None."""
    g = re.search(r"winograd_fused_2d_kernel<FusedConfig<(\d+), .*?>, (k\w+|\(FusedMath\)\d+),", kernel)
    if not g or g[2] not in _FUSED_MATH:
        return None
    return int(g[1]), _FUSED_MATH[g[2]]


_load_sass = load_sass  # the name of the first version


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
    hypothetical: bool = False  # the kernel's mix is a projection (no kernel compiled yet)

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
    #: kernels that do not exist: {"split_k": {...}}, with its "ms" (layer)
    projections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: "three-phase" (three kernels, V and M through DRAM) or "fused" (winograd_fused.cuh)
    algorithm: str = "three-phase"
    #: the fused model's accounting (bytes by operand, re-read counts, grid, instruction counts)
    details: dict[str, Any] = field(default_factory=dict)
    #: the batched product: "dense", "csr" or "block" (:data:`PRODUCTS`)
    product: str = "dense"

    @property
    def dram_bytes(self) -> float:
        return sum(p.dram_bytes for p in self.phases)

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
                "hypothetical": self.hypothetical, "ms": self.ms, "label": LABEL, "algorithm": self.algorithm,
                "dram_bytes": self.dram_bytes, "phases": [p.as_dict() for p in self.phases], "product": self.product,
                "projections": self.projections, "details": self.details}


def _waves(blocks: int, per_sm: int, sms: int) -> float:
    """Wave-quantisation efficiency: blocks / (waves x resident slots).  A grid of fewer blocks
    than one wave leaves SMs idle: 100 blocks on 132 SMs x 4 slots -> 0.19."""
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
    return "float64" if mode(precision) == "fp64" else "float32"


#: Split counts the split-K projection tries; each split keeps at least this many kK slices.
SPLIT_K = (2, 4, 8, 16)
SPLIT_K_MIN_SLICES = 4


#: The batched products of a layer (magma_wino.layer.PRODUCTS).
PRODUCTS = ("dense", "csr", "block", "2:4")
#: The modes with a sparse tensor-core MMA (mma.sp; fp64 has none).
SP24_MODES = ("tf32", "tf32x3", "bf16", "fp16")
#: kernels/sp24_tc_batched.cuh's tiles (Sp24TcConfig) by their rows: 64 x 64 of C per thread
#: block, 4 warps of 32 x 32, or -- for K >= SP24_WIDE_MIN_ROWS -- 128 x 64, 4 warps of 64 x 32;
#: one pipeline stage = SP24_STEP[mode] dense k.  Blocks per SM: the kernel report's sm_90
#: occupancy with 16-byte copies (registers bind).
SP24_TILES = {64: (64, 64), 128: (128, 64)}
SP24_WARP_M = {64: 32, 128: 64}
SP24_WARPS = 4
SP24_WIDE_MIN_ROWS = 128
SP24_BLOCKS_PER_SM = {64: 4, 128: 3}
SP24_STEP = {"fp16": 64, "bf16": 64, "tf32": 32, "tf32x3": 32}
#: mma.sp shapes (m, n, dense k): m16n8k16 for 16-bit (2:4), m16n8k8 for TF32 (1:2).
HMMA_SP_SHAPE = {"fp16": (16, 8, 16), "bf16": (16, 8, 16), "tf32": (16, 8, 8), "tf32x3": (16, 8, 8)}
#: The projection's instructions and shared-memory wavefronts per stage relative to the dense
#: tensor-core kernel's per the same k (half the MMAs, half the A fragment loads, the same B
#: loads, the metadata), where no SASS mix is given -- a stated assumption.
SP24_MIX_SCALE = 0.75

#: kernels/bsr_tc_batched.cuh's tiles by block height bm (BsrTc*_16x64x16_16x32,
#: BsrTc*_32x64x16_32x32 / BsrTc64_32x64x16_16x32): one bm-row block row x BSR_TILE_N tiles per
#: thread block, BSR_WARPS[bm] warps (float64 at bm = 32: four of 16 x 32, else warps of bm x 32
#: side by side along n), BSR_SLOTS kept bm x 8 blocks gathered per pipeline stage.
BSR_TILE_N = 64
BSR_ROWS = (16, 32)
BSR_WARPS = {16: 2, 32: 2}
BSR_WARPS_FP64 = {16: 2, 32: 4}
BSR_SLOTS = 2
#: Resident thread blocks per SM by (block height, mode), 16-byte copies: the kernel report's
#: sm_90 occupancy (registers bind; 16-row, 64 threads: tf32 / tf32x3 96, fp16 61, bf16 68, fp64
#: 126 per thread; 32-row: tf32 / tf32x3 126-128, fp16 79, bf16 88 with 64 threads, fp64 126 with
#: 128).
BSR_BLOCKS_PER_SM = {16: {"tf32": 10, "tf32x3": 10, "fp16": 16, "bf16": 14, "fp64": 8},
                     32: {"tf32": 8, "tf32x3": 8, "fp16": 12, "bf16": 11, "fp64": 4}}


#: MMA instructions per warp per kept 16 x 8 block of the block-sparse kernel (warp tile 16 x 32:
#: tf32 m16n8k4 1 x 4 x 2; tf32x3 three times; 16-bit m16n8k16 four per two blocks; DMMA.884
#: 2 x 4 x 2), twice as many per 32 x 8 block (32 x 32 warp tiles; fp64 two warps of 16 x 32
#: along m): the projection's, where no SASS mix is given.
BSR_MMA_PER_BLOCK = {"tf32": 8, "tf32x3": 24, "bf16": 2, "fp16": 2, "fp64": 16}
#: Instructions per kept block besides the MMAs and the dense kernel's per-MMA overhead (the
#: block column index, its row and address arithmetic, the stage's copies and barrier): a
#: stated assumption of the projection, replaced by the SASS mix once the kernel report has it.
BSR_BLOCK_OVERHEAD = 24


def bsr_warps(precision: str, block_rows: int = 16) -> int:
    """Warps per thread block of the block-sparse kernel of this block height."""
    if block_rows not in BSR_ROWS:
        raise ValueError(f"block_rows must be one of {BSR_ROWS} (the kernel's block heights), got {block_rows!r}")
    return (BSR_WARPS_FP64 if precision == "fp64" else BSR_WARPS)[block_rows]


def bsr_mix(precision: str, sass: dict | None = None, block_rows: int = 16) -> KernelMix:
    """Per warp per kept block of the block-sparse tensor-core kernel with blocks of
    ``block_rows`` x 8: the SASS mix of one pipeline stage (given or built in, key ("bsr",
    precision) for 16 rows, ("bsr32", precision) for 32; 16-byte copies) over its
    :data:`BSR_SLOTS` blocks, else a projection from the dense kernel's mix per MMA
    (:func:`tc_mix`, 16-byte copies) plus :data:`BSR_BLOCK_OVERHEAD`."""
    warps = bsr_warps(precision, block_rows)
    key = ("bsr", precision) if block_rows == 16 else ("bsr32", precision)
    given = (sass or {}).get(key)
    s = OPERAND_BYTES[precision]
    # the stage's copies (A block and its bk x BSR_TILE_N slab of V, split over the warps) and the
    # warp's fragment loads (its rows of the A block, bk x its columns of V) in 128-byte wavefronts
    wrows = 16 if precision == "fp64" else block_rows  # the warp tile: wrows x 32 in every configuration
    stage = (block_rows * 8 + 8 * BSR_TILE_N) * s / warps / 128
    frags = (wrows * 8 + 8 * 32) * s / 128
    if given or key in SASS_SM90:
        mix = given or SASS_SM90[key]
        base = mix_from_sass({k: v for k, v in mix.items() if k != "LDGSTS"})
        return KernelMix((mix.get("HMMA", 0) + mix.get("DMMA", 0)) / BSR_SLOTS, sum(mix.values()) / BSR_SLOTS,
                         base.l1_wavefronts / BSR_SLOTS + stage + frags, "SASS (given)" if given else "SASS sm_90")
    dense = tc_mix(precision, 16 // s)
    mma = BSR_MMA_PER_BLOCK[precision] * (block_rows // 16) * 2 // warps  # a block's MMAs over the warps
    insns = mma * dense.insns / dense.fma + BSR_BLOCK_OVERHEAD
    return KernelMix(mma, insns, stage + frags, "projection (dense kernel's mix per MMA + block overhead)")


def _block_product(g: GPU, prec: str, pos: int, K: int, C: int, P: int, density: float, s_op: int,
                   v_bytes: float, m_bytes: float, sass: dict | None, block_rows: int = 16) -> PhaseEstimate:
    """The block-sparse tensor-core product (:func:`estimate_product`, product "block")."""
    if prec not in TC_PEAK:
        raise ValueError(f"the block-sparse product is a tensor-core one; precision {prec!r} has none")
    bm, bk = block_rows, 8
    R, CB = math.ceil(K / bm), math.ceil(C / bk)
    nblocks = density * pos * R * CB
    ntiles = math.ceil(P / BSR_TILE_N)
    mix = bsr_mix(prec, sass, bm)
    clk = g.clock_ghz * 1e9
    grid = pos * R * ntiles
    eff = _waves(grid, BSR_BLOCKS_PER_SM[bm][prec], g.sms)
    warp_iters = nblocks * ntiles * bsr_warps(prec, bm)
    used = 1.0 - (1.0 - density) ** R if density > 0 else 0.0  # V rows some kept block needs
    dram = nblocks * (bm * bk * s_op + 4) + pos * (R + 1) * 4 + used * v_bytes + m_bytes
    tiled = nblocks * ntiles * bm * bk * s_op + nblocks * bk * P * s_op + m_bytes
    hm, hn, hk = HMMA_SHAPE[prec]
    bounds = {"HBM": dram / (g.hbm_tbs * 1e12),
              "tensor core": warp_iters * mix.fma * 2 * hm * hn * hk / g.peak(TC_PEAK[prec]) / eff,
              "shared memory": warp_iters * mix.l1_wavefronts / (g.sms * clk) / eff,
              "issue": warp_iters * mix.insns / (g.issue_per_clk * g.sms * clk) / eff}
    return PhaseEstimate("product", f"bsr_tc_batched {bm}x{BSR_TILE_N} {prec}",
                         2.0 * pos * K * C * P * density, dram, tiled, bounds, eff, mix.source,
                         hypothetical=mix.source.startswith("projection"))


def sp24_tile_rows(K: int) -> int:
    """Rows of the 2:4 kernel's tile for a product of K rows (the dispatcher's rule)."""
    return 128 if K >= SP24_WIDE_MIN_ROWS else 64


def sp24_mix(precision: str, C: int, P: int, sass: dict | None = None, tile_rows: int = 64) -> KernelMix:
    """Per warp per pipeline stage (:data:`SP24_STEP` dense k) of the 2:4 kernel with the tile of
    ``tile_rows`` rows (:data:`SP24_TILES`): the SASS mix (given or built in, key ("sp24",
    precision) for 64 rows, ("sp24w", precision) for the wide 128; 16-byte copies of B), else a
    projection from the dense kernel's over the same k (:data:`SP24_MIX_SCALE`).  ``fma`` counts
    sparse MMAs; the shared-memory wavefronts are the mix's loads plus the stage's cp.async stores
    (values, metadata and B over the warps) and the 16-bit B fragments read by ldmatrix (counted
    as "other" by the report: one wavefront per 8 x 16-byte matrix)."""
    if tile_rows not in SP24_TILES:
        raise ValueError(f"tile_rows must be one of {tuple(SP24_TILES)}, got {tile_rows!r}")
    key = ("sp24", precision) if tile_rows == 64 else ("sp24w", precision)
    given = (sass or {}).get(key)
    s = OPERAND_BYTES[precision]
    step = SP24_STEP[precision]
    bm, bn = SP24_TILES[tile_rows]
    stage = (bm * step / 2 * s + bm // 16 * 128 + step * bn * s) / SP24_WARPS / 128
    if given or key in SASS_SM90:
        mix = given or SASS_SM90[key]
        base = mix_from_sass({k: v for k, v in mix.items() if k != "LDGSTS"})
        ldsm = 32 * step * s / 128 if s == 2 else 0.0  # the warp's 32 columns of B by ldmatrix
        return KernelMix(mix.get("HMMA", 0), sum(mix.values()), base.l1_wavefronts + stage + ldsm,
                         "SASS (given)" if given else "SASS sm_90")
    dense = tc_mix(precision, _tc_vec(precision, C, P), sass)
    per_k = step / tc_tile(precision).blk_k  # dense slices per stage
    hm, hn, hk = HMMA_SP_SHAPE[precision]
    mma = (SP24_WARP_M[tile_rows] // hm) * (32 // hn) * (step // hk) * (3 if precision == "tf32x3" else 1)
    return KernelMix(mma, dense.insns * per_k * SP24_MIX_SCALE * tile_rows / 64,
                     dense.l1_wavefronts * per_k * SP24_MIX_SCALE * tile_rows / 64,
                     "projection (dense kernel's mix, half the MMAs)")


def _sp24_product(g: GPU, prec: str, pos: int, K: int, C: int, P: int, s_op: int, v_bytes: float,
                  m_bytes: float, sass: dict | None) -> PhaseEstimate:
    """The 2:4 product on sparse tensor cores (:func:`estimate_product`, product "2:4"): the
    kernel's tile of the layer's K (:func:`sp24_tile_rows`: 64 x 64, or 128 x 64 from K = 128)
    and k stages, every MMA a sparse one: twice the dense MMA's k at the
    dense instruction rate (the datasheets' 2x "with sparsity" figures)."""
    if prec not in SP24_MODES:
        raise ValueError(f"the 2:4 product needs a sparse tensor-core MMA; precision {prec!r} has none "
                         f"(modes: {', '.join(SP24_MODES)})")
    rows = sp24_tile_rows(K)
    bm, bn = SP24_TILES[rows]
    mix = sp24_mix(prec, C, P, sass, rows)
    blocks = pos * math.ceil(K / bm) * math.ceil(P / bn)
    eff = _waves(blocks, SP24_BLOCKS_PER_SM[rows], g.sms)
    warp_iters = blocks * SP24_WARPS * math.ceil(C / SP24_STEP[prec])
    clk = g.clock_ghz * 1e9
    # the kept half of U and its metadata: 4 bits per 2 kept 16-bit values, per 1 kept TF32 value
    u_bytes = pos * K * C / 2 * (s_op + (0.25 if s_op == 2 else 0.5))
    dram = u_bytes + v_bytes + m_bytes
    tiled = pos * (K * C / 2 * math.ceil(P / bn) + C * P * math.ceil(K / bm)) * s_op + m_bytes
    hm, hn, hk = HMMA_SP_SHAPE[prec]
    dense_flops = warp_iters * mix.fma * 2 * hm * hn * hk  # the dense-equivalent work of the mma.sp
    bounds = {"HBM": dram / (g.hbm_tbs * 1e12),
              "tensor core": dense_flops / (2 * g.peak(TC_PEAK[prec])) / eff,
              "shared memory": warp_iters * mix.l1_wavefronts / (g.sms * clk) / eff,
              "issue": warp_iters * mix.insns / (g.issue_per_clk * g.sms * clk) / eff}
    return PhaseEstimate("product", f"sp24_tc_batched {bm}x{bn} {prec}", pos * K * C * P, dram, tiled, bounds,
                         eff, mix.source, hypothetical=mix.source.startswith("projection"))


def estimate_product(pos: int, K: int, C: int, P: int, precision: str, density: float = 1.0,
                     product: str = "dense", gpu_key: str | GPU = "h200", sass: dict | None = None,
                     splits: int = 1, csr_blocks_per_sm: int = SPMM_BLOCKS_PER_SM,
                     block_rows: int = 16) -> PhaseEstimate:
    """The product phase M[b] = U[b] · V[b] for ``pos`` positions (K x C times C x P).

    ``product``: "dense" (tensor cores in the tensor-core modes, else the SIMT GEMM; ``splits``
    > 1 splits its k loop: s partial M written, the extra (s - 1) M charged to HBM), "csr" (the
    CSR kernel at ``density``, SIMT float32 / float64 whatever the mode; ``csr_blocks_per_sm``
    its occupancy), "block" (the block-sparse tensor-core kernel with a fraction ``density`` of
    its ``block_rows`` x 8 blocks kept, ``block_rows`` 16 or 32) or "2:4" (sparse tensor cores;
    the density is 0.5 by construction)."""
    g = gpu(gpu_key)
    prec = mode(precision)
    if product not in PRODUCTS:
        raise ValueError(f"product must be one of {', '.join(PRODUCTS)}, got {product!r}")
    dtype = _dtype_of(prec)
    s = 8 if dtype == "float64" else 4
    s_op = s if product == "csr" else OPERAND_BYTES[prec]
    clk = g.clock_ghz * 1e9
    fma_rate = g.fma_warps_per_clk(dtype) * g.sms * clk * 32
    issue = g.issue_per_clk * g.sms * clk
    l1 = g.sms * clk
    hbm = g.hbm_tbs * 1e12
    v_bytes, m_bytes = pos * C * P * s_op, pos * K * P * s
    flops = 2.0 * pos * K * C * P * density
    if product == "block":
        return _block_product(g, prec, pos, K, C, P, density, s_op, v_bytes, m_bytes, sass, block_rows)
    if product == "2:4":
        return _sp24_product(g, prec, pos, K, C, P, s_op, v_bytes, m_bytes, sass)

    if product == "csr":
        bm, bn = SPMM_TILE[dtype]
        given = (sass or {}).get(("spmm", dtype))
        raw = given or SASS_SM90[("spmm", dtype)]
        mix = mix_from_sass(raw, "SASS (given)" if given else "SASS sm_90")
        # the LDS read the staged value and column of a nonzero, the same address in every lane:
        # a broadcast, one wavefront whatever its width (the V loads, LDG, are the per-lane traffic)
        lds = {k: v for k, v in raw.items() if k.startswith("LDS")}
        mix = KernelMix(mix.fma, mix.insns,
                        mix_from_sass({k: v for k, v in raw.items() if k not in lds}).l1_wavefronts + sum(lds.values()),
                        mix.source)
        nnz = density * pos * K * C
        warp_fmas = nnz * math.ceil(P / bn) * (bn / 32)  # a warp covers BLK_N columns of a row
        blocks = pos * math.ceil(K / bm) * math.ceil(P / bn)
        eff = _waves(blocks, csr_blocks_per_sm, g.sms)
        used = 1.0 - (1.0 - density) ** K if density > 0 else 0.0  # V rows some nonzero needs
        dram = nnz * (s + 4) + pos * (K + 1) * 4 + used * v_bytes + m_bytes
        tiled = nnz * math.ceil(P / bn) * bn * s + m_bytes
        bounds = {"HBM": dram / hbm, "FMA pipe": warp_fmas * 32 / fma_rate / eff,
                  "L1/shared": warp_fmas * mix.l1_wavefronts / mix.fma / l1 / eff,
                  "issue": warp_fmas * mix.insns / mix.fma / issue / eff}
        return PhaseEstimate("product", f"spmm_batched {bm}x{bn} {dtype}", flops, dram, tiled, bounds, eff,
                             mix.source)
    dram = pos * K * C * s_op + v_bytes + splits * m_bytes
    if prec in TC_PEAK:
        tile, vec = tc_tile(prec), _tc_vec(prec, C, P)
        mix = tc_mix(prec, vec, sass)
        bm, bn, bk, per_sm = tile.blk_m, tile.blk_n, tile.blk_k, tile.blocks_per_sm[vec]
        name = f"gemm_tc {tile.name} {prec} VEC {vec}"
    else:
        vec = gemm_vec(dtype, C, P)
        tile = gemm_tile(K, P, dtype, vec)
        mix = gemm_mix(tile, dtype, sass, vec)
        bm, bn, bk = tile.blk_m, tile.blk_n, tile.blk_k
        per_sm = tile.blocks_per_sm.get((dtype, vec), 2)
        name = f"gemm_batched {tile.name} {dtype} VEC {vec}"
    slices = math.ceil(C / bk)
    blocks = pos * math.ceil(K / bm) * math.ceil(P / bn) * splits
    eff = _waves(blocks, per_sm, g.sms)
    warp_iters = blocks * tile.warps * math.ceil(slices / splits)
    tiled = pos * (K * C * math.ceil(P / bn) + C * P * math.ceil(K / bm)) * s_op + splits * m_bytes
    bounds = {"HBM": dram / hbm}
    if prec in TC_PEAK:
        hm, hn, hk = HMMA_SHAPE[prec]
        bounds["tensor core"] = warp_iters * mix.fma * 2 * hm * hn * hk / g.peak(TC_PEAK[prec]) / eff
    else:
        bounds["FMA pipe"] = warp_iters * mix.fma * 32 / fma_rate / eff
    bounds["shared memory"] = warp_iters * mix.l1_wavefronts / l1 / eff
    bounds["issue"] = warp_iters * mix.insns / issue / eff
    hyp = mix.source.startswith("projection")
    return PhaseEstimate("product", name + (f" split-K {splits}" if splits > 1 else ""), flops, dram, tiled,
                         bounds, eff, mix.source, hypothetical=hyp)


def estimate_layer(N: int, C: int, K: int, H: int, W: int | None = None, m: int = 4, r: int = 3,
                   precision: str = "fp32", density: float = 1.0, gpu_key: str | GPU = "h200",
                   sass: dict | None = None, structure: str | None = None) -> LayerEstimate:
    """Estimated time of one 2D stride-1 'same' layer (N, C, K, H x W) with F(m, r).

    ``precision``: a mode of :data:`PRECISIONS` (float32 / float64 accepted for fp32 / fp64):
    fp32 the SIMT GEMM, tf32 / tf32x3 / bf16 / fp16 / fp64 (DMMA) the WMMA kernels' SASS mixes
    (``hypothetical``: a phase whose mix is a projection); transforms run in float32 (fp64:
    float64), and bf16 / fp16 write and read V, U in 16 bits.
    ``density`` < 1: a pruned U, its product by ``structure`` (:func:`estimate_product`):
    None the batched CSR product (SIMT, float32 or float64 whatever the mode), "block" the
    block-sparse tensor-core product at that (block) density.  ``sass``: hot-loop mixes from :func:`load_sass`, else the built-in ones.
    ``projections``: "split_k" (dense products whose grid fills the SMs badly) -- a kernel that
    does not exist, labelled a projection."""
    g = gpu(gpu_key)
    prec = mode(precision)
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density!r}")
    W = H if W is None else W
    dtype = _dtype_of(prec)
    s = 8 if dtype == "float64" else 4  # transforms, M, x, y
    if structure not in (None, "block"):
        raise ValueError(f"structure must be None or 'block', got {structure!r}")
    if structure == "block" and prec not in TC_PEAK:
        raise ValueError(f"structure='block' is a tensor-core product; precision {prec!r} runs the CSR one")
    # U and V of the dense and block products in the mode's operand type; the CSR's in s
    s_op = s if density < 1.0 and structure is None else OPERAND_BYTES[prec]
    alpha = m + r - 1
    pos = alpha * alpha
    P = N * math.ceil(H / m) * math.ceil(W / m)
    clk = g.clock_ghz * 1e9
    fma_rate = g.fma_warps_per_clk(dtype) * g.sms * clk * 32  # lane FMA-pipe ops per second
    issue = g.issue_per_clk * g.sms * clk  # warp instructions per second
    hbm = g.hbm_tbs * 1e12
    est = LayerEstimate(g.key, N, C, K, H, W, m, r, prec, density)
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

    v_bytes, m_bytes = pos * C * P * s_op, pos * K * P * s
    y_bytes = N * K * H * W * s
    est.phases.append(transform("input", C, N * C * H * W * s, v_bytes, im + ia))
    product = "dense" if density >= 1.0 else ("csr" if structure is None else structure)
    est.product = product
    prod = estimate_product(pos, K, C, P, prec, density, product, g, sass)
    est.phases.append(prod)
    est.hypothetical = prod.hypothetical

    est.phases.append(transform("output", K, m_bytes, y_bytes, om + oa))

    if density >= 1.0:
        # split-K: s partial M (written by the product, summed by the output transform as it
        # reads them: (s - 1) M more each way); the best s, if it beats the kernel as it is
        base_in, base_out = est.phase("input").seconds, est.phase("output")
        best = None
        simt_k = gemm_tile(K, P, dtype, gemm_vec(dtype, C, P)).blk_k
        slices = math.ceil(C / (tc_tile(prec).blk_k if prec in TC_PEAK else simt_k))
        for sp in SPLIT_K:
            if slices / sp < SPLIT_K_MIN_SLICES:
                break
            p = estimate_product(pos, K, C, P, prec, 1.0, "dense", g, sass, splits=sp)
            out_b = dict(base_out.bounds, HBM=base_out.bounds["HBM"] + (sp - 1) * m_bytes / hbm)
            total = base_in + p.seconds + max(out_b.values()) + LAUNCH_OVERHEAD_S
            if best is None or total < best[0]:
                best = (total, sp, p, max(out_b.values()) + LAUNCH_OVERHEAD_S)
        if best is not None and best[0] < est.seconds:
            total, sp, p, out_s = best
            est.projections["split_k"] = {
                "splits": sp, "ms": total * 1e3, "product_ms": p.seconds * 1e3, "product_binding": p.binding,
                "output_ms": out_s * 1e3, "wave_efficiency": p.wave_efficiency,
                "gain_ms": (est.seconds - total) * 1e3, "label": PROJECTION}
    return est


def estimate_cudnn(N: int, C: int, K: int, H: int, W: int | None = None, r: int = 3,
                   precision: str = "fp32", gpu_key: str | GPU = "h200",
                   efficiency: float = CUDNN_EFFICIENCY) -> dict[str, Any]:
    """Estimated cuDNN (implicit GEMM) time for the comparator of a mode (:data:`CUDNN_PATH`; a
    math path such as "fp32" or "tf32" names itself): the direct convolution's FLOPs at
    ``efficiency`` of that path's dense peak, or the compulsory bytes of x, w, y (16-bit paths:
    2 bytes each) over HBM, whichever is larger, plus one launch."""
    g = gpu(gpu_key)
    W = H if W is None else W
    path = CUDNN_PATH[mode(precision)]
    s = {"fp64": 8, "bf16": 2, "fp16": 2}.get(path, 4)
    flops = 2.0 * N * K * C * H * W * r * r
    dram = (N * C * H * W + K * C * r * r + N * K * H * W) * s
    bounds = {"HBM": dram / (g.hbm_tbs * 1e12), "math": flops / (efficiency * g.peak(path))}
    t = max(bounds.values()) + LAUNCH_OVERHEAD_S
    return {"precision": mode(precision), "path": path, "efficiency": efficiency, "flops": flops,
            "dram_bytes": dram, "bounds": bounds, "binding": max(bounds, key=bounds.get), "ms": t * 1e3,
            "label": LABEL}


# --------------------------------------------------------------------------- fused layer


@dataclass(frozen=True)
class FusedTile:
    """A kernels/winograd_fused.cuh ``FusedConfig`` (the one ``FusedConfigFor<m, math>`` names):
    a block owns ``bk`` output channels x ``bp`` tiles for all alpha² positions and loops over
    the input channels in chunks of ``bc`` (2 shared-memory stages); ``inst``: the MMA shape
    (its rows are the epilogue slab's); ``pad_a`` / ``pad_b``: the U / V slice paddings."""

    name: str
    m: int
    bk: int
    bp: int
    bc: int
    warps: int
    element_bytes: int
    inst: tuple[int, int, int]
    pad_a: int
    pad_b: int
    prefetch: bool

    @property
    def positions(self) -> int:
        return (self.m + 2) ** 2

    @property
    def threads(self) -> int:
        return 32 * self.warps

    @property
    def slab_rows(self) -> int:
        return self.inst[0]

    def shared_bytes(self) -> int:
        """``FusedConfig::shared_bytes()``: two stages of alpha² (U [bk][bc + pad_a], V [bc][bp +
        pad_b]) slices, or the epilogue's M slab (alpha² x slab rows x (bp + 4) accumulators) if
        larger, + 32 bytes of alignment."""
        acc = 8 if self.element_bytes == 8 else 4
        stages = self.element_bytes * 2 * self.positions * (self.bk * (self.bc + self.pad_a) + self.bc * (self.bp + self.pad_b))
        return max(stages, acc * self.positions * self.slab_rows * (self.bp + 4)) + 32

    @property
    def accumulator_registers(self) -> float:
        """32-bit registers per thread the alpha² accumulator tiles take (what bounds bk x bp)."""
        return self.positions * self.bk * self.bp / self.threads * (2 if self.element_bytes == 8 else 1)


_FT_F2 = FusedTile("Fused_F2_K64xP32xC8_w8", 2, 64, 32, 8, 8, 4, (16, 16, 8), 4, 8, True)
_FT_F2_X3 = FusedTile("Fused_F2_K64xP32xC8_w8_noprefetch", 2, 64, 32, 8, 8, 4, (16, 16, 8), 4, 8, False)
_FT_F4 = FusedTile("Fused_F4_K32xP16xC8_w12", 4, 32, 16, 8, 12, 4, (16, 16, 8), 4, 8, False)
_FT_F4_X3 = FusedTile("Fused_F4_K16xP16xC8_w12", 4, 16, 16, 8, 12, 4, (16, 16, 8), 4, 8, False)
_FT16_F2 = FusedTile("Fused16_F2_K64xP32xC16_w8", 2, 64, 32, 16, 8, 2, (16, 16, 16), 8, 8, True)
_FT16_F4 = FusedTile("Fused16_F4_K32xP16xC16_w8", 4, 32, 16, 16, 8, 2, (16, 16, 16), 8, 8, True)
_FT64_F2 = FusedTile("Fused64_F2_K16xP32xC4_w8", 2, 16, 32, 4, 8, 8, (8, 8, 4), 4, 4, True)
_FT64_F4 = FusedTile("Fused64_F4_K8xP8xC4_w4", 4, 8, 8, 4, 4, 8, (8, 8, 4), 4, 4, False)

#: ``FusedConfigFor<m, math>`` of kernels/winograd_fused.cuh, by (m, precision mode)
#: (tests/test_perfmodel.py reads the header and checks this table against it).
FUSED_TILES: dict[tuple[int, str], FusedTile] = {
    (2, "fp32"): _FT_F2, (2, "tf32"): _FT_F2, (2, "tf32x3"): _FT_F2_X3, (2, "bf16"): _FT16_F2,
    (2, "fp16"): _FT16_F2, (2, "fp64"): _FT64_F2,
    (4, "fp32"): _FT_F4, (4, "tf32"): _FT_F4, (4, "tf32x3"): _FT_F4_X3, (4, "bf16"): _FT16_F4,
    (4, "fp16"): _FT16_F4, (4, "fp64"): _FT64_F4,
}

#: The fused kernels' SASS (tools/kernel_report.py, nvcc 13.0, sm_90; kernels/winograd_fused.cuh
#: of commit 66830de: one grid dimension, U and window offsets formed only inside the arrays, the
#: F(2,3) tiles 64 x 32; the fp32 rows with the whole-position SIMT warps of ``FusedSimtLane``:
#: 16-byte loads, 64 / 48 LDS.128 per warp per chunk where 518 / 294 LDS.32 were), per warp,
#: key (m, mode):
#: * "loop": the channel-chunk loop's static counts (all the warp's units' MMAs or FFMA, the
#:   window loads (LDG), their input transform (FADD/FMUL/FFMA) and V stores (STS), the U
#:   staging loops once each);
#: * "inner": one trip of each U staging loop in code order (the 16-byte cp.async path first,
#:   the element path last);
#: * "epilogue": one trip of the output-transform loop (one (k, tile) pair per thread).
SASS_FUSED_SM90: dict[tuple[int, str], dict[str, Any]] = {
    (2, 'fp32'): {'loop': {'FFMA': 1024, 'FADD': 64, 'LDS.32': 6, 'LDS.128': 64, 'LDG.32': 16, 'LDGSTS': 4, 'STS.32': 32, 'BAR': 1, 'other': 328}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDS.32': 3, 'LDGSTS': 2, 'other': 28}], 'epilogue': {'FADD': 44, 'LDS.32': 16, 'LDG.32': 1, 'other': 260}},
    (2, 'tf32x3'): {'loop': {'HMMA': 192, 'FADD': 152, 'LDS.32': 6, 'LDG.32': 16, 'LDGSTS': 4, 'STS.32': 32, 'BAR': 1, 'other': 1092}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDS.32': 3, 'LDGSTS': 2, 'other': 29}], 'epilogue': {'FADD': 44, 'LDS.32': 16, 'LDG.32': 1, 'other': 260}},
    (2, 'tf32'): {'loop': {'HMMA': 64, 'FADD': 56, 'LDS.32': 6, 'LDG.32': 16, 'LDGSTS': 4, 'STS.32': 32, 'BAR': 1, 'other': 721}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDS.32': 3, 'LDGSTS': 2, 'other': 28}], 'epilogue': {'FADD': 44, 'LDS.32': 16, 'LDG.32': 1, 'other': 260}},
    (2, 'bf16'): {'loop': {'HMMA': 32, 'FADD': 108, 'LDS.32': 3, 'LDG.32': 33, 'LDGSTS': 2, 'STS.32': 65, 'BAR': 1, 'other': 924}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDG.32': 1, 'STS.32': 1, 'other': 26}], 'epilogue': {'FADD': 44, 'LDS.32': 16, 'LDG.32': 1, 'other': 269}},
    (2, 'fp16'): {'loop': {'HMMA': 32, 'FADD': 128, 'LDS.32': 3, 'LDG.32': 33, 'LDGSTS': 2, 'STS.32': 65, 'BAR': 1, 'other': 714}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDG.32': 1, 'STS.32': 1, 'other': 26}], 'epilogue': {'FADD': 44, 'LDS.32': 16, 'LDG.32': 1, 'other': 270}},
    (2, 'fp64'): {'loop': {'DMMA': 16, 'FADD': 64, 'LDS.32': 6, 'LDG.64': 16, 'LDGSTS': 4, 'STS.64': 32, 'BAR': 1, 'other': 497}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDS.32': 3, 'LDGSTS': 2, 'other': 28}], 'epilogue': {'FADD': 44, 'LDS.64': 16, 'LDG.64': 1, 'other': 266}},
    (4, 'fp32'): {'loop': {'FFMA': 469, 'FADD': 221, 'FMUL': 34, 'LDS.32': 6, 'LDS.128': 48, 'LDG.32': 36, 'LDGSTS': 4, 'STS.32': 72, 'BAR': 1, 'other': 543}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDS.32': 3, 'LDGSTS': 2, 'other': 28}], 'epilogue': {'FFMA': 50, 'FADD': 154, 'LDS.32': 36, 'LDG.32': 1, 'other': 592}},
    (4, 'tf32x3'): {'loop': {'FFMA': 85, 'HMMA': 36, 'FADD': 245, 'FMUL': 34, 'LDS.32': 6, 'LDG.32': 36, 'LDGSTS': 4, 'STS.32': 72, 'BAR': 1, 'other': 771}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDS.32': 3, 'LDGSTS': 2, 'other': 28}], 'epilogue': {'FFMA': 50, 'FADD': 154, 'LDS.32': 36, 'LDG.32': 1, 'other': 598}},
    (4, 'tf32'): {'loop': {'FFMA': 85, 'HMMA': 24, 'FADD': 221, 'FMUL': 34, 'LDS.32': 6, 'LDG.32': 36, 'LDGSTS': 4, 'STS.32': 72, 'BAR': 1, 'other': 795}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDS.32': 3, 'LDGSTS': 2, 'other': 28}], 'epilogue': {'FFMA': 50, 'FADD': 154, 'LDS.32': 36, 'LDG.32': 1, 'other': 596}},
    (4, 'bf16'): {'loop': {'FFMA': 85, 'HMMA': 18, 'FADD': 221, 'FMUL': 34, 'LDS.32': 3, 'LDG.32': 37, 'LDGSTS': 2, 'STS.32': 73, 'BAR': 1, 'other': 889}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDG.32': 1, 'STS.32': 1, 'other': 26}], 'epilogue': {'FFMA': 50, 'FADD': 154, 'LDS.32': 36, 'LDG.32': 1, 'other': 600}},
    (4, 'fp16'): {'loop': {'FFMA': 85, 'HMMA': 18, 'FADD': 221, 'FMUL': 34, 'LDS.32': 3, 'LDG.32': 37, 'LDGSTS': 2, 'STS.32': 73, 'BAR': 1, 'other': 736}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 11}, {'LDG.32': 1, 'STS.32': 1, 'other': 26}], 'epilogue': {'FFMA': 50, 'FADD': 154, 'LDS.32': 36, 'LDG.32': 1, 'other': 600}},
    (4, 'fp64'): {'loop': {'DFMA': 85, 'DMMA': 9, 'FADD': 221, 'FMUL': 34, 'LDS.32': 6, 'LDG.64': 36, 'LDGSTS': 4, 'STS.64': 72, 'BAR': 1, 'other': 895}, 'inner': [{'LDS.32': 3, 'LDGSTS': 2, 'other': 10}, {'LDS.32': 3, 'LDGSTS': 2, 'other': 28}], 'epilogue': {'DFMA': 50, 'FADD': 154, 'LDS.64': 36, 'LDG.64': 1, 'other': 625}},
}


def fused_tile(m: int, precision: str) -> FusedTile:
    """The fused configuration of F(m, 3) in a mode; ValueError for an F(m, r) without one."""
    prec = mode(precision)
    try:
        return FUSED_TILES[(m, prec)]
    except KeyError:
        raise ValueError(f"no fused kernel for F({m}, 3): fused kernels are F(2, 3) and F(4, 3)") from None


def _fused_sass(m: int, prec: str, sass: dict | None) -> tuple[dict[str, dict[str, int]] | None, str]:
    given = (sass or {}).get(("fused", m, prec))
    if given:
        return given, "SASS (given)"
    if (m, prec) in SASS_FUSED_SM90:
        return SASS_FUSED_SM90[(m, prec)], "SASS sm_90"
    return None, "projection (no SASS of this fused kernel)"


#: Fraction of the L2 the model takes as able to keep x resident between the K-blocks' sweeps
#: (an assumption: the H100/H200 L2 is two partitions, and U slices and y share it).
L2_RESIDENT_FRACTION = 0.5


#: Wavefronts of one 16-byte shared load of the fp32 fused kernel's products (``LDS.128`` in its
#: chunk loop; :func:`mix_from_sass` counts 4, one per 128 bytes returned).  Its lanes are laid
#: out (``FusedSimtLane`` in kernels/winograd_fused.cuh) so that lanes n and n ^ 1 read the same
#: U address and lanes n and n ^ 2 the same V address; NVIDIA describes the shared-memory return
#: path as 128 bytes per clock with such pairs packed, "requests/instruction ... from 4 to 2"
#: (forums.developer.nvidia.com/t/unexpected-shared-memory-bank-conflict/77228, stated for
#: CC 7.x).  An ASSUMPTION for sm_80 / sm_90, to be checked by ``tools/device_check.sh``.
FUSED_SIMT_LDS128_WAVEFRONTS = 2


def _mix_minus(a: dict[str, int], b: dict[str, int], times: float = 1.0) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) - times * v
    return out


def estimate_fused(N: int, C: int, K: int, H: int, W: int | None = None, m: int = 4, r: int = 3,
                   precision: str = "tf32", gpu_key: str | GPU = "h200", sass: dict | None = None,
                   tile: FusedTile | None = None) -> LayerEstimate:
    """Estimated time of one 2D stride-1 'same' layer run by the fused kernel
    (kernels/winograd_fused.cuh: input transform in the prologue of the channel loop, output
    transform in the epilogue; V and M stay on chip).  One phase, "fused", with the bounds:

    * HBM: the grid order streams the larger of x and U once (``fused_k_fastest`` in the
      header).  K-blocks fastest (x >= U): x once (a tile block's K-blocks read its windows at
      about the same time; once per pass of the SMs over the K-blocks), U once if it fits in
      :data:`L2_RESIDENT_FRACTION` of the L2, else once per wave.  Tile blocks fastest: U once
      (a K-block's slice stays in L2 while its tile blocks use it), x once if it fits in the L2
      share, else once per sweep of the K-blocks; y once;
    * L2: the bytes the SMs fetch: x once per K-block (ceil(K / BK) times) with the windows'
      vertical halo (alpha / m; the horizontal overlap is served by L1), U once per tile block
      (ceil(P / BP) times), y once -- over :attr:`GPU.l2_bw` (an assumed figure);
    * tensor core (FMA pipe for fp32 SIMT, with the transforms' lane operations): the padded
      grid's alpha² products (tf32x3: three);
    * FP32 pipe (FP64 for fp64): the input transform per (c, tile) pair per K-block -- it is
      recomputed ceil(K / BK) times -- and the output transform per (k, tile);
    * shared memory: the chunk loop's LDS/STS wavefronts (window LDG: m lines each, the
      windows of neighbouring tiles being m elements apart; fp32: the products' 16-byte loads
      at :data:`FUSED_SIMT_LDS128_WAVEFRONTS`, their lanes reading in address-sharing pairs),
      the U stage's cp.async bytes and the WMMA fragment loads (generic LD, from the tile shape);
    * issue: the chunk loop's warp instructions from the SASS (:data:`SASS_FUSED_SM90`; the U
      staging loop counted per trip), times warps and chunks, plus the epilogue loop's per
      (k, tile) pair;

    on-chip bounds over the wave efficiency of one block per SM (``launch_bounds(kThreads, 1)``;
    waves = ceil(blocks / SMs)), the largest + one launch.  ``tile``: another configuration
    (a projection when its SASS is not in the table)."""
    g = gpu(gpu_key)
    prec = mode(precision)
    if r != 3 or m not in (2, 4):
        raise ValueError(f"no fused kernel for F({m}, {r}): fused kernels are F(2, 3) and F(4, 3)")
    for name, v in (("N", N), ("C", C), ("K", K), ("H", H)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    W = H if W is None else W
    t = tile or fused_tile(m, prec)
    own = tile is None or tile == FUSED_TILES.get((m, prec))
    dtype = _dtype_of(prec)
    s = 8 if dtype == "float64" else 4
    s_op = OPERAND_BYTES[prec]
    alpha, pos = m + 2, (m + 2) ** 2
    P = N * math.ceil(H / m) * math.ceil(W / m)
    kb, pb, chunks = math.ceil(K / t.bk), math.ceil(P / t.bp), math.ceil(C / t.bc)
    blocks = kb * pb
    eff = _waves(blocks, 1, g.sms)
    clk = g.clock_ghz * 1e9
    x_bytes, y_bytes, u_bytes = N * C * H * W * s, N * K * H * W * s, pos * K * C * s_op
    # DRAM: the launcher orders the grid so that the larger of x and U is shared by the blocks
    # running at once (fused_k_fastest).  K-blocks fastest: a tile block's windows are read by
    # its K-blocks at about the same time -- x once per pass of the SMs over the K-blocks; U once
    # if it stays in L2, else once per wave.  Tile blocks fastest: a K-block's U slice stays in L2
    # while its tile blocks use it -- U once; x once if it stays in L2, else once per sweep of
    # the K-blocks (K-blocks resident at once share one sweep).
    resident = L2_RESIDENT_FRACTION * g.l2_mib * 2**20
    k_fastest = x_bytes >= u_bytes
    if k_fastest:
        x_reads_dram = 1 if x_bytes <= resident else math.ceil(kb / g.sms)
        u_reads_dram = 1 if u_bytes <= resident else math.ceil(blocks / g.sms)
    else:
        x_reads_dram = 1 if x_bytes <= resident else math.ceil(kb / max(1, g.sms // pb))
        u_reads_dram = 1 if pos * t.bk * C * s_op <= resident else pb
    dram = x_reads_dram * x_bytes + u_reads_dram * u_bytes + y_bytes
    halo = alpha / m
    x_l2, u_l2 = kb * x_bytes * halo, pb * u_bytes
    l2 = x_l2 + u_l2 + y_bytes
    im, ia, om, oa = _transform_ops(m, 3)
    in_ops = blocks * chunks * t.bc * t.bp * (im + ia)  # zero windows off the edges included
    out_ops = K * P * (om + oa)
    fma_rate = g.fma_warps_per_clk(dtype) * g.sms * clk * 32
    macs = blocks * chunks * pos * t.bk * t.bp * t.bc  # padded grid
    flops = 2.0 * pos * K * C * P + in_ops + out_ops  # useful products + transforms
    bounds = {"HBM": dram / g.hbm_tbs / 1e12, "L2": l2 / g.l2_bw / eff}
    if prec in TC_PEAK:
        bounds["tensor core"] = 2.0 * macs * (3 if prec == "tf32x3" else 1) / g.peak(TC_PEAK[prec]) / eff
        bounds["FP32 pipe" if dtype == "float32" else "FP64 pipe"] = (in_ops + out_ops) / fma_rate / eff
    else:
        bounds["FMA pipe"] = (macs + in_ops + out_ops) / fma_rate / eff
    sass_mix, src = _fused_sass(m, prec, sass) if own else (None, "projection (another tile)")
    vec16 = (C * s_op) % 16 == 0
    per = 16 // s_op
    stage_trips = math.ceil((pos * t.bk * t.bc // per if vec16 else pos * t.bk * t.bc) / t.threads)
    units = pos * (t.bk // t.slab_rows)
    frag_waves = 0.0 if prec == "fp32" else units * (t.slab_rows * t.bc + t.bc * t.bp) * s_op / 128
    stage_waves = pos * t.bk * t.bc * s_op / 128
    epi_iters = (t.bk // t.slab_rows) * math.ceil(t.slab_rows * t.bp / 32)  # warp-trips per block
    if sass_mix:
        loop = dict(sass_mix["loop"])
        inner = sass_mix.get("inner") or []
        for mix_i in inner:  # the U staging paths, each held once in the static count
            loop = _mix_minus(loop, mix_i)
        # the 16-byte path is the first in the code, the element path the last
        path = (inner[0] if vec16 else inner[-1]) if inner else {}
        loop = _mix_minus(loop, path, -stage_trips)
        # the V stores and their transform run in the warps that own a window (the first
        # ceil(BC x BP / 32)); the rest skip them: the static count less the skipped share
        active = min(1.0, math.ceil(t.bc * t.bp / 32) / t.warps)
        simt_products = units / t.warps * t.slab_rows * t.bp * t.bc / 32 if prec == "fp32" else 0.0
        core = {c: loop.get(c, 0) for c in ("FADD", "FMUL", "DFMA", "STS.32", "STS.64", "STS.128")}
        core["FFMA"] = loop.get("FFMA", 0) - simt_products
        loop = _mix_minus(loop, core, 1.0 - active)
        ldg = sum(loop.get(f"LDG.{w}", 0) for w in ("32", "64", "128"))
        loop = _mix_minus(loop, {f"LDG.{w}": loop.get(f"LDG.{w}", 0) for w in ("32", "64", "128")}, 1.0 - active)
        chunk = mix_from_sass({k: v for k, v in loop.items() if k != "LDGSTS"})
        # strided window loads (tiles m elements apart across the warp): m lines each
        chunk_waves = chunk.l1_wavefronts + active * ldg * (m - 1)
        if prec == "fp32":  # the products' paired 16-byte loads (FUSED_SIMT_LDS128_WAVEFRONTS)
            chunk_waves -= loop.get("LDS.128", 0) * (_WAVES["128"] - FUSED_SIMT_LDS128_WAVEFRONTS)
        transform_insns = active * sum(core.values()) + ldg * active  # per warp per chunk, for the details
        epi = mix_from_sass(sass_mix["epilogue"])
        block_insns = chunks * t.warps * sum(loop.values()) + epi_iters * epi.insns  # LDGSTS issue too
        split = {"chunk loops": chunks * t.warps * sum(loop.values()), "epilogue": epi_iters * epi.insns,
                 "U staging": chunks * t.warps * stage_trips * sum(path.values())}
        block_waves = chunks * (t.warps * chunk_waves + stage_waves + frag_waves) + epi_iters * epi.l1_wavefronts
        hyp = False
    else:  # a projection: the instructions of the MMAs and transforms, 1/2 as many again for the rest
        mma = HMMA_SHAPE.get(prec, (1, 1, 1))
        per_mma = (t.slab_rows * t.bp * t.bc) / (mma[0] * mma[1] * mma[2]) * (3 if prec == "tf32x3" else 1)
        mma_insns = units * per_mma if prec in TC_PEAK else units * t.slab_rows * t.bp * t.bc / 32
        tr = (t.bc * t.bp * (im + ia)) / 32
        block_insns = chunks * 1.5 * (mma_insns + tr + stage_trips * t.warps * 40) + epi_iters * 1.5 * (om + oa)
        block_waves = chunks * (stage_waves + frag_waves + t.bc * t.bp * pos * s_op / 128 * 2) + epi_iters * pos / 4
        hyp = True
        transform_insns = tr
        split = {}
    bounds["shared memory"] = blocks * block_waves / (g.sms * clk) / eff
    bounds["issue"] = blocks * block_insns / (g.issue_per_clk * g.sms * clk) / eff
    phase = PhaseEstimate("fused", f"winograd_fused_2d {t.name} {prec}", flops, dram, l2, bounds, eff, src,
                          hypothetical=hyp)
    est = LayerEstimate(g.key, N, C, K, H, W, m, 3, prec, 1.0, [phase], hypothetical=hyp, algorithm="fused")
    est.details = {
        "config": t.name, "blocks": blocks, "waves": math.ceil(blocks / g.sms), "wave_efficiency": eff,
        "threads": t.threads, "shared_bytes": t.shared_bytes(), "chunks": chunks,
        "x_reads_l2": kb, "x_reads_dram": x_reads_dram, "u_reads_l2": pb, "u_reads_dram": u_reads_dram,
        "x_fits_l2": x_bytes <= resident, "halo": halo, "k_fastest": k_fastest,
        "dram": {"x": x_reads_dram * x_bytes, "U": u_reads_dram * u_bytes, "y": y_bytes},
        "l2": {"x": x_l2, "U": u_l2, "y": y_bytes},
        "input_transform_ops": in_ops, "output_transform_ops": out_ops, "macs_padded": macs,
        "block_instructions": block_insns, "transform_instructions_per_warp_chunk": transform_insns,
        "block_instructions_split": split,
        "label": LABEL}
    return est


def fused_alternatives(N: int, C: int, K: int, H: int, W: int | None = None, m: int = 4,
                       precision: str = "tf32", gpu_key: str | GPU = "h200") -> list[dict[str, Any]]:
    """The fused kernel as written against tile choices that do not exist (PROJECTIONS): what
    each moves for one layer.  Rows {"variant", "ms", "binding", "bounds_ms", "dram_bytes",
    "l2_bytes", "label"}:

    * ``implemented``: :func:`estimate_fused` (BK x BP x all alpha² positions per block);
    * ``split positions``: a cluster of alpha blocks per (64 channels x 64 tiles), each one row
      of the alpha x alpha positions (6 x 64 x 64 accumulators on 256 threads: 96 registers),
      M exchanged through distributed shared memory for the epilogue; each block loads the whole
      windows and computes its row of BᵀdB (1/alpha of the transform's arithmetic);
    * ``split positions, partial y``: the same blocks without a cluster, each adding its
      partial y = Aᵀ M_row A into y by atomics in L2 (y's L2 traffic x alpha, one reduction
      instruction per element and partial; DRAM y once: the partials of a tile block run at
      the same time);
    * ``prologue only``: per-position products on the three-phase tensor-core tile (64 x 64),
      V[ξ] computed in the prologue from x (one position of a window per (c, tile, K-block)),
      M through DRAM and the three-phase output transform kernel.

    Projected instruction counts: the products at the per-MMA (per-FFMA) instruction rate of the
    three-phase GEMM's SASS, a window's load and transform at the three-phase input-transform
    kernel's instructions per (c, tile) (1/3 loads and addressing, 2/3 arithmetic scaled by the
    share of BᵀdB computed), the epilogue at the fused kernel's per (k, tile) pair."""
    g = gpu(gpu_key)
    prec = mode(precision)
    W = H if W is None else W
    impl = estimate_fused(N, C, K, H, W, m, 3, prec, g)
    ph = impl.phases[0]
    rows = [{"variant": "implemented", "config": impl.details["config"], "ms": impl.ms, "binding": ph.binding,
             "bounds_ms": {k: v * 1e3 for k, v in ph.bounds.items()}, "dram_bytes": impl.dram_bytes,
             "l2_bytes": ph.tiled_bytes, "label": LABEL}]
    dtype = _dtype_of(prec)
    s, s_op = (8 if dtype == "float64" else 4), OPERAND_BYTES[prec]
    alpha, pos = m + 2, (m + 2) ** 2
    P = N * math.ceil(H / m) * math.ceil(W / m)
    clk = g.clock_ghz * 1e9
    issue = g.issue_per_clk * g.sms * clk
    fma_rate = g.fma_warps_per_clk(dtype) * g.sms * clk * 32
    x_bytes, y_bytes, u_bytes = N * C * H * W * s, N * K * H * W * s, pos * K * C * s_op
    m_bytes = pos * K * P * 4 * (2 if dtype == "float64" else 1)
    im, ia, om, oa = _transform_ops(m, 3)
    t_in = TRANSFORM_INSNS_SM90.get(("input", dtype, m), 3 * (im + ia) + 2 * pos)
    epi = SASS_FUSED_SM90.get((m, prec), {}).get("epilogue")
    epi_insns = sum(epi.values()) if epi else 3 * (om + oa)
    if prec in TC_PEAK:
        mix = tc_mix(prec, _tc_vec(prec, C, P))
        hm, hn, hk = HMMA_SHAPE[prec]
        insns_per_mac = mix.insns / (mix.fma / (3 if prec == "tf32x3" else 1)) / (hm * hn * hk)  # per useful MAC
    else:
        gm = gemm_mix(GEMM_TILES[1], dtype, None, 4 if dtype == "float32" else 2)
        insns_per_mac = gm.insns / gm.fma / 32

    def project(name: str, config: str, bk: int, bp: int, groups: int, share: float, per_sm: int,
                fused_out: bool, y_partials: int = 1) -> dict[str, Any]:
        kb_, pb_ = math.ceil(K / bk), math.ceil(P / bp)
        blocks = kb_ * pb_ * groups
        eff = _waves(blocks, per_sm, g.sms)
        macs = kb_ * bk * pb_ * bp * pos * C  # channels unpadded: an upper-level estimate
        pairs = kb_ * groups * C * pb_ * bp  # window loads + (partial) transforms
        win_insns = t_in * (1 / 3 + 2 / 3 * share)
        insns = macs * insns_per_mac + pairs * win_insns / 32
        out_ops = K * P * (om + oa)
        if fused_out:
            insns += K * P * epi_insns / 32
            # partial ys reduced by atomics in L2 (one RED per output element and partial)
            insns += (y_partials - 1) * y_bytes / s / 32
        x_l2 = kb_ * groups * x_bytes * alpha / m
        l2 = x_l2 + pb_ * u_bytes + (y_partials * y_bytes if fused_out else m_bytes)
        dram = x_bytes * (1 if x_bytes <= L2_RESIDENT_FRACTION * g.l2_mib * 2**20 else kb_) + u_bytes + (
            y_bytes if fused_out else m_bytes)
        bounds = {"HBM": dram / g.hbm_tbs / 1e12, "L2": l2 / g.l2_bw / eff, "issue": insns / issue / eff}
        in_ops = pairs * (im + ia) * share
        if prec in TC_PEAK:
            bounds["tensor core"] = 2.0 * macs * (3 if prec == "tf32x3" else 1) / g.peak(TC_PEAK[prec]) / eff
            bounds["FP32 pipe"] = (in_ops + (out_ops if fused_out else 0)) / fma_rate / eff
        else:
            bounds["FMA pipe"] = (macs + in_ops + (out_ops if fused_out else 0)) / fma_rate / eff
        sec = max(bounds.values()) + LAUNCH_OVERHEAD_S
        if not fused_out:  # M through DRAM: the three-phase output transform after it
            out = estimate_layer(N, C, K, H, W, m, 3, prec, 1.0, g).phase("output")
            sec += out.seconds
            dram += out.dram_bytes
        return {"variant": name, "config": config, "ms": sec * 1e3, "binding": max(bounds, key=bounds.get),
                "bounds_ms": {k: v * 1e3 for k, v in bounds.items()}, "dram_bytes": dram, "l2_bytes": l2,
                "label": PROJECTION}

    rows.append(project("split positions", f"cluster of {alpha}: 64 x 64 x {alpha} positions per block", 64, 64,
                        alpha, 1 / alpha, 1, True))
    rows.append(project("split positions, partial y", f"{alpha} blocks per 64 x 64: a row of {alpha} positions each, "
                        "partial y reduced by atomics", 64, 64, alpha, 1 / alpha, 1, True, y_partials=alpha))
    rows.append(project("prologue only", "per position 64 x 64 (gemm_tc tile), V[ξ] in the prologue", 64, 64, pos,
                        (alpha + 1) / (2 * alpha * alpha), 2, False))
    return rows


@lru_cache(maxsize=4096)
def choose_algorithm(N: int, C: int, K: int, H: int, W: int | None = None, m: int = 4, r: int = 3,
                     precision: str = "tf32", gpu_key: str | GPU = "h200") -> str:
    """"fused" when the fused kernel exists for F(m, r) (m in (2, 4), r = 3) and its estimate
    (:func:`estimate_fused`) beats the dense three-phase one (:func:`estimate_layer`), else
    "three-phase".  Cached per shape (plans call it per layer); an ESTIMATE-based choice."""
    if r != 3 or m not in (2, 4):
        return "three-phase"
    fused = estimate_fused(N, C, K, H, W, m, r, precision, gpu_key)
    three = estimate_layer(N, C, K, H, W, m, r, precision, 1.0, gpu_key)
    return "fused" if fused.seconds < three.seconds else "three-phase"


#: The tiles P at which :func:`choose_product` compares the products: enough to fill an H200
#: with every kernel's grid (e.g. batch 32 of 14 x 14 outputs with F(2, 3): 32 x 49 = 1568
#: tiles fill it; 4096 is well past that), so the choice is the throughput one, the same for every
#: batch.  At small P every product is launch-bound and the choice matters little.
CHOICE_TILES = 4096


def choose_product(K: int, C: int, m: int | tuple[int, ...] = 4, r: int | tuple[int, ...] = 3, precision: str = "tf32", density: float = 1.0,
                   structured: str = "csr", ndim: int = 2, gpu_key: str | GPU = "h200",
                   tiles: int = CHOICE_TILES, groups: int = 1, block_rows: int = 16) -> str:
    """``structured`` ("csr", "block" or "2:4") when :func:`estimate_product` estimates it faster than
    the dense product of the same precision for a K x C layer of F(m, r) (or a rectangular tile:
    ``m``, ``r`` tuples, one entry per axis) in ``ndim`` D at
    ``density`` (for "block": the fraction of kept ``block_rows`` x 8 blocks) and ``tiles`` tiles, else
    "dense".  ``groups``: a grouped layer (K, C its whole channel counts), whose products are
    the positions x groups block-diagonal (K/groups) x (C/groups) ones.  An ESTIMATE-based
    choice, as :func:`choose_algorithm` is."""
    prec = mode(precision)
    if structured not in ("csr", "block", "2:4"):
        raise ValueError(f"structured must be 'csr', 'block' or '2:4', got {structured!r}")
    if density >= 1.0:
        return "dense"
    if isinstance(m, tuple) or isinstance(r, tuple):  # a rectangular tile: m, r per axis
        ms = m if isinstance(m, tuple) else (m,) * len(r)  # type: ignore[arg-type]
        rs = r if isinstance(r, tuple) else (r,) * len(ms)
        pos = math.prod(a + b - 1 for a, b in zip(ms, rs))
    else:
        pos = (m + r - 1) ** ndim
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or K % groups or C % groups:
        raise ValueError(f"groups must be an int >= 1 dividing K = {K} and C = {C}, got {groups!r}")
    pos, K, C = pos * groups, K // groups, C // groups
    dense = estimate_product(pos, K, C, tiles, prec, 1.0, "dense", gpu_key)
    sparse = estimate_product(pos, K, C, tiles, prec, density, structured, gpu_key, block_rows=block_rows)
    return structured if sparse.seconds < dense.seconds else "dense"


def crossover_density(K: int, C: int, m: int = 4, r: int = 3, precision: str = "tf32",
                      structured: str = "csr", ndim: int = 2, gpu_key: str | GPU = "h200",
                      tiles: int = CHOICE_TILES, block_rows: int = 16) -> float:
    """The density below which :func:`choose_product` picks ``structured`` over the dense
    product (0.0: never; bisection to 1e-3 -- the estimated sparse time grows with the density).
    ``block_rows``: the block height of "block" (16 or 32).
    ``magma-wino bench`` prints it beside the measured crossover.  Not for "2:4", whose density
    is fixed (0.5) by its pattern: a ValueError."""
    if structured == "2:4":
        raise ValueError("crossover_density: the 2:4 product has the fixed density 0.5; compare it with "
                         "choose_product(..., 0.5, '2:4')")

    def sparse_wins(d: float) -> bool:
        return choose_product(K, C, m, r, precision, d, structured, ndim, gpu_key, tiles,
                              block_rows=block_rows) == structured

    if not sparse_wins(1e-6):
        return 0.0
    lo, hi = 1e-6, 1.0
    while hi - lo > 1e-3:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sparse_wins(mid) else (lo, mid)
    return round(lo, 3)


def estimate_data_gradient(N: int, C: int, K: int, H: int, W: int | None = None, m: int = 4, r: int = 3,
                           precision: str = "tf32", gpu_key: str | GPU = "h200") -> dict[str, float]:
    """ESTIMATED ms of dx for a 2D stride-1 'same' layer (N, C -> K, H x W) by the two ways
    ``plan.backward`` can compute it (docs/backward.md):

    * "forward kernels": the forward layer K -> C on dy with flip(w)ᵀ, fused or three-phase as
      :func:`choose_algorithm` picks;
    * "adjoint": dM = Oᵀ(dy), dV = Uᵀ·dM, dx = Iᵀ(dV).  Its phases move the bytes of the
      three-phase forward K -> C (dM and dV have the sizes of that layer's V and M) and run the
      same products; its transforms are the generic adjoint kernels, which do at least the
      specialised kernels' work.  So the three-phase estimate of K -> C is a LOWER bound of it.

    The forward-kernel path is therefore never estimated slower; it is faster wherever the
    fused kernel is chosen."""
    three = estimate_layer(N, K, C, H, W, m, r, precision, 1.0, gpu_key)
    if choose_algorithm(N, K, C, H, W, m, r, precision, gpu_key) == "fused":
        forward = estimate_fused(N, K, C, H, W, m, r, precision, gpu_key)
    else:
        forward = three
    return {"forward kernels": forward.ms, "adjoint (lower bound)": three.ms}


# --------------------------------------------------------------------------- tables


def refusal(precision: str, m: int, r: int, ndim: int = 2) -> str | None:
    """Why ``magma_wino.precision.resolve`` refuses the mode for F(m, r) on an sm_90 GPU
    (accuracy, or not supported yet), or None when a plan would run it."""
    import numpy as np

    from . import precision as _precision

    prec = mode(precision)
    dtype = np.float64 if prec == "fp64" else np.float32
    try:
        _precision.resolve(prec, dtype, "cuda", m, r, ndim, capability=(9, 0))
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def default_precisions(dtype: str | None = None) -> list[str]:
    """The modes of ``magma_wino.precision.MODES`` (read at run time) the model has, for data of
    ``dtype``: fp64 for float64, every other concrete mode for float32, all for None."""
    from . import precision as _precision

    modes = [p for p in _precision.MODES if p in PRECISIONS]
    if dtype is None:
        return modes
    return ["fp64"] if dtype == "float64" else [p for p in modes if p != "fp64"]


#: The algorithms a row can be: three kernels (V and M through DRAM) or the fused kernel.
ALGORITHMS = ("three-phase", "fused")


def layer_rows(layers: Sequence[Any], batches: Sequence[int] = (32,), tiles: Sequence[int] = (4,),
               precisions: Sequence[str] = ("fp32",), densities: Sequence[float] = (1.0,),
               gpu_key: str | GPU = "h200", sass: dict | None = None,
               algorithms: Sequence[str] = ("three-phase",)) -> list[dict[str, Any]]:
    """One row per (layer, N, m, precision, density, algorithm) of 2D ``bench.Layer`` objects
    (3D skipped).  Sparse rows (density < 1) are SIMT whatever the mode: they are made for fp32
    and fp64 only.  ``algorithms``: of :data:`ALGORITHMS`; fused rows (:func:`estimate_fused`)
    exist for dense F(2,3) and F(4,3) only, next to the three-phase row of the same point."""
    for a in algorithms:
        if a not in ALGORITHMS:
            raise ValueError(f"algorithms must be of {ALGORITHMS}, got {a!r}")
    rows = []
    for lay in layers:
        if lay.ndim != 2:
            continue
        H, W = lay.spatial
        for N in batches:
            for prec in dict.fromkeys(mode(p) for p in precisions):
                cud = estimate_cudnn(N, lay.C, lay.K, H, W, lay.r, prec, gpu_key)
                cud_tf32 = estimate_cudnn(N, lay.C, lay.K, H, W, lay.r, "tf32", gpu_key) if prec != "fp64" else None
                for m in tiles:
                    refused = refusal(prec, m, lay.r)
                    for d in sorted(set(densities), reverse=True):
                        if d < 1.0 and prec not in ("fp32", "fp64"):
                            continue  # the CSR product is SIMT in every mode: the fp32 rows
                        ests = []
                        if "three-phase" in algorithms:
                            ests.append(estimate_layer(N, lay.C, lay.K, H, W, m, lay.r, prec, d, gpu_key, sass))
                        if "fused" in algorithms and d >= 1.0 and lay.r == 3 and m in (2, 4):
                            ests.append(estimate_fused(N, lay.C, lay.K, H, W, m, lay.r, prec, gpu_key, sass))
                        for e in ests:
                            rows.append(_row(lay, m, e, refused, cud, cud_tf32))
    return rows


def _row(lay: Any, m: int, e: LayerEstimate, refused: str | None, cud: dict[str, Any],
         cud_tf32: dict[str, Any] | None) -> dict[str, Any]:
    sk = e.projections.get("split_k")
    prod = e.phase("fused" if e.algorithm == "fused" else "product")
    # idle-SM cost: the part of an on-chip binding bound the last, partial wave adds
    onchip = prod.binding not in ("HBM", "launch")
    idle = prod.bounds[prod.binding] * (1.0 - prod.wave_efficiency) if onchip else 0.0
    return {"network": lay.network, "layer": lay.name, **e.as_dict(),
            "F": f"F({m},{lay.r})", "refused": refused,
            "phase_ms": {p.phase: p.seconds * 1e3 for p in e.phases},
            "binding": {p.phase: p.binding for p in e.phases},
            "product_wave_efficiency": prod.wave_efficiency,
            "product_idle_ms": idle * 1e3,
            "split_k_ms": sk["ms"] if sk else None,
            "split_k_splits": sk["splits"] if sk else None,
            "cudnn_path": cud["path"], "cudnn_ms": cud["ms"],
            "cudnn_binding": cud["binding"], "ratio_to_cudnn": e.ms / cud["ms"],
            "cudnn_tf32_ms": cud_tf32["ms"] if cud_tf32 else None,
            "ratio_to_cudnn_tf32": e.ms / cud_tf32["ms"] if cud_tf32 else None}


def network_estimates(networks: Sequence[str] = ("vgg16", "resnet50"), batches: Sequence[int] = (32,),
                      tiles: Sequence[int] = (4,), precisions: Sequence[str] = ("fp32",),
                      densities: Sequence[float] = (1.0,), gpu_key: str | GPU = "h200",
                      sass: dict | None = None, algorithms: Sequence[str] = ("three-phase",)) -> list[dict[str, Any]]:
    """:func:`layer_rows` of bench's 2D network layer lists."""
    from .bench import network_layers

    return layer_rows(network_layers(list(networks)), batches, tiles, precisions, densities, gpu_key, sass,
                      algorithms)


def _opt(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _phase_cell(p: dict[str, Any]) -> str:
    return f"{p['ms']:.3g} ({p['binding']})"


def _prec_label(r: dict[str, Any]) -> str:
    """The mode, * when its kernel mix is a projection (no kernel), † when a plan refuses it."""
    return r["precision"] + ("*" if r["hypothetical"] else "") + ("†" if r.get("refused") else "")


def _split_cell(r: dict[str, Any]) -> str:
    return "-" if r.get("split_k_ms") is None else f"{r['split_k_ms']:.3g} (s={r['split_k_splits']})"


LEGEND = ("every figure is an ESTIMATE of the speed-of-light model (not measured); * = no kernel of this "
          "mode, its hot-loop mix is a projection; † = magma_wino.precision refuses "
          "the mode for this F(m,r) (accuracy, or not supported yet); split-K: a PROJECTION, the kernel "
          f"does not exist; cuDNN: implicit GEMM at {CUDNN_EFFICIENCY:.0%} of the dense peak of the same "
          "accuracy class (tf32x3 and fp32: FP32 with TF32 off), an assumption; algorithm fused: the one-kernel "
          "layer of winograd_fused.cuh (V and M stay on chip; its time in the product column, limits HBM, L2 "
          "(an assumed L2 bandwidth), tensor core / FMA pipe, FP32 pipe, shared memory, issue)")

_ROW_COLS = ("layer", "N", "F(m,r)", "precision", "algorithm", "density", "input ms", "product ms",
             "waves (idle ms)", "output ms", "total ms", "DRAM MB", "split-K ms", "cuDNN ms", "ratio",
             "cuDNN TF32 ms", "ratio TF32")


def _waves_cell(r: dict[str, Any]) -> str:
    idle = r.get("product_idle_ms") or 0.0
    return f"{r['product_wave_efficiency']:.2f}" + (f" ({idle:.2g} idle)" if idle >= 5e-4 else "")


def _row_cells(r: dict[str, Any]) -> list[str]:
    ph = {p["phase"]: p for p in r["phases"]}
    fused = r.get("algorithm") == "fused"  # one kernel: its cell in the product column
    inp, prod, out = ("-", "fused " + _phase_cell(ph["fused"]), "-") if fused else (
        _phase_cell(ph["input"]), _phase_cell(ph["product"]), _phase_cell(ph["output"]))
    return [f"{r['network']}/{r['layer']}", str(r["N"]), f"F({r['m']},{r['r']})", _prec_label(r),
            r.get("algorithm", "three-phase"), f"{r['density']:g}", inp, prod, _waves_cell(r), out,
            f"{r['ms']:.3g}", f"{r.get('dram_bytes', 0) / 1e6:.4g}", _split_cell(r),
            f"{r['cudnn_ms']:.3g} ({r['cudnn_path']})", f"{r['ratio_to_cudnn']:.2f}",
            _opt(r["cudnn_tf32_ms"], ".3g"), _opt(r["ratio_to_cudnn_tf32"], ".2f")]


def format_estimates(rows: Sequence[dict[str, Any]], title: str | None = None) -> Any:
    """A rich Table of estimated rows (every one an estimate; see :data:`LEGEND`)."""
    from rich.table import Table

    t = Table(title=title or f"ESTIMATE: speed-of-light model on {rows[0]['gpu'] if rows else '?'} (not measured)")
    for c in _ROW_COLS:
        t.add_column(c, justify="left" if c == "layer" else "right")
    for r in rows:
        t.add_row(*_row_cells(r))
    return t


def markdown_estimates(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of estimated rows: per phase ms (binding limit), product wave efficiency,
    total, the split-K projection, cuDNN of the same accuracy class and with TF32, ratios."""
    lines = ["| " + " | ".join(_ROW_COLS) + " |", "|" + "---|" * len(_ROW_COLS)]
    lines += ["| " + " | ".join(_row_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def network_totals(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (network, N, F, precision, density, algorithm): the sum over the network's 3x3 layers, each
    deduplicated shape counted as often as it occurs (conv3_2/3_3: twice), the split-K
    projection (each layer at its best split, or as it is), and the binding limits of the
    phases (limit: number of layer-phases)."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        algo = r.get("algorithm", "three-phase")
        k = (r["network"], r["N"], r["m"], r["precision"], r["density"], algo)
        t = out.setdefault(k, {"network": r["network"], "N": r["N"], "m": r["m"], "r": r["r"],
                               "precision": r["precision"], "algorithm": algo, "dram_bytes": 0.0,
                               "hypothetical": r["hypothetical"],
                               "refused": r.get("refused"), "density": r["density"], "ms": 0.0,
                               "split_k_ms": 0.0, "cudnn_ms": 0.0, "cudnn_path": r.get("cudnn_path"),
                               "cudnn_tf32_ms": 0.0 if r.get("cudnn_tf32_ms") is not None else None,
                               "layers": 0, "limits": {}})
        times = r["layer"].count("/") + 1
        t["layers"] += times
        t["ms"] += times * r["ms"]
        t["dram_bytes"] += times * r.get("dram_bytes", 0.0)
        t["split_k_ms"] += times * (r.get("split_k_ms") or r["ms"])
        t["cudnn_ms"] += times * r["cudnn_ms"]
        if t["cudnn_tf32_ms"] is not None:
            t["cudnn_tf32_ms"] += times * r["cudnn_tf32_ms"]
        t["refused"] = t["refused"] or r.get("refused")
        t["hypothetical"] = t["hypothetical"] or r["hypothetical"]
        for p in r["phases"]:
            lim = f"{p['phase']}: {p['binding']}"
            t["limits"][lim] = t["limits"].get(lim, 0) + times
    for t in out.values():
        t["ratio_to_cudnn"] = t["ms"] / t["cudnn_ms"]
        t["ratio_to_cudnn_tf32"] = t["ms"] / t["cudnn_tf32_ms"] if t["cudnn_tf32_ms"] else None
        t["label"] = LABEL
    return list(out.values())


_TOTAL_COLS = ("network", "N", "F(m,r)", "precision", "algorithm", "density", "layers", "total ms", "DRAM GB",
               "split-K ms", "cuDNN ms", "ratio", "cuDNN TF32 ms", "ratio TF32", "binding limits (layer-phases)")


def _total_cells(t: dict[str, Any]) -> list[str]:
    lim = ", ".join(f"{k} ×{v}" for k, v in sorted(t["limits"].items()))
    return [t["network"], str(t["N"]), f"F({t['m']},{t['r']})", _prec_label(t), t.get("algorithm", "three-phase"),
            f"{t['density']:g}", str(t["layers"]), f"{t['ms']:.3g}", f"{t.get('dram_bytes', 0) / 1e9:.3g}",
            f"{t['split_k_ms']:.3g}", f"{t['cudnn_ms']:.3g} ({t['cudnn_path']})",
            f"{t['ratio_to_cudnn']:.2f}", _opt(t["cudnn_tf32_ms"], ".3g"), _opt(t["ratio_to_cudnn_tf32"], ".2f"), lim]


def markdown_totals(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(_TOTAL_COLS) + " |", "|" + "---|" * len(_TOTAL_COLS)]
    lines += ["| " + " | ".join(_total_cells(t)) + " |" for t in network_totals(rows)]
    return "\n".join(lines) + "\n"


def format_totals(rows: Sequence[dict[str, Any]], title: str | None = None) -> Any:
    """A rich Table of :func:`network_totals`."""
    from rich.table import Table

    t = Table(title=title or "ESTIMATE: network totals (speed-of-light model, not measured)")
    for c in _TOTAL_COLS:
        t.add_column(c, justify="left" if c in ("network", "binding limits (layer-phases)") else "right")
    for tot in network_totals(rows):
        t.add_row(*_total_cells(tot))
    return t


def by_precision(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The rows grouped by precision mode, in the order of :data:`PRECISIONS`."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p in PRECISIONS:
        sel = [r for r in rows if r["precision"] == p]
        if sel:
            out[p] = sel
    return out


def markdown_pivot(rows: Sequence[dict[str, Any]]) -> str:
    """Per (layer, N, F, density) one line, per precision one column: total ms and the product's
    binding limit (the modes side by side; marks as in :func:`markdown_estimates`)."""
    precs = list(by_precision(rows))
    cells: dict[tuple, dict[str, str]] = {}
    for r in rows:
        algo = r.get("algorithm", "three-phase")
        k = (r["network"], r["layer"], r["N"], r["m"], r["r"], r["density"], algo)
        lim = r["binding"].get("product") or r["binding"].get("fused")
        cells.setdefault(k, {})[r["precision"]] = (
            f"{r['ms']:.3g}{'*' if r['hypothetical'] else ''}{'†' if r.get('refused') else ''} ({lim})")
    lines = ["| layer | N | F(m,r) | density | algorithm | " + " | ".join(f"{p} ms (product limit)" for p in precs)
             + " |", "|---|---|---|---|---|" + "---|" * len(precs)]
    for (net, lay, N, m, r, d, algo), c in cells.items():
        lines.append(f"| {net}/{lay} | {N} | F({m},{r}) | {d:g} | {algo} | " + " | ".join(c.get(p, "-") for p in precs)
                     + " |")
    return "\n".join(lines) + "\n"


def markdown_report(rows: Sequence[dict[str, Any]], gpu_key: str | GPU = "h200", command: str | None = None) -> str:
    """The totals and, per precision, the per-layer table, as markdown (every figure labelled)."""
    head = f"ESTIMATES on {gpu(gpu_key).name} ({LABEL})." + (f" Command: `{command}`" if command else "")
    parts = [head, "", LEGEND + ".", "",
             "Network totals (every 3x3 layer, repeated shapes counted each time):", "", markdown_totals(rows)]
    parts += ["Per layer, the modes side by side (total ms, product phase's binding limit; estimate):", "",
              markdown_pivot(rows)]
    for p, sel in by_precision(rows).items():
        parts += [f"Per layer, {p} (estimate):", "", markdown_estimates(sel)]
    return "\n".join(parts)


def roofline_png(path: str | Path, gpu_key: str = "h200", N: int = 32, m: int = 4) -> Path:
    """Roofline plot: each kernel's arithmetic intensity (FLOP per compulsory DRAM byte) and
    estimated rate on VGG-16 conv3 and ResNet-50 conv4 layers, against the GPU's roofs: the
    transforms and today's SIMT products (fp32, fp64, 25% CSR), the tensor-core product per
    precision (tf32, tf32x3, bf16, fp16 from their SASS)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = gpu(gpu_key)
    fig, ax = plt.subplots(figsize=(8.5, 6))
    x = [10 ** (i / 20) for i in range(-40, 81)]
    hbm = g.hbm_tbs * 1e12
    for name, path_, style in (("FP32", "fp32", "-"), ("FP64", "fp64", "--"), ("TF32 tensor", "tf32", ":"),
                               ("BF16/FP16 tensor", "bf16", "-."), ("FP64 tensor (H100/H200: = FP32)", "fp64_tc", (0, (1, 4)))):
        peak = g.peak(path_)
        ax.plot(x, [min(peak, hbm * i) / 1e12 for i in x], linestyle=style, color="0.4", lw=1,
                label=f"{name} roof ({peak / 1e12:.0f} TFLOP/s dense)")
    markers = {"input": "o", "product": "s", "output": "^"}
    colors = {"fp32": "C0", "fp64": "C1", "tf32": "C2", "tf32x3": "C3", "bf16": "C4", "fp16": "C5"}
    size = {"fp16": 90, "bf16": 30}  # the two coincide where shared memory binds: bf16 drawn inside fp16
    for H, C, K, lay in ((56, 256, 256, "VGG conv3"), (14, 256, 256, "R50 conv4")):
        for prec in colors:
            for d in (1.0, 0.25):
                if d < 1 and prec not in ("fp32", "fp64"):
                    continue
                e = estimate_layer(N, C, K, H, H, m, 3, prec, d, g)
                for p in e.phases:
                    if (d < 1 or prec not in ("fp32", "fp64")) and p.phase != "product":
                        continue  # the tensor-core modes' transforms are the fp32 ones (bf16: V half)
                    y = p.flops / p.seconds / 1e12
                    face = "none" if p.hypothetical else colors[prec]
                    ax.scatter(p.intensity, y, marker=markers[p.phase], facecolors=face, color=colors[prec],
                               edgecolors=colors[prec] if p.hypothetical else ("k" if d == 1 else "none"),
                               s=size.get(prec, 40), zorder=4 if prec == "bf16" else 3)
                    if p.phase == "product" and d == 1 and prec in ("fp32", "tf32"):
                        ax.annotate(lay, (p.intensity, y), fontsize=7, xytext=(4, -10), textcoords="offset points")
    for ph, mk in markers.items():
        ax.scatter([], [], marker=mk, color="gray", label=f"{ph} phase")
    for prec, c in colors.items():
        ax.scatter([], [], marker="s", color=c, label=prec)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / compulsory DRAM byte)")
    ax.set_ylabel("TFLOP/s (ESTIMATED, useful FLOPs)")
    ax.set_title(f"ESTIMATE: roofline, {g.name}, N={N}, F({m},3); VGG conv3 56x56x256, R50 conv4 14x14x256\n"
                 "black edge = dense, no edge = 25% density (SpMM); hollow = projected mix; bf16 inside fp16", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower right", ncol=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- CLI


def builtin_literal(sass: dict) -> str:
    """The :data:`SASS_SM90` entries of a :func:`load_sass` dict as Python source (to paste)."""
    keys = sorted((k for k in sass if k[0] != "fused"), key=lambda k: tuple(str(v) for v in k))
    return "SASS_SM90 = {\n" + "".join(f"    {k!r}: {sass[k]!r},\n" for k in keys) + "}\n"


def fused_literal(sass: dict) -> str:
    """The :data:`SASS_FUSED_SM90` entries of a :func:`load_sass` dict as Python source."""
    keys = sorted((k for k in sass if k[0] == "fused"), key=lambda k: (k[1], PRECISIONS.index(k[2])))
    return "SASS_FUSED_SM90 = {\n" + "".join(f"    {k[1:]!r}: {sass[k]!r},\n" for k in keys) + "}\n"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m magma_wino.perfmodel",
                                 description="Speed-of-light ESTIMATES of Winograd layers on a GPU (not measurements).")
    ap.add_argument("--gpu", choices=sorted(GPUS), default="h200")
    ap.add_argument("--network", nargs="+", default=["vgg16", "resnet50"], help="2D networks of magma-wino bench")
    ap.add_argument("--batch", nargs="+", type=int, default=[32])
    ap.add_argument("--tile", nargs="+", type=int, default=[4], help="output tile sizes m of F(m,3)")
    ap.add_argument("--precision", nargs="+", default=None, choices=(*PRECISIONS, *_ALIASES),
                    help="precision modes (default: every mode of magma_wino.precision.MODES the model has)")
    ap.add_argument("--density", nargs="+", type=float, default=[1.0])
    ap.add_argument("--algorithm", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS),
                    help="three-phase and/or fused rows (fused: dense F(2,3), F(4,3) only; default both)")
    ap.add_argument("--sass-json", metavar="FILE",
                    help="hot-loop mixes from tools/kernel_report.py --json (its sm_80 rows for a100, sm_90 else)")
    ap.add_argument("--refresh-builtin", metavar="FILE",
                    help="print the built-in SASS_SM90 table read from a tools/kernel_report.py --json file, and stop")
    ap.add_argument("--markdown", metavar="FILE", help="write the tables as markdown")
    ap.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    ap.add_argument("--roofline", metavar="PNG", help="write the roofline plot (matplotlib) and stop")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.refresh_builtin:
        sass = load_sass(args.refresh_builtin) or {}
        missing = [k for k in SASS_SM90 if k not in sass]
        print(builtin_literal(sass), end="")
        if missing:
            print(f"# not in the report (kept as built in): {missing}")
        if any(k[0] == "fused" for k in sass):
            print("# the fused kernels (winograd_fused.cuh):")
            print(fused_literal(sass), end="")
        return 0
    if args.roofline:
        print(f"wrote {roofline_png(args.roofline, args.gpu)} ({LABEL})")
        return 0
    precisions = args.precision or default_precisions()
    # the report's rows of the GPU's own architecture (the built-in table is sm_90's)
    sass = load_sass(args.sass_json, arch="80" if args.gpu == "a100" else "90")
    rows = network_estimates(args.network, args.batch, args.tile, precisions, args.density, args.gpu, sass,
                             args.algorithm)
    from rich.console import Console

    console = Console(width=250)
    console.print(format_totals(rows, f"ESTIMATE on {gpu(args.gpu).name}: network totals (not measured)"))
    for p, sel in by_precision(rows).items():
        console.print(format_estimates(sel, f"ESTIMATE on {gpu(args.gpu).name}, {p}: per layer (not measured)"))
    console.print(LEGEND + ".")
    if args.markdown:
        p = Path(args.markdown)
        p.parent.mkdir(parents=True, exist_ok=True)
        cmd = "python -m magma_wino.perfmodel " + " ".join(sys.argv[1:] if argv is None else argv)
        p.write_text(markdown_report(rows, args.gpu, cmd))
    if args.json:
        Path(args.json).write_text(json.dumps({"label": LABEL, "gpu": asdict(gpu(args.gpu)), "legend": LEGEND,
                                               "rows": rows, "totals": network_totals(rows)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
