"""The fused bias + leaky ReLU + pixelnorm kernel (ganzoo_progan.kernels).

The Triton kernels run on CPU tensors under the Triton interpreter (TRITON_INTERPRET=1, set in
a fresh process before triton is imported) and are checked against the eager formula: forward,
backward and double backward, gradcheck / gradgradcheck in float64, at odd shapes (C = 3, 5, 24,
H*W = 16 and 15, N = 257, 2-D inputs, channels_last). Float32 tolerance: 1e-5 (the kernel sums
channels in another order). The same kernels are compiled ahead of time for an H100/H200
(sm_90) to catch what the interpreter cannot (types, constexpr branches).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import ganzoo
from ganzoo_progan import kernels

triton = pytest.importorskip("triton")

INTERPRETED = textwrap.dedent("""
    import torch
    from ganzoo_progan.kernels import fused_pixelnorm, eager
    torch.manual_seed(0)
    cases = [((4, 5, 4, 4), True, 0.2, 0.7), ((257, 3, 4, 4), True, 0.2, 1.0),
             ((3, 24, 3, 5), True, 0.2, 0.3), ((6, 7), False, None, 1.0), ((2, 5, 4, 4), False, 0.2, 1.0)]
    for shape, has_bias, slope, scale in cases:
        for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
            x = torch.randn(shape, dtype=dtype, requires_grad=True)
            b = torch.randn(shape[1], dtype=dtype, requires_grad=True) if has_bias else None
            ins = [x] + ([b] if has_bias else [])
            out = fused_pixelnorm(x, b, scale, slope, impl="triton")
            ref = eager(x, b, scale, slope)
            assert out.dtype == dtype and out.shape == ref.shape
            torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
            g = torch.randn_like(ref)
            got = torch.autograd.grad(out, ins, g, create_graph=True)
            want = torch.autograd.grad(ref, ins, g, create_graph=True)
            for a, w in zip(got, want):
                torch.testing.assert_close(a, w, rtol=tol * 10, atol=tol * 10)
            # double backward: the gradient of (grad . v) w.r.t. the inputs
            v = [torch.randn_like(t) for t in ins]
            dd = torch.autograd.grad(sum((a * u).sum() for a, u in zip(got, v)), ins)
            dw = torch.autograd.grad(sum((a * u).sum() for a, u in zip(want, v)), ins)
            for a, w in zip(dd, dw):
                torch.testing.assert_close(a, w, rtol=tol * 100, atol=tol * 100)
        # gradcheck: every element perturbed, so on a slice (one sample, at most 2x2 pixels)
        head = x.detach()[:1, :, :2, :2] if x.dim() == 4 else x.detach()[:2]
        small = [t.detach().double().clone().requires_grad_() for t in [head] + ins[1:]]
        fn = lambda *t: fused_pixelnorm(t[0], t[1] if has_bias else None, scale, slope, impl="triton")
        assert torch.autograd.gradcheck(fn, small)
        assert torch.autograd.gradgradcheck(fn, small)
    x = torch.randn(3, 6, 4, 4).to(memory_format=torch.channels_last).requires_grad_()
    b = torch.randn(6, requires_grad=True)
    out = fused_pixelnorm(x, b, 0.5, 0.2, impl="triton")
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, eager(x, b, 0.5, 0.2), rtol=1e-5, atol=1e-5)
    got = torch.autograd.grad(out.square().sum(), [x, b])
    want = torch.autograd.grad(eager(x, b, 0.5, 0.2).square().sum(), [x, b])
    for a, w in zip(got, want):
        torch.testing.assert_close(a, w, rtol=1e-4, atol=1e-5)
    # upstream grads in another layout (contiguous against channels_last) and expanded (.sum())
    w = torch.randn(3, 6, 4, 4)
    out = fused_pixelnorm(x, b, 0.5, 0.2, impl="triton")
    got = torch.autograd.grad((out * w).sum() + out.sum(), [x, b])
    ref = eager(x, b, 0.5, 0.2)
    want = torch.autograd.grad((ref * w).sum() + ref.sum(), [x, b])
    for a, v in zip(got, want):
        torch.testing.assert_close(a, v, rtol=1e-4, atol=1e-5)
    y = torch.randn(2, 5, 3, 3, requires_grad=True)
    (gy,) = torch.autograd.grad(fused_pixelnorm(y, None, 1.0, 0.2, impl="triton").sum(), [y])
    (wy,) = torch.autograd.grad(eager(y, None, 1.0, 0.2).sum(), [y])
    torch.testing.assert_close(gy, wy, rtol=1e-4, atol=1e-5)
    print("interpreted kernels ok")
