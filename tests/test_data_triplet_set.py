"""TripletSet: validation, the odd-last reordering, .npz storage, concatenation."""

import time

import numpy as np
import pytest

from alignjax.data.observers import pair_similarities
from alignjax.data.triplet_set import TripletSet, concatenate, odd_last_order, sort_odd_last


def _random_set(rng, n=50, n_items=12):
    indices = np.stack([rng.choice(n_items, 3, replace=False) for _ in range(n)])
    probabilities = rng.dirichlet(np.ones(3), size=n)
    return TripletSet(
        indices,
        similarities=rng.normal(size=(n, 3)),
        probabilities=probabilities,
        levels=rng.integers(0, 3, n),
        level_names=("coarse", "fine", "boundary"),
        n_items=n_items,
    )


def test_sort_odd_last_keeps_similarities_attached_to_their_pairs():
    rng = np.random.default_rng(0)
    similarity = rng.normal(size=(10, 10))
    similarity = similarity + similarity.T
    indices = np.stack([rng.choice(10, 3, replace=False) for _ in range(200)])
    s = pair_similarities(similarity, indices)
    item_order, pair_order = sort_odd_last(s)
    new_indices = np.take_along_axis(indices, item_order, axis=1)
    new_s = np.take_along_axis(s, pair_order, axis=1)
    np.testing.assert_array_equal(pair_similarities(similarity, new_indices), new_s)
    assert np.all(np.argmax(new_s, axis=1) == 0)
    # The odd one out is the item outside the most similar pair: pair k leaves item 2 - k.
    np.testing.assert_array_equal(
        new_indices[:, 2], indices[np.arange(200), 2 - np.argmax(s, axis=1)]
    )
    # Each row is a permutation of the original items.
    np.testing.assert_array_equal(np.sort(new_indices, axis=1), np.sort(indices, axis=1))


