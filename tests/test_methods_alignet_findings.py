"""AligNet's Findings: each claim's verdict follows the run's metrics, the notes explain
the numbers that need it, and the section opens the report (with readable figures)."""

import copy
import dataclasses
import json
import math

import numpy as np
import pytest

from alignjax.data.hierarchy import Tree
from alignjax.data.levels import LEVELS_AND_OTHER
from alignjax.data.sources import ArrayImages, ImageSource
from alignjax.data.triplet_set import TripletSet
from alignjax.methods import alignet_findings, alignet_report
from alignjax.methods.alignet_config import AligNetConfig
from alignjax.methods.alignet_distillation import DistillationConfig

LEVELS = ("coarse", "boundary", "fine")


def _model(levels, humans, few_shot, dot=None, agreement=0.5):
    """One model's metrics: Levels accuracies (coarse, boundary, fine), held-out humans,
    5-shot accuracy; the dot-product ones equal unless given."""
    metrics = {f"odd_one_out/levels/{lv}": v for lv, v in zip(LEVELS, levels)}
    metrics["odd_one_out/levels"] = float(np.mean(levels))
    metrics["odd_one_out/humans"] = humans
    for key, value in list(metrics.items()):
        metrics[f"dot/{key}"] = value
    for lv, v in zip(LEVELS, dot or ()):
        metrics[f"dot/odd_one_out/levels/{lv}"] = v
    metrics["few_shot/logistic/5"] = few_shot
    metrics["anomaly_auc"] = 0.99
    for teacher in ("alignet", "unalignet"):
        metrics[f"dot/odd_one_out/{teacher}_teacher"] = agreement
    return metrics


def _metrics():
    """The quick run's picture (experiments/README.md), rounded."""
    base = _model((0.525, 0.811, 0.605), 0.426, 0.979, dot=(0.525, 0.803, 0.571), agreement=0.511)
    base.update(
        {
            "noise_ceiling/levels": 0.921,
            "noise_ceiling/levels/coarse": 0.943,
            "noise_ceiling/levels/boundary": 0.929,
            "noise_ceiling/levels/fine": 0.891,
            "noise_ceiling/humans": 0.699,
        }
    )
    return {
        "base": base,
        "unalignet": _model((0.617, 0.907, 0.559), 0.498, 0.997, agreement=0.553),
        "alignet": _model(
            (0.951, 0.871, 0.561), 0.699, 0.986, dot=(0.953, 0.697, 0.442), agreement=0.743
        ),
        "teacher": _model((0.620, 0.920, 0.473), 0.497, 0.984),
        "teacher_ud": _model((0.955, 0.908, 0.449), 0.696, 0.988, dot=(0.955, 0.766, 0.361)),
        "uncertainty_distillation": {
            "temperature": 0.5,
            "penalty": 0.001,
            "untransformed_temperature": 2.0,
            "validation_grid": [{"temperature": 0.5, "penalty": 0.001, "kl": 0.1}],
            "untransformed/validation_kl": 0.44,
            "untransformed/test_kl": 0.430,
            "aligned/validation_kl": 0.07,
            "aligned/test_kl": 0.069,
        },
    }


COUNTS = {
    "odd_one_out/levels": 3000,
    **{f"odd_one_out/levels/{lv}": 1000 for lv in LEVELS},
    "odd_one_out/humans": 5000,
}


def _verdicts(findings):
    return {f.claim: f.held for f in findings.findings}


def _find(findings, words):
    (finding,) = [f for f in findings.findings if words in f.claim]
    return finding


def test_the_quick_runs_claims_get_the_readmes_verdicts():
    result = alignet_findings.findings(AligNetConfig(), _metrics(), COUNTS)
    assert _find(result, "uncertainty distillation").held is True
    assert "0.430 -> 0.069" in _find(result, "uncertainty distillation").evidence
    assert _find(result, "agrees with human").held is True
    assert _find(result, "every abstraction level").held is False  # fine: -4.4 points
    assert "fine -4.4" in _find(result, "every abstraction level").evidence
    assert _find(result, "coarse (global)").held is True
    assert _find(result, "human-aligned teacher").held is True
    assert _find(result, "similarity structure").held is True
    assert _find(result, "few-shot").held is True


def test_a_few_shot_drop_is_not_held_and_named():
    metrics = _metrics()
    metrics["alignet"]["few_shot/logistic/5"] = 0.860  # below the base's 0.979
    finding = _find(alignet_findings.findings(AligNetConfig(), metrics), "few-shot")
    assert finding.held is False
    assert "5-shot (logistic) 0.979 -> 0.860 (fell)" in finding.evidence
    assert "anomaly AUC 0.990 -> 0.990" in finding.evidence  # kept, not marked
    # Equal everywhere: nothing improved, so the claim of improvement is not held either.
    metrics["alignet"]["few_shot/logistic/5"] = 0.979
    assert _find(alignet_findings.findings(AligNetConfig(), metrics), "few-shot").held is False


