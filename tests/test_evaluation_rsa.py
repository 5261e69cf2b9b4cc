"""RDMs, RSA and linear CKA against scipy/scikit-learn and closed forms."""

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics.pairwise

from alignjax.evaluation import rsa

make_rdm = rsa.representational_dissimilarity_matrix


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(1).normal(size=(9, 6))


def test_rdm_correlation_is_one_minus_pearson(features):
    expected = 1.0 - np.corrcoef(features)
    np.fill_diagonal(expected, 0.0)
    rdm = rsa.representational_dissimilarity_matrix(features)
    np.testing.assert_allclose(rdm, expected, atol=1e-12)


def test_rdm_cosine_matches_sklearn(features):
    expected = sklearn.metrics.pairwise.cosine_distances(features)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(
        rsa.representational_dissimilarity_matrix(features, metric="cosine"), expected, atol=1e-12
    )


def test_rsa_spearman_matches_scipy_on_hand_made_rdms():
    a = np.array([[0, 1, 4, 2], [1, 0, 3, 5], [4, 3, 0, 6], [2, 5, 6, 0]], dtype=float)
    b = np.array([[0, 2, 1, 2], [2, 0, 3, 9], [1, 3, 0, 7], [2, 9, 7, 0]], dtype=float)
    upper_a, upper_b = [1, 4, 2, 3, 5, 6], [2, 1, 2, 3, 9, 7]
    expected = scipy.stats.spearmanr(upper_a, upper_b).statistic
    assert rsa.rsa_spearman(a, b) == pytest.approx(expected)
    # Only the strict upper triangle is read.
    b_lower_changed = b.copy()
    b_lower_changed[3, 0] = 100.0
    assert rsa.rsa_spearman(a, b_lower_changed) == rsa.rsa_spearman(a, b)


def test_rsa_is_invariant_to_monotone_transforms_of_the_rdm(features):
    rdm = rsa.representational_dissimilarity_matrix(features)
    assert rsa.rsa_spearman(rdm, np.exp(3.0 * rdm)) == pytest.approx(1.0)
    assert rsa.rsa_spearman(rdm, -rdm) == pytest.approx(-1.0)


def test_rsa_of_features_composes_rdm_and_spearman(features):
    other = features @ np.random.default_rng(2).normal(size=(6, 4))
    expected = rsa.rsa_spearman(
        rsa.representational_dissimilarity_matrix(features, metric="cosine"),
        rsa.representational_dissimilarity_matrix(other, metric="cosine"),
    )
    assert rsa.rsa_from_features(features, other, metric="cosine") == expected
    assert -1.0 <= expected < 1.0


def _cka_from_gram_matrices(x, y):
    """Reference: HSIC with linear kernels and the centring matrix H (Kornblith et al., eq. 3)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    kx, ky = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.trace(kx @ ky) / np.sqrt(np.trace(kx @ kx) * np.trace(ky @ ky))


def test_cka_invariant_to_rotation_and_isotropic_scaling(features):
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(6, 6)))
    assert rsa.linear_cka(features, 3.7 * features @ rotation) == pytest.approx(1.0, abs=1e-12)
    # Adding a constant per feature (a translation) changes nothing either: columns are centred.
    assert rsa.linear_cka(features, features + 5.0) == pytest.approx(1.0, abs=1e-12)


def test_cka_matches_gram_matrix_formula_and_is_symmetric(features):
    other = np.random.default_rng(4).normal(size=(9, 3))
    value = rsa.linear_cka(features, other)
    assert value == pytest.approx(_cka_from_gram_matrices(features, other), rel=1e-10)
    assert value == pytest.approx(rsa.linear_cka(other, features), rel=1e-12)
    assert 0.0 < value < 1.0
    # Anisotropic scaling is not an invariance of CKA.
    assert rsa.linear_cka(features, features * np.arange(1, 7)) < 1.0 - 1e-3


def test_cka_of_constant_features_is_nan():
    assert np.isnan(rsa.linear_cka(np.ones((4, 2)), np.eye(4)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: rsa.rsa_spearman(np.zeros((3, 2)), np.zeros((3, 3))),
            r"rdm_a must have shape .*got shape \(3, 2\)",
        ),
        (lambda: rsa.rsa_spearman(np.zeros((3, 3)), np.zeros((4, 4))), "same shape"),
        (lambda: rsa.rsa_spearman(np.zeros((2, 2)), np.zeros((2, 2))), "n_items >= 3"),
        (lambda: make_rdm(np.ones(3)), r"features must have shape \[n_items, d\]"),
        (lambda: make_rdm(np.ones((3, 2)), metric="l2"), "metric must be"),
        (lambda: rsa.rsa_from_features(np.ones((3, 2)), np.ones((4, 2))), "same items"),
        (lambda: rsa.linear_cka(np.ones((3, 2)), np.ones((4, 2))), "same items"),
        (lambda: rsa.linear_cka([[np.nan, 1.0], [1.0, 2.0]], np.ones((2, 2))), "NaN"),
    ],
)
def test_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
