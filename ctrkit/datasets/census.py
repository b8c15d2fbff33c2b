"""UCI Census-Income (KDD), the real-data benchmark of the MMoE paper (Ma et al., KDD 2018).

The bundled file ``data/census-income.test.gz`` is the UCI *test* split: 99,762 rows of 42 comma-separated
columns, no header, every value after the first preceded by a space and ``?`` marking a missing value.

This module is pure numpy/pandas (it does not import torch).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "CENSUS_COLUMNS",
    "CENSUS_CONTINUOUS",
    "CENSUS_CATEGORICAL",
    "CENSUS_EDUCATION_COLLEGE",
    "CENSUS_LABELS",
    "load_census_income",
    "read_census_file",
    "census_feature_types",
    "split_indices",
    "train_val_test_split",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
CENSUS_PATH = DATA_DIR / "census-income.test.gz"

#: The 42 columns of the raw file, in order (from the UCI ``census-income.names`` file).
CENSUS_COLUMNS: tuple[str, ...] = (
    "age",
    "class_of_worker",
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "education",
    "wage_per_hour",
    "enroll_in_edu_inst_last_wk",
    "marital_stat",
    "major_industry_code",
    "major_occupation_code",
    "race",
    "hispanic_origin",
    "sex",
    "member_of_a_labor_union",
    "reason_for_unemployment",
    "full_or_part_time_employment_stat",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "tax_filer_stat",
    "region_of_previous_residence",
    "state_of_previous_residence",
    "detailed_household_and_family_stat",
    "detailed_household_summary_in_household",
    "instance_weight",
    "migration_code_change_in_msa",
    "migration_code_change_in_reg",
    "migration_code_move_within_reg",
    "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt",
    "num_persons_worked_for_employer",
    "family_members_under_18",
    "country_of_birth_father",
    "country_of_birth_mother",
    "country_of_birth_self",
    "citizenship",
    "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin",
    "veterans_benefits",
    "weeks_worked_in_year",
    "year",
    "income_50k",
)

#: The 7 continuous columns.
CENSUS_CONTINUOUS: tuple[str, ...] = (
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
)

_NOT_FEATURES = ("instance_weight", "income_50k")

#: The 33 categorical columns of the raw file: every column except the continuous ones, ``instance_weight``
#: (a sampling weight) and ``income_50k`` (the income label). It still contains ``education`` and
#: ``marital_stat``, which :func:`load_census_income` turns into labels and drops from ``X``. Columns holding
#: integer codes (``detailed_industry_recode``, ``detailed_occupation_recode``,
#: ``own_business_or_self_employed``, ``veterans_benefits``, ``year``) are categorical too.
CENSUS_CATEGORICAL: tuple[str, ...] = tuple(
    c for c in CENSUS_COLUMNS if c not in CENSUS_CONTINUOUS and c not in _NOT_FEATURES
)

#: ``education`` values counted as "at least a college degree" for the group-2 ``education`` label.
#: "Some college but no degree" and the two Associates degrees are *not* included.
CENSUS_EDUCATION_COLLEGE: tuple[str, ...] = (
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
)

#: Label columns of ``y`` for each MMoE task group, in order.
CENSUS_LABELS: dict[int, tuple[str, str]] = {1: ("income", "marital"), 2: ("education", "marital")}

# Columns defining a label (in either group) plus the sampling weight: never part of X.
_DROPPED_FROM_X = ("income_50k", "marital_stat", "education", "instance_weight")
_X_COLUMNS: tuple[str, ...] = tuple(c for c in CENSUS_COLUMNS if c not in _DROPPED_FROM_X)


def _strip_object_column(s: pd.Series) -> pd.Series:
    """Strip surrounding spaces of an object column, keeping object dtype and NaN (works per unique value)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    stripped = np.array([str(u).strip() for u in uniques] + [np.nan], dtype=object)
    return pd.Series(stripped[codes], index=s.index, name=s.name, dtype=object)


