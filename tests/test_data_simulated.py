"""AligNet's simulated setting (alignjax.data.simulated): observers, held-out categories, the
stored data sets and the image source over them."""

import numpy as np
import pytest

from alignjax.config import ConfigError
from alignjax.data import simulated
from alignjax.data.fashion_mnist import (
    CLASS_NAMES,
    FASHION_MNIST_DIR,
    SUPERORDINATE_NAMES,
    SUPERORDINATE_OF_CLASS,
)
from alignjax.data.hierarchy import HierarchyWorld, Tree
from alignjax.data.levels import triplet_levels
from alignjax.data.simulated import SimulatedConfig

SMALL = SimulatedConfig(
    world=HierarchyWorld(image_size=8),
    pool_size=64,
    human_items=60,
    human_train=300,
    human_validation=50,
    human_test=80,
    levels_items_per_leaf=3,
    levels_per_level=40,
    held_out_items_per_leaf=4,
)


def test_observer_similarity_is_log_sgen_of_the_categories():
    world = HierarchyWorld()  # 4 x 4 x 4, uniform level weights
    tree = world.tree
    leaves = np.array(
        [
            tree.index("0.0.0"),
            tree.index("0.0.0"),
            tree.index("0.0.1"),
            tree.index("0.1.0"),
            tree.index("1.0.0"),
        ]
    )
    humans = simulated.observer(simulated.leaf_similarity(world), leaves, temperature=0.5)
    # Balanced tree: s_gen = sum_{d <= depth(lca)} w_d N_d with w_d = 1/4 and N_d = 4^d.
    expected = np.log([(1 + 4 + 16 + 64) / 4, (1 + 4 + 16) / 4, (1 + 4) / 4, 1 / 4])
    np.testing.assert_allclose(humans.similarity[0, 1:], expected, rtol=1e-5)
    assert humans.temperature == 0.5


def test_held_out_categories():
    tree = Tree.balanced((4, 4, 4))
    held = simulated.held_out_categories(SimulatedConfig(), tree)
    assert len(held) == 16
    assert all(tree.names[leaf].endswith(".3") for leaf in held)
    with pytest.raises(ValueError, match="would hold out every category"):
        simulated.held_out_categories(SimulatedConfig(held_out_per_parent=4), tree)
    fashion = simulated.fashion_mnist_world().tree
    names = [
        fashion.names[leaf]
        for leaf in simulated.held_out_categories(SimulatedConfig(dataset="fashion_mnist"), fashion)
    ]
    assert sorted(names) == sorted(CLASS_NAMES[c] for c in (3, 6, 7))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("simulated")
    return data_dir, simulated.simulated_source(SMALL, data_dir)


def test_the_source_holds_every_split(small):
    _, source = small
    tree = SMALL.world.tree
    assert source.tree == tree
    held = simulated.held_out_categories(SMALL, tree)
    sizes = {"pool": 64, "humans": 60, "evaluation": 3 * 48, "held_out": 4 * 16}
    for split, n in sizes.items():
        images = source.read(split)
        labels = source.labels[split]
        assert images.shape == (n, 8, 8, 3) and images.dtype == np.uint8
        np.testing.assert_array_equal(labels["basic"], np.asarray(tree.parents)[labels["leaf"]])
        np.testing.assert_array_equal(labels["superordinate"], tree.ancestors[labels["leaf"], 1])
        assert np.isin(labels["leaf"], held).all() == (split == "held_out")
        assert np.isin(labels["leaf"], held).any() == (split == "held_out")
        assert int(source.splits[split][0]["leaf"]) == labels["leaf"][0]
    leaves = source.labels["humans"]["leaf"]
    humans = source.triplets["humans"]
    train, test = humans["train"], humans["test"]
    assert (len(train), len(humans["validation"]), len(test)) == (300, 50, 80)
    assert not np.isin(test.indices, train.indices).any()  # held-out objects
    np.testing.assert_array_equal(train.levels, triplet_levels(tree, leaves[train.indices]))
    levels = source.triplets["evaluation"]["levels"]
    np.testing.assert_array_equal(np.bincount(levels.levels, minlength=4), [40, 40, 40, 0])
    # The stored choice is the observer's: its probability sits in column 0.
    humans_observer = simulated.observer(simulated.leaf_similarity(SMALL.world), leaves, 0.5)
    np.testing.assert_allclose(
        test.probabilities, humans_observer.probabilities(test.indices), atol=1e-6
    )
    with pytest.raises(ValueError, match="share no image order"):
        source.rows("pool")


def test_the_stored_setting_is_reused(small):
    data_dir, source = small
    info = data_dir / simulated.IMAGES_NAME / "1.0.0" / "dataset_info.json"
    stamp = info.stat().st_mtime_ns
    again = simulated.simulated_source(SMALL, data_dir)
    assert info.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.read("pool"), source.read("pool"))


def test_bad_configs_name_the_field():
    with pytest.raises(ConfigError, match="dataset='imagenet': must be 'hierarchy' or"):
        SimulatedConfig(dataset="imagenet")
    with pytest.raises(ConfigError, match="fashion_held_out=\\(3, 10\\): every value must be"):
        SimulatedConfig(fashion_held_out=(3, 10))


@pytest.mark.skipif(
    not FASHION_MNIST_DIR.exists(),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_setting_holds_out_its_classes():
    config = SimulatedConfig(
        dataset="fashion_mnist",
        pool_size=500,
        human_items=50,
        levels_items_per_leaf=5,
        held_out_items_per_leaf=5,
    )
    splits = simulated._fashion_mnist_images(config, np.random.default_rng(0))
    tree = simulated.fashion_mnist_world().tree
    class_of_leaf = {tree.index(name): c for c, name in enumerate(CLASS_NAMES)}
    for split, images in splits.items():
        classes = np.array([class_of_leaf[leaf] for leaf in images["leaf"]])
        assert np.isin(classes, (3, 6, 7)).all() == (split == "held_out"), split
        np.testing.assert_array_equal(images["superordinate"], tree.ancestors[images["leaf"], 1])
        superordinate_names = [tree.names[s] for s in images["superordinate"]]
        assert superordinate_names == [
            SUPERORDINATE_NAMES[SUPERORDINATE_OF_CLASS[c]] for c in classes
        ]
    assert splits["pool"]["image"].shape == (500, 28, 28, 1)
