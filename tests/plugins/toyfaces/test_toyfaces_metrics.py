"""The toyfaces attribute classifier and the `attribute_accuracy` / `translation` metrics.

The metrics are checked on fake models whose answers are known: an identity "translator"
(changes nothing), oracles that draw the ground truth with toyfaces itself, and a generator
that ignores the labels it is given.
"""

from __future__ import annotations

import json
import os

import ganzoo
import numpy as np
import pytest
import torch
from torch import nn

from ganzoo import EvalContext, run_metrics
from ganzoo.cli import main
from ganzoo_stargan.translation import TranslationModel
from ganzoo_toyfaces.classifier import cache_path, load_classifier
from ganzoo_toyfaces.drawing import ATTRIBUTES, HAIR_COLOURS

FIVE = ["black_hair", "blond_hair", "brown_hair", "male", "young"]  # StarGAN's, grouped hair
RES = 32


pytestmark = pytest.mark.usefixtures("one_thread")


def toyfaces(**params):
    return ganzoo.registry("datasets").get("toyfaces")(**{"resolution": RES, **params})


def metric(name: str, **params):
    return ganzoo.registry("metrics").get(name)(**params)


def to_float(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.transpose(2, 0, 1).copy()).float() / 127.5 - 1


def as_key(image: torch.Tensor) -> bytes:
    return ((image.float() + 1) * 127.5).round().to(torch.uint8).numpy().tobytes()


def render_attributes(names, row) -> dict:
    """Requested attributes for ToyFaces.render: hair colours only where set (a named one
    replaces the identity's own; with none set it keeps its own)."""
    return {n: int(v) for n, v in zip(names, row.tolist()) if v or n not in HAIR_COLOURS}


class Critic(nn.Module):
    def forward(self, images, labels=None):
        return images.new_zeros(images.shape[0])


class IdentityTranslator(nn.Module):
    """Returns its input: translates nothing."""

    def forward(self, images, labels):
        return images.clone()


class OracleTranslator(nn.Module):
    """Recognises a held-out identity by its pixels and draws it with the target attributes."""

    def __init__(self, faces, indices):
        super().__init__()
        self.faces = faces
        self.names = list(faces.attribute_names)
        self.index = {as_key(to_float(faces.render(i, None, RES))): i for i in indices}

    def forward(self, images, labels):
        out = []
        for image, row in zip(images, labels):
            attributes = render_attributes(self.names, row)
            out.append(to_float(self.faces.render(self.index[as_key(image)], attributes, RES)))
        return torch.stack(out)


class OracleGenerator(nn.Module):
    """z -> a face drawn with exactly the requested attributes (identity chosen by z)."""

    def __init__(self, faces, obey: bool = True):
        super().__init__()
        self.faces, self.obey = faces, obey
        self.names = list(faces.attribute_names)

    def forward(self, z, labels):
        out = []
        for code, row in zip(z, labels):
            index = 50_000 + int((code[0].item() + 1) * 1000)
            attributes = render_attributes(self.names, row) if self.obey else None
            out.append(to_float(self.faces.render(index, attributes, RES)))
        return torch.stack(out)


def context(model: ganzoo.GANModel, dataset, num_images: int) -> EvalContext:
    return EvalContext(model=model, generator=model.generator, discriminator=model.discriminator,
                       dataset=dataset, resolution=RES, device=torch.device("cpu"),
                       num_images=num_images, batch_size=32)


def translator_context(generator, faces, n: int) -> EvalContext:
    return context(TranslationModel(generator, Critic()), faces, n)


# --- the classifier --------------------------------------------------------------------------

def test_classifier_is_accurate_on_real_held_out_faces():
    classifier = load_classifier(RES)
    assert cache_path(RES).is_file()  # trained once, then cached under $GANZOO_CACHE
    mask = os.umask(0)
    os.umask(mask)
    assert cache_path(RES).stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    assert set(classifier.heldout) == set(ATTRIBUTES) | {"mean"}
    for name in ATTRIBUTES:
        assert classifier.heldout[name] >= 0.95, (name, classifier.heldout)
    # Also on faces it never saw, from another seed: the GAN training identities.
    faces = toyfaces(size=300, seed=0)
    images = torch.from_numpy(np.array(faces.images)).float() / 127.5 - 1
    correct = (classifier.predict(images) == faces.labels).float().mean(0)
    assert (correct >= 0.95).all(), dict(zip(ATTRIBUTES, correct.tolist()))


