"""The package's layers (DESIGN and issue 32): imports run downward only, in no circle, none inside
a function, no star imports, and no module over the size limit.

From the top: ``pipeline`` (notebooks to paper) over ``figures`` (one per notebook) over ``studies``
(one per notebook) over ``measure`` (measuring tools) over the base (``rules``, ``models`` and the
flat modules: data, tasks, train, runs, keys, claims, design, stats, ...). A module may import its
own layer and those below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "skipanalysis"
LAYERS = {"pipeline": 4, "figures": 3, "studies": 2, "measure": 1}  # anything else: the base, 0
MAX_LINES = 500


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def imports(path: Path, package: Path = PACKAGE) -> list[tuple[str, int, bool]]:
    """Each package module ``path`` imports: (module, line, inside a function). ``from x import
    name`` counts as ``x.name`` when that is a module, else as ``x``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path, package)
    base_pkg = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child,
                                               (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = base_pkg.split(".")
                    target = ".".join(parts[: len(parts) - child.level + 1] + (
                        [child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == package.name:
                    for alias in child.names:
                        full = f"{target}.{alias.name}"
                        rel = Path(*full.split(".")[1:])
                        is_module = ((package / rel).with_suffix(".py").is_file()
                                     or (package / rel / "__init__.py").is_file())
                        out.append((full if is_module else target, child.lineno, inside))
            elif isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, inside) for a in child.names
                           if a.name.split(".")[0] == package.name)
            visit(child, inside)

    visit(tree, False)
    return out


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    found = modules(package)
    return {m: {t for t, _, _ in imports(p, package) if t in found and t != m} for m,
            p in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each strongly connected set of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def connect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return out


def problems(package: Path = PACKAGE) -> list[str]:
    """Every breach of the layering rules in ``package``, one line each."""
    found, out = modules(package), []
    for name, path in found.items():
        rel = path.relative_to(package.parent)
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            out.append(f"{rel}: {lines} lines, over the limit of {MAX_LINES}")
        if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
               for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))):
            out.append(f"{rel}: a star import (import modules or names)")
        for target, line, inside in imports(path, package):
            if inside:
                out.append(f"{rel}:{line}: imports {target} inside a function (import at the top)")
            if target in found and layer(target) > layer(name):
                out.append(f"{rel}:{line}: imports {target}, a higher layer (imports run downward)")
    out += [f"import circle: {' -> '.join(c)}" for c in cycles(graph(package))]
    return out


def test_the_package_keeps_its_layers():
    assert problems() == []


def test_each_notebook_has_its_study_figures_and_rules_under_its_own_name():
    names = [p.stem.split("_", 1)[1]
             for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    assert len(names) == 8
    missing = [f"{sub}/{n}.py" for n in names for sub in ("studies", "figures", "rules")
               if not (PACKAGE / sub / f"{n}.py").is_file()]
    assert missing == []


@pytest.fixture
def toy(tmp_path):
    """A package with the same layers: pipeline/run.py over studies/one.py over base.py."""
    pkg = tmp_path / "skipanalysis"
    for sub in ("pipeline", "studies", "measure"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("X = 1\n")
    (pkg / "studies" / "one.py").write_text("from .. import base\n")
    (pkg / "pipeline" / "run.py").write_text("from ..studies import one\n")
    return pkg


def test_a_clean_toy_package_passes(toy):
    assert problems(toy) == []


def test_an_upward_import_fails(toy):
    (toy / "base.py").write_text("from .studies import one\n")
    found = problems(toy)
    assert any("base.py:1: imports skipanalysis.studies.one, a higher layer" in p
               for p in found), found
    assert any(p.startswith("import circle: skipanalysis.base -> skipanalysis.studies.one")
               for p in found), found


def test_a_circle_within_a_layer_fails(toy):
    (toy / "studies" / "two.py").write_text("from . import one\n")
    (toy / "studies" / "one.py").write_text("from .. import base\nfrom . import two\n")
    assert problems(toy) == ["import circle: skipanalysis.studies.one -> skipanalysis.studies.two"]


def test_an_import_inside_a_function_a_star_import_and_a_long_module_fail(toy):
    (toy / "measure" / "tool.py").write_text(
        "def f():\n    from .. import base\n    return base.X\n")
    (toy / "studies" / "one.py").write_text("from ..base import *\n" + "x = 1\n" * MAX_LINES)
    found = problems(toy)
    assert (
        "skipanalysis/measure/tool.py:2: imports skipanalysis.base inside a function (import at "
        "the top)" in found)
    assert "skipanalysis/studies/one.py: a star import (import modules or names)" in found
    over = f"skipanalysis/studies/one.py: {MAX_LINES + 1} lines, over the limit of {MAX_LINES}"
    assert over in found
