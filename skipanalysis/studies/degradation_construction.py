"""D3 of notebook 01, the identity construction: identity blocks, a trained shallow plain net
deepened with them and trained on, against a deep plain net from scratch (``construction_study``).
The depth study whose nets it deepens is in ``degradation``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from .. import fitting, keys, runs, stats
from ..claims import Finding
from ..measure.identity import error_rate, max_output_difference
from ..models import cifar_name, create
from ..models.blocks import BasicBlock
from ..models.resnet import CifarResNet
from ..rules import degradation as rules
from ..setting import Setting
from .degradation import DepthRuns, arms, depth_study

# --- D3: the identity construction ----------------------------------------------------------------

def _dirac_(conv: nn.Conv2d) -> None:
    with torch.no_grad():
        nn.init.dirac_(conv.weight)


def _identity_bn_(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor) -> None:
    """Set a BN so that, with these running statistics, eval mode returns its input."""
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.copy_(mean)


def identity_block(width: int, mean: torch.Tensor, var: torch.Tensor) -> BasicBlock:
    """A plain CIFAR block that is the identity (in eval mode) on non-negative inputs with these
    statistics.

    The convolutions are Dirac kernels; each BN's scale and shift undo its own normalisation; the
    ReLUs pass the (post-ReLU, hence non-negative) input.
    """
    block = BasicBlock(width, width, 1, shortcut=False)
    _dirac_(block.conv1)
    _dirac_(block.conv2)
    _identity_bn_(block.bn1, mean, var)
    _identity_bn_(block.bn2, mean, var)
    return block


@torch.no_grad()
def deepen_with_identity(shallow: CifarResNet, depth: int,
                         calibration: torch.Tensor) -> CifarResNet:
    """Build a deeper plain net: the shallow net's layers plus identity blocks at the end of each
    stage.

    Args:
        shallow: a trained plain CIFAR net. depth: the target depth (6n+2, at least the shallow
        depth). calibration: input images whose activations set the identity blocks' BN statistics.
    """
    if shallow.kind != "plain":
        raise ValueError(f"deepen_with_identity expects a plain net, got kind={shallow.kind!r}")
    deep = create(cifar_name("plain", depth), num_classes=shallow.head.out_features,
                  width=shallow.width,
                  in_channels=shallow.stem[0].in_channels)
    n_old, n_new = shallow.stage_blocks, deep.stage_blocks
    if n_new < n_old:
        raise ValueError(f"depth={depth} is shallower than the shallow net ({shallow.depth})")
    shallow.eval()
    acts, h = [], shallow.stem(calibration)
    for i, block in enumerate(shallow.blocks):
        h = block(h)
        if (i + 1) % n_old == 0:
            acts.append(h)  # each stage's output
    deep.stem.load_state_dict(shallow.stem.state_dict())
    deep.head.load_state_dict(shallow.head.state_dict())
    blocks = []
    for stage in range(3):
        blocks += [copy.deepcopy(b) for b in shallow.blocks[stage * n_old:(stage + 1) * n_old]]
        a = acts[stage]
        mean, var = a.mean((0, 2, 3)), a.var((0, 2, 3), unbiased=False)
        blocks += [identity_block(a.shape[1], mean, var) for _ in range(n_new - n_old)]
    deep.blocks = nn.Sequential(*blocks)
    return deep


def construct_run(config: dict, bases: Mapping[int, nn.Module], train_set: TensorDataset,
                  test_set: TensorDataset,
                  augment=None, device: torch.device | str | None = None) -> tuple[dict, None]:
    """D3's further training from its config (``runs.run_grid``'s ``fn``): the trained shallow net
    of the config's seed (``bases[seed]``) deepened to ``config["deep"]`` with identity blocks, then
    trained with the recipe; returns its final training error and convergence flag."""
    on, _ = runs.task_device(device, config)  # a Ray task: the config's device kind
    train_set, test_set = fitting.on_device(on, train_set, test_set)
    base = bases[config["seed"]].to(on)
    constructed = deepen_with_identity(base, config["deep"], train_set.tensors[0][:512]).to(on)
    f = fitting.fit(config, train_set, test_set, device, model=constructed, augment=augment,
                    desc="constructed")
    return {"train_err": f.final("train_err"), "converged": f.converged}, None


@dataclass(frozen=True)
class Construction:
    """D3's design (``construction_study``): ``nets``, the depth study's (its shallowest and deepest
    depths, its seeds, width, warm-up and augmentation), and ``epochs``, the constructed nets'
    further training."""

    nets: DepthRuns
    epochs: float

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> Construction:
        """Notebook 01's: its nets (``DepthRuns.from_params``) and ``construct_epochs``."""
        return cls(DepthRuns.from_params(p), p["construct_epochs"])


