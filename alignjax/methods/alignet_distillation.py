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

**All triplets of a batch** (``DistillationConfig.triplets = "all"``, not the paper's
recipe). A batch of ``B`` sampled triplets shows the student ``3B`` images but only ``B``
comparisons. The ``"all"`` mode streams ``3B`` pool images instead (a seeded, resumable
Grain stream, reshuffled each epoch, :func:`pool_stream`) with the teacher's features
of each, and distils over every one of their ``C(3B, 3)`` triplets
(:func:`alignjax.losses.batch_triplet_distillation`, exact, O(B^2) memory): the
student's forward and backward cost per step is that of the sampled mode, and the
teacher's similarities of every pair are dot products of its (transformed) features,
as in the sampled triplets' pseudo-labels.

References:
  Muttenthaler, L. et al. (2024). Aligning machine and human visual representations
  across abstraction levels. arXiv:2409.06509 (the distillation objective).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignjax import losses
from alignjax.config import TrainConfig, checked, configclass
from alignjax.data import pipeline, tfds_builders
from alignjax.data.sources import Images
from alignjax.methods.alignet_triplets import TRIPLETS_NAME
from alignjax.training import fit

#: The triplets a step distils: the stored sampled ones, or all of the batch's images.
TRIPLET_MODES: tuple[str, ...] = ("sampled", "all")
#: Pool images per record of :func:`pool_stream` (as many as a sampled triplet reads).
IMAGES_PER_RECORD = 3


@configclass
class DistillationConfig:
    """The student's triplet distillation loss and its data stream.

    Attributes:
      divergence: ``"kl"`` (``KL(teacher || student)``) or ``"js"`` (released config).
      student_temperature: ``tau`` dividing the student's similarities.
      kernel: the student's similarity (AligNet: raw dot products).
      batch_size: triplets per step (global); with ``triplets="all"`` a step reads the
        same ``3 * batch_size`` images, as pool images.
      num_threads: Grain threads reading the stored triplets and images.
      triplets: ``"sampled"``: the stored sampled triplets (the paper's recipe);
        ``"all"``: every triplet of each batch of pool images, labelled by the
        teacher's features (module docstring).
    """

    divergence: Literal["kl", "js"] = "kl"
    student_temperature: float = checked(5.0, gt=0)
    kernel: Literal["dot", "cosine"] = "dot"
    batch_size: int = checked(64, ge=1)
    num_threads: int = checked(2, ge=0)
    triplets: Literal["sampled", "all"] = "sampled"


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


