"""Reading the CSV / TSV / Parquet files the commands are given, with one-line errors (exit code 2).

:func:`read_frame` is the one reader of whole files for every command (``train``, ``compare``);
:func:`iter_frames` reads a file chunk by chunk (``evaluate``, ``predict``: files larger than memory work).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["UsageError", "read_frame", "iter_frames", "available_columns", "check_file", "is_parquet"]

_PARQUET = (".parquet", ".pq")
# In CSV files only an empty cell is missing: "NA", "null", "None" ... are values (census has a category "NA"),
# so a file scores as the frame it was written from.
_CSV_NA = {"keep_default_na": False, "na_values": [""]}


class UsageError(ValueError):
    """A problem with what the user asked for: exit code 2."""


def is_parquet(path: str) -> bool:
    return path.lower().endswith(_PARQUET)


def check_file(path: str, what: str) -> None:
    """Raise a one-line error unless ``path`` is an existing non-empty file (``what``: the argument)."""
    from ..data.readers import check_table_path
    check_table_path(path, what)


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
    """The column names of a CSV / Parquet file, read without its rows."""
    import pandas as pd
    if is_parquet(path):
        import pyarrow.parquet as pq
        return list(pq.ParquetFile(path).schema_arrow.names)
    return list(pd.read_csv(path, sep=_csv_sep(path, sep), nrows=0).columns)


def iter_frames(path: str, chunk_size: int, sep: str | None = None, columns: Sequence[str] | None = None,
                what: str = "data") -> Iterator[Any]:
    """Yield DataFrames of at most ``chunk_size`` rows of a CSV / Parquet file, reading it piece by piece."""
    from ..data.readers import read_table
    if chunk_size < 1:
        raise UsageError(f"--chunk-size must be >= 1, got {chunk_size}.")
    options = None if is_parquet(path) else dict(_CSV_NA)
    yield from read_table(path, columns=columns, chunksize=chunk_size, sep=sep, options=options, where=what)