def read_census_file(path: str | Path, *, with_id: bool = False) -> pd.DataFrame:
    """Read a raw census-income file (UCI layout, optionally preceded by an id column) into a clean frame.

    Values are stripped of surrounding spaces and ``?`` becomes NaN; the continuous columns and
    ``instance_weight`` are float64, every other column (``income_50k`` included) holds Python strings in an
    object column. No label is derived and no column is dropped.

    Args:
        path: A file in the UCI census-income format, gzip-compressed or not.
        with_id: Whether each row starts with an extra integer id column (as in the bundled
            ``census-income.sample``), returned as an int64 column ``id``.

    Returns:
        A DataFrame with the 42 :data:`CENSUS_COLUMNS` (preceded by ``id`` if ``with_id``).

    Example:
        >>> raw = read_census_file(CENSUS_PATH)
        >>> raw.shape
        (99762, 42)
    """
    names = (["id"] if with_id else []) + list(CENSUS_COLUMNS)
    float_cols = set(CENSUS_CONTINUOUS) | {"instance_weight"}
    dtype = {c: (np.float64 if c in float_cols else object) for c in CENSUS_COLUMNS}
    if with_id:
        dtype["id"] = np.int64
    df = pd.read_csv(
        path,
        header=None,
        names=names,
        dtype=dtype,
        sep=",",
        skipinitialspace=True,  # every value but the first has one leading space
        na_values=["?"],
        keep_default_na=False,  # only "?" is missing; never parse "None"/"NA" text as missing
    )
    if df.shape[1] != len(names):  # pragma: no cover - guarded by names=
        raise ValueError(f"read_census_file: expected {len(names)} columns in {path}, got {df.shape[1]}.")
    for col in CENSUS_COLUMNS:
        if col not in float_cols:
            # a few values also carry a trailing space ("Foreign born- Not a citizen of U S ")
            df[col] = _strip_object_column(df[col])
    return df


