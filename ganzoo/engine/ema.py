"""Exponential moving average of the generator's weights (Karras et al. 2018, appendix A.1)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, generator: nn.Module, beta: float):
        self.beta = beta
        self.model = copy.deepcopy(generator).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        params = list(generator.parameters())
        ema_params = list(self.model.parameters())
        if self.beta == 0.0:
            torch._foreach_copy_(ema_params, params)
        else:
            # ema <- beta * ema + (1 - beta) * current
            torch._foreach_lerp_(ema_params, params, 1.0 - self.beta)
        for ema_buffer, buffer in zip(self.model.buffers(), generator.buffers()):
            ema_buffer.copy_(buffer)  # BatchNorm statistics are copied, not averaged
