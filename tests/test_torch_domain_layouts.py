"""Winograd-domain torch layers of every convolution (issue 17): ``WinogradDomainConv2d`` /
``conv2d_winograd`` with stride, dilation, groups and rectangular kernels.

U is the weights of the stride-1 phase layer :mod:`magma_wino.decompose` rewrites the layer into
(the phase filter, C/groups · phases input channels), so ``from_conv`` computes the same
function as the ``nn.Conv2d`` (checked against PyTorch in float64, forward and backward), and
a pruned U computes the float64 formula Aᵀ[(U ⊙ mask) ⊙ V]A of the phase layer, group by group
(:func:`magma_wino.reference.winograd_conv_from_U`), mapped back by the decomposition.
Tolerances from the precision model at the phase layer's reduction length."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import magma_wino.torch as mt  # noqa: E402
from magma_wino import _backend  # noqa: E402
from magma_wino import precision as _precision  # noqa: E402
from magma_wino import reference as R  # noqa: E402
from magma_wino.accuracy import rel_err  # noqa: E402
from magma_wino.decompose import decompose  # noqa: E402
from magma_wino.torch import functional as F  # noqa: E402

BACKENDS = ["numpy", pytest.param("emulator", marks=pytest.mark.skipif(
    _backend.extension("emulator", required=False) is None, reason="the emulator extension is not built"))]

# (name, nn.Conv2d keywords): ResNet's stride-2 entry, DeepLab's dilation, ResNeXt's groups,
# Inception's 1×3, a 3×5 with stride (1, 2) (phase filter 3×3), a grouped stride-2 1×3
LAYERS = [
    ("stride2", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("dilation2", {"kernel_size": 3, "padding": 2, "dilation": 2}),
    ("groups2", {"kernel_size": 3, "padding": 1, "groups": 2}),
    ("1x3", {"kernel_size": (1, 3), "padding": (0, 1)}),
    ("3x5_stride1x2", {"kernel_size": (3, 5), "padding": (1, 2), "stride": (1, 2)}),
    ("1x3_stride2_groups4", {"kernel_size": (1, 3), "padding": (0, 1), "stride": 2, "groups": 4}),
]


def _tol(mod, mode="fp64"):
    """The model's bound for the module's phase layer: its tile, its reduction length."""
    inner = mod._decomposition.inner_kernel
    C = mod.weight.shape[2]
    return _precision.tolerance(mode, mod.tile_m, inner, C * math.prod(inner), 2)


def _formula(mod, x):
    """y of the module's (masked) U in float64: the decomposition's inputs, each group's
    Aᵀ[U ⊙ V]A, the decomposition's outputs."""
    dec = mod._decomposition
    U = (mod.weight.detach() * mod.mask).double().numpy()
    xi = dec.inputs(x.detach().double().numpy())
    g, Kg, Ci = mod.groups, U.shape[1] // mod.groups, U.shape[2]
    pads = dec.inner_padding
    ys = [R.winograd_conv_from_U(xi[:, i * Ci:(i + 1) * Ci], U[:, i * Kg:(i + 1) * Kg], mod.tile_m, dec.inner_kernel,
                                 pads) for i in range(g)]
    y = np.concatenate(ys, axis=1)
    if mod.bias is not None:
        y = y + mod.bias.detach().double().numpy().reshape(1, -1, 1, 1)
    return dec.outputs(y, tuple(x.shape[2:]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,kw", LAYERS, ids=[n for n, _ in LAYERS])
def test_domain_layer_from_conv_equals_the_conv_forward_and_backward(name, kw, backend):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, **kw).double()
    mod = mt.WinogradDomainConv2d.from_conv(conv, backend=backend)
    assert tuple(mod.weight.shape) == F.winograd_weight_shape(8, 12, kw["kernel_size"], 2, stride=kw.get("stride", 1),
                                                              dilation=kw.get("dilation", 1),
                                                              groups=kw.get("groups", 1))
    x = torch.randn(2, 8, 11, 10, dtype=torch.float64, requires_grad=True)
    y, ref = mod(x), conv(x)
    assert y.shape == ref.shape
    tol = _tol(mod)
    assert rel_err(y.detach().numpy(), ref.detach().numpy()) <= tol
    dy = torch.randn_like(ref)
    gx, gb = torch.autograd.grad(y, (x, mod.bias), dy)
    rx, rb = torch.autograd.grad(ref, (x, conv.bias), dy)
    assert rel_err(gx.numpy(), rx.numpy()) <= tol
    assert rel_err(gb.numpy(), rb.numpy()) <= tol


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("name,kw", [LAYERS[0], LAYERS[2], LAYERS[5]], ids=["stride2", "groups2", "1x3_s2_g4"])
def test_pruned_domain_layer_matches_the_float64_formula_of_its_phase_layer(name, kw, sparse, backend):
    """Winograd-domain pruning of strided / grouped layers: prune_ then forward, on the dense
    and the CSR product, against the masked formula (so the pruned layer is no spatial conv)."""
    torch.manual_seed(1)
    mod = mt.WinogradDomainConv2d(8, 16, kw["kernel_size"], padding=kw["padding"], stride=kw.get("stride", 1),
                                  groups=kw.get("groups", 1), backend=backend, sparse=sparse, dtype=torch.float64)
    mod.prune_(0.3)
    assert mod.density == pytest.approx(0.3, abs=0.01)
    x = torch.randn(2, 8, 12, 9, dtype=torch.float64)
    y = mod(x).detach().numpy()
    assert rel_err(y, _formula(mod, x)) <= _tol(mod)


@pytest.mark.parametrize("backend", BACKENDS)
def test_domain_layer_gradients_pass_gradcheck_with_stride_and_groups(backend):
    """dL/dx and dL/dU (zero where pruned) by finite differences, float64."""
    torch.manual_seed(2)
    mod = mt.WinogradDomainConv2d(4, 4, 3, padding=1, stride=2, groups=2, m=2, backend=backend, dtype=torch.float64)
    mod.prune_(0.5)
    x = torch.randn(1, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    U = mod.weight.detach().clone().requires_grad_(True)

    def f(x, U):
        return F.conv2d_winograd(x, U, mod.bias, 1, r=3, mask=mod.mask, stride=2, groups=2, backend=backend)

    assert torch.autograd.gradcheck(f, (x, U), eps=1e-6, atol=1e-7)
    (gU,) = torch.autograd.grad(f(x, U).sum(), U)
    assert not gU[~mod.mask].any() and gU[mod.mask].abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_channels_last_input_of_a_strided_domain_layer_gives_the_same_channels_last_y(backend):
    torch.manual_seed(3)
    mod = mt.WinogradDomainConv2d.from_conv(nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2).double(),
                                            backend=backend)
    x = torch.randn(2, 6, 9, 10, dtype=torch.float64)
    y = mod(x)
    y_cl = mod(x.to(memory_format=torch.channels_last))
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    assert rel_err(y_cl.detach().numpy(), y.detach().numpy()) <= _tol(mod)


@pytest.mark.parametrize("backend", BACKENDS)
def test_plan_of_a_grouped_rectangular_domain_layer_computes_the_module(backend):
    torch.manual_seed(4)
    mod = mt.WinogradDomainConv2d(8, 8, (1, 3), padding=(0, 1), groups=2, backend=backend, dtype=torch.float64)
    mod.prune_(0.4)
    plan = mod.to_plan(backend=backend, sparse=True)
    assert plan.groups == 2 and plan.rectangular and plan.product == "csr"
    x = torch.randn(2, 8, 7, 9, dtype=torch.float64)
    assert rel_err(plan(x.numpy()), mod(x).detach().numpy()) <= _tol(mod)


def test_conv2d_winograd_reads_the_tile_of_a_rectangular_or_phase_filter_from_the_weight():
    """m from U's rows: F(1×4, 1×3) has 6 positions, a stride-2 3×3's 2×2 phase filter at
    F(2, 2) 9; a wrong m or a channel count that is no multiple of the phases is refused."""
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    w = torch.randn(5, 4, 1, 3, dtype=torch.float64)
    U = torch.from_numpy(R.filter_transform(w.numpy(), (1, 4)))
    y = F.conv2d_winograd(x, U, None, (0, 1), r=(1, 3))
    ref = torch.nn.functional.conv2d(x, w, padding=(0, 1))
    assert rel_err(y.numpy(), ref.numpy()) <= _precision.tolerance("fp64", (1, 4), (1, 3), 12, 2)
    with pytest.raises(ValueError, match="m=2 does not match weight"):
        F.conv2d_winograd(x, U, None, (0, 1), r=(1, 3), m=2)
    w3 = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    dec = decompose(2, (3, 3), 2, 1)
    U2 = torch.from_numpy(R.filter_transform(dec.weights(w3.numpy()), 2))
    assert tuple(U2.shape) == (9, 5, 16) == F.winograd_weight_shape(4, 5, 3, m=2, stride=2)
    y2 = F.conv2d_winograd(x, U2, None, 1, r=3, stride=2)
    ref2 = torch.nn.functional.conv2d(x, w3, stride=2, padding=1)
    assert rel_err(y2.numpy(), ref2.numpy()) <= _precision.tolerance("fp64", 2, 2, 16 * 4, 2)
    with pytest.raises(ValueError, match="not a multiple of the 4 input phases"):
        F.conv2d_winograd(x, U2[:, :, :15], None, 1, r=3, stride=2)
    with pytest.raises(ValueError, match="channel mismatch"):
        F.conv2d_winograd(x[:, :3], U2, None, 1, r=3, stride=2)
    with pytest.raises(NotImplementedError, match="relu='winograd' with a stride"):
        F.conv2d_winograd(x, U2, None, 1, r=3, stride=2, relu="winograd")
    with pytest.raises(ValueError, match="r must be an int"):
        F.conv2d_winograd(x, U2, None, 1, r=(3, 0), stride=2)
    with pytest.raises(ValueError, match="in_channels must be an int >= 1"):
        F.winograd_weight_shape(0, 5, 3)
    with pytest.raises(ValueError, match="in_channels = 6 is not a multiple of groups = 4"):
        F.winograd_weight_shape(6, 8, 3, groups=4)


def test_opcheck_conv_winograd_grouped_rectangular():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((1, 4, 5, 6))).requires_grad_(True)
    U = torch.from_numpy(rng.standard_normal((6, 6, 2))).requires_grad_(True)  # F(1×4, 1×3), 2 groups
    torch.library.opcheck(F._ops.conv_winograd, (x, U, None, None, [1, 3], [0, 0, 1, 1], 4, "numpy", "auto", None,
                                                 False, False, 2))


def test_block_pruning_of_a_grouped_domain_layer_keeps_blocks_inside_one_group():
    """K/groups = 24: a 16-row block of the ungrouped U[b] would cross the group edge at row 24;
    the module prunes each group's matrix (blocks of rows 0..15 and 16..23 per group), as
    from_winograd(..., groups=) does, and to_plan runs the block-sparse product of those."""
    torch.manual_seed(6)
    mod = mt.WinogradDomainConv2d(16, 48, 3, padding=1, groups=2, dtype=torch.float64)
    mod.prune_(0.5, block=(16, 8))
    assert mod.structure == "block"
    keep = mod.mask.numpy().reshape(36, 2, 24, 8)
    for rows in (slice(0, 16), slice(16, 24)):
        blk = keep[:, :, rows, :]
        assert (blk == blk[:, :, :1, :1]).all()
    assert 0.3 < keep.mean() < 0.7
    plan = mod.to_plan(backend="numpy", sparse=True)
    assert plan.product == "block" and plan.bsr.shape == (72, 24, 8)
    x = torch.randn(1, 16, 6, 7, dtype=torch.float64)
    assert rel_err(plan(x.numpy()), mod(x).detach().numpy()) <= _tol(mod)
