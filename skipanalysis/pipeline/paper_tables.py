"""Cells of the paper's claims table and evidence appendix, with HTML for the web page and LaTeX
for the PDF (escaping, verdict colours, MathML); ``paper.build_paper`` assembles the paper.
"""

from __future__ import annotations

import html
import re
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output

from .bundle import replication

VERDICT_COLORS = {"supported": "1A9850", "refuted": "D73027", "inconclusive": "B8860B",
                  "not measured here": "7F7F7F",
                  "verified": "2166AC", "failed": "762A83"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
            ">": r"\textgreater{}"}
    return "".join(repl.get(ch, ch) for ch in str(text))


def format_evidence(evidence: dict[str, Any], limit: int = 220) -> str:
    """A compact ``key=value`` line of a claim's evidence (numbers to 3 significant digits)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        if isinstance(v, list):
            inner = ", ".join(fmt(x) for x in v[:6])
            return f"[{inner}{', ...' if len(v) > 6 else ''}]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in list(v.items())[:4]) + "}"
        return str(v)

    text = "; ".join(f"{k}={fmt(v)}" for k, v in evidence.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_MATH_RE = re.compile(r"(?<!\\)\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$", re.S)


_CODE_RE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)


def markdown_math_to_mathml(source: str) -> str:
    """Replace ``$...$`` and ``$$...$$`` in markdown with MathML, which browsers render with no
    script."""
    from latex2mathml.converter import convert

    def conv(m: re.Match) -> str:
        display = m.group(1) is not None
        tex = m.group(1) if display else m.group(2)
        try:
            return convert(tex.strip(), display="block" if display else "inline")
        except Exception:  # leave what the converter cannot parse as TeX source
            return m.group(0)

    parts = _CODE_RE.split(source)
    return "".join(p if i % 2 else _MATH_RE.sub(conv, p) for i, p in enumerate(parts))


def _rich_cell(html_text: str, latex_text: str,
               markdown_text: str | None = None) -> nbformat.NotebookNode:
    """A (hidden) code cell whose one output has HTML for the web page and LaTeX for the PDF."""
    data = {"text/html": html_text, "text/latex": latex_text, "text/plain": markdown_text or ""}
    cell = new_code_cell(source="", outputs=[new_output("display_data", data=data)])
    cell.metadata["tags"] = ["report-generated"]
    return cell


def _verdict_badge_html(verdict: str) -> str:
    return (
        "<span class='verdict' "
        f"style='background:#{VERDICT_COLORS[verdict]};color:white;padding:2px "
        f"6px;border-radius:3px;white-space:nowrap'>{html.escape(verdict)}</span>")


def _verdict_tex(verdict: str) -> str:
    return f"\\textbf{{\\textcolor[HTML]{{{VERDICT_COLORS[verdict]}}}{{{latex_escape(verdict)}}}}}"


def _agreement(r: dict[str, Any], others: list[list[dict[str, Any]]] | None) -> str:
    return replication(r["id"], r["device"], r["verdict"], others) if others else ""


def claims_table_cell(records: list[dict[str, Any]],
                      others: list[list[dict[str, Any]]] | None = None
                      ) -> nbformat.NotebookNode:
    """The claims table: ID, claim, verdict (coloured) with its citable identity (``claims.cite``)
    and, with claims imported from other machines (``others``, ``bundle.replications``), on how many
    machines it holds; its headline numbers; device. Empirical claims first, then identities and
    exact counts under their own rule line; rules and evidence are in the appendix
    (``evidence_appendix_cells``)."""
    groups = [
        ("Empirical claims", [r for r in records if r.get("kind", "empirical") == "empirical"]),
              ("Identities and exact counts (they check the code, not the literature)",
               [r for r in records if r.get("kind") == "identity"])]
    rows_html, rows_tex = [], []
    for title, rows in groups:
        if not rows:
            continue
        rows_html.append(
            f"<tr><th colspan='5' style='text-align:left'>{html.escape(title)}</th></tr>")
        rows_tex.append(
            f"\\multicolumn{{5}}{{@{{}}l}}{{\\textit{{{latex_escape(title)}}}}} \\\\ \\midrule")
        for r in rows:
            cite, agree = r.get("cite", ""), _agreement(r, others)
            rows_html.append(
                f"<tr><td><b>{html.escape(r['id'])}</b></td><td>{html.escape(r['claim'])}</td>"
                f"<td>{_verdict_badge_html(r['verdict'])}"
                + (f"<br><small><code>{html.escape(cite)}</code></small>" if cite else "")
                + (f"<br><small>{html.escape(agree)}</small>" if agree else "")
                + f"</td><td>{html.escape(r['headline'])}</td>"
                f"<td><small>{html.escape(r['device'])}</small></td></tr>")
            rows_tex.append(
                f"\\textbf{{{latex_escape(r['id'])}}} & {latex_escape(r['claim'])} & "
                f"{_verdict_tex(r['verdict'])}"
                + (f" {{\\scriptsize\\texttt{{{latex_escape(cite)}}}}}" if cite else "")
                + (f" {{\\scriptsize {latex_escape(agree)}}}" if agree else "")
                + f" & {latex_escape(r['headline'])} & {{\\scriptsize "
                  f"{latex_escape(r['device'])}}} \\\\ \\midrule")
    html_text = (
        "<table "
        "class='claims-table'><thead><tr><th>ID</th><th>Claim</th><th>Verdict</th><th>Headline "
        "numbers</th><th>Device</th></tr></thead><tbody>" + "".join(rows_html)
                 + "</tbody></table>")
    latex_text = (
        "{\\footnotesize\\begin{longtable}{@{}p{0.05\\linewidth}p{0.27\\linewidth}"
        "p{0.1\\linewidth}p{0.36\\linewidth}p{0.1\\linewidth}@{}}\\toprule\n\\textbf{ID} "
        "& \\textbf{Claim} & \\textbf{Verdict} & \\textbf{Headline numbers} & \\textbf{Device} "
        "\\\\ \\midrule\\endhead\n"
                  + "\n".join(rows_tex) +
                  "\n\\end{longtable}}")
    return _rich_cell(html_text, latex_text)


def evidence_appendix_cells(records: list[dict[str, Any]]) -> list[nbformat.NotebookNode]:
    """Per notebook, a table of each claim's rule (as the rule function states it) and its full
    evidence."""
    cells = [new_markdown_cell("## Appendix: rules and evidence\n\nEach verdict above came from "
                               "the rule below, applied to the evidence beside it (the numbers "
                               "the rule read are under `rule_numbers`).")]
    for notebook in dict.fromkeys(r.get("notebook", "") for r in records):
        rows = [r for r in records if r.get("notebook", "") == notebook]
        rows_html = [
            f"<tr><td><b>{html.escape(r['id'])}</b><br>{_verdict_badge_html(r['verdict'])}"
            f"<br><small>{html.escape(r['device'])}</small></td>"
            f"<td><small>{html.escape(r['rule'])}</small></td>"
            f"<td><small>{html.escape(format_evidence(_as_dict(r['evidence']), 900))}</small></td>"
            "</tr>"
                     for r in rows]
        rows_tex = [f"\\textbf{{{latex_escape(r['id'])}}} {_verdict_tex(r['verdict'])} "
                    f"{{\\scriptsize {latex_escape(r['device'])}}} & {latex_escape(r['rule'])} & "
                    f"{latex_escape(format_evidence(_as_dict(r['evidence']), 900))} \\\\ \\midrule"
                    for r in rows]
        cells.append(new_markdown_cell(f"### {notebook or 'report'}"))
        cells.append(_rich_cell(
            "<table "
            "class='claims-table'><thead><tr><th>Claim</th><th>Rule</th><th>Evidence</th></tr></thead><tbody>"
            + "".join(rows_html) + "</tbody></table>",
            "{\\scriptsize\\begin{longtable}{@{}p{0.14\\linewidth}p{0.36\\linewidth}"
            "p{0.44\\linewidth}@{}}\\toprule\n\\textbf{Claim} "
            "& \\textbf{Rule} & \\textbf{Evidence} \\\\ \\midrule\\endhead\n"
            + "\n".join(rows_tex)
            + "\n\\end{longtable}}"))
    return cells


def _as_dict(evidence: Any) -> dict[str, Any]:
    return evidence if isinstance(evidence, dict) else {"evidence": evidence}
