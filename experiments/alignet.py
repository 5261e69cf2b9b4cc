"""alignet: AligNet end to end: surrogate teacher, synthetic triplets, aligned student.

alignjax run alignet
alignjax run alignet --preset fashion-mnist --workdir runs/alignet-fashion-mnist

The same chain on a user's images and judgments (``alignjax fit alignet``) runs the
config of :func:`files_config`: a preset's sizes with the user's files as the data.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alignjax.data.image_files import ImageFilesConfig
    from alignjax.methods.alignet_config import AligNetConfig

PRESETS = {
    "quick": "hierarchy world (64 categories, 32x32 images), 8192 pool images, ViT-mu teacher and "
    "student, 1000 distillation steps per student; about 6 minutes on 2 CPU cores",
    "paper": "hierarchy world, 32768 pool images, deeper teacher and student, 4000 distillation "
    "steps per student; about 30 minutes on 2 CPU cores",
    "tiny": "for tests and notebooks: 16x16 images, 1024 pool images, 100 to 300 steps per "
    "training stage; 1 to 2 minutes on 2 CPU cores",
    "fashion-mnist": "Fashion-MNIST from the Debian package, its superordinate -> class hierarchy, "
    "quick sizes; about 6 minutes on 2 CPU cores",
}


def get_config(preset: str) -> AligNetConfig:
    # The method's config, and JAX with it, is imported here rather than at the top:
    # `alignjax list` and `--help` read PRESETS without it.
    from alignjax.methods.alignet_config import AligNetConfig

    config = AligNetConfig()
    if preset == "quick":
        return config
    if preset == "paper":
        return _paper(config)
    if preset == "tiny":
        return _tiny(config)
    if preset == "fashion-mnist":
        return _fashion_mnist(config)
    raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")


def _paper(config: AligNetConfig) -> AligNetConfig:
    def steps(train, n, warmup):
        return dataclasses.replace(train, num_steps=n, warmup_steps=warmup, log_every=100)

    return dataclasses.replace(
        config,
        data=dataclasses.replace(
            config.data,
            pool_size=32768,
            human_items=1000,
            human_train=50000,
            human_validation=5000,
            human_test=10000,
            levels_items_per_leaf=32,
            levels_per_level=3000,
            held_out_items_per_leaf=100,
        ),
        teacher=dataclasses.replace(config.teacher, depth=4, embed_dim=64),
        teacher_train=steps(config.teacher_train, 2000, 100),
        student=dataclasses.replace(config.student, depth=2),
        student_pretrain=steps(config.student_pretrain, 2000, 100),
        sampling=dataclasses.replace(config.sampling, num_clusters=32, num_triplets=262144),
        student_train=steps(config.student_train, 4000, 200),
    )


def _tiny(config: AligNetConfig) -> AligNetConfig:
    def steps(train, n, warmup):
        return dataclasses.replace(train, num_steps=n, warmup_steps=warmup, log_every=10)

    from alignjax.data.hierarchy import HierarchyWorld

    ud = config.uncertainty_distillation
    return dataclasses.replace(
        config,
        data=dataclasses.replace(
            config.data,
            world=HierarchyWorld(image_size=16),
            pool_size=1024,
            human_items=200,
            human_train=3000,
            human_validation=500,
            human_test=1000,
            levels_items_per_leaf=6,
            levels_per_level=300,
            held_out_items_per_leaf=10,
        ),
        teacher_train=steps(config.teacher_train, 150, 10),
        student_pretrain=steps(config.student_pretrain, 100, 10),
        pretraining=dataclasses.replace(config.pretraining, batch_size=64),
        uncertainty_distillation=dataclasses.replace(
            ud,
            temperatures=(0.5,),
            penalties=(0.001,),
            batch_size=256,
            train=dataclasses.replace(ud.train, num_steps=300),
        ),
        sampling=dataclasses.replace(
            config.sampling, num_clusters=8, num_triplets=4096, kmeans_init=1
        ),
        distillation=dataclasses.replace(config.distillation, batch_size=32),
        student_train=dataclasses.replace(steps(config.student_train, 200, 20), learning_rate=2e-3),
        evaluation=dataclasses.replace(
            config.evaluation, few_shot_shots=(3,), few_shot_seeds=(0, 1)
        ),
    )


def _fashion_mnist(config: AligNetConfig) -> AligNetConfig:
    return dataclasses.replace(
        config,
        data=dataclasses.replace(
            config.data,
            dataset="fashion_mnist",
            levels_items_per_leaf=150,
            held_out_items_per_leaf=100,
        ),
        teacher=dataclasses.replace(config.teacher, variant="mu/7"),
        teacher_labels="leaf",
        student=dataclasses.replace(config.student, variant="mu/7"),
    )


def files_config(
    preset: str,
    data: ImageFilesConfig,
    *,
    teacher_features: str | None = None,
    teacher_checkpoint: str | None = None,
    student_checkpoint: str | None = None,
) -> AligNetConfig:
    """The chain on a user's files, with the sizes of ``preset``.

    Every file is named by its absolute path, so that a run resumes from any directory.
    A teacher trained here learns the classes (``teacher_labels="leaf"``); the students
    are the AligNet one with human triplets, the UnAligNet one without (``--set
    variants=alignet,unalignet`` distills both).
    """
    files = {
        name: _absolute(getattr(data, name))
        for name in ("image_folder", "tfds_data_dir", "triplets", "item_images")
    }
    return dataclasses.replace(
        get_config(preset),
        data=dataclasses.replace(data, **files),
        teacher_labels="leaf",
        teacher_features=_absolute(teacher_features),
        teacher_checkpoint=_absolute(teacher_checkpoint),
        student_checkpoint=_absolute(student_checkpoint),
        variants=("alignet",) if data.triplets is not None else ("unalignet",),
    )


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def run(config: AligNetConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Runs the experiment: :func:`alignjax.methods.alignet.run`."""
    from alignjax.methods import alignet

    return alignet.run(config, workdir)
