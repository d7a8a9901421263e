"""The data plugins (toyfaces, image_folder) use ganzoo's public API only, and not each other
or StarGAN: `import ganzoo`, then `ganzoo.X`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ganzoo

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
FILES = sorted([*(PLUGINS / "ganzoo_toyfaces").glob("*.py"),
                *(PLUGINS / "ganzoo_image_folder").glob("*.py")])


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_there_are_files_to_check():
    assert {p.name for p in FILES} >= {"plugin.py", "dataset.py", "metrics.py", "folder.py", "cache.py",
                                       "build.py"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_imports_only_ganzoo_and_its_own_package(path):
    own = path.parent.name
    for name in imported(path):
        top = name.split(".")[0]
        if top == "ganzoo":
            assert name == "ganzoo", f"{path.name} imports {name}: use `import ganzoo` and ganzoo.X"
        elif top.startswith("ganzoo_"):
            assert top == own, f"{path.name} imports another plugin: {name}"


def test_read_image_is_one_function():
    assert ganzoo.read_image is ganzoo.dataset.read_image
    assert ganzoo.ImageDataset is ganzoo.dataset.ImageDataset
