"""Tests of alignjax.training.trainer: the sharded train step, fit, metrics."""

import glob
import io
import json
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from alignjax.losses.triplet import (
    odd_one_out_cross_entropy,
    triplet_accuracy,
    triplet_similarities,
)
from alignjax.models.vit import ViT
from alignjax.training import MeshConfig, TrainConfig, Trainer, fit, progress

ONE_DEVICE = MeshConfig(data=1)
DATA_PARALLEL = MeshConfig(data=8)
FSDP = MeshConfig(data=2, fsdp=4)


def partitioned(axes):
    return nnx.with_partitioning(nnx.initializers.lecun_normal(), axes)


class MLP(nnx.Module):
    def __init__(self, seed: int = 0):
        rngs = nnx.Rngs(seed)
        self.l1 = nnx.Linear(4, 32, kernel_init=partitioned((None, "fsdp")), rngs=rngs)
        self.l2 = nnx.Linear(32, 4, kernel_init=partitioned(("fsdp", None)), rngs=rngs)

    def __call__(self, x):
        return self.l2(jax.nn.gelu(self.l1(x)))


def make_mlp(seed: int = 0) -> MLP:
    with nnx.use_eager_sharding(False):
        return MLP(seed)


def regression_loss(model, batch):
    error = model(batch["x"]) - batch["y"]
    return jnp.mean(error**2), {"mae": jnp.mean(jnp.abs(error))}


def regression_batches(n: int, batch_size: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [
        {
            "x": rng.normal(size=(batch_size, 4)).astype(np.float32),
            "y": rng.normal(size=(batch_size, 4)).astype(np.float32),
        }
        for _ in range(n)
    ]


SGD = dict(optimizer="sgd", momentum=0.9, schedule="constant", learning_rate=0.1)


def train(model, mesh, batches, **config):
    trainer = Trainer(
        model,
        regression_loss,
        TrainConfig(num_steps=len(batches), mesh=mesh, progress_bar=False, **config),
    )
    for batch in batches:
        trainer.train_step(batch)
    return trainer


@pytest.fixture(scope="module")
def mlp_runs():
    batches = regression_batches(3)
    return batches, {
        name: train(make_mlp(), mesh, batches, **SGD)
        for name, mesh in [("one", ONE_DEVICE), ("dp", DATA_PARALLEL), ("fsdp", FSDP)]
    }


@pytest.mark.parametrize("name", ["dp", "fsdp"])
def test_sharded_steps_match_one_device(mlp_runs, name):
    _, runs = mlp_runs
    expected = jax.device_get(runs["one"].state.params)
    got = jax.device_get(runs[name].state.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), expected, got)
    # The training moved the parameters: equality is not trivially from init.
    initial = nnx.as_pure(nnx.state(make_mlp(), nnx.Param))
    assert not np.allclose(initial["l1"]["kernel"], got["l1"]["kernel"])


def test_fsdp_state_stays_sharded_as_annotated(mlp_runs):
    _, runs = mlp_runs
    state = runs["fsdp"].state
    kernel = state.params["l1"]["kernel"]
    assert kernel.sharding.spec == jax.P(None, "fsdp")
    assert {s.data.shape for s in kernel.addressable_shards} == {(4, 8)}
    momentum = state.opt_state[1].trace["l2"]["kernel"]
    assert momentum.sharding.spec == jax.P("fsdp", None)


def _collectives(hlo: str, op: str) -> list[list[tuple[int, ...]]]:
    """Result shapes of each ``op`` instruction (all-reduce, all-gather) in ``hlo``."""
    found = []
    for line in hlo.splitlines():
        match = re.match(rf"\s*(ROOT )?%\S+ = (.*?) {op}(-start)?\(", line)
        if match:
            shapes = re.findall(r"[a-z]\w*\[([\d,]*)\]", match.group(2))
            found.append([tuple(int(d) for d in s.split(",") if d) for s in shapes])
    return found


def test_data_parallel_hlo_all_reduces_gradients_and_gathers_nothing(mlp_runs):
    batches, runs = mlp_runs
    hlo = runs["dp"].lower(batches[0]).compile().as_text()
    reduced = {shape for shapes in _collectives(hlo, "all-reduce") for shape in shapes}
    param_shapes = {x.shape for x in jax.tree.leaves(runs["dp"].state.params)}
    assert param_shapes <= reduced
    assert _collectives(hlo, "all-gather") == []


