"""Block-sparse Winograd-domain weights: the BatchedBSR format (magma_wino/sparse.py) and the
plans whose product is the block-sparse tensor-core kernel (``structure="block"``).

The plans are checked against the float64 formula y = Aᵀ[(U ⊙ mask) · V]A of the pruned U
(tolerance of the plan's precision mode for the reduction), against the dense product of the
same masked U in the same mode (bitwise where the kernel sums in the dense kernel's order: every
kept block is one k8 step, as a dense k slice is, and a skipped block adds an exact zero), and
for what they report (``plan.product``, ``plan.bsr``).
"""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import WinogradConv2d, WinogradConv3d, perfmodel, pruning
from magma_wino import precision as _precision
from magma_wino.accuracy import rel_err
from magma_wino.errors import UnsupportedError
from magma_wino.reference import winograd_conv_from_U
from magma_wino.sparse import BSR_BLOCK, BSR_BLOCKS, BatchedBSR

try:
    import magma_wino._emu  # noqa: F401

    HAS_EMU = True
except ImportError:  # pragma: no cover - the emulator is part of every build
    HAS_EMU = False

BACKENDS = ["numpy"] + (["emulator"] if HAS_EMU else [])
#: The tensor-core modes the block kernel runs (float32 data; fp64 with float64 data).
TC_MODES = ["tf32", "tf32x3", "bf16", "fp16"]


