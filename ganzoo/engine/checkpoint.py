"""Snapshots: one safetensors file each, never pickle. `Snapshot` is the one reader and writer.

Tensors: `G/...`, `D/...`, `G_ema/...` (state dicts), `optim/G/...`, `optim/D/...` (optimizer
state tensors), `rng/...` (random generator states) and `data/labels` (a bank of real label
vectors, conditional runs). Header metadata (strings): `format`, `step`, `kimg`, `images`,
`schedule` (JSON: resolution, alpha, phase), `cursor` (JSON [epoch, position]), `recipe`
(resolved TOML), `data` (JSON: resolution, attribute names and groups), `optim/G`, `optim/D`
(JSON: param groups and non-tensor state), `rng` (JSON), `versions` (JSON).
Writes are atomic (ganzoo.files): a reader sees the old snapshot or the new one, whole.
"""

from __future__ import annotations

import json
import random
import re
import sys
from importlib.metadata import version as _dist_version
from pathlib import Path

import attrs
import numpy as np
import safetensors
import safetensors.torch
import torch

from ganzoo.errors import UserError
from ganzoo.files import TEMP_MARK, atomic_path

FORMAT = "ganzoo-checkpoint/1"
NAME = re.compile(r"^snapshot-(\d{12})\.safetensors$")
NETWORKS = ("G", "D", "G_ema")
# safetensors writes through a temporary of its own (Rust's tempfile: ".tmp" + 6 characters)
# before our rename; a kill leaves either kind behind.
_FOREIGN_TEMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")
_JSON_FIELDS = ("schedule", "cursor", "data", "optim/G", "optim/D", "rng")


def snapshot_name(images: int) -> str:
    return f"snapshot-{images:012d}.safetensors"


def list_snapshots(folder: Path) -> list[Path]:
    """Snapshots in a folder, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if NAME.match(p.name)]
    return sorted(found, key=lambda p: int(NAME.match(p.name).group(1)))


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove hidden temporaries left by a writer that was killed mid-write."""
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir()
             if p.name.startswith(".") and (TEMP_MARK in p.name or _FOREIGN_TEMP.match(p.name))]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@attrs.define
class Snapshot:
    """Everything a run needs to continue exactly, and everything using its model needs."""

    tensors: dict[str, torch.Tensor]  # every tensor, under the prefixes above
    step: int
    images: int
    growth: dict  # resolution, alpha, phase
    cursor: tuple[int, int]
    recipe_toml: str
    data: dict  # resolution, attribute_names, attribute_groups
    optim: dict[str, str]  # "G" / "D" -> JSON of param groups and non-tensor state
    rng: str
    versions: str = ""

    @property
    def kimg(self) -> float:
        return self.images / 1000.0

    def part(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors under `prefix/`, with the prefix removed."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + "/")}

    @property
    def label_bank(self) -> torch.Tensor | None:
        return self.tensors.get("data/labels")

    # ------------------------------------------------------------------ writing

    def write(self, path: Path) -> None:
        metadata = {
            "format": FORMAT, "step": str(self.step), "kimg": repr(self.kimg),
            "images": str(self.images), "schedule": json.dumps(self.growth),
            "cursor": json.dumps(list(self.cursor)), "recipe": self.recipe_toml,
            "data": json.dumps(self.data), "optim/G": self.optim["G"], "optim/D": self.optim["D"],
            "rng": self.rng, "versions": self.versions}
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.tensors.items()}
        with atomic_path(path) as tmp:
            safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)

    # ------------------------------------------------------------------ reading

    @classmethod
    def read(cls, path: str | Path) -> "Snapshot":
        """Load and validate a snapshot: a missing or malformed field is a UserError naming it."""
        path = Path(path)
        tensors, meta = _read_file(path)

        def field(name: str):
            if name not in meta:
                raise UserError(f"checkpoint '{path}' lacks its '{name}' field; it was not written "
                                "by this version of ganzoo or is damaged")
            if name not in _JSON_FIELDS:
                return meta[name]
            try:
                return json.loads(meta[name])
            except json.JSONDecodeError:
                raise UserError(f"checkpoint '{path}': its '{name}' field is not valid JSON") from None

        try:
            growth, cursor, data = field("schedule"), field("cursor"), field("data")
            snapshot = cls(tensors=tensors, step=int(field("step")), images=int(field("images")),
                           growth={"resolution": int(growth["resolution"]),
                                   "alpha": float(growth["alpha"]), "phase": growth.get("phase")},
                           cursor=(int(cursor[0]), int(cursor[1])), recipe_toml=field("recipe"),
                           data={"resolution": int(data["resolution"]),
                                 "attribute_names": [str(n) for n in data["attribute_names"]],
                                 "attribute_groups": [list(g) for g in data.get("attribute_groups", [])]},
                           optim={"G": meta.get("optim/G", "{}"), "D": meta.get("optim/D", "{}")},
                           rng=meta.get("rng", ""), versions=meta.get("versions", ""))
        except UserError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"checkpoint '{path}' has malformed metadata ({type(exc).__name__}: "
                            f"{exc}); it was not written by this version of ganzoo or is damaged") from None
        for net in NETWORKS:
            for key, tensor in snapshot.part(net).items():
                if not (tensor.is_floating_point() or key.endswith("num_batches_tracked")):
                    raise UserError(f"checkpoint '{path}': tensor '{net}/{key}' has dtype "
                                    f"{str(tensor.dtype).removeprefix('torch.')}, expected a float type")
        return snapshot


def _read_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
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
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise UserError(f"checkpoint '{path}' cannot be read ({first}); "
                        "it may be truncated or not a safetensors file") from None
    return tensors, metadata


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in tensors.items()}


def load_weights(module: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str,
                 source: str) -> None:
    """Strictly: a tensor missing, extra or of another shape is a UserError naming the first."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        raise UserError(f"checkpoint '{source}' does not fit this recipe's {what} "
                        f"({detail[:200]})") from None


# --------------------------------------------------------------------------- optimizers


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


# --------------------------------------------------------------------------- random generators


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


class preserved_rng:
    """Run side work (evaluation) without moving any random generator the training draws from."""

    def __enter__(self):
        self._saved = rng_tensors()

    def __exit__(self, *exc):
        restore_rng(*self._saved)
        return False


def versions() -> str:
    return json.dumps({"ganzoo": _dist_version("ganzoo"), "torch": torch.__version__,
                       "python": sys.version.split()[0]})
