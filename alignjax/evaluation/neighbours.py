"""Nearest-neighbour preservation between two representations of the same items.

gLocal measures how much an alignment transform disturbs the *local* structure of a
representation by the overlap of each item's k nearest neighbours before and after.

References:
  Muttenthaler et al. (2023), Improving neural network representations using human
  similarity judgments (gLocal), Section on local structure.
"""

from __future__ import annotations

import numpy as np

from alignjax.evaluation import _validation

# Rows of the [rows, n_items] similarity block per step; 2**22 float64 values are 32 MiB.
_BLOCK_ELEMENTS = 1 << 22


def nearest_neighbours(features, *, k: int, chunk_size: int | None = None) -> np.ndarray:
    """Indices of each item's ``k`` nearest neighbours by cosine similarity, itself excluded.

    Ties at the k-th place are broken arbitrarily (``numpy.argpartition``); the returned
    neighbours of a row are in no particular order.

    Args:
      features: ``[n_items, d]`` features.
      k: number of neighbours, ``1 <= k < n_items``.
      chunk_size: rows of the similarity matrix computed at once; by default chosen
        so that a block holds about 2**22 values.

    Returns:
      ``[n_items, k]`` integer item indices.

    >>> np.sort(nearest_neighbours([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]], k=1), axis=1)
    array([[1],
           [0],
           [1]])
    """
    features = _validation.as_features("features", features, min_items=2)
    n = features.shape[0]
    k = _validation.check_positive_int("k", k)
    if k >= n:
        raise ValueError(f"k must be < n_items = {n} (an item is not its own neighbour); got {k}.")
    size = (
        max(1, _BLOCK_ELEMENTS // n)
        if chunk_size is None
        else _validation.check_positive_int("chunk_size", chunk_size)
    )
    unit = _validation.cosine_normalise(features)
    neighbours = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, size):
        rows = np.arange(start, min(start + size, n))
        similarities = unit[rows] @ unit.T
        similarities[np.arange(rows.size), rows] = -np.inf
        neighbours[rows] = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    return neighbours


def neighbour_preservation(
    features_a, features_b, *, k: int = 10, chunk_size: int | None = None
) -> float:
    """Mean fraction of each item's k nearest neighbours in space A kept in space B.

    .. math::

       \\text{NNP}_k = \\frac{1}{n} \\sum_i \\frac{|N^A_k(i) \\cap N^B_k(i)|}{k}

    where ``N_k(i)`` are the ``k`` items most cosine-similar to item ``i`` (``i``
    itself excluded). The measure is symmetric in A and B; 1 means identical
    neighbourhoods, ``k / (n - 1)`` is the chance level.

    Args:
      features_a: ``[n_items, d_a]`` features, e.g. the original representation.
      features_b: ``[n_items, d_b]`` features of the same items, e.g. transformed.
      k: neighbourhood size, ``1 <= k < n_items`` (default 10).
      chunk_size: see :func:`nearest_neighbours`.

    Returns:
      The mean preserved fraction, a float in ``[0, 1]``.

    >>> a = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]
    >>> neighbour_preservation(a, a, k=1)
    1.0
    """
    a = _validation.as_features("features_a", features_a, min_items=2)
    b = _validation.as_features("features_b", features_b, min_items=2)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"features_a and features_b must describe the same items; got shapes {a.shape}"
            f" and {b.shape}."
        )
    neighbours_a = nearest_neighbours(a, k=k, chunk_size=chunk_size)
    neighbours_b = nearest_neighbours(b, k=k, chunk_size=chunk_size)
    rows = max(1, _BLOCK_ELEMENTS // (k * k))
    shared = sum(
        int((block_a[:, :, None] == block_b[:, None, :]).sum())
        for block_a, block_b in zip(
            np.split(neighbours_a, range(rows, a.shape[0], rows)),
            np.split(neighbours_b, range(rows, a.shape[0], rows)),
            strict=True,
        )
    )
    return float(shared / (a.shape[0] * k))
