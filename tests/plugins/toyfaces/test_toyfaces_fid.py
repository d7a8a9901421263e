"""`toyfaces_fid`: the Fréchet distance in the toyfaces classifier's features, its real-vs-real
floor and the attribute marginals; and that short CPU runs of the toyfaces recipes lower it
well below their own untrained generator's (no wall-clock assertions)."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import ganzoo
import numpy as np
import pytest
import torch
from torch import nn

from ganzoo import EvalContext, run_metrics
from ganzoo.cli import main
from ganzoo.engine.trainer import Trainer
from ganzoo.model import set_growth
from ganzoo.recipe import load_recipe
from ganzoo_stargan.translation import TranslationModel
from ganzoo_toyfaces.drawing import ATTRIBUTES

RES = 32
RECIPES = Path(__file__).resolve().parents[3] / "recipes"

pytestmark = pytest.mark.usefixtures("one_thread")


def toyfaces(**params):
    return ganzoo.registry("datasets").get("toyfaces")(**{"resolution": RES, **params})


def toyfaces_fid(**params):
    return ganzoo.registry("metrics").get("toyfaces_fid")(**params)


def context(model: ganzoo.GANModel, dataset, num_images: int, cls=EvalContext) -> EvalContext:
    return cls(model=model, generator=model.generator, discriminator=model.discriminator,
               dataset=dataset, resolution=RES, device=torch.device("cpu"),
               num_images=num_images, batch_size=64)


class Critic(nn.Module):
    def forward(self, images, labels=None):
        return images.new_zeros(images.shape[0])


class RealFaces(nn.Module):
    """A "generator" that returns real toyfaces of identities the metric's real sets never
    hold (another toyfaces seed), the next ones at every call."""

    def __init__(self, size: int):
        super().__init__()
        self.images = ganzoo.images.to_float(torch.from_numpy(np.array(toyfaces(size=size, seed=7).images)))
        self.next = 0

    def forward(self, z, labels):
        out = self.images[self.next:self.next + len(z)]
        self.next += len(z)
        assert len(out) == len(z), "asked for more images than it holds"
        return out


def untrained_dcgan() -> ganzoo.GANModel:
    torch.manual_seed(0)
    model = ganzoo.registry("models").get("dcgan")(resolution=RES, label_dim=0, base_channels=16,
                                                   latent_dim=32)
    model.generator.eval()
    return model


@pytest.fixture(scope="module")
def faces():
    return toyfaces(size=2000)


@pytest.fixture(scope="module")
def untrained(faces):
    return toyfaces_fid()(context(untrained_dcgan(), faces, 1000))


@pytest.fixture(scope="module")
def real(faces):
    model = ganzoo.GANModel(RealFaces(1000), Critic(), latent_dim=4)
    return toyfaces_fid()(context(model, faces, 1000))


# --- the metric ------------------------------------------------------------------------------

def test_real_floor_is_far_below_an_untrained_generator(untrained):
    assert 0 < untrained["floor"] < untrained["fid"] / 10, untrained
    assert untrained["ratio"] == pytest.approx(untrained["fid"] / untrained["floor"])
    expected = {"fid", "floor", "ratio", "marginal_gap"} | {
        f"{side}/{name}" for side in ("marginal", "real") for name in ATTRIBUTES}
    assert set(untrained) == expected


def test_real_images_against_the_reference_score_about_the_floor(real, untrained):
    assert real["floor"] / 2 < real["fid"] < 2 * real["floor"], real
    assert real["fid"] < untrained["fid"] / 10
    # The same real draw in both calls: the floor depends only on the data, not the generator.
    assert real["floor"] == untrained["floor"]


def test_marginals_of_real_images_are_the_real_marginals(real, untrained):
    for name in ATTRIBUTES:
        assert real[f"marginal/{name}"] == pytest.approx(real[f"real/{name}"], abs=0.07), name
        assert 0.2 < real[f"real/{name}"] < 0.8  # toyfaces attributes are roughly balanced
    assert real["marginal_gap"] < 0.07
    gaps = [abs(real[f"marginal/{n}"] - real[f"real/{n}"]) for n in ATTRIBUTES]
    assert real["marginal_gap"] == pytest.approx(max(gaps))
    assert untrained["marginal_gap"] > 0.2  # an untrained generator's noise is no toy face


class Recording(EvalContext):
    """An EvalContext that keeps every real image it hands out."""

    seen: list

    def real_uint8_batches(self, n, labels_out=None, offset=0):
        for images in super().real_uint8_batches(n, labels_out, offset):
            self.seen.append(images)
            yield images


def test_the_two_real_sets_are_disjoint():
    faces = toyfaces(size=40)
    ctx = context(ganzoo.GANModel(RealFaces(20), Critic(), latent_dim=4), faces, 20, cls=Recording)
    ctx.seen = []
    results = toyfaces_fid()(ctx)
    seen = torch.cat(ctx.seen)
    assert len(seen) == 40  # one draw of 2 x 20 from 40 faces: every face once
    assert len({image.numpy().tobytes() for image in seen}) == 40
    assert results["floor"] > 0


def test_num_images_and_the_dataset_size():
    faces = toyfaces(size=50)
    model = ganzoo.GANModel(RealFaces(25), Critic(), latent_dim=4)
    ctx = context(model, faces, 1000)
    run_metrics(ctx, ["toyfaces_fid"], {"toyfaces_fid": {"num_images": 10}})
    assert model.generator.next == 10  # the table's num_images, not [eval]'s
    model.generator.next = 0
    toyfaces_fid()(ctx)
    assert model.generator.next == 25  # at most half the dataset per set


def test_a_conditional_model_is_asked_for_real_labels(faces):
    asked = []

    class Conditional(RealFaces):
        def forward(self, z, labels):
            asked.append(labels)
            return super().forward(z, labels)

    model = ganzoo.GANModel(Conditional(100), Critic(), latent_dim=4, conditional=True)
    toyfaces_fid(num_images=100)(context(model, faces, 1000))
    labels = torch.cat(asked)
    assert labels.shape == (100, len(ATTRIBUTES)) and set(labels.unique().tolist()) == {0.0, 1.0}


class NotToyfaces:
    attribute_names: list = []
    attribute_groups: list = []

    def __len__(self):
        return 10


class PlainTranslatingModel(ganzoo.GANModel):
    translates = True


def test_misuse_is_a_one_line_user_error(faces):
    model = ganzoo.GANModel(RealFaces(20), Critic(), latent_dim=4)
    cases = [
        (context(model, NotToyfaces(), 10), "toyfaces dataset"),
        (context(TranslationModel(RealFaces(20), Critic()), faces, 10), "translation"),
        (context(PlainTranslatingModel(RealFaces(20), Critic()), faces, 10), "translation"),
        (context(model, toyfaces(size=3), 10), "data.size"),
    ]
    for ctx, match in cases:
        with pytest.raises(ganzoo.UserError, match=match) as info:
            toyfaces_fid()(ctx)
        assert "\n" not in str(info.value)
    for params, match in [({"num_images": 1}, "num_images"), ({"batch_size": 0}, "batch_size")]:
        with pytest.raises(ganzoo.UserError, match=match):
            toyfaces_fid(**params)
    with pytest.raises(ganzoo.UserError, match=r"\[eval.toyfaces_fid\]"):
        run_metrics(context(model, faces, 10), ["toyfaces_fid"], {"toyfaces_fid": {"images": 5}})


def test_registered_by_the_toyfaces_plugin():
    entry = ganzoo.registry("metrics").entry("toyfaces_fid")
    assert entry.plugin == "toyfaces" and entry.summary


# --- the recipes -----------------------------------------------------------------------------

REPORTING = ["dcgan_toyfaces", "cdcgan_toyfaces", "wgan_toyfaces", "wgangp_toyfaces", "progan_toyfaces"]


@pytest.mark.parametrize("name", REPORTING)
def test_cpu_recipes_report_toyfaces_fid_at_their_end(name):
    recipe = load_recipe(RECIPES / f"{name}.toml")
    assert "toyfaces_fid" in recipe.eval.metrics and recipe.eval.every_kimg == 0
    assert recipe.eval.params.get("toyfaces_fid", {}).get("num_images", recipe.eval.num_images) == 2000


def test_the_translating_recipe_does_not():
    assert "toyfaces_fid" not in load_recipe(RECIPES / "stargan_toyfaces.toml").eval.metrics


# A short CPU run of every family's toyfaces recipe, with widths and lengths shrunk; batch sizes,
# n_critic, the stddev group, learning rates, the EMA and every other recipe value as shipped. The
# end-of-run eval is on 1,000 images per set (data.size = 2000 caps it at half the dataset), at
# the run's own resolution, against the same recipe's untrained generator.
# The Wasserstein recipes need far more kimg: each G step follows 5 critic steps (n_critic), and
# G-EMA (beta 0.99) still holds 0.99^62 = 54% of the init after 20 kimg. Measured (2026-12-02,
# 1 thread, base_channels 16, untrained ~470): WGAN 20 kimg 464, 80 kimg 282, 120 kimg 180 (base 8,
# 120 kimg: 339); WGAN-GP 60 kimg 310, 100 kimg 117. So the cheapest lengths that halve it:
# 2-3 minutes each on a busy shared 2-core VM (in this test: WGAN 170, WGAN-GP 96), the
# suite's longest tests.
SHRINK = {
    "dcgan_toyfaces": ["model.base_channels=16", "train.kimg=20"],
    "cdcgan_toyfaces": ["model.base_channels=16", "train.kimg=20"],
    "wgan_toyfaces": ["model.base_channels=16", "train.kimg=120"],
    "wgangp_toyfaces": ["model.base_channels=16", "train.kimg=100"],
}
PROGAN_RES = 16     # the test grows ProGAN 4 -> 8 -> 16 px, not to the recipe's 64
PROGAN_GROWTH = 3   # kimg of growing, the recipe's phases scaled to fit
PROGAN_STABLE = 3   # kimg at PROGAN_RES after the last fade
PROGAN_WIDTHS = ["model.fmap_base=256", "model.fmap_max=32", "model.latent_dim=32"]


def progan_shrink() -> list[str]:
    """The recipe's own stabilize/fade phases up to PROGAN_RES, scaled to PROGAN_GROWTH kimg in
    all (so the test follows the recipe's schedule when it changes), then PROGAN_STABLE kimg."""
    raw = tomllib.loads((RECIPES / "progan_toyfaces.toml").read_text())["schedule"]
    start = raw.get("start_resolution", 4)
    resolutions = [start << i for i in range((PROGAN_RES // start).bit_length())]

    def lengths(key, keep):
        value = raw[key]
        return {str(r): value[str(r)] if isinstance(value, dict) else value for r in keep}

    stabilize, fade = lengths("stabilize_kimg", resolutions[:-1]), lengths("fade_kimg", resolutions[1:])
    scale = PROGAN_GROWTH / (sum(stabilize.values()) + sum(fade.values()))

    def table(phases):
        return "{" + ", ".join(f'"{r}" = {kimg * scale:.4g}' for r, kimg in phases.items()) + "}"

    return [f"data.resolution={PROGAN_RES}", f"schedule.stabilize_kimg={table(stabilize)}",
            f"schedule.fade_kimg={table(fade)}", f"train.kimg={PROGAN_GROWTH + PROGAN_STABLE}",
            *PROGAN_WIDTHS]


@pytest.mark.parametrize("name", [*sorted(SHRINK), "progan_toyfaces"])
def test_a_short_cpu_run_lowers_toyfaces_fid(name, tmp_path):
    out = tmp_path / "run"
    shrink = progan_shrink() if name == "progan_toyfaces" else SHRINK[name]
    recipe = load_recipe(RECIPES / f"{name}.toml", [
        f"run.out_dir={json.dumps(out.as_posix())}", 'run.device="cpu"', "data.size=2000",
        "train.sample_kimg=100", "train.snapshot_kimg=100", *shrink])
    trainer = Trainer(recipe)
    resolution = recipe.data.params["resolution"]
    untrained = copy.deepcopy(trainer.ema.model).eval()
    set_growth(untrained, resolution, 1.0)  # a growing generator is scored at full size, as at the end
    before = toyfaces_fid(num_images=1000)(
        EvalContext(model=trainer.model, generator=untrained, discriminator=trainer.D,
                    dataset=trainer.dataset, resolution=resolution, device=torch.device("cpu"),
                    num_images=1000, seed=recipe.run.seed))
    trainer.run()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = rows[-1]  # the end-of-run [eval] row
    assert final["kimg"] >= recipe.train.kimg and "toyfaces_fid/fid" in final
    after = final["toyfaces_fid/fid"]
    assert final["toyfaces_fid/floor"] == pytest.approx(before["floor"])  # the same real sets
    print(f"{name}: untrained {before['fid']:.1f}, trained {after:.1f}")
    assert after < before["fid"] / 2, (before["fid"], after)


def test_a_growing_run_is_evaluated_at_full_size_from_4x4_on(tmp_path):
    """Periodic evaluation of a ProGAN run starting at 4x4 (smaller than the classifier's 8 px):
    G's output is upscaled to the dataset's size (nearest, as the official G's), so every stage
    is measured against the same real sets (one floor) and the run does not stop at 4x4."""
    out = tmp_path / "run"
    recipe = load_recipe(RECIPES / "progan_toyfaces.toml", [
        f"run.out_dir={json.dumps(out.as_posix())}", 'run.device="cpu"', "data.size=400",
        "data.resolution=16", *PROGAN_WIDTHS, "schedule.stabilize_kimg=0.3", "schedule.fade_kimg=0.2",
        "train.kimg=1.2", "train.log_kimg=0.1", "train.sample_kimg=100", "train.snapshot_kimg=100",
        "eval.every_kimg=0.2", "eval.num_images=64"])
    Trainer(recipe).run()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    stage = {}  # kimg -> G's resolution, from the training rows
    for row in rows:
        if "resolution" in row:
            stage[row["kimg"]] = row["resolution"]
    evals = [row for row in rows if "toyfaces_fid/fid" in row]
    assert len(evals) >= 5
    first = min(evals, key=lambda r: r["kimg"])
    assert first["kimg"] < 0.3  # measured while G was at 4x4 (its first 0.3 kimg)
    assert len({row["toyfaces_fid/floor"] for row in evals}) == 1  # the same reals at every stage
    assert all(np.isfinite(row["toyfaces_fid/fid"]) for row in evals)
    assert min(stage.values()) == 4 and max(stage.values()) == 16


def test_the_context_upscales_a_smaller_generator_output(tmp_path):
    model = ganzoo.registry("models").get("progan")(resolution=16, latent_dim=16, fmap_base=64,
                                                     fmap_max=16)
    set_growth(model.generator, 4, 1.0)
    ctx = EvalContext(model=model, generator=model.generator.eval(), discriminator=None,
                      dataset=toyfaces(resolution=16, size=8), resolution=16,
                      device=torch.device("cpu"), num_images=4)
    images = ctx.sample(4)
    assert images.shape == (4, 3, 16, 16)
    blocks = images.unfold(2, 4, 4).unfold(3, 4, 4)  # each 4x4 block is one pixel of G's 4x4 output
    assert torch.equal(blocks, blocks[..., :1, :1].expand_as(blocks))
