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
# # The losses of alignjax, on toy arrays
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/alignjax/alignjax/blob/main/colabs/01_losses_quickstart.ipynb)
#
# `alignjax.losses` holds pure functions on arrays (they import only jax): arrays in,
# unreduced per-example values out. This notebook plots what they compute, on arrays
# small enough to check by hand:
#
# 1. the odd-one-out choice model: probabilities as a function of similarity
#    differences and temperature, and why ties count as wrong;
# 2. triplet distillation (AligNet): KL against Jensen-Shannon as the student's
#    temperature changes;
# 3. distillation over *every* triplet of a batch equals a loop over them, in
#    O(B^2) rather than O(B^3) memory;
# 4. generative similarity (Marjieh et al.) of a 2-D Gaussian mixture: exact
#    `log s_gen` as a heatmap, its mean of one, and why it is computed in log space;
# 5. gLocal's penalties on a transform matrix;
# 6. `alignjax.training.optimizer.decay_to_init` pulling parameters back toward their
#    initial values.
#
# The conventions (triplets `[s01, s02, s12]`, odd one out last, ties wrong) are
# explained in [docs/concepts.md](https://github.com/alignjax/alignjax/blob/main/docs/concepts.md).

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
# Small sizes so that CI runs this notebook on a CPU in seconds. On Colab raise
# MEMORY_BATCH_SIZES to (64, 128, 256, 512, 1024, 2048), GRID to 400,
# NUM_PAIRS to 1_000_000 and LOOP_BATCH to 20.
LOOP_BATCH = 10  # items in the batch-vs-loop check: C(10, 3) = 120 triplets
MEMORY_BATCH_SIZES = (64, 256, 1024)  # batch sizes whose compiled memory is measured
GRID = 100  # heatmap resolution (GRID x GRID points)
NUM_PAIRS = 100_000  # independent pairs for the mean-of-one check
SEED = 0

# %%
import itertools
import math

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from alignjax import losses
from alignjax.data import GaussianMixtureWorld, generative_similarity
from alignjax.training.optimizer import decay_to_init

rng = np.random.default_rng(SEED)
print("jax", jax.__version__, "on", jax.devices())

# %% [markdown]
# ## 1. The odd-one-out choice model
#
# A triplet's three pair similarities are ordered `s = [s01, s02, s12]`. The pair that
# is most similar leaves the third item as the odd one out, and choices follow the
# Luce (softmax) rule `p(pair k) = softmax(s / T)_k`. Below, `s = [Δ, 0, 0]`: pair 01
# is more similar than the other two pairs by `Δ`, and the probability of choosing it
# is `e^(Δ/T) / (e^(Δ/T) + 2)`. A low temperature makes the choice nearly
# deterministic; a high one makes it nearly random (1/3).

# %%
deltas = np.linspace(-4, 4, 161)
similarities = np.stack([deltas, np.zeros_like(deltas), np.zeros_like(deltas)], axis=-1)

fig, ax = plt.subplots(figsize=(6, 3.5))
for temperature in (0.25, 0.5, 1.0, 2.0, 4.0):
    p = np.asarray(losses.odd_one_out_probs(similarities, temperature))
    closed_form = np.exp(deltas / temperature) / (np.exp(deltas / temperature) + 2)
    np.testing.assert_allclose(p[:, 0], closed_form, rtol=1e-5, atol=1e-7)
    ax.plot(deltas, p[:, 0], label=f"T = {temperature}")
ax.axhline(1 / 3, color="grey", lw=0.8, ls="--")
ax.set_xlabel("Δ = s01 - s02  (with s02 = s12)")
ax.set_ylabel("p(pair 01 most similar)")
ax.set_title("Luce choice: softmax(s / T)")
ax.legend()
plt.show()

# %% [markdown]
# Triplets are stored with the odd one out **last**, so the observed choice is always
# pair 01 and the loss is `-log softmax(s / T)_0`. At `s = 0` the model knows nothing
# and the loss is `log 3`:

