"""Configs: validated frozen dataclasses, JSON round trips, ``key=value`` overrides.

Every config of alignjax is a (possibly nested) frozen dataclass. This module holds the
machinery they share and the two configs of the training engine:

- :func:`configclass` makes a frozen dataclass whose numeric fields are checked when
  it is constructed: every ``float`` must be finite, and a field declared with
  :func:`checked` must lie in its range (``checked(1e-3, gt=0)``). A bad value raises
  :class:`ConfigError` naming the field and the accepted range.
- :func:`apply_overrides` applies ``alignjax run NAME --set train.num_steps=200 --set
  train.warmup_steps=0`` style overrides: each value is parsed with its field's declared
  type, *all* overrides are applied, and only then is the whole config validated, so
  overrides that are only valid together (fewer steps and a shorter warm-up) work.
  Messages name the dotted path (``train.learning_rate``).
- :func:`to_dict` / :func:`from_dict`: JSON round trips (``config.json`` of a run).
- :class:`MeshConfig` and :class:`TrainConfig`: the device mesh and the optimisation
  of one call of :func:`alignjax.training.fit`.

>>> @configclass
... class Train:
...     num_steps: int = checked(100, ge=1)
...     learning_rate: float = checked(1e-3, gt=0)
>>> @configclass
... class Config:
...     train: Train = Train()
...     name: str = "demo"
>>> apply_overrides(Config(), ["train.num_steps=5", "name=x"])
Config(train=Train(num_steps=5, learning_rate=0.001), name='x')
>>> apply_overrides(Config(), ["train.learning_rate=NaN"])
Traceback (most recent call last):
...
alignjax.config.ConfigError: train.learning_rate=nan: must be a finite number > 0
"""

import dataclasses
import json
import math
import numbers
import threading
import types
import typing
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ConfigError",
    "MeshConfig",
    "TrainConfig",
    "apply_overrides",
    "checked",
    "configclass",
    "from_dict",
    "to_dict",
    "validate",
]


class ConfigError(ValueError):
    """A config value, override or config file that cannot be used (the message says why).

    Attributes:
      path: the dotted path of the offending field (``"train.learning_rate"``), or
        ``""`` when the problem is not one field's.
    """

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        if not self.path:
            return self.message
        return (
            f"{self.path}{self.message}"
            if self.message.startswith("=")
            else f"{self.path}: {self.message}"
        )

    def at(self, prefix: str) -> "ConfigError":
        """The same error with ``prefix`` (``"train."``) before the last part of its path."""
        name = self.path.rsplit(".", 1)[-1] if self.path else ""
        return ConfigError(self.message, f"{prefix}{name}" if name else prefix.rstrip("."))


# Ranges of numeric fields.


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The accepted range of a numeric field (each bound optional)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def admits(self, value: float) -> bool:
        return not (
            (self.gt is not None and not value > self.gt)
            or (self.ge is not None and not value >= self.ge)
            or (self.lt is not None and not value < self.lt)
            or (self.le is not None and not value <= self.le)
        )

    def describe(self) -> str:
        """``"> 0"``, ``">= 1"``, ``"in [0, 1)"`` ..."""
        low = self.gt if self.gt is not None else self.ge
        high = self.lt if self.lt is not None else self.le
        if low is not None and high is not None:
            opening, closing = (
                "(" if self.gt is not None else "[",
                ")" if self.lt is not None else "]",
            )
            return f"in {opening}{low:g}, {high:g}{closing}"
        if low is not None:
            return f"{'>' if self.gt is not None else '>='} {low:g}"
        if high is not None:
            return f"{'<' if self.lt is not None else '<='} {high:g}"
        return ""