""")


def test_triton_kernels_match_the_formula_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", INTERPRETED], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "interpreted kernels ok" in proc.stdout


def test_kernels_compile_for_sm90():
    """Ahead-of-time compile to a cubin for sm_90 (no GPU needed): every constexpr variant."""
    import inspect

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    pointers = {"X", "B", "Y", "G", "GX", "GB"}
    integers = {"C", "P", "blocks", "sn", "sc", "sp", "gn", "gc", "gp"}
    for fn in (kernels._forward_kernel, kernels._backward_kernel):
        names = list(inspect.signature(fn.fn).parameters)
        for dtype in ("fp32", "bf16"):
            for has_bias, act in ((True, True), (False, False)):
                signature = {}
                for name in names:
                    if name in pointers:
                        signature[name] = f"*{dtype}" if name in {"X", "Y", "G", "GX"} else "*fp32"
                    elif name in integers:
                        signature[name] = "i32"
                    elif name in {"scale", "slope", "eps"}:
                        signature[name] = "fp32"
                    else:
                        signature[name] = "constexpr"
                constants = dict(HAS_BIAS=has_bias, ACT=act, F64=False, BLOCK_C=512, BLOCK_P=8)
                out = triton.compile(ASTSource(fn, signature, constants),
                                     target=GPUTarget("cuda", 90, 32), options={"num_warps": 8})
                assert "cubin" in out.asm and out.asm["cubin"]


def test_auto_picks_the_eager_formula_on_cpu_and_it_is_pixelnorm_exactly():
    x = torch.randn(4, 24, 4, 4)
    assert not kernels.triton_available(x)
    norm = ganzoo.make_normalizer("pixelnorm", 24)
    # the registered block's contract: x / sqrt(mean_c(x^2) + eps), bit for bit on CPU
    assert torch.equal(norm(x), x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8))
    b = torch.randn(24)
    y = torch.nn.functional.leaky_relu(x * 0.5 + b.reshape(1, -1, 1, 1), 0.2)
    torch.testing.assert_close(kernels.fused_pixelnorm(x, b, 0.5, 0.2),
                               y / torch.sqrt(y.square().mean(dim=1, keepdim=True) + 1e-8))


def test_eager_backward_formula_is_autograd_of_the_formula():
    """_grad_torch (the double-backward path) equals autograd through the eager formula."""
    x = torch.randn(5, 7, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 7, 3, 3, dtype=torch.float64)
    want = torch.autograd.grad(kernels.eager(x, b, 0.3, 0.2), [x, b], g)
    got = kernels._grad_torch(x, b, g, 0.3, 0.2, 1e-8)
    for a, w in zip(got, want):
        torch.testing.assert_close(a, w)


def test_generator_block_unchanged_on_cpu():
    """On CPU G's blocks run conv(w * c) + b, lrelu, pixelnorm as before the kernel existed."""
    model = ganzoo.registry("models").get("progan")(resolution=8, latent_dim=16, fmap_base=64, fmap_max=16)
    block = model.generator.first_conv
    x = torch.randn(4, 16, 4, 4)
    y = torch.nn.functional.leaky_relu(block.conv(x), 0.2)
    assert torch.equal(block(x), y * torch.rsqrt(y.square().mean(dim=1, keepdim=True) + 1e-8))
    # the unscaled conv + folded scale is the same convolution
    folded = block.conv.forward_unscaled(x) * block.conv.scale + block.conv.bias.reshape(1, -1, 1, 1)
    torch.testing.assert_close(folded, block.conv(x), rtol=1e-5, atol=1e-5)
