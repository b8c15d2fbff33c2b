"""The output transform: negative-sampling correction and post-hoc calibration of binary tasks, one layer.

A model trained on a log whose negatives of a task were kept at rate ``w`` predicts ``q``, the click
probability of the *sampled* log. The probability on the full log is ``p = q / (q + (1 - q) / w)``, i.e. in
logit space ``logit(p) = logit(q) + log(w)``: the correction adds ``log(w)`` to the task's logit, exactly.
Calibration then maps the corrected output to a probability, fitted on a validation set:

- ``"platt"``: ``sigmoid(a * z + b)`` on the corrected logit ``z`` (a logistic regression of scikit-learn, no
  regularisation worth the name, on one feature);
- ``"temperature"``: ``sigmoid(z / T)``, ``T`` minimising the validation log loss;
- ``"isotonic"``: scikit-learn's ``IsotonicRegression`` of the corrected probability ``sigmoid(z)``; its
  thresholds are kept and interpolated linearly, clipped at both ends, as scikit-learn predicts.

The order is fixed: raw logit -> correction -> calibration -> probability. :func:`transform_probabilities` is
what :meth:`~ctrkit.models.outputs.TaskOutputs.logits_to_predictions` calls, so ``predict``,
``predict_records``, ``evaluate``'s metrics and the ONNX / ``torch.export`` graphs (which trace
``logits_to_predictions``) all return the transformed probabilities; the isotonic map is written with
comparisons and sums (``relu``, ``minimum``), which export to ONNX. Training and the loss use the raw logits.

The transform is plain data (rates, calibrator parameters) kept on the model as ``model.output_transform``,
saved in ``config.json`` under ``"outputs"`` (numbers only; loading runs no code), not in the weights.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["OutputTransform", "transform_probabilities", "set_negative_sampling", "calibrate", "METHODS"]

METHODS = ("isotonic", "platt", "temperature")


class OutputTransform:
    """Per-task negative-sampling rates and calibrators (JSON-ready data; see the module docstring).

    Attributes:
        rates: ``{task: w}``, the share of that task's negatives kept in training (0 < w <= 1).
        calibrators: ``{task: {"method": "platt", "a": ..., "b": ...}}``, ``{"method": "temperature", "t": ...}``
            or ``{"method": "isotonic", "x": [...], "y": [...]}`` (thresholds on the corrected probability).
    """

    def __init__(self, rates: Mapping[str, float] | None = None,
                 calibrators: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.rates: dict[str, float] = {str(k): float(v) for k, v in (rates or {}).items()}
        self.calibrators: dict[str, dict[str, Any]] = {str(k): dict(v) for k, v in (calibrators or {}).items()}
        self._cache: dict[Any, Any] = {}

    def __bool__(self) -> bool:
        return bool(self.calibrators) or any(w != 1.0 for w in self.rates.values())

    def __repr__(self) -> str:
        cal = {t: c["method"] for t, c in self.calibrators.items()}
        return f"OutputTransform(rates={self.rates}, calibrators={cal})"

    def __getstate__(self) -> dict[str, Any]:
        return {"rates": self.rates, "calibrators": self.calibrators, "_cache": {}}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"negative_sampling": {task: w}, "calibration": {task: {...}}}``."""
        return {"negative_sampling": dict(self.rates), "calibration": {t: dict(c) for t, c in self.calibrators.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], task_names: Sequence[str], task_types: Sequence[str]) -> OutputTransform:
        """Rebuild (and check) what :meth:`to_dict` wrote; a ValueError says what is wrong."""
        if not isinstance(d, Mapping):
            raise ValueError(f"'outputs' must be an object, got {type(d).__name__}")
        t = cls()
        for task, w in dict(d.get("negative_sampling") or {}).items():
            t.rates[task] = check_rate(task, w, task_names, task_types, "outputs.negative_sampling")
        for task, c in dict(d.get("calibration") or {}).items():
            check_task(task, task_names, task_types, "outputs.calibration")
            t.calibrators[task] = check_calibrator(task, c)
        return t

    def _params(self, task: str, dtype: torch.dtype, device: torch.device) -> Any:
        """The calibrator's numbers as tensors (cached per dtype and device)."""
        key = (task, dtype, device)
        if key not in self._cache:
            c = self.calibrators[task]
            if c["method"] == "isotonic":
                x, y = np.asarray(c["x"], np.float64), np.asarray(c["y"], np.float64)
                dx = np.diff(x)
                slope = np.divide(np.diff(y), dx, out=np.zeros_like(dx), where=dx > 0)
                self._cache[key] = tuple(torch.as_tensor(a, dtype=dtype, device=device)
                                         for a in (x[:-1], dx, slope, y[:1]))
            else:
                self._cache[key] = None
        return self._cache[key]

    def task_probability(self, task: str, z: torch.Tensor) -> torch.Tensor:
        """Raw logits ``(N,)`` of a binary task -> corrected, calibrated probabilities ``(N,)`` (computed in
        float64, as the calibrator was fitted: a near-vertical isotonic segment would turn float32 rounding of the
        input into visible errors; the result has ``z``'s dtype)."""
        dtype = z.dtype
        z = z.to(torch.float64)
        w = self.rates.get(task, 1.0)
        if w != 1.0:
            z = z + math.log(w)
        c = self.calibrators.get(task)
        if c is None:
            p = torch.sigmoid(z)
        elif c["method"] == "platt":
            p = torch.sigmoid(z * float(c["a"]) + float(c["b"]))
        elif c["method"] == "temperature":
            p = torch.sigmoid(z / float(c["t"]))
        else:
            x0, dx, slope, y0 = self._params(task, torch.float64, z.device)
            seg = torch.minimum(torch.relu(torch.sigmoid(z).unsqueeze(1) - x0), dx)   # run into each segment
            p = y0 + (seg * slope).sum(dim=1)
        return p.to(dtype)


