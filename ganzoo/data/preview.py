"""The real images exactly as a recipe feeds them to D: same order, same mirroring, same size."""

from __future__ import annotations

import torch

from ganzoo.engine.stream import BatchOrder, Cursor, Mirrored


def preview_batch(dataset, recipe, n: int, resolution: int | None = None) -> torch.Tensor:
    """The first `n` real images of the run (uint8, N x 3 x R x R), drawn apart from training state."""
    order = BatchOrder(len(dataset), recipe.run.seed, recipe.data.mirror)
    view = Mirrored(dataset.at_resolution(resolution or dataset.resolution))
    return torch.stack([view[item][0] for item in order.take(Cursor(), n)])
