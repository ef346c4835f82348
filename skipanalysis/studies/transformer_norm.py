"""Pre-norm vs post-norm transformers: gradients at initialisation, warm-up, depth, attention reach.

Xiong et al. 2020 (ICML) show that at initialisation the gradient of the last
layer's parameters is O(d sqrt(ln d)) for post-norm, independent of depth L,
and O(d sqrt(ln d / L)) for pre-norm, so post-norm needs a learning-rate
warm-up while pre-norm does not; Liu et al. 2020 (EMNLP) on deep post-norm
stacks that fail to train.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from .. import fitting, keys, runs, tasks
from .. import train as tr
from ..claims import Finding
from ..models import create
from ..models.transformer import Encoder
from ..rules import transformer_norm as rules


def seq_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Token-level cross-entropy for ``(N, L, V)`` logits and ``(N, L)`` targets (a target of -100 is ignored,
    as in masked-character modelling)."""
    return F.cross_entropy(out.transpose(1, 2), y, ignore_index=-100)


def seq_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of wrong tokens among the scored ones (targets of -100 are not scored)."""
    scored = y != -100
    return ((out.argmax(-1) != y) & scored).sum().float() / scored.sum().clamp(min=1)


def build(norm: str, depth: int, vocab: int, seq_len: int, d_model: int, n_heads: int, d_ff: int, seed: int
          ) -> Encoder:
    """A freshly initialised encoder; the seed fixes the initialisation."""
    tr.seed_everything(seed)
    return create(f"encoder-{norm}", vocab=vocab, seq_len=seq_len, depth=depth, d_model=d_model, n_heads=n_heads,
                  d_ff=d_ff)


def init_grad_norms(norm: str, depth: int, data: TensorDataset, seeds: list[int], n_batches: int = 4,
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
                acc[i] += torch.sqrt(sum((p.grad ** 2).sum() for p in block.parameters())).item() / n_batches
                w2[i] += block.ff[2].weight.grad.norm().item() / n_batches
        rows += [{"norm": norm, "depth": depth, "seed": seed, "layer": i + 1, "block_grad": acc[i], "w2_grad": w2[i]}
                 for i in range(depth)]
    return pd.DataFrame(rows)


def loglog_slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log(y) against log(x): 0 for constant, -0.5 for 1/sqrt(x)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def run_config(norm: str, depth: int, cfg: tr.TrainConfig, data_ids: list[str], device="cpu", **size) -> dict:
    """The config of one encoder run (``train_run`` trains it; the run store keys it): placement, depth, the
    encoder's sizes, the recipe (its seed, rate and warm-up included), the data's fingerprints and the device
    kind."""
    recipe = cfg.recipe()
    return {"name": f"encoder-{norm}", "study": "norm", "norm": norm, "depth": depth, "size": size, "recipe": recipe,
            "train_data": data_ids[0], "test_data": data_ids[1], "device": torch.device(device).type}


def train_run(config: dict, train_set: TensorDataset, test_set: TensorDataset,
              device: torch.device | str | None = None) -> tuple[dict, dict]:
    """Train one encoder on a sequence task from its config (``runs.run_grid``'s ``fn``; Adam, optional warm-up);
    returns its training record (history, diverged, final, convergence) and its weights (kept for every run, so a
    run of the depth sweep and of the warm-up grid is one run)."""
    x, y = train_set.tensors
    vocab, seq_len = int(max(x.max(), y.max())) + 1, x.shape[1]
    r = config["recipe"]
    size = config["size"]
    f = fitting.fit(config, train_set, test_set, device, loss_fn=seq_loss, err_fn=seq_error,
                    make=lambda: build(config["norm"], config["depth"], vocab, seq_len, seed=r["seed"], **size),
                    desc=f"{config['name']}-{config['depth']} lr={r['lr']:g} wu={r['warmup_steps']} s{r['seed']}")
    res = f.result
    record = {"history": res.history.to_dict("list"), "diverged": res.diverged, "final": res.final,
              "convergence": res.convergence}
    return record, f.state()


def _train(jobs: list[tuple[str, int, tr.TrainConfig]], train_set, test_set, weights: bool, device, store, desc,
           **size) -> list[tuple[tr.TrainResult, Encoder | None]]:
    """Each job ``(norm, depth, cfg)`` trained, or loaded from ``store`` when finished: its ``TrainResult`` and,
    with ``weights``, its trained encoder."""
    size = {"d_model": 64, "n_heads": 4, "d_ff": 128, **size}
    ids = [keys.tensor_fingerprint(*d.tensors[:2]) for d in (train_set, test_set)]
    configs = [run_config(n, d, c, ids, device, **size) for n, d, c in jobs]
    x, y = train_set.tensors
    vocab, seq_len = int(max(x.max(), y.max())) + 1, x.shape[1]
    out = []
    for r in runs.run_grid(configs, train_run, (train_set, test_set), store, device, desc):
        res = r["result"]
        result = tr.TrainResult(pd.DataFrame(res["history"]), res["diverged"], res["final"], res["convergence"])
        model = None
        if weights:
            c = r["config"]
            model = build(c["norm"], c["depth"], vocab, seq_len, seed=c["recipe"]["seed"], **c["size"])
            model.load_state_dict(runs.state_of(r, store))
            model = model.to(device)
        out.append((result, model))
    return out


def outcome(res: tr.TrainResult, vocab: int, tail: float = 0.1) -> dict:
    """Did the run train? ``final_loss`` is the mean loss over the last ``tail`` of the steps.

    ``trained``: no divergence and a final loss below half of ln(vocab) (chance).
    ``diverged``: the loss became NaN/inf, exploded, or ended above where it started.
    ``converged``: the training loop's convergence flag (the loss had stopped falling; ``train.convergence``).
    """
    h = res.history
    start = float(h.loss.iloc[0])
    final = float(h.loss.iloc[-max(1, int(len(h) * tail)):].mean())
    diverged = bool(res.diverged or not math.isfinite(final) or final > start)
    return {"start_loss": start, "final_loss": final if math.isfinite(final) else float("nan"), "diverged": diverged,
            "trained": bool((not diverged) and final < 0.5 * math.log(vocab)), "converged": res.converged,
            "test_err": res.final.get("test_err", float("nan"))}


def warmup_grid(arms: list[tuple[str, int]], depth: int, lrs: list[float], seeds: list[int],
                train_set: TensorDataset, test_set: TensorDataset, cfg: tr.TrainConfig, device="cpu", store=None,
                **size) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Train every arm ``(norm, warm-up steps)`` at every learning rate and seed at one depth.

    Returns (histories, outcomes, models): one outcome row per run (``outcome`` plus norm, lr, warmup, seed,
    depth, epochs) and the trained models by ``(norm, lr, warmup, seed)``. Runs go through ``runs.run_grid``: with a
    ``runs.RunStore``, a finished run loads (with its weights) instead of training again.
    """
    vocab = int(train_set.tensors[1].max()) + 1
    keys = [(norm, lr, wu, seed) for norm, wu in arms for lr in lrs for seed in seeds]
    jobs = [(norm, depth, replace(cfg, lr=lr, warmup_steps=wu, seed=seed)) for norm, lr, wu, seed in keys]
    hist, outs, models = [], [], {}
    for (norm, lr, wu, seed), (res, model) in zip(keys, _train(jobs, train_set, test_set, True, device, store,
                                                                  "05: warm-up grid", **size)):
        hist.append(res.history.assign(norm=norm, lr=lr, warmup=wu, seed=seed, depth=depth))
        outs.append({"norm": norm, "depth": depth, "lr": lr, "warmup": wu, "seed": seed, "epochs": cfg.epochs,
                     **outcome(res, vocab)})
        models[(norm, lr, wu, seed)] = model
    return pd.concat(hist, ignore_index=True), pd.DataFrame(outs), models


def settle_stuck(outs: pd.DataFrame, train_set: TensorDataset, test_set: TensorDataset, cfg: tr.TrainConfig,
                 device="cpu", store=None, factor: float = 2.0, **size) -> pd.DataFrame:
    """Is a stuck run's failure a stall or slowness? Every run that neither trained nor diverged and whose loss was
    still falling (not converged) is trained again from scratch, same seed and recipe, for ``factor`` times the
    steps; ``stuck_at_2x`` is True when that run did not train either (the failure persisted: settled for T2 and
    T3), False when it trained (the first run was only slow), and NaN for runs that needed no check."""
    vocab = int(train_set.tensors[1].max()) + 1
    stuck = outs[~outs.trained.astype(bool) & ~outs.diverged.astype(bool) & ~outs.converged.astype(bool)]
    if not len(stuck):
        return outs.assign(stuck_at_2x=None)
    jobs = [(r.norm, int(r.depth), replace(cfg, lr=r.lr, warmup_steps=int(r.warmup), seed=int(r.seed),
                                           epochs=cfg.epochs * factor)) for r in stuck.itertuples()]
    again = [outcome(res, vocab)["trained"] for res, _ in _train(jobs, train_set, test_set, False, device, store,
                                                                 "05: stuck runs at twice the steps", **size)]
    out = outs.copy()
    out["stuck_at_2x"] = pd.Series([not t for t in again], index=stuck.index, dtype=object)
    return out


def depth_sweep(norms: list[str], depths: list[int], seeds: list[int], lr: float, train_set: TensorDataset,
                test_set: TensorDataset, cfg: tr.TrainConfig, device="cpu", done: pd.DataFrame | None = None,
                store=None, warmup: int = 0, **size) -> pd.DataFrame:
    """Outcomes of every (norm, depth, seed) trained at ``lr`` with ``warmup`` linear warm-up steps (0: none;
    Liu et al.'s depth question, which they asked with warm-up, so that it does not re-test T2).

    Rows of ``done`` (earlier outcomes, e.g. ``warmup_grid``'s) with the same norm, depth, seed, ``lr``, warm-up
    and ``cfg.epochs`` are reused rather than retrained: the same seed and recipe give the same run. The other runs go
    through ``runs.run_grid`` (with a ``runs.RunStore``: loaded when finished).
    """
    vocab = int(train_set.tensors[1].max()) + 1
    rows, jobs = {}, []
    for norm in norms:
        for depth in depths:
            for seed in seeds:
                hit = None if done is None else done[(done.norm == norm) & (done.depth == depth)
                                                     & (done.seed == seed) & (done.lr == lr) & (done.warmup == warmup)
                                                     & (done.epochs == cfg.epochs)]
                if hit is not None and len(hit):
                    rows[(norm, depth, seed)] = hit.iloc[0].to_dict()
                else:
                    jobs.append((norm, depth, replace(cfg, lr=lr, warmup_steps=warmup, seed=seed)))
    for (norm, depth, c), (res, _) in zip(jobs, _train(jobs, train_set, test_set, False, device, store,
                                                        "05: depth sweep", **size)):
        rows[(norm, depth, c.seed)] = {"norm": norm, "depth": depth, "lr": lr, "warmup": warmup, "seed": c.seed,
                                       "epochs": cfg.epochs, **outcome(res, vocab)}
    return pd.DataFrame([rows[(n, d, s)] for n in norms for d in depths for s in seeds])


def text_study(text: tuple | None, depth: int, lrs: list[float], warmup: int, seeds: list[int],
               t3_depths: list[int], t3_lr: float, t3_seeds: list[int], cfg: tr.TrainConfig, device="cpu", store=None,
               t3_warmup: int = 0, t3_epochs: float | None = None, **size) -> dict | None:
    """T2 and T3 again on a real text task: ``text`` is ``data.text_task``'s ``(train, test, about)`` (None: no
    text file named, nothing runs). The same arms, rates, seeds and recipe as on the procedural task: the warm-up
    grid at ``depth`` and the depth sweep at ``t3_lr`` with ``t3_warmup`` steps for ``t3_epochs`` (None: ``cfg``'s);
    each claim's rule applied to these runs alone.

    Returns:
        None, or ``{"task", "described", "hist", "outs", "t3", "vocab", "T2", "T3"}``: the task in a few words and
        in full, the warm-up
        grid's histories and outcomes, the depth sweep's outcomes, the symbols scored, and the two decisions.
    """
    if text is None:
        return None
    train_set, test_set, about = text
    hist, outs, _ = warmup_grid([("post", 0), ("post", warmup), ("pre", 0)], depth, lrs, seeds, train_set, test_set,
                                cfg, device, store, **size)
    t3 = depth_sweep(["post", "pre"], t3_depths, t3_seeds, t3_lr, train_set, test_set,
                     replace(cfg, epochs=t3_epochs or cfg.epochs), device, done=outs, store=store, warmup=t3_warmup,
                     **size)
    task = f"masked-character modelling of the text file {about['file']}"
    described = (f"{task} ({about['characters']:,} characters; "
                 f"{about['symbols']} symbols: the {about['symbols'] - 2} most frequent, one for the rest, the mask; "
                 f"windows of {about['seq_len']}, {about['mask_rate']:.0%} masked; the last {about['held_out']:.0%} "
                 f"of the text held out): {len(train_set)} training / {len(test_set)} held-out windows")
    return {"task": task, "described": described, "hist": hist, "outs": outs, "t3": t3,
            "vocab": int(train_set.tensors[1].max()) + 1,
            "T2": rules.t2(outs.to_dict("records")), "T3": rules.t3(t3.to_dict("records"))}


def run_summary(*outcomes: pd.DataFrame) -> pd.DataFrame:
    """Runs, trained, diverged and converged counts and the median final loss per placement, depth, rate and
    warm-up, over the outcome tables given (a run in two of them, e.g. reused by the depth sweep, counts once)."""
    runs_ = pd.concat(outcomes).drop_duplicates(["norm", "depth", "lr", "warmup", "seed"])
    return runs_.groupby(["norm", "depth", "lr", "warmup"]).agg(
        runs=("trained", "size"), trained=("trained", "sum"), diverged=("diverged", "sum"),
        converged=("converged", "sum"), final_loss=("final_loss", "median"))


def text_evidence(text: dict | None, claim: str) -> dict:
    """What ``text_study`` adds to T2's or T3's evidence: the task and that claim's verdict and numbers on it (the
    procedural verdict stays the recorded one); nothing without a text file."""
    if text is None:
        return {}
    d = text[claim]
    return {"text_task": {"data": text["described"], "verdict": d.verdict, "rule_numbers": d.numbers}}


def grads_run(config: dict, data: TensorDataset, device: torch.device | str | None = None) -> tuple[dict, None]:
    """``init_grad_norms`` of one placement and depth from its config (``runs.run_grid``'s ``fn``), as columns of
    lists."""
    device, _ = runs.task_device(device, config)
    a = config["args"]
    return init_grad_norms(a["norm"], a["depth"], data, a["seeds"], a["n_batches"], a["batch_size"], device=device,
                           **a["size"]).to_dict("list"), None


def grad_study(norms: list[str], depths: list[int], data: TensorDataset, seeds: list[int], n_batches: int,
               batch_size: int, device="cpu", store=None, **size) -> pd.DataFrame:
    """``init_grad_norms`` for every placement and depth, one table; each (placement, depth) measured once, as a run
    of ``runs.run_grid`` (``grads_run``) keyed by its arguments, the data and the code it reaches, so with a
    ``runs.RunStore`` re-executing the notebook loads the table."""
    size = {"d_model": 64, "n_heads": 4, "d_ff": 128, **size}
    x, y = data.tensors
    vocab, seq_len = int(max(x.max(), y.max())) + 1, x.shape[1]
    configs = [{"name": f"encoder-{n}", "study": "norm-at-init", "model_args": {"vocab": vocab, "seq_len": seq_len,
                                                                               "depth": d, **size},
                "args": {"norm": n, "depth": d, "seeds": list(seeds), "n_batches": n_batches, "batch_size": batch_size,
                         "size": size},
                "data": keys.tensor_fingerprint(*data.tensors[:2]), "device": torch.device(device).type}
               for n in norms for d in depths]
    recs = runs.run_grid(configs, grads_run, (data,), store, device, "05: gradients at initialisation")
    return pd.concat([pd.DataFrame(r["result"]) for r in recs], ignore_index=True)


def t1_inputs(grads: pd.DataFrame) -> dict[str, list]:
    """The last layer's W2 gradient norms as ``rules.t1`` reads them: per (depth, seed) point for each placement
    (with each point's seed), and per seed at the deepest depth (sorted seed order for both placements)."""
    last = grads[grads.layer == grads.depth].pivot_table(index=["depth", "seed"], columns="norm", values="w2_grad")
    deepest = last.loc[last.index.get_level_values("depth").max()]
    return {"depths": [int(d) for d in last.index.get_level_values("depth")],
            "seeds": [int(s) for s in last.index.get_level_values("seed")], "post": list(last["post"]),
            "pre": list(last["pre"]), "post_deepest": list(deepest["post"]), "pre_deepest": list(deepest["pre"])}


def reach_study(models: dict[tuple[str, int], Encoder], tokens: torch.Tensor, window: int, trained: dict,
                **build_args) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``attention_reach`` of each trained model and of the same model at initialisation.

    ``models`` maps ``(norm, seed)`` to a trained encoder; ``build_args`` (vocab, seq_len, depth, d_model, n_heads,
    d_ff) rebuild its initialisation with ``build``. Returns (per layer, per model): the per-model table has the
    largest far share and distance over layers (trained and at initialisation), ``reach_change``: the signed change
    of attention distance (trained minus initial) in the layer training moved most (``moved_layer``), the mean input
    dependence (trained and at initialisation), and whether the model trained.
    """
    layers, summary = [], []
    for (norm, seed), model in models.items():
        now = attention_reach(model, tokens, window)
        init = attention_reach(build(norm, seed=seed, **build_args), tokens, window)
        layers.append(now.assign(norm=norm, seed=seed))
        change = now.distance - init.distance  # per layer, trained minus initial
        summary.append({"norm": norm, "seed": seed, "far_share": now.beyond_window.max(),
                        "far_share_init": init.beyond_window.max(), "reach_change": change[change.abs().idxmax()],
                        "moved_layer": int(now.layer[change.abs().idxmax()]), "distance": now.distance.max(),
                        "distance_init": init.distance.max(), "input_dependence": now.input_dependence.mean(),
                        "input_dependence_init": init.input_dependence.mean(), "partner": now.partner.max(),
                        "uniform_distance": now.uniform_distance.iloc[0], "trained": bool(trained[(norm, seed)])})
    return pd.concat(layers, ignore_index=True), pd.DataFrame(summary)


def t4_study(trained_models: dict, outs: pd.DataFrame, warmup: int, lr: float, seeds: list[int],
             test_set: TensorDataset, n_train: int, n_test: int, seed: int, window: int, cfg: tr.TrainConfig,
             device="cpu", store=None, probes: int = 256, **build_args) -> dict:
    """T4's measurements: attention reach of the reversal models of ``warmup_grid`` at ``lr`` (post-norm with
    warm-up, pre-norm without; every seed) and of the same arms trained on the local control task (``local_task``,
    the same sizes, recipe and data seeds), each against the same model at initialisation, on ``probes`` held-out
    sequences. ``build_args``: vocab, seq_len, depth, d_model, n_heads, d_ff.

    Returns ``{"layers", "reversal", "control", "per_model", "example", "tokens"}``: per-layer reach (with a
    ``task`` column), the per-model tables of each task (``reach_study``), both together, and the first seed's
    pre-norm model of each task with its probe tokens (for ``plot_attention_maps``).
    """
    vocab, seq_len, depth = (build_args[k] for k in ("vocab", "seq_len", "depth"))
    size = {k: v for k, v in build_args.items() if k in ("d_model", "n_heads", "d_ff")}
    arms = (("post", warmup), ("pre", 0))
    local_train = tasks.local_task(n_train, seq_len, vocab, seed=seed)
    local_test = tasks.local_task(n_test, seq_len, vocab, seed=seed + 10_000)
    _, local_outs, local_models = warmup_grid(list(arms), depth, [lr], seeds, local_train, local_test, cfg, device,
                                              store, **size)
    tokens = {"reversal": test_set.tensors[0][:probes], "control": local_test.tensors[0][:probes]}
    tables, layers = {}, []
    for task, models, done in (("reversal", trained_models, outs), ("control", local_models, local_outs)):
        pick = {(n, s): models[(n, lr, wu, s)] for n, wu in arms for s in seeds}
        ok = {(r.norm, r.seed): r.trained for r in done[done.lr == lr].itertuples()
              if (r.norm, r.warmup) in arms}
        per_layer, tables[task] = reach_study(pick, tokens[task], window, ok, **build_args)
        layers.append(per_layer.assign(task=task))
    example = {"reversal": trained_models[("pre", lr, 0, seeds[0])], "control": local_models[("pre", lr, 0, seeds[0])]}
    per_model = pd.concat([t.assign(task=k) for k, t in tables.items()], ignore_index=True)
    return {"layers": pd.concat(layers, ignore_index=True), "reversal": tables["reversal"],
            "control": tables["control"], "per_model": per_model, "example": example, "tokens": tokens}


# --- the claims: each helper returns (decision, headline) -------------------------------------------------------

def t1_claim(grads: pd.DataFrame, seeds: int):
    """T1 from ``grad_study``'s table: the last layer's gradient against depth for both placements."""
    d = rules.t1(**t1_inputs(grads))
    slope = lambda k: d.numbers.get(k, {}).get("estimate", float("nan"))  # noqa: E731
    return Finding(d, f"last-layer gradient vs depth at init: log-log slope {slope('slope_post'):.2f} for post-norm, "
                      f"{slope('slope_pre'):.2f} for pre-norm (theory: 0 and -0.5; {seeds} seeds)")


def _text_clause(text: dict | None, claim: str) -> str:
    if text is None:
        return ""
    return f"; on the text task ({text['task']}): {text[claim].verdict}"


def t2_claim(outs: pd.DataFrame, lrs: list[float], seeds: int, text: dict | None = None):
    """T2 from ``warmup_grid``'s outcomes: what warm-up does for post-norm, and pre-norm without it (and, with
    ``text_study``'s result, that task's verdict in the headline)."""
    d = rules.t2(outs.to_dict("records"))
    slow = sum(d.numbers.get("trained only at twice the steps", {}).values())
    outs = pd.DataFrame(rules.settled(outs.to_dict("records")))  # a run that trained at twice the steps: trained
    post0 = outs[(outs.norm == "post") & (outs.warmup == 0)]
    fails = ", ".join(f"{int((~post0[post0.lr == lr].trained).sum())}/{seeds} at lr {lr:g}" for lr in lrs)
    warm = outs[(outs.norm == "post") & (outs.warmup > 0)].trained.sum()
    pre = outs[(outs.norm == "pre") & (outs.warmup == 0)].trained.sum()
    late = f" ({slow} more trained only at twice the steps)" if slow else ""
    runs = seeds * len(lrs)
    return Finding(d, f"post-norm without warm-up fails in {fails}{late}; with warm-up it trains in {warm}/{runs} "
                      f"runs; pre-norm without warm-up in {pre}/{runs}" + _text_clause(text, "T2"))


def warmup_words(steps: int) -> str:
    """``"without warm-up"`` or ``"with 400 warm-up steps"``."""
    return f"with {steps} warm-up steps" if steps else "without warm-up"


def t3_claim(runs: pd.DataFrame, lr: float, seeds: int, text: dict | None = None, warmup: int = 0):
    """T3 from ``depth_sweep``'s outcomes: runs that trained per placement and depth, with ``warmup`` steps (and,
    with ``text_study``'s result, that task's verdict in the headline)."""
    d = rules.t3(runs.to_dict("records"))
    rate = pd.DataFrame(rules.settled(runs.to_dict("records"))).groupby(["norm", "depth"]).trained.sum()
    return Finding(d, f"{warmup_words(warmup)} at lr {lr:g}, runs that trained: " + "; ".join(
               f"depth {dp}: post-norm {rate['post', dp]}/{seeds}, pre-norm {rate['pre', dp]}/{seeds}"
               for dp in sorted(runs.depth.unique())) + _text_clause(text, "T3"))


def t4_claim(reversal: pd.DataFrame, control: pd.DataFrame, window: int):
    """T4 from ``reach_study``'s per-model tables on the reversal task and on the local control (both placements,
    every seed)."""
    both = pd.concat([reversal.assign(task="reversal"), control.assign(task="control")], ignore_index=True)
    d = rules.t4(both.task, both.far_share, both.reach_change, both.trained, both.input_dependence,
                 float(reversal.uniform_distance.iloc[0]), seeds=both.seed)
    med = lambda t, c: t[c].median()  # noqa: E731
    return Finding(d, f"in the layer training moved most, attention reaches {med(reversal, 'reach_change'):+.1f} "
                      f"tokens farther than at initialisation on reversal and {med(control, 'reach_change'):+.1f} on "
                      f"the local control (uniform attention: {reversal.uniform_distance.iloc[0]:.1f}); on reversal "
                      f"{med(reversal, 'far_share'):.0%} of the farthest layer's attention lies beyond {window} "
                      f"tokens, input dependence {med(reversal, 'input_dependence'):.2f} (at init "
                      f"{med(reversal, 'input_dependence_init'):.2f}); medians over {len(reversal)} models a task")


@torch.no_grad()
def attention_reach(model: Encoder, tokens: torch.Tensor, window: int = 2) -> pd.DataFrame:
    """How far attention reaches, per layer, on ``tokens``.

    Columns: ``distance`` (attention-weighted mean |i - j|), ``entropy`` (nats,
    mean over queries), ``beyond_window`` (attention mass on keys with
    |i - j| > window), ``partner`` (mass on the reversal partner j = L-1-i),
    ``input_dependence`` (mean total-variation distance between the attention
    rows of two different inputs at the same query position), and the same
    distance for uniform attention as ``uniform_distance``.
    """
    model.eval()
    maps = model.attention_maps(tokens)
    seq_len = tokens.shape[1]
    idx = torch.arange(seq_len)
    dist = (idx[:, None] - idx[None, :]).abs().float()
    partner = torch.zeros(seq_len, seq_len)
    partner[idx, seq_len - 1 - idx] = 1
    uniform = dist.mean().item()
    rows = []
    for layer, a in enumerate(maps, start=1):
        a = a.float().cpu()
        ent = -(a * a.clamp(min=1e-12).log()).sum(-1).mean().item()
        tv = 0.5 * (a[0::2][: len(a) // 2] - a[1::2][: len(a) // 2]).abs().sum(-1).mean().item() if len(a) > 1 else 0.0
        rows.append({"layer": layer, "distance": (a * dist).sum(-1).mean().item(), "entropy": ent,
                     "beyond_window": (a * (dist > window)).sum(-1).mean().item(),
                     "partner": (a * partner).sum(-1).mean().item(), "input_dependence": tv,
                     "uniform_distance": uniform})
    return pd.DataFrame(rows)
