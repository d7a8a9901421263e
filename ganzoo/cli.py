"""The `ganzoo` command line: its arguments and exit codes (the handlers are in ganzoo.commands).

Exit codes: 0 success; 2 bad input, one line `ganzoo: error: ...` and no traceback; 130 / 143
after SIGINT / SIGTERM once the run saved its snapshot; 1 a bug (with its traceback).
"""

from __future__ import annotations

import argparse
import traceback

from rich.markup import escape

from ganzoo import commands
from ganzoo.commands import console, err_console
from ganzoo.errors import RunStopped, UserError
from ganzoo.hookspecs import KINDS
from ganzoo.plugins import add_commands

DEVICES = ("auto", "cpu", "cuda")


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every argument's help shows its default; descriptions and examples keep their lines."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # argparse's own usage errors: the same one line as ours
        self.exit(2, f"ganzoo: error: {message} (see `{self.prog} --help`)\n")


def _command(sub, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                          epilog=f"example:\n  {example}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ganzoo", description="A plugin-style, modular GAN zoo for PyTorch.",
                     epilog="example:\n  ganzoo run progan_toyfaces        # a shipped recipe, by name")
    parser.add_argument("--version", action="version", version=commands.version_text(),
                        help="print ganzoo's, torch's and every plugin's version, and CUDA's availability")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = _command(sub, "run", "train from a recipe",
                   "ganzoo run recipes/progan_celebahq.toml --set train.kimg=2000 --resume")
    run.add_argument("recipe", help="a recipe file, or the name of a shipped recipe (`ganzoo list recipes`)")
    _add_set(run)
    run.add_argument("--resume", nargs="?", const=True, default=False, metavar="SNAPSHOT",
                     help="continue from the newest snapshot in run.out_dir, or from the named one")
    run.add_argument("--resume-anyway", action="store_true",
                     help="resume even though the recipe differs from the snapshot's in more than its "
                          "length, logging and evaluation settings")
    run.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                     help="start a new run from another run's G, D and G-EMA weights (a snapshot or run "
                          "folder); optimizers and kimg start afresh")
    run.add_argument("--preflight", action="store_true",
                     help="run a few iterations of every phase of the schedule, print speed, memory and "
                          "the estimated wall time, and exit; writes nothing")
    run.add_argument("--preflight-iterations", type=int, default=3, metavar="N",
                     help="iterations per phase in --preflight (the first warms caches up)")
    run.set_defaults(handler=commands.run)

    lister = _command(sub, "list", "list plugins, shipped recipes or a registry's entries",
                      "ganzoo list losses")
    lister.add_argument("kind", nargs="?", default=None, choices=("plugins", "recipes") + KINDS,
                        metavar="KIND", help=f"one of: plugins, recipes, {', '.join(KINDS)}; "
                                             "without it, what each holds")
    lister.set_defaults(handler=commands.list_entries)

    init = _command(sub, "init", "copy a shipped recipe out to edit it",
                    "ganzoo init progan_toyfaces my_progan.toml")
    init.add_argument("name", help="a shipped recipe (`ganzoo list recipes`)")
    init.add_argument("dest", nargs="?", default=None, help="where to write it (default: ./NAME.toml)")
    init.set_defaults(handler=commands.init)

    sample = _command(sub, "sample", "sample images from a checkpoint's EMA generator",
                      "ganzoo sample runs/progan_toyfaces --n 64 --out grid.png")
    _add_checkpoint(sample)
    sample.add_argument("--n", type=int, default=64, help="number of images")
    sample.add_argument("--out", required=True,
                        help="a .png path gets one grid; any other path a folder of numbered PNGs")
    sample.add_argument("--seed", type=int, default=0, help="seed of the latents")
    sample.add_argument("--batch-size", type=int, default=64,
                        help="images generated at a time; a folder is written batch by batch")
    sample.add_argument("--device", default="auto", choices=DEVICES, help="where to run G")
    sample.add_argument("--attr", action="append", default=[], metavar="NAME=0|1",
                        help="an attribute of a conditional model's images (repeatable; default: none)")
    sample.set_defaults(handler=commands.sample)

    evaluate = _command(sub, "eval", "evaluate a checkpoint, or every snapshot of a run, with metrics",
                        "ganzoo eval runs/progan_toyfaces --metric swd --all")
    _add_checkpoint(evaluate)
    evaluate.add_argument("--metric", dest="metrics", action="append", required=True,
                          help="a registered metric (repeatable; `ganzoo list metrics`)")
    evaluate.add_argument("--all", action="store_true",
                          help="with a run folder: every snapshot, written to RUN_DIR/eval.jsonl "
                               "(snapshots evaluated before are skipped)")
    evaluate.add_argument("--data", default=None, help="data folder (overrides data.root; default: the recipe's)")
    evaluate.add_argument("--num-images", type=int, default=None,
                          help="images per metric (default: the recipe's eval.num_images)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the evaluation's draws")
    evaluate.add_argument("--device", default="auto", choices=DEVICES, help="where to run G")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    _add_set(evaluate)
    evaluate.set_defaults(handler=commands.evaluate)

    export = _command(sub, "export", "write a checkpoint's EMA generator alone, to use it elsewhere",
                      "ganzoo export runs/progan_toyfaces --out G.safetensors")
    _add_checkpoint(export)
    export.add_argument("--out", required=True, help="the .safetensors file to write")
    export.set_defaults(handler=commands.export)

    data = _command(sub, "data", "look at a recipe's data", "ganzoo data preview progan_toyfaces --out reals.png")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True, parser_class=_Parser)
    preview = _command(data_sub, "preview", "write the real images exactly as D sees them",
                       "ganzoo data preview recipes/progan_celebahq.toml --resolution 64 --out reals.png")
    preview.add_argument("recipe", help="a recipe file, or the name of a shipped recipe")
    preview.add_argument("--n", type=int, default=64, help="number of images")
    preview.add_argument("--out", required=True,
                         help="a .png path gets one grid; any other path a folder of numbered PNGs")
    preview.add_argument("--resolution", type=int, default=None,
                         help="a lower resolution of the growth schedule (default: the target)")
    _add_set(preview)
    preview.set_defaults(handler=commands.preview)

    add_commands(sub)  # commands that belong to a plugin (e.g. `translate`, `prepare`, `report`)
    return parser


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE",
                        help="override a recipe value, parsed as TOML (repeatable; default: none)")


def _add_checkpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a snapshot file, or a run folder (its newest snapshot)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `ganzoo`: what there is to do
        parser.print_help()
        return 0
    try:
        args.handler(args)
        return 0
    except UserError as exc:
        return _fail(str(exc))
    except RunStopped as exc:  # a signal: the run saved its snapshot first
        err_console.print(escape(str(exc)), highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except OSError as exc:  # a file we were told to read or write: permissions, a full disk
        if exc.filename is not None:
            return _fail(f"cannot use '{exc.filename}': {exc.strerror}")
        traceback.print_exc()
        return 1
    except Exception:
        traceback.print_exc()
        return 1


def _fail(message: str) -> int:
    err_console.print(f"ganzoo: error: {escape(message)}", highlight=False, soft_wrap=True, markup=True)
    return 2


__all__ = ["build_parser", "console", "main"]

