"""`ganzoo prepare`, the command the image_folder plugin adds: output, exit codes and help."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import ganzoo
from ganzoo.cli import main


def ganzoo_cli(*args):
    return subprocess.run([sys.executable, "-m", "ganzoo", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    return tmp_path


def test_prepare_builds_then_finds_nothing_to_do(folder, tmp_path, capsys):
    out = tmp_path.parent / f"{tmp_path.name}-cache"
    first = ganzoo_cli("prepare", folder, "--out", out, "--resolution", "16", "--workers", "0")
    assert first.returncode == 0, first.stderr
    line = first.stdout.strip()
    assert "\n" not in line and line.startswith("cached 3 images at 4..16px in ")
    assert "skipped 1 unreadable file (first: 'broken.jpg: cannot identify image file" in line
    assert json.loads((out / "manifest.json").read_text())["count"] == 3
    assert main(["prepare", str(folder), "--out", str(out), "--resolution", "16"]) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--resolution", "48"], "prepare: resolution must be a power of two from 4 to 8192, got 48"),
    (["--crop", "0"], "prepare: crop must be an integer >= 1, got 0"),
    (["--workers", "-1"], "prepare: workers must be an integer >= 0, got -1"),
])
def test_bad_arguments_exit_2_with_one_line(folder, tmp_path, args, message, capsys):
    assert main(["prepare", str(folder), "--out", str(tmp_path / "never"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "never").exists()


def test_missing_folder_exits_2(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nowhere"), "--out", str(tmp_path / "cache")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_help_shows_every_default_and_an_example():
    result = ganzoo_cli("prepare", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for flag in ("--out", "--resolution", "--crop", "--workers"):
        part = text.split(flag, 2)[-1].split(" --", 1)[0]  # the flag's own help
        assert "default" in part, (flag, part)
    assert "example: ganzoo prepare" in text


def test_the_command_comes_from_the_image_folder_plugin(tmp_path, monkeypatch, fresh_plugins, capsys):
    assert ganzoo.registry("datasets").entry("image_folder").plugin == "image_folder"
    monkeypatch.setenv("GANZOO_DISABLE_PLUGINS", "image_folder")
    ganzoo.plugins.reset()
    with pytest.raises(SystemExit) as exited:
        main(["prepare", str(tmp_path), "--out", str(tmp_path / "cache")])
    assert exited.value.code == 2 and "invalid choice: 'prepare'" in capsys.readouterr().err
