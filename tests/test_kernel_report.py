"""tools/kernel_report.py: the SASS hot-loop parser on a checked-in listing, and (with nvcc and
cuobjdump) one real kernel's mix.  The synthetic listing copies the format of a real
``cuobjdump -sass`` run (CUDA 13, sm_90) line for line, cut down to a few instructions."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).with_name("data") / "sass_synthetic.sass"


def _tool():
    spec = importlib.util.spec_from_file_location("_mw_kernel_report_test", ROOT / "tools" / "kernel_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


kr = _tool()


def test_classify_widths() -> None:
    assert kr.classify("LDG.E.128.CONSTANT") == "LDG.128"
    assert kr.classify("LDG.E.CONSTANT") == "LDG.32"
    assert kr.classify("LDG.E.64") == "LDG.64"
    assert kr.classify("LDS") == "LDS.32"
    assert kr.classify("LDS.U8") == "LDS.32"
    assert kr.classify("LDS.128") == "LDS.128"
    assert kr.classify("STS.64") == "STS.64"
    assert kr.classify("HMMA.1688.F32.TF32") == "HMMA"
    assert kr.classify("DFMA") == "DFMA"
    assert kr.classify("BAR.SYNC.DEFER_BLOCKING") == "BAR"
    assert kr.classify("LDGSTS.E.BYPASS.128") == "LDGSTS"
    assert kr.classify("IADD3") == "other"


def test_parser_finds_the_fma_loop_of_the_synthetic_listing() -> None:
    mixes = kr.sass_mix(DATA.read_text())
    assert len(mixes) == 2
    gemm = next(v for k, v in mixes.items() if "gemm_batched" in k)
    # two loops: 0x50..0x130 (the FFMA one) and 0x140..0x160 (no arithmetic); the trailing
    # self-branch at 0x190 is no loop
    assert (gemm["scope"], gemm["start"], gemm["end"]) == ("loop", 0x50, 0x130)
    assert gemm["instructions"] == 15
    mix = gemm["mix"]
    assert (mix["FFMA"], mix["LDS.32"], mix["LDS.64"], mix["LDS.128"]) == (3, 1, 1, 1)
    assert (mix["LDG.32"], mix["LDG.128"], mix["STS.32"], mix["STS.128"], mix["BAR"]) == (1, 1, 1, 1, 2)
    assert mix["HMMA"] == mix["DFMA"] == mix["LDGSTS"] == 0
    assert sum(mix.values()) == gemm["instructions"]
    tr = next(v for k, v in mixes.items() if "input_transform" in k)
    assert tr["scope"] == "function"  # no loop: the whole kernel, one thread's work
    assert tr["mix"]["DFMA"] == 1 and tr["mix"]["LDG.64"] == 1
    assert tr["instructions"] == 6  # the padding self-branch is not counted


def test_format_mix_lists_rows_with_a_mix() -> None:
    mix = next(iter(kr.sass_mix(DATA.read_text()).values()))
    rows = [{"arch": "90", "kernel": "gemm_batched_kernel<float, ...>", "sass": mix},
            {"arch": "90", "kernel": "no_sass", "sass": None}]
    text = kr.format_mix(rows)
    assert "gemm_batched_kernel" in text and "no_sass" not in text and "FFMA" in text


_NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)


@pytest.mark.skipif(_NVCC is None or kr.find_cuobjdump(_NVCC) is None, reason="needs nvcc and cuobjdump")
def test_real_gemm_64x64_fp32_hot_loop(tmp_path) -> None:
    """One instantiation, one arch (a full kernel report compiles everything: slow)."""
    src = tmp_path / "g.cu"
    src.write_text('#include "gemm_batched.cuh"\n'
                   "template __global__ void mw::gemm_batched_kernel<float, mw::GemmTile64x64, 4>"
                   "(int, int, int, const float*, long long, const float*, long long, float*, long long, int);\n")
    cubin = tmp_path / "g.cubin"
    subprocess.run([_NVCC, "-std=c++17", "-arch=sm_90", "-cubin", str(src), "-o", str(cubin),
                    f"-I{ROOT / 'kernels'}", f"-I{ROOT / 'kernels' / 'include'}"], check=True, capture_output=True)
    out = subprocess.run([kr.find_cuobjdump(_NVCC), "-sass", str(cubin)], check=True, capture_output=True, text=True)
    (mix,) = kr.sass_mix(out.stdout).values()
    m = mix["mix"]
    assert mix["scope"] == "loop"
    # one BLK_K = 16 slice: 4x4 outputs per thread (one 4-wide piece per dimension), 16 k steps
    # -> 256 FFMA and one LDS.128 per operand per k step; the few LDS.32 are the `LDS RZ, [RZ]`
    # ptxas puts before cp.async (no traffic); B by 16-byte cp.async, A by LDG.128 + 4 STS.32
    assert m["FFMA"] == 256
    assert m["LDS.128"] == 32 and m["LDS.64"] == 0 and m["LDS.32"] <= 3
    assert m["HMMA"] == m["DFMA"] == m["DMMA"] == 0
    assert m["LDG.128"] == 1 and m["LDGSTS"] >= 1 and m["STS.32"] == 4 and m["BAR"] == 1


def test_short_names_keep_template_arguments_with_parentheses() -> None:
    """cu++filt writes enum template arguments as ``(mw::TcPrecision)1``: only the trailing
    parameter list may be cut, and the tensor-core kernel's launch shape follows its config."""
    name = kr._short("void mw::gemm_tc_kernel<(mw::TcPrecision)1, mw::GemmTcConfig<mw::GemmShape<64, 64, 16>, "
                     "mw::GemmShape<32, 32, 16>, 2>, 4>(int, int, int, float const*, long long, float*, int)")
    assert name == "gemm_tc_kernel<kTf32x3, GemmTcConfig<GemmShape<64, 64, 16>, GemmShape<32, 32, 16>, 2>, 4>"
    # 4 warps; 2 stages of A 64x(16+4) and B 16x(64+8) floats (> the 64x(64+4) C tile) + 32 B
    assert kr._launch_shape(name) == (128, 4 * 2 * (64 * 20 + 16 * 72) + 32)
    assert kr._short("void mw::gemm_batched_kernel<float, mw::GemmConfig<16, 16, 64, 64, 16>, 4>(int, int)") == \
        "gemm_batched_kernel<float, GemmConfig<16, 16, 64, 64, 16>, 4>"


