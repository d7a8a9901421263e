"""Exponential moving average of the generator's weights (Karras et al. 2018, appendix A.1)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ramped_beta(beta: float, rampup: float, images_since_phase: int, batch_size: int) -> float:
    """The EMA decay for one step. With rampup > 0 the average's half-life, in images, is at most
    rampup x the images shown since the schedule's current phase began (a fade, a stable stage;
    the run's start for a schedule without phases); `beta` caps it. StyleGAN2's ema_rampup
    (Karras et al. 2020, official code: 0.05 of the run), here restarted with every phase: a fade
    moves G's new layers away from their init faster than a long average follows, and averaging
    across the fade's end mixes in weights tuned for a blend the stable stage no longer draws."""
    if rampup <= 0.0 or beta == 0.0:
        return beta
    half_life = rampup * max(images_since_phase, batch_size)
    return min(beta, 0.5 ** (batch_size / half_life))


def mean_beta(beta: float, images_since_start: int, batch_size: int) -> float:
    """The decay for one step once [ema] mean_from_kimg is reached: from there on the average
    weighs every G step equally, a running mean (Polyak & Juditsky 1992) seeded with the EMA
    counted as the 1 / (1 - beta) steps it spans. After n steps the newest weighs 1 / (1/(1 -
    beta) + n): never more than under beta, so the switch is smooth. Late in a run G's lr is
    low and its steps stay in one basin, where the average of many of them beats any one (a
    short EMA ends on whichever point of G's wandering the last few hundred steps chose)."""
    if images_since_start <= 0:
        return beta
    seed = batch_size / (1.0 - beta)  # the images the EMA's average spans
    return 1.0 - batch_size / (seed + images_since_start)  # > beta for any later image


class EMA:
    def __init__(self, generator: nn.Module):
        self.model = copy.deepcopy(generator).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: nn.Module, beta: float) -> None:
        """One step of the average with decay `beta` (ramped_beta's; 0 copies G)."""
        params = list(generator.parameters())
        ema_params = list(self.model.parameters())
        if beta == 0.0:
            torch._foreach_copy_(ema_params, params)
        else:
            # ema <- beta * ema + (1 - beta) * current
            torch._foreach_lerp_(ema_params, params, 1.0 - beta)
        for ema_buffer, buffer in zip(self.model.buffers(), generator.buffers()):
            ema_buffer.copy_(buffer)  # BatchNorm statistics are copied, not averaged
