"""The toyfaces dataset: determinism, shapes, attribute balance, independence and visibility."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from ganzoo.dataset import downsample_uint8
from ganzoo.errors import UserError
from ganzoo_toyfaces import drawing
from ganzoo_toyfaces.dataset import ATTRIBUTES, ToyFaces

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# Pixels are specified to be identical on every machine, so these hashes are a fair check.
GOLDEN = {32: "3c95729e899b4b5e7bb15a0c4f8f1008b0187da796b35dbafe6978c688188b04",
          8: "b3503cd23b325d31f659d2445106008b05dae86ff3bbc1346366038f7cbace82"}
TOGGLES = ["male", "young", "smiling", "eyeglasses"]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def faces2000(tmp_path_factory):
    """2000 faces at 32px with all labels (drawn once for the statistical tests)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_CACHE", str(tmp_path_factory.mktemp("cache2000")))
        ds = ToyFaces(resolution=32, size=2000)
        return np.array(ds.images), ds.labels.numpy()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha(images) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def golden_images(resolution: int) -> np.ndarray:
    ds = ToyFaces(resolution=32, size=4, seed=0)
    return np.stack([ds.render(i, resolution=resolution) for i in range(4)])


def toggled(ds: ToyFaces, index: int, name: str) -> np.ndarray:
    return ds.render(index, {name: 1 - ds.identity_attributes(index)[name]})


@pytest.mark.parametrize("resolution", [32, 8])
def test_golden_pixels(resolution):
    assert sha(golden_images(resolution)) == GOLDEN[resolution]


