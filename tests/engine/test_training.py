"""The engine end to end on a CPU: it learns, it follows the recipe, it writes what it promises."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import torch
from PIL import Image

import ganzoo
from ganzoo.cli import main
from ganzoo.engine.stream import preview_batch
from ganzoo.engine import build, checkpoint
from ganzoo.engine.inference import load_run
from ganzoo.engine.trainer import Trainer
from ganzoo.recipe import load_recipe


def color_stats(images: torch.Tensor) -> torch.Tensor:
    """Mean and covariance of 4x4-downsampled pixels: a crude, FID-like summary of a set of images."""
    small = torch.nn.functional.avg_pool2d(images.float(), images.shape[-1] // 4).flatten(1)
    return torch.cat([small.mean(0), torch.cov(small.T).flatten()])


def test_dcgan_learns_toyfaces(tmp_path):
    """A short CPU run moves generated images' statistics clearly toward the real data."""
    recipe = load_recipe("recipes/dcgan_toyfaces.toml", [
        f'run.out_dir="{tmp_path / "run"}"', "run.device=\"cpu\"", "data.size=2000",
        "train.kimg=8", "train.batch_size=32", "train.sample_kimg=100", "train.snapshot_kimg=100",
        "model.base_channels=32"])
    trainer = Trainer(recipe)
    real = torch.stack([trainer.dataset[i][0] for i in range(512)]).float() / 127.5 - 1
    z = trainer.model.sample_latents(512, generator=torch.Generator().manual_seed(1))

    def distance() -> float:
        trainer.G.eval()
        with torch.no_grad():
            fake = trainer.G(z)
        trainer.G.train()
        return float((color_stats(fake) - color_stats(real)).norm())

    before = distance()
    trainer.run()
    after = distance()
    assert after < 0.5 * before, (before, after)


def test_metrics_samples_and_resolved_recipe(small_recipe, tmp_path):
    assert main(["run", str(small_recipe)]) == 0
    out = tmp_path / "run"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records, "no metrics written"
    for record in records:
        assert {"kimg", "img_per_s", "resolution", "alpha", "lr_G", "lr_D",
                "D/nonsaturating", "G/nonsaturating"} <= record.keys()
        assert record["img_per_s"] > 0
    kimgs = [r["kimg"] for r in records]
    assert kimgs == sorted(kimgs) and kimgs[-1] >= 0.5
    resolved = tomllib.loads((out / "recipe.toml").read_text())
    assert resolved["train"]["kimg"] == 0.5 and resolved["model"]["latent_dim"] == 16
    assert resolved["train"]["n_critic"] == 1  # defaults are written out too
    fakes = sorted((out / "samples").glob("fakes-*.png"))
    assert len(fakes) == 2  # every 0.25 kimg
    grid = np.asarray(Image.open(fakes[-1]))
    assert grid.shape == (4 * 34 + 2, 4 * 34 + 2, 3)  # 16 samples of 32px, 2px padding
    assert (out / "samples" / "reals-32.png").exists()


def test_sample_grids_use_fixed_latents(small_recipe, tmp_path):
    """Two runs with the same seed give identical sample grids; the grid changes as G trains."""
    assert main(["run", str(small_recipe)]) == 0
    fakes = sorted((tmp_path / "run" / "samples").glob("fakes-*.png"))
    first, last = (np.asarray(Image.open(p)).astype(int) for p in fakes)
    assert np.abs(first - last).mean() > 1.0


class CountingLoss:
    """Counts calls so a test can see how often each side is trained."""

    calls = {"D": 0, "G": 0}

    def discriminator_loss(self, ctx):
        CountingLoss.calls["D"] += 1
        assert ctx.phase == "discriminator" and not ctx.fake.requires_grad
        return torch.nn.functional.softplus(-ctx.real_scores).mean() + \
            torch.nn.functional.softplus(ctx.fake_scores).mean()

    def generator_loss(self, ctx):
        CountingLoss.calls["G"] += 1
        assert ctx.phase == "generator" and ctx.fake.requires_grad
        return torch.nn.functional.softplus(-ctx.fake_scores).mean()


