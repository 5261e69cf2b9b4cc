"""The arrays a training run carries from one step to the next."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax


class TrainState(NamedTuple):
    """Everything that changes during training, as a pytree of arrays.

    The model's structure (its ``nnx.GraphDef``) is static and kept apart; the
    arrays are split into the trained parameters and the model's other variables
    (dropout RNG keys and counters, batch statistics), both as pure ``nnx.State``
    (arrays, no ``nnx.Variable`` wrappers).

    Attributes:
        step: ``int32`` scalar, train steps done.
        params: the ``nnx.Param`` variables of the model.
        model_state: the model's other variables.
        opt_state: the optax state.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: optax.OptState


def abstract_state(state: Any, shardings: Any) -> Any:
    """``jax.ShapeDtypeStruct`` leaves of ``state``, placed by ``shardings``.

    The target of an Orbax restore: shapes and dtypes from ``state``, the layout
    from ``shardings`` (a pytree of ``jax.sharding.Sharding`` like ``state``).
    """
    return jax.tree.map(
        lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
        state,
        shardings,
    )
