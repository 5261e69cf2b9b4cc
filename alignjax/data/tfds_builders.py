"""TFDS builders storing image sets and triplet sets as ArrayRecord, without TensorFlow.

Two builders, both ``tfds.core.GeneratorBasedBuilder`` subclasses writing
``file_format="array_record"`` with ``tfds.features.Tensor`` features only
(``tfds.features.Image`` would need TensorFlow):

- :class:`ImageSetBuilder`: items of an image world, ``"image"`` uint8 ``[H, W, C]`` (or
  encoded PNG/JPEG ``bytes``, read back by :func:`alignjax.data.sources.tfds_encoded_images`)
  plus one int64 label per abstraction level (any other key, e.g. ``"label"``,
  ``"superordinate"``).
- :class:`TripletSetBuilder`: a :class:`~alignjax.data.triplet_set.TripletSet` per split,
  ``"indices"`` int64 ``[3]``, optional ``"similarities"`` / ``"probabilities"`` float32
  ``[3]`` and ``"level"`` int64; level names and ``n_items`` go in the metadata.

Records keep the order in which they were given (``disable_shuffling``), so record ``i``
of an image set is item ``i`` that triplet indices point to. The same inputs give the same
bytes. Builders are not registered by class: they are named at construction, and the
written data set is read back by name and directory with ``tfds.data_source`` (TFDS reads
it from its files), which returns random-access sources for Grain:

>>> import tempfile
>>> from alignjax.data.triplet_set import TripletSet
>>> data_dir = tempfile.mkdtemp()
>>> _ = write_triplet_set({"train": TripletSet(np.array([[0, 1, 2], [3, 2, 1]]))},
...                       name="doc_triplets", data_dir=data_dir)
>>> read_triplet_set("doc_triplets", data_dir, "train").indices.tolist()
[[0, 1, 2], [3, 2, 1]]

:func:`read_rows` reads many records of such a source at once, as arrays (one batched
ArrayRecord read, parsed here three to four times faster than TFDS's record-by-record
decoding); the Grain pipelines read stored sets with it.

Writing prints nothing on the console: TFDS's "Downloading and preparing dataset ..."
banner and its ``Generating``/``Shuffling .../incomplete.XXXX`` progress bars go to the
log file ``<data_dir>/<name>.log``.

Importing this module imports ``tensorflow_datasets`` (about half a second);
``import alignjax.data`` defers it until a name from here is used.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds

from alignjax.data.triplet_set import TripletSet

IMAGE_KEY = "image"
VERSION = "1.0.0"

# An image-set split: arrays (``"image"`` ``[n, H, W, C]`` and labels ``[n]``), or a
# function returning an iterable of per-example dicts of the same keys (image ``[H, W, C]``).
ImageSplit = Mapping[str, np.ndarray] | Callable[[], Iterable[Mapping[str, np.ndarray]]]


class _NamedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder named at construction whose examples come from the caller."""

    VERSION = tfds.core.Version(VERSION)
    # TFDS looks for a download-checksums file beside a builder's code, and for a builder
    # inside a package that lookup imports `importlib_resources`, a backport TFDS only
    # requires on Python < 3.9. These builders download nothing: there is nothing to find.
    code_path = None

    def __init__(
        self,
        *,
        name: str,
        data_dir: str | os.PathLike,
        description: str,
        features,
        metadata,
        splits,
    ):
        if (
            not name
            or not name.replace("_", "").isalnum()
            or not name[0].isalpha()
            or name.lower() != name
        ):
            raise ValueError(
                "name must be snake_case letters, digits and '_', starting with a letter; "
                f"got {name!r}."
            )
        self.name = name
        self._description = description
        self._features = features
        self._metadata = metadata
        self._splits = splits
        super().__init__(data_dir=os.fspath(data_dir), file_format="array_record")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self._description,
            features=self._features,
            metadata=tfds.core.MetadataDict(self._metadata),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {
            split: self._generate_examples(examples) for split, examples in self._splits.items()
        }

    def _generate_examples(self, examples: Callable[[], Iterable[dict]]):
        yield from enumerate(examples())


