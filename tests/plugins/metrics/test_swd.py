"""The `swd` metric: Laplacian pyramid, patch descriptors, sliced Wasserstein, and the metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import ganzoo
from ganzoo_toyfaces.dataset import ToyFaces
from ganzoo import EvalContext, run_metrics
from ganzoo_metrics.laplacian import (laplacian_pyramid, pyr_down, pyr_up, pyramid_resolutions,
                                      reconstruct_laplacian_pyramid)
from ganzoo.images import to_uint8
from ganzoo_metrics.swd import (SlicedWasserstein, normalize_descriptors, patch_descriptors,
                                sliced_wasserstein)
from ganzoo.model import GANModel


pytestmark = pytest.mark.usefixtures("one_thread")


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def faces(resolution: int, size: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.array(ToyFaces(resolution=resolution, size=size, seed=seed).images))


# --- pyramid -------------------------------------------------------------------------------


def test_pyramid_levels_and_reconstruction():
    images = torch.randint(0, 256, (3, 3, 64, 64), generator=rng()).float()
    pyramid = laplacian_pyramid(images, 3)
    assert [tuple(level.shape) for level in pyramid] == [(3, 3, 64, 64), (3, 3, 32, 32), (3, 3, 16, 16)]
    torch.testing.assert_close(reconstruct_laplacian_pyramid(pyramid), images, atol=1e-3, rtol=0)
    # the last level is the Gaussian residual: two blur-and-subsample steps of the image
    torch.testing.assert_close(pyramid[-1], pyr_down(pyr_down(images)))
    assert laplacian_pyramid(images, 1)[0] is images


def test_pyramid_filter_and_borders():
    """5x5 binomial taps with mirrored borders (d c b | a b c d): a constant stays constant
    through pyr_down / pyr_up, and a one-pixel impulse at the corner gives the reflected taps."""
    flat = torch.full((1, 1, 8, 8), 7.0)
    torch.testing.assert_close(pyr_down(flat), torch.full((1, 1, 4, 4), 7.0))
    torch.testing.assert_close(pyr_up(flat), torch.full((1, 1, 16, 16), 7.0))
    impulse = torch.zeros(1, 1, 8, 8)
    impulse[0, 0, 0, 1] = 256.0
    down = pyr_down(impulse)  # output (0, 0) sees input column 1 with tap 4 and its mirror at -1
    assert down[0, 0, 0, 0].item() == pytest.approx(6 * (4 + 4))  # rows: tap 6; cols -1 and 1
    assert down[0, 0, 0, 1].item() == pytest.approx(6 * 4)  # output col 2 sees col 1 with tap 4


def test_pyramid_resolutions_follow_the_official_rule():
    assert pyramid_resolutions(128) == [128, 64, 32, 16]
    assert pyramid_resolutions(16) == [16]
    assert pyramid_resolutions(8) == [8]  # below 16: one level, the image itself
    assert pyramid_resolutions(4) == [4]


# --- descriptors and the distance ------------------------------------------------------------


def test_patch_descriptors_are_patches_inside_the_image():
    level = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    desc = patch_descriptors(level, patches_per_image=50, patch_size=7, generator=rng(1))
    assert desc.shape == (100, 3, 7, 7)
    for k in (0, 49, 50, 99):
        image = level[k // 50]
        flat = image[0].flatten()
        top_left = int(desc[k, 0, 0, 0].item()) - int(flat[0].item())
        row, col = divmod(top_left, 16)
        assert 0 <= row <= 9 and 0 <= col <= 9  # centres in [3, 13)
        torch.testing.assert_close(desc[k], image[:, row:row + 7, col:col + 7])


def test_descriptor_normalisation_is_per_channel():
    gen = rng(2)
    desc = torch.randn(500, 3, 7, 7, generator=gen)
    scale, shift = torch.tensor([1.0, 10.0, 100.0]), torch.tensor([0.0, 50.0, -9.0])
    desc = desc * scale.view(1, 3, 1, 1) + shift.view(1, 3, 1, 1)
    norm = normalize_descriptors(desc).view(500, 3, 49)
    per_channel = norm.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1, unbiased=False), torch.ones(3), atol=1e-5, rtol=0)
    # one statistic per channel, shared by all 49 positions (not per component)
    mean = desc.mean(dim=(0, 2, 3), keepdim=True)
    ref = (desc - mean) / desc.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    torch.testing.assert_close(norm, ref.view(500, 3, 49), atol=1e-5, rtol=1e-5)


def test_sliced_wasserstein_of_identical_sets_is_zero():
    a = torch.randn(1000, 147, generator=rng(3))
    assert sliced_wasserstein(a, a.clone(), generator=rng(4)) == 0.0
    shuffled = a[torch.randperm(1000, generator=rng(5))]
    assert sliced_wasserstein(a, shuffled, generator=rng(4)) == pytest.approx(0.0, abs=1e-6)


def test_sliced_wasserstein_of_a_shift_is_the_mean_projected_shift():
    """Shifting every point by v shifts each 1-D projection by v.d: the distance is mean |v.d|."""
    a = torch.randn(2000, 20, generator=rng(6))
    v = torch.linspace(-1, 1, 20)
    got = sliced_wasserstein(a, a + v, directions=64, repeats=3, generator=rng(7))
    gen = rng(7)
    expected = []
    for _ in range(3):
        d = torch.randn(20, 64, generator=gen, dtype=torch.float64)
        d = d / d.norm(dim=0, keepdim=True)
        expected.append((v.double() @ d).abs().mean().item())
    assert got == pytest.approx(sum(expected) / 3, rel=1e-4)
    # on average over directions, E|v.d| = |v| * E|d_1| for a uniform unit d in 20 dims
    e_abs = math.gamma(10) / (math.sqrt(math.pi) * math.gamma(10.5))
    assert got == pytest.approx(v.norm().item() * e_abs, rel=0.15)


def test_sliced_wasserstein_one_dimension_is_wasserstein_1():
    a = torch.randn(4000, 1, generator=rng(8))
    b = 3.0 * torch.randn(4000, 1, generator=rng(9))
    # 1-D: every unit direction is +-1, and W1(N(0,1), N(0,9)) = 2 * E|Z| = 2 * sqrt(2/pi)
    got = sliced_wasserstein(a, b, directions=4, repeats=2, generator=rng(10))
    assert got == pytest.approx(2 * math.sqrt(2 / math.pi), rel=0.05)


def test_sliced_wasserstein_chunking_does_not_change_the_result():
    a = torch.randn(300, 30, generator=rng(11))
    b = torch.randn(300, 30, generator=rng(12)) + 0.2
    whole = sliced_wasserstein(a, b, 16, 2, rng(13))
    chunked = sliced_wasserstein(a, b, 16, 2, rng(13), max_elements=300 * 5)
    assert chunked == pytest.approx(whole, rel=1e-6)


def test_to_uint8_rounds_like_the_official_conversion():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0 / 255, 1.0, 2.0])
    assert to_uint8(x).tolist() == [0, 0, 128, 128, 255, 255]  # 127.5 -> 128 (half to even)


# --- the metric ------------------------------------------------------------------------------


PARAMS = dict(patches_per_image=64, directions=64, repeats=2)  # small, for CPU speed


def swd_of(real: torch.Tensor, fake: torch.Tensor, seed: int = 0, device: str = "cpu",
           **params) -> dict[str, float]:
    """The metric's computation on two uint8 image sets, without a model."""
    metric = SlicedWasserstein(**{**PARAMS, **params})
    res = real.shape[-1]
    sizes = pyramid_resolutions(res, metric.min_resolution)
    a = metric.descriptors(real.split(64), res, rng(seed), torch.device(device))
    b = metric.descriptors(fake.split(64), res, rng(seed + 1), torch.device(device))
    out = {str(s): 1e3 * sliced_wasserstein(normalize_descriptors(x.to(device)),
                                            normalize_descriptors(y.to(device)),
                                            metric.directions, metric.repeats, rng(seed + 2))
           for s, x, y in zip(sizes, a, b)}
    out["avg"] = sum(out.values()) / len(sizes)
    return out


