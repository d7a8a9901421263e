"""The command line as a newcomer meets it: it explains itself, finds shipped recipes, and hands a
trained model over (export, load_generator, --init-from, --resume SNAPSHOT)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import SMALL_RECIPE
from ganzoo.cli import build_parser
from ganzoo.engine import checkpoint
from ganzoo.recipe import shipped_recipes

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def ganzoo(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganzoo", *args], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=600)


def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subcommands(sub))


def test_every_argument_is_explained_with_its_default_and_every_command_has_an_example():
    commands = dict(_subcommands(build_parser()))
    assert {"run", "list", "init", "sample", "eval", "export", "data preview", "translate",
            "prepare", "report"} <= commands.keys()
    for name, parser in commands.items():
        if name == "data":
            continue
        assert "example:" in (parser.epilog or ""), f"`ganzoo {name}` has no example"
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"`ganzoo {name}` argument {action.dest} has no help"
        text = parser.format_help()
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS) \
                    and not isinstance(action, argparse._HelpAction):
                assert "default" in (action.help or "") or "(default:" in text, (name, action.dest)


def test_bare_ganzoo_and_bare_list_say_what_there_is():
    bare = ganzoo()
    assert bare.returncode == 0
    for command in ("run", "list", "sample", "eval", "export", "init", "translate", "prepare", "report"):
        assert command in bare.stdout
    listed = ganzoo("list")
    assert listed.returncode == 0
    for kind in ("plugins", "recipes", "losses", "datasets", "metrics"):
        assert kind in listed.stdout


def test_errors_have_one_format_whoever_raises_them(tmp_path):
    argparse_error = ganzoo("sample")  # a missing argument: argparse's own
    ours = ganzoo("run", str(tmp_path / "missing.toml"))  # a ganzoo UserError
    for result in (argparse_error, ours):
        assert result.returncode == 2
        assert result.stderr.startswith("ganzoo: error: ") and len(result.stderr.strip().splitlines()) == 1


def test_version_names_torch_cuda_and_the_plugins():
    result = ganzoo("--version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ganzoo ") and any(line.startswith("torch ") for line in lines)
    assert any("CUDA" in line for line in lines)
    assert {"plugin progan:", "plugin toyfaces:", "plugin metrics:"} <= {" ".join(line.split()[:2]) for line in lines}


def test_shipped_recipes_are_listed_found_by_name_and_copied_out(tmp_path):
    shipped = shipped_recipes()
    assert "progan_toyfaces" in shipped and all(summary for _, summary in shipped.values())
    listed = ganzoo("list", "recipes")
    assert all(name in listed.stdout for name in shipped)
    # a bare name works from any folder; a typo gets the close match
    result = ganzoo("data", "preview", "dcgan_toyfaces", "--n", "4", "--out", "reals.png",
                    "--set", "data.size=16", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "reals.png").exists()
    typo = ganzoo("run", "progan_toyface", cwd=tmp_path)
    assert typo.returncode == 2 and "did you mean the shipped 'progan_toyfaces'" in typo.stderr
    assert ganzoo("init", "wgan_toyfaces", cwd=tmp_path).returncode == 0
    copied = tmp_path / "wgan_toyfaces.toml"
    assert copied.read_text() == shipped["wgan_toyfaces"][0].read_text()
    again = ganzoo("init", "wgan_toyfaces", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    recipe = root / "small.toml"
    recipe.write_text(SMALL_RECIPE.format(out_dir=(root / "run").as_posix()))
    result = ganzoo("run", str(recipe))
    assert result.returncode == 0, result.stderr
    return root


def test_an_export_loads_in_a_fresh_interpreter_as_the_snapshot_samples(trained, tmp_path):
    out = tmp_path / "G.safetensors"
    result = ganzoo("export", str(trained / "run"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    exported = load_file(str(out))
    snapshot = checkpoint.Snapshot.read(checkpoint.list_snapshots(trained / "run" / "checkpoints")[-1])
    assert exported.keys() == snapshot.part("G_ema").keys()
    code = textwrap.dedent(f"""
        import torch, ganzoo
        for source in ({str(out)!r}, {str(trained / 'run')!r}):
            G = ganzoo.load_generator(source)
            assert isinstance(G, torch.nn.Module) and not G.training
            images = G.sample(6, seed=3)
            torch.save(images, source + ".pt" if source.endswith(".safetensors") else {str(tmp_path / 'snap.pt')!r})
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    from_export, from_snapshot = torch.load(str(out) + ".pt"), torch.load(tmp_path / "snap.pt")
    assert from_export.shape == (6, 3, 32, 32) and from_export.abs().max() <= 1
    assert torch.equal(from_export, from_snapshot)


def test_init_from_starts_a_new_run_from_another_runs_weights(trained, tmp_path):
    recipe = trained / "small.toml"
    new = tmp_path / "finetune"
    result = ganzoo("run", str(recipe), "--init-from", str(trained / "run"), "--set", "train.kimg=0.128",
                    "--set", f'run.out_dir="{new.as_posix()}"')
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (new / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["kimg"] <= 0.128 and rows[0]["step"] <= 4  # kimg and steps start afresh
    wider = ganzoo("run", str(recipe), "--init-from", str(trained / "run"), "--set", "model.base_channels=24",
                   "--set", f'run.out_dir="{(tmp_path / "wider").as_posix()}"')
    assert wider.returncode == 2 and "does not fit" in wider.stderr and "size mismatch" in wider.stderr
    assert len(wider.stderr.strip().splitlines()) == 1


def test_resume_from_a_named_snapshot(trained, tmp_path):
    snapshots = checkpoint.list_snapshots(trained / "run" / "checkpoints")
    assert len(snapshots) >= 2
    first, last = snapshots[0], snapshots[-1]
    again = tmp_path / "again"
    result = ganzoo("run", str(trained / "small.toml"), "--resume", str(first),
                    "--set", f'run.out_dir="{again.as_posix()}"')
    assert result.returncode == 0, result.stderr
    assert f"resuming from '{first}'" in result.stdout
    a, b = load_file(str(last)), load_file(str(checkpoint.list_snapshots(again / "checkpoints")[-1]))
    assert not [k for k in a if not torch.equal(a[k], b[k])]  # the same run, continued exactly


def test_a_longer_run_whose_lr_decay_ended_earlier_is_refused_and_the_hint_moves_the_decay(tmp_path):
    """stargan_toyfaces decays its lr to 0 at 48 kimg: raising train.kimg alone would train nothing
    after 48; the refusal names the fix, and the 'next:' line of a finished run applies it (and
    moves [ema] mean_from_kimg with it)."""
    common = ["--set", "data.size=64", "--set", f'run.out_dir="{tmp_path / "run"}"']
    longer = ganzoo("run", "stargan_toyfaces", "--set", "train.kimg=60", *common)
    assert longer.returncode == 2, longer.stderr
    assert "lr reaches 0 before train.kimg (60)" in longer.stderr
    assert "decay_end_kimg = 60" in longer.stderr and "Traceback" not in longer.stderr
    short = ganzoo("run", "stargan_toyfaces", "--set", "train.kimg=0.032", "--set", "schedule.decay_start_kimg=0.016",
                   "--set", "schedule.decay_end_kimg=0.032", "--set", "eval.metrics=[]",
                   "--set", "ema.mean_from_kimg=0.024", *common)
    assert short.returncode == 0, short.stderr
    assert ("--set train.kimg=0.064 --set schedule.decay_end_kimg=0.064 --set ema.mean_from_kimg=0.048"
            in short.stdout)  # and the running mean keeps its share of the run
