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
2. per-process sharding ``[process_index::process_count]`` *after* the shuffle and the
   random map, so that processes see disjoint examples whose union is the stream a
   single process would see (the last ``n % process_count`` examples are dropped so every
   process yields the same number of batches);
3. ``num_epochs`` passes, batched with ``batch_size // process_count`` per process
   (batches run on across epoch boundaries), the work done in ``num_threads`` threads
   (``to_iter_dataset(ReadOptions)``).

:func:`example_stream` does this per example with Grain's own operations
(``shuffle``-free: ``random_map``, slicing, ``repeat``, ``batch``). :func:`triplet_stream`
does it per *batch*, because Grain's per-example bookkeeping (about 20 us an example,
several times the cost of the reads themselves) would otherwise bound the stream: batch
``b`` is a range of positions, each epoch's order is one numpy permutation of the rows,
and the batch's rows are read and gathered at once, from tables held in memory when they
fit (:data:`IN_MEMORY_BYTES`) or with one batched read of their store. Optionally Grain
worker processes read the batches (``num_workers``).

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

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from alignjax.data.triplet_set import TripletSet

Example = dict[str, np.ndarray]

#: The largest table (triplet records, item records) :func:`triplet_stream` holds in
#: memory; a larger one is read from its store batch by batch.
IN_MEMORY_BYTES = 1 << 30
#: Records per read when a table is read into memory.
READ_CHUNK = 4096
_IMAGE_KEY = "image"
# Batches of an endless stream (Grain datasets have a length).
_ENDLESS = 2**62

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
    num_workers: int = 0,
    in_memory_bytes: int = IN_MEMORY_BYTES,
) -> grain.IterDataset:
    """Batches of stored triplets joined with their items' features or images.

    Each example holds the triplet's fields (``"indices"`` int64 ``[3]``, and
    ``"similarities"``, ``"probabilities"``, ``"level"`` where stored) and, for every
    field of ``items``, that field of its three items stacked as ``[3, ...]``. The image
    field ``"image"`` of an image collection is delivered as ``"images"`` ``[3, H, W, C]``
    in its stored dtype: uint8 images stay uint8 (a quarter of float32's bytes to move),
    and the consumer maps them to ``[0, 1]`` on the device with :func:`unit_interval`;
    other images become float32.

    The work is done a batch at a time: Grain hands out batch numbers, a batch number
    becomes the rows it holds (the order below), and those rows are read and gathered
    with array indexing, from

    - memory, for a table (the triplet records; the items) of at most ``in_memory_bytes``
      (default :data:`IN_MEMORY_BYTES`, 1 GiB): it is read once, when the stream is
      made, in chunks of :data:`READ_CHUNK` records (arrays and in-memory images are
      used as they are);
    - its store otherwise, with one batched read per batch of the distinct rows it
      needs (:func:`~alignjax.data.tfds_builders.read_rows` for a TFDS/ArrayRecord
      split; ``__getitems__``, or record by record, for other collections).

    Either way a batch holds the same values. The order: epoch ``e`` is the
    permutation ``np.random.default_rng((seed, e)).permutation(n)`` of the ``n`` triplets
    (the stored order without ``shuffle``), of which this process takes every
    ``process_count``-th from ``process_index`` (the last ``n % process_count`` rows of
    the permutation are left out); batches run on across epoch boundaries.

    Args:
      triplets: a ``TripletSet``, or a random-access source of triplet records such as
        ``tfds_builders.data_source(name, data_dir, split)`` of a triplet set.
      items: item table the indices point into: a dict of ``[n_items, ...]`` arrays
        (e.g. ``{"x": features}``), or a random-access collection of item records (a
        TFDS image-set split, an :class:`~alignjax.data.sources.Images`); ``None``
        streams the triplet fields only.
      batch_size: global batch size; each process yields ``batch_size // process_count``.
      seed: seed of the shuffle (reshuffled each epoch).
      shuffle: shuffle globally each epoch (``False`` keeps the stored order, for
        evaluation).
      num_epochs, drop_remainder, process_index, process_count: as in
        :func:`example_stream`.
      num_threads: threads reading batches (0: in the consuming thread).
      prefetch_buffer_size: examples read ahead; default two local batches.
      num_workers: with ``n > 0``, ``n`` Grain worker processes read the batches
        (``mp_prefetch``; worth it for a table read from its store with Python-heavy
        decoding, e.g. encoded images). The batches are the same.
      in_memory_bytes: the largest table held in memory.

    Returns:
      a ``grain.IterDataset`` of batches; ``iter()`` of it gives a checkpointable
      iterator.
    """
    if isinstance(triplets, TripletSet):
        records: Any = {
            "indices": triplets.indices,
            "similarities": triplets.similarities,
            "probabilities": triplets.probabilities,
            "level": triplets.levels,
        }
        records = {key: value for key, value in records.items() if value is not None}
    else:
        records = triplets
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0; got {num_workers}.")
    reader = _ReadBatch(_Table(records, in_memory_bytes), _items_table(items, in_memory_bytes))
    if len(reader.triplets) == 0:
        raise ValueError("triplets is empty; a stream needs at least one triplet.")
    process_index, process_count, _, local_batch = _check_shard(
        len(reader.triplets),
        batch_size=batch_size,
        num_epochs=num_epochs,
        process_index=process_index,
        process_count=process_count,
        num_threads=num_threads,
    )
    order = _Order(len(reader.triplets), seed, shuffle, process_index, process_count)
    batches = _Batches(
        order,
        reader,
        local_batch,
        None if num_epochs is None else num_epochs * order.per_epoch,
    )
    num_batches = batches.count(drop_remainder)
    ds = grain.MapDataset.range(num_batches).map(batches)
    buffer = 2 if prefetch_buffer_size is None else -(-prefetch_buffer_size // local_batch)
    stream = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=buffer)
    )
    if num_workers:
        from absl import flags  # Grain's own dependency

        # Grain 0.2 reads an Abseil flag when it starts workers, which fails in a program
        # that never parsed its flags (google/grain#1355); their defaults are meant.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        stream = stream.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return stream