def test_launch_shapes_of_the_sparse_tensor_core_configurations() -> None:
    """The 32-row block-sparse tile (2 warps of 32 x 32; fp64 4 of 16 x 32) and the 2:4 tiles
    (64 x 64: 4 warps, 3 stages; 128 x 64: 4 warps of 64 x 32, 2 stages): threads and dynamic
    shared memory as the configurations compute them."""
    bsr = "bsr_tc_batched_kernel<kTf32, BsrTcConfig<GemmTcConfig<GemmShape<32, 64, 16>, GemmShape<32, 32, 16>, 3> >, 4>"
    # 3 stages of A 32x(16+4) and B 16x(64+8) floats (> the 32x(64+4) C tile) + 32 B
    assert kr._launch_shape(bsr) == (64, 3 * 4 * (32 * 20 + 16 * 72) + 32)
    bsr64 = ("bsr_tc_batched_kernel<kFp64, BsrTcConfig<GemmTcConfig64<GemmShape<32, 64, 16>, "
             "GemmShape<16, 32, 16>, 2> >, 2>")
    assert kr._launch_shape(bsr64) == (128, 2 * 8 * (32 * 20 + 16 * 68) + 32)
    # per stage: values kM x (kK/2 + pad), kM/16 x 32 metadata words, B kK x 72
    assert kr._launch_shape("sp24_tc_kernel<kTf32, Sp24TcConfig<4, 3, 64, 32>, 4>") == \
        (128, 3 * (64 * 20 * 4 + 4 * 32 * 4 + 32 * 72 * 4))
    assert kr._launch_shape("sp24_tc_kernel<kFp16, Sp24TcConfig<2, 2, 128, 64>, 8>") == \
        (128, 2 * (128 * 40 * 2 + 8 * 32 * 4 + 64 * 72 * 2))


