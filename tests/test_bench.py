"""magma_wino.bench: the benchmark's plumbing (rows, JSON, table, baselines, GPU rows).

No wall-clock assertions: times are only checked to be positive and the phases to add up to
roughly the whole call (generous bound: they are timed separately).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from magma_wino import _backend, bench, reference
from magma_wino import perfmodel as pm
from magma_wino.accuracy import tolerance
from magma_wino.cli import bench as bench_cli
from magma_wino.layer import WinogradConv2d, WinogradConv3d

HAS_EMU = _backend.extension("emulator", required=False) is not None
HAS_GPU = _backend.cuda_available()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU")

ROW_KEYS = {"network", "layer", "ndim", "N", "C", "K", "spatial", "r", "m", "F", "density", "product",
            "backend", "ms", "phase_ms", "gflops", "flops", "workspace_bytes", "workspace_mib", "error",
            "error_subset", "tolerance", "ok", "weight_density", "sparse_product", "dtype", "scaled_from",
            "precision"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One ``magma-wino bench --quick`` run on numpy (+ emulator), shared by the tests."""
    out = tmp_path_factory.mktemp("bench")
    backends = ["numpy", "emulator"] if HAS_EMU else ["numpy"]
    argv = ["--quick", "--backend", *backends, "--json", str(out / "b.json"), "--markdown", str(out / "b.md"),
            "--no-progress"]
    status = bench_cli.main(argv)
    return status, json.loads((out / "b.json").read_text()), (out / "b.md").read_text()


def test_quick_writes_json_with_documented_keys(quick) -> None:
    status, res, _ = quick
    assert status == 0
    assert res["schema"] == "magma_wino.bench/1"
    assert {"meta", "rows", "crossover", "skipped"} <= set(res)
    assert {"command", "version", "cpu", "dtype", "tiles", "timing", "gflops", "error"} <= set(res["meta"])
    assert res["meta"]["command"].startswith("magma-wino bench --quick")
    rows = res["rows"]
    assert rows
    for r in rows:
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
        assert r["ms"] > 0 and r["gflops"] > 0
        assert r["flops"] == bench.direct_flops(r["N"], r["C"], r["K"], r["spatial"], r["r"])
        assert r["ok"] is True, r
        assert r["error"] <= r["tolerance"]
    backends = {r["backend"] for r in rows}
    assert {"numpy", "im2col+matmul"} <= backends
    assert {r["ndim"] for r in rows} == {2, 3}  # c3d is in the quick set
    if HAS_EMU:
        assert "emulator" in backends
        emu = [r for r in rows if r["backend"] == "emulator"]
        assert all(r["scaled_from"] is not None for r in emu)
        sparse = [r for r in emu if r["product"] == "sparse"]
        assert sparse and all(r["sparse_product"] for r in sparse)
        assert {r["density"] for r in sparse} == {1.0, 0.25, 0.0}
        assert res["crossover"]
        for c in res["crossover"]:
            assert c["crossover_density"] in (None, 1.0, 0.25, 0.0)
            # the model's switch to the CSR product for that layer and mode, in [0, 1]
            want = pm.crossover_density(c["K"], c["C"], c["m"], c["r"], c["precision"] or "fp32", "csr", c["ndim"])
            assert c["model_crossover_density"] == want and 0.0 <= want <= 1.0


def test_phase_times_add_up(quick) -> None:
    _, res, _ = quick
    for r in res["rows"]:
        if r["product"] in ("baseline", "fused"):  # one call: no phases
            assert r["phase_ms"] is None
            continue
        ph = r["phase_ms"]
        assert set(ph) == {"input", "product", "output"}
        assert all(v > 0 for v in ph.values()), r


