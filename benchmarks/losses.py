"""Benchmark: exact batch triplet distillation over all C(B, 3) triplets.

Run: ``python benchmarks/losses.py`` (about two minutes on 2 CPU cores).

Prints, for B in {64, 256, 1024} and d = 768, the forward+backward time (gradient
w.r.t. the student) and compiled peak memory of
``alignjax.losses.batch_triplet_distillation`` against

- a naive broadcast implementation that materialises the ``[B, B, B]`` cube (O(B^3)
  memory; skipped with "OOM-risk" when its compiled footprint exceeds half of this
  machine's memory), as a ratio measured in the same run;
- the ``[B, B]`` similarity matmul ``X X^T`` alone (the floor any exact loss pays).

Then, at ``--compare-batch`` (512), the block size of the blocked scan against a scan
over single items (``[B, B]`` of work per scanned item, all ordered ``(j, k)`` masked
to ``i < j < k``, under ``jax.checkpoint``), to show why the library scans over block
triples.

Memory is ``temp + argument + output`` bytes from
``jax.jit(f).lower(...).compile().memory_analysis()``: deterministic, no sampling.
Times are the best of ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from alignjax import losses
from alignjax.losses import _divergence

DIM = 768


def naive_distillation(teacher, student, divergence="kl"):
    """All triplets by broadcasting: the ``[B, B, B]`` cube of each similarity."""
    batch = teacher.shape[0]
    t, s = teacher @ teacher.T, student @ student.T

    def cube(m):
        return m[:, :, None], m[:, None, :], m[None, :, :]

    values = _divergence.DIVERGENCES[divergence](cube(t), cube(s))
    i, j, k = np.ogrid[:batch, :batch, :batch]
    mask = (i < j) & (j < k)
    return jnp.sum(jnp.where(mask, values, 0.0)) / math.comb(batch, 3)


def per_item_scan_distillation(teacher, student, divergence="kl"):
    """A scan over the first item ``i`` with ``[B, B]`` of work per step (remat)."""
    batch = teacher.shape[0]
    t, s = teacher @ teacher.T, student @ student.T
    index = jnp.arange(batch)
    divergence_fn = _divergence.DIVERGENCES[divergence]

    @jax.checkpoint
    def row(t, s, i):
        def plane(m):
            return m[i][:, None], m[i][None, :], m

        mask = (i < index[:, None]) & (index[:, None] < index[None, :])
        return jnp.sum(jnp.where(mask, divergence_fn(plane(t), plane(s)), 0.0))

    _, sums = jax.lax.scan(lambda c, i: (c, row(t, s, i)), None, index)
    return jnp.sum(sums) / math.comb(batch, 3)


def compiled_value_and_grad(fn, teacher, student):
    grad_fn = jax.jit(jax.value_and_grad(lambda s: fn(teacher, s), argnums=0))
    return grad_fn.lower(student).compile()


def footprint(compiled) -> int:
    m = compiled.memory_analysis()
    return m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes


def best_time(compiled, *args, repeats: int) -> float:
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def embeddings(batch: int, seed: int):
    key_t, key_s = jax.random.split(jax.random.key(seed))
    # Scaled so that dot products are O(1), as after normalisation and a temperature.
    scale = 2.0 / math.sqrt(DIM)
    return (
        scale * jax.random.normal(key_t, (batch, DIM)),
        scale * jax.random.normal(key_s, (batch, DIM)),
    )


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--divergences", nargs="+", default=["kl", "js"])
    parser.add_argument("--block-sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--compare-batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    machine_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform} ({os.cpu_count()} cores, "
        f"{machine_bytes / 2**30:.0f} GiB); d = {DIM}; forward + backward w.r.t. the student; "
        f"best of {args.repeats}\n"
    )

    header = (
        f"{'B':>5} {'div':>3} {'triplets':>12} {'time s':>8} {'peak MiB':>9} "
        f"{'naive s':>8} {'naive MiB':>10} {'speedup':>8} {'mem ratio':>9} "
        f"{'matmul ms':>9} {'x matmul':>9}"
    )
    print(header)
    print("-" * len(header))
    for batch in args.batches:
        teacher, student = embeddings(batch, seed=batch)
        matmul = jax.jit(lambda x: x @ x.T).lower(student).compile()
        floor = best_time(matmul, student, repeats=max(args.repeats, 10))
        for divergence in args.divergences:
            ours = compiled_value_and_grad(
                lambda t, s, d=divergence: losses.batch_triplet_distillation(t, s, divergence=d),
                teacher,
                student,
            )
            ours_time = best_time(ours, student, repeats=args.repeats)
            ours_bytes = footprint(ours)
            naive = compiled_value_and_grad(
                lambda t, s, d=divergence: naive_distillation(t, s, d), teacher, student
            )
            naive_bytes = footprint(naive)
            if naive_bytes > machine_bytes / 2:
                naive_cells = f"{'OOM-risk':>8} {mib(naive_bytes):>10} {'-':>8} "
                naive_cells += f"{naive_bytes / ours_bytes:>8.0f}x"
            else:
                naive_time = best_time(naive, student, repeats=args.repeats)
                naive_cells = (
                    f"{naive_time:>8.3f} {mib(naive_bytes):>10} "
                    f"{naive_time / ours_time:>7.1f}x {naive_bytes / ours_bytes:>8.0f}x"
                )
            print(
                f"{batch:>5} {divergence:>3} {math.comb(batch, 3):>12,} {ours_time:>8.3f} "
                f"{mib(ours_bytes):>9} {naive_cells} {floor * 1e3:>9.3f} "
                f"{ours_time / floor:>8.0f}x",
                flush=True,
            )

    batch = args.compare_batch
    teacher, student = embeddings(batch, seed=batch)
    print(f"\nB = {batch}, kl: block size of the blocked scan vs a scan over single items")
    header = f"{'variant':>26} {'time s':>8} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    variants = [
        (
            f"block triples, b = {b}",
            lambda t, s, b=b: losses.batch_triplet_distillation(t, s, block_size=b),
        )
        for b in args.block_sizes
    ]
    variants.append(("single items ([B, B]/step)", per_item_scan_distillation))
    for name, fn in variants:
        compiled = compiled_value_and_grad(fn, teacher, student)
        print(
            f"{name:>26} {best_time(compiled, student, repeats=args.repeats):>8.3f} "
            f"{mib(footprint(compiled)):>9}",
            flush=True,
        )


if __name__ == "__main__":
    main()
