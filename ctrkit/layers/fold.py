"""Inference-time folding of a model's first linear layer into its embedding tables.

A first layer ``h = [e_1 | ... | e_J | dense] @ W + b`` over the concatenated embeddings is, for one-hot fields,
``h = sum_j P_j[id_j] + dense @ W_dense`` with ``P_j = table_j @ W_j`` (``W_j``: the rows of ``W`` that read
field ``j``'s embedding; ``b`` is added to the first field's rows). ``P`` has one row per id and as many columns
as ``h``: on Census-Income (478 ids, 264 columns) it is 0.5 MB, and one ``embedding_bag`` sum replaces the GEMM
(255 x 264 multiply-adds per row become 31 x 264 additions). The result equals the GEMM's up to float rounding.

The folded tables are a function of the weights, so they are built per batch and never cached (tensor version
counters cannot tell when weights changed: fused optimizers do not bump them); only when they are small and have
no more rows than the batch, so that building them costs a small fraction of the GEMM they replace.
:class:`~ctrkit.layers.projection.InputProjection` is the only user of this module: it decides per batch.

**Training** (:class:`FoldedTrainingProjection`, CPU): the same identity, differentiated. Each step builds the
per-id products of every field (one ``bmm`` per bucket of fields with similar vocabularies, padded to its largest),
sums the batch's rows with one ``embedding_bag`` and, backward, scatters the output gradient to the products with
one sparse-matrix product, from which the weight and table gradients are ``table_j^T @ grad P_j`` and
``grad P_j @ W_j^T`` (a hand-written backward, :class:`_FoldedProjection`). The three GEMMs over the batch
(forward, input and weight gradients: ``3 B K out`` multiply-adds for ``K`` embedding columns) become ``B J out``
additions each way plus products over the padded tables (``3 R out`` for ``R`` padded rows x dims) and a fixed
overhead. It is used per batch when :meth:`FoldedTrainingProjection.pays` estimates it cheaper: small
vocabularies, embeddings of 8 or more dimensions, batches of several hundred rows (census, 1,024 rows x 31 fields
x 8 dims into 538 ids: the first layer's forward + backward 1.3-1.9x faster; at 4 dims or 256 rows the GEMM stays).
Never with sparse gradients; :func:`no_training_fold` switches it off.
"""
from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F

__all__ = ["FoldedInputProjection", "FoldedTrainingProjection", "MAX_FOLDED_BYTES", "no_training_fold"]

# per thread: whether training folds are switched off (:func:`no_training_fold`)
_STATE = threading.local()


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
        self.embedding = embedding
        starts = [0]
        for r in rows[:-1]:
            starts.append(starts[-1] + r)
        self.offsets = torch.tensor(starts, dtype=torch.long, device=weight.device)
        self.dense_weight = weight[col:]

    @staticmethod
    def supported(embedding) -> bool:
        """Fixed-length sparse features only (pooled var-length features are not folded), at least one."""
        return (bool(embedding.sparse_features) and not embedding.varlen_features
                and getattr(embedding, "foldable", True))

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
            h = torch.addmm(h, rest_input(self.embedding, batch, self.dense_weight.shape[0]), self.dense_weight)
        return h


def rest_input(embedding, batch, rows: int) -> torch.Tensor:
    """The input columns after the table lookups: the embedded numeric features' fields, then the dense values
    (``rows`` columns in all; the weight rows that read them follow those of the lookups)."""
    num = embedding.numeric_flat(batch)
    if num is None:
        return batch.dense
    return num if rows == num.shape[1] else torch.cat([num, batch.dense], dim=1)


@contextlib.contextmanager
def no_training_fold():
    """Within this context (in this thread) training computes the first layer as the plain GEMM."""
    prev = _STATE.__dict__.get("no_training_fold", False)
    _STATE.no_training_fold = True
    try:
        yield
    finally:
        _STATE.no_training_fold = prev


