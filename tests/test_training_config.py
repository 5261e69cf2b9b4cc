"""TrainConfig (alignjax.config): validation and round trip."""

import json

import pytest

from alignjax.training import MeshConfig, TrainConfig


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(num_steps=0), r"TrainConfig.num_steps=0: must be an integer >= 1"),
        (dict(optimizer="lion"), "TrainConfig.optimizer='lion': must be one of"),
        (dict(schedule="linear"), "TrainConfig.schedule='linear': must be one of"),
        (dict(optimizer="sgd", weight_decay=0.1), "TrainConfig.weight_decay=0.1: needs optimizer="),
        (dict(clip_norm=0.0), "TrainConfig.clip_norm=0.0: must be a finite number > 0"),
        (dict(warmup_steps=10), "TrainConfig.warmup_steps=10: must be smaller"),
        (
            dict(accumulation_steps=20),
            "TrainConfig.num_steps=10: is smaller than accumulation_steps=20",
        ),
        (dict(decay_to_init=-1.0), "TrainConfig.decay_to_init=-1.0: must be a finite number >= 0"),
        (
            dict(learning_rate=float("nan")),
            "TrainConfig.learning_rate=nan: must be a finite number > 0",
        ),
        (
            dict(learning_rate=float("inf")),
            "TrainConfig.learning_rate=inf: must be a finite number > 0",
        ),
        (dict(learning_rate=0.0), "TrainConfig.learning_rate=0.0: must be a finite number > 0"),
        (dict(b2=1.0), r"TrainConfig.b2=1.0: must be a finite number in \[0, 1\)"),
        (
            dict(warmup_start=1.5),
            r"TrainConfig.warmup_start=1.5: must be a finite number in \[0, 1\]",
        ),
        (
            dict(mesh=MeshConfig(data=2, fsdp=1), end_learning_rate=1.0),
            "end_learning_rate=1.0: must not exceed",
        ),
    ],
)
def test_invalid_configs_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"num_steps": 10, **overrides})


def test_config_round_trips_through_json():
    config = TrainConfig(num_steps=7, mesh=MeshConfig(data=2, fsdp=4), workdir="/tmp/x")
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