# A fused-kernel-shaped listing: a chunk loop (0x20..0xc0) holding the U staging loop
# (0x40..0x60, no arithmetic: one trip), and after it the epilogue's output-transform loop
# (0xd0..0x110; no FMA-class instruction, so the chunk loop is the hot one) and a loop without
# transform arithmetic (0x120..0x130).
_FUSED_SASS = """
        Function : _ZN2mw24winograd_fused_2d_kernelINS_11FusedConfigILi2EEEEEvv
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/                   MOV R2, RZ ;
        /*0020*/                   LDG.E.CONSTANT R4, desc[UR4][R2.64] ;
        /*0030*/                   FADD R5, R4, R4 ;
        /*0040*/                   IADD3 R6, R6, 0x1, RZ ;
        /*0050*/                   LDGSTS.E.BYPASS.128 [R7], desc[UR4][R8.64] ;
        /*0060*/               @P0 BRA 0x40 ;
        /*0070*/                   STS [R9], R5 ;
        /*0080*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0090*/                   HMMA.1684.F32.TF32 R12, R16, R18, R12 ;
        /*00a0*/                   FMUL R5, R5, 0.5 ;
        /*00b0*/                   ISETP.NE.AND P1, PT, R6, R10, PT ;
        /*00c0*/               @P1 BRA 0x20 ;
        /*00d0*/                   LDS R20, [R21] ;
        /*00e0*/                   FADD R22, R20, R20 ;
        /*00f0*/                   FMUL R22, R20, 2 ;
        /*0100*/                   STG.E [R24.64], R22 ;
        /*0110*/               @P2 BRA 0xd0 ;
        /*0120*/                   IADD3 R6, R6, 0x1, RZ ;
        /*0130*/               @P3 BRA 0x120 ;
        /*0140*/                   EXIT ;
        /*0150*/                   BRA 0x150;
"""


def test_fused_hot_loop_inner_staging_loop_and_epilogue() -> None:
    (mix,) = kr.sass_mix(_FUSED_SASS).values()
    assert (mix["scope"], mix["start"], mix["end"], mix["instructions"]) == ("loop", 0x20, 0xc0, 11)
    m = mix["mix"]
    assert (m["HMMA"], m["FADD"], m["FMUL"], m["LDG.32"], m["LDGSTS"], m["STS.32"], m["BAR"]) == (1, 1, 1, 1, 1, 1, 1)
    assert sum(m.values()) == mix["instructions"]
    (inner,) = mix["inner"]  # the staging loop, per trip
    assert (inner["start"], inner["end"], inner["instructions"], inner["mix"]["LDGSTS"]) == (0x40, 0x60, 3, 1)
    epi = mix["epilogue"]  # the loop after the chunk loop with the most transform arithmetic
    assert (epi["start"], epi["end"], epi["instructions"]) == (0xd0, 0x110, 5)
    assert (epi["mix"]["FADD"], epi["mix"]["FMUL"], epi["mix"]["LDS.32"]) == (1, 1, 1)


def test_classify_transform_arithmetic() -> None:
    assert kr.classify("FADD.FTZ") == "FADD" and kr.classify("DADD") == "FADD"
    assert kr.classify("FMUL") == "FMUL" and kr.classify("DMUL") == "FMUL"
    assert kr.classify("FMNMX") == "other"


