"""What a model family builds, and the conventions the engine relies on.

A family is registered under a name (hook `ganzoo_register_models`) as a callable taking its
own [model] table as keyword arguments plus three the engine supplies:
`resolution` (the target image size), `channels` (3) and `label_dim` (0 when unconditional).
It returns a GANModel (or a subclass that changes what G is fed: see `make_inputs`).

- `generator(inputs, labels)` returns images in [-1, 1] at the current resolution; by default
  its inputs are latents (`sample_latents`).
- `discriminator(images, labels=None)` returns scores of shape (N,), or a tuple
  (scores, class_logits) when it has an auxiliary classification head.
- A network that grows implements `set_growth(resolution: int, alpha: float)`; the engine calls
  it whenever the growth schedule moves. Fixed-size networks need not implement it.

The engine asks the model, never a family name, what to feed G: `make_inputs` in training,
`grid_inputs` and `sample_grid` for the run's sample grids, `eval_inputs` for metrics. A family
whose G takes something else (StarGAN translates real images) overrides these four.
"""

from __future__ import annotations

import inspect
from contextlib import nullcontext
from typing import Iterator

import attrs
import numpy as np
import torch
from torch import nn

from ganzoo.errors import UserError
from ganzoo.images import make_grid, to_uint8
from ganzoo.plugins import registry


@attrs.define
class GANModel:
    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int = 0
    prior: str = attrs.field(default="normal", validator=attrs.validators.in_(("normal", "uniform")))
    conditional: bool = False  # G takes the labels it is given into account
    translates = False  # True for families whose G maps (real images, target labels) to images

    def sample_latents(self, n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> torch.Tensor:
        """z ~ N(0, I), or U(-1, 1) for families that sample a uniform prior (DCGAN)."""
        if self.prior == "uniform":
            return torch.rand(n, self.latent_dim, generator=generator, device=device) * 2 - 1
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def check_batch_size(self, n: int) -> None:
        """Raise ValueError when D cannot take batches of n (e.g. minibatch-stddev groups):
        every module of D with a `check_batch_size(n)` is asked."""
        for module in self.discriminator.modules():
            check = getattr(module, "check_batch_size", None)
            if check is not None and module is not self.discriminator:
                check(n)

    def make_inputs(self, real: torch.Tensor, labels: torch.Tensor, target: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """G's inputs for one training step and the labels it is asked for: fresh latents, and
        `target`, or when None the batch's own labels shuffled (StarGAN, section 4)."""
        if target is None:
            target = shuffled(labels)
        return self.sample_latents(real.shape[0], device=real.device), target

    def grid_inputs(self, n: int, *, seed: int, dataset, first_reals) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed inputs of the run's sample grids, drawn apart from the training RNG.
        `first_reals(k)` gives the run's first k real images (uint8) and their labels."""
        latents = self.sample_latents(n, generator=torch.Generator().manual_seed(seed + 12345))
        return latents, torch.stack([dataset[i % len(dataset)][1] for i in range(n)])

    def sample_grid(self, generator: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *,
                    dataset, device, autocast=None) -> np.ndarray:
        """One sample grid (H, W, 3 uint8) from the fixed inputs."""
        return make_grid(to_uint8(generate(generator, inputs, labels, device, autocast=autocast)))

    def eval_inputs(self, ctx, n: int, labels: torch.Tensor | None, offset: int
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) batches of n images for metrics: latents of `ctx.sample(n, offset)`;
        a conditional model gets `labels` (real labels, cycled, as the official evaluation feeds
        them), else zeros."""
        latents = self.sample_latents(n, generator=ctx.generator_rng(offset))
        label_dim = len(ctx.attribute_names)
        if label_dim and labels is not None and len(labels):
            labels = labels.repeat((n + len(labels) - 1) // len(labels), 1)[:n]
        else:
            labels = torch.zeros(n, label_dim)
        for start in range(0, n, ctx.batch_size):
            stop = min(start + ctx.batch_size, n)
            yield latents[start:stop], labels[start:stop]


def shuffled(labels: torch.Tensor) -> torch.Tensor:
    """Target labels drawn by shuffling a batch's own labels."""
    if labels.numel() == 0:
        return labels
    return labels[torch.randperm(labels.shape[0], device=labels.device)]


@torch.no_grad()
def generate(generator, inputs: torch.Tensor, labels: torch.Tensor, device, batch: int = 64,
             autocast=None) -> torch.Tensor:
    """G's float images on the CPU, computed `batch` inputs at a time."""
    out = []
    for x, c in zip(inputs.split(batch), labels.split(batch)):
        with autocast if autocast is not None else nullcontext():
            out.append(generator(x.to(device), c.to(device)).float().cpu())
    return torch.cat(out)


def parse_attributes(pairs: list[str]) -> dict[str, float]:
    """`name=1` / `name=0` pairs from the command line."""
    requested = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or value.strip() not in ("0", "1"):
            raise UserError(f"attribute setting {pair!r} must look like name=0 or name=1")
        requested[name.strip()] = float(value)
    return requested


def apply_attributes(labels: torch.Tensor, names: list[str], requested: dict[str, float],
                     groups: list[list[str]] = ()) -> torch.Tensor:
    """Labels with the requested attributes set; setting one attribute of an exclusive group
    (e.g. hair colours) to 1 clears the others of that group."""
    labels = labels.clone()
    for name, value in requested.items():
        if name not in names:
            raise UserError(f"unknown attribute {name!r}; this model knows: {', '.join(names) or 'none'}")
        if value:
            for group in groups:
                if name in group:
                    for other in group:
                        labels[:, names.index(other)] = 0.0
        labels[:, names.index(name)] = float(value)
    return labels


def single_attribute_targets(labels: torch.Tensor, names: list[str],
                             groups: list[list[str]] = ()) -> list[tuple[str, torch.Tensor]]:
    """One target per attribute: members of an exclusive group are switched on (the others of the
    group off), every other attribute is flipped — StarGAN's test-time translations."""
    grouped = {name for group in groups for name in group}
    targets = []
    for i, name in enumerate(names):
        if name in grouped:
            targets.append((name, apply_attributes(labels, names, {name: 1.0}, groups)))
        else:
            flipped = labels.clone()
            flipped[:, i] = 1.0 - flipped[:, i]
            targets.append((name, flipped))
    return targets


def split_critic_output(output) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(scores, class_logits) from whatever the discriminator returned; scores flattened to (N,)."""
    if isinstance(output, (tuple, list)):
        scores, logits = output
    else:
        scores, logits = output, None
    return scores.reshape(scores.shape[0]), logits


def set_growth(module: nn.Module, resolution: int, alpha: float) -> None:
    """Tell a (possibly wrapped) network where growth stands; a no-op for fixed-size networks."""
    target = getattr(module, "module", module)  # DistributedDataParallel / compiled wrappers
    target = getattr(target, "_orig_mod", target)
    if hasattr(target, "set_growth"):
        target.set_growth(resolution, alpha)


def make_normalizer(name: str, num_features: int) -> nn.Module:
    """Build a registered normalizer by name for a layer of `num_features` channels.

    Normalizers that need the channel count take `num_features` as their first parameter
    (BatchNorm-style); the others (pixelnorm) are built with their defaults.
    """
    cls = registry("normalizers").get(name)
    params = list(inspect.signature(cls).parameters.values())
    if params and params[0].name in ("num_features", "num_channels", "channels"):
        return cls(num_features)
    return cls()
