"""Checkpoints: one safetensors file per snapshot, never pickle.

Tensors: `G/...`, `D/...`, `G_ema/...` (state dicts), `optim/G/...`, `optim/D/...` (optimizer
state tensors) and `rng/...` (random generator states as uint8). Header metadata (strings):
`format`, `step`, `kimg`, `images`, `schedule` (JSON), `cursor` (JSON), `recipe` (resolved TOML),
`data` (JSON: resolution, attribute names), `optim/G`, `optim/D` (JSON: param groups and the
non-tensor state), `versions` (JSON). Writes are atomic: temp file, fsync, rename.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from ganzoo.errors import UserError

FORMAT = "ganzoo-checkpoint/1"
NAME = re.compile(r"^snapshot-(\d{12})\.safetensors$")


def snapshot_name(images: int) -> str:
    return f"snapshot-{images:012d}.safetensors"


def list_snapshots(folder: Path) -> list[Path]:
    """Snapshots in a folder, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if NAME.match(p.name)]
    return sorted(found, key=lambda p: int(NAME.match(p.name).group(1)))


def save(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    contiguous = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    try:
        safetensors.torch.save_file(contiguous, str(tmp), metadata={"format": FORMAT, **metadata})
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise UserError(f"'{path}' is not a ganzoo checkpoint (a safetensors file "
                                f"without ganzoo's '{FORMAT}' header)")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except UserError:
        raise
    except Exception as exc:  # safetensors raises its own errors for truncated/foreign files
        raise UserError(f"checkpoint '{path}' cannot be read ({_short(exc)}); "
                        "it may be truncated or not a safetensors file") from None
    return tensors, metadata


def split(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix/`, with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in tensors.items()}


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    """An optimizer's state as flat tensors plus JSON for param groups and non-tensor values."""
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}/{key}"] = value
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, json.dumps({"param_groups": state_dict["param_groups"], "scalars": scalars})


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                        meta: str) -> None:
    info = json.loads(meta)
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(info["scalars"].items()):
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})



def load_header(path: str | Path) -> dict[str, str]:
    """Only the metadata, without reading tensors."""
    path = Path(path)
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:
        raise UserError(f"checkpoint '{path}' cannot be read ({_short(exc)})") from None
    if metadata.get("format") != FORMAT:
        raise UserError(f"'{path}' is not a ganzoo checkpoint")
    return metadata


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
