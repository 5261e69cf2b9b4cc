r"""AligNet's surrogate teacher: uncertainty distillation of the teacher's features.

Muttenthaler et al. (2024) turn a teacher into a *surrogate* for people with an affine
transform ``z = x W + b`` of its globally standardised features, fitted so that the
teacher's odd-one-out distribution matches the people's choice probabilities
(uncertainty distillation, UD):

.. math::

    \frac{1}{n} \sum_i \mathrm{KL}\big(p^{human}_i \,\|\, \operatorname{softmax}(s_i / T)\big)
    + \lambda \big\| W - \bar w I \big\|_F^2,
    \qquad s_i = [z_a \cdot z_b]_{ab \in \{01, 02, 12\}},

over the training triplets (``uncertainty_distillation_loss`` and
``scaled_identity_penalty``; an :class:`~alignjax.models.AffineTransform` trained by
:func:`alignjax.training.fit`), with ``T`` and ``lambda`` chosen by the KL on the
validation triplets. Triplets with single choices and no probabilities (real human
data) count their choice with probability one; the mean KL over repeated triplets is
then the KL to their choice frequencies, up to a constant. The untransformed teacher
(for "UnAligNet") keeps ``W = I`` and gets its temperature the same way, so the two
teachers differ only in the transform. Without human triplets only the untransformed
teacher exists, with the temperature of :func:`spread_temperature`.

References:
  Muttenthaler, L. et al. (2024). Aligning machine and human visual representations
  across abstraction levels. arXiv:2409.06509 (uncertainty distillation).
  Muttenthaler, L. et al. (2023). Improving neural network representations using human
  similarity judgments (gLocal). NeurIPS (the scaled-identity penalty, ``W_0 = 1e-3 I``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from alignjax import losses
from alignjax.config import ConfigError, MeshConfig, TrainConfig, checked, configclass
from alignjax.data.triplet_set import TripletSet
from alignjax.models import AffineParams, AffineTransform, standardize
from alignjax.training import fit
from alignjax.training.metrics_writer import MetricsWriter
from alignjax.training.progress import tracked
from alignjax.training.stages import note, part, restored

# A hard choice of the pair 01 (the odd one out last) as choice probabilities.
CHOSEN = np.array([1.0, 0.0, 0.0], np.float32)


@configclass
class UncertaintyDistillationConfig:
    """The surrogate teacher's affine transform.

    Attributes:
      temperatures: candidate Luce temperatures ``T`` of the teacher's choices.
      penalties: candidate weights ``lambda`` of the scaled-identity penalty.
      batch_size: training triplets per step (drawn with replacement).
      init_scale: ``W_0 = init_scale I`` (gLocal starts from ``1e-3 I``).
      train: the optimisation of every fit (Adam, constant learning rate, gradient
        clipping 1.0, one device); ``train.workdir`` must stay ``None``: each fit's
        ``metrics.jsonl`` goes to the stage's directory, and a fit keeps no checkpoints.
      raw_temperatures: the untransformed teacher's temperature grid.
    """

    temperatures: tuple[float, ...] = checked((0.25, 0.5, 1.0), gt=0)
    penalties: tuple[float, ...] = checked((0.001, 0.01, 0.1), ge=0)
    batch_size: int = checked(512, ge=1)
    init_scale: float = checked(1e-3, gt=0)
    train: TrainConfig = TrainConfig(
        num_steps=1000,
        learning_rate=1e-2,
        schedule="constant",
        optimizer="adam",
        clip_norm=1.0,
        mesh=MeshConfig(data=1),
        log_every=50,
    )
    raw_temperatures: tuple[float, ...] = checked(
        tuple(float(t) for t in np.geomspace(0.01, 100.0, 41)), gt=0
    )

    def __post_init__(self):
        for name in ("temperatures", "penalties", "raw_temperatures"):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"={values!r}: must hold at least one value", name)
        if self.train.workdir is not None:
            raise ConfigError(
                f"workdir={self.train.workdir!r} must be None; uncertainty_distillation "
                "writes each fit's metrics.jsonl into its directory",
                "train",
            )


def choice_probabilities(triplets: TripletSet) -> np.ndarray:
    """The triplets' choice probabilities ``[n, 3]``, a stored choice counting as certain."""
    if triplets.probabilities is not None:
        return triplets.probabilities
    return np.broadcast_to(CHOSEN, (len(triplets), 3))


