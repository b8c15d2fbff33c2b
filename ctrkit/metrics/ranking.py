"""Full-ranking metrics for next-item recommendation: HR@k and NDCG@k, vectorised over users.

Each user's target is ranked against **all** items (no sampled negatives: sampled metrics inflate results and
can even reorder models). Items in the user's history can be excluded from the ranking (the common protocol,
RecBole's full-sort evaluation does it); the target itself is never excluded.

Ties: with float scores ties are rare, but a constant model ties everything. ``ties`` decides where the target
goes among the items that have exactly its score: ``"pessimistic"`` (after all of them), ``"optimistic"``
(before all of them) or ``"average"`` (the exact expectation under a uniformly random order of the tied items,
i.e. what an implementation breaking ties arbitrarily gets on average; the default).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["ranking_metrics", "history_mask", "TIES"]

TIES = ("average", "pessimistic", "optimistic")


def history_mask(histories: Sequence[np.ndarray], num_columns: int) -> torch.Tensor:
    """``(n, num_columns)`` bool mask, True at the item ids of each history.

    Example:
        >>> history_mask([np.array([1, 3])], 5).int().tolist()
        [[0, 1, 0, 1, 0]]
    """
    n = len(histories)
    lens = np.fromiter((len(h) for h in histories), dtype=np.int64, count=n)
    rows = np.repeat(np.arange(n), lens)
    cols = (np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if lens.sum()
            else np.zeros(0, np.int64))
    mask = torch.zeros(n, num_columns, dtype=torch.bool)
    mask[torch.from_numpy(rows), torch.from_numpy(cols)] = True
    return mask


@torch.no_grad()
def ranking_metrics(scores: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (10, 20),
                    exclude: torch.Tensor | None = None, ties: str = "average") -> dict[str, float]:
    """HR@k and NDCG@k of the targets, averaged over users.

    With one relevant item per user, HR@k is 1 when the target ranks in the top k and NDCG@k is
    ``1 / log2(rank + 2)`` (0-based rank) in that case, 0 otherwise.

    Args:
        scores: ``(n, V)`` scores, higher is better (logits, log-probabilities or probabilities).
        targets: ``(n,)`` column index of each user's target.
        ks: cut-offs.
        exclude: optional ``(n, V)`` bool mask of items left out of the ranking (e.g. :func:`history_mask`);
            the target's own entry is ignored.
        ties: ``"average"``, ``"pessimistic"`` or ``"optimistic"`` (see the module docstring).

    Returns:
        ``{"hr@10": ..., "ndcg@10": ..., "hr@20": ..., "ndcg@20": ...}`` (floats).

    Example:
        >>> s = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
        >>> ranking_metrics(s, torch.tensor([2, 0]), ks=[1])
        {'hr@1': 0.5, 'ndcg@1': 0.5}
    """
    if ties not in TIES:
        raise ValueError(f"ranking_metrics: ties must be one of {list(TIES)}, got {ties!r}.")
    if scores.dim() != 2 or targets.dim() != 1 or targets.shape[0] != scores.shape[0]:
        raise ValueError("ranking_metrics: expected scores (n, V) and targets (n,), got "
                         f"{tuple(scores.shape)} and {tuple(targets.shape)}.")
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"ranking_metrics: every k must be >= 1, got {ks}.")
    n = scores.shape[0]
    if n == 0:
        return {f"{m}@{k}": float("nan") for k in ks for m in ("hr", "ndcg")}
    scores = scores.float()
    targets = targets.long().to(scores.device)
    t = scores.gather(1, targets[:, None])                          # (n, 1)
    above = scores > t
    equal = scores == t
    if exclude is not None:
        keep = ~exclude.to(scores.device)
        keep.scatter_(1, targets[:, None], True)                    # never exclude the target itself
        above &= keep
        equal &= keep
    g = above.sum(1).double()                                       # items strictly ahead of the target
    e = (equal.sum(1) - 1).double()                                 # other items tied with it
    kmax = max(ks)
    disc = 1.0 / torch.log2(torch.arange(kmax, dtype=torch.float64) + 2.0)
    # cum[j] = sum_{i<j} disc[i]
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), disc.cumsum(0)]).to(scores.device)
    out: dict[str, float] = {}
    for k in ks:
        if ties == "pessimistic":
            lo = hi = g + e
        elif ties == "optimistic":
            lo = hi = g
        else:
            lo, hi = g, g + e
        # the target takes each rank r in [lo, hi] with equal probability
        count = hi - lo + 1
        hits = ((torch.clamp(hi, max=k - 1) - lo + 1).clamp(min=0)) / count
        a = torch.clamp(lo, max=k).long()
        b = torch.clamp(hi + 1, max=k).long()
        gains = (cum[b] - cum[a]).clamp(min=0) / count
        out[f"hr@{k}"] = float(hits.mean())
        out[f"ndcg@{k}"] = float(gains.mean())
    return out
