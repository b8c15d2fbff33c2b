"""The (model, seed) runs of a comparison in worker processes give the results of the in-process path, in the
same order, on a real census slice; a worker's error names its job."""
import operator

import numpy as np
import pandas as pd
import pytest
import torch

from ctrkit.compare import CompareConfig, prepare_frame_data, run_comparison, run_synthetic_sweep
from ctrkit.compare.runner import resolve_workers, run_jobs
from ctrkit.datasets import census_feature_types, load_census_income


def _census_slice(rows: int = 3000):
    X, y = load_census_income(group=1)
    df = pd.concat([X, y], axis=1).iloc[:rows]
    sparse, dense = census_feature_types()
    return prepare_frame_data(df, ["income", "marital"], sparse=sparse, dense=dense, name=f"census[:{rows}]")


def _metrics(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[[c for c in runs.columns if c.startswith(("income_", "marital_", "task1_", "task2_"))]]


@pytest.fixture(scope="module")
def census_pair():
    torch.set_num_threads(1)   # the workers' setting, so the in-process path sums in the same order
    data = _census_slice()
    cfg = dict(seeds=2, max_epochs=3, patience=1, batch_size=256, models=("Single-Task", "MMoE", "PLE"),
               baselines=("lr",))
    seq = run_comparison(data, CompareConfig(**cfg, workers=1), progress=False)
    par = run_comparison(data, CompareConfig(**cfg, workers=2), progress=False)
    return seq, par


def test_workers_give_the_sequential_results_in_the_same_order(census_pair):
    seq, par = census_pair
    keys = ["model", "seed", "epochs", "params"]
    pd.testing.assert_frame_equal(seq.runs[keys], par.runs[keys])
    assert list(seq.runs["model"]) == ["Single-Task", "MMoE", "PLE", "LR (one-hot)", "Single-Task", "MMoE", "PLE"]
    np.testing.assert_allclose(_metrics(par.runs).to_numpy(float), _metrics(seq.runs).to_numpy(float),
                               rtol=0, atol=1e-6)
    assert list(par.summary["model"]) == list(seq.summary["model"])
    assert (par.runs["seconds"] > 0).all() and (par.runs["cpu_seconds"] > 0).all()


def test_workers_give_the_same_curves_and_gates(census_pair):
    seq, par = census_pair
    assert list(par.curves) == list(seq.curves) == ["Single-Task", "MMoE", "PLE"]
    for name, per_seed in seq.curves.items():
        assert len(par.curves[name]) == len(per_seed) == 2
        for a, b in zip(per_seed, par.curves[name]):
            assert list(a) == list(b)   # Single-Task: both tasks' curves, named by task
            for k in a:
                np.testing.assert_allclose(b[k], a[k], atol=1e-6)
    assert sorted(par.gates) == sorted(seq.gates) == ["MMoE", "PLE"]
    for name in seq.gates:
        np.testing.assert_allclose(par.gates[name].to_numpy(), seq.gates[name].to_numpy(), atol=1e-6)


def test_synthetic_sweep_draws_the_same_data_per_seed_in_workers():
    torch.set_num_threads(1)
    cfg = dict(batch_size=128, lr=1e-3, max_epochs=2, patience=1, seeds=2, models=("Shared-Bottom", "MMoE"),
               baselines=())
    seq = run_synthetic_sweep((0.5,), CompareConfig(**cfg, workers=1), n_train=400, progress=False)
    par = run_synthetic_sweep((0.5,), CompareConfig(**cfg, workers=2), n_train=400, progress=False)
    assert list(par.runs["model"]) == list(seq.runs["model"]) == ["Shared-Bottom", "MMoE"] * 2
    np.testing.assert_allclose(par.runs["mse"], seq.runs["mse"], atol=1e-6)
    assert par.runs["mse"].nunique() == 4   # different data and initialisation per seed


def test_an_error_in_a_worker_names_its_job_and_keeps_its_type():
    with pytest.raises(ZeroDivisionError, match=r"^MMoE seed 1: division by zero"):
        run_jobs(operator.truediv, [(2,), (0,)], 1, workers=2, name=lambda j: "MMoE seed 1" if j == (0,) else "ok")


def test_resolve_workers():
    assert resolve_workers(1, 30) == 1
    assert resolve_workers(8, 3) == 3
    assert 1 <= resolve_workers(None, 30) <= 30
    assert resolve_workers(None, 1) == 1
    with pytest.raises(ValueError, match="workers must be >= 1"):
        resolve_workers(0, 5)


def test_more_jobs_join_as_jobs_finish():
    """``more`` adds jobs as others finish (a worker fell idle); their results follow, in the order given."""
    seen = []

    def more(i, r):
        seen.append(i)
        return [(5,)] if r == 100 else [(6,)] if r == 10 ** 5 else []
    out, _ = run_jobs(operator.pow, [(2,), (3,)], 10, workers=2, more=more)
    assert out == [100, 1000, 10 ** 5, 10 ** 6] and sorted(seen) == [0, 1, 2, 3]
