"""Out-of-core data: streaming encoder fit, the HDF5 store, and training / evaluating / predicting from it."""
from __future__ import annotations

import os
import threading

import numpy as np
import pandas as pd
import pytest
import torch

import ctrkit
from ctrkit import DataValidationError, DenseFeat, FeatureEncoder, MMoE, SparseFeat
from ctrkit.data import H5Store, encode_to_store, open_store, to_tensor_data, write_store
from ctrkit.datasets import make_criteo_like

TASKS = ["click", "purchase"]
SPARSE = [f"C{i}" for i in range(1, 9)]
DENSE = [f"I{i}" for i in range(1, 6)]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """A Criteo-like CSV (with missing dense values) and the same rows as a frame."""
    df = make_criteo_like(3000, n_dense=5, n_sparse=8, seed=11)
    d = tmp_path_factory.mktemp("raw")
    df.to_csv(d / "raw.csv", index=False)
    return df, str(d / "raw.csv"), d


def _encoder():
    return FeatureEncoder(sparse=SPARSE, dense=DENSE, min_freq=2, embedding_dim=4)


def _rowid_store(path, n=1000, chunk_rows=64, **kw):
    """A store whose dense feature is the row number, so batches say which rows they hold."""
    cols = [SparseFeat("a", 10, 4), DenseFeat("rid")]
    x = {"a": np.arange(n) % 10, "rid": np.arange(n, dtype=np.float32)}
    write_store(path, x, {"y": (np.arange(n) % 2).astype(np.float32)}, cols, chunk_rows=chunk_rows)
    return open_store(path, **kw)


def _rows(batch):
    return batch[0].dense[:, 0].long().tolist()


def test_streaming_encode_equals_fit_on_the_whole_file(raw, tmp_path):
    df, csv, _ = raw
    whole_df = pd.read_csv(csv)
    whole = _encoder().fit(whole_df)
    enc = _encoder()
    store = encode_to_store(csv, enc, str(tmp_path / "s.h5"), TASKS, chunksize=700)  # 5 chunks, last short
    assert enc.vocabularies_ == whole.vocabularies_ and enc.maxlen_ == whole.maxlen_
    for c in DENSE:
        for k, v in whole.dense_stats_[c].items():
            assert enc.dense_stats_[c][k] == pytest.approx(v, rel=1e-12, abs=1e-12), (c, k)
    assert len(store) == len(df) and store.task_names == TASKS
    assert store.encoder.to_dict()["state"] == enc.to_dict()["state"]
    x, y, w = store.read()
    ref = to_tensor_data(whole.transform(whole_df), whole.feature_columns)
    assert torch.equal(x.sparse, ref.sparse)
    torch.testing.assert_close(x.dense, ref.dense, rtol=1e-6, atol=1e-6)
    assert torch.equal(y, torch.tensor(df[TASKS].to_numpy(np.float32))) and w is None
    # Parquet in chunks gives the same store
    df.to_parquet(tmp_path / "raw.parquet", index=False)
    pq = encode_to_store(str(tmp_path / "raw.parquet"), _encoder(), str(tmp_path / "p.h5"), TASKS, chunksize=1000)
    assert pq.encoder.vocabularies_ == whole.vocabularies_
    assert torch.equal(pq.read()[0].sparse, x.sparse)


def test_encoder_inferring_columns_must_not_eat_the_labels(raw, tmp_path):
    _, csv, _ = raw
    with pytest.raises(DataValidationError, match=r"ignore=\['click', 'purchase'\]"):
        encode_to_store(csv, FeatureEncoder(), str(tmp_path / "s.h5"), TASKS)
    assert not os.path.exists(tmp_path / "s.h5")


