"""Throughput of the Grain pipelines: triplets and images per second into device arrays.

For every synthetic world present in ``alignjax.data`` (and a simulated observer, and a
stored TFDS/ArrayRecord triplet set joined with its stored images), streams triplets
through Grain with 1 and 2 threads, places each batch on the device
(``jax.device_put`` + ``block_until_ready``) and prints one table row per case. The
first batch (thread start-up) is not timed.

    python benchmarks/pipeline.py            # about a minute on 2 cores
    python benchmarks/pipeline.py --scale 4  # longer runs, steadier numbers
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time

import jax
import numpy as np

from alignjax.data import observers, pipeline, tfds_builders
from alignjax.data.triplet_set import TripletSet

BATCH_SIZE = 64
# Triplets per call of a world's vectorised sampler, as the experiments draw them.
EXAMPLES_PER_CALL = 16

# (row name, module, class, constructor arguments, triplets per run at --scale 1).
WORLDS = [
    ("gaussian_mixture", "gaussian_mixture", "GaussianMixtureWorld", {}, 8192),
    ("quadrilaterals 64px", "quadrilaterals", "QuadrilateralWorld", {}, 640),
    ("hierarchy 32px", "hierarchy", "HierarchyWorld", {}, 640),
    ("geoclidean 64px", "geoclidean", "GeoclideanWorld", {}, 640),
]


def measure(stream) -> tuple[float, int, int]:
    """Seconds, triplets and images after the first batch, with every batch on device."""
    iterator = iter(stream)
    jax.block_until_ready(jax.device_put(next(iterator)))
    triplets = images = 0
    start = time.perf_counter()
    for batch in iterator:
        jax.block_until_ready(jax.device_put(batch))
        n = len(batch["indices"] if "indices" in batch else next(iter(batch.values())))
        triplets += n
        # Image triplets are [n, 3, H, W, C]: the stored set's "images", a world's "inputs".
        triplet_inputs = batch.get("images", batch.get("inputs"))
        images += 3 * n if triplet_inputs is not None and triplet_inputs.ndim == 5 else 0
    return time.perf_counter() - start, triplets, images


def stored_case(num_triplets: int, data_dir: str):
    """A TFDS triplet set over 256 stored quadrilateral images, or None without that world."""
    try:
        world = importlib.import_module("alignjax.data.quadrilaterals").QuadrilateralWorld()
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    items = world.sample(rng, 256)
    tfds_builders.write_image_set(
        {"train": {"image": items["inputs"], "label": items["labels"]}},
        name="bench_items",
        data_dir=data_dir,
    )
    triplets = TripletSet(observers.random_triplets(rng, num_triplets, 256), n_items=256)
    tfds_builders.write_triplet_set({"train": triplets}, name="bench_triplets", data_dir=data_dir)
    return (
        tfds_builders.data_source("bench_triplets", data_dir, "train"),
        tfds_builders.data_source("bench_items", data_dir, "train"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies the number of triplets per run"
    )
    args = parser.parse_args()
    common = dict(batch_size=BATCH_SIZE, seed=0, process_index=0, process_count=1)
    cases, missing = [], []
    for name, module, cls, kwargs, n in WORLDS:
        try:
            world = getattr(importlib.import_module(f"alignjax.data.{module}"), cls)(**kwargs)
        except (ImportError, AttributeError):
            missing.append(name)
            continue
        num = int(n * args.scale) // EXAMPLES_PER_CALL * EXAMPLES_PER_CALL
        cases.append(
            (
                name,
                lambda threads, w=world, num=num: pipeline.example_stream(
                    lambda rng: w.sample_triplets(rng, EXAMPLES_PER_CALL),
                    num_examples=num,
                    num_threads=threads,
                    examples_per_call=EXAMPLES_PER_CALL,
                    **common,
                ),
            )
        )
    similarity = np.random.default_rng(0).normal(size=(1854, 16))
    observer = observers.LuceObserver(similarity @ similarity.T / 4)
    num = int(4096 * args.scale)
    cases.append(
        (
            "observer (1854 items)",
            lambda threads: pipeline.example_stream(
                observer.sample_triplet, num_examples=num, num_threads=threads, **common
            ),
        )
    )
    with tempfile.TemporaryDirectory() as data_dir:
        stored = stored_case(int(4096 * args.scale), data_dir)
        if stored is not None:
            cases.append(
                (
                    "stored TFDS quadrilaterals",
                    lambda threads: pipeline.triplet_stream(*stored, num_threads=threads, **common),
                )
            )
        print(f"batch {BATCH_SIZE}, device {jax.devices()[0].platform}, jax {jax.__version__}")
        print(f"{'stream':<28} {'threads':>7} {'triplets/s':>11} {'images/s':>10}")
        for name, make in cases:
            for threads in (1, 2):
                seconds, triplets, images = measure(make(threads))
                image_rate = f"{images / seconds:10.0f}" if images else f"{'-':>10}"
                print(f"{name:<28} {threads:>7} {triplets / seconds:11.0f} {image_rate}")
    if missing:
        print(f"not yet in alignjax.data (skipped): {', '.join(missing)}")


if __name__ == "__main__":
    main()