# %%
print(
    "cross-entropy at s = 0:",
    float(losses.odd_one_out_cross_entropy(jnp.zeros(3))),
    " log 3 =",
    math.log(3),
)

# %% [markdown]
# ### Ties count as wrong
#
# A prediction is correct only if pair 01 is *strictly* the most similar. `argmax`
# returns the first maximum, so an accuracy computed as `argmax(s) == 0` would score a
# model that cannot tell the items apart (all similarities equal, e.g. a collapsed
# embedding) as perfect. `triplet_accuracy` scores it 0.

# %%
cases = np.array(
    [
        [3.0, 1.0, 2.0],  # pair 01 strictly most similar: correct
        [2.0, 2.0, 1.0],  # tie between 01 and 02: wrong
        [1.0, 1.0, 1.0],  # all equal: wrong
        [1.0, 2.0, 3.0],  # pair 12 most similar, odd one out is item 0: wrong
    ]
)
accuracy = np.asarray(losses.triplet_accuracy(cases))
for s, a in zip(cases, accuracy):
    print(f"s = {s}   triplet_accuracy = {a:.0f}   argmax(s) == 0: {np.argmax(s) == 0}")

collapsed = jnp.ones((1000, 3, 8))  # every item has the same embedding
s = losses.triplet_similarities(collapsed)
print(
    "collapsed embedding: triplet_accuracy =",
    float(losses.triplet_accuracy(s).mean()),
    " argmax accuracy =",
    float(jnp.mean(jnp.argmax(s, -1) == 0)),
)

# %% [markdown]
# ## 2. Triplet distillation: KL against Jensen-Shannon
#
# AligNet distils a teacher's odd-one-out distribution `softmax(t / T_t)` into a student
# `softmax(s / T_s)`. The student's raw dot products are on a different scale from
# the teacher's, and its temperature `T_s` brings them back. Here the student's
# similarities are exactly 100 times the teacher's, so the divergence vanishes at
# `T_s = 100` (the temperature of the released AligNet configuration).
#
# - **KL(teacher ‖ student)** grows without bound when the student is overconfident
#   (small `T_s`: it puts almost no mass on pairs the teacher finds plausible), and
#   tends to `log 3 - H(teacher)` when the student is uniform (large `T_s`).
# - **JS** is symmetric and bounded by `log 2`, so an overconfident student's gradients
#   stay bounded: the reason AligNet's released configuration uses it.

# %%
teacher_similarities = rng.normal(size=(2000, 3)).astype(np.float32) * 2.0
student_similarities = 100.0 * teacher_similarities
student_temperatures = np.logspace(0, 4, 41)


def mean_divergence(divergence, student_temperature):
    return divergence(
        teacher_similarities, student_similarities, student_temperature=student_temperature
    ).mean()


# The losses are pure jax functions: vmap evaluates all temperatures at once.
kl = jax.vmap(lambda t: mean_divergence(losses.triplet_kl_divergence, t))(student_temperatures)
js = jax.vmap(lambda t: mean_divergence(losses.triplet_js_divergence, t))(student_temperatures)
teacher_probs = np.asarray(losses.odd_one_out_probs(teacher_similarities))
uniform_limit = math.log(3) + np.mean(np.sum(teacher_probs * np.log(teacher_probs), -1))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharex=True)
axes[0].semilogx(student_temperatures, kl, color="C0")
axes[0].axhline(uniform_limit, color="grey", lw=0.8, ls=":", label="log 3 - H(teacher)")
axes[0].set_title("KL(teacher ‖ student)")
axes[1].semilogx(student_temperatures, js, color="C1")
axes[1].axhline(math.log(2), color="grey", lw=0.8, ls="--", label="log 2 (the JS bound)")
axes[1].set_title("JS(teacher, student)")
for ax in axes:
    ax.axvline(100, color="k", lw=0.8)
    ax.set_xlabel("student temperature T_s (student similarities = 100 x teacher's)")
    ax.set_ylabel("mean divergence")
    ax.legend()
