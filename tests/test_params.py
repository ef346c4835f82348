"""Parameters declared once (skipanalysis.params): every notebook matches its spec; bad input gives
one line early."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import nbformat
import pytest
import yaml

from skipanalysis import params
from skipanalysis.params import ParameterError
from skipanalysis.pipeline.runner import declared_parameters, notebook_parameters, run_notebook
from skipanalysis.rules import cost as cost_rules
from skipanalysis.rules import equivalence

from conftest import NOTEBOOKS, ROOT


def cell_defaults(nb) -> dict:
    return {k: ast.literal_eval(v["default"]) for k, v in declared_parameters(nb).items()}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_parameter_is_declared_and_every_profile_passes(nb):
    assert set(params.declared(nb.stem)) == set(
        declared_parameters(nb)), "notebook and spec disagree"
    for profile in params.PROFILES:
        section = (yaml.safe_load((ROOT / "notebooks" / "params" / f"{profile}.yaml").read_text())
                   or {}).get(nb.stem)
        params.check(nb.stem,
                     {**cell_defaults(nb), **(section or {}), "profile": profile, "device": "cpu",
                               "report_dir": "/tmp/r"})


def test_the_spec_agrees_with_the_modules_it_mirrors():
    from skipanalysis import data, train
    from skipanalysis.studies import gradient_flow as gradients

    assert params.SPECS["04_cost"][0]["repeats"].lo == cost_rules.MIN_REPEATS
    assert train.SCHEDULES is params.SCHEDULES and data.DATASETS is params.DATASETS
    assert gradients.LR_CHOICES is params.LR_CHOICES


NB01 = ROOT / "notebooks" / "01_degradation.ipynb"


@pytest.mark.parametrize("override, message", [
    ({"lrs": [float("inf")]},
     "parameter lrs=[inf] is not allowed; expected a list of finite numbers > 0 and < 10"),
    ({"epochs": float("nan")},
     "parameter epochs=nan is not allowed; expected a finite number > 0 and <= 10000"),
    ({"image_size": 100000},
     "parameter image_size=100000 is not allowed; expected an integer >= 8 and <= 512"),
    ({"depths": [20, 21]},
     "parameter depths=[20, 21] is not allowed; expected a list of integers (at least 2) "
                           "of the form 6n+2"),
    ({"seeds": True}, "parameter seeds=True is not allowed; expected an integer >= 2"),
    ({"schedule": "warm"},
     "parameter schedule='warm' is not allowed; expected a string from ['constant'"),
    ({"dataset": "texture", "n_train": 0},
     "parameters dataset='texture', n_train=0 are not allowed together"),
])
def test_bad_values_are_refused_in_one_line_before_a_kernel_starts(tmp_path, override, message):
    with pytest.raises(ParameterError) as err:
        notebook_parameters(NB01, "quick", "cpu", tmp_path, overrides=override)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cross_parameter_rules_of_other_notebooks(tmp_path):
    nb05 = ROOT / "notebooks" / "05_transformer_norm.ipynb"
    with pytest.raises(ParameterError,
                       match=r"d_model=30, n_heads=4 are not allowed together; expected d_model a "
                                             r"multiple of n_heads"):
        notebook_parameters(nb05, "quick", "cpu", tmp_path, overrides={"d_model": 30, "n_heads": 4})
    nb08 = ROOT / "notebooks" / "08_param_efficiency.ipynb"
    with pytest.raises(ParameterError, match="model names as efficiency.build_model reads them"):
        notebook_parameters(nb08, "quick", "cpu", tmp_path, overrides={"models": ["vgg-16"]})
    with pytest.raises(ParameterError,
                       match=r"parameter control='densenet-4' is not allowed; expected a plain "
                                             r"ResNet"):
        notebook_parameters(nb08, "quick", "cpu", tmp_path, overrides={"control": "densenet-4"})
    with pytest.raises(ParameterError, match="model names as efficiency.build_model reads them"):
        notebook_parameters(nb08, "quick", "cpu", tmp_path, overrides={"control": "resnet-9"})


def test_a_rejected_run_changes_no_file(tmp_path):
    out = tmp_path / "reports" / "quick" / "01_degradation.ipynb"
    with pytest.raises(ParameterError):
        run_notebook(NB01, out, "quick", "cpu", overrides={"lrs": [float("inf")]})
    assert not (tmp_path / "reports").exists()


def _two_cell_notebook(path, order=("more-parameters", "parameters"),
                       more="extra = 1  # a recipe detail"):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = {"more-parameters": new_code_cell(more),
             "parameters": new_code_cell(
                 'profile = "quick"\ndevice = "auto"\nreport_dir = "../reports"\nvalue = 1')}
    for tag, cell in cells.items():
        cell.metadata["tags"] = [tag]
    nb = new_notebook(cells=[new_markdown_cell("# Two parameter cells"), *(cells[t] for t in order),
                             new_code_cell("print('values', value, extra)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def test_a_more_parameters_cell_is_declared_and_overridden_like_the_parameters_cell(tmp_path,
                                                                                    caplog):
    """Recipe details sit in a cell tagged more-parameters above the parameters cell (so no cell
    grows long): the runner knows their names and defaults, an override reaches the kernel, and
    papermill's "unknown parameter" warning (it reads only the parameters cell) stays out of the
    output."""
    nb = tmp_path / "nb" / "93_two.ipynb"
    (nb.parent / "params").mkdir(parents=True)
    (nb.parent / "params" / "quick.yaml").write_text("93_two:\n  extra: 4\n")
    _two_cell_notebook(nb)
    declared = declared_parameters(nb)
    assert list(declared) == ["extra", "profile", "device", "report_dir", "value"]
    assert declared["extra"]["default"] == "1" and declared["extra"]["help"] == "a recipe detail"
    with pytest.raises(ParameterError,
                       match="-p nonsense=... is not allowed for 93_two; it defines"):
        notebook_parameters(nb, "quick", "cpu", tmp_path / "r", overrides={"nonsense": 1})
    # the profile sets it too
    assert notebook_parameters(nb, "quick", "cpu", tmp_path / "r")["extra"] == 4
    out = run_notebook(nb, tmp_path / "reports" / "93_two.ipynb", "quick", "cpu", progress=False,
                       overrides={"extra": 5, "value": 2})
    printed = str(nbformat.read(out, as_version=4).cells[-1].outputs)
    assert "values 2 5" in printed
    assert "Passed unknown parameter" not in caplog.text


def test_a_more_parameters_cell_below_the_parameters_cell_or_a_name_twice_is_one_line(tmp_path):
    nb = tmp_path / "93_two.ipynb"
    _two_cell_notebook(nb, order=("parameters", "more-parameters"))
    with pytest.raises(ParameterError, match=r"cell 2 is tagged 'more-parameters' "
                                             r"but comes after the 'parameters'"):
        declared_parameters(nb)
    _two_cell_notebook(nb, more="extra = 1\nvalue = 3")
    with pytest.raises(ParameterError, match="parameter 'value' is declared twice"):
        declared_parameters(nb)


def test_corrupt_yaml_and_corrupt_notebook_name_the_file(tmp_path):
    (tmp_path / "params").mkdir()
    shutil.copy(NB01, tmp_path / "01_degradation.ipynb")
    (tmp_path / "params" / "quick.yaml").write_text("01_degradation:\n  seeds: [1, 2\n")
    proc = subprocess.run([sys.executable, "-m", "skipanalysis.pipeline.runner",
                           str(tmp_path / "01_degradation.ipynb"),
                           str(tmp_path / "out" / "x.ipynb")], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'params' / 'quick.yaml'}: not valid YAML at line" in proc.stderr
    (tmp_path / "params" / "quick.yaml").write_text("01_degradation:\n  seeds: 3\n")
    (tmp_path / "01_degradation.ipynb").write_text('{"cells": [ broken')
    proc = subprocess.run([sys.executable, "-m", "skipanalysis.pipeline.runner",
                           str(tmp_path / "01_degradation.ipynb"),
                           str(tmp_path / "out" / "x.ipynb")], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path / '01_degradation.ipynb'}: not a readable notebook" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_setup_checks_a_value_edited_in_jupyterlab(tmp_path):
    from skipanalysis.pipeline.notebook import setup

    values = {**cell_defaults(NB01), "profile": "quick", "device": "cpu",
              "report_dir": str(tmp_path)}
    with pytest.raises(ParameterError,
                       match=r"parameter margin=1.5 is not allowed; expected a finite number > 0"):
        setup("01_degradation", {**values, "margin": 1.5})
    assert setup("01_degradation", values).name == "01_degradation"


def test_finish_stops_on_an_unrecorded_claim(tmp_path):
    from skipanalysis.pipeline.notebook import setup

    ctx = setup("03_equivalence", profile="smoke", device="cpu", report_dir=tmp_path)
    with pytest.raises(RuntimeError,
                       match="03_equivalence: claims not recorded: E1, E2, E3, E4, E5"):
        ctx.finish()
    ctx.claims.record("E2", equivalence.e2([0.0]), evidence={}, headline="h")
    with pytest.raises(RuntimeError, match="claims not recorded: E1, E3, E4, E5$"):
        ctx.finish()


def test_output_marks_round_trip():
    from skipanalysis import outputs

    out = {"metadata": outputs.mark(**{outputs.CAPTION: "c", outputs.FIGURE: "01-x"})}
    assert outputs.marks(out) == {"caption": "c", "figure": "01-x"} and outputs.marks({}) == {}


def test_model_names_declared_once_agree_with_the_builder():
    from skipanalysis.studies import param_efficiency as ef

    for name in ("resnet-8", "resnet-20", "se-resnet-20", "densenet-1", "densenet-4",
                 "csp-densenet-4"):
        assert params._models_known([name]) and ef.build_model(name) is not None
    for name in ("resnet-21", "vgg-16", "densenet-0", "resnet20"):
        assert not params._models_known([name])
        with pytest.raises(ValueError):
            ef.build_model(name)


def test_a_notebook_reusing_01s_nets_asks_for_them_from_its_own_first_seed():
    from skipanalysis.pipeline.notebook import Context
    from skipanalysis.pipeline.runner import resolved_parameters

    own = resolved_parameters(NB01, "quick")
    ctx = Context("07_loss_landscape", None, {}, None, ROOT, print, "quick", ROOT / "notebooks", 3)
    moved = ctx.parameters_of("01_degradation")
    assert moved["seed"] == 3 and own["seed"] == 0
    assert {k: v for k, v in moved.items() if k != "seed"} == {k: v for k, v in own.items()
                                                               if k != "seed"}
    ctx.seed = None  # a notebook that declares no seed gets 01's own
    assert ctx.parameters_of("01_degradation") == own
