"""AligNet's findings: each claim of the paper, held or not in one run, from its metrics.

:func:`findings` reads the metrics of :func:`alignjax.methods.alignet.run` and returns
the ``## Findings`` section of its report (:meth:`alignjax.methods.report.Report.findings`):

- one :class:`~alignjax.methods.report.Finding` per claim of Muttenthaler et al.
  (2024), held, not held or not tested in this run, with the numbers behind it;
- notes where a number needs a sentence: accuracies above the noise ceiling (how a
  model can score above it), students that fall below the base student, and settings
  that differ from the paper's;
- a glossary of the report's terms.

Every verdict is a comparison of this run's numbers, never a tolerance chosen after
the fact: "improves" means higher, "keeps or improves" means no metric lower.

>>> base = {"odd_one_out/levels/coarse": 0.5, "odd_one_out/levels/fine": 0.6}
>>> aligned = {"odd_one_out/levels/coarse": 0.9, "odd_one_out/levels/fine": 0.55}
>>> [f.held for f in level_findings(base, aligned)]
[False, True]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from alignjax.data.levels import LEVELS
from alignjax.data.simulated import SimulatedConfig
from alignjax.methods.alignet_config import AligNetConfig
from alignjax.methods.report import Finding, Findings, downstream_keys, improvement
from alignjax.models.vit import VARIANTS as VIT_VARIANTS

HUMANS = "odd_one_out/humans"
LEVELS_ALL = "odd_one_out/levels"
#: The released student distillation (docs/concepts.md, METHODS.md section 4).
RELEASED_DIVERGENCE, RELEASED_TEMPERATURE = "js", 100.0
#: Each student's teacher: the model whose choices it was distilled on.
TEACHER_OF = {"alignet": "teacher_ud", "unalignet": "teacher"}
#: Standard errors above the noise ceiling that sampling noise explains.
SAMPLING_NOISE = 3.0
MODEL_NAMES = {
    "base": "base student",
    "unalignet": "UnAligNet student",
    "alignet": "AligNet student",
    "teacher": "teacher",
    "teacher_ud": "teacher + UD",
}
DOWNSTREAM = {"anomaly_auc": "anomaly AUC", "neighbour_preservation": "neighbour preservation"}
CLASSIFIERS = {"logistic": "logistic", "knn": "1-NN"}


def findings(
    config: AligNetConfig,
    metrics: Mapping[str, Any],
    counts: Mapping[str, int] | None = None,
    *,
    triplet_spread: float | None = None,
) -> Findings:
    """The Findings section of an AligNet run.

    Args:
      config: the run's config.
      metrics: the run's metrics (``metrics.json``: one dict per model, plus
        ``"uncertainty_distillation"``).
      counts: triplets behind each odd-one-out metric (``{"odd_one_out/levels/coarse":
        1000, ...}``), for the standard error of an accuracy above its ceiling.
      triplet_spread: the base student's median spread (largest minus smallest) of a
        random triplet's three dot products, the scale the distillation's ``tau`` divides
        (:func:`triplet_spread`).

    Returns:
      ``Findings(findings, notes, glossary)``.
    """
    base = metrics["base"]
    aligned = metrics.get("alignet")
    claims = [_uncertainty_distillation(metrics.get("uncertainty_distillation", {}))]
    claims.append(_alignment(base, aligned))
    claims.extend(level_findings(base, aligned))
    claims.append(_control(base, aligned, metrics.get("unalignet")))
    claims.append(_agreement(config, metrics))
    claims.append(downstream_finding(base, aligned))
    notes = ceiling_notes(metrics, config.evaluation.kernel, counts or {})
    notes += drop_notes(metrics, config.evaluation.kernel)
    notes += setting_notes(config, triplet_spread)
    return Findings(claims, notes, glossary(config, metrics["base"]))


def _f(value: float) -> str:
    return f"{value:.3f}"


def _not_aligned(claim: str) -> Finding:
    return Finding(claim, None, "no AligNet student in this run: it needs human triplets")


def _uncertainty_distillation(ud: Mapping[str, Any]) -> Finding:
    claim = "uncertainty distillation brings the teacher's odd-one-out probabilities closer to "
    claim += "the humans'"
    if "aligned/test_kl" not in ud:
        return Finding(claim, None, "no human triplets: the teacher stays untransformed")
    before, after = ud["untransformed/test_kl"], ud["aligned/test_kl"]
    return Finding(
        claim,
        after < before,
        f"KL(p_human || p_teacher) on held-out human triplets {_f(before)} -> {_f(after)}",
    )


def _alignment(base: Mapping[str, float], aligned: Mapping[str, float] | None) -> Finding:
    claim = "the AligNet student agrees with human odd-one-out choices more than the base student"
    if aligned is None:
        return _not_aligned(claim)
    sets = {HUMANS: "held-out humans", LEVELS_ALL: "all Levels triplets"}
    present = [key for key in sets if key in base]
    if not present:
        return Finding(claim, None, "no held-out human or Levels triplets in this run")
    return Finding(
        claim,
        all(aligned[key] > base[key] for key in present),
        ", ".join(f"{sets[key]} {_f(base[key])} -> {_f(aligned[key])}" for key in present),
    )


def level_findings(base: Mapping[str, float], aligned: Mapping[str, float] | None) -> list[Finding]:
    """The two claims about abstraction levels: a gain at every level, and the largest
    gain at the coarse level."""
    every = "the AligNet student gains at every abstraction level"
    coarse = "its largest gain is at the coarse (global) level"
    if aligned is None:
        return [_not_aligned(every), _not_aligned(coarse)]
    levels = [level for level in LEVELS if f"{LEVELS_ALL}/{level}" in base]
    if not levels:
        reason = "no Levels triplets in this run (no category tree)"
        return [Finding(every, None, reason), Finding(coarse, None, reason)]
    gain = {
        level: aligned[f"{LEVELS_ALL}/{level}"] - base[f"{LEVELS_ALL}/{level}"] for level in levels
    }
    evidence = ", ".join(f"{level} {100 * g:+.1f}" for level, g in gain.items())
    evidence = f"points over the base student: {evidence}"
    result = [Finding(every, all(g > 0 for g in gain.values()), evidence)]
    if "coarse" in gain and len(gain) > 1:
        result.append(Finding(coarse, gain["coarse"] == max(gain.values()), evidence))
    else:
        result.append(Finding(coarse, None, "this run's tree has no other level to compare"))
    return result


def _control(
    base: Mapping[str, float],
    aligned: Mapping[str, float] | None,
    unaligned: Mapping[str, float] | None,
) -> Finding:
    claim = (
        "the gain comes from the human-aligned teacher, not from distillation itself: the "
        "AligNet student beats the UnAligNet student, distilled the same way from the "
        "untransformed teacher"
    )
    if aligned is None or unaligned is None:
        return Finding(claim, None, "this run did not distill both students")
    sets = {HUMANS: "held-out humans", f"{LEVELS_ALL}/coarse": "coarse"}
    present = [key for key in sets if key in base]
    if not present:
        return Finding(claim, None, "no held-out human or coarse Levels triplets in this run")
    return Finding(
        claim,
        all(aligned[key] > unaligned[key] for key in present),
        ", ".join(
            f"{sets[key]} {_f(aligned[key])} (AligNet) vs {_f(unaligned[key])} (UnAligNet)"
            for key in present
        ),
    )


def _agreement(config: AligNetConfig, metrics: Mapping[str, Any]) -> Finding:
    claim = (
        "distillation passes the teacher's similarity structure to the student: it agrees "
        "with the teacher on triplets it never trained on more than the base student does"
    )
    variant = "alignet" if "alignet" in metrics else "unalignet"
    kernel = config.distillation.kernel
    prefix = "" if kernel == config.evaluation.kernel else f"{kernel}/"
    key = f"{prefix}odd_one_out/{variant}_teacher"
    if variant not in metrics or key not in metrics["base"]:
        return Finding(claim, None, "no teacher test triplets in this run")
    before, after = metrics["base"][key], metrics[variant][key]
    return Finding(
        claim,
        after > before,
        f"{MODEL_NAMES[variant]} {_f(after)} vs base student {_f(before)} on its teacher's "
        f"held-out triplets ({kernel} similarity)",
    )


def downstream_title(key: str) -> str:
    """``few_shot/knn/5`` -> ``5-shot (1-NN)``; the others by :data:`DOWNSTREAM`."""
    if key.startswith("few_shot/"):
        _, classifier, shots = key.split("/")
        return f"{shots}-shot ({CLASSIFIERS.get(classifier, classifier)})"
    return DOWNSTREAM[key]


def downstream_finding(base: Mapping[str, float], aligned: Mapping[str, float] | None) -> Finding:
    """The claim that alignment improves generalisation to new categories: held when no
    downstream metric falls and one rises; the evidence names every one that fell."""
    claim = "alignment improves few-shot learning and anomaly detection on new categories"
    if aligned is None:
        return _not_aligned(claim)
    keys = downstream_keys(base)
    if not keys:
        return Finding(claim, None, "no held-out categories in this run")
    return improvement(claim, base, aligned, keys, downstream_title, "base -> AligNet student")


def _column_title(key: str) -> str:
    """``odd_one_out/levels/coarse`` -> ``coarse``; the two sets by name."""
    return {HUMANS: "held-out humans", LEVELS_ALL: "Levels (all)"}.get(key, key.split("/")[-1])


def _alignment_keys(base: Mapping[str, float]) -> list[str]:
    levels = [f"{LEVELS_ALL}/{level}" for level in LEVELS if f"{LEVELS_ALL}/{level}" in base]
    return (
        [key for key in (LEVELS_ALL,) if key in base]
        + levels
        + ([HUMANS] if HUMANS in base else [])
    )


def ceiling_notes(metrics: Mapping[str, Any], kernel: str, counts: Mapping[str, int]) -> list[str]:
    """One note for the accuracies above their noise ceiling, with how that can be.

    The ceiling (:func:`alignjax.evaluation.noise_ceiling`) is the *expected* accuracy
    of the best possible model, ``mean_n max_k p_nk`` over the observers' choice
    probabilities; each stored choice is one draw from them, so a measured accuracy on
    ``n`` triplets scatters around its expectation by about ``sqrt(c (1 - c) / n)``.
    """
    base = metrics["base"]
    other = "dot" if kernel == "cosine" else "cosine"
    above, excess = [], []
    for key in _alignment_keys(base):
        ceiling = base.get(key.replace("odd_one_out/", "noise_ceiling/"))
        if ceiling is None:
            continue
        for prefix, name in (("", kernel), (f"{other}/", other)):
            models = [
                m for m in MODEL_NAMES if m in metrics and metrics[m].get(prefix + key, 0) > ceiling
            ]
            if not models:
                continue
            scores = ", ".join(f"{MODEL_NAMES[m]} {_f(metrics[m][prefix + key])}" for m in models)
            spread = ""
            if counts.get(key):
                error = math.sqrt(ceiling * (1 - ceiling) / counts[key])
                excess.append((max(metrics[m][prefix + key] for m in models) - ceiling) / error)
                spread = f" ({counts[key]} triplets: standard error {_f(error)})"
            above.append(
                f"{_column_title(key)} ({name}): {scores} against a ceiling of "
                f"{_f(ceiling)}{spread}"
            )
    if not above:
        return []
    if excess and max(excess) <= SAMPLING_NOISE:
        verdict = f" Here the largest excess is {max(excess):.1f} standard errors: sampling noise."
    elif excess:
        verdict = (
            f" The largest excess here, {max(excess):.1f} standard errors, is more than "
            "sampling noise explains: check that the model saw none of these triplets."
        )
    else:
        verdict = ""
    return [
        "**Above the noise ceiling.** "
        + "; ".join(above)
        + ". The ceiling is the expected accuracy of the best possible model: the mean, "
        "over the triplets, of the probability of the simulated observers' most probable "
        "choice. Each stored answer is one draw from those probabilities, so on a finite "
        "set of triplets even a model that always picks the most probable pair scores its "
        "ceiling only on average, and a model can land a standard error or two above it by "
        "the luck of the draws, about sqrt(c (1 - c) / n) for n triplets at ceiling c." + verdict
    ]


def _by_kernel(places: list[tuple[str, str, str]], text: Mapping[str, str]) -> str:
    """``with cosine similarity at fine (0.547 vs 0.560); with dot similarity at ...``:
    ``places`` are ``(prefix, kernel, key)``, ``text[prefix + key]`` the text of one."""
    kernels = dict.fromkeys((prefix, name) for prefix, name, _ in places)
    return "; ".join(
        f"with {name} similarity at "
        + ", ".join(
            f"{_column_title(key)} ({text[p + key]})" for p, _, key in places if p == prefix
        )
        for prefix, name in kernels
    )


def drop_notes(metrics: Mapping[str, Any], kernel: str) -> list[str]:
    """A note for each student that falls below the base student on an alignment
    metric (either kernel), with its teacher's accuracy at the same places."""
    base = metrics["base"]
    other = "dot" if kernel == "cosine" else "cosine"
    notes = []
    for student in ("alignet", "unalignet"):
        if student not in metrics:
            continue
        scores, teacher = metrics[student], metrics.get(TEACHER_OF[student], {})
        teacher_name = MODEL_NAMES[TEACHER_OF[student]]
        drops = [
            (prefix, name, key)
            for prefix, name in (("", kernel), (f"{other}/", other))
            for key in _alignment_keys(base)
            if prefix + key in base and scores[prefix + key] < base[prefix + key]
        ]
        if not drops:
            continue
        where = _by_kernel(
            drops, {k: f"{_f(scores[k])} vs {_f(base[k])}" for k in scores if k in base}
        )
        below = [d for d in drops if teacher.get(d[0] + d[2], 1.0) < base[d[0] + d[2]]]
        if len(below) == len(drops):
            reason = (
                f"Its teacher ({teacher_name}) is itself below the base student at each of "
                f"these ({_by_kernel(below, {k: _f(v) for k, v in teacher.items()})}): the student "
                "learns the teacher's choices, those worse than its own included, and the "
                "decay toward the base weights limits how far it moves, not where."
            )
        elif below:
            reason = (
                f"Its teacher ({teacher_name}) is below the base student at some of these "
                f"({_by_kernel(below, {k: _f(v) for k, v in teacher.items()})}); at the others the "
                "distillation itself lost what the base student had."
            )
        else:
            reason = (
                f"Its teacher ({teacher_name}) is not below the base student at any of these: "
                "the distillation itself lost what the base student had."
            )
        notes.append(
            f"**Below the base.** The {MODEL_NAMES[student]} falls below the base student "
            f"{where} (student vs base). {reason}"
        )
    return notes


