"""magma_wino.cost: exact counts, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from magma_wino.cost import (
    C3D_LAYERS,
    VGG16_LAYERS,
    cost_table,
    format_table,
    layer_cost,
    matvec_cost,
    transform_cost,
)
from magma_wino.transforms import winograd

# F(2,3) with the default points 0, 1, -1, inf, written out by hand.
BT_23 = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]]
AT_23 = [[1, 1, 1, 0], [0, 1, -1, 1]]
G_23 = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]


def test_f23_matrices_are_the_hand_written_ones() -> None:
    AT, G, BT = winograd(2, 3).matrices()
    np.testing.assert_array_equal(BT, BT_23)
    np.testing.assert_array_equal(AT, AT_23)
    np.testing.assert_array_equal(G, G_23)


def test_matvec_cost_f23_by_hand() -> None:
    # Bᵀ: 4 rows x 2 nonzeros, all ±1: no multiplication, 1 addition per row.
    assert matvec_cost(BT_23) == (0, 4)
    # Aᵀ: rows of 3 nonzeros ±1: 2 additions each.
    assert matvec_cost(AT_23) == (0, 4)
    # G: the two rows of halves: 3 multiplications and 2 additions each.
    assert matvec_cost(G_23) == (6, 4)


def test_transform_cost_f23_2d_and_3d_by_hand() -> None:
    # 2D input: 4 column + 4 row transforms = 8, 4 additions each.
    assert transform_cost(BT_23, 2) == (0, 32, 8)
    # 2D output: 4 column transforms (4 -> 2), then 2 row transforms = 6.
    assert transform_cost(AT_23, 2) == (0, 24, 6)
    # 2D filter: 3 column transforms (3 -> 4), then 4 row transforms = 7.
    assert transform_cost(G_23, 2) == (42, 28, 7)
    # 3D input: 3 axes x 16 lines = 48; output 16 + 8 + 4 = 28.
    assert transform_cost(BT_23, 3) == (0, 192, 48)
    assert transform_cost(AT_23, 3) == (0, 112, 28)


def test_matvec_cost_f43_input_transform_by_hand() -> None:
    BT = [[4, 0, -5, 0, 1, 0], [0, 4, 4, -1, -1, 0], [0, -4, 4, 1, -1, 0],
          [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    np.testing.assert_array_equal(winograd(4, 3).matrices()[2], BT)
    # every row has two coefficients not in {0, ±1}; nonzeros 3,4,4,4,4,3 -> adds 2+3+3+3+3+2
    assert matvec_cost(BT) == (12, 16)


def test_layer_cost_f23_small_layer_by_hand() -> None:
    # N=1, C=3, K=2, 6x6 input, no padding: 4x4 output, 2x2 tiles of 2x2, P = 4.
    c = layer_cost(1, 3, 2, 6, r=3, m=2, padding=0)
    assert c.P == 4 and c.tiles == (2, 2) and c.out_size == (4, 4)
    assert (c.input_mults, c.input_adds) == (0, 4 * 3 * 32)
    assert (c.product_mults, c.product_adds) == (16 * 2 * 3 * 4, 16 * 2 * 2 * 4)
    assert (c.output_mults, c.output_adds) == (0, 4 * 2 * 24)
    assert (c.filter_mults, c.filter_adds) == (2 * 3 * 42, 2 * 3 * 28)
    assert c.direct_mults == 2 * 16 * 27 and c.direct_adds == 2 * 16 * 26
    assert c.mults == 384 and c.adds == 384 + 256 + 192
    assert c.mults_per_output == pytest.approx(384 / 32)


def test_edge_tiles_are_counted_whole() -> None:
    # 5x5 output with m = 2: 3x3 tiles (the last row/column half clipped), P = 9.
    c = layer_cost(1, 1, 1, 7, r=3, m=2, padding=0)
    assert c.out_size == (5, 5) and c.P == 9
    assert c.output_adds == 9 * 24 and c.product_mults == 9 * 16
    assert c.direct_mults == 25 * 9


def test_products_dense_equal_positions_K_C_P_and_scale_with_nnz() -> None:
    N, C, K, H, m = 2, 8, 5, 10, 4
    dense = layer_cost(N, C, K, H, 3, m, 1)
    alpha = m + 2
    P = N * math.ceil(10 / m) ** 2
    assert dense.product_mults == alpha**2 * K * C * P
    half = layer_cost(N, C, K, H, 3, m, 1, variant="winograd", nnz=alpha**2 * K * C // 2)
    assert half.product_mults == dense.product_mults // 2
    assert half.input_mults == dense.input_mults and half.output_mults == dense.output_mults


def test_products_from_actual_U_count_rows_exactly() -> None:
    rng = np.random.default_rng(0)
    U = rng.standard_normal((16, 3, 4)) * (rng.random((16, 3, 4)) < 0.4)
    c = layer_cost(1, 4, 3, 6, 3, 2, 0, variant="winograd", U=U)
    n = (U != 0).sum(axis=2)
    assert c.product_mults == 4 * n.sum()
    assert c.product_adds == 4 * sum(max(int(v) - 1, 0) for v in n.ravel())
    assert c.weight_nnz == np.count_nonzero(U)


def test_winograd_relu_with_activation_density_one_equals_winograd_pruned() -> None:
    a = layer_cost(1, 64, 64, 56, 3, 4, 1, variant="winograd", weight_density=0.3)
    b = layer_cost(1, 64, 64, 56, 3, 4, 1, variant="winograd_relu", weight_density=0.3, activation_density=1.0)
    assert (a.mults, a.adds) == (b.mults, b.adds)


def test_winograd_relu_expected_counts_formula() -> None:
    c = layer_cost(1, 10, 4, 6, 3, 2, 0, variant="winograd_relu", nnz=16 * 4 * 5, activation_density=0.5)
    # per position 20 nonzeros over 4 rows -> 5 per row; P = 4
    assert c.product_mults == pytest.approx(4 * 16 * 20 * 0.5)
    assert c.product_adds == pytest.approx(4 * 16 * 4 * (5 * 0.5 - 1 + 0.5**5))


def test_winograd_relu_exact_counts_with_actual_V_match_brute_force() -> None:
    rng = np.random.default_rng(1)
    U = rng.standard_normal((16, 3, 4)) * (rng.random((16, 3, 4)) < 0.5)
    V = np.maximum(rng.standard_normal((16, 4, 4)), 0)
    c = layer_cost(1, 4, 3, 6, 3, 2, 0, variant="winograd_relu", U=U, V=V)
    mults = adds = 0
    for b in range(16):
        for k in range(3):
            for p in range(4):
                cnt = sum(1 for ch in range(4) if U[b, k, ch] != 0 and V[b, ch, p] != 0)
                mults += cnt
                adds += max(cnt - 1, 0)
    assert (c.product_mults, c.product_adds) == (mults, adds)


def test_spatial_variant_products_stay_dense() -> None:
    d = layer_cost(1, 16, 16, 14, 3, 4, 1)
    s = layer_cost(1, 16, 16, 14, 3, 4, 1, variant="spatial", weight_density=0.1)
    assert s.product_mults == d.product_mults
    assert s.direct_sparse_mults == 14 * 14 * round(0.1 * 16 * 16 * 9)


def test_direct_counts() -> None:
    c = layer_cost(2, 5, 7, (9, 11), 3, 2, 1, bias=True)
    outs = 2 * 7 * 9 * 11
    assert c.direct_mults == outs * 5 * 9
    assert c.direct_adds == outs * (5 * 9 - 1) + outs
    assert c.bias_adds == outs


@pytest.mark.parametrize("layer", [layer for layer in VGG16_LAYERS if layer[0] >= 64])
def test_vgg_f43_dense_mults_per_output_in_plausible_band(layer: tuple[int, int, int, int]) -> None:
    C, K, H, W = layer
    c = layer_cost(1, C, K, (H, W), 3, 4, 1)
    assert 36 / 16 * C < c.mults_per_output < 9 * C
    assert 0.2 < c.mult_ratio < 0.4


def test_vgg_and_c3d_layer_lists() -> None:
    assert len(VGG16_LAYERS) == 13 and len(C3D_LAYERS) == 8
    assert VGG16_LAYERS[0] == (3, 64, 224, 224) and VGG16_LAYERS[-1] == (512, 512, 14, 14)
    assert all(len(layer) == 5 for layer in C3D_LAYERS)
    c = layer_cost(1, *C3D_LAYERS[2][:2], C3D_LAYERS[2][2:], 3, 2, 1, ndim=3)
    assert c.direct_mults_per_output == 128 * 27
    assert c.product_mults == 64 * 256 * 128 * (4 * 14 * 14)


def test_cost_table_and_format() -> None:
    rows = cost_table(VGG16_LAYERS, ms=(4,), configs=[("dense", 1.0, 1.0)])
    assert len(rows) == 14 and rows[-1]["layer"] == "total"
    text = format_table(rows)
    assert "F(4,3)" in text and "total" in text
    assert "|" in format_table(rows, markdown=True)


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="variant"):
        layer_cost(1, 2, 2, 8, variant="sparse")
    with pytest.raises(ValueError, match="weight_density"):
        layer_cost(1, 2, 2, 8, variant="winograd", weight_density=1.5)
    with pytest.raises(ValueError, match="activation_density"):
        layer_cost(1, 2, 2, 8, variant="winograd", activation_density=0.5)
    with pytest.raises(ValueError, match="dense"):
        layer_cost(1, 2, 2, 8, weight_density=0.5)
    with pytest.raises(ValueError, match="U must have shape"):
        layer_cost(1, 2, 2, 8, variant="winograd", U=np.ones((16, 2, 3)))


def test_winograd_domain_pruning_then_reference_equals_formula_by_hand() -> None:
    ref = pytest.importorskip("magma_wino.reference")
    if not hasattr(ref, "winograd_conv_from_U"):
        pytest.skip("reference.winograd_conv_from_U not available yet")
    from magma_wino.pruning import prune_winograd

    rng = np.random.default_rng(7)
    m, r, N, C, K, H = 2, 3, 1, 2, 3, 6
    x = rng.standard_normal((N, C, H, H))
    w = rng.standard_normal((K, C, r, r))
    U = ref.filter_transform(w, m)
    Up, _ = prune_winograd(U, 0.4, per_position=True)
    y = ref.winograd_conv_from_U(x, Up, m, r, padding=0)
    AT, _, BT = winograd(m, r).matrices()
    alpha = m + r - 1
    out = H - r + 1
    expect = np.zeros((N, K, out, out))
    for th in range(out // m):
        for tw in range(out // m):
            d = x[0, :, th * m : th * m + alpha, tw * m : tw * m + alpha]
            for k in range(K):
                acc = sum(Up[:, k, c].reshape(alpha, alpha) * (BT @ d[c] @ BT.T) for c in range(C))
                expect[0, k, th * m : th * m + m, tw * m : tw * m + m] = AT @ acc @ AT.T
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)


def test_row_histograms_give_the_counts_of_explicit_rows() -> None:
    """nnz spread evenly over rows, kept as (row nonzeros, rows) pairs, counts as the rows do."""
    K, C, positions = 5, 7, 16
    per_pos = [int(n) for n in np.random.default_rng(3).integers(0, K * C + 1, positions)]
    lc = layer_cost(1, C, K, 8, variant="winograd_relu", nnz=per_pos, activation_density=0.4)
    rows = np.array([[n // K + (i < n % K) for i in range(K)] for n in per_pos], dtype=np.float64)
    a = 0.4
    assert lc.weight_nnz == sum(per_pos)
    assert lc.product_mults == pytest.approx(lc.P * (rows * a).sum(), rel=1e-12)
    assert lc.product_adds == pytest.approx(lc.P * (rows * a - 1 + (1 - a) ** rows).sum(), rel=1e-12)
    exact = layer_cost(1, C, K, 8, variant="winograd", nnz=per_pos)
    assert exact.product_adds == exact.P * int(np.maximum(rows - 1, 0).sum())


def test_huge_layers_are_counted_not_allocated() -> None:
    lc = layer_cost(10**6, 10**9, 10**9, 10**4, variant="winograd", weight_density=0.25)
    assert lc.weight_nnz == 16 * (10**18 // 4)
    assert isinstance(lc.product_mults, int) and lc.product_mults == lc.P * lc.weight_nnz  # no int64 overflow


@pytest.mark.parametrize("kw,exc,match", [
    (dict(spatial_size=None), TypeError, r"^spatial_size must be an int or a sequence"),
    (dict(spatial_size=2.5), TypeError, r"^spatial_size"),
    (dict(spatial_size="88"), TypeError, r"^spatial_size"),
    (dict(padding=None), TypeError, r"^padding must be an int or a sequence"),
    (dict(padding=(1, 1, 1)), ValueError, r"^padding must have 2 entries"),
    (dict(ndim=2.0), TypeError, r"^ndim must be an int"),
    (dict(variant=None), TypeError, r"^variant must be one of"),
    (dict(bias="yes"), TypeError, r"^bias must be a bool"),
    (dict(variant="winograd", nnz=True), TypeError, r"^nnz must be an int"),
    (dict(variant="winograd", nnz=[1, [2]]), ValueError, r"^nnz must be an int or 16 ints"),
    (dict(variant="winograd", nnz=[0.5] * 16), TypeError, r"^nnz must be an int or 16 ints"),
    (dict(variant="winograd_relu", activation_density="abc"), TypeError, r"^activation_density"),
    (dict(variant="winograd_relu", activation_density=True), TypeError, r"^activation_density"),
])
def test_layer_cost_bad_argument_types_name_the_argument(kw, exc, match) -> None:
    args = dict(N=1, C=2, K=2, spatial_size=8)
    args.update(kw)
    with pytest.raises(exc, match=match):
        layer_cost(**args)


def test_cost_table_errors_of_a_layer_say_which_layer() -> None:
    with pytest.raises(ValueError, match=r"^layers\[1\] = \(3, 4, 2, 2\) with ms\[0\] = 2 .*smaller than r = 3"):
        cost_table([(3, 4, 8, 8), (3, 4, 2, 2)], [2], padding=0)
    with pytest.raises(ValueError, match=r"^layers\[0\] must be \(C, K, \*spatial\) with 5 entries"):
        cost_table([(3, 4, 8, 8)], [2], ndim=3)
    with pytest.raises(TypeError, match=r"^layers\[0\]\[0\] must be an int, got bool"):
        cost_table([(True, 4, 8, 8)], [2])
    with pytest.raises(ValueError, match=r"^configs\[0\]: weight_density must be in \[0, 1\]"):
        cost_table([(3, 4, 8, 8)], [2], [("winograd", 1.5, 1.0)])


# --------------------------------------------------------------------------- conv_cost: any convolution


def test_conv_cost_of_a_plain_layer_is_layer_cost():
    from magma_wino.cost import conv_cost

    c = conv_cost(2, 16, 32, (14, 13), (3, 3), padding=1, m=4)
    lc = layer_cost(2, 16, 32, (14, 13), 3, 4, 1)
    assert (c["mults"], c["adds"], c["direct_mults"]) == (lc.mults, lc.adds, lc.direct_mults)
    assert c["gathered"] == c["scattered"] == 0 and c["inner"] == (2, 16, 32, (16, 15), 3)


def test_conv_cost_of_groups_is_groups_times_one_group():
    from magma_wino.cost import conv_cost

    c = conv_cost(1, 32, 64, (28, 28), (3, 3), padding=1, groups=4, m=4)
    one = layer_cost(1, 8, 16, (30, 30), 3, 4, 0)
    assert c["mults"] == 4 * one.mults and c["adds"] == 4 * one.adds
    assert c["direct_mults"] == 64 * 28 * 28 * 8 * 9


def test_conv_cost_of_stride_and_dilation_counts_the_phase_layer_and_its_copies():
    from magma_wino.cost import conv_cost

    s2 = conv_cost(1, 8, 8, (15, 14), (3, 3), stride=2, padding=1, m=4)  # out 8×7, phases 4, L = 2
    assert s2["inner"] == (1, 32, 8, (9, 8), 2)
    assert s2["gathered"] == 32 * 9 * 8 and s2["scattered"] == 0
    assert s2["direct_mults"] == 8 * 8 * 7 * 8 * 9
    d2 = conv_cost(1, 8, 8, (12, 12), (3, 3), padding=2, dilation=2, m=4)  # 4 output phases of 6×6
    assert d2["inner"] == (4, 8, 8, (8, 8), 3) and d2["scattered"] == 8 * 12 * 12
    # ResNet's 7×7 stride-2 conv1 as F(4, 4) over 4C phase channels: well under direct
    assert conv_cost(1, 64, 64, (56, 56), (7, 7), stride=2, padding=3, m=4)["mult_ratio"] < 0.3


def test_conv_cost_refuses_groups_that_do_not_divide():
    from magma_wino.cost import conv_cost

    with pytest.raises(ValueError, match="multiples of groups = 3"):
        conv_cost(1, 8, 9, (8, 8), (3, 3), groups=3)
