"""Calibration: KL against scipy, ECE on a hand-computed binning, bin edges, bad inputs."""

import numpy as np
import pytest
import scipy.stats

from alignjax.evaluation import calibration

# Confidences 0.5, 0.55, 0.9, 0.8 with predicted pairs 0, 1, 0, 2.
MODEL = np.array([[0.5, 0.3, 0.2], [0.2, 0.55, 0.25], [0.9, 0.05, 0.05], [0.05, 0.15, 0.8]])
REFERENCE = np.array([[0.6, 0.2, 0.2], [0.3, 0.4, 0.3], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
ece = calibration.expected_calibration_error


def test_kl_matches_scipy_entropy():
    expected = scipy.stats.entropy(REFERENCE, MODEL, axis=1).mean()
    assert calibration.choice_kl_divergence(REFERENCE, MODEL) == pytest.approx(expected)
    assert calibration.choice_kl_divergence(MODEL, MODEL) == 0.0


def test_kl_handles_zeros():
    # 0 log 0 = 0 in the reference; a zero model probability under reference mass is inf.
    assert calibration.choice_kl_divergence([[1.0, 0.0, 0.0]], [[0.5, 0.5, 0.0]]) == pytest.approx(
        np.log(2.0)
    )
    assert calibration.choice_kl_divergence([[0.5, 0.5, 0.0]], [[1.0, 0.0, 0.0]]) == np.inf


def test_ece_with_outcomes_hand_computed():
    # 4 bins of width 0.25. Correct (outcomes 0, 0, 0, 2): 1, 0, 1, 1.
    # Bin (.25, .5]: conf .5, acc 1; bin (.5, .75]: conf .55, acc 0; bin (.75, 1]: conf .85, acc 1.
    # ECE = 1/4 * .5 + 1/4 * .55 + 2/4 * .15 = 0.3375.
    bins = calibration.reliability_bins(MODEL, outcomes=[0, 0, 0, 2], n_bins=4)
    assert bins.counts.tolist() == [0, 1, 1, 2]
    np.testing.assert_allclose(bins.confidence[1:], [0.5, 0.55, 0.85])
    np.testing.assert_allclose(bins.accuracy[1:], [1.0, 0.0, 1.0])
    assert np.isnan(bins.confidence[0]) and np.isnan(bins.accuracy[0])
    np.testing.assert_allclose(bins.edges, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert calibration.expected_calibration_error(
        MODEL, outcomes=[0, 0, 0, 2], n_bins=4
    ) == pytest.approx(0.3375)


def test_ece_with_reference_probabilities_hand_computed():
    # Correctness = reference probability of the predicted pair: .6, .4, .7, .8.
    # ECE = 1/4 * |.6 - .5| + 1/4 * |.4 - .55| + 2/4 * |.75 - .85| = 0.1125.
    assert calibration.expected_calibration_error(
        MODEL, reference_probabilities=REFERENCE, n_bins=4
    ) == pytest.approx(0.1125)


def test_model_equal_to_reference_is_perfectly_calibrated():
    p = np.random.default_rng(0).dirichlet(np.ones(3), size=50)
    assert calibration.expected_calibration_error(p, reference_probabilities=p) == pytest.approx(
        0.0, abs=1e-15
    )


def test_confidence_on_a_bin_edge_goes_to_the_lower_bin():
    # Bins are right-closed: 0.6 belongs to (0.4, 0.6] with 5 bins, 0.4 to (0.2, 0.4].
    model = [[0.6, 0.2, 0.2], [0.4, 0.3, 0.3]]
    bins = calibration.reliability_bins(model, outcomes=[0, 0], n_bins=5)
    assert bins.counts.tolist() == [0, 1, 1, 0, 0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ece(MODEL), "exactly one of"),
        (
            lambda: ece(MODEL, reference_probabilities=REFERENCE, outcomes=[0, 0, 0, 0]),
            "exactly one of",
        ),
        (lambda: ece(MODEL, outcomes=[0, 3, 0, 0]), r"\{0, 1, 2\}"),
        (lambda: ece(MODEL, outcomes=[0, 0]), r"outcomes must have length 4"),
        (
            lambda: ece(MODEL, reference_probabilities=REFERENCE[:2]),
            r"reference_probabilities must have shape \(4, 3\)",
        ),
        (lambda: ece(MODEL, outcomes=[0] * 4, n_bins=0), "n_bins"),
        (
            lambda: calibration.choice_kl_divergence(REFERENCE, MODEL[:, :2]),
            r"model_probabilities must have shape \[n_triplets, 3\]",
        ),
        (lambda: calibration.choice_kl_divergence(REFERENCE[:2], MODEL), "same shape"),
        (lambda: calibration.choice_kl_divergence(-REFERENCE, MODEL), "non-negative"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
