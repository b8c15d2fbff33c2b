"""The inputs of a comparison, chosen on the validation split: how the numeric columns are embedded, how wide
every field's embedding is, whether a gated cross network sits on the input, and the batch size.

These trade against each other and the best choice depends on the data: on census group 1 (income) 64-bin
quantile fields of width 4 in batches of 1,024 validate best; on group 2 (education) piecewise-linear fields of
width 16 in batches of 512, crossed by two low-rank gated cross layers (GDCN's, rank 64) before each model's first
layer (``benchmarks/RESULTS.md``, "Compare inputs chosen on validation" and "A low-rank input cross network for
every model"). The cross network belongs to the inputs, so every model of the comparison gets the same one and
the parameter matching counts it.

So a comparison does not fix them: with ``CompareConfig.inputs="auto"`` (the default) it encodes the data once
per preset of :data:`INPUT_PRESETS`, trains the comparison's MMoE once (seed 0) on each, and every model of the
comparison then gets the preset whose MMoE reached the better validation metric of the monitored task. The
test split is not looked at. The candidates train side by side in the comparison's worker processes, so the
choice costs about one run's time, and the chosen preset's pilot is the comparison's own MMoE run for seed 0
(reused, not trained again). A worker whose pilot is done while another pilot still trains does not wait: it
makes the comparison's next runs on its pilot's preset, one at a time, and they are reused too if that preset
wins (on census group 1 the quick `compact` pilot wins while the crossed `wide` one takes three times longer).

``inputs="compact"`` / ``"wide"`` takes that preset without a pilot; ``inputs=None`` takes ``numeric_embedding``,
``embedding_dim``, ``cross_layers`` and ``batch_size`` as they are set. Setting any of those four (to something
other than its default) fixes the inputs too: ``"auto"`` never overrides what a user chose.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from .tabular import CompareConfig, PreparedData, _model_specs, _run_job, _run_order

__all__ = ["INPUT_PRESETS", "input_candidates", "choose_inputs"]   # the report's sentence: report.inputs_line

#: name -> the CompareConfig fields a preset sets
INPUT_PRESETS: dict[str, dict[str, Any]] = {
    "compact": dict(numeric_embedding="quantile", embedding_dim=4, cross_layers=0, batch_size=1024),
    "wide": dict(numeric_embedding="ple", embedding_dim=16, cross_layers=2, batch_size=512),
}
_KEYS = ("numeric_embedding", "embedding_dim", "cross_layers", "batch_size")
_PILOT_MODEL = "MMoE"


def _defaults() -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(CompareConfig) if f.name in _KEYS}


def input_candidates(cfg: CompareConfig) -> dict[str, CompareConfig]:
    """The settings a comparison chooses between: ``{name: cfg with that preset's inputs}``, one entry when the
    inputs are fixed (a preset named, ``inputs=None``, or one of the three fields set away from its default).

    Example:
        >>> sorted(input_candidates(CompareConfig()))
        ['compact', 'wide']
        >>> {k: c.embedding_dim for k, c in input_candidates(CompareConfig(inputs="wide")).items()}
        {'wide': 16}
        >>> list(input_candidates(CompareConfig(embedding_dim=8)))   # a field set by the user: kept
        ['as set']
    """
    if cfg.inputs is None:
        return {"as set": cfg}
    if cfg.inputs == "auto":
        if any(getattr(cfg, k) != v for k, v in _defaults().items()):
            return {"as set": dataclasses.replace(cfg, inputs=None)}
        return {name: dataclasses.replace(cfg, inputs=name, **p) for name, p in INPUT_PRESETS.items()}
    if cfg.inputs in INPUT_PRESETS:
        return {cfg.inputs: dataclasses.replace(cfg, **INPUT_PRESETS[cfg.inputs])}
    raise ValueError(f"inputs: expected 'auto', None or one of {sorted(INPUT_PRESETS)}, got {cfg.inputs!r}.")


def _pilot(shared: dict[str, Any], name: str, cfg: CompareConfig, data: PreparedData,
           run: tuple[str, int] | None = None) -> Any:
    """One pilot run (a worker job): the comparison's MMoE job for seed 0 on ``data`` with ``cfg`` (the very run
    the comparison would make, so the chosen preset's pilot is reused there), and its best validation value of
    the monitored task's metric (the weights early stopping kept). With ``run=(model, seed)``: that run of the
    comparison on this preset instead, made ahead while another pilot trains (``_run_job``'s result)."""
    if run is not None:   # the worker keeps each preset's data and model sizing for its next runs
        return _run_job(shared.setdefault(name, {"data": data, "cfg": cfg, "specs": {}}), *run)
    tasks = data.task_names
    monitor: str = cfg.monitor_task if cfg.monitor_task is not None and cfg.monitor_task in tasks else tasks[0]
    binary = dict(zip(data.task_names, data.task_types))[monitor] == "binary"
    t0 = time.perf_counter()
    job = _run_job({"data": data, "cfg": dataclasses.replace(cfg, models=(_PILOT_MODEL,)), "specs": {}},
                   _PILOT_MODEL, 0)
    values = job[1][f"val_{monitor}_{'auc' if binary else 'mse'}"]
    return {"inputs": name, "model": _PILOT_MODEL, "metric": "auc" if binary else "mse", "task": monitor,
            "val": max(values) if binary else min(values), "epochs": sum(job[3]),
            "seconds": time.perf_counter() - t0, "job": job}


def choose_inputs(prepare: Callable[[CompareConfig], PreparedData], cfg: CompareConfig | None = None,
                  progress: bool = True) -> tuple[PreparedData, CompareConfig]:
    """Encode the data for each candidate input preset, keep the one whose MMoE validates best.

    Args:
        prepare: ``cfg -> PreparedData`` (e.g. ``lambda c: prepare_census(1, c.embedding_dim,
            c.numeric_embedding, c.n_bins)``); called once per candidate.
        cfg: the comparison's settings (default ``CompareConfig()``).

    Returns:
        the chosen data and settings (``inputs`` names the preset, or is None for inputs as set), to pass to
        :func:`~ctrkit.compare.run_comparison`. ``data.extra["inputs"]`` records the choice and each candidate's
        pilot (``{"chosen", "pilots": [{"inputs", "model", "task", "metric", "val", "epochs", "seconds"}, ...]}``);
        the report prints it (:func:`ctrkit.compare.report.inputs_line`). ``data.extra["trained"]`` holds the
        winner's pilot and the runs made ahead on its preset, ``{(model, seed): run}``, which ``run_comparison``
        reuses.
    """
    from .progress import EpochProgress
    from .runner import resolve_workers, run_jobs
    cfg = cfg or CompareConfig()
    cands = input_candidates(cfg)
    if len(cands) == 1:
        (name, chosen), = cands.items()
        data = prepare(chosen)
        data.extra["inputs"] = {"chosen": name, "pilots": []}
        return data, chosen
    datas = {name: prepare(c) for name, c in cands.items()}
    jobs = [(name, c, datas[name]) for name, c in cands.items()]
    bar = EpochProgress(len(jobs), cfg.max_epochs, disable=not progress, desc="choosing inputs")
    bar.set_postfix_str(" vs ".join(cands))
    ahead: list[tuple] = []       # the comparison's runs on the preset whose pilot finished first, in its order
    pilots_done: list[int] = []
    sent: list[tuple] = []        # those given to a worker, in the order their results come back

    def more(i: int, res: Any) -> list[tuple]:
        """A worker fell idle: while a pilot still trains, give it the next run of a finished pilot's preset."""
        if i < len(jobs):
            pilots_done.append(i)
            if len(pilots_done) == 1:
                name, c, d = jobs[i]
                runs = _run_order(_model_specs(d, c), c.seeds)   # as run_comparison(d, c) makes them
                ahead.extend((name, c, d, run) for run in runs if run != (_PILOT_MODEL, 0))
        if len(pilots_done) == len(jobs) or not ahead:
            return []
        sent.append(ahead.pop(0))
        return [sent[-1]]

    try:
        results, _ = run_jobs(_pilot, jobs, {}, resolve_workers(cfg.workers, len(jobs)), more=more,
                              on_done=lambda i, r: bar.finished(r["epochs"]) if i < len(jobs) else None,
                              name=lambda j: f"choosing inputs, {j[0]}" + (f", {j[3][0]} seed {j[3][1]}"
                                                                            if len(j) > 3 else ""))
    finally:
        bar.close()
    pilots = results[:len(jobs)]
    better = max if pilots[0]["metric"] == "auc" else min
    best = better(pilots, key=lambda p: p["val"])["inputs"]   # a tie keeps the first (the compact preset)
    data = datas[best]
    job = next(p.pop("job") for p in pilots if p["inputs"] == best)
    for p in pilots:
        p.pop("job", None)
    data.extra["inputs"] = {"chosen": best, "pilots": pilots}
    data.extra["trained"] = {(_PILOT_MODEL, 0): job}   # run_comparison reuses the winner's run ...
    data.extra["trained"].update((j[3], r) for j, r in zip(sent, results[len(jobs):]) if j[0] == best)
    return data, cands[best]
