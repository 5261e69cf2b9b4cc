"""Throughput and model FLOP utilisation (MFU) of the alignjax train step.

For each ViT variant and input size, builds `alignjax.training.Trainer` with a
triplet odd-one-out loss (each example is 3 images, embedded, compared by dot
product) on this machine's devices, and reports:

- compile time of the train step,
- steps/s, triplets/s and images/s (host batch placement included),
- MFU = (FLOPs of the compiled train step, from XLA's ``cost_analysis()``, per
  second) / (this machine's float32 matmul FLOP/s, measured in the same run with
  a 2048x2048 ``jnp.dot``).

Times are the fastest of ``--steps`` steps, and the matmul rate the fastest of
10 matmuls before and after every row: on a machine shared with other work,
slower repetitions measure the other work. With several ``--dtypes`` the
column ``vs float32`` is a row's steps/s over its float32 row's (the ViT built
with ``dtype=bfloat16``: bfloat16 compute, float32 parameters and optimizer
state; XLA's CPU bfloat16 matmuls are no faster than float32, it is for
accelerators).

A second table, the trainer's overhead: steps/s of `alignjax.training.fit`
(host batches from an iterator, placed while the previous step runs, metrics
fetched every ``log_every`` steps, the gradient norm on those steps only) over
steps/s of a bare jitted step (loss, gradient, the same optax update, nothing
else) on a batch placed beforehand. The two run interleaved, ``--repeats``
times each, at ``--overhead-configs`` (default mu/8@32 with 64 triplets and
Ti/16@64 with 16, AligNet's student shapes); goal >= 0.97. fit's rate is the
one it records (from the end of its first, compiling, step).

The FLOPs count everything XLA executes in the step (forward, backward, AdamW,
layer norms, softmax), so the MFU is that of the whole step relative to the
best case of the same hardware.

Run (one CPU device, all cores):

    python benchmarks/train_step.py
    python benchmarks/train_step.py --configs Ti/16@64 --batches 8 32 64 \\
        --dtypes float32 bfloat16
    python benchmarks/train_step.py --configs Ti/16@64 --profile   # where the time goes
    python benchmarks/train_step.py --configs --overhead-configs mu/8@32:64 --repeats 5

``XLA_FLAGS`` and the thread settings apply as usual, e.g.
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python benchmarks/train_step.py``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import itertools
import json
import os
import re
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from alignjax.losses.triplet import (
    odd_one_out_cross_entropy,
    triplet_accuracy,
    triplet_similarities,
)
from alignjax.models.vit import ViT
from alignjax.training import MeshConfig, TrainConfig, Trainer, fit

DEFAULT_CONFIGS = ("mu/8@32", "mu/8@64", "Ti/16@32", "Ti/16@64", "Ti/8@32", "Ti/8@64")
DEFAULT_OVERHEAD_CONFIGS = ("mu/8@32:64", "Ti/16@64:16")


def triplet_loss(model, batch):
    images = batch["inputs"]
    embeddings = model(images.reshape(-1, *images.shape[2:]))
    similarities = triplet_similarities(embeddings.reshape(images.shape[0], 3, -1))
    return (
        odd_one_out_cross_entropy(similarities).mean(),
        {"accuracy": triplet_accuracy(similarities).mean()},
    )


def matmul_flops_per_second(n: int = 2048, repeats: int = 10) -> float:
    """Best observed float32 FLOP/s of an ``n x n`` matmul on the default device."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dot(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def step_flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    # Older jax versions return one dict per device program.
    if isinstance(analysis, list):
        analysis = analysis[0]
    return float(analysis["flops"])


