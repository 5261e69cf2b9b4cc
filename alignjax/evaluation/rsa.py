"""Representational similarity analysis (RSA) and linear centred kernel alignment (CKA).

RSA compares two representations of the same items through their representational
dissimilarity matrices (RDMs): the Spearman rank correlation of the RDMs' upper
triangles (diagonal excluded). CKA compares the feature matrices themselves and is
invariant to orthogonal transforms and isotropic scaling of either.

References:
  Kriegeskorte, Mur & Bandettini (2008), Representational similarity analysis.
  Kornblith, Norouzi, Lee & Hinton (2019), Similarity of neural network
  representations revisited (linear CKA).
  Muttenthaler et al. (2023), gLocal (RSA as an alignment metric).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from alignjax.evaluation import _validation


def representational_dissimilarity_matrix(features, *, metric: str = "correlation") -> np.ndarray:
    """The RDM of item features.

    .. math::

       D_{ij} = 1 - \\frac{\\langle u_i, u_j \\rangle}{\\lVert u_i \\rVert \\lVert u_j \\rVert}

    with ``u_i = f_i`` for ``metric="cosine"`` and ``u_i = f_i - mean(f_i)`` (each
    item's features centred over its ``d`` dimensions, i.e. ``1 -`` the Pearson
    correlation between the two items' feature vectors) for ``metric="correlation"``,
    the usual RSA choice. An all-zero (or, for correlation, constant) feature vector
    has similarity 0 to every item, so dissimilarity 1; its diagonal entry is set to 0.

    Args:
      features: ``[n_items, d]`` item features.
      metric: ``"correlation"`` (default) or ``"cosine"``.

    Returns:
      ``[n_items, n_items]`` symmetric RDM (float64) with zero diagonal, values in ``[0, 2]``.

    >>> representational_dissimilarity_matrix([[1.0, 0.0], [0.0, 2.0]], metric="cosine")
    array([[0., 1.],
           [1., 0.]])
    """
    features = _validation.as_features("features", features)
    if metric == "correlation":
        features = features - features.mean(axis=1, keepdims=True)
    elif metric != "cosine":
        raise ValueError(f"metric must be 'correlation' or 'cosine'; got {metric!r}.")
    unit = _validation.cosine_normalise(features)
    rdm = 1.0 - unit @ unit.T
    rdm = np.clip((rdm + rdm.T) / 2, 0.0, 2.0)
    np.fill_diagonal(rdm, 0.0)
    return rdm


def _check_rdm(name: str, rdm) -> np.ndarray:
    matrix = _validation.as_array(name, rdm, ndim=2, what="[n_items, n_items]")
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 3:
        raise ValueError(
            f"{name} must have shape [n_items, n_items] with n_items >= 3; got shape"
            f" {matrix.shape}."
        )
    return matrix


def rsa_spearman(rdm_a, rdm_b) -> float:
    """Spearman correlation between the upper triangles of two RDMs.

    .. math:: \\rho = \\operatorname{spearman}(\\{A_{ij}\\}_{i<j}, \\{B_{ij}\\}_{i<j})

    Only the strict upper triangles are read (the RDMs are assumed symmetric). Ties get
    average ranks (``scipy.stats.spearmanr``). A constant triangle gives NaN.

    Args:
      rdm_a: ``[n_items, n_items]`` dissimilarities.
      rdm_b: ``[n_items, n_items]`` dissimilarities of the same items in the same order.

    Returns:
      Spearman's rho as a float in ``[-1, 1]``.

    >>> a = [[0, 1, 2], [1, 0, 3], [2, 3, 0]]
    >>> b = [[0, 10, 20], [10, 0, 30], [20, 30, 0]]
    >>> rsa_spearman(a, b)
    1.0
    """
    a = _check_rdm("rdm_a", rdm_a)
    b = _check_rdm("rdm_b", rdm_b)
    if a.shape != b.shape:
        raise ValueError(f"rdm_a and rdm_b must have the same shape; got {a.shape} and {b.shape}.")
    upper = np.triu_indices(a.shape[0], k=1)
    return float(scipy.stats.spearmanr(a[upper], b[upper]).statistic)


def rsa_from_features(features_a, features_b, *, metric: str = "correlation") -> float:
    """RSA between two representations of the same items: :func:`rsa_spearman` of their RDMs.

    Args:
      features_a: ``[n_items, d_a]`` features.
      features_b: ``[n_items, d_b]`` features of the same items.
      metric: RDM metric, ``"correlation"`` (default) or ``"cosine"``.

    Returns:
      Spearman's rho between the two RDMs.

    >>> x = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]
    >>> rsa_from_features(x, 3.0 * np.asarray(x))
    1.0
    """
    a = _validation.as_features("features_a", features_a, min_items=3)
    b = _validation.as_features("features_b", features_b, min_items=3)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"features_a and features_b must describe the same items; got shapes {a.shape}"
            f" and {b.shape}."
        )
    return rsa_spearman(
        representational_dissimilarity_matrix(a, metric=metric),
        representational_dissimilarity_matrix(b, metric=metric),
    )


def linear_cka(features_a, features_b) -> float:
    """Linear centred kernel alignment between two feature matrices.

    With ``X`` and ``Y`` column-centred (each feature has mean zero over items),

    .. math::

       \\operatorname{CKA}(X, Y) = \\frac{\\lVert Y^\\top X \\rVert_F^2}
           {\\lVert X^\\top X \\rVert_F \\, \\lVert Y^\\top Y \\rVert_F}

    which equals HSIC with linear kernels, normalised. It lies in ``[0, 1]`` and is 1
    when ``Y = c X Q`` for an orthogonal ``Q`` and ``c != 0``. Computed in float64 in
    feature space (``d x d`` products), so large ``n_items`` costs no ``n x n`` matrix.

    Args:
      features_a: ``[n_items, d_a]`` features.
      features_b: ``[n_items, d_b]`` features of the same items.

    Returns:
      CKA as a float; NaN if either matrix is constant over items.

    >>> x = np.array([[1.0, 2.0], [3.0, 1.0], [0.0, 0.0], [2.0, 5.0]])
    >>> round(linear_cka(x, -2.0 * x[:, ::-1]), 12)
    1.0
    """
    x = _validation.as_features("features_a", features_a, min_items=2)
    y = _validation.as_features("features_b", features_b, min_items=2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"features_a and features_b must describe the same items; got shapes {x.shape}"
            f" and {y.shape}."
        )
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    denominator = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    if denominator == 0:
        return float("nan")
    return float(cross / denominator)
