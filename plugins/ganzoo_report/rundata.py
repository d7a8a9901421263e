"""A run folder as it is now: a run in progress may be appending to its files, so whatever is
whole is read and the rest (a partial last line, a half-written image) is left out."""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import ganzoo
from safetensors import SafetensorError, safe_open

FAKES = re.compile(r"fakes-(\d+)\.png")
REALS = re.compile(r"reals-(\d+)\.png")
# Keys of a training row that are neither loss terms nor metrics (ganzoo/engine/trainer.py).
BOOKKEEPING = {"kimg", "step", "time", "img_per_s", "sec_per_kimg", "peak_mem_mb", "resolution",
               "alpha", "batch_size", "lr_G", "lr_D", "device"}


def read_jsonl(path: Path) -> list[dict]:
    """The whole lines of a JSON-lines file that are objects with a numeric kimg."""
    return [row for row in ganzoo.files.read_json_lines(path)
            if isinstance(row, dict) and isinstance(row.get("kimg"), (int, float))]


def is_training(row: dict) -> bool:
    return any(key.startswith(("D/", "G/")) for key in row)


def metric_keys(row: dict) -> list[str]:
    """Evaluated values: numbers (or null for non-finite) that are not bookkeeping or losses."""
    return [k for k, v in row.items() if k not in BOOKKEEPING and not k.startswith(("D/", "G/"))
            and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))]


@dataclass
class Phase:
    """A stretch of training at one resolution, stable or fading in (ProGAN's timeline)."""

    start: float  # kimg
    end: float
    resolution: int
    fading: bool


@dataclass
class SnapshotInfo:
    path: Path
    kimg: float | None
    metadata: dict


@dataclass
class Run:
    path: Path
    recipe_text: str = ""
    recipe: dict = field(default_factory=dict)
    training: list[dict] = field(default_factory=list)
    evals: dict[str, list[dict]] = field(default_factory=dict)  # file name -> its eval rows
    fakes: list[tuple[int, Path]] = field(default_factory=list)  # (images shown, file), oldest first
    reals: list[tuple[int, Path]] = field(default_factory=list)  # (resolution, file)
    snapshots: list[Path] = field(default_factory=list)
    last_snapshot: SnapshotInfo | None = None
    mtimes: list[float] = field(default_factory=list)

    @property
    def kimg(self) -> float | None:
        """How far the run got: its newest logged row or snapshot."""
        seen = [r["kimg"] for r in self.training]
        seen += [r["kimg"] for rows in self.evals.values() for r in rows]
        if self.last_snapshot and self.last_snapshot.kimg is not None:
            seen.append(self.last_snapshot.kimg)
        return max(seen) if seen else None

    @property
    def device(self) -> str:
        for row in reversed(self.training):
            if row.get("device"):
                return str(row["device"])
        if self.last_snapshot and self.last_snapshot.metadata.get("device"):
            return self.last_snapshot.metadata["device"]
        return "-"

    def wall_seconds(self) -> tuple[float, str] | None:
        """From the first to the last logged `time`; runs from before rows had one: file mtimes."""
        times = []
        for row in self.training + [r for rows in self.evals.values() for r in rows]:
            try:
                times.append(datetime.fromisoformat(str(row["time"])).timestamp())
            except (KeyError, ValueError):
                continue
        if len(times) >= 2:
            return max(times) - min(times), "first to last logged row"
        if len(self.mtimes) >= 2:
            return max(self.mtimes) - min(self.mtimes), "from file times"
        return None

    def timeline(self) -> list[Phase]:
        """Consecutive training rows at one resolution and fade state; each row closes the
        interval since the row before it."""
        phases: list[Phase] = []
        previous = 0.0
        for row in self.training:
            resolution, alpha = row.get("resolution"), row.get("alpha")
            if not isinstance(resolution, int):
                continue
            fading = isinstance(alpha, (int, float)) and alpha < 1.0
            if phases and (phases[-1].resolution, phases[-1].fading) == (resolution, fading):
                phases[-1].end = row["kimg"]
            else:
                phases.append(Phase(previous, row["kimg"], resolution, fading))
            previous = row["kimg"]
        return phases

    def metric_series(self) -> dict[str, dict[tuple[str, str], list[tuple[float, float]]]]:
        """metric group (the key before "/") -> (key, source file) -> (kimg, value) points,
        oldest first; a metric in both files stays two series."""
        groups: dict[str, dict[tuple[str, str], list[tuple[float, float]]]] = {}
        for source, rows in self.evals.items():
            for row in rows:
                for key in metric_keys(row):
                    value = row[key]
                    points = groups.setdefault(key.split("/", 1)[0], {}).setdefault((key, source), [])
                    points.append((row["kimg"], math.nan if value is None else float(value)))
        return {g: {k: sorted(p) for k, p in series.items()} for g, series in groups.items()}


def read_snapshot(path: Path) -> SnapshotInfo:
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
    except (OSError, SafetensorError):  # rotated away or damaged: the report shows the rest
        return SnapshotInfo(path, None, {})
    try:
        kimg = float(metadata["kimg"])
    except (KeyError, ValueError):
        kimg = None
    return SnapshotInfo(path, kimg, metadata)


def _numbered(folder: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    return sorted(found)


def read_run(path: Path) -> Run:
    """Everything the report shows; None-valued parts are simply absent from the page."""
    run = Run(path=path)
    recipe = path / "recipe.toml"
    if recipe.is_file():
        run.recipe_text = recipe.read_text(encoding="utf-8", errors="replace")
    run.snapshots = ganzoo.list_snapshots(path / "checkpoints")
    if run.snapshots:
        run.last_snapshot = read_snapshot(run.snapshots[-1])
        if not run.recipe_text:  # a folder holding only checkpoints
            run.recipe_text = run.last_snapshot.metadata.get("recipe", "")
    try:
        run.recipe = tomllib.loads(run.recipe_text)
    except tomllib.TOMLDecodeError:
        run.recipe = {}
    rows = read_jsonl(path / "metrics.jsonl")
    run.training = [r for r in rows if is_training(r)]
    run.evals = {"metrics.jsonl": [r for r in rows if not is_training(r) and metric_keys(r)]}
    extra = read_jsonl(path / "eval.jsonl")
    if extra:
        run.evals["eval.jsonl"] = extra
    run.fakes = _numbered(path / "samples", FAKES)
    run.reals = _numbered(path / "samples", REALS)
    files = [recipe, path / "metrics.jsonl", path / "eval.jsonl", *run.snapshots,
             *(p for _, p in run.fakes + run.reals)]
    run.mtimes = [t for t in map(_mtime, files) if t is not None]
    return run


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:  # absent, or just rotated away by a run in progress
        return None


def is_empty(run: Run) -> bool:
    return not (run.recipe_text or run.training or any(run.evals.values()) or run.fakes
                or run.reals or run.snapshots)
