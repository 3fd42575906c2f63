"""magma_wino.torch.functional and its torch.library operators: forward against
torch.nn.functional, gradients (gradcheck, torch's own conv gradients, a pure-torch Winograd
reference written here), opcheck, fake tensors / torch.compile, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

from magma_wino import _backend  # noqa: E402
from magma_wino.accuracy import rel_err, tolerance  # noqa: E402
from magma_wino.torch import _ops  # noqa: E402
from magma_wino.torch import functional as F  # noqa: E402
from magma_wino.transforms import winograd  # noqa: E402

#: Backends the CPU tests run: the NumPy reference and, when built, the emulated kernels.
CPU_BACKENDS = ["numpy"] + (["emulator"] if _backend.extension("emulator", required=False) is not None else [])


def _emulator_has_backward() -> bool:
    ext = _backend.extension("emulator", required=False)
    return ext is not None and hasattr(ext, "output_transform_adjoint")


def _grad_backends():
    out = [pytest.param("numpy")]
    if "emulator" in CPU_BACKENDS:
        out.append(pytest.param("emulator", marks=pytest.mark.skipif(
            not _emulator_has_backward(), reason="the emulator has no adjoint kernels in this build")))
    return out


GRAD_BACKENDS = _grad_backends()


def _t(rng: np.random.Generator, *shape: int, grad: bool = True) -> torch.Tensor:
    return torch.from_numpy(rng.standard_normal(shape)).requires_grad_(grad)


def grad_tol(m: int, r: int, nd: int, reductions: tuple[int, ...]) -> float:
    """The float64 tolerance of a gradient: :func:`magma_wino.accuracy.tolerance` with the
    longest of the gradient's reductions.  dL/dx sums over K output channels (dV = Uᵀ·dM,
    reduction K·r^nd in tolerance's terms), dL/dw over the P tiles (dU = dM·Vᵀ, P·r^nd), the
    forward over C (C·r^nd); the adjoint transforms are the forward's matrices transposed, of
    the same growth factor."""
    return tolerance(np.float64, m, r, max(reductions), nd)


def _reductions(x: torch.Tensor, K: int, r: int, m: int, padding: int) -> tuple[int, ...]:
    nd = x.dim() - 2
    out = [s + 2 * padding - r + 1 for s in x.shape[2:]]
    tiles = x.shape[0] * math.prod(math.ceil(o / m) for o in out)
    return (K * r**nd, tiles * r**nd, x.shape[1] * r**nd)


# --------------------------------------------------------------------------- forward / backward vs torch


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("m,r,padding", [(2, 3, 1), (4, 3, 0), (4, 3, 2), (2, 5, 2)])
def test_conv2d_forward_matches_torch(rng, backend, m, r, padding):
    x, w, b = _t(rng, 2, 3, 7, 10, grad=False), _t(rng, 5, 3, r, r, grad=False), _t(rng, 5, grad=False)
    y = F.conv2d(x, w, b, 1, padding, m=m, backend=backend)
    ref = TF.conv2d(x, w, b, 1, padding)
    assert y.shape == ref.shape and y.dtype == torch.float64
    assert rel_err(y.numpy(), ref.numpy()) <= tolerance(np.float64, m, r, 3 * r * r)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("m,r,padding", [(2, 3, 1), (4, 3, 2), (2, 5, 1)])
def test_conv2d_gradients_equal_torch(rng, backend, m, r, padding):
    """dL/dx, dL/dw, dL/dbias of the Winograd layer == torch.nn.functional.conv2d's (float64)."""
    x, w, b = _t(rng, 2, 3, 9, 7), _t(rng, 4, 3, r, r), _t(rng, 4)
    y = F.conv2d(x, w, b, 1, padding, m=m, backend=backend)
    ref = TF.conv2d(x, w, b, 1, padding)
    g = torch.from_numpy(rng.standard_normal(ref.shape))
    got = torch.autograd.grad(y, (x, w, b), g)
    want = torch.autograd.grad(ref, (x, w, b), g)
    tol = grad_tol(m, r, 2, _reductions(x, 4, r, m, padding))
    for name, a, e in zip(("input", "weight", "bias"), got, want):
        assert a.shape == e.shape, name
        assert rel_err(a.numpy(), e.numpy()) <= tol, (name, rel_err(a.numpy(), e.numpy()), tol)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_conv2d_spatial_relu_gradients_equal_torch(rng, backend):
    """relu="spatial" is conv(ReLU(x)): its gradients are those of TF.conv2d(TF.relu(x))."""
    x, w = _t(rng, 1, 2, 6, 7), _t(rng, 3, 2, 3, 3)
    y = F.conv2d(x, w, None, 1, 1, m=2, backend=backend, relu="spatial")
    ref = TF.conv2d(TF.relu(x), w, None, 1, 1)
    g = torch.from_numpy(rng.standard_normal(ref.shape))
    tol = grad_tol(2, 3, 2, _reductions(x, 3, 3, 2, 1))
    assert rel_err(y.detach().numpy(), ref.detach().numpy()) <= tol
    for a, e in zip(torch.autograd.grad(y, (x, w), g), torch.autograd.grad(ref, (x, w), g)):
        assert rel_err(a.numpy(), e.numpy()) <= tol


