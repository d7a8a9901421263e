"""`ganzoo translate` and the checks that keep sample/translate to their kind of model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganzoo.cli import main
from ganzoo_toyfaces.dataset import ToyFaces
from ganzoo.engine import checkpoint

SHORT = ["--set", 'run.device="cpu"', "--set", "data.size=64", "--set", "model.conv_dim=8",
         "--set", "model.g_repeat_num=1", "--set", "train.kimg=0.08", "--set", "train.log_kimg=0.04",
         "--set", "train.sample_kimg=0.08", "--set", "train.snapshot_kimg=0.08"]


@pytest.fixture(scope="module")
def stargan_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("stargan") / "run"
    assert main(["run", "recipes/stargan_toyfaces.toml", "--set", f'run.out_dir="{out}"', *SHORT]) == 0
    return checkpoint.list_snapshots(out / "checkpoints")[-1]


@pytest.fixture
def face_files(tmp_path):
    faces = ToyFaces(resolution=32, size=2)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"face{i}.png")
        Image.fromarray(faces.render(100 + i)).save(paths[-1])
    return paths


def test_translate_writes_each_image_and_a_grid(stargan_checkpoint, face_files, tmp_path):
    out = tmp_path / "translated"
    code = main(["translate", str(stargan_checkpoint), *map(str, face_files),
                 "--set-attr", "blond_hair=1", "--set-attr", "male=0", "--out", str(out)])
    assert code == 0
    for path in face_files:
        assert np.asarray(Image.open(out / path.name)).shape == (32, 32, 3)
    grid = np.asarray(Image.open(out / "grid.png"))
    # 2 rows (inputs) x 6 columns (the input, then each of the five attributes changed).
    assert grid.shape == (2 * 34 + 2, 6 * 34 + 2, 3)
    first_input = grid[2:34, 2:34]
    assert np.array_equal(first_input, np.asarray(Image.open(face_files[0])))


@pytest.mark.parametrize("args, message", [
    (["--set-attr", "purple_hair=1"], "unknown attribute 'purple_hair'"),
    (["--set-attr", "male=yes"], "must look like name=0 or name=1"),
])
def test_translate_rejects_bad_attributes(stargan_checkpoint, face_files, tmp_path, capsys, args, message):
    code = main(["translate", str(stargan_checkpoint), str(face_files[0]), *args,
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_each_command_refuses_the_other_kind_of_model(stargan_checkpoint, face_files, small_recipe,
                                                      tmp_path, capsys):
    assert main(["sample", str(stargan_checkpoint), "--n", "4", "--out", str(tmp_path / "s.png")]) == 2
    assert "ganzoo translate" in capsys.readouterr().err
    assert main(["run", str(small_recipe), "--set", "train.kimg=0.032"]) == 0
    dcgan = checkpoint.list_snapshots(tmp_path / "run" / "checkpoints")[-1]
    assert main(["translate", str(dcgan), str(face_files[0]), "--out", str(tmp_path / "t")]) == 2
    assert "ganzoo sample" in capsys.readouterr().err
    assert main(["translate", str(stargan_checkpoint), str(tmp_path / "missing.png"),
                 "--out", str(tmp_path / "t")]) == 2
    assert "does not exist" in capsys.readouterr().err
