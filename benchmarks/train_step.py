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
slower repetitions measure the other work.

The FLOPs count everything XLA executes in the step (forward, backward, AdamW,
layer norms, softmax), so the MFU is that of the whole step relative to the
best case of the same hardware.

Run (one CPU device, all cores):

    python benchmarks/train_step.py
    python benchmarks/train_step.py --configs Ti/16@64 --batches 8 32 64 \\
        --dtypes float32 bfloat16
    python benchmarks/train_step.py --configs Ti/16@64 --profile   # where the time goes

``XLA_FLAGS`` and the thread settings apply as usual, e.g.
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false python benchmarks/train_step.py``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alignjax.losses.triplet import (
    odd_one_out_cross_entropy,
    triplet_accuracy,
    triplet_similarities,
)
from alignjax.models.vit import ViT
from alignjax.training import MeshConfig, TrainConfig, Trainer

DEFAULT_CONFIGS = ("mu/8@32", "mu/8@64", "Ti/16@32", "Ti/16@64", "Ti/8@32", "Ti/8@64")


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
    # The ViT's own dtype decides its matmuls' dtype; compute_dtype casts the
    # parameters and inputs to match, keeping float32 master weights.
    model = ViT(variant, image_size=image, dtype=jnp.dtype(dtype), rngs=nnx.Rngs(0))
    config = TrainConfig(
        num_steps=steps + 1,
        mesh=MeshConfig(data=1),
        compute_dtype=dtype,
        progress_bar=False,
    )
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
        "--configs", nargs="+", default=DEFAULT_CONFIGS, help="variant@image_size, e.g. Ti/16@64"
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[32], help="triplets per step")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row")
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
    # The machine's matmul rate is the best one seen in the whole run: a slower
    # measurement only saw other processes' load.
    peak = max(peaks)
    for row in rows:
        row["mfu"] = row.pop("flop/s") / peak
    print(f"float32 matmul 2048x2048: {peak / 1e9:.1f} GFLOP/s (MFU denominator)\n")
    print_table(rows)


if __name__ == "__main__":
    main()
