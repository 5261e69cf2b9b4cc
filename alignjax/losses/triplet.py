"""The triplet odd-one-out choice model: similarities, probabilities, loss, accuracy.

A triplet is three items ``(0, 1, 2)`` with pair similarities ``[s01, s02, s12]``. The
most similar pair leaves the third item as the odd one out (pair 01 -> odd 2, pair 02
-> odd 1, pair 12 -> odd 0), and the choice follows the Luce / softmax rule
``p(pair k) = softmax(s / T)_k``. Stored triplets put the odd one out last, so the
chosen pair is ``01`` (index 0).

References:
  Hebart, Zheng, Pereira and Baker, *Revealing the multidimensional mental
  representations of natural objects underlying human similarity judgements*, Nature
  Human Behaviour, 2020. Muttenthaler et al., *Improving neural network
  representations using human similarity judgments*, NeurIPS 2023 (gLocal).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignjax.losses import _kernels
from alignjax.losses import _validation as v


def triplet_similarities(embeddings: jax.typing.ArrayLike, kernel: str = "dot") -> jax.Array:
    """The three pair similarities of each triplet of embeddings.

    .. math::

        s = [k(e_0, e_1),\\ k(e_0, e_2),\\ k(e_1, e_2)], \\qquad
        k(a, b) = a \\cdot b \\ \\text{(dot)} \\ \\text{or} \\
        \\frac{a \\cdot b}{\\|a\\| \\|b\\|} \\ \\text{(cosine)}.

    Args:
      embeddings: shape ``[..., 3, d]``.
      kernel: ``"dot"`` or ``"cosine"`` (zero vectors have cosine similarity 0).

    Returns:
      ``[..., 3]`` similarities ``[s01, s02, s12]`` in float32 (float64 for float64
      input).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import triplet_similarities
      >>> e = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
      >>> triplet_similarities(e).tolist()
      [2.0, 0.0, 0.0]
    """
    v.check_rank("embeddings", embeddings, 2)
    v.check_axis_size("embeddings", embeddings, -2, 3, "[..., 3, d]")
    v.check_choice("kernel", kernel, v.KERNELS)
    e = _kernels.prepare(v.as_float(embeddings, v.compute_dtype(embeddings)), kernel)
    e0, e1, e2 = e[..., 0, :], e[..., 1, :], e[..., 2, :]
    return jnp.stack([jnp.sum(e0 * e1, -1), jnp.sum(e0 * e2, -1), jnp.sum(e1 * e2, -1)], axis=-1)


def odd_one_out_log_probs(
    similarities: jax.typing.ArrayLike, temperature: float = 1.0
) -> jax.Array:
    """Log-probabilities that each pair is chosen as the most similar.

    .. math:: \\log p_k = \\log \\operatorname{softmax}(s / T)_k

    Args:
      similarities: ``[..., 3]`` pair similarities ``[s01, s02, s12]``.
      temperature: positive scalar ``T``.

    Returns:
      ``[..., 3]`` log-probabilities of pairs ``01, 02, 12`` (odd one out ``2, 1, 0``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import odd_one_out_log_probs
      >>> print(jnp.exp(odd_one_out_log_probs(jnp.zeros(3))).round(4))
      [0.3333 0.3333 0.3333]
    """
    v.check_triplet_similarities("similarities", similarities)
    v.check_temperature("temperature", temperature)
    dtype = v.compute_dtype(similarities)
    return jax.nn.log_softmax(v.as_float(similarities, dtype) / temperature, axis=-1)


def odd_one_out_probs(similarities: jax.typing.ArrayLike, temperature: float = 1.0) -> jax.Array:
    """Probabilities ``softmax(s / T)`` of each pair being the most similar.

    Args:
      similarities: ``[..., 3]`` pair similarities ``[s01, s02, s12]``.
      temperature: positive scalar ``T``.

    Returns:
      ``[..., 3]`` probabilities of pairs ``01, 02, 12``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import odd_one_out_probs
      >>> odd_one_out_probs(jnp.log(jnp.array([2.0, 1.0, 1.0]))).tolist()
      [0.5, 0.25, 0.25]
    """
    return jnp.exp(odd_one_out_log_probs(similarities, temperature))


def odd_one_out_cross_entropy(
    similarities: jax.typing.ArrayLike, temperature: float = 1.0
) -> jax.Array:
    """Cross-entropy of the observed choice: pair ``01`` is the most similar.

    .. math:: \\ell = -\\log \\operatorname{softmax}(s / T)_0

    Args:
      similarities: ``[..., 3]`` pair similarities ``[s01, s02, s12]`` of triplets
        stored with the odd one out last.
      temperature: positive scalar ``T``.

    Returns:
      ``[...]`` per-triplet losses (unreduced).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import odd_one_out_cross_entropy
      >>> round(float(odd_one_out_cross_entropy(jnp.zeros(3))), 4)  # log 3
      1.0986

    References:
      Muttenthaler et al., NeurIPS 2023 (gLocal), the global loss.
    """
    return -odd_one_out_log_probs(similarities, temperature)[..., 0]


def triplet_accuracy(similarities: jax.typing.ArrayLike) -> jax.Array:
    """Whether pair ``01`` is the unique most similar pair (odd one out last).

    Ties count as wrong, so all-equal similarities score 0.

    Args:
      similarities: ``[..., 3]`` pair similarities ``[s01, s02, s12]``.

    Returns:
      ``[...]`` float32 values in ``{0.0, 1.0}``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import triplet_accuracy
      >>> triplet_accuracy(jnp.array([[3.0, 1.0, 2.0], [1.0, 1.0, 1.0]])).tolist()
      [1.0, 0.0]
    """
    v.check_triplet_similarities("similarities", similarities)
    s = jnp.asarray(similarities)
    correct = (s[..., 0] > s[..., 1]) & (s[..., 0] > s[..., 2])
    return correct.astype(jnp.float32)
