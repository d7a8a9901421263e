"""`ganzoo run RECIPE --preflight` on every shipped recipe, with its own schedule, batch sizes and
stddev groups; only widths, latent sizes and dataset sizes are shrunk to fit a CPU."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.toml"))
NARROW = {  # widths and latent sizes per family: never a batch size or a group size
    "dcgan": ["model.latent_dim=8", "model.base_channels=4"],
    "progan": ["model.latent_dim=8", "model.fmap_base=1024", "model.fmap_max=4"],
    "stargan": ["model.conv_dim=4", "model.g_repeat_num=1"],
}
CELEBA_ATTRIBUTES = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def stand_in_data(recipe_text: str, folder: Path) -> list[str]:
    """A folder shaped like the recipe's real dataset (a few images), for recipes that need one."""
    if 'dataset = "toyfaces"' in recipe_text:
        return ["data.size=64"]
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    if 'dataset = "celeba"' in recipe_text:
        images = folder / "img_align_celeba"
        images.mkdir()
        lines = ["2100", " ".join(CELEBA_ATTRIBUTES)]
        lines += [f"{i + 1:06d}.jpg " + " ".join(str(rng.choice([-1, 1])) for _ in CELEBA_ATTRIBUTES)
                  for i in range(2100)]
        (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        for i in [*range(8), *range(2000, 2040)]:  # the train split starts after the 2,000 test images
            Image.new("RGB", (178, 218), (i % 256, 90, 200)).save(images / f"{i + 1:06d}.jpg")
    else:
        for i in range(24):
            Image.new("RGB", (48, 40), (i * 10, 120, 60)).save(folder / f"{i}.jpg")
    return [f'data.root="{folder.as_posix()}"', "data.workers=0"]


def preflight(recipe: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    text = recipe.read_text()
    family = next(name for name in NARROW if f'name = "{name}"' in text.split("[model]")[1][:200])
    overrides = ['run.device="cpu"', f'run.out_dir="{(tmp_path / "run").as_posix()}"',
                 *stand_in_data(text, tmp_path / "data"), *NARROW[family], *extra]
    args = [a for o in overrides for a in ("--set", o)]
    # One iteration per phase: every phase still runs its real shapes; the timing is not tested.
    return subprocess.run([sys.executable, "-m", "ganzoo", "run", str(recipe), "--preflight",
                           "--preflight-iterations", "1", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_every_shipped_recipe_preflights(recipe, precision, tmp_path):
    result = preflight(recipe, tmp_path, f'run.precision="{precision}"')
    assert result.returncode == 0, result.stderr
    assert "estimated wall time" in result.stdout
    if "progressive" in recipe.read_text():  # a row per stabilisation and per fade
        resolution = int(recipe.read_text().split("resolution = ")[1].split()[0])
        levels = resolution.bit_length() - 3  # 4 -> resolution
        assert result.stdout.count("fade to") == levels and result.stdout.count("stable") == levels + 1
    assert not (tmp_path / "run").exists()  # preflight writes nothing into out_dir


def test_a_phase_that_cannot_run_is_named(tmp_path):
    # The crash this recipe shipped with: groups of 4 do not divide the 256 px batch of 14.
    result = preflight(ROOT / "recipes" / "progan_celebahq.toml", tmp_path, "model.mbstd_group_size=4")
    assert result.returncode == 2
    assert "256px" in result.stderr and "kimg" in result.stderr and "14" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