def unit_interval(images: jax.Array) -> jax.Array:
    """Images as float32 in ``[0, 1]``: uint8 ``x`` as ``x / 255``, floats as they are.

    Meant for the device, inside a jitted step, so that uint8 batches cross to it.

    >>> [round(float(x), 6) for x in unit_interval(np.array([0, 51, 255], np.uint8))]
    [0.0, 0.2, 1.0]
    """
    if images.dtype == np.uint8:
        return jnp.asarray(images, jnp.float32) / jnp.float32(255)
    return jnp.asarray(images, jnp.float32)


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
    ds, local_batch = _shard(
        ds,
        batch_size=batch_size,
        num_epochs=num_epochs,
        process_index=process_index,
        process_count=process_count,
        num_threads=num_threads,
    )
    if transform is not None:
        ds = ds.map(transform)
    buffer = 2 * local_batch if prefetch_buffer_size is None else prefetch_buffer_size
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=buffer)
    return ds.to_iter_dataset(options).batch(local_batch, drop_remainder=drop_remainder)


def _shard(
    ds: grain.MapDataset,
    *,
    batch_size: int,
    num_epochs: int | None,
    process_index: int | None,
    process_count: int | None,
    num_threads: int,
) -> tuple[grain.MapDataset, int]:
    """This process's share of ``ds``, repeated, and its local batch size."""
    process_index, process_count, even, local_batch = _check_shard(
        len(ds),
        batch_size=batch_size,
        num_epochs=num_epochs,
        process_index=process_index,
        process_count=process_count,
        num_threads=num_threads,
    )
    return ds[process_index:even:process_count].repeat(num_epochs), local_batch


def _check_shard(
    n: int,
    *,
    batch_size: int,
    num_epochs: int | None,
    process_index: int | None,
    process_count: int | None,
    num_threads: int,
) -> tuple[int, int, int, int]:
    """``(process_index, process_count, examples kept per epoch, local batch size)``."""
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
    even = n - n % process_count
    if even == 0:
        raise ValueError(f"the stream has {n} examples, fewer than process_count={process_count}.")
    return process_index, process_count, even, batch_size // process_count


