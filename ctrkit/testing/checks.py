"""The conformance checks. Each is ``check_xxx(factory, data)``: it builds fresh models with
``factory(feature_columns, task_names, task_types)``, runs them on the bundled samples (``data``, a
:class:`~ctrkit.testing.data.CheckData`) and raises ``AssertionError`` when the model breaks the contract, or
:class:`CheckSkipped` when the check does not apply (an optional extra is missing, the model has no output
bias).

Which checks apply, and how, follows the model's declared ``conformance_tags`` (see
:data:`~ctrkit.testing.data.DEFAULT_TAGS`), never its name.
"""
from __future__ import annotations

import copy
import importlib.util
import math
import os
import tempfile
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import TASKS, TYPES, CheckData

__all__ = ["CHECKS", "EXPORT_CHECKS", "CheckSkipped", "check_batch_of_one", "check_deepcopy",
           "check_forward_contract", "check_learns", "check_only_sparse_or_only_dense", "check_onnx_parity",
           "check_output_bias_starts_at_label_prior", "check_predict_equals_forward",
           "check_save_load_round_trip",
           "check_seed_determinism", "check_torch_export_parity", "check_varlen_and_regression"]

PARITY_ATOL = 1e-5


class CheckSkipped(Exception):
    """A check that does not apply to this model or environment (reported as skipped, not failed)."""


# ---------------------------------------------------------------------------------------------------- helpers
def _build(factory: Any, cols: Any, tasks=TASKS, types=TYPES) -> Any:
    from ..models.base import BaseModel
    model = factory(cols, list(tasks), list(types))   # cols as given: they may carry the encoder
    assert isinstance(model, BaseModel), f"the factory returned a {type(model).__name__}, not a BaseModel"
    assert model.task_names and set(model.task_names) <= set(tasks), \
        f"model.task_names={model.task_names} are not among the task names given to the factory {list(tasks)}"
    return model


def _model(factory: Any, data: CheckData, lr: float = 0.01, **compile_kw) -> tuple[Any, Any, Any]:
    """``(compiled model, input, labels)`` on the byterec sample."""
    cols, x = data.inputs(data.encoder, data.byterec, data.tags(factory))
    model = _build(factory, cols)
    model.compile(compile_kw.pop("optimizer", "adam"), lr=lr, **compile_kw)
    return model, x, _labels(factory, data, model)


def _labels(factory: Any, data: CheckData, model: Any) -> Any:
    """The labels of the model's tasks; for ``nested_tasks`` the second is 1 only where the first is (ESMM's
    click-and-conversion is within click), as such a model requires."""
    y = data.labels[list(model.task_names)]
    if data.tags(factory)["nested_tasks"]:
        first, second = model.task_names[:2]
        y = y.assign(**{second: y[first] * y[second]})
    return y


def _rows(x: Any, idx: Any) -> Any:
    return x.iloc[idx]


def _tensors(model: Any, x: Any) -> Any:
    from ..data import to_tensor_data
    return to_tensor_data(x, model.feature_columns, model.encoder).to(model.device)


def _plain_predictions(model: Any, x: Any) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return model.logits_to_predictions(model.stack_outputs(model(_tensors(model, x)))).cpu().numpy()


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _check_outputs(model: Any, out: Any, n: int) -> None:
    assert isinstance(out, dict), f"forward must return a dict {{task: logits}}, got {type(out).__name__}"
    assert list(out) == list(model.task_names), f"forward's keys {list(out)} != task_names {model.task_names}"
    for t, w in zip(model.task_names, model.task_widths):
        v = out[t]
        want = (n,) if w == 1 else (n, w)
        assert isinstance(v, torch.Tensor) and tuple(v.shape) == want, \
            f"task {t!r}: logits of shape {tuple(getattr(v, 'shape', ()))}, expected {want}"
        assert v.is_floating_point(), f"task {t!r}: logits of dtype {v.dtype}"
        assert bool(torch.isfinite(v).all()), f"task {t!r}: non-finite logits"


