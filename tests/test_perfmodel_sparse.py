"""The sparse products in the speed-of-light model (perfmodel.estimate_product, choose_product,
crossover_density, magma_wino.perfmodel_sparse).  Every figure is an ESTIMATE; these tests check
the model's internal consistency, never a speed."""

from __future__ import annotations

import math

import pytest

from magma_wino import perfmodel as pm
from magma_wino import perfmodel_sparse as ps

VGG_CONV4 = dict(pos=36, K=512, C=512, P=32 * 7 * 7)


@pytest.mark.parametrize("prec", ["tf32", "tf32x3", "bf16", "fp16", "fp64"])
def test_block_product_work_scales_with_the_kept_blocks(prec) -> None:
    """The tensor-core bound is linear in the block density (the kept blocks are the MMAs), the
    flops are the density's share of the dense product's, and no bound grows as blocks go."""
    es = {d: pm.estimate_product(**VGG_CONV4, precision=prec, density=d, product="block") for d in (0.8, 0.4, 0.2)}
    tc = {d: e.bounds["tensor core"] for d, e in es.items()}
    assert tc[0.4] == pytest.approx(tc[0.8] / 2) and tc[0.2] == pytest.approx(tc[0.8] / 4)
    dense = pm.estimate_product(**VGG_CONV4, precision=prec)
    assert es[0.4].flops == pytest.approx(0.4 * dense.flops)
    for k in es[0.8].bounds:
        assert es[0.2].bounds[k] <= es[0.4].bounds[k] <= es[0.8].bounds[k], k


@pytest.mark.parametrize("prec", ["tf32", "tf32x3", "bf16", "fp16", "fp64"])
def test_32_row_blocks_read_their_own_sass_and_issue_less_per_mma(prec) -> None:
    """block_rows=32 is the kernel's 32 x 8 configuration: its own SASS mix (key "bsr32"), its
    occupancy and warps; at the same kept fraction the MMAs are the same, the instructions per MMA
    fewer than the 16-row kernel's (the point of the taller blocks), so the issue bound drops."""
    e16 = pm.estimate_product(**VGG_CONV4, precision=prec, density=0.3, product="block")
    e32 = pm.estimate_product(**VGG_CONV4, precision=prec, density=0.3, product="block", block_rows=32)
    assert e32.kernel.startswith("bsr_tc_batched 32x64") and e16.kernel.startswith("bsr_tc_batched 16x64")
    assert e32.mix_source == "SASS sm_90" and not e32.hypothetical
    m16, m32 = pm.bsr_mix(prec), pm.bsr_mix(prec, block_rows=32)
    raw = pm.SASS_SM90[("bsr32", prec)]
    assert m32.insns == pytest.approx(sum(raw.values()) / pm.BSR_SLOTS)
    assert m32.insns / m32.fma < m16.insns / m16.fma
    # the same MMAs (the tensor-core bound before the waves' efficiency, which the occupancy sets)
    tc16, tc32 = (e.bounds["tensor core"] * e.wave_efficiency for e in (e16, e32))
    assert tc32 == pytest.approx(tc16, rel=0.02)
    assert e32.bounds["issue"] < e16.bounds["issue"]
    with pytest.raises(ValueError, match=r"block_rows must be one of \(16, 32\)"):
        pm.estimate_product(**VGG_CONV4, precision=prec, density=0.3, product="block", block_rows=24)


def test_block_product_is_refused_without_tensor_cores() -> None:
    with pytest.raises(ValueError, match="tensor-core one; precision 'fp32'"):
        pm.estimate_product(**VGG_CONV4, precision="fp32", density=0.3, product="block")
    with pytest.raises(ValueError, match="structure='block' is a tensor-core product"):
        pm.estimate_layer(32, 64, 64, 56, 56, 4, 3, "fp32", 0.3, structure="block")


def test_sp24_product_halves_the_tensor_core_time_and_refuses_fp64() -> None:
    for prec in pm.SP24_MODES:
        dense = pm.estimate_product(**VGG_CONV4, precision=prec)
        sp = pm.estimate_product(**VGG_CONV4, precision=prec, density=0.5, product="2:4")
        # half the dense tensor-core time, before each grid's wave efficiency (their tiles differ)
        assert sp.bounds["tensor core"] * sp.wave_efficiency == pytest.approx(
            dense.bounds["tensor core"] * dense.wave_efficiency / 2, rel=1e-9)
        assert sp.flops == pytest.approx(dense.flops / 2)
    with pytest.raises(ValueError, match="needs a sparse tensor-core MMA; precision 'fp64' has none"):
        pm.estimate_product(**VGG_CONV4, precision="fp64", density=0.5, product="2:4")


@pytest.mark.parametrize("prec", ["tf32", "tf32x3", "bf16", "fp16"])
def test_sp24_takes_the_wide_tile_from_128_rows_with_its_own_sass(prec) -> None:
    """K >= 128: the 128 x 64 tile of 64 x 32 warps (the dispatcher's rule), its own SASS mix
    (key "sp24w"), fewer instructions per mma.sp than the 64 x 64 tile's; K < 128: the 64 x 64
    tile.  The tensor-core work is the same either way."""
    assert pm.sp24_tile_rows(127) == 64 and pm.sp24_tile_rows(128) == 128
    wide = pm.estimate_product(**VGG_CONV4, precision=prec, density=0.5, product="2:4")
    assert wide.kernel.startswith("sp24_tc_batched 128x64") and wide.mix_source == "SASS sm_90"
    narrow = pm.estimate_product(36, 64, 512, VGG_CONV4["P"], prec, 0.5, "2:4")
    assert narrow.kernel.startswith("sp24_tc_batched 64x64")
    m64, m128 = pm.sp24_mix(prec, 512, 1568), pm.sp24_mix(prec, 512, 1568, tile_rows=128)
    assert m128.fma == 2 * m64.fma and m128.insns / m128.fma < m64.insns / m64.fma
    raw = pm.SASS_SM90[("sp24w", prec)]
    assert m128.insns == sum(raw.values())
    with pytest.raises(ValueError, match="tile_rows must be one of"):
        pm.sp24_mix(prec, 512, 1568, tile_rows=96)