def test_level_findings_compare_the_gains():
    base = {"odd_one_out/levels/coarse": 0.5, "odd_one_out/levels/boundary": 0.8}
    every, coarse = alignet_findings.level_findings(
        base, {"odd_one_out/levels/coarse": 0.6, "odd_one_out/levels/boundary": 0.95}
    )
    assert (every.held, coarse.held) == (True, False)  # +10 at coarse, +15 at boundary
    assert "coarse +10.0, boundary +15.0" in every.evidence
    every, coarse = alignet_findings.level_findings({}, {})
    assert every.held is None and coarse.held is None


def test_without_human_triplets_the_aligned_claims_are_not_tested():
    metrics = _metrics()
    del metrics["alignet"], metrics["teacher_ud"]
    metrics["uncertainty_distillation"] = {"untransformed_temperature": 2.0}
    verdicts = _verdicts(alignet_findings.findings(AligNetConfig(), metrics))
    assert [held for claim, held in verdicts.items() if "UnAligNet" not in claim].count(None) == 5
    # The UnAligNet student's agreement with its own teacher is still tested.
    assert verdicts[next(c for c in verdicts if "similarity structure" in c)] is True


def test_above_the_ceiling_note_gives_the_standard_error():
    (note,) = alignet_findings.ceiling_notes(_metrics(), "cosine", COUNTS)
    # c = 0.943, n = 1000: sqrt(0.943 * 0.057 / 1000) = 0.00733; 0.955 is 1.64 of them above.
    assert math.isclose(math.sqrt(0.943 * 0.057 / 1000), 0.00733, abs_tol=1e-5)
    assert "coarse (cosine): AligNet student 0.951, teacher + UD 0.955" in note
    assert "standard error 0.007" in note and "1.6 standard errors: sampling noise" in note
    assert "one draw from those probabilities" in note
    metrics = _metrics()
    metrics["alignet"]["odd_one_out/levels/coarse"] = 0.99  # 6.4 standard errors above
    (note,) = alignet_findings.ceiling_notes(metrics, "cosine", COUNTS)
    assert "6.4 standard errors, is more than sampling noise" in note
    metrics["alignet"]["odd_one_out/levels/coarse"] = 0.9
    metrics["teacher_ud"]["odd_one_out/levels/coarse"] = 0.9
    metrics["alignet"]["dot/odd_one_out/levels/coarse"] = 0.9
    metrics["teacher_ud"]["dot/odd_one_out/levels/coarse"] = 0.9
    assert alignet_findings.ceiling_notes(metrics, "cosine", COUNTS) == []


def test_drops_against_the_base_name_the_teacher_when_it_is_below_too():
    notes = alignet_findings.drop_notes(_metrics(), "cosine")
    aligned, unaligned = notes
    assert "with cosine similarity at fine (0.561 vs 0.605)" in aligned
    assert "with dot similarity at boundary (0.697 vs 0.803), fine (0.442 vs 0.571)" in aligned
    assert "is itself below the base student at each of these" in aligned
    assert "boundary (0.766), fine (0.361)" in aligned
    assert "UnAligNet student" in unaligned
    metrics = _metrics()
    metrics["teacher_ud"]["dot/odd_one_out/levels/boundary"] = 0.9  # above the base's 0.803
    aligned = alignet_findings.drop_notes(metrics, "cosine")[0]
    assert "at some of these" in aligned and "the distillation itself lost" in aligned
    metrics = _metrics()
    metrics["alignet"] = copy.deepcopy(metrics["base"])
    notes = alignet_findings.drop_notes(metrics, "cosine")
    assert len(notes) == 1 and "The UnAligNet student" in notes[0]


def test_the_released_distillation_has_no_setting_note():
    note = alignet_findings.setting_notes(AligNetConfig(), triplet_spread=20.0)[0]
    assert "KL at tau = 5; the released code uses JS at tau = 100" in note
    assert "differ by 20" in note and "that is 4," in note and "leave 0.2 " in note
    released = dataclasses.replace(
        AligNetConfig(), distillation=DistillationConfig(divergence="js", student_temperature=100)
    )
    notes = alignet_findings.setting_notes(released)
    assert not any("released" in note for note in notes)


