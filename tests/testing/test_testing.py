"""``ctrkit.testing`` can fail: broken models are caught, naming the check and the model."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ctrkit import DNN
from ctrkit.testing import check_model, iter_checks


def dnn(cols, names, types, **kw):
    return DNN(cols, dnn_hidden_units=(16,), task_name=names[0], task=types[0], **kw)


class TensorDNN(DNN):
    """Returns the logits tensor instead of ``{task: logits}``."""

    def forward(self, batch):
        return super().forward(batch)[self.task_names[0]]


class NaNDNN(DNN):
    """Predicts NaN."""

    def forward(self, batch):
        return {t: v * float("nan") for t, v in super().forward(batch).items()}


def test_a_conforming_model_passes_the_chosen_checks():
    assert check_model(dnn, checks=["forward_contract", "check_learns"]) == {
        "check_forward_contract": "passed", "check_learns": "passed"}


@pytest.mark.parametrize("cls, why", [(TensorDNN, "must return a dict"), (NaNDNN, "non-finite")])
def test_check_model_fails_on_a_broken_model(cls, why):
    def factory(cols, names, types):
        return cls(cols, dnn_hidden_units=(16,), task_name=names[0], task=types[0])
    with pytest.raises(AssertionError, match=f"check_forward_contract failed for Broken: .*{why}"):
        check_model(factory, name="Broken", export=False)
    with pytest.raises(AssertionError, match="conformance check.*failed for Broken") as info:
        check_model(factory, name="Broken", export=False, raise_first=False)
    assert "check_forward_contract" in str(info.value) and "check_learns" in str(info.value)


def test_batchnorm_model_survives_a_final_batch_of_one():
    """fit merges a final training batch of one row into the batch before (BatchNorm cannot normalise one row)."""
    check_model(lambda c, n, t: dnn(c, n, t, dnn_use_bn=True), name="DNN+BN", checks=["batch_of_one"])


def test_iter_checks_and_export_flag():
    names = [c.__name__ for c in iter_checks()]
    assert "check_onnx_parity" in names and "check_torch_export_parity" in names
    assert not {"check_onnx_parity", "check_torch_export_parity"} & {c.__name__ for c in iter_checks(export=False)}
    with pytest.raises(ValueError, match="unknown check"):
        iter_checks(["no_such_check"])


def test_tags_come_from_the_model_not_its_name():
    from ctrkit import DIN, ESMM, FM, LR
    assert FM.conformance_tags["needs_sparse"] and DIN.conformance_tags["needs_sequence"]
    assert ESMM.conformance_tags["binary_only"] and LR.conformance_tags == {}

    class MyFM(FM):     # a subclass under another name keeps its contract
        pass
    assert MyFM.conformance_tags["needs_sparse"]


def test_importing_ctrkit_testing_does_not_import_pytest():
    code = "import sys, ctrkit, ctrkit.testing; assert 'pytest' not in sys.modules, 'pytest imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
