"""The 2:4 sparse tensor-core product (kernels/sp24_tc_batched.cuh, mma.sp) on the emulator,
through the C ABI (``mw_sp24_batched``) and the extension, and its format
(magma_wino/sparse24.py).

* Exact on integers (|x| <= 8: exact in binary16, bfloat16 and TF32, sums < 2^24) for every
  precision, with sizes straddling the 16-row MMA tile, the 64 x 64 block tile, the wide
  128 x 64 tile the dispatcher takes from m = 128 (m = 128, 130, 200: full, one row past, a
  partial last tile) and the k-step (64 for 16-bit, 32 for tf32), batch > 1, C pre-filled with
  NaN (unwritten elements fail): C equals the float64 product of the masked dense matrix exactly.
* Random data within element-wise bounds, S = |A|·|B|, γ_j(u) = j·u / (1 − j·u): 16-bit
  operands are exact in the format, products exact, the sums float32 (the emulator rounds once
  per mma.sp, a GPU at most once per product): |C − AB| <= γ_k(2^-24)·S; tf32 rounds both
  operands (2^-11 each): [(1 + u_t)^2 − 1 + γ_k(u_32)(1 + u_t)^2]·S; tf32x3 (3 products on hi/lo
  splits): [u_t^2 (3 + 2u_t) + γ_3k(u_32)(1 + u_t)^2]·S, and 100x better than tf32 (as
  tests/test_kernels_tc.py derives them).
* B staged by 16-byte copies and by element (n off 8, B offset by one element) gives bitwise
  the same C; invalid metadata is caught by the emulator's mma.sp diagnostic; bad arguments
  return a status (fp64 unsupported).
* The format: from_dense / to_dense round trip, the pattern errors name the argument,
  pattern_mask keeps the largest entries, validate() names the broken field.
"""

from __future__ import annotations

import numpy as np
import pytest

import magma_wino._emu as emu
from magma_wino.errors import (
    BackendUnavailableError,
    EmulatorError,
    InvalidArgumentError,
    UnsupportedError,
)
from magma_wino.precision import from_storage, to_storage
from magma_wino.sparse24 import Batched24, pattern_mask

if not hasattr(emu, "sp24_batched"):
    pytest.skip("the emulator extension predates mw_sp24_batched", allow_module_level=True)

CODES = {"fp16": emu.PRECISION_FP16, "bf16": emu.PRECISION_BF16, "tf32": emu.PRECISION_TF32,
         "tf32x3": emu.PRECISION_TF32X3}
U_TF32 = 2.0**-11
U_F32 = 2.0**-24


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def ptr(a: np.ndarray) -> int:
    assert a.flags["C_CONTIGUOUS"]
    return int(a.ctypes.data)


def operand_b(B: np.ndarray, precision: str, offset: int = 0) -> np.ndarray:
    """B in the precision's operand storage, `offset` elements past a 64-byte boundary."""
    s = to_storage(np.asarray(B, np.float32), precision if precision in ("fp16", "bf16") else "fp32")
    raw = np.zeros(s.size + 64, s.dtype)
    skip = (-raw.ctypes.data % 64) // s.itemsize + offset
    out = raw[skip:skip + s.size].reshape(s.shape)
    out[...] = s
    return out


def sp24(A: Batched24, Bs: np.ndarray) -> np.ndarray:
    batch, rows, cols = A.shape
    n = Bs.shape[2]
    C = np.full((batch, rows, n), np.nan, np.float32)
    emu.sp24_batched(emu.FLOAT32, CODES[A.precision], batch, rows, cols, n, ptr(A.values),
                     ptr(A.meta), ptr(Bs), ptr(C), 0)
    return C


def random_sparse(rng, shape, precision, integers=True):
    """A dense array whose nonzeros fit the precision's pattern (every group full)."""
    U = (rng.integers(-8, 9, shape) if integers else rng.standard_normal(shape)).astype(np.float32)
    return U * pattern_mask(U, precision)


def gamma(j: int, u: float) -> float:
    return j * u / (1 - j * u)


