"""Image sources: where every chain reads its images, labels and human judgments.

An :class:`ImageSource` is a set of named image *splits* (e.g. ``"pool"``, ``"humans"``,
``"levels"``, ``"held_out"``), each a random-access collection of records
``{"image": uint8 [H, W, C], <label>: int64, ...}`` (the :class:`Images` protocol, which
Grain reads directly), with

- labels per split, held in memory (``"leaf"``, ``"basic"``, ``"class"``, ...);
- optionally a category tree whose leaf nodes the ``"leaf"`` labels are;
- optionally human odd-one-out triplets over the items of a split (THINGS format, odd
  one out last), e.g. ``triplets["humans"]["train"]``.

Images are read when they are used, never all at once: in memory (:class:`ArrayImages`,
e.g. a synthetic world's renderings), from a stored TFDS/ArrayRecord image set
(:func:`tfds_images`), or decoded with Pillow from encoded bytes (:class:`DecodedImages`:
image files of a folder, :func:`image_folder`, or PNG/JPEG bytes in a TFDS/ArrayRecord
data set, :func:`tfds_encoded_images`), resized and centre-cropped to the model's
resolution. A file that cannot be decoded is named in the error.

A split may be some rows of a larger collection (:class:`ImageRows`): the images a human
triplet file maps its items to, an evaluation sample. A source whose splits are all rows
of one collection has an *image order* (``ImageSource.images``), the order a features
file of its images follows, and :meth:`ImageSource.rows` gives each split's rows in it.

The sources of the library: AligNet's simulated setting over a synthetic world or
Fashion-MNIST (:func:`alignjax.data.simulated.simulated_source`) and a user's image
folder or TFDS data set with their human judgments
(:func:`alignjax.data.image_files.files_source`).

>>> images = ArrayImages({"image": np.zeros((4, 8, 8, 3), np.uint8), "class": np.arange(4)})
>>> source = ImageSource("four blank images", {"pool": images}, {"pool": {"class": np.arange(4)}})
>>> len(source.splits["pool"]), source.image_shape("pool")
(4, (8, 8, 3))
>>> source.read("pool", np.array([1, 3])).shape
(2, 8, 8, 3)
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from alignjax.data.hierarchy import Tree
from alignjax.data.triplet_set import TripletSet

IMAGE_KEY = "image"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LABEL_FEATURE = "label"
# Records read at once to collect a TFDS data set's labels (their image bytes included).
LABEL_CHUNK = 1024
Record = dict[str, Any]


@runtime_checkable
class Images(Protocol):
    """Random access to image records: ``records[i] -> {"image": uint8 [H, W, C], ...}``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Record: ...


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayImages:
    """Images held in memory: ``arrays["image"]`` uint8 ``[n, H, W, C]`` and labels ``[n]``."""

    arrays: Mapping[str, np.ndarray]

    def __post_init__(self):
        image = np.asarray(self.arrays.get(IMAGE_KEY))
        if image.ndim != 4 or image.dtype != np.uint8:
            raise ValueError(
                f"arrays['image'] must be uint8 [n, H, W, C]; got {image.dtype} {image.shape}"
            )
        for key, value in self.arrays.items():
            if len(value) != len(image):
                raise ValueError(f"arrays[{key!r}] has {len(value)} rows, the images {len(image)}")

    def __len__(self) -> int:
        return len(self.arrays[IMAGE_KEY])

    def __getitem__(self, index: int) -> Record:
        return {key: value[index] for key, value in self.arrays.items()}


def fit_image(image: Any, size: tuple[int, int] | None) -> np.ndarray:
    """A Pillow image as RGB uint8 ``[H, W, 3]``, resized and centre-cropped to ``size``.

    The shorter side is scaled to the target's (bicubic, antialiased when shrinking) and
    the longer one cropped to it in the centre, so the image is not distorted; ``None``
    keeps the size.
    """
    image = image.convert("RGB")
    if size is not None:
        height, width = size
        scale = max(height / image.height, width / image.width)
        resized = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
        image = image.resize(resized, resample=3)  # PIL.Image.Resampling.BICUBIC
        left, top = (resized[0] - width) // 2, (resized[1] - height) // 2
        image = image.crop((left, top, left + width, top + height))
    return np.asarray(image, dtype=np.uint8)


def decode_image(data: bytes, size: tuple[int, int] | None, name: str) -> np.ndarray:
    """PNG/JPEG ``data`` decoded with Pillow and fitted to ``size`` (:func:`fit_image`).

    Raises:
      ValueError: naming ``name`` (the file or record) when the bytes are not an image.
    """
    from PIL import Image, UnidentifiedImageError  # Pillow only for encoded images.

    try:
        with Image.open(io.BytesIO(data)) as opened:
            return fit_image(opened, size)
    except UnidentifiedImageError:
        # Pillow's own message names an in-memory buffer, not the file.
        raise ValueError(f"{name}: cannot decode the image (not a PNG or JPEG)") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{name}: cannot decode the image ({error})") from None


