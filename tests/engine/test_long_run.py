"""The week-long run's safety: signals, divergence, one run per folder, faults while writing.

Real subprocesses and real signals, as a user's scheduler sends them."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ganzoo as api
from ganzoo.engine import checkpoint
from ganzoo.engine.trainer import Trainer
from ganzoo.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
PROGAN = ROOT / "recipes" / "progan_toyfaces.toml"
PHASE = 0.48  # kimg per stabilize / fade phase: long enough to catch a fade mid-way
# progan_toyfaces with widths, latent size and lengths shrunk (batch sizes and groups as shipped)
TINY = ["--set", 'run.device="cpu"', "--set", "data.resolution=16", "--set", "data.size=256",
        "--set", "model.latent_dim=8", "--set", "model.fmap_base=32", "--set", "model.fmap_max=8",
        "--set", f"schedule.stabilize_kimg={PHASE}", "--set", f"schedule.fade_kimg={PHASE}",
        "--set", f"train.kimg={PHASE * 4}", "--set", "train.log_kimg=0.016",
        "--set", "train.sample_kimg=100", "--set", "train.snapshot_kimg=100",
        "--set", "train.sample_grid=4", "--set", "train.keep_snapshots=0", "--set", "eval.metrics=[]"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def ganzoo(*args: str, cwd: Path = ROOT, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ganzoo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=cwd, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def progan(out_dir: Path, *args: str) -> subprocess.Popen:
    return ganzoo("run", str(PROGAN), *TINY, "--set", f'run.out_dir="{out_dir.as_posix()}"', *args)


def rows(out_dir: Path) -> list[dict]:
    path = out_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def newest(out_dir: Path) -> Path:
    return checkpoint.list_snapshots(out_dir / "checkpoints")[-1]


def wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before the moment the test waits for"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    code, _, err = finish(progan(out))
    assert code == 0, err
    return out


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_fade_saves_and_resumes_exactly(straight, tmp_path, sig, code):
    out = tmp_path / "run"
    proc = progan(out)
    wait_for(lambda: any(r.get("resolution") == 8 and 0 < r.get("alpha", 1) < 0.5 for r in rows(out)), proc)
    proc.send_signal(sig)
    returncode, _, err = finish(proc)
    assert returncode == code, err
    assert "--resume" in err and "snapshot" in err
    snapshot = checkpoint.Snapshot.read(newest(out))
    assert snapshot.growth["resolution"] == 8 and 0 < snapshot.growth["alpha"] < 1  # mid-fade
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    returncode, _, err = finish(progan(out, "--resume"))
    assert returncode == 0, err
    a, b = load_file(str(newest(straight))), load_file(str(newest(out)))
    assert a.keys() == b.keys()
    assert not [k for k in a if not torch.equal(a[k], b[k])], "resumed run differs from the straight one"


def test_divergence_stops_with_the_last_good_snapshot_intact(small_recipe, tmp_path):
    out = tmp_path / "run"
    code, _, err = finish(ganzoo("run", str(small_recipe), "--set", "train.kimg=0.25"))
    assert code == 0, err
    good = newest(out)
    good_bytes = good.read_bytes()
    # A learning rate this large sends the weights to inf/nan within a few steps.
    code, _, err = finish(ganzoo("run", str(small_recipe), "--resume", "--resume-anyway",
                                 "--set", "train.kimg=1", "--set", "optim.generator.lr=1e30",
                                 "--set", "optim.discriminator.lr=1e30", "--set", "train.keep_snapshots=1"))
    assert code == 2, err
    assert "diverged" in err and "not finite" in err and good.name in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert checkpoint.list_snapshots(out / "checkpoints") == [good]  # nothing newer, nothing deleted
    assert good.read_bytes() == good_bytes
    for line in (out / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_two_runs_on_one_folder(small_recipe, tmp_path):
    first = ganzoo("run", str(small_recipe), "--set", "train.kimg=20")
    wait_for(lambda: rows(tmp_path / "run"), first)
    code, _, err = finish(ganzoo("run", str(small_recipe), "--resume"))
    assert code == 2 and "in use by another ganzoo run" in err and f"pid {first.pid}" in err
    first.kill()  # kill -9: the lock dies with its holder
    first.wait()
    code, _, err = finish(ganzoo("run", str(small_recipe), "--resume", "--set", "train.kimg=0.25"))
    assert code == 0, err


def test_kill_during_snapshot_writes_never_breaks_resume(small_recipe, tmp_path):
    out = tmp_path / "run"
    args = ["--set", "train.snapshot_kimg=0.032", "--set", "train.log_kimg=0.032", "--set", "train.kimg=50"]
    for attempt in range(4):
        proc = ganzoo("run", str(small_recipe), "--resume", *args)
        before = len(checkpoint.list_snapshots(out / "checkpoints"))
        wait_for(lambda: len(checkpoint.list_snapshots(out / "checkpoints")) > before, proc)
        time.sleep(0.05 * attempt)  # somewhere in or between snapshot writes
        proc.kill()
        proc.wait()
    code, _, err = finish(ganzoo("run", str(small_recipe), "--resume", *args[:-2], "--set", "train.kimg=0.5"))
    assert code == 0, err
    assert not [p for p in (out / "checkpoints").iterdir() if not checkpoint.NAME.match(p.name)]
    for line in (out / "metrics.jsonl").read_text().splitlines():
        json.loads(line)


def test_a_partial_metrics_line_is_dropped_on_resume(small_recipe, tmp_path):
    out = tmp_path / "run"
    assert finish(ganzoo("run", str(small_recipe), "--set", "train.kimg=0.25"))[0] == 0
    with open(out / "metrics.jsonl", "a") as handle:
        handle.write('{"kimg": 0.3, "D/tot')  # what a full disk leaves
    code, _, err = finish(ganzoo("run", str(small_recipe), "--resume"))
    assert code == 0, err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["kimg"] == pytest.approx(0.5, abs=0.032)  # 0.5 kimg in batches of 32


def test_a_fresh_run_sets_an_old_log_aside(small_recipe, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"kimg": 9.0}\n')  # a run killed before its first snapshot
    assert finish(ganzoo("run", str(small_recipe), "--set", "train.kimg=0.128"))[0] == 0
    assert all(r["kimg"] <= 0.128 for r in rows(out))
    assert [json.loads(p.read_text()) for p in out.glob("metrics.before-*.jsonl")] == [{"kimg": 9.0}]


def test_files_follow_the_umask(small_recipe, tmp_path):
    proc = ganzoo("run", str(small_recipe), "--set", "train.kimg=0.25",
                  preexec_fn=lambda: os.umask(0o022))
    assert finish(proc)[0] == 0
    for path in [newest(tmp_path / "run"), tmp_path / "run" / "recipe.toml",
                 *(tmp_path / "run" / "samples").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_a_batch_log_tells_the_story(small_recipe, tmp_path):
    code, out, err = finish(ganzoo("run", str(small_recipe)))  # stdout is a pipe, not a terminal
    assert code == 0, err
    lines = out.splitlines()
    assert "starting a new run" in lines[0]
    assert any("parameters" in line and "G " in line for line in lines)
    interval = [line for line in lines if line.startswith("kimg ")]
    assert len(interval) == len([r for r in rows(tmp_path / "run") if "D/total" in r]) >= 3
    for line in interval:
        for part in ("/0.5", "s/kimg", "img/s", "eta", "mem", "D/total"):
            assert part in line, line
    assert any(line.startswith("done:") for line in lines)
    assert any("last snapshot" in line for line in lines) and any("--resume" in line for line in lines)
    record = rows(tmp_path / "run")[-1]
    assert {"time", "sec_per_kimg", "peak_mem_mb"} <= record.keys() and record["peak_mem_mb"] > 0


def test_resume_refuses_a_changed_recipe(small_recipe, tmp_path):
    assert finish(ganzoo("run", str(small_recipe), "--set", "train.kimg=0.25"))[0] == 0
    recipe_before = (tmp_path / "run" / "recipe.toml").read_text()
    code, _, err = finish(ganzoo("run", str(small_recipe), "--resume", "--set", 'optim.generator.name="rmsprop"',
                                 "--set", "run.seed=5"))
    assert code == 2 and "optim.generator.name" in err and "run.seed" in err and "--resume-anyway" in err
    assert (tmp_path / "run" / "recipe.toml").read_text() == recipe_before  # written only after the check
    code, _, err = finish(ganzoo("run", str(small_recipe), "--resume", "--set", "train.kimg=0.5"))
    assert code == 0, err  # a longer run is fine


@pytest.mark.parametrize("damage, message", [
    (lambda meta, t: meta.pop("schedule"), "lacks its 'schedule' field"),
    (lambda meta, t: meta.update(cursor="[1,"), "'cursor' field is not valid JSON"),
    (lambda meta, t: t.update({k: v.long() for k, v in t.items() if k.startswith("G_ema/")}), "expected a float type"),
])
def test_damaged_snapshots_are_refused_by_name(small_recipe, tmp_path, damage, message):
    assert finish(ganzoo("run", str(small_recipe), "--set", "train.kimg=0.25"))[0] == 0
    path = newest(tmp_path / "run")
    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
    tensors = load_file(str(path))
    damage(meta, tensors)
    save_file(tensors, str(path), metadata=meta)
    for args in (["run", str(small_recipe), "--resume", "--set", "train.kimg=0.5"],
                 ["sample", str(path), "--n", "4", "--out", str(tmp_path / "s.png")]):
        code, _, err = finish(ganzoo(*args))
        assert code == 2 and message in err and "Traceback" not in err, err


def test_sample_accepts_a_run_folder_and_refuses_bad_outputs(small_recipe, tmp_path):
    assert finish(ganzoo("run", str(small_recipe), "--set", "train.kimg=0.25"))[0] == 0
    folder = tmp_path / "out"
    code, _, err = finish(ganzoo("sample", str(tmp_path / "run"), "--n", "5", "--out", str(folder)))
    assert code == 0, err
    assert len(list(folder.glob("*.png"))) == 5
    existing = tmp_path / "file.txt"
    existing.write_text("keep me")
    code, _, err = finish(ganzoo("sample", str(tmp_path / "run"), "--n", "2", "--out", str(existing)))
    assert code == 2 and "existing file" in err and existing.read_text() == "keep me"
    code, _, err = finish(ganzoo("sample", str(tmp_path / "run"), "--n", "2", "--attr", "smiling=1",
                                 "--out", str(tmp_path / "x.png")))
    assert code == 2 and "unconditional" in err


def test_nonfinite_steps_are_skipped_up_to_the_allowance(small_recipe, tmp_path):
    recipe = load_recipe(small_recipe, ["train.kimg=0.128", "train.skip_nonfinite_steps=2"])
    trainer = Trainer(recipe)
    before = [p.detach().clone() for p in trainer.G.parameters()]
    for p in trainer.G.parameters():
        p.register_hook(lambda g: torch.full_like(g, float("nan")))  # every G gradient is NaN
    state = trainer._apply_schedule()
    trainer.train_iteration(state)
    trainer.train_iteration(state)
    assert trainer.skipped_steps == 2
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.G.parameters()))  # nothing applied
    with pytest.raises(api.UserError, match="3 optimizer steps with non-finite G gradients"):
        trainer.train_iteration(state)


class _BadLoss:
    def __init__(self, kind: str = "float"):
        self.kind = kind

    def discriminator_loss(self, ctx):
        if self.kind == "float":
            return 0.5
        if self.kind == "vector":
            return ctx.real_scores
        return ctx.real_scores.mean().detach()


@pytest.mark.parametrize("kind, message", [("float", "got a float"), ("vector", r"shape \(32,\)"),
                                           ("nograd", "without grad")])
def test_a_loss_breaking_the_contract_is_named(small_recipe, tmp_path, fresh_plugins, kind, message):
    module = type(sys)("bad_loss_plugin")
    module.ganzoo_register_losses = api.hookimpl(lambda register: register("bad_loss", _BadLoss))
    api.plugins.state().add_plugin("bad_loss_plugin", module)
    recipe = load_recipe(small_recipe, ["losses.0.name=\"bad_loss\"", f'losses.0.kind="{kind}"'])
    trainer = Trainer(recipe)
    with pytest.raises(api.UserError, match=f"loss 'bad_loss'.*scalar tensor that requires grad.*{message}"):
        trainer.train_iteration(trainer._apply_schedule())


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))


def test_a_full_disk_while_writing_a_snapshot_loses_nothing(small_recipe, tmp_path):
    out = tmp_path / "run"
    assert finish(ganzoo("run", str(small_recipe), "--set", "train.kimg=0.25"))[0] == 0
    good = newest(out)
    good_bytes, log_before = good.read_bytes(), (out / "metrics.jsonl").read_text()
    code, _, err = finish(ganzoo("run", str(small_recipe), "--resume", "--set", "train.kimg=0.5",
                                 preexec_fn=_limit_file_size))
    assert code == 2 and "cannot write snapshot" in err and "intact" in err, err
    assert len(err.strip().splitlines()) == 1
    assert checkpoint.list_snapshots(out / "checkpoints") == [good] and good.read_bytes() == good_bytes
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert (out / "metrics.jsonl").read_text().startswith(log_before)
    assert finish(ganzoo("run", str(small_recipe), "--resume", "--set", "train.kimg=0.5"))[0] == 0


@pytest.mark.parametrize("setting, message", [
    ('run.out_dir=""', "run.out_dir is empty"),
    ("file", "is a file"),
    ("under_a_file", "not a writable folder"),
])
def test_bad_out_dirs_are_one_line(small_recipe, tmp_path, setting, message):
    if setting == "file":
        (tmp_path / "f").write_text("x")
        setting = f'run.out_dir="{(tmp_path / "f").as_posix()}"'
    elif setting == "under_a_file":  # no folder can be made there, not even by root
        (tmp_path / "f").write_text("x")
        setting = f'run.out_dir="{(tmp_path / "f" / "run").as_posix()}"'
    code, _, err = finish(ganzoo("run", str(small_recipe), "--set", setting, cwd=tmp_path))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("metrics.jsonl")) and not (tmp_path / "checkpoints").exists()
