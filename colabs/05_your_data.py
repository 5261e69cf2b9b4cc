# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your model, your images, your judgments
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/alignjax/alignjax/blob/main/colabs/05_your_data.ipynb)
#
# You have a model, its features of your items or your images, and people's odd-one-out
# judgments in THINGS format (three item indices a line, the odd one out last). This
# notebook walks through the two commands that give you an aligned representation back:
#
# 1. `alignjax fit glocal`: a linear transform of your model's features (gLocal,
#    Muttenthaler et al. 2023) that predicts the judgments while keeping each item's
#    nearest neighbours, and `alignjax apply glocal` to use it;
# 2. `alignjax fit alignet`: a student network distilled on your images from a teacher
#    aligned to the judgments (AligNet, Muttenthaler et al. 2024).
#
# Your own files replace the stand-ins made below; the formats and every check are in
# [docs/your_data.md](https://github.com/alignjax/alignjax/blob/main/docs/your_data.md).
# Each command is run here with `alignjax.cli.main`, exactly as in a shell.

# %%
# On Colab, installs alignjax: from a wheel you uploaded to the session's files
# (alignjax-*.whl, the last one uploaded), or else from the repository. Anywhere else
# it does nothing: the notebook uses the alignjax installed there. Both routes are
# described in colabs/README.md.
import glob
import os
import subprocess
import sys

REPOSITORY = "https://github.com/alignjax/alignjax"  # pyproject.toml's [project.urls]
if "google.colab" in sys.modules:
    wheels = glob.glob("alignjax-*.whl")
    source = max(wheels, key=os.path.getmtime) if wheels else f"alignjax @ git+{REPOSITORY}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
    print("installed", source)
else:
    print("not on Colab: nothing to install")

# %% tags=["parameters"]
# Small sizes so that CI runs this notebook on a CPU in about a minute. On Colab set
# GLOCAL_GRID to "paper" (the released grid, 18 gLocal fits) and ALIGNET_PRESET to
# "quick" with ALIGNET_OVERRIDES = [] (about 6 minutes on 2 CPU cores), or point the
# paths at your own files.
N_ITEMS, DIM, N_TRIPLETS = 200, 8, 5000
GLOCAL_GRID = "quick"
IMAGES_PER_CLASS, IMAGE_SIZE = 30, 16
ALIGNET_PRESET = "tiny"
ALIGNET_OVERRIDES = [
    *(f"{stage}.num_steps={n}" for stage, n in [("teacher_train", 30), ("student_pretrain", 30)]),
    "teacher_train.warmup_steps=5",
    "student_pretrain.warmup_steps=5",
    "student_train.num_steps=60",
    "student_train.warmup_steps=5",
    "pretraining.batch_size=32",
    "uncertainty_distillation.train.num_steps=100",
    "sampling.num_clusters=6",
    "sampling.num_triplets=1024",
    "sampling.num_test_triplets=300",
    "distillation.batch_size=32",
    "data.evaluation_images=200",
    "data.levels_per_level=100",
    *(
        f"{stage}.progress_bar=false"
        for stage in ("teacher_train", "student_pretrain", "student_train")
    ),
]
SEED = 0

# %%
import json
import pathlib
import shlex
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from alignjax import cli
from alignjax.data.hierarchy import HierarchyWorld, Tree
from alignjax.data.observers import LuceObserver, simulate_triplet_dataset
from alignjax.models import AffineParams

root = pathlib.Path(tempfile.mkdtemp())  # your files and the runs' work directories
rng = np.random.default_rng(SEED)


def alignjax(command: str) -> None:
    """``alignjax COMMAND``, as in a shell; a mistake is one line and status 2."""
    print(f"$ alignjax {command}")
    status = cli.main(shlex.split(command))
    assert status == 0, f"alignjax exited with status {status}"


# %% [markdown]
# ## gLocal on your features
#
# The stand-in: a model's 8-d features of 200 items, and 5000 triplets of people who
# judge by the same features but weigh the first two dimensions four times as much as
# the model does. With your data, `features.npy` holds one row per item (in the order
# your triplets count them) and `triplets.txt` your triplets.

# %%
features = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
weights = np.array([4.0, 4.0] + [1.0] * (DIM - 2))
people = LuceObserver((features * weights) @ features.T, temperature=0.5)
triplets = simulate_triplet_dataset(people, n_train=N_TRIPLETS, n_validation=0, n_test=0).train
np.save(root / "features.npy", features)
np.savetxt(root / "triplets.txt", triplets.indices, fmt="%d")
print(open(root / "triplets.txt").read().splitlines()[:3], "...")

# %% [markdown]
# `fit glocal` splits 10 % of the triplets off for validation and 10 % for testing, fits
# gLocal and the naive transform (aligned without caring for the neighbours) over the
# grid with the released gLocal configuration, and keeps the best of each on the
# validation triplets.

# %%
alignjax(
    f"fit glocal --features {root}/features.npy --triplets {root}/triplets.txt "
    f"--grid {GLOCAL_GRID} --workdir {root}/glocal"
)

# %% [markdown]
# Every grid point's test accuracy against the fraction of each item's 10 nearest
# neighbours it kept: the trade-off gLocal is about. The base features keep all of
# their neighbours and align worst.

# %%
metrics = json.loads((root / "glocal" / "metrics.json").read_text())
fig, ax = plt.subplots(figsize=(5, 3.6))
for kind, colour in (("naive", "tab:orange"), ("glocal", "tab:blue")):
    rows = [r for r in metrics["grid"] if r["kind"] == kind]
    ax.scatter(
        [r["neighbour_preservation"] for r in rows],
        [r["odd_one_out/test"] for r in rows],
        color=colour,
        alpha=0.4,
        label=f"{kind} (grid)",
    )
    chosen = metrics[kind]
    ax.scatter(
        chosen["neighbour_preservation"],
        chosen["odd_one_out/test"],
        s=120,
        color=colour,
        edgecolor="black",
        label=f"{kind} (selected)",
    )
