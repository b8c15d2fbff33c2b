"""Raw records (dicts of column -> value, as a server receives them) as columns, without a DataFrame.

:func:`record_columns` gives, per column, the list of the records' values (absent fields are missing), which
the encoder then encodes with the very functions it uses on DataFrame columns.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["as_records", "record_columns"]


def as_records(records: Iterable[Mapping[str, Any]], where: str) -> list:
    """``records`` as a list, checked to hold dicts (a clear error names the first bad position)."""
    recs = records if isinstance(records, list) else list(records)
    for i, r in enumerate(recs):
        if not isinstance(r, Mapping):
            raise TypeError(f"{where}: records must be dicts of column -> value, got {type(r).__name__} at "
                            f"position {i}. Pass a DataFrame to transform() instead.")
    return recs


def record_columns(recs: list, columns: Iterable[str]) -> dict[str, list]:
    """``{column: [each record's value, None where absent]}``."""
    return {c: [r.get(c) for r in recs] for c in columns}
