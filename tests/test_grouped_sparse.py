"""Winograd-domain weights of grouped layers (issue 17): ``from_winograd(U, r, groups=g)`` with U
α^nd×K×(C/g), on every product — dense, CSR, block-sparse, 2:4 — and its backward.

The sparse formats hold the α^nd·g block-diagonal (K/g)×(C/g) matrices (position-major), the
same batch the dense grouped products run.  Oracle: each group on its own — the float64 formula
Aᵀ[U_i ⊙ V_i]A (:func:`magma_wino.reference.winograd_conv_from_U`) of group i's input channels
and filters, concatenated along K (the definition of a grouped convolution); the gradients: the
ungrouped plan of each group (no grouped views at all).  Tolerances from the precision model at
the group's reduction length (C/g)·r²."""

from __future__ import annotations

import numpy as np
import pytest

import magma_wino as mw
from magma_wino import _backend, perfmodel
from magma_wino import precision as _precision
from magma_wino import reference as R
from magma_wino.accuracy import rel_err
from magma_wino.sparse import BatchedCSR

BACKENDS = ["numpy", pytest.param("emulator", marks=pytest.mark.skipif(
    _backend.extension("emulator", required=False) is None, reason="the emulator extension is not built"))]


def per_group_formula(x, U, groups, m, r, pads, relu=False):
    """y of the grouped Winograd-domain layer, one group at a time, in float64."""
    Kg, Cg = U.shape[1] // groups, U.shape[2]
    ys = [R.winograd_conv_from_U(x[:, i * Cg:(i + 1) * Cg], U[:, i * Kg:(i + 1) * Kg], m, r, pads, relu=relu)
          for i in range(groups)]
    return np.concatenate(ys, axis=1)


def tol(mode, m, Cg, r=3):
    return _precision.tolerance(mode, m, r, Cg * r * r, 2)


