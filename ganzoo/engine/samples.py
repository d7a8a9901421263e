"""Sample grids: fixed inputs for the whole run, and the grid layouts for both kinds of family."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from ganzoo.engine.images import make_grid, to_uint8
from ganzoo.model import GANModel, single_attribute_targets

TRANSLATION_ROWS = 16  # translation grids show this many inputs, each with every attribute change


def fixed_sample_inputs(model: GANModel, dataset, recipe) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (or real images, for translating families) and labels, drawn apart from training RNG."""
    from ganzoo.data.preview import preview_items

    n = recipe.train.sample_grid
    if model.translates:  # the run's first real images, each with its own labels
        images, labels = preview_items(dataset, recipe, min(n, TRANSLATION_ROWS))
        return images.float() / 127.5 - 1, labels
    inputs = model.sample_latents(n, generator=torch.Generator().manual_seed(recipe.run.seed + 12345))
    labels = torch.stack([dataset[i % len(dataset)][1] for i in range(n)])
    return inputs, labels


@torch.no_grad()
def generate(generator, inputs: torch.Tensor, labels: torch.Tensor, device, batch: int = 64,
             autocast=None) -> torch.Tensor:
    """G's float images on the CPU, computed `batch` inputs at a time."""
    out = []
    for x, c in zip(inputs.split(batch), labels.split(batch)):
        with autocast if autocast is not None else nullcontext():
            out.append(generator(x.to(device), c.to(device)).float().cpu())
    return torch.cat(out)


def translation_grid(generator, images: torch.Tensor, labels: torch.Tensor, names: list[str],
                     groups: list[list[str]], device, autocast=None) -> np.ndarray:
    """Rows: one input each. Columns: the input, then its translation for every attribute change."""
    columns = [images.float().cpu()]
    for _, target in single_attribute_targets(labels, names, groups):
        columns.append(generate(generator, images, target, device, autocast=autocast))
    stacked = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: image, its translations, ...
    return make_grid(to_uint8(stacked), columns=len(columns))


def sample_grid(model: GANModel, generator, inputs, labels, dataset, device, autocast=None) -> np.ndarray:
    if model.translates:
        return translation_grid(generator, inputs, labels, list(dataset.attribute_names),
                                list(getattr(dataset, "attribute_groups", [])), device, autocast)
    return make_grid(to_uint8(generate(generator, inputs, labels, device, autocast=autocast)))
