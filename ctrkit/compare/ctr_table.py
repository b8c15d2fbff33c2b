"""The single-task CTR models in a comparison: a second table next to the multi-task one (``ctrkit compare
--ctr-models deepfm,dcn,finalmlp,gdcn,masknet`` or ``--ctr-models all``; off by default).

Each named model is trained once per task (one network per task, like the multi-task table's Single-Task
row), on the comparison's split and features, with its optimizer (Adam at ``cfg.lr``), batch size, epoch cap,
early stopping (patience, the task's validation AUC or MSE, best weights restored) and seeds. A row holds
every task's test metrics; ``params``, ``seconds`` sum the per-task networks and ``epochs`` is the longest.
The rows go into ``results.csv`` beside the multi-task rows and the baselines, marked ``table = "single-task
CTR"``, and ``report.md`` shows them as a second table.

The models' sizes (:data:`CTR_MODELS`) are small ones of the usual shapes, the same as in
``benchmarks/single_task_census.py``: a (64, 32) MLP wherever there is one.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from ..exceptions import DataValidationError, suggest

__all__ = ["CTR_MODELS", "CTR_TABLE", "parse_ctr_models", "ctr_model_specs", "run_ctr_models", "is_ctr_row",
           "ctr_report_lines"]

#: the value of the ``table`` column that marks the single-task CTR rows of ``results.csv``
CTR_TABLE = "single-task CTR"
_MLP = (64, 32)
#: row name -> (registered class, constructor arguments): the sizes of the comparison and of
#: ``benchmarks/single_task_census.py``; ``--ctr-models all`` trains every entry
CTR_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "DNN": ("DNN", dict(dnn_hidden_units=_MLP)),
    "LR": ("LR", {}),
    "FM": ("FM", {}),
    "WDL": ("WDL", dict(dnn_hidden_units=_MLP)),
    "DeepFM": ("DeepFM", dict(dnn_hidden_units=_MLP)),
    "DCN": ("DCN", dict(cross_num=2, cross_parameterization="vector", dnn_hidden_units=_MLP)),
    "DCN-V2": ("DCN", dict(cross_num=2, cross_parameterization="matrix", dnn_hidden_units=_MLP)),
    "DCNMix": ("DCNMix", dict(cross_num=2, low_rank=16, num_experts=4, dnn_hidden_units=_MLP)),
    "xDeepFM": ("xDeepFM", dict(cin_layer_size=(32, 32), dnn_hidden_units=_MLP)),
    "AutoInt": ("AutoInt", dict(att_layer_num=2, att_head_num=2, dnn_hidden_units=_MLP)),
    "NFM": ("NFM", dict(dnn_hidden_units=_MLP)),
    "PNN": ("PNN", dict(dnn_hidden_units=_MLP, use_inner=True, use_outter=False)),
    "AFM": ("AFM", dict(attention_factor=8)),
    "AFN": ("AFN", dict(ltl_hidden_size=64, afn_dnn_hidden_units=_MLP)),
    "CCPM": ("CCPM", dict(conv_kernel_width=(6, 5), conv_filters=(4, 4), dnn_hidden_units=_MLP)),
    "DIFM": ("DIFM", dict(att_head_num=2, dnn_hidden_units=_MLP)),
    "FiBiNET": ("FiBiNET", dict(dnn_hidden_units=_MLP)),
    "IFM": ("IFM", dict(dnn_hidden_units=_MLP)),
    "ONN": ("ONN", dict(dnn_hidden_units=_MLP)),
    "MLR": ("MLR", dict(region_num=4)),
    "FinalMLP": ("FinalMLP", dict(mlp1_hidden_units=_MLP, mlp2_hidden_units=_MLP, fs_hidden_units=(64,),
                                  num_heads=2)),
    "GDCN": ("GDCN", dict(cross_num=3, structure="stacked", dnn_hidden_units=_MLP)),
    "GDCN-P": ("GDCN", dict(cross_num=3, structure="parallel", dnn_hidden_units=_MLP)),
    "MaskNet": ("MaskNet", dict(model_type="serial", dnn_hidden_units=_MLP)),
    "MaskNet-P": ("MaskNet", dict(model_type="parallel", parallel_num_blocks=4, parallel_block_dim=16,
                                  dnn_hidden_units=_MLP)),
}


def _tabular_single_task() -> list[str]:
    """Registered single-task models that read tabular rows (not DIN / DIEN's behaviour sequences, not the
    next-item models)."""
    from ..registry import MODELS, model_names
    return [n for n in model_names(multitask=False) if not getattr(MODELS[n], "sequential", False)
            and not getattr(MODELS[n], "conformance_tags", {}).get("needs_sequence")]


def parse_ctr_models(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"deepfm,dcn,finalmlp"`` / ``"all"`` / ``"none"`` / a sequence -> the row names to train, validated.

    Names are matched without regard to case: the entries of :data:`CTR_MODELS` (``dcn-v2``, ``gdcn-p`` ...)
    and any other registered single-task model that reads tabular rows (built with its defaults).

    Example:
        >>> parse_ctr_models("deepfm,GDCN,masknet-p")
        ('DeepFM', 'GDCN', 'MaskNet-P')
    """
    if spec is None:
        return ()
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if [n.lower() for n in names] in (["none"], []):
        return ()
    known = {n.lower(): n for n in [*_tabular_single_task(), *CTR_MODELS]}
    if [n.lower() for n in names] == ["all"]:
        return tuple(CTR_MODELS)
    out = []
    for n in names:
        if n.lower() not in known:
            raise ValueError(f"--ctr-models: unknown single-task model {n!r}.{suggest(n, known.values())} Choose "
                             f"from {sorted(set(known.values()))} (comma-separated), 'all' or 'none'; DIN and DIEN "
                             "need behaviour sequences and are not compared here.")
        out.append(known[n.lower()])
    return tuple(dict.fromkeys(out))


