r"""Generative similarity and abstract geometric concepts (Marjieh et al. 2024, Sec. 3.2).

People learn a Euclidean construction ("a radius", "an equilateral triangle") from five
pictures and then tell new instances from *close* foils that break one constraint
(Hsu, Wu and Goodman 2022, Geoclidean). Marjieh et al. train an encoder on
generative-similarity triplets of concepts sampled from a probabilistic grammar over
Geoclidean programs and find that it supports this few-shot generalisation to new
concepts better than contrastive baselines.

**The method.** :class:`~alignjax.data.geoclidean_grammar.ConceptGrammar` samples
``num_training_concepts`` programs (a concept ``theta`` is a program, drawn uniformly
from that pool); :class:`~alignjax.data.geoclidean.GeoclideanWorld` renders random
instances of them. The generative-similarity encoder learns from Monte Carlo samples
(anchor, positive: two instances of one concept; negative: an instance of an
independently drawn concept), with the paper's softmax triplet loss (``"gensim"``) or,
by default, its many-negatives form (``"gensim_nce"``, each anchor-positive pair
contrasted with the other pairs of a batch; same optimal critic,
:func:`alignjax.losses.generative_similarity_info_nce_loss`). Programs define
distributions with different supports, so ``s_gen`` of two instances is
``[c(x) = c(y)] / pi_c``: the triplets carry exactly the same-or-different-concept
relation, sampled the Monte Carlo way.

**Concepts seen and unseen.** The test concepts are the ten hand-written constructions
of :data:`~alignjax.data.geoclidean.CONCEPTS` (``world.concepts``); the grammar never
samples their structure nor that of their close variants, so they are **unseen**: five
pictures of a new construction, the paper's claim. The same few-shot tasks on the first
ten training concepts (with the grammar's close variants, which are never trained on
either) measure generalisation to new instances of **trained** concepts.

**The baselines** (the paper's), trained on the same training concepts' images:

- ``"simclr"``: InfoNCE between two augmented views of one instance
  (:class:`~alignjax.data.augmentations.ImageAugmentation`: any rotation, mirror flips,
  a mild rescaling and shift and faint noise; similarity transforms preserve every
  Euclidean constraint, so the views keep the concept);
- ``"supcon"``: supervised contrastive learning on the training concepts' labels (the
  same same-or-different information as the method, with another loss; items drawn
  from the prior like the method's, so a batch of 64 over 1000 concepts holds about
  two pairs of one concept);
- ``"untrained"``: the encoder at initialisation.

**Evaluation.** ``num_tasks_per_concept`` few-shot tasks per concept
(:meth:`GeoclideanWorld.sample_task`: ``num_train`` training instances; ``num_test``
in-concept, close-foil and far-foil test instances; one seed shared by every
objective). A test item's score is its mean similarity to the training instances'
embeddings,

.. math:: \text{score}(x) = \frac{1}{K} \sum_{k=1}^{K} \operatorname{sim}(f(x), f(t_k)),

with each objective's own similarity (dot product for the generative-similarity losses,
cosine for the others, as they were trained). Per task and foil type, the two-alternative forced
choice accuracy is the fraction of (in-concept, foil) pairs in which the in-concept
item scores higher, ties counting one half: the ROC-AUC of the scores
(``sklearn.metrics.roc_auc_score``); chance is 0.5. Tasks are averaged per concept,
concepts per split.

References:
  Marjieh, R. et al. (2024). Learning human-aligned representations with contrastive
  learning and generative similarity. arXiv:2405.19420.
  Hsu, J., Wu, J. and Goodman, N. D. (2022). Geoclidean: Few-shot generalization in
  Euclidean geometry. NeurIPS Datasets and Benchmarks.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import numpy as np
import sklearn.metrics
from tqdm.auto import tqdm

from alignjax.config import checked, configclass
from alignjax.data.augmentations import ImageAugmentation
from alignjax.data.geoclidean import GeoclideanWorld
from alignjax.data.geoclidean_grammar import ConceptGrammar
from alignjax.methods import gensim_geoclidean_report, objectives
from alignjax.models import encoders
from alignjax.training import TrainConfig
from alignjax.training.stages import Stages, note, restored

#: Test-item kinds of :meth:`GeoclideanWorld.sample_task`, in order.
KINDS: tuple[str, ...] = ("in_concept", "close", "far")
#: Foil kinds scored against the in-concept items.
FOILS: tuple[str, ...] = ("close", "far")
#: Evaluation splits: the test concepts (never trained on), and training concepts.
SPLITS: tuple[str, ...] = ("unseen", "trained")


@configclass
class GeoclideanConfig:
    """The ``gensim-geoclidean`` experiment.

    Attributes:
      world: the test concepts (``"unseen"``) and the renderer of every concept.
      grammar: the distribution of training concepts.
      num_training_concepts: training concepts sampled from ``grammar``.
      encoder: the CNN embedding.
      train: optimisation of every trained objective.
      objective: batch size and temperatures.
      objectives: the method first, then the baselines.
      augmentation: SimCLR's random views.
      num_tasks_per_concept: few-shot tasks per concept.
      num_train: training instances per task (the shots).
      num_test: test instances per kind (in-concept, close, far) per task.
      example_concept: test concept of the task drawn in the example figure.
      seed: seed of the training concepts and streams; the tasks use ``seed + 1``.
    """

    world: GeoclideanWorld = GeoclideanWorld(image_size=32, line_width=1.0, margin=1.0)
    grammar: ConceptGrammar = ConceptGrammar()
    num_training_concepts: int = checked(1000, ge=2)
    # Four stages: the last sees the whole drawing (constraints relate distant parts).
    encoder: encoders.EncoderConfig = encoders.EncoderConfig(
        kind="cnn", widths=(32, 64, 64, 64), embed_dim=32
    )
    train: TrainConfig = TrainConfig(
        num_steps=350, learning_rate=1e-2, warmup_steps=30, log_every=50
    )
    objective: objectives.ObjectiveConfig = objectives.ObjectiveConfig(batch_size=64)
    objectives: tuple[str, ...] = ("gensim_nce", "simclr", "supcon", "untrained")
    augmentation: ImageAugmentation = ImageAugmentation(
        max_rotation=180.0, scale_range=(0.85, 1.05), max_shift=0.05, flip=True, noise_std=0.02
    )
    num_tasks_per_concept: int = checked(20, ge=1)
    num_train: int = checked(5, ge=1)
    num_test: int = checked(5, ge=1)
    example_concept: str = "perpendicular_bisector"
    seed: int = checked(0, ge=0)

    def __post_init__(self):
        objectives.check_objectives(self.objectives)
        num_test_concepts = len(self.world.concepts)
        if self.num_training_concepts < num_test_concepts:
            raise ValueError(
                f"num_training_concepts must be >= {num_test_concepts} (the trained split tests "
                "as many training concepts as there are test concepts), "
                f"got {self.num_training_concepts}"
            )
        self.world.concept_index(self.example_concept)


def training_world(config: GeoclideanConfig) -> GeoclideanWorld:
    """The world of ``num_training_concepts`` grammar concepts, drawn like ``config.world``.

    The grammar skips the structure of every test concept and of its close variant.
    """
    world = config.world
    exclude = [
        world.program(k, variant)
        for k in range(len(world.concepts))
        for variant in ("concept", "close")
    ]
    concepts = config.grammar.sample_concepts(
        np.random.default_rng(config.seed), config.num_training_concepts, exclude=exclude
    )
    return dataclasses.replace(world, concepts=concepts, weights=None)


def evaluation_worlds(
    config: GeoclideanConfig, trained: GeoclideanWorld
) -> dict[str, GeoclideanWorld]:
    """The world of each split: the test concepts, and as many of the training concepts."""
    count = len(config.world.concepts)
    return {
        "unseen": config.world,
        "trained": dataclasses.replace(trained, concepts=trained.concepts[:count]),
    }


def sources(world: GeoclideanWorld, augmentation: ImageAugmentation) -> objectives.Sources:
    """Triplets, concept-labelled instances and augmented views of ``world``'s concepts."""

    def triplets(rng, n):
        return {"inputs": world.sample_triplets(rng, n)["inputs"]}

    return objectives.Sources(triplets=triplets, items=world.sample, augment=augmentation)


