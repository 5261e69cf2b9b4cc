"""Abstraction levels of a category tree (alignjax.data.levels): level depths and codes,
Levels triplets, held-out categories and category-balanced splits."""

import numpy as np
import pytest

from alignjax.data import levels
from alignjax.data.hierarchy import Tree

TREE = Tree.balanced((2, 2, 2))
LEAF = {name: i for i, name in enumerate(TREE.names)}


def _code(name):
    return levels.LEVELS_AND_OTHER.index(name)


def test_level_depths_follow_the_height_of_the_tree():
    assert levels.level_depths(Tree.balanced((4, 4, 4))) == {
        "coarse": 0,
        "boundary": 1,
        "fine": 2,
    }
    assert levels.level_depths(Tree.balanced((2, 2, 2, 2))) == {
        "coarse": 0,
        "boundary": 2,
        "fine": 3,
    }
    assert levels.level_depths(Tree.from_nested(("root", [("a", ["x", "y"]), ("b", ["z"])]))) == {
        "coarse": 0,
        "boundary": 1,
    }
    assert levels.level_depths(Tree.balanced((3,))) == {"coarse": 0}


def test_triplet_levels_by_hand():
    rows = [
        ("0.0.0", "0.1.1", "1.0.0", "coarse"),  # pair shares superordinate 0, odd one in 1
        (
            "1.0.0",
            "0.0.1",
            "0.0.0",
            "coarse",
        ),  # pair (1, 2) shares basic 0.0, odd one in superordinate 1
        ("0.1.0", "0.1.1", "0.0.0", "boundary"),  # pair shares basic 0.1, odd one in basic 0.0
        ("0.0.0", "0.0.0", "0.0.1", "fine"),  # two items of one leaf, odd one a sibling leaf
        ("0.0.0", "1.0.0", "1.1.0", "coarse"),
        ("0.0.0", "0.0.1", "0.0.0", "fine"),
        ("0.0.0", "0.1.0", "0.1.1", "boundary"),
        ("0.0.0", "0.0.0", "0.0.0", "other"),  # one category: no hierarchical signal
        ("0.0.0", "0.1.0", "0.0.1", "boundary"),
    ]
    leaves = np.array([[LEAF[a], LEAF[b], LEAF[c]] for a, b, c, _ in rows])
    expected = [_code(level) for *_, level in rows]
    np.testing.assert_array_equal(levels.triplet_levels(TREE, leaves), expected)
    # Three superordinates of a wider tree: all pairs meet at the root.
    wide = Tree.balanced((3, 2))
    leaves = np.array([[wide.index("0.0"), wide.index("1.0"), wide.index("2.1")]])
    np.testing.assert_array_equal(levels.triplet_levels(wide, leaves), [_code("other")])


@pytest.mark.parametrize("level", ["coarse", "boundary", "fine"])
def test_level_triplets_split_where_asked(level):
    tree = Tree.balanced((3, 3, 2))
    rng = np.random.default_rng(0)
    leaves = rng.choice(tree.leaves, 90)
    depth = levels.level_depths(tree)[level]
    triplets = levels.sample_level_triplets(tree, leaves, depth, 500, rng)
    assert triplets.shape == (500, 3)
    assert np.all(
        (triplets[:, 0] != triplets[:, 1])
        & (triplets[:, 0] != triplets[:, 2])
        & (triplets[:, 1] != triplets[:, 2])
    )
    # The odd item branches off at `depth`; the pair stays together below it.
    ancestors = tree.ancestors[leaves[triplets]]
    assert np.all(ancestors[:, 0, depth] == ancestors[:, 2, depth])
    assert np.all(ancestors[:, 0, depth + 1] == ancestors[:, 1, depth + 1])
    assert np.all(ancestors[:, 0, depth + 1] != ancestors[:, 2, depth + 1])
    np.testing.assert_array_equal(levels.triplet_levels(tree, leaves[triplets]), _code(level))
    # Every split node of that depth hosts triplets.
    assert len(np.unique(ancestors[:, 0, depth])) == np.count_nonzero(tree.depths == depth)


def test_level_triplets_need_a_host():
    tree = Tree.balanced((2, 2))
    with pytest.raises(ValueError, match="no node at depth 1"):
        levels.sample_level_triplets(
            tree, np.array([tree.index("0.0"), tree.index("1.1")]), 1, 3, np.random.default_rng(0)
        )


def test_held_out_leaves_per_parent_and_at_a_depth():
    tree = Tree.balanced((4, 4, 4))
    held = levels.held_out_leaves(tree)
    assert len(held) == 16
    assert all(tree.names[leaf].endswith(".3") for leaf in held)
    two = levels.held_out_leaves(tree, per_parent=2)
    assert len(two) == 32 and set(held) <= set(two)
    # depth 1: the last superordinate subtree; depth 2: the last basic category of each.
    assert {tree.names[leaf][0] for leaf in levels.held_out_leaves(tree, depth=1)} == {"3"}
    assert len(levels.held_out_leaves(tree, depth=2)) == 16
    np.testing.assert_array_equal(levels.held_out_leaves(tree, depth=3), held)
    with pytest.raises(ValueError, match="would hold out every category"):
        levels.held_out_leaves(tree, per_parent=4)
    with pytest.raises(ValueError, match=r"held_out_depth must lie in \[1, 3\]"):
        levels.held_out_leaves(tree, depth=4)


def test_split_per_category_is_balanced_and_seeded():
    labels = np.array([2, 0, 2, 0, 2, 1, 1, 1, 1])
    first = levels.split_per_category(labels)
    np.testing.assert_array_equal(np.flatnonzero(first), [0, 1, 5, 6])
    mask = levels.split_per_category(labels, np.random.default_rng(0))
    assert [int(np.sum(mask & (labels == c))) for c in (0, 1, 2)] == [1, 2, 1]
    again = levels.split_per_category(labels, np.random.default_rng(0))
    np.testing.assert_array_equal(mask, again)
