"""The package as installed: every sub-package shipped, layers importing downward only,
and every docstring example true."""

import ast
import doctest
import importlib
import pathlib
import pkgutil
import tomllib

import pytest

import alignjax

REPO = pathlib.Path(__file__).resolve().parents[1]
SOURCE = REPO / "alignjax"

# What each layer may import from alignjax (DESIGN.md: imports point down only), and
# which third-party libraries the pure layer may touch.
ALLOWED_INTERNAL = {
    "losses": {"losses"},
    "config": {"config"},
    "data": {"data", "losses", "config"},
    "models": {"models", "config"},
    "training": {"training", "config"},
    "evaluation": {"evaluation", "losses", "data", "models", "config"},
    "methods": {"methods", "losses", "data", "models", "training", "evaluation", "config"},
}
PURE_THIRD_PARTY = {"jax", "optax", "numpy"}


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.add("alignjax." + path.relative_to(SOURCE).parts[0].removesuffix(".py"))
    return names


def _layer_files():
    for path in sorted(SOURCE.rglob("*.py")):
        layer = path.relative_to(SOURCE).parts[0].removesuffix(".py")
        if layer in ALLOWED_INTERNAL:
            yield layer, path


def test_pyproject_lists_every_subpackage():
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(("alignjax",) + p.parent.relative_to(SOURCE).parts).rstrip(".")
        for p in SOURCE.rglob("__init__.py")
    }
    on_disk.add("alignjax.experiments")
    assert on_disk == listed


@pytest.mark.parametrize(("layer", "path"), list(_layer_files()), ids=lambda v: str(v))
def test_layers_import_downward_only(layer, path):
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "alignjax" and len(parts) > 1:
            assert parts[1] in ALLOWED_INTERNAL[layer], f"{path.name} ({layer}) imports {name}"
        elif layer in ("losses", "config"):
            stdlib = parts[0] in __import__("sys").stdlib_module_names
            assert stdlib or parts[0] in PURE_THIRD_PARTY, f"{path.name} imports {name}"


def _modules():
    yield alignjax.__name__
    for info in pkgutil.walk_packages(alignjax.__path__, prefix="alignjax."):
        yield info.name


@pytest.mark.parametrize("module_name", sorted(_modules()))
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module_name}"
