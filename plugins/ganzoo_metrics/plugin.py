"""ganzoo plugin "metrics": SWD and MS-SSIM, each built from its `[eval.<name>]` table."""

from __future__ import annotations

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_metrics(register):
    from ganzoo_metrics.ms_ssim import MSSSIM
    from ganzoo_metrics.swd import SlicedWasserstein

    register("swd", SlicedWasserstein)
    register("ms_ssim", MSSSIM)
