"""gensim-hierarchy: generative-similarity encoder of a category tree vs flat labels and SimCLR.

    alignjax run gensim-hierarchy --preset quick

The WordNet tree instead of the balanced one (needs WordNet, e.g. Debian's wordnet-base):

    alignjax run gensim-hierarchy --set tree.source=wordnet
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alignjax.methods.gensim_hierarchy import HierarchyConfig

PRESETS = {
    "quick": "4x4x4 tree, 32x32 images, small CNN, 400 steps of 32 per objective; "
    "about 1 minute on 2 CPU cores",
    "paper": "4x4x4 tree, 32x32 images, wider CNN head, 1500 steps of 64 per objective; "
    "about 6 minutes on 2 CPU cores",
}


def get_config(preset: str) -> HierarchyConfig:
    # The method, and JAX with it, is imported here rather than at the top: `alignjax list`
    # and `--help` read PRESETS without it.
    from alignjax.methods import gensim_hierarchy

    config = gensim_hierarchy.HierarchyConfig()
    if preset == "quick":
        return config
    return dataclasses.replace(
        config,
        encoder=dataclasses.replace(config.encoder, widths=(16, 32, 64), embed_dim=64),
        train=dataclasses.replace(config.train, num_steps=1500, warmup_steps=100, log_every=100),
        objective=dataclasses.replace(config.objective, batch_size=64),
        train_renderings_per_leaf=64,
        num_eval_triplets=1000,
        eval_renderings_per_leaf=8,
    )


def run(config: HierarchyConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Runs the experiment: :func:`alignjax.methods.gensim_hierarchy.run`."""
    from alignjax.methods import gensim_hierarchy

    return gensim_hierarchy.run(config, workdir)
