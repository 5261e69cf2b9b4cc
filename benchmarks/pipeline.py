"""Input pipelines against the train steps that consume them: the pipeline's rate / the step's.

Streams batches of 64 triplets through Grain, places each on the device
(``jax.device_put`` + ``block_until_ready``; the first batch, thread start-up, is not
timed) and prints triplets/s for

- every synthetic world present in ``alignjax.data`` (``example_stream``, one and two
  threads) and a simulated observer (indices only);
- a stored TFDS/ArrayRecord triplet set over 256 stored quadrilateral images
  (``triplet_stream``), with the images held in memory and read from the store per batch;
- **AligNet's stored triplets**, the main job's student stages: 65536 triplets stored as
  TFDS/ArrayRecord over a pool of 8192 32x32 hierarchy-world images held in memory, as
  the quick preset makes them (or those of a finished run, ``--run DIR``), through
  ``triplet_stream`` as ``distill_student`` builds it, and, for comparison, through the
  pipeline before batched reads (one example at a time, TFDS-decoded, float32 images).

Each row also prints ``ratio``: the pipeline's triplets/s divided by the triplets/s of
the train step that consumes such batches, timed in the same run right after the
pipeline (``Trainer.train_step`` on the batch, host-to-device copy included): the quick
preset's AligNet student (ViT mu/8, depth 1, 32-d triplet head) with its distillation
loss at the case's image size, or an MLP encoder for feature triplets. A ratio below 1
means the step waits for its input; the goal for the student stages is at least 5.

    python benchmarks/pipeline.py               # a few minutes on 2 cores
    python benchmarks/pipeline.py --scale 4     # longer runs, steadier numbers
    python benchmarks/pipeline.py --run runs/alignet   # a finished quick run's triplets

Last figures (2 cores, load average 22 to 27 from other jobs, ``--scale 0.5`` and
``0.25``; ratio = pipeline / step, threads 1 | 2): AligNet stored triplets 7.2 | 45.6
(1515 | 18251 triplets/s), the same before batched reads 0.71 | 0.42 (229 | 131);
stored quadrilaterals in memory 261 | 153, from the store 26.5 | 28.3; worlds sampled on
the fly: quadrilaterals 64px 5.4 | 3.5, geoclidean 64px 0.77 | 1.2, hierarchy 32px
0.13 | 0.17 (its renderer, 190 triplets/s, bounds it). Under such load the rates swing
by 2x or more between rows; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import tempfile
import time

import grain
import jax
import numpy as np

from alignjax.config import TrainConfig
from alignjax.data import observers, pipeline, tfds_builders
from alignjax.data.sources import ArrayImages
from alignjax.data.triplet_set import TripletSet
from alignjax.methods import alignet_distillation
from alignjax.methods.alignet_config import AligNetConfig
from alignjax.methods.alignet_triplets import TRIPLETS_NAME
from alignjax.models import encoders
from alignjax.training import Trainer

BATCH_SIZE = 64
# Triplets per call of a world's vectorised sampler, as the experiments draw them.
EXAMPLES_PER_CALL = 16
STEPS_TIMED = 20

# (row name, module, class, constructor arguments, triplets per run at --scale 1).
WORLDS = [
    ("gaussian_mixture", "gaussian_mixture", "GaussianMixtureWorld", {}, 8192),
    ("quadrilaterals 64px", "quadrilaterals", "QuadrilateralWorld", {}, 640),
    ("hierarchy 32px", "hierarchy", "HierarchyWorld", {}, 640),
    ("geoclidean 64px", "geoclidean", "GeoclideanWorld", {}, 640),
]


def measure(stream, num_triplets: int) -> tuple[float, int, dict[str, np.ndarray]]:
    """Seconds and triplets after the first batch, every batch on device; the first batch."""
    iterator = iter(stream)
    first = next(iterator)
    jax.block_until_ready(jax.device_put(first))
    triplets = 0
    start = time.perf_counter()
    for batch in iterator:
        jax.block_until_ready(jax.device_put(batch))
        triplets += len(next(iter(batch.values())))
        if triplets >= num_triplets:
            break
    return time.perf_counter() - start, triplets, first


class Consumers:
    """The train step consuming each batch shape, compiled once and timed on demand."""

    def __init__(self):
        self._trainers = {}
        config = AligNetConfig()
        self._student = config.student
        self._loss = alignet_distillation.distillation_loss(
            config.distillation, teacher_temperature=1.0, input_range=config.input_range
        )
        self._train = TrainConfig(num_steps=10**6, learning_rate=1e-3, warmup_steps=10)

    def rate(self, inputs: np.ndarray) -> float:
        """Triplets/s of the student's train step on ``inputs [B, 3, ...]``."""
        key = (inputs.shape, inputs.dtype.str)
        batch = {
            "images": inputs,
            "similarities": np.random.default_rng(0).normal(size=(len(inputs), 3)),
        }
        batch["similarities"] = batch["similarities"].astype(np.float32)
        if key not in self._trainers:
            item = inputs.shape[2:]
            encoder = (
                encoders.build_encoder(self._student, item)
                if len(item) == 3
                else encoders.build_encoder(encoders.EncoderConfig(kind="mlp", embed_dim=32), item)
            )
            trainer = Trainer(encoder, self._loss, self._train)
            jax.block_until_ready(trainer.train_step(batch))  # compiles
            self._trainers[key] = trainer
        trainer = self._trainers[key]
        start = time.perf_counter()
        for _ in range(STEPS_TIMED):
            metrics = trainer.train_step(batch)
        jax.block_until_ready(metrics)
        return STEPS_TIMED * len(inputs) / (time.perf_counter() - start)


