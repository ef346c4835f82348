"""Verdicts a reader can cite and check offline: a report's bundle, its verification, other
machines' claims.

- ``make bundle`` (``python -m skipanalysis.pipeline.bundle make reports/quick``) writes
  ``<report>/bundle.tar.gz``: the claims with their identities (``claims.cite``), the rule texts,
  the design table, the record of every stored run behind a verdict (records, not weights), the
  fingerprints of the package's code, the lock files, the machines' fingerprints and hardware files,
  the figures, a ``CITATION.cff`` and a BibTeX entry, and ``MANIFEST.json`` (size and sha256 of
  every member). Nothing is fetched.
- ``make verify BUNDLE=...`` (``verify``) recomputes every verdict from the numbers in the bundle
  with the rule functions of this checkout (no training), checks every identity and every member's
  checksum, and exits non-zero naming the first claim that does not follow.
- ``make import-claims FROM=...`` (``import_claims``) copies another machine's claims (its
  ``claims.json`` or bundle) into ``<report>/replications/``; the paper's claims table then says on
  how many machines each verdict was measured and whether they agree (``replication``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import claims as claims_mod
from .. import design, runs
from ..provenance import git_commit, write_atomic, write_json_atomic
from ..rules import registry

ROOT = Path(__file__).resolve().parents[2]
NAME = "bundle.tar.gz"
LOCKS = ("requirements.lock", "requirements-cluster.lock")


class BundleError(ValueError):
    """A bundle, report folder or claims file that cannot be used (one line: which file, what is
    wrong)."""


# --- reading claims from a report folder, a claims.json or a bundle -------------------------------

def read_bundle(path: str | os.PathLike) -> dict[str, bytes]:
    """Every member of a bundle by name."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(
            f"BUNDLE={path} is not a file; give a bundle.tar.gz that make bundle wrote")
    try:
        with tarfile.open(path, "r:gz") as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"BUNDLE={path} is not a readable .tar.gz ({exc})") from None


def is_bundle(path: str | os.PathLike) -> bool:
    return Path(path).is_file() and str(path).endswith((".tar.gz", ".tgz"))


def books_of(source: str | os.PathLike) -> list[dict[str, Any]]:
    """The claim books of a report folder, its ``claims.json`` or a bundle."""
    return claims_mod._books(source)


