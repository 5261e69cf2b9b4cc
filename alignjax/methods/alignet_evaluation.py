"""AligNet's evaluation: every model on the benchmarks an image source provides.

The models are the base student, the distilled students, the teacher and (with human
triplets) the teacher after uncertainty distillation. Each is a representation of every
evaluated split, scored by :func:`alignjax.evaluation.suite.evaluate` with its metric
vocabulary (:func:`benchmarks`):

- ``humans`` (with human triplets): ``odd_one_out/humans[/<level>]`` on the held-out
  human triplets (``triplets["humans"]["test"]``), with ``noise_ceiling/humans`` where
  they carry choice probabilities;
- ``evaluation``: its triplet sets, e.g. ``odd_one_out/levels/<level>`` on Levels
  triplets, and ``neighbour_preservation`` of each distilled student against the base
  student;
- ``held_out`` (with ``"leaf"`` labels): ``few_shot/<classifier>/<n>`` and
  ``anomaly_auc`` on a category-balanced split of its images
  (:func:`held_out_categories`: categories too small for the probes are left out);
- ``teacher_triplets``: the pool images of the AligNet test triplets, never trained on:
  ``odd_one_out/<variant>_teacher[/<kind>]`` is the agreement with that teacher's odd
  one out, per sampling kind (within, border, between).

Odd-one-out accuracies are reported with the configured kernel and, prefixed by its
name (``dot/odd_one_out/...``), with the other one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from flax import nnx

from alignjax.data.levels import split_per_category
from alignjax.data.sources import ImageRows, ImageSource
from alignjax.data.triplet_set import TripletSet
from alignjax.evaluation.suite import Benchmark, EvaluationConfig, HeldOut, evaluate
from alignjax.methods.alignet_backbones import embed_splits
from alignjax.methods.alignet_surrogate import SurrogateTeacher
from alignjax.training.stages import note, part

TEACHER_TRIPLETS = "teacher_triplets"
# Where neighbour preservation is measured.
NEIGHBOUR_SPLIT = "evaluation"


def held_out_categories(leaves: np.ndarray, config: EvaluationConfig) -> HeldOut | None:
    """Each category's first half as the pool, the rest as test items
    (:func:`~alignjax.data.levels.split_per_category`), for the categories whose pool holds
    the few shots and the anomaly detector's neighbours; ``None`` if fewer than two do."""
    first = split_per_category(leaves)
    need = max(*config.few_shot_shots, config.anomaly_neighbours)
    kept = [
        leaf
        for leaf in np.unique(leaves)
        if np.sum(first & (leaves == leaf)) >= need and np.any(~first & (leaves == leaf))
    ]
    if len(kept) < 2:
        return None
    rows = np.flatnonzero(np.isin(leaves, kept))
    return HeldOut.split(rows, leaves[rows], first[rows])


def benchmarks(source: ImageSource, config: EvaluationConfig) -> dict[str, Benchmark]:
    """The source's benchmarks, by the split whose images they index (module docstring)."""
    result = {}
    if "humans" in source.triplets:
        result["humans"] = Benchmark(triplets={"humans": source.triplets["humans"]["test"]})
    if NEIGHBOUR_SPLIT in source.splits:
        sets = dict(source.triplets.get(NEIGHBOUR_SPLIT, {}))
        result[NEIGHBOUR_SPLIT] = Benchmark(triplets=sets)
    leaves = source.labels.get("held_out", {}).get("leaf")
    held_out = None if leaves is None else held_out_categories(leaves, config)
    if held_out is not None:
        result["held_out"] = Benchmark(held_out=held_out)
    return result


def teacher_benchmark(tests: Mapping[str, TripletSet]) -> tuple[np.ndarray, Benchmark]:
    """The variants' test triplets over their pool images: ``(pool rows, Benchmark)``.

    The benchmark's items are the pool rows every test triplet uses, once each, sorted;
    set ``<variant>_teacher`` holds a variant's triplets re-indexed into them.
    """
    rows = np.unique(np.concatenate([t.indices.ravel() for t in tests.values()]))
    return rows, Benchmark(
        triplets={
            f"{variant}_teacher": dataclasses.replace(
                t, indices=np.searchsorted(rows, t.indices), n_items=len(rows)
            )
            for variant, t in tests.items()
        }
    )


def evaluate_model(
    features: Mapping[str, np.ndarray],
    splits: Mapping[str, Benchmark],
    config: EvaluationConfig,
    reference: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """One model's metrics over every benchmark (``reference``: the base student's
    features, for neighbour preservation)."""
    other = dataclasses.replace(config, kernel="dot" if config.kernel == "cosine" else "cosine")
    metrics: dict[str, float] = {}
    for split, benchmark in splits.items():
        note(f"scoring on {split}")
        base = reference[split] if reference is not None and split == NEIGHBOUR_SPLIT else None
        metrics.update(evaluate(features[split], benchmark, config, reference=base))
        if benchmark.triplets:
            triplets_only = Benchmark(triplets=benchmark.triplets)
            for name, value in evaluate(features[split], triplets_only, other).items():
                if name.startswith("odd_one_out/"):
                    metrics[f"{other.kernel}/{name}"] = value
    return metrics


def evaluate_models(
    config: EvaluationConfig,
    source: ImageSource,
    teacher_features: Mapping[str, np.ndarray],
    surrogates: Mapping[str, SurrogateTeacher],
    base: nnx.Module,
    students: Mapping[str, nnx.Module],
    tests: Mapping[str, TripletSet],
    input_range: tuple[float, float],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
    """Every model on every benchmark.

    Args:
      config: the evaluation's settings.
      source: the images and their benchmarks.
      teacher_features: the teacher's raw features of every split (and the pool).
      surrogates: the surrogate teachers by variant (``"alignet"``: the UD teacher).
      base: the base student.
      students: the distilled students by variant.
      tests: the variants' AligNet test triplets over the pool (may be empty).
      input_range: the models' input range.

    Returns:
      ``(metrics, spaces)``: ``{model: {metric: value}}`` and ``{model: {split:
      features}}`` for the models ``teacher``, ``teacher_ud`` (with a UD teacher),
      ``base`` and the variants.
    """
    splits = benchmarks(source, config)
    images = {split: source.splits[split] for split in splits}
    raw = {split: teacher_features[split] for split in splits}
    if tests:
        rows, splits[TEACHER_TRIPLETS] = teacher_benchmark(tests)
        images[TEACHER_TRIPLETS] = ImageRows(source.splits["pool"], rows)
        raw[TEACHER_TRIPLETS] = teacher_features["pool"][rows]
    spaces = {"teacher": raw}
    if "alignet" in surrogates:
        transform = surrogates["alignet"].transform
        spaces["teacher_ud"] = {split: transform.apply(x) for split, x in raw.items()}
    for name, model in {"base": base, **students}.items():
        with part(name):
            spaces[name] = embed_splits(model, images, input_range)
    metrics = {}
    for name, space in spaces.items():
        with part(name):
            reference = spaces["base"] if name in students else None
            metrics[name] = evaluate_model(space, splits, config, reference=reference)
    return metrics, spaces
