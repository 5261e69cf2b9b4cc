"""gLocal's findings: each claim of the paper, held or not in one run, from its metrics.

:func:`findings` reads the metrics of :func:`alignjax.methods.glocal.align` and returns
the ``## Findings`` section of its report (:meth:`alignjax.methods.report.Report.findings`):
one :class:`~alignjax.methods.report.Finding` per claim of Muttenthaler et al. (2023),
held, not held or not tested in this run with its numbers; notes where a number needs a
sentence (above the noise ceiling, below the base model, a grid that is not the
released one); and a glossary of the report's terms.

Every verdict compares this run's numbers: "improves" means higher on every metric
named, "about as much" means within :data:`ABOUT_AS_MUCH` (one accuracy point).

>>> base = {"few_shot/logistic/5": 0.887, "anomaly_auc": 0.982}
>>> glocal = {"few_shot/logistic/5": 0.852, "anomaly_auc": 0.975}
>>> improves_downstream(base, glocal).held
False
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alignjax.data.levels import LEVELS
from alignjax.evaluation.suite import EvaluationConfig
from alignjax.methods.glocal_fit import GlocalConfig
from alignjax.methods.report import (
    Finding,
    Findings,
    changes,
    downstream_keys,
    improvement,
)

SPACES = ("base", "naive", "glocal")
LABELS = {"base": "base model", "naive": "naive transform", "glocal": "gLocal"}
#: "gLocal aligns about as much as the naive transform": at most this far below it.
ABOUT_AS_MUCH = 0.01
#: The grid's settings, as the report names them.
SETTINGS = {
    "learning_rate": "lr",
    "penalty_weight": "lambda",
    "alpha": "alpha",
    "temperature": "tau",
}


def accuracy_set(metrics: Mapping[str, Any]) -> str:
    """The triplet set the report's accuracies are of: ``"test"`` when there is one."""
    return "test" if "odd_one_out/test" in metrics["base"] else "validation"


def metric_title(key: str) -> str:
    """A metric's name in the report: ``few_shot/logistic/5`` -> ``5-shot (logistic)``,
    ``odd_one_out/levels/coarse`` -> ``coarse``, ``odd_one_out/test`` -> ``test accuracy``."""
    parts = key.split("/")
    if parts[0] == "few_shot":
        return f"{parts[2]}-shot ({'1-NN' if parts[1] == 'knn' else parts[1]})"
    if parts[0] in ("odd_one_out", "noise_ceiling") and len(parts) == 3:
        return parts[2] if parts[0] == "odd_one_out" else f"noise ceiling ({parts[2]})"
    if parts[0] == "odd_one_out":
        return f"{parts[1]} accuracy"
    if parts[0] == "noise_ceiling":
        return f"noise ceiling ({parts[1]})"
    return {"anomaly_auc": "anomaly AUC", "neighbour_preservation": "NN preservation"}.get(key, key)


def findings(metrics: Mapping[str, Any], evaluation: EvaluationConfig) -> Findings:
    """The Findings section of a gLocal run.

    Args:
      metrics: ``{"base" | "naive" | "glocal": {metric: value}, "grid": [rows]}``.
      evaluation: the evaluation's settings (the base features' kernel, neighbours).

    Returns:
      ``Findings(findings, notes, glossary)``.
    """
    base, naive, glocal = (metrics[space] for space in SPACES)
    accuracy = f"odd_one_out/{accuracy_set(metrics)}"
    name = f"{accuracy_set(metrics)} accuracy"
    claims = [
        Finding(
            "gLocal improves alignment with human odd-one-out choices over the base features",
            glocal[accuracy] > base[accuracy],
            f"{name} {base[accuracy]:.3f} -> {glocal[accuracy]:.3f}",
        ),
        Finding(
            "gLocal aligns about as much as the naive transform (read here: at most "
            f"{100 * ABOUT_AS_MUCH:g} point below it)",
            glocal[accuracy] >= naive[accuracy] - ABOUT_AS_MUCH,
            f"{name}: gLocal {glocal[accuracy]:.3f}, naive {naive[accuracy]:.3f}, "
            f"{100 * (glocal[accuracy] - naive[accuracy]):+.1f} points",
        ),
        Finding(
            "gLocal keeps the base features' local structure (nearest neighbours) better "
            "than the naive transform",
            glocal["neighbour_preservation"] > naive["neighbour_preservation"],
            f"{evaluation.neighbours}-NN preservation: gLocal "
            f"{glocal['neighbour_preservation']:.3f}, naive {naive['neighbour_preservation']:.3f}",
        ),
        harms_downstream(base, naive),
        improves_downstream(base, glocal),
        _better_downstream(naive, glocal),
    ]
    notes = ceiling_notes(metrics, accuracy) + drop_notes(metrics) + grid_notes(metrics["grid"])
    return Findings(claims, notes, glossary(metrics, evaluation))


