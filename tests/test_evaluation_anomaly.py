"""Anomaly detection: top-k cosine scores by brute force, AUC against scikit-learn and by hand."""

import numpy as np
import pytest
import sklearn.metrics

from alignjax.evaluation import anomaly


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 1.5
    train_y = np.repeat(np.arange(3), 12)
    test_y = np.repeat(np.arange(3), 9)
    train_x = centres[train_y] + rng.normal(size=(36, 5))
    test_x = centres[test_y] + rng.normal(size=(27, 5))
    return train_x, train_y, test_x, test_y


def test_scores_are_minus_mean_top_k_cosine_by_brute_force(split):
    train_x, _, test_x, _ = split
    scores = anomaly.anomaly_scores(train_x[:12], test_x, k=5)
    for score, x in zip(scores, test_x, strict=True):
        cosines = [x @ n / (np.linalg.norm(x) * np.linalg.norm(n)) for n in train_x[:12]]
        assert score == pytest.approx(-np.mean(sorted(cosines)[-5:]))


def test_auc_matches_roc_auc_score_on_the_scores(split):
    train_x, train_y, test_x, test_y = split
    auc = anomaly.anomaly_detection_auc(train_x, train_y, test_x, test_y, normal_class=1)
    scores = anomaly.anomaly_scores(train_x[train_y == 1], test_x, k=5)
    assert auc == pytest.approx(sklearn.metrics.roc_auc_score(test_y != 1, scores))
    assert auc > 0.5


def test_auc_hand_computed_from_pair_counts():
    # Normal training set: one direction. Test cosines to it: normal points 1.0 and 0.6,
    # anomalies 0.8 and 0.0, so scores -1.0, -0.6 | -0.8, -0.0. Of the 4 (anomaly, normal)
    # pairs, the anomaly scores higher in 3: AUC = 0.75.
    normal = np.array([[1.0, 0.0]])
    test_x = np.array([[2.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
    auc = anomaly.anomaly_detection_auc(normal, [0], test_x, [0, 0, 1, 1], normal_class=0, k=1)
    assert auc == pytest.approx(0.75)


def test_one_vs_rest_averages_each_class_as_normal(split):
    train_x, train_y, test_x, test_y = split
    result = anomaly.one_vs_rest_anomaly_auc(train_x, train_y, test_x, test_y, k=3)
    expected = {
        c: anomaly.anomaly_detection_auc(train_x, train_y, test_x, test_y, normal_class=c, k=3)
        for c in range(3)
    }
    assert result.per_class_auc == pytest.approx(expected)
    assert result.mean_auc == pytest.approx(np.mean(list(expected.values())))
    assert result.to_dict()["auc/2"] == expected[2]


def test_bad_inputs(split):
    train_x, train_y, test_x, test_y = split
    with pytest.raises(ValueError, match="k must be <= n_normal = 12; got 13"):
        anomaly.anomaly_scores(train_x[:12], test_x, k=13)
    with pytest.raises(ValueError, match="normal_class 7 has no examples"):
        anomaly.anomaly_detection_auc(train_x, train_y, test_x, test_y, normal_class=7)
    with pytest.raises(ValueError, match="must contain both normal_class 0 and other classes"):
        anomaly.anomaly_detection_auc(train_x, train_y, test_x[:9], test_y[:9], normal_class=0)
    with pytest.raises(ValueError, match=r"test_labels must have length 27; got shape \(3,\)"):
        anomaly.one_vs_rest_anomaly_auc(train_x, train_y, test_x, test_y[:3])
    with pytest.raises(ValueError, match="test_features must have 5 features"):
        anomaly.anomaly_scores(train_x, test_x[:, :2])
