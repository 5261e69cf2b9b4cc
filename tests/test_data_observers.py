"""Simulated observers: Luce choice frequencies, noise ceilings, THINGS-like splits."""

import numpy as np
import pytest
import scipy.stats

from alignjax.data.observers import (
    LuceObserver,
    empirical_noise_ceiling,
    noise_ceiling,
    pair_similarities,
    random_triplets,
    simulate_triplet_dataset,
)


@pytest.fixture(scope="module")
def similarity():
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(30, 4))
    return embedding @ embedding.T


def _luce(s, temperature):
    e = np.exp((s - s.max(axis=-1, keepdims=True)) / temperature)
    return e / e.sum(axis=-1, keepdims=True)


def test_pair_similarities_match_a_loop(similarity):
    indices = random_triplets(np.random.default_rng(1), 40, 30)
    expected = [[similarity[i, j], similarity[i, k], similarity[j, k]] for i, j, k in indices]
    np.testing.assert_array_equal(pair_similarities(similarity, indices), expected)


def test_probabilities_are_the_luce_rule(similarity):
    indices = random_triplets(np.random.default_rng(2), 40, 30)
    observer = LuceObserver(similarity, temperature=2.0)
    np.testing.assert_allclose(
        observer.probabilities(indices),
        _luce(pair_similarities(similarity, indices), 2.0),
        rtol=1e-5,
    )


@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_choice_frequencies_match_luce_probabilities(similarity, temperature):
    observer = LuceObserver(similarity, temperature=temperature)
    triplets = np.array([[0, 1, 2], [5, 9, 11], [20, 3, 17]])
    n = 20_000
    chosen = observer.choose(np.repeat(triplets, n, axis=0), np.random.default_rng(3))
    for t, triplet in enumerate(triplets):
        rows = slice(t * n, (t + 1) * n)
        p = _luce(pair_similarities(similarity, triplet[None]), temperature)[0]
        # Pair k kept together leaves item 2 - k as the odd one out, stored last.
        counts = np.array([np.sum(chosen.indices[rows, 2] == triplet[2 - k]) for k in range(3)])
        assert counts.sum() == n
        keep = p * n > 5  # the chi-square approximation needs non-tiny expected counts
        if keep.sum() >= 2:
            expected = p[keep] / p[keep].sum() * counts[keep].sum()
            assert scipy.stats.chisquare(counts[keep], expected).pvalue > 1e-3
        else:
            assert counts[np.argmax(p)] >= n - 10


def test_choose_puts_the_odd_one_out_last_with_its_probabilities(similarity):
    observer = LuceObserver(similarity, temperature=1.0)
    indices = random_triplets(np.random.default_rng(4), 500, 30)
    chosen = observer.choose(indices, np.random.default_rng(5))
    np.testing.assert_array_equal(np.sort(chosen.indices, axis=1), np.sort(indices, axis=1))
    # The stored similarities and probabilities follow the reordered items.
    np.testing.assert_allclose(
        chosen.similarities, pair_similarities(similarity, chosen.indices), rtol=1e-6
    )
    np.testing.assert_allclose(
        chosen.probabilities, observer.probabilities(chosen.indices), atol=1e-6
    )


def test_callable_similarity_equals_the_matrix(similarity):
    indices = random_triplets(np.random.default_rng(6), 100, 30)
    by_matrix = LuceObserver(similarity, 0.7)
    by_function = LuceObserver(lambda idx: pair_similarities(similarity, idx), 0.7)
    assert by_function.n_items is None
    np.testing.assert_array_equal(
        by_matrix.probabilities(indices), by_function.probabilities(indices)
    )
    a = by_matrix.choose(indices, np.random.default_rng(7))
    b = by_function.choose(indices, np.random.default_rng(7))
    np.testing.assert_array_equal(a.indices, b.indices)
    with pytest.raises(ValueError, match="needs a similarity matrix"):
        by_function.sample_triplet(np.random.default_rng(0))


