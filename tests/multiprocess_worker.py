"""One process of a multi-process training run, launched by tests/test_multiprocess.py.

    python tests/multiprocess_worker.py --workdir W --out O --num-processes 2 \
        --process-id I --port P --num-steps 40 --checkpoint-every 10

Each process gets ``4 // num_processes`` CPU devices, so every run has 4 devices in
all; with several processes they join through ``jax.distributed`` on 127.0.0.1 and
exchange data over Gloo. The run trains a small MLP with `alignjax.training.fit` on
a Grain stream from `alignjax.data.pipeline.example_stream` (which takes this
process's share of every global batch), then writes ``O/process_I.npz``: the final
parameters (gathered from all processes) and the inputs of every batch this process
consumed, in order.

A checkpoint written with another number of processes resumes too: `fit` skips the
batches its steps consumed (the Grain positions cannot cross that change).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

TOTAL_DEVICES = 4
BATCH_SIZE = 16
IN_DIM = 4
READY = "multiprocess_worker: jax.distributed ready"


def _parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--num-steps", type=int, default=40)
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--timeout", type=int, default=60)
    return parser.parse_args(argv)


def _start_jax(args):
    import jax

    # Both settings must precede any other JAX call. Gloo is the default CPU
    # collectives implementation of recent jax; it is set so that an older default
    # ("none": no cross-process collectives on CPU) cannot creep in.
    jax.config.update("jax_num_cpu_devices", TOTAL_DEVICES // args.num_processes)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.num_processes > 1:
        address = f"127.0.0.1:{args.port}"
        jax.distributed.initialize(
            address,
            num_processes=args.num_processes,
            process_id=args.process_id,
            coordinator_bind_address=address,
            initialization_timeout=args.timeout,
            heartbeat_timeout_seconds=args.timeout,
            shutdown_timeout_seconds=args.timeout,
        )
    print(f"{READY}: {jax.process_index()} of {jax.process_count()}", file=sys.stderr, flush=True)
    return jax


def _sample(rng):
    x = rng.normal(size=IN_DIM).astype("float32")
    target = [x[0] * x[1], x[2] - x[3]]
    return {"x": x, "y": np.asarray(target, "float32")}


def _loss_fn(model, batch):
    error = model(batch["x"]) - batch["y"]
    return (error**2).mean(), {"mae": abs(error).mean()}


def main(argv=None) -> None:
    args = _parse(argv)
    jax = _start_jax(args)
    from flax import nnx
    from jax.experimental import multihost_utils

    from alignjax.config import MeshConfig, TrainConfig
    from alignjax.data import pipeline
    from alignjax.models import MLPEncoder
    from alignjax.training import fit

    workdir = pathlib.Path(args.workdir)
    consumed = []

    def record(batch):
        consumed.append(batch["x"].copy())
        if args.step_delay:
            time.sleep(args.step_delay)
        return batch

    stream = pipeline.example_stream(
        _sample,
        num_examples=args.num_steps * BATCH_SIZE,
        batch_size=BATCH_SIZE,
        seed=0,
        num_threads=1,
    ).map(record)
    batches = iter(stream)

    model = MLPEncoder(IN_DIM, (8,), 2, rngs=nnx.Rngs(0))
    config = TrainConfig(
        num_steps=args.num_steps,
        learning_rate=0.03,
        warmup_steps=5,
        mesh=MeshConfig(fsdp=2),
        log_every=1,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=10,
        workdir=str(workdir),
        progress_bar=False,
    )
    model = fit(model, _loss_fn, batches, config)

    params = jax.tree_util.tree_flatten_with_path(nnx.as_pure(nnx.state(model, nnx.Param)))[0]
    arrays = {
        f"param{jax.tree_util.keystr(path)}": np.asarray(
            multihost_utils.process_allgather(value, tiled=True)
        )
        for path, value in params
    }
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    examples = np.stack(consumed) if consumed else np.zeros((0, BATCH_SIZE, IN_DIM))
    np.savez(out / f"process_{jax.process_index()}.npz", examples=examples, **arrays)
    if jax.process_count() > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
