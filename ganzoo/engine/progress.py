"""What a run reports: metrics.jsonl lines and a rich progress bar (quiet when not a terminal)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class MetricsLog:
    """One JSON object per log interval, appended to `metrics.jsonl`."""

    def __init__(self, path: Path):
        self.path = path

    def truncate_after(self, kimg: float) -> None:
        """On resume, drop lines written after the snapshot we resume from (they no longer happened)."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("kimg", 0.0) <= kimg + 1e-9]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(self.path)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")


class ProgressBar:
    def __init__(self, console: Console, total_kimg: float, start_kimg: float):
        self.enabled = console.is_terminal
        self.progress = None
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.fields[stage]}"), BarColumn(),
                TextColumn("{task.completed:.1f}/{task.total:.1f} kimg"),
                TextColumn("{task.fields[speed]}"), TextColumn("{task.fields[losses]}"),
                TimeRemainingColumn(), console=console, transient=False)
            self.task = self.progress.add_task("train", total=total_kimg, completed=start_kimg,
                                               stage="", speed="", losses="")
            self.progress.start()

    def update(self, kimg: float, stage: str, img_per_s: float | None = None,
               losses: dict[str, float] | None = None) -> None:
        if not self.enabled:
            return
        fields = {"stage": stage}
        if img_per_s is not None:
            fields["speed"] = f"{img_per_s:,.0f} img/s"
        if losses is not None:
            fields["losses"] = " ".join(f"{k} {v:+.3f}" for k, v in losses.items())
        self.progress.update(self.task, completed=kimg, **fields)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
