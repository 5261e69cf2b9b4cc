r"""Generative similarity and semantic hierarchies (Marjieh et al. 2024, Sec. 3.3).

People judge the odd one out of three images at every level of a category hierarchy:
between superordinate categories (*coarse*), across the border of two sibling
categories (*boundary*) and within one category (*fine*) (the Levels data set of
Muttenthaler et al. 2024). Marjieh et al. put the WordNet tree over the image classes
into a generative model (``theta`` a node of the tree, an image drawn under it) and
train an encoder on its generative-similarity triplets; the encoder captures the
hierarchy where flat-label supervision and SimCLR do not.

**The world.** :class:`~alignjax.data.hierarchy.HierarchyWorld`: a tree of categories
(by default 4 superordinate x 4 basic x 4 subordinate categories; optionally a piece
of WordNet, see :class:`TreeConfig`) whose items are 32x32 RGB images rendering
attributes inherited down the tree (colour, shape, texture, layout). ``theta ~ pi`` is
a node (uniform over depths, the root included), an item of ``theta`` a leaf under it
and a rendering of that leaf. ``s_gen`` of two items depends only on their leaves'
lowest common ancestor and is exact.

**Training images.** As in the paper, where the images of an ImageNet class are
interchangeable draws of their class, every leaf has a fixed pool of
``train_renderings_per_leaf`` renderings (random poses and item noise) that all
objectives sample from; the evaluation renders fresh items from seeds no training
stream uses. The pool also keeps the CPU budget on the network rather than on the
renderer.

**The method** (``"gensim"``): the softmax triplet loss on generative-similarity
triplets, anchor and positive drawn under one ``theta``, the negative under an
independent ``theta'``. Its closed-form variant (``"gensim_contrastive"``, possible
here because ``s_gen`` is exact): the soft-target batch contrastive loss whose targets
are the batch-normalised exact ``s_gen`` between the items of a batch.

**The baselines** (the paper's):

- ``"supcon"``: supervised contrastive learning on flat category labels. The labels
  are the *basic-level* categories (``supcon_depth``; by default ``height - 1``, the
  parents of the leaves): in the Levels data set a "category" is an ImageNet class,
  its fine triplets lie within one class and its boundary triplets straddle two, and
  ImageNet class labels are what a supervised network is trained on. In this world
  the basic categories play that role (the leaves below them are the within-class
  variation), and the labels ignore every node above them.
- ``"simclr"``: InfoNCE between two augmented views (random rotation, scale, shift,
  flip and pixel noise: :class:`~alignjax.data.augmentations.ImageAugmentation`) of
  items drawn from the same marginal as the method's, without their categories.
- ``"untrained"``: the encoder at initialisation.

**Evaluation** on held-out items, ``eval_renderings_per_leaf`` fresh renderings of every
leaf: odd-one-out accuracy on ``num_eval_triplets`` Levels triplets of those items per
level (odd one out last, split at the world's :meth:`HierarchyWorld.split_depth`;
:func:`alignjax.data.levels.level_triplet_set`) and overall, each encoder judged by
the similarity it was trained with (dot products for the generative-similarity losses,
cosine for the others); and RSA, the Spearman correlation between the embedding's
dissimilarities and the tree's own, ``-log s_gen`` of the items' leaves. Two RDMs of the
embedding are reported: the kernel's (``-f.g`` or ``1 - cos``, the similarity each
encoder is judged by) and the usual RSA correlation distance. The exact ``s_gen`` itself
is the reference row (the world's own answer: it is right on every Levels triplet by
construction).

References:
  Marjieh, R. et al. (2024). Learning human-aligned representations with contrastive
  learning and generative similarity. arXiv:2405.19420, section 3.3.
  Muttenthaler, L. et al. (2024). Aligning machine and human visual representations
  across abstraction levels. arXiv:2409.06509 (the Levels triplets).
  Khosla, P. et al. (2020). Supervised contrastive learning. NeurIPS.
  Chen, T. et al. (2020). A simple framework for contrastive learning of visual
  representations. ICML.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Literal

import numpy as np

from alignjax import evaluation
from alignjax.config import checked, configclass
from alignjax.data import wordnet
from alignjax.data.augmentations import ImageAugmentation
from alignjax.data.hierarchy import HierarchyWorld, Tree
from alignjax.data.levels import LEVELS, level_triplet_set
from alignjax.methods import gensim_hierarchy_report, objectives
from alignjax.models import encoders
from alignjax.training import TrainConfig
from alignjax.training.stages import Stages, note, restored

#: The reference row of the tables: the world's exact generative similarity.
EXACT = "exact s_gen"


@configclass
class TreeConfig:
    """Which category tree the world uses.

    Attributes:
      source: ``"world"`` keeps ``world.tree``; ``"balanced"`` builds
        ``Tree.balanced(branching)``; ``"wordnet"`` reads the WordNet noun hierarchy
        under ``wordnet_roots`` (:func:`alignjax.data.wordnet.wordnet_tree`; needs the
        WordNet files, e.g. the Debian package ``wordnet-base``).
      branching: children per node at each depth (``"balanced"``).
      wordnet_roots: synsets under a common root (``"wordnet"``).
      wordnet_max_depth: depth of the WordNet tree below the root synsets.
      wordnet_max_children: hyponyms kept per synset.
    """

    source: Literal["world", "balanced", "wordnet"] = "world"
    branching: tuple[int, ...] = checked((4, 4, 4), ge=1)
    wordnet_roots: tuple[str, ...] = ("mammal.n.01", "bird.n.01", "fish.n.01", "insect.n.01")
    wordnet_max_depth: int = checked(2, ge=1)
    wordnet_max_children: int = checked(4, ge=1)


@configclass
class HierarchyConfig:
    """The ``gensim-hierarchy`` experiment.

    Attributes:
      world: the category tree's generative model and its renderer.
      tree: replaces ``world.tree`` unless ``tree.source == "world"``.
      encoder: the CNN embedding.
      train: optimisation of every trained objective.
      objective: batch size and temperatures.
      objectives: the method first, then the baselines.
      augmentation: SimCLR's random views.
      supcon_depth: depth of SupCon's flat labels, from 1 (depth 0 is the root; a leaf
        shallower than it is its own label); ``None`` is ``height - 1``, the basic level
        (see the module doc).
      train_renderings_per_leaf: size of each leaf's pool of training renderings.
      num_eval_triplets: held-out Levels triplets per level.
      eval_renderings_per_leaf: held-out renderings of each leaf, the items of the Levels
        triplets, RSA and the plots (two at least: a fine triplet's pair is two items of
        one leaf).
      seed: seed of the training pool and streams; the evaluation uses ``seed + 1``.
    """

    world: HierarchyWorld = HierarchyWorld()
    tree: TreeConfig = TreeConfig()
    encoder: encoders.EncoderConfig = encoders.EncoderConfig(
        kind="cnn", widths=(16, 32, 32), embed_dim=32
    )
    train: TrainConfig = TrainConfig(
        num_steps=400, learning_rate=3e-3, warmup_steps=40, log_every=50
    )
    objective: objectives.ObjectiveConfig = objectives.ObjectiveConfig(batch_size=32)
    objectives: tuple[str, ...] = ("gensim", "gensim_contrastive", "simclr", "supcon", "untrained")
    augmentation: ImageAugmentation = ImageAugmentation()
    supcon_depth: int | None = checked(None, ge=1)
    train_renderings_per_leaf: int = checked(16, ge=1)
    num_eval_triplets: int = checked(300, ge=1)
    eval_renderings_per_leaf: int = checked(4, ge=2)
    seed: int = checked(0, ge=0)

    def __post_init__(self):
        objectives.check_objectives(self.objectives)


def build_world(config: HierarchyConfig) -> HierarchyWorld:
    """``config.world`` with the tree that ``config.tree`` names."""
    spec = config.tree
    if spec.source == "world":
        return config.world
    if spec.source == "balanced":
        tree = Tree.balanced(spec.branching)
    else:
        tree = wordnet.wordnet_tree(
            spec.wordnet_roots,
            max_depth=spec.wordnet_max_depth,
            max_children=spec.wordnet_max_children,
        )
    return dataclasses.replace(config.world, tree=tree)


def category_at_depth(tree: Tree, leaves: np.ndarray, depth: int) -> np.ndarray:
    """Each leaf's ancestor at ``depth`` (the leaf itself where it is shallower): ``int [...]``."""
    leaves = np.asarray(leaves)
    depth = np.minimum(depth, tree.depths[leaves])
    return tree.ancestors[leaves, depth]


