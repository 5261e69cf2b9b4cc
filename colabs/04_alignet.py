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
# # AligNet: aligning a student across abstraction levels
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/alignjax/alignjax/blob/main/colabs/04_alignet.ipynb)
#
# Muttenthaler et al. (2024) align a vision model with the *multi-level* structure of
# human concepts without ever showing it a human judgement. A teacher model is first
# aligned with people's odd-one-out choices (an affine transform of its features fitted
# by *uncertainty distillation*); it then labels millions of triplets sampled over an
# unlabelled image pool (within a k-means cluster, across a cluster border, between
# clusters); a student is distilled on them. The student improves most where models
# and people differ most: at the **coarse** level (which superordinate category).
#
# This notebook runs the library's whole chain, `alignjax run alignet --preset tiny`,
# on a world where the truth is known (rendered images of a category tree, simulated
# observers), then looks at its artefacts: the images, the sampled triplets, the
# surrogate teacher's fit, and the odd-one-out accuracy per abstraction level of the
# base student, the AligNet student and the *UnAligNet* student (distilled through the
# same chain from the teacher *without* the transform), beside the observers' noise
# ceiling.
#
# The stages and their artefacts are described in
# [docs/concepts.md](https://github.com/alignjax/alignjax/blob/main/docs/concepts.md) and
# [docs/experiments.md](https://github.com/alignjax/alignjax/blob/main/docs/experiments.md).

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
# The experiment's `tiny` preset (16x16 images, 1024 pool images, 100 to 300 steps per
# training stage), so that CI runs this notebook on a CPU in about a minute; shorter
# student training loses the coarse-level gain asserted below. On Colab set PRESET to
# "quick" (32x32 images, 8192 pool images, 1000 distillation steps per student; about
# 6 minutes on a CPU) or "paper"; raise TRIPLETS_SHOWN to 4.
PRESET = "tiny"
OVERRIDES = [
    "teacher_train.progress_bar=false",
    "student_pretrain.progress_bar=false",
    "student_train.progress_bar=false",
]
TRIPLETS_SHOWN = 2  # example triplets per sampling kind
SEED = 0  # of the examples drawn for the pictures

# %%
import pathlib
import tempfile

import jax
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx

from alignjax import models, runner
from alignjax.data import simulated, tfds_builders
from alignjax.methods import alignet_report, alignet_triplets

workdir = pathlib.Path(tempfile.mkdtemp())  # the experiment's work directory
rng = np.random.default_rng(SEED)
print("jax", jax.__version__, "on", jax.devices(), "| work directory", workdir)

# %% [markdown]
# ## The chain
#
# `runner.get_experiment(name).config(preset, overrides)` builds the experiment's config
# with the same `key=value` overrides as `alignjax run alignet --set ...`;
# `runner.run_experiment` runs `alignjax.methods.alignet.run`, whose stages are each one
# function with its artefacts in the work directory:
#
# 1. `data.simulated.simulated_source`: the image source: images (pool, the "humans"
#    objects, evaluation images, held-out categories) and the simulated observers'
#    triplets, stored as TFDS/ArrayRecord data sets;
# 2. `alignet_backbones.teacher` (supervised contrastive on basic-level labels) and
#    `alignet_backbones.base_student` (SimCLR), two small ViTs;
# 3. `alignet_surrogate.uncertainty_distillation`: the teacher's affine transform;
# 4. `alignet_triplets.make_triplets`: k-means clusters of the (transformed) teacher
#    features of the pool, sampled triplets, the teacher's similarities as pseudo-labels;
# 5. `alignet_distillation.distill_student`: the pretrained student fine-tuned on them
#    (once for the transformed teacher, AligNet, once for the raw one, UnAligNet);
# 6. `alignet_evaluation.evaluate_models` (the evaluation suite), then
#    `alignet_report.write_report`.

# %%
config = runner.get_experiment("alignet").config(PRESET, OVERRIDES)
data = config.data
size = data.world.image_size
print(
    f"world: {data.world.tree.num_leaves} leaf categories, {size}x{size} images, "
    f"{data.pool_size} in the pool; observers' Luce temperature {data.observer_temperature}"
)
print(
    f"teacher {config.teacher.variant} (depth {config.teacher.depth}), "
    f"{config.teacher_train.num_steps} steps; student {config.student.variant} (depth "
    f"{config.student.depth}), {config.student_pretrain.num_steps} pretraining + "
    f"{config.student_train.num_steps} distillation steps"
)
sampling, distillation = config.sampling, config.distillation
print(
    f"{sampling.num_triplets} AligNet triplets from {sampling.num_clusters} clusters; "
    f"{distillation.divergence.upper()} loss, tau = {distillation.student_temperature}, "
    f"decay_to_init {config.student_train.decay_to_init}"
)

