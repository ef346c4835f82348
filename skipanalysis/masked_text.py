"""Real text for notebook 05: masked-character modelling of a UTF-8 text file (``text_task``); split
from ``data``, which holds the other data sets."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from .tasks import check_positive


def text_task(path: str | os.PathLike, n_train: int, n_test: int, seq_len: int = 64, seed: int = 0,
              mask_rate: float = 0.15, max_symbols: int = 64, held_out: float = 0.1
              ) -> tuple[TensorDataset, TensorDataset, dict]:
    """Masked-character modelling of a UTF-8 text file (a real text task for the encoders of
    notebook 05).

    The text's ``max_symbols - 2`` most frequent characters get their own ids (by frequency, ties by
    character); the others share one id, and the last id is the mask. Training windows of
    ``seq_len`` characters start at random offsets in the first ``1 - held_out`` of the text,
    held-out windows in the rest (no window crosses the cut). In each window every position is
    masked with probability ``mask_rate`` (at least one per window); the target is the true
    character at a masked position and -100 (ignored by the loss and the error) elsewhere, as in
    BERT's masked language modelling, which suits an encoder that sees the whole window.

    Returns:
        ``(train, test, about)``: ``TensorDataset(tokens (n, seq_len), targets (n, seq_len))`` each,
        and ``about`` with the file's name, its characters, the symbols kept and their share of the
        text.

    Raises:
        ValueError: the file is missing, not UTF-8, or too short for windows of ``seq_len`` on both
        sides of the
            cut; one line naming ``text_path``.
    """
    check_positive(n_train=n_train, n_test=n_test, seq_len=seq_len, max_symbols=max_symbols)
    if not 0 < mask_rate < 1 or not 0 < held_out < 1 or max_symbols < 3:
        raise ValueError(f"mask_rate={mask_rate!r}, held_out={held_out!r}: each in (0, 1); "
                         f"max_symbols={max_symbols!r}: at least 3")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(
            f"text_path={str(path)!r}: no such file; name a UTF-8 text file (make text builds the "
                         "full profile's, data/text/shakespeare.txt)") from None
    except UnicodeDecodeError as e:
        raise ValueError(
            f"text_path={str(path)!r}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    cut = int(len(text) * (1 - held_out))
    if min(cut, len(text) - cut) < seq_len:
        raise ValueError(
            f"text_path={str(path)!r}: {len(text):,} characters; windows of seq_len={seq_len} on "
            "both sides of the held-out cut need at least "
            f"{math.ceil(seq_len / min(held_out, 1 - held_out)):,}")
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    kept = sorted(counts, key=lambda ch: (-counts[ch], ch))[:max_symbols - 2]
    other, mask = len(kept), len(kept) + 1
    lut = {ch: i for i, ch in enumerate(kept)}
    ids = torch.tensor([lut.get(ch, other) for ch in text], dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)

    def windows(part: torch.Tensor, n: int) -> TensorDataset:
        starts = torch.randint(0, len(part) - seq_len + 1, (n,), generator=g)
        clean = part[starts[:, None] + torch.arange(seq_len)]
        masked = torch.rand(n, seq_len, generator=g) < mask_rate
        # at least one a window
        masked[torch.arange(n), torch.randint(0, seq_len, (n,), generator=g)] = True
        return TensorDataset(torch.where(masked, torch.full_like(clean, mask), clean),
                             torch.where(masked, clean, torch.full_like(clean, -100)))

    train, test = windows(ids[:cut], n_train), windows(ids[cut:], n_test)
    about = {"file": path.name, "characters": len(text), "symbols": len(kept) + 2,
             "kept_share": sum(counts[ch] for ch in kept) / len(text), "held_out": held_out,
             "mask_rate": mask_rate, "seq_len": seq_len}
    return train, test, about
