"""Per-notebook make dependencies: the package modules a notebook imports, and its own parameter
section.

``python -m skipanalysis.pipeline.deps --profile quick --out reports/quick notebooks/*.ipynb``
writes

- ``<out>/.deps.mk``: for each executed notebook, the package files it imports (directly or through
  other modules, found by reading the ``import`` statements with ``ast``; parent packages'
  ``__init__`` files count), its parameter stamp, and the same for the report
  (``skipanalysis.pipeline.report``);
- ``<out>/.params/<notebook>.yaml``: the notebook's section of the profile file, rewritten only when
  it changed, so editing one notebook's section re-runs that notebook alone. A notebook that reuses
  another's runs (``params.SHARED``: 07 draws its landscapes on 01's nets) also carries the other's
  section in its stamp, has the other notebook among its inputs, and runs after it (an order-only
  prerequisite), so its runs load from the store.

The Makefile includes the first and makes each executed notebook depend on both. Nothing here
imports the package's heavy modules, so regenerating the file costs a fraction of a second.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

import yaml

from ..params import SHARED

PACKAGE = "skipanalysis"
ROOT = Path(__file__).resolve().parents[2]


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of a dotted module name inside the package, or None when there is none."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(tree: ast.AST, current: str, is_package: bool, root: Path) -> set[str]:
    """Package modules named by the import statements of one parsed module (``current``) or notebook
    (``""``)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = current.split(".") if is_package else current.split(".")[:-1]
                parts = parts[:len(parts) - node.level + 1] if node.level > 1 else parts
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != PACKAGE:
                continue
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}", root)}
    return out


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(names: set[str], root: Path = ROOT) -> set[Path]:
    """Every package file that importing ``names`` executes: the modules, their parents and what
    they import."""
    todo, seen, files = [n for name in names for n in _with_parents(name)], set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        if path is None:
            continue
        files.add(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for found in _imports(tree, name, path.name == "__init__.py", root):
            todo += [n for n in _with_parents(found) if n not in seen]
    return files


def notebook_imports(notebook: Path, root: Path = ROOT) -> set[str]:
    """Package modules a notebook's code cells import (cells with IPython syntax are read line by
    line)."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    names: set[str] = set()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", []))
        lines = [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            tree = ast.parse("\n".join(ln for ln in lines if ln.startswith(("import ", "from ")))
                             or "pass")
        names |= _imports(tree, "", False, root)
    return names


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def write(notebooks: list[Path], profile: str, out: Path, params_dir: Path | None = None,
          root: Path = ROOT) -> Path:
    """Write ``<out>/.deps.mk`` and the per-notebook parameter stamps (see the module docstring)."""
    params_dir = params_dir or (notebooks[0].parent / "params" if notebooks
                                else root / "notebooks" / "params")
    sections = yaml.safe_load((params_dir / f"{profile}.yaml").read_text(encoding="utf-8")) or {}
    rel = lambda p: str(Path(p).resolve().relative_to(root.resolve()))  # noqa: E731
    lines = ["# generated by python -m skipanalysis.pipeline.deps; do not edit"]
    for nb in notebooks:
        stamp = out / ".params" / f"{nb.stem}.yaml"
        # notebooks whose runs this one asks for, with the parameters that decide those runs
        present = {o: keys for o, keys in SHARED.get(nb.stem, {}).items()
                   if (nb.parent / f"{o}.ipynb").exists()}
        theirs = {f"[{o}]": {k: v for k, v in (sections.get(o) or {}).items() if k in keys}
                  for o, keys in present.items()}
        _write_if_changed(
            stamp, yaml.safe_dump({**(sections.get(nb.stem) or {}), **theirs}, sort_keys=True))
        files = sorted(rel(p) for p in closure(notebook_imports(nb, root), root))
        files += [rel(nb.parent / f"{o}.ipynb") for o in present]
        lines.append(f"{out}/{nb.stem}.ipynb: {stamp} {' '.join(files)}")
        # ... and runs after them (order only), so under make -j their finished runs load from the
        # store
        if present:
            lines.append(
                f"{out}/{nb.stem}.ipynb: | {' '.join(f'{out}/{o}.ipynb' for o in present)}")
    report_files = sorted(rel(p) for p in closure({f"{PACKAGE}.report"}, root))
    lines.append(f"{out}/report.html: {' '.join(report_files)}")
    target = out / ".deps.mk"
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_if_changed(target, "\n".join(lines) + "\n")
    target.touch()  # newer than what it was made from, so make does not remake it again
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    try:
        write(args.notebooks, args.profile, args.out)
    except (OSError, yaml.YAMLError, SyntaxError, json.JSONDecodeError) as exc:
        print(f"[deps] {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