def _check_predictions(model: Any, pred: Any, n: int) -> None:
    assert isinstance(pred, np.ndarray) and pred.shape == (n, model.output_width), \
        f"predict gave shape {getattr(pred, 'shape', None)}, expected {(n, model.output_width)}"
    assert np.isfinite(pred).all(), "predict gave non-finite values"
    col = 0
    for typ, w in zip(model.task_types, model.task_widths):
        if typ != "regression":
            p = pred[:, col:col + w]
            assert np.all((p >= 0) & (p <= 1)), f"{typ} predictions outside [0, 1]"
        col += w


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# ----------------------------------------------------------------------------------------------------- checks
def check_forward_contract(factory: Any, data: CheckData) -> None:
    """``forward(batch)`` returns ``{task: logits}`` keyed by ``task_names`` in order, each ``(B,)``
    (``(B, C)`` for a multiclass task), floating point and finite, in train and in eval mode; ``predict``
    gives ``(B, T)`` probabilities in [0, 1] for binary tasks."""
    model, x, _ = _model(factory, data)
    batch = _tensors(model, _rows(x, slice(0, 16)))
    model.train()
    _check_outputs(model, model(batch), 16)
    model.eval()
    with torch.no_grad():
        _check_outputs(model, model(batch), 16)
    _check_predictions(model, model.predict(_rows(x, slice(0, 16))), 16)


def check_batch_of_one(factory: Any, data: CheckData) -> None:
    """One row: forward in eval mode (and in train mode unless the model has BatchNorm, which cannot normalise
    one row), ``predict`` of one row, ``fit`` whose final batch holds one row (9 rows in batches of 4),
    ``fit`` in batches of one (models without BatchNorm) and with a batch larger than the data."""
    model, x, y = _model(factory, data)
    one = _tensors(model, _rows(x, slice(3, 4)))
    model.eval()
    with torch.no_grad():
        _check_outputs(model, model(one), 1)
    bn = _has_batchnorm(model)
    if not bn:
        model.train()
        _check_outputs(model, model(one), 1)
    _check_predictions(model, model.predict(_rows(x, [3])), 1)
    model.fit(_rows(x, slice(0, 9)), y.iloc[:9], batch_size=4, epochs=1, verbose=0)  # last batch: 1 row
    if not bn:
        model.fit(_rows(x, slice(0, 5)), y.iloc[:5], batch_size=1, epochs=1, verbose=0)
    model.fit(_rows(x, slice(0, 5)), y.iloc[:5], batch_size=1000, epochs=1, verbose=0)    # batch > data
    _check_predictions(model, model.predict(_rows(x, slice(0, 5))), 5)


def check_only_sparse_or_only_dense(factory: Any, data: CheckData) -> None:
    """Only sparse features (``uid``, ``item_id``, ``channel``) and only dense ones (``duration_time``,
    ``time``): the model trains (finite losses) and predicts; a ``needs_sparse`` model refuses dense-only
    columns with a ``ValueError`` naming ``SparseFeat``."""
    from ..preprocessing import FeatureEncoder
    tags = data.tags(factory)
    df = data.byterec
    for kind, sparse, dense in (("sparse-only", ["uid", "item_id", "channel"], []),
                                ("dense-only", [], ["duration_time", "time"])):
        enc = FeatureEncoder(sparse=sparse, dense=dense).fit(df)
        cols, x = data.inputs(enc, df, tags)
        if kind == "dense-only" and tags["needs_sparse"]:
            try:
                _build(factory, cols)
            except ValueError as e:
                assert "SparseFeat" in str(e), f"dense-only columns: a ValueError not naming SparseFeat: {e}"
                continue
            raise AssertionError("a 'needs_sparse' model accepted dense-only feature columns")
        model = _build(factory, cols)
        model.compile("adam", lr=0.01)
        h = model.fit(x, _labels(factory, data, model), batch_size=50, epochs=3, verbose=0)
        assert np.isfinite(h.history["loss"]).all(), f"{kind}: non-finite training loss {h.history['loss']}"
        _check_predictions(model, model.predict(x), len(df))


def check_learns(factory: Any, data: CheckData) -> None:
    """After 12 short epochs on the 200 byterec rows the training loss went down and every task's training
    logloss is below that of the constant (base-rate) predictor."""
    model, x, y = _model(factory, data)
    h = model.fit(x, y, batch_size=32, epochs=12, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0], f"the loss did not go down: {h.history['loss']}"
    pred = model.predict(x)
    _check_predictions(model, pred, len(y))
    for i, t in enumerate(model.task_names):
        yt = y[t].to_numpy()
        ll, base = _logloss(yt, pred[:, i]), _logloss(yt, np.full(len(yt), yt.mean()))
        assert ll < base, f"task {t!r}: training logloss {ll:.4f} not below the constant's {base:.4f}"