def benchmark(variant: str, image: int, batch: int, dtype: str, steps: int, profile: bool) -> dict:
    # bfloat16 compute, float32 parameters (and so optimizer state).
    model = ViT(variant, image_size=image, dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0))
    config = TrainConfig(num_steps=steps + 1, mesh=MeshConfig(data=1), progress_bar=False)
    trainer = Trainer(model, triplet_loss, config)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, 3, image, image, 3)).astype(np.float32)
    host_batch = {"inputs": images}

    start = time.perf_counter()
    compiled = trainer.lower(host_batch).compile()
    compile_seconds = time.perf_counter() - start
    flops = step_flops(compiled)

    jax.block_until_ready(trainer.train_step(host_batch))  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        jax.block_until_ready(trainer.train_step(host_batch))
        times.append(time.perf_counter() - start)
    # The fastest step: on a shared machine the others include foreign load.
    seconds = min(times)
    if profile:
        print(f"{variant}@{image} batch {batch} {dtype}: share of op time")
        for kind, share in profile_breakdown(trainer, host_batch).items():
            print(f"  {share:6.1%}  {kind}")
    return {
        "model": f"{variant}@{image}",
        "dtype": dtype,
        "batch": batch,
        "compile_s": compile_seconds,
        "gflop/step": flops / 1e9,
        "steps/s": 1 / seconds,
        "triplets/s": batch / seconds,
        "images/s": 3 * batch / seconds,
        "flop/s": flops / seconds,
    }


def bare_steps_per_second(trainer: Trainer, loss_fn, placed, steps: int) -> float:
    """Steps/s of a jitted step that computes the loss, its gradient and the
    trainer's optax update, and nothing else, on an already placed batch."""
    graphdef, tx = trainer.graphdef, trainer.tx

    def step(state, batch):
        def objective(params):
            return loss_fn(nnx.merge(graphdef, params, state.model_state), batch)[0]

        loss, grads = jax.value_and_grad(objective)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state._replace(step=state.step + 1, params=params, opt_state=opt_state), loss

    step = jax.jit(step, donate_argnums=0)
    state = jax.tree.map(jnp.copy, trainer.state)
    state, loss = step(state, placed)  # compiles
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for _ in range(steps):
        state, loss = step(state, placed)
    jax.block_until_ready((state, loss))
    return steps / (time.perf_counter() - start)


def fit_steps_per_second(model, loss_fn, host_batch, steps: int, log_every: int) -> float:
    """Steps/s that `fit` records over ``steps`` steps after its first."""
    config = TrainConfig(
        num_steps=steps + 1,
        mesh=MeshConfig(data=1),
        log_every=min(log_every, steps + 1),
        progress_bar=False,
    )
    records = []
    fit(
        nnx.clone(model),
        loss_fn,
        itertools.repeat(host_batch, steps + 1),
        config,
        callbacks=[lambda step, metrics: records.append((step, metrics["steps_per_second"]))],
    )
    # Each record's rate covers the steps since the previous record (the first
    # one from the end of step 1).
    seconds, previous = 0.0, 1
    for step, rate in records:
        seconds += (step - previous) / rate
        previous = step
    return (previous - 1) / seconds


