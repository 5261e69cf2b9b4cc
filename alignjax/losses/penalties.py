"""Penalties on a linear transform of features (gLocal, AligNet's surrogate teacher).

References:
  Muttenthaler et al., *Improving neural network representations using human
  similarity judgments*, NeurIPS 2023 (arXiv:2306.04507), Section 3.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignjax.losses import _validation as v


def scaled_identity_penalty(weights: jax.typing.ArrayLike) -> jax.Array:
    """Squared distance of a transform from the scaled identity it is closest to on the diagonal.

    .. math::

        R(W) = \\big\\| W - \\bar w\\, I \\big\\|_F^2, \\qquad
        \\bar w = \\tfrac{1}{\\min(p, q)} \\sum_i W_{ii},

    so a transform is free to rescale the space uniformly but pays for rotating or
    stretching it. For a rectangular ``[p, q]`` matrix ``I`` is ``eye(p, q)``.

    Args:
      weights: ``[p, q]`` transform matrix ``W``.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import scaled_identity_penalty
      >>> float(scaled_identity_penalty(3.0 * jnp.eye(2)))
      0.0
      >>> float(scaled_identity_penalty(jnp.array([[1.0, 1.0], [0.0, 3.0]])))
      3.0

    References:
      Muttenthaler et al., NeurIPS 2023 (gLocal), Section 3 (the regulariser).
    """
    v.check_ndim("weights", weights, 2, "[p, q]")
    w = v.as_float(weights, v.compute_dtype(weights))
    scale = jnp.mean(jnp.diagonal(w))
    residual = w - scale * jnp.eye(*w.shape, dtype=w.dtype)
    return jnp.sum(residual * residual)


def frobenius_penalty(weights: jax.typing.ArrayLike) -> jax.Array:
    """Frobenius norm ``||W||_F = sqrt(sum_ij W_ij^2)`` (not squared).

    The regulariser of gLocal's "naive" alignment baseline, which has no local term;
    as in the reference code the norm itself is penalised, not its square. Its
    gradient at ``W = 0`` is taken as 0.

    Args:
      weights: an array of any shape.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import frobenius_penalty
      >>> float(frobenius_penalty(jnp.array([[1.0, 2.0], [0.0, 2.0]])))
      3.0

    References:
      Muttenthaler et al., NeurIPS 2023 (gLocal), the naive transform.
    """
    w = v.as_float(weights, v.compute_dtype(weights))
    squared = jnp.sum(w * w)
    positive = squared > 0
    # Double `where`: sqrt's infinite slope at 0 must not reach the gradient.
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
