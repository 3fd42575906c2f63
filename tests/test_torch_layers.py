"""Every convolution a CNN has, through magma_wino.torch (issue 17): stride, dilation, rectangular kernels, "same" / "valid" / per-side padding and channels_last
inputs — forward and backward equal to torch.nn.functional.conv2d / conv3d in float64, on the
NumPy reference and on the emulated kernels.

The layers are real networks' (ResNet-18's stride-2 3×3, 7×7 and 1×1 downsampling convolutions,
Inception's 1×3 / 3×1 / 1×7, DeepLab's dilated 3×3), scaled down in channels and size; sizes are odd and even on purpose (the phases of a
stride-2 layer differ in length on an odd input).

Tolerances: :func:`magma_wino.accuracy.tolerance` of the convolution the plan runs — F(m, L)
with L the phase filter's taps (module docstring of :mod:`magma_wino.decompose`) over
C·s'^nd/groups input channels (forward), the longest reduction for each gradient.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

from magma_wino import _backend  # noqa: E402
from magma_wino.accuracy import rel_err, tolerance  # noqa: E402
from magma_wino.decompose import decompose  # noqa: E402
from magma_wino.torch import WinogradConv2d  # noqa: E402
from magma_wino.torch import functional as F  # noqa: E402

_EMU = _backend.extension("emulator", required=False)
BACKENDS = ["numpy"] + (["emulator"] if _EMU is not None and hasattr(_EMU, "output_transform_adjoint") else [])

#: (name, C, K, kernel, stride, padding, dilation, groups, H, W): scaled-down real layers.
LAYERS_2D = [
    ("resnet18_conv3_1_3x3_s2", 4, 6, (3, 3), 2, 1, 1, 1, 14, 13),
    ("resnet18_downsample_1x1_s2", 4, 6, (1, 1), 2, 0, 1, 1, 14, 15),
    ("resnet18_conv1_7x7_s2", 3, 4, (7, 7), 2, 3, 1, 1, 17, 16),
    ("inception_1x3", 4, 5, (1, 3), 1, (0, 1), 1, 1, 9, 8),
    ("inception_3x1", 4, 5, (3, 1), 1, (1, 0), 1, 1, 9, 8),
    ("inception_1x7_same", 3, 4, (1, 7), 1, "same", 1, 1, 8, 11),
    ("deeplab_3x3_dilation2", 4, 5, (3, 3), 1, 2, 2, 1, 11, 12),
    ("dilation3_stride2", 3, 4, (3, 3), 2, 3, 3, 1, 15, 14),
    ("same_even_2x2", 3, 4, (2, 2), 1, "same", 1, 1, 7, 8),
    ("same_dilated_3x3", 3, 4, (3, 3), 1, "same", 2, 1, 9, 9),
    ("valid_5x3", 3, 4, (5, 3), 1, "valid", 1, 1, 10, 9),
    ("asymmetric_pad_4tuple", 3, 4, (3, 3), 1, (0, 2, 3, 1), 1, 1, 8, 9),
    ("stride3_3x3", 3, 4, (3, 3), 3, 1, 1, 1, 13, 11),
    ("stride4_2x2_phases_without_taps", 3, 4, (2, 2), 4, 0, 1, 1, 13, 14),
    ("resnext_3x3_groups2", 4, 6, (3, 3), 1, 1, 1, 2, 9, 10),
    ("resnext_3x3_groups2_s2", 4, 6, (3, 3), 2, 1, 1, 2, 13, 12),
    ("mobilenet_depthwise_3x3", 4, 4, (3, 3), 1, 1, 1, 4, 9, 8),
    ("mobilenet_depthwise_3x3_s2", 4, 4, (3, 3), 2, 1, 1, 4, 11, 10),
    ("depthwise_multiplier2_1x3_dilation2", 3, 6, (1, 3), 1, "same", 2, 3, 8, 9),
]


def _tensor(rng: np.random.Generator, *shape: int, grad: bool = True) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape)).requires_grad_(grad)


def _torch_padding(padding, nd: int):
    """torch's conv takes str / per-axis padding; a per-side tuple goes through F.pad first."""
    if isinstance(padding, tuple) and len(padding) == 2 * nd:
        return 0, list(padding)
    return padding, None


