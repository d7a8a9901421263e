"""Multi-resolution image caches (`ganzoo prepare`), like ProGAN's multi-resolution TFRecords.

A cache is a directory:

- `manifest.json`, written last: format and version, the source folder, `resolution` (the top
  level), `crop`, `count`, `resolutions` and their `levels` files, `files` (source paths
  relative to the source folder, in row order), `skipped` (unreadable files and why),
  `upscaled` (images whose square was smaller than the top level), and `source_hash` (of
  every scanned file's name, size and mtime: what makes a rebuild a no-op).
- `r0004.npy`, `r0008.npy`, ... up to the top level: uint8 arrays (count, 3, R, R), plain
  `.npy`, so `np.load(path, mmap_mode="r")` maps them without reading.

The top level is `image_folder.read_image` at the cache resolution (same crop, centre square,
LANCZOS). Each lower level is a 2x2 box filter of the one above exactly as ProGAN's
`dataset_tool.py` does it: the filter runs in float32 on the *unrounded* level above and only
what is stored is rounded (`np.rint`, half to even). Level r is therefore the exact mean of
its (S/r)^2 block of the top level, rounded once; `base.downsample_uint8` of the top level
gives the same pixels. (Rounding every level in turn would drift by up to 1 per level.)

Rows follow the source file order; an unreadable file's row is filled by the last readable
image, so the arrays hold no holes and the build needs no second pass.

The build streams: forked workers decode and `pwrite` their rows straight into `.npy` files
preallocated with `np.lib.format.open_memmap`, so memory stays flat at any size. Everything
is written into a hidden sibling directory and renamed into place after the manifest, so an
interrupted build never leaves something that looks like a cache.
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Callable

import attrs
import numpy as np

from ganzoo.data import image_folder as _folder
from ganzoo.errors import UserError

__all__ = ["MultiresCache", "PrepareSummary", "box_levels", "is_cache", "prepare_cache"]

FORMAT, VERSION, MANIFEST = "ganzoo-multires", 1, "manifest.json"
MIN_RESOLUTION, MAX_RESOLUTION, DEFAULT_MAX_RESOLUTION = 4, 8192, 1024


def level_file(resolution: int) -> str:
    return f"r{resolution:04d}.npy"


def box_levels(top: np.ndarray) -> list[np.ndarray]:
    """[top, top/2, ..., 4x4] of a uint8 (C, S, S) image, filtered as ProGAN's dataset_tool."""
    levels, img = [top], top
    while img.shape[-1] > MIN_RESOLUTION:
        img = img.astype(np.float32)  # stays float from here on: each level is rounded only on output
        img = (img[:, 0::2, 0::2] + img[:, 0::2, 1::2] + img[:, 1::2, 0::2] + img[:, 1::2, 1::2]) * 0.25
        levels.append(np.rint(img).clip(0, 255).astype(np.uint8))
    return levels


def _power_of_two(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)
            and MIN_RESOLUTION <= value <= MAX_RESOLUTION and not value & (value - 1))


# ----------------------------------------------------------------------------------- reading


def is_cache(path) -> bool:
    """Whether `path` is a directory with a ganzoo cache manifest (complete caches only have one)."""
    return _read_manifest(os.fspath(path)) is not None


def _read_manifest(path: str) -> dict | None:
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
            raise UserError(f"{where} does not exist; create it with "
                            f"`ganzoo prepare FOLDER --out {self.path}`")
        manifest = _read_manifest(self.path)
        if manifest is None:
            raise UserError(f"{where} is not a ganzoo cache (no valid {MANIFEST}); "
                            f"create it with `ganzoo prepare FOLDER --out {self.path}`")
        if manifest.get("version") != VERSION:
            raise UserError(f"{where} has format version {manifest.get('version')!r}, this ganzoo "
                            f"reads version {VERSION}; re-run `ganzoo prepare`")
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
            raise UserError(f"{where}: damaged {MANIFEST} ({type(error).__name__}: {error}); "
                            "re-run `ganzoo prepare`") from None
        self._levels: dict[int, np.ndarray] = {}
        for r in self.resolutions:  # catches a damaged cache now, not in a worker mid-training
            shape = self.level(r).shape
            if shape != (self.count, 3, r, r):
                raise UserError(f"{where}: {level_file(r)} holds {shape}, expected "
                                f"{(self.count, 3, r, r)}; re-run `ganzoo prepare`")

    def level(self, resolution: int) -> np.ndarray:
        """The (count, 3, r, r) uint8 array of one level, memory-mapped."""
        array = self._levels.get(resolution)
        if array is None:
            path = os.path.join(self.path, level_file(resolution))
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as error:
                raise UserError(f"cache '{self.path}': cannot read {level_file(resolution)} "
                                f"({error}); re-run `ganzoo prepare`") from None
            self._levels[resolution] = array
        return array

    def all_files(self) -> set[str]:
        """Every source file the cache was built from, readable or not (relative paths)."""
        return set(self.files) | set(self.skipped)

    def __getstate__(self):
        return dict(self.__dict__, _levels={})


