r"""A Gaussian mixture world with exact generative similarity (Marjieh et al., App. F).

The generative process: a component ``theta = k ~ Categorical(pi)``, then an item
``x | k ~ N(mu_k, sigma_k^2 I_d)``. The component is the latent shared by all ``d``
coordinates of an item, so the generative similarity is the mixture formula

.. math::

    s_{gen}(x, y) = \frac{\sum_k \pi_k\, N(x; \mu_k, \sigma_k^2 I)\, N(y; \mu_k, \sigma_k^2 I)}
                         {p(x)\, p(y)} = \sum_k \frac{r_k(x)\, r_k(y)}{\pi_k},

with responsibilities ``r_k``, evaluated in log space by
:func:`alignjax.data.generative_similarity.gaussian_mixture_log_generative_similarity`.
:meth:`GaussianMixtureWorld.monte_carlo_log_generative_similarity` estimates the same
quantity from components drawn from the prior (the route for intractable models).

The means are drawn once from the world's ``seed``: one at a time, uniformly in the cube
``[-L/2, L/2]^d`` with ``L = 2 * separation * K^(1/d)``, each redrawn until it lies at
least ``separation`` from the ones before (so every pair of means is ``separation``
apart; with unit standard deviations, ``separation`` is in standard deviations).

Example:

>>> world = GaussianMixtureWorld(num_components=3, dim=2, separation=6.0)
>>> items = world.sample(np.random.default_rng(0), 5)
>>> items["inputs"].shape, items["labels"].shape
((5, 2), (5,))
>>> s = np.exp(world.log_generative_similarity(world.means[0], world.means[0]))
>>> round(float(s), 3)  # a point at a well-separated mean: 1 / pi_0
3.0
"""

from __future__ import annotations

import functools

import numpy as np

from alignjax.config import checked, configclass
from alignjax.data import generative_similarity
from alignjax.data.world import batch_generator


