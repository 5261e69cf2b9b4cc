"""The trainer's progress bar: labelled with its stage, live on a terminal or in a
notebook, throttled in a log.

A cluster job's stderr is a file: a bar redrawn ten times a second would add ten
carriage-return updates a second to its log for the whole run. There the bar redraws at
most once every :data:`LOG_INTERVAL_SECONDS` (and once more when it closes): often
enough that a person following the log never waits long for a sign of life, rarely
enough to add only a few kilobytes an hour.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import jax
import tqdm.auto

from alignjax.training.stages import current_stage

#: Seconds between redraws of the bar when stderr is not a terminal (a log file, a pipe).
LOG_INTERVAL_SECONDS = 5.0
#: Seconds between redraws on a terminal or in a notebook (tqdm's own default).
LIVE_INTERVAL_SECONDS = 0.1

T = TypeVar("T")


def _live() -> bool:
    """Whether the bar is watched as it runs: stderr is a terminal, or tqdm draws a
    notebook widget (``tqdm.auto`` chose its notebook class)."""
    notebook = sys.modules.get("tqdm.notebook")
    if notebook is not None and issubclass(tqdm.auto.tqdm, notebook.tqdm_notebook):
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _interval() -> float:
    """Seconds between redraws: :data:`LIVE_INTERVAL_SECONDS` when watched live,
    :data:`LOG_INTERVAL_SECONDS` otherwise."""
    return LIVE_INTERVAL_SECONDS if _live() else LOG_INTERVAL_SECONDS


#: What a training bar shows until its first step, which compiles the train step, is done.
COMPILING = "compiling the train step"


def _redraw_while_compiling(bar: tqdm.auto.tqdm, done: threading.Event) -> None:
    """Redraws ``bar`` (its elapsed time) until ``done`` is set or the bar closes: a
    compile can take a minute on a loaded machine, and a bar silent for that long looks
    hung."""
    while not done.wait(max(bar.mininterval, 1.0)) and not bar.disable:
        bar.refresh()


def progress_bar(
    total: int,
    *,
    initial: int = 0,
    enabled: bool = True,
    description: str | None = None,
    unit: str = "step",
) -> tqdm.auto.tqdm:
    """A bar counting training steps from ``initial`` to ``total``.

    Until :func:`restart_clock` it shows that the first step is compiling
    (:data:`COMPILING`), redrawn as often as the steps would be.

    Args:
      total: the run's number of steps.
      initial: the step it starts at (a resumed run's restored step).
      enabled: ``False`` draws nothing (``progress_bar=False``, or not process 0).
      description: the bar's label; by default the name of the stage running
        (:func:`alignjax.training.stages.current_stage`), none outside a stage.
      unit: what it counts.

    Returns:
      the ``tqdm`` bar, redrawn every :data:`LIVE_INTERVAL_SECONDS` when watched live,
      every :data:`LOG_INTERVAL_SECONDS` otherwise.
    """
    bar = tqdm.auto.tqdm(
        total=total,
        initial=initial,
        desc=description if description is not None else current_stage(),
        unit=unit,
        mininterval=_interval(),
        disable=not enabled,
        postfix=COMPILING,
    )
    bar.compiled = threading.Event()
    if enabled:
        threading.Thread(
            target=_redraw_while_compiling, args=(bar, bar.compiled), daemon=True
        ).start()
    return bar


def restart_clock(bar: tqdm.auto.tqdm) -> None:
    """Measures the bar's rate, elapsed time and ETA from now on, and clears
    :data:`COMPILING`.

    Called once the first step has run: that step compiles the train step, which can take
    longer than hundreds of steps, and a rate that counted it would promise an ETA of
    hours for a run of minutes.
    """
    bar.compiled.set()
    bar.set_postfix_str("", refresh=False)
    bar.unpause()


def tracked(
    iterable: Iterable[T], *, total: int | None = None, unit: str = "it", delay: float = 1.0
) -> Iterator[T]:
    """``iterable``, with a bar labelled with the current stage if it takes more than
    ``delay`` seconds (a short loop draws nothing)."""
    yield from tqdm.auto.tqdm(
        iterable,
        total=total,
        desc=current_stage(),
        unit=unit,
        mininterval=_interval(),
        delay=delay,
        disable=jax.process_index() != 0,
    )
