import re
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from skipanalysis import plotting  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_save_figure_writes_stable_names(tmp_path):
    plotting.set_theme()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = plotting.save_figure(fig, "my-plot", notebook="03_equivalence", report_dir=tmp_path, caption="c",
                                 show=False)
    assert {p.name for p in paths.values()} == {f"03_equivalence-my-plot.{f}" for f in ("png", "svg", "pdf")}
    assert all(p.stat().st_size > 0 for p in paths.values())
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "figures").glob(".*"))


def test_save_figure_rejects_bad_names(tmp_path):
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="figure name='My Plot'"):
        plotting.save_figure(fig, "My Plot", notebook="x", report_dir=tmp_path, caption="c", show=False)


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
