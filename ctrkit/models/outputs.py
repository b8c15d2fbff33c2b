"""Task outputs: a model's ``{task: logits}`` as one matrix in task order, and back; logits to predictions."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .calibration import transform_probabilities

__all__ = ["TaskOutputs"]


class TaskOutputs:
    """Mixed into :class:`~ctrkit.models.BaseModel`; reads ``task_names``, ``task_types``, ``task_widths``,
    ``num_classes`` and ``_binary_mask``."""

    # set by BaseModel.__init__ (annotations only, no class attributes: nn.Module keeps the buffer)
    task_names: list[str]
    task_types: list[str]
    task_widths: list[int]
    num_classes: dict[str, int]
    _binary_mask: torch.Tensor

    def stack_outputs(self, outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{task: (B,) or (B, C)}`` → one ``(B, output_width)`` tensor: tasks in order, a multiclass task's
        C columns side by side (``(B, T)`` when no task is multiclass)."""
        if not self.num_classes:
            return torch.stack([outputs[t] for t in self.task_names], dim=1)
        return torch.cat([outputs[t].reshape(outputs[t].shape[0], w)
                          for t, w in zip(self.task_names, self.task_widths)], dim=1)

    def split_outputs(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """The inverse of :meth:`stack_outputs`: ``(N, output_width)`` → ``{task: (N,) or (N, C)}``."""
        out: dict[str, torch.Tensor] = {}
        c = 0
        for t, w in zip(self.task_names, self.task_widths):
            out[t] = logits[:, c] if w == 1 and t not in self.num_classes else logits[:, c:c + w]
            c += w
        return out

    def output_columns(self) -> list[str]:
        """Names of the ``predict`` columns: the task name, or ``"task:k"`` for class k of a multiclass task."""
        return [t if t not in self.num_classes else f"{t}:{k}"
                for t, w in zip(self.task_names, self.task_widths) for k in range(w)]

    def logits_to_predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, output_width)`` raw outputs → probabilities for binary tasks (sigmoid), values for regression
        tasks, class probabilities for multiclass tasks (softmax over the task's C columns).

        A binary task with a negative-sampling rate or a calibrator (``model.output_transform``, see
        :mod:`ctrkit.models.calibration`) gets the corrected, calibrated probability instead of the sigmoid."""
        return transform_probabilities(self, logits, self._plain_predictions(logits))

    def _plain_predictions(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.num_classes:
            mask = self._binary_mask.to(logits.device)
            return torch.where(mask, torch.sigmoid(logits), logits)
        parts = []
        for (t, z), typ in zip(self.split_outputs(logits).items(), self.task_types):
            if typ == "multiclass":
                parts.append(torch.softmax(z, dim=1))
            else:
                parts.append((torch.sigmoid(z) if typ == "binary" else z).unsqueeze(1))
        return torch.cat(parts, dim=1)
