"""The paper as a notebook (``build_paper``): a title, an abstract with the verdict counts, the
verdict dashboard (figures/verdict-dashboard.png), the decided claims' headlines, the claims table
(ID, claim, verdict with its identity and replications, headline numbers, device; verdicts
coloured), one section per notebook (code hidden, the parameter cells removed, figures numbered),
the closing argument on claim S1, references, and appendices: the design, the machine fingerprints,
profile, package versions and git commit, the notebooks' timings, and each claim's rule and full
evidence. ``skipanalysis.pipeline.report`` exports it as HTML and PDF. The claims table's and the
evidence appendix's cells are built in ``paper_tables``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from .. import design, outputs
from ..claims import CATALOGUE, REFERENCES, ClaimBook, Finding, load_claims
from ..provenance import git_commit, package_versions, write_atomic
from ..rules import conclusion
from ..rules.core import EMPIRICAL_VERDICTS
from . import plan
from .bundle import replications
from .paper_tables import VERDICT_COLORS, _rich_cell, claims_table_cell, evidence_appendix_cells


def design_appendix_cells(books: list[dict[str, Any]], profile: str) -> list[nbformat.NotebookNode]:
    """The study's design (``skipanalysis.design``), stated before the runs, and per verdict the
    seeds it ran on, the power of its design at the stated effect from the spread its runs showed,
    and the leave-one-seed-out sensitivity (reported beside the verdict, never a veto)."""
    import pandas as pd

    cell = lambda v: str(v).replace("|", "/").replace("\n", " ")  # noqa: E731
    lines = ["## Appendix: the study's design\n",
             f"Stated before the runs (`skipanalysis/design.py`), profile **{profile}**. One alpha "
             f"for the whole study: {design.ALPHA:g} two-sided (every decision reads a 95% "
             f"interval; a one-sided bound is at {design.ALPHA / 2:g}). A verdict reached with "
             "fewer seeds than planned reads inconclusive (underpowered).\n",
             "| Claim | Quantity | Effect of interest (source) | Test | Margin | Seeds |",
             "|---|---|---|---|---|---|"]
    for r in design.table(profile):
        lines.append(
            f"| {r['claim']} | {cell(r['quantity'])} | {cell(r['effect_text'])} "
            f"({cell(r['source'])}) | {cell(r['test'])} | "
            f"{'-' if r['margin'] is None else r['margin']} | "
            f"{'-' if r['seeds'] is None else r['seeds']} |")
    cells = [new_markdown_cell("\n".join(lines))]
    table = plan.assess_books(books)
    if not table.empty:
        fmt = lambda v, f: "-" if v is None or pd.isna(v) else format(float(v), f)  # noqa: E731
        rows = ["### Power and sensitivity of each verdict\n",
                "Power: of the design's seeds at the stated effect, from the spread of the "
                "per-seed differences the runs showed (noncentral t; simulation for rates; '-' "
                "where the design has no formula). Sensitivity: the verdict with each seed left "
                "out.\n",
                "| Claim | Device | Verdict | Seeds run / planned | Power | Seeds for power 0.8 | "
                "Sensitivity |",
                "|---|---|---|---|---|---|---|"]
        for r in table.itertuples(index=False):
            rows.append(f"| {r.claim} | {cell(r.device)} | {r.verdict} | {fmt(r.seeds, '.0f')} / "
                        f"{fmt(r.planned, '.0f')} | {fmt(r.power, '.2f')} | "
                        f"{fmt(r.seeds_needed, '.0f')} | {cell(r.sensitivity) or '-'} |")
        cells.append(new_markdown_cell("\n".join(rows)))
    return cells


def machines_appendix(records: list[dict[str, Any]]) -> str:
    """The claims measured on more than one machine (04's hardware files: C6, C8), verdict per
    machine, those whose verdicts differ between machines first."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["verdict"] != "not measured here":
            by_id.setdefault(r["id"], []).append(r)
    several = {cid: rows for cid, rows in by_id.items() if len({r["device"] for r in rows}) > 1}
    lines = ["## Appendix: verdicts across machines\n",
             "Claims measured on more than one machine (each machine's hardware file in "
             "`data/hardware/`, or this run's own); compare two whole runs with `make compare "
             "A=... B=...`.\n"]
    if not several:
        return "\n".join(lines + ["- No claim was measured on more than one machine."])
    order = sorted(several, key=lambda cid: (len({r["verdict"] for r in several[cid]}) == 1, cid))
    for cid in order:
        rows = several[cid]
        differ = len({r["verdict"] for r in rows}) > 1
        lines.append(
            f"- **{cid}** ({'verdicts differ' if differ else 'the same verdict'} on {len(rows)} "
            "machines): "
                     + "; ".join(f"{r['device']}: {r['verdict']}" for r in rows))
    return "\n".join(lines)


def notebook_timings(reports: str | os.PathLike, notebooks: list[str]) -> list[dict[str, Any]]:
    """Each executed notebook's last execution: the runner's ``timings/<notebook>.json`` (wall time,
    when it ended, how it ran, the commit, the machine), or for a notebook executed without it the
    wall time papermill recorded in its metadata. A notebook re-executed from the run store shows
    the re-execution."""
    rows = []
    for name in notebooks:
        path, own = Path(reports) / f"{name}.ipynb", Path(reports) / "timings" / f"{name}.json"
        if own.exists():
            t = json.loads(own.read_text(encoding="utf-8"))
            rows.append({**t, "ended": str(t.get("ended", ""))[:19].replace("T", " ")})
        elif path.exists():
            pm = nbformat.read(path, as_version=4).metadata.get("papermill", {})
            if pm.get("duration") is not None:
                rows.append(
                    {"notebook": name, "ended": str(pm.get("end_time", ""))[:19].replace("T", " "),
                             "seconds": float(pm["duration"])})
    return rows


def timings_summary(rows: list[dict[str, Any]], profile: str) -> dict[str, Any]:
    """What ``timings.json`` holds: the profile, the notebooks' rows, their sum, their span (the
    first start to the last end: the build's wall time without the paper, when they ran in one
    build) and the commits and machines."""
    ends = [(datetime.fromisoformat(r["ended"]), r["seconds"]) for r in rows if r.get("ended")]
    span = (max(e for e, _ in ends) - min(e - timedelta(seconds=s) for e,
                                          s in ends)).total_seconds() if ends else None
    return {"profile": profile, "notebooks": rows,
            "sum_seconds": round(sum(r["seconds"] for r in rows), 1),
            "span_seconds": None if span is None else round(span, 1),
            "commits": sorted({r["commit"][:7] for r in rows if r.get("commit")}),
            "machines": sorted({r["machine"] for r in rows if r.get("machine")})}


def timings_table(rows: list[dict[str, Any]]) -> str:
    """The wall times (``notebook_timings``) as a markdown table with their sum."""
    lines = ["| notebook | ended (UTC) | minutes | ran |", "|---|---|---|---|"]
    ran = lambda r: ("by itself" if r.get("alone") else "beside another") if "alone" in r else ""  # noqa: E731
    lines += [f"| {r['notebook']} | {r['ended']} | {r['seconds'] / 60:.1f} | {ran(r)} |"
              for r in rows]
    lines.append(f"| sum | | {sum(r['seconds'] for r in rows) / 60:.1f} | |")
    machines = sorted({r["machine"] for r in rows if r.get("machine")})
    commits = sorted({r["commit"][:7] for r in rows if r.get("commit")})
    if machines or commits:
        lines.append("")
        lines.append(f"Measured on {'; '.join(machines) or 'an unnamed machine'}"
                     + (f", commit {', '.join(commits)}" if commits else "") + ".")
    return "\n".join(lines)


def timings_appendix(rows: list[dict[str, Any]]) -> str:
    """The appendix's table of wall times (``timings_table``)."""
    return ("### Wall time per notebook\n\nAs the runner recorded each notebook's last execution "
            "(training included only where its runs were not already in the run store; two "
            "notebooks at a time share the cores, so the sum is more than the build's wall "
            "time).\n\n" + timings_table(rows))


def dashboard_figure(records: list[dict[str, Any]]):
    """The verdict dashboard: one square per claim (columns, grouped by notebook) and device (rows),
    coloured by verdict; empirical claims in the upper panel, identities and exact counts apart in
    the lower one."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    panels = [
        ("empirical claims", [r for r in records if r.get("kind", "empirical") == "empirical"]),
              ("identities and exact counts", [r for r in records if r.get("kind") == "identity"])]
    panels = [(t, rows) for t, rows in panels if rows]
    devices = [list(dict.fromkeys(r["device"] for r in rows)) for _, rows in panels]
    claims = [list(dict.fromkeys((r.get("notebook", ""), r["id"]) for r in rows)) for _,
              rows in panels]
    width = max(len(c) for c in claims)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.5, 0.17 * width + 2.4), 0.9 + sum(
        0.28 * len(d) + 0.75 for d in devices)), squeeze=False,
        gridspec_kw={"height_ratios": [len(d) + 2.6 for d in devices]})
    for ax, (title, rows), devs, cols in zip(axes[:, 0], panels, devices, claims):
        for r in rows:
            x, y = cols.index((r.get("notebook", ""), r["id"])), devs.index(r["device"])
            ax.add_patch(plt.Rectangle((x + 0.06, y + 0.06), 0.88, 0.88, color="#"
                                       + VERDICT_COLORS[r["verdict"]]))
        for j in range(1, len(cols)):
            if cols[j][0] != cols[j - 1][0]:
                ax.axvline(j, color="black", lw=0.8)
        ax.set(xlim=(0, width), ylim=(len(devs), 0), title=f"{title} ({len(rows)} verdicts)")
        ax.set_xticks([i + 0.5 for i in range(len(cols))], [c[1] for c in cols], rotation=90,
                      fontsize=7)
        ax.set_yticks([i + 0.5 for i in range(len(devs))], devs, fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    used = [v for v in VERDICT_COLORS if any(r["verdict"] == v for r in records)]
    fig.legend(handles=[Patch(color="#" + VERDICT_COLORS[v], label=v) for v in used],
               loc="lower center",
               ncol=len(used), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def dashboard_cell(records: list[dict[str, Any]], figures: Path) -> nbformat.NotebookNode:
    """The dashboard as an image output (HTML and PDF alike), also written to
    ``figures/verdict-dashboard.png``."""
    import base64
    import io

    import matplotlib.pyplot as plt

    fig = dashboard_figure(records)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    figures.mkdir(parents=True, exist_ok=True)
    write_atomic(figures / "verdict-dashboard.png", buf.getvalue())
    text = (
        "**Figure 0.** Every verdict at a glance: one square per claim (columns, grouped by "
        "notebook between the lines) and device (rows), coloured by verdict (file: "
        "`figures/verdict-dashboard.png`).")
    cell = new_code_cell(source="", outputs=[
        new_output("display_data",
                   data={"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": ""}),
        new_output("display_data", data={"text/markdown": text, "text/plain": text})])
    cell.metadata["tags"] = ["report-generated"]
    return cell


def conclusion_s1(records: list[dict[str, Any]]) -> tuple[str, Finding]:
    """The closing argument for S1 and its finding, from ``rules.conclusion.s1`` over the
    context-dependent verdicts.

    Only empirical claims whose outcome names a winner in a context count
    (``rules.conclusion.S1_CONTEXTS`` and C8's and U3's own numbers: C6 and C8 per device, A1 and A2
    per data, U3, T2 and T3 per task); identities and counts never do, nor rows "not measured here".
    """
    contexts = conclusion.s1_contexts(r for r in records
                                      if r.get("kind", "empirical") == "empirical")
    decision = conclusion.s1(contexts)
    lines = [f"- {c['context']}: {c['winner']} connectivity wins ({c['claim']})" for c in contexts]
    text = ("## Conclusion: is there a universal winner? (S1)\n\n"
            f"**S1: {decision.verdict}.** Rule: {decision.rule}\n\n"
            + ("\n".join(lines) if lines else "- No context-dependent claim was decided here."))
    winners = ", ".join(sorted({c["winner"] for c in decision.numbers["contexts"]})) or "none"
    return text, Finding(
        decision, f"{decision.numbers['decided_contexts']} context(s) decided; winners: {winners}",
                         evidence={"contexts": decision.numbers["contexts"]})


_HEADING_RE = re.compile(r"^(#{1,5}) ", re.M)


def _notebook_section(nb: nbformat.NotebookNode, number: int,
                      fig_counter: list[int]) -> list[nbformat.NotebookNode]:
    """The cells of one executed notebook, cleaned for the paper."""
    cells = []
    titled = False
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & {"parameters", "more-parameters", "injected-parameters", "remove-from-report"}:
            continue
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown":
            src = cell.source
            if not titled and src.lstrip().startswith("# "):
                src = re.sub(r"^\s*# ", f"## {number}. ", src, count=1)
                titled = True
            else:
                src = _HEADING_RE.sub(lambda m: "#" + m.group(1) + " ", src)
            cell.source = src
            cells.append(cell)
            continue
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                continue  # progress bars and warnings
            if out.get("output_type") == "error":
                continue
            meta = outputs.marks(out)
            if meta.get(outputs.ROLE) == outputs.FINGERPRINT:
                continue  # the appendix lists every machine
            if outputs.CAPTION in meta:
                fig_counter[0] += 1
                out = copy.deepcopy(out)
                text = (f"**Figure {fig_counter[0]}.** {meta[outputs.CAPTION]} "
                        f"(file: `figures/{meta[outputs.FIGURE]}.png`)")
                out["data"] = {"text/markdown": text, "text/plain": text}
            kept.append(out)
        cell.outputs = kept
        if kept:
            cells.append(cell)
    return cells


def build_paper(reports: str | os.PathLike, notebooks: list[str],
                profile: str) -> nbformat.NotebookNode:
    """Assemble the paper notebook from ``<reports>/<name>.ipynb`` and
    ``<reports>/claims/<name>.json``."""
    reports = Path(reports)
    present = [n for n in notebooks if (reports / f"{n}.ipynb").exists()]
    books = load_claims(reports, present)
    records = [c for b in books for c in b["claims"]]
    empirical = [r for r in records if r.get("kind", "empirical") == "empirical"]
    identities = [r for r in records if r.get("kind") == "identity"]
    counts = {v: sum(r["verdict"] == v for r in empirical) for v in EMPIRICAL_VERDICTS}
    devices = sorted({b["device"] for b in books})
    commit = git_commit(Path(__file__).resolve().parents[2])
    # The PDF takes its title from the metadata; LaTeX numbering is off because sections carry their
    # own numbers.
    # pandas writes \multirow for grouped indexes; the template does not load multirow, so fall back
    # to plain text.
    cells = [_rich_cell("<h1>Skip connections under measurement</h1>",
                        "\\setcounter{secnumdepth}{0}\\providecommand{\\multirow}[4][]{#4}"),
             new_markdown_cell(
        "*A reproducible study of residual, dense, highway and long skip connections.* Profile "
        f"**{profile}**; measured on {', '.join(devices) or 'no device'}; built "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from commit "
        f"`{commit[:12]}`.")]
    if any("capped" in b for b in books):
        cells.append(new_markdown_cell(
            "**A capped check, not findings.** Every notebook ran the full profile's code and "
            "data with its training steps, seeds, sizes and grids capped (`make full-check`; the "
            "caps are in `caps.yaml` beside this report and in each claim's evidence). Its "
            "verdicts show that the code path runs end to end; none of them is evidence for or "
            "against a claim."))
    s1_text, s1 = conclusion_s1(records)
    s1_verdict = s1.decision.verdict
    book = ClaimBook(notebook="report", report_dir=reports, device=", ".join(devices) or "none",
                     profile=profile)
    book.add(s1)
    abstract = ["## Abstract\n",
                "Skip connections come in several forms: addition (ResNet), concatenation "
                "(DenseNet), gated addition (highway networks), pre- and post-norm residual "
                "transformers, and the long encoder-decoder skips of U-Net. Each notebook of this "
                "study puts claims from the literature to a measurement and computes a verdict by "
                f"a stated rule. Of {len(empirical)} empirical claims measured in {len(present)} "
                f"notebook(s), {counts['supported']} are supported, {counts['refuted']} refuted, "
                f"{counts['inconclusive']} inconclusive and {counts['not measured here']} not "
                f"measured here; the closing claim S1 (no universal winner) is **{s1_verdict}**. "
                f"Apart from these, {sum(r['verdict'] == 'verified' for r in identities)} "
                "identities and exact counts were verified and "
                f"{sum(r['verdict'] == 'failed' for r in identities)} failed (they check our code "
                "and arithmetic and are not evidence for any claim). Figure 0 shows every "
                "verdict; the claims table below gives each one's headline numbers.\n"]
    cells.append(new_markdown_cell("\n".join(abstract)))
    if records:
        cells.append(dashboard_cell(records, reports / "figures"))
    decided = [r for r in empirical if r["verdict"] in ("supported", "refuted")]
    findings = ["### Decided claims\n"] + [f"- **{r['id']}** ({r['verdict']}): {r['headline']}"
                                           for r in decided]
    if not decided:
        findings.append("- No empirical claim was decided in this run.")
    unmeasured = sorted({f"{r['id']} on {r['device'].split(' ')[0]}" for r in records
                         if r["verdict"] == "not measured here"})
    if unmeasured:
        findings.append(
            f"\nNot measured here (no such machine had a hardware file): {', '.join(unmeasured)}.")
    cells.append(new_markdown_cell("\n".join(findings)))
    cells.append(new_markdown_cell("## Claims and verdicts\n\nEach verdict comes from a named "
                                   "rule function applied to numbers measured in the notebook of "
                                   "its section below; the rules and the full evidence are in the "
                                   "appendix."))
    cells.append(claims_table_cell(records, replications(reports)))
    fig_counter = [0]
    for i, name in enumerate(present, start=1):
        nb = nbformat.read(reports / f"{name}.ipynb", as_version=4)
        cells.extend(_notebook_section(nb, i, fig_counter))
    cells.append(new_markdown_cell(s1_text))
    cited = sorted(
        {s for r in records for s in CATALOGUE[r["id"]].sources} | set(CATALOGUE["S1"].sources))
    cells.append(new_markdown_cell("## References\n\n"
                                   + "\n".join(f"- [{k}] {REFERENCES[k]}" for k in cited)))
    appendix = ["## Appendix: machine, profile and versions\n", f"- Profile: **{profile}**",
                f"- Git commit: `{commit}`", f"- Notebooks: {', '.join(present) or 'none'}"]
    missing = [n for n in notebooks if n not in present]
    if missing:
        appendix.append(f"- Not executed (no output found): {', '.join(missing)}")
    appendix.append("\n### Package versions\n")
    appendix += [f"- {k}: {v}" for k, v in package_versions().items()]
    seen = set()
    for b in books:
        fp = b.get("fingerprint", {})
        key = (fp.get("hostname"), b["device"])
        if key in seen:
            continue
        seen.add(key)
        appendix.append(f"\n### Machine: {b['device']} (notebook {b['notebook']})\n")
        appendix += [f"- {k}: `{v}`" for k, v in fp.items()]
    cells.append(new_markdown_cell("\n".join(appendix)))
    if timings := notebook_timings(reports, present):
        cells.append(new_markdown_cell(timings_appendix(timings)))
    cells.append(new_markdown_cell(machines_appendix(records)))
    cells.extend(design_appendix_cells(books, profile))
    cells.extend(evidence_appendix_cells(records))
    paper = new_notebook(cells=cells)
    paper.metadata["title"] = "Skip connections under measurement"
    paper.metadata["authors"] = [{"name": "skipanalysis"}]
    paper.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}
    paper.metadata[outputs.NAMESPACE] = {"profile": profile, "commit": commit, "s1": s1_verdict}
    return paper