def random_U(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- the format


@pytest.mark.parametrize("shape", [(1, 16, 8), (3, 37, 21), (2, 5, 3), (4, 64, 64)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_bsr_from_dense_round_trips_the_masked_matrix(shape, dtype, rng) -> None:
    U = random_U(rng, shape, dtype)
    mask = rng.random(shape) < 0.1
    b = BatchedBSR.from_dense(U, mask)
    assert b.block == BSR_BLOCK and b.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(b.to_dense(), np.where(mask, U, 0))
    # a block is stored exactly when the mask selects an entry in it
    batch, R, CB = b.block_shape
    pad = np.zeros((batch, R * 16, CB * 8), bool)
    pad[:, : shape[1], : shape[2]] = mask
    want = pad.reshape(batch, R, 16, CB, 8).any(axis=(2, 4))
    np.testing.assert_array_equal(b.block_pattern(), want)
    assert b.nblocks == int(want.sum())
    # density: the entries inside stored blocks (the kernel's work), at least the mask's
    assert b.density == pytest.approx(b.pattern().mean())
    assert b.density >= mask.mean()


def test_bsr_blocks_are_row_major_and_sorted_within_a_block_row(rng) -> None:
    U = np.arange(2 * 32 * 24, dtype=np.float32).reshape(2, 32, 24) + 1
    mask = np.zeros(U.shape, bool)
    mask[0, 17, 20] = mask[0, 3, 9] = mask[0, 2, 1] = mask[1, 31, 0] = True
    b = BatchedBSR.from_dense(U, mask)
    np.testing.assert_array_equal(b.row_ptr, [[0, 2, 3], [3, 3, 4]])
    np.testing.assert_array_equal(b.col_idx, [0, 1, 2, 0])  # sorted within block row 0
    assert b.values[1, 3, 1] == U[0, 3, 9] and b.values[2, 1, 4] == U[0, 17, 20]
    assert np.count_nonzero(b.values) == 4


def test_bsr_with_mask_none_keeps_the_nonzero_blocks(rng) -> None:
    U = np.zeros((2, 20, 20), np.float32)
    U[1, 19, 19] = 2.0
    b = BatchedBSR.from_dense(U)
    assert b.nblocks == 1 and b.block_density == pytest.approx(1 / (2 * 2 * 3))
    np.testing.assert_array_equal(b.to_dense(), U)


@pytest.mark.parametrize("mode", ["fp16", "bf16"])
def test_bsr_to_storage_rounds_as_the_precision_does(mode, rng) -> None:
    U = random_U(rng, (2, 24, 16))
    b = BatchedBSR.from_dense(U, rng.random(U.shape) < 0.3)
    h = b.to_storage(mode)
    assert h.storage == mode and h.dtype == _precision.storage_dtype(mode, np.float32)
    want = _precision.from_storage(_precision.to_storage(b.to_dense(), mode), mode)
    np.testing.assert_array_equal(h.to_dense(), want)
    assert b.to_storage("tf32") is b


def _valid(rng):
    return BatchedBSR.from_dense(random_U(rng, (2, 20, 12)), rng.random((2, 20, 12)) < 0.3)


def test_bsr_validation_names_the_field(rng) -> None:
    b = _valid(rng)
    with pytest.raises(TypeError, match="col_idx must have dtype int32"):
        BatchedBSR(b.row_ptr, b.col_idx.astype(np.int64), b.values, b.shape)
    with pytest.raises(ValueError, match=r"row_ptr must have shape \(batch, R \+ 1\) = \(2, 3\)"):
        BatchedBSR(b.row_ptr[:, :2].copy(), b.col_idx, b.values, b.shape)
    with pytest.raises(ValueError, match=r"values must have shape \(nblocks, bm, bk\)"):
        BatchedBSR(b.row_ptr, b.col_idx, np.ascontiguousarray(b.values[:, :8]), b.shape)
    bad = b.col_idx.copy()
    bad[0] = 2  # only block columns 0, 1 exist for 12 columns
    with pytest.raises(ValueError, match=r"col_idx must be in \[0, 2\)"):
        BatchedBSR(b.row_ptr, bad, b.values, b.shape)
    with pytest.raises(TypeError, match="values must have dtype float16"):
        BatchedBSR(b.row_ptr, b.col_idx, b.values, b.shape, storage="fp16")
    with pytest.raises(ValueError, match="block must be a tuple"):
        BatchedBSR(b.row_ptr, b.col_idx, b.values, b.shape, block=(16, 0))


def test_bsr_validation_refuses_a_repeated_block_and_nonzero_padding(rng) -> None:
    U = np.zeros((1, 20, 12), np.float32)
    U[0, 0, 0] = U[0, 0, 9] = 1.0
    b = BatchedBSR.from_dense(U)
    with pytest.raises(ValueError, match="block column 0 appears twice"):
        BatchedBSR(b.row_ptr, np.zeros(2, np.int32), b.values, b.shape)
    v = b.values.copy()
    v[1, 0, 5] = 1.0  # column 13 of a 12-column matrix
    with pytest.raises(ValueError, match="columns 12 .. 15 of the last block column"):
        BatchedBSR(b.row_ptr, b.col_idx, v, b.shape)
    U[0, 19, 0] = 1.0
    b = BatchedBSR.from_dense(U)
    v = b.values.copy()
    v[-1, 10, 0] = 1.0  # row 26 of a 20-row matrix
    with pytest.raises(ValueError, match="rows 20 .. 31 of the last block row"):
        BatchedBSR(b.row_ptr, b.col_idx, v, b.shape)


# --------------------------------------------------------------------------- plans


def _layer(rng, C=12, K=20, H=9, W=7, N=2, m=4, r=3, dtype=np.float32):
    alpha = m + r - 1
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    U = rng.standard_normal((alpha * alpha, K, C)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return x, U, b


def _reference(x, Up, m, r, pad, b):
    return winograd_conv_from_U(x.astype(np.float64), Up.astype(np.float64), m, r, pad, b.astype(np.float64))


@pytest.mark.parametrize("block", BSR_BLOCKS, ids=lambda b: f"{b[0]}x{b[1]}")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prec", TC_MODES)
def test_block_plan_matches_the_float64_formula_and_reports_the_block_product(prec, backend, block, rng) -> None:
    """K = 40: two block rows of either height (the second partial), C = 12 (a partial block column)."""
    m, r, pad = 4, 3, 1
    x, U, b = _layer(rng, K=40)
    plan = WinogradConv2d.from_winograd(U, r=3, m=m, prune=0.3, structure="block", block=block, bias=b,
                                        padding=pad, backend=backend, precision=prec, sparse=True,
                                        allow_inaccurate=True)
    Up, mask = pruning.prune_winograd_blocks(U, 0.3, block)
    assert plan.product == "block" and plan.uses_sparse_product
    assert plan.bsr is not None and plan.bsr.block == block
    assert plan.bsr.nblocks == int(BatchedBSR.from_dense(Up, mask, block).nblocks)
    y = plan(x)
    assert y.dtype == np.float32 and not np.isnan(y).any()
    ref = _reference(x, Up, m, r, pad, b)
    n_red = U.shape[2] * r * r
    assert rel_err(y, ref) <= _precision.tolerance(prec, m, r, n_red), (prec, backend, rel_err(y, ref))


@pytest.mark.parametrize("block", BSR_BLOCKS, ids=lambda b: f"{b[0]}x{b[1]}")
@pytest.mark.parametrize("prec", TC_MODES)
def test_block_plan_equals_the_dense_product_of_the_masked_U(prec, block, rng) -> None:
    """On the emulator: bitwise for tf32 / tf32x3 (one MMA per kept 16 x 8 block, in the order of
    the dense kernel's k8 steps; a skipped block adds an exact zero to every accumulator); fp16 /
    bf16 take two kept blocks per m16n16k16 step, not the dense kernel's two consecutive ones, so
    the float32 sums are grouped differently: within float32's tolerance of the reduction."""
    if not HAS_EMU:
        pytest.skip("needs the emulator extension")
    m, r, pad = 4, 3, 1
    x, U, b = _layer(rng, C=24, K=33)
    Up, mask = pruning.prune_winograd_blocks(U, 0.4, block)
    kw = dict(r=3, m=m, bias=b, padding=pad, backend="emulator", precision=prec, allow_inaccurate=True)
    blk = WinogradConv2d.from_winograd(U, mask=mask, structure="block", block=block, sparse=True, **kw)
    assert blk.bsr.block == block
    dense = WinogradConv2d.from_winograd(U, mask=mask, sparse=False, **kw)
    assert (blk.product, dense.product) == ("block", "dense")
    y_blk, y_dense = blk(x), dense(x)
    if prec in ("tf32", "tf32x3"):
        np.testing.assert_array_equal(y_blk, y_dense)
    else:
        from magma_wino.accuracy import tolerance

        assert rel_err(y_blk, y_dense.astype(np.float64)) <= tolerance(np.float32, m, r, 24 * r * r)


def test_block_plan_fp64_matches_float64(rng) -> None:
    m, r, pad = 2, 3, 1
    x, U, b = _layer(rng, dtype=np.float64, m=m)
    for backend in BACKENDS:
        plan = WinogradConv2d.from_winograd(U, r=3, m=m, prune=0.5, structure="block", bias=b, padding=pad,
                                            backend=backend, precision="fp64", sparse=True)
        assert plan.product == "block"
        Up, _ = pruning.prune_winograd_blocks(U, 0.5, (16, 8))
        ref = _reference(x, Up, m, r, pad, b)
        assert rel_err(plan(x), ref) <= _precision.tolerance("fp64", m, r, U.shape[2] * r * r), backend


def test_block_structure_in_fp32_mode_runs_the_csr_product(rng) -> None:
    """The block kernel is a tensor-core one; the SIMT mode keeps the blocks and runs the CSR kernel."""
    x, U, b = _layer(rng)
    plan = WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.2, structure="block", backend="numpy",
                                        precision="fp32", sparse=True)
    Up, _ = pruning.prune_winograd_blocks(U, 0.2, (16, 8))
    assert plan.product == "csr" and plan.bsr is None
    np.testing.assert_array_equal(plan.U, Up)


def test_sparse_auto_takes_the_models_choice_on_both_sides_of_the_crossover(rng) -> None:
    """A 128 x 128 layer in tf32: the model's block crossover lies near 0.5, so "auto" runs the
    dense product at 0.9 and the block product at 0.2, as choose_product says for the kept
    block fraction; sparse=False forces the dense one."""
    U = rng.standard_normal((36, 128, 128)).astype(np.float32)
    got = {}
    for d in (0.9, 0.2):
        plan = WinogradConv2d.from_winograd(U, r=3, m=4, prune=d, structure="block", backend="numpy",
                                            precision="tf32", allow_inaccurate=True)
        kept = BatchedBSR.from_dense(*pruning.prune_winograd_blocks(U, d)).block_density
        assert plan.product == perfmodel.choose_product(128, 128, 4, 3, "tf32", kept, "block")
        got[d] = plan.product
    assert got == {0.9: "dense", 0.2: "block"}
    forced = WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.2, structure="block", backend="numpy",
                                          precision="tf32", sparse=False, allow_inaccurate=True)
    assert forced.product == "dense" and forced.bsr is None


def test_sparse_auto_asks_the_model(monkeypatch, rng) -> None:
    x, U, b = _layer(rng)
    calls = []

    def fake(K, C, m, r, precision, density, structured, **kw):
        calls.append((K, C, m, r, precision, structured, kw["block_rows"]))
        return "dense"

    monkeypatch.setattr(perfmodel, "choose_product", fake)
    plan = WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.3, structure="block", backend="numpy",
                                        precision="tf32x3")
    assert plan.product == "dense" and calls == [(20, 12, 4, 3, "tf32x3", "block", 16)]
    calls.clear()
    WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.3, structure="block", block=(32, 8), backend="numpy",
                                 precision="tf32x3")
    assert calls == [(20, 12, 4, 3, "tf32x3", "block", 32)]  # the model of the plan's block height


