"""Claims from the literature, and the record of how each one fared here.

The catalogue below is the project's claim list (IDs D1..S1, one owner
notebook each; wording is ours, sources in ``REFERENCES``). A notebook records
each of its claims with the numbers it measured, the rule that turned those
numbers into a verdict, and the verdict. ``ClaimBook`` stores them as JSON in
``<report_dir>/claims/<notebook>.json``; ``pipeline.paper`` gathers them into the
paper's claims table.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import runs
from .design import design
from .params import overlay
from .provenance import jsonable, write_json_atomic
from .rules.core import Decision, claim_kind


@dataclass(frozen=True)
class Claim:
    id: str
    notebook: str  # owner notebook, without the .ipynb suffix
    text: str  # the claim in one sentence, our wording
    sources: tuple[str, ...]  # keys of REFERENCES


REFERENCES: dict[str, str] = {
    "he2016": "K. He, X. Zhang, S. Ren, J. Sun. Deep Residual Learning for Image Recognition. "
              "CVPR 2016.",
    "huang2017": "G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger. Densely Connected "
                 "Convolutional Networks. CVPR 2017.",
    "srivastava2015": "R. K. Srivastava, K. Greff, J. Schmidhuber. Training Very Deep Networks "
                      "(Highway Networks). NeurIPS 2015.",
    "veit2016": "A. Veit, M. Wilber, S. Belongie. Residual Networks Behave Like Ensembles of "
                "Relatively Shallow Networks. NeurIPS 2016.",
    "balduzzi2017": "D. Balduzzi et al. The Shattered Gradients Problem: If resnets are the "
                    "answer, then what is the question? ICML 2017.",
    "xiong2020": "R. Xiong et al. On Layer Normalization in the Transformer Architecture. ICML "
                 "2020.",
    "liu2020": "L. Liu et al. Understanding the Difficulty of Training Transformers. EMNLP 2020.",
    "ronneberger2015": "O. Ronneberger, P. Fischer, T. Brox. U-Net: Convolutional Networks for "
                       "Biomedical Image Segmentation. MICCAI 2015.",
    "li2018": "H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein. Visualizing the Loss Landscape "
              "of Neural Nets. NeurIPS 2018.",
    "pleiss2017": "G. Pleiss et al. Memory-Efficient Implementation of DenseNets. "
                  "arXiv:1707.06990, 2017.",
    "seed000": "Seed text 000: an essay on residual, dense and hybrid skip-connection trade-offs "
               "(memory, FLOPs, hardware).",
    "seed001": "Seed text 001: a Q&A thread on how ResNet and DenseNet differ, with the "
               "concatenation-as-sum derivation.",
    "seed002": "Seed text 002: a tutorial on skip connections (degradation, the identity "
               "construction, ResNet, DenseNet, U-Net).",
}

_C = Claim
CATALOGUE: dict[str, Claim] = {c.id: c for c in [
    _C("D1", "01_degradation",
       "A deeper plain network ends with higher training error than a shallower plain one "
                               "trained the same way.", ("seed002", "he2016")),
    _C("D2", "01_degradation",
       "Identity shortcuts remove degradation: the deeper residual net trains at least as well "
                               "as the shallower one and better than the deep plain net.",
       ("seed000", "seed002", "he2016")),
    _C("D3", "01_degradation",
       "A deep plain net built from a trained shallow one plus identity layers starts no worse "
                               "than it; trained from scratch it ends worse.", ("seed002",)),
    _C("D4", "01_degradation",
       "Trained plain layers stay far from the identity map, so extra layers cannot easily "
                               "learn to do nothing.", ("seed002",)),
    _C("D5", "01_degradation",
       "Highway (gated) shortcuts also fix degradation, but identity shortcuts train as well "
                               "or better.", ("seed002", "srivastava2015", "he2016")),
    _C("G1", "02_gradient_flow",
       "With batch norm and He initialisation, gradient norms of a deep plain net do not "
                                 "vanish.", ("seed002", "he2016")),
    _C("G2", "02_gradient_flow",
       "Without normalisation, early-layer gradients of plain nets shrink with depth; "
                                 "residual nets keep them.", ("seed000", "seed002")),
    _C("G3", "02_gradient_flow",
       "Gradients of deep plain nets shatter: their correlation across nearby inputs decays "
                                 "faster with depth than in residual nets.", ("balduzzi2017",)),
    _C("G4", "02_gradient_flow",
       "Dense connectivity gives early layers relatively larger gradients (implicit deep "
                                 "supervision) than residual or plain nets.",
       ("seed000", "seed001")),
    _C("G5", "02_gradient_flow",
       "A residual net acts like an ensemble of shorter paths: deleting one block barely "
                                 "hurts it but ruins a plain net.", ("veit2016", "seed001")),
    _C("G6", "02_gradient_flow", "Denser skip connectivity eases gradient flow, up to a point.",
       ("seed001",)),
    _C("E1", "03_equivalence", "ResNet merges a shortcut by addition, DenseNet by concatenation.",
       ("seed001", "seed002")),
    _C("E2", "03_equivalence",
       "A convolution over a concatenation equals the sum of per-piece convolutions with the "
                               "matching weight slices.", ("seed001",)),
    _C("E3", "03_equivalence",
       "A ResNet layer is the tied-weight special case of a dense layer; a dense layer is "
                               "strictly more expressive.", ("seed001",)),
    _C("E4", "03_equivalence",
       "A dense block of L layers has L(L+1)/2 direct connections and each layer adds only k "
                               "new feature maps.", ("seed000", "huang2017")),
    _C("E5", "03_equivalence",
       "Earlier outputs are individually recoverable from a DenseNet layer's input but not "
                               "from a ResNet layer's summed input.", ("seed001",)),
    _C("C1", "04_cost", "DenseNet-121 has roughly one third of ResNet-50's parameters.",
       ("seed000", "huang2017")),
    _C("C2", "04_cost", "DenseNet-121 needs fewer FLOPs than ResNet-50.", ("seed000",)),
    _C("C3", "04_cost",
       "Activation memory kept for training grows quadratically with depth in a dense block, "
       "linearly in a residual stage.", ("seed000", "seed001")),
    _C("C4", "04_cost",
       "Concatenation widens later convolutions' inputs and the 1x1 bottlenecks absorb a growing "
                        "share of the work.", ("seed000",)),
    _C("C5", "04_cost", "The residual addition itself costs almost nothing.", ("seed000",)),
    _C("C6", "04_cost",
       "On GPUs DenseNet is slower in wall-clock time than ResNet despite fewer FLOPs.",
       ("seed000",)),
    _C("C7", "04_cost",
       "Recomputing concatenations in backward makes DenseNet training memory grow linearly at a "
                        "modest time cost.", ("pleiss2017",)),
    _C("C8", "04_cost",
       "Where storage or bandwidth dominate DenseNet's small size wins; where accelerator "
       "throughput dominates ResNet wins.", ("seed000",)),
    _C("T1", "05_transformer_norm",
       "At initialisation post-norm gradients near the output are large and "
                                    "depth-independent; pre-norm ones shrink with depth.",
       ("xiong2020",)),
    _C("T2", "05_transformer_norm",
       "Post-norm needs learning-rate warm-up to train stably; pre-norm does not.",
       ("xiong2020",)),
    _C("T3", "05_transformer_norm",
       "Deep post-norm stacks diverge where pre-norm stacks of the same depth train.",
       ("liu2020",)),
    _C("T4", "05_transformer_norm",
       "Attention is a learned, input-dependent dense connectivity that lets any token "
                                    "reach any other.", ("seed000",)),
    _C("U1", "06_unet_skips",
       "Long encoder-decoder skips preserve fine detail: without them segmentation quality "
                              "drops, most at boundaries.",
       ("seed000", "seed002", "ronneberger2015")),
    _C("U2", "06_unet_skips", "The loss from dropping skips grows as structures get finer.",
       ("seed002",)),
    _C("U3", "06_unet_skips", "Concatenated and added skips compared: which wins and by how much.",
       ("seed002",)),
    _C("L1", "07_loss_landscape",
       "Loss surfaces with skip connections are smoother and more convex, increasingly so "
                                  "with depth.", ("seed002", "li2018")),
    _C("A1", "08_param_efficiency",
       "DenseNet matches ResNet's accuracy with about a third of the parameters.",
       ("seed000", "seed001", "huang2017")),
    _C("A2", "08_param_efficiency",
       "DenseNet overfits less than ResNet when training data are scarce.", ("seed000",)),
    _C("A3", "08_param_efficiency",
       "Partial dense (CSP) and squeeze-and-excitation hybrids improve the accuracy-cost "
                                    "trade-off.", ("seed000",)),
    _C("S1", "report",
       "There is no universal winner: the best connection pattern depends on data, hardware and "
       "task.",
       ("seed000",)),
]}


def apply_design(decision: Decision, profile: str) -> Decision:
    """``decision`` held to its design: a supported or refuted verdict reached with fewer seeds (or
    rounds) than the design plans for ``profile`` reads inconclusive, "underpowered" in its numbers.
    The design's planned count and the count the rule read are added to the numbers either way."""
    row = design(decision.claim)
    if row is None or row.planned(profile) is None:
        return decision
    planned, got = row.planned(profile), decision.numbers.get(f"{row.unit}s")
    numbers = {**decision.numbers, f"planned_{row.unit}s": planned}
    if got is not None and got < planned:
        numbers["underpowered"] = f"{got} {row.unit}s of the {planned} the design plans"
        verdict = "inconclusive" if decision.verdict in ("supported",
                                                         "refuted") else decision.verdict
        return Decision(decision.claim, verdict, decision.rule,
                        {**numbers, "verdict_before_design": decision.verdict})
    return Decision(decision.claim, decision.verdict, decision.rule, numbers)