def test_conv3d_gradients_equal_torch(rng):
    x, w, b = _t(rng, 1, 2, 5, 4, 6), _t(rng, 3, 2, 3, 3, 3), _t(rng, 3)
    y = F.conv3d(x, w, b, 1, 1, m=2, backend="numpy")
    ref = TF.conv3d(x, w, b, 1, 1)
    g = torch.from_numpy(rng.standard_normal(ref.shape))
    tol = grad_tol(2, 3, 3, _reductions(x, 3, 3, 2, 1))
    for a, e in zip(torch.autograd.grad(y, (x, w, b), g), torch.autograd.grad(ref, (x, w, b), g)):
        assert rel_err(a.numpy(), e.numpy()) <= tol


# --------------------------------------------------------------------------- gradcheck

# The numpy backend runs gradcheck in full (every input element perturbed); the emulator
# runs the real kernels, so there fast_mode (a random projection of the Jacobian) keeps each
# check to a few forward calls.  The finite differences are central, exact for the bilinear
# layer but for rounding: each of f(a ± eps) carries an error of at most tol·max|y| (tol the
# forward's float64 tolerance), so the numerical derivative is off by up to tol·max|y|/eps,
# which is gradcheck's atol here.  The ReLU modes are piecewise linear: eps stays small
# enough (1e-6) that random normal data does not cross a kink.

EPS = 1e-6


def _gradcheck(fn, inputs, backend, m, r, reduction, nd=2):
    with torch.no_grad():
        scale = float(fn(*inputs).abs().max())
    atol = tolerance(np.float64, m, r, reduction, nd) * scale / EPS
    assert torch.autograd.gradcheck(fn, inputs, eps=EPS, atol=atol, rtol=1e-7, fast_mode=backend == "emulator")


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("m,r,padding", [(2, 3, 1), (4, 3, 2), (2, 5, 2)])
def test_gradcheck_conv2d(rng, backend, m, r, padding):
    x, w, b = _t(rng, 1, 2, 5, 6), _t(rng, 2, 2, r, r), _t(rng, 2)
    _gradcheck(lambda x, w, b: F.conv2d(x, w, b, 1, padding, m=m, backend=backend), (x, w, b), backend, m, r,
               2 * r * r)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("relu", ["spatial", "winograd"])
def test_gradcheck_conv2d_relu(rng, backend, relu):
    # ReLU is not differentiable at 0; random normal data never lands there (nor within eps).
    x, w, b = _t(rng, 1, 2, 5, 6), _t(rng, 2, 2, 3, 3), _t(rng, 2)
    _gradcheck(lambda x, w, b: F.conv2d(x, w, b, 1, 1, m=2, backend=backend, relu=relu), (x, w, b), backend, 2, 3,
               2 * 9)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_gradcheck_conv3d(rng, backend):
    x, w, b = _t(rng, 1, 2, 4, 3, 5), _t(rng, 2, 2, 3, 3, 3), _t(rng, 2)
    _gradcheck(lambda x, w, b: F.conv3d(x, w, b, 1, 1, m=2, backend=backend), (x, w, b), backend, 2, 3, 2 * 27,
               nd=3)


