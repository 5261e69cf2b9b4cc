"""Tests of alignjax.training.config: TrainConfig validation and round trip."""

import json

import pytest

from alignjax.training import MeshConfig, TrainConfig


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(num_steps=0), "num_steps=0 must be >= 1"),
        (dict(optimizer="lion"), "optimizer='lion' must be one of"),
        (dict(schedule="linear"), "schedule='linear' must be one of"),
        (dict(compute_dtype="float16"), "compute_dtype='float16' must be one of"),
        (dict(optimizer="sgd", weight_decay=0.1), "weight_decay=0.1 needs optimizer="),
        (dict(clip_norm=0.0), "clip_norm=0.0 must be > 0"),
        (dict(warmup_steps=10), "warmup_steps=10 must be smaller"),
        (dict(accumulation_steps=20), "num_steps=10 is smaller than accumulation_steps=20"),
        (dict(decay_to_init=-1.0), "decay_to_init=-1.0 must be >= 0"),
    ],
)
def test_invalid_configs_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"num_steps": 10, **overrides})


def test_config_round_trips_through_json():
    config = TrainConfig(num_steps=7, mesh=MeshConfig(data=2, fsdp=4), workdir="/tmp/x")
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
