"""Multi-valued (var-length) columns: splitting cells into tokens, padding / truncating the id lists.

A cell is a ``sep``-separated string (``"a|b|c"``) or already a list of values; missing and empty tokens are
dropped. Ids are written left-aligned into an int64 ``(n, maxlen)`` matrix padded with 0; longer lists keep
their last ``maxlen`` values (``truncating="pre"``) or their first (``"post"``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .categorical import MISSING, elem_key

__all__ = ["cell_tokens", "split_cells", "pad_lists"]


def cell_tokens(v: Any, sep: str) -> list[str]:
    """The keys of one var-length cell."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return [k for k in (elem_key(t) for t in v) if k not in (MISSING, "")]
    k = elem_key(v)
    if k == MISSING or k == "":
        return []
    return [t for t in k.split(sep) if t != ""]


def split_cells(values: Any, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """All tokens (as keys) of a column (Series) or list of cells, and each row's length."""
    cells = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
    lists = [cell_tokens(v, sep) for v in cells]
    lengths = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
    tokens = np.array([t for v in lists for t in v], dtype=object)
    return tokens, lengths


def pad_lists(ids: np.ndarray, lengths: np.ndarray, maxlen: int, truncating: str) -> np.ndarray:
    """Rows of ``lengths[i]`` consecutive ids into an int64 ``(n, maxlen)`` matrix, 0-padded at the end."""
    n = len(lengths)
    out = np.zeros((n, maxlen), dtype=np.int64)
    if n == 0 or ids.size == 0:
        return out
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    keep = np.minimum(lengths, maxlen)
    first = starts + (lengths - keep if truncating == "pre" else 0)  # position of each kept token in its row
    rows = np.repeat(np.arange(n), keep)
    offs = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
    out[rows, offs] = ids[np.repeat(first, keep) + offs]
    return out