@dataclasses.dataclass(frozen=True, eq=False)
class DecodedImages:
    """Encoded images decoded with Pillow on access (in the Grain threads that read them).

    Attributes:
      records: random access to records whose ``"image"`` is PNG/JPEG bytes (e.g. a
        ``tfds.data_source`` split), or a sequence of image file paths.
      labels: ``{name: int [n]}`` attached to every record (file sources).
      image_size: ``(height, width)`` every image is resized and cropped to; ``None``
        keeps the stored size (all images must then share it).
      name: how errors name the collection (a directory, ``"dataset[split]"``).
    """

    records: Sequence[Any]
    labels: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    image_size: tuple[int, int] | None = None
    name: str = "images"

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Record:
        entry = self.records[index]
        if isinstance(entry, (str, os.PathLike)):
            path = pathlib.Path(entry)
            try:
                data = path.read_bytes()
            except OSError as error:
                raise ValueError(f"{path}: cannot read the image ({error.strerror})") from None
            record: Record = {IMAGE_KEY: decode_image(data, self.image_size, str(path))}
        else:
            record = {key: np.asarray(value) for key, value in entry.items() if key != IMAGE_KEY}
            record[IMAGE_KEY] = decode_image(
                entry[IMAGE_KEY], self.image_size, f"{self.name} record {index}"
            )
        for key, values in self.labels.items():
            record[key] = values[index]
        return record


