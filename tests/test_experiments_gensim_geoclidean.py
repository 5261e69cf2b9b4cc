"""gensim-geoclidean at a small size: few-shot concept learning against SupCon and the
untrained encoder, the artefacts, resumption."""

import json

import numpy as np
import pytest

from alignjax import runner
from alignjax.data.geoclidean import CONCEPT_NAMES
from alignjax.methods import gensim_geoclidean, gensim_geoclidean_report

# One device (see test_experiments_gensim_hierarchy.py), a narrower CNN than the quick
# preset's and fewer tasks; SimCLR, whose margin on far foils is small at any size, is
# compared in experiments/README.md.
SMALL = [
    "train.mesh.data=1",
    "encoder.widths=16,32,32,32",
    "objectives=gensim_nce,supcon,untrained",
    "num_tasks_per_concept=10",
    "train.progress_bar=false",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gensim-geoclidean")
    return workdir, runner.run_experiment("gensim-geoclidean", workdir=workdir, overrides=SMALL)


def test_generative_similarity_tells_concepts_apart_from_five_examples(run):
    _, metrics = run
    method, supcon, untrained = metrics["gensim_nce"], metrics["supcon"], metrics["untrained"]
    # Far foils (another concept): new instances of trained concepts and unseen concepts
    # alike. Measured far accuracy, jax 0.10 / 0.12: gensim_nce trained 0.922 / 0.920,
    # unseen 0.944 / 0.942; SupCon 0.726 / 0.735 and 0.843 / 0.897 (its training varies
    # with the XLA version); untrained 0.637 and 0.710. On unseen concepts this narrow
    # CNN's SupCon comes close, so there the method need only be ahead of it (the quick
    # preset's gap, 0.938 against 0.763, is in experiments/README.md).
    for split in gensim_geoclidean.SPLITS:
        assert method[f"{split}/far"] > untrained[f"{split}/far"] + 0.1, split
    assert method["trained/far"] > supcon["trained/far"] + 0.1
    assert method["unseen/far"] > supcon["unseen/far"]
    for split in gensim_geoclidean.SPLITS:
        # Far foils are easier than close ones (one constraint relaxed).
        assert method[f"{split}/far"] > method[f"{split}/close"], split
    for m in (method, supcon, untrained):
        for split in gensim_geoclidean.SPLITS:
            for foil in gensim_geoclidean.FOILS:
                assert 0.0 <= m[f"{split}/{foil}"] <= 1.0
                per_concept = m[f"{split}/{foil}_per_concept"]
                assert len(per_concept) == 10
                assert m[f"{split}/{foil}"] == pytest.approx(np.mean(list(per_concept.values())))
    assert set(method["unseen/close_per_concept"]) == set(CONCEPT_NAMES)
    assert not set(method["trained/close_per_concept"]) & set(CONCEPT_NAMES)


def test_run_writes_its_artefacts(run):
    workdir, metrics = run
    saved = json.loads((workdir / "metrics.json").read_text())
    assert saved["gensim_nce"]["trained/close"] == metrics["gensim_nce"]["trained/close"]
    report = (workdir / "report.md").read_text()
    assert "| gensim_nce |" in report and "| untrained |" in report
    for name in (
        "forced_choice_accuracy.png",
        "close_foils_per_concept.png",
        "training_concepts.png",
        "example_task.png",
    ):
        assert name in report and (workdir / name).stat().st_size > 10_000
    for split in gensim_geoclidean.SPLITS:
        scores = np.load(workdir / "gensim_nce" / f"scores_{split}.npy")
        assert scores.shape == (10, 10, 15)  # concepts, tasks, 5 in-concept + 5 close + 5 far


def test_report_opens_with_findings_that_follow_the_metrics(run):
    workdir, metrics = run
    report = (workdir / "report.md").read_text()
    assert report.split("\n## ")[1].startswith("Findings\n")
    config = runner.get_experiment("gensim-geoclidean").config("quick", SMALL)
    claims, _ = gensim_geoclidean_report.findings(config, metrics, gensim_geoclidean.FOILS)
    for claim in claims:
        assert claim.markdown() in report
    # Far foils of unseen concepts: ahead of SupCon and the untrained encoder (the first test).
    assert "far foils" in claims[1].claim and claims[1].held
    assert "Terms: " in report and "tensorboard --logdir" in report


def test_rerun_in_the_same_workdir_restores_instead_of_retraining(run):
    workdir, metrics = run
    log = workdir / "gensim_nce" / "metrics.jsonl"
    records = log.read_text()
    again = runner.run_experiment("gensim-geoclidean", workdir=workdir, overrides=SMALL)
    assert again["gensim_nce"] == metrics["gensim_nce"]
    assert log.read_text() == records


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("objectives=", "objectives must be a non-empty subset"),
        ("num_training_concepts=5", "num_training_concepts must be >= 10"),
        ("num_training_concepts=1", r"num_training_concepts=1: must be an integer >= 2"),
        ("num_train=0", r"num_train=0: must be an integer >= 1"),
        ("seed=-3", r"seed=-3: must be an integer >= 0"),
        ("world.min_size=1", r"world.min_size=1.0: must be a finite number in \(0, 1\)"),
        ("objective.examples_per_call=0", r"objective.examples_per_call=0: .* >= 1"),
        ("grammar.min_objects=1", "min_objects"),
        ("example_concept=spiral", "spiral"),
    ],
)
def test_bad_configs_are_one_usage_error(override, message):
    with pytest.raises(runner.UsageError, match=message):
        runner.get_experiment("gensim-geoclidean").config("quick", [override])
