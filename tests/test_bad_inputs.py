"""Bad input and faults, as a user meets them: one table, one clear outcome per case.

Every command-line mistake is one line on stderr (``alignjax: error: ...``) with exit
status 2, no traceback, and nothing written where the config was refused. Faults inside
a run (a non-finite loss, an ignored SIGINT, a damaged checkpoint, huge features) end in
a clear error or the correct result, never in a run that passes for finished.
"""

import dataclasses
import json
import pathlib
import signal
import warnings

import numpy as np
import pytest
from flax import nnx

from alignjax import cli, evaluation, runner
from alignjax.config import MeshConfig, TrainConfig
from alignjax.training import Checkpointer, NonFiniteLossError, Trainer, TrainingInterrupted, fit

RUN = ["run", "gensim-gaussian", "--workdir", "{tmp}/run"]


@dataclasses.dataclass(frozen=True)
class Case:
    """A command (``{tmp}`` is the test's directory), the message it must print."""

    name: str
    argv: tuple[str, ...]
    message: str
    status: int = 2


def _run(*overrides: str) -> tuple[str, ...]:
    return (*RUN, *[part for o in overrides for part in ("--set", o)])


def _eval(features="features.npy", triplets="triplets.txt", *extra: str) -> tuple[str, ...]:
    return (
        "eval",
        "--features",
        f"{{tmp}}/{features}",
        "--triplets",
        f"{{tmp}}/{triplets}",
        *extra,
    )