plt.show()
best = student_temperatures[np.argmin(kl)]
print(
    f"KL is smallest at T_s = {best:.0f}; "
    f"max JS = {float(js.max()):.4f} <= log 2 = {math.log(2):.4f}"
)

# %% [markdown]
# ## 3. Distillation over every triplet of a batch
#
# `batch_triplet_distillation(teacher, student)` averages the divergence over all
# `C(B, 3)` triplets `i < j < k` of a batch of `B` items, computed from the two
# `[B, B]` similarity matrices. First, it is what a loop over the triplets gives:

# %%
teacher = rng.normal(size=(LOOP_BATCH, 8)).astype(np.float32)
student = rng.normal(size=(LOOP_BATCH, 4)).astype(np.float32)

values = []
for triplet in itertools.combinations(range(LOOP_BATCH), 3):
    t = losses.triplet_similarities(teacher[list(triplet)])
    s = losses.triplet_similarities(student[list(triplet)])
    values.append(float(losses.triplet_js_divergence(t, s)))
loop = np.mean(values)
batch = float(losses.batch_triplet_distillation(teacher, student, divergence="js"))
print(f"{len(values)} triplets: loop {loop:.6f}, batch_triplet_distillation {batch:.6f}")
np.testing.assert_allclose(batch, loop, rtol=1e-5)

# %% [markdown]
# The gradients agree too (here the loop is written with an index array, and both
# gradients are compiled with `jax.jit`):

# %%
indices = np.array(list(itertools.combinations(range(LOOP_BATCH), 3)))


def all_triplets_loss(student):
    t = losses.triplet_similarities(teacher[indices])
    s = losses.triplet_similarities(student[indices])
    return losses.triplet_js_divergence(t, s).mean()


grad_loop = jax.jit(jax.grad(all_triplets_loss))(student)
grad_batch = jax.jit(
    jax.grad(lambda z: losses.batch_triplet_distillation(teacher, z, divergence="js"))
)(student)
print("largest gradient difference:", float(jnp.max(jnp.abs(grad_loop - grad_batch))))
np.testing.assert_allclose(grad_batch, grad_loop, rtol=1e-4, atol=1e-6)

# %% [markdown]
# Materialising the triplets' similarities takes `O(B^3)` memory: `3 C(B, 3)` floats
# per model, 2 GiB at `B = 1024` even before autodiff keeps its intermediates.
# `batch_triplet_distillation` visits the triplets in `[b, b, b]` blocks
# (`block_size = 64`) inside a `lax.scan`, so its only large arrays are the `[B, B]`
# similarity matrices. We ask XLA how much scratch memory each version needs, by
# compiling them (nothing is run, so the `O(B^3)` version does not have to fit):


# %%
def cube_loss(teacher, student):
    """The same mean divergence, from [B, B, B] cubes of all ordered triples."""
    b = teacher.shape[0]

    def cube(e):
        m = e @ e.T
        return jnp.stack(jnp.broadcast_arrays(m[:, :, None], m[:, None, :], m[None, :, :]), -1)

    i = jnp.arange(b)
    ordered = (i[:, None, None] < i[None, :, None]) & (i[None, :, None] < i[None, None, :])
    divergence = losses.triplet_js_divergence(cube(teacher), cube(student))
    return jnp.sum(jnp.where(ordered, divergence, 0.0)) / float(math.comb(b, 3))


np.testing.assert_allclose(cube_loss(teacher, student), batch, rtol=1e-5)


def scratch_bytes(loss_fn, b):
    shapes = (jax.ShapeDtypeStruct((b, 8), jnp.float32), jax.ShapeDtypeStruct((b, 4), jnp.float32))
    return jax.jit(loss_fn).lower(*shapes).compile().memory_analysis().temp_size_in_bytes


