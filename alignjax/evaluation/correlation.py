"""Correlation of per-item (or per-condition) model numbers with human numbers.

Pearson and Spearman correlations with two-sided p-values from ``scipy.stats``.

NaN handling: ``nan_policy="omit"`` (default) drops every position where either
vector is NaN (pairwise deletion) and reports the number of pairs used;
``nan_policy="raise"`` raises a ``ValueError`` if any NaN is present. Infinite values
are always rejected. At least three complete pairs are required. A constant vector
has no defined correlation: both coefficients and p-values are then NaN.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats


@dataclasses.dataclass(frozen=True)
class CorrelationResult:
    """Pearson and Spearman correlation between two vectors.

    Attributes:
      pearson_r, pearson_p: Pearson's r and its two-sided p-value.
      spearman_rho, spearman_p: Spearman's rho and its two-sided p-value.
      n: number of pairs used (after NaN omission).
    """

    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def _as_vector(name: str, x) -> np.ndarray:
    vector = np.asarray(x, dtype=np.float64)
    if vector.ndim != 1:
        raise ValueError(f"{name} must have shape [n]; got shape {vector.shape}.")
    if np.any(np.isinf(vector)):
        raise ValueError(f"{name} contains infinite values.")
    return vector


def correlate(model_values, human_values, *, nan_policy: str = "omit") -> CorrelationResult:
    """Pearson and Spearman correlation of model numbers with human numbers, item by item.

    .. math::

       r = \\frac{\\sum_i (x_i - \\bar x)(y_i - \\bar y)}
                {\\sqrt{\\sum_i (x_i - \\bar x)^2 \\sum_i (y_i - \\bar y)^2}},
       \\qquad \\rho = r(\\operatorname{rank} x, \\operatorname{rank} y)

    Args:
      model_values: ``[n_items]`` model numbers (e.g. per-shape error rates).
      human_values: ``[n_items]`` human numbers for the same items in the same order.
      nan_policy: ``"omit"`` (pairwise deletion, default) or ``"raise"``.

    Returns:
      A :class:`CorrelationResult`.

    >>> result = correlate([1.0, 2.0, 3.0, float("nan")], [2.0, 4.0, 7.0, 1.0])
    >>> result.spearman_rho, result.n
    (1.0, 3)
    """
    x = _as_vector("model_values", model_values)
    y = _as_vector("human_values", human_values)
    if x.shape != y.shape:
        raise ValueError(
            f"model_values and human_values must have the same length; got shapes {x.shape}"
            f" and {y.shape}."
        )
    if nan_policy not in ("omit", "raise"):
        raise ValueError(f"nan_policy must be 'omit' or 'raise'; got {nan_policy!r}.")
    missing = np.isnan(x) | np.isnan(y)
    if nan_policy == "raise" and missing.any():
        raise ValueError(
            f"model_values or human_values contains NaN at positions"
            f" {np.flatnonzero(missing).tolist()} (nan_policy='raise')."
        )
    x, y = x[~missing], y[~missing]
    if x.size < 3:
        raise ValueError(f"need at least 3 complete (non-NaN) pairs; got {x.size}.")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        nan = float("nan")
        return CorrelationResult(nan, nan, nan, nan, int(x.size))
    pearson = scipy.stats.pearsonr(x, y)
    spearman = scipy.stats.spearmanr(x, y)
    return CorrelationResult(
        pearson_r=float(pearson.statistic),
        pearson_p=float(pearson.pvalue),
        spearman_rho=float(spearman.statistic),
        spearman_p=float(spearman.pvalue),
        n=int(x.size),
    )