CASES = [
    # Config values that used to finish with NaN or untrained results.
    Case(
        "lr-infinity",
        _run("train.learning_rate=Infinity"),
        "train.learning_rate=inf: must be a finite number > 0",
    ),
    Case(
        "lr-NaN",
        _run("train.learning_rate=NaN"),
        "train.learning_rate=nan: must be a finite number > 0",
    ),
    Case(
        "lr-nan",
        _run("train.learning_rate=nan"),
        "train.learning_rate=nan: must be a finite number > 0",
    ),
    Case(
        "lr-negative",
        _run("train.learning_rate=-1"),
        "train.learning_rate=-1.0: must be a finite number > 0",
    ),
    Case(
        "lr-zero",
        _run("train.learning_rate=0"),
        "train.learning_rate=0.0: must be a finite number > 0",
    ),
    Case(
        "temperature-infinity",
        _run("objective.gensim_temperature=Infinity"),
        "objective.gensim_temperature=inf: must be a finite number > 0",
    ),
    # Values that used to crash with a traceback after the work directory existed.
    Case(
        "temperature-zero",
        _run("objective.gensim_temperature=0"),
        "objective.gensim_temperature=0.0: must be a finite number > 0",
    ),
    Case(
        "contrastive-temperature",
        _run("objective.contrastive_temperature=-1"),
        "objective.contrastive_temperature=-1.0: must be a finite number > 0",
    ),
    Case(
        "batch-size-zero",
        _run("objective.batch_size=0"),
        "objective.batch_size=0: must be an integer >= 1",
    ),
    Case(
        "batch-size-negative",
        _run("objective.batch_size=-4"),
        "objective.batch_size=-4: must be an integer >= 1",
    ),
    Case(
        "embed-dim-zero",
        _run("encoder.embed_dim=0"),
        "encoder.embed_dim=0: must be an integer >= 1",
    ),
    Case("steps-zero", _run("train.num_steps=0"), "train.num_steps=0: must be an integer >= 1"),
    Case(
        "warmup-too-long",
        _run("train.num_steps=10"),
        "train.warmup_steps=100: must be smaller than num_steps=10",
    ),
    Case("beta-one", _run("train.b2=1"), "train.b2=1.0: must be a finite number in [0, 1)"),
    Case(
        "mesh-zero",
        _run("train.mesh.data=0"),
        "train.mesh.data=0: must be -1 (all devices) or >= 1",
    ),
    Case("eval-pairs", _run("num_eval_pairs=1"), "num_eval_pairs=1: must be an integer >= 2"),
    Case(
        "unknown-key",
        _run("train.num_stepz=3"),
        "unknown config key 'train.num_stepz'; valid keys here: num_steps",
    ),
    Case("not-an-integer", _run("seed=abc"), "config key 'seed' must be an integer, got 'abc'"),
    Case("not-key-value", _run("seed"), "override 'seed' is not of the form key=value"),
    Case("nested-config", _run("train=3"), "config key 'train' is a nested config"),
    Case(
        "unknown-objective",
        _run("objectives=gensim,simclr2"),
        "objectives must be a non-empty subset of",
    ),
    Case(
        "unknown-experiment",
        ("run", "gensim-gausian"),
        "unknown experiment 'gensim-gausian'; known experiments:",
    ),
    Case(
        "unknown-preset",
        ("run", "gensim-gaussian", "--preset", "huge"),
        "has no preset 'huge'; presets: quick, paper",
    ),
    Case("missing-name", ("run",), "the following arguments are required: name"),
    Case("unknown-command", ("train",), "invalid choice: 'train'"),
    Case(
        "bad-kernel",
        _eval("features.npy", "triplets.txt", "--kernel", "l1"),
        "invalid choice: 'l1'",
    ),
    # Work directories.
    Case(
        "workdir-is-a-file",
        ("run", "gensim-gaussian", "--workdir", "{tmp}/features.npy/run"),
        "cannot write to work directory",
    ),
    Case(
        "truncated-config",
        ("run", "gensim-gaussian", "--workdir", "{tmp}/truncated"),
        "config.json is unreadable",
    ),
    Case(
        "another-experiment",
        ("run", "glocal", "--workdir", "{tmp}/gaussian-run"),
        "holds a run of another experiment, 'gensim-gaussian'",
    ),
    Case(
        "another-config",
        ("run", "gensim-gaussian", "--workdir", "{tmp}/gaussian-run", "--set", "seed=5"),
        "holds a run with a different config (differs in: seed); rerun with --restart",
    ),
    Case(
        "restart-foreign-directory",
        ("run", "gensim-gaussian", "--workdir", "{tmp}/thesis", "--restart"),
        "holds no alignjax run (no config.json); nothing was deleted",
    ),
    # Input files of `alignjax eval`.
    Case("features-directory", _eval("."), "is a directory; expected a feature file"),
    Case("features-missing", _eval("nope.npy"), "feature file not found"),
    Case("features-not-npy", _eval("text.npy"), "text.npy: not a .npy file"),
    Case("features-objects", _eval("objects.npy"), "objects.npy: not a readable .npy array"),
    Case("features-nan", _eval("nan.npy"), "nan.npy: row 2 holds NaN or infinite features"),
    Case(
        "features-ragged-text",
        _eval("ragged.txt"),
        "ragged.txt: row 1 (line 2) has 2 columns; row 0 has 4",
    ),
    Case(
        "triplets-binary",
        _eval("features.npy", "binary.txt"),
        "binary.txt: line 2 is not UTF-8 text",
    ),
    Case(
        "triplets-two-columns",
        _eval("features.npy", "two.txt"),
        "two.txt: row 1 (line 2) has 2 columns, expected 3",
    ),
    Case(
        "triplets-repeat",
        _eval("features.npy", "repeat.txt"),
        "repeat.txt: row 0 (line 1) repeats an object",
    ),
    Case(
        "triplets-beyond-features",
        _eval("features.npy", "beyond.txt"),
        "beyond.txt: row 1 (line 2) has an index that is not in [0, 12)",
    ),
    Case(
        "triplets-not-integers",
        _eval("features.npy", "floats.txt"),
        "floats.txt: row 0 (line 1) holds a non-integer index",
    ),
    Case(
        "levels-count",
        _eval("features.npy", "triplets.txt", "--levels", "{tmp}/levels.txt"),
        "levels.txt: 1 level names for 40 triplets",
    ),
    Case(
        "transform-not-zip",
        _eval("features.npy", "triplets.txt", "--transform", "{tmp}/text.npy"),
        "text.npy: not an .npz archive",
    ),
    Case(
        "transform-truncated",
        _eval("features.npy", "triplets.txt", "--transform", "{tmp}/cut.npz"),
        "cut.npz: not a readable transform file",
    ),
    Case(
        "transform-vector-mean",
        _eval("features.npy", "triplets.txt", "--transform", "{tmp}/vector_mean.npz"),
        "vector_mean.npz: mean must be one number",
    ),
    Case(
        "transform-objects",
        _eval("features.npy", "triplets.txt", "--transform", "{tmp}/objects.npz"),
        "objects.npz: not a readable transform file",
    ),
    Case(
        "transform-missing-key",
        _eval("features.npy", "triplets.txt", "--transform", "{tmp}/no_std.npz"),
        "no_std.npz: not a readable transform file (missing keys ['std']",
    ),
    Case(
        "transform-width",
        _eval("features.npy", "triplets.txt", "--transform", "{tmp}/wide.npz"),
        "wide.npz: the transform takes 6 features, but",
    ),
]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 4)).astype(np.float32)
    np.save(tmp_path / "features.npy", features)
    np.savetxt(
        tmp_path / "triplets.txt",
        np.stack([rng.choice(12, 3, replace=False) for _ in range(40)]),
        fmt="%d",
    )
    (tmp_path / "text.npy").write_text("1 2 3\n")
    np.save(tmp_path / "objects.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    np.save(tmp_path / "nan.npy", np.array([[0.0, 1.0], [2.0, 3.0], [np.nan, 1.0]]))
    (tmp_path / "ragged.txt").write_text("1 2 3 4\n5 6\n")
    (tmp_path / "binary.txt").write_bytes(b"0 1 2\n\x89PNG\xff\xfe\n")
    (tmp_path / "two.txt").write_text("0 1 2\n3 4\n")
    (tmp_path / "repeat.txt").write_text("0 1 0\n")
    (tmp_path / "beyond.txt").write_text("0 1 2\n3 4 12\n")
    (tmp_path / "floats.txt").write_text("0 1.5 2\n")
    (tmp_path / "levels.txt").write_text("coarse\n")
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    np.savez(
        tmp_path / "vector_mean.npz", weights=np.eye(4), bias=np.zeros(4), mean=np.zeros(4), std=1.0
    )
    np.savez(
        tmp_path / "objects.npz", weights=np.array([[1, "a"]], dtype=object), mean=0.0, std=1.0
    )
    np.savez(tmp_path / "no_std.npz", weights=np.eye(4), bias=np.zeros(4), mean=0.0)
    np.savez(tmp_path / "wide.npz", weights=np.eye(6), bias=np.zeros(6), mean=0.0, std=1.0)
    (tmp_path / "truncated").mkdir()
    (tmp_path / "truncated" / "config.json").write_text('{"seed": ')
    experiment = runner.get_experiment("gensim-gaussian")
    runner.prepare_workdir(
        tmp_path / "gaussian-run", experiment.config("quick"), experiment="gensim-gaussian"
    )
    (tmp_path / "gaussian-run" / "run.json").write_text(
        json.dumps({"experiment": "gensim-gaussian", "status": "finished"})
    )
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "draft.tex").write_text("")
    return tmp_path


