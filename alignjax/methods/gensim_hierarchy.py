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

**Evaluation** on held-out renderings: odd-one-out accuracy on Levels triplets (odd
one out last; :meth:`HierarchyWorld.level_triplets`) per level and overall, each
encoder judged by the similarity it was trained with (dot products for the
generative-similarity losses, cosine for the others); and RSA, the Spearman
correlation between the embedding's dissimilarities and the tree's own,
``-log s_gen`` of the items' leaves, over ``eval_renderings_per_leaf`` renderings of
every leaf. Two RDMs of the embedding are reported: the kernel's (``-f.g`` or
``1 - cos``, the similarity each encoder is judged by) and the usual RSA correlation
distance. The exact ``s_gen`` itself is the reference row (the world's own answer:
it is right on every Levels triplet by construction).

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

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

from alignjax import evaluation
from alignjax.data import wordnet
from alignjax.data.augmentations import ImageAugmentation
from alignjax.data.hierarchy import LEVELS, HierarchyWorld, Tree
from alignjax.methods import encoders, objectives
from alignjax.methods.report import Report
from alignjax.training import TrainConfig

#: The reference row of the tables: the world's exact generative similarity.
EXACT = "exact s_gen"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclasses.dataclass(frozen=True)
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
    branching: tuple[int, ...] = (4, 4, 4)
    wordnet_roots: tuple[str, ...] = ("mammal.n.01", "bird.n.01", "fish.n.01", "insect.n.01")
    wordnet_max_depth: int = 2
    wordnet_max_children: int = 4


