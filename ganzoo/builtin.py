"""The core's own registrations: family-neutral parts every plugin may build on.

The `fixed` growth schedule, plain torch layers as blocks and the standard normalizers.
Model families and datasets live in plugins (toyfaces, image_folder), never here.
"""

from __future__ import annotations

from torch import nn

from ganzoo.engine.schedule import FixedSchedule
from ganzoo.hookspecs import hookimpl


class BatchNorm(nn.BatchNorm2d):
    """Batch normalization over (N, H, W) per channel (DCGAN, Radford et al.)."""


class InstanceNorm(nn.InstanceNorm2d):
    """Instance normalization with learned affine and running statistics (StarGAN's setting)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__(num_features, eps=eps, affine=True, track_running_stats=True)


class LayerNorm(nn.GroupNorm):
    """Layer normalization over (C, H, W) with a per-channel affine."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__(1, num_features, eps=eps)


class NoNorm(nn.Identity):
    """No normalization (e.g. a WGAN-GP critic, which must not use BatchNorm)."""

    def __init__(self, num_features: int | None = None):
        super().__init__()


@hookimpl
def ganzoo_register_normalizers(register):
    register("batch", BatchNorm)
    register("instance", InstanceNorm)
    register("layer", LayerNorm)
    register("none", NoNorm)


@hookimpl
def ganzoo_register_blocks(register):
    register("conv2d", nn.Conv2d, summary="torch.nn.Conv2d")
    register("conv_transpose2d", nn.ConvTranspose2d, summary="torch.nn.ConvTranspose2d")
    register("linear", nn.Linear, summary="torch.nn.Linear")


@hookimpl
def ganzoo_register_schedules(register):
    register("fixed", FixedSchedule)
