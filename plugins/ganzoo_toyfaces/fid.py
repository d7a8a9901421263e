"""`toyfaces_fid`: the Fréchet distance in the toyfaces attribute classifier's feature space.

FID (Heusel et al. 2017) with the toyfaces classifier (`ganzoo_toyfaces.classifier`, trained on
real toyfaces of its own identities and cached, no download) in place of Inception-v3: the
features are its last conv block's activations averaged over positions (128 numbers per image,
`AttributeClassifier.embed`), as FID's are Inception's pool3 average. The Gaussian fits and
the distance are torch-fidelity's own functions (`fid_features_to_statistics`,
`fid_statistics_to_metric`), as for `fid`.

One seeded draw of 2n distinct real images is split in halves A (the reference) and B:

- `fid`: generated images (n) against A; a conditional model is asked for B's labels.
- `floor`: B against A, the value a generator indistinguishable from the data would get at
  this n (the estimate is biased upwards by sampling, so it is never 0); `ratio`: fid / floor.
- `marginal/<attr>`: the share of generated images the classifier sees each attribute in
  (all seven, whatever the dataset's attributes), `real/<attr>`: the same judge on A, and
  `marginal_gap`: the largest absolute difference between the two.

Real images are not mirrored even when training mirrors them: toyfaces are drawn near
left-right symmetric, and in these pooled features a flipped set lies closer to the
unflipped one than two real sets do (FD(flipped A, A) = 0.005, floor 0.23, at n = 2000).
"""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

import ganzoo
from ganzoo_toyfaces.classifier import decide, load_classifier, one_thread
from ganzoo_toyfaces.drawing import ATTRIBUTES
from ganzoo_toyfaces.metrics import toyfaces_of

__all__ = ["ToyfacesFID"]

TABLE = "[eval.toyfaces_fid]"
REAL_OFFSET, FAKE_OFFSET = 0x7F1D, 0x7F1E  # ctx.generator_rng offsets of the real draw and the latents


class ToyfacesFID:
    """Keys (`[eval.toyfaces_fid]`):

    num_images  images per set, n (default: [eval] num_images; at most half the dataset)
    batch_size  images per classifier pass
    """

    def __init__(self, num_images: int | None = None, batch_size: int = 256):
        if num_images is not None:
            ganzoo.checks.count(num_images, f"{TABLE} num_images", minimum=2)
        self.num_images = num_images
        self.batch_size = ganzoo.checks.count(batch_size, f"{TABLE} batch_size")

    def __call__(self, ctx: ganzoo.EvalContext) -> dict[str, float]:
        faces = toyfaces_of(ctx, "toyfaces_fid", attributes=False)
        if ctx.model.translates:
            raise ganzoo.UserError("toyfaces_fid: this model translates images; measure it with "
                                   "the `translation` metric")
        n = min(self.num_images or ctx.num_images, len(faces) // 2)
        if n < 2:
            raise ganzoo.UserError(f"toyfaces_fid: needs at least 4 real images (two sets of 2 "
                                   f"for a covariance); the dataset has {len(faces)}: raise data.size")
        classifier = load_classifier(ctx.resolution)
        labels: list[torch.Tensor] = []
        real_features, real_logits = self._read(
            classifier, ctx.real_uint8_batches(2 * n, labels, offset=REAL_OFFSET))
        fake_features, fake_logits = self._read(
            classifier, ctx.fake_uint8_batches(n, torch.cat(labels)[n:], offset=FAKE_OFFSET))
        reference = fid_features_to_statistics(real_features[:n])
        fid = _distance(fid_features_to_statistics(fake_features), reference)
        floor = _distance(fid_features_to_statistics(real_features[n:]), reference)
        fake_share, real_share = decide(fake_logits).mean(0), decide(real_logits[:n]).mean(0)
        results = {"fid": fid, "floor": floor, "ratio": fid / floor if floor > 0 else float("nan")}
        for j, name in enumerate(ATTRIBUTES):
            results[f"marginal/{name}"] = float(fake_share[j])
            results[f"real/{name}"] = float(real_share[j])
        results["marginal_gap"] = float((fake_share - real_share).abs().max())
        return results

    @torch.no_grad()
    def _read(self, classifier, batches) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of uint8 image batches, in float64 for the statistics."""
        features, logits = [], []
        classifier.eval()
        with one_thread():
            for batch in batches:
                for chunk in ganzoo.images.to_float(batch).split(self.batch_size):
                    f, logit = classifier.embed(chunk)
                    features.append(f.double())
                    logits.append(logit)
        return torch.cat(features), torch.cat(logits)


def _distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return float(fid_statistics_to_metric(a, b, verbose=False)["frechet_inception_distance"])