def noisy(images: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=rng(seed)) * sigma
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def face_sets():
    """Two independent sets of 128 toyfaces at 32px (two pyramid levels: 32 and 16)."""
    return faces(32, 128, seed=0), faces(32, 128, seed=1)


@pytest.fixture(scope="module")
def distances(face_sets):
    real, other = face_sets
    return {"same": swd_of(real, real), "other": swd_of(real, other),
            "noise10": swd_of(real, noisy(real, 10, 1)), "noise40": swd_of(real, noisy(real, 40, 1))}


def test_swd_grows_with_the_difference(distances):
    same, near, far = distances["same"], distances["noise10"], distances["noise40"]
    assert list(same) == ["32", "16", "avg"]
    assert same["avg"] < near["avg"] < far["avg"]
    for size in ("32", "16"):
        assert same[size] <= near[size] < far[size]
    assert distances["other"]["avg"] < near["avg"]  # other faces beat noisy copies


def test_swd_is_deterministic(face_sets, distances):
    real, other = face_sets
    assert swd_of(real, other) == distances["other"]
    assert swd_of(real, other, seed=1) != distances["other"]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_preallocated_descriptors_equal_concatenated_ones(face_sets, dtype):
    real = face_sets[0][:40]
    metric = SlicedWasserstein(patches_per_image=8, descriptor_dtype=dtype)
    grown = metric.descriptors(real.split(16), 32, rng(5), torch.device("cpu"))
    allocated = metric.descriptors(real.split(16), 32, rng(5), torch.device("cpu"), count=40)
    for x, y in zip(grown, allocated):
        assert x.dtype == y.dtype == getattr(torch, dtype) and torch.equal(x, y)
    with pytest.raises(ValueError, match="more than 32 images"):
        metric.descriptors(real.split(16), 32, rng(5), torch.device("cpu"), count=32)