# %%
metrics = runner.run_experiment("alignet", preset=PRESET, workdir=workdir, overrides=OVERRIDES)
for stage, seconds in metrics["stage_seconds"].items():
    print(f"{stage:>26}: {seconds['wall']:5.1f} s")

# %% [markdown]
# ## The data
#
# The pool's images, one row per superordinate category and sorted by leaf category:
# siblings look alike, cousins less, categories under different superordinates differ in
# colour, shape, texture and layout. Neither student sees these labels.

# %%
source = simulated.simulated_source(data, workdir / "data")  # read back from the run's files
pool = {"image": source.read("pool"), **source.labels["pool"]}
superordinates = np.unique(pool["superordinate"])
per_row = 12
fig, axes = plt.subplots(
    len(superordinates), per_row, figsize=(0.75 * per_row, 0.8 * len(superordinates))
)
for row, superordinate in zip(axes, superordinates):
    members = np.flatnonzero(pool["superordinate"] == superordinate)
    chosen = np.sort(rng.choice(members, per_row, replace=False))
    chosen = chosen[np.argsort(pool["leaf"][chosen], kind="stable")]
    for ax, index in zip(row, chosen):
        ax.imshow(pool["image"][index], interpolation="nearest")
        ax.axis("off")
fig.suptitle("pool images, one row per superordinate category", fontsize=9)
plt.show()

# %% [markdown]
# ### The surrogate teacher
#
# Uncertainty distillation fits `z = x W + b` of the teacher's features so that its
# odd-one-out *distribution* matches the observers' choice probabilities, with the
# temperature and the penalty chosen on validation triplets. The untransformed teacher
# gets its temperature the same way, so the two differ only in the transform. Lower KL
# on held-out triplets is better:

# %%
ud = metrics["uncertainty_distillation"]
for name in ("untransformed", "aligned"):
    print(
        f"{name:>13} teacher: KL(p_human || p_teacher) "
        f"validation {ud[f'{name}/validation_kl']:.3f}, test {ud[f'{name}/test_kl']:.3f}"
    )
print(f"chosen T = {ud['temperature']}, lambda = {ud['penalty']}")
print("purity of the pool's k-means clusters:", metrics["cluster_purity"])
assert ud["aligned/test_kl"] < ud["untransformed/test_kl"]

# %% [markdown]
# ### The AligNet triplets
#
# `make_triplets` stored the triplets as a TFDS/ArrayRecord data set: indices into the
# pool, the transformed teacher's similarities `[s01, s02, s12]` sorted so that the odd
# one out is last (framed in red), and the sampling kind. The titles give each image's
# superordinate category (the true one, which the teacher never saw).

# %%
triplets = tfds_builders.read_triplet_set(
    alignet_triplets.TRIPLETS_NAME, workdir / "alignet" / "tfds", "train"
)
assert triplets.indices.shape == (config.sampling.num_triplets, 3)
assert np.all(triplets.similarities.argmax(axis=1) == 0)  # odd one out last
kinds, tree = triplets.level_names, data.world.tree
fig, axes = plt.subplots(
    len(kinds), 3 * TRIPLETS_SHOWN, figsize=(1.2 * 3 * TRIPLETS_SHOWN, 1.5 * len(kinds))
)
for row, (kind, code) in zip(axes, ((k, i) for i, k in enumerate(kinds))):
    chosen = rng.choice(np.flatnonzero(triplets.levels == code), TRIPLETS_SHOWN, replace=False)
    for t, index in enumerate(chosen):
        for m, item in enumerate(triplets.indices[index]):
            ax = row[3 * t + m]
            ax.imshow(pool["image"][item], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"super {tree.names[pool['superordinate'][item]]}", fontsize=7)
            for spine in ax.spines.values():
                spine.set_color("tab:red" if m == 2 else "lightgray")
                spine.set_linewidth(2.5 if m == 2 else 1)
    row[0].set_ylabel(kind, fontsize=9)
