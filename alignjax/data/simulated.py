r"""AligNet's simulated setting as an image source: images of a known category tree and
simulated "humans" whose judgments follow the tree.

A *setting* is a set of images whose categories are the leaves of a known tree
(Muttenthaler et al. 2024 run AligNet on ImageNet with THINGS judgments; here the truth is
known, so the noise ceiling and every level of abstraction are too):

- ``"hierarchy"``: :class:`~alignjax.data.hierarchy.HierarchyWorld` images (rendered
  from a seed; 4 superordinate x 4 basic x 4 subordinate categories by default);
- ``"fashion_mnist"``: the Fashion-MNIST images of the Debian package, whose 10 classes
  are the leaves of the documented two-level hierarchy of
  :mod:`alignjax.data.fashion_mnist` (superordinate -> class).

Some categories are held out (by default the last subordinate category under every
basic one; for Fashion-MNIST Dress, Shirt and Sneaker): no image of them is seen by the
teacher, the student or the simulated humans; they serve the downstream few-shot and
anomaly-detection evaluation. :func:`simulated_source` gives the
:class:`~alignjax.data.sources.ImageSource` with the splits (images in memory, labels
``"leaf"``, ``"basic"``, ``"superordinate"``, the tree)

- ``pool``: the large unlabelled image pool AligNet's triplets are sampled from (its
  labels train a teacher and are otherwise used only by reports);
- ``humans``: the objects of the simulated odd-one-out experiment (THINGS-like);
- ``evaluation``: new images of the seen categories for the Levels evaluation;
- ``held_out``: images of the held-out categories.

**The humans.** A :class:`~alignjax.data.observers.LuceObserver` whose similarity of two
items is the exact generative similarity of their categories,
``S_ij = log s_gen(leaf_i, leaf_j)`` (:meth:`HierarchyWorld.log_generative_similarity`,
the root-to-LCA sum of the module docstring there), and whose choices follow the Luce
rule at temperature ``observer_temperature``. Items of one category are interchangeable
to it, as the images of a class are in the paper; no item-level term is added because
none is known for these images, so a triplet whose three pairs share their lowest
common ancestor carries no signal (its choice is uniform). Triplet sets (odd one out
last, with the observer's probabilities and a level per triplet):

- ``triplets["humans"]`` ``train`` / ``validation`` / ``test``: random triplets over
  disjoint ``humans`` objects (:func:`~alignjax.data.observers.simulate_triplet_dataset`,
  ``split="objects"``), as THINGS; each is labelled by its LCA structure
  (:func:`~alignjax.data.levels.triplet_levels`);
- ``triplets["evaluation"]["levels"]``: triplets over the ``evaluation`` images drawn at
  a chosen split depth (:func:`~alignjax.data.levels.level_triplet_set`),
  ``levels_per_level`` of each level, as the Levels data set: ``coarse`` (two items of
  one superordinate, the odd one from another), ``boundary`` (two of one basic
  category, the odd one from a sibling category) and, where the tree has subordinate
  categories, ``fine`` (two of one subordinate category, the odd one from a sibling
  within the basic category).

The setting is written once as TFDS/ArrayRecord data sets in a data directory
(:func:`build_simulated`) and read back from there, so a resumed run sees the same bytes.

References:
  Muttenthaler, L. et al. (2024). Aligning machine and human visual representations
  across abstraction levels. arXiv:2409.06509 (the Levels data set, THINGS triplets).
  Hebart, M. N. et al. (2020). Revealing the multidimensional mental representations of
  natural objects underlying human similarity judgements (THINGS odd-one-out).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Literal

import numpy as np

from alignjax.config import ConfigError, checked, configclass
from alignjax.data import fashion_mnist, observers, tfds_builders
from alignjax.data.hierarchy import HierarchyWorld, Tree
from alignjax.data.levels import (
    LEVELS_AND_OTHER,
    basic_depth,
    held_out_leaves,
    level_triplet_set,
    triplet_levels,
)
from alignjax.data.sources import ArrayImages, ImageSource
from alignjax.data.triplet_set import TripletSet

IMAGE_SPLITS: tuple[str, ...] = ("pool", "humans", "evaluation", "held_out")
# Stored splits of the human triplet set: the humans' three, and the Levels triplets.
TRIPLET_SPLITS: tuple[str, ...] = ("train", "validation", "test", "levels")
LABELS: tuple[str, ...] = ("leaf", "basic", "superordinate")
IMAGES_NAME = "simulated_images"
HUMAN_TRIPLETS_NAME = "simulated_human_triplets"


@configclass
class SimulatedConfig:
    """The images and the simulated humans of a simulated setting.

    Attributes:
      dataset: ``"hierarchy"`` (rendered images of ``world``) or ``"fashion_mnist"``.
      world: the hierarchy world (its tree is also the observers' hierarchy there).
      held_out_per_parent: hierarchy: leaves held out under every parent of leaves.
      fashion_held_out: Fashion-MNIST classes held out (default Dress, Shirt, Sneaker:
        one per superordinate that has more than one class besides it).
      pool_size: images in the pool.
      human_items: objects of the simulated odd-one-out experiment.
      human_train, human_validation, human_test: random triplets per split.
      observer_temperature: Luce temperature of the simulated humans.
      levels_items_per_leaf: ``evaluation`` images per seen category.
      levels_per_level: Levels triplets per level.
      held_out_items_per_leaf: ``held_out`` images per held-out category.
      seed: seed of every draw of the setting.
    """

    dataset: Literal["hierarchy", "fashion_mnist"] = "hierarchy"
    world: HierarchyWorld = HierarchyWorld()
    held_out_per_parent: int = checked(1, ge=1)
    fashion_held_out: tuple[int, ...] = checked((3, 6, 7), ge=0, lt=10)
    pool_size: int = checked(8192, ge=1)
    human_items: int = checked(600, ge=3)
    human_train: int = checked(20000, ge=1)
    human_validation: int = checked(2000, ge=1)
    human_test: int = checked(5000, ge=1)
    observer_temperature: float = checked(0.5, gt=0)
    levels_items_per_leaf: int = checked(16, ge=2)
    levels_per_level: int = checked(1000, ge=1)
    held_out_items_per_leaf: int = checked(40, ge=2)
    seed: int = 0

    def __post_init__(self):
        if self.dataset not in ("hierarchy", "fashion_mnist"):
            raise ConfigError(
                f"={self.dataset!r}: must be 'hierarchy' or 'fashion_mnist'", "dataset"
            )


def fashion_mnist_world() -> HierarchyWorld:
    """The Fashion-MNIST hierarchy as a world (used for its tree and ``s_gen`` only).

    The root has the four superordinate categories of
    :data:`alignjax.data.fashion_mnist.SUPERORDINATE_NAMES` as children and the classes
    as leaves; leaf ``c`` is named ``CLASS_NAMES[c]``.
    """
    children = [
        (
            name,
            [
                fashion_mnist.CLASS_NAMES[c]
                for c in np.flatnonzero(fashion_mnist.SUPERORDINATE_OF_CLASS == s)
            ],
        )
        for s, name in enumerate(fashion_mnist.SUPERORDINATE_NAMES)
    ]
    return HierarchyWorld(tree=Tree.from_nested(("clothing", children)))


def setting_world(config: SimulatedConfig) -> HierarchyWorld:
    """The world whose tree and ``s_gen`` the observers use."""
    return fashion_mnist_world() if config.dataset == "fashion_mnist" else config.world


def leaf_similarity(world: HierarchyWorld) -> np.ndarray:
    """``log s_gen`` between every two categories, ``float64 [num_nodes, num_nodes]``.

    Rows and columns are tree nodes; only leaf entries are filled (the rest are NaN).
    One call for all leaves: the exact ``s_gen`` runs JAX operations whose compilation
    costs more than the arithmetic.
    """
    leaves = world.tree.leaves
    table = np.full((world.tree.num_nodes,) * 2, np.nan)
    table[np.ix_(leaves, leaves)] = world.log_generative_similarity(
        leaves[:, None], leaves[None, :]
    )
    return table


def observer(
    similarity: np.ndarray, leaves: np.ndarray, temperature: float
) -> observers.LuceObserver:
    """The simulated human over items of ``leaves``: ``S_ij = log s_gen(leaf_i, leaf_j)``.

    Args:
      similarity: :func:`leaf_similarity` of the world.
      leaves: ``int [n_items]`` leaf node of every item.
      temperature: Luce temperature.
    """
    leaves = np.asarray(leaves)
    return observers.LuceObserver(
        similarity[leaves[:, None], leaves[None, :]], temperature=temperature
    )


def held_out_categories(config: SimulatedConfig, tree: Tree) -> np.ndarray:
    """Leaf nodes of the held-out categories, sorted: Fashion-MNIST's
    ``fashion_held_out`` classes, or the last ``held_out_per_parent`` leaves of every
    parent of leaves (:func:`alignjax.data.levels.held_out_leaves`)."""
    if config.dataset == "fashion_mnist":
        names = [fashion_mnist.CLASS_NAMES[c] for c in config.fashion_held_out]
        return np.sort([tree.index(name) for name in names])
    return held_out_leaves(tree, per_parent=config.held_out_per_parent)


def _labels(tree: Tree, leaves: np.ndarray) -> dict[str, np.ndarray]:
    leaves = np.asarray(leaves, dtype=np.int64)
    return {
        "leaf": leaves,
        "basic": tree.ancestors[leaves, basic_depth(tree)].astype(np.int64),
        "superordinate": tree.ancestors[leaves, 1].astype(np.int64),
    }


def _hierarchy_images(
    config: SimulatedConfig, rng: np.random.Generator
) -> dict[str, dict[str, np.ndarray]]:
    world = config.world
    tree = world.tree
    held = held_out_categories(config, tree)
    seen = np.setdiff1d(tree.leaves, held)
    leaves = {
        "pool": rng.choice(seen, config.pool_size),
        "humans": rng.choice(seen, config.human_items),
        "evaluation": np.repeat(seen, config.levels_items_per_leaf),
        "held_out": np.repeat(held, config.held_out_items_per_leaf),
    }
    splits = {}
    for split, split_leaves in leaves.items():
        images = world.render_items(rng, split_leaves)
        splits[split] = {
            "image": np.round(images * 255).astype(np.uint8),
            **_labels(tree, split_leaves),
        }
    return splits


def _fashion_mnist_images(
    config: SimulatedConfig, rng: np.random.Generator
) -> dict[str, dict[str, np.ndarray]]:
    tree = fashion_mnist_world().tree
    leaf_of_class = np.array([tree.index(name) for name in fashion_mnist.CLASS_NAMES])
    held = np.asarray(config.fashion_held_out, dtype=np.int64)
    train, test = (
        fashion_mnist.load_fashion_mnist("train"),
        fashion_mnist.load_fashion_mnist("test"),
    )
    seen_train = rng.permutation(np.flatnonzero(~np.isin(train["label"], held)))
    needed = config.pool_size + config.human_items
    if needed > seen_train.size:
        raise ValueError(
            f"pool_size + human_items = {needed} exceeds the {seen_train.size} training "
            "images of the seen classes"
        )

    def per_class(classes, count):
        chosen = []
        for c in classes:
            members = np.flatnonzero(test["label"] == c)
            if count > members.size:
                raise ValueError(
                    f"{count} test images per class requested; class {c} has {members.size}"
                )
            chosen.append(rng.choice(members, count, replace=False))
        return np.concatenate(chosen)

    seen_classes = np.setdiff1d(np.arange(len(fashion_mnist.CLASS_NAMES)), held)
    picks = {
        "pool": (train, seen_train[: config.pool_size]),
        "humans": (train, seen_train[config.pool_size : needed]),
        "evaluation": (test, per_class(seen_classes, config.levels_items_per_leaf)),
        "held_out": (test, per_class(held, config.held_out_items_per_leaf)),
    }
    return {
        split: {
            "image": source["image"][index],
            **_labels(tree, leaf_of_class[source["label"][index]]),
        }
        for split, (source, index) in picks.items()
    }


def human_triplets(
    config: SimulatedConfig,
    world: HierarchyWorld,
    human_leaves: np.ndarray,
    evaluation_leaves: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, TripletSet]:
    """The observers' triplet sets (:data:`TRIPLET_SPLITS`, see the module docstring)."""
    tree = world.tree
    similarity = leaf_similarity(world)
    humans = observer(similarity, human_leaves, config.observer_temperature)
    simulated = observers.simulate_triplet_dataset(
        humans,
        n_train=config.human_train,
        n_validation=config.human_validation,
        n_test=config.human_test,
        split="objects",
        seed=int(rng.integers(2**31)),
    )
    splits = {}
    for name in ("train", "validation", "test"):
        chosen = getattr(simulated, name)
        splits[name] = dataclasses.replace(
            chosen,
            levels=triplet_levels(tree, human_leaves[chosen.indices]),
            level_names=LEVELS_AND_OTHER,
        )
    judge = observer(similarity, evaluation_leaves, config.observer_temperature)
    splits["levels"] = level_triplet_set(
        tree, evaluation_leaves, config.levels_per_level, rng, observer=judge
    )
    return splits


def build_simulated(config: SimulatedConfig, data_dir: str | os.PathLike[str]) -> pathlib.Path:
    """Writes the setting's image set and human triplet set into ``data_dir`` (once).

    Skipped when both data sets are already there. Returns ``data_dir``.
    """
    data_dir = pathlib.Path(data_dir)
    images_path = data_dir / IMAGES_NAME / tfds_builders.VERSION / "dataset_info.json"
    triplets_path = data_dir / HUMAN_TRIPLETS_NAME / tfds_builders.VERSION / "dataset_info.json"
    if images_path.exists() and triplets_path.exists():
        return data_dir
    world = setting_world(config)
    rng = np.random.default_rng(config.seed)
    if config.dataset == "fashion_mnist":
        splits = _fashion_mnist_images(config, rng)
    else:
        splits = _hierarchy_images(config, rng)
    triplets = human_triplets(
        config, world, splits["humans"]["leaf"], splits["evaluation"]["leaf"], rng
    )
    description = f"Simulated setting ({config.dataset}): pool, humans, evaluation, held_out"
    tfds_builders.write_image_set(
        splits, name=IMAGES_NAME, data_dir=data_dir, description=description, overwrite=True
    )
    tfds_builders.write_triplet_set(
        triplets,
        name=HUMAN_TRIPLETS_NAME,
        data_dir=data_dir,
        overwrite=True,
        description="Simulated odd-one-out choices (odd one out last): train/validation/test over "
        "the 'humans' images, levels over the 'evaluation' images",
    )
    return data_dir


def describe(config: SimulatedConfig) -> str:
    """One line naming the setting, for reports."""
    if config.dataset == "fashion_mnist":
        return (
            f"Fashion-MNIST ({config.pool_size} pool images, the documented superordinate -> "
            "class hierarchy)"
        )
    size = config.world.image_size
    return (
        f"the hierarchy world ({config.world.tree.num_leaves} subordinate categories, "
        f"{size}x{size} images, {config.pool_size} pool images)"
    )


def simulated_source(config: SimulatedConfig, data_dir: str | os.PathLike[str]) -> ImageSource:
    """The simulated setting as an :class:`~alignjax.data.sources.ImageSource`.

    Builds the stored data sets in ``data_dir`` first if they are not there
    (:func:`build_simulated`), then holds the splits' images in memory.
    """
    data_dir = build_simulated(config, data_dir)
    splits, labels = {}, {}
    for split in IMAGE_SPLITS:
        arrays = tfds_builders.read_image_set(IMAGES_NAME, data_dir, split)
        splits[split] = ArrayImages(arrays)
        labels[split] = {name: arrays[name] for name in LABELS}
    stored = {
        split: tfds_builders.read_triplet_set(HUMAN_TRIPLETS_NAME, data_dir, split)
        for split in TRIPLET_SPLITS
    }
    return ImageSource(
        describe(config),
        splits,
        labels,
        tree=setting_world(config).tree,
        triplets={
            "humans": {split: stored[split] for split in ("train", "validation", "test")},
            "evaluation": {"levels": stored["levels"]},
        },
    )