def stored_quadrilaterals(num_triplets: int, data_dir: str):
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


def alignet_triplets(run: str | None, data_dir: str):
    """AligNet's stored triplets and the pool they index: a finished run's, or made here."""
    if run is not None:
        from alignjax import runner
        from alignjax.methods.alignet import image_source

        config = runner.get_experiment("alignet").config("quick")
        pool = image_source(config, pathlib.Path(run)).splits["pool"]
        triplets_dir = pathlib.Path(run) / config.variants[0] / "tfds"
        return tfds_builders.data_source(TRIPLETS_NAME, triplets_dir, "train"), pool
    from alignjax.data.hierarchy import HierarchyWorld

    rng = np.random.default_rng(0)
    config = AligNetConfig()
    images = HierarchyWorld().sample(rng, config.data.pool_size)["inputs"]
    pool = ArrayImages({"image": np.round(images * 255).astype(np.uint8)})
    n = config.sampling.num_triplets
    indices = observers.random_triplets(rng, n, len(pool))
    triplets = TripletSet(
        indices,
        similarities=rng.normal(size=(n, 3)).astype(np.float32),
        levels=rng.integers(0, 3, n),
        level_names=("within", "border", "between"),
        n_items=len(pool),
    )
    tfds_builders.write_triplet_set({"train": triplets}, name=TRIPLETS_NAME, data_dir=data_dir)
    return tfds_builders.data_source(TRIPLETS_NAME, data_dir, "train"), pool


