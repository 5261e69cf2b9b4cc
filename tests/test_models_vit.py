"""The NNX ViT: variants, shapes, parameter counts, FSDP annotations, dtypes, jit."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from alignjax.models.vit import ViT, decode_variant, posemb_sincos_2d

IMAGE = 16


def _images(n=4, size=IMAGE, seed=0):
    return jax.random.normal(jax.random.key(seed), (n, size, size, 3))


def _num_params(model):
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _vit_param_count(width, depth, mlp, patch, image, channels=3, pool="gap", head=0):
    """Closed form for big_vision's ViT (learned posemb)."""
    d, m = width, mlp
    attention = 4 * d * d + 4 * d  # q, k, v, out kernels [d, d] and biases
    mlp_block = 2 * d * m + m + d
    block = 2 * (2 * d) + attention + mlp_block  # two LayerNorms
    total = patch * patch * channels * d + d  # patch embedding
    total += (image // patch) ** 2 * d  # position embeddings
    total += depth * block + 2 * d  # blocks and encoder_norm
    if pool == "cls":
        total += d
    if pool == "map":
        total += d + attention + 2 * d + mlp_block  # probe, attention, LayerNorm, MLP
    if head:
        total += d * head + head
    return total


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("mu/8", (32, 1, 128, 2, (8, 8))),
        ("Ti/16", (192, 12, 768, 3, (16, 16))),
        ("S/16", (384, 12, 1536, 6, (16, 16))),
        ("B/16", (768, 12, 3072, 12, (16, 16))),
        ("Ti/4", (192, 12, 768, 3, (4, 4))),
        ("mu/4", (32, 1, 128, 2, (4, 4))),
        ("B", (768, 12, 3072, 12, (16, 16))),
    ],
)
def test_decode_variant(variant, expected):
    keys = ("width", "depth", "mlp_dim", "num_heads", "patch_size")
    assert tuple(decode_variant(variant)[k] for k in keys) == expected


@pytest.mark.parametrize("bad", ["X/16", "Ti/", "Ti/abc", "Ti/0", "Ti/-4", "Ti/16/2", "", "ti/16"])
def test_decode_variant_rejects_bad_strings(bad):
    with pytest.raises(ValueError, match="variant"):
        decode_variant(bad)


def test_overrides_and_explicit_sizes():
    model = nnx.eval_shape(lambda: ViT("S/16", depth=6, image_size=32, rngs=nnx.Rngs(0)))
    assert (model.width, model.depth, len(model.encoder.blocks)) == (384, 6, 6)
    model = nnx.eval_shape(
        lambda: ViT(
            width=16, depth=1, mlp_dim=8, num_heads=4, patch_size=4, image_size=8, rngs=nnx.Rngs(0)
        )
    )
    out = nnx.eval_shape(lambda m, x: m(x), model, jnp.zeros((1, 8, 8, 3)))
    assert out.shape == (1, 16)
    with pytest.raises(ValueError, match="num_heads"):
        ViT(width=16, depth=1, mlp_dim=8, patch_size=4, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(pool_type="tok"), "pool_type"),
        (dict(posemb="rope"), "posemb"),
        (dict(head_dim=4, num_classes=3), "head_dim or num_classes"),
        (dict(image_size=20), "divisible"),
        (dict(num_heads=3), "divisible by num_heads"),
    ],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ViT("mu/8", **{"image_size": IMAGE, **kwargs}, rngs=nnx.Rngs(0))


