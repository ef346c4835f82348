"""The environment files: requirements.lock pins what pyproject.toml asks for, environment.yml
installs the lock, the Makefile's .venv holds exactly the locked versions, and torch stays
installable."""

import importlib.metadata
import re
import sys

import pytest
import tomllib
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement

from conftest import ROOT


def _name(req: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(req).name).lower()


def _pins(path) -> dict[str, list[tuple[str, str]]]:
    """name -> [(version, marker)] of a uv lock file."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in path.read_text().splitlines():
        if not line or line[0] in "# ":
            continue
        spec, _, marker = line.partition(";")
        name, _, version = spec.strip().partition("==")
        assert version, f"{path.name}: {line!r} is not an exact pin"
        out.setdefault(_name(name), []).append((version, marker.strip()))
    return out


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_lock_pins_everything_pyproject_asks_for():
    project, lock, cluster = _project(), _pins(ROOT / "requirements.lock"), _pins(
        ROOT / "requirements-cluster.lock")
    extras = project["optional-dependencies"]
    assert {_name(r) for r in project["dependencies"] + extras["dev"]} <= set(lock)
    ray = {_name(r) for r in extras["cluster"]}
    assert ray <= set(cluster) and not ray & set(lock)
    # the cluster lock adds Ray and what it needs, and moves nothing the plain lock pins
    assert {k: v for k, v in cluster.items() if k in lock} == lock
    for req in project["dependencies"] + extras["dev"]:  # and each pin satisfies pyproject's range
        r = Requirement(req)
        assert all(r.specifier.contains(v) for v, _ in lock[_name(req)]), req


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-r requirements.lock", "-e ."]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert Requirement(f"x{_project()['requires-python']}").specifier.contains(python.split("=")[1]
                                                                               + ".0")


@pytest.mark.skipif(sys.prefix != str(ROOT / ".venv"),
                    reason="not the Makefile's .venv (PYTHON=... was given)")
def test_the_venv_holds_the_locked_versions():
    lock = _pins(
        ROOT / ("requirements-cluster.lock" if (ROOT / ".venv" / ".installed-cluster").exists()
                         else "requirements.lock"))
    wrong = {}
    for name, pins in lock.items():
        for version, marker in pins:
            if marker and not Marker(marker).evaluate():
                continue
            installed = importlib.metadata.version(name)
            if installed.split("+")[0] != version.split("+")[0]:
                wrong[name] = (installed, version)
    assert not wrong, (f"installed vs locked: {wrong}; run make setup "
                       "(or make lock after changing pyproject.toml)")


def test_torch_is_not_pinned_to_a_cpu_wheel():
    project = _project()
    assert not [r for r in project["dependencies"] if "+cpu" in r or "download.pytorch.org" in r]
    assert not re.search(r"torch==\S*\+cpu", (ROOT / "requirements.lock").read_text())
