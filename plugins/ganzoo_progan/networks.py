"""The ProGAN generator and discriminator (Karras et al. 2018, section 2 and appendix A.1, table 2).

Both networks hold the layers of every resolution from 4x4 up to the target and run only
those of the current stage: `set_growth(resolution, alpha)` picks the stage, and while
alpha < 1 the newest block is faded in (section 2, figure 2):

  G: lerp(upscale2x(toRGB_old(x)), toRGB_new(block_new(x)), alpha)
  D: block_new(fromRGB_new(img)) lerped with fromRGB_old(avgpool2x2(img)) by alpha, then the
     older blocks.
"""

from __future__ import annotations

import math

import ganzoo
import torch
import torch.nn.functional as F
from ganzoo import checks
from torch import nn

from ganzoo_progan.kernels import fused_pixelnorm, triton_available
from ganzoo_progan.layers import (SQRT2, EqualizedConv2d, EqualizedLinear, MinibatchStddev,
                                  PixelNorm, downscale2d, upscale2d)

MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024
LEAK = 0.2  # appendix A.1: "leaky ReLU with leakiness 0.2 in all layers of both networks"


def nf(stage: int, fmap_base: int, fmap_max: int, fmap_decay: float) -> int:
    """Feature maps of the block at resolution 2^(stage + 1): min(fmap_base / 2^(stage * decay), fmap_max).

    With the defaults (8192, 512, 1.0): 512 from 4x4 to 32x32, then 256, 128, 64, 32, 16 at
    64 .. 1024 px, as in table 2 of appendix A.1.
    """
    return max(1, min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max))


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAK)


class _Growing(nn.Module):
    """Growth bookkeeping shared by G and D: the current level (0 = 4x4) and fade-in alpha."""

    def __init__(self, resolution: int):
        super().__init__()
        self.resolution = resolution  # the target
        self.max_level = int(math.log2(resolution)) - 2
        self.level, self.alpha, self.fading = self.max_level, 1.0, False
        # alpha as a tensor too: a compiled forward reads its value instead of baking a Python
        # float into the graph, so a fade does not recompile every iteration. Not persistent:
        # snapshots keep their keys (the schedule restores alpha).
        self.register_buffer("alpha_t", torch.ones(()), persistent=False)

    @property
    def current_resolution(self) -> int:
        return 4 << self.level

    def set_growth(self, resolution: int, alpha: float) -> None:
        """Operate at `resolution` (a power of two from 4 to the target); while alpha < 1 the
        layers of `resolution` are being faded in over those of resolution / 2."""
        checks.power_of_two(resolution, "progan: growth resolution", 4, self.resolution)
        alpha = checks.in_range(float(alpha), 0.0, 1.0, "progan: alpha")
        if resolution == 4 and alpha < 1.0:
            raise ganzoo.UserError("progan: nothing to fade in at 4x4 (alpha must be 1)")
        self.level, self.alpha = int(math.log2(resolution)) - 2, alpha
        self.alpha_t.fill_(alpha)
        self.fading = alpha < 1.0  # what forward reads (a float read there would be guarded on)

    def _weight(self, like: torch.Tensor) -> torch.Tensor:
        return self.alpha_t.to(like.dtype)  # lerp wants its weight in the images' dtype (bf16)

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, current={self.current_resolution}, "
                f"alpha={self.alpha:.4g}")


class _GBlock(nn.Module):
    """A 3x3 conv (+ bias), leaky ReLU and pixelnorm: G's unit layer (appendix A.1, table 2)."""

    def __init__(self, in_channels: int, out_channels: int, norm: nn.Module):
        super().__init__()
        self.conv = EqualizedConv2d(in_channels, out_channels, 3, padding=1)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.norm, PixelNorm) and triton_available(x):
            # One Triton pass for scale, bias, lrelu and pixelnorm (ganzoo_progan.kernels).
            return fused_pixelnorm(self.conv.forward_unscaled(x), self.conv.bias, self.conv.scale,
                                   LEAK, self.norm.eps)
        return self.norm(_lrelu(self.conv(x)))