def sample_tasks(
    config: GeoclideanConfig, world: GeoclideanWorld, desc: str = "few-shot tasks"
) -> dict[str, np.ndarray]:
    """The few-shot tasks of every concept of ``world``, the same for every objective.

    Returns:
      ``train_images [C, T, num_train, H, W, ch]``, ``test_images [C, T, 3 * num_test,
      H, W, ch]`` (in-concept, close, far), ``test_kinds [3 * num_test]`` (indices into
      :data:`KINDS`) and ``far_concepts [C, T, num_test]``, for ``C`` concepts and ``T =
      num_tasks_per_concept``.
    """
    train, test, far = [], [], []
    kinds = None
    for concept in tqdm(range(len(world.concepts)), desc=desc, unit="concept"):
        rng = np.random.default_rng([config.seed + 1, concept])
        tasks = [
            world.sample_task(rng, concept, config.num_train, config.num_test)
            for _ in range(config.num_tasks_per_concept)
        ]
        kinds = tasks[0]["test_kinds"]
        train.append(np.stack([t["train_images"] for t in tasks]))
        test.append(np.stack([t["test_images"] for t in tasks]))
        far.append(np.stack([t["far_concepts"] for t in tasks]))
    return {
        "train_images": np.stack(train),
        "test_images": np.stack(test),
        "test_kinds": kinds,
        "far_concepts": np.stack(far),
    }


