"""ProGAN's kernels, forward + backward, each beside a plain reference in the same run.

Run: make bench   (or: python -m pytest benchmarks/bench_kernels.py --benchmark-enable)
     python benchmarks/report.py   writes the markdown table for benchmarks/README.md

Groups pair a ganzoo kernel with its plain reference of the same shape:
- pixelnorm:        registered `pixelnorm`  vs  x / sqrt(mean(x**2) + eps) written out
- fused (CUDA):     G's bias + lrelu + pixelnorm as the Triton kernel and as torch.compile of the
                    formula, vs the formula in eager torch; achieved GB/s in extra_info
- equalized_conv2d: registered `equalized_conv2d`  vs  nn.Conv2d (the cost of equalized lr)
- minibatch_stddev: registered `minibatch_stddev`  vs  a per-group Python loop
Shapes are those of a ProGAN at 64x64 with the paper's widths (fmap_base 8192) on the GPU and
at a CPU-sized batch here; set GANZOO_BENCH_DEVICE=cuda to measure on a GPU.
"""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import ganzoo
from ganzoo_progan import kernels
from steps import reference_pixelnorm

DEVICE = torch.device(os.environ.get("GANZOO_BENCH_DEVICE", "cpu"))
BATCH = 64 if DEVICE.type == "cuda" else 16
SHAPES = [(BATCH, 512, 16, 16), (BATCH, 256, 64, 64)] if DEVICE.type == "cuda" else [
    (BATCH, 128, 16, 16), (BATCH, 64, 64, 64)]


def _sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _fwd_bwd(fn, x):
    def step():
        x.grad = None
        fn(x).square().mean().backward()
        _sync()
    return step


def _reference_pixelnorm(x, eps=1e-8):
    return x / torch.sqrt(torch.mean(x * x, dim=1, keepdim=True) + eps)


def _reference_mbstd(x, group_size=4):
    n, _, h, w = x.shape
    m = n // group_size
    stats = []
    for j in range(m):  # sample i belongs to group i mod m, as in the official layer
        group = x[j::m]
        std = torch.sqrt(group.var(dim=0, unbiased=False) + 1e-8).mean()
        stats.append(std)
    per_sample = torch.stack(stats).repeat(group_size)
    return torch.cat([x, per_sample.view(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl", ["ganzoo", "reference"])
def test_pixelnorm(benchmark, shape, impl):
    benchmark.group = f"pixelnorm {shape}"
    x = torch.randn(shape, device=DEVICE, requires_grad=True)
    fn = ganzoo.make_normalizer("pixelnorm", shape[1]).to(DEVICE) if impl == "ganzoo" else _reference_pixelnorm
    torch.testing.assert_close(fn(x), _reference_pixelnorm(x), rtol=1e-5, atol=1e-5)
    benchmark(_fwd_bwd(fn, x))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl", ["ganzoo", "reference"])
def test_equalized_conv2d(benchmark, shape, impl):
    benchmark.group = f"equalized_conv2d 3x3 {shape}"
    n, c, h, w = shape
    if impl == "ganzoo":
        layer = ganzoo.registry("blocks").get("equalized_conv2d")(c, c, 3, padding=1)
    else:
        layer = nn.Conv2d(c, c, 3, padding=1)
    layer = layer.to(DEVICE)
    x = torch.randn(shape, device=DEVICE, requires_grad=True)
    benchmark(_fwd_bwd(layer, x))


@pytest.mark.parametrize("impl", ["ganzoo", "reference"])
def test_minibatch_stddev(benchmark, impl):
    shape = (BATCH, 512 if DEVICE.type == "cuda" else 128, 4, 4)
    benchmark.group = f"minibatch_stddev {shape}"
    layer = ganzoo.registry("blocks").get("minibatch_stddev")(4).to(DEVICE)
    fn = layer if impl == "ganzoo" else _reference_mbstd
    x = torch.randn(shape, device=DEVICE, requires_grad=True)
    torch.testing.assert_close(fn(x), _reference_mbstd(x), rtol=1e-5, atol=1e-5)
    benchmark(_fwd_bwd(fn, x))


@pytest.mark.skipif(DEVICE.type != "cuda", reason="Triton and inductor kernels: CUDA only")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl", ["triton", "compiled", "reference"])
def test_fused_bias_lrelu_pixelnorm(benchmark, shape, impl):
    benchmark.group = f"bias+lrelu+pixelnorm {shape} ({impl if impl != 'reference' else 'eager'})"
    x = torch.randn(shape, device=DEVICE, requires_grad=True)
    bias = torch.randn(shape[1], device=DEVICE)
    formula = lambda t: reference_pixelnorm(t, bias, 0.2)  # noqa: E731
    fn = {"triton": lambda t: kernels.fused_pixelnorm(t, bias, 1.0, 0.2, impl="triton"),
          "compiled": torch.compile(formula), "reference": formula}[impl]
    torch.testing.assert_close(fn(x), formula(x), rtol=1e-5, atol=1e-5)
    benchmark(_fwd_bwd(fn, x))
    if benchmark.stats is not None:  # fwd reads x, writes y; bwd reads x, dy, writes dx
        benchmark.extra_info["GB/s"] = 5 * x.numel() * 4 / benchmark.stats.stats.mean / 1e9