def test_fit_writes_metrics_jsonl_tensorboard_and_callbacks(tmp_path):
    batches = regression_batches(4)
    model = make_mlp()
    initial = nnx.clone(model)
    records = []
    config = TrainConfig(
        num_steps=4,
        optimizer="sgd",
        schedule="constant",
        # A learning rate of 0 is refused (a run that cannot train); 1e-30 moves no
        # float32 parameter of this size.
        learning_rate=1e-30,
        clip_norm=None,
        log_every=2,
        workdir=str(tmp_path),
        progress_bar=False,
    )
    fit(
        model,
        regression_loss,
        batches,
        config,
        evaluate=lambda m: {"mse": regression_loss(m, batches[0])[0]},
        callbacks=[lambda step, metrics: records.append((step, dict(metrics)))],
    )
    text = (tmp_path / "metrics.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 4]
    assert lines == [{"step": step, **metrics} for step, metrics in records]

    # With learning rate ~0 the model stays put, so the metrics are those of the
    # initial model, averaged over each logging interval.
    @nnx.jit
    def reference(model, batch):
        (loss, metrics), grads = nnx.value_and_grad(regression_loss, has_aux=True)(model, batch)
        return loss, metrics["mae"], optax.tree.norm(grads)

    losses, maes, grad_norms = np.array([reference(initial, b) for b in batches]).T
    for line, steps in zip(lines[:2], [slice(0, 2), slice(2, 4)]):
        assert line["loss"] == pytest.approx(np.mean(losses[steps]), rel=1e-5)
        assert line["mae"] == pytest.approx(np.mean(maes[steps]), rel=1e-5)
        # The gradient norm is computed on logging steps only: the interval's last.
        assert line["grad_norm"] == pytest.approx(grad_norms[steps.stop - 1], rel=1e-4)
        assert line["learning_rate"] == pytest.approx(1e-30)
        assert line["examples_per_second"] > 0 and line["steps_per_second"] > 0
    assert lines[2]["eval/mse"] == pytest.approx(losses[0], rel=1e-5)
    assert glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))


def reject_constant(name):
    raise ValueError(f"{name} in metrics.jsonl")


def test_metrics_jsonl_writes_non_finite_metrics_as_null(tmp_path):
    def loss_with_undefined_metric(model, batch):
        loss, _ = regression_loss(model, batch)
        return loss, {"ratio": jnp.float32(0) / jnp.float32(0), "big": jnp.float32(jnp.inf)}

    config = TrainConfig(num_steps=2, log_every=1, workdir=str(tmp_path), progress_bar=False)
    fit(make_mlp(), loss_with_undefined_metric, regression_batches(2), config)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line, parse_constant=reject_constant) for line in lines]
    assert [(r["step"], r["ratio"], r["big"]) for r in records] == [
        (1, None, None),
        (2, None, None),
    ]
    assert all(np.isfinite(r["loss"]) for r in records)


def test_trainer_copies_a_model_built_on_another_mesh_and_leaves_it_intact():
    auto = (jax.sharding.AxisType.Auto,) * 2
    with jax.set_mesh(jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=auto)):
        model = MLP()

    def params():
        return jax.device_get(nnx.as_pure(nnx.state(model, nnx.Param)))

    before = params()
    trainer = train(model, ONE_DEVICE, regression_batches(1), **SGD)
    # The step donated the trainer's buffers, not the model's.
    jax.tree.map(np.testing.assert_array_equal, before, params())
    assert trainer.state.params["l1"]["kernel"].sharding.device_set == {jax.devices()[0]}
    with pytest.raises(ValueError, match="init_params must have the structure"):
        Trainer(model, regression_loss, TrainConfig(num_steps=1), init_params={"w": jnp.ones(2)})


def test_train_step_rejects_bad_batches_and_losses():
    config = TrainConfig(num_steps=1, progress_bar=False)
    trainer = Trainer(make_mlp(), regression_loss, config)
    with pytest.raises(ValueError, match="batch size 12 .* 8 batch shards"):
        trainer.train_step(regression_batches(1, batch_size=12)[0])

    def vector_loss(model, batch):
        return model(batch["x"]).mean(0), {}

    with pytest.raises(ValueError, match="scalar loss, got shape"):
        Trainer(make_mlp(), vector_loss, config).train_step(regression_batches(1)[0])

    def vector_metric(model, batch):
        return model(batch["x"]).mean(), {"m": batch["x"]}

    with pytest.raises(ValueError, match="metric 'm' must be a scalar"):
        Trainer(make_mlp(), vector_metric, config).train_step(regression_batches(1)[0])


def triplet_loss(model, batch):
    images = batch["images"]
    embeddings = model(images.reshape(-1, *images.shape[2:]))
    similarities = triplet_similarities(embeddings.reshape(images.shape[0], 3, -1))
    return (
        odd_one_out_cross_entropy(similarities).mean(),
        {"accuracy": triplet_accuracy(similarities).mean()},
    )