def setting_notes(config: AligNetConfig, triplet_spread: float | None = None) -> list[str]:
    """Notes on the settings that differ from the paper's: the distillation's divergence
    and temperature (``triplet_spread``: the base student's median spread of a triplet's
    three dot products, the scale ``tau`` divides), and the scale of the run."""
    notes = []
    distillation = config.distillation
    tau = distillation.student_temperature
    if (distillation.divergence, tau) != (RELEASED_DIVERGENCE, RELEASED_TEMPERATURE):
        if triplet_spread is not None:
            scale = (
                f"Here the base student's three dot products of a random triplet of evaluation "
                f"images differ by {triplet_spread:.3g} (median of largest minus smallest): "
                f"divided by tau = {tau:g} that is {triplet_spread / tau:.2g}, a clear "
                f"preference, while tau = {RELEASED_TEMPERATURE:g} would leave "
                f"{triplet_spread / RELEASED_TEMPERATURE:.2g} and nearly uniform choices."
            )
        else:
            scale = (
                f"The released tau is sized for ViT-B's raw dot products; this run's small "
                f"student ({config.student.variant}, {config.student.embed_dim}-dimensional "
                "head) has far smaller ones."
            )
        notes.append(
            f"**Not the released distillation.** This run distills with "
            f"{distillation.divergence.upper()} at tau = {tau:g}; the released code uses JS "
            f"at tau = {RELEASED_TEMPERATURE:g} (docs/concepts.md). KL(teacher || student) is "
            "the objective the paper writes down, JS the one its released configuration "
            f"runs; tau divides the student's raw dot products. {scale} "
            "`--set distillation.divergence=js --set distillation.student_temperature=100` "
            "runs the released setting."
        )
    if isinstance(config.data, SimulatedConfig):
        notes.append(
            f"**Scale.** The paper distills ViT-B-sized students on millions of triplets over "
            f"500 k-means clusters of ImageNet; this run distills a {config.student.variant} "
            f"ViT on {config.sampling.num_triplets} triplets over "
            f"{config.sampling.num_clusters} clusters of a synthetic world, with simulated "
            "people whose similarity (and so the noise ceiling) is known."
        )
    return notes


