"""`ganzoo prepare` caches: levels, manifest, skipped files, atomic builds, and image_folder on a cache."""

from __future__ import annotations

import contextlib
import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import ganzoo.dataset
from ganzoo.dataset import downsample_uint8, read_image
from ganzoo.errors import UserError
from ganzoo_image_folder import build
from ganzoo_image_folder.build import box_levels, prepare_cache
from ganzoo_image_folder.cache import MultiresCache
from ganzoo_image_folder.folder import ImageFolder


def noise(size, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "L":
        return Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))
    if mode == "RGBA":
        return Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def save(img, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)


@pytest.fixture()
def folder(tmp_path):
    """Mixed sizes and modes, one corrupt file, one image smaller than the cache resolution."""
    root = tmp_path / "images"
    save(noise((80, 64), seed=1), root / "a.png")
    (root / "b.jpg").parent.mkdir(parents=True, exist_ok=True)
    (root / "b.jpg").write_bytes(b"not a jpeg at all")
    save(noise((100, 100), "L", seed=2), root / "c.jpg", quality=90)
    save(noise((64, 64), "RGBA", seed=3), root / "d.png")
    palette = noise((70, 90), "L", seed=4).convert("P")
    save(palette, root / "sub" / "e.png")
    save(Image.fromarray(np.full((64, 64), 40000, dtype=np.uint16)), root / "sub" / "f16.png")
    save(noise((300, 200), seed=5), root / "sub" / "g.jpg", quality=95)
    save(noise((20, 24), seed=6), root / "tiny.png")
    return root


@contextlib.contextmanager
def one_line_error(match):
    with pytest.raises(UserError, match=match) as info:
        yield
    assert "\n" not in str(info.value)


def official_levels(top: np.ndarray) -> list[np.ndarray]:
    """ProGAN's dataset_tool.py TFRecordExporter.add_image, transcribed (uint8 (C, S, S) in)."""
    img, out = top, []
    for lod in range(int(np.log2(top.shape[1])) - 1):
        if lod:
            img = img.astype(np.float32)
            img = (img[:, 0::2, 0::2] + img[:, 0::2, 1::2] + img[:, 1::2, 0::2] + img[:, 1::2, 1::2]) * 0.25
        out.append(np.rint(img).clip(0, 255).astype(np.uint8))
    return out


def block_mean(top: np.ndarray, r: int) -> np.ndarray:
    c, s, _ = top.shape
    f = s // r
    return top.reshape(c, r, f, r, f).astype(np.float64).mean(axis=(2, 4))


def test_box_levels_are_the_official_filter_and_downsample_uint8():
    rng = np.random.default_rng(0)
    top = rng.integers(0, 256, (3, 256, 256), dtype=np.uint8)
    top[:, :2, :2] = [[0, 0], [0, 2]]  # a tie (mean 0.5): rounds half to even, to 0
    top[:, 2:4, :2] = [[1, 1], [2, 2]]  # mean 1.5: to 2
    ours = box_levels(top)
    assert [level.shape[-1] for level in ours] == [256, 128, 64, 32, 16, 8, 4]
    for level, theirs in zip(ours, official_levels(top)):
        assert np.array_equal(level, theirs)
        r = level.shape[-1]
        assert np.array_equal(level, np.rint(block_mean(top, r)).astype(np.uint8))  # rounded once
        assert torch.equal(torch.from_numpy(level), downsample_uint8(torch.from_numpy(top), r))
    assert ours[1][0, 0, 0] == 0 and ours[1][0, 1, 0] == 2
    # Rounding each level in turn instead drifts: a 4x4 block of mean 1.375 whose 2x2 means
    # (1.5, 1.5, 1.5, 1.0) round to 2, 2, 2, 1 and then to 2, where the exact mean rounds to 1.
    block = np.array([[1, 1, 1, 1], [2, 2, 2, 2], [1, 1, 1, 1], [2, 2, 1, 1]], np.uint8)[None]
    full = np.zeros((1, 16, 16), np.uint8)
    full[:, :4, :4] = block
    assert box_levels(full)[2][0, 0, 0] == 1
    assert box_levels(box_levels(full)[1])[1][0, 0, 0] == 2


