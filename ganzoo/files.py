"""Writing files so that a crash, a kill or a full disk never leaves a partial file in place.

Every file the engine writes goes to a hidden temporary beside its destination, is flushed to
disk and then renamed over the destination, so readers see the old file or the new one whole.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TEMP_MARK = ".tmp-"  # hidden temporaries are named .<name>.tmp-<pid>


def cache_dir(*parts: str) -> Path:
    """Where ganzoo caches what it can recompute (drawn datasets, classifier weights, real-image
    statistics): $GANZOO_CACHE, by default ~/.cache/ganzoo."""
    root = Path(os.environ.get("GANZOO_CACHE") or os.path.join("~", ".cache", "ganzoo")).expanduser()
    return root.joinpath(*parts)


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` durably, else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # some writers (safetensors) create files 0600
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a rename durable; some file systems cannot sync a directory, which is harmless."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json_lines(path: Path) -> list:
    """The values of a JSON-lines file's whole lines (none if it is absent); a line that does
    not parse (the partial last line of a run in progress, a full disk, a kill) is left out."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
