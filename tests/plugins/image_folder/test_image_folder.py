"""The image_folder dataset: scanning, conversion to RGB, cropping, and unreadable files."""

from __future__ import annotations

import logging
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from ganzoo.dataset import read_image
from ganzoo.errors import UserError
from ganzoo_image_folder.folder import ImageFolder

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def solid(color, size=(32, 32), mode="RGB"):
    return Image.new(mode, size, color)


def save(img: Image.Image, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return str(path)


def mean_rgb(image: torch.Tensor) -> list[float]:
    return image.float().mean(dim=(1, 2)).tolist()


def assert_color(image: torch.Tensor, rgb, tol=6.0):
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    diff = (image.float() - torch.tensor(rgb, dtype=torch.float32)[:, None, None]).abs()
    assert diff.max().item() <= tol, (mean_rgb(image), rgb)


def noise_jpeg(path, size=256, quality=90):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return save(Image.fromarray(pixels), path, quality=quality)


def test_recursion_extensions_hidden_files_and_order(tmp_path):
    save(solid(RED), tmp_path / "b.png")
    save(solid(RED), tmp_path / "a.JPG")
    save(solid(RED), tmp_path / "sub" / "deeper" / "c.jpeg")
    save(solid(RED), tmp_path / "sub" / "d.webp", lossless=True)
    save(solid(RED), tmp_path / "sub" / "e.BMP", format="BMP")
    save(solid(RED), tmp_path / "Z.Png")
    save(solid(RED), tmp_path / ".hidden.png")
    save(solid(RED), tmp_path / ".cache" / "f.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub" / "g.gif").write_bytes(b"GIF89a")  # not a listed extension

    ds = ImageFolder(root=str(tmp_path), resolution=16)
    names = [os.path.relpath(p, tmp_path).replace(os.sep, "/") for p in ds.files]
    assert names == ["Z.Png", "a.JPG", "b.png", "sub/d.webp", "sub/deeper/c.jpeg", "sub/e.BMP"]
    assert ImageFolder(root=str(tmp_path), resolution=16).files == ds.files  # deterministic
    assert len(ds) == 6 and ds.attribute_names == [] and ds.label_dim == 0
    for i in range(len(ds)):
        image, labels = ds[i]
        assert image.shape == (3, 16, 16)
        assert labels.dtype == torch.float32 and labels.shape == (0,)
        assert_color(image, RED, tol=8)


def test_symlink_loop_does_not_hang(tmp_path):
    save(solid(RED), tmp_path / "a.png")
    try:
        os.symlink(tmp_path, tmp_path / "loop", target_is_directory=True)
    except OSError:
        pytest.skip("no symlinks here")
    assert len(ImageFolder(root=str(tmp_path), resolution=4)) == 1


def test_modes_become_rgb(tmp_path):
    grey = save(solid(90, mode="L"), tmp_path / "grey.png")
    rgba = save(solid((255, 0, 0, 255), mode="RGBA"), tmp_path / "rgba.png")
    half = save(solid((0, 200, 0, 128), mode="RGBA"), tmp_path / "half.png")
    la = save(solid((200, 255), mode="LA"), tmp_path / "la.png")
    palette = solid(0, mode="P")
    palette.putpalette([0, 0, 255] + [0] * 765)
    pal = save(palette, tmp_path / "palette.png")
    sixteen = Image.fromarray(np.full((32, 32), 0x8080, dtype=np.uint16))
    assert sixteen.mode == "I;16"
    deep = save(sixteen, tmp_path / "grey16.png")
    cmyk = save(solid((0, 255, 255, 0), mode="CMYK"), tmp_path / "cmyk.jpg", quality=95)

    for path, expected in [(grey, (90,) * 3), (rgba, RED), (half, (0, 100, 0)),
                           (la, (200,) * 3), (pal, BLUE), (deep, (128,) * 3), (cmyk, RED)]:
        image = read_image(path, 8)
        assert image.shape == (3, 8, 8) and image.dtype == torch.uint8, path
        assert_color(image, expected, tol=8)
    assert torch.equal(read_image(grey, 8)[0], read_image(grey, 8)[2])


def test_palette_transparency_composites_onto_black(tmp_path):
    img = solid(1, mode="P")
    img.putpalette([255, 255, 255, 0, 255, 0] + [0] * 762)
    img.info["transparency"] = 1  # index 1 (green) is fully transparent
    path = save(img, tmp_path / "t.png", transparency=1)
    assert_color(read_image(path, 8), (0, 0, 0))


def test_non_square_is_centre_cropped(tmp_path):
    wide = solid(BLUE, (96, 64))
    wide.paste(solid(GREEN, (64, 64)), (16, 0))
    tall = solid(RED, (40, 100))
    tall.paste(solid(GREEN, (40, 40)), (0, 30))
    for path in [save(wide, tmp_path / "wide.png"), save(tall, tmp_path / "tall.png")]:
        assert_color(read_image(path, 16), GREEN, tol=1)


def test_crop_takes_a_centre_region_first(tmp_path):
    img = solid(BLUE, (120, 100))
    img.paste(solid(RED, (40, 40)), (40, 30))
    path = save(img, tmp_path / "a.png")
    ds = ImageFolder(root=str(tmp_path), resolution=8, crop=40)
    assert_color(ds[0][0], RED, tol=1)
    assert ImageFolder(root=str(tmp_path), resolution=8, crop=500)[0][0].shape == (3, 8, 8)
    assert mean_rgb(read_image(path, 8))[2] > 100  # without crop, blue borders remain


def test_crop_with_jpeg_draft_scaling(tmp_path):
    img = solid(BLUE, (1024, 1024))
    img.paste(solid(RED, (256, 256)), (384, 384))
    path = save(img, tmp_path / "big.jpg", quality=95)
    assert_color(read_image(path, 16, crop=256), RED, tol=12)
    # 1/8-scale DCT decoding stays close to a full decode of the same pixels (PNG: no draft).
    rng = np.random.default_rng(2)
    smooth = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((1024, 1024))
    jpeg = save(smooth, tmp_path / "smooth.jpg", quality=95)
    with Image.open(jpeg) as decoded:
        png = save(decoded, tmp_path / "smooth.png")
    gap = (read_image(jpeg, 64).float() - read_image(png, 64).float()).abs().mean()
    assert gap < 2.0


def test_exif_orientation_is_applied(tmp_path):
    img = solid(BLUE, (32, 32))
    img.paste(solid(RED, (32, 16)), (0, 0))  # red top half as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: the stored top is shown on the right
    path = save(img, tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    image = read_image(path, 8)
    assert_color(image[:, :, 6:], RED, tol=20)
    assert_color(image[:, :, :2], BLUE, tol=20)


@pytest.fixture()
def folder_with_bad_files(tmp_path):
    save(solid(RED), tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(np.random.default_rng(1).bytes(2000))
    noise_jpeg(tmp_path / "c.jpg")
    data = (tmp_path / "c.jpg").read_bytes()
    (tmp_path / "c.jpg").write_bytes(data[: len(data) // 2])
    save(solid(BLUE), tmp_path / "d.png")
    (tmp_path / "e.png").write_bytes(b"")
    return tmp_path


def test_corrupt_and_truncated_files_are_skipped_and_reported_once(folder_with_bad_files, caplog):
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    root = str(folder_with_bad_files)
    ds = ImageFolder(root=root, resolution=8)
    assert len(ds) == 5 and ds.skipped == 0  # nothing is decoded up front
    with caplog.at_level(logging.WARNING, logger="ganzoo.data"):
        images = [ds[i][0] for i in range(len(ds))]
        again = [ds[i][0] for i in range(len(ds))]
    for i, color in enumerate([RED, BLUE, BLUE, BLUE, RED]):  # the next readable, wrapping
        assert_color(images[i], color, tol=1)
        assert torch.equal(images[i], again[i])
    assert ds.skipped == 3
    assert sorted(os.path.basename(p) for p in ds.bad_files) == ["b.jpg", "c.jpg", "e.png"]
    records = [r for r in caplog.records if r.name == "ganzoo.data"]
    assert len(records) == 1
    message = records[0].getMessage()
    # The first file, once; no count, which would be stale at once (all the files are found lazily).
    assert message.startswith(f"image_folder: unreadable files under '{root}' are replaced by the "
                              "next readable image") and "so far" not in message
    assert f"(first: '{os.path.join(root, 'b.jpg')}: cannot identify image file')" in message
    assert "skipped 3 unreadable files" in ds.summary()

    fresh = ImageFolder(root=root, resolution=8)
    assert torch.equal(fresh[2][0], images[2])  # a fresh process sees the same images
    assert [os.path.basename(p) for p in fresh.verify()] == ["b.jpg", "c.jpg", "e.png"]


def test_truncated_jpeg_is_corrupt_even_with_draft(tmp_path):
    noise_jpeg(tmp_path / "x.jpg", size=1024)
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "x.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError):
        read_image(str(tmp_path / "x.jpg"), 16)  # decoded at 1/8 scale


def test_all_files_unreadable_is_a_user_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"nope")
    ds = ImageFolder(root=str(tmp_path), resolution=8)
    with pytest.raises(UserError, match="none of its 1 images is readable"):
        ds[0]
    assert ds.verify() == [str(tmp_path / "a.jpg")]


def test_missing_empty_and_non_folder_roots(tmp_path):
    with pytest.raises(UserError, match=r"data folder '.*nowhere' does not exist"):
        ImageFolder(root=str(tmp_path / "nowhere"), resolution=8)
    (tmp_path / "empty").mkdir()
    save(solid(RED), tmp_path / "empty" / ".hidden.png")
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(UserError, match=r"'.*empty' holds no images \(looked for .png"):
        ImageFolder(root=str(tmp_path / "empty"), resolution=8)
    path = save(solid(RED), tmp_path / "file.png")
    with pytest.raises(UserError, match="is not a directory"):
        ImageFolder(root=path, resolution=8)


@pytest.mark.parametrize("resolution", [0, 2, 3, 6, 100, -4, True, "64", 8.0])
def test_bad_resolution(tmp_path, resolution):
    save(solid(RED), tmp_path / "a.png")
    with pytest.raises(UserError, match="resolution"):
        ImageFolder(root=str(tmp_path), resolution=resolution)


def test_bad_crop(tmp_path):
    save(solid(RED), tmp_path / "a.png")
    with pytest.raises(UserError, match="crop"):
        ImageFolder(root=str(tmp_path), resolution=8, crop=0)


def test_views_pickling_and_dataloader_workers(tmp_path):
    for i, color in enumerate([RED, GREEN, BLUE, (10, 20, 30)]):
        save(solid(color, (40, 30)), tmp_path / f"{i}.png")
    (tmp_path / "9.jpg").write_bytes(b"junk")
    ds = ImageFolder(root=str(tmp_path), resolution=16)
    low = ds.at_resolution(4)
    assert low[0][0].shape == (3, 4, 4)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.files == ds.files and torch.equal(clone[4][0], ds[4][0])
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2)
    (images, labels), = list(loader)
    assert images.shape == (5, 3, 16, 16) and labels.shape == (5, 0)
    assert torch.equal(images, torch.stack([ds[i][0] for i in range(5)]))
