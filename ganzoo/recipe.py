"""Recipes: TOML files loaded into frozen attrs classes, with `--set` overrides.

Precedence: `--set` overrides > recipe file > defaults. Unknown keys and wrong types are
UserErrors naming the key path and its table. Tables that configure a registered component
([data], [model], [[losses]], [schedule]) keep the component's own keys in `params`; the
component's constructor checks them when it is built (see `ganzoo.engine.build`).
"""

import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Union

import attrs

from ganzoo.errors import UserError

_CHOICES = {
    "device": ("auto", "cpu", "cuda"),
    "precision": ("fp32", "bf16"),
    "optimizer": ("adam", "adamw", "rmsprop", "sgd"),
}


def _one_of(kind: str):
    def check(instance, attribute, value):
        if value not in _CHOICES[kind]:
            raise UserError(f"{attribute.name} = {value!r} is not one of {', '.join(_CHOICES[kind])}")
    return check


def _positive(instance, attribute, value):
    if not value > 0:  # written so that NaN fails too
        raise UserError(f"{attribute.name} must be positive, got {value!r}")


def _non_negative(instance, attribute, value):
    if not value >= 0:
        raise UserError(f"{attribute.name} must not be negative, got {value!r}")


def _at_least_minus_one(instance, attribute, value):
    if value < -1:
        raise UserError(f"{attribute.name} must be -1 (automatic) or a count of processes, got {value!r}")


def _unit_interval(instance, attribute, value):
    if not 0.0 <= value < 1.0:
        raise UserError(f"{attribute.name} must lie in [0, 1), got {value!r}")


@attrs.frozen
class RunConfig:
    out_dir: str = "runs/default"
    seed: int = 0
    device: str = attrs.field(default="auto", validator=_one_of("device"))
    precision: str = attrs.field(default="fp32", validator=_one_of("precision"))


@attrs.frozen
class DataConfig:
    dataset: str = "toyfaces"
    mirror: bool = False  # horizontal flips, decided per sample by the deterministic sampler
    workers: int = attrs.field(default=-1, validator=_at_least_minus_one)  # -1: automatic
    hint: str = ""  # appended to data errors, e.g. where to obtain the dataset
    params: dict = attrs.Factory(dict)  # the dataset's own keys (resolution, root, ...)

    @property
    def resolution(self) -> int:
        return self.params["resolution"]


@attrs.frozen
class ModelConfig:
    name: str = "dcgan"
    params: dict = attrs.Factory(dict)


@attrs.frozen
class LossConfig:
    name: str
    weight: float = 1.0
    params: dict = attrs.Factory(dict)


@attrs.frozen
class OptimizerConfig:
    name: str = attrs.field(default="adam", validator=_one_of("optimizer"))
    lr: float = attrs.field(default=2e-4, validator=_positive)
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = attrs.field(default=1e-8, validator=_positive)
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    momentum: float = attrs.field(default=0.0, validator=_non_negative)  # sgd, rmsprop
    alpha: float = attrs.field(default=0.99, validator=_positive)  # rmsprop smoothing


@attrs.frozen
class OptimConfig:
    generator: OptimizerConfig = attrs.Factory(OptimizerConfig)
    discriminator: OptimizerConfig = attrs.Factory(OptimizerConfig)


@attrs.frozen
class ScheduleConfig:
    name: str = "fixed"
    params: dict = attrs.Factory(dict)


@attrs.frozen
class TrainConfig:
    kimg: float = attrs.field(default=100.0, validator=_positive)  # thousands of real images shown to D
    batch_size: int = attrs.field(default=64, validator=_positive)
    n_critic: int = attrs.field(default=1, validator=_positive)  # D steps per G step
    log_kimg: float = attrs.field(default=1.0, validator=_positive)
    sample_kimg: float = attrs.field(default=10.0, validator=_positive)
    snapshot_kimg: float = attrs.field(default=50.0, validator=_positive)
    keep_snapshots: int = attrs.field(default=5, validator=_non_negative)  # 0 keeps all
    sample_grid: int = attrs.field(default=64, validator=_positive)  # images in each sample grid


@attrs.frozen
class EmaConfig:
    beta: float = attrs.field(default=0.999, validator=_unit_interval)  # 0 disables averaging


@attrs.frozen
class EvalConfig:
    metrics: list[str] = attrs.Factory(list)
    every_kimg: float = attrs.field(default=0.0, validator=_non_negative)  # 0: only at the end
    num_images: int = attrs.field(default=10_000, validator=_positive)
    params: dict = attrs.Factory(dict)  # per-metric tables, e.g. [eval.swd]


@attrs.frozen
class Recipe:
    run: RunConfig = attrs.Factory(RunConfig)
    data: DataConfig = attrs.Factory(DataConfig)
    model: ModelConfig = attrs.Factory(ModelConfig)
    losses: list[LossConfig] = attrs.Factory(list)
    optim: OptimConfig = attrs.Factory(OptimConfig)
    schedule: ScheduleConfig = attrs.Factory(ScheduleConfig)
    train: TrainConfig = attrs.Factory(TrainConfig)
    ema: EmaConfig = attrs.Factory(EmaConfig)
    eval: EvalConfig = attrs.Factory(EvalConfig)


