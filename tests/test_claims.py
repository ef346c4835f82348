import json

import pytest

from skipanalysis.claims import CATALOGUE, ClaimBook, Finding, load_claims
from skipanalysis.rules.core import Decision


def book(tmp_path, name="03_equivalence"):
    return ClaimBook(notebook=name, report_dir=tmp_path, device="cpu (test)", profile="smoke")


def test_catalogue_covers_every_id():
    expected = {f"D{i}" for i in range(1, 6)} | {f"G{i}" for i in range(1, 7)} | {
        f"E{i}" for i in range(1, 6)} \
        | {f"C{i}" for i in range(1, 9)} | {f"T{i}" for i in range(1, 5)} | {"U1", "U2", "U3",
                                                                             "L1"} \
        | {"A1", "A2", "A3", "S1"}
    assert set(CATALOGUE) == expected


def test_unknown_claim_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="'Z9' is not in the project's claim list"):
        book(tmp_path).record("Z9", Decision("Z9", "supported", "r"), evidence={}, headline="h")


def test_claim_of_another_notebook_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="belongs to notebook '01_degradation'"):
        book(tmp_path).record("D1", Decision("D1", "supported", "r"), evidence={}, headline="h")


def test_bad_verdict_and_missing_rule(tmp_path):
    with pytest.raises(ValueError, match="verdict 'yes' is not allowed for E1"):
        Decision("E1", "yes", "r")
    with pytest.raises(ValueError, match="state the rule"):
        book(tmp_path).record("E5", Decision("E5", "supported", " "), evidence={}, headline="h")
    # no verdict reaches the book without a rule
    with pytest.raises(ValueError, match="record needs a Decision"):
        book(tmp_path).record("E5", "supported", evidence={}, headline="h")
    with pytest.raises(ValueError, match="decision for E2 recorded as E5"):
        book(tmp_path).record("E5", Decision("E2", "verified", "r"), evidence={}, headline="h")


def test_record_round_trip(tmp_path):
    import numpy as np

    b = book(tmp_path)
    b.record("E2", Decision("E2", "verified", "err < 1e-10"),
             evidence={"err": np.float64(1e-13), "n": np.int64(3),
                                                                       "nan": float("nan")},
             headline="tiny error")
    data = json.loads(b.path.read_text())
    assert data["claims"][0]["evidence"] == {"err": 1e-13, "n": 3, "nan": "nan", "rule_numbers": {}}
    assert load_claims(tmp_path)[0]["notebook"] == "03_equivalence"
    assert b.missing() == ["E1", "E3", "E4", "E5"]
    assert not list(tmp_path.glob("claims/.*tmp"))


def test_a_finding_is_recorded_in_one_call_as_record_would(tmp_path):
    a, b = book(tmp_path / "a"), book(tmp_path / "b")
    found = [
        Finding(Decision("E2", "verified", "err < 1e-10"), "tiny error", evidence={"err": 1e-13}),
             Finding(Decision("E4", "failed", "counts match"), "a miscount",
                     evidence={"N": 4, "err": 2.0})]
    a.add(*found, evidence={"data": "d", "err": 0.5})  # the finding's own evidence wins a clash
    b.record("E2", found[0].decision, evidence={"data": "d", "err": 1e-13}, headline="tiny error")
    b.record("E4", found[1].decision, evidence={"data": "d", "err": 2.0, "N": 4},
             headline="a miscount")
    assert a.to_dict()["claims"] == b.to_dict()["claims"]
    assert [f.claim for f in found] == ["E2", "E4"]
    with pytest.raises(ValueError, match="add needs Findings"):
        a.add((found[0].decision, "tiny error"))


