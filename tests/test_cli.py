"""The `alignjax` command: listing, help, mistakes reported as one line, `eval` on files."""

import concurrent.futures
import json
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from alignjax import cli, evaluation, runner


def _main(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_console_script_is_installed():
    result = subprocess.run(["alignjax", "--help"], capture_output=True, text=True, check=True)
    assert "run" in result.stdout and "eval" in result.stdout


def test_list_names_every_experiment_and_its_presets(capsys):
    status, out, _ = _main(capsys, "list")
    assert status == 0
    for name in runner.experiment_names():
        assert name in out
        for preset in runner.get_experiment(name).presets:
            assert f"--preset {preset}" in out


def _help(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["run"]], ids=["alignjax", "run"])
def test_help_lists_experiments_presets_and_times_without_markup(capsys, argv):
    out = _help(capsys, *argv)
    words = " ".join(out.split())  # the listing is wrapped to the terminal's width
    for name in runner.experiment_names():
        experiment = runner.get_experiment(name)
        assert f"{name}: " in words
        for preset, description in experiment.presets.items():
            assert "on 2 CPU cores" in description, f"{name} {preset}: no expected time"
            assert f"--preset {preset} {' '.join(description.split())}" in words
    # Plain text, not reStructuredText or Markdown.
    assert "`" not in out and "**" not in out and ":func:" not in out


# Imports the command's module, prints "importing jax" when JAX is first imported, runs
# the command and prints whether JAX was imported; the output says what came first.
_SPY = """
import sys

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "jax":
            print("importing jax", flush=True)
            sys.meta_path.remove(self)

sys.meta_path.insert(0, Spy())
from alignjax import cli
try:
    status = cli.main(sys.argv[1:])
except SystemExit as exit_:
    status = exit_.code
print("jax imported:", "jax" in sys.modules, flush=True)
sys.exit(status)
"""


def _spied(*argv):
    # Run outside the checkout: `python -c` puts the working directory first on sys.path,
    # where the repository's alignjax/ (without its experiments, installed from
    # experiments/) would shadow the installed package.
    result = subprocess.run(
        [sys.executable, "-c", _SPY, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tempfile.gettempdir(),
    )
    return result.returncode, result.stdout.splitlines(), result.stderr


@pytest.mark.parametrize("argv", [["list"], ["--help"], ["run", "--help"]])
def test_listing_and_help_import_no_jax(argv):
    # JAX, flax and the methods take seconds to import; listing what there is to run
    # must answer at once.
    status, lines, err = _spied(*argv)
    assert status == 0, err
    assert "importing jax" not in lines and lines[-1] == "jax imported: False"
    assert any("--preset quick" in line for line in lines)


def test_a_run_names_what_it_runs_before_importing_jax(tmp_path):
    # A bad override is found once the config is built, after JAX is imported: the
    # run stops there, having said what it was starting.
    status, lines, err = _spied(
        "run", "gensim-gaussian", "--workdir", str(tmp_path), "--set", "train.num_step=3"
    )
    description = runner.get_experiment("gensim-gaussian").presets["quick"]
    assert lines[:2] == [
        f"alignjax run gensim-gaussian --preset quick (work directory {tmp_path}): {description}",
        "importing jax",
    ]
    assert status == 2 and "unknown config key 'train.num_step'" in err


@pytest.mark.parametrize(
    ("argv", "first"),
    [
        (
            ["fit", "glocal", "--features", "f.npy", "--triplets", "t.txt"],
            "alignjax fit glocal: features f.npy, triplets t.txt, grid quick",
        ),
        (
            ["fit", "alignet", "--images", "imgs", "--teacher-features", "f.npy"],
            "alignjax fit alignet: images imgs, triplets none",
        ),
    ],
)
def test_a_fit_names_its_inputs_before_importing_jax(tmp_path, argv, first):
    # The inputs do not exist: the fit stops at its first check, after saying what it
    # was starting and before JAX took seconds to import.
    status, lines, err = _spied(*argv, "--workdir", str(tmp_path / "w"))
    assert lines[0] == f"{first} (work directory {tmp_path / 'w'})"
    assert status == 2 and err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "no-such-experiment"],
            "unknown experiment 'no-such-experiment'; known experiments: ",
        ),
        (
            ["run", "gensim-gaussian", "--preset", "huge"],
            "has no preset 'huge'; presets: quick, paper",
        ),
        (
            ["run", "gensim-gaussian", "--set", "train.num_step=3"],
            "unknown config key 'train.num_step'",
        ),
        (["run", "gensim-gaussian", "--set", "seed=x"], "'seed' must be an integer"),
    ],
)
def test_mistakes_are_one_line_with_status_2(capsys, argv, message):
    status, out, err = _main(capsys, *argv)
    assert status == 2 and err.count("\n") == 1 and message in err
    # An unknown experiment or preset is refused before the run starts; a bad override
    # once its config is built, after the run said what it starts.
    if "--set" in argv:
        assert (
            out.startswith("alignjax run gensim-gaussian --preset quick") and out.count("\n") == 1
        )
    else:
        assert out == ""


