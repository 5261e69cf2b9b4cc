r"""The glocal experiment: what gLocal runs on, from a world where the truth is known or THINGS.

:func:`run` (``alignjax run glocal``) builds an
:class:`~alignjax.methods.glocal.AlignmentData` and runs the chain,
:func:`alignjax.methods.glocal.align`, on it:

- :func:`synthetic_data`: rendered images of a category tree
  (:class:`~alignjax.data.hierarchy.HierarchyWorld`), a base model trained on them
  without the tree above the leaves (SimCLR by default), simulated people whose
  similarity is the tree's generative similarity (:func:`human_similarity`), their
  triplets, Levels test triplets (:func:`alignjax.data.levels.level_triplet_set`) and
  held-out categories for few-shot and anomaly detection
  (:func:`alignjax.data.levels.held_out_leaves`);
- :func:`things_data`: THINGS human triplets and a real model's features of the 1,854
  THINGS concepts, with held-out THINGS categories.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Literal

import numpy as np

from alignjax.config import MeshConfig, checked, configclass
from alignjax.data import levels, readers
from alignjax.data.augmentations import ImageAugmentation
from alignjax.data.hierarchy import HierarchyWorld
from alignjax.data.observers import LuceObserver, simulate_triplet_dataset
from alignjax.data.triplet_set import TripletSet
from alignjax.evaluation.suite import EvaluationConfig, HeldOut
from alignjax.methods import objectives
from alignjax.methods.glocal import ALIGN_STAGES, AlignmentData, align
from alignjax.methods.glocal_fit import GlocalConfig
from alignjax.models import encoders
from alignjax.training import TrainConfig
from alignjax.training.stages import Stages

THINGS_FEATURES = "minilm_l6_v2_concept_names.npy"
THINGS_TRIPLETS = "triplets_things_test10_sample50k.txt"
THINGS_CATEGORIES = "Categories_final_20200131.tsv"


@configclass
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
      items_per_leaf: rendered items of every leaf category.
      held_out_depth: the last child of every node at ``held_out_depth - 1`` is held
        out with all the leaves under it: no transform sees their items, the
        downstream tasks use only them. ``None``: one leaf per parent of leaves.
      local_images: other images (of the non-held-out leaves) for the local term.
      observer_temperature: Luce temperature of the simulated people.
      appearance_weight: weight of the appearance term in the people's similarity
        (see :func:`human_similarity`).
      split: ``"objects"``: train, validation and test triplets use disjoint items;
        ``"random"``: all use every (non-held-out) item.
      n_train_triplets, n_validation_triplets, n_test_triplets: simulated triplets.
      n_level_triplets: test triplets per abstraction level (coarse, boundary, fine).
      fit: the gLocal and naive fits and their grid (the world's sizes, not the
        released THINGS configuration: 500 constant-rate Adam steps, a bias from 0, no
        early stopping).
      evaluation: the evaluation of every space: ``evaluation.kernel`` is the
        similarity the base features are judged by (SimCLR and SupCon compare cosines;
        transforms are fitted and judged with dot products, as in gLocal), then
        neighbours, few-shot probes and anomaly detection.
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
    items_per_leaf: int = checked(12, ge=4)
    held_out_depth: int | None = checked(None, ge=1)
    local_images: int = checked(1024, ge=2)
    observer_temperature: float = checked(1.0, gt=0)
    appearance_weight: float = checked(0.5, ge=0)
    split: Literal["objects", "random"] = "objects"
    n_train_triplets: int = checked(10000, ge=1)
    n_validation_triplets: int = checked(1000, ge=1)
    n_test_triplets: int = checked(5000, ge=1)
    n_level_triplets: int = checked(1000, ge=1)
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
        use_bias=True,
        bias_init=0.0,
        patience=None,
    )
    evaluation: EvaluationConfig = EvaluationConfig(kernel="cosine", few_shot_shots=(1, 5))
    things_dir: str | None = None
    things_split: Literal["triplets", "objects"] = "triplets"
    things_held_out_categories: int = checked(8, ge=2)
    seed: int = checked(0, ge=0)

    def __post_init__(self):
        for name, value, allowed in (
            ("base_objective", self.base_objective, ("simclr", "supcon", "untrained")),
            ("split", self.split, ("objects", "random")),
            ("things_split", self.things_split, ("triplets", "objects")),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def run(config: GlocalExperimentConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Fit naive and gLocal transforms of the base features, evaluate all three, report.

    Stages (each resumes): the base model (``workdir/base``) and its features, or the
    THINGS files, then those of :func:`alignjax.methods.glocal.align`.
    """
    first = "things_data" if config.things_dir else "base_model"
    stages = Stages([first, *ALIGN_STAGES], workdir)
    with stages(first):
        data = things_data(config) if config.things_dir else synthetic_data(config, workdir)
    return align(data, config.fit, config.evaluation, workdir, seed=config.seed, stages=stages)


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


def _world_sources(config: GlocalExperimentConfig) -> objectives.Sources:
    world = config.world

    def triplets(rng, n):
        return {"inputs": world.sample_triplets(rng, n)["inputs"]}

    def items(rng, n):
        sample = world.sample(rng, n)
        return {"inputs": sample["inputs"], "labels": sample["labels"]}

    return objectives.Sources(triplets=triplets, items=items, augment=config.augmentation)


