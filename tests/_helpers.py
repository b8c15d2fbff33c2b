"""Plain helpers shared by test files (import them with ``from _helpers import ...``; ``conftest`` is a
different module in each test folder, so test files never import from it)."""
import numpy as np


def constant_logloss(y: np.ndarray) -> float:
    """The logloss of the best constant predictor (the base rate) on binary labels ``y``."""
    p = float(np.clip(np.mean(y), 1e-7, 1 - 1e-7))
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
