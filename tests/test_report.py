"""The report's pieces that need no executed notebooks."""

from skipanalysis import report


def _rec(cid, verdict, device="cpu (x)", kind="empirical"):
    return {"id": cid, "verdict": verdict, "device": device, "claim": "c", "headline": "h", "rule": "r",
            "evidence": {"a": 1.23456, "b": [1, 2, 3]}, "kind": kind}


def test_s1_conclusion_reads_only_context_dependent_empirical_verdicts():
    both = [_rec("A2", "supported"), _rec("C6", "supported", "cuda (H100)")]
    text, decision = report.conclusion_s1(both)
    assert decision.verdict == "supported" and "scarce data" in text and "wall-clock on cuda (H100)" in text
    one_way = [_rec("A1", "refuted"), _rec("A2", "refuted")]
    assert report.conclusion_s1(one_way)[1].verdict == "refuted"
    # identities and counts never decide S1, nor rows not measured here
    counts_only = [_rec("C1", "verified", kind="identity"), _rec("C2", "verified", kind="identity"),
                   _rec("C6", "not measured here", "cuda (no machine measured)"), _rec("A1", "supported")]
    assert report.conclusion_s1(counts_only)[1].verdict == "inconclusive"


def test_latex_escape_and_evidence_format():
    assert report.latex_escape("a_b & 50% $x$ {y} ~^\\") == \
        r"a\_b \& 50\% \$x\$ \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert report.format_evidence({"a": 1.23456, "b": [1, 2, 3]}) == "a=1.23; b=[1, 2, 3]"


def test_math_becomes_mathml_outside_code():
    out = report.markdown_math_to_mathml("area $L(L+1)/2$ and `$not math$` and $$x^2$$")
    assert out.count("<math") == 2 and "`$not math$`" in out and 'display="block"' in out


def test_claims_table_colours_each_verdict():
    cell = report.claims_table_cell([_rec("D1", "supported"), _rec("D2", "refuted"), _rec("C6", "not measured here"),
                                     _rec("E1", "verified", kind="identity"), _rec("E2", "failed", kind="identity")])
    html = cell.outputs[0]["data"]["text/html"]
    latex = cell.outputs[0]["data"]["text/latex"]
    for verdict, colour in report.VERDICT_COLORS.items():
        if verdict != "inconclusive":
            assert colour in html and colour in latex
    assert "longtable" in latex
