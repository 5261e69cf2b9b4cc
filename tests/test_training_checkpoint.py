"""Tests of alignjax.training.checkpoint and of resuming `fit`.

Resuming must be exact: a run interrupted after 3 steps and continued from its
checkpoint by fresh objects (a model initialised differently, a new data pipeline)
ends with the same bits as a run that was never interrupted.
"""

import json
import shutil
import signal
import subprocess
import sys
import textwrap

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from alignjax.data.pipeline import example_stream
from alignjax.training import (
    Checkpointer,
    MeshConfig,
    TrainConfig,
    Trainer,
    fit,
    load_pretrained,
)

ONE_DEVICE = MeshConfig(data=1)
DATA_PARALLEL = MeshConfig(data=8)
FSDP = MeshConfig(data=2, fsdp=4)


def partitioned(axes):
    return nnx.with_partitioning(nnx.initializers.lecun_normal(), axes)


class MLP(nnx.Module):
    """A tiny model with dropout, so that its RNG state must be restored too."""

    def __init__(self, seed: int = 0):
        rngs = nnx.Rngs(seed)
        self.l1 = nnx.Linear(4, 16, kernel_init=partitioned((None, "fsdp")), rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)
        self.l2 = nnx.Linear(16, 2, kernel_init=partitioned(("fsdp", None)), rngs=rngs)

    def __call__(self, x):
        return self.l2(self.dropout(jnp.tanh(self.l1(x))))


def make_mlp(seed: int = 0) -> MLP:
    with nnx.use_eager_sharding(False):
        return MLP(seed)


def regression_loss(model, batch):
    return jnp.mean((model(batch["x"]) - batch["y"]) ** 2), {}


def make_dataset() -> grain.IterDataset:
    def sample(rng):
        x = rng.normal(size=4).astype(np.float32)
        return {"x": x, "y": np.array([x.sum(), x[0] * x[1]], np.float32)}

    return example_stream(
        sample, num_examples=10_000, batch_size=8, seed=0, num_epochs=None, num_threads=1
    )


def config(workdir, **overrides) -> TrainConfig:
    values = dict(
        num_steps=6,
        learning_rate=0.05,
        warmup_steps=2,
        decay_to_init=0.1,
        log_every=1,
        workdir=str(workdir),
        progress_bar=False,
    )
    return TrainConfig(**{**values, **overrides})


def params_of(model) -> dict:
    return jax.device_get(nnx.as_pure(nnx.state(model, nnx.Param)))


def assert_trees_equal(a, b):
    def equal(x, y):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(x, y)

    jax.tree.map(equal, a, b)


