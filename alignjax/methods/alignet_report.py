"""AligNet's report: alignment per abstraction level, agreement, downstream, pictures.

Writes ``report.md`` of an AligNet run (:func:`alignjax.methods.alignet.run`) from the
metrics of :mod:`alignjax.methods.alignet_evaluation`, showing what the source
provides: the odd-one-out accuracy of every model on held-out human triplets and per
abstraction level beside the noise ceiling, the students' gains over the base student,
the agreement with each teacher on its test triplets, the downstream table (few-shot,
anomaly detection, neighbour preservation), the surrogate teacher's fit (or that there
was none), and three figures: grouped bars of accuracy per set and level, 2-D PCA of
the evaluation images coloured by category, and the students' distillation curves.

>>> cluster_purity(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 7]))
0.75
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from alignjax.data.simulated import SimulatedConfig
from alignjax.data.sources import ImageSource
from alignjax.methods import alignet_findings
from alignjax.methods.alignet_config import AligNetConfig
from alignjax.methods.report import Report, tensorboard_hint

MODEL_NAMES = alignet_findings.MODEL_NAMES
MODEL_COLOURS = {
    "base": "#9e9e9e",
    "unalignet": "#f4a259",
    "alignet": "#2a9d8f",
    "teacher": "#8d99ae",
    "teacher_ud": "#264653",
}
DOWNSTREAM = alignet_findings.DOWNSTREAM


def cluster_purity(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of items whose label is the most frequent one of their cluster."""
    clusters = np.asarray(clusters)
    codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
    agree = sum(np.bincount(codes[clusters == cluster]).max() for cluster in np.unique(clusters))
    return float(agree / len(codes))


def alignment_columns(metrics: dict[str, Any]) -> list[str]:
    """The human-alignment metrics every model has: Levels (all, per level) and the
    held-out human triplets (all)."""
    names = metrics["base"]
    levels = [n for n in names if n.startswith("odd_one_out/levels")]
    return levels + [n for n in ("odd_one_out/humans",) if n in names]


def _title(column: str) -> str:
    parts = column.split("/")
    if len(parts) == 2:
        return {"levels": "Levels (all)", "humans": "held-out humans"}.get(parts[1], parts[1])
    return parts[-1]


def _agreement_title(name: str) -> str:
    """``[dot/]odd_one_out/alignet_teacher/within`` -> ``AligNet teacher: within``."""
    parts = name.split("odd_one_out/", 1)[1].split("/")
    teacher = MODEL_NAMES[parts[0].removesuffix("_teacher")].replace("student", "teacher")
    return f"{teacher}: {parts[1] if len(parts) > 1 else 'all'}"


def _setting(config: AligNetConfig, source: ImageSource) -> str:
    data = config.data
    if isinstance(data, SimulatedConfig):
        return (
            f"Setting: {source.description}. Simulated humans choose the odd one out by the "
            f"Luce rule (T = {data.observer_temperature:g}) on the exact log generative "
            f"similarity of the categories; {data.human_train} of their triplets train the "
            "surrogate teacher."
        )
    humans = source.triplets.get("humans")
    judged = (
        f"{len(humans['train'])} human triplets train the surrogate teacher, "
        f"{len(humans['validation'])} choose its temperature and penalty, "
        f"{len(humans['test'])} are held out"
        if humans
        else "no human triplets: the teacher stays untransformed (UnAligNet only)"
    )
    return f"Your data: {source.description}; {judged}."


def _models_text(config: AligNetConfig) -> str:
    if config.teacher_features is not None:
        teacher = f"features from {config.teacher_features}"
    elif config.teacher_checkpoint is not None:
        teacher = f"the big_vision checkpoint {config.teacher_checkpoint}"
    elif isinstance(config.data, SimulatedConfig):
        teacher = f"{config.teacher_objective} on {config.teacher_labels}-level labels"
    else:
        teacher = f"trained here ({config.teacher_objective}) on your images' classes"
    student = (
        f"the big_vision checkpoint {config.student_checkpoint}"
        if config.student_checkpoint is not None
        else f"pretrained with {config.student_objective}"
    )
    sampling, distillation = config.sampling, config.distillation
    return (
        f"Teacher: {teacher}. Student: a ViT ({config.student.variant}) with a triplet head, "
        f"{student}, then distilled on {sampling.num_triplets} triplets "
        f"({sampling.num_clusters} k-means clusters, mix within/border/between = "
        f"{'/'.join(f'{m:.2f}' for m in sampling.mix)}) with the "
        f"{distillation.divergence.upper()} loss (tau = {distillation.student_temperature:g}) "
        f"and decay to the base student's weights (w = {config.student_train.decay_to_init:g}); "
        "the UnAligNet student goes through the same chain from the untransformed teacher. "
        "Distilled students: " + ", ".join(f"`{v}/student.npz`" for v in config.variants) + " "
        "(big_vision layout)."
    )


