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
# # Generative similarity: a Gaussian mixture and the quadrilaterals
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/alignjax/alignjax/blob/main/colabs/02_generative_similarity.ipynb)
#
# Marjieh et al. call two items similar when they are likely to come from the same
# latent cause of a generative model `θ ~ p(θ)`, `x ~ p(x | θ)`:
# `s_gen(x, y) = p(x, y | same θ) / (p(x) p(y))`. An encoder trained with the softmax
# triplet loss on *generative-similarity triplets* (anchor and positive from one `θ`,
# the negative from an independent `θ'`) learns `f(x) · f(y) ≈ log s_gen(x, y) + c(x)`.
# This notebook runs the library's two experiments on it, at a size a CPU trains in
# seconds:
#
# 1. a **Gaussian mixture** (`experiments/gensim_gaussian.py`): the exact `s_gen` as a
#    matrix, then the similarity an encoder learns from triplets against it;
# 2. the **quadrilaterals** of the shape-regularity studies
#    (`experiments/gensim_quadrilaterals.py`): the 11 reference shapes, a generative
#    model of their geometric properties and its exact `s_gen`, an encoder trained on
#    its triplets, and its error in the oddball (intruder) task for each shape, against
#    an untrained encoder.
#
# The math is in [docs/concepts.md](https://github.com/alignjax/alignjax/blob/main/docs/concepts.md);
# the experiments' full runs (`alignjax run gensim-gaussian`, `alignjax run gensim-quadrilaterals`)
# are described in [docs/experiments.md](https://github.com/alignjax/alignjax/blob/main/docs/experiments.md).

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
# Small sizes so that CI runs this notebook on a CPU in well under a minute. On Colab
# set GAUSSIAN_OVERRIDES and QUADRILATERAL_OVERRIDES to ["train.progress_bar=false"],
# which runs the experiments' quick presets (2000 and 400 training steps, with the
# SimCLR and SupCon baselines besides the untrained encoder), and in addition
# QUADRILATERAL_PRESET to "paper" (2000 steps, the triplet loss too, 1000 trials per
# shape) for the regularity plot; raise MATRIX_POINTS to 400 and NUM_PAIRS to 20_000.
GAUSSIAN_PRESET = "quick"
GAUSSIAN_OVERRIDES = [
    "train.num_steps=600",
    "objective.batch_size=128",
    "objectives=gensim,untrained",
    "train.progress_bar=false",
]
QUADRILATERAL_PRESET = "quick"
QUADRILATERAL_OVERRIDES = [
    "world.image_size=24",
    "encoder.widths=8,16,16",
    "train.num_steps=150",
    "train.warmup_steps=15",
    "objective.batch_size=32",
    "objectives=gensim_nce,untrained",
    "num_trials_per_shape=100",
    "train.progress_bar=false",
]
MATRIX_POINTS = 200  # items in the s_gen matrices
NUM_PAIRS = 5000  # independent pairs for the mean-of-one checks and the correlations
SEED = 0

# %%
import pathlib
import tempfile

import jax
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from alignjax import runner
from alignjax.data import figures
from alignjax.data.quadrilaterals import REFERENCE_SHAPES, SHAPE_NAMES, classify, intruders
from alignjax.evaluation import oddball_choices, oddball_error_rates
from alignjax.methods import (
    gensim_gaussian,
    gensim_quadrilaterals,
    gensim_quadrilaterals_report,
    objectives,
)
from alignjax.models import encoders

workdir = pathlib.Path(tempfile.mkdtemp())  # checkpoints, embeddings and figures go here
rng = np.random.default_rng(SEED)
print("jax", jax.__version__, "on", jax.devices(), "| work directory", workdir)

# %% [markdown]
# ## 1. A Gaussian mixture
#
# The experiment's config is a frozen dataclass; `runner.get_experiment(name).config(preset,
# overrides)` builds it with the same `key=value` overrides as `alignjax run ... --set`.
# Its world is a mixture of isotropic Gaussians whose components overlap, so `s_gen`
# varies smoothly rather than being 0 or `1 / π_k`.

# %%
gaussian = runner.get_experiment("gensim-gaussian").config(GAUSSIAN_PRESET, GAUSSIAN_OVERRIDES)
world = gaussian.world
print(world)
print(
    "training:",
    gaussian.train.num_steps,
    "steps of",
    gaussian.objective.batch_size,
    "triplets; objectives:",
    gaussian.objectives,
)

