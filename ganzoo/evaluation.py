"""Evaluation metrics: what a registered metric receives and returns.

A metric is registered (hook `ganzoo_register_metrics`) as a class built from its own table
(`[eval.<name>]` in a recipe, or defaults from `ganzoo eval`). Calling it with an EvalContext
returns a flat dict of named floats, e.g. `{"avg": 12.3}`, which `run_metrics` logs as
`swd/avg`. Metrics draw random numbers only through the context (`generator_rng`,
`real_images`, `fake_uint8_batches`), so evaluation never disturbs training.
"""

from __future__ import annotations

from typing import Iterator

import attrs
import torch
from torch import nn
from torch.nn import functional as F

from ganzoo.images import to_uint8
from ganzoo.model import GANModel, generate
from ganzoo.structure import construct


@attrs.define
class EvalContext:
    model: GANModel
    generator: nn.Module  # G-EMA in eval mode, at the evaluated growth stage
    discriminator: nn.Module | None
    dataset: object  # the run's dataset (ganzoo.ImageDataset), full resolution
    # The size images are evaluated at: the dataset's. A growing generator's smaller output is
    # upscaled to it (nearest), as the official ProGAN G's output is, so a run's numbers form one
    # comparable curve from 4x4 on (and metrics with a minimum size can run at every stage).
    resolution: int
    device: torch.device
    num_images: int
    seed: int = 0
    batch_size: int = 64
    mirror: bool = False  # the recipe's [data] mirror: metrics comparing with reals may flip them alike

    @property
    def attribute_names(self) -> list[str]:
        return list(self.dataset.attribute_names)

    @property
    def attribute_groups(self) -> list[list[str]]:
        return [list(g) for g in getattr(self.dataset, "attribute_groups", [])]

    def generator_rng(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 7919 + offset)

    def real_images(self, n: int | None = None, offset: int = 0
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches (uint8 images at `resolution`, labels) of n real images in a seeded order."""
        n = min(n or self.num_images, len(self.dataset))
        view = self.dataset.at_resolution(self.resolution)
        order = torch.randperm(len(self.dataset), generator=self.generator_rng(offset + 1))[:n]
        for chunk in order.split(self.batch_size):
            items = [view[i] for i in chunk.tolist()]
            yield torch.stack([x for x, _ in items]), torch.stack([c for _, c in items])

    def real_uint8_batches(self, n: int, labels_out: list | None = None,
                           offset: int = 0) -> Iterator[torch.Tensor]:
        """uint8 real images (`real_images`), optionally collecting their labels."""
        for images, labels in self.real_images(n, offset=offset):
            if labels_out is not None:
                labels_out.append(labels)
            yield images

    def fake_uint8_batches(self, n: int, labels: torch.Tensor | None = None,
                           offset: int = 0) -> Iterator[torch.Tensor]:
        """n generated images as uint8, a batch at a time, from the inputs the model family
        chooses (`GANModel.eval_inputs`): seeded latents with `labels` cycled by default."""
        for inputs, targets in self.model.eval_inputs(self, n, labels, offset):
            yield to_uint8(self.generate(inputs, targets))

    @torch.no_grad()
    def generate(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Float images in [-1, 1] from generator inputs, on the CPU."""
        if labels is None:
            labels = torch.zeros(inputs.shape[0], len(self.attribute_names))
        images = generate(self.generator, inputs, labels, self.device, self.batch_size)
        if images.shape[-1] < self.resolution:
            images = F.interpolate(images, scale_factor=self.resolution // images.shape[-1], mode="nearest")
        return images

    def sample(self, n: int, labels: torch.Tensor | None = None, offset: int = 0) -> torch.Tensor:
        """n generated images from seeded latents."""
        latents = self.model.sample_latents(n, generator=self.generator_rng(offset))
        return self.generate(latents, labels)


def run_metrics(ctx: EvalContext, names: list[str], tables: dict[str, dict]) -> dict[str, float]:
    """Every named metric, built from its own table, with results prefixed by the metric's name."""
    results: dict[str, float] = {}
    for name in names:
        metric = construct("metrics", name, tables.get(name, {}), f"[eval.{name}]")
        for key, value in metric(ctx).items():
            results[f"{name}/{key}"] = float(value)
    return results
