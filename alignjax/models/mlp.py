"""A multilayer perceptron encoder for vector inputs (e.g. the Gaussian-mixture world).

``x -> [Linear -> LayerNorm -> ReLU] * len(hidden) -> Linear(embed_dim)``; LayerNorm
rather than BatchNorm so that the state is parameters only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from alignjax.models.partitioning import fsdp_partitioned, larger_dim_axes


class MLPEncoder(nnx.Module):
    """Vectors ``[batch, in_dim]`` -> embeddings ``[batch, embed_dim]``.

    Args:
      in_dim: input features.
      hidden: width of each hidden layer (an int for one layer, ``()`` for a linear map).
      embed_dim: size of the output embedding.
      dtype: computation dtype; param_dtype: parameter dtype.
      rngs: ``nnx.Rngs`` for initialisation.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> enc = MLPEncoder(2, (16, 16), 3, rngs=nnx.Rngs(0))
      >>> enc(jnp.zeros((5, 2))).shape
      (5, 3)
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int | Sequence[int] = (64, 64),
        embed_dim: int = 16,
        *,
        dtype: Any = jnp.float32,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        sizes = (in_dim, *hidden, embed_dim)
        if any(s < 1 for s in sizes):
            raise ValueError(
                f"in_dim, hidden and embed_dim must be positive, got {in_dim}, "
                f"{hidden}, {embed_dim}"
            )
        self.in_dim = in_dim
        self.embed_dim = embed_dim
        self.dtype = dtype
        common = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.layers = nnx.List(
            [
                nnx.Linear(
                    a,
                    b,
                    kernel_init=fsdp_partitioned(
                        nnx.initializers.lecun_normal(), larger_dim_axes((a, b))
                    ),
                    **common,
                )
                for a, b in zip(sizes[:-1], sizes[1:])
            ]
        )
        self.norms = nnx.List([nnx.LayerNorm(h, **common) for h in hidden])

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 2 or x.shape[-1] != self.in_dim:
            raise ValueError(f"x must have shape [batch, {self.in_dim}], got {tuple(x.shape)}")
        x = x.astype(self.dtype)
        for layer, norm in zip(self.layers[:-1], self.norms):
            x = jax.nn.relu(norm(layer(x)))
        return self.layers[-1](x).astype(jnp.float32)
