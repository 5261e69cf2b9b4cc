"""Simulated observers: odd-one-out choices from a known similarity structure.

An observer maps a ground-truth similarity structure to triplet choice probabilities and
sampled choices (METHODS.md section 1). For a triplet with pair similarities
``s = [s01, s02, s12]`` the Luce (softmax) choice rule at temperature ``T`` gives

.. math:: p(\\text{pair } k \\text{ most similar}) = \\operatorname{softmax}(s / T)_k,

and a sampled choice reorders the triplet so that the odd one out is last. Because the
ground truth is known, so is the **noise ceiling**, the expected accuracy of the
Bayes-optimal predictor (always predict the most probable pair):

.. math:: \\text{ceiling} = \\frac{1}{n} \\sum_i \\max_k p_{ik}.

:func:`simulate_triplet_dataset` builds a THINGS-like data set from an observer:
train / validation / test triplets, optionally split by object so that test objects are
unseen in training, and repeated test triplets for an empirical noise ceiling.

References:
  Luce (1959), *Individual Choice Behavior*. Hebart, Zheng, Pereira and Baker (2020),
  "Revealing the multidimensional mental representations of natural objects underlying
  human similarity judgements" (the THINGS odd-one-out task and its noise ceiling).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from alignjax.data.triplet_set import TripletSet, odd_last_order
from alignjax.losses import odd_one_out_probs

SimilarityFn = Callable[[np.ndarray], np.ndarray]


def pair_similarities(similarity: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The pair similarities ``[s01, s02, s12]`` of triplets under an item similarity matrix.

    Args:
      similarity: ``[n_items, n_items]`` symmetric similarity matrix.
      indices: ``[n, 3]`` item indices.

    Returns:
      ``[n, 3]`` similarities ``[S[i0, i1], S[i0, i2], S[i1, i2]]``.

    >>> S = np.array([[0, 5, 1], [5, 0, 2], [1, 2, 0]])
    >>> pair_similarities(S, np.array([[0, 1, 2], [2, 1, 0]])).tolist()
    [[5, 1, 2], [2, 1, 5]]
    """
    indices = np.asarray(indices)
    i0, i1, i2 = indices[:, 0], indices[:, 1], indices[:, 2]
    return np.stack([similarity[i0, i1], similarity[i0, i2], similarity[i1, i2]], axis=1)


