"""Run keys: what part of the code a run's key holds. A key is the hash of the run's config and a
code fingerprint: the training loop (``train.py``, whole), the source of the run function and of
every package function and class it reaches, function by function and by name (a move between
modules re-runs nothing), and the model files its net is built from. Code enters as its syntax tree
(``code_text``): comments, docstrings and formatting do not."""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import inspect
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import models
from .models import factory

ROOT = Path(__file__).resolve().parent.parent

TRAINING_CODE = ("skipanalysis/train.py",)  # the training loop: every run reaches it, hashed whole
# every model file: the fallback for a run whose config names no net
MODEL_CODE = ("skipanalysis/models",)
WHOLE_MODULES = ("skipanalysis.train",)


def code_text(source: str) -> str:
    """Python source as a run's key sees it: its syntax tree, one statement per line, without
    docstrings.

    Only what the code computes enters: comments, docstrings, blank lines, spacing, line breaks,
    brackets that group nothing, a trailing comma in a call, quote style and a string split into
    adjacent literals all leave it as it is, so a formatter re-runs nothing. A trailing comma that
    makes a tuple (``(x,)`` is not ``(x)``), another constant or a statement moved out of its block
    changes it. Fields a newer Python adds to the tree are left out when empty, so the text is the
    same on every supported version.
    """
    source = textwrap.dedent(source)
    try:
        statements = ast.parse(source).body
    except IndentationError:  # a method whose string runs on at column 0: dedent cannot strip it
        statements = ast.parse("if True:\n" + source).body[0].body
    module = ast.Module(body=statements, type_ignores=[])
    for node in ast.walk(module):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            del body[0]
    return "\n".join(_tree_text(statement) for statement in module.body)


def _tree_text(node: Any) -> str:
    """One node of a syntax tree as text: its type and its non-empty fields, in order
    (``ast.dump``'s output differs between Python versions: 3.13 drops empty fields, 3.12 adds
    ``type_params``)."""
    if isinstance(node, list):
        return "[" + ", ".join(_tree_text(item) for item in node) + "]"
    if not isinstance(node, ast.AST):
        return repr(node)
    fields = ((name, getattr(node, name, None)) for name in node._fields
              if name not in ("ctx", "kind", "type_comment"))
    return f"{type(node).__name__}(" + ", ".join(f"{name}={_tree_text(value)}" for name,
                                                 value in fields
                                                 if value is not None and value != []) + ")"


def code_fingerprint(paths: tuple[str, ...] = TRAINING_CODE, root: Path = ROOT) -> str:
    """sha256 over the code (``code_text``) of the named package files (folders: every ``*.py``
    inside), in path order."""
    h = hashlib.sha256()
    for rel in paths:
        p = root / rel
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(code_text(f.read_text(encoding="utf-8")).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=256)
def _model_files(name: str, args: str) -> str:
    """sha256 over the code of the model files a net is built from: ``models/factory.py`` and the
    file of every package class among its modules (``create(name, **args)`` builds it once on the
    CPU to see them)."""
    with torch_seed_kept():
        net = models.create(name, **json.loads(args))
    files = {Path(inspect.getsourcefile(type(m))) for m in net.modules()
             if type(m).__module__.startswith(f"{models.__name__}.")} | {
                 Path(inspect.getsourcefile(factory))}
    return code_fingerprint(tuple(str(f.relative_to(ROOT)) for f in sorted(files)))


def model_fingerprint(config: dict[str, Any]) -> str:
    """The code fingerprint of the net a run's ``config`` trains: of the model files
    ``create(config["name"], **config["model_args"])`` reaches (editing the transformer leaves CIFAR
    runs alone), or of every model file when the config names no net the factory builds (a run that
    builds its nets itself)."""
    name, args = config.get("name"), config.get("model_args")
    if isinstance(name, str) and factory.known(name) and isinstance(args, dict):
        return _model_files(name, json.dumps(args, sort_keys=True, default=str))
    return code_fingerprint(MODEL_CODE)