def ctr_model_specs(data: Any, names: Sequence[str]) -> dict[str, Callable[[str, str, int], Any]]:
    """row name -> ``build(task, task_type, seed)``; each model is built once here on ``data``'s columns, so
    a model the data does not suit (e.g. an FM without sparse features) fails before any training."""
    from ..registry import build_model

    def builder(cls_name: str, kw: dict[str, Any]) -> Callable[[str, str, int], Any]:
        return lambda task, typ, seed: build_model(cls_name, data.feature_columns, [task], [typ], seed=seed, **kw)

    specs = {}
    for name in names:
        cls_name, kw = CTR_MODELS.get(name, (name, {}))
        specs[name] = builder(cls_name, kw)
        try:
            specs[name](data.task_names[0], data.task_types[0], 0)
        except ValueError as e:
            raise DataValidationError(f"--ctr-models: {name} cannot be built on this data: "
                                      f"{str(e).splitlines()[0]}") from e
    return specs


def run_ctr_models(data: Any, specs: dict[str, Callable[[str, str, int], Any]], cfg: Any, seed: int,
                   train_one: Callable[..., Any], bar: Any = None) -> list[dict[str, Any]]:
    """Train every model of ``specs`` on each task of ``data`` for one seed, under the comparison's budget.

    Args:
        data, cfg: the comparison's prepared data and settings.
        specs: from :func:`ctr_model_specs`.
        seed: the seed of the models and of ``fit``.
        train_one: the comparison's ``train_one(model, tasks, data, cfg, seed)`` (passed in: this module does
            not import :mod:`ctrkit.compare.tabular`, which imports it).
        bar: the comparison's progress bar (:class:`~ctrkit.compare.progress.EpochProgress`), or None.

    Returns:
        one row per model, like the multi-task rows of ``results.csv`` plus ``table = "single-task CTR"``.
    """
    rows = []
    for name, build in specs.items():
        row: dict[str, Any] = {"model": name, "seed": seed, "epochs": 0, "seconds": 0.0, "cpu_seconds": 0.0,
                               "params": 0, "table": CTR_TABLE}
        for task, typ in zip(data.task_names, data.task_types):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if bar is not None:
                    bar.set_postfix_str(f"{name} ({task}) seed {seed}")
                out, _, _ = train_one(build(task, typ, seed), [task], data, cfg, seed,
                                      [bar.callback()] if bar is not None else ())
            if bar is not None:
                bar.finished(out["epochs"])
            add_network(row, out)
        rows.append(row)
    return rows


def add_network(row: dict[str, Any], out: dict[str, Any]) -> None:
    """Fold one trained network's results (``train_one``'s first return) into its comparison row: the most
    epochs, summed seconds / CPU seconds / parameters, and its test metrics (a row may hold one network per task)."""
    out = dict(out)
    row["epochs"] = max(row["epochs"], out.pop("epochs"))
    for k in ("seconds", "cpu_seconds", "params"):
        row[k] += out.pop(k)
    row.update(out)


def is_ctr_row(runs: pd.DataFrame) -> pd.Series:
    """Which rows of a comparison's ``runs`` are single-task CTR rows."""
    if "table" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["table"].eq(CTR_TABLE)


def ctr_report_lines(result: Any, format_table: Callable[..., str]) -> list[str]:
    """The report's second table (empty when the comparison trained no single-task CTR model).

    Args:
        result: a :class:`~ctrkit.compare.ComparisonResult` (its ``ctr_summary``).
        format_table: the comparison's (:func:`ctrkit.compare.format_table`).
    """
    data, cfg, summary = result.data, result.config, getattr(result, "ctr_summary", None)
    if summary is None or len(summary) == 0:
        return []
    table = format_table(summary, data.task_names, data.task_types)
    return ["## Single-task CTR models", "",
            "One network per task (as the Single-Task row above), trained on the same split and features with the "
            f"same budget: Adam lr {cfg.lr}, batch {cfg.batch_size}, at most {cfg.max_epochs} epochs, early stopping "
            f"on the task's validation metric (patience {cfg.patience}, best weights restored), {cfg.seeds} seed(s); "
            "params and train s sum the per-task networks. Sizes: `ctrkit.compare.ctr_table.CTR_MODELS` (a (64, 32) "
            "MLP where there is one).", "", table, ""]
