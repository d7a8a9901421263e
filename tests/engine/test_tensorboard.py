"""[log] tensorboard = true: the event files hold every logged scalar and the sample grids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(small_recipe: Path, *code_before: str) -> subprocess.CompletedProcess:
    code = "; ".join([*code_before, "import sys", "from ganzoo.cli import main",
                      f"sys.exit(main(['run', {str(small_recipe)!r}, '--set', 'log.tensorboard=true']))"])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def test_event_files_hold_the_scalars_and_grids(small_recipe, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run(small_recipe)
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = {k for r in rows for k, v in r.items() if k != "kimg" and isinstance(v, (int, float))}
    assert logged <= set(events.Tags()["scalars"]), logged - set(events.Tags()["scalars"])
    totals = events.Scalars("D/total")
    assert [e.step for e in totals] == [round(r["kimg"] * 1000) for r in rows if "D/total" in r]
    assert [e.value for e in totals] == pytest.approx([r["D/total"] for r in rows if "D/total" in r], rel=1e-5)
    assert len(events.Images("samples")) == len(list((tmp_path / "run" / "samples").glob("fakes-*.png")))


def test_asked_for_but_not_installed_is_one_line(small_recipe, tmp_path):
    result = run(small_recipe, "import sys", "sys.modules['tensorboard'] = None")
    assert result.returncode == 2
    assert "ganzoo[tb]" in result.stderr and len(result.stderr.strip().splitlines()) == 1
