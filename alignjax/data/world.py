"""The generative worlds' common interface: items and generative-similarity triplets.

A *world* is a generative model ``theta ~ p(theta)``, ``x ~ p(x | theta)`` with seeded
parameters (:class:`~alignjax.data.gaussian_mixture.GaussianMixtureWorld`,
:class:`~alignjax.data.quadrilaterals.QuadrilateralWorld`,
:class:`~alignjax.data.geoclidean.GeoclideanWorld`,
:class:`~alignjax.data.hierarchy.HierarchyWorld`). Every world samples in one way:

- ``sample(rng, n)``: ``n`` items ``x`` of the marginal, ``{"inputs": [n, ...],
  "labels": int [n]}`` (``labels`` names each item's latent: component, class,
  concept, leaf);
- ``sample_triplets(rng, n)``: ``n`` generative-similarity triplets, ``{"inputs":
  [n, 3, ...], "labels": int [n, 3]}``: anchor and positive drawn under one ``theta``,
  the negative under an independent ``theta'`` (so with probability ``sum pi^2`` the
  same one, unless the world draws distinct negatives).

A world may add its own keys (a quadrilateral's ``"vertices"``, a tree item's
``"ancestors"``). Each method draws all its randomness from the ``numpy`` generator it
is given; a triplet batch comes from :func:`batch_generator`, so drawing one costs the
caller's stream exactly one number.

>>> from alignjax.data.gaussian_mixture import GaussianMixtureWorld
>>> world = GaussianMixtureWorld(num_components=3, dim=2)
>>> isinstance(world, World)
True
>>> triplets = world.sample_triplets(np.random.default_rng(0), 5)
>>> triplets["inputs"].shape, triplets["labels"].shape
((5, 3, 2), (5, 3))
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class World(Protocol):
    """A seeded generative model that samples items and generative-similarity triplets."""

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` items: ``inputs [n, ...]`` and ``labels int [n]`` (their latents), plus
        the world's own keys."""
        ...

    def sample_triplets(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` triplets (anchor, positive, negative): ``inputs [n, 3, ...]`` and
        ``labels int [n, 3]``, anchor and positive from one ``theta``, the negative from
        an independent ``theta'``; plus the world's own keys."""
        ...


def batch_generator(rng: np.random.Generator) -> np.random.Generator:
    """A child generator for one batch, seeded by one draw of ``rng``.

    The parent stream advances by exactly one draw per batch, whatever the batch's size
    or the world's internals (rejection loops, per-class shape construction), so a
    stream of batches stays reproducible when a world changes how it draws a batch.

    >>> rng = np.random.default_rng(0)
    >>> child = batch_generator(rng)
    >>> bool(rng.integers(2**63) == np.random.default_rng(0).integers(2**63, size=2)[1])
    True
    """
    return np.random.default_rng(int(rng.integers(2**63)))
