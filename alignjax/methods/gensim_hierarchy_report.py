"""The ``gensim-hierarchy`` report: Levels accuracy and RSA with the tree, pictures.

Writes ``report.md`` of a ``gensim-hierarchy`` run
(:func:`alignjax.methods.gensim_hierarchy.run`): the table of odd-one-out accuracy per
level and RSA of every objective beside the exact ``s_gen``, the claim check, and three
figures: grouped bars of accuracy per level, a 2-D PCA of the held-out items coloured
by superordinate category, and the dissimilarity matrices of the tree and the encoders.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

from alignjax.data.hierarchy import HierarchyWorld
from alignjax.data.levels import LEVELS
from alignjax.methods import objectives
from alignjax.methods.report import Report

if TYPE_CHECKING:
    from alignjax.methods.gensim_hierarchy import HierarchyConfig

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def write_report(
    config: HierarchyConfig,
    world: HierarchyWorld,
    workdir: pathlib.Path,
    metrics: dict[str, Any],
    *,
    reference: str,
    features: dict[str, np.ndarray],
    rdms: dict[str, np.ndarray],
    tree_rdm: np.ndarray,
    superordinate: np.ndarray,
    basic: np.ndarray,
    label_depth: int,
) -> None:
    """Writes ``workdir/report.md`` and its figures.

    Args:
      config: the run's config.
      world: the world the run used (its tree may replace ``config.world``'s).
      workdir: the run's directory.
      metrics: ``metrics[name]`` of every objective and of the ``reference`` row.
      reference: the name of the exact ``s_gen`` row of ``metrics``.
      features: each objective's embeddings of the held-out items, ``[N, d]``.
      rdms: each objective's RDM of its kernel similarities, ``[N, N]``.
      tree_rdm: the tree's RDM of the held-out items (``-log s_gen``), ``[N, N]``.
      superordinate: ``int [N]``, each item's category at depth 1.
      basic: ``int [N]``, each item's category at ``label_depth``.
      label_depth: the depth of SupCon's labels (the basic level).
    """
    tree, size = world.tree, world.image_size
    report = Report("gensim-hierarchy: generative similarity captures a category hierarchy")
    report.paragraph(
        f"A category tree of {tree.num_leaves} leaves and height {tree.height} "
        f"({config.tree.source} tree); items are {size}x{size} renderings of attributes "
        f"inherited down the tree. Each objective trains a {config.encoder.kind} encoder for "
        f"{config.train.num_steps} steps of {config.objective.batch_size} on a pool of "
        f"{config.train_renderings_per_leaf} renderings per leaf; SupCon's labels are the "
        f"{label_depth}-deep categories (the basic level). Evaluation on "
        f"{config.eval_renderings_per_leaf} held-out renderings per leaf: "
        f"{config.num_eval_triplets} Levels triplets of them per level (odd one out last; "
        "chance 1/3, ties wrong) and RSA (Spearman) between the embedding's dissimilarities "
        "and the tree's -log s_gen. The claim: the generative-similarity encoder captures the "
        "hierarchy (higher coarse accuracy and RSA) where flat-label supervision (SupCon) and "
        "SimCLR do not."
    )
    columns = [
        "objective",
        "odd_one_out/levels",
        *(f"odd_one_out/levels/{level}" for level in LEVELS),
        "rsa",
        "rsa_correlation",
    ]
    report.table([{"objective": name, **values} for name, values in metrics.items()], columns)
    report.paragraph(
        "`rsa`: the RDM of the similarity each encoder is judged by (dot products for the "
        "generative-similarity losses, cosine otherwise); `rsa_correlation`: the usual correlation "
        f"distance. The `{reference}` row is the world's exact generative similarity, the ceiling."
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
        shown.append(max(baselines, key=lambda b: metrics[b]["odd_one_out/levels"]))
    report.figure(
        _embedding_figure(config, world, shown, metrics, features, superordinate, basic),
        workdir,
        "embedding_pca.png",
        f"2-D PCA of held-out items: {' vs '.join(shown)} (the best baseline by overall accuracy)",
    )
    report.figure(
        _rdm_figure(config, shown, rdms, tree_rdm),
        workdir,
        "rdm.png",
        "Dissimilarity matrices of held-out items in tree order: the tree's and the encoders'",
    )
    report.write(workdir)


def _baselines(config: HierarchyConfig) -> list[str]:
    return [o for o in config.objectives if o not in objectives.GENSIM_OBJECTIVES]


def _verdict(config, metrics) -> str:
    method = config.objectives[0]
    if method not in objectives.GENSIM_OBJECTIVES:
        return "No generative-similarity objective was trained."
    lines = []
    for key, what in (
        ("odd_one_out/levels/coarse", "coarse accuracy"),
        ("rsa", "RSA with the tree"),
    ):
        beaten = [b for b in _baselines(config) if metrics[method][key] > metrics[b][key]]
        others = [b for b in _baselines(config) if b not in beaten]
        status = "reproduced" if not others else f"not reproduced against {', '.join(others)}"
        values = ", ".join(f"{o} {metrics[o][key]:.3f}" for o in (method, *_baselines(config)))
        lines.append(f"- {what}: {method} above every baseline — {status} ({values}).")
    return "Claim check:\n\n" + "\n".join(lines)


def _accuracy_figure(config, metrics):
    groups = [*(f"odd_one_out/levels/{level}" for level in LEVELS), "odd_one_out/levels"]
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


def _embedding_figure(config, world, shown, metrics, features, superordinate, basic):
    tree = world.tree
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
        z = features[name]
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
        coarse, rsa = metrics[name]["odd_one_out/levels/coarse"], metrics[name]["rsa"]
        ax.set_title(f"{name}: coarse acc. {coarse:.2f}, RSA {rsa:.2f}")
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


def _rdm_figure(config, shown, rdms, tree_rdm):
    panels = [("tree: -log s_gen", tree_rdm)]
    for name in shown:
        kernel = objectives.similarity_kernel(name, config.objective)
        panels.append((f"{name} ({'-dot' if kernel == 'dot' else '1 - cos'})", rdms[name]))
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