def test_sort_odd_last_leaves_sorted_rows_and_ties_unchanged():
    s = np.array([[3.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    item_order, pair_order = sort_odd_last(s)
    np.testing.assert_array_equal(item_order, [[0, 1, 2], [0, 1, 2]])
    np.testing.assert_array_equal(pair_order, [[0, 1, 2], [0, 1, 2]])


def test_odd_last_order_rejects_bad_pairs():
    with pytest.raises(ValueError, match="pair must have shape"):
        odd_last_order(np.array([0, 3]))


def test_sorted_odd_last_method_reorders_every_field():
    rng = np.random.default_rng(1)
    ts = _random_set(rng)
    out = ts.sorted_odd_last()
    assert np.all(np.argmax(out.similarities, axis=1) == 0)
    _, pair_order = sort_odd_last(ts.similarities)
    np.testing.assert_array_equal(
        out.probabilities, np.take_along_axis(ts.probabilities, pair_order, axis=1)
    )
    np.testing.assert_array_equal(out.levels, ts.levels)
    by_probabilities = TripletSet(ts.indices, probabilities=ts.probabilities).sorted_odd_last()
    assert np.all(np.argmax(by_probabilities.probabilities, axis=1) == 0)
    with pytest.raises(ValueError, match="needs similarities or probabilities"):
        TripletSet(ts.indices).sorted_odd_last()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"indices": np.zeros((2, 2), int)},
            r"indices must have shape \[n, 3\]; got shape \(2, 2\)",
        ),
        ({"indices": np.array([[0.0, 1.0, 2.0]])}, "indices must be integers"),
        (
            {"indices": np.array([[0, 1, 2], [0, 1, 5]]), "n_items": 5},
            r"indices row 1 has an index that is not in \[0, 5\)",
        ),
        (
            {"indices": np.array([[0, 1, 2], [-1, 1, 2]])},
            "indices row 1 has an index that is not non-negative",
        ),
        ({"indices": np.array([[0, 1, 2], [3, 4, 5], [4, 2, 4]])}, "indices row 2 repeats an item"),
        (
            {"indices": np.array([[0, 1, 2]]), "similarities": np.zeros((2, 3))},
            r"similarities must have shape \[1, 3\]",
        ),
        (
            {
                "indices": np.array([[0, 1, 2], [1, 2, 3]]),
                "similarities": [[0, 1, 2], [0, np.nan, 1]],
            },
            r"similarities row 1 is not finite",
        ),
        (
            {
                "indices": np.array([[0, 1, 2], [1, 2, 3]]),
                "probabilities": [[0.2, 0.3, 0.5], [0.2, 0.3, 0.4]],
            },
            "probabilities row 1 must be non-negative and sum to one",
        ),
        (
            {"indices": np.array([[0, 1, 2]]), "probabilities": [[1.2, -0.2, 0.0]]},
            "probabilities row 0",
        ),
        (
            {"indices": np.array([[0, 1, 2]]), "levels": [0]},
            "level_names must name the level codes",
        ),
        (
            {
                "indices": np.array([[0, 1, 2], [1, 2, 3]]),
                "levels": [0, 2],
                "level_names": ("a", "b"),
            },
            r"levels row 1 is 2, not a code in \[0, 2\)",
        ),
        ({"indices": np.array([[0, 1, 2]]), "n_items": 2}, "n_items must be an integer >= 3"),
    ],
)
def test_validation_errors_name_the_field_and_row(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TripletSet(**kwargs)


def test_npz_round_trip_and_deterministic_bytes(tmp_path, monkeypatch):
    ts = _random_set(np.random.default_rng(2))
    ts.save_npz(tmp_path / "a.npz")
    # np.savez would stamp the wall-clock time into the archive; ours must not.
    later = time.time() + 10**6
    monkeypatch.setattr(time, "time", lambda: later)
    ts.save_npz(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = TripletSet.load_npz(tmp_path / "a.npz")
    for field in ("indices", "similarities", "probabilities", "levels"):
        np.testing.assert_array_equal(getattr(back, field), getattr(ts, field))
    assert back.level_names == ts.level_names and back.n_items == ts.n_items
    bare = TripletSet(np.array([[0, 1, 2]]))
    bare.save_npz(tmp_path / "bare.npz")
    back = TripletSet.load_npz(tmp_path / "bare.npz")
    assert back.similarities is None and back.levels is None and back.n_items is None


def test_load_npz_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        TripletSet.load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", indices=np.array([[0, 0, 1]]))
    with pytest.raises(ValueError, match=r"bad.npz: indices row 0 repeats an item"):
        TripletSet.load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match=r"other.npz: not a triplet set"):
        TripletSet.load_npz(tmp_path / "other.npz")


def test_subset_and_concatenate_are_inverse():
    ts = _random_set(np.random.default_rng(3))
    parts = [ts.subset(slice(0, 20)), ts.subset(np.arange(20, 35)), ts.subset(np.arange(50) >= 35)]
    assert [len(p) for p in parts] == [20, 15, 15]
    whole = concatenate(parts)
    for field in ("indices", "similarities", "probabilities", "levels"):
        np.testing.assert_array_equal(getattr(whole, field), getattr(ts, field))
    assert whole.n_items == ts.n_items and whole.level_names == ts.level_names


def test_concatenate_rejects_mismatched_sets():
    a = TripletSet(np.array([[0, 1, 2]]), similarities=np.zeros((1, 3)))
    b = TripletSet(np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match=r"sets\[1\] lacks similarities"):
        concatenate([a, b])
    c = TripletSet(np.array([[0, 1, 2]]), levels=[0], level_names=("x",))
    d = TripletSet(np.array([[0, 1, 2]]), levels=[0], level_names=("y",))
    with pytest.raises(ValueError, match="level_names"):
        concatenate([c, d])
    with pytest.raises(ValueError, match="at least one"):
        concatenate([])
