"""Citable verdicts (issue 33): identities, bundles, verify, explained compares, replications."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from skipanalysis import claims, rules, runs, tasks, train
from skipanalysis.claims import ClaimBook
from skipanalysis.pipeline import bundle, paper_tables, report
from skipanalysis.rules import core, degradation, equivalence
from skipanalysis.setting import Setting
from skipanalysis.studies import degradation as dg

SHALLOW = [0.0, 0.0, 0.0, 0.0, 0.0]
DEEP = [0.70, 0.75, 0.80, 0.72, 0.78]  # plain-56 at 150 steps on 256 images (notebook 01, quick)
LONGER = [0.50, 0.55, 0.60, 0.52, 0.58]


def _d1(deep=DEEP):
    return degradation.d1(SHALLOW, deep, LONGER, margin=0.02, chance=0.9,
                          converged=iter([True] * 10))


def test_rule_inputs_come_back_exactly_and_decide_the_same():
    """A rule's decision carries its arguments; decoded from JSON they give the same decision
    (verdict and every number), for NaN, tuple keys and numpy values too; a generator of flags is
    read once, by both."""
    d = _d1(np.array(DEEP))
    assert d.verdict == "supported" and d.inputs["function"] == "skipanalysis.rules.degradation.d1"
    back = core.decode(json.loads(json.dumps(d.inputs["arguments"])))
    assert back["converged"] == [True] * 10 and back["plain_deep"] == DEEP
    again = degradation.d1(**back)
    assert (again.verdict, again.numbers) == (d.verdict, d.numbers)
    odd = {"x": float("nan"), (1, "a"): (2.0, float("-inf")), "arr": np.arange(3)}
    out = core.decode(json.loads(json.dumps(core.encode(odd))))
    assert math.isnan(out["x"]) and out[(1, "a")] == (2.0, float("-inf")) and out["arr"] == [0, 1,
                                                                                             2]
    e2 = equivalence.e2([1e-16, 3e-12])  # an identity check records its inputs too
    assert e2.inputs["arguments"] == {"rel_errs": [1e-16, 3e-12]} and core.decider(
        "E2") is equivalence.e2


def test_cite_is_a_hash_of_what_decided_the_verdict():
    """Worked by hand: sha256 of the canonical JSON of the cited fields, first 7 hex digits; the
    headline and the device do not enter, one number does."""
    rec = {"id": "D1", "verdict": "supported", "rule": "r", "evidence": {"a": 1.5}, "inputs": None,
           "runs": ["k1"], "headline": "h", "device": "cpu"}
    text = (
        '{"evidence":{"a":1.5},"id":"D1","inputs":null,"rule":"r","runs":["k1"],"verdict":"supported"}')
    assert claims.cite(rec) == "D1@" + hashlib.sha256(text.encode()).hexdigest()[:7]
    assert claims.cite({**rec, "headline": "other", "device": "cuda"}) == claims.cite(rec)
    assert claims.cite({**rec, "evidence": {"a": 1.6}}) != claims.cite(rec)


@pytest.fixture()
def tiny():
    ds = tasks.texture_classification(64, 8, seed=0)
    return ds, ds, train.TrainConfig(epochs=1, batch_size=32, lr=0.05, progress=False)


def _report(tmp_path, tiny, seeds=(0,), name="a", monkeypatch=None):
    """A report folder whose D1 was recorded after real (tiny) runs through the store: claims/,
    claims.json and a figure, as make report leaves them."""
    ds, test, cfg = tiny
    folder = tmp_path / name
    book = ClaimBook("01_degradation", folder, "cpu (test, 1 thread)", "quick",
                     fingerprint={"hostname": name, "torch": "t", "device": "cpu"})
    dg.depth_study(dg.DepthRuns(("plain",), (8,), seeds),
                   Setting(ds, test, cfg, store=runs.RunStore()))
    book.record("D1", _d1(), evidence={"data": "tiny"}, headline="deep plain net worse")
    book.record("D4", degradation.d4(0.2, 0.1), evidence={}, headline="far from identity")
    (folder / "figures").mkdir()
    (folder / "figures" / "f.png").write_bytes(b"png")
    (folder / "claims.json").write_text(
        json.dumps({"profile": "quick", "notebooks": claims.load_claims(folder)}))
    return folder


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("SKIPANALYSIS_RUNS", str(tmp_path / "store"))
    monkeypatch.delenv("SKIPANALYSIS_WORKERS", raising=False)
    return tmp_path / "store"


def test_claim_records_its_runs_and_identity(tmp_path, tiny, store):
    folder = _report(tmp_path, tiny)
    d1 = json.loads((folder / "claims" / "01_degradation.json").read_text())["claims"][0]
    stored = [r["key"] for r in runs.RunStore().records()]
    assert d1["runs"] == sorted(stored) and len(stored) == 1
    assert d1["cite"] == claims.cite(d1) and d1["cite"].startswith("D1@")
    rec = runs.RunStore().records()[0]
    assert ("skipanalysis.studies.degradation.train_run" in rec["code"]
            and "model files" in rec["code"])


def _rewrite(path, change):
    """The bundle at ``path`` with ``change(members)`` applied, checksums updated (a careful
    forger)."""
    members = bundle.read_bundle(path)
    change(members)
    manifest = json.loads(members["MANIFEST.json"])
    for name in manifest["files"]:
        manifest["files"][name]["sha256"] = hashlib.sha256(members[name]).hexdigest()
    members["MANIFEST.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    path.write_bytes(buf.getvalue())


def _claims_change(fn):
    def change(members):
        data_ = json.loads(members["claims.json"])
        fn(data_["notebooks"][0]["claims"][0])
        members["claims.json"] = json.dumps(data_).encode()
    return change


def test_bundle_verifies_elsewhere_and_tampering_fails(tmp_path, tiny, store):
    folder = _report(tmp_path, tiny)
    path = bundle.make(folder)
    names = set(bundle.read_bundle(path))
    assert {"claims.json", "rules.json", "design.json", "code.json", "requirements.lock",
            "machines.json",
            "figures/f.png", "CITATION.cff", "report.bib", "MANIFEST.json"} <= names
    assert sum(n.startswith("runs/") for n in names) == 1
    # another folder, another working directory, no store
    elsewhere = tmp_path / "elsewhere" / "b.tar.gz"
    elsewhere.parent.mkdir()
    shutil.copy(path, elsewhere)
    env = {"PATH": "/usr/bin:/bin", "SKIPANALYSIS_RUNS": "/nonexistent"}
    out = subprocess.run(
        [sys.executable, "-m", "skipanalysis.pipeline.bundle", "verify", str(elsewhere)],
                         cwd=elsewhere.parent, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "2 of 2 verdict identities match; 2 of 2 verdicts recomputed" in out.stdout

    one = tmp_path / "one.tar.gz"  # one number changed: the identity no longer matches
    shutil.copy(path, one)
    _rewrite(one, _claims_change(
        lambda c: c["evidence"]["rule_numbers"]["deep_minus_shallow"].update(estimate=0.1)))
    with pytest.raises(bundle.BundleError,
                       match=r"claim D1 \[cpu \(test, 1 thread\)\]: identity D1@"):
        bundle.verify(one)

    # an input changed and the identity recomputed: the rule no longer gives the recorded verdict
    def forge(c):
        # the gap gone at twice
        c["inputs"]["arguments"]["plain_deep_longer"] = [0.0, 0.01, 0.0, 0.0, 0.0]
        c["cite"] = claims.cite(c)
    two = tmp_path / "two.tar.gz"
    shutil.copy(path, two)
    _rewrite(two, _claims_change(forge))
    with pytest.raises(bundle.BundleError,
                       match="recorded 'supported', but its rule gives 'refuted'"):
        bundle.verify(two)

    raw = tmp_path / "raw.tar.gz"  # a member changed without its checksum
    members = bundle.read_bundle(path)
    members["figures/f.png"] = b"other"
    with tarfile.open(raw, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    assert bundle.main(["verify", str(raw)]) == 1
    with pytest.raises(bundle.BundleError, match="figures/f.png does not match its checksum"):
        bundle.verify(raw)


def test_compare_explains_a_seed_a_version_and_a_function(tmp_path, tiny, store):
    """Two runs that differ in one known component each time: the first seed (real runs), a torch
    version in the records, one function's code in the records."""
    a = _report(tmp_path, tiny, seeds=(0,), name="a")
    b = _report(tmp_path, tiny, seeds=(1,), name="b")
    cb = json.loads((b / "claims.json").read_text())
    # let the verdict move, so compare explains it
    cb["notebooks"][0]["claims"][0]["verdict"] = "refuted"
    (b / "claims.json").write_text(json.dumps(cb))
    why = bundle.explain(a / "claims.json", b / "claims.json")
    lines = why[("01_degradation", "D1", "cpu (test, 1 thread)")]
    assert any(w.startswith("seed: 0 -> 1") for w in lines)
    assert not any(w.startswith(("code of", "package")) for w in lines)

    key = cb["notebooks"][0]["claims"][0]["runs"][0]
    path = runs.RunStore().folder(key) / "record.json"
    rec = json.loads(path.read_text())
    rec["versions"]["torch"] = "9.9.9"
    rec["code"]["skipanalysis.fitting.fit"] = "000000000000"
    path.write_text(json.dumps(rec))
    lines = bundle.explain(a / "claims.json", b / "claims.json")[("01_degradation", "D1",
                                                                  "cpu (test, 1 thread)")]
    assert lines[0].startswith("code of skipanalysis.fitting.fit: ") and lines[0].endswith(
        "-> 000000000000")
    assert any(w.startswith("package torch: ") and w.endswith("-> 9.9.9") for w in lines)
    table = claims.compare_verdicts(a, b / "claims.json")
    text = report.format_comparison(table, "a", "b", why)
    assert "      why: seed: 0 -> 1" in text
    path.unlink()  # a record not at hand: compare says so instead of finding no difference
    lines = bundle.explain(a / "claims.json", b / "claims.json")[("01_degradation", "D1",
                                                                  "cpu (test, 1 thread)")]
    assert lines[-1].startswith("1 of the runs' records are not at hand")