@contextlib.contextmanager
def torch_seed_kept():
    """Run a block without moving torch's global random state (building a net to read its files
    draws weights)."""
    import torch

    state = torch.random.get_rng_state()
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def _reached(fn: Callable, package: str = "skipanalysis") -> list[Any]:
    """The functions and classes of ``package`` that ``fn`` reaches: the globals its code (and
    nested code) names, attributes of package modules it names, recursively through the functions
    and the methods of the classes found, ``fn`` first; not those of the training loop
    (``code_fingerprint``, whole) or of the models (``model_fingerprint``, by the files a config's
    net is built from)."""
    import types

    def names(code: types.CodeType) -> set[str]:
        out = set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                out |= names(const)
        return out

    def ours(obj: Any) -> bool:  # the training loop and the models are fingerprinted apart
        module = getattr(obj, "__module__", None) or ""
        return ((inspect.isfunction(obj) or inspect.isclass(obj)) and module.startswith(package)
                and module not in WHOLE_MODULES and not module.startswith(f"{package}.models"))

    seen: dict[int, Any] = {}
    todo = [fn]
    while todo:
        f = todo.pop()
        if id(f) in seen:
            continue
        seen[id(f)] = f
        funcs = [v for v in vars(f).values()
                 if inspect.isfunction(v)] if inspect.isclass(f) else [f]
        for g in funcs:
            glob = getattr(g, "__globals__", {})
            used = names(g.__code__)
            modules = [m for m in glob.values() if inspect.ismodule(m)
                       and m.__name__.startswith(package)]
            # local imports
            modules += [sys.modules[f"{package}.{n}"] for n in used
                        if f"{package}.{n}" in sys.modules]
            for name in used:
                found = [glob.get(name)] + [getattr(m, name, None) for m in modules]
                todo += [obj for obj in found if ours(obj) and id(obj) not in seen]
    return list(seen.values())


def fn_fingerprint(fn: Callable, code: str | None = None) -> str:
    """The code fingerprint of runs made by ``fn``: the training code's (``code_fingerprint``) and
    the source of ``fn`` and of every package function and class it reaches (``_reached``: helpers
    such as a loss or a probe), so editing what a run computes re-runs it while editing plots,
    rules, comments or docstrings does not."""
    h = hashlib.sha256((code if code is not None else code_fingerprint()).encode())
    for name, text in sorted((obj.__qualname__, code_text(inspect.getsource(obj)))
                             for obj in _reached(fn)):
        # by name and code, not by module: moving a function to another module re-runs nothing
        h.update(name.encode())
        h.update(text.encode())
    return h.hexdigest()


def code_parts(fn: Callable, code: str | None = None) -> dict[str, str]:
    """What ``fn_fingerprint(fn, code)`` is made of, each part by a short hash of its own: the
    training code, and every package function and class the run function reaches by qualified name.
    A run's record keeps them, so ``make compare`` can say which function's code two runs differ in
    (the key alone says only that they do)."""
    short = lambda text: hashlib.sha256(text.encode()).hexdigest()[:12]  # noqa: E731
    parts = {"training loop (skipanalysis/train.py)": short(code if code is not None
                                                            else code_fingerprint())}
    for obj in sorted(_reached(fn), key=lambda o: (o.__module__, o.__qualname__)):
        parts[f"{obj.__module__}.{obj.__qualname__}"] = short(code_text(inspect.getsource(obj)))
    return parts


def tensor_fingerprint(*tensors) -> str:
    """sha256 over the shapes, dtypes and bytes of tensors (a data set's identity in a run's
    config)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def run_key(config: dict[str, Any], code: str) -> str:
    """The key of a run: sha256 of the canonical JSON of ``config`` and the code fingerprint
    ``code``."""
    text = json.dumps({"config": config, "code": code}, sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()
