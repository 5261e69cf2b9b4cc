"""The evaluation suite (alignjax.evaluation.suite): one entry point, one vocabulary."""

import numpy as np
import pytest

from alignjax import evaluation
from alignjax.config import ConfigError
from alignjax.data import levels
from alignjax.data.hierarchy import Tree
from alignjax.data.triplet_set import TripletSet
from alignjax.evaluation.suite import Benchmark, EvaluationConfig, HeldOut, evaluate


def test_odd_one_out_by_hand_with_noise_ceiling_and_levels():
    # Items 0, 1 close; 2, 3 close. Triplet 0 is right, triplet 1 wrong (its "odd" item 3
    # is the one close to 2), triplet 2 right.
    features = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    triplets = TripletSet(
        np.array([[0, 1, 2], [0, 2, 3], [2, 3, 1]]),
        probabilities=np.array([[0.8, 0.1, 0.1], [0.5, 0.25, 0.25], [0.6, 0.2, 0.2]]),
        levels=np.array([0, 0, 1]),
        level_names=("coarse", "fine", "other"),
    )
    metrics = evaluate(features, Benchmark(triplets={"t": triplets}), EvaluationConfig())
    assert metrics == pytest.approx(
        {
            "odd_one_out/t": 2 / 3,
            "noise_ceiling/t": (0.8 + 0.5 + 0.6) / 3,
            "odd_one_out/t/coarse": 0.5,
            "noise_ceiling/t/coarse": 0.65,
            "odd_one_out/t/fine": 1.0,
            "noise_ceiling/t/fine": 0.6,
        }
    )  # no "other" entry: the set has no such triplet


def test_neighbour_preservation_on_the_benchmark_rows():
    rng = np.random.default_rng(0)
    base, moved = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    rows = np.arange(10, 40)
    metrics = evaluate(
        moved, Benchmark(neighbour_rows=rows), EvaluationConfig(neighbours=3), reference=base
    )
    expected = evaluation.neighbour_preservation(base[rows], moved[rows], k=3)
    assert metrics == {"neighbour_preservation": expected}
    assert evaluate(base, Benchmark(), reference=base)["neighbour_preservation"] == 1.0
    with pytest.raises(ValueError, match="reference has 39 items, features 40"):
        evaluate(moved, Benchmark(), reference=base[1:])


def test_held_out_probes_and_anomaly_detection():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    features = rng.normal(size=(60, 4)) + 4.0 * np.eye(4)[labels] + 100.0  # far from 0
    rows = np.arange(60)
    held = HeldOut.split(rows, labels, levels.split_per_category(labels, rng))
    config = EvaluationConfig(
        few_shot_shots=(1, 3), few_shot_classifiers=("logistic", "knn"), standardize_probe=True
    )
    metrics = evaluate(features, Benchmark(held_out=held), config)
    assert set(metrics) == {
        "few_shot/logistic/1",
        "few_shot/logistic/3",
        "few_shot/knn/1",
        "few_shot/knn/3",
        "anomaly_auc",
    }
    # The standardised probe is the library probe on standardised features.
    pool = features[held.pool]
    mean, std = pool.mean(axis=0), pool.std(axis=0) + 1e-6
    expected = evaluation.few_shot_accuracy(
        (pool - mean) / std,
        held.pool_labels,
        (features[held.test] - mean) / std,
        held.test_labels,
        n_shot=3,
        seeds=config.few_shot_seeds,
    ).mean
    assert metrics["few_shot/logistic/3"] == expected
    assert metrics["few_shot/knn/3"] > 0.9 and metrics["anomaly_auc"] > 0.9
    assert len(held.pool) == 30 and not set(held.pool) & set(held.test)


def test_levels_benchmark_from_a_tree_scores_the_tree_itself_perfectly():
    tree = Tree.balanced((3, 3, 2))
    leaves = np.repeat(tree.leaves, 3)
    triplets = levels.level_triplet_set(tree, leaves, 50, np.random.default_rng(0))
    # One-hot ancestors at every depth: dot products count shared ancestors, the tree's order.
    features = np.concatenate(
        [np.eye(tree.num_nodes)[tree.ancestors[leaves, d]] for d in range(1, tree.height + 1)],
        axis=1,
    )
    metrics = evaluate(features, Benchmark(triplets={"levels": triplets}))
    assert metrics == {
        "odd_one_out/levels": 1.0,
        "odd_one_out/levels/coarse": 1.0,
        "odd_one_out/levels/boundary": 1.0,
        "odd_one_out/levels/fine": 1.0,
    }
    shuffled = evaluate(
        features[np.random.default_rng(1).permutation(len(leaves))],
        Benchmark(triplets={"levels": triplets}),
    )
    assert shuffled["odd_one_out/levels"] < 0.6


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(neighbours=0), "EvaluationConfig.neighbours=0: must be an integer >= 1"),
        (dict(few_shot_shots=(5, 0)), "few_shot_shots=(5, 0): every value must be an integer >= 1"),
        (dict(kernel="l2"), "kernel must be 'dot' or 'cosine'"),
        (dict(few_shot_classifiers=("svm",)), "few_shot_classifiers must be 'logistic'"),
        (dict(few_shot_seeds=()), "few_shot_seeds must hold at least one seed"),
    ],
)
def test_bad_evaluation_configs_name_the_field(fields, message):
    with pytest.raises(
        (ConfigError, ValueError), match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        EvaluationConfig(**fields)
