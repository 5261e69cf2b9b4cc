"""Speed of one gLocal optimisation step: the jitted trainer step against a naive one.

The step of ``alignjax fit glocal`` on THINGS-sized inputs (1854 items, 384-d features
as all-MiniLM-L6-v2 gives, 256 triplets, 1024 local images): the gLocal objective
(:func:`alignjax.losses.glocal_objective`, global + local + scaled-identity penalty)
of an :class:`~alignjax.models.AffineTransform`, Adam with clipping, one device, through
:class:`alignjax.training.Trainer`. Measured in one run:

- the **trainer step** (one jitted, donated XLA program: gather, both losses, their
  gradients, clipping and Adam);
- a **naive step**: the same loss and update, written as the released gLocal code
  structures it (the triplets' items selected by a one-hot ``[3B, n_items]`` matrix
  product with ``X W`` of *all* items, every operation dispatched one by one, no jit);
- the **matmul floor**: the step's FLOPs (XLA's ``cost_analysis``) at this machine's
  float32 matmul rate (a 2048x2048 ``jnp.dot``), giving the step's share of peak.

Times are the fastest of ``--steps`` repetitions (slower ones measure other work on a
shared machine). Run::

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
from alignjax.models import AffineTransform
from alignjax.training import Trainer


def best_seconds(fn, steps: int) -> float:
    fn()  # compile / warm up
    best = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops_per_second(n: int = 2048) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n))
    dot = jax.jit(jnp.dot)
    return 2 * n**3 / best_seconds(lambda: dot(a, a), 10)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1854)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--triplets", type=int, default=256)
    parser.add_argument("--local", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.normal(size=(args.items, args.dim)), jnp.float32)
    local = features[: min(args.local, args.items)]
    batch = {
        "triplets": rng.integers(0, args.items, (args.triplets, 3)).astype(np.int32),
        "local": np.arange(len(local), dtype=np.int32),
    }
    setting = dict(alpha=0.25, penalty_weight=0.1, temperature=0.5, penalty="scaled_identity")

    def loss_fn(transform, batch):
        loss = losses.glocal_objective(
            transform.weights[...],
            None,
            features[batch["triplets"]],
            local[batch["local"]],
            **setting,
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
    trainer = Trainer(AffineTransform(args.dim, use_bias=False), loss_fn, config)
    compiled = trainer.lower(batch).compile()
    flops = compiled.cost_analysis()
    flops = (flops[0] if isinstance(flops, list) else flops).get("flops", float("nan"))
    step = best_seconds(lambda: trainer.train_step(batch)["loss"], args.steps)

    # The naive step: the released code's structure, op by op.
    one_hot = jax.nn.one_hot(batch["triplets"].reshape(-1), args.items)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    weights = 1e-3 * jnp.eye(args.dim)
    opt_state = tx.init(weights)

    def naive_loss(w):
        embedding = (one_hot @ (features @ w)).reshape(args.triplets, 3, -1)
        a, p, n = embedding[:, 0], embedding[:, 1], embedding[:, 2]
        dots = jnp.stack([(a * p).sum(1), (a * n).sum(1), (p * n).sum(1)], axis=1)
        global_loss = jnp.mean(jax.nn.logsumexp(dots, axis=1) - dots[:, 0])
        unit = local / jnp.linalg.norm(local, axis=1, keepdims=True)
        moved = local @ w
        moved = moved / jnp.linalg.norm(moved, axis=1, keepdims=True)
        off = ~jnp.eye(len(local), dtype=bool)
        tau = setting["temperature"]
        teacher = jax.nn.softmax((unit @ unit.T)[off].reshape(len(local), -1) / tau, axis=1)
        student = jax.nn.log_softmax((moved @ moved.T)[off].reshape(len(local), -1) / tau, axis=1)
        local_loss = -jnp.mean(jnp.sum(teacher * student, axis=1))
        penalty = jnp.sum((w - jnp.eye(args.dim) * jnp.mean(jnp.diag(w))) ** 2)
        alpha = setting["alpha"]
        return (1 - alpha) * global_loss + alpha * local_loss + setting["penalty_weight"] * penalty

    def naive_step():
        nonlocal weights, opt_state
        with jax.disable_jit():
            loss, grads = jax.value_and_grad(naive_loss)(weights)
            updates, opt_state = tx.update(grads, opt_state, weights)
            weights = optax.apply_updates(weights, updates)
        return loss

    # The two steps compute one objective: check it before timing.
    model = trainer.model
    reference = float(loss_fn(model, batch)[0])
    np.testing.assert_allclose(float(naive_loss(model.weights[...])), reference, rtol=1e-4)
    naive = best_seconds(naive_step, max(3, args.steps // 4))
    peak = matmul_flops_per_second()
    print(
        f"gLocal step, {args.items} items x {args.dim}-d, {args.triplets} triplets, "
        f"{args.local} local images, one device"
    )
    print(f"  trainer step (jitted):   {step * 1e3:8.2f} ms   ({1 / step:7.1f} steps/s)")
    print(f"  naive step (op by op):   {naive * 1e3:8.2f} ms   ({naive / step:7.1f}x slower)")
    print(
        f"  matmul floor:            {flops / peak * 1e3:8.2f} ms   "
        f"({flops / 1e9:.2f} GFLOP at {peak / 1e9:.0f} GFLOP/s; step at "
        f"{flops / step / peak:.2f} of peak)"
    )


if __name__ == "__main__":
    main()