def test_imported_claims_make_a_replication_record(tmp_path, tiny, store):
    a = _report(tmp_path, tiny, name="a")
    b = _report(tmp_path, tiny, name="b")
    target = bundle.import_claims(bundle.make(b), a)
    assert target.parent == a / "replications" and target.name.startswith("b-cpu-")
    others = bundle.replications(a)
    assert bundle.replication("D1", "cpu (laptop)", "supported",
                              others) == "supported on 2 of 2 machines"
    # measured on no other GPU
    assert bundle.replication("D1", "cuda (H200)", "supported", others) == ""
    cb = json.loads((b / "claims.json").read_text())
    cb["notebooks"][0]["claims"][0]["verdict"] = "inconclusive"
    (b / "claims.json").write_text(json.dumps(cb))
    bundle.import_claims(b / "claims.json", tmp_path / "c")
    disagree = bundle.replications(tmp_path / "c") + others
    assert (bundle.replication("D1", "cpu", "supported", disagree)
            == "supported on 2 of 3 machines (inconclusive elsewhere)")
    records = [c for bk in claims.load_claims(a) for c in bk["claims"]]
    cell = paper_tables.claims_table_cell(records, others)
    html_text = cell.outputs[0]["data"]["text/html"]
    assert "supported on 2 of 2 machines" in html_text and records[0]["cite"] in html_text


def test_bad_bundle_input_is_one_line(tmp_path, capsys):
    assert bundle.main(["verify", str(tmp_path / "none.tar.gz")]) == 1
    assert "is not a file" in capsys.readouterr().err
    assert bundle.main(["make", str(tmp_path)]) == 1
    assert "claims.json does not exist; run make report" in capsys.readouterr().err
    (tmp_path / "x.tar.gz").write_text("not a tar")
    assert bundle.main(["verify", str(tmp_path / "x.tar.gz")]) == 1
    assert "is not a readable .tar.gz" in capsys.readouterr().err


def test_an_argument_json_cannot_hold_is_named_not_an_error():
    d = equivalence.e2(rel_errs=[1e-16])
    odd = rules.core._with_inputs(d, equivalence.e2, {"rel_errs": object()})
    assert odd.verdict == d.verdict and "cannot be recorded" in odd.inputs["unrecorded"]
    assert bundle.recompute({"id": "E2", "inputs": odd.inputs, "verdict": "verified"},
                            "quick") is None
