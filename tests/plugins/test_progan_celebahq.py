"""recipes/progan_celebahq.toml as shipped: it fails helpfully without data and grows on a stand-in."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from ganzoo.cli import main

RECIPE = "recipes/progan_celebahq.toml"


def test_missing_celebahq_says_how_to_get_it(tmp_path, capsys):
    assert main(["run", RECIPE, "--set", f'data.root="{tmp_path / "nope"}"',
                 "--set", f'run.out_dir="{tmp_path / "run"}"']) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "ganzoo prepare" in err and "progan_toyfaces.toml" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_grows_on_a_stand_in_folder(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(48):  # non-square JPEGs, as real photos are (the recipe's own batch of 16 and group of 16)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    out = tmp_path / "run"
    code = main(["run", RECIPE, "--set", f'data.root="{folder}"', "--set", f'run.out_dir="{out}"',
                 "--set", 'run.device="cpu"', "--set", "data.resolution=16", "--set", "data.workers=0",
                 "--set", "model.latent_dim=16", "--set", "model.fmap_base=64", "--set", "model.fmap_max=16",
                 "--set", "schedule.stabilize_kimg=0.064", "--set", "schedule.fade_kimg=0.064",
                 "--set", "train.kimg=0.32", "--set", "train.log_kimg=0.016",
                 "--set", "train.sample_kimg=0.1", "--set", "train.snapshot_kimg=0.1",
                 "--set", "eval.num_images=32", "--set", "eval.every_kimg=0"])
    assert code == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    training = [r for r in records if "resolution" in r]
    assert {r["resolution"] for r in training} >= {4, 8, 16}
    assert any(0 < r["alpha"] < 1 for r in training)  # it faded, not jumped
    evaluation = [r for r in records if "swd/avg" in r]
    assert evaluation and "ms_ssim/fake" in evaluation[-1]
    assert (out / "samples" / "reals-8.png").exists() and (out / "samples" / "reals-16.png").exists()