def supcon_depth(config: HierarchyConfig, world: HierarchyWorld) -> int:
    """Depth of SupCon's labels: ``config.supcon_depth`` or the basic level ``height - 1``."""
    height = world.tree.height
    depth = height - 1 if config.supcon_depth is None else config.supcon_depth
    if not 1 <= depth <= height:
        raise ValueError(f"supcon_depth must lie in [1, {height}] for this tree, got {depth}")
    return depth


def leaf_positions(tree: Tree) -> np.ndarray:
    """``int [num_nodes]``: each leaf's position in ``tree.leaves`` (``-1`` for inner nodes)."""
    position = np.full(tree.num_nodes, -1)
    position[tree.leaves] = np.arange(tree.num_leaves)
    return position


def leaf_log_similarity(world: HierarchyWorld) -> np.ndarray:
    """Exact ``log s_gen`` between items of every two leaves, ``[num_leaves, num_leaves]``
    in ``tree.leaves`` order (``s_gen`` depends on the items only through their leaves)."""
    leaves = world.tree.leaves
    return world.log_generative_similarity(leaves[:, None], leaves[None, :])


def item_log_similarity(world: HierarchyWorld, table: np.ndarray, leaves: np.ndarray) -> np.ndarray:
    """``log s_gen`` between items of ``leaves`` ``int [n]``: ``[n, n]``, read from ``table``."""
    rows = leaf_positions(world.tree)[leaves]
    return table[rows[:, None], rows[None, :]]


