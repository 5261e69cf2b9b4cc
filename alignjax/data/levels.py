r"""Abstraction levels of a category tree: Levels triplets, level codes, held-out categories.

Muttenthaler et al. (2024) measure alignment at three levels of abstraction with the
*Levels* data set. In a category tree, two of the three lowest common ancestors (LCAs)
of a triplet coincide; if the third is strictly deeper, its pair is the most similar
pair and the shallower LCA is the *split* node where the odd item branches off. The
split's depth names the level:

- ``coarse``: split at the root (two items of one superordinate, the odd one from
  another);
- ``boundary``: split at the parent of the basic categories (two items of one basic
  category, the odd one from a sibling category);
- ``fine``: split at a basic category (two items of one subordinate category, the odd
  one from a sibling within the basic category); only where the leaves are
  subordinate categories (height >= 3).

Every chain draws its Levels triplets, labels its triplets and holds out categories here,
over a fixed set of items each of which has a leaf of the tree:

- :func:`level_depths`, :func:`basic_depth`: the split depth of each level;
- :func:`triplet_levels`: the level of given triplets (or :data:`OTHER`);
- :func:`sample_level_triplets`: triplets split at a given depth, odd one out last;
- :func:`level_triplet_set`: a Levels triplet set (every level), chosen by an observer
  (simulated people) or by the tree itself;
- :func:`held_out_leaves`: categories no model may see (for the downstream tasks);
- :func:`split_per_category`: a category-balanced split of items (few-shot pools).

>>> from alignjax.data.hierarchy import Tree
>>> tree = Tree.balanced((2, 2, 2))
>>> level_depths(tree)
{'coarse': 0, 'boundary': 1, 'fine': 2}
>>> leaves = np.repeat(tree.leaves, 2)  # two items of every leaf category
>>> triplets = sample_level_triplets(tree, leaves, 0, 4, np.random.default_rng(0))
>>> bool(np.all(triplet_levels(tree, leaves[triplets]) == LEVELS.index("coarse")))
True

References:
  Muttenthaler, L. et al. (2024). Aligning machine and human visual representations
  across abstraction levels. arXiv:2409.06509 (the Levels data set).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from alignjax.data.hierarchy import Tree
from alignjax.data.triplet_set import TripletSet, concatenate

#: The abstraction levels, in the order their codes count (``LEVELS.index(name)``).
LEVELS: tuple[str, ...] = ("coarse", "boundary", "fine")
#: The name of triplets that name no level (no strictly deeper pair, or an unnamed split).
OTHER = "other"
#: ``LEVELS`` and :data:`OTHER`: the level names of triplets labelled by :func:`triplet_levels`.
LEVELS_AND_OTHER: tuple[str, ...] = (*LEVELS, OTHER)


def basic_depth(tree: Tree) -> int:
    """Depth of the basic categories: the parents of the leaves when the leaves are
    subordinate categories (height >= 3), else the leaves themselves.

    >>> basic_depth(Tree.balanced((2, 2, 2))), basic_depth(Tree.balanced((2, 2)))
    (2, 2)
    """
    return tree.height - 1 if tree.height >= 3 else tree.height


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


def triplet_levels(tree: Tree, leaves: np.ndarray) -> np.ndarray:
    """The level code (into :data:`LEVELS_AND_OTHER`) of triplets of items of ``leaves``.

    The split's depth names the level (:func:`level_depths`); triplets without a
    strictly deeper pair, or split at a depth that names no level, are :data:`OTHER`.

    Args:
      tree: the category tree.
      leaves: ``int [n, 3]`` leaf nodes of the triplets' items.

    Returns:
      ``int64 [n]`` codes into :data:`LEVELS_AND_OTHER`.

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
    codes = np.full(len(leaves), LEVELS_AND_OTHER.index(OTHER), dtype=np.int64)
    for name, depth in level_depths(tree).items():
        codes[structured & (split == depth)] = LEVELS.index(name)
    return codes