def _on_rows(triplets: TripletSet, rows: np.ndarray, n_items: int) -> TripletSet:
    """``triplets`` over positions in ``rows``, re-indexed to the rows themselves."""
    return dataclasses.replace(triplets, indices=rows[triplets.indices], n_items=n_items)


def synthetic_data(
    config: GlocalExperimentConfig, workdir: str | os.PathLike[str]
) -> AlignmentData:
    """Items of the world, the base model's features and simulated people's triplets.

    The base model trains (or restores from) ``workdir/base``. The people's Levels
    triplets are drawn over the test items.
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
    held_out = np.isin(leaves, levels.held_out_leaves(tree, depth=config.held_out_depth))
    fit_rows = np.flatnonzero(~held_out)
    local_leaves = rng.choice(np.unique(leaves[fit_rows]), config.local_images)
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

    similarity = human_similarity(world, leaves[fit_rows], config.appearance_weight)
    dataset = simulate_triplet_dataset(
        LuceObserver(similarity, temperature=config.observer_temperature),
        n_train=config.n_train_triplets,
        n_validation=config.n_validation_triplets,
        n_test=config.n_test_triplets,
        split=config.split,
        seed=config.seed,
    )
    pool = dataset.test_objects
    level_set = levels.level_triplet_set(
        tree,
        leaves[fit_rows[pool]],
        config.n_level_triplets,
        rng,
        observer=LuceObserver(
            similarity[np.ix_(pool, pool)], temperature=config.observer_temperature
        ),
        depths={level: world.split_depth(level) for level in levels.LEVELS},
    )
    downstream = np.flatnonzero(held_out)
    n = len(leaves)
    return AlignmentData(
        description=(
            f"{tree.num_leaves} leaf categories of a tree of height {tree.height}, "
            f"{config.items_per_leaf} rendered {world.image_size}x{world.image_size} items "
            f"each; base model: {config.base_objective} "
            f"({config.encoder.kind}, {config.train.num_steps} steps). Transforms fitted on "
            f"{len(dataset.train)} simulated training triplets ({len(dataset.validation)} "
            f"validation, {len(dataset.test)} test), split by "
            f"{'object' if config.split == 'objects' else 'triplet'}; the few-shot and "
            "anomaly-detection categories were held out of every fit."
        ),
        features=features,
        fit_rows=fit_rows,
        train=_on_rows(dataset.train, fit_rows, n),
        validation=_on_rows(dataset.validation, fit_rows, n),
        test=_on_rows(dataset.test, fit_rows, n),
        levels=_on_rows(level_set, fit_rows[pool], n),
        local_features=encoders.embed(model, local_images),
        held_out=HeldOut.split(
            downstream,
            leaves[downstream],
            levels.split_per_category(leaves[downstream], rng),
        ),
    )


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
    membership, _ = readers.read_things_categories(directory / THINGS_CATEGORIES, n)
    rng = np.random.default_rng(config.seed)

    single = membership.sum(axis=1) == 1
    counts = (membership & single[:, None]).sum(axis=0)
    evaluation = config.evaluation
    needed = 2 * max(max(evaluation.few_shot_shots), evaluation.anomaly_neighbours)
    eligible = np.flatnonzero(counts >= needed)
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
    fit_rows = np.flatnonzero(~held_out)
    kept = triplets[np.all(~held_out[triplets], axis=1)]

    if config.things_split == "triplets":
        order = rng.permutation(len(kept))
        n_validation, n_test = len(kept) // 10, len(kept) // 5
        validation, test, train = np.split(kept[order], [n_validation, n_validation + n_test])
        local_rows = fit_rows
    else:
        part = np.full(n, -1)
        part[fit_rows] = rng.choice(3, size=len(fit_rows), p=[0.6, 0.2, 0.2])
        same = part[kept]
        inside = (same[:, 0] == same[:, 1]) & (same[:, 1] == same[:, 2])
        train, validation, test = (kept[inside & (same[:, 0] == k)] for k in range(3))
        local_rows = np.flatnonzero(part == 0)

    downstream = np.flatnonzero(single & held_out)
    labels = np.argmax(membership[downstream], axis=1)
    return AlignmentData(
        description=(
            f"THINGS: {n} concepts, all-MiniLM-L6-v2 features of their names "
            f"({features.shape[1]}-d), {len(kept)} human triplets without the "
            f"{len(held_categories)} held-out categories. Transforms fitted on {len(train)} "
            f"training triplets ({len(validation)} validation, {len(test)} test), split by "
            f"{'triplet' if config.things_split == 'triplets' else 'object'}; the few-shot "
            "and anomaly-detection categories were held out of every fit."
        ),
        features=features,
        fit_rows=fit_rows,
        train=TripletSet(train, n_items=n),
        validation=TripletSet(validation, n_items=n),
        test=TripletSet(test, n_items=n),
        levels=None,
        local_features=features[local_rows],
        held_out=HeldOut.split(downstream, labels, levels.split_per_category(labels, rng)),
    )
