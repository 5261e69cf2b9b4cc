"""Similarity kernels shared by the losses: ``dot`` and ``cosine``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Norms below this are treated as this (a zero vector has cosine similarity 0, not NaN).
_MIN_NORM = 1e-12


def l2_normalize(x: jax.Array) -> jax.Array:
    """``x / max(||x||, eps)`` along the last axis, with finite gradients at zero."""
    squared = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(squared, _MIN_NORM**2))


def prepare(x: jax.Array, kernel: str) -> jax.Array:
    """Features whose dot products are the ``kernel`` similarities."""
    return l2_normalize(x) if kernel == "cosine" else x


def pairwise(x: jax.Array, y: jax.Array, kernel: str) -> jax.Array:
    """``[n, d] x [m, d] -> [n, m]`` similarity matrix."""
    return prepare(x, kernel) @ prepare(y, kernel).T
