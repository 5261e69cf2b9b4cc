r"""AligNet's world and its simulated "humans": images, their hierarchy, observer triplets.

The first stage of the AligNet chain (Muttenthaler et al. 2024). A *setting* is a set
of images whose categories are the leaves of a known tree:

- ``"hierarchy"``: :class:`~alignjax.data.hierarchy.HierarchyWorld` images (rendered
  from a seed; 4 superordinate x 4 basic x 4 subordinate categories by default);
- ``"fashion_mnist"``: the Fashion-MNIST images of the Debian package, whose 10 classes
  are the leaves of the documented two-level hierarchy of
  :mod:`alignjax.data.fashion_mnist` (superordinate -> class).

Some categories are held out (by default the last subordinate category under every
basic one; for Fashion-MNIST Dress, Shirt and Sneaker): no image of them is seen by the
teacher, the student or the simulated humans; they serve the downstream few-shot and
anomaly-detection evaluation. The image splits (one TFDS/ArrayRecord image set,
``"image"`` and the labels ``"leaf"``, ``"basic"``, ``"superordinate"``) are

- ``pool``: the large unlabelled image pool AligNet's triplets are sampled from (its
  labels train the teacher and are otherwise used only by the report);
- ``humans``: the objects of the simulated odd-one-out experiment (THINGS-like);
- ``levels``: new images of the seen categories for the Levels evaluation;
- ``held_out``: images of the held-out categories.

**The humans.** A :class:`~alignjax.data.observers.LuceObserver` whose similarity of two
items is the exact generative similarity of their categories,
``S_ij = log s_gen(leaf_i, leaf_j)`` (:meth:`HierarchyWorld.log_generative_similarity`,
the root-to-LCA sum of the module docstring there), and whose choices follow the Luce
rule at temperature ``observer_temperature``. Items of one category are interchangeable
to it, as the images of a class are in the paper; no item-level term is added because
none is known for these images, so a triplet whose three pairs share their lowest
common ancestor carries no signal (its choice is uniform). Triplet splits (odd one out
last, with the observer's probabilities and a level per triplet):

- ``train`` / ``validation`` / ``test``: random triplets over disjoint ``humans`` objects
  (:func:`~alignjax.data.observers.simulate_triplet_dataset`, ``split="objects"``), as
  THINGS; each is labelled by its LCA structure (:func:`triplet_levels`);
- ``levels``: triplets over the ``levels`` images drawn at a chosen split depth
  (:func:`alignjax.data.levels.level_triplet_set`), ``levels_per_level`` of each level, as the Levels
  data set: ``coarse`` (two items of one superordinate, the odd one from another),
  ``boundary`` (two of one basic category, the odd one from a sibling category) and,
  where the tree has subordinate categories, ``fine`` (two of one subordinate category,
  the odd one from a sibling within the basic category).

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

from alignjax.data import fashion_mnist, observers, tfds_builders
from alignjax.data.hierarchy import HierarchyWorld, Tree
from alignjax.data.levels import (
    LEVELS_AND_OTHER,
    basic_depth,
    held_out_leaves,
    level_triplet_set,
    triplet_levels,
)
from alignjax.data.triplet_set import TripletSet

IMAGE_SPLITS: tuple[str, ...] = ("pool", "humans", "levels", "held_out")
TRIPLET_SPLITS: tuple[str, ...] = ("train", "validation", "test", "levels")
LABELS: tuple[str, ...] = ("leaf", "basic", "superordinate")
IMAGES_NAME = "alignet_images"
HUMAN_TRIPLETS_NAME = "alignet_human_triplets"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The images and the simulated humans of an AligNet run.

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
      levels_items_per_leaf: ``levels`` images per seen category.
      levels_per_level: Levels triplets per level.
      held_out_items_per_leaf: ``held_out`` images per held-out category.
      seed: seed of every draw of this stage.
    """

    dataset: Literal["hierarchy", "fashion_mnist"] = "hierarchy"
    world: HierarchyWorld = HierarchyWorld()
    held_out_per_parent: int = 1
    fashion_held_out: tuple[int, ...] = (3, 6, 7)
    pool_size: int = 8192
    human_items: int = 600
    human_train: int = 20000
    human_validation: int = 2000
    human_test: int = 5000
    observer_temperature: float = 0.5
    levels_items_per_leaf: int = 16
    levels_per_level: int = 1000
    held_out_items_per_leaf: int = 40
    seed: int = 0


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


def setting_world(config: DataConfig) -> HierarchyWorld:
    """The world whose tree and ``s_gen`` the observers use."""
    if config.dataset == "fashion_mnist":
        return fashion_mnist_world()
    if config.dataset != "hierarchy":
        raise ValueError(
            f"DataConfig.dataset must be 'hierarchy' or 'fashion_mnist', got {config.dataset!r}"
        )
    return config.world


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


