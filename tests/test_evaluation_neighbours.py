"""Nearest-neighbour preservation: a hand-built example and scikit-learn's neighbour search."""

import numpy as np
import pytest
import sklearn.neighbors

from alignjax.evaluation import neighbours


def _on_circle(degrees):
    radians = np.deg2rad(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


# Space A: items at 0, 10, 90, 100 degrees; space B: 0, 10, 50, 120 degrees. Cosine
# neighbours follow angular distance, which is also invariant to each item's radius.
SPACE_A = _on_circle([0, 10, 90, 100]) * np.array([[1.0], [2.0], [0.5], [3.0]])
SPACE_B = _on_circle([0, 10, 50, 120])


def test_hand_built_example_k1():
    # A: 0->1, 1->0, 2->3, 3->2.  B: 0->1, 1->0, 2->1 (40 deg), 3->2 (70 deg).
    assert neighbours.neighbour_preservation(SPACE_A, SPACE_B, k=1) == pytest.approx(0.75)


def test_hand_built_example_k2():
    # A: {1,2}, {0,2}, {1,3}, {1,2};  B: {1,2}, {0,2}, {0,1}, {1,2}: overlaps 2, 2, 1, 2.
    assert neighbours.neighbour_preservation(SPACE_A, SPACE_B, k=2) == pytest.approx(0.875)
    assert neighbours.neighbour_preservation(SPACE_B, SPACE_A, k=2) == pytest.approx(0.875)


def test_identical_spaces_and_the_full_neighbourhood_preserve_everything():
    x = np.random.default_rng(0).normal(size=(20, 4))
    assert neighbours.neighbour_preservation(x, 2.0 * x, k=5) == 1.0
    y = np.random.default_rng(1).normal(size=(20, 4))
    assert neighbours.neighbour_preservation(x, y, k=19) == 1.0


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_neighbours_match_sklearn_and_exclude_self(chunk_size):
    x = np.random.default_rng(2).normal(size=(15, 3))
    found = neighbours.nearest_neighbours(x, k=4, chunk_size=chunk_size)
    search = sklearn.neighbors.NearestNeighbors(n_neighbors=5, metric="cosine").fit(x)
    _, expected = search.kneighbors(x)
    for item in range(15):
        assert item not in found[item]
        assert set(found[item]) == set(expected[item]) - {item}


def test_bad_inputs():
    with pytest.raises(ValueError, match="k must be < n_items = 4"):
        neighbours.neighbour_preservation(SPACE_A, SPACE_B, k=4)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        neighbours.neighbour_preservation(SPACE_A, SPACE_B, k=0)
    with pytest.raises(ValueError, match=r"same items; got shapes \(4, 2\) and \(3, 2\)"):
        neighbours.neighbour_preservation(SPACE_A, SPACE_B[:3], k=1)
    with pytest.raises(ValueError, match=r"features_b must have shape \[n_items, d\]"):
        neighbours.neighbour_preservation(SPACE_A, SPACE_B.ravel(), k=1)
