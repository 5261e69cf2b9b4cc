"""Tests of alignjax.methods.affine_fit: standardisation, fitting, the npz format."""

import jax.numpy as jnp
import numpy as np
import pytest

from alignjax.methods.affine_fit import (
    NPZ_KEYS,
    AffineFitConfig,
    AffineParams,
    fit_affine,
    initial_params,
    standardize,
    unstandardize,
)

QUIET = dict(progress_bar=False)


def _least_squares(weights, bias, batch):
    x, y = batch
    return jnp.mean(jnp.sum((x @ weights + bias - y) ** 2, axis=-1))


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 3)).astype(np.float32)
    true_w = rng.normal(size=(3, 2)).astype(np.float32)
    true_b = np.array([0.5, -1.0], np.float32)
    y = x @ true_w + true_b + 0.01 * rng.normal(size=(512, 2)).astype(np.float32)
    return x, y, true_w, true_b


def _sampler(x, y, batch_size=64):
    def sample(rng):
        rows = rng.integers(0, len(x), batch_size)
        return x[rows], y[rows]

    return sample


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


def test_initial_params_is_scaled_identity():
    weights, bias = initial_params(3, out_dim=2)
    np.testing.assert_array_equal(weights, 1e-3 * np.eye(3, 2, dtype=np.float32))
    np.testing.assert_array_equal(bias, np.zeros(2))
    assert initial_params(2, use_bias=False)[1] is None


def test_fit_recovers_least_squares_solution(regression):
    x, y, _, _ = regression
    config = AffineFitConfig(learning_rate=0.03, num_steps=600, **QUIET)
    params = fit_affine(
        _least_squares, initial_params(3, out_dim=2), _sampler(x, y), config, seed=1
    )
    design = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1)
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(params.weights, solution[:3], atol=0.02)
    np.testing.assert_allclose(params.bias, solution[3], atol=0.02)


def test_fit_is_deterministic_from_the_seed(regression):
    x, y, _, _ = regression
    config = AffineFitConfig(learning_rate=0.01, num_steps=20, **QUIET)
    init = initial_params(3, out_dim=2)
    a = fit_affine(_least_squares, init, _sampler(x, y), config, seed=3)
    b = fit_affine(_least_squares, init, _sampler(x, y), config, seed=3)
    c = fit_affine(_least_squares, init, _sampler(x, y), config, seed=4)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)


def test_sgd_step_is_clipped_by_global_norm(regression):
    x, y, _, _ = regression
    init = initial_params(3, out_dim=2)
    config = AffineFitConfig(
        optimizer="sgd", learning_rate=1.0, momentum=0.0, clip_norm=0.1, num_steps=1, **QUIET
    )
    params = fit_affine(_least_squares, init, [(x, y)], config)
    step = np.concatenate([(params.weights - init[0]).ravel(), params.bias - init[1]])
    # The full-batch gradient is far larger than 0.1, so one step has norm exactly 0.1.
    assert np.linalg.norm(step) == pytest.approx(0.1, rel=1e-4)


def test_fit_without_bias_keeps_zero_bias(regression):
    x, y, _, _ = regression
    config = AffineFitConfig(learning_rate=0.03, num_steps=50, **QUIET)
    seen = []

    def loss(weights, bias, batch):
        seen.append(bias)
        return _least_squares(weights, 0.0, batch)

    params = fit_affine(
        loss, initial_params(3, out_dim=2, use_bias=False), [(x, y)] * 50, config, mean=1.5, std=2.0
    )
    assert seen[0] is None
    np.testing.assert_array_equal(params.bias, np.zeros(2))
    assert (params.mean, params.std) == (1.5, 2.0)


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


def test_bad_inputs_raise(tmp_path, regression):
    x, y, _, _ = regression
    config = AffineFitConfig(num_steps=3, **QUIET)
    with pytest.raises(ValueError, match="weights"):
        fit_affine(_least_squares, (np.ones(3), None), [(x, y)] * 3, config)
    with pytest.raises(ValueError, match="bias"):
        fit_affine(_least_squares, (np.eye(3), np.zeros(2)), [(x, y)] * 3, config)
    with pytest.raises(ValueError, match="ran out after 2"):
        fit_affine(_least_squares, initial_params(3, out_dim=2), [(x, y)] * 2, config)
    with pytest.raises(ValueError, match="scalar"):
        fit_affine(
            lambda w, b, batch: batch[0] @ w, initial_params(3, out_dim=2), [(x, y)] * 3, config
        )
    with pytest.raises(ValueError, match="std"):
        fit_affine(_least_squares, initial_params(3, out_dim=2), [(x, y)] * 3, config, std=0.0)
    with pytest.raises(ValueError, match="became nan"):
        fit_affine(lambda w, b, batch: jnp.nan * jnp.sum(w), initial_params(2), [None] * 3, config)
    with pytest.raises(ValueError, match="optimizer"):
        AffineFitConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="num_steps"):
        AffineFitConfig(num_steps=0)
    with pytest.raises(ValueError, match="constant"):
        standardize(np.ones((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        standardize(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="bias"):
        AffineParams(np.eye(2), np.zeros(3))
    with pytest.raises(ValueError, match="2 features"):
        AffineParams(np.eye(2), np.zeros(2)).apply(np.ones((1, 3)))
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        AffineParams.load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", weights=np.eye(2), bias=np.zeros(2))
    with pytest.raises(ValueError, match=r"missing keys \['mean', 'std'\]"):
        AffineParams.load_npz(tmp_path / "partial.npz")
