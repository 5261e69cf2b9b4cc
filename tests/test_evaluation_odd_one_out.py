"""Odd-one-out accuracy: hand-computed triplets, ties, levels, ceilings, a brute-force reference."""

import itertools

import numpy as np
import pytest
import scipy.special

from alignjax.evaluation import odd_one_out as ooo


def _brute_force_correct(similarity, triplets):
    """Reference: a Python loop over triplets with the tie rule spelt out."""
    out = []
    for i, j, k in triplets:
        s01, s02, s12 = similarity[i, j], similarity[i, k], similarity[j, k]
        out.append(s01 > s02 and s01 > s12)
    return np.array(out)


@pytest.fixture(scope="module")
def random_problem():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 5))
    triplets = np.array(list(itertools.permutations(range(12), 3)))[::7]
    levels = rng.integers(0, 3, size=len(triplets))
    probabilities = rng.dirichlet(np.ones(3), size=len(triplets))
    return features, triplets, levels, probabilities


def test_three_items_all_orders_hand_computed():
    # Dot similarities: s(0,1) = 1.0, s(0,2) = 0.5, s(1,2) = 0.0 (items 0 and 1 are the pair).
    features = np.array([[1.0, 0.5], [1.0, 0.0], [0.0, 1.0]])
    triplets = np.array(list(itertools.permutations(range(3))))
    result = ooo.odd_one_out_accuracy(features, triplets)
    # Correct iff items 0 and 1 are in positions 0 and 1: (0,1,2) and (1,0,2).
    assert result.accuracy == pytest.approx(2 / 6)
    assert result.n_triplets == 6
    assert result.noise_ceiling is None


def test_ties_count_as_wrong():
    identical = np.ones((3, 2))
    assert ooo.odd_one_out_accuracy(identical, [[0, 1, 2]]).accuracy == 0.0
    # s01 == s02 > s12: the maximum is not unique, so wrong.
    features = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, -1.0]])
    assert ooo.odd_one_out_accuracy(features, [[0, 1, 2]]).accuracy == 0.0
    similarity = np.array([[1.0, 0.7, 0.7], [0.7, 1.0, 0.1], [0.7, 0.1, 1.0]])
    assert ooo.odd_one_out_accuracy_from_similarities(similarity, [[0, 1, 2]]).accuracy == 0.0


def test_cosine_and_dot_kernels_differ_as_computed_by_hand():
    # dot: s01 = 1, s02 = 10, s12 = 10.25 -> wrong; cosine: s01 = .999, s02 = .894, s12 = .916.
    features = np.array([[1.0, 0.0], [1.0, 0.05], [10.0, 5.0]])
    assert ooo.odd_one_out_accuracy(features, [[0, 1, 2]], kernel="dot").accuracy == 0.0
    assert ooo.odd_one_out_accuracy(features, [[0, 1, 2]], kernel="cosine").accuracy == 1.0


@pytest.mark.parametrize("kernel", ["dot", "cosine"])
def test_matches_brute_force_overall_and_per_level(random_problem, kernel):
    features, triplets, levels, _ = random_problem
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    space = unit if kernel == "cosine" else features
    expected = _brute_force_correct(space @ space.T, triplets)
    names = ["coarse", "fine", "boundary"]
    result = ooo.odd_one_out_accuracy(
        features, triplets, kernel=kernel, levels=levels, level_names=names, chunk_size=7
    )
    assert result.accuracy == pytest.approx(expected.mean())
    for level, name in enumerate(names):
        assert result.per_level[name] == pytest.approx(expected[levels == level].mean())
        assert result.per_level_n_triplets[name] == int((levels == level).sum())


def test_chunking_does_not_change_the_result(random_problem):
    features, triplets, levels, _ = random_problem
    whole = ooo.odd_one_out_accuracy(features, triplets, levels=levels)
    for chunk_size in (1, 5, 1000):
        chunked = ooo.odd_one_out_accuracy(features, triplets, levels=levels, chunk_size=chunk_size)
        assert chunked == whole


def test_from_similarities_equals_features_with_gram_matrix(random_problem):
    features, triplets, levels, _ = random_problem
    from_features = ooo.odd_one_out_accuracy(features, triplets, levels=levels)
    from_matrix = ooo.odd_one_out_accuracy_from_similarities(
        features @ features.T, triplets, levels=levels, chunk_size=9
    )
    assert from_matrix.accuracy == pytest.approx(from_features.accuracy)
    assert from_matrix.per_level == pytest.approx(from_features.per_level)


