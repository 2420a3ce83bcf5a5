"""Checks for the values users pass to the API and the command line (one implementation for both).

Each check returns the value, normalised, or raises :class:`~clapkit.errors.UsageError` naming the
option and the cause. Nothing heavy is imported, so the command line can check before loading torch.
"""
from __future__ import annotations

import math
import numbers
import string
from collections.abc import Sequence

from .errors import UsageError


def positive_int(name: str, value: object) -> int:
    """A whole number >= 1 (``True``/``False`` and floats with a fraction are refused)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise UsageError(f"{name}: must be a whole number of at least 1, got {value!r}")
    return int(value)


def positive_seconds(name: str, value: object, *, at_least: float = 0.0, at_most: float | None = None) -> float:
    """A finite number of seconds > 0 (and within ``[at_least, at_most]`` when given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name}: must be a finite number of seconds above 0, got {value!r}")
    if value < at_least:
        raise UsageError(f"{name}: must be at least {at_least:g} s, got {value!r}")
    if at_most is not None and value > at_most:
        raise UsageError(f"{name}: must be at most {at_most:g} s, got {value!r}")
    return float(value)


MIN_HOP_SECONDS = 0.1  # a window every 0.1 s already encodes a 7 s clip 70 times over


def hop_seconds(name: str, value: object, clip_seconds: float | None = None) -> float:
    """Seconds between sliding windows: at least ``MIN_HOP_SECONDS``, at most the clip length."""
    return positive_seconds(name, value, at_least=MIN_HOP_SECONDS, at_most=clip_seconds)


def template(value: object, name: str = "template") -> str:
    """A prompt template with exactly one empty ``{}`` field, e.g. ``"this is the sound of {}"``.
    Literal braces are written ``{{`` and ``}}`` as in ``str.format``."""
    if not isinstance(value, str):
        raise UsageError(f"{name}: must be a string with one '{{}}', got {type(value).__name__}")
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(value) if f is not None]
    except ValueError as e:
        raise UsageError(f"{name}: {value!r} is not a valid template ({e}); write literal braces as {{{{ and }}}}") from None
    if any(field != ("", "", None) for field in fields):
        raise UsageError(f"{name}: {value!r} has a named, numbered or formatted field; "
                         f"use a plain '{{}}' where the label goes")
    if len(fields) != 1:
        raise UsageError(f"{name}: {value!r} must contain exactly one '{{}}' where the label goes, "
                         f"found {len(fields)}")
    return value


def string_list(name: str, value: object, *, allow_empty: bool = False) -> list[str]:
    """A list (or tuple) of strings; a bare string is refused rather than read letter by letter."""
    if isinstance(value, (str, bytes)):
        raise UsageError(f"{name}: must be a list of strings, got a single string {value!r:.60}; "
                         f"wrap it in a list")
    if not isinstance(value, Sequence):
        raise UsageError(f"{name}: must be a list of strings, got {type(value).__name__}")
    items = list(value)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise UsageError(f"{name}[{index}]: must be a string, got {type(item).__name__} {item!r:.60}")
    if not items and not allow_empty:
        raise UsageError(f"{name}: needs at least one entry")
    return items
