"""The AligNet chain's stages: config checks, the surrogate teacher, the distillation loss,
the backbones' checkpoints and features files, and the evaluation of a known space."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax import losses, models, runner
from alignjax.data import sources
from alignjax.data.hierarchy import HierarchyWorld
from alignjax.data.simulated import SimulatedConfig, simulated_source
from alignjax.data.triplet_set import TripletSet
from alignjax.evaluation.suite import EvaluationConfig
from alignjax.methods import (
    alignet_backbones,
    alignet_distillation,
    alignet_evaluation,
    alignet_surrogate,
)
from alignjax.methods.alignet_config import AligNetConfig
from alignjax.models import AffineParams, encoders

SMALL = SimulatedConfig(
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
UD = alignet_surrogate.UncertaintyDistillationConfig(
    temperatures=(0.5, 1.0),
    penalties=(0.01,),
    batch_size=256,
    train=dataclasses.replace(
        alignet_surrogate.UncertaintyDistillationConfig().train,
        learning_rate=2e-2,
        num_steps=400,
    ),
)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("variants=alignet,nope", r"variants=\('alignet', 'nope'\): must be a non-empty subset"),
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
        ("evaluation.anomaly_neighbours=21", r"anomaly_neighbours=21: exceeds the 20 training"),
        ("input_range=1,-1", r"input_range=\(1.0, -1.0\): must be \(low, high\)"),
        ("teacher_features=f.npy", "teacher_features='f.npy': give teacher_checkpoint or"),
        ("sampling.num_test_triplets=-1", "num_test_triplets=-1: must be an integer >= 0"),
    ],
)
def test_bad_configs_name_the_fields(override, message):
    overrides = [override]
    if override.startswith("teacher_features"):
        overrides.append("teacher_checkpoint=t.npz")
    with pytest.raises(runner.UsageError, match=message):
        runner.get_experiment("alignet").config("quick", overrides)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return simulated_source(SMALL, tmp_path_factory.mktemp("alignet-chain"))


def _one_hot(labels):
    return (
        np.unique(labels, return_inverse=True)[1].reshape(-1)[:, None]
        == np.arange(len(np.unique(labels)))
    ).astype(np.float32)


def _hierarchical_features(labels, weights):
    """One-hot codes of the superordinate, basic and leaf category, weighted."""
    return np.concatenate(
        [
            w * _one_hot(labels[level])
            for level, w in zip(("superordinate", "basic", "leaf"), weights)
        ],
        axis=1,
    )


def test_uncertainty_distillation_lowers_the_kl_to_held_out_humans(source, tmp_path):
    rng = np.random.default_rng(0)
    labels = source.labels["humans"]
    # A teacher that knows the basic categories well and the superordinate ones barely.
    raw = _hierarchical_features(labels, (0.2, 2.0, 0.0)) + rng.normal(
        0, 0.1, (len(labels["leaf"]), 1)
    )
    raw = raw + 0.1 * rng.normal(size=raw.shape).astype(np.float32)
    humans = source.triplets["humans"]
    aligned, untransformed, summary = alignet_surrogate.uncertainty_distillation(
        UD, raw, humans, tmp_path, seed=0
    )
    assert summary["aligned/test_kl"] < 0.8 * summary["untransformed/test_kl"]
    assert aligned.kl(raw, humans["test"]) == pytest.approx(summary["aligned/test_kl"])
    # The chosen (T, lambda) has the lowest validation KL of the grid.
    grid = summary["validation_grid"]
    best = min(grid, key=lambda row: row["kl"])
    assert (best["temperature"], best["penalty"]) == (aligned.temperature, summary["penalty"])
    np.testing.assert_array_equal(untransformed.transform.weights, np.eye(raw.shape[1]))
    # The artefacts are reused: a second call loads the same transform without fitting.
    path = tmp_path / "aligned" / "transform.npz"
    stamp = path.stat().st_mtime_ns
    again, _, _ = alignet_surrogate.uncertainty_distillation(UD, raw, humans, tmp_path, seed=0)
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


def test_a_stored_choice_counts_as_certain():
    features = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], np.float32)
    hard = TripletSet(np.array([[0, 1, 2], [2, 1, 0]]))
    soft = dataclasses.replace(hard, probabilities=np.tile([1.0, 0.0, 0.0], (2, 1)))
    identity = AffineParams(np.eye(2), np.zeros(2), 0.0, 1.0)
    teacher = alignet_surrogate.SurrogateTeacher(identity, 0.5)
    assert teacher.kl(features, hard) == pytest.approx(teacher.kl(features, soft))
    s = teacher.similarities(features, hard.indices)
    expected = -np.log(np.exp(s[:, 0] / 0.5) / np.exp(s / 0.5).sum(axis=1)).mean()
    assert teacher.kl(features, hard) == pytest.approx(expected, rel=1e-5)


def test_without_humans_the_temperature_is_the_spread_of_the_similarities(tmp_path):
    pool = np.random.default_rng(3).normal(2.0, 3.0, (500, 8)).astype(np.float32)
    raw, summary = alignet_surrogate.untransformed_teacher(pool, tmp_path)
    z = raw.transform.apply(pool)
    assert abs(z.mean()) < 1e-5 and z.std() == pytest.approx(1.0, rel=1e-5)
    # Standardised Gaussian features: a pair's dot product has standard deviation sqrt(d).
    assert raw.temperature == pytest.approx(np.sqrt(8), rel=0.1)
    assert summary == {"untransformed_temperature": raw.temperature, "human_triplets": False}
    np.testing.assert_array_equal(raw.transform.weights, np.eye(8))


class _Identity(nnx.Module):
    def __call__(self, x):
        return x


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_distillation_loss_matches_the_triplet_divergence(divergence):
    rng = np.random.default_rng(2)
    images = rng.normal(size=(8, 3, 5)).astype(np.float32)
    a, b, c = images[:, 0], images[:, 1], images[:, 2]
    student = np.stack([(a * b).sum(1), (a * c).sum(1), (b * c).sum(1)], axis=1)
    config = alignet_distillation.DistillationConfig(divergence=divergence, student_temperature=4.0)
    loss_fn = alignet_distillation.distillation_loss(config, teacher_temperature=0.5)
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
    # Inputs in (-1, 1): the pixels x become 2 x - 1 before the student sees them.
    ranged = alignet_distillation.distillation_loss(config, 0.5, input_range=(-1.0, 1.0))
    loss, _ = ranged(
        _Identity(), {"images": jnp.asarray((images + 1) / 2), "similarities": jnp.asarray(teacher)}
    )
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)


def test_distillation_loss_takes_uint8_images_as_x_over_255():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(6, 3, 4)).astype(np.uint8)
    teacher = jnp.asarray(rng.normal(size=(6, 3)).astype(np.float32))
    config = alignet_distillation.DistillationConfig(student_temperature=30.0)
    for input_range in ((0.0, 1.0), (-1.0, 1.0)):
        distill = alignet_distillation.distillation_loss(config, 0.5, input_range)
        loss_fn = jax.jit(lambda batch, distill=distill: distill(_Identity(), batch))
        from_uint8, _ = loss_fn({"images": pixels, "similarities": teacher})
        floats = jnp.asarray(pixels.astype(np.float32) / 255)
        from_float, _ = loss_fn({"images": floats, "similarities": teacher})
        assert float(from_uint8) == pytest.approx(float(from_float), rel=1e-6)
        # The pixels reach the student mapped onto input_range, not as raw 0..255 codes.
        raw, _ = loss_fn({"images": jnp.asarray(pixels, jnp.float32), "similarities": teacher})
        assert abs(float(raw) - float(from_uint8)) > 1e-3


def test_embed_images_streams_a_collection_in_padded_batches():
    encoder = encoders.EncoderConfig(kind="vit", variant="mu/4", embed_dim=6)
    model = encoders.build_encoder(encoder, (8, 8, 3))
    pixels = np.random.default_rng(0).integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    images = sources.ImageRows(sources.ArrayImages({"image": pixels}), np.arange(299, -1, -1))
    embedded = alignet_backbones.embed_images(model, images, (-1.0, 1.0))
    expected = encoders.embed(model, pixels[::-1].astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_allclose(embedded, expected, rtol=1e-5, atol=1e-6)


def test_a_big_vision_student_round_trips_with_its_head(tmp_path):
    encoder = encoders.EncoderConfig(kind="vit", variant="mu/4", embed_dim=6, seed=3)
    student = encoders.build_encoder(encoder, (8, 8, 3))
    path = alignet_backbones.export_student(student, tmp_path / "student.npz")
    loaded = alignet_backbones.load_vit(encoder, path, (8, 8, 3), head_dim=6)
    x = np.random.default_rng(0).random((4, 8, 8, 3), np.float32)
    np.testing.assert_allclose(loaded(x), student(x), rtol=1e-6)
    # Another head size: the backbone is loaded, the head starts afresh; a teacher takes
    # the checkpoint's head as it is.
    other = alignet_backbones.load_vit(encoder, path, (8, 8, 3), head_dim=4)
    assert other(x).shape == (4, 4)
    np.testing.assert_allclose(other.embedding.kernel[...], student.embedding.kernel[...])
    assert alignet_backbones.load_vit(encoder, path, (8, 8, 3), head_dim=None)(x).shape == (4, 6)
    models.save_big_vision_npz(models.ViT("mu/4", image_size=8, rngs=nnx.Rngs(0)), path)
    headless = alignet_backbones.load_vit(encoder, path, (8, 8, 3), head_dim=None)
    assert headless(x).shape == (4, 32)
    wrong = dataclasses.replace(encoder, depth=2)
    with pytest.raises(ValueError, match=f"{path}: checkpoint lacks"):
        alignet_backbones.load_vit(wrong, path, (8, 8, 3), head_dim=None)


def test_a_sincos_big_vision_checkpoint_loads_when_the_config_says_so(tmp_path):
    """big_vision's "plain ViT" checkpoints have fixed 2-D sin-cos position embeddings
    and no pos_embedding array: ``posemb="sincos2d"`` loads them; a mismatch is named."""
    sincos = encoders.EncoderConfig(kind="vit", variant="mu/4", embed_dim=6, posemb="sincos2d")
    trained = encoders.build_encoder(sincos, (8, 8, 3))
    assert trained.pos_embedding is None
    path = alignet_backbones.export_student(trained, tmp_path / "plain.npz")
    with np.load(path) as npz:
        assert not any(key.endswith("pos_embedding") for key in npz.files)
    x = np.random.default_rng(0).random((4, 8, 8, 3), np.float32)
    loaded = alignet_backbones.load_vit(sincos, path, (8, 8, 3), head_dim=6)
    np.testing.assert_allclose(loaded(x), trained(x), rtol=1e-6)
    learned = dataclasses.replace(sincos, posemb="learn")
    with pytest.raises(ValueError, match=r"has no learned .* --set teacher.posemb=sincos2d"):
        alignet_backbones.load_vit(learned, path, (8, 8, 3), head_dim=None, role="teacher")
    path = alignet_backbones.export_student(
        encoders.build_encoder(learned, (8, 8, 3)), tmp_path / "learned.npz"
    )
    with pytest.raises(ValueError, match=r"stores learned .* --set student.posemb=learn"):
        alignet_backbones.load_vit(sincos, path, (8, 8, 3), head_dim=6)
    with pytest.raises(ValueError, match="posemb must be 'learn' or 'sincos2d'"):
        encoders.EncoderConfig(kind="vit", posemb="rope")


def test_a_features_file_is_split_by_the_image_order(tmp_path):
    images = sources.ArrayImages({"image": np.zeros((5, 2, 2, 3), np.uint8)})
    source = sources.ImageSource(
        "five images",
        {
            "pool": sources.ImageRows(images, np.arange(5)),
            "humans": sources.ImageRows(images, np.array([4, 2])),
        },
        images=images,
    )
    path = tmp_path / "features.npy"
    np.save(path, np.arange(10.0).reshape(5, 2))
    features = alignet_backbones.features_from_file(path, source)
    np.testing.assert_array_equal(features["humans"], [[8, 9], [4, 5]])
    np.save(path, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=f"{path}: 4 rows of features for 5 images"):
        alignet_backbones.features_from_file(path, source)


def test_hierarchical_features_score_the_observers_own_best_guess(source):
    features = {
        split: _hierarchical_features(source.labels[split], (1.0, 1.0, 1.0))
        for split in ("humans", "evaluation", "held_out")
    }
    config = EvaluationConfig(
        kernel="cosine", few_shot_shots=(2,), few_shot_seeds=(0, 1), anomaly_neighbours=2
    )
    splits = alignet_evaluation.benchmarks(source, config)
    assert set(splits) == {"humans", "evaluation", "held_out"}
    metrics = alignet_evaluation.evaluate_model(features, splits, config, reference=features)
    levels = source.triplets["evaluation"]["levels"]
    # Features sharing one unit per shared ancestor rank pairs as the hierarchy does, so
    # they are right exactly where the observer chose its most probable pair.
    best = levels.probabilities[:, 0] >= levels.probabilities.max(axis=1) - 1e-6
    for code, name in enumerate(("coarse", "boundary", "fine")):
        rows = levels.levels == code
        assert metrics[f"dot/odd_one_out/levels/{name}"] == pytest.approx(best[rows].mean())
    assert metrics["neighbour_preservation"] == 1.0
    assert metrics["few_shot/logistic/2"] == 1.0 and metrics["anomaly_auc"] == 1.0
    assert abs(metrics["dot/odd_one_out/levels"] - metrics["noise_ceiling/levels"]) < 0.06
    assert "noise_ceiling/humans" in metrics and "dot/noise_ceiling/humans" not in metrics


def test_categories_too_small_for_the_probes_are_left_out():
    leaves = np.array([5] * 10 + [6] * 3 + [7] * 12)
    config = EvaluationConfig(few_shot_shots=(3,), anomaly_neighbours=4)
    held_out = alignet_evaluation.held_out_categories(leaves, config)
    assert set(held_out.pool_labels.tolist()) == {5, 7}
    np.testing.assert_array_equal(held_out.pool, [0, 1, 2, 3, 4, 13, 14, 15, 16, 17, 18])
    np.testing.assert_array_equal(held_out.test[:5], [5, 6, 7, 8, 9])
    assert alignet_evaluation.held_out_categories(leaves[:13], config) is None


def test_teacher_triplets_are_reindexed_into_their_pool_rows():
    tests = {
        "alignet": TripletSet(np.array([[7, 3, 9]]), n_items=10),
        "unalignet": TripletSet(np.array([[3, 5, 7]]), n_items=10),
    }
    rows, benchmark = alignet_evaluation.teacher_benchmark(tests)
    np.testing.assert_array_equal(rows, [3, 5, 7, 9])
    for name, triplets in tests.items():
        np.testing.assert_array_equal(
            rows[benchmark.triplets[f"{name}_teacher"].indices], triplets.indices
        )


def test_the_files_config_distills_alignet_only_with_human_triplets():
    from alignjax.data.image_files import ImageFilesConfig
    from alignjax.experiments import alignet as experiment

    with_humans = ImageFilesConfig(image_folder="images", triplets="triplets.txt")
    assert experiment.files_config("quick", with_humans).variants == ("alignet",)
    without = experiment.files_config("quick", ImageFilesConfig(image_folder="images"))
    assert without.variants == ("unalignet",) and without.teacher_labels == "leaf"
    with pytest.raises(ValueError, match="the AligNet student needs human triplets"):
        dataclasses.replace(without, variants=("alignet",))
    assert isinstance(AligNetConfig().data, SimulatedConfig)
