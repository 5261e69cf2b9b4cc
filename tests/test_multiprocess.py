"""Training in 2 processes x 2 CPU devices equals training in 1 process x 4 devices.

The 2-process runs are real multi-controller JAX: subprocesses on 127.0.0.1 joined by
``jax.distributed`` (process 0 is the coordinator) that exchange data over Gloo. Each
launch runs `tests/multiprocess_worker.py` (a small MLP trained by
`alignjax.training.fit` on an `example_stream`), or the ``alignjax run`` command. If
the distributed runtime cannot start here (no free loopback port, a sandbox without
sockets), the tests are skipped with the children's messages; once started, any
failure is a failure.

A checkpoint crosses a change of the number of processes: its model and optimizer state
are restored onto the new mesh, and since Grain saves one data position per process,
`fit` skips the batches the saved steps consumed instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "multiprocess_worker.py"
READY = "multiprocess_worker: jax.distributed ready"
NUM_STEPS = 40
CHECKPOINT_EVERY = 10
LAUNCH_TIMEOUT = 240
# Seconds a process waits for its peers (start-up, heartbeats, shutdown). A peer that
# dies makes the launcher kill the others at once, so this only bounds hangs.
PEER_TIMEOUT = 60
# Messages of a distributed runtime that could not start (port taken, no sockets).
STARTUP_FAILURE = re.compile(r"Failed to start RPC server|Failed to add port|RegisterTask")
# Wall-clock rates differ between runs; every other metric must match.
TIMING = ("steps_per_second", "examples_per_second")
RTOL, ATOL = 2e-5, 1e-6
# The reference runs are module fixtures: one xdist worker runs the whole module.
pytestmark = pytest.mark.xdist_group("multiprocess")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(local_devices: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS" and not k.startswith("JAX_")}
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_NUM_CPU_DEVICES=str(local_devices),
        JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
        PYTHONUNBUFFERED="1",
    )
    return env


class Processes:
    """Child processes, each in its own process group, stderr kept in files.

    Leaving the ``with`` block kills (SIGKILL) every group still running, so a failed
    or timed-out test leaves nothing behind.
    """

    def __init__(self, commands: list[list[str]], logs: pathlib.Path, env: dict[str, str]):
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = [logs / f"process_{i}.log" for i in range(len(commands))]
        self.procs = []
        for command, log in zip(commands, self.logs):
            with open(log, "wb") as stderr:
                self.procs.append(
                    subprocess.Popen(
                        command,
                        # Not the repository: there `python -m alignjax.cli` would import
                        # the source tree, which lacks the installed alignjax.experiments.
                        cwd=logs,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                        start_new_session=True,
                    )
                )

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait()

    def stderr(self) -> list[str]:
        return [log.read_text(errors="replace") for log in self.logs]

    def report(self) -> str:
        return "\n".join(
            f"--- process {i} (exit {proc.returncode}), last lines of stderr:\n{text[-4000:]}"
            for i, (proc, text) in enumerate(zip(self.procs, self.stderr()))
        )

    def wait(self, timeout: float = LAUNCH_TIMEOUT) -> None:
        """Waits for all to exit 0; on a failure kills the rest and raises ``ChildError``."""
        deadline = time.monotonic() + timeout
        while True:
            codes = [proc.poll() for proc in self.procs]
            if any(code not in (None, 0) for code in codes):
                self.kill()
                raise ChildError(self, "a process failed")
            if all(code == 0 for code in codes):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ChildError(self, f"timed out after {timeout:.0f} s")
            time.sleep(0.05)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info) -> None:
        self.kill()


class ChildError(Exception):
    def __init__(self, processes: Processes, what: str):
        super().__init__(f"{what}\n{processes.report()}")
        self.stderr = processes.stderr()


def _launch(make_commands, logs: pathlib.Path, num_processes: int, started) -> None:
    """Runs ``make_commands(port)`` to completion; skips if jax.distributed cannot start.

    ``started(stderr)`` tells whether a process got past ``jax.distributed.initialize``;
    a start-up failure is retried once on a new port before the test is skipped.
    """
    for attempt in range(2):
        env = _environment(4 // num_processes)
        try:
            with Processes(make_commands(_free_port()), logs / f"attempt_{attempt}", env) as p:
                p.wait()
            return
        except ChildError as error:
            if num_processes == 1 or all(started(text) for text in error.stderr):
                pytest.fail(str(error), pytrace=False)
            failure = error
    pytest.skip(f"jax.distributed did not start on 127.0.0.1 (twice):\n{failure}")


def _worker_started(stderr: str) -> bool:
    return READY in stderr


def _worker_commands(run: pathlib.Path, num_processes: int, *extra: str):
    def commands(port: int) -> list[list[str]]:
        return [
            [
                sys.executable,
                str(WORKER),
                f"--workdir={run / 'work'}",
                f"--out={run / 'out'}",
                f"--num-processes={num_processes}",
                f"--process-id={i}",
                f"--port={port}",
                f"--num-steps={NUM_STEPS}",
                f"--timeout={PEER_TIMEOUT}",
                *extra,
            ]
            for i in range(num_processes)
        ]

    return commands


@dataclasses.dataclass
class Run:
    """What a worker run left: its metrics records and each process's output."""

    path: pathlib.Path

    @property
    def checkpoints(self) -> pathlib.Path:
        return self.path / "work" / "checkpoints"

    def records(self) -> list[dict]:
        return _records(self.path / "work" / "metrics.jsonl")

    def output(self, process: int = 0) -> dict[str, np.ndarray]:
        with np.load(self.path / "out" / f"process_{process}.npz") as data:
            return dict(data)

    def params(self, process: int = 0) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.output(process).items() if k.startswith("param")}

    def examples(self, process: int) -> np.ndarray:
        return self.output(process)["examples"]