# %% [markdown]
# ### The exact `s_gen`, as a matrix
#
# For a mixture `s_gen(x, y) = Σ_k r_k(x) r_k(y) / π_k` (responsibilities `r_k`),
# computed in log space by `world.log_generative_similarity`. Sorting items by the
# component that drew them shows blocks: pairs drawn from one component are likely to
# share it (`s_gen` up to `1 / π_k = 8`), pairs from distant components are not
# (`s_gen ≈ 0`), and overlapping components share part of their mass.

# %%
items = world.sample(rng, MATRIX_POINTS)
points, components = items["inputs"], items["labels"]
order = np.argsort(components, kind="stable")
points, components = points[order], components[order]
exact_matrix = world.log_generative_similarity(points[:, None, :], points[None, :, :])
boundaries = np.flatnonzero(np.diff(components)) + 0.5

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
axes[0].scatter(*points.T, c=components, cmap="tab10", s=10)
axes[0].scatter(*world.means.T, c="k", marker="x", s=60, label="means")
axes[0].set_aspect("equal")
axes[0].set_title(f"{MATRIX_POINTS} samples, coloured by component")
axes[0].legend()
limit = np.log(1 / world.prior.min())  # the largest possible log s_gen
image = axes[1].imshow(np.exp(exact_matrix), cmap="viridis", vmin=0, vmax=np.exp(limit))
for b in boundaries:
    axes[1].axhline(b, color="w", lw=0.4)
    axes[1].axvline(b, color="w", lw=0.4)
axes[1].set_title("exact s_gen(x_i, x_j), sorted by component")
fig.colorbar(image, ax=axes[1])
fig.tight_layout()
plt.show()

# %% [markdown]
# Three properties that follow from the definition, checked here: `s_gen` is
# symmetric, bounded by `max_k 1 / π_k`, and its mean over independent pairs is exactly
# 1 (`E[p(x, y | same θ) / (p(x) p(y))] = ∫∫ p(x, y | same θ) = 1`).

# %%
x = world.sample(rng, NUM_PAIRS)["inputs"]
y = world.sample(rng, NUM_PAIRS)["inputs"]
exact = world.log_generative_similarity(x, y)  # held-out pairs, used again below
s_gen = np.exp(exact.astype(np.float64))
standard_error = s_gen.std() / np.sqrt(NUM_PAIRS)
print(f"mean s_gen over {NUM_PAIRS} independent pairs: {s_gen.mean():.3f} ± {standard_error:.3f}")
np.testing.assert_allclose(exact_matrix, exact_matrix.T, atol=1e-4)
assert np.all(np.isfinite(exact_matrix)) and exact_matrix.max() <= limit + 1e-4
assert abs(s_gen.mean() - 1) < 5 * standard_error

# %% [markdown]
# ### Learning `s_gen` from triplets
#
# `objectives.train_encoder` trains the experiment's MLP with an objective on the
# world's samplers (`gensim_gaussian.sources`): `"gensim"` is the softmax triplet loss on
# generative-similarity triplets; `"untrained"` is the same encoder at initialisation
# (the experiment's other baselines, SimCLR and supervised contrastive learning, run
# with the quick preset). Each encoder is judged by the similarity it was trained on
# (`objectives.similarity_kernel`: dot products for the triplet loss, cosine otherwise)
# on the held-out pairs.

# %%
learned, learned_matrix, spearman = {}, {}, {}
for objective in gaussian.objectives:
    model = objectives.train_encoder(
        objective,
        gensim_gaussian.sources(gaussian),
        gaussian.encoder,
        (world.dim,),
        gaussian.train,
        gaussian.objective,
        workdir=workdir / "gaussian" / objective,
        seed=gaussian.seed,
    )
    kernel = objectives.similarity_kernel(objective, gaussian.objective)
    fx, fy = encoders.embed(model, x), encoders.embed(model, y)
    learned[objective] = objectives.pair_similarity(fx, fy, kernel)
    z = encoders.embed(model, points)
    if kernel == "cosine":
        z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    learned_matrix[objective] = z @ z.T
    spearman[objective] = stats.spearmanr(learned[objective], exact)[0]
    rho = spearman[objective]
    print(f"{objective:>10}: Spearman(learned similarity, exact log s_gen) = {rho:.3f}")

