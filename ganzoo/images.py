"""Images between the networks and the disk: [-1, 1] floats <-> uint8, grids, PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid as _torch_grid

from ganzoo.errors import UserError
from ganzoo.files import atomic_path


MAX_GRID = 1024  # images in one grid PNG (32x32 of them); more go to a folder


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images (N, C, H, W) to uint8 on the CPU, as ProGAN's official code converts
    them (x * 127.5 + 127.5, rounded half to even, clipped): the saved PNGs and every metric agree."""
    return (images.detach().float().cpu() * 127.5 + 127.5).round_().clamp_(0, 255).to(torch.uint8)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] images to float [-1, 1], what the networks see."""
    return images.float().div_(127.5).sub_(1.0)


def make_grid(images: torch.Tensor, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 (N, C, H, W) images tiled row-major into one (H', W', C) array, black between them."""
    columns = columns or max(1, math.ceil(math.sqrt(len(images))))
    return _torch_grid(images, nrow=columns, padding=padding).permute(1, 2, 0).numpy()


def save_png(array: np.ndarray, path: str | Path) -> None:
    """Write an (H, W, C) uint8 array atomically: an interrupted run never leaves half a PNG."""
    with atomic_path(path) as tmp:
        Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(tmp, format="PNG")


def write_images(images_uint8: torch.Tensor, out: str | Path, columns: int | None = None) -> list[Path]:
    """An `out` ending in .png gets one grid; any other `out` is a folder of numbered PNGs."""
    return write_image_batches([images_uint8], out, columns)


def write_image_batches(batches, out: str | Path, columns: int | None = None) -> list[Path]:
    """Like `write_images`, from an iterable of uint8 batches: a folder is written batch by batch,
    so memory does not grow with the number of images."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        batches = list(batches)
        if sum(len(b) for b in batches) > MAX_GRID:
            raise UserError(f"--out '{out}': a .png grid holds at most {MAX_GRID} images; "
                            "give a folder to write more")
        if out.is_dir():
            raise UserError(f"--out '{out}' is a folder; give a new .png file name or a folder without .png")
        save_png(make_grid(torch.cat(list(batches)), columns), out)
        return [out]
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' is an existing file; give a folder (or a name ending in .png for one grid)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for batch in batches:
        for image in batch:
            path = out / f"{len(written):06d}.png"
            save_png(image.numpy().transpose(1, 2, 0), path)
            written.append(path)
    return written
