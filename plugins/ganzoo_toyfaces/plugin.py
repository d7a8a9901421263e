"""ganzoo plugin "toyfaces": the toyfaces dataset and the metrics that judge models trained on it."""

from __future__ import annotations

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_datasets(register):
    from ganzoo_toyfaces.dataset import ToyFaces

    register("toyfaces", ToyFaces)


@ganzoo.hookimpl
def ganzoo_register_metrics(register):
    from ganzoo_toyfaces.fid import ToyfacesFID
    from ganzoo_toyfaces.metrics import AttributeAccuracy, Translation

    register("attribute_accuracy", AttributeAccuracy,
             summary="toyfaces: share of generated images showing the requested attributes "
                     "(attribute classifier), per attribute and mean")
    register("translation", Translation,
             summary="toyfaces: held-out faces translated per attribute: classifier-recognised "
                     "share and L1 to the rendered ground truth (vs. identity baseline)")
    register("toyfaces_fid", ToyfacesFID,
             summary="toyfaces: Fréchet distance in the attribute classifier's features, beside "
                     "the real-vs-real floor; attribute marginals of generated vs real images")