def bound(precision: str, k: int) -> float:
    if precision == "tf32":
        return (1 + U_TF32) ** 2 - 1 + gamma(k, U_F32) * (1 + U_TF32) ** 2
    if precision == "tf32x3":
        return U_TF32**2 * (3 + 2 * U_TF32) + gamma(3 * k, U_F32) * (1 + U_TF32) ** 2
    return gamma(k, U_F32)


# --------------------------------------------------------------------------- the kernel

SHAPES = [(1, 1, 1), (17, 65, 33), (64, 64, 64), (65, 9, 70), (20, 3, 129), (33, 64, 31), (127, 70, 64),
          (128, 64, 64), (130, 9, 129), (200, 65, 70)]


@pytest.mark.parametrize("precision", list(CODES))
@pytest.mark.parametrize("m,n,k", SHAPES, ids=str)
def test_integers_exact_on_edge_shapes(precision, m, n, k, rng):
    U = random_sparse(rng, (2, m, k), precision)
    B = rng.integers(-8, 9, (2, k, n)).astype(np.float32)
    A = Batched24.from_dense(U, precision)
    C = sp24(A, operand_b(B, precision))
    np.testing.assert_array_equal(C, np.matmul(U.astype(np.float64), B))


@pytest.mark.parametrize("m", [40, 140], ids=["narrow-tile", "wide-tile"])
@pytest.mark.parametrize("precision", ["fp16", "tf32"])
def test_b_by_element_equals_b_by_16_byte_copies(precision, m, rng):
    n, k = 72, 100
    U = random_sparse(rng, (2, m, k), precision, integers=False)
    B = rng.standard_normal((2, k, n)).astype(np.float32)
    A = Batched24.from_dense(U, precision)
    aligned = sp24(A, operand_b(B, precision))
    shifted = sp24(A, operand_b(B, precision, offset=1))  # B not 16-byte aligned: by element
    np.testing.assert_array_equal(aligned, shifted)
    narrow = sp24(A, operand_b(B[:, :, :n - 1].copy(), precision))  # rows off 16 bytes
    np.testing.assert_array_equal(narrow, aligned[:, :, :n - 1])


@pytest.mark.parametrize("m,n,k", [(33, 40, 200), (16, 8, 257), (150, 40, 130)], ids=str)
def test_random_data_within_bounds_and_tf32x3_100x_better(m, n, k, rng):
    out = {}
    for precision in CODES:
        U = random_sparse(np.random.default_rng(5), (2, m, k), precision, integers=False)
        B = rng.standard_normal((2, k, n)).astype(np.float32)
        A = Batched24.from_dense(U, precision)
        Bs = operand_b(B, precision)
        C = sp24(A, Bs)
        a = A.to_dense().astype(np.float64)  # the stored (16-bit rounded) values
        b = B.astype(np.float64) if precision.startswith("tf32") else \
            from_storage(Bs, precision).astype(np.float64)
        S = np.matmul(np.abs(a), np.abs(b))
        err = np.abs(C - np.matmul(a, b))
        rel = float((err / np.maximum(S, 1e-300)).max())
        assert rel <= bound(precision, k), (precision, rel, bound(precision, k))
        out[precision] = (float(err.max()), precision)
    # same A for tf32 and tf32x3 (same pattern, same values)
    assert out["tf32x3"][0] * 100 <= out["tf32"][0], out


def test_invalid_metadata_is_caught_by_the_emulator(rng):
    U = random_sparse(rng, (1, 20, 64), "fp16")
    A = Batched24.from_dense(U, "fp16")
    meta = A.meta.copy()
    meta[0, 1, 0, 5] = (meta[0, 1, 0, 5] & ~np.uint32(0xF)) | np.uint32(0x5)  # indices 1, 1
    bad = object.__new__(Batched24)  # bypass validate(): the kernel must not trust the format
    object.__setattr__(bad, "values", A.values)
    object.__setattr__(bad, "meta", meta)
    object.__setattr__(bad, "shape", A.shape)
    object.__setattr__(bad, "precision", "fp16")
    with pytest.raises(EmulatorError, match=r"invalid sparsity metadata: lane 5, register meta "
                                            r"\(selector 1\), bits 3\.\.0 = 0x5"):
        sp24(bad, operand_b(rng.standard_normal((1, 64, 8)), "fp16"))
    with pytest.raises(ValueError, match=r"meta: invalid code 0x5 for matrix 0, row 17"):
        Batched24(A.values, meta, A.shape, "fp16")


