"""Translation, the part of StarGAN the engine knows nothing of: what G is fed in training,
sample grids and metrics (`TranslationModel`), and the `ganzoo translate` command."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch

import ganzoo

TRANSLATION_ROWS = 16  # translation grids show this many inputs, each with every attribute change


@attrs.define
class TranslationModel(ganzoo.GANModel):
    """G maps (real images, target labels) to images: it takes real images where other
    families take latents."""

    translates = True
    conditional: bool = True

    def make_inputs(self, real, labels, target=None):
        return real, ganzoo.shuffled(labels) if target is None else target  # StarGAN, section 4

    def grid_inputs(self, n, *, seed, dataset, first_reals):
        images, labels = first_reals(min(n, TRANSLATION_ROWS))  # each with its own labels
        return ganzoo.images.to_float(images), labels

    def sample_grid(self, generator, inputs, labels, *, dataset, device, autocast=None):
        return translation_grid(generator, inputs, labels, list(dataset.attribute_names),
                                [list(g) for g in getattr(dataset, "attribute_groups", [])],
                                device, autocast)

    def eval_inputs(self, ctx, n, labels, offset):
        """Real images (a second seeded draw) translated to `labels` (other real images'
        attributes), or to their own sources' attributes shifted by one image when none are given."""
        produced, rounds = 0, 0
        while produced < n:
            if rounds and not produced:
                raise ganzoo.UserError("no real images to translate")
            for images, own in ctx.real_images(n - produced, offset=offset + 7 + rounds):
                if labels is not None and len(labels):
                    target = labels[torch.arange(produced, produced + len(images)) % len(labels)]
                else:
                    target = own.roll(1, dims=0)
                yield ganzoo.images.to_float(images), target
                produced += len(images)
            rounds += 1


def translation_grid(generator, images: torch.Tensor, labels: torch.Tensor, names: list[str],
                     groups: list[list[str]], device, autocast=None) -> np.ndarray:
    """Rows: one input each. Columns: the input, then its translation for every attribute change."""
    columns = [images.float().cpu()]
    for _, target in ganzoo.single_attribute_targets(labels, names, groups):
        columns.append(ganzoo.generate(generator, images, target, device, autocast=autocast))
    stacked = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: image, its translations, ...
    return ganzoo.images.make_grid(ganzoo.images.to_uint8(stacked), columns=len(columns))


@torch.no_grad()
def estimate_labels(run, images: torch.Tensor) -> torch.Tensor:
    """Attributes of real images as the discriminator's class head sees them (multi-label)."""
    _, logits = ganzoo.split_critic_output(run.discriminator(images.to(run.device)))
    if logits is None:
        raise ganzoo.UserError("this model's discriminator has no class head to read attributes from")
    logits = logits.float().cpu()
    labels = (logits > 0).float()
    for group in run.attribute_groups:  # exactly one of an exclusive group: the most likely
        idx = [run.attribute_names.index(name) for name in group]
        labels[:, idx] = torch.nn.functional.one_hot(logits[:, idx].argmax(1), len(idx)).float()
    return labels


@torch.no_grad()
def translate_images(path, images: list, *, out, attributes: dict[str, float],
                     device: str = "auto") -> list[Path]:
    """Translate image files: each to the requested attributes, plus a grid of every change."""
    run = ganzoo.load_run(path, device)
    if not run.model.translates:
        raise ganzoo.UserError(f"'{path}' holds a generator of new images, not a translation model; "
                               "use `ganzoo sample`")
    crop = run.recipe.data.params.get("crop")
    batch = []
    for image in images:
        if not Path(image).is_file():
            raise ganzoo.UserError(f"image '{image}' does not exist")
        try:
            batch.append(ganzoo.read_image(str(image), run.resolution, crop))
        except Exception as exc:
            raise ganzoo.UserError(f"image '{image}' cannot be read ({exc})") from None
    real = ganzoo.images.to_float(torch.stack(batch))
    original = estimate_labels(run, real)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ganzoo.UserError(f"--out '{out}' is an existing file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if attributes:
        target = ganzoo.apply_attributes(original, run.attribute_names, attributes, run.attribute_groups)
        translated = ganzoo.images.to_uint8(ganzoo.generate(run.generator, real, target, run.device))
        for image, result in zip(images, translated):
            written.append(out / f"{Path(image).stem}.png")
            ganzoo.images.save_png(result.permute(1, 2, 0).numpy(), written[-1])
    grid = translation_grid(run.generator, real, original, run.attribute_names,
                            run.attribute_groups, run.device)
    ganzoo.images.save_png(grid, out / "grid.png")
    return written + [out / "grid.png"]


def add_translate_command(subparsers) -> None:
    translate = subparsers.add_parser(
        "translate", help="translate images with an image-translation model (StarGAN)",
        description="Translate image files with a checkpoint's EMA generator.",
        epilog="example: ganzoo translate runs/stargan_toyfaces face.png --set-attr eyeglasses=1 --out out/")
    translate.add_argument("checkpoint", help="a snapshot file, or a run folder (its newest snapshot)")
    translate.add_argument("images", nargs="+", help="image files to translate")
    translate.add_argument("--set-attr", dest="attrs", action="append", default=[],
                           metavar="NAME=0|1", help="target attribute (repeatable; default: none, only grid.png)")
    translate.add_argument("--out", required=True,
                           help="folder for the translated images and grid.png (every attribute change)")
    translate.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                           help="where to run G (default: auto)")
    translate.set_defaults(handler=_cmd_translate)


def _cmd_translate(args) -> None:
    written = translate_images(args.checkpoint, args.images, out=args.out,
                               attributes=ganzoo.parse_attributes(args.attrs), device=args.device)
    print(f"wrote {len(written)} images to '{args.out}' (grid.png: every attribute change)")
