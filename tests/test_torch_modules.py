"""magma_wino.torch modules and convert(): drop-in nn.Conv2d subclasses, Winograd-domain layers
(mask, pruning, export to a plan), a converted small CNN (outputs, gradients, training)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import magma_wino  # noqa: E402
import magma_wino.torch as mt  # noqa: E402
from magma_wino.accuracy import rel_err, tolerance  # noqa: E402
from magma_wino.reference import filter_transform  # noqa: E402


def _x(seed: int, *shape: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


# --------------------------------------------------------------------------- WinogradConv2d / 3d


def test_winograd_conv2d_is_a_drop_in_conv2d():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1, dtype=torch.float64)
    wc = mt.WinogradConv2d.from_conv(conv, m=2)
    assert isinstance(wc, nn.Conv2d) and wc.padding == (1, 1)
    assert wc.state_dict().keys() == conv.state_dict().keys()
    fresh = mt.WinogradConv2d(3, 5, 3, padding=1, dtype=torch.float64, m=2)
    fresh.load_state_dict(conv.state_dict())  # state_dict compatible both ways
    conv.load_state_dict(fresh.state_dict())
    x = _x(0, 2, 3, 7, 9)
    tol = tolerance(np.float64, 2, 3, 3 * 9)
    assert rel_err(fresh(x).detach().numpy(), conv(x).detach().numpy()) <= tol
    assert rel_err(wc(x).detach().numpy(), conv(x).detach().numpy()) <= tol


def test_winograd_conv3d_from_conv():
    torch.manual_seed(1)
    conv = nn.Conv3d(2, 3, 3, padding="same", bias=False, dtype=torch.float64)
    wc = mt.WinogradConv3d.from_conv(conv)
    assert wc.padding == conv.padding == "same" and wc.bias is None  # as nn.Conv3d keeps it
    x = _x(1, 1, 2, 5, 4, 6)
    assert rel_err(wc(x).detach().numpy(), conv(x).detach().numpy()) <= tolerance(np.float64, 2, 3, 2 * 27, 3)


@pytest.mark.parametrize("kw,word,exc", [({"groups": 4}, "groups", ValueError),
                                         ({"padding_mode": "reflect", "padding": 1}, "padding_mode",
                                          NotImplementedError),
                                         ({"padding": "full"}, "padding", ValueError),
                                         ({"m": 0}, "m", ValueError)])
def test_winograd_conv2d_refuses_what_it_cannot_compute(kw, word, exc):
    args = {"kernel_size": 3, **kw}
    with pytest.raises(exc, match=word):
        mt.WinogradConv2d(3, 6, **args)


def test_plan_of_a_spatial_module_matches_it():
    torch.manual_seed(2)
    wc = mt.WinogradConv2d(3, 4, 5, padding=2, dtype=torch.float64, m=2)
    plan = wc.to_plan()
    x = _x(2, 1, 3, 8, 6)
    assert isinstance(plan, magma_wino.WinogradConv2d)
    assert rel_err(plan(x.numpy()), wc(x).detach().numpy()) <= tolerance(np.float64, 2, 5, 3 * 25)


# --------------------------------------------------------------------------- WinogradDomainConv2d


def test_winograd_domain_from_conv_computes_the_same():
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)
    wd = mt.WinogradDomainConv2d.from_conv(conv, m=2)
    assert wd.weight.shape == (16, 4, 3) and wd.mask.dtype == torch.bool and bool(wd.mask.all())
    np.testing.assert_array_equal(wd.weight.detach().numpy(), filter_transform(conv.weight.detach().numpy(), 2))
    x = _x(3, 2, 3, 7, 5)
    assert rel_err(wd(x).detach().numpy(), conv(x).detach().numpy()) <= tolerance(np.float64, 2, 3, 27)
    assert set(wd.state_dict()) == {"weight", "bias", "mask"}


def test_winograd_domain_init_is_a_transformed_conv_init():
    """A fresh layer's U is G g Gᵀ of a Kaiming-uniform g: the outputs have a conv's scale."""
    torch.manual_seed(4)
    wd = mt.WinogradDomainConv3d(2, 3, 3, padding=1, dtype=torch.float64)
    assert wd.weight.shape == (64, 3, 2) and wd.m == 2
    y = wd(_x(4, 1, 2, 4, 4, 4))
    assert y.shape == (1, 3, 4, 4, 4) and torch.isfinite(y).all()


def test_prune_sets_mask_zeroes_weight_and_keeps_it_zero_in_training():
    torch.manual_seed(5)
    wd = mt.WinogradDomainConv2d(4, 6, 3, padding=1, dtype=torch.float64, m=2, relu="winograd")
    before = wd.weight.detach().clone()
    wd.prune_(0.4)
    n = wd.weight.numel()
    assert int(wd.mask.sum()) == math.floor(0.4 * n + 0.5)
    assert torch.all(wd.weight[~wd.mask] == 0) and torch.equal(wd.weight[wd.mask], before[wd.mask])
    kept = before.abs()[wd.mask]
    assert float(kept.min()) >= float(before.abs()[~wd.mask].max())  # the largest magnitudes
    wd.prune_(0.9)  # a higher density keeps the current pattern
    assert int(wd.mask.sum()) == math.floor(0.4 * n + 0.5)
    # per position: every Winograd position keeps round(density * K * C)
    wd2 = mt.WinogradDomainConv2d(4, 6, 3, dtype=torch.float64, m=2).prune_(0.25, per_position=True)
    assert wd2.mask.sum(dim=(1, 2)).tolist() == [6] * 16
    # training: SGD with momentum and weight decay, and Adam, never revive pruned weights
    mask = wd.mask.clone()
    for opt in (torch.optim.SGD(wd.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2),
                torch.optim.Adam(wd.parameters(), lr=0.1)):
        for step in range(3):
            opt.zero_grad()
            wd(_x(10 + step, 2, 4, 6, 5)).square().mean().backward()
            assert torch.all(wd.weight.grad[~mask] == 0)
            opt.step()
    assert torch.all(wd.weight[~mask] == 0) and torch.equal(wd.mask, mask)


def test_masked_weights_do_not_reach_the_output():
    """The mask, not the value, decides: a value written into a pruned entry changes nothing."""
    torch.manual_seed(6)
    wd = mt.WinogradDomainConv2d(2, 3, 3, dtype=torch.float64, m=2).prune_(0.5)
    x = _x(6, 1, 2, 6, 6)
    y0 = wd(x)
    with torch.no_grad():
        wd.weight[~wd.mask] = 100.0
    assert torch.equal(wd(x), y0)


def test_prune_filters_drops_the_smallest_norm_filters():
    torch.manual_seed(7)
    wd = mt.WinogradDomainConv2d(3, 5, 3, dtype=torch.float64, m=2)
    with torch.no_grad():
        wd.weight[:, 1] *= 0.01
        wd.weight[:, 3] *= 0.02
    kept = wd.prune_filters_(keep=3)
    assert kept.tolist() == [0, 2, 4]
    assert not wd.mask[:, [1, 3]].any() and wd.mask[:, [0, 2, 4]].all()
    assert torch.all(wd.weight[:, [1, 3]] == 0)
    y = wd(_x(7, 1, 3, 6, 6))
    for k in (1, 3):  # a dropped filter outputs its bias
        torch.testing.assert_close(y[0, k], torch.full_like(y[0, k], float(wd.bias[k].detach())), rtol=0, atol=0)
    assert mt.WinogradDomainConv2d(3, 5, 3).prune_filters_(keep_fraction=0.4).numel() == 2
    with pytest.raises(TypeError, match="exactly one"):
        wd.prune_filters_()


@pytest.mark.parametrize("sparse", [False, True])
def test_to_plan_exports_the_pruned_layer(sparse):
    torch.manual_seed(8)
    wd = mt.WinogradDomainConv2d(3, 4, 3, padding=1, dtype=torch.float64, m=4, relu="winograd").prune_(0.2)
    plan = wd.to_plan(backend="numpy", sparse=sparse)
    assert isinstance(plan, magma_wino.WinogradConv2d) and plan.uses_sparse_product is sparse
    assert plan.relu == "winograd" and plan.weights_domain == "winograd"
    np.testing.assert_array_equal(plan.mask, wd.mask.numpy())
    x = _x(8, 2, 3, 9, 7)
    y_plan = plan(x.numpy())
    assert rel_err(y_plan, wd(x).detach().numpy()) <= tolerance(np.float64, 4, 3, 27)
    with torch.no_grad():
        wd.weight.mul_(2)  # the plan holds a copy: training on does not change it
    assert np.array_equal(plan(x.numpy()), y_plan)


@pytest.mark.parametrize("block", [(16, 8), (32, 8)], ids=["16x8", "32x8"])
def test_block_pruned_layer_exports_a_block_sparse_plan(block):
    """prune_(block=(16, 8) or (32, 8)) keeps whole blocks of the block-sparse kernel: to_plan runs
    it in those blocks, and the plan computes what the module does (emulator: the tensor-core
    kernel in tf32x3)."""
    torch.manual_seed(9)
    wd = mt.WinogradDomainConv2d(16, 64, 3, padding=1, m=2, precision="tf32x3").prune_(0.5, block=block)
    assert (wd.structure, wd.block) == ("block", block)
    plan = wd.to_plan(backend="emulator", sparse=True)
    assert plan.product == "block" and plan.bsr.block == block
    assert plan.bsr.block_density == pytest.approx(0.5, abs=0.02)
    x = _x(10, 1, 16, 6, 5).float()
    assert rel_err(plan(x.numpy()), wd(x).detach().numpy()) <= tolerance(np.float32, 2, 3, 16 * 9)
    rows = mt.WinogradDomainConv2d(16, 32, 3, padding=1, m=2).prune_(0.5, block=(1, None))
    assert rows.structure is None and rows.to_plan(backend="numpy").product in ("dense", "csr")


def test_32_row_block_pruning_of_a_narrow_layer_is_one_block_row():
    """prune_(block=(32, 8)) on a layer of 16 output channels: the block is clipped to U[b] (one
    block row, as from_winograd clips it), the module still records the kernel's shape, and its
    plan runs the 32-row kernel on exactly the module's mask."""
    torch.manual_seed(3)
    wd = mt.WinogradDomainConv2d(16, 16, 3, padding=1, m=2, precision="tf32x3").prune_(0.5, block=(32, 8))
    assert (wd.structure, wd.block) == ("block", (32, 8))
    mask = wd.mask.numpy()
    assert (mask == mask[:, :1, :]).all()  # whole columns of U[b]: all 16 rows kept or dropped together
    plan = wd.to_plan(backend="emulator", sparse=True)
    assert plan.product == "block" and plan.bsr.block == (32, 8)
    np.testing.assert_array_equal(plan.bsr.pattern(), mask)
    x = _x(4, 1, 16, 6, 5).float()
    assert rel_err(plan(x.numpy()), wd(x).detach().numpy()) <= tolerance(np.float32, 2, 3, 16 * 9)


