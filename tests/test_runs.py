"""The run store (skipanalysis.runs): keys, reuse, atomic records, corrupt records set aside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
import torch

from skipanalysis import data, executors, keys, masked_text, runs, tasks, train
from skipanalysis.setting import Setting
from skipanalysis.studies import degradation as dg
from skipanalysis.studies import degradation_construction as dc

from conftest import ROOT


def test_the_key_follows_config_and_code_only():
    base = {"name": "plain-8", "seed": 0, "recipe": {"lr": 0.1, "epochs": 1}}
    key = keys.run_key(base, "code-a")
    # the same config, rebuilt: the same key
    assert keys.run_key(json.loads(json.dumps(base)), "code-a") == key
    assert keys.run_key({**base, "seed": 1}, "code-a") != key
    assert keys.run_key({**base, "recipe": {"lr": 0.05, "epochs": 1}}, "code-a") != key
    assert keys.run_key(base, "code-b") != key  # changed training code
    assert keys.code_fingerprint() == keys.code_fingerprint() and len(keys.code_fingerprint()) == 64


def test_reflowing_code_does_not_change_the_key_but_a_real_edit_does():
    """A formatter's work (a call over several lines, spacing, indentation width, quotes, a trailing
    comma in a call, a long string split into adjacent literals, brackets that group nothing) keeps
    the key; moving a statement out of its block, a trailing comma that makes a tuple, or another
    constant changes it."""
    one = "def f(a, b):\n    if a:\n        y = g(a, b, key=1, s='one two')\n    return y\n"
    reflowed = ("def f(a,\n      b):\n  if (a):\n    y = g(\n        a, b,\n        key = 1,\n"
                "        s=\"one \"\n          \"two\",\n    )\n  return y\n")
    assert keys.code_text(one) == keys.code_text(reflowed)
    assert keys.code_text(one) != keys.code_text(one.replace("    return y", "        return y"))
    assert keys.code_text("x = (a)\n") != keys.code_text("x = (a,)\n")
    assert keys.code_text(one) != keys.code_text(one.replace("key=1", "key=2"))
    assert keys.code_text("x = 1\n") != keys.code_text("x = 1.0\n") != keys.code_text("x = True\n")


def test_a_method_whose_string_runs_on_at_column_0_reads_as_the_same_function():
    """``inspect.getsource`` of a method keeps its indentation, which ``dedent`` cannot strip when a
    string inside runs on at column 0: it still reads as the function written at the top level."""
    method = '    def m(self):\n        """Doc."""\n        s = """a\nb"""\n        return s\n'
    top = 'def m(self):\n    s = """a\nb"""\n    return s\n'
    assert keys.code_text(method) == keys.code_text(top)
    assert keys.code_text(method) != keys.code_text(top.replace('"""a', '"""c'))


def test_the_code_text_is_the_syntax_tree_written_out_the_same_on_every_python():
    """Written out by hand from the grammar (``ast`` documents the node types): the f-string's
    parts, its conversion (``ord("r")``) and format spec; no ``ctx`` and no field a newer Python
    adds empty."""
    assert keys.code_text('x = f"{a!r:>4}" + "b"\n') == (
        "Assign(targets=[Name(id='x')], "
        "value=BinOp(left=JoinedStr(values=[FormattedValue(value=Name(id='a'), conversion=114, "
        "format_spec=JoinedStr(values=[Constant(value='>4')]))]), op=Add(), "
        "right=Constant(value='b')))")


def test_comments_docstrings_and_blank_lines_do_not_change_the_code_key(tmp_path):
    before = 'def f(x):\n    """Square."""\n    return x * x  # the square\n'
    reworded = ('\n\ndef f(x):\n    """The square of x,\n    reworded."""\n\n'
                '    return x * x   # squared\n')
    edited = 'def f(x):\n    """Square."""\n    return x * x + 1  # the square\n'
    assert keys.code_text(before) == keys.code_text(reworded) == (
        "FunctionDef(name='f', args=arguments(args=[arg(arg='x')]), "
        "body=[Return(value=BinOp(left=Name(id='x'), op=Mult(), right=Name(id='x')))])")
    assert keys.code_text(edited) != keys.code_text(before)
    kept = "Assign(targets=[Name(id='s')], value=Constant(value='# kept'))"
    assert keys.code_text('s = """# kept"""  # dropped') == kept  # a string is code, not a comment
    found = []
    for text in (before, reworded, edited):
        (tmp_path / "m.py").write_text(text)
        found.append(keys.code_fingerprint(("m.py",), root=tmp_path))
    assert found[0] == found[1] != found[2]


