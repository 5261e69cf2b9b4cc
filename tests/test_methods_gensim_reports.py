"""The Findings of the four generative-similarity reports follow the metrics they are
given: each claim held where the numbers support it and "not held" where they do not."""

import math

import numpy as np
import pytest

from alignjax.data.levels import LEVELS
from alignjax.data.quadrilaterals import SHAPE_NAMES
from alignjax.methods import (
    gensim_gaussian,
    gensim_gaussian_report,
    gensim_geoclidean,
    gensim_geoclidean_report,
    gensim_hierarchy,
    gensim_hierarchy_report,
    gensim_quadrilaterals,
    gensim_quadrilaterals_report,
    gensim_report,
)
from alignjax.methods.report import findings_markdown


def verdicts(claims):
    return [finding.held for finding in claims]


# gensim-gaussian


def gaussian_metrics(gensim, simclr=0.6, supcon=0.8, untrained=0.4):
    values = {"gensim": gensim, "simclr": simclr, "supcon": supcon, "untrained": untrained}
    return {name: {"spearman": rho, "pearson": rho - 0.05} for name, rho in values.items()}


def test_gaussian_claims_hold_when_the_method_tracks_sgen_best():
    claims, notes = gensim_gaussian_report.findings(
        gensim_gaussian.GaussianConfig(), gaussian_metrics(0.95)
    )
    assert verdicts(claims) == [True, True]
    assert "Spearman 0.950, Pearson 0.900" in claims[0].evidence
    assert "supcon 0.800" in claims[1].evidence
    assert not any("SupCon comes close" in note for note in notes)


def test_gaussian_claims_fail_below_the_target_and_behind_a_baseline():
    claims, notes = gensim_gaussian_report.findings(
        gensim_gaussian.GaussianConfig(), gaussian_metrics(0.85, supcon=0.88, untrained=0.7)
    )
    assert verdicts(claims) == [False, False]
    text = findings_markdown(claims, notes)
    assert text.count("**not held**") == 2 and "**held**" not in text
    assert any("SupCon comes close (0.880)" in note for note in notes)
    assert any("untrained encoder already reaches 0.700" in note for note in notes)


def test_gaussian_without_a_generative_objective_is_not_tested():
    config = gensim_gaussian.GaussianConfig(objectives=("simclr", "untrained"))
    claims, _ = gensim_gaussian_report.findings(config, gaussian_metrics(0.95))
    assert verdicts(claims) == [None]


def test_gaussian_report_opens_with_findings_and_draws_labelled_panels(tmp_path):
    config = gensim_gaussian.GaussianConfig(objectives=("gensim", "untrained"))
    metrics = {
        "gensim": {"spearman": 0.5, "pearson": 0.4},
        "untrained": {"spearman": 0.6, "pearson": 0.5},
    }
    rng = np.random.default_rng(0)
    log_s = rng.normal(size=50)
    gensim_gaussian_report.write_report(
        config, tmp_path, metrics, {"gensim": log_s, "untrained": -log_s}, log_s
    )
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# gensim-gaussian")
    assert report.split("\n## ")[1].startswith("Findings")
    assert report.index("## Findings") < report.index("| objective |")
    assert "**not held**: the similarity of the gensim embedding tracks" in report
    assert f"tensorboard --logdir {tmp_path}" in report
    fig = gensim_gaussian_report.similarity_figure(
        config, metrics, {"gensim": log_s, "untrained": -log_s}, log_s
    )
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["learned similarity (dot product)", "learned similarity (cosine)"]
    assert fig.get_suptitle()


# gensim-quadrilaterals


def quadrilateral_metrics(**errors):
    """Metrics of objectives from their per-shape error rates (in SHAPE_NAMES order)."""
    metrics = {}
    for name, rates in errors.items():
        per_shape = dict(zip(SHAPE_NAMES, rates))
        metrics[name] = {
            "error_rate": float(np.mean(rates)),
            "per_shape_error": per_shape,
            **gensim_quadrilaterals.regularity_summary(per_shape),
        }
    return metrics