fig.suptitle("AligNet triplets per sampling kind (odd one out last, red)", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Accuracy per abstraction level
#
# Odd-one-out accuracy (cosine similarity) on the observers' held-out Levels triplets:
# `coarse` (two items of one superordinate category, the odd one from another),
# `boundary` (two of one basic category, the odd one from a sibling) and `fine` (two of
# one subordinate category), plus random triplets over held-out objects (THINGS-like,
# "held-out humans").
# The base student is the model before distillation; the black ticks are the noise
# ceilings (the accuracy of the observers' own most probable choice), the dashed line
# chance.

# %%
columns = [f"odd_one_out/levels/{level}" for level in ("coarse", "boundary", "fine")]
columns.append("odd_one_out/humans")
students = ["base", "unalignet", "alignet"]
ceiling = {c: metrics["base"][c.replace("odd_one_out/", "noise_ceiling/")] for c in columns}
fig, ax = plt.subplots(figsize=(8.5, 4))
width = 0.8 / len(students)
x = np.arange(len(columns))
for i, model in enumerate(students):
    ax.bar(
        x + (i - (len(students) - 1) / 2) * width,
        [metrics[model][c] for c in columns],
        width,
        color=alignet_report.MODEL_COLOURS[model],
        label=alignet_report.MODEL_NAMES[model],
    )
ax.hlines(
    [ceiling[c] for c in columns],
    x - 0.42,
    x + 0.42,
    colors="black",
    linewidth=2,
    label="noise ceiling",
)
ax.axhline(1 / 3, color="black", linestyle="--", linewidth=0.8)
ax.set_xticks(x, ["coarse", "boundary", "fine", "held-out humans"])
ax.set_ylim(0.25, 1.0)
ax.set_ylabel("odd-one-out accuracy")
ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
fig.tight_layout()
plt.show()

print(
    f"{'change over the base student':>30} " + " ".join(f"{c.split('/')[-1]:>16}" for c in columns)
)
for model in ("unalignet", "alignet", "teacher_ud"):
    print(
        f"{alignet_report.MODEL_NAMES[model]:>30} "
        + " ".join(f"{metrics[model][c] - metrics['base'][c]:+16.3f}" for c in columns)
    )

# %% [markdown]
# The AligNet student gains most at the coarse level, the level its aligned teacher
# encodes and the raw teacher (trained on basic-level labels) does not; UnAligNet,
# distilled through the same chain from the raw teacher, stays close to the base
# student. The checks below hold at the `tiny` preset; the other presets train longer.

# %%
for model in (*students, "teacher", "teacher_ud"):
    for column in columns:
        assert 0 <= metrics[model][column] <= 1, (model, column)
for column in columns:
    assert 1 / 3 < ceiling[column] <= 1, column
coarse = "odd_one_out/levels/coarse"
assert metrics["alignet"][coarse] > metrics["base"][coarse]
assert metrics["alignet"][coarse] > metrics["unalignet"][coarse]

# %% [markdown]
# ## Agreement with the teacher, and the student as a checkpoint
#
# `make_triplets` also drew test triplets the students never trained on. The fraction of
# them whose odd one out a model picks as the AligNet teacher does (dot products, the
# similarity the students were distilled with) measures how much of the teacher the
# student took in, per sampling kind. The distilled student is written in big_vision's
# `.npz` layout (`alignet/student.npz`), which `load_big_vision_npz` (or big_vision
# itself) reads back.

# %%
agreement = "dot/odd_one_out/alignet_teacher"
for model in students:
    kinds = " ".join(
        f"{kind} {metrics[model][f'{agreement}/{kind}']:.3f}"
        for kind in ("within", "border", "between")
    )
    print(f"{alignet_report.MODEL_NAMES[model]:>18}: {metrics[model][agreement]:.3f} ({kinds})")
assert metrics["alignet"][agreement] > metrics["base"][agreement]

student = models.ViT(
    config.student.variant,
    image_size=size,
    depth=config.student.depth,
    head_dim=config.student.embed_dim,
    rngs=nnx.Rngs(0),
)
models.load_big_vision_npz(student, workdir / "alignet" / "student.npz")
print("AligNet student restored:", student(np.zeros((1, size, size, 3), np.float32)).shape)

# %% [markdown]
# The run's report (`report.md` in the work directory) also has a 2-D PCA of the
# evaluation images in each space, coloured by superordinate category:

# %%
fig, ax = plt.subplots(figsize=(12, 3.5))
ax.imshow(plt.imread(workdir / "embeddings_pca.png"))
ax.axis("off")
plt.show()
print("report:", workdir / "report.md")

# %% [markdown]
# ## Next
#
# The same chain runs on your own images, teacher and human judgments
# (`alignjax fit alignet`, [docs/your_data.md](https://github.com/alignjax/alignjax/blob/main/docs/your_data.md)):
# an image folder or TFDS data set is an image source like the simulated one; the
# same command scales to several devices or hosts
# ([docs/distributed.md](https://github.com/alignjax/alignjax/blob/main/docs/distributed.md)).
# The other notebooks are listed in
# [colabs/README.md](https://github.com/alignjax/alignjax/blob/main/colabs/README.md).
