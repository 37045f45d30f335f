"""Checks of single config values, each failing with one line that names the setting and what it accepts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iwae_cli.errors import ConfigError


def whole_number(value: Any, name: str, minimum: int = 1, allow_null: bool = False) -> int | None:
    """`value` as an int >= minimum (or None where null is allowed), else ConfigError."""
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        null = " (or null)" if allow_null else ""
        raise ConfigError(f"{name} must be a whole number >= {minimum}{null}, got {name}={value}")
    return value


def seed_list(value: Any, name: str = "seeds") -> list[int]:
    """`value` as a sorted list of distinct whole numbers >= 0 (a table's seeds, in the order its per-seed
    columns list them), else ConfigError."""
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []
    whole = all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in items)
    if not items or not whole or len(set(items)) != len(items):
        raise ConfigError(
            f"{name} must be a list of distinct whole numbers >= 0, for example {name}=[0,1,2], got {name}={value}"
        )
    return sorted(items)


def number(value: Any, name: str, minimum: float = 0.0, strict: bool = False) -> float:
    """`value` as a float >= minimum (> minimum when strict), else ConfigError."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ConfigError(f"{name} must be a number {bound}, got {name}={value}")
    return float(value)


def flag(value: Any, name: str) -> bool:
    """A true/false setting, else ConfigError."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {name}={value}")
    return value


def progress_setting(cfg: Any) -> bool | None:
    """The config's `progress`: true/false force progress bars on or off, auto (None) shows them on a terminal."""
    value = cfg.get("progress", "auto")
    return None if value == "auto" else bool(value)
