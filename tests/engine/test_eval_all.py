"""`ganzoo eval RUN_DIR --metric M --all`: every snapshot once into RUN_DIR/eval.jsonl, and a
second call skips the snapshots already evaluated (real subprocesses, as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ganzoo.cli import main

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="1000")  # a wide table, less title wrapping


def ganzoo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganzoo", *args], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=600)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_all_writes_a_row_per_snapshot_and_skips_them_next_time(small_recipe, tmp_path):
    # 15 steps of 32 images, a snapshot every 5: at 0.16, 0.32 and 0.48 kimg (the last is the end).
    assert main(["run", str(small_recipe), "--set", "train.kimg=0.48",
                 "--set", "train.snapshot_kimg=0.16"]) == 0
    run = tmp_path / "run"
    snapshots = sorted(p.name for p in (run / "checkpoints").glob("*.safetensors"))
    assert len(snapshots) == 3
    args = ["eval", str(run), "--metric", "toyfaces_fid", "--all", "--num-images", "32",
            "--device", "cpu"]

    first = ganzoo(*args, "--json")
    assert first.returncode == 0, first.stderr
    log = run / "eval.jsonl"
    written = rows(log)
    assert sorted(r["snapshot"] for r in written) == snapshots
    assert sorted(r["kimg"] for r in written) == [0.16, 0.32, 0.48]
    for row in written:
        assert row["toyfaces_fid/fid"] > row["toyfaces_fid/floor"] > 0
    assert json.loads(first.stdout) == written  # --json prints the rows of this run's snapshots
    before = (log.read_bytes(), log.stat().st_mtime_ns)

    second = ganzoo(*args)
    assert second.returncode == 0, second.stderr
    assert "3 snapshots, 0 evaluated now" in " ".join(second.stdout.split())
    assert (log.read_bytes(), log.stat().st_mtime_ns) == before  # nothing written
    assert len(rows(log)) == 3

    # Another metric is new for every snapshot: evaluated, beside the rows already there.
    third = ganzoo(*args[:3], "swd", *args[4:])
    assert third.returncode == 0, third.stderr
    assert "3 snapshots, 3 evaluated now" in " ".join(third.stdout.split())
    assert len(rows(log)) == 6 and rows(log)[:3] == written
    # Both metrics now done: nothing evaluated, one row per snapshot holding both.
    both = ganzoo(*args[:4], "--metric", "swd", *args[4:], "--json")
    assert both.returncode == 0, both.stderr
    merged = json.loads(both.stdout)
    assert len(rows(log)) == 6 and sorted(r["snapshot"] for r in merged) == snapshots
    for row in merged:
        assert "toyfaces_fid/fid" in row and any(key.startswith("swd/") for key in row)
