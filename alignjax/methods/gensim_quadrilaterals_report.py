"""The ``gensim-quadrilaterals`` report: intruder errors per shape, the regularity effect.

Writes ``report.md`` of a ``gensim-quadrilaterals`` run
(:func:`alignjax.methods.gensim_quadrilaterals.run`): every objective's error rate and
regularity summary, its error per reference shape, and two figures: the error per shape
from the most to the least regular (:func:`per_shape_figure`) and a few held-out trials
with each objective's choice (:func:`example_trials_figure`).
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np

from alignjax.data.quadrilaterals import SHAPE_NAMES
from alignjax.methods import objectives
from alignjax.methods.report import Report

if TYPE_CHECKING:
    from alignjax.methods.gensim_quadrilaterals import QuadrilateralsConfig


def write_report(
    config: QuadrilateralsConfig,
    workdir: pathlib.Path,
    metrics: dict[str, dict[str, Any]],
    trials: dict[str, np.ndarray],
    choices: dict[str, np.ndarray],
) -> None:
    """Writes ``workdir/report.md`` and its figures from the ``metrics`` of
    :func:`~alignjax.methods.gensim_quadrilaterals.run`, the held-out ``trials`` and each
    objective's ``choices [n_trials]``."""
    report = Report("gensim-quadrilaterals: the geometric regularity effect in the intruder task")
    size = config.world.image_size
    report.paragraph(
        f"Encoders ({config.encoder.kind}, {size}x{size} outlines, {config.train.num_steps} "
        f"steps of {config.objective.batch_size}) trained with each objective; "
        f"{config.num_trials_per_shape} held-out intruder trials per reference shape, the model "
        "choosing the image farthest from the mean of the six embeddings (chance error 5/6 = "
        "0.833). The claim (Marjieh et al. 2024, after Sablé-Meyer et al. 2021): with "
        "generative-similarity training the error is low for the most regular shapes and rises "
        "with irregularity (positive Spearman correlation of error with the rank in the "
        "regularity order), unlike the baselines. "
        f"SimCLR trains on {config.simclr_items.replace('_', ' ')} images, SupCon on "
        f"{config.supcon_items.replace('_', ' ')} labels (see the module docstring)."
    )
    columns = [
        "objective",
        "error_rate",
        "regular_error",
        "irregular_error",
        "regularity_gap",
        "regularity_spearman",
        "regularity_spearman_p",
    ]
    rows = [
        {"objective": name, **{k: v for k, v in m.items() if k in columns}}
        for name, m in metrics.items()
    ]
    if config.human_error_rates is not None:
        columns.append("human_spearman")
        for row, m in zip(rows, metrics.values()):
            row["human_spearman"] = m["human_correlation"]["spearman_rho"]
    report.table(rows, columns)
    report.heading("Error per shape")
    report.table(
        [
            {"shape": s, **{name: m["per_shape_error"][s] for name, m in metrics.items()}}
            for s in SHAPE_NAMES
        ],
        ["shape", *metrics],
    )
    report.figure(
        per_shape_figure(config, metrics),
        workdir,
        "error_per_shape.png",
        "Intruder error rate per reference shape, from the most to the least regular",
    )
    if config.num_example_trials:
        report.figure(
            example_trials_figure(config, trials, choices),
            workdir,
            "example_trials.png",
            "Held-out intruder trials: the true intruder framed in green; each image lists the "
            "objectives that chose it",
        )
    report.write(workdir)


def per_shape_figure(
    config: QuadrilateralsConfig, metrics: dict[str, dict[str, Any]]
) -> plt.Figure:
    """Error per reference shape (most to least regular) of each objective, with binomial
    standard errors; ``metrics[objective]`` holds ``per_shape_error`` and
    ``regularity_spearman`` (as :func:`~alignjax.methods.gensim_quadrilaterals.run`
    returns them)."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    x = np.arange(len(SHAPE_NAMES))
    n = config.num_trials_per_shape
    for name, m in metrics.items():
        errors = np.array([m["per_shape_error"][s] for s in SHAPE_NAMES])
        stderr = np.sqrt(errors * (1 - errors) / n)
        ax.errorbar(
            x,
            errors,
            yerr=stderr,
            marker="o",
            capsize=2,
            linewidth=2 if name in objectives.GENSIM_OBJECTIVES else 1.2,
            label=f"{name} (ρ = {m['regularity_spearman']:.2f})",
        )
    ax.axhline(5 / 6, color="gray", linestyle=":", label="chance (5/6)")
    ax.set_xticks(x, [s.replace("_", " ") for s in SHAPE_NAMES], rotation=35, ha="right")
    ax.set_ylim(0, 1)
    ax.set_xlabel("reference shape (most regular → least regular)")
    ax.set_ylabel("intruder error rate")
    ax.set_title("Intruder task: error per shape (ρ: Spearman with irregularity rank)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def example_trials_figure(
    config: QuadrilateralsConfig, trials: dict[str, np.ndarray], choices: dict[str, np.ndarray]
) -> plt.Figure:
    """``config.num_example_trials`` held-out trials, one each of shapes spread evenly over
    the regularity order: the intruder framed in green, each image titled with the
    objectives whose choice (``choices[objective] [n_trials]``) it was."""
    shapes = np.linspace(0, len(SHAPE_NAMES) - 1, config.num_example_trials).round().astype(int)
    rows = [int(np.flatnonzero(trials["shape"] == s)[0]) for s in shapes]
    fig, axes = plt.subplots(len(rows), 6, figsize=(7.2, 1.45 * len(rows)), squeeze=False)
    for r, trial in enumerate(rows):
        for i in range(6):
            ax = axes[r, i]
            ax.imshow(trials["inputs"][trial, i, ..., 0], cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            is_intruder = i == trials["intruder"][trial]
            for spine in ax.spines.values():
                spine.set_color("tab:green" if is_intruder else "lightgray")
                spine.set_linewidth(3 if is_intruder else 1)
            chosen_by = [name for name, c in choices.items() if c[trial] == i]
            ax.set_title(
                ", ".join(chosen_by), fontsize=6, color="tab:green" if is_intruder else "tab:red"
            )
        axes[r, 0].set_ylabel(SHAPE_NAMES[trials["shape"][trial]].replace("_", "\n"), fontsize=8)
    fig.suptitle(
        "Example intruder trials (green frame: the intruder; "
        "labels: objectives choosing that image)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig
