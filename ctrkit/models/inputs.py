"""The data boundary of the facade: the user's frames, dicts, arrays, stores and records become data sources,
checked in one place for ``fit``, ``evaluate``, ``predict`` and ``predict_records``."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from ..data.arrays import ArraySource
from ..data.inputs import TensorData, num_rows, to_sample_weight, to_targets, to_tensor_data
from ..data.source import DataSource, check_source
from ..exceptions import DataValidationError
from ..training.tasks import check_class_ids

__all__ = ["to_data", "to_targets_checked", "to_source", "store_source", "encode_records"]


def to_data(model: Any, x: Any, where: str) -> TensorData:
    """The model input of ``x`` (a raw frame through the model's encoder, a dict of arrays, encoder output)."""
    name = f"{type(model).__name__}.{where}"
    if x is None:
        raise DataValidationError(f"{name}: x is None; pass a DataFrame or a dict of arrays.")
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
    return Y


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
    return source


def to_source(model: Any, x: Any, y: Any, sample_weight: Any, where: str) -> ArraySource | DataSource:
    """Features with their labels (and weights) as one source: a checked store, or arrays in memory."""
    if isinstance(x, DataSource):
        return store_source(model, x, y, sample_weight, where)
    data = to_data(model, x, where)
    n = len(data)
    return ArraySource(data, to_targets_checked(model, y, n, where), to_sample_weight(sample_weight, n))


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
