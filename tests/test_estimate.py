"""make plan PROFILE=full (skipanalysis.pipeline.estimate): the full profile's runs counted by hand
and from the papers, the hours summed by hand from a known timer, other devices' tables read back,
bad input in one line."""

import json

import pandas as pd
import pytest
import torch

from skipanalysis.pipeline import estimate as es
from skipanalysis.pipeline import estimate_work as ew

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def work():
    return es.full_work()


def test_01_trains_he_et_al_s_64k_iterations(work):
    w01 = [w for w in work if w.notebook == "01_degradation"]
    # 163.84 epochs of 391 batches: He's 64k
    assert {w.steps for w in w01 if w.what == "depth grid"} == {64_061}
    grid = [w for w in w01 if w.what == "depth grid"]
    assert len(grid) == 2 * 5 and all(w.runs == 5 and w.batch == 128 for w in grid)


def test_08_runs_by_hand(work):
    w08 = {w.net.family: w for w in work if w.notebook == "08_param_efficiency"}
    # rate grid: 2 rates x 2 seeds; then the other 3 seeds; the pair and the control also on 2
    # scarce sizes x 5 seeds
    assert w08["resnet-20"].runs == 2 * 2 + 3
    assert (w08["densenet-16"].runs == w08["bottleneck-resnet-164"].runs == w08["resnet-56"].runs
            == 7 + 2 * 5)
    assert len(w08) == 8 and {w.steps for w in w08.values()} == {32_000} and {
        w.batch for w in w08.values()} == {64}


def test_06_counts_the_elastic_copies_and_the_budget_check(work):
    w06 = [w for w in work if w.notebook == "06_unet_skips"]
    # slices x tiles a slice x (the slice and its 3 elastic copies)
    tiles = 24 * (512 // 128) ** 2 * (1 + 3)
    steps = 60 * -(-tiles // 16)
    assert {w.steps for w in w06} == {steps, 2 * steps}
    # seeds and the selection seed at 2 rates
    assert sum(w.runs for w in w06 if w.steps == steps) == 3 * (5 + 2)


def test_05_counts_a_reused_run_once():
    p = {"batch_size": 128, "epochs": 5.0, "t3_epochs": 5.0, "n_train": 1280, "depth": 12,
         "lrs": [0.001, 0.003],
         "warmup": 400, "seeds": 3, "t3_warmup": 400, "t3_lr": 0.001, "t3_depths": [6, 12],
         "t3_seeds": 3,
         "seq_len": 8, "vocab": 8, "d_model": 16, "n_heads": 2, "d_ff": 32, "text_path": "",
         "text_seq_len": 16}
    t3 = [w for w in ew.work_05(p) if w.what == "T3: depth sweep"]
    # post-norm at depth 12 with the grid's warm-up and rate is a warm-up grid run already; pre-norm
    # with warm-up is not
    assert sorted((w.net.family, w.net.depth) for w in t3) == [("encoder-post-8", 6),
                                                               ("encoder-pre-8", 6),
                                                                ("encoder-pre-8", 12)]
    assert not any("text" in w.what for w in ew.work_05(p))
    assert any("text" in w.what for w in ew.work_05({**p, "text_path": "x.txt"}))


def test_depth_fit_by_hand():
    assert es.depth_fit([20, 56], [1.0, 2.0], 110) == pytest.approx(1.0 + (110 - 20) / 36)
    assert es.depth_fit([20, 56], [1.0, 2.0], 2) == 1.0  # never below the cheapest measured
    assert es.timed_depths([110, 20, 56, 32, 44]) == [20, 44]


def test_price_sums_hours_by_hand_and_scales_a_cpu_batch():
    net = lambda d: ew.cifar_net("plain", d)  # noqa: E731
    work = [ew.Work("01_degradation", "grid", net(20), 5, 1000, 128),
            ew.Work("01_degradation", "grid", net(56), 5,
                                                                              1000, 128),
            ew.Work("01_degradation", "grid", net(110), 2, 100, 128),
            ew.Work("07", "eval", net(20), 1, 30, 128, 1)]
    seen = []

    def timer(n, batch, device):
        seen.append((n.depth, batch))
        return 0.001 * n.depth * batch

    priced = es.price(work, CPU, timer=timer)
    # a CPU times 16 of the 128 once per depth; 110 is fitted
    assert sorted(seen) == [(20, 16), (56, 16)]
    s110 = 0.001 * 110 * 128  # the line through (20, 2.56) and (56, 7.168) s reaches 110 exactly
    assert priced.s_per_step.tolist() == pytest.approx([2.56, 7.168, s110, 2.56])
    by_hand = (5 * 1000 * 2.56 + 5 * 1000 * 7.168 + 2 * 100 * s110 + 30 * 2.56 / 3) / 3600
    assert priced.hours.sum() == pytest.approx(by_hand)
    assert priced.timed.tolist() == [True, True, False, True]
    summary = es.table(priced, {"card": pd.Series({"01_degradation": 1.0})})
    assert summary.loc["all", "hours"] == pytest.approx(by_hand)
    assert summary.loc["01_degradation", "hours on card"] == 1.0


def test_a_saved_table_is_read_back(tmp_path):
    priced = pd.DataFrame(
        [{"notebook": "03_equivalence", "what": "x", "net": "n", "runs": 1, "steps": 3600,
                            "batch": 1, "passes": 3, "timed": True, "s_per_step": 1.0,
                            "hours": 1.0}])
    es.save(tmp_path / "card.json", CPU, priced, es.table(priced))
    read = es.card_tables(tmp_path)
    (where, hours), = read.items()
    assert hours.to_dict() == {"03_equivalence": 1.0} and where == es.where_of(CPU)
    assert json.loads((tmp_path / "card.json").read_text())["left_out"] == es.LEFT_OUT


def test_step_seconds_times_a_real_step():
    net = ew.Net("tiny", 1, lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)),
                 (3, 2, 2))
    assert 0 < es.step_seconds(net, 4, CPU, min_run_time=0.01) < 1


def test_a_bad_device_is_one_line(capsys):
    assert es.main(["--device", "tpu", "--only", "03_equivalence"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_a_kept_gpu_check_prices_01_exactly_and_scales_the_rest(tmp_path):
    priced = pd.DataFrame([
        {"notebook": "01_degradation", "family": "plain", "depth": 20, "runs": 2, "steps": 100,
         "batch": 10,
         "hours": 4.0},
        {"notebook": "01_degradation", "family": "plain", "depth": 110, "runs": 1, "steps": 100,
         "batch": 10,
         "hours": 6.0},
        {"notebook": "08_param_efficiency", "family": "resnet-20", "depth": 20, "runs": 1,
         "steps": 1, "batch": 1,
         "hours": 5.0}])
    kept = {"machine": {"gpu": "Card X, 80 GiB"}, "calls": [
        {"rates": [{"kind": "plain", "depth": 20, "alone": 1.0}]},  # replaced by the later call's
        {"rates": [{"kind": "plain", "depth": 20, "alone": 1000.0},
                   {"kind": "plain", "depth": 110, "alone": 100.0}]}]}
    (tmp_path / "card.json").write_text(json.dumps(kept))
    (name, hours), = es.gpu_check_tables(priced, tmp_path).items()
    card01 = (2 * 100 * 10 / 1000 + 1 * 100 * 10 / 100) / 3600  # images over images/s
    assert hours["01_degradation"] == pytest.approx(card01)
    assert hours["08_param_efficiency"] == pytest.approx(5.0 * card01 / 10.0)
    assert name.startswith("Card X (01 measured")
    assert es.gpu_check_tables(priced[priced.notebook != "01_degradation"], tmp_path) == {}


def test_the_kept_h200_check_gives_the_hours_it_recorded(work):
    """01's card hours from the kept gpu-check file through this module agree with the hours
    gpu_check.estimate wrote into that file when it ran (42.5 h one run at a time), on the same
    full-profile runs."""
    kept = json.loads((es.GPU_CHECK_DIR / "cuda-nvidia-h200.json").read_text())
    rows = pd.DataFrame(
        [{"notebook": w.notebook, "family": w.net.family, "depth": w.net.depth, "runs": w.runs,
                          "steps": w.steps, "batch": w.batch, "hours": 1.0} for w in work
                         if w.notebook == "01_degradation"])
    (_, hours), = es.gpu_check_tables(rows).items()
    assert hours["01_degradation"] == pytest.approx(kept["estimate_01_full"]["alone_hours"],
                                                    abs=0.05)
    assert rows.runs.sum() == kept["estimate_01_full"]["runs"]


def test_the_table_goes_between_the_marks_and_nowhere_else(tmp_path):
    priced = pd.DataFrame(
        [{"notebook": "03_equivalence", "family": "n", "depth": 1, "runs": 2, "steps": 3600,
                            "batch": 1, "passes": 3, "hours": 2.0}])
    text = es.markdown(es.table(priced), CPU)
    assert "| 03_equivalence | 2 | 2.0 |" in text and "| all | 2 | 2.0 |" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"top\n{es.ESTIMATE_BEGIN}\nold\n{es.ESTIMATE_END}\nbottom\n")
    assert es.write_between(readme, es.ESTIMATE_BEGIN, es.ESTIMATE_END, text)
    assert readme.read_text() == f"top\n{es.ESTIMATE_BEGIN}\n{text}\n{es.ESTIMATE_END}\nbottom\n"
    (tmp_path / "other.md").write_text("no marks\n")
    assert not es.write_between(tmp_path / "other.md", es.ESTIMATE_BEGIN, es.ESTIMATE_END, text)
    assert (tmp_path / "other.md").read_text() == "no marks\n"


def test_05_reuses_what_depth_sweep_loads_and_nothing_else():
    p = {"batch_size": 128, "epochs": 5.0, "t3_epochs": 5.0, "n_train": 1280, "depth": 12,
         "lrs": [0.001],
         "warmup": 400, "seeds": 3, "t3_warmup": 0, "t3_lr": 0.001, "t3_depths": [12],
         "t3_seeds": 5,
         "seq_len": 8, "vocab": 8, "d_model": 16, "n_heads": 2, "d_ff": 32, "text_path": "",
         "text_seq_len": 16}
    runs = lambda q: {w.net.family: w.runs for w in ew.work_05(q) if w.what == "T3: depth sweep"}  # noqa: E731
    # no warm-up: both placements' grid runs at depth 12 serve the sweep, for the 3 seeds both lists
    # hold
    assert runs(p) == {"encoder-post-8": 2, "encoder-pre-8": 2}
    # another length (quick: t3_epochs 3 against epochs 6) or a rate outside the grid: nothing loads
    assert runs({**p, "t3_epochs": 3.0}) == runs({**p, "t3_lr": 0.01}) == {"encoder-post-8": 5,
                                                                           "encoder-pre-8": 5}


def test_01_counts_d3_s_own_scratch_arm_when_its_budget_differs():
    p = {"epochs": 10.0, "construct_epochs": 10.0, "batch_size": 100, "n_train": 1000,
         "depths": [8, 14],
         "seeds": 3, "highway_seeds": 3, "lrs": [0.1]}
    # D1's twice-the-budget runs serve
    assert not any(w.what == "D3: from scratch" for w in ew.work_01(p))
    (scratch,) = [w for w in ew.work_01({**p, "construct_epochs": 5.0})
                  if w.what == "D3: from scratch"]
    assert (scratch.runs, scratch.steps) == (3, 100 + 50)


def test_rate_choices_count_their_runs():
    assert ew.selection_runs(5, [0.1]) == 5
    assert ew.selection_runs(5, [0.05, 0.1]) == 7
    assert ew.selection_runs(5, [0.05, 0.1], "each") == 10
    assert ew.selection_runs(5, [0.05, 0.1], "first") == 6
