"""The config of the AligNet chain (:func:`alignjax.methods.alignet.run`).

One frozen, validated dataclass names everything a run does: where the images and the
human judgments come from (``data``: the simulated setting, or a user's files), where
the teacher and the base student come from (trained here, a big_vision checkpoint, or
for the teacher only its features), and the settings of every stage. The experiment's
presets (``experiments/alignet.py``) and ``alignjax fit alignet`` build it.
"""

from __future__ import annotations

from typing import Literal

from alignjax.config import ConfigError, TrainConfig, configclass
from alignjax.data import augmentations
from alignjax.data.image_files import ImageFilesConfig
from alignjax.data.simulated import SimulatedConfig
from alignjax.evaluation.suite import EvaluationConfig
from alignjax.methods import objectives
from alignjax.methods.alignet_distillation import DistillationConfig
from alignjax.methods.alignet_surrogate import UncertaintyDistillationConfig
from alignjax.methods.alignet_triplets import SamplingConfig
from alignjax.models import encoders

#: The distilled students: from the UD teacher, and from the untransformed teacher.
VARIANTS: tuple[str, ...] = ("alignet", "unalignet")


@configclass
class AligNetConfig:
    """The ``alignet`` chain (see :mod:`alignjax.methods.alignet` for the stages).

    Attributes:
      data: the images and human judgments: the simulated setting, or a user's files.
      teacher: the teacher's encoder (for a checkpoint: its variant, depth, pooling).
      teacher_objective: how the teacher learns here (``"supcon"`` on ``teacher_labels``).
      teacher_labels: the pool's label the teacher learns (SupCon).
      teacher_train: the teacher's training.
      teacher_checkpoint: a big_vision ViT ``.npz`` run as the teacher instead.
      teacher_features: or the teacher's features of the images, ``[n_images, d]`` in
        the image order (``.npy`` or text).
      student: the student's encoder (a ViT with a triplet head of ``embed_dim``).
      student_objective: the student's pretraining objective here.
      student_pretrain: the student's pretraining.
      student_checkpoint: a big_vision ViT ``.npz``: the pretrained base student instead.
      pretraining: batch size, temperatures and threads of the pretraining objectives
        (teacher and student).
      augmentation: SimCLR's random views.
      input_range: pixel values in ``[0, 1]`` are mapped onto this range before a model
        sees them (big_vision's ViTs were trained on ``(-1, 1)``).
      uncertainty_distillation: the surrogate teacher's transform.
      sampling: clusters and triplets over the pool.
      distillation: the student's distillation loss and stream.
      student_train: the student's fine-tuning (``decay_to_init`` toward the base student).
      evaluation: kernel, neighbours, few-shot probes, anomaly ``k`` of the evaluation
        (odd-one-out accuracy is also reported with the other kernel).
      variants: the distilled students: ``"alignet"`` (the UD teacher; needs human
        triplets) and ``"unalignet"`` (the untransformed teacher).
      seed: seed of the training streams.
    """

    data: SimulatedConfig | ImageFilesConfig = SimulatedConfig()
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
    teacher_checkpoint: str | None = None
    teacher_features: str | None = None
    student: encoders.EncoderConfig = encoders.EncoderConfig(
        kind="vit", variant="mu/8", depth=1, embed_dim=32, seed=1
    )
    student_objective: Literal["simclr", "supcon"] = "simclr"
    student_pretrain: TrainConfig = TrainConfig(
        num_steps=600, learning_rate=2e-3, warmup_steps=50, log_every=50, checkpoint_every=200
    )
    student_checkpoint: str | None = None
    pretraining: objectives.ObjectiveConfig = objectives.ObjectiveConfig(
        batch_size=128, examples_per_call=16
    )
    augmentation: augmentations.ImageAugmentation = augmentations.ImageAugmentation()
    input_range: tuple[float, float] = (0.0, 1.0)
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
    evaluation: EvaluationConfig = EvaluationConfig(
        kernel="cosine", few_shot_classifiers=("logistic", "knn"), standardize_probe=True
    )
    variants: tuple[str, ...] = VARIANTS
    seed: int = 0

    def __post_init__(self):
        unknown = set(self.variants) - set(VARIANTS)
        if unknown or not self.variants:
            raise ConfigError(
                f"={self.variants!r}: must be a non-empty subset of {VARIANTS}", "variants"
            )
        if self.teacher_checkpoint is not None and self.teacher_features is not None:
            raise ConfigError(
                f"={self.teacher_features!r}: give teacher_checkpoint or teacher_features, "
                "not both",
                "teacher_features",
            )
        if self.student.kind != "vit":
            raise ConfigError(f"={self.student.kind!r}: the student is a 'vit'", "student.kind")
        low, high = self.input_range
        if not low < high:
            raise ConfigError(
                f"={self.input_range!r}: must be (low, high), low < high", "input_range"
            )
        if isinstance(self.data, SimulatedConfig):
            # Each held-out category is the anomaly detector's normal set once, with the
            # first half of its images as training data.
            normal = self.data.held_out_items_per_leaf // 2
            if self.evaluation.anomaly_neighbours > normal:
                raise ConfigError(
                    f"={self.evaluation.anomaly_neighbours}: exceeds the {normal} training "
                    "images of a held-out category (data.held_out_items_per_leaf // 2)",
                    "evaluation.anomaly_neighbours",
                )
        elif self.data.triplets is None and "alignet" in self.variants:
            raise ConfigError(
                f"={self.variants!r}: the AligNet student needs human triplets "
                "(data.triplets); without them distill the 'unalignet' student only",
                "variants",
            )