def task_scores(
    train_embeddings: np.ndarray, test_embeddings: np.ndarray, kernel: str
) -> np.ndarray:
    """Mean similarity of each test item to its task's training items.

    Args:
      train_embeddings: ``[..., K, d]`` embeddings of the ``K`` training instances.
      test_embeddings: ``[..., M, d]`` embeddings of the test items of the same tasks.
      kernel: ``"dot"`` or ``"cosine"``.

    Returns:
      ``[..., M]`` scores ``mean_k sim(test_m, train_k)``.

    >>> train = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> task_scores(train, np.array([[2.0, 2.0]]), "dot")
    array([3.])
    >>> task_scores(train, np.array([[3.0, 0.0]]), "cosine")
    array([0.5])
    """
    if kernel not in ("dot", "cosine"):
        raise ValueError(f"kernel must be 'dot' or 'cosine', got {kernel!r}")
    if kernel == "cosine":
        train_embeddings = train_embeddings / np.linalg.norm(
            train_embeddings, axis=-1, keepdims=True
        )
        test_embeddings = test_embeddings / np.linalg.norm(test_embeddings, axis=-1, keepdims=True)
    return (
        np.einsum("...md,...kd->...m", test_embeddings, train_embeddings)
        / train_embeddings.shape[-2]
    )


def forced_choice_accuracy(scores: np.ndarray, kinds: np.ndarray, foil: str) -> np.ndarray:
    """Two-alternative forced-choice accuracy per task: in-concept items against ``foil`` items.

    The fraction of (in-concept, foil) pairs in which the in-concept item scores higher,
    ties counting one half, i.e. the ROC-AUC of the scores for "in concept".

    Args:
      scores: ``[..., M]`` scores of each task's test items.
      kinds: ``[M]`` kind of each test item (indices into :data:`KINDS`).
      foil: ``"close"`` or ``"far"``.

    Returns:
      ``[...]`` accuracies in ``[0, 1]`` (chance 0.5).

    >>> kinds = np.array([0, 0, 1, 1, 2])
    >>> forced_choice_accuracy(np.array([3.0, 1.0, 2.0, 0.0, 1.0]), kinds, "close")
    array(0.75)
    >>> forced_choice_accuracy(np.array([3.0, 1.0, 2.0, 0.0, 1.0]), kinds, "far")
    array(0.75)
    """
    if foil not in FOILS:
        raise ValueError(f"foil must be one of {FOILS}, got {foil!r}")
    kinds = np.asarray(kinds)
    selected = (kinds == 0) | (kinds == KINDS.index(foil))
    labels = (kinds[selected] == 0).astype(int)
    flat = scores[..., selected].reshape(-1, int(selected.sum()))
    accuracy = [sklearn.metrics.roc_auc_score(labels, row) for row in flat]
    return np.asarray(accuracy).reshape(scores.shape[:-1])