# (precision, kwargs of from_winograd, the product it must run); K/g = 16 and C/g = 16 are whole
# 16 x 8 blocks and 2:4 groups
CASES = [
    ("fp64", {"sparse": False}, "dense"),
    ("fp64", {"prune": 0.4, "sparse": True}, "csr"),
    ("fp64", {"prune": 0.3, "sparse": True, "relu": "winograd"}, "csr"),
    ("tf32x3", {"prune": 0.5, "sparse": True, "structure": "block"}, "block"),
    ("fp64", {"prune": 0.5, "sparse": True, "structure": "block"}, "block"),
    ("tf32x3", {"sparse": True, "structure": "2:4"}, "2:4"),
    ("fp64", {"prune": 0.05, "sparse": "auto"}, None),
]
IDS = ["dense", "csr", "winograd-relu", "block-tf32x3", "block-fp64", "2:4-tf32x3", "auto"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode,kw,product", CASES, ids=IDS)
def test_grouped_winograd_domain_layer_matches_each_groups_float64_formula(mode, kw, product, backend, rng):
    groups, K, Cg, m = 2, 32, 16, 4
    dt = np.float64 if mode == "fp64" else np.float32
    U = R.filter_transform(rng.standard_normal((K, Cg, 3, 3)), m)
    x = rng.standard_normal((2, Cg * groups, 9, 10))
    plan = mw.WinogradConv2d.from_winograd(U.astype(dt), 3, m=m, padding=1, groups=groups, backend=backend,
                                           precision=mode, **kw)
    assert plan.groups == groups and plan.C == Cg * groups
    assert plan.product == (product or plan.product)
    if product is None:
        assert plan.product != "dense"  # 5 %: the estimate says the sparse product pays
    Up = U * (1 if plan.mask is None else np.asarray(_backend.to_host(plan.mask)))
    Up = Up.astype(dt).astype(np.float64)
    if kw.get("sparse") is not False:
        assert 0 < np.count_nonzero(Up) < Up.size
    y = plan(x.astype(dt))
    ref = per_group_formula(x.astype(dt).astype(np.float64), Up, groups, m, 3, ((1, 1), (1, 1)),
                            relu=kw.get("relu") == "winograd")
    assert y.dtype == dt
    assert rel_err(y, ref) <= tol(mode, m, Cg)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grouped_sparse_formats_hold_the_block_diagonal_matrices(backend, rng):
    """CSR, BSR, 2:4: batch α²·g of (K/g)×(C/g); U and the mask stay α²×K×(C/g)."""
    groups, K, Cg = 4, 32, 8
    U = R.filter_transform(rng.standard_normal((K, Cg, 3, 3)), 2).astype(np.float32)
    csr = mw.WinogradConv2d.from_winograd(U, 3, m=2, prune=0.3, sparse=True, groups=groups, backend=backend,
                                          precision="tf32x3")
    assert csr.csr.shape == (16 * groups, K // groups, Cg)
    assert tuple(csr.U.shape) == (16, K, Cg) and tuple(csr.mask.shape) == (16, K, Cg)
    blk = mw.WinogradConv2d.from_winograd(U, 3, m=2, prune=0.5, sparse=True, structure="block", groups=groups,
                                          backend=backend, precision="tf32x3")
    assert blk.bsr.shape == (16 * groups, K // groups, Cg)
    # K/g = 8 < 16: the blocks are clipped to one group's 8 rows, so the mask is constant over
    # every 8 x 8 block of a group's matrix -- never a block across two groups
    mask = np.asarray(_backend.to_host(blk.mask)).reshape(16, groups, K // groups, Cg)
    assert (mask == mask[:, :, :1, :1]).all()
    assert mask.mean() == pytest.approx(0.5)
    # K/g = 24: 16-row blocks of each group (rows 0..15, 16..23), none across the edge at 24
    U24 = R.filter_transform(rng.standard_normal((48, Cg, 3, 3)), 2).astype(np.float32)
    b24 = mw.WinogradConv2d.from_winograd(U24, 3, m=2, prune=0.5, sparse=True, structure="block", groups=2,
                                          backend=backend, precision="tf32x3")
    keep = np.asarray(_backend.to_host(b24.mask)).reshape(16, 2, 24, Cg)
    for rows in (slice(0, 16), slice(16, 24)):
        assert (keep[:, :, rows] == keep[:, :, rows][:, :, :1, :1]).all()
    sp = mw.WinogradConv2d.from_winograd(U, 3, m=2, sparse=True, structure="2:4", groups=groups, backend=backend,
                                         precision="tf32x3")
    assert sp.sp24.shape == (16 * groups, K // groups, Cg)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("structure,prune", [(None, 0.4), ("block", 0.5)])
def test_grouped_winograd_domain_gradients_equal_each_groups_own_plan(structure, prune, backend, rng):
    """dL/dx, dL/dU of the grouped pruned layer against the ungrouped plan of every group
    (float64; dU zero where the mask is False)."""
    groups, K, Cg = 2, 32, 8
    U = R.filter_transform(rng.standard_normal((K, Cg, 3, 3)), 4)
    x = rng.standard_normal((2, Cg * groups, 8, 9))
    plan = mw.WinogradConv2d.from_winograd(U, 3, m=4, padding=1, groups=groups, backend=backend, prune=prune,
                                           sparse=True, structure=structure)
    mask = np.asarray(_backend.to_host(plan.mask))
    dy = rng.standard_normal(plan.out_shape(x.shape))
    g = plan.backward(x, dy)
    Kg = K // groups
    dxs, dus = [], []
    for i in range(groups):
        one = mw.WinogradConv2d.from_winograd(U[:, i * Kg:(i + 1) * Kg], 3, m=4, padding=1, backend="numpy",
                                              mask=mask[:, i * Kg:(i + 1) * Kg], sparse=False)
        gi = one.backward(x[:, i * Cg:(i + 1) * Cg], dy[:, i * Kg:(i + 1) * Kg])
        dxs.append(gi.grad_input)
        dus.append(gi.grad_weight)
    dx, dU = np.concatenate(dxs, axis=1), np.concatenate(dus, axis=1)
    t = tol("fp64", 4, Cg)
    assert rel_err(_backend.to_host(g.grad_input), dx) <= t
    gU = np.asarray(_backend.to_host(g.grad_weight))
    assert rel_err(gU, dU) <= t
    assert not gU[~mask].any() and gU[mask].any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_grouped_plan_from_a_csr_of_the_block_diagonal_matrices(backend, rng):
    groups, K, Cg = 3, 12, 5
    w = rng.standard_normal((K, Cg, 3, 3))
    U = R.filter_transform(w, 2)
    by_group = U.reshape(16 * groups, K // groups, Cg)  # position-major: (b, group) pairs
    plan = mw.WinogradConv2d.from_winograd(csr=BatchedCSR.from_dense(by_group), r=3, m=2, padding=1, groups=groups,
                                           backend=backend, sparse=True)
    assert plan.product == "csr" and tuple(plan.U.shape) == (16, K, Cg)
    np.testing.assert_array_equal(_backend.to_host(plan.U), U)
    x = rng.standard_normal((1, Cg * groups, 7, 6))
    ref = mw.WinogradConv2d(w, None, 1, 2, "numpy", groups=groups)(x)  # the spatial grouped plan
    assert rel_err(plan(x), ref) <= tol("fp64", 2, Cg)


def test_grouped_winograd_domain_plans_refuse_what_does_not_fit(rng):
    U = R.filter_transform(rng.standard_normal((6, 4, 3, 3)), 2)
    with pytest.raises(ValueError, match="multiple of groups"):
        mw.WinogradConv2d.from_winograd(U, 3, m=2, groups=4, backend="numpy")
    with pytest.raises(ValueError, match=r"csr: with groups=3 .* batch 16 is not a multiple of 3"):
        mw.WinogradConv2d.from_winograd(csr=BatchedCSR.from_dense(U), r=3, m=2, groups=3, backend="numpy")
    with pytest.raises(ValueError, match="groups"):
        mw.WinogradConv2d.from_winograd(U, 3, m=2, groups=0, backend="numpy")
    x = rng.standard_normal((1, 4, 6, 6))  # a grouped plan of 2 groups needs 2 x 4 input channels
    plan = mw.WinogradConv2d.from_winograd(U, 3, m=2, groups=2, backend="numpy")
    with pytest.raises(ValueError, match="C = 8"):
        plan(x)


def test_choose_product_counts_the_groups_block_diagonal_products():
    """The grouped layer's products are α²·g (K/g)×(C/g) matrices: the estimates of that batch."""
    K, C, g, d = 256, 256, 4, 0.1
    got = perfmodel.choose_product(K, C, 4, 3, "tf32", d, "csr", groups=g)
    pos = 36 * g
    dense = perfmodel.estimate_product(pos, K // g, C // g, perfmodel.CHOICE_TILES, "tf32", 1.0, "dense", "h200")
    sparse = perfmodel.estimate_product(pos, K // g, C // g, perfmodel.CHOICE_TILES, "tf32", d, "csr", "h200")
    assert got == ("csr" if sparse.seconds < dense.seconds else "dense")
    with pytest.raises(ValueError, match="groups"):
        perfmodel.choose_product(K, C, 4, 3, "tf32", d, "csr", groups=3)
