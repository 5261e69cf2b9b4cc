"""Helpers for losses that reduce over a batch, on one device or across devices.

Inside ``jax.shard_map`` or ``jax.pmap`` a batch loss sees only its local rows. It
gathers the whole batch with ``all_gather(..., tiled=True)`` (whose transpose, a
reduce-scatter, routes gradients back to the owning device) and computes the loss of
its local rows against every column; the local rows are global rows
``offset ... offset + n_local - 1``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gather_batch(x: jax.Array, axis_name) -> tuple[jax.Array, jax.Array | int]:
    """The full batch and the global index of the first local row."""
    if axis_name is None:
        return x, 0
    full = jax.lax.all_gather(x, axis_name, axis=0, tiled=True)
    return full, jax.lax.axis_index(axis_name) * x.shape[0]


def off_diagonal(n_rows: int, n_cols: int, offset) -> jax.Array:
    """``[n_rows, n_cols]`` mask, False where column == offset + row."""
    rows = jnp.arange(n_rows)[:, None] + offset
    return rows != jnp.arange(n_cols)[None, :]


def masked_log_softmax(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Row log-softmax over the entries where ``mask``; masked entries are ``-inf``."""
    return jax.nn.log_softmax(jnp.where(mask, logits, -jnp.inf), axis=-1)


def soft_cross_entropy(target_logits: jax.Array, logits: jax.Array, mask: jax.Array) -> jax.Array:
    """``-sum_j q_ij log p_ij`` per row, ``q`` and ``p`` the masked row-softmaxes."""
    target = jnp.exp(masked_log_softmax(target_logits, mask))
    # Zero the masked -inf before multiplying: 0 * -inf would poison the gradient.
    log_p = jnp.where(mask, masked_log_softmax(logits, mask), 0.0)
    return -jnp.sum(target * log_p, axis=-1)
