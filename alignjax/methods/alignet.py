r"""AligNet end to end: a surrogate teacher aligns a student across abstraction levels.

Muttenthaler et al. (2024) align vision models with the *multi-level* structure of
human concepts in four steps, each one function here with its artefacts in the work
directory (``alignjax run alignet`` runs them all; :func:`run`):

.. code-block:: text

    world (seeded) --render--> images --teacher--> features             stages 1-2
    features + observer triplets --uncertainty distillation--> transform  stage 3
    transformed features --k-means--> clusters --sampling--> triplets      stages 4-5
      (+ teacher similarities, sorted odd-last)                            stage 6
    triplets --TFDS/ArrayRecord--> Grain --fit(student, KL, decay_to_init)  stage 7
    students, teacher --evaluation--> metrics.json, report.md, PNGs       stage 8

1. **World and humans** (:mod:`alignjax.methods.alignet_data`): images with a category
   tree, simulated observers whose similarity is the exact ``log s_gen`` of the
   categories, THINGS-like and Levels triplets, held-out categories.
2. **Backbones** trained here: the *teacher* (supervised contrastive on basic-level
   labels; a small ViT) and the *student*, a ViT with AligNet's linear triplet head on
   pooled features, pretrained with another objective (SimCLR).
3. **Uncertainty distillation** (UD): an affine transform ``z = x W + b`` of the globally
   standardised teacher features (an :class:`~alignjax.models.AffineTransform` trained by
   :func:`alignjax.training.fit`) minimising

   .. math::

       \frac{1}{n} \sum_i \mathrm{KL}\big(p^{human}_i \,\|\, \operatorname{softmax}(s_i / T)\big)
       + \lambda \big\| W - \bar w I \big\|_F^2,
       \qquad s_i = [z_a \cdot z_b]_{ab \in \{01, 02, 12\}},

   over the observers' training triplets (``uncertainty_distillation_loss`` and
   ``scaled_identity_penalty``), with ``T`` and ``lambda`` chosen by the KL on the
   validation triplets. The untransformed teacher (for "UnAligNet") keeps ``W = I``
   and gets its temperature the same way, so the two teachers differ only in the
   transform.
4. **Clusters and triplets** (:mod:`alignjax.methods.alignet_triplets`): k-means of the
   teacher features of the pool; within-cluster, border and between-cluster triplets;
   the teacher's similarities as pseudo-labels, odd one out last; written as a
   TFDS/ArrayRecord triplet set.
5. **Student distillation**: the stored triplets streamed by Grain
   (:func:`alignjax.data.pipeline.triplet_stream` over the TFDS sources of the
   triplets and of the image pool) into the generic trainer, minimising

   .. math::

       \mathrm{D}\big(\operatorname{softmax}(t / T) \,\|\, \operatorname{softmax}(s / \tau)\big)

   (``D`` = KL, teacher first, or JS; ``t`` the teacher's, ``s`` the student's dot
   products) with AdamW-style decay toward the pretrained student
   (``TrainConfig.decay_to_init``, ``w = 1``) and a warmup-cosine schedule. The
   released configuration is JS with ``tau = 100`` on raw ViT-B dot products; for the
   small students here ``tau`` is of the order of their dot products (see the presets).
6. **Evaluation**: odd-one-out accuracy on held-out observer triplets (Levels: coarse,
   boundary, fine; THINGS-like random triplets) against the noise ceiling, for the
   base student, the AligNet student, the UnAligNet student (distilled from the
   untransformed teacher through the same chain) and the teacher before and after UD;
   nearest-neighbour preservation of the students; few-shot accuracy and
   anomaly-detection AUC on the held-out categories.

**Resuming.** Every stage skips work whose artefact exists: the data sets, the feature
files, the transform, the clusters and triplet sets; training stages checkpoint through
the trainer (``<stage>/checkpoints``) and resume there, so a killed run continues where
it stopped and a finished run is restored rather than retrained.

**Scale.** Every training stage has its own ``TrainConfig`` and so its own mesh
(``MeshConfig(data=-1, fsdp=1)``: data parallel over all devices); ``--set
student_train.mesh.fsdp=2`` shards the student's parameters as well. The same command
runs on many hosts by starting one process per host after
``jax.distributed.initialize()`` (e.g. ``python -c "import jax;
jax.distributed.initialize(); from alignjax import cli; cli.main()" run alignet``, or
the cluster launcher's equivalent): the Grain streams read
``jax.process_index()``'s share of every batch, the trainer assembles global batches
and Orbax writes one checkpoint; the data stages are deterministic from their seeds, so
every host builds the same artefacts (use a shared ``--workdir`` or a local copy per
host).

References:
  Muttenthaler, L., Greff, K., Born, F., Spitzer, B., Kornblith, S., Mozer, M. C.,
  Müller, K.-R., Unterthiner, T. and Lampinen, A. K. (2024). Aligning machine and human
  visual representations across abstraction levels. arXiv:2409.06509.
  Muttenthaler, L. et al. (2023). Improving neural network representations using human
  similarity judgments (gLocal). NeurIPS.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignjax import evaluation, losses
from alignjax.config import ConfigError, MeshConfig, checked, configclass
from alignjax.data import augmentations, pipeline, tfds_builders
from alignjax.data.levels import LEVELS, LEVELS_AND_OTHER
from alignjax.data.triplet_set import TripletSet
from alignjax.methods import (
    alignet_data,
    alignet_report,
    alignet_triplets,
    encoders,
    objectives,
)
from alignjax.methods.alignet_data import DataConfig
from alignjax.methods.alignet_triplets import SamplingConfig
from alignjax.models import AffineParams, AffineTransform, standardize
from alignjax.training import TrainConfig, fit
from alignjax.training.metrics_writer import MetricsWriter

VARIANTS: tuple[str, ...] = ("alignet", "unalignet")
TRIPLETS_NAME = "alignet_triplets"
Kernel = Literal["dot", "cosine"]


@configclass
class UncertaintyDistillationConfig:
    """The surrogate teacher's affine transform.

    Attributes:
      temperatures: candidate Luce temperatures ``T`` of the teacher's choices.
      penalties: candidate weights ``lambda`` of the scaled-identity penalty.
      batch_size: training triplets per step (drawn with replacement).
      init_scale: ``W_0 = init_scale I`` (gLocal starts from ``1e-3 I``).
      train: the optimisation of every fit (Adam, constant learning rate, gradient
        clipping 1.0, one device); ``train.workdir`` must stay ``None``: each fit's
        ``metrics.jsonl`` goes to the stage's directory, and a fit keeps no checkpoints.
      raw_temperatures: the untransformed teacher's temperature grid.
    """

    temperatures: tuple[float, ...] = checked((0.25, 0.5, 1.0), gt=0)
    penalties: tuple[float, ...] = checked((0.001, 0.01, 0.1), ge=0)
    batch_size: int = checked(512, ge=1)
    init_scale: float = checked(1e-3, gt=0)
    train: TrainConfig = TrainConfig(
        num_steps=1000,
        learning_rate=1e-2,
        schedule="constant",
        optimizer="adam",
        clip_norm=1.0,
        mesh=MeshConfig(data=1),
        log_every=50,
        progress_bar=False,
    )
    raw_temperatures: tuple[float, ...] = checked(
        tuple(float(t) for t in np.geomspace(0.01, 100.0, 41)), gt=0
    )

    def __post_init__(self):
        for name in ("temperatures", "penalties", "raw_temperatures"):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"={values!r}: must hold at least one value", name)
        if self.train.workdir is not None:
            raise ConfigError(
                f"workdir={self.train.workdir!r} must be None; uncertainty_distillation "
                "writes each fit's metrics.jsonl into its directory",
                "train",
            )


@dataclasses.dataclass(frozen=True)
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
    student_temperature: float = 5.0
    kernel: Kernel = "dot"
    batch_size: int = 64
    num_threads: int = 2


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The evaluation of stage 8.

    Attributes:
      kernel: similarity of the main odd-one-out tables (the other kernel is reported
        too); cosine compares models trained with different similarity scales fairly.
      n_shot: few-shot examples per held-out category.
      few_shot_seeds: repetitions of the few-shot probe.
      neighbours: ``k`` of nearest-neighbour preservation.
      anomaly_neighbours: ``k`` of the k-NN anomaly score (at most half the images of
        a held-out category, its training share).
    """

    kernel: Kernel = "cosine"
    n_shot: int = 5
    few_shot_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    neighbours: int = 10
    anomaly_neighbours: int = 5


