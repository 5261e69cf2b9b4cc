"""AligNet's synthetic triplets: clusters, the sampling mix, pseudo-labels sorted odd-last."""

import numpy as np
import pytest

from alignjax.methods import alignet_triplets
from alignjax.methods.alignet_triplets import SAMPLING_KINDS

# Six clusters of 20 points on a line: cluster c sits at 10 c.
CENTRES = 10.0 * np.arange(6)
RNG = np.random.default_rng(0)
FEATURES = np.concatenate(
    [np.stack([RNG.normal(c, 0.5, 20), RNG.normal(0, 0.5, 20)], axis=1) for c in CENTRES]
)
BLOBS = np.repeat(np.arange(6), 20)


@pytest.fixture(scope="module")
def clusters():
    return alignet_triplets.kmeans_clusters(FEATURES, 6, seed=0)


def test_kmeans_recovers_separated_blobs(clusters):
    labels, centroids = clusters
    # The same partition up to renaming: every blob is one cluster and vice versa.
    assert len({(b, c) for b, c in zip(BLOBS, labels)}) == 6
    np.testing.assert_allclose(np.sort(centroids[:, 0]), CENTRES, atol=0.5)


def test_neighbouring_clusters_by_hand():
    centroids = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [10.0, 0.0]])
    np.testing.assert_array_equal(
        alignet_triplets.neighbouring_clusters(centroids, 2), [[1, 2], [0, 2], [1, 0], [2, 1]]
    )
    with pytest.raises(ValueError, match="count must lie in"):
        alignet_triplets.neighbouring_clusters(centroids, 4)


@pytest.mark.parametrize(
    "mix", [(1.0, 1.0, 1.0), (0.5, 0.25, 0.25), (0.0, 1.0, 0.0), (1.0, 0.0, 3.0)]
)
def test_sampling_mix_and_kinds(clusters, mix):
    labels, centroids = clusters
    n = 1001
    triplets = alignet_triplets.sample_triplets(
        labels, centroids, n, mix=mix, border_neighbours=1, rng=np.random.default_rng(1)
    )
    assert len(triplets) == n and triplets.level_names == SAMPLING_KINDS
    counts = np.bincount(triplets.levels, minlength=3)
    expected = n * np.asarray(mix) / sum(mix)
    assert np.all(np.abs(counts - expected) < 1), counts
    idx = triplets.indices
    assert np.all((idx[:, 0] != idx[:, 1]) & (idx[:, 0] != idx[:, 2]) & (idx[:, 1] != idx[:, 2]))
    c = labels[idx]
    within, border, between = (triplets.levels == k for k in range(3))
    assert np.all((c[within] == c[within][:, :1]).all(axis=1))
    assert np.all(c[border][:, 0] == c[border][:, 1])
    # The nearest cluster of a blob on a line is an adjacent blob, 10 away.
    gap = np.abs(centroids[c[border][:, 2], 0] - centroids[c[border][:, 0], 0])
    np.testing.assert_allclose(gap, 10.0, atol=1.0)
    assert np.all(
        (c[between][:, 0] != c[between][:, 1])
        & (c[between][:, 0] != c[between][:, 2])
        & (c[between][:, 1] != c[between][:, 2])
    )


def test_sampling_is_seeded(clusters):
    labels, centroids = clusters
    draw = lambda seed: (
        alignet_triplets.sample_triplets(
            labels, centroids, 50, rng=np.random.default_rng(seed)
        ).indices
    )
    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))


def test_sampling_rejects_bad_mixes(clusters):
    labels, centroids = clusters
    with pytest.raises(ValueError, match="mix must be three non-negative fractions"):
        alignet_triplets.sample_triplets(
            labels, centroids, 10, mix=(1.0, -1.0, 0.0), rng=np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match="no cluster has 3 items"):
        alignet_triplets.sample_triplets(
            np.array([0, 1, 2, 3]),
            np.zeros((4, 1)),
            5,
            mix=(1.0, 0.0, 0.0),
            rng=np.random.default_rng(0),
        )


def test_pseudo_labels_are_the_teacher_similarities_sorted_odd_last(clusters):
    labels, centroids = clusters
    triplets = alignet_triplets.sample_triplets(
        labels, centroids, 300, rng=np.random.default_rng(2)
    )
    labelled = alignet_triplets.pseudo_label(triplets, FEATURES)
    s = labelled.similarities
    assert np.all(s[:, 0] >= s[:, 1]) and np.all(s[:, 0] >= s[:, 2])
    a, b, c = (FEATURES[labelled.indices[:, k]] for k in range(3))
    np.testing.assert_allclose(
        s, np.stack([(a * b).sum(1), (a * c).sum(1), (b * c).sum(1)], axis=1), rtol=1e-5, atol=1e-4
    )
    # The same three items per triplet, with the sampling kind kept.
    np.testing.assert_array_equal(
        np.sort(labelled.indices, axis=1), np.sort(triplets.indices, axis=1)
    )
    np.testing.assert_array_equal(labelled.levels, triplets.levels)
    cosine = alignet_triplets.pseudo_label(triplets, FEATURES, kernel="cosine").similarities
    assert np.all(np.abs(cosine) <= 1 + 1e-6) and np.all(cosine[:, 0] >= cosine[:, 1:].max(axis=1))


def test_pseudo_label_rejects_foreign_indices(clusters):
    labels, centroids = clusters
    triplets = alignet_triplets.sample_triplets(labels, centroids, 5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="point beyond the 10 items"):
        alignet_triplets.pseudo_label(triplets, FEATURES[:10])
