"""The experiment runner behind ``alignjax run``: find, configure and run an experiment.

An *experiment* is a module in ``experiments/`` (installed as ``alignjax.experiments``)
that defines

- ``PRESETS``: a mapping from preset name to a one-line description that states the
  expected running time (the first preset is the default),
- ``get_config(preset) -> config``: a frozen dataclass,
- ``run(config, workdir) -> dict``: trains and evaluates, writes ``report.md`` and PNG
  plots into ``workdir``, and returns the metrics.

The runner writes ``config.json`` before the run and ``metrics.json`` after it. Running
again in the same work directory with the same config resumes (the training engine
restores its last checkpoint and finished stages are not redone); a different config in
a used work directory is refused rather than mixed with the old run.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pathlib
import pkgutil
import time
import types
from collections.abc import Sequence
from typing import Any

from alignjax import config as config_lib


class UsageError(Exception):
    """A mistake on the command line or in the environment, reported as one line."""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An experiment module seen through its protocol."""

    name: str
    module: types.ModuleType

    @property
    def summary(self) -> str:
        return (self.module.__doc__ or "").strip().splitlines()[0]

    @property
    def presets(self) -> dict[str, str]:
        return dict(self.module.PRESETS)

    def config(self, preset: str | None = None, overrides: Sequence[str] = ()) -> Any:
        preset = preset or next(iter(self.presets))
        if preset not in self.presets:
            raise UsageError(
                f"experiment {self.name!r} has no preset {preset!r}; presets: {', '.join(self.presets)}"
            )
        try:
            return config_lib.apply_overrides(self.module.get_config(preset), overrides)
        except config_lib.ConfigError as error:
            raise UsageError(str(error)) from None


def experiment_names() -> list[str]:
    """Names of the installed experiments (module names with ``-`` for ``_``)."""
    package = importlib.import_module("alignjax.experiments")
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(package.__path__))


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; :class:`UsageError` listing the known ones if none."""
    names = experiment_names()
    if name not in names:
        raise UsageError(f"unknown experiment {name!r}; known experiments: {', '.join(names)}")
    return Experiment(
        name, importlib.import_module(f"alignjax.experiments.{name.replace('-', '_')}")
    )


def prepare_workdir(workdir: str | os.PathLike[str], config: Any) -> pathlib.Path:
    """Create ``workdir`` (or check it holds a run of the same config) and write config.json.

    Raises:
      UsageError: the directory cannot be created or written, or it holds a run with a
        different config.
    """
    path = pathlib.Path(workdir).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".alignjax-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(
            f"cannot write to work directory {path}: {error.strerror or error}"
        ) from None
    config_json = path / "config.json"
    wanted = config_lib.to_dict(config)
    if config_json.exists():
        previous = json.loads(config_json.read_text())
        if previous != wanted:
            changed = sorted(
                k for k in set(previous) | set(wanted) if previous.get(k) != wanted.get(k)
            )
            raise UsageError(
                f"work directory {path} holds a run with a different config (differs in: "
                f"{', '.join(changed)}); choose another --workdir or delete it"
            )
    config_json.write_text(json.dumps(wanted, indent=2) + "\n")
    return path


def run_experiment(
    name: str,
    *,
    preset: str | None = None,
    workdir: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Run experiment ``name`` and return its metrics (also written to metrics.json)."""
    experiment = get_experiment(name)
    config = experiment.config(preset, overrides)
    path = prepare_workdir(workdir or pathlib.Path("runs") / name, config)
    start = time.perf_counter()
    metrics = experiment.module.run(config, path)
    metrics = dict(metrics, wall_time_seconds=round(time.perf_counter() - start, 1))
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return metrics