def run_records(source: str | os.PathLike, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The records of ``keys``: from the bundle when ``source`` is one, else from the report's own
    store (``<report>/runs/``, as make full-check keeps it) or the run store (``runs/`` or
    ``SKIPANALYSIS_RUNS``). Keys with no record are left out."""
    if is_bundle(source):
        members = read_bundle(source)
        return {k: json.loads(members[f"runs/{k}.json"]) for k in keys
                if f"runs/{k}.json" in members}
    out = {}
    folder = Path(source) if Path(source).is_dir() else Path(source).parent
    roots = [r for r in (folder / "runs", runs.default_root()) if r.is_dir()]
    for k in keys:
        p = next((r / k[:2] / k / "record.json" for r in roots
                  if (r / k[:2] / k / "record.json").is_file()), None)
        if p is not None:
            try:
                out[k] = json.loads(p.read_text(encoding="utf-8"))
            except ValueError:
                continue
    return out


# --- make bundle ----------------------------------------------------------------------------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def citation(profile: str, commit: str, date: str) -> tuple[str, str]:
    """``CITATION.cff`` and a BibTeX entry for a report of ``profile`` at ``commit``."""
    title = f"skipanalysis: skip connections put to measurement ({profile} report)"
    cff = ("cff-version: 1.2.0\nmessage: \"Cite this report by its commit and, per verdict, by "
           f"the identity beside it (e.g. D1@3f9a2c1).\"\ntitle: \"{title}\"\ntype: "
           "dataset\nauthors:\n  - name: \"skipanalysis contributors\"\nversion: "
           f"\"{commit}\"\ndate-released: \"{date[:10]}\"\nkeywords:\n  - skip connections\n  - "
           "residual networks\n  - DenseNet\n  - reproducibility\n")
    bib = (f"@misc{{skipanalysis_{profile}_{commit[:7]},\n  title = {{{title}}},\n  author = "
           f"{{{{skipanalysis contributors}}}},\n  year = {{{date[:4]}}},\n  note = {{Profile "
           f"{profile}, commit {commit}, made {date[:10]}; each verdict is cited by its identity, "
           f"e.g. D1@3f9a2c1}}\n}}\n")
    return cff, bib


def code_fingerprints(root: Path = ROOT) -> dict[str, str]:
    """sha256 of every file of the package (``skipanalysis/**/*.py``) and every notebook, by
    path."""
    files = sorted([*root.glob("skipanalysis/**/*.py"), *root.glob("notebooks/*.ipynb")])
    return {str(f.relative_to(root)): _sha(f.read_bytes()) for f in files}


def make(report: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``<report>/bundle.tar.gz`` (see the module docstring) and return its path. Needs the
    report's ``claims.json`` (``make report`` writes it); reads the run records from the run
    store."""
    report = Path(report)
    claims_file = report / "claims.json"
    if not claims_file.is_file():
        raise BundleError(
            f"{claims_file} does not exist; run make report (PROFILE=...) first, then make bundle")
    data = json.loads(claims_file.read_text(encoding="utf-8"))
    profile = data.get("profile", "quick")
    books = data["notebooks"]
    members: dict[str, bytes] = {"claims.json": claims_file.read_bytes()}
    for p in sorted((report / "claims").glob("*.json")):
        members[f"claims/{p.name}"] = p.read_bytes()
    texts = {cid: fn.text for cid, fn in sorted(registry.RULES.items())}
    texts.update({c["id"]: c["rule"] for b in books for c in b["claims"] if c["id"] not in texts})
    members["rules.json"] = _json(texts)
    members["design.json"] = _json(
        {"profile": profile, "alpha": design.ALPHA, "rows": design.table(profile)})
    keys = sorted({k for b in books for c in b["claims"] for k in c.get("runs", [])})
    records = run_records(report, keys) if keys else {}
    for k in keys:
        if k in records:
            # the record only: weights stay in the store
            members[f"runs/{k}.json"] = _json(records[k])
    members["code.json"] = _json(code_fingerprints())
    for name in LOCKS:
        if (ROOT / name).is_file():
            members[name] = (ROOT / name).read_bytes()
    members["machines.json"] = _json({b["notebook"]: b.get("fingerprint", {}) for b in books})
    for folder in ("hardware", "figures"):
        for p in sorted((report / folder).glob("*")):
            if p.is_file():
                members[f"{folder}/{p.name}"] = p.read_bytes()
    commit = git_commit(ROOT)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cff, bib = citation(profile, commit, date)
    members["CITATION.cff"], members["report.bib"] = cff.encode(), bib.encode()
    manifest = {"profile": profile, "commit": commit, "date": date, "runs": len(keys),
                "runs_missing": [k for k in keys if k not in records],
                "files": {n: {"bytes": len(b), "sha256": _sha(b)} for n,
                          b in sorted(members.items())}}
    members["MANIFEST.json"] = _json(manifest)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        for name, blob in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(blob), 0, 0o644
            tar.addfile(info, io.BytesIO(blob))
    target = Path(out) if out is not None else report / NAME
    write_atomic(target, buf.getvalue())
    return target


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True, default=str) + "\n").encode()


# --- make verify ----------------------------------------------------------------------------------

def recompute(claim: dict[str, Any], profile: str) -> str | None:
    """The verdict ``claim``'s rule gives from the inputs recorded with it, held to the design of
    ``profile``; None when the claim carries no inputs (a verdict written by hand, e.g. "not
    measured here")."""
    inputs = claim.get("inputs")
    if not inputs or "arguments" not in inputs:
        return None
    fn = registry.decider(claim["id"])
    if fn is None:
        raise BundleError(f"claim {claim['id']}: no rule in this checkout decides it")
    decision = fn(**registry.decode(inputs["arguments"]))
    return claims_mod.apply_design(decision, profile).verdict


