"""The odd-one-out choice model: similarities, probabilities, cross-entropy, accuracy."""

import itertools

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from alignjax import losses

PAIRS = [(0, 1), (0, 2), (1, 2)]


def np_similarities(e, kernel="dot"):
    e = np.asarray(e, np.float64)
    if kernel == "cosine":
        e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    return np.stack([np.sum(e[..., a, :] * e[..., b, :], -1) for a, b in PAIRS], -1)


def np_log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


@pytest.fixture(scope="module")
def embeddings():
    return np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("kernel", ["dot", "cosine"])
def test_similarities_match_numpy(embeddings, kernel):
    got = losses.triplet_similarities(embeddings, kernel)
    np.testing.assert_allclose(got, np_similarities(embeddings, kernel), rtol=1e-5, atol=1e-6)


def test_similarities_by_hand():
    e = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, -1.0]])
    np.testing.assert_allclose(losses.triplet_similarities(e), [3.0, -2.0, 0.0])
    np.testing.assert_allclose(
        losses.triplet_similarities(e, "cosine"),
        [3 / (np.sqrt(5) * 3), -2 / np.sqrt(5), 0.0],
        rtol=1e-6,
    )


def test_cosine_of_zero_vector_is_zero_and_differentiable():
    e = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(losses.triplet_similarities(e, "cosine"), [0.0, 0.0, 0.0])
    grad = jax.jit(jax.grad(lambda x: losses.triplet_similarities(x, "cosine").sum()))(e)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_probabilities_and_cross_entropy_match_numpy(embeddings, temperature):
    s = np_similarities(embeddings)
    expected = np_log_softmax(s / temperature)
    log_p = losses.odd_one_out_log_probs(s.astype(np.float32), temperature)
    np.testing.assert_allclose(log_p, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        losses.odd_one_out_probs(s.astype(np.float32), temperature), np.exp(expected), rtol=1e-5
    )
    np.testing.assert_allclose(
        losses.odd_one_out_cross_entropy(s.astype(np.float32), temperature),
        -expected[:, 0],
        rtol=1e-5,
    )


def test_cross_entropy_by_hand():
    # s = [log 2, 0, 0]: p(01) = 2 / 4.
    loss = losses.odd_one_out_cross_entropy(jnp.log(jnp.array([2.0, 1.0, 1.0])))
    np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-6)


def test_accuracy_counts_ties_as_wrong():
    s = jnp.array(
        [[3.0, 1.0, 2.0], [1.0, 1.0, 1.0], [2.0, 2.0, 1.0], [2.0, 1.0, 2.0], [1.0, 2.0, 0.0]]
    )
    np.testing.assert_array_equal(losses.triplet_accuracy(s), [1.0, 0.0, 0.0, 0.0, 0.0])
    assert losses.triplet_accuracy(s).dtype == jnp.float32


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(
    e=hnp.arrays(np.float32, (3, 4), elements=st.floats(-3, 3, width=32)),
    permutation=st.permutations([0, 1, 2]),
    kernel=st.sampled_from(["dot", "cosine"]),
)
def test_permuting_items_permutes_pair_probabilities(e, permutation, kernel):
    probs = np.asarray(losses.odd_one_out_probs(losses.triplet_similarities(e, kernel)))
    permuted = np.asarray(
        losses.odd_one_out_probs(losses.triplet_similarities(e[list(permutation)], kernel))
    )
    for new_index, (a, b) in enumerate(PAIRS):
        original = PAIRS.index(tuple(sorted((permutation[a], permutation[b]))))
        np.testing.assert_allclose(permuted[new_index], probs[original], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kernel", ["dot", "cosine"])
def test_gradients(kernel):
    with jax.enable_x64(True):
        e = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 4)))

        @jax.jit
        def loss(x):
            return losses.odd_one_out_cross_entropy(losses.triplet_similarities(x, kernel), 0.7)

        check_grads(loss, (e,), order=1, modes=["rev"])


def test_jit_and_vmap_agree_with_eager(embeddings):
    def loss(x):
        return losses.odd_one_out_cross_entropy(losses.triplet_similarities(x), 0.5)

    eager = loss(embeddings)
    np.testing.assert_allclose(jax.jit(loss)(embeddings), eager, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(loss)(embeddings), eager, rtol=1e-6)
    traced_temperature = jax.jit(losses.odd_one_out_log_probs)(
        losses.triplet_similarities(embeddings), 0.5
    )
    np.testing.assert_allclose(
        traced_temperature,
        losses.odd_one_out_log_probs(losses.triplet_similarities(embeddings), 0.5),
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: losses.triplet_similarities(np.ones((4, 2, 5))),
            r"`embeddings`.*\[\.\.\., 3, d\].*\(4, 2, 5\)",
        ),
        (lambda: losses.triplet_similarities(np.ones(5)), r"`embeddings`.*\(5,\)"),
        (lambda: losses.triplet_similarities(np.ones((3, 5)), "l2"), r"`kernel`.*'l2'"),
        (lambda: losses.odd_one_out_log_probs(np.ones((2, 4))), r"`similarities`.*\(2, 4\)"),
        (lambda: losses.odd_one_out_log_probs(np.ones(3), 0.0), r"`temperature`.*positive.*0"),
        (lambda: losses.odd_one_out_log_probs(np.ones(3), -1.0), r"`temperature`.*-1"),
        (lambda: losses.odd_one_out_log_probs(np.ones(3), np.ones(2)), r"`temperature`.*scalar"),
        (lambda: losses.odd_one_out_cross_entropy(np.ones((2, 2))), r"`similarities`.*\(2, 2\)"),
        (lambda: losses.triplet_accuracy(np.ones((2, 2))), r"`similarities`.*\(2, 2\)"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_shape_errors_raise_under_jit():
    with pytest.raises(ValueError, match=r"`similarities`.*\(2, 4\)"):
        jax.jit(losses.odd_one_out_cross_entropy)(jnp.ones((2, 4)))


@pytest.fixture(scope="module")
def loss_and_grad():
    def loss(x, temperature):
        return losses.odd_one_out_cross_entropy(losses.triplet_similarities(x), temperature).mean()

    return jax.jit(jax.value_and_grad(loss))


@pytest.mark.parametrize(
    ("dtype", "norm", "temperature"),
    list(itertools.product([jnp.float32, jnp.bfloat16], [1.0, 1e4], [1.0, 1e-3])),
)
def test_finite_at_extremes(loss_and_grad, dtype, norm, temperature):
    e = np.random.default_rng(2).normal(size=(4, 3, 8))
    e = jnp.asarray(norm * e / np.linalg.norm(e, axis=-1, keepdims=True), dtype)
    value, grad = loss_and_grad(e, temperature)
    assert np.isfinite(value)
    assert np.all(np.isfinite(np.asarray(grad, np.float32)))
