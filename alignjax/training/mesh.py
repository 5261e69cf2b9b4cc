"""The device mesh of a training run and the shardings of its arrays.

A mesh has two axes, ``("data", "fsdp")``:

- ``data``: each device along it holds a full copy of the parameters (pure data
    parallelism); gradients are all-reduced across it.
- ``fsdp``: the parameters annotated with the axis name ``"fsdp"`` (via
    ``nnx.with_partitioning``) are split across it (fully sharded data parallelism,
    ZeRO-3); each device all-gathers a layer's weights just before using them.

The batch is split over *both* axes on its leading dimension, so every device sees
``batch / (data * fsdp)`` examples. Both axes have ``AxisType.Auto``: the model code
contains no collective and no sharding annotation of activations; XLA's SPMD
partitioner propagates the input shardings and inserts the all-reduces and
all-gathers. The same model then runs unchanged on 1 device, 8 simulated CPU
devices, or a pod.

Several hosts: start one Python process per host, call
``jax.distributed.initialize()`` (arguments from the cluster environment, or
``coordinator_address``, ``num_processes``, ``process_id``) before anything else
touches JAX, and feed each process its own slice of the global batch (for example
a Grain pipeline sharded with ``grain.sharding.ShardByJaxProcess()``).
``make_mesh`` then spans ``jax.devices()``, the *global* device list, and
``shard_batch`` assembles the per-process slices into one global array with
``jax.make_array_from_process_local_data``. The same script runs on every host::

    jax.distributed.initialize()          # before any other JAX call
    mesh_config = MeshConfig(fsdp=8)      # data = all devices / 8
    batches = my_pipeline(shard=jax.process_index(), num_shards=jax.process_count())
    fit(model, loss_fn, batches, TrainConfig(..., mesh=mesh_config, workdir=shared_dir))

with ``workdir`` on storage every host sees (Orbax writes each process's shards of
a checkpoint, and the Grain position of each process, into the same directory).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from alignjax.config import MeshConfig

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
MESH_AXES = (DATA_AXIS, FSDP_AXIS)


def make_mesh(config: MeshConfig | None = None, devices: Any = None) -> Mesh:
    """Builds the ``("data", "fsdp")`` mesh described by ``config``.

    Args:
        config: the mesh shape; default ``MeshConfig()`` (all devices data parallel).
        devices: devices to lay out; defaults to ``jax.devices()`` (all devices of all
            processes). In a single process, a ``config`` asking for fewer devices than
            there are uses the first ones (handy to compare 1 device against 8).

    Returns:
        A mesh with ``AxisType.Auto`` axes ``("data", "fsdp")``.

    Example:
        >>> mesh = make_mesh(MeshConfig(data=1), devices=jax.devices()[:1])
        >>> dict(mesh.shape)
        {'data': 1, 'fsdp': 1}
    """
    config = MeshConfig() if config is None else config
    devices = list(jax.devices() if devices is None else devices)
    num_devices = len(devices)
    if config.data == -1:
        if num_devices % config.fsdp:
            raise ValueError(
                f"MeshConfig.fsdp={config.fsdp} does not divide the {num_devices} "
                "available devices."
            )
        data = num_devices // config.fsdp
    else:
        data = config.data  # MeshConfig checked it: -1 or >= 1
    size = data * config.fsdp
    if size > num_devices:
        raise ValueError(
            f"MeshConfig(data={data}, fsdp={config.fsdp}) needs {size} devices, "
            f"only {num_devices} are available."
        )
    if size < num_devices and jax.process_count() > 1:
        raise ValueError(
            f"MeshConfig(data={data}, fsdp={config.fsdp}) uses {size} of "
            f"{num_devices} devices; with several processes the mesh must span all "
            "devices."
        )
    return jax.make_mesh(
        (data, config.fsdp),
        MESH_AXES,
        axis_types=(AxisType.Auto, AxisType.Auto),
        devices=devices[:size],
    )


def num_batch_shards(mesh: Mesh) -> int:
    """Number of pieces the leading batch axis is cut into (``data * fsdp``)."""
    return mesh.shape[DATA_AXIS] * mesh.shape[FSDP_AXIS]


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of batch arrays: leading axis over ``("data", "fsdp")``."""
    return NamedSharding(mesh, PartitionSpec(MESH_AXES))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Places a process-local host batch on the mesh as global arrays.

    Every process passes its own slice (``global_batch / jax.process_count()``
    examples) and gets back arrays of the global batch, split over
    ``("data", "fsdp")``.

    Args:
        batch: pytree of arrays with a common leading batch axis (numpy or jax).
        mesh: the training mesh.

    Returns:
        The same pytree of ``jax.Array``, sharded by ``batch_sharding(mesh)``;
        leaves placed so already are returned as they are.

    Raises:
        ValueError: if a leaf is a scalar or its global batch size is not divisible
            by the number of batch shards.
    """
    sharding = batch_sharding(mesh)
    shards = num_batch_shards(mesh)

    def place(path, x):
        if isinstance(x, jax.Array) and x.ndim and x.sharding.is_equivalent_to(sharding, x.ndim):
            return x  # placed already (e.g. prefetched)
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError(
                f"batch leaf {jax.tree_util.keystr(path)} is a scalar; every batch "
                "array needs a leading batch axis."
            )
        global_size = x.shape[0] * jax.process_count()
        if global_size % shards:
            raise ValueError(
                f"batch size {global_size} (leaf {jax.tree_util.keystr(path)}, shape "
                f"{x.shape} per process) is not divisible by the {shards} batch "
                f"shards of the mesh (data={mesh.shape[DATA_AXIS]} x "
                f"fsdp={mesh.shape[FSDP_AXIS]})."
            )
        if jax.process_count() == 1:
            # The same array, placed in about a third of the time.
            return jax.device_put(x, sharding)
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree_util.tree_map_with_path(place, batch)


def _mesh_spec(spec: PartitionSpec, shape: tuple[int, ...], mesh: Mesh) -> PartitionSpec:
    """Keeps the ``fsdp`` entries of an annotation that the mesh can honour."""
    fsdp = mesh.shape[FSDP_AXIS]
    entries = []
    for dim, names in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        names = names if isinstance(names, tuple) else (names,)
        # A dimension the fsdp axis does not divide stays replicated: JAX places
        # arrays only on shardings that split them evenly.
        keep = FSDP_AXIS in names and fsdp > 1 and dim % fsdp == 0
        entries.append(FSDP_AXIS if keep else None)
    return PartitionSpec(*entries)


def state_shardings(state: Any, mesh: Mesh) -> Any:
    """Shardings of an NNX state from its ``nnx.with_partitioning`` annotations.

    Only the axis name ``"fsdp"`` is honoured; other names (tensor-parallel
    annotations of a model written for a bigger mesh) map to ``None``, as do
    dimensions that the fsdp axis size does not divide. Unannotated leaves are
    replicated.

    Args:
        state: an ``nnx.State`` (e.g. ``nnx.state(model, nnx.Param)``) whose leaves
            are ``nnx.Variable``.
        mesh: the training mesh.

    Returns:
        The pure (``nnx.as_pure``) structure of ``state`` with a ``NamedSharding``
        per array.
    """
    specs = nnx.as_pure(nnx.get_partition_spec(state))
    shapes = nnx.as_pure(state)
    return jax.tree.map(
        lambda spec, x: NamedSharding(mesh, _mesh_spec(spec, tuple(x.shape), mesh)),
        specs,
        shapes,
        is_leaf=lambda x: isinstance(x, PartitionSpec),
    )


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding of an array copied onto every device."""
    return NamedSharding(mesh, PartitionSpec())
