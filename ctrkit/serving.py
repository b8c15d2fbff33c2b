"""The fast path of :meth:`BaseModel.predict_records <ctrkit.models.BaseModel.predict_records>`: a few raw
records to probabilities in well under a millisecond of ctrkit overhead.

A server calls ``model.predict_records([record])`` once per request, so every fixed cost counts. The general
path (a DataFrame per call, the encoder's vectorised pandas transform, input validation, the Trainer's batch
loop, ``model.eval()`` / ``model.train()`` over the module tree) costs milliseconds for one row. Here:

* records are encoded by :meth:`FeatureEncoder.transform_records <ctrkit.FeatureEncoder.transform_records>`
  (plain dict lookups, no pandas);
* the id / value matrices are assembled straight into the model's input layout; the per-call range checks
  are skipped because the encoder's ids are in range by construction (its vocabulary sizes are the feature
  columns' — checked once per model and encoder, and :func:`ctrkit.load_model` checks them at load);
* the forward pass runs under ``torch.inference_mode`` with the modules' ``training`` flags switched
  directly (the same effect as ``eval()`` / ``train()``, which walk the module tree through
  ``nn.Module.__setattr__``); a model with a module that overrides ``train()`` gets the real calls.

Results equal the general path's (same ids, same floats; tested).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.inputs import TensorData
from .features import DenseFeat, split_feature_columns

__all__ = ["records_plan", "records_to_data", "predict_data_fast"]


def records_plan(model: Any) -> dict[str, Any] | None:
    """How encoder output maps onto the model's input matrices, or None when the fast path does not apply
    (a feature the encoder does not produce, a hashed or differently sized column, a length column)."""
    enc = getattr(model, "encoder", None)
    if enc is None or not hasattr(enc, "transform_records"):
        return None
    cached = model.__dict__.get("_records_plan")
    if cached is not None and cached[0] is enc and cached[2] is getattr(enc, "vocabularies_", None):
        return cached[1]                   # (a refit replaces vocabularies_, so the plan is rebuilt)
    plan: dict[str, Any] | None = {"sparse": [], "dense": [], "varlen": []}
    split = split_feature_columns(model.feature_columns)
    sparse_cols, varlen_cols = set(enc.sparse_columns_), set(enc.varlen_columns_)
    for f in split.sparse:
        if f.use_hash or f.name not in sparse_cols or f.vocabulary_size != enc.vocabulary_size(f.name):
            plan = None
            break
        plan["sparse"].append(f.name)
    if plan is not None:
        for f in split.dense:
            if not isinstance(f, DenseFeat) or f.dimension != 1 or f.name not in enc.dense_columns_:
                plan = None
                break
            plan["dense"].append(f.name)
    if plan is not None:
        for f in split.varlen:
            if (f.use_hash or f.length_name or f.name not in varlen_cols or f.maxlen != enc.maxlen_[f.name]
                    or f.vocabulary_size != enc.vocabulary_size(f.name)):
                plan = None
                break
            plan["varlen"].append(f.name)
    if plan is not None:
        plan["has_dense"] = bool(plan["dense"])
    model.__dict__["_records_plan"] = (enc, plan, getattr(enc, "vocabularies_", None))
    return plan


def records_to_data(model: Any, records: Sequence[Mapping[str, Any]], plan: Mapping[str, Any]) -> TensorData:
    """Encode raw records with the model's encoder into the model's :class:`~ctrkit.data.TensorData`."""
    cols = model.encoder._records_columns(records if isinstance(records, list) else list(records))
    sparse = dense = None
    if plan["sparse"]:
        sparse = torch.from_numpy(np.ascontiguousarray(np.array([cols[c] for c in plan["sparse"]], dtype=np.int64).T))
    if plan["has_dense"]:
        dense = torch.from_numpy(np.ascontiguousarray(
            np.array([cols[c] for c in plan["dense"]], dtype=np.float64).T.astype(np.float32)))
    return TensorData(sparse, dense, {c: torch.from_numpy(cols[c]) for c in plan["varlen"]}, {})


def _set_training(model: nn.Module, mode: bool) -> None:
    """``model.train(mode)`` without its per-module ``__setattr__`` walk, unless a module overrides ``train``."""
    mods = list(model.modules())
    if any(type(m).train is not nn.Module.train for m in mods):
        model.train(mode)
        return
    for m in mods:
        m.__dict__["training"] = mode


def predict_data_fast(model: Any, data: TensorData) -> np.ndarray:
    """Predictions ``(n, output_width)`` for a small batch already in the model's input layout."""
    was_training = model.training
    if was_training:
        _set_training(model, False)
    try:
        with torch.inference_mode():
            if model.device.type != "cpu":
                data = data.to(model.device)
            out = model(data)
            z = model.stack_outputs(out) if hasattr(model, "stack_outputs") else torch.stack(
                [out[t] for t in model.task_names], dim=1)
            return model.logits_to_predictions(z.float().cpu()).numpy()
    finally:
        if was_training:
            _set_training(model, True)
