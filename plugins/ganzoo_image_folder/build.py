"""Building multi-resolution image caches: `prepare_cache`, behind `ganzoo prepare`.

The format is `cache`'s. The top level is `ganzoo.read_image` at the cache resolution (same
crop, centre square, LANCZOS). Each lower level is a 2x2 box filter of the one above exactly
as ProGAN's `dataset_tool.py` does it: the filter runs in float32 on the *unrounded* level
above and only what is stored is rounded (`np.rint`, half to even). Level r is therefore the
exact mean of its (S/r)^2 block of the top level, rounded once; `ganzoo.dataset.downsample_uint8`
of the top level gives the same pixels. (Rounding every level in turn would drift by up to 1
per level.)

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
from PIL import Image

import ganzoo
from ganzoo_image_folder.cache import (FORMAT, MANIFEST, VERSION, MultiresCache, is_cache, level_file,
                                       read_manifest)
from ganzoo_image_folder.scan import folder_path, image_files, unreadable_reason

__all__ = ["PrepareSummary", "box_levels", "prepare_cache"]

MIN_RESOLUTION, MAX_RESOLUTION, DEFAULT_MAX_RESOLUTION = 4, 8192, 1024


def box_levels(top: np.ndarray) -> list[np.ndarray]:
    """[top, top/2, ..., 4x4] of a uint8 (C, S, S) image, filtered as ProGAN's dataset_tool."""
    levels, img = [top], top
    while img.shape[-1] > MIN_RESOLUTION:
        img = img.astype(np.float32)  # stays float from here on: each level is rounded only on output
        img = (img[:, 0::2, 0::2] + img[:, 0::2, 1::2] + img[:, 1::2, 0::2] + img[:, 1::2, 1::2]) * 0.25
        levels.append(np.rint(img).clip(0, 255).astype(np.uint8))
    return levels


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
    if resolution is not None:
        ganzoo.checks.power_of_two(resolution, "prepare: resolution", MIN_RESOLUTION, MAX_RESOLUTION)
    if crop is not None:
        ganzoo.checks.count(crop, "prepare: crop")
    if workers is not None:
        ganzoo.checks.count(workers, "prepare: workers", minimum=0)
    path = folder_path(folder)
    if is_cache(path):
        raise ganzoo.UserError(f"'{os.fspath(folder)}' is already a prepared cache, not a folder of images")
    return path, image_files(path, folder)


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
    sides = []
    for path in files[:: max(1, len(files) // 64)][:64]:
        try:
            with Image.open(path) as img:
                sides.append(min(*img.size, crop or img.size[0]))
        except Exception:  # unreadable files are the build's business
            continue
    if not sides:
        raise ganzoo.UserError(f"prepare: none of the sampled images under '{folder}' is readable; "
                               "pass --resolution to build anyway")
    side = min(min(sides), DEFAULT_MAX_RESOLUTION)
    if side < MIN_RESOLUTION:
        raise ganzoo.UserError(f"prepare: the smallest sampled image under '{folder}' is {side}px; "
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
                top, side = ganzoo.dataset.read_image_array(path, resolution, crop)
            except Exception as error:  # corrupt, truncated, vanished: skipped and counted
                results.append((row, unreadable_reason(error, path), False))
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
                    raise ganzoo.UserError(f"prepare: not enough disk space for '{path.parent}'") from None
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
        raise ganzoo.UserError(f"--out '{shown}' exists and is not a directory")
    if out.exists() and os.path.realpath(out) == source:
        raise ganzoo.UserError(f"--out '{shown}' is the image folder itself; choose another directory")
    source_hash = _source_hash(root, files)
    if resolution is None:
        resolution = _infer_resolution(files, crop, folder)
    resolutions = [1 << k for k in range(2, resolution.bit_length())]
    old = read_manifest(os.fspath(out)) if out.is_dir() else None
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
            raise ganzoo.UserError(
                f"--out '{shown}' already holds a cache of '{old.get('source')}' at "
                f"{old.get('resolution')}px (crop {old.get('crop')}); remove it or choose another --out")
    elif out.is_dir() and any(out.iterdir()):
        raise ganzoo.UserError(f"--out '{shown}' exists and is not a ganzoo cache; "
                               "choose an empty or new directory")

    row_bytes = {r: 3 * r * r for r in resolutions}
    need = len(files) * sum(row_bytes.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise ganzoo.UserError(f"prepare: the cache needs {need / 2**30:.2f} GiB but only "
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
        # Written atomically and last: the mark of a complete cache.
        ganzoo.files.write_text(temp / MANIFEST, json.dumps(manifest, indent=1))
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
    ganzoo.files.fsync_dir(out.parent)


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
        raise ganzoo.UserError(f"data folder '{root}': none of its {total} images is readable "
                               f"(first: '{files[row]}: {reason}')")
    good = [row for row in range(total) if row not in reasons]
    order = _fill_holes(targets, good, sorted(reasons)) if reasons else good
    for path, (_, offset, _), r in zip(paths, targets, top_down):
        if reasons:
            _shrink(path, len(good), r, offset)
        ganzoo.files.fsync_file(path)
    rel = [os.path.relpath(path, root).replace(os.sep, "/") for path in files]
    return dict(count=len(good), files=[rel[row] for row in order], upscaled=upscaled,
                skipped={rel[row]: reasons[row] for row in sorted(reasons)})
