"""The alignjax command: run the papers' experiments, or align a model with your data.

    alignjax list
    alignjax run NAME [--preset quick|paper] [--workdir DIR] [--set key=value ...]
                 [--distributed [--coordinator HOST:PORT --num-processes N --process-id I]]
    alignjax eval --features F.npy --triplets T.txt [--levels L.txt] [--kernel dot|cosine]
                  [--transform glocal.npz] [--json OUT]
    alignjax fit glocal --features F --triplets T
                        [--validation-triplets V | --validation-fraction 0.1]
                        [--test-triplets X | --test-fraction 0.1] [--local-features H]
                        [--grid quick|paper] [--seed S] [--set fit.KEY=VALUE ...] --workdir DIR
    alignjax apply glocal --transform T.npz --features F --out G.npy
    alignjax fit alignet (--images DIR | --tfds NAME --tfds-data-dir DIR [--tfds-split S])
                         [--image-size H [W]] [--triplets T [--item-images MAP]]
                         [--teacher-features F | --teacher-checkpoint T.npz]
                         [--student-checkpoint S.npz] [--preset tiny|quick|paper]
                         [--set key=value ...] --workdir DIR [--restart]
    alignjax figures [--out DIR]

Every error (an unknown experiment, a bad override or config value, an unwritable or
already used work directory, a bad input file, a run that fails) is one line on stderr
with exit status 2 and no traceback; ALIGNJAX_DEBUG=1 shows the traceback. A run
stopped before its last step (Ctrl-C, SIGTERM) ends with "interrupted at step N/M; run
the same command to resume" and status 130 (SIGINT) or 143 (SIGTERM).

Listing and help import no JAX (the experiment modules import their method inside
get_config and run), so they answer at once; alignjax run names what it runs before
it imports JAX and the method.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import textwrap
from collections.abc import Sequence

from alignjax import runner
from alignjax.training.signals import TrainingInterrupted

_WIDTH = 100  # widest text line of the listing; narrower on a narrower terminal


def _experiments_text() -> str:
    """Every experiment: its summary, then its presets with what each runs and how long.

    Read from the experiment modules' docstrings and ``PRESETS``, which import no JAX.
    """
    width = max(60, min(_WIDTH, shutil.get_terminal_size((_WIDTH, 24)).columns - 2))
    experiments = [runner.get_experiment(name) for name in runner.experiment_names()]
    column = 2 + max(len(f"  --preset {p}") for e in experiments for p in e.presets)
    lines = [
        "experiments (alignjax run NAME --preset PRESET; the first preset is the default,",
        "times are for 2 CPU cores):",
    ]
    for experiment in experiments:
        summary = experiment.summary.removeprefix(f"{experiment.name}:").strip()
        lines.append("")
        lines += textwrap.wrap(f"{experiment.name}: {summary}", width, subsequent_indent="    ")
        for preset, description in experiment.presets.items():
            lines += textwrap.wrap(
                description,
                width,
                initial_indent=f"  --preset {preset}".ljust(column),
                subsequent_indent=" " * column,
                break_on_hyphens=False,
            )
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> None:
    del args
    print(_experiments_text())


def _run(args: argparse.Namespace) -> None:
    # Said before JAX and the method are imported (several seconds), so that a run is
    # never silent from its start.
    experiment = runner.get_experiment(args.name)
    preset = args.preset or next(iter(experiment.presets))
    if preset not in experiment.presets:
        experiment.config(preset)  # Raises the one-line error naming the presets.
    workdir = args.workdir or f"runs/{args.name}"
    print(
        f"alignjax run {args.name} --preset {preset} (work directory {workdir}): "
        f"{experiment.presets[preset]}",
        flush=True,
    )
    if args.distributed:
        import jax  # One process per host: join the others before any device is used.

        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    metrics = runner.run_experiment(
        args.name,
        preset=preset,
        workdir=workdir,
        overrides=args.set or (),
        restart=args.restart,
    )
    print(f"done in {metrics['wall_time_seconds']} s; report: {workdir}/report.md")


def _eval(args: argparse.Namespace) -> None:
    from alignjax.evaluation import files  # Heavy imports only for this command.

    results = files.evaluate_files(
        features=args.features,
        triplets=args.triplets,
        levels=args.levels,
        kernel=args.kernel,
        transform=args.transform,
    )
    print(files.format_results(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runner.json_ready(results), f, indent=2, allow_nan=False)


def _fit_glocal(args: argparse.Namespace) -> None:
    print(
        f"alignjax fit glocal: features {args.features}, triplets {args.triplets}, "
        f"grid {args.grid} (work directory {args.workdir})",
        flush=True,
    )
    from alignjax.methods import glocal_files

    config = glocal_files.files_config(
        args.features,
        args.triplets,
        validation_triplets=args.validation_triplets,
        validation_fraction=args.validation_fraction,
        test_triplets=args.test_triplets,
        test_fraction=args.test_fraction,
        local_features=args.local_features,
        grid=args.grid,
        seed=args.seed,
        overrides=args.set or (),
    )
    metrics = runner.run_config(
        "fit-glocal",
        config,
        glocal_files.run,
        preset=args.grid,
        workdir=args.workdir,
        restart=args.restart,
    )
    for name in ("base", "naive", "glocal"):
        values = metrics[name]
        test = values.get("odd_one_out/test", values["odd_one_out/validation"])
        print(
            f"{name:7s} odd-one-out accuracy {test:.4f}, "
            f"neighbours kept {values['neighbour_preservation']:.3f}"
        )
    print(f"done in {metrics['wall_time_seconds']} s; transform: {args.workdir}/transform.npz")


def _apply_glocal(args: argparse.Namespace) -> None:
    from alignjax.methods import glocal_files

    print(glocal_files.apply_files(args.transform, args.features, args.out))


def _fit_alignet(args: argparse.Namespace) -> None:
    images = args.images or f"TFDS {args.tfds}"
    print(
        f"alignjax fit alignet: images {images}, triplets {args.triplets or 'none'} "
        f"(work directory {args.workdir})",
        flush=True,
    )
    import importlib

    from alignjax.config import ConfigError, apply_overrides
    from alignjax.data.image_files import ImageFilesConfig

    experiment = importlib.import_module("alignjax.experiments.alignet")
    size = args.image_size * 2 if len(args.image_size) == 1 else args.image_size
    data = ImageFilesConfig(
        image_folder=args.images,
        tfds_name=args.tfds,
        tfds_data_dir=args.tfds_data_dir,
        tfds_split=args.tfds_split,
        image_size=tuple(size),
        triplets=args.triplets,
        item_images=args.item_images,
    )
    config = experiment.files_config(
        args.preset,
        data,
        teacher_features=args.teacher_features,
        teacher_checkpoint=args.teacher_checkpoint,
        student_checkpoint=args.student_checkpoint,
    )
    try:
        config = apply_overrides(config, args.set or ())
    except ConfigError as error:
        raise runner.UsageError(f"fit alignet: {error}") from None
    metrics = runner.run_config(
        "alignet",
        config,
        experiment.run,
        preset=args.preset,
        workdir=args.workdir,
        restart=args.restart,
    )
    print(f"done in {metrics['wall_time_seconds']} s; report: {args.workdir}/report.md")


def _figures(args: argparse.Namespace) -> None:
    from alignjax.data import figures

    figures.main(["--out", args.out])


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line, like every other error."""

    def error(self, message: str):
        raise runner.UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    experiments = _experiments_text()
    parser = _Parser(
        prog="alignjax",
        description=__doc__.splitlines()[0],
        epilog=experiments,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser(
        "list",
        help="list the experiments, their presets and expected times",
        description="List the experiments, their presets and expected times.",
    ).set_defaults(func=_list)

    run = commands.add_parser(
        "run",
        help="run an experiment (resumes in a used work directory)",
        description="Run an experiment; in a work directory that holds the same run, resume it.",
        epilog=experiments,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("name", help="experiment name, one of those listed below")
    run.add_argument("--preset", help="size preset (default: the experiment's first preset)")
    run.add_argument("--workdir", help="where to write results (default: runs/NAME)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    run.add_argument(
        "--restart",
        action="store_true",
        help="discard the run the work directory holds (any config) and start afresh",
    )
    run.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() first (one process per host; "
        "the cluster is detected on Cloud TPU, SLURM and Open MPI, or given below)",
    )
    run.add_argument("--coordinator", help="with --distributed: address HOST:PORT of process 0")
    run.add_argument("--num-processes", type=int, help="with --distributed: number of processes")
    run.add_argument("--process-id", type=int, help="with --distributed: this process's index")
    run.set_defaults(func=_run)

    evaluate = commands.add_parser("eval", help="evaluate a feature matrix on odd-one-out triplets")
    evaluate.add_argument("--features", required=True, help="[n_items, d] .npy or text matrix")
    evaluate.add_argument(
        "--triplets", required=True, help="THINGS-format triplets, odd one out last"
    )
    evaluate.add_argument("--levels", help="optional per-triplet level names, one per line")
    evaluate.add_argument("--kernel", choices=("dot", "cosine"), default="dot")
    evaluate.add_argument("--transform", help="optional gLocal transform .npz to apply first")
    evaluate.add_argument("--json", help="also write the results to this JSON file")
    evaluate.set_defaults(func=_eval)

    fit = commands.add_parser("fit", help="align a model with your data (gLocal or AligNet)")
    methods = fit.add_subparsers(dest="method", required=True)
    glocal = methods.add_parser(
        "glocal",
        help="fit a gLocal transform of your features to your human triplets",
        description="gLocal and the naive transform of your features, fitted over a grid "
        "with the released configuration and chosen on validation accuracy "
        "(docs/your_data.md).",
    )
    glocal.add_argument("--features", required=True, help="[n_items, d] features, .npy or text")
    glocal.add_argument(
        "--triplets", required=True, help="THINGS-format triplets over the feature rows"
    )
    validation = glocal.add_mutually_exclusive_group()
    validation.add_argument("--validation-triplets", help="validation triplets (a file)")
    validation.add_argument(
        "--validation-fraction", type=float, help="or split off this share (default 0.1)"
    )
    test = glocal.add_mutually_exclusive_group()
    test.add_argument("--test-triplets", help="test triplets (a file)")
    test.add_argument(
        "--test-fraction", type=float, help="or split off this share (default 0.1; 0: none)"
    )
    glocal.add_argument(
        "--local-features", help="features of other images for the local term (default: F)"
    )
    glocal.add_argument("--grid", choices=("quick", "paper"), default="quick")
    glocal.add_argument("--seed", type=int, default=0, help="seed of the split and the fits")
    glocal.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override fit.* or evaluation.*"
    )
    glocal.add_argument("--workdir", required=True, help="where to write results")
    glocal.add_argument("--restart", action="store_true", help="discard the run held there")
    glocal.set_defaults(func=_fit_glocal)
    alignet = methods.add_parser(
        "alignet",
        help="distill a student from a teacher aligned to your human judgments, on your images",
        description="The AligNet chain of 'alignjax run alignet' on your images "
        "(docs/your_data.md). Images are read in this order: a folder's class subfolders "
        "sorted, then the files in each sorted; a TFDS data set's records in order.",
    )
    images = alignet.add_mutually_exclusive_group(required=True)
    images.add_argument("--images", help="a folder of PNG/JPEG images (subfolders = classes)")
    images.add_argument("--tfds", help="or a TFDS/ArrayRecord data set with encoded images")
    alignet.add_argument("--tfds-data-dir", help="with --tfds: the directory holding it")
    alignet.add_argument("--tfds-split", default="train", help="with --tfds: the split")
    alignet.add_argument(
        "--image-size",
        type=int,
        nargs="+",
        default=[32],
        metavar="N",
        help="the models' input size: H [W] (images are resized and centre-cropped)",
    )
    alignet.add_argument("--triplets", help="human odd-one-out triplets (THINGS format)")
    alignet.add_argument(
        "--item-images", help="the image of every triplet item (index or file), one per line"
    )
    teacher = alignet.add_mutually_exclusive_group()
    teacher.add_argument("--teacher-features", help="[n_images, d] teacher features, image order")
    teacher.add_argument("--teacher-checkpoint", help="a big_vision ViT .npz to run as teacher")
    alignet.add_argument(
        "--student-checkpoint", help="a pretrained big_vision ViT .npz (default: train one)"
    )
    alignet.add_argument(
        "--preset", default="quick", choices=("tiny", "quick", "paper"), help="sizes"
    )
    alignet.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config field"
    )
    alignet.add_argument("--workdir", required=True, help="where to write results")
    alignet.add_argument("--restart", action="store_true", help="discard the run held there")
    alignet.set_defaults(func=_fit_alignet)

    apply = commands.add_parser("apply", help="apply a fitted transform to features")
    transforms = apply.add_subparsers(dest="method", required=True)
    apply_glocal = transforms.add_parser(
        "glocal", help="write ((F - mean) / std) @ weights + bias of a transform file"
    )
    apply_glocal.add_argument(
        "--transform", required=True, help="transform .npz (fit glocal's, or the released code's)"
    )
    apply_glocal.add_argument("--features", required=True, help="[n, d] features, .npy or text")
    apply_glocal.add_argument("--out", required=True, help="the transformed features (.npy)")
    apply_glocal.set_defaults(func=_apply_glocal)

    figures = commands.add_parser(
        "figures", help="write a PNG of samples from each synthetic world"
    )
    figures.add_argument("--out", default="figures", help="output directory (default: figures)")
    figures.set_defaults(func=_figures)
    return parser