def test_vit_fsdp_matches_one_device():
    rng = np.random.default_rng(0)
    batches = [{"images": rng.normal(size=(8, 3, 16, 16, 3)).astype(np.float32)} for _ in range(2)]
    params = {}
    for name, mesh in [("one", ONE_DEVICE), ("fsdp", FSDP)]:
        model = ViT("mu/8", image_size=16, rngs=nnx.Rngs(0))
        config = TrainConfig(num_steps=2, mesh=mesh, progress_bar=False, **SGD)
        trainer = Trainer(model, triplet_loss, config)
        for batch in batches:
            trainer.train_step(batch)
        params[name] = jax.device_get(trainer.state.params)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        params["one"],
        params["fsdp"],
    )


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_is_live_on_a_terminal_and_throttled_in_a_log(monkeypatch):
    log, terminal = io.StringIO(), _Terminal()
    monkeypatch.setattr(sys, "stderr", log)
    bar = progress.progress_bar(100, initial=40)
    assert bar.mininterval == progress.LOG_INTERVAL_SECONDS and bar.n == 40
    bar.close()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = progress.progress_bar(100)
    assert bar.mininterval == progress.LIVE_INTERVAL_SECONDS
    bar.close()
    assert "40/100" in log.getvalue() and "0/100" in terminal.getvalue()
    assert progress.progress_bar(100, enabled=False).disable


def test_fit_draws_its_bar_in_a_log_at_the_start_and_the_end(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    config = TrainConfig(num_steps=60, mesh=ONE_DEVICE, progress_bar=True, **SGD)
    fit(make_mlp(), regression_loss, regression_batches(60), config)
    # (A compile longer than the interval redraws the first draw, which says so.)
    draws = [d for d in log.getvalue().split("\r") if "/60" in d and progress.COMPILING not in d]
    assert len(draws) <= 3 and "60/60" in draws[-1]


def test_the_gradient_norm_is_computed_on_logging_steps_only():
    batch = regression_batches(1)[0]
    config = TrainConfig(num_steps=2, mesh=ONE_DEVICE, progress_bar=False, **SGD)
    trainer = Trainer(make_mlp(), regression_loss, config)
    quiet = trainer.train_step(batch, logging=False)
    assert sorted(quiet) == ["learning_rate", "loss", "mae"]
    model = trainer.model
    grads = nnx.grad(lambda m: regression_loss(m, batch)[0])(model)
    logged = trainer.train_step(batch)
    assert float(logged["grad_norm"]) == pytest.approx(float(optax.tree.norm(grads)), rel=1e-5)
    # One compiled step serves both: the norm sits in a conditional branch.
    hlo = trainer.lower(batch).compile().as_text()
    assert "conditional" in hlo


def test_a_placed_batch_trains_like_a_host_batch():
    batches = regression_batches(2)
    host = train(make_mlp(), DATA_PARALLEL, batches, **SGD)
    config = TrainConfig(num_steps=2, mesh=DATA_PARALLEL, progress_bar=False, **SGD)
    trainer = Trainer(make_mlp(), regression_loss, config)
    for batch in batches:
        trainer.train_step(trainer.place(batch))
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.device_get(host.state.params),
        jax.device_get(trainer.state.params),
    )


def test_fit_draws_exactly_num_steps_batches():
    drawn = []

    def counted(batches):
        for batch in batches:
            drawn.append(batch)
            yield batch

    config = TrainConfig(num_steps=3, log_every=2, progress_bar=False, **SGD)
    fit(make_mlp(), regression_loss, counted(regression_batches(5)), config)
    # The prefetch stops at the last step: a shared iterator loses no batch.
    assert len(drawn) == 3


def vit_triplet_batches(n: int, size: int = 16):
    rng = np.random.default_rng(0)
    return [{"images": rng.normal(size=(8, 3, size, size, 3)).astype(np.float32)} for _ in range(n)]


def test_bfloat16_compute_trains_like_float32_with_float32_state():
    batches = vit_triplet_batches(4)
    config = TrainConfig(
        num_steps=4, mesh=ONE_DEVICE, learning_rate=1e-3, progress_bar=False, log_every=1
    )
    losses, trainers = {}, {}
    for dtype in (jnp.float32, jnp.bfloat16):
        model = ViT("mu/8", image_size=16, head_dim=8, dtype=dtype, rngs=nnx.Rngs(0))
        trainer = Trainer(model, triplet_loss, config)
        losses[dtype] = [float(trainer.train_step(b)["loss"]) for b in batches]
        trainers[dtype] = trainer
    bf16 = trainers[jnp.bfloat16]
    # The matmuls run in bfloat16, the parameters, gradients' updates and Adam's
    # moments stay float32.
    assert re.search(
        r"bf16\[[\d,]+\]\{[\d,]+\} (dot|convolution)\(", bf16.lower(batches[0]).as_text("hlo")
    )
    for leaf in jax.tree.leaves((bf16.state.params, bf16.state.opt_state)):
        assert leaf.dtype in (jnp.float32, jnp.int32)
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); through
    # the patch embedding, the block and the head the embeddings differ by 0.65%
    # of their scale, and the four losses (about 1.4 each) by 1.3e-3 to 3.4e-3
    # (measured). 1e-2 leaves room for other CPUs and XLA versions yet is far
    # below the 0.08 to 0.23 between consecutive steps' losses.
    np.testing.assert_allclose(losses[jnp.bfloat16], losses[jnp.float32], atol=1e-2)
    assert losses[jnp.bfloat16] != losses[jnp.float32]
