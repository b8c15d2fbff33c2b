"""BaseModel: feature columns + embedding layer, the loss contract, and the Keras-style facade.

A model is a small ``nn.Module`` whose ``forward(batch)`` returns ``{task name: logits (B,)}``. The sigmoid
lives in :meth:`BaseModel.logits_to_predictions` (used by ``predict``/export), not in the model. The training
loop lives in :class:`~ctrkit.training.Trainer`; ``compile/fit/evaluate/predict`` here only prepare data and
delegate. Models with a special loss override :meth:`BaseModel.compute_loss`.
"""
from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.inputs import TensorData, num_rows, to_sample_weight, to_targets, to_tensor_data
from ..data.source import DataSource, check_source
from ..exceptions import DataValidationError, SchemaError
from ..features import DenseFeat, check_feature_columns, config_from_json, config_to_json, split_feature_columns
from ..layers.core import Towers
from ..layers.embedding import EmbeddingLayer
from ..layers.fold import FoldedInputProjection, FoldedTrainingProjection, active_folding, folding
from ..metrics import get_metric
from ..training.losses import resolve_task_losses
from ..training.optim import build_optimizer
from ..training.tasks import TASK_TYPES, check_class_ids, label_prior, resolve_device, resolve_num_classes
from ..training.trainer import Trainer

__all__ = ["BaseModel", "resolve_device", "label_prior", "TASK_TYPES"]

