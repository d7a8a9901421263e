"""`ganzoo report`: real runs (DCGAN with periodic evaluation, a tiny growing ProGAN, a run from
before rows had times, a run in progress) turned into one self-contained page, which is then
opened in headless Chromium: loaded without console errors, every plot and image decoded, and a
screenshot that is not blank."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageStat

from ganzoo_report.plots import FADE_ALPHA, FADE_COLOUR

ROOT = Path(__file__).resolve().parents[2]
PROGAN = ROOT / "recipes" / "progan_toyfaces.toml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install -y chromium; .ci/run does)")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# Shown grids: the 12 newest and the first (ganzoo_report.page.NEWEST_GRIDS + 1).
MAX_GRIDS = 13


def ganzoo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganzoo", *args], capture_output=True, text=True,
                          env=ENV, timeout=600)


def report(run_dir: Path, out: Path | None = None) -> Path:
    result = ganzoo("report", str(run_dir), *(["--out", str(out)] if out else []))
    assert result.returncode == 0, result.stderr
    written = out or run_dir / "report.html"
    assert f"wrote '{written}'" in result.stdout
    return written


class Page(HTMLParser):
    """The <img> tags by class, every external reference, the body's attributes and the text."""

    def __init__(self, html: str):
        super().__init__()
        self.images: dict[str, list[dict]] = {}
        self.external: list[str] = []
        self.body: dict = {}
        self.text: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.setdefault(attrs.get("class", ""), []).append(attrs)
        if tag == "body":
            self.body = attrs
        if tag == "script":
            self._in_script = True
            if attrs.get("src"):
                self.external.append(attrs["src"])
        if tag == "link" or (attrs.get("src") or "").split(":")[0] in ("http", "https", "file"):
            self.external.append(str(attrs))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if not self._in_script:
            self.text.append(data)

    def count(self, kind: str) -> int:
        return len(self.images.get(kind, []))

    def captions(self) -> str:
        return " ".join(self.text)

    def png(self, kind: str, index: int) -> Image.Image:
        src = self.images[kind][index]["src"]
        assert src.startswith("data:image/png;base64,")
        return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")


def read_page(path: Path) -> Page:
    html = path.read_text(encoding="utf-8")
    assert "url(" not in html and "@import" not in html  # no stylesheet fetches either
    page = Page(html)
    assert page.external == []  # everything embedded: it opens without a network
    every = [img for imgs in page.images.values() for img in imgs]
    assert every and all(img["src"].startswith("data:image/png;base64,") for img in every)
    return page


def browse(page: Path, tmp: Path) -> tuple[Page, Image.Image]:
    """The page as headless Chromium loaded it (its DOM after the load event) and a screenshot."""
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp / 'profile'}",
              "--enable-logging=stderr", "--v=0", "--window-size=1200,2000"]
    shot = tmp / "shot.png"
    taken = subprocess.run([*common, f"--screenshot={shot}", page.resolve().as_uri()],
                           capture_output=True, text=True, timeout=180)
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    dumped = subprocess.run([*common, "--dump-dom", page.resolve().as_uri()],
                            capture_output=True, text=True, timeout=180)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    console = [line for line in (taken.stderr + dumped.stderr).splitlines() if ":CONSOLE" in line]
    assert console == []  # no script error, no resource refused
    dom = Page(dumped.stdout)
    assert dom.body.get("data-loaded") == "yes"  # the page's load handler ran
    assert dom.body.get("data-images-broken") == "0"  # every embedded plot and grid decoded
    return dom, Image.open(shot).convert("RGB")


def assert_not_blank(shot: Image.Image) -> None:
    assert shot.size == (1200, 2000)
    colours = shot.getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 1000  # plots and faces, not an empty page
    assert max(ImageStat.Stat(shot).stddev) > 20


