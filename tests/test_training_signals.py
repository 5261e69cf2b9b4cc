"""Tests of alignjax.training.signals: deferred SIGTERM/SIGINT and `TrainingInterrupted`."""

import signal
import subprocess
import sys
import textwrap

import pytest

from alignjax.training.signals import DeferredSignals, TrainingInterrupted


def test_training_interrupted_names_the_step_and_the_signal():
    interrupted = TrainingInterrupted(3, 10, signal.SIGTERM)
    assert str(interrupted) == "interrupted at step 3/10; run the same command to resume"
    assert (interrupted.step, interrupted.num_steps, interrupted.signal) == (3, 10, 15)


def test_a_second_sigint_raises_at_once_and_handlers_are_restored():
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with DeferredSignals() as deferred:
            signal.raise_signal(signal.SIGINT)
            assert deferred.received == signal.SIGINT
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous


IGNORED_TWICE = textwrap.dedent(
    """
    import signal
    from alignjax.training.signals import DeferredSignals

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with DeferredSignals() as deferred:
        signal.raise_signal(signal.SIGINT)
        print("recorded", deferred.received, flush=True)
        signal.raise_signal(signal.SIGINT)
        print("still running", flush=True)
    """
)


def test_an_ignored_signal_is_still_recorded_and_a_second_one_ends_the_process():
    child = subprocess.run(
        [sys.executable, "-c", IGNORED_TWICE], capture_output=True, text=True, timeout=60
    )
    assert child.stdout == f"recorded {int(signal.SIGINT)}\n", child.stderr
    assert child.returncode == -signal.SIGINT
