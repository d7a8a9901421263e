"""`fid`, `kid`, `isc`, `prc`: the Inception metrics, computed by torch-fidelity's own code.

Images reach torch-fidelity's Inception-v3 as uint8 RGB, generated ones clamped and rounded as
the saved PNGs (`EvalContext.fake_uint8_batches`), real ones the run's dataset at the current
resolution (`real_uint8_batches`, flipped like training's mirroring when `mirror` is on); the
network resizes both to 299 itself. The statistics, kernels and neighbourhoods are
torch-fidelity's functions with its defaults (`torch_fidelity.defaults.DEFAULTS`); nothing of
that maths is written here.

The real side's pool features and FID statistics are cached under
$GANZOO_CACHE/inception/ (default ~/.cache/ganzoo), keyed by the dataset's identity, the
resolution, the image count and selection seed, mirroring, the feature layer, the weights'
SHA-256 and torch-fidelity's version, so periodic evaluation during training costs only the generated side.
Dataset identity: the dataset's own `identity` attribute when it has one, else its class, size,
resolution, `root` and a hash of 8 evenly spaced images at the evaluated resolution.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import torch
import torch_fidelity
from safetensors import safe_open
from safetensors.torch import save_file
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

import ganzoo
from ganzoo_metrics.inception import Inception, expected_sha256

POOL, LOGITS = "2048", "logits_unbiased"  # torch-fidelity's default Inception layers per metric
POOLED = ("2048", "768", "192", "64")  # the pooled layers torch-fidelity's Inception-v3 provides
CACHE_VERSION = 1  # bump when what a cache file holds changes
_FLIPS = 0xF1D  # ctx.generator_rng offset of the real images' mirror flips
_IDENTITY_SAMPLES = 8


def dataset_identity(dataset, resolution: int) -> str:
    """What tells one real image set from another (see the module docstring)."""
    own = getattr(dataset, "identity", None)
    if own is not None:
        return str(own)
    n = len(dataset)
    view = dataset.at_resolution(resolution)
    digest = hashlib.sha256()
    for index in sorted({k * (n - 1) // (_IDENTITY_SAMPLES - 1) for k in range(_IDENTITY_SAMPLES)}):
        digest.update(view[index][0].contiguous().numpy().tobytes())
    kind = f"{type(dataset).__module__}.{type(dataset).__qualname__}"
    return (f"{kind} n={n} resolution={dataset.resolution} root={getattr(dataset, 'root', None)} "
            f"images={digest.hexdigest()[:32]}")


def mirrored(ctx, batches):
    """Each real image flipped left-right with probability 1/2, from the context's random numbers."""
    rng = ctx.generator_rng(_FLIPS)
    for images in batches:
        flip = torch.rand(len(images), generator=rng) < 0.5
        yield torch.where(flip[:, None, None, None], images.flip(-1), images)


@attrs.define(kw_only=True)
class InceptionMetric:
    """Keys shared by the four metrics (each in its own table, e.g. `[eval.fid]`):

    weights         the Inception weights file (else $GANZOO_INCEPTION_WEIGHTS, else torch.hub's cache)
    weights_sha256  accept a file other than the published one, deliberately
    num_images      images per side (default: [eval] num_images; reals at most the dataset's size)
    batch_size      images per Inception forward pass
    """

    name: ClassVar[str] = ""

    weights: str | None = None
    weights_sha256: str | None = None
    num_images: int | None = None
    batch_size: int = 64

    @property
    def table(self) -> str:
        return f"[eval.{self.name}]"

    @property
    def layer(self) -> str:
        return LOGITS

    def __attrs_post_init__(self):
        if self.weights is not None and not isinstance(self.weights, str):
            raise ganzoo.UserError(f"{self.table} weights must be a file path (a string), got "
                                   f"{ganzoo.checks.show(self.weights)}")
        expected_sha256(self.weights_sha256, self.table)
        if self.num_images is not None:
            ganzoo.checks.count(self.num_images, f"{self.table} num_images")
        ganzoo.checks.count(self.batch_size, f"{self.table} batch_size")

    def __call__(self, ctx) -> dict[str, float]:
        n = self.num_images or ctx.num_images
        self.check_count(min(n, len(ctx.dataset)), n)
        inception = Inception([self.layer], ctx.device, self.weights, self.weights_sha256,
                              self.table, self.batch_size)
        return self.measure(ctx, inception, n)

    def check_count(self, reals: int, fakes: int) -> None:
        """Refuse too few images before any work is done."""

    def measure(self, ctx, inception: Inception, n: int) -> dict[str, float]:
        raise NotImplementedError

    def fake_features(self, ctx, inception: Inception, n: int) -> torch.Tensor:
        return inception(ctx.fake_uint8_batches(n))[self.layer]