def fade_pixels(plot: Image.Image) -> float:
    """The share of a plot's pixels in the fade-in band's colour (FADE_COLOUR at FADE_ALPHA on white)."""
    rgb = np.array([int(FADE_COLOUR[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    target = 255 * (1 - FADE_ALPHA) + rgb * FADE_ALPHA
    pixels = np.asarray(plot, dtype=float).reshape(-1, 3)
    return float((np.abs(pixels - target) <= 3).all(axis=1).mean())


def train_small(small_recipe: Path) -> Path:
    """The small DCGAN run with SWD at every snapshot, as its recipe's out_dir."""
    result = ganzoo("run", str(small_recipe), "--set", 'eval.metrics=["swd"]',
                    "--set", "eval.every_kimg=0.25", "--set", "eval.num_images=64")
    assert result.returncode == 0, result.stderr
    return small_recipe.parent / "run"


def grids(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "samples").glob("fakes-*.png"))


def reals(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "samples").glob("reals-*.png"))


@pytest.fixture(scope="module")
def progan_run(tmp_path_factory) -> Path:
    """recipes/progan_toyfaces.toml shrunk to 16x16 (as test_progan_training.py): 4 -> 8 -> 16
    with two fades, and more sample grids than the page shows."""
    out = tmp_path_factory.mktemp("report") / "progan"
    phase = 0.096  # 6 iterations of the recipe's own batch of 16 per phase
    result = ganzoo(
        "run", str(PROGAN), "--set", 'run.device="cpu"', "--set", f'run.out_dir="{out.as_posix()}"',
        "--set", "data.resolution=16", "--set", "data.size=64", "--set", "model.latent_dim=8",
        "--set", "model.fmap_base=32", "--set", "model.fmap_max=8",
        "--set", f"schedule.stabilize_kimg={phase}", "--set", f"schedule.fade_kimg={phase}",
        "--set", "train.kimg=0.48", "--set", "train.log_kimg=0.016", "--set", "train.sample_kimg=0.032",
        "--set", "train.snapshot_kimg=1", "--set", "train.sample_grid=4", "--set", "train.keep_snapshots=0",
        "--set", "eval.metrics=[]")
    assert result.returncode == 0, result.stderr
    return out


@needs_chromium
def test_report_of_a_finished_run_in_a_browser(small_recipe, tmp_path):
    run_dir = train_small(small_recipe)
    # A later `ganzoo eval` of the last snapshot, appended to eval.jsonl as a user would.
    evaluated = ganzoo("eval", str(run_dir), "--metric", "ms_ssim", "--num-images", "64", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last_kimg = max(r["kimg"] for r in rows)
    (run_dir / "eval.jsonl").write_text(json.dumps({"kimg": last_kimg, **json.loads(evaluated.stdout)}) + "\n")

    page_path = report(run_dir, tmp_path / "out" / "x.html")  # --out's folder is created
    page = read_page(page_path)
    # Two loss plots (D, G), speed, and one per evaluated metric: swd (metrics.jsonl), ms_ssim (eval.jsonl).
    assert page.count("plot") == 5
    titles = [img["alt"] for img in page.images["plot"]]
    assert titles == ["D loss terms", "G loss terms", "speed", "metric: ms_ssim", "metric: swd"]
    assert page.count("fakes") == len(grids(run_dir)) >= 2
    assert page.count("reals") == len(reals(run_dir)) == 1
    text = page.captions()
    recipe = (run_dir / "recipe.toml").read_text()
    assert 'dataset = "toyfaces"' in text and recipe.splitlines()[0] in text  # the resolved recipe
    assert f"{last_kimg:.3f} of 0.5" in text
    newest = int(grids(run_dir)[-1].stem.split("-")[1])
    assert page.images["fakes"][0]["alt"] == f"{newest / 1000:g} kimg (newest)"
    snapshot = sorted((run_dir / "checkpoints").glob("snapshot-*.safetensors"))[-1]
    assert f"{snapshot.name} at {last_kimg:.3f} kimg" in text
    assert "first to last logged row" in text
    assert fade_pixels(page.png("plot", 0)) < 0.001  # one resolution, no fades: nothing shaded

    dom, shot = browse(page_path, tmp_path)
    assert dom.count("plot") == 5 and dom.count("fakes") == page.count("fakes") and dom.count("reals") == 1
    assert "error" not in dom.captions().lower() and "traceback" not in dom.captions().lower()
    assert_not_blank(shot)


def test_report_of_a_growing_progan_shades_its_fades(progan_run, tmp_path):
    page = read_page(report(progan_run, tmp_path / "progan.html"))
    rows = [json.loads(line) for line in (progan_run / "metrics.jsonl").read_text().splitlines()]
    fades = sorted({r["resolution"] for r in rows if "alpha" in r and r["alpha"] < 1})
    assert fades == [8, 16]
    text = page.captions()
    for resolution in fades:
        assert f"fade-in {resolution}²" in text
    assert fade_pixels(page.png("plot", 0)) > 0.05  # the D losses' plot: two of five phases shaded
    assert fade_pixels(page.png("plot", 2)) > 0.05  # the speed plot too
    # The strip: the 12 newest grids, newest first, then the very first.
    written = grids(progan_run)
    assert len(written) > MAX_GRIDS
    assert page.count("fakes") == MAX_GRIDS
    shown = [img["alt"] for img in page.images["fakes"]]
    expected = [int(p.stem.split("-")[1]) for p in written[::-1][:MAX_GRIDS - 1] + written[:1]]
    assert shown[0] == f"{expected[0] / 1000:g} kimg (newest)"
    assert shown[1:] == [f"{images / 1000:g} kimg" for images in expected[1:]]
    assert page.count("reals") == len(reals(progan_run)) == 3  # one per resolution: 4, 8, 16
    assert "no evaluated metrics yet" in text
    assert page.count("plot") == 3


def test_report_of_an_old_run_and_of_a_run_in_progress(small_recipe, tmp_path):
    run_dir = train_small(small_recipe)
    finished = read_page(report(run_dir, tmp_path / "finished.html"))

    # From before rows had time, sec_per_kimg and peak_mem_mb, and before eval.jsonl.
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    lines = (old / "metrics.jsonl").read_text().splitlines()
    stripped = [{k: v for k, v in json.loads(line).items() if k not in ("time", "sec_per_kimg", "peak_mem_mb")}
                for line in lines]
    (old / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stripped))
    page = read_page(report(old))  # the default --out: RUN_DIR/report.html
    assert page.count("plot") == finished.count("plot") == 4  # D, G, speed, swd
    assert "from file times" in page.captions()
    # The speed plot without peak memory: two panels instead of three, sec/kimg from img/s.
    assert page.png("plot", 2).width < finished.png("plot", 2).width
    assert page.count("fakes") == finished.count("fakes") and page.count("reals") == 1

    # In progress: no snapshot yet, a half-written last line, a grid being written (a temporary).
    live = tmp_path / "live"
    shutil.copytree(run_dir, live)
    shutil.rmtree(live / "checkpoints")
    with open(live / "metrics.jsonl", "a") as handle:
        handle.write('{"kimg": 0.64, "step": 20, "img_per_s": 5')
    (live / "samples" / ".fakes-000000000640.png.tmp-4242").write_bytes(b"\x89PNG\r\n")
    page = read_page(report(live, tmp_path / "live.html"))
    text = page.captions()
    assert "- (none yet)" in text
    assert f"{stripped[-1]['kimg']:.3f} of 0.5" in text  # the partial row is left out
    assert page.count("plot") == 4 and page.count("fakes") == len(grids(live))


@pytest.mark.parametrize("case", ["missing", "empty", "a file"])
def test_report_needs_a_run_folder(tmp_path, case):
    target = tmp_path / "runs" / "nothing"
    if case == "empty":
        target.mkdir(parents=True)
    elif case == "a file":
        target.parent.mkdir(parents=True)
        target.write_text("not a run")
    result = ganzoo("report", str(target))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and "Traceback" not in result.stderr
    assert not (target / "report.html").exists()
