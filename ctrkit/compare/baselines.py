"""The baselines a practitioner tries first, in every comparison: one-hot logistic regression and
gradient-boosted trees, trained per task on exactly the split and the features the deep models get.

* ``"lr"``: one-hot categorical ids (unseen ids ignored) and standardised dense values into scikit-learn's
  ``LogisticRegression`` (binary tasks) or ``Ridge`` (regression tasks).
* ``"gbdt"``: scikit-learn's ``HistGradientBoostingClassifier`` / ``Regressor`` with native categorical
  support, 300 rounds, learning rate 0.05, no early stopping and no tuning. A categorical column with more ids
  than the trees' 255 bins is given to them as its id (an ordered number) instead.

Var-length (multi-valued) features are left out of both: the rows say so. Both are deterministic, so a
comparison runs them once on a fixed split (and once per seed where every seed draws new data).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import suggest

__all__ = ["BASELINES", "BASELINE_NAMES", "parse_baselines", "run_baselines", "is_baseline"]

BASELINES = ("lr", "gbdt")
#: the model name each baseline gets in tables, ``results.csv`` and plots
BASELINE_NAMES = {"lr": "LR (one-hot)", "gbdt": "GBDT (trees)"}
_MAX_CATEGORIES = 255   # HistGradientBoosting's native categorical support: ids below max_bins


def is_baseline(model_name: str) -> bool:
    return model_name in BASELINE_NAMES.values()


def parse_baselines(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"lr,gbdt"`` / ``"none"`` / a sequence -> the baselines to run, validated."""
    if spec is None:
        return ()
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if names in (["none"], []):
        return ()
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"--baselines: unknown baseline {unknown[0]!r}.{suggest(unknown[0], BASELINES)} Choose "
                         f"from {list(BASELINES)} (comma-separated) or 'none'.")
    return tuple(dict.fromkeys(names))


def _columns(feature_columns: Sequence[Any]) -> tuple[list[Any], list[str]]:
    from ..features import DenseFeat, SparseFeat
    sparse = [f for f in feature_columns if isinstance(f, SparseFeat)]
    dense = [f.name for f in feature_columns if isinstance(f, DenseFeat)]
    return sparse, dense


def _frame(x: Any, sparse: Sequence[Any], dense: Sequence[str]) -> pd.DataFrame:
    cols: dict[str, np.ndarray] = {}
    for f in sparse:
        cols[f.name] = np.asarray(x[f.name]).reshape(len(x[f.name]), -1)[:, 0].astype(np.int64)
    for name in dense:
        v = np.asarray(x[name], dtype=np.float64).reshape(len(x[name]), -1)
        for k in range(v.shape[1]):
            cols[name if v.shape[1] == 1 else f"{name}[{k}]"] = v[:, k]
    return pd.DataFrame(cols)


def _lr(task_type: str, categorical: list[str], numeric: list[str], seed: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    prep = ColumnTransformer([("ids", OneHotEncoder(handle_unknown="ignore"), categorical),
                              ("dense", StandardScaler(), numeric)])
    head = LogisticRegression(max_iter=2000) if task_type == "binary" else Ridge(alpha=1.0)
    return make_pipeline(prep, head)


def _gbdt(task_type: str, mask: list[bool], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    cls = HistGradientBoostingClassifier if task_type == "binary" else HistGradientBoostingRegressor
    return cls(max_iter=300, learning_rate=0.05, categorical_features=mask if any(mask) else None,
               early_stopping=False, random_state=seed)


def _size(name: str, est: Any) -> int:
    """Parameters of a fitted baseline: LR's coefficients and intercept; the trees' leaves."""
    if name == "lr":
        head = est[-1]
        return int(np.size(head.coef_) + np.size(head.intercept_))
    return int(sum(p.get_n_leaf_nodes() for stage in est._predictors for p in stage))


def run_baselines(data: Any, baselines: Sequence[str], seed: int = 0) -> list[dict[str, Any]]:
    """Train each baseline per task on ``data.train`` and score it on ``data.test``.

    Args:
        data: a :class:`~ctrkit.compare.PreparedData` (encoder output and label frames).
        baselines: names from :data:`BASELINES`.
        seed: the trees' random state (they draw nothing without early stopping).

    Returns:
        one row per baseline, like the deep models' rows of ``results.csv``: ``model``, ``seed``, ``seconds``
        and ``cpu_seconds`` (training, all tasks: wall and CPU time of this process), ``params``, ``epochs``
        (NaN) and ``<task>_auc`` / ``<task>_logloss`` (binary) or ``<task>_mse`` (regression) on the test split.
    """
    from ..metrics import get_metric
    sparse, dense = _columns(data.feature_columns)
    (xtr, ytr), _, (xte, yte) = data.train, data.val, data.test
    ftr, fte = _frame(xtr, sparse, dense), _frame(xte, sparse, dense)
    categorical = [f.name for f in sparse]
    numeric = [c for c in ftr.columns if c not in categorical]
    native = [f.name for f in sparse if int(f.vocabulary_size) <= _MAX_CATEGORIES]
    rows = []
    for name in baselines:
        row: dict[str, Any] = {"model": BASELINE_NAMES[name], "seed": seed, "epochs": float("nan"),
                               "seconds": 0.0, "cpu_seconds": 0.0, "params": 0}
        for task, typ in zip(data.task_names, data.task_types):
            y = np.asarray(ytr[task], dtype=np.float64)
            keep = ~np.isnan(y)
            est = (_lr(typ, categorical, numeric, seed) if name == "lr"
                   else _gbdt(typ, [c in native for c in ftr.columns], seed))
            t0, cpu0 = time.perf_counter(), time.process_time()
            est.fit(ftr[keep], y[keep].astype(np.int64) if typ == "binary" else y[keep])
            row["seconds"] += time.perf_counter() - t0
            row["cpu_seconds"] += time.process_time() - cpu0
            row["params"] += _size(name, est)
            yt = np.asarray(yte[task], dtype=np.float64)
            ok = ~np.isnan(yt)
            if typ == "binary":
                p = est.predict_proba(fte[ok])[:, 1]
                row[f"{task}_auc"] = get_metric("auc").fn(yt[ok], p, None)
                row[f"{task}_logloss"] = get_metric("logloss").fn(yt[ok], p, None)
            else:
                row[f"{task}_mse"] = get_metric("mse").fn(yt[ok], est.predict(fte[ok]), None)
        rows.append(row)
    return rows
