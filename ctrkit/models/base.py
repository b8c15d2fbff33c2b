"""BaseModel: feature columns + embedding layer, the loss contract, and the Keras-style facade.

A model is a small ``nn.Module`` whose ``forward(batch)`` returns ``{task name: logits (B,)}``. The sigmoid
lives in :meth:`BaseModel.logits_to_predictions` (used by ``predict``/export), not in the model. The training
loop lives in :class:`~ctrkit.training.Trainer`; ``compile/fit/evaluate/predict`` here only prepare data and
delegate. Models with a special loss override :meth:`BaseModel.compute_loss`.
"""
from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.inputs import TensorData, num_rows, to_sample_weight, to_targets, to_tensor_data
from ..data.store import DataSource, check_source
from ..exceptions import DataValidationError, SchemaError
from ..features import (DenseFeat, check_feature_columns, feature_from_dict, feature_to_dict,
                        split_feature_columns)
from ..layers.embedding import EmbeddingLayer
from ..metrics import get_metric
from ..training.losses import resolve_task_losses
from ..training.optim import build_optimizer
from ..training.trainer import Trainer

__all__ = ["BaseModel", "resolve_device"]

TASK_TYPES = ("binary", "regression")


def resolve_device(device: Any) -> torch.device:
    """``"auto"`` picks CUDA when available (``cuda:LOCAL_RANK`` under torchrun); otherwise the given device."""
    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = os.environ.get("LOCAL_RANK")
        return torch.device("cuda", int(local)) if local and local.isdigit() else torch.device("cuda")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here. Use device='cpu' or "
                         "device='auto'.")
    return dev


def _serialise(v: Any) -> Any:
    if isinstance(v, (list, tuple)) and v and all(hasattr(f, "name") and hasattr(f, "__dataclass_fields__")
                                                  for f in v):
        return {"__features__": [feature_to_dict(f) for f in v]}
    if isinstance(v, tuple):
        return [_serialise(x) for x in v]
    if isinstance(v, list):
        return [_serialise(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _serialise(x) for k, x in v.items()}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, torch.device):
        return str(v)
    return v


def deserialise_config(v: Any) -> Any:
    if isinstance(v, Mapping) and "__features__" in v:
        return [feature_from_dict(d) for d in v["__features__"]]
    if isinstance(v, Mapping):
        return {k: deserialise_config(x) for k, x in v.items()}
    if isinstance(v, list):
        return [deserialise_config(x) for x in v]
    return v


