"""Tests of the gLocal fits (alignjax.methods.glocal_fit: the released defaults, objectives,
fits, early stopping, grid search), the chain (alignjax.methods.glocal.align) and the glocal
experiment's simulated people (alignjax.methods.glocal_data)."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alignjax import evaluation, losses
from alignjax.config import ConfigError, MeshConfig, TrainConfig
from alignjax.data.hierarchy import HierarchyWorld, Tree
from alignjax.data.observers import LuceObserver, simulate_triplet_dataset
from alignjax.evaluation.suite import EvaluationConfig
from alignjax.methods import glocal, glocal_data, glocal_fit
from alignjax.models import AffineParams, AffineTransform
from alignjax.training.optimizer import learning_rate_schedule

FAST = glocal_fit.GlocalConfig(
    learning_rates=(1e-2,),
    penalty_weights=(1e-3,),
    alphas=(0.1,),
    temperatures=(1.0,),
    naive_penalty_weights=(1e-3,),
    triplet_batch_size=128,
    local_batch_size=64,
    patience=None,
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
        kind: glocal_fit.fit_transform(
            features, data.train.indices, local, glocal_fit.grid(FAST, kind)[0], FAST, kind=kind
        )
        for kind in glocal_fit.KINDS
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
    setting = glocal_fit.GlocalSetting(1e-3, penalty_weight=0.5, alpha=0.25, temperature=0.5)
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
    got, metrics = glocal_fit.objective("glocal", setting, x, h)(transform, batch)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert metrics == {}
    naive, _ = glocal_fit.objective("naive", setting, x, None)(
        transform, {"triplets": batch["triplets"]}
    )
    np.testing.assert_allclose(naive, global_term + 0.5 * jnp.linalg.norm(weights), rtol=1e-5)
    with pytest.raises(ValueError, match="local_features"):
        glocal_fit.objective("glocal", setting, x, None)
    with pytest.raises(ValueError, match="kind"):
        glocal_fit.objective("global", setting, x, h)


def _objective_and_flops(setting, x, h, batch):
    """The gLocal objective's value, gradient and compiled FLOPs at ``W = 1.1 I``."""
    loss_fn = glocal_fit.objective("glocal", setting, x, h)

    def value(weights, batch):
        transform = AffineTransform(x.shape[1], use_bias=False)
        transform.weights[...] = weights
        return loss_fn(transform, batch)[0]

    weights = 1.1 * jnp.eye(x.shape[1])
    cost = jax.jit(jax.value_and_grad(value)).lower(weights, batch).compile().cost_analysis()
    loss, grad = jax.value_and_grad(value)(weights, batch)
    return loss, grad, (cost[0] if isinstance(cost, list) else cost)["flops"]