def _mask(rng, shape, density=0.6):
    return torch.from_numpy(rng.random(shape) < density)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("relu", [None, "winograd"])
def test_gradcheck_conv2d_winograd_masked(rng, backend, relu):
    """Winograd-domain weights with a mask (dense product): the masked entries of U are not
    used (a perturbation there changes nothing) and get a zero gradient."""
    x, U, b = _t(rng, 1, 2, 5, 6), _t(rng, 16, 3, 2), _t(rng, 3)
    mask = _mask(rng, U.shape)
    _gradcheck(lambda x, U, b: F.conv2d_winograd(x, U, b, 1, r=3, mask=mask, relu=relu, sparse=False,
                                                 backend=backend), (x, U, b), backend, 2, 3, 2 * 9)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_gradcheck_conv2d_winograd_csr(rng, backend):
    """The same through the batched CSR product (sparse=True): dV = Uᵀ·dM transposed CSR."""
    x, U = _t(rng, 1, 2, 5, 6), _t(rng, 16, 3, 2)
    mask = _mask(rng, U.shape, 0.3)
    _gradcheck(lambda x, U: F.conv2d_winograd(x, U, None, 1, r=3, mask=mask, relu="winograd", sparse=True,
                                              backend=backend), (x, U), backend, 2, 3, 2 * 9)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("m,r,nd", [(4, 3, 2), (2, 5, 2), (2, 3, 3)])
def test_gradcheck_winograd_domain_other_tiles_and_3d(rng, backend, m, r, nd):
    """Winograd-domain weights beyond F(2,3): F(4,3), F(2,5), and 3D F(2,3), masked, Winograd-ReLU."""
    a = m + r - 1
    spatial = (5, 6) if nd == 2 else (3, 4, 3)
    x, U, b = _t(rng, 1, 2, *spatial), _t(rng, a**nd, 2, 2), _t(rng, 2)
    mask = _mask(rng, U.shape)
    conv = F.conv2d_winograd if nd == 2 else F.conv3d_winograd
    _gradcheck(lambda x, U, b: conv(x, U, b, 1, r=r, mask=mask, relu="winograd", backend=backend), (x, U, b),
               backend, m, r, 2 * r**nd, nd=nd)


def test_bfloat16_tensors_are_refused_by_name():
    x = torch.ones(1, 2, 5, 5, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="input is a bfloat16 tensor"):
        F.conv2d(x, torch.ones(2, 2, 3, 3, dtype=torch.bfloat16), padding=1)
    from magma_wino.torch import eligible

    assert "bfloat16" in eligible(torch.nn.Conv2d(2, 2, 3, padding=1).to(torch.bfloat16))


def test_masked_gradient_is_exactly_zero(rng):
    x, U = _t(rng, 1, 2, 5, 6), _t(rng, 16, 3, 2)
    mask = _mask(rng, U.shape)
    y = F.conv2d_winograd(x, U, None, 1, r=3, mask=mask, backend="numpy")
    (gU,) = torch.autograd.grad(y.square().sum(), (U,))
    assert torch.all(gU[~mask] == 0) and torch.count_nonzero(gU[mask]) == mask.sum()


# --------------------------------------------------------------------------- a pure-torch reference