def test_the_table_covers_at_least_40_cases():
    assert len(CASES) >= 40 and len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_command_is_one_line_with_status_2(case, files, capsys):
    before = sorted(p.relative_to(files) for p in files.rglob("*"))
    status = cli.main([part.replace("{tmp}", str(files)) for part in case.argv])
    out, err = capsys.readouterr()
    assert status == case.status
    # stdout holds at most the line a run or fit opens with (what it starts, said before
    # JAX is imported); the refusal is one line on stderr.
    assert out == "" or (
        out.count("\n") == 1 and out.startswith(("alignjax run ", "alignjax fit "))
    )
    assert err.count("\n") == 1 and err.startswith("alignjax: error: "), err
    assert "Traceback" not in err
    assert case.message in err, err
    # Nothing is written when a command is refused.
    assert sorted(p.relative_to(files) for p in files.rglob("*")) == before
    assert (files / "thesis" / "draft.tex").exists()


def test_troubleshootings_fix_works_as_written():
    # docs/troubleshooting.md: the overrides are applied together, then validated.
    config = runner.get_experiment("gensim-gaussian").config(
        "quick", ["train.num_steps=10", "train.warmup_steps=0"]
    )
    assert (config.train.num_steps, config.train.warmup_steps) == (10, 0)


def test_huge_features_give_the_right_accuracy(files, capsys):
    features = np.load(files / "features.npy")
    np.save(files / "huge.npy", features.astype(np.float64) * 1e19)
    status = cli.main(
        ["eval", "--features", str(files / "huge.npy"), "--triplets", str(files / "triplets.txt")]
    )
    assert status == 0
    expected = evaluation.odd_one_out_accuracy(
        features, np.loadtxt(files / "triplets.txt", dtype=int)
    ).accuracy
    assert f"{expected:.4f}" in capsys.readouterr().out and 0.2 < expected < 0.9


