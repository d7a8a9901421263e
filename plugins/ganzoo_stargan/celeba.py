"""`celeba`: CelebA's aligned faces with a selection of its 40 binary attributes, as StarGAN uses them.

- `root` holds the attribute file `list_attr_celeba.txt` (or give `attr_path`) and the aligned
  images in `img_align_celeba/`, in `images/` (the layout of the StarGAN repository's
  download script) or directly in `root`. ganzoo never downloads: get CelebA from its page.
- The split is StarGAN's (official data_loader.py): the file's image lines are shuffled with
  Python's `random.seed(1234)`; `random.shuffle`, and those at shuffled positions i with
  i + 1 < 2000 form the test split, so it holds 1,999 images (the paper says 2,000), the
  train split the other 200,600 of 202,599.
- Labels are 0/1 floats in `attributes` order (the file's -1 becomes 0). Hair colours
  (Black/Blond/Brown/Gray_Hair) form an exclusive group in `attribute_groups`; the real
  labels are not always one-hot (some faces have none or two).
- Each image is centre-cropped to `crop` x `crop` (178, from 178 x 218) and resized to
  `resolution` with `image_folder.read_image` (antialiased LANCZOS; torchvision's Resize,
  which the official code uses, is bilinear). Horizontal flips (official: train only) come
  from the recipe's `data.mirror`.
"""

from __future__ import annotations

import difflib
import logging
import os
import random

import torch

from ganzoo import UserError
from ganzoo import ImageDataset, read_image

__all__ = ["CelebA", "DEFAULT_ATTRIBUTES", "HAIR_COLOURS", "TEST_SIZE", "split_lines"]

DEFAULT_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")  # the paper's
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")  # official create_labels
SPLIT_SEED = 1234
TEST_SIZE = 1999  # official: `if (i+1) < 2000` puts shuffled lines 0..1998 in the test split
HOW_TO_GET = ("download CelebA's aligned images (img_align_celeba) and list_attr_celeba.txt from "
              "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (ganzoo never downloads data)")
log = logging.getLogger("ganzoo.data")


