"""The trainer's progress bar: live on a terminal or in a notebook, throttled in a log.

A cluster job's stderr is a file: a bar redrawn ten times a second would add ten
carriage-return updates a second to its log for the whole run. There the bar redraws at
most once every :data:`LOG_INTERVAL_SECONDS` (and once more when it closes).
"""

from __future__ import annotations

import sys

import tqdm.auto

#: Seconds between redraws of the bar when stderr is not a terminal (a log file, a pipe).
LOG_INTERVAL_SECONDS = 30.0
#: Seconds between redraws on a terminal or in a notebook (tqdm's own default).
LIVE_INTERVAL_SECONDS = 0.1


def _live() -> bool:
    """Whether the bar is watched as it runs: stderr is a terminal, or tqdm draws a
    notebook widget (``tqdm.auto`` chose its notebook class)."""
    notebook = sys.modules.get("tqdm.notebook")
    if notebook is not None and issubclass(tqdm.auto.tqdm, notebook.tqdm_notebook):
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(total: int, *, initial: int = 0, enabled: bool = True) -> tqdm.auto.tqdm:
    """A bar counting training steps from ``initial`` to ``total``.

    Args:
      total: the run's number of steps.
      initial: the step it starts at (a resumed run's restored step).
      enabled: ``False`` draws nothing (``progress_bar=False``, or not process 0).

    Returns:
      the ``tqdm`` bar, redrawn every :data:`LIVE_INTERVAL_SECONDS` when watched live,
      every :data:`LOG_INTERVAL_SECONDS` otherwise.
    """
    interval = LIVE_INTERVAL_SECONDS if _live() else LOG_INTERVAL_SECONDS
    return tqdm.auto.tqdm(
        total=total, initial=initial, unit="step", mininterval=interval, disable=not enabled
    )