@attrs.define(kw_only=True)
class PoolMetric(InceptionMetric):
    """A metric comparing generated with real images in one of Inception's pooled feature layers:

    feature_layer  "2048" (the final pool, the literature's choice), or torch-fidelity's smaller
                   "768", "192", "64" (as pytorch-fid's `--dims`: fewer images than dimensions)
    mirror         flip real images as training does; default: the recipe's [data] mirror
    """

    feature_layer: str = POOL
    mirror: bool | None = None

    @property
    def layer(self) -> str:
        return self.feature_layer

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        if isinstance(self.feature_layer, int) and not isinstance(self.feature_layer, bool):
            self.feature_layer = str(self.feature_layer)  # `--set eval.fid.feature_layer=64` is TOML 64
        ganzoo.checks.one_of(self.feature_layer, POOLED, f"{self.table} feature_layer")
        if self.mirror is not None:
            ganzoo.checks.one_of(self.mirror, [True, False], f"{self.table} mirror")

    def real(self, ctx, inception: Inception, n: int) -> dict[str, torch.Tensor]:
        """{"features": (N, D) float32, "mu", "sigma"} of the real set, from the cache or computed
        (and cached) now."""
        n = min(n, len(ctx.dataset))
        mirror = ctx.mirror if self.mirror is None else self.mirror
        key = {"version": CACHE_VERSION, "dataset": dataset_identity(ctx.dataset, ctx.resolution),
               "resolution": ctx.resolution, "count": n, "seed": ctx.seed, "mirror": mirror,
               "weights_sha256": inception.sha256, "layer": self.layer,
               "torch_fidelity": torch_fidelity.__version__}
        text = json.dumps(key, sort_keys=True)
        name = f"real-{hashlib.sha256(text.encode()).hexdigest()[:24]}.safetensors"
        path = ganzoo.files.cache_dir() / "inception" / name
        cached = read_cache(path, text)
        if cached is not None:
            return cached
        batches = ctx.real_uint8_batches(n)
        features = inception(mirrored(ctx, batches) if mirror else batches)[self.layer]
        stats = fid_features_to_statistics(features)
        real = {"features": features, "mu": torch.from_numpy(stats["mu"]),
                "sigma": torch.from_numpy(stats["sigma"])}
        write_cache(path, text, real)
        return real


def read_cache(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    """The cached tensors when `path` holds them for exactly `key`; None otherwise."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("key") != key:
                return None
            return {name: handle.get_tensor(name) for name in ("features", "mu", "sigma")}
    except Exception:  # absent, partial or not safetensors (safetensors raises its own types)
        return None


def write_cache(path: Path, key: str, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically; an unwritable cache only costs recomputing next time."""
    try:
        with ganzoo.files.atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"key": key})
    except OSError:
        pass