class _Order:
    """Which triplet row each position of this process's stream reads.

    Epoch ``e`` is the permutation ``perm_e = np.random.default_rng((seed, e))
    .permutation(n)`` (``arange(n)`` without shuffling), of which this process takes
    ``perm_e[process_index:even:process_count]`` (``even = n - n % process_count``);
    position ``p`` of the stream is row ``e = p // per_epoch``, ``q = p % per_epoch`` of
    that, so batches run on across epoch boundaries. An epoch's rows are made once (a
    millisecond for 65536 triplets) and kept while they are in use.
    """

    def __init__(self, n: int, seed: int, shuffle: bool, process_index: int, process_count: int):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.shard = slice(process_index, n - n % process_count, process_count)
        self.per_epoch = len(range(n)[self.shard])
        self._epochs: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # for Grain's worker processes
        return {key: value for key, value in vars(self).items() if key not in ("_lock", "_epochs")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state, _epochs={}, _lock=threading.Lock())

    def rows(self, positions: np.ndarray) -> np.ndarray:
        epochs, within = np.divmod(positions, self.per_epoch)
        rows = np.empty(len(positions), np.int64)
        for epoch in np.unique(epochs):
            at = epochs == epoch
            rows[at] = self.epoch(int(epoch))[within[at]]
        return rows

    def epoch(self, epoch: int) -> np.ndarray:
        """This process's rows of epoch ``epoch``, in order."""
        with self._lock:
            if epoch not in self._epochs:
                if len(self._epochs) >= 4:  # threads read at most a few epochs at once
                    del self._epochs[min(self._epochs)]
                rows = np.arange(self.n)
                if self.shuffle:
                    rows = np.random.default_rng((self.seed, epoch)).permutation(self.n)
                self._epochs[epoch] = rows[self.shard]
            return self._epochs[epoch]


class _Batches:
    """Batch ``b`` of this process's stream: positions ``[b * size, (b + 1) * size)``."""

    def __init__(self, order: _Order, reader: _ReadBatch, size: int, examples: int | None):
        self.order, self.reader, self.size, self.examples = order, reader, size, examples

    def count(self, drop_remainder: bool) -> int:
        if self.examples is None:
            return _ENDLESS
        return self.examples // self.size if drop_remainder else -(-self.examples // self.size)

    def __call__(self, index: int) -> Example:
        stop = (index + 1) * self.size
        if self.examples is not None:
            stop = min(stop, self.examples)
        return self.reader(self.order.rows(np.arange(index * self.size, stop)))


class _Table:
    """Rows of a table of records: held in memory, or read from their store per batch.

    ``records`` is a dict of equal-length arrays (used as it is) or a random-access
    collection of records (dicts of arrays), which is read into memory, in chunks of
    :data:`READ_CHUNK`, when its arrays take at most ``in_memory_bytes``.
    """

    def __init__(self, records: Mapping[str, np.ndarray] | Sequence[Any], in_memory_bytes: int):
        self.records = records
        self.arrays: dict[str, np.ndarray] | None = None
        if isinstance(records, Mapping):
            self.arrays = {key: np.asarray(value) for key, value in records.items()}
            lengths = {key: len(value) for key, value in self.arrays.items()}
            if len(set(lengths.values())) != 1:
                raise ValueError(
                    f"items arrays must have one common number of rows; got {lengths}."
                )
            self.length = next(iter(lengths.values()))
            return
        self.length = len(records)
        held = _arrays_in_memory(records)
        if held is not None:
            self.arrays = held
        elif self.length and self.length * _record_nbytes(records) <= in_memory_bytes:
            self.arrays = _read_all(records)

    def __len__(self) -> int:
        return self.length

    def read(self, rows: np.ndarray) -> Example:
        """The records of ``rows`` (any shape ``S``): ``{key: [*S, ...]}``."""
        if self.arrays is not None:
            return {key: value[rows] for key, value in self.arrays.items()}
        distinct, inverse = np.unique(rows, return_inverse=True)
        stacked = _read(self.records, distinct)
        return {
            key: value[inverse.reshape(-1)].reshape(*rows.shape, *value.shape[1:])
            for key, value in stacked.items()
        }


