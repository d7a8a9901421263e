"""LossContext: what a loss term sees of one training step."""

from __future__ import annotations

from typing import Callable

import torch

from ganzoo.model import split_critic_output

CriticFn = Callable[..., object]


class LossContext:
    """Images and critic outputs of one D or G step, computed lazily and at most once.

    `real`, `fake`: images at the current resolution (for a D step `fake` is detached).
    `real_scores`, `fake_scores`: critic outputs, shape (N,).
    `critic(images)`: calls D at the current growth stage (for penalties); returns scores.
    Conditional families add `real_labels`, `target_labels` and the class logits of the
    auxiliary head (`real_class_logits`, `fake_class_logits`); they are None otherwise.
    `phase` is "discriminator" or "generator". `resolution` is the networks' current size and
    `target_resolution` the run's final one (equal without a growth schedule).
    """

    def __init__(self, *, real: torch.Tensor, fake: torch.Tensor, discriminator: CriticFn,
                 phase: str, real_labels: torch.Tensor | None = None,
                 target_labels: torch.Tensor | None = None, generator: CriticFn | None = None,
                 resolution: int | None = None, target_resolution: int | None = None,
                 extras: dict | None = None):
        self.real, self.fake, self.phase = real, fake, phase
        self.resolution = resolution or real.shape[-1]
        self.target_resolution = target_resolution or self.resolution
        self.real_labels, self.target_labels = real_labels, target_labels
        self.generator = generator
        self.extras = extras or {}
        self._discriminator = discriminator
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def critic_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return split_critic_output(self._discriminator(images))

    def critic(self, images: torch.Tensor) -> torch.Tensor:
        return self.critic_outputs(images)[0]

    def _outputs(self, which: str):
        if which not in self._cache:
            self._cache[which] = self.critic_outputs(self.real if which == "real" else self.fake)
        return self._cache[which]

    @property
    def real_scores(self) -> torch.Tensor:
        return self._outputs("real")[0]

    @property
    def fake_scores(self) -> torch.Tensor:
        return self._outputs("fake")[0]

    @property
    def real_class_logits(self) -> torch.Tensor | None:
        return self._outputs("real")[1]

    @property
    def fake_class_logits(self) -> torch.Tensor | None:
        return self._outputs("fake")[1]