def test_teacher_similarities_of_the_local_set_are_computed_once(monkeypatch):
    """A step gathers its batch's block of the local set's teacher similarities: the
    same objective and gradient as computing them from the batch's features, with the
    ``2 B^2 p`` FLOPs of that product gone from the compiled step."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(50, 16)), jnp.float32)
    h = jnp.asarray(rng.normal(size=(300, 16)), jnp.float32)
    batch = {
        "triplets": jnp.asarray(rng.integers(0, 50, (32, 3)), jnp.int32),
        "local": jnp.asarray(rng.choice(300, 128, replace=False), jnp.int32),
    }
    setting = glocal_fit.GlocalSetting(1e-3, penalty_weight=0.5, alpha=0.25, temperature=0.5)
    once = _objective_and_flops(setting, x, h, batch)
    monkeypatch.setattr(glocal_fit, "TEACHER_MATRIX_MAX_IMAGES", 299)  # the set is too large
    every_step = _objective_and_flops(setting, x, h, batch)
    np.testing.assert_allclose(once[0], every_step[0], rtol=1e-6)
    np.testing.assert_allclose(once[1], every_step[1], rtol=1e-5, atol=1e-8)
    assert every_step[2] - once[2] >= 2 * 128**2 * 16


def test_defaults_are_the_released_configuration():
    config = glocal_fit.GlocalConfig()
    train = config.train
    assert (train.optimizer, train.b1, train.b2, train.clip_norm) == ("adam", 0.9, 0.999, 1.0)
    assert (config.sigma, config.use_bias, config.bias_init) == (1e-3, False, 1e-3)
    assert (config.triplet_batch_size, config.local_batch_size) == (256, 1024)
    # LinearLR(start_factor=1/3, total_iters=max_epochs): lr / 3 rising to lr over the run.
    schedule = learning_rate_schedule(dataclasses.replace(train, learning_rate=1e-3))
    assert float(schedule(0)) == pytest.approx(1e-3 / 3)
    assert float(schedule(train.num_steps // 2)) == pytest.approx(2e-3 / 3, rel=1e-3)
    assert float(schedule(train.num_steps - 1)) == pytest.approx(1e-3)
    assert train.num_steps == 100 * 157  # 100 epochs of 40,000 THINGS triplets in 256s


def test_grid_has_the_papers_settings():
    settings = glocal_fit.grid(glocal_fit.GlocalConfig(), "glocal")
    assert len(settings) == 18 and len(set(s.name for s in settings)) == 18
    assert {s.penalty_weight for s in settings} == {10.0, 1.0, 0.1}
    assert {s.alpha for s in settings} == {0.5, 0.25, 0.1}
    assert {s.temperature for s in settings} == {1.0, 0.5}
    assert {s.learning_rate for s in settings} == {1e-3}
    naive = glocal_fit.grid(glocal_fit.GlocalConfig(), "naive")
    assert [(s.penalty_weight, s.alpha) for s in naive] == [(10.0, 0.0), (1.0, 0.0), (0.1, 0.0)]
    assert (
        glocal_fit.GlocalSetting(0.01, 10.0, 0.25, 0.5).name
        == "lr=0.01_lambda=10_alpha=0.25_tau=0.5"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: glocal_fit.GlocalConfig(alphas=(0.0,)), r"alphas.*in \(0, 1\]"),
        (lambda: glocal_fit.GlocalConfig(learning_rates=()), "learning_rates.*at least one"),
        (lambda: glocal_fit.GlocalConfig(learning_rates=(1e-2, -1e-3)), "learning_rates.*> 0"),
        (lambda: glocal_fit.GlocalConfig(penalty_weights=(-1.0,)), "penalty_weights.*>= 0"),
        (lambda: glocal_fit.GlocalConfig(temperatures=(0.0,)), "temperatures.*> 0"),
        (lambda: glocal_fit.GlocalConfig(local_batch_size=1), "local_batch_size.*>= 2"),
        (lambda: glocal_fit.GlocalConfig(sigma=0.0), "sigma.*> 0"),
        (lambda: glocal_fit.GlocalConfig(bias_init=float("nan")), "bias_init.*finite"),
        (
            lambda: dataclasses.replace(
                FAST, train=dataclasses.replace(FAST.train, workdir="runs")
            ),
            "train: workdir='runs' must be None",
        ),
        (lambda: glocal_fit.GlocalSetting(0.0, 1.0), "learning_rate.*> 0"),
        (lambda: glocal_fit.GlocalSetting(1e-3, 1.0, alpha=1.5), r"alpha.*in \[0, 1\]"),
    ],
)
def test_bad_configs_name_the_field(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_fit_is_deterministic_from_the_seed(task):
    features, data, local = task
    config = dataclasses.replace(FAST, train=dataclasses.replace(FAST.train, num_steps=20))
    setting = glocal_fit.grid(config, "glocal")[0]

    def weights(seed):
        return glocal_fit.fit_transform(
            features, data.train.indices, local, setting, config, seed=seed
        ).weights

    np.testing.assert_array_equal(weights(3), weights(3))
    assert not np.array_equal(weights(3), weights(4))


def test_early_stopping_keeps_the_best_weights_on_validation(task, tmp_path):
    features, data, local = task
    # A learning rate too small to move the accuracy: no measurement beats the first.
    config = dataclasses.replace(
        FAST,
        patience=2,
        burn_in=3,
        train=dataclasses.replace(FAST.train, num_steps=300, eval_every=10, log_every=10),
    )
    setting = glocal_fit.GlocalSetting(1e-9, 1e-3, 0.1)
    params = glocal_fit.fit_transform(
        features,
        data.train.indices,
        local,
        setting,
        config,
        workdir=tmp_path,
        validation_triplets=data.validation.indices,
    )
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    curve = [
        r["eval/odd_one_out/validation"] for r in records if "eval/odd_one_out/validation" in r
    ]
    assert len(curve) == 3 and max(r["step"] for r in records) == 30  # stopped at the 3rd
    accuracy = evaluation.odd_one_out_accuracy(params.apply(features), data.validation.indices)
    assert accuracy.accuracy == curve[0]
    # A fit the hook never measures cannot stop early.
    with pytest.raises(ConfigError, match="patience=2: early stopping needs train.eval_every"):
        dataclasses.replace(config, train=dataclasses.replace(config.train, eval_every=0))


def test_grid_search_keeps_the_validation_best_and_resumes(task, tmp_path, monkeypatch):
    features, data, local = task
    config = dataclasses.replace(
        FAST,
        penalty_weights=(30.0, 1e-3),
        train=dataclasses.replace(FAST.train, num_steps=150, eval_every=75),
    )
    # The record of a fit interrupted before its transform was saved is replaced.
    stale = tmp_path / "glocal" / glocal_fit.grid(config, "glocal")[0].name / "metrics.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"step": 50, "loss": 0.0}\n')
    best, results = glocal_fit.grid_search(
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
    # Each fit's learning curve: the loss every log_every steps (it falls), the
    # validation accuracy every eval_every steps and at the end (the selected one).
    for result in results:
        lines = (tmp_path / "glocal" / result.setting.name / "metrics.jsonl").read_text()
        records = [json.loads(line) for line in lines.splitlines()]
        losses_ = [r for r in records if "loss" in r]
        assert [r["step"] for r in losses_] == [50, 100, 150]
        assert losses_[-1]["loss"] < losses_[0]["loss"]
        assert all(r["learning_rate"] == pytest.approx(1e-2) for r in losses_)
        accuracies = [r for r in records if "eval/odd_one_out/validation" in r]
        assert [r["step"] for r in accuracies] == [75, 150]
        assert accuracies[-1]["eval/odd_one_out/validation"] == result.validation_accuracy

    def refit(*args, **kwargs):
        raise AssertionError("a saved transform was fitted again")

    monkeypatch.setattr(glocal_fit, "fit_transform", refit)
    again, _ = glocal_fit.grid_search(
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
    setting = glocal_fit.GlocalSetting(1e-2, 1e-3, 0.1)
    with pytest.raises(ValueError, match="local_features"):
        glocal_fit.fit_transform(features, data.train.indices, local[:, :3], setting, FAST)
    with pytest.raises(ValueError, match="indices"):
        glocal_fit.fit_transform(features, data.train.indices + 1000, local, setting, FAST)
    with pytest.raises(ValueError, match="features"):
        glocal_fit.fit_transform(features[0], data.train.indices, local, setting, FAST)
    with pytest.raises(ValueError, match="kind"):
        glocal_fit.fit_transform(features, data.train.indices, local, setting, FAST, kind="both")


def test_human_similarity_is_the_trees_plus_appearance():
    tree = Tree.balanced((2, 2, 2))
    world = HierarchyWorld(tree=tree, image_size=8)
    leaves = tree.leaves
    plain = glocal_data.human_similarity(world, leaves, 0.0)
    np.testing.assert_allclose(
        plain, world.log_generative_similarity(leaves[:, None], leaves[None, :]), rtol=1e-6
    )
    # Balanced tree, uniform level weights: s_gen = sum_{d <= depth(lca)} N_d / 4.
    assert plain[0, 0] == pytest.approx(np.log((1 + 2 + 4 + 8) / 4), rel=1e-5)
    assert plain[0, -1] == pytest.approx(np.log(1 / 4), rel=1e-5)
    seen = glocal_data.human_similarity(world, leaves, 0.5)
    np.testing.assert_allclose(seen, seen.T)
    assert np.all(np.abs(seen - plain) <= 0.5 + 1e-9)
    np.testing.assert_allclose(np.diag(seen - plain), 0.5)


def test_align_selects_evaluates_and_writes_the_artefacts(task, tmp_path):
    features, data, local = task
    n = len(features)
    alignment = glocal.AlignmentData(
        description="Four features, two of them the people's.",
        features=features,
        fit_rows=np.arange(n),
        train=data.train,
        validation=data.validation,
        test=data.test,
        levels=None,
        local_features=local,
        held_out=None,
    )
    config = dataclasses.replace(
        FAST, penalty_weights=(30.0, 1e-3), train=dataclasses.replace(FAST.train, num_steps=150)
    )
    metrics = glocal.align(alignment, config, EvaluationConfig(kernel="dot"), tmp_path)
    assert set(metrics) == {"base", "naive", "glocal", "grid", "stage_seconds"}
    assert list(metrics["stage_seconds"]) == list(glocal.ALIGN_STAGES)
    assert set(metrics["glocal"]) == {
        "odd_one_out/validation",
        "noise_ceiling/validation",
        "odd_one_out/test",
        "noise_ceiling/test",
        "neighbour_preservation",
    }
    assert metrics["base"]["neighbour_preservation"] == 1.0
    chosen = [row for row in metrics["grid"] if row["selected"]]
    assert [row["kind"] for row in chosen] == ["naive", "glocal"]
    assert chosen[1]["penalty_weight"] == 1e-3
    for kind, name in glocal.TRANSFORM_FILES.items():
        space = AffineParams.load_npz(tmp_path / name).apply(features)
        accuracy = evaluation.odd_one_out_accuracy(space, data.test.indices).accuracy
        assert metrics[kind]["odd_one_out/test"] == accuracy
    assert json.loads((tmp_path / "grid.json").read_text()) == metrics["grid"]
    report = (tmp_path / "report.md").read_text()
    assert "alignment_vs_local_structure.png" in report and "downstream.png" not in report
    assert (tmp_path / "alignment_vs_local_structure.png").stat().st_size > 10_000
