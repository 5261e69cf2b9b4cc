"""ConvEncoder and MLPEncoder: shapes, closed forms, state, annotations, jit."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax.models.cnn import ConvEncoder, max_pool_2x2
from alignjax.models.encoders import EncoderConfig, build_encoder
from alignjax.models.mlp import MLPEncoder


def _kernel_specs(model):
    params = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    specs = nnx.to_flat_state(nnx.get_partition_spec(nnx.state(model, nnx.Param)))
    return [(path, params[path].shape, tuple(s.get_value())) for path, s in specs]


@pytest.fixture(scope="module")
def conv():
    return ConvEncoder(1, widths=(8, 16), embed_dim=4, rngs=nnx.Rngs(0))


_forward = nnx.jit(lambda m, x: m(x))


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (1, 7, 5, 2), (3, 1, 1, 1)])
def test_max_pool_2x2_matches_nnx_max_pool(shape):
    # Continuous random inputs have no tied maxima, so values and gradients both agree.
    x = jax.random.normal(jax.random.key(0), shape)

    def reference(x):
        return nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="SAME")

    np.testing.assert_array_equal(max_pool_2x2(x), reference(x))
    weights = jax.random.normal(jax.random.key(1), reference(x).shape)
    grad = jax.grad(lambda x: (max_pool_2x2(x) * weights).sum())(x)
    grad_reference = jax.grad(lambda x: (reference(x) * weights).sum())(x)
    np.testing.assert_array_equal(grad, grad_reference)


@pytest.mark.parametrize("size", [28, 15])
def test_conv_encoder_shapes(size):
    model = nnx.eval_shape(lambda: ConvEncoder(3, embed_dim=10, rngs=nnx.Rngs(0)))
    out = nnx.eval_shape(lambda m, x: m(x), model, jnp.zeros((2, size, size, 3)))
    assert out.shape == (2, 10) and out.dtype == jnp.float32


def _x():
    return jax.random.normal(jax.random.key(0), (3, 12, 12, 1))


def test_conv_encoder_jit_matches_eager_and_has_no_batch_state(conv):
    x = _x()
    np.testing.assert_allclose(_forward(conv, x), conv(x), rtol=1e-5, atol=1e-6)
    assert not nnx.state(conv, nnx.Not(nnx.Param))
    # No batch statistics: each example's embedding ignores the rest of the batch.
    np.testing.assert_allclose(_forward(conv, x[:1]), _forward(conv, x)[:1], rtol=1e-5, atol=1e-6)


@nnx.jit
def _stages_by_hand(conv, x):
    h = x
    for c, n in zip(conv.convs, conv.norms):
        h = nnx.max_pool(jax.nn.relu(n(c(h))), (2, 2), strides=(2, 2), padding="SAME")
    return h.mean(axis=(1, 2)) @ conv.projection.kernel[...] + conv.projection.bias[...]


def test_conv_encoder_is_stages_then_global_mean_then_projection(conv):
    x = _x()
    np.testing.assert_allclose(_forward(conv, x), _stages_by_hand(conv, x), rtol=1e-5, atol=1e-6)


def test_conv_encoder_errors():
    with pytest.raises(ValueError, match="num_groups"):
        ConvEncoder(1, widths=(12,), num_groups=8, rngs=nnx.Rngs(0))
    model = nnx.eval_shape(lambda: ConvEncoder(1, widths=(8,), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"\[batch, H, W, 1\].*\(2, 8, 8, 3\)"):
        model(jnp.zeros((2, 8, 8, 3)))


def test_mlp_encoder_shapes_and_linear_case():
    model = MLPEncoder(2, (16, 16), 3, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (5, 2))
    assert model(x).shape == (5, 3)
    np.testing.assert_allclose(_forward(model, x), model(x), rtol=1e-5, atol=1e-6)
    assert not nnx.state(model, nnx.Not(nnx.Param))
    linear = MLPEncoder(2, (), 3, rngs=nnx.Rngs(0))
    w, b = linear.layers[0].kernel[...], linear.layers[0].bias[...]
    np.testing.assert_allclose(_forward(linear, x), x @ w + b, rtol=1e-6)
    one = MLPEncoder(2, 16, 3, rngs=nnx.Rngs(0))
    assert len(one.layers) == 2 and len(one.norms) == 1


def test_mlp_encoder_errors():
    with pytest.raises(ValueError, match="positive"):
        MLPEncoder(2, (0,), 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\[batch, 2\].*\(5, 3\)"):
        MLPEncoder(2, 4, 3, rngs=nnx.Rngs(0))(jnp.zeros((5, 3)))


@pytest.mark.parametrize(
    "build",
    [
        lambda: ConvEncoder(3, widths=(32, 64, 128), embed_dim=64, rngs=nnx.Rngs(0)),
        lambda: MLPEncoder(16, (256, 256), 64, rngs=nnx.Rngs(0)),
    ],
    ids=["conv", "mlp"],
)
def test_fsdp_annotations(build):
    for path, shape, spec in _kernel_specs(nnx.eval_shape(build)):
        assert set(spec) <= {"fsdp", None}
        if path[-1] == "kernel" and math.prod(shape) >= 1024:
            assert spec.count("fsdp") == 1, (path, spec)
            assert shape[spec.index("fsdp")] == max(shape), (path, shape, spec)
        elif path[-1] != "kernel":
            assert "fsdp" not in spec, (path, spec)


@pytest.mark.parametrize(
    "kind, item_shape",
    [("mlp", (6,)), ("cnn", (16, 16, 3)), ("vit", (16, 16, 3))],
)
def test_encoder_config_precision_reaches_every_kind(kind, item_shape):
    common = dict(kind=kind, widths=(8, 16), variant="mu/8", embed_dim=4)
    f32 = build_encoder(EncoderConfig(**common), item_shape)
    mixed = build_encoder(EncoderConfig(**common, dtype="bfloat16"), item_shape)
    low = build_encoder(EncoderConfig(**common, param_dtype="bfloat16"), item_shape)
    # The same initial values; mixed precision keeps float32 parameters.
    for a, b in zip(jax.tree.leaves(nnx.state(f32)), jax.tree.leaves(nnx.state(mixed))):
        assert b.dtype == jnp.float32
        np.testing.assert_array_equal(a, b)
    assert {x.dtype for x in jax.tree.leaves(nnx.state(low, nnx.Param))} == {jnp.dtype("bfloat16")}
    x = np.random.default_rng(0).normal(size=(2, *item_shape)).astype(np.float32)
    text = jax.jit(lambda m, x: m(x)).lower(mixed, x).as_text()
    # Its matmuls (convolutions) take and give bfloat16.
    matmul = r"stablehlo\.(dot_general|convolution).*: \(tensor<[\dx]+xbf16>, tensor<[\dx]+xbf16>\)"
    assert re.search(matmul + r" -> tensor<[\dx]+xbf16>", text)
    out32, out16 = np.asarray(_forward(f32, x)), np.asarray(_forward(mixed, x))
    assert out16.dtype == np.float32 and not np.array_equal(out16, out32)
    # bfloat16's relative rounding is 2^-9; a few layers keep the outputs within
    # a few percent of their scale.
    np.testing.assert_allclose(out16, out32, atol=0.05 * np.abs(out32).max())


def test_encoder_config_refuses_other_dtypes():
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'bfloat16', got 'float16'"):
        EncoderConfig(dtype="float16")