def verify(source: str | os.PathLike) -> list[str]:
    """Check a bundle: every member's checksum, every claim's identity, every verdict recomputed
    from its inputs. Returns the lines of the report; raises BundleError naming the first thing that
    does not follow."""
    members = read_bundle(source)
    if "MANIFEST.json" not in members or "claims.json" not in members:
        raise BundleError(
            f"{source}: no MANIFEST.json or claims.json inside; not a bundle make bundle wrote")
    manifest = json.loads(members["MANIFEST.json"])
    for name, meta in manifest["files"].items():
        if name not in members:
            raise BundleError(f"{source}: {name} is listed in MANIFEST.json but missing")
        if _sha(members[name]) != meta["sha256"]:
            raise BundleError(
                f"{source}: {name} does not match its checksum in MANIFEST.json (changed after "
                "bundling)")
    data = json.loads(members["claims.json"])
    profile = data.get("profile", manifest.get("profile", "quick"))
    lines, recomputed, hashed = [], 0, 0
    books = data["notebooks"]
    for book in books:
        for c in book["claims"]:
            label = f"{c['id']} [{c.get('device', '?')}]"
            if c.get("cite") and claims_mod.cite(c) != c["cite"]:
                raise BundleError(f"claim {label}: identity {c['cite']} does not match its content "
                                  f"({claims_mod.cite(c)}): a number, the rule or a run key was "
                                  "changed")
            hashed += bool(c.get("cite"))
            missing = [k for k in c.get("runs", []) if f"runs/{k}.json" not in members]
            if missing:
                lines.append(
                    f"  {label}: {len(missing)} of its {len(c['runs'])} run records are not in the "
                    "bundle")
            try:
                verdict = recompute(c, profile)
            except BundleError:
                raise
            # any failure of a rule on these inputs is the finding
            except Exception as exc:  # noqa: BLE001
                raise BundleError(f"claim {label}: its rule fails on the recorded inputs "
                                  f"({type(exc).__name__}: {exc})") from None
            if verdict is None:
                why = (c.get("inputs") or {}).get("unrecorded", "decided without a rule's inputs")
                lines.append(
                    f"  {label}: {c['verdict']} (not recomputed: {why}; its identity checked)")
                continue
            if verdict != c["verdict"]:
                raise BundleError(
                    f"claim {label}: recorded {c['verdict']!r}, but its rule gives {verdict!r} "
                    "from the recorded numbers")
            recomputed += 1
    n = sum(len(b["claims"]) for b in books)
    lines.insert(0, f"[verify] {source}: {len(manifest['files'])} files match their checksums; "
                    f"{hashed} of {n} verdict identities match; {recomputed} of {n} verdicts "
                    f"recomputed from their numbers agree (profile {profile}, commit "
                    f"{manifest.get('commit', '?')[:12]})")
    return lines


# --- make compare: why a verdict moved ------------------------------------------------------------

COMPONENT_ORDER = ("code of", "package", "machine", "device", "threads", "seed", "data",
                   "parameter", "evidence")


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [pair for k, v in value.items() for pair in _flat(v, f"{prefix}{k}.")]
    return [(prefix[:-1], value)]


def _component(path: str) -> str:
    last = path.rsplit(".", 1)[-1]
    if last == "seed":
        return "seed"
    if last == "device":
        return "device"
    if last == "data" or last.endswith("_data"):
        return f"data ({path})"
    return f"parameter {path}"


