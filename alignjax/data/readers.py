"""Readers for real data: THINGS-format triplets, feature matrices, item-to-image maps,
per-triplet levels, the THINGS category table (image folders are image sources:
:func:`alignjax.data.sources.image_folder`).

Each reader validates what it reads and raises a ``FileNotFoundError`` for a missing
path or a ``ValueError`` that names the file and the row (and, for text files, the line)
for everything else: wrong number of columns, entries that are not numbers, indices out
of range or repeated within a triplet, NaN features, empty files, unreadable images.

Formats:

- **Triplets** (THINGS convention, METHODS.md section 1): one triplet per row, three
  0-based object indices, the odd one out **last**. Whitespace- or comma-separated text
  (``#`` starts a comment line) or an integer ``.npy`` array ``[n, 3]``; e.g. the THINGS
  file ``triplets_things_test10_sample50k.txt`` (``i j k`` per line, indices into the
  1,854 THINGS concepts).
- **Features**: ``[n_items, d]`` float matrix as ``.npy`` or whitespace/comma-separated
  text (e.g. the SPoSE embeddings ``spose_embedding_49d_sorted.txt``).
- **Item-to-image maps** (:func:`read_item_images`): one line per item of a triplet
  file, naming the image it shows: a 0-based index into the image order, or the image's
  path relative to the image folder (``cat/0001.png``).
- **Levels** (:func:`read_levels`): one level name per triplet, one per line.
- **THINGS categories** (:func:`read_things_categories`): the THINGSplus table
  ``Categories_final_20200131.tsv``, one 0/1 column per category.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import numpy as np

from alignjax.data.triplet_set import TripletSet


def read_triplets(path: str | os.PathLike, n_items: int | None = None) -> TripletSet:
    """Reads a THINGS-format triplet file (odd one out last) into a ``TripletSet``.

    Args:
      path: ``.npy`` (integer ``[n, 3]``) or text file with three indices per row.
      n_items: number of objects; indices must lie in ``[0, n_items)`` when given.

    Returns:
      a :class:`~alignjax.data.triplet_set.TripletSet` with ``indices [n, 3]``.
    """
    path = _existing(path, "triplet file")
    if path.suffix == ".npy":
        indices = _load_npy(path)
        if indices.ndim != 2 or indices.shape[1] != 3:
            raise ValueError(f"{path}: triplets must have shape [n, 3]; got shape {indices.shape}.")
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(
                f"{path}: triplet indices must be integers; got dtype {indices.dtype}."
            )
        lines = None
    else:
        rows, lines = _read_text_rows(path)
        indices = np.empty((len(rows), 3), dtype=np.int64)
        for row, (line, fields) in enumerate(zip(lines, rows)):
            if len(fields) != 3:
                raise ValueError(
                    f"{path}: row {row} (line {line}) has {len(fields)} columns, expected 3: "
                    f"{' '.join(fields)!r}."
                )
            try:
                indices[row] = [int(field) for field in fields]
            except ValueError:
                raise ValueError(
                    f"{path}: row {row} (line {line}) holds a non-integer index: "
                    f"{' '.join(fields)!r}."
                ) from None
    if len(indices) == 0:
        raise ValueError(f"{path}: the file holds no triplets.")

    def where(row):
        return f"row {row}" if lines is None else f"row {row} (line {lines[row]})"

    high = np.inf if n_items is None else n_items
    bad = np.flatnonzero(np.any((indices < 0) | (indices >= high), axis=1))
    if bad.size:
        allowed = "non-negative" if n_items is None else f"in [0, {n_items})"
        raise ValueError(
            f"{path}: {where(bad[0])} has an index that is not {allowed}: "
            f"{indices[bad[0]].tolist()}."
        )
    repeated = (
        (indices[:, 0] == indices[:, 1])
        | (indices[:, 0] == indices[:, 2])
        | (indices[:, 1] == indices[:, 2])
    )
    if np.any(repeated):
        row = np.flatnonzero(repeated)[0]
        raise ValueError(f"{path}: {where(row)} repeats an object: {indices[row].tolist()}.")
    return TripletSet(indices, n_items=n_items)


def read_features(path: str | os.PathLike) -> np.ndarray:
    """Reads a feature matrix ``[n_items, d]`` from ``.npy`` or text.

    Returns:
      the matrix; text is parsed as float64, ``.npy`` keeps its floating dtype (integer
      arrays become float64).
    """
    path = _existing(path, "feature file")
    if path.suffix == ".npy":
        features = _load_npy(path)
        if features.ndim != 2:
            raise ValueError(
                f"{path}: features must have shape [n_items, d]; got shape {features.shape}."
            )
        if not (
            np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)
        ):
            raise ValueError(f"{path}: features must be numbers; got dtype {features.dtype}.")
        if not np.issubdtype(features.dtype, np.floating):
            features = features.astype(np.float64)
        lines = None
    else:
        rows, lines = _read_text_rows(path)
        width = len(rows[0]) if rows else 0
        features = np.empty((len(rows), width), dtype=np.float64)
        for row, (line, fields) in enumerate(zip(lines, rows)):
            if len(fields) != width:
                raise ValueError(
                    f"{path}: row {row} (line {line}) has {len(fields)} columns; row 0 has {width}."
                )
            try:
                features[row] = [float(field) for field in fields]
            except ValueError:
                raise ValueError(
                    f"{path}: row {row} (line {line}) holds a value that is not a number."
                ) from None
    if features.size == 0:
        raise ValueError(f"{path}: the file holds no features (shape {features.shape}).")
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if bad.size:
        where = f"row {bad[0]}" if lines is None else f"row {bad[0]} (line {lines[bad[0]]})"
        raise ValueError(f"{path}: {where} holds NaN or infinite features.")
    return features


def read_item_images(
    path: str | os.PathLike, image_names: Sequence[str], n_items: int | None = None
) -> np.ndarray:
    """Which image each item of a triplet file shows: ``int64 [n_items]`` image rows.

    Args:
      path: text file with one line per item: an image index (0-based, in the order of
        ``image_names``) or an image's name (its path relative to the image folder).
      image_names: the name of every image, in image order.
      n_items: the number of items the triplets index (checked when given).

    Raises:
      ValueError: naming the file and line of an unknown name, an index out of range,
        an image named twice, or a count that differs from ``n_items``.
    """
    path = _existing(path, "item-to-image map")
    rows, lines = _read_text_rows(path)
    position = {name: i for i, name in enumerate(image_names)}
    images = np.empty(len(rows), dtype=np.int64)
    first_line: dict[int, int] = {}
    for item, (line, fields) in enumerate(zip(lines, rows)):
        entry = " ".join(fields)
        if entry.isdigit():
            images[item] = int(entry)
            if images[item] >= len(image_names):
                raise ValueError(
                    f"{path}: line {line} names image {entry}, but there are "
                    f"{len(image_names)} images (indices 0 to {len(image_names) - 1})."
                )
        elif entry in position:
            images[item] = position[entry]
        else:
            raise ValueError(
                f"{path}: line {line} names {entry!r}, which is no image index and no image "
                f"file (e.g. {image_names[0]!r})."
            )
        if images[item] in first_line:
            raise ValueError(
                f"{path}: line {line} names the image of line {first_line[images[item]]} "
                f"again ({entry!r}); each item must be its own image."
            )
        first_line[int(images[item])] = line
    if n_items is not None and len(images) != n_items:
        raise ValueError(
            f"{path}: {len(images)} items, but the triplets index {n_items}; one line per "
            "item (0 to the largest triplet index) is needed."
        )
    return images


def read_levels(path: str | os.PathLike, n_triplets: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per-triplet level names (one per line) as codes ``int64 [n]`` and the sorted names."""
    path = _existing(path, "levels file")
    rows, lines = _read_text_rows(path)
    names = [" ".join(fields) for fields in rows]
    if len(names) != n_triplets:
        raise ValueError(
            f"{path}: {len(names)} level names for {n_triplets} triplets; need one per triplet."
        )
    level_names = tuple(sorted(set(names)))
    return np.array([level_names.index(name) for name in names], dtype=np.int64), level_names