def test_cached_classifier_is_the_trained_one():
    a, b = load_classifier(RES), load_classifier(RES)
    assert a.heldout == b.heldout
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    x = torch.rand(3, 3, 64, 64) * 2 - 1  # larger images are box-filtered to 32 px first
    assert a(x).shape == (3, len(ATTRIBUTES))


# --- translation -----------------------------------------------------------------------------

def test_translation_of_the_identity_mapping():
    faces = toyfaces(size=40, attributes=FIVE)
    results = metric("translation")(translator_context(IdentityTranslator(), faces, 30))
    assert results["recognised"] <= 0.05
    for name in FIVE:
        assert results[f"changed/{name}"] <= 0.05
        assert results[f"l1/{name}"] == pytest.approx(results[f"l1_identity/{name}"], abs=1e-6)
    assert results["l1"] == pytest.approx(results["l1_identity"], abs=1e-6)
    assert results["l1_identity"] > 0.01
    # 30 faces: one hair colour change less than three (their own), male and young flipped.
    assert results["translations"] == 30 * 4


def test_translation_of_an_oracle():
    faces = toyfaces(size=40, attributes=FIVE)
    oracle = OracleTranslator(faces, range(40, 70))
    results = metric("translation")(translator_context(oracle, faces, 30))
    assert results["recognised"] >= 0.95
    for name in FIVE:
        assert results[f"changed/{name}"] >= 0.95
        assert results[f"l1/{name}"] == pytest.approx(0.0, abs=1e-6)
    assert results["l1"] == pytest.approx(0.0, abs=1e-6)
    assert results["l1_identity"] > 0.01


def test_translation_uses_only_held_out_identities():
    faces = toyfaces(size=40, attributes=FIVE)
    oracle = OracleTranslator(faces, range(40, 50))  # knows only identities 40..49
    results = metric("translation", num_images=10)(translator_context(oracle, faces, 1000))
    assert results["recognised"] >= 0.9


def test_translation_with_ungrouped_attributes():
    # One hair colour without its group: switching it off has no ground truth and is skipped.
    faces = toyfaces(size=40, attributes=["blond_hair", "smiling", "eyeglasses"])
    oracle = OracleTranslator(faces, range(40, 70))
    results = metric("translation")(translator_context(oracle, faces, 30))
    assert results["recognised"] >= 0.95 and results["l1"] == pytest.approx(0.0, abs=1e-6)
    own_blond = sum(faces.identity_attributes(i)["blond_hair"] for i in range(40, 70))
    assert results["translations"] == 30 * 3 - own_blond


def test_translation_through_run_metrics():
    faces = toyfaces(size=40, attributes=FIVE)
    ctx = translator_context(IdentityTranslator(), faces, 1000)
    results = run_metrics(ctx, ["translation"], {"translation": {"num_images": 8}})
    assert results["translation/translations"] == 8 * 4
    assert "translation/recognised/male" in results and "translation/l1_identity" in results


# --- attribute_accuracy ----------------------------------------------------------------------

def oracle_model(faces, obey: bool = True) -> ganzoo.GANModel:
    return ganzoo.GANModel(OracleGenerator(faces, obey), Critic(), latent_dim=4, prior="uniform")


@pytest.mark.parametrize("labels", ["dataset", "each"])
def test_attribute_accuracy_of_an_oracle(labels):
    faces = toyfaces(size=200)  # all seven attributes
    results = metric("attribute_accuracy", num_images=120, labels=labels)(
        context(oracle_model(faces), faces, 1000))
    for name in ATTRIBUTES:
        assert results[name] >= 0.95, (name, results)
    assert results["mean"] >= 0.97
    assert ("all" in results) == (labels == "dataset")
    assert results["classifier"] >= 0.95


def test_attribute_accuracy_of_a_generator_ignoring_labels():
    faces = toyfaces(size=200, attributes=["male", "smiling", "eyeglasses"])
    results = metric("attribute_accuracy", num_images=120)(
        context(oracle_model(faces, obey=False), faces, 1000))
    assert 0.3 <= results["mean"] <= 0.7  # coin flips: the labels are ignored


# --- misuse ----------------------------------------------------------------------------------