def test_store_layout_weights_varlen_and_chunks(tmp_path):
    """One dataset per dtype group, chunked; an iterable of chunks with label and weight columns; var-length."""
    import h5py
    frames = [pd.DataFrame({"u": list("abcab")[: k + 1] * 3, "tags": ["x|y", "y", ""] * (k + 1),
                            "age": np.arange(3 * (k + 1), dtype=float), "y": [0, 1, 1] * (k + 1),
                            "w": [1.0, 2.0, 0.5] * (k + 1)}) for k in range(3)]
    enc = FeatureEncoder(sparse=["u"], dense=["age"], varlen={"tags": "|"}).fit(pd.concat(frames))
    path = write_store(str(tmp_path / "v.h5"), iter(frames), ["y"], enc.feature_columns, sample_weight="w",
                       task_types=["binary"], chunk_rows=4)
    with h5py.File(path) as f:
        assert {k: (f[k].dtype.name, f[k].chunks[0]) for k in ("sparse", "dense", "varlen/0", "labels", "weight")} == {
            "sparse": ("int64", 4), "dense": ("float32", 4), "varlen/0": ("int64", 4), "labels": ("float32", 4),
            "weight": ("float32", 4)}
    s = open_store(path)
    assert len(s) == 18 and s.has_sample_weight and not s.has_nan_labels
    x, y, w = s.read(3, 9)
    whole = pd.concat(frames, ignore_index=True)
    ref = to_tensor_data(enc.transform(whole.iloc[3:9]), enc.feature_columns)
    assert torch.equal(x.varlen["tags"], ref.varlen["tags"]) and torch.equal(x.sparse, ref.sparse)
    assert w.tolist() == whole["w"].iloc[3:9].tolist()
    assert [f.name for f in s.feature_columns] == ["u", "age", "tags"] and s.feature_columns.encoder is not None


def test_epoch_batches_cover_every_row_once_in_a_seeded_order(tmp_path):
    s = _rowid_store(str(tmp_path / "r.h5"), n=1000, chunk_rows=64, buffer_rows=256)
    def epoch(e, seed=0):
        return [_rows(b) for b in s.batches(100, seed=seed, epoch=e)]
    e0 = epoch(0)
    assert [len(b) for b in e0] == [100] * 10
    assert sorted(sum(e0, [])) == list(range(1000))
    assert epoch(0) == e0                         # a function of (seed, epoch) only
    assert epoch(1) != e0 and epoch(0, seed=1) != e0
    flat = sum(e0, [])
    assert flat != sorted(flat)                   # shuffled within the buffer ...
    first_window = set(flat[:256])                # ... of 4 blocks of 64 rows: whole blocks, in random order
    assert {r // 64 for r in first_window} != {0, 1, 2, 3} and len({r // 64 for r in first_window}) == 4
    # in file order without shuffling; the last batch holds the rest
    seq = [_rows(b) for b in s.batches(300, shuffle=False)]
    assert [len(b) for b in seq] == [300, 300, 300, 100] and sum(seq, []) == list(range(1000))


def test_shards_are_disjoint_cover_the_store_and_run_the_same_number_of_steps(tmp_path):
    s = _rowid_store(str(tmp_path / "r.h5"), n=1001, chunk_rows=50)
    shards = [[_rows(b) for b in s.batches(64, seed=3, epoch=2, rank=r, world_size=3)] for r in range(3)]
    assert len({len(sh) for sh in shards}) == 1 == len({s.steps_per_epoch(64, 3)}) and len(shards[0]) == 6
    rows = [sum(sh, []) for sh in shards]
    assert sorted(sum(rows, [])) == list(range(1001))
    assert [sorted(r) for r in rows] == [list(range(*s.shard_range(k, 3))) for k in range(3)]


def test_resuming_mid_epoch_skips_batches_without_reading_them(tmp_path, monkeypatch):
    s = _rowid_store(str(tmp_path / "r.h5"), n=1000, chunk_rows=64, buffer_rows=128)
    full = [_rows(b) for b in s.batches(48, seed=5, epoch=1)]
    reads = []
    orig = H5Store._read_ranges
    monkeypatch.setattr(H5Store, "_read_ranges", lambda self, ranges: reads.append(list(ranges)) or orig(self, ranges))
    tail = [_rows(b) for b in s.batches(48, seed=5, epoch=1, start_step=13)]
    assert tail == full[13:]
    assert sum(b - a for r in reads for a, b in r) < 1000 - 12 * 48 + 128  # windows before the point were skipped
    assert all(len(r) <= 2 for r in reads)  # whole blocks per read, never rows one by one


def test_read_ahead_thread_stops_when_iteration_is_abandoned(tmp_path):
    s = _rowid_store(str(tmp_path / "r.h5"), n=2000, chunk_rows=64, buffer_rows=128, prefetch=2)
    before = threading.active_count()
    it = iter(s.batches(10, seed=0))
    next(it)
    assert any(t.name == "ctrkit-read-ahead" for t in threading.enumerate())
    it.close()
    del it
    assert threading.active_count() == before


def test_fit_evaluate_predict_from_store_match_in_memory(raw, tmp_path):
    """Without shuffling, the store yields the in-memory batches: same weights, same metrics and predictions."""
    df, csv, _ = raw
    enc = _encoder()
    store = encode_to_store(csv, enc, str(tmp_path / "s.h5"), TASKS, chunksize=1000, chunk_rows=256)
    val = open_store(write_store(str(tmp_path / "v.h5"), df.iloc[:700], TASKS, enc.feature_columns))
    ms = []
    for data in ("store", "memory"):
        m = MMoE(store.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
                 task_names=TASKS)
        m.compile("adam", metrics=["auc"])
        if data == "store":
            h = m.fit(store, batch_size=128, epochs=2, verbose=0, shuffle=False, validation_data=val)
        else:
            h = m.fit(df, df[TASKS], batch_size=128, epochs=2, verbose=0, shuffle=False,
                      validation_data=(df.iloc[:700], df[TASKS].iloc[:700]))
        ms.append((m, h))
    (a, ha), (b, hb) = ms
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], rtol=1e-5, atol=1e-6)
    for k in ("loss", "click_auc", "val_purchase_auc", "val_loss"):
        np.testing.assert_allclose(ha.history[k], hb.history[k], rtol=1e-4)
    ev = a.evaluate(val, batch_size=100)
    assert ev["click_auc"] == pytest.approx(a.evaluate(df.iloc[:700], df[TASKS].iloc[:700])["click_auc"], abs=1e-6)
    np.testing.assert_allclose(a.predict(val, batch_size=99), a.predict(df.iloc[:700]), rtol=1e-5, atol=1e-7)
    # shuffled training from the store learns
    m = MMoE(store.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
             task_names=TASKS)
    m.compile("adam", lr=0.01, metrics=["auc"])
    h = m.fit(ctrkit.data.open(store.path, buffer_rows=512), batch_size=64, epochs=3, verbose=0, validation_data=val)
    assert h.history["val_click_auc"][-1] > 0.6


