"""Triplet sets: the triplets of an odd-one-out experiment as validated arrays.

A triplet set holds ``indices [n, 3]`` (items of each triplet; stored human and teacher
triplets put the odd one out **last**), and optionally per-triplet pair similarities
``[s01, s02, s12]``, choice probabilities over the same three pairs, and an abstraction
level per triplet ("coarse", "fine", "boundary", ...). It is stored as ``.npz``
(:meth:`TripletSet.save_npz`) or as a TFDS/ArrayRecord data set
(``alignjax.data.tfds_builders``).

References:
  Muttenthaler et al. (2024), "Aligning Machine and Human Visual Representations across
  Abstraction Levels" (AligNet): pseudo-labels are the teacher's similarities
  ``[s01, s02, s12]``, "sorted so that the odd one out is last".
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from collections.abc import Sequence

import numpy as np

# For each chosen pair k (0: 01, 1: 02, 2: 12), the item order that puts the pair first
# and the odd one out last (the kept pair stays in its original order), and the matching
# order of the pair similarities: after reordering, pair j of the new triplet is pair
# ``PAIR_ORDER[k][j]`` of the old one.
_ITEM_ORDER = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])
_PAIR_ORDER = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1]])

_PROBABILITY_ATOL = 1e-4


def odd_last_order(pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Item and pair permutations that make pair ``pair`` the pair ``01``.

    Pair ``k`` being kept together means item ``2 - k`` is the odd one out; reordering the
    items by ``item_order`` puts it last, and reordering similarities or probabilities
    ``[s01, s02, s12]`` by ``pair_order`` keeps them attached to the same item pairs.

    Args:
      pair: ``[n]`` integers in ``{0, 1, 2}``: the pair kept together in each triplet.

    Returns:
      ``(item_order, pair_order)``, both ``[n, 3]`` integer arrays for
      ``np.take_along_axis(x, order, axis=1)``.

    >>> item_order, pair_order = odd_last_order(np.array([0, 1, 2]))
    >>> item_order
    array([[0, 1, 2],
           [0, 2, 1],
           [1, 2, 0]])
    >>> pair_order
    array([[0, 1, 2],
           [1, 0, 2],
           [2, 0, 1]])
    """
    pair = np.asarray(pair)
    if pair.ndim != 1 or (pair.size and (pair.min() < 0 or pair.max() > 2)):
        raise ValueError(f"pair must have shape [n] with values in {{0, 1, 2}}; got {pair!r}.")
    return _ITEM_ORDER[pair], _PAIR_ORDER[pair]


