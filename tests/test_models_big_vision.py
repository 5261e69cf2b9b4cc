"""big_vision .npz checkpoints: the key layout, round trips, posemb resampling, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax.models.big_vision import (
    load_big_vision_npz,
    load_big_vision_params,
    resample_posemb,
    save_big_vision_npz,
    to_big_vision_params,
)
from alignjax.models.vit import ViT

IMAGE = 16


def _vit(seed=0, image=IMAGE, **kw):
    kw = {"depth": 2, "pool_type": "map", "head_dim": 8, **kw}
    return ViT("mu/8", image_size=image, **kw, rngs=nnx.Rngs(seed))


def _images():
    return jax.random.normal(jax.random.key(0), (2, IMAGE, IMAGE, 3))


_forward = nnx.jit(lambda m, x: m(x))


@pytest.fixture(scope="module")
def source():
    return _vit(seed=1)


@pytest.fixture(scope="module")
def npz(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "vit.npz"
    save_big_vision_npz(source, path)
    return path


def _block_keys(prefix, d=32, h=2, m=128):
    shapes = {}
    for proj in ("query", "key", "value"):
        shapes[f"{prefix}MultiHeadDotProductAttention_0/{proj}/kernel"] = (d, h, d // h)
        shapes[f"{prefix}MultiHeadDotProductAttention_0/{proj}/bias"] = (h, d // h)
    shapes[f"{prefix}MultiHeadDotProductAttention_0/out/kernel"] = (h, d // h, d)
    shapes[f"{prefix}MultiHeadDotProductAttention_0/out/bias"] = (d,)
    shapes[f"{prefix}MlpBlock_0/Dense_0/kernel"] = (d, m)
    shapes[f"{prefix}MlpBlock_0/Dense_0/bias"] = (m,)
    shapes[f"{prefix}MlpBlock_0/Dense_1/kernel"] = (m, d)
    shapes[f"{prefix}MlpBlock_0/Dense_1/bias"] = (d,)
    return shapes


def test_key_layout_is_big_vision(npz):
    # Written out from big_vision/models/vit.py (mu: width 32, 2 heads, mlp 128).
    expected = {
        "params/embedding/kernel": (8, 8, 3, 32),
        "params/embedding/bias": (32,),
        "params/pos_embedding": (1, 4, 32),
        "params/Transformer/encoder_norm/scale": (32,),
        "params/Transformer/encoder_norm/bias": (32,),
        "params/MAPHead_0/probe": (1, 1, 32),
        "params/MAPHead_0/LayerNorm_0/scale": (32,),
        "params/MAPHead_0/LayerNorm_0/bias": (32,),
        "params/head/kernel": (32, 8),
        "params/head/bias": (8,),
        **_block_keys("params/MAPHead_0/"),
    }
    for i in range(2):
        block = f"params/Transformer/encoderblock_{i}/"
        expected.update(_block_keys(block))
        for norm in ("LayerNorm_0", "LayerNorm_1"):
            expected[f"{block}{norm}/scale"] = (32,)
            expected[f"{block}{norm}/bias"] = (32,)
    with np.load(npz) as f:
        assert {k: f[k].shape for k in f.files} == expected


def test_cls_token_key():
    params = to_big_vision_params(_vit(pool_type="cls", head_dim=None))
    assert params["cls"].shape == (1, 1, 32)
    assert not any(k.startswith("MAPHead_0") or k.startswith("head") for k in params)


def test_round_trip_same_resolution(source, npz):
    target = load_big_vision_npz(_vit(seed=2), npz)
    got = to_big_vision_params(target)
    for key, value in to_big_vision_params(source).items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    np.testing.assert_array_equal(_forward(target, _images()), _forward(source, _images()))


def test_load_at_another_resolution_resamples_posemb(source, npz):
    target = load_big_vision_npz(_vit(seed=2, image=32), npz)
    got, want = to_big_vision_params(target), to_big_vision_params(source)
    assert got["pos_embedding"].shape == (1, 16, 32)
    np.testing.assert_allclose(
        got["pos_embedding"],
        resample_posemb(want["pos_embedding"], (4, 4)),
        rtol=1e-6,
    )
    for key in want.keys() - {"pos_embedding"}:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_resample_linear_grid_by_hand():
    # posemb[y, x, :] = (a y + b x + c) per channel; bilinear resize with half-pixel
    # centres samples the old grid at clip((j + 0.5) n / m - 0.5, 0, n - 1).
    a, b, c = np.array([1.0, -2.0]), np.array([3.0, 0.5]), np.array([0.25, 1.0])
    y, x = np.mgrid[:2, :2]
    grid = a * y[..., None] + b * x[..., None] + c
    out = np.asarray(resample_posemb(grid.reshape(1, 4, 2), (4, 4))).reshape(4, 4, 2)
    pos = np.clip((np.arange(4) + 0.5) * 2 / 4 - 0.5, 0, 1)  # [0, .25, .75, 1]
    expected = a * pos[:, None, None] + b * pos[None, :, None] + c
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("grid", [(4, 4), (1, 1), (2, 3), (6, 6)])
def test_resample_constant_grid(grid):
    out = resample_posemb(np.full((1, 9, 5), 0.7, np.float32), grid)
    assert out.shape == (1, grid[0] * grid[1], 5)
    np.testing.assert_allclose(out, 0.7, rtol=1e-6)


def test_resample_keeps_prefix_tokens_apart():
    posemb = np.concatenate([np.full((1, 1, 3), 5.0), np.ones((1, 4, 3))], axis=1)
    out = np.asarray(resample_posemb(posemb, (3, 3), num_prefix_tokens=1))
    assert out.shape == (1, 10, 3)
    np.testing.assert_array_equal(out[0, 0], 5.0)
    np.testing.assert_allclose(out[0, 1:], 1.0, rtol=1e-6)


def test_resample_needs_the_old_grid_when_not_square():
    with pytest.raises(ValueError, match="old_grid_size"):
        resample_posemb(np.ones((1, 6, 3)), (3, 3))
    out = resample_posemb(np.ones((1, 6, 3)), (4, 6), old_grid_size=(2, 3))
    assert out.shape == (1, 24, 3)


@pytest.mark.parametrize("prefix", ["params/img/", "opt/target/", ""])
def test_prefix_detection(source, tmp_path, prefix):
    path = tmp_path / "ckpt.npz"
    arrays = {prefix + k: v for k, v in to_big_vision_params(source).items()}
    arrays["params/txt/Embed_0/embedding"] = np.zeros(3)  # a SigLIP text tower
    if prefix == "":
        del arrays["params/txt/Embed_0/embedding"]
    np.savez(path, **arrays)
    target = load_big_vision_npz(_vit(seed=2), path)
    np.testing.assert_array_equal(
        to_big_vision_params(target)["head/kernel"], to_big_vision_params(source)["head/kernel"]
    )


def test_old_layouts_load(source):
    params = to_big_vision_params(source)
    scanned = {k: v for k, v in params.items() if not k.startswith("Transformer/encoderblock_")}
    for key in [k for k in params if k.startswith("Transformer/encoderblock_0/")]:
        rest = key.removeprefix("Transformer/encoderblock_0/")
        scanned[f"Transformer/encoderblock/{rest}"] = np.stack(
            [params[f"Transformer/encoderblock_{i}/{rest}"] for i in range(2)]
        )
    scanned["Transformer/posembed_input/pos_embedding"] = scanned.pop("pos_embedding")
    target = load_big_vision_params(_vit(seed=2), scanned)
    got = to_big_vision_params(target)
    for key, value in params.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_combined_cls_posemb_is_split():
    # Old big_vision checkpoints prepended the [cls] row to a square posemb grid.
    params = to_big_vision_params(_vit(seed=1, pool_type="cls", head_dim=None))
    cls_row = np.full((1, 1, 32), 2.0, np.float32)
    params["pos_embedding"] = np.concatenate([cls_row, params["pos_embedding"]], axis=1)
    cls = params["cls"].copy()
    got = to_big_vision_params(
        load_big_vision_params(_vit(seed=2, pool_type="cls", head_dim=None), params)
    )
    np.testing.assert_array_equal(got["cls"], cls + 2.0)
    np.testing.assert_array_equal(got["pos_embedding"], params["pos_embedding"][:, 1:])


def test_bfloat16_checkpoint(source, tmp_path):
    # np.savez stores bfloat16 as 2-byte voids, as big_vision's bf16 checkpoints do.
    path = tmp_path / "bf16.npz"
    params = to_big_vision_params(source)
    np.savez(path, **{k: v.astype(jnp.bfloat16) for k, v in params.items()})
    with np.load(path) as f:
        assert f["head/kernel"].dtype.kind == "V"
    kernel = to_big_vision_params(load_big_vision_npz(_vit(seed=2), path))["head/kernel"]
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(
        kernel, params["head/kernel"].astype(jnp.bfloat16).astype(np.float32)
    )


def test_dont_load_keeps_a_fresh_head(source):
    params = to_big_vision_params(source)
    params["head/kernel"] = np.zeros((32, 3), np.float32)  # another task's head
    fresh = _vit(seed=2)
    init_head = to_big_vision_params(fresh)["head/kernel"]
    got = to_big_vision_params(load_big_vision_params(fresh, params, dont_load=["head/.*"]))
    np.testing.assert_array_equal(got["head/kernel"], init_head)
    np.testing.assert_array_equal(got["embedding/kernel"], params["embedding/kernel"])


def test_missing_key_is_named(source):
    params = to_big_vision_params(source)
    del params["Transformer/encoderblock_1/LayerNorm_0/scale"]
    with pytest.raises(ValueError, match="lacks.*encoderblock_1/LayerNorm_0/scale"):
        load_big_vision_params(_vit(seed=2), params)


def test_unused_key_is_named(source):
    params = to_big_vision_params(source)
    params["pre_logits/kernel"] = np.zeros((32, 32))
    with pytest.raises(ValueError, match="does not.*pre_logits/kernel"):
        load_big_vision_params(_vit(seed=2), params)


def test_misshaped_key_is_named(source):
    params = to_big_vision_params(source)
    params["head/kernel"] = np.zeros((32, 3), np.float32)
    with pytest.raises(ValueError, match=r"'head/kernel' has shape \(32, 3\).*\(32, 8\)"):
        load_big_vision_params(_vit(seed=2), params)


def test_missing_file_and_prefix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_big_vision_npz(_vit(), tmp_path / "nope.npz")
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ValueError, match="embedding/kernel"):
        load_big_vision_npz(_vit(), path)
