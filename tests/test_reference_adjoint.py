"""The NumPy adjoint transforms (the backward's float64 references) are the transposes of
the forward transforms: checked by the dot-product identity on random data and, on tiny
layers, entry by entry against the forward's explicit matrix (its columns are the forward
applied to unit vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import reference as R

# float64 round-off of sums of a few hundred products: 1e-13 is ~500 ulps of headroom, and a
# wrong transpose or a dropped overlap gives O(1) relative error.
RTOL = 1e-13

CASES = [  # m, r, x shape, padding: sizes off the tile multiples, every padding 0..r-1
    (2, 3, (2, 3, 7, 9), 1),
    (4, 3, (1, 2, 9, 6), 0),
    (4, 3, (1, 2, 6, 11), 2),
    (2, 5, (1, 1, 8, 7), 3),
    (3, 2, (2, 2, 5, 6), 1),
    (6, 3, (1, 1, 10, 13), 1),
    (2, 3, (1, 2, 5, 6, 7), (1, 0, 2)),
]


def _out_shape(shape, r, pad, k):
    nd = len(shape) - 2
    pads = (pad,) * nd if isinstance(pad, int) else pad
    return (shape[0], k) + tuple(s + 2 * p - r + 1 for s, p in zip(shape[2:], pads))


@pytest.mark.parametrize("m,r,shape,pad", CASES)
def test_input_transform_adjoint_satisfies_dot_product_identity(m, r, shape, pad):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    V = R.input_transform(x, m, r, pad)
    dV = rng.standard_normal(V.shape)
    dx = R.input_transform_adjoint(dV, m, r, shape, pad)
    assert dx.shape == shape and dx.dtype == np.float64
    assert np.vdot(x, dx) == pytest.approx(np.vdot(V, dV), rel=RTOL)


@pytest.mark.parametrize("m,r,shape,pad", CASES)
def test_output_transform_adjoint_satisfies_dot_product_identity(m, r, shape, pad):
    rng = np.random.default_rng(2)
    P = R.input_transform(np.zeros(shape), m, r, pad).shape[2]
    M = rng.standard_normal(((m + r - 1) ** (len(shape) - 2), 3, P))
    y = R.output_transform(M, m, r, _out_shape(shape, r, pad, 3))
    dy = rng.standard_normal(y.shape)
    dM = R.output_transform_adjoint(dy, m, r)
    assert dM.shape == M.shape
    assert np.vdot(M, dM) == pytest.approx(np.vdot(y, dy), rel=RTOL)


@pytest.mark.parametrize("m,r,nd", [(2, 3, 2), (4, 3, 2), (2, 5, 2), (3, 2, 2), (2, 3, 3)])
def test_filter_transform_adjoint_satisfies_dot_product_identity(m, r, nd):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 2) + (r,) * nd)
    U = R.filter_transform(w, m)
    dU = rng.standard_normal(U.shape)
    dw = R.filter_transform_adjoint(dU, m, r, nd)
    assert dw.shape == w.shape
    assert np.vdot(w, dw) == pytest.approx(np.vdot(U, dU), rel=RTOL)


def _jacobian(f, shape):
    """The forward linear map as an explicit matrix: column j = f(unit vector j)."""
    cols = []
    for j in range(int(np.prod(shape))):
        e = np.zeros(int(np.prod(shape)))
        e[j] = 1.0
        cols.append(f(e.reshape(shape)).ravel())
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("m,r,shape,pad", [(2, 3, (1, 1, 5, 4), 1), (4, 3, (1, 1, 7, 6), 2), (2, 3, (1, 1, 3, 4, 4), 0)])
def test_adjoints_equal_transpose_of_explicit_forward_matrix(m, r, shape, pad):
    rng = np.random.default_rng(4)
    J_in = _jacobian(lambda x: R.input_transform(x, m, r, pad), shape)
    V_shape = R.input_transform(np.zeros(shape), m, r, pad).shape
    dV = rng.standard_normal(V_shape)
    np.testing.assert_allclose(R.input_transform_adjoint(dV, m, r, shape, pad).ravel(), J_in.T @ dV.ravel(),
                               rtol=RTOL, atol=RTOL * np.abs(J_in).max() * np.abs(dV).sum())
    y_shape = _out_shape(shape, r, pad, 1)
    M_shape = (V_shape[0], 1, V_shape[2])
    J_out = _jacobian(lambda M: R.output_transform(M, m, r, y_shape), M_shape)
    dy = rng.standard_normal(y_shape)
    np.testing.assert_allclose(R.output_transform_adjoint(dy, m, r).ravel(), J_out.T @ dy.ravel(),
                               rtol=RTOL, atol=RTOL * np.abs(J_out).max() * np.abs(dy).sum())


def test_output_transform_adjoint_is_zero_past_clipped_edge():
    # Ho = 3 with m = 2: the second tile's second row is clipped, so dM of that tile may only
    # depend on its first row; a dy of ones over y must equal the adjoint of a zero-extended dy.
    dy = np.ones((1, 1, 3, 3))
    dM = R.output_transform_adjoint(dy, 2, 3)
    big = np.zeros((1, 1, 4, 4))
    big[..., :3, :3] = 1
    np.testing.assert_array_equal(dM, R.output_transform_adjoint(big, 2, 3))


def test_adjoints_keep_float32():
    dy = np.ones((1, 2, 4, 4), np.float32)
    assert R.output_transform_adjoint(dy, 2, 3).dtype == np.float32
    assert R.input_transform_adjoint(np.ones((16, 2, 4), np.float32), 2, 3, (1, 2, 4, 4), 1).dtype == np.float32
    assert R.filter_transform_adjoint(np.ones((16, 2, 2), np.float32), 2, 3).dtype == np.float32


def test_adjoints_name_bad_arguments():
    with pytest.raises(ValueError, match="dV must have shape"):
        R.input_transform_adjoint(np.ones((16, 2, 5)), 2, 3, (1, 2, 4, 4), 1)
    with pytest.raises(ValueError, match="x_shape"):
        R.input_transform_adjoint(np.ones((16, 2, 4)), 2, 3, (1, 2, 4), 1)
    with pytest.raises(ValueError, match="dy must be"):
        R.output_transform_adjoint(np.ones((2, 4, 4)), 2, 3)
    with pytest.raises(ValueError, match="dU must have shape"):
        R.filter_transform_adjoint(np.ones((9, 2, 2)), 2, 3)
    with pytest.raises(ValueError, match="ndim must be 2 or 3"):
        R.filter_transform_adjoint(np.ones((16, 2, 2)), 2, 3, ndim=4)


def test_conv_direct_backward_matches_directional_derivative_of_direct_convolution():
    # y is bilinear in (x, w): <y(x + δx, w) − y(x, w), dy> = <dx, δx> exactly, same for w
    rng = np.random.default_rng(5)
    for shape, r, pad in [((2, 3, 6, 7), 3, 1), ((1, 2, 4, 5, 4), 3, (0, 1, 2)), ((1, 2, 8, 8), 5, 2)]:
        nd = len(shape) - 2
        x = rng.standard_normal(shape)
        w = rng.standard_normal((3, shape[1]) + (r,) * nd)
        conv = R.conv2d_direct if nd == 2 else R.conv3d_direct
        dy = rng.standard_normal(conv(x, w, None, pad).shape)
        dx, dw = R.conv_direct_backward(x, w, dy, pad)
        ddx, ddw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
        assert np.vdot(dx, ddx) == pytest.approx(np.vdot(conv(x + ddx, w, None, pad) - conv(x, w, None, pad), dy),
                                                 rel=1e-11)
        assert np.vdot(dw, ddw) == pytest.approx(np.vdot(conv(x, w + ddw, None, pad) - conv(x, w, None, pad), dy),
                                                 rel=1e-11)
    with pytest.raises(ValueError, match="dy must have y's shape"):
        R.conv_direct_backward(np.ones((1, 1, 5, 5)), np.ones((2, 1, 3, 3)), np.ones((1, 2, 4, 4)), 1)
