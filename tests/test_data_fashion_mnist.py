"""Fashion-MNIST reader (Debian package dataset-fashion-mnist) and the idx format."""

import gzip

import numpy as np
import pytest

from alignjax.data.fashion_mnist import (
    CLASS_NAMES,
    FASHION_MNIST_DIR,
    SUPERORDINATE_NAMES,
    SUPERORDINATE_OF_CLASS,
    load_fashion_mnist,
    read_idx,
)

ABSENT = "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason=ABSENT)
@pytest.mark.parametrize(("split", "n"), [("train", 60_000), ("test", 10_000)])
def test_fashion_mnist_shapes_and_label_counts(split, n):
    data = load_fashion_mnist(split)
    assert data["image"].shape == (n, 28, 28, 1) and data["image"].dtype == np.uint8
    # The published data set is balanced: n / 10 images per class.
    np.testing.assert_array_equal(np.bincount(data["label"], minlength=10), np.full(10, n // 10))
    np.testing.assert_array_equal(data["superordinate"], SUPERORDINATE_OF_CLASS[data["label"]])
    np.testing.assert_array_equal(
        np.bincount(data["superordinate"]), np.array([4, 2, 3, 1]) * n // 10
    )
    assert 0 < data["image"].mean() < 255 and data["image"].max() == 255


def test_hierarchy_is_documented_and_complete():
    assert len(CLASS_NAMES) == 10 and SUPERORDINATE_OF_CLASS.shape == (10,)
    assert set(SUPERORDINATE_OF_CLASS.tolist()) == set(range(len(SUPERORDINATE_NAMES)))
    footwear = [CLASS_NAMES[c] for c in np.flatnonzero(SUPERORDINATE_OF_CLASS == 2)]
    assert footwear == ["Sandal", "Sneaker", "Ankle boot"]


def _idx_bytes(array, type_code):
    header = bytes([0, 0, type_code, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_read_idx_hand_made_files(tmp_path):
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(_idx_bytes(images, 0x08))
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), images)
    values = np.array([-1, 7, 300], dtype=np.int32)
    with gzip.open(tmp_path / "b.gz", "wb") as f:
        f.write(_idx_bytes(values, 0x0C))
    out = read_idx(tmp_path / "b.gz")
    np.testing.assert_array_equal(out, values)
    assert out.dtype.isnative


def test_read_idx_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="bad: not an idx file"):
        read_idx(tmp_path / "bad")
    truncated = _idx_bytes(np.zeros((2, 2), np.uint8), 0x08)[:-1]
    (tmp_path / "short").write_bytes(truncated)
    with pytest.raises(
        ValueError, match=r"short: header shape \(2, 2\) needs 4 data bytes; the file has 3"
    ):
        read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError, match="idx file not found"):
        read_idx(tmp_path / "missing")


def test_absent_package_says_how_to_install(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"train-images-idx3-ubyte.gz.*apt-get install dataset-fashion-mnist",
    ):
        load_fashion_mnist("train", data_dir=tmp_path)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_fashion_mnist("validation")
