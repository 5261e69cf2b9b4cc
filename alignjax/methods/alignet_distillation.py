r"""AligNet's student distillation: the stored triplets streamed into the generic trainer.

The student (a copy of the base student) learns the surrogate teacher's odd-one-out
distributions over the AligNet triplets (:mod:`alignjax.methods.alignet_triplets`),
read by Grain from their TFDS/ArrayRecord set and joined with the pool's images by index
(:func:`alignjax.data.pipeline.triplet_stream`), minimising

.. math::

    \mathrm{D}\big(\operatorname{softmax}(t / T) \,\|\, \operatorname{softmax}(s / \tau)\big)

(``D`` = KL, teacher first, or JS; ``t`` the teacher's, ``s`` the student's similarities)
with AdamW-style decay toward the pretrained student (``TrainConfig.decay_to_init``,
``w = 1``) and a warmup-cosine schedule. The released configuration is JS with
``tau = 100`` on raw ViT-B dot products; for small students ``tau`` is of the order of
their dot products. The trainer checkpoints the student (Orbax, ``checkpoints/``) and
resumes there.

References:
  Muttenthaler, L. et al. (2024). Aligning machine and human visual representations
  across abstraction levels. arXiv:2409.06509 (the distillation objective).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Sequence
from typing import Literal

import jax
import numpy as np
from flax import nnx

from alignjax import losses
from alignjax.config import TrainConfig, checked, configclass
from alignjax.data import pipeline, tfds_builders
from alignjax.data.sources import Images
from alignjax.methods.alignet_triplets import TRIPLETS_NAME
from alignjax.training import fit


@configclass
class DistillationConfig:
    """The student's triplet distillation loss and its data stream.

    Attributes:
      divergence: ``"kl"`` (``KL(teacher || student)``) or ``"js"`` (released config).
      student_temperature: ``tau`` dividing the student's similarities.
      kernel: the student's similarity (AligNet: raw dot products).
      batch_size: triplets per step (global).
      num_threads: Grain threads reading the stored triplets and images.
    """

    divergence: Literal["kl", "js"] = "kl"
    student_temperature: float = checked(5.0, gt=0)
    kernel: Literal["dot", "cosine"] = "dot"
    batch_size: int = checked(64, ge=1)
    num_threads: int = checked(2, ge=0)


def distillation_loss(
    config: DistillationConfig,
    teacher_temperature: float,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Callable[[nnx.Module, dict[str, jax.Array]], tuple[jax.Array, dict[str, jax.Array]]]:
    """``loss_fn(student, batch)`` of the trainer: the triplet divergence to the teacher.

    ``batch["images"]`` is ``[B, 3, H, W, C]``, uint8 as streamed (``x / 255``, on the
    device) or float in ``[0, 1]``, mapped onto ``input_range``; ``batch["similarities"]``
    is ``[B, 3]`` (the teacher's, odd one out last); the metric ``teacher_agreement`` is
    the fraction of triplets whose odd one out the student picks as the teacher does.
    """
    divergence = {"kl": losses.triplet_kl_divergence, "js": losses.triplet_js_divergence}[
        config.divergence
    ]
    low, high = (np.float32(v) for v in input_range)

    def loss_fn(model, batch):
        images = low + (high - low) * pipeline.unit_interval(batch["images"])
        z = model(images.reshape(-1, *images.shape[2:])).reshape(images.shape[0], 3, -1)
        s = losses.triplet_similarities(z, kernel=config.kernel)
        loss = divergence(
            batch["similarities"],
            s,
            teacher_temperature=teacher_temperature,
            student_temperature=config.student_temperature,
        )
        return loss.mean(), {"teacher_agreement": losses.triplet_accuracy(s).mean()}

    return loss_fn


def distill_student(
    base: nnx.Module,
    pool: Images,
    triplets_dir: pathlib.Path,
    teacher_temperature: float,
    directory: pathlib.Path,
    *,
    distillation: DistillationConfig,
    train: TrainConfig,
    input_range: tuple[float, float],
    seed: int,
    callbacks: Sequence[Callable[[int, dict[str, float]], None]] = (),
) -> nnx.Module:
    """A copy of the base student fine-tuned on the stored triplets over ``pool``.

    Checkpoints into ``directory`` (``checkpoints/``, ``metrics.jsonl``) and resumes
    from it; ``callbacks`` go to :func:`alignjax.training.fit`.
    """
    stream = pipeline.triplet_stream(
        tfds_builders.data_source(TRIPLETS_NAME, triplets_dir, "train"),
        pool,
        batch_size=distillation.batch_size,
        seed=seed,
        num_epochs=None,
        num_threads=distillation.num_threads,
    )
    return fit(
        nnx.clone(base),
        distillation_loss(distillation, teacher_temperature, input_range),
        iter(stream),
        dataclasses.replace(train, workdir=str(directory)),
        callbacks=callbacks,
    )