RISING = np.linspace(0.1, 0.8, len(SHAPE_NAMES))
FLAT = np.full(len(SHAPE_NAMES), 0.3)


def test_quadrilaterals_regularity_effect_held_against_flat_baselines():
    config = gensim_quadrilaterals.QuadrilateralsConfig()
    metrics = quadrilateral_metrics(
        gensim_nce=RISING, simclr=FLAT + 0.4, supcon=FLAT - 0.2, untrained=FLAT + 0.5
    )
    claims, notes = gensim_quadrilaterals_report.findings(config, metrics)
    assert verdicts(claims) == [True, True, None]
    assert "gap 0.560 ± 0.024" in claims[0].evidence  # sqrt(sum e(1 - e) / 200) / 3
    # SupCon's lower error with no effect, and the near-chance untrained encoder, get a note.
    assert any(note.startswith("supcon has the lowest error overall (0.100") for note in notes)
    assert any("Near chance" in note and "untrained 0.800" in note for note in notes)


def test_quadrilaterals_regularity_effect_not_held_when_flat_or_beaten():
    config = gensim_quadrilaterals.QuadrilateralsConfig()
    flat = quadrilateral_metrics(gensim_nce=FLAT, simclr=RISING, supcon=FLAT, untrained=FLAT)
    assert verdicts(gensim_quadrilaterals_report.findings(config, flat)[0]) == [
        False,
        False,
        None,
    ]
    # A rise within noise: gap 0.02 against a standard error of about 0.046 (200 trials).
    small = FLAT + np.linspace(0, 0.02, len(SHAPE_NAMES))
    noisy = quadrilateral_metrics(gensim_nce=small, simclr=FLAT, supcon=FLAT, untrained=FLAT)
    assert verdicts(gensim_quadrilaterals_report.findings(config, noisy)[0])[0] is False


def test_quadrilaterals_human_correlation_is_checked_when_rates_are_given():
    config = gensim_quadrilaterals.QuadrilateralsConfig(
        objectives=("gensim_nce", "supcon"), human_error_rates=tuple(RISING)
    )
    metrics = quadrilateral_metrics(gensim_nce=RISING, supcon=FLAT)
    metrics["gensim_nce"]["human_correlation"] = {"spearman_rho": 0.2}
    metrics["supcon"]["human_correlation"] = {"spearman_rho": 0.4}
    claims, _ = gensim_quadrilaterals_report.findings(config, metrics)
    assert verdicts(claims) == [True, True, False]
    assert "gensim_nce 0.200 against supcon 0.400" in claims[2].evidence


def test_gap_standard_error_by_hand():
    errors = dict(zip(SHAPE_NAMES, RISING))
    e = np.concatenate([RISING[:3], RISING[-3:]])
    expected = math.sqrt(np.sum(e * (1 - e) / 50)) / 3
    assert gensim_quadrilaterals_report.gap_standard_error(errors, 50) == pytest.approx(expected)


# gensim-geoclidean


def geoclidean_metrics(**accuracies):
    """``name=(unseen close, unseen far)``, standard errors 0.02, trained close 0.55."""
    return {
        name: {
            "unseen/close": close,
            "unseen/close_se": 0.02,
            "unseen/far": far,
            "unseen/far_se": 0.02,
            "trained/close": 0.55,
        }
        for name, (close, far) in accuracies.items()
    }