def test_n_m_pruned_layer_exports_a_sparse_tensor_core_plan():
    """prune_n_m_(1, 2) keeps 1 of every 2 input channels per U[b] row (the TF32 pattern of
    mma.sp); to_plan then runs the product on sparse tensor cores (emulated, tf32x3) and computes
    what the module does."""
    torch.manual_seed(12)
    wd = mt.WinogradDomainConv2d(16, 8, 3, padding=1, m=2, precision="tf32x3").prune_n_m_()  # 1:2
    assert wd.structure == "2:4"
    mask = wd.mask.numpy()
    assert (mask.reshape(16, 8, 8, 2).sum(-1) == 1).all()
    plan = wd.to_plan(backend="emulator", sparse=True)
    assert plan.product == "2:4"
    x = _x(13, 1, 16, 6, 5).float()
    assert rel_err(plan(x.numpy()), wd(x).detach().numpy()) <= tolerance(np.float32, 2, 3, 16 * 9)
    # the default precision ("auto": tf32x3 on the emulator) exports too; fp16 prunes 2:4
    auto = mt.WinogradDomainConv2d(20, 18, 3, padding=1, m=4).prune_n_m_()
    assert auto.to_plan(backend="emulator").product in ("2:4", "dense")
    half = mt.WinogradDomainConv2d(16, 8, 3, padding=1, m=2, precision="fp16").prune_n_m_()
    assert (half.mask.numpy().reshape(16, 8, 4, 4).sum(-1) == 2).all()
    with pytest.raises(TypeError, match="both n and m, or neither"):
        half.prune_n_m_(2)


