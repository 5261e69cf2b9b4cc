"""The ``alignjax`` command.

    alignjax list
    alignjax run NAME [--preset quick|paper] [--workdir DIR] [--set key=value ...]
                 [--distributed [--coordinator HOST:PORT --num-processes N --process-id I]]
    alignjax eval --features F.npy --triplets T.txt [--levels L.txt] [--kernel dot|cosine]
                  [--transform glocal.npz] [--json OUT]
    alignjax figures [--out DIR]

Every error (an unknown experiment, a bad override or config value, an unwritable or
already used work directory, a bad input file, a run that fails) is one line on stderr
with exit status 2 and no traceback; ``ALIGNJAX_DEBUG=1`` shows the traceback. A run
stopped before its last step (Ctrl-C, SIGTERM) ends with "interrupted at step N/M; run
the same command to resume" and status 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence

import matplotlib

from alignjax import runner
from alignjax.training.nonfinite import NonFiniteLossError
from alignjax.training.signals import TrainingInterrupted


def _list(args: argparse.Namespace) -> None:
    del args
    for name in runner.experiment_names():
        experiment = runner.get_experiment(name)
        print(f"{name:24s} {experiment.summary}")
        for preset, description in experiment.presets.items():
            print(f"{'':24s}   --preset {preset:6s} {description}")


def _run(args: argparse.Namespace) -> None:
    if args.distributed:
        import jax  # One process per host: join the others before any device is used.

        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    metrics = runner.run_experiment(
        args.name,
        preset=args.preset,
        workdir=args.workdir,
        overrides=args.set or (),
        restart=args.restart,
    )
    workdir = args.workdir or f"runs/{args.name}"
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


def _figures(args: argparse.Namespace) -> None:
    from alignjax.data import figures

    figures.main(["--out", args.out])


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line, like every other error."""

    def error(self, message: str):
        raise runner.UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="alignjax", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="list the experiments and their presets").set_defaults(
        func=_list
    )

    run = commands.add_parser("run", help="run an experiment (resumes in a used work directory)")
    run.add_argument("name", help="experiment name, see `alignjax list`")
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

    figures = commands.add_parser(
        "figures", help="write a PNG of samples from each synthetic world"
    )
    figures.add_argument("--out", default="figures", help="output directory (default: figures)")
    figures.set_defaults(func=_figures)
    return parser


# Errors whose message says what went wrong and what to do (a value, a file, a
# directory, a run whose loss stopped being finite).
_EXPECTED = (runner.UsageError, ValueError, OSError, NonFiniteLossError)


def _one_line(error: BaseException) -> str:
    """The error's message on one line; the type is named unless it is a usage mistake."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, _EXPECTED) else f"{type(error).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    # Runs write their plots to files: no window, whatever display the machine has.
    matplotlib.use("Agg")
    debug = os.environ.get("ALIGNJAX_DEBUG", "") not in ("", "0")
    try:
        args = build_parser().parse_args(argv)
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
        hint = "" if isinstance(error, _EXPECTED) else " (ALIGNJAX_DEBUG=1 shows where)"
        print(f"alignjax: error: {_one_line(error)}{hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