def _run_a(config):
    return config["seed"], None


def _run_b(config):
    return config["seed"] + 1, None


def test_the_helpers_a_run_function_reaches_are_part_of_the_key(monkeypatch):
    from skipanalysis.studies import gradient_flow_lesions as gfl

    before = keys.fn_fingerprint(gfl.g5_run, "c")
    assert {"g5_run", "lesion_study", "single_lesions",
            "path_gradients"} <= {o.__name__ for o in keys._reached(gfl.g5_run)}
    # the training code is fingerprinted whole instead
    monkeypatch.setattr(train, "train", lambda *a, **k: None)
    assert keys.fn_fingerprint(gfl.g5_run, "c") == before
    # an edited helper: another key
    monkeypatch.setattr(gfl, "single_lesions", lambda *a, **k: None)
    assert keys.fn_fingerprint(gfl.g5_run, "c") != before


def test_run_keys_follow_the_code_they_reach(monkeypatch):
    """01's runs are keyed by the CIFAR model files and the helpers their run function reaches:
    editing the text task or the transformer leaves them alone; what the CIFAR loader returns is in
    their config."""
    from skipanalysis.studies import transformer_norm as npl

    read = []
    real = keys.code_fingerprint
    monkeypatch.setattr(keys, "code_fingerprint", lambda paths=keys.TRAINING_CODE, root=keys.ROOT:
                        read.append(paths) or real(paths, root))
    keys._model_files.cache_clear()
    cifar = {"name": "resnet-20", "model_args": {"num_classes": 10, "width": 1, "in_channels": 3}}
    state = torch.random.get_rng_state()
    key = keys.model_fingerprint(cifar)
    # reading the files draws no random numbers
    assert torch.equal(torch.random.get_rng_state(), state)
    assert set(read[-1]) == {"skipanalysis/models/factory.py", "skipanalysis/models/resnet.py",
                             "skipanalysis/models/blocks.py"}
    keys.model_fingerprint({**cifar, "name": "highway-20"})
    assert ("skipanalysis/models/highway.py" in read[-1]
            and "skipanalysis/models/transformer.py" not in read[-1])
    # no net named: every file
    assert keys.model_fingerprint({"name": "loss-surface"}) == real(keys.MODEL_CODE)
    keys._model_files.cache_clear()
    assert keys.model_fingerprint(cifar) == key

    reached = {o.__name__ for o in keys._reached(dg.train_run)}
    # data helpers count function by function
    assert "to_device" in reached and "text_task" not in reached
    before01, before05 = keys.fn_fingerprint(dg.train_run, "c"), keys.fn_fingerprint(npl.t4_study,
                                                                                     "c")
    monkeypatch.setattr(masked_text, "text_task", lambda *a, **k: None)  # edited sequence tasks
    monkeypatch.setattr(tasks, "local_task", lambda *a, **k: None)
    assert keys.fn_fingerprint(dg.train_run, "c") == before01
    # 05's T4 builds its task in the run: re-keyed
    assert keys.fn_fingerprint(npl.t4_study, "c") != before05

    def ids():  # the training data's fingerprint, as 01's configs hold it
        train_set, _ = data.load_classification("cifar10", 40, 20, 8, 0)
        return keys.tensor_fingerprint(*train_set.tensors[:2])
    first = ids()
    real_resize = data._resize
    monkeypatch.setattr(data, "_resize", lambda x, size,
                        chunk=4096: real_resize(x, size, chunk) * 0.5)
    assert ids() != first  # a CIFAR loader that returns other images: another config, another key


