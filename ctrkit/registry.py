"""Name → class registry of models, used by save/load, the comparison command and the conformance tests."""
from __future__ import annotations

from typing import Any

from .exceptions import suggest

__all__ = ["register_model", "get_model_class", "model_names", "MODELS"]

MODELS: dict[str, type] = {}


def register_model(cls: type) -> type:
    """Class decorator: make a model loadable by name and visible to ``ctrkit compare`` and the tests."""
    MODELS[cls.__name__] = cls
    return cls


def get_model_class(name: str) -> Any:
    import ctrkit.models  # noqa: F401  (registers the built-in models; ``import ctrkit`` alone is lazy)
    if name not in MODELS:
        raise KeyError(f"Unknown model {name!r}.{suggest(name, MODELS)} Registered models: {sorted(MODELS)}.")
    return MODELS[name]


def model_names(multitask: bool | None = None) -> list[str]:
    """Registered model names, optionally only the multi-task (True) or single-task (False) ones."""
    import ctrkit.models  # noqa: F401
    return [n for n, c in MODELS.items() if multitask is None or bool(getattr(c, "multitask", False)) == multitask]
