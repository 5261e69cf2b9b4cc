r"""Fitting an affine transform of frozen, globally standardised features with optax.

gLocal (Muttenthaler et al. 2023) and AligNet's surrogate teacher (uncertainty
distillation, Muttenthaler et al. 2024) both learn

.. math::

    z = \frac{x - \mu}{\sigma}\, W + b, \qquad W_0 = s\, I,\ b_0 = 0,

on top of a frozen model's features ``x``, where ``mu`` and ``sigma`` are **one global
scalar** mean and standard deviation over all entries of the feature matrix (gLocal's
convention: a per-dimension standardisation would already change the geometry the
transform is meant to keep). Only the loss differs, so the fitting is generic:

- :func:`standardize` / :func:`unstandardize`: the global scalar standardisation;
- :func:`initial_params`: ``(W_0, b_0)`` of :class:`~alignjax.models.AffineTransform`;
- :func:`fit_affine`: minimise ``loss_fn(weights, bias, batch)`` with a jitted optax
  step (Adam, or SGD with momentum; global-norm gradient clipping), deterministic
  from a seed;
- :class:`AffineParams`: the fitted ``weights, bias, mean, std``; ``apply(features)``,
  ``save_npz`` / ``load_npz`` with exactly those four keys (the transform files of
  ``alignjax eval --transform``).

Example (recover ``W = 2 I``, ``b = 1`` by least squares):

>>> import jax.numpy as jnp
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(64, 2)).astype(np.float32)
>>> def loss_fn(weights, bias, batch):
...     return jnp.mean((batch @ weights + bias - (2 * batch + 1)) ** 2)
>>> params = fit_affine(loss_fn, initial_params(2, sigma=1.0), [x] * 300,
...                     AffineFitConfig(learning_rate=0.05, num_steps=300, progress_bar=False))
>>> np.round(params.weights, 2).tolist(), np.round(params.bias, 2).tolist()
([[2.0, 0.0], [0.0, 2.0]], [1.0, 1.0])

References:
  Muttenthaler, Linhardt, Dippel, Vandermeulen, Hermann, Lampinen and Kornblith,
  *Improving neural network representations using human similarity judgments*,
  NeurIPS 2023 (arXiv:2306.04507), Section 3 (the transform and its optimisation).
  Muttenthaler et al., *Aligning Machine and Human Visual Representations across
  Abstraction Levels*, 2024 (arXiv:2409.06509), the surrogate teacher.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib
from collections.abc import Callable, Iterable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from alignjax.models import AffineTransform

Batch = Any
LossFn = Callable[[jax.Array, "jax.Array | None", Batch], jax.Array]
Sampler = Callable[[np.random.Generator], Batch]
NPZ_KEYS = ("weights", "bias", "mean", "std")
_EXHAUSTED = object()


def _features(name: str, features) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim < 1 or array.size == 0:
        raise ValueError(
            f"`{name}` must be a non-empty array of features [..., d]; got shape {array.shape}."
        )
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"`{name}` must hold numbers; got dtype {array.dtype}.")
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return array


def _check_statistics(mean, std) -> tuple[float, float]:
    for name, value in (("mean", mean), ("std", std)):
        if np.ndim(value) != 0 or not np.isfinite(value):
            raise ValueError(
                f"`{name}` must be one finite scalar (gLocal's global standardisation); got {value!r}."
            )
    if not float(std) > 0:
        raise ValueError(f"`std` must be positive; got {float(std)!r}.")
    return float(mean), float(std)


def standardize(
    features, *, mean: float | None = None, std: float | None = None
) -> tuple[np.ndarray, float, float]:
    """``(x - mu) / sigma`` with one global scalar ``mu`` and ``sigma`` over all entries.

    Args:
      features: ``[..., d]`` features.
      mean, std: the statistics to apply (e.g. those of the features a transform was
        fitted on); ``None`` computes them from ``features``.

    Returns:
      ``(standardised float32 [..., d], mean, std)``.

    >>> z, mean, std = standardize(np.array([[1.0, 3.0], [1.0, 3.0]]))
    >>> z.tolist(), mean, std
    ([[-1.0, 1.0], [-1.0, 1.0]], 2.0, 1.0)
    """
    x = _features("features", features)
    mean = float(x.mean(dtype=np.float64)) if mean is None else mean
    if std is None:
        std = float(x.std(dtype=np.float64))
        if not std > 0:
            raise ValueError("`features` are constant (global std 0); they cannot be standardised.")
    mean, std = _check_statistics(mean, std)
    return ((x - np.float32(mean)) / np.float32(std)).astype(np.float32), mean, std


def unstandardize(standardized, mean: float, std: float) -> np.ndarray:
    """The inverse of :func:`standardize`: ``z sigma + mu``, ``float32``.

    >>> unstandardize(np.array([-1.0, 1.0]), 2.0, 1.0).tolist()
    [1.0, 3.0]
    """
    mean, std = _check_statistics(mean, std)
    return (_features("standardized", standardized) * np.float32(std) + np.float32(mean)).astype(
        np.float32
    )


def initial_params(
    dim: int, *, out_dim: int | None = None, sigma: float = 1e-3, use_bias: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(W_0, b_0)`` of :class:`~alignjax.models.AffineTransform`: ``sigma I`` and zeros.

    gLocal starts from ``1e-3 I`` (the default); ``use_bias=False`` gives ``b_0 = None``
    (fit without a bias).

    >>> weights, bias = initial_params(2, sigma=0.5)
    >>> weights.tolist(), bias.tolist()
    ([[0.5, 0.0], [0.0, 0.5]], [0.0, 0.0])
    """
    transform = AffineTransform(dim, out_dim=out_dim, sigma=sigma, use_bias=use_bias)
    bias = None if transform.bias is None else np.asarray(transform.bias[...])
    return np.asarray(transform.weights[...]), bias