def _reference(x, w, b, stride, padding, dilation, groups):
    pad, side = _torch_padding(padding, w.dim() - 2)
    if side is not None:
        x = TF.pad(x, side)
    conv = TF.conv2d if w.dim() == 4 else TF.conv3d
    return conv(x, w, b, stride, pad, dilation, groups)


def _tolerances(x, w, stride, padding, dilation, groups, m):
    """(forward, gradient) tolerances of the convolution the decomposition runs."""
    nd = w.dim() - 2
    dec = decompose(nd, tuple(w.shape[2:]), stride, padding, dilation, groups)
    L, Ci = dec.inner_r, int(w.shape[1]) * dec.in_phases
    out = dec.out_spatial(tuple(x.shape[2:]))
    tiles = x.shape[0] * dec.out_phases * math.prod(math.ceil(o / (m * p)) for o, p in
                                                    zip(out, (ax.out_phases for ax in dec.axes)))
    fwd = tolerance(np.float64, m, L, Ci * L**nd, nd)
    grad = tolerance(np.float64, m, L, max(Ci, w.shape[0] // groups, tiles) * L**nd, nd)
    return fwd, grad


def _check_layer(rng, backend, C, K, kernel, stride, padding, dilation, groups, spatial, channels_last=False,
                 m=4):
    nd = len(kernel)
    x = _tensor(rng, 2, C, *spatial)
    w = _tensor(rng, K, C // groups, *kernel)
    b = _tensor(rng, K)
    if channels_last:
        fmt = torch.channels_last if nd == 2 else torch.channels_last_3d
        x = x.detach().to(memory_format=fmt).requires_grad_(True)
    conv = F.conv2d if nd == 2 else F.conv3d
    y = conv(x, w, b, stride, padding, dilation, groups, m=m, backend=backend)
    xr, wr, br = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
    ref = _reference(xr, wr, br, stride, padding, dilation, groups)
    fwd_tol, grad_tol = _tolerances(x, w, stride, padding, dilation, groups, m)
    assert y.shape == ref.shape and y.dtype == torch.float64
    assert rel_err(y.detach().numpy(), ref.detach().numpy()) <= fwd_tol
    if channels_last:  # the result keeps the input's memory format, as torch's convolution does
        assert y.is_contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    g = torch.from_numpy(rng.standard_normal(tuple(y.shape)))
    (y * g).sum().backward()
    (ref * g).sum().backward()
    for name, got, want in (("input", x, xr), ("weight", w, wr), ("bias", b, br)):
        assert rel_err(got.grad.numpy(), want.grad.numpy()) <= grad_tol, name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,C,K,kernel,stride,padding,dilation,groups,H,W", LAYERS_2D,
                         ids=[layer[0] for layer in LAYERS_2D])
def test_conv2d_layer_forward_and_backward_equal_torch(rng, backend, name, C, K, kernel, stride, padding, dilation,
                                                       groups, H, W):
    _check_layer(rng, backend, C, K, kernel, stride, padding, dilation, groups, (H, W))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,C,K,kernel,stride,padding,dilation,groups,H,W",
                         [LAYERS_2D[0], LAYERS_2D[3], LAYERS_2D[6], LAYERS_2D[11], LAYERS_2D[14], LAYERS_2D[17]],
                         ids=["s2", "1x3", "dilation2", "asymmetric", "groups2", "depthwise_s2"])
def test_conv2d_channels_last_input_equals_torch(rng, backend, name, C, K, kernel, stride, padding, dilation, groups,
                                                 H, W):
    _check_layer(rng, backend, C, K, kernel, stride, padding, dilation, groups, (H, W), channels_last=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel,stride,padding,dilation,groups", [
    ((3, 3, 3), 2, 1, 1, 1),
    ((1, 3, 3), 1, (0, 1, 1), 1, 1),
    ((3, 3, 3), 1, 2, 2, 1),
    ((3, 3, 3), 1, 1, 1, 2),
])
def test_conv3d_layer_forward_and_backward_equal_torch(rng, backend, kernel, stride, padding, dilation, groups):
    _check_layer(rng, backend, 2, 4, kernel, stride, padding, dilation, groups, (6, 7, 5), m=2)