class ImageSetBuilder(_NamedBuilder):
    """Stores the items of an image world: uint8 images and an int64 label per level.

    Args:
      name: snake_case data set name (``tfds.data_source(name, data_dir=...)`` reads it).
      splits: split name -> :data:`ImageSplit`. Float images must lie in ``[0, 1]``
        (stored as ``round(255 x)``); uint8 images are stored as they are; ``bytes`` (PNG or
        JPEG) are stored encoded. Every key other than ``"image"`` is a label level
        (integer per example). All splits share keys, image shape and label names; the
        first example fixes them.
      data_dir: directory in which ``name/1.0.0/`` is written.
      description: free text stored in ``dataset_info.json``.
    """

    def __init__(
        self,
        *,
        name: str,
        splits: Mapping[str, ImageSplit],
        data_dir: str | os.PathLike,
        description: str = "",
    ):
        if not splits:
            raise ValueError("splits must name at least one split; got none.")
        factories = {split: _example_factory(split, source) for split, source in splits.items()}
        first_split = next(iter(factories))
        first = next(iter(factories[first_split]()), None)
        if first is None:
            raise ValueError(f"splits[{first_split!r}] has no examples.")
        if IMAGE_KEY not in first:
            raise ValueError(
                f"image-set examples need an {IMAGE_KEY!r} key; got keys {sorted(first)}."
            )
        if isinstance(first[IMAGE_KEY], bytes):
            # Encoded (PNG/JPEG) images: a bytes tensor, decoded by the reader with Pillow
            # (alignjax.data.sources); tfds.features.Image would need TensorFlow to encode.
            spec = {IMAGE_KEY: tfds.features.Tensor(shape=(), dtype=np.object_)}
        else:
            shape = np.shape(first[IMAGE_KEY])
            if len(shape) != 3:
                raise ValueError(f"images must have shape [H, W, C] per example; got {shape}.")
            spec = {IMAGE_KEY: tfds.features.Tensor(shape=shape, dtype=np.uint8)}
        spec |= {
            key: tfds.features.Tensor(shape=(), dtype=np.int64)
            for key in sorted(first)
            if key != IMAGE_KEY
        }
        features = tfds.features.FeaturesDict(spec)
        checked = {
            split: _checked_images(split, factory, first) for split, factory in factories.items()
        }
        super().__init__(
            name=name,
            data_dir=data_dir,
            description=description,
            features=features,
            metadata={},
            splits=checked,
        )


class TripletSetBuilder(_NamedBuilder):
    """Stores triplet sets: indices, optional similarities, probabilities and level.

    Args:
      name: snake_case data set name.
      splits: split name -> :class:`~alignjax.data.triplet_set.TripletSet`; all splits
        carry the same optional fields and level names.
      data_dir: directory in which ``name/1.0.0/`` is written.
      description: free text stored in ``dataset_info.json``.
    """

    def __init__(
        self,
        *,
        name: str,
        splits: Mapping[str, TripletSet],
        data_dir: str | os.PathLike,
        description: str = "",
    ):
        if not splits:
            raise ValueError("splits must name at least one split; got none.")
        first = next(iter(splits.values()))
        for split, triplets in splits.items():
            if not isinstance(triplets, TripletSet):
                raise ValueError(
                    f"splits[{split!r}] must be a TripletSet; got {type(triplets).__name__}."
                )
            for field in ("similarities", "probabilities", "levels"):
                if (getattr(triplets, field) is None) != (getattr(first, field) is None):
                    raise ValueError(
                        f"splits[{split!r}] and the first split differ in having {field}."
                    )
            if triplets.level_names != first.level_names:
                raise ValueError(
                    f"splits[{split!r}] has level_names {triplets.level_names}, "
                    f"not {first.level_names}."
                )
        spec = {"indices": tfds.features.Tensor(shape=(3,), dtype=np.int64)}
        for field in ("similarities", "probabilities"):
            if getattr(first, field) is not None:
                spec[field] = tfds.features.Tensor(shape=(3,), dtype=np.float32)
        if first.levels is not None:
            spec["level"] = tfds.features.Tensor(shape=(), dtype=np.int64)
        n_items = [triplets.n_items for triplets in splits.values()]
        metadata = {
            "level_names": list(first.level_names),
            "n_items": None if None in n_items else max(n_items),
        }
        examples = {
            split: (lambda t=triplets: _triplet_examples(t)) for split, triplets in splits.items()
        }
        super().__init__(
            name=name,
            data_dir=data_dir,
            description=description,
            features=tfds.features.FeaturesDict(spec),
            metadata=metadata,
            splits=examples,
        )


def write_image_set(
    splits: Mapping[str, ImageSplit],
    *,
    name: str,
    data_dir: str | os.PathLike,
    description: str = "",
    overwrite: bool = False,
) -> pathlib.Path:
    """Writes an image set with :class:`ImageSetBuilder`; returns its directory.

    Raises ``FileExistsError`` if the data set is already there, unless ``overwrite``
    (TFDS would otherwise silently keep the old data).
    """
    return _prepare(
        ImageSetBuilder(name=name, splits=splits, data_dir=data_dir, description=description),
        overwrite,
    )


