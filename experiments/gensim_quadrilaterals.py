"""gensim-quadrilaterals: shape regularity in the intruder task from generative-similarity triplets.

    alignjax run gensim-quadrilaterals --preset quick
"""

import dataclasses

from alignjax.methods import gensim_quadrilaterals

PRESETS = {
    "quick": "32x32 outlines, 600 steps per objective (gensim_nce and three baselines); "
    "about 6 minutes on 2 CPU cores",
    "paper": "32x32 outlines, 2000 steps per objective, the triplet loss too, 1000 trials per shape; "
    "about 35 minutes on 2 CPU cores",
}


def get_config(preset: str) -> gensim_quadrilaterals.QuadrilateralsConfig:
    config = gensim_quadrilaterals.QuadrilateralsConfig()
    if preset == "quick":
        return config
    return dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, num_steps=2000, warmup_steps=100, log_every=100),
        objectives=("gensim_nce", "gensim", "simclr", "supcon", "untrained"),
        num_trials_per_shape=1000,
    )


run = gensim_quadrilaterals.run
