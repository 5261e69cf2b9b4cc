"""gensim-quadrilaterals: shape regularity in the intruder task from generative-similarity triplets.

alignjax run gensim-quadrilaterals --preset quick
"""

import dataclasses

from alignjax.methods import gensim_quadrilaterals

PRESETS = {
    "quick": "32x32 outlines, 400 steps per objective (gensim_nce and three baselines); "
    "about 3 minutes on 2 CPU cores",
    "paper": "32x32 outlines, 2000 steps per objective at learning rate 3e-3, the triplet loss "
    "too, 1000 trials per shape; about 20 minutes on 2 CPU cores",
}


def get_config(preset: str) -> gensim_quadrilaterals.QuadrilateralsConfig:
    config = gensim_quadrilaterals.QuadrilateralsConfig()
    if preset == "quick":
        return config
    return dataclasses.replace(
        config,
        # The paper's triplet loss collapses (all embeddings alike, loss log 2) at the quick
        # preset's learning rate 1e-2; at 3e-3 it trains (experiments/README.md).
        train=dataclasses.replace(
            config.train, num_steps=2000, learning_rate=3e-3, warmup_steps=100, log_every=100
        ),
        objectives=("gensim_nce", "gensim", "simclr", "supcon", "untrained"),
        num_trials_per_shape=1000,
    )


run = gensim_quadrilaterals.run
