"""Multi-scale structural similarity (Wang, Simoncelli & Bovik 2003) as a diversity measure.

ProGAN (after Odena et al.'s AC-GAN protocol) reports the mean MS-SSIM between pairs of
generated images: the lower, the more diverse. The real images' value is the reference.

`ms_ssim(a, b)` follows the TensorFlow implementation the official ProGAN code uses
(`metrics/ms_ssim.py`, from tensorflow/models' image_encoder/msssim.py):

- images as float in the 0..255 range (dynamic range L = 255), all channels alike;
- 5 scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between
  scales; contrast-structure `cs` at every scale, full SSIM (with luminance) at the coarsest;
- an 11x11 Gaussian window, sigma 1.5, applied "valid" (no padding); at any scale smaller
  than the window it shrinks to the image size with sigma scaled alike (size * 1.5 / 11; an
  even size centres the taps at half-pixel offsets like MATLAB's fspecial), so 64x64 images
  use windows 11, 11, 11, 8 and 4 at scales 64..4;
- K1 = 0.01, K2 = 0.03; each scale's SSIM and cs are the mean over positions and channels,
  clipped at 0, and the score is prod(cs_j ** w_j, j < 5) * ssim_5 ** w_5 per pair.

Images below 16 pixels, where the official code breaks (its fifth scale would be empty), use
as many scales as halve down to one pixel (8px: 4 scales, 4px: 3, 2px: 2, 1px: 1), with the
first weights renormalised to sum to 1. Above that everything matches the official code.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from ganzoo import checks

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_FAKE_IMAGES, _REAL_IMAGES = 0, 0  # the context's canonical image draws (as the swd metric)


def gaussian_window(size: int, sigma: float, dtype=torch.float64) -> torch.Tensor:
    """The normalised 1-D taps whose outer product is MATLAB's fspecial('gaussian', size, sigma)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    taps = torch.exp(-x.square() / (2.0 * sigma * sigma))
    return (taps / taps.sum()).to(dtype)


def _filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """'Valid' separable filtering of the last two dims (shifted slices and adds: several times
    faster than a depthwise conv2d on a CPU, and as fast on a GPU for these sizes)."""
    k = taps.numel()
    h, w = x.shape[-2:]
    weights = taps.tolist()
    rows = x[..., 0:w - k + 1] * weights[0]
    for i in range(1, k):
        rows = rows + x[..., i:w - k + 1 + i] * weights[i]
    out = rows[..., 0:h - k + 1, :] * weights[0]
    for i in range(1, k):
        out = out + rows[..., i:h - k + 1 + i, :] * weights[i]
    return out


def ssim_components(a: torch.Tensor, b: torch.Tensor, max_val: float = 255.0,
                    filter_size: int = 11, filter_sigma: float = 1.5, k1: float = 0.01,
                    k2: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """(SSIM, contrast-structure) of each pair at one scale: two (N,) tensors."""
    h, w = a.shape[-2:]
    size = min(filter_size, h, w)
    sigma = size * filter_sigma / filter_size
    taps = gaussian_window(size, sigma, torch.float64)
    # Moments of images shifted by their joint mean (per image and channel): the same values,
    # but E[x^2] - E[x]^2 then loses far less to float32 rounding.
    shift = (a + b).mean(dim=(-2, -1), keepdim=True) * 0.5
    a, b = a - shift, b - shift
    stack = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    mu_a, mu_b, aa, bb, ab = _filter(stack, taps).chunk(5, dim=1)
    var_a = aa - mu_a * mu_a
    var_b = bb - mu_b * mu_b
    cov = ab - mu_a * mu_b
    mu_a, mu_b = mu_a + shift, mu_b + shift
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    v1 = 2.0 * cov + c2
    v2 = var_a + var_b + c2
    cs_map = v1 / v2
    ssim_map = (2.0 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1) * cs_map
    return ssim_map.mean(dim=(1, 2, 3)), cs_map.mean(dim=(1, 2, 3))


def num_scales(size: int, wanted: int = len(WEIGHTS)) -> int:
    """Scales that fit an image of `size` pixels (halving down to 1 pixel at most)."""
    return max(1, min(wanted, int(math.floor(math.log2(size))) + 1))


def ms_ssim(a: torch.Tensor, b: torch.Tensor, max_val: float = 255.0, filter_size: int = 11,
            filter_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
            weights: Iterable[float] = WEIGHTS) -> torch.Tensor:
    """MS-SSIM of each pair of images (N, C, H, W) (or one pair (C, H, W)) in the 0..255 range.

    Integer tensors are converted to float32; float tensors keep their precision. Returns (N,)
    (a 0-dim tensor for one pair).
    """
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    single = a.ndim == 3
    if single:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) or (C, H, W) images, got shape {tuple(a.shape)}")
    if not a.is_floating_point():
        a, b = a.float(), b.float()
    weights = torch.tensor(list(weights), dtype=torch.float64)
    levels = num_scales(min(a.shape[-2:]), len(weights))
    if levels < len(weights):
        weights = weights[:levels] / weights[:levels].sum()
    weights = weights.to(a.device, a.dtype)
    score = torch.ones(a.shape[0], dtype=a.dtype, device=a.device)
    for level in range(levels):
        ssim, cs = ssim_components(a, b, max_val, filter_size, filter_sigma, k1, k2)
        last = level == levels - 1
        score = score * (ssim if last else cs).clamp_min(0) ** weights[level]
        if not last:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return score[0] if single else score


def image_pairs(batches: Iterable[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive disjoint pairs (images 0-1, 2-3, ...) from a stream of batches of any size."""
    carry = None
    for images in batches:
        if carry is not None:
            images = torch.cat([carry, images])
            carry = None
        if len(images) % 2:
            carry, images = images[-1:], images[:-1]
        if len(images):
            yield images[0::2], images[1::2]


class MSSSIM:
    """`ms_ssim`: mean MS-SSIM over pairs of generated images ("fake") and of real ones ("real").

    Pairs: min(num_pairs, ctx.num_images) (default num_pairs 10000, the paper's count), i.e.
    twice as many images, paired 2k with 2k+1 as the official protocol does, from the
    canonical seeded draws (the same first images as the swd metric). Real pairs are further
    capped by the dataset: len(dataset) // 2. For conditional models the fakes get the real
    images' labels, as in the official evaluation.
    """

    def __init__(self, num_pairs: int = 10_000):
        self.num_pairs = checks.count(num_pairs, "ms_ssim: num_pairs")

    @staticmethod
    def _mean(batches, device, max_values: int = 1 << 24) -> float:
        total, count = 0.0, 0
        for a, b in image_pairs(batches):
            step = max(1, max_values // a[0].numel())  # bounds the ~15 maps of moments
            for x, y in zip(a.split(step), b.split(step)):
                scores = ms_ssim(x.to(device).float(), y.to(device).float())
                total += scores.double().sum().item()
                count += len(scores)
        if not count:
            raise ValueError("MS-SSIM needs at least two images")
        return total / count

    def __call__(self, ctx) -> dict[str, float]:
        n = 2 * min(self.num_pairs, ctx.num_images)
        device = torch.device(ctx.device)
        labels: list[torch.Tensor] = []
        real = self._mean(ctx.real_uint8_batches(n, labels, offset=_REAL_IMAGES), device)
        real_labels = torch.cat(labels) if labels else None
        fake = self._mean(ctx.fake_uint8_batches(n, real_labels, offset=_FAKE_IMAGES), device)
        return {"fake": fake, "real": real}
