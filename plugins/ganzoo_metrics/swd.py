"""Sliced Wasserstein distance between Laplacian-pyramid patches (Karras et al. 2018, app. D).

The metric follows the official ProGAN implementation's protocol:

- images as uint8 (fakes: `x * 127.5 + 127.5`, rounded half-to-even and clamped, as
  `Gs.run(..., out_dtype=np.uint8)` does), converted to float32 0..255 without rescaling;
- a Laplacian pyramid with the 5x5 binomial filter and mirrored borders, one level per size
  R, R/2, ... >= 16, the last level being the Gaussian residual (see ganzoo_metrics.laplacian);
- per image and level, 128 random 7x7 patches lying fully inside the level (centres drawn
  uniformly from [3, size - 3)), each a 7*7*3 = 147-dim descriptor;
- per level and per image set (reals and fakes separately), every descriptor channel is
  normalised by that set's per-channel mean and (population) std over all its descriptors;
- 4 repeats of 128 unit-length Gaussian directions: project, sort, mean |difference|, then the
  mean over repeats; reported x 1e3 per level and averaged over the levels.

Keys (the caller prefixes the metric name): `"<size>"` per level, e.g. "64", "32", "16",
and `"avg"`. Images smaller than `min_resolution` are measured on a single level (the image),
with the patch size clamped to the largest odd size that fits (e.g. 3 at 4x4).

Memory: like the official code every descriptor of a level is kept, for both sets, until its
distance is taken: 2 sets x num_images x patches x 147 x 4 bytes per level, on the CPU (16384
images: 2.5 GB a level; at 1024 px, 7 levels, 17 GB in all). The levels are therefore measured
in passes whose descriptors fit `max_memory_gb` (default 8 GB; 16384 images at 1024 px take 3
passes): each pass streams the same seeded real and fake images again, draws every level's
patch centres (keeping only its own levels'), so the numbers do not depend on the budget; only
the time grows with the number of passes. When one level alone exceeds the budget the metric
says so up front, before generating anything. `descriptor_dtype = "float16"` halves the
storage (plus a float32 copy of the level being measured); the descriptors are then stored
centred by a first-batch channel mean, so float16 rounding moves the distances by well under
1 % (a test checks it). The pyramid, patches, projections and sorts run on `ctx.device`; one
level of both sets is on the device at a time, projections go in chunks. CPU sorting uses
numpy's vectorised sort (about 10x torch.sort).
"""

from __future__ import annotations

from typing import Iterable

import torch

import ganzoo
from ganzoo import checks
from ganzoo_metrics.laplacian import laplacian_pyramid, pyramid_resolutions

# Offsets into ctx.generator_rng: real and fake image draws use the context's canonical
# streams (real_images offset 0, sample offset 0) so every metric sees the same images.
_REAL_PATCHES, _FAKE_PATCHES, _DIRECTIONS = 0x5D0, 0x5D1, 0x5D2
_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_CHANNELS = 3  # the dataset contract: images are (3, R, R)


# ---------------------------------------------------------------------------------------------
# plain functions


