"""The documentation is true: its examples run, its commands parse, its links resolve,
and docs/api.md lists every public name as the code has it now."""

import contextlib
import doctest
import importlib.util
import io
import pathlib
import re
import shlex
import tempfile
import tomllib

import pytest

from alignjax import cli, runner

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MARKDOWN = PAGES + [REPO / "colabs" / "README.md"]
EXECUTED = ("data.md", "concepts.md")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.M | re.S)


def _blocks(path):
    """``(language, code, line)`` of each fenced block, in document order."""
    text = path.read_text()
    return [
        (m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2) for m in BLOCK.finditer(text)
    ]


def _commands(code):
    """The shell commands of a bash block: continuations joined, comments dropped."""
    lines = code.replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _alignjax_argv(command):
    """The arguments of an ``alignjax`` command, or of ``python launch.py`` (the
    multi-host launcher of distributed.md), after ``VAR=value`` prefixes; else None."""
    words = shlex.split(command.removesuffix("&"))
    while words and re.fullmatch(r"\w+=\S*", words[0]):
        words = words[1:]
    if words[:1] == ["alignjax"]:
        return words[1:]
    return words[2:] if words[:2] == ["python", "launch.py"] else None


def test_api_reference_is_current():
    spec = importlib.util.spec_from_file_location("generate_api", DOCS / "generate_api.py")
    generate_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate_api)
    expected = generate_api.render()
    assert (DOCS / "api.md").read_text() == expected, (
        "docs/api.md is out of date (a public name or docstring changed): regenerate it "
        "with `python docs/generate_api.py`"
    )


def _slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path):
    text = BLOCK.sub("", path.read_text())
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    text = BLOCK.sub("", path.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"\w+://|mailto:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name} links to missing {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{path.name} links to missing anchor {target}"


def test_index_lists_every_page():
    index = (DOCS / "README.md").read_text()
    for page in PAGES:
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"


def test_alignjax_commands_parse_and_configure():
    """Every ``alignjax`` command in the docs parses; ``run`` commands name a real
    experiment, preset and config keys (the config is built, nothing is run)."""
    parser = cli.build_parser()
    count = 0
    for page in MARKDOWN:
        for language, code, line in _blocks(page):
            if language not in ("bash", "sh", "console"):
                continue
            for command in _commands(code):
                argv = _alignjax_argv(command)
                if argv is None:
                    continue
                count += 1
                where = f"{page.name}:{line}: {command}"
                try:
                    args = parser.parse_args(argv)
                except SystemExit:
                    pytest.fail(f"does not parse: {where}")
                if args.command == "run":
                    try:
                        runner.get_experiment(args.name).config(args.preset, args.set or ())
                    except runner.UsageError as error:
                        pytest.fail(f"{where}: {error}")
    assert count, "the docs show no alignjax command"


def test_pip_extras_exist():
    extras = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    for page in MARKDOWN:
        for used in re.findall(r"\.\[([\w,]+)\]", page.read_text()):
            assert set(used.split(",")) <= extras, f"{page.name} installs unknown extras [{used}]"


def _run_doctest(code, namespace, name, line):
    test = doctest.DocTestParser().get_doctest(code, namespace, name, name, line)
    report = io.StringIO()
    runner_ = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner_.run(test, out=report.write, clear_globs=False)
    assert not runner_.failures, report.getvalue()


@pytest.mark.parametrize("page", EXECUTED)
def test_examples_run(page, tmp_path, monkeypatch):
    """Runs a page's examples in order in an empty directory, sharing one namespace:
    Python blocks are executed, ``pycon`` blocks are doctests (outputs checked), and
    ``alignjax eval`` commands are run, their output checked against a ``text`` block
    that follows."""
    monkeypatch.chdir(tmp_path)
    # TFDS leaves an empty temporary directory behind for every data set it writes.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    namespace = {"__name__": f"docs_{page[:-3]}"}
    blocks = _blocks(DOCS / page)
    assert any(language == "python" for language, _, _ in blocks), f"{page} has no example"
    for index, (language, code, line) in enumerate(blocks):
        where = f"docs/{page}:{line}"
        if language == "python":
            exec(compile(code, where, "exec"), namespace)
        elif language == "pycon":
            _run_doctest(code, namespace, where, line)
        elif language == "bash":
            for command in _commands(code):
                argv = _alignjax_argv(command)
                if argv is None or argv[0] != "eval":
                    continue
                output = io.StringIO()
                with contextlib.redirect_stdout(output):
                    status = cli.main(argv)
                assert status == 0, f"{where}: `{command}` failed"
                follower = blocks[index + 1] if index + 1 < len(blocks) else None
                if follower and follower[0] == "text":
                    assert output.getvalue() == follower[1], f"{where}: the output shown differs"


def test_readme_states_the_suite_time_and_memory_and_runnable_parts():
    readme = REPO / "README.md"
    figures = readme.read_text().split("<!-- suite-figures -->\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"\b\d+ min\b", figures) and re.search(r"\b[\d.]+ GB\b", figures), (
        "README.md: the paragraph after <!-- suite-figures --> must give the suite's time "
        f"(N min) and memory (N GB); it reads {figures!r}"
    )
    parts = [
        command
        for language, code, _ in _blocks(readme)
        if language == "bash"
        for command in _commands(code)
        if command.startswith("pytest ")
    ]
    assert len(parts) > 1, "README.md shows no command that runs a part of the suite"
    for command in parts:
        for word in shlex.split(command, comments=True)[1:]:
            if not (word.startswith("-") or word.isdigit()):
                assert sorted(REPO.glob(word)), f"README.md: `{command}`: {word} matches nothing"


def test_pytest_names_the_reason_of_every_skip():
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]
    assert "-rs" in options["ini_options"]["addopts"].split()
