"""Grain pipelines: determinism, threads, per-process sharding, resumable iterators."""

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from alignjax.data.pipeline import device_put_batch, example_stream, triplet_stream, unit_interval
from alignjax.data.sources import ArrayImages, ImageRows
from alignjax.data.tfds_builders import data_source, write_image_set, write_triplet_set
from alignjax.data.triplet_set import TripletSet


def sample(rng):
    """A stand-in world: a triplet of 2-d points and a 40-bit id that names the example."""
    return {"x": rng.normal(size=(3, 2)).astype(np.float32), "id": rng.integers(0, 2**40, size=())}


def _collect(stream):
    return [dict(batch) for batch in stream]


def _stack(batches, key):
    return np.concatenate([b[key] for b in batches])


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


STREAM = dict(num_examples=40, batch_size=8, num_epochs=2, process_index=0, process_count=1)


@pytest.fixture(scope="module")
def triplets():
    rng = np.random.default_rng(0)
    indices = np.stack([rng.choice(16, 3, replace=False) for _ in range(24)])
    return TripletSet(
        indices,
        similarities=rng.normal(size=(24, 3)),
        levels=np.arange(24) % 2,
        level_names=("coarse", "fine"),
        n_items=16,
    )


@pytest.fixture(scope="module")
def items():
    return {"x": np.random.default_rng(1).normal(size=(16, 5)).astype(np.float32)}


def test_same_seed_same_bytes_and_threads_do_not_change_the_stream():
    reference = _collect(example_stream(sample, seed=3, num_threads=2, **STREAM))
    for threads in (0, 1):
        _assert_same(
            _collect(example_stream(sample, seed=3, num_threads=threads, **STREAM)), reference
        )
    other = _collect(example_stream(sample, seed=4, **STREAM))
    assert not np.array_equal(_stack(other, "x"), _stack(reference, "x"))
    ids = _stack(reference, "id")
    assert len(ids) == 80 and len(set(ids.tolist())) == 80  # each epoch draws new examples


def test_drop_remainder():
    kwargs = dict(num_examples=10, batch_size=4, seed=0, process_index=0, process_count=1)
    assert [len(b["x"]) for b in example_stream(sample, **kwargs)] == [4, 4]
    assert [len(b["x"]) for b in example_stream(sample, drop_remainder=False, **kwargs)] == [
        4,
        4,
        2,
    ]


def test_endless_stream_continues_the_epochs():
    finite = _collect(example_stream(sample, seed=3, **STREAM))
    endless = iter(example_stream(sample, seed=3, **(STREAM | {"num_epochs": None})))
    _assert_same([next(endless) for _ in finite], finite)
    assert next(endless)["x"].shape == (8, 3, 2)


@pytest.mark.parametrize("make", ["examples", "triplets"])
def test_two_processes_partition_the_stream(make, triplets, items):
    def stream(index, count):
        if make == "examples":
            return example_stream(
                sample,
                num_examples=24,
                batch_size=4,
                seed=1,
                num_epochs=2,
                process_index=index,
                process_count=count,
            )
        return triplet_stream(
            triplets,
            items,
            batch_size=4,
            seed=1,
            num_epochs=2,
            process_index=index,
            process_count=count,
        )

    def rows(batches):
        key = "id" if make == "examples" else "indices"
        values = _stack(batches, key)
        return [tuple(np.atleast_1d(v).tolist()) for v in values]

    whole = _collect(stream(0, 1))
    shards = [_collect(stream(i, 2)) for i in range(2)]
    assert all(
        len(b["indices" if make == "triplets" else "x"]) == 2 for shard in shards for b in shard
    )
    for epoch in range(2):
        per_epoch = [rows(shard)[epoch * 12 : (epoch + 1) * 12] for shard in shards]
        assert not set(per_epoch[0]) & set(per_epoch[1])
        assert sorted(per_epoch[0] + per_epoch[1]) == sorted(
            rows(whole)[epoch * 24 : (epoch + 1) * 24]
        )


def sample_chunk(rng):
    """Four examples per call, each with its own id."""
    return {
        "x": rng.normal(size=(4, 3, 2)).astype(np.float32),
        "id": rng.integers(0, 2**40, size=(4,)),
    }


def test_chunked_stream_is_the_same_for_threads_and_processes():
    kwargs = dict(num_examples=48, batch_size=8, seed=5, num_epochs=1, examples_per_call=4)
    whole = _collect(
        example_stream(sample_chunk, num_threads=2, process_index=0, process_count=1, **kwargs)
    )
    assert [b["x"].shape for b in whole] == [(8, 3, 2)] * 6
    _assert_same(
        _collect(
            example_stream(sample_chunk, num_threads=0, process_index=0, process_count=1, **kwargs)
        ),
        whole,
    )
    shards = [
        _collect(example_stream(sample_chunk, process_index=i, process_count=2, **kwargs))
        for i in range(2)
    ]
    for step, batch in enumerate(whole):
        # Step s of the global stream is the union of the two processes' step s.
        local = np.concatenate([shards[0][step]["id"], shards[1][step]["id"]])
        assert sorted(local.tolist()) == sorted(batch["id"].tolist())
    with pytest.raises(ValueError, match="multiples of examples_per_call=4"):
        example_stream(sample_chunk, num_examples=10, batch_size=8, seed=0, examples_per_call=4)


