"""The oddball intruder task: choices on constructed trials, per-shape errors, human correlation."""

import numpy as np
import pytest
import scipy.stats

from alignjax.evaluation import oddball


def _trial(intruder_position, offset, rng, d=4):
    """Five shapes near one point and the intruder displaced by ``offset`` along axis 0."""
    trial = 1.0 + 0.01 * rng.normal(size=(6, d))
    trial[intruder_position, 0] += offset
    return trial


def test_choice_is_the_displaced_item_wherever_it_sits():
    rng = np.random.default_rng(0)
    trials = np.stack([_trial(position, 1.0, rng) for position in range(6)])
    np.testing.assert_array_equal(oddball.oddball_choices(trials), np.arange(6))


def test_hand_computed_trial():
    # Items 0-4 at (0.2, 0.2), item 5 at (2, 2): mean (0.5, 0.5), distances 0.3 * sqrt(2)
    # for items 0-4 and 1.5 * sqrt(2) for item 5.
    trial = np.array([[0.2, 0.2]] * 5 + [[2.0, 2.0]])
    assert oddball.oddball_choices(trial[None]).tolist() == [5]
    # An exact tie (all items equal) goes to the first item.
    assert oddball.oddball_choices(np.zeros((1, 6, 2))).tolist() == [0]


def test_farthest_from_mean_agrees_with_farthest_from_mean_of_the_other_five():
    trials = np.random.default_rng(1).normal(size=(40, 6, 3))
    others = (trials.sum(axis=1, keepdims=True) - trials) / 5
    expected = np.argmax(np.linalg.norm(trials - others, axis=2), axis=1)
    np.testing.assert_array_equal(oddball.oddball_choices(trials), expected)


def test_per_shape_error_rates_and_human_correlation():
    rng = np.random.default_rng(2)
    names = ["square", "rectangle", "kite", "random"]
    # Intruder displacement per shape: large (always found) to zero (never reliably found).
    offsets = {0: 2.0, 1: 2.0, 2: 0.0, 3: 0.0}
    shape_ids = np.repeat(np.arange(4), 5)
    intruders = np.tile(np.arange(5), 4)
    trials = np.stack([_trial(i, offsets[s], rng) for s, i in zip(shape_ids, intruders)])
    human = np.array([0.05, 0.10, 0.30, 0.45])
    result = oddball.oddball_error_rates(
        trials, intruders, shape_ids, shape_names=names, human_error_rates=human
    )
    errors = oddball.oddball_choices(trials) != intruders
    expected = [errors[shape_ids == s].mean() for s in range(4)]
    assert list(result.per_shape_error_rate.values()) == pytest.approx(expected)
    assert expected[:2] == [0.0, 0.0] and min(expected[2:]) > 0.0
    assert result.error_rate == pytest.approx(errors.mean())
    assert result.per_shape_n_trials == dict.fromkeys(names, 5)
    pearson = scipy.stats.pearsonr(expected, human)
    assert result.human_correlation.pearson_r == pytest.approx(pearson.statistic)
    assert result.human_correlation.pearson_p == pytest.approx(pearson.pvalue)
    assert result.human_correlation.n == 4
    assert result.to_dict()["error_rate/square"] == 0.0


def test_shape_without_trials_is_nan_and_left_out_of_the_correlation():
    rng = np.random.default_rng(3)
    trials = np.stack([_trial(i, offset, rng) for i, offset in enumerate([1.0, 1.0, 0.0, 1.0])])
    result = oddball.oddball_error_rates(
        trials,
        [0, 1, 2, 3],
        [0, 1, 2, 3],
        shape_names=["a", "b", "c", "d", "unused"],
        human_error_rates=[0.1, 0.2, 0.9, 0.3, 0.5],
    )
    assert np.isnan(result.per_shape_error_rate["unused"])
    assert result.human_correlation.n == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"embeddings": np.zeros((2, 6))}, r"shape \[n_trials, 6, d\]; got shape \(2, 6\)"),
        ({"intruder_indices": [0, 6]}, r"intruder_indices must be integers in \[0, 6\)"),
        ({"intruder_indices": [0]}, r"intruder_indices must have length 2"),
        ({"shape_ids": [0, 2], "shape_names": ["a", "b"]}, r"shape_ids must lie in \[0, 2\)"),
        ({"human_error_rates": [0.1, 0.2]}, "human_error_rates needs shape_names"),
        (
            {"shape_names": ["a", "b"], "human_error_rates": [0.1]},
            r"human_error_rates must have shape \[2\]",
        ),
        ({"shape_names": ["a", "a"]}, "shape_names must be distinct"),
    ],
)
def test_bad_inputs(kwargs, message):
    arguments = {"embeddings": np.zeros((2, 6, 3)), "intruder_indices": [0, 1], "shape_ids": [0, 1]}
    arguments.update(kwargs)
    positional = [arguments.pop(name) for name in ("embeddings", "intruder_indices", "shape_ids")]
    with pytest.raises(ValueError, match=message):
        oddball.oddball_error_rates(*positional, **arguments)
