"""`alignjax fit glocal` and `alignjax apply glocal` (alignjax.methods.glocal_files) on
files, through the command: THINGS, resuming, and one-line errors for bad inputs."""

import json
import pathlib

import numpy as np
import pytest

from alignjax import cli
from alignjax.data.observers import LuceObserver, simulate_triplet_dataset
from alignjax.data.triplet_set import TripletSet, split_by_triplet
from alignjax.evaluation import files as evaluation_files
from alignjax.models import AffineParams

THINGS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "things"
THINGS_FEATURES = THINGS / "minilm_l6_v2_concept_names.npy"
THINGS_TRIPLETS = THINGS / "triplets_things_test10_sample50k.txt"
# One point of each grid, a short run (the warm-up spans it) and a smaller local batch.
SMALL = [
    "fit.penalty_weights=0.1",
    "fit.alphas=0.1",
    "fit.temperatures=1",
    "fit.naive_penalty_weights=0.1",
    "fit.local_batch_size=256",
    "fit.train.num_steps=150",
    "fit.train.warmup_steps=149",
    "fit.train.progress_bar=false",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Features whose first two dimensions carry the people's similarity, and their triplets."""
    directory = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(80, 2))
    features = np.concatenate([signal, 3.0 * rng.normal(size=(80, 2))], axis=1)
    observer = LuceObserver(signal @ signal.T, temperature=0.1)
    triplets = simulate_triplet_dataset(observer, n_train=2000, n_validation=0, n_test=0).train
    np.save(directory / "features.npy", features.astype(np.float32))
    np.savetxt(directory / "triplets.txt", triplets.indices, fmt="%d")
    return directory


def _command(*argv, capsys):
    """``alignjax ...``: (status, stdout, stderr)."""
    status = cli.main([str(part) for part in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _fit(files, workdir, *extra, capsys, flags=()):
    # A larger step and a weaker pull to the identity than THINGS needs: 150 steps to
    # weigh these features' dimensions anew.
    quick = ["fit.learning_rates=0.01", "fit.penalty_weights=0.001", "fit.naive_penalty_weights=0"]
    sets = [part for o in (*SMALL, *quick, *extra) for part in ("--set", o)]
    argv = ["fit", "glocal", "--features", files / "features.npy"]
    argv += ["--triplets", files / "triplets.txt", "--workdir", workdir, *flags]
    return _command(*argv, *sets, capsys=capsys)


def _error(result) -> str:
    status, out, err = result
    # stdout holds only the line the fit opens with, said before JAX is imported.
    assert status == 2 and (out == "" or out.startswith("alignjax fit glocal: "))
    assert out.count("\n") <= 1
    assert err.count("\n") == 1, (status, err)
    return err.removeprefix("alignjax: error: ").rstrip("\n")


def test_split_is_by_triplet_and_fixed_by_the_seed():
    triplets = TripletSet(np.stack([np.arange(100), np.arange(100) + 1, np.arange(100) + 2], 1))
    train, validation, test = split_by_triplet(triplets, 0.1, 0.1, np.random.default_rng(3))
    assert (len(train), len(validation), len(test)) == (80, 10, 10)
    rows = np.concatenate([s.indices[:, 0] for s in (train, validation, test)])
    assert sorted(rows.tolist()) == list(range(100))
    again = split_by_triplet(triplets, 0.1, 0.1, np.random.default_rng(3))
    np.testing.assert_array_equal(again[1].indices, validation.indices)
    assert split_by_triplet(triplets, 0.2, 0.0, np.random.default_rng(0))[2] is None


def test_fit_glocal_writes_the_transform_metrics_report_and_resumes(files, tmp_path, capsys):
    status, out, _ = _fit(files, tmp_path, capsys=capsys)
    assert status == 0 and "transform: " in out and "glocal  odd-one-out accuracy" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"base", "naive", "glocal", "grid", "stage_seconds", "wall_time_seconds"}
    assert list(metrics["stage_seconds"]) == ["naive_grid", "glocal_grid", "evaluation", "report"]
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "finished"
    for row in metrics["grid"]:
        assert {"odd_one_out/validation", "odd_one_out/test", "neighbour_preservation"} <= set(row)
    assert metrics["glocal"]["odd_one_out/test"] > metrics["base"]["odd_one_out/test"] + 0.1
    with np.load(tmp_path / "transform.npz") as data:
        assert sorted(data) == ["bias", "mean", "std", "weights"]
        np.testing.assert_array_equal(data["bias"], np.zeros(4))  # released: no bias
    report = (tmp_path / "report.md").read_text()
    assert "| glocal |" in report and "alignment_vs_local_structure.png" in report
    assert (tmp_path / "alignment_vs_local_structure.png").stat().st_size > 10_000

    # The same command resumes: nothing is refitted, the numbers are the same.
    fitted = {p: p.stat().st_mtime_ns for p in (tmp_path / "transforms").rglob("*.npz")}
    assert _fit(files, tmp_path, capsys=capsys)[0] == 0
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert {p: p.stat().st_mtime_ns for p in fitted} == fitted
    # The times of the first run are kept; the rerun's are recorded apart.
    assert {k: v for k, v in again.items() if not k.startswith("resumed_")} == metrics
    assert set(again["resumed_stage_seconds"]) == set(metrics["stage_seconds"])
    assert again["resumed_wall_time_seconds"] >= 0
    # Another config, or other input files, is refused rather than mixed with this run.
    changed = _error(_fit(files, tmp_path, "fit.alphas=0.5", capsys=capsys))
    assert "differs in: fit.alphas" in changed
    reseeded = _error(_fit(files, tmp_path, capsys=capsys, flags=["--seed", "1"]))
    assert "differs in: seed" in reseeded


def test_apply_glocal_is_the_transform_and_reads_the_released_files(files, tmp_path, capsys):
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(4, 3)).astype(np.float32)
    # The released code's file: np.savez_compressed, no bias without --use_bias.
    np.savez_compressed(tmp_path / "released.npz", weights=weights, mean=0.5, std=2.0)
    argv = ["apply", "glocal", "--transform", tmp_path / "released.npz"]
    argv += ["--features", files / "features.npy", "--out", tmp_path / "g"]
    status, printed, _ = _command(*argv, capsys=capsys)
    assert status == 0 and printed.strip() == str(tmp_path / "g")
    out = tmp_path / "g"
    features = np.load(files / "features.npy")
    expected = AffineParams(weights, np.zeros(3), mean=0.5, std=2.0).apply(features)
    np.testing.assert_array_equal(np.load(out), expected)
    np.testing.assert_allclose(np.load(out), (features - 0.5) / 2.0 @ weights, rtol=1e-5)


