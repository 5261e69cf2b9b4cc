"""AffineTransform: sigma * I initialisation, x W + b, gradients, annotations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec

from alignjax.models.affine import AffineTransform


@pytest.mark.parametrize("sigma", [1e-3, 0.5])
def test_initialised_to_scaled_identity(sigma):
    t = AffineTransform(4, sigma=sigma, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(t.weights[...], sigma * np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(t.bias[...], np.zeros(4))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(t(jnp.asarray(x)), sigma * x, rtol=1e-6)


def test_rectangular_and_without_bias():
    t = AffineTransform(3, out_dim=5, sigma=2.0, use_bias=False)
    np.testing.assert_array_equal(t.weights[...], 2.0 * np.eye(3, 5))
    assert t.bias is None
    assert t(jnp.ones((7, 3))).shape == (7, 5)
    assert [type(v) for _, v in nnx.to_flat_state(nnx.state(t))] == [nnx.Param]


def test_computes_x_w_plus_b():
    t = AffineTransform(3, out_dim=2)
    w = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)
    t.weights[...] = jnp.asarray(w)
    t.bias[...] = jnp.array([0.5, -1.0])
    x = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]], np.float32)
    np.testing.assert_allclose(t(jnp.asarray(x)), [[-3.5, -5.0], [5.5, 7.0]], rtol=1e-6)
    jitted = nnx.jit(lambda m, x: m(x))(t, jnp.asarray(x))
    np.testing.assert_allclose(jitted, t(jnp.asarray(x)), rtol=1e-6)


def test_gradient_of_the_weights():
    # d/dW sum(x W + b) = x^T 1, d/db = n 1.
    t = AffineTransform(3, sigma=0.1)
    x = jax.random.normal(jax.random.key(0), (5, 3))
    grads = nnx.grad(lambda m: m(x).sum())(t)
    np.testing.assert_allclose(
        grads["weights"][...], np.asarray(x).sum(0)[:, None] * np.ones((1, 3)), rtol=1e-5
    )
    np.testing.assert_allclose(grads["bias"][...], np.full(3, 5.0), rtol=1e-6)


def test_annotations_and_bad_input():
    specs = nnx.get_partition_spec(nnx.state(AffineTransform(6, out_dim=8)))
    assert specs["weights"].get_value() == PartitionSpec(None, "fsdp")
    assert specs["bias"].get_value() == PartitionSpec()
    with pytest.raises(ValueError, match=r"3 features.*\(2, 4\)"):
        AffineTransform(3)(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="dim"):
        AffineTransform(0)
