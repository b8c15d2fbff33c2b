"""Checks on the DataFrames users pass: columns that can be looked up one by one, labels copied into features."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError

__all__ = ["check_frame_columns", "label_copies", "label_names", "label_arrays"]


def check_frame_columns(df: pd.DataFrame, where: str, arg: str, columns: Sequence[str] | None = None) -> None:
    """Refuse a DataFrame whose columns cannot be read one by one: MultiIndex columns, or a duplicated name
    among ``columns`` (every column when None).

    Example:
        >>> check_frame_columns(pd.DataFrame([[1, 2]], columns=["a", "a"]), "fit", "x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ctrkit.exceptions.DataValidationError: fit: x has duplicated column names ['a']; ...
    """
    if isinstance(df.columns, pd.MultiIndex):
        raise DataValidationError(
            f"{where}: {arg} has MultiIndex columns (e.g. {df.columns[0]!r}); columns must be single names. "
            f"Flatten them first, e.g. {arg}.columns = ['_'.join(map(str, c)) for c in {arg}.columns].")
    dup = df.columns[df.columns.duplicated()].unique().tolist()
    if columns is not None:
        wanted = set(columns)
        dup = [c for c in dup if c in wanted]
    if dup:
        raise DataValidationError(
            f"{where}: {arg} has duplicated column names {dup[:10]}; a column must appear once, or ctrkit cannot "
            f"tell which copy to read. Drop or rename the copies, e.g. "
            f"{arg} = {arg}.loc[:, ~{arg}.columns.duplicated()].")


def _as_float(values: Any) -> np.ndarray | None:
    """``values`` as float64, or None for a column that is not numeric (not compared with labels)."""
    s = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).reshape(-1))
    if not (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)):
        return None
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def label_copies(frame: pd.DataFrame, features: Sequence[str], labels: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(feature, label)`` pairs where a numeric feature column equals a label on every labelled row: a label
    that leaked into the features (the model would learn to copy it).

    Example:
        >>> df = pd.DataFrame({"a": [1, 0, 1], "b": [5.0, 6.0, 7.0]})
        >>> label_copies(df, ["a", "b"], {"click": np.array([1.0, 0.0, 1.0])})
        [('a', 'click')]
    """
    found: list[tuple[str, str]] = []
    labs = {}
    for t, v in labels.items():
        arr = _as_float(v)
        if arr is not None and len(arr) == len(frame) and (~np.isnan(arr)).sum() > 1:
            labs[t] = arr
    if not labs:
        return found
    for c in features:
        if c not in frame.columns:
            continue
        col = _as_float(frame[c])
        if col is None:
            continue
        for t, lab in labs.items():
            keep = ~np.isnan(lab)
            if np.array_equal(col[keep], lab[keep]) and np.unique(lab[keep]).size > 1:
                found.append((c, t))
    return found


def label_names(y: Any) -> list[str]:
    """The column names labels carry: a DataFrame's columns, a Series' name, a dict's keys (else none)."""
    if isinstance(y, pd.DataFrame):
        return [str(c) for c in y.columns]
    if isinstance(y, pd.Series):
        return [] if y.name is None else [str(y.name)]
    if isinstance(y, Mapping):
        return [str(k) for k in y]
    return []


def label_arrays(y: Any) -> dict[str, Any]:
    """Labels by name (``"y"`` / ``"y[i]"`` for unnamed ones), to compare with feature columns."""
    if isinstance(y, pd.DataFrame):
        return {str(c): y[c] for c in y.columns}
    if isinstance(y, Mapping):
        return {str(k): v for k, v in y.items()}
    if isinstance(y, pd.Series):
        return {str(y.name) if y.name is not None else "y": y}
    try:
        arr = np.asarray(y)
    except Exception:  # noqa: BLE001 - anything unreadable is simply not compared
        return {}
    if arr.ndim == 1:
        return {"y": arr}
    if arr.ndim == 2:
        return {f"y[:, {i}]": arr[:, i] for i in range(arr.shape[1])}
    return {}