def _variant_text(variant: str) -> str:
    """``"mu/8"`` -> ``ViT-mu with 8x8-pixel patches (width 32, 1 block, 2 heads)``."""
    name, _, patch = variant.partition("/")
    width, depth, _, heads = VIT_VARIANTS.get(name, (None, None, None, None))
    size = f" (width {width}, {depth} block{'s' * (depth != 1)}, {heads} heads)" if width else ""
    return f"ViT-{name}" + (f" with {patch}x{patch}-pixel patches" if patch else "") + size


def glossary(config: AligNetConfig, base: Mapping[str, Any]) -> dict[str, str]:
    """The report's terms, explained once (the levels and the held-out humans only where
    the base student's metrics ``base`` have them)."""
    variants = dict.fromkeys((config.teacher.variant, config.student.variant))
    simulated = isinstance(config.data, SimulatedConfig)
    people = "simulated people" if simulated else "people of your triplet file"
    terms = {
        "Levels": "odd-one-out triplets drawn from the category tree at one abstraction level each",
        "coarse": "two images of one superordinate category, the odd one from another"
        if simulated
        else "two images of one class, the odd one from another class",
        "boundary": "two images of one basic category, the odd one from a sibling category",
        "fine": "two images of one subordinate category, the odd one from a sibling within "
        "the same basic category",
        "held-out humans (THINGS-like)": "random triplets over objects no model was fitted "
        f"to, judged by the {people}, like the THINGS odd-one-out data",
        "noise ceiling": "the expected accuracy of the best possible model given the "
        "people's choice probabilities; chance is 1/3",
        "teacher + UD": "the teacher after uncertainty distillation (UD), an affine transform "
        "fitted so its choice probabilities match the people's",
        "UnAligNet student": "the control: the same distillation from the untransformed teacher",
        "within / border / between": "the distillation triplets: all three images from one "
        "k-means cluster; two from one cluster and the odd one from a neighbouring cluster; "
        "one from each of three clusters",
        "teacher agreement": "how often a model picks the teacher's odd one out on the "
        "teacher's held-out triplets",
        "neighbour preservation": f"the mean fraction of each image's "
        f"{config.evaluation.neighbours} nearest neighbours in the base student that a "
        "student keeps",
        "n-shot": "accuracy of a classifier (logistic probe or 1-NN) given n images per new "
        "category",
        "anomaly AUC": "ROC-AUC of k-NN anomaly detection, one new category normal at a time",
        "tau, T": "temperatures dividing the student's and the teacher's similarities",
        "w": "the strength of the decay toward the base student's weights",
    }
    absent = [lv for lv in LEVELS if f"{LEVELS_ALL}/{lv}" not in base]
    if len(absent) == len(LEVELS):
        absent.append("Levels")
    if HUMANS not in base:
        absent.append("held-out humans (THINGS-like)")
    for term in absent:
        del terms[term]
    for variant in variants:
        terms[variant] = _variant_text(variant)
    return terms


