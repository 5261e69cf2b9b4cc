"""Run reports: ``report.md`` with results tables beside their plots.

Every experiment writes one Markdown report into its work directory: a title, what was
run, one table per result (the method beside its baselines) and the PNG plots. The
builder keeps formatting in one place so reports read alike.

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

import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

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


class Report:
    """An ordered Markdown document; :meth:`write` saves it as ``report.md``."""

    def __init__(self, title: str):
        self._parts = [f"# {title}\n"]

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
        return "\n".join(self._parts)

    def write(self, workdir: str | os.PathLike[str]) -> pathlib.Path:
        path = pathlib.Path(workdir) / "report.md"
        path.write_text(self.text())
        return path
