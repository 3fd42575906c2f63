"""Plans with 2:4-structured Winograd-domain weights (``from_winograd(structure="2:4")``): the
pattern (2 of every 4 input channels; 1 of every 2 in the TF32 modes, as mma.sp requires), the
product on sparse tensor cores (kernels/sp24_tc_batched.cuh, emulated), ``plan.product``.

y is checked against the float64 formula y = Aᵀ[(U ⊙ mask) · V]A of the pruned U within the
tolerance of the plan's precision mode, and against the dense product of the same pruned U in the
same mode."""

from __future__ import annotations

import numpy as np
import pytest

from magma_wino import WinogradConv2d, perfmodel, pruning
from magma_wino import precision as _precision
from magma_wino.accuracy import rel_err, tolerance
from magma_wino.reference import winograd_conv_from_U

try:
    import magma_wino._emu  # noqa: F401

    HAS_EMU = True
except ImportError:  # pragma: no cover - the emulator is part of every build
    HAS_EMU = False

BACKENDS = ["numpy"] + (["emulator"] if HAS_EMU else [])
#: precision -> the N:M pattern along C
PATTERN = {"fp16": (2, 4), "bf16": (2, 4), "tf32": (1, 2), "tf32x3": (1, 2)}


def _layer(rng, C=20, K=18, H=7, W=9, N=2, m=4, r=3):
    alpha = m + r - 1
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    U = rng.standard_normal((alpha * alpha, K, C)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    return x, U, b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prec", list(PATTERN))
def test_sp24_plan_prunes_to_the_pattern_and_matches_the_float64_formula(prec, backend, rng) -> None:
    m, r, pad = 4, 3, 1
    x, U, b = _layer(rng)
    plan = WinogradConv2d.from_winograd(U, r=3, m=m, structure="2:4", bias=b, padding=pad, backend=backend,
                                        precision=prec, sparse=True, allow_inaccurate=True)
    Up, mask = pruning.prune_winograd_n_m(U, *PATTERN[prec])
    assert plan.product == "2:4" and plan.uses_sparse_product
    np.testing.assert_array_equal(plan.mask, mask)
    assert plan.weight_density == pytest.approx(mask.mean())
    if backend == "emulator":
        assert plan.sp24 is not None and plan.sp24.precision == prec
        np.testing.assert_array_equal(plan.sp24.to_dense(),
                                      _precision.from_storage(_precision.to_storage(Up, prec), prec))
    y = plan(x)
    assert y.dtype == np.float32 and not np.isnan(y).any()
    ref = winograd_conv_from_U(x.astype(np.float64), Up.astype(np.float64), m, r, pad, b.astype(np.float64))
    assert rel_err(y, ref) <= _precision.tolerance(prec, m, r, U.shape[2] * r * r), (prec, backend)


@pytest.mark.parametrize("prec", list(PATTERN))
def test_sp24_plan_agrees_with_the_dense_product_of_the_pruned_U(prec, rng) -> None:
    """Emulator: the sparse and the dense tensor-core kernels multiply the same rounded operands
    (the pattern's zeros contribute nothing) and differ only in how float32 sums are grouped."""
    if not HAS_EMU:
        pytest.skip("needs the emulator extension")
    m, r, pad = 2, 3, 1
    x, U, b = _layer(rng, C=40, K=17, m=m)
    _, mask = pruning.prune_winograd_n_m(U, *PATTERN[prec])
    kw = dict(r=3, m=m, bias=b, padding=pad, backend="emulator", precision=prec, allow_inaccurate=True)
    sp = WinogradConv2d.from_winograd(U, mask=mask, structure="2:4", sparse=True, **kw)
    dense = WinogradConv2d.from_winograd(U, mask=mask, sparse=False, **kw)
    assert (sp.product, dense.product) == ("2:4", "dense")
    assert rel_err(sp(x), dense(x).astype(np.float64)) <= tolerance(np.float32, m, r, 40 * r * r)


@pytest.mark.parametrize("prec", ["fp32", "fp64"])
def test_sp24_structure_without_sparse_tensor_cores_runs_the_csr_product(prec, rng) -> None:
    x, U, b = _layer(rng)
    if prec == "fp64":
        x, U = x.astype(np.float64), U.astype(np.float64)
    plan = WinogradConv2d.from_winograd(U, r=3, m=4, structure="2:4", backend="numpy", precision=prec,
                                        sparse=True)
    Up, _ = pruning.prune_winograd_n_m(U, 2, 4)
    assert plan.product == "csr" and plan.sp24 is None
    np.testing.assert_array_equal(plan.U, Up)


def test_sp24_sparse_auto_asks_the_model(monkeypatch, rng) -> None:
    """"auto" runs what choose_product says for the 2:4 product at its density 0.5 (here the
    model's own answer, then a model that says dense); sparse=False keeps the pruned U dense."""
    x, U, b = _layer(rng)
    kw = dict(r=3, m=4, structure="2:4", backend="numpy", precision="fp16", allow_inaccurate=True)
    plan = WinogradConv2d.from_winograd(U, **kw)
    assert plan.product == perfmodel.choose_product(18, 20, 4, 3, "fp16", 0.5, "2:4")
    calls = []

    def fake(K, C, m, r, precision, density, structured, **kw):
        calls.append((K, C, precision, density, structured))
        return "dense"

    monkeypatch.setattr(perfmodel, "choose_product", fake)
    assert WinogradConv2d.from_winograd(U, **kw).product == "dense"
    assert calls == [(18, 20, "fp16", 0.5, "2:4")]
    dense = WinogradConv2d.from_winograd(U, sparse=False, **kw)
    assert dense.product == "dense" and dense.weight_density == pytest.approx(0.5)


def test_sp24_arguments_are_checked(rng) -> None:
    x, U, b = _layer(rng)
    kw = dict(r=3, m=4, structure="2:4", backend="numpy", precision="fp16", allow_inaccurate=True)
    with pytest.raises(ValueError, match="prune does not apply to structure='2:4'"):
        WinogradConv2d.from_winograd(U, prune=0.5, **kw)
    bad = np.zeros(U.shape, bool)
    bad[3, 5, 8:11] = True  # three of the channels 8..11
    with pytest.raises(ValueError, match=r"mask: position 3, filter 5, input channels 8\.\.11 keep 3; "
                                         r"structure='2:4' in precision 'fp16' allows 2 of every 4"):
        WinogradConv2d.from_winograd(U, mask=bad, **kw)
    csr = WinogradConv2d.from_winograd(U, r=3, m=4, prune=0.5, backend="numpy", sparse=True).csr
    with pytest.raises(ValueError, match="structure='2:4' builds its pattern from dense U"):
        WinogradConv2d.from_winograd(csr=csr, r=3, m=4, structure="2:4", backend="numpy")
