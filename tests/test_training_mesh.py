"""Tests of alignjax.training.mesh: the (data, fsdp) mesh and the shardings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AxisType, PartitionSpec

from alignjax.training import MeshConfig, make_mesh, shard_batch, state_shardings


class Annotated(nnx.Module):
    """Parameters with every kind of annotation the mesh must handle."""

    def __init__(self):
        rngs = nnx.Rngs(0)
        init = nnx.initializers.lecun_normal()
        # fsdp on the 8-wide output: shardable over fsdp=4.
        a_init = nnx.with_partitioning(init, (None, "fsdp"))
        self.a = nnx.Linear(6, 8, kernel_init=a_init, rngs=rngs)
        # fsdp on a dimension of size 6 that 4 does not divide, and a tensor-parallel
        # name the mesh does not have.
        b_init = nnx.with_partitioning(init, ("fsdp", "model"))
        self.b = nnx.Linear(6, 8, kernel_init=b_init, rngs=rngs)


@pytest.fixture(scope="module")
def annotated():
    with nnx.use_eager_sharding(False):
        return Annotated()


def test_make_mesh_spans_all_devices_with_auto_axes():
    mesh = make_mesh(MeshConfig())
    assert dict(mesh.shape) == {"data": 8, "fsdp": 1}
    assert mesh.axis_types == (AxisType.Auto, AxisType.Auto)
    assert dict(make_mesh(MeshConfig(fsdp=4)).shape) == {"data": 2, "fsdp": 4}


def test_make_mesh_on_fewer_devices_uses_the_first():
    mesh = make_mesh(MeshConfig(data=1))
    assert mesh.devices.ravel().tolist() == jax.devices()[:1]


@pytest.mark.parametrize(
    "config, message",
    [
        (MeshConfig(fsdp=3), "does not divide the 8"),
        (MeshConfig(data=4, fsdp=4), "needs 16 devices"),
    ],
)
def test_make_mesh_rejects_impossible_shapes(config, message):
    with pytest.raises(ValueError, match=message):
        make_mesh(config)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(data=0), r"MeshConfig.data=0: must be -1 \(all devices\) or >= 1"),
        (dict(data=-2), "MeshConfig.data=-2: must be an integer >= -1"),
        (dict(fsdp=0), "MeshConfig.fsdp=0: must be an integer >= 1"),
    ],
)
def test_mesh_config_rejects_impossible_axis_sizes(fields, message):
    with pytest.raises(ValueError, match=message):
        MeshConfig(**fields)


def test_shard_batch_splits_the_leading_axis_over_all_devices():
    mesh = make_mesh(MeshConfig(fsdp=4))
    x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    placed = shard_batch({"x": x, "y": np.arange(16)}, mesh)
    np.testing.assert_array_equal(placed["x"], x)
    np.testing.assert_array_equal(placed["y"], np.arange(16))
    assert placed["x"].sharding.spec == PartitionSpec(("data", "fsdp"))
    assert {s.data.shape for s in placed["x"].addressable_shards} == {(2, 3)}
    # Placed arrays pass through untouched (a prefetched batch costs no copy);
    # others are placed, even jax arrays on one device.
    again = shard_batch(placed, mesh)
    assert again["x"] is placed["x"] and again["y"] is placed["y"]
    moved = shard_batch({"x": jnp.asarray(x)}, mesh)["x"]
    assert moved.sharding.spec == PartitionSpec(("data", "fsdp"))


def test_shard_batch_rejects_a_batch_the_mesh_cannot_split():
    mesh = make_mesh(MeshConfig())
    with pytest.raises(ValueError, match=r"batch size 12 .*\['x'\].* 8 batch shards"):
        shard_batch({"x": np.zeros((12, 2))}, mesh)
    with pytest.raises(ValueError, match="scalar"):
        shard_batch({"x": np.float32(1.0)}, mesh)


def test_state_shardings_follow_fsdp_annotations_only(annotated):
    params = nnx.state(annotated, nnx.Param)
    specs = jax.tree.map(lambda s: s.spec, state_shardings(params, make_mesh(MeshConfig(fsdp=4))))
    assert specs["a"]["kernel"] == PartitionSpec(None, "fsdp")
    # 6 rows do not split over 4 devices and "model" is no mesh axis: replicated.
    assert specs["b"]["kernel"] == PartitionSpec(None, None)
    assert specs["a"]["bias"] == PartitionSpec(None)


def test_state_shardings_replicate_everything_without_fsdp(annotated):
    params = nnx.state(annotated, nnx.Param)
    shardings = state_shardings(params, make_mesh(MeshConfig()))
    assert all(s.is_fully_replicated for s in jax.tree.leaves(shardings))
