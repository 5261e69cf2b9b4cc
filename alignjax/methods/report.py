"""Run reports: ``report.md`` with its findings, results tables and plots.

Every experiment writes one Markdown report into its work directory: a title, a
``## Findings`` section written from the run's own metrics (each claim of the paper,
held or not in this run, with its numbers; notes where a number needs a sentence; a
glossary of the report's terms), what was run, one table per result (the method beside
its baselines) and the PNG plots. The builder keeps formatting in one place so reports
read alike.

>>> report = Report("demo")
>>> report.table([{"model": "base", "acc": 0.5}, {"model": "gLocal", "acc": 0.61234}])
>>> print(report.text())
# demo
<BLANKLINE>
| model | acc |
| --- | --- |
| base | 0.500 |
| gLocal | 0.612 |
<BLANKLINE>
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import matplotlib.pyplot as plt


def format_value(value: Any, digits: int = 3) -> str:
    """Floats with ``digits`` decimals, None as an em dash, everything else via str."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *, digits: int = 3
) -> str:
    """A Markdown table of ``rows`` (dicts), columns in the order of ``columns`` or first
    row, floats with ``digits`` decimals."""
    if not rows:
        raise ValueError("markdown_table needs at least one row")
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(c), digits) for c in columns) + " |")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class Finding:
    """One claim of a paper, checked on one run.

    Attributes:
      claim: the claim in the paper's words, e.g. ``"gLocal improves odd-one-out
        accuracy over the base features"``.
      held: whether this run supports it; ``None`` when the run cannot test it (say
        why in ``evidence``).
      evidence: the numbers behind the verdict, e.g. ``"test accuracy 0.414 vs 0.391"``.
    """

    claim: str
    held: bool | None
    evidence: str

    def markdown(self) -> str:
        verdict = {True: "**held**", False: "**not held**", None: "**not tested**"}[self.held]
        return f"- {verdict}: {self.claim} ({self.evidence})."


class Findings(NamedTuple):
    """The arguments of :meth:`Report.findings`, as a method's findings function
    returns them."""

    findings: list[Finding]
    notes: list[str]
    glossary: dict[str, str]


def downstream_keys(metrics: Mapping[str, float]) -> list[str]:
    """The downstream metrics of the evaluation suite a model has: few-shot accuracies
    (``few_shot/<classifier>/<n>``), then ``anomaly_auc``."""
    keys = [key for key in metrics if key.startswith("few_shot/")]
    return keys + [key for key in ("anomaly_auc",) if key in metrics]


def changes(
    before: Mapping[str, float],
    after: Mapping[str, float],
    keys: Sequence[str],
    title: Callable[[str], str],
) -> str:
    """``"<title> 0.887 -> 0.852 (fell), ..."`` for each of ``keys``."""
    return ", ".join(
        f"{title(key)} {before[key]:.3f} -> {after[key]:.3f}"
        + (" (fell)" if after[key] < before[key] else "")
        for key in keys
    )


def improvement(
    claim: str,
    before: Mapping[str, float],
    after: Mapping[str, float],
    keys: Sequence[str],
    title: Callable[[str], str],
    label: str,
) -> Finding:
    """A claim that ``after`` improves on ``before`` at ``keys``: held when none of them
    falls and one rises; the evidence (``"<label>: <changes>"``) marks every one that fell.
    """
    fell = any(after[key] < before[key] for key in keys)
    rose = any(after[key] > before[key] for key in keys)
    return Finding(claim, rose and not fell, f"{label}: " + changes(before, after, keys, title))


def findings_markdown(
    findings: Sequence[Finding],
    notes: Sequence[str] = (),
    glossary: Mapping[str, str] | None = None,
) -> str:
    """The ``## Findings`` section: one line per claim, then notes, then a glossary.

    >>> print(findings_markdown([Finding("A beats B", True, "0.61 vs 0.50")],
    ...                         glossary={"A": "the method"}))
    ## Findings
    <BLANKLINE>
    - **held**: A beats B (0.61 vs 0.50).
    <BLANKLINE>
    Terms: **A**: the method.
    <BLANKLINE>
    """
    if not findings:
        raise ValueError("a Findings section needs at least one finding")
    lines = ["## Findings", ""] + [f.markdown() for f in findings] + [""]
    lines += [f"{note.strip()}\n" for note in notes]
    if glossary:
        terms = "; ".join(f"**{term}**: {meaning}" for term, meaning in glossary.items())
        lines += [f"Terms: {terms}.", ""]
    return "\n".join(lines)


def tensorboard_hint(logdir: str | os.PathLike[str]) -> str:
    """A sentence telling how to open the run's TensorBoard event files."""
    return (
        f"Training curves (TensorBoard event files) are under `{logdir}`: "
        f"`pip install tensorboard && tensorboard --logdir {logdir}`, then open "
        "http://localhost:6006."
    )


class Report:
    """An ordered Markdown document; :meth:`write` saves it as ``report.md``."""

    def __init__(self, title: str):
        self._parts = [f"# {title}\n"]
        self._findings: str | None = None

    def findings(
        self,
        findings: Sequence[Finding],
        notes: Sequence[str] = (),
        glossary: Mapping[str, str] | None = None,
    ) -> None:
        """Set the ``## Findings`` section; it opens the report (right after the title)
        whenever it is called."""
        self._findings = findings_markdown(findings, notes, glossary)

    def paragraph(self, text: str) -> None:
        self._parts.append(text.strip() + "\n")

    def heading(self, text: str) -> None:
        self._parts.append(f"## {text}\n")

    def table(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str] | None = None,
        *,
        digits: int = 3,
    ) -> None:
        self._parts.append(markdown_table(rows, columns, digits=digits))

    def figure(
        self, fig: plt.Figure, workdir: str | os.PathLike[str], name: str, caption: str
    ) -> pathlib.Path:
        """Save ``fig`` as ``workdir/name`` (PNG), close it and link it from the report."""
        path = pathlib.Path(workdir) / name
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        self._parts.append(f"![{caption}]({name})\n\n*{caption}*\n")
        return path

    def text(self) -> str:
        title, *rest = self._parts
        opening = [title] if self._findings is None else [title, self._findings]
        return "\n".join(opening + rest)

    def write(self, workdir: str | os.PathLike[str]) -> pathlib.Path:
        path = pathlib.Path(workdir) / "report.md"
        path.write_text(self.text())
        return path
