"""The hooks a ganzoo plugin may implement: the one place the plugin contract is written.

A plugin is a module (declared as an entry point in group "ganzoo") holding functions marked
`@ganzoo.hookimpl` and named exactly as below; a misspelled hook name marks the plugin broken.
Each registering hook receives `register(name, obj, *, summary=None)`; the summary defaults to
the first line of the object's docstring. What each kind must be is checked at registration,
so a bad part fails at `ganzoo list`, not hours into a run.
"""

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
    """Register building blocks: `nn.Module` classes with torch-style constructors,
    e.g. `equalized_conv2d(in_channels, out_channels, kernel_size, ...)`."""


@hookspec
def ganzoo_register_losses(register: Register) -> None:
    """Register loss terms: classes built from their recipe table (all keys but `name` and
    `weight`) with `discriminator_loss(ctx)` and/or `generator_loss(ctx)`, each taking a
    `ganzoo.LossContext` and returning a scalar tensor (or None to sit out a step); optionally
    `after_discriminator_step(discriminator)` (e.g. weight clipping)."""


@hookspec
def ganzoo_register_normalizers(register: Register) -> None:
    """Register normalization layers: `nn.Module` classes taking `num_features` first where
    they need the channel count (built through `ganzoo.make_normalizer`)."""


@hookspec
def ganzoo_register_schedules(register: Register) -> None:
    """Register growth schedules: classes built from the [schedule] table plus `resolution`
    and `train_batch_size`, whose `state(kimg) -> ganzoo.GrowthState` is a pure function of
    kimg; optionally `prepare_real(images, state)` (e.g. fading real images)."""


@hookspec
def ganzoo_register_models(register: Register) -> None:
    """Register model families: callables built from the [model] table plus `resolution`,
    `channels` and `label_dim`, returning a `ganzoo.GANModel` (see its docstring)."""


@hookspec
def ganzoo_register_datasets(register: Register) -> None:
    """Register datasets: `ganzoo.ImageDataset` subclasses built from the [data] table
    (all keys but `dataset`; `resolution` always among them)."""


@hookspec
def ganzoo_register_metrics(register: Register) -> None:
    """Register evaluation metrics: classes built from their `[eval.<name>]` table, called
    with a `ganzoo.EvalContext` and returning a flat dict of named floats."""


@hookspec
def ganzoo_register_commands(subparsers) -> None:
    """Add CLI commands that belong to a family (e.g. `translate`): call
    `subparsers.add_parser(name, help=...)`, add its arguments, and set the handler with
    `parser.set_defaults(handler=fn)`; `fn(args)` raises `ganzoo.UserError` for bad input."""


# The kinds of registry, each filled by one hook; `ganzoo_register_commands` fills the CLI.
HOOKS = {
    "blocks": "ganzoo_register_blocks",
    "losses": "ganzoo_register_losses",
    "normalizers": "ganzoo_register_normalizers",
    "schedules": "ganzoo_register_schedules",
    "models": "ganzoo_register_models",
    "datasets": "ganzoo_register_datasets",
    "metrics": "ganzoo_register_metrics",
}
KINDS = tuple(HOOKS)
COMMANDS_HOOK = "ganzoo_register_commands"