def torch_winograd_reference(x, U, b, m, r, padding, relu_winograd=False, mask=None):
    """Aᵀ[(U ⊙ mask) ⊙ ReLU?(Bᵀ d B)]A (+ bias) in plain torch (2D): tiles unfolded from the
    zero-padded input, the transforms with magma_wino.transforms' matrices, edge tiles cropped."""
    at, _, bt = (torch.from_numpy(a.copy()) for a in winograd(m, r).matrices(np.float64))
    alpha = m + r - 1
    N, C, H, W = x.shape
    K = U.shape[1]
    Ho, Wo = H + 2 * padding - r + 1, W + 2 * padding - r + 1
    th, tw = math.ceil(Ho / m), math.ceil(Wo / m)
    xp = TF.pad(x, (padding, padding + tw * m - Wo, padding, padding + th * m - Ho))
    d = xp.unfold(2, alpha, m).unfold(3, alpha, m)  # N, C, th, tw, α, α
    V = torch.einsum("ia,ncstab,jb->ijcnst", bt, d, bt)
    if relu_winograd:
        V = TF.relu(V)
    V = V.reshape(alpha * alpha, C, N * th * tw)
    Um = U if mask is None else U * mask
    M = (Um @ V).reshape(alpha, alpha, K, N, th, tw)
    Y = torch.einsum("ui,ijknst,vj->nksutv", at, M, at).reshape(N, K, th * m, tw * m)[:, :, :Ho, :Wo]
    return Y if b is None else Y + b.view(1, K, 1, 1)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("m,r,padding,relu", [(2, 3, 1, "winograd"), (4, 3, 2, None), (2, 5, 0, "winograd")])
def test_winograd_domain_gradients_equal_torch_reference(rng, backend, m, r, padding, relu):
    alpha = m + r - 1
    x, U, b = _t(rng, 2, 3, 9, 8), _t(rng, alpha * alpha, 4, 3), _t(rng, 4)
    mask = _mask(rng, U.shape, 0.7)
    y = F.conv2d_winograd(x, U, b, padding, r=r, mask=mask, relu=relu, backend=backend)
    ref = torch_winograd_reference(x, U, b, m, r, padding, relu == "winograd", mask)
    # U is not a spatial filter's transform: scale the tolerance by the output's own size.
    tol = grad_tol(m, r, 2, _reductions(x, 4, r, m, padding))
    assert rel_err(y.detach().numpy(), ref.detach().numpy()) <= tol
    g = torch.from_numpy(rng.standard_normal(ref.shape))
    for name, a, e in zip(("input", "U", "bias"), torch.autograd.grad(y, (x, U, b), g),
                          torch.autograd.grad(ref, (x, U, b), g)):
        assert rel_err(a.numpy(), e.numpy()) <= tol, (name, rel_err(a.numpy(), e.numpy()), tol)


# --------------------------------------------------------------------------- opcheck, fake tensors, compile


def test_opcheck_conv_spatial(rng):
    x, w, b = _t(rng, 1, 2, 5, 6), _t(rng, 3, 2, 3, 3), _t(rng, 3)
    torch.library.opcheck(_ops.conv_spatial, (x, w, b, [1, 1, 1, 1], 2, "numpy", "auto", None))
    torch.library.opcheck(_ops.conv_spatial, (x, w, None, [0, 0, 1, 1], 4, "numpy", "auto", "winograd"))
    # per-side padding, channels-last (x is N×H×W×C, y N×Ho×Wo×K)
    torch.library.opcheck(_ops.conv_spatial, (x.permute(0, 2, 3, 1).contiguous(), w, b, [0, 2, 1, 0], 2, "numpy",
                                              "auto", None, 1, True))


def test_opcheck_conv_winograd(rng):
    x, U, b = _t(rng, 1, 2, 5, 6), _t(rng, 16, 3, 2), _t(rng, 3)
    mask = _mask(rng, U.shape)
    torch.library.opcheck(_ops.conv_winograd, (x, U, mask, b, [3, 3], [1, 1, 1, 1], 2, "numpy", "auto", "winograd", None))
    torch.library.opcheck(_ops.conv_winograd, (x, U, None, None, [3, 3], [0, 0, 0, 0], 2, "numpy", "auto", None, False))


