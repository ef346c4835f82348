"""Assemble the executed notebooks into one paper: ``reports/<profile>/report.html`` and
``report.pdf``.

``python -m skipanalysis.pipeline.report html --reports reports/quick --profile quick 03_equivalence
...`` builds ``report.ipynb`` (the paper as a notebook, ``skipanalysis.pipeline.paper``) and the
self-contained ``report.html``; ``python -m skipanalysis.pipeline.report pdf
reports/quick/report.ipynb reports/quick/report.pdf`` renders the PDF through nbconvert's LaTeX
exporter and xelatex; ``python -m skipanalysis.pipeline.report diff reports/quick
reports/quick-seed1`` sets two runs' verdicts side by side, with what in their runs differs.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat

from .. import outputs
from ..claims import compare_verdicts, load_claims
from ..provenance import write_atomic, write_between, write_json_atomic
from .bundle import explain
from .paper import build_paper, notebook_timings, timings_summary, timings_table
from .paper_tables import markdown_math_to_mathml

PDF_HINT = ("PDF skipped: xelatex (and pandoc) not found. Debian/Ubuntu: sudo apt-get install "
            "texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc; macOS: brew "
            "install --cask mactex-no-gui && brew install pandoc. Then run make report again.")


_REPORT_CSS = """<style>
.jp-Notebook { max-width: 980px; margin: auto; }
table.claims-table { border-collapse: collapse; font-size: 0.85em; }
table.claims-table td, table.claims-table th { border-bottom: 1px solid #ccc; padding: 4px 6px;
  vertical-align: top; text-align: left !important; }
</style>"""


def export_html(paper: nbformat.NotebookNode) -> str:
    """Self-contained HTML: inputs hidden, images inline, math as MathML, no external scripts."""
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(paper)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = markdown_math_to_mathml(cell.source)
        for out in cell.get("outputs", []):
            if "text/markdown" in out.get("data", {}):
                out["data"]["text/markdown"] = markdown_math_to_mathml(out["data"]["text/markdown"])
    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            # embed_images would re-parse inline MathML tags one by one and empty
                            # them
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    # Drop every script or stylesheet fetched from the network (MathJax, require.js, mermaid): not
    # needed offline.
    body = re.sub(r"<script[^>]*src=\"https?://[^\"]*\"[^>]*>\s*</script>", "", body)
    body = re.sub(r"<script[^>]*>[^<]*(?:mathjax|MathJax)[^<]*</script>", "", body, flags=re.S)
    body = re.sub(
        r"<script type=\"module\">\s*document\.addEventListener\(\"DOMContentLoaded\", async \(\) "
        r"=> \{"
                  r".*?mermaid.*?</script>", "", body, flags=re.S)
    body = re.sub(r"<link[^>]*href=\"https?://[^\"]*\"[^>]*>", "", body)
    return body.replace("</head>", _REPORT_CSS + "\n</head>", 1)


def have_latex() -> bool:
    return shutil.which("xelatex") is not None and shutil.which("pandoc") is not None


def export_pdf(paper: nbformat.NotebookNode) -> bytes:
    """The paper as PDF through nbconvert's LaTeX exporter and xelatex (inputs hidden)."""
    from nbconvert import PDFExporter

    exporter = PDFExporter(exclude_input=True, exclude_input_prompt=True,
                           exclude_output_prompt=True)
    exporter.verbose = False
    pdf, _ = exporter.from_notebook_node(paper)
    return pdf


def format_comparison(table, before: str, after: str, why: dict | None = None) -> str:
    """``claims.compare_verdicts``' table as text: the changed verdicts first, each with both
    headlines and devices and (``why``, from ``bundle.explain``) the components of its runs that
    differ, then the unchanged ones, one line each (with what differs when the headline moved), then
    the tally."""
    why = why or {}
    because = lambda r: [f"      why: {w}" for w in why.get((r.notebook, r.ID, r.device_after), [])]  # noqa: E731
    lines = [f"A: {before}", f"B: {after}", ""]
    changed, same = table[table.changed], table[~table.changed]
    lines.append(f"Changed ({len(changed)}):" if len(changed) else "Changed: none")
    for r in changed.itertuples():
        lines += [f"  {r.ID:<3} {r.verdict_before} -> {r.verdict_after}   ({r.notebook})",
                  f"      A [{r.device_before}]: {r.headline_before}",
                  f"      B [{r.device_after}]: {r.headline_after}", *because(r)]
    lines += ["", f"Unchanged ({len(same)}):"]
    for r in same.itertuples():
        lines.append(f"  {r.ID:<3} {r.verdict_before:<18} [{r.device_after}] {r.headline_after}")
        if r.headline_before != r.headline_after and because(r):
            lines += [f"      headline was: {r.headline_before}", *because(r)]
    emp = table[table.kind == "empirical"]
    lines.append(f"\n{int(emp.changed.sum())} of {len(emp)} empirical verdicts differ; "
                 f"{int(table[table.kind != 'empirical'].changed.sum())} identity verdicts differ")
    return "\n".join(lines)


