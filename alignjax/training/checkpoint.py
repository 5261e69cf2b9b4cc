"""Orbax checkpoints of a training run, and pretrained students from them.

One checkpoint is the directory ``<directory>/<step>/`` with the items

- ``params``: the model's ``nnx.Param`` arrays (what `load_pretrained` reads),
- ``state``: the step counter, the model's other variables and the optimizer state,
- ``data``: the position of a Grain iterator (one JSON file per process),
- ``config``: the run's `TrainConfig` as JSON, for the record,
- ``digest``: a SHA-256 of every array of ``params`` and ``state`` (JSON).

Arrays are written asynchronously: `Checkpointer.save` returns once they are copied
off the devices, and the training continues while Orbax writes them. Orbax
publishes a checkpoint by renaming it once complete, so a crash mid-write leaves no
half checkpoint behind. Damage after the fact is caught at restore time, which then
warns and falls back to the previous checkpoint: damaged metadata or a truncated
file makes Orbax fail, and damaged array data fails the comparison with the digest
(Orbax's OCDBT store checksums only its b-tree nodes, so a flipped byte in a chunk
of a large array reads back as a wrong value without complaint).
Checkpoints written before the digest existed restore unverified. Restoring places
every array by the shardings of the *target*, so a run saved on one mesh resumes on
another (8 devices to 2x4, or to 1).
"""

from __future__ import annotations

import collections
import hashlib
import pathlib
import re
import warnings
from collections.abc import Mapping
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils

from alignjax.training.train_state import TrainState

CORRUPT_SUFFIX = ".corrupt"
DIGEST_ITEM = "digest"


class CheckpointIntegrityError(ValueError):
    """A restored array differs from the one saved (its digest does not match)."""


def is_checkpointable_iterator(iterator: Any) -> bool:
    """Whether Grain's Orbax handler can save the position of ``iterator``."""
    return isinstance(iterator, (grain.DatasetIterator, grain.DataLoaderIterator))


