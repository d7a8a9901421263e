"""recipes/progan_toyfaces.toml, shortened: growth through the engine, exact resume, sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ganzoo.cli import main
from ganzoo.engine import checkpoint
from ganzoo.recipe import load_recipe

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "progan_toyfaces.toml"
LR = load_recipe(str(RECIPE)).optim.generator.lr  # the recipe's own (its schedule has no lr table)
BATCH = 16  # the recipe's own (and a multiple of its stddev group): only widths and lengths shrink
PHASE = 0.096  # kimg: 6 iterations of 16 images per stabilize / fade phase
TOTAL = 0.48  # 4 stable, fade 8, 8 stable, fade 16, 16 stable (from 0.384)
# A tiny 16x16 version of the recipe: same losses, optimizers, EMA and schedule kind.
SHORT = ["--set", "run.device=\"cpu\"", "--set", "data.resolution=16", "--set", "data.size=64",
         "--set", "model.latent_dim=8", "--set", "model.fmap_base=32", "--set", "model.fmap_max=8",
         "--set", f"schedule.stabilize_kimg={PHASE}", "--set", f"schedule.fade_kimg={PHASE}",
         "--set", f"train.kimg={TOTAL}", "--set", "train.log_kimg=0.016",
         "--set", "train.sample_kimg=1", "--set", "train.snapshot_kimg=1",
         "--set", "train.sample_grid=4", "--set", "train.keep_snapshots=0",
         "--set", "eval.metrics=[]"]  # the recipe's end-of-run toyfaces_fid is tested with toyfaces


pytestmark = pytest.mark.usefixtures("one_thread")


def run(out_dir: Path, *args: str) -> int:
    return main(["run", str(RECIPE), *SHORT, "--set", f'run.out_dir="{out_dir.as_posix()}"', *args])


def metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def final_snapshot(out_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.list_snapshots(out_dir / "checkpoints")[-1]))


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("progan") / "straight"
    assert run(out) == 0
    return out


def test_recipe_grows_through_resolutions(straight):
    rows = metrics(straight)
    resolutions = [r["resolution"] for r in rows]
    assert resolutions == sorted(resolutions)
    assert set(resolutions) == {4, 8, 16}
    for r in rows:
        # The state of each logged iteration: the official timeline (stable 4, fade 8, ...).
        start = r["kimg"] - BATCH / 1000  # the schedule is read at the iteration's start
        level, within = divmod(round(start * 1000), round(PHASE * 1000))
        if level in (1, 3) and within == 0:  # a fade's first instant: still the stable stage
            level -= 1
        expected_res = [4, 8, 8, 16, 16, 16][level]
        expected_alpha = within / (PHASE * 1000) if level in (1, 3) else 1.0
        assert r["resolution"] == expected_res, r
        assert r["alpha"] == pytest.approx(expected_alpha, abs=1e-6), r
        assert r["batch_size"] == BATCH and r["lr_G"] == r["lr_D"] == LR
        assert all(k in r for k in ("D/wasserstein", "D/gradient_penalty", "D/drift", "G/wasserstein"))
    assert any(0 < r["alpha"] < 1 and r["resolution"] == 8 for r in rows)
    assert any(0 < r["alpha"] < 1 and r["resolution"] == 16 for r in rows)
    assert rows[-1]["kimg"] == pytest.approx(TOTAL)
    assert all(torch.isfinite(torch.tensor(r["D/total"])) for r in rows)
    # The real images D saw were written once per resolution; fakes at the final 16x16.
    samples = straight / "samples"
    assert {p.name for p in samples.glob("reals-*.png")} == {"reals-4.png", "reals-8.png",
                                                            "reals-16.png"}
    fakes = sorted(samples.glob("fakes-*.png"))
    assert Image.open(fakes[-1]).size == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)  # 2x2 grid, padding 2


@pytest.mark.parametrize("stop", [0.288, 0.32], ids=["just-before-fade", "just-after-fade-start"])
def test_resume_across_a_growth_boundary_is_bit_identical(straight, tmp_path, stop):
    # 0.288 kimg: the last 8x8 stable iteration has run, the next one starts fading in 16x16
    # (a phase change that resets Adam); 0.32: one iteration into that fade.
    # A snapshot records the growth stage of the last iteration it ran.
    resumed = tmp_path / "resumed"
    assert run(resumed, "--set", f"train.kimg={stop}") == 0
    snapshot = checkpoint.Snapshot.read(checkpoint.list_snapshots(resumed / "checkpoints")[-1])
    assert snapshot.growth["resolution"] == (8 if stop == 0.288 else 16)
    assert run(resumed, "--resume") == 0
    a, b = final_snapshot(straight), final_snapshot(resumed)
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"tensors differ after resume: {differing[:5]}"
    rows, straight_rows = metrics(resumed), metrics(straight)
    keys = ("kimg", "resolution", "alpha", "D/total", "G/total")
    assert [[r[k] for k in keys] for r in rows] == [[r[k] for k in keys] for r in straight_rows]


def test_sample_a_checkpoint_from_the_middle_of_growth(tmp_path):
    out = tmp_path / "mid"
    assert run(out, "--set", "train.kimg=0.144") == 0  # halfway through the fade to 8x8
    path = checkpoint.list_snapshots(out / "checkpoints")[-1]
    growth = checkpoint.Snapshot.read(path).growth
    assert growth["resolution"] == 8 and 0 < growth["alpha"] < 1
    folder = tmp_path / "samples"
    assert main(["sample", str(path), "--n", "3", "--out", str(folder), "--device", "cpu"]) == 0
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 3 and all(Image.open(p).size == (8, 8) for p in pngs)
    grid = tmp_path / "grid.png"
    assert main(["sample", str(path), "--n", "4", "--out", str(grid), "--device", "cpu"]) == 0
    assert Image.open(grid).size == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2)


def test_batch_size_not_divisible_by_the_stddev_group_is_a_user_error(tmp_path, capsys):
    out = tmp_path / "bad"
    assert run(out, "--set", 'schedule.batch_size={"4" = 6}', "--set", "train.kimg=0.012") == 2
    err = capsys.readouterr().err
    assert "batch size 6" in err and "group size 4" in err and "Traceback" not in err
