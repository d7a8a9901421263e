"""The `ganzoo` command line. Exit codes: 0 success, 2 user error (one line, no traceback), 1 bug."""

from __future__ import annotations

import argparse
import sys
import traceback

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ganzoo.errors import UserError
from ganzoo.hookspecs import KINDS
from ganzoo.plugins import add_commands

# Piped output is not cut to 80 columns: scripts and logs get whole names.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 1000)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ganzoo", description="A plugin-style, modular GAN zoo for PyTorch.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="train from a recipe")
    run.add_argument("recipe", help="path to a recipe .toml")
    _add_set(run)
    run.add_argument("--resume", action="store_true",
                     help="continue from the newest snapshot in run.out_dir")

    lister = sub.add_parser("list", help="list plugins or a registry's entries")
    lister.add_argument("kind", choices=("plugins",) + KINDS)

    sample = sub.add_parser("sample", help="sample images from a checkpoint's EMA generator")
    sample.add_argument("checkpoint")
    sample.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    sample.add_argument("--out", required=True,
                        help="a .png path gets one grid; any other path a folder of numbered PNGs")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    sample.add_argument("--attr", action="append", default=[], metavar="NAME=0|1",
                        help="requested attribute of a conditional model (repeatable)")

    evaluate = sub.add_parser("eval", help="evaluate a checkpoint with registered metrics")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--metric", dest="metrics", action="append", required=True,
                          help="a registered metric (repeatable); see `ganzoo list metrics`")
    evaluate.add_argument("--data", default=None, help="data folder (overrides data.root)")
    evaluate.add_argument("--num-images", type=int, default=None)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    _add_set(evaluate)

    data = sub.add_parser("data", help="look at a recipe's data")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    preview = data_sub.add_parser("preview", help="write the real images exactly as D sees them")
    preview.add_argument("recipe")
    preview.add_argument("--n", type=int, default=64)
    preview.add_argument("--out", required=True)
    preview.add_argument("--resolution", type=int, default=None,
                         help="a lower resolution of the growth schedule (default: the target)")
    _add_set(preview)
    add_commands(sub)  # commands that belong to a family (e.g. StarGAN's `translate`)
    return parser


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE", help="override a recipe value (parsed as TOML)")


def _version() -> str:
    from ganzoo import __version__
    return f"ganzoo {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None) or {
            "run": cmd_run, "list": cmd_list, "sample": cmd_sample, "data": cmd_data,
            "eval": cmd_eval}[args.command]
        handler(args)
        return 0
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception:
        traceback.print_exc()
        return 1


def _positive(value: int, flag: str) -> None:
    if value < 1:
        raise UserError(f"{flag} must be at least 1, got {value}")


def cmd_run(args) -> None:
    from ganzoo.engine.trainer import Trainer
    from ganzoo.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    Trainer(recipe, resume=args.resume, console=console).run()


def cmd_list(args) -> None:
    from ganzoo.plugins import plugins, registry

    if args.kind == "plugins":
        table = Table(title="ganzoo plugins")
        for column in ("plugin", "status", "distribution", "module", "registers"):
            table.add_column(column, overflow="fold")
        for info in plugins():
            dist = f"{info.distribution} {info.version}" if info.distribution else "-"
            status = {"ok": "[green]ok[/]", "disabled": "[yellow]disabled[/]"}.get(
                info.status, f"[red]broken[/]: {escape(info.error or '')}")
            counts = ", ".join(f"{n} {k}" for k, n in info.counts.items() if n) or "-"
            table.add_row(escape(info.name), status, escape(dist), escape(info.module), counts)
        console.print(table)
        return
    table = Table(title=f"ganzoo {args.kind}")
    for column in ("name", "plugin", "distribution", "summary"):
        table.add_column(column, overflow="fold")
    for entry in registry(args.kind).entries():
        table.add_row(*(escape(text) for text in (entry.name, entry.plugin, entry.distribution or "-",
                                                  entry.summary)))
    console.print(table)


def cmd_sample(args) -> None:
    from ganzoo.engine.inference import sample_checkpoint
    from ganzoo.model import parse_attributes

    _positive(args.n, "--n")
    paths = sample_checkpoint(args.checkpoint, n=args.n, out=args.out, seed=args.seed,
                              device=args.device, attributes=parse_attributes(args.attr))
    console.print(f"wrote {args.n} samples to '{args.out}'" + (
        "" if len(paths) == 1 else f" ({len(paths)} files)"))


def cmd_eval(args) -> None:
    import json

    from ganzoo.engine import build
    from ganzoo.engine.inference import load_run
    from ganzoo.evaluation import EvalContext, run_metrics

    overrides = list(args.overrides) + ([f"data.root={json.dumps(args.data)}"] if args.data else [])
    run = load_run(args.checkpoint, args.device, overrides)
    if args.num_images is not None:
        _positive(args.num_images, "--num-images")
    ctx = EvalContext(model=run.model, generator=run.generator, discriminator=run.discriminator,
                      dataset=build.build_dataset(run.recipe.data), resolution=run.resolution,
                      device=run.device, num_images=args.num_images or run.recipe.eval.num_images,
                      seed=args.seed)
    results = run_metrics(ctx, args.metrics, run.recipe.eval.params)
    if args.json:
        print(json.dumps(results))
        return
    table = Table(title=f"{args.checkpoint} at {run.resolution}px")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(key, f"{value:.6g}")
    console.print(table)


def cmd_data(args) -> None:
    from ganzoo.engine.build import build_dataset
    from ganzoo.engine.stream import preview_batch
    from ganzoo.images import write_images
    from ganzoo.recipe import load_recipe

    _positive(args.n, "--n")
    recipe = load_recipe(args.recipe, args.overrides)
    dataset = build_dataset(recipe.data)
    resolution = args.resolution or dataset.resolution
    if resolution > dataset.resolution or resolution < 1 or dataset.resolution % resolution:
        raise UserError(f"--resolution {resolution} is not a power-of-two fraction of the "
                        f"dataset's {dataset.resolution}")
    write_images(preview_batch(dataset, recipe, args.n, resolution), args.out)
    console.print(f"wrote {args.n} real images at {resolution}px to '{args.out}'")