def test_unwritable_workdir_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status, _, err = _main(capsys, "run", "gensim-gaussian", "--workdir", str(blocker / "run"))
    assert status == 2 and err.count("\n") == 1
    assert f"cannot write to work directory {blocker / 'run'}" in err


def test_workdir_of_another_config_is_refused(capsys, tmp_path):
    experiment = runner.get_experiment("gensim-gaussian")
    runner.prepare_workdir(tmp_path, experiment.config("quick", ["seed=1"]))
    status, _, err = _main(
        capsys, "run", "gensim-gaussian", "--workdir", str(tmp_path), "--set", "seed=2"
    )
    assert status == 2 and err.count("\n") == 1
    assert "holds an unfinished run with a different config (differs in: seed)" in err
    assert "rerun with --restart to discard it" in err


def test_workdir_of_another_experiment_is_named(capsys, tmp_path):
    experiment = runner.get_experiment("gensim-gaussian")
    runner.prepare_workdir(tmp_path, experiment.config("quick"), experiment="gensim-gaussian")
    (tmp_path / "run.json").write_text(json.dumps({"experiment": "gensim-gaussian"}))
    status, _, err = _main(capsys, "run", "glocal", "--workdir", str(tmp_path))
    assert status == 2 and err.count("\n") == 1
    assert "holds a run of another experiment, 'gensim-gaussian'" in err
    # Without run.json (an older run), the config's fields tell.
    (tmp_path / "run.json").unlink()
    status, _, err = _main(capsys, "run", "glocal", "--workdir", str(tmp_path))
    assert (
        status == 2
        and "holds a run of another experiment (its config.json has other fields)" in err
    )


def test_a_run_that_failed_before_writing_anything_gives_way(tmp_path):
    experiment = runner.get_experiment("gensim-gaussian")
    runner.prepare_workdir(tmp_path, experiment.config("quick", ["seed=1"]))
    (tmp_path / "run.json").write_text(
        json.dumps({"experiment": "gensim-gaussian", "status": "failed"})
    )
    runner.prepare_workdir(
        tmp_path, experiment.config("quick", ["seed=2"]), experiment="gensim-gaussian"
    )
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 2
    # Once it wrote something, a different config needs --restart, which empties the directory.
    (tmp_path / "gensim").mkdir()
    with pytest.raises(runner.UsageError, match="rerun with --restart"):
        runner.prepare_workdir(
            tmp_path, experiment.config("quick", ["seed=3"]), experiment="gensim-gaussian"
        )
    runner.prepare_workdir(tmp_path, experiment.config("quick", ["seed=3"]), restart=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
    # --restart never empties a directory that holds no alignjax run.
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("")
    with pytest.raises(runner.UsageError, match="holds no alignjax run"):
        runner.prepare_workdir(other, experiment.config("quick"), restart=True)
    assert (other / "thesis.tex").exists()


def test_a_truncated_config_file_is_one_line(capsys, tmp_path):
    (tmp_path / "config.json").write_text('{"seed": ')
    status, out, err = _main(capsys, "run", "gensim-gaussian", "--workdir", str(tmp_path))
    assert status == 2 and out.count("\n") == 1 and err.count("\n") == 1
    assert "config.json is unreadable" in err and "--restart" in err


def test_argument_mistakes_and_unexpected_errors_are_one_line(capsys, monkeypatch):
    status, out, err = _main(capsys, "run")
    assert (
        status == 2 and err.count("\n") == 1 and "the following arguments are required: name" in err
    )
    status, out, err = _main(
        capsys, "eval", "--features", "x.npy", "--triplets", "t.txt", "--kernel", "l1"
    )
    assert status == 2 and err.count("\n") == 1 and "invalid choice: 'l1'" in err

    def broken(args):
        raise RuntimeError("something\nmulti-line")

    monkeypatch.setattr(cli, "_list", broken)
    status, _, err = _main(capsys, "list")
    assert (
        status == 2
        and err
        == "alignjax: error: RuntimeError: something multi-line (ALIGNJAX_DEBUG=1 shows where)\n"
    )
    monkeypatch.setenv("ALIGNJAX_DEBUG", "1")
    with pytest.raises(RuntimeError, match="something"):
        cli.main(["list"])


def test_metrics_are_valid_json_whatever_a_run_measured():
    values = {"a": float("nan"), "b": [float("inf"), 1.0], "c": {"d": np.float32(0.5)}}
    ready = runner.json_ready(values)
    assert ready == {"a": None, "b": [None, 1.0], "c": {"d": 0.5}}
    json.dumps(ready, allow_nan=False)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 4)).astype(np.float32)
    triplets = np.stack([rng.choice(12, 3, replace=False) for _ in range(40)])
    np.save(tmp_path / "features.npy", features)
    np.savetxt(tmp_path / "triplets.txt", triplets, fmt="%d")
    (tmp_path / "levels.txt").write_text("\n".join(["coarse", "fine"] * 20) + "\n")
    return tmp_path, features, triplets