def test_noise_ceiling_hand_computed():
    # Items 0, 1 similar (log 2), everything else 0: triplet (0, 1, 2) has p = [1/2, 1/4, 1/4].
    similarity = np.zeros((4, 4))
    similarity[0, 1] = similarity[1, 0] = np.log(2.0)
    observer = LuceObserver(similarity, temperature=1.0)
    p = observer.probabilities(np.array([[0, 1, 2], [1, 2, 3]]))
    np.testing.assert_allclose(p, [[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    assert noise_ceiling(p) == pytest.approx((0.5 + 1 / 3) / 2, rel=1e-6)


def test_empirical_noise_ceiling_hand_computed_and_consistent():
    responses = np.array(
        [
            [0, 1, 2],
            [1, 0, 2],
            [0, 2, 1],
            [2, 1, 0],  # group {0,1,2}: odd 2, 2, 1, 0 -> 2/4
            [3, 4, 5],
            [5, 3, 4],  # group {3,4,5}: odd 5, 4 -> 1/2
            [6, 7, 8],
            [7, 6, 8],
            [8, 6, 7],  # group {6,7,8}: odd 8, 8, 7 -> 2/3
        ]
    )
    assert empirical_noise_ceiling(responses) == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)
    with pytest.raises(ValueError, match="no repeated triplet"):
        empirical_noise_ceiling(np.array([[0, 1, 2], [3, 4, 5]]))
    # Many repeats of one triplet: the estimate approaches max_k p_k.
    similarity = np.zeros((3, 3))
    similarity[0, 1] = similarity[1, 0] = 1.0
    observer = LuceObserver(similarity)
    chosen = observer.choose(np.repeat([[2, 0, 1]], 4000, axis=0), np.random.default_rng(8))
    p_max = np.e / (np.e + 2)
    assert empirical_noise_ceiling(chosen.indices) == pytest.approx(
        p_max, abs=4 * np.sqrt(p_max * (1 - p_max) / 4000)
    )


def test_object_split_keeps_test_objects_unseen(similarity):
    observer = LuceObserver(similarity, temperature=1.0)
    ds = simulate_triplet_dataset(
        observer,
        n_train=300,
        n_validation=50,
        n_test=60,
        split="objects",
        validation_fraction=0.2,
        test_fraction=0.2,
        n_repeated=5,
        n_repeats=4,
        seed=0,
    )
    objects = [ds.train_objects, ds.validation_objects, ds.test_objects]
    np.testing.assert_array_equal(np.sort(np.concatenate(objects)), np.arange(30))
    assert [len(o) for o in objects] == [18, 6, 6]
    for split, own in [
        (ds.train, ds.train_objects),
        (ds.validation, ds.validation_objects),
        (ds.test, ds.test_objects),
    ]:
        assert np.isin(split.indices, own).all()
    assert not np.isin(ds.test.indices, np.unique(ds.train.indices)).any()
    assert len(ds.repeated_test) == 20 and np.isin(ds.repeated_test.indices, ds.test_objects).all()
    groups = np.unique(np.sort(ds.repeated_test.indices, axis=1), axis=0)
    assert len(groups) == 5
    assert 1 / 3 <= empirical_noise_ceiling(ds.repeated_test.indices) <= 1


def test_random_split_and_determinism(similarity):
    observer = LuceObserver(similarity, temperature=1.0)
    a = simulate_triplet_dataset(observer, n_train=100, n_validation=10, n_test=20, seed=3)
    b = simulate_triplet_dataset(observer, n_train=100, n_validation=10, n_test=20, seed=3)
    c = simulate_triplet_dataset(observer, n_train=100, n_validation=10, n_test=20, seed=4)
    np.testing.assert_array_equal(a.train.indices, b.train.indices)
    np.testing.assert_array_equal(a.test.probabilities, b.test.probabilities)
    assert not np.array_equal(a.train.indices, c.train.indices)
    assert a.repeated_test is None and len(a.test_objects) == 30
    assert (len(a.train), len(a.validation), len(a.test)) == (100, 10, 20)


def test_sample_triplet_is_one_odd_last_choice(similarity):
    observer = LuceObserver(similarity, temperature=1.0)
    example = observer.sample_triplet(np.random.default_rng(9))
    assert example["indices"].shape == (3,) and len(set(example["indices"].tolist())) == 3
    np.testing.assert_allclose(
        example["probabilities"], observer.probabilities(example["indices"][None])[0], atol=1e-6
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LuceObserver(np.ones((3, 4))), "square"),
        (lambda: LuceObserver(np.triu(np.ones((3, 3)))), "symmetric"),
        (lambda: LuceObserver(np.full((3, 3), np.nan)), "NaN"),
        (lambda: LuceObserver(np.eye(3), temperature=0.0), "temperature must be a positive number"),
        (
            lambda: simulate_triplet_dataset(
                LuceObserver(np.eye(5)), n_train=1, n_validation=1, n_test=1, split="objects"
            ),
            "needs >= 3 objects per split",
        ),
        (
            lambda: simulate_triplet_dataset(
                LuceObserver(np.eye(5)), n_train=1, n_validation=1, n_test=1, split="classes"
            ),
            "split must be 'random' or 'objects'",
        ),
        (
            lambda: simulate_triplet_dataset(
                LuceObserver(np.eye(5)),
                n_train=1,
                n_validation=1,
                n_test=1,
                n_repeated=2,
                n_repeats=1,
            ),
            "n_repeats must be >= 2",
        ),
        (lambda: LuceObserver(np.eye(5)).probabilities(np.array([[0, 1, 5]])), "not in \\[0, 5\\)"),
    ],
)
def test_bad_input_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()
