r"""gLocal: align a frozen representation with human triplets, keep its local structure.

Muttenthaler et al. (2023) fit a linear transform of a model's frozen features ``X``
(standardised by one global scalar mean and std) on human odd-one-out triplets,

.. math::

    \mathcal L(W, b) = (1 - \alpha)\, \mathcal L_{global} + \alpha\, \mathcal L_{local}
    + \lambda \big\| W - \bar w I \big\|_F^2, \qquad W_0 = 10^{-3} I,

- *global*: odd-one-out cross-entropy of the triplets on ``Z = X W + b`` (dot products,
  temperature 1; :func:`alignjax.losses.glocal_global_loss`);
- *local*: on a batch ``H`` of other images, the row-softmax of the cosine similarities
  of ``H`` (diagonal removed, temperature ``tau``) is the teacher of the same on
  ``H W + b`` (:func:`alignjax.losses.glocal_local_loss`);
- regulariser toward a scaled identity (:func:`alignjax.losses.scaled_identity_penalty`).

The **naive** transform, the paper's baseline, drops the local term and penalises
``lambda ||W||_F`` (:func:`alignjax.losses.frobenius_penalty`): it aligns as well but
is free to move every item's neighbours.

The chain, :func:`align`, runs on an :class:`AlignmentData` (the glocal experiment's
world or THINGS, :mod:`alignjax.methods.glocal_data`; a user's files,
:mod:`alignjax.methods.glocal_files`): it fits both kinds over the grid of
:class:`~alignjax.methods.glocal_fit.GlocalConfig` (the released code's configuration
by default; :mod:`alignjax.methods.glocal_fit`), keeps the best of each on validation
triplets, as the paper tunes on THINGS validation triplets, evaluates the base, naive
and gLocal features with :func:`alignjax.evaluation.suite.evaluate`, and writes the
transforms (``.npz``: ``weights, bias, mean, std``), the whole grid's trade-off and the
report (:mod:`alignjax.methods.glocal_report`).

References:
  Muttenthaler, Linhardt, Dippel, Vandermeulen, Hermann, Lampinen and Kornblith,
  *Improving neural network representations using human similarity judgments*,
  NeurIPS 2023 (arXiv:2306.04507).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

from alignjax.data.triplet_set import TripletSet
from alignjax.evaluation.suite import Benchmark, EvaluationConfig, HeldOut, evaluate
from alignjax.methods import glocal_report
from alignjax.methods.glocal_fit import GlocalConfig, grid_search
from alignjax.training.stages import Stages, note

#: The files :func:`align` writes the selected transforms to.
TRANSFORM_FILES = {"glocal": "transform.npz", "naive": "naive.npz"}
#: The stages of :func:`align`, in order.
ALIGN_STAGES = ("naive_grid", "glocal_grid", "evaluation", "report")


@dataclasses.dataclass(frozen=True, eq=False)
class AlignmentData:
    """What :func:`align` runs on. Every triplet set and held-out row indexes ``features``.

    Attributes:
      description: what the data are, for the report (a sentence).
      features: ``[n_items, d]`` base features of every item.
      fit_rows: ``[m]`` the rows transforms may see: the training, validation and local
        items; the transforms standardise by their statistics.
      train, validation: triplets over ``fit_rows`` (odd one out last) the transforms
        are fitted on and selected by.
      test: held-out triplets, or ``None``; with the observers' probabilities when
        simulated (a noise ceiling).
      levels: Levels test triplets (coarse, boundary, fine), or ``None``.
      local_features: ``[n_local, d]`` base features of other images (local term).
      held_out: items of categories no transform saw (few-shot, anomaly detection), or
        ``None``.
    """

    description: str
    features: np.ndarray
    fit_rows: np.ndarray
    train: TripletSet
    validation: TripletSet
    test: TripletSet | None
    levels: TripletSet | None
    local_features: np.ndarray
    held_out: HeldOut | None

    def benchmark(self, *, held_out: bool = True) -> Benchmark:
        """The validation, test and Levels triplets (and the held-out categories)."""
        named = {"validation": self.validation, "test": self.test, "levels": self.levels}
        return Benchmark(
            triplets={name: triplets for name, triplets in named.items() if triplets is not None},
            held_out=self.held_out if held_out else None,
        )


def align(
    data: AlignmentData,
    config: GlocalConfig,
    evaluation: EvaluationConfig,
    workdir: str | os.PathLike[str],
    *,
    seed: int = 0,
    stages: Stages | None = None,
) -> dict[str, Any]:
    """Fits naive and gLocal transforms over the grid, keeps the validation-best of each,
    evaluates the base and both selected spaces, and writes the artefacts.

    Stages (:data:`ALIGN_STAGES`, each resumes): each kind's grid
    (``workdir/transforms/<kind>/*.npz`` and each fit's ``metrics.jsonl``) and selected
    transform (``transform.npz`` for gLocal, ``naive.npz``), the evaluation, and
    ``grid.json`` (every grid point's validation and test accuracy and neighbour
    preservation) with ``report.md`` and its plots.

    Args:
      data: features, triplets, local features, held-out categories.
      config: the fits and their grid.
      evaluation: the evaluation; its ``kernel`` judges the base features, while the
        transformed ones are judged by dot products, the similarity they were fitted for.
      workdir: the run's directory.
      seed: seed of every fit's batch sampler.
      stages: the run's stages, which must include :data:`ALIGN_STAGES` (a chain that
        prepares ``data`` in stages of its own); by default just those.

    Returns:
      ``{"base" | "naive" | "glocal": metrics, "grid": [one dict per grid point]}`` in
      the vocabulary of :mod:`alignjax.evaluation.suite`, and the stages' times
      (``stage_seconds``: :meth:`~alignjax.training.stages.Stages.record`).
    """
    workdir = pathlib.Path(workdir)
    stages = stages or Stages(ALIGN_STAGES, workdir)
    # The transforms see the fit rows only; their triplets index those rows' positions.
    position = np.full(len(data.features), -1)
    position[data.fit_rows] = np.arange(len(data.fit_rows))
    fit_features = data.features[data.fit_rows]
    dot = dataclasses.replace(evaluation, kernel="dot")
    points = data.benchmark(held_out=False)
    spaces = {"base": data.features}
    grid_rows = []
    for kind in ("naive", "glocal"):
        with stages(f"{kind}_grid"):
            best, results = grid_search(
                fit_features,
                position[data.train.indices],
                position[data.validation.indices],
                data.local_features,
                config,
                kind=kind,
                workdir=workdir / "transforms",
                seed=seed,
            )
            params = best.load()
            params.save_npz(workdir / TRANSFORM_FILES[kind])
            spaces[kind] = params.apply(data.features)
            note(f"scoring the {len(results)} transforms on {', '.join(points.triplets)}")
            for result in results:
                space = result.load().apply(data.features)
                grid_rows.append(
                    {
                        "kind": kind,
                        **dataclasses.asdict(result.setting),
                        **evaluate(space, points, dot, reference=data.features),
                        "selected": result is best,
                    }
                )
    benchmark = data.benchmark()
    metrics: dict[str, Any] = {}
    with stages("evaluation"):
        for name, space in spaces.items():
            note(f"scoring the {name} features")
            kernel = evaluation if name == "base" else dot
            metrics[name] = evaluate(space, benchmark, kernel, reference=data.features)
    metrics["grid"] = grid_rows
    with stages("report"):
        glocal_report.write_report(
            metrics,
            workdir,
            description=data.description,
            evaluation=evaluation,
        )
        (workdir / "grid.json").write_text(json.dumps(grid_rows, indent=2))
    return {**metrics, **stages.record()}