def overhead(variant, image, batch, dtype, steps, repeats, log_every) -> dict:
    """fit's steps/s over a bare step's, measured interleaved ``repeats`` times."""
    model = ViT(variant, image_size=image, dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    host_batch = {"inputs": rng.normal(size=(batch, 3, image, image, 3)).astype(np.float32)}
    config = TrainConfig(num_steps=steps + 1, mesh=MeshConfig(data=1), progress_bar=False)
    trainer = Trainer(nnx.clone(model), triplet_loss, config)
    placed = trainer.place(host_batch)
    bare, fitted = [], []
    for _ in range(repeats):
        bare.append(bare_steps_per_second(trainer, triplet_loss, placed, steps))
        fitted.append(fit_steps_per_second(model, triplet_loss, host_batch, steps, log_every))
    ratios = [f / b for f, b in zip(fitted, bare)]
    return {
        "model": f"{variant}@{image}",
        "dtype": dtype,
        "batch": batch,
        "bare steps/s": max(bare),
        "fit steps/s": max(fitted),
        "fit/bare (best)": max(fitted) / max(bare),
        "fit/bare (median)": statistics.median(ratios),
        "ratios": " ".join(f"{r:.3f}" for r in ratios),
    }


def _category(op: str) -> str:
    if "ynn_fusion" in op or op.startswith(("dot", "convolution")):
        return "matmul (dot/conv)"
    if "copy" in op or "transpose" in op:
        return "layout copies/transposes"
    if op == "shard_args":
        return "host-to-device batch"
    if "broadcast" in op:
        return "broadcasts"
    return "elementwise/reductions (norms, softmax, gelu, adamw)"


def profile_breakdown(trainer: Trainer, host_batch, steps: int = 2) -> dict[str, float]:
    """Share of executed op time per kind of op, from a ``jax.profiler`` trace.

    Durations are summed over XLA's worker threads, so the shares say where the
    cores spend their time, not the wall-clock order of things.
    """
    with tempfile.TemporaryDirectory() as directory:
        jax.profiler.start_trace(directory, create_perfetto_trace=True)
        for _ in range(steps):
            jax.block_until_ready(trainer.train_step(host_batch))
        jax.profiler.stop_trace()
        (path,) = glob.glob(f"{directory}/**/perfetto_trace.json.gz", recursive=True)
        with gzip.open(path) as file:
            events = json.load(file)["traceEvents"]
    totals: dict[str, float] = collections.Counter()
    for event in events:
        name = event.get("name", "")
        # XLA ops are lower-case HLO names; skip Python frames ("$...") and
        # runtime spans ("ThunkExecutor::Execute", ...).
        if event.get("ph") != "X" or not name or not name[0].islower() or "::" in name:
            continue
        totals[_category(re.sub(r"\.\d+$", "", name))] += event.get("dur", 0)
    total = sum(totals.values())
    return {kind: t / total for kind, t in totals.most_common()}


def print_table(rows: list[dict]) -> None:
    columns = list(rows[0])
    cells = [
        [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        for row in rows
    ]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(" | ".join(c.rjust(w) for c, w in zip(columns, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in cells:
        print(" | ".join(v.rjust(w) for v, w in zip(r, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs", nargs="*", default=DEFAULT_CONFIGS, help="variant@image_size, e.g. Ti/16@64"
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[32], help="triplets per step")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row")
    parser.add_argument(
        "--overhead-configs",
        nargs="*",
        default=DEFAULT_OVERHEAD_CONFIGS,
        help="variant@image_size:triplets of the fit-versus-bare-step table (none: skip it)",
    )
    parser.add_argument(
        "--overhead-steps",
        type=int,
        nargs="+",
        default=[200, 40],
        help="timed steps of fit and of the bare step, per overhead config (last one repeats)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved fit/bare repeats")
    parser.add_argument("--log-every", type=int, default=50, help="fit's log_every")
    parser.add_argument(
        "--profile", action="store_true", help="print where each row's op time goes (jax.profiler)"
    )
    args = parser.parse_args()

    print(f"devices: {jax.devices()} ({os.cpu_count()} cores visible)")
    print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}\n")
    rows, peaks = [], [matmul_flops_per_second()]
    for spec in args.configs:
        variant, image = spec.split("@")
        for dtype in args.dtypes:
            for batch in args.batches:
                row = benchmark(variant, int(image), batch, dtype, args.steps, args.profile)
                rows.append(row)
                peaks.append(matmul_flops_per_second())
    if rows:
        # The machine's matmul rate is the best one seen in the whole run: a
        # slower measurement only saw other processes' load.
        peak = max(peaks)
        float32_rates = {
            (row["model"], row["batch"]): row["steps/s"]
            for row in rows
            if row["dtype"] == "float32"
        }
        for row in rows:
            row["mfu"] = row.pop("flop/s") / peak
            if len(args.dtypes) > 1 and (row["model"], row["batch"]) in float32_rates:
                row["vs float32"] = row["steps/s"] / float32_rates[row["model"], row["batch"]]
        print(f"float32 matmul 2048x2048: {peak / 1e9:.1f} GFLOP/s (MFU denominator)\n")
        print_table(rows)

    overhead_rows = []
    for index, spec in enumerate(args.overhead_configs):
        model, batch = spec.split(":")
        variant, image = model.split("@")
        steps = args.overhead_steps[min(index, len(args.overhead_steps) - 1)]
        for dtype in args.dtypes:
            overhead_rows.append(
                overhead(
                    variant, int(image), int(batch), dtype, steps, args.repeats, args.log_every
                )
            )
            print(overhead_rows[-1], flush=True)
    if overhead_rows:
        print(f"\ntrainer overhead: fit (log_every={args.log_every}) against a bare step")
        print_table(overhead_rows)


if __name__ == "__main__":
    main()