_FUSED_NAME = ("void mw::winograd_fused_2d_kernel<mw::FusedConfig<4, 32, 16, 8, 12, 4, mw::GemmShape<16, 16, 8>, "
               "4, 8, false>, (mw::FusedMath)1, float, float>(mw::ConvGeometry, mw::FusedArgs<float, float>)")


def test_fused_names_and_launch_shape() -> None:
    """cu++filt prints FusedMath as a cast; the short name keeps the configuration and names the
    math; the launch shape is 32 x Warps threads and FusedConfig::shared_bytes()."""
    name = kr._short(_FUSED_NAME)
    assert name == ("winograd_fused_2d_kernel<FusedConfig<4, 32, 16, 8, 12, 4, GemmShape<16, 16, 8>, 4, 8, false>, "
                    "kTf32, float, float>")
    # 2 stages x 36 positions x (U 32 x (8 + 4) + V 8 x (16 + 8)) floats > the M slab
    # 36 x 16 x (16 + 4) floats; + 32 bytes of alignment
    assert kr._launch_shape(name) == (384, 4 * 2 * 36 * (32 * 12 + 8 * 24) + 32)
    assert 4 * 2 * 36 * (32 * 12 + 8 * 24) > 4 * 36 * 16 * 20
    # float64 F(4,3): K8 x P8 x C4, DMMA m8n8k4, 4 warps; the slab (8-byte accumulators) is smaller
    f64 = kr._short(_FUSED_NAME.replace("4, 32, 16, 8, 12, 4, mw::GemmShape<16, 16, 8>, 4, 8, false>, (mw::FusedMath)1",
                                        "4, 8, 8, 4, 4, 8, mw::GemmShape<8, 8, 4>, 4, 4, false>, (mw::FusedMath)5"))
    assert ", kFp64," in f64
    assert kr._launch_shape(f64) == (128, max(8 * 2 * 36 * (8 * 8 + 4 * 12), 8 * 36 * 8 * 12) + 32)
    assert kr.occupancy("90", 168, kr._launch_shape(name)[1], 384) == pytest.approx(12 / 64)


def test_fused_aliases_from_the_header() -> None:
    """The configuration aliases are read from kernels/winograd_fused.cuh (not restated): every
    FusedConfigFor entry names one, and the F(4,3) float one is the configuration above."""
    aliases = kr.fused_aliases()
    header = (ROOT / "kernels" / "winograd_fused.cuh").read_text()
    used = set(__import__("re").findall(r"MW_FUSED_CONFIG\(\d, \w+, (\w+)\)", header))
    assert used and used <= set(aliases.values())
    assert aliases["4, 32, 16, 8, 12, 4, GemmShape<16, 16, 8>, 4, 8, false"] == "Fused_F4_K32xP16xC8_w12"
    cfg = kr.fused_config("4, 32, 16, 8, 12, 4, GemmShape<16, 16, 8>, 4, 8, false")
    assert (cfg["positions"], cfg["threads"], cfg["prefetch"]) == (36, 384, False)
    # the largest fused tile still fits the sm_80 opt-in limit of 163 KiB per block
    assert max(kr.fused_config(a)["shared_bytes"] for a in aliases) <= 163 * 1024


def test_format_fused_lists_the_fused_rows() -> None:
    name = kr._short(_FUSED_NAME)
    (mix,) = kr.sass_mix(_FUSED_SASS).values()
    row = {"arch": "90", "kernel": name, "regs": 168, "spill_stores": 0, "spill_loads": 0, "dynamic_smem": 165920,
           "threads": 384, "sass": mix, "fused": dict(kr.fused_config(kr._FUSED.search(name)["args"]),
                                                      config="Fused_F4_K32xP16xC8_w12")}
    text = kr.format_fused([row, {"arch": "90", "kernel": "gemm", "sass": None}])
    assert "Fused_F4_K32xP16xC8_w12, kTf32" in text and "165920" in text and "gemm" not in text
