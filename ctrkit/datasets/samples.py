"""Small public samples of CTR / multi-task data sets, bundled for tests and examples.

This module is pure numpy/pandas (it does not import torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .census import read_census_file

__all__ = ["SAMPLE_NAMES", "SAMPLE_LABELS", "BYTEREC_COLUMNS", "load_sample"]

SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "samples"

_FILES = {
    "criteo": "criteo_sample.txt",
    "avazu": "avazu_sample.txt",
    "movielens": "movielens_sample.txt",
    "byterec": "byterec_sample.txt",
    "census": "census-income.sample",
    "ali_ccp_train": "ali_ccp_train_sample.csv",
    "ali_ccp_val": "ali_ccp_val_sample.csv",
    "ali_ccp_test": "ali_ccp_test_sample.csv",
    "aliexpress_train": "aliexpress_train_sample.csv",
    "aliexpress_test": "aliexpress_test_sample.csv",
}

#: Names accepted by :func:`load_sample`.
SAMPLE_NAMES: tuple[str, ...] = tuple(_FILES)

#: The label column(s) of each sample.
SAMPLE_LABELS: dict[str, tuple[str, ...]] = {
    "criteo": ("label",),
    "avazu": ("click",),
    "movielens": ("rating",),
    "byterec": ("finish", "like"),
    "census": ("income_50k", "marital_stat"),
    "ali_ccp_train": ("click", "purchase"),
    "ali_ccp_val": ("click", "purchase"),
    "ali_ccp_test": ("click", "purchase"),
    "aliexpress_train": ("click", "conversion"),
    "aliexpress_test": ("click", "conversion"),
}

#: Columns of the header-less, tab-separated ByteRec (ICME 2019 short-video) sample.
BYTEREC_COLUMNS: tuple[str, ...] = (
    "uid",
    "user_city",
    "item_id",
    "author_id",
    "item_city",
    "channel",
    "finish",
    "like",
    "music_id",
    "device",
    "time",
    "duration_time",
)

_AVAZU_STRING_COLS = (
    "id",  # 64-bit unsigned hashes, some above int64's range: kept as text
    "site_id",
    "site_domain",
    "site_category",
    "app_id",
    "app_domain",
    "app_category",
    "device_id",
    "device_ip",
    "device_model",
)


def _object_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Turn pandas' ``str``/``string`` columns (default in pandas >= 3) into plain object columns."""
    for col in df.columns:
        if isinstance(df[col].dtype, pd.StringDtype):
            df[col] = df[col].astype(object)
    return df


def _count_fields(path: Path, sep: str = ",") -> tuple[int, set[int]]:
    """Number of header names and the set of field counts of the data lines (naive split, no quoting)."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split(sep)
        counts = {len(line.rstrip("\r\n").split(sep)) for line in fh if line.strip()}
    return len(header), counts


def _read_aliexpress(path: Path) -> pd.DataFrame:
    # Layout: search_id, categorical_1..16, numerical_1..63, click, conversion (82 fields). The header names
    # every field; check it, because pandas silently turns an unnamed leading field into the index when a
    # header is one name short.
    n_header, counts = _count_fields(path)
    if counts != {n_header}:
        raise ValueError(
            f"load_sample: {path.name} has {n_header} header names but data rows with "
            f"{sorted(counts)} fields."
        )
    df = pd.read_csv(path, index_col=False)
    if list(df.columns[-2:]) != ["click", "conversion"]:
        raise ValueError(f"load_sample: {path.name} does not end with the columns click, conversion.")
    cat = [c for c in df.columns if c.startswith("categorical_") or c == "search_id"]
    num = [c for c in df.columns if c.startswith("numerical_")]
    df[cat] = df[cat].astype(np.int64)
    df[num] = df[num].astype(np.float64)
    df[["click", "conversion"]] = df[["click", "conversion"]].astype(np.int64)
    return df


def load_sample(name: str) -> pd.DataFrame:
    """Load one of the small bundled data samples as a DataFrame.

    Layouts (label columns in brackets):

    * ``"criteo"``: 200 rows; [``label``], ``I1``-``I13`` float64 (NaN for gaps), ``C1``-``C26`` hashed ids
      as strings (NaN for gaps).
    * ``"avazu"``: 100 rows; ``id`` (as a string: the hashes exceed int64), [``click``], ``hour``, integer
      and hashed-string categoricals.
    * ``"movielens"``: 200 rows of MovieLens-1M; ``user_id, movie_id, [rating], timestamp, title, genres``
      (``"Comedy|Drama"``), ``gender, age, occupation, zip`` (``zip`` as a string, e.g. ``"96707-1321"``).
    * ``"byterec"``: 200 rows (header-less, tab-separated) named by :data:`BYTEREC_COLUMNS`; labels
      [``finish``, ``like``].
    * ``"census"``: 200 header-less rows: an ``id`` column, then the 42 census-income columns
      (:data:`~ctrkit.datasets.census.CENSUS_COLUMNS`) cleaned as by
      :func:`~ctrkit.datasets.census.read_census_file`; raw labels [``income_50k``, ``marital_stat``].
    * ``"ali_ccp_train"`` / ``"ali_ccp_val"`` / ``"ali_ccp_test"``: 100 / 50 / 50 rows; [``click``,
      ``purchase``], integer categorical ids (columns named ``101``, ``121``, ..., ``150_14``) and dense
      ``D*`` columns.
    * ``"aliexpress_train"`` / ``"aliexpress_test"``: 100 / 20 rows; ``search_id``, ``categorical_1``-``16``
      (int64), ``numerical_1``-``63`` (float64), [``click``, ``conversion``].

    Text columns are plain Python strings in object columns, whatever the pandas version.

    Args:
        name: One of :data:`SAMPLE_NAMES`.

    Returns:
        The sample as a DataFrame with a RangeIndex.

    Raises:
        ValueError: if ``name`` is not a known sample.

    Example:
        >>> df = load_sample("criteo")
        >>> df.shape
        (200, 40)
    """
    if name not in _FILES:
        raise ValueError(f"load_sample: unknown sample {name!r}; valid names are: {', '.join(SAMPLE_NAMES)}.")
    path = SAMPLES_DIR / _FILES[name]
    if name == "criteo":
        dtype = {f"I{i}": np.float64 for i in range(1, 14)}
        dtype.update({f"C{i}": str for i in range(1, 27)})
        df = pd.read_csv(path, dtype=dtype)
    elif name == "avazu":
        df = pd.read_csv(path, dtype={c: str for c in _AVAZU_STRING_COLS})
    elif name == "movielens":
        df = pd.read_csv(path, dtype={"zip": str, "title": str, "genres": str, "gender": str})
    elif name == "byterec":
        df = pd.read_csv(path, sep="\t", header=None, names=list(BYTEREC_COLUMNS), index_col=False)
    elif name == "census":
        df = read_census_file(path, with_id=True)  # columns: id, then CENSUS_COLUMNS
    elif name.startswith("aliexpress"):
        df = _read_aliexpress(path)
    else:  # ali_ccp_*
        df = pd.read_csv(path)
    return _object_strings(df)