def test_store_errors_say_what_to_do(raw, tmp_path):
    import h5py
    df, csv, _ = raw
    enc = _encoder().fit(df)
    path = write_store(str(tmp_path / "s.h5"), df, TASKS, enc.feature_columns)
    store = open_store(path)
    with pytest.raises(FileNotFoundError, match="write_store"):
        open_store(str(tmp_path / "nope.h5"))
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataValidationError, match="not a ctrkit store"):
        open_store(str(tmp_path / "plain.h5"))
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DataValidationError, match="not a readable HDF5"):
        open_store(str(tmp_path / "text.h5"))
    m = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,),
             task_names=TASKS)
    m.compile("adam")
    with pytest.raises(DataValidationError, match="carries its labels"):
        m.fit(store, df[TASKS], verbose=0)
    with pytest.raises(ValueError, match="validation_split needs in-memory"):
        m.fit(store, validation_split=0.2, verbose=0)
    other = MMoE(enc.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), task_names=["purchase", "click"])
    other.compile("adam")
    with pytest.raises(DataValidationError, match="model's task order"):
        other.fit(store, verbose=0)
    small = FeatureEncoder(sparse=SPARSE[:3], dense=DENSE).fit(df)
    m3 = MMoE(small.feature_columns, num_experts=2, expert_dnn_hidden_units=(8,), task_names=TASKS)
    m3.compile("adam")
    with pytest.raises(DataValidationError, match="feature columns do not match"):
        m3.fit(store, verbose=0)
    with pytest.raises(DataValidationError, match="task 'click' is binary"):
        write_store(str(tmp_path / "bad.h5"), df, {"click": df["click"] + 2, "purchase": df["purchase"]},
                    enc.feature_columns, task_types=["binary", "binary"])
    assert not [p for p in os.listdir(tmp_path) if p.startswith("bad.h5")]  # nothing (temporary or not) left
