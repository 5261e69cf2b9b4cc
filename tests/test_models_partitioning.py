"""FSDP annotations: axes, and when parameters are placed at creation."""

import jax
import pytest
from flax import nnx
from jax.sharding import AxisType, PartitionSpec

from alignjax.models.partitioning import fsdp_partitioned, larger_dim_axes


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((64, 256), (None, "fsdp")),
        ((256, 10), ("fsdp", None)),
        ((32, 32), (None, "fsdp")),
        ((3, 3, 16, 64), (None, None, None, "fsdp")),
        ((7,), ("fsdp",)),
    ],
)
def test_larger_dim_axes(shape, axes):
    assert larger_dim_axes(shape) == axes


def test_only_fsdp_or_none():
    with pytest.raises(ValueError, match="'data'"):
        fsdp_partitioned(nnx.initializers.zeros_init(), ("data", None))


def _linear():
    init = fsdp_partitioned(nnx.initializers.lecun_normal(), (None, "fsdp"))
    return nnx.Linear(4, 8, kernel_init=init, rngs=nnx.Rngs(0))


def test_annotation_without_a_mesh_is_metadata_only():
    layer = _linear()
    assert not layer.kernel.get_metadata()["eager_sharding"]
    spec = nnx.get_partition_spec(nnx.state(layer))
    assert spec["kernel"].get_value() == PartitionSpec(None, "fsdp")
    assert spec["bias"].get_value() == PartitionSpec()


def test_placed_at_creation_under_a_mesh_with_fsdp():
    mesh = jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)
    with jax.set_mesh(mesh):
        layer = _linear()
    assert layer.kernel[...].sharding.spec == PartitionSpec(None, "fsdp")
    assert layer.kernel[...].sharding.mesh.shape["fsdp"] == 4


def test_a_mesh_without_fsdp_leaves_parameters_unplaced():
    with jax.set_mesh(jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))):
        layer = _linear()
    assert not layer.kernel.get_metadata()["eager_sharding"]