def improves_downstream(base: Mapping[str, float], glocal: Mapping[str, float]) -> Finding:
    """The paper's headline: held when no downstream metric of gLocal falls below the
    base features' and one rises; the evidence marks every one that fell."""
    claim = "gLocal improves few-shot learning and anomaly detection over the base features"
    keys = downstream_keys(base)
    if not keys:
        return Finding(claim, None, "no held-out categories in this run")
    return improvement(claim, base, glocal, keys, metric_title, "base -> gLocal")


def harms_downstream(base: Mapping[str, float], naive: Mapping[str, float]) -> Finding:
    """The naive transform's cost: held when every downstream metric falls."""
    claim = "the naive transform's changes to local structure harm downstream performance"
    keys = downstream_keys(base)
    if not keys:
        return Finding(claim, None, "no held-out categories in this run")
    return Finding(
        claim,
        all(naive[key] < base[key] for key in keys),
        "base -> naive: " + changes(base, naive, keys, metric_title),
    )


def _better_downstream(naive: Mapping[str, float], glocal: Mapping[str, float]) -> Finding:
    claim = "gLocal does better downstream than the naive transform"
    keys = downstream_keys(naive)
    if not keys:
        return Finding(claim, None, "no held-out categories in this run")
    return Finding(
        claim,
        all(glocal[key] > naive[key] for key in keys),
        ", ".join(
            f"{metric_title(key)} gLocal {glocal[key]:.3f} vs naive {naive[key]:.3f}"
            for key in keys
        ),
    )


def _accuracy_keys(metrics: Mapping[str, Any], accuracy: str) -> list[str]:
    levels = [f"odd_one_out/levels/{level}" for level in LEVELS]
    return [accuracy] + [key for key in levels if key in metrics["base"]]


def ceiling_notes(metrics: Mapping[str, Any], accuracy: str) -> list[str]:
    """A note for the accuracies above their noise ceiling, with how that can be."""
    above = []
    for key in _accuracy_keys(metrics, accuracy):
        ceiling = metrics["base"].get(key.replace("odd_one_out", "noise_ceiling"))
        spaces = [s for s in SPACES if ceiling is not None and metrics[s][key] > ceiling]
        if spaces:
            scores = ", ".join(f"{LABELS[s]} {metrics[s][key]:.3f}" for s in spaces)
            above.append(f"{metric_title(key)}: {scores} against a ceiling of {ceiling:.3f}")
    if not above:
        return []
    return [
        "**Above the noise ceiling.** "
        + "; ".join(above)
        + ". The ceiling is the expected accuracy of the best possible model: the mean, over "
        "the triplets, of the probability of the simulated people's most probable choice. "
        "Each stored answer is one draw from those probabilities, so on a finite set of "
        "triplets a space can land above the ceiling by the luck of the draws (by about "
        "sqrt(c (1 - c) / n) for n triplets at ceiling c)."
    ]


