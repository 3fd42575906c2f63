"""mma.sp (kernels/mma_sp.cuh) in the CUDA emulator: the test kernels of
tests/emu/mma_sp_kernels.cu, one warp per sparse MMA.

Every shape (m16n8k16 f16 / bf16 at 2:4, m16n8k8 tf32 at 1:2) and every sparsity selector against
a NumPy reference built from the PTX ISA's fragment and metadata layouts (exact on integers,
within one float rounding on random data); the lanes the selector does not name are never read;
invalid metadata and divergent calls fail the launch and name the line, lane and register.
"""

from __future__ import annotations

import re
from pathlib import Path

import kernel_files
import numpy as np
import pytest

emu = pytest.importorskip(
    "magma_wino._emu_selftest", reason="the emulator self-test extension is not built"
)
if not hasattr(emu, "mma_sp"):
    pytest.skip("the emulator self-test extension predates mma.sp", allow_module_level=True)

KERNEL_SOURCE = Path(__file__).with_name("mma_sp_kernels.cu")
LAUNCH_FAILURE = 719
DENSE_K = {"f16": 16, "bf16": 16, "tf32": 8}
MARKS = {"f16": "mma-sp-f16", "bf16": "mma-sp-bf16", "tf32": "mma-sp-tf32"}


def marked_line(tag: str) -> int:
    return kernel_files.marked_line(KERNEL_SOURCE, tag)


@pytest.fixture(autouse=True)
def restore_settings():
    saved = emu.get_workers()
    yield
    emu.set_workers(saved)
    emu.set_order("forward", 0)


def operand(x, kind):
    """The values the tensor core multiplies (float64): binary16, bfloat16 (nearest even),
    tf32 truncated (unconverted floats)."""
    x = np.asarray(x)
    if kind == "f16":
        return x.astype(np.float16).astype(np.float64)
    if kind == "bf16":
        return (emu.bf16_bits(x).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFFE000)
    return u.view(np.float32).astype(np.float64)


