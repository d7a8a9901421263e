"""Finding the images under a folder, and saying why one could not be read."""

from __future__ import annotations

import os
from pathlib import Path

import ganzoo

__all__ = ["IMAGE_EXTENSIONS", "folder_path", "image_files", "scan_images", "unreadable_reason"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LOOKED_FOR = f"looked for {', '.join(IMAGE_EXTENSIONS)}, recursively"


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


def folder_path(folder) -> str:
    """The path of an existing directory (`~` expanded), else a UserError naming it."""
    path = os.path.expanduser(os.fspath(folder))
    if not os.path.exists(path):
        raise ganzoo.UserError(f"data folder '{os.fspath(folder)}' does not exist")
    if not os.path.isdir(path):
        raise ganzoo.UserError(f"data folder '{os.fspath(folder)}' is not a directory")
    return path


def image_files(path: str, shown) -> list[str]:
    """`scan_images(path)`, which must find something (`shown`: the folder as the user named it)."""
    files = scan_images(path)
    if not files:
        raise ganzoo.UserError(f"data folder '{os.fspath(shown)}' holds no images ({LOOKED_FOR})")
    return files


def unreadable_reason(error: BaseException, path: str) -> str:
    """One line on why a file could not be read (the path itself left out: it is shown beside)."""
    text = str(error).replace(f" {path!r}", "")
    return text.splitlines()[0] if text else type(error).__name__