def triplet_spread(
    features: np.ndarray | None, n_triplets: int = 2000, seed: int = 0
) -> float | None:
    """The median, over random triplets of rows of ``features [n, d]``, of the largest
    minus the smallest of their three dot products; ``None`` for fewer than 3 rows."""
    if features is None or len(features) < 3:
        return None
    x = np.asarray(features, dtype=np.float64)
    rng = np.random.default_rng(seed)
    triplets = np.stack([rng.choice(len(x), 3, replace=False) for _ in range(n_triplets)])
    a, b, c = (x[triplets[:, i]] for i in range(3))
    s = np.stack([(a * b).sum(-1), (a * c).sum(-1), (b * c).sum(-1)], axis=1)
    return float(np.median(s.max(axis=1) - s.min(axis=1)))


def triplet_counts(triplets: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """The number of triplets behind each odd-one-out metric of the evaluation, from an
    image source's ``triplets`` (held-out humans: ``triplets["humans"]["test"]``; the
    evaluation sets, per level too)."""
    counts = {}
    if "humans" in triplets and "test" in triplets["humans"]:
        counts[HUMANS] = len(triplets["humans"]["test"])
    for name, triplet_set in triplets.get("evaluation", {}).items():
        counts[f"odd_one_out/{name}"] = len(triplet_set)
        if triplet_set.levels is not None:
            for code, level in enumerate(triplet_set.level_names):
                counts[f"odd_one_out/{name}/{level}"] = int((triplet_set.levels == code).sum())
    return counts
