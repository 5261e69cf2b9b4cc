"""The contrastive baselines: NT-Xent (SimCLR) and supervised contrastive loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from alignjax import losses


def np_normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_log_softmax_excluding(row, exclude):
    keep = [j for j in range(len(row)) if j != exclude]
    m = row[keep].max()
    return row - m - np.log(np.exp(row[keep] - m).sum())


def np_nt_xent(view1, view2, temperature):
    z = np_normalize(np.concatenate([view1, view2]))
    logits = z @ z.T / temperature
    n = len(view1)
    per_anchor = []
    for a in range(2 * n):
        positive = (a + n) % (2 * n)
        per_anchor.append(-np_log_softmax_excluding(logits[a], a)[positive])
    per_anchor = np.array(per_anchor)
    return 0.5 * (per_anchor[:n] + per_anchor[n:])


def np_supcon(embeddings, labels, temperature):
    z = np_normalize(embeddings)
    logits = z @ z.T / temperature
    out = []
    for i in range(len(z)):
        log_p = np_log_softmax_excluding(logits[i], i)
        positives = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        out.append(-np.mean(log_p[positives]) if positives else 0.0)
    return np.array(out)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    view1 = rng.normal(size=(6, 4))
    return view1, view1 + 0.3 * rng.normal(size=(6, 4)), np.array([0, 1, 0, 2, 1, 0])


def test_info_nce_matches_numpy(batch):
    view1, view2, _ = batch
    got = losses.info_nce_loss(view1, view2, temperature=0.2)
    np.testing.assert_allclose(got, np_nt_xent(view1, view2, 0.2), rtol=1e-4)


def test_info_nce_by_hand():
    # Two orthogonal examples, identical views, T = 1: each anchor sees its positive at
    # cosine 1 and two negatives at cosine 0: -log(e / (e + 2)).
    z = np.eye(2)
    np.testing.assert_allclose(
        losses.info_nce_loss(z, z, temperature=1.0), [-np.log(np.e / (np.e + 2))] * 2, rtol=1e-6
    )


def test_supervised_contrastive_matches_numpy(batch):
    view1, _, labels = batch
    got = losses.supervised_contrastive_loss(view1, labels, temperature=0.5)
    np.testing.assert_allclose(got, np_supcon(view1, labels, 0.5), rtol=1e-4)
    assert float(got[3]) == 0.0  # label 2 has no positive


def test_supervised_contrastive_with_one_positive_each_is_info_nce(batch):
    view1, view2, _ = batch
    n = len(view1)
    labels = np.concatenate([np.arange(n), np.arange(n)])
    supcon = losses.supervised_contrastive_loss(
        np.concatenate([view1, view2]), labels, temperature=0.3
    )
    nt_xent = losses.info_nce_loss(view1, view2, temperature=0.3)
    np.testing.assert_allclose(0.5 * (supcon[:n] + supcon[n:]), nt_xent, rtol=1e-5)


def test_gradients(batch):
    view1, view2, labels = batch
    with jax.enable_x64(True):
        v1, v2 = jnp.asarray(view1), jnp.asarray(view2)
        check_grads(
            jax.jit(lambda a, b: losses.info_nce_loss(a, b, temperature=0.5)),
            (v1, v2),
            order=1,
            modes=["rev"],
        )
        check_grads(
            jax.jit(lambda a: losses.supervised_contrastive_loss(a, labels, temperature=0.5)),
            (v1,),
            order=1,
            modes=["rev"],
        )


def test_jit_agrees_with_eager(batch):
    view1, view2, labels = batch
    np.testing.assert_allclose(
        jax.jit(losses.info_nce_loss)(view1, view2), losses.info_nce_loss(view1, view2), rtol=1e-5
    )
    np.testing.assert_allclose(
        jax.jit(losses.supervised_contrastive_loss)(view1, labels),
        losses.supervised_contrastive_loss(view1, labels),
        rtol=1e-5,
    )


@pytest.fixture(scope="module")
def loss_and_grad():
    def loss(view1, view2, labels, temperature):
        return (
            losses.info_nce_loss(view1, view2, temperature=temperature).mean()
            + losses.supervised_contrastive_loss(view1, labels, temperature=temperature).mean()
        )

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(("norm", "temperature"), [(1.0, 1.0), (1e4, 1e-3)])
def test_finite_at_extremes(batch, loss_and_grad, dtype, norm, temperature):
    view1, view2, labels = batch
    v1, v2 = (jnp.asarray(norm * np_normalize(v), dtype) for v in (view1, view2))
    value, grads = loss_and_grad(v1, v2, labels, temperature)
    assert np.isfinite(value)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g, np.float32)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda v1, v2, y: losses.info_nce_loss(v1, v2[:5]),
            r"`view1` and `view2`.*\(6, 4\).*\(5, 4\)",
        ),
        (lambda v1, v2, y: losses.info_nce_loss(v1[0], v2[0]), r"`view1`.*\[B, d\].*\(4,\)"),
        (lambda v1, v2, y: losses.info_nce_loss(v1, v2, temperature=0.0), r"`temperature`"),
        (lambda v1, v2, y: losses.supervised_contrastive_loss(v1, y[:5]), r"batch sizes.*6.*5"),
        (
            lambda v1, v2, y: losses.supervised_contrastive_loss(v1, y.astype(float)),
            r"`labels`.*integer",
        ),
        (
            lambda v1, v2, y: losses.supervised_contrastive_loss(v1, y[:, None]),
            r"`labels`.*\[B\].*\(6, 1\)",
        ),
    ],
)
def test_bad_input_raises(batch, call, message):
    with pytest.raises(ValueError, match=message):
        call(*batch)
