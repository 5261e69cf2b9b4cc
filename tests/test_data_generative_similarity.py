"""Generative similarity: closed forms against densities and Monte Carlo, and its
properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

from alignjax.data import generative_similarity

MEANS = np.array([[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0], [0.0, -2.0, 0.0]])
STDS = np.array([1.0, 0.7, 1.5])
WEIGHTS = np.array([0.5, 0.3, 0.2])


def np_component_densities(x, stds=STDS):
    """``p_k(x)`` with scipy, shape ``[n, K]``; ``stds`` ``[K]`` or ``[K, d]``."""
    stds = np.broadcast_to(np.asarray(stds).reshape(len(MEANS), -1), MEANS.shape)
    return np.stack(
        [stats.multivariate_normal(m, np.diag(s**2)).pdf(x) for m, s in zip(MEANS, stds)], -1
    )


def sample_mixture(rng, n):
    k = rng.choice(len(WEIGHTS), size=n, p=WEIGHTS)
    return MEANS[k] + STDS[k, None] * rng.normal(size=(n, MEANS.shape[1]))


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(0)
    return sample_mixture(rng, 8), sample_mixture(rng, 8)


def test_gaussian_mixture_matches_densities(points):
    x, y = points
    px, py = np_component_densities(x), np_component_densities(y)
    expected = np.log((px * py) @ WEIGHTS / ((px @ WEIGHTS) * (py @ WEIGHTS)))
    got = generative_similarity.gaussian_mixture_log_generative_similarity(
        x, y, MEANS, STDS, WEIGHTS
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_shared_latent_is_not_a_product_over_dimensions(points):
    """The known mistake (a product of per-dimension 1-D ratios) gives other values."""
    x, y = points
    got = np.asarray(
        generative_similarity.gaussian_mixture_log_generative_similarity(x, y, MEANS, STDS, WEIGHTS)
    )
    wrong = 0.0
    for dim in range(MEANS.shape[1]):
        px = np.stack([stats.norm(m[dim], s).pdf(x[:, dim]) for m, s in zip(MEANS, STDS)], -1)
        py = np.stack([stats.norm(m[dim], s).pdf(y[:, dim]) for m, s in zip(MEANS, STDS)], -1)
        wrong = wrong + np.log((px * py) @ WEIGHTS / ((px @ WEIGHTS) * (py @ WEIGHTS)))
    assert np.max(np.abs(got - wrong)) > 0.1


def test_diagonal_stds_match_scipy_and_isotropic(points):
    x, y = points
    diagonal = np.array([[1.0, 0.5, 2.0], [0.7, 0.7, 0.7], [1.5, 1.0, 0.3]])
    px, py = np_component_densities(x, diagonal), np_component_densities(y, diagonal)
    expected = np.log((px * py) @ WEIGHTS / ((px @ WEIGHTS) * (py @ WEIGHTS)))
    got = generative_similarity.gaussian_mixture_log_generative_similarity(
        x, y, MEANS, diagonal, WEIGHTS
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    isotropic_as_diagonal = np.repeat(STDS[:, None], 3, axis=1)
    np.testing.assert_allclose(
        generative_similarity.gaussian_mixture_log_generative_similarity(
            x, y, MEANS, isotropic_as_diagonal, WEIGHTS
        ),
        generative_similarity.gaussian_mixture_log_generative_similarity(
            x, y, MEANS, STDS, WEIGHTS
        ),
        rtol=1e-6,
    )


def test_component_log_likelihoods_match_scipy(points):
    x, _ = points
    np.testing.assert_allclose(
        generative_similarity.gaussian_component_log_likelihoods(x, MEANS, STDS),
        np.log(np_component_densities(x)),
        rtol=1e-5,
    )


def test_mixture_by_hand():
    # Two components, pi = (0.25, 0.75); x surely from 0, y equally likely from either.
    log_w = np.log([0.25, 0.75])
    lx = np.array([0.0, -np.inf])
    ly = np.log([1.0, 1.0 / 3.0])  # r(y) = (0.25, 0.25) / 0.5 = (0.5, 0.5)
    # s = r0(x) r0(y) / pi0 = 1 * 0.5 / 0.25 = 2.
    got = generative_similarity.mixture_log_generative_similarity(lx, ly, log_w)
    np.testing.assert_allclose(np.exp(got), 2.0, rtol=1e-6)


def test_mixture_symmetry_bounds_and_broadcasting(points):
    x, y = points
    lx = generative_similarity.gaussian_component_log_likelihoods(x, MEANS, STDS)
    ly = generative_similarity.gaussian_component_log_likelihoods(y, MEANS, STDS)
    log_w = np.log(WEIGHTS)
    pairwise = np.asarray(
        generative_similarity.mixture_log_generative_similarity(lx[:, None], ly[None], log_w)
    )
    assert pairwise.shape == (8, 8)
    np.testing.assert_allclose(
        pairwise.T,
        generative_similarity.mixture_log_generative_similarity(ly[:, None], lx[None], log_w),
        atol=1e-5,
    )
    s = np.exp(pairwise)
    assert np.all(s >= 0) and np.all(s <= 1 / WEIGHTS.min() * (1 + 1e-5))
    np.testing.assert_allclose(
        np.diagonal(pairwise),
        generative_similarity.mixture_log_generative_similarity(lx, ly, log_w),
        atol=1e-5,
    )


def test_mean_over_independent_pairs_is_one():
    rng = np.random.default_rng(1)
    x, y = sample_mixture(rng, 20000), sample_mixture(rng, 20000)
    s = np.exp(
        generative_similarity.gaussian_mixture_log_generative_similarity(x, y, MEANS, STDS, WEIGHTS)
    )
    assert abs(s.mean() - 1.0) < 4 * s.std() / np.sqrt(len(s))


def test_monte_carlo_estimator_converges_to_the_mixture_closed_form(points):
    """theta = the component, sampled from the prior pi."""
    x, y = points
    rng = np.random.default_rng(2)
    components = rng.choice(len(WEIGHTS), size=20000, p=WEIGHTS)
    lx = np.log(np_component_densities(x))[:, components]
    ly = np.log(np_component_densities(y))[:, components]
    mc = generative_similarity.monte_carlo_log_generative_similarity(lx, ly)
    exact = generative_similarity.gaussian_mixture_log_generative_similarity(
        x, y, MEANS, STDS, WEIGHTS
    )
    np.testing.assert_allclose(mc, exact, atol=0.05)


def test_monte_carlo_by_hand():
    # S = 2 samples, p(x|.) = (1, 3), p(y|.) = (1, 5): mean(px py) = 8, means 2 and 3.
    got = generative_similarity.monte_carlo_log_generative_similarity(
        np.log([1.0, 3.0]), np.log([1.0, 5.0])
    )
    np.testing.assert_allclose(np.exp(got), 8.0 / (2.0 * 3.0), rtol=1e-6)


def np_conjugate(x, y, mu0, s0, s):
    """log p(x, y | same theta) - log p(x) - log p(y) from the joint Gaussian."""
    joint = np.block([[s0 + s, s0], [s0, s0 + s]])
    return (
        stats.multivariate_normal(np.r_[mu0, mu0], joint).logpdf(np.r_[x, y])
        - stats.multivariate_normal(mu0, s0 + s).logpdf(x)
        - stats.multivariate_normal(mu0, s0 + s).logpdf(y)
    )


@pytest.mark.parametrize("layout", ["isotropic", "diagonal", "full", "mixed"])
def test_conjugate_gaussian_matches_joint_density(layout):
    rng = np.random.default_rng(3)
    d = 3
    mu0, x, y = rng.normal(size=d), rng.normal(size=d), rng.normal(size=d)
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    prior, noise = {
        "isotropic": (1.7, 0.4),
        "diagonal": (np.array([1.0, 2.0, 0.5]), np.array([0.3, 0.2, 1.0])),
        "full": (a @ a.T + np.eye(d), b @ b.T + 0.5 * np.eye(d)),
        "mixed": (a @ a.T + np.eye(d), np.array([0.3, 0.2, 1.0])),
    }[layout]

    def full(c):
        c = np.asarray(c, np.float64)
        return c if c.ndim == 2 else np.diag(np.broadcast_to(c, (d,)))

    expected = np_conjugate(x, y, mu0, full(prior), full(noise))
    got = generative_similarity.conjugate_gaussian_log_generative_similarity(
        x, y, mu0, prior, noise
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_conjugate_gaussian_matches_monte_carlo_from_the_prior():
    rng = np.random.default_rng(4)
    mu0, s0, s = np.array([0.5, -1.0]), np.array([1.0, 0.5]), np.array([0.5, 0.25])
    x = np.array([[0.3, -0.8], [1.5, -1.2], [-0.5, 0.0]])
    y = np.array([[0.6, -1.1], [-0.5, -0.5], [-0.4, 0.2]])
    thetas = mu0 + np.sqrt(s0) * rng.normal(size=(40000, 2))

    def log_lik(points):
        return stats.norm(thetas[None], np.sqrt(s)).logpdf(points[:, None]).sum(-1)

    mc = generative_similarity.monte_carlo_log_generative_similarity(log_lik(x), log_lik(y))
    exact = generative_similarity.conjugate_gaussian_log_generative_similarity(x, y, mu0, s0, s)
    np.testing.assert_allclose(mc, exact, atol=0.03)
    # Symmetric, and its mean over independent pairs from p(x) is 1.
    np.testing.assert_allclose(
        exact,
        generative_similarity.conjugate_gaussian_log_generative_similarity(y, x, mu0, s0, s),
        rtol=1e-6,
    )
    draws = mu0 + np.sqrt(s0 + s) * rng.normal(size=(2, 20000, 2))
    ratio = np.exp(
        generative_similarity.conjugate_gaussian_log_generative_similarity(
            draws[0], draws[1], mu0, s0, s
        )
    )
    assert abs(ratio.mean() - 1.0) < 4 * ratio.std() / np.sqrt(ratio.size)


def test_generative_similarity_gradients(points):
    x, y = points
    with jax.enable_x64(True):
        x, y = jnp.asarray(x), jnp.asarray(y)
        check_grads(
            jax.jit(
                lambda a, b: generative_similarity.gaussian_mixture_log_generative_similarity(
                    a, b, MEANS, STDS, WEIGHTS
                )
            ),
            (x, y),
            order=1,
            modes=["rev"],
        )
        check_grads(
            jax.jit(
                lambda a, b: generative_similarity.conjugate_gaussian_log_generative_similarity(
                    a, b, 0.0, 2.0, 0.5
                )
            ),
            (x, y),
            order=1,
            modes=["rev"],
        )


def test_jit_and_vmap_agree_with_eager(points):
    x, y = points

    def fn(a, b):
        return generative_similarity.gaussian_mixture_log_generative_similarity(
            a, b, MEANS, STDS, WEIGHTS
        )

    eager = fn(x, y)
    np.testing.assert_allclose(jax.jit(fn)(x, y), eager, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(fn)(x, y), eager, rtol=1e-6)


def test_far_points_stay_accurate_in_float32():
    x = np.array([[1e4, -1e4, 3e3], [-1e4, 1e3, 1e3]], np.float32)
    y = x + np.array([1.0, -2.0, 0.5], np.float32)

    @jax.jit
    def log_s(a, b):
        return generative_similarity.gaussian_mixture_log_generative_similarity(
            a, b, MEANS, STDS, WEIGHTS
        )

    value = log_s(x, y)
    with jax.enable_x64(True):
        reference = log_s(x.astype(np.float64), y.astype(np.float64))
    assert reference.dtype == np.float64
    np.testing.assert_allclose(value, reference, atol=1e-3)
    value = generative_similarity.conjugate_gaussian_log_generative_similarity(
        x, -x, np.zeros(3), 1.0, 1e-3
    )
    assert np.all(np.isfinite(value))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: generative_similarity.mixture_log_generative_similarity(
                np.zeros(3), np.zeros(2), np.log(np.ones(3) / 3)
            ),
            r"last axes.*`log_lik_x`: 3.*`log_lik_y`: 2",
        ),
        (
            lambda: generative_similarity.mixture_log_generative_similarity(
                np.zeros((4, 3)), np.zeros((5, 3)), np.log(np.ones(3) / 3)
            ),
            r"do not broadcast.*\(4, 3\).*\(5, 3\)",
        ),
        (
            lambda: generative_similarity.mixture_log_generative_similarity(
                np.zeros(3), np.zeros(3), np.zeros(3)
            ),
            r"`log_weights`.*sum to one",
        ),
        (
            lambda: generative_similarity.mixture_log_generative_similarity(
                np.zeros(3), np.zeros(3), np.zeros(2)
            ),
            r"`log_weights`.*K = 3.*\(2,\)",
        ),
        (
            lambda: generative_similarity.gaussian_mixture_log_generative_similarity(
                np.zeros(3), np.zeros(3), MEANS, STDS, np.array([0.5, 0.6, -0.1])
            ),
            r"`weights`.*non-negative",
        ),
        (
            lambda: generative_similarity.gaussian_mixture_log_generative_similarity(
                np.zeros(3), np.zeros(3), MEANS, STDS, np.array([0.5, 0.3, 0.3])
            ),
            r"`weights`.*sum to one",
        ),
        (
            lambda: generative_similarity.gaussian_mixture_log_generative_similarity(
                np.zeros(3), np.zeros(3), MEANS, np.array([1.0, 0.0, 1.0]), WEIGHTS
            ),
            r"`stds`.*positive",
        ),
        (
            lambda: generative_similarity.gaussian_mixture_log_generative_similarity(
                np.zeros(3), np.zeros(3), MEANS, np.ones((3, 2)), WEIGHTS
            ),
            r"`stds`.*\(3, 2\)",
        ),
        (
            lambda: generative_similarity.gaussian_mixture_log_generative_similarity(
                np.zeros(2), np.zeros(2), MEANS, STDS, WEIGHTS
            ),
            r"`x`.*d = 3.*\(2,\)",
        ),
        (
            lambda: generative_similarity.conjugate_gaussian_log_generative_similarity(
                np.zeros(2), np.zeros(3), np.zeros(2), 1.0, 1.0
            ),
            r"`y`.*d = 2.*\(3,\)",
        ),
        (
            lambda: generative_similarity.conjugate_gaussian_log_generative_similarity(
                np.zeros(2), np.zeros(2), np.zeros(2), -1.0, 1.0
            ),
            r"`prior_cov`.*positive",
        ),
        (
            lambda: generative_similarity.conjugate_gaussian_log_generative_similarity(
                np.zeros(2), np.zeros(2), np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), 1.0
            ),
            r"`prior_cov`.*positive-definite",
        ),
        (
            lambda: generative_similarity.conjugate_gaussian_log_generative_similarity(
                np.zeros(2), np.zeros(2), np.zeros(2), 1.0, np.ones(3)
            ),
            r"`noise_cov`.*\(3,\)",
        ),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()
