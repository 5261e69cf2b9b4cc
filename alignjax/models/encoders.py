"""Encoders built from a config (MLP, CNN or ViT) and applied to arrays in batches.

Every experiment trains or reads an encoder ``f: items -> R^d``; which network depends
on the world (an MLP for vectors, a CNN or a ViT for images), so the experiments name it
in their config and build it here.

>>> import numpy as np
>>> config = EncoderConfig(kind="mlp", widths=(8,), embed_dim=4)
>>> model = build_encoder(config, input_shape=(2,))
>>> embed(model, np.zeros((5, 2), np.float32), batch_size=4).shape
(5, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignjax.config import checked, configclass
from alignjax.models.cnn import ConvEncoder
from alignjax.models.mlp import MLPEncoder
from alignjax.models.vit import ViT, decode_variant

DTYPES = ("float32", "bfloat16")


@configclass
class EncoderConfig:
    """Which encoder to build.

    Attributes:
      kind: ``"mlp"`` (vector items), ``"cnn"`` (:class:`~alignjax.models.ConvEncoder`)
        or ``"vit"`` (:class:`~alignjax.models.ViT`, pooled features then a linear head).
      embed_dim: output dimension ``d``.
      widths: hidden widths of the MLP, or channels of the CNN stages.
      variant: ViT variant string, e.g. ``"mu/8"`` or ``"Ti/16"``.
      depth: ViT depth override (``None`` keeps the variant's).
      pool: ViT pooling, ``"gap"``, ``"cls"`` or ``"map"``.
      posemb: ViT position embeddings, ``"learn"`` (a parameter) or ``"sincos2d"``
        (fixed, as big_vision's "plain ViT" checkpoints have: no ``pos_embedding``).
      dtype: computation dtype, ``"float32"`` or ``"bfloat16"`` (for accelerators: the
        matmuls, convolutions and activations; the output embeddings are float32).
      param_dtype: dtype of the parameters, and so of the optimizer state the trainer
        keeps for them; float32 with ``dtype="bfloat16"`` is mixed precision.
      seed: initialisation seed.
    """

    kind: Literal["mlp", "cnn", "vit"] = "cnn"
    embed_dim: int = checked(32, ge=1)
    widths: tuple[int, ...] = checked((32, 64, 64), ge=1)
    variant: str = "mu/8"
    depth: int | None = checked(None, ge=1)
    pool: Literal["gap", "cls", "map"] = "gap"
    posemb: Literal["learn", "sincos2d"] = "learn"
    dtype: Literal["float32", "bfloat16"] = "float32"
    param_dtype: Literal["float32", "bfloat16"] = "float32"
    seed: int = checked(0, ge=0)

    def __post_init__(self):
        if self.kind not in ("mlp", "cnn", "vit"):
            raise ValueError(f"kind must be 'mlp', 'cnn' or 'vit', got {self.kind!r}")
        if self.pool not in ("gap", "cls", "map"):
            raise ValueError(f"pool must be 'gap', 'cls' or 'map', got {self.pool!r}")
        if self.posemb not in ("learn", "sincos2d"):
            raise ValueError(f"posemb must be 'learn' or 'sincos2d', got {self.posemb!r}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(
                    f"{name} must be 'float32' or 'bfloat16', got {getattr(self, name)!r}"
                )
        if self.kind != "vit" and not self.widths:
            raise ValueError(f"a {self.kind} encoder needs at least one width, got ()")
        if self.kind == "vit":
            decode_variant(self.variant)  # A bad variant is refused here.


def _precision(config: EncoderConfig) -> dict[str, Any]:
    return dict(dtype=jnp.dtype(config.dtype), param_dtype=jnp.dtype(config.param_dtype))


def build_encoder(config: EncoderConfig, input_shape: Sequence[int]) -> nnx.Module:
    """A freshly initialised encoder for items of shape ``input_shape`` (no batch axis)."""
    rngs = nnx.Rngs(config.seed)
    if config.kind == "mlp":
        if len(input_shape) != 1:
            raise ValueError(
                f"an mlp encoder needs vector items, got item shape {tuple(input_shape)}"
            )
        return MLPEncoder(
            input_shape[0], config.widths, config.embed_dim, **_precision(config), rngs=rngs
        )
    if len(input_shape) != 3:
        raise ValueError(
            f"a {config.kind} encoder needs [H, W, C] images, got item shape {tuple(input_shape)}"
        )
    height, width, channels = input_shape
    if config.kind == "cnn":
        groups = min(8, *config.widths)
        return ConvEncoder(
            channels,
            config.widths,
            config.embed_dim,
            num_groups=groups,
            **_precision(config),
            rngs=rngs,
        )
    if config.kind == "vit":
        return build_vit(config, input_shape, head_dim=config.embed_dim)
    raise ValueError(f"EncoderConfig.kind must be 'mlp', 'cnn' or 'vit', got {config.kind!r}")


def build_vit(config: EncoderConfig, image_shape: Sequence[int], *, head_dim: int | None) -> ViT:
    """The ViT of ``config`` (variant, depth, pooling, position embeddings, precision,
    seed) for ``[H, W, C]`` images, with a linear head of ``head_dim`` outputs (``None``:
    none, the pooled features are the output)."""
    height, width, channels = image_shape
    return ViT(
        config.variant,
        image_size=(height, width),
        in_channels=channels,
        depth=config.depth,
        pool_type=config.pool,
        posemb=config.posemb,
        head_dim=head_dim,
        **_precision(config),
        rngs=nnx.Rngs(config.seed),
    )


@jax.jit
def _apply(graphdef, state, inputs):
    return nnx.merge(graphdef, state)(inputs)


def embed(model: nnx.Module, inputs: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """``model`` applied to ``inputs [n, ...]`` in batches: embeddings ``float32 [n, d]``.

    The last batch is padded to ``batch_size`` so one compiled function serves every
    call with the same item shape.
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.shape[0] == 0:
        raise ValueError("embed needs at least one input")
    graphdef, state = nnx.split(model)
    batch_size = min(batch_size, inputs.shape[0])
    outputs = []
    for start in range(0, inputs.shape[0], batch_size):
        chunk = inputs[start : start + batch_size]
        pad = batch_size - chunk.shape[0]
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        outputs.append(np.asarray(_apply(graphdef, state, chunk))[: batch_size - pad])
    return np.concatenate(outputs)