def test_workspace_bytes(quick) -> None:
    _, res, _ = quick
    for r in res["rows"]:
        if r["product"] == "baseline":
            continue
        wb, item = r["workspace_bytes"], np.dtype(r["dtype"]).itemsize
        if r["product"] == "fused":  # V and M never leave the SM
            assert wb["V"] == wb["M"] == wb["split_k"] == 0 and wb["U"] > 0
            continue
        alpha = r["m"] + r["r"] - 1
        P = r["N"] * math.prod(math.ceil(s / r["m"]) for s in r["spatial"])  # padding 1: out = in
        assert wb["V"] == alpha ** r["ndim"] * r["C"] * P * item
        assert wb["M"] == alpha ** r["ndim"] * r["K"] * P * item
        assert r["workspace_mib"] == pytest.approx((wb["V"] + wb["M"] + wb["U"]) / 2**20)


def test_table_renders(quick) -> None:
    from rich.console import Console

    _, res, md = quick
    console = Console(record=True, width=260)
    bench_cli.print_result(res, console)
    text = console.export_text()
    for col in ("layer", "F(m,r)", "density", "precision", "in/prod/out ms", "GFLOP/s", "workspace MiB", "error",
                "ok"):
        assert col in text
    assert "F(4,3)" in text and "im2col+matmul" in text
    assert md.startswith("Command: `magma-wino bench --quick")
    assert "| layer | N | C | K | H×W | F(m,r) |" in md
    assert md.count("\n| ") >= len(res["rows"])


@pytest.mark.parametrize("nd,pad", [(2, 1), (2, 0), (3, 1)])
def test_im2col_numpy_matches_direct(rng, nd, pad) -> None:
    x = rng.standard_normal((2, 3) + (6, 7, 5)[:nd])
    w = rng.standard_normal((4, 3) + (3,) * nd)
    direct = reference.conv2d_direct if nd == 2 else reference.conv3d_direct
    y = bench.im2col_conv(x, w, pad)
    np.testing.assert_allclose(y, direct(x, w, padding=pad), rtol=1e-12, atol=1e-12)
    y32 = bench.im2col_conv(x.astype(np.float32), w.astype(np.float32), pad, xp=np)
    assert y32.dtype == np.float32


@pytest.mark.parametrize("sparse", [False, True])
def test_phase_functions_compose_to_the_plan(rng, sparse) -> None:
    backend = "emulator" if HAS_EMU else "numpy"
    if sparse and not HAS_EMU:
        pytest.skip("emulator extension missing")
    x = rng.standard_normal((2, 8, 9, 10)).astype(np.float32)
    w = rng.standard_normal((6, 8, 3, 3)).astype(np.float32)
    if sparse:
        U = reference.filter_transform(w, 4).astype(np.float32)
        plan = WinogradConv2d.from_winograd(U, 3, prune=0.5, sparse=True, padding=1, m=4, backend=backend)
    else:
        plan = WinogradConv2d(w, padding=1, m=4, backend=backend)
    fns, sizes = bench.phase_functions(plan, x)
    fns["input"]()
    fns["product"]()
    y = fns["output"]()
    np.testing.assert_array_equal(np.asarray(y), np.asarray(plan(x)))
    assert sizes["V"] > 0 and sizes["M"] > 0 and sizes["U"] > 0


def test_phase_functions_numpy_3d(rng) -> None:
    x = rng.standard_normal((1, 4, 5, 6, 7))
    w = rng.standard_normal((3, 4, 3, 3, 3))
    plan = WinogradConv3d(w, padding=1, m=2, backend="numpy")
    fns, _ = bench.phase_functions(plan, x)
    fns["product"]()
    np.testing.assert_allclose(fns["output"](), plan(x), rtol=1e-12, atol=1e-12)


def test_bench_layer_error_subset_uses_tile_aligned_window(rng) -> None:
    lay = bench.Layer("test", "t", 8, 8, (30, 30))
    rows = bench.bench_layer(lay, 2, "numpy", [2, 4, 6], [1.0], repeat=1, check_window=12)
    assert all(r["error_subset"] == "n=0, out[12x12]" for r in rows)
    assert all(r["ok"] for r in rows)
    if HAS_EMU:
        rows = bench.bench_layer(lay, 1, "emulator", [4], [0.5, 0.1], repeat=1, check_window=12, baselines=False)
        assert [r["product"] for r in rows] == ["dense", "fused", "sparse", "sparse"]
        assert rows[2]["weight_density"] == pytest.approx(0.5, abs=0.01)
        assert all(r["ok"] for r in rows)