def test_float16_descriptors_agree_with_float32(face_sets, distances):
    real, other = face_sets
    half = swd_of(real, other, descriptor_dtype="float16")
    for key, value in distances["other"].items():
        assert half[key] == pytest.approx(value, rel=0.01)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_cpu(face_sets, distances):
    real, other = face_sets
    on_gpu = swd_of(real, other, device="cuda")
    for key, value in distances["other"].items():
        assert on_gpu[key] == pytest.approx(value, rel=1e-3)


def test_small_images_use_one_level_and_a_patch_that_fits():
    images = torch.randint(0, 256, (8, 3, 4, 4), generator=rng(14), dtype=torch.uint8)
    out = swd_of(images, images.flip(0))
    assert set(out) == {"4", "avg"}


class Bank(nn.Module):
    """A generator that returns stored uint8 images (as [-1, 1] floats), picked by the latent."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.register_buffer("images", images.float() / 127.5 - 1.0)
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, z, labels=None):
        index = (z[:, 0].abs() * 1e4).long() % len(self.images)
        return self.images[index]


def context(images: torch.Tensor, num_images: int = 256, seed: int = 0) -> EvalContext:
    generator = Bank(images).eval()
    model = GANModel(generator=generator, discriminator=nn.Identity(), latent_dim=4)
    return EvalContext(model=model, generator=generator, discriminator=None,
                       dataset=ToyFaces(resolution=32, size=256, seed=0), resolution=32,
                       device=torch.device("cpu"), num_images=num_images, seed=seed)


def test_metric_through_the_registry(face_sets):
    _, other = face_sets
    assert ganzoo.registry("metrics").get("swd") is SlicedWasserstein
    tables = {"swd": {"num_images": 128, "patches_per_image": 32, "directions": 64, "repeats": 2}}
    good = run_metrics(context(other), ["swd"], tables)
    noise = torch.randint(0, 256, other.shape, generator=rng(15), dtype=torch.uint8)
    bad = run_metrics(context(noise), ["swd"], tables)
    assert list(good) == ["swd/32", "swd/16", "swd/avg"]
    assert good["swd/avg"] * 3 < bad["swd/avg"]
    assert good == run_metrics(context(other), ["swd"], tables)  # same seed, same numbers
    assert good != run_metrics(context(other, seed=1), ["swd"], tables)


def test_metric_params_are_validated():
    with pytest.raises(ganzoo.UserError if hasattr(ganzoo, "UserError") else Exception):
        run_metrics(context(torch.zeros(4, 3, 32, 32, dtype=torch.uint8)), ["swd"],
                    {"swd": {"patch_size": 6}})
    with pytest.raises(Exception, match="unknown key"):
        run_metrics(context(torch.zeros(4, 3, 32, 32, dtype=torch.uint8)), ["swd"],
                    {"swd": {"patches": 6}})


def test_memory_budget_measures_levels_in_passes_with_the_same_numbers(face_sets):
    """A budget below both levels' descriptors measures them one pass each: same numbers."""
    _, other = face_sets
    table = {"num_images": 128, "patches_per_image": 32, "directions": 64, "repeats": 2}
    metric = SlicedWasserstein(**table)
    assert metric.passes(128, 32) == [[0, 1]]
    one_level = 2 * metric.level_bytes(128, 32)  # reals and fakes of one level
    assert one_level == 2 * 128 * 32 * 3 * 7 * 7 * 4
    tight = {**table, "max_memory_gb": 1.5 * one_level / 1e9}
    assert SlicedWasserstein(**tight).passes(128, 32) == [[0], [1]]
    whole = run_metrics(context(other), ["swd"], {"swd": table})
    assert run_metrics(context(other), ["swd"], {"swd": tight}) == whole


def test_celebahq_descriptors_fit_the_default_budget_in_passes():
    """16384 images at 1024 px: 7 levels of 2.5 GB (17 GB in all) measured 3 levels a pass."""
    metric = SlicedWasserstein()
    assert 2 * 7 * metric.level_bytes(16384, 1024) / 1e9 == pytest.approx(17.3, abs=0.05)
    assert metric.passes(16384, 1024) == [[0, 1, 2], [3, 4, 5], [6]]
    assert SlicedWasserstein(max_memory_gb=20).passes(16384, 1024) == [list(range(7))]
    assert len(SlicedWasserstein(descriptor_dtype="float16").passes(16384, 1024)) == 2


class Exploding(Bank):
    def forward(self, z, labels=None):
        raise AssertionError("generated images before checking the memory budget")


def test_memory_need_beyond_the_budget_is_refused_up_front():
    ctx = context(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
    ctx.generator = Exploding(torch.zeros(4, 3, 32, 32)).eval()
    need = 2 * SlicedWasserstein().level_bytes(256, 32) / 1e9  # 256 reals and fakes at 32 px
    with pytest.raises(ganzoo.UserError, match=rf"needs {need:.3g} GB .* max_memory_gb = 1e-06; "
                                               r"lower \[eval\.swd\] num_images"):
        run_metrics(ctx, ["swd"], {"swd": {"max_memory_gb": 1e-6}})
    with pytest.raises(ganzoo.UserError, match="max_memory_gb must be a finite number > 0"):
        run_metrics(ctx, ["swd"], {"swd": {"max_memory_gb": 0}})
