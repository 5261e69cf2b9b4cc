"""gensim-geoclidean at a small size: few-shot concept learning against the untrained
encoder, the artefacts, resumption."""

import json

import numpy as np
import pytest

from alignjax import runner
from alignjax.methods import gensim_geoclidean

# One device (see test_experiments_gensim_hierarchy.py), a narrower CNN than the quick
# preset's and fewer tasks; SimCLR and SupCon are compared at full size in
# experiments/README.md.
SMALL = [
    "train.mesh.data=1",
    "encoder.widths=16,32,32,32",
    "objectives=gensim_nce,untrained",
    "num_tasks_per_concept=10",
    "train.progress_bar=false",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gensim-geoclidean")
    return workdir, runner.run_experiment("gensim-geoclidean", workdir=workdir, overrides=SMALL)


def test_generative_similarity_learns_the_trained_concepts_from_five_examples(run):
    _, metrics = run
    method, untrained = metrics["gensim_nce"], metrics["untrained"]
    for foil in gensim_geoclidean.FOILS:
        assert method[f"trained/{foil}"] > untrained[f"trained/{foil}"] + 0.05, foil
    # Far foils (another concept) are easier than close ones (one constraint broken).
    assert method["trained/far"] > method["trained/close"]
    for m in (method, untrained):
        for split in gensim_geoclidean.SPLITS:
            for foil in gensim_geoclidean.FOILS:
                assert 0.0 <= m[f"{split}/{foil}"] <= 1.0
                per_concept = m[f"{split}/{foil}_per_concept"]
                assert len(per_concept) == 10
                assert m[f"{split}/{foil}"] == pytest.approx(np.mean(list(per_concept.values())))


def test_run_writes_its_artefacts(run):
    workdir, metrics = run
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved["gensim_nce"]["trained/close"] == metrics["gensim_nce"]["trained/close"]
    report = (workdir / "report.md").read_text()
    assert "| gensim_nce |" in report and "| untrained |" in report
    for name in ("forced_choice_accuracy.png", "example_task.png"):
        assert name in report and (workdir / name).stat().st_size > 10_000
    for fold in (0, 1):
        scores = np.load(workdir / f"fold{fold}" / "gensim_nce" / "scores.npy")
        assert scores.shape == (10, 10, 15)  # concepts, tasks, 5 in-concept + 5 close + 5 far


def test_rerun_in_the_same_workdir_restores_instead_of_retraining(run):
    workdir, metrics = run
    log = workdir / "fold0" / "gensim_nce" / "metrics.jsonl"
    records = log.read_text()
    again = runner.run_experiment("gensim-geoclidean", workdir=workdir, overrides=SMALL)
    assert again["gensim_nce"] == metrics["gensim_nce"]
    assert log.read_text() == records


@pytest.mark.parametrize(
    ("override", "message"),
    [("objectives=", "objectives must be a non-empty subset"),
     ("num_folds=11", r"num_folds must lie in \[1, 10\]"),
     ("example_concept=spiral", "spiral")],
)
def test_bad_configs_are_one_usage_error(override, message):
    with pytest.raises(runner.UsageError, match=message):
        runner.get_experiment("gensim-geoclidean").config("quick", [override])