def test_opcheck_backward_ops(rng):
    x, w, b = _t(rng, 1, 2, 5, 6, grad=False), _t(rng, 3, 2, 3, 3, grad=False), _t(rng, 3, grad=False)
    g = torch.from_numpy(rng.standard_normal((1, 3, 5, 6)))
    for flags in ((True, True, True), (False, True, False), (True, False, True)):
        torch.library.opcheck(_ops.conv_spatial_backward, (g, x, w, b, [1, 1, 1, 1], 2, "numpy", "auto", None, 1, False,
                                                             *flags))
    U = _t(rng, 16, 3, 2, grad=False)
    torch.library.opcheck(_ops.conv_winograd_backward,
                          (g, x, U, _mask(rng, U.shape), b, [3, 3], [1, 1, 1, 1], 2, "numpy", "auto", None, None,
                           False, 1, True, True, True))


def test_fake_tensors_give_the_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(2, 3, 11, 7, dtype=torch.float64)
        y = F.conv2d(x, torch.empty(5, 3, 5, 5, dtype=torch.float64), torch.empty(5, dtype=torch.float64), 1, 2)
        assert tuple(y.shape) == (2, 5, 11, 7) and y.dtype == torch.float64
        y = F.conv2d_winograd(x, torch.empty(36, 4, 3, dtype=torch.float64), None, 0, r=3)
        assert tuple(y.shape) == (2, 4, 9, 5)
        y = F.conv3d(torch.empty(1, 2, 5, 6, 7), torch.empty(3, 2, 3, 3, 3), None, 1, 1)
        assert tuple(y.shape) == (1, 3, 5, 6, 7) and y.dtype == torch.float32


def test_torch_compile_forward_and_backward(rng):
    """torch.compile traces the operators (fake implementations) into one graph with the
    autograd formula; aot_eager runs the traced graphs without generating code."""
    x, w, b = _t(rng, 1, 2, 6, 5), _t(rng, 3, 2, 3, 3), _t(rng, 3)

    def f(x, w, b):
        return TF.relu(F.conv2d(x, w, b, 1, 1, m=2, backend="numpy")).sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    loss = compiled(x, w, b)
    got = torch.autograd.grad(loss, (x, w, b))
    want = torch.autograd.grad(f(x, w, b), (x, w, b))
    for a, e in zip(got, want):
        assert torch.equal(a, e)  # the same NumPy computations, compiled or not


# --------------------------------------------------------------------------- bad input


def test_unsupported_arguments_name_themselves(rng):
    x, w = _t(rng, 1, 2, 6, 6, grad=False), _t(rng, 3, 2, 3, 3, grad=False)
    for kw, word, exc in [({"stride": 0}, "stride", ValueError), ({"dilation": (1, 2, 3)}, "dilation", ValueError),
                          ({"groups": 0}, "groups", ValueError), ({"groups": 4}, "groups", ValueError),
                          ({"padding": "full"}, "padding", ValueError), ({"padding": -1}, "padding", ValueError),
                          ({"padding": (1, 2, 3)}, "padding", ValueError),
                          ({"stride": 2, "padding": "same"}, "same", ValueError)]:
        with pytest.raises(exc, match=word):
            F.conv2d(x, w, **kw)
    with pytest.raises(ValueError, match="input"):
        F.conv2d(x, w, padding=0, dilation=4)  # extent 9 > 6
    with pytest.raises(ValueError, match="weight"):
        F.conv2d(x, _t(rng, 3, 2, 3, grad=False))
    with pytest.raises(ValueError, match="channel"):
        F.conv2d(x, _t(rng, 3, 4, 3, 3, grad=False))
    with pytest.raises(ValueError, match="input"):
        F.conv2d(x[0], w)
    with pytest.raises(ValueError, match="backend"):
        F.conv2d(x, w, backend="opencl")
    with pytest.raises(TypeError, match="input"):
        F.conv2d(x.numpy(), w)


def test_dtype_mismatch_names_the_argument(rng):
    x, w, b = _t(rng, 1, 2, 6, 6, grad=False), _t(rng, 3, 2, 3, 3, grad=False), _t(rng, 3, grad=False)
    with pytest.raises(TypeError, match="dtype mismatch: weight"):
        F.conv2d(x, w.float())
    with pytest.raises(TypeError, match="dtype mismatch: bias"):
        F.conv2d(x, w, b.float())
    with pytest.raises(TypeError, match="input must be a floating-point"):
        F.conv2d(x.long(), w.long())