def objective_scores(
    objective: str,
    config: GeoclideanConfig,
    world: GeoclideanWorld,
    tasks: dict[str, dict[str, np.ndarray]],
    workdir: pathlib.Path,
) -> dict[str, np.ndarray]:
    """Scores ``[C, T, 3 * num_test]`` of every split's tasks under ``objective``'s encoder.

    The encoder is trained on ``world``'s concepts (or restored from
    ``workdir/<objective>``); the scores are saved there as ``scores_<split>.npy`` and
    read back on a rerun.
    """
    directory = workdir / objective
    paths = {split: directory / f"scores_{split}.npy" for split in tasks}
    if all(path.exists() for path in paths.values()):
        restored()
        return {split: np.load(path) for split, path in paths.items()}
    item_shape = next(iter(tasks.values()))["train_images"].shape[3:]
    model = objectives.train_encoder(
        objective,
        sources(world, config.augmentation),
        config.encoder,
        item_shape,
        config.train,
        config.objective,
        workdir=directory,
        seed=config.seed,
    )
    kernel = objectives.similarity_kernel(objective, config.objective)
    directory.mkdir(parents=True, exist_ok=True)
    scores = {}
    for split, split_tasks in tasks.items():
        train_images, test_images = split_tasks["train_images"], split_tasks["test_images"]
        note(f"scoring the few-shot tasks of the {split} concepts")
        z_train = encoders.embed(model, train_images.reshape(-1, *item_shape))
        z_test = encoders.embed(model, test_images.reshape(-1, *item_shape))
        scores[split] = task_scores(
            z_train.reshape(*train_images.shape[:3], -1),
            z_test.reshape(*test_images.shape[:3], -1),
            kernel,
        )
        np.save(paths[split], scores[split])
    return scores


def run(config: GeoclideanConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Train every objective on the grammar's concepts, score the few-shot tasks, report."""
    workdir = pathlib.Path(workdir)
    stages = Stages(["tasks", *config.objectives, "report"], workdir)
    with stages("tasks"):
        world = training_world(config)
        worlds = evaluation_worlds(config, world)
        tasks = {
            split: sample_tasks(config, worlds[split], f"few-shot tasks ({split})")
            for split in SPLITS
        }
    metrics: dict[str, Any] = {}
    example_scores = {}
    example = config.world.concept_index(config.example_concept)
    for objective in config.objectives:
        with stages(objective):
            scores = objective_scores(objective, config, world, tasks, workdir)
        example_scores[objective] = scores["unseen"][example, 0]
        metrics[objective] = {}
        for split in SPLITS:
            names = [c.name for c in worlds[split].concepts]
            for foil in FOILS:
                accuracy = forced_choice_accuracy(scores[split], tasks[split]["test_kinds"], foil)
                per_concept = accuracy.mean(axis=1)
                metrics[objective][f"{split}/{foil}"] = float(per_concept.mean())
                metrics[objective][f"{split}/{foil}_se"] = float(
                    per_concept.std(ddof=1) / np.sqrt(per_concept.size)
                )
                metrics[objective][f"{split}/{foil}_per_concept"] = dict(
                    zip(names, per_concept.tolist())
                )
    with stages("report"):
        gensim_geoclidean_report.write_report(
            config, workdir, metrics, tasks["unseen"], example_scores, worlds, foils=FOILS
        )
    return {**metrics, **stages.record()}