def split_lines(rows: list[str], split: str) -> list[str]:
    """StarGAN's split of the attribute file's image lines (in file order): shuffled, then cut."""
    rows = list(rows)
    random.Random(SPLIT_SEED).shuffle(rows)  # same draws as random.seed(1234); random.shuffle
    return rows[:TEST_SIZE] if split == "test" else rows[TEST_SIZE:]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class CelebA(ImageDataset):
    """CelebA faces at `resolution` (centre `crop`), labelled with `attributes`, StarGAN's split."""

    def __init__(self, root: str, resolution: int = 128, crop: int | None = 178,
                 attributes: list[str] | None = None, split: str = "train",
                 attr_path: str | None = None):
        if not _is_int(resolution) or resolution < 4 or resolution & (resolution - 1):
            raise UserError(f"celeba: resolution must be a power of two >= 4, got {resolution!r}")
        if crop is not None and (not _is_int(crop) or crop < 1):
            raise UserError(f"celeba: crop must be a positive number of pixels, got {crop!r}")
        if split not in ("train", "test"):
            raise UserError(f"celeba: split must be 'train' or 'test', got {split!r}")
        if attributes is None:
            attributes = list(DEFAULT_ATTRIBUTES)
        if isinstance(attributes, str) or not isinstance(attributes, (list, tuple)) or not attributes \
                or not all(isinstance(a, str) for a in attributes):
            raise UserError(f"celeba: attributes must be a non-empty list of attribute names, "
                            f"got {attributes!r}")
        if len(set(attributes)) != len(attributes):
            raise UserError(f"celeba: attributes lists a name twice: {list(attributes)}")
        root = os.fspath(root)
        folder = os.path.expanduser(root)
        if not os.path.isdir(folder):
            what = "is not a directory" if os.path.exists(folder) else "does not exist"
            raise UserError(f"celeba: data folder '{root}' {what}; {HOW_TO_GET}")
        shown_attr = os.fspath(attr_path) if attr_path is not None else os.path.join(root, "list_attr_celeba.txt")
        attr_file = os.path.expanduser(shown_attr)
        if not os.path.isfile(attr_file):
            raise UserError(f"celeba: attribute file '{shown_attr}' not found; {HOW_TO_GET}")
        self.image_dir = next((d for d in (os.path.join(folder, "img_align_celeba"),
                                           os.path.join(folder, "images")) if os.path.isdir(d)), folder)
        self.root, self.resolution, self.crop, self.split = root, resolution, crop, split
        self.attribute_names = list(attributes)
        hair = [a for a in attributes if a in HAIR_COLOURS]
        self.attribute_groups = [hair] if len(hair) > 1 else []
        self.files, self.labels, first = self._parse(attr_file, shown_attr)
        first = os.path.join(self.image_dir, first) if first else None  # the file's first image
        if first is not None and not os.path.isfile(first):
            raise UserError(f"celeba: image '{first}' listed in '{shown_attr}' not found (looked in "
                            f"{os.path.join(root, 'img_align_celeba')}, {os.path.join(root, 'images')} "
                            f"and '{root}'); {HOW_TO_GET}")
        self.bad_files: dict[str, str] = {}  # per process: unreadable images, replaced on load
        self._report_once = [True]

    def _parse(self, attr_file: str, shown: str) -> tuple[list[str], torch.Tensor, str | None]:
        with open(attr_file, encoding="utf-8") as f:
            lines = [line.rstrip() for line in f]
        while lines and not lines[-1]:
            lines.pop()
        if len(lines) < 2:
            raise UserError(f"celeba: '{shown}' is not a CelebA attribute file (expected an image "
                            f"count, a line of attribute names, then one line per image)")
        names = lines[1].split()
        rows = lines[2:]
        if lines[0].strip().isdigit() and int(lines[0]) != len(rows):
            raise UserError(f"celeba: '{shown}' declares {int(lines[0])} images on its first line but "
                            f"lists {len(rows)}; the file is truncated or edited (StarGAN's split "
                            f"depends on the exact list)")
        columns = []
        for name in self.attribute_names:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise UserError(f"celeba: unknown attribute '{name}'{hint}; '{shown}' has: "
                                f"{', '.join(names)}")
            columns.append(names.index(name))
        files, labels = [], []
        for row in split_lines(rows, self.split):
            fields = row.split()
            if len(fields) != len(names) + 1:
                raise UserError(f"celeba: '{shown}': line {fields[0] if fields else row!r} has "
                                f"{len(fields) - 1} values for {len(names)} attributes")
            files.append(fields[0])
            labels.append([1.0 if fields[1 + c] == "1" else 0.0 for c in columns])  # -1 -> 0
        labels = torch.tensor(labels, dtype=torch.float32).reshape(len(files), len(columns))
        return files, labels, (rows[0].split() or [None])[0] if rows else None

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and labels; an unreadable image is replaced by the next readable one (with its labels)."""
        n, index = len(self.files), int(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        for step in range(n):
            i = (index + step) % n
            path = os.path.join(self.image_dir, self.files[i])
            if path in self.bad_files:
                continue
            try:
                image = read_image(path, self.resolution, self.crop)
            except Exception as error:  # PIL raises many types on bad data; never crash training
                self.bad_files.setdefault(path, str(error).splitlines()[0] if str(error) else
                                          type(error).__name__)
                continue
            if step:
                self._report()
            return image, self.labels[i].clone()
        raise UserError(f"celeba: none of the {n} images under '{self.image_dir}' is readable")

    def _report(self) -> None:
        try:
            self._report_once.pop()
        except IndexError:
            return
        path, reason = next(iter(self.bad_files.items()))
        log.warning("celeba: skipping unreadable images (first: '%s: %s'); each is replaced by "
                    "the next readable one", path, reason)
