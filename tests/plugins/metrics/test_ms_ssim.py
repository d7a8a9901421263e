"""The `ms_ssim` metric: SSIM components by hand, MS-SSIM properties, pairing, the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import ganzoo
from ganzoo_toyfaces.dataset import ToyFaces
from ganzoo import EvalContext, run_metrics
from ganzoo_metrics.ms_ssim import (MSSSIM, WEIGHTS, gaussian_window, image_pairs, ms_ssim,
                                    num_scales, ssim_components)
from ganzoo.model import GANModel

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


pytestmark = pytest.mark.usefixtures("one_thread")


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(n: int = 4, size: int = 64, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Smooth-ish random images (an upsampled noise field) in 0..255."""
    x = torch.rand(n, 3, max(1, size // 4), max(1, size // 4), generator=rng(seed), dtype=dtype) * 255
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def test_identical_images_score_one():
    x = random_images()
    torch.testing.assert_close(ms_ssim(x, x), torch.ones(4))
    u8 = x.round().to(torch.uint8)
    torch.testing.assert_close(ms_ssim(u8, u8), torch.ones(4))
    assert ms_ssim(x[0], x[0]).shape == ()


def test_more_noise_scores_lower_and_the_score_is_symmetric():
    x = random_images()
    scores = []
    for sigma in (0, 5, 20, 60):
        noise = torch.randn(x.shape, generator=rng(1)) * sigma
        y = (x + noise).clamp(0, 255)
        scores.append(ms_ssim(x, y))
        torch.testing.assert_close(ms_ssim(y, x), scores[-1])
    for better, worse in zip(scores, scores[1:]):
        assert bool((better > worse).all())
    assert bool((scores[-1] > 0).all()) and bool((scores[-1] < 1).all())


def test_constant_images_reduce_to_the_luminance_term():
    """No variance: cs = C2 / C2 = 1 at every scale, so MS-SSIM = l(a, b) ** w_5 with
    l = (2 a b + C1) / (a^2 + b^2 + C1) (luminance counts at the coarsest scale only)."""
    a = torch.full((1, 3, 64, 64), 100.0)
    b = torch.full((1, 3, 64, 64), 140.0)
    luminance = (2 * 100 * 140 + C1) / (100 ** 2 + 140 ** 2 + C1)
    ssim, cs = ssim_components(a, b)
    assert cs.item() == pytest.approx(1.0, rel=1e-4)  # float32: E[x^2] - E[x]^2 is not exact
    assert ssim.item() == pytest.approx(luminance, rel=1e-4)
    assert ms_ssim(a, b).item() == pytest.approx(luminance ** WEIGHTS[-1], rel=1e-4)


def test_single_scale_ssim_by_hand():
    """An 11x11 image is exactly one window: SSIM is the formula on Gaussian-weighted moments."""
    a = random_images(1, 11, seed=3, dtype=torch.float64)
    b = (a * 0.5 + 60 + torch.randn(a.shape, generator=rng(4), dtype=torch.float64) * 10).clamp(0, 255)
    x = np.arange(11) - 5.0
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5 ** 2))
    g /= g.sum()  # MATLAB's fspecial('gaussian', 11, 1.5)
    ssims, css = [], []
    for c in range(3):
        p, q = a[0, c].numpy(), b[0, c].numpy()
        mp, mq = (g * p).sum(), (g * q).sum()
        vp, vq = (g * p * p).sum() - mp ** 2, (g * q * q).sum() - mq ** 2
        cov = (g * p * q).sum() - mp * mq
        cs = (2 * cov + C2) / (vp + vq + C2)
        css.append(cs)
        ssims.append((2 * mp * mq + C1) / (mp ** 2 + mq ** 2 + C1) * cs)
    ssim, cs = ssim_components(a, b)
    assert ssim.item() == pytest.approx(np.mean(ssims), rel=1e-10)
    assert cs.item() == pytest.approx(np.mean(css), rel=1e-10)


