"""TFDS/ArrayRecord storage: round trips through tfds.data_source, without TensorFlow."""

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from alignjax.data.tfds_builders import (
    data_source,
    read_image_set,
    read_rows,
    read_triplet_set,
    record_nbytes,
    write_image_set,
    write_triplet_set,
)
from alignjax.data.triplet_set import TripletSet


def _images(seed, n=24):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.random((n, 6, 5, 3)).astype(np.float32),
        "label": rng.integers(0, 4, n),
        "superordinate": rng.integers(0, 2, n),
    }


def _triplets(seed, n=30):
    rng = np.random.default_rng(seed)
    indices = np.stack([rng.choice(10, 3, replace=False) for _ in range(n)])
    return TripletSet(
        indices,
        similarities=rng.normal(size=(n, 3)),
        probabilities=rng.dirichlet(np.ones(3), n),
        levels=rng.integers(0, 3, n),
        level_names=("coarse", "fine", "boundary"),
        n_items=10,
    )


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    images = {"train": _images(0), "test": _images(1, n=7)}
    triplets = {"train": _triplets(2), "test": _triplets(3, n=5)}
    write_image_set(images, name="toy_images", data_dir=data_dir)
    write_triplet_set(triplets, name="toy_triplets", data_dir=data_dir)
    return data_dir, images, triplets


def test_image_set_round_trip_through_tfds_data_source(stored):
    data_dir, images, _ = stored
    sources = tfds.data_source("toy_images", data_dir=str(data_dir), download=False)
    assert sorted(sources) == ["test", "train"]
    for split, arrays in images.items():
        source = sources[split]
        assert len(source) == len(arrays["image"])
        for i in range(len(source)):
            record = source[i]
            # Stored as round(255 x): record i is item i (no shuffling).
            np.testing.assert_array_equal(
                record["image"], np.round(arrays["image"][i] * 255).astype(np.uint8)
            )
            assert (
                record["label"] == arrays["label"][i]
                and record["superordinate"] == arrays["superordinate"][i]
            )
    read = read_image_set("toy_images", data_dir, "train")
    assert read["image"].dtype == np.uint8 and read["image"].shape == (24, 6, 5, 3)
    np.testing.assert_allclose(read["image"] / 255, images["train"]["image"], atol=0.5 / 255 + 1e-7)
    np.testing.assert_array_equal(read["label"], images["train"]["label"])


def test_triplet_set_round_trip(stored):
    data_dir, _, triplets = stored
    for split, expected in triplets.items():
        back = read_triplet_set("toy_triplets", data_dir, split)
        for field in ("indices", "similarities", "probabilities", "levels"):
            np.testing.assert_array_equal(getattr(back, field), getattr(expected, field))
        assert back.level_names == expected.level_names and back.n_items == 10
    record = tfds.data_source("toy_triplets", split="test", data_dir=str(data_dir), download=False)[
        2
    ]
    np.testing.assert_array_equal(record["indices"], triplets["test"].indices[2])
    assert record["level"] == triplets["test"].levels[2]


@pytest.mark.parametrize("name", ["toy_images", "toy_triplets"])
def test_read_rows_equals_tfds_decoding_record_by_record(stored, name):
    data_dir = stored[0]
    source = data_source(name, data_dir, "train")
    rows = np.array([5, 0, 5, 9, 3])  # any order, a repeat
    got = read_rows(source, rows)
    records = [source[int(i)] for i in rows]  # TFDS's own parser
    assert sorted(got) == sorted(records[0])
    for key, feature in source.dataset_info.features.items():
        expected = np.stack([np.asarray(r[key], feature.np_dtype) for r in records])
        assert got[key].dtype == expected.dtype
        np.testing.assert_array_equal(got[key], expected)
    assert all(value.shape[0] == 0 for value in read_rows(source, []).values())
    # Per record: image 6*5*3 uint8 + 2 int64 labels; indices 3 int64 + 2 x 3 float32 + int64.
    assert record_nbytes(source) == {"toy_images": 90 + 16, "toy_triplets": 24 + 24 + 8}[name]


