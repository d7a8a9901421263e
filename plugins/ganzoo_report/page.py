"""The report page: plain HTML built with html.escape, every plot and image embedded as a data
URI, so the one file opens anywhere without a network or the run folder."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime
from html import escape
from pathlib import Path

from PIL import Image

from ganzoo_report import plots
from ganzoo_report.rundata import Run

NEWEST_GRIDS = 12  # the strip holds the newest grids and the first, whatever the run's length
NEWEST_SIDE = 768  # px: the newest grid's longest side at most; the others smaller
OTHER_SIDE = 384

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; padding: 0 1.5em; max-width: 1150px; color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table.header td { padding: .15em 1em .15em 0; vertical-align: top; }
table.header td:first-child { color: #666; }
img.plot { max-width: 100%; display: block; margin: .5em 0; }
.strip { display: flex; gap: 12px; overflow-x: auto; padding-bottom: 8px; align-items: flex-start; }
.strip figure { margin: 0; flex: none; text-align: center; font-size: .85em; color: #555; }
.strip img { width: 256px; image-rendering: pixelated; border: 1px solid #ddd; }
.strip figure.newest img { width: 384px; }
pre.recipe { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: .85em; }
p.note, p.timeline { color: #555; }
"""

# Sets data-loaded and data-images-broken on <body> once the page loaded, so that a headless
# browser's DOM dump shows whether every embedded image decoded.
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var broken = 0;
  for (var i = 0; i < document.images.length; i++) {
    var img = document.images[i];
    if (!img.complete || img.naturalWidth === 0) broken++;
  }
  document.body.setAttribute("data-images-broken", String(broken));
  document.body.setAttribute("data-loaded", "yes");
});
"""


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:d}:{minutes:02d}:{secs:02d}"


def image_uri(path: Path, max_side: int) -> str | None:
    """A PNG data URI, shrunk to `max_side`; None for a file that does not decode (yet)."""
    try:
        with Image.open(path) as image:
            image.load()
            if max(image.size) > max_side:
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(section: dict, key: str) -> dict:
    value = section.get(key, {}) if isinstance(section, dict) else {}
    return value if isinstance(value, dict) else {}


def header(run: Run) -> list[tuple[str, str]]:
    recipe = run.recipe
    model, data, train = _table(recipe, "model"), _table(recipe, "data"), _table(recipe, "train")
    parts = [f"model {model['name']}" if "name" in model else "",
             f"dataset {data['dataset']}" if "dataset" in data else "",
             f"{data['resolution']}x{data['resolution']}" if "resolution" in data else ""]
    rows = [("run folder", str(run.path)),
            ("recipe", " · ".join([run.path.name] + [p for p in parts if p]))]
    asked = _table(recipe, "run").get("device")
    rows.append(("device", run.device + (f" (recipe: {asked})" if asked else "")))
    reached = run.kimg
    target = train.get("kimg")
    rows.append(("kimg reached", ("-" if reached is None else f"{reached:.3f}")
                 + (f" of {target:g}" if isinstance(target, (int, float)) else "")))
    wall = run.wall_seconds()
    rows.append(("wall time", "-" if wall is None else f"{duration(wall[0])} ({wall[1]})"))
    snap = run.last_snapshot
    if snap is None:
        rows.append(("last snapshot", "- (none yet)"))
    else:
        at = "" if snap.kimg is None else f" at {snap.kimg:.3f} kimg"
        rows.append(("last snapshot", f"{snap.path.name}{at} ({len(run.snapshots)} kept)"))
        try:
            versions = json.loads(snap.metadata.get("versions") or "{}")
            rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "-"))
        except (json.JSONDecodeError, AttributeError):
            pass
    if run.training and run.training[-1].get("time"):
        rows.append(("last logged row", str(run.training[-1]["time"])))
    return rows


def timeline_text(run: Run) -> str:
    phases = run.timeline()
    if len(phases) < 2 and not any(p.fading for p in phases):
        return ""
    return "timeline: " + " · ".join(
        f"{'fade-in ' if p.fading else ''}{p.resolution}² {p.start:g}–{p.end:g} kimg" for p in phases)


def _plot_html(plot: plots.Plot) -> str:
    return (f'<img class="plot" alt="{escape(plot.title)}" title="{escape(plot.title)}" '
            f'src="data:image/png;base64,{plot.png}">')


def _figure(uri: str, caption: str, kind: str, extra: str = "") -> str:
    classes = f"{kind} {extra}".strip()
    return (f'<figure class="{escape(classes)}"><img class="{escape(kind)}" alt="{escape(caption)}" '
            f'src="{uri}"><figcaption>{escape(caption)}</figcaption></figure>')


def samples_html(run: Run) -> str:
    """The newest grids first, then the very first; then the real images per resolution."""
    chosen = run.fakes[::-1][:NEWEST_GRIDS]
    if run.fakes and run.fakes[0] not in chosen:
        chosen.append(run.fakes[0])
    figures, unreadable = [], 0
    for i, (images, path) in enumerate(chosen):
        uri = image_uri(path, NEWEST_SIDE if i == 0 else OTHER_SIDE)
        if uri is None:
            unreadable += 1
            continue
        label = f"{images / 1000:g} kimg" + (" (newest)" if i == 0 else "")
        figures.append(_figure(uri, label, "fakes", "newest" if i == 0 else ""))
    reals = []
    for resolution, path in run.reals:
        uri = image_uri(path, OTHER_SIDE)
        if uri is None:
            unreadable += 1
            continue
        reals.append(_figure(uri, f"reals at {resolution}x{resolution}", "reals"))
    out = [f"<p class=\"note\">{len(run.fakes)} grids in samples/; shown: the "
           f"{min(NEWEST_GRIDS, len(run.fakes))} newest and the first.</p>" if len(run.fakes) > len(chosen)
           else ""]
    out.append(f'<div class="strip">{"".join(figures)}</div>' if figures
               else '<p class="note">no sample grids yet</p>')
    out.append("<h3>Real images, as D sees them</h3>")
    out.append(f'<div class="strip">{"".join(reals)}</div>' if reals
               else '<p class="note">no real-image grids yet</p>')
    if unreadable:
        out.append(f'<p class="note">{unreadable} image file(s) did not decode (still being written?) '
                   "and are left out.</p>")
    return "\n".join(out)


def render(run: Run) -> str:
    phases = run.timeline()
    loss = [p for side in ("D", "G") if (p := plots.loss_plot(side, run.training, phases))]
    speed = plots.speed_plot(run.training, phases)
    metrics = [plots.metric_plot(g, s) for g, s in sorted(run.metric_series().items())]
    none_yet = '<p class="note">no training rows logged yet</p>'
    timeline = timeline_text(run)
    body = [f"<h1>{escape(run.path.name)}</h1>",
            '<table class="header">' + "".join(
                f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in header(run)) + "</table>",
            '<section id="losses"><h2>Losses</h2>',
            f'<p class="timeline">{escape(timeline)}</p>' if timeline else "",
            "".join(map(_plot_html, loss)) or none_yet, "</section>",
            '<section id="speed"><h2>Speed</h2>', _plot_html(speed) if speed else none_yet, "</section>",
            '<section id="metrics"><h2>Metrics</h2>',
            "".join(map(_plot_html, metrics)) or '<p class="note">no evaluated metrics yet</p>',
            "</section>",
            '<section id="samples"><h2>Samples</h2>', samples_html(run), "</section>",
            '<section id="recipe"><h2>Recipe (resolved)</h2>',
            f'<pre class="recipe">{escape(run.recipe_text)}</pre>' if run.recipe_text
            else '<p class="note">no recipe.toml</p>', "</section>",
            f'<p class="note">written by ganzoo report at {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z}</p>']
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>ganzoo report: {escape(run.path.name)}</title>\n<style>{STYLE}</style>\n"
            f"<script>{CHECK_SCRIPT}</script>\n</head>\n<body>\n" + "\n".join(b for b in body if b)
            + "\n</body>\n</html>\n")