def check_varlen_and_regression(factory: Any, data: CheckData) -> None:
    """Movielens with a var-length ``genres`` field: a regression task (``rating``) and a binary one
    (``liked``); the rating predictions beat the mean. A ``binary_only`` model refuses the regression task
    with a ``ValueError`` and learns two binary tasks (``liked``, ``loved``) instead."""
    cols, x, y = data.movielens_inputs(data.tags(factory))
    if data.tags(factory)["binary_only"]:
        try:
            _build(factory, cols, ("rating", "liked"), ("regression", "binary"))
        except ValueError:
            pass
        else:
            raise AssertionError("a 'binary_only' model accepted a regression task")
        model = _build(factory, cols, ("liked", "loved"), ("binary", "binary"))
        model.compile("adam", lr=0.01)
        h = model.fit(x, y[model.task_names], batch_size=32, epochs=15, verbose=0)
        assert h.history["loss"][-1] < h.history["loss"][0], f"the loss did not go down: {h.history['loss']}"
        _check_predictions(model, model.predict(x), len(y))
        return
    model = _build(factory, cols, ("rating", "liked"), ("regression", "binary"))
    model.compile("adam", lr=0.01)
    h = model.fit(x, y[model.task_names], batch_size=32, epochs=15, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0], f"the loss did not go down: {h.history['loss']}"
    pred = model.predict(x)
    assert np.isfinite(pred).all(), "non-finite predictions"
    if model.task_names[0] == "rating":
        mse = float(((pred[:, 0] - y["rating"]) ** 2).mean())
        base = float(((y["rating"] - y["rating"].mean()) ** 2).mean())
        assert mse < base, f"rating: training MSE {mse:.4f} is not below the mean predictor's {base:.4f}"


def check_seed_determinism(factory: Any, data: CheckData) -> None:
    """Two models built and trained the same way give identical weights and predictions, whatever the global
    RNG's state before (the model's ``seed`` seeds the initialisation and ``fit``)."""
    states, preds = [], []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        model, x, y = _model(factory, data)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0)
        states.append(model.state_dict())
        preds.append(model.predict(x))
    exact = all(v.device.type == "cpu" for v in states[0].values())
    for k in states[0]:
        if exact:
            assert torch.equal(states[0][k], states[1][k]), f"weights {k!r} differ between two identical runs"
        else:  # CUDA's embedding backward adds gradients with atomics: the summation order varies
            torch.testing.assert_close(states[0][k], states[1][k], rtol=1e-4, atol=1e-5, msg=k)
    np.testing.assert_allclose(preds[0], preds[1], rtol=0, atol=0 if exact else 1e-5,
                               err_msg="predictions differ between two identical runs")


def check_save_load_round_trip(factory: Any, data: CheckData) -> None:
    """``model.save(dir)`` then ``ctrkit.load_model(dir)`` gives the same class, tasks, identical predictions
    (the encoder travels with the model) and the same evaluation metrics."""
    from ..io import load_model
    model, x, y = _model(factory, data, metrics=["auc"])
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(os.path.join(tmp, "m"))
        back = load_model(os.path.join(tmp, "m"), device=str(model.device))
    assert type(back) is type(model), f"load_model gave a {type(back).__name__}"
    assert back.task_names == model.task_names and back.task_types == model.task_types
    np.testing.assert_array_equal(back.predict(x), model.predict(x), err_msg="predictions after save / load")
    assert set(back.evaluate(x, y)) == set(model.evaluate(x, y)), "evaluate's metrics after save / load"


def check_deepcopy(factory: Any, data: CheckData) -> None:
    """``copy.deepcopy`` of a trained model predicts the same; training the copy leaves the original alone."""
    model, x, y = _model(factory, data)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    before = model.predict(x)
    twin = copy.deepcopy(model)
    np.testing.assert_allclose(twin.predict(x), before, rtol=0, atol=1e-6, err_msg="the copy predicts apart")
    twin.fit(x, y, batch_size=64, epochs=1, verbose=0)
    np.testing.assert_allclose(model.predict(x), before, rtol=0, atol=1e-6,
                               err_msg="training the copy changed the original")
    assert np.abs(twin.predict(x) - before).max() > 1e-4, "training the copy did not change it"


def check_predict_equals_forward(factory: Any, data: CheckData) -> None:
    """``predict`` gives the probabilities of the plain forward pass in eval mode (within 1e-5), after a first
    ``fit`` and again after training further (no stale cached state)."""
    model, x, y = _model(factory, data)
    for _ in range(2):
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        ref = _plain_predictions(model, x)
        np.testing.assert_allclose(model.predict(x), ref, rtol=0, atol=1e-5,
                                   err_msg="predict differs from the plain forward pass")