def test_triplet_stream_gathers_items_and_covers_each_epoch(triplets, items):
    batches = _collect(
        triplet_stream(
            triplets, items, batch_size=6, seed=2, num_epochs=2, process_index=0, process_count=1
        )
    )
    assert len(batches) == 8
    for batch in batches:
        assert batch["x"].shape == (6, 3, 5)
        np.testing.assert_array_equal(batch["x"], items["x"][batch["indices"]])
    order = [
        np.flatnonzero((triplets.indices == row).all(axis=1))[0]
        for row in _stack(batches, "indices")
    ]
    assert sorted(order[:24]) == list(range(24)) and sorted(order[24:]) == list(range(24))
    assert order[:24] != order[24:]  # reshuffled each epoch
    first = np.array(order[:6])
    np.testing.assert_array_equal(batches[0]["similarities"], triplets.similarities[first])
    np.testing.assert_array_equal(batches[0]["level"], triplets.levels[first])
    unshuffled = _collect(
        triplet_stream(
            triplets, None, batch_size=6, seed=2, shuffle=False, process_index=0, process_count=1
        )
    )
    np.testing.assert_array_equal(_stack(unshuffled, "indices"), triplets.indices)
    assert "x" not in unshuffled[0]


def test_triplet_stream_from_tfds_sources_equals_in_memory(tmp_path, triplets):
    rng = np.random.default_rng(3)
    images = {
        "image": rng.integers(0, 256, size=(16, 4, 4, 3), dtype=np.uint8),
        "label": np.arange(16) % 4,
    }
    write_image_set({"train": images}, name="items", data_dir=tmp_path)
    write_triplet_set({"train": triplets}, name="trips", data_dir=tmp_path)
    kwargs = dict(batch_size=8, seed=5, process_index=0, process_count=1)
    stored = _collect(
        triplet_stream(
            data_source("trips", tmp_path, "train"),
            data_source("items", tmp_path, "train"),
            **kwargs,
        )
    )
    in_memory = _collect(triplet_stream(triplets, images, **kwargs))
    _assert_same(stored, in_memory)
    # Tables too large for memory (here: any) are read from the store batch by batch.
    streamed = _collect(
        triplet_stream(
            data_source("trips", tmp_path, "train"),
            data_source("items", tmp_path, "train"),
            in_memory_bytes=0,
            **kwargs,
        )
    )
    _assert_same(streamed, in_memory)
    batch = stored[0]
    # uint8 images stay uint8 (the consumer divides by 255 on the device).
    assert batch["images"].dtype == np.uint8 and batch["images"].shape == (8, 3, 4, 4, 3)
    np.testing.assert_array_equal(batch["images"], images["image"][batch["indices"]])
    np.testing.assert_array_equal(batch["label"], images["label"][batch["indices"]])


@pytest.mark.parametrize("process_index", [0, 1])
def test_stream_is_a_seeded_permutation_per_epoch_dealt_to_the_processes(
    triplets, items, process_index
):
    kwargs = dict(
        batch_size=10, seed=11, num_epochs=3, process_index=process_index, process_count=2
    )
    batches = _collect(triplet_stream(triplets, items, **kwargs))
    # Epoch e is permutation(seed, e) of the 24 triplets; each process takes every other one.
    rows = np.concatenate(
        [np.random.default_rng((11, e)).permutation(24)[process_index::2] for e in range(3)]
    )
    assert [len(b["indices"]) for b in batches] == [5] * 7  # 36 rows, batches straddle epochs
    np.testing.assert_array_equal(_stack(batches, "indices"), triplets.indices[rows[:35]])
    np.testing.assert_array_equal(_stack(batches, "similarities"), triplets.similarities[rows[:35]])
    np.testing.assert_array_equal(_stack(batches, "x"), items["x"][triplets.indices[rows[:35]]])
    kept = _collect(triplet_stream(triplets, items, drop_remainder=False, **kwargs))
    np.testing.assert_array_equal(kept[-1]["indices"], triplets.indices[rows[35:]])


def test_pool_images_gather_from_memory_or_store_alike(tmp_path, triplets):
    """An in-memory image collection (rows of it) is gathered as its records read."""
    rng = np.random.default_rng(4)
    whole = ArrayImages(
        {
            "image": rng.integers(0, 256, size=(20, 2, 2, 3), dtype=np.uint8),
            "basic": np.arange(20) % 3,
        }
    )
    pool = ImageRows(whole, np.arange(19, 3, -1))  # 16 items, in another order
    kwargs = dict(batch_size=8, seed=2, process_index=0, process_count=1)
    batches = _collect(triplet_stream(triplets, pool, **kwargs))
    by_record = _collect(triplet_stream(triplets, pool, in_memory_bytes=0, **kwargs))
    _assert_same(batches, by_record)
    for batch in batches:
        rows = np.arange(19, 3, -1)[batch["indices"]]  # [8, 3] rows of the whole set
        np.testing.assert_array_equal(batch["images"], whole.arrays["image"][rows])
        np.testing.assert_array_equal(batch["basic"], rows % 3)


