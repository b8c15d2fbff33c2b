"""Exceptions raised by ctrkit.

Every message follows one template: *where: what is wrong (got value). How to fix.*
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CtrkitError",
    "SchemaError",
    "NotFittedError",
    "DataValidationError",
    "ModelFormatError",
    "suggest",
]


class CtrkitError(Exception):
    """Base class of every error ctrkit raises on purpose."""


class SchemaError(CtrkitError, ValueError):
    """A feature column (or a set of them) is invalid or inconsistent."""


class NotFittedError(CtrkitError, ValueError, AttributeError):
    """A preprocessor was used before ``fit`` (mirrors scikit-learn's NotFittedError)."""


class DataValidationError(CtrkitError, ValueError):
    """Input data (features or labels) does not match what the model or encoder expects."""


class ModelFormatError(CtrkitError, ValueError):
    """A saved model directory is missing, corrupted, or of an unsupported format version."""


def suggest(value: str, options: Iterable[str]) -> str:
    """Return a ``" Did you mean 'x'?"`` hint for the closest option, or ``""``."""
    options = [str(o) for o in options]
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""
