"""The report of a gLocal run: ``report.md`` with its tables and plots.

:func:`write_report` turns the metrics of :func:`alignjax.methods.glocal.align` (the
vocabulary of :mod:`alignjax.evaluation.suite`) into a report: the base, naive and
gLocal spaces side by side, accuracy per abstraction level (with Levels triplets),
transfer to held-out categories (with held-out categories), the trade-off between
alignment and local structure over the whole grid (``alignment_vs_local_structure.png``)
and the grid's table.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from alignjax.data.levels import LEVELS
from alignjax.evaluation.suite import EvaluationConfig
from alignjax.methods.report import Report

SPACES = ("base", "naive", "glocal")
_COLOURS = {"base": "tab:gray", "naive": "tab:orange", "glocal": "tab:blue"}
_LABELS = {"base": "base model", "naive": "naive transform", "glocal": "gLocal"}
_SETTING = ("learning_rate", "penalty_weight", "alpha", "temperature")


def _accuracy_set(metrics: dict[str, Any]) -> str:
    """The triplet set the report's accuracies are of: ``"test"`` when there is one."""
    return "test" if "odd_one_out/test" in metrics["base"] else "validation"


def write_report(
    metrics: dict[str, Any],
    workdir: pathlib.Path,
    *,
    description: str,
    evaluation: EvaluationConfig,
) -> pathlib.Path:
    """Writes ``workdir/report.md`` and its PNG plots; returns the report's path.

    Args:
      metrics: ``{"base" | "naive" | "glocal": {metric: value}, "grid": [rows]}``.
      workdir: the run's directory.
      description: what the data are and how the triplets were split.
      evaluation: the evaluation's settings (the base features' kernel, neighbours).
    """
    name = _accuracy_set(metrics)
    accuracy = f"odd_one_out/{name}"
    report = Report("gLocal: human alignment that keeps local structure")
    report.paragraph(
        f"{description} gLocal: global odd-one-out loss + alpha x local neighbourhood loss "
        "+ lambda ||W - mean(diag W) I||^2; naive: global loss + lambda ||W||_F. Settings "
        "chosen by validation odd-one-out accuracy. Base features compared by "
        f"{evaluation.kernel}, transformed ones by dot products; neighbour preservation is the "
        f"kept fraction of each item's {evaluation.neighbours} nearest cosine neighbours."
    )
    selected = {row["kind"]: row for row in metrics["grid"] if row["selected"]}
    glocal, naive = selected["glocal"], selected["naive"]
    report.paragraph(
        f"Selected: gLocal with lr {glocal['learning_rate']:g}, lambda "
        f"{glocal['penalty_weight']:g}, alpha {glocal['alpha']:g}, tau {glocal['temperature']:g}; "
        f"the naive transform with lr {naive['learning_rate']:g}, lambda "
        f"{naive['penalty_weight']:g}."
    )
    report.paragraph(
        "The claim (Muttenthaler et al. 2023): gLocal raises alignment about as much as the naive "
        "transform while keeping the base model's nearest neighbours, which the naive transform "
        "breaks, and keeps or improves few-shot and anomaly detection on new categories."
    )
    downstream = [key for key in metrics["base"] if key.startswith("few_shot/")]
    if "anomaly_auc" in metrics["base"]:
        downstream.append("anomaly_auc")
    columns = [
        accuracy,
        f"noise_ceiling/{name}",
        "odd_one_out/validation",
        "neighbour_preservation",
        *downstream,
    ]
    rows = [{"space": space, **metrics[space]} for space in SPACES]
    report.table(rows, ["space", *(c for c in columns if c in metrics["base"])])
    levels = [level for level in LEVELS if f"odd_one_out/levels/{level}" in metrics["base"]]
    if levels:
        report.heading("Odd-one-out accuracy per abstraction level")
        keys = [f"odd_one_out/levels/{level}" for level in levels]
        ceiling = {
            key: metrics["base"].get(key.replace("odd_one_out", "noise_ceiling")) for key in keys
        }
        report.table([*rows, {"space": "noise ceiling", **ceiling}], ["space", *keys])
        report.figure(
            _levels_figure(metrics, levels),
            workdir,
            "accuracy_per_level.png",
            "Odd-one-out accuracy per abstraction level",
        )
    report.figure(
        _trade_off_figure(metrics, accuracy, evaluation.neighbours),
        workdir,
        "alignment_vs_local_structure.png",
        "Alignment against local structure: every fitted transform of the grid "
        "and the selected ones",
    )
    if downstream:
        report.figure(
            _downstream_figure(metrics, downstream),
            workdir,
            "downstream.png",
            "Few-shot accuracy and anomaly detection on held-out categories",
        )
    report.heading("The grid")
    grid_columns = ["kind", *_SETTING, "odd_one_out/validation", accuracy, "neighbour_preservation"]
    report.table(metrics["grid"], [*dict.fromkeys(grid_columns), "selected"])
    return report.write(workdir)


