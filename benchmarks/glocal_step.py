"""Speed of one gLocal optimisation step: the fit's jitted step against slower ways to write it.

The step of ``alignjax fit glocal`` on THINGS-sized inputs (1854 items, 384-d features
as all-MiniLM-L6-v2 gives, 256 triplets, a batch of 1024 of the 1854 local images): the
gLocal objective (global + local + scaled-identity penalty) of an
:class:`~alignjax.models.AffineTransform`, Adam with clipping, one device, through
:class:`alignjax.training.Trainer`. Measured in one run, interleaved:

- **this step**: the fit's loss (:func:`alignjax.methods.glocal_fit.objective`): the
  teacher similarities of the local set computed once and a batch's block gathered,
  only the batch's rows transformed (standardised once, before the fit);
- **previous step**: alignjax's step before that change
  (:func:`alignjax.losses.glocal_objective` from the batch's features): the teacher's
  ``B^2 p`` similarity product recomputed on every step;
- **naive step**: the same loss and update written as the released gLocal code
  structures it (the triplets' items selected by a one-hot ``[3B, n_items]`` matrix
  product with ``X W`` of *all* items), every operation dispatched one by one, no jit;
- the **matmul peak**: a 2048x2048 float32 ``jnp.dot``, giving each step's share of peak.

FLOPs come from XLA's cost analysis of each compiled step (the naive one's from the
same function jitted, its inputs passed as arguments so that nothing is folded into
constants): they do not depend on the machine's load, where the times do. Times are
the fastest (and the median) of ``--steps`` interleaved repetitions; "CPU ms" is the
process's CPU time a step (fastest), which a loaded machine inflates less than the
wall time (with XLA's threads it includes their waiting). Run::

    python benchmarks/glocal_step.py
    python benchmarks/glocal_step.py --dim 768 --items 5000
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from alignjax import losses
from alignjax.config import MeshConfig, TrainConfig
from alignjax.methods import glocal_fit
from alignjax.models import AffineTransform
from alignjax.training import Trainer


def flops_of(compiled) -> float:
    cost = compiled.cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost).get("flops", float("nan"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1854)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--triplets", type=int, default=256)
    parser.add_argument("--local", type=int, default=1024, help="local images per step")
    parser.add_argument(
        "--local-set", type=int, default=None, help="local images in all (default: --items)"
    )
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.normal(size=(args.items, args.dim)), jnp.float32)
    n_local = args.items if args.local_set is None else args.local_set
    local_set = jnp.asarray(rng.normal(size=(n_local, args.dim)), jnp.float32)
    local = min(args.local, n_local)
    batch = {
        "triplets": rng.integers(0, args.items, (args.triplets, 3)).astype(np.int32),
        "local": rng.choice(n_local, local, replace=False).astype(np.int32),
    }
    setting = glocal_fit.GlocalSetting(1e-3, penalty_weight=0.1, alpha=0.25, temperature=0.5)
    alpha, lam, tau = setting.alpha, setting.penalty_weight, setting.temperature

    def previous_loss(transform, batch):
        loss = losses.glocal_objective(
            transform.weights[...],
            None,
            features[batch["triplets"]],
            local_set[batch["local"]],
            alpha=alpha,
            penalty_weight=lam,
            temperature=tau,
        )
        return loss, {}

    config = TrainConfig(
        num_steps=10**6,
        learning_rate=1e-3,
        optimizer="adam",
        schedule="constant",
        clip_norm=1.0,
        mesh=MeshConfig(data=1),
        progress_bar=False,
    )
    variants = {
        "this step": glocal_fit.objective("glocal", setting, features, local_set),
        "previous step": previous_loss,
    }
    trainers, flops, compile_seconds = {}, {}, {}
    for name, loss_fn in variants.items():
        trainer = Trainer(AffineTransform(args.dim, use_bias=False), loss_fn, config)
        start = time.perf_counter()
        compiled = trainer.lower(batch).compile()
        compile_seconds[name] = time.perf_counter() - start
        flops[name] = flops_of(compiled)
        trainers[name] = trainer

    # The naive step: the released code's structure, op by op.
    one_hot = jax.nn.one_hot(batch["triplets"].reshape(-1), args.items)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    weights = 1e-3 * jnp.eye(args.dim)
    opt_state = tx.init(weights)
    h = local_set[batch["local"]]

    def naive_loss(w, features, one_hot, h):
        embedding = (one_hot @ (features @ w)).reshape(args.triplets, 3, -1)
        a, p, n = embedding[:, 0], embedding[:, 1], embedding[:, 2]
        dots = jnp.stack([(a * p).sum(1), (a * n).sum(1), (p * n).sum(1)], axis=1)
        global_loss = jnp.mean(jax.nn.logsumexp(dots, axis=1) - dots[:, 0])
        unit = h / jnp.linalg.norm(h, axis=1, keepdims=True)
        moved = h @ w
        moved = moved / jnp.linalg.norm(moved, axis=1, keepdims=True)
        off = ~np.eye(local, dtype=bool)
        teacher = jax.nn.softmax((unit @ unit.T)[off].reshape(local, -1) / tau, axis=1)
        student = jax.nn.log_softmax((moved @ moved.T)[off].reshape(local, -1) / tau, axis=1)
        local_loss = -jnp.mean(jnp.sum(teacher * student, axis=1))
        penalty = jnp.sum((w - jnp.eye(args.dim) * jnp.mean(jnp.diag(w))) ** 2)
        return (1 - alpha) * global_loss + alpha * local_loss + lam * penalty

    def naive_update(w, state, *inputs):
        loss, grads = jax.value_and_grad(naive_loss)(w, *inputs)
        updates, state = tx.update(grads, state, w)
        return loss, optax.apply_updates(w, updates), state

    inputs = (features, one_hot, h)
    compiled = jax.jit(naive_update).lower(weights, opt_state, *inputs).compile()
    flops["naive step"] = flops_of(compiled)

    def naive_step():
        nonlocal weights, opt_state
        with jax.disable_jit():
            loss, weights, opt_state = naive_update(weights, opt_state, *inputs)
        return loss

    # Every way computes one objective: check it before timing.
    model = trainers["this step"].model
    reference = float(variants["this step"](model, batch)[0])
    np.testing.assert_allclose(
        float(variants["previous step"](model, batch)[0]), reference, rtol=1e-5
    )
    np.testing.assert_allclose(float(naive_loss(model.weights[...], *inputs)), reference, rtol=1e-4)

    a = jax.random.normal(jax.random.key(0), (2048, 2048))
    dot = jax.jit(jnp.dot)
    steps = {name: (lambda t=t: t.train_step(batch)["loss"]) for name, t in trainers.items()}
    steps["matmul"] = lambda: dot(a, a)
    for fn in steps.values():  # compile / warm up
        jax.block_until_ready(fn())
    naive_step()
    seconds = {name: [] for name in (*steps, "naive step")}
    cpu = {name: [] for name in seconds}

    def timed(name, fn):
        start, start_cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        seconds[name].append(time.perf_counter() - start)
        cpu[name].append(time.process_time() - start_cpu)

    for round_ in range(args.steps):  # interleaved: every way sees the same load
        for name, fn in steps.items():
            timed(name, fn)
        if round_ % 4 == 0:
            timed("naive step", naive_step)
    best = {name: min(s) for name, s in seconds.items()}
    median = {name: float(np.median(s)) for name, s in seconds.items()}
    peak = 2 * 2048**3 / best.pop("matmul")
    median.pop("matmul")

    print(
        f"gLocal step, {args.items} items x {args.dim}-d, {args.triplets} triplets, "
        f"{local} of {n_local} local images, one device; best (median) of "
        f"{args.steps} interleaved steps ({len(seconds['naive step'])} naive)"
    )
    print(
        f"  {'':14s} {'ms':>8s} {'(median)':>9s} {'CPU ms':>8s} {'GFLOP':>7s} {'of peak':>8s} "
        f"{'x this':>7s} {'compile s':>9s}"
    )
    for name in best:
        compile_s = f"{compile_seconds[name]:9.2f}" if name in compile_seconds else ""
        print(
            f"  {name:14s} {best[name] * 1e3:8.2f} {median[name] * 1e3:9.2f} "
            f"{min(cpu[name]) * 1e3:8.2f} {flops[name] / 1e9:7.2f} "
            f"{flops[name] / best[name] / peak:8.2f} {best[name] / best['this step']:7.2f} "
            f"{compile_s}"
        )
    print(
        f"  matmul peak {peak / 1e9:.0f} GFLOP/s; this step's floor "
        f"{flops['this step'] / peak * 1e3:.2f} ms; FLOPs of the previous step / this "
        f"step: {flops['previous step'] / flops['this step']:.2f}, naive / this: "
        f"{flops['naive step'] / flops['this step']:.2f}"
    )


if __name__ == "__main__":
    main()