class _ReadBatch:
    """A batch of triplet rows as a batch of examples: triplet fields and their items'."""

    def __init__(self, triplets: _Table, items: _Table | None):
        self.triplets = triplets
        self.items = items

    def __call__(self, rows: np.ndarray) -> Example:
        batch = self.triplets.read(np.asarray(rows, np.int64))
        batch = {key: np.asarray(value) for key, value in batch.items()}
        if self.items is None:
            return batch
        indices = batch["indices"]
        n_items = len(self.items)
        if indices.size and (indices.min() < 0 or indices.max() >= n_items):
            bad = indices[((indices < 0) | (indices >= n_items)).any(axis=1)][0]
            raise ValueError(f"triplet {bad.tolist()} points outside the {n_items} items.")
        for key, value in self.items.read(indices).items():
            if key == _IMAGE_KEY:
                key = "images"
                value = value if value.dtype == np.uint8 else value.astype(np.float32)
            batch[key] = value
        return batch


def _items_table(
    items: Mapping[str, np.ndarray] | Sequence[Mapping[str, Any]] | None, in_memory_bytes: int
) -> _Table | None:
    if items is None:
        return None
    if isinstance(items, Mapping):
        clash = set(items) & set(_TRIPLET_KEYS)
        if clash:
            raise ValueError(
                f"items keys {sorted(clash)} clash with the triplet fields {_TRIPLET_KEYS}."
            )
    return _Table(items, in_memory_bytes)


def _arrays_in_memory(records: Sequence[Any]) -> dict[str, np.ndarray] | None:
    """The arrays of an in-memory image collection (rows of it), without reading records."""
    from alignjax.data.sources import ArrayImages, ImageRows

    if isinstance(records, ArrayImages):
        return {key: np.asarray(value) for key, value in records.arrays.items()}
    if isinstance(records, ImageRows):
        whole = _arrays_in_memory(records.images)
        if whole is not None:
            return {key: value[records.rows] for key, value in whole.items()}
    return None


def _is_tfds(records: Any) -> bool:
    return hasattr(records, "dataset_info") and hasattr(records, "data_source")


def _record_nbytes(records: Sequence[Any]) -> int:
    """Bytes of one record as arrays (of the first record unless the store says)."""
    if _is_tfds(records):
        from alignjax.data import tfds_builders

        nbytes = tfds_builders.record_nbytes(records)
        if nbytes is not None:
            return nbytes
    return sum(np.asarray(value).nbytes for value in records[0].values())


def _read(records: Sequence[Any], rows: np.ndarray) -> Example:
    """Records ``rows`` stacked as arrays ``[len(rows), ...]``, in one batched read."""
    if _is_tfds(records):
        from alignjax.data import tfds_builders

        return tfds_builders.read_rows(records, rows)
    read_many = getattr(records, "__getitems__", None)
    rows = [int(i) for i in rows]
    got = read_many(rows) if read_many else [records[i] for i in rows]
    return {key: np.stack([np.asarray(record[key]) for record in got]) for key in got[0]}


def _read_all(records: Sequence[Any]) -> dict[str, np.ndarray]:
    """Every record, read in chunks of :data:`READ_CHUNK` into preallocated arrays."""
    arrays: dict[str, np.ndarray] = {}
    for start in range(0, len(records), READ_CHUNK):
        chunk = _read(records, np.arange(start, min(start + READ_CHUNK, len(records))))
        for key, value in chunk.items():
            if key not in arrays:
                arrays[key] = np.empty((len(records), *value.shape[1:]), value.dtype)
            arrays[key][start : start + len(value)] = value
    return arrays


def _merge_chunks(batch: Example) -> Example:
    """``[b, k, ...]`` batches of chunks as ``[b * k, ...]`` batches of examples."""
    return {key: value.reshape(-1, *value.shape[2:]) for key, value in batch.items()}


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
