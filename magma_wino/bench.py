"""``magma-wino bench``: Winograd layers of VGG-16, ResNet-18/50 and C3D, timed per phase.

For every layer × batch × F(m, 3) × density × backend one MAGMA-style row:

    layer | N | C | K | H×W | F(m,r) | density | backend | precision | ms | in/prod/out ms |
    GFLOP/s | workspace MiB | error | ok

* ``ms``: the whole ``plan(x)``; ``in/prod/out``: the three phases timed separately (the same
  calls ``plan.__call__`` makes: input transform, batched dense or sparse product, output
  transform), like NNPACK's profile.  CPU: ``time.perf_counter``, GPU: CUDA events; one
  warm-up call, then the median of ``--repeat`` calls.
* ``GFLOP/s``: *effective*, the direct convolution's 2·N·K·C·Πout·r^nd divided by the time
  (a Winograd layer does fewer real operations; a pruned one fewer still).
* ``workspace``: V (α^nd·C·P) + M (α^nd·K·P) + U (dense, or the CSR arrays) + the split-K
  partials of the tensor-core product (``plan.split_k_workspace_bytes``); on a GPU also
  CuPy's memory-pool peak during one call.
* ``error``: ``max|y − y_ref| / max|y_ref|`` against float64 (dense: the direct convolution;
  pruned: ``reference.winograd_conv_from_U`` of the pruned U, which *is* the layer), on the
  first image and an output window of at most ``--check-window`` per axis (a multiple of
  every m, so the tiles are the plan's); ``ok``: error ≤ :func:`magma_wino.accuracy.tolerance`
  (dense tf32 / fp16 / bf16 rows: :func:`magma_wino.precision.tolerance`, the operand-rounding
  model of :func:`magma_wino.accuracy.tolerance_tf32` at the mode's unit roundoff).
* ``fused`` rows (density column): the same dense layer as one fused kernel (docs/fused.md),
  for the tiles that have one on the backend (not numpy): no phases, no V or M workspace.
* ``precision``: the mode the plan resolved ``--precision`` to (``plan.precision``; one
  set of Winograd rows per mode given, default auto).  A mode a layer refuses (dtype, a
  tile too inaccurate for tf32, no tensor cores) skips those rows, the reason printed once.
  The sparse rows run once per tile, with the first accepted mode: the batched CSR product
  is SIMT whatever the mode.  Baselines: ``-``.

Densities: ``1.0 dense`` is the plain plan; ``d sparse`` rows are
``from_winograd(U, r, prune=d, sparse=True)`` (Winograd-domain pruning, batched CSR product).
The numpy backend has no sparse product (its plan multiplies the dense U), so it runs the
dense rows only.  Baselines in the same run: on CPU ``im2col+matmul`` (NumPy, one matmul);
on a GPU ``im2col+cublas`` (CuPy, one ``cupy.matmul``) and ``cudnn`` (PyTorch
``conv2d``/``conv3d``, or CuPy's cuDNN binding).

The emulator runs the CUDA kernel source on the CPU fibers; its layers are scaled down
(``--scale``, default channels/8 and spatial/4, batch 1).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import math
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _backend, reference
from . import precision as _precision
from ._version import __version__
from .accuracy import rel_err, tolerance
from .cost import C3D_LAYERS, VGG16_LAYERS

__all__ = [
    "NETWORKS",
    "Layer",
    "network_layers",
    "im2col_conv",
    "cudnn_conv_fn",
    "phase_functions",
    "time_cpu",
    "time_gpu",
    "bench_layer",
    "crossovers",
    "format_table",
    "markdown_table",
    "kernel_facts",
]

DENSITIES = (1.0, 0.5, 0.25, 0.1, 0.05, 0.0)
MIB = 1024.0 * 1024.0


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class Layer:
    """One 3×3 (3D: 3×3×3) stride-1, padding-1 convolution layer."""

    network: str
    name: str
    C: int
    K: int
    spatial: tuple[int, ...]
    r: int = 3

    @property
    def ndim(self) -> int:
        return len(self.spatial)

    def scaled(self, ch_div: int, sp_div: int) -> Layer:
        """Channels / ch_div and spatial / sp_div (at least 1 channel, 2 per axis)."""
        if ch_div == 1 and sp_div == 1:
            return self
        return Layer(self.network, self.name, max(1, self.C // ch_div), max(1, self.K // ch_div),
                     tuple(max(2, s // sp_div) for s in self.spatial), self.r)


def _vgg16() -> list[Layer]:
    labels = [f"conv{s}_{i}" for s, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)]
    return _dedupe("vgg16", [(lab, C, K, (H, W)) for lab, (C, K, H, W) in zip(labels, VGG16_LAYERS)])


def _dedupe(network: str, items: list[tuple[str, int, int, tuple[int, ...]]]) -> list[Layer]:
    """Identical shapes once, named after all the layers they stand for (conv3_2/3_3)."""
    seen: dict[tuple, list[str]] = {}
    for name, C, K, sp in items:
        seen.setdefault((C, K, sp), []).append(name)
    out = []
    for (C, K, sp), names in seen.items():
        label = names[0] + "".join("/" + n.split("conv")[-1] if n.startswith("conv") else "/" + n for n in names[1:])
        out.append(Layer(network, label, C, K, sp))
    return out


#: ResNet-18 3×3 layers (He et al. 2016): the repeated C→C convs of each stage, and the
#: first 3×3 of stages 2–4 (stride 2 in the network) as its stride-1 equivalent: C → 2C at
#: the stage's output size.
RESNET18: tuple[tuple[str, int, int, int], ...] = (
    ("conv2_x", 64, 64, 56),
    ("conv3_1*", 64, 128, 28),
    ("conv3_x", 128, 128, 28),
    ("conv4_1*", 128, 256, 14),
    ("conv4_x", 256, 256, 14),
    ("conv5_1*", 256, 512, 7),
    ("conv5_x", 512, 512, 7),
)

#: ResNet-50 bottleneck 3×3 layers (the middle conv of each block; the first block of
#: stages 3–5 has stride 2 in the network — its stride-1 equivalent has the same shape).
RESNET50: tuple[tuple[str, int, int, int], ...] = (
    ("conv2_x.b", 64, 64, 56),
    ("conv3_x.b", 128, 128, 28),
    ("conv4_x.b", 256, 256, 14),
    ("conv5_x.b", 512, 512, 7),
)

C3D_NAMES = ("conv1a", "conv2a", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b")


def _c3d() -> list[Layer]:
    return _dedupe("c3d", [(n, C, K, (D, H, W)) for n, (C, K, D, H, W) in zip(C3D_NAMES, C3D_LAYERS)])


NETWORKS: dict[str, Callable[[], list[Layer]]] = {
    "vgg16": _vgg16,
    "resnet18": lambda: [Layer("resnet18", n, C, K, (H, H)) for n, C, K, H in RESNET18],
    "resnet50": lambda: [Layer("resnet50", n, C, K, (H, H)) for n, C, K, H in RESNET50],
    "c3d": _c3d,
}


def network_layers(names: Sequence[str]) -> list[Layer]:
    """Layers of the named networks (``all`` = the four)."""
    if "all" in names:
        names = list(NETWORKS)
    out: list[Layer] = []
    for n in names:
        if n not in NETWORKS:
            raise ValueError(f"unknown network {n!r}; choose from {sorted(NETWORKS)} or 'all'")
        out += NETWORKS[n]()
    return out


def direct_flops(N: int, C: int, K: int, out_spatial: Sequence[int], r: int) -> int:
    """2·N·K·C·Πout·r^nd: the multiply-adds of the direct convolution, counted as 2 FLOPs."""
    return 2 * N * K * C * math.prod(out_spatial) * r ** len(out_spatial)


# --------------------------------------------------------------------------- baselines


def _xp_of(a: Any):
    return np if isinstance(a, np.ndarray) else _backend.cupy_module()


def im2col_conv(x: Any, w: Any, padding: int | Sequence[int] = 1, xp: Any = None) -> Any:
    """Convolution as im2col + one matrix product, for NumPy or CuPy arrays (``xp``).

    The padded input is unfolded through a strided view (N, C, out…, r…), copied once into
    the column matrix (C·r^nd) × (N·Πout), and multiplied by w as a K × (C·r^nd) matrix
    (one ``xp.matmul``: cuBLAS on CuPy, BLAS on NumPy).  Stride 1, 2D or 3D.
    """
    xp = xp or _xp_of(x)
    nd = x.ndim - 2
    pads = (padding,) * nd if isinstance(padding, (int, np.integer)) else tuple(padding)
    N, C = x.shape[:2]
    K, r = w.shape[0], w.shape[2]
    xpad = xp.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pads])
    out = tuple(s - r + 1 for s in xpad.shape[2:])
    st = xpad.strides
    win = xp.lib.stride_tricks.as_strided(xpad, shape=(N, C) + out + (r,) * nd,
                                          strides=st[:2] + st[2:] + st[2:])
    perm = (1,) + tuple(range(2 + nd, 2 + 2 * nd)) + (0,) + tuple(range(2, 2 + nd))
    cols = xp.ascontiguousarray(win.transpose(perm)).reshape(C * r**nd, N * math.prod(out))
    y = xp.matmul(w.reshape(K, C * r**nd), cols)
    return xp.ascontiguousarray(y.reshape((K, N) + out).swapaxes(0, 1))


def cudnn_conv_fn(x: Any, w: Any, padding: int = 1) -> tuple[str, Callable[[], Any]] | None:
    """A no-argument callable running cuDNN's convolution of device arrays x, w, and its name.

    PyTorch (``torch.nn.functional.conv2d``/``conv3d`` on CUDA, TF32 off so float32 is
    float32) when importable, else CuPy's cuDNN binding (``cupy.cudnn.convolution_forward``),
    else None.
    """
    nd = x.ndim - 2
    try:
        import torch
        import torch.nn.functional as F

        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            tx, tw = torch.from_dlpack(x), torch.from_dlpack(w)
            conv = F.conv2d if nd == 2 else F.conv3d
            return "cudnn(torch)", lambda: conv(tx, tw, padding=padding)
    except Exception:
        pass
    cp = _backend.cupy_module()
    try:
        import cupy.cudnn as cudnn  # needs CuPy built with cuDNN (cupy-cuda* + nvidia-cudnn)

        out = tuple(s + 2 * padding - w.shape[2] + 1 for s in x.shape[2:])
        y = cp.empty((x.shape[0], w.shape[0]) + out, dtype=x.dtype)
        pad, one = (padding,) * nd, (1,) * nd

        def fn():
            cudnn.convolution_forward(x, w, None, y, pad, one, one, 1, auto_tune=True, tensor_core="never")
            return y

        return "cudnn(cupy)", fn
    except Exception:
        return None


# --------------------------------------------------------------------------- timing


def time_cpu(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds (``time.perf_counter``) after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_gpu(fn: Callable[[], Any], repeat: int = 10, warmup: int = 2) -> float:
    """Median GPU time of ``fn()`` in seconds: CUDA events on CuPy's current stream."""
    cp = _backend.cupy_module()
    for _ in range(warmup):
        fn()
    cp.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(max(1, repeat)):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    return statistics.median(times)


