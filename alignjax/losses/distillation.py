"""Triplet distillation: divergences between teacher and student odd-one-out choices.

Each triplet defines a distribution over its three pairs, ``softmax(s / T)`` of the
pair similarities ``[s01, s02, s12]``; the student learns the teacher's distribution.

References:
  Muttenthaler, Greff, Born, Spitzer, Kornblith, Mozer, Müller, Unterthiner and
  Lampinen, *Aligning Machine and Human Visual Representations across Abstraction
  Levels*, 2024 (arXiv:2409.06509), the AligNet objective.
"""

from __future__ import annotations

import jax

from alignjax.losses import _divergence
from alignjax.losses import _validation as v


def _triplet_divergence(
    kind, teacher_similarities, student_similarities, teacher_temperature, student_temperature
) -> jax.Array:
    v.check_triplet_similarities("teacher_similarities", teacher_similarities)
    v.check_triplet_similarities("student_similarities", student_similarities)
    v.broadcast_batch_shapes(
        ("teacher_similarities", "student_similarities"),
        (teacher_similarities, student_similarities),
        (1, 1),
    )
    v.check_temperature("teacher_temperature", teacher_temperature)
    v.check_temperature("student_temperature", student_temperature)
    dtype = v.compute_dtype(teacher_similarities, student_similarities)
    t = v.as_float(teacher_similarities, dtype) / teacher_temperature
    s = v.as_float(student_similarities, dtype) / student_temperature
    return _divergence.DIVERGENCES[kind](_divergence.split3(t), _divergence.split3(s))


def triplet_kl_divergence(
    teacher_similarities: jax.typing.ArrayLike,
    student_similarities: jax.typing.ArrayLike,
    *,
    teacher_temperature: float = 1.0,
    student_temperature: float = 1.0,
) -> jax.Array:
    """KL divergence from the teacher's to the student's odd-one-out distribution.

    .. math::

        \\mathrm{KL}(p \\,\\|\\, q) = \\sum_{k=1}^{3} p_k \\log \\frac{p_k}{q_k},
        \\quad p = \\operatorname{softmax}(t / T_t),\\
        q = \\operatorname{softmax}(s / T_s).

    Args:
      teacher_similarities: ``[..., 3]`` teacher pair similarities ``[t01, t02, t12]``.
      student_similarities: ``[..., 3]`` student pair similarities, batch shape
        broadcastable with the teacher's.
      teacher_temperature: positive scalar ``T_t``.
      student_temperature: positive scalar ``T_s`` (AligNet divides raw student dot
        products by ``tau = 100``).

    Returns:
      ``[...]`` per-triplet divergences (unreduced), ``>= 0``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import triplet_kl_divergence
      >>> t = jnp.log(jnp.array([0.5, 0.25, 0.25]))
      >>> round(float(triplet_kl_divergence(t, jnp.zeros(3))), 4)  # log 3 - 1.5 log 2
      0.0589

    References:
      Muttenthaler et al., 2024 (arXiv:2409.06509), the AligNet objective.
    """
    return _triplet_divergence(
        "kl",
        teacher_similarities,
        student_similarities,
        teacher_temperature,
        student_temperature,
    )


def triplet_js_divergence(
    teacher_similarities: jax.typing.ArrayLike,
    student_similarities: jax.typing.ArrayLike,
    *,
    teacher_temperature: float = 1.0,
    student_temperature: float = 1.0,
) -> jax.Array:
    """Jensen-Shannon divergence between teacher and student odd-one-out distributions.

    .. math::

        \\mathrm{JS}(p, q) = \\tfrac12 \\mathrm{KL}(p \\,\\|\\, m)
        + \\tfrac12 \\mathrm{KL}(q \\,\\|\\, m), \\quad m = \\tfrac12 (p + q),

    with ``p = softmax(t / T_t)`` and ``q = softmax(s / T_s)``; symmetric and bounded
    by ``log 2``. The released AligNet configuration uses JS with ``T_s = 100``.

    Args:
      teacher_similarities: ``[..., 3]`` teacher pair similarities ``[t01, t02, t12]``.
      student_similarities: ``[..., 3]`` student pair similarities, batch shape
        broadcastable with the teacher's.
      teacher_temperature: positive scalar ``T_t``.
      student_temperature: positive scalar ``T_s``.

    Returns:
      ``[...]`` per-triplet divergences (unreduced), in ``[0, log 2]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.losses import triplet_js_divergence
      >>> t = jnp.array([100.0, 0.0, 0.0])  # teacher certain of pair 01
      >>> s = jnp.array([0.0, 100.0, 0.0])  # student certain of pair 02
      >>> round(float(triplet_js_divergence(t, s)), 4)  # disjoint supports: log 2
      0.6931

    References:
      Lin, *Divergence measures based on the Shannon entropy*, IEEE Trans. Inf. Theory,
      1991. Muttenthaler et al., 2024 (arXiv:2409.06509).
    """
    return _triplet_divergence(
        "js",
        teacher_similarities,
        student_similarities,
        teacher_temperature,
        student_temperature,
    )