def test_a_study_s_run_function_is_part_of_the_key():
    assert keys.fn_fingerprint(_run_a, "c") == keys.fn_fingerprint(_run_a, "c")
    # another run function's source
    assert keys.fn_fingerprint(_run_a, "c") != keys.fn_fingerprint(_run_b, "c")
    # other training code
    assert keys.fn_fingerprint(_run_a, "c") != keys.fn_fingerprint(_run_a, "d")


@pytest.fixture()
def tiny():
    ds = tasks.texture_classification(64, 8, seed=0)
    return ds, ds, train.TrainConfig(epochs=1, batch_size=32, lr=0.05, progress=False)


PLAIN = dg.DepthRuns(("plain",), (8,), (0,))  # one plain net, one seed, the recipe's rate
BOTH = dg.DepthRuns(("plain", "residual"), (8,), (0, 1))


def _count_training(monkeypatch) -> list:
    calls, real = [], train.train
    monkeypatch.setattr(dg.tr, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_a_second_study_trains_nothing_and_gives_the_same_numbers(tmp_path, tiny, monkeypatch):
    ds, test, cfg = tiny
    calls = _count_training(monkeypatch)
    store = runs.RunStore(tmp_path / "store")
    h1, f1, m1 = dg.depth_study(BOTH, Setting(ds, test, cfg, store=store))
    assert len(calls) == 4
    # progress and labels are not part of a run: a notebook re-executed with other display settings
    # trains nothing
    h2, f2, m2 = dg.depth_study(BOTH, Setting(ds, test, replace(cfg, progress=True), store=store))
    assert len(calls) == 4
    assert f1[["train_err", "test_err", "converged"]].equals(
        f2[["train_err", "test_err", "converged"]])
    assert h1.reset_index(drop=True).equals(h2.reset_index(drop=True))
    x = ds.tensors[0][:8]
    for key in m1:
        m1[key].eval(), m2[key].eval()
        assert torch.equal(m1[key](x), m2[key](x))  # the loaded weights are the trained ones
    # one more seed: two runs
    dg.depth_study(BOTH.but(seeds=(0, 1, 2)), Setting(ds, test, cfg, store=store))
    assert len(calls) == 6
    # another rate: one run
    dg.depth_study(PLAIN, Setting(ds, test, replace(cfg, lr=0.01), store=store))
    assert len(calls) == 7


def test_a_killed_write_leaves_nothing_that_loads_and_a_corrupt_record_is_redone(tmp_path, tiny,
                                                                                 monkeypatch):
    ds, test, cfg = tiny
    store = runs.RunStore(tmp_path / "store")
    dg.depth_study(PLAIN, Setting(ds, test, cfg, store=store))
    (record,) = list(store.root.glob("??/*/record.json"))
    key = record.parent.name
    record.unlink()  # as if killed after the weights and before the record
    assert store.load(key) is None
    calls = _count_training(monkeypatch)
    dg.depth_study(PLAIN, Setting(ds, test, cfg, store=store))
    assert len(calls) == 1
    record.write_text(record.read_text()[:40])  # truncated
    assert store.load(key) is None and list((store.root / "corrupt").iterdir())
    dg.depth_study(PLAIN, Setting(ds, test, cfg, store=store))
    assert len(calls) == 2 and store.load(key)["key"] == key


def test_an_unwritable_store_is_one_line(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a folder")
    with pytest.raises(runs.StoreError,
                       match=r"run store .* is not writable .*; set SKIPANALYSIS_RUNS"):
        runs.RunStore(target / "store")


def test_ls_and_prune(tmp_path, tiny):
    ds, test, cfg = tiny
    dg.depth_study(PLAIN, Setting(ds, test, cfg, store=runs.RunStore(tmp_path / "s")))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "skipanalysis.runs", "ls", "--store", str(tmp_path / "s")],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "plain-8" in out.stdout and "1 run(s)" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "skipanalysis.runs", "prune", "--store", str(tmp_path / "s")],
                         capture_output=True, text=True, env=env)
    assert "removed 1 run(s)" in out.stdout and not list((tmp_path / "s").glob("??/*/record.json"))


