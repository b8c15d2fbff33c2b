"""Name → class registry of models, and the one factory that builds a registered model by name.

Used by save/load, the command line, the comparison command and the conformance tests. :func:`build_model`
is the only place that knows the constructor conventions (multi-task ``task_names`` / ``task_types`` versus
DeepCTR-Torch's single-task ``task`` / ``task_name``; one or two feature-column arguments).
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from .exceptions import suggest

__all__ = ["register_model", "get_model_class", "model_names", "model_arguments", "build_model", "MODELS"]

MODELS: dict[str, type] = {}

# set by build_model's own arguments, never by keyword
_COLUMN_ARGS = ("linear_feature_columns", "dnn_feature_columns")
_RESERVED = frozenset({*_COLUMN_ARGS, "feature_columns", "task_names", "task_types", "task_name", "task"})
_HIDDEN = frozenset({"gpus"})  # accepted for DeepCTR-Torch compatibility, not worth listing


def register_model(cls: type) -> type:
    """Class decorator: make a model loadable by name and visible to ``ctrkit compare`` and the tests."""
    MODELS[cls.__name__] = cls
    return cls


def get_model_class(name: str) -> Any:
    """The registered class called ``name``.

    Raises:
        KeyError: no such model; the message suggests the closest registered name.
    """
    import ctrkit.models  # noqa: F401  (registers the built-in models; ``import ctrkit`` alone is lazy)
    if name not in MODELS:
        raise KeyError(f"Unknown model {name!r}.{suggest(name, MODELS)} Registered models: {sorted(MODELS)}.")
    return MODELS[name]


def model_names(multitask: bool | None = None) -> list[str]:
    """Registered model names, optionally only the multi-task (True) or single-task (False) ones."""
    import ctrkit.models  # noqa: F401
    return [n for n, c in MODELS.items()
            if multitask is None or bool(getattr(c, "multitask", False)) == multitask]


def model_arguments(name: str) -> tuple[list[str], bool]:
    """The keyword arguments :func:`build_model` accepts for model ``name`` (sorted; the feature columns and
    tasks excluded), and whether its constructor also takes arbitrary ``**kwargs``."""
    params = inspect.signature(get_model_class(name)).parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    names = sorted(n for n, p in params.items() if n not in _RESERVED and p.kind not in (
        inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL))
    return names, takes_kwargs


def build_model(name: str, feature_columns: Sequence, task_names: Sequence[str], task_types: Sequence[str],
                **kwargs: Any) -> Any:
    """Build the registered model ``name`` on ``feature_columns`` for the given tasks.

    Every model takes ``task_names=`` and ``task_types=`` (single-task models also DeepCTR-Torch's ``task`` /
    ``task_name``, and exactly one task). Models with separate linear and deep inputs get ``feature_columns``
    for both.

    Args:
        name: a registered model name (``"MMoE"``, ``"DeepFM"``, ...).
        feature_columns: the feature columns (e.g. ``FeatureEncoder.feature_columns``).
        task_names: one name per task (exactly one for a single-task model).
        task_types: ``"binary"``, ``"regression"``, ... per task.
        **kwargs: the model's other constructor arguments (``seed``, ``device``, sizes ...).

    Raises:
        KeyError: unknown model name (with the closest registered names).
        ValueError: a single-task model given several tasks, task names and types of different lengths, or a
            next-item sequential model (those are built from ``num_items``, not feature columns).
        TypeError: an argument the model does not accept (the message lists the accepted ones).

    Example:
        >>> from ctrkit import SparseFeat
        >>> cols = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4)]
        >>> build_model("MMoE", cols, ["click", "like"], ["binary", "binary"], num_experts=2).task_names
        ['click', 'like']
        >>> build_model("DeepFM", cols, ["click"], ["binary"]).task_names
        ['click']
    """
    cls = get_model_class(name)
    if getattr(cls, "sequential", False):
        raise ValueError(f"{name} is a next-item sequential model: build it from the number of items "
                         f"({name}(num_items=..., ...)), not from feature columns and tasks.")
    reserved = sorted(k for k in kwargs if k in _RESERVED)
    if reserved:
        raise TypeError(f"{name}: {reserved} are set from build_model's feature_columns, task_names and "
                        "task_types; do not pass them as keyword arguments.")
    accepted, takes_kwargs = model_arguments(name)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown and not takes_kwargs:
        shown = [a for a in accepted if a not in _HIDDEN]
        raise TypeError(f"{name}: unexpected argument(s) {unknown}.{suggest(unknown[0], shown)} "
                        f"Accepted arguments: {shown}.")
    task_names, task_types = list(task_names), list(task_types)
    if len(task_names) != len(task_types):
        raise ValueError(f"{name}: {len(task_names)} task names {task_names} but {len(task_types)} task "
                         f"types {task_types}; give one type per task.")
    if not getattr(cls, "multitask", False) and len(task_names) != 1:
        raise ValueError(f"{name} is a single-task model but got {len(task_names)} tasks {task_names}. "
                         "Keep one task, or use a multi-task model (e.g. MMoE).")
    kwargs.update(task_names=task_names, task_types=task_types)   # every model takes the same task arguments
    params = inspect.signature(cls).parameters
    n_columns = sum(a in params for a in _COLUMN_ARGS) or 1
    return cls(*([feature_columns] * n_columns), **kwargs)
