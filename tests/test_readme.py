"""The README is true: its Python runs, its commands are the ones CI runs, its links resolve."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_python_blocks_run():
    blocks = _blocks("python")
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def _command_after(marker):
    lines = README[README.index(marker) :].splitlines()[1:]
    return next(line for line in lines if line.strip() and not line.startswith("```"))


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci and 'bash -c "$test_command"' in ci
    assert _command_after("<!-- test-command -->").startswith("pip install")
    assert _command_after("<!-- main-command -->") == "pip install . && alignjax run alignet"


def test_relative_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in target:
            assert (REPO / target).exists(), f"README links to missing {target}"