# ----------------------------------------------------------------------------------- building


@attrs.frozen
class PrepareSummary:
    out: str
    source: str
    count: int  # images in the cache
    skipped: int  # unreadable files left out
    resolutions: tuple[int, ...]
    crop: int | None
    upscaled: int  # images whose square side was below the top resolution
    bytes: int  # size of the level files
    seconds: float
    up_to_date: bool  # out already held this cache: nothing was done
    first_skipped: str | None = None  # "path: reason"

    def describe(self) -> str:
        """One line for the CLI."""
        top = self.resolutions[-1]
        what = (f"{self.count} images at {self.resolutions[0]}..{top}px"
                + (f", crop {self.crop}" if self.crop else ""))
        if self.up_to_date:
            return f"'{self.out}' is already an up-to-date cache of '{self.source}' ({what}); nothing to do"
        line = f"cached {what} in '{self.out}' ({self.bytes / 2**30:.2f} GiB, {self.seconds:.1f} s)"
        if self.skipped:
            line += (f"; skipped {self.skipped} unreadable file{'s' * (self.skipped != 1)} "
                     f"(first: '{self.first_skipped}')")
        if self.upscaled:
            line += f"; {self.upscaled} image{'s' * (self.upscaled != 1)} smaller than {top}px upscaled"
        return line