def test_build_levels_manifest_and_skips(folder, tmp_path):
    out = tmp_path / "cache"
    calls = []
    summary = prepare_cache(folder, out, resolution=64, workers=2,
                            progress=lambda done, total: calls.append((done, total)))
    assert not summary.up_to_date and summary.count == 7 and summary.skipped == 1
    assert summary.upscaled == 1 and summary.resolutions == (4, 8, 16, 32, 64)
    assert "b.jpg" in summary.first_skipped and "skipped 1 unreadable file" in summary.describe()
    assert calls and calls[-1] == (8, 8)
    assert sorted(os.listdir(out)) == ["manifest.json", "r0004.npy", "r0008.npy", "r0016.npy",
                                       "r0032.npy", "r0064.npy"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "ganzoo-multires" and manifest["version"] == 1
    assert manifest["source"] == os.path.realpath(folder)
    assert manifest["resolution"] == 64 and manifest["crop"] is None and manifest["count"] == 7
    assert manifest["resolutions"] == [4, 8, 16, 32, 64] and manifest["upscaled"] == 1
    assert list(manifest["skipped"]) == ["b.jpg"]
    assert manifest["skipped"]["b.jpg"].startswith("cannot identify image file")
    # File order, with the unreadable file's row taken by the last readable image.
    assert manifest["files"] == ["a.png", "tiny.png", "c.jpg", "d.png", "sub/e.png",
                                 "sub/f16.png", "sub/g.jpg"]

    top = np.load(out / "r0064.npy", mmap_mode="r")
    assert isinstance(top, np.memmap) and top.shape == (7, 3, 64, 64) and top.dtype == np.uint8
    for row, name in enumerate(manifest["files"]):
        assert torch.equal(torch.from_numpy(np.array(top[row])), read_image(str(folder / name), 64))
    expected = {64: np.array(top)}
    for r in (32, 16, 8, 4):
        level = np.load(out / f"r{r:04d}.npy", mmap_mode="r")
        assert level.shape == (7, 3, r, r)
        exact = np.stack([np.rint(block_mean(image, r)) for image in expected[64]]).astype(np.uint8)
        assert np.array_equal(level, exact)  # each level: the top's exact box mean, rounded once
        above = expected[r * 2].astype(np.float64)
        chained = (above[..., 0::2, 0::2] + above[..., 0::2, 1::2]
                   + above[..., 1::2, 0::2] + above[..., 1::2, 1::2]) / 4
        assert np.abs(level - chained).max() <= 0.75  # box(level 2r) to within its rounding
        expected[r] = np.array(level)

    inline = prepare_cache(folder, tmp_path / "inline", resolution=64, workers=0)
    assert inline.count == 7
    for r in (4, 8, 16, 32, 64):  # the same bytes, whatever the number of workers
        assert (out / f"r{r:04d}.npy").read_bytes() == (tmp_path / "inline" / f"r{r:04d}.npy").read_bytes()


def test_rebuild_is_a_noop_until_the_files_change(folder, tmp_path):
    out = tmp_path / "cache"
    prepare_cache(folder, out, resolution=16, workers=0)
    before = {name: os.stat(out / name).st_ino for name in os.listdir(out)}
    again = prepare_cache(folder, out, resolution=16, workers=0)
    assert again.up_to_date and again.count == 7 and "nothing to do" in again.describe()
    assert {name: os.stat(out / name).st_ino for name in os.listdir(out)} == before

    save(noise((50, 50), seed=9), folder / "new.png")  # the folder changed: rebuilt in place
    rebuilt = prepare_cache(folder, out, resolution=16, workers=0)
    assert not rebuilt.up_to_date and rebuilt.count == 8
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".cache.")]  # nothing left over
    with pytest.raises(UserError, match="already holds a cache of .* at 16px"):
        prepare_cache(folder, out, resolution=32, workers=0)
    with pytest.raises(UserError, match="already holds a cache"):
        prepare_cache(folder, out, resolution=16, crop=40, workers=0)


