"""The generic trainer: ``fit(model, loss_fn, batches, config) -> model``.

It knows no paper. It takes

- ``model``: any Flax NNX module (its ``nnx.Param`` variables are trained),
- ``loss_fn(model, batch) -> (loss, metrics)``: a pure function returning a
  scalar loss and a dict of scalar metrics (e.g. triplet accuracy),
- ``batches``: an iterable of host batches (pytrees of arrays with a leading
  batch axis; in a multi-host run each process yields its own slice),
- a `TrainConfig`,

and runs a single jitted train step over a ``("data", "fsdp")`` mesh with explicit
input and output shardings, the train state donated so that parameters and
optimizer state are updated in place. Checkpoints (with the data position),
metrics (JSON lines and TensorBoard) and the progress bar are handled inside;
rerunning the same call with the same ``workdir`` resumes where the last run
stopped, bit for bit.

`fit` returns only when all ``num_steps`` steps are done. Every other ending is an
exception, with the last good state checkpointed: `TrainingInterrupted` (SIGTERM
or SIGINT), ``ValueError`` (the batches ran out) or `NonFiniteLossError` (the loss
or the gradient became NaN or infinite; a non-finite state is never checkpointed).

Example:
    >>> import numpy as np, optax
    >>> from flax import nnx
    >>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    >>> def loss_fn(model, batch):
    ...     error = model(batch["x"]) - batch["y"]
    ...     return (error**2).mean(), {"mae": abs(error).mean()}
    >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    >>> batches = ({"x": x, "y": x @ np.array([[1.0], [-2.0]], np.float32)}
    ...            for _ in range(200))
    >>> config = TrainConfig(num_steps=200, learning_rate=0.1, progress_bar=False)
    >>> model = fit(model, loss_fn, batches, config)
    >>> np.round(model.kernel[...].ravel(), 2).tolist()
    [1.0, -2.0]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from alignjax.config import TrainConfig
from alignjax.training.checkpoint import Checkpointer, is_checkpointable_iterator
from alignjax.training.mesh import (
    batch_sharding,
    make_mesh,
    replicated,
    shard_batch,
    state_shardings,
)
from alignjax.training.metrics_writer import MetricsWriter
from alignjax.training.nonfinite import (
    CHECKED_METRICS,
    NonFiniteLossError,
    all_finite,
    first_nonfinite,
)
from alignjax.training.optimizer import learning_rate_schedule, make_optimizer
from alignjax.training.progress import progress_bar, restart_clock
from alignjax.training.signals import DeferredSignals, TrainingInterrupted
from alignjax.training.stages import announce, current_stage, restored
from alignjax.training.train_state import TrainState, abstract_state

LossFn = Callable[[nnx.Module, Any], tuple[jax.Array, Mapping[str, jax.Array]]]
Callback = Callable[[int, Mapping[str, float]], None]


def _copy_to(tree: Any, shardings: Any) -> Any:
    # A copy, never an alias: the train step donates its input buffers, which
    # must not be the caller's model arrays. (device_put moves the arrays onto
    # the mesh but may hand back the caller's buffers, even with may_alias=False
    # for a shard of a replicated array; the jitted copy cannot.)
    placed = jax.device_put(tree, shardings)
    return jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=shardings)(placed)


class Trainer:
    """A model, a pure loss and a config, turned into a sharded jitted train step.

    `fit` is the usual entry point; the `Trainer` is for stepping by hand, for
    inspecting the compiled step (benchmarks, HLO) or for custom loops.

    Args:
        model: the NNX module to train; it is not modified (see `model`).
        loss_fn: ``loss_fn(model, batch) -> (loss, metrics)`` with a scalar loss
            and a dict of scalar metrics.
        config: the training configuration.
        init_params: parameters ``decay_to_init`` pulls toward (an
            ``nnx.State`` of ``nnx.Param``, pure or not); by default the
            parameters ``model`` has now.
        mesh: the device mesh; by default ``make_mesh(config.mesh)``.

    Attributes:
        mesh: the device mesh.
        state: the current `TrainState`, sharded over ``mesh``.
        shardings: a `TrainState` of the ``NamedSharding`` of every array.
        tx: the optax transformation.
    """

    def __init__(
        self,
        model: nnx.Module,
        loss_fn: LossFn,
        config: TrainConfig,
        *,
        init_params: Any = None,
        mesh: Mesh | None = None,
    ):
        self.config = config
        self.mesh = make_mesh(config.mesh) if mesh is None else mesh
        self.graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
        param_shardings = state_shardings(params, self.mesh)
        model_state_shardings = state_shardings(model_state, self.mesh)
        params = _copy_to(nnx.as_pure(params), param_shardings)
        model_state = _copy_to(nnx.as_pure(model_state), model_state_shardings)
        # Only decay_to_init's state depends on the values the optimizer is
        # initialised with (the rest on shapes): it keeps a copy to decay toward.
        if init_params is None:
            init_params = params
        else:
            init_params = nnx.as_pure(init_params)
            if jax.tree.structure(init_params) != jax.tree.structure(params):
                raise ValueError(
                    "init_params must have the structure of the model's parameters "
                    f"{jax.tree.structure(params)}; got "
                    f"{jax.tree.structure(init_params)}."
                )
            init_params = _copy_to(init_params, param_shardings)
        self.tx = make_optimizer(config)
        self.schedule = learning_rate_schedule(config)
        opt_shardings = optax.tree_map_params(
            self.tx,
            lambda _, sharding: sharding,
            jax.eval_shape(self.tx.init, params),
            param_shardings,
            transform_non_params=lambda _: replicated(self.mesh),
        )
        opt_state = jax.jit(
            lambda p: self.tx.init(jax.tree.map(jnp.copy, p)),
            out_shardings=opt_shardings,
        )(init_params)
        step = jax.device_put(jnp.zeros((), jnp.int32), replicated(self.mesh))
        self.shardings = TrainState(
            step=replicated(self.mesh),
            params=param_shardings,
            model_state=model_state_shardings,
            opt_state=opt_shardings,
        )
        self.state = TrainState(step, params, model_state, opt_state)
        self._step = jax.jit(
            self._make_step(loss_fn),
            in_shardings=(self.shardings, batch_sharding(self.mesh), replicated(self.mesh)),
            out_shardings=(self.shardings, replicated(self.mesh)),
            donate_argnums=0,
        )
        # The logging flag as device scalars, so that a step uploads nothing but
        # its batch.
        self._logging = {
            flag: jax.device_put(jnp.asarray(flag), replicated(self.mesh)) for flag in (False, True)
        }

    def _make_step(self, loss_fn: LossFn):
        graphdef, tx, schedule = self.graphdef, self.tx, self.schedule
        k = self.config.accumulation_steps

        def train_step(state: TrainState, batch: Any, logging: jax.Array):
            def objective(params):
                model = nnx.merge(graphdef, params, state.model_state)
                loss, metrics = loss_fn(model, batch)
                if jnp.shape(loss) != ():
                    raise ValueError(
                        f"loss_fn must return a scalar loss, got shape {jnp.shape(loss)}."
                    )
                _, model_state = nnx.state(model, nnx.Param, ...)
                return loss.astype(jnp.float32), (metrics, nnx.as_pure(model_state))

            (loss, (metrics, model_state)), grads = jax.value_and_grad(objective, has_aux=True)(
                state.params
            )
            # Variables the forward pass updates (batch statistics) may come back
            # in a model's compute dtype; they are stored in their own.
            model_state = jax.tree.map(
                lambda new, old: (
                    new.astype(old.dtype) if jnp.issubdtype(old.dtype, jnp.floating) else new
                ),
                model_state,
                state.model_state,
            )
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            for name, value in metrics.items():
                if jnp.shape(value) != ():
                    raise ValueError(
                        f"loss_fn metric {name!r} must be a scalar, got shape {jnp.shape(value)}."
                    )
            metrics = {name: jnp.asarray(v, jnp.float32) for name, v in metrics.items()}
            metrics["loss"] = loss
            # One reduction per parameter array: on a small model a few percent of
            # the step, so only logging steps pay for it (0 on the others).
            metrics["grad_norm"] = jax.lax.cond(
                logging,
                lambda g: optax.tree.norm(g).astype(jnp.float32),
                lambda g: jnp.zeros((), jnp.float32),
                grads,
            )
            learning_rate = schedule(state.step // k)
            metrics["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
            new_state = TrainState(state.step + 1, params, model_state, opt_state)
            return new_state, metrics

        return train_step

    def place(self, batch: Any) -> Any:
        """A host batch placed on the mesh (`shard_batch`), ready for `train_step`."""
        return shard_batch(batch, self.mesh)

    def train_step(self, batch: Any, *, logging: bool = True) -> dict[str, jax.Array]:
        """Runs one step on a batch; returns its metrics (still on device).

        Args:
            batch: a host batch, or one already placed by `place` (then the step
                uploads nothing and can follow the previous one without waiting).
            logging: also compute the gradient's global norm (``"grad_norm"``);
                without it the metrics are the loss, ``loss_fn``'s metrics and
                the learning rate.
        """
        with jax.set_mesh(self.mesh):
            self.state, metrics = self._step(
                self.state, shard_batch(batch, self.mesh), self._logging[bool(logging)]
            )
        if not logging:
            del metrics["grad_norm"]
        return metrics

    def lower(self, batch: Any) -> jax.stages.Lowered:
        """The train step lowered for ``batch`` (``.compile()``, ``.as_text()``)."""
        with jax.set_mesh(self.mesh):
            return self._step.lower(self.state, shard_batch(batch, self.mesh), self._logging[True])

    def abstract_state(self) -> TrainState:
        """Shapes, dtypes and shardings of the state: a restore target."""
        return abstract_state(self.state, self.shardings)

    @property
    def model(self) -> nnx.Module:
        """A model holding the current state.

        Its arrays are those of `state`: the next `train_step` donates them, so
        use it before stepping again (or copy it with ``nnx.clone``).
        """
        return nnx.merge(self.graphdef, self.state.params, self.state.model_state)


# What next() returns once the batches run out.
_EXHAUSTED = object()


def _batch_size(batch: Any) -> int:
    leaves = jax.tree.leaves(batch)
    return int(np.shape(leaves[0])[0]) * jax.process_count() if leaves else 0


def _signal_anywhere(received: int | None) -> int:
    """The signal a process received, 0 for none; all processes see the same."""
    if jax.process_count() == 1:
        return received or 0
    return int(np.max(multihost_utils.process_allgather(np.int32(received or 0))))


def fit(
    model: nnx.Module,
    loss_fn: LossFn,
    batches: Iterable[Any],
    config: TrainConfig,
    *,
    evaluate: Callable[[nnx.Module], Mapping[str, float]] | None = None,
    callbacks: Sequence[Callback] = (),
    init_params: Any = None,
) -> nnx.Module:
    """Trains ``model`` on ``batches`` to minimise ``loss_fn``; resumes if it can.

    Every ``config.log_every`` steps (and at the last step) the mean of the loss,
    of each of ``loss_fn``'s metrics and of the learning rate over the interval is
    recorded, with the gradient's global norm (before clipping) of that logging
    step (computed on logging steps only), steps and examples per second; records
    go to the progress bar,
    ``<workdir>/metrics.jsonl``, TensorBoard and each callback. Checkpoints are
    written every ``config.checkpoint_every`` steps, at the end, and before
    stopping early (on SIGTERM or SIGINT, or when the batches run out). When
    ``<workdir>/checkpoints`` already holds a checkpoint, training continues
    from it, and says so on stderr (``resuming from step 40 of 100
    (<directory>)``, or, for a finished run, ``restored <stage> (step 100)``
    without a progress bar; <stage> is the `~alignjax.training.stages` stage
    running, or the checkpoint directory outside one): parameters, optimizer
    state, model RNG state and, for a Grain iterator, the data position (other
    iterables continue from wherever they are). The progress bar is labelled
    with the stage running.

    Batch ``k + 1`` is drawn from ``batches`` and placed on the mesh while step
    ``k`` runs, but only after step ``k``'s checkpoint: a checkpoint's data
    position is that of the steps it holds.

    Non-finite numbers (NaN or infinity) are caught without a host
    synchronisation per step:

    - the loss of every step is checked when metrics are fetched (every
      ``log_every`` steps, before each checkpoint and at the end);
    - the gradient norm of every logging step is checked with it;
    - every floating array of the train state (parameters, optimizer state,
      model state) is checked before each checkpoint is written and before
      ``fit`` returns.

    A non-finite gradient of a step whose gradient norm is not computed is
    caught too: the update carries it into the parameters (with gradient
    clipping, into all of them), so the loss of the next step is non-finite and
    reported (the error names that step, one after the gradient's; with gradient
    accumulation, the step after the update), and a parameter that leaves the
    loss finite is caught in the state. So no checkpoint, and no returned model,
    ever holds a non-finite number.

    Args:
        model: the NNX module to train.
        loss_fn: ``loss_fn(model, batch) -> (loss, metrics)``; a pure function of
            a scalar loss and a dict of scalar metrics.
        batches: an iterable of host batches (one process's slice each).
        config: the training configuration.
        evaluate: optional ``evaluate(model) -> {name: value}``, called every
            ``config.eval_every`` steps and at the end; its values are recorded
            as ``eval/<name>``.
        callbacks: functions ``callback(step, metrics)`` called with every
            record.
        init_params: parameters ``decay_to_init`` pulls toward; by default those
            of ``model`` at the start (before any checkpoint is restored, so a
            resumed run keeps the original ones).

    Returns:
        ``model``, updated in place with the trained state, after all
        ``config.num_steps`` steps.

    Raises:
        TrainingInterrupted: SIGTERM or SIGINT arrived before the last step
            (even one whose disposition was to be ignored); a checkpoint of the
            steps done is kept and ``model`` holds them.
        NonFiniteLossError: the loss of a step, the gradient norm of a logging
            step, or the state to be checkpointed or returned, was NaN or
            infinite; the last good checkpoint is kept and ``model`` is left as it
            was.
        ValueError: if the batches ran out before ``config.num_steps`` steps (a
            checkpoint of the steps done is kept and ``model`` holds them), a
            batch does not split over the mesh, or ``loss_fn`` returns
            non-scalars.
    """
    trainer = Trainer(model, loss_fn, config, init_params=init_params)
    iterator = iter(batches)
    data_iterator = iterator if is_checkpointable_iterator(iterator) else None
    checkpointer = None
    # The step of the newest checkpoint written or restored: a good one, since
    # only finite states are saved.
    last_saved = None
    if config.workdir is not None:
        checkpointer = Checkpointer(
            f"{config.workdir}/checkpoints", max_to_keep=config.keep_checkpoints
        )
        if checkpointer.latest_step() is not None:
            trainer.state = checkpointer.restore(
                trainer.abstract_state(), data_iterator=data_iterator
            )
            last_saved = int(trainer.state.step)
            saved_processes = checkpointer.data_process_count(last_saved)
            if (
                data_iterator is not None
                and last_saved < config.num_steps
                and saved_processes not in (None, jax.process_count())
            ):
                # Grain keeps one position per process; a stream whose global batches
                # do not depend on the process count (alignjax's) continues exactly
                # after skipping the batches the saved steps consumed.
                announce(
                    f"checkpoint step {last_saved} holds the data positions of "
                    f"{saved_processes} processes, this run has {jax.process_count()}: "
                    f"skipping the first {last_saved} batches of the data instead"
                )
                for _ in range(last_saved):
                    next(iterator)
            if last_saved >= config.num_steps:
                restored(last_saved, name=current_stage() or str(checkpointer.directory))
            else:
                announce(
                    f"resuming from step {last_saved} of {config.num_steps} "
                    f"({checkpointer.directory})"
                )
    start = int(trainer.state.step)
    writer = MetricsWriter(config.workdir)
    # A finished run restored says so in one line (above) instead of drawing a full bar.
    progress = progress_bar(
        config.num_steps,
        initial=start,
        enabled=config.progress_bar and jax.process_index() == 0 and start < config.num_steps,
    )

    def record(step: int, metrics: Mapping[str, float]) -> None:
        writer.write(step, metrics)
        for callback in callbacks:
            callback(step, metrics)

    pending: list[dict[str, jax.Array]] = []

    def check_finite(step: int) -> None:
        # pending holds the metrics of the steps since the last fetch, up to step;
        # only logging steps have a gradient norm.
        checked = jax.device_get(
            [{name: m[name] for name in CHECKED_METRICS if name in m} for m in pending]
        )
        bad = first_nonfinite(checked)
        if bad is not None:
            index, quantity, value = bad
            raise NonFiniteLossError(
                step - len(pending) + 1 + index,
                config.num_steps,
                last_saved,
                quantity=quantity,
                value=value,
            )

    def verify(step: int) -> None:
        check_finite(step)
        # A finite loss can hide a non-finite gradient (of a step whose gradient
        # norm was not computed, or one the loss does not show yet), and a finite
        # gradient can still overflow in the update (a huge learning rate): the
        # state itself is checked before it is kept or returned.
        if not all_finite(trainer.state):
            raise NonFiniteLossError(
                step, config.num_steps, last_saved, quantity="train state", value="non-finite"
            )

    def save(step: int) -> None:
        nonlocal last_saved
        verify(step)
        checkpointer.save(trainer.state, data_iterator=data_iterator, config=config.to_dict())
        last_saved = step

    def next_batch() -> tuple[Any, int] | None:
        batch = next(iterator, _EXHAUSTED)
        if batch is _EXHAUSTED:
            return None
        return trainer.place(batch), _batch_size(batch)

    timer_start, timed_steps, timed_examples = None, 0, 0
    deferred = DeferredSignals()
    stopped_by = 0
    try:
        with deferred:
            upcoming = next_batch() if start < config.num_steps else None
            for step in range(start + 1, config.num_steps + 1):
                if upcoming is None:
                    break
                placed, batch_size = upcoming
                at_end = step == config.num_steps
                logging = step % config.log_every == 0 or at_end
                metrics = trainer.train_step(placed, logging=logging)
                pending.append(metrics)
                if timer_start is None:
                    # The first step compiles; rates are measured from its end.
                    jax.block_until_ready(metrics)
                    timer_start = time.perf_counter()
                    restart_clock(progress)
                else:
                    timed_steps += 1
                    timed_examples += batch_size
                progress.update(1)

                if logging:
                    fetched = jax.device_get(pending)
                    means = {
                        name: float(np.mean([m[name] for m in fetched if name in m]))
                        for name in fetched[-1]
                    }
                    if timed_steps:
                        elapsed = time.perf_counter() - timer_start
                        means["steps_per_second"] = timed_steps / elapsed
                        means["examples_per_second"] = timed_examples / elapsed
                    timer_start, timed_steps, timed_examples = time.perf_counter(), 0, 0
                    progress.set_postfix(loss=f"{means['loss']:.4g}", refresh=False)
                    record(step, means)
                    check_finite(step)
                    pending = []

                if evaluate is not None and (
                    at_end or (config.eval_every and step % config.eval_every == 0)
                ):
                    with jax.set_mesh(trainer.mesh):
                        results = evaluate(trainer.model)
                    record(step, {f"eval/{k}": float(v) for k, v in results.items()})

                stopped_by = _signal_anywhere(deferred.received)
                every = config.checkpoint_every
                periodic = every and step % every == 0
                if checkpointer is not None and (stopped_by or at_end or periodic):
                    save(step)
                if stopped_by or at_end:
                    break
                # Batch step + 1 is drawn and placed while this step still runs
                # (dispatch is asynchronous; only logging, evaluation and
                # checkpoints wait for it), and after this step's checkpoint, so
                # the data position saved is that of the steps done.
                upcoming = next_batch()
            done = int(trainer.state.step)
            if checkpointer is not None and done > start and done != last_saved:
                save(done)
            elif done > start:
                verify(done)
            if checkpointer is not None:
                checkpointer.wait_until_finished()
    finally:
        progress.close()
        writer.close()
        if checkpointer is not None:
            checkpointer.close()
    nnx.update(model, trainer.state.params, trainer.state.model_state)
    if done < config.num_steps:
        if stopped_by:
            raise TrainingInterrupted(done, config.num_steps, stopped_by)
        kept = (
            "no checkpoint was written"
            if last_saved is None
            else f"the checkpoint of step {last_saved} is kept"
        )
        raise ValueError(
            f"the batches ran out after {done} of {config.num_steps} steps; {kept}; "
            "give fit at least num_steps batches."
        )
    return model
