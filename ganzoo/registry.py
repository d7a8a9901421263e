"""Named registries with provenance: every entry remembers which plugin registered it."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Iterator

import attrs
from torch import nn

from ganzoo.dataset import ImageDataset
from ganzoo.errors import UserError
from ganzoo.hookspecs import KINDS

__all__ = ["EXPECTED", "KINDS", "Entry", "Registry", "RegistryError", "singular_kind"]


@attrs.frozen
class Entry:
    name: str
    obj: Any
    summary: str
    plugin: str
    distribution: str | None


class RegistryError(UserError):
    """A duplicate registration or a lookup of an unknown name."""


def _module_class(obj: Any) -> bool:
    return inspect.isclass(obj) and issubclass(obj, nn.Module)


def _loss_class(obj: Any) -> bool:
    return inspect.isclass(obj) and any(callable(getattr(obj, method, None))
                                        for method in ("discriminator_loss", "generator_loss"))


def _schedule_class(obj: Any) -> bool:
    return inspect.isclass(obj) and callable(getattr(obj, "state", None))


def _dataset_class(obj: Any) -> bool:
    return inspect.isclass(obj) and issubclass(obj, ImageDataset)


# What an entry of each kind must be, checked when a plugin registers it so that a bad part
# fails at `ganzoo list`, not hours into a run. The contract itself: ganzoo/hookspecs.py.
EXPECTED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "blocks": (_module_class, "an nn.Module class"),
    "losses": (_loss_class, "a class with discriminator_loss(ctx) and/or generator_loss(ctx)"),
    "normalizers": (_module_class, "an nn.Module class"),
    "schedules": (_schedule_class, "a class with state(kimg)"),
    "models": (callable, "a callable returning a ganzoo.GANModel"),
    "datasets": (_dataset_class, "a ganzoo.ImageDataset subclass"),
    "metrics": (callable, "a callable (a class) built from its [eval.<name>] table"),
}


class Registry:
    """The entries of one kind ("losses", "blocks", ...), filled by plugins through their hooks."""

    def __init__(self, kind: str, loader=None):
        self.kind = kind
        self._expected = EXPECTED[kind]  # every kind has its check
        self._entries: dict[str, Entry] = {}
        self._loader = loader  # called once, before the first read, to load the plugins

    def _ensure_loaded(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader()

    def add(self, name: str, obj: Any, *, summary: str | None, plugin: str,
            distribution: str | None) -> None:
        if not isinstance(name, str) or not name:
            raise RegistryError(f"plugin {plugin!r} registered a {self.kind} entry with an empty or non-string name")
        taken = self._entries.get(name)
        if taken is not None:
            raise RegistryError(
                f"{self.kind} name {name!r} is registered twice: by plugin {taken.plugin!r} "
                f"and by plugin {plugin!r}")
        self._entries[name] = Entry(name, obj, summary or _first_doc_line(obj), plugin, distribution)

    def check(self, name: str, obj: Any) -> None:
        """Raise unless `obj` is what an entry of this kind must be."""
        accepts, expected = self._expected
        if not accepts(obj):
            raise RegistryError(f"{self.kind} entry {name!r} must be {expected}, got {_what(obj)}")

    def remove_plugin(self, plugin: str) -> None:
        """Drop every entry `plugin` registered (it turned out broken after registering)."""
        self._entries = {n: e for n, e in self._entries.items() if e.plugin != plugin}

    def owner(self, name: str) -> str | None:
        """The plugin that registered `name`, without triggering plugin loading."""
        entry = self._entries.get(name)
        return entry.plugin if entry else None

    def entry(self, name: str) -> Entry:
        self._ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self._unknown_message(name)) from None

    def get(self, name: str) -> Any:
        return self.entry(name).obj

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _unknown_message(self, name: str) -> str:
        singular = singular_kind(self.kind)
        known = sorted(self._entries)
        message = f"unknown {singular} {name!r}"
        close = difflib.get_close_matches(str(name), known, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        return message + "; known: " + (", ".join(known) if known else "none registered")


def singular_kind(kind: str) -> str:
    """'losses' -> 'loss', 'models' -> 'model': for messages."""
    return kind[:-2] if kind.endswith("sses") else kind.rstrip("s")


def _what(obj: Any) -> str:
    if inspect.isclass(obj):
        return f"class {obj.__name__}"
    if inspect.isroutine(obj):
        return "function"
    return f"{type(obj).__name__} object"


def _first_doc_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
