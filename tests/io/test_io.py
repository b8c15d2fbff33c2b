import json
import os

import numpy as np
import pytest

from ctrkit import MMoE, ModelFormatError, load_model


@pytest.fixture()
def saved(byterec_encoded, tmp_path):
    enc, df, y = byterec_encoded
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), task_names=["finish", "like"])
    m.compile("adagrad", metrics=["auc"], loss_weights=[1.0, 0.3])
    m.fit(df, y, batch_size=64, epochs=1, verbose=0)
    path = tmp_path / "model"
    m.save(str(path))
    return m, path, df, y


def test_files_are_plain_and_loading_restores_everything(saved):
    m, path, df, y = saved
    assert sorted(os.listdir(path)) == ["config.json", "encoder.json", "weights.pt"]
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["class_name"] == "MMoE" and cfg["compile"]["optimizer"] == "adagrad"
    back = load_model(str(path))
    np.testing.assert_array_equal(back.predict(df), m.predict(df))
    assert back.evaluate(df, y)["loss"] == pytest.approx(m.evaluate(df, y)["loss"], rel=1e-6)
    # resave over an existing directory (atomic replace)
    back.save(str(path))
    np.testing.assert_array_equal(load_model(str(path)).predict(df), m.predict(df))


def test_not_a_model_dir(tmp_path):
    with pytest.raises(ModelFormatError, match="not a directory"):
        load_model(str(tmp_path / "nope"))
    (tmp_path / "x").mkdir()
    with pytest.raises(ModelFormatError, match="no config.json"):
        load_model(str(tmp_path / "x"))


def test_truncated_weights(saved):
    _, path, _, _ = saved
    w = path / "weights.pt"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ModelFormatError, match="truncated or corrupted"):
        load_model(str(path))


def test_future_version_and_unknown_class(saved):
    _, path, _, _ = saved
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(dict(cfg, format_version=99)))
    with pytest.raises(ModelFormatError, match="newer than"):
        load_model(str(path))
    (path / "config.json").write_text(json.dumps(dict(cfg, class_name="Evil")))
    with pytest.raises(ModelFormatError, match="Unknown model 'Evil'"):
        load_model(str(path))


def test_weights_from_other_columns_refused(saved, tmp_path):
    m, path, df, y = saved
    cfg = json.loads((path / "config.json").read_text())
    cfg["config"]["num_experts"] = 3
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="do not match"):
        load_model(str(path))


def test_loading_never_unpickles_code(saved):
    import pickle

    _, path, _, _ = saved

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned > /tmp/ctrkit-pwned",))
    (path / "weights.pt").write_bytes(pickle.dumps({"x": Boom()}))
    with pytest.raises(ModelFormatError):
        load_model(str(path))
    assert not os.path.exists("/tmp/ctrkit-pwned")


def test_encoder_from_another_save_is_refused(saved, byterec_encoded):
    _, path, df, _ = saved
    enc2 = json.loads((path / "encoder.json").read_text())
    enc2["state"]["vocabularies_"]["uid"] = enc2["state"]["vocabularies_"]["uid"][:5]   # a different fit
    (path / "encoder.json").write_text(json.dumps(enc2))
    with pytest.raises(ModelFormatError, match=r"does not match the model's feature columns.*\['uid'\]"):
        load_model(str(path))