def test_worker_processes_give_the_same_batches(triplets, items):
    kwargs = dict(batch_size=4, seed=3, num_epochs=2, process_index=0, process_count=1)
    reference = _collect(triplet_stream(triplets, items, **kwargs))
    it = iter(triplet_stream(triplets, items, num_workers=2, **kwargs))
    try:
        _assert_same(list(it), reference)
    finally:
        it.close()


def test_unit_interval_divides_uint8_by_255_under_jit():
    images = np.array([[0, 51], [204, 255]], np.uint8)
    np.testing.assert_allclose(
        np.asarray(jax.jit(unit_interval)(images)), [[0.0, 0.2], [0.8, 1.0]], rtol=1e-7
    )
    floats = np.array([0.25, 0.5], np.float64)
    assert unit_interval(floats).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(unit_interval(floats)), [0.25, 0.5])


def _resume_case(triplets, items):
    return triplet_stream(
        triplets, items, batch_size=5, seed=7, num_epochs=3, process_index=0, process_count=1
    )


def test_get_state_set_state_resumes_to_the_same_batches(triplets, items):
    stream = _resume_case(triplets, items)
    uninterrupted = _collect(stream)
    it = iter(stream)
    for _ in range(6):  # past the first epoch boundary (24 triplets, 5 per batch)
        next(it)
    state = it.get_state()
    resumed = iter(_resume_case(triplets, items))
    resumed.set_state(state)
    _assert_same(_collect(resumed), uninterrupted[6:])


def test_orbax_checkpoint_resumes_to_the_same_batches(tmp_path, triplets, items):
    stream = _resume_case(triplets, items)
    uninterrupted = _collect(stream)
    it = iter(stream)
    for _ in range(4):
        next(it)
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        manager.save(4, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
        manager.wait_until_finished()
    restored = iter(_resume_case(triplets, items))
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        assert manager.latest_step() == 4
        manager.restore(
            4, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored))
        )
    _assert_same(_collect(restored), uninterrupted[4:])


def test_example_stream_resumes_too():
    stream = example_stream(sample, seed=9, **STREAM)
    uninterrupted = _collect(stream)
    it = iter(stream)
    next(it), next(it), next(it)
    resumed = iter(stream)
    resumed.set_state(it.get_state())
    _assert_same(_collect(resumed), uninterrupted[3:])


def test_device_put_batch_shards_the_batch_axis():
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    batch = next(
        iter(
            example_stream(
                sample, num_examples=16, batch_size=16, seed=0, process_index=0, process_count=1
            )
        )
    )
    batch["indices"] = np.arange(48).reshape(16, 3)
    placed = device_put_batch(batch, sharding)
    for key in ("x", "indices"):
        assert placed[key].sharding == sharding
        np.testing.assert_array_equal(np.asarray(placed[key]), batch[key])
    assert len(placed["x"].addressable_shards) == 8 and placed["x"].addressable_shards[
        0
    ].data.shape == (2, 3, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(batch_size=5, process_index=0, process_count=2),
            "batch_size must be divisible by process_count=2",
        ),
        (
            dict(batch_size=4, process_index=2, process_count=2),
            r"process_index must be in \[0, 2\)",
        ),
        (
            dict(batch_size=0, process_index=0, process_count=1),
            "batch_size must be a positive integer",
        ),
        (
            dict(batch_size=4, num_epochs=0, process_index=0, process_count=1),
            "num_epochs must be a positive integer",
        ),
        (
            dict(batch_size=4, num_threads=-1, process_index=0, process_count=1),
            "num_threads must be >= 0",
        ),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        example_stream(sample, num_examples=8, seed=0, **kwargs)


def test_bad_items_raise(triplets):
    with pytest.raises(ValueError, match="clash with the triplet fields"):
        triplet_stream(
            triplets,
            {"indices": np.zeros((16, 2))},
            batch_size=4,
            seed=0,
            process_index=0,
            process_count=1,
        )
    with pytest.raises(ValueError, match="one common number of rows"):
        triplet_stream(
            triplets,
            {"a": np.zeros((16, 2)), "b": np.zeros(3)},
            batch_size=4,
            seed=0,
            process_index=0,
            process_count=1,
        )
    stream = triplet_stream(
        triplets, {"x": np.zeros((8, 2))}, batch_size=4, seed=0, process_index=0, process_count=1
    )
    with pytest.raises(ValueError, match="points outside the 8 items"):
        _collect(stream)
