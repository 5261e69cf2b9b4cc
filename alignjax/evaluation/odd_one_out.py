"""Triplet odd-one-out accuracy of a representation, overall and per abstraction level.

A triplet ``[i, j, k]`` of item indices stores the observer's odd one out **last**, so
the "correct" pair is ``(i, j)``. A representation predicts the triplet correctly iff
the similarity of pair 01 is the *unique* maximum of ``[s01, s02, s12]``; ties count as
wrong (``alignjax.losses.triplet_accuracy``). Accuracy is the mean over triplets.

The noise ceiling is the accuracy of the best possible predictor when each triplet's
stored choice was drawn from reference probabilities ``p`` (over the pairs
``[01, 02, 12]``): ``mean_n max_k p_nk``. Chance is 1/3.

References:
  Muttenthaler et al. (2023), Improving neural network representations using human
  similarity judgments (gLocal). Muttenthaler et al. (2024), Aligning machine and human
  visual representations across abstraction levels (AligNet).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alignjax import losses
from alignjax.evaluation import _validation

# Elements of the gathered [chunk, 3, d] block. 2**20 float32 values (4 MiB) stay
# cache-sized; blocks of 2**23 measured 3-6x slower on CPU for d = 512 to 2048.
_CHUNK_ELEMENTS = 1 << 20


@dataclasses.dataclass(frozen=True)
class OddOneOutResult:
    """Odd-one-out accuracy with its noise ceiling, overall and per level.

    Attributes:
      accuracy: mean accuracy over all triplets.
      n_triplets: number of triplets.
      noise_ceiling: the ceiling beside ``accuracy``, or ``None`` if none was given.
      per_level: accuracy per level name (NaN for a named level without triplets).
      per_level_n_triplets: number of triplets per level name.
      per_level_noise_ceiling: ceiling per level name; empty unless reference
        probabilities were given.
    """

    accuracy: float
    n_triplets: int
    noise_ceiling: float | None = None
    per_level: dict[str, float] = dataclasses.field(default_factory=dict)
    per_level_n_triplets: dict[str, int] = dataclasses.field(default_factory=dict)
    per_level_noise_ceiling: dict[str, float] = dataclasses.field(default_factory=dict)


def noise_ceiling(reference_probabilities) -> float:
    """Best achievable odd-one-out accuracy given reference choice probabilities.

    .. math:: \\text{ceiling} = \\frac{1}{n} \\sum_n \\max_k p_{nk}

    Args:
      reference_probabilities: ``[n_triplets, 3]`` probabilities of the pairs
        ``[01, 02, 12]`` being chosen as most similar (e.g. a simulated observer's
        Luce probabilities or empirical choice frequencies).

    Returns:
      The ceiling as a float in ``[1/3, 1]``.

    >>> noise_ceiling([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1]])
    0.65
    """
    probabilities = _validation.as_probabilities("reference_probabilities", reference_probabilities)
    return float(probabilities.max(axis=1).mean())


def _check_triplets(triplets, n_items: int) -> np.ndarray:
    array = np.asarray(triplets)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"triplets must have shape [n_triplets, 3]; got shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError("triplets is empty; got shape (0, 3).")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"triplets must hold integer item indices; got dtype {array.dtype}.")
    if array.min() < 0 or array.max() >= n_items:
        raise ValueError(
            f"triplets must index items in [0, {n_items}); got values in"
            f" [{array.min()}, {array.max()}]."
        )
    return array


@functools.partial(jax.jit, static_argnames="kernel")
def _correct_from_features(features: jax.Array, triplets: jax.Array, kernel: str) -> jax.Array:
    return losses.triplet_accuracy(losses.triplet_similarities(features[triplets], kernel))


@functools.partial(jax.jit, static_argnames="kernel")
def _log_probs_from_features(
    features: jax.Array, triplets: jax.Array, kernel: str, temperature: jax.Array
) -> jax.Array:
    similarities = losses.triplet_similarities(features[triplets], kernel)
    return losses.odd_one_out_log_probs(similarities, temperature)


def _power_of_two_scaled(features: np.ndarray) -> np.ndarray:
    """``features`` times the power of two that brings their largest magnitude near 1.

    Similarities are computed in float32, whose dot products overflow for entries near
    1e19 (and underflow for tiny ones), which would make every choice a tie. A power of
    two scales every float exactly, so no comparison of similarities changes.
    """
    peak = float(np.max(np.abs(features)))
    if peak == 0.0 or 2.0**-20 <= peak <= 2.0**20:
        return features
    return np.ldexp(features.astype(np.float64), -int(np.frexp(peak)[1]))


def _map_chunks(fn, triplets: np.ndarray, size: int) -> np.ndarray:
    """``fn`` over chunks of ``size`` triplets, concatenated on the host.

    The last chunk is padded (with item 0) to the common size, so a jitted ``fn``
    compiles once per call signature instead of once more for the remainder.
    """
    n = triplets.shape[0]
    size = min(size, n)
    outputs = []
    for start in range(0, n, size):
        chunk = triplets[start : start + size]
        count = chunk.shape[0]
        if count < size:
            chunk = np.concatenate([chunk, np.zeros((size - count, 3), chunk.dtype)])
        outputs.append(np.asarray(fn(chunk))[:count])
    return np.concatenate(outputs)


def _summarise(
    correct: np.ndarray,
    levels,
    level_names: Sequence[str] | None,
    noise_ceiling_value: float | None,
    reference_probabilities,
) -> OddOneOutResult:
    n = correct.shape[0]
    if noise_ceiling_value is not None and reference_probabilities is not None:
        raise ValueError("Give noise_ceiling or reference_probabilities, not both.")
    ceilings = None
    if reference_probabilities is not None:
        probabilities = _validation.as_probabilities(
            "reference_probabilities", reference_probabilities
        )
        if probabilities.shape[0] != n:
            raise ValueError(
                f"reference_probabilities must have shape [{n}, 3] (one row per triplet);"
                f" got shape {probabilities.shape}."
            )
        ceilings = probabilities.max(axis=1)
        noise_ceiling_value = float(ceilings.mean())
    elif noise_ceiling_value is not None:
        noise_ceiling_value = float(noise_ceiling_value)
        if not 0.0 <= noise_ceiling_value <= 1.0:
            raise ValueError(f"noise_ceiling must lie in [0, 1]; got {noise_ceiling_value}.")

    per_level: dict[str, float] = {}
    per_level_n: dict[str, int] = {}
    per_level_ceiling: dict[str, float] = {}
    if levels is None:
        if level_names is not None:
            raise ValueError("level_names was given without levels.")
    else:
        level_ids = _validation.as_labels("levels", levels, n)
        if not np.issubdtype(level_ids.dtype, np.integer):
            raise ValueError(f"levels must hold integers; got dtype {level_ids.dtype}.")
        if level_names is None:
            ids = np.unique(level_ids)
            names = [str(i) for i in ids]
        else:
            names = [str(name) for name in level_names]
            if len(set(names)) != len(names):
                raise ValueError(f"level_names must be distinct; got {names}.")
            ids = np.arange(len(names))
            if level_ids.min() < 0 or level_ids.max() >= len(names):
                raise ValueError(
                    f"levels must lie in [0, {len(names)}) to index level_names; got values"
                    f" in [{level_ids.min()}, {level_ids.max()}]."
                )
        for level_id, name in zip(ids, names, strict=True):
            mask = level_ids == level_id
            count = int(mask.sum())
            per_level_n[name] = count
            per_level[name] = float(correct[mask].mean()) if count else float("nan")
            if ceilings is not None:
                per_level_ceiling[name] = float(ceilings[mask].mean()) if count else float("nan")

    return OddOneOutResult(
        accuracy=float(correct.mean()),
        n_triplets=n,
        noise_ceiling=noise_ceiling_value,
        per_level=per_level,
        per_level_n_triplets=per_level_n,
        per_level_noise_ceiling=per_level_ceiling,
    )


def _chunk_size(chunk_size: int | None, d: int) -> int:
    if chunk_size is None:
        return max(1, _CHUNK_ELEMENTS // (3 * d))
    return _validation.check_positive_int("chunk_size", chunk_size)


def odd_one_out_accuracy(
    features,
    triplets,
    *,
    kernel: str = "dot",
    levels=None,
    level_names: Sequence[str] | None = None,
    noise_ceiling: float | None = None,
    reference_probabilities=None,
    chunk_size: int | None = None,
) -> OddOneOutResult:
    """Odd-one-out accuracy of item features on triplets (odd one out last).

    .. math::

       \\text{acc} = \\frac{1}{n} \\sum_n \\mathbb{1}[s_{01} > s_{02} \\wedge s_{01} > s_{12}],
       \\quad s_{ab} = k(f_{t_a}, f_{t_b})

    with ``k`` the dot product or cosine similarity. Ties count as wrong.

    Similarities and the tie rule are those of ``alignjax.losses.triplet_similarities``
    and ``alignjax.losses.triplet_accuracy``, computed by JAX in its default precision
    (float32 unless ``jax_enable_x64`` is set). The triplets are processed in jitted
    chunks so that no intermediate larger than about 4 MiB is built (a 1e6-triplet
    evaluation costs the features plus ``n`` booleans).

    Args:
      features: ``[n_items, d]`` item features.
      triplets: ``[n_triplets, 3]`` integer item indices, odd one out last.
      kernel: ``"dot"`` (default) or ``"cosine"``.
      levels: optional ``[n_triplets]`` integer level of each triplet (e.g. 0 coarse,
        1 fine, 2 boundary).
      level_names: optional names of the levels ``0..L-1``; without it levels are
        named by their integer value.
      noise_ceiling: optional ceiling to report beside the accuracy.
      reference_probabilities: optional ``[n_triplets, 3]`` reference choice
        probabilities; the ceiling (overall and per level) is then
        ``mean max_k p_k``. Give at most one of ``noise_ceiling`` and this.
      chunk_size: triplets per chunk; by default chosen from ``d``.

    Returns:
      An :class:`OddOneOutResult`.

    >>> features = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]
    >>> result = odd_one_out_accuracy(features, [[0, 1, 2], [0, 2, 1]], levels=[0, 1],
    ...                               level_names=["fine", "coarse"], noise_ceiling=0.9)
    >>> result.accuracy, result.per_level, result.noise_ceiling
    (0.5, {'fine': 1.0, 'coarse': 0.0}, 0.9)
    """
    features = _power_of_two_scaled(_validation.as_features("features", features))
    if kernel not in ("dot", "cosine"):
        raise ValueError(f"kernel must be 'dot' or 'cosine'; got {kernel!r}.")
    triplets = _check_triplets(triplets, features.shape[0])
    size = _chunk_size(chunk_size, features.shape[1])
    device_features = jnp.asarray(features, jnp.float32)
    correct = _map_chunks(
        lambda chunk: _correct_from_features(device_features, chunk, kernel), triplets, size
    ).astype(bool)
    return _summarise(correct, levels, level_names, noise_ceiling, reference_probabilities)


def odd_one_out_accuracy_from_similarities(
    similarity_matrix,
    triplets,
    *,
    levels=None,
    level_names: Sequence[str] | None = None,
    noise_ceiling: float | None = None,
    reference_probabilities=None,
    chunk_size: int | None = None,
) -> OddOneOutResult:
    """Odd-one-out accuracy from a precomputed similarity matrix.

    Same as :func:`odd_one_out_accuracy` with ``s_ab = S[t_a, t_b]`` (``a`` the earlier
    triplet position), so ``S`` need not be symmetric. The gathered similarities are
    compared by ``alignjax.losses.triplet_accuracy`` in JAX's default precision.

    Args:
      similarity_matrix: ``[n_items, n_items]`` similarities.
      triplets: ``[n_triplets, 3]`` integer item indices, odd one out last.
      levels, level_names, noise_ceiling, reference_probabilities: as in
        :func:`odd_one_out_accuracy`.
      chunk_size: triplets per chunk (default 2**20).

    Returns:
      An :class:`OddOneOutResult`.

    >>> s = [[1.0, 0.8, 0.2], [0.8, 1.0, 0.2], [0.2, 0.2, 1.0]]
    >>> odd_one_out_accuracy_from_similarities(s, [[0, 1, 2], [1, 2, 0]]).accuracy
    0.5
    """
    matrix = _validation.as_array(
        "similarity_matrix", similarity_matrix, ndim=2, what="[n_items, n_items]"
    )
    if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(
            f"similarity_matrix must have shape [n_items, n_items]; got shape {matrix.shape}."
        )
    triplets = _check_triplets(triplets, matrix.shape[0])
    size = 1 << 20 if chunk_size is None else _chunk_size(chunk_size, 1)
    correct = _map_chunks(
        lambda chunk: losses.triplet_accuracy(
            np.stack(
                [
                    matrix[chunk[:, 0], chunk[:, 1]],
                    matrix[chunk[:, 0], chunk[:, 2]],
                    matrix[chunk[:, 1], chunk[:, 2]],
                ],
                axis=-1,
            )
        ),
        triplets,
        size,
    ).astype(bool)
    return _summarise(correct, levels, level_names, noise_ceiling, reference_probabilities)


def odd_one_out_probabilities(
    features,
    triplets,
    *,
    kernel: str = "dot",
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> np.ndarray:
    """A representation's Luce choice probabilities over the pairs ``[01, 02, 12]``.

    .. math:: q_{nk} = \\operatorname{softmax}(s_n / T)_k

    Args:
      features: ``[n_items, d]`` item features.
      triplets: ``[n_triplets, 3]`` integer item indices.
      kernel: ``"dot"`` (default) or ``"cosine"``.
      temperature: softmax temperature ``T > 0``.
      chunk_size: triplets per chunk; by default chosen from ``d``.

    Returns:
      ``[n_triplets, 3]`` probabilities (float64), e.g. for
      :mod:`alignjax.evaluation.calibration`.

    >>> odd_one_out_probabilities([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [[0, 1, 2]]).round(3)
    array([[0.576, 0.212, 0.212]])
    """
    features = _validation.as_features("features", features)
    if kernel not in ("dot", "cosine"):
        raise ValueError(f"kernel must be 'dot' or 'cosine'; got {kernel!r}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}.")
    triplets = _check_triplets(triplets, features.shape[0])
    size = _chunk_size(chunk_size, features.shape[1])
    device_features = jnp.asarray(features)
    log_probs = _map_chunks(
        lambda chunk: _log_probs_from_features(device_features, chunk, kernel, temperature),
        triplets,
        size,
    )
    return np.exp(log_probs.astype(np.float64))
