"""Export a trained model for serving: ONNX (onnxruntime, any language) and ``torch.export`` (PyTorch-native).

Both formats hold the same graph: :class:`ServingModule`, which takes a fixed, ordered set of tensors and returns
one output per task, **after** the sigmoid / softmax (probabilities for binary tasks, values for regression tasks,
class probabilities ``(B, C)`` for multiclass tasks). The batch dimension is dynamic.

The input contract (also written to a sidecar JSON next to the exported file, ``<path>.json``):

| input name | dtype | shape | content |
|---|---|---|---|
| ``sparse_ids`` | int64 | ``(B, F_sparse)`` | one column per ``SparseFeat``, in feature-column order |
| ``dense_values`` | float32 | ``(B, D_dense)`` | the ``DenseFeat`` values side by side, in order |
| ``<varlen feature>`` | int64 | ``(B, maxlen)`` | one input per ``VarLenSparseFeat``, 0-padded ids |
| ``<length_name>`` | int64 | ``(B,)`` | only for var-length features declared with one |

An input is absent when the model has no feature of its kind. Ids and dense values are what the model's
:class:`~ctrkit.FeatureEncoder` produces (id 0 padding, 1 out-of-vocabulary; dense values already filled and
scaled): the sidecar carries the encoder's vocabularies and statistics (``"encoder"``), so a runtime without
Python can encode raw records, and :func:`serving_inputs` does it in Python. Outputs are named by task.

Example:
    >>> import pandas as pd
    >>> from ctrkit import DNN, FeatureEncoder
    >>> df = pd.DataFrame({"city": ["a", "b", "a", "c"], "age": [20.0, 31.0, 45.0, 27.0]})
    >>> enc = FeatureEncoder(sparse=["city"], dense=["age"], embedding_dim=4).fit(df)
    >>> m = DNN(enc.feature_columns, dnn_hidden_units=(8,), task_name="click")
    >>> [(i["name"], i["dtype"], i["shape"]) for i in input_contract(m)["inputs"]]
    [('sparse_ids', 'int64', ['batch', 1]), ('dense_values', 'float32', ['batch', 1])]
    >>> {k: v.shape for k, v in serving_inputs(m, df).items()}
    {'sparse_ids': (4, 1), 'dense_values': (4, 1)}

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional (``pip install ctrkit[export]``); ``torch.export``
needs nothing beyond PyTorch.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ._version import __version__
from .data.inputs import TensorData, to_tensor_data
from .exceptions import CtrkitError
from .features import DenseFeat, split_feature_columns

if TYPE_CHECKING:
    from .models.base import BaseModel

__all__ = ["ServingModule", "ExportError", "input_contract", "serving_inputs", "example_inputs", "export_onnx",
           "export_torch", "load_exported", "run_onnx", "parity", "SPARSE_INPUT", "DENSE_INPUT"]

SPARSE_INPUT, DENSE_INPUT = "sparse_ids", "dense_values"
_EXTRA_HINT = "pip install 'ctrkit[export]'  (onnx, onnxscript, onnxruntime)"


class ExportError(CtrkitError, RuntimeError):
    """An export failed, or the exported file does not reproduce the eager model's predictions."""