def sample_level_triplets(
    tree: Tree, leaves: np.ndarray, depth: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` triplets of items split at ``depth`` of the tree, odd one out last.

    A node ``u`` at ``depth`` (uniformly among those that can host a triplet), two of
    its children ``c1 != c2`` (``c1`` among those with two items); two distinct items
    under ``c1``, one under ``c2``.

    Args:
      tree: the category tree.
      leaves: ``int [n_items]`` leaf node of every item.
      depth: split depth in ``[0, height)`` (see :func:`level_depths`).
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


class Chooser(Protocol):
    """Whoever picks the odd one out (e.g. :class:`~alignjax.data.observers.LuceObserver`)."""

    def choose(self, indices: np.ndarray, rng: np.random.Generator) -> TripletSet: ...


def level_triplet_set(
    tree: Tree,
    leaves: np.ndarray,
    n_per_level: int,
    rng: np.random.Generator,
    *,
    observer: Chooser | None = None,
    depths: Mapping[str, int] | None = None,
) -> TripletSet:
    """Levels triplets over items of ``leaves``: ``n_per_level`` of every level of the tree.

    Each level's triplets are drawn by :func:`sample_level_triplets` at its split depth;
    with an ``observer`` (simulated people) its choices decide the odd one out (and give
    the choice probabilities, hence a noise ceiling); without, the tree's own answer
    stands (the item that branches off, last).

    Args:
      tree: the category tree.
      leaves: ``int [n_items]`` leaf node of every item.
      n_per_level: triplets per level.
      rng: numpy random generator.
      observer: the chooser, or ``None`` for the tree's answer.
      depths: split depth of each level to draw; default :func:`level_depths`.

    Returns:
      a :class:`~alignjax.data.triplet_set.TripletSet` over the items, levels in
      :data:`LEVELS_AND_OTHER` codes, in the order of ``depths``.

    >>> tree = Tree.balanced((2, 2, 2))
    >>> triplets = level_triplet_set(tree, np.repeat(tree.leaves, 2), 3, np.random.default_rng(0))
    >>> triplets.levels.tolist()
    [0, 0, 0, 1, 1, 1, 2, 2, 2]
    """
    depths = level_depths(tree) if depths is None else depths
    per_level = []
    for level, depth in depths.items():
        indices = sample_level_triplets(tree, leaves, depth, n_per_level, rng)
        chosen = TripletSet(indices) if observer is None else observer.choose(indices, rng)
        codes = np.full(len(chosen), LEVELS.index(level), dtype=np.int64)
        per_level.append(
            TripletSet(
                chosen.indices,
                similarities=chosen.similarities,
                probabilities=chosen.probabilities,
                levels=codes,
                level_names=LEVELS_AND_OTHER,
                n_items=chosen.n_items,
            )
        )
    return concatenate(per_level)


def held_out_leaves(tree: Tree, *, depth: int | None = None, per_parent: int = 1) -> np.ndarray:
    """Leaf categories held out of training, for the downstream tasks: sorted nodes.

    With ``depth=None``: the last ``per_parent`` leaf children of every parent of
    leaves. With a ``depth``: all leaves under the last ``per_parent`` children of every
    node at ``depth - 1`` (``depth=1`` holds out the last superordinate subtree). A
    node with no more than ``per_parent`` such children keeps them all.

    >>> held_out_leaves(Tree.balanced((2, 2))).tolist()  # the last leaf of each parent
    [3, 6]
    >>> held_out_leaves(Tree.balanced((2, 2)), depth=1).tolist()  # the last subtree
    [5, 6]

    Raises:
      ValueError: ``depth`` outside ``[1, height]``, ``per_parent < 1``, or nothing
        to hold out.
    """
    if per_parent < 1:
        raise ValueError(f"per_parent must be >= 1, got {per_parent}")
    if depth is None:
        parents = np.unique(np.asarray(tree.parents)[tree.leaves])
        candidates = [[c for c in tree.children[p] if tree.is_leaf[c]] for p in parents]
    else:
        if not 1 <= depth <= tree.height:
            raise ValueError(
                f"held_out_depth must lie in [1, {tree.height}] for this tree; got {depth}."
            )
        candidates = [list(tree.children[u]) for u in np.flatnonzero(tree.depths == depth - 1)]
    held = [
        c for children in candidates if len(children) > per_parent for c in children[-per_parent:]
    ]
    if not held:
        where = "parent of leaves" if depth is None else f"node at depth {depth - 1}"
        raise ValueError(
            f"no {where} has more than {per_parent} children: holding out {per_parent} "
            "per parent would hold out every category"
        )
    leaves = tree.leaves
    inside = tree.is_ancestor(np.asarray(held)[:, None], leaves[None, :]).any(axis=0)
    return np.sort(leaves[inside]).astype(np.int64)


def split_per_category(labels: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """A mask choosing half (rounded down) of every category's items: ``bool [n]``.

    With ``rng`` the half is a random one; without, the first half in item order. The
    chosen items are a category-balanced pool (the few shots, the anomaly detector's
    normal data), the others its test items.

    >>> split_per_category(np.array([0, 0, 1, 1, 1])).tolist()
    [True, False, True, False, False]
    """
    labels = np.asarray(labels)
    first = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if rng is not None:
            members = rng.permutation(members)
        first[members[: len(members) // 2]] = True
    return first
