"""The Keras-style facade every model carries: ``compile / fit / evaluate / predict / predict_records / save``.

It only turns the user's data into sources (:mod:`ctrkit.models.inputs`) and hands everything to the model's
:class:`~ctrkit.training.Trainer`, made by ``compile`` and kept: the optimizer, losses and their weights, the
task balancer, label masks, callbacks, the History and resume all live there, not on the model.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from ..data.arrays import ArraySource
from ..data.source import DataSource
from ..training.trainer import (
    Trainer,
    check_batch_size,
    check_finite_outputs,
    inference_lock,
    nonfinite_parameters,
    predict_logits,
    predict_small,
)
from .inputs import check_trainable_rows, encode_records, group_values, store_source, to_data, to_source

if TYPE_CHECKING:
    from ..callbacks import History

__all__ = ["KerasFacade"]

_M = TypeVar("_M")


class KerasFacade:
    """``compile / fit / evaluate / predict / predict_records / save`` on a model (see the module docstring)."""

    trainer: Trainer | None = None

    if TYPE_CHECKING:  # provided by BaseModel / nn.Module / TaskOutputs, which this is mixed with
        seed: int | None
        device: torch.device
        training: bool

        def train(self: _M, mode: bool = True) -> _M: ...

        def eval(self: _M) -> _M: ...

        def logits_to_predictions(self, logits: torch.Tensor) -> torch.Tensor: ...

        task_names: list[str]
        task_types: list[str]
        output_transform: Any

    # Keras names that callbacks and users read on the model; they are the trainer's state
    @property
    def optimizer(self) -> Any:
        return None if self.trainer is None else self.trainer.optimizer

    @property
    def compiled_metrics(self) -> list[str]:
        return [] if self.trainer is None else list(self.trainer.metrics)

    @property
    def task_balancer(self) -> Any:
        return None if self.trainer is None else self.trainer.balancer

    @property
    def history(self) -> Any:
        return None if self.trainer is None else self.trainer.history

    @property
    def stop_training(self) -> bool:
        return bool(self.trainer is not None and self.trainer.stop_training)

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self._require_trainer("stop_training").stop_training = bool(value)

    @property
    def stop_reason(self) -> str | None:
        return None if self.trainer is None else self.trainer.stop_reason

    @stop_reason.setter
    def stop_reason(self, value: str | None) -> None:
        self._require_trainer("stop_reason").stop_reason = value

    def _require_trainer(self, where: str) -> Trainer:
        if self.trainer is None:
            raise RuntimeError(f"{type(self).__name__}.{where}: call model.compile(...) first, "
                               "e.g. model.compile('adam', metrics=['auc']).")
        return self.trainer

    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Sequence[str] | None = None,
                loss_weights: Any = None, lr: float | None = None, grad_clip_norm: float | None = None,
                task_balancer: Any = None, init_output_bias: bool = True, group_by: str | None = None,
                sharding: Any = None, embedding_optimizer: str | None = None, embedding_lr: float | None = None
                ) -> None:
        """Make the model's :class:`~ctrkit.training.Trainer`: optimizer, per-task losses and weights, metrics.

        Args:
            optimizer: ``"adam"``, ``"adagrad"``, ``"sgd"``, ``"adamw"``, ``"rmsprop"`` or an optimizer instance.
            loss: None/``"auto"`` (BCE for binary tasks, MSE for regression), one name for every task, a list in
                task order, or ``{task: name}``. Names: ``binary_crossentropy``, ``mse``, ``mae``, ``huber``,
                ``categorical_crossentropy`` (the multiclass default).
            metrics: names computed per task over whole epochs: ``auc``, ``logloss`` (or
                ``binary_crossentropy``), ``accuracy``, ``gauc`` (AUC per group, needs ``group_by``), ``ne``
                (normalized entropy), ``calibration_ratio``, ``ece`` for binary tasks; ``mse``, ``mae`` for regression;
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
                task's output bias at its label prior (see :meth:`~ctrkit.models.BaseModel.init_output_bias`).
            group_by: the column holding the group of each row (e.g. ``"user_id"``) for the grouped metrics
                (``gauc``): ``evaluate`` and validation read it from ``x`` (a DataFrame column or dict key, a
                feature or not; a sparse feature of a store). Training logs leave grouped metrics out.
            sharding: for a model built with ``embedding_backend="torchrec"``: where its tables live across the
                processes of ``torchrun``: None (TorchRec's planner chooses), one sharding type for every table
                (``"table_wise"``, ``"row_wise"``, ``"column_wise"``, ...), or ``{table or feature: type}`` with
                ``"*"`` for the others. compile shards the model (see :mod:`ctrkit.training.sharding`).
            embedding_optimizer, embedding_lr: the torchrec tables' fused optimizer (``"sgd"``, ``"adagrad"``,
                ``"rowwise_adagrad"``; ``"adam"`` on CUDA) and its learning rate; default: the dense optimizer
                where TorchRec's kernels have it, else row-wise Adagrad at ``max(lr, 0.05)``.
        """
        self.trainer = Trainer(self, optimizer, loss, metrics, loss_weights, lr, grad_clip_norm, task_balancer,
                               init_output_bias, group_by, sharding, embedding_optimizer, embedding_lr)

    def fit(self, x: Any = None, y: Any = None, batch_size: int = 256, epochs: int = 1, verbose: int = 1,
            initial_epoch: int = 0, validation_split: float = 0.0, validation_data: Any = None,
            shuffle: bool = True, callbacks: Sequence[Any] | None = None, sample_weight: Any = None,
            seed: int | None = None, resume_from: Any = None) -> History:
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
        trainer = self._require_trainer("fit")
        if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be a float in [0, 1), got {validation_split!r}.")
        source = to_source(self, x, y, sample_weight, "fit")
        validation = None
        val_groups = None
        if isinstance(validation_data, DataSource):
            validation = store_source(self, validation_data, None, None, "fit(validation_data)")
            val_groups = group_values(self, validation_data, trainer.group_by, "fit(validation_data)")
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("fit: validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight).")
            validation = to_source(self, validation_data[0], validation_data[1],
                                   validation_data[2] if len(validation_data) == 3 else None, "fit(validation_data)")
            val_groups = group_values(self, validation_data[0], trainer.group_by, "fit(validation_data)")
        elif validation_split > 0:
            if not isinstance(source, ArraySource):
                raise ValueError("fit: validation_split needs in-memory data; with a store pass "
                                 "validation_data=ctrkit.data.open('val.h5').")
            n = len(source)
            k = int(n * (1.0 - validation_split))
            if k < 1 or k >= n:
                raise ValueError(f"fit: validation_split={validation_split} leaves {k} of {n} rows for training; "
                                 "use more data or another split.")
            source, validation = source.slice(0, k), source.slice(k, n)
            groups = group_values(self, x, trainer.group_by, "fit(validation_split)")
            val_groups = None if groups is None else groups[k:n]
        check_trainable_rows(self, len(source), "fit")
        return trainer.fit(source, batch_size=batch_size, epochs=epochs, verbose=verbose,
                           initial_epoch=initial_epoch, validation=validation, shuffle=shuffle, callbacks=callbacks,
                           seed=self.seed if seed is None else seed, resume=resume_from, validation_groups=val_groups)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int = 4096, sample_weight: Any = None,
                 verbose: int = 0) -> dict[str, float]:
        """Loss and compiled metrics per task on ``(x, y)``: ``{"loss", "ctr_loss", "ctr_auc", ...}``.

        The metrics are those of the probabilities :meth:`predict` returns (after a negative-sampling correction
        and a calibration, if the model has them); ``loss`` is the training loss on the raw logits. Grouped
        metrics (``gauc``) read the ``compile(group_by=...)`` column of ``x``."""
        trainer = self._require_trainer("evaluate")
        trainer.check_not_training_elsewhere("evaluate")
        source = to_source(self, x, y, sample_weight, "evaluate")
        return trainer.evaluate(source, batch_size, groups=group_values(self, x, trainer.group_by, "evaluate"))

    def predict(self, x: Any = None, batch_size: int = 4096) -> np.ndarray:
        """Predictions ``(n, T)`` in task order: probabilities for binary tasks, values for regression.

        A ``"multiclass"`` task takes C columns (its softmax class probabilities) instead of one, so the array
        is ``(n, output_width)``; :meth:`output_columns` names the columns and :meth:`split_outputs` turns a
        prediction array back into ``{task: (n,) or (n, C)}``.

        Never serves NaN: if an output is NaN or infinite it raises a RuntimeError naming the non-finite weights
        (a model that diverged) or, with finite weights, the rows that could not be scored."""
        return self.logits_to_predictions(self.predict_logits(x, batch_size)).numpy()

    def predict_logits(self, x: Any = None, batch_size: int = 4096) -> torch.Tensor:
        """Raw outputs ``(n, output_width)`` on the CPU (logits for binary tasks), in task order; a RuntimeError
        instead of NaN / infinite outputs (see :meth:`predict`)."""
        if self.trainer is not None:
            self.trainer.check_not_training_elsewhere("predict")
        source = (store_source(self, x, None, None, "predict") if isinstance(x, DataSource)
                  else ArraySource(to_data(self, x, "predict")))
        out = predict_logits(self, source, batch_size)
        check_finite_outputs(self, out, "predict")
        return out

    def predict_records(self, records: Sequence[Mapping[str, Any]], batch_size: int = 4096) -> np.ndarray:
        """Predict from raw records (dicts of column → value) with the bundled encoder: the serving call.

        Unseen values go to the out-of-vocabulary id, missing values to the missing category / the training
        mean; a field absent from every record is treated as missing (with a warning). The records are encoded
        by the same rules as a DataFrame in :meth:`predict` and give the same predictions; up to 1,024 records
        take a lean path (no DataFrame, one forward pass), the serving call.

        Returns:
            ``(n, output_width)`` predictions, as :meth:`predict`.
        """
        x = encode_records(self, records)
        if len(records) > 1024:
            return self.predict(x, batch_size)
        if self.trainer is not None:
            self.trainer.check_not_training_elsewhere("predict_records")
        pred = predict_small(self, to_data(self, x, "predict_records"))
        check_finite_outputs(self, torch.from_numpy(pred), "predict_records")
        return pred

    def set_negative_sampling(self: _M, rates: Mapping[str, float] | None) -> _M:
        """Record that the negatives of some binary tasks were downsampled in training, so that predictions are
        corrected back to the full log: ``p = q / (q + (1 - q) / w)`` for a task whose negatives were kept at
        rate ``w`` (exactly: ``log(w)`` added to the logit).

        The correction applies to :meth:`predict`, :meth:`predict_records`, the metrics of :meth:`evaluate` and
        validation, and the exported ONNX / ``torch.export`` graphs; it is saved with the model. Training and the
        loss are unaffected (they use the raw logits). See :func:`ctrkit.preprocessing.downsample_negatives`.

        Args:
            rates: ``{task: w}`` with ``0 < w <= 1``, e.g. ``{"ctr": 0.1}``; None or ``{}`` removes the correction.

        Returns:
            the model.
        """
        from .calibration import set_negative_sampling
        return set_negative_sampling(self, rates)

    def calibrate(self: _M, x: Any = None, y: Any = None, method: str | None = "isotonic",
                  tasks: Sequence[str] | str | None = None, sample_weight: Any = None, batch_size: int = 4096) -> _M:
        """Fit a post-hoc calibrator per binary task on validation data, applied after the negative-sampling
        correction: raw logit -> correction -> calibration -> probability.

        Args:
            x, y, sample_weight: the validation data, as for :meth:`evaluate` (a store: ``y=None``). Use rows
                the model was not trained on, with negatives *not* downsampled.
            method: ``"isotonic"`` (scikit-learn's ``IsotonicRegression`` of the corrected probability,
                interpolated linearly), ``"platt"`` (``sigmoid(a * z + b)`` of the corrected logit ``z``),
                ``"temperature"`` (``sigmoid(z / T)``), or None to remove the calibration of ``tasks``.
            tasks: the tasks to calibrate (default: every binary task).

        The calibration is used by :meth:`predict`, :meth:`predict_records`, :meth:`evaluate`'s metrics and the
        exported graphs, and saved with the model. Fitting again replaces it (it is fitted on the corrected, not
        the previously calibrated, output).

        Returns:
            the model.
        """
        from .calibration import calibrate
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            trainer.check_not_training_elsewhere("calibrate")
        if method is None:
            return calibrate(self, torch.zeros(0, 0), torch.zeros(0, 0), None, None, tasks)
        source = to_source(self, x, y, sample_weight, "calibrate")
        logits, labels, weights = predict_logits(self, source, check_batch_size(batch_size, "calibrate"),
                                                 with_labels=True)
        check_finite_outputs(self, logits, "calibrate")
        return calibrate(self, logits, labels, weights, method, tasks)

    def output_config(self) -> dict[str, Any] | None:
        """The negative-sampling rates and calibrators as JSON-ready data (None without any): what ``save``
        writes under ``"outputs"`` in ``config.json``."""
        t = getattr(self, "output_transform", None)
        return t.to_dict() if t else None

    def load_output_config(self, config: Mapping[str, Any] | None) -> None:
        """Restore what :meth:`output_config` returned (``load_model`` calls it); a ValueError if it is invalid."""
        from .calibration import OutputTransform
        self.output_transform = None if not config else OutputTransform.from_dict(
            config, self.task_names, self.task_types)

    @torch.inference_mode()
    def _map_batches(self, x: Any, fn: Any, where: str, batch_size: int = 4096) -> torch.Tensor:
        """``fn(batch)`` over ``x`` in eval mode, concatenated on the CPU (gate weights, auxiliary outputs)."""
        if self.trainer is not None:
            self.trainer.check_not_training_elsewhere(where)
        data = to_data(self, x, where)
        with inference_lock(self):
            was = self.training
            self.eval()
            try:
                chunks = [fn(data.slice(s, s + batch_size).to(self.device)).float().cpu()
                          for s in range(0, len(data), batch_size)]
            finally:
                self.train(was)
        return torch.cat(chunks)

    def save(self, path: str) -> None:
        """Save config, feature columns, encoder and weights to a directory (atomically).

        Refuses (RuntimeError naming the parameters, nothing written) a model whose weights hold NaN or infinite
        values: such a model would only ever predict NaN. A model with sharded tables (``embedding_backend=
        "torchrec"``) is saved as the ordinary model :meth:`gather` returns (every process must call ``save``;
        rank 0 writes), so loading and serving it needs no TorchRec."""
        from ..io import save_model
        from ..training.sharding import is_torchrec
        if is_torchrec(self):
            whole = self.gather()
            if whole is not None:
                whole.save(path)
            return
        self.check_finite_weights("save")
        save_model(self, path)

    def gather(self) -> Any:
        """This model with ordinary tables (``embedding_backend="native"``): for a model whose tables TorchRec
        shards, the same model, its tables gathered from every process (a collective: call it on every process;
        the result is on rank 0, None elsewhere), compiled as this one. Its predictions equal this model's. Any
        other model is returned as it is.

        The gathered tables must fit one process's memory: for serving and export, not for training."""
        from ..io.model_dir import compile_from_spec
        from ..training.sharding import gather_state_dict, is_sharded, is_torchrec
        if not is_torchrec(self):
            return self
        if not is_sharded(self):
            raise RuntimeError(f"{type(self).__name__}.gather: the tables are created when compile shards them; "
                               "compile (and train) the model first.")
        state = gather_state_dict(self)
        if state is None:
            return None
        me: Any = self
        whole = type(me).from_config({**me.get_config(), "embedding_backend": "native"})
        whole.encoder = me.encoder
        whole.load_state_dict(state, strict=True)
        whole.load_output_config(self.output_config())
        if self.trainer is not None:
            compile_from_spec(whole, {k: v for k, v in self.trainer.spec.items()
                                      if k not in ("sharding", "embedding_optimizer", "embedding_lr")})
        return whole

    def check_finite_weights(self, where: str = "save") -> None:
        """Raise a RuntimeError naming the parameters and buffers that hold NaN or infinite values, if any."""
        bad = nonfinite_parameters(self)
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise RuntimeError(f"{type(self).__name__}.{where}: parameter(s) {bad[:5]}{more} hold NaN or infinite "
                               "values; such a model predicts NaN, so it is not saved. It diverged in training: "
                               "retrain with a lower learning rate or compile(grad_clip_norm=...), or save a "
                               "checkpoint taken before (fit restores the last finite weights by itself).")
