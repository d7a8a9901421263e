"""The conditional DCGAN (AC-GAN style): dcgan with `conditional = true`, through the registries."""

from __future__ import annotations

import json

import ganzoo
import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.cli import main
from ganzoo.recipe import load_recipe

SMALL = dict(latent_dim=8, base_channels=4, max_channels=32)
RECIPE = "recipes/cdcgan_toyfaces.toml"


pytestmark = pytest.mark.usefixtures("one_thread")


def build(**params) -> ganzoo.GANModel:
    return ganzoo.registry("models").get("dcgan")(**params)


def loss(name: str, **params):
    return ganzoo.registry("losses").get(name)(**params)


def labels(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# --- the model -------------------------------------------------------------------------------

def test_generated_images_depend_on_the_requested_labels():
    torch.manual_seed(0)
    model = build(resolution=32, label_dim=5, conditional=True, **SMALL)
    g = model.generator.eval()
    z = model.sample_latents(4)
    a, b = labels(*[[1, 0, 0, 1, 0]] * 4), labels(*[[0, 1, 0, 0, 1]] * 4)
    out_a, out_b = g(z, a), g(z, b)
    assert out_a.shape == (4, 3, 32, 32) and out_a.min() >= -1 and out_a.max() <= 1
    # Same z, other labels: other images (DCGAN's N(0, 0.02) init makes fresh outputs tiny,
    # so compare with their own size).
    assert (out_a - out_b).abs().mean() > 0.1 * out_a.abs().mean()
    assert torch.equal(g(z, a), out_a)
    # Each image follows its own labels (eval mode: no mixing across the batch).
    mixed = g(z, torch.cat([a[:2], b[2:]]))
    assert torch.allclose(mixed[:2], out_a[:2], atol=1e-6)
    assert torch.allclose(mixed[2:], out_b[2:], atol=1e-6)


@pytest.mark.parametrize("resolution", [32, 64])
def test_discriminator_returns_scores_and_class_logits(resolution):
    torch.manual_seed(0)
    model = build(resolution=resolution, label_dim=7, conditional=True, **SMALL)
    images = torch.rand(3, 3, resolution, resolution) * 2 - 1
    scores, logits = model.discriminator(images)
    assert scores.shape == (3,) and logits.shape == (3, 7)
    # The scores are the unconditional D's: the class head only adds logits.
    assert torch.equal(model.discriminator.net(images).reshape(3), scores)


def test_the_parts_are_the_registered_blocks():
    model = build(resolution=32, label_dim=5, conditional=True, **SMALL)
    blocks = ganzoo.registry("blocks")
    assert isinstance(model.generator.label_concat, blocks.get("label_concat"))
    assert isinstance(model.discriminator.class_head, blocks.get("class_head"))
    first = next(m for m in model.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    assert first.in_channels == 8 + 5  # z and the labels


def test_class_head_and_generator_learn_from_domain_classification():
    torch.manual_seed(0)
    model = build(resolution=32, label_dim=3, conditional=True, **SMALL)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    real_labels, target = labels([1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]), labels(*[[1, 0, 0]] * 4)
    fake = model.generator(model.sample_latents(4), target)
    term = loss("domain_classification", kind="multi_label")
    d_ctx = ganzoo.LossContext(real=real, fake=fake.detach(), discriminator=model.discriminator,
                               phase="discriminator", real_labels=real_labels, target_labels=target)
    term.discriminator_loss(d_ctx).backward()
    assert model.discriminator.class_head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.generator.parameters())
    g_ctx = ganzoo.LossContext(real=real, fake=fake, discriminator=model.discriminator,
                               phase="generator", real_labels=real_labels, target_labels=target)
    (term.generator_loss(g_ctx) + loss("nonsaturating").generator_loss(g_ctx)).backward()
    assert all(p.grad is not None for p in model.generator.parameters())


def test_unconditional_dcgan_is_unchanged():
    model = build(resolution=32, label_dim=5, **SMALL)
    assert not hasattr(model.generator, "label_concat")
    assert not hasattr(model.discriminator, "class_head")
    assert all(key.startswith("net.") for key in model.discriminator.state_dict())
    assert isinstance(model.discriminator(torch.zeros(2, 3, 32, 32)), torch.Tensor)


# --- wrong setups ----------------------------------------------------------------------------

def test_conditional_without_labels_is_a_user_error():
    with pytest.raises(ganzoo.UserError, match="conditional.*attributes"):
        build(resolution=32, conditional=True, **SMALL)


def test_missing_conditioning_blocks_are_named(monkeypatch, fresh_plugins):
    monkeypatch.setenv("GANZOO_DISABLE_PLUGINS", "stargan")  # the plugin registering them
    with pytest.raises(ganzoo.UserError, match="label_concat.*stargan"):
        build(resolution=32, label_dim=3, conditional=True, **SMALL)
    build(resolution=32, label_dim=3, **SMALL)  # the unconditional family needs neither


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_conditional_must_be_a_boolean(value):
    with pytest.raises(ganzoo.UserError, match="conditional"):
        build(resolution=32, label_dim=3, conditional=value, **SMALL)


def test_conditional_generator_needs_labels_of_the_right_width():
    model = build(resolution=32, label_dim=3, conditional=True, **SMALL)
    z = model.sample_latents(2)
    with pytest.raises(ValueError, match=r"labels of shape \(N, 3\)"):
        model.generator(z)
    with pytest.raises(ValueError, match=r"labels of shape \(N, 3\)"):
        model.generator(z, torch.zeros(2, 5))


def test_recipe_on_a_dataset_without_attributes_fails_clearly(tmp_path, capsys):
    code = main(["run", RECIPE, "--set", f"run.out_dir={json.dumps((tmp_path / 'r').as_posix())}",
                 "--set", "data.attributes=[]", "--set", "data.size=16"])
    assert code == 2
    err = capsys.readouterr().err
    assert "conditional" in err and "Traceback" not in err


# --- the recipe, end to end ------------------------------------------------------------------

def test_recipe_is_a_conditional_dcgan_with_domain_classification():
    recipe = load_recipe(RECIPE)
    assert recipe.model.name == "dcgan" and recipe.model.params["conditional"] is True
    assert recipe.data.dataset == "toyfaces" and recipe.data.resolution == 32
    names = [term.name for term in recipe.losses]
    assert names == ["nonsaturating", "domain_classification"]
    assert recipe.losses[1].params == {"kind": "multi_label"} and recipe.losses[1].weight == 1.0
    assert "attribute_accuracy" in recipe.eval.metrics


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cdcgan") / "run"
    code = main(["run", RECIPE, "--set", f"run.out_dir={json.dumps(out.as_posix())}",
                 "--set", "run.device=\"cpu\"", "--set", "data.size=256",
                 "--set", "model.latent_dim=16", "--set", "model.base_channels=8",
                 "--set", "train.kimg=0.256", "--set", "train.batch_size=32",
                 "--set", "train.log_kimg=0.128", "--set", "train.sample_kimg=0.256",
                 "--set", "train.snapshot_kimg=0.256", "--set", "train.sample_grid=16",
                 "--set", "eval.every_kimg=0.128", "--set", "eval.num_images=64"])
    assert code == 0
    return out


def test_short_run_logs_attribute_accuracy(short_run):
    records = [json.loads(line) for line in (short_run / "metrics.jsonl").read_text().splitlines()]
    assert any("D/domain_classification" in r and "G/domain_classification" in r for r in records)
    evals = [r for r in records if "attribute_accuracy/mean" in r]
    assert len(evals) == 2  # periodic [eval]: at 0.128 kimg and at the end
    for name in ("black_hair", "blond_hair", "smiling", "eyeglasses"):
        assert 0 <= evals[-1][f"attribute_accuracy/{name}"] <= 1


def test_sample_with_attributes(short_run, tmp_path, capsys):
    checkpoint = str(sorted((short_run / "checkpoints").glob("*.safetensors"))[-1])
    blond = tmp_path / "blond.png"
    assert main(["sample", checkpoint, "--attr", "blond_hair=1", "--attr", "smiling=1",
                 "--n", "16", "--out", str(blond), "--device", "cpu"]) == 0
    black = tmp_path / "black.png"
    assert main(["sample", checkpoint, "--attr", "black_hair=1", "--attr", "smiling=0",
                 "--n", "16", "--out", str(black), "--device", "cpu"]) == 0
    a, b = np.asarray(Image.open(blond)), np.asarray(Image.open(black))
    assert a.shape == b.shape == (4 * 34 + 2, 4 * 34 + 2, 3)
    assert not np.array_equal(a, b)  # same latents, other attributes
    folder = tmp_path / "each"
    assert main(["sample", checkpoint, "--attr", "eyeglasses=1", "--n", "3", "--out", str(folder),
                 "--device", "cpu"]) == 0
    assert len(list(folder.glob("*.png"))) == 3
    capsys.readouterr()
    assert main(["sample", checkpoint, "--attr", "purple_hair=1", "--out", str(tmp_path / "x.png"),
                 "--device", "cpu"]) == 2
    assert "purple_hair" in capsys.readouterr().err


def test_eval_attribute_accuracy_from_the_checkpoint(short_run, capsys):
    checkpoint = str(sorted((short_run / "checkpoints").glob("*.safetensors"))[-1])
    capsys.readouterr()
    assert main(["eval", checkpoint, "--metric", "attribute_accuracy", "--num-images", "32",
                 "--device", "cpu", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    names = ["black_hair", "blond_hair", "brown_hair", "male", "young", "smiling", "eyeglasses"]
    assert set(results) == {f"attribute_accuracy/{k}" for k in names + ["mean", "all", "classifier"]}
    assert results["attribute_accuracy/classifier"] >= 0.95
    # The translation metric is for translating models: one clear line, exit code 2.
    assert main(["eval", checkpoint, "--metric", "translation", "--device", "cpu"]) == 2
    assert "attribute_accuracy" in capsys.readouterr().err