@dataclasses.dataclass(frozen=True)
class AligNetConfig:
    """The ``alignet`` experiment (see the module docstring for the stages).

    Attributes:
      data: images, category tree, simulated humans, held-out categories.
      teacher: the teacher's encoder.
      teacher_objective: how the teacher learns (``"supcon"`` on ``teacher_labels``).
      teacher_labels: the category level of the teacher's labels.
      teacher_train: the teacher's training.
      student: the student's encoder (a ViT with a triplet head).
      student_objective: the student's pretraining objective.
      student_pretrain: the student's pretraining.
      objective: batch size, temperatures and threads of both pretraining objectives.
      augmentation: SimCLR's random views.
      uncertainty_distillation: the surrogate teacher's transform.
      sampling: clusters and triplets over the pool.
      distillation: the student's distillation loss and stream.
      student_train: the student's fine-tuning (``decay_to_init`` toward the
        pretrained student).
      evaluation: stage 8.
      variants: the distilled students: ``"alignet"`` (the UD teacher) and
        ``"unalignet"`` (the untransformed teacher).
      seed: seed of the training streams.
    """

    data: DataConfig = DataConfig()
    teacher: encoders.EncoderConfig = encoders.EncoderConfig(
        kind="vit", variant="mu/8", depth=2, embed_dim=32
    )
    teacher_objective: Literal["supcon", "simclr"] = "supcon"
    teacher_labels: Literal["leaf", "basic", "superordinate"] = "basic"
    # Periodic checkpoints (beside those on SIGTERM/SIGINT and at the end) bound what a
    # hard kill loses to checkpoint_every steps.
    teacher_train: TrainConfig = TrainConfig(
        num_steps=600, learning_rate=2e-3, warmup_steps=50, log_every=50, checkpoint_every=200
    )
    student: encoders.EncoderConfig = encoders.EncoderConfig(
        kind="vit", variant="mu/8", depth=1, embed_dim=32, seed=1
    )
    student_objective: Literal["simclr", "supcon"] = "simclr"
    student_pretrain: TrainConfig = TrainConfig(
        num_steps=600, learning_rate=2e-3, warmup_steps=50, log_every=50, checkpoint_every=200
    )
    objective: objectives.ObjectiveConfig = objectives.ObjectiveConfig(
        batch_size=128, examples_per_call=16
    )
    augmentation: augmentations.ImageAugmentation = augmentations.ImageAugmentation()
    uncertainty_distillation: UncertaintyDistillationConfig = UncertaintyDistillationConfig()
    sampling: SamplingConfig = SamplingConfig()
    distillation: DistillationConfig = DistillationConfig()
    student_train: TrainConfig = TrainConfig(
        num_steps=1000,
        learning_rate=1e-3,
        warmup_steps=100,
        decay_to_init=1.0,
        log_every=50,
        checkpoint_every=250,
    )
    evaluation: EvaluationConfig = EvaluationConfig()
    variants: tuple[str, ...] = VARIANTS
    seed: int = 0

    def __post_init__(self):
        unknown = set(self.variants) - set(VARIANTS)
        if unknown or not self.variants:
            raise ValueError(
                f"variants must be a non-empty subset of {VARIANTS}, got {self.variants!r}"
            )
        # Each held-out category is the anomaly detector's normal set once, with the
        # first half of its images as training data.
        normal = self.data.held_out_items_per_leaf // 2
        if self.evaluation.anomaly_neighbours > normal:
            raise ValueError(
                f"evaluation.anomaly_neighbours={self.evaluation.anomaly_neighbours} exceeds the "
                f"{normal} training images of a held-out category "
                "(data.held_out_items_per_leaf // 2)"
            )


