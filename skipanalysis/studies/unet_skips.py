"""Segmentation metrics and training for the U-Net study (notebook 06; data: ``unet_skips_data``).

Data: the ISBI 2012 EM membrane slices (Cardona et al. 2010; Ronneberger et al.
2015 trained U-Net on them), split by whole slices: the first slices are cut
into tiles for training, the last are held out whole (``unet_skips_data.isbi_split``).

Metrics: Dice and IoU (Jaccard) on binary masks; a boundary F-score in the
spirit of the BSDS / DAVIS contour measure (Martin et al. 2004; Perazzi et al.
2016): a predicted boundary pixel counts as correct when a true boundary pixel
lies within ``tol`` pixels (Chebyshev distance), and vice versa; where the
errors a variant adds lie relative to the class boundaries (claim U1,
``added_errors``); and IoU per structure category (claim U2), with membrane
pixels grouped by their local thickness (the diameter of the largest disc that
fits inside the membrane and covers the pixel; Hildebrand and Ruegsegger 1997).
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

from .. import fitting, keys, runs, stats
from ..claims import Finding
from ..measure.timing import interleaved_times, paired_ratio
from ..models import create
from ..models.unet import UNet, matched_decoder_mid
from ..rules import unet_skips as rules
from ..selection import best_rate, selection_seed
from ..setting import Setting


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).bool()


def dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image Dice of binary masks ``(N, ...)``; two empty masks score 1."""
    p, t = _flat(pred), _flat(target)
    inter, total = (p & t).sum(1).double(), (p.sum(1) + t.sum(1)).double()
    return torch.where(total == 0, torch.ones_like(total), 2 * inter / total.clamp(min=1))


def iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image intersection over union of binary masks ``(N, ...)``; two empty masks score 1."""
    p, t = _flat(pred), _flat(target)
    inter, union = (p & t).sum(1).double(), (p | t).sum(1).double()
    return torch.where(union == 0, torch.ones_like(union), inter / union.clamp(min=1))


def _as_4d(m: torch.Tensor) -> torch.Tensor:
    m = m.float()
    return m[:, None] if m.dim() == 3 else m


def boundary(mask: torch.Tensor) -> torch.Tensor:
    """Boundary pixels of binary masks ``(N, [1,] H, W)``: foreground pixels with a background
    4-neighbour.

    Pixels outside the image count as background.
    """
    m = _as_4d(mask)
    # 4-neighbourhood erosion: minimum over the pixel's 4 neighbours
    p = F.pad(m, (1, 1, 1, 1), value=0.0)
    cross = torch.minimum(torch.minimum(p[..., :-2, 1:-1], p[..., 2:, 1:-1]),
                          torch.minimum(p[..., 1:-1, :-2], p[..., 1:-1, 2:]))
    inner = torch.minimum(m, cross)
    return (m - inner).bool().reshape(mask.shape)


def boundary_f(pred: torch.Tensor, target: torch.Tensor, tol: int = 1) -> torch.Tensor:
    """Per-image boundary F-score with a tolerance of ``tol`` pixels; two empty boundaries score
    1."""
    bp, bt = _as_4d(boundary(pred)), _as_4d(boundary(target))
    k = 2 * tol + 1
    near_t = F.max_pool2d(bt, k, stride=1, padding=tol) > 0
    near_p = F.max_pool2d(bp, k, stride=1, padding=tol) > 0
    np_, nt = bp.sum((1, 2, 3)).double(), bt.sum((1, 2, 3)).double()
    precision = torch.where(np_ == 0, (nt == 0).double(),
                            (bp.bool() & near_t).sum((1, 2, 3)) / np_.clamp(min=1))
    recall = torch.where(nt == 0, (np_ == 0).double(),
                         (bt.bool() & near_p).sum((1, 2, 3)) / nt.clamp(min=1))
    f = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return torch.where((np_ == 0) & (nt == 0), torch.ones_like(f), f)


def category_iou(pred: torch.Tensor, target: torch.Tensor, categories: torch.Tensor,
                 names: dict[int, str],
                 margin: int = 2) -> pd.DataFrame:
    """IoU per structure category, pooled over images.

    For category c: true positives and false negatives are the predicted and
    missed pixels of c's structures; false positives are predicted foreground
    pixels that are background and lie within ``margin`` pixels of a c structure
    (so a thin line is charged for the halo it smears, not for other objects).
    """
    p, t = _as_4d(pred).bool(), _as_4d(target).bool()
    rows = []
    for c, name in names.items():
        in_c = (categories == c)[:, None]
        near = F.max_pool2d(in_c.float(), 2 * margin + 1, stride=1, padding=margin) > 0
        tp = (p & in_c).sum().item()
        fn = (~p & in_c).sum().item()
        fp = (p & ~t & near).sum().item()
        rows.append({"category": name, "pixels": int(in_c.sum()), "iou": tp / max(1, tp + fp + fn)})
    return pd.DataFrame(rows)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice loss (a common U-Net objective), in float32 even under
    autocast."""
    logits, target = logits.float(), target.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2, 3))
    soft_dice = (2 * inter + 1) / (prob.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + (1 - soft_dice).mean()


def dice_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean Dice of the thresholded prediction (the error logged during training)."""
    return 1 - dice(logits > 0, target > 0.5).mean()


def train_run(config: dict, train_set: TensorDataset, test_set: TensorDataset,
              device: torch.device | str | None = None) -> tuple[dict, dict]:
    """Train one U-Net of notebook 06 from its config (``runs.run_grid``'s ``fn``): seed, build
    ``unet-<skip>`` by the factory, train with the recipe (BCE + Dice loss); returns its row (skip,
    seed, lr, params, diverged, converged, late_share, train_loss, seconds) and its weights on the
    CPU."""
    f = fitting.fit(config, train_set, test_set, device, loss_fn=bce_dice_loss, err_fn=dice_error,
                    desc=f"{config['skip']} s{config['seed']} lr{config['lr']:g}")
    row = {"skip": config["skip"], "seed": config["seed"], "lr": config["lr"], **f.outcome(),
           "train_loss": f.final("train_loss"), "seconds": f.seconds}
    return row, f.state()


@torch.no_grad()
def predict(model: UNet, images: torch.Tensor, device: torch.device | str = "cpu",
            batch_size: int = 128
            ) -> torch.Tensor:
    """Binary predictions (logit > 0) for ``images``, on the CPU."""
    model.eval()
    outs = [(model(images[i:i + batch_size].to(device)) > 0).cpu()
            for i in range(0, len(images), batch_size)]
    return torch.cat(outs)


def rand_f(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Foreground-restricted Rand F-score (V_rand) of one membrane map, the ISBI 2012 challenge's
    measure (Arganda-Carreras et al. 2015): the cells are the 4-connected regions of non-membrane
    pixels in the prediction and in the truth; over the pixels inside true cells, with the
    contingency table ``p_ij`` of true cell ``i`` and predicted region ``j`` (predicted membrane one
    region of its own) and its margins ``a_i``, ``b_j``, ``V_rand = 2 sum p_ij^2 / (sum a_i^2 + sum
    b_j^2)``: 1 when the cells are split and merged as in the truth."""
    from scipy import ndimage

    true_cells, _ = ndimage.label(~(target > 0.5).squeeze().cpu().numpy())
    pred_cells, n_pred = ndimage.label(~pred.bool().squeeze().cpu().numpy())
    inside = true_cells > 0
    if not inside.any():
        return float("nan")
    pair = true_cells[inside].astype(np.int64) * (n_pred + 1) + pred_cells[inside]
    p = np.bincount(pair).astype(np.float64) / inside.sum()
    a = np.bincount(true_cells[inside]).astype(np.float64) / inside.sum()
    b = np.bincount(pred_cells[inside]).astype(np.float64) / inside.sum()
    return float(2 * (p ** 2).sum() / ((a ** 2).sum() + (b ** 2).sum()))


def scores(pred: torch.Tensor, target: torch.Tensor, tol: int = 1) -> dict[str, float]:
    """Mean Dice, IoU, boundary F (tolerance ``tol``) and the ISBI challenge's V_rand (``rand_f``)
    over images."""
    t = target > 0.5
    return {"dice": dice(pred, t).mean().item(), "iou": iou(pred, t).mean().item(),
            "boundary_f": boundary_f(pred, t, tol).mean().item(),
            "rand_f": float(sum(rand_f(p, q) for p, q in zip(pred, t)) / len(pred))}


def step_times(models: dict[str, UNet], images: torch.Tensor, device: torch.device | str = "cpu",
               rounds: int = 7,
               min_run_time: float = 0.2) -> dict[str, list[float]]:
    """Forward+backward time of one batch for each model, in ``rounds`` interleaved rounds
    (``measure.timing.interleaved_times``: every round times every model once, so load drift hits
    all alike)."""
    device = torch.device(device)
    x = images.to(device)

    def step_of(model: UNet):
        model.to(device).train()

        def step():
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()
        return step

    return interleaved_times({name: step_of(m) for name, m in models.items()}, device, rounds,
                             min_run_time)


def cost_table(kept: pd.DataFrame, times: dict[str, list[float]],
               variants: list[str]) -> pd.DataFrame:
    """Per variant: parameters, the median step time over the rounds (ms) and the kept runs' mean
    IoU."""
    return pd.DataFrame({"parameters": kept.groupby("skip").params.first(),
                         "step time (ms)": {v: 1e3 * float(np.median(times[v])) for v in variants},
                         "IoU": kept.groupby("skip").iou.mean()}).loc[variants]


def time_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """``a``'s step time over ``b``'s: the median of the per-round ratios (a round slowed for both
    cancels)."""
    ratio, _, _ = paired_ratio(times[a], times[b])
    return float(ratio)


def near_boundary(masks: torch.Tensor, band: int = 1) -> torch.Tensor:
    """Pixels with a pixel of the other class within ``band`` px (Chebyshev distance): the band
    along the boundaries between classes, on both sides. Masks ``(N, [1,] H, W)``; returns a bool
    tensor of that shape."""
    m = _as_4d(masks)
    k = 2 * band + 1
    near_fg = F.max_pool2d(m, k, stride=1, padding=band) > 0
    near_bg = F.max_pool2d(1 - m, k, stride=1, padding=band) > 0
    return (near_fg & near_bg).reshape(masks.shape)


def added_errors(pred_with: torch.Tensor, pred_without: torch.Tensor, target: torch.Tensor,
                 band: int = 1
                 ) -> dict[str, float]:
    """Where do the errors that removing the skips adds lie?

    A pixel is an added error when the net without skips gets it wrong and the
    net with skips (same seed) gets it right. Returns the count of added
    errors, how many lie in the boundary band (``near_boundary``), their share
    there; the control, the share of the with-skip net's own errors in the band;
    and the share of all pixels that lie in the band.
    """
    t = target > 0.5
    added = (pred_without.bool() != t) & (pred_with.bool() == t)
    own = pred_with.bool() != t
    near = near_boundary(t.float(), band)
    n_added, n_near = int(added.sum()), int((added & near).sum())
    n_own, n_own_near = int(own.sum()), int((own & near).sum())
    return {"added": n_added, "added_near": n_near, "share_added_near": n_near / n_added if n_added
            else math.nan,
            "share_control_near": n_own_near / n_own if n_own else math.nan,
            "share_pixels_near": near.float().mean().item()}


@dataclass(frozen=True)
class SkipDesign:
    """What ``skip_study`` trains and how it judges it: the skip ``variants`` (``unet-<variant>``),
    each for the compared ``seeds``; the U-Net's ``depth`` (poolings) and ``base`` (channels at full
    resolution); the rate grid ``lrs`` (None: the recipe's rate); the boundary F-score's ``tol`` in
    pixels; ``match_params`` (``add`` and ``none`` get concat's decoder weights,
    ``matched_decoder_mid``); the budget check's length ``check`` (times the steps; 0: none) and the
    held-out IoU gain ``plateau`` it may show for the variant to count as converged."""

    variants: list[str]
    seeds: list[int]
    depth: int = 3
    base: int = 16
    lrs: list[float] | None = None
    tol: int = 1
    match_params: bool = True
    check: float = 2.0
    plateau: float = 0.01

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> SkipDesign:
        """Notebook 06's three variants, ``seeds`` seeds from ``seed``; matched weights, a check at
        twice the steps."""
        return cls(["concat", "add", "none"], list(range(p["seed"], p["seed"] + p["seeds"])),
                   p["depth"], p["base"],
                   p["lrs"], p["tol"], plateau=p["plateau"])


def skip_study(design: SkipDesign, setting: Setting) -> tuple[pd.DataFrame, dict, dict]:
    """Train every (variant, seed) of ``design``, each variant at its best learning rate from
    ``lrs``, and score it.

    With ``match_params`` the ``add`` and ``none`` decoders get concat's convolution weights
    (``matched_decoder_mid``). With more than one rate in ``lrs``, a selection seed outside the
    sample is trained at every rate and ``selection.best_rate`` (lowest final training loss) picks
    the variant's rate; every compared seed then trains at it (its runs are kept). Seed ``s`` of
    every variant shares the initialisation seed and batch order. The runs train on
    ``setting.train`` with ``setting.cfg``; predictions are made on the held-out ``setting.test``.
    Runs go through ``runs.run_grid``: with a ``runs.RunStore`` as ``setting.store``, a finished run
    loads its weights instead of training again.

    Convergence is judged on what the claims read, held-out IoU, not on the training loss (a U-Net
    keeps fitting its training tiles long after its held-out score has settled: the loss of a concat
    net still fell at 6x the quick budget). The first seed of each variant is trained again from
    scratch for ``check`` times the steps (role "budget check", not in the sample); the variant has
    converged when that run's held-out IoU exceeds the first seed's by at most ``plateau`` (more
    steps would not lift its score). Each kept run's ``converged`` is its variant's;
    ``loss_converged`` keeps the training-loss criterion (``train.convergence``) for the record, and
    ``heldout_gain`` the budget check's IoU gain. ``check=0`` skips the check and keeps the loss
    criterion.

    Returns:
        ``(runs, preds, models)``: one row per run (skip, seed, lr, kept, role, params, diverged,
        converged, loss_converged, heldout_gain, late_share, train_loss, seconds, dice, iou,
        boundary_f, rand_f), the kept runs' binary predictions and models by ``(skip, seed)``.
    """
    variants, seeds, depth, base, check = (design.variants, design.seeds, design.depth, design.base,
                                           design.check)
    train_set, test_set, cfg, device, store = (setting.train, setting.test, setting.cfg,
                                               setting.device, setting.store)
    grid = list(design.lrs) if design.lrs else [cfg.lr]
    in_ch = train_set.tensors[0].shape[1]
    ids = [keys.tensor_fingerprint(*d.tensors[:2]) for d in (train_set, test_set)]

    def config(skip, seed, lr, factor=1.0):
        args = {"in_channels": in_ch, "depth": depth, "base": base,
                "decoder_mid": matched_decoder_mid(skip) if design.match_params else 1.0}
        longer = {} if factor == 1.0 else {"epochs": cfg.epochs * factor,
                                           "eval_every": round(cfg.eval_every * factor)}
        recipe = replace(cfg, seed=seed, lr=lr, **longer).recipe()
        return {"name": f"unet-{skip}", "study": "unet", "skip": skip, "seed": seed, "lr": lr,
                "model_args": args,
                "recipe": recipe, "train_data": ids[0], "test_data": ids[1],
                "device": torch.device(device).type}

    # each run's row, scored on the held-out set, with its prediction and model
    def ask(configs, desc):
        out = []
        for r in runs.run_grid(configs, train_run, (train_set, test_set), store, device, desc):
            model = create(r["config"]["name"], **r["config"]["model_args"])
            model.load_state_dict(runs.state_of(r, store))
            model = model.to(device)
            pred = predict(model, test_set.tensors[0], device)
            out.append(
                ({**r["result"], **scores(pred, test_set.tensors[1], design.tol)}, pred, model))
        return out

    pick = selection_seed(seeds) if len(grid) > 1 else None  # one rate: nothing to choose
    first = [] if pick is None else ask(
        [config(skip, pick, lr) for skip in variants for lr in grid], "06: rates")
    best = {}
    for j, skip in enumerate(variants):
        tried = first[j * len(grid):(j + 1) * len(grid)]
        best[skip] = best_rate((t[0]["lr"], t[0]["diverged"], t[0]["train_loss"])
                               for t in tried) if tried \
            else grid[0]
    rest = ask([config(skip, seed, best[skip]) for skip in variants for seed in seeds], "06: seeds")
    longer = ask([config(skip, seeds[0], best[skip], check) for skip in variants],
                 "06: twice the steps") \
        if check else []
    gain = {
        t[0]["skip"]: t[0]["iou"] - next(r[0]["iou"] for r in rest if r[0]["skip"] == t[0]["skip"]
                                             and r[0]["seed"] == seeds[0]) for t in longer}
    rows, preds, models = [], {}, {}
    for row, _, _ in sorted(first, key=lambda t: (variants.index(t[0]["skip"]), t[0]["lr"])):
        rows.append({**row, "kept": False, "role": "selection"})
    for row, pred, model in sorted(rest,
                                   key=lambda t: (variants.index(t[0]["skip"]), t[0]["seed"])):
        judged = {} if not check else {
            "converged": bool(not row["diverged"] and gain[row["skip"]] <= design.plateau),
                                       "heldout_gain": gain[row["skip"]]}
        rows.append(
            {**row, "loss_converged": row["converged"], **judged, "kept": True, "role": "sample"})
        preds[(row["skip"], row["seed"])], models[(row["skip"], row["seed"])] = pred, model
    for row, _, _ in longer:
        rows.append({**row, "loss_converged": row["converged"], "heldout_gain": gain[row["skip"]],
                     "kept": False,
                     "role": "budget check"})
    return pd.DataFrame(rows), preds, models


def boundary_shares(preds: dict, target: torch.Tensor, seeds: list[int], band: int = 1,
                    with_skip: str = "concat",
                    without: str = "none") -> pd.DataFrame:
    """``added_errors`` per seed: ``without``'s prediction against ``with_skip``'s of the same
    seed."""
    return pd.DataFrame(
        [{"seed": s, **added_errors(preds[(with_skip, s)], preds[(without, s)], target, band)}
                         for s in seeds])


def thickness_iou(preds: dict, target: torch.Tensor, categories: torch.Tensor,
                  names: dict[int, str],
                  margin: int = 2) -> pd.DataFrame:
    """``category_iou`` for every kept prediction: one row per (skip, seed, category), category
    index ``cat``."""
    frames = []
    for (skip, seed), pred in preds.items():
        df = category_iou(pred, target, categories, names, margin)
        frames.append(df.assign(cat=list(names), skip=skip, seed=seed))
    return pd.concat(frames, ignore_index=True)


# --- the claims: each helper returns (decision, headline) from the kept runs ----------------------

def _iou(kept: pd.DataFrame, variant: str, measure: str = "iou") -> list[float]:
    return kept[kept.skip == variant].sort_values("seed")[measure].tolist()


def _conv(kept: pd.DataFrame, *variants: str) -> list[bool]:
    return kept[kept.skip.isin(variants)].converged.tolist()


def u1_claim(kept: pd.DataFrame, shares: pd.DataFrame):
    """U1 from the kept runs (one per variant and seed) and ``boundary_shares``' table."""
    d = rules.u1(_iou(kept, "concat"), _iou(kept, "none"), shares.share_added_near,
                 shares.share_control_near,
                 shares.share_pixels_near.iloc[0], _conv(kept, "concat", "none"),
                 rand_with=_iou(kept, "concat", "rand_f"),
                 rand_without=_iou(kept, "none", "rand_f"))
    mean = lambda v, m="iou": stats.rate_interval(_iou(kept, v, m)).estimate  # noqa: E731
    return Finding(d, f"without long skips held-out IoU falls from {mean('concat'):.3f} to "
                      f"{mean('none'):.3f} and V_rand from {mean('concat', 'rand_f'):.3f} to "
                      f"{mean('none', 'rand_f'):.3f}; "
                      f"{stats.rate_interval(shares.share_added_near).estimate:.0%} of the added "
                      "errors lie in the boundary band, against "
                      f"{stats.rate_interval(shares.share_control_near).estimate:.0%} of the "
                      "with-skip net's own errors (the control) and "
                      f"{shares.share_pixels_near.iloc[0]:.0%} of the pixels")


def u2_claim(kept: pd.DataFrame, per_cat: pd.DataFrame, order: list[str]):
    """U2 from ``thickness_iou``'s table: per class (thinnest first) and seed, the IoU lost without
    skips."""
    wide = per_cat.pivot_table(index=["category", "seed"], columns="skip", values="iou")
    loss = {c: (wide.loc[c, "concat"] - wide.loc[c, "none"]).tolist() for c in order}
    d = rules.u2(loss, _conv(kept, "concat", "none"))
    return Finding(d,
                   f"dropping the skips costs the {order[0]} membranes "
                   f"{np.mean(loss[order[0]]):.3f} IoU and the {order[-1]} ones "
                   f"{np.mean(loss[order[-1]]):.3f}")


def u3_claim(kept: pd.DataFrame, margin: float, step_ratio: float):
    """U3: concat against add, with ``step_ratio`` = concat's training-step time over add's."""
    d = rules.u3(_iou(kept, "concat"), _iou(kept, "add"), margin, _conv(kept, "concat", "add"))
    diff = d.numbers["concat_minus_add"]
    return Finding(d, f"winner: {d.numbers['winner']}; concat minus add IoU "
                      f"{diff['estimate']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}] (margin "
                      f"{margin}); step time concat/add {step_ratio:.2f}x")
