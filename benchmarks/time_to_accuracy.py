"""Time to accuracy of AligNet's student distillation: sampled triplets against all triplets.

The student of the ``alignet`` chain is distilled twice from the same base student and
surrogate teacher, through :func:`alignjax.methods.alignet_distillation.distill_student`:
on the stored sampled triplets (``distillation.triplets="sampled"``, the paper's
recipe: a batch of ``B`` triplets is ``3B`` images and ``B`` comparisons) and on every
triplet of batches of as many pool images (``"all"``: ``C(3B, 3)`` comparisons). Every
``--eval-every`` steps the student's odd-one-out accuracy on the Levels triplets of the
simulated setting (coarse, boundary, fine) is measured; the evaluation's own time is
left out of the wall-clock axis. The target is the highest coarse accuracy both modes
reach (or ``--target``); each mode's time to accuracy is the wall time of its first
evaluation at or above it. Prints the curves as a table, writes them as a PNG, the
ratio of the steps to accuracy, and of the wall times less each mode's (estimated)
compilation, and ends with ``time-to-accuracy ratio (sampled / all-triplets): X``.

Last figures (quick preset, 2 shared cores at load ~24, ``--modes all sampled``): coarse
0.952 at step 150 (75.7 s) against step 600 (183.9 s); ratios: steps 4.00, without
compilation 4.25, wall 2.43 (compilation, about 35-40 s for either mode here, weighs
on the all-triplets mode's short run). With the order swapped under a falling load: 7.04
without compilation, 5.34 wall.

The teacher, base student and surrogate teacher are those of the preset's run in
``--workdir``: a finished or partial ``alignjax run alignet --workdir DIR`` is reused
(every stage resumes), otherwise they are trained there first (a few minutes for the
quick preset).

    python benchmarks/time_to_accuracy.py --workdir /tmp/at-run          # quick preset
    python benchmarks/time_to_accuracy.py --preset tiny --steps 200 --eval-every 20
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import shutil
import time

from alignjax.evaluation.suite import Benchmark, evaluate
from alignjax.experiments import alignet as experiment
from alignjax.methods import alignet, alignet_backbones, alignet_triplets
from alignjax.methods.alignet_distillation import TRIPLET_MODES, distill_student

LEVELS = ("coarse", "boundary", "fine")


def teacher_and_student(config, workdir: pathlib.Path, variant: str):
    """The chain's stages up to the triplets (each resumed from ``workdir``)."""
    source = alignet.image_source(config, workdir)
    teacher = alignet_backbones.teacher(config, source, workdir)
    features = alignet_backbones.teacher_features(
        config, teacher, source, workdir / "teacher" / "features.npz"
    )
    base = alignet_backbones.base_student(config, source, workdir)
    surrogates, _ = alignet.surrogate_teachers(
        config, source, features, workdir / "uncertainty_distillation"
    )
    surrogate = surrogates[variant]
    pool_features = surrogate.transform.apply(features["pool"])
    triplets = alignet_triplets.make_triplets(config.sampling, pool_features, workdir / variant)
    return source, base, surrogate, pool_features, triplets["data_dir"]


def curve(config, source, base, surrogate, pool_features, data_dir, directory, mode, train):
    """``([(step, wall seconds without evaluation, {level: accuracy})], compile seconds)``
    of one mode.

    The compile seconds are estimated from the first metrics record (the trainer times
    the steps after the first, which compiles): its wall time less its steps at the
    recorded rate.
    """
    levels = Benchmark(triplets={"levels": source.triplets["evaluation"]["levels"]})
    images = source.splits["evaluation"]
    points = []
    clock = {"start": None, "evaluating": 0.0, "compile": None}

    def first_record(step, metrics):
        if clock["compile"] is None and "steps_per_second" in metrics:
            wall = time.perf_counter() - clock["start"] - clock["evaluating"]
            clock["compile"] = wall - (step - 1) / metrics["steps_per_second"]

    def evaluate_levels(model):
        begin = time.perf_counter()
        features = alignet_backbones.embed_images(model, images, config.input_range)
        metrics = evaluate(features, levels, config.evaluation)
        # points[0] is the base student; fit evaluates every eval_every steps and at the end.
        step = min(len(points) * train.eval_every, train.num_steps)
        wall = begin - clock["start"] - clock["evaluating"]
        points.append((step, wall, {k: metrics[f"odd_one_out/levels/{k}"] for k in LEVELS}))
        clock["evaluating"] += time.perf_counter() - begin
        return {}

    shutil.rmtree(directory, ignore_errors=True)
    base_accuracy = evaluate(
        alignet_backbones.embed_images(base, images, config.input_range),
        levels,
        config.evaluation,
    )
    points.append((0, 0.0, {k: base_accuracy[f"odd_one_out/levels/{k}"] for k in LEVELS}))
    clock["start"] = time.perf_counter()
    distill_student(
        base,
        source.splits["pool"],
        data_dir,
        surrogate.temperature,
        directory,
        distillation=dataclasses.replace(config.distillation, triplets=mode),
        train=train,
        input_range=config.input_range,
        seed=config.seed + 2,
        teacher_features=pool_features,
        evaluate=evaluate_levels,
        callbacks=[first_record],
    )
    return points, clock["compile"]


