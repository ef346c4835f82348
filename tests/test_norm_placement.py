"""Notebook 05's pieces: the block formulas, the reversal task, gradient and attention probes."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from skipanalysis import tasks
from skipanalysis.models.transformer import Block, Encoder
from skipanalysis.setting import Setting
from skipanalysis.studies import transformer_norm as npl
from skipanalysis.studies import transformer_norm_claims as tnc

# 05's parameters at a size that trains in seconds (the tests below change the fields they vary)
PARAMS = {"vocab": 3, "seq_len": 4, "d_model": 8, "n_heads": 2, "d_ff": 8, "grad_depths": [1, 2],
          "grad_seeds": 2,
          "grad_batches": 1, "batch_size": 16, "depth": 1, "lrs": [0.01], "warmup": 3, "seeds": 2,
          "t3_depths": [1],
          "t3_lr": 0.01, "t3_warmup": 0, "t3_epochs": None, "t3_seeds": 2, "n_train": 32,
          "n_test": 32, "seed": 0,
          "window": 2}


def _design(**changes) -> npl.Design:
    return replace(npl.Design.from_params(PARAMS), **changes)


def _attention_by_hand(block: Block, x: torch.Tensor) -> torch.Tensor:
    """Multi-head self-attention written out from the module's weights."""
    a = block.attn
    d, h = a.embed_dim, a.num_heads
    q, k, v = F.linear(x, a.in_proj_weight, a.in_proj_bias).chunk(3, -1)
    split = lambda t: t.reshape(t.shape[0], t.shape[1], h, d // h).transpose(1, 2)  # noqa: E731
    w = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // h), -1)
    out = (w @ split(v)).transpose(1, 2).reshape(x.shape)
    return F.linear(out, a.out_proj.weight, a.out_proj.bias)


def _ln(block_ln, x):
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(
        x.var(-1, unbiased=False, keepdim=True) + block_ln.eps) \
        * block_ln.weight + block_ln.bias


def _ff(block, x):
    return F.linear(torch.relu(F.linear(x, block.ff[0].weight, block.ff[0].bias)),
                    block.ff[2].weight, block.ff[2].bias)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_blocks_compute_their_formulas(norm):
    torch.manual_seed(0)
    block = Block(8, 2, 16, norm).double()
    for p in block.parameters():  # non-trivial LayerNorm affine parameters too
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    if norm == "post":
        h = _ln(block.ln1, x + _attention_by_hand(block, x))
        expected = _ln(block.ln2, h + _ff(block, h))
    else:
        h = x + _attention_by_hand(block, _ln(block.ln1, x))
        expected = h + _ff(block, _ln(block.ln2, h))
    assert torch.allclose(block(x), expected, atol=1e-10)


def test_final_layernorm_only_for_pre_norm():
    assert isinstance(Encoder(4, 4, 1, 8, 2, 8, "pre").final_ln, torch.nn.LayerNorm)
    assert isinstance(Encoder(4, 4, 1, 8, 2, 8, "post").final_ln, torch.nn.Identity)
    with pytest.raises(ValueError, match="norm='mid'"):
        Block(8, 2, 8, "mid")


def test_reversal_task_labels_and_determinism():
    a, b = tasks.reversal_task(20, 7, 5, seed=3), tasks.reversal_task(20, 7, 5, seed=3)
    x, y = a.tensors
    assert torch.equal(x, b.tensors[0]) and x.max() < 5
    assert all(y[n, i] == x[n, 6 - i] for n in range(20) for i in range(7))
    assert not torch.equal(x, tasks.reversal_task(20, 7, 5, seed=4).tensors[0])


def test_local_task_labels_by_hand():
    x, y = tasks.local_task(30, 6, 7, seed=2).tensors
    assert torch.equal(
        x, tasks.local_task(30, 6, 7, seed=2).tensors[0]) and x.max() < 7 and y.max() < 7
    for n in range(30):
        assert y[n, 0] == x[n, 0] and all(y[n, i] == x[n, i - 1] for i in range(1, 6))
    with pytest.raises(ValueError, match="vocab=1"):
        tasks.local_task(4, 6, 1)


def test_reach_study_against_the_same_model_at_initialisation():
    """An untrained model is its own initialisation: no layer moved, so its reach change is exactly
    0; a model whose attention is pulled to the previous token (its query/key weights scaled up on
    one layer) moves that layer, and the change is that layer's distance minus its initial one."""
    size = dict(vocab=5, seq_len=8, depth=2, d_model=16, n_heads=2, d_ff=16)
    tokens = tasks.local_task(32, 8, 5, seed=1).tensors[0]
    fresh = npl.build("pre", seed=3, **size)
    _, table = npl.reach_study({("pre", 3): fresh}, tokens, 2, {("pre", 3): True}, **size)
    assert table.reach_change.iloc[0] == 0.0 and table.trained.iloc[0]
    moved = npl.build("pre", seed=3, **size)
    with torch.no_grad():
        for p in moved.blocks[1].parameters():
            p.mul_(4.0)
    layers, table = npl.reach_study({("pre", 3): moved}, tokens, 2, {("pre", 3): False}, **size)
    init = npl.attention_reach(npl.build("pre", seed=3, **size), tokens, 2).distance
    change = layers.distance - init
    assert table.moved_layer.iloc[0] == 2 and table.reach_change.iloc[0] == pytest.approx(
        change.iloc[1])
    assert abs(change.iloc[1]) > abs(change.iloc[0]) and not table.trained.iloc[0]


def test_loglog_slope_by_hand():
    xs = [4, 16, 64]
    assert tnc.loglog_slope(xs, [3 / math.sqrt(v) for v in xs]) == pytest.approx(-0.5)
    assert tnc.loglog_slope(xs, [2.0, 2.0, 2.0]) == pytest.approx(0.0, abs=1e-12)


def test_uniform_attention_reach():
    model = Encoder(6, 8, 2, 8, 2, 8, "pre")
    for b in model.blocks:  # zero queries and keys: every query attends uniformly
        with torch.no_grad():
            b.attn.in_proj_weight[:16].zero_()
            b.attn.in_proj_bias.zero_()
    reach = npl.attention_reach(model, torch.randint(0, 6, (10, 8)), window=1)
    uniform = sum(abs(i - j) for i in range(8) for j in range(8)) / 64
    assert reach.distance.tolist() == pytest.approx([uniform] * 2)
    assert reach.entropy.tolist() == pytest.approx([math.log(8)] * 2, abs=1e-5)
    assert reach.partner.tolist() == pytest.approx([1 / 8] * 2)
    assert reach.input_dependence.max() < 1e-6
    # 8 + 2*7 pairs within |i-j| <= 1
    assert reach.beyond_window.tolist() == pytest.approx([1 - 22 / 64] * 2)


def test_init_grad_norms_shape():
    ds = tasks.reversal_task(64, 6, 5, seed=0)
    df = npl.init_grad_norms("post", 3, ds, [0, 1], n_batches=2, batch_size=16, d_model=8,
                             n_heads=2, d_ff=8)
    assert len(df) == 6 and (df.block_grad > 0).all() and (df.w2_grad > 0).all()


def test_design_from_params_and_grad_study_per_placement_and_depth():
    """``Design.from_params`` reads the notebook's parameters by name and lists the seeds from
    ``seed`` on; T1's table is ``init_grad_norms`` of each placement and depth of the design on the
    setting's training data."""
    d = npl.Design.from_params({**PARAMS, "seed": 3, "t3_seeds": 1})
    assert d.seed_list == d.grad_seed_list == [3, 4] and d.t3_seed_list == [3] and d.probes == 256
    assert d.arms == [("post", 0), ("post", 3), ("pre", 0)] and d.size == {"d_model": 8,
                                                                           "n_heads": 2, "d_ff": 8}
    ds = tasks.reversal_task(64, 6, 5, seed=0)
    grads = npl.grad_study(d, Setting(ds, None, None))
    assert len(grads) == 2 * (1 + 2) * 2  # placements x layers over depths 1 and 2 x seeds
    one = npl.init_grad_norms("pre", 2, ds, [3, 4], n_batches=1, batch_size=16, d_model=8,
                              n_heads=2, d_ff=8)
    mine = grads[(grads.norm == "pre") & (grads.depth == 2)].reset_index(drop=True)
    assert mine.equals(one)


def test_outcome_flags():
    import pandas as pd

    from skipanalysis.train import TrainResult

    stuck = TrainResult(pd.DataFrame({"loss": [2.0] * 20}), False, {})
    assert npl.outcome(stuck, 8)["trained"] is False
    learnt = TrainResult(pd.DataFrame({"loss": [2.0] + [0.1] * 19}), False, {"test_err": 0.0})
    o = npl.outcome(learnt, 8)
    assert o["trained"] and not o["diverged"]
    blown = TrainResult(pd.DataFrame({"loss": [2.0, float("nan")]}), True, {})
    assert npl.outcome(blown, 8)["diverged"]


def test_outcome_records_convergence():
    import pandas as pd

    from skipanalysis.train import TrainResult

    flat = TrainResult(pd.DataFrame({"loss": [2.0] * 20}), False, {}, {"converged": True})
    assert npl.outcome(flat, 8)["converged"] is True
    assert npl.outcome(TrainResult(pd.DataFrame({"loss": [2.0] * 20}), False, {}),
                       8)["converged"] is False


def test_t1_inputs_pairs_seeds_at_the_deepest_depth():
    import pandas as pd

    rows = [{"norm": n, "depth": d, "seed": s, "layer": d, "block_grad": 1.0,
             "w2_grad": (2 if n == "post" else 1) * d + s} for n in ("post", "pre") for d in (2, 4)
            for s in (0, 1)]
    got = tnc.t1_inputs(pd.DataFrame(rows))
    assert got["depths"] == [2, 2, 4, 4]
    assert got["post"] == [4, 5, 8, 9] and got["pre"] == [2, 3, 4, 5]
    assert got["post_deepest"] == [8, 9] and got["pre_deepest"] == [4, 5]


def test_depth_sweep_reuses_matching_runs():
    import pandas as pd

    from skipanalysis import train

    ds = tasks.reversal_task(32, 4, 3, seed=0)
    cfg = train.TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=0.01, schedule="constant",
                            progress=False)
    done = pd.DataFrame(
        [{"norm": "pre", "depth": 1, "lr": 0.01, "warmup": 0, "seed": 0, "epochs": 1,
                          "trained": True, "diverged": False, "converged": True,
                          "final_loss": -1.0}])
    setting = Setting(ds, ds, cfg)
    out = npl.depth_sweep(_design(t3_seed_list=[0, 1]), setting, done=done, norms=("pre",))
    # seed 0 reused, seed 1 trained
    assert out.final_loss.tolist()[0] == -1.0 and out.final_loss.tolist()[1] > 0
    # with warm-up (Liu et al.'s protocol, full profile) the run without it is not reused, and the
    # rows say so
    warm = npl.depth_sweep(_design(t3_seed_list=[0], t3_warmup=3), setting, done=done,
                           norms=("pre",))
    assert warm.final_loss.tolist()[0] > 0 and warm.warmup.tolist() == [3]
    assert tnc.warmup_words(3) == "with 3 warm-up steps" and tnc.warmup_words(
        0) == "without warm-up"
    # T3's own budget (quick: half of T2's steps): a run of another length is not reused, and the
    # rows say so
    longer = npl.depth_sweep(_design(t3_seed_list=[0], t3_epochs=2), setting, done=done,
                             norms=("pre",))
    assert longer.final_loss.tolist()[0] > 0 and longer.epochs.tolist() == [2]


