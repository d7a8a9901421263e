"""torch-fidelity's Inception-v3 from a local, verified weights file; nothing is downloaded.

The weights file is looked up, in order: the metric's `weights = PATH` key, the environment
variable $GANZOO_INCEPTION_WEIGHTS, torch-fidelity's own cache (torch.hub's `checkpoints/`
folder, where torch-fidelity's first online use stores it). Its SHA-256 must equal the
published hash of `weights-inception-2015-12-05-6726825d.pth`, or a deliberate
`weights_sha256 = "..."`. The file is read with torch's weights-only loader, so no code in it
runs; the network itself is torch-fidelity's port (TF-compatible resize to 299, TF padding).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
from pathlib import Path
from typing import Iterable

import torch
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

import ganzoo

ENV_WEIGHTS = "GANZOO_INCEPTION_WEIGHTS"
WEIGHTS_FILE = URL_INCEPTION_V3.rsplit("/", 1)[-1]  # weights-inception-2015-12-05-6726825d.pth
# SHA-256 of torch-fidelity's v0.2.0 release asset WEIGHTS_FILE (95,628,359 bytes). torch-fidelity
# itself publishes only the first 8 digits, in the file name (torch.hub's check_hash convention);
# the full value is the one independent projects pin for this file, and it begins with those 8.
PUBLISHED_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
EXTRACTOR_NAME = "inception-v3-compat"  # torch-fidelity's registry name for this network
_HEX64 = re.compile(r"[0-9a-f]{64}")


def hub_weights_path() -> Path:
    """Where torch-fidelity's own download puts the file (torch.hub.load_state_dict_from_url)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def find_weights(path: str | None, table: str) -> Path:
    """The weights file to use: `path` (from `table`), else $GANZOO_INCEPTION_WEIGHTS, else the
    torch.hub cache; a UserError saying what to obtain and where to put it when there is none."""
    for given, source in ((path, f"{table} weights"), (os.environ.get(ENV_WEIGHTS), f"${ENV_WEIGHTS}")):
        if given:
            found = Path(given).expanduser()
            if not found.is_file():
                raise ganzoo.UserError(f"{source}: Inception weights file '{found}' does not exist; "
                                       f"download {URL_INCEPTION_V3} to that path")
            return found
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    raise ganzoo.UserError(f"no Inception weights: download {URL_INCEPTION_V3} once (95.6 MB) to "
                           f"'{cached}', or anywhere and set ${ENV_WEIGHTS} (or {table} weights) to it")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sha256(value: str | None, table: str) -> str:
    """The hash a weights file must have: the published one, or a deliberate `weights_sha256`."""
    if value is None:
        return PUBLISHED_SHA256
    if not isinstance(value, str) or not _HEX64.fullmatch(value.lower()):
        raise ganzoo.UserError(f"{table} weights_sha256 must be 64 hexadecimal digits, got "
                               f"{ganzoo.checks.show(value)}")
    return value.lower()


def verify(path: Path, expected: str, table: str) -> str:
    """The file's SHA-256, after checking it against `expected`."""
    actual = sha256_file(path)
    if actual == expected:
        return actual
    if expected == PUBLISHED_SHA256:
        raise ganzoo.UserError(f"Inception weights '{path}' have SHA-256 {actual}, not {expected} (the "
                               f"published hash of {WEIGHTS_FILE}); set {table} weights_sha256 = "
                               f"\"{actual}\" to use this file deliberately")
    raise ganzoo.UserError(f"Inception weights '{path}' have SHA-256 {actual}, not {expected} "
                           f"({table} weights_sha256)")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors through torch's weights-only unpickler: no code from the file runs."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ganzoo.UserError(f"Inception weights '{path}' cannot be read by torch's weights-only "
                               f"loader ({reason[:200]})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ganzoo.UserError(f"Inception weights '{path}' do not hold a state dict of tensors")
    return state


class Inception:
    """The verified network, on a device, giving the requested features of uint8 images."""

    def __init__(self, features: list[str], device: torch.device, weights: str | None = None,
                 weights_sha256: str | None = None, table: str = "[eval.fid]", batch_size: int = 64):
        path = find_weights(weights, table)
        self.sha256 = verify(path, expected_sha256(weights_sha256, table), table)
        state = load_state_dict(path)
        # torch-fidelity's constructor unpickles its weights argument with weights_only=False: it
        # gets bytes serialised here from the tensors alone, never the user's file.
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        try:
            network = FeatureExtractorInceptionV3(EXTRACTOR_NAME, list(features),
                                                  feature_extractor_weights_path=buffer)
        except RuntimeError as exc:  # load_state_dict: missing / unexpected keys, wrong shapes
            reason = str(exc).strip().splitlines()[0]
            raise ganzoo.UserError(f"Inception weights '{path}' are not torch-fidelity's Inception-v3 "
                                   f"({reason[:200]})") from None
        self.network = network.to(device)
        self.features, self.device, self.batch_size = list(features), device, batch_size

    @torch.inference_mode()
    def __call__(self, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Features (N, D) float32 on the CPU per requested name, of uint8 (B, 3, H, W) batches in
        order; the network resizes them to 299 itself, as torch-fidelity does."""
        out: dict[str, list[torch.Tensor]] = {name: [] for name in self.features}
        for batch in batches:
            if batch.dtype != torch.uint8 or batch.dim() != 4 or batch.shape[1] != 3:
                raise ValueError(f"Inception expects uint8 (N, 3, H, W) images, got {batch.dtype} "
                                 f"{tuple(batch.shape)}")
            for chunk in batch.split(self.batch_size):
                values = self.network(chunk.to(self.device))
                for name, value in zip(self.features, values):
                    out[name].append(value.cpu())
        return {name: torch.cat(parts) if parts else torch.empty(0) for name, parts in out.items()}