def sort_odd_last(similarities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permutations that put each triplet's most similar pair first (odd one out last).

    AligNet's convention for pseudo-labels: the teacher's similarities
    ``s = [s01, s02, s12]`` are reordered so that ``argmax_k s_k`` becomes pair ``01``.
    Ties keep the earliest pair (``np.argmax``), so an already sorted triplet is unchanged.

    Args:
      similarities: ``[n, 3]`` pair similarities ``[s01, s02, s12]``.

    Returns:
      ``(item_order, pair_order)`` as in :func:`odd_last_order`.

    >>> s = np.array([[0.1, 0.9, 0.3]])
    >>> item_order, pair_order = sort_odd_last(s)
    >>> np.take_along_axis(np.array([[7, 8, 9]]), item_order, axis=1)
    array([[7, 9, 8]])
    >>> np.take_along_axis(s, pair_order, axis=1)
    array([[0.9, 0.1, 0.3]])
    """
    similarities = np.asarray(similarities)
    if similarities.ndim != 2 or similarities.shape[1] != 3:
        raise ValueError(f"similarities must have shape [n, 3]; got shape {similarities.shape}.")
    return odd_last_order(np.argmax(similarities, axis=1))


@dataclasses.dataclass(frozen=True, eq=False)
class TripletSet:
    """Triplets with optional pair similarities, choice probabilities and levels.

    Attributes:
      indices: ``[n, 3]`` int64 item indices; three distinct items per row.
      similarities: optional ``[n, 3]`` float32 pair similarities ``[s01, s02, s12]``.
      probabilities: optional ``[n, 3]`` float32 probabilities that each pair is the most
        similar (rows sum to one).
      levels: optional ``[n]`` int64 codes into ``level_names``.
      level_names: names of the level codes, e.g. ``("coarse", "fine", "boundary")``;
        required when ``levels`` is given.
      n_items: number of items the indices point into, if known (checks the range).

    Every check raises a ``ValueError`` naming the field and the first bad row.

    >>> ts = TripletSet(np.array([[0, 1, 2], [2, 3, 0]]), n_items=4)
    >>> len(ts), ts.indices.dtype
    (2, dtype('int64'))
    >>> TripletSet(np.array([[0, 1, 1]]))
    Traceback (most recent call last):
    ...
    ValueError: indices row 0 repeats an item: [0 1 1].
    """

    indices: np.ndarray
    similarities: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    levels: np.ndarray | None = None
    level_names: tuple[str, ...] = ()
    n_items: int | None = None

    def __post_init__(self):
        indices = np.asarray(self.indices)
        if indices.ndim != 2 or indices.shape[1] != 3:
            raise ValueError(f"indices must have shape [n, 3]; got shape {indices.shape}.")
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be integers; got dtype {indices.dtype}.")
        indices = indices.astype(np.int64)
        if self.n_items is not None and (
            not isinstance(self.n_items, (int, np.integer)) or self.n_items < 3
        ):
            raise ValueError(f"n_items must be an integer >= 3; got {self.n_items!r}.")
        high = np.inf if self.n_items is None else self.n_items
        bad = np.flatnonzero(np.any((indices < 0) | (indices >= high), axis=1))
        if bad.size:
            allowed = "non-negative" if self.n_items is None else f"in [0, {self.n_items})"
            raise ValueError(
                f"indices row {bad[0]} has an index that is not {allowed}: {indices[bad[0]]}."
            )
        repeated = (
            (indices[:, 0] == indices[:, 1])
            | (indices[:, 0] == indices[:, 2])
            | (indices[:, 1] == indices[:, 2])
        )
        if np.any(repeated):
            row = np.flatnonzero(repeated)[0]
            raise ValueError(f"indices row {row} repeats an item: {indices[row]}.")
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "n_items", None if self.n_items is None else int(self.n_items))
        n = len(indices)
        for name in ("similarities", "probabilities"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _pair_values(name, value, n))
        if self.probabilities is not None:
            p = self.probabilities
            bad = np.flatnonzero(
                (p < 0).any(axis=1) | (np.abs(p.sum(axis=1) - 1) > _PROBABILITY_ATOL)
            )
            if bad.size:
                raise ValueError(
                    f"probabilities row {bad[0]} must be non-negative and sum to one; "
                    f"got {p[bad[0]]}."
                )
        object.__setattr__(self, "level_names", tuple(str(name) for name in self.level_names))
        if self.levels is not None:
            levels = np.asarray(self.levels)
            if levels.shape != (n,) or (
                levels.size and not np.issubdtype(levels.dtype, np.integer)
            ):
                raise ValueError(
                    f"levels must be integer codes of shape [{n}]; "
                    f"got {levels.dtype} {levels.shape}."
                )
            if not self.level_names:
                raise ValueError(
                    "level_names must name the level codes when levels are given; got ()."
                )
            bad = np.flatnonzero((levels < 0) | (levels >= len(self.level_names)))
            if bad.size:
                raise ValueError(
                    f"levels row {bad[0]} is {levels[bad[0]]}, not a code in "
                    f"[0, {len(self.level_names)})"
                    f" for level_names {self.level_names}."
                )
            object.__setattr__(self, "levels", levels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, index: np.ndarray | slice | Sequence[int]) -> TripletSet:
        """The triplets selected by ``index`` (integer indices, boolean mask or slice)."""

        def take(x):
            return None if x is None else x[index]

        return TripletSet(
            indices=self.indices[index],
            similarities=take(self.similarities),
            probabilities=take(self.probabilities),
            levels=take(self.levels),
            level_names=self.level_names,
            n_items=self.n_items,
        )

    def sorted_odd_last(self) -> TripletSet:
        """The same triplets reordered so that the most similar pair is ``01``.

        Sorts by ``similarities`` if present, otherwise by ``probabilities``.
        """
        key = self.similarities if self.similarities is not None else self.probabilities
        if key is None:
            raise ValueError(
                "sorted_odd_last needs similarities or probabilities; the set has neither."
            )
        item_order, pair_order = sort_odd_last(key)

        def reorder(x):
            return None if x is None else np.take_along_axis(x, pair_order, axis=1)

        return dataclasses.replace(
            self,
            indices=np.take_along_axis(self.indices, item_order, axis=1),
            similarities=reorder(self.similarities),
            probabilities=reorder(self.probabilities),
        )

    def save_npz(self, path: str | os.PathLike) -> None:
        """Writes the set to ``path`` as ``.npz``; the same set gives the same bytes.

        ``np.savez`` stamps the current time into the zip entries; this writer uses a
        fixed timestamp so that files of equal sets are byte-identical.
        """
        arrays = {"indices": self.indices, "level_names": np.array(self.level_names, dtype=np.str_)}
        arrays["n_items"] = np.array(-1 if self.n_items is None else self.n_items, dtype=np.int64)
        for name in ("similarities", "probabilities", "levels"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
                archive.writestr(
                    zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                    buffer.getvalue(),
                )

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> TripletSet:
        """Reads a set written by :meth:`save_npz`; errors name the file."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"Triplet set file not found: {os.fspath(path)!r}.")
        with np.load(path, allow_pickle=False) as data:
            if "indices" not in data.files:
                raise ValueError(
                    f"{os.fspath(path)}: not a triplet set (no 'indices' array; has {data.files})."
                )
            fields = {
                name: data[name]
                for name in ("similarities", "probabilities", "levels")
                if name in data.files
            }
            n_items = int(data["n_items"]) if "n_items" in data.files else -1
            level_names = tuple(data["level_names"].tolist()) if "level_names" in data.files else ()
            indices = data["indices"]
        try:
            return cls(
                indices, level_names=level_names, n_items=None if n_items < 0 else n_items, **fields
            )
        except ValueError as error:
            raise ValueError(f"{os.fspath(path)}: {error}") from error


def concatenate(sets: Sequence[TripletSet]) -> TripletSet:
    """Stacks triplet sets row-wise.

    All sets must carry the same optional fields and the same ``level_names``; the result
    keeps ``n_items`` if all sets agree on it, else the largest (indices stay valid).

    >>> a = TripletSet(np.array([[0, 1, 2]]), n_items=3)
    >>> b = TripletSet(np.array([[3, 1, 2]]), n_items=4)
    >>> c = concatenate([a, b])
    >>> c.indices.tolist(), c.n_items
    ([[0, 1, 2], [3, 1, 2]], 4)
    """
    if not sets:
        raise ValueError("sets must contain at least one TripletSet; got an empty sequence.")
    first = sets[0]
    fields = ("similarities", "probabilities", "levels")
    for i, other in enumerate(sets[1:], start=1):
        for name in fields:
            if (getattr(other, name) is None) != (getattr(first, name) is None):
                raise ValueError(
                    f"sets[{i}] {'lacks' if getattr(other, name) is None else 'has'} {name}, "
                    "unlike sets[0]."
                )
        if other.level_names != first.level_names:
            raise ValueError(
                f"sets[{i}] has level_names {other.level_names}, sets[0] has {first.level_names}."
            )
    n_items = [s.n_items for s in sets]
    stacked = {
        name: None
        if getattr(first, name) is None
        else np.concatenate([getattr(s, name) for s in sets])
        for name in fields
    }
    return TripletSet(
        indices=np.concatenate([s.indices for s in sets]),
        level_names=first.level_names,
        n_items=None if None in n_items else max(n_items),
        **stacked,
    )


def _pair_values(name: str, value, n: int) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != (n, 3):
        raise ValueError(f"{name} must have shape [{n}, 3] like indices; got shape {array.shape}.")
    if array.size and not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be numbers; got dtype {array.dtype}.")
    array = array.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise ValueError(f"{name} row {bad[0]} is not finite (NaN or inf): {array[bad[0]]}.")
    return array


def split_by_triplet(
    triplets: TripletSet,
    validation_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
) -> tuple[TripletSet, TripletSet, TripletSet | None]:
    """Splits ``triplets`` at random, triplet by triplet: ``(train, validation, test)``.

    One permutation of the rows from ``rng``: its first ``round(validation_fraction n)``
    rows are the validation set, the next ``round(test_fraction n)`` the test set
    (``None`` when that is 0), the rest the training set. The same triplet of items may
    fall into several sets when it was judged several times (as in THINGS).

    >>> t = TripletSet(np.array([[0, 1, 2]] * 10))
    >>> parts = split_by_triplet(t, 0.1, 0.2, np.random.default_rng(0))
    >>> [None if part is None else len(part) for part in parts]
    [7, 1, 2]
    """
    for name, fraction in (("validation", validation_fraction), ("test", test_fraction)):
        if not 0 <= fraction < 1:
            raise ValueError(f"{name}_fraction must lie in [0, 1); got {fraction}.")
    n = len(triplets)
    order = rng.permutation(n)
    n_validation, n_test = round(validation_fraction * n), round(test_fraction * n)
    validation = triplets.subset(order[:n_validation])
    test = triplets.subset(order[n_validation : n_validation + n_test]) if n_test else None
    return triplets.subset(order[n_validation + n_test :]), validation, test
