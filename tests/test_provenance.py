"""Provenance and atomic writes."""

import os
import re

import pytest

from skipanalysis import provenance

from conftest import ROOT


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "sub" / "x.txt"
    provenance.write_atomic(target, "first")
    with pytest.raises(RuntimeError):
        with provenance.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "first" and sorted(p.name
                                                    for p in target.parent.iterdir()) == ["x.txt"]
    mask = os.umask(0)
    os.umask(mask)
    # what a plain open() gives, not mkstemp's 0o600
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    provenance.write_json_atomic(target, {"a": [1, 2]})
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'


def test_git_commit_and_versions(tmp_path):
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", provenance.git_commit(ROOT))
    assert provenance.git_commit(tmp_path) == "unknown"
    versions = provenance.package_versions(("torch", "no-such-package-xyz"))
    assert versions["no-such-package-xyz"] == "not installed" and versions["torch"][0].isdigit()
