"""Tests of alignjax.methods.glocal: objectives, fits, grid search, the world's pieces."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from alignjax import evaluation, losses
from alignjax.config import ConfigError, MeshConfig, TrainConfig
from alignjax.data.hierarchy import HierarchyWorld, Tree
from alignjax.data.observers import LuceObserver, simulate_triplet_dataset
from alignjax.methods import glocal
from alignjax.models import AffineParams, AffineTransform

FAST = glocal.GlocalConfig(
    learning_rates=(1e-2,),
    penalty_weights=(1e-3,),
    alphas=(0.1,),
    temperatures=(1.0,),
    naive_penalty_weights=(1e-3,),
    triplet_batch_size=128,
    local_batch_size=64,
    train=TrainConfig(
        num_steps=300,
        schedule="constant",
        optimizer="adam",
        mesh=MeshConfig(data=1),
        log_every=50,
        progress_bar=False,
    ),
)


@pytest.fixture(scope="module")
def task():
    """Items whose first two dimensions carry the people's similarity and the last two noise."""
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(120, 2))
    features = np.concatenate([signal, 3.0 * rng.normal(size=(120, 2))], axis=1).astype(np.float32)
    observer = LuceObserver(signal @ signal.T, temperature=0.1)
    data = simulate_triplet_dataset(observer, n_train=3000, n_validation=500, n_test=1000, seed=1)
    local = (features[rng.integers(0, 120, 200)] + 0.1 * rng.normal(size=(200, 4))).astype(
        np.float32
    )
    return features, data, local


@pytest.fixture(scope="module")
def fitted(task):
    features, data, local = task
    return {
        kind: glocal.fit_transform(
            features, data.train.indices, local, glocal.grid(FAST, kind)[0], FAST, kind=kind
        )
        for kind in glocal.KINDS
    }


def test_fits_learn_the_similarity_the_people_use(task, fitted):
    features, data, _ = task
    base = evaluation.odd_one_out_accuracy(features, data.test.indices).accuracy
    ceiling = evaluation.noise_ceiling(data.test.probabilities)
    for kind, params in fitted.items():
        accuracy = evaluation.odd_one_out_accuracy(
            params.apply(features), data.test.indices
        ).accuracy
        assert accuracy > base + 0.15, kind
        assert accuracy > ceiling - 0.1, kind
        signal, noise = np.linalg.norm(params.weights[:2]), np.linalg.norm(params.weights[2:])
        assert signal > 3 * noise, kind


def test_transform_standardises_with_the_features_global_statistics(task, fitted, tmp_path):
    features, _, _ = task
    params = fitted["glocal"]
    assert params.mean == pytest.approx(float(features.mean()), rel=1e-5)
    assert params.std == pytest.approx(float(features.std()), rel=1e-5)
    loaded = AffineParams.load_npz(params.save_npz(tmp_path / "glocal.npz"))
    np.testing.assert_array_equal(loaded.apply(features), params.apply(features))
    expected = (features - features.mean()) / features.std() @ params.weights + params.bias
    np.testing.assert_allclose(params.apply(features), expected, rtol=1e-4, atol=1e-4)


def test_objectives_wire_the_losses():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(10, 3)), jnp.float32)
    h = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
    weights = jnp.asarray(np.eye(3) + 0.1 * rng.normal(size=(3, 3)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=3), jnp.float32)
    batch = {
        "triplets": jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]]),
        "local": jnp.array([5, 0, 2, 3]),
    }
    setting = glocal.GlocalSetting(1e-3, penalty_weight=0.5, alpha=0.25, temperature=0.5)
    transform = AffineTransform(3)
    transform.weights[...] = weights
    transform.bias[...] = bias
    global_term = jnp.mean(losses.glocal_global_loss(x[batch["triplets"]], weights, bias))
    local_term = jnp.mean(
        losses.glocal_local_loss(
            h[batch["local"]], h[batch["local"]] @ weights + bias, temperature=0.5
        )
    )
    expected = (
        0.75 * global_term + 0.25 * local_term + 0.5 * losses.scaled_identity_penalty(weights)
    )
    got, metrics = glocal.objective("glocal", setting, x, h)(transform, batch)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert metrics == {}
    naive, _ = glocal.objective("naive", setting, x, None)(
        transform, {"triplets": batch["triplets"]}
    )
    np.testing.assert_allclose(naive, global_term + 0.5 * jnp.linalg.norm(weights), rtol=1e-5)
    with pytest.raises(ValueError, match="local_features"):
        glocal.objective("glocal", setting, x, None)
    with pytest.raises(ValueError, match="kind"):
        glocal.objective("global", setting, x, h)