@dataclasses.dataclass(frozen=True)
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
      supcon_depth: depth of SupCon's flat labels (a leaf shallower than it is its own
        label); ``None`` is ``height - 1``, the basic level (see the module doc).
      train_renderings_per_leaf: size of each leaf's pool of training renderings.
      num_eval_triplets: held-out Levels triplets per level.
      eval_renderings_per_leaf: held-out renderings of each leaf for RSA and the plots.
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
    supcon_depth: int | None = None
    train_renderings_per_leaf: int = 16
    num_eval_triplets: int = 300
    eval_renderings_per_leaf: int = 4
    seed: int = 0

    def __post_init__(self):
        objectives.check_objectives(self.objectives)
        for name in ("train_renderings_per_leaf", "num_eval_triplets", "eval_renderings_per_leaf"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.supcon_depth is not None and self.supcon_depth < 1:
            raise ValueError(
                f"supcon_depth must be >= 1 (depth 0 is the root) or None, got {self.supcon_depth}"
            )


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
        """A random pooled rendering of each leaf in ``leaves`` ``int [...]``: ``[..., H, W, 3]``."""
        rows = self.position[leaves]
        return self.images[rows, rng.integers(0, self.images.shape[1], rows.shape)]


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
    """The held-out renderings (seed ``config.seed + 1``).

    Returns:
      ``level_images [3 * L * n, H, W, 3]`` (the Levels triplets' items, triplet by
      triplet, levels in :data:`LEVELS` order), ``level_leaves [3 * L * n]``,
      ``levels int [L * n]``; ``rsa_images [num_leaves * r, H, W, 3]`` and
      ``rsa_leaves`` (``r`` renderings of every leaf, in tree order).
    """
    seed = config.seed + 1
    n = config.num_eval_triplets
    per_level = [world.level_triplets(seed + i, n, level) for i, level in enumerate(LEVELS)]
    rng = np.random.default_rng([seed, len(LEVELS)])
    rsa_leaves = np.repeat(world.tree.leaves, config.eval_renderings_per_leaf)
    return {
        "level_images": np.concatenate(
            [t["images"].reshape(-1, *t["images"].shape[2:]) for t in per_level]
        ),
        "level_leaves": np.concatenate([t["labels"].ravel() for t in per_level]),
        "levels": np.repeat(np.arange(len(LEVELS)), n),
        "rsa_images": world.render_items(rng, rsa_leaves),
        "rsa_leaves": rsa_leaves,
    }


def embeddings(
    objective: str,
    config: HierarchyConfig,
    world: HierarchyWorld,
    pool: RenderingPool | None,
    items: dict[str, np.ndarray],
    workdir: pathlib.Path,
) -> dict[str, np.ndarray]:
    """Embeddings of the held-out items under ``objective``'s encoder.

    The encoder is trained (or restored from ``workdir/objective``); the embeddings are
    saved as ``workdir/objective/embeddings.npz`` and read back on a rerun, which then
    needs neither the encoder nor the training pool.

    Returns:
      ``levels [3 * L * n, d]`` and ``rsa [num_leaves * r, d]``.
    """
    path = workdir / objective / "embeddings.npz"
    if path.exists():
        with np.load(path) as saved:
            return dict(saved)
    if pool is None:
        pool = RenderingPool.render(world, config.train_renderings_per_leaf, config.seed)
    model = objectives.train_encoder(
        objective,
        sources(config, world, pool),
        config.encoder,
        items["rsa_images"].shape[1:],
        config.train,
        config.objective,
        workdir=workdir / objective,
        seed=config.seed,
    )
    out = {
        "levels": encoders.embed(model, items["level_images"]),
        "rsa": encoders.embed(model, items["rsa_images"]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


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
    features: dict[str, np.ndarray],
    kernel: Literal["dot", "cosine"],
    items: dict[str, np.ndarray],
    tree_rdm: np.ndarray,
) -> dict[str, float]:
    """Levels accuracy (overall and per level) and RSA with the tree of one encoder."""
    triplets = np.arange(features["levels"].shape[0]).reshape(-1, 3)
    accuracy = evaluation.odd_one_out_accuracy(
        features["levels"], triplets, kernel=kernel, levels=items["levels"], level_names=LEVELS
    )
    return {
        "accuracy": accuracy.accuracy,
        **{f"accuracy/{level}": accuracy.per_level[level] for level in LEVELS},
        "rsa": evaluation.rsa_spearman(kernel_dissimilarity(features["rsa"], kernel), tree_rdm),
        "rsa_correlation": evaluation.rsa_spearman(
            evaluation.representational_dissimilarity_matrix(features["rsa"]), tree_rdm
        ),
    }


def exact_reference(
    world: HierarchyWorld, table: np.ndarray, items: dict[str, np.ndarray], tree_rdm: np.ndarray
) -> dict[str, float]:
    """The metrics of the exact ``log s_gen`` as the similarity (the world's own answer)."""
    leaves = items["level_leaves"]
    triplets = np.arange(leaves.size).reshape(-1, 3)
    accuracy = evaluation.odd_one_out_accuracy_from_similarities(
        item_log_similarity(world, table, leaves),
        triplets,
        levels=items["levels"],
        level_names=LEVELS,
    )
    return {
        "accuracy": accuracy.accuracy,
        **{f"accuracy/{level}": accuracy.per_level[level] for level in LEVELS},
        "rsa": evaluation.rsa_spearman(tree_rdm, tree_rdm),
        "rsa_correlation": None,
    }


def run(config: HierarchyConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Train every objective, measure Levels accuracy and RSA with the tree, report."""
    workdir = pathlib.Path(workdir)
    world = build_world(config)
    items = evaluation_items(config, world)
    table = leaf_log_similarity(world)
    tree_rdm = tree_dissimilarity(world, table, items["rsa_leaves"])
    pool = None
    metrics: dict[str, Any] = {}
    features = {}
    for objective in config.objectives:
        if pool is None and not (workdir / objective / "embeddings.npz").exists():
            pool = RenderingPool.render(world, config.train_renderings_per_leaf, config.seed)
        features[objective] = embeddings(objective, config, world, pool, items, workdir)
        kernel = objectives.similarity_kernel(objective, config.objective)
        metrics[objective] = evaluate(features[objective], kernel, items, tree_rdm)
    metrics[EXACT] = exact_reference(world, table, items, tree_rdm)
    _write_report(config, world, workdir, metrics, features, items, tree_rdm)
    return metrics


def _baselines(config: HierarchyConfig) -> list[str]:
    return [o for o in config.objectives if o not in objectives.GENSIM_OBJECTIVES]


def _write_report(config, world, workdir, metrics, features, items, tree_rdm) -> None:
    tree = world.tree
    report = Report("gensim-hierarchy: generative similarity captures a category hierarchy")
    report.paragraph(
        f"A category tree of {tree.num_leaves} leaves and height {tree.height} "
        f"({config.tree.source} tree); items are {world.image_size}x{world.image_size} renderings of "
        f"attributes inherited down the tree. Each objective trains a {config.encoder.kind} encoder "
        f"for {config.train.num_steps} steps of {config.objective.batch_size} on a pool of "
        f"{config.train_renderings_per_leaf} renderings per leaf; SupCon's labels are the "
        f"{supcon_depth(config, world)}-deep categories (the basic level). Evaluation on held-out "
        f"renderings: {config.num_eval_triplets} Levels triplets per level (odd one out last; chance "
        f"1/3, ties wrong) and RSA (Spearman) between the embedding's dissimilarities and the tree's "
        f"-log s_gen over {config.eval_renderings_per_leaf} renderings per leaf. The claim: the "
        "generative-similarity encoder captures the hierarchy (higher coarse accuracy and RSA) "
        "where flat-label supervision (SupCon) and SimCLR do not."
    )
    columns = [
        "objective",
        "accuracy",
        *(f"accuracy/{level}" for level in LEVELS),
        "rsa",
        "rsa_correlation",
    ]
    report.table([{"objective": name, **values} for name, values in metrics.items()], columns)
    report.paragraph(
        "`rsa`: the RDM of the similarity each encoder is judged by (dot products for the "
        "generative-similarity losses, cosine otherwise); `rsa_correlation`: the usual correlation "
        f"distance. The `{EXACT}` row is the world's exact generative similarity, the ceiling."
    )
    report.paragraph(_verdict(config, metrics))
    report.figure(
        _accuracy_figure(config, metrics),
        workdir,
        "accuracy_per_level.png",
        "Odd-one-out accuracy on held-out Levels triplets, per level and overall",
    )
    method = config.objectives[0]
    shown = [method]
    baselines = [b for b in _baselines(config) if b != "untrained"] or _baselines(config)
    if baselines:
        shown.append(max(baselines, key=lambda b: metrics[b]["accuracy"]))
    report.figure(
        _embedding_figure(config, world, shown, metrics, features, items),
        workdir,
        "embedding_pca.png",
        f"2-D PCA of held-out items: {' vs '.join(shown)} (the best baseline by overall accuracy)",
    )
    report.figure(
        _rdm_figure(config, shown, features, tree_rdm),
        workdir,
        "rdm.png",
        "Dissimilarity matrices of held-out items in tree order: the tree's and the encoders'",
    )
    report.write(workdir)


def _verdict(config, metrics) -> str:
    method = config.objectives[0]
    if method not in objectives.GENSIM_OBJECTIVES:
        return "No generative-similarity objective was trained."
    lines = []
    for key, what in (("accuracy/coarse", "coarse accuracy"), ("rsa", "RSA with the tree")):
        beaten = [b for b in _baselines(config) if metrics[method][key] > metrics[b][key]]
        others = [b for b in _baselines(config) if b not in beaten]
        status = "reproduced" if not others else f"not reproduced against {', '.join(others)}"
        values = ", ".join(f"{o} {metrics[o][key]:.3f}" for o in (method, *_baselines(config)))
        lines.append(f"- {what}: {method} above every baseline — {status} ({values}).")
    return "Claim check:\n\n" + "\n".join(lines)


def _accuracy_figure(config, metrics):
    groups = [*(f"accuracy/{level}" for level in LEVELS), "accuracy"]
    names = list(config.objectives)
    fig, ax = plt.subplots(figsize=(1.6 + 1.9 * len(groups), 3.8))
    width = 0.8 / len(names)
    colours = plt.get_cmap("tab10")
    for i, name in enumerate(names):
        x = np.arange(len(groups)) + (i - (len(names) - 1) / 2) * width
        values = [metrics[name][g] for g in groups]
        ax.bar(x, values, width, label=name, color=colours(i), edgecolor="white")
    ax.axhline(1 / 3, color="0.4", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(np.arange(len(groups)), [*LEVELS, "overall"])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("odd-one-out accuracy")
    ax.set_title("Held-out Levels triplets (exact s_gen: 1.0 at every level)")
    ax.legend(
        ncol=len(names) + 1,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        frameon=False,
    )
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def _embedding_figure(config, world, shown, metrics, features, items):
    tree = world.tree
    leaves = items["rsa_leaves"]
    superordinate = category_at_depth(tree, leaves, 1)
    basic = category_at_depth(tree, leaves, supcon_depth(config, world))
    super_ids = np.unique(superordinate)
    # Markers distinguish the basic categories within one superordinate (colour).
    marker_of = {
        b: i % len(_MARKERS)
        for s in super_ids
        for i, b in enumerate(np.unique(basic[superordinate == s]))
    }
    colours = plt.get_cmap("tab10" if super_ids.size <= 10 else "tab20")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.6 * len(shown), 4.4), squeeze=False)
    for ax, name in zip(axes[0], shown):
        z = features[name]["rsa"]
        if objectives.similarity_kernel(name, config.objective) == "cosine":
            z = z / np.linalg.norm(z, axis=-1, keepdims=True)
        xy = PCA(2, random_state=0).fit_transform(z)
        for si, s in enumerate(super_ids):
            for b in np.unique(basic[superordinate == s]):
                mask = basic == b
                ax.scatter(
                    *xy[mask].T,
                    s=14,
                    color=colours(si % colours.N),
                    marker=_MARKERS[marker_of[b]],
                    alpha=0.75,
                    linewidths=0,
                )
        ax.set_title(
            f"{name}: coarse acc. {metrics[name]['accuracy/coarse']:.2f}, RSA {metrics[name]['rsa']:.2f}"
        )
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        plt.Line2D(
            [], [], marker="o", linestyle="", color=colours(i % colours.N), label=tree.names[s]
        )
        for i, s in enumerate(super_ids[:10])
    ]
    axes[0, -1].legend(
        handles=handles,
        title="superordinate",
        fontsize=7,
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
    )
    fig.suptitle(
        "Held-out items: colour = superordinate category, marker = basic category within it"
    )
    fig.tight_layout()
    return fig


def _rdm_figure(config, shown, features, tree_rdm):
    panels = [("tree: -log s_gen", tree_rdm)]
    for name in shown:
        kernel = objectives.similarity_kernel(name, config.objective)
        panels.append(
            (
                f"{name} ({'-dot' if kernel == 'dot' else '1 - cos'})",
                kernel_dissimilarity(features[name]["rsa"], kernel),
            )
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.5), squeeze=False)
    for ax, (title, rdm) in zip(axes[0], panels):
        ax.imshow(rdm, cmap="viridis", interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("items, in tree order")
    fig.suptitle("Dissimilarity of held-out items (dark = similar)")
    fig.tight_layout()
    return fig
