"""Using a checkpoint: its model rebuilt from its own recipe, with G-EMA and D loaded; sampling."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import attrs
import safetensors
import safetensors.torch
import torch

from ganzoo.engine import build
from ganzoo.engine.checkpoint import Snapshot, list_snapshots, load_weights
from ganzoo.errors import UserError
from ganzoo.files import atomic_path
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


EXPORT_FORMAT = "ganzoo-generator/1"


class ReadyGenerator(torch.nn.Module):
    """A trained EMA generator ready to use: call it like G, or `sample(n, seed)`."""

    def __init__(self, model: GANModel, resolution: int, attribute_names: list[str]):
        super().__init__()
        self.generator = model.generator.eval()
        self.family = model  # how G is fed (latent size, prior); not a submodule
        self.resolution, self.attribute_names = resolution, list(attribute_names)
        self.eval()

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = torch.zeros(inputs.shape[0], len(self.attribute_names), device=inputs.device)
        return self.generator(inputs, labels)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
        """n images in [-1, 1], (n, 3, R, R), from seeded latents, on the generator's device."""
        device = next(self.generator.parameters()).device
        latents = self.family.sample_latents(n, generator=torch.Generator().manual_seed(seed))
        return self(latents.to(device), None if labels is None else labels.to(device))


def export_generator(path: str | Path, out: str | Path) -> Path:
    """Write a snapshot's EMA generator alone, with what rebuilding it needs."""
    source = resolve_snapshot(path)
    snapshot = Snapshot.read(source)
    recipe = recipe_from_dict(tomllib.loads(snapshot.recipe_toml), source=f"checkpoint '{source}'")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out '{out}' is a folder; give a file name such as G.safetensors")
    metadata = {"format": EXPORT_FORMAT, "model": json.dumps({"name": recipe.model.name, **recipe.model.params}),
                "resolution": str(snapshot.data["resolution"]), "growth": json.dumps(snapshot.growth),
                "attribute_names": json.dumps(snapshot.data["attribute_names"]),
                "kimg": repr(snapshot.kimg), "source": str(source), "versions": snapshot.versions}
    tensors = {k: v.contiguous() for k, v in snapshot.part("G_ema").items()}
    with atomic_path(out) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
    return out


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> ReadyGenerator:
    """The EMA generator of an export (`ganzoo export`), a snapshot or a run folder, in eval mode
    at its trained growth stage. Only the family's plugin is used."""
    path = resolve_snapshot(path)
    device = build.resolve_device(device) if isinstance(device, str) else device
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception:
        meta = {}
    if meta.get("format") != EXPORT_FORMAT:  # a full snapshot
        run = load_run(path, device)
        return ReadyGenerator(run.model, run.resolution, run.attribute_names).to(device)
    try:
        table = json.loads(meta["model"])
        growth, names = json.loads(meta["growth"]), json.loads(meta["attribute_names"])
        resolution = int(meta["resolution"])
    except (KeyError, ValueError) as exc:
        raise UserError(f"'{path}': malformed export metadata ({exc})") from None
    name = table.pop("name")
    model = build.build_family(name, table, resolution, len(names))
    load_weights(model.generator, safetensors.torch.load_file(str(path)), "generator", str(path))
    set_growth(model.generator, growth["resolution"], growth["alpha"])
    return ReadyGenerator(model, growth["resolution"], names).to(device)
