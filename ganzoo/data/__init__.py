"""Datasets: what every registered dataset provides to the engine.

A dataset is registered (hook `ganzoo_register_datasets`) as a class built from its [data]
table as keyword arguments (everything except `dataset`; `resolution` always among them).
It is a `torch.utils.data.Dataset` with:

- `resolution` (int) and `__len__`;
- `__getitem__(index) -> (image, labels)`: image a uint8 tensor (3, R, R) at `resolution`,
  labels a float32 tensor (label_dim,) of 0/1 attributes (empty when unconditional);
- `attribute_names` (list[str], empty when unconditional) and `attribute_groups` (lists of
  names of which exactly one is set, e.g. hair colours);
- `at_resolution(r) -> Dataset`: the same images at a smaller power-of-two resolution
  (2x2 box-filtered), which progressive growth uses; the base class provides it.
"""

from ganzoo.data.base import ImageDataset

__all__ = ["ImageDataset"]