def test_geoclidean_claim_per_foil_follows_the_accuracies():
    config = gensim_geoclidean.GeoclideanConfig()
    metrics = geoclidean_metrics(
        gensim_nce=(0.70, 0.95), simclr=(0.71, 0.90), supcon=(0.60, 0.80), untrained=(0.6, 0.7)
    )
    claims, notes = gensim_geoclidean_report.findings(config, metrics, gensim_geoclidean.FOILS)
    assert verdicts(claims) == [False, True]
    assert "close foils" in claims[0].claim and "far foils" in claims[1].claim
    assert "gensim_nce 0.700 ± 0.020 against simclr 0.710 ± 0.020" in claims[0].evidence
    assert any("close foils gensim_nce and simclr differ by -0.010" in note for note in notes)
    assert any("near chance for every objective" in note for note in notes)
    assert not any("far foils gensim_nce" in note for note in notes)  # 0.05 is > 1 s.e.


def test_geoclidean_claim_held_on_both_foils():
    config = gensim_geoclidean.GeoclideanConfig(objectives=("gensim_nce", "simclr"))
    metrics = geoclidean_metrics(gensim_nce=(0.8, 0.95), simclr=(0.7, 0.9))
    claims, _ = gensim_geoclidean_report.findings(config, metrics, gensim_geoclidean.FOILS)
    assert verdicts(claims) == [True, True]


# gensim-hierarchy


def hierarchy_metrics(**rows):
    """``name=(coarse, boundary, fine, rsa)``, plus the exact ``s_gen`` row."""
    metrics = {
        name: {
            **{f"odd_one_out/levels/{level}": v for level, v in zip(LEVELS, values)},
            "odd_one_out/levels": float(np.mean(values[:3])),
            "rsa": values[3],
        }
        for name, values in rows.items()
    }
    metrics["exact s_gen"] = {"odd_one_out/levels": 1.0}
    return metrics


def test_hierarchy_claims_follow_coarse_accuracy_rsa_and_every_level():
    config = gensim_hierarchy.HierarchyConfig()
    metrics = hierarchy_metrics(
        gensim=(0.98, 0.74, 0.44, 0.73),
        gensim_contrastive=(0.99, 0.95, 0.51, 0.75),
        simclr=(0.64, 0.93, 0.68, 0.39),
        supcon=(0.69, 0.99, 0.65, 0.48),
        untrained=(0.66, 0.77, 0.40, 0.44),
    )
    claims, notes = gensim_hierarchy_report.findings(config, metrics, "exact s_gen")
    assert verdicts(claims) == [True, True, False, None]
    assert "boundary: gensim 0.740, best baseline 0.990 (supcon)" in claims[2].evidence
    assert "gensim_contrastive 0.990" in claims[0].evidence
    assert any(
        note.startswith("gensim is behind a baseline at the boundary and fine level")
        for note in notes
    )


def test_hierarchy_claims_not_held_when_a_baseline_leads_at_the_coarse_level_and_in_rsa():
    config = gensim_hierarchy.HierarchyConfig(objectives=("gensim", "supcon"))
    metrics = hierarchy_metrics(gensim=(0.7, 0.9, 0.6, 0.3), supcon=(0.8, 0.8, 0.5, 0.4))
    claims, _ = gensim_hierarchy_report.findings(config, metrics, "exact s_gen")
    assert verdicts(claims) == [False, False, False, None]
    text = findings_markdown(claims, glossary=gensim_hierarchy_report.TERMS)
    assert "**boundary**: two items of one basic category" in text


# shared


def test_glossary_lists_only_the_objectives_run_with_the_experiments_own_words():
    terms = gensim_report.glossary(
        ("gensim_nce", "supcon"), {"gap": "irregular minus regular"}, supcon="shape labels"
    )
    assert list(terms) == ["gap", "gensim_nce", "supcon"]
    assert terms["supcon"] == "shape labels"
    assert terms["gensim_nce"] == gensim_report.OBJECTIVE_TERMS["gensim_nce"]


def test_training_curves_name_each_trained_objectives_event_directory(tmp_path):
    text = gensim_report.training_curves(tmp_path, ("gensim", "simclr", "untrained"))
    assert f"tensorboard --logdir {tmp_path}" in text
    assert f"`{tmp_path / 'gensim' / 'tensorboard'}`" in text
    assert "untrained" not in text
