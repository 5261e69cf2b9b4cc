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
  (:func:`sample_level_triplets`), ``levels_per_level`` of each level, as the Levels
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
from alignjax.data.triplet_set import TripletSet, concatenate

LEVEL_NAMES: tuple[str, ...] = ("coarse", "boundary", "fine", "other")
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


def level_depths(tree: Tree) -> dict[str, int]:
    """Split depth of each named level: coarse 0, boundary at the parent of the basic
    categories (:func:`basic_depth`), fine at the basic categories (the parents of
    subordinate leaves).

    A tree of height 2 (superordinate -> category) has coarse and boundary triplets
    only; a tree of height 1 has coarse ones only.

    >>> level_depths(Tree.balanced((2, 2, 2)))
    {'coarse': 0, 'boundary': 1, 'fine': 2}
    >>> level_depths(Tree.balanced((2, 3)))
    {'coarse': 0, 'boundary': 1}
    """
    height = tree.height
    depths = {"coarse": 0}
    if height >= 2:
        depths["boundary"] = basic_depth(tree) - 1
    if height >= 3:
        depths["fine"] = height - 1
    return depths


def basic_depth(tree: Tree) -> int:
    """Depth of the basic categories: the parents of the leaves when the leaves are
    subordinate categories (height >= 3), else the leaves themselves."""
    return tree.height - 1 if tree.height >= 3 else tree.height


def triplet_levels(tree: Tree, leaves: np.ndarray) -> np.ndarray:
    """The level code (into :data:`LEVEL_NAMES`) of triplets of items of ``leaves``.

    In a tree two of the three lowest common ancestors of a triplet coincide; if the
    third is strictly deeper, its pair is the hierarchy's most similar pair and the
    shallower one is the *split* node where the odd item branches off. The split's
    depth names the level (:func:`level_depths`); triplets without a deeper pair, or
    split at a depth that names no level, are ``"other"``.

    Args:
      tree: the category tree.
      leaves: ``int [n, 3]`` leaf nodes of the triplets' items.

    Returns:
      ``int64 [n]`` codes into :data:`LEVEL_NAMES`.

    >>> tree = Tree.balanced((2, 2, 2))
    >>> leaf = {name: i for i, name in enumerate(tree.names)}
    >>> triplet_levels(tree, np.array([[leaf["0.0.0"], leaf["0.1.1"], leaf["1.0.0"]],
    ...                                [leaf["0.0.0"], leaf["0.0.0"], leaf["0.0.1"]]])).tolist()
    [0, 2]
    """
    leaves = np.asarray(leaves)
    if leaves.ndim != 2 or leaves.shape[1] != 3:
        raise ValueError(f"leaves must have shape [n, 3], got {leaves.shape}")
    depths = tree.depths
    d = np.stack(
        [depths[tree.lca(leaves[:, a], leaves[:, b])] for a, b in ((0, 1), (0, 2), (1, 2))], axis=1
    )
    deepest = d.max(axis=1)
    structured = (d == deepest[:, None]).sum(axis=1) == 1
    split = d.min(axis=1)
    codes = np.full(len(leaves), LEVEL_NAMES.index("other"), dtype=np.int64)
    for name, depth in level_depths(tree).items():
        codes[structured & (split == depth)] = LEVEL_NAMES.index(name)
    return codes


