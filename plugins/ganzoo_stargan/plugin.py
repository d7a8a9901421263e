"""ganzoo plugin "stargan": StarGAN's conditioning blocks, losses, model family and datasets."""

from __future__ import annotations

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_blocks(register):
    from ganzoo_stargan.blocks import ClassHead, LabelConcat

    register("label_concat", LabelConcat)
    register("class_head", ClassHead)


@ganzoo.hookimpl
def ganzoo_register_losses(register):
    from ganzoo_stargan.losses import CycleReconstruction, DomainClassification

    register("domain_classification", DomainClassification)
    register("cycle_reconstruction", CycleReconstruction)


@ganzoo.hookimpl
def ganzoo_register_models(register):
    from ganzoo_stargan.models import build_stargan

    register("stargan", build_stargan)


@ganzoo.hookimpl
def ganzoo_register_datasets(register):
    from ganzoo_stargan.celeba import CelebA
    from ganzoo_stargan.joint import JointDataset

    register("celeba", CelebA)
    register("joint", JointDataset)


@ganzoo.hookimpl
def ganzoo_register_commands(subparsers):
    from ganzoo_stargan.translation import add_translate_command

    add_translate_command(subparsers)
