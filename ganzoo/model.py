"""What a model family builds, and the conventions the engine relies on.

A family is registered under a name (hook `ganzoo_register_models`) as a callable taking its
own [model] table as keyword arguments plus three the engine supplies:
`resolution` (the target image size), `channels` (3) and `label_dim` (0 when unconditional).
It returns a GANModel.

- `generator(z, labels=None)` returns images in [-1, 1] at the current resolution; a family
  that translates images (StarGAN) sets `translates=True` and its generator takes
  `(images, target_labels)` instead of latents.
- `discriminator(images, labels=None)` returns scores of shape (N,), or a tuple
  (scores, class_logits) when it has an auxiliary classification head.
- A network that grows implements `set_growth(resolution: int, alpha: float)`; the engine calls
  it whenever the growth schedule moves. Fixed-size networks need not implement it.
"""

from __future__ import annotations

import inspect

import attrs
import torch
from torch import nn


@attrs.define
class GANModel:
    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int = 0
    translates: bool = False  # G maps (real images, target labels) to images
    prior: str = attrs.field(default="normal", validator=attrs.validators.in_(("normal", "uniform")))

    def sample_latents(self, n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> torch.Tensor:
        """z ~ N(0, I), or U(-1, 1) for families that sample a uniform prior (DCGAN)."""
        if self.prior == "uniform":
            return torch.rand(n, self.latent_dim, generator=generator, device=device) * 2 - 1
        return torch.randn(n, self.latent_dim, generator=generator, device=device)


def apply_attributes(labels: torch.Tensor, names: list[str], requested: dict[str, float],
                     groups: list[list[str]] = ()) -> torch.Tensor:
    """Labels with the requested attributes set; setting one attribute of an exclusive group
    (e.g. hair colours) to 1 clears the others of that group."""
    labels = labels.clone()
    for name, value in requested.items():
        if name not in names:
            from ganzoo.errors import UserError
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
    from ganzoo.plugins import registry

    cls = registry("normalizers").get(name)
    params = list(inspect.signature(cls).parameters.values())
    if params and params[0].name in ("num_features", "num_channels", "channels"):
        return cls(num_features)
    return cls()
