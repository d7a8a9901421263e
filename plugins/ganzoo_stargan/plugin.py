"""ganzoo plugin "stargan": StarGAN's conditioning blocks, losses, model family and datasets."""

from __future__ import annotations

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_blocks(register):
    from ganzoo_stargan.blocks import ClassHead, LabelConcat

    register("label_concat", LabelConcat,
             summary="labels (N, L) replicated over H x W and concatenated to (N, C, H, W)")
    register("class_head", ClassHead,
             summary="class_head(in_channels, label_dim, kernel_size): k x k map -> logits (N, label_dim)")


@ganzoo.hookimpl
def ganzoo_register_losses(register):
    from ganzoo_stargan.losses import CycleReconstruction, DomainClassification

    register("domain_classification", DomainClassification,
             summary="StarGAN domain classification (multi- or single-label, mask vector aware)")
    register("cycle_reconstruction", CycleReconstruction,
             summary="StarGAN cycle reconstruction: L1 |x - G(G(x, c_trg), c_org)| (G only)")


@ganzoo.hookimpl
def ganzoo_register_models(register):
    from ganzoo_stargan.models import build_stargan

    register("stargan", build_stargan)


@ganzoo.hookimpl
def ganzoo_register_datasets(register):
    from ganzoo_stargan.celeba import CelebA
    from ganzoo_stargan.joint import JointDataset

    register("celeba", CelebA, summary="CelebA with StarGAN's attributes and split (local files)")
    register("joint", JointDataset, summary="datasets with disjoint labels joined by a mask vector")


@ganzoo.hookimpl
def ganzoo_register_metrics(register):
    from ganzoo_stargan.metrics import register_metrics

    register_metrics(register)