def test_triplet_spread_and_counts():
    # Rows (1, 0), (0, 1), (1, 1): every triplet's dot products are {0, 1, 1}: spread 1.
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert alignet_findings.triplet_spread(features, n_triplets=10) == 1.0
    assert alignet_findings.triplet_spread(features[:2]) is None
    levels = TripletSet(
        np.array([[0, 1, 2], [1, 2, 3], [0, 2, 3]]),
        levels=np.array([0, 0, 2]),
        level_names=LEVELS_AND_OTHER,
    )
    humans = TripletSet(np.array([[0, 1, 2], [1, 2, 3]]))
    counts = alignet_findings.triplet_counts(
        {"humans": {"test": humans}, "evaluation": {"levels": levels}}
    )
    assert counts == {
        "odd_one_out/humans": 2,
        "odd_one_out/levels": 3,
        "odd_one_out/levels/coarse": 2,
        "odd_one_out/levels/boundary": 0,
        "odd_one_out/levels/fine": 1,
        "odd_one_out/levels/other": 0,
    }


def _source(n):
    """``n`` blank evaluation images, half in each superordinate category of a tree."""
    tree = Tree.balanced((2, 2))
    superordinate = np.array([tree.index("0"), tree.index("1")]).repeat(n // 2)
    return ImageSource(
        f"{n} blank images",
        {"evaluation": ArrayImages({"image": np.zeros((n, 4, 4, 3), np.uint8)})},
        {"evaluation": {"superordinate": superordinate}},
        tree=tree,
    )


@pytest.fixture
def written(tmp_path):
    """Writes a report from given metrics over 40 random evaluation images."""
    rng = np.random.default_rng(0)
    spaces = {m: {"evaluation": rng.normal(size=(40, 8))} for m in alignet_report.MODEL_NAMES}
    (tmp_path / "teacher" / "tensorboard").mkdir(parents=True)
    curves = tmp_path / "alignet" / "student"
    (curves / "tensorboard").mkdir(parents=True)
    (curves / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"step": step, "loss": 1 / step, "teacher_agreement": 0.5 + step / 100})
            + "\n"
            for step in (10, 20, 30)
        )
    )

    def write(metrics):
        alignet_report.write_report(AligNetConfig(), tmp_path, metrics, spaces, _source(40))
        return (tmp_path / "report.md").read_text()

    return tmp_path, write


def test_the_report_opens_with_findings_and_says_how_to_open_tensorboard(written):
    workdir, write = written
    report = write(_metrics())
    title, findings, rest = report.split("\n## ", 2)
    assert title.startswith("# AligNet") and findings.startswith("Findings")
    assert rest.startswith("What was run")
    assert "**not held**: the AligNet student gains at every abstraction level" in findings
    assert "**Not the released distillation.**" in findings and "Terms: " in findings
    assert f"tensorboard --logdir {workdir}" in report
    assert "`alignet/student`, `teacher`" in report
    for name in ("accuracy_per_level.png", "embeddings_pca.png", "distillation_curves.png"):
        assert (workdir / name).stat().st_size > 10_000
    metrics = _metrics()
    metrics["alignet"]["few_shot/logistic/5"] = 0.860
    report = write(metrics)
    assert "**not held**: alignment improves few-shot" in report
    assert "keeps or improves" not in report


def test_the_figures_carry_their_legends_and_labels(written):
    workdir, _ = written
    metrics = _metrics()
    models = [m for m in alignet_report.MODEL_NAMES if m in metrics]
    columns = alignet_report.alignment_columns(metrics)
    fig = alignet_report._accuracy_figure(metrics, models, columns, "cosine")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:2] == ["noise ceiling (best possible, expected)", "chance (1/3)"]
    assert "cosine" in fig.axes[0].get_ylabel() and fig.axes[0].get_xlabel()
    rng = np.random.default_rng(0)
    spaces = {m: {"evaluation": rng.normal(size=(10, 3))} for m in models}
    fig = alignet_report._pca_figure(spaces, models, _source(10))
    legend = fig.axes[-1].get_legend()
    assert legend.get_title().get_text() == "superordinate category"
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1"]
    assert all("% of variance" in ax.get_xlabel() for ax in fig.axes)
    assert all(ax.xaxis.get_ticklabels() for ax in fig.axes)
    fig = alignet_report._curves_figure(workdir, ["alignet"])
    assert fig.get_suptitle().startswith("Student distillation")
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() == "training step"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["AligNet student"]


def test_the_glossary_explains_only_the_levels_the_run_has():
    base = {"odd_one_out/levels/coarse": 0.9, "odd_one_out/humans": 0.5}
    terms = alignet_findings.glossary(AligNetConfig(), base)
    assert "coarse" in terms and "boundary" not in terms and "fine" not in terms
    assert terms["mu/8"] == "ViT-mu with 8x8-pixel patches (width 32, 1 block, 2 heads)"
    terms = alignet_findings.glossary(AligNetConfig(), {})
    assert "Levels" not in terms and "held-out humans (THINGS-like)" not in terms
