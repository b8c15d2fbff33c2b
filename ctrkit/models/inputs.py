"""The data boundary of the facade: the user's frames, dicts, arrays, stores and records become data sources,
checked in one place for ``fit``, ``evaluate``, ``predict`` and ``predict_records``."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.arrays import ArraySource
from ..data.inputs import TensorData, num_rows, to_sample_weight, to_targets, to_tensor_data
from ..data.source import DataSource, check_source
from ..exceptions import DataValidationError
from ..preprocessing.frames import label_arrays, label_copies
from ..training.tasks import check_class_ids

__all__ = ["to_data", "to_targets_checked", "to_source", "store_source", "encode_records", "align_to_index",
           "check_trainable_rows", "group_values"]


def align_to_index(index: pd.Index, obj: Any, arg: str, where: str) -> Any:
    """``obj`` (labels or weights) aligned to the rows of ``x`` (whose index is ``index``) by index label.

    A Series / DataFrame with the same index labels in another order is reordered to ``x``'s order; one whose
    labels differ is refused (pairing by position would silently misalign). Arrays, lists and dicts of arrays
    carry no index and are paired by position.
    """
    if isinstance(obj, Mapping) and not isinstance(obj, pd.DataFrame):
        if any(isinstance(v, (pd.Series, pd.DataFrame)) for v in obj.values()):
            return {k: align_to_index(index, v, f"{arg}[{k!r}]", where) for k, v in obj.items()}
        return obj
    if not isinstance(obj, (pd.Series, pd.DataFrame)) or obj.index.equals(index):
        return obj
    unique = obj.index.is_unique and index.is_unique
    if unique and len(obj.index) == len(index) and obj.index.sort_values().equals(index.sort_values()):
        return obj.reindex(index)
    detail = f"{len(obj.index)} labels vs {len(index)}"
    if not unique:
        detail += "; an index has duplicated labels"
    elif len(index.difference(obj.index)):
        detail += f"; x has {index.difference(obj.index)[:3].tolist()} that {arg} lacks"
    raise DataValidationError(
        f"{where}: {arg} is a pandas object whose index does not match x's index ({detail}). ctrkit pairs {arg} "
        f"with x's rows by index label (the same labels in another order are realigned); pass {arg} with x's index, "
        f"or {arg}.to_numpy() to pair by position.")


def check_trainable_rows(model: Any, n: int, where: str) -> None:
    """BatchNorm cannot train on a single row (a batch of one has no variance): say so before PyTorch does."""
    if n == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise DataValidationError(
            f"{type(model).__name__}.{where}: the training data has 1 row, but the model has BatchNorm layers "
            "(e.g. dnn_use_bn=True), which need at least 2 rows per batch. Train on more rows, or build the model "
            "with dnn_use_bn=False.")


def group_values(model: Any, x: Any, group_by: str | None, where: str) -> np.ndarray | None:
    """The group id of every row of ``x`` (``compile(group_by=...)``, e.g. the user ids) for the grouped metrics,
    or None when no group column is named or no grouped metric is compiled.

    Read from a DataFrame column or a dict key, whether or not it is a feature (raw values); from an on-disk
    store, the column must be one of its sparse features (its encoded ids are read, in row order)."""
    trainer = getattr(model, "trainer", None)
    if group_by is None or trainer is None or not trainer.grouped_metrics:
        return None
    name = f"{type(model).__name__}.{where}"
    if isinstance(x, DataSource):
        from ..features import split_feature_columns
        sparse = [f.name for f in split_feature_columns(x.feature_columns).sparse]
        if group_by not in sparse:
            raise DataValidationError(
                f"{name}: compile(group_by={group_by!r}) names the group column of {trainer.grouped_metrics}, but "
                f"the store has no sparse feature {group_by!r} (its sparse features: {sparse[:10]}). Write the "
                "column into the store as a sparse feature, or evaluate on a DataFrame that holds it.")
        j = sparse.index(group_by)
        parts = [xb.sparse[:, j].numpy() for xb, _, _ in x.iter_range(0, len(x), 65536)
                 if xb.sparse is not None]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if isinstance(x, (pd.DataFrame, Mapping)) and group_by in x:
        g = np.asarray(x[group_by]).reshape(-1)
        if len(g) != num_rows(x):
            raise DataValidationError(f"{name}: x[{group_by!r}] has {len(g)} values for {num_rows(x)} rows.")
        return g
    have = list(x.columns if isinstance(x, pd.DataFrame) else x.keys() if isinstance(x, Mapping) else [])
    raise DataValidationError(
        f"{name}: compile(group_by={group_by!r}) needs the group column {group_by!r} in x for "
        f"{trainer.grouped_metrics}, but x has no such column (columns: {have[:10]}). Pass a DataFrame or dict that "
        "holds it (it need not be a feature), or compile without the grouped metrics.")


def to_data(model: Any, x: Any, where: str) -> TensorData:
    """The model input of ``x`` (a raw frame through the model's encoder, a dict of arrays, encoder output)."""
    name = f"{type(model).__name__}.{where}"
    if x is None:
        raise DataValidationError(f"{name}: x is None; pass a DataFrame or a dict of arrays.")
    if not isinstance(x, (pd.DataFrame, Mapping, list, tuple, TensorData)):
        raise DataValidationError(
            f"{name}: x must be a DataFrame, a dict {{feature name: array}} or encoder output, got a "
            f"{type(x).__name__}{' (a bare array cannot be matched to feature columns)' if hasattr(x, 'shape') else ''}"
            ". Wrap arrays as pd.DataFrame({name: values, ...}).")
    if num_rows(x) == 0:
        raise DataValidationError(f"{name}: the input has no rows.")
    return to_tensor_data(x, model.feature_columns, model.encoder, where=name)


def to_targets_checked(model: Any, y: Any, n: int, where: str) -> torch.Tensor:
    """Labels ``(n, T)`` in task order; multiclass labels must be class ids."""
    name = f"{type(model).__name__}.{where}"
    if y is None:
        raise DataValidationError(f"{name}: y is None; pass the labels {{task: array}} for tasks {model.task_names}.")
    Y = to_targets(y, model.task_names, model.task_types, n, where=f"{name}: y")
    for i, t in enumerate(model.task_names):
        if t in model.num_classes:
            check_class_ids(Y[:, i], model.num_classes[t], f"{name}: y[{t!r}]")
    check_labels(model, Y, name)
    return Y


def check_labels(model: Any, Y: torch.Tensor, name: str) -> None:
    """Checks of labels ``(n, T)`` shared by arrays and stores: a task without labels, the model's own rules."""
    empty = [t for i, t in enumerate(model.task_names) if bool(torch.isnan(Y[:, i]).all())]
    if empty:
        warnings.warn(f"{name}: task(s) {empty} have no labels (every value is missing): they add nothing to the "
                      "loss and their metrics are NaN.", stacklevel=4)
    check = getattr(model, "check_targets", None)
    if check is not None:
        check(Y, name)


def store_source(model: Any, x: DataSource, y: Any, sample_weight: Any, where: str) -> DataSource:
    """An on-disk store checked against the model (its columns, tasks and multiclass labels)."""
    name = f"{type(model).__name__}.{where}"
    if y is not None or sample_weight is not None:
        raise DataValidationError(f"{name}: a store carries its labels and weights; pass y=None and "
                                  "sample_weight=None with it.")
    if len(x) == 0:
        raise DataValidationError(f"{name}: the store has no rows.")
    source = check_source(x, model.feature_columns, model.task_names, name)
    if model.num_classes and hasattr(source, "labels"):  # multiclass ids checked up front, as for arrays
        labels = source.labels()
        for i, t in enumerate(model.task_names):
            if t in model.num_classes:
                check_class_ids(labels[:, i], model.num_classes[t], f"{name}: the store's labels for {t!r}")
    if hasattr(source, "labels") and getattr(model, "check_targets", None) is not None:
        model.check_targets(torch.as_tensor(np.asarray(source.labels(), dtype=np.float32)), name)
    return source


def to_source(model: Any, x: Any, y: Any, sample_weight: Any, where: str) -> ArraySource | DataSource:
    """Features with their labels (and weights) as one source: a checked store, or arrays in memory."""
    if isinstance(x, DataSource):
        return store_source(model, x, y, sample_weight, where)
    if isinstance(x, pd.DataFrame):  # labels and weights with an index follow x's rows by index label
        name = f"{type(model).__name__}.{where}"
        y = align_to_index(x.index, y, "y", name)
        sample_weight = align_to_index(x.index, sample_weight, "sample_weight", name)
    data = to_data(model, x, where)
    n = len(data)
    Y = to_targets_checked(model, y, n, where)
    if where == "fit" and isinstance(x, pd.DataFrame) and model.encoder is not None:
        warn_label_copies(model, x, Y)
    try:
        weights = to_sample_weight(sample_weight, n)
    except DataValidationError as e:
        raise DataValidationError(f"{type(model).__name__}.{where}: {e}") from None
    return ArraySource(data, Y, weights)


def warn_label_copies(model: Any, x: pd.DataFrame, Y: torch.Tensor) -> None:
    """Warn when a raw feature column equals a task's labels on every row (a label left among the features)."""
    labels = {t: Y[:, i].numpy() for i, t in enumerate(model.task_names) if t not in model.num_classes}
    for c, t in label_copies(x, list(model.encoder.feature_names_in_), label_arrays(labels)):
        warnings.warn(f"{type(model).__name__}.fit: feature column {c!r} equals the labels of task {t!r} on every "
                      "row: the label leaked into the features (the encoder was fitted on a frame that still held "
                      f"it). Refit the encoder with FeatureEncoder(ignore=[{c!r}]) or encoder.fit(X, y).",
                      stacklevel=4)


def encode_records(model: Any, records: Sequence[Mapping[str, Any]]) -> Any:
    """Raw records (dicts of column -> value) as model input, by the model's encoder."""
    name = f"{type(model).__name__}.predict_records"
    if model.encoder is None:
        raise RuntimeError("predict_records needs a model built from a FeatureEncoder's feature_columns.")
    records = records if isinstance(records, list) else list(records)
    if not records:
        raise DataValidationError(f"{name}: no records; pass a list of dicts {{column: value}}.")
    if not all(isinstance(r, Mapping) for r in records):
        bad = next(r for r in records if not isinstance(r, Mapping))
        raise DataValidationError(f"{name}: records must be dicts of column -> value, got a {type(bad).__name__}. "
                                  "Pass a DataFrame to predict() instead.")
    absent = [c for c in model.encoder.feature_names_in_ if not any(c in r for r in records)]
    if absent:
        warnings.warn(f"predict_records: fields {absent} are absent from the records and treated as missing "
                      "(the missing category / the training mean).", stacklevel=3)
    if len(records) <= 1024:  # no DataFrame: the encoder's records path, the same encoding as transform
        return model.encoder.transform_records(records)
    df = pd.DataFrame.from_records(records)
    return df.assign(**{c: None for c in absent}) if absent else df
