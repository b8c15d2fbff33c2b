"""Conformance checks for ctrkit models, as scikit-learn's ``check_estimator``: one call tells whether a model
follows the contract every ctrkit model follows (the checks the built-in models pass in ctrkit's own tests).

Example:
    >>> from ctrkit import DNN
    >>> from ctrkit.testing import check_model
    >>> def factory(cols, names, types):
    ...     return DNN(cols, dnn_hidden_units=(16,), task_name=names[0], task=types[0])
    >>> report = check_model(factory, checks=["check_forward_contract"])
    >>> report
    {'check_forward_contract': 'passed'}

A *factory* ``factory(feature_columns, task_names, task_types) -> model`` builds a fresh model: the checks
call it many times, on different samples and tasks. A single-task model may keep the first task only:
the checks read ``model.task_names``. In pytest, :func:`parametrize_with_checks` makes one test per model and
check. Importing this module does not import pytest.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .checks import CHECKS, EXPORT_CHECKS, CheckSkipped
from .data import DEFAULT_TAGS, load_check_data

__all__ = ["CHECKS", "DEFAULT_TAGS", "CheckSkipped", "check_model", "iter_checks", "parametrize_with_checks"]

Factory = Callable[[list, list, list], Any]


def iter_checks(checks: Iterable[str | Callable] | None = None, *, export: bool = True) -> list[Callable]:
    """The check functions to run, in order.

    Args:
        checks: a subset, as names (``"check_learns"`` or ``"learns"``) or functions; None for all of them.
        export: include the ONNX / ``torch.export`` parity checks.

    Returns:
        ``[check_xxx, ...]``; each is called as ``check_xxx(factory, data)``.
    """
    chosen = [c for c in CHECKS if export or c not in EXPORT_CHECKS]
    if checks is None:
        return chosen
    by_name = {c.__name__: c for c in CHECKS}
    out = []
    for c in checks:
        if callable(c):
            out.append(c)
            continue
        key = c if c in by_name else f"check_{c}"
        if key not in by_name:
            raise ValueError(f"unknown check {c!r}; the checks are {sorted(by_name)}")
        out.append(by_name[key])
    return out


def _model_name(factory: Any, name: str | None) -> str:
    return name or getattr(factory, "__name__", None) or type(factory).__name__


def run_check(check: Callable, factory: Factory, name: str | None = None) -> None:
    """Run one check; a failure (an assertion or any error) becomes an ``AssertionError`` naming the check and
    the model; :class:`CheckSkipped` passes through."""
    try:
        check(factory, load_check_data())
    except CheckSkipped:
        raise
    except Exception as e:
        why = str(e) if isinstance(e, AssertionError) else f"{type(e).__name__}: {e}"
        raise AssertionError(f"{check.__name__} failed for {_model_name(factory, name)}: {why}") from e


def check_model(factory: Factory, *, name: str | None = None, checks: Iterable[str | Callable] | None = None,
                export: bool = True, raise_first: bool = True) -> dict[str, str]:
    """Run the conformance checks on the model ``factory`` builds.

    Args:
        factory: ``factory(feature_columns, task_names, task_types) -> model`` (a new model each call).
        name: the model's name in messages (default: the factory's ``__name__``).
        checks: run only these checks (names or functions, see :func:`iter_checks`).
        export: run the ONNX / ``torch.export`` parity checks (each is skipped when its extra is missing).
        raise_first: raise on the first failing check; False runs them all, then raises one error listing
            every failure.

    Returns:
        ``{check name: "passed" | "skipped: <why>"}``.

    Raises:
        AssertionError: naming the failed check(s) and the model.
    """
    report: dict[str, str] = {}
    failures: list[str] = []
    for check in iter_checks(checks, export=export):
        try:
            run_check(check, factory, name)
        except CheckSkipped as e:
            report[check.__name__] = f"skipped: {e}"
        except AssertionError as e:
            if raise_first:
                raise
            report[check.__name__] = "failed"
            failures.append(str(e))
        else:
            report[check.__name__] = "passed"
    if failures:
        who = _model_name(factory, name)
        raise AssertionError(f"{len(failures)} conformance check(s) failed for {who}:\n"
                             + "\n".join(failures))
    return report


def _pytest_check(check: Callable, name: str) -> Callable[[Factory], None]:
    def run(factory: Factory) -> None:
        import pytest
        try:
            run_check(check, factory, name)
        except CheckSkipped as e:
            pytest.skip(f"{check.__name__}: {e}")
    run.__name__ = check.__name__
    return run


def parametrize_with_checks(factories: Mapping[str, Factory], *,
                            checks: Iterable[str | Callable] | None = None, export: bool = True) -> Any:
    """A ``pytest.mark.parametrize`` decorator over every (model, check): the test takes ``factory`` and
    ``check`` and calls ``check(factory)``. Test ids read ``<model>-<check>``; a check that does not apply is
    skipped.

    Example:
        >>> from ctrkit.testing import parametrize_with_checks
        >>> @parametrize_with_checks({"MyDNN": factory})      # doctest: +SKIP
        ... def test_my_model(factory, check):
        ...     check(factory)
    """
    import pytest
    params = [pytest.param(f, _pytest_check(c, name), id=f"{name}-{c.__name__}")
              for name, f in factories.items() for c in iter_checks(checks, export=export)]
    return pytest.mark.parametrize("factory, check", params)
