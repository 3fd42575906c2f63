"""magma_wino.perfmodel: properties of the speed-of-light estimates (no GPU needed)."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from magma_wino import perfmodel as pm

ROOT = Path(__file__).resolve().parents[1]
REPORT = Path(__file__).with_name("data") / "kernel_report_sm90_mix.json"
VGG_CONV3 = dict(N=32, C=256, K=256, H=56, W=56)
TC = tuple(pm.TC_PEAK)  # the modes whose products run on tensor cores


@pytest.mark.parametrize("precision", pm.PRECISIONS)
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


def test_16bit_modes_halve_v_and_u_bytes() -> None:
    """bf16 / fp16 store U and V in 16 bits: the input transform writes half the V bytes, the
    product reads half the U and V bytes; x, M and y stay float32.  The memory-bound input
    transform's estimate is exactly its bytes over HBM (plus the launch)."""
    N, C, K, H = 32, 256, 256, 56
    P, pos = N * (H // 4) ** 2, 36
    g = pm.gpu("h200")
    for prec, s_op in (("tf32", 4), ("bf16", 2), ("fp16", 2)):
        e = pm.estimate_layer(N, C, K, H, m=4, precision=prec)
        inp, prod = e.phase("input"), e.phase("product")
        assert inp.dram_bytes == N * C * H * H * 4 + pos * C * P * s_op
        assert prod.dram_bytes == pos * (K * C + C * P) * s_op + pos * K * P * 4
        assert inp.binding == "HBM"
        assert inp.seconds == pytest.approx(inp.dram_bytes / (g.hbm_tbs * 1e12) + pm.LAUNCH_OVERHEAD_S)


@pytest.mark.parametrize("density", [1.0, 0.5, 0.1])
@pytest.mark.parametrize("precision", ["fp32", "fp64", "tf32x3"])
def test_binding_limit_is_the_max(density, precision) -> None:
    e = pm.estimate_layer(**VGG_CONV3, m=4, precision=precision, density=density)
    for p in e.phases:
        assert p.bounds[p.limit] == max(p.bounds.values())
        assert p.binding == p.limit  # a big layer: no phase is launch-bound
        assert p.seconds == pytest.approx(max(p.bounds.values()) + pm.LAUNCH_OVERHEAD_S)
    assert e.seconds == pytest.approx(sum(p.seconds for p in e.phases))


@pytest.mark.parametrize("precision", pm.PRECISIONS)
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
    """One VGG layer: every phase at most the peak FLOP rate of its math path and the HBM bandwidth."""
    g = pm.gpu("h200")
    for precision in pm.PRECISIONS:
        for d in (1.0, 0.25):
            e = pm.estimate_layer(**VGG_CONV3, m=4, precision=precision, density=d)
            for p in e.phases:
                tc = p.phase == "product" and d == 1.0 and precision in TC
                peak = g.peak(pm.TC_PEAK[precision] if tc else ("fp64" if precision == "fp64" else "fp32"))
                assert p.flops / p.seconds <= peak * (1 + 1e-9)
                assert p.dram_bytes / p.seconds <= g.hbm_tbs * 1e12 * (1 + 1e-9)
    # the dense fp32 product (128x128 tile, 512 FFMA in 611 instructions and 141 wavefronts per
    # 8-deep slice): its FLOPs at FP32 peak are a bound, the issue slots the binding limit
    prod = pm.estimate_layer(**VGG_CONV3, m=4).phase("product")
    assert prod.bounds["FMA pipe"] >= prod.flops / g.peak("fp32") * (1 - 1e-9)
    assert "128x128" in prod.kernel and prod.binding == "issue"
    assert prod.bounds["issue"] / prod.bounds["FMA pipe"] == pytest.approx((611 / 4) / (512 / g.fma_warps_per_clk("fp32")))
    assert prod.mix_source.startswith("SASS")


def test_tensor_core_issue_bound_from_the_sass_mix() -> None:
    """The tf32 product (VEC 4: C, P multiples of 4) charges the loop's 268 warp instructions
    per 32 HMMA, so on a layer whose grid divides evenly the issue bound is exactly
    slices x warps x 268 / (4 issue per clock x SMs x clock), and it exceeds the tensor bound."""
    g = pm.gpu("h200")
    N, C, K, H = 32, 256, 256, 32  # P = 32 * 8 * 8 = 2048: 32 column tiles, 4 row tiles
    e = pm.estimate_layer(N, C, K, H, m=4, precision="tf32")
    prod = e.phase("product")
    blocks = 36 * (K // 64) * (2048 // 64)
    eff = pm._waves(blocks, 4, g.sms)
    warp_iters = blocks * 4 * (C // 16)
    clk = g.clock_ghz * 1e9
    assert sum(pm.SASS_SM90[("gemm_tc", "tf32", 4)].values()) == 268
    assert prod.bounds["issue"] == pytest.approx(warp_iters * 268 / (4 * g.sms * clk) / eff)
    assert prod.bounds["tensor core"] == pytest.approx(warp_iters * 32 * 1024 / g.peak("tf32") / eff)
    assert prod.bounds["issue"] > 3 * prod.bounds["tensor core"]  # conversion and fragment loads dominate
    assert prod.binding == "issue" and "VEC 4" in prod.kernel
    # C = 3 (VGG conv1_1) has no 16-byte rows: the 4-byte copy variant, 483 instructions per slice
    first = pm.estimate_layer(32, 3, 64, 224, m=4, precision="tf32").phase("product")
    assert "VEC 1" in first.kernel


def test_bf16_is_faster_than_tf32_on_a_compute_bound_layer() -> None:
    """Same 64x64 tile, the same HMMA FLOPs, twice the dense peak and no conversion: where the
    tf32 product is not HBM-bound the bf16 / fp16 ones are faster, their tensor bound is half,
    and they run the 16-bit configuration (32-deep slices, 16 HMMA.16816 each)."""
    tf = pm.estimate_layer(**VGG_CONV3, m=4, precision="tf32").phase("product")
    for prec in ("bf16", "fp16"):
        h = pm.estimate_layer(**VGG_CONV3, m=4, precision=prec).phase("product")
        assert tf.binding != "HBM"
        assert h.seconds < tf.seconds
        assert h.bounds["tensor core"] == pytest.approx(tf.bounds["tensor core"] / 2)
        assert h.bounds["issue"] < tf.bounds["issue"] / 2  # no rounding, half the slices
        assert pm.TC_TILE_16.name in h.kernel and "VEC 8" in h.kernel
        assert not h.hypothetical and h.mix_source.startswith("SASS")


def test_tf32x3_is_never_faster_than_tf32() -> None:
    from magma_wino.bench import network_layers

    for lay in network_layers(["vgg16", "resnet50"]):
        H, W = lay.spatial
        for m in (2, 4, 6):
            a = pm.estimate_layer(32, lay.C, lay.K, H, W, m, precision="tf32")
            b = pm.estimate_layer(32, lay.C, lay.K, H, W, m, precision="tf32x3")
            assert b.seconds >= a.seconds
            pa, pb = a.phase("product"), b.phase("product")
            assert pb.bounds["tensor core"] == pytest.approx(3 * pa.bounds["tensor core"])  # 96 vs 32 HMMA
            assert pb.bounds["issue"] > pa.bounds["issue"]


def test_binding_limit_named_on_constructed_gpus() -> None:
    """Change one resource of the H200 by orders of magnitude: it becomes the binding limit."""
    h = pm.gpu("h200")
    cases = {
        "HBM": replace(h, hbm_tbs=0.01),
        "tensor core": replace(h, tf32_tflops=1.0, hbm_tbs=1e3),
        "issue": replace(h, issue_per_clk=0.05, hbm_tbs=1e3),
        "shared memory": replace(h, clock_ghz=1e-3, fp32_tflops=1e3, tf32_tflops=1e6, issue_per_clk=1e6, hbm_tbs=1e3),
    }
    for name, g in cases.items():
        prod = pm.estimate_layer(**VGG_CONV3, m=4, precision="tf32", gpu_key=g).phase("product")
        assert prod.binding == name, (name, prod.bounds)
    slow = pm.estimate_layer(**VGG_CONV3, m=4, precision="tf32", gpu_key=cases["HBM"])
    assert all(p.binding == "HBM" for p in slow.phases)
    p = slow.phase("product")
    assert p.seconds == pytest.approx(p.dram_bytes / 1e10 + pm.LAUNCH_OVERHEAD_S)


def test_wave_quantisation_and_split_k_projection() -> None:
    assert pm._waves(100, 4, 132) == pytest.approx(100 / 528)
    assert pm._waves(528, 4, 132) == 1.0 and pm._waves(529, 4, 132) == pytest.approx(529 / 1056)
    # ResNet-50 conv5 at N = 32, F(4,3): P = 128, 36 x 4 x 1 = 144 blocks of 128x128 on 132 x 2
    # slots -> 0.55
    e = pm.estimate_layer(32, 512, 512, 7, m=4, precision="fp32")
    prod = e.phase("product")
    assert "128x128" in prod.kernel and prod.wave_efficiency == pytest.approx(144 / 264)
    sk = e.projections["split_k"]
    assert sk["splits"] > 1 and sk["ms"] < e.ms and sk["gain_ms"] == pytest.approx(e.ms - sk["ms"])
    assert sk["wave_efficiency"] > prod.wave_efficiency
    assert sk["label"] == pm.PROJECTION and "does not exist" in sk["label"]
    # the rows name the idle-SM cost: the binding on-chip bound times the idle fraction
    (row,) = pm.network_estimates(["resnet50"], [32], [4], ["fp32"])[3:]
    assert row["layer"] == "conv5_x.b" and row["binding"]["product"] == prod.binding == "issue"
    assert row["product_idle_ms"] == pytest.approx(prod.bounds["issue"] * (1 - prod.wave_efficiency) * 1e3)
    assert "0.55 (" in pm.markdown_estimates([row])
    # each split keeps >= SPLIT_K_MIN_SLICES slices: C = 64 (4 slices) gets no split
    assert "split_k" not in pm.estimate_layer(32, 64, 512, 7, m=4, precision="fp32").projections


def test_fp64_runs_dmma() -> None:
    """fp64 on these sm_80+ GPUs is the tensor-core kernel with double operands (DMMA.884, 512
    FLOP each, 64 per 16-deep slice per warp) at the FP64 tensor peak: its tensor bound is the
    padded grid's DMMA work over that peak, and it beats the SIMT DFMA kernel's FMA bound."""
    g = pm.gpu("h200")
    e = pm.estimate_layer(**VGG_CONV3, m=4, precision="fp64")
    prod = e.phase("product")
    assert pm.TC_TILE_64.name in prod.kernel and "VEC 2" in prod.kernel
    P = 32 * 14 * 14
    blocks = 36 * (256 // 64) * math.ceil(P / 64)
    warp_iters = blocks * 4 * (256 // 16)
    assert pm.tc_hmma_per_slice("fp64") == 64
    assert prod.bounds["tensor core"] == pytest.approx(warp_iters * 64 * 512 / g.peak("fp64_tc") / prod.wave_efficiency)
    assert prod.dram_bytes == 36 * (256 * 256 + 256 * P) * 8 + 36 * 256 * P * 8
    assert prod.bounds["tensor core"] < prod.flops / g.peak("fp64")  # DMMA's peak is twice DFMA's
    assert "dmma" not in e.projections  # a kernel now, not a projection


def test_cudnn_estimate_and_rows() -> None:
    c = pm.estimate_cudnn(**VGG_CONV3)
    g = pm.gpu("h200")
    assert c["binding"] == "math" and c["path"] == "fp32"
    assert c["ms"] * 1e-3 == pytest.approx(c["flops"] / (pm.CUDNN_EFFICIENCY * g.peak("fp32")) + pm.LAUNCH_OVERHEAD_S)
    assert pm.estimate_cudnn(**VGG_CONV3, precision="tf32x3")["path"] == "fp32"  # same accuracy class
    b = pm.estimate_cudnn(**VGG_CONV3, precision="bf16")
    assert b["path"] == "bf16" and b["dram_bytes"] == c["dram_bytes"] / 2
    rows = pm.network_estimates(["vgg16"], [32], [4], ["fp32", "tf32", "bf16"], [1.0, 0.25])
    assert rows and all(r["label"] == pm.LABEL for r in rows)
    assert {(r["precision"], r["density"]) for r in rows} == {("fp32", 1.0), ("fp32", 0.25), ("tf32", 1.0),
                                                              ("bf16", 1.0)}
    assert not any(r["hypothetical"] for r in rows)  # every product mix is from SASS
    assert all(r["refused"] for r in rows if r["precision"] == "tf32")  # F(4,3) too inaccurate in tf32
    md = pm.markdown_estimates(rows)
    assert "tf32†" in md and "conv3_1" in md


def test_network_totals_count_repeated_layers() -> None:
    rows = pm.network_estimates(["vgg16"], [32], [4], ["tf32x3"])
    (t,) = pm.network_totals(rows)
    assert t["layers"] == 13
    times = {r["layer"]: r["layer"].count("/") + 1 for r in rows}
    assert t["ms"] == pytest.approx(sum(times[r["layer"]] * r["ms"] for r in rows))
    assert t["split_k_ms"] <= t["ms"]
    assert t["ratio_to_cudnn"] == pytest.approx(t["ms"] / t["cudnn_ms"])


def test_mix_from_sass_counts_wavefronts() -> None:
    mix = pm.mix_from_sass({"FFMA": 256, "LDS.32": 128, "LDG.128": 2, "STS.32": 4, "STS.128": 1, "BAR": 2, "other": 32})
    assert (mix.fma, mix.insns, mix.l1_wavefronts) == (256, 425, 128 + 8 + 4 + 4)
    # the tile-shape derivation of the 64x64 tile agrees with the SASS on FMAs and LDS
    derived = pm.gemm_mix(pm.GemmTile("64x64-derived", 16, 16, 64, 64, 16), "float32")
    assert derived.fma == 256 and derived.source == "tile shape"
    # tensor-core GEMM: 3 LDS, the stage (2048 floats over 4 warps: 16 wavefronts) and the
    # fragments ((32 + 32) x 16 floats per warp: 32 wavefronts, the SASS's 32 LD.E)
    tc = pm.tc_mix("tf32", 4)
    assert (tc.fma, tc.insns, tc.l1_wavefronts) == (32, 268, 3 + 16 + 32)
    # 16-bit, 32-deep slices: the same bytes per slice as float's 16-deep ones; with 16-bit
    # loads the stage goes through registers, its STS are in the mix (no cp.async term)
    assert pm.tc_mix("bf16", 8).l1_wavefronts == 3 + 16 + 32
    assert pm.tc_mix("bf16", 1).l1_wavefronts == 32 + 32 + 32


def test_builtin_mixes_agree_with_a_kernel_report() -> None:
    """tests/data/kernel_report_sm90_mix.json: the rows of ``tools/kernel_report.py --arch 90
    --json`` the model reads.  Every built-in mix is what load_sass reads from it, and the
    tensor-core rows' HMMA counts are the tile's (32 per slice for tf32, 96 for tf32x3)."""
    sass = pm.load_sass(REPORT)
    assert set(sass) == set(pm.SASS_SM90)
    for k, mix in pm.SASS_SM90.items():
        assert sass[k] == mix, k
    for (kernel, *rest), mix in pm.SASS_SM90.items():
        if kernel == "gemm_tc":
            prec, vec = rest
            assert mix.get("HMMA", 0) + mix.get("DMMA", 0) == pm.tc_hmma_per_slice(prec)
    for prec in ("tf32", "tf32x3"):  # 16-byte copies: 4x fewer copy instructions than 4-byte ones
        assert pm.SASS_SM90[("gemm_tc", prec, 1)]["LDGSTS"] == 4 * pm.SASS_SM90[("gemm_tc", prec, 4)]["LDGSTS"]
    for prec in ("bf16", "fp16"):  # 16-bit loads of 2 bytes: no cp.async, 32 LDG + 32 STS per thread
        assert "LDGSTS" not in pm.SASS_SM90[("gemm_tc", prec, 1)]
    assert (pm.tc_hmma_per_slice("tf32"), pm.tc_hmma_per_slice("tf32x3"), pm.tc_hmma_per_slice("bf16")) == (32, 96, 16)
    # the literal --refresh-builtin prints is the table
    assert ast.literal_eval(pm.builtin_literal(sass).split("=", 1)[1]) == pm.SASS_SM90


def test_sass_json_replaces_the_builtin_mix(tmp_path) -> None:
    """A report's gemm_tc rows (the enum printed as kBf16, or as a cast) replace the built-in
    mixes, and change the estimate; other arches' rows are ignored."""
    rows = json.loads(REPORT.read_text())
    bf = next(r for r in rows if r["kernel"].startswith(("gemm_tc_kernel<(TcPrecision)2,", "gemm_tc_kernel<kBf16,"))
              and r["kernel"].endswith(", 8>") and any(c in r["kernel"] for c in pm._TC_CONFIGS))
    lean = dict(bf, kernel=bf["kernel"].replace("(TcPrecision)2,", "kBf16,"),
                sass={"scope": "loop", "mix": {"HMMA": 16, "LDS.32": 3, "LDGSTS": 8, "BAR": 2, "other": 40}})
    tf = next(r for r in rows if r["kernel"].startswith("gemm_tc_kernel<kTf32x3,"))
    cast = dict(tf, kernel=tf["kernel"].replace("kTf32x3,", "(TcPrecision)1,"))
    path = tmp_path / "kr.json"
    path.write_text(json.dumps([lean, cast]))
    sass = pm.load_sass(path)
    assert sass[("gemm_tc", "bf16", 8)]["other"] == 40 and ("gemm_tc", "tf32x3", int(tf["kernel"][-2])) in sass
    e = pm.estimate_layer(**VGG_CONV3, m=4, precision="bf16", sass=sass).phase("product")
    builtin = pm.estimate_layer(**VGG_CONV3, m=4, precision="bf16").phase("product")
    assert e.mix_source == "SASS (given)" and e.bounds["issue"] < builtin.bounds["issue"]
    assert pm.load_sass(path, arch="80") == {}


_NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)


def _kernel_report():
    spec = importlib.util.spec_from_file_location("_mw_kernel_report_pm", ROOT / "tools" / "kernel_report.py")
    kr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kr)
    return kr


@pytest.mark.skipif(_NVCC is None, reason="nvcc not found (the tensor-core kernels are compiled to SASS)")
def test_builtin_tc_mixes_match_the_compiled_kernel(tmp_path) -> None:
    """The tensor-core kernels as they are now (sm_90 cubin of gemm_tc.cuh alone, the four
    instantiations taken by address, so no signature is restated): the HMMA and cp.async
    counts per slice of every built-in gemm_tc mix are the SASS's.  The other classes drift with
    codegen; refresh them with ``python -m magma_wino.perfmodel --refresh-builtin``."""
    kr = _kernel_report()
    cuobjdump = kr.find_cuobjdump(_NVCC)
    if cuobjdump is None:
        pytest.skip("cuobjdump not found (pip install nvidia-cuda-cuobjdump, the dev extra)")
    inst = [f"(const void*)&mw::gemm_tc_kernel<mw::TcPrecision::{p}, mw::GemmTc64x64x16_32x32_s2, {v}>"
            for p in ("kTf32", "kTf32x3") for v in (1, 4)]
    has16 = "GemmTc16_64x64x32_32x32_s3" in (ROOT / "kernels" / "gemm_tc.cuh").read_text()
    if has16:  # the 16-bit kernel, once the header has it
        inst += [f"(const void*)&mw::gemm_tc_kernel<mw::TcPrecision::{p}, mw::GemmTc16_64x64x32_32x32_s3, {v}>"
                 for p in ("kBf16", "kFp16") for v in (1, 8)]
    has64 = "GemmTc64_64x64x16_32x32_s2" in (ROOT / "kernels" / "gemm_tc.cuh").read_text()
    if has64:  # the DMMA kernel, once the header has it
        inst += [f"(const void*)&mw::gemm_tc_kernel<mw::TcPrecision::kFp64, mw::GemmTc64_64x64x16_32x32_s2, {v}>"
                 for v in (1, 2)]
    src = tmp_path / "tc.cu"
    src.write_text('#include "gemm_tc.cuh"\nconst void* mw_pm_kernels[] = {' + ", ".join(inst) + "};\n")
    cubin = tmp_path / "tc.cubin"
    subprocess.run([_NVCC, "-std=c++17", "-arch=sm_90", "-cubin", str(src), "-o", str(cubin),
                    f"-I{ROOT / 'kernels'}", f"-I{ROOT / 'kernels' / 'include'}"], check=True, capture_output=True)
    out = subprocess.run([cuobjdump, "-sass", str(cubin)], check=True, capture_output=True, text=True).stdout
    names = subprocess.run([shutil.which("cu++filt", path=str(Path(_NVCC).parent)) or "c++filt"],
                           input="\n".join(kr.parse_sass(out)), capture_output=True, text=True).stdout.split("\n")
    rows = [{"arch": "90", "kernel": kr._short(n), "sass": mix}
            for n, mix in zip(names, kr.sass_mix(out).values())]
    report = tmp_path / "kr.json"
    report.write_text(json.dumps(rows))
    sass = pm.load_sass(report)
    for k, mix in pm.SASS_SM90.items():
        if k[0] != "gemm_tc" or (k[1] in ("bf16", "fp16") and not has16) or (k[1] == "fp64" and not has64):
            continue
        assert k in sass, f"no gemm_tc row for {k} in {[r['kernel'] for r in rows]}"
        for c in ("HMMA", "DMMA", "LDGSTS"):
            assert sass[k].get(c, 0) == mix.get(c, 0), (k, c, sass[k])


def test_default_precisions_follow_precision_modes(monkeypatch) -> None:
    from magma_wino import precision

    assert pm.default_precisions() == [p for p in precision.MODES if p in pm.PRECISIONS]
    assert pm.default_precisions("float32") == [p for p in precision.MODES if p in pm.PRECISIONS and p != "fp64"]
    assert pm.default_precisions("float64") == ["fp64"]
    monkeypatch.setattr(precision, "MODES", ("auto", "fp32", "tf32x3", "fp64"))
    assert pm.default_precisions("float32") == ["fp32", "tf32x3"]
    with pytest.raises(ValueError, match="precision"):
        pm.mode("int8")
    with pytest.raises(ValueError, match="density"):
        pm.estimate_layer(1, 8, 8, 8, density=1.5)


def test_cli_json_and_markdown(tmp_path) -> None:
    js, md = tmp_path / "e.json", tmp_path / "e.md"
    assert pm.main(["--network", "resnet50", "--precision", "fp32", "tf32x3", "bf16",
                    "--json", str(js), "--markdown", str(md)]) == 0
    data = json.loads(js.read_text())
    # 4 layers x 3 modes x (three-phase, fused: F(4,3) has a fused kernel); totals per algorithm
    assert data["label"] == pm.LABEL and len(data["rows"]) == 24 and len(data["totals"]) == 6
    assert {r["algorithm"] for r in data["rows"]} == {"three-phase", "fused"}
    text = md.read_text()
    assert "ESTIMATES" in text and "Per layer, tf32x3 (estimate)" in text and "Per layer, bf16 (estimate)" in text
    assert "PROJECTION" in text and "Command: `python -m magma_wino.perfmodel" in text
    # three-phase only: the rows of the first version
    assert pm.main(["--network", "resnet50", "--precision", "fp32", "--algorithm", "three-phase",
                    "--json", str(js)]) == 0
    assert len(json.loads(js.read_text())["rows"]) == 4


def test_cli_refresh_builtin(capsys) -> None:
    assert pm.main(["--refresh-builtin", str(REPORT)]) == 0
    out = capsys.readouterr().out
    assert ast.literal_eval(out.split("=", 1)[1].split("\n#")[0]) == pm.SASS_SM90


def test_tiny_layers_are_launch_bound() -> None:
    e = pm.estimate_layer(1, 8, 8, 8, m=2)
    assert all(p.binding == "launch" for p in e.phases)
    assert e.seconds >= 3 * pm.LAUNCH_OVERHEAD_S


def test_roofline_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    p = pm.roofline_png(tmp_path / "r.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _bench_args(*extra: str):
    import argparse

    from magma_wino.cli import bench as bench_cli

    return bench_cli.add_arguments(argparse.ArgumentParser()).parse_args(
        ["--backend", "numpy", "--network", "vgg16", "--layers", "conv5_1", "--batch", "32", "--tile", "4",
         "--density", "1", "0.25", "--model", "h200", *extra])


def _wide_console():
    """Tables at full width (--wide): the checks below read cells, which 80 columns would wrap."""
    import argparse

    from magma_wino.cli._common import console

    return console(argparse.Namespace(wide=True))


def test_bench_model_rows_and_ratios(capsys) -> None:
    from magma_wino import bench, precision
    from magma_wino.cli import bench as bench_cli

    args = _bench_args()
    fake = [{"backend": "cuda", "network": "vgg16", "layer": "conv5_1/5_2/5_3", "N": 32, "m": 4, "F": "F(4,3)",
             "density": 1.0, "dtype": "float32", "precision": "tf32x3", "product": "dense", "ms": 1.0,
             "scaled_from": None, "phase_ms": {"input": 0.1, "product": 0.8, "output": 0.1}}]
    sparse = dict(fake[0], density=0.25, product="sparse", ms=2.0)
    mod = bench.model_estimates(args, fake + [sparse])
    assert mod["label"] == pm.LABEL and mod["gpu"] == "h200"
    # auto alone: every float32 mode of precision.MODES; sparse rows only for fp32
    modes = [p for p in precision.MODES if p in pm.PRECISIONS and p != "fp64"]
    assert mod["precisions"] == modes
    assert {(r["precision"], r["density"]) for r in mod["rows"]} == {(p, 1.0) for p in modes} | {("fp32", 0.25)}
    est = next(r for r in mod["rows"] if r["precision"] == "tf32x3")
    est_sp = next(r for r in mod["rows"] if r["density"] == 0.25)
    q, q_sp = mod["ratios"]
    assert q["ratio"] == pytest.approx(1.0 / est["ms"]) and q["estimated_precision"] == "tf32x3"
    assert q["phase_ratio"]["product"] == pytest.approx(0.8 / est["phase_ms"]["product"])
    assert q_sp["estimated_precision"] == "fp32" and q_sp["ratio"] == pytest.approx(2.0 / est_sp["ms"])
    assert mod["totals"] and all(t["label"] == pm.LABEL for t in mod["totals"])
    md = bench.model_markdown(mod)
    assert "ESTIMATES on h200" in md and "measured/estimated" in md
    bench_cli.print_result({"rows": [], "crossover": [], "skipped": [], "meta": {"seconds": 0.0}, "model": mod},
                           _wide_console())
    out = capsys.readouterr().out
    assert "measured / estimated (h200 model)" in out and f"{q['phase_ratio']['product']:.2f}" in out
    assert bench.model_estimates(args, [dict(fake[0], backend="numpy")])["ratios"] == []
    # explicit modes: only those (auto = tf32x3 on the model's sm_80+ GPUs)
    only = bench.model_estimates(_bench_args("--precision", "auto", "fp32"), [])
    assert only["precisions"] == ["tf32x3", "fp32"]


def test_bench_parses_model_and_prints_estimates(capsys) -> None:
    from magma_wino import bench
    from magma_wino.cli import bench as bench_cli

    args = _bench_args("--no-baselines")
    result = {"rows": [], "crossover": [], "skipped": [], "meta": {"seconds": 0.0},
              "model": bench.model_estimates(args, [])}
    bench_cli.print_result(result, _wide_console())
    out = capsys.readouterr().out
    assert "ESTIMATE on H200-SXM-141GB: network totals" in out
    for p in ("fp32", "tf32x3", "tf32"):
        assert f"ESTIMATE on H200-SXM-141GB, {p}: per layer" in out
    assert "tf32†" in out and "PROJECTION" in out
    assert math.isfinite(result["model"]["totals"][0]["ms"])


# --------------------------------------------------------------------------- fused kernel

VGG_CONV5 = dict(N=32, C=512, K=512, H=14, W=14)


def test_fused_tiles_are_the_headers_configurations() -> None:
    """FUSED_TILES restates FusedConfigFor<m, math> of kernels/winograd_fused.cuh: read the
    header's aliases and MW_FUSED_CONFIG lines and compare every field."""
    import re

    text = re.sub(r"\s+", " ", (ROOT / "kernels" / "winograd_fused.cuh").read_text())
    aliases = {m[1]: [v.strip() for v in re.sub(r"GemmShape<(\d+), (\d+), (\d+)>", r"\1 \2 \3", m[2]).split(",")]
               for m in re.finditer(r"using (\w+) = FusedConfig<(.*?)>;", text)}
    math_mode = {"kFp32": "fp32", "kTf32": "tf32", "kTf32x3": "tf32x3", "kBf16": "bf16", "kFp16": "fp16",
                 "kFp64": "fp64"}
    entries = re.findall(r"MW_FUSED_CONFIG\((\d), (\w+), (\w+)\)", text)
    assert len(entries) == len(pm.FUSED_TILES) == 12
    for m, math_name, alias in entries:
        t = pm.FUSED_TILES[(int(m), math_mode[math_name])]
        M, bk, bp, bc, warps, elem, inst, pa, pb, pre = aliases[alias]
        assert t.name == alias
        assert (t.m, t.bk, t.bp, t.bc, t.warps, t.element_bytes) == tuple(int(v) for v in (M, bk, bp, bc, warps, elem))
        assert t.inst == tuple(int(v) for v in inst.split()) and (t.pad_a, t.pad_b) == (int(pa), int(pb))
        assert t.prefetch == (pre == "true")
    # FusedConfig::shared_bytes() by hand: F(4,3) float 2 x 36 x (32 x 12 + 8 x 24) floats + 32,
    # F(2,3) fp64: 2 x 16 x (16 x 8 + 4 x 36) doubles + 32 (the stages beat the M slabs)
    assert pm.FUSED_TILES[(4, "tf32")].shared_bytes() == 4 * 2 * 36 * (32 * 12 + 8 * 24) + 32 == 165920
    assert pm.FUSED_TILES[(2, "fp64")].shared_bytes() == 8 * 2 * 16 * (16 * 8 + 4 * 36) + 32
    assert pm.FUSED_TILES[(4, "fp32")].accumulator_registers == 36 * 32 * 16 / 384 == 48


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp64"])
def test_fused_dram_bytes_are_the_formula(precision) -> None:
    """The grid order streams the larger of x and U once: K-blocks fastest (x >= U) reads x once
    per pass of the SMs over the K-blocks and U once if it fits in the L2 share; tile blocks
    fastest reads U once and x once per K-block sweep unless it fits.  y once; no V, no M.  L2:
    x per K-block with the vertical halo alpha/m, U per tile block, y."""
    g = pm.gpu("h200")
    s = 8 if precision == "fp64" else 4
    s_op = pm.OPERAND_BYTES[precision]
    for lay, fits in ((VGG_CONV3, False), (VGG_CONV5, True)):
        N, C, K, H = lay["N"], lay["C"], lay["K"], lay["H"]
        e = pm.estimate_fused(N, C, K, H, m=4, precision=precision)
        t = pm.FUSED_TILES[(4, precision)]
        P = N * math.ceil(H / 4) ** 2
        kb, pb = math.ceil(K / t.bk), math.ceil(P / t.bp)
        x, u, y = N * C * H * H * s, 36 * K * C * s_op, N * K * H * H * s
        assert (x <= pm.L2_RESIDENT_FRACTION * g.l2_mib * 2**20) == fits == e.details["x_fits_l2"]
        resident = pm.L2_RESIDENT_FRACTION * g.l2_mib * 2**20
        assert e.details["k_fastest"] == (x >= u)
        if x >= u:  # K-blocks fastest: x once per pass of the SMs over the K-blocks
            reads = 1 if fits else math.ceil(kb / g.sms)
            u_reads = 1 if u <= resident else math.ceil(kb * pb / g.sms)
        else:  # tile blocks fastest: U once, x once per K-block sweep unless it stays in L2
            reads = 1 if fits else math.ceil(kb / max(1, g.sms // pb))
            u_reads = 1
        assert e.dram_bytes == reads * x + u_reads * u + y
        assert e.phases[0].tiled_bytes == pytest.approx(kb * x * 6 / 4 + pb * u + y)
        assert e.details["x_reads_l2"] == kb and e.details["u_reads_l2"] == pb
        assert e.algorithm == "fused" and [p.phase for p in e.phases] == ["fused"]


def test_fused_moves_far_fewer_bytes_when_x_stays_in_l2() -> None:
    """VGG conv5 (x 12.8 MB): the fused layer moves x, U, y; the three phases add V and M both
    ways -- under a quarter of the bytes.  VGG conv3 (x 103 MB, larger than the L2 share, but
    read by a tile block's K-blocks at about the same time): x from DRAM once."""
    for prec in ("tf32", "fp32"):
        f5, t5 = pm.estimate_fused(**VGG_CONV5, m=4, precision=prec), pm.estimate_layer(**VGG_CONV5, m=4, precision=prec)
        assert f5.dram_bytes < 0.3 * t5.dram_bytes
        f3, t3 = pm.estimate_fused(**VGG_CONV3, m=4, precision=prec), pm.estimate_layer(**VGG_CONV3, m=4, precision=prec)
        assert f3.dram_bytes < t3.dram_bytes
        assert f3.details["x_reads_dram"] == 1  # 8 K-blocks of 32 channels, fewer than the SMs
        assert f3.dram_bytes < 0.6 * t3.dram_bytes


def test_fused_issue_bound_from_the_sass() -> None:
    """F(2,3) tf32 (all 8 warps own windows: no skipped share): the issue bound is the chunk
    loop's instructions -- its staging loops out, the 16-byte one back once per trip -- times
    warps and chunks, plus the epilogue's per (k, tile) pair, over 4 issues per clock, over the
    wave efficiency of one block per SM."""
    g = pm.gpu("h200")
    N, C, K, H = 32, 256, 256, 56
    e = pm.estimate_fused(N, C, K, H, m=2, precision="tf32")
    t = pm.FUSED_TILES[(2, "tf32")]
    mix = pm.SASS_FUSED_SM90[(2, "tf32")]
    trips = math.ceil(16 * t.bk * t.bc // 4 / t.threads)
    chunk = sum(mix["loop"].values()) - sum(sum(i.values()) for i in mix["inner"]) \
        + trips * sum(mix["inner"][0].values())
    epi_iters = (t.bk // 16) * math.ceil(16 * t.bp / 32)
    P = N * (H // 2) ** 2
    blocks = math.ceil(K / t.bk) * math.ceil(P / t.bp)
    eff = blocks / (math.ceil(blocks / g.sms) * g.sms)
    insns = blocks * (math.ceil(C / t.bc) * t.warps * chunk + epi_iters * sum(mix["epilogue"].values()))
    ph = e.phases[0]
    assert ph.wave_efficiency == pytest.approx(eff)
    assert ph.bounds["issue"] == pytest.approx(insns / (4 * g.sms * g.clock_ghz * 1e9) / eff)
    assert ph.mix_source == "SASS sm_90" and not e.hypothetical
    # the tensor bound: the padded grid's alpha² products at the dense TF32 peak
    macs = blocks * math.ceil(C / t.bc) * 16 * t.bk * t.bp * t.bc
    assert ph.bounds["tensor core"] == pytest.approx(2 * macs / g.peak("tf32") / eff)
    assert ph.seconds == pytest.approx(max(ph.bounds.values()) + pm.LAUNCH_OVERHEAD_S)  # one launch


@pytest.mark.parametrize("m", [2, 4])
def test_fused_fp32_counts_its_paired_16_byte_loads_at_two_wavefronts(m, monkeypatch) -> None:
    """The fp32 fused kernel's products read shared memory by LDS.128 whose lanes share
    addresses in pairs (FusedSimtLane): the shared-memory bound charges each of them
    FUSED_SIMT_LDS128_WAVEFRONTS wavefronts, not mix_from_sass's 4 -- exactly that many fewer
    wavefronts per LDS.128 per warp per chunk, and no other bound moves."""
    g = pm.gpu("h200")
    N, C, K, H = 32, 256, 256, 56
    t = pm.FUSED_TILES[(m, "fp32")]
    lds128 = pm.SASS_FUSED_SM90[(m, "fp32")]["loop"]["LDS.128"]
    assert lds128 > 0 and pm.FUSED_SIMT_LDS128_WAVEFRONTS == 2
    paired = pm.estimate_fused(N, C, K, H, m=m, precision="fp32").phases[0]
    tf32 = pm.estimate_fused(N, C, K, H, m=m, precision="tf32").phases[0]
    monkeypatch.setattr(pm, "FUSED_SIMT_LDS128_WAVEFRONTS", 4)
    unpaired = pm.estimate_fused(N, C, K, H, m=m, precision="fp32").phases[0]
    P = N * math.ceil(H / m) ** 2
    blocks = math.ceil(K / t.bk) * math.ceil(P / t.bp)
    waves = blocks * math.ceil(C / t.bc) * t.warps * lds128 * 2
    saved = waves / (g.sms * g.clock_ghz * 1e9) / paired.wave_efficiency
    assert unpaired.bounds["shared memory"] - paired.bounds["shared memory"] == pytest.approx(saved)
    assert {k: v for k, v in paired.bounds.items() if k != "shared memory"} == \
        {k: v for k, v in unpaired.bounds.items() if k != "shared memory"}
    # tf32 runs the same configuration on the tensor cores, without such loads: unchanged
    assert pm.estimate_fused(N, C, K, H, m=m, precision="tf32").phases[0].bounds == tf32.bounds


@pytest.mark.parametrize("precision", pm.PRECISIONS)
def test_fused_estimate_is_monotone_in_k_and_bounded_by_roofs(precision) -> None:
    g = pm.gpu("h200")
    times = [pm.estimate_fused(32, 256, K, 28, m=4, precision=precision).seconds for K in (32, 64, 128, 256, 512)]
    assert all(b > a for a, b in zip(times, times[1:]))
    e = pm.estimate_fused(**VGG_CONV3, m=2, precision=precision).phases[0]
    assert e.dram_bytes / e.seconds <= g.hbm_tbs * 1e12
    assert e.tiled_bytes / e.seconds <= g.l2_bw * (1 + 1e-9)


def test_choose_algorithm() -> None:
    pm.choose_algorithm.cache_clear()
    assert pm.choose_algorithm(32, 256, 256, 56, 56, 6, 3, "tf32") == "three-phase"  # no fused F(6,3)
    assert pm.choose_algorithm(32, 256, 256, 56, 56, 2, 5, "tf32") == "three-phase"  # nor F(2,5)
    for prec in pm.PRECISIONS:
        for m in (2, 4):
            want = ("fused" if pm.estimate_fused(**VGG_CONV3, m=m, precision=prec).seconds
                    < pm.estimate_layer(**VGG_CONV3, m=m, precision=prec).seconds else "three-phase")
            assert pm.choose_algorithm(32, 256, 256, 56, 56, m, 3, prec) == want
    # a tiny layer is launch bound: one launch beats three
    assert pm.choose_algorithm(1, 8, 8, 8, 8, 2, 3, "fp32") == "fused"
    for args in ((1, 1, 1, 1, 1, 2, 3, "tf32"), (1, 3, 1000, 1, 7, 4, 3, "fp64"), (7, 1, 1, 3, 1, 4, 3, "bf16")):
        assert pm.choose_algorithm(*args) in ("fused", "three-phase")
    before = pm.choose_algorithm.cache_info().hits
    pm.choose_algorithm(32, 256, 256, 56, 56, 4, 3, "tf32")
    assert pm.choose_algorithm.cache_info().hits == before + 1
    with pytest.raises(ValueError, match="F\\(6, 3\\)"):
        pm.estimate_fused(1, 8, 8, 8, m=6)
    with pytest.raises(ValueError, match="K"):
        pm.estimate_fused(1, 8, 0, 8, m=2)


def test_fused_rows_tables_and_totals() -> None:
    rows = pm.network_estimates(["vgg16"], [32], [2, 4, 6], ["tf32", "fp32"], [1.0, 0.25],
                                algorithms=pm.ALGORITHMS)
    fused = [r for r in rows if r["algorithm"] == "fused"]
    # fused rows: dense F(2,3) and F(4,3) only, one per three-phase dense row of those tiles
    assert fused and all(r["m"] in (2, 4) and r["density"] == 1.0 for r in fused)
    assert len(fused) == len([r for r in rows if r["algorithm"] == "three-phase" and r["m"] in (2, 4)
                              and r["density"] == 1.0])
    for r in fused:
        assert r["ratio_to_cudnn"] == pytest.approx(r["ms"] / r["cudnn_ms"])
        assert r["dram_bytes"] == r["phases"][0]["dram_bytes"] and r["binding"].keys() == {"fused"}
    md = pm.markdown_estimates(rows)
    assert "| algorithm |" in md and "DRAM MB" in md and "| fused |" in md and "| three-phase |" in md
    assert "fused " in md and "| ratio |" in md
    tot = {(t["m"], t["precision"], t["density"], t["algorithm"]): t for t in pm.network_totals(rows)}
    f = tot[(4, "tf32", 1.0, "fused")]
    assert f["layers"] == 13 and f["ratio_to_cudnn"] == pytest.approx(f["ms"] / f["cudnn_ms"])
    assert f["dram_bytes"] == pytest.approx(sum((r["layer"].count("/") + 1) * r["dram_bytes"] for r in fused
                                                if r["m"] == 4 and r["precision"] == "tf32"))
    assert "fused: issue" in " ".join(f["limits"])
    text = pm.markdown_report(rows)
    assert "| vgg16 | 32 | F(4,3) | tf32† | fused |" in text and "DRAM GB" in text
    with pytest.raises(ValueError, match="algorithms"):
        pm.layer_rows([], algorithms=["fusion"])


def test_fused_alternatives() -> None:
    alts = {a["variant"]: a for a in pm.fused_alternatives(**VGG_CONV3, m=4, precision="tf32")}
    assert list(alts) == ["implemented", "split positions", "split positions, partial y", "prologue only"]
    # the partial ys: alpha times y through L2, and their reductions cost issue slots
    extra = (6 - 1) * 32 * 256 * 56 * 56 * 4
    assert alts["split positions, partial y"]["l2_bytes"] == pytest.approx(alts["split positions"]["l2_bytes"] + extra)
    assert alts["split positions, partial y"]["bounds_ms"]["issue"] > alts["split positions"]["bounds_ms"]["issue"]
    impl = pm.estimate_fused(**VGG_CONV3, m=4, precision="tf32")
    assert alts["implemented"]["ms"] == pytest.approx(impl.ms) and alts["implemented"]["label"] == pm.LABEL
    x, u, y = 32 * 256 * 56 * 56 * 4, 36 * 256 * 256 * 4, 32 * 256 * 56 * 56 * 4
    # the grid runs a tile block's K-blocks next to each other: x (and U, in L2) from DRAM once
    assert impl.dram_bytes == x + u + y
    assert all(a["label"] == pm.PROJECTION for k, a in alts.items() if k != "implemented")
    # prologue only: M through DRAM (written, then read by the output transform)
    assert alts["prologue only"]["dram_bytes"] > impl.dram_bytes


def test_load_sass_reads_fused_rows(tmp_path) -> None:
    name = ("winograd_fused_2d_kernel<FusedConfig<2, 32, 32, 8, 8, 4, GemmShape<16, 16, 8>, 4, 8, true>, "
            "kTf32, float, float>")
    lean = {"HMMA": 32, "LDG.32": 16, "STS.32": 32, "LDGSTS": 4, "BAR": 1, "other": 100}
    row = {"arch": "90", "kernel": name, "sass": {"scope": "loop", "mix": lean, "inner": [
        {"mix": {"LDGSTS": 2, "other": 10}}, {"mix": {"LDGSTS": 2, "other": 9}}],
        "epilogue": {"mix": {"FADD": 44, "other": 100}}}}
    cast = dict(row, kernel=name.replace("kTf32,", "(FusedMath)5,"))
    path = tmp_path / "kr.json"
    path.write_text(json.dumps([row, cast]))
    sass = pm.load_sass(path)
    assert sass[("fused", 2, "tf32")] == {"loop": lean, "inner": [{"LDGSTS": 2, "other": 10}, {"LDGSTS": 2, "other": 9}],
                                          "epilogue": {"FADD": 44, "other": 100}}
    assert ("fused", 2, "fp64") in sass
    e = pm.estimate_fused(**VGG_CONV3, m=2, precision="tf32", sass=sass).phases[0]
    builtin = pm.estimate_fused(**VGG_CONV3, m=2, precision="tf32").phases[0]
    assert e.mix_source == "SASS (given)" and e.bounds["issue"] < builtin.bounds["issue"]
    assert "SASS_FUSED_SM90 = {" in pm.fused_literal(sass)


def test_data_gradient_by_forward_kernels_is_never_estimated_slower_than_the_adjoint_path():
    # plan.backward computes dx of spatial plans by the forward kernels (docs/backward.md): the
    # model must agree on the VGG-16 layers, and show the gain where the fused kernel is chosen
    gains = []
    for C, K, H in [(64, 64, 224), (64, 128, 112), (128, 128, 112), (256, 256, 56), (512, 512, 28)]:
        for m in (2, 4):
            for prec in ("tf32", "tf32x3", "fp32"):
                e = pm.estimate_data_gradient(32, C, K, H, H, m, 3, prec)
                assert e["forward kernels"] <= e["adjoint (lower bound)"], (C, K, H, m, prec)
                gains.append(e["adjoint (lower bound)"] / e["forward kernels"])
    assert max(gains) > 1.2  # the early layers at F(2,3), where the fused kernel wins
