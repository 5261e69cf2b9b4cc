"""decay_to_init (alignjax.training.optimizer): decoupled weight decay toward the initial
parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from alignjax.training.optimizer import decay_to_init


@pytest.fixture
def params():
    return {"w": jnp.array([1.0, -2.0]), "b": {"c": jnp.array(0.5)}}


def test_update_by_hand(params):
    tx = decay_to_init(0.5)
    state = tx.init(params)
    moved = {"w": jnp.array([3.0, -2.0]), "b": {"c": jnp.array(-0.5)}}
    grads = {"w": jnp.array([0.1, 0.2]), "b": {"c": jnp.array(0.0)}}
    updates, state = tx.update(grads, state, moved)
    # u + 0.5 (theta - theta_init): w: (0.1 + 1.0, 0.2 + 0), c: 0 + 0.5 * (-1).
    np.testing.assert_allclose(updates["w"], [1.1, 0.2], rtol=1e-6)
    np.testing.assert_allclose(updates["b"]["c"], -0.5, rtol=1e-6)
    np.testing.assert_allclose(state.init_params["w"], params["w"])


def test_explicit_init_params(params):
    anchor = {"w": jnp.zeros(2), "b": {"c": jnp.array(1.0)}}
    tx = decay_to_init(2.0, init_params=anchor)
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [2.0, -4.0])
    np.testing.assert_allclose(updates["b"]["c"], -1.0)


def test_chained_with_sgd_pulls_params_back_to_init(params):
    tx = optax.chain(decay_to_init(1.0), optax.sgd(0.1))
    state = tx.init(params)
    current = {"w": jnp.array([4.0, 0.0]), "b": {"c": jnp.array(-3.0)}}
    zero_grads = jax.tree.map(jnp.zeros_like, params)

    @jax.jit
    def step(current, state):
        updates, state = tx.update(zero_grads, state, current)
        return optax.apply_updates(current, updates), state

    start = jax.tree.map(lambda p, p0: p - p0, current, params)
    for _ in range(10):
        current, state = step(current, state)
    # Each step shrinks theta - theta_init by (1 - lr * w) = 0.9.
    for got, init, offset in zip(
        jax.tree.leaves(current), jax.tree.leaves(params), jax.tree.leaves(start)
    ):
        np.testing.assert_allclose(got - init, 0.9**10 * offset, rtol=1e-5, atol=1e-6)


def test_works_with_nnx_optimizer():
    from flax import nnx

    model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    init_kernel = np.asarray(model.kernel[...]).copy()
    optimizer = nnx.Optimizer(model, optax.chain(decay_to_init(1.0), optax.sgd(0.5)), wrt=nnx.Param)
    model.kernel[...] = model.kernel[...] + 1.0
    grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
    optimizer.update(model, grads)
    np.testing.assert_allclose(model.kernel[...], init_kernel + 0.5, rtol=1e-6)


def test_missing_params_raise(params):
    tx = decay_to_init(1.0)
    with pytest.raises(ValueError, match=r"decay_to_init needs the current parameters"):
        tx.update(params, tx.init(params))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: decay_to_init(-1.0), r"`weight`.*non-negative.*-1"),
        (lambda p: decay_to_init(jnp.ones(2)), r"`weight`.*scalar"),
        (
            lambda p: decay_to_init(1.0, init_params={"w": jnp.zeros(2)}).init(p),
            r"`init_params`.*structure",
        ),
        (
            lambda p: decay_to_init(
                1.0, init_params={"w": jnp.zeros(3), "b": {"c": jnp.array(0.0)}}
            ).init(p),
            r"`init_params` leaf \['w'\].*\(2,\).*\(3,\)",
        ),
    ],
)
def test_bad_input_raises(params, make, message):
    with pytest.raises(ValueError, match=message):
        make(params)