def phase_functions(plan: Any, x: Any) -> tuple[dict[str, Callable[[], Any]], dict[str, int]]:
    """The three phases of ``plan(x)`` as separate callables, and the workspace bytes.

    The plan's public phases (magma_wino/layer.py): ``input`` = ``plan.transform_input``
    (V), ``product`` = ``plan.multiply`` (batched GEMM or batched CSR product, M),
    ``output`` = ``plan.transform_output`` (y).  Each phase reads the previous one's
    latest result, so they can be timed independently after one call of each.
    """
    itemsize = np.dtype(plan.compute_dtype).itemsize  # M's (16-bit data: float32)
    st: dict[str, Any] = {}

    def inp():
        st["V"] = plan.transform_input(x)

    inp()
    V = st["V"]
    positions, P = int(V.shape[0]), int(V.shape[2])
    if plan.product == "csr" and plan.csr is not None:
        c = plan.csr
        u_bytes = int(c.values.nbytes + c.col_idx.nbytes + c.row_ptr.nbytes)
    else:
        u_bytes = int(plan.U.nbytes)  # 16-bit in fp16 / bf16
    sizes = {"V": int(V.nbytes), "M": positions * plan.K * P * itemsize, "U": u_bytes,
             "split_k": plan.split_k_workspace_bytes(tuple(x.shape))}
    xp = np if plan.backend != "cuda" else _backend.cupy_module()
    M = xp.empty((positions, plan.K, P), dtype=plan.compute_dtype)
    y = xp.empty(plan.out_shape(tuple(x.shape)), dtype=plan.dtype)

    def prod():
        st["M"] = plan.multiply(st["V"], out=M)

    def out():
        return plan.transform_output(st["M"], tuple(x.shape), out=y)

    prod()
    return {"input": inp, "product": prod, "output": out}, sizes


