"""ganzoo plugin "report": the `ganzoo report` command."""

from __future__ import annotations

from pathlib import Path

import ganzoo


@ganzoo.hookimpl
def ganzoo_register_commands(subparsers):
    report = subparsers.add_parser(
        "report", help="write one self-contained HTML page of a run (finished or in progress)",
        description="Losses, speed, metrics, sample grids and the recipe of a run folder, in one "
                    "HTML file that needs no network to view.",
        epilog="example: ganzoo report runs/progan_toyfaces --out progan.html")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (a recipe's run.out_dir)")
    report.add_argument("--out", default=None, metavar="FILE.html",
                        help="the page to write (default: RUN_DIR/report.html)")
    report.set_defaults(handler=_cmd_report)


def _cmd_report(args) -> None:
    # Imported here, not at the top: every `ganzoo` command builds the parser, only this one plots.
    from ganzoo_report.page import render
    from ganzoo_report.rundata import is_empty, read_run

    folder = Path(args.run_dir)
    if not folder.is_dir():
        raise ganzoo.UserError(f"no run folder '{folder}'; pass a run's out_dir, e.g. runs/progan_toyfaces")
    run = read_run(folder)
    if is_empty(run):
        raise ganzoo.UserError(f"'{folder}' holds no run (no recipe.toml, metrics.jsonl, samples/ or "
                               "checkpoints/); pass the run.out_dir of a recipe that has started")
    out = Path(args.out) if args.out else folder / "report.html"
    ganzoo.files.write_text(out, render(run))
    print(f"wrote '{out}' ({out.stat().st_size / 2**20:.1f} MiB)")
