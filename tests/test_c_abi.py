"""The C ABI's own argument checks (through the emulator build): sizes whose products
overflow 64-bit arithmetic, and CSR arrays with repeated columns; the 16-bit storage types
(mw_filter_transform_ex / mw_input_transform_ex: U and V in binary16 / bfloat16, their status
codes, and the workspace of a 16-bit V)."""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino.errors import InvalidArgumentError, UnsupportedError
from magma_wino.transforms import winograd

emu = pytest.importorskip("magma_wino._emu")

from test_kernels_tc import bf16_bits, bf16_value  # noqa: E402  (needs the emulator)


def ptr(a: np.ndarray | None) -> int:
    if a is None:
        return 0
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


@pytest.mark.parametrize("m,n,k", [(2**62 + 4, 4, 4), (4, 2**62 + 4, 4), (4, 4, 2**62 + 4), (2**31, 2**31, 1)])
def test_gemm_sizes_whose_products_overflow_are_rejected_not_truncated(m, n, k):
    # Before the checked multiplication, 2^62 + 4 passed the size check after wrapping and
    # was then truncated to int 4: a small product computed on wrong pointers.
    with pytest.raises(UnsupportedError, match="too large"):
        emu.gemm_batched(emu.FLOAT32, 1, m, n, k, 16, 16, 16, 0)


def test_spmm_sizes_whose_products_overflow_are_rejected():
    with pytest.raises(UnsupportedError, match="too large"):
        emu.spmm_batched(emu.FLOAT32, 2**40, 2**40, 4, 4, 16, 16, 16, 0, 16, 16, 0)


@pytest.mark.parametrize("batch,C", [(2**40, 2**40), (2**31, 2)])
def test_conv_geometry_with_overflowing_batch_times_channels_is_unsupported(batch, C):
    with pytest.raises(UnsupportedError, match="too large"):
        emu.ConvDesc(2, 4, 3, batch, C, 3, (8, 8), (1, 1)).geometry()


def test_spmm_accepts_repeated_columns_that_make_nnz_exceed_rows_times_cols():
    # A 1x1 matrix stored as three entries of column 0: they add up (docs/sparse.md).
    row_ptr = np.array([0, 3], np.int32)
    col_idx = np.zeros(3, np.int32)
    values = np.array([1, 2, 3], np.float32)
    B = np.array([[[2.0, -1.0]]], np.float32)
    C = np.full((1, 1, 2), np.nan, np.float32)
    emu.spmm_batched(emu.FLOAT32, 1, 1, 1, 2, row_ptr.ctypes.data, col_idx.ctypes.data, values.ctypes.data, 3,
                     B.ctypes.data, C.ctypes.data, 0)
    np.testing.assert_array_equal(C, [[[12.0, -6.0]]])


# --------------------------------------------------------------------------- 16-bit U and V
#
# mw_filter_transform_ex / mw_input_transform_ex with a 16-bit storage type compute the float32
# transform and round each value to nearest even.  The float32 value is computed by the same
# code as mw_filter_transform / mw_input_transform with dtype MW_FLOAT32 (one template, only the
# store differs), and on the emulator (g++, no contraction of a*b+c) that code gives the same
# float32 bits in every instantiation, so the 16-bit result must be *bit-exact* the float32
# result rounded by the test's own rounding (NumPy's float16 cast; bfloat16 by integer
# arithmetic on the bits, tests/test_kernels_tc.py).  On a GPU a different FMA contraction
# between instantiations could move a value by one float32 ulp and so, at a tie, the 16-bit
# value by one 16-bit ulp; this suite runs on the emulator.

STORAGE = {"fp16": emu.FLOAT16, "bf16": emu.BFLOAT16}


def _round16(name: str, v32: np.ndarray) -> np.ndarray:
    """float32 values -> 16-bit encodings, by the test's own rounding."""
    return v32.astype(np.float16).view(np.uint16) if name == "fp16" else bf16_bits(v32)


def _value16(name: str, bits: np.ndarray) -> np.ndarray:
    return bits.view(np.float16).astype(np.float32) if name == "fp16" else bf16_value(bits)


def _mats(m: int, r: int) -> np.ndarray:
    at, g, bt = winograd(m, r).matrices(np.dtype(np.float32))
    return np.ascontiguousarray(np.concatenate([at.ravel(), g.ravel(), bt.ravel()]), np.float32)


# (ndim, m, r, generic): specialised 2D and 3D tiles, and the generic kernels (matrices given) on
# a specialised tile and on F(3, 2), which has no specialised kernel.
TRANSFORM16_CASES = [
    (2, 2, 3, False),
    (2, 6, 3, False),
    (3, 2, 3, False),
    (2, 4, 3, True),
    (2, 3, 2, True),
    (3, 2, 3, True),
]


def _tid(case):
    ndim, m, r, generic = case
    return f"{ndim}D-F({m},{r})-{'generic' if generic else 'specialised'}"


