"""The report's pieces that need no executed notebooks."""

import re

from skipanalysis.pipeline import paper, paper_tables, report

from conftest import ROOT


def _rec(cid, verdict, device="cpu (x)", kind="empirical"):
    return {"id": cid, "verdict": verdict, "device": device, "claim": "c", "headline": "h",
            "rule": "r",
            "evidence": {"a": 1.23456, "b": [1, 2, 3]}, "kind": kind}


def test_s1_conclusion_reads_only_context_dependent_empirical_verdicts():
    both = [_rec("A2", "supported"), _rec("C6", "supported", "cuda (H100)")]
    text, found = paper.conclusion_s1(both)
    decision = found.decision
    winners = ", ".join(sorted({c["winner"] for c in decision.numbers["contexts"]}))
    assert found.headline == (
        f"{decision.numbers['decided_contexts']} context(s) decided; winners: {winners}")
    assert found.evidence == {"contexts": decision.numbers["contexts"]} and found.claim == "S1"
    assert (decision.verdict == "supported" and "scarce data" in text
            and "wall-clock on cuda (H100)" in text)
    one_way = [_rec("A1", "refuted"), _rec("A2", "refuted")]
    assert paper.conclusion_s1(one_way)[1].decision.verdict == "refuted"
    # identities and counts never decide S1, nor rows not measured here
    counts_only = [_rec("C1", "verified", kind="identity"), _rec("C2", "verified", kind="identity"),
                   _rec("C6", "not measured here", "cuda (no machine measured)"),
                   _rec("A1", "supported")]
    assert paper.conclusion_s1(counts_only)[1].decision.verdict == "inconclusive"


def test_latex_escape_and_evidence_format():
    assert paper_tables.latex_escape("a_b & 50% $x$ {y} ~^\\") == \
        r"a\_b \& 50\% \$x\$ \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert paper_tables.format_evidence({"a": 1.23456, "b": [1, 2, 3]}) == "a=1.23; b=[1, 2, 3]"


def test_math_becomes_mathml_outside_code():
    out = paper_tables.markdown_math_to_mathml("area $L(L+1)/2$ and `$not math$` and $$x^2$$")
    assert out.count("<math") == 2 and "`$not math$`" in out and 'display="block"' in out


def test_exported_html_keeps_the_mathml_whole():
    """The HTML holds each formula's symbols inside its <math> element (nbconvert's image embedding
    once emptied them)."""
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# T\n\nSeed $s$ and block $B(h)$.")])
    html = report.export_html(nb)
    maths = re.findall(r"<math[^>]*>(.*?)</math>", html, re.S)
    assert (len(maths) == 2 and "<mi>s</mi>" in maths[0] and "<mi>B</mi>" in maths[1]
            and "<mi>h</mi>" in maths[1])


def test_claims_table_colours_each_verdict():
    cell = paper_tables.claims_table_cell([_rec("D1", "supported"), _rec("D2", "refuted"),
                                           _rec("C6", "not measured here"),
                                           _rec("E1", "verified", kind="identity"),
                                           _rec("E2", "failed", kind="identity")])
    html = cell.outputs[0]["data"]["text/html"]
    latex = cell.outputs[0]["data"]["text/latex"]
    for verdict, colour in paper_tables.VERDICT_COLORS.items():
        if verdict != "inconclusive":
            assert colour in html and colour in latex
    assert "longtable" in latex


def test_the_claims_table_keeps_identities_apart_and_the_evidence_for_the_appendix():
    recs = [_rec("D1", "supported"),
            {**_rec("E1", "verified", kind="identity"), "rule": "exact: x == y"}]
    html = paper_tables.claims_table_cell(recs).outputs[0]["data"]["text/html"]
    assert html.index("Empirical claims") < html.index("<b>D1</b>") < html.index(
        "Identities") < html.index("<b>E1</b>")
    # neither evidence nor rule in the table
    assert "a=1.23" not in html and "exact: x == y" not in html
    appendix = paper_tables.evidence_appendix_cells([{**r, "notebook": "01_x"} for r in recs])
    text = appendix[-1].outputs[0]["data"]["text/html"]
    assert "a=1.23" in text and "exact: x == y" in text and "b=[1, 2, 3]" in text


