"""The public phases of a plan (transform_input -> multiply -> transform_output) compose to
plan(x) and each matches its NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import WinogradConv2d, WinogradConv3d, reference

BACKENDS = ["numpy", "emulator"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sparse", [False, True])
def test_phases_compose_to_the_plan_call_2d_F4x4_3x3(backend, sparse):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 11, 9))
    w = rng.standard_normal((5, 6, 3, 3))
    b = rng.standard_normal(5)
    if sparse:
        U = reference.filter_transform(w, 4)
        plan = WinogradConv2d.from_winograd(U, 3, prune=0.3, bias=b, padding=1, m=4, backend=backend, sparse=True)
    else:
        plan = WinogradConv2d(w, b, 1, 4, backend)
    V = plan.transform_input(x)
    np.testing.assert_allclose(V, reference.input_transform(x, 4, 3, 1), rtol=1e-12, atol=1e-12)
    M = plan.multiply(V)
    np.testing.assert_allclose(M, np.matmul(plan.U, V), rtol=1e-12, atol=1e-12)
    y = plan.transform_output(M, x.shape, out=np.full(plan.out_shape(x.shape), np.nan))
    np.testing.assert_array_equal(y, plan(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_multiply_rejects_V_of_the_wrong_shape(backend):
    plan = WinogradConv3d(np.ones((2, 3, 3, 3, 3)), m=2, backend=backend)
    with pytest.raises(ValueError, match=r"^V must have shape \(64, 3, 10\), got \(64, 4, 10\)"):
        plan.multiply(np.ones((64, 4, 10)))
    with pytest.raises(ValueError, match=r"^V must be 3-D"):
        plan.multiply(np.ones((64, 3)))


# The C layer trusts the sizes it is given: every array a phase hands it is checked first,
# so none of these can read or write out of bounds (the review found that they could).


@pytest.fixture
def plan_and_V():
    rng = np.random.default_rng(3)
    plan = WinogradConv2d(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), padding=1, m=2,
                          backend="emulator")
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    return plan, x, plan.transform_input(x)


def test_multiply_rejects_an_out_too_small(plan_and_V):
    plan, _, V = plan_and_V
    with pytest.raises(ValueError, match=r"^out must have shape \(16, 4, 16\), got \(16, 2, 16\)"):
        plan.multiply(V, out=np.empty((16, 2, 16), np.float32))


def test_multiply_rejects_V_of_another_dtype(plan_and_V):
    plan, _, V = plan_and_V
    with pytest.raises(TypeError, match=r"^V must be float32, got float64"):
        plan.multiply(V.astype(np.float64))


def test_multiply_rejects_a_non_contiguous_V(plan_and_V):
    plan, _, V = plan_and_V
    wide = np.zeros((16, 3, 32), np.float32)
    with pytest.raises(ValueError, match=r"V must be C-contiguous"):
        plan.multiply(wide[:, :, ::2])


def test_transform_output_rejects_M_that_does_not_match_x_shape(plan_and_V):
    plan, x, V = plan_and_V
    M = plan.multiply(V)
    with pytest.raises(ValueError, match=r"^M must have shape \(16, 4, 48\), got \(16, 4, 16\)"):
        plan.transform_output(M, (3, 3, 8, 8))  # N = 3 needs three times the tiles
    with pytest.raises(ValueError, match=r"^x_shape must be"):
        plan.transform_output(M, (1, 5, 8, 8))


def test_transform_output_rejects_a_wrong_or_read_only_out(plan_and_V):
    plan, x, V = plan_and_V
    M = plan.multiply(V)
    with pytest.raises(ValueError, match=r"^out must have shape \(1, 4, 8, 8\)"):
        plan.transform_output(M, x.shape, out=np.empty((1, 4, 4, 4), np.float32))
    ro = np.empty((1, 4, 8, 8), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match=r"^out is read-only"):
        plan.transform_output(M, x.shape, out=ro)
    with pytest.raises(ValueError, match=r"^out is read-only"):
        plan(x, out=ro)