def test_bad_arguments_return_a_status(rng):
    A = Batched24.from_dense(random_sparse(rng, (1, 16, 64), "tf32"), "tf32")
    B = operand_b(np.ones((1, 64, 8)), "tf32")
    C = np.zeros((1, 16, 8), np.float32)
    args = (1, 16, 64, 8, ptr(A.values), ptr(A.meta), ptr(B), ptr(C), 0)
    with pytest.raises(UnsupportedError, match="MW_FLOAT64 is not supported"):
        emu.sp24_batched(emu.FLOAT64, emu.PRECISION_TF32, *args)
    with pytest.raises(UnsupportedError, match="MW_PRECISION_FP64 has no sparse tensor core"):
        emu.sp24_batched(emu.FLOAT32, emu.PRECISION_FP64, *args)
    with pytest.raises(UnsupportedError, match="MW_PRECISION_FP32 has no sparse tensor core"):
        emu.sp24_batched(emu.FLOAT32, emu.PRECISION_FP32, *args)
    with pytest.raises(InvalidArgumentError, match="precision 9 is not an mw_precision"):
        emu.sp24_batched(emu.FLOAT32, 9, *args)
    with pytest.raises(InvalidArgumentError, match="must be >= 1"):
        emu.sp24_batched(emu.FLOAT32, emu.PRECISION_TF32, 0, *args[1:])
    with pytest.raises(InvalidArgumentError, match="must not be NULL"):
        emu.sp24_batched(emu.FLOAT32, emu.PRECISION_TF32, *args[:5], 0, *args[6:])
    with pytest.raises(InvalidArgumentError, match="16-byte aligned"):
        emu.sp24_batched(emu.FLOAT32, emu.PRECISION_TF32, *args[:4], ptr(A.values) + 4,
                         *args[5:])
    assert np.all(C == 0)  # nothing was launched
    assert emu.sp24_meta_words(emu.PRECISION_FP16, 3, 17, 65) == 3 * 2 * 2 * 32
    assert emu.sp24_meta_words(emu.PRECISION_TF32X3, 3, 17, 65) == 3 * 2 * 3 * 32
    with pytest.raises(InvalidArgumentError):
        emu.sp24_meta_words(emu.PRECISION_FP16, 0, 17, 65)


# --------------------------------------------------------------------------- the format


@pytest.mark.parametrize("precision", list(CODES))
def test_format_round_trip_and_geometry(precision, rng):
    U = random_sparse(rng, (3, 17, 65), precision, integers=False)
    A = Batched24.from_dense(U, precision)
    stored = U if precision.startswith("tf32") else \
        from_storage(to_storage(U, precision), precision)
    np.testing.assert_array_equal(A.to_dense(), stored)
    vshape, mshape = Batched24.geometry((3, 17, 65), precision)
    assert A.values.shape == vshape and A.meta.shape == mshape
    assert A.meta.size == emu.sp24_meta_words(CODES[precision], 3, 17, 65)
    assert A.dtype == {"fp16": np.float16, "bf16": np.uint16}.get(precision, np.float32)
    assert A.to_host() is A and A.shape == (3, 17, 65) and A.precision == precision
    # fewer nonzeros than the pattern allows is fine (zeros are stored)
    sparser = U * (rng.random(U.shape) < 0.3)
    np.testing.assert_array_equal(Batched24.from_dense(sparser, precision).to_dense(),
                                  Batched24.from_dense(sparser, precision).to_dense())
    assert np.count_nonzero(Batched24.from_dense(sparser, precision).to_dense()) == \
        np.count_nonzero(sparser)