def test_atomic_writes_are_readable_like_plain_files(tmp_path):
    import os

    from skipanalysis.provenance import write_json_atomic

    write_json_atomic(tmp_path / "x.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_compare_matches_a_laptop_and_a_gpu_server_by_device_kind_and_reads_claims_json(tmp_path):
    import json

    from skipanalysis.claims import compare_verdicts

    def run(name, devices):
        claims = [
            {"id": "C6", "verdict": v, "device": d, "headline": f"{d}: {v}", "kind": "empirical"}
                  for d, v in devices]
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(
            {"profile": "quick", "notebooks": [{"notebook": "04_cost", "claims": claims}]}))
        return path

    laptop = run("laptop",
                 [("cpu (Apple M2, 8 threads)", "not measured here"),
                  ("cuda (no machine measured)", "not measured here")])
    server = run("server", [("cpu (AMD EPYC, 32 threads)", "not measured here"),
                            ("cuda (NVIDIA H100)", "supported"),
                            ("cuda (NVIDIA A100)", "supported")])
    t = compare_verdicts(laptop, server)
    # changes first; the laptop's cpu row meets the server's cpu row, its cuda placeholder the first
    # cuda machine
    assert list(t.device_after) == ["cuda (NVIDIA H100)", "cuda (NVIDIA A100)",
                                    "cpu (AMD EPYC, 32 threads)"]
    assert list(t.device_before) == ["cuda (no machine measured)", "-", "cpu (Apple M2, 8 threads)"]
    assert list(t.changed) == [True, True, False] and t.iloc[0].verdict_after == "supported"
    # a claim measured on one device in each run lines up whatever the devices: D1 on a laptop's cpu
    # vs a GPU
    (tmp_path / "a.json").write_text(json.dumps({"notebooks": [{"notebook": "01", "claims": [
        {"id": "D1", "verdict": "inconclusive", "device": "cpu (M2)", "headline": "a"}]}]}))
    (tmp_path / "b.json").write_text(json.dumps({"notebooks": [{"notebook": "01", "claims": [
        {"id": "D1", "verdict": "supported", "device": "cuda (H100)", "headline": "b"}]}]}))
    t = compare_verdicts(tmp_path / "a.json", tmp_path / "b.json")
    assert len(t) == 1 and (t.iloc[0].verdict_before, t.iloc[0].verdict_after) == ("inconclusive",
                                                                                   "supported")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(FileNotFoundError, match="not a report's claims.json"):
        compare_verdicts(laptop, tmp_path / "bad.json")


def test_compare_verdicts_flags_what_moved(tmp_path):
    import subprocess
    import sys

    from skipanalysis.claims import compare_verdicts

    for run, e5 in (("a", "supported"), ("b", "inconclusive")):
        b = book(tmp_path / run)
        b.record("E2", Decision("E2", "verified", "r"), evidence={}, headline="h")
        b.record("E5", Decision("E5", e5, "r"), evidence={}, headline="h")
    b.record("E1", Decision("E1", "verified", "r"), evidence={}, headline="h")  # only in run b
    t = compare_verdicts(tmp_path / "a", tmp_path / "b").set_index("ID")
    assert (t.loc["E5", "verdict_before"] == "supported"
            and t.loc["E5", "verdict_after"] == "inconclusive")
    assert bool(t.loc["E5", "changed"]) and not bool(t.loc["E2", "changed"])
    assert t.loc["E1", "verdict_before"] == "-" and t.loc["E1", "kind"] == "identity"
    assert list(t.changed) == [True, True, False]  # changes first
    proc = subprocess.run(
        [sys.executable, "-m", "skipanalysis.pipeline.report", "diff", str(tmp_path / "a"),
                           str(tmp_path / "b")],
                          capture_output=True, text=True)
    assert (proc.returncode == 0
            and "1 of 1 empirical verdicts differ; 1 identity verdicts differ" in proc.stdout)
    assert proc.stdout.index("Changed (2)") < proc.stdout.index("E5") < proc.stdout.index(
        "Unchanged (1)")
    proc = subprocess.run(
        [sys.executable, "-m", "skipanalysis.pipeline.report", "diff", str(tmp_path / "a"),
                           str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no claim files under" in proc.stderr