def test_writing_prints_no_tfds_chatter_and_logs_it(tmp_path, capfd):
    write_triplet_set({"train": _triplets(5)}, name="quiet", data_dir=tmp_path)
    write_image_set({"train": _images(6, n=4)}, name="quiet_images", data_dir=tmp_path)
    out, err = capfd.readouterr()
    for chatter in ("Downloading", "Shuffling", "incomplete", "Generating", "prepared"):
        assert chatter not in out and chatter not in err
    log = (tmp_path / "quiet.log").read_text()
    assert "Downloading and preparing dataset" in log and "quiet" in log
    assert "Downloading and preparing" in (tmp_path / "quiet_images.log").read_text()


def test_no_tensorflow_was_imported(stored):
    assert "tensorflow" not in sys.modules


def test_same_input_gives_same_bytes_and_generators_equal_arrays(tmp_path):
    arrays = _images(4, n=10)

    def generate():
        for i in range(10):
            yield {key: value[i] for key, value in arrays.items()}

    paths = [
        write_image_set({"train": arrays}, name="same", data_dir=tmp_path / "a"),
        write_image_set({"train": arrays}, name="same", data_dir=tmp_path / "b"),
        write_image_set({"train": generate}, name="same", data_dir=tmp_path / "c"),
    ]
    contents = [{f.name: f.read_bytes() for f in sorted(p.iterdir())} for p in paths]
    assert any(name.startswith("same-train.array_record") for name in contents[0])
    assert contents[0] == contents[1] == contents[2]


def test_overwrite_and_missing_data(tmp_path):
    small = TripletSet(np.array([[0, 1, 2]]))
    write_triplet_set({"train": _triplets(5)}, name="again", data_dir=tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_triplet_set({"train": small}, name="again", data_dir=tmp_path)
    write_triplet_set({"train": small}, name="again", data_dir=tmp_path, overwrite=True)
    back = read_triplet_set("again", tmp_path, "train")
    np.testing.assert_array_equal(back.indices, small.indices)
    assert back.similarities is None and back.levels is None
    with pytest.raises(FileNotFoundError, match="No data set 'absent'"):
        data_source("absent", tmp_path, "train")
    with pytest.raises(ValueError, match=r"split must be one of \['train'\]"):
        data_source("again", tmp_path, "test")


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        (
            {"train": {"image": np.full((2, 4, 4, 1), 1.5, np.float32), "label": [0, 1]}},
            r"splits\['train'\] example 0: float images must lie in \[0, 1\]",
        ),
        (
            {"train": {"image": np.zeros((2, 4, 4, 1), np.uint8), "label": [0.5, 1.0]}},
            r"example 0: label 'label' must be one integer",
        ),
        (
            {"train": {"image": np.zeros((2, 4, 4, 1), np.uint8), "label": [0]}},
            r"\['label'\] has 1 rows",
        ),
        ({"train": {"label": [0]}}, "must be a dict of arrays with an 'image' key"),
        ({"train": {"image": np.zeros((2, 4, 4), np.uint8)}}, r"shape \[H, W, C\]"),
        ({}, "at least one split"),
    ],
)
def test_bad_image_sets_raise(tmp_path, splits, message):
    with pytest.raises(ValueError, match=message):
        write_image_set(splits, name="bad", data_dir=tmp_path)


def test_bad_triplet_sets_and_names_raise(tmp_path):
    with pytest.raises(ValueError, match="differ in having similarities"):
        write_triplet_set(
            {"a": _triplets(6), "b": TripletSet(np.array([[0, 1, 2]]))},
            name="bad",
            data_dir=tmp_path,
        )
    with pytest.raises(ValueError, match="must be a TripletSet"):
        write_triplet_set({"a": np.zeros((2, 3))}, name="bad", data_dir=tmp_path)
    with pytest.raises(ValueError, match="snake_case"):
        write_triplet_set({"a": _triplets(6)}, name="Bad-Name", data_dir=tmp_path)
