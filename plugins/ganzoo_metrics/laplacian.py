"""Gaussian / Laplacian image pyramids with the 5x5 binomial filter (as cv2.pyrDown / pyrUp).

The filter is [1, 4, 6, 4, 1] / 16 in each direction (its outer product / 256 in 2-D, applied
separably, as shifted slices). Borders are mirrored about the edge pixel (`d c b | a b c d | c b a`: scipy's
`mode="mirror"`, OpenCV's BORDER_REFLECT_101, torch's `F.pad(mode="reflect")`), the border
rule of the official ProGAN SWD code. Images are float tensors (N, C, H, W) in any value range;
the SWD metric feeds uint8 values converted to float (0..255), as the official code does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _taps(x: torch.Tensor, step: int, size: int, gain: float) -> torch.Tensor:
    """The 5-tap binomial filter along the last dim of an already padded x, every `step`-th
    output of `size` (shifted slices and adds: much faster than conv2d for 5 taps on a CPU)."""
    a, b, c = 1.0 * gain / 16, 4.0 * gain / 16, 6.0 * gain / 16
    stop = size  # outputs 0, step, ... < size read padded columns i .. i + 4
    return ((x[..., 0:stop:step] + x[..., 4:stop + 4:step]) * a
            + (x[..., 1:stop + 1:step] + x[..., 3:stop + 3:step]) * b
            + x[..., 2:stop + 2:step] * c)


def _blur(images: torch.Tensor, gain: float = 1.0, step: int = 1) -> torch.Tensor:
    """Separable 5x5 binomial blur with mirrored borders, times `gain`, keeping every `step`-th
    row and column of the result."""
    h, w = images.shape[-2:]
    if min(h, w) < 3:
        raise ValueError(f"the 5x5 binomial filter needs images of at least 3x3, got {h}x{w}")
    x = F.pad(images, (2, 2, 2, 2), mode="reflect")
    x = _taps(x, step, w, gain)  # rows: (N, C, H + 4, W / step)
    return _taps(x.transpose(-1, -2), step, h, 1.0).transpose(-1, -2)


def pyr_down(images: torch.Tensor) -> torch.Tensor:
    """Blur, then keep every second row and column (even indices): (N, C, H, W) -> (H/2, W/2)."""
    return _blur(images, step=2)


def pyr_up(images: torch.Tensor) -> torch.Tensor:
    """Insert zeros between samples, then blur with 4x the filter: (N, C, H, W) -> (2H, 2W)."""
    n, c, h, w = images.shape
    up = images.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = images
    return _blur(up, gain=4.0)


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[band-pass at R, band-pass at R/2, ..., Gaussian residual at R / 2**(levels-1)].

    Each band-pass level is `g_i - pyr_up(g_{i+1})` where g is the Gaussian pyramid; with
    `levels == 1` the pyramid is just the image. `reconstruct_laplacian_pyramid` inverts it.
    """
    if levels < 1:
        raise ValueError(f"a pyramid needs at least one level, got {levels}")
    h, w = images.shape[-2:]
    if levels > 1 and (h % 2 ** (levels - 1) or w % 2 ** (levels - 1)):
        raise ValueError(f"{h}x{w} images cannot be halved {levels - 1} times")
    pyramid = [images.float() if not images.is_floating_point() else images]
    for _ in range(1, levels):
        coarse = pyr_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - pyr_up(coarse)
        pyramid.append(coarse)
    return pyramid


def reconstruct_laplacian_pyramid(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """The image a Laplacian pyramid came from: upsample the residual and add each band back."""
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = pyr_up(image) + band
    return image


def pyramid_resolutions(resolution: int, min_resolution: int = 16) -> list[int]:
    """The sizes of the SWD pyramid levels: R, R/2, ... down to min_resolution (official rule:
    every size >= 16 by halving). Images smaller than min_resolution get one level, themselves."""
    sizes = []
    size = resolution
    while size >= min_resolution:
        sizes.append(size)
        if size % 2:
            break
        size //= 2
    return sizes or [resolution]
