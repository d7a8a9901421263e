"""What each built-in `ganzoo` command does (its arguments are in ganzoo.cli)."""

from __future__ import annotations

import json
import shutil
import sys
from importlib.metadata import version as dist_version
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ganzoo import checks
from ganzoo.engine import build
from ganzoo.engine.checkpoint import Snapshot, list_snapshots
from ganzoo.engine.inference import export_generator, load_run, resolve_snapshot, sample_checkpoint
from ganzoo.engine.preflight import preflight
from ganzoo.engine.runlog import MetricsLog
from ganzoo.engine.stream import preview_items
from ganzoo.engine.trainer import Trainer
from ganzoo.errors import UserError
from ganzoo.evaluation import EvalContext, run_metrics
from ganzoo.hookspecs import KINDS
from ganzoo.images import write_images
from ganzoo.model import parse_attributes
from ganzoo.plugins import plugins, registry
from ganzoo.recipe import find_recipe, load_recipe, shipped_recipes
from ganzoo.registry import singular_kind

# Piped output is not cut to 80 columns: scripts and logs get whole names.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 1000)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def version_text() -> str:
    lines = [f"ganzoo {dist_version('ganzoo')}", f"torch {torch.__version__}, python {sys.version.split()[0]}"]
    if torch.cuda.is_available():
        lines.append(f"CUDA {torch.version.cuda}: available ({torch.cuda.get_device_name(0)})")
    else:
        lines.append("CUDA: not available")
    for info in plugins():
        dist = f"{info.distribution} {info.version}" if info.distribution else "-"
        lines.append(f"plugin {info.name}: {dist} ({info.status})")
    return "\n".join(lines)


def run(args) -> None:
    recipe = load_recipe(args.recipe, args.overrides)
    if args.preflight:
        checks.count(args.preflight_iterations, "--preflight-iterations")
        preflight(Trainer(recipe, resume=True, console=Console(quiet=True)), console,
                  iterations=args.preflight_iterations)
        return
    resume = args.resume or args.resume_anyway
    Trainer(recipe, resume=resume, resume_anyway=args.resume_anyway, init_from=args.init_from,
            console=console).run()


def list_entries(args) -> None:
    if args.kind is None:
        table = Table(title="what `ganzoo list KIND` shows")
        for column in ("kind", "entries"):
            table.add_column(column)
        table.add_row("plugins", str(len(plugins())))
        table.add_row("recipes", str(len(shipped_recipes())))
        for kind in KINDS:
            table.add_row(kind, str(len(registry(kind).names())))
        console.print(table)
        return
    if args.kind == "plugins":
        table = Table(title="ganzoo plugins")
        for column in ("plugin", "status", "distribution", "module", "registers"):
            table.add_column(column, overflow="fold")
        for info in plugins():
            dist = f"{info.distribution} {info.version}" if info.distribution else "-"
            status = {"ok": "[green]ok[/]", "disabled": "[yellow]disabled[/]"}.get(
                info.status, f"[red]broken[/]: {escape(info.error or '')}")
            counts = ", ".join(f"{n} {k if n != 1 else singular_kind(k)}" for k, n in info.counts.items() if n) or "-"
            table.add_row(escape(info.name), status, escape(dist), escape(info.module), counts)
        console.print(table)
        return
    if args.kind == "recipes":
        table = Table(title="shipped recipes (ganzoo run NAME, ganzoo init NAME)")
        for column in ("name", "summary"):
            table.add_column(column, overflow="fold")
        for name, (_, summary) in shipped_recipes().items():
            table.add_row(escape(name), escape(summary))
        console.print(table)
        return
    table = Table(title=f"ganzoo {args.kind}")
    for column in ("name", "plugin", "distribution", "summary"):
        table.add_column(column, overflow="fold")
    for entry in registry(args.kind).entries():
        table.add_row(*(escape(text) for text in (entry.name, entry.plugin, entry.distribution or "-",
                                                  entry.summary)))
    console.print(table)


def init(args) -> None:
    shipped = shipped_recipes()
    if args.name not in shipped:
        find_recipe(args.name)  # raises the one-line error with the shipped names
    dest = Path(args.dest or f"{args.name}.toml")
    if dest.is_dir():
        dest = dest / f"{args.name}.toml"
    if dest.exists():
        raise UserError(f"'{dest}' already exists; give another destination")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shipped[args.name][0], dest)
    console.print(f"wrote '{dest}'; edit it, then: ganzoo run {dest}", highlight=False)


