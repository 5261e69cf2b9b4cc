"""The AligNet chain's stages: uncertainty distillation, triplet sets, loss, evaluation."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax import losses, runner
from alignjax.data import tfds_builders
from alignjax.data.hierarchy import HierarchyWorld
from alignjax.methods import alignet, alignet_data, alignet_triplets
from alignjax.methods.alignet_data import DataConfig
from alignjax.models import AffineParams

SMALL = DataConfig(
    world=HierarchyWorld(image_size=8),
    pool_size=64,
    human_items=120,
    human_train=2000,
    human_validation=300,
    human_test=600,
    levels_items_per_leaf=3,
    levels_per_level=60,
    held_out_items_per_leaf=4,
)
UD = alignet.UncertaintyDistillationConfig(
    temperatures=(0.5, 1.0),
    penalties=(0.01,),
    batch_size=256,
    train=dataclasses.replace(
        alignet.UncertaintyDistillationConfig().train, learning_rate=2e-2, num_steps=400
    ),
)
CONFIG = alignet.AligNetConfig(
    data=SMALL,
    uncertainty_distillation=UD,
    evaluation=alignet.EvaluationConfig(n_shot=2, few_shot_seeds=(0, 1), anomaly_neighbours=2),
)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("variants=alignet,nope", "variants must be a non-empty subset"),
        (
            "uncertainty_distillation.temperatures=0.5,0",
            r"uncertainty_distillation.temperatures=\(0.5, 0.0\): every value must be .* > 0",
        ),
        (
            "uncertainty_distillation.penalties=-0.1",
            r"uncertainty_distillation.penalties=\(-0.1,\): every value must be .* >= 0",
        ),
        ("uncertainty_distillation.batch_size=0", "batch_size=0: must be an integer >= 1"),
        ("uncertainty_distillation.init_scale=0", "init_scale=0.0: must be .* > 0"),
        ("uncertainty_distillation.raw_temperatures=[]", "raw_temperatures.*at least one"),
        ("uncertainty_distillation.train.workdir=runs", "workdir='runs' must be None"),
        (
            "evaluation.anomaly_neighbours=21",
            r"anomaly_neighbours=21 exceeds the 20 training images",
        ),
    ],
)
def test_bad_configs_name_the_fields(override, message):
    with pytest.raises(runner.UsageError, match=message):
        runner.get_experiment("alignet").config("quick", [override])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return alignet_data.build_data(SMALL, tmp_path_factory.mktemp("alignet-chain") / "data")


def _one_hot(labels):
    return (
        np.unique(labels, return_inverse=True)[1].reshape(-1)[:, None]
        == np.arange(len(np.unique(labels)))
    ).astype(np.float32)


def _hierarchical_features(images, weights):
    """One-hot codes of the superordinate, basic and leaf category, weighted."""
    return np.concatenate(
        [
            w * _one_hot(images[level])
            for level, w in zip(("superordinate", "basic", "leaf"), weights)
        ],
        axis=1,
    )


def test_uncertainty_distillation_lowers_the_kl_to_held_out_humans(data_dir, tmp_path):
    rng = np.random.default_rng(0)
    humans = alignet_data.load_images(data_dir, "humans")
    # A teacher that knows the basic categories well and the superordinate ones barely.
    raw = _hierarchical_features(humans, (0.2, 2.0, 0.0)) + rng.normal(
        0, 0.1, (len(humans["leaf"]), 1)
    )
    raw = raw + 0.1 * rng.normal(size=raw.shape).astype(np.float32)
    aligned, untransformed, summary = alignet.uncertainty_distillation(
        CONFIG, {"humans": raw}, data_dir, tmp_path
    )
    assert summary["aligned/test_kl"] < 0.8 * summary["untransformed/test_kl"]
    test = alignet_data.load_triplets(data_dir, "test")
    assert aligned.kl(raw, test) == pytest.approx(summary["aligned/test_kl"])
    # The chosen (T, lambda) has the lowest validation KL of the grid.
    grid = summary["validation_grid"]
    best = min(grid, key=lambda row: row["kl"])
    assert (best["temperature"], best["penalty"]) == (aligned.temperature, summary["penalty"])
    np.testing.assert_array_equal(untransformed.transform.weights, np.eye(raw.shape[1]))
    # The artefacts are reused: a second call loads the same transform without fitting.
    path = tmp_path / "aligned" / "transform.npz"
    stamp = path.stat().st_mtime_ns
    again, _, _ = alignet.uncertainty_distillation(CONFIG, {"humans": raw}, data_dir, tmp_path)
    assert path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.transform.weights, aligned.transform.weights)
    assert AffineParams.load_npz(path).weights.shape == (raw.shape[1], raw.shape[1])
    # Every fit of the grid leaves its loss curve; the KL to the training humans falls.
    for t, penalty in ((0.5, 0.01), (1.0, 0.01)):
        lines = (tmp_path / "fits" / f"T={t:g}_lambda={penalty:g}" / "metrics.jsonl").read_text()
        records = [json.loads(line) for line in lines.splitlines()]
        assert [r["step"] for r in records] == list(range(50, 401, 50))
        assert records[-1]["kl"] < 0.8 * records[0]["kl"]
        assert all(r["kl"] <= r["loss"] for r in records)


def test_make_triplets_writes_and_reuses_a_tfds_triplet_set(tmp_path):
    rng = np.random.default_rng(1)
    pool = np.concatenate([rng.normal(c, 0.3, (30, 3)) for c in (-3.0, 0.0, 3.0, 6.0)]).astype(
        np.float32
    )
    identity = AffineParams(np.eye(3), np.zeros(3), 0.0, 1.0)
    teacher = alignet.SurrogateTeacher(identity, 1.0)
    config = dataclasses.replace(
        CONFIG,
        sampling=alignet_triplets.SamplingConfig(
            num_clusters=4, num_triplets=200, border_neighbours=1
        ),
    )
    made = alignet.make_triplets(config, teacher, pool, tmp_path)
    stored = tfds_builders.read_triplet_set(alignet.TRIPLETS_NAME, made["data_dir"], "train")
    expected = alignet_triplets.pseudo_label(
        alignet_triplets.sample_triplets(
            made["labels"],
            made["centroids"],
            200,
            border_neighbours=1,
            rng=np.random.default_rng(0),
        ),
        pool,
    )
    np.testing.assert_array_equal(stored.indices, expected.indices)
    np.testing.assert_allclose(stored.similarities, expected.similarities, rtol=1e-6)
    assert stored.level_names == alignet_triplets.SAMPLING_KINDS
    stamps = [
        p.stat().st_mtime_ns
        for p in (
            tmp_path / "clusters.npz",
            made["data_dir"] / alignet.TRIPLETS_NAME / "1.0.0" / "dataset_info.json",
        )
    ]
    alignet.make_triplets(config, teacher, pool, tmp_path)
    assert stamps == [
        p.stat().st_mtime_ns
        for p in (
            tmp_path / "clusters.npz",
            made["data_dir"] / alignet.TRIPLETS_NAME / "1.0.0" / "dataset_info.json",
        )
    ]


class _Identity(nnx.Module):
    def __call__(self, x):
        return x


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_distillation_loss_matches_the_triplet_divergence(divergence):
    rng = np.random.default_rng(2)
    images = rng.normal(size=(8, 3, 5)).astype(np.float32)
    a, b, c = images[:, 0], images[:, 1], images[:, 2]
    student = np.stack([(a * b).sum(1), (a * c).sum(1), (b * c).sum(1)], axis=1)
    config = alignet.DistillationConfig(divergence=divergence, student_temperature=4.0)
    loss_fn = alignet.distillation_loss(config, teacher_temperature=0.5)
    # A teacher whose logits equal the student's: t / 0.5 = s / 4.
    loss, metrics = loss_fn(
        _Identity(), {"images": jnp.asarray(images), "similarities": jnp.asarray(student / 8.0)}
    )
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    unique_max = (student[:, 0] > student[:, 1]) & (student[:, 0] > student[:, 2])
    assert float(metrics["teacher_agreement"]) == pytest.approx(unique_max.mean())
    teacher = rng.normal(size=(8, 3)).astype(np.float32)
    loss, _ = loss_fn(
        _Identity(), {"images": jnp.asarray(images), "similarities": jnp.asarray(teacher)}
    )
    divergence_fn = {"kl": losses.triplet_kl_divergence, "js": losses.triplet_js_divergence}[
        divergence
    ]
    expected = divergence_fn(
        teacher, student, teacher_temperature=0.5, student_temperature=4.0
    ).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_hierarchical_features_score_the_observers_own_best_guess(data_dir):
    features = {
        split: _hierarchical_features(alignet_data.load_images(data_dir, split), (1.0, 1.0, 1.0))
        for split in ("humans", "levels", "held_out")
    }
    metrics = alignet.evaluate_features(CONFIG, features, data_dir, base_features=features)
    levels = alignet_data.load_triplets(data_dir, "levels")
    # Features sharing one unit per shared ancestor rank pairs as the hierarchy does, so
    # they are right exactly where the observer chose its most probable pair.
    best = levels.probabilities[:, 0] >= levels.probabilities.max(axis=1) - 1e-6
    for code, name in enumerate(("coarse", "boundary", "fine")):
        rows = levels.levels == code
        assert metrics[f"dot/accuracy/{name}"] == pytest.approx(best[rows].mean())
    assert metrics["nn_preservation"] == 1.0
    assert metrics["few_shot"] == 1.0 and metrics["anomaly_auc"] == 1.0
    ceilings = alignet.noise_ceilings(data_dir)
    assert abs(metrics["dot/accuracy"] - ceilings["accuracy"]) < 0.06