# Stage 1: world and humans.


def build_world(config: AligNetConfig, workdir: str | os.PathLike[str]) -> pathlib.Path:
    """Stage 1: the images and the simulated humans' triplets in ``workdir/data``."""
    return alignet_data.build_data(config.data, pathlib.Path(workdir) / "data")


# Stage 2: backbones.


def _as_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / np.float32(255)


def pool_sources(
    config: AligNetConfig, pool: dict[str, np.ndarray], labels: str
) -> objectives.Sources:
    """The pretraining objectives' samplers over the image pool (``labels``: supcon's)."""
    images = pool["image"]

    def items(rng, n):
        index = rng.integers(0, len(images), n)
        return {"inputs": _as_float(images[index]), "labels": pool[labels][index]}

    def triplets(rng, n):
        raise ValueError(
            "AligNet's pretraining objectives draw items, not triplets (objective 'gensim')"
        )

    def augment(rng, image):
        return augmentations.random_affine(rng, image, config.augmentation)

    return objectives.Sources(triplets=triplets, items=items, augment=augment)


def train_teacher(
    config: AligNetConfig, workdir: str | os.PathLike[str], pool: dict[str, np.ndarray]
) -> nnx.Module:
    """Stage 2a: the teacher, trained on the pool's ``teacher_labels`` (``workdir/teacher``)."""
    return objectives.train_encoder(
        config.teacher_objective,
        pool_sources(config, pool, config.teacher_labels),
        config.teacher,
        pool["image"].shape[1:],
        config.teacher_train,
        config.objective,
        workdir=pathlib.Path(workdir) / "teacher",
        seed=config.seed,
    )