def held_out_categories(config: DataConfig, tree: Tree) -> np.ndarray:
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
    config: DataConfig, rng: np.random.Generator
) -> dict[str, dict[str, np.ndarray]]:
    world = config.world
    tree = world.tree
    held = held_out_categories(config, tree)
    seen = np.setdiff1d(tree.leaves, held)
    leaves = {
        "pool": rng.choice(seen, config.pool_size),
        "humans": rng.choice(seen, config.human_items),
        "levels": np.repeat(seen, config.levels_items_per_leaf),
        "held_out": np.repeat(held, config.held_out_items_per_leaf),
    }
    splits = {}
    for split, split_leaves in leaves.items():
        if not len(split_leaves):
            raise ValueError(f"DataConfig gives no images for the {split!r} split")
        images = world.render_items(rng, split_leaves)
        splits[split] = {
            "image": np.round(images * 255).astype(np.uint8),
            **_labels(tree, split_leaves),
        }
    return splits


def _fashion_mnist_images(
    config: DataConfig, rng: np.random.Generator
) -> dict[str, dict[str, np.ndarray]]:
    tree = fashion_mnist_world().tree
    leaf_of_class = np.array([tree.index(name) for name in fashion_mnist.CLASS_NAMES])
    held = np.asarray(config.fashion_held_out, dtype=np.int64)
    if held.size and (held.min() < 0 or held.max() >= len(fashion_mnist.CLASS_NAMES)):
        raise ValueError(
            f"fashion_held_out must be class indices in [0, 10), got {config.fashion_held_out}"
        )
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
        "levels": (test, per_class(seen_classes, config.levels_items_per_leaf)),
        "held_out": (test, per_class(held, config.held_out_items_per_leaf)),
    }
    return {
        split: {
            "image": source["image"][index],
            **_labels(tree, leaf_of_class[source["label"][index]]),
        }
        for split, (source, index) in picks.items()
    }


def build_data(config: DataConfig, data_dir: str | os.PathLike[str]) -> pathlib.Path:
    """Stage 1: writes the image set and the human triplet set into ``data_dir``.

    Skipped when both data sets are already there (the stage's artefacts). Returns
    ``data_dir``; read the splits back with :func:`load_images` and
    :func:`load_triplets`.
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
        config, world, splits["humans"]["leaf"], splits["levels"]["leaf"], rng
    )
    description = f"AligNet images ({config.dataset}): pool, humans, levels, held_out"
    tfds_builders.write_image_set(
        splits, name=IMAGES_NAME, data_dir=data_dir, description=description, overwrite=True
    )
    tfds_builders.write_triplet_set(
        triplets,
        name=HUMAN_TRIPLETS_NAME,
        data_dir=data_dir,
        overwrite=True,
        description="Simulated odd-one-out choices (odd one out last): train/validation/test over "
        "the 'humans' images, levels over the 'levels' images",
    )
    return data_dir


def human_triplets(
    config: DataConfig,
    world: HierarchyWorld,
    human_leaves: np.ndarray,
    levels_leaves: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, TripletSet]:
    """The observers' triplet splits (see module doc) with levels and probabilities."""
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
    judge = observer(similarity, levels_leaves, config.observer_temperature)
    splits["levels"] = level_triplet_set(
        tree, levels_leaves, config.levels_per_level, rng, observer=judge
    )
    return splits


def load_images(data_dir: str | os.PathLike[str], split: str) -> dict[str, np.ndarray]:
    """An image split: ``"image"`` uint8 ``[n, H, W, C]`` and int64 ``"leaf"``, ``"basic"``,
    ``"superordinate"`` ``[n]``."""
    if split not in IMAGE_SPLITS:
        raise ValueError(f"split must be one of {IMAGE_SPLITS}, got {split!r}")
    return tfds_builders.read_image_set(IMAGES_NAME, data_dir, split)


def load_triplets(data_dir: str | os.PathLike[str], split: str) -> TripletSet:
    """A human triplet split (``"levels"`` indexes the ``levels`` images, the others
    the ``humans`` images)."""
    if split not in TRIPLET_SPLITS:
        raise ValueError(f"split must be one of {TRIPLET_SPLITS}, got {split!r}")
    return tfds_builders.read_triplet_set(HUMAN_TRIPLETS_NAME, data_dir, split)


def image_source(data_dir: str | os.PathLike[str], split: str):
    """The random-access ArrayRecord source of an image split (for Grain streams)."""
    return tfds_builders.data_source(IMAGES_NAME, data_dir, split)