def components(records: list[dict[str, Any]],
               book: dict[str, Any] | None = None) -> dict[str, set[str]]:
    """What the runs behind a verdict were made of, by component: each config field (seed, device,
    data fingerprints, every other parameter), each package version, the thread count, the code of
    each function the runs reached (``keys.code_parts``), and the machine of the notebook's book;
    each with the set of its values."""
    out: dict[str, set[str]] = {}
    add = lambda k, v: out.setdefault(k, set()).add(  # noqa: E731
        v if isinstance(v, str) else json.dumps(v, sort_keys=True))
    for r in records:
        for path, v in _flat(r.get("config", {})):
            add(_component(path), v)
        for pkg, ver in r.get("versions", {}).items():
            add(f"package {pkg}", ver)
        add("threads", r.get("machine", {}).get("threads"))
        for fn, h in (r.get("code") or {
            "(not recorded: runs made before records kept their code parts)": "?"}).items():
            add(f"code of {fn}", h)
    for k in ("torch", "python", "cpu_model", "cpu_count", "torch_threads", "device"):
        if book and k in book.get("fingerprint", {}):
            add(f"machine {k}", book["fingerprint"][k])
    return out


def _show(values: set[str], most: int = 4) -> str:
    # fingerprints by their first digits
    items = sorted(v if len(v) <= 24 else f"{v[:12]}..." for v in values)
    return ", ".join(items[:most]) + (f" (+{len(items) - most})" if len(items) > most
                                      else "") if items else "-"


def explain(before: str | os.PathLike,
            after: str | os.PathLike) -> dict[tuple[str, str, str], list[str]]:
    """For every claim whose verdict or headline moved between two runs (report folders, claims.json
    or bundles): the components of its runs that differ (``components``), code first, then package
    versions, the machine, the device, threads, seeds, data and parameters; for a claim with no
    stored runs, the evidence fields that differ. Keyed by (notebook, claim ID, device of the second
    run). Run records come from the bundles, or from the run store for report folders."""
    books = [books_of(before), books_of(after)]
    out: dict[tuple[str, str, str], list[str]] = {}
    by = [{(b["notebook"], c["id"]): [] for b in bs for c in b["claims"]} for bs in books]
    owner = [{} for _ in books]
    for side, bs in enumerate(books):
        for b in bs:
            for c in b["claims"]:
                by[side][(b["notebook"], c["id"])].append(c)
                owner[side][id(c)] = b
    for key in by[1]:
        for ra, rb in claims_mod._pair(by[0].get(key, []), by[1][key]):
            same = ra is not None and rb is not None and (ra["verdict"], ra.get("headline")) == (
                rb["verdict"], rb.get("headline"))
            if ra is None or rb is None or same:
                continue
            sides, absent = [], 0
            for source, rec, own in ((before, ra, owner[0][id(ra)]), (after, rb, owner[1][id(rb)])):
                recs = list(run_records(source, rec.get("runs", [])).values())
                absent += len(rec.get("runs", [])) - len(recs)
                sides.append(components(recs, own))
            why = []
            for name in sorted(set(sides[0]) | set(sides[1]),
                               key=lambda n: (next(
                                   (i for i, p in enumerate(COMPONENT_ORDER) if n.startswith(p)),
                                                   len(COMPONENT_ORDER)), n)):
                a, b = sides[0].get(name, set()), sides[1].get(name, set())
                if a != b:
                    why.append(f"{name}: {_show(a)} -> {_show(b)}")
            if not ra.get("runs") and not rb.get("runs"):
                ea, eb = ra.get("evidence", {}), rb.get("evidence", {})
                why += [
                    f"evidence {k}: {json.dumps(ea.get(k))[:80]} -> {json.dumps(eb.get(k))[:80]}"
                        for k in sorted(set(ea) | set(eb)) if k != "rule_numbers"
                        and ea.get(k) != eb.get(k)]
            if absent:
                why.append(
                    f"{absent} of the runs' records are not at hand, so their components are not "
                    "compared (compare bundles, or name the runs' store with SKIPANALYSIS_RUNS)")
            elif not why:
                alike = "the same runs, rules and machine; look at the rule's numbers"
                again = "other runs of the same code, parameters and machine (measured again)"
                runs_a, runs_b = set(ra.get("runs", [])), set(rb.get("runs", []))
                why = ["no recorded component differs: " + (alike if runs_a == runs_b else again)]
            out[(key[0], key[1], rb["device"])] = why
    return out


