"""Dense building blocks: activations, an MLP, and a bank of parallel MLPs computed as batched matmuls."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from ..exceptions import suggest
from .projection import ModelInput

__all__ = ["get_activation", "ACTIVATIONS", "MLP", "ParallelMLP", "Towers"]

ACTIVATIONS = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "prelu": nn.PReLU, "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU, "silu": nn.SiLU, "swish": nn.SiLU, "elu": nn.ELU, "linear": nn.Identity, "none": nn.Identity,
}


def get_activation(name: str | nn.Module) -> nn.Module:
    """An activation module by name (``"relu"``, ``"prelu"``, ...) or the module itself."""
    if isinstance(name, nn.Module):
        return name
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}.{suggest(key, ACTIVATIONS)} "
                         f"Valid names: {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[key]()


def _check_units(where: str, units: Sequence[int]) -> tuple[int, ...]:
    units = tuple(units or ())
    for u in units:
        if isinstance(u, bool) or not isinstance(u, int) or u < 1:
            raise ValueError(f"{where}: hidden units must be ints >= 1, got {units!r}.")
    return units


class MLP(nn.Module):
    """Linear → [BatchNorm] → activation → [Dropout], repeated (DeepCTR's ``DNN``).

    Args:
        in_features: input width.
        hidden_units: output width of each layer; empty means identity.
        activation: activation name or module.
        dropout: dropout rate after each layer.
        use_bn: add BatchNorm1d before the activation.

    Shape:
        ``(B, in_features)`` → ``(B, hidden_units[-1])`` (or ``(B, in_features)`` when empty).

    Example:
        >>> MLP(8, (16, 4))(torch.zeros(2, 8)).shape
        torch.Size([2, 4])
    """

    def __init__(self, in_features: int, hidden_units: Sequence[int] = (), activation: str = "relu",
                 dropout: float = 0.0, use_bn: bool = False) -> None:
        super().__init__()
        units = _check_units("MLP", hidden_units)
        layers: list[nn.Module] = []
        prev = in_features
        for u in units:
            layers.append(nn.Linear(prev, u))
            if use_bn:
                layers.append(nn.BatchNorm1d(u))
            layers.append(get_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = u
        self.net = nn.Sequential(*layers)
        self.output_dim = prev

    def forward(self, x: torch.Tensor | ModelInput) -> torch.Tensor:
        """``x``: a tensor, or the model input (:class:`~ctrkit.layers.ModelInput`), whose first linear layer
        the input projection computes."""
        if not isinstance(x, ModelInput):
            return self.net(x)
        if not len(self.net):
            return x.tensor()
        first = cast(nn.Linear, self.net[0])  # the net starts with its first nn.Linear
        return self.net[1:](x.linear(first.weight.t(), first.bias))


class ParallelMLP(nn.Module):
    """``n`` independent MLPs of equal shape (experts, towers) computed together with batched matmuls.

    With a shared input ``(B, in)`` the first layer of all ``n`` MLPs is one GEMM against the concatenated
    weights ``(in, n*h)``; later layers are one ``baddbmm`` over the stacked ``(n, h, h')`` weights. No Python
    loop over the ``n`` MLPs.

    Args:
        num: number of MLPs.
        in_features: input width.
        hidden_units: layer widths of each MLP (non-empty).
        activation, dropout, use_bn: as in :class:`MLP`; ``last_activation=False`` leaves the last layer linear
            (towers producing logits).

    Shape:
        input ``(B, in)`` (shared) or ``(n, B, in)`` (one input per MLP) → output ``(n, B, hidden_units[-1])``.

    Example:
        >>> ParallelMLP(4, 8, (16,))(torch.zeros(3, 8)).shape
        torch.Size([4, 3, 16])
    """

    def __init__(self, num: int, in_features: int, hidden_units: Sequence[int], activation: str = "relu",
                 dropout: float = 0.0, use_bn: bool = False, last_activation: bool = True) -> None:
        super().__init__()
        units = _check_units("ParallelMLP", hidden_units)
        if not units:
            raise ValueError("ParallelMLP: hidden_units must not be empty.")
        self.num = int(num)
        self.units = units
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.norms = nn.ModuleList()
        prev = in_features
        for u in units:
            self.weights.append(nn.Parameter(torch.empty(self.num, prev, u)))
            self.biases.append(nn.Parameter(torch.empty(self.num, 1, u)))
            self.norms.append(nn.BatchNorm1d(self.num * u) if use_bn else nn.Identity())
            prev = u
        self.acts = nn.ModuleList([get_activation(activation) for _ in units])
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.last_activation = last_activation
        self.use_bn = use_bn
        self.output_dim = prev
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w, b in zip(self.weights, self.biases):
            # the default nn.Linear initialisation, per MLP
            bound = 1.0 / math.sqrt(w.shape[1]) if w.shape[1] > 0 else 0.0
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.num
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if i == 0 and x.dim() == 2:
                B, d = x.shape
                u = w.shape[2]
                h = torch.addmm(b.permute(1, 0, 2).reshape(1, n * u), x,
                                w.permute(1, 0, 2).reshape(d, n * u))  # (B, n*u)
                if self.use_bn:
                    h = self.norms[i](h)
                h = h.view(B, n, u).transpose(0, 1)  # (n, B, u)
            else:
                h = torch.baddbmm(b, x, w)  # (n, B, u)
                if self.use_bn:
                    B = h.shape[1]
                    h = self.norms[i](h.transpose(0, 1).reshape(B, -1)).view(B, n, -1).transpose(0, 1)
            last = i == len(self.weights) - 1
            if not last or self.last_activation:
                h = self.dropout(self.acts[i](h))
            x = h
        return x


class Towers(nn.Module):
    """One small MLP per task ending in a single output unit, all tasks computed together.

    Args:
        task_names: the tasks, in output order.
        in_features: input width.
        hidden_units: hidden layers of each tower (may be empty: a linear output).
        activation, dropout, use_bn: as in :class:`MLP` (no BatchNorm on the output unit).
        widths: output units per task (default 1 each); a task with ``C > 1`` units (a multiclass task)
            returns ``(B, C)`` logits. The towers stay one batched matmul: every tower has ``max(widths)``
            output units and a narrower task reads its first ones.

    Shape:
        input ``(B, in)`` shared by all towers, or ``(T, B, in)`` one per task → ``{task: (B,)}``
        (``(B, C)`` for a task of width ``C > 1``).

    Example:
        >>> out = Towers(["ctr", "cvr"], 8, (4,))(torch.zeros(3, 8))
        >>> sorted(out), tuple(out["ctr"].shape)
        (['ctr', 'cvr'], (3,))
    """

    def __init__(self, task_names, in_features: int, hidden_units: Sequence[int] = (), activation: str = "relu",
                 dropout: float = 0.0, use_bn: bool = False, widths: Sequence[int] | None = None) -> None:
        super().__init__()
        self.task_names = list(task_names)
        T = len(self.task_names)
        self.widths = [1] * T if widths is None else [int(w) for w in widths]
        if len(self.widths) != T or min(self.widths) < 1:
            raise ValueError(f"Towers: widths must give one int >= 1 per task, got {widths!r} for {T} tasks.")
        units = _check_units("Towers", hidden_units)
        self.hidden = ParallelMLP(T, in_features, units, activation, dropout, use_bn) if units else None
        self.out = ParallelMLP(T, units[-1] if units else in_features, (max(self.widths),), last_activation=False)

    def output_biases(self) -> dict[str, torch.Tensor]:
        """``{task: (width,)}`` views of the output units' biases (for the label-prior initialisation)."""
        b = self.out.biases[0]  # (T, 1, max width)
        return {t: b[i, 0, :w] for i, (t, w) in enumerate(zip(self.task_names, self.widths))}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.hidden(x) if self.hidden is not None else x
        y = self.out(h)  # (T, B, max width)
        return {t: y[i, :, 0] if w == 1 else y[i, :, :w] for i, (t, w) in enumerate(zip(self.task_names, self.widths))}
