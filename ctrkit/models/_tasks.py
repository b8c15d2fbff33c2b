"""The task arguments of the single-task models, resolved in one place.

Single-task models keep DeepCTR-Torch's ``task="binary"`` and ``task_name="label"`` and also accept the
multi-task models' ``task_names`` / ``task_types`` (one entry each), so code can build either kind of model
with the same arguments.
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["single_task"]

_MULTITASK = "SharedBottom, OMoE, MMoE, PLE or ESMM"


def _as_list(name: str, arg: str, value: Sequence[str]) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{name}: {arg} must be a list with one entry, e.g. {arg}=[{value!r}], "
                        f"got {value!r}.")
    return list(value)


def single_task(name: str, task: str, task_name: str, task_names: Sequence[str] | None = None,
                task_types: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """``([task name], [task type])`` of a single-task model.

    ``task_names`` / ``task_types``, when given (not None), win over ``task_name`` / ``task``; each on its
    own, so ``task_names=["click"]`` keeps ``task``'s type.

    Args:
        name: the model's name, for the error messages.
        task, task_name: DeepCTR-Torch's arguments.
        task_names, task_types: the multi-task models' arguments, a one-element list each (or None).

    Raises:
        TypeError: ``task_names`` / ``task_types`` is a string or not a sequence.
        ValueError: more than one task (use a multi-task model), or an empty list.

    Example:
        >>> single_task("DNN", "binary", "label")
        (['label'], ['binary'])
        >>> single_task("DNN", "binary", "label", task_names=["watch"], task_types=["regression"])
        (['watch'], ['regression'])
    """
    names = [task_name] if task_names is None else _as_list(name, "task_names", task_names)
    types = [task] if task_types is None else _as_list(name, "task_types", task_types)
    n = max(len(names), len(types))
    if n > 1:
        raise ValueError(f"{name} is a single-task model but got {n} tasks (task_names={names}, "
                         f"task_types={types}). Use a multi-task model ({_MULTITASK}) for several tasks.")
    if len(names) != 1 or len(types) != 1:
        raise ValueError(f"{name}: task_names and task_types need one entry each, got task_names={names}, "
                         f"task_types={types}.")
    return names, types
