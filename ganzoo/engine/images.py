"""Writing images: one grid PNG, or a folder of numbered PNGs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images (N, C, H, W) to uint8, rounding to nearest."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def make_grid(images: torch.Tensor, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 (N, C, H, W) images tiled row-major into one (H', W', C) array."""
    n, c, h, w = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c), np.uint8)
    for i, image in enumerate(images.numpy()):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top:top + h, left:left + w] = image.transpose(1, 2, 0)
    return grid


def save_png(array: np.ndarray, path: Path) -> None:
    """Write atomically, so an interrupted run never leaves half a PNG behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(tmp, format="PNG")
    os.replace(tmp, path)


def write_images(images_uint8: torch.Tensor, out: str | Path, columns: int | None = None) -> list[Path]:
    """An `out` ending in .png gets one grid; any other `out` is a folder of numbered PNGs."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        save_png(make_grid(images_uint8, columns), out)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, image in enumerate(images_uint8):
        path = out / f"{i:06d}.png"
        save_png(image.numpy().transpose(1, 2, 0), path)
        written.append(path)
    return written
