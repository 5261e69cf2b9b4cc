"""Gaussian mixture world: determinism, exact s_gen against its own sampler."""

import grain
import numpy as np
import pytest
from scipy import stats

from alignjax.data.gaussian_mixture import GaussianMixtureWorld

WORLD = GaussianMixtureWorld(
    num_components=3, dim=2, separation=2.0, stds=(1.0, 0.7, 1.3), weights=(5, 3, 2)
)


def test_means_are_separated_and_seeded():
    world = GaussianMixtureWorld(num_components=6, dim=3, separation=2.5, seed=7)
    distances = np.linalg.norm(world.means[:, None] - world.means[None], axis=-1)
    assert distances[np.triu_indices(6, 1)].min() >= 2.5
    np.testing.assert_array_equal(
        world.means, GaussianMixtureWorld(num_components=6, dim=3, separation=2.5, seed=7).means
    )
    assert not np.allclose(
        world.means, GaussianMixtureWorld(num_components=6, dim=3, separation=2.5, seed=8).means
    )


def triplets(seed, n):
    return WORLD.sample_triplets(np.random.default_rng(seed), n)


def test_same_seed_same_bytes():
    a, b, c = triplets(3, 50), triplets(3, 50), triplets(4, 50)
    assert (
        a["inputs"].tobytes() == b["inputs"].tobytes()
        and a["labels"].tobytes() == b["labels"].tobytes()
    )
    assert a["inputs"].tobytes() != c["inputs"].tobytes()
    assert a["inputs"].shape == (50, 3, 2) and a["inputs"].dtype == np.float32


def test_grain_stream_is_deterministic_across_threads():
    dataset = (
        grain.MapDataset.range(6).seed(5).random_map(lambda i, rng: WORLD.sample_triplets(rng, 4))
    )
    direct = [dataset[i]["inputs"] for i in range(6)]
    threaded = list(
        dataset.to_iter_dataset(grain.ReadOptions(num_threads=3, prefetch_buffer_size=3))
    )
    for a, b in zip(direct, threaded, strict=True):
        np.testing.assert_array_equal(a, b["inputs"])


def test_sampler_matches_the_mixture():
    items = WORLD.sample(np.random.default_rng(0), 30_000)
    x, labels = items["inputs"], items["labels"]
    np.testing.assert_allclose(np.bincount(labels) / labels.size, WORLD.prior, atol=0.01)
    for k in range(3):
        z = (x[labels == k] - WORLD.means[k]) / WORLD.component_stds[k]
        assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3


def test_triplet_latents():
    labels = triplets(1, 20_000)["labels"]
    np.testing.assert_array_equal(labels[:, 0], labels[:, 1])
    # The negative is independent: it equals the anchor's component with prob sum pi^2.
    assert np.mean(labels[:, 2] == labels[:, 0]) == pytest.approx(np.sum(WORLD.prior**2), abs=0.015)
    distinct = GaussianMixtureWorld(num_components=3, distinct_negative=True).sample_triplets(
        np.random.default_rng(1), 500
    )["labels"]
    assert np.all(distinct[:, 2] != distinct[:, 0])


def test_exact_matches_prior_monte_carlo():
    rng = np.random.default_rng(2)
    x = WORLD.sample(rng, 8)["inputs"]
    y = WORLD.sample(rng, 8)["inputs"]
    exact = WORLD.log_generative_similarity(x, y)
    estimate = WORLD.monte_carlo_log_generative_similarity(x, y, rng, num_samples=40_000)
    np.testing.assert_allclose(estimate, exact, atol=0.05)


def test_exact_is_the_density_ratio_of_the_sampler():
    # s_gen = p_same / p_independent, so E_independent[s f] = E_same[f] for any f.
    anchor, positive, negative = np.moveaxis(triplets(0, 100_000)["inputs"], 1, 0)
    s = np.exp(WORLD.log_generative_similarity(anchor, negative).astype(np.float64))
    assert s.mean() == pytest.approx(1.0, abs=0.02)
    for scale in (0.5, 4.0):
        f_same = np.exp(-np.sum((anchor - positive) ** 2, axis=-1) / scale)
        f_independent = np.exp(-np.sum((anchor - negative) ** 2, axis=-1) / scale)
        assert np.mean(s * f_independent) == pytest.approx(f_same.mean(), rel=0.03)


def test_exact_value_at_a_far_mean():
    world = GaussianMixtureWorld(num_components=2, dim=1, separation=40.0, weights=(1, 3))
    s = np.exp(world.log_generative_similarity(world.means[0], world.means[0]))
    assert s == pytest.approx(4.0, rel=1e-5)  # 1 / pi_0
    assert np.exp(world.log_generative_similarity(world.means[0], world.means[1])) < 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_components": 0}, "num_components"),
        ({"dim": 0}, "dim"),
        (
            {"separation": -1.0},
            r"GaussianMixtureWorld.separation=-1.0: must be a finite number >= 0",
        ),
        ({"separation": float("inf")}, "separation=inf"),
        ({"seed": -1}, r"seed=-1: must be an integer >= 0"),
        ({"stds": (1.0, 2.0)}, "stds"),
        ({"stds": -1.0}, "stds"),
        ({"weights": (1.0, 0.0, 1.0, 1.0)}, "weights"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixtureWorld(**kwargs)
