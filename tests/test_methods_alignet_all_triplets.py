"""AligNet's student distillation over all triplets of a batch: the loss against a loop
over every triplet, the stream of pool images, and a short run that learns."""

import itertools
import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax import losses
from alignjax.config import TrainConfig
from alignjax.data.sources import ArrayImages
from alignjax.methods import alignet_distillation
from alignjax.methods.alignet_distillation import DistillationConfig


class _Flatten(nnx.Module):
    """The pixels as features (a student whose embeddings are known)."""

    def __call__(self, x):
        return x.reshape(x.shape[0], -1)


def _loop_loss(teacher, student, divergence, t_temp, s_temp, kernel):
    """The mean divergence over every triplet i < j < k, one triplet at a time."""
    if kernel == "cosine":
        student = student / np.linalg.norm(student, axis=1, keepdims=True)
    fn = {"kl": losses.triplet_kl_divergence, "js": losses.triplet_js_divergence}[divergence]
    values = []
    for i, j, k in itertools.combinations(range(len(teacher)), 3):
        t = np.array([[teacher[i] @ teacher[j], teacher[i] @ teacher[k], teacher[j] @ teacher[k]]])
        s = np.array([[student[i] @ student[j], student[i] @ student[k], student[j] @ student[k]]])
        values.append(float(fn(t, s, teacher_temperature=t_temp, student_temperature=s_temp)[0]))
    return np.mean(values)


@pytest.mark.parametrize(("divergence", "kernel"), [("kl", "dot"), ("js", "cosine")])
def test_all_triplets_loss_equals_a_loop_over_every_triplet(divergence, kernel):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 2, 2, 1), dtype=np.uint8)
    teacher = rng.normal(size=(7, 3)).astype(np.float32)
    config = DistillationConfig(divergence=divergence, kernel=kernel, student_temperature=0.7)
    loss_fn = alignet_distillation.all_triplets_loss(config, 0.4, input_range=(-1.0, 1.0))
    batch = {"images": jnp.asarray(images), "teacher_features": jnp.asarray(teacher)}
    loss, metrics = loss_fn(_Flatten(), batch)
    student = 2 * images.reshape(7, -1).astype(np.float64) / 255 - 1
    expected = _loop_loss(teacher, student, divergence, 0.4, 0.7, kernel)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # Float images in [0, 1] are the same input as their uint8 bytes.
    as_float = dict(batch, images=jnp.asarray(images, jnp.float32) / 255)
    assert float(loss_fn(_Flatten(), as_float)[0]) == pytest.approx(float(loss), rel=1e-6)
    # Agreement on the disjoint triplets (0, 1, 2) and (3, 4, 5); item 6 is left over.
    s = student / np.linalg.norm(student, axis=1, keepdims=True) if kernel == "cosine" else student
    agree = []
    for a, b, c in ((0, 1, 2), (3, 4, 5)):
        pairs = [(a, b), (a, c), (b, c)]
        agree.append(
            np.argmax([teacher[x] @ teacher[y] for x, y in pairs])
            == np.argmax([s[x] @ s[y] for x, y in pairs])
        )
    assert float(metrics["teacher_agreement"]) == pytest.approx(np.mean(agree))


def _pool(n=10, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 2, 2, 1), dtype=np.uint8)
    return ArrayImages({"image": images}), rng.normal(size=(n, 3)).astype(np.float32)


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def test_the_pool_stream_is_seeded_shuffled_and_resumes():
    pool, features = _pool()

    def stream(seed, batch_size=6):
        return alignet_distillation.pool_stream(
            pool, features, batch_size=batch_size, seed=seed, num_threads=0
        )

    batches = _take(iter(stream(3)), 4)
    # Each image comes with its index and the teacher's features of it.
    for batch in batches:
        assert batch["images"].shape[0] == 6 and batch["teacher_features"].shape == (6, 3)
        # uint8 as stored: the student's loss maps them to [0, 1] on the device.
        assert batch["images"].dtype == np.uint8
        np.testing.assert_array_equal(batch["images"], pool.arrays["image"][batch["indices"]])
        np.testing.assert_array_equal(batch["teacher_features"], features[batch["indices"]])
    # An epoch is 4 groups of 3: the 10 images, two of them twice; a new order each epoch.
    epochs = [np.concatenate([b["indices"] for b in batches[e : e + 2]]) for e in (0, 2)]
    for epoch in epochs:
        assert set(epoch.tolist()) == set(range(10)) and len(epoch) == 12
    assert epochs[0].tolist() != epochs[1].tolist()
    again = _take(iter(stream(3)), 4)
    assert [b["indices"].tolist() for b in again] == [b["indices"].tolist() for b in batches]
    other = _take(iter(stream(4)), 2)
    assert [b["indices"].tolist() for b in other] != [b["indices"].tolist() for b in batches[:2]]
    # An iterator restored from the state after three batches goes on with the fourth.
    first = iter(stream(3))
    _take(first, 3)
    resumed = iter(stream(3))
    resumed.set_state(first.get_state())
    np.testing.assert_array_equal(next(resumed)["indices"], batches[3]["indices"])
    with pytest.raises(ValueError, match="multiple of 3"):
        stream(3, batch_size=5)


def test_a_short_all_triplets_distillation_lowers_the_loss(tmp_path):
    pool, _ = _pool(n=48, seed=1)
    pixels = pool.arrays["image"].reshape(48, -1).astype(np.float32) / 255
    teacher = pixels @ np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    student = nnx.Linear(4, 3, rngs=nnx.Rngs(0))

    class Student(nnx.Module):
        def __init__(self):
            self.head = student

        def __call__(self, x):
            return self.head(x.reshape(x.shape[0], -1))

    config = DistillationConfig(batch_size=8, num_threads=0, triplets="all")
    train = TrainConfig(num_steps=60, learning_rate=0.05, log_every=10, progress_bar=False)
    trained = alignet_distillation.distill_student(
        Student(),
        pool,
        tmp_path / "unused",
        1.0,
        tmp_path / "student",
        distillation=config,
        train=train,
        input_range=(0.0, 1.0),
        seed=0,
        teacher_features=teacher,
    )
    records = [json.loads(line) for line in (tmp_path / "student/metrics.jsonl").open()]
    loss = [r["loss"] for r in records if "loss" in r]
    assert len(loss) == 6 and loss[-1] < 0.5 * loss[0]
    assert isinstance(trained.head, nnx.Linear)
    with pytest.raises(ValueError, match="teacher_features"):
        alignet_distillation.distill_student(
            Student(),
            pool,
            tmp_path / "unused",
            1.0,
            tmp_path / "again",
            distillation=config,
            train=train,
            input_range=(0.0, 1.0),
            seed=0,
        )
