"""AligNet's synthetic triplets: clusters, the sampling mix, pseudo-labels sorted odd-last."""

import numpy as np
import pytest

from alignjax.data import tfds_builders
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

    def draw(seed):
        rng = np.random.default_rng(seed)
        return alignet_triplets.sample_triplets(labels, centroids, 50, rng=rng).indices

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


def test_make_triplets_stores_train_and_unseen_test_triplets_and_reuses_them(tmp_path):
    # Three points per blob: few distinct triplets, so test draws repeat training ones.
    features = FEATURES[(20 * np.arange(6)[:, None] + np.arange(3)).ravel()]
    sampling = alignet_triplets.SamplingConfig(
        num_clusters=6, num_triplets=200, num_test_triplets=300, border_neighbours=1
    )
    made = alignet_triplets.make_triplets(sampling, features, tmp_path)
    train = tfds_builders.read_triplet_set(
        alignet_triplets.TRIPLETS_NAME, made["data_dir"], "train"
    )
    rng = np.random.default_rng(0)
    drawn = [
        alignet_triplets.pseudo_label(
            alignet_triplets.sample_triplets(
                made["labels"], made["centroids"], n, border_neighbours=1, rng=rng
            ),
            features,
        )
        for n in (200, 300)
    ]
    np.testing.assert_array_equal(train.indices, drawn[0].indices)
    np.testing.assert_allclose(train.similarities, drawn[0].similarities, rtol=1e-6)
    assert train.level_names == SAMPLING_KINDS
    # The test triplets are the next draws of the same generator, less any training triplet.
    test = alignet_triplets.read_test_triplets(made["data_dir"])
    seen = {tuple(sorted(t)) for t in train.indices.tolist()}
    kept = [t for t in drawn[1].indices.tolist() if tuple(sorted(t)) not in seen]
    assert test.indices.tolist() == kept and 0 < len(kept) < 300
    assert np.all(test.similarities[:, 0] >= test.similarities[:, 1:].max(axis=1))
    stamps = [
        p.stat().st_mtime_ns
        for p in (
            tmp_path / "clusters.npz",
            made["data_dir"] / alignet_triplets.TRIPLETS_NAME / "1.0.0" / "dataset_info.json",
        )
    ]
    alignet_triplets.make_triplets(sampling, features, tmp_path)
    assert stamps == [
        p.stat().st_mtime_ns
        for p in (
            tmp_path / "clusters.npz",
            made["data_dir"] / alignet_triplets.TRIPLETS_NAME / "1.0.0" / "dataset_info.json",
        )
    ]


def test_without_test_triplets_there_is_no_test_split(tmp_path):
    sampling = alignet_triplets.SamplingConfig(num_clusters=6, num_triplets=50, num_test_triplets=0)
    made = alignet_triplets.make_triplets(sampling, FEATURES, tmp_path)
    assert alignet_triplets.read_test_triplets(made["data_dir"]) is None
