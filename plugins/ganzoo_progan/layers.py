"""ProGAN's layers: equalized-learning-rate conv/linear, pixelwise normalization, minibatch stddev.

All are plain `nn.Module`s with torch-style constructors, registered as blocks/normalizers so
any family can use them (e.g. DCGAN with `conv = "equalized_conv2d"`).
"""

from __future__ import annotations

import math

import ganzoo
import torch
import torch.nn.functional as F
from ganzoo import checks
from torch import nn

from ganzoo_progan.kernels import fused_pixelnorm

SQRT2 = math.sqrt(2.0)  # He's gain for (leaky) ReLU layers; section 4.1 uses it by default


class EqualizedConv2d(nn.Conv2d):
    """Conv2d with the equalized learning rate (Karras et al. 2018, section 4.1).

    Weights are drawn from N(0, 1) and scaled at run time by c = gain / sqrt(fan_in),
    fan_in = kernel_size**2 * in_channels (He's constant), so with Adam every layer learns at
    the same speed. The scale multiplies the weight inside `forward`, not the activations; the
    bias starts at zero and is not scaled. Gain sqrt(2) before a (leaky) ReLU, 1 for linear
    outputs (toRGB, the critic's last layer).

    Cost: `weight * scale` is one weight-sized multiply per call (and one in the backward),
    measured within noise of `nn.Conv2d` on CPU (benchmarks/, `gpu.sh` measures the GPU). G's
    blocks on CUDA skip it: they call `forward_unscaled` and fold the scale into the fused
    bias + lrelu + pixelnorm kernel, since conv(x, c * w) = c * conv(x, w).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, gain: float = SQRT2):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         bias=bias)
        self.gain = float(gain)
        fan_in = in_channels * self.kernel_size[0] * self.kernel_size[1]
        self.scale = self.gain / math.sqrt(fan_in)

    def reset_parameters(self) -> None:
        # Section 4.1 / appendix A.1: "all weights according to the normal distribution with
        # unit variance", "all bias parameters to zero".
        nn.init.normal_(self.weight, 0.0, 1.0)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.scale, self.bias)

    def forward_unscaled(self, x: torch.Tensor) -> torch.Tensor:
        """conv(x, weight) without scale and bias, for a consumer that applies both in its own
        pass (G's fused bias + lrelu + pixelnorm): conv(x, w * c) + b = c * conv(x, w) + b."""
        return self._conv_forward(x, self.weight, None)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", gain={self.gain:.4g}, scale={self.scale:.4g}"


class EqualizedLinear(nn.Linear):
    """Linear layer with the equalized learning rate (Karras et al. 2018, section 4.1).

    Weight ~ N(0, 1), multiplied by gain / sqrt(in_features) at run time; bias zero and
    unscaled. Gain sqrt(2) by default, 1 for a linear output layer.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 gain: float = SQRT2):
        super().__init__(in_features, out_features, bias=bias)
        self.gain = float(gain)
        self.scale = self.gain / math.sqrt(in_features)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, 0.0, 1.0)  # section 4.1: N(0, 1), scaled at run time
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", gain={self.gain:.4g}, scale={self.scale:.4g}"


class PixelNorm(nn.Module):
    """Pixelwise feature vector normalization (Karras et al. 2018, section 4.2): x / sqrt(mean_c(x^2) + eps).

    Normalizes over dim 1 (channels of (N, C, H, W), features of (N, C)); no parameters.
    """

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = float(eps)  # section 4.2: epsilon = 1e-8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_pixelnorm(x, eps=self.eps)  # a Triton kernel on CUDA, the formula elsewhere

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"


class BatchGroupError(ganzoo.UserError, ValueError):
    """A batch that minibatch_stddev cannot split into groups: a ValueError, and a user error
    (exit code 2, one line) when it stops a run: the recipe's batch size is the fix."""


class MinibatchStddev(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, section 3) as one extra feature map.

    The batch of N is split into groups of G = min(group_size, N): as in the official code,
    sample n belongs to group n mod (N / G). Per group: the biased (population) standard
    deviation over its G samples of every feature and pixel, sqrt(var + 1e-8), averaged over
    C, H, W to one number, which is appended as a constant feature map to each of the
    group's samples. N must be divisible by G (a ValueError names both otherwise): keep
    batch sizes multiples of `group_size`.
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = checks.count(group_size, "minibatch_stddev: group_size")

    def check_batch_size(self, n: int) -> None:
        """The engine asks before training: every batch size the schedule will use."""
        g = min(self.group_size, n)
        if n % g:
            raise BatchGroupError(f"minibatch_stddev: batch size {n} is not divisible by the "
                                  f"group size {g}; use a batch size that is a multiple of {g}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        self.check_batch_size(n)
        g = min(self.group_size, n)
        y = x.float().reshape(g, n // g, c, h, w)  # [G, M, C, H, W]: sample n -> (n // M, n % M)
        y = y - y.mean(dim=0, keepdim=True)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # biased variance over the group, + 1e-8
        y = y.mean(dim=(1, 2, 3)).to(x.dtype)  # [M]: one value per group
        y = y.reshape(1, n // g, 1, 1, 1).expand(g, n // g, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


def upscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling: each pixel replicated factor x factor (appendix A.1)."""
    # F.interpolate keeps the memory format; an expand + reshape copies an NHWC tensor into
    # NCHW at ~20x the cost (32 -> 64 px, 32 channels, bf16, CPU: 5.7 against 0.25 ms with backward).
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


def downscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Average pooling over factor x factor boxes (appendix A.1)."""
    if factor == 1:
        return x
    if x.shape[-1] % factor or x.shape[-2] % factor:
        return F.avg_pool2d(x, factor)  # floors the odd edge, as the official code's pooling
    return _BoxDownscale.apply(x, factor)


class _BoxDownscale(torch.autograd.Function):
    """avg_pool2d with its adjoint, nearest upsampling / factor^2, as a differentiable backward.

    The same values and derivatives as F.avg_pool2d. But under a double backward (the gradient
    penalty) avg_pool2d's backward contributes an NCHW zero gradient for its unused input,
    which turns the critic's NHWC gradients NCHW: leaky ReLU's backward on mixed layouts then
    ran ~30x slower (CPU, bf16, 8x32x64x64: 10 against 0.34 ms). The adjoint keeps the layout.
    """

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return F.avg_pool2d(x, factor)

    @staticmethod
    def backward(ctx, grad):
        f = ctx.factor
        return upscale2d(grad, f) / (f * f), None
