"""The oddball ("intruder") task on geometric shapes.

A trial shows six shapes: five instances of one quadrilateral and one intruder whose
vertex was displaced. A model chooses the item whose embedding is farthest (Euclidean)
from the mean embedding of all six, the mean including the candidate itself (for a
fixed trial this ranks items exactly as the distance to the mean of the other five,
which is ``6/5`` times larger); ties go to the first item. The model errs when its
choice is not the intruder. People find the intruder faster and more reliably among
regular shapes (square, rectangle) than irregular ones; a human-like model's error
rates per shape correlate with people's.

References:
  Sablé-Meyer et al. (2021), Sensitivity to geometric shape regularity in humans and
  baboons. Marjieh et al., Using generative similarity to learn human-aligned
  representations (quadrilateral oddball task).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from alignjax.evaluation import _validation
from alignjax.evaluation.correlation import CorrelationResult, correlate


@dataclasses.dataclass(frozen=True)
class OddballResult:
    """Model error rates in the oddball task.

    Attributes:
      error_rate: error rate over all trials.
      per_shape_error_rate: error rate per shape name (NaN for a shape without trials).
      per_shape_n_trials: trials per shape name.
      human_correlation: correlation of per-shape model and human error rates over
        shapes with trials, or ``None`` if no human error rates were given.
    """

    error_rate: float
    per_shape_error_rate: dict[str, float]
    per_shape_n_trials: dict[str, int]
    human_correlation: CorrelationResult | None = None

    def to_dict(self) -> dict[str, float]:
        flat = {"error_rate": self.error_rate}
        flat.update({f"error_rate/{name}": v for name, v in self.per_shape_error_rate.items()})
        if self.human_correlation is not None:
            flat.update({f"human_{key}": v for key, v in self.human_correlation.to_dict().items()})
        return flat


def _check_embeddings(embeddings) -> np.ndarray:
    array = _validation.as_array("embeddings", embeddings, ndim=3, what="[n_trials, 6, d]")
    if array.shape[0] == 0 or array.shape[1] < 3 or array.shape[2] < 1:
        raise ValueError(
            f"embeddings must have shape [n_trials, 6, d] (at least 3 items per trial);"
            f" got shape {array.shape}."
        )
    return array


def oddball_choices(embeddings) -> np.ndarray:
    """The model's intruder choice per trial: the item farthest from the trial mean.

    .. math::

       \\hat\\imath = \\arg\\max_i \\lVert e_i - \\tfrac{1}{6} \\textstyle\\sum_j e_j \\rVert_2

    Args:
      embeddings: ``[n_trials, 6, d]`` embeddings of the six shapes of each trial.

    Returns:
      ``[n_trials]`` chosen item index in ``0..5``.

    >>> trial = [[0.0, 0.0]] * 4 + [[0.1, 0.0], [0.0, 3.0]]
    >>> oddball_choices([trial])
    array([5])
    """
    array = _check_embeddings(embeddings)
    distances = np.linalg.norm(array - array.mean(axis=1, keepdims=True), axis=2)
    return np.argmax(distances, axis=1)


def oddball_error_rates(
    embeddings,
    intruder_indices,
    shape_ids,
    *,
    shape_names: Sequence[str] | None = None,
    human_error_rates=None,
) -> OddballResult:
    """Error rates of the farthest-from-mean rule, overall and per shape.

    .. math::

       \\text{err}_s = \\frac{1}{|T_s|} \\sum_{t \\in T_s} \\mathbb{1}[\\hat\\imath_t \\neq i^*_t]

    Args:
      embeddings: ``[n_trials, 6, d]`` embeddings.
      intruder_indices: ``[n_trials]`` position of the true intruder in ``0..5``.
      shape_ids: ``[n_trials]`` integer shape of each trial, ``0..n_shapes-1``.
      shape_names: optional names of shapes ``0..n_shapes-1`` (e.g. the 11
        quadrilaterals in the human-study order); without it shapes are named by id.
      human_error_rates: optional ``[n_shapes]`` human error rate per shape id (in the
        order of ``shape_names``; requires ``shape_names``). NaN entries are omitted
        from the correlation, as are shapes without trials.

    Returns:
      An :class:`OddballResult`.

    >>> trial = [[0.0, 0.0]] * 4 + [[0.1, 0.0], [0.0, 3.0]]
    >>> result = oddball_error_rates([trial, trial], [5, 4], [0, 1],
    ...                              shape_names=["square", "random"])
    >>> result.error_rate, result.per_shape_error_rate
    (0.5, {'square': 0.0, 'random': 1.0})
    """
    array = _check_embeddings(embeddings)
    n_trials, n_items = array.shape[:2]
    intruders = _validation.as_labels("intruder_indices", intruder_indices, n_trials)
    if (
        not np.issubdtype(intruders.dtype, np.integer)
        or intruders.min() < 0
        or intruders.max() >= n_items
    ):
        raise ValueError(
            f"intruder_indices must be integers in [0, {n_items}); got dtype"
            f" {intruders.dtype} with values in [{intruders.min()}, {intruders.max()}]."
        )
    shapes = _validation.as_labels("shape_ids", shape_ids, n_trials)
    if not np.issubdtype(shapes.dtype, np.integer) or shapes.min() < 0:
        raise ValueError(f"shape_ids must be non-negative integers; got dtype {shapes.dtype}.")
    if shape_names is None:
        if human_error_rates is not None:
            raise ValueError("human_error_rates needs shape_names to fix the shape order.")
        ids = np.unique(shapes)
        names = [str(i) for i in ids]
    else:
        names = [str(name) for name in shape_names]
        if len(set(names)) != len(names):
            raise ValueError(f"shape_names must be distinct; got {names}.")
        if shapes.max() >= len(names):
            raise ValueError(
                f"shape_ids must lie in [0, {len(names)}) to index shape_names; got max"
                f" {shapes.max()}."
            )
        ids = np.arange(len(names))

    errors = oddball_choices(array) != intruders
    per_shape: dict[str, float] = {}
    counts: dict[str, int] = {}
    for shape, name in zip(ids, names, strict=True):
        mask = shapes == shape
        counts[name] = int(mask.sum())
        per_shape[name] = float(errors[mask].mean()) if counts[name] else float("nan")

    human_correlation = None
    if human_error_rates is not None:
        human = np.asarray(human_error_rates, dtype=np.float64)
        if human.shape != (len(names),):
            raise ValueError(
                f"human_error_rates must have shape [{len(names)}] (one per shape name); got"
                f" shape {human.shape}."
            )
        human_correlation = correlate(list(per_shape.values()), human, nan_policy="omit")
    return OddballResult(
        error_rate=float(errors.mean()),
        per_shape_error_rate=per_shape,
        per_shape_n_trials=counts,
        human_correlation=human_correlation,
    )