def test_winograd_domain_refuses_bad_configuration():
    with pytest.raises(ValueError, match="padding"):
        mt.WinogradDomainConv2d(2, 3, 3, padding=-1)
    with pytest.raises(TypeError, match="kernel_size"):
        mt.WinogradDomainConv2d(2, 3, (3, 5, 1))
    with pytest.raises(ValueError, match="groups=2 must divide"):
        mt.WinogradDomainConv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="relu"):
        mt.WinogradDomainConv2d(2, 3, 3, relu="gelu")
    with pytest.raises(NotImplementedError, match="relu='winograd' with a stride"):
        mt.WinogradDomainConv2d.from_conv(nn.Conv2d(2, 3, 3, stride=2), relu="winograd")
    with pytest.raises(NotImplementedError, match="to_plan"):
        mt.WinogradDomainConv2d(2, 3, 3, stride=2).to_plan()
    with pytest.raises(TypeError, match="conv"):
        mt.WinogradDomainConv2d.from_conv(nn.Conv3d(2, 3, 3))


# --------------------------------------------------------------------------- convert


class SmallCNN(nn.Module):
    """A torchvision-style CNN: Conv-BN-ReLU blocks (no conv bias before BN: its gradient is zero), a
    stride-2 conv, a 1×1 conv, a 5×5 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)  # F(4, 2) on 4 phases; F(2, 2) saves nothing
        self.block = nn.Sequential(nn.Conv2d(8, 8, 5, padding="same", bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 6, 1))  # the 1×1 stays
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(self.down(self.stem(x)))
        return self.head(h.mean(dim=(2, 3)))


#: (m, r, C) of the layers the plans run for the converted ones (spatial and Winograd-domain
#: modules alike): the stem (F(4,3), C = 3), the block's 5×5 (F(4,5), C = 8), and the stride-2
#: 3×3 as its phase layer (F(4,2) over 4·8 phase channels).
CONVERTED = [(4, 3, 3), (4, 5, 8), (4, 2, 32)]
#: Their summed float64 tolerance: each converted layer adds at most its own relative error
#: (BatchNorm renormalises, so a relative error passes through a block at unit gain).
CONVERT_TOL = sum(tolerance(np.float64, m, r, c * r * r) for m, r, c in CONVERTED)


def _model(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN().double()


def test_convert_swaps_only_the_eligible_convolutions():
    model = mt.convert(_model())
    assert model.winograd_converted == ["stem.0", "down", "block.0"]
    assert all(type(c) is mt.WinogradConv2d for c in (model.stem[0], model.down, model.block[0]))
    assert model.block[0].padding == "same" and model.down.stride == (2, 2)  # nn.Conv2d's own values, kept
    assert type(model.block[3]) is nn.Conv2d  # the 1×1: a GEMM, nothing to save
    dom = mt.convert(_model(), winograd_domain=True, m=2)
    assert dom.winograd_converted == ["stem.0", "block.0"] and type(dom.down) is nn.Conv2d
    assert type(dom.stem[0]) is mt.WinogradDomainConv2d and dom.block[0].weight.shape == (36, 8, 8)
    dom4 = mt.convert(_model(), winograd_domain=True)  # F(4, 2) of the stride-2 3×3: U of its phase layer
    assert dom4.winograd_converted == ["stem.0", "down", "block.0"] and dom4.down.weight.shape == (25, 8, 32)
    # m=2: the stride-2 3×3 would be F(2, 2), which saves nothing (the cost model's ratio is 1)
    assert mt.convert(_model(), m=2).winograd_converted == ["stem.0", "block.0"]


@pytest.mark.parametrize("conv,why", [
    (nn.Conv2d(8, 8, 3, padding=2, dilation=2), None),            # DeepLab's dilated 3×3
    (nn.Conv2d(8, 16, 3, padding=1, groups=2), None),             # ResNeXt-style groups
    (nn.Conv2d(3, 8, 7, stride=2, padding=3), None),              # ResNet's conv1: F(4, 4) phases
    (nn.Conv2d(8, 8, 3, padding=3), None),                        # padding beyond r − 1
    (nn.Conv2d(8, 8, 1, stride=2), "1-tap filter"),                # ResNet's downsample: a GEMM
    (nn.Conv2d(8, 8, 7, padding=3), "7-tap filter"),
    (nn.Conv2d(8, 8, (1, 3), padding=(0, 1)), None),             # Inception's 1×3: F(1×4, 1×3)
    (nn.Conv2d(8, 8, (3, 1), stride=2, padding=(1, 0)), "saves no"),  # a 2×1 phase filter: 1.01 of direct
    (nn.Conv2d(8, 8, 3, padding=1, groups=8), "depthwise"),
    (nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), "padding_mode"),
])
def test_eligible_follows_the_cost_model_for_the_spatial_modules(conv, why):
    got = mt.eligible(conv)
    assert got is None if why is None else why in got
    # the Winograd-domain modules hold U of the same phase layer: the same verdict
    assert mt.eligible(conv, winograd_domain=True) == got
    if why is None:  # Winograd-ReLU acts on the layer's own tiles: stride 1, dilation 1 only
        strided = conv.stride != (1, 1) or conv.dilation != (1, 1)
        assert (mt.eligible(conv, relu="winograd") is not None) == strided


def test_converted_strided_dilated_grouped_rectangular_layers_equal_the_originals():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, padding=2, dilation=2),
                          nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.Conv2d(8, 8, (1, 3), padding=(0, 1)),
                          nn.Conv2d(8, 8, (3, 1), padding=(1, 0))).double()
    ref = copy.deepcopy(model)
    mt.convert(model)
    assert model.winograd_converted == ["0", "1", "2", "3", "4"]
    x = _x(22, 2, 4, 13, 12)
    # each layer's own tolerance, summed: F(4, 2) over 4·4 phase channels, F(4, 3) over 8 and over
    # 4, the rectangular F(1×4, 1×3) and F(4×1, 3×1) over 8 (bounded by the square F(4, 3)'s)
    tol = sum(tolerance(np.float64, m, r, c * r * r) for m, r, c in [(4, 2, 16), (4, 3, 8), (4, 3, 4), (4, 3, 8),
                                                                       (4, 3, 8)])
    assert rel_err(model(x).detach().numpy(), ref(x).detach().numpy()) <= tol


@pytest.mark.parametrize("winograd_domain", [False, True])
def test_converted_model_has_the_same_outputs_and_gradients(winograd_domain):
    ref = _model()
    model = mt.convert(copy.deepcopy(ref), winograd_domain=winograd_domain)
    x = _x(20, 4, 3, 11, 9)
    x_ref, x_new = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y = ref(x_ref), model(x_new)
    tol = CONVERT_TOL  # both convert the same three layers
    assert rel_err(y.detach().numpy(), y_ref.detach().numpy()) <= tol
    y_ref.square().sum().backward()
    y.square().sum().backward()
    assert rel_err(x_new.grad.numpy(), x_ref.grad.numpy()) <= tol  # the input's gradient too
    grads = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        g = grads[name].grad
        if winograd_domain and name in ("stem.0.weight", "down.weight", "block.0.weight"):
            # dL/dU, and dL/dw is its image under the adjoints of the filter transform (Gᵀ dL/dU G)
            # and of the decomposition's phase filters (by autograd: they are torch ops)
            from magma_wino.reference import filter_transform_adjoint

            mod = model.get_submodule(name.rsplit(".", 1)[0])
            dphase = filter_transform_adjoint(g.numpy(), mod.tile_m, mod._decomposition.inner_kernel)
            w = p.detach().clone().requires_grad_()
            (g,) = torch.autograd.grad(mod._decomposition.weights(w), w, torch.from_numpy(dphase))
        assert rel_err(g.numpy(), p.grad.numpy()) <= tol, name


def _train(model: nn.Module, steps: int) -> list[float]:
    """A fixed synthetic task: 4-class labels of a fixed random linear map of pooled inputs."""
    gen = np.random.default_rng(30)
    x = torch.from_numpy(gen.standard_normal((16, 3, 10, 9)))
    labels = torch.from_numpy((x.mean(dim=(2, 3)) @ torch.from_numpy(gen.standard_normal((3, 4)))).argmax(1).numpy())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_training_a_converted_model_gives_the_same_losses():
    """The same SGD steps on nn.Conv2d and on the converted model: the loss curves agree.
    Tolerance: each step's relative discrepancy is the layers' float64 error (CONVERT_TOL);
    the optimiser carries earlier steps' discrepancies on, so allow it once per step so far
    (a linear growth; SGD over a few steps of a small smooth model does not amplify it)."""
    steps = 6
    base = _train(_model(), steps)
    conv = _train(mt.convert(_model()), steps)
    assert base[-1] < base[0]  # the task is learnt: the comparison means something
    for i, (a, b) in enumerate(zip(base, conv)):
        assert abs(a - b) <= (i + 1) * CONVERT_TOL * abs(a), (i, a, b)


def _backends_with_gradients():
    from magma_wino import _backend

    ext = _backend.extension("emulator", required=False)
    return ["numpy"] + [pytest.param("emulator", marks=pytest.mark.skipif(
        ext is None or not hasattr(ext, "output_transform_adjoint"), reason="the emulator has no adjoint kernels"))]


@pytest.mark.parametrize("backend", _backends_with_gradients())
@pytest.mark.parametrize("sparse", [False, True])
def test_gradcheck_winograd_relu_module_with_a_mask(backend, sparse):
    """gradcheck of a pruned Winograd-ReLU module (its weight and bias through
    torch.func.functional_call, and its input), dense and CSR products.  atol: the finite
    differences' rounding, tol·max|y|/eps (see tests/test_torch_functional.py)."""
    torch.manual_seed(9)
    wd = mt.WinogradDomainConv2d(2, 3, 3, padding=1, dtype=torch.float64, m=2, relu="winograd", backend=backend,
                                 sparse=sparse).prune_(0.5)
    params = {k: v.detach().clone().requires_grad_() for k, v in wd.named_parameters()}
    x = _x(9, 1, 2, 5, 6).requires_grad_()

    def fn(x, weight, bias):
        return torch.func.functional_call(wd, {"weight": weight, "bias": bias}, (x,))

    eps = 1e-6
    with torch.no_grad():
        atol = tolerance(np.float64, 2, 3, 2 * 9) * float(fn(x, *params.values()).abs().max()) / eps
    assert torch.autograd.gradcheck(fn, (x, params["weight"], params["bias"]), eps=eps, atol=atol, rtol=1e-7,
                                    fast_mode=backend == "emulator")