base = metrics["base"]
ax.scatter(
    base["neighbour_preservation"],
    base["odd_one_out/test"],
    s=120,
    color="gray",
    label="your features",
)
ax.set_xlabel("10-NN preservation")
ax.set_ylabel("odd-one-out accuracy (test triplets)")
ax.legend(fontsize=8)
plt.show()
for space in ("base", "naive", "glocal"):
    accuracy, kept = metrics[space]["odd_one_out/test"], metrics[space]["neighbour_preservation"]
    print(f"{space:7s} test accuracy {accuracy:.3f}, neighbours kept {kept:.3f}")
assert metrics["glocal"]["odd_one_out/test"] > metrics["base"]["odd_one_out/test"]

# %% [markdown]
# `transform.npz` holds the selected gLocal transform, `weights, bias, mean, std`, the
# layout of the released gLocal code's files: `apply glocal` applies it to any features
# of the same model, `((features - mean) / std) @ weights + bias`.

# %%
alignjax(
    f"apply glocal --transform {root}/glocal/transform.npz "
    f"--features {root}/features.npy --out {root}/aligned.npy"
)
transform = AffineParams.load_npz(root / "glocal" / "transform.npz")
np.testing.assert_allclose(np.load(root / "aligned.npy"), transform.apply(features), rtol=1e-6)
print("weights", transform.weights.shape, "bias fitted:", bool(transform.bias.any()))

# %% [markdown]
# ## AligNet on your images
#
# The stand-in: 6 classes of rendered pictures (two superordinate groups of three), as a
# folder with one subfolder per class, and people's odd-one-out choices over 90 of the
# images, with a file that maps each triplet item to its image. With your data,
# `images/` is your folder (or a TFDS data set with PNG/JPEG bytes: `--tfds NAME
# --tfds-data-dir DIR`). Images are decoded with Pillow as they are streamed, resized and
# centre-cropped to `--image-size`.

# %%
world = HierarchyWorld(tree=Tree.balanced((2, 3)), image_size=IMAGE_SIZE)
leaves = np.repeat(world.tree.leaves, IMAGES_PER_CLASS)
pictures = np.round(world.render_items(rng, leaves) * 255).astype(np.uint8)
for index, (leaf, picture) in enumerate(zip(leaves, pictures)):
    folder = root / "images" / f"class_{world.tree.names[leaf].replace('.', '_')}"
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(folder / f"{index:04d}.png")
# The image order: class folders sorted, then files sorted.
names = sorted(str(p.relative_to(root / "images")) for p in (root / "images").rglob("*.png"))
items = np.sort(rng.choice(len(names), 90, replace=False))  # the judged images
item_leaves = np.array([leaves[int(pathlib.Path(names[i]).stem)] for i in items])
similarity = world.log_generative_similarity(item_leaves[:, None], item_leaves[None, :])
judged = simulate_triplet_dataset(
    LuceObserver(similarity, 0.5), n_train=3000, n_validation=0, n_test=0
)
np.savetxt(root / "triplets_images.txt", judged.train.indices, fmt="%d")
(root / "items.txt").write_text("\n".join(names[i] for i in items) + "\n")
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
for ax, leaf in zip(axes, world.tree.leaves):
    ax.imshow(pictures[np.flatnonzero(leaves == leaf)[0]])
    ax.set_title(world.tree.names[leaf], fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# `fit alignet` runs the AligNet chain of `alignjax run alignet` on them: a teacher (here
# trained on your classes; or `--teacher-features F.npy` in image order, or a big_vision
# `--teacher-checkpoint T.npz`) is aligned to the judgments by uncertainty distillation,
# clusters and samples triplets of your images, and a student (here pretrained on your
# images; or a big_vision `--student-checkpoint S.npz`) is distilled on them.

# %%
sets = " ".join(f"--set {o}" for o in ALIGNET_OVERRIDES)
alignjax(
    f"fit alignet --images {root}/images --image-size {IMAGE_SIZE} "
    f"--triplets {root}/triplets_images.txt --item-images {root}/items.txt "
    f"--preset {ALIGNET_PRESET} --workdir {root}/alignet {sets}"
)

# %% [markdown]
# The distilled student is `alignet/student.npz`, in big_vision's layout. Below, how
# well each model agrees with the held-out human choices and with the aligned teacher's
# choices on triplets no student trained on, and how many of each image's neighbours
# the student kept.

# %%
metrics = json.loads((root / "alignet" / "metrics.json").read_text())
models = ["base", "alignet", "teacher", "teacher_ud"]
columns = ["odd_one_out/humans", "odd_one_out/alignet_teacher", "odd_one_out/levels"]
fig, ax = plt.subplots(figsize=(6.5, 3.2))
width = 0.2
for i, model in enumerate(models):
    ax.bar(
        np.arange(len(columns)) + (i - 1.5) * width,
        [metrics[model].get(c, np.nan) for c in columns],
        width,
        label=model,
    )
ax.axhline(1 / 3, color="black", linestyle=":", linewidth=1)
ax.set_xticks(
    np.arange(len(columns)), ["held-out human triplets", "teacher's triplets", "class levels"]
)
ax.set_ylabel("odd-one-out accuracy")
ax.legend(fontsize=8, ncol=2)
plt.show()
print(
    "neighbours kept by the AligNet student:",
    round(metrics["alignet"]["neighbour_preservation"], 3),
)
print("student:", (root / "alignet" / "alignet" / "student.npz").exists())
print((root / "alignet" / "report.md").read_text().splitlines()[0])
