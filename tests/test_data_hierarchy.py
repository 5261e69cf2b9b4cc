"""Hierarchy world: trees, s_gen from the lowest common ancestor, triplets, split depths."""

import numpy as np
import pytest

from alignjax.data.hierarchy import HierarchyWorld, Tree

WORLD = HierarchyWorld(image_size=8)
UNBALANCED = Tree.from_nested(
    ("root", [("a", ["a1", "a2", ("a3", ["a3x", "a3y"])]), ("b", ["b1", "b2"]), "c"])
)


def test_tree_from_nested():
    tree = UNBALANCED
    assert tree.names[:4] == ("root", "a", "a1", "a2")
    assert [tree.names[i] for i in tree.leaves] == ["a1", "a2", "a3x", "a3y", "b1", "b2", "c"]
    assert tree.height == 3
    np.testing.assert_array_equal(tree.depths[[0, 1, 4, 5]], [0, 1, 2, 3])
    lca = tree.lca(
        tree.index("a3x"), np.array([tree.index("a3y"), tree.index("a1"), tree.index("b1")])
    )
    assert [tree.names[i] for i in lca] == ["a3", "a", "root"]
    assert tree.lca(tree.index("c"), tree.index("c")) == tree.index("c")
    u = tree.descent_probability
    assert u[tree.index("a3x")] == pytest.approx(1 / 3 * 1 / 3 * 1 / 2)
    assert u[tree.leaves].sum() == pytest.approx(1.0)


