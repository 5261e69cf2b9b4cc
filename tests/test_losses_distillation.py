"""Triplet distillation: KL/JS per triplet, over all triplets of a batch, and AligNet's
uncertainty distillation."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from alignjax import losses


def np_softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_kl(p, q):
    return np.sum(p * (np.log(p) - np.log(q)), -1)


def np_js(p, q):
    m = (p + q) / 2
    return 0.5 * np_kl(p, m) + 0.5 * np_kl(q, m)


NP_DIVERGENCES = {"kl": np_kl, "js": np_js}


def np_batch_distillation(teacher, student, divergence, t_temp, s_temp, kernel, triplets=None):
    """Brute force: a Python loop over the triplets."""

    def sims(x):
        x = np.asarray(x, np.float64)
        if kernel == "cosine":
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T

    t, s = sims(teacher), sims(student)
    if triplets is None:
        triplets = itertools.combinations(range(len(t)), 3)
    values = []
    for i, j, k in triplets:
        p = np_softmax(np.array([t[i, j], t[i, k], t[j, k]]) / t_temp)
        q = np_softmax(np.array([s[i, j], s[i, k], s[j, k]]) / s_temp)
        values.append(NP_DIVERGENCES[divergence](p, q))
    return np.mean(values)


@pytest.fixture(scope="module")
def sims():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_triplet_divergences_match_numpy(sims, divergence):
    t, s = sims
    fn = {"kl": losses.triplet_kl_divergence, "js": losses.triplet_js_divergence}[divergence]
    got = fn(t, s, teacher_temperature=0.5, student_temperature=2.0)
    expected = NP_DIVERGENCES[divergence](np_softmax(t / 0.5), np_softmax(s / 2.0))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    assert got.shape == (6,)


def test_divergences_by_hand():
    t = jnp.log(jnp.array([0.5, 0.25, 0.25]))
    # KL(p || uniform) = log 3 - H(p) = log 3 - 1.5 log 2.
    np.testing.assert_allclose(
        losses.triplet_kl_divergence(t, jnp.zeros(3)), math.log(3) - 1.5 * math.log(2), rtol=1e-5
    )
    p, q = np.array([0.5, 0.25, 0.25]), np.array([1 / 3] * 3)
    m = (p + q) / 2
    expected_js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    np.testing.assert_allclose(
        losses.triplet_js_divergence(t, jnp.zeros(3)), expected_js, rtol=1e-5
    )
    np.testing.assert_allclose(losses.triplet_kl_divergence(t, t), 0.0, atol=1e-7)


def test_divergences_broadcast(sims):
    t, s = sims
    got = losses.triplet_kl_divergence(t[:1], s)
    np.testing.assert_allclose(got, np_kl(np_softmax(t[:1]), np_softmax(s)), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_triplet_divergence_gradients(sims, divergence):
    fn = {"kl": losses.triplet_kl_divergence, "js": losses.triplet_js_divergence}[divergence]
    with jax.enable_x64(True):
        t, s = (jnp.asarray(x, jnp.float64) for x in sims)
        check_grads(
            jax.jit(lambda a, b: fn(a, b, student_temperature=0.5)), (t, s), order=1, modes=["rev"]
        )


def test_uncertainty_distillation_matches_numpy(sims):
    _, s = sims
    p = np_softmax(np.random.default_rng(3).normal(size=(6, 3)))
    p[0] = [0.0, 0.5, 0.5]  # a zero target probability contributes 0 log 0 = 0
    got = losses.uncertainty_distillation_loss(p.astype(np.float32), s, temperature=0.5)
    q = np_softmax(s / 0.5)
    expected = np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q), 0.0), -1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    with jax.enable_x64(True):
        check_grads(
            jax.jit(lambda x: losses.uncertainty_distillation_loss(p, x, temperature=0.5)),
            (jnp.asarray(s, jnp.float64),),
            order=1,
            modes=["rev"],
        )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: losses.triplet_kl_divergence(np.ones((2, 3)), np.ones((2, 4))),
            r"`student_similarities`.*\(2, 4\)",
        ),
        (
            lambda: losses.triplet_js_divergence(np.ones((2, 3)), np.ones((4, 3))),
            r"do not broadcast.*\(2, 3\).*\(4, 3\)",
        ),
        (
            lambda: losses.triplet_kl_divergence(np.ones(3), np.ones(3), teacher_temperature=0.0),
            r"`teacher_temperature`.*positive",
        ),
        (
            lambda: losses.triplet_js_divergence(np.ones(3), np.ones(3), student_temperature=-2.0),
            r"`student_temperature`.*-2",
        ),
        (
            lambda: losses.uncertainty_distillation_loss(np.array([0.5, 0.2, 0.2]), np.ones(3)),
            r"`target_probs`.*sum to one",
        ),
        (
            lambda: losses.uncertainty_distillation_loss(np.array([1.2, -0.2, 0.0]), np.ones(3)),
            r"`target_probs`.*non-negative",
        ),
        (
            lambda: losses.uncertainty_distillation_loss(np.ones((2, 2)) / 2, np.ones((2, 3))),
            r"`target_probs`.*\(2, 2\)",
        ),
        (
            lambda: losses.uncertainty_distillation_loss(
                np.ones(3) / 3, np.ones(3), temperature=0.0
            ),
            r"`temperature`",
        ),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_probability_checks_are_skipped_under_jit():
    """Documented: values are only checked on concrete inputs."""
    value = jax.jit(losses.uncertainty_distillation_loss)(jnp.array([0.5, 0.2, 0.2]), jnp.zeros(3))
    assert np.isfinite(value)


# Batch distillation over all triplets.

BATCH = 7


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    return rng.normal(size=(BATCH, 5)).astype(np.float32), rng.normal(size=(BATCH, 4)).astype(
        np.float32
    )


@pytest.mark.parametrize(
    ("divergence", "kernel", "block_size"),
    [("kl", "dot", 64), ("js", "dot", 3), ("kl", "cosine", 2), ("js", "cosine", 64)],
)
def test_batch_distillation_equals_brute_force(batch, divergence, kernel, block_size):
    teacher, student = batch
    got = jax.jit(
        lambda t, s: losses.batch_triplet_distillation(
            t,
            s,
            divergence=divergence,
            teacher_temperature=0.7,
            student_temperature=1.3,
            kernel=kernel,
            block_size=block_size,
        )
    )(teacher, student)
    expected = np_batch_distillation(teacher, student, divergence, 0.7, 1.3, kernel)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_a_teacher_kernel_apart_from_the_students(batch):
    # AligNet's all-triplets student: cosine student against the teacher's dot products,
    # i.e. the student's rows normalised, both compared by dot product.
    teacher, student = batch
    got = losses.batch_triplet_distillation(
        teacher, student, divergence="js", kernel="cosine", teacher_kernel="dot", block_size=2
    )
    unit = student / np.linalg.norm(student, axis=1, keepdims=True)
    expected = np_batch_distillation(teacher, unit, "js", 1.0, 1.0, "dot")
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    same = losses.batch_triplet_distillation(teacher, student, kernel="cosine")
    assert not np.isclose(got, same)  # the teacher's kernel was not the student's


def test_unordered_triplets_give_the_mean_over_ordered_ones(batch):
    """The documented invariance: every ordering of a triplet has the same divergence."""
    teacher, student = batch
    ordered = [t for t in itertools.permutations(range(BATCH), 3)]
    expected = np_batch_distillation(teacher, student, "kl", 1.0, 1.0, "dot", ordered)
    np.testing.assert_allclose(
        losses.batch_triplet_distillation(teacher, student), expected, rtol=1e-5
    )


def test_batch_distillation_with_given_triplets(batch):
    teacher, student = batch
    triplets = np.array([[0, 1, 2], [6, 3, 1], [2, 5, 4], [0, 1, 2]], np.int32)
    got = losses.batch_triplet_distillation(
        teacher, student, divergence="js", student_temperature=0.5, triplets=triplets
    )
    expected = np_batch_distillation(teacher, student, "js", 1.0, 0.5, "dot", triplets)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_batch_distillation_gradients(divergence):
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        teacher = jnp.asarray(rng.normal(size=(5, 3)))
        student = jnp.asarray(rng.normal(size=(5, 3)))

        def loss(t, s):
            return losses.batch_triplet_distillation(
                t, s, divergence=divergence, block_size=2, student_temperature=0.5
            )

        check_grads(jax.jit(loss), (teacher, student), order=1, modes=["rev"])
        value, _ = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(teacher, student)
        np.testing.assert_allclose(
            value, np_batch_distillation(teacher, student, divergence, 1.0, 0.5, "dot")
        )


def test_batch_distillation_vmap_matches_a_loop(batch):
    teacher, student = batch
    students = np.stack([student, student[::-1]])
    mapped = jax.vmap(lambda s: losses.batch_triplet_distillation(teacher, s, block_size=4))(
        students
    )
    for got, s in zip(mapped, students):
        np.testing.assert_allclose(
            got, np_batch_distillation(teacher, s, "kl", 1.0, 1.0, "dot"), rtol=1e-5
        )


def test_batch_distillation_jit_matches_eager(batch):
    teacher, student = batch
    eager = losses.batch_triplet_distillation(teacher, student, block_size=4)
    np.testing.assert_allclose(
        jax.jit(lambda t, s: losses.batch_triplet_distillation(t, s, block_size=4))(
            teacher, student
        ),
        eager,
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"student_embeddings": np.ones((6, 4))}, r"batch sizes.*7.*6"),
        (
            {"teacher_embeddings": np.ones((2, 5)), "student_embeddings": np.ones((2, 4))},
            r"at least 3 items.*\(2, 5\)",
        ),
        (
            {"teacher_embeddings": np.ones((7, 5, 1))},
            r"`teacher_embeddings`.*\[B, d_t\].*\(7, 5, 1\)",
        ),
        ({"divergence": "tv"}, r"`divergence`.*'tv'"),
        ({"kernel": "rbf"}, r"`kernel`.*'rbf'"),
        ({"teacher_kernel": "rbf"}, r"`teacher_kernel`.*'rbf'"),
        ({"teacher_temperature": 0.0}, r"`teacher_temperature`"),
        ({"triplets": np.array([[0, 1, 7]])}, r"`triplets`.*7 items.*0 to 7"),
        ({"triplets": np.array([[0.0, 1.0, 2.0]])}, r"`triplets`.*integer"),
        ({"triplets": np.array([[0, 1]])}, r"`triplets`.*\[n, 3\].*\(1, 2\)"),
        ({"block_size": 0}, r"`block_size`"),
    ],
)
def test_batch_distillation_bad_input(batch, kwargs, message):
    args = {"teacher_embeddings": batch[0], "student_embeddings": batch[1]}
    args.update(kwargs)
    teacher, student = args.pop("teacher_embeddings"), args.pop("student_embeddings")
    with pytest.raises(ValueError, match=message):
        losses.batch_triplet_distillation(teacher, student, **args)


@pytest.fixture(scope="module")
def extreme_loss_and_grad():
    def loss(t, s, temperature):
        temperatures = {"teacher_temperature": temperature, "student_temperature": temperature}
        t_sims = losses.triplet_similarities(t[:6].reshape(2, 3, -1))
        s_sims = losses.triplet_similarities(s[:6].reshape(2, 3, -1))
        return sum(
            [
                losses.batch_triplet_distillation(t, s, divergence=k, block_size=4, **temperatures)
                for k in ("kl", "js")
            ]
            + [
                jnp.mean(fn(t_sims, s_sims, **temperatures))
                for fn in (losses.triplet_kl_divergence, losses.triplet_js_divergence)
            ]
            + [
                jnp.mean(
                    losses.uncertainty_distillation_loss(
                        jnp.array([0.6, 0.3, 0.1]), s_sims, temperature=temperature
                    )
                )
            ]
        )

    return jax.jit(jax.value_and_grad(loss, argnums=1))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(("norm", "temperature"), [(1.0, 1.0), (1e4, 1e-3)])
def test_finite_at_extremes(extreme_loss_and_grad, dtype, norm, temperature):
    rng = np.random.default_rng(4)
    t, s = (rng.normal(size=(BATCH, 8)) for _ in range(2))
    t, s = (jnp.asarray(norm * x / np.linalg.norm(x, axis=1, keepdims=True), dtype) for x in (t, s))
    value, grad = extreme_loss_and_grad(t, s, temperature)
    assert np.isfinite(value)
    assert np.all(np.isfinite(np.asarray(grad, np.float32)))
