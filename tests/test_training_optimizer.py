"""Tests of alignjax.training.optimizer (and the optimizer inside the trainer)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax.training import (
    MeshConfig,
    TrainConfig,
    Trainer,
    fit,
    learning_rate_schedule,
    make_optimizer,
)

ONE_DEVICE = MeshConfig(data=1)


def expected_warmup_cosine(t, *, peak, end, warmup, total):
    if t < warmup:
        return peak * t / warmup
    progress = min(t - warmup, total - warmup) / (total - warmup)
    return end + 0.5 * (peak - end) * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("k", [1, 2])
def test_warmup_cosine_schedule_counts_optimizer_updates(k):
    config = TrainConfig(
        num_steps=100,
        learning_rate=1.0,
        end_learning_rate=0.1,
        warmup_steps=10,
        accumulation_steps=k,
    )
    schedule = learning_rate_schedule(config)
    for t in [0, 2, 5, 10, 20, 30, 45, 50, 80, 100]:
        expected = expected_warmup_cosine(t, peak=1.0, end=0.1, warmup=10 // k, total=100 // k)
        assert float(schedule(t)) == pytest.approx(expected, abs=1e-6)


def test_constant_schedule():
    schedule = learning_rate_schedule(TrainConfig(num_steps=5, schedule="constant"))
    assert [float(schedule(t)) for t in (0, 3, 99)] == [1e-3] * 3


def sgd_config(**overrides):
    values = dict(
        num_steps=10, optimizer="sgd", schedule="constant", learning_rate=1.0, clip_norm=None
    )
    return TrainConfig(**{**values, **overrides})


def test_gradients_are_clipped_to_the_global_norm():
    tx = make_optimizer(sgd_config(clip_norm=1.0))
    params = {"a": jnp.zeros(1), "b": jnp.zeros(1)}
    grads = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}  # global norm 5
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose([updates["a"][0], updates["b"][0]], [-0.6, -0.8], rtol=1e-6)


def test_adamw_first_step_is_sign_plus_decoupled_decay():
    config = TrainConfig(
        num_steps=10,
        optimizer="adamw",
        schedule="constant",
        learning_rate=0.1,
        weight_decay=0.5,
        clip_norm=None,
    )
    tx = make_optimizer(config)
    params = {"w": jnp.array([2.0, -1.0])}
    grads = {"w": jnp.array([0.3, -5.0])}
    updates, _ = tx.update(grads, tx.init(params), params)
    # Bias-corrected first Adam step: m/sqrt(v) = g/|g| (up to eps).
    expected = -0.1 * (np.sign([0.3, -5.0]) + 0.5 * np.array([2.0, -1.0]))
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-5)


def test_decay_to_init_pulls_toward_the_initialisation_values():
    tx = make_optimizer(sgd_config(learning_rate=0.1, decay_to_init=0.5))
    init = {"w": jnp.array([1.0, -2.0])}
    params = {"w": jnp.array([3.0, 0.0])}
    updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(init), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * np.array([2.0, 2.0]), rtol=1e-6)


def partitioned(axes):
    return nnx.with_partitioning(nnx.initializers.lecun_normal(), axes)


class MLP(nnx.Module):
    def __init__(self, seed: int = 0):
        rngs = nnx.Rngs(seed)
        self.l1 = nnx.Linear(4, 16, kernel_init=partitioned((None, "fsdp")), rngs=rngs)
        self.l2 = nnx.Linear(16, 2, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def make_mlp(seed: int = 0) -> MLP:
    with nnx.use_eager_sharding(False):
        return MLP(seed)


def regression_loss(model, batch):
    return jnp.mean((model(batch["x"]) - batch["y"]) ** 2), {}


def test_accumulated_micro_batches_equal_one_big_batch():
    rng = np.random.default_rng(0)
    big = {
        "x": rng.normal(size=(32, 4)).astype(np.float32),
        "y": rng.normal(size=(32, 2)).astype(np.float32),
    }
    micro = [jax.tree.map(lambda v: v[:16], big), jax.tree.map(lambda v: v[16:], big)]
    sgd = dict(optimizer="sgd", schedule="constant", learning_rate=0.5, mesh=ONE_DEVICE)

    one_step = Trainer(make_mlp(), regression_loss, TrainConfig(num_steps=1, **sgd))
    one_step.train_step(big)
    accumulated = Trainer(
        make_mlp(), regression_loss, TrainConfig(num_steps=2, accumulation_steps=2, **sgd)
    )
    initial = jax.device_get(accumulated.state.params)
    accumulated.train_step(micro[0])
    after_one = jax.device_get(accumulated.state.params)
    jax.tree.map(np.testing.assert_array_equal, initial, after_one)
    accumulated.train_step(micro[1])

    expected = jax.device_get(one_step.state.params)
    got = jax.device_get(accumulated.state.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), expected, got)
    assert not np.allclose(initial["l1"]["kernel"], got["l1"]["kernel"])


def test_fit_decays_geometrically_to_given_init_params():
    model = make_mlp()
    start = jax.device_get(nnx.as_pure(nnx.state(model, nnx.Param)))
    target = jax.tree.map(np.ones_like, start)

    def no_gradient(model, batch):
        return 0.0 * jnp.sum(model(batch["x"])), {}

    lr, weight, steps = 0.1, 0.5, 5
    config = TrainConfig(
        num_steps=steps,
        optimizer="adamw",
        schedule="constant",
        learning_rate=lr,
        decay_to_init=weight,
        progress_bar=False,
    )
    batches = [{"x": np.zeros((8, 4), np.float32)}] * steps
    fit(model, no_gradient, batches, config, init_params=target)
    # With no gradient, theta_n - 1 = (1 - lr w)^n (theta_0 - 1).
    expected = jax.tree.map(lambda p: 1 + (1 - lr * weight) ** steps * (p - 1), start)
    got = jax.device_get(nnx.as_pure(nnx.state(model, nnx.Param)))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), expected, got)
