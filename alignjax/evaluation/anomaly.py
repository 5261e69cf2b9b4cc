"""Anomaly detection with frozen features: one class is normal, the rest are anomalies.

A test point's anomaly score is minus the mean of its ``k`` largest cosine
similarities to the normal class's training features (a k-nearest-neighbour
detector; higher score = more anomalous). Detection quality is the ROC-AUC of the
scores against "is not the normal class" on the test set; the one-vs-rest protocol
makes each class normal in turn and averages the AUCs.

References:
  Muttenthaler et al. (2023), gLocal (anomaly detection, k = 5).
  Bergman, Cohen & Hoshen (2020), Deep nearest neighbor anomaly detection.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import sklearn.metrics

from alignjax.evaluation import _validation

# Rows of the [rows, n_normal] similarity block per step; 2**22 float64 values are 32 MiB.
_BLOCK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True)
class AnomalyResult:
    """One-vs-rest anomaly detection.

    Attributes:
      mean_auc: mean ROC-AUC over normal classes.
      per_class_auc: ROC-AUC with each class as the normal one.
    """

    mean_auc: float
    per_class_auc: dict

    def to_dict(self) -> dict[str, float]:
        flat = {"auc": self.mean_auc}
        flat.update({f"auc/{label}": auc for label, auc in self.per_class_auc.items()})
        return flat


def anomaly_scores(normal_features, test_features, *, k: int = 5) -> np.ndarray:
    """Minus the mean of the top-k cosine similarities of each test point to the normal set.

    .. math:: a(x) = -\\frac{1}{k} \\sum_{j \\in \\text{top-}k} \\cos(x, n_j)

    Args:
      normal_features: ``[n_normal, d]`` training features of the normal class.
      test_features: ``[n_test, d]`` features to score.
      k: neighbours averaged, ``1 <= k <= n_normal`` (default 5, as in gLocal).

    Returns:
      ``[n_test]`` scores in ``[-1, 1]``; higher means more anomalous.

    >>> anomaly_scores([[1.0, 0.0], [1.0, 0.0]], [[2.0, 0.0], [0.0, 1.0]], k=2)
    array([-1., -0.])
    """
    normal = _validation.as_features("normal_features", normal_features)
    test = _validation.as_features("test_features", test_features)
    if test.shape[1] != normal.shape[1]:
        raise ValueError(
            f"test_features must have {normal.shape[1]} features like normal_features; got"
            f" shape {test.shape}."
        )
    k = _validation.check_positive_int("k", k)
    if k > normal.shape[0]:
        raise ValueError(f"k must be <= n_normal = {normal.shape[0]}; got {k}.")
    normal = _validation.cosine_normalise(normal)
    test = _validation.cosine_normalise(test)
    rows = max(1, _BLOCK_ELEMENTS // normal.shape[0])
    scores = np.empty(test.shape[0])
    for start in range(0, test.shape[0], rows):
        similarities = test[start : start + rows] @ normal.T
        top = np.partition(similarities, similarities.shape[1] - k, axis=1)[:, -k:]
        scores[start : start + rows] = -top.mean(axis=1)
    return scores


def _check_split(train_features, train_labels, test_features, test_labels):
    train_x = _validation.as_features("train_features", train_features)
    train_y = _validation.as_labels("train_labels", train_labels, train_x.shape[0])
    test_x = _validation.as_features("test_features", test_features)
    test_y = _validation.as_labels("test_labels", test_labels, test_x.shape[0])
    return train_x, train_y, test_x, test_y


def _auc(train_x, train_y, test_x, test_y, normal_class, k: int) -> float:
    normal_class = np.asarray(normal_class).item()
    normal = train_x[train_y == normal_class]
    if normal.shape[0] == 0:
        raise ValueError(f"normal_class {normal_class!r} has no examples in train_labels.")
    is_anomaly = test_y != normal_class
    if is_anomaly.all() or not is_anomaly.any():
        raise ValueError(
            f"test_labels must contain both normal_class {normal_class!r} and other classes."
        )
    scores = anomaly_scores(normal, test_x, k=k)
    return float(sklearn.metrics.roc_auc_score(is_anomaly, scores))


def anomaly_detection_auc(
    train_features, train_labels, test_features, test_labels, *, normal_class, k: int = 5
) -> float:
    """ROC-AUC of :func:`anomaly_scores` with ``normal_class`` as the normal data.

    The normal set is the training features of ``normal_class``; every test point of
    another class is a positive (anomaly).

    Args:
      train_features: ``[n_train, d]`` features.
      train_labels: ``[n_train]`` labels.
      test_features: ``[n_test, d]`` features.
      test_labels: ``[n_test]`` labels; must contain the normal class and another.
      normal_class: the label treated as normal.
      k: neighbours averaged in the score (default 5).

    Returns:
      ROC-AUC in ``[0, 1]`` (``sklearn.metrics.roc_auc_score``; 0.5 is chance).

    >>> x = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]
    >>> anomaly_detection_auc(x, [0, 0, 1, 1], x, [0, 0, 1, 1], normal_class=0, k=1)
    1.0
    """
    train_x, train_y, test_x, test_y = _check_split(
        train_features, train_labels, test_features, test_labels
    )
    return _auc(train_x, train_y, test_x, test_y, normal_class, k)


def one_vs_rest_anomaly_auc(
    train_features, train_labels, test_features, test_labels, *, k: int = 5
) -> AnomalyResult:
    """Anomaly-detection ROC-AUC with each training class as the normal one, and the mean.

    .. math:: \\overline{\\text{AUC}} = \\frac{1}{C} \\sum_c \\text{AUC}(\\text{normal} = c)

    Args:
      train_features: ``[n_train, d]`` features.
      train_labels: ``[n_train]`` labels; every class present is made normal in turn.
      test_features: ``[n_test, d]`` features.
      test_labels: ``[n_test]`` labels; must contain every training class and at least
        one other.
      k: neighbours averaged in the score (default 5).

    Returns:
      An :class:`AnomalyResult`; ``per_class_auc`` keys are the labels as Python scalars.

    >>> x = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]
    >>> one_vs_rest_anomaly_auc(x, [0, 0, 1, 1], x, [0, 0, 1, 1], k=1).mean_auc
    1.0
    """
    train_x, train_y, test_x, test_y = _check_split(
        train_features, train_labels, test_features, test_labels
    )
    per_class = {
        label.item(): _auc(train_x, train_y, test_x, test_y, label.item(), k)
        for label in np.unique(train_y)
    }
    return AnomalyResult(mean_auc=float(np.mean(list(per_class.values()))), per_class_auc=per_class)