def noise_ceiling(probabilities: np.ndarray) -> float:
    """Expected accuracy of the Bayes-optimal predictor: ``mean_i max_k p_ik``.

    The Bayes-optimal predictor names the most probable pair; it agrees with a sampled
    choice with probability ``max_k p_k``, so no model can score higher in expectation.

    Args:
      probabilities: ``[n, 3]`` choice probabilities of the triplets.

    >>> noise_ceiling(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    0.65
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != 3 or not len(probabilities):
        raise ValueError(
            f"probabilities must have shape [n, 3] with n >= 1; got shape {probabilities.shape}."
        )
    return float(np.mean(np.max(probabilities, axis=1)))


def empirical_noise_ceiling(indices: np.ndarray) -> float:
    """The noise ceiling estimated from repeated triplets (odd one out last).

    Responses to the same three items (in any order) form a group; within a group the
    best possible constant prediction is the most frequent odd one out, which agrees with
    ``max_count / group_size`` of the responses. The estimate is the mean of that
    agreement over groups with at least two responses, as for the THINGS repeated
    triplets (Hebart et al. 2020). With few repeats it is biased upward (it is
    ``E[max_k p̂_k] >= max_k p_k``).

    Args:
      indices: ``[n, 3]`` responses, each with the chosen odd one out in column 2.

    Returns:
      the estimated ceiling in ``[1/3, 1]``.

    >>> empirical_noise_ceiling(np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1], [5, 6, 7]]))
    0.6666666666666666
    """
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] != 3:
        raise ValueError(f"indices must have shape [n, 3]; got shape {indices.shape}.")
    groups, group_of = np.unique(np.sort(indices, axis=1), axis=0, return_inverse=True)
    group_of = group_of.reshape(-1)
    counts = np.zeros((len(groups), 3), dtype=np.int64)
    odd_position = np.argmax(np.sort(indices, axis=1) == indices[:, 2:3], axis=1)
    np.add.at(counts, (group_of, odd_position), 1)
    sizes = counts.sum(axis=1)
    repeated = sizes >= 2
    if not np.any(repeated):
        raise ValueError(
            "indices contain no repeated triplet; an empirical noise ceiling needs repeats."
        )
    return float(np.mean(counts[repeated].max(axis=1) / sizes[repeated]))


def random_triplets(rng: np.random.Generator, n: int, items: np.ndarray | int) -> np.ndarray:
    """``n`` triplets of three distinct items drawn uniformly from ``items``.

    Args:
      rng: numpy random generator.
      n: number of triplets.
      items: the pool of item indices, or an integer ``m`` for ``range(m)``.

    Returns:
      ``[n, 3]`` int64 item indices.
    """
    # A pool given as an array is deduplicated so that distinct draws are distinct items.
    pool = None if np.ndim(items) == 0 else np.unique(np.asarray(items, dtype=np.int64))
    size = int(items) if pool is None else len(pool)
    if size < 3:
        raise ValueError(f"items must hold at least 3 distinct items; got {size}.")
    triplets = np.empty((0, 3), dtype=np.int64)
    while len(triplets) < n:
        draw = rng.integers(0, size, size=(2 * (n - len(triplets)) + 8, 3))
        distinct = (
            (draw[:, 0] != draw[:, 1]) & (draw[:, 0] != draw[:, 2]) & (draw[:, 1] != draw[:, 2])
        )
        triplets = np.concatenate(
            [triplets, draw[distinct] if pool is None else pool[draw[distinct]]]
        )
    return triplets[:n]


@dataclasses.dataclass(frozen=True)
class LuceObserver:
    """An observer choosing the most similar pair of a triplet by the Luce rule.

    Attributes:
      similarity: the ground truth: an ``[n_items, n_items]`` symmetric similarity matrix,
        or a function mapping triplet indices ``[n, 3]`` to pair similarities ``[n, 3]``.
      temperature: Luce temperature ``T > 0``; lower is less noisy.

    >>> S = np.array([[0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> observer = LuceObserver(S, temperature=1.0)
    >>> observer.probabilities(np.array([[0, 1, 2]])).round(3).tolist()
    [[0.909, 0.045, 0.045]]
    >>> observer.choose(np.array([[2, 0, 1]]), np.random.default_rng(0)).indices.shape
    (1, 3)
    """

    similarity: np.ndarray | SimilarityFn
    temperature: float = 1.0

    def __post_init__(self):
        if not callable(self.similarity):
            similarity = np.asarray(self.similarity, dtype=np.float64)
            if (
                similarity.ndim != 2
                or similarity.shape[0] != similarity.shape[1]
                or similarity.shape[0] < 3
            ):
                raise ValueError(
                    "similarity must be a square [n_items, n_items] matrix with n_items >= 3 "
                    f"or a function; got shape {similarity.shape}."
                )
            if not np.all(np.isfinite(similarity)):
                raise ValueError("similarity contains NaN or infinite values.")
            if not np.allclose(similarity, similarity.T):
                raise ValueError("similarity must be symmetric; got a matrix with S != S.T.")
            object.__setattr__(self, "similarity", similarity)
        if not np.isscalar(self.temperature) or not self.temperature > 0:
            raise ValueError(f"temperature must be a positive number; got {self.temperature!r}.")

    @property
    def n_items(self) -> int | None:
        """Number of items of a similarity matrix; ``None`` for a similarity function."""
        return None if callable(self.similarity) else self.similarity.shape[0]

    def similarities(self, indices: np.ndarray) -> np.ndarray:
        """Ground-truth pair similarities ``[n, 3]`` of triplets ``[n, 3]``."""
        indices = TripletSet(np.asarray(indices), n_items=self.n_items).indices
        if callable(self.similarity):
            values = np.asarray(self.similarity(indices))
            if values.shape != indices.shape:
                raise ValueError(
                    f"the similarity function must return shape {indices.shape} for indices of that"
                    f" shape; got {values.shape}."
                )
            return values
        return pair_similarities(self.similarity, indices)

    def probabilities(self, indices: np.ndarray) -> np.ndarray:
        """Luce choice probabilities ``softmax(s / T)`` of the pairs, ``[n, 3]``."""
        similarities = self.similarities(indices)
        return np.asarray(odd_one_out_probs(similarities, self.temperature), dtype=np.float64)

    def choose(self, indices: np.ndarray, rng: np.random.Generator) -> TripletSet:
        """Samples one choice per triplet; returns the triplets with the odd one out last.

        The returned set carries the observer's similarities and probabilities in the
        reordered pair order, so ``probabilities[:, 0]`` is the probability of the choice
        that was made.

        Args:
          indices: ``[n, 3]`` triplets in any order.
          rng: numpy random generator (the only source of randomness).
        """
        similarities = self.similarities(indices)
        probabilities = np.asarray(
            odd_one_out_probs(similarities, self.temperature), dtype=np.float64
        )
        # Inverse-CDF sampling: float32 softmax rows need not sum to one exactly enough
        # for rng.choice, and this draws all triplets at once.
        cumulative = np.cumsum(probabilities, axis=1)
        u = rng.random(len(probabilities)) * cumulative[:, 2]
        pair = np.sum(u[:, None] >= cumulative[:, :2], axis=1)
        item_order, pair_order = odd_last_order(pair)
        return TripletSet(
            indices=np.take_along_axis(np.asarray(indices, dtype=np.int64), item_order, axis=1),
            similarities=np.take_along_axis(similarities, pair_order, axis=1),
            probabilities=np.take_along_axis(probabilities / cumulative[:, 2:], pair_order, axis=1),
            n_items=self.n_items,
        )

    def sample_triplet(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One random triplet over all items and its sampled choice (odd one out last).

        The per-example function for on-the-fly Grain streams
        (``alignjax.data.pipeline.example_stream``); needs a similarity matrix.

        Returns:
          ``{"indices": int64 [3], "similarities": float32 [3], "probabilities": float32 [3]}``.
        """
        if self.n_items is None:
            raise ValueError(
                "sample_triplet needs a similarity matrix to know the items; got a function."
            )
        chosen = self.choose(random_triplets(rng, 1, self.n_items), rng)
        return {
            "indices": chosen.indices[0],
            "similarities": chosen.similarities[0],
            "probabilities": chosen.probabilities[0],
        }


@dataclasses.dataclass(frozen=True, eq=False)
class TripletDataset:
    """A THINGS-like simulated data set: triplet splits and the objects they use.

    Attributes:
      train, validation, test: triplets with the observer's choice (odd one out last),
        similarities and probabilities.
      repeated_test: repeated test triplets (each answered several times) for
        :func:`empirical_noise_ceiling`, or ``None``.
      train_objects, validation_objects, test_objects: sorted item indices each split
        draws from (all items for ``split="random"``).
    """

    train: TripletSet
    validation: TripletSet
    test: TripletSet
    repeated_test: TripletSet | None
    train_objects: np.ndarray
    validation_objects: np.ndarray
    test_objects: np.ndarray


def simulate_triplet_dataset(
    observer: LuceObserver,
    *,
    n_train: int,
    n_validation: int,
    n_test: int,
    split: str = "random",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    n_repeated: int = 0,
    n_repeats: int = 0,
    seed: int = 0,
) -> TripletDataset:
    """Simulates train / validation / test odd-one-out triplets from an observer.

    Args:
      observer: a :class:`LuceObserver` with a similarity matrix.
      n_train, n_validation, n_test: number of triplets per split.
      split: ``"random"``: every split draws random triplets over all objects (as the
        THINGS test set). ``"objects"``: the objects are partitioned, and each split's
        triplets use only its own objects, so test objects are unseen in training.
      validation_fraction, test_fraction: fractions of objects held out for validation
        and test when ``split="objects"``.
      n_repeated: number of distinct test triplets that are answered repeatedly.
      n_repeats: responses per repeated triplet (``>= 2`` when ``n_repeated > 0``).
      seed: seed of all randomness; the same seed gives the same data set.

    >>> S = np.eye(20) + 0.1
    >>> ds = simulate_triplet_dataset(LuceObserver(S), n_train=20, n_validation=5, n_test=5,
    ...                               split="objects", validation_fraction=0.2, test_fraction=0.2)
    >>> len(ds.train), len(ds.test), bool(np.isin(ds.test.indices, ds.train_objects).any())
    (20, 5, False)
    """
    n_items = observer.n_items
    if n_items is None:
        raise ValueError(
            "simulate_triplet_dataset needs an observer with a similarity matrix; got a function."
        )
    if split not in ("random", "objects"):
        raise ValueError(f"split must be 'random' or 'objects'; got {split!r}.")
    if n_repeated and n_repeats < 2:
        raise ValueError(f"n_repeats must be >= 2 when n_repeated > 0; got {n_repeats}.")
    rng = np.random.default_rng(seed)
    if split == "random":
        train_objects = validation_objects = test_objects = np.arange(n_items)
    else:
        n_test_objects = int(round(test_fraction * n_items))
        n_validation_objects = int(round(validation_fraction * n_items))
        counts = {
            "train": n_items - n_test_objects - n_validation_objects,
            "validation": n_validation_objects,
            "test": n_test_objects,
        }
        if min(counts.values()) < 3:
            raise ValueError(
                "split='objects' needs >= 3 objects per split; "
                f"validation_fraction={validation_fraction} and test_fraction={test_fraction} "
                f"of {n_items} objects give {counts}."
            )
        order = rng.permutation(n_items)
        test_objects = np.sort(order[:n_test_objects])
        validation_objects = np.sort(order[n_test_objects : n_test_objects + n_validation_objects])
        train_objects = np.sort(order[n_test_objects + n_validation_objects :])
    train = observer.choose(random_triplets(rng, n_train, train_objects), rng)
    validation = observer.choose(random_triplets(rng, n_validation, validation_objects), rng)
    test = observer.choose(random_triplets(rng, n_test, test_objects), rng)
    repeated_test = None
    if n_repeated:
        distinct = random_triplets(rng, n_repeated, test_objects)
        repeated_test = observer.choose(np.repeat(distinct, n_repeats, axis=0), rng)
    return TripletDataset(
        train, validation, test, repeated_test, train_objects, validation_objects, test_objects
    )
