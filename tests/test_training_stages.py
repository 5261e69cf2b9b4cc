"""Named stages: announced, labelling the trainer's bars, timed, kept across resumes."""

import io
import json
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax.training import MeshConfig, TrainConfig, fit, progress, stages, trainer
from alignjax.training.stages import Stages, current_stage, note, part, restored


class _Clock:
    """``time.perf_counter`` and ``time.process_time`` that advance by hand."""

    def __init__(self, monkeypatch):
        self.wall = self.cpu = 0.0
        monkeypatch.setattr(stages.time, "perf_counter", lambda: self.wall)
        monkeypatch.setattr(stages.time, "process_time", lambda: self.cpu)

    def advance(self, wall, cpu):
        self.wall += wall
        self.cpu += cpu


def test_each_stage_is_announced_and_names_what_runs_inside_it(capsys):
    run = Stages(["data", "training", "report"])
    assert current_stage() is None
    with run("training"):
        assert current_stage() == "training"
        with part("T=0.5"):
            assert current_stage() == "training T=0.5"
            restored()
        note("scoring")
        restored(150)
    assert current_stage() is None
    assert capsys.readouterr().err == (
        "stage 2/3: training\n"
        "restored training T=0.5\n"
        "training: scoring\n"
        "restored training (step 150)\n"
    )
    with pytest.raises(ValueError, match=r"unknown stage 'evaluation'"):
        with run("evaluation"):
            pass
    with pytest.raises(ValueError, match="distinct"):
        Stages(["data", "data"])


def test_a_rerun_keeps_the_first_runs_times_and_records_its_own_apart(tmp_path, monkeypatch):
    clock = _Clock(monkeypatch)
    first = Stages(["data", "training"], tmp_path)
    with first("data"):
        clock.advance(wall=2.0, cpu=3.0)
    with pytest.raises(KeyboardInterrupt):
        with first("training"):
            clock.advance(wall=10.0, cpu=20.0)
            raise KeyboardInterrupt
    assert first.record() == {"stage_seconds": {"data": {"wall": 2.0, "cpu": 3.0}}}

    # The resumed run restores the data (0.5 s) and finishes training (5 s more): the
    # training's time is that of both runs, the data's that of the first.
    second = Stages(["data", "training"], tmp_path)
    with second("data"):
        clock.advance(wall=0.5, cpu=0.5)
    with second("training"):
        clock.advance(wall=5.0, cpu=6.0)
    expected = {
        "stage_seconds": {
            "data": {"wall": 2.0, "cpu": 3.0},
            "training": {"wall": 15.0, "cpu": 26.0},
        },
        "resumed_stage_seconds": {"data": {"wall": 0.5, "cpu": 0.5}},
    }
    assert second.record() == expected

    third = Stages(["data", "training"], tmp_path)
    with third("data"), third("training"):
        clock.advance(wall=0.25, cpu=0.25)
    record = third.record()
    assert record["stage_seconds"] == expected["stage_seconds"]
    assert record["resumed_stage_seconds"] == {
        "data": {"wall": 0.2, "cpu": 0.2},
        "training": {"wall": 0.2, "cpu": 0.2},
    }
    stored = json.loads((tmp_path / stages.STAGE_SECONDS_FILE).read_text())
    assert stored["stage_seconds"] == expected["stage_seconds"]


class _Linear(nnx.Module):
    def __init__(self):
        self.linear = nnx.Linear(2, 1, rngs=nnx.Rngs(0))

    def __call__(self, x):
        return self.linear(x)


def _loss(model, batch):
    return jnp.mean((model(batch["x"]) - batch["y"]) ** 2), {}


def _batches(n):
    x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
    return [{"x": x, "y": x[:, :1]} for _ in range(n)]


def _config(workdir, steps=4):
    return TrainConfig(
        num_steps=steps, learning_rate=0.1, mesh=MeshConfig(data=1), workdir=str(workdir)
    )


def test_a_fit_in_a_stage_labels_its_bar_and_a_finished_one_is_restored_without_one(
    tmp_path, monkeypatch
):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    with Stages(["data", "teacher"])("teacher"):
        fit(_Linear(), _loss, _batches(4), _config(tmp_path))
    lines = log.getvalue().replace("\r", "\n").splitlines()
    assert lines[0] == "stage 2/2: teacher"
    draws = [line for line in lines[1:] if line.strip()]
    assert draws and all(line.startswith("teacher: ") for line in draws)
    assert "4/4" in draws[-1]

    log.seek(0)
    log.truncate()
    with Stages(["data", "teacher"])("teacher"):
        fit(_Linear(), _loss, _batches(4), _config(tmp_path))
    assert log.getvalue() == "stage 2/2: teacher\nrestored teacher (step 4)\n"


def test_an_explicit_description_wins_over_the_stage(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with Stages(["teacher"])("teacher"):
        bars = [progress.progress_bar(10), progress.progress_bar(10, description="probe")]
    bars.append(progress.progress_bar(10))
    assert [bar.desc for bar in bars] == ["teacher", "probe", ""]
    for bar in bars:
        bar.close()


def test_the_bars_clock_restarts_after_the_compiling_first_step(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = progress.progress_bar(100)
    # As if the bar was drawn 100 s ago and the first step compiled since.
    bar.start_t -= 100.0
    bar.last_print_t -= 100.0
    progress.restart_clock(bar)
    bar.update(1)
    assert bar.format_dict["elapsed"] < 50.0
    bar.close()

    # fit restarts it once, after the first step and before the bar counts that step.
    seen = []

    def record(bar):
        seen.append(bar.n)

    monkeypatch.setattr(trainer, "restart_clock", record)
    fit(_Linear(), _loss, _batches(4), _config(tmp_path / "run"))
    assert seen == [0]


def test_a_compiling_bar_is_redrawn_until_its_clock_restarts(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.setattr(progress, "LOG_INTERVAL_SECONDS", 0.01)  # redrawn every second
    bar = progress.progress_bar(10)
    time.sleep(2.5)
    compiling = log.getvalue().count(progress.COMPILING)
    assert compiling >= 2  # the first draw and at least one while compiling
    progress.restart_clock(bar)
    time.sleep(1.5)
    assert log.getvalue().count(progress.COMPILING) == compiling
    bar.close()


def test_a_run_that_fails_in_its_first_stage_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="bad input"):
        with Stages(["data", "training"], tmp_path)("data"):
            raise ValueError("bad input")
    assert list(tmp_path.iterdir()) == []
