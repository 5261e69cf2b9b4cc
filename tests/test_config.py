"""Config overrides: dotted keys, typed parsing, clear errors, JSON round trip."""

import dataclasses
from typing import Literal

import pytest

from alignjax import config as config_lib


@dataclasses.dataclass(frozen=True)
class Train:
    num_steps: int = 10
    learning_rate: float = 1e-3
    schedule: Literal["cosine", "constant"] = "cosine"
    widths: tuple[int, ...] = (32, 64)
    clip: float | None = 1.0
    bf16: bool = False


@dataclasses.dataclass(frozen=True)
class Config:
    train: Train = Train()
    name: str = "demo"
    seed: int = 0


def test_overrides_parse_by_field_type():
    config = config_lib.apply_overrides(
        Config(),
        [
            "train.num_steps=25",
            "train.learning_rate=3e-4",
            "train.schedule=constant",
            "train.widths=8,16,32",
            "train.clip=none",
            "train.bf16=true",
            "name=run 1",
        ],
    )
    assert config == Config(Train(25, 3e-4, "constant", (8, 16, 32), None, True), "run 1", 0)
    assert config_lib.apply_overrides(Config(), ["train.learning_rate=1"]).train.learning_rate == 1.0
    assert config_lib.apply_overrides(Config(), ["train.widths=[4]"]).train.widths == (4,)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.num_step=3", "unknown config key 'train.num_step'; valid keys here: num_steps"),
        ("seed=abc", "'seed' must be an integer, got 'abc'"),
        ("seed=1.5", "'seed' must be an integer"),
        ("train.bf16=maybe", "'train.bf16' must be true or false"),
        ("train.schedule=linear", "must be one of ['cosine', 'constant']"),
        ("train=3", "'train' is a nested config"),
        ("seed", "is not of the form key=value"),
        ("name.first=x", "is not a nested config"),
    ],
)
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(config_lib.ConfigError, match=None) as info:
        config_lib.apply_overrides(Config(), [override])
    assert message in str(info.value)


def test_json_round_trip():
    config = Config(Train(widths=(1, 2), clip=None), name="x")
    assert config_lib.from_dict(Config, config_lib.to_dict(config)) == config
    with pytest.raises(config_lib.ConfigError, match="unknown config keys"):
        config_lib.from_dict(Config, {"nope": 1})


@dataclasses.dataclass(frozen=True)
class Checked:
    warmup: int = 1
    steps: int = 10

    def __post_init__(self):
        if self.warmup >= self.steps:
            raise ValueError(f"warmup={self.warmup} must be smaller than steps={self.steps}")


def test_the_configs_own_validation_becomes_a_config_error():
    with pytest.raises(config_lib.ConfigError, match="config key 'steps': warmup=1 must be smaller than steps=1"):
        config_lib.apply_overrides(Checked(), ["steps=1"])
