"""Reading the CSV / TSV / Parquet files the commands are given, with one-line errors (exit code 2).

:func:`read_frame` is the one reader of whole files for every command (``train``, ``compare``);
:func:`iter_frames` reads a file chunk by chunk (``evaluate``, ``predict``: files larger than memory work).
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["UsageError", "read_frame", "iter_frames", "available_columns", "check_file", "check_out_dir",
           "check_out_file", "check_numeric_labels", "is_parquet", "is_bundled", "bundled_frame"]

_PARQUET = (".parquet", ".pq")
# In CSV files only an empty cell is missing: "NA", "null", "None" ... are values (census has a category "NA"),
# so a file scores as the frame it was written from.
_CSV_NA = {"keep_default_na": False, "na_values": [""]}


class UsageError(ValueError):
    """A problem with what the user asked for: exit code 2."""


def is_parquet(path: str) -> bool:
    return path.lower().endswith(_PARQUET)


def is_bundled(spec: str) -> bool:
    """Whether a data spec names bundled data (``census:1`` / ``census:2``) rather than a file."""
    return spec.startswith("census:")


def _census_group(spec: str, what: str) -> int:
    group = spec.split(":", 1)[1]
    if group not in ("1", "2"):
        raise UsageError(f"{what} = {spec!r}: the bundled census data is 'census:1' (income, marital) or 'census:2' "
                         "(education, marital).")
    return int(group)


def bundled_frame(spec: str, what: str, max_rows: int | None = None):
    """The bundled data a spec names, features and labels in one DataFrame: ``census:1`` (labels income,
    marital) or ``census:2`` (education, marital), the Census-Income file of :mod:`ctrkit.datasets`."""
    df = _census_frame(_census_group(spec, what))
    return df.iloc[:max_rows].reset_index(drop=True) if max_rows else df.copy()


@functools.lru_cache(maxsize=1)
def _census_frame(group: int):
    """Read once per process: ``evaluate`` asks for the columns, then for the rows (callers get copies)."""
    import pandas as pd

    from ..datasets import load_census_income
    X, y = load_census_income(group=group)
    return pd.concat([X, y], axis=1)


def check_file(path: str, what: str) -> None:
    """Raise a one-line error unless ``path`` is an existing non-empty file or a bundled data spec
    (``census:1``; ``what``: the argument)."""
    if is_bundled(path):
        _census_group(path, what)
        return
    from ..data.readers import check_table_path
    check_table_path(path, what)


def check_out_dir(path: str, what: str) -> None:
    """Raise a one-line error unless ``path`` can be an output folder (absent, or a directory): checked before any
    training, so a run is not lost at the end because its folder cannot be made."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{what}: {path!r} is an existing file, not a folder; pass a new or existing directory "
                         "(or remove the file).")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise UsageError(f"{what}: {path!r} cannot be made: {parent!r} is a file, not a folder.")


def check_out_file(path: str, what: str) -> None:
    """Raise a one-line error unless ``path`` can be an output file (absent, or a file): checked before any work."""
    if os.path.isdir(path):
        raise UsageError(f"{what}: {path!r} is an existing directory; pass a file path (e.g. {path!r}/out.csv).")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise UsageError(f"{what}: {path!r} cannot be written: {parent!r} is a file, not a folder.")


def check_numeric_labels(frame: Any, columns: Sequence[str], what: str) -> None:
    """Raise a one-line error naming the first label column holding values that are not numbers (they would
    otherwise be read as missing labels and silently left out of training)."""
    import pandas as pd
    for c in columns:
        col = frame[c]
        bad = col[pd.to_numeric(col, errors="coerce").isna() & col.notna()]
        if len(bad):
            raise UsageError(f"{what}: label column {c!r} holds {len(bad)} value(s) that are not numbers (e.g. "
                             f"{bad.iloc[0]!r} in row {bad.index[0]}); labels must be 0/1 or numbers. Map them "
                             "first (e.g. yes/no to 1/0) or leave the cell empty for a missing label.")


def _csv_sep(path: str, sep: str | None) -> str:
    if sep is not None:
        return sep
    return "\t" if path.lower().endswith((".tsv", ".tsv.gz", ".tab")) else ","


def read_frame(path: str, sep: str | None = None, max_rows: int | None = None, what: str = "data", *,
               sniff: bool = False):
    """Read a CSV / TSV / Parquet file (optionally only its first ``max_rows`` rows) into a DataFrame, with the
    package's one reader (:func:`ctrkit.data.readers.read_table`).

    Args:
        path: a ``.csv`` (``.csv.gz``, ``.tsv``, ...) or ``.parquet`` / ``.pq`` file.
        sep: the CSV separator (default ``','``, tab for ``.tsv``; sniffed with ``sniff=True``).
        max_rows: read only the first rows.
        what: the argument or config key the file came from, for error messages.
        sniff: ``ctrkit compare``'s reading: without ``sep`` the separator is sniffed, and pandas' default
            missing-value strings (``NA``, ``null`` ...) are missing. Otherwise only an empty cell is missing.

    Raises:
        FileNotFoundError: no such file.
        DataValidationError: a directory, an empty file, or a CSV that does not parse (one line, exit code 2).
    """
    from ..data.readers import read_table
    if is_parquet(path):
        options = None
    else:
        options = ({"sep": None, "engine": "python"} if sep is None else {}) if sniff else dict(_CSV_NA)
    return read_table(path, sep=sep, nrows=max_rows, options=options, where=what)


def available_columns(path: str, sep: str | None) -> list[str]:
    """The column names of a CSV / Parquet file (read without its rows) or of bundled data (``census:1``)."""
    import pandas as pd
    if is_bundled(path):
        return list(bundled_frame(path, "DATA").columns)
    if is_parquet(path):
        import pyarrow.parquet as pq
        return list(pq.ParquetFile(path).schema_arrow.names)
    return list(pd.read_csv(path, sep=_csv_sep(path, sep), nrows=0).columns)


def iter_frames(path: str, chunk_size: int, sep: str | None = None, columns: Sequence[str] | None = None,
                what: str = "data") -> Iterator[Any]:
    """Yield DataFrames of at most ``chunk_size`` rows of a CSV / Parquet file, reading it piece by piece (bundled
    data, ``census:1``, is in memory already: its slices)."""
    from ..data.readers import read_table
    if chunk_size < 1:
        raise UsageError(f"--chunk-size must be >= 1, got {chunk_size}.")
    if is_bundled(path):
        frame = bundled_frame(path, what)
        frame = frame if columns is None else frame[list(columns)]
        for start in range(0, len(frame), chunk_size):
            yield frame.iloc[start:start + chunk_size]
        return
    options = None if is_parquet(path) else dict(_CSV_NA)
    yield from read_table(path, columns=columns, chunksize=chunk_size, sep=sep, options=options, where=what)
