r"""Generative similarity and geometric shape regularity (Marjieh et al. 2024, Sec. 3.1).

People find the intruder among six quadrilaterals (five renderings of one reference
shape, one with a displaced vertex) far more reliably when the shape is regular (a
square, a rectangle) than when it is irregular (Sablé-Meyer et al. 2021). Marjieh et
al. reproduce this *regularity effect* with an encoder trained on generative-similarity
triplets from a generative model of quadrilaterals built on geometric properties.

**The method.** :class:`~alignjax.data.quadrilaterals.QuadrilateralWorld` draws a
property class ``theta ~ pi`` (right angles, parallel sides, equal sides: the 11
classes whose prototypes are the reference shapes), then a quadrilateral with exactly
those properties in a random pose. The generative-similarity encoder learns from
Monte Carlo samples of (anchor, positive from the same ``theta``, negative from an
independent ``theta'``), with the paper's softmax triplet loss (``"gensim"``) or, by
default, with its many-negatives form (``"gensim_nce"``: each anchor-positive pair
contrasted with the other pairs of a batch,
:func:`alignjax.losses.generative_similarity_info_nce_loss`), which has the same optimal
critic ``log s_gen`` plus a constant. The triplet loss learns the property classes
slowly here: at learning rate 3e-3 its training accuracy is 0.57 after 600 steps of 64
triplets and 0.67 after 2000, when it shows the regularity effect; at the quick
preset's 1e-2 its embeddings collapse (all alike, the loss at ``log 2``), where
``"gensim_nce"`` after 400 steps already finds the intruders of squares and rectangles
(see ``experiments/README.md``). Within a constrained class (squares) every vertex
displacement leaves the class, so the intruder should stand out; within the unconstrained
class (random quadrilaterals) a displaced vertex gives just another member of the class.

**The baselines** (the paper's):

- ``"simclr"``: InfoNCE between two augmented views of one image. The images are the
  generative model's (``simclr_items="generative"``: the same pictures the method sees,
  without their classes), so the comparison isolates the training signal. The
  augmentations (:class:`~alignjax.data.augmentations.ImageAugmentation`) are those
  that leave a line drawing's geometry intact: any rotation, a mild rescaling and
  shift, mirror flips (the world draws mirrored shapes too, and a mirrored
  quadrilateral has the same properties), and faint pixel noise. Shearing or
  anisotropic scaling would change angles and side ratios, the very properties at
  stake, so they are not used.
- ``"supcon"``: supervised contrastive learning on category labels. The categories are
  the identities of the 11 reference shapes: items are :data:`REFERENCE_SHAPES` in
  random poses (the world's pose sampler and renderer), labelled by shape index
  (``supcon_items="reference_shapes"``). This baseline learns to *recognise* the 11
  shapes, the way an object-recognition network would, and sees exactly the shapes of
  the test, which favours it if anything. Labelling draws of the generative model by
  their property class instead (``supcon_items="property_classes"``) hands SupCon the
  generative model's ``theta``, i.e. the same same-or-different information as the
  method with another loss: an ablation of the loss, not a baseline, so it is not the
  default.
- ``"untrained"``: the encoder at initialisation.

**Evaluation.** Held-out intruder trials (:meth:`QuadrilateralWorld.oddball_trials`,
``num_trials_per_shape`` per reference shape, a seed no training stream uses); the
model picks the image farthest from the mean of the six embeddings
(:func:`alignjax.evaluation.oddball_error_rates`). Embeddings of objectives trained on
cosine similarity (SimCLR, SupCon, and the untrained encoder, judged like them) are
normalised to the unit sphere first, since their norms carry no trained meaning; the
generative-similarity objectives' dot-product embeddings are used as they are. The regularity
effect is summarised by the Spearman correlation of per-shape error with the shape's
rank in the order of the human studies (:data:`SHAPE_NAMES`, from the most to the
least regular), and by the mean error of the three most regular shapes (square,
rectangle, rhombus) against the three least regular ones (hinge, trapezoid, random).
Per-shape human error rates can be given as ``human_error_rates`` (in
:data:`SHAPE_NAMES` order); none are built in, as none were checked against the
publication.

References:
  Marjieh, R. et al. (2024). Learning human-aligned representations with contrastive
  learning and generative similarity. arXiv:2405.19420.
  Sablé-Meyer, M. et al. (2021). Sensitivity to geometric shape regularity in humans
  and baboons: a putative signature of human singularity. PNAS 118(16).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Literal

import numpy as np
from scipy import stats

from alignjax.config import checked, configclass
from alignjax.data.augmentations import ImageAugmentation
from alignjax.data.quadrilaterals import REFERENCE_SHAPES, SHAPE_NAMES, QuadrilateralWorld
from alignjax.evaluation import oddball_choices, oddball_error_rates
from alignjax.methods import gensim_quadrilaterals_report, objectives
from alignjax.models import encoders
from alignjax.training import TrainConfig
from alignjax.training.stages import Stages, note, restored

#: Shapes at each end of the regularity order whose mean errors are compared.
NUM_EXTREME_SHAPES = 3


@configclass
class QuadrilateralsConfig:
    """The ``gensim-quadrilaterals`` experiment.

    Attributes:
      world: the generative model of quadrilaterals and its renderer.
      encoder: the CNN embedding.
      train: optimisation of every trained objective.
      objective: batch size and temperatures.
      objectives: the method first, then the baselines.
      augmentation: SimCLR's random views.
      simclr_items: images SimCLR augments: draws of the generative model
        (``"generative"``) or the reference shapes in random poses.
      supcon_items: SupCon's labelled items: the reference shapes in random poses
        labelled by identity (``"reference_shapes"``), or draws of the generative model
        labelled by property class (an ablation; see the module docstring).
      num_trials_per_shape: held-out intruder trials per reference shape.
      human_error_rates: optional human error rate per shape, in :data:`SHAPE_NAMES`
        order, to correlate with each model's.
      num_example_trials: intruder trials drawn in the example figure.
      seed: seed of the training streams; the held-out trials use ``seed + 1``.
    """

    world: QuadrilateralWorld = QuadrilateralWorld(image_size=32, line_width=1.0, margin=1.0)
    # Four stages: the last sees the whole 32x32 outline, so it can relate sides and
    # angles across the shape (parallel and equal sides are not local features).
    encoder: encoders.EncoderConfig = encoders.EncoderConfig(
        kind="cnn", widths=(32, 64, 64, 64), embed_dim=32
    )
    train: TrainConfig = TrainConfig(
        num_steps=400, learning_rate=1e-2, warmup_steps=30, log_every=50
    )
    objective: objectives.ObjectiveConfig = objectives.ObjectiveConfig(batch_size=64)
    objectives: tuple[str, ...] = ("gensim_nce", "simclr", "supcon", "untrained")
    augmentation: ImageAugmentation = ImageAugmentation(
        max_rotation=180.0, scale_range=(0.8, 1.05), max_shift=0.05, flip=True, noise_std=0.02
    )
    simclr_items: Literal["generative", "reference_shapes"] = "generative"
    supcon_items: Literal["reference_shapes", "property_classes"] = "reference_shapes"
    num_trials_per_shape: int = checked(200, ge=1)
    human_error_rates: tuple[float, ...] | None = checked(None, ge=0, le=1)
    num_example_trials: int = checked(4, ge=0, le=len(SHAPE_NAMES))
    seed: int = checked(0, ge=0)

    def __post_init__(self):
        objectives.check_objectives(self.objectives)
        if self.human_error_rates is not None and len(self.human_error_rates) != len(SHAPE_NAMES):
            raise ValueError(
                f"human_error_rates must hold {len(SHAPE_NAMES)} rates (one per shape, in the "
                f"order {SHAPE_NAMES}), got {len(self.human_error_rates)}"
            )


def reference_items(
    world: QuadrilateralWorld, rng: np.random.Generator, n: int
) -> dict[str, np.ndarray]:
    """``n`` reference shapes in random poses, labelled by shape index.

    Returns:
      ``inputs float32 [n, H, W, C]`` and ``labels int [n]`` (indices into
      :data:`SHAPE_NAMES`).
    """
    labels = rng.integers(0, len(SHAPE_NAMES), n)
    pixels = world.sample_poses(rng, REFERENCE_SHAPES[labels])
    return {"inputs": world.render(pixels), "labels": labels}


def generative_items(
    world: QuadrilateralWorld, rng: np.random.Generator, n: int
) -> dict[str, np.ndarray]:
    """``n`` draws of the generative model, labelled by property class."""
    sample = world.sample(rng, n)
    return {"inputs": sample["inputs"], "labels": sample["labels"]}


def sources(config: QuadrilateralsConfig, objective: str) -> objectives.Sources:
    """The world's triplets, and the items and views ``objective`` trains on."""
    world = config.world
    use_generative = (objective == "simclr" and config.simclr_items == "generative") or (
        objective == "supcon" and config.supcon_items == "property_classes"
    )
    sample_items = generative_items if use_generative else reference_items

    def triplets(rng, n):
        return {"inputs": world.sample_triplets(rng, n)["inputs"]}

    def items(rng, n):
        return sample_items(world, rng, n)

    return objectives.Sources(triplets=triplets, items=items, augment=config.augmentation)