def one_example_at_a_time(triplets, pool, *, threads: int, **common):
    """The stream before batched reads: each example read, joined and converted alone."""

    def join(record):
        example = {key: np.asarray(value) for key, value in record.items()}
        image = np.stack([pool[int(i)]["image"] for i in example["indices"]])
        example["images"] = image.astype(np.float32) / np.float32(255)
        return example

    ds = grain.MapDataset.source(triplets).seed(common["seed"]).shuffle().repeat(None).map(join)
    options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * BATCH_SIZE)
    return ds.to_iter_dataset(options).batch(BATCH_SIZE, drop_remainder=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies the number of triplets per run"
    )
    parser.add_argument(
        "--run", default=None, help="a finished quick run's directory: its AligNet triplets"
    )
    parser.add_argument("--only", default="", help="only the cases whose name holds this text")
    args = parser.parse_args()
    common = dict(batch_size=BATCH_SIZE, seed=0, process_index=0, process_count=1)
    with tempfile.TemporaryDirectory() as data_dir:
        cases = stored_cases(args, data_dir, common)
        cases += world_cases(args, common)
        cases = [case for case in cases if args.only in case[0]]
        consumers = Consumers()
        print(f"batch {BATCH_SIZE}, device {jax.devices()[0].platform}, jax {jax.__version__}")
        print(
            f"{'stream':<34} {'threads':>7} {'triplets/s':>11} "
            f"{'step triplets/s':>16} {'ratio':>7}",
            flush=True,
        )
        for name, make, num, key in cases:
            for threads in (1, 2):
                stream = make(threads)
                if key is None:
                    seconds, timed, _ = measure(stream, num)
                    print(f"{name:<34} {threads:>7} {timed / seconds:11.0f} {'-':>16} {'-':>7}")
                    continue
                # The step is timed just before and just after the stream; their mean.
                first = next(iter(make(threads)))
                before = consumers.rate(first[key])
                seconds, timed, _ = measure(stream, num)
                step = (before + consumers.rate(first[key])) / 2
                rate = timed / seconds
                print(
                    f"{name:<34} {threads:>7} {rate:11.0f} {step:16.0f} {rate / step:7.2f}",
                    flush=True,
                )
    missing = [name for name, module, *_ in WORLDS if not _importable(module)]
    if missing:
        print(f"not yet in alignjax.data (skipped): {', '.join(missing)}")


def _importable(module: str) -> bool:
    try:
        importlib.import_module(f"alignjax.data.{module}")
    except ImportError:
        return False
    return True


def stored_cases(args, data_dir: str, common: dict) -> list:
    """AligNet's stored triplets (now and before), then stored quadrilaterals."""
    num = int(16384 * args.scale)
    triplets, pool = alignet_triplets(args.run, str(pathlib.Path(data_dir) / "alignet"))
    cases = [
        (
            "AligNet stored triplets",
            lambda threads: pipeline.triplet_stream(
                triplets, pool, num_threads=threads, num_epochs=None, **common
            ),
            num,
            "images",
        ),
        (
            "AligNet, before (per example)",
            lambda threads: one_example_at_a_time(triplets, pool, threads=threads, **common),
            int(1024 * args.scale),
            "images",
        ),
    ]
    stored = stored_quadrilaterals(4096, data_dir)
    if stored is not None:
        for label, budget in (("in memory", pipeline.IN_MEMORY_BYTES), ("from store", 0)):
            cases.append(
                (
                    f"stored quadrilaterals, {label}",
                    lambda threads, budget=budget: pipeline.triplet_stream(
                        *stored,
                        num_threads=threads,
                        num_epochs=None,
                        in_memory_bytes=budget,
                        **common,
                    ),
                    num if budget else num // 8,
                    "images",
                )
            )
    return cases


def world_cases(args, common: dict) -> list:
    """Every synthetic world present (triplets sampled on the fly), and an observer."""
    cases = []
    for name, module, cls, kwargs, n in WORLDS:
        if not _importable(module):
            continue
        world = getattr(importlib.import_module(f"alignjax.data.{module}"), cls)(**kwargs)
        num = int(n * args.scale) // EXAMPLES_PER_CALL * EXAMPLES_PER_CALL
        make = lambda threads, w=world, num=num: pipeline.example_stream(  # noqa: E731
            lambda rng: w.sample_triplets(rng, EXAMPLES_PER_CALL),
            num_examples=num + 2 * BATCH_SIZE,
            num_threads=threads,
            examples_per_call=EXAMPLES_PER_CALL,
            **common,
        )
        cases.append((name, make, num, "inputs"))
    similarity = np.random.default_rng(0).normal(size=(1854, 16))
    observer = observers.LuceObserver(similarity @ similarity.T / 4)
    num = int(4096 * args.scale)
    cases.append(
        (
            "observer (1854 items)",
            lambda threads: pipeline.example_stream(
                observer.sample_triplet,
                num_examples=num + 2 * BATCH_SIZE,
                num_threads=threads,
                **common,
            ),
            num,
            None,
        )
    )
    return cases


if __name__ == "__main__":
    main()
