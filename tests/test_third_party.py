"""A third-party loss package, installed with pip, is discovered and trains in a DCGAN recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "ganzoo-lsgan-example"
        version = "0.3.0"

        [project.entry-points.ganzoo]
        lsgan_example = "lsgan_example.plugin"

        [tool.setuptools]
        packages = ["lsgan_example"]
    """,
    "lsgan_example/__init__.py": "",
    "lsgan_example/plugin.py": """
        import ganzoo

        class LeastSquares:
            \"\"\"LSGAN, as a plugin.\"\"\"
            def __init__(self, target: float = 1.0):
                self.target = target
            def discriminator_loss(self, ctx):
                return ((ctx.real_scores - self.target) ** 2).mean() + (ctx.fake_scores ** 2).mean()
            def generator_loss(self, ctx):
                return ((ctx.fake_scores - self.target) ** 2).mean()

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            register("my_least_squares", LeastSquares, summary="LSGAN, as a plugin")
    """,
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("thirdparty")
    source, site = root / "src", root / "site"
    for name, text in PACKAGE.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(source)],
                   check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return env


def ganzoo(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganzoo", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_listed_with_its_distribution(installed):
    result = ganzoo(installed, "list", "losses")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "my_least_squares" in line)
    assert "lsgan_example" in row and "ganzoo-lsgan-example" in row
    plugins = ganzoo(installed, "list", "plugins").stdout
    assert "ganzoo-lsgan-example 0.3.0" in plugins
    row = next(line for line in plugins.splitlines() if "ganzoo-lsgan-example" in line)
    assert "1 loss" in row and "1 losses" not in row and "1 losse " not in row  # singular for one


def test_trains_in_a_dcgan_recipe(installed, small_recipe, tmp_path):
    result = ganzoo(installed, "run", str(small_recipe), "--set", 'losses.0.name="my_least_squares"',
                    "--set", "losses.0.target=0.9", "--set", "train.kimg=0.25")
    assert result.returncode == 0, result.stderr
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("D/my_least_squares" in r and "G/my_least_squares" in r for r in records)
    resolved = (tmp_path / "run" / "recipe.toml").read_text()
    assert 'name = "my_least_squares"' in resolved and "target = 0.9" in resolved
