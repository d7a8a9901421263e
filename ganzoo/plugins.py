"""Plugin discovery: the core's built-ins, then every entry point in group "ganzoo".

Plugins load lazily, once, on the first read of any registry. A plugin that fails to import,
implements a hook that does not exist, registers an entry that breaks its kind's contract or
fails in a hook is recorded (name, one-line error) and skipped whole: it registers nothing and
none of its hooks runs again. The others still load. The contract is ganzoo/hookspecs.py.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import traceback
from pathlib import Path
from importlib.metadata import entry_points, version as dist_version
from typing import Any, Callable

import attrs
import pluggy

from ganzoo import hookspecs
from ganzoo.errors import UserError
from ganzoo.registry import KINDS, Registry, RegistryError

ENTRY_POINT_GROUP = "ganzoo"
DISABLE_ENV = "GANZOO_DISABLE_PLUGINS"
BUILTIN = ("ganzoo", "ganzoo.builtin")  # the core's own datasets, schedules and normalizers


@attrs.define
class PluginInfo:
    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    status: str = "ok"  # ok | broken | disabled
    error: str | None = None
    counts: dict[str, int] = attrs.Factory(dict)


class PluginState:
    """The registries and what was learnt while filling them."""

    def __init__(self):
        self.registries = {kind: Registry(kind, loader=self.load) for kind in KINDS}
        self.plugins: list[PluginInfo] = []
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._loaded = False
        self._extra: list[tuple[str, Any]] = []

    def add_plugin(self, name: str, plugin: Any) -> PluginInfo:
        """Register an in-process plugin object (a module or any object with hookimpls)."""
        self.load()
        return self._register(PluginInfo(name, getattr(plugin, "__name__", repr(plugin))),
                              lambda: plugin)

    def load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        name, module_name = BUILTIN
        self._register(PluginInfo(name, module_name, "ganzoo", dist_version("ganzoo")),
                       lambda: importlib.import_module(module_name))
        seen = {name}
        # First-party plugins first: a third party cannot take their names.
        first_party = lambda ep: getattr(getattr(ep, "dist", None), "name", None) == "ganzoo"  # noqa: E731
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP),
                         key=lambda e: (not first_party(e), e.name)):
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, ep.value, dist.name if dist else None,
                              dist.version if dist else None)
            if ep.name in seen:
                info.status, info.error = "broken", f"plugin name {ep.name!r} is declared twice"
                self.plugins.append(info)
                continue
            seen.add(ep.name)
            if ep.name in disabled:
                info.status = "disabled"
                self.plugins.append(info)
                continue
            self._register(info, ep.load)

    def _register(self, info: PluginInfo, load: Callable[[], Any]) -> PluginInfo:
        self.plugins.append(info)
        if self.pm.has_plugin(info.name):  # before the try: what fails there is this plugin's
            info.status, info.error = "broken", f"plugin name {info.name!r} is declared twice"
            return info
        phase = "at import"
        try:
            plugin = load()
            phase = "at registration"
            self.pm.register(plugin, name=info.name)
            _check_hook_names(self.pm, plugin)
            staged: dict[str, list[tuple[str, Any, str | None]]] = {kind: [] for kind in KINDS}
            for kind, hook_name in hookspecs.HOOKS.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin_name == info.name:
                        phase = f"in {hook_name}"
                        _call(impl, register=_stager(self.registries[kind], staged[kind]))
            for kind, items in staged.items():
                _check_new_names(self.registries[kind], items, info.name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit too: a broken plugin is reported, never fatal
            self._mark_broken(info, exc, phase)
            return info
        for kind, items in staged.items():
            for name, obj, summary in items:
                self.registries[kind].add(name, obj, summary=summary, plugin=info.name,
                                          distribution=info.distribution)
            info.counts[kind] = len(items)
        return info

    def _mark_broken(self, info: PluginInfo, exc: BaseException, phase: str) -> None:
        """Take the plugin out whole: its entries, its counts and its hooks (none runs again)."""
        if self.pm.has_plugin(info.name):
            self.pm.unregister(name=info.name)
        for registry in self.registries.values():
            registry.remove_plugin(info.name)
        info.status, info.error, info.counts = "broken", _describe(exc, phase), {}


def _check_hook_names(pm: pluggy.PluginManager, plugin: Any) -> None:
    """pluggy's `check_pending`, for one plugin: a hook implementation without a hookspec is an
    error (a misspelled hook would otherwise register nothing, silently), and so is a function
    named like a hook but not marked `@ganzoo.hookimpl` (pluggy ignores it)."""
    unknown = [caller.name for caller in pm.get_hookcallers(plugin) or () if not caller.has_spec()
               and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())]
    if unknown:
        raise RegistryError(_unknown_hook(unknown[0]))
    for attr in dir(plugin):
        if attr.startswith(hookspecs.PROJECT + "_") and inspect.isroutine(getattr(plugin, attr, None)) \
                and pm.parse_hookimpl_opts(plugin, attr) is None:
            if attr in _hook_names():
                raise RegistryError(f"hook {attr!r} is not marked @ganzoo.hookimpl, so it would never run")
            raise RegistryError(_unknown_hook(attr))


def _hook_names() -> list[str]:
    return [*hookspecs.HOOKS.values(), hookspecs.COMMANDS_HOOK]


def _unknown_hook(name: str) -> str:
    close = difflib.get_close_matches(name, _hook_names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown hook {name!r}{hint}; the hooks are listed in ganzoo/hookspecs.py"


def _call(impl: pluggy.HookImpl, **arguments: Any) -> Any:
    """Call one hook implementation with the arguments it asks for (pluggy allows a subset)."""
    return impl.function(**{name: arguments[name] for name in impl.argnames})


def _stager(registry: Registry, items: list):
    def register(name: str, obj: Any, *, summary: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise RegistryError(f"entry names must be non-empty strings, got {name!r}")
        registry.check(name, obj)  # the kind's contract, before anything is added
        items.append((name, obj, summary))
    return register


def _check_new_names(registry: Registry, items, plugin: str) -> None:
    """Raise before anything is added, so a clashing plugin leaves no partial entries behind."""
    names = [name for name, _, _ in items]
    for name in names:
        owner = registry.owner(name) or (plugin if names.count(name) > 1 else None)
        if owner is not None:
            raise RegistryError(f"{registry.kind} name {name!r} is registered twice: by plugin "
                                f"{owner!r} and by plugin {plugin!r}")


_OWN_CODE = (str(Path(__file__).parent) + os.sep, str(Path(pluggy.__file__).parent) + os.sep, "<frozen ")


def _describe(exc: BaseException, phase: str) -> str:
    """One line for `ganzoo list plugins`, pointing at the plugin's own line where there is one."""
    frames = traceback.extract_tb(exc.__traceback__)
    theirs = [f for f in frames if not f.filename.startswith(_OWN_CODE)] or frames
    where = f" ({theirs[-1].filename}:{theirs[-1].lineno})" if theirs else ""
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else repr(exc.code)
        return f"called sys.exit({code}) {phase}{where}"
    if isinstance(exc, UserError):  # the contract's own messages say what is wrong
        return f"{exc}{where}"
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}{where}"


