"""AligNet's world and simulated humans: levels of triplets, observers, the data stage."""

import numpy as np
import pytest

from alignjax.data.fashion_mnist import (
    CLASS_NAMES,
    FASHION_MNIST_DIR,
    SUPERORDINATE_NAMES,
    SUPERORDINATE_OF_CLASS,
)
from alignjax.data.hierarchy import HierarchyWorld, Tree
from alignjax.data.levels import triplet_levels
from alignjax.methods import alignet_data
from alignjax.methods.alignet_data import DataConfig

TREE = Tree.balanced((2, 2, 2))
LEAF = {name: i for i, name in enumerate(TREE.names)}
SMALL = DataConfig(
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
    humans = alignet_data.observer(alignet_data.leaf_similarity(world), leaves, temperature=0.5)
    # Balanced tree: s_gen = sum_{d <= depth(lca)} w_d N_d with w_d = 1/4 and N_d = 4^d.
    expected = np.log([(1 + 4 + 16 + 64) / 4, (1 + 4 + 16) / 4, (1 + 4) / 4, 1 / 4])
    np.testing.assert_allclose(humans.similarity[0, 1:], expected, rtol=1e-5)
    assert humans.temperature == 0.5


def test_held_out_categories():
    tree = Tree.balanced((4, 4, 4))
    held = alignet_data.held_out_categories(DataConfig(), tree)
    assert len(held) == 16
    assert all(tree.names[leaf].endswith(".3") for leaf in held)
    with pytest.raises(ValueError, match="would hold out every category"):
        alignet_data.held_out_categories(DataConfig(held_out_per_parent=4), tree)
    fashion = alignet_data.fashion_mnist_world().tree
    names = [
        fashion.names[leaf]
        for leaf in alignet_data.held_out_categories(DataConfig(dataset="fashion_mnist"), fashion)
    ]
    assert sorted(names) == sorted(CLASS_NAMES[c] for c in (3, 6, 7))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return alignet_data.build_data(SMALL, tmp_path_factory.mktemp("alignet-data"))


def test_build_data_writes_every_split(small_data):
    tree = SMALL.world.tree
    held = alignet_data.held_out_categories(SMALL, tree)
    sizes = {"pool": 64, "humans": 60, "levels": 3 * 48, "held_out": 4 * 16}
    for split, n in sizes.items():
        images = alignet_data.load_images(small_data, split)
        assert images["image"].shape == (n, 8, 8, 3) and images["image"].dtype == np.uint8
        np.testing.assert_array_equal(images["basic"], np.asarray(tree.parents)[images["leaf"]])
        np.testing.assert_array_equal(images["superordinate"], tree.ancestors[images["leaf"], 1])
        assert np.isin(images["leaf"], held).all() == (split == "held_out")
        assert np.isin(images["leaf"], held).any() == (split == "held_out")
    humans = alignet_data.load_images(small_data, "humans")
    train, test = (alignet_data.load_triplets(small_data, s) for s in ("train", "test"))
    assert (len(train), len(test)) == (300, 80)
    assert not np.isin(test.indices, train.indices).any()  # held-out objects
    np.testing.assert_array_equal(
        train.levels, triplet_levels(tree, humans["leaf"][train.indices])
    )
    levels = alignet_data.load_triplets(small_data, "levels")
    np.testing.assert_array_equal(np.bincount(levels.levels, minlength=4), [40, 40, 40, 0])
    # The stored choice is the observer's: its probability sits in column 0.
    humans_observer = alignet_data.observer(
        alignet_data.leaf_similarity(SMALL.world), humans["leaf"], 0.5
    )
    np.testing.assert_allclose(
        test.probabilities, humans_observer.probabilities(test.indices), atol=1e-6
    )


def test_build_data_reuses_its_artefacts(small_data):
    info = small_data / alignet_data.IMAGES_NAME / "1.0.0" / "dataset_info.json"
    stamp = info.stat().st_mtime_ns
    assert alignet_data.build_data(SMALL, small_data) == small_data
    assert info.stat().st_mtime_ns == stamp


def test_bad_split_names():
    with pytest.raises(ValueError, match="split must be one of"):
        alignet_data.load_images("/nonexistent", "test")
    with pytest.raises(ValueError, match="dataset must be 'hierarchy' or 'fashion_mnist'"):
        alignet_data.setting_world(DataConfig(dataset="imagenet"))


@pytest.mark.skipif(
    not FASHION_MNIST_DIR.exists(),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_setting_holds_out_its_classes():
    config = DataConfig(
        dataset="fashion_mnist",
        pool_size=500,
        human_items=50,
        levels_items_per_leaf=5,
        held_out_items_per_leaf=5,
    )
    splits = alignet_data._fashion_mnist_images(config, np.random.default_rng(0))
    tree = alignet_data.fashion_mnist_world().tree
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
