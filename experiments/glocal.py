"""glocal: gLocal vs naive alignment of a frozen model's features with (simulated) human triplets.

alignjax run glocal --preset quick
alignjax run glocal --set things_dir=path/to/things   # real THINGS files (docs/data.md)

The fits use the world's sizes, not the released THINGS configuration
(``GlocalConfig()``, which ``alignjax fit glocal`` uses): both presets keep their
500 or 1000 constant-rate Adam steps and a bias starting at 0.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alignjax.methods.glocal_data import GlocalExperimentConfig

PRESETS = {
    "quick": "SimCLR base on 768 rendered 16x16 items, 4+2 fits of 500 steps; "
    "about 1 minute on 2 CPU cores",
    "paper": "longer base training, 20k triplets, the paper's grid (+ lambda 0.01), 1000 steps; "
    "about 6 minutes on 2 CPU cores",
}


def get_config(preset: str) -> GlocalExperimentConfig:
    # The method, and JAX with it, is imported here rather than at the top: `alignjax list`
    # and `--help` read PRESETS without it.
    from alignjax.methods import glocal_data

    config = glocal_data.GlocalExperimentConfig()
    if preset == "quick":
        return config
    return dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, num_steps=1500),
        n_train_triplets=20000,
        fit=dataclasses.replace(
            config.fit,
            learning_rates=(1e-2, 1e-3),
            penalty_weights=(10.0, 1.0, 0.1, 0.01),
            alphas=(0.25, 0.1),
            temperatures=(1.0, 0.5),
            naive_penalty_weights=(10.0, 1.0, 0.1, 0.01),
            train=dataclasses.replace(config.fit.train, num_steps=1000),
        ),
    )


def run(config: GlocalExperimentConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """Runs the experiment: :func:`alignjax.methods.glocal_data.run`."""
    from alignjax.methods import glocal_data

    return glocal_data.run(config, workdir)