@dataclasses.dataclass(frozen=True, eq=False)
class ImageRows:
    """Some rows of another image collection, as a collection of its own.

    >>> images = ArrayImages({"image": np.zeros((5, 2, 2, 1), np.uint8), "class": np.arange(5)})
    >>> view = ImageRows(images, np.array([4, 1]))
    >>> len(view), int(view[0]["class"])
    (2, 4)

    Attributes:
      images: the whole collection.
      rows: ``int64 [m]`` the records of ``images`` in this view, in its order.
    """

    images: Images
    rows: np.ndarray

    def __post_init__(self):
        rows = np.asarray(self.rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"rows must be integers [m]; got {rows.dtype} {rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.images)):
            raise ValueError(
                f"rows must lie in [0, {len(self.images)}); got [{rows.min()}, {rows.max()}]"
            )
        object.__setattr__(self, "rows", rows.astype(np.int64))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Record:
        return self.images[int(self.rows[index])]


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSource:
    """Images, their labels and human judgments, as every chain reads them.

    Attributes:
      description: one line for reports (what the images are).
      splits: split name -> :class:`Images`.
      labels: split name -> ``{label name: int64 [n]}`` of that split's images.
      tree: the category tree of the ``"leaf"`` labels, or ``None``.
      triplets: split name -> ``{set name: TripletSet}``: human triplets over that
        split's items (odd one out last).
      images: every image in the source's *image order*, of which every split is an
        :class:`ImageRows` view; ``None`` when the splits share no order (e.g. images
        rendered for each split).
    """

    description: str
    splits: Mapping[str, Images]
    labels: Mapping[str, Mapping[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    tree: Tree | None = None
    triplets: Mapping[str, Mapping[str, TripletSet]] = dataclasses.field(default_factory=dict)
    images: Images | None = None

    def __post_init__(self):
        if not self.splits:
            raise ValueError("an image source needs at least one split")
        if self.images is not None:
            for split, images in self.splits.items():
                if not (isinstance(images, ImageRows) and images.images is self.images):
                    raise ValueError(
                        f"split {split!r} must be ImageRows of the source's images, "
                        "which give the image order"
                    )
        for split, labels in self.labels.items():
            if split not in self.splits:
                raise ValueError(f"labels of unknown split {split!r}; splits: {list(self.splits)}")
            for name, values in labels.items():
                if len(values) != len(self.splits[split]):
                    raise ValueError(
                        f"labels[{split!r}][{name!r}] has {len(values)} entries for the "
                        f"{len(self.splits[split])} images of split {split!r}"
                    )
        for split, sets in self.triplets.items():
            if split not in self.splits:
                raise ValueError(
                    f"triplets over unknown split {split!r}; splits: {list(self.splits)}"
                )
            n = len(self.splits[split])
            for name, triplets in sets.items():
                high = int(triplets.indices.max(initial=-1))
                if high >= n:
                    raise ValueError(
                        f"triplets[{split!r}][{name!r}] index item {high}, but split {split!r} "
                        f"holds {n} images"
                    )

    def rows(self, split: str) -> np.ndarray:
        """The split's images as rows of the image order (``ImageSource.images``): ``int64 [n]``.

        Raises:
          ValueError: the source has no image order.
        """
        if self.images is None:
            raise ValueError(
                f"{self.description}: the splits share no image order to index a features file by"
            )
        return self.splits[split].rows

    def image_shape(self, split: str) -> tuple[int, ...]:
        """``(H, W, C)`` of the split's first image."""
        return tuple(np.shape(self.splits[split][0][IMAGE_KEY]))

    def read(self, split: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The images of ``rows`` (default all) of ``split``: uint8 ``[n, H, W, C]``."""
        images = self.splits[split]
        return read_images(images, np.arange(len(images)) if rows is None else rows)


def read_images(images: Images, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """The images of ``rows`` of a collection: uint8 ``[n, H, W, C]``."""
    return np.stack([images[int(i)][IMAGE_KEY] for i in rows])


def image_folder(
    path: str | os.PathLike[str], image_size: tuple[int, int] | None
) -> tuple[DecodedImages, tuple[str, ...] | None]:
    """The PNG/JPEG files of a folder, decoded when read, and their class names.

    Two layouts: one subfolder per class (``path/<class>/<file>``; the ``"class"`` label
    codes the sorted subfolder names), or the files directly in ``path`` (no labels).
    Files are ordered by class, then by name (:func:`sorted`), which is the order a
    features file of these images must follow.

    Returns:
      ``(images, class_names)``; ``class_names`` is ``None`` without subfolders.

    Raises:
      FileNotFoundError, ValueError: the folder is missing, holds no image, or mixes
        files and class subfolders.
    """
    root = pathlib.Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {os.fspath(root)!r}")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    folders = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if folders and files:
        raise ValueError(
            f"{root}: holds both image files and subfolders; use one subfolder per class, "
            "or files only"
        )
    if not folders:
        if not files:
            raise ValueError(f"{root}: no {'/'.join(IMAGE_SUFFIXES)} images")
        return DecodedImages(files, image_size=image_size, name=str(root)), None
    paths, labels = [], []
    for label, folder in enumerate(folders):
        members = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not members:
            raise ValueError(f"{folder}: class folder holds no {'/'.join(IMAGE_SUFFIXES)} images")
        paths.extend(members)
        labels.extend([label] * len(members))
    images = DecodedImages(
        paths, {"class": np.asarray(labels, np.int64)}, image_size=image_size, name=str(root)
    )
    return images, tuple(folder.name for folder in folders)


def tfds_encoded_images(
    name: str, data_dir: str | os.PathLike[str], split: str, image_size: tuple[int, int] | None
) -> tuple[DecodedImages, tuple[str, ...] | None]:
    """A TFDS/ArrayRecord split whose ``"image"`` feature holds PNG or JPEG bytes, and its
    class names.

    Reads with ``tfds.data_source`` (no TensorFlow) and skips TFDS's own image decoding
    (``tfds.decode.SkipDecoding``): the bytes are decoded with Pillow when read. Works
    for a ``tfds.features.Image`` feature and for a bytes ``tfds.features.Tensor``. The
    records keep their order (the image order). An integer ``"label"`` feature becomes
    the ``"class"`` label (read once, in chunks, without decoding an image); its class
    names are those of a ``tfds.features.ClassLabel``, else the codes as text.

    Returns:
      ``(images, class_names)``; ``class_names`` is ``None`` without a ``"label"``.
    """
    import tensorflow_datasets as tfds  # TFDS only for stored data sets.

    try:
        source = tfds.data_source(
            name,
            data_dir=os.fspath(data_dir),
            split=split,
            decoders={IMAGE_KEY: tfds.decode.SkipDecoding()},
        )
    except Exception as error:  # TFDS raises several types for a missing data set.
        raise FileNotFoundError(
            f"TFDS data set {name!r} (split {split!r}) not found in {os.fspath(data_dir)!r}: "
            f"{str(error).splitlines()[0]}"
        ) from None
    where = f"{name}[{split}]"
    features = source.dataset_info.features
    if LABEL_FEATURE not in features:
        return DecodedImages(source, image_size=image_size, name=where), None
    labels = np.empty(len(source), np.int64)
    for start in range(0, len(source), LABEL_CHUNK):
        rows = range(start, min(start + LABEL_CHUNK, len(source)))
        labels[start : rows.stop] = [int(r[LABEL_FEATURE]) for r in source.__getitems__(rows)]
    names = getattr(features[LABEL_FEATURE], "names", None)
    classes = tuple(names) if names else tuple(str(c) for c in range(int(labels.max()) + 1))
    if labels.min() < 0 or labels.max() >= len(classes):
        raise ValueError(
            f"{where}: record labels span [{labels.min()}, {labels.max()}], outside the "
            f"{len(classes)} classes"
        )
    return DecodedImages(source, {"class": labels}, image_size, where), classes


def tfds_images(name: str, data_dir: str | os.PathLike[str], split: str) -> Images:
    """A split of an image set stored by :mod:`alignjax.data.tfds_builders` (uint8
    tensors, read from its ArrayRecord files as they are used)."""
    from alignjax.data import tfds_builders

    return tfds_builders.data_source(name, data_dir, split)
