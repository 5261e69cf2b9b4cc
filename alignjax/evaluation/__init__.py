"""alignjax.evaluation: metrics of human alignment and of downstream transfer.

One concept per module; ``suite`` composes them into the one evaluation every chain runs:

- ``suite``: :func:`evaluate` a representation on a :class:`Benchmark` (triplet sets
  against their noise ceilings and per level, neighbour preservation, few-shot and
  anomaly detection on held-out categories), with one metric vocabulary.

- ``odd_one_out``: triplet odd-one-out accuracy (overall, per abstraction level) with
  the noise ceiling; a representation's triplet choice probabilities.
- ``rsa``: representational dissimilarity matrices, RSA (Spearman) and linear CKA.
- ``neighbours``: nearest-neighbour preservation between two spaces (gLocal).
- ``few_shot``: few-shot logistic-regression and k-NN probes over seeds.
- ``anomaly``: k-NN cosine anomaly detection ROC-AUC, one class normal at a time.
- ``calibration``: KL(reference || model) and the expected calibration error.
- ``oddball``: the quadrilateral intruder task and per-shape error rates.
- ``correlation``: Pearson and Spearman correlation with per-item human numbers.

Conventions (``METHODS.md`` section 1): triplets are ``[n, 3]`` item indices with the
odd one out last, similarities ``[s01, s02, s12]``, ties count as wrong.
"""

from alignjax.evaluation.anomaly import (
    AnomalyResult,
    anomaly_detection_auc,
    anomaly_scores,
    one_vs_rest_anomaly_auc,
)
from alignjax.evaluation.calibration import (
    ReliabilityBins,
    choice_kl_divergence,
    expected_calibration_error,
    reliability_bins,
)
from alignjax.evaluation.correlation import CorrelationResult, correlate
from alignjax.evaluation.few_shot import FewShotResult, few_shot_accuracy, sample_few_shot
from alignjax.evaluation.neighbours import nearest_neighbours, neighbour_preservation
from alignjax.evaluation.odd_one_out import (
    OddOneOutResult,
    noise_ceiling,
    odd_one_out_accuracy,
    odd_one_out_accuracy_from_similarities,
    odd_one_out_probabilities,
)
from alignjax.evaluation.oddball import OddballResult, oddball_choices, oddball_error_rates
from alignjax.evaluation.rsa import (
    linear_cka,
    representational_dissimilarity_matrix,
    rsa_from_features,
    rsa_spearman,
)
from alignjax.evaluation.suite import Benchmark, EvaluationConfig, HeldOut, evaluate

__all__ = [
    "AnomalyResult",
    "Benchmark",
    "EvaluationConfig",
    "HeldOut",
    "CorrelationResult",
    "FewShotResult",
    "OddOneOutResult",
    "OddballResult",
    "ReliabilityBins",
    "anomaly_detection_auc",
    "anomaly_scores",
    "choice_kl_divergence",
    "correlate",
    "evaluate",
    "expected_calibration_error",
    "few_shot_accuracy",
    "linear_cka",
    "neighbour_preservation",
    "nearest_neighbours",
    "noise_ceiling",
    "odd_one_out_accuracy",
    "odd_one_out_accuracy_from_similarities",
    "odd_one_out_probabilities",
    "oddball_choices",
    "oddball_error_rates",
    "one_vs_rest_anomaly_auc",
    "reliability_bins",
    "representational_dissimilarity_matrix",
    "rsa_from_features",
    "rsa_spearman",
    "sample_few_shot",
]
