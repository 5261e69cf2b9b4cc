"""Named stages of a long run: announced, timed, and remembered across resumes.

A run of an experiment is a sequence of stages known up front (AligNet: ``data``,
``teacher``, ``teacher_features``, ...). :class:`Stages` runs each as a ``with`` block
that

- announces it on stderr, ``stage 3/10: teacher_features``, so that a person watching
  the run knows what it is doing and how far it has come;
- names what is drawn inside it: :func:`current_stage` is the label of the progress
  bars (:func:`alignjax.training.progress.progress_bar`) and of the line a stage prints
  when it finds its work already done, ``restored teacher (step 150)``
  (:func:`restored`);
- times it in wall and CPU seconds (CPU time, of all threads, depends less on the
  machine's load than wall time) and records them in ``<workdir>/stage_seconds.json``
  as soon as it ends, so that a killed run keeps the times of the stages it finished.

A stage's times are those of the run that first finished it: a rerun restores the stage
in about 0 s, and its times go to a separate record (:attr:`Stages.resumed_seconds`)
instead of replacing them. The seconds a stage spent in runs that stopped inside it
(interrupted, failed) are added to the run that finishes it, once the directory holds
the times of a finished stage (a run that failed in its first stage writes nothing, so a
corrected command may start afresh: :func:`alignjax.runner.prepare_workdir`).

Example:
    >>> stages = Stages(["data", "training"])
    >>> with stages("data"):  # stderr: stage 1/2: data
    ...     current_stage()
    'data'
    >>> sorted(stages.seconds["data"])
    ['cpu', 'wall']
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import pathlib
import sys
import time
from collections.abc import Iterator, Sequence

import jax

#: The file of a work directory that holds its stage times.
STAGE_SECONDS_FILE = "stage_seconds.json"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "alignjax_stage", default=None
)

Seconds = dict[str, float]


def current_stage() -> str | None:
    """The name of the stage running now, ``None`` outside every stage."""
    return _current.get()


@contextlib.contextmanager
def part(label: str) -> Iterator[None]:
    """Names a part of the current stage: inside, :func:`current_stage` is
    ``"<stage> <label>"`` (e.g. ``uncertainty_distillation T=0.5 lambda=0.001``, the
    label of one of the stage's bars)."""
    outer = current_stage()
    token = _current.set(label if outer is None else f"{outer} {label}")
    try:
        yield
    finally:
        _current.reset(token)


def announce(message: str) -> None:
    """Prints one line on stderr (process 0 of a multi-host run only)."""
    if jax.process_index() == 0:
        print(message, file=sys.stderr, flush=True)


def note(step: str) -> None:
    """Announces a step of the current stage that draws no progress bar (a person
    watching should not wait long without a line): ``<stage>: <step>``."""
    stage = current_stage()
    announce(step if stage is None else f"{stage}: {step}")


def restored(step: int | None = None, *, name: str | None = None) -> None:
    """Says that work of the current stage was restored rather than redone:
    ``restored teacher (step 150)`` for a training run's checkpoint (``step``), or
    ``restored teacher_features`` for a stored artefact.

    Args:
      step: the restored checkpoint's step, if any.
      name: what was restored; by default the current stage.
    """
    name = name or current_stage() or "work"
    announce(f"restored {name}" + ("" if step is None else f" (step {step})"))


def _add(a: Seconds | None, b: Seconds) -> Seconds:
    return {key: round((a or {}).get(key, 0.0) + b[key], 1) for key in b}


class Stages:
    """The stages of one run, in order; ``with stages(name):`` runs one of them.

    Args:
      names: every stage of the run, in the order they run (``stage k/N`` counts them).
      workdir: where ``stage_seconds.json`` is kept (read back on a rerun); ``None``
        keeps the times in memory only.

    Attributes:
      names: the stages.
      path: ``<workdir>/stage_seconds.json``, or ``None``.
    """

    def __init__(self, names: Sequence[str], workdir: str | os.PathLike[str] | None = None) -> None:
        self.names = list(names)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"stage names must be distinct, got {self.names}")
        self.path = None if workdir is None else pathlib.Path(workdir) / STAGE_SECONDS_FILE
        record = {}
        if self.path is not None and self.path.exists():
            record = json.loads(self.path.read_text())
        self._finished: dict[str, Seconds] = record.get("stage_seconds", {})
        self._resumed: dict[str, Seconds] = record.get("resumed_stage_seconds", {})
        self._unfinished: dict[str, Seconds] = record.get("unfinished_stage_seconds", {})

    @property
    def seconds(self) -> dict[str, Seconds]:
        """``{stage: {"wall", "cpu"}}`` of every finished stage, in stage order: the
        seconds of the run that first finished it (with those of runs that stopped in
        it before)."""
        return {name: self._finished[name] for name in self.names if name in self._finished}

    @property
    def resumed_seconds(self) -> dict[str, Seconds]:
        """``{stage: {"wall", "cpu"}}`` of the latest rerun of stages an earlier run had
        finished (restored ones take about 0 s); empty in a first run."""
        return {name: self._resumed[name] for name in self.names if name in self._resumed}

    def record(self) -> dict[str, dict[str, Seconds]]:
        """The times for a run's metrics: ``{"stage_seconds": ...}``, and
        ``"resumed_stage_seconds"`` when a stage was rerun."""
        record = {"stage_seconds": self.seconds}
        if self.resumed_seconds:
            record["resumed_stage_seconds"] = self.resumed_seconds
        return record

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Runs stage ``name``: announces it, labels what it draws, times it."""
        if name not in self.names:
            raise ValueError(f"unknown stage {name!r}; the stages are {self.names}")
        announce(f"stage {self.names.index(name) + 1}/{len(self.names)}: {name}")
        token = _current.set(name)
        wall, cpu = time.perf_counter(), time.process_time()
        finished = False
        try:
            yield
            finished = True
        finally:
            _current.reset(token)
            spent = {
                "wall": round(time.perf_counter() - wall, 1),
                "cpu": round(time.process_time() - cpu, 1),
            }
            if name in self._finished:
                self._resumed[name] = spent
            elif finished:
                self._finished[name] = _add(self._unfinished.pop(name, None), spent)
            else:
                self._unfinished[name] = _add(self._unfinished.get(name), spent)
            self._save()

    def _save(self) -> None:
        # Nothing is written before a stage finished: a run that failed in its first stage
        # leaves its work directory as empty as it found it.
        if self.path is None or not self._finished or jax.process_index() != 0:
            return
        record = {
            "stage_seconds": self.seconds,
            "resumed_stage_seconds": self.resumed_seconds,
            "unfinished_stage_seconds": self._unfinished,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        partial.replace(self.path)
