"""One strict cattrs converter: recipe tables and component parameters, typed by annotations.

The recipe's attrs classes and every registered component's constructor (its signature's
annotations) are structured through `converter`, which takes TOML values as they are: an
integer refuses `true` and `"3"`, a number takes an integer but not a boolean, arrays and tables
are never made from strings. Errors become one UserError line naming the key path, what was
expected and what was given, in TOML's terms.
"""

from __future__ import annotations

import collections.abc as abc
import datetime
import difflib
import functools
import inspect
import re
import types
import typing
from typing import Any, Union

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import (AttributeValidationNote, BaseValidationError, ForbiddenExtraKeysError,
                           IterableValidationNote)
from cattrs.gen import make_dict_structure_fn, make_hetero_tuple_structure_fn, mapping_structure_factory

from ganzoo import checks
from ganzoo.errors import UserError
from ganzoo.plugins import registry
from ganzoo.registry import singular_kind

converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

_EXTRA = "ganzoo_extra_keys"  # attrs metadata of a `params` field that collects a table's other keys
_ARRAYS = {list, tuple, abc.Sequence, abc.MutableSequence}
_TABLES = {dict, abc.Mapping, abc.MutableMapping}
_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), bool: ("a boolean", "booleans")}


def params_field(*, only_tables: bool = False):
    """A `params` field: the table's keys that are not fields, for the component it names
    (with `only_tables`, only keys whose values are tables, e.g. [eval.swd])."""
    return attrs.field(factory=dict, metadata={_EXTRA: "tables" if only_tables else "any"})


class _Mismatch(ValueError):
    def __init__(self, expected: str, value: Any, given: str | None = None):
        self.expected, self.given = expected, given or f"{_kind(value)} {_spell(value)}"
        super().__init__(f"expected {expected}, got {self.given}")


def _kind(value: Any) -> str:
    """A value's TOML type."""
    for tp, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
                     (list, "array"), (tuple, "array"), (dict, "table"),
                     (datetime.datetime, "date-time"), (datetime.date, "date"),
                     (datetime.time, "time")):
        if isinstance(value, tp):
            return name
    return "nothing" if value is None else type(value).__name__


def _spell(value: Any) -> str:
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()  # TOML spells dates and times as ISO 8601
    return checks.show(value)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _shape(tp: Any) -> Any:
    return typing.get_origin(tp) or tp


def _expected(tp: Any, plural: bool = False) -> str:
    if tp in _NAMES:
        return _NAMES[tp][plural]
    if _is_union(tp):
        return " or ".join(_expected(a, plural) for a in typing.get_args(tp) if a is not type(None))
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    if _shape(tp) in _ARRAYS:
        if _shape(tp) is tuple and args and typing.get_args(tp)[-1] is not Ellipsis:
            same = len(set(args)) == 1 and args[0] in _NAMES
            return f"an array of {len(args)}" + (f" {_NAMES[args[0]][1]}" if same else " values")
        inner = f" of {_expected(args[0], True)}" if args and args[0] is not Any else ""
        return ("arrays" if plural else "an array") + inner
    if tp is Any:
        return "any values" if plural else "any value"
    return "tables" if plural else "a table"  # dicts, mappings and attrs classes


def _strict(tp: type, accepts, convert=lambda value: value) -> None:
    def hook(value, _):
        if accepts(value):
            return convert(value)
        raise _Mismatch(_expected(tp), value)
    converter.register_structure_hook(tp, hook)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_strict(int, _is_int)
_strict(float, lambda v: _is_int(v) or isinstance(v, float), float)
_strict(str, lambda v: isinstance(v, str))
_strict(bool, lambda v: isinstance(v, bool))


@converter.register_structure_hook_factory(_is_union)
def _union_hook(tp):
    args = typing.get_args(tp)
    members = [(a, converter.get_structure_hook(a)) for a in args if a is not type(None)]

    def hook(value, _):
        if value is None and type(None) in args:
            return None
        errors = []
        for member, structure in members:
            try:
                return structure(value, member)
            except Exception as exc:  # noqa: BLE001 - the next member may take it
                errors.append(exc)
        for (member, _), error in zip(members, errors):  # the member of the value's own shape
            if (_shape(member) in _ARRAYS and isinstance(value, list)) or (
                    (_shape(member) in _TABLES or attrs.has(member)) and isinstance(value, dict)):
                raise error
        raise _Mismatch(_expected(tp), value)
    return hook


@converter.register_structure_hook_factory(lambda tp: _shape(tp) in _ARRAYS)
def _array_hook(tp):
    args = typing.get_args(tp)
    fixed = _shape(tp) is tuple and args and args[-1] is not Ellipsis
    if fixed:
        inner = make_hetero_tuple_structure_fn(tp, converter)
    else:
        inner = list_structure_factory(list[args[0]] if args else list, converter)

    def hook(value, _):
        if not isinstance(value, (list, tuple)) or (fixed and len(value) != len(args)):
            raise _Mismatch(_expected(tp), value)
        items = inner(value, tp)
        return tuple(items) if _shape(tp) is tuple else items
    return hook


def _int_key(key):
    """TOML table keys are strings: a table keyed by integers (resolutions) spells them so."""
    if _is_int(key) or (isinstance(key, str) and re.fullmatch(r"[+-]?\d+", key)):
        return int(key)
    raise _Mismatch("a table keyed by integers", key, f"key {_spell(key)}")


@converter.register_structure_hook_factory(lambda tp: _shape(tp) in _TABLES)
def _table_hook(tp):
    args = typing.get_args(tp)
    inner = mapping_structure_factory(dict[args], converter) if len(args) == 2 else None

    def hook(value, _):
        if not isinstance(value, dict):
            raise _Mismatch(_expected(tp), value)
        if inner is None:
            return dict(value)
        if args[0] is int:
            value = {_int_key(k): v for k, v in value.items()}
        return inner(value, tp)
    return hook


