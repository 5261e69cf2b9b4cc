"""Input checks shared by the evaluation metrics: one wording for every bad-shape error."""

from __future__ import annotations

import numpy as np


def as_array(name: str, x, *, ndim: int, dtype=np.float64, what: str) -> np.ndarray:
    """Returns ``x`` as a numpy array of rank ``ndim`` or raises a ``ValueError``.

    Args:
      name: the argument's name, quoted in the error.
      x: array-like input.
      ndim: required rank.
      dtype: dtype of the returned array.
      what: the expected shape in words, e.g. ``"[n_items, d]"``.
    """
    array = np.asarray(x)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have shape {what}; got shape {array.shape}.")
    return array.astype(dtype, copy=False)


def as_features(name: str, x, *, min_items: int = 1) -> np.ndarray:
    """A float feature matrix ``[n_items, d]`` with at least ``min_items`` rows."""
    features = as_array(name, x, ndim=2, what="[n_items, d]")
    if features.shape[0] < min_items or features.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape [n_items, d] with n_items >= {min_items} and d >= 1;"
            f" got shape {features.shape}."
        )
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return features


def as_labels(name: str, x, n: int | None = None) -> np.ndarray:
    """A one-dimensional label vector, optionally of length ``n``."""
    labels = np.asarray(x)
    if labels.ndim != 1:
        raise ValueError(f"{name} must have shape [n]; got shape {labels.shape}.")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{name} must have length {n}; got shape {labels.shape}.")
    return labels


def as_probabilities(name: str, x, *, atol: float = 1e-3) -> np.ndarray:
    """Triplet choice probabilities ``[n, 3]``: non-negative rows that sum to one."""
    probabilities = as_array(name, x, ndim=2, what="[n_triplets, 3]")
    if probabilities.shape[1] != 3:
        raise ValueError(
            f"{name} must have shape [n_triplets, 3]; got shape {probabilities.shape}."
        )
    if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
        raise ValueError(f"{name} must be finite and non-negative.")
    sums = probabilities.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=atol):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"{name} rows must sum to 1; row {worst} sums to {sums[worst]:.6g}.")
    return probabilities


def cosine_normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm; zero rows stay zero (cosine 0 to everything)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)
