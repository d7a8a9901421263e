"""ganzoo plugin "dcgan": the DCGAN model family and the BCE / non-saturating GAN losses.

`dcgan` with `conditional = true` is an AC-GAN built from the registered `label_concat` and
`class_head` blocks (see `ganzoo_dcgan.models`).
"""

from __future__ import annotations

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_models(register):
    from ganzoo_dcgan.models import build_dcgan

    register("dcgan", build_dcgan)


@ganzoo.hookimpl
def ganzoo_register_losses(register):
    from ganzoo_dcgan.losses import MinimaxBCE, NonSaturating

    register("bce", MinimaxBCE)
    register("nonsaturating", NonSaturating)
