"""`image_folder`: every image under a folder, centre-cropped to a square and resized.

Choices worth knowing:

- Transparency is composited onto black (not dropped): dropping alpha exposes whatever RGB
  the encoder left under transparent pixels, which is often garbage.
- 16-bit grey is scaled to 8 bits (value / 257); PIL's own conversion would clip it.
- Resizing uses PIL's LANCZOS, which is antialiased at any factor (its support widens with
  the scale); `reducing_gap=3` box-reduces huge factors first (about 2x faster, within
  1-2 levels of the exact result). Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale
  (`Image.draft`, DCT scaling), never below 2x the target: 1024px -> 64px takes ~3.5 ms
  instead of ~12 ms.
- Unreadable files (corrupt, truncated, vanished) are found lazily on load, never up front.
  A bad index yields the next readable image (wrapping), so the mapping index -> image is a
  fixed function of the files and training and resume stay deterministic. Bad files are
  remembered per process and logged once per process on logger "ganzoo.data"; `verify()`
  checks every file.

With a multi-resolution cache (`ganzoo prepare FOLDER --out CACHE`, see `multires.py`) nothing
is decoded or resized while training: `load` and `load_at` copy one row of a memory-mapped
level, so an 8x8 stage never touches the 1024px JPEGs. Two ways to use one:

- `cache = "CACHE"` beside `root = "FOLDER"`: the cache must have been made with the same
  `crop` and at least `resolution`, and (when FOLDER exists here) from the same file names;
  otherwise a UserError says to re-run `ganzoo prepare`. FOLDER may be absent (say, only the
  cache was copied to the training machine).
- `root = "CACHE"`: a root that is itself a cache is used as one (`crop`, if given, must
  match the cache's).

A cached dataset holds only the readable images (the unreadable ones were left out by
`prepare` and are listed in `bad_files`), in the cache's row order. Levels below
`resolution` come from the cache too: each is the exact box mean of the cache's top level,
rounded once (as ProGAN's official tool), which is what `downsample_uint8` of the top gives.
When the cache's top level is above `resolution`, the images are box-filtered from it
rather than LANCZOS-resized from the files.

Cached datasets of at most 64px set `in_memory`, so the engine loads them in the training
process: a batch of 64 then costs ~0.4 ms, less than a hand-over from DataLoader workers
(benchmarks/bench_data.py, 2 CPUs: 8px 110k img/s in process vs 23k with 2 workers; 64px
66k vs 14k). Larger ones keep workers, which overlap their bigger row copies with training
(256px: 420 img/s in process vs 5k with workers; 1024px: 70 vs 265).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ganzoo.data.base import ImageDataset
from ganzoo.errors import UserError

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "scan_images"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_LOOKED_FOR = f"looked for {', '.join(IMAGE_EXTENSIONS)}, recursively"
log = logging.getLogger("ganzoo.data")


def scan_images(root: str | os.PathLike) -> list[str]:
    """Image paths under `root`, recursively, hidden entries skipped, in a fixed order."""
    found: list[tuple[tuple[str, ...], str]] = []
    seen: set[str] = set()  # real paths of visited dirs: symlinks are followed, loops are not
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(os.path.relpath(dirpath, root)).parts
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(((*rel, name), os.path.join(dirpath, name)))
    # Sort on path components, so the order does not depend on the OS separator or on walk order.
    return [path for _, path in sorted(found)]


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(img, dtype=np.float64) / 257.0
        img = Image.fromarray(grey.round().clip(0, 255).astype(np.uint8))
    elif img.mode == "F":
        img = Image.fromarray(np.asarray(img).round().clip(0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        img = img.convert("RGBA")
        black = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, img)
    return img if img.mode == "RGB" else img.convert("RGB")


def read_image_array(path: str, resolution: int, crop: int | None = None) -> tuple[np.ndarray, int]:
    """Decode one file into a uint8 (3, R, R) array, and the side of the square it was cut from
    (in original pixels; smaller than R means the image was upscaled). Raises on unreadable files.
    Plain numpy and PIL: `ganzoo prepare` runs it in forked worker processes."""
    with Image.open(path) as img:
        full_w, full_h = img.size
        side = min(full_w, full_h, crop or full_w)  # the square to keep, in original pixels
        # Decode JPEGs at a reduced scale, but keep at least 2x the target for LANCZOS.
        want = 2 * resolution / side
        img.draft("RGB", (max(1, int(np.ceil(full_w * want))), max(1, int(np.ceil(full_h * want)))))
        scale = full_w / img.size[0]  # DCT scaling factor (1, 2, 4 or 8)
        img.load()  # inside the caller's try: a truncated file must fail here, not later
        ImageOps.exif_transpose(img, in_place=True)
        img = _to_rgb(img)
    w, h = img.size
    s = max(1, min(w, h, round(side / scale)))
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s))
    if s != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(img).transpose(2, 0, 1).copy(), side  # copy(): C order, writable


def read_image(path: str, resolution: int, crop: int | None = None) -> torch.Tensor:
    """Decode one file into a uint8 (3, R, R) tensor; raises on any unreadable file."""
    return torch.from_numpy(read_image_array(path, resolution, crop)[0])


def unreadable_reason(error: BaseException, path: str) -> str:
    """One line on why a file could not be read (the path itself left out: it is shown beside)."""
    text = str(error).replace(f" {path!r}", "")
    return text.splitlines()[0] if text else type(error).__name__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML `true` is no size


class ImageFolder(ImageDataset):
    """Unconditional images from a folder: png, jpg, jpeg, webp and bmp, found recursively.

    `crop` first keeps a centre `crop` x `crop` region (e.g. 178 for aligned CelebA, as
    StarGAN does); the result is centre-cropped to a square and resized to `resolution`.
    `cache` names a `ganzoo prepare` cache to read the images from instead (a `root` that is
    a cache is read as one); see the module docstring.
    """

    attribute_names: list[str] = []

    in_memory = False  # True with a cache of at most 64px: see the module docstring

    def __init__(self, root: str, resolution: int, crop: int | None = None,
                 cache: str | None = None):
        from ganzoo.data.multires import MultiresCache, is_cache  # imports this module

        if not _is_int(resolution) or resolution < 4 or resolution & (resolution - 1):
            raise UserError(f"image_folder: resolution must be a power of two >= 4, "
                            f"got {resolution!r}")
        if crop is not None and (not _is_int(crop) or crop < 1):
            raise UserError(f"image_folder: crop must be a positive number of pixels, got {crop!r}")
        if cache is not None and not isinstance(cache, (str, os.PathLike)):
            raise UserError(f"image_folder: cache must be the path of a prepared cache, got {cache!r}")
        shown = os.fspath(root)
        path = os.path.expanduser(shown)
        self.root, self.resolution, self.crop = shown, resolution, crop
        self.attribute_names = []
        # Per-process state; plain containers, so the dataset pickles and forks cleanly.
        self.bad_files: dict[str, str] = {}  # path -> reason, in the order found
        self._report_once = [True]  # list.pop is atomic, so only one thread ever reports
        self.cache: MultiresCache | None = None
        if cache is not None or is_cache(path):
            self._use_cache(MultiresCache(os.path.expanduser(os.fspath(cache or path))),
                            None if cache is None else path)
            return
        if not os.path.exists(path):
            raise UserError(f"data folder '{shown}' does not exist")
        if not os.path.isdir(path):
            raise UserError(f"data folder '{shown}' is not a directory")
        self.files: list[str] = scan_images(path)
        if not self.files:
            raise UserError(f"data folder '{shown}' holds no images ({_LOOKED_FOR})")

    def _use_cache(self, cache, folder: str | None) -> None:
        """Serve images from `cache`; `folder` is the image folder it must match (None when
        `root` is the cache itself)."""
        where = f"image_folder: cache '{cache.path}'"
        crop = f" --crop {self.crop}" if self.crop else ""
        again = (f"re-run `ganzoo prepare {folder or cache.source} --out {cache.path} "
                 f"--resolution {max(self.resolution, cache.resolution)}{crop}`")
        if cache.resolution < self.resolution:
            raise UserError(f"{where} holds images up to {cache.resolution}px, "
                            f"resolution is {self.resolution}; {again}")
        if (folder is not None or self.crop is not None) and cache.crop != self.crop:
            raise UserError(f"{where} was prepared with crop {cache.crop}, the data table asks "
                            f"for crop {self.crop}; {again}")
        if folder is not None and os.path.isdir(folder):
            names = {os.path.relpath(p, folder).replace(os.sep, "/") for p in scan_images(folder)}
            if names != cache.all_files():
                raise UserError(f"{where} was prepared from {len(cache.all_files())} files, "
                                f"'{self.root}' now holds {len(names)} (or others); {again}")
        base = folder or cache.source
        self.cache, self.in_memory = cache, self.resolution <= 64
        self.files = [os.path.join(base, name) for name in cache.files]
        self.bad_files = {os.path.join(base, name): why for name, why in cache.skipped.items()}

    def _from_cache(self, index: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        level = self.cache.level(resolution)
        n, index = len(level), int(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        return torch.from_numpy(np.array(level[index])), torch.zeros(0)

    def load_at(self, index: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cache is not None and resolution in self.cache.resolutions:
            return self._from_cache(index, resolution)  # a stored level: no decoding, no filtering
        return super().load_at(index, resolution)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def skipped(self) -> int:
        """How many unreadable files this process has found so far."""
        return len(self.bad_files)

    def _try_read(self, index: int) -> torch.Tensor | None:
        path = self.files[index]
        if path in self.bad_files:
            return None
        try:
            return read_image(path, self.resolution, self.crop)
        except Exception as error:  # PIL raises many types on bad data; never crash training
            self.bad_files.setdefault(path, unreadable_reason(error, path))
            return None

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cache is not None:
            return self._from_cache(index, self.resolution)
        n, index = len(self.files), int(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        for step in range(n):
            image = self._try_read((index + step) % n)
            if image is not None:
                if step:
                    self._report()
                return image, torch.zeros(0)
        path, reason = list(self.bad_files.items())[0]
        raise UserError(f"data folder '{self.root}': none of its {n} images is readable "
                        f"(first: '{path}: {reason}')")

    def _report(self) -> None:
        try:
            self._report_once.pop()
        except IndexError:
            return
        log.warning("image_folder: %s", self.summary())

    def summary(self) -> str:
        """One line on the unreadable files found so far ('' if none)."""
        if not self.bad_files:
            return ""
        found = list(self.bad_files.items())  # one atomic copy: other threads may be adding
        (path, reason), count = found[0], len(found)
        if self.cache is not None:
            return (f"the cache '{self.cache.path}' left out {count} unreadable "
                    f"file{'s' * (count != 1)} (first: '{path}: {reason}')")
        return (f"skipped {count} unreadable file{'s' * (count != 1)} under '{self.root}' "
                f"so far (first: '{path}: {reason}'); each is replaced by the next readable image")

    def verify(self) -> list[str]:
        """Decode every file (slow); returns the unreadable paths, in dataset order."""
        if self.cache is not None:  # checked when the cache was prepared
            return list(self.bad_files)
        for index in range(len(self.files)):
            self._try_read(index)
        bad = set(self.bad_files)
        return [path for path in self.files if path in bad]