def test_bad_inputs_are_one_line_naming_the_file_and_row(files, tmp_path, capsys):
    features = np.load(files / "features.npy")
    broken = features.copy()
    broken[7, 1] = np.nan
    np.save(tmp_path / "nan.npy", broken)

    def fit(features, triplets):
        argv = ["fit", "glocal", "--features", features, "--triplets", triplets]
        return _command(*argv, "--workdir", tmp_path / "run", capsys=capsys)

    message = _error(fit(tmp_path / "nan.npy", files / "triplets.txt"))
    assert message == f"{tmp_path / 'nan.npy'}: row 7 holds NaN or infinite features."

    (tmp_path / "far.txt").write_text("0 1 2\n3 4 80\n")
    message = _error(fit(files / "features.npy", tmp_path / "far.txt"))
    assert message.startswith(f"{tmp_path / 'far.txt'}: row 1 (line 2) has an index")
    assert "in [0, 80)" in message
    assert "missing.txt" in _error(fit(files / "features.npy", tmp_path / "missing.txt"))

    np.save(tmp_path / "narrow.npy", features[:, :3])
    narrow = ["--local-features", tmp_path / "narrow.npy"]
    message = _error(_fit(files, tmp_path / "c", capsys=capsys, flags=narrow))
    assert message.startswith(f"{tmp_path / 'narrow.npy'}: 80 rows of 3 columns")

    both = ["--validation-triplets", tmp_path / "far.txt", "--validation-fraction", "0.1"]
    assert "not allowed with argument" in _error(
        _fit(files, tmp_path / "d", capsys=capsys, flags=both)
    )
    message = _error(_fit(files, tmp_path / "e", capsys=capsys, flags=["--test-fraction", "1.5"]))
    assert message == "--test-fraction must lie in [0, 1); got 1.5"
    message = _error(_fit(files, tmp_path / "g", "seed=3", capsys=capsys))
    assert "only fit.<field> and evaluation.<field>" in message
    message = _error(_fit(files, tmp_path / "h", "fit.train.num_steps=20", capsys=capsys))
    assert "fit.train.warmup_steps=149: must be smaller than num_steps=20" in message
    # Nothing was written for the refused commands.
    assert not any((tmp_path / name).exists() for name in ("run", "c", "d", "e", "g", "h"))

    AffineParams(np.eye(4), np.zeros(4)).save_npz(tmp_path / "t.npz")
    apply = ["apply", "glocal", "--transform", tmp_path / "t.npz", "--out", tmp_path / "o.npy"]
    assert _error(_command(*apply, "--features", tmp_path / "narrow.npy", capsys=capsys)) == (
        f"{tmp_path / 't.npz'}: the transform takes 4 features, but {tmp_path / 'narrow.npy'} "
        "has 3 per row."
    )
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.skipif(not THINGS.is_dir(), reason=f"the THINGS files are not at {THINGS}")
def test_things_runs_through_fit_glocal(tmp_path, capsys):
    argv = ["fit", "glocal", "--features", THINGS_FEATURES, "--triplets", THINGS_TRIPLETS]
    argv += ["--validation-fraction", "0.1", "--test-fraction", "0.1", "--workdir", tmp_path]
    status, _, _ = _command(*argv, *(p for o in SMALL for p in ("--set", o)), capsys=capsys)
    assert status == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    base, naive, glocal = metrics["base"], metrics["naive"], metrics["glocal"]
    assert base["odd_one_out/test"] == pytest.approx(0.41, abs=0.02)  # zero-shot, 5000 triplets
    assert glocal["odd_one_out/test"] > base["odd_one_out/test"] + 0.03
    assert naive["odd_one_out/test"] > base["odd_one_out/test"] + 0.03
    assert 0 < glocal["neighbour_preservation"] < 1 and base["neighbour_preservation"] == 1.0
    params = AffineParams.load_npz(tmp_path / "transform.npz")
    assert params.weights.shape == (384, 384) and not params.bias.any()
    # `alignjax eval --transform` reads it.
    results = evaluation_files.evaluate_files(
        features=THINGS_FEATURES, triplets=THINGS_TRIPLETS, transform=tmp_path / "transform.npz"
    )
    accuracy = "odd_one_out/triplets"
    assert results["transformed"][accuracy] > results["features"][accuracy]
    report = (tmp_path / "report.md").read_text()
    assert "40000 triplets" in report and "5000 validation, 5000 test" in report