CAPPED_MARK = "[capped check, not a finding]"


@dataclass(frozen=True)
class Finding:
    """One claim's result as a study returns it: the rule's decision, the headline a reader quotes
    (the numbers behind the verdict, in words) and the evidence (the setting those numbers came
    from; the rule's own numbers join it when recorded). ``device`` names the device a per-device
    claim was measured on (C6, C8). A notebook records it in one call, ``ctx.claims.add(finding,
    evidence=...)``, adding what only the notebook knows."""

    decision: Decision
    headline: str
    evidence: dict[str, Any] = field(default_factory=dict)
    device: str | None = None

    @property
    def claim(self) -> str:
        return self.decision.claim


@dataclass
class ClaimRecord:
    id: str
    claim: str
    verdict: str
    rule: str
    evidence: dict[str, Any]
    headline: str  # one sentence with the key number(s), quoted in the abstract
    device: str
    notebook: str
    # "identity" (identities and exact counts: verified/failed) or "empirical"
    kind: str = "empirical"
    # the rule function and its arguments (``Decision.inputs``)
    inputs: dict[str, Any] | None = None
    # keys of the stored runs the notebook had used by then
    runs: list[str] = field(default_factory=list)
    cite: str = ""  # the verdict's identity, e.g. D1@3f9a2c1 (``cite``)


