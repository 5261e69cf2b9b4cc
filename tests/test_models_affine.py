"""alignjax.models.affine: AffineTransform (sigma * I initialisation, x W + b, gradients,
annotations), the global standardisation and AffineParams (apply, the npz format)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec

from alignjax import training
from alignjax.config import MeshConfig, TrainConfig
from alignjax.models.affine import (
    NPZ_KEYS,
    AffineParams,
    AffineTransform,
    standardize,
    unstandardize,
)


@pytest.mark.parametrize("sigma", [1e-3, 0.5])
def test_initialised_to_scaled_identity(sigma):
    t = AffineTransform(4, sigma=sigma, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(t.weights[...], sigma * np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(t.bias[...], np.zeros(4))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(t(jnp.asarray(x)), sigma * x, rtol=1e-6)


def test_bias_starts_at_bias_init():
    t = AffineTransform(3, sigma=1.0, bias_init=1e-3)
    np.testing.assert_array_equal(t.bias[...], np.full(3, 1e-3, np.float32))
    np.testing.assert_allclose(t(jnp.zeros((2, 3))), np.full((2, 3), 1e-3), rtol=1e-6)


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


@pytest.mark.parametrize("use_bias", [True, False])
def test_trained_by_fit_to_the_least_squares_solution(use_bias):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 3)).astype(np.float32)
    true_w = rng.normal(size=(3, 2)).astype(np.float32)
    y = x @ true_w + 0.01 * rng.normal(size=(512, 2)).astype(np.float32)
    if use_bias:
        y = y + np.array([0.5, -1.0], np.float32)

    def loss_fn(transform, batch):
        error = transform(batch["x"]) - batch["y"]
        return jnp.mean(jnp.sum(error**2, axis=-1)), {}

    def batches():
        while True:
            rows = rng.integers(0, len(x), 64)
            yield {"x": x[rows], "y": y[rows]}

    config = TrainConfig(
        num_steps=600,
        learning_rate=0.03,
        schedule="constant",
        optimizer="adam",
        mesh=MeshConfig(data=1),
        progress_bar=False,
    )
    t = training.fit(AffineTransform(3, out_dim=2, use_bias=use_bias), loss_fn, batches(), config)
    design = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1) if use_bias else x
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(t.weights[...], solution[:3], atol=0.02)
    if use_bias:
        np.testing.assert_allclose(t.bias[...], solution[3], atol=0.02)
    else:
        assert t.bias is None


def test_standardize_uses_one_global_scalar():
    x = np.array([[0.0, 10.0], [2.0, 20.0]])
    z, mean, std = standardize(x)
    assert mean == pytest.approx(8.0)
    assert std == pytest.approx(np.std(x))
    np.testing.assert_allclose(z, (x - 8.0) / np.std(x), rtol=1e-6)
    assert z.mean() == pytest.approx(0.0, abs=1e-6) and z.std() == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(unstandardize(z, mean, std), x, rtol=1e-6, atol=1e-5)
    z_given, m, s = standardize(x, mean=1.0, std=2.0)
    np.testing.assert_allclose(z_given, (x - 1.0) / 2.0)
    assert (m, s) == (1.0, 2.0)


def test_params_of_a_transform():
    t = AffineTransform(3, out_dim=2, sigma=0.5)
    t.bias[...] = jnp.array([1.0, -1.0])
    params = AffineParams.from_transform(t, mean=2.0, std=4.0)
    np.testing.assert_array_equal(params.weights, 0.5 * np.eye(3, 2))
    np.testing.assert_array_equal(params.bias, [1.0, -1.0])
    assert (params.mean, params.std) == (2.0, 4.0)
    x = np.array([[6.0, 2.0, 10.0]], np.float32)
    np.testing.assert_allclose(params.apply(x), np.asarray(t(jnp.asarray((x - 2.0) / 4.0))))
    unbiased = AffineParams.from_transform(AffineTransform(2, use_bias=False), mean=0.0, std=1.0)
    np.testing.assert_array_equal(unbiased.bias, np.zeros(2))


def test_npz_round_trip_and_apply(tmp_path):
    rng = np.random.default_rng(0)
    params = AffineParams(rng.normal(size=(4, 3)), rng.normal(size=3), mean=0.25, std=2.0)
    path = params.save_npz(tmp_path / "sub" / "transform.npz")
    with np.load(path) as data:
        assert sorted(data) == sorted(NPZ_KEYS)
        assert data["mean"].shape == () and data["std"].shape == ()
    loaded = AffineParams.load_npz(path)
    np.testing.assert_array_equal(loaded.weights, params.weights)
    np.testing.assert_array_equal(loaded.bias, params.bias)
    assert (loaded.mean, loaded.std) == (0.25, 2.0)
    x = rng.normal(size=(5, 4))
    expected = ((x - 0.25) / 2.0) @ params.weights + params.bias
    np.testing.assert_allclose(loaded.apply(x), expected, rtol=1e-5, atol=1e-6)


def test_reads_the_transform_files_of_the_released_glocal_code(tmp_path):
    # main_glocal_probing_final.py: np.savez_compressed, the statistics as 0-d arrays of
    # the features' dtype, and no `bias` key for a transform fitted without one.
    weights = np.array([[2.0, 0.0], [1.0, 1.0]], np.float32)
    mean, std = np.float32(1.0), np.float32(2.0)
    with open(tmp_path / "biased.npz", "wb") as f:
        np.savez_compressed(f, weights=weights, bias=np.ones(2, np.float32), mean=mean, std=std)
    with open(tmp_path / "unbiased.npz", "wb") as f:
        np.savez_compressed(f, weights=weights, mean=mean, std=std)
    x = np.array([[3.0, 5.0]])
    biased = AffineParams.load_npz(tmp_path / "biased.npz")
    assert (biased.mean, biased.std) == (1.0, 2.0)
    np.testing.assert_allclose(biased.apply(x), [[5.0, 3.0]])  # [1, 2] W + 1
    unbiased = AffineParams.load_npz(tmp_path / "unbiased.npz")
    np.testing.assert_array_equal(unbiased.bias, np.zeros(2))
    np.testing.assert_allclose(unbiased.apply(x), [[4.0, 2.0]])


def test_bad_params_and_features_raise(tmp_path):
    with pytest.raises(ValueError, match="constant"):
        standardize(np.ones((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        standardize(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="std"):
        AffineParams(np.eye(2), np.zeros(2), std=0.0)
    with pytest.raises(ValueError, match="bias"):
        AffineParams(np.eye(2), np.zeros(3))
    with pytest.raises(ValueError, match="2 features"):
        AffineParams(np.eye(2), np.zeros(2)).apply(np.ones((1, 3)))
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        AffineParams.load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", weights=np.eye(2), bias=np.zeros(2), mean=0.0)
    with pytest.raises(ValueError, match=r"missing keys \['std'\]"):
        AffineParams.load_npz(tmp_path / "partial.npz")