def check_task(task: str, task_names: Sequence[str], task_types: Sequence[str], where: str) -> None:
    if task not in task_names:
        raise ValueError(f"{where}: unknown task {task!r}; the model's tasks are {list(task_names)}.")
    typ = task_types[list(task_names).index(task)]
    if typ != "binary":
        raise ValueError(f"{where}: task {task!r} is a {typ!r} task; negative-sampling correction and calibration "
                         "apply to binary tasks only.")


def check_rate(task: str, w: Any, task_names: Sequence[str], task_types: Sequence[str], where: str) -> float:
    check_task(task, task_names, task_types, where)
    if isinstance(w, bool) or not isinstance(w, (int, float, np.floating, np.integer)) or not 0.0 < float(w) <= 1.0:
        raise ValueError(f"{where}: the rate of task {task!r} must be a number in (0, 1] (the share of negatives "
                         f"kept), got {w!r}.")
    return float(w)


def check_calibrator(task: str, c: Any) -> dict[str, Any]:
    """A calibrator's parameters, checked (finite numbers; isotonic thresholds sorted, values in [0, 1])."""
    if not isinstance(c, Mapping) or c.get("method") not in METHODS:
        raise ValueError(f"calibration of {task!r}: expected {{'method': one of {list(METHODS)}, ...}}, got {c!r}")
    m = c["method"]
    need = {"platt": ("a", "b"), "temperature": ("t",), "isotonic": ("x", "y")}[m]
    missing = [k for k in need if k not in c]
    if missing:
        raise ValueError(f"calibration of {task!r} ({m}) lacks {missing}")
    if m == "isotonic":
        x, y = np.asarray(c["x"], np.float64), np.asarray(c["y"], np.float64)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 1 or not (np.isfinite(x).all() and np.isfinite(y).all()) \
                or (np.diff(x) < 0).any() or (np.diff(y) < 0).any():
            raise ValueError(f"calibration of {task!r} (isotonic): x and y must be equal-length, finite, "
                             "non-decreasing lists")
        return {"method": m, "x": [float(v) for v in x], "y": [float(v) for v in y]}
    vals = {k: float(c[k]) for k in need}
    if not all(math.isfinite(v) for v in vals.values()) or (m == "temperature" and vals["t"] <= 0):
        raise ValueError(f"calibration of {task!r} ({m}): parameters must be finite (and t > 0), got {vals}")
    return {"method": m, **vals}