def test_gaussian_window_matches_fspecial_for_odd_and_even_sizes():
    taps = gaussian_window(11, 1.5)
    assert taps.sum().item() == pytest.approx(1.0)
    assert taps[5].item() == pytest.approx(1 / sum(math.exp(-k * k / 4.5) for k in range(-5, 6)))
    even = gaussian_window(4, 4 * 1.5 / 11)  # even sizes sit at half-pixel offsets
    torch.testing.assert_close(even, even.flip(0))
    assert even[1] > even[0]


def test_small_images_use_fewer_scales():
    assert [num_scales(s) for s in (1, 2, 4, 8, 16, 64, 1024)] == [1, 2, 3, 4, 5, 5, 5]
    x = random_images(2, 8)
    torch.testing.assert_close(ms_ssim(x, x), torch.ones(2))
    # at 8px four scales weigh 1 in total: constants give the luminance to the renormalised weight
    a, b = torch.full((1, 3, 8, 8), 100.0), torch.full((1, 3, 8, 8), 140.0)
    luminance = (2 * 100 * 140 + C1) / (100 ** 2 + 140 ** 2 + C1)
    assert ms_ssim(a, b).item() == pytest.approx(luminance ** (WEIGHTS[3] / sum(WEIGHTS[:4])), rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_cpu():
    x = random_images(4, 64, seed=5)
    y = random_images(4, 64, seed=6)
    torch.testing.assert_close(ms_ssim(x.cuda(), y.cuda()).cpu(), ms_ssim(x, y), atol=1e-5, rtol=1e-5)


def test_pairs_are_consecutive_across_uneven_batches():
    images = torch.arange(9).view(9, 1, 1, 1)
    pairs = list(image_pairs(images.split(3)))
    firsts = torch.cat([a for a, _ in pairs]).flatten().tolist()
    seconds = torch.cat([b for _, b in pairs]).flatten().tolist()
    assert firsts == [0, 2, 4, 6] and seconds == [1, 3, 5, 7]


class Bank(nn.Module):
    """A generator that returns stored uint8 images (as [-1, 1] floats), picked by the latent."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.register_buffer("images", images.float() / 127.5 - 1.0)

    def forward(self, z, labels=None):
        index = (z[:, 0].abs() * 1e4).long() % len(self.images)
        return self.images[index]


def context(images: torch.Tensor, num_images: int = 64) -> EvalContext:
    generator = Bank(images).eval()
    model = GANModel(generator=generator, discriminator=nn.Identity(), latent_dim=4)
    return EvalContext(model=model, generator=generator, discriminator=None,
                       dataset=ToyFaces(resolution=32, size=128, seed=0), resolution=32,
                       device=torch.device("cpu"), num_images=num_images, seed=0)


def test_metric_through_the_registry():
    assert ganzoo.registry("metrics").get("ms_ssim") is MSSSIM
    faces = torch.from_numpy(np.array(ToyFaces(resolution=32, size=64, seed=1).images))
    diverse = run_metrics(context(faces), ["ms_ssim"], {"ms_ssim": {"num_pairs": 32}})
    assert set(diverse) == {"ms_ssim/fake", "ms_ssim/real"}
    assert 0 < diverse["ms_ssim/real"] < 1 and 0 < diverse["ms_ssim/fake"] < 1
    # a collapsed generator (one image for every latent) scores 1: no diversity at all
    collapsed = run_metrics(context(faces[:1]), ["ms_ssim"], {"ms_ssim": {"num_pairs": 32}})
    assert collapsed["ms_ssim/fake"] == pytest.approx(1.0)
    assert collapsed["ms_ssim/real"] == diverse["ms_ssim/real"]
    assert run_metrics(context(faces), ["ms_ssim"], {"ms_ssim": {"num_pairs": 32}}) == diverse
    with pytest.raises(ganzoo.UserError, match="num_pairs"):
        run_metrics(context(faces), ["ms_ssim"], {"ms_ssim": {"num_pairs": 0}})
