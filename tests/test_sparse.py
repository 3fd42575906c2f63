"""magma_wino.sparse: the batched CSR format."""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino.pruning import prune_winograd
from magma_wino.sparse import BatchedCSR


def _pruned(seed: int = 0, shape: tuple[int, int, int] = (16, 6, 7), density: float = 0.3) -> np.ndarray:
    U = np.random.default_rng(seed).standard_normal(shape)
    return prune_winograd(U, density)[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_dense_csr_dense_is_exact(dtype: type) -> None:
    U = _pruned().astype(dtype)
    A = BatchedCSR.from_dense(U)
    assert A.values.dtype == dtype and A.row_ptr.dtype == np.int32 and A.col_idx.dtype == np.int32
    assert A.row_ptr.shape == (16, 7)
    out = A.to_dense()
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, U)
    assert A.nnz == np.count_nonzero(U)


def test_layout_matches_hand_built_csr() -> None:
    U = np.array([[[0, 2.0, 0], [0, 0, 0]], [[1.0, 0, 3.0], [0, 4.0, 0]]])
    A = BatchedCSR.from_dense(U)
    np.testing.assert_array_equal(A.row_ptr, [[0, 1, 1], [1, 3, 4]])
    np.testing.assert_array_equal(A.col_idx, [1, 0, 2, 1])
    np.testing.assert_array_equal(A.values, [2.0, 1.0, 3.0, 4.0])


def test_density_per_position() -> None:
    U = _pruned(density=0.4)
    A = BatchedCSR.from_dense(U)
    np.testing.assert_allclose(A.density_per_position(), (U != 0).reshape(16, -1).mean(axis=1))
    assert A.density == pytest.approx(np.count_nonzero(U) / U.size)
    np.testing.assert_array_equal(A.row_nnz(), (U != 0).sum(axis=2))


def test_per_position_pruning_gives_equal_position_densities() -> None:
    U = np.random.default_rng(3).standard_normal((36, 8, 8))
    A = BatchedCSR.from_dense(prune_winograd(U, 0.25, per_position=True)[0])
    assert np.all(A.nnz_per_position() == 16)


def test_mask_keeps_explicit_zeros() -> None:
    U = np.zeros((2, 2, 2))
    mask = np.zeros((2, 2, 2), dtype=bool)
    mask[1, 0, 1] = True
    A = BatchedCSR.from_dense(U, mask=mask)
    assert A.nnz == 1
    np.testing.assert_array_equal(A.row_ptr, [[0, 0, 0], [0, 1, 1]])


def test_empty_and_fully_dense() -> None:
    E = BatchedCSR.from_dense(np.zeros((4, 3, 5)))
    assert E.nnz == 0 and E.density == 0.0
    assert np.all(E.row_ptr == 0)
    np.testing.assert_array_equal(E.to_dense(), np.zeros((4, 3, 5)))
    D = BatchedCSR.from_dense(np.arange(1, 61, dtype=np.float64).reshape(4, 3, 5))
    assert D.nnz == 60 and D.density == 1.0
    np.testing.assert_array_equal(D.row_ptr[:, -1], [15, 30, 45, 60])


def test_repeated_columns_add_up_in_to_dense() -> None:
    A = BatchedCSR(np.array([[0, 2]], np.int32), np.array([1, 1], np.int32), np.array([1.0, 2.0]), (1, 1, 3))
    np.testing.assert_array_equal(A.to_dense(), [[[0.0, 3.0, 0.0]]])


def _good() -> dict:
    return dict(
        row_ptr=np.array([[0, 1, 2], [2, 2, 3]], np.int32),
        col_idx=np.array([0, 2, 1], np.int32),
        values=np.array([1.0, 2.0, 3.0]),
        shape=(2, 2, 3),
    )


def test_good_csr_is_accepted() -> None:
    BatchedCSR(**_good()).validate()


