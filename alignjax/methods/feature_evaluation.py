"""Evaluate a user's own features on their own odd-one-out triplets (``alignjax eval``).

The files are those of "bring your own data" (``docs/data.md``): a feature matrix
``[n_items, d]`` (``.npy`` or text), THINGS-format triplets (rows of three item indices,
odd one out last; text or ``.npy``), optionally one level name per triplet (text, one
per line) and a gLocal / uncertainty-distillation transform (``.npz`` with ``weights``,
``bias``, ``mean``, ``std``) to apply first.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Literal

import numpy as np

from alignjax import evaluation
from alignjax.data import readers
from alignjax.models import AffineParams


def read_levels(
    path: str | os.PathLike[str], n_triplets: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-triplet level names (one per line) as codes ``[n]`` and the sorted names."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"levels file {path} does not exist")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != n_triplets:
        raise ValueError(
            f"{path}: {len(names)} level names for {n_triplets} triplets; need one per triplet"
        )
    level_names = tuple(sorted(set(names)))
    codes = np.array([level_names.index(name) for name in names])
    return codes, level_names


def evaluate_features(
    features: np.ndarray,
    triplets: np.ndarray,
    *,
    levels: np.ndarray | None = None,
    level_names: tuple[str, ...] = (),
    kernel: Literal["dot", "cosine"] = "dot",
    transform: AffineParams | None = None,
    neighbours: int = 10,
) -> dict[str, Any]:
    """Odd-one-out accuracy of ``features`` on ``triplets`` (and of the transformed features).

    Returns:
      ``{"features": {...accuracy...}}`` and, with a transform, ``"transformed"`` and the
      nearest-neighbour preservation between the two spaces (``neighbours`` neighbours).
    """
    spaces = {"features": features}
    if transform is not None:
        spaces["transformed"] = transform.apply(features)
    results: dict[str, Any] = {}
    for name, space in spaces.items():
        result = evaluation.odd_one_out_accuracy(
            space, triplets, kernel=kernel, levels=levels, level_names=level_names or None
        )
        results[name] = result.to_dict()
    if transform is not None:
        k = min(neighbours, len(features) - 1)
        results["nearest_neighbour_preservation"] = float(
            evaluation.nearest_neighbour_preservation(features, spaces["transformed"], k=k)
        )
    return results


def evaluate_files(
    *,
    features: str | os.PathLike[str],
    triplets: str | os.PathLike[str],
    levels: str | os.PathLike[str] | None = None,
    kernel: Literal["dot", "cosine"] = "dot",
    transform: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_features` on files (see the module docstring for their formats)."""
    matrix = readers.read_features(features)
    triplet_set = readers.read_triplets(triplets, n_items=len(matrix))
    codes, names = (None, ()) if levels is None else read_levels(levels, len(triplet_set.indices))
    params = None if transform is None else AffineParams.load_npz(transform)
    return evaluate_features(
        matrix,
        triplet_set.indices,
        levels=codes,
        level_names=names,
        kernel=kernel,
        transform=params,
    )


def format_results(results: dict[str, Any]) -> str:
    """The results as aligned ``name  value`` lines."""
    lines = []
    for space, values in results.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if value is not None:
                    lines.append(
                        f"{space + '/' + key:48s} {value:.4f}"
                        if isinstance(value, float)
                        else f"{space + '/' + key:48s} {value}"
                    )
        else:
            lines.append(f"{space:48s} {values:.4f}")
    return "\n".join(lines)