def read_things_categories(
    path: str | os.PathLike, n_items: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The THINGSplus category table: membership ``bool [n_items, n_categories]`` and names.

    ``Categories_final_20200131.tsv``: a header (``Word``, a definition, one column per
    category) and one row of 0/1 memberships (blank for 0) per concept in THINGS
    order; a last row of column totals without a word is skipped.
    """
    path = _existing(path, "THINGS category file")
    rows = [
        line.rstrip("\r").split("\t")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    # The released table ends with a row of column totals and no word: not a concept.
    header, body = rows[0], [row for row in rows[1:] if row[0].strip()]
    if len(body) != n_items:
        raise ValueError(
            f"{path}: {len(body)} concept rows, expected {n_items} (one per feature row)."
        )
    names = tuple(header[2:])
    membership = np.zeros((n_items, len(names)), dtype=bool)
    for row, fields in enumerate(body):
        values = fields[2 : 2 + len(names)]
        if len(values) != len(names) or any(v.strip() not in ("0", "1", "") for v in values):
            raise ValueError(
                f"{path}: row {row + 1} must hold {len(names)} 0/1 category columns; "
                f"got {values[:5]}..."
            )
        membership[row] = [v.strip() == "1" for v in values]
    return membership, names


def _existing(path: str | os.PathLike, what: str) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {os.fspath(path)!r}.")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; expected a {what}.")
    return path


_NPY_MAGIC = b"\x93NUMPY"


def _load_npy(path: pathlib.Path) -> np.ndarray:
    with open(path, "rb") as file:
        magic = file.read(len(_NPY_MAGIC))
    if magic != _NPY_MAGIC:
        raise ValueError(
            f"{path}: not a .npy file (it does not start with the .npy header); write it "
            "with numpy.save, or give a text file without the .npy suffix."
        )
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error}).") from None
    if array.dtype.hasobject:
        raise ValueError(f"{path}: holds Python objects, not numbers (dtype {array.dtype}).")
    return array


def _read_text_rows(path: pathlib.Path) -> tuple[list[list[str]], list[int]]:
    """Fields of the data rows and their 1-based line numbers; blank and ``#`` lines skipped."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: line {line} is not UTF-8 text; expected a text file with one row per "
            "line (or a .npy array)."
        ) from None
    rows, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            rows.append(stripped.replace(",", " ").split())
            lines.append(number)
    if not rows:
        raise ValueError(f"{path}: the file is empty (no data rows).")
    return rows, lines
