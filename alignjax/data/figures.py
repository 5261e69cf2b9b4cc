"""Pictures of the synthetic worlds: one PNG per world, to see what the data look like.

Run::

    python -m alignjax.data.figures --out figures/

to write

- ``gaussian_mixture.png``: samples coloured by component, and ``s_gen`` of every
  point of the plane with one reference point;
- ``quadrilaterals.png``: each reference shape, its four intruders and samples of its
  property class from the generative model, then an oddball trial;
- ``geoclidean.png``: each concept's instances, close foils and far foils;
- ``hierarchy.png``: items of every leaf laid out by the tree, then Levels triplets
  (coarse, boundary, fine; odd one out last) and generative-similarity triplets.

``--image-size`` overrides the image worlds' resolution (small values make a quick
preview), ``--seed`` the randomness. Figures are drawn with matplotlib's object API
(Agg canvas), so importing this module changes no global matplotlib state.
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from alignjax.data import gaussian_mixture, geoclidean, hierarchy, levels, quadrilaterals

WORLDS = ("gaussian_mixture", "quadrilaterals", "geoclidean", "hierarchy")


def _show(ax, image, title: str | None = None, frame: str | None = None) -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(frame is not None)
        if frame is not None:
            spine.set_edgecolor(frame)
            spine.set_linewidth(1.5)
    if title:
        ax.set_title(title, fontsize=7, pad=2)


def _row_label(ax, text: str) -> None:
    ax.set_ylabel(text, fontsize=7, rotation=0, ha="right", va="center")


def gaussian_mixture_figure(path: pathlib.Path, seed: int = 0, dpi: int = 120) -> None:
    """Samples by component and ``s_gen(x, y0)`` over the plane."""
    world = gaussian_mixture.GaussianMixtureWorld(num_components=4, separation=3.0, seed=seed)
    items = world.sample(np.random.default_rng(seed), 800)
    x, labels = items["inputs"], items["labels"]
    fig = Figure(figsize=(9, 4.2))
    left, right = fig.subplots(1, 2)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for k in range(world.num_components):
        chosen = labels == k
        colour = colours[k % len(colours)]
        left.scatter(*x[chosen].T, s=6, alpha=0.6, color=colour, label=f"component {k}")
    left.scatter(*world.means.T, marker="x", s=60, color="black", label="means")
    left.set_title("samples, coloured by component", fontsize=9)
    left.legend(fontsize=7, loc="best")
    left.set_aspect("equal")

    low, high = x.min(axis=0) - 1, x.max(axis=0) + 1
    gx, gy = np.meshgrid(np.linspace(low[0], high[0], 160), np.linspace(low[1], high[1], 160))
    grid = np.stack([gx, gy], axis=-1).astype(np.float32)
    reference = x[0]
    similarity = np.exp(world.log_generative_similarity(grid, reference))
    image = right.contourf(gx, gy, similarity, levels=20, cmap="viridis")
    right.scatter(
        *reference, marker="*", s=140, color="white", edgecolor="black", label="reference y0"
    )
    right.scatter(*world.means.T, marker="x", s=60, color="black")
    right.set_title("s_gen(x, y0) (1 = chance, max 1 / pi_k)", fontsize=9)
    right.legend(fontsize=7, loc="lower right")
    right.set_aspect("equal")
    fig.colorbar(image, ax=right, shrink=0.8)
    fig.suptitle(
        f"Gaussian mixture world (K = {world.num_components}, separation {world.separation})",
        fontsize=10,
    )
    fig.savefig(path, dpi=dpi)


def quadrilaterals_figure(
    path: pathlib.Path, seed: int = 0, image_size: int = 64, dpi: int = 120
) -> None:
    """References, intruders and class samples per shape; one oddball trial."""
    world = quadrilaterals.QuadrilateralWorld(image_size=image_size)
    rng = np.random.default_rng(seed)
    names = quadrilaterals.SHAPE_NAMES
    num_samples = 4
    headers = ["reference"] + [f"intruder {d}" for d in range(4)] + ["class sample"] * num_samples
    columns = 1 + 4 + num_samples
    rows = len(names) + 1
    fig = Figure(figsize=(columns * 0.95, rows * 1.0 + 0.4))
    axes = fig.subplots(rows, columns)
    for k, name in enumerate(names):
        shapes = np.concatenate(
            [
                quadrilaterals.REFERENCE_SHAPES[k][None],
                quadrilaterals.intruders(
                    quadrilaterals.REFERENCE_SHAPES[k], world.intruder_fraction
                ),
                world.sample_shapes(rng, np.full(num_samples, k)),
            ]
        )
        images = world.render(_fixed_poses(world, shapes))
        for j in range(columns):
            title = headers[j] if k == 0 else None
            _show(axes[k, j], images[j], title, frame="tab:red" if 1 <= j <= 4 else None)
        _row_label(axes[k, 0], name.replace("_", "\n"))
    trial = {k: v[0] for k, v in world.oddball_trials(rng, 1, ["rectangle"]).items()}
    for j in range(columns):
        ax = axes[-1, j]
        if j < 6:
            intruder = j == int(trial["intruder"])
            if intruder:
                _show(ax, trial["inputs"][j], "intruder", frame="tab:red")
            else:
                _show(ax, trial["inputs"][j])
        else:
            ax.axis("off")
    _row_label(axes[-1, 0], "oddball\ntrial")
    fig.suptitle("Quadrilaterals: reference, intruders (red), samples of its class", fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.99, top=0.94, bottom=0.01, wspace=0.08, hspace=0.25)
    fig.savefig(path, dpi=dpi)


def _fixed_poses(world, shapes: np.ndarray) -> np.ndarray:
    """Shapes centred at one scale, unrotated, so that intruders read as edits."""
    centred = shapes - shapes.mean(axis=1, keepdims=True)
    centred /= np.linalg.norm(centred, axis=-1).max(axis=-1)[:, None, None]
    half = 0.5 * world.image_size - world.margin - world.line_width
    pixels = centred * np.array([1.0, -1.0]) * 0.85 * half + 0.5 * world.image_size
    return pixels.astype(np.float32)


def geoclidean_figure(
    path: pathlib.Path, seed: int = 0, image_size: int = 64, dpi: int = 120
) -> None:
    """Per concept: instances, close foils (one constraint changed) and far foils."""
    world = geoclidean.GeoclideanWorld(image_size=image_size)
    rng = np.random.default_rng(seed)
    kinds = ["concept"] * 4 + ["close"] * 2 + ["far"] * 2
    frames = {"concept": None, "close": "tab:orange", "far": "tab:blue"}
    rows = len(world.concepts)
    fig = Figure(figsize=(len(kinds) * 0.95 + 1.4, rows * 1.0 + 0.4))
    axes = fig.subplots(rows, len(kinds))
    for k, concept in enumerate(world.concepts):
        task = world.sample_task(rng, k, num_train=4, num_test=2)
        images = np.concatenate([task["train_images"], task["test_images"][2:]])
        for j, kind in enumerate(kinds):
            title = kind if k == 0 else None
            if kind == "far":
                title = world.concepts[int(task["far_concepts"][j - 6])].name.replace("_", " ")
            _show(axes[k, j], images[j], title, frame=frames[kind])
            axes[k, j].title.set_fontsize(5 if kind == "far" else 7)
        _row_label(axes[k, 0], concept.name.replace("_", "\n"))
    fig.suptitle("Geoclidean concepts: instances, close (orange) and far (blue) foils", fontsize=9)
    fig.subplots_adjust(left=0.16, right=0.99, top=0.94, bottom=0.01, wspace=0.08, hspace=0.3)
    fig.savefig(path, dpi=dpi)


def hierarchy_figure(
    path: pathlib.Path, seed: int = 0, image_size: int = 32, dpi: int = 120
) -> None:
    """Items of every leaf by superordinate, then Levels and s_gen triplets."""
    world = hierarchy.HierarchyWorld(image_size=image_size, seed=seed)
    tree = world.tree
    rng = np.random.default_rng(seed)
    superordinates = list(tree.children[0])
    leaves_by_row = [tree.leaves[tree.ancestors[tree.leaves, 1] == s] for s in superordinates]
    columns = max(len(r) for r in leaves_by_row)
    triplet_rows = [*levels.LEVELS, "s_gen"]
    num_triplets = min(4, columns // 4 + 1)
    rows = len(superordinates) + len(triplet_rows)
    fig = Figure(figsize=(columns * 0.62 + 0.9, rows * 0.72 + 0.5))
    axes = fig.subplots(rows, columns)
    for r, leaves in enumerate(leaves_by_row):
        images = world.render_items(rng, np.asarray(leaves))
        for j in range(columns):
            if j < len(leaves):
                # Balanced-tree names are "super.basic.sub"; columns share "basic.sub".
                column = tree.names[leaves[j]].split(".", 1)[-1]
                _show(axes[r, j], images[j], f"b.s {column}" if r == 0 else None)
            else:
                axes[r, j].axis("off")
        _row_label(axes[r, 0], f"super {tree.names[superordinates[r]]}")
    # Levels triplets over two renderings of every leaf (a fine pair is two of one leaf).
    item_leaves = np.repeat(tree.leaves, 2)
    item_images = world.render_items(rng, item_leaves)
    for i, level in enumerate(triplet_rows):
        r = len(superordinates) + i
        for j in range(columns):
            axes[r, j].axis("off")
        if level == "s_gen":
            triplets = world.sample_triplets(rng, num_triplets)
            labels, images = triplets["labels"], triplets["inputs"]
        else:
            depth = world.split_depth(level)
            indices = levels.sample_level_triplets(tree, item_leaves, depth, num_triplets, rng)
            labels, images = item_leaves[indices], item_images[indices]
        for t in range(num_triplets):
            for m in range(3):
                j = 4 * t + m
                if j >= columns:
                    break
                axes[r, j].axis("on")
                name = tree.names[int(labels[t, m])]
                _show(axes[r, j], images[t, m], name, frame="tab:red" if m == 2 else None)
                axes[r, j].title.set_fontsize(5)
        label = "s_gen triplet\n(anchor, pos, neg)" if level == "s_gen" else f"{level}\n(odd last)"
        _row_label(axes[r, 0], label)
    fig.suptitle("Hierarchy world: leaf categories by superordinate; triplets", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.99, top=0.91, bottom=0.01, wspace=0.06, hspace=0.45)
    fig.savefig(path, dpi=dpi)


def main(argv: Sequence[str] | None = None) -> list[pathlib.Path]:
    """Writes one PNG per world into ``--out``; returns the paths written."""
    parser = argparse.ArgumentParser(
        prog="python -m alignjax.data.figures", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, type=pathlib.Path, help="directory for the PNGs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples shown")
    parser.add_argument(
        "--image-size", type=int, default=None, help="override the image worlds' resolution"
    )
    parser.add_argument("--dpi", type=int, default=120, help="resolution of the PNGs")
    parser.add_argument(
        "--worlds", nargs="+", choices=WORLDS, default=list(WORLDS), help="which worlds to draw"
    )
    args = parser.parse_args(argv)
    if args.image_size is not None and args.image_size < 8:
        parser.error(f"--image-size must be at least 8, got {args.image_size}")
    args.out.mkdir(parents=True, exist_ok=True)
    image_worlds = {
        "quadrilaterals": (quadrilaterals_figure, 64),
        "geoclidean": (geoclidean_figure, 64),
        "hierarchy": (hierarchy_figure, 32),
    }
    written = []
    for name in args.worlds:
        path = args.out / f"{name}.png"
        if name == "gaussian_mixture":
            gaussian_mixture_figure(path, seed=args.seed, dpi=args.dpi)
        else:
            draw, size = image_worlds[name]
            draw(path, seed=args.seed, image_size=args.image_size or size, dpi=args.dpi)
        written.append(path)
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    main()