_state: PluginState | None = None


def state() -> PluginState:
    global _state
    if _state is None:
        _state = PluginState()
    return _state


def reset() -> None:
    """Forget every loaded plugin; the next registry read discovers them again (for tests)."""
    global _state
    _state = None


def registry(kind: str) -> Registry:
    """The registry of one kind: "blocks", "losses", "normalizers", "schedules", "models",
    "datasets" or "metrics"."""
    try:
        return state().registries[kind]
    except KeyError:
        raise UserError(f"unknown registry kind {kind!r}; known: {', '.join(KINDS)}") from None


def add_commands(subparsers) -> None:
    """Let every loaded plugin add its CLI commands (hook `ganzoo_register_commands`). A plugin
    whose hook fails is marked broken, taken out whole, and the commands it half-added removed."""
    current = state()
    current.load()
    by_name = {info.name: info for info in current.plugins}
    for impl in getattr(current.pm.hook, hookspecs.COMMANDS_HOOK).get_hookimpls():
        before = dict(subparsers.choices), list(subparsers._choices_actions)
        try:
            _call(impl, subparsers=subparsers)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            subparsers.choices.clear()
            subparsers.choices.update(before[0])
            subparsers._choices_actions[:] = before[1]  # argparse keeps the help lines here
            info = by_name.get(impl.plugin_name)
            if info is not None:
                current._mark_broken(info, exc, f"in {hookspecs.COMMANDS_HOOK}")
            continue
        info = by_name.get(impl.plugin_name)
        if info is not None:
            info.counts["commands"] = len(subparsers.choices) - len(before[0])


def plugins() -> list[PluginInfo]:
    state().load()
    return list(state().plugins)
