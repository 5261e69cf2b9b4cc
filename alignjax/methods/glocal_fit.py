r"""How gLocal and naive transforms are fitted: settings, config, grid, one fit, the search.

A gLocal transform (Muttenthaler et al. 2023) is an
:class:`~alignjax.models.AffineTransform` ``z = ((x - mu) / sigma) W + b`` of frozen
features, ``W_0 = 10^{-3} I``, trained by :func:`alignjax.training.fit` on

.. math::

    (1 - \alpha)\, \mathcal L_{global} + \alpha\, \mathcal L_{local}
    + \lambda \big\| W - \bar w I \big\|_F^2

(:func:`objective`; the naive transform: ``alpha = 0`` and ``lambda ||W||_F``).
:func:`fit_transform` fits one setting (:class:`GlocalSetting`) with the optimisation of
:class:`GlocalConfig`, by default the released code's; :func:`grid_search` fits every
setting of :func:`grid` and keeps the best on validation triplets.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import pathlib
import shutil
from collections.abc import Callable, Iterator
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from alignjax import losses
from alignjax.config import ConfigError, MeshConfig, checked, configclass
from alignjax.data.triplet_set import TripletSet
from alignjax.evaluation.odd_one_out import odd_one_out_accuracy
from alignjax.models import AffineParams, AffineTransform, standardize
from alignjax.training import TrainConfig, fit
from alignjax.training.metrics_writer import MetricsWriter
from alignjax.training.stages import part, restored

Kind = Literal["glocal", "naive"]
KINDS: tuple[Kind, ...] = ("glocal", "naive")
LossFn = Callable[[AffineTransform, dict[str, jax.Array]], tuple[jax.Array, dict[str, jax.Array]]]
#: The released training length on THINGS: 100 epochs of its 40,000 training triplets
#: (80 % of the 50,000) in batches of 256, i.e. 157 steps an epoch.
RELEASED_STEPS = 15_700
#: The largest set of local images whose teacher similarities are computed once
#: (``float32 [n, n]``: 64 MiB at 4096); a larger set's batches compute their own on
#: every step.
TEACHER_MATRIX_MAX_IMAGES = 4096


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
        """A file-name-safe label, e.g. ``lr=0.001_lambda=1_alpha=0.25_tau=0.5``."""
        return (
            f"lr={self.learning_rate:g}_lambda={self.penalty_weight:g}"
            f"_alpha={self.alpha:g}_tau={self.temperature:g}"
        )


@configclass
class GlocalConfig:
    """How gLocal and naive transforms are fitted and which grid is searched.

    The defaults are the released code's configuration (LukasMut/gLocal): Adam at
    ``lr 1e-3`` with its learning rate rising linearly from ``lr / 3`` to ``lr`` over the
    whole run (``LinearLR(start_factor=1/3, total_iters=max_epochs)``, which the released
    code steps once an epoch; here once a step), gradient clipping at global norm 1.0,
    ``W_0 = 1e-3 I``, no bias, and the grid of its downstream evaluation
    (``GLOCAL_GRID``). Its 100 epochs of THINGS training triplets are
    :data:`RELEASED_STEPS` steps; the released code stops earlier when the validation
    loss stalls.

    Attributes:
      learning_rates, penalty_weights, alphas, temperatures: the gLocal grid (released:
        ``lr 1e-3, lambda {10, 1, 0.1}, alpha {0.5, 0.25, 0.1}, tau {1, 0.5}``).
      naive_penalty_weights: the naive transform's ``lambda`` grid (with
        ``learning_rates``).
      triplet_batch_size: human triplets per step (256).
      local_batch_size: other images per step for the local term (1024; fewer when
        fewer exist; at least 2, since an image is compared with the others).
      train: the optimisation of every fit; each setting's learning rate replaces
        ``train.learning_rate``. The warm-up spans the run (``warmup_steps = num_steps
        - 1``: set both for a run of another length). ``train.workdir`` stays ``None``
        (:func:`grid_search` resumes by whole fits). One device: a step is small, and
        its two index arrays (triplets, local images) differ in length. The loss is
        recorded every ``log_every`` steps, the validation accuracy every
        ``eval_every`` (an epoch on THINGS).
      sigma: ``W_0 = sigma I``.
      use_bias: fit a bias ``b``.
      bias_init: ``b_0`` when a bias is fitted (released: ``1e-3``, the same as sigma).
      patience: early stopping of fits given validation triplets: a fit stops once
        ``patience`` measurements of its validation accuracy in a row did not improve
        on the best, and keeps the best weights; ``None`` trains ``train.num_steps``
        steps and keeps the last. (The released code stops on the validation loss,
        patience 15 epochs, and keeps the last weights; the validation accuracy is what
        the grid selects by. A fit's validation accuracy is then its curve's maximum;
        test triplets stay out of every choice.)
      burn_in: measurements before a fit may stop (released: 20 epochs).
    """

    learning_rates: tuple[float, ...] = checked((1e-3,), gt=0)
    penalty_weights: tuple[float, ...] = checked((10.0, 1.0, 0.1), ge=0)
    alphas: tuple[float, ...] = checked((0.5, 0.25, 0.1), gt=0, le=1)
    temperatures: tuple[float, ...] = checked((1.0, 0.5), gt=0)
    naive_penalty_weights: tuple[float, ...] = checked((10.0, 1.0, 0.1), ge=0)
    triplet_batch_size: int = checked(256, ge=1)
    local_batch_size: int = checked(1024, ge=2)
    train: TrainConfig = TrainConfig(
        num_steps=RELEASED_STEPS,
        learning_rate=1e-3,
        schedule="warmup_constant",
        warmup_start=1 / 3,
        warmup_steps=RELEASED_STEPS - 1,
        optimizer="adam",
        clip_norm=1.0,
        mesh=MeshConfig(data=1),
        log_every=157,
        eval_every=157,
    )
    sigma: float = checked(1e-3, gt=0)
    use_bias: bool = False
    bias_init: float = 1e-3
    patience: int | None = checked(15, ge=1)
    burn_in: int = checked(20, ge=1)

    def __post_init__(self):
        grids = ("learning_rates", "penalty_weights", "alphas", "temperatures")
        for name in (*grids, "naive_penalty_weights"):
            if not getattr(self, name):
                raise ConfigError(f"={getattr(self, name)!r}: must hold at least one value", name)
        if self.patience is not None and not self.train.eval_every:
            raise ConfigError(
                f"={self.patience!r}: early stopping needs train.eval_every > 0 "
                "(the steps between validation measurements); or set patience=None",
                "patience",
            )
        if self.train.workdir is not None:
            raise ConfigError(
                f"workdir={self.train.workdir!r} must be None; grid_search writes each "
                "fit's metrics.jsonl beside its transform",
                "train",
            )


def grid(config: GlocalConfig, kind: Kind) -> list[GlocalSetting]:
    """The settings searched for ``kind`` (``"glocal"`` or ``"naive"``).

    >>> len(grid(GlocalConfig(), "glocal")), len(grid(GlocalConfig(), "naive"))
    (18, 3)
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

    A step transforms only the rows its batch touches. The teacher's cosine similarities
    of the local images do not depend on the transform: for a set of at most
    :data:`TEACHER_MATRIX_MAX_IMAGES` images they are computed here once
    (:func:`alignjax.losses.glocal_teacher_similarities`) and a step gathers its batch's
    ``[B, B]`` block, instead of a ``B^2 p`` product on every step.
    """
    _check_kind(kind)
    naive = kind == "naive"
    if not naive and local_features is None:
        raise ValueError("gLocal needs local_features (the local term's other images); got None.")
    teacher_similarities = None
    if not naive and len(local_features) <= TEACHER_MATRIX_MAX_IMAGES:
        teacher_similarities = jax.jit(losses.glocal_teacher_similarities)(local_features)

    def teacher(rows: jax.Array) -> jax.Array:
        if teacher_similarities is None:
            return losses.glocal_teacher_similarities(local_features[rows])
        return teacher_similarities[rows[:, None], rows]

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
            teacher_similarities=None if naive else teacher(batch["local"]),
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
    local = (2, features.shape[1]) if local_features is None else local_features.shape
    if len(local) != 2 or local[1] != features.shape[1] or local[0] < 2:
        raise ValueError(
            f"local_features must be [n_local >= 2, {features.shape[1]}] like features; "
            f"got shape {local}."
        )


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
    validation_triplets=None,
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
      validation_triplets: ``[m, 3]`` triplets over ``features`` whose odd-one-out
        accuracy is recorded every ``train.eval_every`` steps and at the end
        (``eval/odd_one_out/validation``, the learning curve) and stops the fit early
        (``config.patience``).

    Returns:
      The fitted :class:`~alignjax.models.AffineParams` (``mean``, ``std`` those of
      ``features``; ``bias`` zeros without one): the last or, with early stopping, the
      best on validation.
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
    validation = None if validation_triplets is None else np.asarray(validation_triplets)
    accuracies: list[float] = []  # of every evaluation
    best: list[AffineParams] = []  # the weights of the first best one

    def evaluate(model: AffineTransform) -> dict[str, float]:
        params = AffineParams.from_transform(model, mean=mean, std=std)
        accuracy = odd_one_out_accuracy(params.apply(features), validation).accuracy
        if not accuracies or accuracy > max(accuracies):
            # A copy: a view of the trainer's arrays would keep the next step from
            # donating (updating in place) their buffers.
            best[:] = [copy.deepcopy(params)]
        accuracies.append(accuracy)
        return {"odd_one_out/validation": accuracy}

    def stop_early(step: int, metrics: dict[str, float]) -> None:
        # Called after the evaluation's record is written: the curve shows the stop.
        if "eval/odd_one_out/validation" not in metrics or len(accuracies) < config.burn_in:
            return
        if len(accuracies) - 1 - int(np.argmax(accuracies)) >= config.patience:
            raise _Stopped

    # Metrics without checkpoints: a fit is short, and its batches come from a
    # generator whose position a checkpoint could not restore.
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    early = validation is not None and config.patience is not None
    with MetricsWriter(workdir) as record:
        try:
            fit(
                transform,
                loss_fn,
                batches(np.random.default_rng(seed)),
                train,
                evaluate=None if validation is None else evaluate,
                callbacks=[record.write, stop_early] if early else [record.write],
            )
        except _Stopped:
            pass
    if early:
        return best[0]
    return AffineParams.from_transform(transform, mean=mean, std=std)


class _Stopped(Exception):
    """Ends a fit whose validation accuracy stopped improving (caught by fit_transform)."""


@dataclasses.dataclass(frozen=True)
class GridResult:
    """One fitted grid point.

    Attributes:
      kind: ``"glocal"`` or ``"naive"``.
      setting: its hyperparameters.
      validation_accuracy: odd-one-out accuracy of the transformed features on the
        validation triplets (dot products): what :func:`grid_search` selects by.
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
    curve and, every ``train.eval_every`` steps, the validation accuracy). Ties in
    validation accuracy go to the earlier setting of the grid.

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
        with part(setting.name):  # labels the fit's progress bar
            if path.exists():
                restored()
            else:
                params = fit_transform(
                    features,
                    train_triplets,
                    local_features,
                    setting,
                    config,
                    kind=kind,
                    seed=seed,
                    workdir=directory / setting.name,
                    validation_triplets=validation,
                )
                partial = path.with_suffix(".partial.npz")
                params.save_npz(partial)
                partial.replace(path)
        params = AffineParams.load_npz(path)
        accuracy = odd_one_out_accuracy(params.apply(features), validation, kernel="dot").accuracy
        results.append(GridResult(kind, setting, float(accuracy), str(path)))
    best = max(results, key=lambda r: r.validation_accuracy)
    return best, results
