"""The optax optimizer and learning-rate schedule of a `TrainConfig`.

The chain, in the order the gradient flows through it::

        clip_by_global_norm(clip_norm)          # optional
        scale_by_adam(b1, b2) | trace(momentum) # adam/adamw | sgd
        add_decayed_weights(weight_decay)       # adamw, decoupled decay toward 0
        decay_to_init(w)                        # optional, decoupled decay toward init
        scale_by_learning_rate(schedule)
        wrapped in MultiSteps(k)                # optional gradient accumulation

Both decays sit after the Adam normalisation, as in AdamW: the pull toward the
initial (pretrained) parameters is ``-lr * w * (theta - theta_init)`` whatever the
gradient scale, which is how AligNet keeps a student near its pretrained weights.

References:
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    Muttenthaler et al., "Aligning Machine and Human Visual Representations across
    Abstraction Levels", 2024 (arXiv:2409.06509).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from alignjax.config import TrainConfig


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
      >>> from alignjax.training.optimizer import decay_to_init
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


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    """Learning rate as a function of the optimizer update count.

    Both warmup schedules rise linearly from ``warmup_start * learning_rate`` to
    ``learning_rate`` over ``t_w = warmup_steps // accumulation_steps`` updates.
    ``"warmup_cosine"`` then follows a half cosine down to ``end_learning_rate`` at
    the last update ``T = num_steps // accumulation_steps``:

    .. math::
        \\eta_t = \\eta_{end} + \\tfrac12 (\\eta - \\eta_{end})
            (1 + \\cos(\\pi \\tfrac{t - t_w}{T - t_w})), \\quad t_w \\le t \\le T;

    ``"warmup_constant"`` stays at ``learning_rate`` (the released gLocal code ramps
    from ``lr / 3`` to ``lr`` over its run and then stops: ``warmup_start=1/3``).

    Example:
        >>> config = TrainConfig(num_steps=100, learning_rate=1.0, warmup_steps=10)
        >>> schedule = learning_rate_schedule(config)
        >>> float(schedule(5)), float(schedule(10)), float(schedule(100))
        (0.5, 1.0, 0.0)
        >>> config = TrainConfig(num_steps=100, learning_rate=3.0, warmup_steps=10,
        ...                      schedule="warmup_constant", warmup_start=1 / 3)
        >>> [round(float(learning_rate_schedule(config)(t)), 3) for t in (0, 5, 10, 90)]
        [1.0, 2.0, 3.0, 3.0]
    """
    if config.schedule == "constant":
        return optax.constant_schedule(config.learning_rate)
    k = config.accumulation_steps
    start = config.warmup_start * config.learning_rate
    if config.schedule == "warmup_constant":
        return optax.linear_schedule(start, config.learning_rate, config.warmup_steps // k)
    return optax.warmup_cosine_decay_schedule(
        init_value=start,
        peak_value=config.learning_rate,
        warmup_steps=config.warmup_steps // k,
        decay_steps=config.num_steps // k,
        end_value=config.end_learning_rate,
    )


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Builds the optax chain described by ``config``.

    ``decay_to_init`` pulls toward the parameters the optimizer is *initialised*
    with (``tx.init(theta_init)``); the other parts of the chain only take shapes
    from them, so `Trainer` initialises it with the model's starting parameters,
    or with explicit ``init_params``.

    Args:
        config: the training configuration.

    Returns:
        An optax transformation; its ``update`` needs ``params`` when
        ``config.decay_to_init`` or ``config.weight_decay`` is set.

    Example:
        >>> import jax.numpy as jnp
        >>> config = TrainConfig(num_steps=10, optimizer="sgd", schedule="constant",
        ...                      learning_rate=0.5, clip_norm=None)
        >>> tx = make_optimizer(config)
        >>> params = {"w": jnp.ones(2)}
        >>> updates, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
        >>> updates["w"].tolist()
        [-0.5, -0.5]
    """
    parts = []
    if config.clip_norm is not None:
        parts.append(optax.clip_by_global_norm(config.clip_norm))
    if config.optimizer == "sgd":
        if config.momentum:
            parts.append(optax.trace(decay=config.momentum))
    else:
        parts.append(optax.scale_by_adam(b1=config.b1, b2=config.b2))
    if config.weight_decay:
        parts.append(optax.add_decayed_weights(config.weight_decay))
    if config.decay_to_init:
        parts.append(decay_to_init(config.decay_to_init))
    parts.append(optax.scale_by_learning_rate(learning_rate_schedule(config)))
    tx = optax.chain(*parts)
    if config.accumulation_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=config.accumulation_steps)
    return tx
