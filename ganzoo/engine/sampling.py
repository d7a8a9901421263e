"""Using a checkpoint: sampling, translating and evaluating with its EMA generator."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import attrs
import torch

from ganzoo.engine import build, checkpoint
from ganzoo.engine.images import save_png, to_uint8, write_images
from ganzoo.engine.samples import generate, translation_grid
from ganzoo.engine.state import load_weights
from ganzoo.errors import UserError
from ganzoo.model import GANModel, apply_attributes, set_growth, split_critic_output
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


def load_run(path: str | Path, device: torch.device, overrides: list[str] = ()) -> LoadedRun:
    """The model family rebuilt from the checkpoint's own recipe, with G-EMA and D loaded."""
    tensors, meta = checkpoint.load(path)
    raw = tomllib.loads(meta["recipe"])
    for override in overrides:
        apply_override(raw, override)
    recipe = recipe_from_dict(raw, source=f"checkpoint '{path}'")
    data = json.loads(meta["data"])
    names = list(data["attribute_names"])
    model = build.build_model(recipe, len(names))
    load_weights(model.generator, checkpoint.split(tensors, "G_ema"), "generator", str(path))
    load_weights(model.discriminator, checkpoint.split(tensors, "D"), "discriminator", str(path))
    growth = json.loads(meta["schedule"])
    for net in (model.generator, model.discriminator):
        set_growth(net, growth["resolution"], growth["alpha"])
    return LoadedRun(recipe, model, model.generator.to(device).eval(),
                     model.discriminator.to(device).eval(), growth["resolution"], names,
                     [list(g) for g in data.get("attribute_groups", [])],
                     tensors.get("data/labels"), device)


def parse_attributes(pairs: list[str]) -> dict[str, float]:
    """`name=1` / `name=0` pairs from the command line."""
    requested = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or value.strip() not in ("0", "1"):
            raise UserError(f"attribute setting {pair!r} must look like name=0 or name=1")
        requested[name.strip()] = float(value)
    return requested


@torch.no_grad()
def sample_checkpoint(path: str | Path, *, n: int, out: str | Path, seed: int = 0,
                      device: str = "auto", attributes: dict[str, float] | None = None) -> list[Path]:
    run = load_run(path, build.resolve_device(device))
    if run.model.translates:
        raise UserError(f"'{path}' holds an image-translation model; use `ganzoo translate`")
    g = torch.Generator().manual_seed(seed)
    latents = run.model.sample_latents(n, generator=g)
    labels = torch.zeros(n, len(run.attribute_names))
    if run.attribute_names:
        bank = run.label_bank
        labels = bank[torch.randint(len(bank), (n,), generator=g)] if bank is not None else labels
        labels = apply_attributes(labels, run.attribute_names, attributes or {}, run.attribute_groups)
    elif attributes:
        raise UserError(f"'{path}' holds an unconditional model: it takes no attributes")
    images = generate(run.generator, latents, labels, run.device)
    return write_images(to_uint8(images), out)


@torch.no_grad()
def estimate_labels(run: LoadedRun, images: torch.Tensor) -> torch.Tensor:
    """Attributes of real images as the discriminator's class head sees them (multi-label)."""
    _, logits = split_critic_output(run.discriminator(images.to(run.device)))
    if logits is None:
        raise UserError("this model's discriminator has no class head to read attributes from")
    labels = (logits.float().cpu() > 0).float()
    for group in run.attribute_groups:  # exactly one of an exclusive group: the most likely
        idx = [run.attribute_names.index(name) for name in group]
        best = logits.float().cpu()[:, idx].argmax(1)
        labels[:, idx] = torch.nn.functional.one_hot(best, len(idx)).float()
    return labels


@torch.no_grad()
def translate_images(path: str | Path, images: list[str | Path], *, out: str | Path,
                     attributes: dict[str, float], device: str = "auto") -> list[Path]:
    """Translate image files: each to the requested attributes, plus a grid of every change."""
    from ganzoo.data.image_folder import read_image

    run = load_run(path, build.resolve_device(device))
    if not run.model.translates:
        raise UserError(f"'{path}' holds a generator of new images, not a translation model; "
                        "use `ganzoo sample`")
    crop = run.recipe.data.params.get("crop")
    batch = []
    for image in images:
        if not Path(image).is_file():
            raise UserError(f"image '{image}' does not exist")
        try:
            batch.append(read_image(str(image), run.resolution, crop))
        except Exception as exc:
            raise UserError(f"image '{image}' cannot be read ({exc})") from None
    real = torch.stack(batch).float() / 127.5 - 1
    original = estimate_labels(run, real)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if attributes:
        target = apply_attributes(original, run.attribute_names, attributes, run.attribute_groups)
        translated = to_uint8(generate(run.generator, real, target, run.device))
        for image, result in zip(images, translated):
            written.append(out / f"{Path(image).stem}.png")
            save_png(result.permute(1, 2, 0).numpy(), written[-1])
    grid = translation_grid(run.generator, real, original, run.attribute_names,
                            run.attribute_groups, run.device)
    save_png(grid, out / "grid.png")
    return written + [out / "grid.png"]