# --------------------------------------------------------------------------- one layer


def _plan_cls(ndim: int):
    from .layer import WinogradConv2d, WinogradConv3d

    return WinogradConv2d if ndim == 2 else WinogradConv3d


def _check_extent(out: int, tiles: Sequence[int], window: int) -> int:
    """Output extent checked per axis: all of it, or a multiple of every m ≤ window."""
    if out <= window:
        return out
    step = math.lcm(*tiles)
    return max(step, (window // step) * step)


def _crop(a: Any, n: int, extents: Sequence[int]) -> Any:
    return a[(slice(0, n), slice(None)) + tuple(slice(0, e) for e in extents)]


def bench_layer(layer: Layer, N: int, backend: str, tiles: Sequence[int], densities: Sequence[float],
                dtype: Any = np.float32, repeat: int = 5, check_window: int = 24, seed: int = 0,
                baselines: bool = True, scaled_from: Layer | None = None,
                tick: Callable[[], None] | None = None, precisions: Sequence[str] = ("auto",),
                refused: dict[str, int] | None = None, backward: bool = False) -> list[dict[str, Any]]:
    """All rows of one layer at batch N on one backend (Winograd dense/sparse and baselines).

    ``backward``: after each dense row, a "backward" row timing ``plan.backward(x, dy)`` (dx and
    dw; twice the forward's direct FLOPs), its error checked on image 0 against the direct
    convolution's float64 gradients.

    One dense row per tile and mode of ``precisions`` (a mode the plan refuses is skipped:
    its reason counted in ``refused``), the sparse rows once per tile with the first mode
    accepted."""
    dtype = np.dtype(dtype)
    gpu = backend == "cuda"
    rng = np.random.default_rng(seed)
    nd, r, pad = layer.ndim, layer.r, (layer.r - 1) // 2
    xh = rng.standard_normal((N, layer.C) + layer.spatial).astype(dtype)
    wh = rng.standard_normal((layer.K, layer.C) + (r,) * nd).astype(dtype)
    out_sp = tuple(s + 2 * pad - r + 1 for s in layer.spatial)
    flops = direct_flops(N, layer.C, layer.K, out_sp, r)
    # the checked subset: first image, a tile-aligned output window, and the input it reads
    ext = tuple(_check_extent(o, tiles, check_window) for o in out_sp)
    x_sub = _crop(xh, 1, tuple(min(s, e + r - 1 - pad) for s, e in zip(layer.spatial, ext)))
    direct = reference.conv2d_direct if nd == 2 else reference.conv3d_direct
    y_direct = _crop(direct(x_sub, wh, padding=pad), 1, ext)
    subset = "all" if N == 1 and ext == out_sp else f"n=0, out[{'x'.join(map(str, ext))}]"
    cp = _backend.cupy_module() if gpu else None
    pool = cp.get_default_memory_pool() if gpu else None
    x = cp.asarray(xh) if gpu else xh
    w = cp.asarray(wh) if gpu else wh
    timer = time_gpu if gpu else time_cpu
    n_red = layer.C * r**nd

    base = {"network": layer.network, "layer": layer.name, "ndim": nd, "N": N, "C": layer.C, "K": layer.K,
            "spatial": list(layer.spatial), "r": r, "dtype": dtype.name, "flops": flops,
            "scaled_from": None if scaled_from is None else
            {"C": scaled_from.C, "K": scaled_from.K, "spatial": list(scaled_from.spatial)}}
    rows: list[dict[str, Any]] = []

    def finish(row: dict[str, Any], seconds: float, y: Any, y_ref: np.ndarray, tol: float | None) -> None:
        row["ms"] = seconds * 1e3
        row["gflops"] = flops / seconds / 1e9 if seconds > 0 else math.inf
        err = rel_err(_crop(_backend.to_host(y), 1, ext), y_ref)
        row["error"] = err
        row["error_subset"] = subset
        row["tolerance"] = tol
        row["ok"] = bool(err <= tol) if tol is not None else None
        rows.append(row)
        if tick is not None:
            tick()

    Plan = _plan_cls(nd)
    for m in tiles:
        plans: list[tuple[float, str, Any, np.ndarray]] = []
        sparse_mode = None
        for mode in dict.fromkeys(precisions):
            try:
                dense = Plan(w, padding=pad, m=m, backend=backend, precision=mode, fused=False)
            except ValueError as exc:  # the layer refuses the mode
                if refused is not None:
                    refused[str(exc)] = refused.get(str(exc), 0) + 1
                if tick is not None:
                    tick()
                continue
            if any(k == "dense" and q.precision == dense.precision for _, k, q, _ in plans):
                continue  # two requested modes resolved alike (auto and its mode): one row
            plans.append((1.0, "dense", dense, y_direct))
            if dense.fused_unavailable() is None:  # the same layer as one fused kernel (docs/fused.md)
                plans.append((1.0, "fused", Plan(w, padding=pad, m=m, backend=backend, precision=mode, fused=True),
                              y_direct))
            sparse_mode = mode if sparse_mode is None else sparse_mode
        if backend != "numpy" and sparse_mode is not None:
            Uh = reference.filter_transform(wh, m).astype(dtype)
            for d in densities:
                sp = Plan.from_winograd(Uh, r, prune=d, sparse=True, padding=pad, m=m, backend=backend,
                                        precision=sparse_mode)
                Up = _backend.to_host(sp.csr.to_dense()).astype(np.float64)
                y_ref = _crop(reference.winograd_conv_from_U(x_sub.astype(np.float64), Up, m, r, padding=pad), 1, ext)
                plans.append((float(d), "sparse", sp, y_ref))
        for d, kind, plan, y_ref in plans:
            # dense products: the mode's model (tf32 / fp16 / bf16 round their operands); the
            # sparse product is SIMT in the data's dtype whatever the mode
            tol = (tolerance(dtype, m, r, n_red, nd) if plan.product == "csr"
                   else _precision.tolerance(plan.precision, m, r, n_red, nd))
            if gpu:
                cp.cuda.get_current_stream().synchronize()
                pool.free_all_blocks()
            y = plan(x)
            peak = None
            if gpu:  # the pool was emptied: what it holds now is what one call needed
                cp.cuda.get_current_stream().synchronize()
                peak = int(pool.total_bytes())
            if kind == "fused":  # one kernel: no phases, no V or M
                fns, sizes = {}, {"V": 0, "M": 0, "U": int(plan.U.nbytes), "split_k": 0}
            else:
                fns, sizes = phase_functions(plan, x)
            if peak is not None:
                sizes["pool_peak"] = peak
            total = timer(lambda plan=plan: plan(x), repeat)
            phases = {k: timer(f, repeat) * 1e3 for k, f in fns.items()} if fns else None
            row = dict(base, m=m, F=f"F({m},{r})", density=d, product=kind, backend=backend, precision=plan.precision,
                       weight_density=float(plan.weight_density) if kind == "sparse" else 1.0,
                       sparse_product=bool(plan.uses_sparse_product), phase_ms=phases, algorithm=plan.algorithm,
                       workspace_bytes=sizes,
                       workspace_mib=(sizes["V"] + sizes["M"] + sizes["U"] + sizes["split_k"]) / MIB)
            finish(row, total, y, y_ref, tol)
            if backward and kind == "dense":
                rows.append(_backward_row(row, plan, x, xh, wh, pad, timer, repeat, rng))
                if tick is not None:
                    tick()
    if baselines:
        tol = tolerance(dtype, 1, r, n_red, nd)  # direct-method rounding: F(1, r) has β = 1
        cands: list[tuple[str, Callable[[], Any]]] = [
            ("im2col+cublas" if gpu else "im2col+matmul", lambda: im2col_conv(x, w, pad))]
        if gpu:
            cd = cudnn_conv_fn(x, w, pad)
            if cd is not None:
                cands.append(cd)
        for name, fn in cands:
            if gpu:
                pool.free_all_blocks()
            y = fn()
            if hasattr(y, "__dlpack__") and not hasattr(y, "get") and not isinstance(y, np.ndarray):
                y = cp.from_dlpack(y)  # torch tensor → CuPy
            total = timer(fn, repeat)
            col_bytes = n_red * N * math.prod(out_sp) * dtype.itemsize
            sizes = {"cols": col_bytes} if "im2col" in name else {}
            if gpu:
                sizes["pool_peak"] = int(pool.total_bytes())
            row = dict(base, m=None, F=name, density=1.0, product="baseline", backend=name, precision=None,
                       weight_density=1.0, sparse_product=False, phase_ms=None, workspace_bytes=sizes,
                       workspace_mib=sizes.get("cols", 0) / MIB)
            finish(row, total, y, y_direct, tol)
    return rows


def _backward_row(fwd: dict[str, Any], plan: Any, x: Any, xh: np.ndarray, wh: np.ndarray, pad: int,
                  timer: Callable[..., float], repeat: int, rng: np.random.Generator) -> dict[str, Any]:
    """The "backward" row of a dense plan (see :func:`bench_layer`)."""
    dyh = rng.standard_normal(plan.out_shape(xh.shape)).astype(xh.dtype)
    dy = _backend.like(dyh, x)
    seconds = timer(lambda: plan.backward(x, dy), repeat)
    g = plan.backward(x[:1], dy[:1])  # the check: image 0 against the direct gradients
    dx_ref, dw_ref = reference.conv_direct_backward(xh[:1], wh, dyh[:1], pad)
    tol_dx, tol_dw = plan._gradient_tolerances(tuple(xh[:1].shape))
    parts = [(rel_err(_backend.to_host(g.grad_input), dx_ref), tol_dx),
             (rel_err(_backend.to_host(g.grad_weight), dw_ref), tol_dw)]
    err, tol = max(parts, key=lambda et: et[0] / et[1])  # the gradient nearest its bound
    flops = 2 * fwd["flops"]  # dx and dw: each as many multiply-adds as the forward
    return dict(fwd, product="backward", ms=seconds * 1e3, flops=flops,
                gflops=flops / seconds / 1e9 if seconds > 0 else math.inf, phase_ms=None,
                error=err, error_subset="n=0, dx and dw", tolerance=tol,
                ok=all(e <= t for e, t in parts), algorithm="three-phase backward")


# --------------------------------------------------------------------------- summaries


def crossovers(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (layer, backend, N, F): the measured density below which the sparse product is
    faster than the dense one.

    ``crossover_density`` is the highest density d such that the sparse *product phase* is
    faster than the dense product at d and at every lower measured density (None: never
    faster; the product phase is what the density changes).  ``total_crossover_density``: the
    same for the whole layer time.
    """
    groups: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        if r["product"] not in ("dense", "sparse"):
            continue
        key = (r["network"], r["layer"], r["backend"], r["N"], r["F"], r.get("precision"))
        g = groups.setdefault(key, {"dense": None, "sparse": []})
        if r["product"] == "dense":
            g["dense"] = r
        else:
            g["sparse"].append(r)

    def cross(dense_t: float, pts: list[tuple[float, float]]) -> float | None:
        best = None
        for d, t in sorted(pts):  # ascending density
            if t < dense_t:
                best = d
            else:
                break
        return best

    out = []
    from .perfmodel import crossover_density

    for (net, layer, be, N, F, _prec), g in groups.items():
        if g["dense"] is None or not g["sparse"]:
            continue
        dp = g["dense"]["phase_ms"]["product"]
        out.append({
            "network": net, "layer": layer, "backend": be, "N": N, "F": F, "precision": _prec,
            "K": g["dense"]["K"], "C": g["dense"]["C"], "m": g["dense"]["m"], "r": g["dense"]["r"],
            "ndim": g["dense"]["ndim"],
            "dense_product_ms": dp,
            "sparse_product_ms": {str(s["density"]): s["phase_ms"]["product"] for s in g["sparse"]},
            "crossover_density": cross(dp, [(s["density"], s["phase_ms"]["product"]) for s in g["sparse"]]),
            "total_crossover_density": cross(g["dense"]["ms"], [(s["density"], s["ms"]) for s in g["sparse"]]),
            # where sparse="auto" switches to the CSR product (the model's crossover; the
            # measured one differs on CPUs, whose emulated kernels are nothing like a GPU's)
            "model_crossover_density": crossover_density(g["dense"]["K"], g["dense"]["C"], g["dense"]["m"],
                                                         g["dense"]["r"], _prec or "fp32", "csr", g["dense"]["ndim"]),
        })
    return out


def _fmt_density(r: dict[str, Any]) -> str:
    if r["product"] == "baseline":
        return "-"
    if r["product"] in ("dense", "fused", "backward"):
        return r["product"]
    return f"{r['density']:g} csr"


def _fmt_shape(r: dict[str, Any]) -> str:
    s = "×".join(str(v) for v in r["spatial"])
    return s


def _fmt_err(v: float) -> str:
    return f"{v:.1e}" if v else "0"


TABLE_COLUMNS = ("layer", "N", "C", "K", "H×W", "F(m,r)", "density", "backend", "precision", "ms",
                 "in/prod/out ms", "GFLOP/s", "workspace MiB", "error", "ok")


def table_cells(r: dict[str, Any]) -> list[str]:
    ph = r.get("phase_ms")
    phases = "/".join(f"{ph[k]:.3g}" for k in ("input", "product", "output")) if ph else "-"
    ok = "-" if r["ok"] is None else ("yes" if r["ok"] else "NO")
    layer = r["layer"] + ("ˢ" if r.get("scaled_from") else "")
    return [layer, str(r["N"]), str(r["C"]), str(r["K"]), _fmt_shape(r), r["F"], _fmt_density(r), r["backend"],
            r.get("precision") or "-", f"{r['ms']:.3g}", phases, f"{r['gflops']:.3g}", f"{r['workspace_mib']:.3g}", _fmt_err(r["error"]), ok]


#: The columns of the table fitted to 80 columns (``magma-wino bench`` without ``--wide``): what
#: was run and how fast; phases, workspace and error are in --wide, --json and --markdown.
NARROW_COLUMNS = ("layer", "N", "F(m,r)", "density", "backend", "precision", "ms", "GFLOP/s", "ok")


def format_table(rows: Sequence[dict[str, Any]], title: str = "magma-wino bench", wide: bool = True) -> Any:
    """The rows as a ``rich.table.Table`` (MAGMA-style columns); ``wide=False``: the
    :data:`NARROW_COLUMNS` only, without box lines, to fit 80 columns."""
    from rich import box
    from rich.table import Table

    cols = TABLE_COLUMNS if wide else NARROW_COLUMNS
    table = Table(title=title, show_lines=False, header_style="bold", box=box.HEAVY_HEAD if wide else None)
    for c in cols:
        text = c in ("layer", "F(m,r)", "backend", "density", "precision")
        table.add_column(c, justify="left" if text else "right", no_wrap=not text,  # numbers never wrap
                         min_width=10 if c == "layer" else None, overflow="fold")
    for r in rows:
        cells = dict(zip(TABLE_COLUMNS, table_cells(r)))
        style = "red" if r["ok"] is False else None
        table.add_row(*(cells[c] for c in cols), style=style)
    return table


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a GitHub markdown table (the same columns)."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(table_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def crossover_markdown(cx: Sequence[dict[str, Any]]) -> str:
    lines = ["| layer | backend | N | F(m,r) | dense product ms | sparse product ms by density | "
             "crossover (product) | crossover (total) | model crossover (sparse=\"auto\") |", "|---|---|---|---|---|---|---|---|---|"]
    for c in cx:
        sp = ", ".join(f"{d}: {t:.3g}" for d, t in sorted(c["sparse_product_ms"].items(), key=lambda kv: -float(kv[0])))
        lines.append(f"| {c['layer']} | {c['backend']} | {c['N']} | {c['F']} | {c['dense_product_ms']:.3g} | {sp} | "
                     f"{c['crossover_density']} | {c['total_crossover_density']} | {c['model_crossover_density']} |")
    return "\n".join(lines) + "\n"


def model_markdown(mod: dict[str, Any]) -> str:
    """The ``--model`` section: network totals and per-precision estimated rows, and the
    measured/estimated ratios when measured."""
    from . import perfmodel

    text = f"\n### ESTIMATES on {mod['gpu']} (speed-of-light model, not measured)\n\n"
    text += perfmodel.markdown_report(mod["rows"], mod["gpu"]) if mod["rows"] else "(no 2D layer selected)\n"
    if mod["ratios"]:
        lines = ["", "| layer | N | F(m,r) | precision | density | measured ms | estimated ms | measured/estimated | "
                 "input | product | output |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for q in mod["ratios"]:
            pr = q["phase_ratio"]
            cells = " | ".join(f"{pr[k]:.2f}" if k in pr else "-" for k in ("input", "product", "output"))
            lines.append(f"| {q['layer']} | {q['N']} | {q['F']} | {q['precision']} | {q['density']:g} | "
                         f"{q['measured_ms']:.3g} | {q['estimated_ms']:.3g} | {q['ratio']:.2f} | {cells} |")
        text += "\n".join(lines) + "\n"
    return text


# --------------------------------------------------------------------------- kernel facts


def kernel_facts(archs: Sequence[str] = ("80", "90")) -> dict[str, Any]:
    """Static kernel facts (registers, spills, smem, occupancy) from tools/kernel_report.py.

    Needs a source checkout (tools/ next to the package) and nvcc; returns
    ``{"skipped": reason}`` otherwise.  Compiles kernels/magma_wino.cu (~20 s per arch).
    """
    root = Path(__file__).resolve().parents[1]
    tool = root / "tools" / "kernel_report.py"
    if not tool.exists():
        return {"skipped": f"{tool} not found (needs a source checkout)"}
    nvcc = shutil.which("nvcc") or os.environ.get("CUDACXX") or "/usr/local/cuda/bin/nvcc"
    if not Path(nvcc).exists():
        return {"skipped": "nvcc not found"}
    spec = importlib.util.spec_from_file_location("_mw_kernel_report", tool)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    try:
        rows = mod.compile_report(list(archs), nvcc, root / "kernels" / "magma_wino.cu")
    except (SystemExit, Exception) as exc:  # nvcc failed
        return {"skipped": f"kernel report failed: {exc}"}
    spills = sum(1 for r in rows if r["spill_stores"] or r["spill_loads"])
    return {"nvcc": nvcc, "archs": list(archs), "rows": rows, "instantiations": len(rows),
            "with_spills": spills}


# --------------------------------------------------------------------------- a run of parsed options
# (the options themselves: magma_wino.cli.bench, ``magma-wino bench``)


#: ``--quick``: one layer per network family (N = 1, densities 1, 0.25, 0; 3D only m ≤ 4).
QUICK_LAYERS = {"vgg16": ("conv5_1",), "resnet18": ("conv5_1*",), "c3d": ("conv5a",)}


def _parse_scale(s: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in str(s).lower().replace(":", "x").split("x")]
    except ValueError as exc:
        raise SystemExit(f"--scale: expected CxS such as 8x4, got {s!r}") from exc
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise SystemExit(f"--scale: expected CxS with positive integers, got {s!r}")
    return parts[0], parts[1]


def default_backends() -> list[str]:
    """cuda when a GPU is usable (and the CUDA extension is built), else numpy + emulator."""
    if _backend.cuda_available():
        return ["cuda"]
    out = ["numpy"]
    if _backend.extension("emulator", required=False) is not None:
        out.append("emulator")
    return out


def selected_layers(args: argparse.Namespace) -> list[Layer]:
    """The layers of ``--network``, filtered by ``--layers`` and ``--quick``."""
    layers = network_layers(args.network)
    if args.layers:
        layers = [lay for lay in layers if any(s in lay.name for s in args.layers)]
    if args.quick:
        layers = [lay for lay in layers if lay.name.split("/")[0] in QUICK_LAYERS.get(lay.network, ())]
    return layers


def model_precisions(args: argparse.Namespace, rows: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The precision modes of the ``--model`` rows: with ``--precision auto`` alone (the
    default) every mode of ``precision.MODES`` (read at run time) the model has for
    ``--dtype``; else the modes given (auto: what a plan on an sm_80+ GPU resolves it to,
    tf32x3 / fp64); plus the mode of every measured cuda row, so each gets its ratio."""
    from . import perfmodel

    given = list(dict.fromkeys(getattr(args, "precision", None) or ["auto"]))
    auto = "fp64" if args.dtype == "float64" else "tf32x3"
    if given == ["auto"]:
        modes = perfmodel.default_precisions(args.dtype)
    else:
        modes = [auto if p == "auto" else p for p in given]
    modes += [r["precision"] for r in rows if r.get("backend") == "cuda" and r.get("precision")]
    return [p for p in dict.fromkeys(modes) if p in perfmodel.PRECISIONS]


def _model_key(r: dict[str, Any]) -> tuple:
    """The estimated row a measured row is compared with: sparse rows run the SIMT CSR product
    whatever the mode, so they meet the model's fp32 / fp64 sparse rows."""
    prec = r.get("precision")
    if r.get("product") == "sparse" or r.get("density", 1.0) < 1.0:
        prec = "fp64" if r.get("dtype") == "float64" else "fp32"
    algorithm = {"fused": "fused", "backward": "backward"}.get(r.get("product"), "three-phase")  # no backward model
    return (r["network"], r["layer"], r["N"], r["m"], float(r["density"]), prec, algorithm)


def model_estimates(args: argparse.Namespace, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``--model GPU``: ESTIMATED rows (magma_wino.perfmodel) for the run's 2D layers, batches,
    tiles and densities, one set per precision mode (:func:`model_precisions`), the network
    totals, and the measured/estimated ratio (total and per phase) of every measured cuda row."""
    from . import perfmodel

    layers = [lay for lay in selected_layers(args) if lay.ndim == 2]
    precisions = model_precisions(args, rows)
    est = perfmodel.layer_rows(layers, args.batch, args.tile, precisions, args.density, args.model,
                              algorithms=perfmodel.ALGORITHMS)
    key = {(e["network"], e["layer"], e["N"], e["m"], float(e["density"]), e["precision"],
            e.get("algorithm", "three-phase")): e for e in est}
    ratios = []
    for r in rows:
        if r.get("backend") != "cuda" or r.get("m") is None or r.get("scaled_from"):
            continue
        e = key.get(_model_key(r))
        if e is None:
            continue
        ratios.append({"layer": r["layer"], "N": r["N"], "F": r["F"], "density": r["density"],
                       "precision": r.get("precision"), "estimated_precision": e["precision"],
                       "measured_ms": r["ms"], "estimated_ms": e["ms"], "ratio": r["ms"] / e["ms"],
                       "phase_ratio": {k: r["phase_ms"][k] / e["phase_ms"][k] for k in (e.get("phase_ms") or {})
                                       if k in (r.get("phase_ms") or {})},
                       "binding": e["binding"]})
    return {"gpu": args.model, "label": perfmodel.LABEL, "legend": perfmodel.LEGEND,
            "cudnn_efficiency": perfmodel.CUDNN_EFFICIENCY, "precisions": precisions,
            "rows": est, "totals": perfmodel.network_totals(est), "ratios": ratios}


def plan_jobs(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The (layer, backend, N) jobs of a run, and the skipped ones (with the reason)."""
    backends = args.backend or default_backends()
    if "all" in backends:
        backends = default_backends() if not _backend.cuda_available() else ["cuda", "numpy", "emulator"]
    if "cuda" in backends and not _backend.cuda_available():
        raise SystemExit(f"--backend cuda: no usable CUDA GPU ({_backend.cuda_unavailable_reason()}); "
                         "use --backend numpy emulator")
    layers = selected_layers(args)
    ch, sp = _parse_scale(args.scale)
    itemsize = np.dtype(args.dtype).itemsize
    jobs, skipped = [], []
    for be in backends:
        for lay in layers:
            run_lay, src = (lay.scaled(ch, sp), lay) if be == "emulator" else (lay, None)
            if src is not None and run_lay == lay:
                src = None
            batches = args.emulator_batch if be == "emulator" else args.batch
            for N in batches:
                # worst case over the tiles: F(2,3) has the largest V, M per output
                out = tuple(s for s in run_lay.spatial)
                alpha = min(args.tile) + run_lay.r - 1
                P = N * math.prod(math.ceil(o / min(args.tile)) for o in out)
                est = (alpha**run_lay.ndim * (run_lay.C + run_lay.K) * P
                       + N * run_lay.C * math.prod(out)
                       + run_lay.C * run_lay.r**run_lay.ndim * N * math.prod(out)) * itemsize / MIB
                job = {"layer": run_lay, "scaled_from": src, "backend": be, "N": N, "est_mib": est}
                if est > args.max_workspace_mib:
                    skipped.append({"network": lay.network, "layer": lay.name, "backend": be, "N": N,
                                    "reason": f"estimated {est:.0f} MiB > --max-workspace-mib {args.max_workspace_mib:g}"})
                else:
                    jobs.append(job)
    return jobs, skipped


def collect(args: argparse.Namespace, command: str = "magma-wino bench") -> dict[str, Any]:
    """Run the benchmark described by ``args``; the JSON-ready result."""
    if args.quick:
        args.batch = [1]
        args.density = [1.0, 0.25, 0.0]
        args.repeat = args.repeat or 2
    densities = sorted(set(args.density), reverse=True)
    for d in densities:
        if not 0.0 <= d <= 1.0:
            raise SystemExit(f"--density: {d} is not in [0, 1]")
    if getattr(args, "model_only", False) and not getattr(args, "model", None):
        raise SystemExit("--model-only needs --model GPU (a100, h100, h200)")
    jobs, skipped = ([], []) if getattr(args, "model_only", False) else plan_jobs(args)
    dtype = np.dtype(args.dtype)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []

    def tiles_of(job):
        if args.quick and job["layer"].ndim == 3:
            return [m for m in args.tile if m <= 4] or args.tile[:1]
        return list(args.tile)

    precisions = list(dict.fromkeys(getattr(args, "precision", None) or ["auto"]))
    refused: dict[str, int] = {}

    def n_rows(job):
        per_tile = len(precisions) * (2 if args.backward else 1) + (0 if job["backend"] == "numpy" else len(densities))
        nb = 0 if args.no_baselines or job["backend"] == "emulator" else (2 if job["backend"] == "cuda" else 1)
        return per_tile * len(tiles_of(job)) + nb

    total = sum(n_rows(j) for j in jobs)
    progress = None
    if not args.no_progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), transient=True)
    ctx = progress if progress is not None else _Null()
    with ctx:
        task = progress.add_task("bench", total=total) if progress is not None else None
        for job in jobs:
            lay = job["layer"]
            if progress is not None:
                progress.update(task, description=f"{job['backend']:8s} {lay.network}/{lay.name} N={job['N']}")
            repeat = args.repeat or (20 if job["backend"] == "cuda" else 5)
            rows += bench_layer(lay, job["N"], job["backend"], tiles_of(job), densities, dtype, repeat,
                                args.check_window, args.seed,
                                baselines=not args.no_baselines and job["backend"] != "emulator",
                                scaled_from=job["scaled_from"],
                                tick=(lambda: progress.advance(task)) if progress is not None else None,
                                precisions=precisions, refused=refused, backward=args.backward)
    result = {
        "schema": "magma_wino.bench/1",
        "meta": _meta(args, command, time.perf_counter() - t0),
        "rows": rows,
        "crossover": crossovers(rows),
        "skipped": skipped,
        "refused_precision": [{"reason": k, "rows": v} for k, v in refused.items()],
    }
    if getattr(args, "model", None):
        result["model"] = model_estimates(args, rows)
    if args.kernels:
        result["kernels"] = kernel_facts()
    return result


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meta(args: argparse.Namespace, command: str, seconds: float) -> dict[str, Any]:
    meta = {
        "command": command, "version": __version__, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "numpy": np.__version__, "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
        "dtype": args.dtype, "precisions": list(getattr(args, "precision", None) or ["auto"]),
        "tiles": list(args.tile), "batches": list(args.batch), "densities": list(args.density),
        "scale_emulator": args.scale, "repeat": args.repeat, "check_window": args.check_window,
        "timing": "median of --repeat calls after one warm-up; CPU time.perf_counter, GPU CUDA events",
        "gflops": "effective: direct-convolution FLOPs 2*N*K*C*prod(out)*r^nd / time",
        "error": "max|y-y_ref|/max|y_ref| vs float64 (direct conv for dense and baselines; "
                 "winograd_conv_from_U of the pruned U for sparse rows) on error_subset",
        "seconds": seconds,
    }
    if _backend.cuda_available():
        cp = _backend.cupy_module()
        try:
            props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
            meta["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            meta["cuda_runtime"] = cp.cuda.runtime.runtimeGetVersion()
        except Exception:
            meta["gpu"] = "unknown"
    else:
        meta["gpu"] = None
    return meta