def pretrain_student(
    config: AligNetConfig, workdir: str | os.PathLike[str], pool: dict[str, np.ndarray]
) -> nnx.Module:
    """Stage 2b: the base student, pretrained on the pool (``workdir/student_base``)."""
    return objectives.train_encoder(
        config.student_objective,
        pool_sources(config, pool, config.teacher_labels),
        config.student,
        pool["image"].shape[1:],
        config.student_pretrain,
        config.objective,
        workdir=pathlib.Path(workdir) / "student_base",
        seed=config.seed + 1,
    )


def embed_images(model: nnx.Module, images: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """``model`` applied to uint8 images ``[n, H, W, C]``: ``float32 [n, d]``."""
    return np.concatenate(
        [
            encoders.embed(model, _as_float(images[i : i + chunk]))
            for i in range(0, len(images), chunk)
        ]
    )


def features(
    model: nnx.Module, data_dir: pathlib.Path, path: str | os.PathLike[str]
) -> dict[str, np.ndarray]:
    """``model``'s features of every image split, cached in ``path`` (``.npz``)."""
    path = pathlib.Path(path)
    if path.exists():
        with np.load(path) as stored:
            return {split: stored[split] for split in stored.files}
    result = {
        split: embed_images(model, alignet_data.load_images(data_dir, split)["image"])
        for split in alignet_data.IMAGE_SPLITS
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        np.savez(file, **result)
    return result


# Stage 3: uncertainty distillation.


@dataclasses.dataclass(frozen=True)
class SurrogateTeacher:
    """A teacher's transform and the temperature of its choices.

    Attributes:
      transform: the affine map of raw teacher features (identity for the
        untransformed teacher).
      temperature: ``T`` of ``softmax(s / T)`` over the transformed dot products.
    """

    transform: AffineParams
    temperature: float

    def similarities(self, raw_features: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Pair similarities ``[n, 3]`` of triplets ``indices [n, 3]``."""
        z = self.transform.apply(raw_features)
        return np.asarray(losses.triplet_similarities(z[indices]))

    def kl(self, raw_features: np.ndarray, triplets: TripletSet) -> float:
        """Mean ``KL(p_human || softmax(s / T))`` over ``triplets``."""
        s = self.similarities(raw_features, triplets.indices)
        return float(
            losses.uncertainty_distillation_loss(
                triplets.probabilities, s, temperature=self.temperature
            ).mean()
        )

    def save(self, directory: pathlib.Path, **extra: Any) -> None:
        self.transform.save_npz(directory / "transform.npz")
        (directory / "teacher.json").write_text(
            json.dumps({"temperature": self.temperature, **extra}, indent=2) + "\n"
        )

    @classmethod
    def load(cls, directory: pathlib.Path) -> tuple[SurrogateTeacher, dict[str, Any]]:
        info = json.loads((directory / "teacher.json").read_text())
        return cls(AffineParams.load_npz(directory / "transform.npz"), info["temperature"]), info


def _fit_transform(
    ud: UncertaintyDistillationConfig,
    x: jax.Array,
    train: TripletSet,
    temperature: float,
    penalty: float,
    *,
    mean: float,
    std: float,
    seed: int,
    workdir: pathlib.Path,
) -> AffineParams:
    """One surrogate teacher's transform of the standardised features ``x [n_items, d]``.

    Every step draws ``ud.batch_size`` training triplets with replacement from one
    generator seeded by ``seed``; the metrics (the loss and its ``kl`` term) go to
    ``workdir/metrics.jsonl``, replacing a record already there.
    """
    indices, probabilities = train.indices, train.probabilities

    def loss_fn(transform, batch):
        z = transform(x[batch["indices"]])
        kl = losses.uncertainty_distillation_loss(
            batch["probabilities"], losses.triplet_similarities(z), temperature=temperature
        ).mean()
        return kl + penalty * losses.scaled_identity_penalty(transform.weights[...]), {"kl": kl}

    def batches(rng: np.random.Generator) -> Iterator[dict[str, np.ndarray]]:
        for _ in range(ud.train.num_steps):
            rows = rng.integers(0, len(indices), ud.batch_size)
            yield {"indices": indices[rows], "probabilities": probabilities[rows]}

    transform = AffineTransform(x.shape[1], sigma=ud.init_scale)
    # Metrics without checkpoints: a fit is short, and its batches come from a
    # generator whose position a checkpoint could not restore.
    shutil.rmtree(workdir, ignore_errors=True)
    with MetricsWriter(workdir) as record:
        fit(
            transform,
            loss_fn,
            batches(np.random.default_rng(seed)),
            ud.train,
            callbacks=[record.write],
        )
    return AffineParams.from_transform(transform, mean=mean, std=std)


def uncertainty_distillation(
    config: AligNetConfig,
    teacher_features: dict[str, np.ndarray],
    data_dir: pathlib.Path,
    directory: pathlib.Path,
) -> tuple[SurrogateTeacher, SurrogateTeacher, dict[str, Any]]:
    """Stage 3: the UD teacher and the untransformed teacher, fitted or loaded.

    Artefacts in ``directory``: ``aligned/`` and ``untransformed/``, each with
    ``transform.npz`` (``weights``, ``bias``, ``mean``, ``std``) and ``teacher.json``
    (the temperature and the validation grid), and ``fits/T=<T>_lambda=<lambda>/
    metrics.jsonl``, the loss curve of every fitted transform.

    Returns:
      ``(aligned, untransformed, summary)``; the summary holds the chosen
      hyperparameters and the validation/test KL of both teachers.
    """
    aligned_dir, raw_dir = directory / "aligned", directory / "untransformed"
    humans = teacher_features["humans"]
    train, validation, test = (
        alignet_data.load_triplets(data_dir, s) for s in ("train", "validation", "test")
    )
    if not (aligned_dir / "teacher.json").exists() or not (raw_dir / "teacher.json").exists():
        ud = config.uncertainty_distillation
        _, mean, std = standardize(humans)
        dim = humans.shape[1]
        identity = AffineParams(np.eye(dim, dtype=np.float32), np.zeros(dim, np.float32), mean, std)
        raw_grid = {
            t: SurrogateTeacher(identity, t).kl(humans, validation) for t in ud.raw_temperatures
        }
        raw_t = min(raw_grid, key=raw_grid.get)
        x = jnp.asarray(standardize(humans, mean=mean, std=std)[0])
        grid = {}
        for t in ud.temperatures:
            for penalty in ud.penalties:
                transform = _fit_transform(
                    ud,
                    x,
                    train,
                    t,
                    penalty,
                    mean=mean,
                    std=std,
                    seed=config.seed,
                    workdir=directory / "fits" / f"T={t:g}_lambda={penalty:g}",
                )
                candidate = SurrogateTeacher(transform, t)
                grid[(t, penalty)] = (candidate, candidate.kl(humans, validation))
        (best_t, best_penalty), (aligned, _) = min(grid.items(), key=lambda item: item[1][1])
        aligned_dir.mkdir(parents=True, exist_ok=True)
        raw_dir.mkdir(parents=True, exist_ok=True)
        aligned.save(
            aligned_dir,
            penalty=best_penalty,
            validation_kl=[
                {"temperature": t, "penalty": p, "kl": kl} for (t, p), (_, kl) in grid.items()
            ],
        )
        SurrogateTeacher(identity, raw_t).save(
            raw_dir, validation_kl=[{"temperature": t, "kl": kl} for t, kl in raw_grid.items()]
        )
    aligned, aligned_info = SurrogateTeacher.load(aligned_dir)
    raw, raw_info = SurrogateTeacher.load(raw_dir)
    summary = {
        "temperature": aligned.temperature,
        "penalty": aligned_info["penalty"],
        "untransformed_temperature": raw.temperature,
        "validation_grid": aligned_info["validation_kl"],
    }
    for name, teacher in (("untransformed", raw), ("aligned", aligned)):
        summary[f"{name}/validation_kl"] = teacher.kl(humans, validation)
        summary[f"{name}/test_kl"] = teacher.kl(humans, test)
    return aligned, raw, summary


# Stages 4-6: clusters, triplets, pseudo-labels.


def make_triplets(
    config: AligNetConfig,
    teacher: SurrogateTeacher,
    pool_features: np.ndarray,
    directory: pathlib.Path,
) -> dict[str, Any]:
    """Stages 4-6 for one teacher: clusters, triplets and pseudo-labels in ``directory``.

    Artefacts: ``clusters.npz`` (``labels [n_pool]``, ``centroids [k, d]``) and the
    TFDS/ArrayRecord triplet set ``tfds/alignet_triplets`` (split ``train``: indices into
    the pool, the teacher's similarities sorted odd-last, the sampling kind as level).

    Returns:
      ``{"labels", "centroids", "data_dir"}``.
    """
    sampling = config.sampling
    clusters_path = directory / "clusters.npz"
    tfds_dir = directory / "tfds"
    if not clusters_path.exists():
        transformed = teacher.transform.apply(pool_features)
        labels, centroids = alignet_triplets.kmeans_clusters(
            transformed, sampling.num_clusters, seed=sampling.seed, n_init=sampling.kmeans_init
        )
        directory.mkdir(parents=True, exist_ok=True)
        with open(clusters_path, "wb") as file:
            np.savez(file, labels=labels, centroids=centroids)
    with np.load(clusters_path) as stored:
        labels, centroids = stored["labels"], stored["centroids"]
    if not (tfds_dir / TRIPLETS_NAME / tfds_builders.VERSION / "dataset_info.json").exists():
        rng = np.random.default_rng(sampling.seed)
        triplets = alignet_triplets.sample_triplets(
            labels,
            centroids,
            sampling.num_triplets,
            mix=sampling.mix,
            border_neighbours=sampling.border_neighbours,
            rng=rng,
        )
        labelled = alignet_triplets.pseudo_label(triplets, teacher.transform.apply(pool_features))
        tfds_builders.write_triplet_set(
            {"train": labelled},
            name=TRIPLETS_NAME,
            data_dir=tfds_dir,
            overwrite=True,
            description=(
                "AligNet triplets over the image pool: teacher similarities, odd one out last"
            ),
        )
    return {"labels": labels, "centroids": centroids, "data_dir": tfds_dir}


# Stage 7: student distillation.


def distillation_loss(
    config: DistillationConfig, teacher_temperature: float
) -> Callable[[nnx.Module, dict[str, jax.Array]], tuple[jax.Array, dict[str, jax.Array]]]:
    """``loss_fn(student, batch)`` of the trainer: the triplet divergence to the teacher.

    ``batch["images"]`` is ``[B, 3, H, W, C]`` and ``batch["similarities"]`` ``[B, 3]``
    (the teacher's, odd one out last); the metric ``teacher_agreement`` is the fraction
    of triplets whose odd one out the student picks as the teacher does.
    """
    divergence = {"kl": losses.triplet_kl_divergence, "js": losses.triplet_js_divergence}[
        config.divergence
    ]

    def loss_fn(model, batch):
        images = batch["images"]
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
    config: AligNetConfig,
    base: nnx.Module,
    teacher: SurrogateTeacher,
    triplets_dir: pathlib.Path,
    data_dir: pathlib.Path,
    directory: pathlib.Path,
    *,
    callbacks: Sequence[Callable[[int, dict[str, float]], None]] = (),
) -> nnx.Module:
    """Stage 7: a copy of the base student fine-tuned on the stored triplets.

    Checkpoints into ``directory`` (``checkpoints/``, ``metrics.jsonl``) and resumes
    from it; ``callbacks`` go to :func:`alignjax.training.fit`.
    """
    distillation = config.distillation
    stream = pipeline.triplet_stream(
        tfds_builders.data_source(TRIPLETS_NAME, triplets_dir, "train"),
        alignet_data.image_source(data_dir, "pool"),
        batch_size=distillation.batch_size,
        seed=config.seed + 2,
        num_epochs=None,
        num_threads=distillation.num_threads,
    )
    student = nnx.clone(base)
    train = dataclasses.replace(config.student_train, workdir=str(directory))
    return fit(
        student,
        distillation_loss(distillation, teacher.temperature),
        iter(stream),
        train,
        callbacks=callbacks,
    )


# Stage 8: evaluation.


def evaluate_features(
    config: AligNetConfig,
    model_features: dict[str, np.ndarray],
    data_dir: pathlib.Path,
    *,
    base_features: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Stage 8 for one model: alignment per level, downstream, neighbour preservation.

    Args:
      model_features: features of the ``humans``, ``levels`` and ``held_out`` images.
      base_features: the base student's, for nearest-neighbour preservation.

    Returns:
      flat metrics: ``accuracy`` and ``accuracy/<level>`` on the Levels triplets,
      ``things_accuracy`` on the random test triplets (both with the main kernel and,
      prefixed by its name, the other one), ``few_shot`` (logistic regression on
      standardised features), ``few_shot_knn`` (1-NN, cosine), ``anomaly_auc`` and
      ``nn_preservation``.
    """
    ev = config.evaluation
    levels = alignet_data.load_triplets(data_dir, "levels")
    test = alignet_data.load_triplets(data_dir, "test")
    present = tuple(name for name in LEVELS if np.any(levels.levels == LEVELS.index(name)))
    metrics: dict[str, float] = {}
    other = "dot" if ev.kernel == "cosine" else "cosine"
    for kernel, prefix in ((ev.kernel, ""), (other, f"{other}/")):
        result = evaluation.odd_one_out_accuracy(
            model_features["levels"],
            levels.indices,
            kernel=kernel,
            levels=levels.levels,
            level_names=LEVELS_AND_OTHER,
        )
        metrics[f"{prefix}accuracy"] = result.accuracy
        for name in present:
            metrics[f"{prefix}accuracy/{name}"] = result.per_level[name]
        things = evaluation.odd_one_out_accuracy(
            model_features["humans"], test.indices, kernel=kernel
        )
        metrics[f"{prefix}things_accuracy"] = things.accuracy
    held = alignet_data.load_images(data_dir, "held_out")
    train_rows, test_rows = _held_out_split(held["leaf"])
    x, y = model_features["held_out"], held["leaf"]
    # A linear probe is only as good as the scale of its inputs: distilled students can
    # put all images in a narrow cone, which the L2 penalty of the probe then cannot
    # resolve. Standardising every dimension by the (unlabelled) training images, as
    # a scikit-learn StandardScaler would, makes the probe independent of it.
    mean, std = x[train_rows].mean(axis=0), x[train_rows].std(axis=0) + 1e-6
    standardised = (x - mean) / std
    for key, classifier, inputs in (
        ("few_shot", "logistic", standardised),
        ("few_shot_knn", "knn", x),
    ):
        metrics[key] = evaluation.few_shot_accuracy(
            inputs[train_rows],
            y[train_rows],
            inputs[test_rows],
            y[test_rows],
            n_shot=ev.n_shot,
            seeds=ev.few_shot_seeds,
            classifier=classifier,
        ).mean
    metrics["anomaly_auc"] = evaluation.one_vs_rest_anomaly_auc(
        x[train_rows], y[train_rows], x[test_rows], y[test_rows], k=ev.anomaly_neighbours
    ).mean_auc
    if base_features is not None:
        metrics["nn_preservation"] = evaluation.nearest_neighbour_preservation(
            base_features["levels"], model_features["levels"], k=ev.neighbours
        )
    return metrics


def _held_out_split(leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first half of every held-out category's images for training, the rest for test."""
    train, test = [], []
    for leaf in np.unique(leaves):
        members = np.flatnonzero(leaves == leaf)
        half = len(members) // 2
        train.append(members[:half])
        test.append(members[half:])
    return np.concatenate(train), np.concatenate(test)


def noise_ceilings(data_dir: pathlib.Path) -> dict[str, float]:
    """The observers' noise ceilings in the metric names of :func:`evaluate_features`."""
    levels = alignet_data.load_triplets(data_dir, "levels")
    test = alignet_data.load_triplets(data_dir, "test")
    ceilings = {"accuracy": evaluation.noise_ceiling(levels.probabilities)}
    for code, name in enumerate(LEVELS):
        rows = levels.levels == code
        if rows.any():
            ceilings[f"accuracy/{name}"] = evaluation.noise_ceiling(levels.probabilities[rows])
    ceilings["things_accuracy"] = evaluation.noise_ceiling(test.probabilities)
    return ceilings


# The whole chain.


class _Timer:
    """Wall and CPU seconds of each stage (CPU time, of all threads, depends less on
    the machine's load than wall time)."""

    def __init__(self):
        self.seconds: dict[str, dict[str, float]] = {}

    def __call__(self, stage: str, fn: Callable[[], Any]) -> Any:
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.seconds[stage] = {
            "wall": round(time.perf_counter() - start, 1),
            "cpu": round(time.process_time() - cpu, 1),
        }
        return result


def run(config: AligNetConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Runs (or resumes) every stage, writes ``report.md`` and plots; returns the metrics."""
    workdir = pathlib.Path(workdir)
    timer = _Timer()
    data_dir = timer("world", lambda: build_world(config, workdir))
    pool = alignet_data.load_images(data_dir, "pool")
    teacher = timer("teacher", lambda: train_teacher(config, workdir, pool))
    teacher_features = timer(
        "teacher_features",
        lambda: features(teacher, data_dir, workdir / "teacher" / "features.npz"),
    )
    base = timer("student_pretraining", lambda: pretrain_student(config, workdir, pool))
    aligned, raw, ud_summary = timer(
        "uncertainty_distillation",
        lambda: uncertainty_distillation(
            config, teacher_features, data_dir, workdir / "uncertainty_distillation"
        ),
    )
    surrogate = {"alignet": aligned, "unalignet": raw}
    students = {}
    clusters = {}
    for variant in config.variants:
        clusters[variant] = timer(
            f"{variant}_triplets",
            lambda v=variant: make_triplets(
                config, surrogate[v], teacher_features["pool"], workdir / v
            ),
        )
        students[variant] = timer(
            f"{variant}_student",
            lambda v=variant: distill_student(
                config,
                base,
                surrogate[v],
                clusters[v]["data_dir"],
                data_dir,
                workdir / v / "student",
            ),
        )

    def evaluate_all():
        eval_splits = ("humans", "levels", "held_out")
        spaces = {
            "teacher": {s: teacher_features[s] for s in eval_splits},
            "teacher_ud": {s: aligned.transform.apply(teacher_features[s]) for s in eval_splits},
            "base": {
                s: embed_images(base, alignet_data.load_images(data_dir, s)["image"])
                for s in eval_splits
            },
        }
        for variant, student in students.items():
            spaces[variant] = {
                s: embed_images(student, alignet_data.load_images(data_dir, s)["image"])
                for s in eval_splits
            }
        results = {
            name: evaluate_features(
                config, space, data_dir, base_features=spaces["base"] if name in students else None
            )
            for name, space in spaces.items()
        }
        return results, spaces

    results, spaces = timer("evaluation", evaluate_all)
    metrics: dict[str, Any] = dict(results)
    metrics["noise_ceiling"] = noise_ceilings(data_dir)
    metrics["uncertainty_distillation"] = ud_summary
    metrics["cluster_purity"] = {
        variant: {
            level: alignet_report.cluster_purity(c["labels"], pool[level])
            for level in alignet_data.LABELS
        }
        for variant, c in clusters.items()
    }
    metrics["stage_seconds"] = timer.seconds
    alignet_report.write_report(config, workdir, metrics, spaces, data_dir)
    return metrics
