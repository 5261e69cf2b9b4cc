r"""AligNet end to end: a surrogate teacher aligns a student across abstraction levels.

Muttenthaler et al. (2024) align vision models with the *multi-level* structure of
human concepts. :func:`run` composes the chain's stages over an
:class:`~alignjax.data.sources.ImageSource`, each stage one function with its artefacts
in the work directory (``alignjax run alignet`` on the simulated setting,
``alignjax fit alignet`` on a user's files: one code path):

.. code-block:: text

    source: images (+ labels, tree) + human triplets over some of them      stage 1
    teacher --features of every split--> raw features                       stage 2
    base student (pretrained here or a checkpoint)                          stage 2
    raw features + human triplets --uncertainty distillation--> transform   stage 3
    transformed pool features --k-means--> clusters --sampling--> triplets  stages 4-6
      (+ teacher similarities, sorted odd-last; train and test splits)
    triplets --TFDS/ArrayRecord--> Grain --fit(student, KL, decay_to_init)  stage 7
    students, teachers --evaluation suite--> metrics.json, report.md, PNGs  stage 8

1. **Images and humans**: the simulated setting (:mod:`alignjax.data.simulated`: a
   synthetic world or Fashion-MNIST, simulated observers, Levels triplets, held-out
   categories) or a user's image folder or TFDS data set with THINGS-format triplets
   (:mod:`alignjax.data.image_files`).
2. **Backbones** (:mod:`alignjax.methods.alignet_backbones`): the *teacher* (trained here
   with supervised contrastive learning, a big_vision checkpoint, or a features file)
   and the *base student*, a ViT with AligNet's linear triplet head on pooled features
   (pretrained here with SimCLR, or a big_vision checkpoint).
3. **Uncertainty distillation** (:mod:`alignjax.methods.alignet_surrogate`): the
   surrogate teacher's affine transform of the teacher's features, fitted to the human
   triplets; the untransformed teacher gets its temperature the same way. Without human
   triplets only the untransformed teacher exists (UnAligNet).
4. **Clusters and triplets** (:mod:`alignjax.methods.alignet_triplets`): k-means of
   the transformed teacher features of the pool; within-cluster, border and
   between-cluster triplets; the teacher's similarities as pseudo-labels, odd one out
   last; stored as a TFDS/ArrayRecord triplet set with a ``test`` split never trained on.
5. **Student distillation** (:mod:`alignjax.methods.alignet_distillation`): the stored
   triplets streamed by Grain, joined with the pool's images, into the generic trainer
   (KL or JS to the teacher's choices, decay toward the base student); the student is
   exported as a big_vision ``.npz`` (``<variant>/student.npz``).
6. **Evaluation** (:mod:`alignjax.methods.alignet_evaluation`, reported by
   :mod:`alignjax.methods.alignet_report`): odd-one-out accuracy on held-out human
   triplets and per abstraction level against the noise ceiling, agreement with the
   teacher on its test triplets, neighbour preservation, few-shot accuracy and anomaly
   detection, for the base student, the AligNet student, the UnAligNet student
   (distilled from the untransformed teacher through the same chain) and the teachers.

**Stages.** :func:`run` runs the stages of :func:`stage_names` through
:class:`~alignjax.training.stages.Stages`: each is announced on stderr (``stage 2/11:
teacher``), labels its progress bars, and its wall and CPU seconds are kept in
``stage_seconds.json`` and ``metrics["stage_seconds"]``.

**Resuming.** Every stage skips work whose artefact exists: the data sets, the feature
files, the transform, the clusters and triplet sets; training stages checkpoint through
the trainer (``<stage>/checkpoints``) and resume there, so a killed run continues where
it stopped and a finished run is restored rather than retrained. A restored stage says
so in one line (``restored teacher (step 150)``, ``restored teacher_features``), and its
times of the first run are kept (a rerun's go to ``resumed_stage_seconds``).

**Scale.** Every training stage has its own ``TrainConfig`` and so its own mesh
(``MeshConfig(data=-1, fsdp=1)``: data parallel over all devices); ``--set
student_train.mesh.fsdp=2`` shards the student's parameters as well. The same command
runs on many hosts by starting one process per host after
``jax.distributed.initialize()`` (``alignjax run alignet --distributed``): the Grain
streams read ``jax.process_index()``'s share of every batch, the trainer assembles
global batches and Orbax writes one checkpoint; the data stages are deterministic from
their seeds, so every host builds the same artefacts (use a shared ``--workdir`` or a
local copy per host).

References:
  Muttenthaler, L., Greff, K., Born, F., Spitzer, B., Kornblith, S., Mozer, M. C.,
  Müller, K.-R., Unterthiner, T. and Lampinen, A. K. (2024). Aligning machine and human
  visual representations across abstraction levels. arXiv:2409.06509.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from alignjax.data import simulated, tfds_builders
from alignjax.data.image_files import files_source
from alignjax.data.simulated import SimulatedConfig
from alignjax.data.sources import ImageSource
from alignjax.methods import (
    alignet_backbones,
    alignet_evaluation,
    alignet_report,
    alignet_surrogate,
    alignet_triplets,
)
from alignjax.methods.alignet_config import AligNetConfig
from alignjax.methods.alignet_distillation import distill_student
from alignjax.methods.alignet_surrogate import SurrogateTeacher
from alignjax.training.stages import Stages, note, restored


def stage_names(config: AligNetConfig) -> list[str]:
    """The stages :func:`run` runs, in order (the keys of its ``stage_seconds``)."""
    per_variant = [f"{v}_{stage}" for v in config.variants for stage in ("triplets", "student")]
    return [
        "data",
        "teacher",
        "teacher_features",
        "student_pretraining",
        "uncertainty_distillation",
        *per_variant,
        "evaluation",
        "report",
    ]


def image_source(config: AligNetConfig, workdir: pathlib.Path) -> ImageSource:
    """Stage 1: the simulated setting (stored in ``workdir/data``) or the user's files."""
    if isinstance(config.data, SimulatedConfig):
        data_dir = workdir / "data"
        # The two data sets build_simulated skips building when they are there.
        stored = [
            data_dir / name / tfds_builders.VERSION / "dataset_info.json"
            for name in (simulated.IMAGES_NAME, simulated.HUMAN_TRIPLETS_NAME)
        ]
        if all(path.exists() for path in stored):
            restored()
        else:
            note("rendering the images and simulating the people's triplets")
        return simulated.simulated_source(config.data, data_dir)
    return files_source(config.data)


