"""plan.backward: the gradients of the three-phase layer, checked against oracles that do not
share its code — the direct convolution's gradient written out here (spatial weights), and the
directional derivative of the plan's own forward (Winograd-domain weights, the ReLU modes):
y is linear in U (and, without ReLU, in x), so <plan'(x)·δ, dy> = <grad, δ> up to rounding."""

from __future__ import annotations

import numpy as np
import pytest

import magma_wino as mw
from magma_wino import accuracy
from magma_wino import reference as R
from magma_wino.layer import Gradients


def _has_adjoint_kernels() -> bool:
    from magma_wino import _backend

    ext = _backend.extension("emulator", required=False)
    return ext is not None and hasattr(ext, "output_transform_adjoint")


BACKENDS = ["numpy", pytest.param("emulator", marks=pytest.mark.skipif(
    not _has_adjoint_kernels(), reason="the emulator extension has no adjoint kernels"))]


def direct_backward(x, w, dy, pads):
    return R.conv_direct_backward(x, w, dy, pads)


def _tol(backend, dtype, m, r, reduction_len, nd):
    # the backward is a Winograd layer of the same form (dx: dy with the rotated filter, K
    # channels; dw: a sum over the tiles), so the forward's error model bounds it
    return accuracy.tolerance(np.dtype(dtype), m, r, reduction_len, nd)


