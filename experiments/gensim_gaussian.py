"""gensim-gaussian: generative-similarity embedding of a Gaussian mixture vs exact s_gen.

alignjax run gensim-gaussian --preset quick
"""

import dataclasses

from alignjax.methods import gensim_gaussian

PRESETS = {
    "quick": "8 components in 2-d, 2000 steps per objective; about 1 minute on 2 CPU cores",
    "paper": "8 components in 8-d, 6000 steps per objective; about 3 minutes on 2 CPU cores",
}


def get_config(preset: str) -> gensim_gaussian.GaussianConfig:
    config = gensim_gaussian.GaussianConfig()
    if preset == "quick":
        return config
    return dataclasses.replace(
        config,
        world=dataclasses.replace(config.world, dim=8),
        train=dataclasses.replace(config.train, num_steps=6000),
        num_eval_pairs=20000,
    )


run = gensim_gaussian.run