def regularity_summary(per_shape_error: dict[str, float]) -> dict[str, float]:
    """How error grows with irregularity, from per-shape error rates keyed by name.

    Returns:
      ``regularity_spearman`` (and its two-sided ``regularity_spearman_p``): Spearman
      correlation of error with the rank in :data:`SHAPE_NAMES` (0 = square, most
      regular), positive when irregular shapes are harder, as for people (NaN if the
      errors are constant); ``regular_error`` and ``irregular_error``: mean error of
      the :data:`NUM_EXTREME_SHAPES` most and least regular shapes; and
      ``regularity_gap``, their difference (irregular minus regular).

    >>> errors = dict(zip(SHAPE_NAMES, np.linspace(0.0, 0.5, 11)))
    >>> summary = regularity_summary(errors)
    >>> round(summary["regularity_spearman"], 6), round(summary["regularity_gap"], 6)
    (1.0, 0.4)
    """
    missing = [name for name in SHAPE_NAMES if name not in per_shape_error]
    if missing:
        raise ValueError(f"per_shape_error lacks the shapes {missing}")
    errors = np.array([per_shape_error[name] for name in SHAPE_NAMES], dtype=np.float64)
    if np.ptp(errors) == 0:
        rho, p = float("nan"), float("nan")
    else:
        rho, p = stats.spearmanr(np.arange(len(SHAPE_NAMES)), errors)
    regular = float(errors[:NUM_EXTREME_SHAPES].mean())
    irregular = float(errors[-NUM_EXTREME_SHAPES:].mean())
    return {
        "regularity_spearman": float(rho),
        "regularity_spearman_p": float(p),
        "regular_error": regular,
        "irregular_error": irregular,
        "regularity_gap": irregular - regular,
    }


