"""gensim-quadrilaterals at a small size: the regularity effect's direction, the artefacts,
resumption."""

import json

import numpy as np
import pytest

from alignjax import runner
from alignjax.data.quadrilaterals import SHAPE_NAMES
from alignjax.methods import gensim_quadrilaterals, gensim_quadrilaterals_report

# One device (see test_experiments_gensim_hierarchy.py) and a narrower CNN than the
# quick preset's.
SMALL = [
    "train.mesh.data=1",
    "encoder.widths=16,32,32,32",
    "objectives=gensim_nce,simclr,supcon,untrained",
    "num_trials_per_shape=100",
    "train.progress_bar=false",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gensim-quadrilaterals")
    return workdir, runner.run_experiment("gensim-quadrilaterals", workdir=workdir, overrides=SMALL)


def test_generative_similarity_makes_regular_shapes_easy_and_irregular_ones_hard(run):
    _, metrics = run
    method, untrained = metrics["gensim_nce"], metrics["untrained"]
    assert method["regular_error"] < untrained["regular_error"] - 0.15
    assert method["regularity_gap"] > untrained["regularity_gap"] + 0.1
    # Unlike the baselines: SimCLR's errors rise less with irregularity, SupCon's not at all.
    assert method["regularity_gap"] > metrics["simclr"]["regularity_gap"] + 0.1
    assert method["regularity_gap"] > metrics["supcon"]["regularity_gap"] + 0.2
    # A square's intruder leaves its class; a random shape's is just another random shape.
    assert method["per_shape_error"]["random"] > method["per_shape_error"]["square"] + 0.3
    for m in (metrics[name] for name in ("gensim_nce", "simclr", "supcon", "untrained")):
        assert list(m["per_shape_error"]) == list(SHAPE_NAMES)
        assert all(0.0 <= e <= 1.0 for e in m["per_shape_error"].values())
        errors = [m["per_shape_error"][s] for s in SHAPE_NAMES]
        assert m["error_rate"] == pytest.approx(np.mean(errors))


def test_run_writes_its_artefacts(run):
    workdir, metrics = run
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved["gensim_nce"]["per_shape_error"] == metrics["gensim_nce"]["per_shape_error"]
    report = (workdir / "report.md").read_text()
    assert "| gensim_nce |" in report and "| untrained |" in report
    for name in ("error_per_shape.png", "example_trials.png"):
        assert name in report and (workdir / name).stat().st_size > 10_000
    embeddings = np.load(workdir / "gensim_nce" / "oddball_embeddings.npy")
    assert embeddings.shape == (100 * len(SHAPE_NAMES), 6, 32)


def test_report_opens_with_findings_that_follow_the_metrics(run):
    workdir, metrics = run
    report = (workdir / "report.md").read_text()
    assert report.split("\n## ")[1].startswith("Findings\n")
    config = runner.get_experiment("gensim-quadrilaterals").config("quick", SMALL)
    claims, _ = gensim_quadrilaterals_report.findings(config, metrics)
    for claim in claims:
        assert claim.markdown() in report
    # Gaps ahead of every baseline by 0.1 (the first test); no human rates are built in.
    assert [c.held for c in claims[1:]] == [True, None]
    assert "Terms: " in report and "tensorboard --logdir" in report


def test_rerun_in_the_same_workdir_restores_instead_of_retraining(run):
    workdir, metrics = run
    log = workdir / "gensim_nce" / "metrics.jsonl"
    records = log.read_text()
    again = runner.run_experiment("gensim-quadrilaterals", workdir=workdir, overrides=SMALL)
    assert again["gensim_nce"] == metrics["gensim_nce"]
    assert log.read_text() == records


def test_regularity_summary_by_hand():
    errors = dict(zip(SHAPE_NAMES, [0.1, 0.1, 0.1] + [0.5] * 5 + [0.7, 0.7, 0.7]))
    summary = gensim_quadrilaterals.regularity_summary(errors)
    assert summary["regular_error"] == pytest.approx(0.1)
    assert summary["irregular_error"] == pytest.approx(0.7)
    assert summary["regularity_gap"] == pytest.approx(0.6)
    assert summary["regularity_spearman"] > 0.8
    flat = gensim_quadrilaterals.regularity_summary(dict.fromkeys(SHAPE_NAMES, 0.3))
    assert np.isnan(flat["regularity_spearman"]) and flat["regularity_gap"] == 0.0
    with pytest.raises(ValueError, match="lacks the shapes"):
        gensim_quadrilaterals.regularity_summary({"square": 0.1})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objectives=gensim,nope", "objectives"),
        ("human_error_rates=0.1,0.2", "human_error_rates must hold 11 rates"),
        ("human_error_rates=" + ",".join(["1.5"] * 11), r"human_error_rates=.*in \[0, 1\]"),
        ("num_trials_per_shape=0", r"num_trials_per_shape=0: must be an integer >= 1"),
        ("num_example_trials=12", r"num_example_trials=12: must be an integer in \[0, 11\]"),
        ("world.intruder_fraction=0.7", r"world.intruder_fraction=0.7: .* in \(0, 0.6\]"),
        ("objective.contrastive_temperature=-1", r"objective.contrastive_temperature=-1.0"),
        ("objective.num_threads=-1", r"objective.num_threads=-1: must be an integer >= 0"),
    ],
)
def test_bad_configs_name_the_field(override, message):
    with pytest.raises(runner.UsageError, match=message):
        runner.get_experiment("gensim-quadrilaterals").config("quick", [override])
