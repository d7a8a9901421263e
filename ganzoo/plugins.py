"""Plugin discovery: the core's built-ins, then every entry point in group "ganzoo".

Plugins load lazily, once, on the first read of any registry. A plugin that fails to import
or to register is recorded (name, error) and skipped; the others still load.
"""

from __future__ import annotations

import importlib
import os
import traceback
from importlib.metadata import entry_points
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
        from ganzoo import __version__

        self._register(PluginInfo(name, module_name, "ganzoo", __version__),
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
        try:
            self.pm.register(load(), name=info.name)
        except Exception as exc:  # a broken plugin is reported, never fatal
            info.status, info.error = "broken", _describe(exc)
            return info
        staged: dict[str, list[tuple[str, Any, str | None]]] = {kind: [] for kind in KINDS}
        try:
            for kind, hook_name in hookspecs.HOOKS.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin_name == info.name:
                        impl.function(register=_stager(staged[kind]))
            for kind, items in staged.items():
                _check_new_names(self.registries[kind], items, info.name)
        except Exception as exc:
            self.pm.unregister(name=info.name)
            info.status, info.error = "broken", _describe(exc)
            return info
        for kind, items in staged.items():
            for name, obj, summary in items:
                self.registries[kind].add(name, obj, summary=summary, plugin=info.name,
                                          distribution=info.distribution)
            info.counts[kind] = len(items)
        return info


def _stager(items: list):
    def register(name: str, obj: Any, *, summary: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise RegistryError(f"entry names must be non-empty strings, got {name!r}")
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


def _describe(exc: Exception) -> str:
    where = traceback.extract_tb(exc.__traceback__)
    last = f" ({where[-1].filename}:{where[-1].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{last}"


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
    """Let every loaded plugin add its CLI commands (hook `ganzoo_register_commands`); a plugin
    whose hook fails is marked broken and its half-added commands stay unusable, never fatal."""
    current = state()
    current.load()
    by_name = {info.name: info for info in current.plugins}
    for impl in getattr(current.pm.hook, hookspecs.COMMANDS_HOOK).get_hookimpls():
        try:
            impl.function(subparsers=subparsers)
        except Exception as exc:
            info = by_name.get(impl.plugin_name)
            if info is not None:
                info.status, info.error = "broken", _describe(exc)


def plugins() -> list[PluginInfo]:
    state().load()
    return list(state().plugins)
