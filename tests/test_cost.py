"""Notebook 04's counters against hand-worked numbers and against each other."""

import pandas as pd
import pytest
import torch
from torch import nn

from skipanalysis.measure import flops, memory, timing
from skipanalysis.measure import machines as hwfiles
from skipanalysis.models import DenseBlock
from skipanalysis.studies import cost, cost_claims


def test_conv_and_linear_flops_by_hand():
    conv = nn.Conv2d(3, 8, 3, stride=1, padding=1, bias=False)
    x = torch.randn(1, 3, 10, 10)
    macs = 8 * 10 * 10 * 3 * 3 * 3  # out channels x positions x (in channels x kernel area)
    assert flops.conv_macs(3, 8, 3, 10, 10) == macs == 21600
    assert flops.fvcore_flops(conv, x)["total"] == macs
    assert flops.torch_flops(conv, x) == 2 * macs
    lin = nn.Linear(20, 7)
    v = torch.randn(5, 20)
    assert flops.fvcore_flops(lin, v)["total"] == 5 * 20 * 7
    assert flops.torch_flops(lin, v) == 2 * 5 * 20 * 7


def test_counters_agree_up_to_factor_two_on_convs_and_matmuls():
    m = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 1),
                      nn.Flatten(),
                      nn.Linear(4 * 6 * 6, 5))
    x = torch.randn(2, 3, 8, 8)
    fv = flops.fvcore_flops(m, x)
    assert flops.torch_flops(m, x) == pytest.approx(2 * (fv["conv"] + fv["linear"]))
    assert fv["total"] > fv["conv"] + fv["linear"]  # fvcore also counts batch norm


def test_reference_parameter_counts():
    assert flops.count_params(flops.torchvision_model("resnet50")) == 25_557_032
    assert flops.count_params(flops.torchvision_model("densenet121")) == 7_978_856


def test_saved_bytes_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    # Linear 1 saves its input (5x4); ReLU saves its output (5x3), which Linear 2 saves again (same
    # storage,
    # counted once); weights are parameters and do not count. float32: (20 + 15) * 4 bytes.
    assert memory.saved_bytes(net, x) == (20 + 15) * 4


def test_checkpointed_block_matches_plain_block():
    torch.manual_seed(0)
    plain = DenseBlock(6, 4, 3).double()
    eff = memory.EfficientDenseBlock(6, 4, 3).double()
    eff.load_state_dict(plain.state_dict())
    x1 = torch.randn(2, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = plain(x1), eff(x2)
    assert torch.allclose(y1, y2, atol=1e-12)
    y1.square().sum().backward()
    y2.square().sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)
    for (n, p), q in zip(plain.named_parameters(), eff.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-10), n
    x = torch.randn(4, 6, 8, 8, dtype=torch.float64)
    assert memory.saved_bytes(eff, x) < memory.saved_bytes(plain, x)


def test_poly_fits_recovers_exact_curves():
    xs = [1, 2, 3, 4, 5]
    lin = cost.poly_fits(xs, [3 * v + 2 for v in xs])
    assert lin["linear_r2"] == pytest.approx(1) and abs(lin["quadratic_share_at_max"]) < 1e-9
    quad = cost.poly_fits(xs, [v * v for v in xs])
    assert quad["quadratic_share_at_max"] == pytest.approx(1) and quad["linear_r2"] < 1


def test_hardware_file_round_trip(tmp_path):
    fp = {"device": "cpu", "cpu_model": "Test CPU @ 3GHz", "torch_threads": 4,
          "date": "2026-01-01T00:00:00+00:00"}
    numbers = {"peaks": {"flops": 1e11, "bytes_per_s": 2e10},
               "timing": [{"model": "resnet50", "median_s": 0.1}]}
    path = hwfiles.write_hardware_file(tmp_path, fp, numbers, "abc123", {"torch": "x"})
    assert path.name == "cpu-test-cpu-3ghz-4t.json"
    loaded = hwfiles.load_hardware_files(tmp_path)
    assert loaded["cpu-test-cpu-3ghz-4t"]["numbers"] == numbers
    assert loaded["cpu-test-cpu-3ghz-4t"]["git_commit"] == "abc123"


def test_time_it_reports_median_and_iqr():
    r = timing.time_it(lambda: sum(range(1000)), torch.device("cpu"), 0.05)
    assert r["runs"] >= 5 and r["median_s"] > 0 and r["iqr_s"] >= 0


