"""Fixtures of the reliability battery."""
from __future__ import annotations

import os

import pytest


def _clean_error(excinfo: pytest.ExceptionInfo) -> None:
    """The error was raised by ctrkit's own checks, not deep inside torch / pandas / numpy."""
    last = str(excinfo.traceback[-1].path)
    assert f"{os.sep}ctrkit{os.sep}" in last and "site-packages" not in last, last


@pytest.fixture
def clean_error():
    return _clean_error


@pytest.fixture
def one_thread():
    """One torch thread for the test (timing-sensitive concurrency and fault tests), restored after."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
