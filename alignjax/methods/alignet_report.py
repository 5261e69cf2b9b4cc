"""AligNet's report: alignment per abstraction level, downstream transfer, pictures.

Writes ``report.md`` of an ``alignet`` run (:func:`alignjax.methods.alignet.run`): the
odd-one-out accuracy of every model per level beside the noise ceiling, the students'
gains over the base student, the downstream table (few-shot, anomaly detection,
nearest-neighbour preservation), the surrogate teacher's fit, and three figures:
grouped bars of accuracy per level, 2-D PCA of the Levels images coloured by
superordinate category, and the students' distillation curves.

>>> cluster_purity(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7]))
0.75
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from alignjax.methods import alignet_data
from alignjax.methods.report import Report

MODEL_NAMES = {
    "base": "base student",
    "unalignet": "UnAligNet student",
    "alignet": "AligNet student",
    "teacher": "teacher",
    "teacher_ud": "teacher + UD",
}
MODEL_COLOURS = {
    "base": "#9e9e9e",
    "unalignet": "#f4a259",
    "alignet": "#2a9d8f",
    "teacher": "#8d99ae",
    "teacher_ud": "#264653",
}


def cluster_purity(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of items whose label is the most frequent one of their cluster."""
    clusters = np.asarray(clusters)
    codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
    agree = sum(np.bincount(codes[clusters == cluster]).max() for cluster in np.unique(clusters))
    return float(agree / len(codes))


def _models(metrics: dict[str, Any]) -> list[str]:
    return [name for name in MODEL_NAMES if name in metrics]


def _columns(metrics: dict[str, Any]) -> list[str]:
    ceiling = metrics["noise_ceiling"]
    return ["accuracy"] + [k for k in ceiling if k.startswith("accuracy/")] + ["things_accuracy"]


def _column_title(column: str) -> str:
    return {"accuracy": "Levels (all)", "things_accuracy": "THINGS-like"}.get(
        column, column.split("/")[-1]
    )


def write_report(
    config: Any,
    workdir: pathlib.Path,
    metrics: dict[str, Any],
    spaces: dict[str, dict[str, np.ndarray]],
    data_dir: pathlib.Path,
) -> pathlib.Path:
    """Writes ``workdir/report.md`` and its PNGs."""
    ev = config.evaluation
    other = "dot" if ev.kernel == "cosine" else "cosine"
    models = _models(metrics)
    columns = _columns(metrics)
    data = config.data
    report = Report("AligNet: aligning a student with human concepts across abstraction levels")
    setting = (
        f"Fashion-MNIST ({data.pool_size} pool images, the documented superordinate -> class hierarchy)"
        if data.dataset == "fashion_mnist"
        else f"the hierarchy world ({data.world.tree.num_leaves} subordinate categories, "
        f"{data.world.image_size}x{data.world.image_size} images, {data.pool_size} pool images)"
    )
    report.paragraph(
        f"Setting: {setting}. Simulated humans choose the odd one out by the Luce rule (T = "
        f"{data.observer_temperature:g}) on the exact log generative similarity of the categories. "
        f"Teacher: {config.teacher_objective} on {config.teacher_labels}-level labels; uncertainty "
        f"distillation (UD) fits an affine transform of its features to {data.human_train} simulated "
        f"human triplets. Student: a ViT ({config.student.variant}) with a triplet head, pretrained with "
        f"{config.student_objective}, then distilled on {config.sampling.num_triplets} triplets "
        f"({config.sampling.num_clusters} k-means clusters, mix within/border/between = "
        f"{'/'.join(f'{m:.2f}' for m in config.sampling.mix)}) with the "
        f"{config.distillation.divergence.upper()} loss (tau = {config.distillation.student_temperature:g}) "
        f"and decay to the pretrained weights (w = {config.student_train.decay_to_init:g}). "
        "The UnAligNet student is distilled through the same chain from the untransformed teacher."
    )

    report.heading("Odd-one-out accuracy on held-out human triplets")
    report.paragraph(
        f"{ev.kernel.capitalize()} similarity. Levels: new images of the seen categories, "
        f"{data.levels_per_level} triplets per level; THINGS-like: random triplets over held-out objects "
        "(most are coarse or carry no hierarchical signal). Chance is 0.333; the noise ceiling is the "
        "accuracy of the observers' own most probable choice."
    )
    rows = [
        {"model": MODEL_NAMES[m], **{_column_title(c): metrics[m][c] for c in columns}}
        for m in models
    ]
    rows.append(
        {
            "model": "noise ceiling",
            **{_column_title(c): metrics["noise_ceiling"][c] for c in columns},
        }
    )
    titles = ["model"] + [_column_title(c) for c in columns]
    report.table(rows, titles)
    students = [m for m in ("alignet", "unalignet") if m in metrics]
    if students:
        report.paragraph("Change over the base student (accuracy points x 100):")
        report.table(
            [
                {
                    "student": MODEL_NAMES[m],
                    **{
                        _column_title(c): 100 * (metrics[m][c] - metrics["base"][c])
                        for c in columns
                    },
                }
                for m in students
            ],
            ["student"] + titles[1:],
            digits=1,
        )
    report.paragraph(f"The same with {other} similarity:")
    report.table(
        [
            {
                "model": MODEL_NAMES[m],
                **{_column_title(c): metrics[m][f"{other}/{c}"] for c in columns},
            }
            for m in models
        ],
        titles,
    )
    report.figure(
        _accuracy_figure(metrics, models, columns),
        workdir,
        "accuracy_per_level.png",
        f"Odd-one-out accuracy per abstraction level ({ev.kernel}); black ticks: noise ceiling, dashed: chance",
    )

    report.heading("Downstream: held-out categories")
    report.paragraph(
        f"{ev.n_shot}-shot classification (logistic regression on standardised features, and 1-NN "
        f"with cosine similarity; mean over {len(ev.few_shot_seeds)} draws) and k-NN anomaly detection (one category normal, the others "
        "anomalous; mean ROC-AUC) on categories no model saw; nearest-neighbour preservation "
        f"(k = {ev.neighbours}) of each student against the base student on the Levels images."
    )
    report.table(
        [
            {
                "model": MODEL_NAMES[m],
                "few-shot (logistic)": metrics[m]["few_shot"],
                "few-shot (1-NN)": metrics[m]["few_shot_knn"],
                "anomaly AUC": metrics[m]["anomaly_auc"],
                "NN preservation": metrics[m].get("nn_preservation"),
            }
            for m in models
        ],
        ["model", "few-shot (logistic)", "few-shot (1-NN)", "anomaly AUC", "NN preservation"],
    )
    report.figure(
        _pca_figure(spaces, models, data_dir),
        workdir,
        "embeddings_pca.png",
        "2-D PCA of the Levels images in each space, coloured by superordinate category",
    )

    report.heading("Surrogate teacher (uncertainty distillation)")
    ud = metrics["uncertainty_distillation"]
    report.paragraph(
        f"Chosen on the validation triplets: T = {ud['temperature']:g}, lambda = {ud['penalty']:g}; the "
        f"untransformed teacher's temperature T = {ud['untransformed_temperature']:.3g}. "
        "KL(p_human || p_teacher) on held-out triplets (lower is better):"
    )
    report.table(
        [
            {
                "teacher": name,
                "validation KL": ud[f"{key}/validation_kl"],
                "test KL": ud[f"{key}/test_kl"],
            }
            for name, key in (("untransformed", "untransformed"), ("UD transform", "aligned"))
        ],
        ["teacher", "validation KL", "test KL"],
    )
    report.table(ud["validation_grid"], ["temperature", "penalty", "kl"])
    purity = metrics.get("cluster_purity", {})
    if purity:
        report.paragraph(
            "Purity of the pool's k-means clusters with respect to the true categories:"
        )
        report.table(
            [
                {"teacher": MODEL_NAMES[v].replace(" student", ""), **values}
                for v, values in purity.items()
            ],
            ["teacher", *alignet_data.LABELS],
        )
    curves = _curves_figure(workdir, students)
    if curves is not None:
        report.figure(
            curves,
            workdir,
            "distillation_curves.png",
            "Student distillation: loss and agreement with the teacher",
        )
    seconds = metrics.get("stage_seconds", {})
    if seconds:
        report.heading("Stage times")
        report.paragraph(
            "Seconds of this run (restored stages take about 0 s); CPU time sums all threads."
        )
        report.table(
            [
                {"stage": k, "wall": float(v["wall"]), "CPU": float(v["cpu"])}
                for k, v in seconds.items()
            ],
            ["stage", "wall", "CPU"],
            digits=1,
        )
    return report.write(workdir)