def _trade_off_figure(metrics: dict[str, Any], accuracy: str, neighbours: int) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for kind in ("naive", "glocal"):
        rows = [r for r in metrics["grid"] if r["kind"] == kind]
        ax.scatter(
            [r["neighbour_preservation"] for r in rows],
            [r[accuracy] for r in rows],
            s=25,
            alpha=0.35,
            color=_COLOURS[kind],
            label=f"{_LABELS[kind]} (grid)",
        )
    for name in SPACES:
        ax.scatter(
            metrics[name]["neighbour_preservation"],
            metrics[name][accuracy],
            s=120,
            color=_COLOURS[name],
            edgecolor="black",
            zorder=3,
            label=_LABELS[name] + (" (selected)" if name != "base" else ""),
        )
    ceiling = metrics["base"].get(accuracy.replace("odd_one_out", "noise_ceiling"))
    if ceiling is not None:
        ax.axhline(ceiling, color="black", linestyle="--", linewidth=1, label="noise ceiling")
    ax.axhline(1 / 3, color="black", linestyle=":", linewidth=1, label="chance")
    ax.set_xlabel(f"nearest-neighbour preservation (k = {neighbours})")
    ax.set_ylabel(f"odd-one-out accuracy, {accuracy.split('/')[1]} triplets")
    ax.set_title("Alignment vs. local structure")
    ax.legend(fontsize=7, loc="best")
    return fig


def _space_bars(metrics: dict[str, Any], keys: Sequence[str]) -> tuple[plt.Figure, plt.Axes]:
    """A figure with one group of bars per metric key, one bar per space (base, naive,
    gLocal); returns it and its axes, the keys' groups at x = 0, 1, ..."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    width = 0.25
    x = np.arange(len(keys))
    for i, name in enumerate(SPACES):
        ax.bar(
            x + (i - 1) * width,
            [metrics[name][key] for key in keys],
            width,
            color=_COLOURS[name],
            label=_LABELS[name],
        )
    return fig, ax


def _levels_figure(metrics: dict[str, Any], levels: Sequence[str]) -> plt.Figure:
    fig, ax = _space_bars(metrics, [f"odd_one_out/levels/{level}" for level in levels])
    x = np.arange(len(levels))
    ceilings = [metrics["base"].get(f"noise_ceiling/levels/{level}") for level in levels]
    if all(c is not None for c in ceilings):
        ax.scatter(x, ceilings, marker="_", s=900, color="black", zorder=3, label="noise ceiling")
    ax.axhline(1 / 3, color="black", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(x, levels)
    ax.set_ylabel("odd-one-out accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Accuracy per abstraction level")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def _downstream_figure(metrics: dict[str, Any], tasks: Sequence[str]) -> plt.Figure:
    names = [
        "anomaly AUC" if task == "anomaly_auc" else "{2}-shot ({1})".format(*task.split("/"))
        for task in tasks
    ]
    fig, ax = _space_bars(metrics, tasks)
    ax.set_xticks(np.arange(len(tasks)), names)
    ax.set_ylim(0, 1.05)
    ax.set_title("Held-out categories")
    ax.legend(fontsize=7, loc="lower right")
    return fig
