"""Sliced Wasserstein distance between Laplacian-pyramid patches (Karras et al. 2018, app. D).

The metric follows the official ProGAN implementation's protocol:

- images as uint8 (fakes: `x * 127.5 + 127.5`, rounded half-to-even and clamped, as
  `Gs.run(..., out_dtype=np.uint8)` does), converted to float32 0..255 without rescaling;
- a Laplacian pyramid with the 5x5 binomial filter and mirrored borders, one level per size
  R, R/2, ... >= 16, the last level being the Gaussian residual (see ganzoo.metrics.laplacian);
- per image and level, 128 random 7x7 patches lying fully inside the level (centres drawn
  uniformly from [3, size - 3)), each a 7*7*3 = 147-dim descriptor;
- per level and per image set (reals and fakes separately), every descriptor channel is
  normalised by that set's per-channel mean and (population) std over all its descriptors;
- 4 repeats of 128 unit-length Gaussian directions: project, sort, mean |difference|, then the
  mean over repeats; reported x 1e3 per level and averaged over the levels.

Keys (the caller prefixes the metric name): `"<size>"` per level, e.g. "64", "32", "16",
and `"avg"`. Images smaller than `min_resolution` are measured on a single level (the image),
with the patch size clamped to the largest odd size that fits (e.g. 3 at 4x4).

Memory: like the official code every descriptor of both sets is kept until the distance is
taken: 2 sets x levels x num_images x patches x 147 x 4 bytes, on the CPU (16384 images at
64px: 3 levels, 7.4 GB; 10000 images: 4.5 GB), allocated once up front.
`descriptor_dtype = "float16"` halves it; the descriptors are then stored centred by a
first-batch channel mean, so float16 rounding moves the distances by well under 1 % (a test
checks it). The pyramid, patches, projections and sorts run on `ctx.device`; one level of both
sets is on the device at a time (2 x 0.75 GB for 10000 images), projections go in chunks.
CPU sorting uses numpy's vectorised sort (about 10x torch.sort).
"""

from __future__ import annotations

from typing import Iterator

import torch

from ganzoo.metrics.laplacian import laplacian_pyramid, pyramid_resolutions

# Offsets into ctx.generator_rng: real and fake image draws use the context's canonical
# streams (real_images offset 0, sample offset 0) so every metric sees the same images.
_REAL_PATCHES, _FAKE_PATCHES, _DIRECTIONS = 0x5D0, 0x5D1, 0x5D2
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


# ---------------------------------------------------------------------------------------------
# plain functions


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] to uint8 0..255 (x * 127.5 + 127.5, round half to even, clamp)."""
    return (images.float() * 127.5 + 127.5).round_().clamp_(0, 255).to(torch.uint8)


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
# image streams shared by the metrics


def real_uint8_batches(ctx, n: int, labels_out: list | None = None,
                       offset: int = 0) -> Iterator[torch.Tensor]:
    """uint8 real images (ctx.real_images), optionally collecting their labels."""
    for images, labels in ctx.real_images(n, offset=offset):
        if labels_out is not None:
            labels_out.append(labels)
        yield images


def fake_uint8_batches(ctx, n: int, labels: torch.Tensor | None = None,
                       offset: int = 0) -> Iterator[torch.Tensor]:
    """n generated images as uint8, in batches of ctx.batch_size.

    Latent models: the latents are exactly those of `ctx.sample(n, offset=offset)`, generated
    a batch at a time. A conditional model gets `labels` (the real images' labels, cycled, as
    the official evaluation feeds them), else zeros. A translating model (StarGAN) translates
    real images (a second seeded draw) to `labels` (other real images' attributes), or to its
    own sources' attributes shifted by one image when none are given.
    """
    if ctx.model.translates:
        yield from _translated_uint8_batches(ctx, n, labels, offset)
        return
    latents = ctx.model.sample_latents(n, generator=ctx.generator_rng(offset))
    label_dim = len(ctx.attribute_names)
    if label_dim and labels is not None and len(labels):
        labels = labels.repeat((n + len(labels) - 1) // len(labels), 1)[:n]
    else:
        labels = torch.zeros(n, label_dim)
    for start in range(0, n, ctx.batch_size):
        stop = min(start + ctx.batch_size, n)
        yield to_uint8(ctx.generate(latents[start:stop], labels[start:stop]))


def _translated_uint8_batches(ctx, n, labels, offset):
    produced, rounds = 0, 0
    while produced < n:
        if rounds and not produced:
            raise ValueError("no real images to translate")
        for images, own in ctx.real_images(n - produced, offset=offset + 7 + rounds):
            if labels is not None and len(labels):
                index = torch.arange(produced, produced + len(images)) % len(labels)
                target = labels[index]
            else:
                target = own.roll(1, dims=0)
            yield to_uint8(ctx.generate(images.float() / 127.5 - 1.0, target))
            produced += len(images)
        rounds += 1


# ---------------------------------------------------------------------------------------------
# the metric


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class SlicedWasserstein:
    """`swd`: SWD x 1e3 between real and generated images per Laplacian level, and their mean."""

    def __init__(self, num_images: int | None = None, patches_per_image: int = 128,
                 patch_size: int = 7, directions: int = 128, repeats: int = 4,
                 min_resolution: int = 16, descriptor_dtype: str = "float32"):
        self.num_images = None if num_images is None else _positive_int("num_images", num_images)
        self.patches_per_image = _positive_int("patches_per_image", patches_per_image)
        self.patch_size = _positive_int("patch_size", patch_size)
        if patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd, got {patch_size}")
        self.directions = _positive_int("directions", directions)
        self.repeats = _positive_int("repeats", repeats)
        self.min_resolution = _positive_int("min_resolution", min_resolution)
        if descriptor_dtype not in _DTYPES:
            raise ValueError(f"descriptor_dtype must be one of {', '.join(_DTYPES)}, "
                             f"got {descriptor_dtype!r}")
        self.descriptor_dtype = descriptor_dtype

    def _patch_size(self, resolution: int) -> int:
        fits = resolution if resolution % 2 else resolution - 1
        return max(1, min(self.patch_size, fits))

    def descriptors(self, batches, resolution: int, generator: torch.Generator,
                    device: torch.device, count: int | None = None) -> list[torch.Tensor]:
        """Raw descriptors (M, C, s, s) per pyramid level of a stream of uint8 batches, on the CPU
        (normalise them with `normalize_descriptors`). With `count`, the number of images the
        stream holds at most, the storage is allocated once up front (no second copy)."""
        sizes = pyramid_resolutions(resolution, self.min_resolution)
        patch = self._patch_size(sizes[-1])
        dtype = _DTYPES[self.descriptor_dtype]
        per_image = self.patches_per_image
        stored: list[list[torch.Tensor]] = [[] for _ in sizes]
        centres: list[torch.Tensor | None] = [None for _ in sizes]
        filled = 0
        for images in batches:
            pyramid = laplacian_pyramid(images.to(device).float(), len(sizes))
            rows = slice(filled * per_image, (filled + len(images)) * per_image)
            for i, level in enumerate(pyramid):
                desc = patch_descriptors(level, per_image, patch, generator)
                if dtype != torch.float32:  # centre before rounding to keep float16 precise
                    if centres[i] is None:
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
            return [parts[0][:filled * per_image] for parts in stored]
        levels = []
        for i in range(len(stored)):  # one level's parts at a time: peak memory + 1 level
            levels.append(torch.cat(stored[i]))
            stored[i] = []
        return levels

    def __call__(self, ctx) -> dict[str, float]:
        n = min(self.num_images or ctx.num_images, len(ctx.dataset))
        sizes = pyramid_resolutions(ctx.resolution, self.min_resolution)
        device = torch.device(ctx.device)
        labels: list[torch.Tensor] = []
        real = self.descriptors(real_uint8_batches(ctx, n, labels), ctx.resolution,
                                ctx.generator_rng(_REAL_PATCHES), device, count=n)
        real_labels = torch.cat(labels) if labels else None
        fake = self.descriptors(fake_uint8_batches(ctx, n, real_labels), ctx.resolution,
                                ctx.generator_rng(_FAKE_PATCHES), device, count=n)
        rng = ctx.generator_rng(_DIRECTIONS)
        results = {}
        for size in sizes:  # one level at a time on the device
            a = normalize_descriptors(real.pop(0).to(device), inplace=True)
            b = normalize_descriptors(fake.pop(0).to(device), inplace=True)
            results[str(size)] = 1e3 * sliced_wasserstein(a, b, self.directions, self.repeats, rng)
            del a, b
        results["avg"] = sum(results.values()) / len(sizes)
        return results