def _accuracy_figure(metrics, models, columns):
    fig, ax = plt.subplots(figsize=(1.9 * len(columns) + 2.5, 3.8))
    width = 0.8 / len(models)
    x = np.arange(len(columns))
    for i, model in enumerate(models):
        values = [metrics[model][c] for c in columns]
        ax.bar(
            x + (i - (len(models) - 1) / 2) * width,
            values,
            width,
            label=MODEL_NAMES[model],
            color=MODEL_COLOURS[model],
        )
    for j, column in enumerate(columns):
        ceiling = metrics["noise_ceiling"][column]
        ax.hlines(ceiling, j - 0.42, j + 0.42, colors="black", linewidth=2)
    ax.axhline(1 / 3, color="black", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, [_column_title(c) for c in columns])
    ax.set_ylim(0.25, 1.0)
    ax.set_ylabel("odd-one-out accuracy")
    ax.set_title("Alignment with simulated humans per abstraction level")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _pca_figure(spaces, models, data_dir):
    images = alignet_data.load_images(data_dir, "levels")
    superordinate = np.unique(images["superordinate"], return_inverse=True)[1].reshape(-1)
    shown = [m for m in ("base", "unalignet", "alignet", "teacher_ud") if m in models]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.3 * len(shown), 3.4), squeeze=False)
    colours = plt.get_cmap("tab10")(superordinate % 10)
    for ax, model in zip(axes[0], shown):
        x = spaces[model]["levels"]
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        xy = x @ vt[:2].T
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=6, alpha=0.7, linewidths=0)
        ax.set_title(MODEL_NAMES[model])
        ax.set_xlabel("PC 1")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("PC 2")
    fig.suptitle("Levels images, coloured by superordinate category")
    fig.tight_layout()
    return fig


def _curves_figure(workdir, students):
    records = {}
    for student in students:
        path = pathlib.Path(workdir) / student / "student" / "metrics.jsonl"
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            records[student] = [r for r in rows if "loss" in r]
    if not records:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.2))
    for student, rows in records.items():
        steps = [r["step"] for r in rows]
        axes[0].plot(
            steps,
            [r["loss"] for r in rows],
            label=MODEL_NAMES[student],
            color=MODEL_COLOURS[student],
        )
        axes[1].plot(
            steps,
            [r["teacher_agreement"] for r in rows],
            label=MODEL_NAMES[student],
            color=MODEL_COLOURS[student],
        )
    axes[0].set_ylabel("distillation loss")
    axes[1].set_ylabel("agreement with the teacher's odd one out")
    for ax in axes:
        ax.set_xlabel("step")
    axes[1].legend(frameon=False)
    fig.tight_layout()
    return fig
