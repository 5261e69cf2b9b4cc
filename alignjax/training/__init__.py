"""alignjax.training: meshes, the generic sharded trainer, Orbax checkpoints.

The trainer is ``fit(model, loss_fn, batches, config) -> model`` with
``loss_fn(model, batch) -> (loss, metrics)``; it knows no paper.

- `mesh`: ``make_mesh``, batch and parameter shardings (``MeshConfig`` lives in
  :mod:`alignjax.config`).
- `optimizer`: the optax chain and learning-rate schedule of a ``TrainConfig``, and
  ``decay_to_init`` (AligNet's decay toward the pretrained weights).
- `trainer`: ``Trainer`` (the jitted sharded step) and ``fit``.
- `checkpoint`: ``Checkpointer`` (Orbax) and ``load_pretrained``.
- `signals`: ``TrainingInterrupted`` (a run stopped by SIGTERM/SIGINT before its last
  step) and the deferral of those signals until a checkpoint is written.
- `nonfinite`: ``NonFiniteLossError`` (the loss, gradient or state stopped being finite).
- `stages`: ``Stages``, the named stages of a long run (announced, timed, their times
  kept across resumes), whose names label the progress bars of `progress`.
- `metrics_writer`, `train_state`: the other parts `fit` is made of.

Names are imported on first use, so ``from alignjax.training.optimizer import
decay_to_init`` loads jax and optax only (no Orbax, no Flax trainer).
"""

import importlib

_MODULE_EXPORTS = {
    "checkpoint": ("CheckpointIntegrityError", "Checkpointer", "load_pretrained"),
    "mesh": ("batch_sharding", "make_mesh", "shard_batch", "state_shardings"),
    "nonfinite": ("NonFiniteLossError",),
    "optimizer": ("decay_to_init", "learning_rate_schedule", "make_optimizer"),
    "signals": ("TrainingInterrupted",),
    "stages": ("Stages",),
    "train_state": ("TrainState",),
    "trainer": ("Trainer", "fit"),
}
_CONFIGS = ("MeshConfig", "TrainConfig")
_EXPORTS = {name: module for module, names in _MODULE_EXPORTS.items() for name in names}

__all__ = sorted([*_EXPORTS, *_CONFIGS])


def __getattr__(name: str):
    if name in _CONFIGS:
        module = importlib.import_module("alignjax.config")
    elif name in _EXPORTS:
        module = importlib.import_module(f"alignjax.training.{_EXPORTS[name]}")
    else:
        raise AttributeError(f"module 'alignjax.training' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