def test_records_say_where_they_ran_and_travel_to_another_checkout(tmp_path, tiny):
    ds, test, cfg = tiny
    store = runs.RunStore(tmp_path / "server")
    _, f1, _ = dg.depth_study(PLAIN, Setting(ds, test, cfg, store=store))
    (rec,) = store.records()
    assert (rec["machine"]["executor"] == "local" and rec["machine"]["device"] == "cpu"
            and rec["machine"]["host"])
    assert torch.__version__.startswith(rec["versions"]["torch"])
    copied = tmp_path / "laptop"
    import shutil

    shutil.copytree(store.root, copied)  # the folder brought home from a GPU server
    calls = []
    real = train.train
    dg.tr.train = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        _, f2, _ = dg.depth_study(PLAIN, Setting(ds, test, cfg, store=runs.RunStore(copied)))
    finally:
        dg.tr.train = real
    assert not calls and f1.equals(f2)


def test_bad_executor_settings_are_one_line_before_any_run(monkeypatch):
    monkeypatch.setenv("EXECUTOR", "slurm")
    with pytest.raises(executors.StoreError,
                       match=r"^EXECUTOR=slurm is not allowed; choose one of local, ray"):
        executors.check_executor()
    monkeypatch.setenv("EXECUTOR", "ray")
    import socket

    with socket.socket() as s:  # a port on loopback that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    pytest.importorskip(
        "ray", reason="Ray is not installed (pip install -e '.[cluster]'); .ci/run installs it")
    unreachable = rf"^RAY_ADDRESS=127.0.0.1:{port} is not reachable .*unset RAY_ADDRESS"
    with pytest.raises(executors.StoreError, match=unreachable):
        executors.check_executor()
    monkeypatch.setenv("RAY_ADDRESS", "headnode")
    with pytest.raises(executors.StoreError,
                       match=r"^RAY_ADDRESS=headnode is not allowed; give host:port"):
        executors.check_executor()
    monkeypatch.delenv("RAY_ADDRESS")
    for bad in ("abc", "0", "1.5"):
        monkeypatch.setenv("RAY_GPUS_PER_RUN", bad)
        with pytest.raises(executors.StoreError, match=rf"^RAY_GPUS_PER_RUN={bad} is not allowed"):
            executors.check_executor()


