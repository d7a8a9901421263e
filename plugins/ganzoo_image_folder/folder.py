"""`image_folder`: every image under a folder, centre-cropped to a square and resized.

Images are decoded by `ganzoo.read_image` (its docstring: transparency, 16-bit grey, LANCZOS,
JPEG draft decoding). Unreadable files (corrupt, truncated, vanished) are found lazily on
load, never up front. A bad index yields the next readable image (wrapping), so the mapping
index -> image is a fixed function of the files and training and resume stay deterministic.
Bad files are remembered per process; the first is logged once per process on logger
"ganzoo.data", `skipped` counts them, `summary()` describes them and `verify()` checks every file.

With a multi-resolution cache (`ganzoo prepare FOLDER --out CACHE`, see `build` and `cache`)
nothing is decoded or resized while training: `load` and `load_at` copy one row of a
memory-mapped level, so an 8x8 stage never touches the 1024px JPEGs. Two ways to use one:

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

import numpy as np
import torch

import ganzoo
from ganzoo_image_folder.cache import MultiresCache, is_cache
from ganzoo_image_folder.scan import folder_path, image_files, scan_images, unreadable_reason

__all__ = ["ImageFolder"]

MIN_RESOLUTION = 4
IN_MEMORY_RESOLUTION = 64  # cached datasets up to this size load in process (module docstring)
log = logging.getLogger("ganzoo.data")


class ImageFolder(ganzoo.ImageDataset):
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
        ganzoo.checks.power_of_two(resolution, "image_folder: resolution", MIN_RESOLUTION)
        if crop is not None:
            ganzoo.checks.count(crop, "image_folder: crop")
        if cache is not None and not isinstance(cache, (str, os.PathLike)):
            raise ganzoo.UserError(f"image_folder: cache must be the path of a prepared cache, "
                                   f"got {ganzoo.checks.show(cache)}")
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
        self.files: list[str] = image_files(folder_path(root), shown)

    def _use_cache(self, cache: MultiresCache, folder: str | None) -> None:
        """Serve images from `cache`; `folder` is the image folder it must match (None when
        `root` is the cache itself)."""
        where = f"image_folder: cache '{cache.path}'"
        crop = f" --crop {self.crop}" if self.crop else ""
        again = (f"re-run `ganzoo prepare {folder or cache.source} --out {cache.path} "
                 f"--resolution {max(self.resolution, cache.resolution)}{crop}`")
        if cache.resolution < self.resolution:
            raise ganzoo.UserError(f"{where} holds images up to {cache.resolution}px, "
                                   f"resolution is {self.resolution}; {again}")
        if (folder is not None or self.crop is not None) and cache.crop != self.crop:
            raise ganzoo.UserError(f"{where} was prepared with crop {cache.crop}, the data table "
                                   f"asks for crop {self.crop}; {again}")
        if folder is not None and os.path.isdir(folder):
            names = {os.path.relpath(p, folder).replace(os.sep, "/") for p in scan_images(folder)}
            if names != cache.all_files():
                raise ganzoo.UserError(f"{where} was prepared from {len(cache.all_files())} files, "
                                       f"'{self.root}' now holds {len(names)} (or others); {again}")
        base = folder or cache.source
        self.cache, self.in_memory = cache, self.resolution <= IN_MEMORY_RESOLUTION
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
            return ganzoo.dataset.read_image(path, self.resolution, self.crop)
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
        raise ganzoo.UserError(f"data folder '{self.root}': none of its {n} images is readable "
                               f"(first: '{path}: {reason}')")

    def _report(self) -> None:
        """Log the first unreadable file, once: a count here would be out of date at once
        (files are found lazily); `skipped` and `summary()` give it whenever asked."""
        try:
            self._report_once.pop()
        except IndexError:
            return
        path, reason = list(self.bad_files.items())[0]  # a copy: other threads may be adding
        log.warning("image_folder: unreadable files under '%s' are replaced by the next readable "
                    "image (first: '%s: %s'); reported once, `verify()` lists them all",
                    self.root, path, reason)

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
