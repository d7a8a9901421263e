"""StarGAN's losses beside the adversarial one: domain classification and cycle reconstruction.

Paper (Choi et al. 2018, section 3.1), full objective:
  L_D = -L_adv + lambda_cls * L_cls^r,   L_G = L_adv + lambda_cls * L_cls^f + lambda_rec * L_rec
with lambda_cls = 1 and lambda_rec = 10: the recipe `weight`s of these two terms.
"""

from __future__ import annotations

import ganzoo
import torch
import torch.nn.functional as F
from ganzoo import checks

KINDS = ("multi_label", "single_label")


def _per_sample(kind: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) losses: BCE-with-logits summed over attributes, or cross-entropy over one-hot domains."""
    logits, labels = logits.float(), labels.float()
    if kind == "multi_label":
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(dim=1)
    return F.cross_entropy(logits, labels.argmax(dim=1), reduction="none")


class DomainClassification:
    """Domain classification (StarGAN, eq. 2-3): D classifies reals by their labels, G's fakes by their targets.

    D learns to classify real images by their labels; G learns to make fakes that D classifies
    as their target labels. D term: classification of `ctx.real_class_logits` against `ctx.real_labels`; G term: of
    `ctx.fake_class_logits` against `ctx.target_labels`. Averaged over the batch.

    `kind = "multi_label"`: independent attributes (CelebA): binary cross-entropy with logits
    summed over the attributes, i.e. the official `binary_cross_entropy_with_logits(...,
    size_average=False) / N`. `kind = "single_label"`: the labels are one-hot domains (RaFD):
    cross-entropy of the softmax over them (target = the set entry).

    Mask vector (paper section 3.2; the `joint` dataset): labels are [part_1, ..., part_K,
    one-hot mask over the K datasets] and the class logits [part_1, ..., part_K]. Set
    `parts` to the sizes of the K parts (in the joint dataset's order); `kind` may then be a
    list, one kind per part. Each sample is classified only on the part its mask selects,
    against that part of its labels; the other parts (unknown for it) add nothing. This is
    per sample, so a batch may mix datasets; a batch drawn from one dataset gives exactly the
    paper's (and official code's) loss, which alternates single-dataset batches.
    """

    def __init__(self, kind: str | list[str] = "multi_label", parts: list[int] | None = None):
        if parts is not None:
            if not parts:
                raise ganzoo.UserError("domain_classification: parts must be a non-empty list of "
                                       "label counts (one per dataset), got []")
            parts = [checks.count(p, f"domain_classification: parts[{i}]") for i, p in enumerate(parts)]
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not kinds:
            raise ganzoo.UserError(f"domain_classification: kind must be one of "
                                   f"{', '.join(map(checks.show, KINDS))} or a list of them, got []")
        for k in kinds:
            checks.one_of(k, KINDS, "domain_classification: kind")
        if not isinstance(kind, str):
            if parts is None or len(kinds) != len(parts):
                raise ganzoo.UserError(f"domain_classification: a list of kinds needs parts of the "
                                       f"same length (one per dataset), got kind = {checks.show(kind)}, "
                                       f"parts = {checks.show(parts)}")
        self.parts = parts
        self.kinds = list(kinds) if parts is None or not isinstance(kind, str) else [kind] * len(parts)

    def discriminator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return self.loss(ctx.real_class_logits, ctx.real_labels, "real")

    def generator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        return self.loss(ctx.fake_class_logits, ctx.target_labels, "target")

    def loss(self, logits: torch.Tensor | None, labels: torch.Tensor | None,
             which: str = "given") -> torch.Tensor:
        """The batch-mean classification loss of `logits` against `labels` (with their mask, if any)."""
        if logits is None or labels is None:
            missing = "class logits (the critic has no class head)" if logits is None else f"{which} labels"
            raise ganzoo.UserError(f"domain_classification: no {missing}; it needs a conditional "
                                   f"family such as stargan and a dataset with attributes")
        n, width = logits.shape
        if self.parts is None:
            if labels.shape[1] != width:
                raise ganzoo.UserError(
                    f"domain_classification: {labels.shape[1]} label entries but {width} class "
                    f"logits; with a mask vector (joint dataset) set parts = [label counts per dataset]")
            return _per_sample(self.kinds[0], logits, labels).sum() / n
        if sum(self.parts) != width or labels.shape[1] != width + len(self.parts):
            raise ganzoo.UserError(
                f"domain_classification: parts = {self.parts} expects {sum(self.parts)} class logits "
                f"and {sum(self.parts) + len(self.parts)} label entries (with the mask), got {width} "
                f"and {labels.shape[1]}")
        mask = labels[:, width:].float()
        total = logits.new_zeros((), dtype=torch.float32)
        start = 0
        for k, (size, kind) in enumerate(zip(self.parts, self.kinds)):
            part = slice(start, start + size)
            total = total + (_per_sample(kind, logits[:, part], labels[:, part]) * mask[:, k]).sum()
            start += size
        return total / n


class CycleReconstruction:
    """Cycle-consistency loss (StarGAN, eq. 4): mean |x - G(G(x, c_trg), c_org)|, generator only.

    Translating a fake back to the real image's own labels must give the real image back, so
    G keeps what the labels do not describe (identity, pose, background). L1 averaged over
    every pixel and channel, as the official code. The paper's lambda_rec = 10 is the recipe
    `weight`. Needs a translating family (stargan), whose generator the engine passes as
    `ctx.generator`; gradients flow through both passes of G.
    """

    def generator_loss(self, ctx: ganzoo.LossContext) -> torch.Tensor:
        if ctx.generator is None or ctx.real_labels is None:
            raise ganzoo.UserError("cycle_reconstruction: needs a translating model (e.g. stargan) "
                                   "and a dataset with attributes")
        # In the real images' dtype: under bf16 autocast the fake is bf16, but G's second pass
        # may run outside autocast (fp32 weights).
        reconstructed = ctx.generator(ctx.fake.to(ctx.real.dtype), ctx.real_labels)
        return (ctx.real.float() - reconstructed.float()).abs().mean()