def check_output_bias_starts_at_label_prior(factory: Any, data: CheckData) -> None:
    """The first ``fit`` of a new model sets each task's output bias (``model.output_biases()``) to its label
    prior (binary: the log-odds of the positive rate; ``nested_tasks``: the second at the conditional rate);
    a second ``fit`` keeps trained biases; ``compile(init_output_bias=False)`` keeps the constructor's.
    Skipped for a model without output biases to offer."""
    from ..training.tasks import label_prior
    model, x, y = _model(factory, data, lr=1e-12, optimizer="sgd")   # training does not move the biases
    if not model.output_biases():
        raise CheckSkipped("the model offers no output biases (output_biases() is empty)")
    Y = torch.tensor(y.to_numpy())
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    slots = {t: b.detach().cpu() for t, b in model.output_biases().items()}
    if data.tags(factory)["nested_tasks"]:
        b = list(slots.values())
        p = Y.mean(0).double()
        assert len(b) == 2, f"nested_tasks: expected two output biases, got {list(slots)}"
        assert math.isclose(float(b[0]), float(torch.logit(p[0])), abs_tol=1e-4), "first output bias"
        cvr = (p[1] / p[0]).clamp(1e-4, 1 - 1e-4)
        assert math.isclose(float(b[1]), float(torch.logit(cvr)), abs_tol=1e-3), "conditional output bias"
    else:
        assert set(slots) <= set(model.task_names), f"output_biases() keys {list(slots)} are not task names"
        for i, t in enumerate(model.task_names):
            if t in slots:
                want = label_prior(Y[:, i], model.task_types[i], model.num_classes.get(t, 1))
                assert want is not None, f"task {t!r} has no label to take a prior from"
                got = slots[t].detach().reshape(-1)
                diff = float((got - want.reshape(-1).to(got)).abs().max())
                assert diff <= 1e-4, f"task {t!r}: output bias {got.tolist()} != label prior {want.tolist()}"
    with torch.no_grad():
        for s in model.output_biases().values():
            s.fill_(0.5)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)                       # not a new model: left alone
    assert all(torch.allclose(s.detach().cpu(), torch.full_like(s.detach().cpu(), 0.5), atol=1e-4)
               for s in model.output_biases().values()), "a second fit reset the trained output biases"
    off, x, y = _model(factory, data, lr=1e-12, optimizer="sgd", init_output_bias=False)
    before = {t: b.detach().clone() for t, b in off.output_biases().items()}
    off.fit(x, y, batch_size=64, epochs=1, verbose=0)
    for t, b in off.output_biases().items():
        torch.testing.assert_close(b.detach(), before[t], atol=1e-4, rtol=0,
                                   msg=lambda m: f"init_output_bias=False moved the output biases: {m}")


def _export_parity(factory: Any, data: CheckData, fmt: str) -> None:
    from ..export import export_onnx, export_torch, parity, serving_inputs
    model, x, y = _model(factory, data)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)          # move off the initial weights
    inputs = serving_inputs(model, x)
    n = len(next(iter(inputs.values())))
    one = {k: v[n // 2:n // 2 + 1] for k, v in inputs.items()}    # dynamic batch: one row
    with tempfile.TemporaryDirectory() as tmp:
        if fmt == "onnx":
            path = export_onnx(model, os.path.join(tmp, "m.onnx"), verify=False)
        else:
            path = export_torch(model, os.path.join(tmp, "m.pt2"), verify=False)
        d_all, d_one = parity(model, path, inputs), parity(model, path, one)
    assert d_all <= PARITY_ATOL and d_one <= PARITY_ATOL, \
        f"{fmt}: max abs difference to eager {d_all:.3g} on {n} rows, {d_one:.3g} on 1 row (> {PARITY_ATOL})"


def check_onnx_parity(factory: Any, data: CheckData) -> None:
    """The ONNX file (run in onnxruntime) gives the eager probabilities within 1e-5, on the sample and on one
    row. Skipped without the ``export`` extra (``onnx``, ``onnxscript``, ``onnxruntime``)."""
    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise CheckSkipped(f"ONNX export needs pip install 'ctrkit[export]'; missing: {missing}")
    _export_parity(factory, data, "onnx")


def check_torch_export_parity(factory: Any, data: CheckData) -> None:
    """The ``torch.export`` file gives the eager probabilities within 1e-5, on the sample and on one row."""
    if not hasattr(torch, "export"):
        raise CheckSkipped("this PyTorch has no torch.export")
    _export_parity(factory, data, "torch-export")


#: every check, in the order they run (cheap and fundamental first)
CHECKS = (check_forward_contract, check_batch_of_one, check_only_sparse_or_only_dense, check_learns,
          check_varlen_and_regression, check_seed_determinism, check_save_load_round_trip, check_deepcopy,
          check_predict_equals_forward, check_output_bias_starts_at_label_prior, check_onnx_parity,
          check_torch_export_parity)
EXPORT_CHECKS = (check_onnx_parity, check_torch_export_parity)