TIMINGS_BEGIN, TIMINGS_END = ("<!-- timings: begin (make timings writes this table) -->",
                              "<!-- timings: end -->")


def write_timings(reports: Path, readme: str | None = None) -> int:
    """Print ``<reports>/timings.json`` as a table; with ``readme``, replace the text between the
    file's timing marks with it (one-line error, nothing written, when the file or the marks are
    missing)."""
    source = reports / "timings.json"
    if not source.exists():
        print(f"[report] {source} not found: make report writes it", file=sys.stderr)
        return 2
    summary = json.loads(source.read_text(encoding="utf-8"))
    span = summary.get("span_seconds")
    table = (
        f"`make report PROFILE={summary['profile']}`: {summary['sum_seconds'] / 60:.1f} min of "
        "notebook time"
             + (f", {span / 60:.1f} min from the first notebook's start to the last one's end"
                if span else "")
             + " (a notebook whose runs were in the run store shows its re-execution):\n\n"
             + timings_table(summary["notebooks"]))
    print(table)
    if readme and not write_between(readme, TIMINGS_BEGIN, TIMINGS_END, table):
        print(f"[report] {readme}: no {TIMINGS_BEGIN} ... {TIMINGS_END} marks to write between",
              file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the paper from executed notebooks.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("html", help="assemble report.ipynb and report.html")
    h.add_argument("notebooks", nargs="*",
                   help="notebook names in order (default: every executed one)")
    h.add_argument("--reports", default="reports")
    h.add_argument("--profile", default="quick")
    p = sub.add_parser("pdf", help="render report.ipynb to PDF with xelatex")
    p.add_argument("paper", nargs="?", default="reports/report.ipynb")
    p.add_argument("output", nargs="?", default="reports/report.pdf")
    d = sub.add_parser(
        "diff", help="compare the verdicts of two runs, each a report folder or its claims.json "
                                    "(another seed, another machine)")
    d.add_argument("before")
    d.add_argument("after")
    t = sub.add_parser("timings",
                       help="the notebooks' wall times as a markdown table (from timings.json)")
    t.add_argument("reports", help="a report folder, e.g. reports/quick")
    t.add_argument("--readme",
                   help=f"write the table into this file between {TIMINGS_BEGIN} and {TIMINGS_END}")
    args = ap.parse_args(argv)
    if args.cmd == "timings":
        return write_timings(Path(args.reports), args.readme)
    if args.cmd == "diff":

        try:
            table = compare_verdicts(args.before, args.after)
            why = explain(args.before, args.after)
        except FileNotFoundError as exc:
            print(f"[report] {exc}", file=sys.stderr)
            return 2
        print(format_comparison(table, args.before, args.after, why))
        return 0
    if args.cmd == "html":
        reports = Path(args.reports)
        names = args.notebooks or sorted(p.stem for p in reports.glob("[0-9]*.ipynb"))
        paper = build_paper(reports, names, args.profile)
        write_atomic(reports / "report.ipynb", nbformat.writes(paper))
        write_atomic(reports / "report.html", export_html(paper))
        write_json_atomic(reports / "timings.json",
                          timings_summary(notebook_timings(reports, names), args.profile))
        books = load_claims(reports, [*names, "report"])  # the report's own book holds S1
        write_json_atomic(reports / "claims.json", {"profile": args.profile, "notebooks": books,
                                                    "s1": paper.metadata[outputs.NAMESPACE]["s1"]})
        print(f"[report] wrote {reports / 'report.html'} ({len(paper.cells)} cells)")
        return 0
    if not have_latex():
        print(PDF_HINT)
        return 0
    paper = nbformat.read(args.paper, as_version=4)
    try:
        pdf = export_pdf(paper)
    except Exception as exc:
        print(
            f"[report] PDF failed ({type(exc).__name__}: {str(exc)[:2000]}); the HTML report is "
            "unaffected",
              file=sys.stderr)
        return 1
    write_atomic(Path(args.output), pdf)
    print(f"[report] wrote {args.output} ({len(pdf) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