@converter.register_structure_hook_factory(attrs.has)
def _class_hook(cls):
    inner = make_dict_structure_fn(cls, converter)
    params = attrs.fields_dict(cls).get("params")
    extra = params.metadata.get(_EXTRA) if params is not None else None
    own = {a.name for a in attrs.fields(cls)} - {"params"}

    def hook(value, _):
        if not isinstance(value, dict):
            raise _Mismatch("a table", value)
        if extra is None:
            return inner(value, cls)
        kept = {k: v for k, v in value.items()
                if k in own or (extra == "tables" and not isinstance(v, dict))}  # refused below
        return inner({**kept, "params": {k: v for k, v in value.items() if k not in kept}}, cls)
    return hook


def structure(raw: Any, cls: type, *, table: str | None = None, component: str | None = None):
    """`raw` structured as `cls`, or one UserError line. Key paths are dotted from the top
    level ("train.kimg"), or relative to `table` for a `component` ("model 'dcgan'")."""
    try:
        return converter.structure(raw, cls)
    except (BaseValidationError, _Mismatch, ForbiddenExtraKeysError) as exc:
        raise UserError(_explain(exc, table, component)) from None


def _explain(exc: Exception, table: str | None, component: str | None) -> str:
    path: list = []
    while isinstance(exc, BaseValidationError):  # the first error, and the keys leading to it
        # An unknown key first: a misspelt key also leaves its rightful key missing.
        exc = next((e for e in exc.exceptions if isinstance(e, ForbiddenExtraKeysError)),
                   exc.exceptions[0])
        for note in getattr(exc, "__notes__", ()):
            if isinstance(note, (AttributeValidationNote, IterableValidationNote)):
                path.append(note.name if isinstance(note, AttributeValidationNote) else note.index)
                break
    dotted = ".".join(map(str, path))

    def where(keys: list) -> str:
        if table is not None:
            return f"{table} for {component}" if component else table
        return f"[{'.'.join(map(str, keys))}]" if keys else "the top level"

    if isinstance(exc, ForbiddenExtraKeysError):
        key = sorted(map(str, exc.extra_fields))[0]
        known = [a.name for a in attrs.fields(exc.cl) if a.name != "params"]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{key}' in {where(path)}{hint}; known: {', '.join(known) or 'none'}"
    if isinstance(exc, KeyError) and path and exc.args == (path[-1],):
        return f"{where(path[:-1])} needs '{path[-1]}'"
    if isinstance(exc, _Mismatch):
        what = f"'{dotted}'" if path else ("the recipe" if table is None else where(path))
        prefix = f"{where(path)}: " if table is not None and path else ""
        return f"{prefix}{what} must be {exc.expected}, got {exc.given}"
    if isinstance(exc, UserError):  # a range check of the table at `path`
        return f"{where(path)} {exc}" if path or table is not None else str(exc)
    return f"{where(path)}: {exc}"


# ---------------------------------------------------------------------------------------------
# Building registered components from their tables

_UNSET = object()  # a parameter the table leaves to the constructor's default


def construct(kind: str, name: str, params: dict, table: str, **supplied: Any) -> Any:
    """Build registered entry `name` from its recipe table `params` plus engine-supplied keywords.

    The table's keys are the constructor's parameters (less those the engine supplies), typed by
    its annotations; unknown keys, missing ones and wrong types are UserErrors naming the table.
    """
    factory = registry(kind).get(name)
    component = f"{singular_kind(kind)} '{name}'"
    shape = _parameters(factory, frozenset(supplied))
    if shape is not None:
        cls, takes_any, accepted = shape
        own = attrs.fields_dict(cls)
        extra = {k: v for k, v in params.items() if k not in own} if takes_any else {}
        built = structure({k: v for k, v in params.items() if k not in extra}, cls,
                          table=table, component=component)
        params = {**{k: getattr(built, k) for k in own if getattr(built, k) is not _UNSET}, **extra}
        if not takes_any:
            supplied = {k: v for k, v in supplied.items() if k in accepted}
    try:
        return factory(**params, **supplied)
    except UserError:
        raise
    except (TypeError, ValueError) as exc:
        raise UserError(f"{table} for {component}: {exc}") from None


def _parameters(factory, supplied: frozenset):
    try:
        return _parameters_of(factory, supplied)
    except TypeError:  # an unhashable factory: not cached
        return _parameters_of.__wrapped__(factory, supplied)


@functools.cache
def _parameters_of(factory, supplied: frozenset):
    """(an attrs class of the recipe's parameters, whether it takes **kwargs, all parameter
    names), or None when the factory has no signature to read."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - annotations that do not resolve type nothing
        hints = {}
    fields = {n: attrs.field(type=_toml_type(hints.get(n, Any)), kw_only=True,
                             default=attrs.NOTHING if p.default is p.empty else _UNSET)
              for n, p in signature.parameters.items()
              if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in supplied}
    cls = attrs.make_class(f"{getattr(factory, '__name__', 'component')}_params", fields, frozen=True)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    return cls, takes_any, set(signature.parameters)


def _toml_type(tp: Any) -> Any:
    """`tp` when TOML values can be structured as it, else Any (the constructor checks)."""
    def supported(tp) -> bool:
        if tp in _NAMES or tp in (Any, type(None)) or attrs.has(tp):
            return True
        if _is_union(tp) or _shape(tp) in _ARRAYS | _TABLES:
            return all(a is Ellipsis or supported(a) for a in typing.get_args(tp))
        return False
    return tp if supported(tp) else Any
