"""The report's pieces that need no executed notebooks."""

from skipanalysis import report


def _rec(cid, verdict, device="cpu (x)"):
    return {"id": cid, "verdict": verdict, "device": device, "claim": "c", "headline": "h", "rule": "r",
            "evidence": {"a": 1.23456, "b": [1, 2, 3]}}


def test_s1_rule():
    both = [_rec("C1", "supported"), _rec("C6", "supported")]
    assert report.conclusion_s1(both)[1] == "supported"
    one_way = [_rec("C1", "supported"), _rec("C6", "refuted")]
    assert report.conclusion_s1(one_way)[1] == "refuted"
    assert report.conclusion_s1([_rec("C1", "supported")])[1] == "inconclusive"
    # a device type that was never measured does not drag S1 to inconclusive
    with_unmeasured = both + [_rec("C6", "not measured here", "cuda (no machine measured)")]
    assert report.conclusion_s1(with_unmeasured)[1] == "supported"


def test_latex_escape_and_evidence_format():
    assert report.latex_escape("a_b & 50% $x$ {y} ~^\\") == \
        r"a\_b \& 50\% \$x\$ \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert report.format_evidence({"a": 1.23456, "b": [1, 2, 3]}) == "a=1.23; b=[1, 2, 3]"


def test_math_becomes_mathml_outside_code():
    out = report.markdown_math_to_mathml("area $L(L+1)/2$ and `$not math$` and $$x^2$$")
    assert out.count("<math") == 2 and "`$not math$`" in out and 'display="block"' in out


def test_claims_table_colours_each_verdict():
    cell = report.claims_table_cell([_rec("E1", "supported"), _rec("E2", "refuted"), _rec("E3", "not measured here")])
    html = cell.outputs[0]["data"]["text/html"]
    latex = cell.outputs[0]["data"]["text/latex"]
    for verdict, colour in report.VERDICT_COLORS.items():
        if verdict != "inconclusive":
            assert colour in html and colour in latex
    assert "longtable" in latex
