"""Deferring SIGTERM and SIGINT until a checkpoint is written.

A cluster scheduler announces preemption with SIGTERM, a user interrupts with
Ctrl-C (SIGINT). Inside `fit` both only set a flag; the loop finishes its step,
saves a checkpoint, restores the previous handlers and then delivers the signal
to them, so the process ends (or raises ``KeyboardInterrupt``) as it would have
without alignjax, minus the lost work. A second signal while the checkpoint is
being written is delivered at once: pressing Ctrl-C twice still stops.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class DeferredSignals:
    """Context manager that records SIGTERM/SIGINT instead of acting on them.

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
        if self.received is not None:
            self._restore()
            signal.raise_signal(signum)
            return
        self.received = signum

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __enter__(self) -> DeferredSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self._signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._restore()

    def redeliver(self) -> None:
        """Sends the recorded signal again, to the handlers active before entry.

        Call it after leaving the context. Does nothing if no signal was received.
        """
        if self.received is not None:
            signum, self.received = self.received, None
            signal.raise_signal(signum)
