r"""Hierarchical image categories: a tree of categories whose items are rendered images.

**The tree.** :class:`Tree` is any rooted tree (nested lists, a balanced tree, or the
WordNet noun hierarchy from :mod:`alignjax.data.wordnet`); its leaves are the
categories of items. By default 4 superordinate x 4 basic x 4 subordinate categories.

**The images.** Every node carries an attribute vector inherited down the tree with
noise, ``a_child = a_parent + sigma_d eps`` (``sigma_d = attribute_scale *
scale_decay^(d - 1)`` at depth ``d``), and an item of a leaf adds item noise
(``item_scale``) and a random pose. The attributes are rendered as an RGB image:
*colour* (hue, saturation of the objects; hue of the background), *shape* (number of
points 3-6 and depth of a star polygon, from a regular polygon to a spiky star),
*texture* (orientation, frequency and contrast of stripes) and *layout* (1-3 objects
in a row, the row's orientation, the objects' size). Siblings look alike, cousins
less, categories under different superordinates differ in everything.

**Generative similarity from the lowest common ancestor.** The latent ``theta`` is a
node ``nu`` of the tree, drawn with probability ``pi_nu = w_{d(nu)} U(nu) / Z``: a
depth ``d`` with weight ``w_d`` (``level_weights``; uniform over ``0..height`` by
default, so that ``theta`` may be the root), then a node by uniform descent from the
root (``U(nu)`` = product of ``1 / #children`` along the path; ``Z`` normalises). An
item of ``theta`` is a leaf drawn by uniform descent from ``nu``,
``q(l | nu) = U(l) / U(nu)`` for ``l`` under ``nu``, then its image. So each level is
a mixture and, with ``A(l) = sum_{nu >= l} w_{d(nu)}`` over the ancestors of ``l``
(including itself and the root),

.. math::

    s_{gen}(l_1, l_2) = \frac{\sum_\nu \pi_\nu\, q(l_1|\nu)\, q(l_2|\nu)}{q(l_1)\, q(l_2)}
    = \frac{Z}{A(l_1) A(l_2)} \sum_{\nu \ge \mathrm{lca}(l_1, l_2)}
      \frac{w_{d(\nu)}}{U(\nu)},

a sum over the common ancestors, i.e. the root-to-LCA path. For a balanced tree
(``A = Z = 1`` when the weights are normalised), ``1 / U(nu) = N_d``, the number of
nodes at depth ``d``, and

.. math::

    s_{gen}(l_1, l_2) = \sum_{d=0}^{\mathrm{depth}(\mathrm{lca}(l_1, l_2))} w_d N_d,

e.g. ``(1 + 4 + 16 + 64) / 4 = 21.25`` for two items of one leaf of the default tree,
``1/4`` across superordinates. The similarity is defined on the items' categories
(their leaves): the item noise is a nuisance, as in the paper, where the images of a
class are interchangeable. It is computed as a finite mixture over the nodes with
:func:`alignjax.data.generative_similarity.mixture_log_generative_similarity`.

**Levels triplets** (odd one out last, as in the Levels data set of Muttenthaler et
al.) split at a depth of the tree: the odd item's lowest common ancestor with the pair
lies at that depth, the pair's strictly deeper. :meth:`HierarchyWorld.split_depth`
gives the world's depth of each level (``coarse`` 0, ``boundary`` ``height - 2``,
``fine`` ``height - 1``, or ``level_depths``); :func:`alignjax.data.levels.sample_level_triplets`
draws them over a fixed set of items.

References:
  Marjieh, R. et al. (2024). Learning human-aligned representations with contrastive
  learning and generative similarity. arXiv:2405.19420, section 3.3.
  Muttenthaler, L. et al. (2024). Aligning machine and human visual representations
  across abstraction levels. arXiv:2409.06509.

Example:

>>> tree = Tree.from_nested(("animal", [("dog", ["poodle", "beagle"]), ("cat", ["siamese"])]))
>>> tree.names[tree.lca(tree.index("poodle"), tree.index("beagle"))]
'dog'
>>> world = HierarchyWorld(tree=Tree.balanced((2, 2)), image_size=16)
>>> world.sample_triplets(np.random.default_rng(0), 5)["inputs"].shape
(5, 3, 16, 16, 3)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from alignjax.config import checked, configclass
from alignjax.data import generative_similarity, rendering
from alignjax.data.world import batch_generator

Nested = str | tuple[str, Sequence["Nested"]]
Level = Literal["coarse", "boundary", "fine"]

_MAX_POINTS = 6
_MAX_OBJECTS = 3
NUM_ATTRIBUTES = 11


@dataclasses.dataclass(frozen=True)
class Tree:
    """A rooted tree: node ``0`` is the root, ``parents[i] < i`` for every other node.

    Attributes:
      names: node names (unique).
      parents: parent index of each node, ``-1`` for the root.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]

    def __post_init__(self):
        if len(self.names) != len(self.parents) or not self.names:
            raise ValueError(
                "names and parents must be non-empty and of equal length, "
                f"got {len(self.names)} and {len(self.parents)}"
            )
        if self.parents[0] != -1:
            raise ValueError(f"parents[0] must be -1 (node 0 is the root), got {self.parents[0]}")
        for i, parent in enumerate(self.parents[1:], start=1):
            if not 0 <= parent < i:
                raise ValueError(
                    f"parents[{i}] must lie in [0, {i}) (parents come first), got {parent}"
                )
        if len(set(self.names)) != len(self.names):
            duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"node names must be unique, got duplicates {duplicates[:5]}")

    @classmethod
    def from_nested(cls, nested: Nested) -> Tree:
        """Builds a tree from ``name`` (a leaf) or ``(name, [child, ...])`` nodes.

        >>> Tree.from_nested(("root", ["a", ("b", ["c"])])).parents
        (-1, 0, 0, 2)
        """
        names: list[str] = []
        parents: list[int] = []

        def visit(node, parent):
            if isinstance(node, str):
                name, children = node, ()
            elif isinstance(node, (tuple, list)) and len(node) == 2 and isinstance(node[0], str):
                name, children = node
                if isinstance(children, str) or not isinstance(children, Sequence):
                    raise ValueError(
                        f"the children of {name!r} must be a list of nodes, got {children!r}"
                    )
            else:
                raise ValueError(f"a node must be a name or (name, [children]), got {node!r}")
            index = len(names)
            names.append(name)
            parents.append(parent)
            for child in children:
                visit(child, index)

        visit(nested, -1)
        return cls(tuple(names), tuple(parents))

    @classmethod
    def balanced(cls, branching: Sequence[int] = (4, 4, 4)) -> Tree:
        """A balanced tree; ``branching[d]`` children per node at depth ``d``.

        Nodes are named by their path: ``"root"``, ``"0"``, ``"0.1"``, ...

        >>> Tree.balanced((2, 3)).num_leaves
        6
        """
        branching = tuple(int(b) for b in branching)
        if not branching or min(branching) < 1:
            raise ValueError(
                f"branching must be a non-empty sequence of positive integers, got {branching}"
            )

        def build(path, depth):
            name = ".".join(map(str, path)) or "root"
            if depth == len(branching):
                return name
            return name, [build(path + (i,), depth + 1) for i in range(branching[depth])]

        return cls.from_nested(build((), 0))

    @property
    def num_nodes(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of the node called ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"no node named {name!r} in the tree") from None

    @functools.cached_property
    def children(self) -> tuple[tuple[int, ...], ...]:
        children: list[list[int]] = [[] for _ in self.names]
        for i, parent in enumerate(self.parents[1:], start=1):
            children[parent].append(i)
        return tuple(tuple(c) for c in children)

    @functools.cached_property
    def is_leaf(self) -> np.ndarray:
        """Whether each node is a leaf, ``bool [num_nodes]``."""
        return np.array([not c for c in self.children], dtype=bool)

    @functools.cached_property
    def depths(self) -> np.ndarray:
        """Depth of each node (root 0), ``int [num_nodes]``."""
        depth = np.zeros(self.num_nodes, dtype=int)
        for i, parent in enumerate(self.parents[1:], start=1):
            depth[i] = depth[parent] + 1
        return depth

    @property
    def height(self) -> int:
        """Largest depth."""
        return int(self.depths.max())

    @functools.cached_property
    def _order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Leaves in depth-first order and each node's range ``[lo, hi)`` in it."""
        leaves: list[int] = []
        lo = np.zeros(self.num_nodes, dtype=int)
        hi = np.zeros(self.num_nodes, dtype=int)
        stack: list[tuple[int, bool]] = [(0, False)]
        while stack:
            node, done = stack.pop()
            if done:
                hi[node] = len(leaves)
                continue
            lo[node] = len(leaves)
            stack.append((node, True))
            if not self.children[node]:
                leaves.append(node)
            for child in reversed(self.children[node]):
                stack.append((child, False))
        return np.array(leaves, dtype=int), lo, hi

    @property
    def leaves(self) -> np.ndarray:
        """Leaf node indices in depth-first order, ``int [num_leaves]``."""
        return self._order[0]

    @property
    def num_leaves(self) -> int:
        return int(self.leaves.size)

    @functools.cached_property
    def ancestors(self) -> np.ndarray:
        """``int [num_nodes, height + 1]``: each node's ancestor at each depth (``-1`` below it)."""
        table = np.full((self.num_nodes, self.height + 1), -1, dtype=int)
        for i in range(self.num_nodes):
            if i:
                table[i] = table[self.parents[i]]
            table[i, self.depths[i]] = i
        return table

    @functools.cached_property
    def descent_probability(self) -> np.ndarray:
        """``U(nu)``: probability of reaching each node by uniform descent from the root."""
        u = np.ones(self.num_nodes)
        for i, parent in enumerate(self.parents[1:], start=1):
            u[i] = u[parent] / len(self.children[parent])
        return u

    def lca(self, a, b) -> np.ndarray:
        """Lowest common ancestor of nodes ``a`` and ``b`` (broadcast ``int`` arrays)."""
        a, b = np.broadcast_arrays(self._check_nodes("a", a), self._check_nodes("b", b))
        table_a, table_b = self.ancestors[a], self.ancestors[b]
        shared = (table_a == table_b) & (table_a >= 0)
        deepest = shared.shape[-1] - 1 - np.argmax(shared[..., ::-1], axis=-1)
        return np.take_along_axis(table_a, deepest[..., None], axis=-1)[..., 0]

    def is_ancestor(self, ancestor, node) -> np.ndarray:
        """Whether ``ancestor`` is ``node`` or above it (broadcast ``int`` arrays)."""
        ancestor, node = self._check_nodes("ancestor", ancestor), self._check_nodes("node", node)
        depth = self.depths[ancestor]
        return self.ancestors[node, depth] == ancestor

    def _check_nodes(self, name: str, nodes) -> np.ndarray:
        nodes = np.asarray(nodes)
        integer = np.issubdtype(nodes.dtype, np.integer)
        if not integer or np.any((nodes < 0) | (nodes >= self.num_nodes)):
            raise ValueError(f"{name} must be node indices in [0, {self.num_nodes}), got {nodes}")
        return nodes