def test_interleaved_times_pairs_rounds():
    calls = []
    out = timing.interleaved_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                 torch.device("cpu"), repeats=4, min_run_time=0.0)
    assert [len(v) for v in out.values()] == [4, 4] and all(t > 0 for v in out.values() for t in v)
    # after two warm-up/sizing calls each, one call per round, in alternating order
    assert calls[4:] == ["a", "b", "b", "a", "a", "b", "b", "a"]


def _hw(device_type, times=True, dense_slower=1.3):
    wob = [1.0, 1.02, 0.98, 1.01, 0.99]
    row = lambda m, t: {"model": m, "batch": 8, "pass": "fwd+bwd", "variant": "fp32", "median_s": t,  # noqa: E731
                        "per_image_s": t / 8, **({"times": [t * w for w in wob]} if times else {})}
    load = lambda m, t: {"model": m, "bytes": 1000, "median_s": t, "times": [t * w for w in wob]}  # noqa: E731
    fp = {"device": device_type, "cpu_model": "Test CPU", "torch_threads": 2}
    if device_type == "cuda":
        fp["cuda_devices"] = [{"name": "Test GPU"}]
    return {"machine": f"{device_type}-test", "fingerprint": fp, "numbers": {
        "device_type": device_type, "time_size": 128,
        "counts": [
            {"model": "resnet50", "parameters": 25_557_032, "fvcore GMAC (1/multiply-add)": 4.1,
                    "bytes moved (MB, estimate)": 360.0},
                   {"model": "densenet121", "parameters": 7_978_856,
                    "fvcore GMAC (1/multiply-add)": 2.9,
                    "bytes moved (MB, estimate)": 377.0}],
        "timing": [row("resnet50", 1.0), row("densenet121", dense_slower)],
        **({"weight_load": [load("resnet50", 0.10), load("densenet121", 0.04)]} if times else {})}}


def test_device_claims_gpu_cpu_and_old_files():
    gpu = {f.claim: f for f in cost_claims.device_claims(_hw("cuda"))}
    assert gpu["C6"].decision.verdict == "supported" and gpu["C8"].decision.verdict == "supported"
    assert gpu["C6"].device == "cuda (Test GPU)"
    cpu = {f.claim: f for f in cost_claims.device_claims(_hw("cpu", dense_slower=0.8))}
    # a CPU number is never a verdict on a GPU claim
    assert cpu["C6"].decision.verdict == "not measured here"
    assert cpu["C8"].decision.verdict == "refuted"  # DenseNet-121 also trains faster there
    old = {f.claim: f for f in cost_claims.device_claims(_hw("cuda", times=False))}
    assert old["C6"].decision.verdict == old["C8"].decision.verdict == "inconclusive"


def test_machine_claims_mark_unmeasured_types_and_record_in_one_call(tmp_path):
    from skipanalysis.claims import ClaimBook

    found = cost_claims.machine_claims({"cpu-test": _hw("cpu")})
    book = ClaimBook("04_cost", tmp_path, "cpu (Test CPU, 2 threads)", "smoke")
    book.add(*found)
    assert [(r["id"], r["device"]) for r in book.to_dict()["claims"]] == [(f.claim, f.device)
                                                                          for f in found]
    rows = {(r.claim, r.device): r.verdict for r in cost_claims.machine_table(found).itertuples()}
    assert rows[("C6", "cuda (no machine measured)")] == "not measured here"
    assert ("C6", "xla (no machine measured)") not in rows  # C6 is a GPU claim
    assert rows[("C8", "xla (no machine measured)")] == "not measured here"
    assert ("C8", "cpu (no machine measured)") not in rows


def test_weight_load_times_reads_files(tmp_path):
    t = cost.weight_load_times(["resnet18"], torch.device("cpu"), repeats=2, folder=tmp_path)
    assert t.loc[0, "bytes"] > 4 * 11_000_000 and len(t.loc[0, "times"]) == 2
    assert not list(tmp_path.iterdir())  # the temporary weight files are gone


