"""The experiment runner behind ``alignjax run``: find, configure and run an experiment.

An *experiment* is a module in ``experiments/`` (installed as ``alignjax.experiments``)
that defines

- ``PRESETS``: a mapping from preset name to a one-line description that states the
  expected running time (the first preset is the default),
- ``get_config(preset) -> config``: a frozen dataclass,
- ``run(config, workdir) -> dict``: trains and evaluates, writes ``report.md`` and PNG
  plots into ``workdir``, and returns the metrics.

The runner validates the config before it writes anything, then writes ``config.json``
and ``run.json`` (the run's status: running, finished, failed or interrupted) before
the run and ``metrics.json`` (valid JSON: NaN becomes ``null``) after it. Running again
in the same work directory with the same config resumes (the training engine restores
its last checkpoint and finished stages are not redone); another experiment or a
different config in a used work directory is refused rather than mixed with the old run,
unless that run failed before writing anything, or ``--restart`` discards it.

``wall_time_seconds`` in ``metrics.json`` is the time the run took until it first
finished, the runs that stopped before (interrupted, failed) included (``run.json`` keeps
their sum); a rerun of a finished run keeps it and adds its own seconds as
``resumed_wall_time_seconds``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import pathlib
import pkgutil
import shutil
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

from alignjax import config as config_lib
from alignjax.training.signals import TrainingInterrupted


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
                f"experiment {self.name!r} has no preset {preset!r}; "
                f"presets: {', '.join(self.presets)}"
            )
        try:
            return config_lib.apply_overrides(self.module.get_config(preset), overrides)
        except config_lib.ConfigError as error:
            raise UsageError(f"{self.name}: {error}") from None


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


RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix.rstrip("."): values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def _read_json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(
            f"{path} is unreadable ({error}); delete it, rerun with --restart to discard "
            "the run in that directory, or choose another --workdir"
        ) from None


def _primary() -> bool:
    """Whether this process writes the run's files (process 0 of a multi-host run)."""
    import jax  # Only runs need JAX; listing and configuring experiments do not.

    return jax.process_index() == 0


def _synchronise(name: str) -> None:
    """Waits for every process of a multi-host run (nothing to wait for in one process)."""
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _write_json(path: pathlib.Path, values: Any) -> None:
    """Writes ``values`` as JSON, atomically (a killed writer leaves the old file); in a
    multi-host run only process 0 writes."""
    if not _primary():
        return
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(values, indent=2, allow_nan=False) + "\n")
    partial.replace(path)


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN or infinities as ``None``
    (JSON has no NaN: ``metrics.json`` must stay valid JSON whatever a run measured)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _artefacts(path: pathlib.Path) -> list[pathlib.Path]:
    """What a run wrote into ``path`` besides its config and status files."""
    return [p for p in path.iterdir() if p.name not in (CONFIG_FILE, RUN_FILE)]


