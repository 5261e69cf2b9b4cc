"""Writes docs/api.md, the reference of every public name of alignjax.

    python docs/generate_api.py          # rewrite docs/api.md
    python docs/generate_api.py --check  # exit 1 if docs/api.md is out of date

A module's public names are its ``__all__`` or, without one, the functions, classes and
constants its own source defines at top level (names not starting with ``_``). Each
name is listed with its signature (classes: their constructor, then their public
methods and properties) and the first line of its docstring. The ``alignjax.data`` and
``alignjax.methods`` modules are found with ``pkgutil``, so a new module appears by
re-running this script; ``tests/test_docs.py`` fails when the file is stale.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import inspect
import pathlib
import pkgutil
import re
import sys
import types
import typing

DOCS = pathlib.Path(__file__).resolve().parent
REPO = DOCS.parent
OUTPUT = DOCS / "api.md"
COMMAND = "python docs/generate_api.py"

# The layers, bottom up (DESIGN.md); "*" expands to the package's modules.
SECTIONS = (
    ("Losses", ("alignjax.losses",)),
    ("Data", ("alignjax.data", "alignjax.data.*")),
    ("Models", ("alignjax.models",)),
    ("Training", ("alignjax.training",)),
    ("Evaluation", ("alignjax.evaluation",)),
    ("Methods", ("alignjax.methods.*",)),
    ("Configs, runner and command line", ("alignjax.config", "alignjax.runner", "alignjax.cli")),
)
MAX_VALUE_CHARS = 80
MAX_DEFAULT_CHARS = 60


def module_names() -> list[tuple[str, list[str]]]:
    """The sections and their modules, ``*`` expanded to a package's public modules."""
    sections = []
    for title, patterns in SECTIONS:
        names = []
        for pattern in patterns:
            if pattern.endswith(".*"):
                package = importlib.import_module(pattern[:-2])
                names += sorted(
                    f"{package.__name__}.{info.name}"
                    for info in pkgutil.iter_modules(package.__path__)
                    if not info.name.startswith("_")
                )
            else:
                names.append(pattern)
        sections.append((title, names))
    return sections


def source_path(module_name: str) -> pathlib.Path:
    """The module's file relative to the repository (not to where it is installed)."""
    parts = module_name.split(".")
    if parts[:2] == ["alignjax", "experiments"]:
        parts = ["experiments", *parts[2:]]
    base = pathlib.Path(*parts)
    package = base / "__init__.py"
    return package if (REPO / package).exists() else base.with_suffix(".py")


def _top_level_names(module: types.ModuleType) -> list[str]:
    """Public names bound at the top level of the module's own source."""
    tree = ast.parse(inspect.getsource(module))
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [n for n in dict.fromkeys(names) if not n.startswith("_")]


def public_names(module: types.ModuleType) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return _top_level_names(module)


def _assignment_sources(module_name: str) -> dict[str, str]:
    """``name -> source of its value`` for the top-level assignments of a module."""
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and node.value is not None:
            text = ast.get_source_segment(source, node.value)
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values[target.id] = text
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotation = ast.get_source_segment(source, node.annotation)
            value = "" if node.value is None else " = " + ast.get_source_segment(source, node.value)
            values[node.target.id] = f": {annotation}{value}"
    return values


def _one_line(text: str) -> str:
    return " ".join(text.split())


def summary(obj) -> str:
    """The first line (the whole first paragraph, if it wraps) of the object's own docstring."""
    doc = (
        obj.__doc__
        if isinstance(obj, (type, types.FunctionType, types.ModuleType))
        else inspect.getdoc(obj)
    )
    doc = inspect.cleandoc(doc or "")
    if isinstance(obj, type) and re.fullmatch(rf"{obj.__name__}\(.*\)", _one_line(doc)):
        return ""  # The docstring dataclasses write for undocumented classes.
    return _one_line(doc.strip().split("\n\n")[0])