# --- make import-claims and the replication record ------------------------------------------------

def _machine_label(book: dict[str, Any]) -> str:
    fp = book.get("fingerprint", {})
    return f"{fp.get('hostname', '?')} ({book.get('device', '?')})"


def import_claims(source: str | os.PathLike, report: str | os.PathLike) -> Path:
    """Copy the claim books of another run (a ``claims.json`` or a bundle) into
    ``<report>/replications/``, named by the machine and date of its first book; returns the file
    written."""
    books = books_of(source)
    if not books:
        raise BundleError(f"FROM={source} holds no claims")
    fp = books[0].get("fingerprint", {})
    stem = "-".join(str(x) for x in (fp.get("hostname", "machine"), fp.get("device", "device"),
                                     (fp.get("date") or "undated")[:19]))
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
    target = Path(report) / "replications" / f"{stem}.json"
    write_json_atomic(target, {"source": str(source), "notebooks": books})
    return target


def replications(report: str | os.PathLike) -> list[list[dict[str, Any]]]:
    """The claim books imported into ``report`` (one list of books per imported run)."""
    out = []
    for p in sorted((Path(report) / "replications").glob("*.json")):
        try:
            out.append(json.loads(p.read_text(encoding="utf-8"))["notebooks"])
        except (ValueError, KeyError):
            raise BundleError(
                f"{p} is not an imported claims file; delete it or import again") from None
    return out


def replication(claim_id: str, device: str, here: str, others: list[list[dict[str, Any]]]) -> str:
    """For one claim measured here on ``device`` with verdict ``here``: "supported on 3 of 3
    machines", or with the disagreeing verdicts named, over the imported runs (``others``) that
    measured it on the same kind of device (cpu, cuda, ...); "" when none did."""
    device_kind = claims_mod._device_kind(device)
    seen = [here]
    for books in others:
        found = [c["verdict"] for b in books for c in b.get("claims", [])
                 if c["id"] == claim_id
                 and claims_mod._device_kind(c.get("device", "")) == device_kind]
        if found:
            seen.append(found[0])
    if len(seen) == 1:
        return ""
    agree = sum(v == here for v in seen)
    if agree == len(seen):
        return f"{here} on {agree} of {len(seen)} machines"
    other = sorted({v for v in seen if v != here})
    return f"{here} on {agree} of {len(seen)} machines ({', '.join(other)} elsewhere)"


# --- command line ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Bundle a report's verdicts, verify a bundle, import other claims.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="write <report>/bundle.tar.gz")
    m.add_argument("report", help="a report folder, e.g. reports/quick")
    v = sub.add_parser("verify",
                       help="recompute every verdict of a bundle and check its identities")
    v.add_argument("bundle")
    i = sub.add_parser("import", help="copy another run's claims into <report>/replications/")
    i.add_argument("source", help="a claims.json or a bundle.tar.gz from another machine")
    i.add_argument("report", help="the report folder to add them to, e.g. reports/quick")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "make":
            path = make(args.report)
            files = json.loads(read_bundle(path)["MANIFEST.json"])
            print(
                f"[bundle] wrote {path} ({path.stat().st_size / 1e6:.2f} MB: {len(files['files'])} "
                f"files, the records of {files['runs']} runs); check it with make verify "
                f"BUNDLE={path}")
        elif args.cmd == "verify":
            print("\n".join(verify(args.bundle)))
        else:
            print(f"[bundle] imported {args.source} as {import_claims(args.source, args.report)}; "
                  "make report now shows on how many machines each verdict holds")
    except (BundleError, FileNotFoundError) as exc:
        print(f"[{args.cmd}] {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