def test_network_tables() -> None:
    r18 = bench.network_layers(["resnet18"])
    shapes = {(lay.C, lay.K, lay.spatial) for lay in r18}
    assert {(64, 64, (56, 56)), (128, 128, (28, 28)), (256, 256, (14, 14)), (512, 512, (7, 7))} <= shapes
    assert {(64, 128, (28, 28)), (128, 256, (14, 14)), (256, 512, (7, 7))} <= shapes
    r50 = bench.network_layers(["resnet50"])
    assert [(lay.C, lay.spatial[0]) for lay in r50] == [(64, 56), (128, 28), (256, 14), (512, 7)]
    vgg = bench.network_layers(["vgg16"])
    assert len(vgg) == 9 and vgg[0].C == 3 and any("/" in lay.name for lay in vgg)
    c3d = bench.network_layers(["c3d"])
    assert all(lay.ndim == 3 for lay in c3d)
    assert len(bench.network_layers(["all"])) == len(vgg) + len(r18) + len(r50) + len(c3d)
    assert bench.Layer("n", "l", 64, 128, (56, 56)).scaled(8, 4) == bench.Layer("n", "l", 8, 16, (14, 14))
    with pytest.raises(ValueError, match="unknown network"):
        bench.network_layers(["alexnet"])


def test_max_workspace_skips(tmp_path) -> None:
    parser = bench_cli.add_arguments(__import__("argparse").ArgumentParser())
    args = parser.parse_args(["--backend", "numpy", "--network", "vgg16", "--batch", "32",
                              "--max-workspace-mib", "100"])
    jobs, skipped = bench.plan_jobs(args)
    assert skipped and all("max-workspace-mib" in s["reason"] for s in skipped)
    assert all(j["est_mib"] <= 100 for j in jobs)


def test_crossover_from_rows() -> None:
    def row(product, d, prod_ms, ms):
        return {"network": "n", "layer": "l", "backend": "emulator", "N": 1, "F": "F(4,3)", "product": product,
                "density": d, "phase_ms": {"input": 1, "product": prod_ms, "output": 1}, "ms": ms,
                "K": 64, "C": 32, "m": 4, "r": 3, "ndim": 2, "precision": "tf32x3"}

    rows = [row("dense", 1.0, 10, 12), row("sparse", 1.0, 30, 32), row("sparse", 0.5, 12, 14),
            row("sparse", 0.25, 8, 13), row("sparse", 0.1, 4, 6), row("sparse", 0.0, 1, 3)]
    (c,) = bench.crossovers(rows)
    assert c["crossover_density"] == 0.25
    assert c["total_crossover_density"] == 0.1
    assert c["model_crossover_density"] == pm.crossover_density(64, 32, 4, 3, "tf32x3", "csr", 2)
    rows[1:] = [row("sparse", 0.1, 20, 22)]
    assert bench.crossovers(rows)[0]["crossover_density"] is None


def test_cuda_backend_without_gpu_is_a_clear_error() -> None:
    if HAS_GPU:
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="no usable CUDA GPU"):
        bench_cli.main(["--backend", "cuda", "--quick", "--no-progress"])


def test_tolerance_of_rows_is_the_library_tolerance(quick) -> None:
    _, res, _ = quick
    r = next(r for r in res["rows"] if r["product"] == "dense" and r["backend"] == "numpy")
    assert r["tolerance"] == pytest.approx(tolerance(r["dtype"], r["m"], 3, r["C"] * 3 ** r["ndim"], r["ndim"]))


# --------------------------------------------------------------------------- GPU


@needs_gpu
@pytest.mark.gpu
def test_im2col_cupy_matches_direct(rng) -> None:
    cp = _backend.cupy_module()
    x = rng.standard_normal((2, 5, 9, 8))
    w = rng.standard_normal((4, 5, 3, 3))
    y = bench.im2col_conv(cp.asarray(x), cp.asarray(w), 1)
    assert isinstance(y, cp.ndarray)
    np.testing.assert_allclose(y.get(), reference.conv2d_direct(x, w, padding=1), rtol=1e-10, atol=1e-10)