# Faults inside a run, on a tiny model.

ONE_DEVICE = MeshConfig(data=1)


def _linear():
    return nnx.Linear(2, 1, rngs=nnx.Rngs(0))


def _loss(model, batch):
    return ((model(batch["x"]) - batch["y"]) ** 2).mean() * batch["scale"][0], {}


def _batches(n, bad_step=None):
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    for step in range(1, n + 1):
        scale = np.float32(np.inf if step == bad_step else 1.0)
        yield {"x": x, "y": x[:, :1], "scale": np.full(4, scale, np.float32)}


def _config(tmp_path, **fields):
    defaults = dict(
        num_steps=10,
        learning_rate=0.1,
        mesh=ONE_DEVICE,
        log_every=2,
        progress_bar=False,
        workdir=str(tmp_path),
    )
    return TrainConfig(**(defaults | fields))


def test_a_non_finite_loss_stops_the_run_naming_the_step(tmp_path):
    with pytest.raises(
        NonFiniteLossError,
        match=r"the loss became inf at step 7 of 10; the last good checkpoint \(step 4\) is kept",
    ):
        fit(_linear(), _loss, _batches(10, bad_step=7), _config(tmp_path, checkpoint_every=4))
    assert Checkpointer(tmp_path / "checkpoints", read_only=True).latest_step() == 4


def test_an_ignored_sigint_still_stops_the_run_and_it_never_passes_for_finished(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a job started with `&`
    try:

        def interrupt(step, metrics):
            if step == 4:
                signal.raise_signal(signal.SIGINT)

        with pytest.raises(
            TrainingInterrupted, match=r"^interrupted at step 4/10; run the same command to resume$"
        ):
            fit(_linear(), _loss, _batches(10), _config(tmp_path), callbacks=[interrupt])
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_cli_reports_an_interruption_in_one_line_and_exits_143(monkeypatch, capsys):
    def interrupted(args):
        raise TrainingInterrupted(1082, 4000, signal.SIGTERM)

    monkeypatch.setattr(cli, "_list", interrupted)
    assert cli.main(["list"]) == 143
    assert (
        capsys.readouterr().err
        == "alignjax: interrupted at step 1082/4000; run the same command to resume\n"
    )


def test_a_same_size_bit_flip_in_a_checkpoint_is_caught_and_the_previous_step_restored(tmp_path):
    # Orbax checksums only small arrays (inside its index); a large one would restore as
    # garbage without alignjax's digest.
    model = nnx.Linear(8192, 2, rngs=nnx.Rngs(0))
    trainer = Trainer(model, lambda m, b: ((m(b) ** 2).mean(), {}), _config(tmp_path))
    with Checkpointer(tmp_path / "checkpoints") as checkpointer:
        first = trainer.state
        checkpointer.save(first)
        checkpointer.wait_until_finished()
        trainer.train_step(np.ones((4, 8192), np.float32))
        checkpointer.save(trainer.state)
        checkpointer.wait_until_finished()
    data = max(
        (tmp_path / "checkpoints" / "1" / "params").rglob("d/*"), key=lambda p: p.stat().st_size
    )
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    with Checkpointer(tmp_path / "checkpoints") as checkpointer:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            restored = checkpointer.restore(trainer.abstract_state())
    assert any(
        "checkpoint step 1 failed its integrity check" in str(w.message)
        and "falling back to step 0" in str(w.message)
        for w in caught
    )
    assert int(restored.step) == 0
    np.testing.assert_array_equal(restored.params["kernel"], np.asarray(model.kernel[...]))


def test_metrics_json_is_valid_json_when_a_run_measured_nan(tmp_path):
    path = pathlib.Path(tmp_path) / "metrics.json"
    path.write_text(json.dumps(runner.json_ready({"spearman": float("nan")}), allow_nan=False))
    assert json.loads(path.read_text()) == {"spearman": None}
