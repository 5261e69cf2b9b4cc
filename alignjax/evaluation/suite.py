r"""One human-alignment evaluation of a representation, and one vocabulary for its metrics.

Every chain (gLocal, AligNet, the generative-similarity experiments, ``alignjax eval``)
evaluates a representation of a fixed set of items, the rows of ``features [n, d]``,
against a :class:`Benchmark` with :func:`evaluate`:

- **odd-one-out accuracy** on each named set of human (or simulated) triplets over the
  items, against its **noise ceiling** when the triplets carry choice probabilities,
  and per abstraction level when they carry levels (the Levels triplets of any
  category tree: :func:`alignjax.data.levels.level_triplet_set`);
- **neighbour preservation** against a reference representation of the same items
  (the base model, the untransformed features);
- **few-shot accuracy** and **anomaly detection** on **held-out categories**: items of
  categories no model was trained on, split per category into a pool (the few shots
  and the detector's normal data) and test items
  (:func:`alignjax.data.levels.split_per_category`).

Metric names (all floats; the odd-one-out ones with a level only where the set has
triplets of that level):

=====================================  ==============================================
``odd_one_out/<set>``                  accuracy on triplet set ``<set>`` (odd one out
                                       last; ties count as wrong)
``odd_one_out/<set>/<level>``          the same on the set's triplets of one level
``noise_ceiling/<set>[/<level>]``      mean probability of the most probable choice
``neighbour_preservation``             mean kept fraction of each item's ``k`` nearest
                                       cosine neighbours of the reference
``few_shot/<classifier>/<n>``          ``n``-shot accuracy (``logistic`` or ``knn``)
                                       on the held-out categories, mean over seeds
``anomaly_auc``                        mean one-vs-rest k-NN anomaly ROC-AUC on them
=====================================  ==============================================

>>> from alignjax.data.triplet_set import TripletSet
>>> features = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0]])
>>> benchmark = Benchmark(triplets={"test": TripletSet(np.array([[0, 1, 2], [2, 3, 0]]))})
>>> evaluate(features, benchmark, EvaluationConfig(kernel="cosine"))
{'odd_one_out/test': 1.0}

References:
  Muttenthaler, L. et al. (2023). Improving neural network representations using human
  similarity judgments (gLocal), NeurIPS: odd-one-out accuracy, neighbour preservation,
  few-shot and anomaly detection.
  Muttenthaler, L. et al. (2024). Aligning machine and human visual representations
  across abstraction levels. arXiv:2409.06509: Levels, noise ceilings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

import numpy as np

from alignjax.config import checked, configclass
from alignjax.data.triplet_set import TripletSet
from alignjax.evaluation.anomaly import one_vs_rest_anomaly_auc
from alignjax.evaluation.few_shot import few_shot_accuracy
from alignjax.evaluation.neighbours import neighbour_preservation
from alignjax.evaluation.odd_one_out import odd_one_out_accuracy

Kernel = Literal["dot", "cosine"]
Classifier = Literal["logistic", "knn"]


@configclass
class EvaluationConfig:
    """How a representation is evaluated (:func:`evaluate`).

    Attributes:
      kernel: the similarity of the odd-one-out choices, ``"dot"`` or ``"cosine"``.
      neighbours: ``k`` of neighbour preservation.
      few_shot_shots: examples per held-out category of the few-shot probes.
      few_shot_seeds: draws of the few shots (the accuracy is their mean).
      few_shot_classifiers: ``"logistic"`` (linear probe) and/or ``"knn"`` (1-NN,
        cosine).
      standardize_probe: standardise every dimension by the pool's mean and standard
        deviation before the logistic probe (its L2 penalty otherwise depends on the
        features' scale: distilled students can put every image in a narrow cone).
      anomaly_neighbours: ``k`` of the k-NN anomaly score (at most the smallest
        category's pool).
    """

    kernel: Kernel = "dot"
    neighbours: int = checked(10, ge=1)
    few_shot_shots: tuple[int, ...] = checked((5,), ge=1)
    few_shot_seeds: tuple[int, ...] = checked((0, 1, 2, 3, 4), ge=0)
    few_shot_classifiers: tuple[Classifier, ...] = ("logistic",)
    standardize_probe: bool = False
    anomaly_neighbours: int = checked(5, ge=1)

    def __post_init__(self):
        if self.kernel not in ("dot", "cosine"):
            raise ValueError(f"kernel must be 'dot' or 'cosine', got {self.kernel!r}")
        unknown = set(self.few_shot_classifiers) - {"logistic", "knn"}
        if unknown:
            raise ValueError(
                f"few_shot_classifiers must be 'logistic' and/or 'knn', got {sorted(unknown)}"
            )
        if not self.few_shot_seeds:
            raise ValueError("few_shot_seeds must hold at least one seed")


@dataclasses.dataclass(frozen=True, eq=False)
class HeldOut:
    """Items of held-out categories: a per-category pool and test items (rows of features).

    Attributes:
      pool: ``int [m]`` rows the few shots and the anomaly detector's normal data come
        from.
      pool_labels: ``[m]`` their categories.
      test: ``int [t]`` rows classified and scored.
      test_labels: ``[t]`` their categories.
    """

    pool: np.ndarray
    pool_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray

    @classmethod
    def split(cls, rows: np.ndarray, labels: np.ndarray, first: np.ndarray) -> HeldOut:
        """The pool ``rows[first]`` and test items ``rows[~first]`` (``first``: a mask from
        :func:`alignjax.data.levels.split_per_category`)."""
        rows, labels, first = np.asarray(rows), np.asarray(labels), np.asarray(first, bool)
        return cls(rows[first], labels[first], rows[~first], labels[~first])


@dataclasses.dataclass(frozen=True, eq=False)
class Benchmark:
    """What a representation of ``n`` items is evaluated on.

    Attributes:
      triplets: named triplet sets over the items (e.g. ``"test"``, ``"levels"``); their
        ``probabilities`` give noise ceilings, their ``levels`` per-level accuracies.
      held_out: items of held-out categories for few-shot and anomaly detection.
      neighbour_rows: the rows compared by neighbour preservation (``None``: all).
    """

    triplets: Mapping[str, TripletSet] = dataclasses.field(default_factory=dict)
    held_out: HeldOut | None = None
    neighbour_rows: np.ndarray | None = None


def odd_one_out_metrics(
    features: np.ndarray, name: str, triplets: TripletSet, kernel: Kernel
) -> dict[str, float]:
    """``odd_one_out/<name>[/<level>]`` and ``noise_ceiling/<name>[/<level>]`` of one set."""
    result = odd_one_out_accuracy(
        features,
        triplets.indices,
        kernel=kernel,
        levels=triplets.levels,
        level_names=triplets.level_names or None,
        reference_probabilities=triplets.probabilities,
    )
    metrics = {f"odd_one_out/{name}": result.accuracy}
    if result.noise_ceiling is not None:
        metrics[f"noise_ceiling/{name}"] = result.noise_ceiling
    for level, count in result.per_level_n_triplets.items():
        if count:
            metrics[f"odd_one_out/{name}/{level}"] = result.per_level[level]
            if level in result.per_level_noise_ceiling:
                metrics[f"noise_ceiling/{name}/{level}"] = result.per_level_noise_ceiling[level]
    return metrics


def held_out_metrics(
    features: np.ndarray, held_out: HeldOut, config: EvaluationConfig
) -> dict[str, float]:
    """``few_shot/<classifier>/<n>`` and ``anomaly_auc`` on the held-out categories."""
    pool_x, test_x = features[held_out.pool], features[held_out.test]
    metrics = {}
    for classifier in config.few_shot_classifiers:
        inputs = (pool_x, test_x)
        if classifier == "logistic" and config.standardize_probe:
            mean, std = pool_x.mean(axis=0), pool_x.std(axis=0) + 1e-6
            inputs = ((pool_x - mean) / std, (test_x - mean) / std)
        for shots in config.few_shot_shots:
            metrics[f"few_shot/{classifier}/{shots}"] = few_shot_accuracy(
                inputs[0],
                held_out.pool_labels,
                inputs[1],
                held_out.test_labels,
                n_shot=shots,
                seeds=config.few_shot_seeds,
                classifier=classifier,
            ).mean
    metrics["anomaly_auc"] = one_vs_rest_anomaly_auc(
        pool_x, held_out.pool_labels, test_x, held_out.test_labels, k=config.anomaly_neighbours
    ).mean_auc
    return metrics


def evaluate(
    features: np.ndarray,
    benchmark: Benchmark,
    config: EvaluationConfig | None = None,
    *,
    reference: np.ndarray | None = None,
) -> dict[str, float]:
    """Every metric of ``benchmark`` for the representation ``features``.

    Args:
      features: ``[n_items, d]`` the representation of every item the benchmark's rows
        and triplets index.
      benchmark: triplet sets, held-out categories, neighbour rows.
      config: kernel, neighbours, few-shot probes, anomaly ``k``; default
        ``EvaluationConfig()``.
      reference: ``[n_items, d']`` another representation of the same items (the
        base model); gives ``neighbour_preservation``.

    Returns:
      ``{metric name: value}`` in the vocabulary of the module docstring.
    """
    config = EvaluationConfig() if config is None else config
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be [n_items, d], got shape {features.shape}")
    metrics: dict[str, float] = {}
    for name, triplets in benchmark.triplets.items():
        metrics.update(odd_one_out_metrics(features, name, triplets, config.kernel))
    if reference is not None:
        reference = np.asarray(reference)
        if len(reference) != len(features):
            raise ValueError(
                f"reference has {len(reference)} items, features {len(features)}: "
                "they must represent the same items"
            )
        rows = slice(None) if benchmark.neighbour_rows is None else benchmark.neighbour_rows
        metrics["neighbour_preservation"] = neighbour_preservation(
            reference[rows], features[rows], k=config.neighbours
        )
    if benchmark.held_out is not None:
        metrics.update(held_out_metrics(features, benchmark.held_out, config))
    return metrics