class _Text:
    """Prints as the given text: annotations as written (``inspect`` would quote string
    annotations), long default values shortened."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _annotation(annotation) -> _Text:
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    return _Text(
        annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    )


def _parameter(p: inspect.Parameter) -> inspect.Parameter:
    empty = inspect.Parameter.empty
    if p.annotation is not empty:
        p = p.replace(annotation=_annotation(p.annotation))
    if p.default is not empty and inspect.isclass(p.default):
        p = p.replace(default=_Text(f"{p.default.__module__}.{p.default.__qualname__}"))
    elif p.default is not empty and len(repr(p.default)) > MAX_DEFAULT_CHARS:
        p = p.replace(default=_Text("..."))
    return p


def _constructor_signature(cls: type) -> inspect.Signature:
    sig = inspect.signature(cls)
    kinds = [p.kind for p in sig.parameters.values()]
    if kinds == [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]:
        # A metaclass __call__ (Flax NNX modules) hides the arguments of __init__.
        init = inspect.signature(cls.__init__)
        sig = init.replace(parameters=list(init.parameters.values())[1:])
    return sig


def signature(obj) -> str:
    try:
        sig = _constructor_signature(obj) if inspect.isclass(obj) else inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    empty = inspect.Signature.empty
    returns = sig.return_annotation
    sig = sig.replace(
        parameters=[_parameter(p) for p in sig.parameters.values()],
        # A constructor returns None; saying so adds nothing.
        return_annotation=empty
        if returns is empty or inspect.isclass(obj)
        else _annotation(returns),
    )
    text = str(sig)
    # Default values that are objects print with their memory address.
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def _is_definition(obj) -> bool:
    """A class or function of alignjax (not a constant, type alias or imported object)."""
    return (inspect.isclass(obj) or inspect.isfunction(obj) or hasattr(obj, "__wrapped__")) and (
        getattr(obj, "__module__", None) or ""
    ).startswith("alignjax")


def _defining_module(obj, fallback: str) -> str:
    name = getattr(obj, "__module__", None)
    return name if _is_definition(obj) and isinstance(name, str) else fallback


def _members(cls: type) -> list[str]:
    """Lines for the public methods and properties a class defines itself."""
    lines = []
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(member, (property, functools.cached_property)):
            target, text = member.fget if isinstance(member, property) else member.func, ""
            kind = "property"
        elif isinstance(member, (staticmethod, classmethod)):
            target, kind = member.__func__, type(member).__name__
            text = signature(getattr(cls, name))
        elif inspect.isfunction(member):
            target, kind, text = member, "method", signature(member)
        else:
            continue
        line = f"  - `{name}{text}`" + (f" ({kind})" if kind != "method" else "")
        doc = summary(target)
        lines.append(line + (f": {doc}" if doc else ""))
    return lines


def render_name(module_name: str, name: str, assignments: dict[str, str]) -> list[str]:
    obj = getattr(importlib.import_module(module_name), name)
    link = source_path(_defining_module(obj, module_name)).as_posix()
    if inspect.isclass(obj) and issubclass(obj, BaseException) and _is_definition(obj):
        bases = ", ".join(base.__name__ for base in obj.__bases__)
        lines = [f"- **`{name}`**`({bases})` (exception, [source](../{link}))"]
        doc = summary(obj)
        return lines + ([f"  {doc}"] if doc else [])
    if inspect.isclass(obj) and _is_definition(obj):
        lines = [f"- **`{name}`**`{signature(obj)}` (class, [source](../{link}))"]
        doc = summary(obj)
        if doc:
            lines.append(f"  {doc}")
        return lines + _members(obj)
    if _is_definition(obj):
        doc = summary(obj)
        return [f"- **`{name}`**`{signature(obj)}` ([source](../{link}))"] + (
            [f"  {doc}"] if doc else []
        )
    value = assignments.get(name)
    if value is None:
        definition = f"{name}: {type(obj).__name__}"
    else:
        value = _one_line(value)
        value = value if value.startswith(":") else f" = {value}"
        if len(value) > MAX_VALUE_CHARS:
            value = f": {type(obj).__name__}"
        definition = f"{name}{value}"
    return [f"- `{definition}` ([source](../{link}))"]


def render_module(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = public_names(module)
    path = source_path(module_name).as_posix()
    lines = [f"### `{module_name}`", "", f"[{path}](../{path})"]
    doc = summary(module)
    if doc:
        lines += ["", doc]
    if module_name == "alignjax.data":
        lines += [
            "",
            "Every name below under `alignjax.data.<module>` whose module lists it in "
            "`alignjax.data.__all__` can also be imported from `alignjax.data` directly "
            f"({len(names)} names, loaded on first use).",
        ]
        return lines + [""]
    lines.append("")
    if not names:
        return lines + ["No public names.", ""]
    assignments = {}
    for name in names:
        owner = _defining_module(getattr(module, name), module_name)
        if owner not in assignments:
            assignments[owner] = _assignment_sources(owner) if owner == module_name else {}
    for name in names:
        obj = getattr(module, name)
        lines += render_name(module_name, name, assignments[_defining_module(obj, module_name)])
    return lines + [""]


def render() -> str:
    sections = module_names()
    lines = [
        "# API reference",
        "",
        f"<!-- Generated by `{COMMAND}` from the docstrings; do not edit by hand. -->",
        "",
        "Every public name of alignjax with its signature and the first line of its",
        "docstring; the docstrings themselves (math, shapes, examples, references) are in",
        "the linked source and in `help(...)`. Regenerate this file with",
        f"`{COMMAND}` after changing a public name.",
        "",
        "Contents:",
        "",
    ]
    for title, names in sections:
        anchor = re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
        lines.append(f"- [{title}](#{anchor}): " + ", ".join(f"`{n}`" for n in names))
    lines.append("")
    for title, names in sections:
        lines += [f"## {title}", ""]
        for name in names:
            lines += render_module(name)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that docs/api.md is current"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date; run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