class ProGANGenerator(_Growing):
    """z (N, latent_dim) -> images (N, channels, R, R) at the current resolution R.

    The output is linear (no tanh, appendix A.1: "the last layer that uses linear
    activation"); the engine clamps to [-1, 1] when writing images.
    """

    def __init__(self, *, resolution: int, channels: int, label_dim: int, latent_dim: int,
                 widths: list[int], normalize_latents: bool, use_pixelnorm: bool):
        super().__init__(resolution)
        self.label_dim, self.latent_dim = label_dim, latent_dim
        self.normalize_latents = normalize_latents

        def norm() -> nn.Module:
            return ganzoo.make_normalizer("pixelnorm", 0) if use_pixelnorm else nn.Identity()

        # Normalizing z puts it on a hypersphere of radius sqrt(latent_dim) (appendix A.1).
        self.latent_norm = ganzoo.make_normalizer("pixelnorm", latent_dim) if normalize_latents \
            else nn.Identity()
        # 4x4: a dense layer (the paper's "Conv 4x4" on a 1x1 input) with one bias per feature
        # map; gain sqrt(2)/4 makes its scale that of a 4x4 conv, fan_in 16 * latent_dim (as in
        # the official code, "to match the original Theano implementation").
        self.dense = EqualizedLinear(latent_dim, 16 * widths[0], bias=False, gain=SQRT2 / 4)
        self.dense_bias = nn.Parameter(torch.zeros(widths[0]))
        self.dense_norm = norm()
        self.first_conv = _GBlock(widths[0], widths[0], norm())
        # 8x8 and up: nearest x2 upsampling, then two 3x3 convs (table 2).
        self.blocks = nn.ModuleList(
            nn.Sequential(_GBlock(widths[k - 1], widths[k], norm()),
                          _GBlock(widths[k], widths[k], norm()))
            for k in range(1, len(widths)))
        # toRGB: a linear 1x1 conv per resolution, gain 1 (appendix A.1).
        self.to_rgb = nn.ModuleList(EqualizedConv2d(w, channels, 1, gain=1.0) for w in widths)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        # `labels` is accepted for the engine's calling convention; unconditional for now.
        x = self.latent_norm(z.reshape(z.shape[0], -1))
        x = self.dense(x).reshape(z.shape[0], -1, 4, 4)
        if isinstance(self.dense_norm, PixelNorm) and triton_available(x):
            x = fused_pixelnorm(x, self.dense_bias, 1.0, LEAK, self.dense_norm.eps)
        else:
            x = self.dense_norm(_lrelu(x + self.dense_bias.reshape(1, -1, 1, 1)))
        x = self.first_conv(x)
        for k in range(1, self.level + 1):
            if self.fading and k == self.level:
                old = upscale2d(self.to_rgb[k - 1](x))
                new = self.to_rgb[k](self.blocks[k - 1](upscale2d(x)))
                return torch.lerp(old, new, self._weight(new))
            x = self.blocks[k - 1](upscale2d(x))
        return self.to_rgb[self.level](x)


