"""The glocal experiment at a small size: the claim's direction, the artefacts, resumption."""

import json
import pathlib

import numpy as np
import pytest

from alignjax import runner
from alignjax.models import AffineParams

THINGS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "things"
FIT = [
    "fit.learning_rates=0.001",
    "fit.penalty_weights=0.01",
    "fit.alphas=0.25",
    "fit.temperatures=0.5",
    "fit.naive_penalty_weights=0.01",
    "fit.train.progress_bar=false",
]
# The quick preset's world and base model (a weaker base model leaves nothing for the
# transforms to align), one point of each grid and fewer test triplets; one device (see
# test_experiments_gensim_hierarchy.py).
SMALL = [
    "train.mesh.data=1",
    "train.progress_bar=false",
    "n_test_triplets=3000",
    "n_level_triplets=500",
    *FIT,
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("glocal")
    return workdir, runner.run_experiment("glocal", workdir=workdir, overrides=SMALL)


def test_glocal_aligns_and_keeps_local_structure_that_naive_breaks(run):
    _, metrics = run
    base, naive, glocal = metrics["base"], metrics["naive"], metrics["glocal"]
    assert naive["odd_one_out/test"] > base["odd_one_out/test"]
    assert glocal["odd_one_out/test"] > base["odd_one_out/test"]
    assert glocal["neighbour_preservation"] > naive["neighbour_preservation"] + 0.1
    assert glocal["few_shot/logistic/1"] > naive["few_shot/logistic/1"]
    assert base["neighbour_preservation"] == 1.0
    for space in (base, naive, glocal):
        assert space["odd_one_out/test"] < space["noise_ceiling/test"]
        assert set(space) >= {
            "odd_one_out/levels/coarse",
            "odd_one_out/levels/boundary",
            "odd_one_out/levels/fine",
            "noise_ceiling/levels/fine",
            "few_shot/logistic/5",
            "anomaly_auc",
        }


def test_run_writes_its_artefacts(run):
    workdir, metrics = run
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved["glocal"] == pytest.approx(metrics["glocal"])
    assert len(json.loads((workdir / "grid.json").read_text())) == 2
    report = (workdir / "report.md").read_text()
    assert "| glocal |" in report and "| naive |" in report and "| noise ceiling |" in report
    for name in ("alignment_vs_local_structure.png", "accuracy_per_level.png", "downstream.png"):
        assert name in report and (workdir / name).stat().st_size > 10_000
    for name in ("transform.npz", "naive.npz"):
        with np.load(workdir / name) as data:
            assert sorted(data) == ["bias", "mean", "std", "weights"]
        assert AffineParams.load_npz(workdir / name).weights.shape == (64, 64)
    assert (workdir / "base" / "checkpoints").is_dir()


def test_rerun_in_the_same_workdir_restores_instead_of_refitting(run):
    workdir, metrics = run
    log = workdir / "base" / "metrics.jsonl"
    records = log.read_text()
    transforms = {p: p.stat().st_mtime_ns for p in (workdir / "transforms").rglob("*.npz")}
    again = runner.run_experiment("glocal", workdir=workdir, overrides=SMALL)
    assert again["glocal"] == pytest.approx(metrics["glocal"])
    assert log.read_text() == records  # no base-model step ran again
    assert {p: p.stat().st_mtime_ns for p in transforms} == transforms


@pytest.mark.skipif(not THINGS.is_dir(), reason=f"the THINGS files are not at {THINGS}")
def test_things_data_runs_without_the_world(tmp_path):
    overrides = [f"things_dir={THINGS}", "things_held_out_categories=4", *FIT]
    metrics = runner.run_experiment("glocal", workdir=tmp_path, overrides=overrides)
    base = metrics["base"]
    assert not any(key.startswith(("noise_ceiling", "odd_one_out/levels")) for key in base)
    assert metrics["glocal"]["odd_one_out/test"] > metrics["base"]["odd_one_out/test"]
    assert not (tmp_path / "base").exists()