def _check_args(folder, resolution, crop, workers) -> tuple[str, list[str]]:
    if resolution is not None and not _power_of_two(resolution):
        raise UserError(f"prepare: resolution must be a power of two from {MIN_RESOLUTION} "
                        f"to {MAX_RESOLUTION}, got {resolution!r}")
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 1):
        raise UserError(f"prepare: crop must be a positive number of pixels, got {crop!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 0):
        raise UserError(f"prepare: workers must be a count of processes (0: none), got {workers!r}")
    path = os.path.expanduser(os.fspath(folder))
    if not os.path.exists(path):
        raise UserError(f"data folder '{folder}' does not exist")
    if not os.path.isdir(path):
        raise UserError(f"data folder '{folder}' is not a directory")
    if is_cache(path):
        raise UserError(f"'{folder}' is already a prepared cache, not a folder of images")
    files = _folder.scan_images(path)
    if not files:
        raise UserError(f"data folder '{folder}' holds no images ({_folder._LOOKED_FOR})")
    return path, files


def _source_hash(root: str, files: list[str]) -> str:
    digest = hashlib.sha256()
    for path in files:
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        digest.update(f"{os.path.relpath(path, root)}\t{size}\t{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _infer_resolution(files: list[str], crop: int | None, folder) -> int:
    """The largest power of two within the smallest square among up to 64 sampled images (their
    headers only), capped at 1024."""
    from PIL import Image

    sides = []
    for path in files[:: max(1, len(files) // 64)][:64]:
        try:
            with Image.open(path) as img:
                sides.append(min(*img.size, crop or img.size[0]))
        except Exception:  # unreadable files are the build's business
            continue
    if not sides:
        raise UserError(f"prepare: none of the sampled images under '{folder}' is readable; "
                        "pass --resolution to build anyway")
    side = min(min(sides), DEFAULT_MAX_RESOLUTION)
    if side < MIN_RESOLUTION:
        raise UserError(f"prepare: the smallest sampled image under '{folder}' is {side}px; "
                        f"pass --resolution (at least {MIN_RESOLUTION})")
    return 1 << (side.bit_length() - 1)


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _build_rows(job):
    """Worker: decode some files, filter them into every level and write their rows in place."""
    resolution, crop, targets, items = job
    results, fds = [], None
    try:
        for row, path in items:
            try:
                top, side = _folder.read_image_array(path, resolution, crop)
            except Exception as error:  # corrupt, truncated, vanished: skipped and counted
                results.append((row, _folder.unreadable_reason(error, path), False))
                continue
            if fds is None:
                fds = [os.open(target, os.O_WRONLY) for target, _, _ in targets]
            for fd, (_, offset, row_bytes), level in zip(fds, targets, box_levels(top)):
                _pwrite_all(fd, level.tobytes(), offset + row * row_bytes)
            results.append((row, None, side < resolution))
    finally:
        for fd in fds or ():
            os.close(fd)
    return results


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _create_level(path: Path, count: int, resolution: int) -> int:
    """Preallocate one level file; returns the offset of its first row."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                      shape=(count, 3, resolution, resolution))
    offset = array.offset
    del array
    if hasattr(os, "posix_fallocate"):  # a full disk fails now, not as SIGBUS or EIO later
        with open(path, "r+b") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, os.path.getsize(path))
            except OSError as error:
                if error.errno == errno.ENOSPC:
                    raise UserError(f"prepare: not enough disk space for '{path.parent}'") from None
                # filesystems without fallocate: the file simply stays sparse
    return offset


def _shrink(path: Path, count: int, resolution: int, offset: int) -> None:
    """Rewrite a level's header for fewer rows (same header length) and truncate its file."""
    with open(path, "r+b") as f:
        major, _ = np.lib.format.read_magic(f)
        prefix = f.tell() + (2 if major == 1 else 4)  # magic + version, then the header length
        text = repr({"descr": "|u1", "fortran_order": False, "shape": (count, 3, resolution, resolution)})
        space = offset - prefix
        f.seek(prefix)
        f.write((text + " " * (space - len(text) - 1) + "\n").encode("latin1"))
        f.truncate(offset + count * 3 * resolution * resolution)


def _fill_holes(targets, good: list[int], bad: list[int]) -> list[int]:
    """Move the last readable rows into the rows of unreadable files. Returns the source row of
    every final row."""
    order = list(range(len(good) + len(bad)))
    holes = [row for row in bad if row < len(good)]
    movers = [row for row in good if row >= len(good)]
    for path, offset, row_bytes in targets:
        fd = os.open(path, os.O_RDWR)
        try:
            for hole, mover in zip(holes, movers):
                _pwrite_all(fd, os.pread(fd, row_bytes, offset + mover * row_bytes),
                            offset + hole * row_bytes)
        finally:
            os.close(fd)
    for hole, mover in zip(holes, movers):
        order[hole] = mover
    return order[:len(good)]


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # directories on some filesystems
        pass
    finally:
        os.close(fd)


def _remove_dead_partials(out: Path) -> None:
    """Temporary directories of builds whose process is gone (killed) are removed."""
    for entry in out.parent.glob(f".{out.name}.partial-*"):
        try:
            pid = int(entry.name.rsplit(".partial-", 1)[1].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except (ValueError, IndexError, OSError):
            continue


def prepare_cache(folder, out, *, resolution: int | None = None, crop: int | None = None,
                  workers: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> PrepareSummary:
    """Build (or confirm) a multi-resolution cache of every image under `folder` in `out`.

    `resolution`: the top level, a power of two; by default the largest power of two within
    the smallest image side (after `crop`) among up to 64 sampled images, at most 1024.
    `workers`: decoding processes (default: the CPUs available; 0 or 1 decodes in this process).
    `progress(done, total)` is called as images finish. Bad input raises UserError. If `out`
    already holds a complete cache of the same files and settings nothing is done; a cache of
    the same folder and settings whose files changed is rebuilt and replaced; anything else
    in `out` is an error.
    """
    started = time.perf_counter()
    root, files = _check_args(folder, resolution, crop, workers)
    source = os.path.realpath(root)
    out = Path(os.path.expanduser(os.fspath(out)))
    shown = os.fspath(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{shown}' exists and is not a directory")
    if out.exists() and os.path.realpath(out) == source:
        raise UserError(f"--out '{shown}' is the image folder itself; choose another directory")
    source_hash = _source_hash(root, files)
    if resolution is None:
        resolution = _infer_resolution(files, crop, folder)
    resolutions = [1 << k for k in range(2, resolution.bit_length())]
    old = _read_manifest(os.fspath(out)) if out.is_dir() else None
    if old is not None:
        same = (old.get("source") == source and old.get("resolution") == resolution
                and old.get("crop") == crop)
        if same and old.get("version") == VERSION and old.get("source_hash") == source_hash:
            cache = MultiresCache(out)  # also checks the level files are intact
            return PrepareSummary(
                out=shown, source=source, count=cache.count, skipped=len(cache.skipped),
                resolutions=tuple(resolutions), crop=crop, upscaled=old.get("upscaled", 0),
                bytes=sum(cache.level(r).nbytes for r in resolutions),
                seconds=time.perf_counter() - started, up_to_date=True,
                first_skipped=next((f"{p}: {r}" for p, r in cache.skipped.items()), None))
        if not same:
            raise UserError(
                f"--out '{shown}' already holds a cache of '{old.get('source')}' at "
                f"{old.get('resolution')}px (crop {old.get('crop')}); remove it or choose another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out '{shown}' exists and is not a ganzoo cache; choose an empty or new directory")

    row_bytes = {r: 3 * r * r for r in resolutions}
    need = len(files) * sum(row_bytes.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise UserError(f"prepare: the cache needs {need / 2**30:.2f} GiB but only "
                        f"{free / 2**30:.2f} GiB is free under '{out.parent}'")
    _remove_dead_partials(out)
    temp = out.parent / f".{out.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    temp.mkdir()
    try:
        summary = _build(temp, root, files, resolution, resolutions, crop, workers, progress)
        manifest = dict(format=FORMAT, version=VERSION, source=source, resolution=resolution,
                        crop=crop, resolutions=resolutions, source_hash=source_hash,
                        filter="2x2 box in float32, rounded once per level (np.rint), as ProGAN's dataset_tool",
                        levels={str(r): level_file(r) for r in resolutions},
                        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), **summary)
        text = json.dumps(manifest, indent=1)
        with open(temp / (MANIFEST + ".tmp"), "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp / (MANIFEST + ".tmp"), temp / MANIFEST)  # the mark of a complete cache
        _fsync(temp)
        _swap_into_place(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    skipped = summary["skipped"]
    return PrepareSummary(
        out=shown, source=source, count=summary["count"], skipped=len(skipped),
        resolutions=tuple(resolutions), crop=crop, upscaled=summary["upscaled"],
        bytes=summary["count"] * sum(row_bytes.values()), seconds=time.perf_counter() - started,
        up_to_date=False, first_skipped=next((f"{p}: {r}" for p, r in skipped.items()), None))


def _swap_into_place(temp: Path, out: Path) -> None:
    if out.exists():  # an empty directory, or a stale cache of the same folder and settings
        old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(out, old)
        os.replace(temp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temp, out)
    _fsync(out.parent)


def _build(temp: Path, root: str, files: list[str], resolution: int, resolutions: list[int],
           crop: int | None, workers: int | None, progress) -> dict:
    total = len(files)
    top_down = resolutions[::-1]  # box_levels yields the top level first
    paths = [temp / level_file(r) for r in top_down]
    targets = [(os.fspath(path), _create_level(path, total, r), 3 * r * r)
               for path, r in zip(paths, top_down)]
    per_job = max(1, min(64, 4 * 2**20 // resolution**2))  # about 4 MPixel of output per job
    jobs = [(resolution, crop, targets, [(row, files[row]) for row in range(start, min(total, start + per_job))])
            for start in range(0, total, per_job)]
    reasons: dict[int, str] = {}
    upscaled = done = 0
    workers = _default_workers() if workers is None else workers
    if workers <= 1 or len(jobs) == 1:
        results = map(_build_rows, jobs)
        pool = None
    else:  # fork: workers start at once and run plain numpy/PIL (never torch) code
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = context.Pool(min(workers, len(jobs)))
        results = pool.imap_unordered(_build_rows, jobs)
    try:
        for chunk in results:
            for row, reason, was_upscaled in chunk:
                if reason is not None:
                    reasons[row] = reason
                upscaled += was_upscaled
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    if len(reasons) == total:
        row, reason = min(reasons.items())
        raise UserError(f"data folder '{root}': none of its {total} images is readable "
                        f"(first: '{files[row]}: {reason}')")
    good = [row for row in range(total) if row not in reasons]
    order = _fill_holes(targets, good, sorted(reasons)) if reasons else good
    for path, (_, offset, _), r in zip(paths, targets, top_down):
        if reasons:
            _shrink(path, len(good), r, offset)
        _fsync(path)
    rel = [os.path.relpath(path, root).replace(os.sep, "/") for path in files]
    return dict(count=len(good), files=[rel[row] for row in order], upscaled=upscaled,
                skipped={rel[row]: reasons[row] for row in sorted(reasons)})