def _task_outputs(model: Any, logits: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """``{task: logits}`` → per-task predictions ``(B,)`` (``(B, C)`` for multiclass), in task order."""
    if hasattr(model, "stack_outputs"):
        z = model.stack_outputs(logits)
    else:  # pragma: no cover - models predating multiclass support
        z = torch.stack([logits[t] for t in model.task_names], dim=1)
    p = model.logits_to_predictions(z)
    if hasattr(model, "split_outputs"):
        parts = model.split_outputs(p)
        return tuple(parts[t] for t in model.task_names)
    return tuple(p[:, i] for i in range(p.shape[1]))  # pragma: no cover


class ServingModule(nn.Module):
    """A model wrapped for serving: ordered tensors in (see the module doc), per-task predictions out.

    Args:
        model: any :class:`~ctrkit.models.BaseModel`.

    Shape:
        - inputs: as :attr:`input_names` (``sparse_ids (B, Fs)``, ``dense_values (B, Dd)``, var-length
          ``(B, maxlen)``, lengths ``(B,)``).
        - outputs: a tuple with one tensor per task, in :attr:`output_names` order.

    Example:
        >>> from ctrkit import DNN, SparseFeat
        >>> s = ServingModule(DNN([SparseFeat("a", 10, 4)], dnn_hidden_units=(4,), task_name="ctr"))
        >>> s.input_names, s.output_names
        (['sparse_ids'], ['ctr'])
    """

    def __init__(self, model: BaseModel) -> None:
        super().__init__()
        self.model = model
        split = split_feature_columns(model.feature_columns)
        self.has_sparse = bool(split.sparse)
        self.has_dense = bool(split.dense)   # as ctrkit.data.to_tensor_data: a matrix whenever there is a DenseFeat
        self.varlen_names = [f.name for f in split.varlen]
        self.length_features = [(f.name, f.length_name) for f in split.varlen if f.length_name]
        self.input_names = ([SPARSE_INPUT] if self.has_sparse else []) + ([DENSE_INPUT] if self.has_dense else []) \
            + self.varlen_names + [ln for _, ln in self.length_features]
        self.output_names = list(model.task_names)
        name = type(model).__name__
        clash = sorted({n for n in self.input_names if self.input_names.count(n) > 1}
                       | (set(self.input_names) & set(self.output_names)))
        if clash:
            raise ExportError(f"export: {name} has an input or task named {clash}, which clashes with another "
                              f"input or output name (inputs {self.input_names}, outputs {self.output_names}). "
                              f"Rename the feature or task; {SPARSE_INPUT!r} and {DENSE_INPUT!r} are reserved.")

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        it = iter(inputs)
        sparse = next(it) if self.has_sparse else None
        dense = next(it) if self.has_dense else None
        varlen = {n: next(it) for n in self.varlen_names}
        lengths = {n: next(it) for n, _ in self.length_features}
        return _task_outputs(self.model, self.model(TensorData(sparse, dense, varlen, lengths)))


# ---------------------------------------------------------------------------------------------- the contract
def input_contract(model: Any) -> dict[str, Any]:
    """The inputs and outputs of the exported graph, as JSON-ready data (what the sidecar file holds).

    Args:
        model: a :class:`~ctrkit.models.BaseModel`.

    Returns:
        ``{"inputs": [...], "outputs": [...], "ids": {...}, "batch_dimension": ...}``; each input names its
        dtype, shape and the feature columns it carries (with vocabulary sizes).
    """
    s = ServingModule(model)
    split = split_feature_columns(model.feature_columns)
    inputs: list[dict[str, Any]] = []
    if s.has_sparse:
        inputs.append({"name": SPARSE_INPUT, "dtype": "int64", "shape": ["batch", len(split.sparse)],
                       "columns": [f.name for f in split.sparse],
                       "vocabulary_sizes": [f.vocabulary_size for f in split.sparse],
                       "content": "one id per SparseFeat, in this column order; ids in [0, vocabulary_size)"})
    if s.has_dense:
        dense = [f for f in split.dense if isinstance(f, DenseFeat)]
        inputs.append({"name": DENSE_INPUT, "dtype": "float32", "shape": ["batch", sum(f.dimension for f in dense)],
                       "columns": [f.name for f in dense], "dimensions": [f.dimension for f in dense],
                       "content": "DenseFeat values side by side, as the encoder outputs them (filled, scaled)"})
    for f in split.varlen:
        inputs.append({"name": f.name, "dtype": "int64", "shape": ["batch", f.maxlen], "feature": f.name,
                       "vocabulary_size": f.vocabulary_size, "combiner": f.combiner,
                       "content": "ids of a var-length feature, padded with 0"})
    for fname, ln in s.length_features:
        inputs.append({"name": ln, "dtype": "int64", "shape": ["batch"], "feature": fname,
                       "content": f"true length of each row of {fname!r}"})
    widths = dict(zip(model.task_names, getattr(model, "task_widths", [1] * len(model.task_names))))
    num_classes = getattr(model, "num_classes", {}) or {}
    outputs = []
    for t, typ in zip(model.task_names, model.task_types):
        meaning = {"binary": "probability (sigmoid of the logit)", "regression": "predicted value",
                   "multiclass": "class probabilities (softmax)"}.get(typ, typ)
        transform = getattr(model, "output_transform", None)
        if transform and typ == "binary" and (t in transform.calibrators or transform.rates.get(t, 1.0) != 1.0):
            steps = ([f"negative-sampling correction (rate {transform.rates[t]})"] if t in transform.rates else []) \
                + ([f"{transform.calibrators[t]['method']} calibration"] if t in transform.calibrators else [])
            meaning = f"probability after {' and '.join(steps)}, computed inside the graph"
        shape: list[Any] = ["batch", widths[t]] if t in num_classes else ["batch"]
        outputs.append({"name": t, "dtype": "float32", "shape": shape, "task_type": typ, "content": meaning})
    out = {"inputs": inputs, "outputs": outputs, "ids": {"padding": 0, "out_of_vocabulary": 1},
           "batch_dimension": "dynamic: axis 0 of every input and output"}
    config = getattr(model, "output_config", lambda: None)()
    if config:  # for the record: the graph already applies it
        out["output_transform"] = config
    return out


def _sidecar_path(path: str) -> str:
    return os.fspath(path) + ".json"


def _write_sidecar(model: Any, path: str, fmt: str, extra: Mapping[str, Any]) -> str:
    enc = getattr(model, "encoder", None)
    doc = {"format": fmt, "file": os.path.basename(os.fspath(path)), "model_class": type(model).__name__,
           "task_names": list(model.task_names), "task_types": list(model.task_types),
           **input_contract(model), **extra, "ctrkit_version": __version__, "torch_version": torch.__version__,
           "encoder": None if enc is None else enc.to_dict()}
    side = _sidecar_path(path)
    with open(side, "w") as fh:
        json.dump(doc, fh, indent=1)
    return side


# ---------------------------------------------------------------------------------------------- inputs
def _data_to_inputs(model: Any, data: TensorData) -> dict[str, np.ndarray]:
    s = ServingModule(model)
    tensors = _tensors(s, data)
    return {n: t.cpu().numpy() for n, t in zip(s.input_names, tensors)}


def _tensors(s: ServingModule, data: TensorData) -> tuple[torch.Tensor, ...]:
    out: list[torch.Tensor] = []
    if s.has_sparse:
        assert data.sparse is not None  # the model has sparse features, so the data has ids
        out.append(data.sparse)
    if s.has_dense:
        assert data.dense is not None
        out.append(data.dense)
    out += [data.varlen[n] for n in s.varlen_names]
    out += [data.lengths[n] for n, _ in s.length_features]
    return tuple(out)


def serving_inputs(model: Any, x: Any) -> dict[str, np.ndarray]:
    """The exported graph's inputs ``{name: array}`` for ``x``, ready for ``onnxruntime``'s ``session.run``.

    Args:
        model: the model that was exported.
        x: a raw DataFrame or a list of raw records (encoded with the model's bundled encoder), the encoder's
            output, a dict of id / value arrays, or a :class:`~ctrkit.data.TensorData`.
    """
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], Mapping):
        if getattr(model, "encoder", None) is None:
            raise ExportError("serving_inputs: raw records need a model built from a FeatureEncoder's "
                              "feature_columns (its encoder maps values to ids).")
        x = model.encoder.transform_records(x)
    data = to_tensor_data(x, model.feature_columns, getattr(model, "encoder", None), where="serving_inputs")
    return _data_to_inputs(model, data)