def test_block_structure_without_a_block_kernel_chooses_on_the_kept_entries(rng) -> None:
    """Precision fp32 runs the CSR kernel on a block-structured U: the model is given the kept
    entries' density (one entry per 16 x 8 block: 1/128), not the blocks' (1.0), and
    weight_density is the fraction of weights kept in every mode."""
    U = rng.standard_normal((36, 32, 16)).astype(np.float32)
    mask = np.zeros(U.shape, bool)
    mask[:, ::16, ::8] = True
    for prec in ("fp32", "tf32x3"):
        plan = WinogradConv2d.from_winograd(U, r=3, m=4, mask=mask, structure="block", backend="numpy",
                                            precision=prec)
        assert plan.weight_density == pytest.approx(mask.mean())
        want = "csr" if prec == "fp32" else perfmodel.choose_product(32, 16, 4, 3, prec, 1.0, "block")
        assert plan.product == want, prec
    assert perfmodel.choose_product(32, 16, 4, 3, "fp32", float(mask.mean()), "csr") == "csr"


def test_block_prune_clips_the_block_to_small_layers(rng) -> None:
    """prune= with structure='block' on a layer of K < 16 and C < 8 (a first layer): the blocks
    are clipped to U[b], so whole positions are kept or dropped."""
    U = rng.standard_normal((16, 5, 3)).astype(np.float32)
    plan = WinogradConv2d.from_winograd(U, r=3, m=2, prune=0.5, structure="block", backend="numpy",
                                        precision="tf32x3", sparse=True)
    Up, _ = pruning.prune_winograd_blocks(U, 0.5, (5, 3))
    np.testing.assert_array_equal(plan.U, Up)
    assert plan.product == "block" and plan.weight_density == pytest.approx(0.5)


