"""Grain input pipelines: seeded, sharded, resumable streams of triplet batches.

Two kinds of stream, both ending in batches that are dicts of numpy arrays with a
leading batch axis (the trainer places them on devices, e.g. with
:func:`device_put_batch`):

- :func:`example_stream`: examples made on the fly by a function ``fn(rng) -> dict``
  of one example (an observer's ``sample_triplet``) or of ``k`` (a world's
  ``lambda rng: world.sample_triplets(rng, k)``), as
  ``MapDataset.range(n).seed(seed).random_map(lambda i, rng: fn(rng))``. Example ``i``
  depends only on ``(seed, epoch, i)``.
- :func:`triplet_stream`: stored triplets (a :class:`~alignjax.data.triplet_set.TripletSet`
  or a TFDS/ArrayRecord triplet source), each joined with its three items' features or
  images gathered from an items table (arrays, or a TFDS image-set source).

Order of operations, and why:

1. seed, then (stored triplets) a global shuffle, reshuffled every epoch;
2. per-process sharding ``ds[process_index::process_count]`` *after* the shuffle and the
   random map, so that processes see disjoint examples whose union is the stream a
   single process would see (the last ``n % process_count`` examples are dropped so every
   process yields the same number of batches);
3. ``repeat(num_epochs)``, then the per-example work in ``num_threads`` threads
   (``to_iter_dataset(ReadOptions)``; no worker processes, which a 2-core machine cannot
   afford), then batching with ``batch_size // process_count`` per process.

The stream's iterator checkpoints and resumes to the identical next batch, either with
``it.get_state()`` / ``it.set_state(state)`` or through Orbax with
``grain.checkpoint.CheckpointSave(it)`` / ``CheckpointRestore(it)``. The number of
threads changes speed, not content.

>>> def sample(rng):
...     return {"x": rng.normal(size=(3, 2)).astype(np.float32)}
>>> stream = example_stream(sample, num_examples=8, batch_size=4, seed=0,
...                         process_index=0, process_count=1)
>>> [batch["x"].shape for batch in stream]
[(4, 3, 2), (4, 3, 2)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np

from alignjax.data.triplet_set import TripletSet

Example = dict[str, np.ndarray]

# Keys of stored triplet records (TripletSet fields and TFDS triplet-set features).
_TRIPLET_KEYS = ("indices", "similarities", "probabilities", "level")


def example_stream(
    sample_fn: Callable[[np.random.Generator], Example],
    *,
    num_examples: int,
    batch_size: int,
    seed: int,
    num_epochs: int | None = 1,
    drop_remainder: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    num_threads: int = 2,
    prefetch_buffer_size: int | None = None,
    examples_per_call: int = 1,
) -> grain.IterDataset:
    """Batches of examples sampled on the fly by ``sample_fn``.

    Args:
      sample_fn: per-example function ``fn(rng: np.random.Generator) -> dict`` of numpy
        arrays, e.g. ``observer.sample_triplet`` (or of ``examples_per_call`` examples,
        e.g. ``lambda rng: world.sample_triplets(rng, k)``); it must draw all randomness
        from ``rng``.
      num_examples: examples per epoch (over all processes).
      batch_size: global batch size; each process yields ``batch_size // process_count``.
      seed: the stream's seed; the same seed gives the same bytes.
      num_epochs: passes over the ``num_examples`` indices (each epoch draws new
        examples); ``None`` repeats forever.
      drop_remainder: drop a last incomplete batch (keep ``True`` for training, where
        a jitted step wants one shape).
      process_index, process_count: this process's shard; default
        ``jax.process_index()`` and ``jax.process_count()``.
      num_threads: threads running ``sample_fn`` (0: in the consuming thread).
      prefetch_buffer_size: examples read ahead; default two local batches.
      examples_per_call: with ``k > 1``, ``sample_fn`` returns ``k`` examples at once
        (arrays with a leading ``[k]`` axis), for worlds whose vectorised samplers are
        much faster than ``k`` single calls. The stream is then made of chunks of
        ``k`` examples, chunk ``j`` depending only on ``(seed, epoch, j)``, so it is
        still the same whatever the number of threads or processes. ``num_examples``
        and ``batch_size / process_count`` must be multiples of ``k``.

    Returns:
      a ``grain.IterDataset``; ``iter()`` of it gives a checkpointable iterator.
    """
    _check_positive("num_examples", num_examples)
    _check_positive("examples_per_call", examples_per_call)
    k = examples_per_call
    if num_examples % k or batch_size % k:
        raise ValueError(
            f"num_examples ({num_examples}) and batch_size ({batch_size}) must be multiples of "
            f"examples_per_call={k}."
        )
    ds = (
        grain.MapDataset.range(num_examples // k)
        .seed(seed)
        .random_map(lambda _, rng: sample_fn(rng))
    )
    stream = _finish(
        ds,
        None,
        batch_size=batch_size // k,
        num_epochs=num_epochs,
        drop_remainder=drop_remainder,
        process_index=process_index,
        process_count=process_count,
        num_threads=num_threads,
        prefetch_buffer_size=prefetch_buffer_size
        if prefetch_buffer_size is None
        else -(-prefetch_buffer_size // k),
    )
    if k == 1:
        return stream
    return stream.map(_merge_chunks)


def triplet_stream(
    triplets: TripletSet | Sequence[Mapping[str, Any]],
    items: Mapping[str, np.ndarray] | Sequence[Mapping[str, Any]] | None = None,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_epochs: int | None = 1,
    drop_remainder: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    num_threads: int = 2,
    prefetch_buffer_size: int | None = None,
) -> grain.IterDataset:
    """Batches of stored triplets joined with their items' features or images.

    Each example holds the triplet's fields (``"indices"`` int64 ``[3]``, and
    ``"similarities"``, ``"probabilities"``, ``"level"`` where stored) and, for every
    field of ``items``, that field of its three items stacked as ``[3, ...]``. The image
    field ``"image"`` of a stored image set (uint8) is delivered as ``"images"`` float32
    ``[3, H, W, C]`` in ``[0, 1]``, the convention of the image worlds' triplets.

    Args:
      triplets: a ``TripletSet``, or a random-access source of triplet records such as
        ``tfds_builders.data_source(name, data_dir, split)`` of a triplet set.
      items: item table the indices point into: a dict of ``[n_items, ...]`` arrays
        (e.g. ``{"x": features}``), or a random-access source of item records (a TFDS
        image-set split); ``None`` streams the triplet fields only.
      batch_size: global batch size; each process yields ``batch_size // process_count``.
      seed: seed of the shuffle (reshuffled each epoch).
      shuffle: shuffle globally each epoch (``False`` keeps the stored order, for
        evaluation).
      num_epochs, drop_remainder, process_index, process_count, num_threads,
        prefetch_buffer_size: as in :func:`example_stream`.

    Returns:
      a ``grain.IterDataset``.
    """
    if isinstance(triplets, TripletSet):
        records = _Rows(
            {
                "indices": triplets.indices,
                "similarities": triplets.similarities,
                "probabilities": triplets.probabilities,
                "level": triplets.levels,
            }
        )
    else:
        records = triplets
    if len(records) == 0:
        raise ValueError("triplets is empty; a stream needs at least one triplet.")
    ds = grain.MapDataset.source(records).seed(seed)
    if shuffle:
        ds = ds.shuffle()
    return _finish(
        ds,
        _Gather(items),
        batch_size=batch_size,
        num_epochs=num_epochs,
        drop_remainder=drop_remainder,
        process_index=process_index,
        process_count=process_count,
        num_threads=num_threads,
        prefetch_buffer_size=prefetch_buffer_size,
    )


def device_put_batch(
    batch: Mapping[str, np.ndarray], sharding: jax.sharding.Sharding
) -> dict[str, jax.Array]:
    """Places a process-local host batch on devices as global arrays.

    Every process passes its own local batch; ``jax.make_array_from_process_local_data``
    assembles the global array (``process_count`` times the local batch along axis 0)
    sharded by ``sharding``, e.g. ``NamedSharding(mesh, P("data"))`` for the batch axis.

    Args:
      batch: dict of numpy arrays with a leading local batch axis.
      sharding: target sharding of every array.

    Returns:
      the same dict of ``jax.Array``; int64 arrays become int32 unless
      ``jax_enable_x64`` is set (JAX's rule; item indices fit).
    """
    return {
        key: jax.make_array_from_process_local_data(sharding, np.asarray(value))
        for key, value in batch.items()
    }


def _finish(
    ds: grain.MapDataset,
    transform: Callable[[Example], Example] | None,
    *,
    batch_size: int,
    num_epochs: int | None,
    drop_remainder: bool,
    process_index: int | None,
    process_count: int | None,
    num_threads: int,
    prefetch_buffer_size: int | None,
) -> grain.IterDataset:
    _check_positive("batch_size", batch_size)
    if num_epochs is not None:
        _check_positive("num_epochs", num_epochs)
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    _check_positive("process_count", process_count)
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in [0, {process_count}); got {process_index}.")
    if batch_size % process_count:
        raise ValueError(
            f"batch_size must be divisible by process_count={process_count}; got {batch_size}."
        )
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0; got {num_threads}.")
    even = len(ds) - len(ds) % process_count
    if even == 0:
        raise ValueError(
            f"the stream has {len(ds)} examples, fewer than process_count={process_count}."
        )
    ds = ds[process_index:even:process_count].repeat(num_epochs)
    if transform is not None:
        ds = ds.map(transform)
    local_batch = batch_size // process_count
    buffer = 2 * local_batch if prefetch_buffer_size is None else prefetch_buffer_size
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=buffer)
    return ds.to_iter_dataset(options).batch(local_batch, drop_remainder=drop_remainder)


class _Rows(Sequence):
    """Random access to the rows of a dict of equal-length arrays (``None`` skipped)."""

    def __init__(self, arrays: Mapping[str, np.ndarray | None]):
        self._arrays = {key: value for key, value in arrays.items() if value is not None}
        self._length = len(next(iter(self._arrays.values())))

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Example:
        return {key: value[index] for key, value in self._arrays.items()}


class _Gather:
    """Joins a triplet record with the ``[3, ...]`` features of its items."""

    def __init__(self, items: Mapping[str, np.ndarray] | Sequence[Mapping[str, Any]] | None):
        if isinstance(items, Mapping):
            items = {key: np.asarray(value) for key, value in items.items()}
            lengths = {key: len(value) for key, value in items.items()}
            if len(set(lengths.values())) != 1:
                raise ValueError(
                    f"items arrays must have one common number of rows; got {lengths}."
                )
            clash = set(items) & set(_TRIPLET_KEYS)
            if clash:
                raise ValueError(
                    f"items keys {sorted(clash)} clash with the triplet fields {_TRIPLET_KEYS}."
                )
        self._items = items
        self._n_items = (
            None
            if items is None
            else len(next(iter(items.values())) if isinstance(items, Mapping) else items)
        )

    def __call__(self, record: Mapping[str, Any]) -> Example:
        example = {key: np.asarray(value) for key, value in record.items()}
        if self._items is None:
            return example
        indices = example["indices"]
        if indices.min() < 0 or indices.max() >= self._n_items:
            raise ValueError(
                f"triplet {indices.tolist()} points outside the {self._n_items} items."
            )
        if isinstance(self._items, Mapping):
            gathered = {key: value[indices] for key, value in self._items.items()}
        else:
            read_many = getattr(self._items, "__getitems__", None)
            rows = (
                read_many(indices.tolist()) if read_many else [self._items[int(i)] for i in indices]
            )
            gathered = {key: np.stack([np.asarray(row[key]) for row in rows]) for key in rows[0]}
        for key, value in gathered.items():
            if key == "image":
                key, value = "images", _as_unit_float(value)
            example[key] = value
        return example


def _merge_chunks(batch: Example) -> Example:
    """``[b, k, ...]`` batches of chunks as ``[b * k, ...]`` batches of examples."""
    return {key: value.reshape(-1, *value.shape[2:]) for key, value in batch.items()}


def _as_unit_float(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    return images.astype(np.float32)


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