def sample_level_triplets(
    tree: Tree, leaves: np.ndarray, depth: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` triplets of items split at ``depth`` of the tree, odd one out last.

    The Levels sampler of :meth:`HierarchyWorld.level_triplets` over a fixed set of
    items: a node ``u`` at ``depth`` (uniformly among those that can host a triplet),
    two of its children ``c1 != c2``; two distinct items under ``c1``, one under ``c2``.

    Args:
      tree: the category tree.
      leaves: ``int [n_items]`` leaf node of every item.
      depth: split depth in ``[0, height)``.
      n: number of triplets.
      rng: numpy random generator.

    Returns:
      ``int64 [n, 3]`` item indices (the hierarchy's odd one out last).
    """
    leaves = np.asarray(leaves)
    if not 0 <= depth < tree.height:
        raise ValueError(f"depth must lie in [0, {tree.height}), got {depth}")
    child_of = tree.ancestors[leaves, depth + 1]
    members = {int(c): np.flatnonzero(child_of == c) for c in np.unique(child_of[child_of >= 0])}
    hosts = []
    for u in np.flatnonzero(tree.depths == depth):
        children = [c for c in tree.children[u] if c in members]
        if len(children) >= 2 and any(len(members[c]) >= 2 for c in children):
            hosts.append(children)
    if not hosts:
        raise ValueError(
            f"no node at depth {depth} has items under two children (one with two items)"
        )
    # Padded tables, so that every draw below is one vectorised step: the children of
    # each host (those with two items first) and the items under each child.
    width = max(len(children) for children in hosts)
    child_table = np.zeros((len(hosts), width), dtype=np.int64)
    n_children = np.array([len(children) for children in hosts])
    n_pairs = np.array([sum(len(members[c]) >= 2 for c in children) for children in hosts])
    for h, children in enumerate(hosts):
        child_table[h, : len(children)] = sorted(children, key=lambda c: len(members[c]) < 2)
    column = {c: i for i, c in enumerate(members)}
    item_table = np.zeros((len(members), max(len(m) for m in members.values())), dtype=np.int64)
    n_items = np.array([len(m) for m in members.values()])
    for c, items in members.items():
        item_table[column[c], : len(items)] = items

    def below(count):
        return np.floor(rng.random(n) * count).astype(np.int64)

    host = rng.integers(0, len(hosts), n)
    first = below(n_pairs[host])
    second = below(n_children[host] - 1)
    second += second >= first
    c1 = np.array([column[c] for c in child_table[host, first]], dtype=np.int64)
    c2 = np.array([column[c] for c in child_table[host, second]], dtype=np.int64)
    a = below(n_items[c1])
    b = below(n_items[c1] - 1)
    b += b >= a
    odd = below(n_items[c2])
    return np.stack([item_table[c1, a], item_table[c1, b], item_table[c2, odd]], axis=1)


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


def held_out_leaves(config: DataConfig, tree: Tree) -> np.ndarray:
    """Leaf nodes of the held-out categories, sorted."""
    if config.dataset == "fashion_mnist":
        names = [fashion_mnist.CLASS_NAMES[c] for c in config.fashion_held_out]
        return np.sort([tree.index(name) for name in names])
    if config.held_out_per_parent < 0:
        raise ValueError(f"held_out_per_parent must be >= 0, got {config.held_out_per_parent}")
    held = []
    for parent in np.unique(np.asarray(tree.parents)[tree.leaves]):
        leaves = [c for c in tree.children[parent] if tree.is_leaf[c]]
        if config.held_out_per_parent >= len(leaves):
            raise ValueError(
                f"held_out_per_parent={config.held_out_per_parent} would hold out every leaf of "
                f"{tree.names[parent]!r} ({len(leaves)} leaves)"
            )
        held.extend(leaves[len(leaves) - config.held_out_per_parent :])
    return np.sort(np.asarray(held, dtype=np.int64))


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
    held = held_out_leaves(config, tree)
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
            f"pool_size + human_items = {needed} exceeds the {seen_train.size} training images of the seen classes"
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
            level_names=LEVEL_NAMES,
        )
    judge = observer(similarity, levels_leaves, config.observer_temperature)
    per_level = []
    for level, depth in level_depths(tree).items():
        indices = sample_level_triplets(tree, levels_leaves, depth, config.levels_per_level, rng)
        chosen = judge.choose(indices, rng)
        codes = np.full(len(chosen), LEVEL_NAMES.index(level), dtype=np.int64)
        per_level.append(dataclasses.replace(chosen, levels=codes, level_names=LEVEL_NAMES))
    splits["levels"] = concatenate(per_level)
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