def test_the_runner_rejects_a_bad_executor_and_changes_nothing(tmp_path):
    out = tmp_path / "reports" / "03_equivalence.ipynb"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXECUTOR": "dask"}
    proc = subprocess.run([sys.executable, "-m", "skipanalysis.pipeline.runner",
                           str(ROOT / "notebooks" / "03_equivalence.ipynb"),
                           str(out), "--profile", "smoke"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "EXECUTOR=dask is not allowed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "reports").exists()


def test_ray_gives_the_same_records_as_local_on_a_cpu(tmp_path, tiny, monkeypatch):
    """A real local Ray instance on loopback, started and stopped here: the same seeds give the same
    numbers."""
    ray = pytest.importorskip(
        "ray", reason="Ray is not installed (pip install -e '.[cluster]'); .ci/run installs it")
    ds, test, cfg = tiny
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a Ray task asks for one core and so runs on one thread; match it
    try:
        h_local, f_local, m_local = dg.depth_study(BOTH, Setting(ds, test, cfg,
                                                                 store=runs.RunStore(
                                                                     tmp_path / "local")))
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("EXECUTOR", "ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    import tempfile

    # Ray's socket paths must stay under 107 bytes
    short = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=short)
    try:
        store = runs.RunStore(tmp_path / "ray-store")
        h_ray, f_ray, m_ray = dg.depth_study(BOTH, Setting(ds, test, cfg, store=store))
    finally:
        ray.shutdown()
        import shutil

        shutil.rmtree(short, ignore_errors=True)
    assert f_ray.equals(f_local) and h_ray.equals(h_local)
    assert {r["machine"]["executor"] for r in store.records()} == {"ray"} and len(
        store.records()) == 4
    x = ds.tensors[0][:8]
    for key in m_local:
        assert torch.equal(m_local[key].eval()(x), m_ray[key].eval()(x))


P01 = {"dataset": "texture", "data_path": "", "n_train": 48, "n_test": 16, "image_size": 8,
       "seed": 0, "seeds": 2,
       "epochs": 1.0, "batch_size": 16, "lrs": [0.02, 0.05], "schedule": "onecycle",
       "milestones": [0.5, 0.75],
       "warmup_steps": 0, "warmup_lr": 0.01, "weight_decay": 1e-4, "eval_points": 2,
       "precision": "fp32",
       "augment": False, "width": 1, "gate_bias": -2.0, "warmup_min_depth": 110, "nesterov": True}


def test_the_landscape_notebook_loads_the_degradation_nets(tmp_path, monkeypatch):
    """07 asks for 01's nets with 01's parameters: with 01's runs in the store it trains nothing."""
    from skipanalysis.studies import loss_landscape as ls

    store = runs.RunStore(tmp_path / "store")
    p = {**P01, "depths": [14, 8]}
    prep = dg.prepare(p)
    # as 01 does
    _, grid01, models01 = dg.depth_study(dg.DepthRuns.from_params(p), prep.setting(store=store))
    calls = _count_training(monkeypatch)
    nets = dg.DepthRuns.from_params(p).but(seeds=[0, 1])
    table, models = ls.train_nets(nets, dg.prepare(p).setting(store=store))  # as 07 does
    assert not calls and len(table) == len(grid01) and set(models) == set(models01)
    x = prep.train.tensors[0][:4]
    for key, m in models.items():
        assert torch.equal(m(x), models01[key].eval()(x))
    # one seed more than 01 ran: 4 runs
    ls.train_nets(nets.but(seeds=[0, 1, 2]), dg.prepare(p).setting(store=store))
    assert len(calls) == 4


def test_a_notebook_that_reuses_runs_depends_on_their_parameters(tmp_path):
    """07 draws on 01's nets: its stamp holds 01's run-deciding section keys (smoke sets some; quick
    sets none, and then 01's notebook itself, a prerequisite of 07, carries its defaults)."""
    import yaml

    from skipanalysis.params import DEPTH_RUNS
    from skipanalysis.pipeline import deps

    nbs = [ROOT / "notebooks" / "01_degradation.ipynb",
           ROOT / "notebooks" / "07_loss_landscape.ipynb"]
    for profile in ("quick", "smoke"):
        out = tmp_path / profile
        mk = deps.write(nbs, profile, out).read_text()
        assert f"{out}/07_loss_landscape.ipynb: | {out}/01_degradation.ipynb" in mk
        line = next(x for x in mk.splitlines()
                    if x.startswith(f"{out}/07_loss_landscape.ipynb: {out}"))
        assert "notebooks/01_degradation.ipynb" in line
        stamp = yaml.safe_load((out / ".params" / "07_loss_landscape.yaml").read_text())
        sections = yaml.safe_load((ROOT / "notebooks" / "params" / f"{profile}.yaml").read_text())
        ours = sections["01_degradation"] or {}
        assert stamp.get("[01_degradation]", {}) == {k: v for k, v in ours.items()
                                                     if k in DEPTH_RUNS}
        assert all(stamp[k] == v for k, v in (sections["07_loss_landscape"] or {}).items())
    assert "margin" not in stamp["[01_degradation]"] and stamp["[01_degradation]"]["depths"] == [8,
                                                                                                 14]


def test_the_shared_keys_are_all_that_decide_01s_runs(tmp_path):
    """deps stamps 07 and 02 with params.DEPTH_RUNS of 01's section: prepare and
    DepthRuns.from_params must read no other key."""
    from skipanalysis.params import DEPTH_RUNS

    class Recording(dict):
        seen: set = set()

        def __getitem__(self, key):
            Recording.seen.add(key)
            return super().__getitem__(key)

    p = Recording({**P01, "depths": [8, 14], "margin": 0.02, "construct_epochs": 1.0})
    nets = dg.DepthRuns.from_params(p).but(kinds=("plain",), depths=(8,), seeds=(0,))
    dg.depth_study(nets, dg.prepare(p).setting(store=runs.RunStore(tmp_path / "s")))
    assert Recording.seen <= set(DEPTH_RUNS) and {"n_train", "epochs", "lrs", "seed",
                                                  "depths"} <= Recording.seen


def test_runs_made_under_other_versions_are_flagged(tmp_path, tiny, capsys):
    ds, test, cfg = tiny
    store = runs.RunStore(tmp_path / "store")
    dg.depth_study(PLAIN, Setting(ds, test, cfg, store=store))
    (path,) = list(store.root.glob("??/*/record.json"))
    assert runs.version_drift([json.loads(path.read_text())]) == {}
    record = json.loads(path.read_text())
    record["versions"]["torch"] = "1.0.0"
    path.write_text(json.dumps(record))
    capsys.readouterr()
    dg.depth_study(PLAIN, Setting(ds, test, cfg, store=store))  # loads the run, and says so
    out = capsys.readouterr().out
    assert (
        "1 run(s) loaded from the store were made under other package versions (torch ['1.0.0'] "
        "(here " in out)


def test_the_identity_construction_trains_on_once(tmp_path, tiny, monkeypatch):
    ds, test, cfg = tiny
    store = runs.RunStore(tmp_path / "store")
    _, final, models = dg.depth_study(PLAIN.but(depths=(8, 14), seeds=(0, 1)),
                                      Setting(ds, test, cfg, store=store))
    calls = _count_training(monkeypatch)
    d3, setting = dc.Construction(PLAIN.but(depths=(8, 14), seeds=(0, 1)), 1.0), Setting(
        ds, test, cfg, store=store)
    a = dc.construction_study(d3, setting, models, final)
    # per seed: the constructed net and the scratch net at the equal total budget
    assert len(calls) == 4
    b = dc.construction_study(d3, setting, models, final)
    assert len(calls) == 4  # loaded: the same table and verdict
    assert a.table.equals(b.table) and a.finding.decision.verdict == b.finding.decision.verdict
    assert a.per_seed.seed.tolist() == [0, 1] and a.finding.decision.numbers["seeds"] == 2
    # more epochs: trained again
    dc.construction_study(replace(d3, epochs=2.0), setting, models, final)
    assert len(calls) == 8


def test_a_recipe_survives_the_record_and_leaves_display_settings_out(monkeypatch):
    cfg = train.TrainConfig(lr=0.07, milestones=(0.3, 0.6), progress=False, desc="shown")
    recipe = json.loads(json.dumps(cfg.recipe()))  # as a run record keeps it
    assert "progress" not in recipe and "desc" not in recipe
    assert train.TrainConfig.from_recipe(recipe, progress=False, desc="shown") == cfg
    # a Ray task: the config's kind
    assert runs.task_device(None, {"device": "cpu"}) == (torch.device("cpu"), False)
    monkeypatch.delenv("SKIPANALYSIS_PROGRESS", raising=False)
    # JupyterLab: per-step bars
    assert runs.task_device("cpu", {"device": "cuda"}) == (torch.device("cpu"), True)
    # a kernel the runner started keeps per-step bars out of the notebook
    for runner_mode in ("off", "terminal"):
        monkeypatch.setenv("SKIPANALYSIS_PROGRESS", runner_mode)
        assert runs.task_device("cpu", {"device": "cpu"}) == (torch.device("cpu"), False)
    assert runs.state_of({"state": None, "weights": False}, None) is None


def test_worker_processes_give_the_numbers_of_one_thread_in_process(tmp_path, tiny, monkeypatch):
    """SKIPANALYSIS_WORKERS=2: the runs train in two joblib processes of one thread each, with the
    same numbers as one after another on one thread here, each record saying where it ran."""
    ds, test, cfg = tiny
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, here, _ = dg.depth_study(BOTH, Setting(ds, test, cfg))
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("SKIPANALYSIS_WORKERS", "2")
    store = runs.RunStore(tmp_path / "store")
    _, there, models = dg.depth_study(BOTH, Setting(ds, test, cfg, store=store))
    cols = ["kind", "depth", "seed", "train_err", "test_err"]
    pd.testing.assert_frame_equal(here[cols].reset_index(drop=True),
                                  there[cols].reset_index(drop=True))
    records = [json.loads(p.read_text()) for p in store.root.glob("??/*/record.json")]
    assert len(records) == 4 and {r["machine"]["executor"] for r in records} == {"processes"}
    assert {r["machine"]["threads"] for r in records} == {1} and len(models) == 4


def _bar_of(config, device=None):
    return {"bar": runs.task_device(device, config)[1]}, {}


def test_worker_processes_draw_no_per_step_bars(monkeypatch):
    """Per-step bars from several worker processes would interleave on make's terminal: a worker
    draws none (the kernel's bar counts the runs), while a run in the kernel's own process
    (JupyterLab's) still draws its own."""
    monkeypatch.delenv("SKIPANALYSIS_PROGRESS", raising=False)  # a kernel the runner did not start
    configs = [{"device": "cpu"}, {"device": "cpu"}]
    there = [out[1]["bar"] for out in runs._processes(_bar_of, configs, (), "cpu", 2)]
    here = [out[1]["bar"] for out in runs._local(_bar_of, configs, (), "cpu")]
    assert there == [False, False] and here == [True, True]


def test_bad_worker_count_is_one_line(monkeypatch):
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SKIPANALYSIS_WORKERS", bad)
        with pytest.raises(executors.StoreError,
                           match=f"SKIPANALYSIS_WORKERS={bad} is not allowed; give a whole"):
            executors.check_executor()


def test_longest_first_starts_unknown_then_long_runs():
    """The greedy LPT order: runs with no earlier record first, then by expected seconds (the mean
    of their cost class, else of their net's name), longest first. Worked by hand: earlier
    residual-56 runs took 30 and 40 s (mean 35), plain-20 runs 5 s, and a plain-56 run at another
    budget 12 s (only its name matches)."""
    earlier = [{"config": {"name": "residual-56", "steps": 150}, "seconds": 30.0},
               {"config": {"name": "residual-56", "steps": 150}, "seconds": 40.0},
               {"config": {"name": "plain-20", "steps": 150}, "seconds": 5.0},
               {"config": {"name": "plain-56", "steps": 300}, "seconds": 12.0},
               {"config": {"name": "plain-56", "steps": 150}, "seconds": 20.0}]
    configs = [{"name": "plain-20", "steps": 150}, {"name": "plain-56", "steps": 300},
               {"name": "dense-40", "steps": 150}, {"name": "residual-56", "steps": 150},
               {"name": "plain-56", "steps": 600}]
    assert runs.expected_seconds(configs[3], earlier) == 35.0
    # no run at 600 steps: every plain-56 run
    assert runs.expected_seconds(configs[4], earlier) == 16.0
    assert runs.expected_seconds(configs[2], earlier) is None
    assert runs.longest_first(configs, earlier, ["a", "b", "c", "d", "e"]) == ["c", "d", "e", "b",
                                                                               "a"]


def test_grid_started_longest_first_comes_back_in_config_order(tmp_path, tiny, monkeypatch):
    """With workers, a grid's runs start longest first by the store's earlier timings, and every
    record still lands at its own config's place with its own key (the order changes when runs
    start, never which numbers they give)."""
    ds, test, cfg = tiny
    store = runs.RunStore(tmp_path / "store")
    ids = dg.data_fingerprints(ds, test)
    configs = [dg.run_config(kind, 8, seed, 0.05, cfg, ds, ids) for kind in ("plain", "residual")
               for seed in (0, 1)]
    first = runs.run_grid(configs[:1] + configs[2:3], dg.train_run, (ds, test), store, "cpu",
                          "earlier")
    started = []

    def spy(fn, todo, shared, device, n):
        started.extend(c["name"] for c in todo)
        return runs._local(fn, todo, shared, device)

    monkeypatch.setattr(runs, "_processes", spy)
    monkeypatch.setenv("SKIPANALYSIS_WORKERS", "2")
    out = runs.run_grid(configs, dg.train_run, (ds, test), store, "cpu", "rest")
    took = {r["config"]["name"]: r["seconds"] for r in first}
    assert started == sorted([configs[1]["name"], configs[3]["name"]], key=lambda n: -took[n])
    assert [(r["config"]["name"], r["config"]["seed"]) for r in out] == [(c["name"], c["seed"])
                                                                         for c in configs]
    assert [r["key"] for r in out[:1] + out[2:3]] == [r["key"] for r in first]
    assert len({r["key"] for r in out}) == 4