def test_grid_has_the_papers_settings():
    settings = glocal.grid(glocal.GlocalConfig(), "glocal")
    assert len(settings) == 24 and len(set(s.name for s in settings)) == 24
    assert {s.alpha for s in settings} == {0.25, 0.1} and {s.temperature for s in settings} == {
        1.0,
        0.5,
    }
    assert all(s.alpha == 0 for s in glocal.grid(glocal.GlocalConfig(), "naive"))
    assert (
        glocal.GlocalSetting(0.01, 10.0, 0.25, 0.5).name == "lr=0.01_lambda=10_alpha=0.25_tau=0.5"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: glocal.GlocalConfig(alphas=(0.0,)), r"alphas.*in \(0, 1\]"),
        (lambda: glocal.GlocalConfig(learning_rates=()), "learning_rates.*at least one"),
        (lambda: glocal.GlocalConfig(learning_rates=(1e-2, -1e-3)), "learning_rates.*> 0"),
        (lambda: glocal.GlocalConfig(penalty_weights=(-1.0,)), "penalty_weights.*>= 0"),
        (lambda: glocal.GlocalConfig(temperatures=(0.0,)), "temperatures.*> 0"),
        (lambda: glocal.GlocalConfig(local_batch_size=1), "local_batch_size.*>= 2"),
        (lambda: glocal.GlocalConfig(sigma=0.0), "sigma.*> 0"),
        (lambda: glocal.GlocalConfig(bias_init=float("nan")), "bias_init.*finite"),
        (
            lambda: glocal.GlocalConfig(train=dataclasses.replace(FAST.train, workdir="runs")),
            "train: workdir='runs' must be None",
        ),
        (lambda: glocal.GlocalSetting(0.0, 1.0), "learning_rate.*> 0"),
        (lambda: glocal.GlocalSetting(1e-3, 1.0, alpha=1.5), r"alpha.*in \[0, 1\]"),
    ],
)
def test_bad_configs_name_the_field(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_fit_is_deterministic_from_the_seed(task):
    features, data, local = task
    config = dataclasses.replace(FAST, train=dataclasses.replace(FAST.train, num_steps=20))
    setting = glocal.grid(config, "glocal")[0]

    def weights(seed):
        return glocal.fit_transform(
            features, data.train.indices, local, setting, config, seed=seed
        ).weights

    np.testing.assert_array_equal(weights(3), weights(3))
    assert not np.array_equal(weights(3), weights(4))


def test_grid_search_keeps_the_validation_best_and_resumes(task, tmp_path, monkeypatch):
    features, data, local = task
    config = dataclasses.replace(
        FAST, penalty_weights=(30.0, 1e-3), train=dataclasses.replace(FAST.train, num_steps=150)
    )
    # The record of a fit interrupted before its transform was saved is replaced.
    stale = tmp_path / "glocal" / glocal.grid(config, "glocal")[0].name / "metrics.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"step": 50, "loss": 0.0}\n')
    best, results = glocal.grid_search(
        features,
        data.train.indices,
        data.validation.indices,
        local,
        config,
        kind="glocal",
        workdir=tmp_path,
    )
    assert [r.setting.penalty_weight for r in results] == [30.0, 1e-3]
    assert best is max(results, key=lambda r: r.validation_accuracy)
    assert best.setting.penalty_weight == 1e-3  # 30 pins W to a scaled identity
    for result in results:
        space = result.load().apply(features)
        assert (
            result.validation_accuracy
            == evaluation.odd_one_out_accuracy(space, data.validation.indices).accuracy
        )
    assert sorted(p.name for p in (tmp_path / "glocal").iterdir()) == sorted(
        name for r in results for name in (r.setting.name, f"{r.setting.name}.npz")
    )
    # Each fit's loss curve: one record every log_every steps, and the objective falls.
    for result in results:
        lines = (tmp_path / "glocal" / result.setting.name / "metrics.jsonl").read_text()
        records = [json.loads(line) for line in lines.splitlines()]
        assert [r["step"] for r in records] == [50, 100, 150]
        assert records[-1]["loss"] < records[0]["loss"]
        assert all(r["learning_rate"] == pytest.approx(1e-2) for r in records)

    def refit(*args, **kwargs):
        raise AssertionError("a saved transform was fitted again")

    monkeypatch.setattr(glocal, "fit_transform", refit)
    again, _ = glocal.grid_search(
        features,
        data.train.indices,
        data.validation.indices,
        local,
        config,
        kind="glocal",
        workdir=tmp_path,
    )
    assert again == best


def test_fit_transform_rejects_bad_inputs(task):
    features, data, local = task
    setting = glocal.GlocalSetting(1e-2, 1e-3, 0.1)
    with pytest.raises(ValueError, match="local_features"):
        glocal.fit_transform(features, data.train.indices, local[:, :3], setting, FAST)
    with pytest.raises(ValueError, match="indices"):
        glocal.fit_transform(features, data.train.indices + 1000, local, setting, FAST)
    with pytest.raises(ValueError, match="features"):
        glocal.fit_transform(features[0], data.train.indices, local, setting, FAST)
    with pytest.raises(ValueError, match="kind"):
        glocal.fit_transform(features, data.train.indices, local, setting, FAST, kind="both")


def test_held_out_leaves_and_human_similarity():
    tree = Tree.balanced((2, 2, 2))
    names = lambda nodes: [tree.names[i] for i in nodes]  # noqa: E731
    assert names(glocal.held_out_leaves(tree)) == ["0.0.1", "0.1.1", "1.0.1", "1.1.1"]
    assert names(glocal.held_out_leaves(tree, depth=2)) == ["0.1.0", "0.1.1", "1.1.0", "1.1.1"]
    with pytest.raises(ValueError, match="held_out_depth"):
        glocal.held_out_leaves(tree, depth=0)
    world = HierarchyWorld(tree=tree, image_size=8)
    leaves = tree.leaves
    plain = glocal.human_similarity(world, leaves, 0.0)
    np.testing.assert_allclose(
        plain, world.log_generative_similarity(leaves[:, None], leaves[None, :]), rtol=1e-6
    )
    # Balanced tree, uniform level weights: s_gen = sum_{d <= depth(lca)} N_d / 4.
    assert plain[0, 0] == pytest.approx(np.log((1 + 2 + 4 + 8) / 4), rel=1e-5)
    assert plain[0, -1] == pytest.approx(np.log(1 / 4), rel=1e-5)
    seen = glocal.human_similarity(world, leaves, 0.5)
    np.testing.assert_allclose(seen, seen.T)
    assert np.all(np.abs(seen - plain) <= 0.5 + 1e-9)
    np.testing.assert_allclose(np.diag(seen - plain), 0.5)


def test_level_triplets_have_the_levels_structure():
    world = HierarchyWorld(image_size=8)
    tree = world.tree
    item_leaves = np.repeat(tree.leaves, 2)
    observer = LuceObserver(glocal.human_similarity(world, item_leaves, 0.0))
    pool = np.arange(0, len(item_leaves), 1)
    triplets = glocal.level_triplets(
        observer, world, item_leaves, pool, 50, np.random.default_rng(0)
    )
    assert triplets.level_names == ("coarse", "boundary", "fine") and len(triplets) == 150
    assert np.bincount(triplets.levels).tolist() == [50, 50, 50]
    leaves = item_leaves[triplets.indices]
    for code, level in enumerate(triplets.level_names):
        rows = leaves[triplets.levels == code]
        depth = world.split_depth(level)
        pair_depths = np.sort(
            np.stack(
                [
                    tree.depths[tree.lca(rows[:, a], rows[:, b])]
                    for a, b in ((0, 1), (0, 2), (1, 2))
                ],
                axis=1,
            ),
            axis=1,
        )
        # Two pairs meet exactly at the split depth, one pair deeper (stored in any order).
        assert np.all(pair_depths[:, :2] == depth) and np.all(pair_depths[:, 2] > depth), level
    np.testing.assert_allclose(triplets.probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_read_things_categories(tmp_path):
    path = tmp_path / "categories.tsv"
    path.write_text(
        "Word\tDefinition\tanimal\ttool\r\ncat\ta pet\t1\t0\r\nsaw\tcuts\t0\t1\r\n"
        "fish\tswims\t1\t\r\n\t\t2\t1\r\n"
    )
    membership, names = glocal.read_things_categories(path, 3)
    assert names == ("animal", "tool")
    assert membership.tolist() == [[True, False], [False, True], [True, False]]
    with pytest.raises(ValueError, match="3 concept rows, expected 4"):
        glocal.read_things_categories(path, 4)
    with pytest.raises(FileNotFoundError):
        glocal.read_things_categories(tmp_path / "missing.tsv", 3)
