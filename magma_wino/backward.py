"""The backward pass of a Winograd plan: ``plan.backward(x, grad_output)``.

The forward of the three-phase layer is V = I(x), M[b] = U[b]·V[b], y = O(M) (+ bias); its
backward is three-phase too (docs/training.md, DESIGN.md "Training"):

    dM       = Oᵀ(dy)                 adjoint of the output transform (A·dY·Aᵀ per tile)
    dU[b]    = dM[b] · V[b]ᵀ          a batched product reducing over the P tiles
    dV[b]    = U[b]ᵀ · dM[b]          dense, or the transposed CSR product of a sparse plan
    dx       = Iᵀ(dV)                 adjoint of the input transform, a gather over the
                                      overlapping windows
    dw       = Gᵀ · dU · G            spatial weights only (the filter transform's adjoint)
    dbias    = Σ dy

For spatial weights (unless Winograd-ReLU sits between the transforms) dx is instead the
forward layer on dy with the flipped, transposed filter, dx = conv(dy, flip(w)ᵀ, padding
r − 1 − p): the same bytes as Uᵀ·dM and Iᵀ, but the specialised transforms and, where the model
picks it, the fused kernel (:meth:`BackwardMixin._dgrad_by_forward`).  All this
with the masks of the variants: Winograd-ReLU multiplies dV by [V > 0], spatial ReLU dx by
[x > 0], a pruned plan dU by its mask (the mask is fixed during fine-tuning), an output ReLU
dy by [y > 0].  V is recomputed from x rather than kept from the forward: one input transform
costs less memory than α^nd/m^nd copies of x held between forward and backward.

Every step is a kernel on the device backends (the adjoint transforms of
kernels/transform_adjoint.cuh, the batched products of the forward, deterministic: split-K
partials are summed in a fixed order and dx is a gather, so two runs give the same bits) and
the float64-exact NumPy reference on the numpy backend.  The products run in the plan's
precision; plans of a 16-bit mode run them in "fp32" (their float32 operands: V is recomputed
in float32, U widened from its 16-bit storage).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from . import _backend, reference
from . import precision as _precision
from .sparse import BatchedCSR

__all__ = ["Gradients"]


class Gradients(NamedTuple):
    """What :meth:`WinogradConv2d.backward` returns (PyTorch's names)."""

    #: dL/dx, x's shape, layout and dtype; None unless ``input_grad``.
    grad_input: Any
    #: dL/dw (K×C×r^nd) for a plan built from spatial weights, dL/dU (α^nd×K×C, zero at
    #: pruned entries) for a ``from_winograd`` plan; None unless ``weight_grad``.
    grad_weight: Any
    #: dL/dbias (K,), the sum of grad_output; None when the plan has no bias.
    grad_bias: Any


def _flag(v: object, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


class BackwardMixin:
    """``backward`` for :class:`magma_wino.layer._WinogradConvNd` (which provides the
    forward's helpers used here: ``_check_x``, ``_first``, ``_input_transform``, ``_desc``...)."""

    # ----------------------------------------------------------------- public

    @property
    def weights_domain(self) -> str:
        """"spatial" (built from w: ``backward`` returns dL/dw) or "winograd" (``from_winograd``:
        dL/dU)."""
        return self._weights_domain

    @property
    def mask(self) -> Any:
        """The pruning pattern, of ``backward``'s ``grad_weight`` shape, on the plan's backend:
        α^nd×K×C for a pruned ``from_winograd`` plan (a given ``mask``, ``prune``'s, or a
        ``csr``'s structure), K×C×r^nd for ``from_spatial(w, prune=...)``; None when unpruned.
        ``backward`` returns zero gradient where it is False."""
        return self._grad_mask

    def backward(self, x: Any, grad_output: Any, *, input_grad: bool = True, weight_grad: bool = True) -> Gradients:
        """The gradients of a loss L through ``y = plan(x)`` given ``grad_output`` = dL/dy.

        Args:
            x: the forward's input (the plan's layout and dtype); V is recomputed from it.
            grad_output: dL/dy, of y's shape (the plan's layout) and dtype, on the plan's backend.
            input_grad: compute dL/dx.
            weight_grad: compute dL/dw (spatial plans) or dL/dU (``from_winograd`` plans, zero
                where the plan's :attr:`mask` is False).

        Returns:
            :class:`Gradients` (grad_input, grad_weight, grad_bias).  On the cuda backend the
            work runs on CuPy's current stream, ordered after the plan's construction.
        """
        input_grad, weight_grad = _flag(input_grad, "input_grad"), _flag(weight_grad, "weight_grad")
        x0, g0 = x, grad_output
        x = self._check_x(_backend.coerce(x, "x", self.backend))
        dy = _backend.coerce(grad_output, "grad_output", self.backend)
        dy = self._check_grad_output(dy, self.out_shape(tuple(x.shape)))
        foreign = tuple(o for o, c in ((x0, x), (g0, dy)) if o is not c)
        with self._launch_scope(foreign):
            return self._backward(x, dy, input_grad, weight_grad)

    def _gradient_tolerances(self, x_shape: tuple[int, ...]) -> tuple[float, float]:
        """The bounds of ``rel_err`` of grad_input and grad_weight for an input of ``x_shape``
        (the plan's layout), against float64 gradients.  The backward is a Winograd layer of
        the forward's form — dx convolves dy with the rotated filter (K channels), dw sums over
        the P tiles — so the forward's model (:func:`magma_wino.precision.tolerance`) at those
        reduction lengths, in the backward's precision."""
        mode, nd, t = self._backward_precision, self.ndim, self._tile  # t: m, r per axis
        taps = math.prod(t.r)
        P = self._positions_and_tiles(tuple(x_shape))[1]
        return (_precision.tolerance(mode, t.m, t.r, self.K // self.groups * taps, nd),
                _precision.tolerance(mode, t.m, t.r, P * taps, nd))

    # ----------------------------------------------------------------- steps

    def _keep_spatial(self, w: Any) -> None:
        """A private compute-dtype copy of spatial weights (K·C·r^nd values, small beside U):
        the data gradient of a spatial plan runs the forward kernels on its flipped transpose.
        A copy, so that a caller changing w after building the plan changes neither."""
        xp = self._xp
        self._w = xp.array(self._to_compute(self._array(w, "w")), copy=True)
        self._dgrad_plan = None

    def _dgrad_by_forward(self) -> bool:
        """dx by the forward kernels (dx = conv(dy, flip(w)ᵀ, padding r − 1 − p)) rather than by
        Uᵀ·dM and the input adjoint: possible for spatial weights unless ReLU sits between the
        transforms (Winograd-ReLU masks dV, which this path never forms).  The two move the
        same bytes (V of dy and M of dx have the sizes of dM and dV), but this one runs the
        specialised (straight-line) transforms, the fused kernel where the model picks it, and
        no dM is needed when only dx is asked for; the adjoint kernels are generic.  The model
        agrees (:func:`magma_wino.perfmodel.estimate_data_gradient`: never slower, up to ~1.5x
        faster where the fused kernel is chosen; ESTIMATES)."""
        # 16-bit modes: the forward ran on U rounded to 16 bits, which the adjoint path uses
        # (widened); a plan of flip(w)ᵀ would differentiate the unrounded weights instead
        # The flipped problem pads (r − 1 − lo, r − 1 − hi): padding beyond r − 1 on a side
        # (outputs that only see zeros) has no such form, and takes the adjoint path.
        return (self._w is not None and self.relu != "winograd" and self._store is None
                and all(p <= r - 1 for pair, r in zip(self._pads, self._tile.r) for p in pair))

    def _dgrad_plan_(self) -> Any:
        if self._dgrad_plan is None:
            xp = self._xp
            spatial = tuple(range(2, 2 + self.ndim))
            # per group: w's (K/g)×(C/g) block transposed, so wt is C×(K/g)×r^nd with g groups
            g, taps = self.groups, tuple(int(n) for n in self._w.shape[2:])
            w = xp.flip(self._w, axis=spatial).reshape((g, self.K // g, self.C // g) + taps)
            wt = xp.ascontiguousarray(w.swapaxes(1, 2)).reshape((self.C, self.K // g) + taps)
            with self._scope():
                self._dgrad_plan = type(self)(
                    wt, None, tuple((r - 1 - lo, r - 1 - hi) for (lo, hi), r in zip(self._pads, self._tile.r)),
                    self._tm, self.backend,
                    points=self._points, generic=self.generic, precision=self._backward_precision, groups=self.groups,
                    allow_inaccurate=True,  # the plan's own mode, already accepted for this F(m, r)
                    layout=self.layout if self._kernels_last else None)  # dy in, dx out, in place
        return self._dgrad_plan

    def _check_grad_output(self, dy: Any, yshape: tuple[int, ...]) -> Any:
        if not hasattr(dy, "shape") or not hasattr(dy, "dtype"):
            raise TypeError(f"grad_output must be an array of y's shape {yshape}, got {type(dy).__name__}")
        if tuple(dy.shape) != tuple(yshape):
            raise ValueError(f"grad_output must have y's shape {tuple(yshape)} (layout {self.layout}), "
                             f"got {tuple(dy.shape)}")
        if np.dtype(dy.dtype) != self.dtype:
            raise TypeError(f"dtype mismatch: grad_output is {dy.dtype} but the plan's data is {self.dtype}")
        dy = self._array(dy, "grad_output")
        self._check_device(dy, "grad_output")
        return dy

    @property
    def _xp(self) -> Any:
        return self._engine.xp if self._engine is not None else np

    @property
    def _backward_precision(self) -> str:
        return "fp32" if self.precision in _precision.HALF_MODES else self.precision

    def _backward(self, x: Any, dy: Any, input_grad: bool, weight_grad: bool) -> Gradients:
        xp = self._xp
        # channels last on a kernel backend: x, dy read and dx written in place by the kernels
        # (mw_conv_desc.layout); the numpy backend works channels first
        last = self._kernels_last
        xf = self._to_compute(x if last else self._first(x))
        dyf = self._to_compute(dy if last else self._first(dy))
        first = self._to_first(tuple(xf.shape)) if last else tuple(xf.shape)  # x's shape, channels first
        V = None
        if self.output_relu:  # y = ReLU(conv + bias): dy only where y > 0 (the pre-ReLU y, as the
            # forward's own three phases compute it: its storage, product and precision)
            y = self._output_transform(self._multiply(self._input_transform(xf, last=last)), first, last=last)
            dyf = dyf * (y > 0)
        spatial_axes = tuple(range(1, 1 + self.ndim)) if last else tuple(range(2, 2 + self.ndim))
        grad_bias = None
        if self.bias is not None:
            grad_bias = self._in_data(dyf.sum(axis=(0,) + spatial_axes))
        grad_input = grad_weight = None

        def input_gradient(dx: Any) -> Any:  # compute-dtype dx (in xf's layout) as grad_input
            if self.relu == "spatial":
                dx *= xf > 0
            return self._in_data(self._last_copy(dx) if self._channels_last and not last else dx)

        if input_grad and self._dgrad_by_forward():
            grad_input = input_gradient(self._dgrad_plan_()(dyf))
            input_grad = False
        if input_grad or weight_grad:
            dM = self._output_adjoint(dyf, first, last)
            if weight_grad or self.relu == "winograd":
                V = V if V is not None else self._input_transform(xf, store=False, last=last)
            if weight_grad:
                dU = self._by_position(self._bmm(self._by_group(dM),
                                                 xp.ascontiguousarray(self._by_group(V).transpose(0, 2, 1))))
                if self._weights_domain == "winograd":
                    if self._grad_mask is not None:
                        dU *= self._grad_mask
                    grad_weight = self._in_data(dU)
                else:
                    dw = self._filter_adjoint(dU)
                    if self._grad_mask is not None:  # from_spatial(prune=...): the pruned taps
                        dw *= self._grad_mask
                    grad_weight = self._in_data(dw)
            if input_grad:
                dV = self._dV(dM)
                if self.relu == "winograd":
                    dV *= V > 0
                grad_input = input_gradient(self._input_adjoint(dV, first, last))
        return Gradients(grad_input, grad_weight, grad_bias)

    def _in_data(self, a: Any) -> Any:
        """A compute-dtype result in the plan's data dtype (a copy only for 16-bit data)."""
        return a if a.dtype == self.dtype else a.astype(self.dtype)

    def _U_compute(self) -> Any:
        """Dense U in the compute dtype (16-bit storage widened: the values the forward used)."""
        U = self.U
        if self._store is None:
            return U
        if self._engine is None:
            return _precision.from_storage(U, self._store)
        if self._store == "fp16":
            return U.astype(self._cdtype)
        return (U.astype(np.uint32) << 16).view(np.float32)  # bfloat16 bits -> float32, exactly

    def _matrices_buffer(self) -> Any:
        """Aᵀ, G, Bᵀ back to back on the plan's device: the adjoint kernels' coefficients (there
        are no specialised adjoints; the forward's generic kernels take the same buffer)."""
        if self._mats is None and getattr(self, "_adjoint_mats", None) is None:
            self._adjoint_mats = self._engine.xp.asarray(self._matrices_host())
            _settle(self._engine)
        return self._mats if self._mats is not None else self._adjoint_mats

    def _code(self) -> int:
        return _backend.kernel_dtype(self._cdtype, "grad_output")

    def _bmm(self, A: Any, B: Any) -> Any:
        """Batched A[b] @ B[b] in the backward precision (the forward's GEMM kernels, split-K
        from the pool when the grid would not fill the GPU)."""
        mode = self._backward_precision
        if self._engine is None:
            return _precision.matmul(A, B, mode)
        C = self._engine.empty((int(A.shape[0]), int(A.shape[1]), int(B.shape[2])), self._cdtype)
        self._gemm(A, B, C, mode)
        return C

    def _dV(self, dM: Any) -> Any:
        """dV[b] = U[b]ᵀ · dM[b]: the transposed CSR product for sparse plans."""
        xp = self._xp
        if self._product != "csr" or self._engine is None:
            Ut = xp.ascontiguousarray(self._by_group(self._U_compute()).transpose(0, 2, 1))
            return self._by_position(self._bmm(Ut, self._by_group(dM)))
        dV = self._engine.empty((int(dM.shape[0]), self.C, int(dM.shape[2])), self._cdtype)
        self._spmm(self._csr_transposed(), dM, dV)
        return dV

    def _csr_transposed(self) -> BatchedCSR:
        """The CSR of U[b]ᵀ (C×K per position), built once from the plan's CSR on its backend
        (a CuPy CSR is transposed on its GPU)."""
        if getattr(self, "_csr_t", None) is None:
            xp = self._xp
            c = self.csr
            dense, pattern = (a.transpose(0, 2, 1) for a in (c.to_dense(), _pattern(c)))
            self._csr_t = BatchedCSR.from_dense(xp.ascontiguousarray(dense), xp.ascontiguousarray(pattern))
            _settle(self._engine)
        return self._csr_t

    def _output_adjoint(self, dyf: Any, xshape: tuple[int, ...], last: bool = False) -> Any:
        """dM = Oᵀ(dy) for a channels-first (``last``: channels-last, kernel backends), compute-dtype
        dy of an input of channels-first ``xshape``."""
        if self._engine is None:
            return reference.output_transform_adjoint(dyf, self._tm, self.r, self._points)
        e = self._engine
        desc = self._desc(xshape, last)
        geo = desc.geometry(self._code())
        dM = e.empty((geo["positions"], self.K, geo["num_tiles"]), self._cdtype)
        e.ext.output_transform_adjoint(desc, self._code(), e.ptr(dyf), e.ptr(dM), e.ptr(self._matrices_buffer()),
                                       e.stream())
        return dM

    def _input_adjoint(self, dV: Any, xshape: tuple[int, ...], last: bool = False) -> Any:
        """dx = Iᵀ(dV) of an input of channels-first ``xshape``, channels first (``last``:
        channels last, kernel backends), compute dtype."""
        if self._engine is None:
            return reference.input_transform_adjoint(dV, self._tm, self.r, xshape, self._pads, self._points)
        e = self._engine
        dx = e.empty(self._from_first(xshape) if last else xshape, self._cdtype)
        e.ext.input_transform_adjoint(self._desc(xshape, last), self._code(), e.ptr(dV), e.ptr(dx),
                                      e.ptr(self._matrices_buffer()), e.stream())
        return dx

    def _filter_adjoint(self, dU: Any) -> Any:
        """dw = Gᵀ·dU·G (K×C×r^nd)."""
        if self._engine is None:
            return reference.filter_transform_adjoint(dU, self._tm, self.r, self.ndim, self._points)
        e = self._engine
        dw = e.empty((self.K, self.C // self.groups) + self._tile.r, self._cdtype)
        e.ext.filter_transform_adjoint(self._filter_desc(), self._code(), e.ptr(dU), e.ptr(dw), e.ptr(self._matrices_buffer()),
                                       e.stream())
        return dw


def _settle(engine: Any) -> None:
    """After building lazily cached device state on the current stream: wait for it once, so
    that later calls on other streams never read it unfinished (the plan's own state is
    ordered by its ready event, recorded at construction)."""
    if engine is not None and engine.backend == "cuda":
        engine.xp.cuda.get_current_stream().synchronize()


def _pattern(csr: BatchedCSR) -> Any:
    """The bool structure of a CSR, where it lives (explicit zeros count as entries)."""
    ones = BatchedCSR(csr.row_ptr, csr.col_idx, csr.xp.ones(csr.nnz, np.float64), csr.shape)
    return ones.to_dense() > 0