def test_from_dense_names_the_argument_that_breaks_the_pattern():
    U = np.zeros((1, 2, 8), np.float32)
    U[0, 1, 4:7] = 1.0  # three nonzeros in columns 4..7
    with pytest.raises(ValueError, match=r"U: matrix 0, row 1, columns 4\.\.7 hold 3 nonzeros; "
                                         r"precision 'fp16' allows 2 of every 4"):
        Batched24.from_dense(U, "fp16")
    U = np.zeros((1, 1, 4), np.float32)
    U[0, 0, 2:4] = 1.0  # 2 of 4 is fine for fp16, 2 of a pair is not for tf32
    Batched24.from_dense(U, "bf16")
    with pytest.raises(ValueError, match=r"U: .*columns 2\.\.3 hold 2 nonzeros; precision "
                                         r"'tf32' allows 1 of every 2"):
        Batched24.from_dense(U, "tf32")
    mask = np.ones_like(U, dtype=bool)
    with pytest.raises(ValueError, match=r"mask: matrix 0, row 0, columns 0\.\.3 hold 4 kept"):
        Batched24.from_dense(U, "fp16", mask=mask)
    with pytest.raises(ValueError, match="precision must be one of"):
        Batched24.from_dense(U, "fp64")
    # with a mask the rest is dropped
    A = Batched24.from_dense(np.ones((1, 1, 4), np.float32), "fp16", mask=pattern_mask(U, "fp16"))
    np.testing.assert_array_equal(A.to_dense(), [[[0, 0, 1, 1]]])


def test_pattern_mask_keeps_the_largest_per_group():
    U = np.array([[[1, -5, 3, 2, 0.5, 0.25, -7, 7, 9]]], np.float32)
    np.testing.assert_array_equal(pattern_mask(U, "fp16")[0, 0],
                                  [0, 1, 1, 0, 0, 0, 1, 1, 1])  # ties: the lower column
    np.testing.assert_array_equal(pattern_mask(U, "tf32")[0, 0],
                                  [0, 1, 1, 0, 1, 0, 1, 0, 1])
    assert pattern_mask(np.ones((2, 3, 5, 6)), "bf16").sum() == 2 * 3 * 5 * 4


def test_validate_names_the_field(rng):
    A = Batched24.from_dense(random_sparse(rng, (1, 16, 40), "fp16"), "fp16")
    with pytest.raises(TypeError, match="values must have dtype float16"):
        Batched24(A.values.view(np.uint16), A.meta, A.shape, "fp16")
    with pytest.raises(ValueError, match=r"meta must have shape \(1, 1, 1, 32\)"):
        Batched24(A.values, A.meta[:, :, :, :16].copy(), A.shape, "fp16")
    with pytest.raises(ValueError, match="values must be C-contiguous"):
        Batched24(np.asfortranarray(A.values), A.meta, A.shape, "fp16")
    values = A.values.copy()
    values[0, 0, -1] = 1.0  # a stored value of a group past cols = 40
    with pytest.raises(ValueError, match="values: the groups past cols = 40 must be zero"):
        Batched24(values, A.meta, A.shape, "fp16")
    with pytest.raises(ValueError, match="shape: rows must be >= 1"):
        Batched24(A.values, A.meta, (1, 0, 40), "fp16")
    with pytest.raises(TypeError, match="meta must be a NumPy or CuPy array, got list"):
        Batched24(A.values, list(A.meta.ravel()), A.shape, "fp16")


def test_to_device_needs_cupy_and_round_trips(rng):
    A = Batched24.from_dense(random_sparse(rng, (2, 16, 40), "bf16"), "bf16")
    assert A.to_host() is A
    try:
        import cupy
    except Exception:
        with pytest.raises(ImportError, match="CuPy"):
            A.to_device()
        return
    try:
        usable = bool(cupy.is_available())
    except Exception:
        usable = False
    if not usable:  # CuPy imports without a driver: the error says so
        with pytest.raises(BackendUnavailableError, match="no usable CUDA GPU"):
            A.to_device()
        return
    H = A.to_device().to_host()  # pragma: no cover - only with a GPU
    np.testing.assert_array_equal(H.to_dense(), A.to_dense())
    assert H.values.ctypes.data % 16 == 0 and H.meta.ctypes.data % 16 == 0
