"""Optax transformations used by alignjax: ``decay_to_init``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class DecayToInitState(NamedTuple):
    """State of :func:`decay_to_init`: the parameters decayed toward."""

    init_params: optax.Params


def decay_to_init(
    weight: float | jax.Array, init_params: optax.Params | None = None
) -> optax.GradientTransformation:
    """Decoupled weight decay toward the initial (pretrained) parameters.

    .. math:: u \\leftarrow u + w\\, (\\theta - \\theta_{init})

    Like AdamW's decoupled decay (``optax.add_decayed_weights``) but toward
    :math:`\\theta_{init}` instead of 0: fine-tuning may move the parameters only as
    far as the loss pays for. Place it after the gradient preconditioner and before
    the learning rate, e.g. ``optax.chain(optax.scale_by_adam(), decay_to_init(1.0),
    optax.scale_by_learning_rate(schedule))``.

    Args:
      weight: decay strength ``w`` (AligNet uses 1.0), a non-negative scalar.
      init_params: the parameters to decay toward; ``None`` means the parameters
        passed to ``init``. They must have the structure and shapes of the
        parameters.

    Returns:
      An ``optax.GradientTransformation`` whose ``update`` requires ``params``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> from alignjax.optim import decay_to_init
      >>> tx = decay_to_init(0.5)
      >>> state = tx.init({"w": jnp.array(1.0)})
      >>> updates, _ = tx.update({"w": jnp.array(0.0)}, state, {"w": jnp.array(3.0)})
      >>> float(updates["w"])  # 0 + 0.5 * (3 - 1)
      1.0

    References:
      Muttenthaler et al., *Aligning Machine and Human Visual Representations across
      Abstraction Levels*, 2024 (arXiv:2409.06509), the student objective.
      Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    if jnp.ndim(weight) != 0:
        raise ValueError(f"`weight` must be a scalar; got shape {jnp.shape(weight)}.")
    if not isinstance(weight, jax.core.Tracer) and not float(weight) >= 0.0:
        raise ValueError(f"`weight` must be non-negative; got {float(weight):.6g}.")

    def init_fn(params: optax.Params) -> DecayToInitState:
        if init_params is None:
            return DecayToInitState(init_params=params)
        _check_same_tree(params, init_params)
        return DecayToInitState(init_params=init_params)

    def update_fn(
        updates: optax.Updates,
        state: DecayToInitState,
        params: optax.Params | None = None,
    ) -> tuple[optax.Updates, DecayToInitState]:
        if params is None:
            raise ValueError(
                "decay_to_init needs the current parameters: call "
                "`tx.update(updates, state, params)` (nnx.Optimizer does this)."
            )
        updates = jax.tree.map(
            lambda u, p, p0: None if u is None else u + weight * (p - p0),
            updates,
            params,
            state.init_params,
            is_leaf=lambda x: x is None,
        )
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def _check_same_tree(params: Any, init_params: Any) -> None:
    structure, init_structure = jax.tree.structure(params), jax.tree.structure(init_params)
    if structure != init_structure:
        raise ValueError(
            f"`init_params` must have the structure of the parameters; got "
            f"{init_structure} for parameters {structure}."
        )
    for path_and_p, p0 in zip(
        jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(init_params)
    ):
        path, p = path_and_p
        if jnp.shape(p) != jnp.shape(p0):
            raise ValueError(
                f"`init_params` leaf {jax.tree_util.keystr(path)} must have shape "
                f"{jnp.shape(p)}; got {jnp.shape(p0)}."
            )