@configclass
class GaussianMixtureWorld:
    """Isotropic Gaussian mixture in ``dim`` dimensions (see module doc).

    Attributes:
      num_components: ``K``.
      dim: ``d``.
      separation: minimum distance between two means.
      stds: the components' standard deviations: one number for all, or ``K``.
      weights: mixture weights ``pi`` (``K`` positive numbers, normalised here);
        ``None`` for uniform.
      seed: seed of the means.
      distinct_negative: draw the triplet negative's component conditioned on
        differing from the anchor's (default: independent from the prior, equal to it
        with probability ``sum_k pi_k^2``).
    """

    num_components: int = checked(4, ge=1)
    dim: int = checked(2, ge=1)
    separation: float = checked(4.0, ge=0)
    stds: float | tuple[float, ...] = 1.0
    weights: tuple[float, ...] | None = None
    seed: int = checked(0, ge=0)
    distinct_negative: bool = False

    def __post_init__(self):
        if not isinstance(self.num_components, (int, np.integer)):
            raise ValueError(
                f"num_components must be a positive integer, got {self.num_components!r}"
            )
        if not isinstance(self.dim, (int, np.integer)):
            raise ValueError(f"dim must be a positive integer, got {self.dim!r}")
        stds = np.atleast_1d(np.asarray(self.stds, dtype=float))
        valid = np.all(np.isfinite(stds)) and np.all(stds > 0)
        if stds.shape not in ((1,), (self.num_components,)) or not valid:
            raise ValueError(
                f"stds must be a positive number or {self.num_components} positive numbers, "
                f"got {self.stds!r}"
            )
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=float)
            valid = np.all(np.isfinite(weights)) and np.all(weights > 0)
            if weights.shape != (self.num_components,) or not valid:
                raise ValueError(
                    f"weights must be {self.num_components} positive numbers, got {self.weights!r}"
                )

    @functools.cached_property
    def means(self) -> np.ndarray:
        """Component means ``float32 [K, d]``, a function of ``seed``."""
        rng = np.random.default_rng(self.seed)
        k, d = self.num_components, self.dim
        half = self.separation * k ** (1.0 / d)
        means = np.empty((k, d))
        for i in range(k):
            for _ in range(10_000):
                candidate = rng.uniform(-half, half, d)
                distances = np.linalg.norm(means[:i] - candidate, axis=-1)
                if i == 0 or distances.min() >= self.separation:
                    break
            else:
                raise ValueError(
                    f"could not place {k} means {self.separation} apart in {d} dimensions"
                )
            means[i] = candidate
        means = means.astype(np.float32)
        means.setflags(write=False)
        return means

    @property
    def component_stds(self) -> np.ndarray:
        """Standard deviations ``float32 [K]``."""
        return np.broadcast_to(np.asarray(self.stds, np.float32), (self.num_components,)).copy()

    @property
    def prior(self) -> np.ndarray:
        """Mixture weights ``pi``, ``float64 [K]``."""
        if self.weights is None:
            return np.full(self.num_components, 1.0 / self.num_components)
        weights = np.asarray(self.weights, dtype=float)
        return weights / weights.sum()

    def sample_components(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` components ``theta ~ pi``, ``int [n]``."""
        return rng.choice(self.num_components, size=n, p=self.prior)

    def sample_given(self, rng: np.random.Generator, components) -> np.ndarray:
        """One item per component in ``components`` (``int [...]``): ``float32 [..., d]``."""
        components = np.asarray(components, dtype=int)
        if np.any((components < 0) | (components >= self.num_components)):
            raise ValueError(f"components must lie in [0, {self.num_components}), got {components}")
        noise = rng.standard_normal(components.shape + (self.dim,))
        x = self.means[components] + self.component_stds[components][..., None] * noise
        return x.astype(np.float32)

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` items of the mixture: ``inputs float32 [n, d]``, ``labels int [n]``
        (their components)."""
        labels = self.sample_components(rng, n)
        return {"inputs": self.sample_given(rng, labels), "labels": labels}

    def sample_triplets(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` generative-similarity triplets (anchor, positive, negative).

        Anchor and positive share a component; the negative's component is drawn
        independently from ``pi`` (so it may equal the anchor's) unless
        ``distinct_negative``. The batch is drawn from :func:`batch_generator` of ``rng``.

        Returns:
          ``inputs float32 [n, 3, d]`` and ``labels int [n, 3]`` (components).
        """
        rng = batch_generator(rng)
        anchor = self.sample_components(rng, n)
        negative = self.sample_components(rng, n)
        if self.distinct_negative:
            if self.num_components < 2:
                raise ValueError("distinct_negative needs num_components >= 2")
            for i in np.flatnonzero(negative == anchor):
                p = self.prior.copy()
                p[anchor[i]] = 0.0
                negative[i] = rng.choice(self.num_components, p=p / p.sum())
        labels = np.stack([anchor, anchor, negative], axis=1)
        return {"inputs": self.sample_given(rng, labels), "labels": labels}

    def log_generative_similarity(self, x, y) -> np.ndarray:
        """Exact ``log s_gen(x, y)`` for items ``[..., d]`` (broadcast batch shapes)."""
        return np.asarray(
            generative_similarity.gaussian_mixture_log_generative_similarity(
                np.asarray(x, np.float32),
                np.asarray(y, np.float32),
                self.means,
                self.component_stds,
                self.prior.astype(np.float32),
            )
        )

    def monte_carlo_log_generative_similarity(
        self, x, y, rng: np.random.Generator, num_samples: int = 10_000
    ) -> np.ndarray:
        """Monte Carlo estimate of ``log s_gen(x, y)`` from ``num_samples`` prior draws.

        ``s_hat = mean_s p(x|theta_s) p(y|theta_s) / (mean_s p(x|theta_s) mean_s
        p(y|theta_s))`` with ``theta_s ~ pi`` (consistent; the log is biased for small
        ``num_samples``).
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        thetas = self.sample_components(rng, num_samples)
        means, stds = self.means, self.component_stds

        def log_lik(items):
            per_component = generative_similarity.gaussian_component_log_likelihoods(
                np.asarray(items, np.float32), means, stds
            )
            return np.asarray(per_component)[..., thetas]

        return np.asarray(
            generative_similarity.monte_carlo_log_generative_similarity(log_lik(x), log_lik(y))
        )