def _discard(path: pathlib.Path) -> None:
    """Empties a work directory that holds an alignjax run (its config or status file)."""
    if not ((path / CONFIG_FILE).exists() or (path / RUN_FILE).exists()):
        raise UsageError(
            f"--restart: {path} holds no alignjax run (no {CONFIG_FILE}); nothing was deleted"
        )
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _check_writable(path: pathlib.Path) -> None:
    """Creates ``path`` and writes a file into it; every process of a run does this at
    once in the same directory, so each writes a probe of its own.

    Raises:
      UsageError: the directory cannot be created or written (the message says why).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".alignjax-write-test-"):
            pass
    except OSError as error:
        raise UsageError(
            f"cannot write to work directory {path}: {error.strerror or error}"
        ) from None


def prepare_workdir(
    workdir: str | os.PathLike[str],
    config: Any,
    *,
    experiment: str | None = None,
    restart: bool = False,
) -> pathlib.Path:
    """Create ``workdir`` (or check it holds a run of the same experiment and config).

    Writes ``config.json`` and the status file ``run.json``. A work directory of another
    experiment, or of a different config, is refused, except that a run which failed
    before writing anything besides these two files gives way to the new config.
    ``restart`` discards whatever run the directory holds.

    Raises:
      UsageError: the directory cannot be created or written, or holds a run of another
        experiment or config (the message says which, and how to reuse the directory).
    """
    path = pathlib.Path(workdir).expanduser().resolve()
    _check_writable(path)
    if restart and _primary():
        _discard(path)
    if restart:
        _synchronise("alignjax_restart_workdir")
    wanted = config_lib.to_dict(config)
    status = _read_json(path / RUN_FILE) if (path / RUN_FILE).exists() else {}
    previous_experiment = status.get("experiment") if isinstance(status, dict) else None
    if experiment and previous_experiment and previous_experiment != experiment:
        raise UsageError(
            f"work directory {path} holds a run of another experiment, {previous_experiment!r}; "
            f"choose another --workdir for {experiment!r}"
        )
    if (path / CONFIG_FILE).exists():
        previous = _read_json(path / CONFIG_FILE)
        if previous != wanted:
            if not isinstance(previous, dict) or set(previous) != set(wanted):
                raise UsageError(
                    f"work directory {path} holds a run of another experiment (its "
                    f"{CONFIG_FILE} has other fields); choose another --workdir"
                )
            failed = status.get("status") == "failed"
            if not (failed and not _artefacts(path)):
                old, new = _flatten(previous), _flatten(wanted)
                changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                state = "an unfinished run" if status.get("status") != "finished" else "a run"
                raise UsageError(
                    f"work directory {path} holds {state} with a different config (differs in: "
                    f"{', '.join(changed)}); rerun with --restart to discard it, or choose "
                    "another --workdir"
                )
    # Every process has read the old files before process 0 replaces them.
    _synchronise("alignjax_prepare_workdir")
    _write_json(path / CONFIG_FILE, wanted)
    return path


def _record_status(path: pathlib.Path, experiment: str, preset: str, status: str, **extra: Any):
    _write_json(
        path / RUN_FILE,
        {"experiment": experiment, "preset": preset, "status": status, **json_ready(extra)},
    )


def run_experiment(
    name: str,
    *,
    preset: str | None = None,
    workdir: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    restart: bool = False,
) -> dict[str, Any]:
    """Run experiment ``name`` and return its metrics (also written to metrics.json).

    The config is built and validated before anything is written; see :func:`run_config`.
    """
    experiment = get_experiment(name)
    preset = preset or next(iter(experiment.presets))
    config = experiment.config(preset, overrides)
    return run_config(
        name,
        config,
        experiment.module.run,
        preset=preset,
        workdir=workdir or pathlib.Path("runs") / name,
        restart=restart,
    )


def run_config(
    name: str,
    config: Any,
    run: Callable[[Any, pathlib.Path], dict[str, Any]],
    *,
    preset: str,
    workdir: str | os.PathLike[str],
    restart: bool = False,
) -> dict[str, Any]:
    """``run(config, workdir)``, a chain named ``name``, on a validated ``config``.

    The one path of ``alignjax run`` and of the commands that build their config from a
    user's files (``alignjax fit alignet``, ``alignjax fit glocal``): the work directory
    is checked (:func:`prepare_workdir`), ``run.json`` says whether the run is
    ``running``, ``finished``, ``failed`` (with the error) or ``interrupted``, and
    ``metrics.json`` is written once it finished (with ``wall_time_seconds`` and, on a
    rerun of a finished run, ``resumed_wall_time_seconds``: the module docstring).
    """
    path = prepare_workdir(workdir, config, experiment=name, restart=restart)
    first, earlier = _earlier_wall_time(path)
    _record_status(path, name, preset, "running", wall_time_seconds=first or earlier)
    start = time.perf_counter()

    def seconds() -> float:
        return round(time.perf_counter() - start, 1)

    def stopped(status: str, **extra: Any) -> None:
        spent = first or round(earlier + seconds(), 1)
        _record_status(path, name, preset, status, wall_time_seconds=spent, **extra)

    try:
        metrics = run(config, path)
    except KeyboardInterrupt:
        stopped("interrupted")
        raise
    except Exception as error:
        interrupted = isinstance(error, TrainingInterrupted)
        stopped("interrupted" if interrupted else "failed", error=str(error))
        raise
    if first is None:
        times = {"wall_time_seconds": round(earlier + seconds(), 1)}
    else:
        times = {"wall_time_seconds": first, "resumed_wall_time_seconds": seconds()}
    metrics = json_ready(dict(metrics, **times))
    _write_json(path / METRICS_FILE, metrics)
    _record_status(path, name, preset, "finished", wall_time_seconds=times["wall_time_seconds"])
    return metrics


def _earlier_wall_time(path: pathlib.Path) -> tuple[float | None, float]:
    """``(first, earlier)``: the wall time of the run in ``path`` if it has finished
    (``metrics.json``'s), else ``None``; and the seconds of the runs there that stopped
    before finishing (``run.json``'s)."""
    if (path / METRICS_FILE).exists():
        finished = _read_json(path / METRICS_FILE)
        if isinstance(finished, dict) and finished.get("wall_time_seconds") is not None:
            return float(finished["wall_time_seconds"]), 0.0
    status = _read_json(path / RUN_FILE) if (path / RUN_FILE).exists() else {}
    earlier = status.get("wall_time_seconds") if isinstance(status, dict) else None
    return None, float(earlier or 0.0)
