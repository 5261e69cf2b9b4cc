"""A user's images and judgments as an image source (alignjax.data.image_files): the image
order, the human triplets over mapped items, the evaluation sample, and bad input."""

import io

import numpy as np
import pytest
from PIL import Image

from alignjax.config import ConfigError
from alignjax.data import image_files, sources, tfds_builders
from alignjax.data.image_files import ImageFilesConfig
from alignjax.data.levels import LEVELS
from alignjax.data.sources import ImageRows

CLASSES = ("cat", "ant", "bee")  # sorted: ant, bee, cat
PER_CLASS = 8


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (10, 12, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            Image.fromarray(_image(100 * c + i)).save(root / name / f"{i:02d}.png")
    return root


def _write(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


def _triplets(tmp_path, n_items, n=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = [rng.choice(n_items, 3, replace=False) for _ in range(n)]
    return _write(tmp_path / "triplets.txt", [" ".join(map(str, r)) for r in rows])


def test_a_folder_source_is_rows_of_the_image_order(folder, tmp_path):
    # Items 0..3 are images named by path, in another order than the folder's.
    item_map = _write(tmp_path / "items.txt", ["cat/03.png", "ant/00.png", "17", "bee/07.png"])
    config = ImageFilesConfig(
        image_folder=str(folder),
        image_size=(8, 8),
        triplets=_triplets(tmp_path, 4, n=20),
        item_images=item_map,
        evaluation_images=12,
        levels_per_level=30,
    )
    source = image_files.files_source(config)
    n = len(CLASSES) * PER_CLASS
    assert len(source.images) == n and source.tree.names[1:] == ("ant", "bee", "cat")
    np.testing.assert_array_equal(source.rows("pool"), np.arange(n))
    np.testing.assert_array_equal(source.rows("humans"), [19, 0, 17, 15])
    # ant (0..7), bee (8..15), cat (16..23); files sorted within each class.
    expected = sources.decode_image((folder / "cat" / "03.png").read_bytes(), (8, 8), "cat")
    np.testing.assert_array_equal(source.splits["humans"][0]["image"], expected)
    np.testing.assert_array_equal(source.labels["pool"]["leaf"], np.repeat([1, 2, 3], PER_CLASS))
    humans = source.triplets["humans"]
    assert [len(humans[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    all_rows = np.concatenate([humans[s].indices for s in ("train", "validation", "test")])
    assert len({tuple(r) for r in all_rows.tolist()}) <= 20 and all_rows.max() < 4
    sample = source.rows("evaluation")
    assert len(sample) == 12 and np.all(np.diff(sample) > 0)
    assert source.splits["held_out"] is source.splits["evaluation"]
    levels = source.triplets["evaluation"]["levels"]
    assert len(levels) == 30 and set(levels.levels.tolist()) == {LEVELS.index("coarse")}
    leaves = source.labels["evaluation"]["leaf"][levels.indices]
    assert np.all(leaves[:, 0] == leaves[:, 1]) and np.all(leaves[:, 2] != leaves[:, 0])
    assert "24 images" in source.description and "20 human triplets over 4" in source.description


def test_without_a_map_the_items_are_the_images(folder, tmp_path):
    config = ImageFilesConfig(
        image_folder=str(folder), image_size=(8, 8), triplets=_triplets(tmp_path, 24)
    )
    source = image_files.files_source(config)
    np.testing.assert_array_equal(source.rows("humans"), np.arange(24))
    assert len(source.splits["evaluation"]) == 24  # fewer images than evaluation_images


def test_files_only_give_no_labels_and_no_levels(tmp_path):
    for i in range(5):
        Image.fromarray(_image(i)).save(tmp_path / f"{i}.jpg")
    source = image_files.files_source(ImageFilesConfig(image_folder=str(tmp_path)))
    assert source.tree is None and source.labels == {} and source.triplets == {}
    assert set(source.splits) == {"pool", "evaluation"}


def test_a_tfds_source_follows_the_record_order(tmp_path):
    def png(i):
        buffer = io.BytesIO()
        Image.fromarray(_image(i)).save(buffer, format="PNG")
        return buffer.getvalue()

    def examples():
        return ({"image": png(i), "label": i % 3} for i in range(9))

    tfds_builders.write_image_set({"train": examples}, name="mine", data_dir=tmp_path)
    item_map = _write(tmp_path / "items.txt", ["8", "2", "5"])
    config = ImageFilesConfig(
        tfds_name="mine",
        tfds_data_dir=str(tmp_path),
        image_size=(6, 6),
        triplets=_write(tmp_path / "t.txt", ["0 1 2", "2 1 0", "1 0 2", "0 2 1", "1 2 0"]),
        item_images=item_map,
        validation_fraction=0.2,
        test_fraction=0.2,
    )
    source = image_files.files_source(config)
    np.testing.assert_array_equal(source.rows("humans"), [8, 2, 5])
    np.testing.assert_array_equal(source.labels["pool"]["leaf"], np.arange(9) % 3 + 1)
    assert source.splits["pool"][4]["image"].shape == (6, 6, 3)
    assert isinstance(source.splits["humans"], ImageRows)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ["0 1 2", "0 1 7"],
            r"triplets.txt: row 1 \(line 2\) has an index that is not in \[0, 4\)",
        ),
        (["0 1"], r"triplets.txt: row 0 \(line 1\) has 2 columns"),
        (["0 1 1"], r"triplets.txt: row 0 \(line 1\) repeats an object"),
    ],
)
def test_bad_triplets_name_the_file_and_row(folder, tmp_path, lines, message):
    item_map = _write(tmp_path / "items.txt", ["0", "1", "2", "3"])
    config = ImageFilesConfig(
        image_folder=str(folder),
        triplets=_write(tmp_path / "triplets.txt", lines),
        item_images=item_map,
    )
    with pytest.raises(ValueError, match=message):
        image_files.files_source(config)


def test_a_bad_item_map_names_the_file_and_line(folder, tmp_path):
    item_map = _write(tmp_path / "items.txt", ["0", "dog/1.png", "2"])
    config = ImageFilesConfig(
        image_folder=str(folder), triplets=_triplets(tmp_path, 3), item_images=item_map
    )
    with pytest.raises(ValueError, match=r"items.txt: line 2 names 'dog/1.png', which is no"):
        image_files.files_source(config)
    _write(tmp_path / "items.txt", ["0", "99", "2"])
    with pytest.raises(ValueError, match=r"items.txt: line 2 names image 99, but there are 24"):
        image_files.files_source(config)


def test_too_few_triplets_for_three_sets(folder, tmp_path):
    config = ImageFilesConfig(
        image_folder=str(folder), triplets=_write(tmp_path / "t.txt", ["0 1 2", "3 4 5"])
    )
    with pytest.raises(ValueError, match="2 human triplets leave an empty train, validation"):
        image_files.files_source(config)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "give image_folder or tfds_name"),
        ({"image_folder": "a", "tfds_name": "b"}, "give image_folder or tfds_name"),
        ({"tfds_name": "b"}, "tfds_data_dir=None: a TFDS data set needs its directory"),
        ({"image_folder": "a", "item_images": "m.txt"}, "item_images='m.txt': maps the items"),
        (
            {"image_folder": "a", "validation_fraction": 0.5, "test_fraction": 0.5},
            "no training triplets are left",
        ),
        ({"image_folder": "a", "image_size": (0, 8)}, r"image_size=\(0, 8\): every value"),
    ],
)
def test_bad_configs_name_the_field(fields, message):
    with pytest.raises(ConfigError, match=message):
        ImageFilesConfig(**fields)
