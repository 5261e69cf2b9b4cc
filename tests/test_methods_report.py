"""The report builder: the Findings section opens every report, verdicts are named."""

import pytest

from alignjax.methods.report import Finding, Report, findings_markdown, tensorboard_hint


def test_findings_open_the_report_whenever_they_are_set():
    report = Report("run")
    report.heading("Results")
    report.table([{"model": "base", "acc": 0.5}])
    report.findings(
        [Finding("A beats B", True, "0.61 vs 0.50"), Finding("C", None, "no labels")],
        notes=["0.95 is above the ceiling because ..."],
        glossary={"coarse": "triplets across superordinate categories"},
    )
    lines = report.text().splitlines()
    assert lines[0] == "# run"
    assert lines.index("## Findings") < lines.index("## Results")
    assert "- **held**: A beats B (0.61 vs 0.50)." in lines
    assert "- **not tested**: C (no labels)." in lines
    assert "0.95 is above the ceiling because ..." in lines
    assert "Terms: **coarse**: triplets across superordinate categories." in lines


def test_a_claim_not_held_says_so_and_an_empty_findings_section_is_refused():
    assert Finding("X", False, "0.4 vs 0.5").markdown() == "- **not held**: X (0.4 vs 0.5)."
    with pytest.raises(ValueError, match="at least one finding"):
        findings_markdown([])


def test_the_tensorboard_hint_names_the_directory():
    assert "tensorboard --logdir runs/x/student" in tensorboard_hint("runs/x/student")
