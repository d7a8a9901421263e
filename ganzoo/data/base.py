"""The base class of image datasets: uint8 images, labels, and lower-resolution views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


class ImageDataset(Dataset):
    """Subclasses set `resolution`, `attribute_names` and implement `__len__` and `load(index)`."""

    resolution: int
    attribute_names: list[str] = []
    attribute_groups: list[list[str]] = []  # exclusive (one-hot) groups, e.g. hair colours

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 image (3, R, R) at self.resolution, float32 labels (label_dim,))."""
        raise NotImplementedError

    def load_at(self, index: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The image at a lower resolution; subclasses with a multi-resolution cache override it."""
        image, labels = self.load(index)
        return downsample_uint8(image, resolution), labels

    def __getitem__(self, index: int):
        return self.load(index)

    @property
    def label_dim(self) -> int:
        return len(self.attribute_names)

    def at_resolution(self, resolution: int) -> "ImageDataset":
        if resolution == self.resolution:
            return self
        if resolution > self.resolution or self.resolution % resolution:
            raise ValueError(f"cannot view a {self.resolution}px dataset at {resolution}px")
        return _ResolutionView(self, resolution)


class _ResolutionView(ImageDataset):
    def __init__(self, base: ImageDataset, resolution: int):
        self.base, self.resolution = base, resolution
        self.attribute_names = base.attribute_names
        self.attribute_groups = base.attribute_groups

    def __len__(self) -> int:
        return len(self.base)

    def load(self, index: int):
        return self.base.load_at(index, self.resolution)


def downsample_uint8(image: torch.Tensor, resolution: int) -> torch.Tensor:
    """Box-filter a uint8 (C, H, W) image down by an integer factor, rounding to nearest."""
    factor = image.shape[-1] // resolution
    if factor == 1:
        return image
    pooled = F.avg_pool2d(image.float().unsqueeze(0), factor)[0]
    return pooled.round_().clamp_(0, 255).to(torch.uint8)
