"""Corrupted stores and model files: each one a clear error naming the file and what is wrong, never a stray
KeyError / AttributeError / h5py message, nor an error blaming the caller's data."""
from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
import torch

from ctrkit import DNN, DataValidationError, FeatureEncoder, ModelFormatError, load_model
from ctrkit.data import open_store, write_store

SPARSE = ["uid", "item_id", "channel"]
DENSE = ["duration_time"]


@pytest.fixture(scope="module")
def enc_df(byterec):
    df = byterec.head(600).copy()
    enc = FeatureEncoder(sparse=SPARSE, dense=DENSE, embedding_dim=4).fit(df)
    return enc, df


@pytest.fixture()
def store(enc_df, tmp_path):
    enc, df = enc_df
    path = str(tmp_path / "train.h5")
    write_store(path, df, ["finish"], enc.feature_columns, chunk_rows=128)
    return path


def _read_all(path):
    with open_store(path, prefetch=0) as s:
        s.read()
        return s


# ----------------------------------------------------------------------------------------------- stores
@pytest.mark.parametrize("keep", [0, 8, 512, 0.1, 0.5, 0.9, 0.999])
def test_truncated_store_is_refused_naming_the_file(store, keep):
    size = os.path.getsize(store)
    n = int(keep * size) if isinstance(keep, float) else keep
    with open(store, "r+b") as fh:
        fh.truncate(n)
    with pytest.raises(DataValidationError, match=r"train\.h5"):
        _read_all(store)


@pytest.mark.parametrize("attr", ["format_version", "n_rows", "feature_columns", "task_names", "task_types",
                                  "has_sample_weight", "has_nan_labels", "chunk_rows"])
def test_store_missing_an_attribute_names_it(store, attr):
    with h5py.File(store, "a") as f:
        del f.attrs[attr]
    with pytest.raises(DataValidationError, match=rf"train\.h5.*attribute '{attr}' is missing or corrupted"):
        open_store(store)


@pytest.mark.parametrize("attr,value", [("feature_columns", "[{not json"), ("feature_columns", '{"a": 1}'),
                                        ("task_names", "{"), ("n_rows", "many"), ("encoder", '["a list"]'),
                                        ("encoder", '{"format_version": 1, "params": {}, "state": {}}')])
def test_store_with_a_garbled_attribute_names_it(store, attr, value):
    with h5py.File(store, "a") as f:
        f.attrs[attr] = value
    with pytest.raises(DataValidationError, match=rf"train\.h5.*'{attr}'.*(missing or corrupted|corrupted)"):
        open_store(store)


@pytest.mark.parametrize("dataset", ["sparse", "dense", "labels"])
def test_store_missing_a_dataset_names_it(store, dataset):
    with h5py.File(store, "a") as f:
        del f[dataset]
    with pytest.raises(DataValidationError, match=rf"train\.h5.*\['{dataset} \(missing\)'\]"):
        open_store(store)


def test_store_whose_datasets_are_shorter_than_its_row_count(store):
    with h5py.File(store, "a") as f:
        f.attrs["n_rows"] = 10_000
    with pytest.raises(DataValidationError, match=r"n_rows=10000.*sparse \(shape \(\d+, 3\)\)"):
        open_store(store)


def test_not_hdf5_and_not_a_store(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("id,click\n1,0\n")
    with pytest.raises(DataValidationError, match="not a readable HDF5 file"):
        open_store(str(p))
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["a"] = np.arange(3)
    with pytest.raises(DataValidationError, match="not a ctrkit store"):
        open_store(str(tmp_path / "y.h5"))


def test_store_damaged_inside_a_dataset_is_reported_at_read(enc_df, tmp_path):
    """Chunks of a dataset overwritten with garbage (a bad disk block) under a compressed dataset: the read fails
    with the file, the dataset and the rows, not h5py's bare message."""
    enc, df = enc_df
    path = str(tmp_path / "z.h5")
    write_store(path, df, ["finish"], enc.feature_columns, chunk_rows=128, compression="gzip")
    with h5py.File(path, "r") as f:
        offset = f["sparse"].id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 64)
    with pytest.raises(DataValidationError, match=r"rows .* of dataset 'sparse' in .*z\.h5.*truncated or damaged"):
        _read_all(path)


def _model(cols, **kw):
    m = DNN(cols, task="binary", task_names=kw.pop("task_names", ["finish"]), dnn_hidden_units=(4,), **kw)
    m.compile("adam")
    return m


def test_store_schema_differs_from_the_model(enc_df, store):
    enc, df = enc_df
    other = FeatureEncoder(sparse=SPARSE[:2], dense=DENSE, embedding_dim=4).fit(df)
    with pytest.raises(DataValidationError, match=r"feature columns do not match.*train\.h5"):
        _model(other.feature_columns).fit(open_store(store), epochs=1, verbose=0)


def test_store_vocabulary_larger_than_the_model(enc_df, store):
    enc, df = enc_df
    small = FeatureEncoder(sparse=SPARSE, dense=DENSE, embedding_dim=4).fit(df.head(50))
    with pytest.raises(DataValidationError, match=r"'uid' has vocabulary_size \d+ in the store"):
        _model(small.feature_columns).fit(open_store(store), epochs=1, verbose=0)


def test_store_labels_differ_from_the_model_tasks(enc_df, store):
    enc, _ = enc_df
    with pytest.raises(DataValidationError, match=r"store's labels are \['finish'\].*\['like'\]"):
        _model(enc.feature_columns, task_names=["like"]).predict(open_store(store))


# ----------------------------------------------------------------------------------------------- model files
@pytest.fixture()
def saved(enc_df, tmp_path):
    enc, df = enc_df
    m = _model(enc.feature_columns, seed=1)
    path = tmp_path / "model"
    m.save(str(path))
    return path


