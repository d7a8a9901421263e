"""Validation of loss parameters: each failure is a one-line ganzoo.UserError."""

from __future__ import annotations

import math

import ganzoo


def number(loss: str, name: str, value, *, minimum: float | None = None,
           strictly: bool = False) -> float:
    """`value` as a finite float, optionally >= `minimum` (or > it when `strictly`)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strictly else value >= minimum
    if not ok:
        bound = "" if minimum is None else f" {'>' if strictly else '>='} {minimum:g}"
        raise ganzoo.UserError(f"{loss}: {name} must be a finite number{bound}, got {value!r}")
    return float(value)