def test_interrupted_builds_leave_no_cache(folder, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    real, calls = ganzoo.dataset.read_image_array, []

    def dies_midway(*args):
        calls.append(args)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of decoding
        return real(*args)

    monkeypatch.setattr(ganzoo.dataset, "read_image_array", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(folder, out, resolution=16, workers=0)
    assert len(calls) == 4
    assert os.listdir(tmp_path) == ["images"]  # no out, no temporary directory
    monkeypatch.setattr(ganzoo.dataset, "read_image_array", real)

    def progress(done, total):
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):  # a pool of workers, stopped midway
        prepare_cache(folder, out, resolution=16, workers=2, progress=progress)
    assert os.listdir(tmp_path) == ["images"]

    def fail(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(build, "_swap_into_place", fail)  # everything written, not yet in place
    with pytest.raises(OSError, match="disk gone"):
        prepare_cache(folder, out, resolution=16, workers=0)
    assert os.listdir(tmp_path) == ["images"]
    monkeypatch.undo()

    killed = tmp_path / ".cache.partial-999999999-dead"  # left by a build that was killed
    killed.mkdir()
    (killed / "r0016.npy").write_bytes(b"half")
    out.mkdir()  # an empty --out is fine
    assert prepare_cache(folder, out, resolution=16, workers=0).count == 7
    assert sorted(os.listdir(tmp_path)) == ["cache", "images"]
    assert MultiresCache(out).count == 7


def test_default_resolution_is_inferred(tmp_path):
    for i, size in enumerate([(300, 200), (150, 140), (700, 700)]):
        save(noise(size, seed=i), tmp_path / "img" / f"{i}.png")
    summary = prepare_cache(tmp_path / "img", tmp_path / "cache", workers=0)
    assert summary.resolutions[-1] == 128 and summary.upscaled == 0
    # Small cached images load in the training process; larger ones in DataLoader workers.
    assert ImageFolder(root=str(tmp_path / "cache"), resolution=64).in_memory
    assert not ImageFolder(root=str(tmp_path / "cache"), resolution=128).in_memory
    assert prepare_cache(tmp_path / "img", tmp_path / "c2", crop=40, workers=0).resolutions[-1] == 32


def test_prepare_user_errors(folder, tmp_path):
    with one_line_error("does not exist"):
        prepare_cache(tmp_path / "nowhere", tmp_path / "out")
    with one_line_error("is not a directory"):
        prepare_cache(folder / "a.png", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with one_line_error("holds no images"):
        prepare_cache(tmp_path / "empty", tmp_path / "out")
    for resolution in (48, 2, 0, True, 16384, "64"):
        with one_line_error("resolution must be a power of two"):
            prepare_cache(folder, tmp_path / "out", resolution=resolution)
    with one_line_error("crop must be an integer >= 1"):
        prepare_cache(folder, tmp_path / "out", crop=0)
    with one_line_error("workers"):
        prepare_cache(folder, tmp_path / "out", workers=-1)
    (tmp_path / "file").write_text("x")
    with one_line_error("exists and is not a directory"):
        prepare_cache(folder, tmp_path / "file", resolution=8)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with one_line_error("exists and is not a ganzoo cache"):
        prepare_cache(folder, tmp_path / "busy", resolution=8)
    with one_line_error("is the image folder itself"):
        prepare_cache(folder, folder, resolution=8)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"nope")
    with one_line_error(r"none of its 1 images is readable \(first: .*x.jpg"):
        prepare_cache(tmp_path / "bad", tmp_path / "out", resolution=8, workers=0)
    assert sorted(os.listdir(tmp_path)) == ["bad", "busy", "empty", "file", "images"]
    prepare_cache(folder, tmp_path / "out", resolution=8, workers=0)
    with one_line_error("already a prepared cache"):
        prepare_cache(tmp_path / "out", tmp_path / "out2", resolution=8)


def test_image_folder_reads_the_cache(folder, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    prepare_cache(folder, out, resolution=64, workers=0)
    cache = MultiresCache(out)
    ds = ImageFolder(root=str(folder), resolution=32, cache=str(out))
    by_root = ImageFolder(root=str(out), resolution=32)  # a root that is a cache is used as one
    assert ds.in_memory and by_root.in_memory and not ImageFolder(str(folder), 32).in_memory
    assert len(ds) == len(by_root) == 7 and ds.skipped == 1
    assert [os.path.basename(p) for p in ds.files] == [os.path.basename(f) for f in cache.files]
    assert "left out 1 unreadable file" in ds.summary() and ds.verify() == list(ds.bad_files)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image")

    monkeypatch.setattr(ganzoo.dataset, "read_image", no_decoding)
    monkeypatch.setattr(ganzoo.dataset, "read_image_array", no_decoding)
    monkeypatch.setattr(ganzoo.dataset.Image, "open", no_decoding)
    for i in range(len(ds)):
        image, labels = ds[i]
        assert image.dtype == torch.uint8 and labels.shape == (0,)
        assert torch.equal(image, torch.from_numpy(np.array(cache.level(32)[i])))
        assert torch.equal(by_root[i][0], image)
    low = ds.at_resolution(8)
    for i in range(len(ds)):
        assert torch.equal(low[i][0], torch.from_numpy(np.array(cache.level(8)[i])))
    assert ds.at_resolution(2)[0][0].shape == (3, 2, 2)  # below the stored levels: filtered
    with pytest.raises(IndexError):
        ds[7]

    clone = pickle.loads(pickle.dumps(low))
    assert clone.base.cache._levels == {} and torch.equal(clone[3][0], low[3][0])
    assert len(pickle.dumps(ds)) < 20000  # the images are never pickled
    loader = torch.utils.data.DataLoader(low, batch_size=7, num_workers=2)
    (images, _), = list(loader)
    assert torch.equal(images, torch.from_numpy(np.array(cache.level(8))))


def test_image_folder_cache_mismatches(folder, tmp_path):
    out = tmp_path / "cache"
    prepare_cache(folder, out, resolution=16, workers=0)
    with pytest.raises(UserError, match=r"holds images up to 16px, resolution is 32; re-run "
                                        r"`ganzoo prepare .* --resolution 32`"):
        ImageFolder(root=str(folder), resolution=32, cache=str(out))
    with pytest.raises(UserError, match=r"prepared with crop None.*crop 40; re-run `ganzoo prepare.*--crop 40"):
        ImageFolder(root=str(folder), resolution=16, crop=40, cache=str(out))
    with pytest.raises(UserError, match="crop"):
        ImageFolder(root=str(out), resolution=16, crop=40)
    with pytest.raises(UserError, match=r"does not exist; create it with `ganzoo prepare"):
        ImageFolder(root=str(folder), resolution=16, cache=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="is not a ganzoo cache"):
        ImageFolder(root=str(folder), resolution=16, cache=str(folder))
    with pytest.raises(UserError, match="cache must be the path"):
        ImageFolder(root=str(folder), resolution=16, cache=3)
    assert len(ImageFolder(root=str(tmp_path / "elsewhere"), resolution=8, cache=str(out))) == 7

    save(noise((40, 40)), folder / "late.png")
    with pytest.raises(UserError, match=r"prepared from 8 files, '.*' now holds 9.*re-run `ganzoo prepare"):
        ImageFolder(root=str(folder), resolution=16, cache=str(out))
    (folder / "late.png").unlink()

    (out / "r0008.npy").write_bytes((out / "r0008.npy").read_bytes()[:200])  # damaged
    with pytest.raises(UserError, match="r0008.npy"):
        ImageFolder(root=str(folder), resolution=16, cache=str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(dict(manifest, version=99)))
    with pytest.raises(UserError, match="format version 99"):
        MultiresCache(out)