def test_noise_ceiling_given_and_from_reference_probabilities(random_problem):
    features, triplets, levels, probabilities = random_problem
    given = ooo.odd_one_out_accuracy(features, triplets, noise_ceiling=0.8)
    assert given.noise_ceiling == 0.8

    result = ooo.odd_one_out_accuracy(
        features, triplets, levels=levels, reference_probabilities=probabilities
    )
    best = probabilities.max(axis=1)
    assert result.noise_ceiling == pytest.approx(best.mean())
    assert result.per_level_noise_ceiling == pytest.approx(
        {str(level): best[levels == level].mean() for level in range(3)}
    )
    assert ooo.noise_ceiling([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]) == pytest.approx(
        (0.5 + 1 / 3) / 2
    )


def test_named_level_without_triplets_is_nan():
    features = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    result = ooo.odd_one_out_accuracy(
        features, [[0, 1, 2], [0, 2, 1]], levels=[0, 0], level_names=["fine", "coarse"]
    )
    assert result.per_level["fine"] == 0.5
    assert np.isnan(result.per_level["coarse"])
    assert result.per_level_n_triplets == {"fine": 2, "coarse": 0}


def test_probabilities_are_softmax_of_hand_similarities():
    features = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
    # dot: s01 = 2, s02 = 0, s12 = 3.
    probabilities = ooo.odd_one_out_probabilities(features, [[0, 1, 2]], temperature=2.0)
    np.testing.assert_allclose(
        probabilities, scipy.special.softmax([[1.0, 0.0, 1.5]], axis=1), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": np.ones(3)}, r"features must have shape \[n_items, d\]; got shape \(3,\)"),
        ({"triplets": [[0, 1]]}, r"triplets must have shape \[n_triplets, 3\]; got shape \(1, 2\)"),
        ({"triplets": [[0.0, 1.0, 2.0]]}, "triplets must hold integer"),
        ({"triplets": [[0, 1, 3]]}, r"triplets must index items in \[0, 3\)"),
        ({"kernel": "rbf"}, "kernel must be 'dot' or 'cosine'"),
        ({"levels": [0, 1]}, r"levels must have length 1; got shape \(2,\)"),
        ({"levels": [2], "level_names": ["a", "b"]}, r"levels must lie in \[0, 2\)"),
        ({"level_names": ["a"]}, "level_names was given without levels"),
        ({"noise_ceiling": 0.9, "reference_probabilities": [[1, 0, 0]]}, "not both"),
        ({"reference_probabilities": [[0.5, 0.2, 0.2]]}, "row 0 sums to 0.9"),
        ({"reference_probabilities": [[1, 0, 0]] * 2}, r"must have shape \[1, 3\]"),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(kwargs, message):
    arguments = {"features": np.eye(3), "triplets": [[0, 1, 2]], **kwargs}
    with pytest.raises(ValueError, match=message):
        ooo.odd_one_out_accuracy(arguments.pop("features"), arguments.pop("triplets"), **arguments)


def test_bad_similarity_matrix_raises():
    with pytest.raises(ValueError, match=r"similarity_matrix must have shape .*got shape \(3, 2\)"):
        ooo.odd_one_out_accuracy_from_similarities(np.ones((3, 2)), [[0, 1, 2]])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ooo.odd_one_out_probabilities(np.eye(3), [[0, 1, 2]], temperature=0.0)


@pytest.mark.parametrize("scale", [1e19, 1e30, 1e-25])
@pytest.mark.parametrize("kernel", ["dot", "cosine"])
def test_accuracy_does_not_depend_on_the_scale_of_the_features(scale, kernel):
    # float32 dot products of entries near 1e19 overflow (and of 1e-25 underflow), which
    # would make every triplet a tie and the accuracy 0.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 8))
    triplets = np.stack([rng.choice(30, 3, replace=False) for _ in range(200)])
    expected = ooo.odd_one_out_accuracy(features, triplets, kernel=kernel).accuracy
    assert 0.2 < expected < 0.8
    assert ooo.odd_one_out_accuracy(features * scale, triplets, kernel=kernel).accuracy == expected
