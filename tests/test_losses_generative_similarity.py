"""The contrastive losses that learn the generative similarity: by hand, against numpy,
gradients, extremes and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from alignjax import losses
from alignjax.data import generative_similarity

MEANS = np.array([[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0], [0.0, -2.0, 0.0]])
STDS = np.array([1.0, 0.7, 1.5])
WEIGHTS = np.array([0.5, 0.3, 0.2])


def test_softmax_and_margin_losses_by_hand():
    e = np.array([[[1.0, 0.0], [2.0, 1.0], [0.0, -1.0]]])
    # dot: s(a, p) = 2, s(a, n) = 0; T = 0.5: softplus(-(2 - 0) / 0.5) = log(1 + e^-4).
    np.testing.assert_allclose(
        losses.generative_similarity_softmax_loss(e, temperature=0.5),
        [np.log1p(np.exp(-4.0))],
        rtol=1e-6,
    )
    cos_ap, cos_an = 2 / np.sqrt(5), 0.0
    np.testing.assert_allclose(
        losses.generative_similarity_softmax_loss(e, kernel="cosine"),
        [np.log1p(np.exp(-(cos_ap - cos_an)))],
        rtol=1e-6,
    )
    # d(a, p) = 1 + 1 = 2, d(a, n) = 1 + 1 = 2: relu(2 - 2 + m) = m.
    np.testing.assert_allclose(
        losses.generative_similarity_margin_loss(e, margin=0.3), [0.3], rtol=1e-6
    )
    far = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
    assert float(losses.generative_similarity_margin_loss(far)) == 0.0


def np_soft_contrastive(emb, log_s, temperature):
    logits = emb @ emb.T / temperature
    out = []
    for i in range(len(emb)):
        others = [j for j in range(len(emb)) if j != i]
        q = np.exp(log_s[i, others] - log_s[i, others].max())
        q = q / q.sum()
        z = logits[i, others]
        log_p = z - z.max() - np.log(np.exp(z - z.max()).sum())
        out.append(-np.sum(q * log_p))
    return np.array(out)


def test_soft_target_contrastive_matches_numpy():
    # Targets: the exact s_gen of 8 points of a Gaussian mixture.
    rng = np.random.default_rng(0)
    k = rng.choice(len(WEIGHTS), size=8, p=WEIGHTS)
    x = MEANS[k] + STDS[k, None] * rng.normal(size=(8, MEANS.shape[1]))
    lx = np.asarray(generative_similarity.gaussian_component_log_likelihoods(x, MEANS, STDS))
    log_s = np.asarray(
        generative_similarity.mixture_log_generative_similarity(
            lx[:, None], lx[None], np.log(WEIGHTS)
        ),
        np.float64,
    )
    emb = np.random.default_rng(5).normal(size=(8, 4))
    got = losses.generative_similarity_contrastive_loss(
        emb.astype(np.float32), log_s, temperature=0.5
    )
    np.testing.assert_allclose(got, np_soft_contrastive(emb, log_s, 0.5), rtol=1e-4)


def np_pair_info_nce(anchors, positives, temperature):
    """Both directions of the pair InfoNCE, written out row by row."""
    logits = anchors @ positives.T / temperature

    def own_log_softmax(m):
        return np.array(
            [row[i] - np.log(np.exp(row - row.max()).sum()) - row.max() for i, row in enumerate(m)]
        )

    return -0.5 * (own_log_softmax(logits) + own_log_softmax(logits.T))


def test_info_nce_loss_matches_numpy_and_by_hand():
    rng = np.random.default_rng(8)
    a, p = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    got = losses.generative_similarity_info_nce_loss(
        a.astype(np.float32), p.astype(np.float32), temperature=0.7
    )
    np.testing.assert_allclose(got, np_pair_info_nce(a, p, 0.7), rtol=1e-5)

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    cosine = losses.generative_similarity_info_nce_loss(a, p, kernel="cosine", temperature=0.7)
    np.testing.assert_allclose(cosine, np_pair_info_nce(unit(a), unit(p), 0.7), rtol=1e-5)
    # Two pairs, each item a dot product of 2 with its partner and 0 with the other pair,
    # T = 0.5: -log(e^4 / (e^4 + 1)) in both directions.
    z = np.sqrt(2.0) * np.eye(2)
    np.testing.assert_allclose(
        losses.generative_similarity_info_nce_loss(z, z, temperature=0.5),
        [np.log1p(np.exp(-4.0))] * 2,
        rtol=1e-5,
    )
    # Unlike SimCLR's form, an anchor is never contrasted with the other anchors.
    twins = np.stack([a[0], a[0]])
    np.testing.assert_allclose(
        losses.generative_similarity_info_nce_loss(twins, np.stack([p[0], 3 * p[0]])),
        np_pair_info_nce(twins, np.stack([p[0], 3 * p[0]]), 1.0),
        rtol=1e-5,
    )
    jitted = jax.jit(lambda x, y: losses.generative_similarity_info_nce_loss(x, y, temperature=0.7))
    np.testing.assert_allclose(jitted(a, p), got, rtol=1e-5)


def test_contrastive_losses_gradients():
    rng = np.random.default_rng(6)
    with jax.enable_x64(True):
        triplets = jnp.asarray(rng.normal(size=(4, 3, 3)))
        check_grads(
            jax.jit(
                lambda e: losses.generative_similarity_softmax_loss(
                    e, kernel="cosine", temperature=0.5
                )
            ),
            (triplets,),
            order=1,
            modes=["rev"],
        )
        check_grads(
            jax.jit(lambda e: losses.generative_similarity_margin_loss(e, margin=10.0)),
            (triplets,),
            order=1,
            modes=["rev"],
        )
        pairs = jnp.asarray(rng.normal(size=(2, 5, 3)))
        check_grads(
            jax.jit(lambda a, p: losses.generative_similarity_info_nce_loss(a, p, temperature=0.7)),
            (pairs[0], pairs[1]),
            order=1,
            modes=["rev"],
        )
        emb, log_s = jnp.asarray(rng.normal(size=(5, 3))), jnp.asarray(rng.normal(size=(5, 5)))
        check_grads(
            jax.jit(
                lambda e, t: losses.generative_similarity_contrastive_loss(e, t, temperature=0.7)
            ),
            (emb, log_s),
            order=1,
            modes=["rev"],
        )


@pytest.fixture(scope="module")
def extreme_loss_and_grad():
    def loss(triplets, batch, temperature):
        log_s = jnp.zeros((batch.shape[0], batch.shape[0]))
        return (
            losses.generative_similarity_softmax_loss(triplets, temperature=temperature).mean()
            + losses.generative_similarity_margin_loss(triplets).mean()
            + losses.generative_similarity_contrastive_loss(
                batch, log_s, temperature=temperature
            ).mean()
            + losses.generative_similarity_info_nce_loss(
                batch, batch[::-1], temperature=temperature
            ).mean()
        )

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(("norm", "temperature"), [(1.0, 1.0), (1e4, 1e-3)])
def test_losses_finite_at_extremes(extreme_loss_and_grad, dtype, norm, temperature):
    rng = np.random.default_rng(7)
    triplets, batch = rng.normal(size=(4, 3, 8)), rng.normal(size=(6, 8))
    triplets, batch = (
        jnp.asarray(norm * a / np.linalg.norm(a, axis=-1, keepdims=True), dtype)
        for a in (triplets, batch)
    )
    value, grads = extreme_loss_and_grad(triplets, batch, temperature)
    assert np.isfinite(value)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g, np.float32)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: losses.generative_similarity_softmax_loss(np.ones((2, 4, 3))),
            r"`embeddings`.*\(2, 4, 3\)",
        ),
        (
            lambda: losses.generative_similarity_softmax_loss(np.ones((3, 3)), temperature=0.0),
            r"`temperature`",
        ),
        (
            lambda: losses.generative_similarity_margin_loss(np.ones((3, 3)), margin=-1.0),
            r"`margin`.*non-negative",
        ),
        (
            lambda: losses.generative_similarity_contrastive_loss(
                np.ones((4, 2)), np.zeros((4, 3))
            ),
            r"`log_similarity`.*\[4, 4\].*\(4, 3\)",
        ),
        (
            lambda: losses.generative_similarity_contrastive_loss(
                np.ones((1, 2)), np.zeros((1, 1))
            ),
            r"at least 2 items",
        ),
        (
            lambda: losses.generative_similarity_contrastive_loss(
                np.ones((4, 2)), np.zeros((4, 4)), kernel="l1"
            ),
            r"`kernel`",
        ),
        (
            lambda: losses.generative_similarity_info_nce_loss(np.ones((4, 2)), np.ones((3, 2))),
            r"`anchors` and `positives`.*\(4, 2\).*\(3, 2\)",
        ),
        (
            lambda: losses.generative_similarity_info_nce_loss(np.ones((1, 2)), np.ones((1, 2))),
            r"at least 2 pairs",
        ),
        (
            lambda: losses.generative_similarity_info_nce_loss(np.ones(4), np.ones(4)),
            r"`anchors`.*\[B, d\]",
        ),
        (
            lambda: losses.generative_similarity_info_nce_loss(
                np.ones((4, 2)), np.ones((4, 2)), kernel="l2"
            ),
            r"`kernel`",
        ),
    ],
)
def test_loss_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()
