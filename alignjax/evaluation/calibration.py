"""Calibration of a model's triplet choice probabilities against reference probabilities.

A model assigns each triplet a distribution ``q`` over the pairs ``[01, 02, 12]``
(``softmax(s / T)``); the reference ``p`` is a probabilistic model of the human data,
a simulated observer's Luce probabilities, or empirical choice frequencies.

- Distribution match: the mean KL divergence ``KL(p || q)`` over triplets (the quantity
  uncertainty distillation minimises).
- Confidence calibration: the expected calibration error (ECE) of the model's predicted
  pair. Confidence ``c_n = max_k q_nk`` with prediction ``k_n = argmax_k q_nk`` (the first
  index on ties); correctness ``a_n = p_{n k_n}`` (the reference probability that the
  predicted pair is chosen: an expected, noise-free outcome) or, from observed choices,
  ``a_n = 1[k_n = o_n]``. Confidences are binned into ``B`` equal-width bins of
  ``[0, 1]``, bin ``b`` holding ``c`` in ``(b/B, (b+1)/B]`` (the first bin also holds 0),
  and

  .. math:: \\text{ECE} = \\sum_b \\frac{|B_b|}{n} \\left| \\bar a_b - \\bar c_b \\right|

  With three pairs ``c >= 1/3``, so the lowest bins stay empty.

References:
  Guo, Pleiss, Sun & Weinberger (2017), On calibration of modern neural networks.
  Muttenthaler et al. (2024), AligNet (uncertainty distillation; calibrated surrogate).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.special

from alignjax.evaluation import _validation


@dataclasses.dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics behind the ECE (a reliability diagram).

    Attributes:
      edges: ``[n_bins + 1]`` bin edges on ``[0, 1]``.
      counts: ``[n_bins]`` triplets per bin.
      confidence: ``[n_bins]`` mean confidence per bin (NaN where empty).
      accuracy: ``[n_bins]`` mean correctness per bin (NaN where empty).
    """

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def expected_calibration_error(self) -> float:
        """Count-weighted mean of ``|accuracy - confidence|`` over non-empty bins."""
        filled = self.counts > 0
        weights = self.counts[filled] / self.counts.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def choice_kl_divergence(reference_probabilities, model_probabilities) -> float:
    """Mean KL divergence from the reference to the model triplet distributions.

    .. math:: \\frac{1}{n} \\sum_n \\sum_k p_{nk} \\log \\frac{p_{nk}}{q_{nk}}

    with ``0 log 0 = 0`` (``scipy.special.rel_entr``); a model probability of 0 where the
    reference is positive gives ``inf``.

    Args:
      reference_probabilities: ``[n_triplets, 3]`` reference ``p``.
      model_probabilities: ``[n_triplets, 3]`` model ``q``.

    Returns:
      Mean KL in nats.

    >>> round(choice_kl_divergence([[1.0, 0.0, 0.0]], [[0.5, 0.25, 0.25]]), 6)
    0.693147
    """
    p = _validation.as_probabilities("reference_probabilities", reference_probabilities)
    q = _validation.as_probabilities("model_probabilities", model_probabilities)
    if p.shape != q.shape:
        raise ValueError(
            f"reference_probabilities and model_probabilities must have the same shape; got"
            f" {p.shape} and {q.shape}."
        )
    return float(scipy.special.rel_entr(p, q).sum(axis=1).mean())


def reliability_bins(
    model_probabilities, *, reference_probabilities=None, outcomes=None, n_bins: int = 10
) -> ReliabilityBins:
    """Bins the model's confidence and its correctness (module docstring for the definition).

    Args:
      model_probabilities: ``[n_triplets, 3]`` model ``q``.
      reference_probabilities: ``[n_triplets, 3]`` reference ``p``; correctness is the
        reference probability of the predicted pair.
      outcomes: ``[n_triplets]`` observed chosen pair index in ``{0, 1, 2}``; for
        triplets stored with the odd one out last this is all zeros. Give exactly one
        of ``reference_probabilities`` and ``outcomes``.
      n_bins: number of equal-width confidence bins on ``[0, 1]``.

    Returns:
      :class:`ReliabilityBins`.

    >>> bins = reliability_bins([[0.5, 0.3, 0.2]], outcomes=[0], n_bins=2)
    >>> bins.counts.tolist(), bins.accuracy.tolist()
    ([1, 0], [1.0, nan])
    """
    q = _validation.as_probabilities("model_probabilities", model_probabilities)
    n_bins = _validation.check_positive_int("n_bins", n_bins)
    predicted = np.argmax(q, axis=1)
    confidence = q[np.arange(q.shape[0]), predicted]
    if (reference_probabilities is None) == (outcomes is None):
        raise ValueError("Give exactly one of reference_probabilities and outcomes.")
    if reference_probabilities is not None:
        p = _validation.as_probabilities("reference_probabilities", reference_probabilities)
        if p.shape != q.shape:
            raise ValueError(
                f"reference_probabilities must have shape {q.shape} like model_probabilities;"
                f" got shape {p.shape}."
            )
        correct = p[np.arange(q.shape[0]), predicted]
    else:
        observed = _validation.as_labels("outcomes", outcomes, q.shape[0])
        if not np.issubdtype(observed.dtype, np.integer) or np.any((observed < 0) | (observed > 2)):
            raise ValueError("outcomes must hold pair indices in {0, 1, 2}.")
        correct = (predicted == observed).astype(np.float64)

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins read off the returned edges, so they and the counts agree exactly.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        mean_correct = np.bincount(index, weights=correct, minlength=n_bins) / counts
    return ReliabilityBins(edges, counts, mean_confidence, mean_correct)


def expected_calibration_error(
    model_probabilities, *, reference_probabilities=None, outcomes=None, n_bins: int = 10
) -> float:
    """Expected calibration error of the model's predicted odd-one-out choice.

    .. math:: \\text{ECE} = \\sum_b \\frac{|B_b|}{n} \\left| \\bar a_b - \\bar c_b \\right|

    See the module docstring for confidence ``c``, correctness ``a`` and the bins.

    Args:
      model_probabilities: ``[n_triplets, 3]`` model ``q``.
      reference_probabilities: ``[n_triplets, 3]`` reference ``p`` (expected correctness).
      outcomes: ``[n_triplets]`` observed chosen pair indices (empirical correctness).
      n_bins: equal-width confidence bins on ``[0, 1]`` (default 10).

    Returns:
      ECE in ``[0, 1]``.

    >>> q = [[0.6, 0.2, 0.2], [0.9, 0.05, 0.05]]
    >>> round(expected_calibration_error(q, outcomes=[0, 1], n_bins=2), 6)
    0.25
    """
    return reliability_bins(
        model_probabilities,
        reference_probabilities=reference_probabilities,
        outcomes=outcomes,
        n_bins=n_bins,
    ).expected_calibration_error
