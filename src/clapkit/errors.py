"""clapkit's error hierarchy: every error about the user's inputs, files, options or set-up.

Each message is one line naming the input (file, option, key) and the cause. The command line
catches :class:`ClapkitError` once, at its entry, and prints ``clapkit: error: <message>``; any
other exception is a bug and keeps its traceback. This module imports nothing heavy, so that the
command line can name these classes before torch is loaded.
"""
from __future__ import annotations


class ClapkitError(Exception):
    """Base class: a user-facing error whose message is one line naming the input and the cause."""


class UsageError(ClapkitError, ValueError):
    """An argument or option with a bad value or type (a template, a batch size, a label list)."""


class ConfigError(ClapkitError, ValueError):
    """A model or training config that is unknown, malformed, or has unknown or mistyped keys."""


class AudioError(ClapkitError, ValueError):
    """Audio that cannot be used: unreadable, undecodable, empty, non-finite, implausible."""


class TokenizerError(ClapkitError, ValueError):
    """A tokenizer that cannot be loaded, or input it cannot tokenize."""


class WeightsError(ClapkitError, RuntimeError):
    """Weights that cannot be found, read or trusted, or that do not fit the model."""


class ManifestError(ClapkitError, ValueError):
    """A manifest file that is missing or malformed; the message names ``file:line``."""


class DatasetError(ClapkitError, ValueError):
    """A dataset folder or metadata file that does not match the adapter's official layout."""


class ShardError(ClapkitError, ValueError):
    """A WebDataset shard that cannot be written or read back."""


def one_line(text: object, limit: int = 400) -> str:
    """``text`` folded onto one line, ANSI escapes removed, cut to ``limit`` characters."""
    import re

    line = " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(text)).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def name_list(names: list[str], shown: int = 8) -> str:
    """``a, b, c`` — or the first ``shown`` names and how many more, for messages that stay short."""
    if len(names) <= shown:
        return ", ".join(names)
    return ", ".join(names[:shown]) + f" … and {len(names) - shown} more"