class _FoldedProjection(torch.autograd.Function):
    """``[embeddings | dense] @ weight + bias`` through per-step folded tables, with a hand-written backward.

    Forward: the per-id products ``P`` (one ``bmm`` per bucket of fields), one
    ``embedding_bag`` sum of the batch's rows, the dense part as a GEMM. Backward: the output gradient scattered to
    ``P``'s rows as one sparse ``(rows, B) @ (B, out)`` product, then ``bmm`` to the padded table rows and to
    the weight blocks.
    """

    @staticmethod
    def forward(ctx, plan, ids, dense, bias, weight, *tables):  # type: ignore[override]
        out = weight.shape[1]
        P = weight.new_empty(plan.padded_rows, out)          # every row is written by the bmm below
        for gi, d, col, J, slots, pad, start in plan.groups:
            Jb, vmax = pad.shape
            W = weight[col:col + J * d].view(J, d, out)
            torch.bmm(tables[gi][pad], W if slots is None else W.index_select(0, slots),
                      out=P[start:start + Jb * vmax].view(Jb, vmax, out))
        h = F.embedding_bag(ids, P, mode="sum").add_(bias)
        if dense is not None:
            h.addmm_(dense, weight[plan.embedding_columns:])
        ctx.plan = plan
        ctx.save_for_backward(ids, dense, weight, *tables)
        return h

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        ids, dense, weight, *tables = ctx.saved_tensors
        plan = ctx.plan
        B, F_ = ids.shape
        out = weight.shape[1]
        grad = grad.contiguous()
        cols = torch.arange(B, device=ids.device).repeat_interleave(F_)
        scatter = torch.sparse_coo_tensor(torch.stack([ids.reshape(-1), cols]), grad.new_ones(B * F_),
                                          (plan.padded_rows, B), check_invariants=False)
        gP = torch.sparse.mm(scatter, grad)
        g_weight = g_bias = g_dense = None
        g_tables: list = [None] * len(tables)
        if ctx.needs_input_grad[2]:   # the numeric fields in the dense part are trained through it
            g_dense = grad @ weight[plan.embedding_columns:].t()
        if ctx.needs_input_grad[4]:
            g_weight = torch.empty_like(weight)
            if dense is not None:
                torch.mm(dense.t(), grad, out=g_weight[plan.embedding_columns:])
        for gi, d, col, J, slots, pad, start in plan.groups:
            Jb, vmax = pad.shape
            gPb = gP[start:start + Jb * vmax].view(Jb, vmax, out)
            W = weight[col:col + J * d].view(J, d, out)
            if g_weight is not None:
                gW = torch.bmm(tables[gi][pad].transpose(1, 2), gPb)
                if slots is None:
                    g_weight[col:col + J * d].view(J, d, out).copy_(gW)
                else:
                    g_weight[col:col + J * d].view(J, d, out).index_copy_(0, slots, gW)
            if ctx.needs_input_grad[5 + gi]:
                if g_tables[gi] is None:
                    g_tables[gi] = torch.zeros_like(tables[gi])
                Wb = W if slots is None else W.index_select(0, slots)
                g_tables[gi].index_put_((pad,), torch.bmm(gPb, Wb.transpose(1, 2)), accumulate=True)
        if ctx.needs_input_grad[3]:
            g_bias = grad.sum(0)
        return (None, None, g_dense, g_bias, g_weight, *g_tables)