CORRUPT = [
    ("row_ptr", dict(row_ptr=np.array([[0, 1, 2], [2, 2, 3]], np.int64)), TypeError),
    ("col_idx", dict(col_idx=np.array([0, 2, 1], np.int64)), TypeError),
    ("values", dict(values=np.array([1, 2, 3], np.int32)), TypeError),
    ("values", dict(values=np.array([1.0, 2.0, 3.0], np.float16)), TypeError),
    ("row_ptr", dict(row_ptr=np.array([0, 1, 2, 2, 2, 3], np.int32)), ValueError),  # 1-D
    ("row_ptr", dict(row_ptr=np.array([[0, 1], [2, 3]], np.int32)), ValueError),  # wrong rows
    (r"row_ptr\[0, 0\]", dict(row_ptr=np.array([[1, 1, 2], [2, 2, 3]], np.int32)), ValueError),
    ("non-decreasing", dict(row_ptr=np.array([[0, 2, 1], [1, 2, 3]], np.int32)), ValueError),
    ("position 1 must start", dict(row_ptr=np.array([[0, 1, 2], [1, 2, 3]], np.int32)), ValueError),
    ("must equal nnz", dict(row_ptr=np.array([[0, 1, 2], [2, 2, 2]], np.int32)), ValueError),
    ("col_idx", dict(col_idx=np.array([0, 3, 1], np.int32)), ValueError),
    ("col_idx", dict(col_idx=np.array([0, -1, 1], np.int32)), ValueError),
    ("values has length", dict(values=np.array([1.0, 2.0])), ValueError),
    ("col_idx", dict(col_idx=np.array([[0, 2, 1]], np.int32)), ValueError),
    ("contiguous", dict(values=np.array([1.0, 9, 2.0, 9, 3.0, 9])[::2]), ValueError),
    ("shape", dict(shape=(2, 2)), TypeError),
    ("shape", dict(shape=(2, -2, 3)), ValueError),
    ("row_ptr", dict(row_ptr=[[0, 1, 2], [2, 2, 3]]), TypeError),
]


@pytest.mark.parametrize("match,override,exc", CORRUPT, ids=[c[0] + str(i) for i, c in enumerate(CORRUPT)])
def test_corrupt_csr_rejected_with_field_named(match: str, override: dict, exc: type) -> None:
    kw = _good()
    kw.update(override)
    with pytest.raises(exc, match=match):
        BatchedCSR(**kw)


def test_int32_extremes_in_row_ptr_do_not_wrap() -> None:
    kw = _good()
    kw["row_ptr"] = np.array([[0, 2**31 - 1, -(2**31)], [2, 2, 3]], np.int32)
    with pytest.raises(ValueError, match="row_ptr"):
        BatchedCSR(**kw)


def test_frozen() -> None:
    A = BatchedCSR(**_good())
    with pytest.raises(AttributeError):
        A.values = np.zeros(3)  # type: ignore[misc]


def test_from_dense_argument_errors() -> None:
    with pytest.raises(ValueError, match="U must be 3-D"):
        BatchedCSR.from_dense(np.ones((2, 2)))
    with pytest.raises(ValueError, match="mask"):
        BatchedCSR.from_dense(np.ones((2, 2, 2)), mask=np.ones((2, 2, 3), bool))
    with pytest.raises(TypeError, match="mask"):
        BatchedCSR.from_dense(np.ones((2, 2, 2)), mask=np.ones((2, 2, 2)))


def test_to_host_is_identity_on_host_and_to_device_needs_cupy() -> None:
    A = BatchedCSR(**_good())
    assert A.to_host() is A
    try:
        import cupy  # noqa: F401
    except Exception:
        with pytest.raises(ImportError, match="CuPy"):
            A.to_device()
    else:  # pragma: no cover - only with CuPy
        try:
            D = A.to_device()
        except Exception as exc:  # no GPU / driver
            pytest.skip(f"CuPy present but no usable device: {exc}")
        np.testing.assert_array_equal(D.to_host().to_dense(), A.to_dense())