def random_pattern(kind, rng):
    """(positions 16 x k/2 of the stored values in k, nibble codes 16 x 4) of a random valid
    pattern: 2 of every 4 (16-bit) or 1 of every 2 (tf32), in increasing order."""
    k = DENSE_K[kind]
    positions = np.empty((16, k // 2), dtype=np.int64)
    codes = np.empty((16, 4), dtype=np.uint32)
    for row in range(16):
        for chunk in range(4):
            if kind == "tf32":
                i = int(rng.integers(0, 2))
                positions[row, chunk] = 2 * chunk + i
                codes[row, chunk] = 0xE if i else 0x4
            else:
                i0, i1 = sorted(rng.choice(4, size=2, replace=False))
                positions[row, 2 * chunk: 2 * chunk + 2] = 4 * chunk + i0, 4 * chunk + i1
                codes[row, chunk] = i0 | i1 << 2
    return positions, codes


def meta_registers(codes, selector, others=0):
    """The 32 lanes' metadata registers: lane 4g + selector holds rows g (bits 15..0, chunk c at
    bits 4c+3..4c) and g + 8 (bits 31..16); the other lanes hold `others` (never read)."""
    regs = np.full(32, others, dtype=np.uint32)
    for g in range(8):
        word = 0
        for chunk in range(4):
            word |= int(codes[g, chunk]) << (4 * chunk)
            word |= int(codes[g + 8, chunk]) << (16 + 4 * chunk)
        regs[4 * g + selector] = word
    return regs


def dense_a(values, positions, kind):
    a = np.zeros((16, DENSE_K[kind]))
    np.put_along_axis(a, positions, operand(values, kind), axis=1)
    return a


@pytest.mark.parametrize("selector", [0, 1, 2, 3])
@pytest.mark.parametrize("kind", ["f16", "bf16", "tf32"])
def test_mma_sp_on_integers_equals_numpy_exactly(kind, selector):
    rng = np.random.default_rng(100 + selector)
    k = DENSE_K[kind]
    positions, codes = random_pattern(kind, rng)
    values = rng.integers(-8, 9, size=(16, k // 2)).astype(np.float32)
    b = rng.integers(-8, 9, size=(k, 8)).astype(np.float32)
    c = rng.integers(-64, 65, size=(16, 8)).astype(np.float32)
    # Lanes the selector does not name hold invalid metadata: they must not be read.
    d = emu.mma_sp(kind, selector, values, b, meta_registers(codes, selector, 0), c)
    np.testing.assert_array_equal(d, dense_a(values, positions, kind) @ b + c)


@pytest.mark.parametrize("kind", ["f16", "bf16", "tf32"])
def test_mma_sp_on_random_data_is_within_one_rounding(kind):
    rng = np.random.default_rng(7)
    k = DENSE_K[kind]
    positions, codes = random_pattern(kind, rng)
    values = rng.standard_normal((16, k // 2)).astype(np.float32)
    b = rng.standard_normal((k, 8)).astype(np.float32)
    c = rng.standard_normal((16, 8)).astype(np.float32)
    d = emu.mma_sp(kind, 2, values, b, meta_registers(codes, 2), c)
    a = dense_a(values, positions, kind)
    ref = a @ operand(b, kind) + c
    magnitude = np.abs(a) @ np.abs(operand(b, kind)) + np.abs(c)
    assert np.all(np.abs(d - ref) <= 2.0**-23 * magnitude + 1e-30), np.max(np.abs(d - ref))
    # The metadata decides which rows of b are used: another pattern gives other numbers.
    other, other_codes = random_pattern(kind, np.random.default_rng(8))
    d2 = emu.mma_sp(kind, 2, values, b, meta_registers(other_codes, 2), c)
    assert not np.array_equal(d, d2)
    np.testing.assert_allclose(d2, dense_a(values, other, kind) @ operand(b, kind) + c,
                               rtol=0, atol=float(np.max(2.0**-22 * magnitude)) + 1e-6)


def test_pattern_zeros_are_not_multiplied_but_stored_zeros_are():
    """A NaN in a row of b that the metadata skips does not reach d; under a stored zero it does."""
    positions, codes = random_pattern("f16", np.random.default_rng(3))
    values = np.ones((16, 8), dtype=np.float32)
    b = np.ones((16, 8), dtype=np.float32)
    skipped = next(i for i in range(4) if i not in positions[0, :2])  # row 0, chunk 0
    b[skipped, :] = np.nan
    d = emu.mma_sp("f16", 0, values, b, meta_registers(codes, 0))
    used = (positions == skipped).any(axis=1)
    assert np.all(np.isnan(d[used])) and not np.any(np.isnan(d[~used]))
    assert not used[0]


def test_tf32_operands_are_truncated():
    positions, codes = random_pattern("tf32", np.random.default_rng(4))
    values = np.full((16, 4), 1.0 + 2.0**-12, dtype=np.float32)  # below TF32's 10 fraction bits
    b = np.ones((8, 8), dtype=np.float32)
    d = emu.mma_sp("tf32", 0, values, b, meta_registers(codes, 0))
    np.testing.assert_array_equal(d, np.full((16, 8), 4.0, dtype=np.float32))


@pytest.mark.parametrize("stride", [8, 24, 40])
def test_ldmatrix_trans_gives_the_b_registers(stride):
    """Register i of lane l = {M_i[2t][g], M_i[2t+1][g]} (t = l % 4, g = l / 4), low half first:
    the m16n8k16 B register of a row-major k x n tile."""
    tile = np.arange(32 * 8, dtype=np.uint16).reshape(32, 8) * 3 + 1
    regs = emu.ldmatrix_trans(tile, stride)
    m = tile.reshape(4, 8, 8).astype(np.uint32)
    for lane in range(32):
        g, t = lane // 4, lane % 4
        for i in range(4):
            assert regs[lane, i] == m[i, 2 * t, g] | m[i, 2 * t + 1, g] << 16, (lane, i)


def test_ldmatrix_misaligned_row_fails_naming_the_lane():
    with pytest.raises(emu.EmulatorError) as info:
        emu.ldmatrix_trans(np.zeros((32, 8)), 8, offset=4)
    message = str(info.value)
    assert info.value.code == 716, message  # cudaErrorMisalignedAddress
    assert re.search(r"ldmatrix_x4_trans: lane \d+: row address .* is not 16-byte aligned "
                     r"\(address % 16 = 8\)", message), message
    assert f"mma_sp_kernels.cu:{marked_line('ldmatrix')}" in message, message


# ---- diagnostics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, nibble, pattern",
    [
        ("f16", 0x5, r"indices 1, 1\): the two indices of a 2:4 chunk must be strictly increasing"),
        ("bf16", 0x1, r"indices 1, 0\): the two indices"),  # unordered: ordered_metadata
        ("f16", 0xF, r"indices 3, 3\)"),
        ("tf32", 0x0, r"tf32 is 1:2 sparse, a nibble must be 0x4 \(first element\) or 0xe"),
        ("tf32", 0x9, r"= 0x9 \(row 13, pair 2\)"),
    ],
)
def test_invalid_metadata_fails_naming_lane_and_register(kind, nibble, pattern):
    rng = np.random.default_rng(5)
    k = DENSE_K[kind]
    _, codes = random_pattern(kind, rng)
    codes[13, 2] = nibble  # row 13 = g 5 + 8: lane 4 * 5 + selector, bits 16 + 8 + 3 .. 24
    selector = 1
    meta = meta_registers(codes, selector)
    with pytest.raises(emu.EmulatorError) as info:
        emu.mma_sp(kind, selector, np.ones((16, k // 2)), np.ones((k, 8)), meta)
    message = str(info.value)
    assert info.value.code == LAUNCH_FAILURE, message
    assert f"mma_sp_kernels.cu:{marked_line(MARKS[kind])}" in message, message
    assert "invalid sparsity metadata: lane 21, register meta (selector 1), bits 27..24" in message
    assert re.search(pattern, message), message
    assert "[block (0,0,0)" in message, message


DIAGNOSTICS = {
    "divergent_lanes": (
        ["sp-divergent"],
        r"mma_sp_m16n8k16_f16: .*thread \(16,0,0\).*exited.*must be reached by every lane",
    ),
    "different_calls": (
        ["sp-site-a", "sp-site-b"],
        r"mma_sp_m16n8k16_f16: warp-collective call diverges in warp 0",
    ),
    "partial_warp": (
        ["sp-partial-warp"],
        r"mma_sp_m16n8k16_f16: mask 0xffffffff names lanes absent from this warp \(it has 16",
    ),
}


@pytest.mark.parametrize("order", ["forward", "reverse"])
@pytest.mark.parametrize("which", list(DIAGNOSTICS))
def test_mma_sp_diagnostic_names_the_line(which, order):
    marks, pattern = DIAGNOSTICS[which]
    emu.set_order(order, 0)
    with pytest.raises(emu.EmulatorError) as info:
        emu.mma_sp_bad(which)
    message = str(info.value)
    assert info.value.code == LAUNCH_FAILURE, message
    assert re.search(pattern, message), message
    for mark in marks:
        assert f"mma_sp_kernels.cu:{marked_line(mark)}" in message, (mark, message)


@kernel_files.needs_nvcc
def test_mma_sp_kernels_are_valid_cuda_for_sm80_and_sm90(tmp_path):
    """The same file with the inline PTX (the CMake build also compiles it when nvcc is found)."""
    kernel_files.compile_for_sm80_and_sm90(KERNEL_SOURCE, tmp_path)
