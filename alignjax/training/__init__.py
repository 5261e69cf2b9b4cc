"""alignjax.training: meshes, the generic sharded trainer, Orbax checkpoints.

The trainer is ``fit(model, loss_fn, batches, config) -> model`` with
``loss_fn(model, batch) -> (loss, metrics)``; it knows no paper.

- `mesh`: ``MeshConfig``, ``make_mesh``, batch and parameter shardings.
- `config`: ``TrainConfig``.
- `optimizer`: the optax chain and learning-rate schedule of a config.
- `trainer`: ``Trainer`` (the jitted sharded step) and ``fit``.
- `checkpoint`: ``Checkpointer`` (Orbax) and ``load_pretrained``.
- `metrics_writer`, `signals`, `train_state`: the parts `fit` is made of.
"""

from alignjax.training.checkpoint import Checkpointer, load_pretrained
from alignjax.training.config import TrainConfig
from alignjax.training.mesh import (
    MeshConfig,
    batch_sharding,
    make_mesh,
    shard_batch,
    state_shardings,
)
from alignjax.training.optimizer import learning_rate_schedule, make_optimizer
from alignjax.training.train_state import TrainState
from alignjax.training.trainer import Trainer, fit

__all__ = [
    "Checkpointer",
    "MeshConfig",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "batch_sharding",
    "fit",
    "learning_rate_schedule",
    "load_pretrained",
    "make_mesh",
    "make_optimizer",
    "shard_batch",
    "state_shardings",
]