class BaseModel(nn.Module):
    """Common base of every ctrkit model.

    Args:
        feature_columns: the features the model reads (an encoder's ``feature_columns`` carry the encoder).
        task_names: one name per task (output order of ``predict``).
        task_types: ``"binary"`` or ``"regression"`` per task.
        l2_reg_embedding: L2 on the embedding vectors looked up in each batch (mean over the batch of their
            squared norms), so the cost does not grow with the table size.
        l2_reg_dnn: L2 on the weight matrices of the dense layers (sum of squares).
        init_std: standard deviation of the embedding initialisation.
        seed: seeds the weight initialisation (without touching the global RNG) and, by default, ``fit``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        sparse: sparse embedding gradients (for very large tables).
        encoder: a fitted :class:`~ctrkit.FeatureEncoder`; taken from ``feature_columns`` when they carry one.
    """

    multitask = False

    def __init__(self, feature_columns: Sequence, task_names: Sequence[str], task_types: Sequence[str], *,
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01,
                 seed: int | None = 1024, device: Any = "cpu", sparse: bool = False, encoder: Any = None,
                 config: dict[str, Any] | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.encoder = encoder if encoder is not None else getattr(feature_columns, "encoder", None)
        self.feature_columns = check_feature_columns(feature_columns, where=f"{name}: feature_columns")
        if not self.feature_columns:
            raise SchemaError(f"{name}: feature_columns is empty. Pass at least one SparseFeat, DenseFeat or "
                              "VarLenSparseFeat.")
        if isinstance(task_names, str) or isinstance(task_types, str):
            raise TypeError(f"{name}: task_names and task_types must be sequences, e.g. task_names=['ctr'], "
                            f"got {task_names!r} / {task_types!r}.")
        task_names, task_types = list(task_names), list(task_types)
        if len(task_names) != len(task_types):
            raise ValueError(f"{name}: len(task_types)={len(task_types)} does not match "
                             f"len(task_names)={len(task_names)}.")
        if not task_names:
            raise ValueError(f"{name}: at least one task is needed.")
        if len(set(task_names)) != len(task_names):
            raise ValueError(f"{name}: task_names must be unique, got {task_names}.")
        if self.multitask and len(task_names) < 2:
            warnings.warn(f"{name} is a multi-task model used with one task.", stacklevel=3)
        for t in task_types:
            if t not in TASK_TYPES:
                raise ValueError(f"{name}: task_types entries must be one of {list(TASK_TYPES)}, got {t!r}.")
        for arg, v in (("l2_reg_embedding", l2_reg_embedding), ("l2_reg_dnn", l2_reg_dnn), ("init_std", init_std)):
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{name}: {arg} must be a number >= 0, got {v!r}.")
        self.task_names, self.task_types = task_names, task_types
        self.l2_reg_embedding, self.l2_reg_dnn = float(l2_reg_embedding), float(l2_reg_dnn)
        self.seed = seed
        self.device = resolve_device(device)
        split = split_feature_columns(self.feature_columns)
        self.dense_dim = sum(f.dimension for f in split.dense if isinstance(f, DenseFeat))
        with torch.random.fork_rng(devices=[]):  # seeded here once; _finish_init skips the (large) tables
            if seed is not None:
                torch.manual_seed(int(seed))
            self.embedding = EmbeddingLayer(self.feature_columns, init_std=init_std, sparse=sparse)
        self.input_dim = self.embedding.output_dim + self.dense_dim
        self._config = {k: v for k, v in (config or {}).items() if k not in ("self", "__class__", "gpus")}
        self._binary_mask = torch.tensor([t == "binary" for t in task_types])
        # compile state
        self.optimizer: Any = None
        self.compiled_metrics: list[str] = []
        self.compiled_grad_clip_norm: float | None = None
        self._loss_fns: list[Any] = []
        self._loss_weights = torch.ones(len(task_names))
        self._compile_spec: dict[str, Any] = {}
        self._mask_labels = False
        self._fit_lock = threading.Lock()
        self.stop_training = False
        self.stop_reason: str | None = None
        self.history = None

    # ------------------------------------------------------------------ construction helpers
    def _finish_init(self) -> None:
        """Re-initialise all weights from ``seed`` (global RNG untouched) and move to the device."""
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(int(self.seed))
            for m in self.modules():
                if m is not self and m is not self.embedding and hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        self._dnn_weights = [p for n, p in self.named_parameters()
                             if not n.startswith("embedding.") and p.dim() >= 2]
        self.embedding.keep_last = self.l2_reg_embedding > 0
        self.to(self.device)
        self._loss_weights = self._loss_weights.to(self.device)

    def _input(self, batch: TensorData) -> torch.Tensor:
        """The concatenation of all embeddings and dense values: ``(B, input_dim)``."""
        parts = []
        emb = self.embedding.flat(batch)
        if emb is not None:
            parts.append(emb)
        if batch.dense is not None and self.dense_dim:
            parts.append(batch.dense)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-ready (feature columns as dicts)."""
        return {k: _serialise(v) for k, v in self._config.items()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BaseModel:
        return cls(**deserialise_config(dict(config)))

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ loss contract
    def compute_loss(self, outputs: Mapping[str, torch.Tensor], y: torch.Tensor,
                     sample_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted sum of per-task losses.

        Args:
            outputs: ``{task: logits (B,)}`` from ``forward``.
            y: labels ``(B, T)`` in task order; NaN marks a missing label (masked out of its task).
            sample_weight: ``(B,)`` or None.

        Returns:
            ``(total, per_task)`` where ``per_task`` is a ``(T,)`` tensor.
        """
        fn0 = self._loss_fns[0]
        if not self._mask_labels and all(f is fn0 for f in self._loss_fns):  # one loss for all tasks: one call
            lt = fn0(torch.stack([outputs[t] for t in self.task_names], dim=1), y)  # (B, T)
            per_task = lt.mean(0) if sample_weight is None else (lt * sample_weight.unsqueeze(1)).mean(0)
            return (per_task * self._loss_weights).sum(), per_task
        per = []
        for i, t in enumerate(self.task_names):
            yt = y[:, i]
            if self._mask_labels:
                mask = ~torch.isnan(yt)
                lt = self._loss_fns[i](outputs[t], torch.nan_to_num(yt))
                w = mask.to(lt.dtype) if sample_weight is None else sample_weight * mask
                per.append((lt * w).sum() / mask.sum().clamp_min(1))
            else:
                lt = self._loss_fns[i](outputs[t], yt)
                per.append(lt.mean() if sample_weight is None else (lt * sample_weight).mean())
        per_task = torch.stack(per)
        return (per_task * self._loss_weights).sum(), per_task

    def regularization_loss(self) -> torch.Tensor | None:
        reg = None
        if self.l2_reg_dnn > 0:
            reg = self.l2_reg_dnn * sum((p * p).sum() for p in self._dnn_weights)
        if self.l2_reg_embedding > 0 and getattr(self.embedding, "last", None):
            last = self.embedding.last
            r = self.l2_reg_embedding * sum((g * g).sum() for g in last) / last[0].shape[0]
            reg = r if reg is None else reg + r
        return reg

    def logits_to_predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, T)`` raw outputs → probabilities for binary tasks, values for regression tasks."""
        mask = self._binary_mask.to(logits.device)
        return torch.where(mask, torch.sigmoid(logits), logits)

    # ------------------------------------------------------------------ facade
    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Sequence[str] | None = None,
                loss_weights: Any = None, lr: float | None = None, grad_clip_norm: float | None = None) -> None:
        """Set the optimizer, per-task losses and weights, and the metrics.

        Args:
            optimizer: ``"adam"``, ``"adagrad"``, ``"sgd"``, ``"adamw"``, ``"rmsprop"`` or an optimizer instance.
            loss: None/``"auto"`` (BCE for binary tasks, MSE for regression), one name for every task, a list in
                task order, or ``{task: name}``. Names: ``binary_crossentropy``, ``mse``, ``mae``, ``huber``.
            metrics: names computed per task over whole epochs: ``auc``, ``logloss`` (or
                ``binary_crossentropy``), ``accuracy`` for binary tasks; ``mse``, ``mae`` for regression.
            loss_weights: ``{task: weight}`` or a list in task order (default 1 each).
            lr: learning rate when ``optimizer`` is a name.
            grad_clip_norm: clip the global gradient norm to this value.
        """
        self._loss_fns = resolve_task_losses(loss, self.task_names, self.task_types)
        mets = [] if metrics is None else ([metrics] if isinstance(metrics, str) else list(metrics))
        for m in mets:
            get_metric(m)
        self.compiled_metrics = [str(m).lower() for m in mets]
        T = len(self.task_names)
        if loss_weights is None:
            lw = [1.0] * T
        elif isinstance(loss_weights, Mapping):
            unknown = [k for k in loss_weights if k not in self.task_names]
            if unknown:
                raise ValueError(f"compile: loss_weights names unknown task(s) {unknown}; the model's tasks are "
                                 f"{self.task_names}.")
            lw = [float(loss_weights.get(t, 1.0)) for t in self.task_names]
        else:
            lw = [float(v) for v in loss_weights]
            if len(lw) != T:
                raise ValueError(f"compile: got {len(lw)} loss_weights for {T} tasks {self.task_names}.")
        if any(not np.isfinite(v) or v < 0 for v in lw):
            raise ValueError(f"compile: loss_weights must be finite and >= 0, got {lw}.")
        self._loss_weights = torch.tensor(lw, device=self.device)
        if grad_clip_norm is not None and not grad_clip_norm > 0:
            raise ValueError(f"compile: grad_clip_norm must be > 0 or None, got {grad_clip_norm!r}.")
        self.compiled_grad_clip_norm = grad_clip_norm
        self.optimizer = build_optimizer(optimizer, self, lr)
        self._compile_spec = {
            "optimizer": optimizer if isinstance(optimizer, str) else None, "lr": lr,
            "loss": loss if (loss is None or isinstance(loss, str) or (isinstance(loss, (list, dict, tuple)) and all(
                isinstance(v, str) for v in (loss.values() if isinstance(loss, dict) else loss)))) else None,
            "metrics": self.compiled_metrics, "loss_weights": dict(zip(self.task_names, lw)),
            "grad_clip_norm": grad_clip_norm}

    def _check_compiled(self, where: str) -> None:
        if not self._loss_fns:
            raise RuntimeError(f"{type(self).__name__}.{where}: call model.compile(...) first, "
                               "e.g. model.compile('adam', metrics=['auc']).")

    def _to_data(self, x: Any, where: str) -> TensorData:
        if x is None:
            raise DataValidationError(f"{type(self).__name__}.{where}: x is None; pass a DataFrame or a dict of arrays.")
        if num_rows(x) == 0:
            raise DataValidationError(f"{type(self).__name__}.{where}: the input has no rows.")
        return to_tensor_data(x, self.feature_columns, self.encoder, where=f"{type(self).__name__}.{where}")

    def _source(self, x: DataSource, y: Any, sample_weight: Any, where: str) -> DataSource:
        name = f"{type(self).__name__}.{where}"
        if y is not None or sample_weight is not None:
            raise DataValidationError(f"{name}: a store carries its labels and weights; pass y=None and "
                                      "sample_weight=None with it.")
        if len(x) == 0:
            raise DataValidationError(f"{name}: the store has no rows.")
        return check_source(x, self.feature_columns, self.task_names, name)

    @torch.inference_mode()
    def _map_batches(self, x: Any, fn: Any, where: str, batch_size: int = 4096) -> torch.Tensor:
        """``fn(batch)`` over ``x`` in eval mode, concatenated on the CPU (gate weights, auxiliary outputs)."""
        data = self._to_data(x, where)
        was = self.training
        self.eval()
        chunks = []
        try:
            for s in range(0, len(data), batch_size):
                xb = data.slice(s, s + batch_size)
                if self.device.type != "cpu":
                    xb = xb.to(self.device)
                chunks.append(fn(xb).float().cpu())
        finally:
            self.train(was)
        return torch.cat(chunks)

    def _targets(self, y: Any, n: int, where: str) -> torch.Tensor:
        if y is None:
            raise DataValidationError(f"{type(self).__name__}.{where}: y is None; pass the labels "
                                      f"{{task: array}} for tasks {self.task_names}.")
        return to_targets(y, self.task_names, self.task_types, n, where=f"{type(self).__name__}.{where}: y")

    def fit(self, x: Any = None, y: Any = None, batch_size: int = 256, epochs: int = 1, verbose: int = 1,
            initial_epoch: int = 0, validation_split: float = 0.0, validation_data: Any = None,
            shuffle: bool = True, callbacks: Sequence[Any] | None = None, sample_weight: Any = None,
            seed: int | None = None, resume_from: Any = None):
        """Train the model.

        Args:
            x: DataFrame (raw if the model has an encoder), dict of arrays, or encoder output; or an on-disk
                store (``ctrkit.data.open("train.h5")``), read in batches with its labels (then ``y`` is None).
            y: ``{task: array}``, a DataFrame of task columns, or an ``(n, T)`` array in task order.
            batch_size, epochs, verbose (0 silent, 1 progress bar, 2 one line per epoch), initial_epoch, shuffle:
                as in Keras.
            validation_split: fraction of the **last** rows held out for validation (Keras' rule).
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``, or a store.
            callbacks: list of :mod:`ctrkit.callbacks` instances.
            sample_weight: per-row weights.
            seed: seeds shuffling and dropout for this call (default: the model's ``seed``); the global RNG
                state is restored afterwards. Each epoch's shuffling depends only on ``(seed, epoch)``.
            resume_from: a checkpoint file written by :class:`~ctrkit.callbacks.BackupAndRestore`: continue
                that run (weights, optimizer, callbacks, epoch and step, RNG states) up to ``epochs``.

        Under ``torchrun`` this trains with DistributedDataParallel (see :mod:`ctrkit.distributed`).

        Returns:
            the :class:`~ctrkit.callbacks.History`.
        """
        self._check_compiled("fit")
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError(f"{type(self).__name__}.fit: this model is already being trained in another "
                               "thread. Train one model object from one thread at a time.")
        try:
            if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
                raise ValueError(f"fit: validation_split must be a float in [0, 1), got {validation_split!r}.")
            if isinstance(x, DataSource):
                data, Y, W = self._source(x, y, sample_weight, "fit"), None, None
                if validation_split:
                    raise ValueError("fit: validation_split needs in-memory data; with a store pass "
                                     "validation_data=ctrkit.data.open('val.h5').")
            else:
                data = self._to_data(x, "fit")
                n = len(data)
                Y = self._targets(y, n, "fit")
                W = to_sample_weight(sample_weight, n)
            validation = None
            if isinstance(validation_data, DataSource):
                validation = self._source(validation_data, None, None, "fit(validation_data)")
            elif validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                    raise ValueError("fit: validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight).")
                vx = self._to_data(validation_data[0], "fit(validation_data)")
                vy = self._targets(validation_data[1], len(vx), "fit(validation_data)")
                vw = to_sample_weight(validation_data[2], len(vx)) if len(validation_data) == 3 else None
                validation = (vx, vy, vw)
            elif validation_split > 0:
                k = int(n * (1.0 - validation_split))
                if k < 1 or k >= n:
                    raise ValueError(f"fit: validation_split={validation_split} leaves {k} of {n} rows for training; "
                                     "use more data or another split.")
                validation = (data.slice(k, n), Y[k:], None if W is None else W[k:])
                data, Y, W = data.slice(0, k), Y[:k], None if W is None else W[:k]
            self._mask_labels = (bool(data.has_nan_labels) if Y is None else bool(torch.isnan(Y).any())) or (
                validation is not None and (bool(validation.has_nan_labels) if isinstance(validation, DataSource)
                                            else bool(torch.isnan(validation[1]).any())))
            if self._mask_labels:
                warnings.warn("fit: some labels are NaN; they are treated as missing and left out of that task's "
                              "loss and metrics.", stacklevel=2)
            seed = self.seed if seed is None else seed
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                if seed is not None:
                    torch.manual_seed(int(seed))
                self.history = Trainer(self).fit(
                    data, Y, sample_weight=W, batch_size=batch_size, epochs=epochs, verbose=verbose,
                    initial_epoch=initial_epoch, validation=validation, shuffle=shuffle, callbacks=callbacks,
                    seed=seed, resume=resume_from)
            return self.history
        finally:
            self._fit_lock.release()

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int = 4096, sample_weight: Any = None,
                 verbose: int = 0) -> dict[str, float]:
        """Loss and compiled metrics per task on ``(x, y)``: ``{"loss", "ctr_loss", "ctr_auc", ...}``."""
        self._check_compiled("evaluate")
        if isinstance(x, DataSource):
            src = self._source(x, y, sample_weight, "evaluate")
            self._mask_labels = bool(src.has_nan_labels)
            return Trainer(self).evaluate(src, batch_size=batch_size)
        data = self._to_data(x, "evaluate")
        Y = self._targets(y, len(data), "evaluate")
        W = to_sample_weight(sample_weight, len(data))
        self._mask_labels = bool(torch.isnan(Y).any())
        return Trainer(self).evaluate(data, Y, W, batch_size)

    def predict(self, x: Any = None, batch_size: int = 4096) -> np.ndarray:
        """Predictions ``(n, T)`` in task order: probabilities for binary tasks, values for regression."""
        data = self._source(x, None, None, "predict") if isinstance(x, DataSource) else self._to_data(x, "predict")
        logits = Trainer(self).predict_logits(data, batch_size)
        return self.logits_to_predictions(logits).numpy()

    def predict_records(self, records: Sequence[Mapping[str, Any]], batch_size: int = 4096) -> np.ndarray:
        """Predict from raw records (dicts of column → value) with the bundled encoder."""
        if self.encoder is None:
            raise RuntimeError("predict_records needs a model built from a FeatureEncoder's feature_columns.")
        df = pd.DataFrame.from_records(list(records))
        absent = [c for c in self.encoder.feature_names_in_ if c not in df.columns]
        if absent:
            warnings.warn(f"predict_records: fields {absent} are absent from the records and treated as missing "
                          "(the missing category / the training mean).", stacklevel=2)
            df = df.assign(**{c: None for c in absent})
        return self.predict(df, batch_size)

    def save(self, path: str) -> None:
        """Save config, feature columns, encoder and weights to a directory (atomically)."""
        from ..io import save_model
        save_model(self, path)