def test_eval_reports_the_accuracy_of_the_features(capsys, files):
    path, features, triplets = files
    status, out, _ = _main(
        capsys,
        "eval",
        "--features",
        str(path / "features.npy"),
        "--triplets",
        str(path / "triplets.txt"),
        "--levels",
        str(path / "levels.txt"),
        "--json",
        str(path / "out.json"),
    )
    assert status == 0
    expected = evaluation.odd_one_out_accuracy(features, triplets).accuracy
    written = json.loads((path / "out.json").read_text())
    assert written["features"]["odd_one_out/triplets"] == pytest.approx(expected)
    assert "features/odd_one_out/triplets" in out and f"{expected:.4f}" in out
    fine = evaluation.odd_one_out_accuracy(features, triplets[1::2]).accuracy
    assert written["features"]["odd_one_out/triplets/fine"] == pytest.approx(fine)


def test_eval_bad_triplet_file_names_file_and_row(capsys, files):
    path, _, _ = files
    (path / "bad.txt").write_text("0 1 2\n3 3 4\n")
    status, _, err = _main(
        capsys,
        "eval",
        "--features",
        str(path / "features.npy"),
        "--triplets",
        str(path / "bad.txt"),
    )
    assert status == 2 and err.count("\n") == 1
    assert "bad.txt" in err and "row 1" in err


def test_processes_of_one_run_check_the_work_directory_at_once(tmp_path):
    """Every process of a multi-host run checks the shared work directory at the same
    time; none may trip over another's write probe (a shared probe file did)."""
    workdir = tmp_path / "run"

    def check(_):
        for _ in range(200):
            runner._check_writable(workdir)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(check, range(8)))
    assert list(workdir.iterdir()) == []


def test_a_rerun_keeps_the_wall_time_of_the_run_that_finished(tmp_path, monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(runner.time, "perf_counter", lambda: clock["now"])
    config = runner.get_experiment("gensim-gaussian").config("quick")

    def taking(seconds, error=None):
        def run(config, workdir):
            clock["now"] += seconds
            if error is not None:
                raise error
            return {"accuracy": 0.5}

        return run

    def run_config(run):
        return runner.run_config("gensim-gaussian", config, run, preset="quick", workdir=tmp_path)

    with pytest.raises(KeyboardInterrupt):
        run_config(taking(30.0, KeyboardInterrupt()))
    assert json.loads((tmp_path / "run.json").read_text())["wall_time_seconds"] == 30.0
    with pytest.raises(ValueError):
        run_config(taking(20.0, ValueError("boom")))
    # The run that finishes counts the seconds of those that stopped before it.
    assert run_config(taking(12.5)) == {"accuracy": 0.5, "wall_time_seconds": 62.5}
    again = run_config(taking(1.5))
    assert again == {"accuracy": 0.5, "wall_time_seconds": 62.5, "resumed_wall_time_seconds": 1.5}
    assert json.loads((tmp_path / "metrics.json").read_text()) == again
    status = json.loads((tmp_path / "run.json").read_text())
    assert status["status"] == "finished" and status["wall_time_seconds"] == 62.5
