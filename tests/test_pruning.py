"""magma_wino.pruning: densities, ties, filter pruning, masks, errors."""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import pruning
from magma_wino.pruning import (
    apply_mask,
    drop_input_channels,
    kept_count,
    magnitude_mask,
    measured_density,
    prune_filters,
    prune_spatial,
    prune_winograd,
    prune_winograd_blocks,
)


@pytest.mark.parametrize("density", [0.0, 0.07, 0.1, 0.3, 0.5, 0.77, 1.0])
def test_prune_spatial_reaches_density_within_one_element(density: float) -> None:
    w = np.random.default_rng(0).standard_normal((8, 5, 3, 3))
    wp, mask = prune_spatial(w, density)
    assert abs(int(mask.sum()) - density * w.size) <= 0.5
    assert np.count_nonzero(wp) == mask.sum()  # gaussian data has no exact zeros
    # the kept entries are the largest ones
    if 0 < mask.sum() < w.size:
        assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()


@pytest.mark.parametrize("density", [0.1, 0.3, 0.55])
def test_prune_winograd_per_position_keeps_round_density_times_KC_each(density: float) -> None:
    U = np.random.default_rng(1).standard_normal((16, 7, 9))
    Up, mask = prune_winograd(U, density, per_position=True)
    per_pos = mask.reshape(16, -1).sum(axis=1)
    assert np.all(per_pos == int(np.floor(density * 63 + 0.5)))
    for b in range(16):  # largest within each position
        kept, dropped = np.abs(U[b][mask[b]]), np.abs(U[b][~mask[b]])
        assert kept.min() >= dropped.max()
    np.testing.assert_array_equal(Up, np.where(mask, U, 0))


def test_prune_winograd_per_layer_uses_one_threshold_and_unequal_positions() -> None:
    rng = np.random.default_rng(2)
    U = rng.standard_normal((16, 6, 6)) * np.linspace(0.1, 3, 16)[:, None, None]
    _, mask = prune_winograd(U, 0.25, per_position=False)
    assert mask.sum() == round(0.25 * U.size)
    assert np.abs(U[mask]).min() >= np.abs(U[~mask]).max()
    d = measured_density(np.where(mask, U, 0), axis_groups=0)
    assert d[-1] > d[0]  # larger positions keep more


def test_ties_keep_lower_flat_index() -> None:
    a = np.array([[1.0, -2.0, 2.0], [2.0, 0.5, -2.0]])
    mask = magnitude_mask(a, 3 / 6)
    # the four |2| entries are at flat 1, 2, 3, 5: the lower three are kept
    np.testing.assert_array_equal(mask, [[False, True, True], [True, False, False]])
    np.testing.assert_array_equal(magnitude_mask(np.ones(5), 0.4), [True, True, False, False, False])


def test_ties_deterministic_per_group() -> None:
    a = np.ones((2, 2, 3))
    mask = magnitude_mask(a, 0.5, axis_groups=0)
    np.testing.assert_array_equal(mask[0], [[True, True, True], [False, False, False]])
    np.testing.assert_array_equal(mask[1], mask[0])


def test_kept_count_rounds_half_up() -> None:
    assert kept_count(0.5, 3) == 2
    assert kept_count(0.5, 5) == 3
    assert kept_count(0.1, 9) == 1
    assert kept_count(0.0, 9) == 0
    assert kept_count(1.0, 9) == 9


def test_mask_reapplies_after_update() -> None:
    rng = np.random.default_rng(3)
    U = rng.standard_normal((4, 3, 3))
    Up, mask = prune_winograd(U, 0.3)
    updated = Up + rng.standard_normal(U.shape)  # a gradient step refills the zeros
    again = apply_mask(updated, mask)
    assert np.all(again[~mask] == 0)
    np.testing.assert_array_equal(again[mask], updated[mask])
    assert again.dtype == U.dtype


def test_apply_mask_turns_nan_in_pruned_positions_into_zero() -> None:
    a = np.array([np.nan, 1.0])
    np.testing.assert_array_equal(apply_mask(a, np.array([False, True])), [0.0, 1.0])


def test_prune_filters_keeps_highest_norms_and_returns_sorted_indices() -> None:
    rng = np.random.default_rng(4)
    w = rng.standard_normal((6, 3, 3, 3))
    scale = np.array([0.1, 5.0, 0.2, 3.0, 0.3, 4.0])
    w = w / np.linalg.norm(w.reshape(6, -1), axis=1)[:, None, None, None] * scale[:, None, None, None]
    kept_w, idx = prune_filters(w, 3)
    np.testing.assert_array_equal(idx, [1, 3, 5])
    np.testing.assert_array_equal(kept_w, w[[1, 3, 5]])
    _, idx_f = prune_filters(w, keep_fraction=0.5)
    np.testing.assert_array_equal(idx_f, [1, 3, 5])


