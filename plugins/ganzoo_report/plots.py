"""The report's plots, drawn with matplotlib (object API with the Agg canvas: no pyplot state,
no display) and embedded as base64 PNG, whose size depends on its pixels, not the run's length."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from ganzoo_report.rundata import Phase

FADE_COLOUR = "#f08c00"  # a fade-in's band (alpha FADE_ALPHA over white)
FADE_ALPHA = 0.22
STABLE_COLOUR = "#5c7cfa"  # every other stable resolution's band, so neighbours stay apart
STABLE_ALPHA = 0.10
DPI = 100


@dataclass
class Plot:
    title: str
    png: str  # base64


def _points(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        if key in row:
            value = row[key]
            xs.append(row["kimg"])
            ys.append(math.nan if not isinstance(value, (int, float)) else float(value))
    return xs, ys


def _line(ax, xs, ys, label, **style):
    if len(xs) < 20:  # few points: show each one
        style.setdefault("marker", "o")
        style.setdefault("markersize", 3)
    ax.plot(xs, ys, label=label, **style)


def _shade(ax, phases: list[Phase]) -> bool:
    """The resolution / fade timeline behind the curves; True when anything was shaded."""
    if len(phases) < 2 and not any(p.fading for p in phases):
        return False
    top = blended_transform_factory(ax.transData, ax.transAxes)
    stable = 0
    for phase in phases:
        if phase.fading:
            ax.axvspan(phase.start, phase.end, color=FADE_COLOUR, alpha=FADE_ALPHA, lw=0, zorder=0)
            continue
        if stable % 2:
            ax.axvspan(phase.start, phase.end, color=STABLE_COLOUR, alpha=STABLE_ALPHA, lw=0, zorder=0)
        stable += 1
        ax.text((phase.start + phase.end) / 2, 0.98, f"{phase.resolution}²", transform=top,
                ha="center", va="top", fontsize=8, color="#444")
    return True


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(title: str, panels: int = 1, width: float = 9.0) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, 3.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    fig.suptitle(title, fontsize=11)
    for ax in axes:
        ax.set_xlabel("kimg")
        ax.grid(True, alpha=0.3)
    return fig, list(axes)


def loss_plot(side: str, training: list[dict], phases: list[Phase]) -> Plot | None:
    """One side's loss terms and their total against kimg, over the timeline."""
    keys = sorted({k for r in training for k in r if k.startswith(f"{side}/")},
                  key=lambda k: (k == f"{side}/total", k))
    if not keys:
        return None
    title = f"{side} loss terms"
    fig, (ax,) = _axes(title)
    for key in keys:
        # The total dashed on top: with one term the two coincide and both must stay visible.
        style = {"color": "black", "lw": 1.4, "ls": "--", "zorder": 3} if key == f"{side}/total" else {"lw": 1.4}
        _line(ax, *_points(training, key), key, **style)
    handles, labels = ax.get_legend_handles_labels()
    if _shade(ax, phases) and any(p.fading for p in phases):
        handles.append(Patch(color=FADE_COLOUR, alpha=FADE_ALPHA, label="fade-in"))
    ax.legend(handles=handles, fontsize=8, loc="best", framealpha=0.8)
    ax.set_ylabel("loss")
    return Plot(title, _png(fig))


def speed_plot(training: list[dict], phases: list[Phase]) -> Plot | None:
    """img/s and sec/kimg (and peak memory where rows have it) against kimg."""
    xs, img_per_s = _points(training, "img_per_s")
    if not xs:
        return None
    sec_x, sec_per_kimg = _points(training, "sec_per_kimg")
    if not sec_x:  # runs from before rows had it: the same quantity, 1000 images / rate
        sec_x, sec_per_kimg = xs, [1000 / v if v and v > 0 else math.nan for v in img_per_s]
    panels = [("img/s", xs, img_per_s), ("sec/kimg", sec_x, sec_per_kimg)]
    mem_x, mem = _points(training, "peak_mem_mb")
    if mem_x:
        panels.append(("peak memory (MB)", mem_x, mem))
    title = "speed"
    fig, axes = _axes(title, len(panels), width=4.2 * len(panels))
    for ax, (name, px, py) in zip(axes, panels):
        _line(ax, px, py, name, lw=1.2)
        _shade(ax, phases)
        ax.set_ylabel(name)
    return Plot(title, _png(fig))


def metric_plot(group: str, series: dict[tuple[str, str], list[tuple[float, float]]]) -> Plot:
    """Every value of one evaluated metric against kimg; eval.jsonl's dashed beside the run's own."""
    title = f"metric: {group}"
    fig, (ax,) = _axes(title)
    for (key, source), points in sorted(series.items()):
        label, style = (key, {}) if source == "metrics.jsonl" else (f"{key} ({source})", {"ls": "--"})
        _line(ax, [p[0] for p in points], [p[1] for p in points], label, lw=1.4, **style)
    ax.legend(fontsize=8, framealpha=0.8)
    return Plot(title, _png(fig))
