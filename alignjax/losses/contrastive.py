"""Contrastive baselines: SimCLR's NT-Xent (InfoNCE) and supervised contrastive loss.

Both use cosine similarities at a temperature and exclude each anchor from its own
denominator.

References:
  Chen, Kornblith, Norouzi and Hinton, *A Simple Framework for Contrastive Learning of
  Visual Representations*, ICML 2020. Khosla, Teterwak, Wang, Sarna, Tian, Isola,
  Maschinot, Liu and Krishnan, *Supervised Contrastive Learning*, NeurIPS 2020.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignjax.losses import _batch, _kernels
from alignjax.losses import _validation as v


def info_nce_loss(
    view1: jax.typing.ArrayLike,
    view2: jax.typing.ArrayLike,
    *,
    temperature: float = 0.1,
    axis_name: str | None = None,
) -> jax.Array:
    """SimCLR's normalised temperature-scaled cross-entropy (NT-Xent).

    The ``2B`` embeddings of two views form the candidates; for anchor :math:`z_i`
    with positive :math:`z_{i^+}` (the other view of the same example),

    .. math::

        \\ell_i = -\\log \\frac{\\exp(\\cos(z_i, z_{i^+}) / T)}
        {\\sum_{k \\ne i} \\exp(\\cos(z_i, z_k) / T)},

    the denominator running over the other ``2B - 1`` embeddings.

    Args:
      view1: ``[B, d]`` embeddings of the first view.
      view2: ``[B, d]`` embeddings of the second view of the same examples.
      temperature: positive scalar ``T``.
      axis_name: inside ``jax.shard_map``/``jax.pmap`` with the batch sharded along
        this axis, the candidates are the whole (gathered) batch.

    Returns:
      ``[B]`` per-example losses: the mean of the two anchors' losses (view 1 as
      anchor and view 2 as anchor), so their mean is SimCLR's loss.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import info_nce_loss
      >>> z = jnp.eye(2)  # positives identical, negatives orthogonal, T = 1
      >>> print(info_nce_loss(z, z, temperature=1.0).round(4))  # -log(e / (e + 2))
      [0.5514 0.5514]

    References:
      Chen et al., ICML 2020 (SimCLR), Eq. 1; van den Oord, Li and Vinyals, 2018.
    """
    v.check_ndim("view1", view1, 2, "[B, d]")
    v.check_ndim("view2", view2, 2, "[B, d]")
    v.check_same_shape("view1", view1, "view2", view2)
    v.check_temperature("temperature", temperature)
    dtype = v.compute_dtype(view1, view2)
    z1 = _kernels.l2_normalize(v.as_float(view1, dtype))
    z2 = _kernels.l2_normalize(v.as_float(view2, dtype))
    all1, offset = _batch.gather_batch(z1, axis_name)
    all2, _ = _batch.gather_batch(z2, axis_name)
    n_local, n_all = z1.shape[0], all1.shape[0]
    candidates = jnp.concatenate([all1, all2], axis=0)
    rows = jnp.arange(n_local) + offset

    def anchor_loss(anchors, self_column, positive_column):
        logits = anchors @ candidates.T / temperature
        mask = self_column[:, None] != jnp.arange(2 * n_all)[None, :]
        log_p = _batch.masked_log_softmax(logits, mask)
        return -jnp.take_along_axis(log_p, positive_column[:, None], axis=1)[:, 0]

    return 0.5 * (anchor_loss(z1, rows, rows + n_all) + anchor_loss(z2, rows + n_all, rows))


def supervised_contrastive_loss(
    embeddings: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    temperature: float = 0.1,
    axis_name: str | None = None,
) -> jax.Array:
    """Supervised contrastive loss (SupCon, the "out" variant).

    With cosine similarities and :math:`P(i) = \\{p \\ne i : y_p = y_i\\}`,

    .. math::

        \\ell_i = -\\frac{1}{|P(i)|} \\sum_{p \\in P(i)} \\log
        \\frac{\\exp(\\cos(z_i, z_p) / T)}{\\sum_{k \\ne i} \\exp(\\cos(z_i, z_k) / T)};

    an anchor without positives has loss 0. For several views per example,
    concatenate the views and repeat the labels.

    Args:
      embeddings: ``[B, d]``.
      labels: ``[B]`` integer class labels.
      temperature: positive scalar ``T``.
      axis_name: inside ``jax.shard_map``/``jax.pmap`` with the batch sharded along
        this axis, positives and denominators range over the whole (gathered) batch.

    Returns:
      ``[B]`` per-anchor losses (the local anchors under ``axis_name``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import supervised_contrastive_loss
      >>> z = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> loss = supervised_contrastive_loss(z, jnp.array([0, 0, 1]), temperature=1.0)
      >>> [round(float(x), 4) for x in loss]  # -log(e / (e + 1)) twice; no positive
      [0.3133, 0.3133, 0.0]

    References:
      Khosla et al., NeurIPS 2020, Eq. 2 (L_out).
    """
    v.check_ndim("embeddings", embeddings, 2, "[B, d]")
    v.check_ndim("labels", labels, 1, "[B]")
    v.check_same_size(
        ("embeddings", "labels"),
        (jnp.shape(embeddings)[0], jnp.shape(labels)[0]),
        "The batch sizes (axis 0)",
    )
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise ValueError(
            f"`labels` must be integer class labels; got dtype {jnp.result_type(labels)}."
        )
    v.check_temperature("temperature", temperature)
    z = _kernels.l2_normalize(v.as_float(embeddings, v.compute_dtype(embeddings)))
    labels = jnp.asarray(labels)
    z_all, offset = _batch.gather_batch(z, axis_name)
    labels_all, _ = _batch.gather_batch(labels, axis_name)
    not_self = _batch.off_diagonal(z.shape[0], z_all.shape[0], offset)
    positive = (labels[:, None] == labels_all[None, :]) & not_self
    log_p = _batch.masked_log_softmax(z @ z_all.T / temperature, not_self)
    n_positive = jnp.sum(positive, axis=1)
    total = jnp.sum(jnp.where(positive, log_p, 0.0), axis=1)
    return jnp.where(n_positive > 0, -total / jnp.maximum(n_positive, 1), 0.0)