def _layer(ndim, m, r):
    N, C, K = 2, 3, 4
    in_size = (m + r + 1, 2 * m + r, m + r)[:ndim]  # last tiles clipped
    pad = (1, 0, r - 1)[:ndim]
    return emu.ConvDesc(ndim, m, r, N, C, K, in_size, pad), (N, C) + in_size, (K, C) + (r,) * ndim


@pytest.mark.parametrize("storage", STORAGE)
@pytest.mark.parametrize("case", TRANSFORM16_CASES, ids=_tid)
def test_input_transform_ex_16bit_is_the_float32_transform_rounded(case, storage, rng):
    ndim, m, r, generic = case
    desc, x_shape, _ = _layer(ndim, m, r)
    geo = desc.geometry()
    x = (4 * rng.standard_normal(x_shape)).astype(np.float32)
    mats = _mats(m, r) if generic else None
    shape = (geo["positions"], x_shape[1], geo["num_tiles"])
    for relu in (emu.RELU_NONE, emu.RELU_SPATIAL, emu.RELU_WINOGRAD):
        V32 = np.full(shape, np.nan, np.float32)
        emu.input_transform(desc, emu.FLOAT32, ptr(x), ptr(V32), relu, ptr(mats), 0)
        assert not np.isnan(V32).any()
        V16 = np.full(shape, 0xFFFF, np.uint16)  # a NaN in both 16-bit types: unwritten fails
        emu.input_transform_ex(desc, emu.FLOAT32, STORAGE[storage], ptr(x), ptr(V16), relu,
                               ptr(mats), 0)
        want = _round16(storage, V32)
        bad = np.argwhere(V16 != want)
        assert bad.size == 0, (f"relu {relu}: {len(bad)} of {V16.size} differ, first at "
                               f"{tuple(bad[0])}: {V16[tuple(bad[0])]:#06x} != "
                               f"{want[tuple(bad[0])]:#06x} (float32 {V32[tuple(bad[0])]!r})")
        if relu == emu.RELU_WINOGRAD:  # ReLU before the rounding: no negative value, -0 neither
            assert not (V16 & 0x8000).any()
        # the rounding is not the identity on this data (the comparison could not pass by luck)
        assert (_value16(storage, V16) != V32).any()


@pytest.mark.parametrize("storage", STORAGE)
@pytest.mark.parametrize("case", TRANSFORM16_CASES, ids=_tid)
def test_filter_transform_ex_16bit_is_the_float32_transform_rounded(case, storage, rng):
    ndim, m, r, generic = case
    desc, _, w_shape = _layer(ndim, m, r)
    geo = desc.geometry()
    w = rng.standard_normal(w_shape).astype(np.float32)
    mats = _mats(m, r) if generic else None
    shape = (geo["positions"],) + w_shape[:2]
    U32 = np.full(shape, np.nan, np.float32)
    emu.filter_transform(desc, emu.FLOAT32, ptr(w), ptr(U32), ptr(mats), 0)
    assert not np.isnan(U32).any()
    U16 = np.full(shape, 0xFFFF, np.uint16)
    emu.filter_transform_ex(desc, emu.FLOAT32, STORAGE[storage], ptr(w), ptr(U16), ptr(mats), 0)
    want = _round16(storage, U32)
    assert np.array_equal(U16, want), f"{int((U16 != want).sum())} of {U16.size} differ"
    assert (_value16(storage, U16) != U32).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transforms_ex_with_storage_equal_to_dtype_are_the_plain_entries(dtype, rng):
    code = emu.FLOAT32 if dtype == np.float32 else emu.FLOAT64
    desc, x_shape, w_shape = _layer(2, 4, 3)
    geo = desc.geometry()
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    V = [np.full((geo["positions"], x_shape[1], geo["num_tiles"]), np.nan, dtype) for _ in "ab"]
    U = [np.full((geo["positions"],) + w_shape[:2], np.nan, dtype) for _ in "ab"]
    emu.input_transform(desc, code, ptr(x), ptr(V[0]), emu.RELU_WINOGRAD, 0, 0)
    emu.input_transform_ex(desc, code, code, ptr(x), ptr(V[1]), emu.RELU_WINOGRAD, 0, 0)
    emu.filter_transform(desc, code, ptr(w), ptr(U[0]), 0, 0)
    emu.filter_transform_ex(desc, code, code, ptr(w), ptr(U[1]), 0, 0)
    assert np.array_equal(V[0], V[1]) and not np.isnan(V[0]).any()
    assert np.array_equal(U[0], U[1]) and not np.isnan(U[0]).any()