def test_balanced_tree():
    tree = Tree.balanced((4, 4, 4))
    assert tree.num_nodes == 1 + 4 + 16 + 64 and tree.num_leaves == 64
    assert tree.names[tree.parents[tree.index("2.3.1")]] == "2.3"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Tree(("r", "a"), (-1, 1)), "parents"),
        (lambda: Tree(("r", "a", "a"), (-1, 0, 0)), "unique"),
        (lambda: Tree.from_nested(("r", "a")), "children"),
        (lambda: Tree.from_nested(3), "name or"),
        (lambda: Tree.balanced(()), "branching"),
        (lambda: UNBALANCED.index("zebra"), "no node named"),
        (lambda: HierarchyWorld(tree=Tree(("r",), (-1,))), "at least one level"),
        (lambda: HierarchyWorld(level_weights=(1.0, 1.0)), "level_weights"),
        (lambda: HierarchyWorld(level_weights=(0.0, 1.0, 1.0, 1.0)), "root weight"),
        (lambda: HierarchyWorld(scale_decay=0.0), "scale_decay"),
        (lambda: HierarchyWorld(scale_decay=1.5), r"scale_decay=1.5: must be a finite number in"),
        (lambda: HierarchyWorld(item_scale=float("nan")), "item_scale=nan"),
        (lambda: HierarchyWorld(image_size=4), r"image_size=4: must be an integer >= 8"),
        (lambda: WORLD.split_depth("medium"), "level must be one of"),
        (lambda: WORLD.log_generative_similarity(0, 85), "leaves"),
        (lambda: WORLD.log_generative_similarity(1, 85), "leaf nodes"),
        (lambda: HierarchyWorld(tree=Tree.balanced((2, 2))).split_depth("fine"), "height"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_closed_form_for_a_balanced_tree():
    # s_gen = sum_{d <= depth(lca)} w_d N_d with N = (1, 4, 16, 64), w_d = 1/4.
    tree = WORLD.tree
    leaves = tree.leaves
    log_s = WORLD.log_generative_similarity(leaves[:, None], leaves[None, :])
    depth = tree.depths[tree.lca(leaves[:, None], leaves[None, :])]
    expected = np.cumsum([1, 4, 16, 64])[depth] / 4
    np.testing.assert_allclose(np.exp(log_s), expected, rtol=1e-5)
    # The mean over independent pairs is exactly 1 (uniform leaves here).
    assert np.exp(log_s).mean() == pytest.approx(1.0, rel=1e-5)
    weighted = HierarchyWorld(level_weights=(1.0, 0.0, 0.0, 3.0))  # root or leaf only
    s = np.exp(weighted.log_generative_similarity(leaves[0], leaves[:2]))
    np.testing.assert_allclose(s, [0.25 + 0.75 * 64, 0.25], rtol=1e-5)


def test_exact_s_gen_matches_the_sampler_on_an_unbalanced_tree():
    # E_independent[s 1{lca depth = d}] = P_same(lca depth = d), from the world's sampler.
    world = HierarchyWorld(tree=UNBALANCED, level_weights=(1.0, 2.0, 1.0, 3.0))
    rng = np.random.default_rng(0)
    n = 200_000
    theta = world.sample_thetas(rng, n)
    x, y = world.sample_leaves(rng, theta), world.sample_leaves(rng, theta)
    z = world.sample_leaves(rng, world.sample_thetas(rng, n))
    tree = world.tree
    assert np.all(tree.is_ancestor(theta, x) & tree.is_ancestor(theta, y))
    same_depth = tree.depths[tree.lca(x, y)]
    independent_depth = tree.depths[tree.lca(x, z)]
    s = np.exp(world.log_generative_similarity(x, z).astype(np.float64))
    assert s.mean() == pytest.approx(1.0, abs=0.02)
    for d in range(tree.height + 1):
        assert np.mean(s * (independent_depth == d)) == pytest.approx(
            np.mean(same_depth == d), abs=0.01
        )
    # Leaf frequencies under the marginal match q(l) implied by the prior.
    q = np.exp(np.log(world.prior) + world.leaf_log_likelihoods(tree.leaves)).sum(axis=1)
    np.testing.assert_allclose(
        np.bincount(z, minlength=tree.num_nodes)[tree.leaves] / n, q, atol=0.005
    )


def test_split_depths_of_the_levels():
    assert [WORLD.split_depth(level) for level in ("coarse", "boundary", "fine")] == [0, 1, 2]
    deep = HierarchyWorld(tree=Tree.balanced((2, 2, 2, 2)), image_size=8)
    assert [deep.split_depth(level) for level in ("coarse", "boundary", "fine")] == [0, 2, 3]
    explicit = HierarchyWorld(tree=Tree.balanced((2, 2)), image_size=8, level_depths=(0, 1, 1))
    assert explicit.split_depth("fine") == 1


def test_generative_triplets_and_determinism():
    a, b, c = (WORLD.sample_triplets(np.random.default_rng(seed), 10) for seed in (1, 1, 2))
    assert (
        a["inputs"].tobytes() == b["inputs"].tobytes()
        and a["labels"].tobytes() == b["labels"].tobytes()
    )
    assert a["inputs"].tobytes() != c["inputs"].tobytes()
    assert a["inputs"].shape == (10, 3, 8, 8, 3) and a["inputs"].dtype == np.float32
    tree = WORLD.tree
    assert np.all(tree.is_ancestor(a["thetas"][:, 0], a["labels"][:, 0]))
    assert np.all(tree.is_ancestor(a["thetas"][:, 0], a["labels"][:, 1]))
    assert np.all(tree.is_ancestor(a["thetas"][:, 2], a["labels"][:, 2]))
    np.testing.assert_array_equal(a["ancestors"][:, :, -1], a["labels"])


def test_images_inherit_attributes():
    world = HierarchyWorld(image_size=16)
    images = world.render_items(np.random.default_rng(0), np.repeat(world.tree.leaves, 4))
    assert images.min() >= 0.0 and images.max() <= 1.0
    means = images.reshape(64, 4, -1).mean(axis=1)
    tree = world.tree
    leaves = tree.leaves
    depth = tree.depths[tree.lca(leaves[:, None], leaves[None, :])]
    distance = np.linalg.norm(means[:, None] - means[None], axis=-1)
    by_level = [distance[(depth == d) & ~np.eye(64, dtype=bool)].mean() for d in range(3)]
    # Closer in the tree, closer in pixels: cousins < relatives < strangers.
    assert by_level[2] < by_level[1] < by_level[0]
    assert len(np.unique(images.reshape(256, -1), axis=0)) == 256  # items differ
