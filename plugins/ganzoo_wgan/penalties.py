"""Lipschitz constraints on a Wasserstein critic: weight clipping and the gradient penalty."""

from __future__ import annotations

import ganzoo
import torch
from ganzoo import checks
from torch import nn


class WeightClip:
    """Weight clipping (WGAN, Arjovsky et al. 2017): every critic parameter into [-clip, clip].

    Applied after each discriminator optimizer step, as in the paper's Algorithm 1 (c = 0.01). Every
    parameter is clipped, BatchNorm scales and biases included (as the paper's code does);
    buffers such as running statistics are not. The term adds nothing to either objective
    (its `discriminator_loss` returns None), so pair it with `wasserstein`.
    """

    def __init__(self, clip: float = 0.01):
        self.clip = float(checks.positive(clip, "weight_clip: clip"))

    def discriminator_loss(self, ctx: ganzoo.LossContext) -> None:
        return None  # a constraint, not an objective: the engine skips terms that return None

    @torch.no_grad()
    def after_discriminator_step(self, discriminator: nn.Module) -> None:
        net = getattr(discriminator, "module", discriminator)  # DistributedDataParallel
        net = getattr(net, "_orig_mod", net)  # torch.compile wrapper: same parameters
        for p in net.parameters():
            p.clamp_(-self.clip, self.clip)


class GradientPenalty:
    """Gradient penalty (WGAN-GP, Gulrajani et al. 2017): lambda_gp * E[(||grad D(x_hat)|| - target)^2].

    Algorithm 1 of the paper: x_hat = eps * real + (1 - eps) * fake, with one eps ~ U[0, 1]
    per sample, is a random point on the segment between a real image and a fake one. The
    norm is taken in float32 over all non-batch dimensions. Paper defaults: lambda_gp = 10,
    target = 1. The recipe's `weight` multiplies on top of `lambda_gp` (keep weight = 1 for
    the paper's lambda). Implementations that raise the target (ProGAN's) may also divide by
    target^2: fold that into lambda_gp. Discriminator only; neither the real nor the fake
    batch receives gradients, the critic's parameters do (through the double backward).

    Under a growth schedule the official ProGAN code feeds D images upscaled (nearest) to the
    target resolution and takes the gradient with respect to those, whose norm is the
    current-resolution norm divided by f = target / current (D box-filters them back down, so
    each of the f^2 copies of a pixel gets 1/f^2 of its gradient). `full_resolution_norm = true`
    (the default) divides by f likewise; false penalises the current-resolution gradient, a
    Lipschitz bound f times tighter. Without growth f = 1 and both agree.

    Uses a double backward (torch.autograd.grad with create_graph=True through D), so the
    critic must run eagerly: TorchInductor (torch.compile) has no double backward. The critic
    must not use BatchNorm (the penalty is per sample; the paper suggests layer normalization).
    """

    def __init__(self, lambda_gp: float = 10.0, target: float = 1.0, full_resolution_norm: bool = True):
        self.lambda_gp = float(checks.at_least(lambda_gp, 0.0, "gradient_penalty: lambda_gp"))
        self.target = float(checks.at_least(target, 0.0, "gradient_penalty: target"))
        self.full_resolution_norm = checks.boolean(full_resolution_norm, "gradient_penalty: full_resolution_norm")

    def discriminator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        # Under bf16 autocast the fake is bf16 and the real fp32: interpolate in the real's dtype.
        real, fake = ctx.real.detach(), ctx.fake.detach().to(ctx.real.dtype)
        if real.shape != fake.shape:
            raise ganzoo.UserError(
                f"gradient_penalty: real and fake batches must have the same shape to "
                f"interpolate, got {tuple(real.shape)} and {tuple(fake.shape)}")
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device,
                         dtype=real.dtype)
        x_hat = torch.lerp(fake, real, eps).requires_grad_(True)  # eps * real + (1 - eps) * fake
        with torch.enable_grad():
            scores = ctx.critic(x_hat)
            (grad,) = torch.autograd.grad(scores.float().sum(), x_hat, create_graph=True,
                                          allow_unused=True)
        if grad is None:  # a critic that ignores its input has zero gradient everywhere
            grad = torch.zeros_like(x_hat)
        norm = grad.float().flatten(1).norm(2, dim=1)
        if self.full_resolution_norm:
            norm = norm * (ctx.resolution / ctx.target_resolution)
        return self.lambda_gp * (norm - self.target).square().mean()
