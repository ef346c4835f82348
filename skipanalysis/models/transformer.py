"""A small encoder-only transformer whose residual blocks are post-norm or pre-norm.

Xiong et al. "On Layer Normalization in the Transformer Architecture", ICML
2020: the original (post-norm) block computes ``x = LN(x + F(x))`` after each
sub-layer F (self-attention, then the feed-forward net); the pre-norm block
computes ``x = x + F(LN(x))`` and the stack ends with a final LayerNorm.
Weights use Xavier initialisation, biases zero, as in their analysis.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("post", "pre")


class Block(nn.Module):
    """One encoder block: self-attention and a ReLU feed-forward net, each wrapped in a residual
    connection.

    Args:
        d_model: width. n_heads: attention heads. d_ff: hidden width of the feed-forward net. norm:
        ``post`` (``LN(x + F(x))``) or ``pre`` (``x + F(LN(x))``).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, norm: str = "pre"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm={norm!r} is not allowed; choose 'post' or 'pre'")
        self.norm = norm
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.record = False  # when True, keep the head-averaged attention weights of the last call
        self.attention: torch.Tensor | None = None

    def _sa(self, x: torch.Tensor) -> torch.Tensor:
        out, w = self.attn(x, x, x, need_weights=self.record, average_attn_weights=True)
        self.attention = w.detach() if self.record else None
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm == "post":
            x = self.ln1(x + self._sa(x))
            return self.ln2(x + self.ff(x))
        x = x + self._sa(self.ln1(x))
        return x + self.ff(self.ln2(x))


class Encoder(nn.Module):
    """Token and learned position embeddings, ``depth`` blocks, (pre-norm: a final LayerNorm), a
    per-token head.

    Args:
        vocab: input and output vocabulary size. seq_len: maximum sequence length. depth: number of
        blocks. d_model, n_heads, d_ff: block sizes. norm: ``post`` or ``pre``.
    """

    def __init__(self, vocab: int, seq_len: int, depth: int = 6, d_model: int = 64,
                 n_heads: int = 4,
                 d_ff: int = 128, norm: str = "pre"):
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth={depth!r}: expected a positive integer")
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.norm = norm
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, norm) for _ in range(depth))
        self.final_ln = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(d_model, vocab)
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(pos)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_ln(x))

    def attention_maps(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Head-averaged attention weights of every block, each ``(batch, query, key)``."""
        for b in self.blocks:
            b.record = True
        try:
            with torch.no_grad():
                self(tokens)
            return [b.attention for b in self.blocks]
        finally:
            for b in self.blocks:
                b.record, b.attention = False, None
