"""Using a checkpoint: its model rebuilt from its own recipe, with G-EMA and D loaded; sampling."""

from __future__ import annotations

import tomllib
from pathlib import Path

import attrs
import torch

from ganzoo.engine import build
from ganzoo.engine.checkpoint import Snapshot, list_snapshots, load_weights
from ganzoo.errors import UserError
from ganzoo.images import MAX_GRID, to_uint8, write_image_batches
from ganzoo.model import GANModel, apply_attributes, generate, set_growth
from ganzoo.recipe import Recipe, apply_override, recipe_from_dict


@attrs.define
class LoadedRun:
    recipe: Recipe
    model: GANModel
    generator: torch.nn.Module  # G-EMA, eval mode, at the snapshot's growth stage
    discriminator: torch.nn.Module
    resolution: int
    attribute_names: list[str]
    attribute_groups: list[list[str]]
    label_bank: torch.Tensor | None
    device: torch.device


def resolve_snapshot(path: str | Path) -> Path:
    """A snapshot file as given, or a run folder's newest snapshot."""
    path = Path(path)
    if path.is_dir():
        found = list_snapshots(path / "checkpoints") or list_snapshots(path)
        if not found:
            raise UserError(f"'{path}' is a folder without snapshots (looked in '{path / 'checkpoints'}')")
        return found[-1]
    return path


def load_run(path: str | Path, device: str | torch.device = "auto", overrides: list[str] = ()) -> LoadedRun:
    """The model family rebuilt from the checkpoint's own recipe, with G-EMA and D loaded.
    `path` is a snapshot or a run folder (its newest snapshot)."""
    path = resolve_snapshot(path)
    device = build.resolve_device(device) if isinstance(device, str) else device
    snapshot = Snapshot.read(path)
    try:
        raw = tomllib.loads(snapshot.recipe_toml)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"checkpoint '{path}': its recipe field is not valid TOML ({exc})") from None
    for override in overrides:
        apply_override(raw, override)
    recipe = recipe_from_dict(raw, source=f"checkpoint '{path}'")
    names = snapshot.data["attribute_names"]
    model = build.build_model(recipe, len(names))
    load_weights(model.generator, snapshot.part("G_ema"), "generator", str(path))
    load_weights(model.discriminator, snapshot.part("D"), "discriminator", str(path))
    resolution, alpha = snapshot.growth["resolution"], snapshot.growth["alpha"]
    for net in (model.generator, model.discriminator):
        set_growth(net, resolution, alpha)
    return LoadedRun(recipe, model, model.generator.to(device).eval(),
                     model.discriminator.to(device).eval(), resolution, names,
                     snapshot.data["attribute_groups"], snapshot.label_bank, device)


@torch.no_grad()
def sample_checkpoint(path: str | Path, *, n: int, out: str | Path, seed: int = 0,
                      device: str = "auto", attributes: dict[str, float] | None = None,
                      batch_size: int = 64) -> list[Path]:
    if Path(out).suffix.lower() == ".png" and n > MAX_GRID:
        raise UserError(f"--out '{out}': a .png grid holds at most {MAX_GRID} images; give a folder for --n {n}")
    run = load_run(path, device)
    if not run.model.latent_dim:
        raise UserError(f"'{path}' holds a model that does not generate from latents "
                        "(an image-translation model: use `ganzoo translate`)")
    g = torch.Generator().manual_seed(seed)
    latents = run.model.sample_latents(n, generator=g)
    if attributes and not run.model.conditional:
        raise UserError(f"'{path}' holds an unconditional model: it takes no attributes (--attr)")
    labels = torch.zeros(n, len(run.attribute_names))
    if run.attribute_names:
        bank = run.label_bank
        labels = bank[torch.randint(len(bank), (n,), generator=g)] if bank is not None else labels
        labels = apply_attributes(labels, run.attribute_names, attributes or {}, run.attribute_groups)
    batches = (to_uint8(generate(run.generator, z, c, run.device, batch_size))
               for z, c in zip(latents.split(batch_size), labels.split(batch_size)))
    return write_image_batches(batches, out)