def test_t3_claim_headline_counts_runs_that_trained():
    import pandas as pd

    from skipanalysis.studies import transformer_norm_claims as tnc

    runs = pd.DataFrame(
        [{"norm": n, "depth": dp, "seed": s, "trained": n == "pre" or dp == 6, "diverged": False,
                          "converged": True} for n in ("post", "pre") for dp in (6, 24)
                         for s in range(6)])
    found = tnc.t3_claim(runs, 0.001, 6)
    d, headline = found.decision, found.headline
    assert d.verdict == "supported"
    assert headline.endswith(
        "depth 6: post-norm 6/6, pre-norm 6/6; depth 24: post-norm 0/6, pre-norm 6/6")


def test_runs_through_a_store_train_once_and_give_the_same_outcomes_and_encoders(tmp_path,
                                                                                 monkeypatch):
    import pandas as pd

    from skipanalysis import runs, train

    ds = tasks.reversal_task(32, 4, 3, seed=0)
    cfg = train.TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=0.01, schedule="constant",
                            progress=False)
    calls, real = [], train.train
    monkeypatch.setattr(npl.tr, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    setting = Setting(ds, ds, cfg, store=runs.RunStore(tmp_path / "store"))
    grid = lambda: npl.warmup_grid(  # noqa: E731
        _design(arms=[("post", 0), ("pre", 0)], seed_list=[0, 1]), setting)
    h1, o1, m1 = grid()
    assert len(calls) == 4
    h2, o2, m2 = grid()
    assert len(calls) == 4
    pd.testing.assert_frame_equal(o1, o2)
    pd.testing.assert_frame_equal(h1, h2)
    x = ds.tensors[0][:4]
    for k in m1:
        m1[k].eval(), m2[k].eval()
        assert torch.equal(m1[k](x), m2[k](x))  # the loaded encoder is the trained one
    t3 = _design(t3_depths=[1, 2], t3_seed_list=[0, 1])
    sweep = npl.depth_sweep(t3, setting, done=o1, norms=("pre",))
    assert len(calls) == 6 and sweep.depth.tolist() == [1, 1, 2, 2]  # depth 1 reused from the grid
    npl.depth_sweep(t3, setting, norms=("pre",))
    # without ``done`` too, every run loads: the sweep's runs are the grid's runs
    assert len(calls) == 6


def test_settle_stuck_retrains_only_stuck_unconverged_runs_for_twice_the_steps(monkeypatch):
    import pandas as pd

    from skipanalysis import train

    ds = tasks.reversal_task(32, 4, 3, seed=0)
    cfg = train.TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=0.01, schedule="constant",
                            progress=False)
    row = {"norm": "post", "depth": 1, "lr": 0.01, "warmup": 0, "trained": False, "diverged": False}
    outs = pd.DataFrame(
        [{**row, "seed": 0, "converged": False}, {**row, "seed": 1, "converged": True},
                         {**row, "seed": 2, "converged": False, "trained": True}])
    seen, real = [], train.train
    monkeypatch.setattr(npl.tr, "train", lambda m, d, c, *a, **k: seen.append(c.epochs)
                        or real(m, d, c, *a, **k))
    setting = Setting(ds, ds, cfg)
    out = npl.settle_stuck(outs, _design(), setting)
    assert seen == [2.0]  # only seed 0: stuck and still falling; at twice the epochs
    # independently: the same run trained directly for two epochs, judged by ``outcome``
    twice = npl._train(
        [("post", 1, train.TrainConfig(epochs=2, batch_size=16, optimizer="adam", lr=0.01,
                                                      schedule="constant", seed=0,
                                                      progress=False))],
                       _design(), setting, False, "check")
    vocab = int(ds.tensors[1].max()) + 1
    assert out.stuck_at_2x.tolist()[0] is (not npl.outcome(twice[0][0], vocab)["trained"])
    assert out.stuck_at_2x.isna().tolist()[1:] == [True, True]
    # nothing stuck: nothing trained
    assert "stuck_at_2x" in npl.settle_stuck(outs.iloc[1:], _design(), setting)
    assert seen == [2.0, 2.0]


def test_t2_claim_headline_counts_a_slow_run_as_trained():
    import pandas as pd

    arms = (("post", 0), ("post", 50), ("pre", 0))
    rows = [{"norm": n, "lr": 0.003, "warmup": w, "seed": s, "depth": 6, "diverged": False,
             "converged": True,
             "trained": not (n == "post" and w == 0 and s < 3), "stuck_at_2x": None} for n,
            w in arms for s in range(6)]
    rows[0].update(converged=False, stuck_at_2x=False)  # stuck at 300 steps, trained at 600: slow
    found = tnc.t2_claim(pd.DataFrame(rows), [0.003], 6)
    d, headline = found.decision, found.headline
    assert headline.startswith(
        "post-norm without warm-up fails in 2/6 at lr 0.003 (1 more trained only at twice")
    assert (d.numbers["trained"]["post lr=0.003 warmup=0"] == "4/6"
            and "not converged" not in d.numbers)
