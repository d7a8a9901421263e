"""Snapshots and exact resume: a resumed CPU run ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ganzoo.cli import main
from ganzoo.engine import checkpoint


def run(recipe: Path, *args: str) -> int:
    return main(["run", str(recipe), *args])


def final_snapshot(out_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.list_snapshots(out_dir / "checkpoints")[-1]))


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"tensors differ after resume: {differing[:5]}"


def test_resume_from_mid_run_snapshot_is_bit_identical(small_recipe, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run(small_recipe, "--set", f'run.out_dir="{straight}"') == 0
    # Stop at the 0.25 kimg snapshot, as a preempted job would, then resume to the end.
    assert run(small_recipe, "--set", f'run.out_dir="{resumed}"', "--set", "train.kimg=0.25") == 0
    assert run(small_recipe, "--set", f'run.out_dir="{resumed}"', "--resume") == 0
    assert_identical(final_snapshot(straight), final_snapshot(resumed))
    # The logged losses agree too, and the metrics log has no duplicated intervals.
    lines = [json.loads(l) for l in (resumed / "metrics.jsonl").read_text().splitlines()]
    straight_lines = [json.loads(l) for l in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [l["kimg"] for l in lines] == [l["kimg"] for l in straight_lines]
    assert [l["G/nonsaturating"] for l in lines] == [l["G/nonsaturating"] for l in straight_lines]


def test_finished_run_extended_with_larger_kimg(small_recipe, tmp_path):
    straight, extended = tmp_path / "straight", tmp_path / "extended"
    assert run(small_recipe, "--set", f'run.out_dir="{straight}"', "--set", "train.kimg=0.75") == 0
    assert run(small_recipe, "--set", f'run.out_dir="{extended}"') == 0
    assert run(small_recipe, "--set", f'run.out_dir="{extended}"', "--set", "train.kimg=0.75",
               "--resume") == 0
    assert_identical(final_snapshot(straight), final_snapshot(extended))


def test_snapshot_holds_everything_the_design_names(small_recipe, tmp_path):
    assert run(small_recipe) == 0
    path = checkpoint.list_snapshots(tmp_path / "run" / "checkpoints")[-1]
    snapshot = checkpoint.Snapshot.read(path)
    tensors = snapshot.tensors
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    prefixes = {k.split("/")[0] for k in tensors}
    assert {"G", "D", "G_ema", "optim", "rng"} <= prefixes
    assert {"step", "kimg", "schedule", "recipe", "versions"} <= meta.keys()
    assert float(meta["kimg"]) >= 0.5
    assert "dcgan" in meta["recipe"]
    # The EMA generator is a different network from G after training (beta 0.9).
    g = snapshot.part("G")
    ema = snapshot.part("G_ema")
    assert any(not torch.equal(g[k], ema[k]) for k in g if g[k].is_floating_point())


def test_existing_run_is_not_overwritten_without_resume(small_recipe, tmp_path, capsys):
    assert run(small_recipe, "--set", "train.kimg=0.25") == 0
    snapshots = checkpoint.list_snapshots(tmp_path / "run" / "checkpoints")
    before = {p: p.read_bytes() for p in snapshots}
    capsys.readouterr()
    assert run(small_recipe) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in snapshots} == before


@pytest.mark.parametrize("damage", ["truncate", "foreign", "garbage"])
def test_unreadable_checkpoint_is_a_user_error(small_recipe, tmp_path, capsys, damage):
    assert run(small_recipe, "--set", "train.kimg=0.25") == 0
    path = checkpoint.list_snapshots(tmp_path / "run" / "checkpoints")[-1]
    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "foreign":
        save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    else:
        path.write_bytes(b"\x00not a checkpoint at all" * 10)
    capsys.readouterr()
    assert main(["sample", str(path), "--n", "4", "--out", str(tmp_path / "s.png")]) == 2
    assert run(small_recipe, "--resume") == 2
    err = capsys.readouterr().err
    assert str(path.name) in err and "Traceback" not in err
    assert len([l for l in err.strip().splitlines() if l.strip()]) == 2  # one line per command


def test_writes_are_atomic_no_temp_files_left(small_recipe, tmp_path):
    assert run(small_recipe) == 0
    leftovers = [p for p in (tmp_path / "run").rglob("*") if ".tmp" in p.name]
    assert leftovers == []
