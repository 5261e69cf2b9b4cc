"""Few-shot transfer: linear probes and k-NN trained on n labelled examples per class.

For each repetition a seed draws ``n_shot`` training examples per class (without
replacement), a scikit-learn classifier is fitted on them and scored on the whole
test set. The mean and standard deviation over repetitions are reported.

References:
  Muttenthaler et al. (2023), gLocal (few-shot logistic regression on frozen
  features). Muttenthaler et al. (2024), AligNet (few-shot downstream evaluation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import sklearn.linear_model
import sklearn.neighbors

from alignjax.evaluation import _validation


@dataclasses.dataclass(frozen=True)
class FewShotResult:
    """Few-shot accuracy over repetitions.

    Attributes:
      mean: mean test accuracy.
      std: sample standard deviation (``ddof=1``) over repetitions; 0 for one repetition.
      accuracies: test accuracy per seed, in the order of ``seeds``.
      n_shot: training examples per class.
      classifier: ``"logistic"`` or ``"knn"``.
    """

    mean: float
    std: float
    accuracies: tuple[float, ...]
    n_shot: int
    classifier: str


def sample_few_shot(labels, n_shot: int, seed: int) -> np.ndarray:
    """Indices of ``n_shot`` examples of every class, drawn without replacement.

    Args:
      labels: ``[n]`` class labels.
      n_shot: examples per class.
      seed: seed of ``numpy.random.default_rng``.

    Returns:
      ``[n_classes * n_shot]`` indices grouped by class in sorted label order.

    >>> sample_few_shot([0, 0, 1, 1, 1], n_shot=2, seed=0).shape
    (4,)
    """
    labels = _validation.as_labels("labels", labels)
    n_shot = _validation.check_positive_int("n_shot", n_shot)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if members.size < n_shot:
            raise ValueError(
                f"class {label.item()!r} has {members.size} training examples; n_shot={n_shot}"
                " needs at least that many."
            )
        chosen.append(rng.choice(members, size=n_shot, replace=False))
    return np.concatenate(chosen)


def _make_classifier(classifier: str, n_train: int, kwargs: Mapping | None):
    options = dict(kwargs or {})
    if classifier == "logistic":
        options.setdefault("max_iter", 1000)
        return sklearn.linear_model.LogisticRegression(**options)
    options.setdefault("n_neighbors", 1)
    options.setdefault("metric", "cosine")
    options["n_neighbors"] = min(options["n_neighbors"], n_train)
    return sklearn.neighbors.KNeighborsClassifier(**options)


def few_shot_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    n_shot: int,
    classifier: str = "logistic",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    classifier_kwargs: Mapping | None = None,
) -> FewShotResult:
    """Few-shot test accuracy of a linear probe or k-NN on frozen features.

    .. math::

       \\text{acc}_s = \\frac{1}{n_{test}} \\sum_j \\mathbb{1}[\\hat y_s(x_j) = y_j],
       \\quad \\hat y_s \\text{ fitted on } n_{shot} \\text{ examples per class drawn with seed } s

    Every class present in ``train_labels`` is sampled; test labels must be among them.
    Features are used as given (standardise them beforehand if the probe should be).

    Args:
      train_features: ``[n_train, d]`` features to sample the shots from.
      train_labels: ``[n_train]`` labels.
      test_features: ``[n_test, d]`` features.
      test_labels: ``[n_test]`` labels.
      n_shot: training examples per class.
      classifier: ``"logistic"`` (``sklearn.linear_model.LogisticRegression``,
        default ``max_iter=1000``, L2 with ``C=1``) or ``"knn"``
        (``sklearn.neighbors.KNeighborsClassifier``, default 1 neighbour, cosine
        metric; ``n_neighbors`` is capped at the number of training shots).
      seeds: one repetition per seed.
      classifier_kwargs: keyword arguments overriding the classifier's defaults.

    Returns:
      A :class:`FewShotResult`.

    >>> x = np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1]])
    >>> y = np.array([0, 0, 1, 1])
    >>> few_shot_accuracy(x, y, x, y, n_shot=1, classifier="knn", seeds=(0, 1)).mean
    1.0
    """
    train_x = _validation.as_features("train_features", train_features)
    train_y = _validation.as_labels("train_labels", train_labels, train_x.shape[0])
    test_x = _validation.as_features("test_features", test_features)
    test_y = _validation.as_labels("test_labels", test_labels, test_x.shape[0])
    if test_x.shape[1] != train_x.shape[1]:
        raise ValueError(
            f"test_features must have {train_x.shape[1]} features like train_features; got"
            f" shape {test_x.shape}."
        )
    classes = np.unique(train_y)
    if classes.size < 2:
        raise ValueError(f"train_labels must contain at least 2 classes; got {classes.tolist()}.")
    unknown = np.setdiff1d(np.unique(test_y), classes)
    if unknown.size:
        raise ValueError(
            f"test_labels contains classes absent from train_labels: {unknown.tolist()}."
        )
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds must not be empty.")
    n_shot = _validation.check_positive_int("n_shot", n_shot)
    if classifier not in ("logistic", "knn"):
        raise ValueError(f"classifier must be 'logistic' or 'knn'; got {classifier!r}.")

    accuracies = []
    for seed in seeds:
        chosen = sample_few_shot(train_y, n_shot, seed)
        model = _make_classifier(classifier, chosen.size, classifier_kwargs)
        model.fit(train_x[chosen], train_y[chosen])
        accuracies.append(float(np.mean(model.predict(test_x) == test_y)))
    values = np.asarray(accuracies)
    return FewShotResult(
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if values.size > 1 else 0.0,
        accuracies=tuple(accuracies),
        n_shot=n_shot,
        classifier=classifier,
    )
