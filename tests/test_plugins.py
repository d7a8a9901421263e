"""Plugin discovery and registries, exercised the way a third party would: through entry points.

Every temporary plugin is a real installed-looking package: an importable module next to a
`*.dist-info` folder whose `entry_points.txt` declares it in group "ganzoo". The folder is put
on `sys.path`, so `importlib.metadata` finds it exactly as it finds a pip-installed plugin.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ganzoo
import ganzoo.plugins
import pytest

LSGAN_SOURCE = '''
import ganzoo

class LeastSquares:
    """Least-squares GAN loss (Mao et al. 2017)."""

    def __init__(self, target: float = 1.0):
        self.target = target

    def discriminator_loss(self, ctx: ganzoo.LossContext):
        return ((ctx.real_scores - self.target) ** 2).mean() + (ctx.fake_scores ** 2).mean()

    def generator_loss(self, ctx: ganzoo.LossContext):
        return ((ctx.fake_scores - self.target) ** 2).mean()

@ganzoo.hookimpl
def ganzoo_register_losses(register):
    register("my_least_squares", LeastSquares, summary="LSGAN, as a plugin")
'''


class PluginFactory:
    """Writes pip-installed-looking plugins into one folder that is on sys.path."""

    def __init__(self, root: Path):
        self.root = root
        self.modules: list[str] = []

    def make(self, entry_point: str, source: str, *, module: str | None = None,
             distribution: str | None = None, version: str = "0.0.1") -> str:
        """Create package `module` holding `source`, declared as entry point `entry_point`."""
        module = module or f"ganzoo_test_{entry_point}"
        distribution = distribution or module
        package = self.root / module
        package.mkdir()
        (package / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
        dist_info = self.root / f"{distribution}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n", encoding="utf-8")
        (dist_info / "entry_points.txt").write_text(
            f"[ganzoo]\n{entry_point} = {module}\n", encoding="utf-8")
        self.modules.append(module)
        importlib.invalidate_caches()
        return module

    def make_lsgan(self) -> str:
        """The DESIGN.md example, installed as distribution my_zoo_plugin 1.2.3."""
        return self.make("myplugin", LSGAN_SOURCE, module="my_zoo_plugin",
                         distribution="my_zoo_plugin", version="1.2.3")


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch):
    """Every test discovers plugins afresh, with nothing disabled, and leaves no state behind."""
    monkeypatch.delenv("GANZOO_DISABLE_PLUGINS", raising=False)
    ganzoo.plugins.reset()
    yield
    ganzoo.plugins.reset()


@pytest.fixture
def plugin_factory(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    factory = PluginFactory(root)
    yield factory
    for name in factory.modules:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]
    importlib.invalidate_caches()


def plugin_info(name: str) -> ganzoo.plugins.PluginInfo:
    found = [p for p in ganzoo.plugins.plugins() if p.name == name]
    assert len(found) == 1, f"plugin {name!r} listed {len(found)} times: {ganzoo.plugins.plugins()}"
    return found[0]


def assert_dcgan_loaded():
    assert plugin_info("dcgan").status == "ok"
    assert ganzoo.registry("losses").entry("bce").plugin == "dcgan"
    assert ganzoo.registry("models").entry("dcgan").plugin == "dcgan"


# --- a third-party plugin, installed like pip would --------------------------------------------

def test_third_party_plugin_registers_with_provenance(plugin_factory):
    plugin_factory.make_lsgan()
    ganzoo.plugins.reset()

    losses = ganzoo.registry("losses")
    cls = losses.get("my_least_squares")
    assert cls is sys.modules["my_zoo_plugin"].LeastSquares
    assert cls(target=0.5).target == 0.5
    entry = losses.entry("my_least_squares")
    assert (entry.plugin, entry.distribution) == ("myplugin", "my_zoo_plugin")
    assert entry.summary == "LSGAN, as a plugin"
    assert "my_least_squares" in losses.names()
    assert "my_least_squares" in losses
    assert losses.names() == sorted(losses.names())

    info = plugin_info("myplugin")
    assert info.status == "ok" and info.error is None
    assert (info.distribution, info.version, info.module) == ("my_zoo_plugin", "1.2.3", "my_zoo_plugin")
    assert info.counts["losses"] == 1
    assert sum(info.counts.values()) == 1
    assert_dcgan_loaded()


def test_first_party_entries_remember_their_plugin():
    entry = ganzoo.registry("losses").entry("nonsaturating")
    assert entry.plugin == "dcgan"
    assert entry.distribution == "ganzoo"
    assert set(ganzoo.registry("losses").names()) >= {"bce", "nonsaturating"}
    info = plugin_info("dcgan")
    assert info.counts["losses"] >= 2 and info.counts["models"] >= 1


def test_summary_defaults_to_first_docstring_line(plugin_factory):
    plugin_factory.make("documented", '''
        import ganzoo

        class Hinge:
            """Hinge loss.

            More words.
            """

            def discriminator_loss(self, ctx):
                return (1 - ctx.real_scores).relu().mean() + (1 + ctx.fake_scores).relu().mean()

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            register("documented_hinge", Hinge)
    ''')
    ganzoo.plugins.reset()
    assert ganzoo.registry("losses").entry("documented_hinge").summary == "Hinge loss."


# --- broken plugins are reported and skipped ----------------------------------------------------

def test_broken_plugins_are_reported_and_the_others_load(plugin_factory):
    plugin_factory.make_lsgan()
    plugin_factory.make("import_boom", '''
        raise RuntimeError("boom while importing")
    ''')
    plugin_factory.make("hook_boom", '''
        import ganzoo

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            raise ValueError("boom while registering")
    ''')
    plugin_factory.make("missing_dep", '''
        import ganzoo_test_this_module_does_not_exist
    ''')
    ganzoo.plugins.reset()

    # Reading a registry must not raise although three plugins are broken.
    names = ganzoo.registry("losses").names()
    assert "my_least_squares" in names
    assert_dcgan_loaded()

    cases = {"import_boom": ("RuntimeError", "boom while importing"),
             "hook_boom": ("ValueError", "boom while registering"),
             "missing_dep": ("ModuleNotFoundError", "ganzoo_test_this_module_does_not_exist")}
    for name, fragments in cases.items():
        info = plugin_info(name)
        assert info.status == "broken", info
        for fragment in fragments:
            assert fragment in info.error, (name, info.error)
        assert "\n" not in info.error.strip(), "the error is one line for `ganzoo list plugins`"
    assert plugin_info("myplugin").status == "ok"


def test_registration_failing_half_way_leaves_no_entries(plugin_factory):
    # The losses hook runs fine; the models hook registers, then raises.
    plugin_factory.make("halfway", '''
        import ganzoo

        class Term:
            """A loss term that sits out every step."""

            def generator_loss(self, ctx):
                return None

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            register("halfway_loss", Term)

        @ganzoo.hookimpl
        def ganzoo_register_models(register):
            register("halfway_model", object)
            raise KeyError("halfway")
    ''')
    ganzoo.plugins.reset()

    assert "halfway_loss" not in ganzoo.registry("losses").names()
    assert "halfway_model" not in ganzoo.registry("models").names()
    info = plugin_info("halfway")
    assert info.status == "broken" and "KeyError" in info.error
    assert sum(info.counts.values()) == 0
    assert_dcgan_loaded()


def test_clash_in_one_kind_keeps_the_plugins_other_kinds_out(plugin_factory):
    plugin_factory.make("zz_clash", '''
        import ganzoo

        class Term:
            """A loss term that sits out every step."""

            def generator_loss(self, ctx):
                return None

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            register("zz_clash_fresh_loss", Term)

        @ganzoo.hookimpl
        def ganzoo_register_models(register):
            register("dcgan", object)
    ''')
    ganzoo.plugins.reset()

    assert "zz_clash_fresh_loss" not in ganzoo.registry("losses").names()
    info = plugin_info("zz_clash")
    assert info.status == "broken"
    assert "'dcgan'" in info.error and "'zz_clash'" in info.error
    assert_dcgan_loaded()


@pytest.mark.parametrize("bad_name", ["", 42, None])
def test_invalid_entry_name_breaks_only_that_plugin(plugin_factory, bad_name):
    # "aa_" sorts before "dcgan": a crash here must not stop dcgan (or anyone else) loading.
    plugin_factory.make("aa_badname", f'''
        import ganzoo

        class Term:
            """A loss term that sits out every step."""

            def generator_loss(self, ctx):
                return None

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            register("aa_badname_good_loss", Term)
            register({bad_name!r}, Term)
    ''')
    plugin_factory.make_lsgan()
    ganzoo.plugins.reset()

    names = ganzoo.registry("losses").names()  # must not raise
    assert "aa_badname_good_loss" not in names, "a failed plugin left a partial entry"
    assert "my_least_squares" in names
    info = plugin_info("aa_badname")
    assert info.status == "broken"
    assert_dcgan_loaded()


# --- the contract checks itself: bad plugins fail at `ganzoo list`, not hours into a run -----------

def test_misspelled_hook_breaks_the_plugin_naming_the_hook(plugin_factory):
    plugin_factory.make("typo", """
        import ganzoo

        class Term:
            def generator_loss(self, ctx):
                return None

        @ganzoo.hookimpl
        def ganzoo_register_loss(register):
            register("typo_loss", Term)

        @ganzoo.hookimpl
        def ganzoo_register_metrics(register):
            register("typo_metric", Term)
    """)
    plugin_factory.make_lsgan()
    ganzoo.plugins.reset()

    info = plugin_info("typo")
    assert info.status == "broken"
    assert "unknown hook 'ganzoo_register_loss' (did you mean 'ganzoo_register_losses'?)" in info.error
    assert "\n" not in info.error
    # Broken means broken whole: its correctly spelled hook registers nothing either.
    assert "typo_metric" not in ganzoo.registry("metrics")
    assert "typo_loss" not in ganzoo.registry("losses")
    assert sum(info.counts.values()) == 0
    assert plugin_info("myplugin").status == "ok"
    assert_dcgan_loaded()


def test_unknown_hook_without_a_close_match_has_no_suggestion(plugin_factory):
    plugin_factory.make("setup_hook", """
        import ganzoo

        @ganzoo.hookimpl
        def setup(config):
            pass
    """)
    ganzoo.plugins.reset()
    info = plugin_info("setup_hook")
    assert info.status == "broken"
    assert "unknown hook 'setup'" in info.error and "did you mean" not in info.error


def test_hook_without_the_marker_breaks_the_plugin(plugin_factory):
    # pluggy ignores an unmarked function: it would register nothing, silently.
    plugin_factory.make("unmarked", """
        class Term:
            def generator_loss(self, ctx):
                return None

        def ganzoo_register_losses(register):
            register("unmarked_loss", Term)
    """)
    ganzoo.plugins.reset()
    info = plugin_info("unmarked")
    assert info.status == "broken"
    assert "'ganzoo_register_losses' is not marked @ganzoo.hookimpl" in info.error
    assert "unmarked_loss" not in ganzoo.registry("losses")


CONTRACT_PRELUDE = """
    import ganzoo
    import torch
    from torch import nn

    class Term:
        def generator_loss(self, ctx):
            return None

    class Nothing:
        pass

    class PlainDataset(torch.utils.data.Dataset):
        def __len__(self):
            return 0

    def my_block(*args):
        return nn.Identity()
