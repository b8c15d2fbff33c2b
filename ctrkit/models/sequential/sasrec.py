"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...registry import register_model
from .base import SequentialModel

__all__ = ["SASRec"]


@register_model
class SASRec(SequentialModel):
    """Causal self-attention over a user's items; the next item is scored by a dot product with the (tied)
    item embeddings and trained with a full softmax at every position.

    Args:
        num_items: the largest item id (ids run from 1; 0 is padding).
        embedding_dim: item embedding / hidden size.
        max_len: the number of most recent items read.
        num_blocks: self-attention blocks.
        num_heads: attention heads per block.
        ffn_hidden: feed-forward width (default ``embedding_dim``, as in the paper).
        dropout: dropout rate.
        init_std: standard deviation of the embeddings' initialisation.
        seed, device: as in :class:`~ctrkit.models.BaseModel`.

    Shape:
        - input: a :class:`~ctrkit.data.TensorData` with ``varlen["item_seq"]`` ``(B, L)``, L <= max_len,
          left-padded with 0.
        - output: ``{"next_item": (B, num_items + 1)}`` logits for the item after the last position.

    Example:
        >>> from ctrkit.models.sequential import SASRec, leave_one_out
        >>> split = leave_one_out({1: [1, 2, 3, 4, 5], 2: [2, 3, 4, 5, 1]})
        >>> m = SASRec(num_items=5, embedding_dim=8, max_len=4, num_blocks=1, num_heads=2)
        >>> m.compile("adam", lr=0.01)
        >>> _ = m.fit(split, epochs=2, verbose=0)
        >>> m.predict([[1, 2, 3]]).shape
        (1, 6)

    References:
        Wang-Cheng Kang, Julian McAuley. Self-Attentive Sequential Recommendation. ICDM 2018.
    """

    def __init__(self, num_items: int, embedding_dim: int = 64, max_len: int = 50, num_blocks: int = 2,
                 num_heads: int = 2, ffn_hidden: int | None = None, dropout: float = 0.2, init_std: float = 0.02,
                 seed: int | None = 1024, device: Any = "cpu") -> None:
        super().__init__(num_items, embedding_dim=embedding_dim, max_len=max_len, num_blocks=num_blocks,
                         num_heads=num_heads, ffn_hidden=ffn_hidden, dropout=dropout, init_std=init_std, seed=seed,
                         device=device, shared_blocks=num_blocks, config=locals())
        self.final_norm = nn.LayerNorm(self.embedding_dim)
        self._finish_init()

    def states(self, seq: torch.Tensor) -> torch.Tensor:
        return self.final_norm(self.encode(seq))

    def state_scores(self, states: torch.Tensor) -> torch.Tensor:
        return self._mask_padding(states @ self.item_table().t())

    def candidate_scores(self, states: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        table = self.item_table()
        pos = (states * table[targets]).sum(-1, keepdim=True)                 # (n, 1)
        scores = torch.cat([pos, states @ table[negatives].t()], dim=1)       # (n, 1 + K)
        return scores.masked_fill(self._candidate_mask(targets, negatives), -1e9)
