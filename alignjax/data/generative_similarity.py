"""Generative similarity ``s_gen`` of Marjieh et al., computed in log space.

For a hierarchical generative process ``theta ~ p(theta)``, ``x ~ p(x | theta)``,

.. math::

    s_{gen}(x, y) = \\frac{p(x, y \\mid \\text{same } \\theta)}
                          {p(x, y \\mid \\text{independent } \\theta, \\theta')}
                  = \\frac{\\int p(x|\\theta)\\, p(y|\\theta)\\, p(\\theta)\\, d\\theta}
                          {p(x)\\, p(y)}.

Every function here returns ``log s_gen``: ratios of raw densities under- and overflow
in any realistic dimension, log-likelihoods do not.

These are the ground truth of the worlds (:mod:`alignjax.data.gaussian_mixture`,
``quadrilaterals``, ``geoclidean``, ``hierarchy``), not losses: the losses that *learn*
``log s_gen`` from triplets are in :mod:`alignjax.losses.generative_similarity_losses`.

References:
  Marjieh, Kumar, Campbell, Zhang, Bhatt, Griffiths and Sucholutsky, *Learning
  Human-Aligned Representations with Contrastive Learning and Generative Similarity*,
  2024 (arXiv:2405.19420), Section 2 and Appendix F.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from alignjax.losses import _validation as v


def _log_shared_latent_ratio(log_lik_x, log_lik_y, log_weights) -> jax.Array:
    """``logsumexp(lw + lx + ly) - logsumexp(lw + lx) - logsumexp(lw + ly)`` on axis -1."""
    # The ratio depends on lx and ly only through the responsibilities, which are
    # invariant to a shift per item: centring keeps far-away points (log-likelihoods
    # of -1e8) from cancelling catastrophically in float32.
    log_lik_x = log_lik_x - _finite_max(log_lik_x)
    log_lik_y = log_lik_y - _finite_max(log_lik_y)
    joint = jax.nn.logsumexp(log_weights + log_lik_x + log_lik_y, axis=-1)
    marginal_x = jax.nn.logsumexp(log_weights + log_lik_x, axis=-1)
    marginal_y = jax.nn.logsumexp(log_weights + log_lik_y, axis=-1)
    return joint - marginal_x - marginal_y


def _finite_max(x) -> jax.Array:
    m = jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    return jnp.where(jnp.isfinite(m), m, 0.0)


def _check_log_likelihoods(log_lik_x, log_lik_y, size_name: str) -> None:
    v.check_rank("log_lik_x", log_lik_x, 1)
    v.check_rank("log_lik_y", log_lik_y, 1)
    v.check_same_size(
        ("log_lik_x", "log_lik_y"),
        (jnp.shape(log_lik_x)[-1], jnp.shape(log_lik_y)[-1]),
        f"The last axes (the number of {size_name})",
    )
    v.broadcast_batch_shapes(("log_lik_x", "log_lik_y"), (log_lik_x, log_lik_y), (1, 1))


def mixture_log_generative_similarity(
    log_lik_x: jax.typing.ArrayLike,
    log_lik_y: jax.typing.ArrayLike,
    log_weights: jax.typing.ArrayLike,
) -> jax.Array:
    """Log generative similarity under a finite mixture with a shared latent component.

    With mixture weights :math:`\\pi_k`, component densities :math:`p_k` and
    responsibilities :math:`r_k(x) = \\pi_k p_k(x) / \\sum_j \\pi_j p_j(x)`,

    .. math::

        s_{gen}(x, y) = \\sum_k \\frac{r_k(x)\\, r_k(y)}{\\pi_k}
        = \\frac{\\sum_k \\pi_k p_k(x) p_k(y)}{p(x)\\, p(y)},

    computed as ``logsumexp_k(log pi_k + l_k(x) + l_k(y)) - logsumexp_k(log pi_k +
    l_k(x)) - logsumexp_k(log pi_k + l_k(y))``. The latent component ``k`` is shared by
    all dimensions of an item: for multivariate components pass the *joint*
    log-density of each item under each component (summed over dimensions), never a
    product of per-dimension ratios. ``s_gen`` is symmetric, lies in
    ``[0, max_k 1 / pi_k]`` and has mean exactly 1 over independent pairs from the
    mixture.

    Args:
      log_lik_x: per-component log-likelihoods ``log p_k(x)``, shape ``[..., K]``.
      log_lik_y: per-component log-likelihoods ``log p_k(y)``, shape ``[..., K]``;
        its batch shape must broadcast with that of ``log_lik_x`` (so
        ``log_lik_x[:, None]`` and ``log_lik_y[None]`` give all pairs).
      log_weights: log mixture weights ``log pi_k``, shape ``[K]``; they must be
        normalised (checked when concrete; ``-inf`` marks an empty component).

    Returns:
      ``log s_gen(x, y)``, shape: the broadcast batch shape ``[...]``, in float32 (or
      float64 for float64 inputs).

    Raises:
      ValueError: if the last axes differ, batch shapes do not broadcast, or
        ``log_weights`` is not a normalised ``[K]`` vector.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.data.generative_similarity import mixture_log_generative_similarity
      >>> log_w = jnp.log(jnp.array([0.5, 0.5]))
      >>> # x and y both certainly from component 0: s_gen = 1 / pi_0 = 2.
      >>> lx = jnp.array([0.0, -jnp.inf])
      >>> float(jnp.exp(mixture_log_generative_similarity(lx, lx, log_w)))
      2.0

    References:
      Marjieh et al., 2024 (arXiv:2405.19420), Appendix F.
    """
    _check_log_likelihoods(log_lik_x, log_lik_y, "components K")
    k = jnp.shape(log_lik_x)[-1]
    v.check_ndim("log_weights", log_weights, 1, f"[K] with K = {k}")
    v.check_axis_size("log_weights", log_weights, 0, k, f"[K] with K = {k}")
    v.check_log_probabilities("log_weights", log_weights)
    dtype = v.compute_dtype(log_lik_x, log_lik_y, log_weights)
    return _log_shared_latent_ratio(
        v.as_float(log_lik_x, dtype),
        v.as_float(log_lik_y, dtype),
        v.as_float(log_weights, dtype),
    )


def gaussian_component_log_likelihoods(
    x: jax.typing.ArrayLike,
    means: jax.typing.ArrayLike,
    stds: jax.typing.ArrayLike,
) -> jax.Array:
    """Log-densities of ``x`` under each of ``K`` axis-aligned Gaussian components.

    .. math::

        \\log p_k(x) = -\\frac12 \\sum_i \\left(\\frac{x_i - \\mu_{ki}}{\\sigma_{ki}}\\right)^2
        - \\sum_i \\log \\sigma_{ki} - \\frac{d}{2} \\log 2\\pi.

    Args:
      x: points, shape ``[..., d]``.
      means: component means, shape ``[K, d]``.
      stds: component standard deviations: ``[K]`` (isotropic, the same for every
        dimension) or ``[K, d]`` (diagonal covariance). Must be positive.

    Returns:
      Log-likelihoods, shape ``[..., K]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.data.generative_similarity import gaussian_component_log_likelihoods
      >>> ll = gaussian_component_log_likelihoods(
      ...     jnp.zeros(1), jnp.zeros((1, 1)), jnp.ones(1))
      >>> round(float(ll[0]), 4)  # -log(2 pi) / 2
      -0.9189
    """
    _check_gaussian_mixture(means, stds)
    v.check_rank("x", x, 1)
    d = jnp.shape(means)[-1]
    v.check_axis_size("x", x, -1, d, f"[..., d] with d = {d} (from `means`)")
    dtype = v.compute_dtype(x, means, stds)
    x = v.as_float(x, dtype)
    means = v.as_float(means, dtype)
    stds = v.as_float(stds, dtype)
    if stds.ndim == 1:
        stds = jnp.broadcast_to(stds[:, None], means.shape)
    z = (x[..., None, :] - means) / stds
    return (
        -0.5 * jnp.sum(z * z, axis=-1)
        - jnp.sum(jnp.log(stds), axis=-1)
        - 0.5 * d * math.log(2 * math.pi)
    )


def _check_gaussian_mixture(means, stds):
    v.check_ndim("means", means, 2, "[K, d]")
    k, d = jnp.shape(means)
    if jnp.ndim(stds) == 1:
        v.check_axis_size("stds", stds, 0, k, f"[K] or [K, d] with K = {k}")
    else:
        v.check_ndim("stds", stds, 2, f"[K] or [K, d] with K = {k}, d = {d}")
        if tuple(jnp.shape(stds)) != (k, d):
            raise ValueError(
                f"`stds` must have shape [K] or [K, d] with K = {k}, d = {d}; got shape "
                f"{jnp.shape(stds)}."
            )
    v.check_positive("stds", stds)


def gaussian_mixture_log_generative_similarity(
    x: jax.typing.ArrayLike,
    y: jax.typing.ArrayLike,
    means: jax.typing.ArrayLike,
    stds: jax.typing.ArrayLike,
    weights: jax.typing.ArrayLike,
) -> jax.Array:
    """Log generative similarity under a mixture of axis-aligned Gaussians.

    The mixture :math:`p(x) = \\sum_k \\pi_k \\mathcal N(x; \\mu_k,
    \\mathrm{diag}(\\sigma_k^2))`: the latent is the component ``k``, shared by all
    ``d`` dimensions of an item (see :func:`mixture_log_generative_similarity`).

    Args:
      x: first items, shape ``[..., d]``.
      y: second items, shape ``[..., d]``; batch shape broadcastable with ``x``'s.
      means: component means, shape ``[K, d]``.
      stds: component standard deviations, ``[K]`` (isotropic) or ``[K, d]``
        (diagonal covariance).
      weights: mixture weights :math:`\\pi`, shape ``[K]``, non-negative and summing
        to one (checked when concrete).

    Returns:
      ``log s_gen(x, y)``, shape: the broadcast batch shape ``[...]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.data.generative_similarity import gaussian_mixture_log_generative_similarity
      >>> means = jnp.array([[-10.0, 0.0], [10.0, 0.0]])
      >>> x = jnp.array([-10.0, 0.0])
      >>> s = gaussian_mixture_log_generative_similarity(
      ...     x, x, means, jnp.ones(2), jnp.array([0.5, 0.5]))
      >>> round(float(jnp.exp(s)), 4)  # same well-separated component: 1 / pi = 2
      2.0

    References:
      Marjieh et al., 2024 (arXiv:2405.19420), Appendix F.
    """
    _check_gaussian_mixture(means, stds)
    k = jnp.shape(means)[0]
    v.check_ndim("weights", weights, 1, f"[K] with K = {k} (from `means`)")
    v.check_axis_size("weights", weights, 0, k, f"[K] with K = {k} (from `means`)")
    v.check_probabilities("weights", weights)
    v.broadcast_batch_shapes(("x", "y"), (x, y), (1, 1))
    log_lik_x = gaussian_component_log_likelihoods(x, means, stds)
    log_lik_y = gaussian_component_log_likelihoods(y, means, stds)
    dtype = v.compute_dtype(log_lik_x, weights)
    return _log_shared_latent_ratio(
        log_lik_x.astype(dtype), log_lik_y.astype(dtype), jnp.log(v.as_float(weights, dtype))
    )


def _gaussian_log_kernel(x, cov) -> jax.Array:
    """``log N(x; 0, cov)`` without the ``-d/2 log 2 pi`` constant.

    ``cov`` is a scalar (isotropic), ``[d]`` (diagonal) or ``[d, d]`` (full).
    """
    d = x.shape[-1]
    if cov.ndim == 2:
        chol = jnp.linalg.cholesky(cov)
        flat = x.reshape(-1, d).T
        white = jax.scipy.linalg.solve_triangular(chol, flat, lower=True)
        quad = jnp.sum(white * white, axis=0).reshape(x.shape[:-1])
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    else:
        cov = jnp.broadcast_to(cov, (d,))
        quad = jnp.sum(x * x / cov, axis=-1)
        log_det = jnp.sum(jnp.log(cov))
    return -0.5 * quad - 0.5 * log_det


def _check_covariance(name: str, cov, d: int) -> None:
    layout = f"[] (isotropic), [d] (diagonal) or [d, d] (full) with d = {d}"
    ndim = jnp.ndim(cov)
    if ndim > 2 or (ndim >= 1 and any(s != d for s in jnp.shape(cov))):
        raise ValueError(f"`{name}` must have shape {layout}; got shape {jnp.shape(cov)}.")
    if ndim <= 1:
        v.check_positive(name, cov)
    elif v.is_concrete(cov):
        c = np.asarray(cov, dtype=np.float64)
        if not np.allclose(c, c.T, rtol=1e-5, atol=1e-8) or np.any(
            np.linalg.eigvalsh((c + c.T) / 2) <= 0
        ):
            raise ValueError(
                f"`{name}` must be a symmetric positive-definite [d, d] matrix; got "
                f"eigenvalues {np.linalg.eigvalsh((c + c.T) / 2)}."
            )


def conjugate_gaussian_log_generative_similarity(
    x: jax.typing.ArrayLike,
    y: jax.typing.ArrayLike,
    prior_mean: jax.typing.ArrayLike,
    prior_cov: jax.typing.ArrayLike,
    noise_cov: jax.typing.ArrayLike,
) -> jax.Array:
    """Closed-form log generative similarity for a Gaussian mean with a Gaussian prior.

    Generative process :math:`\\theta \\sim \\mathcal N(\\mu_0, \\Sigma_0)`,
    :math:`x \\mid \\theta \\sim \\mathcal N(\\theta, \\Sigma)`. Under a shared
    :math:`\\theta`, :math:`(x, y)` is jointly Gaussian with mean :math:`(\\mu_0,
    \\mu_0)` and covariance :math:`\\begin{pmatrix} \\Sigma_0 + \\Sigma & \\Sigma_0 \\\\
    \\Sigma_0 & \\Sigma_0 + \\Sigma \\end{pmatrix}`; each marginal is
    :math:`\\mathcal N(\\mu_0, \\Sigma_0 + \\Sigma)`. Rotating to
    :math:`u = (x + y)/\\sqrt2`, :math:`w = (x - y)/\\sqrt2` makes the joint block
    diagonal, so

    .. math::

        \\log s_{gen}(x, y) = \\log \\mathcal N(u; \\sqrt2 \\mu_0, 2\\Sigma_0 + \\Sigma)
        + \\log \\mathcal N(w; 0, \\Sigma)
        - \\log \\mathcal N(x; \\mu_0, \\Sigma_0 + \\Sigma)
        - \\log \\mathcal N(y; \\mu_0, \\Sigma_0 + \\Sigma).

    Args:
      x: first items, shape ``[..., d]``.
      y: second items, shape ``[..., d]``; batch shape broadcastable with ``x``'s.
      prior_mean: :math:`\\mu_0`, shape ``[d]`` (or a scalar, broadcast).
      prior_cov: :math:`\\Sigma_0`: a scalar (isotropic :math:`\\sigma_0^2 I`), ``[d]``
        (diagonal variances) or ``[d, d]`` (full, symmetric positive definite).
      noise_cov: :math:`\\Sigma`, same conventions as ``prior_cov``.

    Returns:
      ``log s_gen(x, y)``, shape: the broadcast batch shape ``[...]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.data.generative_similarity import (
      ...     conjugate_gaussian_log_generative_similarity,
      ... )
      >>> # 1-D, prior N(0, 1), noise variance 1: at x = y = 0, s_gen = 2 / sqrt(3).
      >>> s = conjugate_gaussian_log_generative_similarity(
      ...     jnp.zeros(1), jnp.zeros(1), jnp.zeros(1), 1.0, 1.0)
      >>> round(float(jnp.exp(s)), 4)
      1.1547

    References:
      Marjieh et al., 2024 (arXiv:2405.19420), Section 2.
    """
    v.check_rank("x", x, 1)
    v.check_rank("y", y, 1)
    d = jnp.shape(x)[-1]
    v.check_axis_size("y", y, -1, d, f"[..., d] with d = {d} (from `x`)")
    v.broadcast_batch_shapes(("x", "y"), (x, y), (1, 1))
    if jnp.ndim(prior_mean) > 1 or (jnp.ndim(prior_mean) == 1 and jnp.shape(prior_mean)[0] != d):
        raise ValueError(
            f"`prior_mean` must have shape [d] with d = {d} or be a scalar; got shape "
            f"{jnp.shape(prior_mean)}."
        )
    _check_covariance("prior_cov", prior_cov, d)
    _check_covariance("noise_cov", noise_cov, d)
    dtype = v.compute_dtype(x, y, prior_mean, prior_cov, noise_cov)
    x, y, mu0, s0, s = (v.as_float(a, dtype) for a in (x, y, prior_mean, prior_cov, noise_cov))
    if (s0.ndim == 2) != (s.ndim == 2):
        # 2 S0 + S needs one convention when one of them is a full matrix.
        s0, s = (_as_full(c, d) for c in (s0, s))
    a, b = x - mu0, y - mu0
    marginal = s0 + s
    return (
        _gaussian_log_kernel((a + b) / math.sqrt(2.0), 2.0 * s0 + s)
        + _gaussian_log_kernel((a - b) / math.sqrt(2.0), s)
        - _gaussian_log_kernel(a, marginal)
        - _gaussian_log_kernel(b, marginal)
    )


def _as_full(cov, d):
    if cov.ndim == 2:
        return cov
    return jnp.diag(jnp.broadcast_to(cov, (d,)))


def monte_carlo_log_generative_similarity(
    log_lik_x: jax.typing.ArrayLike,
    log_lik_y: jax.typing.ArrayLike,
) -> jax.Array:
    """Monte Carlo log generative similarity from parameters sampled from the prior.

    With :math:`\\theta_1, \\dots, \\theta_S \\sim p(\\theta)`,

    .. math::

        \\hat s_{gen}(x, y) = \\frac{\\frac1S \\sum_s p(x|\\theta_s)\\, p(y|\\theta_s)}
        {\\frac1S \\sum_s p(x|\\theta_s) \\cdot \\frac1S \\sum_s p(y|\\theta_s)},

    which is :func:`mixture_log_generative_similarity` with ``S`` equally weighted
    components. The log of a ratio of means is consistent but biased for finite ``S``.

    Args:
      log_lik_x: ``log p(x | theta_s)``, shape ``[..., S]``.
      log_lik_y: ``log p(y | theta_s)`` for the same samples, shape ``[..., S]``;
        batch shape broadcastable with ``log_lik_x``'s.

    Returns:
      The estimate of ``log s_gen(x, y)``, shape: the broadcast batch shape ``[...]``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from alignjax.data.generative_similarity import monte_carlo_log_generative_similarity
      >>> # Two samples; x and y both explained only by the first one.
      >>> l = jnp.array([0.0, -jnp.inf])
      >>> float(jnp.exp(monte_carlo_log_generative_similarity(l, l)))
      2.0

    References:
      Marjieh et al., 2024 (arXiv:2405.19420), Section 2 (intractable models).
    """
    _check_log_likelihoods(log_lik_x, log_lik_y, "samples S")
    n = jnp.shape(log_lik_x)[-1]
    dtype = v.compute_dtype(log_lik_x, log_lik_y)
    return _log_shared_latent_ratio(
        v.as_float(log_lik_x, dtype),
        v.as_float(log_lik_y, dtype),
        jnp.full((n,), -math.log(n), dtype),
    )
