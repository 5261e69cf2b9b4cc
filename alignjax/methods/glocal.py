r"""gLocal: align a frozen representation with human triplets, keep its local structure.

Muttenthaler et al. (2023) fit a linear transform of a model's frozen features ``X``
(standardised by one global scalar mean and std) on human odd-one-out triplets,

.. math::

    \mathcal L(W, b) = (1 - \alpha)\, \mathcal L_{global} + \alpha\, \mathcal L_{local}
    + \lambda \big\| W - \bar w I \big\|_F^2, \qquad W_0 = 10^{-3} I,

- *global*: odd-one-out cross-entropy of the triplets on ``Z = X W + b`` (dot products,
  temperature 1; :func:`alignjax.losses.glocal_global_loss`);
- *local*: on a batch ``H`` of other images, the row-softmax of the cosine similarities
  of ``H`` (diagonal removed, temperature ``tau``) is the teacher of the same on
  ``H W + b`` (:func:`alignjax.losses.glocal_local_loss`);
- regulariser toward a scaled identity (:func:`alignjax.losses.scaled_identity_penalty`).

The **naive** transform, the paper's baseline, drops the local term and penalises
``lambda ||W||_F`` (:func:`alignjax.losses.frobenius_penalty`): it aligns as well but
is free to move every item's neighbours. Both are an
:class:`~alignjax.models.AffineTransform` trained by :func:`alignjax.training.fit`
(triplet batches of 256, local batches of 1024, SGD with momentum and gradient clipping
1.0 by default) over a small grid of ``lr, lambda, alpha, tau``; the setting with the
best **odd-one-out accuracy on validation triplets** is kept (the paper tunes on THINGS
validation triplets too; it reports the whole grid's trade-off, which
:func:`grid_search` returns). Transforms are ``.npz`` files (``weights, bias, mean,
std``; :class:`~alignjax.models.AffineParams`).

The experiment (:func:`run`) builds a world where the truth is known: rendered images of
a category tree (:class:`~alignjax.data.hierarchy.HierarchyWorld`), a base model trained
on them without the tree above the leaves (SimCLR by default), simulated observers whose
similarity is the tree's generative similarity, and compares base, naive and gLocal
features on held-out triplets (overall and per abstraction level), neighbour
preservation, and few-shot / anomaly detection on categories no transform saw. With
``things_dir`` it runs on real data instead: THINGS human triplets and a real model's
features of the 1,854 THINGS concepts.

References:
  Muttenthaler, Linhardt, Dippel, Vandermeulen, Hermann, Lampinen and Kornblith,
  *Improving neural network representations using human similarity judgments*,
  NeurIPS 2023 (arXiv:2306.04507).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import pathlib
import shutil
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from alignjax import evaluation, losses
from alignjax.config import ConfigError, MeshConfig, checked, configclass
from alignjax.data import readers
from alignjax.data.augmentations import ImageAugmentation
from alignjax.data.hierarchy import LEVELS, HierarchyWorld, Tree
from alignjax.data.observers import LuceObserver, simulate_triplet_dataset
from alignjax.data.triplet_set import TripletSet
from alignjax.methods import encoders, objectives
from alignjax.methods.report import Report
from alignjax.models import AffineParams, AffineTransform, standardize
from alignjax.training import TrainConfig, fit
from alignjax.training.metrics_writer import MetricsWriter

Kind = Literal["glocal", "naive"]
KINDS: tuple[Kind, ...] = ("glocal", "naive")
LossFn = Callable[[AffineTransform, dict[str, jax.Array]], tuple[jax.Array, dict[str, jax.Array]]]


# Fitting.


@configclass
class GlocalSetting:
    """One point of the grid.

    Attributes:
      learning_rate: the optimiser's learning rate.
      penalty_weight: ``lambda`` (scaled-identity penalty; naive: Frobenius norm).
      alpha: weight of the local term (0 for the naive transform).
      temperature: ``tau`` of the local term (unused by the naive transform).
    """

    learning_rate: float = checked(gt=0)
    penalty_weight: float = checked(ge=0)
    alpha: float = checked(0.0, ge=0, le=1)
    temperature: float = checked(1.0, gt=0)

    @property
    def name(self) -> str:
        """A file-name-safe label, e.g. ``lr=0.01_lambda=1_alpha=0.25_tau=0.5``."""
        return (
            f"lr={self.learning_rate:g}_lambda={self.penalty_weight:g}"
            f"_alpha={self.alpha:g}_tau={self.temperature:g}"
        )


@configclass
class GlocalConfig:
    """How gLocal and naive transforms are fitted and which grid is searched.

    Attributes:
      learning_rates, penalty_weights, alphas, temperatures: the gLocal grid (the paper:
        ``lr {1e-2, 1e-3}, lambda {10, 1, 0.1}, alpha {0.25, 0.1}, tau {1, 0.5}``).
      naive_penalty_weights: the naive transform's ``lambda`` grid (with
        ``learning_rates``).
      triplet_batch_size: human triplets per step (gLocal: 256).
      local_batch_size: other images per step for the local term (gLocal: 1024; fewer
        when fewer exist; at least 2, since an image is compared with the others).
      train: the optimisation of every fit (gLocal: SGD with momentum 0.9, gradient
        clipping 1.0, a constant learning rate). Each setting's learning rate replaces
        ``train.learning_rate``; ``train.workdir`` must stay ``None`` (a fit keeps no
        checkpoints: :func:`grid_search` resumes by whole fits). One device by default
        (``mesh.data=1``): a step is small, and its two index arrays (triplets and
        local images) differ in length.
      sigma: ``W_0 = sigma I`` (gLocal: 1e-3).
      use_bias: fit a bias ``b``.
      bias_init: ``b_0`` (the released gLocal code: 1e-3).
    """

    learning_rates: tuple[float, ...] = checked((1e-2, 1e-3), gt=0)
    penalty_weights: tuple[float, ...] = checked((10.0, 1.0, 0.1), ge=0)
    alphas: tuple[float, ...] = checked((0.25, 0.1), gt=0, le=1)
    temperatures: tuple[float, ...] = checked((1.0, 0.5), gt=0)
    naive_penalty_weights: tuple[float, ...] = checked((10.0, 1.0, 0.1), ge=0)
    triplet_batch_size: int = checked(256, ge=1)
    local_batch_size: int = checked(1024, ge=2)
    train: TrainConfig = TrainConfig(
        num_steps=1000,
        schedule="constant",
        optimizer="sgd",
        momentum=0.9,
        clip_norm=1.0,
        mesh=MeshConfig(data=1),
        log_every=50,
    )
    sigma: float = checked(1e-3, gt=0)
    use_bias: bool = True
    bias_init: float = 0.0

    def __post_init__(self):
        for name in (
            "learning_rates",
            "penalty_weights",
            "alphas",
            "temperatures",
            "naive_penalty_weights",
        ):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"={values!r}: must hold at least one value", name)
        if self.train.workdir is not None:
            raise ConfigError(
                f"workdir={self.train.workdir!r} must be None; grid_search writes each "
                "fit's metrics.jsonl beside its transform",
                "train",
            )


def grid(config: GlocalConfig, kind: Kind) -> list[GlocalSetting]:
    """The settings searched for ``kind`` (``"glocal"`` or ``"naive"``).

    >>> len(grid(GlocalConfig(), "glocal")), len(grid(GlocalConfig(), "naive"))
    (24, 6)
    """
    _check_kind(kind)
    if kind == "naive":
        return [
            GlocalSetting(lr, lam)
            for lr, lam in itertools.product(config.learning_rates, config.naive_penalty_weights)
        ]
    return [
        GlocalSetting(lr, lam, alpha, tau)
        for lr, lam, alpha, tau in itertools.product(
            config.learning_rates, config.penalty_weights, config.alphas, config.temperatures
        )
    ]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")


def objective(
    kind: Kind, setting: GlocalSetting, features: jax.Array, local_features: jax.Array | None
) -> LossFn:
    """``loss_fn(transform, batch) -> (loss, metrics)`` of ``kind`` for the trainer.

    The batch holds row indices: ``batch["triplets"] [n, 3]`` into ``features``
    (standardised features of the triplets' items) and, for gLocal,
    ``batch["local"] [B]`` into ``local_features`` (standardised other images).
    gLocal is :func:`alignjax.losses.glocal_objective` with the scaled-identity penalty;
    naive the same with ``alpha = 0``, no local batch and the Frobenius penalty. The
    transform is an :class:`~alignjax.models.AffineTransform`; the metrics are empty
    (the trainer records the loss, the gradient norm and the learning rate).
    """
    _check_kind(kind)
    naive = kind == "naive"
    if not naive and local_features is None:
        raise ValueError("gLocal needs local_features (the local term's other images); got None.")

    def loss_fn(transform, batch):
        loss = losses.glocal_objective(
            transform.weights[...],
            None if transform.bias is None else transform.bias[...],
            features[batch["triplets"]],
            None if naive else local_features[batch["local"]],
            alpha=0.0 if naive else setting.alpha,
            penalty_weight=setting.penalty_weight,
            temperature=setting.temperature,
            penalty="frobenius" if naive else "scaled_identity",
        )
        return loss, {}

    return loss_fn


def _check_inputs(
    features: np.ndarray, triplets: np.ndarray, local_features: np.ndarray | None
) -> None:
    if features.ndim != 2:
        raise ValueError(f"features must be [n_items, d]; got shape {features.shape}.")
    TripletSet(triplets, n_items=len(features))
    if len(triplets) == 0:
        raise ValueError("triplets is empty; gLocal needs training triplets.")
    if local_features is not None and (
        local_features.ndim != 2 or local_features.shape[1] != features.shape[1]
    ):
        raise ValueError(
            f"local_features must be [n_local, {features.shape[1]}] like features; "
            f"got shape {local_features.shape}."
        )
    if local_features is not None and len(local_features) < 2:
        raise ValueError(f"local_features must hold at least 2 images; got {len(local_features)}.")


def fit_transform(
    features,
    triplets,
    local_features,
    setting: GlocalSetting,
    config: GlocalConfig,
    *,
    kind: Kind = "glocal",
    seed: int = 0,
    workdir: str | os.PathLike[str] | None = None,
) -> AffineParams:
    """Fits one gLocal (or naive) transform of raw ``features``.

    The features are standardised by the global mean and std of ``features``; the local
    images by the same statistics, so both live in the space the transform acts on.
    Every step draws ``triplet_batch_size`` triplets with replacement and, for gLocal,
    ``local_batch_size`` distinct local images, from one generator seeded by ``seed``.

    Args:
      features: ``[n_items, d]`` frozen features of the items the triplets index.
      triplets: ``[n, 3]`` training triplets (odd one out last).
      local_features: ``[n_local, d]`` features of other images for the local term
        (ignored, and may be ``None``, for ``kind="naive"``).
      setting: learning rate, ``lambda``, ``alpha``, ``tau``.
      config: batch sizes, optimisation, initialisation.
      kind: ``"glocal"`` or ``"naive"``.
      seed: seed of the batch sampler.
      workdir: where the fit's metrics go (``metrics.jsonl`` every
        ``train.log_every`` steps, and TensorBoard events; a record already there is
        replaced); ``None`` keeps nothing.

    Returns:
      The fitted :class:`~alignjax.models.AffineParams` (``mean``, ``std`` those of
      ``features``).
    """
    _check_kind(kind)
    features = np.asarray(features, np.float32)
    triplets = np.asarray(triplets)
    local = (
        None
        if kind == "naive" or local_features is None
        else np.asarray(local_features, np.float32)
    )
    _check_inputs(features, triplets, local)
    x, mean, std = standardize(features)
    h = None if local is None else standardize(local, mean=mean, std=std)[0]
    n_triplets = len(triplets)
    triplet_batch = min(config.triplet_batch_size, n_triplets)
    local_batch = None if h is None else min(config.local_batch_size, len(h))
    device_triplets = np.asarray(triplets, np.int32)
    train = dataclasses.replace(config.train, learning_rate=setting.learning_rate)

    def batches(rng: np.random.Generator) -> Iterator[dict[str, np.ndarray]]:
        for _ in range(train.num_steps):
            batch = {"triplets": device_triplets[rng.integers(0, n_triplets, triplet_batch)]}
            if local_batch is not None:
                batch["local"] = rng.choice(len(h), local_batch, replace=False).astype(np.int32)
            yield batch

    loss_fn = objective(kind, setting, jnp.asarray(x), None if h is None else jnp.asarray(h))
    transform = AffineTransform(
        features.shape[1], sigma=config.sigma, use_bias=config.use_bias, bias_init=config.bias_init
    )
    # Metrics without checkpoints: a fit is short, and its batches come from a
    # generator whose position a checkpoint could not restore.
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    with MetricsWriter(workdir) as record:
        fit(
            transform,
            loss_fn,
            batches(np.random.default_rng(seed)),
            train,
            callbacks=[record.write],
        )
    return AffineParams.from_transform(transform, mean=mean, std=std)


@dataclasses.dataclass(frozen=True)
class GridResult:
    """One fitted grid point.

    Attributes:
      kind: ``"glocal"`` or ``"naive"``.
      setting: its hyperparameters.
      validation_accuracy: odd-one-out accuracy of the transformed features on the
        validation triplets (dot products).
      path: the transform's ``.npz`` file.
    """

    kind: str
    setting: GlocalSetting
    validation_accuracy: float
    path: str

    def load(self) -> AffineParams:
        return AffineParams.load_npz(self.path)


def grid_search(
    features,
    train_triplets,
    validation_triplets,
    local_features,
    config: GlocalConfig,
    *,
    kind: Kind,
    workdir: str | os.PathLike[str],
    seed: int = 0,
) -> tuple[GridResult, list[GridResult]]:
    """Fits every setting of :func:`grid` and keeps the best on validation triplets.

    Each transform is saved as ``workdir/<kind>/<setting.name>.npz`` and not refitted
    when that file exists, so an interrupted search resumes where it stopped; the fit's
    training record is ``workdir/<kind>/<setting.name>/`` (``metrics.jsonl``: the loss
    curve). Ties in validation accuracy go to the earlier setting of the grid.

    Returns:
      ``(best, all results in grid order)``.
    """
    _check_kind(kind)
    features = np.asarray(features, np.float32)
    validation = np.asarray(validation_triplets)
    TripletSet(validation, n_items=len(features))
    directory = pathlib.Path(workdir) / kind
    results = []
    for setting in grid(config, kind):
        path = directory / f"{setting.name}.npz"
        if not path.exists():
            params = fit_transform(
                features,
                train_triplets,
                local_features,
                setting,
                config,
                kind=kind,
                seed=seed,
                workdir=directory / setting.name,
            )
            partial = path.with_suffix(".partial.npz")
            params.save_npz(partial)
            partial.replace(path)
        params = AffineParams.load_npz(path)
        accuracy = evaluation.odd_one_out_accuracy(
            params.apply(features), validation, kernel="dot"
        ).accuracy
        results.append(GridResult(kind, setting, float(accuracy), str(path)))
    best = max(results, key=lambda r: r.validation_accuracy)
    return best, results


# The experiment.

SPACES = ("base", "naive", "glocal")
THINGS_FEATURES = "minilm_l6_v2_concept_names.npy"
THINGS_TRIPLETS = "triplets_things_test10_sample50k.txt"
THINGS_CATEGORIES = "Categories_final_20200131.tsv"


@dataclasses.dataclass(frozen=True)
class GlocalExperimentConfig:
    """The ``glocal`` experiment.

    Attributes:
      world: the category tree and its rendered images.
      base_objective: how the base model is trained on the world's images; none of
        them sees the tree above the leaves (``"supcon"`` uses leaf labels).
      encoder: the base model's network.
      train: the base model's optimisation.
      objective: batch size and temperature of the base objective.
      augmentation: SimCLR's random views.
      base_kernel: the similarity the base features are judged by (SimCLR and SupCon
        compare cosines; transforms are fitted and judged with dot products, as in gLocal).
      items_per_leaf: rendered items of every leaf category.
      held_out_depth: the last child of every node at ``held_out_depth - 1`` is held
        out with all the leaves under it: no transform sees their items, the
        downstream tasks use only them. ``None``: the tree's height (one leaf per
        parent of leaves).
      local_images: other images (of the non-held-out leaves) for the local term.
      observer_temperature: Luce temperature of the simulated people.
      appearance_weight: weight of the appearance term in the people's similarity
        (see :func:`human_similarity`).
      split: ``"objects"``: train, validation and test triplets use disjoint items;
        ``"random"``: all use every (non-held-out) item.
      n_train_triplets, n_validation_triplets, n_test_triplets: simulated triplets.
      n_level_triplets: test triplets per abstraction level (coarse, boundary, fine).
      fit: the gLocal and naive fits and their grid.
      neighbours: ``k`` of the nearest-neighbour preservation.
      few_shot_shots: examples per class of the few-shot probes.
      few_shot_seeds: repetitions of the few-shot probes.
      anomaly_k: neighbours of the anomaly score.
      things_dir: directory of the THINGS files (see :func:`things_data`); when set,
        they replace the world, the base model and the simulated people.
      things_split: THINGS triplets split into train/validation/test by ``"triplets"``
        or by ``"objects"``.
      things_held_out_categories: THINGS categories held out for the downstream tasks.
      seed: seed of the items, triplets, base model and fits.
    """

    world: HierarchyWorld = HierarchyWorld(image_size=16, scale_decay=0.5, item_scale=0.05)
    base_objective: Literal["simclr", "supcon", "untrained"] = "simclr"
    encoder: encoders.EncoderConfig = encoders.EncoderConfig(
        kind="cnn", widths=(16, 32, 32), embed_dim=64
    )
    train: TrainConfig = TrainConfig(
        num_steps=400, learning_rate=3e-3, warmup_steps=50, log_every=50
    )
    objective: objectives.ObjectiveConfig = objectives.ObjectiveConfig(batch_size=64)
    augmentation: ImageAugmentation = ImageAugmentation()
    base_kernel: Literal["dot", "cosine"] = "cosine"
    items_per_leaf: int = 12
    held_out_depth: int | None = None
    local_images: int = 1024
    observer_temperature: float = 1.0
    appearance_weight: float = 0.5
    split: Literal["objects", "random"] = "objects"
    n_train_triplets: int = 10000
    n_validation_triplets: int = 1000
    n_test_triplets: int = 5000
    n_level_triplets: int = 1000
    fit: GlocalConfig = GlocalConfig(
        learning_rates=(1e-3,),
        penalty_weights=(0.1, 0.01),
        alphas=(0.25, 0.1),
        temperatures=(0.5,),
        naive_penalty_weights=(0.1, 0.01),
        train=TrainConfig(
            num_steps=500,
            schedule="constant",
            optimizer="adam",
            clip_norm=1.0,
            mesh=MeshConfig(data=1),
            log_every=50,
        ),
    )
    neighbours: int = 10
    few_shot_shots: tuple[int, ...] = (1, 5)
    few_shot_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    anomaly_k: int = 5
    things_dir: str | None = None
    things_split: Literal["triplets", "objects"] = "triplets"
    things_held_out_categories: int = 8
    seed: int = 0


@dataclasses.dataclass(frozen=True, eq=False)
class AlignmentData:
    """What the fits and the evaluation need, from the world or from THINGS.

    Attributes:
      name: a short description for the report.
      features: ``[n_items, d]`` base features of every item.
      fit_items: ``[m]`` the items transforms may see (triplets index this list).
      train, validation, test: triplets over ``fit_items`` (odd one out last; with the
        observers' probabilities when simulated).
      levels: test triplets per abstraction level, or ``None``.
      local_features: ``[n_local, d]`` base features of other images (local term).
      downstream_train, downstream_test: items of held-out categories: the pool the
        few shots (and the anomaly detector's normal data) come from, and the test items.
      downstream_train_labels, downstream_test_labels: their categories.
    """

    name: str
    features: np.ndarray
    fit_items: np.ndarray
    train: TripletSet
    validation: TripletSet
    test: TripletSet
    levels: TripletSet | None
    local_features: np.ndarray
    downstream_train: np.ndarray
    downstream_train_labels: np.ndarray
    downstream_test: np.ndarray
    downstream_test_labels: np.ndarray


def held_out_leaves(tree: Tree, depth: int | None = None) -> np.ndarray:
    """Leaves under the last child of every node at ``depth - 1`` (default: the height).

    >>> held_out_leaves(Tree.balanced((2, 2))).tolist()  # the last leaf of each parent
    [3, 6]
    >>> held_out_leaves(Tree.balanced((2, 2)), depth=1).tolist()  # the last subtree
    [5, 6]
    """
    depth = tree.height if depth is None else depth
    if not 1 <= depth <= tree.height:
        raise ValueError(
            f"held_out_depth must lie in [1, {tree.height}] for this tree; got {depth}."
        )
    last_children = [
        tree.children[u][-1]
        for u in np.flatnonzero(tree.depths == depth - 1)
        if len(tree.children[u]) >= 2
    ]
    if not last_children:
        raise ValueError(
            f"no node at depth {depth - 1} has two children; "
            f"nothing can be held out at depth {depth}."
        )
    leaves = tree.leaves
    inside = tree.is_ancestor(np.asarray(last_children)[:, None], leaves[None, :]).any(axis=0)
    return np.sort(leaves[inside])


def human_similarity(
    world: HierarchyWorld, leaves: np.ndarray, appearance_weight: float
) -> np.ndarray:
    """The simulated people's similarity of items of ``leaves``: ``[n, n]``.

    .. math::

        S_{ij} = \\log s_{gen}(l_i, l_j) + w\\, \\cos(a_{l_i} - \\bar a,\\ a_{l_j} - \\bar a),

    the tree's exact generative similarity of the items' leaves (the structure people's
    concepts carry) plus ``w`` times the cosine of the leaves' centred attribute vectors
    (how alike the two categories look: colour, shape, texture, layout). The appearance
    term only reorders pairs the tree leaves tied (e.g. items of three different
    superordinates, where THINGS participants still choose by what they see) as long
    as ``2 w`` stays below the gaps of ``log s_gen`` between levels. Items of one leaf
    are interchangeable, as the classes' images are in the papers.
    """
    leaves = np.asarray(leaves)
    log_s = world.log_generative_similarity(leaves[:, None], leaves[None, :]).astype(np.float64)
    if not appearance_weight:
        return log_s
    attributes = world.node_attributes[world.tree.leaves]
    centred = world.node_attributes[leaves] - attributes.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    return log_s + appearance_weight * (unit @ unit.T)


def level_triplets(
    observer: LuceObserver,
    world: HierarchyWorld,
    item_leaves: np.ndarray,
    pool: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> TripletSet:
    """``n`` observer triplets per abstraction level among the items ``pool``.

    A level's triplet takes an anchor item, a partner whose leaf shares an ancestor with
    the anchor's below the level's split depth ``k`` (:meth:`HierarchyWorld.split_depth`)
    and a third item whose lowest common ancestor with the anchor is at depth ``k``
    exactly, the structure of the world's Levels triplets; the observer then chooses.

    Returns:
      a :class:`TripletSet` over the observer's items with ``levels`` coding
      ``LEVELS`` (coarse, boundary, fine).
    """
    tree = world.tree
    pool = np.asarray(pool)
    pool_leaves = np.asarray(item_leaves)[pool]
    lca_depth = tree.depths[tree.lca(pool_leaves[:, None], pool_leaves[None, :])]
    not_self = ~np.eye(len(pool), dtype=bool)
    indices, codes = [], []
    for code, level in enumerate(LEVELS):
        depth = world.split_depth(level)
        partners = (lca_depth > depth) & not_self
        others = lca_depth == depth
        anchors = np.flatnonzero(partners.any(axis=1) & others.any(axis=1))
        if not anchors.size:
            raise ValueError(
                f"the test items hold no {level!r} triplet; use more items per leaf or triplets."
            )
        for anchor in rng.choice(anchors, n):
            partner = rng.choice(np.flatnonzero(partners[anchor]))
            other = rng.choice(np.flatnonzero(others[anchor]))
            indices.append(pool[[anchor, partner, other]])
            codes.append(code)
    chosen = observer.choose(np.asarray(indices), rng)
    return dataclasses.replace(chosen, levels=np.asarray(codes), level_names=LEVELS)


def _world_sources(config: GlocalExperimentConfig) -> objectives.Sources:
    world = config.world

    def triplets(rng, n):
        return {"inputs": world.sample_triplets(int(rng.integers(2**63)), n)["images"]}

    def items(rng, n):
        sample = world.sample(rng, n)
        return {"inputs": sample["images"], "labels": sample["labels"]}

    return objectives.Sources(triplets=triplets, items=items, augment=config.augmentation)


def _split_per_class(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask choosing half (rounded down) of every class's members."""
    first = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        first[members[: len(members) // 2]] = True
    return first


def synthetic_data(
    config: GlocalExperimentConfig, workdir: str | os.PathLike[str]
) -> AlignmentData:
    """Items of the world, the base model's features and simulated people's triplets.

    The base model trains (or restores from) ``workdir/base``.
    """
    world, tree = config.world, config.world.tree
    if config.items_per_leaf < 4:
        raise ValueError(
            "items_per_leaf must be >= 4 (few-shot pools and level triplets); "
            f"got {config.items_per_leaf}."
        )
    rng = np.random.default_rng(config.seed)
    leaves = np.repeat(tree.leaves, config.items_per_leaf)
    images = world.render_items(rng, leaves)
    held_out = np.isin(leaves, held_out_leaves(tree, config.held_out_depth))
    fit_items = np.flatnonzero(~held_out)
    local_leaves = rng.choice(np.unique(leaves[fit_items]), config.local_images)
    local_images = world.render_items(rng, local_leaves)

    model = objectives.train_encoder(
        config.base_objective,
        _world_sources(config),
        config.encoder,
        images.shape[1:],
        config.train,
        config.objective,
        workdir=pathlib.Path(workdir) / "base",
        seed=config.seed,
    )
    features = encoders.embed(model, images)
    local_features = encoders.embed(model, local_images)

    observer = LuceObserver(
        human_similarity(world, leaves[fit_items], config.appearance_weight),
        temperature=config.observer_temperature,
    )
    dataset = simulate_triplet_dataset(
        observer,
        n_train=config.n_train_triplets,
        n_validation=config.n_validation_triplets,
        n_test=config.n_test_triplets,
        split=config.split,
        seed=config.seed,
    )
    levels = level_triplets(
        observer, world, leaves[fit_items], dataset.test_objects, config.n_level_triplets, rng
    )

    downstream = np.flatnonzero(held_out)
    first = _split_per_class(leaves[downstream], rng)
    return AlignmentData(
        name=(
            f"{tree.num_leaves} leaf categories of a tree of height {tree.height}, "
            f"{config.items_per_leaf} rendered {world.image_size}x{world.image_size} items "
            f"each; base model: {config.base_objective} "
            f"({config.encoder.kind}, {config.train.num_steps} steps)"
        ),
        features=features,
        fit_items=fit_items,
        train=dataset.train,
        validation=dataset.validation,
        test=dataset.test,
        levels=levels,
        local_features=local_features,
        downstream_train=downstream[first],
        downstream_train_labels=leaves[downstream[first]],
        downstream_test=downstream[~first],
        downstream_test_labels=leaves[downstream[~first]],
    )


def read_things_categories(
    path: str | os.PathLike[str], n_items: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The THINGSplus category table: membership ``bool [n_items, n_categories]`` and names.

    ``Categories_final_20200131.tsv``: a header (``Word``, a definition, one column per
    category) and one row of 0/1 memberships (blank for 0) per concept in THINGS
    order; a last row of column totals without a word is skipped.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"THINGS category file {path} does not exist")
    rows = [
        line.rstrip("\r").split("\t")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    # The released table ends with a row of column totals and no word: not a concept.
    header, body = rows[0], [row for row in rows[1:] if row[0].strip()]
    if len(body) != n_items:
        raise ValueError(
            f"{path}: {len(body)} concept rows, expected {n_items} (one per feature row)."
        )
    names = tuple(header[2:])
    membership = np.zeros((n_items, len(names)), dtype=bool)
    for row, fields in enumerate(body):
        values = fields[2 : 2 + len(names)]
        if len(values) != len(names) or any(v.strip() not in ("0", "1", "") for v in values):
            raise ValueError(
                f"{path}: row {row + 1} must hold {len(names)} 0/1 category columns; "
                f"got {values[:5]}..."
            )
        membership[row] = [v.strip() == "1" for v in values]
    return membership, names


def things_data(config: GlocalExperimentConfig) -> AlignmentData:
    """THINGS: a real model's concept features, human triplets, held-out categories.

    Files in ``config.things_dir`` (read with :mod:`alignjax.data.readers`):
    ``minilm_l6_v2_concept_names.npy`` (1854 x 384 features),
    ``triplets_things_test10_sample50k.txt`` (human triplets, odd one out last) and
    ``Categories_final_20200131.tsv`` (53 categories). ``things_held_out_categories``
    categories (among those with enough single-category members for the few-shot
    pools) are held out: triplets touching their concepts are dropped, and their
    single-category concepts are the downstream items. The remaining triplets are split
    70/10/20 into train/validation/test by triplet or, with ``things_split="objects"``,
    by partitioning the concepts 60/20/20 and keeping triplets within one part. The
    local term's images are the training concepts. See the directory's PROVENANCE.md:
    the triplets overlap the data the SPoSE embeddings were fitted on, which does not
    matter here, and no noise ceiling ships with them.
    """
    directory = pathlib.Path(config.things_dir)
    features = readers.read_features(directory / THINGS_FEATURES).astype(np.float32)
    n = len(features)
    triplets = readers.read_triplets(directory / THINGS_TRIPLETS, n_items=n).indices
    membership, _ = read_things_categories(directory / THINGS_CATEGORIES, n)
    rng = np.random.default_rng(config.seed)

    single = membership.sum(axis=1) == 1
    counts = (membership & single[:, None]).sum(axis=0)
    eligible = np.flatnonzero(counts >= 2 * max(max(config.few_shot_shots), config.anomaly_k))
    if (
        len(eligible) < min(2, config.things_held_out_categories)
        or config.things_held_out_categories < 2
    ):
        raise ValueError(
            "things_held_out_categories must be >= 2 and at most the "
            f"{len(eligible)} categories with enough members; "
            f"got {config.things_held_out_categories}."
        )
    held_categories = np.sort(
        rng.choice(eligible, min(config.things_held_out_categories, len(eligible)), replace=False)
    )
    held_out = membership[:, held_categories].any(axis=1)
    fit_items = np.flatnonzero(~held_out)
    position = np.full(n, -1)
    position[fit_items] = np.arange(len(fit_items))
    kept = triplets[np.all(~held_out[triplets], axis=1)]
    local = position[kept]

    if config.things_split == "triplets":
        order = rng.permutation(len(local))
        n_validation, n_test = len(local) // 10, len(local) // 5
        parts = np.split(local[order], [n_validation, n_validation + n_test])
        validation, test, train = parts
        local_items = fit_items
    else:
        part = rng.choice(3, size=len(fit_items), p=[0.6, 0.2, 0.2])
        same = part[local]
        inside = (same[:, 0] == same[:, 1]) & (same[:, 1] == same[:, 2])
        train, validation, test = (local[inside & (same[:, 0] == k)] for k in range(3))
        local_items = fit_items[part == 0]

    downstream = np.flatnonzero(single & held_out)
    labels = np.argmax(membership[downstream], axis=1)
    first = _split_per_class(labels, rng)
    return AlignmentData(
        name=(
            f"THINGS: {n} concepts, all-MiniLM-L6-v2 features of their names "
            f"({features.shape[1]}-d), "
            f"{len(kept)} human triplets without the {len(held_categories)} held-out categories"
        ),
        features=features,
        fit_items=fit_items,
        train=TripletSet(train, n_items=len(fit_items)),
        validation=TripletSet(validation, n_items=len(fit_items)),
        test=TripletSet(test, n_items=len(fit_items)),
        levels=None,
        local_features=features[local_items],
        downstream_train=downstream[first],
        downstream_train_labels=labels[first],
        downstream_test=downstream[~first],
        downstream_test_labels=labels[~first],
    )


def _alignment(space: np.ndarray, triplets: TripletSet, kernel: str) -> evaluation.OddOneOutResult:
    return evaluation.odd_one_out_accuracy(
        space,
        triplets.indices,
        kernel=kernel,
        levels=triplets.levels,
        level_names=triplets.level_names or None,
        reference_probabilities=triplets.probabilities,
    )


def evaluate_space(
    data: AlignmentData, space: np.ndarray, kernel: str, config: GlocalExperimentConfig
) -> dict[str, Any]:
    """Alignment, local structure and downstream transfer of one representation."""
    fit_space = space[data.fit_items]
    metrics: dict[str, Any] = {}
    test = _alignment(fit_space, data.test, kernel)
    metrics["test_accuracy"] = test.accuracy
    metrics["noise_ceiling"] = test.noise_ceiling
    metrics["validation_accuracy"] = _alignment(fit_space, data.validation, kernel).accuracy
    if data.levels is not None:
        levels = _alignment(fit_space, data.levels, kernel)
        for name in data.levels.level_names:
            metrics[f"accuracy/{name}"] = levels.per_level[name]
            metrics[f"noise_ceiling/{name}"] = levels.per_level_noise_ceiling.get(name)
    metrics["neighbour_preservation"] = evaluation.nearest_neighbour_preservation(
        data.features, space, k=config.neighbours
    )
    train_x, test_x = space[data.downstream_train], space[data.downstream_test]
    for shots in config.few_shot_shots:
        metrics[f"few_shot/{shots}"] = evaluation.few_shot_accuracy(
            train_x,
            data.downstream_train_labels,
            test_x,
            data.downstream_test_labels,
            n_shot=shots,
            seeds=config.few_shot_seeds,
        ).mean
    metrics["anomaly_auc"] = evaluation.one_vs_rest_anomaly_auc(
        train_x,
        data.downstream_train_labels,
        test_x,
        data.downstream_test_labels,
        k=config.anomaly_k,
    ).mean_auc
    return metrics


def run(config: GlocalExperimentConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Fit naive and gLocal transforms of the base features, evaluate all three, report.

    Stages (each resumes): the base model (``workdir/base``, synthetic world only), the
    grid of transforms (``workdir/transforms/<kind>/*.npz``), the selected transforms
    (``workdir/naive.npz``, ``workdir/glocal.npz``), then ``report.md`` and the plots.
    """
    workdir = pathlib.Path(workdir)
    data = things_data(config) if config.things_dir else synthetic_data(config, workdir)
    fit_features = data.features[data.fit_items]
    spaces = {"base": data.features}
    kernels = {"base": config.base_kernel}
    grid_rows = []
    for kind in ("naive", "glocal"):
        best, results = grid_search(
            fit_features,
            data.train.indices,
            data.validation.indices,
            data.local_features,
            config.fit,
            kind=kind,
            workdir=workdir / "transforms",
            seed=config.seed,
        )
        params = best.load()
        params.save_npz(workdir / f"{kind}.npz")
        spaces[kind], kernels[kind] = params.apply(data.features), "dot"
        for result in tqdm(
            results,
            desc=f"evaluating the {kind} grid",
            leave=False,
            disable=not config.fit.train.progress_bar,
        ):
            space = result.load().apply(data.features)
            grid_rows.append(
                {
                    "kind": kind,
                    **dataclasses.asdict(result.setting),
                    "validation_accuracy": result.validation_accuracy,
                    "test_accuracy": _alignment(space[data.fit_items], data.test, "dot").accuracy,
                    "neighbour_preservation": evaluation.nearest_neighbour_preservation(
                        data.features, space, k=config.neighbours
                    ),
                    "selected": result is best,
                }
            )
    metrics: dict[str, Any] = {
        name: evaluate_space(data, space, kernels[name], config) for name, space in spaces.items()
    }
    metrics["grid"] = grid_rows
    _write_report(config, data, metrics, workdir)
    (workdir / "grid.json").write_text(json.dumps(grid_rows, indent=2))
    return metrics


def _write_report(
    config: GlocalExperimentConfig,
    data: AlignmentData,
    metrics: dict[str, Any],
    workdir: pathlib.Path,
) -> None:
    report = Report("gLocal: human alignment that keeps local structure")
    by_object = (config.split == "objects" and not config.things_dir) or (
        config.things_split == "objects"
    )
    report.paragraph(
        f"{data.name}. Transforms fitted on {len(data.train)} training triplets "
        f"({len(data.validation)} validation, {len(data.test)} test), "
        f"{'by object' if by_object else 'by triplet'}; "
        "the few-shot and anomaly-detection categories were held out of every fit. "
        "gLocal: global odd-one-out loss + alpha x local neighbourhood loss "
        "+ lambda ||W - mean(diag W) I||^2; "
        "naive: global loss + lambda ||W||_F. Settings chosen by validation odd-one-out accuracy. "
        f"Base features compared by {config.base_kernel}, transformed ones by dot products."
    )
    report.paragraph(
        "The claim (Muttenthaler et al. 2023): gLocal raises alignment about as much as the naive "
        "transform while keeping the base model's nearest neighbours, which the naive transform "
        "breaks, and keeps or improves few-shot and anomaly detection on new categories."
    )
    shots = [f"few_shot/{s}" for s in config.few_shot_shots]
    columns = [
        "space",
        "test_accuracy",
        "noise_ceiling",
        "neighbour_preservation",
        *shots,
        "anomaly_auc",
    ]
    report.table([{"space": name, **metrics[name]} for name in SPACES], columns)
    if data.levels is not None:
        report.heading("Odd-one-out accuracy per abstraction level")
        level_columns = ["space"] + [f"accuracy/{name}" for name in LEVELS]
        rows = [{"space": name, **metrics[name]} for name in SPACES]
        rows.append(
            {
                "space": "noise ceiling",
                **{f"accuracy/{n}": metrics["base"][f"noise_ceiling/{n}"] for n in LEVELS},
            }
        )
        report.table(rows, level_columns)
        report.figure(
            _levels_figure(metrics),
            workdir,
            "accuracy_per_level.png",
            "Odd-one-out accuracy per abstraction level",
        )
    report.figure(
        _trade_off_figure(metrics, config),
        workdir,
        "alignment_vs_local_structure.png",
        "Alignment against local structure: every fitted transform of the grid "
        "and the selected ones",
    )
    report.figure(
        _downstream_figure(metrics, shots),
        workdir,
        "downstream.png",
        "Few-shot accuracy and anomaly detection on held-out categories",
    )
    report.heading("The grid")
    report.table(
        metrics["grid"],
        [
            "kind",
            "learning_rate",
            "penalty_weight",
            "alpha",
            "temperature",
            "validation_accuracy",
            "test_accuracy",
            "neighbour_preservation",
            "selected",
        ],
    )
    report.write(workdir)


COLOURS = {"base": "tab:gray", "naive": "tab:orange", "glocal": "tab:blue"}
LABELS = {"base": "base model", "naive": "naive transform", "glocal": "gLocal"}


def _trade_off_figure(metrics: dict[str, Any], config: GlocalExperimentConfig) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for kind in ("naive", "glocal"):
        rows = [r for r in metrics["grid"] if r["kind"] == kind]
        ax.scatter(
            [r["neighbour_preservation"] for r in rows],
            [r["test_accuracy"] for r in rows],
            s=25,
            alpha=0.35,
            color=COLOURS[kind],
            label=f"{LABELS[kind]} (grid)",
        )
    for name in SPACES:
        ax.scatter(
            metrics[name]["neighbour_preservation"],
            metrics[name]["test_accuracy"],
            s=120,
            color=COLOURS[name],
            edgecolor="black",
            zorder=3,
            label=LABELS[name] + (" (selected)" if name != "base" else ""),
        )
    ceiling = metrics["base"]["noise_ceiling"]
    if ceiling is not None:
        ax.axhline(ceiling, color="black", linestyle="--", linewidth=1, label="noise ceiling")
    ax.axhline(1 / 3, color="black", linestyle=":", linewidth=1, label="chance")
    ax.set_xlabel(f"nearest-neighbour preservation (k = {config.neighbours})")
    ax.set_ylabel("odd-one-out accuracy, test triplets")
    ax.set_title("Alignment vs. local structure")
    ax.legend(fontsize=7, loc="best")
    return fig


def _levels_figure(metrics: dict[str, Any]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    width = 0.25
    x = np.arange(len(LEVELS))
    for i, name in enumerate(SPACES):
        ax.bar(
            x + (i - 1) * width,
            [metrics[name][f"accuracy/{level}"] for level in LEVELS],
            width,
            color=COLOURS[name],
            label=LABELS[name],
        )
    ceilings = [metrics["base"][f"noise_ceiling/{level}"] for level in LEVELS]
    ax.scatter(x, ceilings, marker="_", s=900, color="black", zorder=3, label="noise ceiling")
    ax.axhline(1 / 3, color="black", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(x, LEVELS)
    ax.set_ylabel("odd-one-out accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Accuracy per abstraction level")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def _downstream_figure(metrics: dict[str, Any], shots: Sequence[str]) -> plt.Figure:
    tasks = [*shots, "anomaly_auc"]
    names = [f"{s.split('/')[1]}-shot accuracy" for s in shots] + ["anomaly AUC"]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    width = 0.25
    x = np.arange(len(tasks))
    for i, name in enumerate(SPACES):
        ax.bar(
            x + (i - 1) * width,
            [metrics[name][task] for task in tasks],
            width,
            color=COLOURS[name],
            label=LABELS[name],
        )
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set_title("Held-out categories")
    ax.legend(fontsize=7, loc="lower right")
    return fig
