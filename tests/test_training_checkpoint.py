"""Tests of alignjax.training.checkpoint and of resuming `fit`.

Resuming must be exact: a run interrupted after 3 steps and continued from its
checkpoint by fresh objects (a model initialised differently, a new data pipeline)
ends with the same bits as a run that was never interrupted. Every early stop is
an exception, and damaged checkpoints are never restored.
"""

import json
import pathlib
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
from alignjax.training.nonfinite import NonFiniteLossError
from alignjax.training.signals import TrainingInterrupted
from alignjax.training.stages import Stages

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
        progress_bar=False,
    )
    return TrainConfig(**{**values, "workdir": workdir and str(workdir), **overrides})


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


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Parameters after the 6 steps of `config`, run without interruption."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    return params_of(fit(make_mlp(), regression_loss, make_dataset(), config(workdir)))


@pytest.fixture
def signal_disposition():
    """Restores SIGINT's and SIGTERM's handlers after a test that changes them."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


# SIGINT ignored is how a job started with `&` from a non-interactive shell runs:
# the signal, if sent again after the save, would be lost.
@pytest.mark.parametrize(
    "signum, disposition",
    [(signal.SIGINT, signal.SIG_IGN), (signal.SIGTERM, signal.SIG_DFL)],
    ids=["sigint_ignored", "sigterm_default"],
)
def test_interrupted_and_resumed_run_is_bit_identical(
    tmp_path, capsys, uninterrupted, signal_disposition, signum, disposition
):
    def interrupt_at_step_3(step, metrics):
        if step == 3:
            signal.raise_signal(signum)

    workdir = tmp_path / "b"
    signal.signal(signum, disposition)
    with pytest.raises(TrainingInterrupted) as interrupted:
        fit(
            make_mlp(),
            regression_loss,
            make_dataset(),
            config(workdir, checkpoint_every=2),
            callbacks=[interrupt_at_step_3],
        )
    assert str(interrupted.value) == "interrupted at step 3/6; run the same command to resume"
    assert (interrupted.value.step, interrupted.value.num_steps) == (3, 6)
    assert interrupted.value.signal == signum
    assert saved_steps(workdir) == [2, 3]
    # The handlers fit installed are gone again.
    assert signal.getsignal(signum) == disposition
    # Step 2 was written in the background while step 3 ran on donated buffers.
    from_step_2 = tmp_path / "c"
    shutil.copytree(
        workdir / "checkpoints", from_step_2 / "checkpoints", ignore=shutil.ignore_patterns("3")
    )

    # Fresh objects, as in a new process: another initialisation (which the
    # checkpoint overrides, decay_to_init's anchor included) and a new pipeline.
    capsys.readouterr()
    for resumed_dir, step in ((workdir, 3), (from_step_2, 2)):
        resumed = fit(make_mlp(seed=1), regression_loss, make_dataset(), config(resumed_dir))
        assert_trees_equal(uninterrupted, params_of(resumed))
        message = f"resuming from step {step} of 6 ({resumed_dir / 'checkpoints'})\n"
        assert capsys.readouterr().err == message
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6]


def test_running_out_of_batches_is_an_error_and_keeps_a_checkpoint(tmp_path):
    batches = [next(iter(make_dataset())) for _ in range(4)]
    model = make_mlp()
    with pytest.raises(
        ValueError, match=r"batches ran out after 4 of 6 steps; the checkpoint of step 4 is kept"
    ):
        fit(model, regression_loss, batches, config(tmp_path, checkpoint_every=3))
    assert saved_steps(tmp_path) == [3, 4]
    target = nnx.as_pure(nnx.state(make_mlp(seed=1), nnx.Param))
    with Checkpointer(tmp_path / "checkpoints", read_only=True) as checkpointer:
        assert_trees_equal(params_of(model), jax.device_get(checkpointer.restore_params(target)))


def flagged_batches(n: int, bad_step: int):
    """Regression batches with a loss weight that is NaN at (1-based) ``bad_step``."""
    rng = np.random.default_rng(0)
    for step in range(1, n + 1):
        x = rng.normal(size=(8, 4)).astype(np.float32)
        weight = np.full(8, np.nan if step == bad_step else 1.0, np.float32)
        yield {"x": x, "y": x[:, :2], "weight": weight}


def weighted_loss(model, batch):
    error = (model(batch["x"]) - batch["y"]) ** 2
    return jnp.mean(error * batch["weight"][:, None]), {}


def reject_constant(name):
    raise ValueError(f"{name} in metrics.jsonl")


# log_every=2 finds the NaN when step 8's metrics are fetched, log_every=5 before
# the checkpoint of step 9; both must name step 7 and keep the checkpoint of step 6.
@pytest.mark.parametrize("log_every", [2, 5])
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, log_every):
    with pytest.raises(NonFiniteLossError) as error:
        fit(
            make_mlp(),
            weighted_loss,
            flagged_batches(10, bad_step=7),
            config(tmp_path, num_steps=10, checkpoint_every=3, log_every=log_every),
        )
    assert str(error.value) == (
        "the loss became nan at step 7 of 10; the last good checkpoint (step 6) is kept; "
        "lower the learning rate or check the inputs"
    )
    assert (error.value.step, error.value.checkpoint_step) == (7, 6)
    assert saved_steps(tmp_path) == [3, 6]
    target = nnx.as_pure(nnx.state(make_mlp(), nnx.Param))
    with Checkpointer(tmp_path / "checkpoints", read_only=True) as checkpointer:
        params = jax.device_get(checkpointer.restore_params(target))
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))
    # Strict JSON: a NaN loss is recorded as null.
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line, parse_constant=reject_constant) for line in lines]
    if log_every == 2:
        assert records[-1]["step"] == 8 and records[-1]["loss"] is None


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
        with pytest.warns(
            UserWarning, match=r"checkpoint step 4 cannot be read .*; falling back to step 2"
        ):
            restored = checkpointer.restore(target)
        assert int(restored.step) == 2
        assert_trees_equal(jax.device_get(at_step_2), jax.device_get(restored))
        assert (directory / "4.corrupt").is_dir() and checkpointer.all_steps() == [2]


class Wide(nnx.Module):
    """A model with a kernel large enough for Orbax to store it outside the b-tree
    nodes, whose CRC would catch a flipped byte: there, nothing does but the digest."""

    def __init__(self, seed: int = 0):
        self.l1 = nnx.Linear(4, 8192, rngs=nnx.Rngs(seed))
        self.l2 = nnx.Linear(8192, 2, rngs=nnx.Rngs(seed))

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """A 4-step run of `Wide` with checkpoints at steps 2 and 4."""
    workdir = tmp_path_factory.mktemp("wide_run")
    fit(
        Wide(),
        regression_loss,
        make_dataset(),
        config(workdir, num_steps=4, checkpoint_every=2, mesh=ONE_DEVICE),
    )
    return workdir / "checkpoints"


def flip_a_byte_of_the_largest_data_file(checkpoint: pathlib.Path) -> None:
    files = list((checkpoint / "params" / "ocdbt.process_0" / "d").iterdir())
    largest = max(files, key=lambda path: path.stat().st_size)
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 0x01
    largest.write_bytes(bytes(data))


def params_target(model) -> dict:
    return nnx.as_pure(nnx.state(model, nnx.Param))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_flipped_byte_fails_the_digest_and_falls_back(wide_run, tmp_path):
    directory = tmp_path / "checkpoints"
    shutil.copytree(wide_run, directory)
    target = Trainer(Wide(seed=1), regression_loss, config(tmp_path, mesh=ONE_DEVICE))
    target = target.abstract_state()
    with Checkpointer(directory, read_only=True) as checkpointer:
        at_step_2 = jax.device_get(checkpointer.restore(target, step=2))
        at_step_4 = jax.device_get(checkpointer.restore(target, step=4))
    flip_a_byte_of_the_largest_data_file(directory / "4")

    # Orbax alone reads the damaged array back without complaint (a checkpoint
    # without the digest item restores unverified, as those written before it).
    unverified = tmp_path / "unverified"
    shutil.copytree(directory, unverified, ignore=shutil.ignore_patterns("digest"))
    with Checkpointer(unverified, read_only=True) as checkpointer:
        garbage = jax.device_get(checkpointer.restore(target))
    assert int(garbage.step) == 4
    assert not np.array_equal(garbage.params["l1"]["kernel"], at_step_4.params["l1"]["kernel"])

    model = load_pretrained(Wide(seed=1), directory, step=2)
    assert_trees_equal(at_step_2.params, params_of(model))
    message = (
        r"checkpoint step 4 failed its integrity check \(digest mismatch in "
        r"params\['l1'\]\['kernel'\]\); falling back to step 2"
    )
    with pytest.warns(UserWarning, match=message):
        model = load_pretrained(Wide(seed=1), directory)
    assert_trees_equal(at_step_2.params, params_of(model))
    with pytest.raises(ValueError, match=r"step 4 .* failed its integrity check"):
        load_pretrained(Wide(seed=1), directory, step=4)

    with Checkpointer(directory) as checkpointer:
        with pytest.warns(UserWarning, match=message):
            restored = checkpointer.restore(target)
        assert int(restored.step) == 2
        assert_trees_equal(at_step_2, jax.device_get(restored))
        assert (directory / "4.corrupt").is_dir() and checkpointer.all_steps() == [2]


def test_checkpoints_without_a_digest_restore_unverified(saved_run, tmp_path, recwarn):
    directory = tmp_path / "checkpoints"
    shutil.copytree(saved_run[0] / "checkpoints", directory)
    assert (directory / "4" / "digest").is_dir()
    for step in (2, 4):
        shutil.rmtree(directory / str(step) / "digest")
    target = Trainer(make_mlp(), regression_loss, config(tmp_path)).abstract_state()
    with Checkpointer(directory) as checkpointer:
        restored = checkpointer.restore(target)
    assert int(restored.step) == 4
    assert_trees_equal(saved_run[1], jax.device_get(restored.params))
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_resume_and_finished_messages(saved_run, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(saved_run[0] / "checkpoints", workdir / "checkpoints")
    directory = workdir / "checkpoints"
    capsys.readouterr()
    fit(make_mlp(), regression_loss, make_dataset(), config(workdir, num_steps=4))
    assert capsys.readouterr().err == f"restored {directory} (step 4)\n"
    fit(make_mlp(), regression_loss, make_dataset(), config(workdir, num_steps=5))
    assert capsys.readouterr().err == f"resuming from step 4 of 5 ({directory})\n"
    with Stages(["teacher"])("teacher"):
        fit(make_mlp(), regression_loss, make_dataset(), config(workdir, num_steps=5))
    assert capsys.readouterr().err == "stage 1/1: teacher\nrestored teacher (step 5)\n"


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
    from alignjax.training.signals import TrainingInterrupted

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
    try:
        fit(nnx.Linear(4, 2, rngs=nnx.Rngs(0)), loss, batches(), config, callbacks=[announce])
    except TrainingInterrupted as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(128 + interrupted.signal)
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
    stderr = child.stderr.read()
    assert child.returncode == 128 + signal.SIGTERM, stderr
    steps = saved_steps(workdir)
    assert len(steps) == 1 and steps[0] >= 2
    saved = steps[0]
    assert f"interrupted at step {saved}/100000; run the same command to resume" in stderr

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
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines[-2:]] == [saved + 1, saved + 2]
    assert saved_steps(workdir) == [saved, saved + 2]


@jax.custom_vjp
def nan_gradient_where(x, flag):
    """``x`` itself, with a NaN gradient where ``flag`` is nonzero."""
    return x


def _nan_gradient_fwd(x, flag):
    return x, flag


def _nan_gradient_bwd(flag, g):
    return jnp.where(flag.mean() > 0, jnp.nan, g), jnp.zeros_like(flag)


nan_gradient_where.defvjp(_nan_gradient_fwd, _nan_gradient_bwd)


def gradient_flagged_batches(n: int, bad_step: int):
    """Regression batches whose loss has a NaN gradient (not value) at ``bad_step``."""
    rng = np.random.default_rng(0)
    for step in range(1, n + 1):
        x = rng.normal(size=(8, 4)).astype(np.float32)
        flag = np.full(8, float(step == bad_step), np.float32)
        yield {"x": x, "y": x[:, :2], "flag": flag}


def nan_gradient_loss(model, batch):
    return jnp.mean((nan_gradient_where(model(batch["x"]), batch["flag"]) - batch["y"]) ** 2), {}


def test_a_nan_gradient_of_a_step_without_a_gradient_norm_is_caught(tmp_path):
    # Step 4 logs nothing (log_every=5) and saves nothing (checkpoint_every=3):
    # its NaN gradient turns the parameters, and so step 5's loss, into NaN.
    with pytest.raises(NonFiniteLossError) as error:
        fit(
            make_mlp(),
            nan_gradient_loss,
            gradient_flagged_batches(10, bad_step=4),
            config(tmp_path, num_steps=10, checkpoint_every=3, log_every=5),
        )
    assert (error.value.step, error.value.checkpoint_step) == (5, 3)
    assert str(error.value).startswith("the loss became nan at step 5 of 10")
    assert saved_steps(tmp_path) == [3]


@jax.custom_vjp
def zero_with_nan_gradient_where(x, flag):
    """0 whatever ``x`` is (NaN included), with a NaN gradient where ``flag`` is nonzero."""
    return jnp.zeros((), jnp.float32)


zero_with_nan_gradient_where.defvjp(
    lambda x, flag: (jnp.zeros((), jnp.float32), (x, flag)),
    lambda saved, g: (
        jnp.where(saved[1].mean() > 0, jnp.nan, g) * jnp.ones_like(saved[0]),
        jnp.zeros_like(saved[1]),
    ),
)


class WithUnseenParameter(nnx.Module):
    """An MLP and a parameter whose value the loss never shows."""

    def __init__(self):
        self.mlp = make_mlp()
        self.unseen = nnx.Param(jnp.ones(()))


def unseen_nan_gradient_loss(model, batch):
    loss, _ = regression_loss(model.mlp, batch)
    return loss + zero_with_nan_gradient_where(model.unseen[...], batch["flag"]), {}


# Without clipping Adam turns only the unseen parameter into NaN: every loss stays
# finite, and step 2's gradient norm is never computed (log_every=3), so only
# the state check before the checkpoint of step 4, or before fit returns, finds it.
@pytest.mark.parametrize("workdir, step", [(False, 6), (True, 4)], ids=["no_workdir", "workdir"])
def test_a_nan_the_loss_never_shows_is_caught_in_the_state(tmp_path, workdir, step):
    model = WithUnseenParameter()
    before = params_of(model)
    checkpoints = dict(checkpoint_every=4) if workdir else {}
    with pytest.raises(NonFiniteLossError) as error:
        fit(
            model,
            unseen_nan_gradient_loss,
            gradient_flagged_batches(6, bad_step=2),
            config(
                tmp_path if workdir else None,
                num_steps=6,
                log_every=3,
                clip_norm=None,
                **checkpoints,
            ),
        )
    assert str(error.value).startswith(
        f"the train state became non-finite at step {step} of 6; no checkpoint was written"
    )
    assert_trees_equal(before, params_of(model))  # the model is left as it was
