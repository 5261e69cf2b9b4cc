"""Correlation with per-item human numbers: scipy references, NaN policy, bad inputs."""

import numpy as np
import pytest
import scipy.stats

from alignjax.evaluation import correlation


def test_matches_scipy_pearson_and_spearman():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = 0.5 * x + rng.normal(size=30)
    result = correlation.correlate(x, y)
    pearson, spearman = scipy.stats.pearsonr(x, y), scipy.stats.spearmanr(x, y)
    assert result.pearson_r == pytest.approx(pearson.statistic)
    assert result.pearson_p == pytest.approx(pearson.pvalue)
    assert result.spearman_rho == pytest.approx(spearman.statistic)
    assert result.spearman_p == pytest.approx(spearman.pvalue)
    assert result.n == 30
    assert set(result.to_dict()) == {"pearson_r", "pearson_p", "spearman_rho", "spearman_p", "n"}


def test_nan_pairs_are_omitted_from_both_vectors():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 3.0])
    y = np.array([2.0, 1.0, 3.0, np.nan, 6.0, 4.0])
    result = correlation.correlate(x, y)
    kept_x, kept_y = [1.0, 2.0, 5.0, 3.0], [2.0, 1.0, 6.0, 4.0]
    assert result.n == 4
    assert result.pearson_r == pytest.approx(scipy.stats.pearsonr(kept_x, kept_y).statistic)
    # Ranks 1 2 4 3 against 2 1 4 3: d^2 = 1 + 1 = 2, rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    assert result.spearman_rho == pytest.approx(0.8)


def test_constant_vector_gives_nan():
    result = correlation.correlate([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert np.isnan(result.pearson_r) and np.isnan(result.spearman_p)
    assert result.n == 3


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([1, 2, 3], [1, 2]), {}, r"same length; got shapes \(3,\) and \(2,\)"),
        (([[1, 2, 3]], [1, 2, 3]), {}, r"model_values must have shape \[n\]"),
        (([1, 2, np.nan, 4], [1, 2, 3, 4]), {"nan_policy": "raise"}, r"NaN at positions \[2\]"),
        (([1, 2, np.nan], [1, 2, 3]), {}, "at least 3 complete"),
        (([1, 2, np.inf], [1, 2, 3]), {}, "model_values contains infinite"),
        (([1, 2, 3], [1, 2, 3]), {"nan_policy": "drop"}, "nan_policy must be"),
    ],
)
def test_bad_inputs(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        correlation.correlate(*args, **kwargs)