def example_inputs(model: Any, n: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Random valid inputs of ``n`` rows (ids within each vocabulary, standard-normal dense values, var-length
    rows with 1 to ``maxlen`` ids padded at the start or at the end): for tracing and self-checks."""
    g = np.random.default_rng(seed)
    split = split_feature_columns(model.feature_columns)
    s = ServingModule(model)
    out: dict[str, np.ndarray] = {}
    if s.has_sparse:
        out[SPARSE_INPUT] = np.stack([g.integers(0, f.vocabulary_size, n) for f in split.sparse], 1).astype(np.int64)
    if s.has_dense:
        width = sum(f.dimension for f in split.dense if isinstance(f, DenseFeat))
        out[DENSE_INPUT] = g.standard_normal((n, width)).astype(np.float32)
    for f in split.varlen:
        ids = g.integers(1, max(f.vocabulary_size, 2), (n, f.maxlen)).astype(np.int64) % f.vocabulary_size
        keep = g.integers(1, f.maxlen + 1, n)
        pos = np.arange(f.maxlen)
        pad_front = g.random(n) < 0.5
        mask = np.where(pad_front[:, None], pos[None] >= f.maxlen - keep[:, None], pos[None] < keep[:, None])
        out[f.name] = np.where(mask, ids, 0)
        if f.length_name:
            out[f.length_name] = keep.astype(np.int64)
    return out


# ---------------------------------------------------------------------------------------------- export
@contextlib.contextmanager
def _serving_mode(model: Any) -> Iterator[ServingModule]:
    """Eval mode, no grad, no embedding bookkeeping, quiet torch exporter logs; restored afterwards."""
    was_training = model.training
    emb = getattr(model, "embedding", None)
    keep_last = getattr(emb, "keep_last", None)
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    model.eval()
    if keep_last is not None:
        assert emb is not None  # keep_last was read from it
        emb.keep_last = False
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield ServingModule(model)
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)
        if keep_last is not None:
            assert emb is not None
            emb.keep_last = keep_last
        model.train(was_training)


def _exported_program(model: Any, serving: ServingModule) -> torch.export.ExportedProgram:
    device = getattr(model, "device", torch.device("cpu"))
    ex = example_inputs(model, n=3)
    args = tuple(torch.from_numpy(ex[n]).to(device) for n in serving.input_names)
    batch = torch.export.Dim("batch")
    try:
        return torch.export.export(serving, args, dynamic_shapes=(tuple({0: batch} for _ in args),), strict=False)
    except Exception as e:  # noqa: BLE001 - report any tracing failure with the model's name
        raise ExportError(f"export: torch.export could not trace {type(model).__name__} "
                          f"({type(e).__name__}: {str(e).strip().splitlines()[0][:300]}). The model's forward must "
                          "be free of data-dependent Python control flow.") from e


def _not_sharded(model: Any, where: str) -> None:
    from .training.sharding import is_torchrec
    if is_torchrec(model):
        raise ExportError(f"{where}: {type(model).__name__}'s tables are held by TorchRec (embedding_backend="
                          "'torchrec'), which a serving graph cannot contain. Export the ordinary model with the "
                          "tables gathered: `whole = model.gather()` on every process, then export `whole` on rank 0 "
                          "(`if whole is not None: export_onnx(whole, path)`).")


def export_torch(model: Any, path: str, *, verify: bool = True, atol: float = 1e-5) -> str:
    """Export ``model`` with ``torch.export`` and save the ExportedProgram (``torch.export.save``) to ``path``.

    Load it with :func:`load_exported` (or ``torch.export.load(path).module()``) and call it with the inputs
    of the contract, in order. Writes the sidecar ``<path>.json``.

    Args:
        model: a :class:`~ctrkit.models.BaseModel`.
        path: the file to write (``.pt2`` by convention).
        verify: reload the file and check it against eager PyTorch on random valid inputs.
        atol: the largest absolute difference in predictions ``verify`` accepts.

    Returns:
        ``path``.
    """
    _not_sharded(model, "export_torch")
    path = os.fspath(path)
    with _serving_mode(model) as serving:
        ep = _exported_program(model, serving)
        _mkdir_for(path)
        torch.export.save(ep, path)
    _write_sidecar(model, path, "torch.export", {"input_order": serving.input_names})
    if verify:
        _verify(model, path, atol)
    return path


def export_onnx(model: Any, path: str, *, opset_version: int | None = None, verify: bool = True,
                atol: float = 1e-5) -> str:
    """Export ``model`` to an ONNX file (dynamic batch size, outputs named by task, after sigmoid / softmax).

    The graph comes from ``torch.export`` and is converted by PyTorch's ONNX exporter; the inputs are those of
    the module doc's contract, also written to the sidecar ``<path>.json``.

    Args:
        model: a :class:`~ctrkit.models.BaseModel`.
        path: the ``.onnx`` file to write.
        opset_version: ONNX opset (default: PyTorch's).
        verify: run the file in onnxruntime on random valid inputs (batch 64 and batch 1) and check it
            against eager PyTorch.
        atol: the largest absolute difference in predictions ``verify`` accepts.

    Returns:
        ``path``.

    Raises:
        ImportError: onnx / onnxscript (or onnxruntime, for ``verify``) is not installed.
        ExportError: tracing failed, or ``verify`` found a difference above ``atol``.
    """
    _require("onnx", "onnxscript", *(("onnxruntime",) if verify else ()), where="export_onnx")
    _not_sharded(model, "export_onnx")
    path = os.fspath(path)
    with _serving_mode(model) as serving:
        ep = _exported_program(model, serving)
        try:
            prog = torch.onnx.export(ep, (), dynamo=True, input_names=serving.input_names,
                                     output_names=serving.output_names, opset_version=opset_version,
                                     verbose=False)
        except Exception as e:  # noqa: BLE001
            raise ExportError(f"export_onnx: the ONNX conversion of {type(model).__name__} failed "
                              f"({type(e).__name__}: {str(e).strip().splitlines()[0][:300]}).") from e
        assert prog is not None  # dynamo=True always returns an ONNXProgram
        _mkdir_for(path)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            prog.save(path)
    opset = None
    try:
        import onnx
        opset = next((o.version for o in onnx.load(path, load_external_data=False).opset_import
                      if o.domain in ("", "ai.onnx")), None)
    except Exception:  # noqa: BLE001  (the opset is informative only)
        pass
    _write_sidecar(model, path, "onnx", {"opset": opset})
    if verify:
        _verify(model, path, atol)
    return path


def _mkdir_for(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)


def _require(*modules: str, where: str) -> None:
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"{where}: needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                          f"installed. Install them with: {_EXTRA_HINT}.")


def _verify(model: Any, path: str, atol: float) -> None:
    ex = example_inputs(model, n=64, seed=1)
    for inputs in (ex, {k: v[:1] for k, v in ex.items()}):
        d = parity(model, path, inputs)
        if not d <= atol:
            raise ExportError(f"export: {path!r} does not reproduce {type(model).__name__}'s predictions: max "
                              f"absolute difference {d:.3g} > atol={atol:g} on {len(next(iter(inputs.values())))} "
                              "random valid rows.")


# ---------------------------------------------------------------------------------------------- running
_SESSIONS: dict[tuple[str, float], Any] = {}


def _session(path: str) -> Any:
    _require("onnxruntime", where="run_onnx")
    import onnxruntime as ort
    key = (os.path.abspath(path), os.path.getmtime(path))
    sess = _SESSIONS.get(key)
    if sess is None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        _SESSIONS.clear()
        _SESSIONS[key] = sess
    return sess


def run_onnx(path: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an exported ``.onnx`` file in onnxruntime (CPU): ``{task: predictions}``."""
    sess = _session(os.fspath(path))
    names = [o.name for o in sess.get_outputs()]
    feeds = {i.name: np.ascontiguousarray(inputs[i.name]) for i in sess.get_inputs()}
    return dict(zip(names, sess.run(names, feeds)))


def load_exported(path: str) -> nn.Module:
    """Load a file written by :func:`export_torch` as a callable module: ``module(*inputs) -> tuple``."""
    return torch.export.load(os.fspath(path)).module()


def _run_exported(path: str, model: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if os.fspath(path).endswith(".onnx"):
        return run_onnx(path, inputs)
    names = ServingModule(model).input_names
    device = getattr(model, "device", torch.device("cpu"))
    mod = load_exported(path)
    with torch.no_grad():
        outs = mod(*(torch.from_numpy(np.ascontiguousarray(inputs[n])).to(device) for n in names))
    return {t: o.detach().cpu().numpy() for t, o in zip(model.task_names, outs)}


def _eager(model: Any, inputs: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    device = getattr(model, "device", torch.device("cpu"))
    with _serving_mode(model) as serving, torch.inference_mode():
        arrays = [np.ascontiguousarray(inputs[n]) for n in serving.input_names]
        n = len(arrays[0])
        chunks: list[tuple[torch.Tensor, ...]] = []
        for s in range(0, n, batch_size):
            chunks.append(tuple(o.cpu() for o in serving(*(torch.from_numpy(a[s:s + batch_size]).to(device)
                                                          for a in arrays))))
    return {t: torch.cat([c[i] for c in chunks]).numpy() for i, t in enumerate(model.task_names)}


def parity(model: Any, path: str, x: Any, batch_size: int = 4096) -> float:
    """The largest absolute difference between the exported file's predictions and eager PyTorch's on ``x``.

    Args:
        model: the eager model the file was exported from.
        path: a ``.onnx`` file (run in onnxruntime) or a :func:`export_torch` file (any other extension).
        x: inputs ``{name: array}`` of the contract, or anything :func:`serving_inputs` accepts.
        batch_size: eager PyTorch runs in batches of this size; the exported file runs on all rows at once.

    Returns:
        the max absolute difference over every task and row (``inf`` if NaNs do not match).
    """
    names = ServingModule(model).input_names
    if not (isinstance(x, Mapping) and set(names) <= set(x) and all(isinstance(x[n], np.ndarray) for n in names)):
        x = serving_inputs(model, x)
    ref = _eager(model, x, batch_size)
    got = _run_exported(path, model, x)
    worst = 0.0
    for t in model.task_names:
        a, b = np.asarray(ref[t], dtype=np.float64), np.asarray(got[t], dtype=np.float64)
        if a.shape != b.shape:
            raise ExportError(f"parity: task {t!r} has shape {b.shape} in {path!r} but {a.shape} in eager PyTorch.")
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if (nan_a != nan_b).any():
            return float("inf")
        if a.size:
            worst = max(worst, float(np.abs(a[~nan_a] - b[~nan_b]).max(initial=0.0)))
    return worst

