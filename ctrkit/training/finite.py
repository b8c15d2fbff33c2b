"""Checks of a model's numbers and of its forward passes, used by the Trainer and the facade: non-finite weights
and outputs (a diverged model is never saved or served), and evening out forward passes that are collectives.
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["nonfinite_parameters", "check_finite_outputs", "match_forward_calls", "xb_device"]


def nonfinite_parameters(model: Any) -> list[str]:
    """Names of the parameters and floating-point buffers of ``model`` holding a NaN or an infinity."""
    with torch.no_grad():
        named = [(n, t) for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_floating_point()]
        if not named:
            return []
        ok = torch.stack([_all_finite(t) for _, t in named]).cpu()  # one sync, not one per tensor
    return [n for (n, _), good in zip(named, ok.tolist()) if not good]


_FINITE_CHUNK = 1 << 22


def _all_finite(t: torch.Tensor) -> torch.Tensor:
    """``isfinite(t).all()`` without its temporaries of ``t``'s size (a float copy and two masks): a large
    table is checked in slices of 4M values, so the check's memory does not grow with the vocabulary."""
    if t.numel() <= _FINITE_CHUNK:
        return torch.isfinite(t).all()
    step = max(1, _FINITE_CHUNK // max(1, t[0].numel()))   # slices along the rows are views, whatever the strides
    return torch.stack([torch.isfinite(t[i:i + step]).all() for i in range(0, t.shape[0], step)]).all()


def check_finite_outputs(model: Any, outputs: torch.Tensor, where: str) -> None:
    """Raise instead of serving NaN / infinite outputs: name the non-finite weights if there are any (a model
    that diverged), else the rows whose outputs are not finite (inputs the model cannot score)."""
    finite = torch.isfinite(outputs)
    if bool(finite.all()):
        return
    name = type(model).__name__
    bad = nonfinite_parameters(model)
    if bad:
        raise RuntimeError(f"{name}.{where}: the model's weights hold NaN or infinite values ({_names(bad)}), so "
                           "every prediction would be NaN. The model diverged in training: retrain it with a lower "
                           "learning rate or compile(grad_clip_norm=...), or load a checkpoint saved before.")
    rows = torch.nonzero(~finite.reshape(len(outputs), -1).all(dim=1)).flatten().tolist()
    raise RuntimeError(f"{name}.{where}: the outputs of {len(rows)} of {len(outputs)} row(s) are NaN or infinite "
                       f"(first rows: {rows[:5]}) although the weights are finite; check those rows for extreme "
                       "values (encode the data with the model's FeatureEncoder, which clips them).")


def _names(names: list[str], k: int = 3) -> str:
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(repr(n) for n in names[:k]) + more


def match_forward_calls(model: Any, source: Any, done: int, xb: Any) -> None:
    """A model whose forward pass is a collective (sharded tables) must run it as often on every process: a
    process with fewer batches than another scores a one-row batch until they are even (its outputs unused)."""
    from ..distributed import all_reduce_max
    extra = int(all_reduce_max(float(done))) - done
    if extra <= 0:
        return
    if xb is None:
        xb = next(iter(source.iter_range(0, 1, 1)))[0]
    one = xb.slice(0, 1) if hasattr(xb, "slice") else xb[:1]
    if xb_device(one) != model.device:
        one = one.to(model.device)
    for _ in range(extra):
        model(one)


def xb_device(xb: Any) -> torch.device:
    """The device of a batch (a :class:`~ctrkit.data.TensorData` or a tensor)."""
    if isinstance(xb, torch.Tensor):
        return xb.device
    for t in (xb.sparse, xb.dense, *xb.varlen.values()):
        if t is not None:
            return t.device
    return torch.device("cpu")
