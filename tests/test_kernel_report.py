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