def _records(path: pathlib.Path) -> list[dict]:
    lines = path.read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _train(path: pathlib.Path, num_processes: int, *extra: str) -> Run:
    _launch(
        _worker_commands(path, num_processes, *extra), path / "logs", num_processes, _worker_started
    )
    return Run(path)


def _copy_checkpoint(source: Run, step: int, path: pathlib.Path) -> None:
    target = path / "work" / "checkpoints"
    target.mkdir(parents=True)
    shutil.copytree(source.checkpoints / str(step), target / str(step))


def assert_records_match(got: list[dict], expected: list[dict]) -> None:
    """Every record of ``got`` equals, to float tolerance, the one of its step in ``expected``."""
    by_step = {record["step"]: record for record in expected}
    assert got, "no metrics were recorded"
    for record in got:
        reference = by_step[record["step"]]
        assert record.keys() == reference.keys(), record["step"]
        for name, value in record.items():
            np.testing.assert_allclose(
                value, reference[name], rtol=RTOL, atol=ATOL, err_msg=f"step {record['step']}"
            )


def assert_params_match(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for name, value in got.items():
        np.testing.assert_allclose(value, expected[name], rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Run:
    """1 process x 4 devices, checkpoints every 10 steps: the reference."""
    return _train(
        tmp_path_factory.mktemp("one_process"), 1, f"--checkpoint-every={CHECKPOINT_EVERY}"
    )


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Run:
    """2 processes x 2 devices, the same run."""
    return _train(
        tmp_path_factory.mktemp("two_processes"), 2, f"--checkpoint-every={CHECKPOINT_EVERY}"
    )


def test_two_processes_train_as_one(one_process, two_processes):
    """Every step's metrics and the final parameters (on both processes) are those of the
    1-process run."""
    expected = one_process.records()
    assert [r["step"] for r in expected] == list(range(1, NUM_STEPS + 1))
    assert_records_match(two_processes.records(), expected)
    assert len(two_processes.records()) == NUM_STEPS
    assert_params_match(two_processes.params(), one_process.params())
    # Every process ends with the same (global) parameters.
    assert_params_match(two_processes.params(1), two_processes.params(0))


def test_process_streams_are_disjoint_shares_of_the_one_process_stream(one_process, two_processes):
    """At every step the two processes' batches are disjoint and together hold the
    1-process batch; no example repeats."""

    def rows(batch):
        return {row.tobytes() for row in batch}

    single = one_process.examples(0)
    first, second = two_processes.examples(0), two_processes.examples(1)
    assert single.shape == (NUM_STEPS, 16, 4)
    assert first.shape == second.shape == (NUM_STEPS, 8, 4)
    for step, (whole, a, b) in enumerate(zip(single, first, second)):
        assert not rows(a) & rows(b), f"the processes share examples at step {step}"
        assert rows(a) | rows(b) == rows(whole), f"step {step} holds other examples"
    assert len(rows(single.reshape(-1, 4))) == NUM_STEPS * 16


@pytest.mark.parametrize("saved_by, resumed_by", [(2, 1), (1, 2)])
def test_checkpoint_resumes_in_another_number_of_processes(
    one_process, two_processes, tmp_path, saved_by, resumed_by
):
    """Step 20 of one run, resumed in the other number of processes (fit skips the
    stream's first 20 batches), finishes as the uninterrupted run."""
    source = {1: one_process, 2: two_processes}[saved_by]
    step = 2 * CHECKPOINT_EVERY
    _copy_checkpoint(source, step, tmp_path)
    resumed = _train(tmp_path, resumed_by)
    assert not list(resumed.checkpoints.glob("*.corrupt"))
    records = resumed.records()
    assert [r["step"] for r in records] == list(range(step + 1, NUM_STEPS + 1))
    assert_records_match(records, one_process.records())
    assert_params_match(resumed.params(), one_process.params())


def test_killed_run_resumes_exactly(two_processes, tmp_path):
    """Both processes SIGKILLed after the step-10 checkpoint; the rerun resumes from it and
    records the metrics and ends with the parameters of the uninterrupted run."""
    commands = _worker_commands(
        tmp_path, 2, f"--checkpoint-every={CHECKPOINT_EVERY}", "--step-delay=0.1"
    )
    first_checkpoint = tmp_path / "work" / "checkpoints" / str(CHECKPOINT_EVERY)
    with Processes(commands(_free_port()), tmp_path / "logs_killed", _environment(2)) as p:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while not first_checkpoint.is_dir():
            if any(proc.poll() is not None for proc in p.procs):
                p.kill()
                if not all(_worker_started(text) for text in p.stderr()):
                    pytest.skip(f"jax.distributed did not start:\n{p.report()}")
                pytest.fail(f"a process exited before the first checkpoint\n{p.report()}")
            if time.monotonic() > deadline:
                p.kill()
                pytest.fail(f"no checkpoint after {LAUNCH_TIMEOUT} s\n{p.report()}")
            time.sleep(0.02)
        p.kill()
        assert all(proc.returncode == -signal.SIGKILL for proc in p.procs), p.report()
    killed_at = len(_records(tmp_path / "work" / "metrics.jsonl"))
    assert killed_at < NUM_STEPS, "the run finished before it was killed"

    resumed = _train(tmp_path, 2, f"--checkpoint-every={CHECKPOINT_EVERY}", "--step-delay=0.1")
    records = resumed.records()
    # The killed run's records, then the resumed run's from the checkpoint on.
    steps = [r["step"] for r in records]
    assert steps == list(range(1, killed_at + 1)) + list(range(CHECKPOINT_EVERY + 1, NUM_STEPS + 1))
    assert_records_match(records, two_processes.records())
    assert_params_match(resumed.params(), two_processes.params())


CLI_OVERRIDES = (
    "train.num_steps=20",
    "train.warmup_steps=5",
    "train.log_every=5",
    "train.progress_bar=false",
    "objectives=gensim",
    "num_eval_pairs=200",
    "objective.batch_size=64",
    "objective.num_threads=1",
)


def _cli(workdir: pathlib.Path, num_processes: int) -> dict:
    def commands(port: int) -> list[list[str]]:
        base = [sys.executable, "-m", "alignjax.cli", "run", "gensim-gaussian"]
        base += [f"--workdir={workdir}"] + [f"--set={o}" for o in CLI_OVERRIDES]
        if num_processes == 1:
            return [base]
        return [
            base
            + ["--distributed", f"--coordinator=127.0.0.1:{port}"]
            + [f"--num-processes={num_processes}", f"--process-id={i}"]
            for i in range(num_processes)
        ]

    def started(stderr: str) -> bool:
        return not STARTUP_FAILURE.search(stderr)

    _launch(commands, workdir.parent / f"logs_{workdir.name}", num_processes, started)
    return json.loads((workdir / "metrics.json").read_text())


def test_cli_distributed_run_matches_one_process(tmp_path):
    """``alignjax run --distributed`` in 2 processes: the training metrics and the
    experiment's results of the 1-process, 4-device command."""
    two = _cli(tmp_path / "two", 2)
    one = _cli(tmp_path / "one", 1)
    for name in ("spearman", "pearson"):
        np.testing.assert_allclose(two["gensim"][name], one["gensim"][name], rtol=1e-4)
    expected = _records(tmp_path / "one" / "gensim" / "metrics.jsonl")
    assert [r["step"] for r in expected] == [5, 10, 15, 20]
    assert_records_match(_records(tmp_path / "two" / "gensim" / "metrics.jsonl"), expected)
