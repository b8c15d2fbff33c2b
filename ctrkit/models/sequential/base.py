"""SequentialModel: the shared part of SASRec and FAME (item table, positions, blocks, facade).

A sequential model reads one padded item-id sequence per row (left-padded with 0, the last column is the
most recent item) and scores every item as the next one. It is a :class:`~ctrkit.models.BaseModel` with one
``"multiclass"`` task, ``"next_item"``, whose classes are the item ids ``0..num_items`` (0 is padding and
always scores ``-inf``): the item table lives in ctrkit's :class:`~ctrkit.layers.EmbeddingLayer` (a
``VarLenSparseFeat("item_seq")`` over the table ``"item_id"``), and is tied to the output layer.

It trains in the one :class:`~ctrkit.training.Trainer` loop: the rows are windows of ``max_len`` positions,
the labels the next item at each position, and the :meth:`SequentialModel.train_step` hook scores the positions
that have a target (full or sampled softmax). Evaluation ranks all items per user (:meth:`evaluate`), which the
trainer calls for ``val_*`` logs. ``save`` / :func:`~ctrkit.load_model` are the usual ones.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.arrays import ArraySource
from ...data.inputs import TensorData
from ...features import SparseFeat, VarLenSparseFeat
from ...layers.transformer import PositionalEmbedding, TransformerBlock, causal_mask, scaled_embedding
from ...metrics.ranking import TIES, history_mask, ranking_metrics
from ...training.trainer import Trainer
from ..base import BaseModel
from .data import EvalSet, pad_left

if TYPE_CHECKING:
    from ...callbacks import History

__all__ = ["SequentialModel", "DEFAULT_RANKING_METRICS"]

DEFAULT_RANKING_METRICS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")
SEQ_FEATURE, ITEM_TABLE = "item_seq", "item_id"


def _parse_ranking_metrics(metrics: Any) -> list[str]:
    mets = list(DEFAULT_RANKING_METRICS) if metrics is None else (
        [metrics] if isinstance(metrics, str) else list(metrics))
    out = []
    for m in mets:
        name, _, k = str(m).lower().partition("@")
        if name not in ("hr", "ndcg") or not k.isdigit() or int(k) < 1:
            raise ValueError(f"compile: sequential models report full-ranking metrics named 'hr@K' or 'ndcg@K' "
                             f"(K >= 1), got {m!r}. Example: metrics=['hr@10', 'ndcg@10'].")
        out.append(f"{name}@{int(k)}")
    return out


class SequentialModel(BaseModel):
    """Base of the next-item models: item + position embeddings, causal Transformer blocks, full softmax.

    Args:
        num_items: the largest item id; ids run from 1 (0 is padding).
        embedding_dim: size of the item embeddings and of the Transformer's hidden states.
        max_len: the number of most recent items the model reads (longer histories are cut to their last
            ``max_len`` items; training sequences are cut into windows of ``max_len``).
        num_blocks: Transformer blocks.
        num_heads: attention heads (``embedding_dim`` must be divisible by it).
        ffn_hidden: hidden width of the position-wise feed-forward networks (default ``embedding_dim``).
        dropout: dropout on the embeddings, the attention weights and both residual branches.
        init_std: standard deviation of the item and position embeddings' initialisation.
        seed, device: as in :class:`~ctrkit.models.BaseModel`.
    """

    sequential = True            # tabular suites and ``ctrkit compare`` skip these models
    supports_multiclass = True

    def __init__(self, num_items: int, *, embedding_dim: int, max_len: int, num_blocks: int, num_heads: int,
                 ffn_hidden: int | None, dropout: float, init_std: float, seed: int | None, device: Any,
                 shared_blocks: int, config: dict[str, Any]) -> None:
        name = type(self).__name__
        for arg, v, lo in (("num_items", num_items, 1), ("embedding_dim", embedding_dim, 1), ("max_len", max_len, 1),
                           ("num_blocks", num_blocks, 1), ("num_heads", num_heads, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name}: {arg} must be an int >= {lo}, got {v!r}.")
        if embedding_dim % num_heads:
            raise ValueError(f"{name}: embedding_dim={embedding_dim} must be divisible by num_heads={num_heads} "
                             "(each head gets embedding_dim // num_heads dimensions).")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}.")
        cols = [VarLenSparseFeat(SparseFeat(SEQ_FEATURE, int(num_items) + 1, int(embedding_dim),
                                            embedding_name=ITEM_TABLE), maxlen=int(max_len))]
        super().__init__(cols, ["next_item"], ["multiclass"], init_std=init_std, seed=seed, device=device,
                         config=config, num_classes=int(num_items) + 1)
        self.num_items, self.embedding_dim, self.max_len = int(num_items), int(embedding_dim), int(max_len)
        self.num_heads, self.dropout_rate = int(num_heads), float(dropout)
        ffn_hidden = self.embedding_dim if ffn_hidden is None else int(ffn_hidden)
        self.ffn_hidden = ffn_hidden
        self.position = PositionalEmbedding(self.max_len, self.embedding_dim, init_std=max(init_std, 1e-8))
        self.emb_dropout = nn.Dropout(self.dropout_rate)
        self.blocks = nn.ModuleList([TransformerBlock(self.embedding_dim, self.num_heads, ffn_hidden,
                                                      self.dropout_rate) for _ in range(shared_blocks)])
        self.ranking_metrics: list[str] = list(DEFAULT_RANKING_METRICS)
        self.num_negatives: int | None = None

    # ------------------------------------------------------------------ network
    def item_table(self) -> torch.Tensor:
        """The ``(num_items + 1, embedding_dim)`` item embeddings (a view of the embedding layer's table)."""
        emb = self.embedding
        w = emb.weights[emb.group_dims.index(emb.table_dims[ITEM_TABLE])]
        off = emb.table_offsets[ITEM_TABLE]
        return w[off:off + self.num_items + 1]

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, L, D)`` after the shared causal blocks (position i sees items 0..i only)."""
        if seq.shape[1] > self.max_len:
            raise ValueError(f"{type(self).__name__}: sequences of {seq.shape[1]} items are longer than "
                             f"max_len={self.max_len}; keep the last max_len items "
                             "(ctrkit.models.sequential.pad_left).")
        x = scaled_embedding(self.item_table(), seq) + self.position(seq.shape[1])
        x = self.emb_dropout(x)
        mask = causal_mask(seq)
        for block in self.blocks:
            x = block(x, mask)
        return x

    def states(self, seq: torch.Tensor) -> torch.Tensor:
        """Per-position representations used for scoring, ``(B, L, ...)``."""
        raise NotImplementedError

    def state_scores(self, states: torch.Tensor) -> torch.Tensor:
        """``(N, ...)`` representations → ``(N, num_items + 1)`` next-item logits (column 0 is ``-inf``)."""
        raise NotImplementedError

    def forward(self, batch: TensorData) -> dict[str, torch.Tensor]:
        """``{"next_item": (B, num_items + 1)}`` logits of the item that follows each row's last position."""
        seq = batch.varlen[SEQ_FEATURE]
        return {"next_item": self.state_scores(self.states(seq)[:, -1])}

    def score_positions(self, seq: torch.Tensor, select: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits at the positions where ``select`` (``(B, L)`` bool) is True: ``{"next_item": (n, V + 1)}``."""
        return {"next_item": self.state_scores(self.states(seq)[select])}

    def candidate_scores(self, states: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, 1 + K)`` over each row's target (column 0) and ``K`` shared sampled items (sampled
        softmax); a sampled item equal to the row's target is masked out (``-inf``)."""
        raise NotImplementedError

    def sampled_positions(self, seq: torch.Tensor, select: torch.Tensor, targets: torch.Tensor,
                          negatives: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`candidate_scores` at the positions where ``select`` is True: ``{"next_item": (n, 1 + K)}``."""
        return {"next_item": self.candidate_scores(self.states(seq)[select], targets, negatives)}

    @staticmethod
    def _candidate_mask(targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """``(n, 1 + K)`` bool: True at sampled items that are the row's own target (accidental hits)."""
        hit = negatives[None, :] == targets[:, None]
        return torch.cat([torch.zeros_like(hit[:, :1]), hit], dim=1)

    def train_step(self, forward, x, y, sample_weight, loss):
        """Score the positions of the windows ``x`` that have a target in ``y`` (``(B, L)``, 0: none): the full
        softmax over all items, or sampled softmax against ``num_negatives`` shared items (target in column 0)."""
        seq, select = x.varlen[SEQ_FEATURE], y != 0
        if self.num_negatives:
            negatives = torch.randint(1, self.num_items + 1, (self.num_negatives,), device=seq.device)
            out = self.sampled_positions(seq, select, y[select], negatives)
            target = torch.zeros(len(out["next_item"]), dtype=torch.long, device=seq.device)
        else:
            out, target = self.score_positions(seq, select), y[select]
        total, per_task = self.compute_loss(out, target)
        return total, per_task, None

    def compute_loss(self, outputs, y, sample_weight=None, loss=None):
        """Full softmax cross-entropy over all items: ``y`` holds the target item id of each scored position."""
        loss = F.cross_entropy(outputs["next_item"], y.long(), reduction="none")
        loss = loss.mean() if sample_weight is None else (loss * sample_weight).mean()
        return loss, loss.detach().reshape(1)

    @staticmethod
    def _mask_padding(scores: torch.Tensor) -> torch.Tensor:
        """Set the padding column (item 0) to ``-inf``, in place (no copy of the large score matrix)."""
        scores[..., 0] = float("-inf")
        return scores

    # ------------------------------------------------------------------ facade
    # the facade methods below take item sequences, not feature frames, so their signatures differ from
    # KerasFacade's (different arguments, no sample weights): the overrides are deliberate
    def compile(self, optimizer: Any = "adam", loss: Any = None,  # type: ignore[override]
                metrics: Sequence[str] | None = None,
                loss_weights: Any = None, lr: float | None = None, grad_clip_norm: float | None = None,
                num_negatives: int | None = None, task_balancer: Any = None) -> None:
        """Set the optimizer, the loss and the ranking metrics.

        Args:
            optimizer: a name (``"adam"``, ``"adamw"``, ...) or an optimizer instance.
            loss: None or ``"softmax"`` (full softmax cross-entropy over all items, the only loss).
            metrics: full-ranking metrics ``"hr@K"`` / ``"ndcg@K"`` (default HR and NDCG at 10 and 20).
            loss_weights: must be None (one task).
            lr: learning rate when ``optimizer`` is a name.
            grad_clip_norm: clip the global gradient norm to this value.
            num_negatives: None (default): full softmax over all items at every position. An int K: sampled
                softmax, each training step scores the targets against K items drawn uniformly (shared by the
                batch), K times cheaper than the full softmax for K << num_items (evaluation always ranks all).
            task_balancer: must be None (one task).
        """
        if num_negatives is not None and (isinstance(num_negatives, bool) or not isinstance(num_negatives, int)
                                          or num_negatives < 1):
            raise ValueError(f"compile: num_negatives must be None (full softmax) or an int >= 1, got "
                             f"{num_negatives!r}.")
        self.num_negatives = num_negatives
        if loss not in (None, "auto", "softmax"):
            raise ValueError(f"compile: {type(self).__name__} trains with the full softmax over items; loss must be "
                             f"None or 'softmax', got {loss!r}.")
        if loss_weights not in (None, {}, {"next_item": 1.0}):
            raise ValueError(f"compile: {type(self).__name__} has one task; loss_weights must be None, got "
                             f"{loss_weights!r}.")
        if grad_clip_norm is not None and not grad_clip_norm > 0:
            raise ValueError(f"compile: grad_clip_norm must be > 0 or None, got {grad_clip_norm!r}.")
        if task_balancer is not None:
            raise ValueError(f"compile: {type(self).__name__} has one task; task_balancer must be None.")
        self.ranking_metrics = _parse_ranking_metrics(metrics)
        self.trainer = Trainer(self, optimizer, lr=lr, grad_clip_norm=grad_clip_norm, init_output_bias=False)
        self.trainer.spec = {"optimizer": optimizer if isinstance(optimizer, str) else None, "lr": lr,
                             "loss": "softmax", "metrics": list(self.ranking_metrics), "loss_weights": None,
                             "grad_clip_norm": grad_clip_norm, "num_negatives": num_negatives}

    def _sequences(self, sequences: Any, where: str) -> torch.Tensor:
        if isinstance(sequences, EvalSet):
            sequences = sequences.histories
        if isinstance(sequences, torch.Tensor):
            sequences = sequences.cpu().numpy()
        if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
            arr = sequences[:, -self.max_len:].astype(np.int64)
            arr = np.concatenate([np.zeros((len(arr), max(0, self.max_len - arr.shape[1])), np.int64), arr], 1)
        else:
            if isinstance(sequences, np.ndarray) and sequences.ndim == 1 and sequences.dtype != object:
                raise ValueError(f"{type(self).__name__}.{where}: pass a list of sequences (one array per user) or a "
                                 f"2-D left-padded array, got a 1-D array of shape {sequences.shape}.")
            arr = pad_left(list(sequences), self.max_len)
        if arr.size and (arr.min() < 0 or arr.max() > self.num_items):
            raise ValueError(f"{type(self).__name__}.{where}: item ids must lie in [1, {self.num_items}] (0 is "
                             f"padding); got ids in [{int(arr.min())}, {int(arr.max())}].")
        return torch.from_numpy(arr)

    def fit(self, x: Any = None, y: Any = None, batch_size: int = 128,  # type: ignore[override]
            epochs: int = 1, verbose: int = 1,
            validation_data: EvalSet | None = None, shuffle: bool = True, callbacks: Sequence[Any] | None = None,
            seed: int | None = None, **unsupported: Any) -> History:
        """Train on users' item sequences (next-item targets at every position).

        Args:
            x: the training sequences: a list of item-id arrays (``SequenceSplit.train``) or a
                :class:`~ctrkit.models.sequential.SequenceSplit` (its ``train`` part, validated on ``valid``).
            y: must be None (the targets are the sequences shifted by one).
            batch_size: windows of ``max_len`` positions per step.
            epochs, verbose, shuffle, callbacks: as in :meth:`BaseModel.fit`; log keys are ``"loss"`` and, with
                validation, ``"val_loss"``, ``"val_hr@10"``, ``"val_ndcg@10"``, ... (the compiled metrics).
            validation_data: an :class:`~ctrkit.models.sequential.EvalSet` (e.g. ``split.valid``).
            seed: seeds shuffling and dropout (default: the model's ``seed``); the global RNG is restored after.

        Returns:
            the :class:`~ctrkit.callbacks.History`.
        """
        from ...callbacks import BackupAndRestore
        from .data import SequenceSplit, training_windows
        name = type(self).__name__
        if unsupported:
            raise TypeError(f"{name}.fit: unsupported argument(s) {sorted(unsupported)} for a sequential model "
                            "(it takes x, batch_size, epochs, verbose, validation_data, shuffle, callbacks, seed).")
        if y is not None:
            raise ValueError(f"{name}.fit: y must be None; the next-item targets come from the sequences in x.")
        trainer = self._require_trainer("fit")
        if any(isinstance(cb, BackupAndRestore) for cb in callbacks or []):
            raise ValueError(f"{name}.fit: BackupAndRestore is not supported for sequential models yet; use "
                             "ModelCheckpoint to keep the best model.")
        if isinstance(x, SequenceSplit):
            validation_data = x.valid if validation_data is None else validation_data
            x = x.train
        if x is None:
            raise ValueError(f"{name}.fit: x is None; pass the training sequences (split.train).")
        inputs, targets = training_windows(list(x), self.max_len)
        if targets.max() > self.num_items:
            raise ValueError(f"{name}.fit: item id {int(targets.max())} exceeds num_items={self.num_items}.")
        windows = TensorData(None, None, {SEQ_FEATURE: torch.from_numpy(inputs)})
        validation = None if validation_data is None else (lambda: self.evaluate(validation_data))
        return trainer.fit(ArraySource(windows, torch.from_numpy(targets)), batch_size=batch_size, epochs=epochs,
                           verbose=verbose, validation=validation, shuffle=shuffle, callbacks=callbacks,
                           seed=self.seed if seed is None else seed)

    @torch.inference_mode()
    def _map_sequences(self, sequences: Any, where: str, fn: Any, width: int, batch_size: int) -> torch.Tensor:
        """``fn(batch of sequences on the device)`` over all sequences in eval mode, concatenated on the CPU
        (``(0, width)`` for no sequences)."""
        seq = self._sequences(sequences, where)
        if self.trainer is not None:
            self.trainer.check_not_training_elsewhere(where)
        was = self.training
        self.eval()
        try:
            chunks = [fn(seq[s:s + batch_size].to(self.device)).float().cpu() for s in range(0, len(seq), batch_size)]
        finally:
            self.train(was)
        return torch.cat(chunks) if chunks else torch.empty(0, width)

    def predict_logits(self, sequences: Any, batch_size: int = 1024) -> torch.Tensor:  # type: ignore[override]
        """Next-item logits ``(n, num_items + 1)`` on the CPU, for each sequence's last position."""
        return self._map_sequences(sequences, "predict", lambda b: self(TensorData(None, None, {SEQ_FEATURE: b}))[
            "next_item"], self.num_items + 1, batch_size)

    def predict(self, x: Any = None, batch_size: int = 1024) -> np.ndarray:
        """Next-item probabilities ``(n, num_items + 1)`` (column i is item id i; column 0 is padding, 0)."""
        return torch.softmax(self.predict_logits(x, batch_size), dim=1).numpy()

    def recommend(self, sequences: Any, k: int = 10, exclude_history: bool = True, batch_size: int = 1024
                  ) -> np.ndarray:
        """The ``k`` best next items per sequence, ``(n, k)`` item ids, best first (seen items left out)."""
        hist = sequences.histories if isinstance(sequences, EvalSet) else sequences
        logits = self.predict_logits(sequences, batch_size)
        if exclude_history:
            logits = logits.masked_fill(history_mask(list(hist), logits.shape[1]), float("-inf"))
        return logits.topk(int(k), dim=1).indices.numpy()

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int = 1024,  # type: ignore[override]
                 verbose: int = 0, exclude_history: bool = True, ties: str = "average") -> dict[str, float]:
        """Full-ranking metrics and the cross-entropy of the targets on an :class:`EvalSet`.

        Args:
            x: an :class:`~ctrkit.models.sequential.EvalSet` (``split.valid`` / ``split.test``), or histories
                with their targets in ``y``.
            exclude_history: leave each user's history items out of the ranking (RecBole's full-sort protocol).
            ties: where the target goes among items with exactly its score (see
                :func:`~ctrkit.models.sequential.ranking_metrics`).

        Returns:
            ``{"loss": ..., "hr@10": ..., "ndcg@10": ..., ...}`` for the compiled metrics.
        """
        if ties not in TIES:
            raise ValueError(f"evaluate: ties must be one of {list(TIES)}, got {ties!r}.")
        if isinstance(x, EvalSet):
            hist, targets = list(x.histories), np.asarray(x.targets)
        else:
            if y is None:
                raise ValueError(f"{type(self).__name__}.evaluate: pass an EvalSet, or histories x and targets y.")
            hist, targets = list(x), np.asarray(y, dtype=np.int64).reshape(-1)
        if len(hist) != len(targets):
            raise ValueError(f"evaluate: {len(hist)} histories but {len(targets)} targets.")
        logits = self.predict_logits(hist, batch_size)
        t = torch.from_numpy(targets.astype(np.int64))
        out = {"loss": float(F.cross_entropy(logits, t))}
        ks = sorted({int(m.split("@")[1]) for m in self.ranking_metrics})
        res = ranking_metrics(logits, t, ks, exclude=history_mask(hist, logits.shape[1]) if exclude_history else None,
                              ties=ties)
        out.update({m: res[m] for m in self.ranking_metrics})
        return out

    def predict_records(self, records, batch_size: int = 4096):
        raise NotImplementedError(f"{type(self).__name__} reads item sequences; use predict(sequences) or "
                                  "recommend(sequences, k).")