def first_at(points, target: float) -> tuple[int, float] | None:
    """``(step, wall seconds)`` of the first point whose coarse accuracy is at least
    ``target``."""
    for step, wall, accuracy in points:
        if accuracy["coarse"] >= target:
            return step, wall
    return None


def plot(curves, target: float, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(LEVELS), figsize=(4 * len(LEVELS), 3.4), sharey=True)
    for axis, level in zip(axes, LEVELS):
        for mode, points in curves.items():
            axis.plot(
                [p[1] for p in points], [p[2][level] for p in points], marker="o", ms=3, label=mode
            )
        if level == "coarse":
            axis.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:.3f}")
        axis.set_title(f"Levels: {level}")
        axis.set_xlabel("wall time of training (s, evaluation excluded)")
    axes[0].set_ylabel("odd-one-out accuracy")
    axes[0].legend(title="triplets")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/alignjax-time-to-accuracy")
    parser.add_argument("--preset", default="quick", choices=sorted(experiment.PRESETS))
    parser.add_argument("--variant", default="alignet", choices=("alignet", "unalignet"))
    parser.add_argument("--steps", type=int, help="steps per mode (default: the preset's)")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--target", type=float, help="coarse accuracy to reach")
    parser.add_argument("--plot", default="time_to_accuracy.png")
    parser.add_argument(
        "--modes",
        nargs=2,
        default=list(TRIPLET_MODES),
        choices=TRIPLET_MODES,
        help="the order the modes train in (swap it to see the effect of a changing load)",
    )
    args = parser.parse_args(argv)

    config = experiment.get_config(args.preset)
    workdir = pathlib.Path(args.workdir)
    source, base, surrogate, pool_features, data_dir = teacher_and_student(
        config, workdir, args.variant
    )
    train = dataclasses.replace(
        config.student_train,
        num_steps=args.steps or config.student_train.num_steps,
        eval_every=args.eval_every,
        checkpoint_every=0,
        progress_bar=False,
    )
    runs = {
        mode: curve(
            config,
            source,
            base,
            surrogate,
            pool_features,
            data_dir,
            workdir / "time_to_accuracy" / mode,
            mode,
            train,
        )
        for mode in args.modes
    }
    curves = {mode: points for mode, (points, _) in runs.items()}
    compile_seconds = {mode: seconds for mode, (_, seconds) in runs.items()}
    b = config.distillation.batch_size
    print(
        f"# {args.preset} preset, {args.variant} teacher, {train.num_steps} steps of {3 * b} "
        f"images: sampled = {b} triplets per step, all = {b * (3 * b - 1) * (3 * b - 2) // 2} "
        "triplets per step"
    )
    print(f"{'mode':8s} {'step':>5s} {'wall s':>8s} " + " ".join(f"{k:>9s}" for k in LEVELS))
    for mode, points in curves.items():
        for step, wall, accuracy in points:
            row = " ".join(f"{accuracy[k]:9.4f}" for k in LEVELS)
            print(f"{mode:8s} {step:5d} {wall:8.1f} {row}")
    target = args.target
    if target is None:
        target = min(max(p[2]["coarse"] for p in points) for points in curves.values())
    reached = {mode: first_at(points, target) for mode, points in curves.items()}
    times = {mode: None if r is None else r[1] for mode, r in reached.items()}
    for mode, points in curves.items():
        final = points[-1][2]
        print(
            f"{mode}: coarse accuracy {target:.4f} "
            + (
                "not reached"
                if reached[mode] is None
                else "at step {}, {:.1f} s".format(*reached[mode])
            )
            + "; final accuracy "
            + ", ".join(f"{k} {final[k]:.4f}" for k in LEVELS)
        )
    plot(curves, target, pathlib.Path(args.plot))
    print(f"curves: {args.plot}")
    print(
        "compile and first step (estimated, included above): "
        + ", ".join(f"{mode} {seconds:.1f} s" for mode, seconds in compile_seconds.items())
    )
    print(
        "time-to-accuracy ratio without compilation (sampled / all-triplets): "
        f"{_ratio(times, compile_seconds):.2f}"
    )
    steps = {mode: None if r is None else float(r[0]) for mode, r in reached.items()}
    print(f"steps-to-accuracy ratio (sampled / all-triplets): {_ratio(steps):.2f}")
    print(f"time-to-accuracy ratio (sampled / all-triplets): {_ratio(times):.2f}")


def _ratio(times, offsets=None) -> float:
    if None in times.values():
        return float("nan")
    offsets = offsets or {}
    sampled, all_ = (times[m] - (offsets.get(m) or 0.0) for m in ("sampled", "all"))
    return sampled / all_ if all_ > 0 else float("nan")


if __name__ == "__main__":
    main()
