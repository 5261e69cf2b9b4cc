"""gensim-geoclidean: few-shot learning of abstract geometric concepts from generative-similarity triplets.

    alignjax run gensim-geoclidean --preset quick
"""

import dataclasses

from alignjax.methods import gensim_geoclidean

PRESETS = {
    "quick": "32x32 drawings, 2 folds of concepts, 200 steps per objective and fold (gensim_nce and "
    "three baselines); about 3 minutes on 2 CPU cores",
    "paper": "32x32 drawings, 5 folds of concepts, 1500 steps per objective and fold, the triplet loss "
    "too; about 75 minutes on 2 CPU cores (estimated from the quick preset's step times)",
}


def get_config(preset: str) -> gensim_geoclidean.GeoclideanConfig:
    config = gensim_geoclidean.GeoclideanConfig()
    if preset == "quick":
        return config
    return dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, num_steps=1500, warmup_steps=100, log_every=100),
        objectives=("gensim_nce", "gensim", "simclr", "supcon", "untrained"),
        num_folds=5,
        num_tasks_per_concept=50,
    )


run = gensim_geoclidean.run