@dataclass(frozen=True)
class Constructed:
    """What ``construction_study`` found: ``table``, the four errors with 95% intervals over seeds;
    ``per_seed``, the errors per seed; ``mismatch``, the largest relative logit difference of a
    constructed net from its shallow net; ``finding``, D3's ``Finding`` (``rules.d3``'s decision, a
    headline, the mismatch as evidence)."""

    table: pd.DataFrame
    per_seed: pd.DataFrame
    mismatch: float
    finding: Finding


def construction_study(design: Construction, setting: Setting, models: dict,
                       final: pd.DataFrame) -> Constructed:
    """D3 over the seeds of ``design.nets``: each seed's trained plain-``shallow`` net (``models``,
    ``final``: the depth study's) deepened to ``deep`` with identity blocks, its training error
    before and after ``design.epochs`` more epochs (at the shallow net's kept rate), paired by seed
    with a deep plain net of the same seed trained from scratch for the same total budget (the
    recipe's epochs plus ``design.epochs``, at the deep plain arm's kept rate). The further training
    is a grid of ``runs.run_grid`` (``construct_run``), each keyed by its shallow net's weights:
    with a run store finished runs load.
    """
    depths, epochs, seeds, augment = design.nets.depths, design.epochs, list(
        design.nets.seeds), design.nets.augment
    shallow, deep = min(depths), max(depths)
    train_set, test_set, cfg, device = setting.train, setting.test, setting.cfg, setting.device
    bases = {s: models[("plain", shallow, s)] for s in seeds}
    probe = test_set.tensors[0][:256]
    rows, mismatch = [], 0.0
    # each seed's net deepened once: checked against its shallow net, then scored
    for s, b in bases.items():
        constructed = deepen_with_identity(b, deep, train_set.tensors[0][:512]).to(device)
        mismatch = max(mismatch, max_output_difference(b, constructed, probe))
        rows.append({"seed": s, "shallow": error_rate(b, train_set, device),
                     "constructed_start": error_rate(constructed, train_set, device)})
    lr = float(arms(final)[("plain", shallow)].lr.iloc[0])
    recipe = replace(cfg, epochs=epochs, lr=lr)
    configs = [{"name": f"constructed-{deep}", "study": "construction", "shallow": shallow,
                "deep": deep, "seed": s,
                "base": keys.tensor_fingerprint(*bases[s].state_dict().values()),
                "recipe": replace(recipe, seed=s).recipe(),
                "train_data": keys.tensor_fingerprint(*train_set.tensors[:2]),
                "test_data": keys.tensor_fingerprint(*test_set.tensors[:2]),
                "augment": getattr(augment, "__name__", None), "device": torch.device(device).type}
               for s in seeds]
    cont = runs.run_grid(configs, construct_run, (bases, train_set, test_set, augment),
                         setting.store, device,
                         "D3: constructed nets")
    lr_deep = float(arms(final)[("plain", deep)].lr.iloc[0])
    _, scratch, _ = depth_study(design.nets.but(kinds=("plain",), depths=(deep,), lrs=(lr_deep,)),
                                setting.but(cfg=replace(cfg, epochs=cfg.epochs + epochs)))
    scratch = scratch[scratch.kept].set_index("seed") if "kept" in scratch else scratch.set_index(
        "seed")
    per_seed = pd.DataFrame(rows).assign(constructed_after=[c["result"]["train_err"] for c in cont],
                                         constructed_converged=[c["result"]["converged"]
                                                                for c in cont],
                                         scratch=[float(scratch.train_err[s]) for s in seeds],
                                         scratch_converged=[bool(scratch.converged[s])
                                                            for s in seeds])
    ivs = {k: stats.rate_interval(per_seed[k])
           for k in ("shallow", "constructed_start", "constructed_after",
                                                          "scratch")}
    budget = cfg.epochs + epochs
    table = pd.DataFrame(
        {"training error": [v.estimate for v in ivs.values()], "low": [v.low for v in ivs.values()],
                          "high": [v.high for v in ivs.values()]},
                         index=[f"plain-{shallow} (trained)", f"plain-{deep} constructed, start",
                                f"plain-{deep} constructed, trained on",
                                f"plain-{deep} from scratch, {budget:g} epochs"])
    decision = rules.d3(per_seed.shallow.tolist(), per_seed.constructed_start.tolist(),
                        per_seed.constructed_after.tolist(), per_seed.scratch.tolist(),
                        per_seed.constructed_converged.tolist())
    headline = (f"over {len(seeds)} seeds the constructed plain-{deep} starts at "
                f"{ivs['constructed_start'].estimate:.1%} (shallow {ivs['shallow'].estimate:.1%}) "
                f"and ends at {ivs['constructed_after'].estimate:.1%} after {epochs:g} more "
                f"epochs; from scratch with the same {budget:g}-epoch budget plain-{deep} ends at "
                f"{ivs['scratch'].estimate:.1%}")
    return Constructed(table, per_seed, mismatch,
                       Finding(decision, headline, evidence={"logit_mismatch_rel": mismatch}))