def patch_descriptors(level: torch.Tensor, patches_per_image: int = 128, patch_size: int = 7,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Random square patches of one pyramid level: (N, C, H, W) -> (N * patches, C, size, size).

    Patch centres are drawn uniformly (from `generator`, on the CPU) so every patch lies inside
    the level: rows and columns in [size // 2, H - size // 2). Patches of image i come first.
    """
    n, c, h, w = level.shape
    half = patch_size // 2
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be a positive odd number, got {patch_size}")
    if patch_size > min(h, w):
        raise ValueError(f"{patch_size}x{patch_size} patches do not fit {h}x{w} images")
    rows = torch.randint(half, h - half, (n, patches_per_image), generator=generator)
    cols = torch.randint(half, w - half, (n, patches_per_image), generator=generator)
    offsets = torch.arange(-half, half + 1)
    rows = rows[:, :, None, None] + offsets[:, None]  # (N, P, size, 1)
    cols = cols[:, :, None, None] + offsets[None, :]  # (N, P, 1, size)
    index = (rows * w + cols).reshape(n, 1, -1).to(level.device)
    flat = level.reshape(n, c, h * w)
    patches = torch.gather(flat, 2, index.expand(n, c, index.shape[-1]))
    patches = patches.view(n, c, patches_per_image, patch_size, patch_size)
    return patches.transpose(1, 2).reshape(n * patches_per_image, c, patch_size, patch_size)


def normalize_descriptors(descriptors: torch.Tensor, inplace: bool = False,
                          chunk: int = 1 << 16) -> torch.Tensor:
    """(M, C, s, s) patches -> (M, C*s*s) float32, each channel standardised by its mean and
    population std over all M patches and positions (the official `finalize_descriptors`).

    The statistics accumulate in float64. With `inplace`, a float32 input is overwritten and
    returned as a view (no second copy of a large descriptor set).
    """
    m, c = descriptors.shape[:2]
    total = torch.zeros(c, dtype=torch.float64, device=descriptors.device)
    squares = torch.zeros_like(total)
    for part in descriptors.split(chunk):
        part = part.float()
        total += part.sum(dim=(0, 2, 3), dtype=torch.float64)
        squares += part.square().sum(dim=(0, 2, 3), dtype=torch.float64)
    count = m * descriptors[0, 0].numel()
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel stays 0
    mean = mean.float().view(1, c, 1, 1)
    scale = (1.0 / std).float().view(1, c, 1, 1)
    if inplace and descriptors.dtype == torch.float32 and descriptors.is_contiguous():
        out = descriptors
    else:
        out = torch.empty(descriptors.shape, dtype=torch.float32, device=descriptors.device)
    for dst, src in zip(out.split(chunk), descriptors.split(chunk)):
        torch.mul(src.float() - mean, scale, out=dst)
    return out.view(m, -1)


def _sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Sort each row; on the CPU numpy's vectorised sort is ~10x faster than torch.sort."""
    if x.device.type == "cpu":
        x.numpy().sort(axis=1)  # in place: x is a temporary
        return x
    return torch.sort(x, dim=1).values


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: int = 128, repeats: int = 4,
                       generator: torch.Generator | None = None, device: torch.device | str | None = None,
                       max_elements: int = 1 << 26) -> float:
    """Sliced Wasserstein-1 distance between two equally sized point sets (M, D).

    Each repeat draws `directions` Gaussian directions (on the CPU from `generator`), scales
    them to unit length, projects both sets, sorts each projection and takes the mean absolute
    difference over points and directions; the result is the mean over repeats. Projections
    are computed in direction chunks of at most `max_elements` values per set.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"point sets must have the same (M, D) shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    device = torch.device(device) if device is not None else a.device
    a = a.to(device, torch.float32)
    b = b.to(device, torch.float32)
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = False  # TF32 projections would add noise
        try:
            return sliced_wasserstein(a, b, directions, repeats, generator, device, max_elements)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = True
    m, dim = a.shape
    step = max(1, min(directions, max_elements // max(m, 1)))
    results = []
    for _ in range(repeats):
        dirs = torch.randn(dim, directions, generator=generator, dtype=torch.float64)
        dirs = (dirs / dirs.square().sum(dim=0, keepdim=True).sqrt()).float().to(device)
        total = 0.0
        for start in range(0, directions, step):
            d = dirs[:, start:start + step].T  # (directions, D): sort along contiguous rows
            proj_a = _sort_rows(d @ a.T)
            proj_b = _sort_rows(d @ b.T)
            total += proj_a.sub_(proj_b).abs_().sum(dim=1).double().sum().item()
        results.append(total / (m * directions))
    return sum(results) / len(results)


# ---------------------------------------------------------------------------------------------
# the metric


class SlicedWasserstein:
    """`swd`: SWD x 1e3 between real and generated images per Laplacian level, and their mean."""

    def __init__(self, num_images: int | None = None, patches_per_image: int = 128,
                 patch_size: int = 7, directions: int = 128, repeats: int = 4,
                 min_resolution: int = 16, descriptor_dtype: str = "float32",
                 max_memory_gb: float = 8.0):
        self.num_images = None if num_images is None else checks.count(num_images, "swd: num_images")
        self.patches_per_image = checks.count(patches_per_image, "swd: patches_per_image")
        self.patch_size = checks.count(patch_size, "swd: patch_size")
        if patch_size % 2 == 0:
            raise ganzoo.UserError(f"swd: patch_size must be odd, got {patch_size}")
        self.directions = checks.count(directions, "swd: directions")
        self.repeats = checks.count(repeats, "swd: repeats")
        self.min_resolution = checks.count(min_resolution, "swd: min_resolution")
        self.descriptor_dtype = checks.one_of(descriptor_dtype, _DTYPES, "swd: descriptor_dtype")
        self.max_memory_gb = checks.positive(max_memory_gb, "swd: max_memory_gb")

    def _patch_size(self, resolution: int) -> int:
        fits = resolution if resolution % 2 else resolution - 1
        return max(1, min(self.patch_size, fits))

    def level_bytes(self, num_images: int, resolution: int, dtype: str | None = None) -> int:
        """Bytes of one pyramid level's descriptors of one image set (every level has as many)."""
        patch = self._patch_size(pyramid_resolutions(resolution, self.min_resolution)[-1])
        itemsize = _DTYPES[dtype or self.descriptor_dtype].itemsize
        return num_images * self.patches_per_image * _CHANNELS * patch * patch * itemsize

    def passes(self, num_images: int, resolution: int) -> list[list[int]]:
        """The pyramid levels measured together, pass by pass, within `max_memory_gb`."""
        levels = len(pyramid_resolutions(resolution, self.min_resolution))
        stored = 2 * self.level_bytes(num_images, resolution)  # reals and fakes
        working = 0 if self.descriptor_dtype == "float32" else 2 * self.level_bytes(
            num_images, resolution, "float32")  # the level being normalised, as float32
        per_pass = int((self.max_memory_gb * 1e9 - working) // stored)
        if per_pass < 1:
            need = (stored + working) / 1e9
            raise ganzoo.UserError(
                f"[eval.swd] needs {need:.3g} GB of memory for one pyramid level of descriptors "
                f"({num_images} real and {num_images} fake images x {self.patches_per_image} "
                f"patches), more than max_memory_gb = {self.max_memory_gb:g}; lower [eval.swd] "
                f"num_images, set descriptor_dtype = \"float16\", or raise max_memory_gb")
        return [list(range(i, min(i + per_pass, levels))) for i in range(0, levels, per_pass)]

    def descriptors(self, batches, resolution: int, generator: torch.Generator,
                    device: torch.device, count: int | None = None,
                    levels: Iterable[int] | None = None) -> list[torch.Tensor]:
        """Raw descriptors (M, C, s, s) per pyramid level of a stream of uint8 batches, on the CPU
        (normalise them with `normalize_descriptors`). With `count`, the number of images the
        stream holds at most, the storage is allocated once up front (no second copy). With
        `levels`, only those levels are kept; every level still draws its patch centres, so a
        kept level's descriptors are the same whichever levels are kept with it."""
        sizes = pyramid_resolutions(resolution, self.min_resolution)
        keep = sorted(set(range(len(sizes)) if levels is None else levels))
        patch = self._patch_size(sizes[-1])
        dtype = _DTYPES[self.descriptor_dtype]
        per_image = self.patches_per_image
        stored: dict[int, list[torch.Tensor]] = {i: [] for i in keep}
        centres: dict[int, torch.Tensor] = {}
        filled = 0
        for images in batches:
            pyramid = laplacian_pyramid(images.to(device).float(), len(sizes))
            rows = slice(filled * per_image, (filled + len(images)) * per_image)
            for i, level in enumerate(pyramid):
                desc = patch_descriptors(level, per_image, patch, generator)
                if i not in stored:
                    continue
                if dtype != torch.float32:  # centre before rounding to keep float16 precise
                    if i not in centres:
                        centres[i] = desc.mean(dim=(0, 2, 3), keepdim=True)
                    desc = desc - centres[i]
                if count is None:
                    stored[i].append(desc.to("cpu", dtype))
                    continue
                if not stored[i]:
                    stored[i].append(torch.empty((count * per_image, *desc.shape[1:]), dtype=dtype))
                if rows.stop > len(stored[i][0]):
                    raise ValueError(f"the image stream holds more than {count} images")
                stored[i][0][rows] = desc
            filled += len(images)
        if not filled:
            raise ValueError("no images to measure")
        if count is not None:
            return [stored[i][0][:filled * per_image] for i in keep]
        out = []
        for i in keep:  # one level's parts at a time: peak memory + 1 level
            out.append(torch.cat(stored.pop(i)))
        return out

    def __call__(self, ctx) -> dict[str, float]:
        n = min(self.num_images or ctx.num_images, len(ctx.dataset))
        sizes = pyramid_resolutions(ctx.resolution, self.min_resolution)
        passes = self.passes(n, ctx.resolution)  # before any image is drawn
        device = torch.device(ctx.device)
        directions = ctx.generator_rng(_DIRECTIONS)
        labels: list[torch.Tensor] | None = []
        real_labels = None
        results = {}
        for levels in passes:
            real = self.descriptors(ctx.real_uint8_batches(n, labels), ctx.resolution,
                                    ctx.generator_rng(_REAL_PATCHES), device, count=n, levels=levels)
            if labels is not None:  # the first pass collects the labels the fakes are given
                real_labels, labels = (torch.cat(labels) if labels else None), None
            fake = self.descriptors(ctx.fake_uint8_batches(n, real_labels), ctx.resolution,
                                    ctx.generator_rng(_FAKE_PATCHES), device, count=n, levels=levels)
            for i in levels:  # one level at a time on the device
                a = normalize_descriptors(real.pop(0).to(device), inplace=True)
                b = normalize_descriptors(fake.pop(0).to(device), inplace=True)
                results[str(sizes[i])] = 1e3 * sliced_wasserstein(
                    a, b, self.directions, self.repeats, directions)
                del a, b
        results["avg"] = sum(results.values()) / len(sizes)
        return results