class NotToyfaces:
    attribute_names = ["smiling"]
    attribute_groups = []

    def __len__(self):
        return 10


def test_translation_needs_toyfaces_and_a_translator():
    faces = toyfaces(size=40, attributes=FIVE)
    with pytest.raises(ganzoo.UserError, match="toyfaces"):
        metric("translation")(translator_context(IdentityTranslator(), NotToyfaces(), 10))
    with pytest.raises(ganzoo.UserError, match="attribute_accuracy"):
        metric("translation")(context(oracle_model(faces), faces, 10))
    with pytest.raises(ganzoo.UserError, match="attributes"):
        metric("translation")(translator_context(IdentityTranslator(), toyfaces(size=8, attributes=[]), 4))


def test_attribute_accuracy_needs_toyfaces_and_a_generator():
    faces = toyfaces(size=40, attributes=FIVE)
    with pytest.raises(ganzoo.UserError, match="toyfaces"):
        metric("attribute_accuracy")(context(oracle_model(faces), NotToyfaces(), 10))
    with pytest.raises(ganzoo.UserError, match="translation"):
        metric("attribute_accuracy")(translator_context(IdentityTranslator(), faces, 10))


@pytest.mark.parametrize("name, params, match", [
    ("attribute_accuracy", {"labels": "random"}, "labels"),
    ("attribute_accuracy", {"num_images": 0}, "num_images"),
    ("translation", {"num_images": 2.5}, "num_images"),
])
def test_bad_options_are_user_errors(name, params, match):
    with pytest.raises(ganzoo.UserError, match=match):
        metric(name, **params)


def test_metrics_and_dataset_are_registered_by_the_toyfaces_plugin():
    for name in ("attribute_accuracy", "translation"):
        entry = ganzoo.registry("metrics").entry(name)
        assert entry.plugin == "toyfaces" and entry.summary
    assert ganzoo.registry("datasets").entry("toyfaces").plugin == "toyfaces"


class PlainTranslatingModel(ganzoo.GANModel):
    """A translating model written against the public API alone (no StarGAN)."""

    translates = True


def test_translation_needs_only_the_public_api(monkeypatch, fresh_plugins):
    monkeypatch.setenv("GANZOO_DISABLE_PLUGINS", "stargan")
    assert "translation" in ganzoo.registry("metrics").names()
    faces = toyfaces(size=40, attributes=FIVE)
    plain = context(PlainTranslatingModel(IdentityTranslator(), Critic()), faces, 10)
    results = metric("translation")(plain)
    assert results == metric("translation")(translator_context(IdentityTranslator(), faces, 10))
    assert results["translations"] == 10 * 4 and results["l1"] == results["l1_identity"]


# --- end to end: a tiny StarGAN run, evaluated periodically and from its checkpoint -------------

def test_translation_in_a_stargan_run_and_from_its_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "recipes/stargan_toyfaces.toml",
                 "--set", f"run.out_dir={json.dumps(out.as_posix())}", "--set", "run.device=\"cpu\"",
                 "--set", "data.size=64", "--set", "model.conv_dim=4",
                 "--set", "model.g_repeat_num=1", "--set", "train.kimg=0.16",
                 "--set", "train.n_critic=1",  # the recipe's own batch of 16
                 "--set", "train.log_kimg=0.08", "--set", "train.sample_kimg=0.16",
                 "--set", "train.snapshot_kimg=0.16", "--set", "train.sample_grid=4",
                 "--set", "eval.metrics=[\"translation\"]", "--set", "eval.every_kimg=0.08",
                 "--set", "eval.num_images=6"])
    assert code == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "translation/recognised" in r]
    assert len(evals) == 2  # at 0.08 kimg and at the end
    assert evals[-1]["translation/translations"] == 6 * 4
    checkpoint = sorted((out / "checkpoints").glob("*.safetensors"))[-1]
    capsys.readouterr()
    assert main(["eval", str(checkpoint), "--metric", "translation", "--num-images", "5",
                 "--device", "cpu", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["translation/translations"] == 5 * 4
    assert 0 <= results["translation/recognised"] <= 1 and results["translation/l1_identity"] > 0
    # A translation model has no attribute_accuracy: one clear line, exit code 2.
    assert main(["eval", str(checkpoint), "--metric", "attribute_accuracy", "--device", "cpu"]) == 2
    assert "translation" in capsys.readouterr().err
