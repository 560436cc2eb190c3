"""Imports flow one way (issue 31): every import of the package, at module level and inside functions,
read with ``ast`` and held to the layering rules below. A rule broken names the importing module and
what it imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import amodal3d

PACKAGE = Path(amodal3d.__file__).resolve().parent

# the bottom layer: pure helpers and result types that import nothing of the package but each other
BASE = ("amodal3d.errors", "amodal3d.io", "amodal3d.masks", "amodal3d.geometry", "amodal3d.roi",
        "amodal3d.structures", "amodal3d.paths", "amodal3d.categories")
# above everything a library module may import: the layers that only commands (and methods) use
ABOVE_DATA = ("amodal3d.models", "amodal3d.evaluation", "amodal3d.pipeline", "amodal3d.predict",
              "amodal3d.methods", "amodal3d.commands", "amodal3d.cli", "amodal3d.train_all")
ABOVE_MODELS = ("amodal3d.evaluation", "amodal3d.pipeline", "amodal3d.predict", "amodal3d.methods",
                "amodal3d.commands", "amodal3d.cli", "amodal3d.train_all")
ABOVE_EVALUATION = ("amodal3d.pipeline", "amodal3d.predict", "amodal3d.methods", "amodal3d.commands",
                    "amodal3d.cli", "amodal3d.train_all")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Every ``amodal3d`` module ``path`` imports, anywhere in the file (``from amodal3d.x import y``
    counts ``amodal3d.x.y`` when ``y`` is a module, else ``amodal3d.x``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "amodal3d")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "amodal3d":
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if _is_module(candidate) else source)
    return found


def _modules() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _is_train(name: str) -> bool:
    return name.rpartition(".")[2].endswith("_train") or name == "amodal3d.train_all"


def _inference(name: str) -> bool:
    """Modules that run a trained model (or score one): they never need a trainer."""
    if name in ("amodal3d.pipeline", "amodal3d.predict", "amodal3d.methods"):
        return True
    if _within(name, ("amodal3d.evaluation",)):
        return True
    return name.startswith("amodal3d.models.") and not _is_train(name)


def violations(modules: dict[str, set[str]]) -> list[str]:
    found = []
    for name, imported in sorted(modules.items()):
        for target in sorted(imported):
            if target == name or target == "amodal3d":  # the package root holds constants only
                continue
            if name in BASE and target not in BASE:
                found.append(f"{name} (base) imports {target}")
            if _within(name, ("amodal3d.render",)) and not (target in BASE or _within(target, ("amodal3d.render",))):
                found.append(f"{name} (render) imports {target}")
            if _within(name, ("amodal3d.data",)) and _within(target, ABOVE_DATA):
                found.append(f"{name} (data) imports {target}")
            if _within(name, ("amodal3d.models",)) and _within(target, ABOVE_MODELS):
                found.append(f"{name} (models) imports {target}")
            if _within(name, ("amodal3d.evaluation",)) and _within(target, ABOVE_EVALUATION):
                found.append(f"{name} (evaluation) imports {target}")
            if _inference(name) and _is_train(target):
                found.append(f"{name} (inference) imports the training module {target}")
    return found


def test_the_package_imports_flow_one_way():
    assert violations(MODULES) == []


def test_the_walk_sees_every_layer():
    """The rules above bite only if the walk finds the imports: a few that must be there."""
    assert "amodal3d.roi" in MODULES["amodal3d.data.instances"]
    assert "amodal3d.structures" in MODULES["amodal3d.pipeline"]
    assert "amodal3d.models.shape" in MODULES["amodal3d.models.shape_train"]  # module level
    assert "amodal3d.pipeline" in MODULES["amodal3d.methods"]                # inside a function
    assert {"amodal3d.errors", "amodal3d.masks", "amodal3d.roi", "amodal3d.structures"} <= set(MODULES)


@pytest.mark.parametrize(("module", "source", "rule"), [
    ("amodal3d.masks", "from amodal3d.data.dataset import read_image\n", "(base)"),
    ("amodal3d.render.mesh", "import amodal3d.models.shape\n", "(render)"),
    ("amodal3d.data.instances", "def f():\n    from amodal3d.models import detector\n", "(data)"),
    ("amodal3d.models.refine", "def f():\n    from amodal3d.pipeline import AmodalSegmenter\n", "(models)"),
    ("amodal3d.evaluation.harness", "from amodal3d import methods\n", "(evaluation)"),
    ("amodal3d.pipeline", "def f():\n    from amodal3d.models.shape_train import train_shape\n", "(inference)"),
])
def test_each_rule_can_fail(module, source, rule):
    """Each rule, broken on purpose by one more import of one module, is reported."""
    modules = dict(MODULES)
    modules[module] = MODULES[module] | {_resolve(source)}
    assert any(v.startswith(f"{module} {rule}") for v in violations(modules))


def _resolve(source: str) -> str:
    """The module a one-import probe names (as :func:`imports_of` resolves it)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            return node.names[0].name
        if isinstance(node, ast.ImportFrom):
            candidate = f"{node.module}.{node.names[0].name}"
            return candidate if _is_module(candidate) else node.module
    raise AssertionError(source)
