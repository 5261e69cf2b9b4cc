"""gLocal: global and local losses, penalties and the objective."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from alignjax import losses


def np_normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_local(teacher, student, temperature):
    """Row-wise cross-entropy of the off-diagonal row-softmaxes, as a loop."""
    t = np_normalize(teacher) @ np_normalize(teacher).T / temperature
    s = np_normalize(student) @ np_normalize(student).T / temperature
    out = []
    for i in range(len(t)):
        others = [j for j in range(len(t)) if j != i]
        p = np.exp(t[i, others]) / np.exp(t[i, others]).sum()
        log_q = s[i, others] - np.log(np.exp(s[i, others]).sum())
        out.append(-np.sum(p * log_q))
    return np.array(out)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {
        "triplets": rng.normal(size=(5, 3, 4)),
        "local": rng.normal(size=(6, 4)),
        "weights": np.eye(4) + 0.3 * rng.normal(size=(4, 4)),
        "bias": 0.1 * rng.normal(size=4),
    }


def test_global_loss_matches_numpy(data):
    z = data["triplets"] @ data["weights"] + data["bias"]
    s = np.stack([np.sum(z[:, a] * z[:, b], -1) for a, b in [(0, 1), (0, 2), (1, 2)]], -1)
    expected = -(s[:, 0] - np.log(np.exp(s).sum(-1)))
    got = losses.glocal_global_loss(data["triplets"], data["weights"], data["bias"])
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_local_loss_matches_numpy(data):
    student = data["local"] @ data["weights"]
    got = losses.glocal_local_loss(data["local"], student, temperature=0.5)
    np.testing.assert_allclose(got, np_local(data["local"], student, 0.5), rtol=1e-4)


def test_local_loss_is_minimised_by_the_teacher_itself(data):
    """Cross-entropy >= entropy, with equality when the student's rows are the teacher's."""
    x = data["local"]
    at_teacher = losses.glocal_local_loss(x, 3.0 * x, temperature=1.0)  # cosine ignores scale
    elsewhere = losses.glocal_local_loss(x, x @ data["weights"], temperature=1.0)
    assert np.all(np.asarray(elsewhere) >= np.asarray(at_teacher) - 1e-6)


def test_penalties_by_hand():
    w = np.array([[1.0, 2.0], [0.0, 3.0]])
    # mean diag = 2: (1 - 2)^2 + 2^2 + 0 + (3 - 2)^2 = 6.
    np.testing.assert_allclose(losses.scaled_identity_penalty(w), 6.0)
    np.testing.assert_allclose(losses.scaled_identity_penalty(5.0 * np.eye(3)), 0.0)
    rectangular = np.array([[2.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    np.testing.assert_allclose(losses.scaled_identity_penalty(rectangular), 1.0)
    np.testing.assert_allclose(losses.frobenius_penalty(w), np.sqrt(14.0), rtol=1e-6)
    grad = jax.grad(losses.frobenius_penalty)(jnp.zeros((2, 2)))
    np.testing.assert_array_equal(grad, np.zeros((2, 2)))


@pytest.mark.parametrize("penalty", ["scaled_identity", "frobenius"])
def test_objective_composes_the_terms(data, penalty):
    alpha, lam = 0.25, 0.1
    got = losses.glocal_objective(
        data["weights"],
        data["bias"],
        data["triplets"],
        data["local"],
        alpha=alpha,
        penalty_weight=lam,
        temperature=0.5,
        penalty=penalty,
    )
    student = data["local"] @ data["weights"] + data["bias"]
    regulariser = {
        "scaled_identity": losses.scaled_identity_penalty,
        "frobenius": losses.frobenius_penalty,
    }
    expected = (
        (1 - alpha)
        * np.mean(losses.glocal_global_loss(data["triplets"], data["weights"], data["bias"]))
        + alpha * np.mean(np_local(data["local"], student, 0.5))
        + lam * float(regulariser[penalty](data["weights"]))
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_naive_objective_needs_no_local_batch(data):
    got = losses.glocal_objective(
        data["weights"],
        None,
        data["triplets"],
        None,
        alpha=0.0,
        penalty_weight=1.0,
        penalty="frobenius",
    )
    expected = np.mean(losses.glocal_global_loss(data["triplets"], data["weights"])) + float(
        losses.frobenius_penalty(data["weights"])
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_gradients(data):
    with jax.enable_x64(True):
        args = tuple(jnp.asarray(data[k]) for k in ("weights", "bias", "triplets", "local"))
        objective = jax.jit(
            lambda w, b, t, x: losses.glocal_objective(
                w, b, t, x, alpha=0.3, penalty_weight=0.5, temperature=0.5
            )
        )
        check_grads(objective, args, order=1, modes=["rev"])


def test_jit_and_vmap_agree_with_eager(data):
    eager = losses.glocal_global_loss(data["triplets"], data["weights"])
    np.testing.assert_allclose(
        jax.jit(losses.glocal_global_loss)(data["triplets"], data["weights"]), eager, rtol=1e-6
    )
    mapped = jax.vmap(losses.glocal_global_loss, in_axes=(0, None))(
        data["triplets"], data["weights"]
    )
    np.testing.assert_allclose(mapped, eager, rtol=1e-6)


def test_teacher_similarities_are_the_cosines(data):
    x = data["local"]
    got = losses.glocal_teacher_similarities(x)
    np.testing.assert_allclose(got, np_normalize(x) @ np_normalize(x).T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.diag(got), 1.0, rtol=1e-6)


def test_local_loss_from_a_block_of_precomputed_similarities_is_the_local_loss(data):
    """A batch's block of the whole set's teacher similarities gives the same losses and
    gradients as the teacher features of the batch."""
    x = data["local"]
    rows = np.array([4, 0, 2, 5])
    block = np.asarray(losses.glocal_teacher_similarities(x))[np.ix_(rows, rows)]
    student = jnp.asarray(x[rows] @ data["weights"], jnp.float32)

    def from_features(s):
        return jnp.sum(losses.glocal_local_loss(x[rows], s, temperature=0.5) * jnp.arange(1, 5))

    def from_similarities(s):
        per_row = losses.glocal_local_loss_from_similarities(block, s, temperature=0.5)
        return jnp.sum(per_row * jnp.arange(1, 5))

    np.testing.assert_allclose(
        losses.glocal_local_loss_from_similarities(block, student, temperature=0.5),
        np_local(x[rows], x[rows] @ data["weights"], 0.5),
        rtol=1e-4,
    )
    np.testing.assert_allclose(from_similarities(student), from_features(student), rtol=1e-5)
    np.testing.assert_allclose(
        jax.grad(from_similarities)(student), jax.grad(from_features)(student), rtol=1e-4
    )


def test_gradients_from_precomputed_similarities(data):
    with jax.enable_x64(True):
        x = jnp.asarray(data["local"])
        teacher = losses.glocal_teacher_similarities(x)
        weights = jnp.arange(1.0, len(x) + 1)

        def loss(s):
            return jnp.sum(
                weights * losses.glocal_local_loss_from_similarities(teacher, s, temperature=0.5)
            )

        check_grads(loss, (x @ jnp.asarray(data["weights"]),), order=2, modes=["fwd", "rev"])
        check_grads(
            lambda w, b: losses.glocal_objective(
                w,
                b,
                jnp.asarray(data["triplets"]),
                x,
                alpha=0.3,
                penalty_weight=0.5,
                temperature=0.5,
                teacher_similarities=teacher,
            ),
            (jnp.asarray(data["weights"]), jnp.asarray(data["bias"])),
            order=1,
            modes=["rev"],
        )


def test_objective_with_precomputed_similarities_is_the_objective(data):
    kwargs = dict(alpha=0.25, penalty_weight=0.1, temperature=0.5)
    args = (data["weights"], data["bias"], data["triplets"], data["local"])
    teacher = losses.glocal_teacher_similarities(data["local"])
    np.testing.assert_allclose(
        losses.glocal_objective(*args, teacher_similarities=teacher, **kwargs),
        losses.glocal_objective(*args, **kwargs),
        rtol=1e-6,
    )


@pytest.fixture(scope="module")
def objective_and_grad():
    def objective(w, triplets, x, temperature):
        return losses.glocal_objective(
            w, None, triplets, x, alpha=0.5, penalty_weight=1.0, temperature=temperature
        )

    return jax.jit(jax.value_and_grad(objective))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(("norm", "temperature"), [(1.0, 1.0), (1e4, 1e-3)])
def test_finite_at_extremes(data, objective_and_grad, dtype, norm, temperature):
    x = jnp.asarray(norm * np_normalize(data["local"]), dtype)
    triplets = jnp.asarray(norm * np_normalize(data["triplets"]), dtype)
    value, grad = objective_and_grad(jnp.asarray(data["weights"], dtype), triplets, x, temperature)
    assert np.isfinite(value)
    assert np.all(np.isfinite(np.asarray(grad, np.float32)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda d: losses.glocal_global_loss(d["triplets"][:, :2], d["weights"]),
            r"`triplet_features`.*\[\.\.\., 3, p\].*\(5, 2, 4\)",
        ),
        (
            lambda d: losses.glocal_global_loss(d["triplets"], np.eye(3)),
            r"`triplet_features`.*p = 3.*\(5, 3, 4\)",
        ),
        (
            lambda d: losses.glocal_global_loss(d["triplets"], d["weights"], np.ones(3)),
            r"`bias`.*q = 4.*\(3,\)",
        ),
        (lambda d: losses.glocal_local_loss(d["local"], d["local"][:5]), r"batch sizes.*6.*5"),
        (lambda d: losses.glocal_local_loss(d["local"][:1], d["local"][:1]), r"at least 2 items"),
        (
            lambda d: losses.glocal_local_loss(d["local"], d["local"], temperature=-0.5),
            r"`temperature`",
        ),
        (lambda d: losses.scaled_identity_penalty(np.ones(3)), r"`weights`.*\[p, q\].*\(3,\)"),
        (
            lambda d: losses.glocal_local_loss_from_similarities(np.eye(5), d["local"]),
            r"`teacher_similarities`.*\[B, B\].*B = 6.*\(5, 5\)",
        ),
        (
            lambda d: losses.glocal_local_loss_from_similarities(np.ones(6), d["local"]),
            r"`teacher_similarities`.*\(6,\)",
        ),
        (
            lambda d: losses.glocal_objective(
                d["weights"], None, d["triplets"], None, alpha=0.25, penalty_weight=1.0
            ),
            r"`local_features` is None.*`alpha` must be 0",
        ),
        (
            lambda d: losses.glocal_objective(
                d["weights"], None, d["triplets"], d["local"], alpha=1.5, penalty_weight=1.0
            ),
            r"`alpha`.*\[0, 1\].*1.5",
        ),
        (
            lambda d: losses.glocal_objective(
                d["weights"], None, d["triplets"], d["local"], alpha=0.5, penalty_weight=-1.0
            ),
            r"`penalty_weight`.*non-negative",
        ),
        (
            lambda d: losses.glocal_objective(
                d["weights"],
                None,
                d["triplets"],
                d["local"],
                alpha=0.5,
                penalty_weight=1.0,
                penalty="l1",
            ),
            r"`penalty`.*'l1'",
        ),
    ],
)
def test_bad_input_raises(data, call, message):
    with pytest.raises(ValueError, match=message):
        call(data)
