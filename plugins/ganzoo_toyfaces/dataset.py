"""`toyfaces`: procedurally drawn cartoon faces with CelebA-style binary attributes; no download.

The pixels come from `drawing` (byte-identical on every machine). All images of a dataset are
drawn once, into an .npy under $GANZOO_CACHE/toyfaces/ (default ~/.cache/ganzoo) written
atomically and read with mmap; an unwritable cache keeps them in memory instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

import ganzoo
from ganzoo_toyfaces import drawing
from ganzoo_toyfaces.drawing import ATTRIBUTES, HAIR_COLOURS, RENDER_VERSION

__all__ = ["ATTRIBUTES", "HAIR_COLOURS", "RENDER_VERSION", "ToyFaces"]

MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024


def _resolution(value) -> int:
    return ganzoo.checks.power_of_two(value, "toyfaces: resolution", MIN_RESOLUTION, MAX_RESOLUTION)


class ToyFaces(ganzoo.ImageDataset):
    """`size` cartoon faces at `resolution`, labelled with `attributes` (default: all seven)."""

    in_memory = True  # one cached array: DataLoader workers would only add overhead

    def __init__(self, resolution: int = 32, size: int = 10000, seed: int = 0,
                 attributes: list[str] | None = None):
        self.resolution = _resolution(resolution)
        self.size = ganzoo.checks.count(size, "toyfaces: size")
        self.seed = ganzoo.checks.count(seed, "toyfaces: seed", minimum=0)
        if attributes is None:
            attributes = list(ATTRIBUTES)
        if isinstance(attributes, str) or not isinstance(attributes, (list, tuple)):
            raise ganzoo.UserError(f"toyfaces: attributes must be a list of names, got {attributes!r}")
        for name in attributes:
            ganzoo.checks.one_of(name, ATTRIBUTES, "toyfaces: an attribute name")
        if len(set(attributes)) != len(attributes):
            raise ganzoo.UserError(f"toyfaces: attributes lists a name twice: {list(attributes)}")
        self.attribute_names = list(attributes)
        hair = [name for name in attributes if name in HAIR_COLOURS]
        self.attribute_groups = [hair] if len(hair) > 1 else []
        self._images: np.ndarray | None = None
        self._labels: torch.Tensor | None = None
        self._lower: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.size

    @property
    def cache_path(self) -> Path:
        name = f"v{RENDER_VERSION}-seed{self.seed}-n{self.size}-r{self.resolution}.npy"
        return ganzoo.files.cache_dir() / "toyfaces" / name

    @property
    def images(self) -> np.ndarray:
        """uint8 (size, 3, R, R): every image, drawn (or read from the disk cache) on first use."""
        if self._images is None:
            self._images = self._load_or_draw()
        return self._images

    @property
    def labels(self) -> torch.Tensor:
        """float32 (size, label_dim) 0/1 labels in `attribute_names` order."""
        if self._labels is None:
            rows = drawing.attribute_rows(self.seed, range(self.size))
            cols = [ATTRIBUTES.index(n) for n in self.attribute_names]
            self._labels = torch.from_numpy(rows[:, cols].astype(np.float32))
        return self._labels

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.array(self.images[index])), self.labels[index].clone()

    def load_at(self, index: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        if resolution == self.resolution:
            return self.load(index)
        if resolution not in self._lower:  # 2x2 box-filter everything once per resolution
            if resolution < 1 or resolution > self.resolution or self.resolution % resolution:
                raise ValueError(f"cannot view a {self.resolution}px dataset at {resolution}px")
            step = max(1, 2**20 // self.resolution**2)
            self._lower[resolution] = torch.from_numpy(np.concatenate(
                [drawing.box_down(self.images[i:i + step], resolution)
                 for i in range(0, self.size, step)]))
        return self._lower[resolution][index].clone(), self.labels[index].clone()

    def identity_attributes(self, index: int) -> dict[str, int]:
        """The attributes identity `index` is drawn with (any index >= 0, not only < size)."""
        row = drawing.attribute_rows(self.seed, [self._index(index)])[0]
        return {name: int(v) for name, v in zip(ATTRIBUTES, row)}

    def render(self, index: int, attributes: dict[str, int] | None = None,
               resolution: int | None = None) -> np.ndarray:
        """uint8 (H, W, 3): identity `index` drawn with `attributes` (missing ones: its own).

        Naming any hair colour replaces the whole hair choice (unnamed ones count as 0), so
        {"blond_hair": 1} suffices to make a face blond.
        """
        res = self.resolution if resolution is None else _resolution(resolution)
        index = self._index(index)
        attrs = self.identity_attributes(index)
        given = dict(attributes or {})
        for name, value in given.items():
            ganzoo.checks.one_of(name, ATTRIBUTES, "toyfaces: an attribute name")
            ganzoo.checks.one_of(value, (0, 1), f"toyfaces: attribute {name}")
        if any(name in given for name in HAIR_COLOURS):
            attrs.update({name: 0 for name in HAIR_COLOURS})
        attrs.update({name: int(value) for name, value in given.items()})
        if sum(attrs[name] for name in HAIR_COLOURS) != 1:
            raise ganzoo.UserError(f"toyfaces: exactly one of {', '.join(HAIR_COLOURS)} must be 1, "
                                   f"got { {n: attrs[n] for n in HAIR_COLOURS} }")
        row = np.array([[attrs[name] for name in ATTRIBUTES]])
        return drawing.draw(drawing.identity(self.seed, [index]), row, res)[0].transpose(1, 2, 0).copy()

    @staticmethod
    def _index(index) -> int:
        if isinstance(index, np.integer):
            index = int(index)
        return ganzoo.checks.count(index, "toyfaces: identity index", minimum=0)

    def _draw_into(self, out: np.ndarray) -> None:
        chunk = max(1, 2**17 // (self.resolution * max(1, 32 // self.resolution)) ** 2)
        for start in range(0, self.size, chunk):
            idx = range(start, min(self.size, start + chunk))
            out[start:start + len(idx)] = drawing.draw(drawing.identity(self.seed, idx),
                                                       drawing.attribute_rows(self.seed, idx),
                                                       self.resolution)

    def _load_or_draw(self) -> np.ndarray:
        path, shape = self.cache_path, (self.size, 3, self.resolution, self.resolution)
        try:
            cached = np.load(path, mmap_mode="r")
            if cached.shape == shape and cached.dtype == np.uint8:
                return cached
        except (OSError, ValueError):
            pass
        try:  # drawn straight into a temporary file, then renamed: no reader sees a partial file
            with ganzoo.files.atomic_path(path) as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                if hasattr(os, "posix_fallocate"):  # a full disk fails here, not as SIGBUS later
                    with open(tmp, "r+b") as f:
                        os.posix_fallocate(f.fileno(), 0, os.path.getsize(tmp))
                self._draw_into(out)
                out.flush()
                del out
            return np.load(path, mmap_mode="r")
        except OSError:  # unwritable cache: keep the images in memory only
            out = np.empty(shape, np.uint8)
            self._draw_into(out)
            return out

    def __getstate__(self):
        # DataLoader workers re-open the mmap instead of receiving a pickled copy of every image.
        state = dict(self.__dict__, _lower={})
        if isinstance(self._images, np.memmap):
            state["_images"] = None
        return state
