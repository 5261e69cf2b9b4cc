"""The ``gensim-quadrilaterals`` report: intruder errors per shape, the regularity effect.

Writes ``report.md`` of a ``gensim-quadrilaterals`` run
(:func:`alignjax.methods.gensim_quadrilaterals.run`): the findings (:func:`findings`: is
there a regularity effect, stronger than the baselines', and does it follow people's
errors?), every objective's error rate and regularity summary, its error per reference
shape, and two figures: the error per shape from the most to the least regular
(:func:`per_shape_figure`) and a few held-out trials with each objective's choice
(:func:`example_trials_figure`).
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np

from alignjax.data.quadrilaterals import SHAPE_NAMES
from alignjax.methods import gensim_report, objectives
from alignjax.methods.report import Finding, Report

if TYPE_CHECKING:
    from alignjax.methods.gensim_quadrilaterals import QuadrilateralsConfig

#: Chance error of the intruder task: one of six images picked at random.
CHANCE_ERROR = 5 / 6

TERMS = {
    "intruder task": "six outlines, five of one reference shape in random poses and one "
    "with a displaced vertex; the model picks the image farthest from the mean of the six "
    "embeddings (chance error 5/6 = 0.833)",
    "regularity order": "the 11 reference shapes from the most regular (square) to the least "
    "(random quadrilateral), as in the human studies",
    "regular / irregular error": "mean error of the three most regular shapes (square, "
    "rectangle, rhombus) / of the three least regular (hinge, trapezoid, random)",
    "gap": "irregular minus regular error; ± its binomial standard error",
    "Spearman": "rank correlation of per-shape error with the shape's place in the "
    "regularity order (positive: irregular shapes are harder, as for people)",
}


def gap_standard_error(per_shape_error: dict[str, float], num_trials: int) -> float:
    """The binomial standard error of the regularity gap: each shape's error is a mean of
    ``num_trials`` independent trials, ``var = e (1 - e) / n``, and the gap is a difference
    of means of three shapes each, ``var(gap) = sum of the six variances / 9``.

    >>> errors = dict(zip(SHAPE_NAMES, [0.5] * len(SHAPE_NAMES)))
    >>> round(gap_standard_error(errors, 100), 6)  # sqrt(6 * 0.25 / 100) / 3
    0.040825
    """
    # Imported here: the run module imports this one at its top.
    from alignjax.methods.gensim_quadrilaterals import NUM_EXTREME_SHAPES

    ends = [*SHAPE_NAMES[:NUM_EXTREME_SHAPES], *SHAPE_NAMES[-NUM_EXTREME_SHAPES:]]
    e = np.array([per_shape_error[s] for s in ends])
    return float(np.sqrt(np.sum(e * (1 - e) / num_trials)) / NUM_EXTREME_SHAPES)


def findings(
    config: QuadrilateralsConfig, metrics: dict[str, dict[str, Any]]
) -> tuple[list[Finding], list[str]]:
    """The claims of Marjieh et al. (Sec. 3.1) checked on ``metrics`` (as
    :func:`~alignjax.methods.gensim_quadrilaterals.run` returns them), and the notes
    their numbers need.

    The method is ``config.objectives[0]``. The regularity effect holds when its gap is
    more than two standard errors above zero and its Spearman correlation with the
    regularity order is positive; it is the method's when the gap also exceeds every
    baseline's.
    """
    method = config.objectives[0]
    baselines = [o for o in config.objectives if o not in objectives.GENSIM_OBJECTIVES]
    others = [o for o in config.objectives[1:] if o in objectives.GENSIM_OBJECTIVES]
    if method not in objectives.GENSIM_OBJECTIVES:
        return [
            gensim_report.untested(
                "generative-similarity training shows the regularity effect", config.objectives
            )
        ], []
    n = config.num_trials_per_shape
    held, evidence = _regularity_effect(metrics[method], method, n)
    for other in others:
        evidence += f"; the same for {_regularity_effect(metrics[other], other, n)[1]}"
    result = [
        Finding(
            f"with generative-similarity training ({method}) the intruder error is low for "
            "the most regular shapes and rises with irregularity (the regularity effect)",
            held,
            evidence,
        )
    ]
    if baselines:
        gaps = ", ".join(f"{b} {metrics[b]['regularity_gap']:.3f}" for b in baselines)
        result.append(
            Finding(
                "the baselines show a weaker regularity effect than the generative-similarity "
                "encoder",
                all(
                    metrics[method]["regularity_gap"] > metrics[b]["regularity_gap"]
                    for b in baselines
                ),
                f"gap {method} {metrics[method]['regularity_gap']:.3f} against {gaps}",
            )
        )
    if config.human_error_rates is None:
        result.append(
            Finding(
                "the model's per-shape errors correlate with people's",
                None,
                "no human per-shape error rates were given (`human_error_rates`); none are "
                "built in, as none were checked against the publication",
            )
        )
    else:
        rho = metrics[method]["human_correlation"]["spearman_rho"]
        values = ", ".join(
            f"{b} {metrics[b]['human_correlation']['spearman_rho']:.3f}" for b in baselines
        )
        result.append(
            Finding(
                "the model's per-shape errors correlate with people's, more than the baselines'",
                rho > 0
                and all(rho > metrics[b]["human_correlation"]["spearman_rho"] for b in baselines),
                f"Spearman with human error rates {method} {rho:.3f}"
                + (f" against {values}" if values else ""),
            )
        )
    notes = _notes(config, metrics, method, baselines)
    return result, notes


def _regularity_effect(m: dict[str, Any], name: str, num_trials: int) -> tuple[bool, str]:
    """Whether objective ``name``'s metrics ``m`` show the regularity effect (a gap more
    than two standard errors above zero, a positive Spearman correlation), and why."""
    se = gap_standard_error(m["per_shape_error"], num_trials)
    held = m["regularity_gap"] > 2 * se and m["regularity_spearman"] > 0
    evidence = (
        f"{name}: error {m['regular_error']:.3f} on the three most regular shapes, "
        f"{m['irregular_error']:.3f} on the three least, gap {m['regularity_gap']:.3f} ± "
        f"{se:.3f}; Spearman with the regularity order {m['regularity_spearman']:.3f} "
        f"(p = {m['regularity_spearman_p']:.2g})"
    )
    return held, evidence


def _notes(config, metrics, method, baselines) -> list[str]:
    notes = []
    if method != "gensim":
        notes.append(
            f"The method here is `{method}`, the many-negatives form of the paper's "
            "one-negative triplet loss (`gensim`), with the same optimal critic: in a short "
            "run the triplet loss learns the property classes slowly, and at learning rate "
            "1e-2 its embeddings collapse (see the module docstring)."
        )
    if "gensim" in config.objectives and config.train.learning_rate >= 1e-2:
        gap = metrics["gensim"]["regularity_gap"]
        notes.append(
            f"The triplet loss `gensim` trains at learning rate {config.train.learning_rate:g} "
            f"here (gap {gap:.3f}); it collapses at 1e-2, which is why the `paper` preset "
            "trains at 3e-3."
        )
    n = config.num_trials_per_shape
    p = metrics[method]["regularity_spearman_p"]
    if p >= 0.05 and _regularity_effect(metrics[method], method, n)[0]:
        notes.append(
            f"The Spearman correlation of {method} has p = {p:.2g} on 11 shapes, short of "
            "0.05: the effect is a step (the right-angled shapes are easy) more than a graded "
            "rise; the gap, over 3 x "
            f"{config.num_trials_per_shape} trials per end, is the sharper measure."
        )
    lowest = min(config.objectives, key=lambda o: metrics[o]["error_rate"])
    if lowest in baselines and not _regularity_effect(metrics[lowest], lowest, n)[0]:
        notes.append(
            f"{lowest} has the lowest error overall ({metrics[lowest]['error_rate']:.3f} against "
            f"{metrics[method]['error_rate']:.3f}) with no regularity effect (gap "
            f"{metrics[lowest]['regularity_gap']:.3f})"
            + (
                ": trained to recognise the 11 reference shapes, the very shapes of the test, it "
                "finds intruders of every shape alike. The claim concerns the pattern of errors "
                "over shapes, as in people, not their level."
                if lowest == "supcon" and config.supcon_items == "reference_shapes"
                else "; the claim concerns the pattern of errors over shapes, not their level."
            )
        )
    near_chance = [o for o in config.objectives if metrics[o]["error_rate"] > CHANCE_ERROR - 0.1]
    if near_chance:
        notes.append(
            f"Near chance (error within 0.1 of 5/6 = {CHANCE_ERROR:.3f}): "
            + ", ".join(f"{o} {metrics[o]['error_rate']:.3f}" for o in near_chance)
            + "; their gaps say little."
        )
    return notes


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
    claims, notes = findings(config, metrics)
    supcon = (
        "the 11 reference shapes' identities"
        if config.supcon_items == "reference_shapes"
        else "property classes of the generative model's draws"
    )
    report.findings(
        claims,
        notes,
        gensim_report.glossary(
            config.objectives,
            TERMS,
            simclr="InfoNCE between two augmented views (rotated, flipped, rescaled) of one "
            "outline",
            supcon=f"supervised contrastive learning on the labels of {supcon}",
        ),
    )
    size = config.world.image_size
    report.paragraph(
        f"Encoders ({config.encoder.kind}, {size}x{size} outlines, {config.train.num_steps} "
        f"steps of {config.objective.batch_size}) trained with each objective; "
        f"{config.num_trials_per_shape} held-out intruder trials per reference shape, the model "
        "choosing the image farthest from the mean of the six embeddings (chance error 5/6 = "
        "0.833). The claim (Marjieh et al. 2024, after Sablé-Meyer et al. 2021): with "
        "generative-similarity training the error is low for the most regular shapes and rises "
        "with irregularity (positive Spearman correlation of error with the rank in the "
        "regularity order), unlike the baselines (see Findings). "
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
    report.paragraph(gensim_report.training_curves(workdir, config.objectives))
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
    ax.set_title(
        f"Intruder task: error per reference shape ({n} held-out trials each; bars ± 1 s.e.)"
    )
    ax.legend(
        title="objective (ρ: Spearman of error\nwith the irregularity rank)",
        fontsize=8,
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )
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
        "Example intruder trials, one row per reference shape (green frame: the intruder).\n"
        "Above each image: the objectives that chose it (green: a right choice, red: wrong)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig
