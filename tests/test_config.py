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
    assert (
        config_lib.apply_overrides(Config(), ["train.learning_rate=1"]).train.learning_rate == 1.0
    )
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
    with pytest.raises(
        config_lib.ConfigError, match="Checked: warmup=1 must be smaller than steps=1"
    ):
        config_lib.apply_overrides(Checked(), ["steps=1"])


def test_overrides_are_validated_together_not_one_by_one():
    # steps=1 alone fails Checked's own check; with warmup=0 beside it, it is fine.
    assert config_lib.apply_overrides(Checked(), ["steps=1", "warmup=0"]) == Checked(
        warmup=0, steps=1
    )
    config = config_lib.TrainConfig(num_steps=100, warmup_steps=50)
    assert config_lib.apply_overrides(config, ["num_steps=10", "warmup_steps=0"]).num_steps == 10


@config_lib.configclass
class Bounded:
    rate: float = config_lib.checked(0.1, gt=0)
    fraction: float = config_lib.checked(0.5, ge=0, lt=1)
    count: int = config_lib.checked(1, ge=1)
    rates: tuple[float, ...] = config_lib.checked((1.0, 2.0), gt=0)
    free: float = 0.0
    optional: float | None = config_lib.checked(None, gt=0)


@config_lib.configclass
class Outer:
    inner: Bounded = Bounded()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("inner.rate=0", "inner.rate=0.0: must be a finite number > 0"),
        ("inner.rate=-1", "inner.rate=-1.0: must be a finite number > 0"),
        ("inner.rate=NaN", "inner.rate=nan: must be a finite number > 0"),
        ("inner.rate=nan", "inner.rate=nan: must be a finite number > 0"),
        ("inner.rate=Infinity", "inner.rate=inf: must be a finite number > 0"),
        ("inner.fraction=1", "inner.fraction=1.0: must be a finite number in [0, 1)"),
        ("inner.count=0", "inner.count=0: must be an integer >= 1"),
        ("inner.rates=1,0", "inner.rates=(1.0, 0.0): every value must be a finite number > 0"),
        ("inner.free=inf", "inner.free=inf: must be a finite number"),
        ("inner.optional=0", "inner.optional=0.0: must be a finite number > 0"),
    ],
)
def test_out_of_range_overrides_name_the_path_and_the_range(override, message):
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.apply_overrides(Outer(), [override])
    assert str(info.value) == message


def test_constructing_a_bad_config_names_the_class_and_field():
    with pytest.raises(
        config_lib.ConfigError, match=r"^Bounded.rate=0: must be a finite number > 0$"
    ):
        Bounded(rate=0)
    assert Bounded(optional=None).optional is None
    assert config_lib.apply_overrides(Outer(), ["inner.optional=none"]).inner.optional is None


def test_a_bad_config_file_names_the_path():
    values = config_lib.to_dict(Outer())
    values["inner"]["count"] = -2
    with pytest.raises(config_lib.ConfigError, match=r"^inner.count=-2: must be an integer >= 1$"):
        config_lib.from_dict(Outer, values)
