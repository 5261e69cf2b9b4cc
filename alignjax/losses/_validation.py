"""Input checks shared by every loss in :mod:`alignjax.losses`.

Shape checks are static and therefore run under ``jax.jit`` too. Value checks (a
temperature is positive, probabilities are non-negative and sum to one) need the
values, so they run only when the input is concrete (a Python number, a NumPy array or
an un-traced ``jax.Array``); inside ``jit``/``grad``/``vmap`` they are skipped.
Every failure raises ``ValueError`` naming the argument and what it received.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

KERNELS = ("dot", "cosine")
DIVERGENCES = ("kl", "js")
PROBABILITY_ATOL = 1e-3


def is_concrete(x) -> bool:
    """Whether ``x`` holds values (not a tracer inside a JAX transformation)."""
    return not isinstance(x, jax.core.Tracer)


def compute_dtype(*arrays) -> jnp.dtype:
    """The floating dtype to compute in: at least float32, float64 if an input is."""
    dtype = jnp.result_type(*arrays, jnp.float32)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.float32
    return jnp.dtype(dtype)


def as_float(x, dtype) -> jax.Array:
    return jnp.asarray(x).astype(dtype)


def check_rank(name: str, x, min_rank: int) -> None:
    if jnp.ndim(x) < min_rank:
        raise ValueError(
            f"`{name}` must have at least {min_rank} dimension(s); got shape {jnp.shape(x)}."
        )


def check_ndim(name: str, x, ndim: int, layout: str) -> None:
    if jnp.ndim(x) != ndim:
        raise ValueError(f"`{name}` must have shape {layout}; got shape {jnp.shape(x)}.")


def check_same_shape(name_a: str, a, name_b: str, b) -> None:
    """Checks that ``a`` and ``b`` (e.g. two views of one batch) have one shape."""
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape; got {jnp.shape(a)} and "
            f"{jnp.shape(b)}."
        )


def check_axis_size(name: str, x, axis: int, size: int, layout: str) -> None:
    """Checks that ``x.shape[axis] == size``; ``layout`` names the expected shape."""
    shape = jnp.shape(x)
    if len(shape) < (axis + 1 if axis >= 0 else -axis) or shape[axis] != size:
        raise ValueError(
            f"`{name}` must have shape {layout} (axis {axis} of size {size}); got shape {shape}."
        )


def check_same_size(names: Sequence[str], sizes: Sequence[int], what: str) -> None:
    if len(set(sizes)) > 1:
        got = ", ".join(f"`{n}`: {s}" for n, s in zip(names, sizes))
        raise ValueError(f"{what} must agree; got {got}.")


def broadcast_batch_shapes(
    names: Sequence[str], arrays: Sequence, core_ndims: Sequence[int]
) -> tuple[int, ...]:
    """The broadcast of the leading (batch) shapes; raises if they do not broadcast.

    ``core_ndims[i]`` trailing axes of ``arrays[i]`` are its core (1 for ``[..., K]``).
    """
    batch_shapes = [tuple(jnp.shape(a))[: jnp.ndim(a) - c] for a, c in zip(arrays, core_ndims)]
    try:
        return tuple(np.broadcast_shapes(*batch_shapes))
    except ValueError:
        got = ", ".join(f"`{n}`: {tuple(jnp.shape(a))}" for n, a in zip(names, arrays))
        raise ValueError(
            f"Batch shapes of {', '.join(f'`{n}`' for n in names)} do not broadcast; got {got}."
        ) from None


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}; got {value!r}.")


def check_positive(name: str, value) -> None:
    """Checks ``value > 0`` (all entries) when it is concrete."""
    if is_concrete(value):
        v = np.asarray(value, dtype=np.float64)
        if not np.all(v > 0):
            raise ValueError(f"`{name}` must be positive; got {_show(v)}.")


def check_non_negative(name: str, value) -> None:
    """Checks ``value >= 0`` (all entries) when it is concrete."""
    if is_concrete(value):
        v = np.asarray(value, dtype=np.float64)
        if not np.all(v >= 0):
            raise ValueError(f"`{name}` must be non-negative; got {_show(v)}.")


def check_temperature(name: str, temperature) -> None:
    """A temperature is a positive scalar (the sign is checked when concrete)."""
    if jnp.ndim(temperature) != 0:
        raise ValueError(f"`{name}` must be a scalar; got shape {jnp.shape(temperature)}.")
    check_positive(name, temperature)


def check_triplet_similarities(name: str, similarities) -> None:
    check_rank(name, similarities, 1)
    check_axis_size(name, similarities, -1, 3, "[..., 3] (pair similarities [s01, s02, s12])")


def check_probabilities(name: str, p, axis: int = -1) -> None:
    """When concrete: ``p >= 0`` and ``sum(p, axis) == 1`` within ``PROBABILITY_ATOL``."""
    if not is_concrete(p):
        return
    v = np.asarray(p, dtype=np.float64)
    if np.any(v < 0) or np.any(np.isnan(v)):
        raise ValueError(
            f"`{name}` must be non-negative probabilities; got minimum {np.min(v):.6g} "
            f"(shape {v.shape})."
        )
    _check_sums_to_one(name, v.sum(axis=axis), axis, v.shape, "")


def check_log_probabilities(name: str, log_p, axis: int = -1) -> None:
    """When concrete: ``sum(exp(log_p), axis) == 1`` within ``PROBABILITY_ATOL``."""
    if not is_concrete(log_p):
        return
    v = np.asarray(log_p, dtype=np.float64)
    if np.any(np.isnan(v)):
        raise ValueError(f"`{name}` must be log-probabilities; got NaN (shape {v.shape}).")
    _check_sums_to_one(name, np.exp(v).sum(axis=axis), axis, v.shape, "exponentials of ")


def _check_sums_to_one(name: str, sums, axis: int, shape, what: str) -> None:
    sums = np.atleast_1d(sums)
    if not sums.size:
        return
    worst = sums.flat[np.argmax(np.abs(sums - 1.0))]
    if abs(worst - 1.0) > PROBABILITY_ATOL:
        raise ValueError(
            f"The {what}`{name}` must sum to one along axis {axis} (tolerance "
            f"{PROBABILITY_ATOL}); got a sum of {worst:.6g} (shape {shape})."
        )


def _show(v: np.ndarray) -> str:
    if v.size == 1:
        return f"{v.item():.6g}"
    return f"an array of shape {v.shape} with minimum {np.nanmin(v):.6g}"
