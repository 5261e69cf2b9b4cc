"""ViT checkpoints in the big_vision ``.npz`` layout: load, export, resample posembs.

The layout is the one in which big_vision's ViTs and SigLIP image towers are published:
a flat ``.npz`` whose keys are ``/``-joined parameter paths of big_vision's
``models/vit.py`` (non-scan version), optionally under a prefix (``params/`` for
big_vision checkpoints, ``params/img/`` for a SigLIP two-tower checkpoint,
``opt/target/`` for old Flax-optimizer ones, none for the AugReg releases)::

    embedding/kernel                 [p, p, C, D]   patch embedding (a conv)
    embedding/bias                   [D]
    pos_embedding                    [1, gh * gw, D] (learned posemb only)
    cls                              [1, 1, D]       (pool_type "tok" / our "cls")
    Transformer/encoderblock_{i}/LayerNorm_0/{scale,bias}           [D]
    Transformer/encoderblock_{i}/MultiHeadDotProductAttention_0/
        {query,key,value}/kernel [D, H, D/H], {query,key,value}/bias [H, D/H],
        out/kernel [H, D/H, D], out/bias [D]
    Transformer/encoderblock_{i}/LayerNorm_1/{scale,bias}           [D]
    Transformer/encoderblock_{i}/MlpBlock_0/Dense_0/{kernel [D, M], bias [M]}
    Transformer/encoderblock_{i}/MlpBlock_0/Dense_1/{kernel [M, D], bias [D]}
    Transformer/encoder_norm/{scale,bias}                          [D]
    MAPHead_0/probe [1, 1, D], MAPHead_0/MultiHeadDotProductAttention_0/...,
    MAPHead_0/LayerNorm_0/..., MAPHead_0/MlpBlock_0/Dense_{0,1}/...
    head/kernel [D, K], head/bias [K]

as checked against ``big_vision/models/vit.py`` (``Encoder1DBlock``, ``MAPHead``,
``_Model``, ``fix_old_checkpoints``, ``scan_to_pyloop``, ``resample_posemb``) and
``big_vision/utils.py`` (``load_params``, ``recover_dtype``). Like big_vision's
``load``, the loader also accepts the scanned layout (``Transformer/encoderblock/...``
with a leading depth axis), old position-embedding locations
(``Transformer/posembed_input/pos_embedding``, ``Transformer/pos_embedding``), the old
combined ``[cls] + grid`` position embedding (its first row is added to ``cls``, or
dropped if the checkpoint has no ``cls``), and bfloat16 arrays stored as 2-byte voids;
it resamples the position-embedding grid when the model's resolution differs.

Unlike big_vision, the resampling is :func:`jax.image.resize` over the 2-D grid
(half-pixel centres, antialiased when shrinking) rather than ``scipy.ndimage.zoom``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignjax.models.vit import ViT

PREFIXES = ("params/", "params/img/", "opt/target/", "")

# Our attribute names -> big_vision's module names; ``blocks/<i>`` -> ``encoderblock_<i>``.
_RENAMES = {
    "encoder": "Transformer",
    "map_head": "MAPHead_0",
    "attention_norm": "LayerNorm_0",
    "mlp_norm": "LayerNorm_1",
    "norm": "LayerNorm_0",
    "attention": "MultiHeadDotProductAttention_0",
    "mlp": "MlpBlock_0",
    "fc1": "Dense_0",
    "fc2": "Dense_1",
}


def _big_vision_key(path: tuple) -> str:
    parts = []
    for p in path:
        if p == "blocks":
            continue
        parts.append(f"encoderblock_{p}" if isinstance(p, int) else _RENAMES.get(p, p))
    return "/".join(parts)


def _model_params(model: ViT) -> dict[str, nnx.Variable]:
    return {
        _big_vision_key(path): var for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }


def to_big_vision_params(model: ViT) -> dict[str, np.ndarray]:
    """The model's parameters as a flat ``{big_vision key: array}`` dict (no prefix).

    Example:
      >>> from flax import nnx
      >>> from alignjax.models.vit import ViT
      >>> params = to_big_vision_params(ViT("mu/8", image_size=16, rngs=nnx.Rngs(0)))
      >>> params["Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel"].shape
      (32, 2, 16)
    """
    return {k: np.asarray(v.get_value()) for k, v in _model_params(model).items()}


def save_big_vision_npz(model: ViT, path: str | os.PathLike, *, prefix: str = "params/") -> None:
    """Writes the model's parameters to ``path`` in the big_vision ``.npz`` layout.

    Args:
      model: the ViT to export.
      path: output file (written as given; no ``.npz`` suffix is appended).
      prefix: prepended to every key; ``"params/"`` is what big_vision's trainers
        write, ``""`` matches the AugReg releases.
    """
    arrays = {prefix + k: v for k, v in to_big_vision_params(model).items()}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def resample_posemb(
    posemb: jax.Array | np.ndarray,
    grid_size: tuple[int, int],
    *,
    old_grid_size: tuple[int, int] | None = None,
    num_prefix_tokens: int = 0,
    method: str = "bilinear",
) -> jax.Array:
    """Resamples position embeddings to a new patch grid ("high-res fine-tuning").

    The rows after the first ``num_prefix_tokens`` (e.g. a class token's) form a
    ``[gh, gw, D]`` grid that is resized with :func:`jax.image.resize` to
    ``[*grid_size, D]``; prefix rows are kept unchanged in front.

    Args:
      posemb: ``[1, num_prefix_tokens + gh * gw, D]``.
      grid_size: the new grid ``(gh', gw')``.
      old_grid_size: the old grid; inferred when ``gh * gw`` is a perfect square.
      num_prefix_tokens: leading rows that are not on the grid.
      method: a :func:`jax.image.resize` method, e.g. ``"bilinear"``, ``"bicubic"``.

    Returns:
      ``[1, num_prefix_tokens + gh' * gw', D]`` in the dtype of ``posemb``.

    Example:
      >>> import jax.numpy as jnp
      >>> resample_posemb(jnp.ones((1, 4, 8)), (3, 3)).shape
      (1, 9, 8)

    Reference: Dosovitskiy et al. 2021, arXiv:2010.11929, section 3.2.
    """
    posemb = jnp.asarray(posemb)
    if posemb.ndim != 3 or posemb.shape[0] != 1:
        raise ValueError(f"posemb must have shape [1, tokens, D], got {posemb.shape}")
    prefix, grid = posemb[:, :num_prefix_tokens], posemb[0, num_prefix_tokens:]
    n, d = grid.shape
    if old_grid_size is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"posemb has {n} grid rows, not a square grid: pass old_grid_size")
        old_grid_size = (side, side)
    if old_grid_size[0] * old_grid_size[1] != n:
        raise ValueError(f"old_grid_size {old_grid_size} does not match {n} grid rows")
    grid = grid.reshape(*old_grid_size, d).astype(jnp.float32)
    grid = jax.image.resize(grid, (*grid_size, d), method=method)
    grid = grid.reshape(1, grid_size[0] * grid_size[1], d).astype(posemb.dtype)
    return jnp.concatenate([prefix, grid], axis=1)


def _recover_dtype(a: np.ndarray) -> np.ndarray:
    # np.savez writes bfloat16 as a 2-byte void (big_vision's utils.recover_dtype).
    if a.dtype.kind == "V" and a.dtype.itemsize == 2:
        return a.view(jnp.bfloat16)
    return a


def _find_prefix(keys: Iterable[str]) -> str:
    keys = set(keys)
    for prefix in PREFIXES:
        if f"{prefix}embedding/kernel" in keys:
            return prefix
    raise ValueError(
        "no 'embedding/kernel' key under any known prefix "
        f"{[p or '(none)' for p in PREFIXES]}; pass prefix= explicitly"
    )


def _canonicalize(params: dict[str, np.ndarray], num_patches: int) -> dict[str, np.ndarray]:
    """Rewrites older big_vision layouts into the current non-scan one."""
    params = dict(params)
    for old in ("Transformer/posembed_input/pos_embedding", "Transformer/pos_embedding"):
        if old in params:
            params["pos_embedding"] = params.pop(old)

    scanned = "Transformer/encoderblock/"
    for key in [k for k in params if k.startswith(scanned)]:
        stacked = params.pop(key)
        rest = key[len(scanned) :]
        for i, value in enumerate(stacked):
            params[f"Transformer/encoderblock_{i}/{rest}"] = value

    pe = params.get("pos_embedding")
    # A [cls] + square-grid posemb has one row more than a square; only a posemb that
    # does not fit the model as it is can be of that old kind.
    if pe is not None and pe.ndim == 3 and pe.shape[1] not in (1, num_patches):
        side = math.isqrt(pe.shape[1] - 1)
        if side * side + 1 == pe.shape[1]:
            params["pos_embedding"] = pe[:, 1:]
            if "cls" in params:
                params["cls"] = params["cls"] + pe[:, :1]
    return params


def load_big_vision_params(
    model: ViT,
    params: Mapping[str, np.ndarray],
    *,
    dont_load: Iterable[str] = (),
    posemb_method: str = "bilinear",
) -> ViT:
    """Sets ``model``'s parameters from a flat big_vision dict (keys without prefix).

    Every model parameter must be in ``params`` and every entry of ``params`` must be
    used, except keys that fully match a regex of ``dont_load`` (model parameters
    matched keep their initial values; checkpoint entries matched are ignored), as in
    big_vision's ``common.merge_params``. ``pos_embedding`` is resampled to the
    model's grid if its size differs.

    Args:
      model: the ViT to update in place (its shardings are kept).
      params: ``{key: array}`` as in the module docstring.
      dont_load: regexes, e.g. ``("head/.*",)`` to keep a fresh head.
      posemb_method: :func:`jax.image.resize` method for the position embeddings.

    Returns:
      ``model``, updated.
    """
    patterns = [re.compile(p) for p in dont_load]

    def skipped(key: str) -> bool:
        return any(p.fullmatch(key) for p in patterns)

    params = {k: _recover_dtype(np.asarray(v)) for k, v in params.items()}
    params = _canonicalize(params, model.grid_size[0] * model.grid_size[1])
    state = nnx.state(model, nnx.Param)
    flat = nnx.to_flat_state(state)
    wanted = {_big_vision_key(path): var for path, var in flat}

    missing = sorted(k for k in wanted if k not in params and not skipped(k))
    if missing:
        raise ValueError(
            f"checkpoint lacks {len(missing)} parameter(s) of the model: "
            f"{', '.join(missing)} (use dont_load to keep their initial values)"
        )
    unused = sorted(k for k in params if k not in wanted and not skipped(k))
    if unused:
        raise ValueError(
            f"checkpoint has {len(unused)} parameter(s) the model does not: "
            f"{', '.join(unused)} (check the model configuration, or dont_load them)"
        )

    for key, var in wanted.items():
        if key not in params or skipped(key):
            continue
        value = params[key]
        current = var.get_value()
        if key == "pos_embedding" and value.shape != current.shape and value.ndim == 3:
            value = resample_posemb(value, model.grid_size, method=posemb_method)
        if tuple(value.shape) != tuple(current.shape):
            raise ValueError(
                f"checkpoint parameter {key!r} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(current.shape)}"
            )
        var.set_value(jax.device_put(jnp.asarray(value, current.dtype), current.sharding))
    nnx.update(model, nnx.from_flat_state(flat))
    return model


def load_big_vision_npz(
    model: ViT,
    path: str | os.PathLike,
    *,
    prefix: str | None = None,
    dont_load: Iterable[str] = (),
    posemb_method: str = "bilinear",
) -> ViT:
    """Loads a big_vision ``.npz`` ViT checkpoint into ``model`` (in place).

    Args:
      model: the ViT to update; its configuration (variant, pooling, head) must match
        the checkpoint's, except resolution (position embeddings are resampled).
      path: the ``.npz`` file.
      prefix: key prefix of the ViT's parameters; by default the first of
        :data:`PREFIXES` under which ``embedding/kernel`` exists. Keys outside the
        prefix (a SigLIP text tower, optimizer state) are ignored.
      dont_load: regexes of keys (without prefix) not to load; see
        :func:`load_big_vision_params`.
      posemb_method: :func:`jax.image.resize` method for the position embeddings.

    Returns:
      ``model``, updated.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no big_vision checkpoint at {os.fspath(path)!r}")
    with np.load(path, allow_pickle=False) as npz:
        if prefix is None:
            prefix = _find_prefix(npz.files)
        params = {k[len(prefix) :]: npz[k] for k in npz.files if k.startswith(prefix)}
    if not params:
        raise ValueError(f"{os.fspath(path)!r} has no key starting with {prefix!r}")
    return load_big_vision_params(model, params, dont_load=dont_load, posemb_method=posemb_method)
