"""Deferring SIGTERM and SIGINT until a checkpoint is written.

A cluster scheduler announces preemption with SIGTERM, a user interrupts with
Ctrl-C (SIGINT). Inside `fit` both only set a flag; the loop finishes its step,
saves a checkpoint, restores the previous handlers and raises `TrainingInterrupted`,
so a caller can never mistake the partly trained model for a finished one. That
holds whatever the signal's disposition was: a job started with ``&`` from a
non-interactive shell ignores SIGINT, and a signal re-sent to such a process would
be lost, which is why the interruption is an exception rather than the signal
delivered again. A second signal while the checkpoint is being written acts at
once, as it would have without alignjax (an ignored signal then takes its default
action, ending the process): pressing Ctrl-C twice still stops.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class TrainingInterrupted(Exception):
    """A signal stopped `fit` before its last step; a checkpoint of ``step`` was kept.

    A command-line tool reports it in one line and exits with ``128 + signal``
    (130 for SIGINT, 143 for SIGTERM), the status of a process the signal ended.

    Attributes:
        step: train steps done (the step of the saved checkpoint).
        num_steps: train steps of the whole run.
        signal: the signal's number (``signal.SIGINT``, ``signal.SIGTERM``).
    """

    def __init__(self, step: int, num_steps: int, signal: int):
        super().__init__(f"interrupted at step {step}/{num_steps}; run the same command to resume")
        self.step = step
        self.num_steps = num_steps
        self.signal = signal


class DeferredSignals:
    """Context manager that records SIGTERM/SIGINT instead of acting on them.

    The first signal is recorded (in ``received``) even where it was ignored
    before: a user's ``kill`` must stop training. A second one is acted on at once
    by the handler active before entry, or by the default action if that handler
    ignored it.

    Handlers can only be installed from the main thread; elsewhere (a training
    run started in a worker thread) the context does nothing and
    ``received`` stays ``None``.

    Example:
        >>> with DeferredSignals() as deferred:
        ...     signal.raise_signal(signal.SIGTERM)
        >>> deferred.received == signal.SIGTERM
        True
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)):
        self._signals = signals
        self._previous: dict[int, Any] = {}
        self.received: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.received is None:
            self.received = signum
            return
        ignored = self._previous.get(signum) == signal.SIG_IGN
        self._restore()
        if ignored:
            signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            # None marks a handler installed outside Python, which cannot be put
            # back; the default is the closest.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def __enter__(self) -> DeferredSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self._signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._restore()
