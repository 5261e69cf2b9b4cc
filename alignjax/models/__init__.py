"""Flax NNX models: the ViT student, small encoders for synthetic worlds (and
``encoders``, which builds any of them from a config and embeds arrays in batches), the
affine transform of gLocal / uncertainty distillation (with its fitted parameters and
the global standardisation of the features it acts on), and big_vision checkpoint I/O.

All models map inputs to embeddings ``[batch, dim]`` (float32), keep no mutable state
besides ``nnx.Param``s (no BatchNorm; dropout off by default), and annotate their
kernels for FSDP over the mesh axis ``"fsdp"``: shard them with
``nnx.get_partition_spec(nnx.state(model))``.
"""

from alignjax.models.affine import AffineParams, AffineTransform, standardize, unstandardize
from alignjax.models.big_vision import (
    load_big_vision_npz,
    load_big_vision_params,
    resample_posemb,
    save_big_vision_npz,
    to_big_vision_params,
)
from alignjax.models.cnn import ConvEncoder
from alignjax.models.encoders import EncoderConfig, build_encoder, build_vit, embed
from alignjax.models.mlp import MLPEncoder
from alignjax.models.partitioning import FSDP, fsdp_partitioned, larger_dim_axes
from alignjax.models.vit import MAPHead, ViT, decode_variant, posemb_sincos_2d

__all__ = [
    "FSDP",
    "AffineParams",
    "AffineTransform",
    "ConvEncoder",
    "EncoderConfig",
    "MAPHead",
    "MLPEncoder",
    "ViT",
    "build_encoder",
    "build_vit",
    "decode_variant",
    "embed",
    "fsdp_partitioned",
    "larger_dim_axes",
    "load_big_vision_npz",
    "load_big_vision_params",
    "posemb_sincos_2d",
    "resample_posemb",
    "save_big_vision_npz",
    "standardize",
    "to_big_vision_params",
    "unstandardize",
]