def transform_probabilities(model: Any, logits: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``probs`` (the plain ``logits_to_predictions``) with the columns of the transformed tasks replaced."""
    t: OutputTransform | None = getattr(model, "output_transform", None)
    if not t:
        return probs
    cols = list(probs.unbind(dim=1))
    c = 0
    for task, width in zip(model.task_names, model.task_widths):
        if task in t.calibrators or t.rates.get(task, 1.0) != 1.0:
            cols[c] = t.task_probability(task, logits[:, c]).to(probs.dtype)
        c += width
    return torch.stack(cols, dim=1)


def _transform(model: Any) -> OutputTransform:
    t = getattr(model, "output_transform", None)
    if t is None:
        t = OutputTransform()
        model.output_transform = t
    return t


def set_negative_sampling(model: Any, rates: Mapping[str, float] | None) -> Any:
    """Record the share of negatives kept per task (``{"ctr": 0.1}``; None or ``{}`` clears them); see
    :meth:`ctrkit.models.BaseModel.set_negative_sampling`."""
    name = f"{type(model).__name__}.set_negative_sampling"
    if rates is not None and not isinstance(rates, Mapping):
        raise TypeError(f"{name}: expected {{task: rate}}, e.g. {{'ctr': 0.1}}, got {type(rates).__name__}.")
    checked = {str(k): check_rate(str(k), v, model.task_names, model.task_types, name)
               for k, v in (rates or {}).items()}
    t = _transform(model)
    if t.calibrators and checked != {k: v for k, v in t.rates.items() if v != 1.0}:
        raise ValueError(f"{name}: the model is calibrated for tasks {sorted(t.calibrators)} on top of the "
                         f"correction {t.rates}; changing the rates would invalidate that calibration. Call "
                         "model.calibrate(..., method=None) to drop it first, then calibrate again.")
    t.rates = checked
    t._cache.clear()
    return model


def _fit_calibrator(method: str, z: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> dict[str, Any]:
    """Fit ``method`` on corrected logits ``z`` and 0 / 1 labels ``y`` (float64)."""
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression
        q = 1.0 / (1.0 + np.exp(-z))
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(q, y, sample_weight=w)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    if method == "platt":
        from sklearn.linear_model import LogisticRegression
        lr = LogisticRegression(C=1e10, max_iter=1000).fit(z[:, None], y, sample_weight=w)
        return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    from scipy.optimize import minimize_scalar  # scikit-learn depends on scipy

    ww = np.ones_like(y) if w is None else w

    def nll(log_t: float) -> float:
        s = z / math.exp(log_t)
        return float(np.sum(ww * (np.logaddexp(0.0, s) - y * s)))   # BCE with logits, stable

    res = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-8})
    return {"method": "temperature", "t": float(math.exp(res.x))}


def calibrate(model: Any, logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, method: str | None,
              tasks: Sequence[str] | None) -> Any:
    """Fit a calibrator per task on raw validation ``logits (N, output_width)`` and labels ``(N, T)``; see
    :meth:`ctrkit.models.BaseModel.calibrate`."""
    name = f"{type(model).__name__}.calibrate"
    if method is not None and method not in METHODS:
        raise ValueError(f"{name}: method must be one of {list(METHODS)} (or None to remove the calibration), got "
                         f"{method!r}.")
    binary = [t for t, typ in zip(model.task_names, model.task_types) if typ == "binary"]
    if tasks is None:
        tasks = binary
    elif isinstance(tasks, str):
        tasks = [tasks]
    for t in tasks:
        check_task(t, model.task_names, model.task_types, name)
    if not tasks:
        raise ValueError(f"{name}: the model has no binary task to calibrate (tasks {model.task_names}).")
    tr = _transform(model)
    offsets = np.cumsum([0, *model.task_widths])
    for t in tasks:
        if method is None:
            tr.calibrators.pop(t, None)
            continue
        i = model.task_names.index(t)
        yt = y[:, i].double().numpy()
        keep = ~np.isnan(yt)
        if not np.isin(yt[keep], (0.0, 1.0)).all():
            raise ValueError(f"{name}: the labels of task {t!r} must be 0 / 1 to calibrate, got values such as "
                             f"{sorted(set(np.unique(yt[keep]).tolist()))[:5]}.")
        if len(np.unique(yt[keep])) < 2:
            raise ValueError(f"{name}: the validation labels of task {t!r} hold one class only ({int(keep.sum())} "
                             "labelled rows); calibrate on a validation set with clicks and non-clicks.")
        z = logits[:, offsets[i]].double().numpy()[keep] + math.log(tr.rates.get(t, 1.0))
        wt = None if w is None else w.double().numpy()[keep]
        tr.calibrators[t] = check_calibrator(t, _fit_calibrator(method, z, yt[keep], wt))
    tr._cache.clear()
    return model