def surrogate_teachers(
    config: AligNetConfig,
    source: ImageSource,
    features: Mapping[str, np.ndarray],
    directory: pathlib.Path,
) -> tuple[dict[str, SurrogateTeacher], dict[str, Any]]:
    """Stage 3: the teacher of each variant (``"alignet"``: UD, ``"unalignet"``: untransformed).

    Returns:
      ``({variant: teacher}, summary)``.
    """
    if "humans" not in source.triplets:
        raw, summary = alignet_surrogate.untransformed_teacher(features["pool"], directory)
        return {"unalignet": raw}, summary
    aligned, raw, summary = alignet_surrogate.uncertainty_distillation(
        config.uncertainty_distillation,
        features["humans"],
        source.triplets["humans"],
        directory,
        seed=config.seed,
    )
    return {"alignet": aligned, "unalignet": raw}, summary


def run(config: AligNetConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Runs (or resumes) every stage, writes ``report.md`` and plots; returns the metrics.

    Artefacts: ``data/`` (the simulated setting), ``teacher/`` (checkpoints,
    ``features.npz``), ``student_base/``, ``uncertainty_distillation/``, and per variant
    ``<variant>/clusters.npz``, ``<variant>/tfds/`` (the triplets), ``<variant>/student/``
    (checkpoints, ``metrics.jsonl``) and ``<variant>/student.npz`` (big_vision).
    """
    workdir = pathlib.Path(workdir)
    stages = Stages(stage_names(config), workdir)
    with stages("data"):
        source = image_source(config, workdir)
    with stages("teacher"):
        teacher = alignet_backbones.teacher(config, source, workdir)
    with stages("teacher_features"):
        features = alignet_backbones.teacher_features(
            config, teacher, source, workdir / "teacher" / "features.npz"
        )
    with stages("student_pretraining"):
        base = alignet_backbones.base_student(config, source, workdir)
    with stages("uncertainty_distillation"):
        surrogates, ud_summary = surrogate_teachers(
            config, source, features, workdir / "uncertainty_distillation"
        )
    students, clusters, tests = {}, {}, {}
    for variant in config.variants:
        surrogate = surrogates[variant]
        pool_features = surrogate.transform.apply(features["pool"])
        with stages(f"{variant}_triplets"):
            clusters[variant] = alignet_triplets.make_triplets(
                config.sampling, pool_features, workdir / variant
            )
            test = alignet_triplets.read_test_triplets(clusters[variant]["data_dir"])
            if test is not None:
                tests[variant] = test
        with stages(f"{variant}_student"):
            students[variant] = distill_student(
                base,
                source.splits["pool"],
                clusters[variant]["data_dir"],
                surrogate.temperature,
                workdir / variant / "student",
                distillation=config.distillation,
                train=config.student_train,
                input_range=config.input_range,
                seed=config.seed + 2,
                teacher_features=pool_features,
            )
            alignet_backbones.export_student(students[variant], workdir / variant / "student.npz")
    with stages("evaluation"):
        results, spaces = alignet_evaluation.evaluate_models(
            config.evaluation,
            source,
            features,
            surrogates,
            base,
            students,
            tests,
            config.input_range,
        )
    with stages("report"):
        metrics: dict[str, Any] = dict(results)
        metrics["uncertainty_distillation"] = ud_summary
        pool_labels = source.labels.get("pool", {})
        if pool_labels:
            metrics["cluster_purity"] = {
                variant: {
                    name: alignet_report.cluster_purity(c["labels"], labels)
                    for name, labels in pool_labels.items()
                }
                for variant, c in clusters.items()
            }
        metrics.update(stages.record())
        alignet_report.write_report(config, workdir, metrics, spaces, source)
    metrics.update(stages.record())  # with the report's own time
    return metrics
