"""Image sources (alignjax.data.sources): folders, encoded TFDS/ArrayRecord, arrays."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from alignjax.data import sources, tfds_builders
from alignjax.data.triplet_set import TripletSet


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _image(seed: int, height=12, width=20) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for label, name in enumerate(["cat", "ant"]):  # sorted: ant (0), cat (1)
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_image(10 * label + i)).save(root / name / f"{i}.png")
    return root


def test_image_folder_orders_by_class_then_name_and_labels_by_sorted_class(folder):
    images, classes = sources.image_folder(folder, image_size=None)
    assert classes == ("ant", "cat")
    assert len(images) == 6
    np.testing.assert_array_equal(images.labels["class"], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(images[4]["image"], _image(1))  # cat/1.png
    assert images[4]["class"] == 1


def test_resize_keeps_the_aspect_ratio_and_crops_the_centre():
    # A 12x20 image whose left and right quarters are black: shrunk to 6x10 the shorter
    # side fits exactly; fitted to 6x6 the centre square is kept and the black is cut.
    array = np.full((12, 20, 3), 200, np.uint8)
    array[:, :4] = 0
    array[:, 16:] = 0
    fitted = sources.decode_image(_png(array), (6, 6), "x")
    assert fitted.shape == (6, 6, 3)
    assert fitted.min() > 150
    assert sources.decode_image(_png(array), (6, 10), "x").shape == (6, 10, 3)


def test_a_file_that_is_not_an_image_is_named(folder):
    bad = folder / "ant" / "3.png"
    bad.write_bytes(b"not a png")
    images, _ = sources.image_folder(folder, image_size=(8, 8))
    with pytest.raises(ValueError, match=f"{bad}: cannot decode the image"):
        images[3]


def test_folder_layout_errors(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        sources.image_folder(tmp_path / "missing", None)
    Image.fromarray(_image(0)).save(folder / "stray.png")
    with pytest.raises(ValueError, match="holds both image files and subfolders"):
        sources.image_folder(folder, None)
    flat = tmp_path / "flat"
    flat.mkdir()
    with pytest.raises(ValueError, match="no .png/.jpg/.jpeg images"):
        sources.image_folder(flat, None)
    Image.fromarray(_image(0)).save(flat / "b.png")
    Image.fromarray(_image(1)).save(flat / "a.png")
    images, classes = sources.image_folder(flat, (4, 4))
    assert classes is None and images.labels == {}
    assert images[0]["image"].shape == (4, 4, 3)


def _write_encoded(data_dir, as_image_feature: bool):
    splits = {"train": lambda: ({"image": _png(_image(i)), "label": i % 2} for i in range(4))}
    path = tfds_builders.write_image_set(splits, name="encoded", data_dir=data_dir)
    if as_image_feature:
        # What a data set written by TFDS with TensorFlow (tfds.features.Image) declares.
        features = path / "features.json"
        spec = json.loads(features.read_text())
        spec["featuresDict"]["features"]["image"] = {
            "pythonClassName": "tensorflow_datasets.core.features.image_feature.Image",
            "image": {
                "shape": {"dimensions": ["12", "20", "3"]},
                "dtype": "uint8",
                "encodingFormat": "png",
            },
        }
        features.write_text(json.dumps(spec))


@pytest.mark.parametrize("as_image_feature", [False, True])
def test_tfds_encoded_images_decode_with_pillow(tmp_path, as_image_feature):
    _write_encoded(tmp_path, as_image_feature)
    images, classes = sources.tfds_encoded_images("encoded", tmp_path, "train", image_size=None)
    assert len(images) == 4
    record = images[3]
    np.testing.assert_array_equal(record["image"], _image(3))
    assert int(record["label"]) == 1 and record["class"] == 1
    assert classes == ("0", "1")
    np.testing.assert_array_equal(images.labels["class"], [0, 1, 0, 1])
    resized, _ = sources.tfds_encoded_images("encoded", tmp_path, "train", (6, 6))
    assert resized[0]["image"].shape == (6, 6, 3)
    with pytest.raises(FileNotFoundError, match="TFDS data set 'nope'"):
        sources.tfds_encoded_images("nope", tmp_path, "train", None)


def test_tfds_encoded_images_without_labels(tmp_path):
    splits = {"train": lambda: ({"image": _png(_image(i))} for i in range(3))}
    tfds_builders.write_image_set(splits, name="unlabelled", data_dir=tmp_path)
    images, classes = sources.tfds_encoded_images("unlabelled", tmp_path, "train", None)
    assert classes is None and images.labels == {} and len(images) == 3


def test_image_rows_view_a_collection_and_give_the_image_order():
    images = sources.ArrayImages(
        {
            "image": np.arange(5, dtype=np.uint8)[:, None, None, None]
            * np.ones((1, 2, 2, 1), np.uint8)
        }
    )
    humans = sources.ImageRows(images, np.array([3, 0]))
    assert int(humans[0]["image"][0, 0, 0]) == 3 and len(humans) == 2
    source = sources.ImageSource(
        "five", {"pool": sources.ImageRows(images, np.arange(5)), "humans": humans}, images=images
    )
    np.testing.assert_array_equal(source.rows("humans"), [3, 0])
    with pytest.raises(ValueError, match="rows must lie in \\[0, 5\\)"):
        sources.ImageRows(images, np.array([5]))
    with pytest.raises(ValueError, match="split 'pool' must be ImageRows of the source's images"):
        sources.ImageSource("x", {"pool": images}, images=images)
    with pytest.raises(ValueError, match="share no image order"):
        sources.ImageSource("x", {"pool": images}).rows("pool")


def test_image_source_checks_labels_and_triplets_against_its_splits():
    images = sources.ArrayImages({"image": np.zeros((5, 4, 4, 3), np.uint8)})
    with pytest.raises(
        ValueError, match=r"labels\['pool'\]\['class'\] has 4 entries for the 5 images"
    ):
        sources.ImageSource("x", {"pool": images}, {"pool": {"class": np.arange(4)}})
    with pytest.raises(ValueError, match="index item 7, but split 'pool' holds 5 images"):
        sources.ImageSource(
            "x", {"pool": images}, triplets={"pool": {"test": TripletSet(np.array([[0, 1, 7]]))}}
        )
    with pytest.raises(ValueError, match="triplets over unknown split 'humans'"):
        sources.ImageSource("x", {"pool": images}, triplets={"humans": {}})
    with pytest.raises(ValueError, match=r"arrays\['image'\] must be uint8"):
        sources.ArrayImages({"image": np.zeros((5, 4, 4, 3), np.float32)})
