import numpy as np
import pytest
from sklearn import metrics as skm

from ctrkit.metrics import (
    accuracy,
    get_metric,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    metric_direction,
    roc_auc,
)


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500).astype(float)
    p = np.round(rng.random(500), 2)  # rounding creates ties
    w = rng.random(500)
    assert roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert roc_auc(y, p, w) == pytest.approx(skm.roc_auc_score(y, p, sample_weight=w), abs=1e-12)
    assert log_loss(y, p) == pytest.approx(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), rel=1e-9)
    assert mean_squared_error(y, p, w) == pytest.approx(skm.mean_squared_error(y, p, sample_weight=w))
    assert mean_absolute_error(y, p) == pytest.approx(skm.mean_absolute_error(y, p))
    assert accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p >= 0.5))


def test_single_class_auc_is_nan_and_directions():
    assert np.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert metric_direction("val_ctr_auc") == "max"
    assert metric_direction("val_cvr_logloss") == "min"
    assert metric_direction("val_loss") == "min"
    with pytest.raises(ValueError, match="Did you mean 'auc'"):
        get_metric("acu")
