"""Inference-time folding of a model's first linear layer into its embedding tables.

A first layer ``h = [e_1 | ... | e_J | dense] @ W + b`` over the concatenated embeddings is, for one-hot fields,
``h = sum_j P_j[id_j] + dense @ W_dense`` with ``P_j = table_j @ W_j`` (``W_j``: the rows of ``W`` that read
field ``j``'s embedding; ``b`` is added to the first field's rows). ``P`` has one row per id and as many columns
as ``h``: on Census-Income (478 ids, 264 columns) it is 0.5 MB, and one ``embedding_bag`` sum replaces the GEMM
(255 x 264 multiply-adds per row become 31 x 264 additions). The result equals the GEMM's up to float rounding.

The folded tables are a function of the weights: within :func:`folding` (``BaseModel.folded_inference``) they
are built at most once per ``predict`` / ``evaluate`` call, in its thread, and dropped at its end (tensor
version counters cannot tell when weights changed: fused optimizers do not bump them). They are built only when
they are small and cheaper to build than the GEMM they replace over the call's rows. Training never uses them.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["FoldedInputProjection", "MAX_FOLDED_BYTES", "folding", "active_folding"]

# per thread: {id(model): (rows of the running call, {layer key: folded tables or False})}. Thread-local, so
# that concurrent predict calls on one model (a threaded server) never see each other's tables or outlive
# their own call.
_STATE = threading.local()


@contextlib.contextmanager
def folding(model: Any, n_rows: int):
    """Allow ``model`` to fold its first layer during this context, in this thread, for ``n_rows`` rows."""
    active = _STATE.__dict__.setdefault("active", {})
    key = id(model)
    prev = active.get(key)
    active[key] = (int(n_rows), {})
    try:
        yield model
    finally:
        if prev is None:
            del active[key]
        else:
            active[key] = prev


def active_folding(model: Any) -> tuple[int, dict] | None:
    """``(n_rows, cache)`` while :func:`folding` is active for ``model`` in this thread, else None."""
    return _STATE.__dict__.get("active", {}).get(id(model))


#: folded tables larger than this are not built (the GEMM is used instead)
MAX_FOLDED_BYTES = 64 << 20


class FoldedInputProjection:
    """``[embeddings | dense] @ weight + bias`` by lookups into folded tables (see the module docstring).

    Args:
        embedding: the model's :class:`~ctrkit.layers.EmbeddingLayer` (fixed-length sparse features only).
        weight: ``(in_features, out)``; its first ``embedding.output_dim`` rows read the embeddings in the
            layout of :meth:`EmbeddingLayer.flat`, the remaining rows the dense values.
        bias: ``(out,)``.
    """

    def __init__(self, embedding, weight: torch.Tensor, bias: torch.Tensor) -> None:
        rows = self.rows(embedding)
        blocks: list[torch.Tensor] = [weight.new_empty(0)] * len(rows)
        col = 0
        with torch.no_grad():
            for gi, d in enumerate(embedding.group_dims):
                table = embedding.weights[gi]
                for j in embedding._group_cols[gi]:
                    o = embedding.table_offsets[embedding.sparse_features[j].embedding_name]
                    blocks[j] = table[o:o + rows[j]].to(weight.dtype) @ weight[col:col + d]
                    col += d
            blocks[0] = blocks[0] + bias  # each row has exactly one id of feature 0: the bias is added once
            self.table = torch.cat(blocks)
        starts = [0]
        for r in rows[:-1]:
            starts.append(starts[-1] + r)
        self.offsets = torch.tensor(starts, dtype=torch.long, device=weight.device)
        self.dense_weight = weight[col:]

    @staticmethod
    def supported(embedding) -> bool:
        """Fixed-length sparse features only (pooled var-length features are not folded), at least one."""
        return bool(embedding.sparse_features) and not embedding.varlen_features

    @staticmethod
    def rows(embedding) -> list[int]:
        """Table rows of each sparse feature (a shared table has its largest vocabulary's rows)."""
        rows: dict[str, int] = {}
        for f in embedding.sparse_features:
            rows[f.embedding_name] = max(rows.get(f.embedding_name, 0), int(f.vocabulary_size))
        return [rows[f.embedding_name] for f in embedding.sparse_features]

    @classmethod
    def worthwhile(cls, embedding, out_features: int, n_rows: int) -> bool:
        """Folded tables within :data:`MAX_FOLDED_BYTES` and with no more rows than the rows to predict (their
        build then costs less than the GEMM over those rows)."""
        total = sum(cls.rows(embedding))
        return total <= n_rows and total * out_features * 4 <= MAX_FOLDED_BYTES

    def __call__(self, batch) -> torch.Tensor:
        h = F.embedding_bag(batch.sparse + self.offsets, self.table, mode="sum")
        if self.dense_weight.shape[0]:
            h = torch.addmm(h, batch.dense, self.dense_weight)
        return h
