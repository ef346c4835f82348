"""Pre-norm vs post-norm transformers: gradients at initialisation, warm-up, depth, attention reach.

Xiong et al. 2020 (ICML) show that at initialisation the gradient of the last
layer's parameters is O(d sqrt(ln d)) for post-norm, independent of depth L,
and O(d sqrt(ln d / L)) for pre-norm, so post-norm needs a learning-rate
warm-up while pre-norm does not; Liu et al. 2020 (EMNLP) on deep post-norm
stacks that fail to train.

The tables and claims read from its runs are ``transformer_norm_claims``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from .. import fitting, keys, runs, tasks
from .. import train as tr
from ..measure.attention import attention_reach
from ..models import create
from ..models.transformer import Encoder
from ..rules import transformer_norm as rules
from ..rules.core import Decision
from ..setting import Setting


def seq_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Token-level cross-entropy for ``(N, L, V)`` logits and ``(N, L)`` targets (a target of -100
    is ignored, as in masked-character modelling)."""
    return F.cross_entropy(out.transpose(1, 2), y, ignore_index=-100)


def seq_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of wrong tokens among the scored ones (targets of -100 are not scored)."""
    scored = y != -100
    return ((out.argmax(-1) != y) & scored).sum().float() / scored.sum().clamp(min=1)


def build(norm: str, depth: int, vocab: int, seq_len: int, d_model: int, n_heads: int, d_ff: int,
          seed: int
          ) -> Encoder:
    """A freshly initialised encoder; the seed fixes the initialisation."""
    tr.seed_everything(seed)
    return create(f"encoder-{norm}", vocab=vocab, seq_len=seq_len, depth=depth, d_model=d_model,
                  n_heads=n_heads,
                  d_ff=d_ff)


def init_grad_norms(norm: str, depth: int, data: TensorDataset, seeds: list[int],
                    n_batches: int = 4,
                    batch_size: int = 64, d_model: int = 64, n_heads: int = 4, d_ff: int = 128,
                    device: torch.device | str = "cpu") -> pd.DataFrame:
    """Gradient norms at initialisation, per block and for the last block's second FFN weight.

    Each value is the mean over ``n_batches`` batches; one row per (seed, layer).
    """
    x, y = data.tensors
    vocab, seq_len = int(max(x.max(), y.max())) + 1, x.shape[1]
    rows = []
    for seed in seeds:
        model = build(norm, depth, vocab, seq_len, d_model, n_heads, d_ff, seed).to(device)
        acc = np.zeros(depth)
        w2 = np.zeros(depth)
        for b in range(n_batches):
            batch = slice(b * batch_size, (b + 1) * batch_size)
            xb, yb = x[batch].to(device), y[batch].to(device)
            model.zero_grad(set_to_none=True)
            seq_loss(model(xb), yb).backward()
            for i, block in enumerate(model.blocks):
                acc[i] += torch.sqrt(
                    sum((p.grad ** 2).sum() for p in block.parameters())).item() / n_batches
                w2[i] += block.ff[2].weight.grad.norm().item() / n_batches
        rows += [{"norm": norm, "depth": depth, "seed": seed, "layer": i + 1, "block_grad": acc[i],
                  "w2_grad": w2[i]}
                 for i in range(depth)]
    return pd.DataFrame(rows)


def run_config(norm: str, depth: int, cfg: tr.TrainConfig, data_ids: list[str], device="cpu",
               **size) -> dict:
    """The config of one encoder run (``train_run`` trains it; the run store keys it): placement,
    depth, the encoder's sizes, the recipe (its seed, rate and warm-up included), the data's
    fingerprints and the device kind."""
    recipe = cfg.recipe()
    return {"name": f"encoder-{norm}", "study": "norm", "norm": norm, "depth": depth, "size": size,
            "recipe": recipe,
            "train_data": data_ids[0], "test_data": data_ids[1],
            "device": torch.device(device).type}


def train_run(config: dict, train_set: TensorDataset, test_set: TensorDataset,
              device: torch.device | str | None = None) -> tuple[dict, dict]:
    """Train one encoder on a sequence task from its config (``runs.run_grid``'s ``fn``; Adam,
    optional warm-up); returns its training record (history, diverged, final, convergence) and its
    weights (kept for every run, so a run of the depth sweep and of the warm-up grid is one run)."""
    x, y = train_set.tensors
    vocab, seq_len = int(max(x.max(), y.max())) + 1, x.shape[1]
    r = config["recipe"]
    size = config["size"]
    f = fitting.fit(config, train_set, test_set, device, loss_fn=seq_loss, err_fn=seq_error,
                    make=lambda: build(config["norm"], config["depth"], vocab, seq_len,
                                       seed=r["seed"], **size),
                    desc=f"{config['name']}-{config['depth']} lr={r['lr']:g} "
                         f"wu={r['warmup_steps']} s{r['seed']}")
    res = f.result
    record = {"history": res.history.to_dict("list"), "diverged": res.diverged, "final": res.final,
              "convergence": res.convergence}
    return record, f.state()


def _train(jobs: list[tuple[str, int, tr.TrainConfig]], design: Design, setting: Setting,
           weights: bool, desc: str
           ) -> list[tuple[tr.TrainResult, Encoder | None]]:
    """Each job ``(norm, depth, cfg)`` on ``setting``'s data, of ``design``'s size, trained, or
    loaded from the setting's store when finished: its ``TrainResult`` and, with ``weights``, its
    trained encoder."""
    ids = [keys.tensor_fingerprint(*d.tensors[:2]) for d in (setting.train, setting.test)]
    configs = [run_config(n, d, c, ids, setting.device, **design.size) for n, d, c in jobs]
    x, y = setting.train.tensors
    vocab, seq_len = int(max(x.max(), y.max())) + 1, x.shape[1]
    out = []
    for r in runs.run_grid(configs, train_run, (setting.train, setting.test), setting.store,
                           setting.device, desc):
        res = r["result"]
        result = tr.TrainResult(pd.DataFrame(res["history"]), res["diverged"], res["final"],
                                res["convergence"])
        model = None
        if weights:
            c = r["config"]
            model = build(c["norm"], c["depth"], vocab, seq_len, seed=c["recipe"]["seed"],
                          **c["size"])
            model.load_state_dict(runs.state_of(r, setting.store))
            model = model.to(setting.device)
        out.append((result, model))
    return out


def outcome(res: tr.TrainResult, vocab: int, tail: float = 0.1) -> dict:
    """Did the run train? ``final_loss`` is the mean loss over the last ``tail`` of the steps.

    ``trained``: no divergence and a final loss below half of ln(vocab) (chance). ``diverged``: the
    loss became NaN/inf, exploded, or ended above where it started. ``converged``: the training
    loop's convergence flag (the loss had stopped falling; ``train.convergence``).
    """
    h = res.history
    start = float(h.loss.iloc[0])
    final = float(h.loss.iloc[-max(1, int(len(h) * tail)):].mean())
    diverged = bool(res.diverged or not math.isfinite(final) or final > start)
    return {"start_loss": start, "final_loss": final if math.isfinite(final) else float("nan"),
            "diverged": diverged,
            "trained": bool((not diverged) and final < 0.5 * math.log(vocab)),
            "converged": res.converged,
            "test_err": res.final.get("test_err", float("nan"))}


@dataclass(frozen=True)
class Design:
    """What 05 trains and measures (``from_params``: the notebook's parameters); each study reads
    its own fields.

    The encoders: ``d_model``, ``n_heads``, ``d_ff`` (``size``); a run reads its vocabulary and
    length from its data; ``vocab`` and ``seq_len`` are the procedural task's (T4's control task and
    initialisations). T1: ``grad_depths``, ``grad_seed_list`` (one initialisation each),
    ``grad_batches`` batches of ``batch_size``. T2: each arm ``(norm, warm-up steps)`` of ``arms``
    at ``depth``, every rate in ``lrs`` and seed in ``seed_list``. T3: ``t3_depths``,
    ``t3_seed_list``, ``t3_lr``, ``t3_warmup`` steps, ``t3_epochs`` passes (None: the setting's
    recipe's). T4: the runs at ``lrs[0]`` (post-norm with ``warmup`` steps, pre-norm without), a
    control task of ``n_train`` / ``n_test`` sequences from data seed ``seed``, the local
    ``window``, ``probes`` held-out sequences read.
    """

    vocab: int
    seq_len: int
    d_model: int
    n_heads: int
    d_ff: int
    grad_depths: list[int]
    grad_seed_list: list[int]
    grad_batches: int
    batch_size: int
    depth: int
    arms: list[tuple[str, int]]
    lrs: list[float]
    seed_list: list[int]
    t3_depths: list[int]
    t3_seed_list: list[int]
    t3_lr: float
    t3_warmup: int
    t3_epochs: float | None
    warmup: int
    n_train: int
    n_test: int
    seed: int
    window: int
    probes: int = 256

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> Design:
        """Post-norm without and with ``warmup`` steps and pre-norm without as T2's arms; seeds from
        ``seed`` on."""
        named = ("vocab", "seq_len", "d_model", "n_heads", "d_ff", "grad_depths", "grad_batches",
                 "batch_size", "depth",
                 "lrs", "t3_depths", "t3_lr", "t3_warmup", "t3_epochs", "warmup", "n_train",
                 "n_test", "seed", "window")
        seeds = lambda n: list(range(p["seed"], p["seed"] + p[n]))  # noqa: E731
        return cls(**{k: p[k] for k in named},
                   arms=[("post", 0), ("post", p["warmup"]), ("pre", 0)],
                   seed_list=seeds("seeds"), grad_seed_list=seeds("grad_seeds"),
                   t3_seed_list=seeds("t3_seeds"))

    @property
    def size(self) -> dict[str, int]:
        """``build``'s width keywords, as a run config's ``size`` holds them."""
        return {"d_model": self.d_model, "n_heads": self.n_heads, "d_ff": self.d_ff}

    def t3_recipe(self, cfg: tr.TrainConfig) -> tr.TrainConfig:
        """``cfg`` for T3's ``t3_epochs`` passes."""
        return replace(cfg, epochs=self.t3_epochs or cfg.epochs)


@dataclass(frozen=True)
class Reach:
    """``t4_study``'s measurements: ``layers`` (per-layer reach, with a ``task`` column);
    ``reversal`` and ``control``, each task's per-model table (``reach_study``), and ``per_model``,
    both; by task, ``example``, the first seed's pre-norm model, and ``tokens``, its probe tokens
    (``plot_attention_maps``'s inputs)."""

    layers: pd.DataFrame
    reversal: pd.DataFrame
    control: pd.DataFrame
    per_model: pd.DataFrame
    example: dict[str, Encoder]
    tokens: dict[str, torch.Tensor]


@dataclass(frozen=True)
class TextRuns:
    """``text_study``'s result: the ``task`` in a few words and ``described`` in full, the warm-up
    grid's ``hist`` and ``outs``, the depth sweep's outcomes ``t3``, the symbols scored (``vocab``),
    and each claim's decision on these runs (``t2_decision``, ``t3_decision``;
    ``decision("T2")``)."""

    task: str
    described: str
    hist: pd.DataFrame
    outs: pd.DataFrame
    t3: pd.DataFrame
    vocab: int
    t2_decision: Decision
    t3_decision: Decision

    def decision(self, claim: str) -> Decision:
        return {"T2": self.t2_decision, "T3": self.t3_decision}[claim]


def warmup_grid(design: Design, setting: Setting) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Train every arm ``(norm, warm-up steps)`` of ``design.arms`` at every rate in ``design.lrs``
    and seed in ``design.seed_list`` at ``design.depth``, on ``setting``.

    Returns (histories, outcomes, models): one outcome row per run (``outcome`` plus norm, lr,
    warmup, seed, depth, epochs) and the trained models by ``(norm, lr, warmup, seed)``. Runs go
    through ``runs.run_grid``: with a ``runs.RunStore``, a finished run loads (with its weights)
    instead of training again.
    """
    cfg, depth = setting.cfg, design.depth
    vocab = int(setting.train.tensors[1].max()) + 1
    keys = [(norm, lr, wu, seed) for norm, wu in design.arms for lr in design.lrs
            for seed in design.seed_list]
    jobs = [(norm, depth, replace(cfg, lr=lr, warmup_steps=wu, seed=seed)) for norm, lr, wu,
            seed in keys]
    hist, outs, models = [], [], {}
    for (norm, lr, wu, seed), (res, model) in zip(
        keys, _train(jobs, design, setting, True, "05: warm-up grid")):
        hist.append(res.history.assign(norm=norm, lr=lr, warmup=wu, seed=seed, depth=depth))
        outs.append({"norm": norm, "depth": depth, "lr": lr, "warmup": wu, "seed": seed,
                     "epochs": cfg.epochs,
                     **outcome(res, vocab)})
        models[(norm, lr, wu, seed)] = model
    return pd.concat(hist, ignore_index=True), pd.DataFrame(outs), models


def settle_stuck(outs: pd.DataFrame, design: Design, setting: Setting,
                 factor: float = 2.0) -> pd.DataFrame:
    """Is a stuck run's failure a stall or slowness? Every run that neither trained nor diverged and
    whose loss was still falling (not converged) is trained again from scratch, same seed and recipe
    (``setting.cfg``'s), for ``factor`` times the steps; ``stuck_at_2x`` is True when that run did
    not train either (the failure persisted: settled for T2 and T3), False when it trained (the
    first run was only slow), and NaN for runs that needed no check."""
    cfg, vocab = setting.cfg, int(setting.train.tensors[1].max()) + 1
    stuck = outs[~outs.trained.astype(bool) & ~outs.diverged.astype(bool) & ~outs.converged.astype(
        bool)]
    if not len(stuck):
        return outs.assign(stuck_at_2x=None)
    jobs = [
        (r.norm, int(r.depth), replace(cfg, lr=r.lr, warmup_steps=int(r.warmup), seed=int(r.seed),
                                           epochs=cfg.epochs * factor)) for r in stuck.itertuples()]
    again = [outcome(res, vocab)["trained"] for res, _ in
             _train(jobs, design, setting, False, "05: stuck runs at twice the steps")]
    out = outs.copy()
    out["stuck_at_2x"] = pd.Series([not t for t in again], index=stuck.index, dtype=object)
    return out


def depth_sweep(design: Design, setting: Setting, done: pd.DataFrame | None = None,
                norms: tuple[str, ...] = ("post", "pre")) -> pd.DataFrame:
    """Outcomes of every (norm, depth, seed) of ``norms``, ``design.t3_depths`` and
    ``design.t3_seed_list`` trained at ``design.t3_lr`` with ``design.t3_warmup`` linear warm-up
    steps (0: none; Liu et al.'s depth question, which they asked with warm-up, so that it does not
    re-test T2), for ``design.t3_recipe(setting.cfg)``'s passes.

    Rows of ``done`` (earlier outcomes, e.g. ``warmup_grid``'s) with the same norm, depth, seed,
    rate, warm-up and passes are reused rather than retrained: the same seed and recipe give the
    same run. The other runs go through ``runs.run_grid`` (with a ``runs.RunStore``: loaded when
    finished).
    """
    depths, seeds, lr, warmup = (design.t3_depths, design.t3_seed_list, design.t3_lr,
                                 design.t3_warmup)
    cfg = design.t3_recipe(setting.cfg)
    vocab = int(setting.train.tensors[1].max()) + 1
    rows, jobs = {}, []
    for norm in norms:
        for depth in depths:
            for seed in seeds:
                hit = None if done is None else done[(done.norm == norm) & (done.depth == depth)
                                                     & (done.seed == seed) & (done.lr == lr) & (
                                                         done.warmup == warmup)
                                                     & (done.epochs == cfg.epochs)]
                if hit is not None and len(hit):
                    rows[(norm, depth, seed)] = hit.iloc[0].to_dict()
                else:
                    jobs.append((norm, depth, replace(cfg, lr=lr, warmup_steps=warmup, seed=seed)))
    for (norm, depth, c), (res, _) in zip(jobs,
                                          _train(jobs, design, setting, False, "05: depth sweep")):
        rows[(norm, depth, c.seed)] = {"norm": norm, "depth": depth, "lr": lr, "warmup": warmup,
                                       "seed": c.seed,
                                       "epochs": cfg.epochs, **outcome(res, vocab)}
    return pd.DataFrame([rows[(n, d, s)] for n in norms for d in depths for s in seeds])


def text_study(text: tuple | None, design: Design, setting: Setting) -> TextRuns | None:
    """T2 and T3 again on a real text task: ``text`` is ``masked_text.text_task``'s ``(train, test,
    about)`` (None: no text file named, nothing runs), in place of ``setting``'s data. The same
    arms, rates, seeds and recipe as on the procedural task (``design``): the warm-up grid and the
    depth sweep; each claim's rule applied to these runs alone.
    """
    if text is None:
        return None
    train_set, test_set, about = text
    on_text = setting.but(train=train_set, test=test_set)
    hist, outs, _ = warmup_grid(design, on_text)
    t3 = depth_sweep(design, on_text, done=outs)
    task = f"masked-character modelling of the text file {about['file']}"
    described = (f"{task} ({about['characters']:,} characters; {about['symbols']} symbols: the "
                 f"{about['symbols'] - 2} most frequent, one for the rest, the mask; windows of "
                 f"{about['seq_len']}, {about['mask_rate']:.0%} masked; the last "
                 f"{about['held_out']:.0%} of the text held out): {len(train_set)} training / "
                 f"{len(test_set)} held-out windows")
    return TextRuns(task, described, hist, outs, t3, int(train_set.tensors[1].max()) + 1,
                    rules.t2(outs.to_dict("records")), rules.t3(t3.to_dict("records")))


def grads_run(config: dict, data: TensorDataset,
              device: torch.device | str | None = None) -> tuple[dict, None]:
    """``init_grad_norms`` of one placement and depth from its config (``runs.run_grid``'s ``fn``),
    as columns of lists."""
    device, _ = runs.task_device(device, config)
    a = config["args"]
    return init_grad_norms(a["norm"], a["depth"], data, a["seeds"], a["n_batches"], a["batch_size"],
                           device=device,
                           **a["size"]).to_dict("list"), None


def grad_study(design: Design, setting: Setting,
               norms: tuple[str, ...] = ("post", "pre")) -> pd.DataFrame:
    """``init_grad_norms`` on ``setting.train`` for every placement of ``norms`` and depth of
    ``design.grad_depths``, one table; each (placement, depth) measured once, as a run of
    ``runs.run_grid`` (``grads_run``) keyed by its arguments, the data and the code it reaches, so
    with a ``runs.RunStore`` re-executing the notebook loads the table."""
    data, device, size, seeds = setting.train, setting.device, design.size, design.grad_seed_list
    n_batches, batch_size = design.grad_batches, design.batch_size
    x, y = data.tensors
    vocab, seq_len = int(max(x.max(), y.max())) + 1, x.shape[1]
    configs = [{"name": f"encoder-{n}", "study": "norm-at-init",
                "model_args": {"vocab": vocab, "seq_len": seq_len,
                                                                               "depth": d, **size},
                "args": {"norm": n, "depth": d, "seeds": list(seeds), "n_batches": n_batches,
                         "batch_size": batch_size,
                         "size": size},
                "data": keys.tensor_fingerprint(*data.tensors[:2]),
                "device": torch.device(device).type}
               for n in norms for d in design.grad_depths]
    recs = runs.run_grid(configs, grads_run, (data,), setting.store, device,
                         "05: gradients at initialisation")
    return pd.concat([pd.DataFrame(r["result"]) for r in recs], ignore_index=True)


def reach_study(models: dict[tuple[str, int], Encoder], tokens: torch.Tensor, window: int,
                trained: dict,
                **build_args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``attention_reach`` of each trained model and of the same model at initialisation.

    ``models`` maps ``(norm, seed)`` to a trained encoder; ``build_args`` (vocab, seq_len, depth,
    d_model, n_heads, d_ff) rebuild its initialisation with ``build``. Returns (per layer, per
    model): the per-model table has the largest far share and distance over layers (trained and at
    initialisation), ``reach_change``: the signed change of attention distance (trained minus
    initial) in the layer training moved most (``moved_layer``), the mean input dependence (trained
    and at initialisation), and whether the model trained.
    """
    layers, summary = [], []
    for (norm, seed), model in models.items():
        now = attention_reach(model, tokens, window)
        init = attention_reach(build(norm, seed=seed, **build_args), tokens, window)
        layers.append(now.assign(norm=norm, seed=seed))
        change = now.distance - init.distance  # per layer, trained minus initial
        summary.append({"norm": norm, "seed": seed, "far_share": now.beyond_window.max(),
                        "far_share_init": init.beyond_window.max(),
                        "reach_change": change[change.abs().idxmax()],
                        "moved_layer": int(now.layer[change.abs().idxmax()]),
                        "distance": now.distance.max(),
                        "distance_init": init.distance.max(),
                        "input_dependence": now.input_dependence.mean(),
                        "input_dependence_init": init.input_dependence.mean(),
                        "partner": now.partner.max(),
                        "uniform_distance": now.uniform_distance.iloc[0],
                        "trained": bool(trained[(norm, seed)])})
    return pd.concat(layers, ignore_index=True), pd.DataFrame(summary)


def t4_study(design: Design, trained_models: dict, outs: pd.DataFrame, setting: Setting) -> Reach:
    """T4's measurements: attention reach of the reversal models of ``warmup_grid``
    (``trained_models`` and their outcomes ``outs``) at ``design.lrs[0]`` (post-norm with warm-up,
    pre-norm without; every seed) and of the same arms trained on the local control task
    (``local_task``, the same sizes, recipe and data seeds), each against the same model at
    initialisation, on ``design.probes`` held-out sequences (the reversal ones ``setting.test``'s).
    """
    d = design
    lr, seeds, build_args = d.lrs[0], d.seed_list, {"vocab": d.vocab, "seq_len": d.seq_len,
                                                    "depth": d.depth, **d.size}
    arms = (("post", d.warmup), ("pre", 0))
    local_train = tasks.local_task(d.n_train, d.seq_len, d.vocab, seed=d.seed)
    local_test = tasks.local_task(d.n_test, d.seq_len, d.vocab, seed=d.seed + 10_000)
    _, local_outs, local_models = warmup_grid(replace(d, arms=list(arms), lrs=[lr]),
                                              setting.but(train=local_train, test=local_test))
    tokens = {"reversal": setting.test.tensors[0][:d.probes],
              "control": local_test.tensors[0][:d.probes]}
    tables, layers = {}, []
    for task, models, done in (("reversal", trained_models, outs),
                               ("control", local_models, local_outs)):
        pick = {(n, s): models[(n, lr, wu, s)] for n, wu in arms for s in seeds}
        ok = {(r.norm, r.seed): r.trained for r in done[done.lr == lr].itertuples()
              if (r.norm, r.warmup) in arms}
        per_layer, tables[task] = reach_study(pick, tokens[task], d.window, ok, **build_args)
        layers.append(per_layer.assign(task=task))
    example = {"reversal": trained_models[("pre", lr, 0, seeds[0])],
               "control": local_models[("pre", lr, 0, seeds[0])]}
    per_model = pd.concat([t.assign(task=k) for k, t in tables.items()], ignore_index=True)
    return Reach(pd.concat(layers, ignore_index=True), tables["reversal"], tables["control"],
                 per_model, example,
                 tokens)
