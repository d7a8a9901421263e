"""A training run's networks and optimizers, and their round trip through a checkpoint."""

from __future__ import annotations

import json
import random
import sys
from contextlib import contextmanager

import numpy as np
import torch

import ganzoo
from ganzoo.errors import UserError


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_tensors() -> tuple[dict[str, torch.Tensor], str]:
    """Every random generator the run may draw from, so a resumed run draws the same numbers."""
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(keys.astype(np.int64))
    py_version, py_state, py_gauss = random.getstate()
    meta = json.dumps({"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
                       "python": [py_version, list(py_state), py_gauss]})
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: str) -> None:
    info = json.loads(meta)
    torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda/"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    kind, pos, has_gauss, gauss = info["numpy"]
    np.random.set_state((kind, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, state, py_gauss = info["python"]
    random.setstate((version, tuple(state), py_gauss))


@contextmanager
def preserved_rng():
    """Run side work (evaluation) without moving any random generator the training draws from."""
    tensors, meta = rng_tensors()
    try:
        yield
    finally:
        restore_rng(tensors, meta)


def versions() -> str:
    return json.dumps({"ganzoo": ganzoo.__version__, "torch": torch.__version__,
                       "python": sys.version.split()[0]})


def load_weights(module: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str,
                 source: str) -> None:
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise UserError(f"checkpoint '{source}' does not fit this recipe's {what} "
                        f"({detail[:200]})") from None
