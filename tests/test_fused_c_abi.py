"""The fused layer's C ABI (mw_conv2d_fused, mw_conv2d_fused_plan) through the emulator build.

* Status codes and messages of every argument check (NULL arrays, layout, relu, alignment,
  tiles without a fused kernel, dtype / precision pairs, 16-bit dtypes).
* mw_conv2d_fused_plan against the configuration table of kernels/winograd_fused.cuh: the
  expected name, block shape, threads, blocks and shared memory are computed here from the
  header's own ``MW_FUSED_CONFIG`` table and ``using ... = FusedConfig<...>`` aliases with the
  formulas of ``FusedConfig`` / ``GemmTcLayout`` (CUTLASS testbed habit: sizes from the config
  type), not copied from a run.
* The C entry called directly, with U from mw_filter_transform_ex, is bitwise the Python plan's
  y (the plan adds nothing but the calls), and U's 16-byte-copy and element-copy paths give the
  same y.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from magma_wino import WinogradConv2d
from magma_wino.errors import InvalidArgumentError, UnsupportedError

emu = pytest.importorskip("magma_wino._emu")

HEADER = Path(__file__).resolve().parents[1] / "kernels" / "winograd_fused.cuh"

#: plan precision name -> (FusedMath enumerator of the header, mw_precision of the emulator build)
MODES = {
    "fp32": ("kFp32", emu.PRECISION_FP32),
    "tf32": ("kTf32", emu.PRECISION_TF32),
    "tf32x3": ("kTf32x3", emu.PRECISION_TF32X3),
    "bf16": ("kBf16", emu.PRECISION_BF16),
    "fp16": ("kFp16", emu.PRECISION_FP16),
    "fp64": ("kFp64", emu.PRECISION_FP64),
}
SMEM_OPTIN = 227 * 1024  # sm_90's per-block opt-in limit, the one the emulator models
SMEM_DEFAULT = 48 * 1024  # without the opt-in


def ptr(a: np.ndarray | None) -> int:
    if a is None:
        return 0
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def _header_table() -> dict[tuple[int, str], tuple[str, dict]]:
    """{(m, FusedMath enumerator): (alias, geometry)} from the header's MW_FUSED_CONFIG lines and
    FusedConfig aliases, the geometry by FusedConfig's formulas:

    FusedConfig<M, BK, BP, BC, Warps, ElementBytes, GemmShape<im, in, ik>, PadA, PadB, Prefetch>;
    threads = 32 Warps; a position's stage slice is GemmTcLayout<.., GemmShape<BK, BP, BC>, ..>'s
    kStageElements = BK (BC + PadA) + BC (BP + PadB); shared_bytes = max(ElementBytes * 2 stages *
    alpha² * that, accumulator bytes (8 for 8-byte operands, else 4) * alpha² * im * (BP + 4)) + 32
    (the alignment slack of the dynamic base)."""
    text = re.sub(r"\s+", " ", HEADER.read_text())
    aliases = {}
    for name, args in re.findall(r"using (\w+) = FusedConfig<(.*?)>;", text):
        nums = [int(v) for v in re.findall(r"\d+", args)]
        m, bk, bp, bc, warps, elem, im, _in, _ik, pad_a, pad_b = nums
        pos = (m + 2) ** 2
        acc = 8 if elem == 8 else 4
        stages = elem * 2 * pos * (bk * (bc + pad_a) + bc * (bp + pad_b))
        epilogue = acc * pos * im * (bp + 4)
        aliases[name] = {"m": m, "block_k": bk, "block_p": bp, "block_c": bc, "threads": 32 * warps,
                         "shared_bytes": max(stages, epilogue) + 32}
    table = {}
    for m, math, cfg in re.findall(r"MW_FUSED_CONFIG\((\d+), (k\w+), (\w+)\)", text):
        assert cfg in aliases, f"MW_FUSED_CONFIG names {cfg}, which is no FusedConfig alias"
        assert aliases[cfg]["m"] == int(m), f"{cfg} is not an F({m}, 3) configuration"
        table[(int(m), math)] = (cfg, aliases[cfg])
    return table


TABLE = _header_table()


def test_the_header_table_covers_every_fused_tile_and_mode():
    # the parser read the table (a regex that matched nothing would make the tests below vacuous)
    assert set(TABLE) == {(m, math) for m in (2, 4) for math, _ in MODES.values()}


def _desc(m=2, r=3, N=2, C=5, K=6, H=7, W=9, pad=1, ndim=2):
    if ndim == 3:
        return emu.ConvDesc(3, m, r, N, C, K, (H, H, W), (pad,) * 3)
    return emu.ConvDesc(2, m, r, N, C, K, (H, W), (pad, pad))


def _dtype_of(mode: str) -> int:
    return emu.FLOAT64 if mode == "fp64" else emu.FLOAT32


# --------------------------------------------------------------------------- the plan


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("layer", [(1, 1, 1, 3, 3, 0), (2, 11, 19, 9, 7, 1), (3, 40, 70, 30, 17, 2)],
                         ids=lambda s: "N{}-C{}-K{}-{}x{}-pad{}".format(*s))
def test_fused_plan_is_the_header_configuration(layer, m, mode):
    N, C, K, H, W, pad = layer
    math, prec = MODES[mode]
    cfg, want = TABLE[(m, math)]
    d = _desc(m, 3, N, C, K, H, W, pad)
    P = d.geometry(_dtype_of(mode))["num_tiles"]
    plan = emu.conv2d_fused_plan(d, _dtype_of(mode), prec)
    blocks = -(-P // want["block_p"]) * -(-K // want["block_k"])
    assert plan == {"config": cfg, "block_k": want["block_k"], "block_p": want["block_p"],
                    "block_c": want["block_c"], "threads": want["threads"], "blocks": blocks,
                    "shared_bytes": want["shared_bytes"]}
    assert want["threads"] <= 1024 and plan["shared_bytes"] <= SMEM_OPTIN
    if m == 4 and mode != "fp64":
        # the F(4, 3) float tiles need the >48 KiB opt-in, which the emulator checks on launch
        assert plan["shared_bytes"] > SMEM_DEFAULT


def test_fused_plan_blocks_count_the_tiles_of_the_whole_batch():
    # blocks is ceil(P / block_p) * ceil(K / block_k) with P = N * tilesH * tilesW
    d = _desc(4, 3, 2, 3, 33, 10, 13, 1)
    g = d.geometry()
    assert g["num_tiles"] == 2 * 3 * 4
    plan = emu.conv2d_fused_plan(d, emu.FLOAT32, emu.PRECISION_FP32)
    assert plan["blocks"] == -(-24 // plan["block_p"]) * -(-33 // plan["block_k"])


# --------------------------------------------------------------------------- status codes


def _buffers(n=1 << 14):
    # float64 storage: 8-byte aligned (numpy aligns larger still); byte offsets added by hand
    return np.zeros(n, np.float64)


def _call(d, dtype=emu.FLOAT32, prec=emu.PRECISION_FP32, layout=emu.LAYOUT_NCHW, relu=emu.RELU_NONE,
          relu_output=False, x=None, U=None, bias=0, y=None, buf=None):
    buf = _buffers() if buf is None else buf
    p = ptr(buf)
    emu.conv2d_fused(d, dtype, prec, layout, relu, relu_output, p if x is None else x, p if U is None else U,
                     bias, p if y is None else y, 0)


@pytest.mark.parametrize("which", ["x", "U", "y"])
@pytest.mark.parametrize("mode", ["fp32", "fp16", "fp64"])
def test_fused_null_arrays_are_invalid_arguments(which, mode):
    d = _desc()
    with pytest.raises(InvalidArgumentError, match="x, U and y must not be NULL") as caught:
        _call(d, _dtype_of(mode), MODES[mode][1], **{which: 0})
    assert caught.value.status == "MW_STATUS_INVALID_ARGUMENT"


def test_fused_null_bias_is_allowed():
    buf = _buffers()
    p = ptr(buf)
    _call(_desc(), x=p, U=p + 32768, y=p + 65536, bias=0, buf=buf)  # no bias is a valid layer
    assert not buf.any()  # zeros in, zeros out


@pytest.mark.parametrize("layout", [2, -1, 7])
def test_fused_bad_layout_is_an_invalid_argument(layout):
    with pytest.raises(InvalidArgumentError,
                       match=f"layout must be MW_LAYOUT_NCHW or MW_LAYOUT_NHWC, got {layout}"):
        _call(_desc(), layout=layout)


def test_fused_descriptor_layout_that_contradicts_the_layout_argument_is_an_invalid_argument():
    """desc.layout (the three-phase entries' field) must be 0 or the fused call's own layout."""
    d = emu.ConvDesc(2, 2, 3, 2, 5, 6, (7, 9), (1, 1), (1, 1), emu.LAYOUT_NHWC)
    with pytest.raises(InvalidArgumentError, match=r"desc.layout \(1\) and layout \(0\) differ"):
        _call(d, layout=emu.LAYOUT_NCHW)
    buf = _buffers()
    p = ptr(buf)
    _call(d, layout=emu.LAYOUT_NHWC, x=p, U=p + 32768, y=p + 65536, buf=buf)  # the same: accepted
    assert not buf.any()


@pytest.mark.parametrize("relu", [3, -1])
def test_fused_bad_relu_is_an_invalid_argument(relu):
    with pytest.raises(InvalidArgumentError,
                       match=f"relu must be MW_RELU_NONE, MW_RELU_SPATIAL or MW_RELU_WINOGRAD, got {relu}"):
        _call(_desc(), relu=relu)


@pytest.mark.parametrize(
    "mode, which, offset, message",
    [
        ("fp32", "x", 2, "x, y, bias must be 4-byte aligned and U 4-byte aligned"),
        ("fp32", "y", 1, "x, y, bias must be 4-byte aligned and U 4-byte aligned"),
        ("fp32", "bias", 3, "x, y, bias must be 4-byte aligned and U 4-byte aligned"),
        ("fp32", "U", 2, "x, y, bias must be 4-byte aligned and U 4-byte aligned"),
        ("tf32x3", "U", 1, "x, y, bias must be 4-byte aligned and U 4-byte aligned"),
        ("fp16", "U", 1, "x, y, bias must be 4-byte aligned and U 2-byte aligned"),
        ("bf16", "x", 2, "x, y, bias must be 4-byte aligned and U 2-byte aligned"),
        ("fp64", "x", 4, "x, y, bias must be 8-byte aligned and U 8-byte aligned"),
        ("fp64", "U", 4, "x, y, bias must be 8-byte aligned and U 8-byte aligned"),
        ("fp64", "bias", 4, "x, y, bias must be 8-byte aligned and U 8-byte aligned"),
    ],
)
def test_fused_misaligned_pointers_are_invalid_arguments(mode, which, offset, message):
    buf = _buffers()
    p = ptr(buf) + 64
    args = {"x": p, "U": p, "y": p, "bias": p}
    args[which] += offset
    with pytest.raises(InvalidArgumentError, match=re.escape(message)) as caught:
        _call(_desc(), _dtype_of(mode), MODES[mode][1], buf=buf, **args)
    align = message.split(" and U " if which == "U" else " must be ")[1].split("-")[0]
    assert f"{which} is not {align}-byte aligned" in str(caught.value)  # the failing pointer, named


def test_fused_16bit_U_needs_only_2_byte_alignment():
    # a U 2 bytes past a 16-byte boundary is a valid binary16 array (the element-copy path)
    buf = _buffers()
    p = ptr(buf) + 64
    _call(_desc(), emu.FLOAT32, emu.PRECISION_FP16, x=p, U=p + 32768 + 2, y=p + 65536, buf=buf)


@pytest.mark.parametrize(
    "m, r, ndim",
    [(6, 3, 2), (2, 3, 3), (4, 3, 3), (2, 5, 2), (3, 2, 2), (4, 5, 2)],
)
def test_fused_tiles_without_a_kernel_are_unsupported_naming_the_tile(m, r, ndim):
    d = _desc(m, r, H=12, W=12, pad=1, ndim=ndim)
    msg = re.escape(f"no fused kernel for F({m}, {r}) in {ndim}D: fused kernels are 2D F(2, 3) and F(4, 3)")
    for mode in ("fp32", "tf32x3", "fp16", "fp64"):
        with pytest.raises(UnsupportedError, match=msg) as caught:
            emu.conv2d_fused_plan(d, _dtype_of(mode), MODES[mode][1])
        assert caught.value.status == "MW_STATUS_UNSUPPORTED"
        with pytest.raises(UnsupportedError, match=msg):
            _call(d, _dtype_of(mode), MODES[mode][1])


def test_fused_precision_and_dtype_that_do_not_match_are_unsupported():
    d = _desc()
    with pytest.raises(UnsupportedError, match="precision MW_PRECISION_FP64 needs dtype MW_FLOAT64"):
        emu.conv2d_fused_plan(d, emu.FLOAT32, emu.PRECISION_FP64)
    with pytest.raises(UnsupportedError, match="precision MW_PRECISION_FP64 needs dtype MW_FLOAT64"):
        _call(d, emu.FLOAT32, emu.PRECISION_FP64)
    for mode in ("fp32", "tf32", "tf32x3", "bf16", "fp16"):
        name = "MW_PRECISION_" + mode.upper()
        with pytest.raises(UnsupportedError, match=f"precision {name} needs dtype MW_FLOAT32"):
            emu.conv2d_fused_plan(d, emu.FLOAT64, MODES[mode][1])
        with pytest.raises(UnsupportedError, match=f"precision {name} needs dtype MW_FLOAT32"):
            _call(d, emu.FLOAT64, MODES[mode][1])


@pytest.mark.parametrize("precision", [6, -1])
def test_fused_precision_that_is_no_mw_precision_is_an_invalid_argument(precision):
    with pytest.raises(InvalidArgumentError, match=f"precision {precision} is not an mw_precision"):
        emu.conv2d_fused_plan(_desc(), emu.FLOAT32, precision)
    with pytest.raises(InvalidArgumentError, match=f"precision {precision} is not an mw_precision"):
        _call(_desc(), emu.FLOAT32, precision)


@pytest.mark.parametrize("dt, name", [(emu.FLOAT16, "MW_FLOAT16"), (emu.BFLOAT16, "MW_BFLOAT16")])
def test_fused_16bit_dtype_is_an_invalid_argument_saying_where_it_belongs(dt, name):
    # 16-bit values are U's storage (precision fp16 / bf16), never the dtype of x and y
    msg = f"dtype {dt} \\({name}\\) is a 16-bit storage type of U and V only"
    prec = emu.PRECISION_FP16 if dt == emu.FLOAT16 else emu.PRECISION_BF16
    with pytest.raises(InvalidArgumentError, match=msg):
        emu.conv2d_fused_plan(_desc(), dt, prec)
    with pytest.raises(InvalidArgumentError, match=msg):
        _call(_desc(), dt, prec)


def test_fused_bad_descriptor_fields_are_invalid_arguments():
    with pytest.raises(InvalidArgumentError, match="desc.padding"):
        emu.conv2d_fused_plan(emu.ConvDesc(2, 2, 3, 1, 2, 2, (6, 6), (-1, 0)), emu.FLOAT32, emu.PRECISION_FP32)
    with pytest.raises(InvalidArgumentError, match="desc.padding_end"):
        emu.conv2d_fused_plan(emu.ConvDesc(2, 2, 3, 1, 2, 2, (6, 6), (0, 0), (0, -2)), emu.FLOAT32,
                              emu.PRECISION_FP32)
    with pytest.raises(InvalidArgumentError, match="desc.in_channels must be >= 1"):
        _call(emu.ConvDesc(2, 2, 3, 1, 0, 2, (6, 6), (1, 1)))


# --------------------------------------------------------------------------- results


def _aligned(shape, dtype, offset_elements=0):
    """A C-contiguous array of `shape` whose data start `offset_elements` past a 64-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.empty(n * dtype.itemsize + 64 + offset_elements * dtype.itemsize, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset_elements * dtype.itemsize
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


def _direct_call(plan, mode, x, w, b, layout, relu, relu_output, u_offset=0):
    """y of mw_conv2d_fused called directly (not through the plan), with U from
    mw_filter_transform_ex into a buffer `u_offset` elements past a 64-byte boundary."""
    N, C, H, W = x.shape if layout == "NCHW" else (x.shape[0], x.shape[3], x.shape[1], x.shape[2])
    K, m = w.shape[0], plan.m
    storage = {"fp16": emu.FLOAT16, "bf16": emu.BFLOAT16}.get(mode, _dtype_of(mode))
    udt = {"fp16": np.float16, "bf16": np.uint16}.get(mode, x.dtype)
    U = _aligned(((m + 2) ** 2, K, C), udt, u_offset)
    U[...] = np.array(np.nan).astype(udt) if udt != np.uint16 else 0xFFFF
    wdesc = emu.ConvDesc(2, m, 3, 1, C, K, (3, 3), (0, 0))
    emu.filter_transform_ex(wdesc, _dtype_of(mode), storage, ptr(w), ptr(U), 0, 0)
    np.testing.assert_array_equal(U.view(np.uint8), np.ascontiguousarray(plan.U).view(np.uint8))
    d = emu.ConvDesc(2, m, 3, N, C, K, (H, W), plan.padding)
    Ho, Wo = d.geometry(_dtype_of(mode))["out_size"]
    y = np.full((N, K, Ho, Wo) if layout == "NCHW" else (N, Ho, Wo, K), np.nan, x.dtype)
    relu_code = {None: emu.RELU_NONE, "spatial": emu.RELU_SPATIAL, "winograd": emu.RELU_WINOGRAD}[relu]
    emu.conv2d_fused(d, _dtype_of(mode), MODES[mode][1], emu.LAYOUT_NHWC if layout == "NHWC" else emu.LAYOUT_NCHW,
                     relu_code, relu_output, ptr(x), ptr(U), ptr(b), ptr(y), 0)
    assert not np.isnan(y).any()
    return y


CASES = [  # (m, mode, layout, relu, output_relu, bias)
    (2, "fp32", "NCHW", None, False, True),
    (4, "fp32", "NHWC", "spatial", True, False),
    (2, "tf32x3", "NHWC", "winograd", False, True),
    (4, "tf32x3", "NCHW", None, False, True),
    (4, "tf32", "NHWC", None, True, True),
    (2, "fp16", "NCHW", "winograd", True, True),
    (4, "fp16", "NHWC", None, False, False),
    (4, "bf16", "NCHW", "spatial", False, True),
    (2, "fp64", "NHWC", None, False, True),
    (4, "fp64", "NCHW", "winograd", True, True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "F({},3)-{}-{}-relu{}-out{}-bias{}".format(*c))
def test_fused_c_entry_is_bitwise_the_python_plan(case, rng):
    m, mode, layout, relu, output_relu, with_bias = case
    dt = np.float64 if mode == "fp64" else np.float32
    N, C, K, H, W = 2, 9, 19, 9, 7  # C off the chunk sizes, K off the blocks, P off BP
    x = rng.standard_normal((N, C, H, W)).astype(dt)
    w = rng.standard_normal((K, C, 3, 3)).astype(dt)
    b = rng.standard_normal(K).astype(dt) if with_bias else None
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    plan = WinogradConv2d(w, b, padding=1, m=m, backend="emulator", precision=mode, allow_inaccurate=True,
                          fused=True, layout=layout, relu=relu, output_relu=output_relu)
    want = plan(x)
    assert plan.algorithm == "fused"
    got = _direct_call(plan, mode, x, w, b, layout, relu, output_relu)
    np.testing.assert_array_equal(got, want)
    if output_relu:
        assert (got >= 0).all()


@pytest.mark.parametrize("mode", ["fp32", "tf32x3", "fp16", "bf16", "fp64"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_fused_u_vector_and_element_copies_give_the_same_y(mode, layout, rng):
    # C = 16 rows of U are whole 16-byte vectors: an aligned U takes the 16-byte cp.async path,
    # a U one element off a 16-byte boundary the element path; the zero-fill at the K edge
    # (K = 21) and both must give the same floats.
    m = 4
    dt = np.float64 if mode == "fp64" else np.float32
    N, C, K, H, W = 1, 16, 21, 6, 10
    x = rng.standard_normal((N, C, H, W)).astype(dt)
    w = rng.standard_normal((K, C, 3, 3)).astype(dt)
    b = rng.standard_normal(K).astype(dt)
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    plan = WinogradConv2d(w, b, padding=1, m=m, backend="emulator", precision=mode, allow_inaccurate=True,
                          fused=True, layout=layout)
    vec = _direct_call(plan, mode, x, w, b, layout, None, False, u_offset=0)
    elem = _direct_call(plan, mode, x, w, b, layout, None, False, u_offset=1)
    np.testing.assert_array_equal(vec, elem)
    np.testing.assert_array_equal(vec, plan(x))


# --------------------------------------------------------------------------- under ASan


@pytest.fixture(scope="module")
def kernels_asan() -> str:
    """The sanitizer build of tests/emu/kernels_asan_driver.cpp, found as tests/test_sanitize.py
    finds it ($MW_KERNELS_ASAN_EXE, else build/asan/kernels_asan when newer than the sources)."""
    import os

    import test_sanitize as ts

    path = os.environ.get("MW_KERNELS_ASAN_EXE")
    if path:
        if not os.access(path, os.X_OK):
            pytest.fail(f"MW_KERNELS_ASAN_EXE={path} is not an executable")
        return path
    exe = ts.ROOT / "build" / "asan" / "kernels_asan"
    if not os.access(exe, os.X_OK):
        pytest.skip(f"the sanitizer build of the kernels is not built: {ts.BUILD_HINT}")
    if exe.stat().st_mtime < ts._newest_source():
        pytest.skip(f"{exe} is older than the kernel sources: rebuild it ({ts.BUILD_HINT})")
    return str(exe)


def test_fused_kernel_reading_past_x_is_reported_under_asan(kernels_asan):
    """The driver's fused cases (exactly sized x, U, y) can only catch what the sanitizer sees in
    the fused kernel: an x one element short must be reported from its window loads."""
    import subprocess

    run = subprocess.run([kernels_asan, "fused-overread"], capture_output=True, text=True, timeout=600)
    assert run.returncode != 0, run.stdout
    assert "AddressSanitizer: heap-buffer-overflow" in run.stderr, run.stderr[-4000:]
    assert "winograd_fused" in run.stderr and "load_windows" in run.stderr
