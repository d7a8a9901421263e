"""ganzoo plugin "wgan": Wasserstein, hinge and least-squares losses, clipping and penalties."""

from __future__ import annotations

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_losses(register):
    from ganzoo_wgan.losses import Drift, Hinge, LeastSquares, Wasserstein
    from ganzoo_wgan.penalties import GradientPenalty, WeightClip

    register("wasserstein", Wasserstein)
    register("weight_clip", WeightClip)
    register("gradient_penalty", GradientPenalty)
    register("drift", Drift)
    register("hinge", Hinge)
    register("least_squares", LeastSquares)
