"""The run skeleton (skipanalysis.fitting): every study's run function trains through ``fit``, which
must give the numbers the studies' own paths gave (seed, build by the factory, train), and every
study's runs are keyed by it."""

from __future__ import annotations

import math

import pytest
import torch

from skipanalysis import fitting, keys, tasks, train
from skipanalysis.models import create
from skipanalysis.studies import degradation as dg
from skipanalysis.studies import degradation_construction as dc
from skipanalysis.studies import equivalence as eq
from skipanalysis.studies import gradient_flow as gr
from skipanalysis.studies import param_efficiency as ef
from skipanalysis.studies import transformer_norm as npl
from skipanalysis.studies import unet_skips as sg


def _config(seed=3, recipe_seed=None):
    cfg = train.TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=seed if recipe_seed is None
                            else recipe_seed,
                            progress=False)
    return {"name": "plain-8", "model_args": {"num_classes": 4, "width": 4}, "seed": seed,
            "recipe": cfg.recipe(),
            "device": "cpu"}, cfg


def test_fit_gives_the_numbers_of_the_old_per_study_path():
    ds = tasks.texture_classification(64, 8, n_classes=4, seed=0)
    config, cfg = _config()
    f = fitting.fit(config, ds, ds, "cpu")
    # the path every study wrote for itself before: seed, build by the factory name, train with the
    # recipe
    train.seed_everything(3)
    model = create("plain-8", num_classes=4, width=4)
    old = train.train(model, ds, cfg, ds, "cpu")
    assert f.final("train_err") == old.final["train_err"] and f.final(
        "test_err") == old.final["test_err"]
    assert all(torch.equal(a, b) for a, b in zip(f.state().values(), model.state_dict().values()))
    assert list(f.result.history.loss) == list(old.history.loss)
    out = f.outcome()
    assert set(out) == {"params", "diverged", "converged", "late_share", "train_err", "test_err"}
    assert out["params"] == sum(p.numel() for p in model.parameters()) and f.seconds > 0
    assert math.isnan(f.final("no such number"))


def test_fit_takes_a_built_net_or_a_builder_called_after_seeding():
    ds = tasks.texture_classification(32, 8, n_classes=4, seed=0)
    config, cfg = _config(seed=5)
    net = create("plain-8", num_classes=4, width=4)
    assert fitting.fit(config, ds, None, "cpu", model=net, cfg=cfg).model is net
    drawn = []
    fitting.fit(config, ds, None, "cpu", cfg=cfg,
                make=lambda: drawn.append(torch.rand(1))
                or create("plain-8", num_classes=4, width=4))
    torch.manual_seed(5)
    # the builder ran right after seeding with the run's seed
    assert torch.equal(drawn[0], torch.rand(1))
    # a run whose config keeps its seed only in the recipe (notebook 05) is seeded by it
    assert fitting.seed_of({"recipe": {"seed": 7}}) == 7 and fitting.seed_of(config) == 5


@pytest.mark.parametrize("fn",
                         [dg.train_run, dc.construct_run, eq.train_run, gr.train_run, ef.train_run,
                                npl.train_run, sg.train_run])
def test_every_study_trains_through_the_skeleton_and_is_keyed_by_it(fn):
    assert fitting.fit in keys._reached(fn)  # editing the skeleton re-keys every training run
