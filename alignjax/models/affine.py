r"""The affine transform of frozen features used by gLocal and uncertainty distillation.

gLocal (Muttenthaler et al. 2023) and AligNet's surrogate teacher (uncertainty
distillation, Muttenthaler et al. 2024) both learn

.. math::

    z = \frac{x - \mu}{\sigma}\, W + b, \qquad W_0 = s\, I, \quad b_0 = \beta,

on top of a frozen model's features ``x``, where ``mu`` and ``sigma`` are **one global
scalar** mean and standard deviation over all entries of the feature matrix (gLocal's
convention: a per-dimension standardisation would already change the geometry the
transform is meant to keep). Starting near a scaled identity keeps the transformed space
close to the original one; gLocal's regulariser ``||W - mean(diag W) I||_F^2``
(``scaled_identity_penalty``) applies directly to ``weights``.

- :class:`AffineTransform`: the trainable ``x W + b`` (an NNX module for
  :func:`alignjax.training.fit`);
- :func:`standardize` / :func:`unstandardize`: the global scalar standardisation;
- :class:`AffineParams`: a fitted transform with its standardisation, ``weights, bias,
  mean, std``; ``apply(features)``, ``save_npz`` / ``load_npz`` with exactly those four
  keys (the transform files of the released gLocal code and of ``alignjax eval
  --transform``).

References:
  Muttenthaler, Linhardt, Dippel, Vandermeulen, Hermann, Lampinen and Kornblith,
  *Improving neural network representations using human similarity judgments*,
  NeurIPS 2023 (arXiv:2306.04507), Section 3: the transform, ``W_0 = 1e-3 I``.
  Muttenthaler et al., *Aligning Machine and Human Visual Representations across
  Abstraction Levels*, 2024 (arXiv:2409.06509): the surrogate teacher.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignjax.models.partitioning import fsdp_partitioned, larger_dim_axes

NPZ_KEYS = ("weights", "bias", "mean", "std")


class AffineTransform(nnx.Module):
    """``x @ weights + bias`` with ``weights`` initialised to ``sigma * I``.

    Args:
      dim: input feature size ``d``.
      out_dim: output size (default ``dim``); ``weights[:min, :min]`` starts at
        ``sigma * I`` and the rest at zero when not square.
      sigma: scale of the initial identity.
      use_bias: whether to add ``bias``.
      bias_init: the initial value of every entry of ``bias`` (the released gLocal
        code starts it at ``1e-3``).
      param_dtype: parameter dtype.
      rngs: accepted for symmetry with the other models; the initialisation is
        deterministic and draws nothing.

    Shapes: ``x`` ``[..., dim]`` -> ``[..., out_dim]``; ``weights`` ``[dim, out_dim]``,
    ``bias`` ``[out_dim]``.

    Example:
      >>> import jax.numpy as jnp
      >>> t = AffineTransform(3, sigma=2.0, bias_init=0.5)
      >>> t(jnp.array([[1.0, 2.0, 3.0]]))
      Array([[2.5, 4.5, 6.5]], dtype=float32)
    """

    def __init__(
        self,
        dim: int,
        *,
        out_dim: int | None = None,
        sigma: float = 1e-3,
        use_bias: bool = True,
        bias_init: float = 0.0,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        del rngs
        out_dim = dim if out_dim is None else out_dim
        if dim < 1 or out_dim < 1:
            raise ValueError(f"dim and out_dim must be positive, got {dim}, {out_dim}")
        self.dim = dim
        self.out_dim = out_dim

        def scaled_identity(key, shape, dtype):
            del key
            return sigma * jnp.eye(*shape, dtype=dtype)

        init = fsdp_partitioned(scaled_identity, larger_dim_axes((dim, out_dim)))
        self.weights = nnx.Param(init(None, (dim, out_dim), param_dtype))
        self.bias = nnx.data(
            nnx.Param(jnp.full((out_dim,), bias_init, param_dtype)) if use_bias else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[-1] != self.dim:
            raise ValueError(
                f"x must have {self.dim} features in its last axis, got shape {x.shape}"
            )
        z = x @ self.weights[...]
        if self.bias is not None:
            z = z + self.bias[...]
        return z


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
                f"`{name}` must be one finite scalar (gLocal's global standardisation); "
                f"got {value!r}."
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


@dataclasses.dataclass(frozen=True)
class AffineParams:
    """A fitted transform ``z = ((x - mean) / std) W + b``.

    Attributes:
      weights: ``float32 [p, q]``.
      bias: ``float32 [q]`` (zeros for a transform fitted without a bias).
      mean, std: the global scalar standardisation of the features it was fitted on.

    Example:
      >>> params = AffineParams(2 * np.eye(2), np.ones(2), mean=1.0, std=2.0)
      >>> params.apply(np.array([[3.0, 5.0]])).tolist()  # (x - 1) / 2 @ 2 I + 1
      [[3.0, 5.0]]
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
                f"`bias` must have shape [q] = ({weights.shape[1]},) to match `weights`; "
                f"got shape {bias.shape}."
            )
        if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(bias))):
            raise ValueError("`weights` or `bias` contains NaN or infinite values.")
        mean, std = _check_statistics(self.mean, self.std)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def from_transform(cls, transform: AffineTransform, *, mean: float, std: float) -> AffineParams:
        """The parameters of a (fitted) :class:`AffineTransform` of features standardised
        by ``mean`` and ``std``; a transform without a bias gets zeros."""
        weights = np.asarray(transform.weights[...])
        bias = (
            np.zeros(weights.shape[1], np.float32)
            if transform.bias is None
            else np.asarray(transform.bias[...])
        )
        return cls(weights, bias, mean, std)

    def apply(self, features) -> np.ndarray:
        """Transformed features ``float32 [..., q]`` of raw features ``[..., p]``."""
        x = _features("features", features)
        if x.shape[-1] != self.weights.shape[0]:
            raise ValueError(
                f"`features` must have {self.weights.shape[0]} features (the rows of "
                f"`weights`); got shape {x.shape}."
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
        """Reads a transform written by :meth:`save_npz` or by the released gLocal code.

        The released code leaves ``bias`` out of the file of a transform fitted without
        one; it reads as zeros.
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"transform file {path} does not exist")
        with open(path, "rb") as file:
            if file.read(4) != b"PK\x03\x04":
                raise ValueError(
                    f"{path}: not an .npz archive (a transform file is written by numpy.savez "
                    "with the arrays weights, bias, mean and std)."
                )
        try:
            with np.load(path, allow_pickle=False) as data:
                if not isinstance(data, np.lib.npyio.NpzFile):
                    raise ValueError("it holds one array, not the arrays of an .npz archive")
                missing = [key for key in NPZ_KEYS if key != "bias" and key not in data]
                if missing:
                    raise ValueError(
                        f"missing keys {missing}; a transform file holds "
                        f"{list(NPZ_KEYS)} (bias optional), got {sorted(data)}"
                    )
                values = {key: np.asarray(data[key]) for key in NPZ_KEYS if key in data}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
            raise ValueError(f"{path}: not a readable transform file ({error}).") from None
        for key in ("mean", "std"):
            if values[key].size != 1 or not np.issubdtype(values[key].dtype, np.number):
                raise ValueError(
                    f"{path}: {key} must be one number (gLocal's global standardisation); "
                    f"got {values[key].dtype} of shape {values[key].shape}."
                )
        weights = values["weights"]
        bias = values["bias"].reshape(-1) if "bias" in values else np.zeros(np.shape(weights)[1:])
        try:
            return cls(weights, bias, float(values["mean"].item()), float(values["std"].item()))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None
