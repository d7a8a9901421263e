"""Real-image loading speed: is data ever the bottleneck of training?

Run: python -m pytest benchmarks/bench_data.py --benchmark-enable -q -p no:cacheprovider
(GANZOO_BENCH_IMAGES sets the synthetic folder's size, default 256 JPEGs of 1024x1024.)

Every case delivers batches of 64 real images at 8, 64, 256 and 1024 px the way the engine
asks for them (`RealStream`: a DataLoader over `dataset.at_resolution(r)` with mirroring), for a
dataset whose target resolution is 1024 (a ProGAN run growing from 8 to 1024):

- reference      plain PIL in one process: open, convert to RGB, LANCZOS-resize to r, stack
- decode         image_folder without a cache, 2 DataLoader workers: decodes 1024 px, filters to r
- decode_at_r    image_folder at resolution r, 2 workers: decodes straight at r (JPEG DCT scaling);
                 what a fixed-resolution run at r pays, the best case without a cache
- cache          image_folder on a `ganzoo prepare` cache, in the training process (workers=0,
                 what `in_memory` selects up to 64px), with torch's default intra-op threads
                 (as the trainer runs) and with 1 (collate's fresh 2-thread copies are very slow
                 on some VMs)
- cache_workers  the same cache through 2 DataLoader workers (what the trainer uses above 64px)

A summary of images/s per case is printed at the end.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo_image_folder.build import prepare_cache
from ganzoo_image_folder.folder import ImageFolder
from ganzoo.engine.stream import RealStream

BATCH = 64
TOP = 1024
RESOLUTIONS = (8, 64, 256, 1024)
IMAGES = int(os.environ.get("GANZOO_BENCH_IMAGES", "256"))
RESULTS: dict[tuple[str, int], float] = {}


def _photo(seed: int) -> Image.Image:
    """A JPEG-friendly 1024px image: smooth colour fields plus a little grain (~200 KB)."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    smooth = np.asarray(base.resize((TOP, TOP), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.integers(-8, 9, (TOP, TOP, 1), dtype=np.int16)
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for i in range(IMAGES):
        _photo(i).save(root / f"{i:05d}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def cache(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "cache"
    started = time.perf_counter()
    prepare_cache(photos, out, resolution=TOP, workers=2)
    RESULTS[("prepare (build, 2 workers)", TOP)] = IMAGES / (time.perf_counter() - started)
    return out


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not RESULTS:
        return
    lines = [f"images/s, batches of {BATCH}, {os.cpu_count()} CPUs, {IMAGES} JPEGs of {TOP}px:",
             f"{'case':<34}" + "".join(f"{r:>10}px" for r in RESOLUTIONS)]
    for case in dict.fromkeys(case for case, _ in RESULTS):  # in the order they ran
        cells = [RESULTS.get((case, r)) for r in RESOLUTIONS]
        lines.append(f"{case:<34}" + "".join(f"{c:>12,.0f}" if c else f"{'':>12}" for c in cells))
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


def _measure(benchmark, case: str, resolution: int, step, rounds: int, warmup: int = 1):
    benchmark.group = f"{resolution}px"
    benchmark.extra_info["resolution"] = resolution
    result = benchmark.pedantic(step, rounds=rounds, warmup_rounds=warmup, iterations=1)
    assert result[0].shape == (BATCH, 3, resolution, resolution)
    if benchmark.stats is not None:  # None when benchmarks are disabled
        rate = BATCH / benchmark.stats.stats.mean
        benchmark.extra_info["img_per_s"] = round(rate)
        RESULTS[(case, resolution)] = rate


def _stream(dataset, resolution: int, workers: int) -> RealStream:
    stream = RealStream(dataset, seed=0, mirror=True, workers=workers)
    stream.configure(resolution, BATCH)
    return stream


def _rounds(resolution: int, fast: bool) -> int:
    if fast:
        return 200 if resolution <= 64 else 30 if resolution == 256 else 8
    return 6  # even, with an even warm-up: 2 workers deliver their batches in pairs


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_reference_pil(benchmark, photos, resolution):
    files = sorted(str(p) for p in photos.iterdir())
    position = [0]

    def step():
        images = []
        for _ in range(BATCH):
            path = files[position[0] % len(files)]
            position[0] += 1
            with Image.open(path) as img:
                small = img.convert("RGB").resize((resolution, resolution), Image.Resampling.LANCZOS)
            images.append(torch.from_numpy(np.asarray(small).transpose(2, 0, 1).copy()))
        return (torch.stack(images),)

    _measure(benchmark, "reference (PIL, 1 process)", resolution, step, rounds=3)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_decode(benchmark, photos, resolution):
    stream = _stream(ImageFolder(str(photos), TOP), resolution, workers=2)
    _measure(benchmark, "decode (2 workers)", resolution, stream.next,
             rounds=_rounds(resolution, False), warmup=2)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_decode_at_r(benchmark, photos, resolution):
    stream = _stream(ImageFolder(str(photos), resolution), resolution, workers=2)
    _measure(benchmark, "decode_at_r (2 workers)", resolution, stream.next,
             rounds=_rounds(resolution, False), warmup=2)


@pytest.mark.parametrize("threads", ["default", 1])
@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_cache(benchmark, photos, cache, resolution, threads):
    stream = _stream(ImageFolder(str(photos), TOP, cache=str(cache)), resolution, workers=0)
    before = torch.get_num_threads()
    if threads != "default":  # intra-op threads of the training process (collate runs there)
        torch.set_num_threads(threads)
    try:
        _measure(benchmark, f"cache (in process, {threads} thr)", resolution, stream.next,
                 rounds=_rounds(resolution, True), warmup=3)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_cache_workers(benchmark, photos, cache, resolution):
    stream = _stream(ImageFolder(str(photos), TOP, cache=str(cache)), resolution, workers=2)
    _measure(benchmark, "cache (2 workers)", resolution, stream.next,
             rounds=_rounds(resolution, True), warmup=3)