def test_bad_mask_names_mask(rng):
    x, U = _t(rng, 1, 2, 6, 6, grad=False), _t(rng, 16, 3, 2, grad=False)
    with pytest.raises(ValueError, match="mask"):
        F.conv2d_winograd(x, U, r=3, mask=torch.ones(16, 2, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask"):
        F.conv2d_winograd(x, U, r=3, mask=torch.ones(16, 3, 2))
    with pytest.raises(ValueError, match="mask"):  # the operator itself checks it too
        _ops.conv_winograd(x, U, torch.ones(4, 3, 2, dtype=torch.bool), None, [3, 3], [0, 0, 0, 0], 2, "numpy", "auto", None,
                           None)
    with pytest.raises(ValueError, match="m=4 does not match weight"):
        F.conv2d_winograd(x, U, r=3, m=4)
    with pytest.raises(ValueError, match="positions"):
        F.conv2d_winograd(x, _t(rng, 15, 3, 2, grad=False), r=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to PyTorch")
def test_cuda_input_with_cpu_weight_is_refused(rng):
    x = _t(rng, 1, 2, 6, 6, grad=False).cuda()
    with pytest.raises(TypeError, match="weight is on cpu"):
        F.conv2d(x, _t(rng, 3, 2, 3, 3, grad=False))


def test_emulator_refuses_cuda_tensors_by_name(rng):
    """A host backend with a tensor that is not on the CPU: a TypeError naming it (the
    meta device stands in for CUDA on a machine without a GPU)."""
    x, w = torch.empty(1, 2, 6, 6, device="meta"), torch.empty(3, 2, 3, 3, device="meta")
    with pytest.raises(TypeError, match="weight is on meta"):
        _ops._to_array(w, "weight", "emulator")
    with pytest.raises(TypeError, match="input is on meta"):
        _ops._to_array(x, "input", "numpy")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or _backend.cuda_unavailable_reason() is not None,
                    reason="needs a CUDA GPU usable by PyTorch and the cuda backend")
@pytest.mark.parametrize("precision", ["fp32", "tf32x3"])
def test_cuda_forward_and_gradients_equal_torch(precision):
    """On a GPU: CUDA tensors through the kernels (zero copy, PyTorch's current stream)."""
    from magma_wino.accuracy import tolerance_tf32

    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(2, 8, 13, 11, device="cuda", generator=gen, requires_grad=True)
    w = torch.randn(16, 8, 3, 3, device="cuda", generator=gen, requires_grad=True)
    b = torch.randn(16, device="cuda", generator=gen, requires_grad=True)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):  # not the default stream: ordering must follow PyTorch's
        y = F.conv2d(x, w, b, 1, 1, m=4, precision=precision)
        g = torch.ones_like(y)
        got = torch.autograd.grad(y, (x, w, b), g)
    torch.cuda.synchronize()
    xd, wd, bd = (t.detach().double() for t in (x, w, b))
    xd.requires_grad_(), wd.requires_grad_(), bd.requires_grad_()
    ref = TF.conv2d(xd, wd, bd, 1, 1)
    want = torch.autograd.grad(ref, (xd, wd, bd), torch.ones_like(ref))
    tol = tolerance_tf32(4, 3, 16 * 9) if precision == "tf32" else tolerance(np.float32, 4, 3, 2 * 13 * 11 * 9)
    assert rel_err(y.detach().cpu().numpy(), ref.detach().cpu().numpy()) <= tol
    for a, e in zip(got, want):
        assert rel_err(a.cpu().numpy(), e.cpu().numpy()) <= tol


def test_double_backward_is_refused_by_name(rng):
    x, w = _t(rng, 1, 2, 5, 5), _t(rng, 2, 2, 3, 3)
    (gx,) = torch.autograd.grad(F.conv2d(x, w, None, 1, 1, m=2).square().sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        gx.sum().backward()
