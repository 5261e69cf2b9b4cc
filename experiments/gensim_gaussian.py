"""gensim-gaussian: generative-similarity embedding of a Gaussian mixture vs exact s_gen.

alignjax run gensim-gaussian --preset quick
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alignjax.methods.gensim_gaussian import GaussianConfig

PRESETS = {
    "quick": "8 components in 2-d, 2000 steps per objective; about 1 minute on 2 CPU cores",
    "paper": "8 components in 8-d, 6000 steps per objective; about 3 minutes on 2 CPU cores",
}


def get_config(preset: str) -> GaussianConfig:
    # The method, and JAX with it, is imported here rather than at the top: `alignjax list`
    # and `--help` read PRESETS without it.
    from alignjax.methods import gensim_gaussian

    config = gensim_gaussian.GaussianConfig()
    if preset == "quick":
        return config
    return dataclasses.replace(
        config,
        world=dataclasses.replace(config.world, dim=8),
        train=dataclasses.replace(config.train, num_steps=6000),
        num_eval_pairs=20000,
    )


def run(config: GaussianConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Runs the experiment: :func:`alignjax.methods.gensim_gaussian.run`."""
    from alignjax.methods import gensim_gaussian

    return gensim_gaussian.run(config, workdir)