def test_the_dashboard_draws_one_square_per_verdict_and_keeps_the_file(tmp_path):
    from matplotlib.patches import Rectangle

    recs = [_rec("D1", "supported"), _rec("C6", "refuted", "cpu (x)"),
            _rec("C6", "not measured here", "cuda (none)"),
            _rec("E1", "verified", kind="identity")]
    fig = paper.dashboard_figure(recs)
    top, bottom = fig.axes[:2]
    squares = lambda ax: [p for p in ax.patches if isinstance(p, Rectangle)]  # noqa: E731
    assert len(squares(top)) == 3 and len(squares(bottom)) == 1  # identities in their own panel
    # one row per device
    assert [t.get_text() for t in top.get_yticklabels()] == ["cpu (x)", "cuda (none)"]
    colours = {tuple(round(c, 3) for c in p.get_facecolor()[:3]) for p in squares(top)}
    assert len(colours) == 3
    cell = paper.dashboard_cell(recs, tmp_path / "figures")
    assert (tmp_path / "figures" / "verdict-dashboard.png").stat().st_size > 1000
    assert ("image/png" in cell.outputs[0]["data"]
            and "Figure 0." in cell.outputs[1]["data"]["text/markdown"])


def test_the_machines_appendix_puts_differing_verdicts_first():
    recs = [_rec("C8", "refuted", "cpu (a)"), _rec("C8", "refuted", "cpu (b)"),
            _rec("C6", "supported", "cuda (H100)"),
            _rec("C6", "refuted", "cpu (a)"), _rec("C6", "not measured here", "mps (none)"),
            _rec("D1", "supported")]
    text = paper.machines_appendix(recs)
    assert text.index("**C6** (verdicts differ on 2 machines)") < text.index(
        "**C8** (the same verdict on 2 machines)")
    assert "mps" not in text and "D1" not in text
    assert "No claim was measured on more than one machine" in paper.machines_appendix(
        [_rec("D1", "supported")])


def test_the_appendix_times_each_notebook_from_the_runner_or_papermills_record(tmp_path):
    import nbformat

    from skipanalysis.pipeline.paper import notebook_timings, timings_appendix
    from skipanalysis.pipeline.runner import record_timing

    for name, seconds in (("01_a", 90.0), ("02_b", 150.0)):
        nb = nbformat.v4.new_notebook()
        nb.metadata["papermill"] = {"duration": seconds, "end_time": "2026-12-04T10:00:00.123456"}
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    rows = notebook_timings(tmp_path, ["01_a", "02_b", "03_missing"])
    assert [(r["notebook"], r["seconds"], r["ended"]) for r in rows] == [
        ("01_a", 90.0, "2026-12-04 10:00:00"), ("02_b", 150.0, "2026-12-04 10:00:00")]
    table = timings_appendix(rows)
    # (90 + 150) / 60
    assert "| 01_a | 2026-12-04 10:00:00 | 1.5 |" in table and "| sum | | 4.0 | |" in table
    # the runner's own record wins
    record_timing(tmp_path, "02_b", "quick", "cpu", 30.04, True, ROOT)
    rows = notebook_timings(tmp_path, ["01_a", "02_b"])
    assert rows[1]["seconds"] == 30.0 and rows[1]["alone"] and rows[1]["machine"] and len(
        rows[1]["commit"]) >= 7
    assert "| 02_b |" in timings_appendix(rows) and "| by itself |" in timings_appendix(rows)


def test_make_timings_writes_the_readme_table_between_its_marks(tmp_path):
    import json

    from skipanalysis.pipeline.paper import timings_summary
    from skipanalysis.pipeline.report import TIMINGS_BEGIN, TIMINGS_END, main

    rows = [{"notebook": "01_a", "seconds": 120.0, "ended": "2026-12-04 10:00:00", "alone": True,
             "machine": "m"}]
    (tmp_path / "timings.json").write_text(json.dumps(timings_summary(rows, "quick")))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{TIMINGS_BEGIN}\nold table\n{TIMINGS_END}\n\nafter\n")
    assert main(["timings", str(tmp_path), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text and "| 01_a | 2026-12-04 10:00:00 | 2.0 | by itself |" in text
    assert text.startswith("# x\n\n") and text.endswith(
        f"{TIMINGS_END}\n\nafter\n") and "Measured on m." in text
    readme.write_text("no marks")
    assert (main(["timings", str(tmp_path), "--readme", str(readme)]) == 2
            and readme.read_text() == "no marks")
    assert main(["timings", str(tmp_path / "missing")]) == 2
