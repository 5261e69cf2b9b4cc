"""Contrastive losses that teach an embedding the generative similarity ``s_gen``.

Triplets are sampled from the generative model: anchor ``a`` and positive ``p`` from
one ``theta``, the negative ``n`` from an independent ``theta'``. The Bayes-optimal
critic of the softmax triplet loss (InfoNCE with one negative) is
``log s_gen(x, y) + c(x)``, so a trained embedding similarity tracks ``log s_gen``.
The many-negatives form contrasts each anchor-positive pair with the positives of the
other pairs of a batch (same optimum, ``B - 1`` negatives). Where ``s_gen`` is
computable, the soft-target batch loss uses it directly.

References:
  Marjieh, Kumar, Campbell, Zhang, Bhatt, Griffiths and Sucholutsky, *Learning
  Human-Aligned Representations with Contrastive Learning and Generative Similarity*,
  2024 (arXiv:2405.19420), Section 2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignjax.losses import _batch, _kernels, triplet
from alignjax.losses import _validation as v


def generative_similarity_softmax_loss(
    embeddings: jax.typing.ArrayLike,
    *,
    kernel: str = "dot",
    temperature: float = 1.0,
) -> jax.Array:
    """Softmax (InfoNCE with one negative) triplet loss.

    .. math::

        \\ell = -\\log \\sigma\\!\\left(\\frac{k(a, p) - k(a, n)}{T}\\right)
        = \\operatorname{softplus}\\!\\left(\\frac{k(a, n) - k(a, p)}{T}\\right).

    Args:
      embeddings: ``[..., 3, d]`` embeddings of (anchor, positive, negative).
      kernel: ``"dot"`` (as in the paper) or ``"cosine"``.
      temperature: positive scalar ``T``.

    Returns:
      ``[...]`` per-triplet losses (unreduced).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import generative_similarity_softmax_loss
      >>> e = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> round(float(generative_similarity_softmax_loss(e)), 4)  # softplus(-1)
      0.3133

    References:
      Marjieh et al., 2024 (arXiv:2405.19420), Eq. 2.
    """
    v.check_temperature("temperature", temperature)
    s = triplet.triplet_similarities(embeddings, kernel)
    return jax.nn.softplus((s[..., 1] - s[..., 0]) / temperature)


def generative_similarity_margin_loss(
    embeddings: jax.typing.ArrayLike, *, margin: float = 1.0
) -> jax.Array:
    """Margin triplet loss with squared Euclidean distances.

    .. math:: \\ell = \\max(0,\\ \\|a - p\\|^2 - \\|a - n\\|^2 + m)

    Args:
      embeddings: ``[..., 3, d]`` embeddings of (anchor, positive, negative).
      margin: non-negative scalar ``m``.

    Returns:
      ``[...]`` per-triplet losses (unreduced).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import generative_similarity_margin_loss
      >>> e = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> float(generative_similarity_margin_loss(e))  # 1 - 1 + 1
      1.0

    References:
      Marjieh et al., 2024 (arXiv:2405.19420); Schroff, Kalenichenko and Philbin,
      *FaceNet*, CVPR 2015.
    """
    v.check_rank("embeddings", embeddings, 2)
    v.check_axis_size("embeddings", embeddings, -2, 3, "[..., 3, d]")
    if jnp.ndim(margin) != 0:
        raise ValueError(f"`margin` must be a scalar; got shape {jnp.shape(margin)}.")
    v.check_non_negative("margin", margin)
    e = v.as_float(embeddings, v.compute_dtype(embeddings))
    anchor, positive, negative = e[..., 0, :], e[..., 1, :], e[..., 2, :]
    d_ap = jnp.sum((anchor - positive) ** 2, axis=-1)
    d_an = jnp.sum((anchor - negative) ** 2, axis=-1)
    return jax.nn.relu(d_ap - d_an + margin)


def generative_similarity_info_nce_loss(
    anchors: jax.typing.ArrayLike,
    positives: jax.typing.ArrayLike,
    *,
    kernel: str = "dot",
    temperature: float = 1.0,
    axis_name: str | None = None,
) -> jax.Array:
    """Many-negatives generative-similarity loss: InfoNCE over same-``theta`` pairs.

    The pairs ``(a_i, p_i)`` of a batch are each drawn from one latent
    ``theta_i ~ p(theta)``, independently across ``i``. Each anchor picks its positive
    among the positives of all pairs, and each positive its anchor among all anchors:

    .. math::

        \\ell_i = -\\tfrac12 \\log \\frac{e^{k(a_i, p_i)/T}}{\\sum_j e^{k(a_i, p_j)/T}}
        -\\tfrac12 \\log \\frac{e^{k(p_i, a_i)/T}}{\\sum_j e^{k(p_i, a_j)/T}}.

    The candidates ``p_j, j != i`` of anchor ``a_i`` are independent draws from the
    marginal ``p(x)``, so the Bayes-optimal critic of each direction is
    ``k(x, y) / T = log s_gen(x, y) + c(x)`` for every batch size ``B >= 2`` (van den Oord
    et al. 2018; Poole et al. 2019), and for a symmetric kernel the two directions
    together pin it to ``log s_gen(x, y)`` plus a constant: the optimum of the softmax
    triplet loss, learned from ``B - 1`` negatives per anchor instead of one. (SimCLR's
    form, which also contrasts ``a_i`` with the other anchors, is not exact here: an
    anchor and a positive of one pair share their ``theta``, so those negatives come in
    dependent pairs.)

    Args:
      anchors: ``[B, d]`` embeddings of one item of each pair.
      positives: ``[B, d]`` embeddings of the other item of the same pairs.
      kernel: ``"dot"`` (as in the paper) or ``"cosine"``.
      temperature: positive scalar ``T``.
      axis_name: inside ``jax.shard_map``/``jax.pmap`` with the batch sharded along
        this axis, the candidates are the whole (gathered) batch.

    Returns:
      ``[B]`` per-pair losses (the local pairs under ``axis_name``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import generative_similarity_info_nce_loss
      >>> z = jnp.eye(2)  # each item matches its pair (dot 1) and not the other (dot 0)
      >>> loss = generative_similarity_info_nce_loss(z, z)  # -log(e / (e + 1)) each
      >>> [round(float(x), 4) for x in loss]
      [0.3133, 0.3133]

    References:
      Marjieh et al., 2024 (arXiv:2405.19420), Eq. 2 (the one-negative case); van den
      Oord, Li and Vinyals, 2018 (CPC); Poole et al., ICML 2019.
    """
    v.check_ndim("anchors", anchors, 2, "[B, d]")
    v.check_ndim("positives", positives, 2, "[B, d]")
    v.check_same_shape("anchors", anchors, "positives", positives)
    v.check_temperature("temperature", temperature)
    v.check_choice("kernel", kernel, v.KERNELS)
    dtype = v.compute_dtype(anchors, positives)
    a = _kernels.prepare(v.as_float(anchors, dtype), kernel)
    p = _kernels.prepare(v.as_float(positives, dtype), kernel)
    all_a, offset = _batch.gather_batch(a, axis_name)
    all_p, _ = _batch.gather_batch(p, axis_name)
    if all_a.shape[0] < 2:
        raise ValueError(f"`anchors` must hold at least 2 pairs; got shape {jnp.shape(anchors)}.")
    own = (jnp.arange(a.shape[0]) + offset)[:, None]

    def pick_own(queries, candidates):
        log_p = jax.nn.log_softmax(queries @ candidates.T / temperature, axis=-1)
        return -jnp.take_along_axis(log_p, own, axis=1)[:, 0]

    return 0.5 * (pick_own(a, all_p) + pick_own(p, all_a))


def generative_similarity_contrastive_loss(
    embeddings: jax.typing.ArrayLike,
    log_similarity: jax.typing.ArrayLike,
    *,
    temperature: float = 1.0,
    kernel: str = "dot",
    axis_name: str | None = None,
) -> jax.Array:
    """Soft-target batch contrastive loss with batch-normalised ``s_gen`` targets.

    For a batch of ``B`` items with embeddings :math:`f_i` and
    :math:`L_{ij} = \\log s_{gen}(x_i, x_j)`,

    .. math::

        q_{ij} = \\frac{s_{gen}(x_i, x_j)}{\\sum_{k \\ne i} s_{gen}(x_i, x_k)}, \\quad
        p_{ij} = \\frac{\\exp(k(f_i, f_j) / T)}{\\sum_{k \\ne i} \\exp(k(f_i, f_k) / T)},
        \\quad \\ell_i = -\\sum_{j \\ne i} q_{ij} \\log p_{ij}

    (the diagonal is excluded from both rows). With one-hot targets this is InfoNCE;
    the soft targets carry the graded similarity.

    Args:
      embeddings: ``[B, d]``.
      log_similarity: ``[B, B]`` matrix of ``log s_gen`` (or any target logits; only
        row-wise differences matter). Under ``axis_name``: the local rows against
        the whole batch, ``[B_local, B]``.
      temperature: positive scalar ``T``.
      kernel: ``"dot"`` or ``"cosine"``.
      axis_name: inside ``jax.shard_map``/``jax.pmap`` with the batch sharded along
        this axis, the local rows are compared with the whole (gathered) batch.

    Returns:
      ``[B]`` per-row losses (the local rows under ``axis_name``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import generative_similarity_contrastive_loss
      >>> e = jnp.eye(3)
      >>> print(generative_similarity_contrastive_loss(e, jnp.zeros((3, 3))).round(4))
      [0.6931 0.6931 0.6931]

    References:
      Marjieh et al., 2024 (arXiv:2405.19420), Section 2.
    """
    v.check_ndim("embeddings", embeddings, 2, "[B, d]")
    v.check_ndim("log_similarity", log_similarity, 2, "[B, B]")
    v.check_temperature("temperature", temperature)
    v.check_choice("kernel", kernel, v.KERNELS)
    dtype = v.compute_dtype(embeddings, log_similarity)
    local = _kernels.prepare(v.as_float(embeddings, dtype), kernel)
    full, offset = _batch.gather_batch(local, axis_name)
    expected = (local.shape[0], full.shape[0])
    if tuple(jnp.shape(log_similarity)) != expected:
        raise ValueError(
            f"`log_similarity` must have shape {list(expected)} (rows: the "
            f"{'local ' if axis_name else ''}batch of `embeddings`, columns: the whole "
            f"batch); got shape {jnp.shape(log_similarity)}."
        )
    if full.shape[0] < 2:
        raise ValueError(
            f"`embeddings` must hold at least 2 items; got shape {jnp.shape(embeddings)}."
        )
    mask = _batch.off_diagonal(local.shape[0], full.shape[0], offset)
    return _batch.soft_cross_entropy(
        v.as_float(log_similarity, dtype), local @ full.T / temperature, mask
    )