class Plugin:
    @ganzoo.hookimpl
    def ganzoo_register_losses(self, register):
        register("counting", CountingLoss)


def test_n_critic_discriminator_steps_per_generator_step(small_recipe, fresh_plugins):
    ganzoo.plugins.state().add_plugin("counting-test", Plugin())
    recipe = load_recipe(small_recipe, ["losses.0.name=counting", "train.n_critic=3",
                                        "train.kimg=0.192"])
    CountingLoss.calls = {"D": 0, "G": 0}
    Trainer(recipe).run()
    # 192 images at batch 32 = 6 D steps = 2 iterations of (3 D steps + 1 G step).
    assert CountingLoss.calls == {"D": 6, "G": 2}


def test_sample_command_grid_and_folder(small_recipe, tmp_path):
    assert main(["run", str(small_recipe)]) == 0
    snapshot = checkpoint.list_snapshots(tmp_path / "run" / "checkpoints")[-1]
    assert main(["sample", str(snapshot), "--n", "9", "--out", str(tmp_path / "grid.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "grid.png")).shape == (3 * 34 + 2, 3 * 34 + 2, 3)
    assert main(["sample", str(snapshot), "--n", "5", "--out", str(tmp_path / "folder")]) == 0
    files = sorted((tmp_path / "folder").glob("*.png"))
    assert [p.name for p in files] == [f"{i:06d}.png" for i in range(5)]
    assert np.asarray(Image.open(files[0])).shape == (32, 32, 3)
    # Samples come from G-EMA: regenerating with the loaded EMA generator gives the same pixels.
    loaded = load_run(snapshot, torch.device("cpu"))
    z = loaded.model.sample_latents(5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ((loaded.generator(z).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    assert np.array_equal(np.asarray(Image.open(files[3])), expected[3].permute(1, 2, 0).numpy())


def test_data_preview_shows_what_d_sees(small_recipe, tmp_path):
    out = tmp_path / "reals"
    assert main(["data", "preview", str(small_recipe), "--n", "6", "--out", str(out)]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 6
    recipe = load_recipe(small_recipe)
    dataset = build.build_dataset(recipe.data)
    trainer_first = Trainer(recipe)
    trainer_first.stream.configure(32, 6)
    first_batch, _ = trainer_first.stream.next()  # exactly what the run feeds D first
    for file, image in zip(files, first_batch):
        assert np.array_equal(np.asarray(Image.open(file)), image.permute(1, 2, 0).numpy())
    assert torch.equal(preview_batch(dataset, recipe, 6), first_batch)
    assert main(["data", "preview", str(small_recipe), "--n", "4", "--out",
                 str(tmp_path / "low.png"), "--resolution", "8"]) == 0


@pytest.mark.parametrize("override, message", [
    ("train.batchsize=3", "unknown key 'batchsize' in [train] (did you mean 'batch_size'?)"),
    ("train.batch_size=\"big\"", "'train.batch_size' must be an int"),
    ("model.name=\"dcgna\"", "unknown model 'dcgna' (did you mean 'dcgan'?)"),
    ("model.latnt_dim=3", "unknown key 'latnt_dim' in [model]"),
    ("data.dataset=\"image_folder\"", "unknown key 'size' in [data] for dataset 'image_folder'"),
    ("losses.0.name=\"hinj\"", "unknown loss 'hinj'"),
])
def test_bad_recipes_exit_2_with_one_line(small_recipe, capsys, override, message):
    assert main(["run", str(small_recipe), "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_data_folder_names_the_path(small_recipe, tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "folder"
    recipe_text = small_recipe.read_text().replace("size = 256\n", "").replace(
        'dataset = "toyfaces"', f'dataset = "image_folder"\nroot = "{missing}"')
    small_recipe.write_text(recipe_text)
    assert main(["run", str(small_recipe)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()
