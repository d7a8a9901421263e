"""Reading multi-resolution image caches (`ganzoo prepare`, see `build`), like ProGAN's
multi-resolution TFRecords.

A cache is a directory:

- `manifest.json`, written last: format and version, the source folder, `resolution` (the top
  level), `crop`, `count`, `resolutions` and their `levels` files, `files` (source paths
  relative to the source folder, in row order), `skipped` (unreadable files and why),
  `upscaled` (images whose square was smaller than the top level), and `source_hash` (of
  every scanned file's name, size and mtime: what makes a rebuild a no-op).
- `r0004.npy`, `r0008.npy`, ... up to the top level: uint8 arrays (count, 3, R, R), plain
  `.npy`, so `np.load(path, mmap_mode="r")` maps them without reading.
"""

from __future__ import annotations

import json
import os

import numpy as np

import ganzoo

__all__ = ["FORMAT", "MANIFEST", "VERSION", "MultiresCache", "is_cache", "level_file", "read_manifest"]

FORMAT, VERSION, MANIFEST = "ganzoo-multires", 1, "manifest.json"


def level_file(resolution: int) -> str:
    return f"r{resolution:04d}.npy"


def is_cache(path) -> bool:
    """Whether `path` is a directory with a ganzoo cache manifest (complete caches only have one)."""
    return read_manifest(os.fspath(path)) is not None


def read_manifest(path: str) -> dict | None:
    """The manifest of the cache at `path`, or None if there is no (valid) one."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


class MultiresCache:
    """A prepared cache, read-only. Levels are memory-mapped lazily in each process (and not
    pickled: DataLoader workers map the files themselves)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        where = f"cache '{self.path}'"
        if not os.path.isdir(self.path):
            raise ganzoo.UserError(f"{where} does not exist; create it with "
                                   f"`ganzoo prepare FOLDER --out {self.path}`")
        manifest = read_manifest(self.path)
        if manifest is None:
            raise ganzoo.UserError(f"{where} is not a ganzoo cache (no valid {MANIFEST}); "
                                   f"create it with `ganzoo prepare FOLDER --out {self.path}`")
        if manifest.get("version") != VERSION:
            raise ganzoo.UserError(f"{where} has format version {manifest.get('version')!r}, this "
                                   f"ganzoo reads version {VERSION}; re-run `ganzoo prepare`")
        self.manifest = manifest
        try:
            self.source: str = manifest["source"]
            self.resolution: int = manifest["resolution"]
            self.crop: int | None = manifest["crop"]
            self.count: int = manifest["count"]
            self.files: list[str] = list(manifest["files"])
            self.skipped: dict[str, str] = dict(manifest["skipped"])
            self.resolutions: list[int] = [int(r) for r in manifest["resolutions"]]
        except (KeyError, TypeError, ValueError) as error:
            raise ganzoo.UserError(f"{where}: damaged {MANIFEST} ({type(error).__name__}: {error}); "
                                   "re-run `ganzoo prepare`") from None
        self._levels: dict[int, np.ndarray] = {}
        for r in self.resolutions:  # catches a damaged cache now, not in a worker mid-training
            shape = self.level(r).shape
            if shape != (self.count, 3, r, r):
                raise ganzoo.UserError(f"{where}: {level_file(r)} holds {shape}, expected "
                                       f"{(self.count, 3, r, r)}; re-run `ganzoo prepare`")

    def level(self, resolution: int) -> np.ndarray:
        """The (count, 3, r, r) uint8 array of one level, memory-mapped."""
        array = self._levels.get(resolution)
        if array is None:
            path = os.path.join(self.path, level_file(resolution))
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as error:
                raise ganzoo.UserError(f"cache '{self.path}': cannot read {level_file(resolution)} "
                                       f"({error}); re-run `ganzoo prepare`") from None
            self._levels[resolution] = array
        return array

    def all_files(self) -> set[str]:
        """Every source file the cache was built from, readable or not (relative paths)."""
        return set(self.files) | set(self.skipped)

    def __getstate__(self):
        return dict(self.__dict__, _levels={})
