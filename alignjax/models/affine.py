"""The affine transform of frozen features used by gLocal and uncertainty distillation.

.. math::

    z = x W + b, \\qquad W_0 = \\sigma I, \\quad b_0 = 0.

Starting near a scaled identity keeps the transformed space close to the original one;
gLocal's regulariser ``||W - mean(diag W) I||_F^2`` (``scaled_identity_penalty``)
applies directly to ``weights``.

References:
  Muttenthaler et al. 2023, "Improving neural network representations using human
  similarity judgments" (gLocal), NeurIPS; ``W_0 = 1e-3 I``.
  Muttenthaler et al. 2024, "Aligning Machine and Human Visual Representations across
  Abstraction Levels" (AligNet), arXiv:2409.06509: the surrogate teacher.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from alignjax.models.partitioning import fsdp_partitioned, larger_dim_axes


class AffineTransform(nnx.Module):
    """``x @ weights + bias`` with ``weights`` initialised to ``sigma * I``.

    Args:
      dim: input feature size ``d``.
      out_dim: output size (default ``dim``); ``weights[:min, :min]`` starts at
        ``sigma * I`` and the rest at zero when not square.
      sigma: scale of the initial identity.
      use_bias: whether to add ``bias`` (initialised to zero).
      param_dtype: parameter dtype.
      rngs: accepted for symmetry with the other models; the initialisation is
        deterministic and draws nothing.

    Shapes: ``x`` ``[..., dim]`` -> ``[..., out_dim]``; ``weights`` ``[dim, out_dim]``,
    ``bias`` ``[out_dim]``.

    Example:
      >>> import jax.numpy as jnp
      >>> t = AffineTransform(3, sigma=2.0)
      >>> t(jnp.array([[1.0, 2.0, 3.0]]))
      Array([[2., 4., 6.]], dtype=float32)
    """

    def __init__(
        self,
        dim: int,
        *,
        out_dim: int | None = None,
        sigma: float = 1e-3,
        use_bias: bool = True,
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
        self.bias = nnx.data(nnx.Param(jnp.zeros((out_dim,), param_dtype)) if use_bias else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[-1] != self.dim:
            raise ValueError(
                f"x must have {self.dim} features in its last axis, got shape {x.shape}"
            )
        z = x @ self.weights[...]
        if self.bias is not None:
            z = z + self.bias[...]
        return z