def _hsv_to_rgb(h, s, v) -> np.ndarray:
    """Vectorised HSV -> RGB, all in ``[0, 1]``; returns ``[..., 3]``."""
    k = (np.stack([5.0, 3.0, 1.0], axis=-1) + 6.0 * h[..., None]) % 6.0
    weight = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return v[..., None] - v[..., None] * s[..., None] * weight


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@configclass
class HierarchyWorld:
    """Images of categories inheriting attributes down a tree (see module doc).

    Attributes:
      tree: the category tree (leaves are the item categories).
      image_size: images are ``image_size x image_size x 3``.
      level_weights: ``w_d`` for depths ``0..height`` (normalised); ``None`` is uniform.
      attribute_scale: attribute noise at depth 1 (superordinates).
      scale_decay: factor of the attribute noise per level further down.
      item_scale: attribute noise of single items.
      seed: seed of the node attributes.
      level_depths: split depths of the ``coarse``, ``boundary`` and ``fine`` Levels
        triplets; ``None`` is ``(0, height - 2, height - 1)``.
      distinct_negative: draw the triplet negative's node conditioned on differing
        from the anchor's (default: independent, equal with probability
        ``sum_nu pi_nu^2``).
    """

    tree: Tree = Tree.balanced((4, 4, 4))
    image_size: int = checked(32, ge=8)
    level_weights: tuple[float, ...] | None = None
    attribute_scale: float = checked(0.5, ge=0)
    scale_decay: float = checked(0.2, gt=0, le=1)
    item_scale: float = checked(0.01, ge=0)
    seed: int = checked(0, ge=0)
    level_depths: tuple[int, int, int] | None = None
    distinct_negative: bool = False

    def __post_init__(self):
        if not isinstance(self.tree, Tree):
            raise ValueError(f"tree must be a Tree, got {type(self.tree).__name__}")
        if self.tree.height < 1:
            raise ValueError("tree must have at least one level below the root")
        if not isinstance(self.image_size, (int, np.integer)):
            raise ValueError(f"image_size must be an integer >= 8, got {self.image_size!r}")
        if self.level_weights is not None:
            w = np.asarray(self.level_weights, dtype=float)
            if w.shape != (self.tree.height + 1,) or np.any(w < 0) or w.sum() <= 0 or w[0] <= 0:
                raise ValueError(
                    f"level_weights must be {self.tree.height + 1} non-negative weights (depths "
                    f"0..{self.tree.height}) with a positive root weight, "
                    f"got {self.level_weights!r}"
                )
        if self.level_depths is not None:
            depths = tuple(self.level_depths)
            if len(depths) != 3 or any(not 0 <= d < self.tree.height for d in depths):
                raise ValueError(
                    f"level_depths must be 3 depths in [0, {self.tree.height}), "
                    f"got {self.level_depths!r}"
                )

    # The generative model of categories.

    @functools.cached_property
    def prior(self) -> np.ndarray:
        """``pi [num_nodes]``: the node prior ``w_{d(nu)} U(nu) / Z``."""
        tree = self.tree
        if self.level_weights is None:
            w = np.ones(tree.height + 1)
        else:
            w = np.asarray(self.level_weights, float)
        p = w[tree.depths] * tree.descent_probability
        return p / p.sum()

    def leaf_log_likelihoods(self, leaves) -> np.ndarray:
        """``log q(l | nu)`` for leaves ``int [...]`` and every node: ``[..., num_nodes]``."""
        tree = self.tree
        leaves = self._check_leaves("leaves", leaves)
        u = tree.descent_probability
        inside = tree.is_ancestor(np.arange(tree.num_nodes), leaves[..., None])
        return np.where(inside, np.log(u[leaves])[..., None] - np.log(u), -np.inf)

    def log_generative_similarity(self, leaves_x, leaves_y) -> np.ndarray:
        """Exact ``log s_gen`` between items of leaves ``leaves_x`` and ``leaves_y``.

        Args:
          leaves_x: leaf node indices, ``int [...]``.
          leaves_y: leaf node indices, broadcastable with ``leaves_x``.

        Returns:
          ``float32 [...]``.
        """
        with np.errstate(divide="ignore"):  # zero level weights give empty components
            log_prior = np.log(self.prior).astype(np.float32)
        return np.asarray(
            generative_similarity.mixture_log_generative_similarity(
                self.leaf_log_likelihoods(leaves_x).astype(np.float32),
                self.leaf_log_likelihoods(leaves_y).astype(np.float32),
                log_prior,
            )
        )

    def sample_thetas(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` nodes ``theta ~ pi``, ``int [n]``."""
        return rng.choice(self.tree.num_nodes, size=n, p=self.prior)

    def sample_leaves(self, rng: np.random.Generator, nodes) -> np.ndarray:
        """A leaf under each node of ``nodes`` (``int [...]``) by uniform descent."""
        tree = self.tree
        nodes = tree._check_nodes("nodes", nodes)
        leaves, lo, hi = tree._order
        cumulative = np.concatenate([[0.0], np.cumsum(tree.descent_probability[leaves])])
        start, stop = cumulative[lo[nodes]], cumulative[hi[nodes]]
        target = start + rng.random(nodes.shape) * (stop - start)
        position = np.searchsorted(cumulative, target, side="right") - 1
        return leaves[np.clip(position, lo[nodes], hi[nodes] - 1)]

    def _check_leaves(self, name: str, leaves) -> np.ndarray:
        leaves = self.tree._check_nodes(name, leaves)
        if not np.all(self.tree.is_leaf[leaves]):
            raise ValueError(f"{name} must be leaf nodes of the tree, got {leaves}")
        return leaves

    # Attributes and rendering.

    @functools.cached_property
    def node_attributes(self) -> np.ndarray:
        """``float64 [num_nodes, NUM_ATTRIBUTES]``, inherited with noise from ``seed``."""
        tree = self.tree
        rng = np.random.default_rng(self.seed)
        noise = rng.standard_normal((tree.num_nodes, NUM_ATTRIBUTES))
        scale = self.attribute_scale * self.scale_decay ** np.maximum(tree.depths - 1, 0)
        attributes = np.empty_like(noise)
        attributes[0] = noise[0]
        for i in range(1, tree.num_nodes):
            attributes[i] = attributes[tree.parents[i]] + scale[i] * noise[i]
        attributes.setflags(write=False)
        return attributes

    def render_items(self, rng: np.random.Generator, leaves) -> np.ndarray:
        """Renders one random item of each leaf in ``leaves`` (``int [n]``).

        Returns:
          ``float32 [n, H, W, 3]`` in ``[0, 1]``.
        """
        leaves = self._check_leaves("leaves", np.asarray(leaves))
        if leaves.ndim != 1:
            raise ValueError(f"leaves must be a 1-D array, got shape {leaves.shape}")
        n, size = leaves.size, self.image_size
        noise = rng.standard_normal((n, NUM_ATTRIBUTES))
        a = self.node_attributes[leaves] + self.item_scale * noise
        frac = a - np.floor(a)
        colour = _hsv_to_rgb(frac[:, 0], 0.45 + 0.5 * _sigmoid(2 * a[:, 1]), np.full(n, 0.95))
        background = _hsv_to_rgb(frac[:, 2], np.full(n, 0.35), np.full(n, 0.3))
        points = 3 + np.floor(4 * frac[:, 3]).astype(int)
        inner = 0.5 + 0.5 * _sigmoid(2 * a[:, 4])
        count = 1 + np.floor(3 * frac[:, 8]).astype(int)
        row_angle = np.pi * a[:, 9]
        shrink = np.array([1.0, 0.65, 0.48])[count - 1]
        radius = (0.2 + 0.1 * _sigmoid(2 * a[:, 10])) * size * shrink

        # Star polygons with `points` tips; the inner vertices sit at `inner` times the
        # regular polygon's apothem, so inner = 1 is the regular polygon. Polygons with
        # fewer tips repeat their last vertex (degenerate edges draw nothing).
        k = np.arange(2 * _MAX_POINTS)
        used = k[None, :] < 2 * points[:, None]
        step = np.pi / points[:, None]
        spin = rng.uniform(0, 2 * np.pi, (n, _MAX_OBJECTS))
        r = np.where(k % 2 == 0, 1.0, inner[:, None] * np.cos(step))
        angle = np.where(used, k * step, (2 * points[:, None] - 1) * step)
        r = np.where(used, r, r[np.arange(n), 2 * points - 1][:, None])
        slot = np.arange(_MAX_OBJECTS)[None, :] - (count[:, None] - 1) / 2
        offsets = slot * 2.2 * radius[:, None]
        centre = 0.5 * size + rng.uniform(-0.04, 0.04, (n, 1, 2)) * size
        row = np.stack([np.cos(row_angle), np.sin(row_angle)], axis=-1)
        centre = centre + offsets[..., None] * row[:, None, :]
        theta = angle[:, None, :] + spin[..., None]
        spokes = (radius[:, None, None] * r[:, None, :])[..., None]
        directions = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
        vertices = centre[:, :, None, :] + spokes * directions
        coverage = rendering.fill_polygons(vertices.reshape(-1, 2 * _MAX_POINTS, 2), size, size)
        coverage = coverage.reshape(n, _MAX_OBJECTS, size, size)
        coverage *= (np.arange(_MAX_OBJECTS)[None, :] < count[:, None])[..., None, None]
        coverage = coverage.max(axis=1)

        frequency = 0.06 + 0.22 * _sigmoid(2 * a[:, 6])
        phase = rng.uniform(0, 2 * np.pi, n)
        stripes = rendering.grating(frequency, np.pi * a[:, 5], phase, size, size)
        # Stripes lighten the colour, so the objects stay bright against the dark ground.
        contrast = 0.6 * _sigmoid(2 * a[:, 7])
        texture = colour[:, None, None, :] + (1.0 - colour[:, None, None, :]) * (
            contrast[:, None, None, None] * stripes[..., None]
        )
        canvas = np.broadcast_to(background[:, None, None, :], (n, size, size, 3))
        return rendering.composite(canvas, coverage, texture).clip(0.0, 1.0).astype(np.float32)

    # Items and triplets.

    def _items(self, rng, leaves) -> dict[str, np.ndarray]:
        shape = leaves.shape
        images = self.render_items(rng, leaves.ravel())
        return {
            "inputs": images.reshape(shape + images.shape[1:]),
            "labels": leaves,
            "ancestors": self.tree.ancestors[leaves],
        }

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` items of the marginal ``theta ~ pi``, leaf ``~ q(. | theta)``.

        Returns:
          ``inputs float32 [n, H, W, 3]``, ``labels int [n]`` (leaf node indices) and
          ``ancestors int [n, height + 1]`` (node at each depth, ``-1`` below the leaf).
        """
        return self._items(rng, self.sample_leaves(rng, self.sample_thetas(rng, n)))

    def sample_triplets(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` generative-similarity triplets (anchor, positive, negative).

        Anchor and positive are items of leaves drawn under one node ``theta``; the
        negative's node is drawn independently from ``pi`` (it may equal ``theta``, and
        with the root in the prior its leaf may equal the anchor's) unless
        ``distinct_negative``. The batch is drawn from :func:`batch_generator` of ``rng``.

        Returns:
          ``inputs float32 [n, 3, H, W, 3]``, ``labels int [n, 3]`` (leaves),
          ``ancestors int [n, 3, height + 1]``, ``thetas int [n, 3]``.
        """
        rng = batch_generator(rng)
        anchor = self.sample_thetas(rng, n)
        negative = self.sample_thetas(rng, n)
        if self.distinct_negative:
            for i in np.flatnonzero(negative == anchor):
                p = self.prior.copy()
                p[anchor[i]] = 0.0
                negative[i] = rng.choice(p.size, p=p / p.sum())
        leaves = self.sample_leaves(rng, np.stack([anchor, anchor, negative], axis=1))
        out = self._items(rng, leaves)
        out["thetas"] = np.stack([anchor, anchor, negative], axis=1)
        return out

    def split_depth(self, level: Level) -> int:
        """The split depth of a Levels triplet (see module doc)."""
        names = get_args(Level)
        if level not in names:
            raise ValueError(f"level must be one of {names}, got {level!r}")
        if self.level_depths is not None:
            return int(self.level_depths[names.index(level)])
        height = self.tree.height
        if height < 3:
            raise ValueError(
                "Levels triplets need a tree of height >= 3 (or explicit level_depths), "
                f"got height {height}"
            )
        return {"coarse": 0, "boundary": height - 2, "fine": height - 1}[level]
