"""The dataset contract, and reading image files the way every image dataset should.

A dataset is registered (hook `ganzoo_register_datasets`) as a class built from its [data]
table as keyword arguments (everything except `dataset`; `resolution` always among them).
It is a `torch.utils.data.Dataset` with:

- `resolution` (int) and `__len__`;
- `__getitem__(index) -> (image, labels)`: image a uint8 tensor (3, R, R) at `resolution`,
  labels a float32 tensor (label_dim,) of 0/1 attributes (empty when unconditional);
- `attribute_names` (list[str], empty when unconditional) and `attribute_groups` (lists of
  names of which exactly one is set, e.g. hair colours);
- `at_resolution(r) -> Dataset`: the same images at a smaller power-of-two resolution
  (2x2 box-filtered), which progressive growth uses; the base class provides it.

`read_image` decodes one file into such an image. Choices worth knowing:

- Transparency is composited onto black (not dropped): dropping alpha exposes whatever RGB
  the encoder left under transparent pixels, which is often garbage.
- 16-bit grey is scaled to 8 bits (value / 257); PIL's own conversion would clip it.
- Resizing uses PIL's LANCZOS, which is antialiased at any factor (its support widens with
  the scale); `reducing_gap=3` box-reduces huge factors first (about 2x faster, within
  1-2 levels of the exact result). Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale
  (`Image.draft`, DCT scaling), never below 2x the target: 1024px -> 64px takes ~3.5 ms
  instead of ~12 ms.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import Dataset

__all__ = ["ImageDataset", "downsample_uint8", "read_image", "read_image_array"]


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


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(img, dtype=np.float64) / 257.0
        img = Image.fromarray(grey.round().clip(0, 255).astype(np.uint8))
    elif img.mode == "F":
        img = Image.fromarray(np.asarray(img).round().clip(0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        img = img.convert("RGBA")
        black = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, img)
    return img if img.mode == "RGB" else img.convert("RGB")


def read_image_array(path: str, resolution: int, crop: int | None = None) -> tuple[np.ndarray, int]:
    """Decode one file into a uint8 (3, R, R) array, and the side of the square it was cut from
    (in original pixels; smaller than R means the image was upscaled). `crop` first keeps a
    centre `crop` x `crop` region. Raises on unreadable files. Plain numpy and PIL, never
    torch: `ganzoo prepare` runs it in forked worker processes."""
    with Image.open(path) as img:
        full_w, full_h = img.size
        side = min(full_w, full_h, crop or full_w)  # the square to keep, in original pixels
        # Decode JPEGs at a reduced scale, but keep at least 2x the target for LANCZOS.
        want = 2 * resolution / side
        img.draft("RGB", (max(1, int(np.ceil(full_w * want))), max(1, int(np.ceil(full_h * want)))))
        scale = full_w / img.size[0]  # DCT scaling factor (1, 2, 4 or 8)
        img.load()  # inside the caller's try: a truncated file must fail here, not later
        ImageOps.exif_transpose(img, in_place=True)
        img = _to_rgb(img)
    w, h = img.size
    s = max(1, min(w, h, round(side / scale)))
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s))
    if s != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(img).transpose(2, 0, 1).copy(), side  # copy(): C order, writable


def read_image(path: str, resolution: int, crop: int | None = None) -> torch.Tensor:
    """Decode one file into a uint8 (3, R, R) tensor: centre `crop` (if given), centre square,
    LANCZOS to `resolution`; raises on any unreadable file."""
    return torch.from_numpy(read_image_array(path, resolution, crop)[0])
