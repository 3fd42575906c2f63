"""The C ABI's own argument checks (through the emulator build): sizes whose products
overflow 64-bit arithmetic, and CSR arrays with repeated columns."""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino.errors import UnsupportedError

emu = pytest.importorskip("magma_wino._emu")


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
