"""magma_wino.decompose: a strided / dilated / rectangular convolution rewritten as one stride-1
square one (the plans' kind), checked on the NumPy path against a direct strided, dilated
correlation written out here (float64, loops over the taps), independent of PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from magma_wino import reference as R
from magma_wino.decompose import decompose


def direct(x, w, stride, pads, dilation):
    """y[n,k,i,j] = Σ_c Σ_taps xpad[n, c, s·i + d·u, s·j + d·v] · w[k, c, u, v]."""
    nd = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    out = [(xp.shape[2 + a] - dilation[a] * (w.shape[2 + a] - 1) - 1) // stride[a] + 1 for a in range(nd)]
    y = np.zeros((x.shape[0], w.shape[0], *out))
    for taps in itertools.product(*(range(t) for t in w.shape[2:])):
        sl = (slice(None), slice(None)) + tuple(
            slice(dilation[a] * taps[a], dilation[a] * taps[a] + stride[a] * (out[a] - 1) + 1, stride[a])
            for a in range(nd))
        y += np.einsum("nc...,kc->nk...", xp[sl], w[(slice(None), slice(None)) + taps])
    return y


CASES = [  # kernel, stride, (lo, hi) pairs, dilation, spatial
    ((3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), (9, 8)),
    ((1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), (7, 6)),
    ((5, 3), (2, 1), ((2, 0), (1, 1)), (1, 2), (11, 9)),
    ((2, 2), (4, 3), ((0, 1), (2, 0)), (1, 1), (13, 10)),
    ((3, 1), (1, 1), ((1, 1), (0, 0)), (3, 1), (10, 5)),
    ((3, 3, 3), (2, 1, 2), ((1, 1), (0, 2), (1, 0)), (1, 2, 1), (6, 7, 5)),
]


@pytest.mark.parametrize("kernel,stride,pads,dilation,spatial", CASES)
def test_decomposed_convolution_equals_direct_strided_dilated_correlation(kernel, stride, pads, dilation, spatial):
    rng = np.random.default_rng(30)
    nd = len(kernel)
    x = rng.standard_normal((2, 3, *spatial))
    w = rng.standard_normal((4, 3, *kernel))
    dec = decompose(nd, kernel, stride, pads, dilation)
    inner = R._conv_direct(dec.inputs(x), dec.weights(w), None, dec.inner_padding, nd)  # stride 1, square
    y = dec.outputs(inner, spatial)
    want = direct(x, w, stride, pads, dilation)
    assert y.shape == want.shape == (2, 4, *dec.out_spatial(spatial))
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-12 * np.abs(want).max())
    xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))  # channels last: the same numbers
    inner_l = R._conv_direct(np.moveaxis(dec.inputs(xl, True), -1, 1), dec.weights(w), None, dec.inner_padding, nd)
    yl = dec.outputs(np.ascontiguousarray(np.moveaxis(inner_l, 1, -1)), spatial, True)
    np.testing.assert_allclose(np.moveaxis(yl, -1, 1), want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_only_phases_with_taps_are_multiplied():
    """The cost of the rewriting: C·Π min(s', r) inner channels and ⌈r / s'⌉ taps per axis."""
    assert (decompose(2, (1, 1), 2).in_phases, decompose(2, (1, 1), 2).inner_r) == (1, 1)
    assert (decompose(2, (3, 3), 2, 1).in_phases, decompose(2, (3, 3), 2, 1).inner_r) == (4, 2)
    assert (decompose(2, (7, 7), 2, 3).in_phases, decompose(2, (7, 7), 2, 3).inner_r) == (4, 4)
    assert (decompose(2, (2, 2), 4).in_phases, decompose(2, (2, 2), 4).inner_r) == (4, 1)
    dil = decompose(2, (3, 3), 1, 2, 2)  # dilation: output phases into the batch, the filter unchanged
    assert (dil.out_phases, dil.in_phases, dil.inner_r) == (4, 1, 3)
    assert decompose(2, (3, 3), 1, 1).direct and not decompose(2, (3, 3), 2, 1).direct


def test_decompose_refuses_bad_configuration_naming_it():
    with pytest.raises(ValueError, match="stride"):
        decompose(2, (3, 3), 0)
    with pytest.raises(ValueError, match="dilation"):
        decompose(2, (3, 3), 1, 0, (1, 2, 3))
    with pytest.raises(ValueError, match="same"):
        decompose(2, (3, 3), 2, "same")
    with pytest.raises(ValueError, match="groups"):
        decompose(2, (3, 3), 1, 0, 1, 0)
    with pytest.raises(ValueError, match="extent"):
        decompose(2, (3, 3), 1, 0, 3).out_spatial((6, 9))
