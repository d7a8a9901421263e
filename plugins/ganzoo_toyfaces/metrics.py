"""Measured quality on toyfaces: attribute accuracy of conditional generators, and translation.

Both metrics judge images with the toyfaces attribute classifier (`ganzoo_toyfaces.classifier`:
a tiny CNN trained on real toyfaces of its own identities, cached under $GANZOO_CACHE), so
they need a run on the `toyfaces` dataset; any other dataset is a UserError.

- `attribute_accuracy` (a generator of new images, e.g. dcgan with conditional = true): how
  often the classifier sees the attributes that were requested.
- `translation` (an image-translation model, e.g. stargan): held-out identities translated by
  every single-attribute change, judged by the classifier and against the ground truth that
  toyfaces can draw (the same identity with the target attributes).

Use them in a recipe (`[eval] metrics = ["translation"]`, options in `[eval.translation]`) or
on a checkpoint (`ganzoo eval CKPT --metric translation`).
"""

from __future__ import annotations

import numpy as np
import torch

import ganzoo
from ganzoo_toyfaces.classifier import load_classifier, one_thread
from ganzoo_toyfaces.dataset import ToyFaces
from ganzoo_toyfaces.drawing import ATTRIBUTES, HAIR_COLOURS

__all__ = ["AttributeAccuracy", "Translation", "toyfaces_of"]

LABEL_MODES = ("dataset", "each")


# --- shared ----------------------------------------------------------------------------------

def toyfaces_of(ctx: ganzoo.EvalContext, metric: str, attributes: bool = True):
    """The run's dataset, which must be toyfaces (with attributes, unless `attributes` is False)."""
    if not isinstance(ctx.dataset, ToyFaces):
        raise ganzoo.UserError(f"{metric}: needs a run on the toyfaces dataset (its attribute "
                               f"classifier and ground truth are toyfaces'), got "
                               f"{type(ctx.dataset).__name__}")
    if attributes and not ctx.attribute_names:
        raise ganzoo.UserError(f"{metric}: the dataset has no attributes to check; set "
                               f"data.attributes (e.g. [\"blond_hair\", \"smiling\"])")
    return ctx.dataset


def _predict(classifier, images: torch.Tensor, names: list[str]) -> torch.Tensor:
    """0/1 predictions (N, len(names)) in the dataset's attribute order."""
    with one_thread():
        predicted = classifier.predict(images)
    return predicted[:, [ATTRIBUTES.index(name) for name in names]]


