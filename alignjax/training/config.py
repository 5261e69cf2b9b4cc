"""Configuration of a training run."""

from __future__ import annotations

import dataclasses
from typing import Any

from alignjax.training.mesh import MeshConfig

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("warmup_cosine", "constant")
COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything `fit` needs besides the model, the loss and the data.

    Step counts (``num_steps``, ``warmup_steps``, ``log_every``, ...) count train
    steps, i.e. batches drawn from the data. With ``accumulation_steps = k`` the
    optimizer updates the parameters every k-th step and the learning-rate
    schedule advances once per update (``num_steps // k`` updates in total). The
    batch size is whatever the data yields (the global batch is the per-process
    batch times the number of processes).

    The trainer itself draws no random numbers: dropout keys live in the model's
    ``nnx.Rngs`` and shuffling in the data pipeline, and both are checkpointed.

    Attributes:
        num_steps: train steps of the whole run (a resumed run stops there too).
        learning_rate: peak learning rate.
        schedule: ``"warmup_cosine"`` (linear warmup from 0, cosine decay to
            ``end_learning_rate``) or ``"constant"``.
        warmup_steps: steps of linear warmup (``"warmup_cosine"`` only).
        end_learning_rate: learning rate at the last step (``"warmup_cosine"``).
        optimizer: ``"adamw"``, ``"adam"`` or ``"sgd"``.
        b1: Adam's first-moment decay.
        b2: Adam's second-moment decay.
        momentum: SGD momentum (0 is plain SGD).
        weight_decay: decoupled weight decay toward 0 (``"adamw"`` only).
        clip_norm: clip gradients to this global norm; ``None`` disables clipping.
        decay_to_init: weight ``w`` of the decoupled decay toward the initial
            parameters, ``update += w (theta - theta_init)`` (AligNet); 0 disables it.
        accumulation_steps: micro-batches whose gradients are averaged per update.
        compute_dtype: ``"float32"`` or ``"bfloat16"``; with bfloat16 the forward
            and backward pass use bfloat16 copies of the parameters and of the
            floating inputs, while parameters, gradients and optimizer state stay
            float32. Layers built with their own computation dtype (Flax's
            ``dtype=`` argument, e.g. ``ViT(..., dtype=jnp.float32)``, the
            default) promote back to it: build the model with
            ``dtype=jnp.bfloat16`` to compute in bfloat16 throughout.
        mesh: the device mesh.
        log_every: steps between metric records.
        checkpoint_every: steps between checkpoints; 0 saves only at the end (and
            on SIGTERM/SIGINT).
        keep_checkpoints: number of most recent checkpoints kept.
        eval_every: steps between calls of ``fit``'s ``evaluate`` hook; 0 calls it
            only at the end.
        workdir: directory for checkpoints (``checkpoints/``), ``metrics.jsonl``,
            TensorBoard events (``tensorboard/``) and ``train_config.json``; ``None``
            keeps nothing on disk.
        progress_bar: show a tqdm progress bar.
    """

    num_steps: int
    learning_rate: float = 1e-3
    schedule: str = "warmup_cosine"
    warmup_steps: int = 0
    end_learning_rate: float = 0.0
    optimizer: str = "adamw"
    b1: float = 0.9
    b2: float = 0.999
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip_norm: float | None = 1.0
    decay_to_init: float = 0.0
    accumulation_steps: int = 1
    compute_dtype: str = "float32"
    mesh: MeshConfig = MeshConfig()
    log_every: int = 10
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    eval_every: int = 0
    workdir: str | None = None
    progress_bar: bool = True

    def __post_init__(self):
        if isinstance(self.mesh, dict):
            object.__setattr__(self, "mesh", MeshConfig(**self.mesh))
        for name in ("num_steps", "accumulation_steps", "log_every",
                     "keep_checkpoints"):
            _check(name, getattr(self, name), getattr(self, name) >= 1, "must be >= 1")
        for name in ("warmup_steps", "checkpoint_every", "eval_every", "weight_decay",
                     "decay_to_init", "momentum"):
            _check(name, getattr(self, name), getattr(self, name) >= 0, "must be >= 0")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("compute_dtype", COMPUTE_DTYPES)):
            value = getattr(self, name)
            _check(name, value, value in allowed, f"must be one of {allowed}")
        _check("weight_decay", self.weight_decay,
               not self.weight_decay or self.optimizer == "adamw",
               f"needs optimizer='adamw', not {self.optimizer!r}")
        _check("clip_norm", self.clip_norm,
               self.clip_norm is None or self.clip_norm > 0, "must be > 0 or None")
        _check("num_steps", self.num_steps, self.num_steps >= self.accumulation_steps,
               f"is smaller than accumulation_steps={self.accumulation_steps}: no "
               "update would happen")
        _check("warmup_steps", self.warmup_steps,
               self.schedule != "warmup_cosine" or self.warmup_steps < self.num_steps,
               f"must be smaller than num_steps={self.num_steps}")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-serialisable nested dicts."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`."""
        return cls(**values)


def _check(name: str, value: Any, ok: bool, requirement: str) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{name}={value!r} {requirement}.")
