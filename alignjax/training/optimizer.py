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

import optax

from alignjax.optim import decay_to_init
from alignjax.training.config import TrainConfig


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    """Learning rate as a function of the optimizer update count.

    ``"warmup_cosine"`` rises linearly from 0 to ``learning_rate`` over the warmup
    and follows a half cosine down to ``end_learning_rate`` at the last update:

    .. math::
        \\eta_t = \\eta_{end} + \\tfrac12 (\\eta - \\eta_{end})
            (1 + \\cos(\\pi \\tfrac{t - t_w}{T - t_w})), \\quad t_w \\le t \\le T

    with ``T = num_steps // accumulation_steps`` updates and
    ``t_w = warmup_steps // accumulation_steps``.

    Example:
        >>> config = TrainConfig(num_steps=100, learning_rate=1.0, warmup_steps=10)
        >>> schedule = learning_rate_schedule(config)
        >>> float(schedule(5)), float(schedule(10)), float(schedule(100))
        (0.5, 1.0, 0.0)
    """
    if config.schedule == "constant":
        return optax.constant_schedule(config.learning_rate)
    k = config.accumulation_steps
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
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
