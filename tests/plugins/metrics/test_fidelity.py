"""`fid`, `kid`, `isc`, `prc` through torch-fidelity, with a stand-in Inception file.

The stand-in has torch-fidelity's Inception-v3 architecture and random weights (batch-norm
statistics set from a few images so activations keep their scale); nothing downloads. Inception
runs at 299 px, about half a second per image on a busy CPU, so the image counts are tiny.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

import ganzoo
from ganzoo.cli import main
from ganzoo_toyfaces.dataset import ToyFaces
from ganzoo.engine.build import build_dataset
from ganzoo.evaluation import run_metrics
from ganzoo_metrics import inception
from ganzoo_metrics.fidelity import FID, mirrored

pytestmark = pytest.mark.usefixtures("one_thread")

N = 8  # images per side


class _RandomInit(FeatureExtractorInceptionV3):
    def load_state_dict(self, state_dict, strict=True, assign=False):  # keep the random init
        return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def faces(n: int, seed: int = 3, resolution: int = 32) -> torch.Tensor:
    return torch.from_numpy(np.array(ToyFaces(resolution=resolution, size=n, seed=seed).images))


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> tuple[Path, str]:
    """(path, sha256) of a random-weight Inception-v3 state dict saved with torch.save."""
    torch.manual_seed(0)
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    net = _RandomInit(inception.EXTRACTOR_NAME, ["2048"], feature_extractor_weights_path=empty)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0  # running statistics := those of the calibration batch
    net.train()
    with torch.no_grad():
        net(faces(4, seed=99))
    path = tmp_path_factory.mktemp("inception") / "standin.pth"
    torch.save(net.state_dict(), path)
    return path, _sha256(path)


class Images(ganzoo.ImageDataset):
    """A fixed uint8 image set as a dataset."""

    def __init__(self, images: torch.Tensor):
        self.images, self.resolution = images, images.shape[-1]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int):
        return self.images[index], torch.zeros(0)


class FixedContext:
    """What the Inception metrics read of an EvalContext, with fixed real and generated images;
    it counts the real images it serves."""

    def __init__(self, real: torch.Tensor, fake: torch.Tensor, seed: int = 0, mirror: bool = False):
        self.dataset, self.fake, self.mirror = Images(real), fake, mirror
        self.resolution, self.num_images, self.seed = real.shape[-1], len(real), seed
        self.device = torch.device("cpu")
        self.reals_served = 0

    def real_uint8_batches(self, n: int):
        self.reals_served += n
        yield self.dataset.images[:n]

    def fake_uint8_batches(self, n: int):
        yield self.fake[:n]

    def generator_rng(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 7919 + offset)


def fid(ctx, standin, **table) -> float:
    """FID in the 64-d first pool: the same code path as the 2048-d default (which the
    comparison with torch-fidelity uses), without a 2048 x 2048 eigenproblem (~14 s) per value."""
    path, sha = standin
    metric = FID(weights=str(path), weights_sha256=sha, feature_layer="64", **table)
    return metric(ctx)["fid"]


def test_fid_is_zero_against_itself_and_grows_with_noise(standin):
    real = faces(N)
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(1))
    values = []
    for sigma in (0.0, 8.0, 32.0, 128.0):
        noisy = (real.float() + sigma * noise).round().clamp(0, 255).to(torch.uint8)
        values.append(fid(FixedContext(real, noisy), standin))
    assert abs(values[0]) < 1e-3 * values[1]
    assert values[0] < values[1] < values[2] < values[3], values


def test_cache_is_hit_then_missed_after_the_weights_change(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_CACHE", str(tmp_path / "cache"))
    real, fake = faces(4), faces(4, seed=5)
    first = FixedContext(real, fake)
    value = fid(first, standin)
    assert first.reals_served == 4
    files = list((tmp_path / "cache" / "inception").glob("*.safetensors"))
    assert len(files) == 1

    second = FixedContext(real, fake)
    assert fid(second, standin) == pytest.approx(value, rel=1e-9)
    assert second.reals_served == 0  # the real statistics came from the cache

    other = FixedContext(faces(4, seed=6), fake)  # another dataset never reuses it
    fid(other, standin)
    assert other.reals_served == 4
    flipped = FixedContext(real, fake)  # nor do mirrored reals
    fid(flipped, standin, mirror=True)
    assert flipped.reals_served == 4

    # the same network saved again with one weight nudged: another hash, so a miss
    state = torch.load(standin[0], weights_only=True)
    state["fc.bias"] = state["fc.bias"] + 1e-3
    changed = tmp_path / "changed.pth"
    torch.save(state, changed)
    third = FixedContext(real, fake)
    fid(third, (changed, _sha256(changed)))
    assert third.reals_served == 4
    assert len(list((tmp_path / "cache" / "inception").glob("*.safetensors"))) == 4


def test_mirroring_flips_about_half_the_reals_reproducibly():
    real = faces(32)
    ctx = FixedContext(real, real)
    out = torch.cat(list(mirrored(ctx, real.split(10))))
    again = torch.cat(list(mirrored(ctx, real.split(32))))
    assert torch.equal(out, again)  # the same flips whatever the batching
    flipped = torch.tensor([not torch.equal(a, b) for a, b in zip(out, real)])
    assert all(torch.equal(a, b.flip(-1)) for a, b, f in zip(out, real, flipped) if f)
    assert 6 <= int(flipped.sum()) <= 26


def test_values_equal_torch_fidelity_on_the_same_png_folders(standin, small_recipe, tmp_path, monkeypatch):
    """ganzoo's four metrics on a trained checkpoint equal torch_fidelity.calculate_metrics on
    PNG folders holding the same real and generated images, with the same weights file.
    Both sides resize to 75 px here, the smallest Inception-v3 input, instead of 299: the test
    compares what reaches the network and the maths after it, and runs 16x faster."""
    monkeypatch.setattr(FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)
    assert main(["run", str(small_recipe), "--set", "train.kimg=0.128"]) == 0
    run = ganzoo.load_run(str(tmp_path / "run"), "cpu")
    ctx = ganzoo.EvalContext(model=run.model, generator=run.generator, discriminator=run.discriminator,
                             dataset=build_dataset(run.recipe.data), resolution=run.resolution,
                             device=torch.device("cpu"), num_images=N)
    ganzoo.images.write_images(torch.cat(list(ctx.real_uint8_batches(N))), tmp_path / "real")
    ganzoo.images.write_images(torch.cat(list(ctx.fake_uint8_batches(N))), tmp_path / "fake")

    path, sha = standin
    common = {"weights": str(path), "weights_sha256": sha}
    tables = {"fid": common, "kid": {**common, "subset_size": 4}, "isc": {**common, "splits": 2},
              "prc": common}
    ours = run_metrics(ctx, ["fid", "kid", "isc", "prc"], tables)

    reference = torch_fidelity.calculate_metrics(
        input1=str(tmp_path / "fake"), input2=str(tmp_path / "real"), cuda=False, fid=True, kid=True,
        isc=True, prc=True, feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(path),
        kid_subset_size=4, isc_splits=2, cache=False, verbose=False, save_cpu_ram=True)
    expected = {"fid/fid": reference["frechet_inception_distance"],
                "kid/mean": reference["kernel_inception_distance_mean"],
                "kid/std": reference["kernel_inception_distance_std"],
                "isc/mean": reference["inception_score_mean"],
                "isc/std": reference["inception_score_std"],
                "prc/precision": reference["precision"], "prc/recall": reference["recall"],
                "prc/f_score": reference["f_score"]}
    assert ours.keys() == expected.keys()
    assert ours["fid/fid"] > 0
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_hash_check_refuses_a_wrong_file_and_accepts_it_deliberately(standin, small_recipe, tmp_path):
    assert main(["run", str(small_recipe), "--set", "train.kimg=0.128"]) == 0
    path, sha = standin
    env = {k: v for k, v in os.environ.items() if k != inception.ENV_WEIGHTS}

    def evaluate(*sets):
        overrides = [arg for value in sets for arg in ("--set", value)]
        return subprocess.run([sys.executable, "-m", "ganzoo", "eval", str(tmp_path / "run"),
                               "--metric", "fid", "--num-images", "4", "--json", *overrides],
                              capture_output=True, text=True, env=env, timeout=600)

    refused = evaluate(f"eval.fid.weights={json.dumps(str(path))}")
    assert refused.returncode == 2, refused.stderr
    message = " ".join(refused.stderr.split())
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert str(path.name) in message and sha in message and inception.PUBLISHED_SHA256 in message
    assert "weights_sha256" in message

    # at 299 px; the 64-d layer spares a 2048 x 2048 eigenproblem (~14 s)
    accepted = evaluate(f"eval.fid.weights={json.dumps(str(path))}",
                        f"eval.fid.weights_sha256={json.dumps(sha)}", 'eval.fid.feature_layer="64"')
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout.strip().splitlines()[-1])["fid/fid"] > 0


def test_weights_come_from_the_table_the_environment_or_torch_hub(standin, tmp_path, monkeypatch):
    path, _ = standin
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(inception.ENV_WEIGHTS, raising=False)
    with pytest.raises(ganzoo.UserError) as missing:
        inception.find_weights(None, "[eval.fid]")
    hub = tmp_path / "torch" / "hub" / "checkpoints" / inception.WEIGHTS_FILE
    text = str(missing.value)
    assert "\n" not in text and inception.WEIGHTS_FILE in text and str(hub) in text
    assert inception.ENV_WEIGHTS in text

    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"x")
    assert inception.find_weights(None, "[eval.fid]") == hub
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(path))
    assert inception.find_weights(None, "[eval.fid]") == path
    assert inception.find_weights(str(hub), "[eval.fid]") == hub  # the table's key comes first
    monkeypatch.setenv(inception.ENV_WEIGHTS, str(tmp_path / "absent.pth"))
    with pytest.raises(ganzoo.UserError, match=inception.ENV_WEIGHTS):
        inception.find_weights(None, "[eval.fid]")


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["FIDELITY_MARKER"]),))


def test_weights_are_loaded_without_running_code(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("FIDELITY_MARKER", str(marker))
    evil = tmp_path / "evil.pth"
    torch.save({"fc.bias": torch.zeros(3), "payload": _Payload()}, evil)
    with pytest.raises(ganzoo.UserError, match="weights-only"):
        inception.Inception(["2048"], torch.device("cpu"), str(evil), _sha256(evil))
    assert not marker.exists()


def test_bad_keys_are_user_errors(standin):
    with pytest.raises(ganzoo.UserError, match=r"\[eval.fid\] weights_sha256 must be 64 hexadecimal"):
        FID(weights_sha256="abc")
    with pytest.raises(ganzoo.UserError, match=r"\[eval.kid\] subset_size"):
        ganzoo.registry("metrics").get("kid")(subset_size=1)
    path, sha = standin
    kid = ganzoo.registry("metrics").get("kid")(weights=str(path), weights_sha256=sha)  # subset 1000
    with pytest.raises(ganzoo.UserError, match="subset_size 1000 is more than the 4 images"):
        kid(FixedContext(faces(4), faces(4)))
