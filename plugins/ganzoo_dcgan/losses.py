"""The original GAN losses on critic logits: minimax BCE and the non-saturating variant."""

from __future__ import annotations

import ganzoo
import torch
import torch.nn.functional as F
from ganzoo import checks


class _SigmoidCrossEntropy:
    """Shared D loss: binary cross-entropy of D's logits, real -> 1 (or 1 - smoothing), fake -> 0."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = float(checks.in_range(
            label_smoothing, 0.0, 1.0, f"{type(self).__name__}: label_smoothing", high_open=True))

    def discriminator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        # BCE with target t is t*softplus(-x) + (1-t)*softplus(x); smoothing only the real
        # target is one-sided label smoothing (Salimans et al. 2016): fakes keep target 0.
        t = 1.0 - self.label_smoothing
        real = F.softplus(-ctx.real_scores)
        if self.label_smoothing:
            real = t * real + (1.0 - t) * F.softplus(ctx.real_scores)
        return real.mean() + F.softplus(ctx.fake_scores).mean()


class MinimaxBCE(_SigmoidCrossEntropy):
    """Minimax GAN loss (Goodfellow et al. 2014): G minimizes log(1 - D(G(z))).

    Saturates when D rejects fakes confidently (gradient ~ sigmoid(score) -> 0); kept for
    fidelity to the original objective. `label_smoothing` softens D's real target.
    """

    def generator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return -F.softplus(ctx.fake_scores).mean()  # log(1 - sigmoid(x)) == -softplus(x)


class NonSaturating(_SigmoidCrossEntropy):
    """Non-saturating GAN loss (Goodfellow et al. 2014): G maximizes log D(G(z)).

    Same D loss as `bce`; G's gradient stays strong exactly where the minimax one vanishes.
    `label_smoothing` softens D's real target.
    """

    def generator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return F.softplus(-ctx.fake_scores).mean()  # -log(sigmoid(x)) == softplus(-x)
