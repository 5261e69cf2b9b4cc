"""``alignjax eval``: the evaluation suite on a user's own files.

The files are those of "bring your own data" (``docs/data.md``): a feature matrix
``[n_items, d]`` (``.npy`` or text, read by :func:`alignjax.data.readers.read_features`),
THINGS-format triplets (rows of three item indices, odd one out last), optionally one
level name per triplet (text, one per line) and a gLocal / uncertainty-distillation
transform (``.npz`` with ``weights``, ``bias``, ``mean``, ``std``) to apply first. Every
file is checked; an error names the file and the row.

The results are :func:`alignjax.evaluation.suite.evaluate`'s metrics of the features
and, with a transform, of the transformed features (with their neighbour preservation
against the features), under ``"features"`` and ``"transformed"``.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from alignjax.data import readers
from alignjax.data.triplet_set import TripletSet
from alignjax.evaluation.suite import Benchmark, EvaluationConfig, evaluate
from alignjax.models.affine import AffineParams

#: The name of the triplet set of ``alignjax eval`` in the metric names.
TRIPLETS = "triplets"


def evaluate_files(
    *,
    features: str | os.PathLike[str],
    triplets: str | os.PathLike[str],
    levels: str | os.PathLike[str] | None = None,
    kernel: Literal["dot", "cosine"] = "dot",
    transform: str | os.PathLike[str] | None = None,
    neighbours: int = 10,
) -> dict[str, dict[str, float]]:
    """Odd-one-out accuracy (per level, with ``levels``) of the features in ``features``
    on the triplets in ``triplets``, and of the transformed features with ``transform``.

    Raises:
      FileNotFoundError, ValueError: a missing or bad file (the message names it and
        the row), or a transform for features of another width.
    """
    matrix = readers.read_features(features)
    triplet_set = readers.read_triplets(triplets, n_items=len(matrix))
    if levels is not None:
        codes, names = readers.read_levels(levels, len(triplet_set))
        triplet_set = TripletSet(triplet_set.indices, levels=codes, level_names=names)
    benchmark = Benchmark(triplets={TRIPLETS: triplet_set})
    config = EvaluationConfig(kernel=kernel, neighbours=min(neighbours, len(matrix) - 1))
    results = {"features": evaluate(matrix, benchmark, config)}
    if transform is not None:
        params = AffineParams.load_npz(transform)
        if params.weights.shape[0] != matrix.shape[1]:
            raise ValueError(
                f"{transform}: the transform takes {params.weights.shape[0]} features, but "
                f"{features} has {matrix.shape[1]} per row."
            )
        results["transformed"] = evaluate(params.apply(matrix), benchmark, config, reference=matrix)
    return results


def format_results(results: dict[str, dict[str, Any]]) -> str:
    """The results as aligned ``space/metric  value`` lines."""
    return "\n".join(
        f"{space + '/' + name:48s} {value:.4f}"
        for space, values in results.items()
        for name, value in values.items()
    )
