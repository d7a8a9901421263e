"""A small attribute classifier for toyfaces: the judge behind the toyfaces metrics.

A tiny CNN, multi-label over the seven toyfaces attributes, trained on real toyfaces of its
own: identities of seed `SEED` (training GANs use seed 0 by default), the first `TRAIN_SIZE`
for training and the next `TEST_SIZE` held out to measure it. Training is seeded and runs on
the CPU in well under a minute; the weights are cached in
`$GANZOO_CACHE/toyfaces_classifier/v{VERSION}-render{RENDER_VERSION}-r{R}.safetensors`
(default cache ~/.cache/ganzoo), written atomically, with the held-out accuracy per attribute
in the file's metadata.

The classifier works at `R = min(resolution, 32)`: above 32 px, images are box-filtered down
to 32 px first (what toyfaces does to view a dataset at a lower resolution), so one 32 px
classifier serves every larger resolution. Inputs are float images in [-1, 1], (N, 3, H, W).
Predictions: each attribute is on where its logit is > 0, except the hair colours, an
exclusive group in toyfaces, of which the most likely one is on.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import ganzoo
from ganzoo_toyfaces.dataset import ToyFaces
from ganzoo_toyfaces.drawing import ATTRIBUTES, HAIR_COLOURS, RENDER_VERSION

__all__ = ["ATTRIBUTES", "AttributeClassifier", "VERSION", "cache_path", "decide", "heldout_accuracy",
           "load_classifier", "one_thread", "train_classifier", "working_resolution"]

VERSION = 1  # bump on any change to the network, its data or its training: it keys the cache
SEED = 1  # toyfaces seed of the classifier's own identities
TRAIN_SIZE, TEST_SIZE = 6000, 1000
EPOCHS, BATCH, LR = 5, 64, 2e-3
WIDTHS = (32, 64, 128)
MAX_RESOLUTION = 32  # the classifier's largest working resolution
_HAIR = [ATTRIBUTES.index(name) for name in HAIR_COLOURS]


def working_resolution(resolution: int) -> int:
    """The resolution the classifier for images of `resolution` px works at."""
    return min(int(resolution), MAX_RESOLUTION)


class AttributeClassifier(nn.Module):
    """images (N, 3, H, W) in [-1, 1] -> logits (N, 7) in toyfaces.ATTRIBUTES order."""

    def __init__(self, resolution: int):
        super().__init__()
        self.resolution = int(resolution)
        # Three 3x3 convs (32, 64, 128 channels), the last ones with stride 2 down to 4x4.
        strided = max(0, min(3, self.resolution.bit_length() - 3))  # 32 px: 3, 16 px: 2, 8 px: 1
        layers: list[nn.Module] = []
        ch = 3
        for i, out in enumerate(WIDTHS):
            stride = 2 if i >= len(WIDTHS) - strided else 1
            layers += [nn.Conv2d(ch, out, 3, stride, 1), nn.ReLU()]
            ch = out
        self.features = nn.Sequential(*layers)
        size = self.resolution >> strided
        self.head = nn.Linear(ch * size * size, len(ATTRIBUTES))
        self.heldout: dict[str, float] = {}  # held-out accuracy per attribute, once measured

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Float images at the working resolution (box-filtered down from larger ones)."""
        images = images.float()
        size = images.shape[-1]
        if size != self.resolution:
            if size < self.resolution or size % self.resolution:
                raise ganzoo.UserError(f"toyfaces classifier: works at {self.resolution} px, cannot "
                                       f"read {size} px images")
            images = F.avg_pool2d(images, size // self.resolution)
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)[1]

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, 128), logits (N, 7)) from one pass. The features are the last conv
        block's activations averaged over positions, as Inception's pool3 is for FID: the
        feature space of `toyfaces_fid`."""
        h = self.features(self.prepare(images))
        return h.mean((2, 3)), self.head(h.flatten(1))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """0/1 float attributes (N, 7): logit > 0, and exactly one hair colour (the likeliest)."""
        was = self.training
        self.eval()
        try:
            logits = torch.cat([self(x) for x in images.split(batch_size)]) if len(images) \
                else torch.zeros(0, len(ATTRIBUTES))
        finally:
            self.train(was)
        return decide(logits)


def decide(logits: torch.Tensor) -> torch.Tensor:
    """0/1 float attributes from logits (N, 7): logit > 0, and exactly one hair colour."""
    labels = (logits > 0).float()
    labels[:, _HAIR] = F.one_hot(logits[:, _HAIR].argmax(1), len(_HAIR)).float()
    return labels


@contextmanager
def one_thread():
    """Tiny CPU convolutions run much faster on one thread than on a busy machine's many (and
    their results do not depend on the machine's thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cache_path(resolution: int) -> Path:
    name = f"v{VERSION}-render{RENDER_VERSION}-r{working_resolution(resolution)}.safetensors"
    return ganzoo.files.cache_dir() / "toyfaces_classifier" / name


