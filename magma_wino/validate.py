"""The kernel validation suite (``magma-wino validate``).

Runs every kernel family — the specialised and generic tile transforms, the dense and
sparse batched products, 2D and 3D, float32 and float64, the three sparse variants —
over a sweep of layer shapes and compares each result with float64 ground truth:

- dense and spatially pruned layers against :func:`reference.conv2d_direct` /
  ``conv3d_direct`` (direct convolution in float64);
- Winograd-domain pruned and Winograd-ReLU layers against the float64 formula of their
  variant, :func:`reference.winograd_conv_from_U` (their parameters *are* U).

Shapes: VGG-16 and ResNet 3×3 layers (scaled down for the emulator), sizes that straddle
every tile edge of the product kernels (BLK−1, BLK, BLK+1 in K and in P = N·tiles) and
spatial sizes that are not multiples of m.  Outputs are pre-filled with NaN so an
unwritten element fails.  The error is max|y − y_ref| / max|y_ref| and the bound is
:func:`magma_wino.accuracy.tolerance` (per dtype, F(m, r) and reduction length; for the
Winograd-domain variants :func:`magma_wino.accuracy.tolerance_from_U`, from their U and x;
for dense plans whose products round their operands — tf32, fp16, bf16 —
:func:`magma_wino.precision.tolerance`, the operand-rounding model of
:func:`magma_wino.accuracy.tolerance_tf32` at the mode's unit roundoff; 16-bit data adds one
unit of its own roundoff for the rounding of y).  Every
failing case is printed with its shapes and seed so it can be replayed.

Precision: every case has a requested ``precision`` (default "auto"); the table and the JSON
show the mode the plan resolved it to (``plan.precision``).  The "precision" group runs each
specialised tile in fp32 and tf32x3, and in tf32 / fp16 / bf16 where
:mod:`magma_wino.precision` accepts them without ``allow_inaccurate``; the "half data" group
runs float16 (and, off cuda, bfloat16) data in "auto".  ``--precision MODE`` runs every plan
in MODE, dropping the cases MODE does not apply to (dtype, or a tile too inaccurate for it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import _backend, reference
from . import precision as _precision
from .layer import WinogradConv2d, WinogradConv3d
from .sparse import BSR_BLOCK

__all__ = ["Case", "Result", "cases", "run_case"]

#: 3×3 layers (C, K, H) of VGG-16 and ResNet-18/50, before scaling.
VGG16 = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56),
         (256, 256, 56), (256, 512, 28), (512, 512, 28), (512, 512, 14)]
RESNET = [(64, 64, 56), (128, 128, 28), (256, 256, 14), (512, 512, 7)]
SPECIALIZED_2D = [(2, 3), (4, 3), (6, 3), (2, 5)]
GENERIC_2D = [(3, 3), (3, 2), (4, 5)]
SPECIALIZED_3D = [(2, 3), (4, 3)]
DENSITIES = [1.0, 0.5, 0.25, 0.1, 0.05, 0.0]
#: The Winograd-domain variants (U is the parameter) and, of them, the structured ones: their
#: ``from_winograd(structure=...)``, which is also the product they must run.
STRUCTURES = {"winograd_block": "block", "winograd_block32": "block", "winograd_2:4": "2:4"}
#: The block shape of each block-sparse variant (the kernel's two block heights).
_STRUCTURE_BLOCK = {"winograd_block": (16, 8), "winograd_block32": (32, 8)}
#: The modes whose kernels run them (tensor cores; sparse tensor cores).
_STRUCTURE_MODES = {"winograd_block": ("tf32x3", "tf32", "fp16", "bf16", "fp64"),
                    "winograd_block32": ("tf32x3", "tf32", "fp16", "bf16", "fp64"),
                    "winograd_2:4": ("tf32x3", "tf32", "fp16", "bf16")}
WINOGRAD_VARIANTS = ("winograd", "winograd_relu", *STRUCTURES)


@dataclass(frozen=True)
class Case:
    """One validation case; ``str(case)`` is enough to replay it."""

    group: str
    m: int
    r: int
    N: int
    C: int
    K: int
    size: tuple[int, ...]
    padding: int
    dtype: str = "float32"
    # dense | generic | spatial | winograd | winograd_relu | winograd_block | winograd_block32 | winograd_2:4
    variant: str = "dense"
    density: float = 1.0
    seed: int = 0
    precision: str = "auto"  # requested; the plan resolves it (Result.precision)
    fused: bool | None = None  # the plan's fused= (None: the model chooses per shape)
    layout: str | None = None  # None (channels first) or "NHWC" (2D dense cases)
    relu: str | None = None  # the input ReLU of dense cases: None, "spatial", "winograd"
    backward: bool = False  # plan.backward's dx and dw (dU) instead of the forward's y
    output_relu: bool = False  # y = ReLU(conv + bias) (backward cases)
    kernel: tuple[int, ...] | None = None  # a rectangular filter (r = its longest axis), else r^nd

    @property
    def ndim(self) -> int:
        return len(self.size)

    def describe(self) -> str:
        sz = "x".join(map(str, self.size))
        more = "".join([f" kernel={'x'.join(map(str, self.kernel))}" if self.kernel else "",f" {self.layout}" if self.layout else "",
                        f" relu={self.relu}" if self.relu else "",
                        " output_relu" if self.output_relu else "",
                        " backward" if self.backward else "",
                        {None: "", True: " fused", False: " three-phase"}[self.fused]])
        return f"N={self.N} C={self.C} K={self.K} {sz} pad={self.padding}{more}"


@dataclass
class Result:
    case: Case
    error: float
    bound: float
    seconds: float
    ok: bool
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    precision: str = ""  # the plan's resolved mode ("" when the plan was not built)


def _scale_layer(c: int, k: int, h: int, cdiv: int, sdiv: int) -> tuple[int, int, int]:
    return max(3, c // cdiv), max(4, k // cdiv), max(6, h // sdiv)


#: The concrete modes ``--precision`` can select ("auto": each case's own).
PRECISION_CHOICES = ("auto", "fp32", "tf32x3", "tf32", "fp16", "bf16", "fp64")


def precision_applies(mode: str, dtype: str, m: int, r: int, ndim: int) -> bool:
    """Whether ``precision.resolve`` accepts ``mode`` for this dtype and F(m, r) without
    ``allow_inaccurate`` (the device capability is checked when the plan is built)."""
    try:
        _precision.resolve(mode, dtype, "emulator", m, r, ndim)
    except ValueError:
        return False
    return True


def cases(quick: bool = False, backend: str = "emulator", precision: str = "auto") -> list[Case]:
    """The sweep.  ``quick`` (or the emulator) scales the network layers down.  ``precision``
    other than "auto": every plan in that mode, without the cases it does not apply to."""
    small = quick or backend == "emulator"
    cdiv, sdiv = (8, 8) if quick else ((2, 4) if small else (1, 1))
    out: list[Case] = []
    seed = 0

    def add(**kw: Any) -> None:
        nonlocal seed
        seed += 1
        out.append(Case(seed=seed, **kw))

    # Network layers, every specialised tile, both dtypes.
    layers = VGG16[:4] + RESNET[:2] if quick else VGG16 + RESNET
    for i, (c, k, h) in enumerate(layers):
        C, K, H = _scale_layer(c, k, h, cdiv, sdiv)
        group = "vgg16" if i < (4 if quick else len(VGG16)) else "resnet"
        for m, r in SPECIALIZED_2D:
            dts = ("float32", "float64") if (m, r) == (4, 3) else ("float32",)
            for dt in dts:
                add(group=group, m=m, r=r, N=1, C=C, K=K, size=(H, H + 1), padding=(r - 1) // 2, dtype=dt)
    # Tile edges of the dense product (BLK_M = 16/32/64 over K, BLK_N = 32/64 over P) and
    # spatial sizes off the multiples of m.
    edge_k = [15, 16, 17, 31, 33, 63, 64, 65] if not quick else [15, 17, 33, 63, 65]
    for K in edge_k:
        # C = 5 takes the scalar loads of the product, C = 8 the 16-byte vector loads.
        add(group="tile-edge K", m=2, r=3, N=1, C=5, K=K, size=(16, 16), padding=1)  # P = 64
        add(group="tile-edge K vec", m=2, r=3, N=1, C=8, K=K, size=(16, 16), padding=1)
        if not quick:
            add(group="tile-edge K vec", m=2, r=3, N=1, C=8, K=K, size=(16, 16), padding=1, dtype="float64")
    for (H, W) in [(14, 18), (16, 16), (10, 26), (6, 62), (7, 9), (1 + 2, 1 + 2)]:
        add(group="tile-edge P", m=2, r=3, N=1, C=4, K=7, size=(H, W), padding=1)
    for m, r in SPECIALIZED_2D:
        add(group="odd sizes", m=m, r=r, N=2, C=3, K=5, size=(m * 2 + 1, m * 3 - 1), padding=r - 1, dtype="float64")
    # Generic path: any F(m, r), with and without a specialised twin.
    for m, r in GENERIC_2D + ([] if quick else [(4, 3), (5, 3)]):
        for dt in ("float32", "float64"):
            add(group="generic", m=m, r=r, N=1, C=6, K=9, size=(11, 13), padding=r // 2, dtype=dt, variant="generic")
    # Sparse variants at every density, through the batched sparse product.
    for d in DENSITIES:
        add(group="winograd-pruned", m=4, r=3, N=1, C=12, K=20, size=(12, 14), padding=1, variant="winograd", density=d)
    for d in ([0.5, 0.1] if quick else [1.0, 0.5, 0.1]):
        add(group="winograd-relu", m=4, r=3, N=1, C=12, K=20, size=(12, 14), padding=1, variant="winograd_relu",
            density=d)
        add(group="spatial-pruned", m=2, r=3, N=1, C=12, K=20, size=(12, 14), padding=1, variant="spatial", density=d)
    add(group="winograd-pruned", m=2, r=3, N=2, C=40, K=70, size=(9, 9), padding=1, variant="winograd", density=0.25,
        dtype="float64")
    # 3D: specialised and generic, dense and sparse.
    for m, r in SPECIALIZED_3D:
        add(group="3d", m=m, r=r, N=1, C=4, K=6, size=(5, 7, 6), padding=1)
        add(group="3d", m=m, r=r, N=1, C=4, K=6, size=(6, 5, 7), padding=1, dtype="float64")
        add(group="3d sparse", m=m, r=r, N=1, C=6, K=8, size=(5, 6, 5), padding=1, variant="winograd", density=0.3)
    add(group="3d generic", m=3, r=3, N=1, C=3, K=4, size=(5, 5, 6), padding=1, variant="generic")
    # Rectangular tiles F(m_h×m_w, r_h×r_w) (the generic kernels, one matrix set per axis):
    # Inception's 1×3 / 3×1 / 1×7, two-sided rectangles, and a 3D one.
    rect = [((1, 3), 4), ((3, 1), 4), ((1, 7), 4), ((3, 5), 2), ((5, 3), 4)]
    for kernel, m in rect[:3] if quick else rect:
        for dt in ("float32", "float64"):
            add(group="rectangular", m=m, r=max(kernel), kernel=kernel, N=2, C=6, K=7, size=(11, 13), padding=1,
                dtype=dt)
    add(group="rectangular", m=2, r=3, kernel=(1, 3, 3), N=1, C=3, K=4, size=(5, 6, 7), padding=1)
    if not quick:
        c3d = [(64, 128, 56), (128, 256, 28), (256, 256, 28)]
        for c, k, h in c3d:
            C, K, H = _scale_layer(c, k, h, 16, 8)
            add(group="c3d", m=2, r=3, N=1, C=C, K=K, size=(4, H, H), padding=1)
    # Precision modes of the dense product (float32 data): fp32 and tf32x3 on every
    # specialised tile, tf32 / fp16 / bf16 where precision.py accepts them (their measured
    # error within the usable limit).
    for (m, r), size in [(mr, (10, 11)) for mr in SPECIALIZED_2D] + [((2, 3), (5, 6, 5))]:
        for mode in ("fp32", "tf32x3", "tf32", "fp16", "bf16"):
            if precision_applies(mode, "float32", m, r, len(size)):
                add(group="precision", m=m, r=r, N=1, C=8, K=6, size=size, padding=(r - 1) // 2, precision=mode)
    # 16-bit data (float16; bfloat16 through ml_dtypes off cuda): "auto" picks the data's own
    # 16-bit mode where it is accurate enough; y comes back in the data dtype.
    half = ["float16"] + (["bfloat16"] if backend != "cuda" and _precision.BFLOAT16 is not None else [])
    for dt in half:
        for (m, r), size in [((2, 3), (9, 10)), ((4, 3), (10, 11)), ((2, 3), (5, 6, 5))]:
            add(group="half data", m=m, r=r, N=1, C=8, K=6, size=size, padding=1, dtype=dt)
    # The other rounding modes on float16 data where they are usable (tf32 F(2, 3); bf16
    # F(2, 3) in 3D), so that validate runs their kernels without allow_inaccurate — on the cuda
    # backend too, where bfloat16 arrays do not exist.
    for mode in ("tf32", "bf16"):
        for size in ((9, 10), (5, 6, 5)):
            if precision_applies(mode, "float16", 2, 3, len(size)):
                add(group="half data", m=2, r=3, N=1, C=8, K=6, size=size, padding=1, dtype="float16",
                    precision=mode)
    # The fused kernels (docs/fused.md): every mode, layout and input ReLU for F(2,3) and F(4,3),
    # on shapes off every block multiple (H, W not multiples of m; C, K, P off BC, BK, BP), then
    # the block edges: C below one chunk, P below one block, K one past a block.
    if backend != "numpy":
        for m in (2, 4):
            modes = [(mode, "float32") for mode in ("fp32", "tf32x3", "tf32", "fp16", "bf16")
                     if precision_applies(mode, "float32", m, 3, 2)] + [("fp64", "float64")]
            if precision_applies("fp16", "float16", m, 3, 2):
                modes.append(("fp16", "float16"))
            for mode, dt in modes:
                for layout in (None, "NHWC"):
                    for relu in (None, "spatial", "winograd"):
                        add(group="fused", m=m, r=3, N=2, C=11, K=19, size=(9, 7), padding=1, dtype=dt,
                            precision=mode, fused=True, layout=layout, relu=relu)
            # C = 24: U rows whole 16-byte vectors (the staging's fast path) over three chunks
            for N, C, K, size, pad in [(1, 3, 5, (4, 4), 1), (1, 1, 1, (3, 3), 0), (3, 21, 33, (6, 5), 2),
                                       (1, 17, 40, (23, 9), 1), (1, 24, 33, (9, 10), 1)]:
                add(group="fused edges", m=m, r=3, N=N, C=C, K=K, size=size, padding=pad, precision="tf32x3",
                    fused=True)
    # Structured sparsity on tensor cores (docs/sparse.md): block-sparse U at densities 1 -> 0 (empty
    # blocks, rows and positions) in 16 x 8 and 32 x 8 blocks, and 2:4 U, in every tensor-core mode
    # that applies, on shapes off the blocks (K = 37: a partial block row of either height), the
    # 64-wide tiles and the k steps.
    for mode, dt in [(p, "float32") for p in ("tf32x3", "tf32", "fp16", "bf16")] + [("fp64", "float64")]:
        for m in (2, 4):
            if not precision_applies(mode, dt, m, 3, 2):
                continue
            for d in ((1.0, 0.3, 0.0) if quick else (1.0, 0.5, 0.3, 0.1, 0.0)):
                add(group="block-sparse", m=m, r=3, N=1, C=20, K=37, size=(9, 11), padding=1, dtype=dt,
                    variant="winograd_block", density=d, precision=mode)
            for d in ((0.3,) if quick else (1.0, 0.3, 0.0)):
                add(group="block-sparse", m=m, r=3, N=1, C=20, K=37, size=(9, 11), padding=1, dtype=dt,
                    variant="winograd_block32", density=d, precision=mode)
            if mode != "fp64":
                add(group="2:4", m=m, r=3, N=1, C=44, K=21, size=(9, 11), padding=1, dtype=dt,
                    variant="winograd_2:4", density=0.5, precision=mode)
    # The backward (plan.backward): spatial weights against the direct convolution's gradients,
    # Winograd-domain weights (a mask, Winograd-ReLU) against the float64 adjoint formula.
    for m, r in SPECIALIZED_2D + [(3, 2)]:
        for dt in ("float32", "float64"):
            add(group="backward", m=m, r=r, N=2, C=5, K=7, size=(2 * m + 3, 3 * m - 1), padding=(r - 1) // 2,
                dtype=dt, backward=True)
    for relu in (None, "spatial"):
        add(group="backward", m=4, r=3, N=1, C=6, K=5, size=(9, 10), padding=1, dtype="float64", relu=relu,
            backward=True)
    add(group="backward", m=2, r=3, N=1, C=3, K=4, size=(5, 6, 7), padding=1, backward=True)
    add(group="backward", m=4, r=3, N=2, C=5, K=6, size=(9, 7), padding=1, layout="NHWC", backward=True)
    add(group="backward", m=2, r=3, N=1, C=4, K=5, size=(8, 9), padding=1, dtype="float64", output_relu=True,
        backward=True)
    for variant, d in (("winograd", 0.5), ("winograd_relu", 0.3), ("winograd", 0.15)):  # 0.15: the CSR product
        add(group="backward", m=4, r=3, N=2, C=6, K=9, size=(11, 9), padding=1, variant=variant, density=d,
            dtype="float64", backward=True)
    if precision != "auto":
        out = [c if c.group == "precision" else replace(c, precision=precision) for c in out
               if (c.group != "precision" or c.precision == precision)
               and precision_applies(precision, c.dtype, c.m, c.r, c.ndim)
               and precision in _STRUCTURE_MODES.get(c.variant, (precision,))]
    return out


def run_backward_case(case: Case, backend: str) -> Result:
    """plan.backward on ``backend`` against float64 gradients: the direct convolution's for
    spatial weights (``conv_direct_backward``), the adjoint formula Oᵀ(dy)·Vᵀ (masked) for
    Winograd-domain weights, bounded by ``plan._gradient_tolerances`` (the forward's model at
    the backward's reduction lengths)."""
    from .accuracy import rel_err  # noqa: PLC0415

    rng = np.random.default_rng(case.seed)
    dt = np.dtype(case.dtype)
    nd = case.ndim
    xp = _backend.cupy_module() if backend == "cuda" else np
    x64 = rng.standard_normal((case.N, case.C, *case.size)).astype(dt).astype(np.float64)
    w64 = rng.standard_normal((case.K, case.C, *(case.r,) * nd)).astype(dt).astype(np.float64)
    plan_cls = WinogradConv2d if nd == 2 else WinogradConv3d
    t0 = time.perf_counter()
    b64 = rng.standard_normal(case.K).astype(dt).astype(np.float64)
    if case.variant == "dense":
        plan = plan_cls(xp.asarray(w64.astype(dt)), xp.asarray(b64.astype(dt)), case.padding, case.m, backend,
                        relu=case.relu, precision=case.precision, layout=case.layout, output_relu=case.output_relu)
    else:
        U64 = reference.filter_transform(w64, case.m)
        plan = plan_cls.from_winograd(xp.asarray(U64.astype(dt)), case.r, prune=case.density, padding=case.padding,
                                      m=case.m, backend=backend, precision=case.precision, sparse="auto",
                                      relu="winograd" if case.variant == "winograd_relu" else None)
    y_first = (case.N, case.K, *(s + 2 * case.padding - case.r + 1 for s in case.size))  # channels first
    dy64 = rng.standard_normal(y_first).astype(dt).astype(np.float64)

    def last(a):  # channels first -> the plan's channels-last layout
        return a if case.layout is None else np.ascontiguousarray(a.transpose(0, *range(2, a.ndim), 1))

    g = plan.backward(xp.asarray(last(x64).astype(dt)), xp.asarray(last(dy64).astype(dt)))
    dx, dw = (_backend.to_host(a) for a in (g.grad_input, g.grad_weight))
    if case.layout is not None:
        dx = dx.transpose(0, nd + 1, *range(1, nd + 1))
    seconds = time.perf_counter() - t0
    extra: dict[str, Any] = {"sparse_product": plan.uses_sparse_product}
    if case.variant == "dense":
        xin = np.maximum(x64, 0) if case.relu == "spatial" else x64
        if case.output_relu:  # dy reaches the convolution only where y > 0
            conv = reference.conv2d_direct if nd == 2 else reference.conv3d_direct
            dy64 = dy64 * (conv(xin, w64, b64, case.padding) > 0)
        dx_ref, dw_ref = reference.conv_direct_backward(xin, w64, dy64, case.padding)
        if case.relu == "spatial":
            dx_ref *= x64 > 0
    else:
        mask = _backend.to_host(plan.mask)
        relu = case.variant == "winograd_relu"
        V = reference.input_transform(x64, case.m, case.r, case.padding, relu=relu)
        dM = reference.output_transform_adjoint(dy64, case.m, case.r)
        dw_ref = np.matmul(dM, V.transpose(0, 2, 1)) * mask
        dV = np.matmul((_backend.to_host(plan.U).astype(np.float64)).transpose(0, 2, 1), dM)
        dx_ref = reference.input_transform_adjoint(dV * (V > 0) if relu else dV, case.m, case.r, x64.shape,
                                                   case.padding)
    tol_dx, tol_dw = plan._gradient_tolerances(last(x64).shape)
    parts = [(rel_err(dx, dx_ref), tol_dx), (rel_err(dw, dw_ref), tol_dw)]
    err, bound = max(parts, key=lambda eb: eb[0] / eb[1])  # the part closest to its bound
    ok = all(math.isfinite(e) and e <= b for e, b in parts)
    extra.update(dx_err=parts[0][0], dw_err=parts[1][0])
    return Result(case, err, bound, seconds, ok, extra=extra, precision=plan.precision)


def run_case(case: Case, backend: str) -> Result:
    """Run one case on ``backend`` and compare with its float64 ground truth."""
    from .accuracy import rel_err, tolerance, tolerance_from_U  # noqa: PLC0415  (light CLI import)

    if case.backward:
        return run_backward_case(case, backend)

    rng = np.random.default_rng(case.seed)
    dt = np.dtype(_precision.BFLOAT16 if case.dtype == "bfloat16" else case.dtype)
    nd = case.ndim
    x64 = rng.standard_normal((case.N, case.C, *case.size))
    kernel = case.kernel or (case.r,) * nd
    w64 = rng.standard_normal((case.K, case.C, *kernel))
    b64 = rng.standard_normal(case.K)
    plan_cls = WinogradConv2d if nd == 2 else WinogradConv3d
    direct = reference.conv2d_direct if nd == 2 else reference.conv3d_direct
    xp = np
    if backend == "cuda":
        xp = _backend.cupy_module()
    x, w, b = (xp.asarray(a.astype(dt)) for a in (x64, w64, b64))
    xr, wr, br = (a.astype(dt).astype(np.float64) for a in (x64, w64, b64))  # what the kernel sees
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if case.variant in ("dense", "generic"):
        try:
            plan = plan_cls(w, b, case.padding, case.m, backend, generic=case.variant == "generic",
                            precision=case.precision, relu=case.relu, fused=case.fused, layout=case.layout)
        except ValueError as exc:
            if case.fused and str(exc).startswith("fused=True:"):  # e.g. too little shared memory here
                return Result(case, 0.0, 0.0, 0.0, True, detail=f"skipped: {exc}", extra={"skipped": True})
            raise
        if case.relu == "winograd":  # ReLU of Bᵀ d B has no spatial form: the float64 formula
            y_ref = reference.winograd_conv_from_U(xr, reference.filter_transform(wr, case.m), case.m, case.r,
                                                   case.padding, br, relu=True)
        else:
            y_ref = direct(np.maximum(xr, 0) if case.relu == "spatial" else xr, wr, br, case.padding)
    elif case.variant == "spatial":
        plan = plan_cls.from_spatial(w, prune=case.density, bias=b, padding=case.padding, m=case.m,
                                     backend=backend, relu="spatial", precision=case.precision)
        from .pruning import prune_spatial  # noqa: PLC0415

        wp, _ = prune_spatial(w64.astype(dt), case.density)  # what the plan pruned
        y_ref = direct(np.maximum(xr, 0), wp.astype(np.float64), br, case.padding)
    else:
        U64 = reference.filter_transform(w64, case.m)
        U = xp.asarray(U64.astype(dt))
        relu = "winograd" if case.variant == "winograd_relu" else None
        structure = STRUCTURES.get(case.variant)
        plan = plan_cls.from_winograd(U, case.r, prune=None if structure == "2:4" else case.density, bias=b,
                                      padding=case.padding, m=case.m, backend=backend, relu=relu, sparse=True,
                                      precision=case.precision, structure=structure,
                                      block=_STRUCTURE_BLOCK.get(case.variant, BSR_BLOCK))
        Up = plan.csr.to_host().to_dense().astype(np.float64)  # the pruned U as the plan holds it
        extra["product"] = plan.product
        y_ref = reference.winograd_conv_from_U(xr, Up, case.m, case.r, case.padding, br, relu=relu is not None)
        extra["weight_density"] = plan.weight_density
    channels_last = case.layout is not None
    if channels_last:  # the plan takes and returns NHWC; compared channels-first
        x = xp.ascontiguousarray(x.transpose(0, *range(2, x.ndim), 1))
    out = xp.full(plan.out_shape(x.shape), np.nan, dtype=dt)
    y = plan(x, out=out)
    extra["algorithm"] = plan.algorithm
    if channels_last:
        y = y.transpose(0, y.ndim - 1, *range(1, y.ndim - 1))
    if backend == "cuda":
        xp.cuda.get_current_stream().synchronize()
        y = y.get()
    seconds = time.perf_counter() - t0
    err = rel_err(y, y_ref)
    n_red = case.C * math.prod(kernel)
    tm, tr = (plan._tile.m, plan._tile.r) if case.kernel else (case.m, case.r)  # a rectangular tile: per axis
    if plan.product == "csr":  # SIMT in the compute dtype whatever the mode
        bound = tolerance(_precision.compute_dtype(dt), tm, tr, n_red, nd)
    else:  # the dense product's mode (fp64; tf32 / fp16 / bf16: operand rounding, accuracy.tolerance_tf32's model)
        bound = _precision.tolerance(plan.precision, tm, tr, n_red, nd)
    if _precision.is_half(dt):  # y is rounded once more, to the data dtype: up to one unit of max|y|
        bound += _precision.UNIT_ROUNDOFF["fp16" if dt.name == "float16" else "bf16"]
    if case.variant in WINOGRAD_VARIANTS:  # U is the parameter: its own, data-aware model
        scale = float(np.abs(y_ref).max())
        from_U = tolerance_from_U(dt, xr, Up, case.m, case.r, case.padding, relu) / scale if scale > 0 else 0.0
        # the structured variants' tensor-core products in tf32 / fp16 / bf16 also round their
        # operands (the mode's model); tf32x3 and fp64 are as accurate as the float arithmetic
        rounds = case.variant in STRUCTURES and plan.precision in ("tf32", "fp16", "bf16")
        bound = max(from_U, bound) if rounds else from_U
    ok = bool(err <= bound) if math.isfinite(err) else False
    if case.variant in WINOGRAD_VARIANTS and case.density == 0.0:
        # U = 0: y must equal the bias exactly.
        ok = bool(np.all(np.asarray(y) == br.astype(dt).reshape((1, -1) + (1,) * nd)))
        err, bound = (0.0 if ok else math.inf), 0.0
    if case.variant in STRUCTURES and plan.product != STRUCTURES[case.variant]:
        ok, extra["detail"] = False, f"ran the {plan.product} product"
    if case.variant in _STRUCTURE_BLOCK and plan.bsr is not None:
        extra["block"] = plan.bsr.block
        if plan.bsr.block != _STRUCTURE_BLOCK[case.variant]:
            ok, extra["detail"] = False, f"ran blocks of {plan.bsr.block}"
    return Result(case, err, bound, seconds, ok, extra=extra, precision=plan.precision)