# %%
names = list(gaussian.objectives)
fig, axes = plt.subplots(2, len(names) + 1, figsize=(3.6 * (len(names) + 1), 7))
axes[0, 0].imshow(exact_matrix, cmap="viridis", vmin=-3 * limit, vmax=limit)
axes[0, 0].set_title("exact log s_gen (clipped below)")
axes[1, 0].axis("off")
for column, name in enumerate(names, start=1):
    low, high = np.percentile(learned_matrix[name], [2, 98])  # a few self-pairs stand out
    axes[0, column].imshow(learned_matrix[name], cmap="viridis", vmin=low, vmax=high)
    axes[0, column].set_title(f"{name}: learned similarity")
    axes[1, column].scatter(exact, learned[name], s=2, alpha=0.3)
    axes[1, column].set_xlabel("exact log s_gen(x, y)")
    axes[1, column].set_title(f"{name}: Spearman ρ = {spearman[name]:.2f}")
axes[1, 1].set_ylabel("learned similarity")
for ax in axes[0]:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# The triplet-trained encoder reproduces the block structure of `log s_gen`, and its
# similarity rises monotonically with `log s_gen` on pairs it never saw. The untrained
# encoder maps nearby points to nearby embeddings, so its similarity correlates with
# `s_gen` too, but it saturates: it cannot tell pairs within one component from pairs
# across two neighbouring ones.

# %%
for name in names:
    assert np.all(np.isfinite(learned[name])) and learned[name].shape == (NUM_PAIRS,)
assert spearman["gensim"] > spearman["untrained"] + 0.05

# %% [markdown]
# ## 2. Quadrilaterals and shape regularity
#
# People find the intruder among six quadrilaterals (five renderings of one reference
# shape, one with a displaced vertex) far more reliably when the shape is regular (a
# square, a rectangle) than irregular (Sablé-Meyer et al. 2021). The world's generative
# model draws a *property class* `θ` (right angles, parallel sides, equal sides: the 11
# classes whose prototypes are the reference shapes), then a quadrilateral with exactly
# those properties in a random pose. The library's picture of it
# (`alignjax.data.figures`): each reference shape, its four intruders and samples of its
# class, then an oddball trial.

# %%
quadrilaterals = runner.get_experiment("gensim-quadrilaterals").config(
    QUADRILATERAL_PRESET, QUADRILATERAL_OVERRIDES
)
shapes_world = quadrilaterals.world
figures.quadrilaterals_figure(workdir / "quadrilaterals.png", seed=SEED, image_size=32)
fig, ax = plt.subplots(figsize=(8, 11))
ax.imshow(plt.imread(workdir / "quadrilaterals.png"))
ax.axis("off")
plt.show()

# %% [markdown]
# ### The exact `s_gen` of the quadrilaterals
#
# The classes have supports of different dimensions (all squares are one shape up to
# pose, random quadrilaterals vary along four axes), so a sampled shape's class is
# read off its properties (`classify`) and `s_gen(x, y) = [c(x) = c(y)] / π_{c(x)}`:
# block diagonal, rare classes weighing more. Shapes outside every class, like most
# intruders (a square with a moved vertex is a right trapezoid), have no density under
# the model: their `s_gen` is undefined (`nan`).

# %%
sample = shapes_world.sample(rng, MATRIX_POINTS)
order = np.argsort(sample["labels"], kind="stable")
vertices, labels = sample["vertices"][order], sample["labels"][order]
classes = classify(vertices)  # read off the shapes' angles and sides, not their labels
log_s_shapes = shapes_world.class_log_generative_similarity(classes[:, None], classes[None, :])

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
axes[0].bar(range(len(SHAPE_NAMES)), shapes_world.prior)
axes[0].set_xticks(
    range(len(SHAPE_NAMES)), [s.replace("_", " ") for s in SHAPE_NAMES], rotation=40, ha="right"
)
axes[0].set_ylabel("prior π of the class")
axes[0].set_title("the property grammar's prior")
image = axes[1].imshow(np.exp(log_s_shapes), cmap="viridis")
axes[1].set_title(f"s_gen of {MATRIX_POINTS} samples, sorted by class")
fig.colorbar(image, ax=axes[1])
fig.tight_layout()
plt.show()

outside = classify(intruders(REFERENCE_SHAPES, shapes_world.intruder_fraction)) < 0
print("intruders outside every class, per reference shape (4 directions each):")
print({name: int(n) for name, n in zip(SHAPE_NAMES, outside.sum(axis=1))})

# %% [markdown]
# Checks: the classifier recovers the class of every sampled shape (in any pose, in
# pixel coordinates), the matrix is `1 / π` on the diagonal blocks and 0 elsewhere, and
# the mean over independent pairs is again 1 (`Σ_k π_k² / π_k = 1`).