def drop_notes(metrics: Mapping[str, Any]) -> list[str]:
    """A note where gLocal falls below the base features at an abstraction level,
    beside the naive transform's change there."""
    base, naive, glocal = (metrics[space] for space in SPACES)
    keys = [f"odd_one_out/levels/{level}" for level in LEVELS]
    drops = [key for key in keys if key in base and glocal[key] < base[key]]
    if not drops:
        return []
    where = ", ".join(
        f"{metric_title(key)} ({glocal[key]:.3f} vs {base[key]:.3f}; naive {naive[key]:.3f})"
        for key in drops
    )
    naive_worse = all(naive[key] < glocal[key] for key in drops)
    return [
        f"**Below the base.** gLocal falls below the base features at {where}. The "
        "transforms are fitted to the people's choices on random triplets, most of which "
        "contrast items of different superordinate categories; they reshape the space "
        "toward that coarse structure and give up some of the base features' finer "
        "distinctions"
        + (
            ", which the local term protects in part: the naive transform, without it, "
            "loses more at each of these levels."
            if naive_worse
            else "; the local term did not protect them better than the naive transform here."
        )
    ]


def grid_notes(grid: Sequence[Mapping[str, Any]]) -> list[str]:
    """A note when the run's grid is not the released configuration's
    (:class:`~alignjax.methods.glocal_fit.GlocalConfig`)."""
    released = GlocalConfig()
    wanted = {
        "learning_rate": released.learning_rates,
        "penalty_weight": released.penalty_weights,
        "alpha": released.alphas,
        "temperature": released.temperatures,
    }
    rows = [row for row in grid if row["kind"] == "glocal"]
    used = {key: tuple(sorted({row[key] for row in rows}, reverse=True)) for key in wanted}
    naive = tuple(sorted({r["penalty_weight"] for r in grid if r["kind"] == "naive"}, reverse=True))
    differ = [key for key in wanted if set(used[key]) != set(wanted[key])]
    if set(naive) != set(released.naive_penalty_weights):
        differ.append("naive")
    if not differ:
        return []

    def values(numbers):
        return "{" + ", ".join(f"{v:g}" for v in numbers) + "}"

    this = ", ".join(f"{SETTINGS[key]} {values(used[key])}" for key in wanted)
    paper = ", ".join(f"{SETTINGS[key]} {values(wanted[key])}" for key in wanted)
    return [
        f"**Not the released grid.** This run searched gLocal over {this} and the naive "
        f"transform over lambda {values(naive)}; the released configuration (`GlocalConfig()`, "
        f"what `alignjax fit glocal --grid paper` runs on THINGS) searches {paper} and lambda "
        f"{values(released.naive_penalty_weights)}. A smaller grid (the experiment's presets, "
        "`fit glocal --grid quick`) trades the search for run time; the selection rule, "
        "validation accuracy, is the paper's."
    ]


def glossary(metrics: Mapping[str, Any], evaluation: EvaluationConfig) -> dict[str, str]:
    """The report's terms, explained once (the levels only where the run has them)."""
    terms = {
        "base model": "the frozen features being aligned",
        "naive transform": "a linear transform fitted to the human triplets alone, "
        "penalised by lambda ||W||_F",
        "gLocal": "the same with a local term that keeps each image's neighbourhood, "
        "weighted by alpha, and a penalty lambda toward a scaled identity",
        "lr, lambda, alpha, tau": "learning rate, penalty weight, weight of the local term "
        "and temperature of its neighbourhood softmax",
        "test / validation accuracy": "odd-one-out accuracy on held-out human triplets; "
        "validation selects the setting; chance is 1/3",
        "noise ceiling": "the expected accuracy of the best possible model given the "
        "(simulated) people's choice probabilities",
        "NN preservation": f"the mean fraction of each item's {evaluation.neighbours} nearest "
        "cosine neighbours in the base features that a space keeps (1 for the base)",
    }
    if any(key.startswith("odd_one_out/levels/") for key in metrics["base"]):
        terms["coarse / boundary / fine"] = (
            "Levels triplets whose odd one out is from another superordinate category / "
            "another basic category / another subordinate category within the same basic one"
        )
    if downstream_keys(metrics["base"]):
        terms["n-shot"] = (
            "accuracy of a classifier given n images per held-out category (categories no "
            "transform saw)"
        )
        terms["anomaly AUC"] = "ROC-AUC of k-NN anomaly detection, one held-out category normal"
    return terms
