"""gensim-geoclidean: few-shot learning of geometric concepts from generative-similarity triplets.

alignjax run gensim-geoclidean --preset quick
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alignjax.methods.gensim_geoclidean import GeoclideanConfig

PRESETS = {
    "quick": "32x32 drawings, 1000 grammar concepts, 350 steps per objective (gensim_nce and three "
    "baselines); about 2.5 minutes on 2 CPU cores (150 s measured)",
    "paper": "32x32 drawings, 1000 grammar concepts, 2000 steps per objective at learning rate "
    "3e-3 (the triplet loss collapses at 1e-2 on the quadrilaterals), the triplet loss too, 50 "
    "tasks per concept; about 21 minutes on 2 CPU cores (1265 s measured)",
}


def get_config(preset: str) -> GeoclideanConfig:
    # The method, and JAX with it, is imported here rather than at the top: `alignjax list`
    # and `--help` read PRESETS without it.
    from alignjax.methods import gensim_geoclidean

    config = gensim_geoclidean.GeoclideanConfig()
    if preset == "quick":
        return config
    return dataclasses.replace(
        config,
        train=dataclasses.replace(
            config.train, num_steps=2000, learning_rate=3e-3, warmup_steps=100, log_every=100
        ),
        objectives=("gensim_nce", "gensim", "simclr", "supcon", "untrained"),
        num_tasks_per_concept=50,
    )


def run(config: GeoclideanConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Runs the experiment: :func:`alignjax.methods.gensim_geoclidean.run`."""
    from alignjax.methods import gensim_geoclidean

    return gensim_geoclidean.run(config, workdir)