"""


@pytest.mark.parametrize("kind, expression, message", [
    ("blocks", "my_block", "blocks entry 'bad' must be an nn.Module class, got function"),
    ("blocks", "nn.Conv2d(1, 1, 1)", "blocks entry 'bad' must be an nn.Module class, got Conv2d object"),
    ("normalizers", "int", "normalizers entry 'bad' must be an nn.Module class, got class int"),
    ("losses", "Nothing", "losses entry 'bad' must be a class with discriminator_loss(ctx) and/or "
                          "generator_loss(ctx), got class Nothing"),
    ("losses", "Term()", "got Term object"),
    ("schedules", "Term", "schedules entry 'bad' must be a class with state(kimg), got class Term"),
    ("datasets", "PlainDataset", "datasets entry 'bad' must be a ganzoo.ImageDataset subclass, "
                                 "got class PlainDataset"),
    ("models", "42", "models entry 'bad' must be a callable returning a ganzoo.GANModel, got int object"),
    ("metrics", "'swd'", "metrics entry 'bad' must be a callable"),
])
def test_entry_breaking_its_kinds_contract_breaks_the_plugin(plugin_factory, kind, expression, message):
    other = "models" if kind != "models" else "metrics"
    plugin_factory.make("badpart", CONTRACT_PRELUDE + f"""
    @ganzoo.hookimpl
    def ganzoo_register_{kind}(register):
        register("bad", {expression})

    @ganzoo.hookimpl
    def ganzoo_register_{other}(register):
        register("badpart_fine", Term)
    """)
    ganzoo.plugins.reset()

    info = plugin_info("badpart")
    assert info.status == "broken"
    assert message in info.error, info.error
    assert "__init__.py:" in info.error, "the error points at the plugin's register call"
    assert "bad" not in ganzoo.registry(kind) and "badpart_fine" not in ganzoo.registry(other)
    assert_dcgan_loaded()


def test_first_party_and_builtin_parts_meet_the_contract():
    infos = ganzoo.plugins.plugins()
    assert {"ganzoo", "dcgan", "progan", "stargan", "wgan"} <= {p.name for p in infos}
    assert all(p.status == "ok" for p in infos), [(p.name, p.error) for p in infos if p.status != "ok"]
    for kind in ganzoo.plugins.KINDS:
        for entry in ganzoo.registry(kind).entries():
            ganzoo.registry(kind).check(entry.name, entry.obj)  # raises on a violation


@pytest.mark.parametrize("statement, fragment", [
    ("sys.exit(3)", "called sys.exit(3) at import"),
    ("sys.exit()", "called sys.exit() at import"),
    ("raise SystemExit('bye')", "called sys.exit('bye') at import"),
])
def test_plugin_exiting_at_import_is_broken_not_fatal(plugin_factory, statement, fragment):
    plugin_factory.make("quitter", f"""
        import sys
        {statement}
    """)
    plugin_factory.make_lsgan()
    ganzoo.plugins.reset()

    assert "my_least_squares" in ganzoo.registry("losses").names()
    info = plugin_info("quitter")
    assert info.status == "broken"
    assert fragment in info.error and "__init__.py:3" in info.error, info.error
    assert_dcgan_loaded()


def test_plugin_exiting_in_a_hook_is_broken_not_fatal(plugin_factory):
    plugin_factory.make("hook_quitter", """
        import sys
        import ganzoo

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            sys.exit(4)
    """)
    ganzoo.plugins.reset()
    info = plugin_info("hook_quitter")
    assert info.status == "broken"
    assert "called sys.exit(4) in ganzoo_register_losses" in info.error
    assert_dcgan_loaded()


def test_ctrl_c_while_loading_a_plugin_is_not_swallowed(plugin_factory):
    plugin_factory.make("interrupted", "raise KeyboardInterrupt\n")
    ganzoo.plugins.reset()
    with pytest.raises(KeyboardInterrupt):
        ganzoo.registry("losses").names()


class HalfCommands:
    """Registers a loss, then its commands hook adds a command and fails."""

    class Term:
        def generator_loss(self, ctx):
            return None

    @ganzoo.hookimpl
    def ganzoo_register_losses(self, register):
        register("half_commands_loss", self.Term)

    def __init__(self):
        self.calls = 0

    @ganzoo.hookimpl
    def ganzoo_register_commands(self, subparsers):
        self.calls += 1
        subparsers.add_parser("half-done", help="never usable")
        raise RuntimeError("commands hook failed half-way")


class OneCommand:
    @ganzoo.hookimpl
    def ganzoo_register_commands(self, subparsers):
        subparsers.add_parser("fine-command", help="usable")


def test_commands_hook_failing_half_way_takes_the_plugin_out_whole():
    import argparse

    half = HalfCommands()
    ganzoo.plugins.state().add_plugin("half_commands", half)
    ganzoo.plugins.state().add_plugin("one_command", OneCommand())
    assert "half_commands_loss" in ganzoo.registry("losses")
    parser = argparse.ArgumentParser(prog="ganzoo")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("core-command", help="the core's own")
    ganzoo.plugins.add_commands(sub)

    assert set(sub.choices) >= {"core-command", "fine-command"}
    assert "half-done" not in sub.choices
    assert "half-done" not in parser.format_help() and "fine-command" in parser.format_help()
    info = plugin_info("half_commands")
    assert info.status == "broken" and "commands hook failed half-way" in info.error
    assert "half_commands_loss" not in ganzoo.registry("losses"), "a broken plugin keeps no entries"
    assert plugin_info("one_command").counts["commands"] == 1
    # A second parser (e.g. `ganzoo --help` then the command) never runs the broken hook again.
    again = argparse.ArgumentParser(prog="ganzoo").add_subparsers(dest="command")
    ganzoo.plugins.add_commands(again)
    assert "fine-command" in again.choices and "half-done" not in again.choices
    assert half.calls == 1


# --- duplicate names ---------------------------------------------------------------------------

# "copycat" sorts before "dcgan", "zz_copycat" after it: the outcome must not depend on that.
@pytest.mark.parametrize("thief", ["zz_copycat", "copycat"])
def test_third_party_cannot_take_a_first_party_name(plugin_factory, thief):
    plugin_factory.make(thief, '''
        import ganzoo

        class Term:
            """A loss term that sits out every step."""

            def generator_loss(self, ctx):
                return None

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            register("bce", Term)
    ''')
    ganzoo.plugins.reset()

    info = plugin_info(thief)
    assert info.status == "broken"
    assert "'bce'" in info.error
    assert "'dcgan'" in info.error and f"'{thief}'" in info.error
    assert_dcgan_loaded()
    assert ganzoo.registry("losses").get("bce") is not sys.modules[f"ganzoo_test_{thief}"].Term


def test_same_name_twice_within_one_plugin_is_rejected(plugin_factory):
    plugin_factory.make("stutter", '''
        import ganzoo

        class Term:
            """A loss term that sits out every step."""

            def generator_loss(self, ctx):
                return None

        class OtherTerm(Term):
            """Another."""

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            register("stutter_loss", Term)
            register("stutter_loss", OtherTerm)
    ''')
    ganzoo.plugins.reset()

    assert "stutter_loss" not in ganzoo.registry("losses").names()
    info = plugin_info("stutter")
    assert info.status == "broken"
    assert "'stutter_loss'" in info.error and "'stutter'" in info.error


def test_same_name_in_different_kinds_is_fine(plugin_factory):
    module = plugin_factory.make("twokinds", '''
        import ganzoo

        class Term:
            """A loss term that sits out every step."""

            def generator_loss(self, ctx):
                return None

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            register("twokinds_thing", Term)

        @ganzoo.hookimpl
        def ganzoo_register_metrics(register):
            register("twokinds_thing", float)
    ''')
    ganzoo.plugins.reset()

    assert ganzoo.registry("losses").get("twokinds_thing") is sys.modules[module].Term
    assert ganzoo.registry("metrics").get("twokinds_thing") is float
    assert plugin_info("twokinds").counts["losses"] == 1


# --- lookups -----------------------------------------------------------------------------------

def test_unknown_name_lists_known_names_and_a_close_match():
    with pytest.raises(ganzoo.UserError) as caught:
        ganzoo.registry("losses").get("nonsaturatng")
    message = str(caught.value)
    assert "'nonsaturatng'" in message
    assert "did you mean 'nonsaturating'" in message
    assert "bce" in message and "nonsaturating" in message
    assert "\n" not in message

    with pytest.raises(ganzoo.UserError) as caught:
        ganzoo.registry("models").entry("zzzzzz")
    assert "dcgan" in str(caught.value) and "did you mean" not in str(caught.value)


def test_unknown_loss_message_says_loss():
    # The singular of "losses" is "loss", not "losse".
    with pytest.raises(ganzoo.UserError) as caught:
        ganzoo.registry("losses").get("nonsaturatng")
    message = str(caught.value)
    assert "unknown loss 'nonsaturatng'" in message, message


def test_unknown_registry_kind_is_a_user_error():
    with pytest.raises(ganzoo.UserError) as caught:
        ganzoo.registry("nonsense")
    assert "'nonsense'" in str(caught.value)
    assert "losses" in str(caught.value) and "models" in str(caught.value)


# --- GANZOO_DISABLE_PLUGINS --------------------------------------------------------------------

def test_disable_one_plugin(plugin_factory, monkeypatch):
    plugin_factory.make_lsgan()
    monkeypatch.setenv("GANZOO_DISABLE_PLUGINS", "dcgan")
    ganzoo.plugins.reset()

    info = plugin_info("dcgan")
    assert info.status == "disabled"
    assert sum(info.counts.values()) == 0
    for kind in ("losses", "models"):
        assert all(e.plugin != "dcgan" for e in ganzoo.registry(kind).entries())
    assert "bce" not in ganzoo.registry("losses")
    assert "dcgan" not in ganzoo.registry("models")
    assert "my_least_squares" in ganzoo.registry("losses")
    assert plugin_info("myplugin").status == "ok"


@pytest.mark.parametrize("value", ["dcgan,myplugin", " myplugin , dcgan ", "dcgan,,myplugin,"])
def test_disable_a_list_of_plugins(plugin_factory, monkeypatch, value):
    plugin_factory.make_lsgan()
    plugin_factory.make("keeper", '''
        import ganzoo

        class Term:
            """A loss term that sits out every step."""

            def generator_loss(self, ctx):
                return None

        @ganzoo.hookimpl
        def ganzoo_register_losses(register):
            register("keeper_loss", Term)
    ''')
    monkeypatch.setenv("GANZOO_DISABLE_PLUGINS", value)
    ganzoo.plugins.reset()

    assert plugin_info("dcgan").status == "disabled"
    assert plugin_info("myplugin").status == "disabled"
    assert plugin_info("keeper").status == "ok"
    names = ganzoo.registry("losses").names()
    assert "keeper_loss" in names
    assert "bce" not in names and "my_least_squares" not in names


def test_disabled_plugin_module_is_never_imported(plugin_factory, monkeypatch):
    module = plugin_factory.make("sleeper", '''
        raise RuntimeError("a disabled plugin must not be imported")
    ''')
    monkeypatch.setenv("GANZOO_DISABLE_PLUGINS", "sleeper")
    ganzoo.plugins.reset()
    ganzoo.registry("losses").names()
    assert plugin_info("sleeper").status == "disabled"
    assert plugin_info("sleeper").error is None
    assert module not in sys.modules


# --- lazy, one-time loading --------------------------------------------------------------------

COUNTING_SOURCE = '''
import ganzoo

class Term:
    def generator_loss(self, ctx):
        return None

with open({counter!r}, "a") as f:
    f.write("import\\n")

@ganzoo.hookimpl
def ganzoo_register_losses(register):
    with open({counter!r}, "a") as f:
        f.write("hook\\n")
    register("counted_loss", Term)
'''


def read_counter(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_plugins_load_lazily_and_once(plugin_factory, tmp_path):
    counter = tmp_path / "counter.txt"
    module = plugin_factory.make("counting", COUNTING_SOURCE.format(counter=str(counter)))
    ganzoo.plugins.reset()

    losses = ganzoo.registry("losses")  # getting a registry is not reading it
    ganzoo.registry("models")
    assert read_counter(counter) == []
    assert module not in sys.modules

    assert "counted_loss" in losses.names()
    assert read_counter(counter) == ["import", "hook"]

    # Further reads, of this and other registries, do not load again.
    losses.names()
    losses.get("counted_loss")
    assert "counted_loss" in losses
    list(losses)
    ganzoo.registry("models").get("dcgan")
    ganzoo.registry("metrics").names()
    ganzoo.registry("losses").entries()
    ganzoo.plugins.plugins()
    assert read_counter(counter) == ["import", "hook"]
    assert [p.name for p in ganzoo.plugins.plugins()].count("counting") == 1


def test_importing_ganzoo_loads_no_plugin(plugin_factory, tmp_path):
    counter = tmp_path / "counter.txt"
    plugin_factory.make("counting", COUNTING_SOURCE.format(counter=str(counter)))
    code = textwrap.dedent("""
        import sys
        import ganzoo, ganzoo.plugins, ganzoo.recipe, ganzoo.engine.build, ganzoo.cli
        ganzoo.registry("losses")
        loaded = sorted(m for m in sys.modules if m.startswith("ganzoo_"))
        assert not loaded, loaded
        print("OK")
    """)
    result = run_python(["-c", code], plugin_factory.root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"
    assert read_counter(counter) == []


# --- the CLI -----------------------------------------------------------------------------------

def run_python(args: list[str], plugin_root: Path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "GANZOO_DISABLE_PLUGINS"}
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(plugin_root)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    environ.update(env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environ,
                          cwd=plugin_root, timeout=120)


def test_cli_lists_third_party_plugin_and_its_losses(plugin_factory):
    plugin_factory.make_lsgan()
    plugin_factory.make("import_boom", 'raise RuntimeError("boom while importing")\n')

    result = run_python(["-m", "ganzoo", "list", "plugins"], plugin_factory.root)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fragment in ("myplugin", "my_zoo_plugin", "1.2.3", "dcgan", "import_boom", "broken",
                     "RuntimeError"):
        assert fragment in out, f"{fragment!r} missing from:\n{out}"
    assert "Traceback" not in out + result.stderr

    result = run_python(["-m", "ganzoo", "list", "losses"], plugin_factory.root)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fragment in ("my_least_squares", "myplugin", "my_zoo_plugin", "LSGAN, as a plugin",
                     "bce", "nonsaturating", "dcgan"):
        assert fragment in out, f"{fragment!r} missing from:\n{out}"


def test_cli_unknown_kind_is_a_one_line_user_error(plugin_factory):
    result = run_python(["-m", "ganzoo", "list", "bogus"], plugin_factory.root)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "bogus" in lines[0]


def test_cli_lists_contract_breakers_and_applies_none_of_their_commands(plugin_factory):
    plugin_factory.make("typo_cli", """
        import ganzoo

        @ganzoo.hookimpl
        def ganzoo_register_loss(register):
            pass

        def typo_command(args):
            print("the broken plugin's command ran")

        @ganzoo.hookimpl
        def ganzoo_register_commands(subparsers):
            subparsers.add_parser("typo-command").set_defaults(handler=typo_command)
    """)
    plugin_factory.make("exits_cli", "import sys\nsys.exit(3)\n")
    plugin_factory.make("badblock_cli", """
        import ganzoo

        def exits_block(*args):
            return None

        @ganzoo.hookimpl
        def ganzoo_register_blocks(register):
            register("exits_block", exits_block)
    """)

    result = run_python(["-m", "ganzoo", "list", "plugins"], plugin_factory.root)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    rows = {name: "".join(line for line in out.splitlines() if name in line)
            for name in ("typo_cli", "exits_cli", "badblock_cli", "dcgan")}
    assert "ok" in rows["dcgan"]
    for name, fragments in {"typo_cli": ("broken", "'ganzoo_register_loss'", "'ganzoo_register_losses'?)"),
                            "exits_cli": ("broken", "sys.exit(3)"),
                            "badblock_cli": ("broken", "'exits_block'", "nn.Module")}.items():
        for fragment in fragments:
            assert fragment in out, f"{fragment!r} missing for {name}:\n{out}"
        assert "broken" in rows[name], rows[name]
    assert "Traceback" not in out + result.stderr

    result = run_python(["-m", "ganzoo", "--help"], plugin_factory.root)
    assert result.returncode == 0, result.stderr
    assert "typo-command" not in result.stdout and "run" in result.stdout
    result = run_python(["-m", "ganzoo", "typo-command"], plugin_factory.root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid choice" in result.stderr and "command ran" not in result.stdout
