"""gLocal on a user's files: ``alignjax fit glocal`` and ``alignjax apply glocal``.

:func:`files_config` reads a feature matrix and THINGS-format triplets (odd one out
last) into the run's config, :func:`run` splits off validation and test triplets unless
they come in files of their own, and runs
the gLocal chain (:func:`alignjax.methods.glocal.align`) with the released
configuration (:class:`~alignjax.methods.glocal_fit.GlocalConfig`) over the ``quick`` or
``paper`` grid. The work directory receives ``transform.npz`` (the selected gLocal
transform: ``weights, bias, mean, std``, bias zeros as the released code fits none),
``naive.npz``, ``metrics.json``, ``grid.json``, ``report.md`` and the trade-off plot
``alignment_vs_local_structure.png``. :func:`apply_files` applies a transform file to
a feature matrix.

Every file is checked by :mod:`alignjax.data.readers` (errors name the file and row);
counts across files must agree (triplet indices against feature rows, the local
features' width against the features'). The command runs it through
:func:`alignjax.runner.run_config`: a work directory holding a run of another config, or
of other input files (their SHA-256 is part of the config), is refused; the same
command in the same directory resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import pathlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from alignjax.config import ConfigError, apply_overrides, checked, configclass
from alignjax.data import readers
from alignjax.data.triplet_set import split_by_triplet
from alignjax.evaluation.suite import EvaluationConfig
from alignjax.methods.glocal import AlignmentData, align
from alignjax.methods.glocal_fit import GlocalConfig
from alignjax.models import AffineParams

Grid = Literal["quick", "paper"]
#: Passes over the training triplets a fit may make (the released code's ``max_epochs``).
EPOCHS = 100


def grid_config(grid: Grid, n_train: int) -> GlocalConfig:
    """The fits of ``grid`` on ``n_train`` training triplets.

    ``"paper"``: the released configuration and grid (:class:`GlocalConfig`);
    ``"quick"``: the same fits over ``lambda {1, 0.1}``, ``alpha 0.25``, ``tau 1`` (and
    the naive transform at ``lambda {1, 0.1}``). A fit makes up to 100 epochs, its
    learning rate warming up from ``lr / 3`` over them; the loss and the validation
    accuracy are recorded once an epoch, and a fit stops early on the latter.

    >>> grid_config("paper", 40_000).train.num_steps
    15700
    """
    if grid not in ("quick", "paper"):
        raise ValueError(f"grid must be 'quick' or 'paper'; got {grid!r}.")
    released = GlocalConfig()
    epoch = math.ceil(n_train / released.triplet_batch_size)
    steps = EPOCHS * epoch
    train = dataclasses.replace(
        released.train,
        num_steps=steps,
        warmup_steps=steps - 1,
        log_every=epoch,
        eval_every=epoch,
    )
    if grid == "paper":
        return dataclasses.replace(released, train=train)
    return dataclasses.replace(
        released,
        penalty_weights=(1.0, 0.1),
        alphas=(0.25,),
        temperatures=(1.0,),
        naive_penalty_weights=(1.0, 0.1),
        train=train,
    )


@configclass
class FitFilesConfig:
    """One ``alignjax fit glocal`` run: its inputs and fits (the work directory's
    ``config.json``).

    Attributes:
      features, triplets, validation_triplets, test_triplets, local_features: the
        input files (absolute paths; ``None`` where not given).
      validation_fraction, test_fraction: fractions of ``triplets`` split off for
        validation and test (0 where a file gives them).
      inputs_sha256: SHA-256 of the input files' contents, in the order above.
      seed: seed of the split and of every fit's batches.
      grid: ``"quick"`` or ``"paper"`` (:func:`grid_config`).
      fit: the fits; ``--set fit.<field>=...`` changes them.
      evaluation: the evaluation (the base features by dot products, 10-NN
        preservation); ``--set evaluation.<field>=...`` changes it.
    """

    features: str = ""
    triplets: str = ""
    validation_triplets: str | None = None
    test_triplets: str | None = None
    local_features: str | None = None
    validation_fraction: float = checked(0.0, ge=0, lt=1)
    test_fraction: float = checked(0.0, ge=0, lt=1)
    inputs_sha256: str = ""
    seed: int = checked(0, ge=0)
    grid: Grid = "quick"
    fit: GlocalConfig = GlocalConfig()
    evaluation: EvaluationConfig = EvaluationConfig(kernel="dot")


def files_config(
    features: str | os.PathLike[str],
    triplets: str | os.PathLike[str],
    *,
    validation_triplets: str | os.PathLike[str] | None = None,
    validation_fraction: float | None = None,
    test_triplets: str | os.PathLike[str] | None = None,
    test_fraction: float | None = None,
    local_features: str | os.PathLike[str] | None = None,
    grid: Grid = "quick",
    seed: int = 0,
    overrides: Sequence[str] = (),
) -> FitFilesConfig:
    """The config of fitting gLocal and the naive transform of ``features`` to human
    triplets (files); every file is read and checked first.

    Args:
      features: ``[n_items, d]`` features (``.npy`` or text), one row per item.
      triplets: triplets over those rows (text, three 0-based indices a line, odd one
        out last; or an ``[n, 3]`` integer ``.npy``).
      validation_triplets: validation triplets; without them ``validation_fraction``
        (default 0.1) of ``triplets`` is split off, by triplet.
      validation_fraction: see above; not with ``validation_triplets``.
      test_triplets: test triplets; without them ``test_fraction`` (default 0.1; 0 for
        none) of ``triplets`` is split off.
      test_fraction: see above; not with ``test_triplets``.
      local_features: ``[n_local, d]`` features of other images for the local term;
        default the features themselves.
      grid: ``"quick"`` or ``"paper"`` (:func:`grid_config`).
      seed: seed of the split and of the fits' batches.
      overrides: ``"fit.<field>=value"`` or ``"evaluation.<field>=value"`` changes.

    Returns:
      the config :func:`run` takes (the work directory's ``config.json``).

    Raises:
      FileNotFoundError, ValueError: a missing or bad input file (one line naming it
        and the row), counts that do not match, an impossible split or a bad override.
    """
    paths = {
        "features": features,
        "triplets": triplets,
        "validation_triplets": validation_triplets,
        "test_triplets": test_triplets,
        "local_features": local_features,
    }
    paths = {k: None if v is None else pathlib.Path(v) for k, v in paths.items()}
    validation_fraction = _fraction(
        "validation", validation_fraction, paths["validation_triplets"], minimum=1e-9
    )
    test_fraction = _fraction("test", test_fraction, paths["test_triplets"], minimum=0.0)
    config = FitFilesConfig(
        **{k: None if v is None else str(v.resolve()) for k, v in paths.items()},
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        inputs_sha256=_digest(p for p in paths.values() if p is not None),
        seed=seed,
        grid=grid,
    )
    train = alignment_data(config).train
    return _with_overrides(
        dataclasses.replace(config, fit=grid_config(grid, len(train))), overrides
    )


def alignment_data(config: FitFilesConfig) -> AlignmentData:
    """The files of ``config`` read, checked and split into what :func:`align` runs on.

    Raises:
      FileNotFoundError, ValueError: a missing or bad file (naming it and the row),
        counts that do not match, or a split that leaves no training or validation
        triplet.
    """
    paths = {
        name: None if getattr(config, name) is None else pathlib.Path(getattr(config, name))
        for name in ("features", "triplets", "validation_triplets", "test_triplets")
    }
    matrix = readers.read_features(paths["features"]).astype(np.float32)
    n = len(matrix)
    given = {
        name: readers.read_triplets(path, n_items=n)
        for name, path in paths.items()
        if name != "features" and path is not None
    }
    local = matrix
    if config.local_features is not None:
        local = readers.read_features(config.local_features).astype(np.float32)
        if local.shape[1] != matrix.shape[1] or len(local) < 2:
            raise ValueError(
                f"{config.local_features}: {local.shape[0]} rows of {local.shape[1]} "
                f"columns; the local term needs at least 2 rows of the {matrix.shape[1]} "
                f"columns of {paths['features']} (the same model's features)"
            )
    train, validation, test = split_by_triplet(
        given["triplets"],
        config.validation_fraction,
        config.test_fraction,
        np.random.default_rng(config.seed),
    )
    validation = given.get("validation_triplets", validation)
    test = given.get("test_triplets", test)
    if len(train) == 0 or len(validation) == 0:
        raise ValueError(
            f"{paths['triplets']}: {len(given['triplets'])} triplets leave {len(train)} for "
            f"training and {len(validation)} for validation; both need at least one"
        )
    return AlignmentData(
        description=(
            f"{paths['features'].name}: {n} items, {matrix.shape[1]}-d features. Transforms "
            f"fitted on {len(train)} triplets of {paths['triplets'].name} "
            f"({len(validation)} validation, {0 if test is None else len(test)} test; split "
            f"by triplet with seed {config.seed} where not given as files), the local term "
            f"on {len(local)} {'items' if local is matrix else 'other images'}; "
            f"the {config.grid} grid, up to {config.fit.train.num_steps} steps a fit"
            + ("." if config.fit.patience is None else ", stopping early on validation.")
        ),
        features=matrix,
        fit_rows=np.arange(n),
        train=train,
        validation=validation,
        test=test,
        levels=None,
        local_features=local,
        held_out=None,
    )


def run(config: FitFilesConfig, workdir: str | os.PathLike[str]) -> dict[str, Any]:
    """``alignjax fit glocal``: the gLocal chain (:func:`~alignjax.methods.glocal.align`)
    on the files of ``config``, in ``workdir``.

    Returns:
      the metrics: ``base``, ``naive`` and ``glocal`` (validation and test odd-one-out
      accuracy, neighbour preservation) and ``grid`` (the same for every grid point,
      with its setting).
    """
    data = alignment_data(config)
    return align(data, config.fit, config.evaluation, pathlib.Path(workdir), seed=config.seed)


def apply_files(
    transform: str | os.PathLike[str],
    features: str | os.PathLike[str],
    out: str | os.PathLike[str],
) -> pathlib.Path:
    """Writes ``((features - mean) / std) @ weights + bias`` to ``out`` (``.npy``).

    Args:
      transform: a transform file (``weights, bias, mean, std``; written by ``fit
        glocal`` or the released gLocal code, whose files may lack ``bias``).
      features: ``[n, d]`` features (``.npy`` or text), ``d`` the rows of ``weights``.
      out: the output file; its directory is created.

    Returns:
      the path written.
    """
    params = AffineParams.load_npz(transform)
    matrix = readers.read_features(features)
    if matrix.shape[1] != params.weights.shape[0]:
        raise ValueError(
            f"{transform}: the transform takes {params.weights.shape[0]} features, but "
            f"{features} has {matrix.shape[1]} per row."
        )
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as file:  # a file object keeps numpy from appending ".npy"
        np.save(file, params.apply(matrix))
    return out


def _fraction(
    name: str, fraction: float | None, path: pathlib.Path | None, *, minimum: float
) -> float:
    if path is not None:
        if fraction is not None:
            raise ValueError(f"give --{name}-triplets or --{name}-fraction, not both")
        return 0.0
    fraction = 0.1 if fraction is None else fraction
    if not minimum <= fraction < 1:
        low = "in (0, 1)" if minimum else "in [0, 1)"
        raise ValueError(f"--{name}-fraction must lie {low}; got {fraction}")
    return fraction


def _digest(paths) -> str:
    """SHA-256 of the files' contents one after another, read in 1 MiB chunks (a
    feature file can be larger than the memory it would take whole)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _with_overrides(config: FitFilesConfig, overrides: Sequence[str]) -> FitFilesConfig:
    for override in overrides:
        if not override.startswith(("fit.", "evaluation.")):
            raise ConfigError(
                f"--set {override}: only fit.<field> and evaluation.<field> can be set; "
                "the inputs are the command's options"
            )
    try:
        return apply_overrides(config, overrides)
    except ConfigError as error:
        raise ConfigError(f"fit glocal: {error}") from None
