"""Winograd convolution plans: transform the weights once, run ``plan(x)`` many times.

:class:`WinogradConv2d` and :class:`WinogradConv3d` hold the Winograd-domain weights U
(α^nd×K×C, dense or as a :class:`~magma_wino.sparse.BatchedCSR`) on their backend and run

    V = input transform of x        (optionally with ReLU, see ``relu``)
    M[b] = U[b] · V[b]              (batched GEMM, or batched sparse × dense)
    y = output transform of M (+ bias)

The three sparse variants of docs/sparse.md:

- spatially pruned: ``WinogradConv2d.from_spatial(w, prune=0.3, relu="spatial")`` —
  Aᵀ[(G·Prune(g)·Gᵀ) ⊙ (Bᵀ·ReLU(d)·B)]A; U is dense again after the transform.
- Winograd-domain pruned (Li, Park, Tang 2017): ``from_winograd(U, r, prune=0.3)`` or
  ``from_winograd(U, r, mask=...)`` / ``csr=...`` — Aᵀ[Prune(G g Gᵀ) ⊙ (Bᵀ d B)]A.
- Winograd-ReLU (Liu, Pool, Han, Dally 2018): the same with ``relu="winograd"`` —
  Aᵀ[Prune(G g Gᵀ) ⊙ ReLU(Bᵀ d B)]A.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any, Literal, TypeVar

import numpy as np

from . import _backend, _checks, pruning, reference
from . import precision as _precision
from .backward import BackwardMixin, Gradients, _pattern
from .errors import UnsupportedError
from .sparse import BSR_BLOCK, BSR_BLOCKS, BatchedBSR, BatchedCSR
from .sparse24 import Batched24

__all__ = ["WinogradConv2d", "WinogradConv3d", "Gradients", "PRODUCTS", "STRUCTURES"]


Relu = Literal["spatial", "winograd"] | None
Structure = Literal["block", "2:4"] | None
#: Sparsity structures of :meth:`from_winograd` (None: unstructured).
STRUCTURES = (None, "block", "2:4")
#: The batched products a plan can run (:attr:`product`).
PRODUCTS = ("dense", "csr", "block", "2:4")
_Plan = TypeVar("_Plan", bound="_WinogradConvNd")
_RELU_CODES = {None: 0, "spatial": 1, "winograd": 2}
#: Layouts of x and y per spatial rank: channels first (the default), channels last.
_LAYOUTS = {2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
#: Output tiles m of the fused kernels (2D F(m, 3), kernels/winograd_fused.cuh).
FUSED_TILES = (2, 4)


#: ``cudaStreamPerThread``: one handle that names a different stream in every host thread.
_PER_THREAD_STREAM = 2


def _overlap(engine: Any, a: Any, b: Any) -> bool:
    """Whether the memory of arrays ``a`` and ``b`` (C-contiguous, on one backend) overlaps."""
    if engine is None or engine.xp is np:
        return bool(np.shares_memory(a, b))
    pa, pb = engine.ptr(a), engine.ptr(b)
    return pa < pb + b.nbytes and pb < pa + a.nbytes


def same_stream(ptr_a: int, thread_a: int, ptr_b: int, thread_b: int) -> bool:
    """Whether stream handle ``ptr_a`` used by host thread ``thread_a`` is the same CUDA
    stream as ``ptr_b`` used by ``thread_b`` (the per-thread default stream has one handle
    for a different stream in each thread)."""
    return ptr_a == ptr_b and (ptr_a != _PER_THREAD_STREAM or thread_a == thread_b)


def _positive_int(m: object, name: str = "m") -> int:
    """``m`` as an int >= 1 (``m``, ``r``), or a TypeError / ValueError naming it."""
    if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(m).__name__}")
    if m < 1:
        raise ValueError(f"{name} must be >= 1, got {m}")
    return int(m)


def _check_relu(relu: object) -> Relu:
    if relu is not None and not (isinstance(relu, str) and relu in _RELU_CODES):
        raise ValueError(f"relu must be None, 'spatial' or 'winograd', got {relu!r}")
    return relu  # type: ignore[return-value]


class _WinogradConvNd(BackwardMixin):
    """Shared implementation of the 2D and 3D plans (``ndim`` set by the subclass)."""

    ndim: int = 2
    #: Output tile size when ``m`` is not given.
    default_m: int = 4

    def __init__(
        self,
        w: Any,
        bias: Any = None,
        padding: int | tuple[int, ...] = 0,
        m: int | None = None,
        backend: str = "auto",
        *,
        relu: Relu = None,
        points: Any = None,
        generic: bool = False,
        precision: str = "auto",
        allow_inaccurate: bool = False,
        layout: str | None = None,
        fused: bool | None = None,
        output_relu: bool = False,
        groups: int = 1,
    ) -> None:
        """Plan for spatial weights ``w`` (K×C×r×r; 3D K×C×r×r×r; K×(C/groups)×r×r grouped).

        Args:
            w: spatial weights, float32, float64 or 16-bit (float16, bfloat16: computed in
                float32, y returned in the data dtype); NumPy, CuPy or any device array.
            bias: optional (K,) array added to every output of channel k.
            padding: zero padding of any size >= 0 per side, never materialised (the kernels
                read zeros outside x): an int, one int per axis, one (lo, hi) pair per axis,
                2·ndim ints in ``torch.nn.functional.pad``'s order (last axis first), "same"
                (even r: the odd zero after, as PyTorch) or "valid".
            m: output tile size per axis: F(m, r) with r from ``w``; default
                :attr:`default_m` (4 in 2D, 2 in 3D).
            backend: "auto" (cuda for device arrays, numpy for host arrays), "cuda",
                "emulator" or "numpy".
            relu: None, "spatial" (ReLU of the input before the transform) or
                "winograd" (ReLU after the input transform, Liu et al. 2018).
            points: interpolation points for :func:`magma_wino.transforms.winograd`
                (default points use the specialised kernels, others the generic ones).
            generic: force the generic transform kernels (testing, alternative points).
            precision: what the dense products compute in — "auto" (default), "fp32",
                "tf32x3", "tf32", "fp16", "bf16" or "fp64" (docs/api.md, "Precision");
                resolved at construction into :attr:`precision`.  Sparse products run in
                float32/float64 SIMT whatever the precision.
            allow_inaccurate: run a mode whose measured error for F(m, r) exceeds the
                usable limit (else it is refused with a ValueError naming precision).
            layout: the layout of x and y: "NCHW" (default) or "NHWC" (channels last, PyTorch's
                ``channels_last``); 3D "NCDHW" or "NDHWC".  The weights are K×C×r×r either way.
            fused: None (default): per input shape, the fused kernel (docs/fused.md) when the
                speed-of-light model estimates it faster and the layer has one (2D F(2,3) or
                F(4,3), default points, dense U, a device backend); True: always fused (a
                ValueError at construction when the layer has no fused kernel); False: always
                the three phases.  :attr:`algorithm` says what the last call ran.
            output_relu: y = ReLU(conv(x) + bias) (in the fused kernel's epilogue, or after
                the output transform).
            groups: grouped convolution as PyTorch defines it (``w`` is K×(C/groups)×r×r,
                output channels k of group k // (K/groups) see input channels of that group
                only; ``groups = C``: depthwise).  The α^nd products become block-diagonal and
                run as one batched product of α^nd·groups (K/groups)×(C/groups) blocks
                (three-phase, dense; docs/limitations.md has the model's verdict).
        """
        w0, bias0 = w, bias
        w, bias = _backend.coerce(w, "w", backend), _backend.coerce(bias, "bias", backend)
        wshape = _checks.check_filter(w, self.ndim)
        self._setup(wshape[0], wshape[1], wshape[2:], bias, padding, m, backend, relu, points, generic, w,
                    bias_borrowed=bias0 is not bias, precision=precision, allow_inaccurate=allow_inaccurate,
                    layout=layout, fused=fused, output_relu=output_relu, groups=groups)
        self._csr: BatchedCSR | None = None
        self._weights_domain = "spatial"
        self._grad_mask = None
        with self._scope():
            self._U = self._filter_transform(w)
            self._keep_spatial(w)
        self._check_fused()
        # The filter transform may still be reading a foreign w when the caller drops it.
        self._mark_ready(foreign=(w0,) if w0 is not w else ())

    # ----------------------------------------------------------------- construction

    def _setup(self, K, C, r, bias, padding, m, backend, relu, points, generic, like,
               bias_borrowed: bool = False, like_name: str = "w", precision: str = "auto",
               allow_inaccurate: bool = False, layout: str | None = None, fused: bool | None = None,
               output_relu: bool = False, groups: int = 1) -> None:
        """Everything but the weights (``C``: the weights' input channels, C/groups of x's).  On the cuda backend the plan's GPU is the one
        ``like`` (the weights) lives on, whatever device is current; every array the plan
        keeps is created there or checked to be there."""
        layouts = _LAYOUTS[self.ndim]
        if layout is None:
            layout = layouts[0]
        if not isinstance(layout, str) or layout.upper() not in layouts:
            raise ValueError(f"layout must be one of {layouts} for a {self.ndim}D plan, got {layout!r}")
        #: The layout of x and y: "NCHW" / "NHWC" (3D: "NCDHW" / "NDHWC").
        self.layout = layout.upper()
        self._channels_last = self.layout == layouts[1]
        if fused is not None and not isinstance(fused, (bool, np.bool_)):
            raise TypeError(f"fused must be None, True or False, got {fused!r}")
        self._fused_request = None if fused is None else bool(fused)
        if not isinstance(output_relu, (bool, np.bool_)):
            raise TypeError(f"output_relu must be a bool, got {type(output_relu).__name__}")
        #: y = ReLU(conv(x) + bias) when True.
        self.output_relu = bool(output_relu)
        #: What the last call ran: "fused", "three-phase", or None before the first call.
        self.algorithm: str | None = None
        self._product = "dense"  # from_winograd may choose a sparse one (PRODUCTS)
        self._algorithms: dict[tuple[int, ...], str] = {}
        self._set_tile(m, r, points)
        if not isinstance(generic, (bool, np.bool_)):
            raise TypeError(f"generic must be a bool, got {type(generic).__name__}")
        groups = _positive_int(groups, "groups")
        if int(K) % groups:
            raise ValueError(f"groups={groups}: the weights' K = {K} output channels must be a multiple of groups")
        #: Grouped convolution: x's C channels and the K outputs in ``groups`` equal groups.
        self.groups = int(groups)
        #: Output channels K and input channels C (of x: groups × the weights' C/groups).
        self.K, self.C = int(K), int(C) * self.groups
        # Any zero padding >= 0 per side (never materialised: the kernels read zeros outside x).
        self._pads = _checks.as_padding(padding, self.ndim, self.r)
        #: Zero padding per axis: ints where symmetric (the common case), else (lo, hi) pairs.
        self.padding: tuple[Any, ...] = (
            tuple(lo for lo, _ in self._pads) if all(lo == hi for lo, hi in self._pads) else self._pads)
        self.relu = _check_relu(relu)
        _precision.check(precision)
        self.backend = _backend.resolve(backend, like, bias)
        dt = np.dtype(like.dtype)
        if dt not in (np.float32, np.float64) and not _precision.is_half(dt):
            raise TypeError(f"{like_name} must be float32, float64, float16 or bfloat16, got {dt}")
        #: The data dtype: x, w, bias and y.  16-bit data computes in float32 (_cdtype).
        self.dtype = dt
        self._cdtype = _precision.compute_dtype(dt)
        if self.backend == "numpy":
            self._engine = None
        else:
            self._engine = _backend.Engine(self.backend, _backend.device_of(like))
        self._device = self._engine.device if self._engine is not None else None
        #: The concrete precision mode of the dense products (see :mod:`magma_wino.precision`).
        self.precision = _precision.resolve(
            precision, dt, self.backend, self.m, max(self._tile.r), self.ndim,
            capability=getattr(self._engine, "capability", None), allow_inaccurate=allow_inaccurate,
            points=points)
        self._pending: list[Any] = []  # events of calls on streams other than the home stream
        self._borrowed: tuple[Any, ...] = ()  # views of foreign memory the plan keeps (bias, U)
        self._points = points
        use_generic = bool(generic) or points is not None
        if self._engine is not None and not use_generic:
            # square tiles with coefficients, and the 1×r / r×1 lines of one: specialised kernels
            ext = self._engine.ext
            use_generic = not ext.has_specialized_tile(ext.ConvDesc(
                self.ndim, self._tm, self.r, 1, 1, 1, self._tile.r, (0,) * self.ndim))
        self.generic = use_generic
        self._mats = None
        if self._engine is not None and use_generic:
            with self._scope():
                self._mats = self._engine.xp.asarray(self._matrices_host())
        if bias is not None:
            _checks.check_bias(bias, self.K)
            if np.dtype(bias.dtype) != self.dtype:
                raise TypeError(f"dtype mismatch: bias is {bias.dtype} but the weights are {self.dtype}")
            bias = self._array(bias, "bias")
            self._check_device(bias, "bias")
            if bias.dtype != self._cdtype:
                with self._scope():
                    bias = bias.astype(self._cdtype)  # 16-bit data: the plan's own float32 copy
            elif bias_borrowed:
                self._borrowed += (bias,)
        self.bias = bias

    def _set_tile(self, m: Any, r: Any, points: Any) -> None:
        """The tile F(m, r) of the plan: square (``r`` one int, or ndim equal ints) or
        rectangular F(m_h×m_w, r_h×r_w) (``r`` the filter's sizes per axis; an axis of one tap
        gets F(1, 1), so a 1×r filter is the 1D F(m, r) along its long axis)."""
        rs = tuple(_positive_int(q, "r") for q in r) if isinstance(r, tuple) else (_positive_int(r, "r"),) * self.ndim
        if isinstance(m, tuple):
            if len(m) != self.ndim:
                raise ValueError(f"m must be an int or {self.ndim} ints (one per axis), got {m!r}")
            ms = tuple(_positive_int(q) for q in m)
            self.m = max(ms)
        else:
            self.m = _positive_int(self.default_m if m is None else m)
            ms = reference.tile_m(self.m, rs)
        #: True for a rectangular tile (three phases: docs/limitations.md, "Rectangular tiles").
        self.rectangular = len(set(zip(ms, rs))) > 1
        if not self.rectangular:
            self.m = ms[0]
        #: The filter size: an int (square / cubic filters) or one per axis (rectangular).
        self.r = rs if self.rectangular else rs[0]
        self._tm = ms if self.rectangular else self.m  # what the references and descriptors take
        self._tile = reference._Tile(self._tm, self.r, self.ndim, points)  # validates m, r, alpha, points
        #: The 1D transform of a square tile (None for a rectangular one: :attr:`tile` per axis).
        self.transform = None if self.rectangular else self._tile.axes[0]
        #: The tile size alpha = m + r − 1 (rectangular: one per axis).
        self.alpha: Any = self._tile.alpha if self.rectangular else self._tile.alpha[0]
        #: The Winograd positions of a tile, prod(alpha per axis): the batch of the products.
        self.positions = self._tile.positions

    @property
    def tile(self) -> str:
        """The tile as text: "F(4, 3)", or "F(1×4, 1×3)" for a rectangular one."""
        return str(self._tile)

    def _matrices_host(self) -> np.ndarray:
        """Aᵀ, G, Bᵀ back to back in the compute dtype (a rectangular tile: one such set per
        axis): the ``matrices`` of the generic kernels (and of the adjoint kernels, which apply
        their transposes)."""
        sets = self._tile.matrices(self._cdtype)[: self.ndim if self.rectangular else 1]
        return np.concatenate([a.ravel() for mats in sets for a in mats]).astype(self._cdtype)

    def _filter_desc(self) -> Any:
        """The descriptor of the filter transform and its adjoint: one r^nd 'image', no padding."""
        return self._engine.ext.ConvDesc(self.ndim, self._tm, self.r, 1, self.C // self.groups, self.K,
                                         self._tile.r, (0,) * self.ndim)

    def _by_group(self, a: Any) -> Any:
        """α^nd×R×S -> (α^nd·groups)×(R/groups)×S, a view: U (K×C/g), V (C×P) and M (K×P)
        per position are ``groups`` blocks stacked along their rows, so the block-diagonal
        products are one batched product of α^nd·groups blocks (identity for groups 1)."""
        if self.groups == 1:
            return a
        b, rows, cols = (int(n) for n in a.shape)
        return a.reshape(b * self.groups, rows // self.groups, cols)

    def _by_position(self, a: Any) -> Any:
        """The inverse of :meth:`_by_group`: (α^nd·groups)×R×S -> α^nd×(R·groups)×S."""
        if self.groups == 1:
            return a
        b, rows, cols = (int(n) for n in a.shape)
        return a.reshape(b // self.groups, rows * self.groups, cols)

    def _scope(self) -> contextlib.AbstractContextManager[Any]:
        """The plan's GPU made current (a no-op on the host backends)."""
        return self._engine.scope() if self._engine is not None else contextlib.nullcontext()

    def _array(self, a: Any, name: str) -> Any:
        """``a`` on this plan's backend, C-contiguous, or a clear error."""
        if self._engine is None:
            a = _backend.as_host_array(a, name, "numpy")
        else:
            a = self._engine.asarray(a, name)
            _backend.check_contiguous(a, name)
        return a

    def _work(self, a: Any, name: str, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """A V, M or out array handed to a phase: exact shape, ``dtype`` (default the
        compute dtype), the plan's backend, device and C-contiguous, writable if it is
        written — else a clear error (the C layer trusts these sizes)."""
        want = np.dtype(self._cdtype if dtype is None else dtype)
        a = _backend.coerce(a, name, self.backend)
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise TypeError(f"{name} must be an array of shape {tuple(shape)}, got {type(a).__name__}")
        if tuple(a.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(getattr(a, 'shape', ()))}")
        if np.dtype(a.dtype) != want:
            raise TypeError(f"{name} must be {want}, got {a.dtype}")
        a = self._array(a, name)
        if isinstance(a, np.ndarray) and name == "out" and not a.flags.writeable:
            raise ValueError(f"{name} is read-only")
        self._check_device(a, name)
        return a

    def _check_device(self, a: Any, name: str) -> None:
        dev = _backend.device_of(a)
        if self._device is not None and dev is not None and dev != self._device:
            raise ValueError(f"{name} is on GPU {dev} but the plan's weights are on GPU {self._device}")

    # Streams.  The plan's state (U, the CSR, the generic matrices, bias) is produced on the
    # stream current at construction (its "home"); an event marks when it is ready, and every
    # call waits for that event on the GPU (no host block; cheap once it has completed).  A
    # call on another stream records its own event; the home stream waits for all of them
    # still pending when the plan is dropped, so CuPy's pool (which recycles U's memory on
    # the home stream) does not hand it out while such a call still reads it.

    def _mark_ready(self, foreign: tuple[Any, ...] = ()) -> None:
        self._home = self._ready = None
        self._home_thread = threading.get_ident()
        if self._device is not None:
            cp = self._engine.xp
            with self._scope():
                self._home = cp.cuda.get_current_stream()
                self._ready = cp.cuda.Event(disable_timing=True)
                self._ready.record(self._home)
            _backend.keep_alive(self._ready, foreign)

    @contextlib.contextmanager
    def _launch_scope(self, foreign: tuple[Any, ...] = ()) -> Iterator[None]:
        """Run launches on the plan's GPU and the current stream, ordered after the plan's
        construction; keep foreign input objects (and the plan's borrowed views) alive
        until the launches are done."""
        if self._device is None:
            yield
            return
        cp = self._engine.xp
        with cp.cuda.Device(self._device):
            stream = cp.cuda.get_current_stream()
            stream.wait_event(self._ready)
            try:
                yield
            finally:
                home = same_stream(self._home.ptr, self._home_thread, stream.ptr, threading.get_ident())
                held = foreign + self._borrowed
                if not home or held:
                    done = cp.cuda.Event(disable_timing=True)
                    done.record(stream)
                    if not home:
                        self._pending = [e for e in self._pending if not e.done]
                        self._pending.append(done)
                    _backend.keep_alive(done, held)

    def __del__(self) -> None:
        home = getattr(self, "_home", None)
        if home is None:
            return
        for event in getattr(self, "_pending", ()):
            try:
                home.wait_event(event)
            except Exception:  # interpreter shutdown: nothing left to protect
                pass

    @property
    def compute_dtype(self) -> np.dtype:
        """The dtype the transforms compute in and M is stored in: float64 for float64
        data, float32 for float32 and 16-bit data."""
        return self._cdtype

    @property
    def _store(self) -> str | None:
        """The 16-bit mode U and V are stored in ("fp16" / "bf16"), or None (compute dtype).
        Sparse products are SIMT in the compute dtype whatever the precision."""
        return self.precision if self.precision in _precision.HALF_MODES and self._product != "csr" else None

    @property
    def _vdtype(self) -> np.dtype:
        """The dtype of U (dense) and V: float16 / uint16 (bfloat16 bits) in a 16-bit mode."""
        return _precision.storage_dtype(self._store or "fp32", self._cdtype)

    def _storage_code(self) -> int:
        """The C ABI dtype code of U and V (MW_FLOAT16 / MW_BFLOAT16 or the compute dtype's)."""
        store = self._store
        if store is None:
            return _backend.kernel_dtype(self._cdtype, "V")
        return int(self._engine.ext.FLOAT16 if store == "fp16" else self._engine.ext.BFLOAT16)

    def _to_compute(self, a: Any) -> Any:
        """16-bit data (x, w) as the float32 the transforms compute in (a copy); else ``a``."""
        return a.astype(self._cdtype) if a.dtype != self._cdtype else a

    def _check_fp16_range(self, U: Any) -> None:
        """In "fp16", U beyond binary16's range would be infinite: refuse (the weights are
        checked once, here; V is not, see docs/api.md)."""
        if self._store == "fp16" and bool((abs(U) == np.inf).any()):
            raise ValueError(f"precision='fp16' cannot hold these weights: the Winograd-domain weights U are "
                             f"infinite in float16 (|U| > {_precision.FP16_MAX:g}, or w holds an inf); use 'bf16', "
                             f"'tf32x3' or 'fp32'")

    def _filter_transform(self, w: Any) -> Any:
        if np.dtype(w.dtype) != self.dtype:
            raise TypeError(f"w must be {self.dtype}, got {w.dtype}")
        w = self._to_compute(self._array(w, "w"))
        if self._engine is None:
            U = reference.filter_transform(w, self._tm, self._points).astype(self._cdtype, copy=False)
            if self._store is not None:
                U = _precision.to_storage(U, self._store)
        else:
            e = self._engine
            U = e.empty((self.positions, self.K, self.C // self.groups), self._vdtype)
            # computed in the compute dtype, stored as U's dtype (16 bits in fp16 / bf16)
            e.ext.filter_transform_ex(self._filter_desc(), _backend.kernel_dtype(self._cdtype, "w"), self._storage_code(),
                                      e.ptr(w), e.ptr(U), e.ptr(self._mats), e.stream())
        self._check_fp16_range(U)
        return U

    @classmethod
    def from_spatial(
        cls: type[_Plan],
        w: Any,
        *,
        prune: float | None = None,
        bias: Any = None,
        padding: int | tuple[int, ...] = 0,
        m: int | None = None,
        backend: str = "auto",
        relu: Relu = None,
        points: Any = None,
        precision: str = "auto",
        allow_inaccurate: bool = False,
        layout: str | None = None,
        fused: bool | None = None,
        output_relu: bool = False,
    ) -> _Plan:
        """The spatially pruned variant: ``w`` magnitude-pruned to density ``prune``
        (per layer) before the filter transform, which fills the zeros in again, so the
        products stay dense.  ``relu="spatial"`` gives the literature's standard layer
        Aᵀ[(G·Prune(g)·Gᵀ) ⊙ (Bᵀ·ReLU(d)·B)]A.  Pruning runs on the host (NumPy).
        """
        keep = None
        if prune is not None:
            # Coerce first (a PyTorch CUDA tensor or a DLPack-only object becomes a CuPy view),
            # and refuse non-arrays by name before pruning on the host.
            wc = _backend.coerce(w, "w", backend)
            _checks.check_filter(wc, cls.ndim)
            wp, keep = pruning.prune_spatial(_backend.to_host(wc), prune, density_name="prune")
            w = _backend.like(wp, wc)  # back where w lives (its GPU), as a new array
        plan = cls(w, bias, padding, m, backend, relu=relu, points=points, precision=precision,
                   allow_inaccurate=allow_inaccurate, layout=layout, fused=fused, output_relu=output_relu)
        if keep is not None:  # the pruned taps get zero gradient: the pattern is fixed in fine-tuning
            with plan._scope():
                plan._grad_mask = keep if plan._engine is None else plan._engine.xp.asarray(keep)
        return plan

    @classmethod
    def from_winograd(
        cls: type[_Plan],
        U: Any = None,
        r: int | None = None,
        *,
        mask: Any = None,
        csr: BatchedCSR | None = None,
        prune: float | None = None,
        per_position: bool = False,
        bias: Any = None,
        padding: int | tuple[int, ...] = 0,
        m: int | None = None,
        backend: str = "auto",
        relu: Relu = None,
        sparse: bool | Literal["auto"] = "auto",
        structure: Structure = None,
        block: tuple[int, int] = BSR_BLOCK,
        points: Any = None,
        precision: str = "auto",
        allow_inaccurate: bool = False,
        layout: str | None = None,
        fused: bool | None = None,
        output_relu: bool = False,
        groups: int = 1,
    ) -> _Plan:
        """A layer whose parameters are Winograd-domain weights (α^nd×K×C; grouped:
        α^nd×K×(C/groups)).

        Give either dense ``U`` (optionally with a boolean ``mask`` of U's shape, or
        ``prune`` = a density for magnitude pruning, per layer or ``per_position``), or a
        :class:`BatchedCSR` ``csr``.  ``r`` is the filter size the weights belong to.
        ``relu="winograd"`` makes it the Winograd-ReLU layer.

        ``structure``: None (unstructured sparsity: the batched CSR product) or "block": U
        kept or dropped in blocks of ``block`` = (16, 8) or (32, 8) output × input channels
        (32-row blocks: coarser pruning, fewer instructions per tensor-core MMA; ``prune``
        prunes by block norm, :func:`magma_wino.pruning.prune_winograd_blocks`; a ``mask`` or
        U's nonzeros are covered by the blocks that hold them), the product on tensor cores in
        the plan's precision (kernels/bsr_tc_batched.cuh; precision "fp32" runs the CSR one);
        or "2:4": of every 4 consecutive input channels of a (position, filter) row at most 2
        kept (1 of every 2 in the TF32 modes, as ``mma.sp`` requires for TF32), the product on
        sparse tensor cores (kernels/sp24_tc_batched.cuh; fp16, bf16, tf32, tf32x3: "fp32" and
        "fp64" have no sparse tensor core and run the CSR kernel).  With "2:4" a ``mask`` must
        fit the pattern; without one U is pruned to it by magnitude
        (:func:`magma_wino.pruning.prune_winograd_n_m`), and ``prune`` does not apply.
        ``sparse``: True runs the sparse product of the structure, False the dense one,
        "auto" the one :func:`magma_wino.perfmodel.choose_product` estimates faster.
        :attr:`product` says which it is.  ``precision`` / ``allow_inaccurate``,
        ``layout``, ``fused``, ``output_relu`` as for the constructor (the CSR product runs
        in float32/float64 SIMT whatever the precision; sparse plans are never fused).

        ``groups``: a grouped layer (as the constructor's): U[b] is K×(C/groups), output
        channels k of group k // (K/groups) see that group's input channels only.  Every
        product is block-diagonal — one batched product of α^nd·groups (K/groups)×(C/groups)
        matrices, position-major — and the sparse formats (:attr:`csr`, :attr:`bsr`,
        :attr:`sp24`) hold that batch: a ``csr`` given is (α^nd·groups)×(K/groups)×(C/groups),
        blocks of ``structure="block"`` lie inside one group's matrix (``per_position`` then
        prunes per (position, group)), and so do the 2:4 groups of input channels.
        """
        if r is None:
            raise TypeError("from_winograd needs r, the filter size the weights belong to")
        U0, bias0 = U, bias
        U, bias = _backend.coerce(U, "U", backend), _backend.coerce(bias, "bias", backend)
        mask = _backend.coerce(mask, "mask", backend)
        if (U is None) == (csr is None):
            raise ValueError("give exactly one of U (dense) and csr (BatchedCSR)")
        self = cls.__new__(cls)
        if csr is not None:
            if not isinstance(csr, BatchedCSR):
                raise TypeError(f"csr must be a BatchedCSR, got {type(csr).__name__}")
            if mask is not None or prune is not None:
                raise ValueError("mask and prune apply to dense U, not to csr")
            csr.validate()
            positions, K, C = csr.shape
            g_ = _positive_int(groups, "groups")
            if positions % g_:
                raise ValueError(f"csr: with groups={g_} the CSR holds the α^nd·groups block-diagonal matrices "
                                 f"(α^nd·{g_})×(K/{g_})×(C/{g_}); its batch {positions} is not a multiple of {g_}")
            positions, K = positions // g_, K * g_
            like = csr.values
        else:
            if isinstance(U, BatchedCSR):
                raise TypeError("U must be a dense array; pass a BatchedCSR as csr=")
            if not hasattr(U, "shape") or not hasattr(U, "dtype"):
                raise TypeError(f"U must be an array (NumPy, CuPy or a device array), got {type(U).__name__}")
            if getattr(U, "ndim", None) != 3:
                raise ValueError(f"U must be 3-D (α^nd×K×C), got shape {getattr(U, 'shape', None)}")
            positions, K, C = (int(s) for s in U.shape)
            like = U
        wname = "U" if csr is None else "csr"
        if 0 in (K, C):
            raise ValueError(f"{wname} must not be empty (K, C >= 1), got shape {(positions, K, C)}")
        if not (isinstance(sparse, (bool, np.bool_)) or (isinstance(sparse, str) and sparse == "auto")):
            raise ValueError(f"sparse must be True, False or 'auto', got {sparse!r}")
        if structure not in STRUCTURES:
            raise ValueError(f"structure must be one of {', '.join(map(repr, STRUCTURES))}, got {structure!r}")
        if not (isinstance(block, tuple) and len(block) == 2):
            raise TypeError(f"block must be a tuple (output channels, input channels), got {block!r}")
        if structure != "block" and block != BSR_BLOCK:
            raise ValueError(f"block={block!r} applies to structure='block' only (structure={structure!r})")
        if structure == "block":
            if tuple(block) not in BSR_BLOCKS:
                shapes = " or ".join(map(str, BSR_BLOCKS))
                raise UnsupportedError(f"block={tuple(block)!r}: the block-sparse kernel runs blocks of {shapes} "
                                       f"(output × input channels)", detail="block shape")
            if csr is not None:
                raise ValueError("structure='block' builds its blocks from dense U (with mask or prune), not from csr")
        if structure == "2:4":
            if csr is not None:
                raise ValueError("structure='2:4' builds its pattern from dense U (with mask), not from csr")
            if prune is not None:
                raise ValueError("prune does not apply to structure='2:4' (the pattern keeps n of every m "
                                 "input channels by magnitude); give U, or U and a mask that fits the pattern")
        self._setup(K, C, r, bias, padding, m, backend, relu, points, False, like,
                    bias_borrowed=bias0 is not bias, like_name=wname, precision=precision,
                    allow_inaccurate=allow_inaccurate, layout=layout, fused=fused, output_relu=output_relu,
                    groups=groups)
        self._weights_domain = "winograd"
        self._grad_mask = None
        self._w = None
        want = self.positions
        if positions != want:
            raise ValueError(
                f"{wname} has {positions} Winograd positions but F({self.m}, {self.r}) in {self.ndim}D "
                f"needs alpha^{self.ndim} = {want} (alpha = m + r - 1 with m = {self.m}, r = {self.r})"
            )
        with self._scope():
            self._csr: BatchedCSR | None = None
            self._csr_pattern = None  # (U, pattern) of a dense plan whose CSR is built on demand
            if csr is None:
                if U.dtype != self._cdtype:  # 16-bit data: the plan computes in float32
                    U = self._array(U, "U").astype(self._cdtype)
                xp = self._engine.xp if self._engine is not None else np
                if prune is not None:  # magnitude pruning runs on the host (NumPy)
                    if mask is not None:
                        raise ValueError("give mask or prune, not both")
                    if structure == "block":  # blocks clipped to U[b] (a layer of K < bm or C < 8)
                        # grouped: blocks of the block-diagonal matrices, never across two groups
                        clipped = (min(block[0], K), min(block[1], C))
                        hostU, hmask = pruning.prune_winograd_blocks(_backend.to_host(U), prune, clipped,
                                                                     per_position=per_position, density_name="prune",
                                                                     groups=self.groups)
                    else:
                        hostU, hmask = pruning.prune_winograd(_backend.to_host(U), prune, per_position=per_position,
                                                              density_name="prune")
                    U, pattern = (a if xp is np else xp.asarray(a) for a in (hostU, hmask))
                elif mask is not None:
                    # On the plan's backend: a CuPy U and mask never travel to the host (the PyTorch
                    # layer builds a plan every step).
                    if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
                        raise TypeError(f"mask must be a bool array, got {type(mask).__name__}")
                    if tuple(mask.shape) != tuple(U.shape):
                        raise ValueError(f"mask must have U's shape {tuple(U.shape)}, got {tuple(mask.shape)}")
                    if np.dtype(mask.dtype) != np.bool_:
                        raise TypeError(f"mask must be a bool array, got {mask.dtype}")
                    pattern = xp.array(_backend.to_host(mask) if xp is np else mask, copy=True)
                    if xp is not np:
                        self._check_device(pattern, "mask")
                    U = xp.where(pattern, U, 0).astype(U.dtype)
                elif structure == "2:4":  # U pruned to the pattern of the plan's precision, on the host
                    hostU, hmask = pruning.prune_winograd_n_m(_backend.to_host(U), *self._n_m)
                    U, pattern = (a if xp is np else xp.asarray(a) for a in (hostU, hmask))
                else:
                    pattern = None  # the nonzero entries of U
                    if U0 is not U:
                        self._borrowed += (U,)
                self._U = self._array(U, "U")
                self._check_device(self._U, "U")
                self._grad_mask = pattern
                stored = int((self._U != 0).sum()) if pattern is None else int(pattern.sum())
                density = stored / max(1, self._U.size)
            else:
                self._U = None
                # the structure is fixed: backward masks dU with it
                pattern = self._by_position(_pattern(csr.to_host()))
                self._grad_mask = pattern if self._engine is None else self._engine.xp.asarray(pattern)
                density = csr.density
            self._bsr: BatchedBSR | None = None
            self._sp24: Batched24 | None = None
            work = density  # the density the products' model is given: entries, or kept blocks
            grouped = self._by_group  # the sparse formats hold the α^nd·groups block-diagonal matrices
            gpattern = None if pattern is None else grouped(pattern)
            if structure == "block":
                self._bsr = BatchedBSR.from_dense(grouped(self._U), gpattern, block)  # on the plan's backend
                work = self._bsr.block_density  # the block product does whole blocks
            if structure == "2:4" and mask is not None:  # the given pattern must fit n of every m
                n, m_ = self._n_m
                runs = _backend.to_host(pattern)
                runs = np.pad(runs, ((0, 0), (0, 0), (0, -runs.shape[2] % m_)))
                counts = runs.reshape(*runs.shape[:2], -1, m_).sum(axis=-1)
                if (counts > n).any():
                    b, k, g = (int(i[0]) for i in np.nonzero(counts > n))
                    raise ValueError(f"mask: position {b}, filter {k}, input channels {g * m_}..{g * m_ + m_ - 1} "
                                     f"keep {int(counts[b, k, g])}; structure='2:4' in precision "
                                     f"{self.precision!r} allows {n} of every {m_} (prune {n}:{m_}, e.g. "
                                     f"pruning.prune_winograd_n_m(U, {n}, {m_}), or choose precision 'fp16' / "
                                     f"'bf16' for 2:4)")
            self._density = float(density)  # weight_density: the fraction of weights kept
            if structure == "block" and self.precision == "fp32":  # no block kernel: CSR on the entries
                self._product = self._choose_product(sparse, None, density)
            else:
                self._product = self._choose_product(sparse, structure, work)
            if csr is None:
                if self._product == "csr":
                    csr = BatchedCSR.from_dense(grouped(self._U), gpattern)  # on the plan's backend
                else:
                    self._csr_pattern = (grouped(self._U), gpattern)  # the other products need no CSR
            if csr is not None:
                self._csr = self._placed_csr(csr)
            if self._U is None and self._product != "csr":
                self._U = self._by_position(self._csr.to_dense())
            if self._product != "block":
                self._bsr = None
            if self._product == "2:4":  # the compressed values and mma.sp metadata, built on the host
                sp = Batched24.from_dense(grouped(_backend.to_host(self._U)), self.precision,
                                          None if pattern is None else grouped(_backend.to_host(pattern)))
                self._sp24 = sp.to_device() if self._engine is not None and self._engine.backend == "cuda" else sp
            if self._store is not None:  # the tensor-core product of a 16-bit mode: U in 16 bits
                self._U = self._stored_U(self._U)
                self._check_fp16_range(self._U)
                if self._bsr is not None:
                    self._bsr = self._bsr.to_storage(self._store)
        self._check_fused()
        self._mark_ready()
        return self

    @property
    def _n_m(self) -> tuple[int, int]:
        """The N:M pattern of structure="2:4" in the plan's precision: 1:2 for TF32 operands
        (the ISA's rule for mma.sp .tf32), else 2:4."""
        return (1, 2) if self.precision in ("tf32", "tf32x3") else (2, 4)

    def _choose_product(self, sparse: bool | str, structure: Structure, density: float) -> str:
        """The product a :meth:`from_winograd` plan runs: "dense", "csr", "block" or "2:4"
        (``sparse`` and ``structure`` as given there)."""
        # the block and 2:4 kernels are tensor-core ones: modes without one run the CSR kernel
        # (no block kernel in the SIMT mode "fp32"; no sparse tensor core for fp32 and fp64)
        no_kernel = ((structure == "block" and self.precision == "fp32")
                     or (structure == "2:4" and self.precision in ("fp32", "fp64")))
        structured = "csr" if structure is None or no_kernel else structure
        if sparse == "auto":
            from . import perfmodel  # noqa: PLC0415

            cap = getattr(self._engine, "capability", None)
            bsr = getattr(self, "_bsr", None)
            return perfmodel.choose_product(self.K, self.C, self._tm, self.r, self.precision, density,
                                            structured, ndim=self.ndim, groups=self.groups,
                                            gpu_key="a100" if cap is not None and cap[0] == 8 else "h200",
                                            block_rows=bsr.block[0] if bsr is not None else 16)
        return structured if sparse else "dense"

    def _placed_csr(self, csr: BatchedCSR) -> BatchedCSR:
        """``csr`` in the compute dtype on the plan's backend (the plan's GPU: current here)."""
        if np.dtype(csr.dtype) != self._cdtype:
            csr = csr.astype(self._cdtype)
        if self._engine is not None and self._engine.backend == "cuda":
            csr = csr.to_device()
            for field in ("row_ptr", "col_idx", "values"):
                self._check_device(getattr(csr, field), f"csr.{field}")
        elif csr.xp is not np:
            csr = csr.to_host()  # a CuPy CSR given to a host backend
        return csr

    def _stored_U(self, U: Any) -> Any:
        """Dense compute-dtype U in the plan's 16-bit storage (the rounding of to_storage)."""
        if self._engine is None:
            return _precision.to_storage(U, self._store)
        if self._store == "fp16":
            with np.errstate(over="ignore"):  # overflow is refused by _check_fp16_range
                return U.astype(np.float16)  # round to nearest even, as __float2half_rn
        # bfloat16 bits are rounded on the host, once, at build (CuPy has no bfloat16 dtype).
        return self._engine.xp.asarray(_precision.to_storage(_backend.to_host(U), "bf16"))

    # ----------------------------------------------------------------- properties

    @property
    def U(self) -> Any:
        """The Winograd-domain weights α^nd×K×C (dense) on the plan's backend, as the
        products read them: float16 in "fp16", bfloat16 bits (uint16) in "bf16", else the
        compute dtype."""
        if self._U is None:
            with self._scope():
                self._U = self._by_position(self._csr.to_dense())  # type: ignore[union-attr]
        return self._U

    @property
    def csr(self) -> BatchedCSR | None:
        """The batched CSR weights, for plans built with :meth:`from_winograd` (built on first
        access when the plan runs the dense product); grouped: the α^nd·groups
        (K/groups)×(C/groups) block-diagonal matrices, position-major."""
        if self._csr is None and getattr(self, "_csr_pattern", None) is not None:
            U, pattern = self._csr_pattern
            with self._scope():
                self._csr = self._placed_csr(BatchedCSR.from_dense(U, pattern))
            self._csr_pattern = None
        return self._csr

    @property
    def bsr(self) -> BatchedBSR | None:
        """The block-sparse weights of a plan whose :attr:`product` is "block" (else None),
        values in the operand type of the precision."""
        return getattr(self, "_bsr", None)

    @property
    def sp24(self) -> Batched24 | None:
        """The 2:4 weights (compressed values and mma.sp metadata) of a plan whose
        :attr:`product` is "2:4" (else None)."""
        return getattr(self, "_sp24", None)

    @property
    def product(self) -> str:
        """The batched product over channels ``plan(x)`` runs (:data:`PRODUCTS`): "dense"
        (tensor cores or SIMT, by the precision), "csr" (the CSR kernel, SIMT), "block" (the
        block-sparse tensor-core kernel) or "2:4" (sparse tensor cores)."""
        return self._product

    @property
    def uses_sparse_product(self) -> bool:
        """Whether ``plan(x)`` runs a sparse product (:attr:`product` is not "dense")."""
        return self._product != "dense"

    @property
    def weight_density(self) -> float:
        """Fraction of nonzero Winograd-domain weights."""
        if self._weights_domain == "winograd":
            return self._density  # of the stored structure (the CSR's, built or not)
        return self._nonzero_fraction(self._U)

    def _nonzero_fraction(self, a: Any) -> float:
        """Fraction of nonzero entries of U or V as the plan stores them (bfloat16 bits: -0
        is 0x8000, so the sign bit is masked off)."""
        if self._store == "bf16":
            a = a & 0x7FFF
        return float((a != 0).sum()) / a.size

    def _to_first(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape in the plan's layout as channels-first (N, C, spatial...)."""
        return (shape[0], shape[-1], *shape[1:-1]) if self._channels_last else tuple(shape)

    def _from_first(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A channels-first shape in the plan's layout."""
        return (shape[0], *shape[2:], shape[1]) if self._channels_last else tuple(shape)

    def _first_view(self, a: Any) -> Any:
        """An array in the plan's layout viewed channels-first (no copy)."""
        if not self._channels_last:
            return a
        return a.transpose(0, a.ndim - 1, *range(1, a.ndim - 1))

    def _last_copy(self, a: Any) -> Any:
        """A channels-first array as a C-contiguous copy in the plan's channels-last layout."""
        xp = self._engine.xp if self._engine is not None else np
        return xp.ascontiguousarray(a.transpose(0, *range(2, a.ndim), 1))

    def _x_shape(self, x_shape: Any) -> tuple[int, ...]:
        """``x_shape`` (in the plan's layout) checked: ints >= 1, C the plan's, an output >= 1;
        returned channels-first (N, C, spatial...)."""
        if isinstance(x_shape, (str, bytes)) or not isinstance(x_shape, (tuple, list)):
            raise TypeError(f"x_shape must be a tuple of ints (N, C, spatial...), got {type(x_shape).__name__}")
        for s in x_shape:
            if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
                raise TypeError(f"x_shape entries must be ints, got {type(s).__name__}")
        given = tuple(int(s) for s in x_shape)
        if len(given) != self.ndim + 2 or min(given) < 1 or self._to_first(given)[1] != self.C:
            want = self._from_first((-1, self.C, *([-2] * self.ndim)))
            names = ", ".join({-1: "N", -2: "S"}.get(v, str(v)) for v in want)
            raise ValueError(f"x_shape must be ({names}) of ints >= 1 (layout {self.layout}), got {given}")
        x_shape = self._to_first(given)
        _checks.out_spatial(x_shape[2:], self.r, self._pads, name="x_shape")
        return x_shape

    def out_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape for an input of shape ``x_shape``, both in the plan's layout
        (NCHW: N×K×Ho×Wo; NHWC: N×Ho×Wo×K)."""
        return self._from_first(self._out_first(x_shape))

    def _out_first(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Channels-first output shape N×K×(spatial) for ``x_shape`` in the plan's layout."""
        x_shape = self._x_shape(x_shape)
        return (x_shape[0], self.K, *_checks.out_spatial(x_shape[2:], self.r, self._pads))

    # ----------------------------------------------------------------- running

    def _check_x(self, x: Any) -> Any:
        """x checked (in the plan's layout) and on the plan's backend, C-contiguous."""
        view = x
        if self._channels_last and hasattr(x, "transpose") and getattr(x, "ndim", None) == self.ndim + 2:
            view = self._first_view(x)  # checked as N×C×spatial (rank, dtype, sizes)
        _checks.check_input_args(view, self.r, self._pads, self.ndim)
        axis = x.ndim - 1 if self._channels_last else 1
        if x.shape[axis] != self.C:
            raise ValueError(
                f"channel mismatch: x has C = {x.shape[axis]} channels (axis {axis}, layout {self.layout}) "
                f"but the plan needs C = {self.C}" + (f" ({self.groups} groups of {self.C // self.groups})" if self.groups != 1 else "")
            )
        if np.dtype(x.dtype) != self.dtype:
            raise TypeError(f"dtype mismatch: x is {x.dtype} but the weights are {self.dtype}")
        x = self._array(x, "x")
        self._check_device(x, "x")
        return x

    def _desc(self, x_shape: tuple[int, ...], last: bool = False) -> Any:
        """The C descriptor of this layer for an input of channels-first shape ``x_shape``;
        ``last``: x and y channels last (mw_conv_desc.layout, read and written in place)."""
        ext = self._engine.ext
        return ext.ConvDesc(self.ndim, self._tm, self.r, x_shape[0], self.C, self.K, tuple(x_shape[2:]),
                            *self._pad_lists(), int(ext.LAYOUT_NHWC if last else ext.LAYOUT_NCHW))

    @property
    def _kernels_last(self) -> bool:
        """The kernels read x and write y in the plan's channels-last layout themselves
        (mw_conv_desc.layout); the numpy backend transposes."""
        return self._channels_last and self._engine is not None

    def _pad_lists(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(leading, trailing) zero padding per axis, as mw_conv_desc's padding / padding_end."""
        return tuple(lo for lo, _ in self._pads), tuple(hi for _, hi in self._pads)

    def _first(self, x: Any) -> Any:
        """x in the plan's layout as a C-contiguous channels-first array (a copy for NHWC)."""
        if not self._channels_last:
            return x
        xp = self._engine.xp if self._engine is not None else np
        return xp.ascontiguousarray(self._first_view(x))

    def _input_transform(self, x: Any, store: bool = True, last: bool = False) -> Any:
        """V of a channels-first x (``last``: a channels-last x, read in place by the kernels;
        kernel backends only, :attr:`_kernels_last`; ``store=False``: in the compute dtype even
        in a 16-bit mode)."""
        x = self._to_compute(x)
        if self._engine is None:
            xin = np.maximum(x, 0) if self.relu == "spatial" else x
            V = reference.input_transform(xin, self._tm, self.r, self._pads, self._points,
                                          relu=self.relu == "winograd")
            return V if self._store is None or not store else _precision.to_storage(V, self._store)
        e = self._engine
        desc = self._desc(self._to_first(tuple(x.shape)) if last else tuple(x.shape), last)
        code = _backend.kernel_dtype(self._cdtype, "x")
        geo = desc.geometry(code)
        V = e.empty((geo["positions"], self.C, geo["num_tiles"]), self._vdtype if store else self._cdtype)
        e.ext.input_transform_ex(desc, code, self._storage_code() if store else code, e.ptr(x), e.ptr(V),
                                 _RELU_CODES[self.relu],
                                 e.ptr(self._mats), e.stream())
        return V

    # The three phases of plan(x), public so that they can be profiled one by one (as
    # NNPACK's profile does) and composed by frameworks that keep V or M themselves.

    def transform_input(self, x: Any) -> Any:
        """Phase 1: V = input transform of ``x`` (α^nd×C×P, the plan's ReLU applied)."""
        x0 = x
        x = self._check_x(_backend.coerce(x, "x", self.backend))
        with self._launch_scope((x0,) if x0 is not x else ()):
            last = self._kernels_last
            return self._input_transform(x if last else self._first(x), last=last)

    def _positions_and_tiles(self, x_shape: tuple[int, ...]) -> tuple[int, int]:
        """(α^nd, P) for ``x_shape`` in the plan's layout."""
        x_shape = self._x_shape(x_shape)
        out = _checks.out_spatial(x_shape[2:], self.r, self._pads)
        P = x_shape[0] * math.prod(_checks.num_tiles(out, self._tm))
        return self.positions, P

    def multiply(self, V: Any, out: Any = None) -> Any:
        """Phase 2: M[b] = U[b] · V[b] for every position b (batched GEMM, or the batched
        sparse product for sparse plans); M is α^nd×K×P.  ``out`` may be a preallocated M."""
        if not hasattr(V, "shape") or not hasattr(V, "dtype"):
            raise TypeError(f"V must be an array (α^nd×C×P), got {type(V).__name__}")
        if getattr(V, "ndim", None) != 3:
            raise ValueError(f"V must be 3-D (α^nd×C×P), got shape {tuple(getattr(V, 'shape', ()))}")
        positions, P = self.positions, int(V.shape[2])
        V0, out0 = V, out
        V = self._work(V, "V", (positions, self.C, P), self._vdtype)
        if out is not None:
            out = self._work(out, "out", (positions, self.K, P))
        with self._launch_scope(tuple(o for o, c in ((V0, V), (out0, out)) if o is not None and o is not c)):
            return self._multiply(V, out)

    def _multiply(self, V: Any, out: Any = None) -> Any:
        positions, P = int(V.shape[0]), int(V.shape[2])
        if self._engine is None:
            # The numpy path emulates the tensor-core operand rounding of tf32 / tf32x3 for
            # dense plans; sparse plans' products are SIMT (plain matmul) in every mode.
            mode = "fp32" if self._product == "csr" else self.precision
            if self.groups == 1:
                return _precision.matmul(self.U, V, mode, out=out)
            M = self._by_position(_precision.matmul(self._by_group(self.U), self._by_group(V), mode))
            if out is not None:
                out[...] = M
                return out
            return M
        M = out if out is not None else self._engine.empty((positions, self.K, P), self._cdtype)
        if self._product == "csr":  # the formats hold the groups' blocks: grouped views of V and M
            self._spmm(self._csr, self._by_group(V), self._by_group(M))
        elif self._product == "block":
            self._bsr_product(self._bsr, self._by_group(V), self._by_group(M))
        elif self._product == "2:4":
            self._sp24_product(self._sp24, self._by_group(V), self._by_group(M))
        else:  # M is C-contiguous (ours, or checked by _work): its grouped view writes into it
            self._gemm(self._by_group(self.U), self._by_group(V), self._by_group(M), self.precision)
        return M

    def _gemm(self, A: Any, B: Any, C: Any, mode: str) -> None:
        """C[b] = A[b] · B[b] on the device, the batched products in ``mode``.  Split-K
        (gemm_tc.cuh) when the grid would not fill the GPU: the partials go to a workspace from
        the pool (stream-ordered: freed after the launch on this stream)."""
        e = self._engine
        batch, m, k = (int(s) for s in A.shape)
        n = int(B.shape[2])
        dt, code = _backend.kernel_dtype(self._cdtype, "V"), _precision.ext_code(e.ext, mode)
        nbytes = int(e.ext.gemm_batched_ex_workspace(dt, code, batch, m, n, k))
        ws = e.empty((nbytes,), np.uint8) if nbytes else None
        e.ext.gemm_batched_ex_ws(dt, code, batch, m, n, k, e.ptr(A), e.ptr(B), e.ptr(C), e.ptr(ws), nbytes,
                                 e.stream())

    def _spmm(self, csr: BatchedCSR, B: Any, C: Any) -> None:
        """C[b] = csr[b] · B[b] on the device (the batched CSR kernel, SIMT in the compute dtype),
        rows in the CSR's load-balancing order (computed once per CSR; the same C bitwise)."""
        e = self._engine
        batch, rows, cols = csr.shape
        e.ext.spmm_batched(_backend.kernel_dtype(self._cdtype, "V"), batch, rows, cols, int(B.shape[2]),
                           e.ptr(csr.row_ptr), e.ptr(csr.col_idx), e.ptr(csr.values), csr.nnz, e.ptr(B), e.ptr(C),
                           e.stream(), e.ptr(csr.row_order()))

    def _bsr_product(self, bsr: BatchedBSR, B: Any, C: Any) -> None:
        """C[b] = bsr[b] · B[b] on the device: the block-sparse tensor-core kernel in the plan's
        precision (empty blocks skipped, each kept block one tensor-core k step)."""
        e = self._engine
        batch, rows, cols = bsr.shape
        e.ext.bsr_batched(_backend.kernel_dtype(self._cdtype, "V"), _precision.ext_code(e.ext, self.precision),
                          batch, rows, cols, int(B.shape[2]), bsr.block[0], bsr.block[1], e.ptr(bsr.row_ptr),
                          e.ptr(bsr.col_idx), e.ptr(bsr.values), bsr.nblocks, e.ptr(B), e.ptr(C), e.stream())

    def _sp24_product(self, sp: Batched24, B: Any, C: Any) -> None:
        """C[b] = sp[b] · B[b] on the device: the 2:4 kernel on sparse tensor cores (mma.sp) in
        the plan's precision."""
        e = self._engine
        batch, rows, cols = sp.shape
        e.ext.sp24_batched(_backend.kernel_dtype(self._cdtype, "V"), _precision.ext_code(e.ext, self.precision),
                           batch, rows, cols, int(B.shape[2]), e.ptr(sp.values), e.ptr(sp.meta), e.ptr(B), e.ptr(C),
                           e.stream())

    def _split_k_bytes(self, P: int) -> int:
        """Workspace bytes of the dense product's split-K for P tiles (0: no split)."""
        if self._engine is None or self._product != "dense":
            return 0
        e = self._engine
        return int(e.ext.gemm_batched_ex_workspace(_backend.kernel_dtype(self._cdtype, "V"),
                                                   _precision.ext_code(e.ext, self.precision),
                                                   self.positions * self.groups, self.K // self.groups, P,
                                                   self.C // self.groups))

    def split_k_workspace_bytes(self, x_shape: tuple[int, ...]) -> int:
        """Bytes of the split-K workspace ``plan(x)`` draws from the pool for an input of
        ``x_shape`` (0 when the product does not split: numpy backend, sparse plans, fp32,
        or a grid that already fills the GPU; docs/kernels.md, "Split-K")."""
        return self._split_k_bytes(self._positions_and_tiles(x_shape)[1])

    def transform_output(self, M: Any, x_shape: tuple[int, ...], out: Any = None) -> Any:
        """Phase 3: y = output transform of M (+ bias) for an input of shape ``x_shape``."""
        first = self._x_shape(x_shape)
        positions, P = self._positions_and_tiles(x_shape)
        M0, out0 = M, out
        M = self._work(M, "M", (positions, self.K, P))
        if out is not None:
            out = self._work(out, "out", self.out_shape(x_shape), self.dtype)
        with self._launch_scope(tuple(o for o, c in ((M0, M), (out0, out)) if o is not None and o is not c)):
            last = self._kernels_last
            y = self._output_transform(M, first, out if last or not self._channels_last else None, last=last)
            return self._finish(y, out, y_last=last)

    def _finish(self, y: Any, out: Any = None, y_last: bool = False) -> Any:
        """y of the three-phase path (channels first, or already in the plan's channels-last
        layout when ``y_last``) in the plan's layout, with the output ReLU, written to ``out``
        when given (already there when y is out)."""
        if self.output_relu:
            xp = self._engine.xp if self._engine is not None else np
            xp.maximum(y, 0, out=y)
        if self._channels_last and not y_last:
            y = self._last_copy(y)
        if out is not None and y is not out:
            out[...] = y
            return out
        return y

    def _output_transform(self, M: Any, x_shape: tuple[int, ...], out: Any = None, last: bool = False) -> Any:
        """Channels-first y for channels-first ``x_shape`` (``last``: y channels last, written in
        place by the kernels; kernel backends only)."""
        yshape = (x_shape[0], self.K, *_checks.out_spatial(x_shape[2:], self.r, self._pads))
        if last:
            yshape = self._from_first(yshape)
        if self._engine is None:
            y = reference.output_transform(M, self._tm, self.r, yshape, self.bias, self._points).astype(
                self.dtype, copy=False)
            if out is not None:
                out[...] = y
                return out
            return y
        e = self._engine
        half = self.dtype != self._cdtype  # 16-bit data: y in float32, then rounded once
        y = out if out is not None and not half else e.empty(yshape, self._cdtype)
        e.ext.output_transform(self._desc(x_shape, last), _backend.kernel_dtype(self._cdtype, "M"), e.ptr(M),
                               e.ptr(self.bias), e.ptr(y), e.ptr(self._mats), e.stream())
        return self._in_data_dtype(y, out)

    def _in_data_dtype(self, y: Any, out: Any = None) -> Any:
        """A kernel's y (compute dtype) as the plan's result: itself for float32 / float64
        data (it is ``out`` when one was given); for 16-bit data rounded once, into ``out``
        when given."""
        if self.dtype == self._cdtype:
            return y
        if out is None:
            return y.astype(self.dtype)
        out[...] = y
        return out

    def __call__(self, x: Any, out: Any = None) -> Any:
        """Convolve ``x`` (N×C×H×W; 3D N×C×D×H×W; channels last with ``layout="NHWC"``)
        and return y (N×K×Ho×Wo, or N×Ho×Wo×K).

        ``out``, if given, must be a C-contiguous array of the output's shape and dtype on
        this plan's backend; it is written and returned.  On the cuda backend everything runs
        on CuPy's current stream, ordered after the plan's construction.  The fused kernel or
        the three phases, as :meth:`algorithm_for` decides (recorded in :attr:`algorithm`).
        """
        x0, out0 = x, out
        x, out = _backend.coerce(x, "x", self.backend), _backend.coerce(out, "out", self.backend)
        x = self._check_x(x)
        yshape = self.out_shape(tuple(x.shape))
        if out is not None:
            out = self._work(out, "out", yshape, self.dtype)
        algorithm = self.algorithm_for(tuple(x.shape))
        if algorithm == "fused" and out is not None and _overlap(self._engine, x, out):
            # The fused kernel reads x while other blocks write y; the three phases read x
            # once, into V, before y is written.
            if self._fused_request:
                raise ValueError("out overlaps x: the fused kernel (fused=True) needs separate x and out")
            algorithm = "three-phase"
        foreign = tuple(o for o, c in ((x0, x), (out0, out)) if o is not None and o is not c)
        with self._launch_scope(foreign):
            self.algorithm = algorithm
            if algorithm == "fused":
                return self._fused(x, out)
            # channels last: the kernels read x and write y in place (mw_conv_desc.layout); the
            # numpy backend transposes a copy
            last = self._kernels_last
            xf = x if last else self._first(x)
            V = self._input_transform(xf, last=last)
            M = self._multiply(V)
            y = self._output_transform(M, self._to_first(tuple(x.shape)),
                                       out if last or not self._channels_last else None, last=last)
            return self._finish(y, out, y_last=last)

    # ----------------------------------------------------------------- fused

    def fused_unavailable(self) -> str | None:
        """None when this plan has a fused kernel (kernels/winograd_fused.cuh) on its backend
        and device; otherwise why not, in words."""
        if self._engine is None:
            return "the numpy backend has no kernels"
        if self.ndim != 2:
            return "fused kernels are 2D"
        if self.rectangular:
            return f"the rectangular tile {self.tile} has no fused kernel (fused: F(2, 3) and F(4, 3))"
        if self.r != 3 or self.m not in FUSED_TILES:
            return f"F({self.m}, {self.r}) has no fused kernel (fused: F(2, 3) and F(4, 3))"
        if self.generic:
            return "explicit points= (or generic=True) run the generic three-phase kernels"
        if self._product != "dense":
            return f"sparse products are three-phase (the {self._product} kernel)"
        if self.groups != 1:
            return "grouped products are three-phase (the batched product of the groups' blocks)"
        desc = self._engine.ext.ConvDesc(2, self.m, self.r, 1, self.C, self.K, (8, 8), *self._pad_lists())
        try:
            with self._scope():  # the plan's GPU: its capability and shared-memory limit
                self._engine.ext.conv2d_fused_plan(desc, _backend.kernel_dtype(self._cdtype, "x"),
                                                   _precision.ext_code(self._engine.ext, self.precision))
        except UnsupportedError as exc:
            return exc.detail or str(exc)
        return None

    def _check_fused(self) -> None:
        """fused=True on a layer without a fused kernel: a ValueError at construction."""
        self._fused_reason = self.fused_unavailable()
        if self._fused_request and self._fused_reason is not None:
            raise ValueError(f"fused=True: {self._fused_reason}")

    def algorithm_for(self, x_shape: tuple[int, ...]) -> str:
        """"fused" or "three-phase": what ``plan(x)`` runs for an input of ``x_shape`` (in the
        plan's layout).  ``fused=True/False`` forces it; by default the fused kernel runs when
        there is one and :func:`magma_wino.perfmodel.choose_algorithm` estimates it faster for
        this shape and precision on the plan's GPU (an H200 on the emulator, which models one)."""
        first = self._x_shape(x_shape)
        if self._fused_request is False or self._fused_reason is not None:
            return "three-phase"
        if self._fused_request:
            return "fused"
        key = tuple(first)
        if key not in self._algorithms:
            from . import perfmodel

            cap = getattr(self._engine, "capability", None)
            gpu_key = "a100" if cap is not None and cap[0] == 8 else "h200"
            out = _checks.out_spatial(first[2:], self.r, self._pads)
            self._algorithms[key] = perfmodel.choose_algorithm(
                first[0], self.C, self.K, out[0], out[1], self.m, self.r, self.precision, gpu_key=gpu_key)
        return self._algorithms[key]

    def workspace_bytes(self, x_shape: tuple[int, ...]) -> int:
        """Device memory ``plan(x)`` takes from the pool besides y, for an input of ``x_shape``
        (no ``out=``): the fused kernel none for float32 / float64 data (V and M stay on the
        SM); the three phases V, M and the split-K partials.  On top: 16-bit data's float32
        copies of x and y (the transforms compute in float32).  Channels-last layouts add
        nothing: the kernels read x and write y in place (mw_conv_desc.layout)."""
        first = self._x_shape(x_shape)
        positions, P = self._positions_and_tiles(x_shape)
        n_x, n_y = math.prod(first), math.prod(self._out_first(x_shape))
        data, comp = np.dtype(self.dtype).itemsize, np.dtype(self._cdtype).itemsize
        half = data != comp
        convert = (n_x + n_y) * comp if half else 0  # float32 x and y of 16-bit data
        if self.algorithm_for(x_shape) == "fused":
            return convert
        V = positions * self.C * P * np.dtype(self._vdtype).itemsize
        M = positions * self.K * P * comp
        return V + M + self._split_k_bytes(P) + convert

    def _fused(self, x: Any, out: Any = None) -> Any:
        """The whole layer in one kernel (x in the plan's layout)."""
        e = self._engine
        x = self._to_compute(x)
        first = self._to_first(tuple(x.shape))
        desc = self._desc(first)
        half = self.dtype != self._cdtype  # 16-bit data: y in float32, then rounded once
        yshape = self.out_shape(tuple(x.shape))
        y = out if out is not None and not half else e.empty(yshape, self._cdtype)
        e.ext.conv2d_fused(desc, _backend.kernel_dtype(self._cdtype, "x"), _precision.ext_code(e.ext, self.precision),
                           int(e.ext.LAYOUT_NHWC if self._channels_last else e.ext.LAYOUT_NCHW),
                           _RELU_CODES[self.relu], self.output_relu, e.ptr(x), e.ptr(self._U), e.ptr(self.bias),
                           e.ptr(y), e.stream())
        return self._in_data_dtype(y, out)

    def activation_density(self, x: Any) -> float:
        """Fraction of nonzero entries of V, the transformed input (after the plan's
        ReLU): the activation sparsity a Winograd-ReLU layer can exploit."""
        x = self._check_x(_backend.coerce(x, "x", self.backend))
        with self._launch_scope():
            return self._nonzero_fraction(self._input_transform(self._first(x)))

    def __repr__(self) -> str:
        kind = "dense" if self._product == "dense" else f"sparse ({self._product})"
        grouped = f", groups={self.groups}" if self.groups != 1 else ""
        return (f"{type(self).__name__}({self.tile}, K={self.K}, C={self.C}{grouped}, "
                f"padding={self.padding}, backend={self.backend!r}, {kind}, relu={self.relu!r}, "
                f"dtype={self.dtype}, precision={self.precision!r})")


class WinogradConv2d(_WinogradConvNd):
    """2D Winograd convolution plan F(m×m, r×r) — see the module docstring."""

    ndim = 2


class WinogradConv3d(_WinogradConvNd):
    """3D Winograd convolution plan F(m×m×m, r×r×r) — see the module docstring."""

    ndim = 3
    default_m = 2  # F(2x2x2, 3x3x3): 64 multiplications per 8 outputs instead of 216