SPATIAL_CASES = [  # m, r, x shape (N, C, spatial...), K, padding: off the tile multiples
    (2, 3, (2, 3, 7, 9), 4, 1),
    (4, 3, (1, 2, 9, 6), 3, (0, 2)),
    (2, 5, (1, 2, 8, 7), 2, 4),
    (3, 2, (2, 2, 5, 6), 3, 1),
    (2, 3, (1, 2, 5, 6, 4), 2, (1, 0, 2)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,r,shape,K,pad", SPATIAL_CASES)
def test_spatial_plan_gradients_equal_direct_convolution_gradients_float64(backend, m, r, shape, K, pad):
    rng = np.random.default_rng(10)
    nd = len(shape) - 2
    x = rng.standard_normal(shape)
    w = rng.standard_normal((K, shape[1]) + (r,) * nd)
    b = rng.standard_normal(K)
    cls = mw.WinogradConv2d if nd == 2 else mw.WinogradConv3d
    plan = cls(w, b, pad, m, backend)
    dy = rng.standard_normal(plan.out_shape(shape))
    g = plan.backward(x, dy)
    assert isinstance(g, Gradients) and plan.weights_domain == "spatial"
    dx, dw = direct_backward(x, w, dy, plan.padding)
    assert g.grad_input.shape == x.shape and g.grad_weight.shape == w.shape
    assert accuracy.rel_err(g.grad_input, dx) <= _tol(backend, np.float64, m, r, K * r**nd, nd)
    P = plan._positions_and_tiles(shape)[1]
    assert accuracy.rel_err(g.grad_weight, dw) <= _tol(backend, np.float64, m, r, P * r**nd, nd)
    np.testing.assert_allclose(g.grad_bias, dy.sum(axis=(0,) + tuple(range(2, 2 + nd))), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spatial_plan_gradients_float32_within_derived_tolerance(backend):
    rng = np.random.default_rng(11)
    m, r, K = 4, 3, 5
    x = rng.standard_normal((2, 6, 10, 9)).astype(np.float32)
    w = rng.standard_normal((K, 6, r, r)).astype(np.float32)
    plan = mw.WinogradConv2d(w, None, 1, m, backend, precision="fp32")
    dy = rng.standard_normal(plan.out_shape(x.shape)).astype(np.float32)
    g = plan.backward(x, dy)
    assert g.grad_input.dtype == np.float32 and g.grad_weight.dtype == np.float32 and g.grad_bias is None
    dx, dw = direct_backward(x, w, dy, plan.padding)
    P = plan._positions_and_tiles(x.shape)[1]
    assert accuracy.rel_err(g.grad_input, dx) <= _tol(backend, np.float32, m, r, K * r * r, 2)
    assert accuracy.rel_err(g.grad_weight, dw) <= _tol(backend, np.float32, m, r, P * r * r, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nhwc_plan_gradients_are_the_nchw_gradients_transposed(backend):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    first = mw.WinogradConv2d(w, None, 1, 2, backend)
    last = mw.WinogradConv2d(w, None, 1, 2, backend, layout="NHWC")
    dy = rng.standard_normal(first.out_shape(x.shape))
    g1 = first.backward(x, dy)
    g2 = last.backward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(dy.transpose(0, 2, 3, 1)))
    np.testing.assert_array_equal(g2.grad_input, g1.grad_input.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(g2.grad_weight, g1.grad_weight)


def _directional(plan_of, x, dy, delta_x=None, delta_U=None, eps=1.0):
    """<plan(U + eps δU)(x + eps δx) − plan(U)(x), dy> / eps (central when eps < 1)."""
    lo = plan_of(-eps)(x - eps * delta_x if delta_x is not None else x)
    hi = plan_of(eps)(x + eps * delta_x if delta_x is not None else x)
    return float(np.vdot(hi - lo, dy)) / (2 * eps)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("relu", [None, "winograd", "spatial"])
@pytest.mark.parametrize("m,r", [(2, 3), (4, 3)])
def test_winograd_domain_gradients_match_directional_derivatives(backend, relu, m, r):
    rng = np.random.default_rng(13)
    a = m + r - 1
    x = rng.standard_normal((2, 3, 8, 7))
    U = rng.standard_normal((a * a, 4, 3))
    b = rng.standard_normal(4)
    mask = rng.random(U.shape) < 0.6
    plan = mw.WinogradConv2d.from_winograd(U, r, mask=mask, bias=b, padding=1, m=m, backend=backend, relu=relu)
    assert plan.weights_domain == "winograd" and np.array_equal(np.asarray(plan.mask), mask)
    dy = rng.standard_normal(plan.out_shape(x.shape))
    g = plan.backward(x, dy)
    assert g.grad_weight.shape == U.shape
    assert not np.any(g.grad_weight[~mask]), "pruned entries must get zero gradient"
    dU = rng.standard_normal(U.shape) * mask
    dx = rng.standard_normal(x.shape)
    # y is linear in U: a unit step is exact; in x piecewise linear (ReLU): a small step
    want_U = _directional(lambda e: mw.WinogradConv2d.from_winograd(
        U + e * dU, r, mask=mask, bias=b, padding=1, m=m, backend=backend, relu=relu), x, dy)
    assert float(np.vdot(g.grad_weight, dU)) == pytest.approx(want_U, rel=1e-10)
    eps = 1.0 if relu is None else 1e-6
    want_x = _directional(lambda e: plan, x, dy, delta_x=dx, eps=eps)
    assert float(np.vdot(g.grad_input, dx)) == pytest.approx(want_x, rel=1e-10 if relu is None else 1e-6)
    np.testing.assert_allclose(g.grad_bias, dy.sum(axis=(0, 2, 3)), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_csr_plan_gradients_equal_masked_dense_plan_gradients(backend):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, 5, 9, 8))
    U = rng.standard_normal((16, 6, 5))
    mask = rng.random(U.shape) < 0.2
    dense = mw.WinogradConv2d.from_winograd(U, 3, mask=mask, padding=1, m=2, backend=backend, sparse=False)
    sparse = mw.WinogradConv2d.from_winograd(U, 3, mask=mask, padding=1, m=2, backend=backend, sparse=True)
    assert sparse.uses_sparse_product
    dy = rng.standard_normal(dense.out_shape(x.shape))
    gd, gs = dense.backward(x, dy), sparse.backward(x, dy)
    np.testing.assert_allclose(gs.grad_input, gd.grad_input, rtol=1e-12, atol=1e-12 * np.abs(gd.grad_input).max())
    np.testing.assert_allclose(gs.grad_weight, gd.grad_weight, rtol=1e-12,
                               atol=1e-12 * np.abs(gd.grad_weight).max())
    # a csr= plan (structure given directly) masks with its structure
    csr_plan = mw.WinogradConv2d.from_winograd(csr=sparse.csr, r=3, padding=1, m=2, backend=backend)
    np.testing.assert_array_equal(np.asarray(csr_plan.mask), mask)


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_relu_plan_gradient_is_masked_by_positive_outputs(backend):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((1, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    plain = mw.WinogradConv2d(w, None, 1, 2, backend)
    relu = mw.WinogradConv2d(w, None, 1, 2, backend, output_relu=True)
    dy = rng.standard_normal(plain.out_shape(x.shape))
    want = plain.backward(x, dy * (plain(x) > 0))
    got = relu.backward(x, dy)
    np.testing.assert_allclose(got.grad_input, want.grad_input, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(got.grad_weight, want.grad_weight, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_computes_only_what_is_asked(backend):
    rng = np.random.default_rng(16)
    x = rng.standard_normal((1, 2, 5, 5))
    plan = mw.WinogradConv2d(rng.standard_normal((2, 2, 3, 3)), None, 1, 2, backend)
    dy = rng.standard_normal(plan.out_shape(x.shape))
    full = plan.backward(x, dy)
    only_x = plan.backward(x, dy, weight_grad=False)
    only_w = plan.backward(x, dy, input_grad=False)
    assert only_x.grad_weight is None and only_w.grad_input is None
    np.testing.assert_array_equal(only_x.grad_input, full.grad_input)
    np.testing.assert_array_equal(only_w.grad_weight, full.grad_weight)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_is_deterministic(backend):
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    plan = mw.WinogradConv2d(rng.standard_normal((5, 4, 3, 3)).astype(np.float32), None, 1, 4, backend)
    dy = rng.standard_normal(plan.out_shape(x.shape)).astype(np.float32)
    a, b = plan.backward(x, dy), plan.backward(x, dy)
    np.testing.assert_array_equal(a.grad_input, b.grad_input)
    np.testing.assert_array_equal(a.grad_weight, b.grad_weight)


def test_reference_adjoint_of_identity_points_matches_plan_numpy_backend():
    # plan.backward on the numpy backend is made of the reference adjoints: dM of a plan equals
    # reference.output_transform_adjoint (a guard that backward wires the right functions)
    rng = np.random.default_rng(18)
    x = rng.standard_normal((1, 2, 6, 5))
    U = rng.standard_normal((16, 3, 2))
    plan = mw.WinogradConv2d.from_winograd(U, 3, padding=1, m=2, backend="numpy")
    dy = rng.standard_normal(plan.out_shape(x.shape))
    V = R.input_transform(x, 2, 3, 1)
    want = np.matmul(R.output_transform_adjoint(dy, 2, 3), V.transpose(0, 2, 1))
    np.testing.assert_allclose(plan.backward(x, dy).grad_weight, want, rtol=1e-13, atol=1e-13)


def test_backward_names_bad_arguments():
    rng = np.random.default_rng(19)
    x = rng.standard_normal((1, 2, 5, 5))
    plan = mw.WinogradConv2d(rng.standard_normal((2, 2, 3, 3)), None, 1, 2, "numpy")
    dy = rng.standard_normal(plan.out_shape(x.shape))
    with pytest.raises(ValueError, match="grad_output must have y's shape"):
        plan.backward(x, dy[:, :, :-1])
    with pytest.raises(TypeError, match="dtype mismatch: grad_output"):
        plan.backward(x, dy.astype(np.float32))
    with pytest.raises(TypeError, match="grad_output must be an array"):
        plan.backward(x, 3.0)
    with pytest.raises(TypeError, match="input_grad must be a bool"):
        plan.backward(x, dy, input_grad=1)
    with pytest.raises(ValueError, match="channel mismatch"):
        plan.backward(rng.standard_normal((1, 3, 5, 5)), dy)


@pytest.mark.parametrize("backend", BACKENDS)
def test_validate_backward_group_passes_and_fails_a_gradient_off_by_1e_minus_3(backend, monkeypatch):
    from magma_wino import backward, validate

    sweep = [c for c in validate.cases(True, backend) if c.group == "backward"]
    assert len(sweep) >= 10 and {c.variant for c in sweep} == {"dense", "winograd", "winograd_relu"}
    picked = [c for c in sweep if c.dtype == "float32"][:2] + [c for c in sweep if c.variant != "dense"]
    for c in picked:
        res = validate.run_case(c, backend)
        assert res.ok, (c, res.error, res.bound)
    real = backward.BackwardMixin._output_adjoint  # every weight gradient goes through dM
    monkeypatch.setattr(backward.BackwardMixin, "_output_adjoint", lambda self, dy, xshape, last=False: real(self, dy, xshape, last) * 1.001)
    assert not any(validate.run_case(c, backend).ok for c in picked)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m,r,pad", [(2, 3, 1), (4, 3, 0), (2, 5, 2)])
def test_spatial_data_gradient_by_forward_kernels_equals_adjoint_path(backend, m, r, pad, monkeypatch):
    # spatial plans compute dx by the forward kernels on flip(w)ᵀ; the adjoint path (Uᵀ·dM, Iᵀ)
    # must give the same dx
    from magma_wino import backward

    rng = np.random.default_rng(20)
    x = rng.standard_normal((2, 3, 9, 8))
    plan = mw.WinogradConv2d(rng.standard_normal((4, 3, r, r)), None, pad, m, backend)
    dy = rng.standard_normal(plan.out_shape(x.shape))
    assert plan._dgrad_by_forward()
    by_forward = plan.backward(x, dy, weight_grad=False).grad_input
    monkeypatch.setattr(backward.BackwardMixin, "_dgrad_by_forward", lambda self: False)
    by_adjoint = plan.backward(x, dy, weight_grad=False).grad_input
    tol = _tol(backend, np.float64, m, r, 4 * r * r, 2)
    assert accuracy.rel_err(by_forward, by_adjoint) <= tol


def test_spatial_plan_keeps_its_own_copy_of_w():
    rng = np.random.default_rng(21)
    w = rng.standard_normal((2, 2, 3, 3))
    x = rng.standard_normal((1, 2, 5, 5))
    plan = mw.WinogradConv2d(w, None, 1, 2, "numpy")
    dy = rng.standard_normal(plan.out_shape(x.shape))
    before = plan.backward(x, dy).grad_input
    w[...] = 0  # the caller reuses its buffer: the plan's forward and backward must not change
    np.testing.assert_array_equal(plan.backward(x, dy).grad_input, before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spatially_pruned_plan_gets_zero_gradient_at_pruned_taps(backend):
    rng = np.random.default_rng(22)
    x = rng.standard_normal((1, 3, 7, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    plan = mw.WinogradConv2d.from_spatial(w, prune=0.3, padding=1, m=2, backend=backend)
    keep = np.asarray(plan.mask)
    assert keep.shape == w.shape and keep.dtype == np.bool_ and 0 < keep.sum() < keep.size
    dy = rng.standard_normal(plan.out_shape(x.shape))
    g = plan.backward(x, dy)
    assert not np.any(g.grad_weight[~keep])
    wp = np.where(keep, w, 0)
    dx, dw = R.conv_direct_backward(x, wp, dy, plan.padding)
    assert accuracy.rel_err(g.grad_weight, dw * keep) <= _tol(backend, np.float64, 2, 3, 56 * 9, 2)
    assert accuracy.rel_err(g.grad_input, dx) <= _tol(backend, np.float64, 2, 3, 4 * 9, 2)
    assert mw.WinogradConv2d(w, None, 1, 2, backend).mask is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_precision_plan_differentiates_the_rounded_weights(backend):
    # the forward of an fp16 plan multiplies U rounded to binary16: dx takes the adjoint path
    # with that U, not a plan of the unrounded flip(w)ᵀ
    from magma_wino import precision as P

    rng = np.random.default_rng(23)
    x = rng.standard_normal((1, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    plan = mw.WinogradConv2d(w, None, 1, 2, backend, precision="fp16", allow_inaccurate=True)
    assert not plan._dgrad_by_forward()
    dy = rng.standard_normal(plan.out_shape(x.shape)).astype(np.float32)
    g = plan.backward(x, dy)
    U16 = P.from_storage(np.asarray(plan.U), "fp16").astype(np.float64)
    want = R.input_transform_adjoint(np.matmul(U16.transpose(0, 2, 1), R.output_transform_adjoint(
        dy.astype(np.float64), 2, 3)), 2, 3, x.shape, 1)
    assert accuracy.rel_err(g.grad_input, want) <= _tol(backend, np.float32, 2, 3, 5 * 9, 2)
