"""The hooks a ganzoo plugin may implement. Each receives `register(name, obj, *, summary=None)`."""

from __future__ import annotations

from typing import Any, Protocol

import pluggy

PROJECT = "ganzoo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    def __call__(self, name: str, obj: Any, *, summary: str | None = None) -> None: ...


@hookspec
def ganzoo_register_blocks(register: Register) -> None:
    """Register building blocks: `nn.Module` classes with torch-style constructors."""


@hookspec
def ganzoo_register_losses(register: Register) -> None:
    """Register loss terms: classes built from their recipe table, with
    `discriminator_loss(ctx)` and/or `generator_loss(ctx)`."""


@hookspec
def ganzoo_register_normalizers(register: Register) -> None:
    """Register normalization layers: `nn.Module` classes (`num_features` first where they need it)."""


@hookspec
def ganzoo_register_schedules(register: Register) -> None:
    """Register growth schedules: classes whose `state(kimg)` gives resolution, alpha, batch and lr."""


@hookspec
def ganzoo_register_models(register: Register) -> None:
    """Register model families: callables that build a `ganzoo.GANModel` from the [model] table."""


@hookspec
def ganzoo_register_datasets(register: Register) -> None:
    """Register datasets: classes built from the [data] table (see `ganzoo.data.ImageDataset`)."""


@hookspec
def ganzoo_register_metrics(register: Register) -> None:
    """Register evaluation metrics."""


HOOKS = {
    "blocks": "ganzoo_register_blocks",
    "losses": "ganzoo_register_losses",
    "normalizers": "ganzoo_register_normalizers",
    "schedules": "ganzoo_register_schedules",
    "models": "ganzoo_register_models",
    "datasets": "ganzoo_register_datasets",
    "metrics": "ganzoo_register_metrics",
}
