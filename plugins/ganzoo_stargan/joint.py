"""`joint`: several labelled datasets as one, with StarGAN's mask vector (paper, section 3.2).

Each sample's labels are [labels_1, ..., labels_K, mask], where only the part of the dataset
it comes from is filled (the others, unknown for it, are zero) and `mask` is one-hot over the
K datasets. `attribute_names` follow the same layout; mask entries are named `mask:NAME`
(NAME is the dataset's name, or its table's `name` key). Pair it with the stargan model's
`mask_dims = K` and domain_classification's `parts = [label counts]` (see their docs).

    [data]
    dataset = "joint"
    resolution = 128
    [[data.datasets]]
    dataset = "celeba"
    root = "data/celeba"
    [[data.datasets]]
    dataset = "toyfaces"                # any registered dataset with attributes
    name = "toy"                        # optional: the mask entry becomes "mask:toy"
    attributes = ["smiling", "eyeglasses"]

Samples are drawn uniformly over the concatenation, so datasets mix within batches in
proportion to their sizes (the paper alternates single-dataset batches instead; the
classification loss masks per sample, so both work). Target labels are the batch's own
labels shuffled, so a sample may also be sent to another dataset's domains (mask included):
the cross-dataset translation the paper shows at test time, here also trained.
"""

from __future__ import annotations

import ganzoo
import torch
from ganzoo import ImageDataset

MASK_PREFIX = "mask:"


def _sub_error(index: int, text: str) -> ganzoo.UserError:
    return ganzoo.UserError(f"joint: datasets[{index}]: {text}")


class JointDataset(ImageDataset):
    """Datasets with disjoint label sets joined by StarGAN's mask vector (labels: parts, then mask).

    The concatenation of `datasets` (tables, each built through ganzoo.registry("datasets") with
    the joint `resolution`; an optional `name` key names its mask entry).
    """

    def __init__(self, datasets: list[dict], resolution: int):
        if not isinstance(datasets, (list, tuple)) or len(datasets) < 2 \
                or not all(isinstance(t, dict) for t in datasets):
            raise ganzoo.UserError("joint: datasets must be a list of at least two tables, e.g. "
                                   "[[data.datasets]] dataset = \"celeba\" ...")
        registry = ganzoo.registry("datasets")
        self.resolution = resolution
        self.datasets: list[ImageDataset] = []
        self.names: list[str] = []
        given: list[str] = []
        for index, table in enumerate(datasets):
            params = dict(table)
            name = params.pop("dataset", None)
            if not isinstance(name, str):
                raise _sub_error(index, "needs 'dataset' (a registered dataset name)")
            if name == "joint":
                raise _sub_error(index, "a joint dataset cannot contain another")
            label = params.pop("name", name)
            if not isinstance(label, str) or not label:
                raise _sub_error(index, f"name must be a non-empty string, got {label!r}")
            if params.setdefault("resolution", resolution) != resolution:
                raise _sub_error(index, f"resolution {params['resolution']} differs from the joint "
                                        f"dataset's {resolution}; leave it out")
            try:
                dataset = registry.get(name)(**params)
            except ganzoo.UserError as error:
                raise _sub_error(index, str(error)) from None
            except (TypeError, ValueError) as error:
                raise _sub_error(index, f"dataset '{name}': {error}") from None
            if not dataset.attribute_names:
                raise _sub_error(index, f"dataset '{name}' has no attributes; each part of a joint "
                                        f"dataset needs labels")
            given.append(label)
            if given.count(label) > 1:  # two of the same kind: make the mask names unique
                label = f"{label}_{given.count(label)}"
            if label in self.names:
                raise _sub_error(index, f"name '{label}' is taken; give each dataset its own name")
            self.datasets.append(dataset)
            self.names.append(label)
        seen: dict[str, str] = {}
        for dataset, label in zip(self.datasets, self.names):
            for attribute in dataset.attribute_names:
                if attribute in seen:
                    raise ganzoo.UserError(f"joint: attribute '{attribute}' is in both '{seen[attribute]}' "
                                           f"and '{label}'; the label sets must be disjoint")
                seen[attribute] = label
        self.parts = [len(d.attribute_names) for d in self.datasets]
        self.mask_names = [MASK_PREFIX + n for n in self.names]
        self.attribute_names = [a for d in self.datasets for a in d.attribute_names] + self.mask_names
        self.attribute_groups = [list(g) for d in self.datasets for g in d.attribute_groups]
        self.attribute_groups.append(list(self.mask_names))  # the mask is one-hot
        self.offsets = [0]
        for dataset in self.datasets:
            self.offsets.append(self.offsets[-1] + len(dataset))
        self.in_memory = all(getattr(d, "in_memory", False) for d in self.datasets)

    @property
    def mask_dims(self) -> int:
        return len(self.datasets)

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """(dataset number, index inside it) of a joint index."""
        n, index = len(self), int(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        index %= n
        k = next(k for k in range(len(self.datasets)) if index < self.offsets[k + 1])
        return k, index - self.offsets[k]

    def joint_labels(self, k: int, labels: torch.Tensor) -> torch.Tensor:
        """Dataset k's own labels placed in the joint layout, with its mask set."""
        out = torch.zeros(len(self.attribute_names), dtype=torch.float32)
        start = sum(self.parts[:k])
        out[start:start + self.parts[k]] = labels
        out[sum(self.parts) + k] = 1.0
        return out

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, i = self.locate(index)
        image, labels = self.datasets[k].load(i)
        return image, self.joint_labels(k, labels)

    def load_at(self, index: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, i = self.locate(index)
        image, labels = self.datasets[k].load_at(i, resolution)
        return image, self.joint_labels(k, labels)