def test_channels_last_direct_layer_reads_input_without_copy(rng, monkeypatch):
    """A stride-1 square layer on a channels_last tensor reaches the plan as the N×H×W×C view
    of the tensor's own memory (layout NHWC), not a copy."""
    from magma_wino.torch import _ops

    seen = {}
    real = _ops._to_array

    def spy(t, name, backend):
        a = real(t, name, backend)
        if name == "input":
            seen["ptr"] = a.__array_interface__["data"][0]
        return a

    monkeypatch.setattr(_ops, "_to_array", spy)
    x = _tensor(rng, 2, 3, 6, 7, grad=False).to(memory_format=torch.channels_last)
    w = _tensor(rng, 4, 3, 3, 3, grad=False)
    y = F.conv2d(x, w, None, 1, 1, backend="numpy")
    assert seen["ptr"] == x.data_ptr()
    assert rel_err(y.numpy(), TF.conv2d(x, w, None, 1, 1).numpy()) <= tolerance(np.float64, 4, 3, 27)


def test_module_with_stride_dilation_groups_equals_nn_conv2d(rng):
    conv = torch.nn.Conv2d(4, 6, (3, 3), stride=2, padding=2, dilation=2, groups=2).double()
    wc = WinogradConv2d.from_conv(conv, backend="numpy")
    x = _tensor(rng, 2, 4, 13, 12, grad=False)
    fwd, _ = _tolerances(x, conv.weight, 2, 2, 2, 2, 4)
    assert rel_err(wc(x).detach().numpy(), conv(x).detach().numpy()) <= fwd
    with pytest.raises(NotImplementedError, match="to_plan"):
        wc.to_plan(backend="numpy")
    depthwise = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4).double()  # stride 1: a plan of its own
    plan = WinogradConv2d.from_conv(depthwise).to_plan(backend="numpy")
    assert plan.groups == 4
    assert rel_err(plan(x.numpy()), depthwise(x).detach().numpy()) <= tolerance(np.float64, 4, 3, 9)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"stride": 0}, ValueError, "stride"),
    ({"stride": (1, 2, 3)}, ValueError, "stride"),
    ({"dilation": -1}, ValueError, "dilation"),
    ({"groups": 0}, ValueError, "groups"),
    ({"groups": 3}, ValueError, "channel mismatch"),  # C = 4 is not 3 groups of w's 4 channels
    ({"padding": "same", "stride": 2}, ValueError, "padding='same'"),
    ({"padding": "full"}, ValueError, "padding"),
    ({"padding": (1, 2, 3)}, ValueError, "padding"),
    ({"padding": -1}, ValueError, "padding"),
])
def test_conv2d_bad_configuration_names_the_argument(rng, kwargs, exc, match):
    x = _tensor(rng, 1, 4, 8, 8, grad=False)
    w = _tensor(rng, 4, 4, 3, 3, grad=False)
    with pytest.raises(exc, match=match):
        F.conv2d(x, w, **kwargs, backend="numpy")


def test_conv2d_input_smaller_than_dilated_kernel_is_refused(rng):
    x = _tensor(rng, 1, 2, 4, 4, grad=False)
    w = _tensor(rng, 3, 2, 3, 3, grad=False)
    with pytest.raises(ValueError, match="extent"):
        F.conv2d(x, w, dilation=3, backend="numpy")


def test_depthwise_layer_with_auto_backend_runs_torch_direct_convolution(rng, monkeypatch):
    """Depthwise layers are memory-bound (docs/limitations.md): backend="auto" hands them to
    PyTorch's direct convolution; an explicit backend runs the Winograd kernels."""
    from magma_wino.torch import _ops

    calls = []
    monkeypatch.setattr(_ops, "conv_spatial", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(
        AssertionError("the Winograd operator must not run")))
    x, w, b = _tensor(rng, 2, 4, 9, 8), _tensor(rng, 8, 1, 3, 3), _tensor(rng, 8)
    y = F.conv2d(x, w, b, 2, (0, 1, 2, 1), 1, 4, relu="spatial")
    xr = TF.pad(TF.relu(x), (0, 1, 2, 1))
    assert torch.equal(y, TF.conv2d(xr, w, b, 2, 0, 1, 4)) and not calls
    y.sum().backward()
    assert x.grad is not None and w.grad is not None