@dataclasses.dataclass(frozen=True)
class SurrogateTeacher:
    """A teacher's transform and the temperature of its choices.

    Attributes:
      transform: the affine map of raw teacher features (identity for the
        untransformed teacher).
      temperature: ``T`` of ``softmax(s / T)`` over the transformed dot products.
    """

    transform: AffineParams
    temperature: float

    def similarities(self, raw_features: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Pair similarities ``[n, 3]`` of triplets ``indices [n, 3]``."""
        z = self.transform.apply(raw_features)
        return np.asarray(losses.triplet_similarities(z[indices]))

    def kl(self, raw_features: np.ndarray, triplets: TripletSet) -> float:
        """Mean ``KL(p_human || softmax(s / T))`` over ``triplets``."""
        s = self.similarities(raw_features, triplets.indices)
        return float(
            losses.uncertainty_distillation_loss(
                choice_probabilities(triplets), s, temperature=self.temperature
            ).mean()
        )

    def save(self, directory: pathlib.Path, **extra: Any) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.transform.save_npz(directory / "transform.npz")
        (directory / "teacher.json").write_text(
            json.dumps({"temperature": self.temperature, **extra}, indent=2) + "\n"
        )

    @classmethod
    def load(cls, directory: pathlib.Path) -> tuple[SurrogateTeacher, dict[str, Any]]:
        info = json.loads((directory / "teacher.json").read_text())
        return cls(AffineParams.load_npz(directory / "transform.npz"), info["temperature"]), info


def _fit_transform(
    ud: UncertaintyDistillationConfig,
    x: jax.Array,
    train: TripletSet,
    temperature: float,
    penalty: float,
    *,
    mean: float,
    std: float,
    seed: int,
    workdir: pathlib.Path,
) -> AffineParams:
    """One surrogate teacher's transform of the standardised features ``x [n_items, d]``.

    Every step draws ``ud.batch_size`` training triplets with replacement from one
    generator seeded by ``seed``; the metrics (the loss and its ``kl`` term) go to
    ``workdir/metrics.jsonl``, replacing a record already there.
    """
    indices, probabilities = train.indices, choice_probabilities(train)

    def loss_fn(transform, batch):
        z = transform(x[batch["indices"]])
        kl = losses.uncertainty_distillation_loss(
            batch["probabilities"], losses.triplet_similarities(z), temperature=temperature
        ).mean()
        return kl + penalty * losses.scaled_identity_penalty(transform.weights[...]), {"kl": kl}

    def batches(rng: np.random.Generator) -> Iterator[dict[str, np.ndarray]]:
        for _ in range(ud.train.num_steps):
            rows = rng.integers(0, len(indices), ud.batch_size)
            yield {"indices": indices[rows], "probabilities": probabilities[rows]}

    transform = AffineTransform(x.shape[1], sigma=ud.init_scale)
    # Metrics without checkpoints: a fit is short, and its batches come from a
    # generator whose position a checkpoint could not restore.
    shutil.rmtree(workdir, ignore_errors=True)
    with MetricsWriter(workdir) as record:
        fit(
            transform,
            loss_fn,
            batches(np.random.default_rng(seed)),
            ud.train,
            callbacks=[record.write],
        )
    return AffineParams.from_transform(transform, mean=mean, std=std)


def uncertainty_distillation(
    ud: UncertaintyDistillationConfig,
    humans: np.ndarray,
    triplets: Mapping[str, TripletSet],
    directory: pathlib.Path,
    *,
    seed: int,
) -> tuple[SurrogateTeacher, SurrogateTeacher, dict[str, Any]]:
    """The UD teacher and the untransformed teacher, fitted or loaded.

    Args:
      ud: the transform's grid and optimisation.
      humans: ``[n_items, d]`` raw teacher features of the triplets' items.
      triplets: human triplets ``"train"`` (fits), ``"validation"`` (chooses ``T``,
        ``lambda``) and ``"test"`` (reported).
      directory: artefacts: ``aligned/`` and ``untransformed/``, each with
        ``transform.npz`` (``weights``, ``bias``, ``mean``, ``std``) and ``teacher.json``
        (the temperature and the validation grid), and ``fits/T=<T>_lambda=<lambda>/
        metrics.jsonl``, the loss curve of every fitted transform.
      seed: seed of the fits' triplet draws.

    Returns:
      ``(aligned, untransformed, summary)``; the summary holds the chosen
      hyperparameters and the validation/test KL of both teachers.
    """
    aligned_dir, raw_dir = directory / "aligned", directory / "untransformed"
    train, validation, test = (triplets[s] for s in ("train", "validation", "test"))
    done = (aligned_dir / "teacher.json").exists() and (raw_dir / "teacher.json").exists()
    if done:
        restored()
    else:
        _, mean, std = standardize(humans)
        identity = _identity(humans.shape[1], mean, std)
        note(f"the untransformed teacher's temperature ({len(ud.raw_temperatures)} values)")
        raw_grid = {
            t: SurrogateTeacher(identity, t).kl(humans, validation)
            for t in tracked(ud.raw_temperatures, unit="temperature")
        }
        raw_t = min(raw_grid, key=raw_grid.get)
        x = jnp.asarray(standardize(humans, mean=mean, std=std)[0])
        grid = {}
        for t in ud.temperatures:
            for penalty in ud.penalties:
                with part(f"T={t:g} lambda={penalty:g}"):
                    transform = _fit_transform(
                        ud,
                        x,
                        train,
                        t,
                        penalty,
                        mean=mean,
                        std=std,
                        seed=seed,
                        workdir=directory / "fits" / f"T={t:g}_lambda={penalty:g}",
                    )
                candidate = SurrogateTeacher(transform, t)
                grid[(t, penalty)] = (candidate, candidate.kl(humans, validation))
        (best_t, best_penalty), (aligned, _) = min(grid.items(), key=lambda item: item[1][1])
        aligned.save(
            aligned_dir,
            penalty=best_penalty,
            validation_kl=[
                {"temperature": t, "penalty": p, "kl": kl} for (t, p), (_, kl) in grid.items()
            ],
        )
        SurrogateTeacher(identity, raw_t).save(
            raw_dir, validation_kl=[{"temperature": t, "kl": kl} for t, kl in raw_grid.items()]
        )
    aligned, aligned_info = SurrogateTeacher.load(aligned_dir)
    raw, _ = SurrogateTeacher.load(raw_dir)
    summary = {
        "temperature": aligned.temperature,
        "penalty": aligned_info["penalty"],
        "untransformed_temperature": raw.temperature,
        "validation_grid": aligned_info["validation_kl"],
    }
    for name, teacher in (("untransformed", raw), ("aligned", aligned)):
        note(f"the {name} teacher's KL divergence on the validation and test triplets")
        summary[f"{name}/validation_kl"] = teacher.kl(humans, validation)
        summary[f"{name}/test_kl"] = teacher.kl(humans, test)
    return aligned, raw, summary


def _identity(dim: int, mean: float, std: float) -> AffineParams:
    return AffineParams(np.eye(dim, dtype=np.float32), np.zeros(dim, np.float32), mean, std)


def spread_temperature(features: np.ndarray, *, pairs: int = 10000, seed: int = 0) -> float:
    """A temperature without human judgments: the standard deviation of the dot products
    of the standardised ``features [n, d]`` over random pairs of distinct items, so that the
    choice logits ``s / T`` spread by about one (neither one-hot nor uniform choices)."""
    x, _, _ = standardize(features)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(x), pairs)
    b = (a + rng.integers(1, len(x), pairs)) % len(x)
    return float(np.einsum("nd,nd->n", x[a], x[b]).std())


def untransformed_teacher(
    pool: np.ndarray, directory: pathlib.Path
) -> tuple[SurrogateTeacher, dict[str, Any]]:
    """The teacher without human judgments: ``W = I`` on the standardised pool features
    ``[n, d]``, at :func:`spread_temperature`; saved in ``directory/untransformed``."""
    raw_dir = directory / "untransformed"
    if (raw_dir / "teacher.json").exists():
        restored()
    else:
        _, mean, std = standardize(pool)
        SurrogateTeacher(_identity(pool.shape[1], mean, std), spread_temperature(pool)).save(
            raw_dir, rule="spread of the similarities (no human triplets)"
        )
    raw, _ = SurrogateTeacher.load(raw_dir)
    return raw, {"untransformed_temperature": raw.temperature, "human_triplets": False}