@dataclasses.dataclass(frozen=True)
class RenderingPool:
    """A fixed set of renderings of every leaf, the training images.

    Attributes:
      images: ``float32 [num_leaves, per_leaf, H, W, 3]``, leaves in ``tree.leaves`` order.
      position: ``int [num_nodes]``: a leaf's row in ``images`` (``-1`` for inner nodes).
    """

    images: np.ndarray
    position: np.ndarray

    @classmethod
    def render(cls, world: HierarchyWorld, per_leaf: int, seed: int) -> RenderingPool:
        leaves = world.tree.leaves
        rendered = world.render_items(np.random.default_rng(seed), np.repeat(leaves, per_leaf))
        return cls(
            rendered.reshape(leaves.size, per_leaf, *rendered.shape[1:]), leaf_positions(world.tree)
        )

    def sample(self, rng: np.random.Generator, leaves: np.ndarray) -> np.ndarray:
        """A random pooled rendering of each leaf of ``leaves int [...]``: ``[..., H, W, 3]``."""
        rows = self.position[leaves]
        return self.images[rows, rng.integers(0, self.images.shape[1], rows.shape)]


def training_pool(config: HierarchyConfig, world: HierarchyWorld) -> RenderingPool:
    """The renderings the encoders train on, ``train_renderings_per_leaf`` of each leaf."""
    note(f"rendering {config.train_renderings_per_leaf} training images of every leaf")
    return RenderingPool.render(world, config.train_renderings_per_leaf, config.seed)


def sources(
    config: HierarchyConfig, world: HierarchyWorld, pool: RenderingPool
) -> objectives.Sources:
    """The world's triplets, items (basic-level labels, leaf latents), views and ``s_gen`` table."""
    label_depth = supcon_depth(config, world)

    def triplets(rng, n):
        anchor = world.sample_thetas(rng, n)
        negative = world.sample_thetas(rng, n)
        # Rejection gives the negative's prior conditioned on differing from the anchor's.
        while world.distinct_negative and (same := negative == anchor).any():
            negative[same] = world.sample_thetas(rng, int(same.sum()))
        triplet_leaves = world.sample_leaves(rng, np.stack([anchor, anchor, negative], axis=1))
        return {"inputs": pool.sample(rng, triplet_leaves)}

    def items(rng, n):
        item_leaves = world.sample_leaves(rng, world.sample_thetas(rng, n))
        return {
            "inputs": pool.sample(rng, item_leaves),
            "labels": category_at_depth(world.tree, item_leaves, label_depth),
            "latents": pool.position[item_leaves],
        }

    return objectives.Sources(
        triplets=triplets,
        items=items,
        augment=config.augmentation,
        log_similarity=leaf_log_similarity(world),
    )


def evaluation_items(config: HierarchyConfig, world: HierarchyWorld) -> dict[str, np.ndarray]:
    """The held-out items and their Levels triplets (seeds from ``config.seed + 1``).

    Returns:
      ``images float32 [N, H, W, 3]`` and ``leaves int [N]``: ``r`` fresh renderings of
      every leaf, in tree order (``N = num_leaves * r``, ``r = eval_renderings_per_leaf``);
      ``levels``: the Levels :class:`~alignjax.data.triplet_set.TripletSet` over the
      items (odd one out last), ``n`` of each level in :data:`LEVELS` order.
    """
    seed = config.seed + 1
    leaves = np.repeat(world.tree.leaves, config.eval_renderings_per_leaf)
    triplets = level_triplet_set(
        world.tree,
        leaves,
        config.num_eval_triplets,
        np.random.default_rng([seed, 0]),
        depths={level: world.split_depth(level) for level in LEVELS},
    )
    # The renderings' stream, [seed, 3], is the one they have always been drawn from, so
    # that RSA results stay comparable with earlier runs.
    rng = np.random.default_rng([seed, len(LEVELS)])
    return {"images": world.render_items(rng, leaves), "leaves": leaves, "levels": triplets}


