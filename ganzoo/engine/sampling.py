"""Sampling from a checkpoint's EMA generator, at whatever resolution the run had reached."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import torch

from ganzoo.engine import build, checkpoint
from ganzoo.engine.images import to_uint8, write_images
from ganzoo.engine.state import load_weights
from ganzoo.model import GANModel, set_growth
from ganzoo.recipe import recipe_from_dict


def load_generator(path: str | Path, device: torch.device) -> tuple[GANModel, torch.nn.Module, dict]:
    """The model family rebuilt from the checkpoint's own recipe, with G-EMA weights loaded."""
    tensors, meta = checkpoint.load(path)
    recipe = recipe_from_dict(tomllib.loads(meta["recipe"]), source=f"checkpoint '{path}'")
    data = json.loads(meta["data"])
    model = build.build_model(recipe, len(data["attribute_names"]))
    generator = model.generator
    load_weights(generator, checkpoint.split(tensors, "G_ema"), "generator", str(path))
    growth = json.loads(meta["schedule"])
    set_growth(generator, growth["resolution"], growth["alpha"])
    return model, generator.to(device).eval(), {**data, **growth}


@torch.no_grad()
def sample_checkpoint(path: str | Path, *, n: int, out: str | Path, seed: int = 0,
                      device: str = "auto", labels: torch.Tensor | None = None) -> list[Path]:
    device_ = build.resolve_device(device)
    model, generator, info = load_generator(path, device_)
    g = torch.Generator().manual_seed(seed)
    latents = model.sample_latents(n, generator=g)
    if labels is None:
        labels = torch.zeros(n, len(info["attribute_names"]))
    images = [generator(z.to(device_), c.to(device_))
              for z, c in zip(latents.split(64), labels.split(64))]
    return write_images(to_uint8(torch.cat(images)), out)