@functools.lru_cache(maxsize=4)
def _read_census_cached(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    # (mtime_ns, size) are part of the key only so that an edited file is read again
    return read_census_file(path)


def _read_census(path: str | Path | None) -> pd.DataFrame:
    p = Path(path) if path is not None else CENSUS_PATH
    if not p.exists():
        raise FileNotFoundError(f"load_census_income: no census file at {p}.")
    st = p.stat()
    return _read_census_cached(str(p.resolve()), st.st_mtime_ns, st.st_size).copy()


def load_census_income(
    group: int = 1, *, path: str | Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load Census-Income (KDD) with the labels of one MMoE task group.

    Labels follow the MMoE paper (Ma et al., KDD 2018, §5.2):

    * group 1: ``income`` = 1 if ``income_50k == "50000+."`` else 0; ``marital`` = 1 if
      ``marital_stat == "Never married"`` else 0.
    * group 2: ``education`` = 1 if ``education`` is one of ``"Bachelors degree(BA AB BS)"``,
      ``"Masters degree(MA MS MEng MEd MSW MBA)"``, ``"Prof school degree (MD DDS DVM LLB JD)"``,
      ``"Doctorate degree(PhD EdD)"`` (see :data:`CENSUS_EDUCATION_COLLEGE`; "Some college but no degree" and
      the Associates degrees count as 0); ``marital`` as in group 1.

    ``X`` never contains ``income_50k``, ``marital_stat``, ``education`` (the label-defining columns, removed
    in both groups as in the paper) nor ``instance_weight`` (a sampling weight). It keeps the other 38
    columns in file order: the 7 :data:`CENSUS_CONTINUOUS` columns as float64 and the 31 remaining
    categorical columns as plain Python strings (object dtype; integer-coded columns such as ``year`` stay
    strings so that they are treated as categories). Values are stripped of surrounding spaces and ``?``
    becomes NaN.

    Args:
        group: MMoE task group, 1 (income, marital) or 2 (education, marital).
        path: Optional path to a census-income file in the UCI format (gzip or plain). Defaults to the
            bundled 99,762-row test split.

    Returns:
        ``(X, y)``: ``X`` a DataFrame of 38 feature columns, ``y`` a DataFrame of two int64 0/1 columns
        (``["income", "marital"]`` for group 1, ``["education", "marital"]`` for group 2), both with the
        same RangeIndex.

    Raises:
        ValueError: if ``group`` is not 1 or 2.

    Example:
        >>> X, y = load_census_income(group=1)
        >>> X.shape, list(y.columns)
        ((99762, 38), ['income', 'marital'])
    """
    if isinstance(group, bool) or group not in (1, 2):
        raise ValueError(f"load_census_income: group must be 1 or 2, got {group!r}.")
    df = _read_census(path)
    marital = (df["marital_stat"] == "Never married").astype(np.int64)
    if group == 1:
        first = ("income", (df["income_50k"] == "50000+.").astype(np.int64))
    else:
        first = ("education", df["education"].isin(CENSUS_EDUCATION_COLLEGE).astype(np.int64))
    y = pd.DataFrame({first[0]: first[1].to_numpy(), "marital": marital.to_numpy()}, index=df.index)
    X = df.loc[:, list(_X_COLUMNS)]
    return X, y


def census_feature_types() -> tuple[list[str], list[str]]:
    """Sparse (categorical) and dense (continuous) columns of :func:`load_census_income`'s ``X``.

    Returns:
        ``(sparse_cols, dense_cols)``: 31 categorical and 7 continuous column names, each in ``X``'s column
        order. Together they are exactly ``X``'s columns.

    Example:
        >>> sparse, dense = census_feature_types()
        >>> len(sparse), len(dense)
        (31, 7)
    """
    sparse = [c for c in _X_COLUMNS if c not in CENSUS_CONTINUOUS]
    dense = [c for c in _X_COLUMNS if c in CENSUS_CONTINUOUS]
    return sparse, dense


def split_indices(
    n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 2024
) -> tuple[np.ndarray, ...]:
    """Split ``range(n)`` into disjoint, covering index arrays from a seeded random permutation.

    Part ``i`` gets the permuted positions between ``round(n * sum(fractions[:i]))`` and
    ``round(n * sum(fractions[:i+1]))``, so the sizes differ from ``n * fraction`` by less than one and
    always add up to ``n``. The same ``(n, fractions, seed)`` always gives the same arrays.

    Args:
        n: Number of rows (>= 0).
        fractions: Non-negative fractions that sum to 1 (within 1e-6); one index array per fraction.
            The default gives train / validation / test.
        seed: Seed of ``np.random.default_rng`` used for the permutation.

    Returns:
        A tuple with one int64 index array per fraction (three by default), each in permutation (random)
        order.

    Raises:
        ValueError: if ``n`` is negative, ``fractions`` is empty, any fraction is negative or they do not sum
            to 1.

    Example:
        >>> train, val, test = split_indices(10, (0.6, 0.2, 0.2), seed=0)
        >>> len(train), len(val), len(test)
        (6, 2, 2)
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"split_indices: n must be >= 0, got {n}.")
    fr = np.asarray(list(fractions), dtype=np.float64)
    if fr.ndim != 1 or fr.size == 0:
        raise ValueError("split_indices: fractions must be a non-empty sequence of numbers.")
    if np.any(~np.isfinite(fr)) or np.any(fr < 0):
        raise ValueError(f"split_indices: fractions must be non-negative, got {tuple(fr.tolist())}.")
    if abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"split_indices: fractions must sum to 1, got {tuple(fr.tolist())} (sum {fr.sum():.6g})."
        )
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.rint(np.cumsum(fr) * n).astype(np.int64)
    bounds[-1] = n
    starts = np.concatenate([[0], bounds[:-1]])
    return tuple(perm[s:e].astype(np.int64) for s, e in zip(starts, bounds))


def train_val_test_split(*data, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 2024) -> list:
    """Split one or more equally long arrays / DataFrames with :func:`split_indices`.

    Args:
        *data: numpy arrays, DataFrames or Series sharing their first dimension.
        fractions: As in :func:`split_indices`.
        seed: As in :func:`split_indices`.

    Returns:
        A list with, for each input in turn, its parts in the order of ``fractions`` (``X_train, X_val,
        X_test, y_train, y_val, y_test`` for two inputs and the default fractions). Pandas objects are split
        with ``iloc`` and keep their index.

    Raises:
        ValueError: if no input is given or their lengths differ.

    Example:
        >>> X, y = load_census_income()
        >>> X_tr, X_va, X_te, y_tr, y_va, y_te = train_val_test_split(X, y)
    """
    if not data:
        raise ValueError("train_val_test_split: give at least one array or DataFrame.")
    lengths = {len(d) for d in data}
    if len(lengths) != 1:
        raise ValueError(f"train_val_test_split: inputs have different lengths {sorted(lengths)}.")
    parts = split_indices(lengths.pop(), fractions, seed)
    out = []
    for d in data:
        for idx in parts:
            out.append(d.iloc[idx] if isinstance(d, (pd.DataFrame, pd.Series)) else d[idx])
    return out