def saved_steps(workdir) -> list[int]:
    with Checkpointer(workdir / "checkpoints", read_only=True) as checkpointer:
        return checkpointer.all_steps()


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path):
    uninterrupted = fit(make_mlp(), regression_loss, make_dataset(), config(tmp_path / "a"))
    expected = params_of(uninterrupted)

    def interrupt_at_step_3(step, metrics):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    workdir = tmp_path / "b"
    previous_handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fit(
            make_mlp(),
            regression_loss,
            make_dataset(),
            config(workdir, checkpoint_every=2),
            callbacks=[interrupt_at_step_3],
        )
    assert saved_steps(workdir) == [2, 3]
    # The handlers fit installed are gone again.
    assert signal.getsignal(signal.SIGINT) is previous_handler
    # Step 2 was written in the background while step 3 ran on donated buffers.
    from_step_2 = tmp_path / "c"
    shutil.copytree(
        workdir / "checkpoints", from_step_2 / "checkpoints", ignore=shutil.ignore_patterns("3")
    )

    # Fresh objects, as in a new process: another initialisation (which the
    # checkpoint overrides, decay_to_init's anchor included) and a new pipeline.
    for resumed_dir in (workdir, from_step_2):
        resumed = fit(make_mlp(seed=1), regression_loss, make_dataset(), config(resumed_dir))
        assert_trees_equal(expected, params_of(resumed))
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A 4-step data-parallel run with checkpoints at steps 2 and 4."""
    workdir = tmp_path_factory.mktemp("saved_run")
    model = fit(
        make_mlp(),
        regression_loss,
        make_dataset(),
        config(workdir, num_steps=4, checkpoint_every=2, mesh=DATA_PARALLEL),
    )
    return workdir, params_of(model)


@pytest.mark.parametrize("mesh", [FSDP, ONE_DEVICE], ids=["fsdp", "one_device"])
def test_restore_onto_another_mesh(saved_run, mesh):
    workdir, saved_params = saved_run
    trainer = Trainer(make_mlp(seed=3), regression_loss, config(workdir, mesh=mesh))
    with Checkpointer(workdir / "checkpoints", read_only=True) as checkpointer:
        restored = checkpointer.restore(trainer.abstract_state())
    assert int(restored.step) == 4
    assert_trees_equal(saved_params, jax.device_get(restored.params))
    kernel = restored.params["l1"]["kernel"]
    assert kernel.sharding == trainer.shardings.params["l1"]["kernel"]
    assert len(kernel.sharding.device_set) == (8 if mesh == FSDP else 1)


# A failed read leaves Orbax's other in-flight reads to call back into an asyncio
# loop it has already closed; Python reports that at garbage collection.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corrupted_latest_checkpoint_falls_back_with_a_warning(saved_run, tmp_path):
    directory = tmp_path / "checkpoints"
    shutil.copytree(saved_run[0] / "checkpoints", directory)
    target = Trainer(make_mlp(), regression_loss, config(tmp_path)).abstract_state()
    with Checkpointer(directory) as checkpointer:
        at_step_2 = checkpointer.restore(target, step=2)
        params_dir = directory / "4" / "params"
        data_files = [p for p in params_dir.rglob("*") if p.parent.name == "d"]
        assert data_files
        for path in data_files:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        with pytest.warns(UserWarning, match=r"checkpoint .*4 cannot be read"):
            restored = checkpointer.restore(target)
        assert int(restored.step) == 2
        assert_trees_equal(jax.device_get(at_step_2), jax.device_get(restored))
        assert (directory / "4.corrupt").is_dir() and checkpointer.all_steps() == [2]


def test_checkpoint_of_another_model_is_an_error_not_damage(saved_run):
    class Wider(MLP):
        def __init__(self):
            super().__init__()
            self.l1 = nnx.Linear(4, 32, rngs=nnx.Rngs(0))
            self.l2 = nnx.Linear(32, 2, rngs=nnx.Rngs(0))

    with nnx.use_eager_sharding(False):
        wider = Wider()
    target = Trainer(wider, regression_loss, config(saved_run[0])).abstract_state()
    with Checkpointer(saved_run[0] / "checkpoints", read_only=True) as checkpointer:
        with pytest.raises(ValueError, match="written for another model"):
            checkpointer.restore(target)
        assert checkpointer.all_steps() == [2, 4]


def test_load_pretrained_restores_only_parameters(saved_run):
    workdir, saved_params = saved_run
    model = make_mlp(seed=5)
    rng_state = nnx.as_pure(nnx.state(model, nnx.RngState))
    assert load_pretrained(model, workdir) is model
    assert_trees_equal(saved_params, params_of(model))
    assert_trees_equal(rng_state, nnx.as_pure(nnx.state(model, nnx.RngState)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(model, workdir / "missing")


SIGTERM_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np, jax, jax.numpy as jnp
    from flax import nnx
    from alignjax.training import TrainConfig, fit

    def batches():
        rng = np.random.default_rng(0)
        while True:
            time.sleep(0.02)
            x = rng.normal(size=(8, 4)).astype(np.float32)
            yield {"x": x, "y": x[:, :2]}

    def loss(model, batch):
        return jnp.mean((model(batch["x"]) - batch["y"]) ** 2), {}

    def announce(step, metrics):
        if step == 2:
            print("training", flush=True)

    config = TrainConfig(num_steps=100_000, schedule="constant", log_every=1,
                         workdir=sys.argv[1], progress_bar=False)
    fit(nnx.Linear(4, 2, rngs=nnx.Rngs(0)), loss, batches(), config, callbacks=[announce])
    """
)


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SIGTERM_SCRIPT)
    workdir = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, str(script), str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "training", child.stderr.read()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    finally:
        child.kill()
    # The signal reached the default handler after the save: killed by SIGTERM.
    assert child.returncode == -signal.SIGTERM, child.stderr.read()
    steps = saved_steps(workdir)
    assert len(steps) == 1 and steps[0] >= 2
    saved = steps[0]

    def batches():
        x = np.ones((8, 4), np.float32)
        while True:
            yield {"x": x, "y": x[:, :2]}

    model = nnx.Linear(4, 2, rngs=nnx.Rngs(1))
    config = TrainConfig(
        num_steps=saved + 2,
        schedule="constant",
        log_every=1,
        workdir=str(workdir),
        progress_bar=False,
    )
    fit(model, lambda m, b: (jnp.mean((m(b["x"]) - b["y"]) ** 2), {}), batches(), config)
    lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines[-2:]] == [saved + 1, saved + 2]
    assert saved_steps(workdir) == [saved, saved + 2]
