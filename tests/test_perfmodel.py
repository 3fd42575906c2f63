"""magma_wino.perfmodel: properties of the speed-of-light estimates (no GPU needed)."""

from __future__ import annotations

import json

import pytest

from magma_wino import perfmodel as pm

VGG_CONV3 = dict(N=32, C=256, K=256, H=56, W=56)


@pytest.mark.parametrize("precision", ["float32", "float64", "tf32"])
def test_more_channels_take_longer(precision) -> None:
    a = pm.estimate_layer(32, 128, 128, 28, m=4, precision=precision)
    b = pm.estimate_layer(32, 256, 256, 28, m=4, precision=precision)
    assert b.seconds > a.seconds
    for pa, pb in zip(a.phases, b.phases):
        assert pb.seconds >= pa.seconds


def test_hbm_bound_phases_scale_with_bytes() -> None:
    a = pm.estimate_layer(16, 256, 256, 56, m=4)
    b = pm.estimate_layer(32, 256, 256, 56, m=4)
    for name in ("input", "output"):
        pa, pb = a.phase(name), b.phase(name)
        assert pa.binding == pb.binding == "HBM"
        assert pb.dram_bytes == pytest.approx(2 * pa.dram_bytes)
        g = pm.gpu("h200")
        assert pb.bounds["HBM"] == pytest.approx(pb.dram_bytes / (g.hbm_tbs * 1e12))
        assert (pb.seconds - pm.LAUNCH_OVERHEAD_S) == pytest.approx(2 * (pa.seconds - pm.LAUNCH_OVERHEAD_S))


@pytest.mark.parametrize("density", [1.0, 0.5, 0.1])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_binding_limit_is_the_max(density, precision) -> None:
    e = pm.estimate_layer(**VGG_CONV3, m=4, precision=precision, density=density)
    for p in e.phases:
        assert p.bounds[p.limit] == max(p.bounds.values())
        assert p.binding == p.limit  # a big layer: no phase is launch-bound
        assert p.seconds == pytest.approx(max(p.bounds.values()) + pm.LAUNCH_OVERHEAD_S)
    assert e.seconds == pytest.approx(sum(p.seconds for p in e.phases))


@pytest.mark.parametrize("precision", ["float32", "float64", "tf32"])
def test_h200_is_faster_than_a100(precision) -> None:
    for layer in (VGG_CONV3, dict(N=32, C=512, K=512, H=7, W=7)):
        h = pm.estimate_layer(**layer, m=4, precision=precision, gpu_key="h200")
        a = pm.estimate_layer(**layer, m=4, precision=precision, gpu_key="a100")
        assert h.seconds < a.seconds
        # same compute as the H100, more bandwidth: never slower than an H100
        assert h.seconds <= pm.estimate_layer(**layer, m=4, precision=precision, gpu_key="h100").seconds


def test_sparse_density_reduces_the_product_estimate() -> None:
    times = [pm.estimate_layer(**VGG_CONV3, m=4, density=d).phase("product").seconds for d in (0.5, 0.25, 0.1, 0.0)]
    assert all(b < a for a, b in zip(times, times[1:]))
    zero = pm.estimate_layer(**VGG_CONV3, m=4, density=0.0).phase("product")
    assert zero.flops == 0 and zero.binding == "HBM"  # M is still written


def test_no_estimate_beats_its_roofs() -> None:
    """One VGG layer: every phase at most the peak FLOP rate and the HBM bandwidth."""
    g = pm.gpu("h200")
    for precision in ("float32", "float64", "tf32"):
        for d in (1.0, 0.25):
            e = pm.estimate_layer(**VGG_CONV3, m=4, precision=precision, density=d)
            for p in e.phases:
                peak = g.peak("tf32" if p.hypothetical else ("float64" if precision == "float64" else "float32"))
                assert p.flops / p.seconds <= peak * (1 + 1e-9)
                assert p.dram_bytes / p.seconds <= g.hbm_tbs * 1e12 * (1 + 1e-9)
    # the dense fp32 product: its FLOPs at FP32 peak are a bound, the SASS mix's LDS per FFMA
    # (128 per 256) makes shared memory the binding limit
    prod = pm.estimate_layer(**VGG_CONV3, m=4).phase("product")
    assert prod.bounds["FMA pipe"] >= prod.flops / g.peak("float32") * (1 - 1e-9)
    assert prod.binding == "shared memory"
    assert prod.mix_source.startswith("SASS")