def all_triplets_loss(
    config: DistillationConfig,
    teacher_temperature: float,
    input_range: tuple[float, float] = (0.0, 1.0),
) -> Callable[[nnx.Module, dict[str, jax.Array]], tuple[jax.Array, dict[str, jax.Array]]]:
    r"""``loss_fn(student, batch)`` over every triplet of a batch of images.

    With the teacher's features :math:`t_i` and the student's :math:`s_i` of the
    batch's :math:`n` images,

    .. math::

        \frac{1}{\binom{n}{3}} \sum_{i<j<k}
        \mathrm{D}\big(\operatorname{softmax}([t_i^\top t_j, t_i^\top t_k,
        t_j^\top t_k] / T) \,\|\, \operatorname{softmax}([\kappa(s_i, s_j),
        \kappa(s_i, s_k), \kappa(s_j, s_k)] / \tau)\big)

    (:func:`alignjax.losses.batch_triplet_distillation`; ``kappa`` is
    ``config.kernel``, the teacher's kernel the dot product of its pseudo-labels).

    ``batch["images"]`` is ``[n, H, W, C]`` (uint8, or float in ``[0, 1]``; mapped onto
    ``input_range``) and ``batch["teacher_features"]`` ``[n, d_t]``. The metric
    ``teacher_agreement`` is measured on the ``n // 3`` disjoint triplets ``(0, 1, 2),
    (3, 4, 5), ...`` of the (shuffled) batch: the fraction whose odd one out the
    student picks as the teacher does.
    """
    low, high = (np.float32(v) for v in input_range)

    def loss_fn(model, batch):
        z = model(low + (high - low) * pipeline.unit_interval(batch["images"]))
        teacher = batch["teacher_features"]
        loss = losses.batch_triplet_distillation(
            teacher,
            z,
            divergence=config.divergence,
            teacher_temperature=teacher_temperature,
            student_temperature=config.student_temperature,
            kernel=config.kernel,
            teacher_kernel="dot",
        )
        m = z.shape[0] // 3 * 3
        s = losses.triplet_similarities(z[:m].reshape(m // 3, 3, -1), kernel=config.kernel)
        t = losses.triplet_similarities(teacher[:m].reshape(m // 3, 3, -1), kernel="dot")
        agreement = jnp.mean(jnp.argmax(s, axis=1) == jnp.argmax(t, axis=1))
        return loss, {"teacher_agreement": agreement}

    return loss_fn


def pool_stream(
    pool: Images,
    teacher_features: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    num_epochs: int | None = None,
    num_threads: int = 2,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.IterDataset:
    """Batches of pool images with their indices and the teacher's features of them.

    The pool, in a random order fixed by ``seed``, is cut into groups of
    :data:`IMAGES_PER_RECORD` images (the last group completed with the first images of
    the order); each group is one record of :func:`alignjax.data.pipeline.triplet_stream`,
    so a batch reads its images as the sampled triplets do (three per record), and the
    stream has that function's properties: seeded, the groups shuffled anew each epoch,
    sharded over processes, and its iterator resumes to the identical next batch
    (``get_state`` / ``set_state``, or through the trainer's checkpoints). Only the few
    pairs within a group always share a batch; all other pairs meet anew each epoch.

    Args:
      pool: the pool's image records (``{"image": uint8 [H, W, C], ...}``).
      teacher_features: ``[n_pool, d]`` the teacher's features of the pool, in order.
      batch_size: images per batch (global), a multiple of :data:`IMAGES_PER_RECORD`.
      seed: seed of the grouping and of the shuffles.
      num_epochs: passes over the pool; ``None`` repeats forever.
      num_threads, process_index, process_count: as in
        :func:`~alignjax.data.pipeline.triplet_stream`.

    Returns:
      a ``grain.IterDataset`` of ``{"indices": int64 [b], "teacher_features": [b, d],
      "images": [b, H, W, C]}`` (``b`` the local batch; images as the pipeline delivers
      them).
    """
    teacher_features = np.asarray(teacher_features, np.float32)
    if teacher_features.ndim != 2 or len(teacher_features) != len(pool):
        raise ValueError(
            f"teacher_features must be [n_pool, d] for the {len(pool)} pool images; got "
            f"shape {teacher_features.shape}"
        )
    if batch_size % IMAGES_PER_RECORD:
        raise ValueError(
            f"batch_size must be a multiple of {IMAGES_PER_RECORD} images; got {batch_size}"
        )
    order = np.random.default_rng(seed).permutation(len(pool))
    groups = np.resize(order, -(-len(pool) // IMAGES_PER_RECORD) * IMAGES_PER_RECORD)
    stream = pipeline.triplet_stream(
        _PoolGroups(groups.reshape(-1, IMAGES_PER_RECORD), teacher_features),
        pool,
        batch_size=batch_size // IMAGES_PER_RECORD,
        seed=seed,
        num_epochs=num_epochs,
        num_threads=num_threads,
        process_index=process_index,
        process_count=process_count,
    )
    return stream.map(_images_of_groups)


class _PoolGroups(Sequence):
    """Records ``{"indices": [g], "teacher_features": [g, d]}`` of groups of pool images."""

    def __init__(self, groups: np.ndarray, teacher_features: np.ndarray):
        self._groups = groups
        self._features = teacher_features

    def __len__(self) -> int:
        return len(self._groups)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        indices = self._groups[index].astype(np.int64)
        return {"indices": indices, "teacher_features": self._features[indices]}


def _images_of_groups(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``[b, g, ...]`` batches of groups as ``[b * g, ...]`` batches of images."""
    return {key: value.reshape(-1, *value.shape[2:]) for key, value in batch.items()}


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
    teacher_features: np.ndarray | None = None,
    evaluate: Callable[[nnx.Module], Mapping[str, float]] | None = None,
) -> nnx.Module:
    """A copy of the base student fine-tuned on the stored triplets over ``pool``.

    With ``distillation.triplets == "all"``, on all triplets of batches of pool images
    instead, labelled by ``teacher_features`` (``[n_pool, d]``, the teacher's
    transformed features of the pool; required then). Checkpoints into ``directory``
    (``checkpoints/``, ``metrics.jsonl``) and resumes from it; ``callbacks`` and
    ``evaluate`` (called every ``train.eval_every`` steps) go to
    :func:`alignjax.training.fit`.
    """
    if distillation.triplets == "all":
        if teacher_features is None:
            raise ValueError('distillation.triplets="all" needs the teacher_features of the pool')
        return fit(
            nnx.clone(base),
            all_triplets_loss(distillation, teacher_temperature, input_range),
            iter(
                pool_stream(
                    pool,
                    teacher_features,
                    batch_size=3 * distillation.batch_size,
                    seed=seed,
                    num_threads=distillation.num_threads,
                )
            ),
            dataclasses.replace(train, workdir=str(directory)),
            callbacks=callbacks,
            evaluate=evaluate,
        )
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
        evaluate=evaluate,
    )