def checked(
    default: Any = dataclasses.MISSING,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> Any:
    """A dataclass field whose value (or each value of a tuple) must lie in a range.

    ``learning_rate: float = checked(1e-3, gt=0)``; ``num_steps: int = checked(ge=1)``
    (no default). ``None`` passes where the annotation allows it.
    """
    bounds = Bounds(gt=gt, ge=ge, lt=lt, le=le)
    return dataclasses.field(default=default, metadata={"bounds": bounds})


def _numeric_kind(hint: Any) -> str | None:
    """``"int"``, ``"float"`` or ``None`` for the numbers a field (or its tuple) holds."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = {_numeric_kind(a) for a in args if a is not type(None)} - {None}
        return "float" if "float" in kinds else (kinds.pop() if kinds else None)
    if origin is tuple:
        kinds = {_numeric_kind(a) for a in args if a is not Ellipsis} - {None}
        return "float" if "float" in kinds else (kinds.pop() if kinds else None)
    if hint is float:
        return "float"
    if hint is int:
        return "int"
    return None


def _check_number(value: Any, kind: str, bounds: Bounds | None) -> str | None:
    """Why ``value`` (a number, ``None`` or a tuple of numbers) is not acceptable, or ``None``."""
    if isinstance(value, (tuple, list)):
        problems = [_check_number(item, kind, bounds) for item in value]
        bad = [p for p in problems if p]
        return f"every value {bad[0]}" if bad else None
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None  # None where allowed, or not a number: the type parser speaks for it
    what = "an integer" if kind == "int" else "a finite number"
    range_text = f" {bounds.describe()}" if bounds is not None and bounds.describe() else ""
    finite = kind == "int" or math.isfinite(value)
    if not finite or (bounds is not None and not bounds.admits(value)):
        return f"must be {what}{range_text}"
    return None


def _check_fields(node: Any) -> None:
    """Checks the numeric fields of one dataclass (not its nested configs)."""
    hints = _hints(type(node))
    for field in dataclasses.fields(node):
        kind = _numeric_kind(hints.get(field.name))
        bounds = field.metadata.get("bounds")
        if kind is None and bounds is None:
            continue
        value = getattr(node, field.name)
        problem = _check_number(value, kind or "float", bounds)
        if problem:
            raise ConfigError(f"={value!r}: {problem}", field.name)


_local = threading.local()


def configclass(cls: type) -> type:
    """A frozen dataclass whose fields are validated on construction.

    Checks every ``float`` field (and tuple of floats) for finiteness and every
    :func:`checked` field against its range, then runs the class's own
    ``__post_init__`` (cross-field checks). Errors are :class:`ConfigError` with the
    field as ``path`` and the class name in the message.
    """
    own = cls.__dict__.get("__post_init__")

    def __post_init__(self) -> None:
        if getattr(_local, "deferred", False):
            return
        try:
            _check_fields(self)
            if own is not None:
                own(self)
        except ConfigError as error:
            raise error.at(f"{type(self).__name__}.") from None

    cls.__post_init__ = __post_init__
    return dataclasses.dataclass(frozen=True)(cls)


def validate(config: Any, path: str = "") -> None:
    """Validates ``config`` and every nested config, deepest first.

    Runs each dataclass's field checks and ``__post_init__``; a failure becomes a
    :class:`ConfigError` whose ``path`` is the dotted path from ``config``.
    """
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value, f"{path}{field.name}.")
    try:
        _check_fields(config)
        post_init = getattr(type(config), "__post_init__", None)
        if post_init is not None:
            post_init(config)
    except ConfigError as error:
        raise error.at(path) from None
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error), path.rstrip(".") or type(config).__name__) from None


# JSON round trips.


def to_dict(config: Any) -> dict[str, Any]:
    """The config as JSON-ready nested dicts (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type, values: dict[str, Any], path: str = "") -> Any:
    """Rebuild a config dataclass of type ``cls`` from :func:`to_dict` output."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path.rstrip('.') or cls.__name__} must be a JSON object, got {values!r}"
        )
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown config keys {sorted(unknown)} for {cls.__name__}")
    kwargs = {name: _coerce(hints[name], value, f"{path}{name}") for name, value in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise error.at(path) from None
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error), path.rstrip(".") or cls.__name__) from None


# Overrides.


def apply_overrides(config: Any, overrides: Sequence[str]) -> Any:
    """Return ``config`` with every ``"dotted.key=value"`` override applied, then validated.

    The overrides are applied together and the result is validated once, so two
    overrides that are only consistent together are accepted.

    Raises:
      ConfigError: malformed override, unknown key (the message lists the valid keys at
        that level), a value that does not parse as the field's type, or a config that
        fails validation (the message names the dotted path and the accepted range).
    """
    if not overrides:
        return config
    _local.deferred = True
    try:
        for override in overrides:
            key, sep, raw = override.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"override {override!r} is not of the form key=value")
            key = key.strip()
            config = _replace_path(config, key.split("."), raw.strip(), key)
    finally:
        _local.deferred = False
    validate(config)
    return config


def _rebuilt(node: Any, **changes: Any) -> Any:
    """A copy of dataclass ``node`` with ``changes``, built without ``__init__`` (nothing is
    validated or derived yet) and without copying cached properties."""
    new = object.__new__(type(node))
    for field in dataclasses.fields(node):
        object.__setattr__(new, field.name, changes.get(field.name, getattr(node, field.name)))
    return new


def _replace_path(node: Any, path: list[str], raw: str, full_key: str) -> Any:
    if not dataclasses.is_dataclass(node):
        raise ConfigError(f"config key {full_key!r}: {'.'.join(path)!r} is not a nested config")
    names = [f.name for f in dataclasses.fields(node) if f.init]
    if path[0] not in names:
        raise ConfigError(f"unknown config key {full_key!r}; valid keys here: {', '.join(names)}")
    if len(path) > 1:
        child = _replace_path(getattr(node, path[0]), path[1:], raw, full_key)
    else:
        child = _parse(_hints(type(node))[path[0]], raw, full_key)
    return _rebuilt(node, **{path[0]: child})


def _parse(hint: Any, raw: str, key: str) -> Any:
    """Parse the command-line string ``raw`` as a value of type ``hint``."""
    if dataclasses.is_dataclass(hint):
        raise ConfigError(f"config key {key!r} is a nested config; set one of its fields")
    if raw.lower() in ("none", "null") and _allows_none(hint):
        return None
    if raw.lower() in ("nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"):
        value: Any = float(raw)
    else:
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
        return from_dict(hint, value, f"{key}.")
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


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(hint)


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


# The training engine's configs.

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("warmup_cosine", "warmup_constant", "constant")


@configclass
class MeshConfig:
    """Shape of the ``("data", "fsdp")`` device mesh (:func:`alignjax.training.make_mesh`).

    Attributes:
        data: devices along the data-parallel axis; ``-1`` takes all devices left
            after ``fsdp``.
        fsdp: devices along the parameter-sharding axis.
    """

    data: int = checked(-1, ge=-1)
    fsdp: int = checked(1, ge=1)

    def __post_init__(self):
        if self.data == 0:
            raise ConfigError("=0: must be -1 (all devices) or >= 1", "data")


@configclass
class TrainConfig:
    """Everything :func:`alignjax.training.fit` needs besides the model, the loss and the data.

    Step counts (``num_steps``, ``warmup_steps``, ``log_every``, ...) count train
    steps, i.e. batches drawn from the data. With ``accumulation_steps = k`` the
    optimizer updates the parameters every k-th step and the learning-rate
    schedule advances once per update (``num_steps // k`` updates in total). The
    batch size is whatever the data yields (the global batch is the per-process
    batch times the number of processes).

    The trainer itself draws no random numbers: dropout keys live in the model's
    ``nnx.Rngs`` and shuffling in the data pipeline, and both are checkpointed.

    Precision is the model's: the trainer keeps parameters and optimizer state in
    the parameters' dtype and computes as the model's layers do. For bfloat16
    compute with float32 parameters and optimizer state (accelerators), build
    the model with ``dtype=jnp.bfloat16`` and ``param_dtype=jnp.float32`` (an
    :class:`~alignjax.models.EncoderConfig` with ``dtype="bfloat16"``).

    Attributes:
        num_steps: train steps of the whole run (a resumed run stops there too).
        learning_rate: peak learning rate.
        schedule: ``"warmup_cosine"`` (linear warmup, then cosine decay to
            ``end_learning_rate``), ``"warmup_constant"`` (linear warmup, then
            constant; the released gLocal code: from ``lr / 3`` over its run) or
            ``"constant"``.
        warmup_steps: steps of linear warmup (the warmup schedules only).
        warmup_start: learning rate at the start of the warmup, as a fraction of
            ``learning_rate`` (0 for ``"warmup_cosine"``'s usual ramp from zero;
            gLocal's is 1/3).
        end_learning_rate: learning rate at the last step (``"warmup_cosine"``).
        optimizer: ``"adamw"``, ``"adam"`` or ``"sgd"``.
        b1: Adam's first-moment decay.
        b2: Adam's second-moment decay.
        momentum: SGD momentum (0 is plain SGD).
        weight_decay: decoupled weight decay toward 0 (``"adamw"`` only).
        clip_norm: clip gradients to this global norm; ``None`` disables clipping.
        decay_to_init: weight ``w`` of the decoupled decay toward the initial
            parameters, ``update += w (theta - theta_init)`` (AligNet); 0 disables it.
        accumulation_steps: micro-batches whose gradients are averaged per update.
        mesh: the device mesh.
        log_every: steps between metric records.
        checkpoint_every: steps between checkpoints; 0 saves only at the end (and
            on SIGTERM/SIGINT).
        keep_checkpoints: number of most recent checkpoints kept.
        eval_every: steps between calls of ``fit``'s ``evaluate`` hook; 0 calls it
            only at the end.
        workdir: directory for checkpoints (``checkpoints/``), ``metrics.jsonl``,
            TensorBoard events (``tensorboard/``) and ``train_config.json``; ``None``
            keeps nothing on disk.
        progress_bar: show a tqdm progress bar on stderr (process 0 only): redrawn live
            on a terminal or in a notebook, every 5 s when stderr is a log file or a
            pipe (:mod:`alignjax.training.progress`).
    """

    num_steps: int = checked(ge=1)
    learning_rate: float = checked(1e-3, gt=0)
    schedule: str = "warmup_cosine"
    warmup_steps: int = checked(0, ge=0)
    warmup_start: float = checked(0.0, ge=0, le=1)
    end_learning_rate: float = checked(0.0, ge=0)
    optimizer: str = "adamw"
    b1: float = checked(0.9, ge=0, lt=1)
    b2: float = checked(0.999, ge=0, lt=1)
    momentum: float = checked(0.0, ge=0, lt=1)
    weight_decay: float = checked(0.0, ge=0)
    clip_norm: float | None = checked(1.0, gt=0)
    decay_to_init: float = checked(0.0, ge=0)
    accumulation_steps: int = checked(1, ge=1)
    mesh: MeshConfig = MeshConfig()
    log_every: int = checked(10, ge=1)
    checkpoint_every: int = checked(0, ge=0)
    keep_checkpoints: int = checked(3, ge=1)
    eval_every: int = checked(0, ge=0)
    workdir: str | None = None
    progress_bar: bool = True

    def __post_init__(self):
        if isinstance(self.mesh, dict):
            object.__setattr__(self, "mesh", MeshConfig(**self.mesh))
        for name, allowed in (
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"={value!r}: must be one of {allowed}", name)
        if self.weight_decay and self.optimizer != "adamw":
            raise ConfigError(
                f"={self.weight_decay!r}: needs optimizer='adamw', not {self.optimizer!r}",
                "weight_decay",
            )
        if self.num_steps < self.accumulation_steps:
            raise ConfigError(
                f"={self.num_steps!r}: is smaller than "
                f"accumulation_steps={self.accumulation_steps}: no update would happen",
                "num_steps",
            )
        if self.schedule != "constant" and self.warmup_steps >= self.num_steps:
            raise ConfigError(
                f"={self.warmup_steps!r}: must be smaller than num_steps={self.num_steps}",
                "warmup_steps",
            )
        if self.end_learning_rate > self.learning_rate:
            raise ConfigError(
                f"={self.end_learning_rate!r}: must not exceed learning_rate={self.learning_rate}",
                "end_learning_rate",
            )

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-serialisable nested dicts."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Inverse of `to_dict`."""
        return from_dict(cls, values)
