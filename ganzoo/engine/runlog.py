"""What a run reports: `metrics.jsonl` (strict JSON, whole lines) and the console, which is a
rich progress bar on a terminal and one plain line per log interval in a batch log."""

from __future__ import annotations

import json
import math
import os
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from ganzoo.errors import UserError
from ganzoo.files import atomic_path, read_json_lines


def finite_or_none(value):
    """JSON has no NaN or Infinity: a non-finite number is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class MetricsLog:
    """One JSON object per line, appended to `metrics.jsonl`; each line is written whole."""

    def __init__(self, path: Path):
        self.path = path

    def records(self) -> list[dict]:
        """Every complete line; a partial last line (a full disk, a kill) is left out."""
        return read_json_lines(self.path)

    def truncate_after(self, kimg: float) -> None:
        """On resume, keep the lines up to the snapshot we resume from (the rest no longer happened)."""
        if not self.path.exists():
            return
        kept = [r for r in self.records() if r.get("kimg", 0.0) <= kimg + 1e-9]
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def set_aside(self) -> Path | None:
        """A fresh run keeps a previous run's log aside rather than appending to it."""
        if not self.path.exists():
            return None
        aside = self.path.with_name(f"metrics.before-{datetime.now():%Y%m%d-%H%M%S}.jsonl")
        os.replace(self.path, aside)
        return aside

    def write(self, record: dict) -> None:
        line = json.dumps({k: finite_or_none(v) for k, v in record.items()}, allow_nan=False) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
        except OSError as exc:
            raise UserError(f"cannot append to '{self.path}' ({exc.strerror}); free space and "
                            "continue with --resume: the snapshots so far are intact") from None


def peak_memory_mb(device) -> float:
    """Peak memory of this process: CUDA's max allocated on a GPU, else the peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def format_losses(losses: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:+.4f}" if v is not None else f"{k} nan" for k, v in losses.items())


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:d}:{minutes:02d}:{secs:02d}"


class _BarAndLosses(Progress):
    """The bar's row, and the loss terms on a line of their own below it (wrapped, never cut)."""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            if task.fields.get("losses"):
                yield Text(task.fields["losses"], overflow="fold")


class Console80:
    """The run's console: a progress bar on a terminal (kimg, img/s and ETA always fit in 80
    columns; losses on their own line), and one plain line per log interval otherwise."""

    def __init__(self, console: Console, total_kimg: float, start_kimg: float):
        self.console, self.total = console, total_kimg
        self.terminal = console.is_terminal
        self.started = time.perf_counter()
        self.progress = None
        if self.terminal:
            self.progress = _BarAndLosses(
                TextColumn("[bold]{task.fields[stage]}"), BarColumn(bar_width=None),
                TextColumn("{task.completed:.1f}/{task.total:.0f} kimg"),
                TextColumn("{task.fields[speed]}"), TimeRemainingColumn(),
                console=console, transient=False)
            self.task = self.progress.add_task("train", total=total_kimg, completed=start_kimg,
                                               stage="", speed="", losses="")
            self.progress.start()

    def print(self, text: str) -> None:
        (self.progress.console if self.progress else self.console).print(text, highlight=False,
                                                                        soft_wrap=True)

    def tick(self, kimg: float, stage: str) -> None:
        if self.progress:
            self.progress.update(self.task, completed=kimg, stage=stage)

    def interval(self, kimg: float, stage: str, record: dict, losses: dict[str, float]) -> None:
        """After each log interval: the bar's fields, or one plain line."""
        if self.progress:
            self.progress.update(self.task, completed=kimg, stage=stage,
                                 speed=f"{record['img_per_s']:,.0f} img/s", losses=format_losses(losses))
            return
        eta = (self.total - kimg) * record["sec_per_kimg"]
        self.print(f"kimg {kimg:.1f}/{self.total:g}  {stage}  {record['sec_per_kimg']:.2f} s/kimg  "
                   f"{record['img_per_s']:,.0f} img/s  eta {format_duration(eta)}  "
                   f"mem {record['peak_mem_mb']:,.0f} MB  {format_losses(losses)}")

    def close(self) -> None:
        if self.progress:
            self.progress.stop()
            self.progress = None


class TensorBoardLog:
    """[log] tensorboard = true: every logged number as a scalar against kimg, and the sample
    grids, in out_dir/tb (torch.utils.tensorboard; install with `pip install ganzoo[tb]`)."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional: imports tensorboard
        except ImportError:
            raise UserError("[log] tensorboard = true needs the tensorboard package: "
                            "pip install 'ganzoo[tb]' (or set [log] tensorboard = false)") from None
        self.writer = SummaryWriter(str(folder))

    def scalars(self, record: dict) -> None:
        step = round(record["kimg"] * 1000)  # images shown: an integer step TensorBoard can order
        for key, value in record.items():
            if key != "kimg" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def grid(self, image, images_shown: int) -> None:
        self.writer.add_image("samples", image, images_shown, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def banner(trainer) -> None:
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    if trainer.device.type == "cuda":
        props = torch.cuda.get_device_properties(trainer.device)
        device = f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    where = (f"resuming from '{trainer.resume_from}' at {trainer.kimg:.3f} kimg"
             if trainer.resume_from else "starting a new run")
    auto = " (auto)" if trainer.recipe.run.precision == "auto" else ""
    trainer.console.print(
        f"{where}\n  device {device}, precision {trainer.precision}{auto}"
        f"{f', {trainer.dist.world} processes' if trainer.dist.enabled else ''}\n"
        f"  G {count(trainer.G):,} parameters, D {count(trainer.D):,} parameters\n"
        f"  data {trainer.recipe.data.dataset}: {len(trainer.dataset):,} images at "
        f"{trainer.dataset.resolution}px\n  out_dir '{trainer.out_dir}', {trainer.recipe.train.kimg:g} kimg",
        highlight=False, soft_wrap=True)


def finish(trainer, seconds: float) -> None:
    records = [r for r in trainer.metrics.records() if "D/total" in r]
    last = records[-1] if records else {}
    losses = ", ".join(f"{k} {v:.4f}" for k, v in last.items()
                       if "/" in k and isinstance(v, float))
    longer = 2 * trainer.recipe.train.kimg
    continue_with = f"--set train.kimg={longer:g}"
    if "decay_end_kimg" in trainer.recipe.schedule.params:  # the decay ends with the run (check_lr_lasts)
        continue_with += f" --set schedule.decay_end_kimg={longer:g}"
    if trainer.recipe.ema.mean_from_kimg:  # the running mean keeps its share of the run
        continue_with += f" --set ema.mean_from_kimg={2 * trainer.recipe.ema.mean_from_kimg:g}"
    trainer.console.print(
        f"done: {trainer.kimg:.3f} kimg in {format_duration(seconds)}; samples and snapshots in "
        f"'{trainer.out_dir}'\n  final losses: {losses or '-'}\n  last snapshot: '{trainer.last_snapshot}'\n"
        f"  next: ganzoo sample {trainer.out_dir} --n 64 --out samples.png\n"
        f"        ganzoo eval {trainer.out_dir} --metric swd\n"
        f"        ganzoo run {trainer.out_dir / 'recipe.toml'} --resume {continue_with}",
        highlight=False, soft_wrap=True)
