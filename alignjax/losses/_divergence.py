"""Divergences between two softmax distributions over a triplet's three pairs.

The three logits of each distribution are passed as three broadcastable arrays, so the
same code serves ``[..., 3]`` inputs and the ``[b, b, b]`` blocks of the batch
distillation (where ``s_ij``, ``s_ik`` and ``s_jk`` are views of one matrix).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Logits3 = tuple[jax.Array, jax.Array, jax.Array]


def log_softmax3(logits: Logits3) -> tuple[Logits3, Logits3]:
    """Log-probabilities and probabilities of the softmax over three arrays."""
    a, b, c = logits
    # The shift cancels in the value and in the gradient: no need to differentiate it.
    m = jax.lax.stop_gradient(jnp.maximum(jnp.maximum(a, b), c))
    ea, eb, ec = jnp.exp(a - m), jnp.exp(b - m), jnp.exp(c - m)
    z = ea + eb + ec
    lse = m + jnp.log(z)
    inv_z = 1.0 / z
    return (a - lse, b - lse, c - lse), (ea * inv_z, eb * inv_z, ec * inv_z)


def kl(teacher_logits: Logits3, student_logits: Logits3) -> jax.Array:
    """``KL(softmax(t) || softmax(s)) = sum_k p_k (log p_k - log q_k)``."""
    log_p, p = log_softmax3(teacher_logits)
    log_q, _ = log_softmax3(student_logits)
    return sum(pk * (lpk - lqk) for pk, lpk, lqk in zip(p, log_p, log_q))


def js(teacher_logits: Logits3, student_logits: Logits3) -> jax.Array:
    """Jensen-Shannon divergence ``KL(p || m) / 2 + KL(q || m) / 2``, ``m = (p + q) / 2``."""
    log_p, p = log_softmax3(teacher_logits)
    log_q, q = log_softmax3(student_logits)
    total = 0.0
    for pk, qk, lpk, lqk in zip(p, q, log_p, log_q):
        # Where both probabilities underflow the term is 0; the floor keeps log finite.
        lmk = jnp.log(jnp.maximum(pk + qk, jnp.finfo(pk.dtype).tiny)) - math.log(2.0)
        total = total + pk * (lpk - lmk) + qk * (lqk - lmk)
    return 0.5 * total


def kl_with_grads(
    teacher_logits: Logits3, student_logits: Logits3
) -> tuple[jax.Array, Logits3, Logits3]:
    """:func:`kl` and its gradients ``p (log p - log q - KL)`` (teacher), ``q - p`` (student)."""
    log_p, p = log_softmax3(teacher_logits)
    log_q, q = log_softmax3(student_logits)
    log_ratio = tuple(lpk - lqk for lpk, lqk in zip(log_p, log_q))
    value = sum(pk * rk for pk, rk in zip(p, log_ratio))
    d_teacher = tuple(pk * (rk - value) for pk, rk in zip(p, log_ratio))
    d_student = tuple(qk - pk for pk, qk in zip(p, q))
    return value, d_teacher, d_student


def js_with_grads(
    teacher_logits: Logits3, student_logits: Logits3
) -> tuple[jax.Array, Logits3, Logits3]:
    """:func:`js` and its gradients: ``dJS/dp_k = log(p_k / m_k) / 2``, through softmax."""
    log_p, p = log_softmax3(teacher_logits)
    log_q, q = log_softmax3(student_logits)
    tiny = jnp.finfo(p[0].dtype).tiny
    log_m = tuple(jnp.log(jnp.maximum(pk + qk, tiny)) - math.log(2.0) for pk, qk in zip(p, q))
    g_p = tuple(0.5 * (lk - lmk) for lk, lmk in zip(log_p, log_m))
    g_q = tuple(0.5 * (lk - lmk) for lk, lmk in zip(log_q, log_m))
    mean_p = sum(pk * gk for pk, gk in zip(p, g_p))
    mean_q = sum(qk * gk for qk, gk in zip(q, g_q))
    d_teacher = tuple(pk * (gk - mean_p) for pk, gk in zip(p, g_p))
    d_student = tuple(qk * (gk - mean_q) for qk, gk in zip(q, g_q))
    return mean_p + mean_q, d_teacher, d_student


DIVERGENCES = {"kl": kl, "js": js}
DIVERGENCES_WITH_GRADS = {"kl": kl_with_grads, "js": js_with_grads}


def split3(x: jax.Array) -> Logits3:
    return x[..., 0], x[..., 1], x[..., 2]