def write_triplet_set(
    splits: Mapping[str, TripletSet],
    *,
    name: str,
    data_dir: str | os.PathLike,
    description: str = "",
    overwrite: bool = False,
) -> pathlib.Path:
    """Writes triplet sets with :class:`TripletSetBuilder`; returns the directory."""
    return _prepare(
        TripletSetBuilder(name=name, splits=splits, data_dir=data_dir, description=description),
        overwrite,
    )


def data_source(name: str, data_dir: str | os.PathLike, split: str):
    """The random-access ArrayRecord source of one split, via ``tfds.data_source``.

    Records are dicts of numpy arrays (scalars as Python numbers); ``len`` and
    ``source[i]`` / ``source.__getitems__(indices)`` work, as Grain needs.
    """
    path = pathlib.Path(data_dir) / name / VERSION
    if not (path / "dataset_info.json").exists():
        raise FileNotFoundError(
            f"No data set {name!r} in {os.fspath(data_dir)!r} (expected {os.fspath(path)})."
        )
    sources = tfds.data_source(name, data_dir=os.fspath(data_dir), download=False)
    if split not in sources:
        raise ValueError(f"split must be one of {sorted(sources)} for {name!r}; got {split!r}.")
    return sources[split]


def read_rows(source, rows) -> dict[str, np.ndarray]:
    """Records ``rows`` of a split (:func:`data_source`) stacked as arrays ``[len(rows), ...]``.

    One batched ArrayRecord read of the serialized records. When every feature is a
    fixed-shape numeric ``tfds.features.Tensor`` stored as it is (the features this
    module writes, except encoded images), the ``tf.train.Example`` protos are parsed
    here, each feature's values of all records gathered into one array; TFDS's own
    decoding (``source.__getitems__``), which converts every feature of every record on
    its own, reads the rest. The result is the same either way.

    Args:
      source: a split of a stored data set, e.g. ``data_source(name, data_dir, split)``.
      rows: record indices ``int [m]`` (any order, repeats allowed).

    Returns:
      ``{feature: [m, *shape]}`` in the features' dtypes.
    """
    rows = [int(i) for i in np.asarray(rows).reshape(-1)]
    features = source.dataset_info.features
    specs = _plain_tensors(source)
    if specs is None:
        return _stack(source.__getitems__(rows) if rows else [], features)
    serialized = source.data_source.__getitems__(rows) if rows else []
    if len(serialized) != len(rows):
        raise IndexError(f"asked for {len(rows)} records of {source!r}, got {len(serialized)}")
    from tensorflow_datasets.proto import tf_example_pb2  # the format TFDS writes

    arrays = {key: np.empty((len(rows), *shape), dtype) for key, (shape, dtype) in specs.items()}
    flat = {
        key: array.reshape(len(rows), int(np.prod(array.shape[1:])))
        for key, array in arrays.items()
    }
    for i, record in enumerate(serialized):
        feature = tf_example_pb2.Example.FromString(record).features.feature
        for key, out in flat.items():
            value = feature[key]
            out[i] = getattr(value, value.WhichOneof("kind")).value
    return arrays


def record_nbytes(source) -> int | None:
    """Bytes of one record of ``source`` as arrays (``None``: not fixed-shape tensors)."""
    specs = _plain_tensors(source)
    if specs is None:
        return None
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in specs.values())