def oddball_trials(config: QuadrilateralsConfig) -> dict[str, np.ndarray]:
    """The held-out intruder trials: ``num_trials_per_shape`` of each shape."""
    return config.world.oddball_trials(
        np.random.default_rng(config.seed + 1), config.num_trials_per_shape * len(SHAPE_NAMES)
    )


def trial_embeddings(
    objective: str,
    config: QuadrilateralsConfig,
    trials: dict[str, np.ndarray],
    workdir: pathlib.Path,
) -> np.ndarray:
    """Embeddings ``[n_trials, 6, d]`` of the held-out trials under ``objective``'s encoder.

    The encoder is trained (or restored from ``workdir/objective``); the embeddings are
    saved as ``workdir/objective/oddball_embeddings.npy`` and read back on a rerun.
    """
    path = workdir / objective / "oddball_embeddings.npy"
    if path.exists():
        restored()
        return np.load(path)
    images = trials["inputs"]
    model = objectives.train_encoder(
        objective,
        sources(config, objective),
        config.encoder,
        images.shape[2:],
        config.train,
        config.objective,
        workdir=workdir / objective,
        seed=config.seed,
    )
    note(f"embedding the {images.shape[0]} trials' {images.shape[0] * images.shape[1]} shapes")
    z = encoders.embed(model, images.reshape(-1, *images.shape[2:])).reshape(*images.shape[:2], -1)
    if objectives.similarity_kernel(objective, config.objective) == "cosine":
        z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, z)
    return z


def run(config: QuadrilateralsConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Train every objective, measure its intruder errors per shape, report."""
    workdir = pathlib.Path(workdir)
    stages = Stages(["trials", *config.objectives, "report"], workdir)
    with stages("trials"):
        trials = oddball_trials(config)
    metrics: dict[str, Any] = {}
    choices = {}
    for objective in config.objectives:
        with stages(objective):
            z = trial_embeddings(objective, config, trials, workdir)
            result = oddball_error_rates(
                z,
                trials["intruder"],
                trials["shape"],
                shape_names=SHAPE_NAMES,
                human_error_rates=config.human_error_rates,
            )
            metrics[objective] = {
                "error_rate": result.error_rate,
                "per_shape_error": result.per_shape_error_rate,
                **regularity_summary(result.per_shape_error_rate),
            }
            if result.human_correlation is not None:
                metrics[objective]["human_correlation"] = result.human_correlation.to_dict()
            choices[objective] = oddball_choices(z)
    with stages("report"):
        gensim_quadrilaterals_report.write_report(config, workdir, metrics, trials, choices)
    return {**metrics, **stages.record()}