blocked = [
    scratch_bytes(lambda t, s: losses.batch_triplet_distillation(t, s, divergence="js"), b)
    for b in MEMORY_BATCH_SIZES
]
cubes = [scratch_bytes(cube_loss, b) for b in MEMORY_BATCH_SIZES]
sizes = np.array(MEMORY_BATCH_SIZES, dtype=float)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(sizes, np.array(cubes) / 2**20, "o-", label="[B, B, B] cubes")
ax.loglog(sizes, np.array(blocked) / 2**20, "o-", label="batch_triplet_distillation")
ax.loglog(sizes, 2 * 4 * sizes**2 / 2**20, "k:", label="two [B, B] float32 matrices")
ax.set_xlabel("batch size B")
ax.set_ylabel("XLA scratch memory (MiB)")
ax.legend()
plt.show()
for b, c, d in zip(MEMORY_BATCH_SIZES, cubes, blocked):
    print(f"B = {b:5d}: cubes {c / 2**20:10.1f} MiB, blocked {d / 2**20:7.1f} MiB")

# %% [markdown]
# At small `B` the blocked version's memory is one `[64, 64, 64]` block; beyond that it
# grows like the `[B, B]` matrices, while the cubes grow like `B^3`.
#
# ## 4. Generative similarity of a Gaussian mixture
#
# Marjieh et al. define the similarity of two items by the generative model behind
# them: `s_gen(x, y) = p(x, y | same θ) / (p(x) p(y))`. For a mixture, `θ` is the
# component `k` (shared by all coordinates of an item), and
# `s_gen(x, y) = Σ_k r_k(x) r_k(y) / π_k` with responsibilities `r_k`. A world from
# `alignjax.data` holds the mixture; the exact `log s_gen` comes from
# `generative_similarity.gaussian_mixture_log_generative_similarity`
# (`alignjax.data.generative_similarity`: the worlds' ground truth, not a loss; the losses
# that learn it from triplets are `losses.generative_similarity_softmax_loss` and its
# relatives).

# %%
world = GaussianMixtureWorld(
    num_components=4, dim=2, separation=3.0, stds=1.5, weights=(0.4, 0.3, 0.2, 0.1), seed=SEED
)
means, stds, weights = world.means, world.component_stds, world.prior.astype(np.float32)
print("means:\n", means, "\nweights:", weights)

