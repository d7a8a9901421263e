"""ganzoo plugin "metrics": SWD and MS-SSIM, and FID, KID, IS and precision/recall through torch-fidelity."""

from __future__ import annotations

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_metrics(register):
    from ganzoo_metrics.fidelity import FID, ISC, KID, PRC
    from ganzoo_metrics.ms_ssim import MSSSIM
    from ganzoo_metrics.swd import SlicedWasserstein

    register("swd", SlicedWasserstein)
    register("ms_ssim", MSSSIM)
    register("fid", FID, summary="Fréchet Inception distance (torch-fidelity, local weights)")
    register("kid", KID, summary="kernel Inception distance, mean and std over subsets")
    register("isc", ISC, summary="Inception score of generated images, mean and std over splits")
    register("prc", PRC, summary="precision, recall and F-score of k-NN balls in Inception features")
