"""Building a run's components from a recipe. Each component receives only its own table,
structured by its constructor's annotations (`ganzoo.structure.construct`)."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from ganzoo.errors import UserError
from ganzoo.model import GANModel
from ganzoo.recipe import DataConfig, LossConfig, OptimizerConfig, Recipe
from ganzoo.structure import construct


def build_dataset(config: DataConfig):
    try:
        return construct("datasets", config.dataset, config.params, "[data]")
    except UserError as exc:
        if config.hint:  # the recipe says how to obtain its data
            raise UserError(f"{exc}. {config.hint}") from None
        raise


def build_model(recipe: Recipe, label_dim: int) -> GANModel:
    return build_family(recipe.model.name, recipe.model.params, recipe.data.resolution, label_dim)


def build_family(name: str, params: dict, resolution: int, label_dim: int) -> GANModel:
    """A registered model family from its [model] table and the engine-supplied sizes."""
    model = construct("models", name, params, "[model]", resolution=resolution, channels=3,
                      label_dim=label_dim)
    if not isinstance(model, GANModel):
        raise UserError(f"model family '{name}' did not return a ganzoo.GANModel")
    return model


@attrs.frozen
class LossTerm:
    """One [[losses]] entry as the engine uses it: the plugin's loss object, whichever of the
    contract's methods it has (a missing one contributes nothing)."""

    name: str  # the name logged: the loss name, made unique when a recipe repeats one
    weight: float
    loss: Any  # the registered loss, built from its table

    def discriminator_loss(self, ctx):
        fn = getattr(self.loss, "discriminator_loss", None)
        return fn(ctx) if fn is not None else None

    def generator_loss(self, ctx):
        fn = getattr(self.loss, "generator_loss", None)
        return fn(ctx) if fn is not None else None

    def after_discriminator_step(self, discriminator) -> None:
        hook = getattr(self.loss, "after_discriminator_step", None)
        if hook is not None:
            hook(discriminator)


def build_losses(configs: list[LossConfig]) -> list[LossTerm]:
    terms, seen = [], {}
    for index, config in enumerate(configs):
        term = construct("losses", config.name, config.params, f"[[losses]] #{index + 1}")
        if not (hasattr(term, "discriminator_loss") or hasattr(term, "generator_loss")):
            raise UserError(f"loss '{config.name}' has neither discriminator_loss nor generator_loss")
        seen[config.name] = seen.get(config.name, 0) + 1
        label = config.name if seen[config.name] == 1 else f"{config.name}_{seen[config.name]}"
        terms.append(LossTerm(label, config.weight, term))
    return terms


def build_schedule(recipe: Recipe):
    return construct("schedules", recipe.schedule.name, recipe.schedule.params, "[schedule]",
                     resolution=recipe.data.resolution, train_batch_size=recipe.train.batch_size)


def build_optimizer(config: OptimizerConfig, params) -> torch.optim.Optimizer:
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=config.betas, eps=config.eps,
                                weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, betas=config.betas, eps=config.eps,
                                 weight_decay=config.weight_decay)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, alpha=config.alpha, eps=config.eps,
                                   momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device = 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
