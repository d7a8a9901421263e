"""ganzoo plugin "progan": equalized-lr blocks, pixelnorm, minibatch stddev, the progressive
growth schedule and the ProGAN model family."""

from __future__ import annotations

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_blocks(register):
    from ganzoo_progan.layers import EqualizedConv2d, EqualizedLinear, MinibatchStddev

    register("equalized_conv2d", EqualizedConv2d)
    register("equalized_linear", EqualizedLinear)
    register("minibatch_stddev", MinibatchStddev)


@ganzoo.hookimpl
def ganzoo_register_normalizers(register):
    from ganzoo_progan.layers import PixelNorm

    register("pixelnorm", PixelNorm)


@ganzoo.hookimpl
def ganzoo_register_schedules(register):
    from ganzoo_progan.schedule import ProgressiveSchedule

    register("progressive", ProgressiveSchedule)


@ganzoo.hookimpl
def ganzoo_register_models(register):
    from ganzoo_progan.networks import build_progan

    register("progan", build_progan)