def _data(resolution: int):
    """The classifier's real toyfaces: (train images, train labels, test images, test labels)."""
    faces = ToyFaces(
        resolution=resolution, size=TRAIN_SIZE + TEST_SIZE, seed=SEED, attributes=list(ATTRIBUTES))
    images = ganzoo.images.to_float(torch.from_numpy(np.array(faces.images)))
    labels = faces.labels
    return images[:TRAIN_SIZE], labels[:TRAIN_SIZE], images[TRAIN_SIZE:], labels[TRAIN_SIZE:]


def heldout_accuracy(model: AttributeClassifier, images: torch.Tensor,
                     labels: torch.Tensor) -> dict[str, float]:
    """Accuracy per attribute (and their mean, `mean`) of the model's predictions."""
    correct = (model.predict(images) == labels).float().mean(0)
    result = {name: float(c) for name, c in zip(ATTRIBUTES, correct)}
    result["mean"] = float(correct.mean())
    return result


def train_classifier(resolution: int) -> AttributeClassifier:
    """Train a fresh classifier for `resolution` px images (seeded; the global RNG is untouched).

    Trains on one CPU thread: the result does not depend on the machine's thread count, and
    a tiny network on a busy machine runs far faster on one thread than on several.
    """
    res = working_resolution(resolution)
    x_train, y_train, x_test, y_test = _data(res)
    with one_thread():
        model = _fit(res, x_train, y_train)
    model.heldout = heldout_accuracy(model, x_test, y_test)
    return model


def _fit(res: int, x_train: torch.Tensor, y_train: torch.Tensor) -> AttributeClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234 + VERSION)
        model = AttributeClassifier(res)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        steps = EPOCHS * ((len(x_train) + BATCH - 1) // BATCH)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, LR, total_steps=steps)
        model.train()
        for _ in range(EPOCHS):
            order = torch.randperm(len(x_train))
            for idx in order.split(BATCH):
                x, y = x_train[idx], y_train[idx]
                flip = torch.rand(len(idx)) < 0.5  # faces are symmetric: mirror half the batch
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                x = x + 0.03 * torch.randn_like(x)  # a little noise: generated images are noisy
                loss = F.binary_cross_entropy_with_logits(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return model.eval()


def _save(model: AttributeClassifier, path: Path) -> None:
    from safetensors.torch import save

    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    data = save(tensors, metadata={"resolution": str(model.resolution), "version": str(VERSION),
                                   "heldout_accuracy": json.dumps(model.heldout)})
    with ganzoo.files.atomic_path(path) as tmp:
        tmp.write_bytes(data)  # not save_file, which creates its files mode 0600


def _load(path: Path, resolution: int) -> AttributeClassifier | None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
        model = AttributeClassifier(resolution)
        model.load_state_dict(tensors)
        model.heldout = json.loads(meta["heldout_accuracy"])
    except Exception:  # missing, partial or stale: train again
        return None
    return model.eval()


def load_classifier(resolution: int, *, cache: bool = True) -> AttributeClassifier:
    """The classifier for `resolution` px toyfaces: from the cache, else trained (and cached).

    `.heldout` holds its accuracy per attribute on real held-out toyfaces (and `mean`).
    """
    res = working_resolution(resolution)
    path = cache_path(res)
    if cache and path.is_file():
        model = _load(path, res)
        if model is not None:
            return model
    model = train_classifier(res)
    if cache:
        try:
            _save(model, path)
        except OSError:  # an unwritable cache only costs retraining next time
            pass
    return model
