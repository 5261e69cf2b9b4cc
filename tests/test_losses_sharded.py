"""Every loss that reduces over a batch gives, with ``axis_name`` inside ``jax.shard_map``
over 8 simulated devices (batch sharded), the value and gradient it gives on one device."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from alignjax import losses

N_DEVICES = 8
BATCH = 16
ROWS = P("data")
REPLICATED = P()


@pytest.fixture(scope="module")
def mesh():
    if jax.device_count() < N_DEVICES:
        pytest.skip(f"needs {N_DEVICES} devices (tests/conftest.py simulates them)")
    return jax.make_mesh((N_DEVICES,), ("data",))


def _weighted_sum(out):
    """A reduction that sees every output entry with a different weight."""
    weights = jnp.arange(1, out.size + 1, dtype=out.dtype).reshape(out.shape)
    return jnp.sum(out * weights)


def assert_sharded_matches(mesh, loss_fn, args, in_specs, out_spec, argnums):
    def sharded(*a):
        return jax.shard_map(
            functools.partial(loss_fn, axis_name="data"),
            mesh=mesh,
            in_specs=in_specs,
            out_specs=out_spec,
        )(*a)

    def value_and_grad(fn):
        return jax.jit(
            jax.value_and_grad(
                lambda *a: (_weighted_sum(fn(*a)), fn(*a)), argnums=argnums, has_aux=True
            )
        )

    (_, expected), expected_grads = value_and_grad(functools.partial(loss_fn, axis_name=None))(
        *args
    )
    placed = [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(args, in_specs)]
    (_, got), grads = value_and_grad(sharded)(*placed)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=2e-4, atol=1e-5)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {
        "teacher": rng.normal(size=(BATCH, 5)).astype(np.float32),
        "student": rng.normal(size=(BATCH, 4)).astype(np.float32),
        "labels": rng.integers(0, 4, size=BATCH).astype(np.int32),
        "log_similarity": rng.normal(size=(BATCH, BATCH)).astype(np.float32),
        "triplets": np.stack([rng.choice(BATCH, 3, replace=False) for _ in range(BATCH)]).astype(
            np.int32
        ),
        "triplet_features": rng.normal(size=(BATCH, 3, 5)).astype(np.float32),
        "weights": (np.eye(5) + 0.2 * rng.normal(size=(5, 5))).astype(np.float32),
        "bias": (0.1 * rng.normal(size=5)).astype(np.float32),
    }


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_batch_distillation_all_triplets(mesh, data, divergence):
    def loss(t, s, axis_name):
        return losses.batch_triplet_distillation(
            t, s, divergence=divergence, block_size=4, student_temperature=0.5, axis_name=axis_name
        )

    assert_sharded_matches(
        mesh, loss, (data["teacher"], data["student"]), (ROWS, ROWS), REPLICATED, (0, 1)
    )


def test_batch_distillation_given_triplets(mesh, data):
    def loss(t, s, triplets, axis_name):
        return losses.batch_triplet_distillation(
            t, s, divergence="js", triplets=triplets, axis_name=axis_name
        )

    args = (data["teacher"], data["student"], data["triplets"])
    assert_sharded_matches(mesh, loss, args, (ROWS, ROWS, ROWS), REPLICATED, (0, 1))


def test_glocal_local_loss(mesh, data):
    def loss(t, s, axis_name):
        return losses.glocal_local_loss(t, s, temperature=0.5, axis_name=axis_name)

    assert_sharded_matches(
        mesh, loss, (data["teacher"], data["student"]), (ROWS, ROWS), ROWS, (0, 1)
    )


def test_glocal_objective(mesh, data):
    def loss(w, b, triplet_features, local_features, axis_name):
        return losses.glocal_objective(
            w,
            b,
            triplet_features,
            local_features,
            alpha=0.25,
            penalty_weight=0.1,
            temperature=0.5,
            axis_name=axis_name,
        )

    args = (data["weights"], data["bias"], data["triplet_features"], data["teacher"])
    assert_sharded_matches(
        mesh, loss, args, (REPLICATED, REPLICATED, ROWS, ROWS), REPLICATED, (0, 1)
    )


def test_generative_similarity_contrastive_loss(mesh, data):
    def loss(e, log_s, axis_name):
        return losses.generative_similarity_contrastive_loss(
            e, log_s, temperature=0.5, axis_name=axis_name
        )

    args = (data["student"], data["log_similarity"])
    assert_sharded_matches(mesh, loss, args, (ROWS, ROWS), ROWS, (0, 1))


def test_generative_similarity_info_nce_loss(mesh, data):
    def loss(a, p, axis_name):
        return losses.generative_similarity_info_nce_loss(
            a, p, temperature=0.5, axis_name=axis_name
        )

    pairs = (data["student"], data["student"] + 0.1 * data["teacher"][:, :4])
    assert_sharded_matches(mesh, loss, pairs, (ROWS, ROWS), ROWS, (0, 1))


def test_info_nce_loss(mesh, data):
    def loss(v1, v2, axis_name):
        return losses.info_nce_loss(v1, v2, temperature=0.5, axis_name=axis_name)

    views = (data["student"], data["student"] + 0.1 * data["teacher"][:, :4])
    assert_sharded_matches(mesh, loss, views, (ROWS, ROWS), ROWS, (0, 1))


def test_supervised_contrastive_loss(mesh, data):
    def loss(e, labels, axis_name):
        return losses.supervised_contrastive_loss(e, labels, temperature=0.5, axis_name=axis_name)

    assert_sharded_matches(mesh, loss, (data["student"], data["labels"]), (ROWS, ROWS), ROWS, (0,))


def test_batch_distillation_under_pmap(mesh, data):
    teacher, student = (
        x.reshape(N_DEVICES, BATCH // N_DEVICES, -1) for x in (data["teacher"], data["student"])
    )
    values = jax.pmap(
        lambda t, s: losses.batch_triplet_distillation(t, s, block_size=4, axis_name="data"),
        axis_name="data",
    )(teacher, student)
    expected = losses.batch_triplet_distillation(data["teacher"], data["student"])
    np.testing.assert_allclose(values, np.full(N_DEVICES, expected), rtol=2e-5)
