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
    with pytest.raises(ValueError, match=r"^V must have shape \(64, 3, P\)"):
        plan.multiply(np.ones((64, 4, 10)))
