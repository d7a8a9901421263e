"""The plugin contract checks itself.

Meta-tests over `ganzoo.hookspecs`: every hook is a kind's hook or the commands hook, is
documented in the README's "Writing a plugin" section, and has a test-defined implementation
under tests/. Then a test plugin, installed the way pip would and run through real `ganzoo`
processes, implements the hooks no family test exercises (normalizers, schedules, datasets,
commands) and checks that each of its parts does what the contract says.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors
from PIL import Image

from ganzoo import hookspecs
from ganzoo.registry import EXPECTED

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, fn in vars(hookspecs).items()
               if name.startswith(hookspecs.PROJECT + "_")
               and hasattr(fn, hookspecs.PROJECT + "_spec"))  # what @hookspec marks


def readme_plugin_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Writing a plugin\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_the_hooks_are_the_kinds_and_the_commands():
    assert HOOKS, "no hookspec found in ganzoo.hookspecs"
    assert set(HOOKS) == set(hookspecs.HOOKS.values()) | {hookspecs.COMMANDS_HOOK}
    assert hookspecs.KINDS == tuple(hookspecs.HOOKS)
    assert set(EXPECTED) == set(hookspecs.KINDS), "every kind has its registration check"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_states_its_contract(hook):
    doc = getattr(hookspecs, hook).__doc__ or ""
    assert len(doc.split()) >= 10, f"{hook}'s docstring is the contract text; it says too little"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_in_the_readme(hook):
    assert f"`{hook}" in readme_plugin_section(), f"README 'Writing a plugin' does not document {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_defined_implementation(hook):
    here = Path(__file__).resolve().parent
    users = [p.relative_to(here).as_posix() for p in sorted(here.rglob("*.py"))
             if f"def {hook}(" in p.read_text(encoding="utf-8")]
    assert users, f"no test under tests/ implements {hook}"


# --- a test plugin for the kinds no family test implements ---------------------------------------

PROBE = '''
import ganzoo
import torch
from torch import nn


class MarkedNorm(nn.Module):
    """Identity normalization that leaves a marker buffer in every checkpoint."""

    def __init__(self, num_features: int):
        super().__init__()
        self.register_buffer("contract_marker", torch.full((num_features,), 7.0))

    def forward(self, x):
        return x


class HalfSpeed:
    """No growth, at a smaller batch and half the learning rate."""

    def __init__(self, *, resolution: int, train_batch_size: int, batch_size: int = 16,
                 lr_scale: float = 0.5):
        self._state = ganzoo.GrowthState(resolution=resolution, batch_size=batch_size,
                                         lr_scale=lr_scale)

    def state(self, kimg: float) -> ganzoo.GrowthState:
        return self._state


class Solid(ganzoo.ImageDataset):
    """Solid-colour images: every pixel of every image is `value`."""

    def __init__(self, *, resolution: int, size: int = 64, value: int = 77):
        self.resolution, self.size, self.value = resolution, size, value

    def __len__(self):
        return self.size

    def load(self, index):
        image = torch.full((3, self.resolution, self.resolution), self.value, dtype=torch.uint8)
        return image, torch.zeros(0)


def echo(args):
    if not args.text:
        raise ganzoo.UserError("contract-echo: TEXT must not be empty; pass some text")
    ganzoo.files.write_text(args.out, args.text * args.times)


@ganzoo.hookimpl
def ganzoo_register_normalizers(register):
    register("contract_marked", MarkedNorm)


@ganzoo.hookimpl
def ganzoo_register_schedules(register):
    register("contract_half", HalfSpeed)


@ganzoo.hookimpl
def ganzoo_register_datasets(register):
    register("contract_solid", Solid)


@ganzoo.hookimpl
def ganzoo_register_commands(subparsers):
    parser = subparsers.add_parser("contract-echo", help="write TEXT to a file, a test command")
    parser.add_argument("text")
    parser.add_argument("--out", required=True)
    parser.add_argument("--times", type=int, default=1)
    parser.set_defaults(handler=echo)
'''

RECIPE = """
[run]
out_dir = "{out_dir}"
seed = 0
device = "cpu"

[data]
dataset = "contract_solid"
resolution = 32
size = 64
value = {value}

[model]
name = "dcgan"
latent_dim = 16
base_channels = 16
normalizer = "contract_marked"

