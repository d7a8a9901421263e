"""Shared fixtures: an isolated data cache, and small recipes that train in seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ganzoo.plugins

SMALL_RECIPE = """
[run]
out_dir = "{out_dir}"
seed = 0
device = "cpu"

[data]
dataset = "toyfaces"
resolution = 32
size = 256
mirror = true

[model]
name = "dcgan"
latent_dim = 16
base_channels = 16

[[losses]]
name = "nonsaturating"

[optim.generator]
lr = 2e-4
betas = [0.5, 0.999]

[optim.discriminator]
lr = 2e-4
betas = [0.5, 0.999]

[train]
kimg = 0.5
batch_size = 32
log_kimg = 0.128
sample_kimg = 0.25
snapshot_kimg = 0.25
sample_grid = 16
keep_snapshots = 0

[ema]
beta = 0.9
"""


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Rendered datasets are cached under a temporary folder, never the user's home."""
    os.environ["GANZOO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture
def fresh_plugins():
    """Forget loaded plugins before and after a test that changes what is discoverable."""
    ganzoo.plugins.reset()
    yield
    ganzoo.plugins.reset()


@pytest.fixture
def small_recipe(tmp_path) -> Path:
    """A DCGAN recipe on 256 toyfaces at 32x32 that runs 0.5 kimg in a few seconds."""
    path = tmp_path / "small.toml"
    path.write_text(SMALL_RECIPE.format(out_dir=(tmp_path / "run").as_posix()))
    return path


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors gain nothing from intra-op threads, and on a busy machine OpenMP's hand-offs
    can make each op many times slower. Modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_thread")`; the setting is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
