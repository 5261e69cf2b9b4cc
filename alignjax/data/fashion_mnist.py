"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist``, with a class hierarchy.

The package installs the original gzipped idx files in
``/usr/share/datasets/fashion-mnist/`` (``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``;
60,000 training and 10,000 test images of 28 x 28 grey levels, 10 classes). Nothing is
downloaded; where the package is absent the reader raises ``FileNotFoundError`` saying
how to install it (``apt-get install dataset-fashion-mnist``).

Two abstraction levels, for triplets at a coarse and a fine level (as in AligNet's
evaluation across abstraction levels). The superordinate categories are our choice,
grouping by the body part an item is worn on:

- 0 upper-body clothing: 0 T-shirt/top, 2 Pullover, 4 Coat, 6 Shirt;
- 1 lower- and whole-body clothing: 1 Trouser, 3 Dress;
- 2 footwear: 5 Sandal, 7 Sneaker, 9 Ankle boot;
- 3 accessories: 8 Bag.

References:
  Xiao, Rasul and Vollgraf (2017), "Fashion-MNIST: a Novel Image Dataset for
  Benchmarking Machine Learning Algorithms", arXiv:1708.07747.
"""

from __future__ import annotations

import gzip
import os
import pathlib

import numpy as np

FASHION_MNIST_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SUPERORDINATE_NAMES = (
    "upper-body clothing",
    "lower- and whole-body clothing",
    "footwear",
    "accessories",
)
# SUPERORDINATE_OF_CLASS[c] is the superordinate category of class c (list above).
SUPERORDINATE_OF_CLASS = np.array([0, 1, 0, 1, 0, 2, 0, 2, 3, 2], dtype=np.int64)

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an idx file (the MNIST format), gzipped if the name ends in ``.gz``.

    Header: two zero bytes, a type code (``0x08`` = uint8, ...), the number of
    dimensions, then each dimension as a big-endian int32; the data follow in C order.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"idx file not found: {os.fspath(path)!r}.")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        data = file.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (header bytes {data[:4]!r}).")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header shape {shape} needs {expected} data bytes; "
            f"the file has {len(data) - offset}."
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=offset)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike = FASHION_MNIST_DIR
) -> dict[str, np.ndarray]:
    """Loads one split of Fashion-MNIST.

    Args:
      split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
      data_dir: directory of the idx files.

    Returns:
      ``{"image": uint8 [n, 28, 28, 1], "label": int64 [n], "superordinate": int64 [n]}``,
      the layout of an image set (``alignjax.data.tfds_builders.write_image_set``).
    """
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    data_dir = pathlib.Path(data_dir)
    prefix = _SPLIT_PREFIX[split]
    paths = [
        data_dir / f"{prefix}-images-idx3-ubyte.gz",
        data_dir / f"{prefix}-labels-idx1-ubyte.gz",
    ]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(
                f"Fashion-MNIST file not found: {os.fspath(path)!r}. Install the Debian package "
                "with `apt-get install dataset-fashion-mnist`, or pass data_dir= where the idx "
                "files are."
            )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{paths[0]} and {paths[1]}: shapes {images.shape} and {labels.shape} do not match."
        )
    labels = labels.astype(np.int64)
    return {
        "image": images[..., None],
        "label": labels,
        "superordinate": SUPERORDINATE_OF_CLASS[labels],
    }