def test_block_plan_3d(rng) -> None:
    m, r = 2, 3
    alpha = m + r - 1
    x = rng.standard_normal((1, 10, 5, 6, 4)).astype(np.float32)
    U = rng.standard_normal((alpha**3, 17, 10)).astype(np.float32)
    for backend in BACKENDS:
        plan = WinogradConv3d.from_winograd(U, r=3, m=m, prune=0.5, structure="block", padding=1,
                                            backend=backend, precision="tf32x3", sparse=True)
        assert plan.product == "block"
        Up, _ = pruning.prune_winograd_blocks(U, 0.5, (16, 8))
        ref = winograd_conv_from_U(x.astype(np.float64), Up.astype(np.float64), m, r, 1)
        assert rel_err(plan(x), ref) <= _precision.tolerance("tf32x3", m, r, 10 * r**3, 3), backend


def test_block_plan_arguments_are_checked(rng) -> None:
    x, U, b = _layer(rng)
    with pytest.raises(TypeError, match="block must be a tuple"):
        WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.5, structure="block", block=16, backend="numpy")
    with pytest.raises(ValueError, match="applies to structure='block' only"):
        WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.5, block=(8, 8), backend="numpy")
    with pytest.raises(ValueError, match="structure must be one of None, 'block'"):
        WinogradConv2d.from_winograd(U, r=3, m=4, structure="blocks", backend="numpy")
    with pytest.raises(UnsupportedError, match=r"block=\(8, 8\)"):
        WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.5, structure="block", block=(8, 8), backend="numpy")
    with pytest.raises(UnsupportedError, match=r"block=\(64, 8\): .* blocks of \(16, 8\) or \(32, 8\)"):
        WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.5, structure="block", block=(64, 8), backend="numpy")
    csr = WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.5, backend="numpy", sparse=True).csr
    with pytest.raises(ValueError, match="structure='block' builds its blocks from dense U"):
        WinogradConv2d.from_winograd(csr=csr, r=3, m=4, structure="block", backend="numpy")


def test_block_plan_is_never_fused_and_says_why(rng) -> None:
    if not HAS_EMU:
        pytest.skip("needs the emulator extension")
    x, U, b = _layer(rng)
    plan = WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.3, structure="block", backend="emulator",
                                        precision="tf32", sparse=True, allow_inaccurate=True)
    assert plan.fused_unavailable() == "sparse products are three-phase (the block kernel)"
    assert plan.algorithm_for(x.shape) == "three-phase"
    with pytest.raises(ValueError, match="fused=True: sparse products are three-phase"):
        WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.3, structure="block", backend="emulator",
                                     precision="tf32", sparse=True, fused=True, allow_inaccurate=True)


def test_validate_runs_the_structured_products_and_they_pass() -> None:
    """``magma-wino validate``'s block-sparse and 2:4 groups: every case runs the structured
    product it is for and is within its bound; with ``--precision fp32`` (no such kernel) they
    are left out rather than run on the CSR kernel."""
    if not HAS_EMU:
        pytest.skip("needs the emulator extension")
    from magma_wino import validate

    cases = [c for c in validate.cases(True, "emulator") if c.group in ("block-sparse", "2:4")]
    assert {c.variant for c in cases} == {"winograd_block", "winograd_block32", "winograd_2:4"}
    assert {c.density for c in cases if c.variant == "winograd_block"} >= {1.0, 0.0}
    for c in cases:
        r = validate.run_case(c, "emulator")
        assert r.ok and r.extra["product"] == validate.STRUCTURES[c.variant], (c, r)
        if c.variant != "winograd_2:4":  # the block height the variant is for
            assert r.extra["block"] == ((32, 8) if c.variant == "winograd_block32" else (16, 8)), (c, r)
    assert not [c for c in validate.cases(True, "emulator", "fp32") if c.group in ("block-sparse", "2:4")]
