"""Uncertainty distillation: match a model's odd-one-out distribution to human choices.

References:
  Muttenthaler et al., *Aligning Machine and Human Visual Representations across
  Abstraction Levels*, 2024 (arXiv:2409.06509), the surrogate teacher.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignjax.losses import _validation as v


def uncertainty_distillation_loss(
    target_probs: jax.typing.ArrayLike,
    similarities: jax.typing.ArrayLike,
    *,
    temperature: float = 1.0,
) -> jax.Array:
    """KL divergence from target choice probabilities to the model's softmax choices.

    .. math::

        \\ell = \\mathrm{KL}(p \\,\\|\\, \\operatorname{softmax}(s / T))
        = \\sum_k p_k \\log p_k - \\sum_k p_k \\log \\operatorname{softmax}(s / T)_k,

    with ``0 log 0 = 0``. Unlike the hard-label cross-entropy, the model is rewarded
    for being as *uncertain* as people are (AligNet's surrogate teacher is fitted
    with this loss on an affine transform of the teacher's features).

    Args:
      target_probs: ``[..., 3]`` probabilities that pairs ``01, 02, 12`` are chosen
        as the most similar (e.g. human choice frequencies or a model of them);
        non-negative and summing to one (checked when concrete).
      similarities: ``[..., 3]`` model pair similarities ``[s01, s02, s12]``, batch
        shape broadcastable with ``target_probs``'.
      temperature: positive scalar ``T``.

    Returns:
      ``[...]`` per-triplet divergences (unreduced), ``>= 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import uncertainty_distillation_loss
      >>> p = jnp.array([0.5, 0.25, 0.25])
      >>> float(uncertainty_distillation_loss(p, jnp.log(p)))  # a perfect match
      0.0

    References:
      Muttenthaler et al., 2024 (arXiv:2409.06509), uncertainty distillation.
    """
    v.check_triplet_similarities("target_probs", target_probs)
    v.check_triplet_similarities("similarities", similarities)
    v.broadcast_batch_shapes(("target_probs", "similarities"), (target_probs, similarities), (1, 1))
    v.check_temperature("temperature", temperature)
    v.check_probabilities("target_probs", target_probs)
    dtype = v.compute_dtype(target_probs, similarities)
    p = v.as_float(target_probs, dtype)
    log_q = jax.nn.log_softmax(v.as_float(similarities, dtype) / temperature, axis=-1)
    return jnp.sum(jax.scipy.special.xlogy(p, p) - p * log_q, axis=-1)