class Checkpointer:
    """Saves and restores `TrainState`, data position and config with Orbax.

    Args:
        directory: where step directories go (created unless ``read_only``).
        max_to_keep: number of most recent checkpoints kept; older ones are
            deleted.
        read_only: open existing checkpoints without writing or deleting.
    """

    def __init__(
        self,
        directory: str | pathlib.Path,
        *,
        max_to_keep: int = 3,
        read_only: bool = False,
    ):
        directory = pathlib.Path(directory).absolute()
        self._read_only = read_only
        if read_only and not directory.is_dir():
            raise FileNotFoundError(f"checkpoint directory {directory} does not exist.")
        handlers = {
            "params": ocp.StandardCheckpointHandler(),
            "state": ocp.StandardCheckpointHandler(),
            "data": grain.checkpoint.CheckpointHandler(),
            "config": ocp.JsonCheckpointHandler(),
            DIGEST_ITEM: ocp.JsonCheckpointHandler(),
        }
        self._manager = ocp.CheckpointManager(
            directory,
            item_handlers=handlers,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=not read_only, read_only=read_only
            ),
        )

    @property
    def directory(self) -> pathlib.Path:
        return pathlib.Path(self._manager.directory)

    def all_steps(self) -> list[int]:
        """Steps of the finished checkpoints, ascending."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(
        self,
        state: TrainState,
        *,
        data_iterator: Any = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Starts writing a checkpoint of ``state`` at step ``int(state.step)``.

        The digest of the arrays is computed here, before returning: it costs a
        copy of the state to the host (on CPU: none) and SHA-256 over its bytes.
        In a multi-process run every process must call it (the arrays that span
        processes are gathered).

        Args:
            state: the train state; its arrays may be donated to the next train
                step as soon as this returns.
            data_iterator: a Grain iterator whose position to save, or ``None``.
            config: JSON-serialisable configuration to store alongside.
        """
        step = int(state.step)
        items = {
            "params": ocp.args.StandardSave(state.params),
            "state": ocp.args.StandardSave(_state_item(state)),
            DIGEST_ITEM: ocp.args.JsonSave(
                array_digests({"params": state.params, "state": _state_item(state)})
            ),
        }
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        if config is not None:
            items["config"] = ocp.args.JsonSave(dict(config))
        self._manager.save(step, args=ocp.args.Composite(**items), force=True)

    def restore(
        self,
        target: TrainState,
        *,
        data_iterator: Any = None,
        step: int | None = None,
    ) -> TrainState:
        """Restores the latest readable checkpoint (or ``step``) onto ``target``.

        A checkpoint that cannot be read or fails its digest check is renamed
        ``<step>.corrupt`` with a warning, and the next older one is tried.

        Args:
            target: a `TrainState` of arrays or ``jax.ShapeDtypeStruct`` whose
                shapes, dtypes and shardings the restored arrays take.
            data_iterator: a Grain iterator to move to the saved position.
            step: a specific step; then no fallback happens.

        Returns:
            The restored state (its ``step`` is the checkpoint's step).

        Raises:
            FileNotFoundError: if there is no (readable) checkpoint.
            ValueError: if the checkpoint holds parameters of other shapes than
                ``target`` (a different model, not a damaged file), or if the
                checkpoint of ``step`` is damaged.
        """
        self.wait_until_finished()
        target = _as_abstract(target)

        def restore_step(s: int) -> TrainState:
            items = {
                "params": ocp.args.StandardRestore(target.params),
                "state": ocp.args.StandardRestore(_state_item(target)),
            }
            saved_processes = self.data_process_count(s)
            if data_iterator is not None and saved_processes == jax.process_count():
                items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
            elif data_iterator is not None and saved_processes is None:
                warnings.warn(
                    f"checkpoint {self.directory / str(s)} has no data position; the "
                    "data continues from the iterator's current position.",
                    stacklevel=4,
                )
            digest = self._digest_args(s)
            restored = self._manager.restore(s, args=ocp.args.Composite(**items, **digest))
            if digest:
                verify_digests(
                    restored[DIGEST_ITEM], {"params": restored.params, "state": restored.state}
                )
            return TrainState(
                step=restored.state["step"],
                params=restored.params,
                model_state=restored.state["model_state"],
                opt_state=restored.state["opt_state"],
            )

        return self._restore_with_fallback(restore_step, target.params, step)

    def restore_params(self, target: Any, *, step: int | None = None) -> Any:
        """Restores only the parameters of the latest readable checkpoint.

        Args:
            target: pure params state (arrays or ``jax.ShapeDtypeStruct``) giving
                shapes, dtypes and shardings.
            step: a specific step; then no fallback happens.
        """
        target = _as_abstract(target)

        def restore_step(s: int) -> Any:
            items = {"params": ocp.args.StandardRestore(target)}
            digest = self._digest_args(s)
            restored = self._manager.restore(s, args=ocp.args.Composite(**items, **digest))
            if digest:
                verify_digests(restored[DIGEST_ITEM], {"params": restored.params})
            return restored.params

        return self._restore_with_fallback(restore_step, target, step)

    def data_process_count(self, step: int) -> int | None:
        """Number of processes whose data positions checkpoint ``step`` holds (``None``:
        no data position). Grain saves one position per process, so a run with another
        number of processes cannot restore them (`fit` then skips batches instead)."""
        names = (self.directory / str(step) / "data").glob("process_*-of-*.json")
        counts = {int(m.group(1)) for p in names if (m := _DATA_FILE.fullmatch(p.name))}
        return max(counts) if counts else None

    def _digest_args(self, step: int) -> dict[str, Any]:
        if not (self.directory / str(step) / DIGEST_ITEM).exists():
            return {}
        return {DIGEST_ITEM: ocp.args.JsonRestore()}

    def _restore_with_fallback(self, restore_step, target_params, step):
        steps = [step] if step is not None else self.all_steps()[::-1]
        if step is not None and step not in self.all_steps():
            raise FileNotFoundError(
                f"no checkpoint for step {step} in {self.directory}; found {self.all_steps()}."
            )
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}.")
        for index, s in enumerate(steps):
            previous = steps[index + 1] if index + 1 < len(steps) else None
            error, result = None, None
            try:
                saved = _saved_shapes(self._manager.item_metadata(s).params)
            except Exception as caught:  # noqa: BLE001  (any read failure is damage)
                error = caught
            else:
                expected = _shapes(target_params)
                if saved != expected:
                    raise ValueError(
                        f"checkpoint {self.directory / str(s)} holds parameters of "
                        f"shapes {_describe(saved - expected)} that the model lacks, and "
                        f"the model has {_describe(expected - saved)} that the checkpoint "
                        "lacks: it was written for another model."
                    )
                try:
                    result = restore_step(s)
                except Exception as caught:  # noqa: BLE001
                    error = caught
            # Every process must fall back to the same step: one that read a
            # checkpoint others could not sets it aside with them.
            if not _failed_anywhere(error is not None):
                return result
            if error is None:
                error = OSError("another process could not read it")
            self._set_aside(s, error, previous, fallback=step is None)
        raise FileNotFoundError(f"no readable checkpoint in {self.directory}.")

    def _set_aside(
        self, step: int, error: Exception, previous: int | None, *, fallback: bool
    ) -> None:
        path = self.directory / str(step)
        if isinstance(error, CheckpointIntegrityError):
            problem = f"failed its integrity check ({error})"
        else:
            problem = f"cannot be read ({type(error).__name__}: {str(error)[:300]})"
        if not fallback:
            raise ValueError(f"checkpoint step {step} in {self.directory} {problem}") from error
        then = (
            "no earlier checkpoint is left"
            if previous is None
            else f"falling back to step {previous}"
        )
        # Renamed rather than deleted: the evidence stays, and a resumed run can
        # write a new checkpoint of the same step.
        where = f"in {self.directory}" if self._read_only else f"moved to {path}{CORRUPT_SUFFIX}"
        warnings.warn(f"checkpoint step {step} {problem}; {then} ({where}).", stacklevel=4)
        if self._read_only:
            return
        # Nobody may still be reading the step when process 0 renames it.
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"alignjax_set_aside_{step}_read")
        if jax.process_index() == 0:
            path.rename(path.with_name(path.name + CORRUPT_SUFFIX))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"alignjax_set_aside_{step}")
        self._manager.reload()

    def wait_until_finished(self) -> None:
        """Blocks until every started save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


_DATA_FILE = re.compile(r"process_\d+-of-(\d+)\.json")


def _failed_anywhere(failed: bool) -> bool:
    if jax.process_count() == 1:
        return failed
    return bool(np.any(multihost_utils.process_allgather(np.int32(failed))))


def _state_item(state: TrainState) -> dict[str, Any]:
    return {
        "step": state.step,
        "model_state": state.model_state,
        "opt_state": state.opt_state,
    }


def _host_arrays(tree: Any) -> list[np.ndarray]:
    leaves = [
        jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        for x in jax.tree.leaves(tree)
    ]
    # One device_get for all local arrays lets their transfers overlap; arrays that
    # span processes are gathered one by one, in the same order on every process
    # (process_allgather is a collective).
    local = jax.device_get(
        [x if not isinstance(x, jax.Array) or x.is_fully_addressable else None for x in leaves]
    )
    return [
        np.asarray(multihost_utils.process_allgather(x, tiled=True)) if host is None else host
        for x, host in zip(leaves, local)
    ]


def array_digests(items: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """A SHA-256 of every array of ``items``, keyed by item and path.

    The hash covers ``"<dtype>|<shape>|"`` and the array's bytes in C order (for
    PRNG keys, those of their key data), so it is independent of the sharding:
    a checkpoint saved on one mesh verifies when restored onto another.

    Args:
        items: item name to pytree of arrays, e.g. ``{"params": params}``.

    Returns:
        ``{"params['l1']['kernel']": {"dtype": "float32", "sha256": "9f86..."}, ...}``.
    """
    digests = {}
    for name, tree in items.items():
        paths = [path for path, _ in jax.tree_util.tree_leaves_with_path(tree)]
        for path, leaf, host in zip(paths, jax.tree.leaves(tree), _host_arrays(tree)):
            digest = hashlib.sha256(f"{leaf.dtype}|{tuple(leaf.shape)}|".encode())
            digest.update(np.ascontiguousarray(host).reshape(-1).view(np.uint8))
            key = name + jax.tree_util.keystr(path)
            digests[key] = {"dtype": str(leaf.dtype), "sha256": digest.hexdigest()}
    return digests


def verify_digests(saved: Mapping[str, Mapping[str, str]], items: Mapping[str, Any]) -> None:
    """Checks restored ``items`` against the digests ``saved`` with them.

    Arrays restored into another dtype than they were saved in (Orbax casts to
    the target's) cannot be compared and are skipped, as are arrays without a
    saved digest: a checkpoint is set aside only for evidence of damage.

    Raises:
        CheckpointIntegrityError: naming the first array whose digest differs.
    """
    for key, digest in array_digests(items).items():
        expected = saved.get(key, digest)
        if expected["dtype"] == digest["dtype"] and expected["sha256"] != digest["sha256"]:
            raise CheckpointIntegrityError(f"digest mismatch in {key}")


def _as_abstract(tree: Any) -> Any:
    def leaf(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            return x
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)

    return jax.tree.map(leaf, tree)


def _shapes(tree: Any) -> collections.Counter:
    return collections.Counter(tuple(x.shape) for x in jax.tree.leaves(tree))


def _saved_shapes(metadata: Any) -> collections.Counter:
    tree = metadata.tree if hasattr(metadata, "tree") else metadata
    return _shapes(tree)


def _describe(counter: collections.Counter) -> str:
    return ", ".join(f"{shape} x{n}" for shape, n in sorted(counter.items())) or "none"


def find_checkpoints(path: str | pathlib.Path) -> pathlib.Path:
    """The checkpoint directory of ``path``: a run's workdir or the directory itself.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint path {path} does not exist.")
    if (path / "checkpoints").is_dir():
        return path / "checkpoints"
    return path


def load_pretrained(
    model: nnx.Module, path: str | pathlib.Path, *, step: int | None = None
) -> nnx.Module:
    """Loads the parameters of a saved run into ``model`` (a "pretrained" student).

    Only the ``nnx.Param`` arrays are read; the model's other variables (RNG
    state) and any optimizer state are left alone. Each array keeps the sharding
    it has in ``model``. Pair it with ``TrainConfig.decay_to_init``: `fit` takes
    the parameters the model has when training starts as the point to decay to.
    The arrays are checked against the checkpoint's digest: a damaged checkpoint
    is skipped with a warning for the previous one (left in place: the directory
    is only read).

    Args:
        model: a model of the same architecture as the saved one.
        path: a run's workdir (holding ``checkpoints/``) or a checkpoint directory.
        step: the step to load; by default the latest readable one.

    Returns:
        ``model``, updated in place.

    Raises:
        FileNotFoundError: if ``path`` holds no (undamaged) checkpoint.
        ValueError: if the saved parameters do not fit ``model``, or the
            checkpoint of ``step`` is damaged.
    """
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    checkpointer = Checkpointer(find_checkpoints(path), read_only=True)
    try:
        restored = checkpointer.restore_params(params, step=step)
    finally:
        checkpointer.close()
    nnx.update(model, restored)
    return model