def test_two_instances_and_another_process_agree(tmp_path, monkeypatch):
    a = np.array(ToyFaces(resolution=32, size=6, seed=3).images)
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "other"))
    b = np.array(ToyFaces(resolution=32, size=6, seed=3).images)
    assert a.tobytes() == b.tobytes()
    code = ("import hashlib, numpy as np; from ganzoo_toyfaces.dataset import ToyFaces; "
            "ds = ToyFaces(resolution=32, size=4); "
            "images = np.stack([ds.render(i) for i in range(4)]); "
            "print(hashlib.sha256(images.tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, env=dict(os.environ, GANZOO_CACHE=str(tmp_path / "sub")))
    assert out.stdout.strip() == GOLDEN[32]


def test_seeds_differ_and_indices_do_not_depend_on_size():
    small = np.array(ToyFaces(resolution=16, size=3, seed=0).images)
    large = np.array(ToyFaces(resolution=16, size=9, seed=0).images)
    other = np.array(ToyFaces(resolution=16, size=3, seed=1).images)
    assert np.array_equal(small, large[:3])
    assert not np.array_equal(small, other)
    assert len({sha(img) for img in large}) == 9


def test_render_matches_dataset_and_windows_are_exact(monkeypatch):
    for res in (8, 32, 128):
        ds = ToyFaces(resolution=res, size=5)
        batch = np.array(ds.images).transpose(0, 2, 3, 1)
        single = np.stack([ds.render(i) for i in range(5)])
        assert np.array_equal(batch, single)  # the batch a face is drawn in does not matter
        monkeypatch.setattr(drawing, "WINDOWS", False)
        assert np.array_equal(single, np.stack([ds.render(i) for i in range(5)]))
        monkeypatch.setattr(drawing, "WINDOWS", True)


@pytest.mark.parametrize("resolution", [8, 16, 32, 64, 128, 256])
def test_every_resolution(resolution):
    ds = ToyFaces(resolution=resolution, size=2)
    image, labels = ds[1]
    assert image.shape == (3, resolution, resolution) and image.dtype == torch.uint8
    assert labels.shape == (7,) and labels.dtype == torch.float32
    assert len(ds) == 2 and ds.label_dim == 7 and ds.attribute_names == list(ATTRIBUTES)
    drawn = ds.render(1)
    assert drawn.shape == (resolution, resolution, 3) and drawn.dtype == np.uint8
    assert np.array_equal(drawn, image.permute(1, 2, 0).numpy())
    assert image.float().std() > 20  # a face, not a flat colour
    if resolution > 8:
        small, small_labels = ds.load_at(1, resolution // 4)
        assert torch.equal(small, downsample_uint8(image, resolution // 4))
        half = ds.at_resolution(resolution // 2)[1][0]
        assert torch.equal(half, downsample_uint8(image, resolution // 2))
        assert torch.equal(small_labels, labels)


def test_render_reaches_1024():
    assert ToyFaces(resolution=8, size=1).render(0, resolution=1024).shape == (1024, 1024, 3)


def test_labels_one_hair_colour_and_balanced(faces2000):
    _, labels = faces2000
    assert labels.shape == (2000, 7) and set(np.unique(labels)) == {0.0, 1.0}
    assert (labels[:, :3].sum(1) == 1).all()
    for k, name in enumerate(ATTRIBUTES):
        expected = 1 / 3 if k < 3 else 1 / 2
        assert abs(labels[:, k].mean() - expected) < 0.05, name


def test_attribute_selection_and_order():
    ds = ToyFaces(resolution=8, size=20, attributes=["smiling", "male"])
    assert ds.attribute_names == ["smiling", "male"] and ds.label_dim == 2
    assert ds.labels.shape == (20, 2) and ds.labels.dtype == torch.float32
    for i in range(20):
        own = ds.identity_attributes(i)
        assert ds.load(i)[1].tolist() == [own["smiling"], own["male"]]
    assert ToyFaces(resolution=8, size=2, attributes=[]).load(0)[1].shape == (0,)


def test_identity_is_independent_of_attributes(faces2000):
    images, labels = faces2000
    params = drawing.identity(0, range(2000))
    features = {"background": images[:, :, 0, 0].astype(float).mean(1),
                "skin": params["skin"].reshape(3, -1).mean(0)}
    features.update({k: params[k].ravel() for k in ("fa", "fb", "eye_y", "mouth_y", "fcx")})
    for name, values in features.items():
        for k, attr in enumerate(ATTRIBUTES):
            r = np.corrcoef(values, labels[:, k])[0, 1]
            assert abs(r) < 0.1, (name, attr, r)


def test_toggles_change_only_their_region():
    ds = ToyFaces(resolution=32, size=1)
    px = 2 / 32
    rows = (np.arange(32) * 2 + 1 - 32) / 32
    for i in range(40):
        base = ds.render(i).astype(int)
        p = drawing.identity(0, [i])
        for name in ATTRIBUTES[:3] + tuple(TOGGLES):
            if name in ATTRIBUTES[:3]:
                if ds.identity_attributes(i)[name]:
                    continue
                other = ds.render(i, {name: 1}).astype(int)
            else:
                other = toggled(ds, i, name).astype(int)
            diff = np.abs(other - base)
            # Noticeable: the mouth is the smallest change, a few pixels at 32px.
            assert diff.mean() > 0.25 and (diff.max(-1) > 30).sum() >= 3, (i, name)
            corners = np.concatenate([diff[:4, :4], diff[:4, -4:]])
            assert corners.max() == 0, (i, name)  # background stays
            changed = rows[diff.max(axis=(1, 2)) > 0]
            if name == "eyeglasses":
                ey, ring = p["eye_y"].item(), 1.3 * p["eye_r"].item() + 0.035 + 0.02 + px
                assert (np.abs(changed - ey) <= ring + px).all(), (i, changed, ey)
            if name == "smiling":
                my = p["mouth_y"].item()
                assert (changed >= my - 0.1 - px).all() and (changed <= my + 0.14 + px).all()


def test_every_attribute_is_visible_to_a_linear_classifier(faces2000):
    """Ridge regression on raw 32px pixels, 1500 faces to fit, 500 held out: > 90% each."""
    images, labels = faces2000
    x = torch.from_numpy(images.reshape(2000, -1)).double() / 255
    y = torch.from_numpy(labels).double() * 2 - 1
    mean, std = x[:1500].mean(0), x[:1500].std(0) + 1e-3
    x = (x - mean) / std
    train, test = x[:1500], x[1500:]
    ridge = 100 * torch.eye(1500, dtype=torch.float64)
    coef = torch.linalg.solve(train @ train.T + ridge, y[:1500])  # dual form: 1500 x 1500
    accuracy = (((test @ train.T) @ coef > 0) == (y[1500:] > 0)).double().mean(0)
    for name, acc in zip(ATTRIBUTES, accuracy.tolist()):
        assert acc > 0.9, (name, acc)


def test_disk_cache_round_trip(cache, monkeypatch):
    first = ToyFaces(resolution=16, size=7, seed=5)
    pixels = np.array(first.images)
    assert first.cache_path.parent == cache / "toyfaces" and first.cache_path.exists()
    assert [p.name for p in (cache / "toyfaces").iterdir()] == [first.cache_path.name]  # no temp
    assert first.cache_path.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # teammates read it
    monkeypatch.setattr(drawing, "draw", lambda *a: pytest.fail("drew instead of reading"))
    second = ToyFaces(resolution=16, size=7, seed=5)
    assert isinstance(second.images, np.memmap) and np.array_equal(second.images, pixels)
    assert torch.equal(second.load(3)[0], torch.from_numpy(pixels[3]))
    clone = pickle.loads(pickle.dumps(second))  # workers re-open the mmap
    assert clone._images is None and np.array_equal(clone.images, pixels)


def test_unwritable_cache_falls_back_to_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GANZOO_CACHE", str(blocker))
    ds = ToyFaces(resolution=8, size=3)
    assert ds.images.shape == (3, 3, 8, 8)
    assert np.array_equal(ds.render(2), ds.images[2].transpose(1, 2, 0))


def test_render_with_attributes():
    ds = ToyFaces(resolution=16, size=1)
    own = ds.identity_attributes(40)  # identities past `size` exist too
    assert sum(own[n] for n in ATTRIBUTES[:3]) == 1
    assert np.array_equal(ds.render(40, own), ds.render(40))
    hair = next(n for n in ATTRIBUTES[:3] if not own[n])
    full = dict(own, **{n: int(n == hair) for n in ATTRIBUTES[:3]})
    assert np.array_equal(ds.render(40, {hair: 1}), ds.render(40, full))


@pytest.mark.parametrize("kwargs", [
    {"resolution": 4}, {"resolution": 48}, {"resolution": 2048}, {"resolution": 32.0},
    {"resolution": "32"}, {"resolution": True}, {"size": 0}, {"size": -5}, {"size": 2.5},
    {"seed": -1}, {"seed": 0.5}, {"attributes": ["male", "hat"]}, {"attributes": "male"},
    {"attributes": ["male", "male"]},
])
def test_bad_parameters(kwargs):
    with pytest.raises(UserError) as err:
        ToyFaces(**kwargs)
    assert "\n" not in str(err.value) and "toyfaces" in str(err.value)


@pytest.mark.parametrize("attributes", [
    {"black_hair": 1, "blond_hair": 1}, {"black_hair": 0, "blond_hair": 0}, {"young": 2},
    {"hat": 1},
])
def test_bad_render_arguments(attributes):
    ds = ToyFaces(resolution=8, size=1)
    with pytest.raises(UserError):
        ds.render(0, attributes)
    with pytest.raises(UserError):
        ds.render(0, resolution=12)
    with pytest.raises(UserError):
        ds.render(-1)