def test_layer_estimate_with_block_structure_uses_the_block_product() -> None:
    e = pm.estimate_layer(32, 256, 256, 28, 28, 4, 3, "tf32x3", 0.3, structure="block")
    assert e.product == "block" and e.phase("product").kernel.startswith("bsr_tc_batched")
    assert pm.estimate_layer(32, 256, 256, 28, 28, 4, 3, "fp32", 0.3).product == "csr"
    assert pm.estimate_layer(32, 256, 256, 28, 28, 4, 3, "tf32x3").product == "dense"


@pytest.mark.parametrize("prec, structured", [("fp32", "csr"), ("tf32x3", "csr"), ("tf32x3", "block"),
                                              ("fp16", "block"), ("fp64", "csr")])
def test_choose_product_switches_once_at_the_crossover(prec, structured) -> None:
    """Dense at density 1; the structured product below crossover_density, dense above it."""
    K, C = 256, 128
    assert pm.choose_product(K, C, 4, 3, prec, 1.0, structured) == "dense"
    d = pm.crossover_density(K, C, 4, 3, prec, structured)
    assert 0.0 < d < 1.0
    assert pm.choose_product(K, C, 4, 3, prec, d * 0.9, structured) == structured
    assert pm.choose_product(K, C, 4, 3, prec, min(1.0, d + 0.01), structured) == "dense"


def test_crossover_density_refuses_the_fixed_density_2_4_product() -> None:
    with pytest.raises(ValueError, match="fixed density 0.5"):
        pm.crossover_density(256, 256, 4, 3, "fp16", "2:4")


def test_choose_product_compares_at_the_choice_tiles() -> None:
    pos = 36
    for d in (0.05, 0.2, 0.5):
        dense = pm.estimate_product(pos, 128, 128, pm.CHOICE_TILES, "tf32x3").seconds
        block = pm.estimate_product(pos, 128, 128, pm.CHOICE_TILES, "tf32x3", d, "block").seconds
        want = "block" if block < dense else "dense"
        assert pm.choose_product(128, 128, 4, 3, "tf32x3", d, "block") == want


def test_sparse_rows_cover_every_2d_layer_and_the_totals_add_up() -> None:
    rs = ps.rows(("vgg16",), 32, 4, "tf32x3")
    assert rs and all(r["N"] == 32 and r["precision"] == "tf32x3" for r in rs)
    assert sum(r["count"] for r in rs) == 13  # VGG-16's thirteen 3x3 layers
    t = ps.totals(rs)["vgg16"]
    assert t["dense"] == pytest.approx(sum(r["dense"]["ms"] * r["count"] for r in rs))
    assert t["block 0.3"] == pytest.approx(sum(r["block"]["0.3"]["ms"] * r["count"] for r in rs))
    assert t["block32 0.3"] == pytest.approx(sum(r["block32"]["0.3"]["ms"] * r["count"] for r in rs))
    for r in rs:
        P = 32 * math.ceil(r["H"] / 4) * math.ceil(r["W"] / 4)
        want = pm.estimate_product(36, r["K"], r["C"], P, "tf32x3", 0.3, "block").seconds * 1e3
        assert r["block"]["0.3"]["ms"] == pytest.approx(want)
        want32 = pm.estimate_product(36, r["K"], r["C"], P, "tf32x3", 0.3, "block", block_rows=32).seconds * 1e3
        assert r["block32"]["0.3"]["ms"] == pytest.approx(want32)


def test_sparse_goals_are_the_ratios_of_the_totals() -> None:
    rs = ps.rows(("resnet50",), 32, 4, "fp16")
    t = ps.totals(rs)["resnet50"]
    g = {x["goal"]: x for x in ps.goals(rs)}
    blk = g[ps.GOALS[0][0]]
    assert blk["speedup"] == pytest.approx(t["dense"] / t["block 0.3"])
    assert blk["met"] == (blk["speedup"] >= 2.0)
    csr = g[ps.GOALS[2][0]]
    assert csr["speedup"] == pytest.approx(t["csr 0.1 before"] / t["csr 0.1"])
    blk32 = g[ps.GOALS[3][0]]
    assert blk32["speedup"] == pytest.approx(t["dense"] / t["block32 0.3"])
    # fp64 has no 2:4 product: its goal has no speed-up and is not met
    g64 = {x["goal"]: x for x in ps.goals(ps.rows(("resnet50",), 32, 4, "fp64"))}
    assert g64[ps.GOALS[1][0]]["speedup"] is None and not g64[ps.GOALS[1][0]]["met"]


def test_sparse_table_cli_writes_markdown_and_json(tmp_path, capsys) -> None:
    md, js = tmp_path / "s.md", tmp_path / "s.json"
    assert ps.main(["--network", "resnet50", "--precision", "tf32", "--markdown", str(md), "--json", str(js)]) == 0
    text = md.read_text()
    assert "ESTIMATE" in text and "| resnet50/conv2_x.b |" in text and "Goals (estimate)" in text
    assert capsys.readouterr().out == text
    import json

    data = json.loads(js.read_text())
    assert set(data) == {"label", "rows", "totals", "goals"} and data["label"] == pm.LABEL
