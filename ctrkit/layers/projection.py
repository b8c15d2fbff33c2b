"""The model input and its first linear layer: the one place that knows how that layer is computed.

A model reads ``[e_1 | ... | e_J | dense]`` (every embedding and dense value side by side) and most models start
with a linear map of it (an MLP's first layer, the experts' and gates' first GEMM). :class:`InputProjection`
gives both: ``projection(batch)`` is the concatenated input ``(B, in)``, and ``projection.linear(batch, weight,
bias)`` is ``input @ weight + bias``, computed as one GEMM or, where an operation count says it is cheaper,
through the embedding tables folded with the weight (:mod:`ctrkit.layers.fold`; CPU training, and inference on
batches with more rows than the tables). Both give the same result up to float rounding. Models call these two
methods and know nothing of folding; the trainer knows nothing of it either.

Layers whose first operation is that GEMM accept a :class:`ModelInput` (``projection.wrap(batch)``) in place of
a tensor and call :meth:`ModelInput.linear` (see :class:`~ctrkit.layers.MLP`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .fold import FoldedInputProjection, FoldedTrainingProjection

if TYPE_CHECKING:
    from .embedding import EmbeddingLayer

__all__ = ["InputProjection", "ModelInput"]


class InputProjection(nn.Module):
    """The model input ``[embeddings | dense]`` and linear maps of it (see the module docstring).

    Args:
        embedding: the model's :class:`~ctrkit.layers.EmbeddingLayer` (referenced, not owned: its tables stay
            registered once, under the model's ``embedding``).
        dense_dim: the width of the dense values that follow the embeddings.

    Example:
        >>> from ctrkit import SparseFeat
        >>> from ctrkit.layers import EmbeddingLayer
        >>> from ctrkit.data import TensorData
        >>> emb = EmbeddingLayer([SparseFeat("user", 10, 4)])
        >>> proj = InputProjection(emb, dense_dim=0)
        >>> batch = TensorData(torch.tensor([[1], [2]]), None)
        >>> proj.linear(batch, torch.ones(4, 3), torch.zeros(3)).shape
        torch.Size([2, 3])
    """

    # kept in __dict__ by __init__ (not submodules); declared here for the type checker only
    _embedding: EmbeddingLayer
    _plan: FoldedTrainingProjection | None

    def __init__(self, embedding: nn.Module, dense_dim: int) -> None:
        super().__init__()
        self.__dict__["_embedding"] = embedding  # a plain reference: not a submodule, not in the state dict
        self.dense_dim = int(dense_dim)
        self.__dict__["_plan"] = None

    @property
    def output_dim(self) -> int:
        return self._embedding.output_dim + self.dense_dim

    def forward(self, batch: Any) -> torch.Tensor:
        """The concatenation of all embeddings and dense values: ``(B, in)``."""
        parts = []
        emb = self._embedding.flat(batch)
        if emb is not None:
            parts.append(emb)
        if batch.dense is not None and self.dense_dim:
            parts.append(batch.dense)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def wrap(self, batch: Any) -> ModelInput:
        """The batch as a :class:`ModelInput` for a layer that starts with a linear map of the input."""
        return ModelInput(self, batch)

    def _training_plan(self, weight: torch.Tensor) -> FoldedTrainingProjection:
        """The per-step folding plan (it depends only on the feature layout): built once per device."""
        plan = self._plan
        if plan is None or plan.base.device != weight.device:
            plan = self.__dict__["_plan"] = FoldedTrainingProjection(self._embedding)
        return plan

    def linear(self, batch: Any, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``input @ weight + bias`` for ``weight`` ``(in, out)``: one GEMM, or folded tables where cheaper."""
        emb = self._embedding
        if _tracing():  # export / torch.compile: one graph for every batch size, so the plain GEMM
            return torch.addmm(bias, self(batch), weight)
        if torch.is_grad_enabled():
            if FoldedTrainingProjection.applicable(emb, weight):
                plan = self._training_plan(weight)
                if plan.pays(weight, batch):
                    return plan(emb, batch, weight, bias)
        elif (FoldedInputProjection.supported(emb)
              and FoldedInputProjection.worthwhile(emb, weight.shape[1], batch.sparse.shape[0])):
            if weight.device.type == "cpu":   # the bucketed plan: a few bmm calls build the tables
                return self._training_plan(weight)(emb, batch, weight, bias)
            return FoldedInputProjection(emb, weight, bias)(batch)
        return torch.addmm(bias, self(batch), weight)


def _tracing() -> bool:
    """True while torch.export, torch.compile or the TorchScript tracer records the forward pass."""
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(torch.jit.is_tracing() or (compiling is not None and compiling()))


class ModelInput:
    """A batch not yet concatenated, so that the first linear layer over it may be computed by
    :meth:`InputProjection.linear`; :meth:`tensor` gives the plain ``(B, in)`` input."""

    __slots__ = ("projection", "batch")

    def __init__(self, projection: InputProjection, batch: Any) -> None:
        self.projection, self.batch = projection, batch

    def tensor(self) -> torch.Tensor:
        return self.projection(self.batch)

    def linear(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.projection.linear(self.batch, weight, bias)


def as_tensor(x: torch.Tensor | ModelInput) -> torch.Tensor:
    """``x`` itself, or the concatenated input of a :class:`ModelInput`."""
    return x.tensor() if isinstance(x, ModelInput) else x
