"""Experiment configs: frozen dataclasses, JSON round trips and ``key=value`` overrides.

An experiment's config is a (possibly nested) frozen dataclass. ``alignjax run NAME
--set train.num_steps=200 --set world.seed=3`` reaches a nested field by its dotted
path; the value is parsed with the field's declared type, so a typo or a wrong type is
one clear error instead of a run that silently ignores it.

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Train:
...     num_steps: int = 100
...     learning_rate: float = 1e-3
>>> @dataclasses.dataclass(frozen=True)
... class Config:
...     train: Train = Train()
...     name: str = "demo"
>>> apply_overrides(Config(), ["train.num_steps=5", "name=x"])
Config(train=Train(num_steps=5, learning_rate=0.001), name='x')
"""

import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from typing import Any


class ConfigError(ValueError):
    """A config override or config file that cannot be applied (the message says why)."""


def to_dict(config: Any) -> dict[str, Any]:
    """The config as JSON-ready nested dicts (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a config dataclass of type ``cls`` from :func:`to_dict` output."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name in values:
            kwargs[field.name] = _coerce(hints[field.name], values[field.name], field.name)
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown config keys {sorted(unknown)} for {cls.__name__}")
    return cls(**kwargs)


def apply_overrides(config: Any, overrides: Sequence[str]) -> Any:
    """Return ``config`` with each ``"dotted.key=value"`` override applied.

    Raises:
      ConfigError: malformed override, unknown key (the message lists the valid keys at
        that level) or a value that does not parse as the field's type.
    """
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} is not of the form key=value")
        config = _replace_path(config, key.strip().split("."), raw.strip(), key.strip())
    return config


def _replace_path(node: Any, path: list[str], raw: str, full_key: str) -> Any:
    if not dataclasses.is_dataclass(node):
        raise ConfigError(f"config key {full_key!r}: {'.'.join(path)!r} is not a nested config")
    names = [f.name for f in dataclasses.fields(node)]
    if path[0] not in names:
        raise ConfigError(f"unknown config key {full_key!r}; valid keys here: {', '.join(names)}")
    if len(path) > 1:
        child = _replace_path(getattr(node, path[0]), path[1:], raw, full_key)
    else:
        hint = typing.get_type_hints(type(node))[path[0]]
        child = _parse(hint, raw, full_key)
    try:
        return dataclasses.replace(node, **{path[0]: child})
    except (TypeError, ValueError) as error:  # the config's own validation
        raise ConfigError(f"config key {full_key!r}: {error}") from None


def _parse(hint: Any, raw: str, key: str) -> Any:
    """Parse the command-line string ``raw`` as a value of type ``hint``."""
    if dataclasses.is_dataclass(hint):
        raise ConfigError(f"config key {key!r} is a nested config; set one of its fields")
    if raw.lower() in ("none", "null") and _allows_none(hint):
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if isinstance(value, str) and _tuple_like(hint) and "," in raw:
        value = [json.loads(v) if _is_json(v) else v for v in raw.split(",")]
    return _coerce(hint, value, key)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"config key {key!r} must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, key) for v in items)
        if len(args) != len(items):
            raise ConfigError(f"config key {key!r} needs {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, key) for a, v in zip(args, items))
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
    if hint is str:
        return value if isinstance(value, str) else json.dumps(value)
    return value


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _tuple_like(hint: Any) -> bool:
    if _allows_none(hint):
        return any(_tuple_like(a) for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) is tuple


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True
