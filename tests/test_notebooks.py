"""The notebooks in colabs/ match their jupytext sources, are clean and follow one layout.

Running them is nbmake's job (``pytest --nbmake``, configured in pyproject.toml); these
tests check what running cannot: that the ``.ipynb`` a Colab user opens is the ``.py``
a reviewer read, without stale outputs, with a working badge, install and parameters
cell, and that the pytest configuration does collect the notebooks. The repository the
notebooks install from and link to is the one pyproject.toml's [project.urls] names.
"""

import contextlib
import io
import os
import pathlib
import re
import subprocess
import sys
import tomllib
import types
import unittest.mock

import jupytext
import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
COLABS = REPO / "colabs"
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
SOURCES = sorted(p for p in COLABS.glob("*.py") if NOTEBOOK_NAME.match(p.stem))
NOTEBOOKS = sorted(COLABS.glob("*.ipynb"))
NAMES = sorted({p.stem for p in SOURCES + NOTEBOOKS})
REGENERATE = "regenerate it with `jupytext --sync colabs/{name}.py`"


PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _repository_url() -> str:
    url = PYPROJECT["project"].get("urls", {}).get("Repository", "")
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), (
        "pyproject.toml: [project.urls] must name the GitHub Repository (https://github.com/"
        f"OWNER/REPO); got {url!r}"
    )
    return url


REPOSITORY_URL = _repository_url()
REPOSITORY = REPOSITORY_URL.removeprefix("https://github.com/")


def _cells(notebook):
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in notebook.cells]


@pytest.fixture(scope="module", params=NAMES)
def name(request):
    return request.param


@pytest.fixture(scope="module")
def notebook(name):
    path = COLABS / f"{name}.ipynb"
    assert path.exists(), f"colabs/{name}.py has no notebook: {REGENERATE.format(name=name)}"
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    assert SOURCES, "colabs/ holds no NN_name.py notebook sources"
    assert all(NOTEBOOK_NAME.match(p.stem) for p in NOTEBOOKS), (
        f"notebooks must be named NN_name.ipynb; got {[p.name for p in NOTEBOOKS]}"
    )


def test_source_and_notebook_exist(name):
    assert (COLABS / f"{name}.py").exists(), (
        f"colabs/{name}.ipynb has no jupytext source colabs/{name}.py: write it with "
        f"`jupytext --to py:percent colabs/{name}.ipynb`"
    )
    assert (COLABS / f"{name}.ipynb").exists(), (
        f"colabs/{name}.py has no notebook: {REGENERATE.format(name=name)}"
    )


def test_notebook_matches_its_source(name, notebook):
    source = jupytext.read(COLABS / f"{name}.py")
    expected, actual = _cells(source), _cells(notebook)
    assert len(actual) == len(expected), (
        f"colabs/{name}.ipynb has {len(actual)} cells, its .py {len(expected)}: "
        + REGENERATE.format(name=name)
    )
    for index, (want, got) in enumerate(zip(expected, actual)):
        assert got == want, (
            f"colabs/{name}.ipynb cell {index} differs from its .py source: "
            + REGENERATE.format(name=name)
        )


def test_notebook_has_no_outputs(name, notebook):
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"colabs/{name}.ipynb cell {index} was saved with outputs; clear them or "
                f"regenerate with `jupytext --to ipynb colabs/{name}.py`"
            )


def test_notebook_runs_in_the_default_kernel(name, notebook):
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"


def test_first_cell_has_title_and_colab_badge(name, notebook):
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), (
        f"colabs/{name}: the first cell must be markdown starting with the title"
    )
    badge = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/colabs/{name}.ipynb"
    assert f"]({badge})" in first.source, f"colabs/{name}: the first cell must link to {badge}"


def _install_cell() -> str:
    """The first code cell of every notebook, which installs alignjax on Colab only."""
    first = jupytext.read(COLABS / f"{NAMES[0]}.py")
    return next(c.source for c in first.cells if c.cell_type == "code")


def test_install_cell_installs_from_the_repository_or_a_wheel_on_colab_only(tmp_path):
    source = _install_cell()
    assert f'REPOSITORY = "{REPOSITORY_URL}"' in source, (
        f"the install cell must install from pyproject.toml's repository, {REPOSITORY_URL}"
    )
    commands = []

    def run(argv, check):
        commands.append(argv[3:])

    def install(on_colab, *wheels):
        for age, wheel in enumerate(reversed(wheels)):
            (tmp_path / wheel).write_text("")
            os.utime(tmp_path / wheel, (1e9 - age, 1e9 - age))  # the last one uploaded last
        colab = {"google.colab": types.ModuleType("google.colab")} if on_colab else {}
        commands.clear()
        with (
            unittest.mock.patch.dict(sys.modules, colab),
            unittest.mock.patch.object(subprocess, "run", run),
            contextlib.chdir(tmp_path),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            exec(source, {})
        return commands

    assert "google.colab" not in sys.modules
    assert install(False) == []
    assert install(True) == [["install", "-q", f"alignjax @ git+{REPOSITORY_URL}"]]
    # An uploaded wheel wins over the repository; of several, the last one uploaded.
    wheels = ("alignjax-0.10.0-py3-none-any.whl", "alignjax-0.9.0-py3-none-any.whl")
    assert install(True, *wheels) == [["install", "-q", wheels[1]]]
    assert install(False, *wheels) == []


def test_install_then_parameters_cell(name, notebook):
    code = [c for c in notebook.cells if c.cell_type == "code"]
    install, parameters = code[0], code[1]
    assert install.source == _install_cell(), (
        f"colabs/{name}: the first code cell must be the install cell of "
        f"colabs/{NAMES[0]}.py, word for word"
    )
    assert parameters.metadata.get("tags") == ["parameters"], (
        f"colabs/{name}: the second code cell must be tagged `parameters`"
    )
    assert re.search(r"^#.*Colab", parameters.source, flags=re.M), (
        f"colabs/{name}: the parameters cell must say in a comment which values to raise on Colab"
    )
    # The install cell skips itself off Colab: CI runs every cell.
    assert all("skip-execution" not in c.metadata.get("tags", []) for c in code), (
        f"colabs/{name}: no cell may be skipped by CI"
    )


def test_links_name_the_repository(name, notebook):
    text = "\n".join(cell.source for cell in notebook.cells)
    for owner_repo in re.findall(r"github(?:\.com)?/([\w.-]+/[\w.-]+)", text):
        assert owner_repo == REPOSITORY, (
            f"colabs/{name} links to {owner_repo}; the repository is {REPOSITORY} "
            "(pyproject.toml's [project.urls])"
        )


def test_readme_lists_every_notebook():
    readme = (COLABS / "README.md").read_text()
    for name in NAMES:
        assert f"]({name}.ipynb)" in readme, f"colabs/README.md does not link {name}.ipynb"


def test_pytest_runs_the_notebooks():
    options = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert "colabs" in options.get("testpaths", []), (
        'pyproject.toml: [tool.pytest.ini_options] testpaths must include "colabs"'
    )
    assert "--nbmake" in options.get("addopts", ""), (
        'pyproject.toml: [tool.pytest.ini_options] addopts must include "--nbmake"'
    )
