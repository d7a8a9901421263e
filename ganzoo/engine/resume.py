"""A run's snapshots: capturing a trainer into one, continuing from one, and starting a new
run from another run's weights (`--init-from`)."""

from __future__ import annotations

import json
import tomllib

from safetensors import SafetensorError

from ganzoo.engine.checkpoint import (Snapshot, list_snapshots, load_weights, optimizer_from_flat,
                                      optimizer_to_flat, prefixed, restore_rng, rng_tensors,
                                      seed_everything, snapshot_name, versions)
from ganzoo.engine.inference import resolve_snapshot
from ganzoo.engine.stream import Cursor
from ganzoo.errors import UserError
from ganzoo.recipe import dumps_toml, recipe_from_dict, recipe_to_dict

# Recipe keys a resumed run may change: they extend the run or change what it reports, never
# its trajectory (or, for device and workers, only where it runs).
RESUMABLE_CHANGES = ("train.kimg", "train.log_kimg", "train.sample_kimg", "train.snapshot_kimg",
                     "train.keep_snapshots", "eval.", "log.", "run.out_dir", "run.device",
                     "data.workers", "data.hint", "run.compile", "run.channels_last", "run.threads",
                     "run.malloc_cache", "run.tf32")


def save(trainer) -> None:
    trainer._check_finite({})  # never a snapshot of non-finite weights
    if not trainer.dist.is_main:
        return
    tensors = {}
    for prefix, net in (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.ema.model)):
        tensors.update(prefixed(prefix, net.state_dict()))
    optim = {}
    for side, optimizer in (("G", trainer.opt_G), ("D", trainer.opt_D)):
        flat, optim[side] = optimizer_to_flat(optimizer)
        tensors.update(prefixed(f"optim/{side}", flat))
    rng, rng_meta = rng_tensors()
    tensors.update(rng)
    if trainer.dataset_labels is not None:  # real label combinations, for sampling later
        tensors["data/labels"] = trainer.dataset_labels
    resolution, alpha = trainer.growth
    snapshot = Snapshot(
        tensors=tensors, step=trainer.step, images=trainer.images,
        growth={"resolution": resolution, "alpha": alpha, "phase": trainer.phase},
        cursor=(trainer.stream.cursor.epoch, trainer.stream.cursor.position),
        recipe_toml=dumps_toml(recipe_to_dict(trainer.recipe)),
        data={"resolution": trainer.dataset.resolution,
              "attribute_names": list(trainer.dataset.attribute_names),
              "attribute_groups": list(trainer.dataset.attribute_groups)},
        optim=optim, rng=rng_meta, versions=versions())
    path = trainer.snapshot_dir / snapshot_name(trainer.images)
    try:
        snapshot.write(path)
    except (OSError, SafetensorError) as exc:  # a full disk, a quota, a vanished mount
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise UserError(f"cannot write snapshot '{path}' ({reason}); the earlier snapshots are "
                        "intact; free space and continue with --resume") from None
    trainer.last_snapshot = path
    keep = trainer.recipe.train.keep_snapshots
    if keep:  # only ever after a finite snapshot was written
        for old in list_snapshots(trainer.snapshot_dir)[:-keep]:
            old.unlink(missing_ok=True)


def check_resumable(trainer, snapshot: Snapshot) -> None:
    """The snapshot's recipe against this one: only keys that extend the run may differ."""
    try:
        before = recipe_to_dict(recipe_from_dict(tomllib.loads(snapshot.recipe_toml)))
    except (tomllib.TOMLDecodeError, UserError) as exc:
        raise UserError(f"checkpoint '{trainer.resume_from}': its recipe cannot be read ({exc})") from None
    before, now = _flatten(before), _flatten(recipe_to_dict(trainer.recipe))
    differing = [key for key in sorted(set(before) | set(now))
                 if before.get(key) != now.get(key) and not key.startswith(RESUMABLE_CHANGES)]
    if differing and not trainer.resume_anyway:
        shown = ", ".join(differing[:8]) + (f" and {len(differing) - 8} more" if len(differing) > 8 else "")
        raise UserError(f"the recipe differs from the snapshot's in {shown}; a resumed run may "
                        "only change its length, logging, snapshot and eval settings: revert "
                        "them, or pass --resume-anyway to continue with the changed recipe")


def init_weights(trainer, source: str) -> None:
    """A new run from another run's G, D and G-EMA (fine-tuning): fresh optimizers and kimg."""
    path = resolve_snapshot(source)
    snapshot = Snapshot.read(path)
    for what, net, prefix in (("generator", trainer.G, "G"), ("discriminator", trainer.D, "D"),
                              ("generator", trainer.ema.model, "G_ema")):
        load_weights(net, snapshot.part(prefix), what, str(path))
    trainer.console.print(f"initialised G, D and G-EMA from '{path}' ({snapshot.kimg:.3f} kimg there)")


def restore(trainer, snapshot: Snapshot) -> None:
    source = str(trainer.resume_from)
    load_weights(trainer.G, snapshot.part("G"), "generator", source)
    load_weights(trainer.D, snapshot.part("D"), "discriminator", source)
    load_weights(trainer.ema.model, snapshot.part("G_ema"), "generator", source)
    try:
        optimizer_from_flat(trainer.opt_G, snapshot.part("optim/G"), snapshot.optim["G"])
        optimizer_from_flat(trainer.opt_D, snapshot.part("optim/D"), snapshot.optim["D"])
    except (KeyError, ValueError, json.JSONDecodeError) as exc:
        raise UserError(f"checkpoint '{source}': its optimizer state does not fit this "
                        f"recipe's optimizers ({exc})") from None
    trainer.images, trainer.step = snapshot.images, snapshot.step
    trainer.phase = snapshot.growth["phase"]
    trainer.stream.cursor = Cursor(*snapshot.cursor)
    trainer.stream.restart()
    if trainer.dist.is_main:
        restore_rng(snapshot.tensors, snapshot.rng)
    else:  # only rank 0's generators are stored; the others continue from a derived seed
        seed_everything(trainer.recipe.run.seed + trainer.dist.rank + trainer.images)


def _flatten(table: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, path + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                out.update(_flatten(item, f"{path}.{i}."))
        else:
            out[path] = value
    return out