def _to_float(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) to float (3, H, W) in [-1, 1], as the engine feeds images."""
    return ganzoo.images.to_float(torch.from_numpy(image.transpose(2, 0, 1).copy()))


# --- attribute_accuracy ----------------------------------------------------------------------

class AttributeAccuracy:
    """How often a conditional generator's images show the attributes they were asked for.

    Generates `num_images` images (at most the eval context's num_images) from seeded latents
    and requested label vectors, classifies them with the toyfaces attribute classifier, and
    returns per attribute `<name>`: the share of images where the classifier agrees with the
    request, `mean`: their mean, and `classifier`: the classifier's own mean accuracy on real
    held-out faces (the ceiling). Requests (`labels`):

    - "dataset": label vectors of real training faces drawn at random; every attribute is
      checked on every image, and `all` is the share of images right on all of them.
    - "each": each attribute in turn requested on (and, outside an exclusive group such as
      the hair colours, off) in equal shares, the others as in a random real face; only the
      requested attribute is checked.

    Works for any non-translating model on toyfaces; an unconditional one scores at chance.
    """

    def __init__(self, num_images: int = 1000, labels: str = "dataset"):
        self.num_images = ganzoo.checks.count(num_images, "attribute_accuracy: num_images")
        self.labels = ganzoo.checks.one_of(labels, LABEL_MODES, "attribute_accuracy: labels")

    def __call__(self, ctx: ganzoo.EvalContext) -> dict[str, float]:
        faces = toyfaces_of(ctx, "attribute_accuracy")
        if ctx.model.translates:
            raise ganzoo.UserError("attribute_accuracy: this model translates images; measure it "
                                   "with the `translation` metric")
        names, groups = ctx.attribute_names, ctx.attribute_groups
        n = min(self.num_images, ctx.num_images)
        rng = ctx.generator_rng(offset=101)
        bank = faces.labels
        base = bank[torch.randint(len(bank), (n,), generator=rng)]
        checked = torch.ones(n, len(names), dtype=torch.bool)
        if self.labels == "each":
            base, checked = _each_attribute(base, names, groups)
        classifier = load_classifier(ctx.resolution)
        images = ctx.sample(len(base), base, offset=102)
        correct = _predict(classifier, images, names) == base
        results = {}
        for j, name in enumerate(names):
            results[name] = float(correct[checked[:, j], j].float().mean())
        results["mean"] = float(np.mean([results[name] for name in names]))
        if self.labels == "dataset":
            results["all"] = float(correct.all(1).float().mean())
        results["classifier"] = float(classifier.heldout["mean"])
        return results


def _each_attribute(base: torch.Tensor, names: list[str], groups: list[list[str]]):
    """Rows of `base` with one attribute set each, in equal shares, and which entry to check."""
    grouped = {name for group in groups for name in group}
    settings = [(name, value) for name in names
                for value in ((1.0,) if name in grouped else (1.0, 0.0))]
    share = max(1, len(base) // len(settings))
    rows, checked = [], []
    for k, (name, value) in enumerate(settings):
        part = base[(torch.arange(share) + k * share) % len(base)]
        rows.append(ganzoo.apply_attributes(part, names, {name: value}, groups))
        mask = torch.zeros(share, len(names), dtype=torch.bool)
        mask[:, names.index(name)] = True
        checked.append(mask)
    return torch.cat(rows), torch.cat(checked)


# --- translation -----------------------------------------------------------------------------

class Translation:
    """Image translation on held-out toyfaces, against the ground truth toyfaces can draw.

    Takes `num_images` identities (at most the eval context's num_images) that the run never
    trained on (indices from the dataset's size on), draws them with their own attributes at
    the generator's resolution, and translates each by every single-attribute change
    (`ganzoo.single_attribute_targets`: a hair colour set, any other attribute flipped;
    changes that leave the labels as they are, e.g. black hair to black hair, are skipped).
    Returns, over all translations and per changed attribute `<name>`:

    - `recognised`, `recognised/<name>`: share of translated images whose target attributes
      (all of the dataset's attributes) the toyfaces attribute classifier recognises;
      `changed/<name>`: share where it recognises the changed attribute itself.
    - `l1`, `l1/<name>`: mean absolute difference to the ground truth, i.e. the same identity
      drawn with the target attributes (`ToyFaces.render`), per pixel and channel, in the
      [-1, 1] pixel range (so 0 is perfect and 2 the maximum).
    - `l1_identity`, `l1_identity/<name>`: the same for the untranslated input (the identity
      mapping): the baseline a useful translator must beat.
    - `translations`: how many translations were judged; `classifier`: the classifier's own
      mean accuracy on real held-out faces.
    """

    def __init__(self, num_images: int = 300):
        self.num_images = ganzoo.checks.count(num_images, "translation: num_images")

    def __call__(self, ctx: ganzoo.EvalContext) -> dict[str, float]:
        faces = toyfaces_of(ctx, "translation")
        if not ctx.model.translates:
            raise ganzoo.UserError("translation: needs an image-translation model (e.g. stargan); "
                                   "measure a conditional generator with `attribute_accuracy`")
        names, groups = ctx.attribute_names, ctx.attribute_groups
        res = ctx.resolution
        n = min(self.num_images, ctx.num_images)
        indices = list(range(len(faces), len(faces) + n))  # held out: never in training
        own = [faces.identity_attributes(i) for i in indices]
        labels = torch.tensor([[row[name] for name in names] for row in own], dtype=torch.float32)
        inputs = torch.stack([_to_float(faces.render(i, None, res)) for i in indices])
        classifier = load_classifier(res)

        stats: dict[str, list[torch.Tensor]] = {}
        for name, target in ganzoo.single_attribute_targets(labels, names, groups):
            rows, truths = [], []
            for row in (target != labels).any(1).nonzero().flatten().tolist():
                attributes = _render_attributes(own[row], names, target[row])
                if attributes is None:
                    continue
                rows.append(row)
                truths.append(_to_float(faces.render(indices[row], attributes, res)))
            if not rows:
                continue
            truth = torch.stack(truths)
            x, wanted = inputs[rows], target[rows]
            out = ctx.generate(x, wanted)
            predicted = _predict(classifier, out, names)
            j = names.index(name)
            stats[name] = [(predicted == wanted).all(1).float(),
                           (predicted[:, j] == wanted[:, j]).float(),
                           (out - truth).abs().mean((1, 2, 3)),
                           (x - truth).abs().mean((1, 2, 3))]
        if not stats:
            raise ganzoo.UserError("translation: no attribute change has a ground truth for this "
                                   "dataset's attributes")
        every = [torch.cat([s[k] for s in stats.values()]) for k in range(4)]
        results = {"recognised": float(every[0].mean()), "l1": float(every[2].mean()),
                   "l1_identity": float(every[3].mean())}
        for name, (ok, changed, l1, l1_identity) in stats.items():
            results[f"recognised/{name}"] = float(ok.mean())
            results[f"changed/{name}"] = float(changed.mean())
            results[f"l1/{name}"] = float(l1.mean())
            results[f"l1_identity/{name}"] = float(l1_identity.mean())
        results["translations"] = float(len(every[0]))
        results["classifier"] = float(classifier.heldout["mean"])
        return results


def _render_attributes(own: dict[str, int], names: list[str], row: torch.Tensor) -> dict | None:
    """The `ToyFaces.render` attributes of a target label row, or None if it names no one face.

    Attributes outside the dataset's keep the identity's own. A row with two hair colours, or
    one that switches the identity's own (named) hair colour off without switching another
    on, describes no single face (only possible when the dataset names some hair colours
    without grouping them)."""
    values = dict(zip(names, (int(v) for v in row.tolist())))
    attributes = {n: v for n, v in values.items() if n not in HAIR_COLOURS}
    hair_on = [n for n, v in values.items() if n in HAIR_COLOURS and v == 1]
    if len(hair_on) > 1:
        return None
    if hair_on:
        attributes[hair_on[0]] = 1
    elif any(n in HAIR_COLOURS for n in values):
        own_hair = next(n for n in HAIR_COLOURS if own[n])
        if own_hair in values:
            return None
    return attributes
