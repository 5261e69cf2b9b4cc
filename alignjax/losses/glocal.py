"""gLocal: a linear transform of frozen features, aligned globally and kept locally.

A transform ``z = x W + b`` of a model's (globally standardised) features is fitted so
that dot products of transformed features predict human odd-one-out choices (the
*global* loss) while each image's neighbourhood among other images is preserved (the
*local* loss), with a penalty keeping ``W`` close to a scaled identity.

References:
  Muttenthaler, Linhardt, Dippel, Vandermeulen, Hermann, Lampinen and Kornblith,
  *Improving neural network representations using human similarity judgments*,
  NeurIPS 2023 (arXiv:2306.04507), Section 3.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alignjax.losses import _batch, _kernels, penalties, triplet
from alignjax.losses import _validation as v

PENALTIES = {
    "scaled_identity": penalties.scaled_identity_penalty,
    "frobenius": penalties.frobenius_penalty,
}


def _affine(name: str, features, weights, bias) -> jax.Array:
    v.check_ndim("weights", weights, 2, "[p, q]")
    p, q = jnp.shape(weights)
    v.check_rank(name, features, 1)
    v.check_axis_size(name, features, -1, p, f"[..., p] with p = {p} (from `weights`)")
    if bias is not None:
        v.check_ndim("bias", bias, 1, f"[q] with q = {q} (from `weights`)")
        v.check_axis_size("bias", bias, 0, q, f"[q] with q = {q} (from `weights`)")
    dtype = v.compute_dtype(features, weights, *(() if bias is None else (bias,)))
    z = v.as_float(features, dtype) @ v.as_float(weights, dtype)
    return z if bias is None else z + v.as_float(bias, dtype)


def glocal_global_loss(
    triplet_features: jax.typing.ArrayLike,
    weights: jax.typing.ArrayLike,
    bias: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """Odd-one-out cross-entropy of human triplets on transformed features.

    .. math::

        z_i = x_i W + b, \\qquad
        \\ell = -\\log \\operatorname{softmax}([z_0 \\cdot z_1,\\ z_0 \\cdot z_2,\\
        z_1 \\cdot z_2])_0,

    dot products at temperature 1, the odd one out stored last.

    Args:
      triplet_features: ``[..., 3, p]`` features of each triplet's three images.
      weights: ``[p, q]`` transform ``W``.
      bias: optional ``[q]`` bias ``b``.

    Returns:
      ``[...]`` per-triplet losses (unreduced).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import glocal_global_loss
      >>> x = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
      >>> round(float(glocal_global_loss(x, jnp.eye(2))), 4)  # -log(e / (e + 2))
      0.5514

    References:
      Muttenthaler et al., NeurIPS 2023 (gLocal), the global loss.
    """
    v.check_rank("triplet_features", triplet_features, 2)
    v.check_axis_size("triplet_features", triplet_features, -2, 3, "[..., 3, p]")
    z = _affine("triplet_features", triplet_features, weights, bias)
    return triplet.odd_one_out_cross_entropy(triplet.triplet_similarities(z, "dot"))


def glocal_local_loss(
    teacher_features: jax.typing.ArrayLike,
    student_features: jax.typing.ArrayLike,
    *,
    temperature: float = 1.0,
    axis_name: str | None = None,
) -> jax.Array:
    """Cross-entropy between teacher and student neighbourhood distributions in a batch.

    With cosine similarities :math:`S^t` of the teacher features and :math:`S^s` of the
    student (transformed) features of the same ``B`` images,

    .. math::

        p_{ij} = \\frac{\\exp(S^t_{ij} / \\tau)}{\\sum_{k \\ne i} \\exp(S^t_{ik} / \\tau)},
        \\quad
        q_{ij} = \\frac{\\exp(S^s_{ij} / \\tau)}{\\sum_{k \\ne i} \\exp(S^s_{ik} / \\tau)},
        \\quad
        \\ell_i = -\\sum_{j \\ne i} p_{ij} \\log q_{ij}.

    The teacher's similarities do not depend on the transform: where the teacher
    features are a fixed set, compute :func:`glocal_teacher_similarities` once and call
    :func:`glocal_local_loss_from_similarities` (the same losses, without the ``B^2 p``
    teacher product on every step).

    Args:
      teacher_features: ``[B, p]`` original features.
      student_features: ``[B, q]`` transformed features of the same images.
      temperature: positive scalar ``tau`` (gLocal's grid: 1 or 0.5).
      axis_name: inside ``jax.shard_map``/``jax.pmap`` with the batch sharded along
        this axis, the rows are compared with the whole (gathered) batch.

    Returns:
      ``[B]`` per-row losses (the local rows under ``axis_name``); the gLocal local
      loss is their mean.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import glocal_local_loss
      >>> x = jnp.eye(3)  # each row sees two equally similar neighbours: log 2
      >>> print(glocal_local_loss(x, x).round(4))
      [0.6931 0.6931 0.6931]

    References:
      Muttenthaler et al., NeurIPS 2023 (gLocal), the local contrastive loss.
    """
    v.check_ndim("teacher_features", teacher_features, 2, "[B, p]")
    v.check_ndim("student_features", student_features, 2, "[B, q]")
    v.check_same_size(
        ("teacher_features", "student_features"),
        (jnp.shape(teacher_features)[0], jnp.shape(student_features)[0]),
        "The batch sizes (axis 0)",
    )
    dtype = v.compute_dtype(teacher_features, student_features)
    teacher = _kernels.l2_normalize(v.as_float(teacher_features, dtype))
    teacher_all, _ = _batch.gather_batch(teacher, axis_name)
    return glocal_local_loss_from_similarities(
        teacher @ teacher_all.T, student_features, temperature=temperature, axis_name=axis_name
    )


def glocal_teacher_similarities(teacher_features: jax.typing.ArrayLike) -> jax.Array:
    """The teacher's cosine similarities :math:`S^t` of :func:`glocal_local_loss`.

    .. math::

        S^t_{ij} = \\frac{x_i \\cdot x_j}{\\lVert x_i \\rVert\\, \\lVert x_j \\rVert}.

    Args:
      teacher_features: ``[n, p]`` features of a fixed set of local images.

    Returns:
      ``[n, n]`` cosine similarities (at least float32); the teacher similarities of a
      batch of rows ``idx`` of the set are ``S[idx][:, idx]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import glocal_teacher_similarities
      >>> print(glocal_teacher_similarities(jnp.array([[3.0, 0.0], [1.0, 1.0]])).round(4))
      [[1.     0.7071]
       [0.7071 1.    ]]
    """
    v.check_ndim("teacher_features", teacher_features, 2, "[n, p]")
    unit = _kernels.l2_normalize(v.as_float(teacher_features, v.compute_dtype(teacher_features)))
    return unit @ unit.T


def glocal_local_loss_from_similarities(
    teacher_similarities: jax.typing.ArrayLike,
    student_features: jax.typing.ArrayLike,
    *,
    temperature: float = 1.0,
    axis_name: str | None = None,
) -> jax.Array:
    """:func:`glocal_local_loss` given the teacher's cosine similarities :math:`S^t`.

    The same per-row cross-entropies, with ``S^t`` precomputed (constant for a fixed set
    of local images: :func:`glocal_teacher_similarities` once, a batch's block gathered
    on every step).

    Args:
      teacher_similarities: ``[B, B]`` teacher cosine similarities of the batch; under
        ``axis_name``, ``[B_local, B]``: this device's rows against the whole batch.
      student_features: ``[B, q]`` transformed features of the same images (this
        device's rows under ``axis_name``).
      temperature: positive scalar ``tau``.
      axis_name: inside ``jax.shard_map``/``jax.pmap``, the batch's axis.

    Returns:
      ``[B]`` per-row losses (the local rows under ``axis_name``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import glocal_local_loss_from_similarities
      >>> x = jnp.eye(3)
      >>> print(glocal_local_loss_from_similarities(x @ x.T, x).round(4))
      [0.6931 0.6931 0.6931]

    References:
      Muttenthaler et al., NeurIPS 2023 (gLocal), the local contrastive loss.
    """
    v.check_ndim("student_features", student_features, 2, "[B, q]")
    v.check_ndim("teacher_similarities", teacher_similarities, 2, "[B, B]")
    v.check_temperature("temperature", temperature)
    dtype = v.compute_dtype(teacher_similarities, student_features)
    student = _kernels.l2_normalize(v.as_float(student_features, dtype))
    student_all, offset = _batch.gather_batch(student, axis_name)
    _check_batch_of_two("student_features", student_all.shape[0])
    expected = (student.shape[0], student_all.shape[0])
    if jnp.shape(teacher_similarities) != expected:
        raise ValueError(
            "`teacher_similarities` must be [B, B] for the batch of B = "
            f"{expected[1]} student rows ([B_local, B] = {list(expected)} under `axis_name`); "
            f"got shape {jnp.shape(teacher_similarities)}."
        )
    mask = _batch.off_diagonal(*expected, offset)
    return _batch.soft_cross_entropy(
        v.as_float(teacher_similarities, dtype) / temperature,
        student @ student_all.T / temperature,
        mask,
    )


def _check_batch_of_two(name: str, batch: int) -> None:
    if batch < 2:
        raise ValueError(
            f"`{name}` must hold at least 2 items (each row needs a neighbour); got a "
            f"batch of {batch}."
        )


def glocal_objective(
    weights: jax.typing.ArrayLike,
    bias: jax.typing.ArrayLike | None,
    triplet_features: jax.typing.ArrayLike,
    local_features: jax.typing.ArrayLike | None,
    *,
    alpha: float,
    penalty_weight: float,
    temperature: float = 1.0,
    penalty: str = "scaled_identity",
    axis_name: str | None = None,
    teacher_similarities: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    """The gLocal objective ``(1 - alpha) global + alpha local + lambda R(W)``.

    .. math::

        \\mathcal L(W, b) = (1 - \\alpha)\\, \\overline{\\ell_{global}}
        + \\alpha\\, \\overline{\\ell_{local}} + \\lambda\\, R(W),

    with the means of :func:`glocal_global_loss` over the triplets and of
    :func:`glocal_local_loss` over the local batch (teacher: ``local_features``;
    student: ``local_features W + b``), and ``R`` the scaled-identity penalty (gLocal)
    or the Frobenius norm (the naive baseline: ``penalty="frobenius"``,
    ``alpha=0``).

    Args:
      weights: ``[p, q]`` transform ``W`` (gLocal initialises ``1e-3 I``).
      bias: optional ``[q]`` bias ``b`` (``None`` for none).
      triplet_features: ``[n, 3, p]`` features of the human triplets' images (odd one
        out last).
      local_features: ``[B, p]`` features of a batch of other images, or ``None``
        for no local term (then ``alpha`` must be 0).
      alpha: weight of the local term, in ``[0, 1]`` (gLocal's grid: 0.25, 0.1).
      penalty_weight: ``lambda >= 0`` (gLocal's grid: 10, 1, 0.1).
      temperature: ``tau`` of the local loss.
      penalty: ``"scaled_identity"`` or ``"frobenius"``.
      axis_name: inside ``jax.shard_map``/``jax.pmap`` with the triplets and the
        local batch sharded along this axis: the local loss compares with the whole
        batch and both means are taken over all devices.
      teacher_similarities: optional ``[B, B]`` cosine similarities of
        ``local_features`` (:func:`glocal_teacher_similarities`; ``[B_local, B]`` under
        ``axis_name``), precomputed since they do not depend on ``W`` and ``b``;
        ``None`` computes them.

    Returns:
      A scalar (the same on every device under ``axis_name``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import glocal_objective
      >>> x = jnp.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
      >>> loss = glocal_objective(jnp.eye(2), None, x, None, alpha=0.0,
      ...                         penalty_weight=1.0)
      >>> round(float(loss), 4)  # global loss only: W = I has no penalty
      0.5514

    References:
      Muttenthaler et al., NeurIPS 2023 (gLocal), the objective.
    """
    v.check_choice("penalty", penalty, tuple(PENALTIES))
    v.check_ndim("triplet_features", triplet_features, 3, "[n, 3, p]")
    for name, value in (("alpha", alpha), ("penalty_weight", penalty_weight)):
        if jnp.ndim(value) != 0:
            raise ValueError(f"`{name}` must be a scalar; got shape {jnp.shape(value)}.")
    v.check_non_negative("penalty_weight", penalty_weight)
    if v.is_concrete(alpha) and not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"`alpha` must lie in [0, 1]; got {float(alpha):.6g}.")
    if local_features is None and not (v.is_concrete(alpha) and float(alpha) == 0.0):
        raise ValueError(
            "`local_features` is None, so there is no local term: `alpha` must be 0; "
            f"got {alpha!r}."
        )
    global_term = jnp.mean(glocal_global_loss(triplet_features, weights, bias))
    if axis_name is not None:
        global_term = jax.lax.pmean(global_term, axis_name)
    objective = (1.0 - alpha) * global_term
    if local_features is not None:
        v.check_ndim("local_features", local_features, 2, "[B, p]")
        student = _affine("local_features", local_features, weights, bias)
        if teacher_similarities is None:
            local = glocal_local_loss(
                local_features, student, temperature=temperature, axis_name=axis_name
            )
        else:
            local = glocal_local_loss_from_similarities(
                teacher_similarities, student, temperature=temperature, axis_name=axis_name
            )
        local_term = jnp.mean(local)
        if axis_name is not None:
            local_term = jax.lax.pmean(local_term, axis_name)
        objective = objective + alpha * local_term
    return objective + penalty_weight * PENALTIES[penalty](weights)
