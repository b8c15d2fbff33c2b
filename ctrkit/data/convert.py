"""Raw file -> store: :func:`encode_to_store` fits an encoder and encodes a CSV / Parquet file chunk by
chunk (read by :func:`~ctrkit.data.readers.read_table`)."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError
from .hdf5 import DEFAULT_CHUNK_ROWS, H5Store, open_store
from .readers import read_table
from .writer import StoreWriter

__all__ = ["encode_to_store"]


def _read_chunks(source: Any, chunksize: int, columns: list[str] | None,
                 read_options: Mapping[str, Any] | None) -> Iterator[pd.DataFrame]:
    if callable(source):
        yield from source()
        return
    yield from read_table(source, columns=columns, chunksize=chunksize, options=read_options,
                          where="encode_to_store")


def encode_to_store(source: Any, encoder: Any, out_path: str, tasks: Sequence[str], *,
                    chunksize: int = 200_000, task_types: Sequence[str] | None = None,
                    sample_weight: str | None = None, fit: bool | None = None,
                    read_options: Mapping[str, Any] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                    compression: str | None = None) -> H5Store:
    """Encode a CSV / Parquet file larger than memory into a store, reading it in chunks.

    Pass 1 fits ``encoder`` chunk by chunk (``partial_fit``: vocabulary counts and dense statistics add up, so
    the encoder equals one fitted on the whole file); pass 2 encodes each chunk and appends it to the store
    with its labels. Memory stays bounded by ``chunksize`` rows, whatever the file size.

    Args:
        source: a ``.csv`` (also ``.csv.gz``, ``.tsv``, ``.txt``) or ``.parquet`` path, or a callable returning
            a fresh iterable of DataFrame chunks (called once per pass).
        encoder: a :class:`~ctrkit.FeatureEncoder`; its label columns must not be features (give ``sparse`` /
            ``dense`` explicitly, or ``ignore=tasks``).
        out_path: the ``.h5`` file to write.
        tasks: the label columns, in task order.
        chunksize: rows per chunk read.
        task_types: optional, checks binary labels are 0/1.
        sample_weight: name of a weight column, if any.
        fit: fit the encoder in pass 1 (default: only if it is not fitted yet); False uses it as is.
        read_options: extra keyword arguments for ``pd.read_csv`` (e.g. ``sep``) or ``ParquetFile.iter_batches``.
        chunk_rows, compression: as in :class:`StoreWriter`.

    Returns:
        the opened :class:`H5Store` (its ``feature_columns`` carry the fitted encoder).

    Example:
        >>> import tempfile, os
        >>> from ctrkit import FeatureEncoder
        >>> from ctrkit.datasets import make_criteo_like
        >>> d = tempfile.mkdtemp()
        >>> make_criteo_like(1000, seed=0).to_csv(os.path.join(d, "raw.csv"), index=False)
        >>> enc = FeatureEncoder(sparse=[f"C{i}" for i in range(1, 27)], dense=[f"I{i}" for i in range(1, 14)])
        >>> store = encode_to_store(os.path.join(d, "raw.csv"), enc, os.path.join(d, "train.h5"),
        ...                         ["click", "purchase"], chunksize=300)
        >>> len(store), len(store.feature_columns)
        (1000, 39)
    """
    if isinstance(tasks, str):
        tasks = [tasks]
    tasks = list(tasks)
    if isinstance(chunksize, bool) or not isinstance(chunksize, (int, np.integer)) or chunksize < 1:
        raise ValueError(f"encode_to_store: chunksize must be an int >= 1, got {chunksize!r}.")
    fitted = hasattr(encoder, "vocabularies_")
    if fit is None:
        fit = not fitted
    if not fit and not fitted:
        raise DataValidationError("encode_to_store: fit=False but the encoder is not fitted. Fit it first or "
                                  "pass fit=True.")
    explicit = encoder.sparse is not None or encoder.dense is not None or encoder.varlen is not None
    if fit and not explicit:
        ignore = set(encoder.ignore or [])
        leaked = [t for t in tasks + ([sample_weight] if sample_weight else []) if t not in ignore]
        if leaked:
            raise DataValidationError(f"encode_to_store: the encoder infers its columns but would take the label "
                                      f"column(s) {leaked} as features. Pass ignore={leaked} (or list sparse= / "
                                      "dense= explicitly).")
    columns: list[str] | None = None
    if explicit:
        vl = encoder.varlen if isinstance(encoder.varlen, Mapping) else list(encoder.varlen or [])
        feats = list(encoder.sparse or []) + list(encoder.dense or []) + list(vl)
        columns = list(dict.fromkeys(feats + tasks + ([sample_weight] if sample_weight else [])))
    if fit:
        rows = 0
        for chunk in _read_chunks(source, int(chunksize), columns, read_options):
            if len(chunk):
                encoder.partial_fit(chunk)
                rows += len(chunk)
        if rows == 0:
            raise DataValidationError(f"encode_to_store: {source!r} has no rows.")
        encoder.finish_partial_fit()
    cols = encoder.feature_columns
    with StoreWriter(out_path, cols, tasks, task_types, encoder=encoder, chunk_rows=chunk_rows,
                     compression=compression) as w:
        for chunk in _read_chunks(source, int(chunksize), columns, read_options):
            if not len(chunk):
                continue
            missing = [c for c in tasks + ([sample_weight] if sample_weight else []) if c not in chunk.columns]
            if missing:
                raise DataValidationError(f"encode_to_store: {source!r} lacks the label/weight column(s) {missing}; "
                                          f"its columns are {list(chunk.columns)[:30]}.")
            y = {t: chunk[t].to_numpy() for t in tasks}
            wt = None if sample_weight is None else chunk[sample_weight].to_numpy()
            w.append(encoder.transform(chunk), y, wt)
    return open_store(out_path)

