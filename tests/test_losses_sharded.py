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


GRAD_DEVICES = 2
GRAD_BATCH = 64


@pytest.fixture(scope="module")
def student_model():
    """A batch, a teacher and a linear student ``features @ weights`` (replicated weights)."""
    rng = np.random.default_rng(1)
    return {
        "weights": rng.normal(size=(4, 3)).astype(np.float32),
        "teacher": rng.normal(size=(GRAD_BATCH, 5)).astype(np.float32),
        "features": rng.normal(size=(GRAD_BATCH, 4)).astype(np.float32),
    }


def _student_loss(divergence):
    def loss(weights, teacher, features, axis_name=None):
        return losses.batch_triplet_distillation(
            teacher, features @ weights, divergence=divergence, block_size=16, axis_name=axis_name
        )

    return loss


def _grads_inside(loss):
    """Per-device gradients of weights and local features, and the weights' pmean and psum."""

    def per_device(weights, teacher, features):
        grads = jax.grad(functools.partial(loss, axis_name="data"), argnums=(0, 2))
        g_weights, g_features = grads(weights, teacher, features)
        return (
            g_features,
            jax.lax.pmean(g_weights, "data"),
            jax.lax.psum(g_weights, "data"),
        )

    return per_device


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_batch_distillation_gradient_inside_pmap(student_model, divergence):
    """Under pmap each device's gradient is n_devices times too large: pmean of a replicated
    parameter's gradients is the unsharded gradient, psum is not."""
    if jax.local_device_count() < GRAD_DEVICES:
        pytest.skip(f"needs {GRAD_DEVICES} devices")
    loss = _student_loss(divergence)
    w, t, x = student_model["weights"], student_model["teacher"], student_model["features"]
    expected_w, expected_x = jax.grad(loss, argnums=(0, 2))(w, t, x)
    g_x, pmean, psum = jax.pmap(_grads_inside(loss), axis_name="data", in_axes=(None, 0, 0))(
        w, t.reshape(GRAD_DEVICES, -1, 5), x.reshape(GRAD_DEVICES, -1, 4)
    )
    for device in range(GRAD_DEVICES):
        np.testing.assert_allclose(pmean[device], expected_w, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(psum[device], GRAD_DEVICES * expected_w, rtol=1e-5, atol=1e-7)
        assert not np.allclose(psum[device], expected_w, rtol=0.1)
    np.testing.assert_allclose(
        g_x.reshape(GRAD_BATCH, 4), GRAD_DEVICES * expected_x, rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_batch_distillation_gradient_inside_shard_map(student_model, divergence):
    """Under shard_map (check_vma) the gradients come out unsharded: pmean keeps them, psum
    does not."""
    if jax.device_count() < GRAD_DEVICES:
        pytest.skip(f"needs {GRAD_DEVICES} devices")
    mesh = jax.make_mesh(
        (GRAD_DEVICES,),
        ("data",),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=jax.devices()[:GRAD_DEVICES],
    )
    loss = _student_loss(divergence)
    w, t, x = student_model["weights"], student_model["teacher"], student_model["features"]
    expected_w, expected_x = jax.grad(loss, argnums=(0, 2))(w, t, x)
    g_x, pmean, psum = jax.jit(
        jax.shard_map(
            _grads_inside(loss),
            mesh=mesh,
            in_specs=(REPLICATED, ROWS, ROWS),
            out_specs=(ROWS, REPLICATED, REPLICATED),
        )
    )(w, t, x)
    np.testing.assert_allclose(pmean, expected_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(psum, GRAD_DEVICES * expected_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_x, expected_x, rtol=1e-5, atol=1e-7)


def test_per_row_loss_gradient_inside_the_map(student_model):
    """A per-row loss (InfoNCE, mean of the local rows): under pmap the pmean of the
    gradients is the unsharded gradient; under shard_map, the gradient of the pmean of the
    loss is."""
    if jax.device_count() < GRAD_DEVICES:
        pytest.skip(f"needs {GRAD_DEVICES} devices")
    x = student_model["features"]
    views = (x, x + 0.1 * student_model["teacher"][:, :4])

    def loss(weights, v1, v2, axis_name=None):
        per_row = losses.info_nce_loss(v1 @ weights, v2 @ weights, axis_name=axis_name)
        return per_row.mean()

    expected = jax.grad(loss)(student_model["weights"], *views)

    def pmapped(weights, v1, v2):
        return jax.lax.pmean(
            jax.grad(functools.partial(loss, axis_name="data"))(weights, v1, v2), "data"
        )

    got = jax.pmap(pmapped, axis_name="data", in_axes=(None, 0, 0))(
        student_model["weights"], *(v.reshape(GRAD_DEVICES, -1, 4) for v in views)
    )
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-7)

    def global_loss(weights, v1, v2):
        return jax.lax.pmean(loss(weights, v1, v2, axis_name="data"), "data")

    mesh = jax.make_mesh(
        (GRAD_DEVICES,),
        ("data",),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=jax.devices()[:GRAD_DEVICES],
    )
    got = jax.jit(
        jax.shard_map(
            jax.grad(global_loss),
            mesh=mesh,
            in_specs=(REPLICATED, ROWS, ROWS),
            out_specs=REPLICATED,
        )
    )(student_model["weights"], *views)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