low, high = means.min(0) - 4, means.max(0) + 4
xs, ys = np.linspace(low[0], high[0], GRID), np.linspace(low[1], high[1], GRID)
grid = np.stack(np.meshgrid(xs, ys), axis=-1).astype(np.float32)  # [GRID, GRID, 2]
anchors = {"at mean 0": means[0], "between means 0 and 1": (means[0] + means[1]) / 2}

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, (name, anchor) in zip(axes, anchors.items()):
    log_s = np.asarray(
        generative_similarity.gaussian_mixture_log_generative_similarity(
            grid, anchor, means, stds, weights
        )
    )
    # log s_gen <= log(1 / min pi); far from every mean it plunges (clipped here).
    limit = np.log(1 / weights.min())
    image = ax.pcolormesh(xs, ys, log_s, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.scatter(*means.T, c="k", marker="x", label="component means")
    ax.scatter(*anchor, c="gold", edgecolors="k", s=80, label="fixed point y")
    ax.set_title(f"log s_gen(x, y), y {name}")
    ax.set_aspect("equal")
    fig.colorbar(image, ax=ax, extend="min")
axes[0].legend(loc="lower left")
plt.show()

# %% [markdown]
# Red is "more likely from the same component than by chance" (`log s_gen > 0`), blue
# "less likely" (`log s_gen < 0`, clipped at the end of the colour bar: far from `y`'s
# component it plunges). Away from the boundaries each point belongs almost surely to
# one component, so `s_gen` is nearly constant over a component's region: `1 / π_k`
# where both points are in component `k` (the rarer the component, the stronger the
# evidence that two points share it), close to 0 where they are in different ones.
# A `y` between two components shares a little with both regions.
#
# Two checks of the definition: `s_gen` is bounded by `max_k 1 / π_k`, and its mean
# over independent pairs drawn from the mixture is exactly 1
# (`E[p(x, y | same θ) / (p(x) p(y))] = ∫∫ p(x, y | same θ) dx dy = 1`):

# %%
x = world.sample(rng, NUM_PAIRS)["inputs"]
y = world.sample(rng, NUM_PAIRS)["inputs"]
s_gen = np.exp(
    np.asarray(
        generative_similarity.gaussian_mixture_log_generative_similarity(
            x, y, means, stds, weights
        ),
        dtype=np.float64,
    )
)
standard_error = s_gen.std() / np.sqrt(NUM_PAIRS)
print(
    f"mean s_gen over {NUM_PAIRS} independent pairs: {s_gen.mean():.4f} "
    f"± {standard_error:.4f} (1 expected)"
)
print(f"max s_gen: {s_gen.max():.3f} <= max 1/pi = {1 / weights.min():.3f}")
assert abs(s_gen.mean() - 1) < 5 * standard_error
assert s_gen.max() <= 1 / weights.min() * (1 + 1e-5)

# %% [markdown]
# ### Why log space
#
# The ratio of densities cannot be formed directly once items have many dimensions: the
# densities underflow. In 256 dimensions each component density of a sample is around
# `e^-360`, far below float32's smallest number (`1e-45`), so the direct formula is `0 / 0`.
# The library works with per-component log-likelihoods and `logsumexp` instead:

# %%
wide = GaussianMixtureWorld(num_components=4, dim=256, separation=4.0, seed=SEED)
x, y = wide.sample(rng, 2)["inputs"]
log_lik_x, log_lik_y = generative_similarity.gaussian_component_log_likelihoods(
    np.stack([x, y]), wide.means, wide.component_stds
)
pi = jnp.asarray(wide.prior, jnp.float32)
print("per-component log-likelihoods of x:", np.asarray(log_lik_x).round(1))
direct = jnp.sum(pi * jnp.exp(log_lik_x) * jnp.exp(log_lik_y)) / (
    jnp.sum(pi * jnp.exp(log_lik_x)) * jnp.sum(pi * jnp.exp(log_lik_y))
)
in_log_space = generative_similarity.mixture_log_generative_similarity(
    log_lik_x, log_lik_y, jnp.log(pi)
)
print("direct ratio of densities:", float(direct))
print("log s_gen in log space:   ", float(in_log_space))

# %% [markdown]
# ## 5. gLocal's penalties on a transform
#
# gLocal learns a linear transform `W` of frozen features and keeps it close to a
# *scaled* identity with `R(W) = ||W - mean(diag W) I||_F^2`: rescaling the whole space
# is free, rotating or stretching it is not. Its "naive" baseline penalises the plain
# Frobenius norm `||W||_F`, which also charges for the scale. Below, `W = a R(θ)`, a
# rotation by `θ` scaled by `a`; for `2 x 2` matrices the closed forms are
# `R(W) = 2 a^2 sin^2 θ` and `||W||_F = a √2` (at 180° the rotation is `-I`, itself a
# scaled identity).


# %%
def scaled_rotation(a, theta):
    c, s = np.cos(theta), np.sin(theta)
    return a * np.array([[c, -s], [s, c]], dtype=np.float32)


angles = np.linspace(0, np.pi, 91)
scales = np.linspace(0, 3, 61)
by_angle = {
    name: [float(fn(scaled_rotation(1.0, t))) for t in angles]
    for name, fn in (
        ("scaled identity", losses.scaled_identity_penalty),
        ("Frobenius", losses.frobenius_penalty),
    )
}
by_scale = {
    name: [float(fn(scaled_rotation(a, 0.0))) for a in scales]
    for name, fn in (
        ("scaled identity", losses.scaled_identity_penalty),
        ("Frobenius", losses.frobenius_penalty),
    )
}
np.testing.assert_allclose(by_angle["scaled identity"], 2 * np.sin(angles) ** 2, atol=1e-5)
np.testing.assert_allclose(by_scale["Frobenius"], scales * np.sqrt(2), rtol=1e-5)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for name in by_angle:
    axes[0].plot(np.degrees(angles), by_angle[name], label=name)
    axes[1].plot(scales, by_scale[name], label=name)
axes[0].set_xlabel("rotation θ (degrees), a = 1")
axes[1].set_xlabel("scale a, θ = 0")
for ax in axes:
    ax.set_ylabel("penalty")
    ax.legend()
plt.show()

# %% [markdown]
# The penalty enters gLocal's objective `(1 - α) global + α local + λ R(W)`; on a toy
# triplet whose odd one out is orthogonal to the other two, `W = 2 I` pays no penalty
# while sharpening the choice (lower global loss than `W = I`):

# %%
triplet_features = jnp.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
for w in (jnp.eye(2), 2 * jnp.eye(2)):
    objective = losses.glocal_objective(
        w, None, triplet_features, None, alpha=0.0, penalty_weight=1.0
    )
    print(
        f"W = {float(w[0, 0]):.0f} I: objective {float(objective):.4f}, "
        f"penalty {float(losses.scaled_identity_penalty(w)):.1f}"
    )

# %% [markdown]
# ## 6. `decay_to_init`: fine-tuning on a leash
#
# AligNet's students decay toward their *pretrained* parameters rather than toward 0:
# the update becomes `u + w (θ - θ_init)`. On the quadratic loss
# `½ Σ_i a_i (θ_i - θ*_i)²` plain gradient descent goes to `θ*`; with the decay it stops
# where the pull of the loss and the pull back balance,
# `θ_i = (a_i θ*_i + w θ_init,i) / (a_i + w)`. Directions the loss cares little about
# (small `a_i`, here the vertical one) stay closest to the pretrained values.

# %%
theta_init = {"w": jnp.array([0.0, 0.0])}  # the "pretrained" parameters
theta_star = jnp.array([2.0, 1.0])  # what the new loss alone would want
curvature = jnp.array([1.0, 0.25])  # a_i: the loss is flatter along the second axis
loss_grad = jax.grad(lambda params: 0.5 * jnp.sum(curvature * (params["w"] - theta_star) ** 2))


def descend(tx, num_steps=250):
    """The path of the parameters under ``tx``, from ``theta_init``: ``[num_steps + 1, 2]``."""

    @jax.jit
    def step(params, state):
        updates, state = tx.update(loss_grad(params), state, params)
        return optax.apply_updates(params, updates), state

    params, state = theta_init, tx.init(theta_init)
    path = [params["w"]]
    for _ in range(num_steps):
        params, state = step(params, state)
        path.append(params["w"])
    return np.array(path)


fig, ax = plt.subplots(figsize=(6, 3.5))
for weight in (0.0, 0.25, 1.0, 3.0):
    path = descend(optax.chain(decay_to_init(weight), optax.scale_by_learning_rate(0.2)))
    expected = (curvature * theta_star + weight * theta_init["w"]) / (curvature + weight)
    np.testing.assert_allclose(path[-1], expected, atol=1e-4)
    ax.plot(*path.T, ".-", markevery=25, label=f"w = {weight}")
    ax.scatter(*expected, marker="o", facecolors="none", edgecolors="k", s=90)
ax.scatter(*theta_init["w"], c="k", marker="s", label="θ_init")
ax.scatter(*theta_star, c="r", marker="*", s=120, label="θ*")
ax.set_aspect("equal")
ax.legend()
ax.set_title("gradient descent with decay_to_init(w)")
plt.show()

# %% [markdown]
# ## Next
#
# The other notebooks (generative similarity in four domains, gLocal, the AligNet chain)
# are listed in [colabs/README.md](https://github.com/alignjax/alignjax/blob/main/colabs/README.md);
# every public function is in the API reference,
# [docs/api.md](https://github.com/alignjax/alignjax/blob/main/docs/api.md).