# %%
assert np.array_equal(classes, labels)
same_class = labels[:, None] == labels[None, :]
expected = np.where(same_class, 1 / shapes_world.prior[labels][:, None], 0.0)
np.testing.assert_allclose(np.exp(log_s_shapes), expected, rtol=1e-5)
a, b = shapes_world.sample(rng, NUM_PAIRS), shapes_world.sample(rng, NUM_PAIRS)
pair_s = np.exp(shapes_world.log_generative_similarity(a["vertices"], b["vertices"]))
pair_error = pair_s.std() / np.sqrt(NUM_PAIRS)
print(f"mean s_gen over {NUM_PAIRS} independent pairs: {pair_s.mean():.3f} ± {pair_error:.3f}")
assert abs(pair_s.mean() - 1) < 5 * pair_error

# %% [markdown]
# ### Training on triplets, testing on intruders
#
# `gensim_quadrilaterals.trial_embeddings` trains an objective's CNN on the world's
# triplets (or, for `"untrained"`, only initialises it) and embeds held-out intruder
# trials. Here the objective is `"gensim_nce"`: the same Monte Carlo samples as the
# triplet loss, but each anchor-positive pair is contrasted with every other pair of the
# batch (InfoNCE), which has the same optimum (`log s_gen` plus a constant) and learns the
# property classes much faster than one negative per triplet. The held-out trials,
# `num_trials_per_shape` per reference shape, come from a seed no training stream uses.
# The model chooses the image farthest from the mean of the six embeddings
# (`oddball_choices`); `oddball_error_rates` counts its errors per shape (chance: 5/6).

# %%
trials = gensim_quadrilaterals.oddball_trials(quadrilaterals)
n_trials = quadrilaterals.num_trials_per_shape * len(SHAPE_NAMES)
results, choices, summaries = {}, {}, {}
for objective in quadrilaterals.objectives:
    z = gensim_quadrilaterals.trial_embeddings(
        objective, quadrilaterals, trials, workdir / "quadrilaterals"
    )
    assert z.shape[:2] == (n_trials, 6) and np.all(np.isfinite(z))
    results[objective] = oddball_error_rates(
        z, trials["intruder"], trials["shape"], shape_names=SHAPE_NAMES
    )
    choices[objective] = oddball_choices(z)
    summaries[objective] = gensim_quadrilaterals.regularity_summary(
        results[objective].per_shape_error_rate
    )
    print(
        f"{objective:>10}: error {results[objective].error_rate:.3f}; "
        + ", ".join(f"{k} {v:.3f}" for k, v in summaries[objective].items())
    )

# %% [markdown]
# A few held-out trials, from the most to the least regular shape
# (`gensim_quadrilaterals_report.example_trials_figure`, the picture of the experiment's
# report): the intruder is framed in green, and each image lists the objectives that
# chose it.

# %%
gensim_quadrilaterals_report.example_trials_figure(quadrilaterals, trials, choices)
plt.show()

# %% [markdown]
# ### The shape-regularity plot
#
# Error per reference shape, from the most to the least regular, with binomial standard
# errors. The claim of Marjieh et al.: with generative-similarity training the error is
# lowest for the regular shapes and rises with irregularity (a positive Spearman ρ of
# error against the rank), as for people. **At this notebook's CI size the encoder
# trains for seconds**: its errors stay close to chance and the differences between
# shapes are of the order of the error bars, so the picture shows the measurement, not
# evidence for the effect. The experiment's presets (see the parameters cell) train
# longer and test on more trials.

# %%
metrics = {
    name: {"per_shape_error": results[name].per_shape_error_rate, **summaries[name]}
    for name in results
}
gensim_quadrilaterals_report.per_shape_figure(quadrilaterals, metrics)
plt.show()

for name, result in results.items():
    assert result.per_shape_n_trials == {
        s: quadrilaterals.num_trials_per_shape for s in SHAPE_NAMES
    }
    assert all(0 <= e <= 1 for e in result.per_shape_error_rate.values())
    assert (
        0 <= summaries[name]["regular_error"] <= 1 and 0 <= summaries[name]["irregular_error"] <= 1
    )

# %% [markdown]
# ## Next
#
# The whole experiments, with the baselines and their reports: `alignjax run
# gensim-gaussian` and `alignjax run gensim-quadrilaterals` (presets in
# [docs/experiments.md](https://github.com/alignjax/alignjax/blob/main/docs/experiments.md)).
# gLocal and AligNet, which align a model with people's triplets rather than with a
# generative model, are the next notebooks, listed in
# [colabs/README.md](https://github.com/alignjax/alignjax/blob/main/colabs/README.md).
