"""The alignet experiment (the main job) at its tiny preset: the claims' direction, the
artefacts of every stage, and a run killed during student distillation that resumes to
the result of the uninterrupted run."""

import json
import pathlib
import shutil
import signal

import numpy as np
import pytest

from alignjax import runner
from alignjax.data import tfds_builders
from alignjax.methods import alignet_backbones, alignet_distillation, alignet_triplets
from alignjax.methods.alignet_config import VARIANTS
from alignjax.models import AffineParams
from alignjax.training import TrainingInterrupted

STAGES = ("teacher_train", "student_pretrain", "student_train")
# One device: the 8 simulated devices' in-process collectives abort when a loaded
# 2-core machine stalls one of them for 40 s; sharded training is tested in the
# trainer's tests.
TINY = [f"{stage}.{key}" for stage in STAGES for key in ("mesh.data=1", "progress_bar=false")]
LEVELS = ("coarse", "boundary", "fine")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("alignet")
    return workdir, runner.run_experiment("alignet", preset="tiny", workdir=workdir, overrides=TINY)


def test_the_aligned_student_gains_most_at_the_coarse_level(run):
    _, metrics = run
    base = metrics["base"]
    gain = {
        variant: {
            level: metrics[variant][f"odd_one_out/levels/{level}"]
            - base[f"odd_one_out/levels/{level}"]
            for level in LEVELS
        }
        for variant in VARIANTS
    }
    assert gain["alignet"]["coarse"] > 0.05
    assert gain["alignet"]["coarse"] > gain["unalignet"]["coarse"] + 0.05
    assert gain["alignet"]["coarse"] > max(gain["alignet"]["boundary"], gain["alignet"]["fine"])
    # The surrogate teacher: UD moves the teacher's choices toward the humans'.
    ud = metrics["uncertainty_distillation"]
    assert ud["aligned/test_kl"] < 0.5 * ud["untransformed/test_kl"]
    coarse = "odd_one_out/levels/coarse"
    assert metrics["teacher_ud"][coarse] > metrics["teacher"][coarse] + 0.1
    # Downstream accuracy on new categories is kept (16 categories, 80 test images: one
    # image is 1.25 points).
    assert metrics["alignet"]["few_shot/logistic/3"] > 0.8
    assert metrics["alignet"]["few_shot/logistic/3"] >= base["few_shot/logistic/3"] - 0.1
    for name in ("base", "alignet", "unalignet", "teacher", "teacher_ud"):
        for level in LEVELS:
            assert 0.0 <= metrics[name][f"odd_one_out/levels/{level}"] <= 1.0
    assert base["noise_ceiling/levels/coarse"] > base[coarse]
    # The AligNet student agrees with its teacher on triplets it never saw (dot products,
    # as it was distilled) more than the base student does. (The untransformed teacher's
    # choices are close to uniform at its temperature: they teach little in 200 steps.)
    agreement = "dot/odd_one_out/alignet_teacher"
    assert metrics["alignet"][agreement] > base[agreement] + 0.03


def test_every_stage_leaves_its_artefacts(run):
    workdir, metrics = run
    assert json.loads((workdir / "metrics.json").read_text())["alignet"] == pytest.approx(
        metrics["alignet"]
    )
    for stage in ("teacher", "student_base", "alignet/student", "unalignet/student"):
        assert (workdir / stage / "checkpoints").is_dir(), stage
        assert (workdir / stage / "metrics.jsonl").read_text().count("\n") >= 2, stage
    for teacher in ("aligned", "untransformed"):
        params = AffineParams.load_npz(
            workdir / "uncertainty_distillation" / teacher / "transform.npz"
        )
        assert params.weights.shape[0] == params.weights.shape[1]
    config = runner.get_experiment("alignet").config("tiny", TINY)
    for variant in VARIANTS:
        triplets = tfds_builders.read_triplet_set(
            alignet_triplets.TRIPLETS_NAME, workdir / variant / "tfds", "train"
        )
        assert triplets.indices.shape == (config.sampling.num_triplets, 3)
        # Pseudo-labels: the teacher's similarities, the odd one out last.
        assert np.all(triplets.similarities[:, 0] >= triplets.similarities[:, 1:].max(axis=1))
        # The distilled student in big_vision's layout, as the run evaluated it.
        student = alignet_backbones.load_vit(
            config.student,
            workdir / variant / "student.npz",
            (16, 16, 3),
            head_dim=config.student.embed_dim,
        )
        assert student(np.zeros((1, 16, 16, 3), np.float32)).shape == (1, 32)
    report = (workdir / "report.md").read_text()
    for row in (
        "| base student |",
        "| AligNet student |",
        "| UnAligNet student |",
        "| noise ceiling |",
    ):
        assert row in report
    for name in ("accuracy_per_level.png", "embeddings_pca.png", "distillation_curves.png"):
        assert name in report and (workdir / name).stat().st_size > 10_000


def test_killed_during_student_distillation_resumes_to_the_uninterrupted_result(
    run, tmp_path, monkeypatch
):
    done, expected = run
    workdir = tmp_path / "alignet"

    # Every stage before the AligNet student as the uninterrupted run left it (not its
    # student nor the run's metrics).
    def later(directory, names):
        if pathlib.Path(directory) == done:
            return ["metrics.json"]
        return ["student", "student.npz"] if pathlib.Path(directory).name == "alignet" else []

    shutil.copytree(done, workdir, ignore=later)
    original_fit = alignet_distillation.fit

    def fit_interrupted_once(model, loss_fn, batches, config, **kwargs):
        if (
            pathlib.Path(config.workdir) == workdir / "alignet" / "student"
            and not (workdir / "killed").exists()
        ):
            (workdir / "killed").touch()

            def interrupt(step, metrics):
                if step == config.num_steps // 2:
                    signal.raise_signal(signal.SIGINT)  # what Ctrl-C or a scheduler's SIGTERM does

            kwargs["callbacks"] = [*kwargs.get("callbacks", ()), interrupt]
        return original_fit(model, loss_fn, batches, config, **kwargs)

    monkeypatch.setattr(alignet_distillation, "fit", fit_interrupted_once)
    with pytest.raises(TrainingInterrupted, match=r"interrupted at step \d+/\d+; run the same"):
        runner.run_experiment("alignet", preset="tiny", workdir=workdir, overrides=TINY)
    assert json.loads((workdir / "run.json").read_text())["status"] == "interrupted"
    assert not (workdir / "metrics.json").exists()  # nothing partly trained is reported
    log = workdir / "alignet" / "student" / "metrics.jsonl"
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    config = runner.get_experiment("alignet").config("tiny", TINY)
    assert steps[-1] == config.student_train.num_steps // 2
    resumed = runner.run_experiment("alignet", preset="tiny", workdir=workdir, overrides=TINY)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == config.student_train.num_steps
    assert resumed["alignet"] == pytest.approx(expected["alignet"], rel=1e-6, abs=1e-9)
    # The copied stage_seconds.json is the uninterrupted run's: its times are kept, and
    # the stages this run went through again are timed apart.
    assert resumed["stage_seconds"] == expected["stage_seconds"]
    assert list(resumed["resumed_stage_seconds"]) == list(expected["stage_seconds"])
    assert "| stage | wall | CPU | rerun wall |" in (workdir / "report.md").read_text()
