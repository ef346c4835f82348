"""The environment files: pyproject.toml and environment.yml list the same packages, and torch stays installable."""

import re
import tomllib

import yaml

from conftest import ROOT


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r) for r in pip if not r.startswith("-e")}
    assert listed == wanted
    # and the versions agree too
    spec = lambda reqs: {_name(r): r.replace(" ", "") for r in reqs}  # noqa: E731
    both = spec(project["dependencies"] + project["optional-dependencies"]["dev"])
    assert {k: v for k, v in spec(p for p in pip if not p.startswith("-e")).items()} == both


def test_torch_is_not_pinned_to_a_cpu_wheel():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [r for r in project["dependencies"] if "+cpu" in r or "download.pytorch.org" in r]