@pytest.mark.parametrize("backend", _backends_with_gradients())
def test_converted_model_on_a_backend_matches(backend):
    ref = _model()
    model = mt.convert(copy.deepcopy(ref), backend=backend)
    x = _x(21, 2, 3, 9, 10)
    y_ref, y = ref(x), model(x)
    assert rel_err(y.detach().numpy(), y_ref.detach().numpy()) <= CONVERT_TOL
    y_ref.sum().backward()
    y.sum().backward()
    grads = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        assert rel_err(grads[name].grad.numpy(), p.grad.numpy()) <= CONVERT_TOL, name


@pytest.mark.parametrize("make_opt", [lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
                                      lambda p: torch.optim.Adam(p, lr=0.1)], ids=["sgd-momentum", "adam"])
def test_pruning_with_an_optimiser_that_holds_state_keeps_pruned_entries_zero(make_opt):
    # momentum / Adam moments gathered before the prune would revive the pruned entries; the
    # optimiser passed to prune_ / prune_filters_ has its state zeroed there
    torch.manual_seed(8)
    wd = mt.WinogradDomainConv2d(3, 5, 3, padding=1, dtype=torch.float64, m=2)
    opt = make_opt(wd.parameters())

    def steps(n):
        for step in range(n):
            opt.zero_grad()
            wd(_x(20 + step, 2, 3, 6, 5)).square().mean().backward()
            opt.step()

    steps(3)
    stale = mt.WinogradDomainConv2d(3, 5, 3, padding=1, dtype=torch.float64, m=2)
    stale.load_state_dict(wd.state_dict())
    stale_opt = make_opt(stale.parameters())
    stale_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # its own tensors, not opt's
    wd.prune_(0.3, optimizer=opt)
    stale.prune_(0.3)  # without the optimiser: its stale state moves the pruned entries
    steps(3)
    assert torch.all(wd.weight[~wd.mask] == 0)
    for step in range(3):
        stale_opt.zero_grad()
        stale(_x(20 + step, 2, 3, 6, 5)).square().mean().backward()
        stale_opt.step()
    assert torch.any(stale.weight[~stale.mask] != 0)  # what the optimizer= argument prevents
    kept = wd.prune_filters_(keep=3, optimizer=opt)
    steps(2)
    assert torch.all(wd.weight[~wd.mask] == 0) and len(kept) == 3
    with pytest.raises(TypeError, match="optimizer must be"):
        wd.prune_(0.2, optimizer="sgd")


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_module_accepts_string_padding_like_nn_conv2d(padding):
    torch.manual_seed(9)
    layer = mt.WinogradConv2d(3, 4, 3, padding=padding, dtype=torch.float64)
    ref = nn.Conv2d(3, 4, 3, padding=padding, dtype=torch.float64)
    ref.load_state_dict(layer.state_dict())
    x = _x(31, 1, 3, 7, 6)
    assert rel_err(layer(x).detach().numpy(), ref(x).detach().numpy()) <= tolerance(np.float64, 4, 3, 27)
    even = mt.WinogradConv2d(3, 4, 4, padding=padding, dtype=torch.float64)  # "same": the odd zero after
    ref4 = nn.Conv2d(3, 4, 4, padding=padding, dtype=torch.float64)
    ref4.load_state_dict(even.state_dict())
    assert rel_err(even(x).detach().numpy(), ref4(x).detach().numpy()) <= tolerance(np.float64, 4, 4, 48)
