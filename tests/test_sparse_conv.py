"""The three sparse variants of the plans (layer.py), on every host backend.

* spatially pruned: ``from_spatial(w, prune=d, relu="spatial")`` equals the direct
  convolution of ReLU(x) with the pruned spatial weights;
* Winograd-domain pruned: ``from_winograd(U, r, prune=d)`` (or ``mask=`` / ``csr=``) equals
  ``reference.winograd_conv_from_U`` with the pruned U;
* Winograd-ReLU: the same with ``relu="winograd"`` equals ``winograd_conv_from_U(relu=True)``.

Errors of the ``from_winograd`` layers are bounded by ``accuracy.tolerance_from_U`` (the ``from_U_bound`` fixture)
(U comes from no spatial filter, so the direct-convolution tolerance does not apply).
"""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import WinogradConv2d, perfmodel, pruning
from magma_wino.reference import conv2d_direct, input_transform, winograd_conv_from_U
from magma_wino.sparse import BatchedCSR

BACKENDS = ["numpy", "emulator"]
DTYPES = [np.float32, np.float64]
DENSITIES = [1.0, 0.5, 0.25, 0.1, 0.05, 0.0]


def dt_id(d) -> str:
    return np.dtype(d).name


def layer_U(rng, m, r, N, C, K, H, W, dtype, ndim=2):
    alpha = m + r - 1
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    U = rng.standard_normal((alpha**ndim, K, C)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, U, b


def check_from_U(y, x, U_used, m, r, pad, bias, relu, dtype, bound_fn, label):
    """y against winograd_conv_from_U(x', U_used) in float64, x' = ReLU(x) for relu="spatial"."""
    xin = np.maximum(x, 0) if relu == "spatial" else x
    ref = winograd_conv_from_U(xin.astype(np.float64), U_used.astype(np.float64), m, r, pad,
                               bias.astype(np.float64) if bias is not None else None,
                               relu=relu == "winograd")
    assert y.shape == ref.shape, f"{label}: {y.shape} vs {ref.shape}"
    assert y.dtype == np.dtype(dtype), f"{label}: dtype {y.dtype}"
    assert not np.isnan(y).any(), f"{label}: NaN (unwritten) outputs"
    tol = bound_fn(dtype, xin, U_used, m, r, pad, relu=relu)
    err = float(np.abs(y.astype(np.float64) - ref).max())
    assert err <= tol, f"{label}: max|y - ref| = {err:.3g} > bound {tol:.3g} (max|ref| {np.abs(ref).max():.3g})"
    return ref


# --------------------------------------------------------------------------- spatially pruned


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("density", [1.0, 0.5, 0.25, 0.1])
@pytest.mark.parametrize("m,r", [(2, 3), (4, 3), (6, 3), (2, 5), (3, 3)], ids=str)
def test_from_spatial_prune_relu_spatial_equals_direct_of_relu_x_and_pruned_w(
        m, r, density, dtype, backend, rng, check_direct):
    N, C, K, H, W = 2, 8, 6, 2 * m + r + 1, 3 * m + r - 1
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, r, r)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    pad = (1, r - 1)
    plan = WinogradConv2d.from_spatial(w, prune=density, bias=b, padding=pad, m=m, backend=backend,
                                       relu="spatial")
    assert not plan.uses_sparse_product  # the transform fills the zeros in again
    wp, mask = pruning.prune_spatial(w, density)
    assert mask.sum() == pruning.kept_count(density, w.size)
    ref = conv2d_direct(np.maximum(x, 0).astype(np.float64), wp.astype(np.float64), b.astype(np.float64), pad)
    check_direct(plan(x), ref, dtype, m, r, C,
                 label=f"{backend} from_spatial d={density} x{x.shape} w{w.shape}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_spatial_without_prune_equals_plain_plan_bitwise(backend, rng):
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    for prune in (None, 1.0):
        a = WinogradConv2d.from_spatial(w, prune=prune, padding=1, m=4, backend=backend)(x)
        b = WinogradConv2d(w, None, 1, m=4, backend=backend)(x)
        assert np.array_equal(a, b), f"{backend} prune={prune}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_relu_spatial_on_plain_plan_equals_direct_of_relu_x(backend, rng, check_direct):
    x = rng.standard_normal((2, 5, 10, 11))
    w = rng.standard_normal((3, 5, 3, 3))
    plan = WinogradConv2d(w, None, 1, m=4, backend=backend, relu="spatial")
    check_direct(plan(x), conv2d_direct(np.maximum(x, 0), w, None, 1), np.float64, 4, 3, 5,
                 label=f"{backend} relu=spatial")


# --------------------------------------------------------------------------- Winograd-domain pruned


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("sparse", [True, False, "auto"], ids=lambda s: f"sparse={s}")
@pytest.mark.parametrize("density", DENSITIES)
def test_from_winograd_prune_equals_reference_from_pruned_U(
        density, sparse, dtype, backend, rng, from_U_bound):
    m, r = 4, 3
    x, U, b = layer_U(rng, m, r, 2, 12, 10, 13, 11, dtype)
    pad = (1, 2)
    plan = WinogradConv2d.from_winograd(U, r, prune=density, bias=b, padding=pad, m=m,
                                        backend=backend, sparse=sparse)
    Up, mask = pruning.prune_winograd(U, density)
    # "auto": the CSR product where the model estimates it faster than the dense one
    auto = perfmodel.choose_product(10, 12, m, r, plan.precision, float(mask.mean()), "csr") == "csr"
    want_sparse = sparse is True or (sparse == "auto" and auto)
    assert plan.uses_sparse_product == want_sparse
    assert plan.weight_density == pytest.approx(mask.mean())
    assert plan.csr is not None and plan.csr.nnz == int(mask.sum())
    np.testing.assert_array_equal(plan.U, Up)
    y = plan(x)
    label = f"{backend} from_winograd prune={density} sparse={sparse} x{x.shape} U{U.shape}"
    check_from_U(y, x, Up, m, r, pad, b, None, dtype, from_U_bound, label)
    if density == 0.0:  # every product is zero: the output is the bias, exactly
        np.testing.assert_array_equal(y, np.broadcast_to(b[None, :, None, None], y.shape))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("m,r", [(2, 3), (4, 3), (6, 3), (2, 5), (3, 3), (3, 2)], ids=str)
def test_winograd_relu_equals_reference_with_relu_true(m, r, dtype, backend, rng, from_U_bound):
    x, U, b = layer_U(rng, m, r, 2, 7, 9, 2 * m + r + 1, m + r + 2, dtype)
    pad = (r - 1, 0)
    for sparse in (True, False):
        plan = WinogradConv2d.from_winograd(U, r, prune=0.3, bias=b, padding=pad, m=m, backend=backend,
                                            relu="winograd", sparse=sparse)
        Up, _ = pruning.prune_winograd(U, 0.3)
        check_from_U(plan(x), x, Up, m, r, pad, b, "winograd", dtype, from_U_bound,
                     f"{backend} winograd-relu F({m},{r}) sparse={sparse} x{x.shape}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_winograd_relu_spatial_equals_reference_of_relu_x(backend, rng, from_U_bound):
    x, U, b = layer_U(rng, 2, 3, 1, 6, 5, 9, 8, np.float64)
    plan = WinogradConv2d.from_winograd(U, 3, prune=0.4, bias=b, padding=1, m=2, backend=backend,
                                        relu="spatial")
    Up, _ = pruning.prune_winograd(U, 0.4)
    check_from_U(plan(x), x, Up, 2, 3, 1, b, "spatial", np.float64, from_U_bound, f"{backend} relu=spatial")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_from_winograd_per_position_prune(dtype, backend, rng, from_U_bound):
    x, U, b = layer_U(rng, 4, 3, 1, 10, 8, 12, 12, dtype)
    plan = WinogradConv2d.from_winograd(U, 3, prune=0.2, per_position=True, bias=b, padding=1, m=4,
                                        backend=backend)
    Up, mask = pruning.prune_winograd(U, 0.2, per_position=True)
    assert (plan.csr.nnz_per_position() == mask.reshape(36, -1).sum(1)).all()
    check_from_U(plan(x), x, Up, 4, 3, 1, b, None, dtype, from_U_bound, f"{backend} per_position")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_from_winograd_with_mask_equals_reference_of_masked_U(dtype, backend, rng, from_U_bound):
    x, U, b = layer_U(rng, 2, 3, 2, 9, 7, 10, 9, dtype)
    mask = rng.random(U.shape) < 0.3
    mask[3] = False  # one position entirely pruned
    mask[5] = True   # one position dense
    for sparse in (True, False):
        plan = WinogradConv2d.from_winograd(U, 3, mask=mask, bias=b, padding=(0, 1), m=2,
                                            backend=backend, sparse=sparse)
        Um = np.where(mask, U, 0).astype(dtype)
        assert plan.csr.nnz == int(mask.sum())
        check_from_U(plan(x), x, Um, 2, 3, (0, 1), b, None, dtype, from_U_bound,
                     f"{backend} mask sparse={sparse}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("relu", [None, "winograd"])
def test_from_winograd_with_csr_equals_reference(relu, dtype, backend, rng, from_U_bound):
    x, U, b = layer_U(rng, 4, 3, 1, 16, 24, 14, 14, dtype)
    Up, mask = pruning.prune_winograd(U, 0.15)
    csr = BatchedCSR.from_dense(Up, mask)
    for sparse in (True, False, "auto"):
        plan = WinogradConv2d.from_winograd(csr=csr, r=3, bias=b, padding=1, m=4, backend=backend,
                                            relu=relu, sparse=sparse)
        assert plan.csr is not None
        assert plan.uses_sparse_product == (sparse is not False)
        np.testing.assert_array_equal(plan.U, Up)
        check_from_U(plan(x), x, Up, 4, 3, 1, b, relu, dtype, from_U_bound,
                     f"{backend} csr relu={relu} sparse={sparse}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_csr_with_unsorted_and_repeated_columns_equals_its_dense_form(backend, rng, from_U_bound):
    """The format allows unsorted / repeated columns (repeats add up): same as to_dense()."""
    m, r, K, C = 2, 3, 2, 3
    pos = (m + r - 1) ** 2
    rows = []
    for _ in range(pos):
        rows.append([[2, 0, 2], []])  # row 0: columns 2, 0, 2 (repeat); row 1 empty
    counts = [len(rw) for p in rows for rw in p]
    row_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    # batched row_ptr repeats each position's boundary
    bp = np.array([[row_ptr[b * K + i] for i in range(K + 1)] for b in range(pos)], np.int32)
    col_idx = np.array([c for p in rows for rw in p for c in rw], np.int32)
    values = rng.standard_normal(col_idx.size)
    csr = BatchedCSR(bp, col_idx, values, (pos, K, C))
    x = rng.standard_normal((1, C, 6, 7))
    plan = WinogradConv2d.from_winograd(csr=csr, r=r, m=m, backend=backend, sparse=True)
    check_from_U(plan(x), x, csr.to_dense(), m, r, 0, None, None, np.float64, from_U_bound,
                 f"{backend} unsorted/repeated csr")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("density", [0.5, 0.1])
def test_sparse_and_dense_products_give_the_same_result(density, dtype, backend, rng, from_U_bound):
    x, U, b = layer_U(rng, 4, 3, 2, 16, 20, 12, 10, dtype)
    ys = [WinogradConv2d.from_winograd(U, 3, prune=density, bias=b, padding=1, m=4, backend=backend,
                                       sparse=s)(x) for s in (True, False)]
    Up, _ = pruning.prune_winograd(U, density)
    # each within the bound of the exact result, so within twice of each other
    tol = 2 * from_U_bound(dtype, x, Up, 4, 3, 1)
    err = float(np.abs(ys[0].astype(np.float64) - ys[1]).max())
    assert err <= tol, f"{backend} density {density}: sparse vs dense {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
def test_density_one_sparse_product_equals_dense_plan(dtype, backend, rng, from_U_bound):
    x, U, b = layer_U(rng, 2, 3, 1, 9, 11, 8, 9, dtype)
    U[U == 0] = 1  # truly dense
    dense = WinogradConv2d.from_winograd(U, 3, bias=b, padding=1, m=2, backend=backend, sparse=False)
    sparse = WinogradConv2d.from_winograd(U, 3, prune=1.0, bias=b, padding=1, m=2, backend=backend,
                                          sparse=True)
    assert sparse.uses_sparse_product and not dense.uses_sparse_product
    assert sparse.weight_density == dense.weight_density == 1.0
    y_d, y_s = dense(x), sparse(x)
    tol = 2 * from_U_bound(dtype, x, U, 2, 3, 1)
    assert float(np.abs(y_d.astype(np.float64) - y_s).max()) <= tol
    check_from_U(y_s, x, U, 2, 3, 1, b, None, dtype, from_U_bound, f"{backend} density 1")


def test_numpy_and_emulator_agree_on_sparse_winograd_relu_layer(rng, from_U_bound):
    x, U, b = layer_U(rng, 4, 3, 2, 24, 16, 14, 14, np.float32)
    ys = {be: WinogradConv2d.from_winograd(U, 3, prune=0.2, bias=b, padding=1, m=4, backend=be,
                                           relu="winograd")(x) for be in BACKENDS}
    Up, _ = pruning.prune_winograd(U, 0.2)
    tol = 2 * from_U_bound(np.float32, x, Up, 4, 3, 1, relu="winograd")
    assert float(np.abs(ys["numpy"].astype(np.float64) - ys["emulator"]).max()) <= tol


# --------------------------------------------------------------------------- activation density


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=dt_id)
@pytest.mark.parametrize("relu", [None, "spatial", "winograd"])
def test_activation_density_is_the_fraction_of_nonzero_V(relu, dtype, backend, rng):
    m, r, pad = 4, 3, 1
    x, U, _ = layer_U(rng, m, r, 2, 6, 4, 11, 13, dtype)
    plan = WinogradConv2d.from_winograd(U, r, padding=pad, m=m, backend=backend, relu=relu)
    d = plan.activation_density(x)
    assert 0.0 <= d <= 1.0
    xin = np.maximum(x, 0) if relu == "spatial" else x
    V = input_transform(xin.astype(np.float64), m, r, pad, relu=relu == "winograd")
    frac = float((V != 0).mean()) if relu != "winograd" else float((V > 0).mean())
    # entries within rounding of zero may land on either side in float32
    near_zero = float((np.abs(V) <= 1e3 * np.finfo(dtype).eps * np.abs(V).max()).mean())
    assert abs(d - frac) <= near_zero + 1e-12, f"{backend} relu={relu}: {d} vs measured {frac}"
    if relu == "winograd":
        assert 0.2 < d < 0.8, f"Winograd-ReLU on random data keeps about half of V, got {d}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_activation_density_of_nonnegative_input_under_spatial_relu_is_below_one_only_at_zeros(backend, rng):
    x = np.abs(rng.standard_normal((1, 3, 8, 8))) + 0.5  # no zeros, positive
    w = rng.standard_normal((2, 3, 3, 3))
    plan = WinogradConv2d(w, None, 0, m=2, backend=backend, relu="spatial")
    assert plan.activation_density(x) == pytest.approx(float((input_transform(x, 2, 3) != 0).mean()))
    zeros = np.zeros_like(x)
    assert plan.activation_density(zeros) == 0.0
    assert plan.activation_density(-x) == 0.0  # ReLU(d) kills every negative input


# --------------------------------------------------------------------------- bad input


def _U(rng, positions=16, K=3, C=2, dtype=np.float64):
    return rng.standard_normal((positions, K, C)).astype(dtype)


@pytest.mark.parametrize("density", [-0.1, 1.5, float("nan")])
def test_prune_density_outside_unit_interval_raises_value_error_naming_prune(density, rng):
    with pytest.raises(ValueError, match="prune"):
        WinogradConv2d.from_winograd(_U(rng), 3, prune=density, m=2, backend="emulator")
    with pytest.raises(ValueError, match="prune"):
        WinogradConv2d.from_spatial(rng.standard_normal((2, 2, 3, 3)), prune=density, m=2)


def test_mask_of_wrong_shape_or_dtype_raises(rng):
    U = _U(rng)
    with pytest.raises(ValueError, match=r"mask must have U's shape"):
        WinogradConv2d.from_winograd(U, 3, mask=np.ones((16, 3, 3), bool), m=2)
    with pytest.raises(TypeError, match="mask must be a bool array"):
        WinogradConv2d.from_winograd(U, 3, mask=np.ones(U.shape), m=2)
    with pytest.raises(ValueError, match="mask or prune"):
        WinogradConv2d.from_winograd(U, 3, mask=np.ones(U.shape, bool), prune=0.5, m=2)


def test_U_with_wrong_number_of_positions_raises_naming_alpha(rng):
    with pytest.raises(ValueError, match=r"U has 36 Winograd positions but F\(2, 3\) in 2D needs alpha\^2 = 16"):
        WinogradConv2d.from_winograd(_U(rng, positions=36), 3, m=2, backend="emulator")
    with pytest.raises(ValueError, match="U must be 3-D"):
        WinogradConv2d.from_winograd(rng.standard_normal((16, 3)), 3, m=2)
    csr = BatchedCSR.from_dense(_U(rng, positions=25))
    with pytest.raises(ValueError, match="Winograd positions"):
        WinogradConv2d.from_winograd(csr=csr, r=3, m=2)


def test_corrupt_csr_raises_value_error_naming_the_field(rng):
    csr = BatchedCSR.from_dense(pruning.prune_winograd(_U(rng), 0.5)[0])
    csr.col_idx[0] = 99  # column out of range (the arrays are mutable)
    with pytest.raises(ValueError, match="col_idx"):
        WinogradConv2d.from_winograd(csr=csr, r=3, m=2, backend="emulator")
    csr = BatchedCSR.from_dense(pruning.prune_winograd(_U(rng), 0.5)[0])
    csr.row_ptr[2, 1] = csr.row_ptr[2, 0] - 1  # decreasing row pointer
    with pytest.raises(ValueError, match="row_ptr"):
        WinogradConv2d.from_winograd(csr=csr, r=3, m=2, backend="numpy")
    with pytest.raises(ValueError):
        BatchedCSR(np.zeros((16, 4), np.int32), np.zeros(3, np.int32), np.zeros(3), (16, 3, 2))


def test_from_winograd_argument_combinations_raise_clear_errors(rng):
    U = _U(rng)
    csr = BatchedCSR.from_dense(U)
    with pytest.raises(TypeError, match="needs r"):
        WinogradConv2d.from_winograd(U, m=2)
    with pytest.raises(ValueError, match="exactly one of U"):
        WinogradConv2d.from_winograd(U, 3, csr=csr, m=2)
    with pytest.raises(ValueError, match="exactly one of U"):
        WinogradConv2d.from_winograd(None, 3, m=2)
    with pytest.raises(TypeError, match="csr must be a BatchedCSR"):
        WinogradConv2d.from_winograd(csr=U, r=3, m=2)
    with pytest.raises(ValueError, match="mask and prune apply to dense U"):
        WinogradConv2d.from_winograd(csr=csr, r=3, prune=0.5, m=2)
    with pytest.raises(ValueError, match="sparse must be"):
        WinogradConv2d.from_winograd(U, 3, m=2, sparse="yes")
    with pytest.raises(ValueError, match="relu must be"):
        WinogradConv2d.from_winograd(U, 3, m=2, relu="leaky")


def test_from_winograd_plan_rejects_wrong_input(rng):
    plan = WinogradConv2d.from_winograd(_U(rng, C=2), 3, prune=0.5, m=2, backend="emulator")
    with pytest.raises(ValueError, match="channel mismatch"):
        plan(rng.standard_normal((1, 3, 8, 8)))
    with pytest.raises(TypeError, match="dtype mismatch"):
        plan(rng.standard_normal((1, 2, 8, 8)).astype(np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        plan(rng.standard_normal((1, 2, 8, 16))[..., ::2])


@pytest.mark.parametrize("backend", ["numpy", "emulator"])
def test_dense_winograd_plan_builds_its_csr_only_when_asked(backend):
    # a from_winograd plan that runs the dense product needs no CSR (the PyTorch layer builds a
    # plan every step); plan.csr builds the same structure on demand
    rng = np.random.default_rng(7)
    U = rng.standard_normal((16, 5, 4))
    mask = rng.random(U.shape) < 0.7
    mask[0, 0, 0] = True
    U[0, 0, 0] = 0.0  # a masked-in exact zero stays an entry of the structure
    plan = WinogradConv2d.from_winograd(U, 3, mask=mask, padding=1, m=2, backend=backend, sparse=False)
    assert plan._csr is None and not plan.uses_sparse_product
    assert plan.weight_density == pytest.approx(mask.mean())
    want = BatchedCSR.from_dense(np.where(mask, U, 0), mask)
    got = plan.csr
    assert got.nnz == want.nnz == int(mask.sum())
    np.testing.assert_array_equal(got.row_ptr, want.row_ptr)
    np.testing.assert_array_equal(got.col_idx, want.col_idx)
    np.testing.assert_array_equal(got.values, want.values)
    sparse = WinogradConv2d.from_winograd(U, 3, mask=mask, padding=1, m=2, backend=backend, sparse=True)
    assert sparse._csr is not None and sparse.csr.nnz == want.nnz
    x = rng.standard_normal((1, 4, 7, 6))
    np.testing.assert_allclose(plan(x), sparse(x), rtol=1e-12, atol=1e-12)