def sample(args) -> None:
    checks.count(args.n, "--n")
    checks.count(args.batch_size, "--batch-size")
    paths = sample_checkpoint(args.checkpoint, n=args.n, out=args.out, seed=args.seed,
                              device=args.device, attributes=parse_attributes(args.attr),
                              batch_size=args.batch_size)
    console.print(f"wrote {_plural(args.n, 'sample')} to '{args.out}'" + (
        "" if len(paths) == 1 else f" ({_plural(len(paths), 'file')})"), highlight=False)


def evaluate(args) -> None:
    if args.num_images is not None:
        checks.count(args.num_images, "--num-images")
    overrides = list(args.overrides) + ([f"data.root={json.dumps(args.data)}"] if args.data else [])
    if not args.all:
        results, stage = _evaluate_one(resolve_snapshot(args.checkpoint), args, overrides)
        if args.json:
            print(json.dumps(results))
            return
        table = Table(title=f"{args.checkpoint} (G at {stage})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in results.items():
            table.add_row(key, f"{value:.6g}")
        console.print(table)
        return
    folder = Path(args.checkpoint)
    snapshots = list_snapshots(folder / "checkpoints")
    if not folder.is_dir() or not snapshots:
        raise UserError(f"--all needs a run folder with snapshots; '{folder}' has none")
    log = MetricsLog(folder / "eval.jsonl")
    done = {(r.get("snapshot"), key.split("/")[0]) for r in log.records() for key in r if "/" in key}
    todo = [s for s in snapshots if any((s.name, m) not in done for m in args.metrics)]
    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("eval", total=len(todo))
        for path in todo:
            results, _ = _evaluate_one(path, args, overrides)
            log.write({"snapshot": path.name, "kimg": Snapshot.read(path).kimg, **results})
            bar.advance(task)
    names, merged = {s.name for s in snapshots}, {}
    for record in log.records():  # one row per snapshot: a later call's metrics join its row
        if record.get("snapshot") in names:
            merged.setdefault(record["snapshot"], {}).update(record)
    rows = list(merged.values())
    if args.json:
        print(json.dumps(rows))
        return
    keys = sorted({k for r in rows for k in r if k.split("/")[0] in args.metrics})
    table = Table(title=f"{folder}: {_plural(len(snapshots), 'snapshot')}, {len(todo)} evaluated now")
    table.add_column("kimg", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
    for row in sorted(rows, key=lambda r: r["kimg"]):
        table.add_row(f"{row['kimg']:g}", *(f"{row[k]:.6g}" if isinstance(row.get(k), float) else "-" for k in keys))
    console.print(table)


def _evaluate_one(path: Path, args, overrides: list[str]) -> tuple[dict[str, float], str]:
    """One snapshot's metrics, and its generator's stage as words."""
    loaded = load_run(path, args.device, overrides)
    dataset = build.build_dataset(loaded.recipe.data)
    ctx = EvalContext(model=loaded.model, generator=loaded.generator, discriminator=loaded.discriminator,
                      dataset=dataset, resolution=dataset.resolution,
                      device=loaded.device, num_images=args.num_images or loaded.recipe.eval.num_images,
                      seed=args.seed, mirror=loaded.recipe.data.mirror)
    stage = f"{loaded.resolution}px" + (f", upscaled to {dataset.resolution}px"
                                        if loaded.resolution < dataset.resolution else "")
    return run_metrics(ctx, args.metrics, loaded.recipe.eval.params), stage


def export(args) -> None:
    out = export_generator(args.checkpoint, args.out)
    console.print(f"wrote the EMA generator to '{out}'; load it with ganzoo.load_generator('{out}')",
                  highlight=False)


def preview(args) -> None:
    checks.count(args.n, "--n")
    recipe = load_recipe(args.recipe, args.overrides)
    dataset = build.build_dataset(recipe.data)
    resolution = args.resolution or dataset.resolution
    if resolution > dataset.resolution or resolution < 1 or dataset.resolution % resolution:
        raise UserError(f"--resolution {resolution} is not a power-of-two fraction of the "
                        f"dataset's {dataset.resolution}")
    images, _ = preview_items(dataset, recipe, args.n, resolution)
    write_images(images, args.out)
    console.print(f"wrote {_plural(args.n, 'real image')} at {resolution}px to '{args.out}'", highlight=False)