def test_count_claims_read_the_published_counts():
    import pandas as pd

    counts = pd.DataFrame({"parameters": [25_557_032, 7_978_856], cost_claims.FVCORE: [4.11, 2.87],
                           cost_claims.FLOP_COUNTER: [8.18, 5.67]},
                          index=["resnet50", "densenet121"])
    f1, f2 = cost_claims.count_claims(counts, 224)
    assert (f1.claim, f1.decision.verdict, f2.claim, f2.decision.verdict) == ("C1", "verified",
                                                                              "C2", "verified")
    assert ("0.31 of ResNet-50's 25.56M" in f1.headline
            and "2.87 GMAC vs ResNet-50's 4.11" in f2.headline)


def test_measurements_are_made_once_per_machine_and_parameters(tmp_path, monkeypatch):
    from skipanalysis import runs

    calls, real = [], cost.count_table
    monkeypatch.setattr(cost, "count_table", lambda *a, **k: calls.append(1) or real(*a, **k))
    params = {"models": ["squeezenet1_1"], "hybrids": [], "flop_size": 32, "time_size": 64,
              "batch_sizes": [1],
              "repeats": 2, "min_run_time": 0.0, "block_layers": [1, 2], "growth": 4,
              "block_size": 8,
              "block_batch": 2, "profile": "a plotting-only parameter"}
    store = runs.RunStore(tmp_path / "store")
    here = {"device": "cpu", "cpu_model": "Test CPU", "torch_threads": 2}
    dev = torch.device("cpu")
    a = cost.measurements(params, dev, here, tmp_path, store)
    # torchvision's count
    assert len(calls) == 1 and a["counts"].loc["squeezenet1_1"].parameters == 1_235_496
    b = cost.measurements({**params, "profile": "another"}, dev, here, tmp_path, store)
    assert len(calls) == 1  # loaded: the same numbers, the same hardware-file entry
    pd.testing.assert_frame_equal(a["timing"], b["timing"])
    assert (a["numbers"]["timing"] == b["numbers"]["timing"]
            and a["numbers"]["run"] == b["numbers"]["run"])
    # another machine: measured
    cost.measurements(params, dev, {**here, "torch_threads": 1}, tmp_path, store)
    assert len(calls) == 2
    assert not list(tmp_path.glob("weights-*"))  # the weight files are gone


def test_whole_model_memory_scales_with_the_batch_and_leaves_weights_out():
    one = cost.model_memory(64, 1, {"resnet18": 18}).iloc[0]
    two = cost.model_memory(64, 2, {"resnet18": 18}).iloc[0]
    # activations double; per-channel statistics do not
    assert 1.9 < two.saved_bytes / one.saved_bytes <= 2.0
    # the 44 MiB of weights are not counted as saved activations
    assert one.saved_bytes < 4 * one.parameters
    assert (one.family, one.depth, one.parameters) == ("ResNet", 18, 11_689_512)


def test_the_efficient_densenet_keeps_outputs_and_gradients_and_the_allocator_peak_needs_cuda():
    from skipanalysis.models import create

    torch.manual_seed(0)
    naive = create("densenet-2")
    eff = memory.efficient(naive)
    # 2 layers in each of 3 blocks
    assert sum(type(m) is memory.EfficientDenseLayer for m in eff.modules()) == 6
    x = torch.randn(2, 3, 8, 8)
    for m in (naive, eff):
        m.train()
        m.zero_grad(set_to_none=True)
        m(x).sum().backward()
    assert torch.allclose(naive(x), eff(x), atol=1e-6)
    for (name, a), b in zip(naive.named_parameters(), eff.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name
    # a CPU has no allocator peak: C7 says so
    assert memory.allocator_peaks(naive, 2, 8, "cpu") is None
    assert cost.densenet_peaks("cpu") is None
    rows = [{"block": b, "layers": n, "saved_bytes": 1000 * n + (5 * n * n if b == "dense" else 0),
             "times": [1.0] * 5}
            for b in ("dense", "dense (checkpointed)", "residual") for n in (2, 4, 8)]
    found = cost_claims.memory_claims(pd.DataFrame(rows), [2, 4, 8], {}, None)
    assert found[1].evidence["allocator_peaks"] == "CUDA only: not measured on this device"
    if not torch.cuda.is_available():
        pytest.skip("the allocator's peak is read on CUDA only (no GPU here); "
                    "the CPU path is checked above")
    peaks = memory.allocator_peaks(create("densenet-16"), 64, 32, "cuda")
    assert 0 < peaks["efficient"] < peaks["naive"]  # Pleiss et al.: 1.605 against 2.863 GB