def test_prune_filters_ties_keep_lower_index() -> None:
    w = np.ones((4, 2, 3, 3))
    _, idx = prune_filters(w, 2)
    np.testing.assert_array_equal(idx, [0, 1])


def test_drop_input_channels_follows_filter_pruning() -> None:
    rng = np.random.default_rng(5)
    w1, w2 = rng.standard_normal((6, 3, 3, 3)), rng.standard_normal((4, 6, 3, 3))
    _, idx = prune_filters(w1, 4)
    w2k = drop_input_channels(w2, idx)
    assert w2k.shape == (4, 4, 3, 3)
    np.testing.assert_array_equal(w2k, w2[:, idx])


@pytest.mark.parametrize("density", [-0.1, 1.5, float("nan")])
def test_bad_density_raises_value_error_naming_density(density: float) -> None:
    with pytest.raises(ValueError, match="density"):
        prune_spatial(np.ones((2, 2, 3, 3)), density)


@pytest.mark.parametrize("density", ["0.5", None, True])
def test_density_of_wrong_type_raises_type_error(density: object) -> None:
    with pytest.raises(TypeError, match="density"):
        prune_winograd(np.ones((4, 2, 2)), density)  # type: ignore[arg-type]


def test_bad_mask_shape_and_dtype() -> None:
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="mask"):
        apply_mask(a, np.ones((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="mask"):
        apply_mask(a, np.ones((2, 3)))


def test_bad_filter_and_channel_arguments() -> None:
    w = np.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match="keep"):
        prune_filters(w, 5)
    with pytest.raises(ValueError, match="keep"):
        prune_filters(w, 0)
    with pytest.raises(TypeError):
        prune_filters(w, 2, keep_fraction=0.5)
    with pytest.raises(ValueError, match="kept_indices"):
        drop_input_channels(w, np.array([0, 2]))
    with pytest.raises(ValueError, match="kept_indices"):
        drop_input_channels(w, np.array([1, 1]))
    with pytest.raises(ValueError, match="U"):
        prune_winograd(np.ones((4, 4)), 0.5)
    with pytest.raises(ValueError, match="a contains NaN"):
        magnitude_mask(np.array([np.nan, 1.0]), 0.5)


def test_messages_name_the_users_arrays_and_the_callers_density_name() -> None:
    w = np.ones((2, 2, 3, 3))
    w[1, 1, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"^w contains NaN"):
        prune_spatial(w, 0.5)
    with pytest.raises(ValueError, match=r"^U contains NaN"):
        prune_winograd(np.full((4, 2, 2), np.inf), 0.5, per_position=True)
    with pytest.raises(ValueError, match=r"^prune must be in \[0, 1\]"):
        prune_winograd(np.ones((4, 2, 2)), 2.0, density_name="prune")
    with pytest.raises(TypeError, match=r"^prune must be a real number"):
        prune_spatial(np.ones((2, 2, 3, 3)), "0.5", density_name="prune")
    pruned, mask = prune_spatial(np.arange(18.0).reshape(1, 2, 3, 3), 0.5, density_name="prune")
    assert mask.sum() == 9 and (pruned[mask] >= 9).all()


def test_kept_count_size_type_and_value_errors() -> None:
    for bad in (True, 2.5, np.float64(3), "3", None):
        with pytest.raises(TypeError, match=r"^size must be an int"):
            kept_count(0.5, bad)
    with pytest.raises(ValueError, match=r"^size must be an int >= 0, got -1"):
        kept_count(0.5, -1)
    assert kept_count(0.5, np.int64(3)) == 2


def test_prune_filters_refuses_empty_w_and_drop_input_channels_ragged_indices() -> None:
    for shape in ((0, 2, 3, 3), (3, 0, 3, 3), (3, 2, 0, 3)):
        with pytest.raises(ValueError, match=r"^w must not be empty"):
            prune_filters(np.zeros(shape), keep_fraction=1.0)
    with pytest.raises(ValueError, match=r"^kept_indices must be a 1-D sequence"):
        drop_input_channels(np.ones((2, 3, 3, 3)), [0, [1, 2]])


def test_block_pruning_keeps_the_largest_norm_blocks_with_short_edge_blocks():
    rng = np.random.default_rng(3)
    U = rng.standard_normal((4, 10, 6))  # blocks of 4×4: rows 0-3, 4-7, 8-9 (short); columns 0-3, 4-5
    Up, mask = prune_winograd_blocks(U, 0.5, (4, 4))
    norms = [np.linalg.norm(U[b, r:r + 4, c:c + 4]) for b in range(4) for r in (0, 4, 8) for c in (0, 4)]
    keep = set(np.argsort(-np.array(norms), kind="stable")[:12].tolist())  # round(0.5 · 24) blocks
    for idx, (b, r, c) in enumerate((b, r, c) for b in range(4) for r in (0, 4, 8) for c in (0, 4)):
        assert bool(mask[b, r:r + 4, c:c + 4].all()) == (idx in keep)
        assert bool(mask[b, r:r + 4, c:c + 4].any()) == (idx in keep)  # constant per block
    assert np.array_equal(Up, np.where(mask, U, 0))


def test_block_pruning_per_position_and_whole_rows():
    U = np.random.default_rng(4).standard_normal((9, 8, 5))
    _, mask = prune_winograd_blocks(U, 0.25, (1, None), per_position=True)
    rows = mask.any(axis=2)
    assert np.array_equal(rows, mask.all(axis=2))  # whole (position, filter) rows
    assert np.all(rows.sum(axis=1) == 2)  # round(0.25 · 8) rows in every position
    norms = np.linalg.norm(U, axis=2)
    for b in range(9):
        assert set(np.flatnonzero(rows[b])) == set(np.argsort(-norms[b], kind="stable")[:2])


@pytest.mark.parametrize("block, err", [((0, 4), ValueError), ((9, 4), ValueError), ((4,), TypeError),
                                        ("44", TypeError), ((2.5, 4), ValueError)])
def test_block_pruning_refuses_bad_blocks(block, err):
    with pytest.raises(err, match="block"):
        prune_winograd_blocks(np.ones((4, 8, 8)), 0.5, block)


@pytest.mark.parametrize("n, m", [(2, 4), (1, 2), (1, 4), (4, 4)])
def test_prune_winograd_n_m_keeps_the_largest_n_of_every_m_channels(n, m) -> None:
    rng = np.random.default_rng(11)
    U = rng.standard_normal((4, 6, 13)).astype(np.float32)  # 13 = 3 groups of 4 + 1
    Up, mask = pruning.prune_winograd_n_m(U, n, m)
    np.testing.assert_array_equal(Up, np.where(mask, U, 0))
    for g0 in range(0, 13, m):
        sl = slice(g0, min(g0 + m, 13))
        kept = mask[..., sl]
        assert (kept.sum(-1) == min(n, kept.shape[-1])).all()
        # every kept magnitude is at least every dropped one of its group
        a = np.abs(U[..., sl])
        lo = np.where(kept, a, np.inf).min(-1)
        hi = np.where(~kept, a, -np.inf).max(-1)
        assert (lo >= hi).all()


def test_prune_winograd_n_m_ties_keep_the_lower_channel_and_args_are_checked() -> None:
    U = np.ones((1, 1, 4), np.float32)
    _, mask = pruning.prune_winograd_n_m(U, 2, 4)
    np.testing.assert_array_equal(mask, [[[True, True, False, False]]])
    with pytest.raises(ValueError, match="n:m must satisfy 1 <= n <= m, got 3:2"):
        pruning.prune_winograd_n_m(U, 3, 2)
    with pytest.raises(TypeError, match="n must be an int"):
        pruning.prune_winograd_n_m(U, 2.0, 4)
    with pytest.raises(ValueError, match="U must be 3-D"):
        pruning.prune_winograd_n_m(U[0], 2, 4)


def test_prune_winograd_blocks_of_a_grouped_layer_tile_each_groups_matrix(rng):
    """groups=2, K/groups = 12: a 16-row block becomes one group's 12 rows, and no block spans
    the group edge at row 12; the kept fraction is the density; groups must divide K."""
    U = rng.standard_normal((4, 24, 10))
    _, mask = prune_winograd_blocks(U, 0.5, (16, 5), groups=2)
    blocks = mask.reshape(4, 2, 12, 2, 5)
    assert (blocks == blocks[:, :, :1, :, :1]).all()
    assert mask.mean() == 0.5
    with pytest.raises(ValueError, match="groups must be an int >= 1 dividing K = 24"):
        prune_winograd_blocks(U, 0.5, (16, 5), groups=5)
