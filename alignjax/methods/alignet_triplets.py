r"""AligNet's synthetic triplets: k-means clusters of the teacher, sampling, pseudo-labels.

Muttenthaler et al. (2024) turn a (human-aligned) teacher into a large data set of
odd-one-out triplets over an unlabelled image pool:

1. **Clusters.** k-means on the teacher's (transformed) features of the pool
   (scikit-learn ``KMeans``, seeded); at ImageNet scale 500 clusters, which act as
   superordinate categories of the teacher's own making.
2. **Sampling** over the pool, in a configurable mix of three kinds (the triplets then
   cover several abstraction levels):

   - ``within``: three items of one cluster (fine distinctions);
   - ``border``: two items of one cluster and one of a *neighbouring* cluster, one of
     the ``border_neighbours`` clusters whose centroids are nearest (boundaries);
   - ``between``: one item from each of three distinct clusters (coarse structure).

   Clusters are chosen in proportion to their sizes (an anchor item uniform over the
   pool); the items of a triplet are distinct.
3. **Pseudo-labels.** The teacher's similarities ``[s01, s02, s12]`` of each triplet,
   with the items reordered so that the most similar pair comes first and the odd one
   out last (:meth:`~alignjax.data.triplet_set.TripletSet.sorted_odd_last`).

:func:`make_triplets` runs the three steps for one teacher and stores the result as a
TFDS/ArrayRecord triplet set: ``train``, the student's training set, and ``test``, more
triplets drawn the same way afterwards, without any that is also a training triplet (the
same three items), on which the students' agreement with the teacher is measured.

>>> rng = np.random.default_rng(0)
>>> features = np.concatenate([rng.normal(c, 0.1, (20, 2)) for c in (0.0, 5.0, 10.0)])
>>> labels, centroids = kmeans_clusters(features, 3, seed=0)
>>> triplets = sample_triplets(labels, centroids, 6, mix=(1.0, 0.0, 0.0), rng=rng)
>>> bool(np.all(labels[triplets.indices] == labels[triplets.indices][:, :1]))
True
>>> labelled = pseudo_label(triplets, features)
>>> bool(np.all(labelled.similarities.argmax(axis=1) == 0))
True

References:
  Muttenthaler, L. et al. (2024). Aligning machine and human visual representations
  across abstraction levels. arXiv:2409.06509 (Methods: "AligNet data generation").
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Literal

import numpy as np
from sklearn.cluster import KMeans

from alignjax import losses
from alignjax.config import checked, configclass
from alignjax.data import tfds_builders
from alignjax.data.triplet_set import TripletSet
from alignjax.training.stages import note, restored

SAMPLING_KINDS: tuple[str, ...] = ("within", "border", "between")
TRIPLETS_NAME = "alignet_triplets"


@configclass
class SamplingConfig:
    """How AligNet's triplets are drawn from the pool.

    Attributes:
      num_clusters: k of k-means.
      num_triplets: triplets sampled (the student's training set).
      num_test_triplets: triplets drawn after them (fewer by any that repeats a training
        triplet), never trained on: the students' agreement with the teacher.
      mix: fractions of ``within``, ``border`` and ``between`` triplets (normalised).
      border_neighbours: a border triplet's odd item comes from one of this many
        clusters nearest (by centroid distance) to the pair's cluster.
      kmeans_init: k-means restarts (``n_init`` of scikit-learn).
      seed: seed of k-means and of the sampling.
    """

    num_clusters: int = checked(16, ge=2)
    num_triplets: int = checked(65536, ge=1)
    num_test_triplets: int = checked(2000, ge=0)
    mix: tuple[float, float, float] = checked((1 / 3, 1 / 3, 1 / 3), ge=0)
    border_neighbours: int = checked(2, ge=1)
    kmeans_init: int = checked(3, ge=1)
    seed: int = 0


def kmeans_clusters(
    features: np.ndarray, num_clusters: int, *, seed: int, n_init: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """k-means of ``features [n, d]``: cluster labels ``int64 [n]`` and centroids ``[k, d]``."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"features must have shape [n, d], got {features.shape}")
    if not 2 <= num_clusters <= len(features):
        raise ValueError(
            f"num_clusters must lie in [2, {len(features)}] for {len(features)} items, "
            f"got {num_clusters}"
        )
    model = KMeans(n_clusters=num_clusters, random_state=seed, n_init=n_init).fit(features)
    return model.labels_.astype(np.int64), model.cluster_centers_.astype(np.float32)


def neighbouring_clusters(centroids: np.ndarray, count: int) -> np.ndarray:
    """For each cluster, the ``count`` other clusters with the nearest centroids: ``[k, count]``.

    >>> neighbouring_clusters(np.array([[0.0], [1.0], [5.0]]), 1).ravel().tolist()
    [1, 0, 1]
    """
    centroids = np.asarray(centroids, dtype=np.float64)
    if not 1 <= count < len(centroids):
        raise ValueError(
            f"count must lie in [1, {len(centroids) - 1}] for {len(centroids)} clusters, "
            f"got {count}"
        )
    distances = ((centroids[:, None] - centroids[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1, kind="stable")[:, :count]


def _split_counts(n: int, mix) -> np.ndarray:
    mix = np.asarray(mix, dtype=np.float64)
    if mix.shape != (3,) or np.any(mix < 0) or mix.sum() <= 0:
        raise ValueError(
            f"mix must be three non-negative fractions (within, border, between), got {tuple(mix)}"
        )
    exact = n * mix / mix.sum()
    counts = np.floor(exact).astype(int)
    # Largest remainders first, so that every count is within one of its share.
    counts[np.argsort(counts - exact, kind="stable")[: n - counts.sum()]] += 1
    return counts


def sample_triplets(
    labels: np.ndarray,
    centroids: np.ndarray,
    n: int,
    *,
    mix=(1 / 3, 1 / 3, 1 / 3),
    border_neighbours: int = 2,
    rng: np.random.Generator,
) -> TripletSet:
    """``n`` triplets of pool items drawn from clusters (see module doc).

    Args:
      labels: ``int [n_items]`` cluster of every pool item.
      centroids: ``[k, d]`` cluster centroids (for the neighbours of border triplets).
      n: number of triplets.
      mix: fractions of ``within``, ``border``, ``between`` triplets.
      border_neighbours: candidate neighbouring clusters of a border triplet.
      rng: numpy random generator.

    Returns:
      a :class:`TripletSet` (no similarities yet) whose ``levels`` name the kind of each
      triplet (:data:`SAMPLING_KINDS`), in the order within, border, between.
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = len(centroids)
    if labels.ndim != 1 or labels.min() < 0 or labels.max() >= k:
        raise ValueError(
            f"labels must be cluster indices in [0, {k}) of shape [n_items], got {labels.shape}"
        )
    counts = _split_counts(n, mix)
    sizes = np.bincount(labels, minlength=k)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def items_of(clusters):
        return order[
            starts[clusters]
            + np.floor(rng.random(len(clusters)) * sizes[clusters]).astype(np.int64)
        ]

    def clusters_with(minimum, count):
        weights = np.where(sizes >= minimum, sizes, 0).astype(np.float64)
        if weights.sum() == 0:
            raise ValueError(
                f"no cluster has {minimum} items; lower num_clusters or enlarge the pool"
            )
        return rng.choice(k, size=count, p=weights / weights.sum())

    def distinct(rows, redraw):
        while True:
            clash = (
                (rows[:, 0] == rows[:, 1]) | (rows[:, 0] == rows[:, 2]) | (rows[:, 1] == rows[:, 2])
            )
            if not clash.any():
                return rows
            rows[clash] = redraw(np.flatnonzero(clash))

    parts = []
    within = clusters_with(3, counts[0])
    parts.append(
        distinct(
            np.stack([items_of(within) for _ in range(3)], axis=1),
            lambda rows: np.stack([items_of(within[rows]) for _ in range(3)], axis=1),
        )
    )
    if counts[1]:
        pair = clusters_with(2, counts[1])
        odd = neighbouring_clusters(centroids, border_neighbours)[
            pair, rng.integers(0, border_neighbours, counts[1])
        ]
        empty = sizes[odd] == 0
        if empty.any():
            raise ValueError(
                f"cluster {odd[empty][0]} is empty; k-means clusters must all hold items"
            )
        parts.append(
            distinct(
                np.stack([items_of(pair), items_of(pair), items_of(odd)], axis=1),
                lambda rows: np.stack(
                    [items_of(pair[rows]), items_of(pair[rows]), items_of(odd[rows])], axis=1
                ),
            )
        )
    if counts[2]:
        if np.count_nonzero(sizes) < 3:
            raise ValueError("between-cluster triplets need three non-empty clusters")
        pool = np.arange(len(labels))

        def three_clusters(count):
            rows = rng.choice(pool, size=(count, 3))
            while True:
                c = labels[rows]
                clash = (c[:, 0] == c[:, 1]) | (c[:, 0] == c[:, 2]) | (c[:, 1] == c[:, 2])
                if not clash.any():
                    return rows
                rows[clash] = rng.choice(pool, size=(int(clash.sum()), 3))

        parts.append(three_clusters(counts[2]))
    kinds = np.repeat(np.arange(3), counts)
    return TripletSet(
        np.concatenate(parts), levels=kinds, level_names=SAMPLING_KINDS, n_items=len(labels)
    )


def pseudo_label(
    triplets: TripletSet, features: np.ndarray, *, kernel: Literal["dot", "cosine"] = "dot"
) -> TripletSet:
    """The teacher's similarities ``[s01, s02, s12]`` of ``triplets``, sorted odd-last.

    Args:
      triplets: triplets of items of ``features``.
      features: ``[n_items, d]`` teacher features (transformed, for AligNet).
      kernel: ``"dot"`` (the teacher's choice model) or ``"cosine"``.

    Returns:
      the triplets reordered so that the teacher's most similar pair is ``01``, with
      ``similarities`` in that order.
    """
    features = np.asarray(features, dtype=np.float32)
    if triplets.indices.max(initial=-1) >= len(features):
        raise ValueError(f"triplets point beyond the {len(features)} items of features")
    similarities = np.asarray(
        losses.triplet_similarities(features[triplets.indices], kernel=kernel)
    )
    return dataclasses.replace(triplets, similarities=similarities).sorted_odd_last()


def _without(triplets: TripletSet, seen: TripletSet) -> TripletSet:
    """``triplets`` without those whose three items form a triplet of ``seen``."""
    n = np.int64(max(triplets.n_items or 0, seen.n_items or 0, 1))

    def keys(indices):
        a, b, c = np.sort(indices, axis=1).T
        return (a * n + b) * n + c

    return triplets.subset(np.flatnonzero(~np.isin(keys(triplets.indices), keys(seen.indices))))


def make_triplets(
    sampling: SamplingConfig, features: np.ndarray, directory: pathlib.Path
) -> dict[str, np.ndarray | pathlib.Path]:
    """Clusters, triplets and pseudo-labels of one teacher, stored in ``directory``.

    Args:
      sampling: the clusters and the triplets.
      features: ``[n_pool, d]`` the teacher's (transformed) features of the pool.
      directory: ``clusters.npz`` (``labels [n_pool]``, ``centroids [k, d]``) and the
        TFDS/ArrayRecord triplet set ``tfds/alignet_triplets`` (indices into the pool,
        the teacher's similarities sorted odd-last, the sampling kind as level; splits
        ``train`` and, with test triplets, ``test``). Both are reused when present.

    Returns:
      ``{"labels", "centroids", "data_dir"}``.
    """
    clusters_path = directory / "clusters.npz"
    tfds_dir = directory / "tfds"
    triplets_info = tfds_dir / TRIPLETS_NAME / tfds_builders.VERSION / "dataset_info.json"
    if clusters_path.exists() and triplets_info.exists():
        restored()
    if not clusters_path.exists():
        note(f"k-means, {sampling.num_clusters} clusters of {len(features)} pool images")
        labels, centroids = kmeans_clusters(
            features, sampling.num_clusters, seed=sampling.seed, n_init=sampling.kmeans_init
        )
        directory.mkdir(parents=True, exist_ok=True)
        with open(clusters_path, "wb") as file:
            np.savez(file, labels=labels, centroids=centroids)
    with np.load(clusters_path) as stored:
        labels, centroids = stored["labels"], stored["centroids"]
    if not triplets_info.exists():
        note(f"{sampling.num_triplets} triplets, pseudo-labelled by the teacher")
        rng = np.random.default_rng(sampling.seed)

        def sample(n):
            drawn = sample_triplets(
                labels,
                centroids,
                n,
                mix=sampling.mix,
                border_neighbours=sampling.border_neighbours,
                rng=rng,
            )
            return pseudo_label(drawn, features)

        splits = {"train": sample(sampling.num_triplets)}
        if sampling.num_test_triplets:
            splits["test"] = _without(sample(sampling.num_test_triplets), splits["train"])
        tfds_builders.write_triplet_set(
            splits,
            name=TRIPLETS_NAME,
            data_dir=tfds_dir,
            overwrite=True,
            description=(
                "AligNet triplets over the image pool: teacher similarities, odd one out last"
            ),
        )
    return {"labels": labels, "centroids": centroids, "data_dir": tfds_dir}


def read_test_triplets(data_dir: pathlib.Path) -> TripletSet | None:
    """The stored ``test`` triplets of :func:`make_triplets` (``None`` if there are none)."""
    try:
        return tfds_builders.read_triplet_set(TRIPLETS_NAME, data_dir, "test")
    except ValueError:
        return None