CITED = ("id", "verdict", "rule", "evidence", "inputs", "runs")


def cite(record: dict[str, Any]) -> str:
    """A verdict's citable identity, ``<ID>@<7 hex digits>``: sha256 of the canonical JSON of what
    decided it (the claim ID, the verdict, the rule's text, the evidence with the design row and the
    numbers the rule read, the rule's inputs and the keys of the runs behind it). The same numbers
    give the same identity on any machine; the headline, the device label, dates and paths do not
    enter."""
    text = json.dumps({k: record.get(k) for k in CITED}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return f"{record['id']}@{hashlib.sha256(text.encode()).hexdigest()[:7]}"


@dataclass
class ClaimBook:
    """Collects the claims one notebook decides and writes them as JSON.

    Args:
        notebook: the notebook's name, e.g. ``03_equivalence``.
        report_dir: the reports folder; the file goes to ``claims/<notebook>.json``.
        device: the device label the numbers were measured on.
        profile: the parameter profile the notebook ran with.
        fingerprint: the machine fingerprint (``hardware.fingerprint``).
    """

    notebook: str
    report_dir: str | os.PathLike
    device: str
    profile: str
    fingerprint: dict[str, Any] = field(default_factory=dict)
    # by (claim ID, device)
    records: dict[tuple[str, str], ClaimRecord] = field(default_factory=dict)
    # The overlay's caps for this notebook under a capped check (make full-check), else None: every
    # record is marked.
    capped: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        runs.forget_used()  # a claim's runs are those the notebook used after its book was opened
        if self.capped is None:

            self.capped = overlay(self.notebook)

    @property
    def path(self) -> Path:
        return Path(self.report_dir) / "claims" / f"{self.notebook}.json"

    def record(self, claim_id: str, decision: Decision, *, evidence: dict[str, Any], headline: str,
               device: str | None = None) -> None:
        """Record one claim's verdict with its evidence and rule, save the book, and show the
        verdict.

        ``decision`` (from a function in ``skipanalysis.rules``, or ``rules.core.identity`` for an
        identity) gives the verdict, the rule text and the numbers the rule read (added to the
        evidence): a verdict can reach the claim book only through a rule. A claim decided per
        device (e.g. C6) is recorded once per device, with ``device`` set.

        Raises:
            ValueError: unknown claim ID, a claim owned by another notebook, a decision for another
            claim or not a
                decision at all, or an empty rule. (A ``Decision`` cannot hold a verdict of the
                wrong kind.)
        """
        if not isinstance(decision, Decision):
            raise ValueError(
                f"claim {claim_id}: record needs a Decision from skipanalysis.rules, got "
                f"{decision!r}")
        if decision.claim != claim_id:
            raise ValueError(f"decision for {decision.claim} recorded as {claim_id}")
        inputs = decision.inputs
        decision = apply_design(decision, self.profile)
        verdict, rule, kind = decision.verdict, decision.rule, claim_kind(claim_id)
        evidence = {**evidence, "rule_numbers": decision.numbers}
        # a capped check: the verdict tests the code path, it is not a finding
        if self.capped is not None:
            evidence["capped"] = self.capped
            headline = f"{CAPPED_MARK} {headline.strip()}"
        if (row := design(claim_id)) is not None:
            evidence["design"] = row.row(self.profile)
        if claim_id not in CATALOGUE:
            raise ValueError(
                f"claim_id={claim_id!r} is not in the project's claim list; known: "
                f"{', '.join(CATALOGUE)}")
        owner = CATALOGUE[claim_id].notebook
        if owner != self.notebook:
            raise ValueError(
                f"claim {claim_id} belongs to notebook {owner!r}, not {self.notebook!r}")
        if not rule or not rule.strip():
            raise ValueError(
                f"claim {claim_id}: state the rule that turned the numbers into the verdict")
        rec = ClaimRecord(id=claim_id, claim=CATALOGUE[claim_id].text, verdict=verdict,
                          rule=rule.strip(),
                          evidence=jsonable(evidence), headline=headline.strip(), device=device
                          or self.device,
                          notebook=self.notebook, kind=kind, inputs=inputs, runs=runs.used_keys())
        rec.cite = cite(asdict(rec))
        self.records[(claim_id, rec.device)] = rec
        self.save()
        try:
            from IPython import get_ipython
            from IPython.display import Markdown, display

            if get_ipython() is not None:
                display(
                    Markdown(
                        f"**{claim_id}: {verdict}** (`{rec.cite}`). {rec.headline}. *Rule:* "
                        f"{rec.rule}."))
        except ImportError:
            pass

    def add(self, *findings: Finding, evidence: dict[str, Any] | None = None) -> None:
        """Record each finding (``record``), with ``evidence`` (the notebook's data and recipe)
        under the finding's own."""
        for f in findings:
            if not isinstance(f, Finding):
                raise ValueError(f"add needs Findings from a study's claim helper, got {f!r}")
            self.record(f.claim, f.decision, evidence={**(evidence or {}), **f.evidence},
                        headline=f.headline,
                        device=f.device)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "profile": self.profile,
            "device": self.device,
            "fingerprint": jsonable(self.fingerprint),
            **({"capped": jsonable(self.capped)} if self.capped is not None else {}),
            "claims": [asdict(r) for r in self.records.values()],
        }

    def save(self) -> Path:
        """Write the book atomically (a crash never leaves half a JSON file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.to_dict())
        return self.path

    def table(self):
        """The recorded claims as a pandas DataFrame (for display in the notebook)."""
        import pandas as pd

        return pd.DataFrame(
            [{"ID": r.id, "device": r.device, "verdict": r.verdict, "headline": r.headline,
                              "rule": r.rule} for r in self.records.values()])

    def missing(self) -> list[str]:
        """Claim IDs this notebook owns but has not recorded yet."""
        done = {cid for cid, _ in self.records}
        return [c.id for c in CATALOGUE.values() if c.notebook == self.notebook
                and c.id not in done]


def load_claims(report_dir: str | os.PathLike,
                notebooks: list[str] | None = None) -> list[dict[str, Any]]:
    """Load the claim books written under ``<report_dir>/claims``.

    Args:
        notebooks: when given, only these notebooks' books, in this order.
    """
    folder = Path(report_dir) / "claims"
    names = notebooks if notebooks is not None else sorted(p.stem for p in folder.glob("*.json"))
    books = []
    for name in names:
        p = folder / f"{name}.json"
        if p.exists():
            books.append(json.loads(p.read_text(encoding="utf-8")))
    return books


def _books(source: str | os.PathLike) -> list[dict[str, Any]]:
    """The claim books of a run: a report folder (``<folder>/claims/*.json``), its ``claims.json``
    or its bundle."""
    source = Path(source)
    if source.is_file() and source.name.endswith((".tar.gz", ".tgz")):  # a bundle (make bundle)
        import tarfile

        try:
            with tarfile.open(source, "r:gz") as tar:
                return json.loads(tar.extractfile("claims.json").read())["notebooks"]
        except (tarfile.TarError, KeyError, OSError, EOFError, ValueError) as exc:
            raise FileNotFoundError(
                f"{source} is not a bundle with a claims.json ({exc})") from None
    if source.is_file():
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FileNotFoundError(
                f"{source} is not a claims file ({exc}); give a report folder or its "
                                    "claims.json") from None
        if not isinstance(data, dict) or "notebooks" not in data:
            raise FileNotFoundError(
                f"{source} is not a report's claims.json (no 'notebooks'); give a report folder "
                                    "or its claims.json")
        return data["notebooks"]
    books = load_claims(source)
    if not books:
        raise FileNotFoundError(
            f"no claim files under {source / 'claims'}; run the notebooks first")
    return books


def verdict_table(source: str | os.PathLike):
    """Every recorded verdict of a run (a report folder or its ``claims.json``) as a DataFrame:
    notebook, ID, device, verdict, headline, kind."""
    import pandas as pd

    rows = [
        {"notebook": b["notebook"], "ID": c["id"], "device": c["device"], "verdict": c["verdict"],
             "headline": c.get("headline", ""), "kind": c.get("kind", "empirical")}
            for b in _books(source) for c in b.get("claims", [])]
    if not rows:
        raise FileNotFoundError(f"{source} holds no claims; run the notebooks first")
    return pd.DataFrame(rows)


def _device_kind(device: str) -> str:
    return re.split(r"[\s(]", device, maxsplit=1)[0]


def _pair(a: list[dict], b: list[dict]) -> list[tuple[dict | None, dict | None]]:
    """Records of one claim in two runs, paired: the same device first, then the same device kind (a
    laptop's cpu with a server's cpu, one cuda machine with another), then whatever is left, in
    order."""
    pairs, a, b = [], list(a), list(b)
    for key in (lambda r: r["device"], lambda r: _device_kind(r["device"]), lambda r: 0):
        for ra in list(a):
            rb = next((r for r in b if key(r) == key(ra)), None)
            if rb is not None:
                pairs.append((ra, rb))
                a.remove(ra)
                b.remove(rb)
    return pairs + [(ra, None) for ra in a] + [(None, rb) for rb in b]


def compare_verdicts(before: str | os.PathLike, after: str | os.PathLike):
    """Verdicts and headline numbers of two runs side by side (another first seed, another machine),
    changes first.

    Each run is a report folder or its ``claims.json``. A claim's records are paired by ``_pair``
    (same device, then same device kind, then in order), so a laptop's run and a GPU server's line
    up claim by claim; a record in only one run shows ``-`` in the other.
    """
    import pandas as pd

    ta, tb = verdict_table(before), verdict_table(after)
    keys = list(dict.fromkeys(list(zip(ta.notebook, ta.ID)) + list(zip(tb.notebook, tb.ID))))
    rows = []
    for order, (nb, cid) in enumerate(keys):
        recs = [t[(t.notebook == nb) & (t.ID == cid)].to_dict("records") for t in (ta, tb)]
        for ra, rb in _pair(*recs):
            get = lambda r, k: r[k] if r is not None else "-"  # noqa: E731
            rows.append({"order": order, "kind": (ra or rb)["kind"], "notebook": nb, "ID": cid,
                         "verdict_before": get(ra, "verdict"), "verdict_after": get(rb, "verdict"),
                         "headline_before": get(ra, "headline"),
                         "headline_after": get(rb, "headline"),
                         "device_before": get(ra, "device"), "device_after": get(rb, "device")})
    table = pd.DataFrame(rows)
    table.insert(0, "changed", table.verdict_before != table.verdict_after)
    table = table.sort_values(["changed", "order"], ascending=[False, True], kind="stable")
    return table.drop(columns="order").reset_index(drop=True)
