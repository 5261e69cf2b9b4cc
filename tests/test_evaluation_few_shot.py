"""Few-shot probes: sampling, agreement with hand-run scikit-learn fits, nearest-shot k-NN."""

import numpy as np
import pytest
import sklearn.linear_model

from alignjax.evaluation import few_shot


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 4)) * 2.0
    train_y = np.repeat(np.arange(3), 10)
    test_y = np.repeat(np.arange(3), 8)
    train_x = centres[train_y] + rng.normal(size=(30, 4))
    test_x = centres[test_y] + rng.normal(size=(24, 4))
    return train_x, train_y, test_x, test_y


def test_sampling_draws_n_shot_distinct_examples_per_class_reproducibly():
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 1, 2, 0])
    chosen = few_shot.sample_few_shot(labels, n_shot=2, seed=5)
    assert len(set(chosen.tolist())) == 6
    assert np.bincount(labels[chosen]).tolist() == [2, 2, 2]
    np.testing.assert_array_equal(chosen, few_shot.sample_few_shot(labels, n_shot=2, seed=5))
    draws = {tuple(few_shot.sample_few_shot(labels, n_shot=2, seed=s)) for s in range(10)}
    assert len(draws) > 1


def test_logistic_matches_hand_run_sklearn(split):
    train_x, train_y, test_x, test_y = split
    result = few_shot.few_shot_accuracy(train_x, train_y, test_x, test_y, n_shot=3, seeds=(0, 1, 2))
    expected = []
    for seed in (0, 1, 2):
        chosen = few_shot.sample_few_shot(train_y, 3, seed)
        model = sklearn.linear_model.LogisticRegression(max_iter=1000)
        expected.append(model.fit(train_x[chosen], train_y[chosen]).score(test_x, test_y))
    assert result.accuracies == pytest.approx(tuple(expected))
    assert result.mean == pytest.approx(np.mean(expected))
    assert result.std == pytest.approx(np.std(expected, ddof=1))


def test_one_shot_knn_is_the_nearest_shot_by_cosine(split):
    train_x, train_y, test_x, test_y = split
    result = few_shot.few_shot_accuracy(
        train_x, train_y, test_x, test_y, n_shot=1, classifier="knn", seeds=(4,)
    )
    chosen = few_shot.sample_few_shot(train_y, 1, 4)
    shots = train_x[chosen] / np.linalg.norm(train_x[chosen], axis=1, keepdims=True)
    unit_test = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    predicted = train_y[chosen][np.argmax(unit_test @ shots.T, axis=1)]
    assert result.mean == pytest.approx(np.mean(predicted == test_y))
    assert result.std == 0.0


def test_knn_neighbours_are_capped_and_kwargs_pass_through(split):
    train_x, train_y, test_x, test_y = split
    capped = few_shot.few_shot_accuracy(
        train_x,
        train_y,
        test_x,
        test_y,
        n_shot=1,
        classifier="knn",
        seeds=(0,),
        classifier_kwargs={"n_neighbors": 50},
    )
    # With every shot a neighbour and uniform weights, k-NN votes 1:1:1 and picks class 0.
    assert capped.mean == pytest.approx(np.mean(test_y == 0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_shot": 11}, "class 0 has 10 training examples; n_shot=11"),
        ({"n_shot": 0}, "n_shot must be an integer >= 1"),
        ({"classifier": "svm"}, "classifier must be 'logistic' or 'knn'"),
        ({"seeds": ()}, "seeds must not be empty"),
        ({"train_labels": np.zeros(29)}, r"train_labels must have length 30; got shape \(29,\)"),
        ({"test_labels": np.full(24, 7)}, r"classes absent from train_labels: \[7\]"),
        ({"test_features": np.ones((24, 3))}, "test_features must have 4 features"),
        ({"train_labels": np.zeros(30, int)}, "at least 2 classes"),
    ],
)
def test_bad_inputs(split, kwargs, message):
    train_x, train_y, test_x, test_y = split
    arguments = {
        "train_features": train_x,
        "train_labels": train_y,
        "test_features": test_x,
        "test_labels": test_y,
        "n_shot": 1,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        few_shot.few_shot_accuracy(**arguments)
