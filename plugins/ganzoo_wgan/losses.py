"""Critic-score losses: Wasserstein, drift, hinge and least squares.

Each is a ganzoo loss term (see ganzoo.LossContext): `discriminator_loss(ctx)` and/or
`generator_loss(ctx)` return a scalar; the engine multiplies it by the recipe's `weight`.
Scores are the critic's raw outputs, shape (N,).
"""

from __future__ import annotations

import ganzoo
import torch
import torch.nn.functional as F
from ganzoo import checks


class Wasserstein:
    """Wasserstein GAN loss (Arjovsky et al. 2017): D: E[D(fake)] - E[D(real)], G: -E[D(fake)].

    The critic's outputs are unbounded scores, not probabilities. On its own the critic is not
    Lipschitz: pair it with `weight_clip` (WGAN) or `gradient_penalty` (WGAN-GP), and
    optionally `drift` (ProGAN).
    """

    def discriminator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return ctx.fake_scores.mean() - ctx.real_scores.mean()

    def generator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return -ctx.fake_scores.mean()


class Drift:
    """Drift penalty (Karras et al. 2018, appendix A.1): epsilon * E[D(real)^2].

    Keeps the Wasserstein critic's scores from drifting far from zero; ProGAN uses
    epsilon = 0.001 alongside the WGAN-GP loss. Discriminator only. The recipe's `weight`
    multiplies on top of `epsilon`.
    """

    def __init__(self, epsilon: float = 0.001):
        self.epsilon = float(checks.at_least(epsilon, 0.0, "drift: epsilon"))

    def discriminator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return self.epsilon * ctx.real_scores.float().square().mean()


class Hinge:
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D: E[ReLU(1 - D(real))] + E[ReLU(1 + D(fake))].

    G: -E[D(fake)] (the generator loss of Miyato et al. 2018). The critic's outputs are
    unbounded scores.
    """

    def discriminator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return F.relu(1.0 - ctx.real_scores).mean() + F.relu(1.0 + ctx.fake_scores).mean()

    def generator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return -ctx.fake_scores.mean()


class LeastSquares:
    """Least-squares GAN loss (Mao et al. 2017): D pulls reals to b, fakes to a; G pulls fakes to c.

    D: 0.5 * E[(D(real) - b)^2] + 0.5 * E[(D(fake) - a)^2];  G: 0.5 * E[(D(fake) - c)^2].
    Defaults a = 0, b = 1, c = 1: the paper's 0-1 coding (section 3.2.2). Its other choice,
    a = -1, b = 1, c = 0, makes G minimize the Pearson chi-squared divergence.
    """

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0):
        self.a = float(checks.finite(a, "least_squares: a"))
        self.b = float(checks.finite(b, "least_squares: b"))
        self.c = float(checks.finite(c, "least_squares: c"))
        if self.a == self.b:
            raise ganzoo.UserError(f"least_squares: a (fake target) and b (real target) must "
                                   f"differ, both are {self.a:g}")

    def discriminator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return (0.5 * (ctx.real_scores - self.b).square().mean()
                + 0.5 * (ctx.fake_scores - self.a).square().mean())

    def generator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return 0.5 * (ctx.fake_scores - self.c).square().mean()