def test_16bit_dtypes_and_storage_pairs_status_codes():
    """16-bit values are storage types of U and V only: every `dtype` argument refuses them
    (InvalidArgument, with a message saying where they belong); a 16-bit u_dtype / v_dtype needs
    dtype float32 (Unsupported); a storage type that is no mw_dtype is an InvalidArgument."""
    d = emu.ConvDesc(2, 2, 3, 1, 2, 2, (6, 6), (0, 0))
    buf = np.zeros(4096, np.float64)
    p = ptr(buf)
    for dt in (emu.FLOAT16, emu.BFLOAT16):
        name = "MW_FLOAT16" if dt == emu.FLOAT16 else "MW_BFLOAT16"
        msg = f"dtype {dt} \\({name}\\) is a 16-bit storage type of U and V only"
        with pytest.raises(InvalidArgumentError, match=msg):
            d.geometry(dt)
        with pytest.raises(InvalidArgumentError, match=msg):
            emu.filter_transform(d, dt, p, p, 0, 0)
        with pytest.raises(InvalidArgumentError, match=msg):
            emu.input_transform(d, dt, p, p, emu.RELU_NONE, 0, 0)
        with pytest.raises(InvalidArgumentError, match=msg):
            emu.output_transform(d, dt, p, 0, p, 0, 0)
        with pytest.raises(InvalidArgumentError, match=msg):
            emu.spmm_batched(dt, 1, 2, 2, 2, p, p, p, 0, p, p, 0)
        with pytest.raises(InvalidArgumentError, match=msg):
            emu.filter_transform_ex(d, dt, dt, p, p, 0, 0)
        with pytest.raises(InvalidArgumentError, match=msg):
            emu.input_transform_ex(d, dt, dt, p, p, emu.RELU_NONE, 0, 0)
        # 16-bit storage from float64: refused, not silently computed in float32
        with pytest.raises(UnsupportedError, match=f"u_dtype {name} needs dtype MW_FLOAT32"):
            emu.filter_transform_ex(d, emu.FLOAT64, dt, p, p, 0, 0)
        with pytest.raises(UnsupportedError, match=f"v_dtype {name} needs dtype MW_FLOAT32"):
            emu.input_transform_ex(d, emu.FLOAT64, dt, p, p, emu.RELU_NONE, 0, 0)
    with pytest.raises(UnsupportedError, match="u_dtype MW_FLOAT64 with dtype MW_FLOAT32"):
        emu.filter_transform_ex(d, emu.FLOAT32, emu.FLOAT64, p, p, 0, 0)
    with pytest.raises(UnsupportedError, match="v_dtype MW_FLOAT32 with dtype MW_FLOAT64"):
        emu.input_transform_ex(d, emu.FLOAT64, emu.FLOAT32, p, p, emu.RELU_NONE, 0, 0)
    with pytest.raises(InvalidArgumentError, match="u_dtype 9 is not an mw_dtype"):
        emu.filter_transform_ex(d, emu.FLOAT32, 9, p, p, 0, 0)
    with pytest.raises(InvalidArgumentError, match="v_dtype -1 is not an mw_dtype"):
        emu.input_transform_ex(d, emu.FLOAT32, -1, p, p, emu.RELU_NONE, 0, 0)
    # the other argument checks of the plain entries hold for the _ex ones
    with pytest.raises(InvalidArgumentError, match="w and U must not be NULL"):
        emu.filter_transform_ex(d, emu.FLOAT32, emu.FLOAT16, p, 0, 0, 0)
    with pytest.raises(InvalidArgumentError, match="relu must be"):
        emu.input_transform_ex(d, emu.FLOAT32, emu.BFLOAT16, p, p, 5, 0, 0)
    f32 = emu.ConvDesc(2, 3, 2, 1, 2, 2, (6, 6), (0, 0))  # F(3, 2): no specialised kernel
    with pytest.raises(UnsupportedError, match="no specialised kernel"):
        emu.input_transform_ex(f32, emu.FLOAT32, emu.FLOAT16, p, p, emu.RELU_NONE, 0, 0)


def test_geometry_workspace_with_16bit_v():
    d = emu.ConvDesc(2, 4, 3, 2, 3, 5, (9, 10), (1, 1))
    g32 = d.geometry(emu.FLOAT32)
    pos, tiles = g32["positions"], g32["num_tiles"]
    assert g32["workspace_bytes"] == pos * tiles * (3 + 5) * 4
    for dt in (emu.FLOAT16, emu.BFLOAT16):
        g16 = d.geometry(emu.FLOAT32, v_dtype=dt)
        assert g16["workspace_bytes"] == pos * tiles * (3 * 2 + 5 * 4)  # V 16-bit, M float32
        assert {k: v for k, v in g16.items() if k != "workspace_bytes"} == {
            k: v for k, v in g32.items() if k != "workspace_bytes"}
        with pytest.raises(ValueError, match="v_dtype must be FLOAT16 or BFLOAT16 with dtype FLOAT32"):
            d.geometry(emu.FLOAT64, v_dtype=dt)
    assert d.geometry(emu.FLOAT32, v_dtype=emu.FLOAT32) == g32
    with pytest.raises(ValueError, match="v_dtype"):
        d.geometry(emu.FLOAT32, v_dtype=emu.FLOAT64)