def write_report(
    config: AligNetConfig,
    workdir: pathlib.Path,
    metrics: dict[str, Any],
    spaces: dict[str, dict[str, np.ndarray]],
    source: ImageSource,
) -> pathlib.Path:
    """Writes ``workdir/report.md`` and its PNGs."""
    ev = config.evaluation
    other = "dot" if ev.kernel == "cosine" else "cosine"
    models = [name for name in MODEL_NAMES if name in metrics]
    students = [name for name in ("alignet", "unalignet") if name in metrics]
    report = Report("AligNet: aligning a student with human concepts across abstraction levels")
    report.findings(
        *alignet_findings.findings(
            config,
            metrics,
            alignet_findings.triplet_counts(source.triplets),
            triplet_spread=alignet_findings.triplet_spread(spaces["base"].get("evaluation")),
        )
    )
    report.heading("What was run")
    report.paragraph(f"{_setting(config, source)} {_models_text(config)}")

    columns = alignment_columns(metrics)
    if columns:
        titles = ["model"] + [_title(c) for c in columns]
        report.heading("Odd-one-out accuracy on held-out human triplets")
        report.paragraph(
            f"{ev.kernel.capitalize()} similarity. Levels: triplets over the evaluation images "
            "split at the coarse, boundary or fine level of the category tree; held-out humans: "
            "the human triplets no model was fitted to. Chance is 0.333; the noise ceiling "
            "(where the choices' probabilities are known) is the expected accuracy of always "
            "picking the most probable pair."
        )
        rows = [
            {"model": MODEL_NAMES[m], **{_title(c): metrics[m][c] for c in columns}} for m in models
        ]
        ceiling = {
            _title(c): metrics["base"].get(c.replace("odd_one_out/", "noise_ceiling/"))
            for c in columns
        }
        if any(v is not None for v in ceiling.values()):
            rows.append({"model": "noise ceiling", **ceiling})
        report.table(rows, titles)
        report.paragraph("Change over the base student (percentage points):")
        report.table(
            [
                {
                    "student": MODEL_NAMES[m],
                    **{_title(c): 100 * (metrics[m][c] - metrics["base"][c]) for c in columns},
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
                    **{_title(c): metrics[m][f"{other}/{c}"] for c in columns},
                }
                for m in models
            ],
            titles,
        )
        report.figure(
            _accuracy_figure(metrics, models, columns, ev.kernel),
            workdir,
            "accuracy_per_level.png",
            f"Odd-one-out accuracy ({ev.kernel} similarity) of every model per triplet set, "
            "against the noise ceiling and chance",
        )

    # Agreement in the similarity the students were distilled with, as the teacher chose.
    kernel = config.distillation.kernel
    prefix = "" if kernel == ev.kernel else f"{kernel}/"
    agreement = [
        n for n in metrics["base"] if n.startswith(f"{prefix}odd_one_out/") and "_teacher" in n
    ]
    if agreement:
        report.heading("Agreement with the teachers on triplets the students never saw")
        report.paragraph(
            "Fraction of each teacher's test triplets (sampled like the training triplets, "
            "none of them trained on) whose odd one out a model picks as the teacher does "
            f"({kernel} similarity, the distillation's), overall and per sampling kind."
        )
        titles = {n: _agreement_title(n) for n in agreement}
        report.table(
            [
                {"model": MODEL_NAMES[m], **{titles[n]: metrics[m][n] for n in agreement}}
                for m in models
            ],
            ["model", *titles.values()],
        )

    downstream = [n for n in metrics["base"] if n.startswith("few_shot/")] + [
        n for n in DOWNSTREAM if any(n in metrics[m] for m in models)
    ]
    if downstream:
        report.heading("Downstream and neighbours")
        report.paragraph(
            f"Few-shot classification (mean over {len(ev.few_shot_seeds)} draws; the logistic "
            "probe on standardised features, 1-NN with cosine similarity) and k-NN anomaly "
            "detection (one category normal, the others anomalous; mean ROC-AUC) on "
            + (
                "categories no model saw"
                if isinstance(config.data, SimulatedConfig)
                else "a labelled sample of your images (their classes were in the pool, unlabelled)"
            )
            + f"; neighbour preservation (k = {ev.neighbours}) of each student against the base "
            "student on the evaluation images."
        )
        report.table(
            [
                {
                    "model": MODEL_NAMES[m],
                    **{alignet_findings.downstream_title(n): metrics[m].get(n) for n in downstream},
                }
                for m in models
            ],
            ["model"] + [alignet_findings.downstream_title(n) for n in downstream],
        )
    report.figure(
        _pca_figure(spaces, models, source),
        workdir,
        "embeddings_pca.png",
        "The evaluation images in each model's space, projected on its first two principal "
        "components and coloured by category",
    )

    report.heading("Surrogate teacher (uncertainty distillation)")
    ud = metrics["uncertainty_distillation"]
    if "aligned/test_kl" in ud:
        report.paragraph(
            f"Chosen on the validation triplets: T = {ud['temperature']:g}, lambda = "
            f"{ud['penalty']:g}; the untransformed teacher's temperature T = "
            f"{ud['untransformed_temperature']:.3g}. KL(p_human || p_teacher) on held-out "
            "triplets (lower is better):"
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
    else:
        report.paragraph(
            "No human triplets were given: the teacher stays untransformed and only the "
            "UnAligNet student is distilled. Its temperature, "
            f"T = {ud['untransformed_temperature']:.3g}, is the spread of its similarities."
        )
    purity = metrics.get("cluster_purity", {})
    if purity:
        names = list(next(iter(purity.values())))
        report.paragraph("Purity of the pool's k-means clusters with respect to the labels:")
        report.table(
            [
                {"teacher": MODEL_NAMES[v].replace(" student", ""), **values}
                for v, values in purity.items()
            ],
            ["teacher", *names],
        )
    curves = _curves_figure(workdir, students)
    if curves is not None:
        report.figure(
            curves,
            workdir,
            "distillation_curves.png",
            "Student distillation: loss and agreement with the teacher",
        )
    report.heading("Training curves in TensorBoard")
    report.paragraph(_tensorboard_text(workdir))
    seconds = metrics.get("stage_seconds", {})
    if seconds:
        resumed = metrics.get("resumed_stage_seconds", {})
        report.heading("Stage times")
        report.paragraph(
            "Seconds of the run that first finished each stage (with those of earlier runs "
            "stopped inside it); CPU time sums all threads."
            + (
                " A later rerun's seconds (restoring, not retraining) are beside them."
                if resumed
                else ""
            )
        )
        rows = []
        for k, v in seconds.items():
            row = {"stage": k, "wall": float(v["wall"]), "CPU": float(v["cpu"])}
            if k in resumed:
                row["rerun wall"] = float(resumed[k]["wall"])
            rows.append(row)
        columns = ["stage", "wall", "CPU"] + (["rerun wall"] if resumed else [])
        report.table(rows, columns, digits=1)
    return report.write(workdir)


def _tensorboard_text(workdir: pathlib.Path) -> str:
    """How to open the event files, and which stages wrote them."""
    runs = sorted(str(p.parent.relative_to(workdir)) for p in workdir.glob("**/tensorboard"))
    listed = (
        " One TensorBoard run per training stage: " + ", ".join(f"`{r}`" for r in runs) + "."
        if runs
        else ""
    )
    return tensorboard_hint(workdir) + listed


def _accuracy_figure(metrics, models, columns, kernel):
    fig, ax = plt.subplots(figsize=(1.9 * len(columns) + 2.5, 3.8))
    width = 0.8 / len(models)
    x = np.arange(len(columns))
    for i, model in enumerate(models):
        values = [metrics[model][c] for c in columns]
        offset = (i - (len(models) - 1) / 2) * width
        ax.bar(x + offset, values, width, label=MODEL_NAMES[model], color=MODEL_COLOURS[model])
    ceilings = [
        (j, metrics["base"].get(column.replace("odd_one_out/", "noise_ceiling/")))
        for j, column in enumerate(columns)
    ]
    for k, (j, ceiling) in enumerate(c for c in ceilings if c[1] is not None):
        label = "noise ceiling (best possible, expected)" if k == 0 else None
        ax.hlines(ceiling, j - 0.42, j + 0.42, colors="black", linewidth=2, label=label)
    ax.axhline(1 / 3, color="black", linestyle="--", linewidth=0.8, label="chance (1/3)")
    ax.set_xticks(x, [_title(c) for c in columns])
    ax.set_xlabel("triplet set (Levels: split at that level of the category tree)")
    ax.set_ylim(0.25, 1.0)
    ax.set_ylabel(f"odd-one-out accuracy\n(fraction correct, {kernel} similarity)")
    ax.set_title("Alignment with (simulated) humans per abstraction level")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _category_names(source: ImageSource) -> tuple[np.ndarray | None, list[str], str]:
    """The evaluation images' category codes ``[n]``, the codes' names and what they are
    (superordinate categories where the source has them, else leaves)."""
    labels = source.labels.get("evaluation", {})
    kind = "superordinate" if "superordinate" in labels else "leaf"
    category = labels.get(kind)
    if category is None:
        return None, [], ""
    values, codes = np.unique(category, return_inverse=True)
    tree = source.tree
    names = [tree.names[v] if tree is not None else str(v) for v in values]
    return codes.reshape(-1), names, f"{kind} category"


def _pca_figure(spaces, models, source: ImageSource):
    codes, names, kind = _category_names(source)
    n = len(source.splits["evaluation"])
    codes = np.zeros(n, int) if codes is None else codes
    shown = [m for m in ("base", "unalignet", "alignet", "teacher_ud") if m in models]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.3 * len(shown), 3.6), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colours = cmap(codes % cmap.N)
    for ax, model in zip(axes[0], shown):
        x = spaces[model]["evaluation"]
        x = x - x.mean(axis=0)
        _, singular, vt = np.linalg.svd(x, full_matrices=False)
        explained = singular**2 / np.sum(singular**2)
        xy = x @ vt[:2].T
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=6, alpha=0.7, linewidths=0)
        ax.set_title(MODEL_NAMES[model])
        ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f} % of variance)")
        ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f} % of variance)")
        ax.tick_params(labelsize=7)
    if names and len(names) <= 20:
        handles = [
            plt.Line2D([], [], marker="o", linestyle="", color=cmap(i % cmap.N), label=name)
            for i, name in enumerate(names)
        ]
        axes[0, -1].legend(
            handles=handles,
            title=kind,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            frameon=False,
            fontsize=8,
        )
    fig.suptitle(
        "Evaluation images in each model's embedding space (2-D PCA)"
        + (f", coloured by {kind}" if names else "")
    )
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
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for student, rows in records.items():
        steps = [r["step"] for r in rows]
        style = {"label": MODEL_NAMES[student], "color": MODEL_COLOURS[student]}
        axes[0].plot(steps, [r["loss"] for r in rows], **style)
        axes[1].plot(steps, [r["teacher_agreement"] for r in rows], **style)
    axes[0].set_title("distillation loss")
    axes[0].set_ylabel("divergence to the teacher (nats)")
    axes[1].set_title("agreement with the teacher")
    axes[1].set_ylabel("fraction of a batch's triplets\nwith the teacher's odd one out")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.legend(frameon=False, fontsize=8)
    fig.suptitle("Student distillation from each teacher (on the training batches)")
    fig.tight_layout()
    return fig
