"""The real images exactly as a recipe feeds them to D: same order, same mirroring, same size."""

from __future__ import annotations

import torch

from ganzoo.engine.stream import BatchOrder, Cursor, Mirrored


def preview_items(dataset, recipe, n: int, resolution: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` real images of the run (uint8, N x 3 x R x R) and their labels, drawn apart
    from training state."""
    order = BatchOrder(len(dataset), recipe.run.seed, recipe.data.mirror)
    view = Mirrored(dataset.at_resolution(resolution or dataset.resolution))
    items = [view[item] for item in order.take(Cursor(), n)]
    return torch.stack([x for x, _ in items]), torch.stack([c for _, c in items])


def preview_batch(dataset, recipe, n: int, resolution: int | None = None) -> torch.Tensor:
    return preview_items(dataset, recipe, n, resolution)[0]
