"""gLocal's Findings: each claim's verdict follows the run's metrics, the notes explain
the numbers that need it, and the section opens the report (with readable figures)."""

import dataclasses

import pytest

from alignjax.evaluation.suite import EvaluationConfig
from alignjax.methods import glocal_findings, glocal_report
from alignjax.methods.glocal_fit import GlocalConfig

EVALUATION = EvaluationConfig(kernel="cosine")
LEVELS = ("coarse", "boundary", "fine")


def _space(test, levels, neighbours, one_shot, five_shot, auc):
    return {
        "odd_one_out/test": test,
        "odd_one_out/validation": test - 0.01,
        "noise_ceiling/test": 0.652,
        "neighbour_preservation": neighbours,
        **{f"odd_one_out/levels/{lv}": v for lv, v in zip(LEVELS, levels)},
        **{f"noise_ceiling/levels/{lv}": v for lv, v in zip(LEVELS, (0.838, 0.774, 0.676))},
        "few_shot/logistic/1": one_shot,
        "few_shot/logistic/5": five_shot,
        "anomaly_auc": auc,
    }


RELEASED = GlocalConfig()


def _grid(config=RELEASED):
    """One row per grid setting of ``config`` (the first of each kind selected)."""
    rows = [
        {"kind": "naive", "learning_rate": lr, "penalty_weight": w, "alpha": 0.0, "temperature": 1}
        for lr in config.learning_rates
        for w in config.naive_penalty_weights
    ]
    rows += [
        {"kind": "glocal", "learning_rate": lr, "penalty_weight": w, "alpha": a, "temperature": t}
        for lr in config.learning_rates
        for w in config.penalty_weights
        for a in config.alphas
        for t in config.temperatures
    ]
    for i, row in enumerate(rows):
        row.update(
            {
                "odd_one_out/validation": 0.4,
                "odd_one_out/test": 0.4,
                "neighbour_preservation": 0.5 + i / 100,
                "selected": i in (0, len(config.naive_penalty_weights)),
            }
        )
    return rows


def _metrics(grid=None):
    """The quick run's numbers (experiments/README.md)."""
    return {
        "base": _space(0.391, (0.402, 0.610, 0.575), 1.0, 0.719, 0.887, 0.982),
        "naive": _space(0.457, (0.527, 0.533, 0.495), 0.481, 0.427, 0.690, 0.931),
        "glocal": _space(0.414, (0.465, 0.592, 0.530), 0.762, 0.652, 0.852, 0.975),
        "grid": _grid() if grid is None else grid,
    }


def _find(result, words):
    (finding,) = [f for f in result.findings if words in f.claim]
    return finding


def test_the_quick_runs_claims_get_the_readmes_verdicts():
    result = glocal_findings.findings(_metrics(), EVALUATION)
    assert _find(result, "improves alignment").held is True
    assert "test accuracy 0.391 -> 0.414" in _find(result, "improves alignment").evidence
    about = _find(result, "about as much")
    assert about.held is False and "-4.3 points" in about.evidence
    assert _find(result, "local structure (nearest").held is True
    assert _find(result, "naive transform's changes").held is True
    few_shot = _find(result, "improves few-shot")
    assert few_shot.held is False
    assert "5-shot (logistic) 0.887 -> 0.852 (fell)" in few_shot.evidence
    assert _find(result, "better downstream").held is True


def test_verdicts_turn_with_the_numbers():
    metrics = _metrics()
    metrics["glocal"]["odd_one_out/test"] = 0.448  # 0.9 points below the naive transform
    metrics["glocal"].update({"few_shot/logistic/1": 0.72, "few_shot/logistic/5": 0.9})
    metrics["glocal"]["anomaly_auc"] = 0.982  # kept
    result = glocal_findings.findings(metrics, EVALUATION)
    assert _find(result, "about as much").held is True
    assert _find(result, "improves few-shot").held is True
    metrics["glocal"].update(metrics["base"])  # nothing rose: not an improvement
    assert _find(glocal_findings.findings(metrics, EVALUATION), "improves few-shot").held is False
    metrics["naive"]["anomaly_auc"] = 0.99  # one downstream metric above the base
    assert _find(glocal_findings.findings(metrics, EVALUATION), "changes").held is False


