"""Optimizers by name, with sparse-gradient embedding tables handled automatically."""
from __future__ import annotations

from typing import Any

import torch

from ..exceptions import suggest

__all__ = ["build_optimizer", "MultiOptimizer", "OPTIMIZERS"]

OPTIMIZERS = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop, "sparse_adam": torch.optim.SparseAdam,
}
# DeepCTR-Torch's defaults when the optimizer is given by name
_DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2, "adagrad": 1e-2, "rmsprop": 1e-3, "sparse_adam": 1e-3}
_SPARSE_OK = {"sgd", "adagrad", "sparse_adam"}


class MultiOptimizer:
    """Several optimizers stepped together (sparse embedding tables + dense layers), one interface."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)


def _make(cls: type, params: list, lr: float) -> torch.optim.Optimizer:
    """Prefer the fused (one kernel for all parameters) implementation where torch has one."""
    if cls in (torch.optim.Adam, torch.optim.AdamW) and params:
        try:
            return cls(params, lr=lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return cls(params, lr=lr)


def build_optimizer(spec: Any, model: torch.nn.Module, lr: float | None = None) -> Any:
    """An optimizer for ``model`` from a name (``"adam"``, ``"adagrad"``, ...) or an instance.

    With sparse embedding gradients (``sparse=True`` models) and ``"adam"``/``"adamw"``/``"rmsprop"``, the
    tables get ``SparseAdam`` and the other parameters the named optimizer.
    """
    if isinstance(spec, (torch.optim.Optimizer, MultiOptimizer)):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"compile: optimizer must be a name or a torch.optim.Optimizer, got {type(spec).__name__}.")
    key = spec.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"compile: unknown optimizer {spec!r}.{suggest(key, OPTIMIZERS)} "
                         f"Valid names: {sorted(OPTIMIZERS)}, or pass a torch.optim.Optimizer instance.")
    lr = _DEFAULT_LR[key] if lr is None else float(lr)
    from ..layers.embedding import EmbeddingLayer
    # the tables only: an embedding layer's numeric fields (``m.numeric``) have dense gradients
    sparse_params = [p for m in model.modules() if isinstance(m, EmbeddingLayer) and m.sparse for p in m.weights]
    ids = {id(p) for p in sparse_params}
    # tables held by TorchRec are updated by its fused optimizer in the backward pass (training/sharding.py)
    ids |= {id(p) for m in model.modules() if getattr(m, "backend", None) == "torchrec"
            for p in getattr(m, "ebc").parameters()}
    dense_params = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    if not sparse_params:
        if key == "sparse_adam":
            raise ValueError("compile: 'sparse_adam' needs a model built with sparse=True embeddings.")
        return _make(OPTIMIZERS[key], dense_params, lr)
    if key in _SPARSE_OK and key != "sparse_adam":
        return OPTIMIZERS[key](sparse_params + dense_params, lr=lr)
    dense_cls = torch.optim.Adam if key == "sparse_adam" else OPTIMIZERS[key]
    opts: list[torch.optim.Optimizer] = [torch.optim.SparseAdam(sparse_params, lr=lr)]
    if dense_params:
        opts.append(_make(dense_cls, dense_params, lr))
    return MultiOptimizer(*opts)