def test_bad_input_shape():
    model = nnx.eval_shape(lambda: ViT("mu/8", image_size=IMAGE, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"\[batch, 16, 16, 3\].*\(2, 32, 32, 3\)"):
        nnx.eval_shape(lambda m, x: m(x), model, jnp.zeros((2, 32, 32, 3)))


@pytest.mark.parametrize("pool_type", ["gap", "cls", "map"])
@pytest.mark.parametrize("head", [{}, {"head_dim": 8}, {"num_classes": 5}])
def test_output_shapes(pool_type, head):
    model = nnx.eval_shape(
        lambda: ViT("mu/8", image_size=IMAGE, pool_type=pool_type, **head, rngs=nnx.Rngs(0))
    )
    out, pooled = nnx.eval_shape(lambda m, x: m(x, return_pooled=True), model, _images())
    size = head.get("head_dim", head.get("num_classes", 32))
    assert out.shape == (4, size) and pooled.shape == (4, 32)
    assert out.dtype == pooled.dtype == jnp.float32


@pytest.fixture(scope="module")
def map_model():
    return ViT("mu/8", image_size=IMAGE, depth=2, pool_type="map", head_dim=8, rngs=nnx.Rngs(3))


_forward = nnx.jit(lambda m, x: m(x, return_pooled=True))


def test_head_projects_the_pooled_features(map_model):
    out, pooled = _forward(map_model, _images())
    kernel, bias = map_model.head.kernel[...], map_model.head.bias[...]
    np.testing.assert_allclose(out, pooled @ kernel + bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(nnx.jit(lambda m, x: m(x))(map_model, _images()), out)


def test_classifier_head_starts_at_zero():
    model = nnx.eval_shape(lambda: ViT("mu/8", image_size=IMAGE, num_classes=5, rngs=nnx.Rngs(0)))
    assert model.head.kernel.shape == (32, 5)
    model = ViT("mu/8", image_size=IMAGE, num_classes=5, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(model.head.kernel[...], 0.0)
    np.testing.assert_array_equal(model.head.bias[...], 0.0)


def test_patch_embedding_is_a_linear_map_of_flattened_patches(map_model):
    x = np.asarray(_images(2))
    kernel = np.asarray(map_model.embedding.kernel[...])  # [p, p, C, D]
    patches = x.reshape(2, 2, 8, 2, 8, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 4, 192)
    expected = patches @ kernel.reshape(192, 32) + np.asarray(map_model.embedding.bias[...])
    got = map_model.embedding(jnp.asarray(x)).reshape(2, 4, 32)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@nnx.jit
def _pooling_by_hand(model, x):
    tokens = model.embedding(x).reshape(x.shape[0], 4, 32) + model.pos_embedding[...]
    if model.pool_type == "cls":
        cls = jnp.broadcast_to(model.cls[...], (x.shape[0], 1, 32))
        tokens = jnp.concatenate([cls, tokens], axis=1)
    encoded = model.encoder(tokens)
    expected = {
        "gap": lambda: encoded.mean(axis=1),
        "cls": lambda: encoded[:, 0],
        "map": lambda: model.map_head(encoded),
    }[model.pool_type]()
    return model(x), expected


@pytest.mark.parametrize("pool_type", ["gap", "cls", "map"])
def test_pooling_reads_the_encoded_tokens(pool_type):
    model = ViT("mu/8", image_size=IMAGE, pool_type=pool_type, rngs=nnx.Rngs(2))
    got, expected = _pooling_by_hand(model, _images(2))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_posemb_sincos_2d_by_hand():
    pe = np.asarray(posemb_sincos_2d(2, 2, 8, temperature=100.0))
    assert pe.shape == (1, 4, 8)
    # omega = 100^-(k / 1) for k = 0, 1; token 2 sits at (y, x) = (1, 0).
    w = np.array([1.0, 0.01])
    x, y = 0.0, 1.0
    expected = np.concatenate([np.sin(x * w), np.cos(x * w), np.sin(y * w), np.cos(y * w)])
    np.testing.assert_allclose(pe[0, 2], expected, rtol=1e-6)
    model = nnx.eval_shape(
        lambda: ViT("mu/8", image_size=IMAGE, posemb="sincos2d", rngs=nnx.Rngs(0))
    )
    assert model.pos_embedding is None
    assert nnx.eval_shape(lambda m, x: m(x), model, _images()).shape == (4, 32)


def _formula_count(variant, **kw):
    v = decode_variant(variant)
    return _vit_param_count(v["width"], v["depth"], v["mlp_dim"], v["patch_size"][0], **kw)


@pytest.mark.parametrize("variant", ["Ti/16", "S/16", "B/16"])
def test_parameter_counts_match_the_closed_form(variant):
    model = nnx.eval_shape(lambda: ViT(variant, image_size=224, rngs=nnx.Rngs(0)))
    assert _num_params(model) == _formula_count(variant, image=224)


def test_vit_b16_has_85_8m_parameters():
    assert round(_formula_count("B/16", image=224) / 1e6, 1) == 85.8


@pytest.mark.parametrize(("pool", "head"), [("cls", 0), ("map", 64)])
def test_parameter_counts_with_pooling_and_head(pool, head):
    model = nnx.eval_shape(
        lambda: ViT("Ti/16", image_size=64, pool_type=pool, head_dim=head or None, rngs=nnx.Rngs(0))
    )
    assert _num_params(model) == _formula_count("Ti/16", image=64, pool=pool, head=head)


def test_fsdp_annotations():
    model = nnx.eval_shape(
        lambda: ViT("Ti/16", image_size=64, pool_type="map", head_dim=64, rngs=nnx.Rngs(0))
    )
    specs = nnx.to_flat_state(nnx.get_partition_spec(nnx.state(model, nnx.Param)))
    params = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    assert specs
    for path, spec in specs:
        spec = spec.get_value()
        shape = params[path].shape
        assert isinstance(spec, PartitionSpec)
        assert set(spec) <= {"fsdp", None}, (path, spec)
        if path[-1] == "kernel" and math.prod(shape) >= 1024:
            assert list(spec).count("fsdp") == 1, (path, spec)
            # The sharded dimension divides by any power-of-two mesh up to 64.
            assert shape[list(spec).index("fsdp")] % 64 == 0, (path, shape, spec)
        elif path[-1] != "kernel":
            assert "fsdp" not in spec, (path, spec)


@pytest.fixture(scope="module")
def mesh():
    return jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)


def test_sharded_forward_matches_single_device(mesh, map_model):
    x = _images(8)
    expected = _forward(map_model, x)
    graphdef, state = nnx.split(map_model)
    state = jax.device_put(state, nnx.get_named_sharding(state, mesh))
    kernel = state["encoder"]["blocks"][0]["mlp"]["fc1"]["kernel"].get_value()
    assert kernel.sharding.spec == PartitionSpec(None, "fsdp")
    xs = jax.device_put(x, NamedSharding(mesh, PartitionSpec(("data", "fsdp"))))
    out = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x, return_pooled=True))(state, xs)
    for a, b in zip(out, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_eager_sharding_under_a_mesh_with_fsdp(mesh):
    build = lambda: ViT("mu/8", image_size=IMAGE, rngs=nnx.Rngs(0))  # noqa: E731
    kernel = lambda m: m.encoder.blocks[0].attention.query.kernel  # noqa: E731
    assert not kernel(nnx.eval_shape(build)).get_metadata()["eager_sharding"]
    with jax.set_mesh(mesh):
        abstract = nnx.eval_shape(build)
    assert kernel(abstract).get_metadata()["eager_sharding"]
    assert kernel(abstract).get_value().sharding.spec == PartitionSpec("fsdp", None, None)


def test_jit_matches_eager(map_model):
    x = _images()
    for a, b in zip(_forward(map_model, x), map_model(x, return_pooled=True)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_is_close_to_float32(map_model):
    x = _images()
    bf16 = ViT(
        "mu/8",
        image_size=IMAGE,
        depth=2,
        pool_type="map",
        head_dim=8,
        dtype=jnp.bfloat16,
        rngs=nnx.Rngs(3),
    )
    same = jax.tree.map(np.array_equal, nnx.state(bf16), nnx.state(map_model))
    assert all(jax.tree.leaves(same))  # float32 parameters, identical init
    (out16, _), (out32, _) = _forward(bf16, x), _forward(map_model, x)
    assert out16.dtype == jnp.float32
    assert not np.array_equal(out16, out32)
    np.testing.assert_allclose(out16, out32, atol=0.05 * float(jnp.abs(out32).max()))


def test_dropout_only_in_train_mode():
    x = _images()
    plain = ViT("mu/8", image_size=IMAGE, rngs=nnx.Rngs(params=0, dropout=1))
    model = ViT("mu/8", image_size=IMAGE, dropout=0.5, rngs=nnx.Rngs(params=0, dropout=1))
    model.train()
    assert not np.allclose(_forward(model, x)[0], _forward(plain, x)[0])
    model.eval()
    np.testing.assert_allclose(_forward(model, x)[0], _forward(plain, x)[0], rtol=1e-6)
