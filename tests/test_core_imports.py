"""The import boundaries. The core stands alone: it works with every first-party plugin disabled
and never imports one. Plugins use only the public API (`import ganzoo`, then `ganzoo.X` for X in
`ganzoo.__all__`) and reach other plugins only through the registries."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import ganzoo

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "ganzoo"
PLUGIN_PREFIX = "ganzoo_"


def first_party_plugins() -> dict[str, str]:
    """Entry-point name -> module, as pyproject.toml declares them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return dict(project["entry-points"]["ganzoo"])


def test_every_first_party_plugin_is_declared():
    declared = first_party_plugins()
    assert "dcgan" in declared
    packages = {p.name for p in (ROOT / "plugins").iterdir() if p.name.startswith(PLUGIN_PREFIX)
                and (p / "__init__.py").exists()}
    declared_packages = {module.split(".")[0].split(":")[0] for module in declared.values()}
    assert packages <= declared_packages, f"plugin packages without an entry point: {packages - declared_packages}"


def test_core_works_with_every_first_party_plugin_disabled():
    plugins = first_party_plugins()
    code = textwrap.dedent("""
        import json, sys
        import ganzoo
        out = {kind: [[e.name, e.plugin] for e in ganzoo.registry(kind).entries()]
               for kind in ("blocks", "losses", "normalizers", "schedules", "models",
                            "datasets", "metrics")}
        out["losses_names"] = ganzoo.registry("losses").names()
        out["status"] = {p.name: p.status for p in ganzoo.plugins.plugins()}
        out["imported"] = sorted(m for m in sys.modules if m.startswith("ganzoo_"))
        print(json.dumps(out))
    """)
    env = dict(os.environ, GANZOO_DISABLE_PLUGINS=",".join(plugins))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])

    assert isinstance(out["losses_names"], list)
    assert "bce" not in out["losses_names"] and "nonsaturating" not in out["losses_names"]
    for kind, entries in out.items():
        if kind in ("losses_names", "status", "imported"):
            continue
        owners = {plugin for _, plugin in entries}
        assert not owners & set(plugins), f"{kind} has entries from disabled plugins: {entries}"
    for name in plugins:
        assert out["status"][name] == "disabled"
    assert out["imported"] == [], f"disabled plugin packages were imported: {out['imported']}"


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


CORE_FILES = sorted(CORE.rglob("*.py"))


def test_there_is_a_core_to_check():
    names = {p.relative_to(CORE).as_posix() for p in CORE_FILES}
    assert {"__init__.py", "plugins.py", "registry.py", "recipe.py"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_core_module_imports_no_plugin_package(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    offenders = [(line, module) for line, module in _imported_modules(tree)
                 if module.split(".")[0].startswith(PLUGIN_PREFIX)]
    assert not offenders, f"{path.relative_to(ROOT)} imports plugin packages: {offenders}"


def test_static_check_catches_plugin_imports():
    # The checker itself must see every spelling of an import.
    source = textwrap.dedent("""
        import ganzoo_dcgan
        from ganzoo_progan.layers import x
        import os, ganzoo_wgan.plugin as w
        importlib.import_module("ganzoo_stargan")
        def f():
            from ganzoo_dcgan import models
        from . import sibling
        from ganzoo import registry
    """)
    modules = [m for _, m in _imported_modules(ast.parse(source))]
    flagged = [m for m in modules if m.split(".")[0].startswith(PLUGIN_PREFIX)]
    assert sorted(flagged) == sorted(["ganzoo_dcgan", "ganzoo_progan.layers", "ganzoo_wgan.plugin",
                                      "ganzoo_stargan", "ganzoo_dcgan"])
    assert "ganzoo" in modules and "os" in modules


# --- plugins import only the public API ---------------------------------------------------------

PLUGINS = ROOT / "plugins"
PLUGIN_FILES = sorted(PLUGINS.glob(f"{PLUGIN_PREFIX}*/**/*.py"))
PUBLIC = set(ganzoo.__all__)


def _non_public_uses(tree: ast.AST, own_package: str) -> list[tuple[int, str]]:
    """Every use of ganzoo beyond its public API, and every import of another plugin package."""
    found = []
    for line, module in _imported_modules(tree):
        top = module.split(".")[0]
        if module.startswith("ganzoo."):
            found.append((line, f"imports non-public module {module}"))
        elif top.startswith(PLUGIN_PREFIX) and top != own_package:
            found.append((line, f"imports another plugin's package {module} (use the registries)"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "ganzoo":
            found += [(node.lineno, f"imports ganzoo.{a.name}, not in ganzoo.__all__")
                      for a in node.names if a.name not in PUBLIC]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "ganzoo" and node.attr not in PUBLIC:
            found.append((node.lineno, f"uses ganzoo.{node.attr}, not in ganzoo.__all__"))
    return sorted(set(found))


def test_there_are_plugins_to_check():
    packages = {p.relative_to(PLUGINS).parts[0] for p in PLUGIN_FILES}
    assert {"ganzoo_dcgan", "ganzoo_progan", "ganzoo_stargan", "ganzoo_wgan"} <= packages


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_plugin_module_uses_only_the_public_api(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    offenders = _non_public_uses(tree, path.relative_to(PLUGINS).parts[0])
    assert not offenders, f"{path.relative_to(ROOT)}: " + "; ".join(
        f"line {line} {what}" for line, what in offenders)


def test_public_api_check_catches_every_spelling():
    source = textwrap.dedent("""
        import ganzoo
        import ganzoo.engine.schedule
        from ganzoo.data.image_folder import read_image
        from ganzoo import data, UserError, hookimpl
        import ganzoo_dcgan.models
        from ganzoo_mine.layers import x
        from . import sibling
        importlib.import_module("ganzoo.recipe")
        def f():
            from ganzoo_wgan import losses
            return ganzoo.engine.build, ganzoo.UserError, ganzoo.checks.at_least
    """)
    found = _non_public_uses(ast.parse(source), "ganzoo_mine")
    flagged = [what for _, what in found]
    assert flagged == [
        "imports non-public module ganzoo.engine.schedule",
        "imports non-public module ganzoo.data.image_folder",
        "imports ganzoo.data, not in ganzoo.__all__",
        "imports another plugin's package ganzoo_dcgan.models (use the registries)",
        "imports non-public module ganzoo.recipe",
        "imports another plugin's package ganzoo_wgan (use the registries)",
        "uses ganzoo.engine, not in ganzoo.__all__",
    ], found
    assert [line for line, _ in found] == [3, 4, 5, 6, 9, 11, 12]


OPTIONAL_IMPORTS = {"torch.utils.tensorboard"}  # imported only when a recipe asks for it ([log])


def test_the_core_hides_no_import_circle_in_a_function():
    """Every import in ganzoo/ is at module level, so an import circle could not hide in a
    function body; only optional dependencies are imported where they are used."""
    found = []
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and inner.module not in OPTIONAL_IMPORTS:
                        found.append(f"{path.relative_to(ROOT)}:{inner.lineno} from {inner.module}")
                    elif isinstance(inner, ast.Import):
                        found.append(f"{path.relative_to(ROOT)}:{inner.lineno} import "
                                     + ", ".join(a.name for a in inner.names))
    assert not found, found