class BaseModel(nn.Module):
    """Common base of every ctrkit model.

    Args:
        feature_columns: the features the model reads (an encoder's ``feature_columns`` carry the encoder).
        task_names: one name per task (output order of ``predict``).
        task_types: ``"binary"``, ``"regression"`` or ``"multiclass"`` per task.
        l2_reg_embedding: L2 on the embedding vectors looked up in each batch (mean over the batch of their
            squared norms), so the cost does not grow with the table size.
        l2_reg_dnn: L2 on the weight matrices of the dense layers (sum of squares).
        init_std: standard deviation of the embedding initialisation.
        seed: seeds the weight initialisation (without touching the global RNG) and, by default, ``fit``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        sparse: sparse embedding gradients (for very large tables).
        encoder: a fitted :class:`~ctrkit.FeatureEncoder`; taken from ``feature_columns`` when they carry one.
        num_classes: the number of classes of each ``"multiclass"`` task: one int for all of them, a list in
            task order, or ``{task: C}`` (C >= 2). A multiclass task's logits are ``(B, C)``; its labels are
            class ids ``0..C-1``. Only models whose ``supports_multiclass`` is True accept such tasks.
    """

    multitask = False
    supports_multiclass = False   # True for models whose task heads are ``Towers`` built with ``task_widths``

    def __init__(self, feature_columns: Sequence, task_names: Sequence[str], task_types: Sequence[str], *,
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01,
                 seed: int | None = 1024, device: Any = "cpu", sparse: bool = False, encoder: Any = None,
                 config: dict[str, Any] | None = None, num_classes: Any = None) -> None:
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
        if "multiclass" in task_types and not self.supports_multiclass:
            raise ValueError(f"{name}: 'multiclass' tasks are not supported by this model (its output is one logit "
                             "per task). Use DNN, SharedBottom, MMoE, OMoE or PLE for multiclass tasks.")
        self.num_classes = resolve_num_classes(name, num_classes, task_names, task_types)
        #: output columns per task in ``predict`` / ``predict_logits``: 1, or C for a multiclass task
        self.task_widths = [self.num_classes.get(t, 1) for t in task_names]
        self.output_width = sum(self.task_widths)
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
        self.task_balancer: Any = None
        self._compile_spec: dict[str, Any] = {}
        self._mask_labels = False
        self._init_output_bias = True
        #: True until the weights are trained or loaded: the first ``fit`` may then set the output biases
        self._fresh_weights = True
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

    def __getstate__(self) -> dict[str, Any]:
        """Pickling / ``copy.deepcopy``: everything but the lock that keeps two threads from training at once."""
        state = dict(super().__getstate__())
        state.pop("_fit_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._fit_lock = threading.Lock()

    def folded_inference(self, n_rows: int):
        """A context (entered by ``predict`` / ``evaluate`` for ``n_rows`` rows, under ``torch.inference_mode``)
        in which the model may compute its first linear layer from folded embedding tables
        (:mod:`ctrkit.layers.fold`): the same result up to float rounding, faster on the CPU. The folded tables
        are built on first use and dropped when the context ends, so they never outlive the weights; the state
        is per thread, so concurrent predict calls do not share it."""
        return folding(self, n_rows)

    def _project_input(self, batch: TensorData, weight: torch.Tensor, bias: torch.Tensor, key: Any = None
                       ) -> torch.Tensor:
        """``self._input(batch) @ weight + bias`` (``weight``: ``(input_dim, out)``), through folded embedding
        tables where that is cheaper (:mod:`ctrkit.layers.fold`): in training per batch, in ``predict`` per call;
        ``key`` names the layer in the per-call cache of folded tables (default: the weight itself)."""
        if torch.is_grad_enabled():
            plan = FoldedTrainingProjection.for_batch(self.embedding, weight, batch)
            if plan is not None:
                return plan(self.embedding, batch, weight, bias)
        else:
            state = active_folding(self)
            if state is not None and FoldedInputProjection.supported(self.embedding):
                n_rows, cache = state
                key = id(weight) if key is None else key
                if key not in cache:  # built once per call; False: not worth it for this call
                    cache[key] = (FoldedInputProjection.worthwhile(self.embedding, weight.shape[1], n_rows)
                                  and FoldedInputProjection(self.embedding, weight, bias))
                if cache[key]:
                    return cache[key](batch)
        return torch.addmm(bias, self._input(batch), weight)

    def _mlp_input(self, batch: TensorData, mlp: Any) -> torch.Tensor:
        """``mlp(self._input(batch))``, with the first layer folded where cheaper (see :meth:`_project_input`)."""
        first = mlp.first
        if first is None:
            return mlp(self._input(batch))
        return mlp.after_first(self._project_input(batch, first.weight.t(), first.bias, key=id(first)))

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
        return {k: config_to_json(v) for k, v in self._config.items()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BaseModel:
        return cls(**config_from_json(dict(config)))

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As :meth:`torch.nn.Module.load_state_dict`; loaded weights are not re-initialised by ``fit``."""
        self._fresh_weights = False
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ output bias from the label prior
    def output_biases(self) -> dict[str, torch.Tensor]:
        """Each task's output bias, as views of parameters (``{task: (width,)}``), for
        :meth:`init_output_bias`. Tower models return their towers' last biases, single-task linear+deep
        models the linear part's bias; ``{}`` when a model has none to offer."""
        towers = getattr(self, "towers", None)
        if isinstance(towers, Towers):
            b = towers.output_biases()
            return {t: b[t] for t in self.task_names if t in b}
        bias = getattr(getattr(self, "linear", None), "bias", None)
        if len(self.task_names) == 1 and isinstance(bias, nn.Parameter):
            return {self.task_names[0]: bias}
        return {}

    @torch.no_grad()
    def init_output_bias(self, y: torch.Tensor, sample_weight: torch.Tensor | None = None
                         ) -> dict[str, list[float]]:
        """Set each task's output bias to its label prior, so that training starts from the base rate.

        Binary tasks get the log-odds of the (weighted) positive rate, regression tasks the mean label,
        multiclass tasks the centred log class frequencies; NaN (missing) labels are left out. This is what
        LightGBM's ``boost_from_average`` and XGBoost's estimated ``base_score`` do: with a 5% click rate a bias
        near zero starts every prediction near 0.5, and the first epoch is spent moving it to 0.05.
        ``fit`` calls it once, on a new model (see ``compile(init_output_bias=...)``).

        Args:
            y: labels ``(N, T)`` in task order.
            sample_weight: ``(N,)`` or None.

        Returns:
            ``{task: values written}`` (tasks without an output bias or without labels are left out).
        """
        slots = self.output_biases()
        done: dict[str, list[float]] = {}
        for i, (t, typ) in enumerate(zip(self.task_names, self.task_types)):
            if t not in slots:
                continue
            v = label_prior(y[:, i], typ, self.num_classes.get(t, 1), sample_weight)
            if v is not None:
                slots[t].copy_(v.to(slots[t]).reshape(slots[t].shape))
                done[t] = [float(a) for a in v]
        return done

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
        if not self._mask_labels and not self.num_classes and all(f is fn0 for f in self._loss_fns):  # one call
            lt = fn0(torch.stack([outputs[t] for t in self.task_names], dim=1), y)  # (B, T)
            per_task = lt.mean(0) if sample_weight is None else (lt * sample_weight.unsqueeze(1)).mean(0)
            return (per_task * self._loss_weights.to(per_task.device)).sum(), per_task
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
        return (per_task * self._loss_weights.to(per_task.device)).sum(), per_task

    def regularization_loss(self) -> torch.Tensor | None:
        reg = None
        if self.l2_reg_dnn > 0:
            reg = self.l2_reg_dnn * sum((p * p).sum() for p in self._dnn_weights)
        if self.l2_reg_embedding > 0 and getattr(self.embedding, "last", None):
            last = self.embedding.last
            r = self.l2_reg_embedding * sum((g * g).sum() for g in last) / last[0].shape[0]
            reg = r if reg is None else reg + r
        return reg

    def stack_outputs(self, outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{task: (B,) or (B, C)}`` → one ``(B, output_width)`` tensor: tasks in order, a multiclass task's
        C columns side by side (``(B, T)`` when no task is multiclass)."""
        if not self.num_classes:
            return torch.stack([outputs[t] for t in self.task_names], dim=1)
        return torch.cat([outputs[t].reshape(outputs[t].shape[0], w)
                          for t, w in zip(self.task_names, self.task_widths)], dim=1)

    def split_outputs(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The inverse of :meth:`stack_outputs`: ``(N, output_width)`` → ``{task: (N,) or (N, C)}``."""
        out, c = {}, 0
        for t, w in zip(self.task_names, self.task_widths):
            out[t] = logits[:, c] if w == 1 and t not in self.num_classes else logits[:, c:c + w]
            c += w
        return out

    def output_columns(self) -> list[str]:
        """Names of the ``predict`` columns: the task name, or ``"task:k"`` for class k of a multiclass task."""
        return [t if t not in self.num_classes else f"{t}:{k}"
                for t, w in zip(self.task_names, self.task_widths) for k in range(w)]

    def logits_to_predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, output_width)`` raw outputs → probabilities for binary tasks (sigmoid), values for regression
        tasks, class probabilities for multiclass tasks (softmax over the task's C columns)."""
        if not self.num_classes:
            mask = self._binary_mask.to(logits.device)
            return torch.where(mask, torch.sigmoid(logits), logits)
        parts = []
        for (t, z), typ in zip(self.split_outputs(logits).items(), self.task_types):
            if typ == "multiclass":
                parts.append(torch.softmax(z, dim=1))
            else:
                parts.append((torch.sigmoid(z) if typ == "binary" else z).unsqueeze(1))
        return torch.cat(parts, dim=1)

    # ------------------------------------------------------------------ facade
    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Sequence[str] | None = None,
                loss_weights: Any = None, lr: float | None = None, grad_clip_norm: float | None = None,
                task_balancer: Any = None, init_output_bias: bool = True) -> None:
        """Set the optimizer, per-task losses and weights, and the metrics.

        Args:
            optimizer: ``"adam"``, ``"adagrad"``, ``"sgd"``, ``"adamw"``, ``"rmsprop"`` or an optimizer instance.
            loss: None/``"auto"`` (BCE for binary tasks, MSE for regression), one name for every task, a list in
                task order, or ``{task: name}``. Names: ``binary_crossentropy``, ``mse``, ``mae``, ``huber``,
                ``categorical_crossentropy`` (the multiclass default).
            metrics: names computed per task over whole epochs: ``auc``, ``logloss`` (or
                ``binary_crossentropy``), ``accuracy`` for binary tasks; ``mse``, ``mae`` for regression;
                ``accuracy``, ``logloss`` (multi-class cross-entropy) and ``auc`` (macro one-vs-rest) for
                multiclass tasks.
            loss_weights: ``{task: weight}`` or a list in task order (default 1 each).
            lr: learning rate when ``optimizer`` is a name.
            grad_clip_norm: clip the global gradient norm to this value.
            task_balancer: how task losses are combined: None (fixed ``loss_weights``), ``"uncertainty"``,
                ``"gradnorm"``, ``"pcgrad"``, or an instance from :mod:`ctrkit.training.balancing` (e.g.
                ``GradNorm(alpha=1.0)``). Learned weights (uncertainty, GradNorm) appear in the History as
                ``loss_weight_<task>``; they exclude ``loss_weights``.
            init_output_bias: on the first ``fit`` of a new model (not one trained or loaded before), start each
                task's output bias at its label prior (log-odds of the positive rate for binary tasks; see
                :meth:`init_output_bias`). False keeps the constructor's biases.
        """
        if not isinstance(init_output_bias, bool):
            raise TypeError(f"compile: init_output_bias must be True or False, got {init_output_bias!r}.")
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
        from ..training.balancing import get_balancer
        balancer = get_balancer(task_balancer)
        if balancer.learns_weights and loss_weights is not None:
            raise ValueError(f"compile: task_balancer={balancer.name!r} learns the task weights; loss_weights="
                             f"{loss_weights!r} cannot be combined with it. Pass one or the other.")
        self.optimizer = build_optimizer(optimizer, self, lr)
        balancer.bind(self)
        self.task_balancer = balancer
        self._init_output_bias = init_output_bias
        self._compile_spec = {
            "optimizer": optimizer if isinstance(optimizer, str) else None, "lr": lr,
            "loss": loss if (loss is None or isinstance(loss, str) or (isinstance(loss, (list, dict, tuple)) and all(
                isinstance(v, str) for v in (loss.values() if isinstance(loss, dict) else loss)))) else None,
            "metrics": self.compiled_metrics,
            "loss_weights": None if balancer.learns_weights else dict(zip(self.task_names, lw)),
            "grad_clip_norm": grad_clip_norm, "task_balancer": balancer.config(),
            "init_output_bias": init_output_bias}

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
        source = check_source(x, self.feature_columns, self.task_names, name)
        if self.num_classes and hasattr(source, "labels"):  # multiclass ids checked up front, as for arrays
            labels = source.labels()
            for i, t in enumerate(self.task_names):
                if t in self.num_classes:
                    check_class_ids(labels[:, i], self.num_classes[t], f"{name}: the store's labels for {t!r}")
        return source

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
        Y = to_targets(y, self.task_names, self.task_types, n, where=f"{type(self).__name__}.{where}: y")
        for i, t in enumerate(self.task_names):
            if t in self.num_classes:
                check_class_ids(Y[:, i], self.num_classes[t], f"{type(self).__name__}.{where}: y[{t!r}]")
        return Y

    def fit(self, x: Any = None, y: Any = None, batch_size: int = 256, epochs: int = 1, verbose: int = 1,
            initial_epoch: int = 0, validation_split: float = 0.0, validation_data: Any = None,
            shuffle: bool = True, callbacks: Sequence[Any] | None = None, sample_weight: Any = None,
            seed: int | None = None, resume_from: Any = None):
        """Train the model.

        Args:
            x: DataFrame (raw if the model has an encoder), dict of arrays, or encoder output; or an on-disk
                store (``ctrkit.data.open("train.h5")``), read in batches with its labels (then ``y`` is None).
            y: ``{task: array}``, a DataFrame of task columns, or an ``(n, T)`` array in task order.
            batch_size, epochs, initial_epoch, shuffle: as in Keras.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch.
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
            if self._fresh_weights and self._init_output_bias and resume_from is None:
                labels = Y if Y is not None else (data.labels() if hasattr(data, "labels") else None)
                if labels is not None:
                    self.init_output_bias(labels, W)
            self._fresh_weights = False
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
        """Predictions ``(n, T)`` in task order: probabilities for binary tasks, values for regression.

        A ``"multiclass"`` task takes C columns (its softmax class probabilities) instead of one, so the array
        is ``(n, output_width)``; :meth:`output_columns` names the columns and :meth:`split_outputs` turns a
        prediction array back into ``{task: (n,) or (n, C)}``."""
        data = self._source(x, None, None, "predict") if isinstance(x, DataSource) else self._to_data(x, "predict")
        logits = Trainer(self).predict_logits(data, batch_size)
        return self.logits_to_predictions(logits).numpy()

    def predict_records(self, records: Sequence[Mapping[str, Any]], batch_size: int = 4096) -> np.ndarray:
        """Predict from raw records (dicts of column → value) with the bundled encoder: the serving call.

        Unseen values go to the out-of-vocabulary id, missing values to the missing category / the training
        mean; a field absent from every record is treated as missing (with a warning). Up to 1,024 records
        take a lean path without pandas (``FeatureEncoder.transform_records``; a single record costs well under a
        millisecond besides the forward pass); more go through :meth:`predict` on a DataFrame. Both give the
        same predictions.

        Returns:
            ``(n, output_width)`` predictions, as :meth:`predict`.
        """
        if self.encoder is None:
            raise RuntimeError("predict_records needs a model built from a FeatureEncoder's feature_columns.")
        records = records if isinstance(records, list) else list(records)
        if not records:
            raise DataValidationError(f"{type(self).__name__}.predict_records: no records; pass a list of dicts "
                                      "{column: value}.")
        if not all(isinstance(r, Mapping) for r in records):
            bad = next(r for r in records if not isinstance(r, Mapping))
            raise DataValidationError(f"{type(self).__name__}.predict_records: records must be dicts of column -> "
                                      f"value, got a {type(bad).__name__}. Pass a DataFrame to predict() instead.")
        absent = [c for c in self.encoder.feature_names_in_ if not any(c in r for r in records)]
        if absent:
            warnings.warn(f"predict_records: fields {absent} are absent from the records and treated as missing "
                          "(the missing category / the training mean).", stacklevel=2)
        if len(records) <= 1024:  # no DataFrame: the encoder's records path, the same encoding as transform
            return self.predict(self.encoder.transform_records(records), batch_size)
        df = pd.DataFrame.from_records(records)
        if absent:
            df = df.assign(**{c: None for c in absent})
        return self.predict(df, batch_size)

    def save(self, path: str) -> None:
        """Save config, feature columns, encoder and weights to a directory (atomically)."""
        from ..io import save_model
        save_model(self, path)
