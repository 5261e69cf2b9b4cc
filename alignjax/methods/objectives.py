r"""Representation-learning objectives: generative similarity and its baselines.

Marjieh et al. (2024) define the similarity of two items by a Bayesian generative model
``theta ~ p(theta)``, ``x ~ p(x | theta)``:

.. math::

    s_{gen}(x_1, x_2) = \frac{p(x_1, x_2 \mid \text{same } \theta)}{p(x_1)\, p(x_2)},

and learn an embedding ``f`` whose similarities follow it. Where ``s_gen`` is intractable
they sample triplets (anchor and positive from one ``theta``, negative from an
independent ``theta'``) and minimise the softmax triplet loss
``-log sigma(f(a).f(p) - f(a).f(n))``, whose Bayes-optimal critic is
``log s_gen(a, b) + c(a)``. The objectives here, each trained by the generic trainer on a
seeded Grain stream:

- ``"gensim"``: that triplet loss on the world's generative-similarity triplets;
- ``"gensim_nce"``: the same Monte Carlo samples with many negatives: each triplet's
  anchor and positive (one ``theta``) form a pair, and every pair is contrasted with the
  other pairs of the batch (independent ``theta``'s;
  ``losses.generative_similarity_info_nce_loss``). Its optimal critic is the same
  ``log s_gen`` (plus a constant), learned from ``B - 1`` negatives per anchor instead
  of one; on the quadrilaterals the triplet loss learns the property classes far more
  slowly (see ``experiments/README.md``);
- ``"gensim_contrastive"``: where ``s_gen`` is computable, the soft-target batch
  contrastive loss whose targets are the batch-normalised exact ``s_gen`` of every pair
  of a batch of items (``losses.generative_similarity_contrastive_loss``); the world
  gives ``log s_gen`` as a table over its latent labels (:attr:`Sources.log_similarity`);
- ``"simclr"``: InfoNCE between two augmented views of one item (Chen et al. 2020);
- ``"supcon"``: supervised contrastive learning on category labels (Khosla et al. 2020);
- ``"untrained"``: the encoder at initialisation.

A world enters through :class:`Sources`: samplers ``fn(rng, n)`` of ``n`` examples that
draw only from the ``numpy.random.Generator`` they are given (so streams are
deterministic whatever the thread count), such as a :class:`~alignjax.data.world.World`'s
``sample`` and ``sample_triplets``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable
from typing import Literal

import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignjax import losses
from alignjax.config import ConfigError, checked, configclass
from alignjax.data import pipeline
from alignjax.models import encoders
from alignjax.training import TrainConfig, fit

Objective = Literal["gensim", "gensim_nce", "gensim_contrastive", "simclr", "supcon", "untrained"]
OBJECTIVES: tuple[Objective, ...] = (
    "gensim",
    "gensim_nce",
    "gensim_contrastive",
    "simclr",
    "supcon",
    "untrained",
)
#: The objectives that learn generative similarity (the methods; the rest are baselines).
GENSIM_OBJECTIVES: tuple[Objective, ...] = ("gensim", "gensim_nce", "gensim_contrastive")
Example = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Sources:
    """What a world provides to the objectives: vectorised samplers of ``n`` examples.

    Attributes:
      triplets: ``fn(rng, n) -> {"inputs": [n, 3, ...]}``: anchor and positive from one
        ``theta``, the negative from an independent draw.
      items: ``fn(rng, n) -> {"inputs": [n, ...], "labels": [n]}``: items and their
        categories (the supervised-contrastive labels); with ``log_similarity`` also
        ``"latents": int [n]``, each item's latent label (a row of the table).
      augment: ``fn(rng, item) -> item``: one random view of one item (SimCLR).
      log_similarity: ``[K, K]`` exact ``log s_gen`` between items of latent labels
        ``0..K-1``, for worlds whose ``s_gen`` depends on the items only through such
        a label (e.g. the leaf of a category tree); ``None`` where it is not
        computable. Needed by ``"gensim_contrastive"``.
    """

    triplets: Callable[[np.random.Generator, int], Example]
    items: Callable[[np.random.Generator, int], Example]
    augment: Callable[[np.random.Generator, np.ndarray], np.ndarray]
    log_similarity: np.ndarray | None = None


@configclass
class ObjectiveConfig:
    """Hyperparameters of the objectives.

    Attributes:
      batch_size: triplets (gensim), pairs (gensim_nce), items (supcon, gensim_contrastive)
        or view pairs (simclr) per step.
      gensim_kernel: similarity of the generative-similarity losses (triplet,
        many-negatives and soft-target), ``"dot"`` or ``"cosine"``.
      gensim_temperature: temperature of the generative-similarity losses.
      contrastive_temperature: temperature of SimCLR's InfoNCE and SupCon (cosine
        similarities).
      num_threads: Grain threads generating examples (0: in the training thread).
      examples_per_call: examples generated per call of a world's vectorised sampler
        (a divisor of ``batch_size``; see ``pipeline.example_stream``).
    """

    batch_size: int = checked(64, ge=1)
    gensim_kernel: Literal["dot", "cosine"] = "dot"
    gensim_temperature: float = checked(1.0, gt=0)
    contrastive_temperature: float = checked(0.1, gt=0)
    num_threads: int = checked(2, ge=0)
    examples_per_call: int = checked(16, ge=1)

    def __post_init__(self):
        if self.batch_size % self.examples_per_call:
            raise ConfigError(
                f"={self.batch_size!r}: must be a multiple of "
                f"examples_per_call={self.examples_per_call}",
                "batch_size",
            )


def check_objectives(names: tuple[str, ...]) -> None:
    """Raises ``ValueError`` unless ``names`` is a non-empty subset of :data:`OBJECTIVES`."""
    unknown = [name for name in names if name not in OBJECTIVES]
    if unknown or not names:
        raise ValueError(f"objectives must be a non-empty subset of {OBJECTIVES}, got {names!r}")


def similarity_kernel(objective: Objective, config: ObjectiveConfig) -> Literal["dot", "cosine"]:
    """The similarity an encoder trained with ``objective`` is meant to express.

    SimCLR and SupCon compare cosine similarities, so their embeddings are judged by
    cosine; the generative-similarity losses by their configured kernel; the untrained
    encoder by cosine.
    """
    return config.gensim_kernel if objective in GENSIM_OBJECTIVES else "cosine"


def pair_similarity(fx: np.ndarray, fy: np.ndarray, kernel: Literal["dot", "cosine"]) -> np.ndarray:
    """Row-wise similarity of embeddings ``[n, d]`` and ``[n, d]``: ``[n]``."""
    if kernel == "cosine":
        fx = fx / np.linalg.norm(fx, axis=-1, keepdims=True)
        fy = fy / np.linalg.norm(fy, axis=-1, keepdims=True)
    return (fx * fy).sum(-1)


def _flat_embed(model: nnx.Module, inputs: jnp.ndarray, group: int) -> jnp.ndarray:
    """Embeds ``[B, group, ...]`` inputs as one batch: ``[B, group, d]``."""
    batch = inputs.shape[0]
    z = model(inputs.reshape(batch * group, *inputs.shape[2:]))
    return z.reshape(batch, group, -1)


def loss_function(
    objective: Objective, config: ObjectiveConfig, *, log_similarity: np.ndarray | None = None
):
    """``loss_fn(model, batch) -> (loss, metrics)`` of ``objective`` for the trainer.

    ``log_similarity`` (``[K, K]``, see :class:`Sources`) is required by
    ``"gensim_contrastive"``, whose batches carry each item's ``"latents"``: the
    targets of the batch are the table's ``[B, B]`` block of those labels.
    """
    if objective == "gensim_contrastive":
        table = _check_log_similarity(log_similarity)

        def gensim_contrastive_loss(model, batch):
            latents = batch["latents"]
            loss = losses.generative_similarity_contrastive_loss(
                model(batch["inputs"]),
                table[latents[:, None], latents[None, :]],
                temperature=config.gensim_temperature,
                kernel=config.gensim_kernel,
            )
            return loss.mean(), {}

        return gensim_contrastive_loss
    if objective == "gensim":

        def gensim_loss(model, batch):
            z = _flat_embed(model, batch["inputs"], 3)
            loss = losses.generative_similarity_softmax_loss(
                z, kernel=config.gensim_kernel, temperature=config.gensim_temperature
            )
            s = losses.triplet_similarities(z, kernel=config.gensim_kernel)
            return loss.mean(), {"triplet_accuracy": (s[:, 0] > s[:, 1]).mean()}

        return gensim_loss
    if objective == "gensim_nce":

        def gensim_nce_loss(model, batch):
            z = _flat_embed(model, batch["inputs"], 2)
            loss = losses.generative_similarity_info_nce_loss(
                z[:, 0], z[:, 1], kernel=config.gensim_kernel, temperature=config.gensim_temperature
            )
            return loss.mean(), {}

        return gensim_nce_loss
    if objective == "simclr":

        def simclr_loss(model, batch):
            z = _flat_embed(model, batch["views"], 2)
            loss = losses.info_nce_loss(
                z[:, 0], z[:, 1], temperature=config.contrastive_temperature
            )
            return loss.mean(), {}

        return simclr_loss
    if objective == "supcon":

        def supcon_loss(model, batch):
            loss = losses.supervised_contrastive_loss(
                model(batch["inputs"]), batch["labels"], temperature=config.contrastive_temperature
            )
            return loss.mean(), {}

        return supcon_loss
    raise ValueError(f"objective must be one of {OBJECTIVES[:-1]} to train, got {objective!r}")


def _check_log_similarity(log_similarity: np.ndarray | None) -> jnp.ndarray:
    if log_similarity is None:
        raise ValueError(
            "objective 'gensim_contrastive' needs an exact s_gen table: Sources.log_similarity "
            "(or loss_function's log_similarity) is None for this world"
        )
    table = np.asarray(log_similarity, np.float32)
    if table.ndim != 2 or table.shape[0] != table.shape[1] or table.shape[0] < 1:
        raise ValueError(f"log_similarity must be a square [K, K] table, got shape {table.shape}")
    if not np.isfinite(table).all():
        raise ValueError("log_similarity must hold finite log s_gen values, got NaN or infinities")
    return jnp.asarray(table)


def example_function(
    objective: Objective, sources: Sources, n: int
) -> Callable[[np.random.Generator], Example]:
    """The function streamed for ``objective``: ``n`` examples per call."""
    if objective == "gensim":
        return lambda rng: sources.triplets(rng, n)
    if objective == "gensim_nce":
        return lambda rng: {"inputs": sources.triplets(rng, n)["inputs"][:, :2]}
    if objective == "supcon":
        return lambda rng: sources.items(rng, n)
    if objective == "gensim_contrastive":
        _check_log_similarity(sources.log_similarity)

        def latent_items(rng: np.random.Generator) -> Example:
            items = sources.items(rng, n)
            if "latents" not in items:
                raise ValueError(
                    "objective 'gensim_contrastive' needs Sources.items to return the items' "
                    f"'latents' (rows of Sources.log_similarity), got keys {sorted(items)}"
                )
            return {"inputs": items["inputs"], "latents": items["latents"]}

        return latent_items
    if objective == "simclr":

        def two_views(rng: np.random.Generator) -> Example:
            items = sources.items(rng, n)["inputs"]
            views = [[sources.augment(rng, item) for _ in range(2)] for item in items]
            return {"views": np.asarray(views)}

        return two_views
    raise ValueError(f"objective must be one of {OBJECTIVES[:-1]} to stream, got {objective!r}")


def train_encoder(
    objective: Objective,
    sources: Sources,
    encoder: encoders.EncoderConfig,
    input_shape: tuple[int, ...],
    train: TrainConfig,
    objective_config: ObjectiveConfig,
    *,
    workdir: str | os.PathLike[str] | None,
    seed: int = 0,
) -> nnx.Module:
    """An encoder trained with ``objective`` (``"untrained"``: just initialised).

    Training checkpoints into ``workdir`` (when given) and resumes from it, so a killed
    run continues and a finished one is restored rather than retrained.
    """
    model = encoders.build_encoder(encoder, input_shape)
    if objective == "untrained":
        return model
    stream = pipeline.example_stream(
        example_function(objective, sources, objective_config.examples_per_call),
        num_examples=train.num_steps * objective_config.batch_size,
        batch_size=objective_config.batch_size,
        seed=seed,
        num_threads=objective_config.num_threads,
        examples_per_call=objective_config.examples_per_call,
    )
    if workdir is not None:
        workdir = pathlib.Path(workdir)
        train = dataclasses.replace(train, workdir=str(workdir))
    loss_fn = loss_function(objective, objective_config, log_similarity=sources.log_similarity)
    return fit(model, loss_fn, iter(stream), train)