class FoldedTrainingProjection:
    """The plan for computing ``[embeddings | dense] @ weight + bias`` through per-step folded tables in training
    (see the module docstring). It depends only on the feature layout: the input projection builds it once.

    The fields of one embedding dimension are put in buckets of similar vocabulary (each at least half its
    largest), and each bucket's tables padded to its largest: ``pad`` ``(J_b, Vmax_b)`` holds the table row of
    each field's ``k``-th id (clamped: padded slots are computed and never read). Field ``j``'s id ``k`` is row
    ``base_j + k`` of the folded tables. Buckets keep the padding under 2x the real rows (census: 638 rows for 538
    ids, against 1,674 with one bucket).
    """

    # The cost model, in GEMM multiply-adds per output column (CPU, fitted to forward + backward timings at
    # census vocabularies, batch 256 / 1024, embedding dims 2-16, 144 / 264 outputs; benchmarks/speed_probes.py):
    #: one gathered plus one scattered value (``embedding_bag`` + the sparse scatter ~0.33 ns, a GEMM ~0.04 ns)
    SCATTER_COST = 8
    #: the folded path's per-step overhead (its small ``bmm``s, the sparse product's set-up; ~1-1.5 ms)
    FIXED_COST = 150_000

    def __init__(self, embedding) -> None:
        rows = FoldedInputProjection.rows(embedding)
        # (group, d, first weight row, J_d, fields of the bucket within the group (None: all, in order), pad,
        #  first row in the folded tables)
        self.groups: list[tuple[int, int, int, int, torch.Tensor | None, torch.Tensor, int]] = []
        base: dict[int, int] = {}
        flat_cols: list[int] = []
        col = slot = 0
        dev = embedding.weights[0].device
        for gi, d in enumerate(embedding.group_dims):
            cols = embedding._group_cols[gi]
            if not cols:
                continue
            flat_cols.extend(cols)
            buckets: list[list[int]] = []                     # positions within the group, by falling rows
            for i in sorted(range(len(cols)), key=lambda i: -rows[cols[i]]):
                if not buckets or 2 * rows[cols[i]] < rows[cols[buckets[-1][0]]]:
                    buckets.append([])
                buckets[-1].append(i)
            for bucket in buckets:
                vmax = rows[cols[bucket[0]]]
                pad = torch.empty(len(bucket), vmax, dtype=torch.long)
                for k, i in enumerate(bucket):
                    j = cols[i]
                    o = embedding.table_offsets[embedding.sparse_features[j].embedding_name]
                    pad[k] = o + torch.arange(vmax).clamp_max(rows[j] - 1)
                    base[j] = slot + k * vmax
                slots = None if bucket == list(range(len(cols))) else torch.tensor(bucket, device=dev)
                self.groups.append((gi, d, col, len(cols), slots, pad.to(dev), slot))
                slot += len(bucket) * vmax
            col += len(cols) * d
        self.padded_rows = slot
        self.padded_values = sum(pad.numel() * d for _gi, d, _c, _J, _s, pad, _r in self.groups)
        self.embedding_columns = col
        self.num_fields = len(flat_cols)
        self.base = torch.tensor([base[j] for j in flat_cols], dtype=torch.long, device=dev)
        self.flat_cols = None if flat_cols == list(range(len(flat_cols))) else torch.tensor(
            flat_cols, dtype=torch.long, device=dev)

    @staticmethod
    def applicable(embedding, weight: torch.Tensor) -> bool:
        """CPU, dense gradients, fixed-length sparse features only, no recorded lookups (embedding L2 reads
        them), not switched off."""
        return not (getattr(_STATE, "no_training_fold", False) or embedding.sparse or embedding.keep_last
                    or not FoldedInputProjection.supported(embedding) or weight.device.type != "cpu")

    def pays(self, weight: torch.Tensor, batch) -> bool:
        """Whether folding this training batch is cheaper than the GEMM, by the operation count."""
        p = self
        n, out = batch.sparse.shape[0], weight.shape[1]
        if p.padded_rows * out * 4 > MAX_FOLDED_BYTES:
            return False
        folded = self.FIXED_COST + 3 * p.padded_values + self.SCATTER_COST * n * p.num_fields
        return folded < 3 * n * p.embedding_columns   # the GEMM's forward, input and weight grads

    def __call__(self, embedding, batch, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ids = batch.sparse if self.flat_cols is None else batch.sparse.index_select(1, self.flat_cols)
        rows = weight.shape[0] - self.embedding_columns
        dense = rest_input(embedding, batch, rows) if rows else None
        return _FoldedProjection.apply(self, ids + self.base, dense, bias, weight, *embedding.weights)