class _DBlock(nn.Module):
    """Two 3x3 convs with leaky ReLU, then 2x2 average pooling (appendix A.1, table 2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, padding=1)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return downscale2d(_lrelu(self.conv1(_lrelu(self.conv0(x)))))


class ProGANDiscriminator(_Growing):
    """images (N, channels, R, R) at the current resolution R -> scores (N,) (a Wasserstein critic)."""

    def __init__(self, *, resolution: int, channels: int, label_dim: int, widths: list[int],
                 final_width: int, mbstd_group_size: int):
        super().__init__(resolution)
        self.label_dim = label_dim
        # fromRGB: a 1x1 conv + leaky ReLU per resolution.
        self.from_rgb = nn.ModuleList(EqualizedConv2d(channels, w, 1) for w in widths)
        self.blocks = nn.ModuleList(_DBlock(widths[k], widths[k - 1])
                                    for k in range(1, len(widths)))
        # 4x4: minibatch stddev (section 3), 3x3 conv, dense to final_width, dense to 1 (gain 1).
        # The official code disables the stddev layer for group sizes < 2.
        self.mbstd = MinibatchStddev(mbstd_group_size) if mbstd_group_size > 1 else None
        extra = 1 if self.mbstd is not None else 0
        self.final_conv = EqualizedConv2d(widths[0] + extra, widths[0], 3, padding=1)
        self.final_dense = EqualizedLinear(16 * widths[0], final_width)
        self.out = EqualizedLinear(final_width, 1, gain=1.0)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        size = self.current_resolution
        if images.dim() != 4 or images.shape[-2:] != (size, size):
            raise ValueError(f"progan discriminator: expected images of {size}x{size} at the "
                             f"current growth stage, got shape {tuple(images.shape)}")
        k = self.level
        x = self.blocks[k - 1](_lrelu(self.from_rgb[k](images))) if k else \
            _lrelu(self.from_rgb[0](images))
        if k and self.fading:
            old = _lrelu(self.from_rgb[k - 1](downscale2d(images)))
            x = torch.lerp(old, x, self._weight(x))
        for j in range(k - 1, 0, -1):
            x = self.blocks[j - 1](x)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = _lrelu(self.final_conv(x))
        x = _lrelu(self.final_dense(x.flatten(1)))
        return self.out(x).reshape(images.shape[0])


def build_progan(*, resolution: int, channels: int = 3, label_dim: int = 0, latent_dim: int = 512,
                 fmap_base: int = 8192, fmap_max: int = 512, fmap_decay: float = 1.0,
                 normalize_latents: bool = True, use_pixelnorm: bool = True,
                 mbstd_group_size: int = 4) -> ganzoo.GANModel:
    """ProGAN (Karras et al. 2018): progressively grown G and D with equalized lr, any 8-1024 px.

    Widths: nf(stage) = min(fmap_base / 2^(stage * fmap_decay), fmap_max) feature maps at
    resolution 2^(stage + 1). `mbstd_group_size` < 2 disables the minibatch-stddev layer;
    batch sizes must be multiples of it. `label_dim` is accepted and ignored (unconditional).
    Growth is driven by a schedule (e.g. `progressive`); without one the networks run at the
    target resolution.
    """
    checks.power_of_two(resolution, "progan: resolution", MIN_RESOLUTION, MAX_RESOLUTION)
    checks.count(channels, "progan: channels")
    checks.count(label_dim, "progan: label_dim", minimum=0)
    checks.count(latent_dim, "progan: latent_dim")
    checks.count(fmap_base, "progan: fmap_base")
    checks.count(fmap_max, "progan: fmap_max")
    checks.count(mbstd_group_size, "progan: mbstd_group_size", minimum=0)
    checks.at_least(fmap_decay, 0.0, "progan: fmap_decay")
    checks.boolean(normalize_latents, "progan: normalize_latents")
    checks.boolean(use_pixelnorm, "progan: use_pixelnorm")
    levels = int(math.log2(resolution)) - 1  # 4x4 .. target
    widths = [nf(stage, fmap_base, fmap_max, fmap_decay) for stage in range(1, levels + 1)]
    final_width = nf(0, fmap_base, fmap_max, fmap_decay)  # D's dense layer, nf(0) officially
    generator = ProGANGenerator(resolution=resolution, channels=channels, label_dim=label_dim,
                                latent_dim=latent_dim, widths=widths,
                                normalize_latents=normalize_latents, use_pixelnorm=use_pixelnorm)
    discriminator = ProGANDiscriminator(resolution=resolution, channels=channels,
                                        label_dim=label_dim, widths=widths,
                                        final_width=final_width,
                                        mbstd_group_size=mbstd_group_size)
    return ganzoo.GANModel(generator, discriminator, latent_dim, prior="normal")
