"""Generative similarity on a Gaussian mixture (Marjieh et al. 2024, Appendix F).

The mixture's ``s_gen`` is exact, so the claim can be checked directly: an embedding
trained with the softmax triplet loss on mixture triplets has similarities
``f(x) . f(y)`` that track ``log s_gen(x, y)`` on held-out pairs (the Bayes-optimal
critic of the loss is ``log s_gen + c(x)``). Baselines: InfoNCE on jittered views,
supervised contrastive on component labels, and the untrained encoder.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import numpy as np
from scipy import stats

from alignjax.config import checked, configclass
from alignjax.data import augmentations
from alignjax.data.gaussian_mixture import GaussianMixtureWorld
from alignjax.methods import gensim_gaussian_report, objectives
from alignjax.models import encoders
from alignjax.training import TrainConfig
from alignjax.training.stages import Stages


@configclass
class GaussianConfig:
    """The ``gensim-gaussian`` experiment.

    Attributes:
      world: the mixture (components, dimension, separation, ...).
      encoder: the MLP embedding.
      train: optimisation of every trained objective.
      objective: batch size and temperatures.
      objectives: the method first, then the baselines.
      jitter_std: standard deviation of SimCLR's Gaussian views.
      num_eval_pairs: held-out pairs ``(x, y)`` drawn independently from the mixture (a
        correlation needs two).
      seed: seed of the training streams and of the held-out pairs.
    """

    world: GaussianMixtureWorld = GaussianMixtureWorld(num_components=8, dim=2, separation=1.5)
    encoder: encoders.EncoderConfig = encoders.EncoderConfig(
        kind="mlp", widths=(128, 128), embed_dim=32
    )
    train: TrainConfig = TrainConfig(
        num_steps=2000, learning_rate=3e-3, warmup_steps=100, log_every=100
    )
    objective: objectives.ObjectiveConfig = objectives.ObjectiveConfig(batch_size=256)
    objectives: tuple[str, ...] = ("gensim", "simclr", "supcon", "untrained")
    jitter_std: float = checked(0.5, ge=0)
    num_eval_pairs: int = checked(5000, ge=2)
    seed: int = checked(0, ge=0)

    def __post_init__(self):
        objectives.check_objectives(self.objectives)


def sources(config: GaussianConfig) -> objectives.Sources:
    """The mixture's triplets, labelled items and jittered views."""
    world = config.world

    def triplets(rng, n):
        return {"inputs": world.sample_triplets(rng, n)["inputs"]}

    def augment(rng, x):
        return augmentations.gaussian_jitter(rng, x, config.jitter_std)

    return objectives.Sources(triplets=triplets, items=world.sample, augment=augment)


def run(config: GaussianConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Train every objective, correlate its similarities with ``log s_gen``, report."""
    workdir = pathlib.Path(workdir)
    world = config.world
    rng = np.random.default_rng(config.seed + 1)
    x = world.sample(rng, config.num_eval_pairs)["inputs"]
    y = world.sample(rng, config.num_eval_pairs)["inputs"]
    log_s = world.log_generative_similarity(x, y)

    stages = Stages([*config.objectives, "report"], workdir)
    metrics: dict[str, Any] = {}
    similarities = {}
    for objective in config.objectives:
        with stages(objective):
            model = objectives.train_encoder(
                objective,
                sources(config),
                config.encoder,
                (world.dim,),
                config.train,
                config.objective,
                workdir=workdir / objective,
                seed=config.seed,
            )
            fx, fy = encoders.embed(model, x), encoders.embed(model, y)
            kernel = objectives.similarity_kernel(objective, config.objective)
            similarities[objective] = objectives.pair_similarity(fx, fy, kernel)
            metrics[objective] = {
                "spearman": float(stats.spearmanr(similarities[objective], log_s)[0]),
                "pearson": float(stats.pearsonr(similarities[objective], log_s)[0]),
            }
    with stages("report"):
        gensim_gaussian_report.write_report(config, workdir, metrics, similarities, log_s)
    return {**metrics, **stages.record()}
