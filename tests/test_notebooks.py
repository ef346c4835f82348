"""The notebooks and the paper: contract, smoke runs, the report's content and the PDF."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from skipanalysis.claims import CATALOGUE
from skipanalysis.pipeline.runner import cell_defaults, declared_parameters
from skipanalysis.rules import core

from conftest import NOTEBOOKS, ROOT, have_latex

NAMES = [nb.stem for nb in NOTEBOOKS]


def test_there_are_notebooks():
    assert "03_equivalence" in NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_no_code_cell_over_twenty_lines(path):
    """Thin notebooks: every code cell, the parameter cells included, is at most 20 lines (the work
    is in the package; a long parameter list splits into a more-parameters cell)."""
    nb = nbformat.read(path, as_version=4)
    long = {i: len(c.source.splitlines()) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and len(c.source.splitlines()) > 20}
    assert not long, f"{path.name}: cells over 20 lines (cell: lines): {long}"
    no_id = [i for i, c in enumerate(json.loads(path.read_text())["cells"]) if "id" not in c]
    assert not no_id, (
        f"{path.name}: cells {no_id} have no id (nbformat 4.5 warns, and will refuse them)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_each_value_is_written_once_and_profiles_list_only_what_they_change(path):
    """The parameters cell holds every default (the quick profile is those defaults); smoke.yaml and
    full.yaml name only parameters the notebook defines and only values that differ from its
    defaults."""
    # the parameters cell and the more-parameters cell above it
    declared = declared_parameters(path)
    for reserved in ("profile", "device", "report_dir"):
        assert reserved in declared
    assert declared["profile"]["default"] == '"quick"'
    defaults = cell_defaults(declared)
    for profile in ("quick", "smoke", "full"):
        section = yaml.safe_load((ROOT / f"notebooks/params/{profile}.yaml").read_text()).get(
            path.stem) or {}
        assert set(section) <= set(declared), f"{profile}.yaml names parameters {path.name} lacks"
        same = sorted(k for k, v in section.items() if k in defaults and defaults[k] == v)
        assert not same, (
            f"{profile}.yaml restates {path.name}'s defaults {same}: list only what {profile} "
            "changes")
        assert profile != "quick" or not section, (
            f"quick.yaml sets {sorted(section)}: quick is the cell's defaults")


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_records_every_owned_claim(smoke_reports, name):
    nb = nbformat.read(smoke_reports / f"{name}.ipynb", as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                if o.output_type == "error"]
    book = json.loads((smoke_reports / "claims" / f"{name}.json").read_text())
    owned = {c.id for c in CATALOGUE.values() if c.notebook == name}
    assert {c["id"] for c in book["claims"]} == owned
    for c in book["claims"]:
        allowed = core.IDENTITY_VERDICTS if c["kind"] == "identity" else core.EMPIRICAL_VERDICTS
        assert c["kind"] == core.claim_kind(c["id"]) and c["verdict"] in allowed
        assert c["rule"] and c["evidence"]
    assert book["fingerprint"]["cpu_model"]
    assert list((smoke_reports / "figures").glob(f"{name}-*.png"))


def test_report_html_content(smoke_reports):
    html = (smoke_reports / "report.html").read_text()
    assert "Skip connections under measurement" in html and "Abstract" in html
    assert "claims-table" in html
    for name in NAMES:
        for cid in (c.id for c in CATALOGUE.values() if c.notebook == name):
            assert f"<b>{cid}</b>" in html, f"claim {cid} missing from the table"
    sections = re.findall(r"<h2[^>]*>\s*(\d+)\. ", html)
    assert len(sections) == len(NAMES)
    figures = re.findall(r"Figure (\d+)\.", html)  # Figure 0 is the verdict dashboard
    assert figures and [int(f) for f in figures] == list(range(len(figures)))
    assert (smoke_reports / "figures" / "verdict-dashboard.png").exists()
    assert html.count("data:image/png;base64,") >= len(figures)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"https?://",
                         html), "the HTML must work offline"
    assert "<math" in html  # math rendered as MathML, no MathJax needed
    assert "injected-parameters" not in html and 'profile = "' not in html
    assert "Appendix" in html and "Package versions" in html and "Git commit" in html
    assert "References" in html and "Conclusion" in html
    assert "Appendix: rules and evidence" in html and "rule_numbers" in html.split(
        "Appendix: rules and evidence")[1]
    table = html.split("Claims and verdicts")[1].split("</table>")[0]
    # the claims table shows headlines; the evidence dump is in the appendix
    assert "rule_numbers" not in table


def _leaks(text: str, reports: Path) -> list[str]:
    """What the author did not mean to show: return values, machine paths, stray expression
    results."""
    patterns = [r"PosixPath\(", r"\{'png':", r"\.staging", re.escape(str(reports)),
                re.escape(str(ROOT)),
                re.escape(os.path.expanduser("~") + "/")]
    return [p for p in patterns if re.search(p, text)]


def test_nothing_leaks_into_the_paper(smoke_reports):
    assert not _leaks((smoke_reports / "report.html").read_text(), smoke_reports)
    paper = nbformat.read(smoke_reports / "report.ipynb", as_version=4)
    for cell in paper.cells:
        for out in cell.get("outputs", []):
            plain = out.get("data", {}).get("text/plain", "") if out.get(
                "output_type") == "execute_result" else ""
            # a bare value the last line of a cell returned
            if plain and set(out["data"]) == {"text/plain"}:
                bare = r"\s*[-+]?[\d.e+-]+\s*|\s*(None|True|False|\[.*\]|\{.*\}|\(.*\))\s*"
                assert not re.fullmatch(bare, plain, re.S), (
                    f"a stray expression result reaches the paper: {plain[:80]!r}")


def test_report_claims_json(smoke_reports):
    data = json.loads((smoke_reports / "claims.json").read_text())
    assert data["profile"] == "smoke" and data["s1"] in ("supported", "refuted", "inconclusive")


@pytest.mark.skipif(not have_latex(), reason="xelatex/pandoc not installed")
def test_report_pdf(smoke_reports):
    from pypdf import PdfReader

    out = smoke_reports / "report.pdf"
    proc = subprocess.run([sys.executable, "-m", "skipanalysis.pipeline.report", "pdf",
                           str(smoke_reports / "report.ipynb"),
                           str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    reader = PdfReader(out)
    assert len(reader.pages) >= 3
    text = " ".join(p.extract_text() for p in reader.pages)
    assert "Claims and verdicts" in text and "E2" in text and "Figure 1." in text
    assert sum(len(p.images) for p in reader.pages) >= 1
    # the dashboard on page 1
    assert "Figure 0." in reader.pages[0].extract_text() and reader.pages[0].images
    assert not _leaks(text, smoke_reports)


def _browser():
    """Debian's Chromium (.ci/run installs it) and Playwright to drive it, or the reason the check
    is skipped."""
    import shutil

    exe = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
    if exe is None:
        return None, "no Chromium installed (Debian/Ubuntu: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "playwright not installed (it is in the dev extra)"
    return exe, ""


def test_report_html_in_a_real_browser(smoke_reports):
    """The built HTML opened in headless Chromium: it renders, every figure decodes, nothing errs in
    the console."""
    exe, why = _browser()
    if exe is None:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    html = smoke_reports / "report.html"
    problems: list[str] = []
    with sync_playwright() as p:
        # the flags keep a headless Chromium off the network (closed here) and working as root in a
        # container
        browser = p.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: m.type in ("error", "warning")
                    and problems.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed to load {r.url[:100]}"))
            page.goto(html.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0, "
                                   "i.naturalWidth, i.getBoundingClientRect().width])")
            heading = page.inner_text("h1")
            height = page.evaluate("document.body.scrollHeight")
            figures = page.evaluate(
                "Array.from(document.querySelectorAll('*')).filter(e => e.children.length == 0"
                                    " && /^Figure \\d+\\./.test(e.textContent.trim())).length")
            maths = page.evaluate("Array.from(document.querySelectorAll('math')).map(m => "
                                  "m.getBoundingClientRect().width)")
            page.screenshot(path=str(smoke_reports / "report-page1.png"))
        finally:
            browser.close()
    assert not problems, problems
    assert "Skip connections under measurement" in heading
    assert images and all(ok for ok, _, _ in images), (
        f"{sum(not ok for ok, _, _ in images)} figure(s) did not load")
    assert all(shown > 100 for _, _, shown in images), "a figure is laid out (nearly) invisible"
    assert len(images) >= figures >= 1, (len(images), figures)
    assert maths and all(w > 0 for w in maths), "MathML did not render"
    assert height > 5000  # a laid-out paper, not an empty page