def read_image_set(name: str, data_dir: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
    """All records of an image-set split as arrays: ``"image"`` uint8 ``[n, H, W, C]``
    and an int64 ``[n]`` array per label level."""
    source = data_source(name, data_dir, split)
    return read_rows(source, range(len(source)))


def read_triplet_set(name: str, data_dir: str | os.PathLike, split: str) -> TripletSet:
    """A triplet-set split as a :class:`~alignjax.data.triplet_set.TripletSet`."""
    source = data_source(name, data_dir, split)
    info = source.dataset_info
    arrays = read_rows(source, range(len(source)))
    metadata = info.metadata or {}
    return TripletSet(
        indices=arrays["indices"],
        similarities=arrays.get("similarities"),
        probabilities=arrays.get("probabilities"),
        levels=arrays.get("level"),
        level_names=tuple(metadata.get("level_names", ())),
        n_items=metadata.get("n_items"),
    )


def _prepare(builder: _NamedBuilder, overwrite: bool) -> pathlib.Path:
    path = pathlib.Path(builder.data_dir)
    if path.exists():
        if not overwrite:
            raise FileExistsError(
                f"{os.fspath(path)} already holds {builder.name!r}; "
                "pass overwrite=True to replace it."
            )
        shutil.rmtree(path)
    # TFDS prints a "Downloading and preparing dataset Unknown size ..." banner to stdout
    # and Generating/Shuffling progress bars to stderr, although nothing is downloaded:
    # both go to a log file beside the data set, none to the console.
    log_path = path.parent.parent / f"{builder.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_path, "a", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        builder.download_and_prepare()
    return path


def _plain_tensors(source) -> dict[str, tuple[tuple[int, ...], np.dtype]] | None:
    """``{key: (shape, dtype)}`` when :func:`read_rows` may parse ``source``'s records."""
    from tensorflow_datasets.core import decode

    features = getattr(getattr(source, "dataset_info", None), "features", None)
    if (
        features is None
        or getattr(source, "decoders", None)
        or getattr(source, "deserialize_method", None)
        != decode.DeserializeMethod.DESERIALIZE_AND_DECODE
        or not hasattr(source, "data_source")
    ):
        return None
    specs = {}
    for key, feature in features.items():
        stored = feature.get_serialized_info()
        if (
            type(feature) is not tfds.features.Tensor
            or not isinstance(stored, tfds.features.TensorInfo)
            or stored.shape != feature.shape
            or None in feature.shape
            or not np.issubdtype(np.dtype(feature.np_dtype), np.number)
        ):
            return None
        specs[key] = (tuple(feature.shape), np.dtype(feature.np_dtype))
    return specs


def _example_factory(
    split: str, source: ImageSplit
) -> Callable[[], Iterable[Mapping[str, np.ndarray]]]:
    if callable(source):
        return source
    if not isinstance(source, Mapping) or IMAGE_KEY not in source:
        raise ValueError(
            f"splits[{split!r}] must be a dict of arrays with an {IMAGE_KEY!r} key or a "
            f"function returning examples; got {type(source).__name__}."
        )
    arrays = {key: np.asarray(value) for key, value in source.items()}
    n = len(arrays[IMAGE_KEY])
    for key, value in arrays.items():
        if len(value) != n:
            raise ValueError(
                f"splits[{split!r}][{key!r}] has {len(value)} rows; {IMAGE_KEY!r} has {n}."
            )
    return lambda: ({key: value[i] for key, value in arrays.items()} for i in range(n))


def _checked_images(
    split: str, factory, first: Mapping[str, np.ndarray]
) -> Callable[[], Iterator[dict]]:
    keys = sorted(first)
    encoded = isinstance(first[IMAGE_KEY], bytes)
    shape = None if encoded else np.shape(first[IMAGE_KEY])

    def image(where, value):
        if not encoded:
            return _as_uint8(where, value, shape)
        if not isinstance(value, bytes):
            raise ValueError(f"{where}: image must be encoded bytes like the first example's.")
        return value

    def examples():
        for i, example in enumerate(factory()):
            where = f"splits[{split!r}] example {i}"
            if sorted(example) != keys:
                raise ValueError(
                    f"{where} has keys {sorted(example)}; the first example has {keys}."
                )
            yield {
                key: (
                    image(where, example[key])
                    if key == IMAGE_KEY
                    else _as_label(where, key, example[key])
                )
                for key in keys
            }

    return examples


def _as_uint8(where: str, image, shape) -> np.ndarray:
    image = np.asarray(image)
    if image.shape != shape:
        raise ValueError(
            f"{where}: image shape {image.shape} differs from the first example's {shape}."
        )
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"{where}: images must be uint8 or float in [0, 1]; got dtype {image.dtype}."
        )
    if not (np.all(np.isfinite(image)) and image.min() >= 0 and image.max() <= 1):
        raise ValueError(
            f"{where}: float images must lie in [0, 1]; "
            f"got values in [{image.min()}, {image.max()}]."
        )
    return np.round(image * 255).astype(np.uint8)


def _as_label(where: str, key: str, label) -> np.int64:
    label = np.asarray(label)
    if label.shape != () or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(
            f"{where}: label {key!r} must be one integer; got {label.dtype} {label.shape}."
        )
    return np.int64(label)


def _triplet_examples(triplets: TripletSet) -> Iterator[dict]:
    for i in range(len(triplets)):
        example = {"indices": triplets.indices[i]}
        for field in ("similarities", "probabilities"):
            if getattr(triplets, field) is not None:
                example[field] = getattr(triplets, field)[i]
        if triplets.levels is not None:
            example["level"] = triplets.levels[i]
        yield example


def _stack(records: list[dict], features) -> dict[str, np.ndarray]:
    arrays = {}
    for key, feature in features.items():
        empty = np.zeros((0, *feature.shape), dtype=feature.np_dtype)
        arrays[key] = (
            np.stack([np.asarray(r[key], dtype=feature.np_dtype) for r in records])
            if records
            else empty
        )
    return arrays