def _edit_json(path, name, fn):
    p = path / name
    d = json.loads(p.read_text())
    d = fn(d)
    p.write_text(json.dumps(d))


def _drop_state(key, col=None):
    def fn(d):
        if col is None:
            del d["state"][key]
        else:
            del d["state"][key][col]
        return d
    return fn


def _drop_column(d):  # the column gone from the encoder entirely (consistent, but not the model's)
    d["state"]["sparse_columns_"].remove("channel")
    del d["state"]["vocabularies_"]["channel"]
    d["params"]["sparse"].remove("channel")
    return d


ENCODER_CASES = {
    "a list": (lambda d: [d], r"expected a JSON object.*got a list"),
    "a string": (lambda d: "encoder", r"expected a JSON object.*got a str"),
    "null": (lambda d: None, r"expected a JSON object.*got a NoneType"),
    "no state": (lambda d: {k: v for k, v in d.items() if k != "state"}, r"'state' must be a JSON object, got nothing"),
    "params a list": (lambda d: dict(d, params=[1]), r"'params' must be a JSON object, got list"),
    "no vocabularies": (_drop_state("vocabularies_"), r"state\['vocabularies_'\] must be a JSON object, got nothing"),
    "vocabulary of a column missing": (_drop_state("vocabularies_", "uid"), r"column 'uid' has neither a vocabulary"),
    "dense statistics missing": (_drop_state("dense_stats_", "duration_time"),
                                 r"dense column 'duration_time' lacks the statistics"),
    "unknown parameter": (lambda d: dict(d, params=dict(d["params"], colour=1)), r"'params' does not match"),
    "newer format": (lambda d: dict(d, format_version=99), r"format_version 99 is newer"),
    "column dropped entirely": (_drop_column, r"does not encode the model's feature columns \['channel'\]"),
}


@pytest.mark.parametrize("case", list(ENCODER_CASES))
def test_broken_encoder_json_is_named(saved, case):
    fn, msg = ENCODER_CASES[case]
    _edit_json(saved, "encoder.json", fn)
    with pytest.raises(ModelFormatError, match=rf"encoder\.json.*{msg}|{msg}.*encoder\.json"):
        load_model(str(saved))


def test_encoder_json_not_json(saved):
    (saved / "encoder.json").write_text('{"format_version": 1, "params": {')
    with pytest.raises(ModelFormatError, match=r"encoder\.json' is corrupted \(JSONDecodeError"):
        load_model(str(saved))


CONFIG_CASES = {
    "empty": ("", r"config\.json' is corrupted or incomplete"),
    "truncated": (None, r"config\.json' is corrupted or incomplete"),
    "a list": ("[1, 2]", r"config\.json' is corrupted or incomplete"),
    "config not an object": ('{"format_version": 1, "class_name": "DNN", "config": [1]}',
                             r"'config' must be a JSON object"),
    "no class name": ('{"format_version": 1, "config": {}}', r"config\.json' is corrupted or incomplete.*class_name"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_broken_config_json_is_named(saved, case):
    text, msg = CONFIG_CASES[case]
    p = saved / "config.json"
    p.write_text(p.read_text()[:40] if text is None else text)
    with pytest.raises(ModelFormatError, match=msg):
        load_model(str(saved))


def test_config_with_an_unknown_argument_is_named(saved):
    _edit_json(saved, "config.json", lambda d: dict(d, config=dict(d["config"], flux_capacitor=3)))
    with pytest.raises(ModelFormatError, match=r"DNN cannot be built from the arguments in .*config\.json.*flux"):
        load_model(str(saved))


def _weights(fn):
    def edit(path):
        p = str(path / "weights.pt")
        sd = torch.load(p, weights_only=True)
        torch.save(fn(sd), p)
    return edit


def _wrong_shape(sd):
    k = next(k for k, v in sd.items() if v.dim() == 2)
    sd[k] = torch.zeros(sd[k].shape[0] + 1, sd[k].shape[1])
    return sd


def _truncate(n):
    def edit(path):
        p = path / "weights.pt"
        p.write_bytes(p.read_bytes()[:n])
    return edit


_MISMATCH = r"(?s)weights\.pt' do not match the saved config .*config\.json'"
WEIGHT_CASES = {
    "a tensor of the wrong shape": (_weights(_wrong_shape), rf"{_MISMATCH}.*size mismatch"),
    "a tensor missing": (_weights(lambda sd: dict(list(sd.items())[1:])), rf"{_MISMATCH}.*Missing key"),
    "an extra tensor": (_weights(lambda sd: dict(sd, extra=torch.ones(1))), rf"{_MISMATCH}.*Unexpected"),
    "not a dict": (_weights(lambda sd: list(sd.values())), r"weights\.pt' holds a list, not a state dict"),
    "empty file": (_truncate(0), r"weights\.pt in .* is truncated or corrupted"),
    "truncated": (_truncate(300), r"weights\.pt in .* is truncated or corrupted"),
    "missing": (lambda path: os.remove(path / "weights.pt"), r"has no weights\.pt \(found: \['config\.json'"),
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES))
def test_broken_weights_are_named(saved, case):
    edit, msg = WEIGHT_CASES[case]
    edit(saved)
    with pytest.raises(ModelFormatError, match=msg):
        load_model(str(saved))


def test_a_path_that_is_a_file_is_refused_before_writing(saved, enc_df, tmp_path):
    enc, _ = enc_df
    (tmp_path / "file").write_text("not a model")
    with pytest.raises(FileExistsError, match=r"'.*file' exists and is not a directory"):
        _model(enc.feature_columns).save(str(tmp_path / "file"))
    assert (tmp_path / "file").read_text() == "not a model"
    assert sorted(os.listdir(tmp_path)) == ["file", "model"]
