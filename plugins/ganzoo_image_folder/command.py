"""The `ganzoo prepare` command: a multi-resolution cache of an image folder (see `build`)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from ganzoo_image_folder.build import (DEFAULT_MAX_RESOLUTION, MAX_RESOLUTION, MIN_RESOLUTION,
                                       prepare_cache)

EXAMPLE = "example: ganzoo prepare data/celeba_hq --out data/celeba_hq.cache --resolution 1024"


def add_prepare_command(subparsers) -> None:
    prepare = subparsers.add_parser(
        "prepare", help="build a multi-resolution cache of an image folder",
        description="Decode every image under FOLDER once into memory-mappable arrays at every "
                    "power-of-two resolution (ProGAN's multi-resolution dataset); train from it "
                    "with data.cache = \"CACHE\" or data.root = \"CACHE\" (dataset image_folder).",
        epilog=EXAMPLE)
    prepare.add_argument("folder", help="the folder of images (png, jpg, jpeg, webp, bmp, found "
                                        "recursively; no default)")
    prepare.add_argument("--out", required=True,
                         help="the cache folder to write (required; no default)")
    prepare.add_argument("--resolution", type=int, default=None,
                         help=f"top level, a power of two from {MIN_RESOLUTION} to {MAX_RESOLUTION} "
                              "(default: the largest power of two within the smallest of up to 64 "
                              f"sampled images, at most {DEFAULT_MAX_RESOLUTION})")
    prepare.add_argument("--crop", type=int, default=None,
                         help="keep a centre square of this many pixels before resizing (default: "
                              "none, the whole centre square)")
    prepare.add_argument("--workers", type=int, default=None,
                         help="decoding processes (default: one per available CPU; 0 or 1: decode "
                              "in this process)")
    prepare.set_defaults(handler=_cmd_prepare)


def _cmd_prepare(args) -> None:
    console = Console()
    with Progress(BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("prepare", total=None)
        summary = prepare_cache(args.folder, args.out, resolution=args.resolution, crop=args.crop,
                                workers=args.workers,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
    print(summary.describe())  # plain: no markup read into paths, never wrapped
