"""Plain helpers shared by test files (import them with ``from _helpers import ...``; ``conftest`` is a
different module in each test folder, so test files never import from it)."""
import numpy as np


def constant_logloss(y: np.ndarray) -> float:
    """The logloss of the best constant predictor (the base rate) on binary labels ``y``."""
    p = float(np.clip(np.mean(y), 1e-7, 1 - 1e-7))
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def two_task_data(n: int = 512, seed: int = 0) -> tuple[dict, dict]:
    """Random rows for columns ``u`` (30 ids), ``i`` (20 ids), ``d`` (dense) and two binary tasks ``a``, ``b``."""
    rng = np.random.default_rng(seed)
    x = {"u": rng.integers(0, 30, n), "i": rng.integers(0, 20, n), "d": rng.normal(size=n).astype("float32")}
    y = {"a": rng.integers(0, 2, n).astype("float32"), "b": rng.integers(0, 2, n).astype("float32")}
    return x, y