@dataclasses.dataclass(frozen=True)
class AffineParams:
    """A fitted transform ``z = ((x - mean) / std) W + b``.

    Attributes:
      weights: ``float32 [p, q]``.
      bias: ``float32 [q]`` (zeros for a transform fitted without a bias).
      mean, std: the global scalar standardisation of the features it was fitted on.
    """

    weights: np.ndarray
    bias: np.ndarray
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        weights = np.asarray(self.weights, dtype=np.float32)
        if weights.ndim != 2 or 0 in weights.shape:
            raise ValueError(
                f"`weights` must be a non-empty [p, q] matrix; got shape {weights.shape}."
            )
        bias = np.asarray(self.bias, dtype=np.float32)
        if bias.shape != (weights.shape[1],):
            raise ValueError(
                f"`bias` must have shape [q] = ({weights.shape[1]},) to match `weights`; got shape {bias.shape}."
            )
        if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(bias))):
            raise ValueError("`weights` or `bias` contains NaN or infinite values.")
        mean, std = _check_statistics(self.mean, self.std)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def apply(self, features) -> np.ndarray:
        """Transformed features ``float32 [..., q]`` of raw features ``[..., p]``."""
        x = _features("features", features)
        if x.shape[-1] != self.weights.shape[0]:
            raise ValueError(
                f"`features` must have {self.weights.shape[0]} features (the rows of `weights`); got shape {x.shape}."
            )
        z, _, _ = standardize(x, mean=self.mean, std=self.std)
        return z @ self.weights + self.bias

    def save_npz(self, path: str | os.PathLike[str]) -> pathlib.Path:
        """Writes ``weights``, ``bias``, ``mean``, ``std`` to ``path`` (``.npz``)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(
                f,
                weights=self.weights,
                bias=self.bias,
                mean=np.float32(self.mean),
                std=np.float32(self.std),
            )
        return path

    @classmethod
    def load_npz(cls, path: str | os.PathLike[str]) -> AffineParams:
        """Reads a transform written by :meth:`save_npz` (or by the gLocal reference code)."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"transform file {path} does not exist")
        with np.load(path) as data:
            missing = [key for key in NPZ_KEYS if key not in data]
            if missing:
                raise ValueError(
                    f"{path}: missing keys {missing}; a transform file holds {list(NPZ_KEYS)}, got {sorted(data)}."
                )
            values = {key: data[key] for key in NPZ_KEYS}
        try:
            return cls(
                values["weights"],
                values["bias"].reshape(-1),
                float(values["mean"]),
                float(values["std"]),
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None


@dataclasses.dataclass(frozen=True)
class AffineFitConfig:
    """Optimisation of :func:`fit_affine`.

    Attributes:
      optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``; gLocal's paper).
      learning_rate: constant learning rate.
      momentum: SGD momentum (ignored by Adam).
      clip_norm: global gradient-norm clipping (gLocal: 1.0); ``None`` for none.
      num_steps: optimisation steps (one batch each).
      log_every: steps between loss read-outs in the progress bar.
      progress_bar: show a tqdm bar.
    """

    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    clip_norm: float | None = 1.0
    num_steps: int = 1000
    log_every: int = 50
    progress_bar: bool = True

    def __post_init__(self):
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(
                f"AffineFitConfig.optimizer must be 'adam' or 'sgd'; got {self.optimizer!r}."
            )
        if not self.learning_rate > 0:
            raise ValueError(
                f"AffineFitConfig.learning_rate must be positive; got {self.learning_rate!r}."
            )
        if not 0 <= self.momentum < 1:
            raise ValueError(f"AffineFitConfig.momentum must lie in [0, 1); got {self.momentum!r}.")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(
                f"AffineFitConfig.clip_norm must be positive or None; got {self.clip_norm!r}."
            )
        for name in ("num_steps", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(
                    f"AffineFitConfig.{name} must be a positive integer; got {value!r}."
                )

    def optax(self) -> optax.GradientTransformation:
        """The optax chain: clipping, then Adam or SGD with momentum."""
        parts = [] if self.clip_norm is None else [optax.clip_by_global_norm(self.clip_norm)]
        if self.optimizer == "adam":
            parts.append(optax.adam(self.learning_rate))
        else:
            parts.append(optax.sgd(self.learning_rate, momentum=self.momentum or None))
        return optax.chain(*parts)


def _batch_stream(batches: Iterable[Batch] | Sampler, seed: int) -> Iterable[Batch]:
    if callable(batches) and not hasattr(batches, "__iter__"):
        rng = np.random.default_rng(seed)
        return (batches(rng) for _ in itertools.count())
    if not hasattr(batches, "__iter__"):
        raise ValueError(
            f"`batches` must be an iterable of batches or a sampler fn(rng) -> batch; got {type(batches).__name__}."
        )
    return iter(batches)


def fit_affine(
    loss_fn: LossFn,
    init: tuple[Any, Any],
    batches: Iterable[Batch] | Sampler,
    config: AffineFitConfig = AffineFitConfig(),
    *,
    mean: float = 0.0,
    std: float = 1.0,
    seed: int = 0,
    description: str = "affine fit",
) -> AffineParams:
    """Minimises ``loss_fn(weights, bias, batch)`` over an affine transform.

    Each of ``config.num_steps`` steps draws one batch and applies one jitted optax
    update (``config.optax()``) to the pytree ``{weights, bias}``. Batches of one
    shape compile once.

    Args:
      loss_fn: ``(weights [p, q], bias [q] or None, batch) -> scalar`` (pure, jittable);
        the batch holds (standardised) features or indices into features the function
        closes over.
      init: ``(weights [p, q], bias [q] or None)``, e.g. :func:`initial_params`; a
        ``None`` bias is not fitted (stored as zeros).
      batches: an iterable of batches (pytrees of arrays), or a sampler
        ``fn(rng: numpy.random.Generator) -> batch`` called with a generator seeded by
        ``seed`` (so the fit is deterministic).
      config: optimiser, learning rate, clipping, steps, progress bar.
      mean, std: the standardisation of the features, recorded in the result.
      seed: seed of a sampler's generator.
      description: label of the progress bar.

    Returns:
      The fitted :class:`AffineParams`.

    Raises:
      ValueError: bad ``init`` shapes, a loss that is not a scalar, a non-finite
        loss, or fewer batches than ``config.num_steps``.
    """
    weights, bias = init
    weights = jnp.asarray(weights, jnp.float32)
    if weights.ndim != 2:
        raise ValueError(f"`init` weights must be a [p, q] matrix; got shape {weights.shape}.")
    params = {"weights": weights}
    if bias is not None:
        params["bias"] = jnp.asarray(bias, jnp.float32)
        if params["bias"].shape != (weights.shape[1],):
            raise ValueError(
                f"`init` bias must have shape ({weights.shape[1]},) to match the weights; got {params['bias'].shape}."
            )
    mean, std = _check_statistics(mean, std)
    tx = config.optax()

    def objective(p, batch):
        return loss_fn(p["weights"], p.get("bias"), batch)

    @jax.jit
    def step(p, opt_state, batch):
        loss, grads = jax.value_and_grad(objective)(p, batch)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    opt_state = tx.init(params)
    stream = _batch_stream(batches, seed)
    with tqdm(
        total=config.num_steps, desc=description, disable=not config.progress_bar, leave=False
    ) as bar:
        for index in range(config.num_steps):
            batch = next(stream, _EXHAUSTED)
            if batch is _EXHAUSTED:
                raise ValueError(
                    f"`batches` ran out after {index} batches; config.num_steps is {config.num_steps}."
                )
            if index == 0:
                shape = jax.eval_shape(objective, params, batch).shape
                if shape != ():
                    raise ValueError(f"`loss_fn` must return a scalar; got shape {shape}.")
            params, opt_state, loss = step(params, opt_state, batch)
            if (index + 1) % config.log_every == 0 or index + 1 == config.num_steps:
                value = float(loss)
                if not np.isfinite(value):
                    raise ValueError(
                        f"the loss became {value} at step {index + 1}; lower the learning rate."
                    )
                bar.set_postfix(loss=f"{value:.4f}")
            bar.update()
    final_bias = params.get("bias", jnp.zeros(weights.shape[1], jnp.float32))
    return AffineParams(np.asarray(params["weights"]), np.asarray(final_bias), mean, std)
