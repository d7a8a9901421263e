"""Range checks for recipe values: one clear UserError line each, shared by the core and plugins.

Types are already enforced when a recipe is structured (a component's parameters are typed by
its constructor's annotations), so these check values. Each returns the value, so a constructor
can write `self.size = checks.at_least(size, 1, "toyfaces: size")`. They also reject the wrong
type, for callers that build components from Python rather than from a recipe.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from ganzoo.errors import UserError


def show(value: Any) -> str:
    """A value as a recipe would spell it (TOML), for messages: true, "text", [1, 2]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else
                                               "-inf" if value == -math.inf else repr(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML `true` is no count


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(value: Any, what: str) -> int:
    if not _is_int(value):
        raise UserError(f"{what} must be an integer, got {show(value)}")
    return value


def boolean(value: Any, what: str) -> bool:
    """true or false: 1 and "yes" are no switches."""
    if not isinstance(value, bool):
        raise UserError(f"{what} must be true or false, got {show(value)}")
    return value


def finite(value: Any, what: str) -> float:
    """A finite number (no nan, no inf)."""
    if not (_is_number(value) and math.isfinite(value)):
        raise UserError(f"{what} must be a finite number, got {show(value)}")
    return value


def at_least(value: Any, minimum: float, what: str) -> Any:
    """A finite number >= minimum; an int stays an int."""
    if not (_is_number(value) and math.isfinite(value) and value >= minimum):
        kind = "an integer" if _is_int(minimum) and _is_int(value) else "a number"
        raise UserError(f"{what} must be {kind} >= {minimum:g}, got {show(value)}")
    return value


def positive(value: Any, what: str) -> Any:
    """A finite number > 0."""
    if not (_is_number(value) and math.isfinite(value) and value > 0):
        raise UserError(f"{what} must be a finite number > 0, got {show(value)}")
    return value


def count(value: Any, what: str, minimum: int = 1) -> int:
    """An integer >= minimum (1 by default): sizes, batch sizes, numbers of images."""
    if not (_is_int(value) and value >= minimum):
        raise UserError(f"{what} must be an integer >= {minimum}, got {show(value)}")
    return value


def in_range(value: Any, low: float, high: float, what: str, *, high_open: bool = False) -> Any:
    """low <= value <= high (or < high when `high_open`)."""
    ok = _is_number(value) and math.isfinite(value) and low <= value and (
        value < high if high_open else value <= high)
    if not ok:
        closing = ")" if high_open else "]"
        raise UserError(f"{what} must lie in [{low:g}, {high:g}{closing}, got {show(value)}")
    return value


def power_of_two(value: Any, what: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer power of two within [minimum, maximum]: resolutions, cache levels."""
    ok = _is_int(value) and value >= minimum and value & (value - 1) == 0 and (
        maximum is None or value <= maximum)
    if not ok:
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise UserError(f"{what} must be a power of two {bounds}, got {show(value)}")
    return value


def one_of(value: Any, choices: Iterable[Any], what: str) -> Any:
    choices = list(choices)
    if value not in choices:
        raise UserError(f"{what} must be one of {', '.join(show(c) for c in choices)}, got {show(value)}")
    return value
