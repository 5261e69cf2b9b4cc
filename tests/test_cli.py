"""The `alignjax` command: listing, mistakes reported as one line, `eval` on files."""

import json
import subprocess

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
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err


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
    assert status == 2 and "holds a run with a different config (differs in: seed)" in err


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
    assert written["features"]["accuracy"] == pytest.approx(expected)
    assert "features/accuracy" in out and f"{expected:.4f}" in out
    fine = evaluation.odd_one_out_accuracy(features, triplets[1::2]).accuracy
    assert written["features"]["accuracy/fine"] == pytest.approx(fine)


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
