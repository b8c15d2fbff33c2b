"""THE reader of raw tables (CSV / TSV / Parquet) for the whole package: one function, one set of rules.

:func:`read_table` reads a file whole or chunk by chunk; the store conversion
(:func:`~ctrkit.data.encode_to_store`) uses it, and so should every other caller (the command line included), so
that formats, separators and error messages are the same everywhere.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from ..exceptions import DataValidationError

__all__ = ["read_table", "check_table_path", "PARQUET_SUFFIXES", "TSV_SUFFIXES"]

PARQUET_SUFFIXES = (".parquet", ".pq")
TSV_SUFFIXES = (".tsv", ".tsv.gz", ".tab")


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def check_table_path(path: str | os.PathLike, where: str = "read_table") -> None:
    """Raise a one-line error unless ``path`` is an existing, non-empty file (``where``: the caller/argument)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: file {path!r} does not exist.")
    if os.path.isdir(path):
        raise DataValidationError(f"{where}: {path!r} is a directory; pass a .csv or .parquet file.")
    if os.path.getsize(path) == 0:
        raise DataValidationError(f"{where}: {path!r} is empty.")


def read_table(path: str | os.PathLike, columns: Sequence[str] | None = None, chunksize: int | None = None, *,
               sep: str | None = None, nrows: int | None = None, options: Mapping[str, Any] | None = None,
               where: str = "read_table") -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Read a CSV / TSV / Parquet file, whole or in chunks of rows.

    Signature::

        read_table(path, columns=None, chunksize=None, *, sep=None, nrows=None, options=None,
                   where="read_table")
            -> pandas.DataFrame                      (chunksize is None)
            -> iterator of pandas.DataFrame          (chunksize given: at most chunksize rows each)

    Args:
        path: the file. ``.parquet`` / ``.pq`` is Parquet (needs ``pyarrow``); anything else is read as
            delimited text (``.csv``, ``.csv.gz``, ``.txt``, ...), tab-separated for ``.tsv``, ``.tsv.gz``
            and ``.tab``.
        columns: read only these columns (``usecols`` / Parquet column projection); None reads all.
        chunksize: None reads the whole file into one DataFrame; an int >= 1 returns an iterator of
            DataFrames of at most that many rows, so memory stays bounded whatever the file size.
        sep: the CSV separator (default: by extension, see ``path``). Ignored for Parquet.
        nrows: read at most this many rows (the first ones).
        options: extra keyword arguments for ``pandas.read_csv`` (CSV) or ``ParquetFile.iter_batches`` /
            ``pandas.read_parquet`` (Parquet); they override the defaults above.
        where: the prefix of error messages (the caller's name, e.g. ``"encode_to_store"``).

    Raises:
        FileNotFoundError: ``path`` does not exist (``"<where>: no such file '<path>'."``).
        DataValidationError: ``path`` is a directory or an empty file, cannot be parsed, or lacks some of
            ``columns``; the message names the file.
        ImportError: a Parquet file without ``pyarrow`` installed.

    Example:
        >>> import tempfile, os, pandas as pd
        >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
        >>> pd.DataFrame({"a": range(5), "b": list("xyzxy")}).to_csv(p, index=False)
        >>> read_table(p, columns=["b"]).shape
        (5, 1)
        >>> [len(c) for c in read_table(p, chunksize=2)]
        [2, 2, 1]
    """
    path = os.fspath(path)
    check_table_path(path, where)
    bad_chunks = isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1
    if chunksize is not None and bad_chunks:
        raise ValueError(f"{where}: chunksize must be an int >= 1 or None, got {chunksize!r}.")
    cols = None if columns is None else list(columns)
    opts = dict(options or {})
    if path.lower().endswith(PARQUET_SUFFIXES):
        it = _parquet_chunks(path, cols, chunksize, nrows, opts, where)
        if chunksize is None:
            frames = list(it)
            return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return it
    if "sep" not in opts:
        opts["sep"] = sep if sep is not None else ("\t" if path.lower().endswith(TSV_SUFFIXES) else ",")
    if cols is not None and "usecols" not in opts:
        opts["usecols"] = cols
    if nrows is not None and "nrows" not in opts:
        opts["nrows"] = nrows
    if chunksize is None:
        return _csv_call(lambda: pd.read_csv(path, **opts), path, where)
    return _csv_chunks(path, chunksize, opts, where)


def _csv_error(e: BaseException, path: str, where: str) -> DataValidationError:
    if isinstance(e, ValueError) and "usecols" in str(e).lower():
        return DataValidationError(f"{where}: {path!r} lacks requested columns ({_first_line(e)}).")
    return DataValidationError(f"{where}: could not parse {path!r} as CSV ({_first_line(e)}); check the file "
                               "or the separator.")


_CSV_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)


def _csv_call(fn: Any, path: str, where: str) -> pd.DataFrame:
    try:
        return fn()
    except _CSV_ERRORS as e:
        raise _csv_error(e, path, where) from None
    except ValueError as e:
        if "usecols" not in str(e).lower():
            raise
        raise _csv_error(e, path, where) from None


def _csv_chunks(path: str, chunksize: int, opts: dict[str, Any], where: str) -> Iterator[pd.DataFrame]:
    reader = _csv_call(lambda: pd.read_csv(path, chunksize=chunksize, **opts), path, where)
    it = iter(reader)
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            return
        except _CSV_ERRORS as e:
            raise _csv_error(e, path, where) from None
        yield chunk


def _parquet_chunks(path: str, columns: list[str] | None, chunksize: int | None, nrows: int | None,
                    opts: dict[str, Any], where: str) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("Reading Parquet needs pyarrow: pip install 'ctrkit[parquet]'.") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises its own types; name the file
        raise DataValidationError(f"{where}: could not read {path!r} as Parquet "
                                  f"({_first_line(e)}).") from None
    if columns is not None:
        missing = [c for c in columns if c not in pf.schema_arrow.names]
        if missing:
            raise DataValidationError(f"{where}: {path!r} lacks requested columns {missing}; its columns are "
                                      f"{list(pf.schema_arrow.names)[:30]}.")
    size = chunksize or max(1, pf.metadata.num_rows)
    if nrows is not None:
        size = max(1, min(size, int(nrows)))
    left = None if nrows is None else int(nrows)
    got = False
    for batch in pf.iter_batches(batch_size=size, columns=columns, **opts):
        df = batch.to_pandas()
        if left is not None:
            df = df.iloc[:left]
            left -= len(df)
        got = True
        yield df
        if left is not None and left <= 0:
            return
    if not got and chunksize is None:  # a file with no rows: an empty frame with the schema's columns
        yield pf.schema_arrow.empty_table().to_pandas() if columns is None else \
            pf.schema_arrow.empty_table().select(columns).to_pandas()