def test_cudnn_estimate_and_rows() -> None:
    c = pm.estimate_cudnn(**VGG_CONV3)
    g = pm.gpu("h200")
    assert c["binding"] == "math"
    assert c["ms"] * 1e-3 == pytest.approx(c["flops"] / (pm.CUDNN_EFFICIENCY * g.peak("float32")) + pm.LAUNCH_OVERHEAD_S)
    rows = pm.network_estimates(["vgg16"], [32], [4], ["float32", "tf32"])
    assert rows and all(r["label"] == pm.LABEL for r in rows)
    assert {r["precision"] for r in rows} == {"float32", "tf32"}
    assert all(r["hypothetical"] == (r["precision"] == "tf32") for r in rows)
    md = pm.markdown_estimates(rows)
    assert "tf32*" in md and "conv3_1" in md


def test_mix_from_sass_counts_wavefronts() -> None:
    mix = pm.mix_from_sass({"FFMA": 256, "LDS.32": 128, "LDG.128": 2, "STS.32": 4, "STS.128": 1, "BAR": 2, "other": 32})
    assert (mix.fma, mix.insns, mix.l1_wavefronts) == (256, 425, 128 + 8 + 4 + 4)
    # the tile-shape derivation of the 64x64 tile agrees with the SASS on FMAs and LDS
    derived = pm.gemm_mix(pm.GemmTile("64x64-derived", 16, 16, 64, 64, 16, 4), "float32")
    assert derived.fma == 256 and derived.source == "tile shape"


def test_cli_json_and_markdown(tmp_path) -> None:
    js, md = tmp_path / "e.json", tmp_path / "e.md"
    assert pm.main(["--network", "resnet50", "--precision", "float32", "--json", str(js), "--markdown", str(md)]) == 0
    data = json.loads(js.read_text())
    assert data["label"] == pm.LABEL and len(data["rows"]) == 4
    assert "ESTIMATES" in md.read_text()


def test_tiny_layers_are_launch_bound() -> None:
    e = pm.estimate_layer(1, 8, 8, 8, m=2)
    assert all(p.binding == "launch" for p in e.phases)
    assert e.seconds >= 3 * pm.LAUNCH_OVERHEAD_S


def _bench_args(*extra: str):
    import argparse

    from magma_wino import bench

    return bench.add_arguments(argparse.ArgumentParser()).parse_args(
        ["--backend", "numpy", "--network", "vgg16", "--layers", "conv5_1", "--batch", "32", "--tile", "4",
         "--density", "1", "0.25", "--model", "h200", *extra])


def test_bench_model_rows_and_ratios() -> None:
    from magma_wino import bench

    args = _bench_args()
    fake = [{"backend": "cuda", "network": "vgg16", "layer": "conv5_1/5_2/5_3", "N": 32, "m": 4, "F": "F(4,3)",
             "density": 1.0, "dtype": "float32", "ms": 1.0, "scaled_from": None,
             "phase_ms": {"input": 0.1, "product": 0.8, "output": 0.1}}]
    mod = bench.model_estimates(args, fake)
    assert mod["label"] == pm.LABEL and mod["gpu"] == "h200"
    # float32 dense + sparse 0.25, and the hypothetical tf32 dense
    assert {(r["precision"], r["density"]) for r in mod["rows"]} == {("float32", 1.0), ("float32", 0.25), ("tf32", 1.0)}
    est = next(r for r in mod["rows"] if r["precision"] == "float32" and r["density"] == 1.0)
    (q,) = mod["ratios"]
    assert q["ratio"] == pytest.approx(1.0 / est["ms"])
    assert q["phase_ratio"]["product"] == pytest.approx(0.8 / est["phase_ms"]["product"])
    assert "ESTIMATES on h200" in bench.model_markdown(mod)
    assert bench.model_estimates(args, [dict(fake[0], backend="numpy")])["ratios"] == []


def test_bench_parses_model_and_prints_estimates(capsys) -> None:
    from magma_wino import bench

    args = _bench_args("--no-baselines")
    result = {"rows": [], "crossover": [], "skipped": [], "meta": {"seconds": 0.0},
              "model": bench.model_estimates(args, [])}
    bench.print_result(result)
    out = capsys.readouterr().out
    assert "ESTIMATE on h200" in out and "tf32*" in out
