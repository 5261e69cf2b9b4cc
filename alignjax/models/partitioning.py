"""FSDP partitioning annotations shared by the alignjax models.

Every large kernel is annotated with the mesh axis ``"fsdp"`` on one of its dimensions
(the larger one, or the model width); biases, norms and embeddings carry no annotation
and so are replicated. ``nnx.get_partition_spec(nnx.state(model))`` then gives
``PartitionSpec``s over ``"fsdp"`` only; the trainer shards the batch over
``("data", "fsdp")`` itself.

The annotation is always recorded. The parameter is also *placed* by it at creation
(Flax's "eager sharding") only when a mesh with an ``"fsdp"`` axis is set
(``jax.set_mesh``), so that the same model can be built on one CPU without any mesh
and resharded later from its partition specs.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

FSDP = "fsdp"


def _mesh_has_fsdp() -> bool:
    mesh = jax.sharding.get_abstract_mesh()
    return not mesh.empty and FSDP in mesh.axis_names


def fsdp_partitioned(initializer: nnx.Initializer, axes: Sequence[str | None]) -> nnx.Initializer:
    """Wraps ``initializer`` so that its parameter carries the partitioning ``axes``.

    Args:
      initializer: a ``jax.nn.initializers`` style function ``(key, shape, dtype)``.
      axes: one entry per parameter dimension, ``"fsdp"`` or ``None``.

    Returns:
      An initializer for ``nnx.Param`` (or a layer's ``kernel_init``) whose variable has
      ``out_sharding=axes``.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> init = fsdp_partitioned(nnx.initializers.lecun_normal(), (None, "fsdp"))
      >>> layer = nnx.Linear(4, 8, kernel_init=init, rngs=nnx.Rngs(0))
      >>> spec = nnx.get_partition_spec(nnx.state(layer))["kernel"].get_value()
      >>> spec == jax.sharding.PartitionSpec(None, "fsdp")
      True
    """
    axes = tuple(axes)
    if any(a not in (FSDP, None) for a in axes):
        raise ValueError(f"axes must contain only {FSDP!r} or None, got {axes}")
    return nnx.with_partitioning(
        initializer,
        axes,
        eager_sharding=nnx.using_eager_sharding() and _mesh_has_fsdp(),
    )


def larger_dim_axes(shape: Sequence[int]) -> tuple[str | None, ...]:
    """Partitioning axes with ``"fsdp"`` on the largest dimension of ``shape``.

    Ties go to the last dimension (the output features of a kernel).

    Example:
      >>> larger_dim_axes((64, 256))
      (None, 'fsdp')
      >>> larger_dim_axes((256, 10))
      ('fsdp', None)
    """
    shape = tuple(shape)
    largest = max(range(len(shape)), key=lambda i: (shape[i], i))
    return tuple(FSDP if i == largest else None for i in range(len(shape)))
