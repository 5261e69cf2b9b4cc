"""The World protocol: every generative world samples items and triplets the same way."""

import numpy as np
import pytest

from alignjax.data.gaussian_mixture import GaussianMixtureWorld
from alignjax.data.geoclidean import GeoclideanWorld
from alignjax.data.hierarchy import HierarchyWorld, Tree
from alignjax.data.observers import LuceObserver
from alignjax.data.quadrilaterals import QuadrilateralWorld
from alignjax.data.world import World, batch_generator

# Each world, the shape of one of its items, and its own extra keys (with their shapes
# per item or per triplet member).
WORLDS = [
    (GaussianMixtureWorld(num_components=3, dim=5), (5,), {}),
    (QuadrilateralWorld(image_size=16), (16, 16, 1), {"vertices": (4, 2)}),
    (GeoclideanWorld(image_size=16, channels=3), (16, 16, 3), {}),
    (
        HierarchyWorld(tree=Tree.balanced((2, 3)), image_size=8),
        (8, 8, 3),
        {"ancestors": (3,)},
    ),
]
IDS = [type(world).__name__ for world, _, _ in WORLDS]


@pytest.mark.parametrize(("world", "item_shape", "extras"), WORLDS, ids=IDS)
def test_every_world_is_a_world(world, item_shape, extras):
    assert isinstance(world, World)


def test_an_observer_is_not_a_world():
    assert not isinstance(LuceObserver(np.eye(3)), World)


@pytest.mark.parametrize(("world", "item_shape", "extras"), WORLDS, ids=IDS)
def test_items_have_the_documented_keys_and_shapes(world, item_shape, extras):
    items = world.sample(np.random.default_rng(0), 4)
    assert set(items) == {"inputs", "labels", *extras}
    assert items["inputs"].shape == (4, *item_shape) and items["inputs"].dtype == np.float32
    assert items["labels"].shape == (4,) and np.issubdtype(items["labels"].dtype, np.integer)
    for key, shape in extras.items():
        assert items[key].shape == (4, *shape), key


@pytest.mark.parametrize(("world", "item_shape", "extras"), WORLDS, ids=IDS)
def test_triplets_have_the_documented_keys_and_shapes(world, item_shape, extras):
    triplets = world.sample_triplets(np.random.default_rng(0), 5)
    assert {"inputs", "labels", *extras} <= set(triplets)
    assert triplets["inputs"].shape == (5, 3, *item_shape)
    assert triplets["inputs"].dtype == np.float32
    assert triplets["labels"].shape == (5, 3)
    for key, shape in extras.items():
        assert triplets[key].shape == (5, 3, *shape), key
    if not isinstance(world, HierarchyWorld):  # its labels are leaves, under one theta
        np.testing.assert_array_equal(triplets["labels"][:, 0], triplets["labels"][:, 1])


@pytest.mark.parametrize(("world", "item_shape", "extras"), WORLDS, ids=IDS)
def test_a_triplet_batch_costs_the_callers_stream_one_draw(world, item_shape, extras):
    rng, reference = np.random.default_rng(3), np.random.default_rng(3)
    first = world.sample_triplets(rng, 2)
    reference.integers(2**63)
    assert rng.integers(2**63) == reference.integers(2**63)
    again = world.sample_triplets(np.random.default_rng(3), 2)
    assert first["inputs"].tobytes() == again["inputs"].tobytes()


def test_batch_generator_is_seeded_by_one_draw():
    parent = np.random.default_rng(7)
    child = batch_generator(parent)
    seed = np.random.default_rng(7).integers(2**63)
    assert child.random() == np.random.default_rng(seed).random()
    assert parent.integers(2**63) == np.random.default_rng(7).integers(2**63, size=2)[1]