@needs_gpu
@pytest.mark.gpu
def test_cudnn_baseline_matches_direct(rng) -> None:
    cp = _backend.cupy_module()
    x = rng.standard_normal((2, 5, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    got = bench.cudnn_conv_fn(cp.asarray(x), cp.asarray(w), 1)
    if got is None:
        pytest.skip("neither PyTorch with CUDA nor CuPy's cuDNN binding is available")
    name, fn = got
    y = fn()
    y = y.get() if hasattr(y, "get") else y.cpu().numpy()
    np.testing.assert_allclose(y, reference.conv2d_direct(x, w, padding=1), rtol=1e-4, atol=1e-4)
    assert name.startswith("cudnn")


@needs_gpu
@pytest.mark.gpu
def test_cuda_rows(rng) -> None:
    lay = bench.Layer("test", "t", 16, 16, (14, 14))
    rows = bench.bench_layer(lay, 2, "cuda", [2, 4], [0.5, 0.0], repeat=3)
    kinds = {(r["product"], r["backend"]) for r in rows}
    assert ("dense", "cuda") in kinds and ("sparse", "cuda") in kinds and ("baseline", "im2col+cublas") in kinds
    for r in rows:
        assert r["ms"] > 0 and r["ok"], r
        if r["product"] != "baseline":
            assert all(v > 0 for v in r["phase_ms"].values())
            assert r["workspace_bytes"]["pool_peak"] > 0


def test_rows_carry_the_resolved_precision(quick) -> None:
    _, res, md = quick
    assert res["meta"]["precisions"] == ["auto"]
    for r in res["rows"]:
        want = {"numpy": "fp32", "emulator": "tf32x3"}.get(r["backend"])  # auto, float32; baselines: None
        assert r["precision"] == want, r
    assert "| backend | precision |" in md


def test_precision_option_rows_per_mode_and_refusals_reported_once(tmp_path, capsys) -> None:
    path = tmp_path / "b.json"
    argv = ["--quick", "--backend", "numpy", "--network", "vgg16", "resnet18", "--precision", "fp32", "tf32",
            "--no-baselines", "--no-progress", "--wide", "--json", str(path)]  # --wide: the messages unwrapped
    assert bench_cli.main(argv) == 0
    res = json.loads(path.read_text())
    got = {(r["layer"], r["m"], r["precision"]) for r in res["rows"]}
    layers = {r["layer"] for r in res["rows"]}
    assert len(layers) == 2
    # tf32 refused for every tile on float32 data (precision.py: F(2,3) measured 1.1e-3, and
    # the table's headroom); each reason reported once for both layers
    assert got == {(lay, m, "fp32") for lay in layers for m in (2, 4, 6)}
    for r in res["rows"]:
        assert r["tolerance"] == pytest.approx(tolerance(np.float32, r["m"], 3, r["C"] * 9, 2))
    assert {s["rows"] for s in res["refused_precision"]} == {2}  # one reason per tile, both layers
    out = capsys.readouterr().out
    for m in (2, 4, 6):
        assert out.count(f"precision='tf32' is too inaccurate for F({m}, 3)") == 1


def test_bad_precision_is_an_argparse_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_cli.main(["--quick", "--backend", "numpy", "--precision", "fp8", "--no-progress"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_model_only_prints_and_writes_the_estimated_tables(tmp_path, capsys) -> None:
    """``magma-wino bench --model h200 --model-only``: no measured row, the estimated totals and
    one per-layer table per precision mode (every one labelled), the same in JSON and markdown."""
    js, md = tmp_path / "m.json", tmp_path / "m.md"
    status = bench_cli.main(["--model", "h200", "--model-only", "--network", "vgg16", "resnet50", "--batch", "32",
                         "--tile", "4", "--density", "1", "--no-progress", "--json", str(js), "--markdown", str(md)])
    assert status == 0
    out = capsys.readouterr().out
    res = json.loads(js.read_text())
    assert res["rows"] == []
    mod = res["model"]
    assert mod["label"].startswith("estimate") and mod["ratios"] == []
    assert set(mod["precisions"]) >= {"fp32", "tf32x3", "tf32"}
    # 9 VGG-16 shapes + 4 ResNet-50 ones, per mode; totals per network and mode
    # one three-phase and one fused estimate per layer and mode (F(4,3) has a fused kernel)
    assert [r["algorithm"] for r in mod["rows"]].count("three-phase") == 13 * len(mod["precisions"])
    assert [r["algorithm"] for r in mod["rows"]].count("fused") == 13 * len(mod["precisions"])
    assert {(t["network"], t["precision"]) for t in mod["totals"]} == {
        (n, p) for n in ("vgg16", "resnet50") for p in mod["precisions"]}
    vgg = {t["precision"]: t for t in mod["totals"] if t["network"] == "vgg16"}
    assert all(t["layers"] == 13 for t in vgg.values())
    assert "ESTIMATE on H200-SXM-141GB: network totals" in out
    for p in mod["precisions"]:
        assert f"ESTIMATE on H200-SXM-141GB, {p}: per layer" in out
        assert f"Per layer, {p} (estimate)" in md.read_text()
    assert "magma-wino bench" not in out.split("ESTIMATE")[0]  # no (empty) measured table first


def test_model_only_needs_model() -> None:
    with pytest.raises(SystemExit, match="--model-only needs --model"):
        bench_cli.main(["--model-only", "--no-progress"])


def test_emulator_rows_include_the_fused_layer_without_v_or_m() -> None:
    lay = bench.Layer("t", "c", 8, 12, (10, 10))
    rows = bench.bench_layer(lay, 1, "emulator", [2, 4, 6], [1.0], repeat=1, baselines=False)
    fused = [r for r in rows if r["product"] == "fused"]
    dense = {r["m"]: r for r in rows if r["product"] == "dense"}
    assert sorted(r["m"] for r in fused) == [2, 4]  # F(6,3) has no fused kernel
    for r in fused:
        assert r["ok"] and r["algorithm"] == "fused" and r["phase_ms"] is None
        assert r["workspace_bytes"]["V"] == r["workspace_bytes"]["M"] == 0
        assert dense[r["m"]]["algorithm"] == "three-phase" and dense[r["m"]]["workspace_bytes"]["V"] > 0
        assert r["error"] == dense[r["m"]]["error"]  # bitwise the same y (docs/fused.md)
    assert "fused" in bench.table_cells(fused[0])


@pytest.mark.parametrize("backend", ["numpy", pytest.param("emulator", marks=pytest.mark.skipif(
    not HAS_EMU, reason="the emulator extension is not built"))])
def test_backward_rows_follow_their_dense_rows_and_check_the_gradients(backend, monkeypatch) -> None:
    lay = bench.Layer("t", "c", 6, 9, (9, 10))
    rows = bench.bench_layer(lay, 2, backend, [2, 4], [1.0], repeat=1, baselines=False, backward=True)
    dense = {r["m"]: r for r in rows if r["product"] == "dense"}
    back = {r["m"]: r for r in rows if r["product"] == "backward"}
    assert sorted(back) == sorted(dense) == [2, 4]
    for m, r in back.items():
        assert ROW_KEYS <= set(r) and r["ok"] and 0 < r["error"] <= r["tolerance"]
        assert r["flops"] == 2 * dense[m]["flops"] and r["ms"] > 0
    assert "backward" in bench.table_cells(back[2])
    # a weight gradient off by 1e-3 must fail the row's check
    from magma_wino import backward

    real = backward.BackwardMixin._output_adjoint
    monkeypatch.setattr(backward.BackwardMixin, "_output_adjoint", lambda self, dy, xshape, last=False: real(self, dy, xshape, last) * 1.001)
    rows = bench.bench_layer(lay, 1, backend, [2], [1.0], repeat=1, baselines=False, backward=True)
    assert [r["ok"] for r in rows if r["product"] == "backward"] == [False]
