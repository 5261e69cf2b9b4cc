"""gensim-gaussian at a small size: the claim's direction, the artefacts, resumption."""

import json

import pytest

from alignjax import runner
from alignjax.methods import gensim_gaussian_report

# One device (see test_experiments_gensim_hierarchy.py: the simulated devices' collectives
# abort when a loaded 2-core machine stalls one of them).
SMALL = [
    "train.mesh.data=1",
    "train.num_steps=1000",
    "train.progress_bar=false",
    "num_eval_pairs=1000",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gensim-gaussian")
    return workdir, runner.run_experiment("gensim-gaussian", workdir=workdir, overrides=SMALL)


def test_generative_similarity_tracks_exact_sgen_better_than_every_baseline(run):
    _, metrics = run
    method = metrics["gensim"]["spearman"]
    assert method > 0.9
    for baseline in ("simclr", "supcon", "untrained"):
        assert method > metrics[baseline]["spearman"], baseline


def test_run_writes_its_artefacts(run):
    workdir, metrics = run
    assert json.loads((workdir / "metrics.json").read_text())["gensim"] == metrics["gensim"]
    assert json.loads((workdir / "config.json").read_text())["train"]["num_steps"] == 1000
    report = (workdir / "report.md").read_text()
    assert "| gensim |" in report and "similarity_vs_sgen.png" in report
    assert (workdir / "similarity_vs_sgen.png").stat().st_size > 10_000
    assert (workdir / "gensim" / "checkpoints").is_dir()


def test_report_opens_with_findings_that_follow_the_metrics(run):
    workdir, metrics = run
    report = (workdir / "report.md").read_text()
    assert report.split("\n## ")[1].startswith("Findings\n")
    config = runner.get_experiment("gensim-gaussian").config("quick", SMALL)
    claims, _ = gensim_gaussian_report.findings(config, metrics)
    for claim in claims:
        assert claim.markdown() in report
    # The run meets the 0.9 target and beats every baseline (the first test).
    assert [c.held for c in claims] == [True, True]
    assert "Terms: " in report and "tensorboard --logdir" in report


def test_rerun_in_the_same_workdir_restores_instead_of_retraining(run, capsys):
    workdir, metrics = run
    log = workdir / "gensim" / "metrics.jsonl"
    records = log.read_text()
    capsys.readouterr()
    again = runner.run_experiment("gensim-gaussian", workdir=workdir, overrides=SMALL)
    assert again["gensim"] == metrics["gensim"]
    assert log.read_text() == records  # no training step ran again
    stages = ["gensim", "simclr", "supcon", "untrained", "report"]
    assert capsys.readouterr().err.splitlines()[:3] == [
        "stage 1/5: gensim",
        "restored gensim (step 1000)",
        "stage 2/5: simclr",
    ]
    # The first run's times are kept; the rerun's are recorded apart.
    assert list(metrics["stage_seconds"]) == stages
    for key in ("stage_seconds", "wall_time_seconds"):
        assert again[key] == metrics[key]
    assert list(again["resumed_stage_seconds"]) == stages
    assert again["resumed_wall_time_seconds"] >= 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objectives=gensim,nope", r"objectives must be a non-empty subset.*'nope'"),
        ("num_eval_pairs=1", r"num_eval_pairs=1: must be an integer >= 2"),
        ("jitter_std=-0.1", r"jitter_std=-0.1: must be a finite number >= 0"),
        ("world.dim=0", r"world.dim=0: must be an integer >= 1"),
        ("world.separation=nan", r"world.separation=nan: must be a finite number"),
        ("objective.gensim_temperature=0", r"objective.gensim_temperature=0.0: .* > 0"),
        ("objective.batch_size=0", r"objective.batch_size=0: must be an integer >= 1"),
    ],
)
def test_bad_configs_are_one_usage_error(override, message):
    with pytest.raises(runner.UsageError, match=message):
        runner.get_experiment("gensim-gaussian").config("quick", [override])