def test_without_held_out_categories_the_downstream_claims_are_not_tested():
    metrics = _metrics()
    keys = glocal_findings.downstream_keys(metrics["base"])
    for space in glocal_findings.SPACES:
        for key in keys:
            del metrics[space][key]
    result = glocal_findings.findings(metrics, EVALUATION)
    assert [f.held for f in result.findings].count(None) == 3
    assert "n-shot" not in result.glossary


def test_notes_above_the_ceiling_below_the_base_and_off_the_released_grid():
    metrics = _metrics()
    assert glocal_findings.ceiling_notes(metrics, "odd_one_out/test") == []
    metrics["glocal"]["odd_one_out/levels/fine"] = 0.69
    (note,) = glocal_findings.ceiling_notes(metrics, "odd_one_out/test")
    assert "fine: gLocal 0.690 against a ceiling of 0.676" in note
    assert "one draw from those probabilities" in note
    (note,) = glocal_findings.drop_notes(_metrics())
    assert "boundary (0.592 vs 0.610; naive 0.533), fine (0.530 vs 0.575; naive 0.495)" in note
    assert "the naive transform, without it, loses more" in note
    assert glocal_findings.grid_notes(_grid()) == []
    quick = dataclasses.replace(GlocalConfig(), penalty_weights=(0.1, 0.01), alphas=(0.25,))
    (note,) = glocal_findings.grid_notes(_grid(quick))
    assert "lambda {0.1, 0.01}, alpha {0.25}" in note
    assert "lambda {10, 1, 0.1}, alpha {0.5, 0.25, 0.1}" in note


@pytest.mark.parametrize("few_shot", [0.9, 0.86])
def test_the_report_opens_with_findings_and_names_a_few_shot_drop(tmp_path, few_shot):
    metrics = _metrics()
    metrics["glocal"]["few_shot/logistic/5"] = few_shot
    path = glocal_report.write_report(
        metrics, tmp_path, description="A world.", evaluation=EVALUATION
    )
    report = path.read_text()
    title, findings, rest = report.split("\n## ", 2)
    assert title.startswith("# gLocal") and findings.startswith("Findings")
    assert rest.startswith("What was run") and "Terms: " in findings
    assert "keeps or improves" not in report
    line = next(line for line in findings.splitlines() if "improves few-shot" in line)
    assert line.startswith("- **not held**")  # 1-shot fell either way
    assert ("0.887 -> 0.860 (fell)" in line) == (few_shot == 0.86)
    assert f"tensorboard --logdir {tmp_path}" in report
    assert "| space | test accuracy | noise ceiling (test) |" in report
    for name in ("accuracy_per_level.png", "alignment_vs_local_structure.png", "downstream.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_the_figures_carry_their_legends_and_labels():
    metrics = _metrics()
    fig = glocal_report._levels_figure(metrics, LEVELS)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["noise ceiling (best possible, expected)", "chance (1/3)"]
    assert ax.get_title() and ax.get_xlabel() and "fraction correct" in ax.get_ylabel()
    (ax,) = glocal_report._downstream_figure(metrics, ["few_shot/logistic/5", "anomaly_auc"]).axes
    assert "ROC-AUC" in ax.get_ylabel() and ax.get_legend() is not None
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5-shot (logistic)", "anomaly AUC"]
    (ax,) = glocal_report._trade_off_figure(metrics, "odd_one_out/test", 10).axes
    assert "10" in ax.get_xlabel() and "noise ceiling" in [
        t.get_text() for t in ax.get_legend().get_texts()
    ]