# Tables whose keys beyond their own fields belong to the component they name.
_OPEN_TABLES = {DataConfig, ModelConfig, LossConfig, ScheduleConfig, EvalConfig}
# ... and those whose extra keys must be tables (per-metric settings: [eval.swd]).
_TABLES_OF_TABLES = {EvalConfig}


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe file '{path}' does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"recipe '{path}' is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"recipe '{path}' is not UTF-8 text") from None
    for override in overrides:
        apply_override(raw, override)
    return recipe_from_dict(raw, source=str(path))


def recipe_from_dict(raw: dict, source: str = "recipe") -> Recipe:
    try:
        recipe = _structure(Recipe, raw, "")
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    if "resolution" not in recipe.data.params:
        raise UserError(f"{source}: [data] needs 'resolution'")
    if not recipe.losses:
        raise UserError(f"{source}: the recipe has no [[losses]]; add at least one loss term")
    return recipe


def parse_value(text: str) -> Any:
    """A `--set` VALUE: parsed as TOML, falling back to a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict, override: str) -> None:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {override!r} must look like key.path=VALUE")
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise UserError(f"--set {key}: '{where}' is a value, not a table")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = parse_value(value)
    else:
        node[last] = parse_value(value)


def _list_index(items: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise UserError(f"--set {where}: index {part!r} out of range (the array has {len(items)} entries)")
    return int(part)


def _structure(cls, raw: Any, path: str):
    table = f"[{path}]" if path else "the top level"
    if not isinstance(raw, dict):
        raise UserError(f"{path or 'recipe'} must be a table, got {_type_name(raw)}")
    fields = {f.name: f for f in attrs.fields(cls)}
    own = {n for n in fields if n != "params"}
    kwargs, extra = {}, {}
    for key, value in raw.items():
        key_path = f"{path}.{key}" if path else key
        if key in own:
            kwargs[key] = _convert(fields[key].type, value, key_path)
        elif cls in _OPEN_TABLES and (cls not in _TABLES_OF_TABLES or isinstance(value, dict)):
            extra[key] = value
        else:
            close = difflib.get_close_matches(key, sorted(own), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"unknown key '{key}' in {table}{hint}; known: {', '.join(sorted(own))}")
    for name, f in fields.items():
        if f.default is attrs.NOTHING and name not in kwargs:
            raise UserError(f"{table} needs '{name}'")
    if extra:
        kwargs["params"] = extra
    try:
        return cls(**kwargs)
    except UserError as exc:
        raise UserError(f"{path}.{exc}" if path else str(exc)) from None


def _convert(tp, value: Any, key_path: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if attrs.has(tp):
        return _structure(tp, value, key_path)
    if origin in (Union, types.UnionType):
        for option in args:
            try:
                return _convert(option, value, key_path)
            except UserError:
                continue
        raise _type_error(key_path, tp, value)
    if origin is list:
        if not isinstance(value, list):
            raise _type_error(key_path, tp, value)
        return [_convert(args[0], v, f"{key_path}.{i}") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            raise _type_error(key_path, tp, value)
        return tuple(_convert(a, v, f"{key_path}.{i}") for i, (a, v) in enumerate(zip(args, value)))
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool, dict) and isinstance(value, tp):
        return value
    raise _type_error(key_path, tp, value)


def _type_error(key_path: str, tp, value) -> UserError:
    expected = getattr(tp, "__name__", str(tp)).replace("NoneType", "none")
    if attrs.has(tp):
        expected = "table"
    return UserError(f"'{key_path}' must be {_article(expected)}, got {_type_name(value)} {value!r}")


def _article(name: str) -> str:
    return ("an " if name[:1] in "aeiou" else "a ") + name


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------------
# Writing the resolved recipe back as TOML


def recipe_to_dict(recipe: Recipe) -> dict:
    def unfold(obj):
        if attrs.has(type(obj)):
            out = {}
            for f in attrs.fields(type(obj)):
                value = getattr(obj, f.name)
                if f.name == "params":
                    out.update({k: unfold(v) for k, v in value.items()})
                else:
                    out[f.name] = unfold(value)
            return out
        if isinstance(obj, (list, tuple)):
            return [unfold(v) for v in obj]
        if isinstance(obj, dict):
            return {k: unfold(v) for k, v in obj.items()}
        return obj
    return unfold(recipe)


def dumps_toml(data: dict) -> str:
    """A small TOML writer for recipe-shaped data (tables, arrays of tables, scalars, arrays)."""
    lines: list[str] = []
    _emit_table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _emit_table(table: dict, path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not _is_table(v) and not _is_table_array(v)}
    if path and (scalars or not table):
        lines.append(f"\n[{'.'.join(map(_key, path))}]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if _is_table(value):
            _emit_table(value, path + [key], lines)
        elif _is_table_array(value):
            for item in value:
                lines.append(f"\n[[{'.'.join(map(_key, path + [key]))}]]")
                for k, v in item.items():
                    lines.append(f"{_key(k)} = {_value(v)}")


def _is_table(value) -> bool:
    return isinstance(value, dict)


def _is_table_array(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key) -> str:
    key = str(key)
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else _string(key)


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else _escape(c) for c in escaped) + '"'


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # Python's repr of ints and floats (inf, nan too) is valid TOML
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