[[losses]]
name = "nonsaturating"

[optim.generator]
lr = 2e-4
betas = [0.5, 0.999]

[optim.discriminator]
lr = 2e-4
betas = [0.5, 0.999]

[schedule]
name = "contract_half"

[train]
kimg = 0.096
batch_size = 32
log_kimg = 0.032
sample_kimg = 0.096
snapshot_kimg = 0.096
sample_grid = 4
keep_snapshots = 0
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict:
    """The probe plugin, installed-looking (module + dist-info) in a folder on PYTHONPATH."""
    site = tmp_path_factory.mktemp("probe_site")
    (site / "ganzoo_contract_probe").mkdir()
    (site / "ganzoo_contract_probe" / "__init__.py").write_text(PROBE, encoding="utf-8")
    dist = site / "ganzoo_contract_probe-0.2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ganzoo_contract_probe\nVersion: 0.2.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[ganzoo]\ncontract_probe = ganzoo_contract_probe\n",
                                           encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if k != "GANZOO_DISABLE_PLUGINS"}
    environ["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    environ["OMP_NUM_THREADS"] = "1"
    return environ


def ganzoo(env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganzoo", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_probe_plugin_is_listed_with_every_part(probe, tmp_path):
    result = ganzoo(probe, "list", "plugins", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "contract_probe" in line)
    assert "ok" in row and "ganzoo_contract_probe 0.2.0" in row, row
    for part in ("1 normalizer,", "1 schedule,", "1 dataset,", "1 command"):  # singular for one
        assert part in row, f"{part!r} missing from: {row}"


def test_plugin_command_is_listed_and_runs(probe, tmp_path):
    result = ganzoo(probe, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "contract-echo" in result.stdout and "a test command" in result.stdout

    out = tmp_path / "echo.txt"
    result = ganzoo(probe, "contract-echo", "ab", "--times", "3", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_text(encoding="utf-8") == "ababab"

    # The handler's UserError is the CLI's exit 2 with one line, like any core command's.
    result = ganzoo(probe, "contract-echo", "", "--out", str(tmp_path / "empty.txt"), cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "TEXT must not be empty" in lines[0], result.stderr
    assert not (tmp_path / "empty.txt").exists()


def test_plugin_dataset_feeds_the_images_it_makes(probe, tmp_path):
    recipe = tmp_path / "probe.toml"
    recipe.write_text(RECIPE.format(out_dir=(tmp_path / "run").as_posix(), value=123))
    out = tmp_path / "preview"
    result = ganzoo(probe, "data", "preview", str(recipe), "--n", "3", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.png"))
    assert len(files) == 3
    for path in files:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        assert pixels.shape == (32, 32, 3)
        assert (pixels == 123).all(), f"{path.name}: {np.unique(pixels)}"


def test_plugin_normalizer_schedule_and_dataset_train_in_a_recipe(probe, tmp_path):
    recipe = tmp_path / "probe.toml"
    recipe.write_text(RECIPE.format(out_dir=(tmp_path / "run").as_posix(), value=77))
    result = ganzoo(probe, "run", str(recipe), cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    records = [json.loads(line) for line in
               (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records and records[-1]["kimg"] == pytest.approx(0.096)
    # The schedule's state, not [train], sets the batch and scales the learning rates.
    assert {r["batch_size"] for r in records} == {16}
    for r in records:
        assert r["lr_G"] == pytest.approx(0.5 * 2e-4) and r["lr_D"] == pytest.approx(0.5 * 2e-4)
        assert math.isfinite(r["D/nonsaturating"]) and math.isfinite(r["G/nonsaturating"])
    assert records[-1]["step"] == 96 // 16

    # The normalizer is in both networks: its marker buffer is in the snapshot.
    snapshots = sorted((tmp_path / "run" / "checkpoints").glob("*.safetensors"))
    assert snapshots
    with safetensors.safe_open(str(snapshots[-1]), framework="pt") as handle:
        markers = {key: handle.get_tensor(key) for key in handle.keys() if key.endswith("contract_marker")}
    networks = {key.split(".")[0] for key in markers}
    assert len(networks) >= 2, f"marker buffers only in {sorted(markers)}"
    assert all((value == 7.0).all() for value in markers.values())
