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
from alignjax.methods import glocal_findings
from alignjax.methods.report import Report, tensorboard_hint

SPACES = glocal_findings.SPACES
_COLOURS = {"base": "tab:gray", "naive": "tab:orange", "glocal": "tab:blue"}
_LABELS = glocal_findings.LABELS
_SETTING = ("learning_rate", "penalty_weight", "alpha", "temperature")


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
    name = glocal_findings.accuracy_set(metrics)
    accuracy = f"odd_one_out/{name}"
    report = Report("gLocal: human alignment that keeps local structure")
    report.findings(*glocal_findings.findings(metrics, evaluation))
    report.heading("What was run")
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
    report.heading("Alignment, local structure and held-out categories")
    downstream = glocal_findings.downstream_keys(metrics["base"])
    columns = [
        accuracy,
        f"noise_ceiling/{name}",
        "odd_one_out/validation",
        "neighbour_preservation",
        *downstream,
    ]
    columns = [c for c in dict.fromkeys(columns) if c in metrics["base"]]
    report.table(_titled(metrics, SPACES, columns), ["space", *map(_title, columns)])
    levels = [level for level in LEVELS if f"odd_one_out/levels/{level}" in metrics["base"]]
    if levels:
        report.heading("Odd-one-out accuracy per abstraction level")
        keys = [f"odd_one_out/levels/{level}" for level in levels]
        ceiling = {
            _title(key): metrics["base"].get(key.replace("odd_one_out", "noise_ceiling"))
            for key in keys
        }
        rows = _titled(metrics, SPACES, keys) + [{"space": "noise ceiling", **ceiling}]
        report.table(rows, ["space", *levels])
        report.figure(
            _levels_figure(metrics, levels),
            workdir,
            "accuracy_per_level.png",
            "Odd-one-out accuracy per abstraction level of the base features and both "
            "selected transforms, against the noise ceiling and chance",
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
    grid_columns = [*_SETTING, "odd_one_out/validation", accuracy, "neighbour_preservation"]
    grid_columns = list(dict.fromkeys(grid_columns))
    report.table(
        [
            {
                "kind": row["kind"],
                **{_title(c): row[c] for c in grid_columns},
                # The naive transform has no local term: no alpha, no tau.
                **({"alpha": None, "tau": None} if row["kind"] == "naive" else {}),
                "selected": "yes" if row["selected"] else "",
            }
            for row in metrics["grid"]
        ],
        ["kind", *map(_title, grid_columns), "selected"],
    )
    report.heading("Training curves in TensorBoard")
    report.paragraph(
        tensorboard_hint(workdir) + " One TensorBoard run per fit: the base model (`base`, "
        "when it was trained here) and every transform of the grid "
        "(`transforms/<kind>/<setting>`)."
    )
    return report.write(workdir)


def _title(key: str) -> str:
    """A metric's or a grid setting's column title."""
    return glocal_findings.SETTINGS.get(key) or glocal_findings.metric_title(key)


def _titled(
    metrics: dict[str, Any], spaces: Sequence[str], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """One table row per space: its values of ``keys`` under their titles."""
    return [{"space": space, **{_title(k): metrics[space][k] for k in keys}} for space in spaces]


def _trade_off_figure(metrics: dict[str, Any], accuracy: str, neighbours: int) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    for kind in ("naive", "glocal"):
        rows = [r for r in metrics["grid"] if r["kind"] == kind]
        ax.scatter(
            [r["neighbour_preservation"] for r in rows],
            [r[accuracy] for r in rows],
            s=25,
            alpha=0.35,
            color=_COLOURS[kind],
            label=f"{_LABELS[kind]} (every grid setting)",
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
    ax.axhline(1 / 3, color="black", linestyle=":", linewidth=1, label="chance (1/3)")
    ax.set_xlabel(
        f"nearest-neighbour preservation: fraction of each item's {neighbours}\n"
        "nearest base-model neighbours kept (1 = local structure unchanged)"
    )
    ax.set_ylabel(f"odd-one-out accuracy (fraction correct),\n{accuracy.split('/')[1]} triplets")
    ax.set_title("Alignment with humans vs. local structure kept")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _space_bars(metrics: dict[str, Any], keys: Sequence[str]) -> tuple[plt.Figure, plt.Axes]:
    """A figure with one group of bars per metric key, one bar per space (base, naive,
    gLocal); returns it and its axes, the keys' groups at x = 0, 1, ..."""
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
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
    for j, ceiling in enumerate(ceilings):
        if ceiling is not None:
            label = "noise ceiling (best possible, expected)" if j == 0 else None
            ax.hlines(ceiling, j - 0.42, j + 0.42, colors="black", linewidth=2, label=label)
    ax.axhline(1 / 3, color="black", linestyle=":", linewidth=1, label="chance (1/3)")
    ax.set_xticks(x, levels)
    ax.set_xlabel("abstraction level of the Levels triplets")
    ax.set_ylabel("odd-one-out accuracy\n(fraction correct)")
    ax.set_ylim(0, 1)
    ax.set_title("Accuracy per abstraction level (test items)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _downstream_figure(metrics: dict[str, Any], tasks: Sequence[str]) -> plt.Figure:
    fig, ax = _space_bars(metrics, tasks)
    ax.set_xticks(np.arange(len(tasks)), [glocal_findings.metric_title(task) for task in tasks])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("few-shot: accuracy (fraction correct)\nanomaly detection: ROC-AUC")
    ax.set_title("Held-out categories (no transform saw them)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig
