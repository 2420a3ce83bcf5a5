"""Typed configs: JSON/YAML data parsed strictly into dataclasses.

``parse(cls, data, source)`` builds dataclass ``cls`` from a dict, recursing into nested dataclass
fields. An unknown key, a missing required key or a value of the wrong type raises
:class:`~clapkit.errors.ConfigError` naming the source, the dotted key and the cause, in one line.
Model configs (``clapkit.models.config``) and training configs use it alike.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from .errors import ConfigError, name_list, one_line

T = TypeVar("T")


def parse(cls: type[T], data: object, source: str, prefix: str = "") -> T:
    """``cls(**data)`` with every key and value checked against ``cls``'s annotated fields."""
    where = f"{source}: {prefix.rstrip('.') or 'config'}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(f"{source}: unknown key {prefix}{unknown[0]!s} (known: {name_list(sorted(fields), 20)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = check_value(hints[name], data[name], source, prefix + name)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key {prefix}{name}")
    return cls(**values)


def check_value(hint: Any, value: object, source: str, key: str) -> Any:
    """``value`` checked (and, for nested dataclasses, parsed) against the type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return check_value(option, value, source, key)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, source, key + ".")
    if hint is Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _wrong_type(source, key, "a list", value)
        item = args[0] if args else Any
        checked = [check_value(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(checked) if origin is tuple else checked
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _wrong_type(source, key, "an object", value)
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong_type(source, key, "a number", value)
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise _wrong_type(source, key, "a whole number", value)
        return int(value)
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise _wrong_type(source, key, "a string" if hint is str else "true or false", value)
        return value
    raise TypeError(f"config field {key}: unsupported annotation {hint!r}")  # a bug in the dataclass


def _wrong_type(source: str, key: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"{source}: {key} must be {expected}, got {type(value).__name__} {value!r:.60}")


def read_config_file(path: str | Path) -> dict:
    """A JSON (or, with PyYAML, YAML) file's top-level object, with one-line errors."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or type(e).__name__})") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({one_line(e)})") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