def _statistics(real: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {"mu": real["mu"].numpy(), "sigma": real["sigma"].numpy()}


@attrs.define(kw_only=True)
class FID(PoolMetric):
    """`fid`: Fréchet Inception distance (Heusel et al. 2017) between real and generated images."""

    name: ClassVar[str] = "fid"

    def check_count(self, reals, fakes):
        if min(reals, fakes) < 2:
            raise ganzoo.UserError(f"{self.table} needs at least 2 images per side for a covariance")

    def measure(self, ctx, inception, n):
        real = self.real(ctx, inception, n)
        fake = fid_features_to_statistics(self.fake_features(ctx, inception, n))
        value = fid_statistics_to_metric(_statistics(real), fake, verbose=False)
        return {"fid": value["frechet_inception_distance"]}


@attrs.define(kw_only=True)
class KID(PoolMetric):
    """`kid`: kernel Inception distance (Bińkowski et al. 2018), mean and std over random subsets
    (cubic polynomial kernel), torch-fidelity's defaults: 100 subsets of 1000 images."""

    name: ClassVar[str] = "kid"
    subsets: int = DEFAULTS["kid_subsets"]
    subset_size: int = DEFAULTS["kid_subset_size"]

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        ganzoo.checks.count(self.subsets, f"{self.table} subsets")
        ganzoo.checks.count(self.subset_size, f"{self.table} subset_size", minimum=2)

    def check_count(self, reals, fakes):
        if min(reals, fakes) < self.subset_size:
            raise ganzoo.UserError(f"{self.table} subset_size {self.subset_size} is more than the "
                                   f"{min(reals, fakes)} images per side; lower subset_size or raise "
                                   f"num_images")

    def measure(self, ctx, inception, n):
        real = self.real(ctx, inception, n)["features"]
        fake = self.fake_features(ctx, inception, n)
        # torch-fidelity's order: input 1 generated, input 2 real (its subset draws follow it)
        value = kid_features_to_metric(fake, real, kid_subsets=self.subsets, kid_subset_size=self.subset_size,
                                       verbose=False)
        return {"mean": value["kernel_inception_distance_mean"],
                "std": value["kernel_inception_distance_std"]}


@attrs.define(kw_only=True)
class ISC(InceptionMetric):
    """`isc`: Inception score (Salimans et al. 2016) of generated images, mean and std over splits
    (torch-fidelity's default 10), from the 1008 logits without the bias, as the original code."""

    name: ClassVar[str] = "isc"
    splits: int = DEFAULTS["isc_splits"]

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        ganzoo.checks.count(self.splits, f"{self.table} splits")

    def check_count(self, reals, fakes):
        if fakes < self.splits:
            raise ganzoo.UserError(f"{self.table} splits {self.splits} is more than the {fakes} images")

    def measure(self, ctx, inception, n):
        logits = self.fake_features(ctx, inception, n)
        value = isc_features_to_metric(logits, self.splits, DEFAULTS["samples_shuffle"], DEFAULTS["rng_seed"])
        return {"mean": value["inception_score_mean"], "std": value["inception_score_std"]}


@attrs.define(kw_only=True)
class PRC(PoolMetric):
    """`prc`: improved precision and recall (Kynkäänniemi et al. 2019), k-NN balls (k = 3) in
    Inception pool features (torch-fidelity's default for `prc` is VGG-16; see the README)."""

    name: ClassVar[str] = "prc"
    neighborhood: int = DEFAULTS["prc_neighborhood"]

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        ganzoo.checks.count(self.neighborhood, f"{self.table} neighborhood")

    def check_count(self, reals, fakes):
        if min(reals, fakes) <= self.neighborhood:
            raise ganzoo.UserError(f"{self.table} neighborhood {self.neighborhood} needs more than "
                                   f"{min(reals, fakes)} images per side")

    def measure(self, ctx, inception, n):
        real = self.real(ctx, inception, n)["features"]
        fake = self.fake_features(ctx, inception, n)
        # torch-fidelity's convention: input 1 is generated, input 2 is real
        value = prc_features_to_metric(fake, real, prc_neighborhood=self.neighborhood, verbose=False)
        return {"precision": value["precision"], "recall": value["recall"], "f_score": value["f_score"]}
