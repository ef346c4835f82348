"""masked_text.text_task (masked-character modelling of a text file) and notebook 05's T2/T3 on
it."""

import math

import pytest
import torch
import torch.nn.functional as F

from skipanalysis import masked_text
from skipanalysis.rules import transformer_norm
from skipanalysis.setting import Setting
from skipanalysis.studies import transformer_norm as npl
from skipanalysis.studies import transformer_norm_claims as tnc
from skipanalysis.train import TrainConfig

TEXT = ("the quick brown fox jumps over the lazy dog; " * 40) + "Zebra! " + (
    "a stitch in time saves nine. " * 10)


def _write(tmp_path, text=TEXT, name="corpus.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_symbols_by_frequency_with_one_id_for_the_rest_and_one_for_the_mask(tmp_path):
    p = _write(tmp_path, "aaaabbbccd" * 20)  # a 80, b 60, c 40, d 20 per 200 characters
    # keeps a, b; c, d -> other
    train, test, about = masked_text.text_task(p, 50, 10, seq_len=8, seed=0, max_symbols=4)
    x, y = train.tensors
    assert about["symbols"] == 4 and about["kept_share"] == pytest.approx(0.7)
    scored = y != -100
    # a = 0, b = 1, the rest = 2; the mask (3) is never a target
    assert set(y[scored].tolist()) <= {0, 1, 2}
    # masked inputs carry the mask id, and only they do
    assert (x[scored] == 3).all() and (x[~scored] != 3).all()
    # with 4 kept symbols (max_symbols=6) every id reads back as the character: the windows are
    # pieces of the text
    train, test, _ = masked_text.text_task(p, 50, 10, seq_len=8, seed=0, max_symbols=6)
    chars = "abcd"
    text = "aaaabbbccd" * 20
    for part, (lo, hi) in ((train, (0, 180)), (test, (180, 200))):
        x, y = part.tensors
        for xi, yi in zip(x.tolist(), y.tolist()):
            window = "".join(chars[t if t != 5 else u] for t, u in zip(xi, yi))
            # train windows from the first 90%, held-out ones from the last 10%
            assert window in text[lo:hi]


def test_mask_rate_and_at_least_one_mask_a_window(tmp_path):
    p = _write(tmp_path)
    train, _, about = masked_text.text_task(p, 2000, 10, seq_len=32, seed=1, mask_rate=0.15)
    scored = train.tensors[1] != -100
    assert scored.any(1).all()
    # each position masked with p = 0.15, plus one forced position a window (p <= 1/32 more): mean
    # within
    # 4 binomial standard errors of 0.15 + 0.85/32
    expected = 0.15 + 0.85 / 32
    se = math.sqrt(expected * (1 - expected) / scored.numel())
    assert abs(scored.float().mean().item() - expected) < 4 * se
    assert about["characters"] == len(TEXT) and about["file"] == "corpus.txt"


def test_same_seed_same_windows_other_seed_other_windows(tmp_path):
    p = _write(tmp_path)
    a, b, c = (masked_text.text_task(p, 64, 16, 16, seed=s)[0].tensors for s in (3, 3, 4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_bad_files_give_one_line_naming_text_path(tmp_path):
    with pytest.raises(ValueError, match=r"text_path=.*no such file"):
        masked_text.text_task(tmp_path / "missing.txt", 8, 8)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match=r"text_path=.*not UTF-8"):
        masked_text.text_task(bad, 8, 8)
    with pytest.raises(ValueError, match=r"text_path=.*100 characters; windows of seq_len=64"):
        masked_text.text_task(_write(tmp_path, "x" * 100, "short.txt"), 8, 8, seq_len=64)


def test_loss_and_error_score_only_masked_positions():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]]])  # predicts 0, 1, 2
    y = torch.tensor([[0, -100, 1]])  # position 1 not scored; position 2 wrong
    assert npl.seq_error(logits, y).item() == pytest.approx(0.5)
    by_hand = -(F.log_softmax(logits[0, 0], -1)[0] + F.log_softmax(logits[0, 2], -1)[1]) / 2
    assert npl.seq_loss(logits, y).item() == pytest.approx(by_hand.item())
    full = torch.tensor([[0, 1, 1]])  # every position scored: the plain fraction of wrong tokens
    assert npl.seq_error(logits, full).item() == pytest.approx(1 / 3)


# 05's parameters at a size that trains in seconds: T2 at depth 1, one rate, 5 seeds; T3 at depths 1
# and 2
PARAMS = {"vocab": 8, "seq_len": 8, "d_model": 8, "n_heads": 2, "d_ff": 8, "grad_depths": [1, 2],
          "grad_seeds": 1,
          "grad_batches": 1, "batch_size": 16, "depth": 1, "lrs": [0.01], "warmup": 2, "seeds": 5,
          "t3_depths": [1, 2],
          "t3_lr": 0.01, "t3_warmup": 0, "t3_epochs": None, "t3_seeds": 5, "n_train": 48,
          "n_test": 16, "seed": 0,
          "window": 2}
CFG = TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=0.01, schedule="constant",
                  progress=False,
                  eval_every=10**9)


def test_text_study_without_a_file_runs_nothing():
    assert npl.text_study(None, npl.Design.from_params(PARAMS), Setting(None, None, CFG)) is None
    assert tnc.text_evidence(None, "T2") == {}


def test_text_study_applies_each_rule_to_the_text_runs(tmp_path):
    text = masked_text.text_task(_write(tmp_path), 48, 16, seq_len=8, seed=0)
    design = npl.Design.from_params(PARAMS)
    assert design.seed_list == design.t3_seed_list == list(range(5))
    assert design.arms == [("post", 0), ("post", 2), ("pre", 0)]
    # the setting's procedural data are not used: the text task's windows take their place
    got = npl.text_study(text, design, Setting(None, None, CFG))
    # 3 arms x 5 seeds; 2 placements x 2 depths x 5 seeds
    assert len(got.outs) == 15 and len(got.t3) == 20
    # repr: NaN equals NaN
    assert repr(got.t2_decision) == repr(transformer_norm.t2(got.outs.to_dict("records")))
    assert repr(got.t3_decision) == repr(transformer_norm.t3(got.t3.to_dict("records")))
    assert got.decision("T2") is got.t2_decision and got.decision("T3") is got.t3_decision
    assert got.vocab == int(text[0].tensors[1].max()) + 1
    ev = tnc.text_evidence(got, "T3")["text_task"]
    assert ev["verdict"] == got.t3_decision.verdict
    assert "masked-character modelling of the text file corpus.txt" in ev["data"]
    headline = tnc.t3_claim(got.t3, 0.01, 5, got).headline
    assert headline.endswith(
        f"; on the text task (masked-character modelling of the text file corpus.txt): "
                             f"{got.t3_decision.verdict}")
    summary = tnc.run_summary(got.outs, got.t3)
    # 15 + 20 runs less the 10 depth-1 runs without warm-up the sweep reused
    assert summary.runs.sum() == 25
