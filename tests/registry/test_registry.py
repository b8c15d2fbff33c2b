"""ctrkit.registry.build_model: the one factory the CLI, the comparison and the conformance tests share."""
from __future__ import annotations

import pytest

from ctrkit import DenseFeat, SparseFeat
from ctrkit.registry import build_model, get_model_class, model_arguments, model_names

COLS = [SparseFeat("user", 10, 4), SparseFeat("item", 20, 4), DenseFeat("price", 1)]


def test_multitask_models_get_task_names_and_types():
    m = build_model("MMoE", COLS, ["click", "like"], ["binary", "regression"], num_experts=2,
                    expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,), seed=3)
    assert type(m).__name__ == "MMoE"
    assert list(m.task_names) == ["click", "like"] and list(m.task_types) == ["binary", "regression"]


def test_single_task_models_get_task_and_task_name():
    for name in ("DNN", "DeepFM", "LR"):    # one and two feature-column arguments
        m = build_model(name, COLS, ["click"], ["regression"])
        assert type(m).__name__ == name
        assert list(m.task_names) == ["click"] and list(m.task_types) == ["regression"]


def test_every_tabular_model_builds():
    for name in model_names():
        cls = get_model_class(name)
        if getattr(cls, "sequential", False) or cls.conformance_tags.get("needs_sequence") or name == "ESMM":
            continue
        multi = name in model_names(multitask=True)
        tasks = ["a", "b"] if multi else ["a"]
        assert build_model(name, COLS, tasks, ["binary"] * len(tasks)).task_names == tasks


def test_single_task_model_with_several_tasks_is_a_value_error():
    with pytest.raises(ValueError, match=r"DeepFM is a single-task model but got 2 tasks"):
        build_model("DeepFM", COLS, ["click", "like"], ["binary", "binary"])


def test_unknown_name_suggests():
    with pytest.raises(KeyError, match=r"Unknown model 'MMOe'.*MMoE"):
        build_model("MMOe", COLS, ["a", "b"], ["binary", "binary"])


def test_unknown_argument_names_model_and_accepted_arguments():
    with pytest.raises(TypeError) as e:
        build_model("MMoE", COLS, ["a", "b"], ["binary", "binary"], num_expert=4)
    msg = str(e.value)
    assert msg.startswith("MMoE: unexpected argument(s) ['num_expert']") and "num_experts" in msg
    assert "Accepted arguments:" in msg and "'gpus'" not in msg
    accepted, takes_kwargs = model_arguments("MMoE")
    assert "num_experts" in accepted and "task_names" not in accepted and not takes_kwargs


def test_reserved_arguments_are_refused():
    with pytest.raises(TypeError, match="task_names"):
        build_model("MMoE", COLS, ["a", "b"], ["binary", "binary"], task_names=["x", "y"])
    with pytest.raises(TypeError, match="task"):
        build_model("DNN", COLS, ["a"], ["binary"], task="regression")


def test_mismatched_tasks_and_sequential_models():
    with pytest.raises(ValueError, match="one type per task"):
        build_model("MMoE", COLS, ["a", "b"], ["binary"])
    with pytest.raises(ValueError, match="SASRec is a next-item sequential model"):
        build_model("SASRec", COLS, ["a"], ["binary"])
