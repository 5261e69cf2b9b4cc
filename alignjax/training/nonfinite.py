"""Stopping a run whose loss, gradients or state stop being finite numbers.

Once a NaN or an infinity enters the parameters, every later step is wasted and
every later checkpoint useless, so `fit` stops with `NonFiniteLossError`. Testing
each step on the host would wait for every step to finish; instead the per-step
loss (and, on logging steps, the gradient norm), which the train step returns
anyway, stay on the device until `fit` fetches them (every ``log_every`` steps
and before each checkpoint) and are examined then. The first bad loss is still
found exactly, and a checkpoint is written (or a model returned) only of a state
whose every floating array is finite, so the last good checkpoint is never
replaced by a bad one."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

# The per-step metrics that must stay finite: the loss, and the global gradient
# norm, which is not finite as soon as one gradient element is not (a finite loss
# can still have an infinite gradient, which the update carries into the parameters).
CHECKED_METRICS = {"loss": "loss", "grad_norm": "gradient norm"}


class NonFiniteLossError(FloatingPointError):
    """The loss (or the gradient, or the train state) became NaN or infinite.

    Attributes:
        step: the first step whose value was not finite.
        num_steps: train steps of the whole run.
        checkpoint_step: step of the last (good) checkpoint kept, or ``None``.
    """

    def __init__(
        self,
        step: int,
        num_steps: int,
        checkpoint_step: int | None,
        *,
        quantity: str = "loss",
        value: str = "nan",
    ):
        kept = (
            "no checkpoint was written"
            if checkpoint_step is None
            else f"the last good checkpoint (step {checkpoint_step}) is kept"
        )
        super().__init__(
            f"the {quantity} became {value} at step {step} of {num_steps}; {kept}; "
            "lower the learning rate or check the inputs"
        )
        self.step = step
        self.num_steps = num_steps
        self.checkpoint_step = checkpoint_step


def first_nonfinite(metrics: Sequence[Mapping[str, float]]) -> tuple[int, str, str] | None:
    """The first record of per-step ``metrics`` with a non-finite checked metric.

    Args:
        metrics: one mapping per step, on the host, holding some of
            ``CHECKED_METRICS`` (the loss always, the gradient norm on logging
            steps).

    Returns:
        ``(index, quantity, value)`` of the first bad step, e.g.
        ``(3, "loss", "nan")``, or ``None`` if every value is finite.
    """
    for index, record in enumerate(metrics):
        for name, quantity in CHECKED_METRICS.items():
            if name not in record:
                continue
            value = float(record[name])
            if not math.isfinite(value):
                return index, quantity, str(value)
    return None


@jax.jit
def _all_finite(leaves: list[jax.Array]) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def all_finite(tree: Any) -> bool:
    """Whether every floating-point array of ``tree`` is finite (one device pass)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return not leaves or bool(_all_finite(leaves))
