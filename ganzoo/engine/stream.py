"""The order in which real images are shown: deterministic, resumable, sharded across ranks.

The whole order is a pure function of (seed, epoch): each epoch is a fresh permutation, and
mirroring is decided per (epoch, position). The cursor (epoch, position) is all the state there
is, so a checkpoint stores two integers and a resumed run sees exactly the images it would have.
Each rank takes its share of every global batch.
"""

from __future__ import annotations

import attrs
import torch
from torch.utils.data import DataLoader, Dataset


@attrs.define
class Cursor:
    epoch: int = 0
    position: int = 0


class BatchOrder:
    def __init__(self, size: int, seed: int, mirror: bool):
        self.size, self.seed, self.mirror = size, seed, mirror
        self._epoch_cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def _epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.size, generator=g)
            flips = torch.rand(self.size, generator=g) < 0.5 if self.mirror else torch.zeros(
                self.size, dtype=torch.bool)
            self._epoch_cache = (epoch, order, flips)
        return self._epoch_cache[1], self._epoch_cache[2]

    def take(self, cursor: Cursor, batch_size: int) -> list[tuple[int, bool]]:
        """The next global batch from `cursor`, advancing it in place."""
        items: list[tuple[int, bool]] = []
        while len(items) < batch_size:
            order, flips = self._epoch(cursor.epoch)
            stop = min(self.size, cursor.position + batch_size - len(items))
            items += zip(order[cursor.position:stop].tolist(), flips[cursor.position:stop].tolist())
            cursor.position = stop
            if cursor.position == self.size:
                cursor.epoch, cursor.position = cursor.epoch + 1, 0
        return items


class Mirrored(Dataset):
    """Items addressed as (index, flip): flips the image horizontally when asked."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        index, flip = item
        image, labels = self.dataset[index]
        return (image.flip(-1) if flip else image), labels


class _BatchPlan:
    """An endless batch sampler: this rank's share of each global batch, from a copy of the cursor."""

    def __init__(self, order: BatchOrder, cursor: Cursor, batch_size: int, rank: int, world: int):
        self.order, self.cursor = order, attrs.evolve(cursor)
        self.batch_size, self.rank, self.world = batch_size, rank, world

    def __iter__(self):
        while True:
            yield self.order.take(self.cursor, self.batch_size)[self.rank::self.world]


class RealStream:
    """Batches of real images at the current resolution, as uint8 (N, 3, R, R) and labels."""

    def __init__(self, dataset, *, seed: int, mirror: bool, workers: int, rank: int = 0,
                 world: int = 1, pin_memory: bool = False):
        self.dataset = dataset
        self.order = BatchOrder(len(dataset), seed, mirror)
        self.cursor = Cursor()
        self.workers, self.rank, self.world, self.pin_memory = workers, rank, world, pin_memory
        self._iterator = None
        self._config: tuple[int, int] | None = None

    def configure(self, resolution: int, batch_size: int) -> None:
        """Start (or restart) loading at a resolution and global batch size."""
        if batch_size % self.world:
            raise ValueError(f"batch size {batch_size} is not divisible by {self.world} processes")
        if self._config == (resolution, batch_size):
            return
        self._config = (resolution, batch_size)
        view = Mirrored(self.dataset.at_resolution(resolution))
        plan = _BatchPlan(self.order, self.cursor, batch_size, self.rank, self.world)
        # The loader's own generator keeps worker seeding off the global RNG, which training uses.
        loader = DataLoader(view, batch_sampler=plan, num_workers=self.workers,
                            generator=torch.Generator().manual_seed(self.order.seed),
                            pin_memory=self.pin_memory, persistent_workers=False,
                            prefetch_factor=4 if self.workers else None)
        self._iterator = iter(loader)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = next(self._iterator)
        # The loader may prefetch ahead; the cursor advances only for what is consumed.
        self.order.take(self.cursor, self._config[1])
        return batch

    def restart(self) -> None:
        """Rebuild the loader from the cursor (after the cursor was restored from a checkpoint)."""
        config, self._config = self._config, None
        if config is not None:
            self.configure(*config)


def preview_items(dataset, recipe, n: int, resolution: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` real images of the run exactly as D sees them (same order, mirroring and
    size; uint8, N x 3 x R x R) and their labels, drawn apart from training state."""
    order = BatchOrder(len(dataset), recipe.run.seed, recipe.data.mirror)
    view = Mirrored(dataset.at_resolution(resolution or dataset.resolution))
    items = [view[item] for item in order.take(Cursor(), n)]
    return torch.stack([x for x, _ in items]), torch.stack([c for _, c in items])


def preview_batch(dataset, recipe, n: int, resolution: int | None = None) -> torch.Tensor:
    return preview_items(dataset, recipe, n, resolution)[0]
