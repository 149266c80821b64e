"""Component options (``-o`` for methods, ``-d`` for datasets, ``-m name.key`` for metrics): one place that
turns their text into values and checks them, a bad one being a one-line :class:`~pam_bench.errors.OptionError`
naming the component and the option.

The CLI parses ``key=value`` with :func:`parse_value` (true/false, whole numbers, decimals, else text); a
component then reads each option with :func:`integer`, :func:`real`, :func:`choice` or :func:`boolean`
(which also accept the text forms a Python caller may pass), or passes a free-form group through
:func:`numeric`.
"""
from __future__ import annotations

from typing import Any

from .errors import OptionError, PamBenchError

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_value(text: str) -> Any:
    """A ``key=value`` option's value: ``true``/``false`` -> bool, then int, then float, else the text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for t in (int, float):
        try:
            return t(text)
        except ValueError:
            pass
    return text


def parse_pairs(pairs) -> dict:
    """``key=value`` pairs -> {key: parse_value(value)} (dashes in keys become underscores)."""
    out = {}
    for p in pairs:
        if "=" not in p:
            raise PamBenchError(f"option {p!r} must look like key=value")
        k, v = p.split("=", 1)
        out[k.strip().replace("-", "_")] = parse_value(v.strip())
    return out


def numeric(options: dict) -> dict:
    """Options passed through to a backend: text that looks like a number becomes that number."""
    out = {}
    for k, v in options.items():
        if isinstance(v, str):
            for cast in (int, float):
                try:
                    v = cast(v)
                    break
                except ValueError:
                    continue
        out[k] = v
    return out


def integer(component: str, key: str, raw, lo: int | None = None) -> int:
    """Option ``key`` of ``component`` as an int (>= ``lo`` when given)."""
    try:
        v = int(raw)
    except (TypeError, ValueError):
        raise OptionError(component, key, f"must be an integer, got {raw!r}") from None
    if lo is not None and v < lo:
        raise OptionError(component, key, f"must be >= {lo}, got {v}")
    return v


def real(component: str, key: str, raw) -> float:
    """Option ``key`` of ``component`` as a finite float."""
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise OptionError(component, key, f"must be a number, got {raw!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise OptionError(component, key, f"must be finite, got {raw!r}")
    return v


def choice(component: str, key: str, raw, allowed: tuple[str, ...]) -> str:
    """Option ``key`` of ``component`` as one of ``allowed``."""
    v = str(raw)
    if v not in allowed:
        raise OptionError(component, key, f"must be one of {', '.join(allowed)}, got {v!r}")
    return v


def boolean(component: str, key: str, raw) -> bool:
    """Option ``key`` of ``component`` as a bool (text: 1/true/yes/on or 0/false/no/off)."""
    if isinstance(raw, str):
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise OptionError(component, key, f"must be a boolean (true/false), got {raw!r}")
    return bool(raw)