def _expected(error: BaseException) -> bool:
    """Whether the error's message says what went wrong and what to do (a value, a file, a
    directory, a run whose loss stopped being finite)."""
    if isinstance(error, (runner.UsageError, ValueError, OSError)):
        return True
    # Only training raises NonFiniteLossError, so its module (which imports JAX) is loaded
    # by then; importing it up front would load JAX for `alignjax list` too.
    nonfinite = sys.modules.get("alignjax.training.nonfinite")
    return nonfinite is not None and isinstance(error, nonfinite.NonFiniteLossError)


def _one_line(error: BaseException) -> str:
    """The error's message on one line; the type is named unless it is a usage mistake."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if _expected(error) else f"{type(error).__name__}: {text}"


def _plots_to_files() -> None:
    """Runs write their plots to files: no window, whatever display the machine has."""
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    else:
        # Read when matplotlib is first imported: importing it here would delay the
        # first line of a run and slow `alignjax list` down.
        os.environ["MPLBACKEND"] = "Agg"


def main(argv: Sequence[str] | None = None) -> int:
    debug = os.environ.get("ALIGNJAX_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
        _plots_to_files()
        args.func(args)
    except KeyboardInterrupt:
        print("alignjax: interrupted; run the same command again to resume", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as error:
        if debug:
            raise
        if isinstance(error, TrainingInterrupted):
            print(f"alignjax: {error}", file=sys.stderr)
            return 128 + error.signal
        hint = "" if _expected(error) else " (ALIGNJAX_DEBUG=1 shows where)"
        print(f"alignjax: error: {_one_line(error)}{hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