def embeddings(
    objective: str,
    config: HierarchyConfig,
    world: HierarchyWorld,
    pool: RenderingPool | None,
    items: dict[str, np.ndarray],
    workdir: pathlib.Path,
) -> np.ndarray:
    """Embeddings ``[N, d]`` of the held-out items under ``objective``'s encoder.

    The encoder is trained (or restored from ``workdir/objective``); the embeddings are
    saved as ``workdir/objective/embeddings.npy`` and read back on a rerun, which then
    needs neither the encoder nor the training pool.
    """
    path = workdir / objective / "embeddings.npy"
    if path.exists():
        restored()
        return np.load(path)
    if pool is None:
        pool = training_pool(config, world)
    model = objectives.train_encoder(
        objective,
        sources(config, world, pool),
        config.encoder,
        items["images"].shape[1:],
        config.train,
        config.objective,
        workdir=workdir / objective,
        seed=config.seed,
    )
    note(f"embedding the {len(items['images'])} held-out items")
    z = encoders.embed(model, items["images"])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, z)
    return z


def kernel_dissimilarity(features: np.ndarray, kernel: Literal["dot", "cosine"]) -> np.ndarray:
    """The RDM ``max S - S`` of the kernel similarities ``S`` (``-f.g`` or ``1 - cos``, shifted)."""
    if kernel == "cosine":
        features = features / np.linalg.norm(features, axis=-1, keepdims=True)
    similarity = features @ features.T
    rdm = similarity.max() - similarity
    np.fill_diagonal(rdm, 0.0)
    return rdm


def tree_dissimilarity(world: HierarchyWorld, table: np.ndarray, leaves: np.ndarray) -> np.ndarray:
    """The tree's RDM of items of ``leaves``: ``max log s_gen - log s_gen``, ``[n, n]``."""
    log_s = item_log_similarity(world, table, leaves).astype(np.float64)
    rdm = log_s.max() - log_s
    np.fill_diagonal(rdm, 0.0)
    return rdm


def evaluate(
    features: np.ndarray,
    kernel: Literal["dot", "cosine"],
    items: dict[str, np.ndarray],
    tree_rdm: np.ndarray,
) -> dict[str, float]:
    """Levels accuracy (overall and per level; the evaluation suite's
    ``odd_one_out/levels[/<level>]``) and RSA with the tree of one encoder's embeddings
    ``features [N, d]`` of the held-out items."""
    benchmark = evaluation.Benchmark(triplets={"levels": items["levels"]})
    return {
        **evaluation.evaluate(features, benchmark, evaluation.EvaluationConfig(kernel=kernel)),
        "rsa": evaluation.rsa_spearman(kernel_dissimilarity(features, kernel), tree_rdm),
        "rsa_correlation": evaluation.rsa_spearman(
            evaluation.representational_dissimilarity_matrix(features), tree_rdm
        ),
    }


def exact_reference(
    world: HierarchyWorld, table: np.ndarray, items: dict[str, np.ndarray], tree_rdm: np.ndarray
) -> dict[str, float]:
    """The metrics of the exact ``log s_gen`` as the similarity (the world's own answer)."""
    levels = items["levels"]
    accuracy = evaluation.odd_one_out_accuracy_from_similarities(
        item_log_similarity(world, table, items["leaves"]),
        levels.indices,
        levels=levels.levels,
        level_names=levels.level_names,
    )
    return {
        "odd_one_out/levels": accuracy.accuracy,
        **{f"odd_one_out/levels/{level}": accuracy.per_level[level] for level in LEVELS},
        "rsa": evaluation.rsa_spearman(tree_rdm, tree_rdm),
        "rsa_correlation": None,
    }


def run(config: HierarchyConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Train every objective, measure Levels accuracy and RSA with the tree, report."""
    workdir = pathlib.Path(workdir)
    stages = Stages(["world", *config.objectives, "report"], workdir)
    with stages("world"):
        world = build_world(config)
        items = evaluation_items(config, world)
        table = leaf_log_similarity(world)
        tree_rdm = tree_dissimilarity(world, table, items["leaves"])
    pool = None
    metrics: dict[str, Any] = {}
    features, rdms = {}, {}
    for objective in config.objectives:
        with stages(objective):
            if pool is None and not (workdir / objective / "embeddings.npy").exists():
                pool = training_pool(config, world)
            features[objective] = embeddings(objective, config, world, pool, items, workdir)
            kernel = objectives.similarity_kernel(objective, config.objective)
            rdms[objective] = kernel_dissimilarity(features[objective], kernel)
            metrics[objective] = evaluate(features[objective], kernel, items, tree_rdm)
    with stages("report"):
        metrics[EXACT] = exact_reference(world, table, items, tree_rdm)
        label_depth = supcon_depth(config, world)
        gensim_hierarchy_report.write_report(
            config,
            world,
            workdir,
            metrics,
            reference=EXACT,
            features=features,
            rdms=rdms,
            tree_rdm=tree_rdm,
            superordinate=category_at_depth(world.tree, items["leaves"], 1),
            basic=category_at_depth(world.tree, items["leaves"], label_depth),
            label_depth=label_depth,
        )
    return {**metrics, **stages.record()}
